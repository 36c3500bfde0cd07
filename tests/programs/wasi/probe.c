// One WASI behaviour per mode, each printing what it saw, for the hostile-guest and
// conformance tests of crates/kiln-cli/tests/wasi_hardening.rs. Modes that take a path work
// in the preopened directory /d.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

static long elapsed_ms(struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

// The descriptor of the preopened directory /d.
static int preopen(void) {
    int fd = open("/d", O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror("open /d");
        exit(2);
    }
    return fd;
}

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    return (int)n;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "env")) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
    } else if (!strcmp(mode, "list")) {
        // Every name in /d, as hexadecimal bytes.
        DIR *dir = opendir("/d");
        struct dirent *e;
        while ((e = readdir(dir))) {
            for (const unsigned char *c = (const unsigned char *)e->d_name; *c; c++)
                printf("%02x", *c);
            printf("\n");
        }
        closedir(dir);
    } else if (!strcmp(mode, "exit")) {
        exit(atoi(argv[2]));
    } else if (!strcmp(mode, "sleep")) {
        sleep(60);
        printf("woke up\n");
    } else if (!strcmp(mode, "read-stdin")) {
        char c;
        ssize_t n = read(0, &c, 1);
        printf("read %zd\n", n);
    } else if (!strcmp(mode, "open-fifo")) {
        int fd = open("/d/fifo", O_RDONLY);
        printf("opened %d\n", fd >= 0);
    } else if (!strcmp(mode, "poll-after-read")) {
        // Reads one byte of several that arrived together, then polls: the rest must show
        // as readable at once.
        char c;
        read(0, &c, 1);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct pollfd fds = {.fd = 0, .events = POLLIN};
        int n = poll(&fds, 1, 3000);
        printf("first %c, ready %d, waited under 1s: %d\n", c, n, elapsed_ms(&t0) < 1000);
    } else if (!strcmp(mode, "readlink")) {
        char buf[256];
        ssize_t n = readlink(argv[2], buf, sizeof buf - 1);
        if (n < 0) {
            printf("readlink %s: errno %s\n", argv[2], errno == EPERM ? "EPERM" : strerror(errno));
        } else {
            buf[n] = 0;
            printf("readlink %s: %s\n", argv[2], buf);
        }
    } else if (!strcmp(mode, "append-flags")) {
        // wasi-testsuite fd_flags_set: appending until APPEND is cleared, then in place.
        int fd = open("/d/append.txt", O_CREAT | O_WRONLY | O_APPEND, 0644);
        write(fd, "aaaa", 4);
        lseek(fd, 0, SEEK_SET);
        write(fd, "bbbb", 4);
        __wasi_fdstat_t stat;
        __wasi_fd_fdstat_get(fd, &stat);
        __wasi_errno_t e = __wasi_fd_fdstat_set_flags(fd, stat.fs_flags & ~__WASI_FDFLAGS_APPEND);
        lseek(fd, 0, SEEK_SET);
        write(fd, "cc", 2);
        close(fd);
        char buf[64];
        read_file("/d/append.txt", buf, sizeof buf);
        printf("set_flags %d: %s\n", e, buf);
    } else if (!strcmp(mode, "trunc-append")) {
        // wasi-testsuite pwrite-with-append.
        int fd = open("/d/trunc.txt", O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
        if (fd < 0) {
            printf("open failed: %s\n", strerror(errno));
            return 0;
        }
        write(fd, "new", 3);
        close(fd);
        char buf[64];
        read_file("/d/trunc.txt", buf, sizeof buf);
        printf("contents: %s\n", buf);
    } else if (!strcmp(mode, "open-dir-for-write")) {
        // wasi-testsuite path_open_preopen: a directory opened with the write right.
        __wasi_fd_t fd;
        __wasi_errno_t e = __wasi_path_open(preopen(), 0, ".", __WASI_OFLAGS_DIRECTORY,
                                            __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE, 0,
                                            0, &fd);
        printf("errno %s\n", e == __WASI_ERRNO_ISDIR ? "ISDIR" : e == 0 ? "none" : "other");
    } else if (!strcmp(mode, "sock")) {
        // wasi-testsuite sock_shutdown-not_sock.
        int r = shutdown(1, SHUT_RD);
        printf("shutdown %d: %s\n", r, errno == ENOTSOCK ? "ENOTSOCK" : strerror(errno));
    } else if (!strcmp(mode, "bad-read")) {
        // A read into memory that does not exist must fail and consume nothing.
        int fd = open("/d/data.txt", O_RDONLY);
        __wasi_iovec_t iov = {.buf = (uint8_t *)0xfffffff0u, .buf_len = 8};
        __wasi_size_t n;
        __wasi_errno_t e = __wasi_fd_read(fd, &iov, 1, &n);
        char buf[64] = {0};
        ssize_t r = read(fd, buf, sizeof buf - 1);
        printf("bad read errno %d, then read %zd: %s\n", e, r, buf);
    } else if (!strcmp(mode, "bad-open")) {
        // path_open with nowhere to put the descriptor must create nothing and leak no fd.
        int dir = preopen();
        int before = open("/d/data.txt", O_RDONLY);
        close(before);
        __wasi_errno_t e = __wasi_path_open(dir, 0, "created.txt", __WASI_OFLAGS_CREAT,
                                            __WASI_RIGHTS_FD_WRITE, 0, 0,
                                            (__wasi_fd_t *)0xfffffffcu);
        int after = open("/d/data.txt", O_RDONLY);
        printf("bad open errno %d, created %d, same fd %d\n", e,
               access("/d/created.txt", F_OK) == 0, after == before);
    } else if (!strcmp(mode, "random-without-fds")) {
        // Descriptors used up: random bytes must still come.
        int opened = 0;
        while (open("/d/data.txt", O_RDONLY) >= 0 && opened < 100000) opened++;
        unsigned char bytes[32] = {0};
        int r = getentropy(bytes, sizeof bytes);
        int nonzero = 0;
        for (size_t i = 0; i < sizeof bytes; i++) nonzero |= bytes[i];
        printf("opened many: %d, getentropy %d, nonzero %d\n", opened > 100, r, nonzero != 0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
