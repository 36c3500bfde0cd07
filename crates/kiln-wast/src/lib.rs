//! Runs WebAssembly spec scripts (`.wast`) against Kiln.
//!
//! Every module of a script is compiled, serialized to an artifact and loaded back with the
//! checked [`Module::deserialize`](kiln::Module::deserialize) before it is instantiated, so
//! the spec tests exercise the artifact round trip as much as the code generator.
//!
//! ```
//! let runner = kiln_wast::WastRunner::new(kiln::Engine::default());
//! let report = runner.run("example.wast", r#"
//!     (module (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//!     (assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
//! "#);
//! assert_eq!((report.passed(), report.failed()), (2, 0));
//! ```

#![warn(missing_docs)]

mod outcome;
mod runner;
mod script;
mod spectest;
mod values;

pub use outcome::{Failure, Outcome, Report};
pub use runner::WastRunner;
pub use spectest::define_spectest;
