// Compute kernels whose output must be identical when built natively and for wasm32-wasi
// with clang's WebAssembly 2.0 features (bulk memory, reference types, SIMD, non-trapping
// conversions, sign extension). At -O2 clang vectorises the loops into SIMD, turns the
// memcpy/memset calls into memory.copy/memory.fill, and qsort's comparators become
// call_indirect through the function table.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

#define N 4096

static uint32_t state = 0x12345678u;

static uint32_t next_random(void) {
    // xorshift32: deterministic on every target.
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static uint32_t fnv1a(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static int32_t ints_a[N], ints_b[N], ints_c[N];
static float floats_x[N], floats_y[N];
static double doubles[N];
static uint8_t pixels[N], scratch[N + 64];
static int16_t samples[N];

static void integer_kernels(void) {
    for (int i = 0; i < N; i++) {
        ints_a[i] = (int32_t)next_random();
        ints_b[i] = (int32_t)(next_random() % 2001) - 1000;
    }
    for (int i = 0; i < N; i++) {
        // Unsigned arithmetic wraps the same way everywhere (signed overflow would be UB).
        uint32_t product = (uint32_t)ints_a[i] * (uint32_t)ints_b[i];
        ints_c[i] = (int32_t)(product + (uint32_t)(ints_a[i] >> 3) - ((uint32_t)ints_b[i] << 2));
    }
    int64_t sum = 0;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int i = 0; i < N; i++) {
        sum += ints_c[i];
        lo = ints_c[i] < lo ? ints_c[i] : lo;
        hi = ints_c[i] > hi ? ints_c[i] : hi;
    }
    printf("ints: sum=%lld min=%d max=%d hash=%08x\n", (long long)sum, lo, hi,
           fnv1a(ints_c, sizeof ints_c));
}

static void float_kernels(void) {
    for (int i = 0; i < N; i++) {
        floats_x[i] = (float)(next_random() % 100000) / 1000.0f;
        floats_y[i] = (float)(next_random() % 100000) / 3000.0f;
    }
    const float a = 1.5f;
    for (int i = 0; i < N; i++) {
        floats_y[i] = a * floats_x[i] + floats_y[i];
    }
    for (int i = 0; i < N; i++) {
        floats_x[i] = sqrtf(floats_y[i]) - floorf(floats_y[i] / 7.0f);
    }
    double total = 0;
    for (int i = 0; i < N; i++) {
        total += floats_x[i];
    }
    for (int i = 0; i < N; i++) {
        doubles[i] = fmin(floats_x[i], 4.0) * fabs(floats_y[i] - 50.0);
    }
    uint32_t truncated = 0;
    for (int i = 0; i < N; i++) {
        truncated += (uint32_t)(int32_t)(doubles[i] * 1000.0);
    }
    printf("floats: total=%.4f hash=%08x doubles=%08x truncated=%08x\n", total,
           fnv1a(floats_x, sizeof floats_x), fnv1a(doubles, sizeof doubles), truncated);
}

static void byte_kernels(void) {
    for (int i = 0; i < N; i++) {
        pixels[i] = (uint8_t)next_random();
    }
    // Saturating brightness and a threshold count: u8 lanes.
    int above = 0;
    for (int i = 0; i < N; i++) {
        unsigned v = pixels[i] + 40u;
        pixels[i] = v > 255 ? 255 : (uint8_t)v;
        above += pixels[i] > 200;
    }
    for (int i = 0; i < N; i++) {
        samples[i] = (int16_t)((int8_t)pixels[i] * 3);
    }
    int32_t energy = 0;
    for (int i = 0; i < N; i++) {
        energy += samples[i] * samples[i] / 16;
    }
    printf("bytes: above=%d pixels=%08x samples=%08x energy=%d\n", above,
           fnv1a(pixels, sizeof pixels), fnv1a(samples, sizeof samples), energy);
}

static void explicit_simd(void) {
    // The same computation as wasm SIMD intrinsics and as plain C.
    uint32_t lanes[4] = {0};
#if defined(__wasm_simd128__)
    v128_t acc = wasm_i32x4_splat(0);
    for (int i = 0; i + 4 <= N; i += 4) {
        v128_t a = wasm_v128_load(&ints_a[i]);
        v128_t b = wasm_v128_load(&ints_b[i]);
        v128_t m = wasm_i32x4_max(a, b);
        v128_t shuffled = wasm_i32x4_shuffle(m, a, 3, 2, 5, 0);
        acc = wasm_i32x4_add(acc, wasm_v128_xor(shuffled, wasm_i32x4_shr(b, 2)));
    }
    wasm_v128_store(lanes, acc);
#else
    for (int i = 0; i + 4 <= N; i += 4) {
        int32_t m[4], a[4], b[4];
        for (int k = 0; k < 4; k++) {
            a[k] = ints_a[i + k];
            b[k] = ints_b[i + k];
            m[k] = a[k] > b[k] ? a[k] : b[k];
        }
        int32_t shuffled[4] = {m[3], m[2], a[1], m[0]};
        for (int k = 0; k < 4; k++) {
            lanes[k] += (uint32_t)(shuffled[k] ^ (b[k] >> 2));
        }
    }
#endif
    printf("simd: %08x %08x %08x %08x\n", lanes[0], lanes[1], lanes[2], lanes[3]);
}

static int compare_ints(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int compare_descending(const void *a, const void *b) {
    return compare_ints(b, a);
}

static void memory_and_sorting(void) {
    // Variable-sized copies and fills become memory.copy / memory.fill.
    for (int round = 0; round < 64; round++) {
        size_t len = next_random() % N;
        size_t from = next_random() % (N - len + 1);
        memset(scratch, round, sizeof scratch);
        memcpy(scratch + (round % 64), pixels + from, len);
        memmove(pixels + 1, pixels, N - 1 - (round % 7));
        state ^= fnv1a(scratch, sizeof scratch);
    }
    int (*comparators[2])(const void *, const void *) = {compare_ints, compare_descending};
    qsort(ints_c, N, sizeof ints_c[0], comparators[state & 1]);
    qsort(ints_a, N / 2, sizeof ints_a[0], comparators[(state >> 1) & 1]);
    printf("memory: state=%08x sorted=%08x half=%08x first=%d last=%d\n", state,
           fnv1a(ints_c, sizeof ints_c), fnv1a(ints_a, sizeof ints_a), ints_c[0],
           ints_c[N - 1]);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    for (int r = 0; r < rounds; r++) {
        integer_kernels();
        float_kernels();
        byte_kernels();
        explicit_simd();
        memory_and_sorting();
    }
    return 0;
}
