//! Kiln: a WebAssembly runtime whose compiled modules load from a zero-copy archive.
//!
//! An [`Engine`] compiles WebAssembly (binary or text) into an artifact with Cranelift; a
//! [`Module`] is a loaded artifact, which can also be written to disk with
//! [`Module::serialize`] and mapped back with [`Module::deserialize_file`] without parsing
//! its metadata. A [`Store`] owns everything instances create; a [`Linker`] resolves imports
//! by name.
//!
//! ```
//! use kiln::{Engine, Instance, Linker, Module, Store};
//!
//! # fn main() -> kiln::Result<()> {
//! let engine = Engine::default();
//! let module = Module::new(
//!     &engine,
//!     r#"(module
//!          (import "host" "double" (func $double (param i32) (result i32)))
//!          (func (export "add_doubled") (param i32 i32) (result i32)
//!            (call $double (i32.add (local.get 0) (local.get 1)))))"#,
//! )?;
//! let mut store = Store::new(&engine, ());
//! let mut linker = Linker::new(&engine);
//! linker.func_wrap("host", "double", |x: i32| x * 2)?;
//! let instance: Instance = linker.instantiate(&mut store, &module)?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add_doubled")?;
//! assert_eq!(add.call(&mut store, (3, 4))?, 14);
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod cached;
mod engine;
mod error;
mod externals;
mod externref;
mod func;
mod instance;
mod linker;
mod module;
mod store;
mod values;

pub use engine::{Config, Engine};
pub use error::{Error, FrameInfo, Result, Trap};
pub use externals::{Extern, Global, Memory, Table};
pub use externref::ExternRef;
pub use func::{Func, IntoFunc, TypedFunc};
pub use instance::Instance;
pub use kiln_cache::config::default_directory as default_cache_directory;
pub use kiln_cache::{Cache, CacheConfig};
pub use linker::Linker;
pub use module::{ExportType, ExternType, ImportType, Module, is_artifact_file};
pub use store::{AsContext, AsContextMut, Caller, Store, StoreContext, StoreContextMut};
pub use values::{Val, WasmParams, WasmResults, WasmRet, WasmTy};

pub use kiln_artifact::ArtifactError;
pub use kiln_compiler::CompileError;
pub use kiln_runtime::StoreLimits;

pub use kiln_artifact::{
    ArtifactKey, BoundsChecks, CpuLevel, CpuLevelError, FuncType, GlobalType, KeyError, MemoryType,
    OptLevel, Proposal, Proposals, RefType, TableType, TrapCode, ValType,
};
