//! What a compiled Kiln module is.
//!
//! An artifact is one file: a fixed [`header`], the module's metadata ([`ModuleInfo`]) as an
//! rkyv archive that the loader reads in place, the page-aligned text section and the
//! data-segment bytes. This crate defines those types, the instance-context layout that
//! generated code and runtime share ([`vmoffsets`]), and the checks that make loading
//! untrusted bytes safe ([`validate`]). It knows nothing of Cranelift.
//!
//! The rkyv format is pinned by the workspace's feature selection: little-endian,
//! 32-bit relative pointers, aligned primitives. The same `ModuleInfo` therefore archives
//! to the same bytes on every host.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

pub mod artifact;
pub mod cpu;
pub mod entity;
pub mod error;
pub mod exports;
pub mod header;
pub mod module;
pub mod seal;
pub mod settings;
pub mod source;
pub mod trap;
pub mod types;
pub mod validate;
pub mod vmoffsets;

pub use artifact::{
    ArtifactParts, access_checked, access_unchecked, build_artifact, open_checked, read_metadata,
    verify_checksum,
};
pub use cpu::{CpuLevel, CpuLevelError};
pub use entity::*;
pub use error::ArtifactError;
pub use exports::{ArchivedExport, ArchivedExports, Export, Exports};
pub use header::{CompatInfo, HEADER_SIZE, Header, SectionRange};
pub use module::*;
pub use seal::{ArtifactKey, KeyError};
pub use settings::{
    BoundsChecks, CodegenSettings, GUARD_RESERVATION, OptLevel, Proposal, Proposals,
};
pub use source::{ArchivedSourceHashes, SourceHashes};
pub use trap::{ArchivedTrapCode, ArchivedTrapTable, TrapCode, TrapRecord, TrapTable};
pub use types::*;
pub use vmoffsets::{Builtin, VMCounts, VMHeaderOffsets, VMOffsets};
