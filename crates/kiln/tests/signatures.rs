//! `call_indirect` compares exact signatures, not only their ids. Signatures of more than 17
//! values get a 63-bit hash as their id, and a hash collision can be searched for offline,
//! so an untrusted module could otherwise call a function through the wrong signature. This
//! test binary makes every hashed id collide (as if such a collision had been found) and
//! checks that a mismatch still traps and a match still calls.

use kiln::{Engine, Func, FuncType, Instance, Linker, Module, Store, TrapCode, Val, ValType};

fn colliding_engine() -> Engine {
    kiln_artifact::make_hashed_signature_ids_collide_for_testing();
    Engine::default()
}

/// Two long signatures (18 parameters each) that differ in one parameter type, a function of
/// each in a table, and entries that call table slots through the first signature.
fn module() -> String {
    let i32s = "i32 ".repeat(18);
    let i64_then_i32s = format!("i64 {}", "i32 ".repeat(17));
    let zeros_i32 = "(i32.const 0) ".repeat(18);
    format!(
        r#"(module
  (type $wide32 (func (param {i32s}) (result i32)))
  (type $wide64 (func (param {i64_then_i32s}) (result i32)))
  (import "host" "wide" (func $host (type $wide64)))
  (table 3 funcref)
  (elem (i32.const 0) $takes32 $takes64 $host)
  (func $takes32 (type $wide32) (i32.const 32))
  (func $takes64 (type $wide64) (i32.const 64))
  (func (export "call") (param i32) (result i32)
    (call_indirect (type $wide32) {zeros_i32} (local.get 0))))"#
    )
}

#[test]
fn long_signatures_with_colliding_ids_are_told_apart() {
    let engine = colliding_engine();
    let wide32 = FuncType::new([ValType::I32; 18], [ValType::I32]);
    let wide64 = FuncType::new(
        std::iter::once(ValType::I64).chain([ValType::I32; 17]),
        [ValType::I32],
    );
    assert_eq!(wide32.signature_id(), wide64.signature_id(), "ids collide");
    assert!(wide32.signature_id().is_hashed());

    let module = Module::new(&engine, module()).unwrap();
    let mut store = Store::new(&engine, ());
    let host = Func::new(&mut store, wide64, |_, _, results| {
        results[0] = Val::I32(99);
        Ok(())
    });
    let mut linker = Linker::new(&engine);
    linker.define(&store, "host", "wide", host).unwrap();
    let instance: Instance = linker.instantiate(&mut store, &module).unwrap();
    let call = instance
        .get_typed_func::<i32, i32>(&mut store, "call")
        .unwrap();

    assert_eq!(call.call(&mut store, 0).unwrap(), 32);
    for wrong in [1, 2] {
        let err = call.call(&mut store, wrong).unwrap_err();
        assert_eq!(
            err.as_trap().map(|t| t.code()),
            Some(TrapCode::BadSignature),
            "slot {wrong}: {err}"
        );
    }
    // The module also goes through the artifact round trip unchanged.
    let bytes = module.serialize().unwrap();
    // SAFETY: `Module::serialize` wrote these bytes just above.
    let reloaded = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    let instance = linker.instantiate(&mut store, &reloaded).unwrap();
    let call = instance
        .get_typed_func::<i32, i32>(&mut store, "call")
        .unwrap();
    assert_eq!(call.call(&mut store, 0).unwrap(), 32);
    assert!(call.call(&mut store, 1).is_err());
}
