//! Properties of real compiled artifacts: builds are reproducible (also across thread
//! counts), a foreign target's artifact is refused with a clear error, and damaged artifacts
//! are refused by the checked loader without a panic or a crash.

use kiln::{Config, Engine, Error, Linker, Module, Store};
use kiln_artifact::ArtifactError;
use kiln_artifact::header::HEADER_SIZE;
use proptest::collection::vec;
use proptest::prelude::*;
use std::sync::OnceLock;

const WAT: &str = r#"
(module $props
  (type $bin (func (param i32 i32) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (memory (export "memory") 1 4)
  (table (export "table") 4 funcref)
  (global $counter (export "counter") (mut i32) (i32.const 7))
  (global $k (export "k") i64 (i64.const 42))
  (data (i32.const 16) "hello, kiln")
  (elem (i32.const 0) $add $sub $mul)
  (func $add (export "add") (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (export "sub") (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func (export "call_indirect") (param i32 i32 i32) (result i32)
    (call_indirect (type $bin) (local.get 1) (local.get 2) (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "bump") (result i32)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (call $log (global.get $counter))
    (global.get $counter))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "wide") (param i64 f64) (result f64)
    (f64.add (f64.convert_i64_s (i64.add (local.get 0) (global.get $k))) (local.get 1)))
)
"#;

fn wasm() -> Vec<u8> {
    wat::parse_str(WAT).expect("valid WAT")
}

/// A module with enough functions that parallel compilation really splits the work.
fn many_functions(n: u32) -> Vec<u8> {
    use wasm_encoder::*;
    let mut m = wasm_encoder::Module::new();
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I32]);
    types.ty().function([ValType::I64], [ValType::I64]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    for i in 0..n {
        funcs.function(i % 2);
    }
    m.section(&funcs);
    let mut exports = ExportSection::new();
    for i in (0..n).step_by(3) {
        exports.export(&format!("f{i}"), ExportKind::Func, i);
    }
    m.section(&exports);
    let mut code = CodeSection::new();
    for i in 0..n {
        let mut f = Function::new([]);
        let mut ins = f.instructions();
        if i % 2 == 0 {
            ins.local_get(0)
                .local_get(1)
                .i32_add()
                .i32_const(i as i32)
                .i32_mul();
            if i > 0 {
                // A call into an earlier function, so relocations are part of the layout.
                ins.local_get(0).local_get(1).call(i - 2).i32_xor();
            }
        } else {
            ins.local_get(0)
                .i64_const(i64::from(i))
                .i64_rotl()
                .i64_popcnt();
        }
        ins.end();
        code.function(&f);
    }
    m.section(&code);
    m.finish()
}

fn host_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

/// The real artifact the mutation tests start from, compiled once.
fn artifact() -> &'static [u8] {
    static ARTIFACT: OnceLock<Vec<u8>> = OnceLock::new();
    ARTIFACT.get_or_init(|| host_engine().precompile_module(&wasm()).expect("compiles"))
}

#[test]
fn real_artifact_loads_and_runs() {
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let module = unsafe { Module::deserialize(host_engine(), artifact()) }.expect("checked load");
    let mut store = Store::new(host_engine(), Vec::<i32>::new());
    let mut linker = Linker::new(host_engine());
    linker
        .func_wrap(
            "env",
            "log",
            |mut caller: kiln::Caller<'_, Vec<i32>>, x: i32| caller.data_mut().push(x),
        )
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let add = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, (2, 3)).unwrap(), 5);
    let indirect = instance
        .get_typed_func::<(i32, i32, i32), i32>(&mut store, "call_indirect")
        .unwrap();
    assert_eq!(indirect.call(&mut store, (2, 6, 3)).unwrap(), 18);
    let load = instance
        .get_typed_func::<i32, i32>(&mut store, "load")
        .unwrap();
    assert_eq!(load.call(&mut store, 16).unwrap(), i32::from(b'h'));
    let bump = instance
        .get_typed_func::<(), i32>(&mut store, "bump")
        .unwrap();
    assert_eq!(bump.call(&mut store, ()).unwrap(), 8);
    assert_eq!(store.data(), &[8]);

    // The artifact names its imports and exports in module order.
    let exports: Vec<String> = module.exports().map(|e| e.name().to_owned()).collect();
    assert_eq!(
        exports,
        [
            "memory",
            "table",
            "counter",
            "k",
            "add",
            "sub",
            "call_indirect",
            "load",
            "bump",
            "div",
            "wide"
        ]
    );
    let imports: Vec<(String, String)> = module
        .imports()
        .map(|i| (i.module().to_owned(), i.name().to_owned()))
        .collect();
    assert_eq!(imports, [("env".to_owned(), "log".to_owned())]);

    // Serialising a loaded module gives back the same bytes.
    assert_eq!(module.serialize().unwrap(), artifact());
}

#[test]
fn unchecked_load_sees_the_same_module() {
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let checked = unsafe { Module::deserialize(host_engine(), artifact()) }.unwrap();
    // SAFETY: the bytes were written by this engine's compiler in this process.
    let unchecked = unsafe { Module::deserialize_unchecked(host_engine(), artifact()) }.unwrap();
    let describe = |m: &Module| {
        let imports: Vec<String> = m
            .imports()
            .map(|i| format!("{}::{} {}", i.module(), i.name(), i.ty()))
            .collect();
        let exports: Vec<String> = m
            .exports()
            .map(|e| format!("{} {}", e.name(), e.ty()))
            .collect();
        (m.name().map(str::to_owned), imports, exports)
    };
    assert_eq!(describe(&checked), describe(&unchecked));
    assert_eq!(checked.name(), Some("props"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("props.kiln");
    std::fs::write(&path, artifact()).unwrap();
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let from_file = unsafe { Module::deserialize_file(host_engine(), &path) }.unwrap();
    // SAFETY: the file was just written from this engine's artifact and is not modified.
    let from_file_unchecked =
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize_file_unchecked(host_engine(), &path) }.unwrap();
    assert_eq!(describe(&checked), describe(&from_file));
    assert_eq!(describe(&checked), describe(&from_file_unchecked));
}

#[test]
fn two_compilations_are_byte_identical() {
    let engine = Engine::default();
    for wasm in [wasm(), many_functions(300)] {
        let a = engine.precompile_module(&wasm).unwrap();
        let b = engine.precompile_module(&wasm).unwrap();
        assert!(a == b, "two compilations of the same module differ");
        // A second engine with the same configuration agrees too.
        let c = Engine::default().precompile_module(&wasm).unwrap();
        assert!(a == c, "two engines with equal configs disagree");
    }
}

#[test]
fn thread_count_does_not_change_the_artifact() {
    let wasm = many_functions(600);
    let build = |threads| {
        let mut config = Config::new();
        config.compile_threads(Some(threads));
        Engine::new(&config)
            .unwrap()
            .precompile_module(&wasm)
            .unwrap()
    };
    let one = build(1);
    let four = build(4);
    assert!(
        one == four,
        "compile_threads(1) and (4) give different bytes"
    );
    // And both load.
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    unsafe { Module::deserialize(host_engine(), &one) }.unwrap();
}

#[test]
fn foreign_target_artifact_is_refused_by_name() {
    let host = host_engine().target().to_owned();
    let foreign = if host.starts_with("aarch64") {
        "x86_64-unknown-linux-gnu"
    } else {
        "aarch64-unknown-linux-gnu"
    };
    let mut config = Config::new();
    config.target(foreign);
    let cross = Engine::new(&config).expect("cross-compiling engine");
    assert_eq!(cross.target(), foreign);
    let bytes = cross.precompile_module(&wasm()).expect("cross-compiles");

    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let err = match unsafe { Module::deserialize(host_engine(), &bytes) } {
        Ok(_) => panic!("a {foreign} artifact loaded on {host}"),
        Err(e) => e,
    };
    match &err {
        Error::Artifact(ArtifactError::Target { expected, found }) => {
            assert_eq!(expected, &host);
            assert_eq!(found, foreign);
        }
        other => panic!("expected a target mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(foreign) && msg.contains(&host),
        "message does not name both triples: {msg}"
    );

    // The unchecked loader refuses it too: the header check is not optional.
    // SAFETY: the bytes are an artifact written by this Kiln's compiler.
    let unchecked = unsafe { Module::deserialize_unchecked(host_engine(), &bytes) };
    assert!(matches!(
        unchecked,
        Err(Error::Artifact(ArtifactError::Target { .. }))
    ));
}

#[test]
fn other_settings_are_refused() {
    let mut explicit = Config::new();
    explicit.bounds_checks(kiln::BoundsChecks::Explicit);
    let mut unoptimised = Config::new();
    unoptimised.opt_level(kiln::OptLevel::None);
    for config in [explicit, unoptimised] {
        let engine = Engine::new(&config).unwrap();
        let bytes = engine.precompile_module(&wasm()).unwrap();
        // Its own engine loads it.
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        match unsafe { Module::deserialize(host_engine(), &bytes) } {
            Err(Error::Artifact(ArtifactError::Settings { expected, found })) => {
                assert_ne!(expected, found);
            }
            Err(other) => panic!("expected a settings mismatch, got {other:?}"),
            Ok(_) => panic!("an artifact with other settings loaded"),
        }
    }
}

/// `Module::from_file` recognises an artifact by its magic bytes and, as a safe function,
/// loads it only through its seal: an unsealed artifact is refused before anything of it is
/// used, a sealed one loads with the key.
#[test]
fn from_file_detects_an_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("props.kiln");
    std::fs::write(&path, artifact()).unwrap();
    assert!(matches!(
        Module::from_file(host_engine(), &path),
        Err(Error::Artifact(ArtifactError::NoKey))
    ));
    let mut config = Config::new();
    config.artifact_key(kiln::ArtifactKey::new([4; 32]));
    let keyed = Engine::new(&config).unwrap();
    assert!(matches!(
        Module::from_file(&keyed, &path),
        Err(Error::Artifact(ArtifactError::Unsealed))
    ));
    let sealed = keyed.precompile_module(WAT.as_bytes()).unwrap();
    std::fs::write(&path, &sealed).unwrap();
    let module = Module::from_file(&keyed, &path).unwrap();
    assert_eq!(module.serialize().unwrap(), sealed);
}

// ---- damaged artifacts ----

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(u32),
    FlipBits(Vec<(u32, u8)>),
    Overwrite { at: u32, bytes: Vec<u8> },
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u32>().prop_map(Mutation::Truncate),
        vec((any::<u32>(), 0u8..8), 1..=8).prop_map(Mutation::FlipBits),
        (any::<u32>(), vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

/// Positions are biased to the header and metadata (first 8 KiB), where the checks are.
fn apply(file: &mut Vec<u8>, m: &Mutation) {
    let span = |len: usize, raw: u32| {
        if raw.is_multiple_of(4) {
            raw as usize % len
        } else {
            raw as usize % len.min(8192)
        }
    };
    match m {
        Mutation::Truncate(n) => {
            let at = span(file.len(), *n);
            file.truncate(at)
        }
        Mutation::FlipBits(bits) => {
            for &(pos, bit) in bits {
                let at = span(file.len(), pos);
                file[at] ^= 1 << bit;
            }
        }
        Mutation::Overwrite { at, bytes } => {
            let at = span(file.len(), *at);
            let end = (at + bytes.len()).min(file.len());
            file[at..end].copy_from_slice(&bytes[..end - at]);
        }
        Mutation::Append(bytes) => file.extend_from_slice(bytes),
    }
}

/// Whether `file` equals `original` outside the seal field (bytes 472..504), which the
/// checked loader does not read: a sealed artifact can be loaded unchecked-but-validated
/// without the key, and only a sealed load verifies the seal (`tests/sealed.rs`).
fn same_but_the_seal(file: &[u8], original: &[u8]) -> bool {
    file.len() == original.len()
        && file
            .iter()
            .zip(original)
            .enumerate()
            .all(|(i, (a, b))| a == b || (472..504).contains(&i))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A damaged artifact is refused by the checked loader; only the untouched bytes load.
    #[test]
    fn damaged_artifact_is_refused(m in mutation()) {
        let original = artifact();
        let mut file = original.to_vec();
        apply(&mut file, &m);
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        let result = unsafe { Module::deserialize(host_engine(), &file) };
        if same_but_the_seal(&file, original) {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "damaged artifact loaded: {m:?}");
        }
    }

    /// The same through the file loader, which maps the file instead of copying it.
    #[test]
    fn damaged_artifact_file_is_refused(m in mutation()) {
        let original = artifact();
        let mut file = original.to_vec();
        apply(&mut file, &m);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut tmp, &file).unwrap();
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        let result = unsafe { Module::deserialize_file(host_engine(), tmp.path()) };
        if same_but_the_seal(&file, original) {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(
                matches!(result, Err(Error::Artifact(_))),
                "damaged artifact file: {m:?} gave {:?}",
                result.err()
            );
        }
    }

    /// Damage behind the header with a recomputed checksum reaches the archive and metadata
    /// checks of the real loader: it may load (code bytes are not checked) but never panics.
    /// The module is only loaded, never run.
    #[test]
    fn resealed_damage_never_panics(m in mutation()) {
        let original = artifact();
        let mut file = original.to_vec();
        let mut body = file.split_off(HEADER_SIZE);
        let before = body.clone();
        apply(&mut body, &m);
        prop_assume!(body != before && body.len() == before.len());
        file.extend_from_slice(&body);
        let sum = kiln_artifact::header::checksum(&file);
        file[456..472].copy_from_slice(&sum.to_le_bytes());
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        let _ = unsafe { Module::deserialize(host_engine(), &file) };
    }
}

/// Every single-bit change of the header of a real artifact is refused by the checked
/// loader, except in the seal (bytes 472..504), which the checked loader does not read and
/// only a sealed load checks (`tests/sealed.rs`). (Flips of the code offset used to load,
/// and calling a function of such a module crashed the process with SIGSEGV.)
#[test]
fn every_header_bit_is_checked_by_the_loader() {
    let original = artifact();
    let mut accepted = Vec::new();
    for pos in (0..HEADER_SIZE).filter(|p| !(472..504).contains(p)) {
        for bit in 0..8 {
            let mut file = original.to_vec();
            file[pos] ^= 1 << bit;
            // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
            if unsafe { Module::deserialize(host_engine(), &file) }.is_ok() {
                accepted.push((pos, bit));
            }
        }
    }
    assert!(accepted.is_empty(), "accepted (byte, bit): {accepted:?}");
}
