//! Fuzz target `artifact`: mutations of real artifacts' header, metadata and data sections,
//! each with the checksum recomputed afterwards (so the checked loader's validation, not the
//! checksum, has to catch them), loaded in checked mode, instantiated, and every exported
//! function called with zero arguments under an epoch deadline. The text section is left
//! alone: no check can vouch for machine code, which is why checked loading is `unsafe`
//! (`docs/security.md`). Nor can any check tell which instructions trap: a trap table
//! whose code offsets were changed consistently passes the checked load, and the first
//! real trap then faults without a record, which Kiln aborts on by design (the same
//! document). Such an input, like an edit of the code, is not run. A panic, an abort, a
//! crash or a hang of anything else is a bug.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use kiln::{Config, Engine, Instance, Module, Store};
use kiln_artifact::header::{self, Header};
use libfuzzer_sys::fuzz_target;

/// Modules whose artifacts are mutated: tables, memories, data and element segments,
/// globals, imports-free so they instantiate alone.
const SEEDS: &[&str] = &[
    r#"(module
  (memory (export "mem") 1 4)
  (data (i32.const 8) "artifact")
  (data $passive "passive")
  (table (export "table") 4 8 funcref)
  (elem (i32.const 0) $f $g)
  (elem $later func $g $f)
  (global $counter (export "counter") (mut i32) (i32.const 5))
  (global (export "pi") f64 (f64.const 3.14159))
  (func $f (export "f") (result i32) (i32.load8_u (i32.const 9)))
  (func $g (export "g") (param i32) (result i32) (i32.add (local.get 0) (global.get $counter)))
  (func (export "indirect") (param i32) (result i32)
    (call_indirect (result i32) (local.get 0)))
  (func (export "init") (memory.init $passive (i32.const 100) (i32.const 0) (i32.const 7))
    (table.init $later (i32.const 2) (i32.const 0) (i32.const 2)))
  (func (export "loop") (local i32)
    (loop $l (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 0) (i32.const 1000000))))))"#,
    r#"(module
  (type $t (func (param i64) (result i64)))
  (memory 1)
  (table 2 externref)
  (table 3 funcref)
  (elem (table 1) (i32.const 1) func $fact)
  (func $fact (type $t) (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 1))
    (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  (func (export "fact10") (result i64) (call $fact (i64.const 10)))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "store") (i64.store (i32.const 65528) (i64.const -1)))
  (func (export "refs") (result i32) (table.size 0))
  (start $start)
  (func $start (drop (call $fact (i64.const 3)))))"#,
];

struct Fixture {
    engine: Engine,
    artifacts: Vec<Vec<u8>>,
    /// The code offsets of each artifact's trap records, as the compiler wrote them.
    trap_sites: Vec<Vec<u32>>,
}

/// The code offsets of `file`'s trap records, if its metadata reads.
fn trap_sites(file: &[u8]) -> Option<Vec<u32>> {
    let info = kiln_artifact::read_metadata(file).ok()?;
    Some(info.traps.records().iter().map(|r| r.code_offset).collect())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).unwrap();
        let ticker = engine.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(5));
                ticker.increment_epoch();
            }
        });
        let artifacts: Vec<Vec<u8>> = SEEDS
            .iter()
            .map(|wat| engine.precompile_module(wat.as_bytes()).unwrap())
            .collect();
        let trap_sites = artifacts.iter().map(|a| trap_sites(a).unwrap()).collect();
        Fixture {
            engine,
            artifacts,
            trap_sites,
        }
    })
}

/// Applies edits `(position, value)` read from `data` to the non-code parts of `file`.
fn mutate(file: &mut [u8], data: &[u8]) {
    let head = Header::parse(file).expect("seed artifacts are valid");
    let code = head.code.offset as usize..(head.code.offset + head.code.len) as usize;
    for edit in data.chunks_exact(4) {
        let raw = u32::from_le_bytes([edit[0], edit[1], edit[2], 0]) as usize;
        // Bias towards the header and the metadata, where the checks are.
        let span = if edit[0] & 1 == 0 {
            code.start
        } else {
            file.len()
        };
        let at = raw % span;
        if code.contains(&at) {
            continue;
        }
        file[at] = if edit[1] & 0x80 == 0 {
            file[at] ^ (1 << (edit[3] & 7))
        } else {
            edit[3]
        };
    }
    let sum = header::checksum(file);
    file[456..472].copy_from_slice(&sum.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&which, edits)) = data.split_first() else {
        return;
    };
    let original = &fixture.artifacts[which as usize % fixture.artifacts.len()];
    // (`seed` below is the same index.)
    let mut file = original.clone();
    mutate(&mut file, edits);
    if let Some(dir) = std::env::var_os("KILN_FUZZ_DEBUG") {
        // Triage: both artifacts for `kiln inspect`, and which bytes changed, relative to
        // the metadata section at 512.
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("original.kiln"), original).unwrap();
        std::fs::write(dir.join("mutated.kiln"), &file).unwrap();
        for (at, (a, b)) in original.iter().zip(&file).enumerate() {
            if a != b && !(456..472).contains(&at) {
                eprintln!(
                    "seed {which}: byte {at} (metadata +{}) {a:#04x} -> {b:#04x}",
                    at as i64 - 512
                );
            }
        }
    }
    // SAFETY: the code section is the one Kiln compiled (mutations skip it); everything else
    // is what the checked loader must handle.
    let Ok(module) = (unsafe { Module::deserialize(&fixture.engine, &file) }) else {
        return;
    };
    let seed = which as usize % fixture.artifacts.len();
    if trap_sites(&file).as_ref() != Some(&fixture.trap_sites[seed]) {
        return; // trap records that no longer match the code: out of scope (see above)
    }
    let mut store = Store::new(&fixture.engine, ());
    store.set_epoch_deadline(4);
    let Ok(instance) = Instance::new(&mut store, &module, &[]) else {
        return;
    };
    store.set_epoch_deadline(4);
    let _ = kiln_fuzz::run_kiln_exports(&mut store, &module, &instance);
});
