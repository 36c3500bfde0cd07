//! Kiln's runtime: maps artifacts, allocates instances, memories, tables and globals, calls
//! into compiled code and turns faults into traps. All of Kiln's unsafe code lives here,
//! in small modules; OS-specific code is confined to [`sys`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

#[cfg(not(all(unix, any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!("kiln-runtime supports 64-bit Unix on x86_64 and aarch64 only");

pub mod func;
pub mod instance;
pub mod loader;
pub mod memory;
pub mod store;
pub mod sys;
pub mod table;
pub mod traphandlers;
pub mod vmcontext;

pub use func::HostFn;
pub use loader::{LoadError, LoadedModule, Verification};
pub use memory::MemoryStrategy;
pub use store::{
    CallError, Extern, FuncId, GlobalId, InstanceId, InstantiateError, MemoryId, Store,
    StoreConfig, TableId, Trap,
};
pub use traphandlers::HostError;
pub use vmcontext::{VMFuncRef, ValRaw};
