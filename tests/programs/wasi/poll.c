// Waits for stdin with poll() (poll_oneoff with a clock and an fd subscription) and
// reports whether it became readable before the timeout, then echoes what it read.
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pollfd fds = {.fd = 0, .events = POLLIN};
    int n = poll(&fds, 1, 300);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (n == 0) {
        printf("timeout after at least 300ms: %d\n", waited_ms >= 290);
        return 0;
    }
    char buf[64] = {0};
    ssize_t r = read(0, buf, sizeof buf - 1);
    printf("ready: %d, read %zd: %s", n, r, buf);
    return 0;
}
