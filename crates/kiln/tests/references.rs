//! Reference types through the embedding API: host objects as `externref`s in tables,
//! globals, parameters and results (and dropped with their store), functions as `funcref`
//! table elements called from wasm, and tables grown from both sides.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::{
    Engine, ExternRef, Func, FuncType, Global, GlobalType, Instance, Linker, Module, RefType,
    Store, Table, TableType, TrapCode, Val, ValType,
};

/// A host object that counts its drops.
struct Tracked {
    id: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

const KEEPER: &str = r#"(module
  (table $t (export "t") 4 externref)
  (global $g (export "g") (mut externref) (ref.null extern))
  (func (export "keep") (param i32 externref)
    (table.set $t (local.get 0) (local.get 1))
    (global.set $g (local.get 1)))
  (func (export "get") (param i32) (result externref)
    (table.get $t (local.get 0)))
  (func (export "is_null") (param externref) (result i32)
    (ref.is_null (local.get 0)))
  (func (export "grow") (param externref i32) (result i32)
    (table.grow $t (local.get 0) (local.get 1))))"#;

fn tracked_id(store: &Store<()>, val: &Val) -> Option<u32> {
    let Val::ExternRef(Some(r)) = val else {
        return None;
    };
    r.data(store).ok()?.downcast_ref::<Tracked>().map(|t| t.id)
}

#[test]
fn host_objects_held_only_by_wasm_are_dropped_with_the_store() {
    let engine = Engine::default();
    let module = Module::new(&engine, KEEPER).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let keep = instance.get_func(&mut store, "keep").unwrap();
    let get = instance.get_func(&mut store, "get").unwrap();

    for id in 0..4 {
        let object = ExternRef::new(
            &mut store,
            Tracked {
                id,
                drops: drops.clone(),
            },
        );
        keep.call(&mut store, &[Val::I32(id as i32), object.into()], &mut [])
            .unwrap();
    }
    // A host global and a host table holding objects too.
    let held = ExternRef::new(
        &mut store,
        Tracked {
            id: 100,
            drops: drops.clone(),
        },
    );
    let ty = GlobalType {
        content: ValType::ExternRef,
        mutable: true,
    };
    Global::new(&mut store, ty, held.into()).unwrap();
    let table_ty = TableType {
        element: RefType::ExternRef,
        min: 2,
        max: None,
    };
    let table = Table::new(&mut store, table_ty, Val::ExternRef(None)).unwrap();
    let other = ExternRef::new(
        &mut store,
        Tracked {
            id: 101,
            drops: drops.clone(),
        },
    );
    table.set(&mut store, 1, other.into()).unwrap();

    // Wasm gives the objects back as they went in.
    for id in 0..4 {
        let mut out = [Val::I32(0)];
        get.call(&mut store, &[Val::I32(id)], &mut out).unwrap();
        assert_eq!(tracked_id(&store, &out[0]), Some(id as u32));
    }
    let g = instance.get_global(&mut store, "g").unwrap();
    let in_global = g.get(&mut store);
    assert_eq!(tracked_id(&store, &in_global), Some(3));
    let in_table = table.get(&mut store, 1).unwrap();
    assert_eq!(tracked_id(&store, &in_table), Some(101));
    assert_eq!(table.get(&mut store, 0), Some(Val::ExternRef(None)));

    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "nothing dropped while the store lives"
    );
    drop(store);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        6,
        "every host object dropped with the store"
    );
}

#[test]
fn externrefs_cross_host_functions_and_stay_in_their_store() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "make" (func $make (param i32) (result externref)))
             (import "host" "read" (func $read (param externref) (result i32)))
             (func (export "roundtrip") (param i32) (result i32)
               (call $read (call $make (local.get 0)))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let make_ty = FuncType::new([ValType::I32], [ValType::ExternRef]);
    linker
        .func_new("host", "make", make_ty, |mut caller, args, results| {
            let n = args[0].i32().unwrap();
            results[0] = ExternRef::new(&mut caller, format!("object {n}")).into();
            Ok(())
        })
        .unwrap();
    let read_ty = FuncType::new([ValType::ExternRef], [ValType::I32]);
    linker
        .func_new("host", "read", read_ty, |caller, args, results| {
            let Val::ExternRef(Some(r)) = args[0] else {
                return Err(kiln::Error::Type("expected an object".into()));
            };
            let text = r.data(&caller)?.downcast_ref::<String>().unwrap().clone();
            results[0] = Val::I32(text.trim_start_matches("object ").parse().unwrap());
            Ok(())
        })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let roundtrip = instance
        .get_typed_func::<i32, i32>(&mut store, "roundtrip")
        .unwrap();
    assert_eq!(roundtrip.call(&mut store, 42).unwrap(), 42);

    // A reference from one store is refused by another.
    let mut other = Store::new(&engine, ());
    let foreign = ExternRef::new(&mut other, 7u32);
    assert!(foreign.data(&store).is_err());
    let keeper = Module::new(&engine, KEEPER).unwrap();
    let instance = Instance::new(&mut store, &keeper, &[]).unwrap();
    let is_null = instance.get_func(&mut store, "is_null").unwrap();
    let mut out = [Val::I32(0)];
    assert!(
        is_null
            .call(&mut store, &[foreign.into()], &mut out)
            .is_err()
    );
    is_null
        .call(&mut store, &[Val::ExternRef(None)], &mut out)
        .unwrap();
    assert_eq!(out[0], Val::I32(1));
}

#[test]
fn host_and_wasm_functions_as_funcref_table_elements() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (type $un (func (param i32) (result i32)))
             (table $t (export "t") 3 funcref)
             (func $inc (export "inc") (type $un) (i32.add (local.get 0) (i32.const 1)))
             (elem declare func $inc)
             (func (export "call") (param i32 i32) (result i32)
               (call_indirect $t (type $un) (local.get 1) (local.get 0)))
             (func (export "set_inc") (param i32)
               (table.set $t (local.get 0) (ref.func $inc)))
             (func (export "size") (result i32) (table.size $t)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let call = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "call")
        .unwrap();
    let set_inc = instance
        .get_typed_func::<i32, ()>(&mut store, "set_inc")
        .unwrap();
    let table = instance.get_table(&mut store, "t").unwrap();

    let double = Func::wrap(&mut store, |x: i32| x * 2);
    table.set(&mut store, 0, double.into()).unwrap();
    set_inc.call(&mut store, 1).unwrap();
    assert_eq!(call.call(&mut store, (0, 21)).unwrap(), 42);
    assert_eq!(call.call(&mut store, (1, 41)).unwrap(), 42);
    assert_eq!(
        call.call(&mut store, (2, 0))
            .unwrap_err()
            .as_trap()
            .unwrap()
            .code(),
        TrapCode::IndirectCallToNull
    );

    // The element wasm stored is the exported function.
    let Some(Val::FuncRef(Some(f))) = table.get(&mut store, 1) else {
        panic!("element 1 holds $inc");
    };
    let mut out = [Val::I32(0)];
    f.call(&mut store, &[Val::I32(9)], &mut out).unwrap();
    assert_eq!(out[0], Val::I32(10));

    // Growing from the host is seen by wasm.
    assert_eq!(table.grow(&mut store, 2, double.into()).unwrap(), 3);
    let size = instance
        .get_typed_func::<(), i32>(&mut store, "size")
        .unwrap();
    assert_eq!(size.call(&mut store, ()).unwrap(), 5);
    assert_eq!(call.call(&mut store, (4, 5)).unwrap(), 10);
}

#[test]
fn table_grow_respects_the_maximum() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (table $t 1 3 externref)
             (func (export "grow") (param i32) (result i32)
               (table.grow $t (ref.null extern) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = instance
        .get_typed_func::<i32, i32>(&mut store, "grow")
        .unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(grow.call(&mut store, 0).unwrap(), 3);
    assert_eq!(grow.call(&mut store, -1).unwrap(), -1);
}
