//! The Cranelift target for a compile configuration: triple, fixed CPU-feature baseline and
//! shared flags, and the compatibility fields that describe them in an artifact header.
//!
//! Code generation never depends on the host's CPU: x86_64 uses the x86-64-v2 baseline
//! (SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT) and aarch64 the architectural baseline.

use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use kiln_artifact::{CompatInfo, OptLevel};
use target_lexicon::{Architecture, Triple};

use crate::{CompileConfig, CompileError};

/// Pointer size of every supported target, in bytes.
pub const POINTER_SIZE: u8 = 8;

/// ISA flags enabled on x86_64 (x86-64-v2 minus what Cranelift does not use).
const X86_64_FEATURES: &[&str] = &[
    "has_sse3",
    "has_ssse3",
    "has_sse41",
    "has_sse42",
    "has_popcnt",
];

/// A configured Cranelift target.
pub struct Target {
    /// The ISA Cranelift compiles for.
    pub isa: OwnedTargetIsa,
    /// The normalised triple, as written into the artifact header.
    pub triple: String,
    /// Alignment of the text section in the artifact: the target's largest page size.
    pub code_alignment: u64,
}

impl Target {
    /// Builds the target described by `config`.
    pub fn new(config: &CompileConfig) -> Result<Self, CompileError> {
        let name = config.target.clone().unwrap_or_else(crate::host_triple);
        let triple = Triple::from_str(&name).map_err(|_| CompileError::Target(name.clone()))?;
        let code_alignment = match triple.architecture {
            Architecture::X86_64 => 4096,
            Architecture::Aarch64(_) => 65536,
            _ => return Err(CompileError::Target(name)),
        };
        let mut builder = isa::lookup(triple.clone()).map_err(|_| CompileError::Target(name))?;
        if triple.architecture == Architecture::X86_64 {
            for feature in X86_64_FEATURES {
                builder
                    .enable(feature)
                    .map_err(|e| CompileError::Codegen(format!("ISA flag {feature}: {e}")))?;
            }
        }
        let isa = builder
            .finish(shared_flags(config)?)
            .map_err(|e| CompileError::Codegen(e.to_string()))?;
        Ok(Self {
            isa,
            triple: triple.to_string(),
            code_alignment,
        })
    }

    /// The header fields of artifacts compiled for this target with `config`.
    pub fn compat_info(&self, config: &CompileConfig) -> CompatInfo {
        let mut features: Vec<&str> = self
            .isa
            .isa_flags()
            .iter()
            .filter(|v| v.as_bool() == Some(true))
            .map(|v| v.name)
            .collect();
        features.sort_unstable();
        CompatInfo {
            target: self.triple.clone(),
            cpu_features: features.join(","),
            settings: config.settings.encode(),
            pointer_size: POINTER_SIZE,
        }
    }

    /// The byte that fills the gaps between functions: `int3` on x86_64, zero (`udf`) on
    /// aarch64, so a stray jump into padding traps.
    pub fn padding_byte(&self) -> u8 {
        if self.triple.starts_with("x86_64") {
            0xcc
        } else {
            0
        }
    }

    /// Alignment of each function in the text section.
    pub fn function_alignment(&self) -> u32 {
        let align = self.isa.function_alignment();
        align.preferred.max(align.minimum).max(16)
    }
}

fn shared_flags(config: &CompileConfig) -> Result<settings::Flags, CompileError> {
    let opt_level = match config.settings.opt_level {
        OptLevel::None => "none",
        OptLevel::Speed => "speed",
        OptLevel::SpeedAndSize => "speed_and_size",
    };
    let verifier = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    let mut flags = settings::builder();
    let pairs = [
        ("opt_level", opt_level),
        ("enable_verifier", verifier),
        ("is_pic", "false"),
        ("enable_probestack", "false"),
        ("preserve_frame_pointers", "true"),
        ("enable_multi_ret_implicit_sret", "true"),
        ("unwind_info", "false"),
    ];
    for (name, value) in pairs {
        flags
            .set(name, value)
            .map_err(|e| CompileError::Codegen(format!("flag {name}={value}: {e}")))?;
    }
    Ok(settings::Flags::new(flags))
}
