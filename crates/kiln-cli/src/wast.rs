//! `kiln wast`: runs spec scripts and prints their results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kiln_wast::WastRunner;

use crate::compile::CodegenArgs;
use crate::{CliResult, fail, outln};

/// Arguments of `kiln wast`.
#[derive(Args)]
pub struct WastArgs {
    /// The scripts to run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    codegen: CodegenArgs,
}

/// Runs `kiln wast`: each failure as `file:LINE: directive: reason`, then per file and in
/// total `N passed, N failed`; exits with 1 if anything failed.
pub fn main(args: WastArgs) -> CliResult {
    let runner = WastRunner::new(kiln::Engine::new(&args.codegen.config())?);
    let (mut passed, mut failed) = (0, 0);
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail!("cannot read `{}`: {e}", path.display()))?;
        let report = runner.run(&path.display().to_string(), &text);
        outln!("{report}")?;
        passed += report.passed();
        failed += report.failed();
    }
    outln!("{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
