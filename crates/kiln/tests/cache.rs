//! `Config::cache` seen from the embedding API: `Module::new` and `Module::from_file` store
//! and then load entries, the engine's artifact key authenticates them, and a broken entry
//! costs a compilation, not an error.

use std::path::{Path, PathBuf};

use kiln::{ArtifactKey, CacheConfig, Config, Engine, Linker, Module, Store};

fn wasm(answer: i32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "answer") (result i32) i32.const {answer}))"#
    ))
    .unwrap()
}

fn engine(dir: &Path, artifact_key: Option<ArtifactKey>) -> Engine {
    let mut cache = CacheConfig::new();
    cache.directory(dir);
    let mut config = Config::new();
    config.cache(cache);
    if let Some(key) = artifact_key {
        config.artifact_key(key);
    }
    Engine::new(&config).unwrap()
}

fn answer(engine: &Engine, module: &Module) -> i32 {
    let mut store = Store::new(engine, ());
    let instance = Linker::new(engine).instantiate(&mut store, module).unwrap();
    let f = instance
        .get_typed_func::<(), i32>(&mut store, "answer")
        .unwrap();
    f.call(&mut store, ()).unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for version in std::fs::read_dir(dir).unwrap().flatten() {
        for shard in std::fs::read_dir(version.path()).unwrap().flatten() {
            for e in std::fs::read_dir(shard.path()).unwrap().flatten() {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn module_new_stores_once_and_from_file_finds_the_same_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let engine = engine(&cache_dir, None);
    assert!(engine.module_cache().is_some());
    let module = Module::new(&engine, wasm(42)).unwrap();
    assert_eq!(answer(&engine, &module), 42);
    let stored = entries(&cache_dir);
    assert_eq!(stored.len(), 1);
    let written = std::fs::metadata(&stored[0]).unwrap().modified().unwrap();
    // The same wasm from a file: found by hashing the file, nothing written.
    let file = dir.path().join("m.wasm");
    std::fs::write(&file, wasm(42)).unwrap();
    let again = Module::from_file(&engine, &file).unwrap();
    assert_eq!(answer(&engine, &again), 42);
    assert_eq!(entries(&cache_dir), stored);
    assert_eq!(
        std::fs::metadata(&stored[0]).unwrap().modified().unwrap(),
        written
    );
    // Other wasm: another entry.
    let other = Module::new(&engine, wasm(7)).unwrap();
    assert_eq!(answer(&engine, &other), 7);
    assert_eq!(entries(&cache_dir).len(), 2);
    // The cache is off by default.
    assert!(Engine::default().module_cache().is_none());
}

#[test]
fn a_broken_entry_is_replaced_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), None);
    Module::new(&engine, wasm(5)).unwrap();
    let entry = entries(dir.path()).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &good[..good.len() / 2]).unwrap();
    let module = Module::new(&engine, wasm(5)).unwrap();
    assert_eq!(answer(&engine, &module), 5);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

#[test]
fn the_engines_artifact_key_authenticates_entries() {
    let dir = tempfile::tempdir().unwrap();
    let key = ArtifactKey::new([9; 32]);
    let keyed = engine(dir.path(), Some(key.clone()));
    assert!(keyed.module_cache().unwrap().authentication_key().is_some());
    Module::new(&keyed, wasm(11)).unwrap();
    let entry = entries(dir.path()).pop().unwrap();
    let sealed = std::fs::read(&entry).unwrap();
    kiln_artifact::seal::verify_seal(&sealed, &key).expect("stored entries are sealed");
    // An unsealed artifact of the same wasm under the name is refused and replaced.
    let unsealed = Engine::default().precompile_module(&wasm(11)).unwrap();
    std::fs::write(&entry, &unsealed).unwrap();
    let module = Module::new(&keyed, wasm(11)).unwrap();
    assert_eq!(answer(&keyed, &module), 11);
    assert_eq!(std::fs::read(&entry).unwrap(), sealed);
}

/// One change to a default configuration.
type ChangeSetting = fn(&mut Config);

#[test]
fn every_setting_that_changes_code_changes_the_fingerprint() {
    let base = Engine::default();
    let fingerprint = base.fingerprint().to_owned();
    assert!(
        fingerprint.contains(kiln_artifact::header::KILN_VERSION),
        "{fingerprint}"
    );
    let variants: [(&str, ChangeSetting); 6] = [
        ("target", |c| {
            c.target("aarch64-unknown-linux-gnu");
        }),
        ("opt level", |c| {
            c.opt_level(kiln::OptLevel::None);
        }),
        ("proposals", |c| {
            c.wasm_simd(false);
        }),
        ("nans", |c| {
            c.canonicalize_nans(true);
        }),
        ("epochs", |c| {
            c.epoch_interruption(true);
        }),
        ("bounds checks", |c| {
            c.bounds_checks(kiln::BoundsChecks::Explicit);
        }),
    ];
    let mut seen = vec![fingerprint];
    for (what, change) in variants {
        let mut config = Config::new();
        change(&mut config);
        let other = Engine::new(&config).unwrap().fingerprint().to_owned();
        assert!(!seen.contains(&other), "{what}: {other}");
        seen.push(other);
    }
    // The same settings, the same fingerprint: a second engine finds the first one's entries.
    assert_eq!(Engine::default().fingerprint(), seen[0]);
}
