//! `kiln compile`: WebAssembly (binary or text) in, artifact out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kiln::{BoundsChecks, Config, CpuLevel, Engine, OptLevel};

use crate::progress::CompileProgress;
use crate::{CliResult, fail};

/// Arguments of `kiln compile`.
#[derive(Args)]
pub struct CompileArgs {
    /// The module to compile (.wasm or .wat).
    input: PathBuf,
    /// Where to write the artifact [default: the input with the extension `.kiln`].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Target triple to compile for [default: the host].
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    codegen: CodegenArgs,
}

/// The code-generation settings shared by the commands that compile.
#[derive(Args)]
pub struct CodegenArgs {
    /// How much to optimise.
    #[arg(long, value_enum, default_value_t = Opt::Speed)]
    opt_level: Opt,
    /// How linear-memory accesses are kept in bounds.
    #[arg(long, value_enum, default_value_t = Bounds::GuardPages)]
    bounds_checks: Bounds,
    /// Make the code interruptible (needed by `kiln run --timeout`).
    #[arg(long)]
    epoch_interruption: bool,
    /// Replace every NaN that float arithmetic produces with the canonical NaN.
    #[arg(long)]
    canonicalize_nans: bool,
    /// Leave out the Spectre guards on bounds-checked accesses (faster, less safe).
    #[arg(long)]
    no_spectre_guards: bool,
    /// CPU features the code may use: `baseline` (x86-64-v2; runs on every CPU of the
    /// architecture), `x86-64-v3`, `x86-64-v4`, `native` (all of this CPU's), or features to
    /// add to the baseline (`avx2,bmi2`). Artifacts need a CPU with their features.
    #[arg(long, default_value_t = CpuLevel::Baseline, value_name = "LEVEL")]
    cpu: CpuLevel,
}

impl CodegenArgs {
    /// A configuration with these settings, for the host.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config.opt_level(match self.opt_level {
            Opt::None => OptLevel::None,
            Opt::Speed => OptLevel::Speed,
            Opt::SpeedAndSize => OptLevel::SpeedAndSize,
        });
        config.bounds_checks(match self.bounds_checks {
            Bounds::GuardPages => BoundsChecks::GuardPages,
            Bounds::Explicit => BoundsChecks::Explicit,
        });
        config
            .cpu(self.cpu.clone())
            .epoch_interruption(self.epoch_interruption)
            .canonicalize_nans(self.canonicalize_nans)
            .spectre_guards(!self.no_spectre_guards);
        config
    }
}

/// `--opt-level` values.
#[derive(Clone, Copy, ValueEnum)]
enum Opt {
    None,
    Speed,
    SpeedAndSize,
}

/// `--bounds-checks` values.
#[derive(Clone, Copy, ValueEnum)]
enum Bounds {
    GuardPages,
    Explicit,
}

/// Runs `kiln compile`.
pub fn main(args: CompileArgs) -> CliResult {
    let mut config = args.codegen.config();
    if let Some(target) = &args.target {
        config.target(target);
    }
    if let Some(key) = crate::key::artifact_key()? {
        config.artifact_key(key);
    }
    let engine = Engine::new(&config)?;
    let input = &args.input;
    let wasm = std::fs::read(input).map_err(|e| fail!("cannot read `{}`: {e}", input.display()))?;
    let progress = CompileProgress::new(&input.display().to_string());
    let artifact = engine
        .precompile_module_with_progress(&wasm, |done, total| progress.update(done, total))
        .map_err(|e| fail!("cannot compile `{}`: {e}", input.display()))?;
    drop(progress);
    let output = args.output.unwrap_or_else(|| input.with_extension("kiln"));
    std::fs::write(&output, artifact)
        .map_err(|e| fail!("cannot write `{}`: {e}", output.display()))?;
    Ok(ExitCode::SUCCESS)
}
