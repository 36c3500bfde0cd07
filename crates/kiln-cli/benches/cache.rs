//! The module cache, end to end: a cold start (compile and store) against a warm one (a cache
//! hit) of a module of 10+ MiB of wasm, and the warm start of a small module, measured
//! in-process (`Module::new` through an engine with a cache, instantiate, one call) and as
//! whole `kiln run` processes; with and without a cache key. Apart from that, the parts of a
//! hit that grow with the module: the key (hashing the wasm) against reading the wasm file
//! once, for 30 MiB (in memory, and from the file as `Module::from_file` hashes it), and the
//! seal check (the MAC) of a keyed entry. `warm_large_module_only` is a hit without the
//! instance, which shows how much of a warm start is instantiation.
//!
//! The modules are the synthetic ones of the load bench (`crates/kiln/benches/support`):
//! many small functions, every fourth exported; `f0` is called with `(1, 2)`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kiln::{ArtifactKey, CacheConfig, Config, Engine, Module, Store};

#[path = "../../kiln/benches/support/generated_module.rs"]
mod generated_module;
use generated_module::module_of_size;

const LARGE: usize = 12 << 20;
const SMALL: usize = 1 << 10;
const HASHED: usize = 30 << 20;
const KEY_HEX: &str = "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

struct Setup {
    dir: PathBuf,
    large: Vec<u8>,
    small: Vec<u8>,
    large_path: PathBuf,
    small_path: PathBuf,
}

fn setup() -> Setup {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kiln-cache-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let large = module_of_size(LARGE);
    let small = module_of_size(SMALL);
    let large_path = dir.join("large.wasm");
    let small_path = dir.join("small.wasm");
    std::fs::write(&large_path, &large).unwrap();
    std::fs::write(&small_path, &small).unwrap();
    eprintln!(
        "large module: {} bytes of wasm; small module: {} bytes",
        large.len(),
        small.len()
    );
    Setup {
        dir,
        large,
        small,
        large_path,
        small_path,
    }
}

fn key() -> ArtifactKey {
    ArtifactKey::from_hex(KEY_HEX).unwrap()
}

fn cached_engine(cache_dir: &Path, keyed: bool) -> Engine {
    let mut cache = CacheConfig::new();
    cache.directory(cache_dir);
    if keyed {
        cache.key(key());
    }
    let mut config = Config::new();
    config.cache(cache);
    Engine::new(&config).unwrap()
}

/// A start: the module (compiled or from the cache), an instance, one call.
fn start(engine: &Engine, wasm: &[u8]) -> i32 {
    run(engine, &Module::new(engine, wasm).unwrap())
}

/// A start from a file, as `kiln run` makes it: a hit hashes the file in pieces.
fn start_from_file(engine: &Engine, path: &Path) -> i32 {
    run(engine, &Module::from_file(engine, path).unwrap())
}

fn run(engine: &Engine, module: &Module) -> i32 {
    let mut store = Store::new(engine, ());
    let instance = kiln::Linker::new(engine)
        .instantiate(&mut store, module)
        .unwrap();
    let f0 = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "f0")
        .unwrap();
    f0.call(&mut store, (1, 2)).unwrap()
}

/// Removes the engine's cache entry for `wasm`, so the next start compiles.
fn evict(engine: &Engine, wasm: &[u8]) {
    let cache = engine.module_cache().expect("the engine has a cache");
    let (key, _) = cache.key(wasm, engine.fingerprint());
    cache.remove(&key);
}

fn in_process(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("cache/in_process");
    group.sample_size(10);
    for keyed in [false, true] {
        let suffix = if keyed { "_keyed" } else { "" };
        let engine = cached_engine(&s.dir.join(format!("in-process{suffix}")), keyed);
        let expected = start(&engine, &s.large);
        group.bench_function(format!("cold_large{suffix}"), |b| {
            b.iter_batched(
                || evict(&engine, &s.large),
                |()| assert_eq!(start(&engine, &s.large), expected),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("warm_large{suffix}"), |b| {
            b.iter(|| black_box(start(&engine, &s.large)))
        });
        group.bench_function(format!("warm_large_from_file{suffix}"), |b| {
            b.iter(|| black_box(start_from_file(&engine, &s.large_path)))
        });
        // The same hit without instantiating: what the cache itself costs.
        group.bench_function(format!("warm_large_module_only{suffix}"), |b| {
            b.iter(|| black_box(Module::from_file(&engine, &s.large_path).unwrap()))
        });
        start(&engine, &s.small);
        group.bench_function(format!("warm_small{suffix}"), |b| {
            b.iter(|| black_box(start(&engine, &s.small)))
        });
    }
    let uncached = Engine::default();
    group.bench_function("no_cache_small", |b| {
        b.iter(|| black_box(start(&uncached, &s.small)))
    });
    group.finish();
}

fn kiln_run(cache_dir: &Path, wasm: &Path, keyed: bool, extra: &[&str]) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env("KILN_CACHE_DIR", cache_dir)
        .env_remove("KILN_LOG")
        .env_remove("KILN_ARTIFACT_KEY")
        .args(["run", wasm.to_str().unwrap()])
        .args(extra)
        .args(["--invoke", "f0", "1", "2"]);
    if keyed {
        command.env("KILN_CACHE_KEY", KEY_HEX);
    } else {
        command.env_remove("KILN_CACHE_KEY");
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    black_box(out.stdout);
}

fn processes(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("cache/kiln_run");
    group.sample_size(10);
    for keyed in [false, true] {
        let suffix = if keyed { "_keyed" } else { "" };
        let cache_dir = s.dir.join(format!("processes{suffix}"));
        group.bench_function(format!("cold_large{suffix}"), |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&cache_dir);
                },
                |()| kiln_run(&cache_dir, &s.large_path, keyed, &[]),
                BatchSize::PerIteration,
            )
        });
        kiln_run(&cache_dir, &s.large_path, keyed, &[]);
        group.bench_function(format!("warm_large{suffix}"), |b| {
            b.iter(|| kiln_run(&cache_dir, &s.large_path, keyed, &[]))
        });
        kiln_run(&cache_dir, &s.small_path, keyed, &[]);
        group.bench_function(format!("warm_small{suffix}"), |b| {
            b.iter(|| kiln_run(&cache_dir, &s.small_path, keyed, &[]))
        });
    }
    let cache_dir = s.dir.join("processes");
    group.bench_function("no_cache_small", |b| {
        b.iter(|| kiln_run(&cache_dir, &s.small_path, false, &["--no-cache"]))
    });
    group.finish();
}

/// What a hit costs beyond the load itself, for large inputs: the key and the MAC.
fn parts(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("cache/parts");
    group.measurement_time(Duration::from_secs(5));
    let hashed = module_of_size(HASHED);
    let hashed_path = s.dir.join("hashed.wasm");
    std::fs::write(&hashed_path, &hashed).unwrap();
    eprintln!("hashed module: {} bytes of wasm", hashed.len());
    let plain = cached_engine(&s.dir.join("parts"), false);
    let keyed = cached_engine(&s.dir.join("parts_keyed"), true);
    let plain_cache = plain.module_cache().unwrap();
    let keyed_cache = keyed.module_cache().unwrap();
    group.bench_function("read_30MiB_file", |b| {
        b.iter(|| black_box(std::fs::read(&hashed_path).unwrap()))
    });
    group.bench_function("key_30MiB_xxh3", |b| {
        b.iter(|| black_box(plain_cache.key(&hashed, plain.fingerprint())))
    });
    group.bench_function("key_30MiB_keyed_blake3", |b| {
        b.iter(|| black_box(keyed_cache.key(&hashed, keyed.fingerprint())))
    });
    // What a hit from a file pays: the key of the file, read in pieces.
    let file = std::fs::File::open(&hashed_path).unwrap();
    group.bench_function("key_30MiB_file_xxh3", |b| {
        b.iter(|| black_box(plain_cache.key_of_file(&file, plain.fingerprint()).unwrap()))
    });
    group.bench_function("key_30MiB_file_keyed_blake3", |b| {
        b.iter(|| black_box(keyed_cache.key_of_file(&file, keyed.fingerprint()).unwrap()))
    });
    // The MAC a keyed hit checks: the seal of the large module's entry.
    start(&keyed, &s.large);
    let (entry_key, _) = keyed_cache.key(&s.large, keyed.fingerprint());
    let entry = std::fs::read(keyed_cache.entry_path(&entry_key)).unwrap();
    eprintln!("large module's keyed entry: {} bytes", entry.len());
    group.bench_function("mac_large_entry", |b| {
        b.iter(|| kiln_artifact::seal::verify_seal(black_box(&entry), &key()).unwrap())
    });
    group.finish();
}

fn cache_benches(c: &mut Criterion) {
    let s = setup();
    parts(c, &s);
    in_process(c, &s);
    processes(c, &s);
}

criterion_group!(benches, cache_benches);
criterion_main!(benches);
