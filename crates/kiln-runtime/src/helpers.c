// Entry into WebAssembly with a jump buffer, and the jump back out.
//
// `kiln_call_wasm` sets a jump point with sigsetjmp (without saving the signal mask: the
// runtime's handlers use SA_NODEFER, so no signal stays blocked after a jump out of one),
// publishes the buffer through `jmp_slot_out`, and calls the array-to-wasm trampoline. It
// returns 0 when the trampoline returns normally and 1 when `kiln_unwind` jumped back.

#include <setjmp.h>
#include <stddef.h>

typedef void (*kiln_trampoline)(void *, void *, const void *, void *);

int kiln_call_wasm(void **jmp_slot_out, kiln_trampoline tramp, void *callee_vmctx,
                   void *caller_vmctx, const void *body, void *values) {
    sigjmp_buf buf;
    if (sigsetjmp(buf, 0) != 0) {
        return 1;
    }
    *(void *volatile *)jmp_slot_out = (void *)&buf;
    tramp(callee_vmctx, caller_vmctx, body, values);
    return 0;
}

void kiln_unwind(void *buf) {
    siglongjmp(*(sigjmp_buf *)buf, 1);
}
