// The program of the README's first command: greets, then prints a file from the directory
// it was given with `--dir`. Built with
//   clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug hello.c -o hello.wasm
#include <stdio.h>

int main(int argc, char **argv) {
    printf("Hello from Kiln!\n");
    if (argc < 2) {
        return 0;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        printf("%s: %s", argv[1], line);
    }
    fclose(f);
    return 0;
}
