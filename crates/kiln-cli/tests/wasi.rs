//! WASI under `kiln run`, with C programs built by clang for `wasm32-wasi`
//! (`tests/programs/wasi`): arguments with spaces and unicode, environment, stdin to
//! stdout, exit statuses, files in a preopened directory (under a guest name different
//! from the host path), directory listing (also across several `fd_readdir` calls),
//! rename/unlink/mkdir/rmdir, sizes and times, hard and symbolic links, positioned I/O,
//! rights (no writes through a read-only descriptor), clocks, sleeping through
//! `poll_oneoff`, random bytes, and attempts to leave the directory, which must fail and
//! touch nothing outside it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{WASM1, build_wasm, path, programs_dir, scratch};

fn build(name: &str, dir: &Path) -> std::path::PathBuf {
    let wasm = dir.join(name.replace(".c", ".wasm"));
    build_wasm(&programs_dir().join("wasi").join(name), &wasm, WASM1, false);
    wasm
}

/// Runs `kiln` with `args`, feeding `stdin`; returns whatever happened.
fn kiln_with_input(args: &[&str], stdin: &[u8], envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        // Every test shares one cache of its own (never the user's), so that runs also
        // exercise cache hits.
        .env(
            "KILN_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
        )
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the kiln binary");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn arguments_environment_stdio_and_exit_status() {
    let dir = scratch("wasi-stdio");
    let wasm = build("stdio.c", &dir);
    let out = kiln_with_input(
        &[
            "run",
            path(&wasm),
            "--env",
            "GREETING=héllo wörld",
            "--env",
            "EXIT_STATUS=3",
            "--",
            "two words",
            "ünïcödé ✓",
            "--not-a-flag",
        ],
        b"piped input\n",
        &[("HOME", "/home/someone")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "argc=4\nargv[1]=[two words]\nargv[2]=[ünïcödé ✓]\nargv[3]=[--not-a-flag]\n\
         GREETING=[héllo wörld]\nHOME set: 0\nPIPED INPUT\nstdin bytes: 12\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to stderr\n");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the program's status passes through"
    );

    // --inherit-env passes the host's variables; nothing is inherited without it.
    let out = kiln_with_input(
        &["run", path(&wasm), "--inherit-env"],
        b"",
        &[("HOME", "/home/someone"), ("GREETING", "from host")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("GREETING=[from host]\nHOME set: 1\n"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn files_in_a_preopened_directory_and_no_way_out() {
    let dir = scratch("wasi-files");
    let wasm = build("files.c", &dir);
    let outside = dir.join("outside");
    let pre = outside.join("pre");
    std::fs::create_dir_all(&pre).unwrap();
    std::fs::write(outside.join("outside.txt"), "outside secret\n").unwrap();
    std::fs::write(pre.join("input.txt"), "line one\nline two\n").unwrap();
    std::os::unix::fs::symlink("..", pre.join("link-out")).unwrap();
    std::os::unix::fs::symlink(outside.join("outside.txt"), pre.join("escape-link")).unwrap();
    let outside_before = listing(&outside);

    let mapping = format!("{}::/data", path(&pre));
    let out = kiln_with_input(
        &["run", path(&wasm), "--dir", &mapping, "--", "/data"],
        b"",
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "input: line one\n\
         input: line two\n\
         read after seek: 14 bytes: wasm\nappended\n\
         stat output.txt: ok\n\
         size: 25, regular: 1\n\
         mkdir sub: ok\n\
         mkdir sub again: File exists\n\
         rename output.txt -> sub/moved.txt: ok\n\
         rmdir non-empty sub: Directory not empty\n\
         unlink sub/temp.txt: ok\n\
         unlink missing: No such file or directory\n\
         listing: . .. escape-link input.txt link-out sub\n\
         utimensat sub/moved.txt: ok\n\
         stat sub/moved.txt: ok\n\
         mtime: 1234567890.250000000 atime: 1000000000.000000005\n\
         link sub/moved.txt -> hard.txt: ok\n\
         symlink sub/moved.txt <- soft.txt: ok\n\
         readlink soft.txt: 13 sub/moved.txt\n\
         open soft.txt read-write: ok\n\
         pwrite at 8: ok\n\
         pread at 0: ok\n\
         pread: written\n\
         write to a read-only descriptor: Bad file descriptor\n\
         stat hard.txt: ok\n\
         hard.txt links: 2\n\
         mkdir many: ok\n\
         many: 1502 entries\n\
         open ../outside.txt: Operation not permitted\n\
         open /etc/passwd: Capabilities insufficient\n\
         create ../escape.txt: Operation not permitted\n\
         open link-out/outside.txt: Operation not permitted\n\
         open escape-link: Operation not permitted\n\
         rename sub/moved.txt -> ../stolen.txt: Operation not permitted\n\
         mkdir ../evil: Operation not permitted\n\
         slept at least 20ms: 1, realtime after 2020: 1\n\
         random bytes: 32 of 32 non-zero\n"
    );
    // What the program left inside, and nothing changed outside.
    assert_eq!(
        std::fs::read_to_string(pre.join("sub/moved.txt")).unwrap(),
        "written WASMasm\nappended\n"
    );
    assert_eq!(
        std::fs::read_link(pre.join("soft.txt")).unwrap(),
        Path::new("sub/moved.txt")
    );
    assert_eq!(std::fs::read_dir(pre.join("many")).unwrap().count(), 1500);
    assert!(!pre.join("output.txt").exists());
    assert!(!pre.join("sub/temp.txt").exists());
    assert_eq!(listing(&outside), outside_before);
    assert_eq!(
        std::fs::read_to_string(outside.join("outside.txt")).unwrap(),
        "outside secret\n"
    );
}

#[test]
fn poll_waits_for_stdin_or_the_timeout() {
    let dir = scratch("wasi-poll");
    let wasm = build("poll.c", &dir);
    let out = kiln_with_input(&["run", path(&wasm)], b"hello\n", &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ready: 1, read 6: hello\n"
    );

    // Stdin stays open and empty: poll() times out after its 300 ms.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        // Every test shares one cache of its own (never the user's), so that runs also
        // exercise cache hits.
        .env(
            "KILN_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/kiln-test-cache"),
        )
        .args(["run", path(&wasm)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let held_open = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(held_open);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "timeout after at least 300ms: 1\n"
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = scratch("wasi-missing");
    let wasm = build("stdio.c", &dir);
    let out = kiln_with_input(
        &["run", path(&wasm), "--dir", path(&dir.join("nope"))],
        b"",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot open directory"), "{err}");
}

/// Names directly inside `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
