//! End-to-end tests of the facade: calls, host functions, traps, memories, globals.

use kiln::{
    Caller, Config, Engine, Error, Extern, Func, FuncType, Global, GlobalType, Instance, Linker,
    Memory, MemoryType, Module, Store, TrapCode, Val, ValType,
};

fn instantiate(wat: &str) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, wat).expect("module compiles");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    (store, instance)
}

fn trap_code(err: Error) -> TrapCode {
    match err.as_trap() {
        Some(t) => t.code(),
        None => panic!("expected a trap, got {err}"),
    }
}

#[test]
fn call_add() {
    let (mut store, instance) = instantiate(
        r#"(module (func (export "add") (param i32 i32) (result i32)
             local.get 0 local.get 1 i32.add))"#,
    );
    let add = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, (2, 40)).unwrap(), 42);
    assert_eq!(add.call(&mut store, (i32::MAX, 1)).unwrap(), i32::MIN);

    let func = instance.get_func(&mut store, "add").unwrap();
    let mut results = [Val::I32(0)];
    func.call(&mut store, &[Val::I32(5), Val::I32(6)], &mut results)
        .unwrap();
    assert_eq!(results[0].i32(), Some(11));
    let err = func
        .call(&mut store, &[Val::I64(5), Val::I32(6)], &mut results)
        .unwrap_err();
    assert!(matches!(err, Error::Type(_)), "{err}");
    assert!(
        instance
            .get_typed_func::<i32, i32>(&mut store, "add")
            .is_err()
    );
}

#[test]
fn many_params_and_results() {
    let (mut store, instance) = instantiate(
        r#"(module (func (export "f") (param i32 i64 f32 f64) (result f64 i32 i64)
             local.get 3 local.get 0 local.get 1))"#,
    );
    let f = instance
        .get_typed_func::<(i32, i64, f32, f64), (f64, i32, i64)>(&mut store, "f")
        .unwrap();
    assert_eq!(
        f.call(&mut store, (7, -9, 1.5, 2.25)).unwrap(),
        (2.25, 7, -9)
    );
}

#[test]
fn host_function_import() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "mul" (func $mul (param i32 i32) (result i32)))
             (import "env" "log" (func $log (param i64)))
             (func (export "run") (param i32) (result i32)
               (call $log (i64.extend_i32_s (local.get 0)))
               (call $mul (local.get 0) (i32.const 3))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, Vec::<i64>::new());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("env", "mul", |a: i32, b: i32| a * b)
        .unwrap();
    linker
        .func_wrap("env", "log", |mut caller: Caller<'_, Vec<i64>>, v: i64| {
            caller.data_mut().push(v);
        })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance
        .get_typed_func::<i32, i32>(&mut store, "run")
        .unwrap();
    assert_eq!(run.call(&mut store, 14).unwrap(), 42);
    assert_eq!(run.call(&mut store, -1).unwrap(), -3);
    assert_eq!(store.data(), &[14, -1]);
}

#[test]
fn host_function_calls_back_into_wasm() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "reenter" (func $reenter (param i32) (result i32)))
             (func $fact (export "fact") (param i32) (result i32)
               (if (result i32) (i32.le_s (local.get 0) (i32.const 1))
                 (then (i32.const 1))
                 (else (i32.mul (local.get 0)
                                (call $reenter (i32.sub (local.get 0) (i32.const 1))))))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, 0u32);
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap(
            "env",
            "reenter",
            |mut caller: Caller<'_, u32>, n: i32| -> kiln::Result<i32> {
                *caller.data_mut() += 1;
                let fact = caller.get_export("fact").unwrap().into_func().unwrap();
                let typed = fact.typed::<i32, i32>(&caller)?;
                typed.call(&mut caller, n)
            },
        )
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let fact = instance
        .get_typed_func::<i32, i32>(&mut store, "fact")
        .unwrap();
    assert_eq!(fact.call(&mut store, 6).unwrap(), 720);
    assert_eq!(*store.data(), 5);
}

#[test]
fn host_error_and_trap_through_host_frames() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "fail" (func $fail (param i32)))
             (func (export "boom") unreachable)
             (func (export "run") (param i32) (call $fail (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap(
            "env",
            "fail",
            |mut caller: Caller<'_, ()>, mode: i32| -> kiln::Result<()> {
                if mode == 0 {
                    return Err(Error::Host("custom failure".into()));
                }
                // Trap in a nested activation; the error travels through this host frame.
                let boom = caller.get_export("boom").unwrap().into_func().unwrap();
                boom.call(&mut caller, &[], &mut [])
            },
        )
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance
        .get_typed_func::<i32, ()>(&mut store, "run")
        .unwrap();
    let err = run.call(&mut store, 0).unwrap_err();
    assert!(matches!(err, Error::Host(_)), "{err}");
    assert!(err.to_string().contains("custom failure"));
    let err = run.call(&mut store, 1).unwrap_err();
    assert_eq!(trap_code(err), TrapCode::UnreachableCodeReached);
    // The store still works afterwards.
    let err = run.call(&mut store, 0).unwrap_err();
    assert!(matches!(err, Error::Host(_)));
}

#[test]
fn host_panic_propagates() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (import "env" "p" (func $p)) (func (export "run") (call $p)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let p = Func::wrap(&mut store, || -> () { panic!("host panic") });
    let instance = Instance::new(&mut store, &module, &[p.into()]).unwrap();
    let run = instance
        .get_typed_func::<(), ()>(&mut store, "run")
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = run.call(&mut store, ());
    }));
    assert!(caught.is_err());
}

#[test]
fn func_new_dynamic() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (import "m" "f" (func $f (param f64) (result f64)))
             (func (export "g") (param f64) (result f64) (call $f (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let f = Func::new(
        &mut store,
        FuncType::new([ValType::F64], [ValType::F64]),
        |_caller, params, results| {
            results[0] = Val::from(params[0].f64().unwrap() * 2.0);
            Ok(())
        },
    );
    let instance = Instance::new(&mut store, &module, &[Extern::Func(f)]).unwrap();
    let g = instance
        .get_typed_func::<f64, f64>(&mut store, "g")
        .unwrap();
    assert_eq!(g.call(&mut store, 1.25).unwrap(), 2.5);
}

#[test]
fn traps() {
    let (mut store, instance) = instantiate(
        r#"(module
             (type $v (func))
             (type $i (func (result i32)))
             (memory 1)
             (table 3 funcref)
             (elem (i32.const 0) $ret)
             (func $ret (result i32) i32.const 7)
             (func (export "unreachable") unreachable)
             (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
             (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
             (func (export "call_i") (param i32) (result i32) (call_indirect (type $i) (local.get 0)))
             (func (export "call_v") (param i32) (call_indirect (type $v) (local.get 0))))"#,
    );
    let unreachable = instance
        .get_typed_func::<(), ()>(&mut store, "unreachable")
        .unwrap();
    let err = unreachable.call(&mut store, ()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unreachable"), "{msg}");
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.code(), TrapCode::UnreachableCodeReached);
    assert_eq!(trap.func_index(), Some(1));

    let div = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "div")
        .unwrap();
    assert_eq!(div.call(&mut store, (7, 2)).unwrap(), 3);
    assert_eq!(
        trap_code(div.call(&mut store, (7, 0)).unwrap_err()),
        TrapCode::IntegerDivisionByZero
    );
    assert_eq!(
        trap_code(div.call(&mut store, (i32::MIN, -1)).unwrap_err()),
        TrapCode::IntegerOverflow
    );

    let load = instance
        .get_typed_func::<i32, i32>(&mut store, "load")
        .unwrap();
    assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
    for addr in [65533, 65536, -1, i32::MIN] {
        assert_eq!(
            trap_code(load.call(&mut store, addr).unwrap_err()),
            TrapCode::MemoryOutOfBounds,
            "address {addr}"
        );
    }

    let call_i = instance
        .get_typed_func::<i32, i32>(&mut store, "call_i")
        .unwrap();
    assert_eq!(call_i.call(&mut store, 0).unwrap(), 7);
    assert_eq!(
        trap_code(call_i.call(&mut store, 1).unwrap_err()),
        TrapCode::IndirectCallToNull
    );
    assert_eq!(
        trap_code(call_i.call(&mut store, 3).unwrap_err()),
        TrapCode::IndirectCallOutOfBounds
    );
    let call_v = instance
        .get_typed_func::<i32, ()>(&mut store, "call_v")
        .unwrap();
    assert_eq!(
        trap_code(call_v.call(&mut store, 0).unwrap_err()),
        TrapCode::BadSignature
    );
    // Still usable after all those traps.
    assert_eq!(call_i.call(&mut store, 0).unwrap(), 7);
}

#[test]
fn stack_overflow_is_a_trap() {
    let (mut store, instance) = instantiate(
        r#"(module (func $r (export "r") (param i32) (result i32)
             (i32.add (call $r (i32.add (local.get 0) (i32.const 1))) (i32.const 1))))"#,
    );
    let r = instance
        .get_typed_func::<i32, i32>(&mut store, "r")
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            trap_code(r.call(&mut store, 0).unwrap_err()),
            TrapCode::StackOverflow
        );
    }
}

#[test]
fn stack_overflow_on_many_threads() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (memory 1)
             (func $r (export "r") (param i32) (result i32)
               (i32.add (call $r (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
             (func (export "oob") (result i32) (i32.load (i32.const 70000))))"#,
    )
    .unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let engine = engine.clone();
            let module = module.clone();
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let instance = Instance::new(&mut store, &module, &[]).unwrap();
                let r = instance
                    .get_typed_func::<i32, i32>(&mut store, "r")
                    .unwrap();
                let oob = instance
                    .get_typed_func::<(), i32>(&mut store, "oob")
                    .unwrap();
                for _ in 0..5 {
                    assert_eq!(
                        trap_code(r.call(&mut store, 0).unwrap_err()),
                        TrapCode::StackOverflow
                    );
                    assert_eq!(
                        trap_code(oob.call(&mut store, ()).unwrap_err()),
                        TrapCode::MemoryOutOfBounds
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn oob_store_leaves_memory_unchanged() {
    let (mut store, instance) = instantiate(
        r#"(module (memory (export "mem") 1)
             (func (export "store64") (param i32 i64) (i64.store (local.get 0) (local.get 1))))"#,
    );
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    let len = mem.data_size(&store);
    assert_eq!(len, 65536);
    mem.write(&mut store, len - 8, &[0xAA; 8]).unwrap();
    let store64 = instance
        .get_typed_func::<(i32, i64), ()>(&mut store, "store64")
        .unwrap();
    let err = store64
        .call(&mut store, ((len - 4) as i32, -1))
        .unwrap_err();
    assert_eq!(trap_code(err), TrapCode::MemoryOutOfBounds);
    assert_eq!(&mem.data(&store)[len - 8..], &[0xAA; 8]);
    store64
        .call(&mut store, ((len - 8) as i32, 0x0102030405060708))
        .unwrap();
    assert_eq!(
        &mem.data(&store)[len - 8..],
        &0x0102030405060708u64.to_le_bytes()
    );
}

#[test]
fn memory_grow() {
    let (mut store, instance) = instantiate(
        r#"(module (memory (export "mem") 1 3)
             (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
             (func (export "size") (result i32) memory.size)
             (func (export "poke") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
             (func (export "peek") (param i32) (result i32) (i32.load (local.get 0))))"#,
    );
    let grow = instance
        .get_typed_func::<i32, i32>(&mut store, "grow")
        .unwrap();
    let size = instance
        .get_typed_func::<(), i32>(&mut store, "size")
        .unwrap();
    let poke = instance
        .get_typed_func::<(i32, i32), ()>(&mut store, "poke")
        .unwrap();
    let peek = instance
        .get_typed_func::<i32, i32>(&mut store, "peek")
        .unwrap();
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    assert_eq!(size.call(&mut store, ()).unwrap(), 1);
    assert!(poke.call(&mut store, (70000, 5)).is_err());
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(size.call(&mut store, ()).unwrap(), 2);
    assert_eq!(mem.size(&store), 2);
    poke.call(&mut store, (70000, 5)).unwrap();
    assert_eq!(peek.call(&mut store, 70000).unwrap(), 5);
    assert_eq!(grow.call(&mut store, 2).unwrap(), -1);
    assert_eq!(mem.grow(&mut store, 1).unwrap(), 2);
    assert_eq!(size.call(&mut store, ()).unwrap(), 3);
    assert!(mem.grow(&mut store, 1).is_err());
    assert_eq!(grow.call(&mut store, 0).unwrap(), 3);
}

#[test]
fn globals_import_export() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "g" (global $g (mut i32)))
             (import "env" "c" (global $c i64))
             (global $own (export "own") (mut f64) (f64.const 1.5))
             (global $copy (export "copy") i64 (global.get $c))
             (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1))))
             (func (export "get_own") (result f64) (global.get $own)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let g = Global::new(
        &mut store,
        GlobalType {
            content: ValType::I32,
            mutable: true,
        },
        Val::I32(41),
    )
    .unwrap();
    let c = Global::new(
        &mut store,
        GlobalType {
            content: ValType::I64,
            mutable: false,
        },
        Val::I64(-7),
    )
    .unwrap();
    assert!(c.set(&mut store, Val::I64(1)).is_err());
    let instance = Instance::new(&mut store, &module, &[g.into(), c.into()]).unwrap();
    let bump = instance
        .get_typed_func::<(), ()>(&mut store, "bump")
        .unwrap();
    bump.call(&mut store, ()).unwrap();
    assert_eq!(g.get(&mut store), Val::I32(42));
    let own = instance.get_global(&mut store, "own").unwrap();
    assert_eq!(own.get(&mut store).f64(), Some(1.5));
    own.set(&mut store, Val::from(2.5f64)).unwrap();
    let get_own = instance
        .get_typed_func::<(), f64>(&mut store, "get_own")
        .unwrap();
    assert_eq!(get_own.call(&mut store, ()).unwrap(), 2.5);
    let copy = instance.get_global(&mut store, "copy").unwrap();
    assert_eq!(copy.get(&mut store), Val::I64(-7));

    // A wrongly typed import is a link error.
    let wrong = Global::new(
        &mut store,
        GlobalType {
            content: ValType::I32,
            mutable: false,
        },
        Val::I32(0),
    )
    .unwrap();
    let err = Instance::new(&mut store, &module, &[wrong.into(), c.into()]).unwrap_err();
    assert!(matches!(err, Error::Link(_)), "{err}");
}

#[test]
fn imported_memory_and_table_segments() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "mem" (memory 1))
             (data (i32.const 10) "hello")
             (func (export "get") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mem = Memory::new(
        &mut store,
        MemoryType {
            min: 1,
            max: None,
            memory64: false,
            shared: false,
        },
    )
    .unwrap();
    let instance = Instance::new(&mut store, &module, &[mem.into()]).unwrap();
    assert_eq!(&mem.data(&store)[10..15], b"hello");
    let get = instance
        .get_typed_func::<i32, i32>(&mut store, "get")
        .unwrap();
    assert_eq!(get.call(&mut store, 11).unwrap(), i32::from(b'e'));

    // 2.0 semantics: segments are written in order; the first misfit traps and the writes
    // before it stay.
    let bad = Module::new(
        &engine,
        r#"(module
             (import "env" "mem" (memory 1))
             (data (i32.const 0) "XXXX")
             (data (i32.const 65535) "too long"))"#,
    )
    .unwrap();
    let err = Instance::new(&mut store, &bad, &[mem.into()]).unwrap_err();
    assert_eq!(trap_code(err), TrapCode::MemoryOutOfBounds);
    assert_eq!(&mem.data(&store)[0..4], b"XXXX");
    assert_eq!(mem.data(&store)[65535], 0);
}

#[test]
fn unknown_import_is_a_link_error() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (import "a" "b" (func)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::<()>::new(&engine);
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert_eq!(
        err.to_string(),
        "link error: unknown import: `a::b` of type (func) has not been defined; the linker \
         defines nothing"
    );
    // The message says what the linker has instead: the same name in another module...
    linker.func_wrap("other", "b", || {}).unwrap();
    linker.func_wrap("a", "c", |x: i32| x).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(
        err.to_string().ends_with("; the linker defines `other::b`"),
        "{err}"
    );
    // ...or what the module it names defines.
    let module = Module::new(&engine, r#"(module (import "a" "x" (func (param i64))))"#).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert_eq!(
        err.to_string(),
        "link error: unknown import: `a::x` of type (func (param i64)) has not been defined; \
         module `a` defines c"
    );
}

#[test]
fn module_imports_and_exports_in_order() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "z" "f" (func (param i32)))
             (import "a" "m" (memory 1))
             (func (export "zz"))
             (memory (export "aa") 0)
             (global (export "mm") i32 (i32.const 0)))"#,
    );
    // Two memories need multi-memory; fall back to one.
    let module = module.unwrap_or_else(|_| {
        Module::new(
            &engine,
            r#"(module
                 (import "z" "f" (func (param i32)))
                 (import "a" "m" (memory 1))
                 (func (export "zz"))
                 (global (export "mm") i32 (i32.const 0)))"#,
        )
        .unwrap()
    });
    let imports: Vec<_> = module
        .imports()
        .map(|i| (i.module().to_owned(), i.name().to_owned()))
        .collect();
    assert_eq!(
        imports,
        [("z".into(), "f".into()), ("a".into(), "m".into())]
    );
    let exports: Vec<_> = module.exports().map(|e| e.name().to_owned()).collect();
    assert_eq!(exports.first().map(String::as_str), Some("zz"));
    assert_eq!(exports.last().map(String::as_str), Some("mm"));
    let _ = Config::new();
}

#[test]
fn tables_and_cross_instance_calls() {
    let engine = Engine::default();
    let lib = Module::new(
        &engine,
        r#"(module
             (table (export "tab") 4 funcref)
             (func $sq (export "sq") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
             (elem (i32.const 0) $sq))"#,
    )
    .unwrap();
    let user = Module::new(
        &engine,
        r#"(module
             (type $t (func (param i32) (result i32)))
             (import "lib" "tab" (table 2 funcref))
             (import "lib" "sq" (func $sq (param i32) (result i32)))
             (func (export "direct") (param i32) (result i32) (call $sq (local.get 0)))
             (func (export "via") (param i32 i32) (result i32)
               (call_indirect (type $t) (local.get 1) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let lib_instance = linker.instantiate(&mut store, &lib).unwrap();
    linker.instance(&mut store, "lib", lib_instance).unwrap();
    let instance = linker.instantiate(&mut store, &user).unwrap();
    let direct = instance
        .get_typed_func::<i32, i32>(&mut store, "direct")
        .unwrap();
    assert_eq!(direct.call(&mut store, 9).unwrap(), 81);
    let via = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "via")
        .unwrap();
    assert_eq!(via.call(&mut store, (0, 5)).unwrap(), 25);

    // Host functions in tables, set from the host.
    let table = lib_instance.get_table(&mut store, "tab").unwrap();
    assert_eq!(table.size(&store), 4);
    let sq = lib_instance.get_func(&mut store, "sq").unwrap();
    assert_eq!(table.get(&mut store, 0), Some(Val::FuncRef(Some(sq))));
    assert_eq!(table.get(&mut store, 1), Some(Val::FuncRef(None)));
    assert_eq!(table.get(&mut store, 4), None);
    let neg = Func::wrap(&mut store, |x: i32| -x);
    table.set(&mut store, 1, Val::FuncRef(Some(neg))).unwrap();
    assert_eq!(via.call(&mut store, (1, 5)).unwrap(), -5);
    assert_eq!(table.get(&mut store, 1), Some(Val::FuncRef(Some(neg))));
    let wrong = Func::wrap(&mut store, |x: i64| x);
    table
        .set(&mut store, 2, Val::FuncRef(Some(wrong)))
        .unwrap_or(());
    if table.get(&mut store, 2) == Some(Val::FuncRef(Some(wrong))) {
        assert_eq!(
            trap_code(via.call(&mut store, (2, 5)).unwrap_err()),
            TrapCode::BadSignature
        );
    }
    assert_eq!(table.grow(&mut store, 2, Val::FuncRef(None)).unwrap(), 4);
    assert_eq!(table.size(&store), 6);
    assert_eq!(
        trap_code(via.call(&mut store, (5, 1)).unwrap_err()),
        TrapCode::IndirectCallToNull
    );
}

#[test]
fn start_function_and_trap_details() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1)
             (func $init (i32.store (i32.const 0) (i32.const 1)) unreachable)
             (start $init))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    let trap = err.as_trap().expect("start function traps");
    assert_eq!(trap.code(), TrapCode::UnreachableCodeReached);
    assert_eq!(trap.func_index(), Some(0));
    assert_eq!(trap.func_name(), Some("init"));
    assert!(trap.wasm_offset().is_some());
    let msg = err.to_string();
    assert!(
        msg.starts_with("wasm trap: unreachable (in function 0 `init` at wasm offset 0x"),
        "{msg}"
    );

    let ok = Module::new(
        &engine,
        r#"(module (global (export "g") (mut i32) (i32.const 0))
             (func $init (global.set 0 (i32.const 5))) (start $init))"#,
    )
    .unwrap();
    let instance = Instance::new(&mut store, &ok, &[]).unwrap();
    let g = instance.get_global(&mut store, "g").unwrap();
    assert_eq!(g.get(&mut store), Val::I32(5));
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    fn send<X: Send>() {}
    send_sync::<Engine>();
    send_sync::<Module>();
    send::<Store<()>>();
    send_sync::<Func>();
    send_sync::<Memory>();
    send_sync::<Instance>();
    send_sync::<Error>();
}

#[test]
fn store_moves_between_threads() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (global $n (mut i32) (i32.const 0))
             (func (export "inc") (result i32)
               (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let inc = instance
        .get_typed_func::<(), i32>(&mut store, "inc")
        .unwrap();
    assert_eq!(inc.call(&mut store, ()).unwrap(), 1);
    let mut store = std::thread::spawn(move || {
        assert_eq!(inc.call(&mut store, ()).unwrap(), 2);
        store
    })
    .join()
    .unwrap();
    assert_eq!(inc.call(&mut store, ()).unwrap(), 3);
}

#[test]
fn explicit_bounds_checks() {
    let mut config = Config::new();
    config.bounds_checks(kiln::BoundsChecks::Explicit);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module (memory (export "mem") 1 2)
             (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
             (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let load = instance
        .get_typed_func::<i32, i32>(&mut store, "load")
        .unwrap();
    let grow = instance
        .get_typed_func::<i32, i32>(&mut store, "grow")
        .unwrap();
    assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
    assert_eq!(
        trap_code(load.call(&mut store, 65533).unwrap_err()),
        TrapCode::MemoryOutOfBounds
    );
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(load.call(&mut store, 65533).unwrap(), 0);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(
        trap_code(load.call(&mut store, 131070).unwrap_err()),
        TrapCode::MemoryOutOfBounds
    );
}

#[test]
fn many_instances_release_memory() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (memory 1) (table 1 funcref))"#).unwrap();
    // 8 GiB of address space each: this only passes if reservations are released.
    for _ in 0..3000 {
        let mut store = Store::new(&engine, ());
        Instance::new(&mut store, &module, &[]).unwrap();
    }
}

#[test]
fn failed_instantiation_leaves_store_consistent() {
    let engine = Engine::default();
    let lib = Module::new(
        &engine,
        r#"(module (table (export "tab") 3 funcref) (memory (export "mem") 1))"#,
    )
    .unwrap();
    let bad = Module::new(
        &engine,
        r#"(module
             (import "lib" "tab" (table 3 funcref))
             (import "lib" "mem" (memory 1))
             (func $f (result i32) i32.const 1)
             (elem (i32.const 0) $f)
             (data (i32.const 65536) "x"))"#,
    )
    .unwrap();
    let good = Module::new(
        &engine,
        r#"(module
             (import "lib" "tab" (table 3 funcref))
             (func $g (result i32) i32.const 2)
             (elem (i32.const 1) $g)
             (func (export "call") (param i32) (result i32)
               (call_indirect (result i32) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let lib_instance = linker.instantiate(&mut store, &lib).unwrap();
    linker.instance(&mut store, "lib", lib_instance).unwrap();
    for _ in 0..3 {
        let err = linker.instantiate(&mut store, &bad).unwrap_err();
        assert_eq!(trap_code(err), TrapCode::MemoryOutOfBounds);
    }
    // The element segment came before the failing data segment, so (2.0 semantics) the
    // failed instance's $f stays in the shared table, and stays callable.
    let table = lib_instance.get_table(&mut store, "tab").unwrap();
    assert!(matches!(
        table.get(&mut store, 0),
        Some(Val::FuncRef(Some(_)))
    ));
    let instance = linker.instantiate(&mut store, &good).unwrap();
    let call = instance
        .get_typed_func::<i32, i32>(&mut store, "call")
        .unwrap();
    assert_eq!(call.call(&mut store, 1).unwrap(), 2);
    assert_eq!(call.call(&mut store, 0).unwrap(), 1);
    assert_eq!(
        trap_code(call.call(&mut store, 2).unwrap_err()),
        TrapCode::IndirectCallToNull
    );
    let Some(Val::FuncRef(Some(g))) = table.get(&mut store, 1) else {
        panic!("element 1 holds $g");
    };
    let mut out = [Val::I32(0)];
    g.call(&mut store, &[], &mut out).unwrap();
    assert_eq!(out[0], Val::I32(2));
}
