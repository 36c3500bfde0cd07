//! Helpers shared by the tests that build real programs: scratch directories, running
//! commands, building C/C++ for `wasm32-wasi` with clang and natively.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn programs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/programs")
}

/// A fresh directory under the target dir (not `/tmp`, which may be mounted `noexec`).
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-programs-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub const WASM1: &[&str] = &[];
pub const WASM2: &[&str] = &[
    "-mbulk-memory",
    "-mreference-types",
    "-msimd128",
    "-mnontrapping-fptoint",
    "-msign-ext",
];

/// Builds `source` for `wasm32-wasi` with `features`; fails with what to install if the
/// toolchain is missing.
pub fn build_wasm(source: &Path, out: &Path, features: &[&str], cxx: bool) {
    let compiler = if cxx { "clang++" } else { "clang" };
    let mut cmd = Command::new(compiler);
    cmd.args([
        "--target=wasm32-wasi",
        "--sysroot=/usr",
        "-O2",
        "-Wl,--strip-debug",
    ])
    .args(features)
    .arg(source)
    .arg("-o")
    .arg(out);
    if cxx {
        cmd.args(["-std=c++17", "-fno-exceptions"]);
    } else {
        cmd.arg("-lm");
    }
    let result = cmd.output();
    match result {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "cannot build {} for wasm32-wasi ({other:?}); install Debian's clang lld wasi-libc \
             libclang-rt-dev-wasm32 libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 (as .ci/run does)",
            source.display()
        ),
    }
}

pub fn build_native(source: &Path, out: &Path, cxx: bool) {
    let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
    cmd.args(["-O2", "-o"]).arg(out).arg(source);
    if cxx {
        cmd.arg("-std=c++17");
    } else {
        cmd.arg("-lm");
    }
    run(&mut cmd);
}

pub fn kiln(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_kiln"))
        // Every test shares one cache of its own (never the user's), so that runs also
        // exercise cache hits.
        .env(
            "KILN_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
        )
        .args(args))
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Checks that a `kiln run m --invoke answer 1` of a module adding `answer` succeeded and
/// printed `answer + 1`.
pub fn assert_answer(out: &Output, answer: i32) {
    assert!(
        out.status.success(),
        "status {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", answer + 1)
    );
}
