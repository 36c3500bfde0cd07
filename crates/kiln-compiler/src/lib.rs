//! Kiln's compiler: validates WebAssembly, translates every function to Cranelift IR with
//! Kiln's own translator, compiles the functions in parallel and links them into one text
//! section, then writes the artifact (see `kiln-artifact`).
//!
//! The public surface is small: [`compile`] turns wasm bytes into artifact bytes, and
//! [`compat_info`] says what the header of such an artifact will contain, so an engine can
//! check artifacts made elsewhere.

use kiln_artifact::{ArtifactError, CodegenSettings, CompatInfo};

/// What to compile for and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileConfig {
    /// Target triple (e.g. `aarch64-unknown-linux-gnu`); `None` means the host.
    pub target: Option<String>,
    /// Settings that change the generated code.
    pub settings: CodegenSettings,
    /// Number of compilation threads; `None` uses rayon's global pool. The output does not
    /// depend on it.
    pub threads: Option<usize>,
}

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The bytes are not a valid WebAssembly module (the message is wasmparser's).
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// The module uses a feature Kiln does not support yet.
    #[error("unsupported WebAssembly feature: {0}")]
    Unsupported(String),
    /// The target triple is unknown or not supported.
    #[error("unsupported target `{0}`")]
    Target(String),
    /// Cranelift failed to compile a function.
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// The artifact could not be written.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// The triple of the machine Kiln runs on.
pub fn host_triple() -> String {
    todo!("provided by the compiler implementation")
}

/// The compatibility fields an artifact compiled with `config` carries in its header.
pub fn compat_info(config: &CompileConfig) -> Result<CompatInfo, CompileError> {
    let _ = config;
    todo!("provided by the compiler implementation")
}

/// Validates and compiles `wasm` into artifact bytes. Deterministic: the same bytes and
/// config give the same artifact on any host and with any thread count.
pub fn compile(wasm: &[u8], config: &CompileConfig) -> Result<Vec<u8>, CompileError> {
    let _ = (wasm, config);
    todo!("provided by the compiler implementation")
}
