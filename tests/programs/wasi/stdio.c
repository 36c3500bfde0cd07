// Arguments, environment, stdin to stdout, and the exit status, through WASI.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++) {
        printf("argv[%d]=[%s]\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    printf("GREETING=[%s]\n", greeting ? greeting : "(unset)");
    printf("HOME set: %d\n", getenv("HOME") != NULL);
    char buf[256];
    size_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (buf[i] >= 'a' && buf[i] <= 'z') {
                buf[i] -= 32;
            }
        }
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    printf("stdin bytes: %zu\n", total);
    fprintf(stderr, "to stderr\n");
    const char *status = getenv("EXIT_STATUS");
    return status ? atoi(status) : 0;
}
