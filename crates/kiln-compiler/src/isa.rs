//! The Cranelift target for a compile configuration: triple, CPU features and shared flags,
//! and the compatibility fields that describe them in an artifact header.
//!
//! The CPU features come from the configuration's [`kiln_artifact::CpuLevel`], never implicitly from the
//! host: by default x86_64 uses the x86-64-v2 baseline (SSE3, SSSE3, SSE4.1, SSE4.2,
//! POPCNT) and aarch64 the architectural baseline, so the same wasm gives the same artifact
//! everywhere; higher levels and `native` trade that for speed.

use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use kiln_artifact::{CompatInfo, OptLevel};
use target_lexicon::Triple;

use crate::{CompileConfig, CompileError};

/// Pointer size of every supported target, in bytes.
pub const POINTER_SIZE: u8 = 8;

/// A configured Cranelift target.
pub struct Target {
    /// The ISA Cranelift compiles for.
    pub isa: OwnedTargetIsa,
    /// The normalised triple, as written into the artifact header.
    pub triple: String,
    /// Alignment of the text section in the artifact: the target's largest page size.
    pub code_alignment: u64,
    /// The CPU features the code may use ([`kiln_artifact::cpu`] names, sorted).
    pub cpu_features: Vec<&'static str>,
}

impl Target {
    /// Builds the target described by `config`.
    pub fn new(config: &CompileConfig) -> Result<Self, CompileError> {
        let name = config.target.clone().unwrap_or_else(crate::host_triple);
        let triple = Triple::from_str(&name).map_err(|_| CompileError::Target(name.clone()))?;
        let Some(code_alignment) = kiln_artifact::header::code_alignment(&triple.to_string())
        else {
            return Err(CompileError::Target(name));
        };
        let mut builder = isa::lookup(triple.clone()).map_err(|_| CompileError::Target(name))?;
        let arch = triple.architecture.to_string();
        let cpu_features = config.cpu.features(&arch).map_err(CompileError::Cpu)?;
        for feature in &cpu_features {
            builder
                .enable(&format!("has_{feature}"))
                .map_err(|e| CompileError::Codegen(format!("ISA flag has_{feature}: {e}")))?;
        }
        let isa = builder
            .finish(shared_flags(config)?)
            .map_err(|e| CompileError::Codegen(e.to_string()))?;
        Ok(Self {
            isa,
            triple: triple.to_string(),
            code_alignment,
            cpu_features,
        })
    }

    /// The header fields of artifacts compiled for this target with `config`.
    pub fn compat_info(&self, config: &CompileConfig) -> CompatInfo {
        CompatInfo {
            target: self.triple.clone(),
            cpu_features: self.cpu_features.join(","),
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

    /// Alignment of each function in the text section: at least a cache line (64 bytes), so
    /// that where a function's loops fall relative to cache lines and fetch blocks depends on
    /// its own code only, not on the sizes of the functions before it. With Cranelift's
    /// preferred 32 bytes, the `strings` kernel of the peer bench ran 1.09-1.16x Wasmtime's
    /// time with identical instructions, and 0.99-1.03x at 64; the padding costs about 1 %
    /// of SQLite's code.
    pub fn function_alignment(&self) -> u32 {
        let align = self.isa.function_alignment();
        align.preferred.max(align.minimum).max(64)
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
