// Exercises WASI preview 1 files through a preopened directory, as a C program sees them
// through wasi-libc. Run as `files GUEST_DIR`; prints one line per step. The test checks
// the output and the files left on the host.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char path_buf[512];

static const char *at(const char *dir, const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

static void report(const char *what, int ok) {
    if (ok) {
        printf("%s: ok\n", what);
    } else {
        printf("%s: %s\n", what, strerror(errno));
    }
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: files DIR\n");
        return 2;
    }
    const char *dir = argv[1];

    // Read a file the host put there.
    FILE *in = fopen(at(dir, "input.txt"), "r");
    if (!in) {
        report("open input.txt", 0);
        return 1;
    }
    char line[256];
    while (fgets(line, sizeof line, in)) {
        printf("input: %s", line);
    }
    fclose(in);

    // Write, append, and read back with a seek.
    FILE *out = fopen(at(dir, "output.txt"), "w");
    fprintf(out, "written by wasm\n");
    fclose(out);
    out = fopen(at(dir, "output.txt"), "a");
    fprintf(out, "appended\n");
    fclose(out);
    int fd = open(at(dir, "output.txt"), O_RDONLY);
    lseek(fd, 11, SEEK_SET);
    char tail[64] = {0};
    ssize_t n = read(fd, tail, sizeof tail - 1);
    printf("read after seek: %zd bytes: %s", n, tail);
    close(fd);

    struct stat st;
    report("stat output.txt", stat(at(dir, "output.txt"), &st) == 0);
    printf("size: %lld, regular: %d\n", (long long)st.st_size, S_ISREG(st.st_mode));

    // Directories, renames and removals.
    report("mkdir sub", mkdir(at(dir, "sub"), 0755) == 0);
    report("mkdir sub again", mkdir(at(dir, "sub"), 0755) == 0);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/output.txt", dir);
    snprintf(to, sizeof to, "%s/sub/moved.txt", dir);
    report("rename output.txt -> sub/moved.txt", rename(from, to) == 0);
    report("rmdir non-empty sub", rmdir(at(dir, "sub")) == 0);
    FILE *tmp = fopen(at(dir, "sub/temp.txt"), "w");
    fclose(tmp);
    report("unlink sub/temp.txt", unlink(at(dir, "sub/temp.txt")) == 0);
    report("unlink missing", unlink(at(dir, "sub/temp.txt")) == 0);

    // List the directory, sorted (hosts list in any order).
    DIR *d = opendir(dir);
    struct dirent *e;
    char *names[64];
    int count = 0;
    while (d && (e = readdir(d)) && count < 64) {
        names[count++] = strdup(e->d_name);
    }
    if (d) {
        closedir(d);
    }
    qsort(names, count, sizeof names[0], compare_names);
    printf("listing:");
    for (int i = 0; i < count; i++) {
        printf(" %s", names[i]);
    }
    printf("\n");

    // Times, links and positioned I/O.
    struct timespec times[2] = {{1000000000, 5}, {1234567890, 250000000}};
    report("utimensat sub/moved.txt", utimensat(AT_FDCWD, at(dir, "sub/moved.txt"), times, 0) == 0);
    report("stat sub/moved.txt", stat(at(dir, "sub/moved.txt"), &st) == 0);
    printf("mtime: %lld.%09ld atime: %lld.%09ld\n", (long long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
    snprintf(from, sizeof from, "%s/sub/moved.txt", dir);
    snprintf(to, sizeof to, "%s/hard.txt", dir);
    report("link sub/moved.txt -> hard.txt", link(from, to) == 0);
    report("symlink sub/moved.txt <- soft.txt", symlink("sub/moved.txt", at(dir, "soft.txt")) == 0);
    char target[128] = {0};
    ssize_t len = readlink(at(dir, "soft.txt"), target, sizeof target - 1);
    printf("readlink soft.txt: %zd %s\n", len, target);
    fd = open(at(dir, "soft.txt"), O_RDWR);
    report("open soft.txt read-write", fd >= 0);
    report("pwrite at 8", pwrite(fd, "WASM", 4, 8) == 4);
    char head[8] = {0};
    report("pread at 0", pread(fd, head, 7, 0) == 7);
    printf("pread: %s\n", head);
    close(fd);
    fd = open(at(dir, "hard.txt"), O_RDONLY);
    report("write to a read-only descriptor", write(fd, "x", 1) == 1);
    close(fd);
    report("stat hard.txt", stat(at(dir, "hard.txt"), &st) == 0);
    printf("hard.txt links: %lld\n", (long long)st.st_nlink);

    // A directory too large for one fd_readdir call: the listing continues by cookie.
    report("mkdir many", mkdir(at(dir, "many"), 0755) == 0);
    for (int i = 0; i < 1500; i++) {
        char name[64];
        snprintf(name, sizeof name, "many/entry-with-a-long-name-%04d", i);
        FILE *f = fopen(at(dir, name), "w");
        fclose(f);
    }
    d = opendir(at(dir, "many"));
    int entries = 0;
    while (d && (e = readdir(d))) {
        entries++;
    }
    if (d) {
        closedir(d);
    }
    printf("many: %d entries\n", entries);

    // Attempts to leave the directory.
    report("open ../outside.txt", open(at(dir, "../outside.txt"), O_RDONLY) >= 0);
    report("open /etc/passwd", open("/etc/passwd", O_RDONLY) >= 0);
    report("create ../escape.txt", open(at(dir, "../escape.txt"), O_WRONLY | O_CREAT, 0644) >= 0);
    report("open link-out/outside.txt", open(at(dir, "link-out/outside.txt"), O_RDONLY) >= 0);
    report("open escape-link", open(at(dir, "escape-link"), O_RDONLY) >= 0);
    snprintf(to, sizeof to, "%s/../stolen.txt", dir);
    report("rename sub/moved.txt -> ../stolen.txt", rename(at(dir, "sub/moved.txt"), to) == 0);
    report("mkdir ../evil", mkdir(at(dir, "../evil"), 0755) == 0);

    // Clocks and random bytes.
    struct timespec mono1, mono2, real;
    clock_gettime(CLOCK_MONOTONIC, &mono1);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &mono2);
    clock_gettime(CLOCK_REALTIME, &real);
    long long slept = (mono2.tv_sec - mono1.tv_sec) * 1000000000LL + (mono2.tv_nsec - mono1.tv_nsec);
    printf("slept at least 20ms: %d, realtime after 2020: %d\n", slept >= 20000000,
           real.tv_sec > 1577836800);
    unsigned char random_bytes[32] = {0};
    arc4random_buf(random_bytes, sizeof random_bytes);
    int nonzero = 0;
    for (int i = 0; i < 32; i++) {
        nonzero += random_bytes[i] != 0;
    }
    printf("random bytes: %d of 32 non-zero\n", nonzero > 20 ? 32 : nonzero);
    return 0;
}
