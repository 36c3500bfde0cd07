//! Pins the translator's output: each `tests/clif/*.wat` is translated for x86_64 and its
//! Cranelift IR (before optimisation) compared with the `.clif` file beside it. Run with
//! `BLESS=1` to write the expectations after an intended change.

use std::path::Path;

use kiln_compiler::{CompileConfig, translate_to_clif};

#[test]
fn translated_clif_matches_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clif");
    let bless = std::env::var_os("BLESS").is_some();
    let config = CompileConfig {
        target: Some("x86_64-unknown-linux-gnu".into()),
        ..CompileConfig::default()
    };
    let mut wats: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    wats.sort();
    assert!(!wats.is_empty());
    let mut mismatches = Vec::new();
    for wat in wats {
        let wasm = wat::parse_file(&wat).unwrap();
        let clif = translate_to_clif(&wasm, &config).unwrap();
        let expected_path = wat.with_extension("clif");
        if bless {
            std::fs::write(&expected_path, &clif).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != clif {
            mismatches.push(format!("{}:\n{clif}", expected_path.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "CLIF differs (run with BLESS=1 if intended):\n{}",
        mismatches.join("\n")
    );
}
