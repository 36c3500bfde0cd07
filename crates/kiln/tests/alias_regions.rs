//! Linear-memory accesses form their own alias region in generated code, so the optimiser may
//! keep a global, a table slot or a memory's length across stores to memory. These tests pin
//! the other half of that contract: a call (here into the host, which changes the global, the
//! table and the memory behind the code's back) still makes every value be read again, at
//! every optimisation level and in both bounds-check modes.

use kiln::{BoundsChecks, Caller, Config, Engine, Linker, Module, OptLevel, Store, Val};

const MODULE: &str = r#"
(module
  (import "env" "meddle" (func $meddle))
  (memory (export "mem") 1)
  (table (export "tab") 2 funcref)
  (global $g (export "g") (mut i32) (i32.const 0))
  (func $f)
  (elem declare func $f)
  ;; Returns the global, a word of memory and whether slot 0 is null, each read before and
  ;; after the call, with stores to memory in between that must not hide the call's effects.
  (func (export "mix") (result i32 i32 i32 i32 i32 i32)
    (local $g0 i32) (local $m0 i32) (local $t0 i32)
    (global.set $g (i32.const 1))
    (i32.store (i32.const 8) (i32.const 7))
    (table.set (i32.const 0) (ref.func $f))
    (i32.store (i32.const 16) (global.get $g))
    (local.set $g0 (global.get $g))
    (local.set $m0 (i32.load (i32.const 8)))
    (local.set $t0 (ref.is_null (table.get (i32.const 0))))
    (call $meddle)
    (i32.store (i32.const 24) (i32.const 3))
    (local.get $g0) (local.get $m0) (local.get $t0)
    (global.get $g) (i32.load (i32.const 8)) (ref.is_null (table.get (i32.const 0)))))
"#;

#[test]
fn calls_still_reload_what_memory_stores_do_not_touch() {
    for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
        for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
            let mut config = Config::new();
            config.opt_level(opt_level).bounds_checks(bounds_checks);
            let engine = Engine::new(&config).unwrap();
            let module = Module::new(&engine, MODULE).unwrap();
            let mut linker = Linker::new(&engine);
            linker
                .func_wrap("env", "meddle", |mut caller: Caller<'_, ()>| {
                    let export =
                        |caller: &mut Caller<'_, ()>, name: &str| caller.get_export(name).unwrap();
                    let g = export(&mut caller, "g").into_global().unwrap();
                    g.set(&mut caller, Val::I32(5)).unwrap();
                    let mem = export(&mut caller, "mem").into_memory().unwrap();
                    mem.write(&mut caller, 8, &9i32.to_le_bytes()).unwrap();
                    let tab = export(&mut caller, "tab").into_table().unwrap();
                    tab.set(&mut caller, 0, Val::FuncRef(None)).unwrap();
                })
                .unwrap();
            let mut store = Store::new(&engine, ());
            let instance = linker.instantiate(&mut store, &module).unwrap();
            let mix = instance.get_func(&mut store, "mix").unwrap();
            let mut results = [Val::I32(-1); 6].to_vec();
            mix.call(&mut store, &[], &mut results).unwrap();
            let got: Vec<i32> = results
                .iter()
                .map(|v| match v {
                    Val::I32(x) => *x,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                got,
                [1, 7, 0, 5, 9, 1],
                "{opt_level:?}, {bounds_checks:?}: before the call g, mem[8], null(tab[0]); \
                 after it the same"
            );
        }
    }
}
