//! Loading compiled artifacts from disk, by module size: checked (`deserialize_file`),
//! unchecked (`deserialize_file_unchecked`), and as a floor the cost of opening the file and
//! reading its header or mapping it.
//!
//! Modules of about 1 KiB, 1 MiB and 10 MiB of wasm (many small functions, every fourth one
//! exported) are compiled once each in setup and written to a temporary directory. The
//! unchecked load reads the metadata in place, so it should not grow with the module.

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kiln::{Engine, Module};

#[path = "support/generated_module.rs"]
mod generated_module;
use generated_module::module_of_size;

struct Case {
    label: &'static str,
    wasm_len: usize,
    path: PathBuf,
    sealed_path: PathBuf,
    artifact_len: usize,
}

fn prepare(engine: &Engine, dir: &Path, label: &'static str, target: usize) -> Case {
    let wasm = module_of_size(target);
    let start = Instant::now();
    let artifact = engine.precompile_module(&wasm).expect("compiles");
    let compile = start.elapsed();
    let path = dir.join(format!("{label}.kiln"));
    std::fs::write(&path, &artifact).unwrap();
    // What an engine holding `sealing_key()` writes for the same module.
    let mut sealed = artifact.clone();
    kiln_artifact::seal::seal(&mut sealed, &sealing_key()).unwrap();
    let sealed_path = dir.join(format!("{label}-sealed.kiln"));
    std::fs::write(&sealed_path, &sealed).unwrap();
    // Both loaders accept the file before anything is measured.
    // SAFETY: the artifacts were written by Kiln in this benchmark's setup and are not changed while loaded.
    unsafe { Module::deserialize_file(engine, &path) }.expect("checked load");
    // SAFETY: the file was just written by this engine and nothing changes it while mapped.
    unsafe { Module::deserialize_file_unchecked(engine, &path) }.expect("unchecked load");
    eprintln!(
        "{label}: {} bytes of wasm, {} bytes of artifact, compiled in {:.2?}",
        wasm.len(),
        artifact.len(),
        compile
    );
    Case {
        label,
        wasm_len: wasm.len(),
        path,
        sealed_path,
        artifact_len: artifact.len(),
    }
}

fn sealing_key() -> kiln::ArtifactKey {
    kiln::ArtifactKey::new([0x4b; 32])
}

fn benches(c: &mut Criterion) {
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        prepare(&engine, dir.path(), "1KiB", 1 << 10),
        prepare(&engine, dir.path(), "1MiB", 1 << 20),
        prepare(&engine, dir.path(), "10MiB", 10 << 20),
    ];

    let keyed = {
        let mut config = kiln::Config::new();
        config.artifact_key(sealing_key());
        Engine::new(&config).unwrap()
    };
    let mut g = c.benchmark_group("load");
    for case in &cases {
        let id = |what: &str| {
            BenchmarkId::new(
                what,
                format!(
                    "{} (wasm {} B, artifact {} B)",
                    case.label, case.wasm_len, case.artifact_len
                ),
            )
        };
        g.bench_function(id("floor_open_read_header"), |b| {
            b.iter(|| {
                let mut f = File::open(black_box(&case.path)).unwrap();
                let mut header = [0u8; 512];
                f.read_exact(&mut header).unwrap();
                black_box(header[0])
            })
        });
        g.bench_function(id("floor_open_mmap"), |b| {
            b.iter(|| {
                let f = File::open(black_box(&case.path)).unwrap();
                // SAFETY: the file is private to this benchmark and is not modified while
                // mapped.
                let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
                black_box(map[0])
            })
        });
        g.bench_function(id("deserialize_file_unchecked"), |b| {
            b.iter(|| {
                // SAFETY: written by this engine in `prepare` and unchanged since.
                unsafe { Module::deserialize_file_unchecked(&engine, black_box(&case.path)) }
                    .unwrap()
            })
        });
        g.bench_function(id("deserialize_file_sealed"), |b| {
            b.iter(|| {
                Module::deserialize_file_sealed(&keyed, black_box(&case.sealed_path)).unwrap()
            })
        });
        g.bench_function(id("deserialize_file_checked"), |b| {
            // SAFETY: the artifacts were written by Kiln in this benchmark's setup and are not changed while loaded.
            b.iter(|| unsafe { Module::deserialize_file(&engine, black_box(&case.path)) }.unwrap())
        });
    }
    g.finish();
}

criterion_group!(load, benches);
criterion_main!(load);
