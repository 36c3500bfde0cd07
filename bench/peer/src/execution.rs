//! Execution times: the compute kernels of `programs/kernels.c` (exports that take a work
//! size and return a checksum) and WASI programs run through `_start` (such as the SQLite
//! workload), under both engines in their default configuration. Every engine's result must
//! match the other's before its time counts; each time is the median of several runs on a
//! module that was loaded and instantiated beforehand (instantiation is not in the time).

use std::time::{Duration, Instant};

/// The kernels the bench looks for, with the argument each is run with (about 50 to 150 ms
/// of work on this machine kind).
pub const KERNELS: &[(&str, i32)] = &[
    ("hash", 400),
    ("sort", 8),
    ("matmul", 40),
    ("nbody", 1_000_000),
    ("interp", 8_000_000),
    ("strings", 150),
];

/// Runs of each execution (the median is reported).
const RUNS: usize = 11;
/// Runs of the first call, each on a fresh instance.
const FIRST_CALL_RUNS: usize = 201;

/// What a kernel returned: integer kernels return `i32`, floating-point ones `f64`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Checksum {
    I32(i32),
    F64(u64),
}

/// One timed execution: its name, the median time per engine, and the result both agreed on.
pub struct Execution {
    pub name: String,
    pub kiln: Duration,
    pub wasmtime: Duration,
}

/// Whether execution is compared at Kiln's portable baseline (`KILN_PEER_CPU=baseline`)
/// rather than with code for every feature of this CPU (the default, and Wasmtime's own).
fn at_baseline() -> bool {
    std::env::var("KILN_PEER_CPU").as_deref() == Ok("baseline")
}

/// The CPU level both engines compile for, as printed above the execution table.
pub fn cpu_level() -> &'static str {
    if at_baseline() {
        "both engines at x86-64-v2 (Kiln's default baseline; KILN_PEER_CPU=baseline)"
    } else {
        "both engines for this CPU (Kiln `native`, Wasmtime's default)"
    }
}

/// Kiln's engine for execution: `native`, or the default baseline.
fn kiln_engine() -> kiln::Engine {
    let mut config = kiln::Config::new();
    if !at_baseline() {
        config.cpu(kiln::CpuLevel::Native);
    }
    kiln::Engine::new(&config).expect("kiln's engine")
}

/// Wasmtime's engine for execution: its default (code for every feature of the host CPU),
/// or restricted to Kiln's x86-64-v2 baseline (no AVX, FMA, BMI or LZCNT).
fn wasmtime_engine() -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    if at_baseline() {
        crate::baseline::restrict_to_kiln_baseline(&mut config);
    }
    wasmtime::Engine::new(&config).expect("wasmtime's engine")
}

/// The kernels `wasm` exports, each timed under both engines.
pub fn kernels(wasm: &[u8]) -> Vec<Execution> {
    let kiln_engine = kiln_engine();
    let kiln_module = kiln::Module::new(&kiln_engine, wasm).expect("kiln compiles");
    let mut kiln_store = kiln::Store::new(&kiln_engine, ());
    let kiln_instance = kiln::Linker::new(&kiln_engine)
        .instantiate(&mut kiln_store, &kiln_module)
        .expect("kernels have no imports");
    let wt_engine = wasmtime_engine();
    let wt_module = wasmtime::Module::new(&wt_engine, wasm).expect("wasmtime compiles");
    let mut wt_store = wasmtime::Store::new(&wt_engine, ());
    let wt_instance =
        wasmtime::Instance::new(&mut wt_store, &wt_module, &[]).expect("kernels have no imports");

    let mut rows = vec![first_call(
        &kiln_engine,
        &kiln_module,
        &wt_engine,
        &wt_module,
    )];
    // `KILN_PEER_KERNELS=matmul,sort` times only those kernels (for `perf record`).
    let only = std::env::var("KILN_PEER_KERNELS").ok();
    for &(name, arg) in KERNELS {
        let chosen = only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == name));
        if !chosen || kiln_instance.get_func(&mut kiln_store, name).is_none() {
            continue;
        }
        let mut kiln_run = || -> Checksum {
            let func = kiln_instance.get_func(&mut kiln_store, name).unwrap();
            let mut results = [kiln::Val::I32(0)];
            func.call(&mut kiln_store, &[kiln::Val::I32(arg)], &mut results)
                .expect("the kernel runs under kiln");
            match results[0] {
                kiln::Val::I32(v) => Checksum::I32(v),
                kiln::Val::F64(bits) => Checksum::F64(bits),
                ref other => panic!("{name} returned {other:?}"),
            }
        };
        let mut wt_run = || -> Checksum {
            let func = wt_instance.get_func(&mut wt_store, name).unwrap();
            let mut results = [wasmtime::Val::I32(0)];
            func.call(&mut wt_store, &[wasmtime::Val::I32(arg)], &mut results)
                .expect("the kernel runs under wasmtime");
            match results[0] {
                wasmtime::Val::I32(v) => Checksum::I32(v),
                wasmtime::Val::F64(bits) => Checksum::F64(bits),
                ref other => panic!("{name} returned {other:?}"),
            }
        };
        let expected = kiln_run();
        assert_eq!(
            expected,
            wt_run(),
            "{name}({arg}) differs between the engines"
        );
        // Alternate the engines run by run, so that a slow phase of the machine hits both.
        let mut kiln_times = Vec::with_capacity(RUNS);
        let mut wt_times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let began = Instant::now();
            assert_eq!(kiln_run(), expected);
            kiln_times.push(began.elapsed());
            let began = Instant::now();
            assert_eq!(wt_run(), expected);
            wt_times.push(began.elapsed());
        }
        rows.push(Execution {
            name: format!("{name}({arg})"),
            kiln: middle(kiln_times),
            wasmtime: middle(wt_times),
        });
    }
    rows
}

/// The first call of `interp(1)` on a fresh instance: looking the export up and entering
/// the module for the first time, with the instantiation before it untimed.
fn first_call(
    kiln_engine: &kiln::Engine,
    kiln_module: &kiln::Module,
    wt_engine: &wasmtime::Engine,
    wt_module: &wasmtime::Module,
) -> Execution {
    let kiln_linker = kiln::Linker::new(kiln_engine);
    let mut kiln_times = Vec::with_capacity(FIRST_CALL_RUNS);
    let mut wt_times = Vec::with_capacity(FIRST_CALL_RUNS);
    for _ in 0..FIRST_CALL_RUNS {
        let mut store = kiln::Store::new(kiln_engine, ());
        let instance = kiln_linker.instantiate(&mut store, kiln_module).unwrap();
        let began = Instant::now();
        let interp = instance
            .get_typed_func::<i32, i32>(&mut store, "interp")
            .unwrap();
        let result = interp.call(&mut store, 1).unwrap();
        kiln_times.push(began.elapsed());
        std::hint::black_box(result);

        let mut store = wasmtime::Store::new(wt_engine, ());
        let instance = wasmtime::Instance::new(&mut store, wt_module, &[]).unwrap();
        let began = Instant::now();
        let interp = instance
            .get_typed_func::<i32, i32>(&mut store, "interp")
            .unwrap();
        let result = interp.call(&mut store, 1).unwrap();
        wt_times.push(began.elapsed());
        std::hint::black_box(result);
    }
    Execution {
        name: "first call: interp(1)".into(),
        kiln: middle(kiln_times),
        wasmtime: middle(wt_times),
    }
}

/// The median of `times`.
pub fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Runs `_start` of a WASI command with `args` under both engines, output discarded; each
/// run gets a fresh instance, whose instantiation is not timed. Both must exit the same way.
pub fn wasi_command(wasm: &[u8], args: &[&str]) -> Execution {
    let kiln_engine = kiln_engine();
    let kiln_module = kiln::Module::new(&kiln_engine, wasm).expect("kiln compiles");
    let mut kiln_linker = kiln::Linker::new(&kiln_engine);
    kiln_wasi::add_to_linker(&mut kiln_linker, |ctx| ctx).unwrap();
    let kiln_run = || -> (Duration, Option<i32>) {
        let ctx = kiln_wasi::WasiCtx::builder()
            .args(args.iter().copied())
            .stdout(kiln_wasi::Stdio::Null)
            .stderr(kiln_wasi::Stdio::Null)
            .build();
        let mut store = kiln::Store::new(&kiln_engine, ctx);
        let instance = kiln_linker.instantiate(&mut store, &kiln_module).unwrap();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        let began = Instant::now();
        let status = match start.call(&mut store, ()) {
            Ok(()) => None,
            Err(e) => Some(kiln_wasi::exit_status(&e).unwrap_or_else(|| panic!("kiln: {e}"))),
        };
        (began.elapsed(), status)
    };

    let wt_engine = wasmtime_engine();
    let wt_module = wasmtime::Module::new(&wt_engine, wasm).expect("wasmtime compiles");
    let mut wt_linker = wasmtime::Linker::new(&wt_engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut wt_linker, |ctx| ctx).unwrap();
    let wt_run = || -> (Duration, Option<i32>) {
        let ctx = wasmtime_wasi::WasiCtxBuilder::new().args(args).build_p1();
        let mut store = wasmtime::Store::new(&wt_engine, ctx);
        let instance = wt_linker.instantiate(&mut store, &wt_module).unwrap();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        let began = Instant::now();
        let status = match start.call(&mut store, ()) {
            Ok(()) => None,
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Some(exit.0),
                None => panic!("wasmtime: {e:?}"),
            },
        };
        (began.elapsed(), status)
    };

    // `KILN_PEER_PROFILE=run-kiln` or `run-wasmtime` runs only that engine's `_start` (30
    // times, or `KILN_PEER_PROFILE_RUNS`), for `perf record` or callgrind, and prints the
    // median time.
    match std::env::var("KILN_PEER_PROFILE").as_deref() {
        Ok("run-kiln") => {
            let times = (0..profile_runs()).map(|_| kiln_run().0).collect();
            eprintln!("kiln alone: median {:?}", middle(times));
            std::process::exit(0);
        }
        Ok("run-wasmtime") => {
            let times = (0..profile_runs()).map(|_| wt_run().0).collect();
            eprintln!("wasmtime alone: median {:?}", middle(times));
            std::process::exit(0);
        }
        _ => {}
    }
    let (_, kiln_status) = kiln_run();
    let (_, wt_status) = wt_run();
    let success = |s: Option<i32>| s.unwrap_or(0);
    assert_eq!(
        success(kiln_status),
        success(wt_status),
        "the engines exit differently"
    );
    let mut kiln_times = Vec::with_capacity(RUNS);
    let mut wt_times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        kiln_times.push(kiln_run().0);
        wt_times.push(wt_run().0);
    }
    Execution {
        name: ["_start"]
            .iter()
            .chain(&args[1..])
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        kiln: middle(kiln_times),
        wasmtime: middle(wt_times),
    }
}

/// How many runs a `run-kiln` or `run-wasmtime` profile makes.
fn profile_runs() -> usize {
    std::env::var("KILN_PEER_PROFILE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}
