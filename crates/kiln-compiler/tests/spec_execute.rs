//! Runs the `assert_return` checks of the official spec test scripts on the host (x86_64
//! Linux only) with the minimal test harness: modules without imports are instantiated and
//! their exports invoked through the trampolines. Traps cannot be caught here, so
//! `assert_trap` and `assert_exhaustion` are skipped (the end-to-end runner covers them).
//!
//! Point `KILN_TESTSUITE_DIR` at a directory of `.wast` files (WebAssembly 1.0 scripts) and
//! run `cargo test -p kiln-compiler --test spec_execute -- --ignored --nocapture`;
//! `KILN_OPT_LEVEL=none|speed_and_size` and `KILN_BOUNDS_CHECKS=explicit` change the
//! settings.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod harness;

use std::path::{Path, PathBuf};

use harness::{Instance, ValRaw};
use kiln_artifact::{CodegenSettings, OptLevel, ValType};
use wast::core::{NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastRet};

fn arg(a: &WastArg<'_>) -> Option<ValRaw> {
    Some(match a {
        WastArg::Core(WastArgCore::I32(v)) => ValRaw::from(*v as u32),
        WastArg::Core(WastArgCore::I64(v)) => ValRaw::from(*v as u64),
        WastArg::Core(WastArgCore::F32(v)) => ValRaw::from(v.bits),
        WastArg::Core(WastArgCore::F64(v)) => ValRaw::from(v.bits),
        _ => return None,
    })
}

/// Whether `got` (of type `ty`) matches the expected result.
fn matches(expected: &WastRet<'_>, ty: ValType, got: ValRaw) -> Option<bool> {
    let f32_nan = |bits: u32, canonical: bool| {
        let payload = bits & 0x007f_ffff;
        (bits & 0x7f80_0000) == 0x7f80_0000
            && if canonical {
                payload == 0x0040_0000
            } else {
                payload & 0x0040_0000 != 0
            }
    };
    let f64_nan = |bits: u64, canonical: bool| {
        let payload = bits & 0x000f_ffff_ffff_ffff;
        (bits & 0x7ff0_0000_0000_0000) == 0x7ff0_0000_0000_0000
            && if canonical {
                payload == 0x0008_0000_0000_0000
            } else {
                payload & 0x0008_0000_0000_0000 != 0
            }
    };
    let WastRet::Core(expected) = expected else {
        return None;
    };
    Some(match (expected, ty) {
        (WastRetCore::I32(v), ValType::I32) => got as u32 == *v as u32,
        (WastRetCore::I64(v), ValType::I64) => got as u64 == *v as u64,
        (WastRetCore::F32(p), ValType::F32) => match p {
            NanPattern::Value(v) => got as u32 == v.bits,
            NanPattern::CanonicalNan => f32_nan(got as u32, true),
            NanPattern::ArithmeticNan => f32_nan(got as u32, false),
        },
        (WastRetCore::F64(p), ValType::F64) => match p {
            NanPattern::Value(v) => got as u64 == v.bits,
            NanPattern::CanonicalNan => f64_nan(got as u64, true),
            NanPattern::ArithmeticNan => f64_nan(got as u64, false),
        },
        _ => return None,
    })
}

fn wast_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable test-suite directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wast"))
        .collect();
    files.sort();
    files
}

#[test]
#[ignore = "needs KILN_TESTSUITE_DIR"]
fn spec_assert_returns_pass() {
    let Some(dir) = std::env::var_os("KILN_TESTSUITE_DIR") else {
        eprintln!("KILN_TESTSUITE_DIR is not set; skipping");
        return;
    };
    let mut settings = CodegenSettings::default();
    if std::env::var("KILN_BOUNDS_CHECKS").as_deref() == Ok("explicit") {
        settings.bounds_checks = kiln_artifact::BoundsChecks::Explicit;
    }
    settings.opt_level = match std::env::var("KILN_OPT_LEVEL").as_deref() {
        Ok("none") => OptLevel::None,
        Ok("speed_and_size") => OptLevel::SpeedAndSize,
        _ => OptLevel::Speed,
    };
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for path in wast_files(Path::new(&dir)) {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!("{name}");
        let Ok(buffer) = ParseBuffer::new(&source) else {
            continue;
        };
        let Ok(script) = parser::parse::<Wast>(&buffer) else {
            continue;
        };
        let mut current: Option<Instance> = None;
        for directive in script.directives {
            match directive {
                WastDirective::Module(mut module) => {
                    current = None;
                    if matches!(module, QuoteWat::QuoteModule(..)) {
                        continue;
                    }
                    let bytes = module.encode().unwrap();
                    current = Instance::new(&bytes, settings, &[]).ok();
                }
                WastDirective::Invoke(invoke) if invoke.module.is_none() => {
                    let (Some(inst), Some(args)) = (
                        current.as_mut(),
                        invoke.args.iter().map(arg).collect::<Option<Vec<_>>>(),
                    ) else {
                        continue;
                    };
                    inst.call(invoke.name, &args);
                }
                WastDirective::AssertReturn {
                    exec: WastExecute::Invoke(invoke),
                    results,
                    span,
                } if invoke.module.is_none() => {
                    let (Some(inst), Some(args)) = (
                        current.as_mut(),
                        invoke.args.iter().map(arg).collect::<Option<Vec<_>>>(),
                    ) else {
                        skipped += 1;
                        continue;
                    };
                    let f = inst.export(invoke.name).unwrap();
                    let types = inst.result_types(f);
                    let got = inst.call(invoke.name, &args);
                    let ok = results
                        .iter()
                        .zip(&types)
                        .zip(&got)
                        .map(|((e, t), g)| matches(e, *t, *g))
                        .collect::<Option<Vec<bool>>>();
                    match ok {
                        None => skipped += 1,
                        Some(oks) if oks.iter().all(|&b| b) && oks.len() == results.len() => {
                            passed += 1
                        }
                        Some(_) => {
                            let (line, col) = span.linecol_in(&source);
                            failures.push(format!(
                                "{name}:{}:{}: {}({:x?}) = {:x?}",
                                line + 1,
                                col + 1,
                                invoke.name,
                                args,
                                got
                            ));
                        }
                    }
                }
                WastDirective::AssertReturn { .. } => skipped += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "{passed} passed, {skipped} skipped, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
