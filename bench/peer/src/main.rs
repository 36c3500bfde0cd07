//! Kiln against Wasmtime on the same modules, side by side in one process: compile time,
//! artifact size, loading the artifact from a file (Kiln unchecked and checked, Wasmtime's
//! `deserialize_file`), instantiation, load + instantiate. Medians over many runs, the engines
//! taking turns run by run, and the ratio Kiln / Wasmtime. Then execution times (see `execution`): the kernels a module
//! exports, and `_start` of WASI commands under each engine's WASI.
//!
//! `cargo run --release --manifest-path bench/peer/Cargo.toml --target-dir target -- a.wasm
//! [b.wasm ...]`. For the load and instantiation steps, imports are defined as functions that
//! fail when called (Wasmtime's `define_unknown_imports_as_traps`; the same by hand for
//! Kiln), so WASI programs instantiate without a WASI implementation. Both engines use
//! their default configuration.

mod baseline;
mod execution;
mod placement;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs of each timed step (the median is reported).
const RUNS: usize = 201;
const COMPILE_RUNS: usize = 3;
/// Runs of a first load (each of its own copy of the artifact file).
const FIRST_LOAD_RUNS: usize = 51;

fn median(f: &mut dyn FnMut(), runs: usize) -> Duration {
    interleaved(&mut [f], runs)[0]
}

/// The median time of each of `steps`, run in turn (one run of each, then the next round),
/// so that a phase in which the machine is slower or faster hits every step alike and the
/// ratios between them hold even when the absolute times drift.
fn interleaved(steps: &mut [&mut dyn FnMut()], runs: usize) -> Vec<Duration> {
    let mut times = vec![Vec::with_capacity(runs); steps.len()];
    for _ in 0..runs {
        for (step, times) in steps.iter_mut().zip(&mut times) {
            let start = Instant::now();
            step();
            times.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

#[derive(Default)]
struct Row {
    compile: Duration,
    artifact_bytes: u64,
    load: Duration,
    load_checked: Option<Duration>,
    instantiate: Duration,
    load_and_instantiate: Duration,
    first_load_and_instantiate: Duration,
}

/// Kiln's row and Wasmtime's for `wasm`: each compiles it (and writes its artifact into
/// `dir`), then every step runs for both engines in turn.
fn start_up_rows(wasm: &[u8], dir: &Path) -> (Row, Row) {
    let k_engine = kiln::Engine::default();
    let mut k_artifact = Vec::new();
    let k_compile = median(
        &mut || k_artifact = k_engine.precompile_module(wasm).expect("kiln compiles"),
        COMPILE_RUNS,
    );
    let k_path = dir.join("module.kiln");
    std::fs::write(&k_path, &k_artifact).unwrap();
    let w_engine = wasmtime::Engine::default();
    let mut w_artifact = Vec::new();
    let w_compile = median(
        &mut || w_artifact = w_engine.precompile_module(wasm).expect("wasmtime compiles"),
        COMPILE_RUNS,
    );
    let w_path = dir.join("module.cwasm");
    std::fs::write(&w_path, &w_artifact).unwrap();

    // SAFETY: the artifacts were written by these engines just now and are not changed
    // while they are loaded.
    let k_load = || unsafe { kiln::Module::deserialize_file_unchecked(&k_engine, &k_path) };
    // SAFETY: the same file Kiln's engine just wrote, unchanged while loaded; the checked load
    // verifies it as well.
    let k_load_checked = || unsafe { kiln::Module::deserialize_file(&k_engine, &k_path) };
    // SAFETY: the artifact Wasmtime's engine just wrote, unchanged while loaded.
    let w_load = || unsafe { wasmtime::Module::deserialize_file(&w_engine, &w_path) };
    let loads = interleaved(
        &mut [
            &mut || drop(k_load().unwrap()),
            &mut || drop(k_load_checked().unwrap()),
            &mut || drop(w_load().unwrap()),
        ],
        RUNS,
    );

    let k_module = k_load().unwrap();
    let k_linker = kiln_linker(&k_engine, &k_module);
    let k_instantiate = |module: &kiln::Module| {
        let mut store = kiln::Store::new(&k_engine, ());
        k_linker
            .instantiate(&mut store, module)
            .expect("kiln instantiates");
    };
    let w_module = w_load().unwrap();
    let mut w_linker = wasmtime::Linker::new(&w_engine);
    w_linker.define_unknown_imports_as_traps(&w_module).unwrap();
    let w_instantiate = |module: &wasmtime::Module| {
        let mut store = wasmtime::Store::new(&w_engine, ());
        w_linker
            .instantiate(&mut store, module)
            .expect("wasmtime instantiates");
    };
    if std::env::var("KILN_PEER_PROFILE").as_deref() == Ok("instantiate-interleaved") {
        for _ in 0..50_000 {
            k_instantiate(&k_module);
            w_instantiate(&w_module);
        }
        std::process::exit(0);
    }
    // Instantiating one loaded module again and again, and loading anew each time, are
    // two scenarios: mixed, Kiln's memory pool would hold the other module's image.
    let instantiations = interleaved(
        &mut [&mut || k_instantiate(&k_module), &mut || {
            w_instantiate(&w_module)
        }],
        RUNS,
    );
    let starts = interleaved(
        &mut [&mut || k_instantiate(&k_load().unwrap()), &mut || {
            w_instantiate(&w_load().unwrap())
        }],
        RUNS,
    );
    // A host that starts many different modules loads each file for the first time: every
    // start then maps its file anew (Kiln keeps no mapping of it yet). Each run loads its
    // own copy, written and synced beforehand (in the page cache, clean, as a module file
    // written long before would be).
    let copies = |artifact: &[u8], extension: &str| -> Vec<PathBuf> {
        (0..FIRST_LOAD_RUNS)
            .map(|i| {
                let path = dir.join(format!("first-{i}.{extension}"));
                let mut file = std::fs::File::create(&path).unwrap();
                std::io::Write::write_all(&mut file, artifact).unwrap();
                file.sync_all().unwrap();
                path
            })
            .collect()
    };
    let (k_copies, w_copies) = (copies(&k_artifact, "kiln"), copies(&w_artifact, "cwasm"));
    let (mut k_next, mut w_next) = (k_copies.iter(), w_copies.iter());
    let first_starts = interleaved(
        &mut [
            &mut || {
                let path = k_next.next().unwrap();
                // SAFETY: a copy of the artifact Kiln's engine wrote, unchanged while loaded.
                let module = unsafe { kiln::Module::deserialize_file_unchecked(&k_engine, path) };
                k_instantiate(&module.unwrap());
            },
            &mut || {
                let path = w_next.next().unwrap();
                // SAFETY: a copy of the artifact Wasmtime's engine wrote, unchanged while
                // loaded.
                let module = unsafe { wasmtime::Module::deserialize_file(&w_engine, path) };
                w_instantiate(&module.unwrap());
            },
        ],
        FIRST_LOAD_RUNS,
    );
    for path in k_copies.iter().chain(&w_copies) {
        std::fs::remove_file(path).unwrap();
    }
    let kiln = Row {
        compile: k_compile,
        artifact_bytes: k_artifact.len() as u64,
        load: loads[0],
        load_checked: Some(loads[1]),
        instantiate: instantiations[0],
        load_and_instantiate: starts[0],
        first_load_and_instantiate: first_starts[0],
    };
    let wasmtime = Row {
        compile: w_compile,
        artifact_bytes: w_artifact.len() as u64,
        load: loads[2],
        load_checked: None,
        instantiate: instantiations[1],
        load_and_instantiate: starts[1],
        first_load_and_instantiate: first_starts[1],
    };
    (kiln, wasmtime)
}

/// A linker that defines every function import of `module` as a function that fails.
fn kiln_linker(engine: &kiln::Engine, module: &kiln::Module) -> kiln::Linker<()> {
    let mut linker = kiln::Linker::new(engine);
    for import in module.imports() {
        let ty = import.ty();
        let ty = ty
            .func()
            .expect("only function imports are supported")
            .clone();
        linker
            .func_new(import.module(), import.name(), ty, |_, _, _| {
                Err(kiln::Error::Link("not provided by the peer bench".into()))
            })
            .unwrap();
    }
    linker
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
}

fn main() {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        eprintln!("usage: kiln-peer-bench MODULE.wasm...");
        std::process::exit(2);
    }
    // `KILN_PEER_PROFILE=instantiate` loops Kiln's instantiation of the first module only,
    // `KILN_PEER_PROFILE=load-instantiate` its unchecked load and instantiation,
    // `KILN_PEER_PROFILE=checked-load` its checked load, `first-load-instantiate` loads
    // and instantiations each of a file loaded for the first time, for `perf record`;
    // `KILN_PEER_PROFILE=instantiate-interleaved` (in `start_up_rows`) alternates the two
    // engines' instantiations of the first module after compiling it.
    let profile = std::env::var("KILN_PEER_PROFILE").unwrap_or_default();
    if profile == "first-load-instantiate" {
        // 4,000 copies in turn (far more than Kiln keeps mappings of), as a host that
        // starts many different modules.
        let engine = kiln::Engine::default();
        let module = kiln::Module::new(&engine, std::fs::read(&paths[0]).unwrap()).unwrap();
        let artifact = module.serialize().unwrap();
        let linker = kiln_linker(&engine, &module);
        let dir = std::env::temp_dir().join(format!("kiln-peer-first-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copies: Vec<PathBuf> = (0..4000)
            .map(|i| {
                let path = dir.join(format!("{i}.kiln"));
                std::fs::write(&path, &artifact).unwrap();
                path
            })
            .collect();
        let mut steps = [const { Vec::new() }; 3];
        for path in copies.iter().cycle().take(40_000) {
            let began = Instant::now();
            // SAFETY: a copy of the artifact this engine wrote just now, unchanged while
            // loaded.
            let loaded = unsafe { kiln::Module::deserialize_file_unchecked(&engine, path) };
            let loaded = loaded.unwrap();
            let loaded_at = Instant::now();
            let mut store = kiln::Store::new(&engine, ());
            linker.instantiate(&mut store, &loaded).unwrap();
            let instantiated_at = Instant::now();
            drop(store);
            drop(loaded);
            steps[0].push(loaded_at - began);
            steps[1].push(instantiated_at - loaded_at);
            steps[2].push(instantiated_at.elapsed());
        }
        let [load, instantiate, drop_both] = steps.map(execution::middle);
        eprintln!("medians: load {load:?}, instantiate {instantiate:?}, drop {drop_both:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    if ["instantiate", "load-instantiate", "checked-load"].contains(&profile.as_str()) {
        let engine = kiln::Engine::default();
        let module = kiln::Module::new(&engine, std::fs::read(&paths[0]).unwrap()).unwrap();
        let path = std::env::temp_dir().join(format!("kiln-peer-{}.kiln", std::process::id()));
        std::fs::write(&path, module.serialize().unwrap()).unwrap();
        let linker = kiln_linker(&engine, &module);
        for _ in 0..100_000 {
            let mut store = kiln::Store::new(&engine, ());
            if profile == "instantiate" {
                linker.instantiate(&mut store, &module).unwrap();
            } else if profile == "checked-load" {
                // SAFETY: the artifact was written by this engine just now and is not
                // changed while it is loaded; the checked load also verifies its bytes.
                let loaded = unsafe { kiln::Module::deserialize_file(&engine, &path) };
                std::hint::black_box(loaded.unwrap());
            } else {
                // SAFETY: the artifact was written by this engine just now and is not
                // changed while it is loaded.
                let loaded = unsafe { kiln::Module::deserialize_file_unchecked(&engine, &path) };
                linker.instantiate(&mut store, &loaded.unwrap()).unwrap();
            }
        }
        std::fs::remove_file(&path).unwrap();
        return;
    }
    let dir = std::env::temp_dir().join(format!("kiln-peer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| module | wasm bytes | step | Kiln | Wasmtime | Kiln / Wasmtime |");
    println!("|---|---:|---|---:|---:|---:|");
    for path in &paths {
        let wasm = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        if profile.starts_with("run-") {
            // Straight to execution (`execution::wasi_command` runs the profile).
            break;
        }
        let (k, w) = start_up_rows(&wasm, &dir);
        let rows: [(&str, String, String, String); 7] = [
            (
                "compile",
                format!("{:.1} ms", k.compile.as_secs_f64() * 1e3),
                format!("{:.1} ms", w.compile.as_secs_f64() * 1e3),
                ratio(k.compile, w.compile),
            ),
            (
                "artifact bytes",
                k.artifact_bytes.to_string(),
                w.artifact_bytes.to_string(),
                format!("{:.2}", k.artifact_bytes as f64 / w.artifact_bytes as f64),
            ),
            (
                "load (unchecked)",
                us(k.load),
                us(w.load),
                ratio(k.load, w.load),
            ),
            (
                "load (Kiln checked)",
                us(k.load_checked.unwrap()),
                us(w.load),
                ratio(k.load_checked.unwrap(), w.load),
            ),
            (
                "instantiate",
                us(k.instantiate),
                us(w.instantiate),
                ratio(k.instantiate, w.instantiate),
            ),
            (
                "load + instantiate",
                us(k.load_and_instantiate),
                us(w.load_and_instantiate),
                ratio(k.load_and_instantiate, w.load_and_instantiate),
            ),
            (
                "first load + instantiate",
                us(k.first_load_and_instantiate),
                us(w.first_load_and_instantiate),
                ratio(k.first_load_and_instantiate, w.first_load_and_instantiate),
            ),
        ];
        for (step, kiln, wasmtime, r) in rows {
            println!(
                "| {name} | {} | {step} | {kiln} | {wasmtime} | {r} |",
                wasm.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("Execution, {}:", execution::cpu_level());
    println!();
    println!("| module | execution | Kiln | Wasmtime | Kiln / Wasmtime |");
    println!("|---|---|---:|---:|---:|");
    for path in &paths {
        let wasm = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let module = kiln::Module::new(&kiln::Engine::default(), &wasm).expect("kiln compiles");
        let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
        let mut rows = Vec::new();
        if execution::KERNELS
            .iter()
            .any(|(kernel, _)| exports.iter().any(|e| e == kernel))
        {
            rows.extend(execution::kernels(&wasm));
        }
        if exports.iter().any(|e| e == "_start") {
            rows.push(execution::wasi_command(&wasm, &[&name]));
        }
        for row in rows {
            println!(
                "| {name} | {} | {} | {} | {} |",
                row.name,
                duration(row.kiln),
                duration(row.wasmtime),
                ratio(row.kiln, row.wasmtime)
            );
        }
    }
    if let Some(placements) = std::env::var("KILN_PEER_PLACEMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        placement_table(&paths, placements);
    }
}

/// With `KILN_PEER_PLACEMENTS=N`, the kernels again under N code placements
/// (`placement::variant` with 0..N never-run stores ahead of every function's code): each
/// engine's median over the placements of its per-placement medians, and the range of the
/// per-placement ratios.
fn placement_table(paths: &[PathBuf], placements: u32) {
    println!();
    println!(
        "Execution over {placements} code placements, {}:",
        execution::cpu_level()
    );
    println!();
    println!(
        "| module | kernel | Kiln (median of placements) | Wasmtime (median of placements) | Kiln / Wasmtime | per-placement ratios |"
    );
    println!("|---|---|---:|---:|---:|---|");
    for path in paths {
        let wasm = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let module = kiln::Module::new(&kiln::Engine::default(), &wasm).expect("kiln compiles");
        if !module
            .exports()
            .any(|e| execution::KERNELS.iter().any(|(k, _)| *k == e.name()))
        {
            continue;
        }
        // Per kernel: (name, Kiln times, Wasmtime times), one entry per placement.
        let mut kernels: Vec<(String, Vec<Duration>, Vec<Duration>)> = Vec::new();
        for stores in 0..placements {
            let variant = placement::variant(&wasm, stores);
            // `KILN_PEER_PLACEMENT_DIR=dir` keeps each variant, for `disasm`.
            if let Ok(dir) = std::env::var("KILN_PEER_PLACEMENT_DIR") {
                let file = Path::new(&dir).join(format!("{name}.{stores}.wasm"));
                std::fs::write(file, &variant).unwrap();
            }
            let rows = execution::kernels(&variant);
            eprintln!(
                "placement {stores}: {}",
                rows.iter()
                    .skip(1)
                    .map(|r| format!(
                        "{} {} / {} = {}",
                        r.name,
                        duration(r.kiln),
                        duration(r.wasmtime),
                        ratio(r.kiln, r.wasmtime)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            // The first row is the first call, which placement does not concern.
            for row in rows.into_iter().skip(1) {
                match kernels.iter_mut().find(|(n, ..)| *n == row.name) {
                    Some((_, k, w)) => {
                        k.push(row.kiln);
                        w.push(row.wasmtime);
                    }
                    None => kernels.push((row.name, vec![row.kiln], vec![row.wasmtime])),
                }
            }
        }
        for (kernel, kiln_times, wt_times) in kernels {
            let mut ratios: Vec<f64> = kiln_times
                .iter()
                .zip(&wt_times)
                .map(|(k, w)| k.as_secs_f64() / w.as_secs_f64())
                .collect();
            ratios.sort_by(f64::total_cmp);
            let (kiln, wasmtime) = (execution::middle(kiln_times), execution::middle(wt_times));
            println!(
                "| {name} | {kernel} | {} | {} | {} | {:.2}-{:.2} |",
                duration(kiln),
                duration(wasmtime),
                ratio(kiln, wasmtime),
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}

/// Microseconds below a millisecond, milliseconds above.
fn duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        us(d)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
