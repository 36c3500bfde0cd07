// Compute kernels for the peer benchmark's execution times. Freestanding: no libc and no
// imports, so both engines run exactly the same code with nothing of the host in the loop.
// Each kernel is an export that takes a work size and returns a checksum, which the bench
// compares between the engines before it trusts a timing.
//
// clang --target=wasm32 -O2 -nostdlib -mbulk-memory -msimd128 -msign-ext \
//     -mnontrapping-fptoint -Wl,--no-entry -Wl,--export-dynamic kernels.c -o kernels.wasm
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

static uint32_t random_state;

static uint32_t next_random(void) {
    // xorshift32: the same sequence in every engine.
    random_state ^= random_state << 13;
    random_state ^= random_state >> 17;
    random_state ^= random_state << 5;
    return random_state;
}

// ---- Hashing: FNV-1a and a murmur-style 32-bit mix over a 64 KiB buffer. ----

#define HASH_BYTES 65536
static uint8_t hash_input[HASH_BYTES];

static uint32_t murmur_mix(const uint8_t *data, size_t len, uint32_t seed) {
    uint32_t h = seed;
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
                     (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
        k *= 0xcc9e2d51u;
        k = (k << 15) | (k >> 17);
        k *= 0x1b873593u;
        h ^= k;
        h = (h << 13) | (h >> 19);
        h = h * 5 + 0xe6546b64u;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

EXPORT uint32_t hash(int rounds) {
    random_state = 0x9e3779b9u;
    for (size_t i = 0; i < HASH_BYTES; i++) {
        hash_input[i] = (uint8_t)next_random();
    }
    uint32_t result = 0;
    for (int r = 0; r < rounds; r++) {
        uint32_t fnv = 2166136261u ^ (uint32_t)r;
        for (size_t i = 0; i < HASH_BYTES; i++) {
            fnv = (fnv ^ hash_input[i]) * 16777619u;
        }
        result ^= fnv + murmur_mix(hash_input, HASH_BYTES, result);
    }
    return result;
}

// ---- Sorting: quicksort with insertion sort below 16 elements, and a heap sort. ----

#define SORT_COUNT 100000
static int32_t sort_values[SORT_COUNT];

static void insertion_sort(int32_t *a, int n) {
    for (int i = 1; i < n; i++) {
        int32_t v = a[i];
        int j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void quicksort(int32_t *a, int n) {
    while (n > 16) {
        int32_t pivot = a[n / 2];
        int i = 0, j = n - 1;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                int32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        // Recurse into the smaller half, loop on the larger: the depth stays logarithmic.
        if (j + 1 < n - i) {
            quicksort(a, j + 1);
            a += i;
            n -= i;
        } else {
            quicksort(a + i, n - i);
            n = j + 1;
        }
    }
    insertion_sort(a, n);
}

static void sift_down(int32_t *a, int start, int end) {
    int root = start;
    while (2 * root + 1 <= end) {
        int child = 2 * root + 1;
        if (child + 1 <= end && a[child] < a[child + 1]) child++;
        if (a[root] >= a[child]) return;
        int32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void heap_sort(int32_t *a, int n) {
    for (int start = (n - 2) / 2; start >= 0; start--) sift_down(a, start, n - 1);
    for (int end = n - 1; end > 0; end--) {
        int32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end - 1);
    }
}

static uint32_t sorted_checksum(const int32_t *a, int n) {
    uint32_t h = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i]) return 0xdeadbeefu;
        h = h * 31 + (uint32_t)a[i];
    }
    return h;
}

EXPORT uint32_t sort(int rounds) {
    uint32_t result = 0;
    random_state = 0x12345678u;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < SORT_COUNT; i++) sort_values[i] = (int32_t)next_random();
        if (r % 2 == 0) {
            quicksort(sort_values, SORT_COUNT);
        } else {
            heap_sort(sort_values, SORT_COUNT);
        }
        result ^= sorted_checksum(sort_values, SORT_COUNT);
    }
    return result;
}

// ---- Matrix multiply: 128x128 doubles, loop order i-k-j (vectorisable). ----

#define DIM 128
static double mat_a[DIM * DIM], mat_b[DIM * DIM], mat_c[DIM * DIM];

EXPORT double matmul(int rounds) {
    for (int i = 0; i < DIM * DIM; i++) {
        mat_a[i] = (double)(i % 17) * 0.25 - 2.0;
        mat_b[i] = (double)(i % 13) * 0.5 - 3.0;
    }
    double trace = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < DIM * DIM; i++) mat_c[i] = 0;
        for (int i = 0; i < DIM; i++) {
            for (int k = 0; k < DIM; k++) {
                double a = mat_a[i * DIM + k];
                for (int j = 0; j < DIM; j++) {
                    mat_c[i * DIM + j] += a * mat_b[k * DIM + j];
                }
            }
        }
        for (int i = 0; i < DIM; i++) trace += mat_c[i * DIM + i];
        mat_a[r % (DIM * DIM)] += 1.0;
    }
    return trace;
}

// ---- N-body: the five-planet simulation of the Benchmarks Game. ----

#define BODIES 5
#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

struct body {
    double x, y, z, vx, vy, vz, mass;
};

static struct body bodies[BODIES];

static void init_bodies(void) {
    static const struct body initial[BODIES] = {
        {0, 0, 0, 0, 0, 0, SOLAR_MASS},
        {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
         1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
         -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS},
        {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
         -2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
         2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS},
        {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
         2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
         -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS},
        {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
         2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
         -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS},
    };
    for (int i = 0; i < BODIES; i++) bodies[i] = initial[i];
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < BODIES; i++) {
        px += bodies[i].vx * bodies[i].mass;
        py += bodies[i].vy * bodies[i].mass;
        pz += bodies[i].vz * bodies[i].mass;
    }
    bodies[0].vx = -px / SOLAR_MASS;
    bodies[0].vy = -py / SOLAR_MASS;
    bodies[0].vz = -pz / SOLAR_MASS;
}

static double energy(void) {
    double e = 0;
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        e += 0.5 * b->mass * (b->vx * b->vx + b->vy * b->vy + b->vz * b->vz);
        for (int j = i + 1; j < BODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            e -= b->mass * c->mass / __builtin_sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

EXPORT double nbody(int steps) {
    init_bodies();
    const double dt = 0.01;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < BODIES; i++) {
            struct body *b = &bodies[i];
            for (int j = i + 1; j < BODIES; j++) {
                struct body *c = &bodies[j];
                double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = dt / (d2 * __builtin_sqrt(d2));
                b->vx -= dx * c->mass * mag;
                b->vy -= dy * c->mass * mag;
                b->vz -= dz * c->mass * mag;
                c->vx += dx * b->mass * mag;
                c->vy += dy * b->mass * mag;
                c->vz += dz * b->mass * mag;
            }
        }
        for (int i = 0; i < BODIES; i++) {
            bodies[i].x += dt * bodies[i].vx;
            bodies[i].y += dt * bodies[i].vy;
            bodies[i].z += dt * bodies[i].vz;
        }
    }
    return energy();
}

// ---- Interpreter: a register bytecode machine run through a switch dispatch loop. ----

enum opcode { OP_LOADI, OP_ADD, OP_SUB, OP_MUL, OP_XOR, OP_SHR, OP_JNZ, OP_DEC, OP_HALT };

struct instruction {
    uint8_t op, dst, a, b;
    int32_t imm;
};

static uint32_t run_program(const struct instruction *code, uint32_t seed) {
    uint32_t reg[8] = {seed, 0, 0, 0, 0, 0, 0, 0};
    size_t pc = 0;
    for (;;) {
        const struct instruction *in = &code[pc++];
        switch (in->op) {
        case OP_LOADI: reg[in->dst] = (uint32_t)in->imm; break;
        case OP_ADD: reg[in->dst] = reg[in->a] + reg[in->b]; break;
        case OP_SUB: reg[in->dst] = reg[in->a] - reg[in->b]; break;
        case OP_MUL: reg[in->dst] = reg[in->a] * reg[in->b]; break;
        case OP_XOR: reg[in->dst] = reg[in->a] ^ reg[in->b]; break;
        case OP_SHR: reg[in->dst] = reg[in->a] >> (reg[in->b] & 31); break;
        case OP_JNZ: if (reg[in->a]) pc = (size_t)in->imm; break;
        case OP_DEC: reg[in->dst]--; break;
        case OP_HALT: return reg[0];
        }
    }
}

EXPORT uint32_t interp(int iterations) {
    // r0 = hash state, r1 = loop counter, r2..r4 scratch: per iteration
    // r0 = (r0 * 33) ^ (r0 >> 7) + r1.
    const struct instruction program[] = {
        {OP_LOADI, 1, 0, 0, iterations},
        {OP_LOADI, 2, 0, 0, 33},
        {OP_LOADI, 3, 0, 0, 7},
        {OP_MUL, 4, 0, 2, 0}, // 3: loop
        {OP_SHR, 5, 0, 3, 0},
        {OP_XOR, 4, 4, 5, 0},
        {OP_ADD, 0, 4, 1, 0},
        {OP_DEC, 1, 0, 0, 0},
        {OP_JNZ, 0, 1, 0, 3},
        {OP_HALT, 0, 0, 0, 0},
    };
    return run_program(program, 0x811c9dc5u);
}

// ---- Strings: build a text, then tokenize, count substrings and reverse words. ----

#define TEXT_BYTES 32768
static char text[TEXT_BYTES + 1];
static char reversed[TEXT_BYTES + 1];

static size_t string_length(const char *s) {
    const char *p = s;
    while (*p) p++;
    return (size_t)(p - s);
}

static int count_occurrences(const char *haystack, const char *needle) {
    size_t n = string_length(needle);
    int count = 0;
    for (const char *p = haystack; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] == needle[i]) i++;
        if (i == n) count++;
    }
    return count;
}

static uint32_t reverse_words(void) {
    size_t len = string_length(text);
    size_t out = 0, end = len;
    uint32_t upper = 0;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && text[start - 1] != ' ') start--;
        for (size_t i = start; i < end; i++) {
            char c = text[i];
            if (c >= 'a' && c <= 'z') {
                c = (char)(c - 'a' + 'A');
                upper++;
            }
            reversed[out++] = c;
        }
        if (start > 0) reversed[out++] = ' ';
        end = start > 0 ? start - 1 : 0;
    }
    reversed[out] = 0;
    return upper + (uint32_t)out;
}

EXPORT uint32_t strings(int rounds) {
    static const char *const words[] = {"kiln", "wasm", "fire", "clay", "glaze", "pot", "ash",
                                        "ember", "kilnwork", "an"};
    random_state = 0xabcdef01u;
    size_t len = 0;
    while (len + 10 < TEXT_BYTES) {
        const char *w = words[next_random() % 10];
        while (*w) text[len++] = *w++;
        text[len++] = ' ';
    }
    text[len] = 0;
    uint32_t result = 0;
    for (int r = 0; r < rounds; r++) {
        result += (uint32_t)count_occurrences(text, "kiln");
        result += (uint32_t)count_occurrences(text, "an");
        result = result * 7 + reverse_words();
        text[(size_t)r % len] = text[(size_t)r % len] == ' ' ? ' ' : 'x';
    }
    return result;
}
