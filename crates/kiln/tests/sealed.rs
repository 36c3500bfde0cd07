//! Sealed artifacts: an engine with a key seals what it writes, and the safe loaders accept
//! exactly the artifacts whose seal verifies under that key. Forgeries (another module's
//! valid artifact, an unsealed artifact, any edited byte with the checksum recomputed, an
//! artifact sealed under another key) are refused; a genuine artifact loads, also after its
//! file was truncated or rewritten, because the sealed file load owns its bytes.

use kiln::{ArtifactError, ArtifactKey, Config, Engine, Error, Instance, Module, Store};

const ADD: &str = r#"(module
  (func (export "run") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;
const SUB: &str = r#"(module
  (func (export "run") (param i32 i32) (result i32) (i32.sub (local.get 0) (local.get 1))))"#;

fn keyed(key: u8) -> Engine {
    let mut config = Config::new();
    config.artifact_key(ArtifactKey::new([key; 32]));
    Engine::new(&config).unwrap()
}

fn run(engine: &Engine, module: &Module) -> i32 {
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let f = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "run")
        .unwrap();
    f.call(&mut store, (40, 2)).unwrap()
}

fn refusal(engine: &Engine, bytes: &[u8]) -> ArtifactError {
    match Module::deserialize_sealed(engine, bytes) {
        Ok(_) => panic!("a forged artifact was accepted"),
        Err(Error::Artifact(e)) => e,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Recomputes the checksum, as a forger would.
fn fix_checksum(file: &mut [u8]) {
    let sum = kiln_artifact::header::checksum(file);
    file[456..472].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn a_genuine_artifact_loads_and_runs() {
    let engine = keyed(1);
    assert!(engine.seals_artifacts());
    let bytes = engine.precompile_module(ADD.as_bytes()).unwrap();
    let module = Module::deserialize_sealed(&engine, &bytes).unwrap();
    assert_eq!(run(&engine, &module), 42);
    // Module::new seals too, so serialize gives loadable sealed bytes.
    let compiled = Module::new(&engine, ADD).unwrap();
    assert_eq!(compiled.serialize().unwrap(), bytes);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("add.kiln");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        run(
            &engine,
            &Module::deserialize_file_sealed(&engine, &path).unwrap()
        ),
        42
    );
    assert_eq!(
        run(&engine, &Module::from_file(&engine, &path).unwrap()),
        42
    );
}

#[test]
fn forgeries_are_refused() {
    let engine = keyed(1);
    let genuine = engine.precompile_module(ADD.as_bytes()).unwrap();

    // A valid artifact of another module, from an engine without the key.
    let unsealed = Engine::default().precompile_module(SUB.as_bytes()).unwrap();
    assert_eq!(refusal(&engine, &unsealed), ArtifactError::Unsealed);
    // ... sealed under another key.
    let other_key = keyed(2).precompile_module(SUB.as_bytes()).unwrap();
    assert_eq!(refusal(&engine, &other_key), ArtifactError::SealMismatch);
    // ... with the genuine artifact's seal copied into it.
    let mut borrowed = keyed(2).precompile_module(SUB.as_bytes()).unwrap();
    borrowed[472..504].copy_from_slice(&genuine[472..504]);
    assert_eq!(refusal(&engine, &borrowed), ArtifactError::SealMismatch);

    // Every bit of the header, and bytes all through the file, with the checksum recomputed.
    let mut accepted = Vec::new();
    let positions = (0..512).chain((512..genuine.len()).step_by(97));
    for pos in positions {
        for bit in 0..8 {
            let mut forged = genuine.clone();
            forged[pos] ^= 1 << bit;
            if !(456..472).contains(&pos) {
                fix_checksum(&mut forged);
            }
            if Module::deserialize_sealed(&engine, &forged).is_ok() {
                accepted.push((pos, bit));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "forgeries accepted (byte, bit): {accepted:?}"
    );
    let mut longer = genuine.clone();
    longer.extend_from_slice(&[0; 16]);
    assert_eq!(refusal(&engine, &longer), ArtifactError::SealMismatch);
    assert!(Module::deserialize_sealed(&engine, &genuine[..genuine.len() - 1]).is_err());
    assert_eq!(
        refusal(&engine, b"not an artifact"),
        ArtifactError::BadMagic
    );

    // An engine without a key has nothing to verify with.
    assert!(matches!(
        Module::deserialize_sealed(&Engine::default(), &genuine),
        Err(Error::Artifact(ArtifactError::NoKey))
    ));
}

#[test]
fn a_sealed_file_load_owns_its_bytes() {
    let engine = keyed(3);
    let bytes = engine.precompile_module(ADD.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("add.kiln");
    std::fs::write(&path, &bytes).unwrap();
    let module = Module::deserialize_file_sealed(&engine, &path).unwrap();

    // Truncate the file, then fill it with another module's sealed artifact: the loaded
    // module neither faults nor changes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(run(&engine, &module), 42);
    std::fs::write(&path, engine.precompile_module(SUB.as_bytes()).unwrap()).unwrap();
    assert_eq!(run(&engine, &module), 42);
    // A new load sees the new file.
    assert_eq!(
        run(
            &engine,
            &Module::deserialize_file_sealed(&engine, &path).unwrap()
        ),
        38
    );
}

#[test]
fn keys_come_from_bytes_hex_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, [9u8; 32]).unwrap();
    let hex = dir.path().join("hex.key");
    std::fs::write(&hex, format!("{}\n", "09".repeat(32))).unwrap();
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "09").unwrap();

    let sealed = keyed(9).precompile_module(ADD.as_bytes()).unwrap();
    for file in [&raw, &hex] {
        let mut config = Config::new();
        config.artifact_key_file(file).unwrap();
        let engine = Engine::new(&config).unwrap();
        assert_eq!(
            run(
                &engine,
                &Module::deserialize_sealed(&engine, &sealed).unwrap()
            ),
            42
        );
    }
    assert!(matches!(
        Config::new().artifact_key_file(&bad),
        Err(Error::Key(_))
    ));
    assert!(matches!(
        Config::new().artifact_key_file(dir.path().join("missing.key")),
        Err(Error::Key(_))
    ));
}
