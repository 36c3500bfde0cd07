//! End-to-end tests of the `kiln` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ADD_WAT: &str = r#"(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "pair") (param i64 f64) (result i64 f64)
    local.get 0 local.get 1)
  (func (export "boom") unreachable)
  (memory (export "mem") 1))
"#;

fn kiln(args: &[&str]) -> Output {
    kiln_with_key(args, None)
}

/// Runs `kiln` with `KILN_ARTIFACT_KEY` set to `key`, or unset.
fn kiln_with_key(args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    // Every test shares one cache of its own (never the user's), so that runs also exercise
    // cache hits.
    command.env(
        "KILN_CACHE_DIR",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
    );
    command.args(args).env_remove("KILN_ARTIFACT_KEY");
    if let Some(key) = key {
        command.env("KILN_ARTIFACT_KEY", key);
    }
    command.output().expect("run the kiln binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh directory under the target dir (not `/tmp`, which may be mounted `noexec`).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_one_line_error(out: &Output) {
    assert!(!out.status.success(), "expected failure: {}", stdout(out));
    let err = stderr(out);
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn compile_then_run_an_artifact() {
    let dir = scratch("compile-run");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let artifact = dir.join("add.kiln");
    let out = kiln(&["compile", path(&wat), "-o", path(&artifact)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&artifact),
        "--invoke",
        "add",
        "40",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "42\n");

    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&artifact),
        "--invoke",
        "pair",
        "-7",
        "1.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "-7\n1.5\n");

    // The text module runs directly too.
    let out = kiln(&["run", path(&wat), "--invoke", "add", "1", "2"]);
    assert_eq!(stdout(&out), "3\n", "{}", stderr(&out));
}

#[test]
fn cpu_levels_are_chosen_recorded_and_run() {
    let dir = scratch("cpu-levels");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let native = dir.join("native.kiln");
    let out = kiln(&[
        "compile",
        "--cpu",
        "native",
        path(&wat),
        "-o",
        path(&native),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kiln(&["inspect", path(&native)]);
    let features = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("cpu features:").map(|f| f.trim().to_owned()))
        .expect("inspect prints the CPU features");
    let baseline = kiln_artifact::CpuLevel::Baseline
        .features(std::env::consts::ARCH)
        .unwrap();
    for feature in baseline {
        assert!(features.split(',').any(|f| f == feature), "{features}");
    }
    // Runs without naming the level again: the artifact carries it.
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&native),
        "--invoke",
        "add",
        "40",
        "2",
    ]);
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    let out = kiln(&[
        "run",
        "--cpu",
        "native",
        path(&wat),
        "--invoke",
        "add",
        "1",
        "2",
    ]);
    assert_eq!(stdout(&out), "3\n", "{}", stderr(&out));

    for bad in ["avx9", "x86-64-v9!"] {
        let out = kiln(&["compile", "--cpu", bad, path(&wat), "-o", path(&native)]);
        assert!(!out.status.success(), "--cpu {bad} was accepted");
        assert!(stderr(&out).contains(bad), "{}", stderr(&out));
    }
    let out = kiln(&[
        "compile",
        "--target",
        "aarch64-unknown-linux-gnu",
        "--cpu",
        "x86-64-v3",
        path(&wat),
        "-o",
        path(&native),
    ]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("x86-64-v3"), "{}", stderr(&out));
}

#[test]
fn artifacts_run_only_when_sealed_or_allowed() {
    let dir = scratch("sealed");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let key = "5e".repeat(32);
    let other_key = "a1".repeat(32);
    let sealed = dir.join("sealed.kiln");
    let out = kiln_with_key(&["compile", path(&wat), "-o", path(&sealed)], Some(&key));
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = dir.join("plain.kiln");
    let out = kiln(&["compile", path(&wat), "-o", path(&plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let invoke = |file: &Path, extra: &[&str], key: Option<&str>| {
        kiln_with_key(
            &[&["run"], extra, &[path(file), "--invoke", "add", "40", "2"]].concat(),
            key,
        )
    };

    assert!(stdout(&kiln(&["inspect", path(&sealed)])).contains("seal:           keyed blake3"));
    assert!(stdout(&kiln(&["inspect", path(&plain)])).contains("seal:           none"));

    // A seal that verifies under the key runs without asking.
    let out = invoke(&sealed, &[], Some(&key));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "42\n");

    // Without the key, or under another key, or unsealed: refused, naming the way out.
    for (file, key) in [
        (&sealed, None),
        (&sealed, Some(other_key.as_str())),
        (&plain, None),
        (&plain, Some(key.as_str())),
    ] {
        let out = invoke(file, &[], key);
        assert_one_line_error(&out);
        assert!(
            stderr(&out).contains("--allow-precompiled"),
            "{}",
            stderr(&out)
        );
        let out = invoke(file, &["--allow-precompiled"], key);
        assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    }
    assert!(stderr(&invoke(&sealed, &[], Some(&other_key))).contains("seal does not verify"));
    assert!(stderr(&invoke(&plain, &[], Some(&key))).contains("not sealed"));

    // A key that is not 64 hex digits is an error, not a silent unsealed compile.
    let out = kiln_with_key(&["compile", path(&wat), "-o", path(&plain)], Some("abc"));
    assert_one_line_error(&out);
    assert!(
        stderr(&out).contains("KILN_ARTIFACT_KEY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_reports_traps_with_a_backtrace_and_bad_arguments_in_one_line() {
    let dir = scratch("run-errors");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let out = kiln(&["run", path(&wat), "--invoke", "boom"]);
    assert_eq!(out.status.code(), Some(134));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("error: wasm trap: unreachable (in function 2 at wasm offset 0x"),
        "{err}"
    );
    assert_eq!(lines[1], "wasm backtrace:");
    // The frame names the same function and offset as the headline.
    let offset = lines[0].rsplit(' ').next().unwrap().trim_end_matches(')');
    assert_eq!(lines[2], format!("  0: function 2 at wasm offset {offset}"));

    assert_one_line_error(&kiln(&["run", path(&wat), "--invoke", "add", "1"]));
    assert_one_line_error(&kiln(&["run", path(&wat), "--invoke", "add", "x", "1"]));
    assert_one_line_error(&kiln(&["run", path(&wat), "--invoke", "nope"]));
}

#[test]
fn inspect_lists_header_and_exports() {
    let dir = scratch("inspect");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let artifact = dir.join("add.kiln");
    let out = kiln(&[
        "compile",
        path(&wat),
        "-o",
        path(&artifact),
        "--opt-level",
        "none",
        "--bounds-checks",
        "explicit",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `run` configures its engine from the artifact's settings.
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&artifact),
        "--invoke",
        "add",
        "2",
        "3",
    ]);
    assert_eq!(stdout(&out), "5\n", "{}", stderr(&out));

    let out = kiln(&["inspect", path(&artifact)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "format version:",
        "target:",
        "cpu features:",
        "opt_level=none",
        "bounds_checks=explicit",
        "checksum:",
        "metadata",
        "add -> func 0",
        "pair -> func 1",
        "mem -> memory 0",
        "code offset",
        "memories: 1",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }

    // A closed standard output (`kiln inspect add.kiln | head -0`) stops the command
    // quietly, with the status of a tool killed by SIGPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["inspect", path(&artifact)])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    // Every command that prints, for example `kiln cache gc`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_CACHE_DIR", dir.join("cache"))
        .args(["cache", "gc"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn corrupt_files_give_one_line_errors() {
    let dir = scratch("corrupt");
    let wat = dir.join("add.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let artifact = dir.join("add.kiln");
    assert!(
        kiln(&["compile", path(&wat), "-o", path(&artifact)])
            .status
            .success()
    );
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let corrupt = dir.join("corrupt.kiln");
    std::fs::write(&corrupt, &bytes).unwrap();

    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&corrupt),
        "--invoke",
        "add",
        "1",
        "2",
    ]);
    assert_one_line_error(&out);
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
    assert_one_line_error(&kiln(&["inspect", path(&corrupt)]));

    bytes.truncate(100);
    std::fs::write(&corrupt, &bytes).unwrap();
    assert_one_line_error(&kiln(&["inspect", path(&corrupt)]));
    assert_one_line_error(&kiln(&["run", path(&corrupt)]));

    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    assert_one_line_error(&kiln(&["run", path(&garbage)]));
    assert_one_line_error(&kiln(&["compile", path(&garbage)]));
    assert_one_line_error(&kiln(&["inspect", path(&garbage)]));
    assert_one_line_error(&kiln(&["run", path(&dir.join("missing.wasm"))]));
}

fn hello_wasm() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/programs/hello.wasm")
}

#[test]
fn runs_a_c_program_through_wasi() {
    let out = kiln(&["run", path(&hello_wasm())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Hello from Kiln!\n");

    // The README's first command: the file comes from the directory given with --dir.
    let programs = hello_wasm().parent().unwrap().to_owned();
    let dir = format!("{}::/programs", path(&programs));
    let out = kiln(&[
        "run",
        "--dir",
        &dir,
        path(&hello_wasm()),
        "/programs/hello.txt",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = std::fs::read_to_string(programs.join("hello.txt")).unwrap();
    assert_eq!(
        stdout(&out),
        format!("Hello from Kiln!\n/programs/hello.txt: {expected}")
    );
    // Without it the program cannot reach the file, and says why.
    let out = kiln(&["run", path(&hello_wasm()), "/programs/hello.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/programs/hello.txt: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runs_a_compiled_c_program() {
    let dir = scratch("hello");
    let artifact = dir.join("hello.kiln");
    let out = kiln(&["compile", path(&hello_wasm()), "-o", path(&artifact)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kiln(&["run", "--allow-precompiled", path(&artifact)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Hello from Kiln!\n");
    let out = kiln(&["inspect", path(&artifact)]);
    assert!(
        stdout(&out).contains("wasi_snapshot_preview1::fd_write"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn proc_exit_sets_the_exit_code() {
    let dir = scratch("exit");
    let wat = dir.join("exit.wat");
    std::fs::write(
        &wat,
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    call $yield
    if unreachable end
    i32.const 7
    call $exit
    unreachable))
"#,
    )
    .unwrap();
    let out = kiln(&["run", path(&wat)]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn wast_command_counts() {
    let dir = scratch("wast");
    let script = dir.join("t.wast");
    std::fs::write(
        &script,
        r#"(module (func (export "one") (result i32) i32.const 1))
(assert_return (invoke "one") (i32.const 1))
(assert_return (invoke "one") (i32.const 2))
"#,
    )
    .unwrap();
    let out = kiln(&["wast", path(&script)]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(":3: assert_return"), "{text}");
    assert!(text.trim_end().ends_with("2 passed, 1 failed"), "{text}");
}

#[test]
fn wasi_args_reach_the_program() {
    let dir = scratch("args");
    let wat = dir.join("args.wat");
    std::fs::write(
        &wat,
        r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; argc at 0, buffer size at 4; argv at 16, strings at 256
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (drop (call $get (i32.const 16) (i32.const 256)))
    ;; print the NUL-separated strings: one iovec at 8
    (i32.store (i32.const 8) (i32.const 256))
    (i32.store (i32.const 12) (i32.load (i32.const 4)))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 100)))
    ;; argc must be 3 and argv[1] must point at the second string
    (if (i32.ne (i32.load (i32.const 0)) (i32.const 3)) (then unreachable))
    (if (i32.ne (i32.load8_u (i32.load (i32.const 20))) (i32.const 0x61)) (then unreachable))))
"#,
    )
    .unwrap();
    let out = kiln(&["run", path(&wat), "a", "b c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\0a\0b c\0", path(&wat)));
}

#[test]
fn usage_errors_are_one_line() {
    assert_one_line_error(&kiln(&["compile", "x.wasm", "--opt-level", "fast"]));
    assert_one_line_error(&kiln(&["run"]));
    assert_one_line_error(&kiln(&["frobnicate"]));
    let out = kiln(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("kiln "));
}

/// A module using bulk memory, reference types and SIMD together.
const WASM2_WAT: &str = r#"(module
  (memory 1)
  (table $funcs 2 funcref)
  (table $objects 1 externref)
  (data $greeting "kiln")
  (elem $fns func $square $negate)
  (func $square (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func $negate (param i32) (result i32) (i32.sub (i32.const 0) (local.get 0)))
  (func (export "apply") (param i32 i32) (result i32)
    (table.init $funcs $fns (i32.const 0) (i32.const 0) (i32.const 2))
    (call_indirect $funcs (param i32) (result i32) (local.get 1) (local.get 0)))
  (func (export "bytes") (result v128)
    (memory.fill (i32.const 0) (i32.const 7) (i32.const 16))
    (memory.init $greeting (i32.const 4) (i32.const 0) (i32.const 4))
    (memory.copy (i32.const 12) (i32.const 4) (i32.const 4))
    (v128.load (i32.const 0)))
  (func (export "dot") (param v128 v128) (result v128)
    (i32x4.dot_i16x8_s (local.get 0) (local.get 1)))
  (func (export "no_object") (result i32)
    (ref.is_null (table.get $objects (i32.const 0)))))
"#;

#[test]
fn compiles_and_invokes_a_module_using_all_of_wasm_2() {
    let dir = scratch("wasm2");
    let wat = dir.join("wasm2.wat");
    std::fs::write(&wat, WASM2_WAT).unwrap();
    for bounds in ["guard-pages", "explicit"] {
        let artifact = dir.join(format!("wasm2-{bounds}.kiln"));
        let out = kiln(&[
            "compile",
            path(&wat),
            "-o",
            path(&artifact),
            "--bounds-checks",
            bounds,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let invoke = |args: &[&str]| {
            let out = kiln(
                &[
                    &["run", "--allow-precompiled", path(&artifact), "--invoke"],
                    args,
                ]
                .concat(),
            );
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            stdout(&out)
        };
        assert_eq!(invoke(&["apply", "0", "7"]), "49\n");
        assert_eq!(invoke(&["apply", "1", "7"]), "-7\n");
        // Bytes 0..16: 7 7 7 7 'k' 'i' 'l' 'n' 7 7 7 7 'k' 'i' 'l' 'n', lane 0 lowest.
        assert_eq!(invoke(&["bytes"]), "0x6e6c696b070707076e6c696b07070707\n");
        // i16 lanes (1, 2, 3, 4, 5, 6, 7, 8) . (2, 2, ...) = pairwise sums 6, 14, 22, 30.
        let a = "0x00080007000600050004000300020001";
        let b = "0x00020002000200020002000200020002";
        assert_eq!(
            invoke(&["dot", a, b]),
            "0x0000001e000000160000000e00000006\n"
        );
        assert_eq!(invoke(&["no_object"]), "1\n");
    }
}

#[test]
fn a_module_without_start_lists_what_to_invoke() {
    let dir = scratch("no-start");
    let wat = dir.join("lib.wat");
    std::fs::write(&wat, ADD_WAT).unwrap();
    let out = kiln(&["run", path(&wat)]);
    assert_one_line_error(&out);
    let err = stderr(&out);
    assert!(err.contains("has no `_start` function"), "{err}");
    assert!(
        err.contains("add (func (param i32 i32) (result i32))") && err.contains("boom (func)"),
        "{err}"
    );
}

#[test]
fn timeout_stops_a_runaway_program_and_traps_have_their_own_status() {
    let dir = scratch("timeout");
    let wat = dir.join("spin.wat");
    std::fs::write(
        &wat,
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap();
    let out = kiln(&["run", "--timeout", "0.2", path(&wat)]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ran longer than --timeout 0.2s and was stopped"),
        "{}",
        stderr(&out)
    );

    // An artifact compiled without epoch checks cannot honour --timeout, and says so.
    let artifact = dir.join("spin.kiln");
    assert!(
        kiln(&["compile", path(&wat), "-o", path(&artifact)])
            .status
            .success()
    );
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        "--timeout",
        "0.2",
        path(&artifact),
    ]);
    assert_one_line_error(&out);
    assert!(
        stderr(&out).contains("--epoch-interruption"),
        "{}",
        stderr(&out)
    );
    let interruptible = dir.join("spin-epoch.kiln");
    let compiled = kiln(&[
        "compile",
        path(&wat),
        "-o",
        path(&interruptible),
        "--epoch-interruption",
    ]);
    assert!(compiled.status.success(), "{}", stderr(&compiled));
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        "--timeout",
        "0.2",
        path(&interruptible),
    ]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));

    // Any other trap: the same status, the trap's kind on stderr.
    let boom = dir.join("boom.wat");
    std::fs::write(&boom, ADD_WAT).unwrap();
    let out = kiln(&["run", path(&boom), "--invoke", "boom"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}

#[test]
fn max_memory_limits_growth_with_a_note() {
    let dir = scratch("max-memory");
    let wat = dir.join("grow.wat");
    std::fs::write(
        &wat,
        r#"(module (memory (export "memory") 1)
             (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    )
    .unwrap();
    let out = kiln(&[
        "run",
        "--max-memory",
        "256K",
        path(&wat),
        "--invoke",
        "grow",
        "3",
    ]);
    assert_eq!(stdout(&out), "1\n", "{}", stderr(&out));
    let out = kiln(&[
        "run",
        "--max-memory",
        "256K",
        path(&wat),
        "--invoke",
        "grow",
        "4",
    ]);
    assert_eq!(stdout(&out), "-1\n");
    assert!(
        stderr(&out).contains("more linear memory than --max-memory"),
        "{}",
        stderr(&out)
    );
    assert_one_line_error(&kiln(&["run", "--max-memory", "12Q", path(&wat)]));
}

#[test]
fn compiling_prints_nothing_when_stderr_is_not_a_terminal() {
    // The progress bar is for terminals only; with stderr captured, or with --quiet,
    // compiling a module of thousands of functions prints nothing at all.
    let dir = scratch("quiet");
    let wat = dir.join("many.wat");
    let funcs: String = (0..3000)
        .map(|i| format!("(func (export \"f{i}\") (result i32) (i32.const {i}))"))
        .collect();
    std::fs::write(&wat, format!("(module {funcs})")).unwrap();
    for quiet in [&[][..], &["--quiet"][..]] {
        let artifact = dir.join("many.kiln");
        let out = kiln(&[quiet, &["compile", path(&wat), "-o", path(&artifact)]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
        assert_eq!(stdout(&out), "");
        let out = kiln(&[quiet, &["run", path(&wat), "--invoke", "f2999"]].concat());
        assert_eq!(
            (stdout(&out).as_str(), stderr(&out).as_str()),
            ("2999\n", "")
        );
    }
}

#[test]
fn a_silent_start_up_failure_is_explained() {
    // wasi-libc's `_start` exits with 71 when a WASI call it needs fails; a program that
    // does so before printing anything gets a note, and KILN_LOG=debug shows the call.
    let dir = scratch("exit71");
    let wat = dir.join("exit71.wat");
    std::fs::write(
        &wat,
        r#"(module
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $close (i32.const 99)))
    (call $exit (i32.const 71))))
"#,
    )
    .unwrap();
    let out = kiln(&["run", path(&wat)]);
    assert_eq!(out.status.code(), Some(71));
    assert!(
        stderr(&out).contains("note: the program exited with status 71"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        // Every test shares one cache of its own (never the user's), so that runs also
        // exercise cache hits.
        .env(
            "KILN_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
        )
        .args(["run", path(&wat)])
        .env("KILN_LOG", "debug")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("WASI call failed") && err.contains("fd_close"),
        "{err}"
    );
}

#[test]
fn a_fault_without_a_trap_record_aborts_with_a_diagnostic() {
    // A well-formed artifact whose trap table was emptied consistently (every function's
    // record count zeroed too, checksum recomputed, so the checked load cannot tell: only
    // the code knows where it traps): the division's explicit zero check now faults at a pc
    // Kiln knows nothing about. That is a bug or corrupted state, never an ordinary trap: the
    // process aborts and says why.
    let dir = scratch("no-trap-record");
    let wat = dir.join("div.wat");
    std::fs::write(
        &wat,
        r#"(module (func (export "div") (param i32 i32) (result i32)
             (i32.div_u (local.get 0) (local.get 1))))"#,
    )
    .unwrap();
    let artifact = dir.join("div.kiln");
    assert!(
        kiln(&["compile", path(&wat), "-o", path(&artifact)])
            .status
            .success()
    );
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&artifact),
        "--invoke",
        "div",
        "1",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(134), "an ordinary trap first");

    let bytes = std::fs::read(&artifact).unwrap();
    let header = kiln_artifact::Header::parse(&bytes).unwrap();
    let section = |r: kiln_artifact::SectionRange| &bytes[r.bounds(bytes.len()).unwrap()];
    let archived =
        kiln_artifact::access_checked(section(header.metadata), header.code.len, header.data.len)
            .unwrap();
    let mut info: kiln_artifact::ModuleInfo =
        rkyv::deserialize::<_, rkyv::rancor::Error>(archived).unwrap();
    assert!(!info.traps.is_empty());
    info.traps = kiln_artifact::TrapTable::default();
    for f in info.compiled.values_mut() {
        f.trap_count = 0;
    }
    let forged = kiln_artifact::build_artifact(&kiln_artifact::ArtifactParts {
        info: &info,
        code: section(header.code),
        data: section(header.data),
        compat: &header.compat,
        code_alignment: if cfg!(target_arch = "aarch64") {
            65536
        } else {
            4096
        },
    })
    .unwrap();
    let forged_path = dir.join("forged.kiln");
    std::fs::write(&forged_path, forged).unwrap();
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&forged_path),
        "--invoke",
        "div",
        "1",
        "0",
    ]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc_sigabrt()),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("has no trap record"),
        "{}",
        stderr(&out)
    );
    // The function still works where nothing faults.
    let out = kiln(&[
        "run",
        "--allow-precompiled",
        path(&forged_path),
        "--invoke",
        "div",
        "6",
        "3",
    ]);
    assert_eq!(stdout(&out), "2\n");
}

/// SIGABRT on Linux.
fn libc_sigabrt() -> i32 {
    6
}
