//! Kiln's runtime: maps artifacts, allocates instances, memories, tables and globals, calls
//! into compiled code and turns faults into traps. All of Kiln's unsafe code lives here,
//! in small modules; OS-specific code is confined to [`sys`].
//!
//! * [`loader`] maps an artifact file (reads a small one, or copies bytes into an anonymous
//!   mapping), checks its header, compatibility and host CPU features, in checked mode also
//!   its checksum and metadata, and makes the text section executable (mapping the file
//!   range, or copying when the filesystem forbids executable mappings).
//! * [`store`] owns everything: instances ([`instance`]) whose `VMContext` is laid out by
//!   `kiln_artifact::VMOffsets`, memories ([`memory`], a reservation whose accessible prefix
//!   grows in place), tables ([`table`]), globals and host functions, all named by the plain
//!   numbers of [`ids`]. It is the top layer: what needs a store (calls, host functions,
//!   the builtins generated code calls, instantiation) lives under it, and nothing outside
//!   it names a store, so the other modules depend on each other without a cycle.
//! * [`traphandlers`] enters wasm through the type's array-to-wasm trampoline from a small C
//!   helper that holds a `sigsetjmp` buffer. Each entry pushes an activation on a per-thread
//!   chain; the process-wide SIGSEGV/SIGBUS/SIGILL/SIGFPE handler (running on a per-thread
//!   alternate stack) checks that the faulting pc is in the running store's code and jumps
//!   back to the innermost entry, where the pc becomes a [`Trap`] through the module's trap
//!   records. Host functions called by wasm catch their errors and panics, store them in the
//!   activation and unwind the same way once their own frames are done.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("kiln-runtime supports Linux on x86_64 and aarch64 only");

pub mod bulk;
pub mod code_mappings;
pub mod ids;
pub mod instance;
pub mod limits;
pub mod loader;
pub mod memory;
pub mod store;
pub mod sys;
pub mod table;
pub mod table_words;
pub mod traphandlers;
pub mod vmcontext;

pub use limits::StoreLimits;
pub use loader::{LoadError, LoadedModule, Verification};
pub use memory::MemoryStrategy;
pub use store::host_func::{HostFn, HostFuncDef};
pub use store::{
    CallError, Extern, FrameInfo, FuncId, GlobalId, InstanceId, InstantiateError, MemoryId, Store,
    StoreConfig, TableId, Trap,
};
pub use traphandlers::HostError;
pub use vmcontext::{VMFuncRef, ValRaw};
