// A minimal C program for `kiln run`: built with
//   clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug hello.c -o hello.wasm
#include <stdio.h>

int main(void) {
    printf("Hello from Kiln!\n");
    return 0;
}
