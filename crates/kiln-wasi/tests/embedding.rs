//! The embedder's view of `kiln-wasi`: a context built with arguments, environment and
//! redirected stdio, the exit status of `proc_exit`, and preopened directories seen through
//! `fd_prestat_*` (descriptors after the last preopen are `BADF`).

use kiln::{Engine, Linker, Module, Store};
use kiln_wasi::{Stdio, WasiCtx, exit_status};

/// Writes "hi <argv[1]> <environ[0]>\n" to stdout and "err\n" to stderr, then exits with
/// the number of preopened directories (counted with fd_prestat_get from fd 3).
const PROGRAM: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hi ")
  (data (i32.const 8) "err\n")
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  ;; print(fd, ptr, len) through one iovec at 1024.
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 1024) (local.get $ptr))
    (i32.store (i32.const 1028) (local.get $len))
    (drop (call $write (local.get $fd) (i32.const 1024) (i32.const 1) (i32.const 1040))))
  (func (export "_start") (local $arg i32) (local $var i32) (local $fd i32)
    (drop (call $args (i32.const 2048) (i32.const 4096)))
    (drop (call $env (i32.const 3072) (i32.const 8192)))
    (local.set $arg (i32.load (i32.const 2052)))
    (local.set $var (i32.load (i32.const 3072)))
    (call $print (i32.const 1) (i32.const 0) (i32.const 3))
    (call $print (i32.const 1) (local.get $arg) (call $strlen (local.get $arg)))
    (i32.store8 (i32.const 16) (i32.const 32))
    (call $print (i32.const 1) (i32.const 16) (i32.const 1))
    (call $print (i32.const 1) (local.get $var) (call $strlen (local.get $var)))
    (i32.store8 (i32.const 16) (i32.const 10))
    (call $print (i32.const 1) (i32.const 16) (i32.const 1))
    (call $print (i32.const 2) (i32.const 8) (i32.const 4))
    (local.set $fd (i32.const 3))
    (block $done (loop $l
      (br_if $done (call $prestat (local.get $fd) (i32.const 512)))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br $l)))
    (call $exit (i32.sub (local.get $fd) (i32.const 3)))))"#;

#[test]
fn a_program_sees_exactly_what_the_embedder_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr.txt");
    let (stdout, out) = Stdio::buffer();
    let engine = Engine::default();
    let module = Module::new(&engine, PROGRAM).unwrap();
    let ctx = WasiCtx::builder()
        .args(["prog", "world"])
        .env("KEY", "value")
        .stdout(out)
        .stderr(Stdio::file(std::fs::File::create(&err_path).unwrap()))
        .preopened_dir(dir.path(), "/a")
        .unwrap()
        .preopened_dir(dir.path(), "/b")
        .unwrap()
        .build();
    let mut store = Store::new(&engine, ctx);
    let mut linker = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .unwrap();
    let err = start.call(&mut store, ()).unwrap_err();
    assert_eq!(exit_status(&err), Some(2), "two preopens, then BADF");
    assert_eq!(store.data().exit_code, Some(2));
    assert_eq!(&*stdout.lock().unwrap(), b"hi world KEY=value\n");
    assert_eq!(std::fs::read_to_string(&err_path).unwrap(), "err\n");
    assert_eq!(store.data().output_written(), 23);
}

#[test]
fn hostile_lengths_fail_without_large_host_allocations() {
    // fd_write with 1,000 iovecs that each name the whole 4 GiB-sized range, and
    // random_get of 4 GiB: FAULT or a short transfer, never a host allocation of terabytes.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "huge_write") (result i32) (local $i i32)
    (loop $l
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const -1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (call $write (i32.const 1) (i32.const 0) (i32.const 1000) (i32.const 60000)))
  (func (export "repeated_write") (result i32) (local $i i32)
    ;; 2,000 iovecs naming the whole 64 KiB page: 125 MiB asked, a short write given.
    (loop $l
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4))
        (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2000))))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 2000) (i32.const 60000)))
    (i32.load (i32.const 60000)))
  (func (export "huge_random") (result i32)
    (call $random (i32.const 0) (i32.const -1))))"#,
    )
    .unwrap();
    let (stdout, out) = Stdio::buffer();
    let mut store = Store::new(&engine, WasiCtx::builder().stdout(out).build());
    let mut linker = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let write = instance
        .get_typed_func::<(), i32>(&mut store, "huge_write")
        .unwrap();
    assert_eq!(write.call(&mut store, ()).unwrap(), 21, "FAULT");
    assert!(stdout.lock().unwrap().is_empty());
    let random = instance
        .get_typed_func::<(), i32>(&mut store, "huge_random")
        .unwrap();
    assert_eq!(random.call(&mut store, ()).unwrap(), 21, "FAULT");
}

/// Sleeps for a minute in `poll_oneoff` (one relative monotonic clock subscription at 0),
/// or reads from the FIFO preopened as fd 3's "fifo" (`read_fifo`).
const BLOCKING: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "fifo")
  (func (export "sleep") (result i32)
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
  (func (export "read_fifo") (result i32) (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 1) (i32.const 200) (i32.const 4)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
    (if (local.get $e) (then (return (local.get $e))))
    (i32.store (i32.const 400) (i32.const 500))
    (i32.store (i32.const 404) (i32.const 16))
    (call $read (i32.load (i32.const 300)) (i32.const 400) (i32.const 1) (i32.const 420))))"#;

/// With a deadline, a host call that would wait longer ends the program at the deadline
/// with `DeadlinePassed`; without one, a sleep that ends in time returns normally.
#[test]
fn a_deadline_ends_host_calls_that_wait() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let engine = Engine::default();
    let module = Module::new(&engine, BLOCKING).unwrap();
    for export in ["sleep", "read_fifo"] {
        let ctx = WasiCtx::builder()
            .preopened_dir(dir.path(), "/d")
            .unwrap()
            .deadline(std::time::Instant::now() + std::time::Duration::from_millis(300))
            .build();
        let mut store = Store::new(&engine, ctx);
        let mut linker = Linker::new(&engine);
        kiln_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let func = instance
            .get_typed_func::<(), i32>(&mut store, export)
            .unwrap();
        let started = std::time::Instant::now();
        let err = func.call(&mut store, ()).unwrap_err();
        assert!(kiln_wasi::deadline_passed(&err), "{export}: {err}");
        // The test's own bound (the call would otherwise wait a minute, or forever).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{export}"
        );
    }
}
