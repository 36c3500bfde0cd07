//! Entering WebAssembly and leaving it abnormally: the per-thread chain of activations, the
//! process-wide signal handlers that turn faults in wasm code into unwinds, and the unwind
//! that host functions use to report errors.

use std::any::Any;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use crate::sys;
use crate::vmcontext::{VMStoreContext, ValRaw};

/// The array-to-wasm trampoline's signature.
type Trampoline = unsafe extern "C" fn(*mut u8, *mut u8, *const u8, *mut ValRaw);

unsafe extern "C" {
    /// Sets a jump point, publishes it through `jmp_slot_out`, calls `tramp`; returns 0 on
    /// normal return and 1 after `kiln_unwind`.
    fn kiln_call_wasm(
        jmp_slot_out: *mut *mut c_void,
        tramp: Trampoline,
        callee_vmctx: *mut u8,
        caller_vmctx: *mut u8,
        body: *const u8,
        values: *mut ValRaw,
    ) -> c_int;
    /// Jumps back to the `kiln_call_wasm` that published `buf`.
    fn kiln_unwind(buf: *mut c_void) -> !;
}

/// An error returned by a host function.
pub type HostError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call into wasm ended abnormally.
pub enum UnwindReason {
    /// A fault or trap instruction in wasm code.
    Trap {
        /// The faulting program counter.
        pc: usize,
        /// The faulting data address (SIGSEGV/SIGBUS), if any.
        fault_address: Option<usize>,
        /// The signal number.
        signal: c_int,
        /// Return addresses of the wasm callers, innermost first.
        callers: Vec<usize>,
    },
    /// A host function returned an error.
    Host(HostError),
    /// A host function panicked; the payload is re-raised on the host side.
    Panic(Box<dyn Any + Send>),
}

impl std::fmt::Debug for UnwindReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnwindReason::Trap {
                pc,
                callers: _,
                fault_address,
                signal,
            } => write!(
                f,
                "Trap {{ pc: {pc:#x}, fault: {fault_address:x?}, signal: {signal} }}"
            ),
            UnwindReason::Host(e) => write!(f, "Host({e})"),
            UnwindReason::Panic(_) => write!(f, "Panic"),
        }
    }
}

/// One host→wasm entry on this thread. Lives in the frame of [`invoke`]; only accessed
/// through raw pointers once published, because the signal handler and [`raise`] write it.
struct Activation {
    /// The jump buffer in `kiln_call_wasm`'s frame; null until published.
    jmp_buf: *mut c_void,
    /// The enclosing activation on this thread.
    prev: *mut Activation,
    /// The code ranges of the store being run.
    code_ranges: *const Vec<(usize, usize)>,
    /// Set by the signal handler.
    trap_pc: usize,
    /// Return addresses of the wasm frames below the trapping one, innermost first.
    trap_frames: [usize; MAX_FRAMES],
    trap_frame_count: usize,
    trap_fault: usize,
    trap_signal: c_int,
    /// Set by [`raise`].
    reason: Option<UnwindReason>,
}

/// How many caller frames a trap's backtrace records.
const MAX_FRAMES: usize = 32;

/// Collects the return addresses of the wasm callers of the trapping frame by following the
/// frame-pointer chain (all generated code keeps frame pointers). Runs in the signal
/// handler, so it allocates nothing and reads only words that lie in this thread's stack
/// between the interrupted stack pointer and the activation (which lives in the frame of
/// [`invoke`], above every wasm frame of this entry); it stops at the first return address
/// outside the store's code, the trampoline's return into the host.
///
/// # Safety
/// `act` must be the live innermost activation of this thread and `code_ranges` its store's.
unsafe fn walk_frames(act: *mut Activation, mut fp: usize, sp: usize) {
    let top = act as usize;
    let mut count = 0;
    // SAFETY: the caller guarantees `act` and its code ranges are live.
    let ranges = unsafe { &*(*act).code_ranges };
    while count < MAX_FRAMES
        && fp >= sp
        && fp.is_multiple_of(8)
        && fp.checked_add(16).is_some_and(|end| end <= top)
    {
        // SAFETY: `fp .. fp + 16` lies in this thread's stack between the interrupted stack
        // pointer and the activation, which is mapped and not being written meanwhile.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if !ranges.iter().any(|&(start, end)| ret >= start && ret < end) {
            break;
        }
        // SAFETY: `act` is live (see above).
        unsafe { (*act).trap_frames[count] = ret };
        count += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    // SAFETY: as above.
    unsafe { (*act).trap_frame_count = count };
}

thread_local! {
    static CURRENT: Cell<*mut Activation> = const { Cell::new(std::ptr::null_mut()) };
}

static PREVIOUS_HANDLERS: OnceLock<[libc::sigaction; 4]> = OnceLock::new();

/// Installs the process-wide trap handlers once.
fn init_handlers() {
    PREVIOUS_HANDLERS.get_or_init(|| match sys::install_handlers(trap_handler) {
        Ok(prev) => prev,
        Err(e) => panic!("kiln: cannot install signal handlers: {e}"),
    });
}

extern "C" fn trap_handler(sig: c_int, info: *mut libc::siginfo_t, ucontext: *mut c_void) {
    let act = CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if !act.is_null() {
        // SAFETY: `ucontext` is the third argument of this SA_SIGINFO handler.
        let pc = unsafe { sys::ucontext_pc(ucontext) };
        // SAFETY: a non-null `CURRENT` points to a live `Activation` in a frame below us on
        // this thread's stack (it is reset before that frame returns); its `code_ranges`
        // points into the store that is running.
        let ours = unsafe {
            !(*act).jmp_buf.is_null()
                && !(*act).code_ranges.is_null()
                && (*(*act).code_ranges)
                    .iter()
                    .any(|&(start, end)| pc >= start && pc < end)
        };
        if ours {
            let fault = if sig == libc::SIGSEGV || sig == libc::SIGBUS {
                // SAFETY: the kernel fills `si_addr` for these signals.
                unsafe { (*info).si_addr() as usize }
            } else {
                0
            };
            // SAFETY: as above, `act` is live; its jump buffer belongs to the
            // `kiln_call_wasm` frame of this activation, which is still on the stack, and
            // only wasm frames (which hold no destructors) lie between it and us.
            unsafe {
                (*act).trap_pc = pc;
                (*act).trap_fault = fault;
                (*act).trap_signal = sig;
                let (fp, sp) = sys::ucontext_fp_sp(ucontext);
                walk_frames(act, fp, sp);
                kiln_unwind((*act).jmp_buf);
            }
        }
    }
    let Some(previous) = PREVIOUS_HANDLERS.get() else {
        return;
    };
    if let Some(i) = sys::TRAP_SIGNALS.iter().position(|&s| s == sig) {
        // SAFETY: we are in a signal handler with its own arguments, and `previous[i]` is
        // the action installed for `sig` before ours.
        unsafe { sys::chain_signal(&previous[i], sig, info, ucontext) };
    }
}

/// Calls the array-to-wasm trampoline `tramp` with a fresh activation.
///
/// # Safety
/// `ctx` must be the running store's context, valid for the whole call, with `code_ranges`
/// set; `tramp`, `callee`, `caller` and `body` must form a valid call of a compiled function
/// of that store, and `values` must hold enough slots for its parameters and results.
pub unsafe fn invoke(
    ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    tramp: *const u8,
    callee: *mut u8,
    caller: *mut u8,
    body: *const u8,
    values: *mut ValRaw,
) -> Result<(), UnwindReason> {
    init_handlers();
    if let Err(e) = sys::ensure_alt_stack() {
        panic!("kiln: cannot install an alternate signal stack: {e}");
    }
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    // SAFETY: the caller guarantees `ctx` is valid.
    let outermost = unsafe { (*ctx).stack_limit == 0 };
    if outermost {
        // SAFETY: as above.
        unsafe { (*ctx).stack_limit = sp.saturating_sub(max_wasm_stack).max(1) };
    }
    let mut activation = Activation {
        jmp_buf: std::ptr::null_mut(),
        prev: CURRENT.get(),
        // SAFETY: as above.
        code_ranges: unsafe { (*ctx).code_ranges },
        trap_pc: 0,
        trap_frames: [0; MAX_FRAMES],
        trap_frame_count: 0,
        trap_fault: 0,
        trap_signal: 0,
        reason: None,
    };
    let act: *mut Activation = &raw mut activation;
    CURRENT.set(act);
    // SAFETY: `tramp` is the address of an array-to-wasm trampoline, which has exactly the
    // `Trampoline` signature (the caller's guarantee).
    let tramp: Trampoline = unsafe { std::mem::transmute::<*const u8, Trampoline>(tramp) };
    // SAFETY: the caller guarantees the call is valid; `act` outlives the call and the
    // jump-buffer slot is only read while `kiln_call_wasm`'s frame is live (CURRENT is
    // reset right after it returns).
    let rc =
        unsafe { kiln_call_wasm(&raw mut (*act).jmp_buf, tramp, callee, caller, body, values) };
    // SAFETY: `act` is still live; nothing else refers to it after CURRENT is restored.
    let (prev, reason, pc, fault, signal, frames) = unsafe {
        (
            (*act).prev,
            (*act).reason.take(),
            (*act).trap_pc,
            (*act).trap_fault,
            (*act).trap_signal,
            (&(*act).trap_frames)[..(*act).trap_frame_count.min(MAX_FRAMES)].to_vec(),
        )
    };
    CURRENT.set(prev);
    if outermost {
        // SAFETY: `ctx` is valid (caller's guarantee).
        unsafe { (*ctx).stack_limit = 0 };
    }
    if rc == 0 {
        return Ok(());
    }
    Err(reason.unwrap_or(UnwindReason::Trap {
        pc,
        fault_address: (fault != 0).then_some(fault),
        signal,
        callers: frames,
    }))
}

/// Stores `reason` in the innermost activation and unwinds to its entry.
///
/// # Safety
/// Must be called from a host function invoked by wasm on this thread (so an activation
/// with a published jump buffer exists), and every frame between here and that entry must
/// hold nothing that needs dropping.
pub unsafe fn raise(reason: UnwindReason) -> ! {
    let act = CURRENT.get();
    // SAFETY: the caller guarantees a live activation; a null one is a runtime bug that we
    // turn into an abort rather than undefined behaviour.
    unsafe {
        if act.is_null() || (*act).jmp_buf.is_null() {
            std::process::abort();
        }
        (*act).reason = Some(reason);
        kiln_unwind((*act).jmp_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs this test binary again with `mode`, returning the signal that killed it.
    fn child_signal(test: &str, mode: &str) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("KILN_CHILD_MODE", mode)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        status.signal()
    }

    #[test]
    fn foreign_signals_are_not_swallowed() {
        match std::env::var("KILN_CHILD_MODE").as_deref() {
            Ok("raise") => {
                init_handlers();
                // SAFETY: raising a signal has no memory-safety preconditions.
                unsafe { libc::raise(libc::SIGILL) };
                std::process::exit(0);
            }
            Ok("fault") => {
                init_handlers();
                let r = sys::Reservation::new(4096).unwrap();
                // SAFETY: deliberately faults on a PROT_NONE page: the process must die.
                unsafe { r.as_ptr().cast::<u64>().write_volatile(1) };
                std::process::exit(0);
            }
            _ => {}
        }
        let test = "traphandlers::tests::foreign_signals_are_not_swallowed";
        assert_eq!(child_signal(test, "raise"), Some(libc::SIGILL));
        assert_eq!(child_signal(test, "fault"), Some(libc::SIGSEGV));
    }
}
