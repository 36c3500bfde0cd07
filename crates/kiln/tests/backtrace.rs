//! Wasm backtraces of traps: every wasm frame from the trapping function outwards, with
//! names from the name section and the wasm offset of the instruction each frame was
//! executing (the trapping one, then each call).

use kiln::{Config, Engine, Instance, Linker, Module, OptLevel, Store, TrapCode};

const WAT: &str = r#"(module
  (func $inner (param i32) (result i32)
    (i32.div_u (i32.const 1) (local.get 0)))
  (func $middle (param i32) (result i32)
    (i32.add (i32.const 1) (call $inner (local.get 0))))
  (func $outer (export "outer") (param i32) (result i32)
    (call $middle (local.get 0)))
  (func $forever (export "forever") (call $forever)))"#;

/// The offsets, in the module's bytes, of every `call` instruction (opcode 0x10) inside the
/// code section, and of the `i32.div_u` (0x6e).
fn instruction_offsets(wasm: &[u8]) -> (Vec<u32>, u32) {
    let mut calls = Vec::new();
    let mut div = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut ops = body.get_operators_reader().unwrap();
            while !ops.eof() {
                let (op, offset) = ops.read_with_offset().unwrap();
                match op {
                    wasmparser::Operator::Call { .. } => calls.push(offset as u32),
                    wasmparser::Operator::I32DivU => div = offset as u32,
                    _ => {}
                }
            }
        }
    }
    (calls, div)
}

#[test]
fn traps_carry_a_wasm_backtrace() {
    let wasm = wat::parse_str(WAT).unwrap();
    let (calls, div) = instruction_offsets(&wasm);
    for level in [OptLevel::Speed, OptLevel::None] {
        let mut config = Config::new();
        config.opt_level(level);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, &wasm).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let outer = instance
            .get_typed_func::<i32, i32>(&mut store, "outer")
            .unwrap();
        let err = outer.call(&mut store, 0).unwrap_err();
        let trap = err.as_trap().expect("a trap");
        assert_eq!(trap.code(), TrapCode::IntegerDivisionByZero);
        let frames: Vec<(u32, Option<&str>, Option<u32>)> = trap
            .backtrace()
            .iter()
            .map(|f| (f.func_index, f.func_name.as_deref(), f.wasm_offset))
            .collect();
        assert_eq!(
            frames,
            [
                (0, Some("inner"), Some(div)),
                (1, Some("middle"), Some(calls[0])),
                (2, Some("outer"), Some(calls[1])),
            ],
            "{level:?}"
        );
        let text = trap.backtrace_text();
        assert!(
            text.starts_with("  0: function 0 `inner` at wasm offset"),
            "{text}"
        );
    }
}

#[test]
fn deep_recursion_gives_a_bounded_backtrace() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let forever = instance
        .get_typed_func::<(), ()>(&mut store, "forever")
        .unwrap();
    let err = forever.call(&mut store, ()).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.code(), TrapCode::StackOverflow);
    assert!(!trap.backtrace().is_empty() && trap.backtrace().len() <= 33);
    assert!(
        trap.backtrace()
            .iter()
            .all(|f| f.func_name.as_deref() == Some("forever"))
    );
}

#[test]
fn a_backtrace_stops_at_the_host() {
    // wasm -> host -> wasm: the trap's backtrace covers the innermost entry from the host.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "call_back" (func $call_back))
             (func $boom (export "boom") unreachable)
             (func $start (export "start") (call $call_back)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "call_back", |mut caller: kiln::Caller<'_, ()>| {
            let boom = caller.get_export("boom").unwrap().into_func().unwrap();
            boom.call(&mut caller, &[], &mut [])
        })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "start")
        .unwrap();
    let err = start.call(&mut store, ()).unwrap_err();
    let trap = err.as_trap().expect("the inner trap comes back as a trap");
    let names: Vec<Option<&str>> = trap
        .backtrace()
        .iter()
        .map(|f| f.func_name.as_deref())
        .collect();
    assert_eq!(names, [Some("boom")]);
}
