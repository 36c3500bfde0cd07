//! Signals under stress: many threads instantiating modules and trapping in every way at
//! once, each trap reported with its own kind; and a host program's own `SIGSEGV` handler,
//! installed before Kiln's, still gets the faults of host code (checked in a child process,
//! so the test harness's threads and handlers stay out of it).

use std::time::{Duration, Instant};

use kiln::{Engine, Error, Instance, Linker, Module, Store, TrapCode};

const TRAPS: &str = r#"(module
  (import "host" "fail" (func $fail))
  (memory 1)
  (func $deep (export "deep") (param i32) (result i32)
    (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "oob") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
  (func (export "unreachable") (param i32) (result i32) unreachable)
  (func (export "host") (param i32) (result i32) (call $fail) (local.get 0))
  (func (export "ok") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3))))"#;

/// What each export does with argument `n`.
fn expected(name: &str, n: i32) -> Result<i32, Option<TrapCode>> {
    match name {
        "deep" => Err(Some(TrapCode::StackOverflow)),
        "oob" => Err(Some(TrapCode::MemoryOutOfBounds)),
        "div" => Err(Some(TrapCode::IntegerDivisionByZero)),
        "unreachable" => Err(Some(TrapCode::UnreachableCodeReached)),
        "host" => Err(None),
        _ => Ok(n * 3),
    }
}

#[test]
fn sixteen_threads_trap_in_a_loop() {
    let engine = Engine::default();
    let module = Module::new(&engine, TRAPS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (engine, module) = (engine.clone(), module.clone());
            std::thread::spawn(move || {
                let mut linker = Linker::new(&engine);
                linker
                    .func_wrap("host", "fail", || -> kiln::Result<()> {
                        Err(Error::Host("host failure".into()))
                    })
                    .unwrap();
                let mut rounds = 0u32;
                while rounds < 5 || Instant::now() < deadline {
                    // A fresh instance each round, as a server would do per request.
                    let mut store = Store::new(&engine, ());
                    let instance: Instance = linker.instantiate(&mut store, &module).unwrap();
                    for (k, name) in ["deep", "oob", "div", "unreachable", "host", "ok"]
                        .into_iter()
                        .enumerate()
                    {
                        let f = instance
                            .get_typed_func::<i32, i32>(&mut store, name)
                            .unwrap();
                        // 65536 is out of bounds of the one page; 0 divides by zero.
                        let n = match name {
                            "oob" => 65536 + (rounds as i32 % 7),
                            "div" => 0,
                            _ => t + k as i32 + rounds as i32,
                        };
                        let got = f.call(&mut store, n).map_err(|e| match e {
                            Error::Trap(trap) => Some(trap.code()),
                            Error::Host(_) => None,
                            other => panic!("{name}: unexpected error {other}"),
                        });
                        assert_eq!(got, expected(name, n), "thread {t} round {rounds}: {name}");
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let rounds: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!("rounds per thread (6 calls each, 5 of them failing): {rounds:?}");
    assert!(
        rounds.iter().all(|&r| r >= 5),
        "rounds per thread: {rounds:?}"
    );
}

/// Marker the child prints when its own handler ran.
const OWN_HANDLER_RAN: &str = "own SIGSEGV handler ran";
const CHILD: &str = "KILN_SIGNALS_TEST_CHILD";

extern "C" fn own_handler(_: libc::c_int) {
    let msg = OWN_HANDLER_RAN.as_bytes();
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is a valid buffer.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
        libc::_exit(42);
    }
}

/// In the child: installs a SIGSEGV handler, lets Kiln install its own on top, traps in wasm
/// (Kiln's handler must take that fault), then faults in host code (the program's handler
/// must take that one, through Kiln's chaining).
fn child() {
    // SAFETY: a zeroed `sigaction` with a valid handler is a valid argument, and the handler
    // only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = own_handler as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
            0
        );
    }
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1)
        (func (export "oob") (result i32) (i32.load (i32.const 70000))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let oob = instance
        .get_typed_func::<(), i32>(&mut store, "oob")
        .unwrap();
    let err = oob.call(&mut store, ()).unwrap_err();
    assert_eq!(
        err.as_trap().map(|t| t.code()),
        Some(TrapCode::MemoryOutOfBounds)
    );
    println!("wasm trap reported");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // A fault in host code: an unmapped page (the first one of the address space).
    let bad = std::hint::black_box(16usize) as *const u8;
    // SAFETY: none: this read faults on purpose, and the program's handler exits.
    let byte = unsafe { std::ptr::read_volatile(bad) };
    println!("read {byte} from an unmapped page");
}

#[test]
fn the_hosts_own_handler_still_gets_host_faults() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_hosts_own_handler_still_gets_host_faults",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("wasm trap reported"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(OWN_HANDLER_RAN), "{stdout}");
    assert_eq!(out.status.code(), Some(42), "{stdout}");
}
