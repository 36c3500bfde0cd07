//! Real programs under `kiln run`, checked against the same source built natively: C and
//! C++ built with Debian's clang for `wasm32-wasi` (as WebAssembly 1.0 and as 2.0 with
//! SIMD, bulk memory, reference types, saturating conversions and sign extension), run
//! from the `.wasm` and from an artifact compiled with explicit bounds checks, and also
//! cross-compiled for aarch64; and an
//! AssemblyScript module (a second toolchain) checked against Rust reference
//! implementations of its functions. See `tests/programs/README.md`.

mod common;

use std::process::Command;

use common::{WASM1, WASM2, build_native, build_wasm, kiln, path, programs_dir, run, scratch};

/// Builds `name` natively and for wasm in both feature sets, runs each wasm build directly
/// and as an artifact with explicit bounds checks, and compares every output with the
/// native one.
fn check_program(name: &str, cxx: bool, args: &[&str]) {
    let dir = scratch(name);
    let source = programs_dir().join(name);
    let native = dir.join("native");
    build_native(&source, &native, cxx);
    let expected = run(Command::new(&native).args(args)).stdout;
    assert!(expected.len() > 100, "the native build prints its results");

    for (label, features) in [("wasm1", WASM1), ("wasm2", WASM2)] {
        let wasm = dir.join(format!("{label}.wasm"));
        build_wasm(&source, &wasm, features, cxx);
        let direct = kiln(&[&["run", path(&wasm), "--"], args].concat());
        assert_eq!(
            String::from_utf8_lossy(&direct.stdout),
            String::from_utf8_lossy(&expected),
            "{name} ({label}) under `kiln run` differs from the native build"
        );

        let artifact = dir.join(format!("{label}.kiln"));
        kiln(&[
            "compile",
            path(&wasm),
            "-o",
            path(&artifact),
            "--bounds-checks",
            "explicit",
        ]);
        let compiled =
            kiln(&[&["run", "--allow-precompiled", path(&artifact), "--"], args].concat());
        assert_eq!(
            String::from_utf8_lossy(&compiled.stdout),
            String::from_utf8_lossy(&expected),
            "{name} ({label}, explicit bounds checks) differs from the native build"
        );

        // The same module cross-compiles for aarch64 (no aarch64 machine here to run it).
        let arm = dir.join(format!("{label}-aarch64.kiln"));
        kiln(&[
            "compile",
            path(&wasm),
            "-o",
            path(&arm),
            "--target",
            "aarch64-unknown-linux-gnu",
        ]);
        let inspect = kiln(&["inspect", path(&arm)]);
        assert!(String::from_utf8_lossy(&inspect.stdout).contains("aarch64-unknown-linux-gnu"));
    }
}

#[test]
fn c_kernels_match_native() {
    check_program("kernels.c", false, &["2"]);
}

#[test]
fn cxx_containers_match_native() {
    check_program("containers.cpp", true, &[]);
}

// ---- AssemblyScript: reference implementations of tests/programs/assemblyscript/kernels.ts

const N: usize = 1024;

struct Random(u32);

impl Random {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// `fill(rounds)`: the buffer's words after `rounds` passes.
    fn fill(&mut self, buf: &mut [u8], rounds: usize) {
        for i in 0..N * rounds {
            let at = (i % N) * 4;
            buf[at..at + 4].copy_from_slice(&self.next().to_le_bytes());
        }
    }
}

fn word(buf: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap())
}

fn simd_max_sum(n: i32) -> u32 {
    let mut buf = vec![0u8; N * 4];
    Random((n as u32).wrapping_mul(2654435761)).fill(&mut buf, 2);
    let mut acc = [0i32; 4];
    for i in (0..N / 2).step_by(4) {
        for (k, lane) in acc.iter_mut().enumerate() {
            let (a, b) = (word(&buf, i + k), word(&buf, i + k + N / 2));
            *lane = lane.wrapping_add(a.max(b)) ^ (b << 3);
        }
    }
    let [a, b, c, d] = acc.map(|l| l as u32);
    a.wrapping_add(b.wrapping_mul(3))
        .wrapping_add(c.wrapping_mul(5))
        .wrapping_add(d.wrapping_mul(7))
}

fn bulk_hash(n: i32) -> u32 {
    let mut buf = vec![0u8; N * 4];
    Random((n as u32).wrapping_add(17)).fill(&mut buf, 1);
    buf[100..300].fill(n as u8);
    buf.copy_within(0..1000, 50);
    buf.copy_within(30..2030, 0);
    buf.iter().fold(2166136261u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    })
}

fn pipeline(n: i32) -> i64 {
    let steps: [fn(i64) -> i64; 3] = [
        |x| x.wrapping_mul(2),
        |x| x.wrapping_add(7),
        |x| x ^ ((x as u64) >> 5) as i64,
    ];
    (0..30).fold(i64::from(n), |v, i| steps[((i * 7 + n) % 3) as usize](v))
}

fn float_lanes(n: i32) -> i32 {
    let mut acc = [0i32; 4];
    for i in 0..64 {
        let x = [
            (i + n) as f32,
            (i * 3) as f32,
            (i * i) as f32,
            (n - i) as f32,
        ];
        for (lane, x) in acc.iter_mut().zip(x) {
            // Rust's float-to-int `as` saturates, like `i32x4.trunc_sat_f32x4_s`.
            *lane = lane.wrapping_add((x.abs().sqrt() * 1000.5f32) as i32);
        }
    }
    acc[0] ^ acc[1] ^ acc[2] ^ acc[3]
}

#[test]
fn assemblyscript_kernels_match_reference() {
    let wasm = programs_dir().join("assemblyscript/kernels-as.wasm");
    let dir = scratch("assemblyscript");
    let artifact = dir.join("kernels-as.kiln");
    kiln(&["compile", path(&wasm), "-o", path(&artifact)]);
    let invoke = |func: &str, n: i32| -> String {
        let out = kiln(&[
            "run",
            "--allow-precompiled",
            path(&artifact),
            "--invoke",
            func,
            &n.to_string(),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for n in [0, 1, 5, 77, 1000, -3] {
        assert_eq!(
            invoke("simdMaxSum", n),
            (simd_max_sum(n) as i32).to_string(),
            "{n}"
        );
        assert_eq!(
            invoke("bulkHash", n),
            (bulk_hash(n) as i32).to_string(),
            "{n}"
        );
        assert_eq!(invoke("floatLanes", n), float_lanes(n).to_string(), "{n}");
        if n >= 0 {
            assert_eq!(invoke("pipeline", n), pipeline(n).to_string(), "{n}");
        }
    }
}
