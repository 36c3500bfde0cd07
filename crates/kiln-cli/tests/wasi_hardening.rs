//! What a hostile or unlucky guest can do to `kiln run`, and the WASI preview 1 cases the
//! official wasi-testsuite found (`docs/conformance.md`), each a whole `kiln run` of
//! `tests/programs/wasi/probe.c` in one of its modes: Kiln's keys never reach the guest, exit
//! statuses keep their meaning, `--timeout` ends programs blocked in host calls, polling
//! sees input already read from the host, symlinks do not disclose host paths, bad guest
//! pointers lose no data and leak no descriptor, random bytes need no descriptor, and the
//! append flag, truncating appends, directories opened for writing and sockets behave as the
//! suite expects.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{WASM1, build_wasm, programs_dir, scratch};

/// The `kiln` under test: this build's, or `KILN_TEST_BINARY` (to show that a defect
/// these tests pin is present in another build).
fn kiln_binary() -> PathBuf {
    std::env::var_os("KILN_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

/// The probe, built once for all tests of this file.
fn probe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = scratch("wasi-hardening-build");
        let wasm = dir.join("probe.wasm");
        build_wasm(&programs_dir().join("wasi/probe.c"), &wasm, WASM1, false);
        wasm
    })
}

fn kiln_command() -> Command {
    let mut command = Command::new(kiln_binary());
    command
        .env(
            "KILN_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
        )
        .env_remove("KILN_ARTIFACT_KEY")
        .env_remove("KILN_CACHE_KEY");
    command
}

/// `kiln run [kiln_args] probe.wasm mode_args`, with `dir` preopened as `/d` if given.
fn run_probe(kiln_args: &[&str], dir: Option<&Path>, mode_args: &[&str]) -> Output {
    let mut command = kiln_command();
    command.arg("run").args(kiln_args);
    if let Some(dir) = dir {
        command.arg("--dir").arg(format!("{}::/d", dir.display()));
    }
    command
        .arg(probe())
        .args(mode_args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn inherited_environment_never_holds_kilns_keys() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let dir = scratch("wasi-hardening-env");
    let key_file = dir.join("key.hex");
    std::fs::write(&key_file, key).unwrap();
    let out = kiln_command()
        .args(["run", "--inherit-env", "--no-cache"])
        .arg(probe())
        .arg("env")
        .env("KILN_CACHE_KEY", key)
        .env("KILN_SOME_FUTURE_KEY", key)
        .env("KILN_ARTIFACT_KEY_FILE", &key_file)
        .env("OTHER_SETTING", "visible")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert!(env.contains("OTHER_SETTING=visible\n"), "{env}");
    assert!(
        env.contains("KILN_CACHE_DIR="),
        "other KILN_ settings pass: {env}"
    );
    assert!(
        !env.lines()
            .any(|l| l.starts_with("KILN_") && l.contains("KEY")),
        "a Kiln key reached the guest:\n{env}"
    );
    assert!(!env.contains(key));
    // Named with --env, a variable is the user's explicit choice and passes.
    let out = run_probe(&["--env", "KILN_CACHE_KEY=chosen"], None, &["env"]);
    assert_eq!(stdout(&out), "KILN_CACHE_KEY=chosen\n");
}

#[test]
fn exit_statuses_outside_wasis_range_fail_clearly() {
    for (status, expected) in [
        (0, 0),
        (3, 3),
        (125, 125),
        (126, 1),
        (134, 1),
        (256, 1),
        (512, 1),
    ] {
        let out = run_probe(&[], None, &["exit", &status.to_string()]);
        assert_eq!(out.status.code(), Some(expected), "exit({status})");
        if expected != status {
            assert!(
                stderr(&out).contains(&format!("exited with status {status}, outside")),
                "{}",
                stderr(&out)
            );
        }
    }
}

/// Runs `kiln run --timeout 1` of a probe mode that blocks in a host call, with stdin held
/// open, and checks that it ends in time with a trap's status.
fn assert_stopped_in_time(mode: &str, dir: Option<&Path>) {
    let mut command = kiln_command();
    command.args(["run", "--timeout", "1"]);
    if let Some(dir) = dir {
        command.arg("--dir").arg(format!("{}::/d", dir.display()));
    }
    let mut child = command
        .arg(probe())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let held_open = child.stdin.take();
    // A watchdog of the test's own, so that a regression fails instead of hanging.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let pid = child.id();
    std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let took = started.elapsed();
    drop(held_open);
    assert!(
        took < Duration::from_secs(10),
        "{mode}: --timeout 1 took {took:?}"
    );
    assert_eq!(out.status.code(), Some(134), "{mode}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("--timeout"),
        "{mode}: {}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("woke up"));
    // Ended by the WASI deadline, not by the watchdog that backs it up.
    assert!(
        stderr(&out).contains("deadline passed"),
        "{mode}: {}",
        stderr(&out)
    );
}

#[test]
fn timeout_stops_programs_blocked_in_host_calls() {
    assert_stopped_in_time("sleep", None);
    assert_stopped_in_time("read-stdin", None);
    let dir = scratch("wasi-hardening-fifo");
    let status = Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_stopped_in_time("open-fifo", Some(&dir));
}

#[test]
fn poll_sees_input_that_arrived_with_bytes_already_read() {
    let mut child = kiln_command()
        .args(["run"])
        .arg(probe())
        .arg("poll-after-read")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"xyz\n").unwrap();
    stdin.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(stdout(&out), "first x, ready 1, waited under 1s: 1\n");
}

#[test]
fn readlink_does_not_disclose_host_paths() {
    let dir = scratch("wasi-hardening-readlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("absolute")).unwrap();
    std::os::unix::fs::symlink("data.txt", dir.join("relative")).unwrap();
    let out = run_probe(&[], Some(&dir), &["readlink", "/d/absolute"]);
    assert_eq!(stdout(&out), "readlink /d/absolute: errno EPERM\n");
    let out = run_probe(&[], Some(&dir), &["readlink", "/d/relative"]);
    assert_eq!(stdout(&out), "readlink /d/relative: data.txt\n");
}

#[test]
fn directory_listings_keep_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("wasi-hardening-names");
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "latin-1").unwrap();
    // Enough entries that wasi-libc reads the directory in several calls.
    for i in 0..300 {
        std::fs::write(dir.join(format!("file-with-a-long-name-{i:04}")), "").unwrap();
    }
    let out = run_probe(&[], Some(&dir), &["list"]);
    let names: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert!(names.contains(&"636166e9"), "{names:?}");
    assert_eq!(names.len(), 2 + 301, "each entry once");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn bad_guest_pointers_lose_no_data_and_leak_no_descriptor() {
    let dir = scratch("wasi-hardening-pointers");
    std::fs::write(dir.join("data.txt"), "still here").unwrap();
    let out = run_probe(&[], Some(&dir), &["bad-read"]);
    // 21: FAULT.
    assert_eq!(
        stdout(&out),
        "bad read errno 21, then read 10: still here\n"
    );
    let out = run_probe(&[], Some(&dir), &["bad-open"]);
    assert_eq!(stdout(&out), "bad open errno 21, created 0, same fd 1\n");
    assert!(!dir.join("created.txt").exists());
}

#[test]
fn random_bytes_need_no_descriptor() {
    let dir = scratch("wasi-hardening-random");
    std::fs::write(dir.join("data.txt"), "x").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(kiln_binary())
        .args(["run", "--no-cache", "--dir"])
        .arg(format!("{}::/d", dir.display()))
        .arg(probe())
        .arg("random-without-fds")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "opened many: 1, getentropy 0, nonzero 1\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn wasi_testsuite_cases_append_truncate_directories_and_sockets() {
    let dir = scratch("wasi-hardening-testsuite");
    // fd_flags_set: "aaaa" then "bbbb" appended; with APPEND cleared "cc" overwrites.
    let out = run_probe(&[], Some(&dir), &["append-flags"]);
    assert_eq!(stdout(&out), "set_flags 0: ccaabbbb\n", "{}", stderr(&out));
    // pwrite-with-append: O_CREAT | O_TRUNC | O_WRONLY | O_APPEND opens and truncates.
    std::fs::write(dir.join("trunc.txt"), "old contents").unwrap();
    let out = run_probe(&[], Some(&dir), &["trunc-append"]);
    assert_eq!(stdout(&out), "contents: new\n", "{}", stderr(&out));
    // path_open_preopen: a directory opened with the write right is ISDIR.
    let out = run_probe(&[], Some(&dir), &["open-dir-for-write"]);
    assert_eq!(stdout(&out), "errno ISDIR\n");
    // sock_shutdown-not_sock.
    let out = run_probe(&[], None, &["sock"]);
    assert_eq!(stdout(&out), "shutdown -1: ENOTSOCK\n");
}

#[test]
fn max_table_elements_caps_what_a_guest_can_allocate() {
    let dir = scratch("wasi-hardening-tables");
    let wat = |min: u32| {
        let path = dir.join(format!("table-{min}.wat"));
        std::fs::write(
            &path,
            format!(
                r#"(module (table {min} funcref)
                     (func (export "grow") (param i32) (result i32)
                       (table.grow (ref.null func) (local.get 0))))"#
            ),
        )
        .unwrap();
        path
    };
    let grow = |module: &Path, by: &str| {
        kiln_command()
            .args(["run", "--max-table-elements", "100"])
            .arg(module)
            .args(["--invoke", "grow", by])
            .output()
            .unwrap()
    };
    let small = wat(10);
    assert_eq!(stdout(&grow(&small, "90")), "10\n", "up to the cap");
    assert_eq!(stdout(&grow(&small, "91")), "-1\n", "past the cap");
    let out = grow(&wat(1000), "0");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exceeds the store's limit of 100"),
        "{}",
        stderr(&out)
    );
}
