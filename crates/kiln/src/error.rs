//! Errors and traps.

use std::path::PathBuf;

use kiln_artifact::TrapCode;
pub use kiln_runtime::FrameInfo;

/// Kiln's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Kiln.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid or unsupported WebAssembly, or a bad target.
    #[error("compilation failed: {0}")]
    Compile(#[from] kiln_compiler::CompileError),
    /// A bad, corrupt or incompatible artifact.
    #[error("cannot load artifact: {0}")]
    Artifact(#[from] kiln_artifact::ArtifactError),
    /// WebAssembly trapped (also during instantiation).
    #[error("{0}")]
    Trap(#[from] Trap),
    /// An import could not be resolved or has the wrong type.
    #[error("link error: {0}")]
    Link(String),
    /// Instantiation failed for lack of resources.
    #[error("instantiation failed: {0}")]
    Instantiation(String),
    /// A host function returned an error.
    #[error("host function failed: {0}")]
    Host(Box<dyn std::error::Error + Send + Sync>),
    /// A file could not be read or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Text that did not parse as WAT.
    #[error("invalid WebAssembly text: {0}")]
    Wat(String),
    /// Wrong argument or result types, or a misused item.
    #[error("type mismatch: {0}")]
    Type(String),
    /// An artifact key could not be read.
    #[error(transparent)]
    Key(#[from] kiln_artifact::KeyError),
    /// A host access to linear memory out of bounds.
    #[error("memory access out of bounds: {0}")]
    MemoryAccess(String),
}

impl Error {
    /// The trap, if this error is one.
    pub fn as_trap(&self) -> Option<&Trap> {
        match self {
            Error::Trap(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn from_host(e: kiln_runtime::HostError) -> Error {
        match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::Host(e),
        }
    }

    pub(crate) fn from_call(e: kiln_runtime::CallError) -> Error {
        match e {
            kiln_runtime::CallError::Trap(t) => Error::Trap(t.into()),
            kiln_runtime::CallError::Host(h) => Error::from_host(h),
        }
    }

    pub(crate) fn from_load(e: kiln_runtime::LoadError) -> Error {
        match e {
            kiln_runtime::LoadError::Artifact(a) => Error::Artifact(a),
            kiln_runtime::LoadError::Io { path, source } => Error::Io { path, source },
        }
    }
}

/// WebAssembly stopped abnormally: the trap code and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    code: TrapCode,
    func_index: Option<u32>,
    func_name: Option<String>,
    wasm_offset: Option<u32>,
    backtrace: Vec<FrameInfo>,
}

impl Trap {
    /// A trap with only a code.
    pub fn new(code: TrapCode) -> Trap {
        Trap {
            code,
            func_index: None,
            func_name: None,
            wasm_offset: None,
            backtrace: Vec::new(),
        }
    }

    /// Why execution stopped.
    pub fn code(&self) -> TrapCode {
        self.code
    }

    /// The function that trapped, if known.
    pub fn func_index(&self) -> Option<u32> {
        self.func_index
    }

    /// That function's name from the name section, if it has one.
    pub fn func_name(&self) -> Option<&str> {
        self.func_name.as_deref()
    }

    /// Offset of the trapping instruction in the module's bytes, if known.
    pub fn wasm_offset(&self) -> Option<u32> {
        self.wasm_offset
    }

    /// The wasm frames, from the trapping function outwards to the entry from the host
    /// (at most 33 frames; empty if the trap did not happen in wasm code).
    pub fn backtrace(&self) -> &[FrameInfo] {
        &self.backtrace
    }

    /// The backtrace as text, one frame per line: `  N: function 3 `name` at wasm offset
    /// 0x2a`.
    pub fn backtrace_text(&self) -> String {
        let mut out = String::new();
        for (i, frame) in self.backtrace.iter().enumerate() {
            out.push_str(&format!("  {i}: function {}", frame.func_index));
            if let Some(name) = &frame.func_name {
                out.push_str(&format!(" `{name}`"));
            }
            if let Some(offset) = frame.wasm_offset {
                out.push_str(&format!(" at wasm offset {offset:#x}"));
            }
            out.push('\n');
        }
        out
    }
}

impl From<kiln_runtime::Trap> for Trap {
    fn from(t: kiln_runtime::Trap) -> Trap {
        Trap {
            code: t.code,
            func_index: t.func_index,
            func_name: t.func_name,
            wasm_offset: t.wasm_offset,
            backtrace: t.backtrace,
        }
    }
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wasm trap: {}", self.code.message())?;
        if self.func_index.is_none() && self.wasm_offset.is_none() {
            return Ok(());
        }
        f.write_str(" (")?;
        let mut sep = "";
        if let Some(i) = self.func_index {
            write!(f, "in function {i}")?;
            if let Some(name) = &self.func_name {
                write!(f, " `{name}`")?;
            }
            sep = " ";
        }
        if let Some(o) = self.wasm_offset {
            write!(f, "{sep}at wasm offset {o:#x}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for Trap {}
