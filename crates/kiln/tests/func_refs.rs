//! Func refs filled lazily: instantiation writes none of a module's own; `ref.func` in code
//! fills its slot the first time it runs (a bit test inline, the runtime out of line), a
//! table element when first read, a global's initialiser when instantiation evaluates it,
//! and an exported function's when the host first hands the function anywhere. Every path,
//! in any order, must see a callable func ref; debug builds poison unwritten slots, so one
//! handed out unfilled fails loudly.

mod common;

use common::load;
use kiln::{
    Engine, Extern, Global, GlobalType, Instance, Linker, Module, RefType, Store, Table, TableType,
    Val, ValType,
};

/// `g` is exported and named by `ref.func` in a body (an export declares it, so no element
/// segment does); `f` is only exported; `h` is neither.
const WAT: &str = r#"(module
  (type $t (func (result i32)))
  (table $tab (export "table") 2 funcref)
  (func $f (export "f") (result i32) (i32.const 1))
  (func $g (export "g") (result i32) (i32.const 2))
  (func $h (result i32) (i32.const 3))
  (func (export "call_g_by_ref") (result i32)
    (table.set $tab (i32.const 0) (ref.func $g))
    (call_indirect $tab (type $t) (i32.const 0)))
  (func (export "call_slot") (param i32) (result i32)
    (call_indirect $tab (type $t) (local.get 0)))
  (func $e (export "e") (result i32) (i32.const 5)))"#;

const IMPORTER: &str = r#"(module
  (import "m" "f" (func $f (result i32)))
  (func (export "twice") (result i32) (i32.add (call $f) (call $f))))"#;

/// Each way a function leaves its instance: called by code through `ref.func`, called by
/// the host, put in a table by the host, imported by another instance; after an unchecked
/// load and a checked one.
#[test]
fn exported_functions_work_on_every_path() {
    let engine = Engine::default();
    let artifact = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exports.kiln");
    std::fs::write(&path, &artifact).unwrap();
    for checked in [false, true] {
        let module = load(&engine, &path, checked);
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();

        let by_ref = instance
            .get_typed_func::<(), i32>(&mut store, "call_g_by_ref")
            .unwrap();
        assert_eq!(by_ref.call(&mut store, ()).unwrap(), 2);

        let f = instance.get_func(&mut store, "f").unwrap();
        let mut results = [Val::I32(0)];
        f.call(&mut store, &[], &mut results).unwrap();
        assert_eq!(results[0].i32(), Some(1));

        let table = instance.get_table(&mut store, "table").unwrap();
        table.set(&mut store, 1, Val::FuncRef(Some(f))).unwrap();
        let call_slot = instance
            .get_typed_func::<i32, i32>(&mut store, "call_slot")
            .unwrap();
        assert_eq!(call_slot.call(&mut store, 1).unwrap(), 1);
        assert_eq!(call_slot.call(&mut store, 0).unwrap(), 2);

        let mut linker = Linker::new(&engine);
        linker.define(&store, "m", "f", Extern::Func(f)).unwrap();
        let importer = Module::new(&engine, IMPORTER).unwrap();
        let other = linker.instantiate(&mut store, &importer).unwrap();
        let twice = other
            .get_typed_func::<(), i32>(&mut store, "twice")
            .unwrap();
        assert_eq!(twice.call(&mut store, ()).unwrap(), 2);
    }
}

/// A module that reaches functions only through a table and a global the host made.
const THROUGH_HOST_ITEMS: &str = r#"(module
  (import "h" "t" (table 2 funcref))
  (import "h" "g" (global funcref))
  (type $t (func (result i32)))
  (func (export "call_slot") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
  (func (export "call_global") (result i32)
    (table.set (i32.const 1) (global.get 0))
    (call_indirect (type $t) (i32.const 1))))"#;

/// An export-only function (no element segment, global or `ref.func` names it) handed to a
/// table and a global the host creates, then called by another module through them.
#[test]
fn export_only_functions_reach_code_through_host_tables_and_globals() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let defining = Instance::new(&mut store, &Module::new(&engine, WAT).unwrap(), &[]).unwrap();
    let e = defining.get_func(&mut store, "e").unwrap();
    let table_ty = TableType {
        element: RefType::FuncRef,
        min: 2,
        max: None,
    };
    let table = Table::new(&mut store, table_ty, Val::FuncRef(Some(e))).unwrap();
    let global_ty = GlobalType {
        content: ValType::FuncRef,
        mutable: false,
    };
    let f = defining.get_func(&mut store, "f").unwrap();
    let global = Global::new(&mut store, global_ty, Val::FuncRef(Some(f))).unwrap();
    let mut linker = Linker::new(&engine);
    linker
        .define(&store, "h", "t", Extern::Table(table))
        .unwrap();
    linker
        .define(&store, "h", "g", Extern::Global(global))
        .unwrap();
    let user = Module::new(&engine, THROUGH_HOST_ITEMS).unwrap();
    let user = linker.instantiate(&mut store, &user).unwrap();
    let call_slot = user
        .get_typed_func::<i32, i32>(&mut store, "call_slot")
        .unwrap();
    assert_eq!(call_slot.call(&mut store, 0).unwrap(), 5);
    let call_global = user
        .get_typed_func::<(), i32>(&mut store, "call_global")
        .unwrap();
    assert_eq!(call_global.call(&mut store, ()).unwrap(), 1);
    assert_eq!(call_slot.call(&mut store, 1).unwrap(), 1);
}

/// The filled-slot bits are one per defined function, 64 to a word: exports around the
/// word boundaries, after imported functions, each reached first by the host.
#[test]
fn exports_at_the_bitmap_word_boundaries_work() {
    let mut wat = String::from(
        "(module (import \"h\" \"a\" (func (result i32))) (import \"h\" \"b\" (func (result i32)))\n",
    );
    for i in 0..130 {
        wat.push_str(&format!(
            "(func (export \"d{i}\") (result i32) (i32.const {}))\n",
            1000 + i
        ));
    }
    wat.push(')');
    let engine = Engine::default();
    let module = Module::new(&engine, &wat).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("h", "a", || 1).unwrap();
    linker.func_wrap("h", "b", || 2).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let table_ty = TableType {
        element: RefType::FuncRef,
        min: 1,
        max: None,
    };
    for i in [0, 1, 62, 63, 64, 65, 127, 128, 129] {
        let d = instance.get_func(&mut store, &format!("d{i}")).unwrap();
        // Filled by handing it to a table, then called both ways.
        let table = Table::new(&mut store, table_ty, Val::FuncRef(Some(d))).unwrap();
        let Val::FuncRef(Some(back)) = table.get(&mut store, 0).unwrap() else {
            panic!("d{i} did not come back from the table");
        };
        let typed = back.typed::<(), i32>(&store).unwrap();
        assert_eq!(typed.call(&mut store, ()).unwrap(), 1000 + i);
        let typed = d.typed::<(), i32>(&store).unwrap();
        assert_eq!(typed.call(&mut store, ()).unwrap(), 1000 + i);
    }
}

/// `ref.func` in code, on defined functions around the filled set's word boundaries (after
/// two imports), in both orders: code first (the runtime fills the slot), and the host first
/// (code then finds the bit set and takes the slot as it is); after both kinds of load.
#[test]
fn ref_func_fills_its_slot_on_first_use_in_either_order() {
    let mut wat = String::from(
        "(module (import \"h\" \"a\" (func (result i32))) (import \"h\" \"b\" (func (result i32)))\n\
         (type $t (func (result i32))) (table $tab 1 funcref) (elem declare func 1)\n",
    );
    for i in 0..130 {
        wat.push_str(&format!(
            "(func $d{i} (export \"d{i}\") (result i32) (i32.const {}))\n\
             (func (export \"by_ref{i}\") (result i32)\n\
               (table.set $tab (i32.const 0) (ref.func $d{i}))\n\
               (call_indirect $tab (type $t) (i32.const 0)))\n",
            1000 + i
        ));
    }
    wat.push_str(
        "(func (export \"import_by_ref\") (result i32)\n\
           (table.set $tab (i32.const 0) (ref.func 1))\n\
           (call_indirect $tab (type $t) (i32.const 0))))",
    );
    let engine = Engine::default();
    let artifact = Module::new(&engine, &wat).unwrap().serialize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref_func.kiln");
    std::fs::write(&path, &artifact).unwrap();
    for checked in [false, true] {
        let module = load(&engine, &path, checked);
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker.func_wrap("h", "a", || 1).unwrap();
        linker.func_wrap("h", "b", || 2).unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let import_by_ref = instance
            .get_typed_func::<(), i32>(&mut store, "import_by_ref")
            .unwrap();
        assert_eq!(import_by_ref.call(&mut store, ()).unwrap(), 2);
        for (n, i) in [0, 1, 62, 63, 64, 65, 127, 128, 129]
            .into_iter()
            .enumerate()
        {
            let by_ref = instance
                .get_typed_func::<(), i32>(&mut store, &format!("by_ref{i}"))
                .unwrap();
            let func = instance.get_func(&mut store, &format!("d{i}")).unwrap();
            let expected = 1000 + i;
            // The host fills a slot when it hands the function to a table.
            let table_ty = TableType {
                element: RefType::FuncRef,
                min: 1,
                max: None,
            };
            let host_hands_out = |store: &mut Store<()>| {
                let table = Table::new(&mut *store, table_ty, Val::FuncRef(Some(func))).unwrap();
                let Val::FuncRef(Some(back)) = table.get(&mut *store, 0).unwrap() else {
                    panic!("d{i} did not come back from the table");
                };
                let back = back.typed::<(), i32>(&*store).unwrap();
                assert_eq!(back.call(&mut *store, ()).unwrap(), expected);
            };
            if n % 2 == 0 {
                assert_eq!(
                    by_ref.call(&mut store, ()).unwrap(),
                    expected,
                    "d{i}, code first"
                );
                host_hands_out(&mut store);
            } else {
                host_hands_out(&mut store);
                assert_eq!(
                    by_ref.call(&mut store, ()).unwrap(),
                    expected,
                    "d{i}, host first"
                );
            }
            // And again, now that the slot is filled.
            assert_eq!(by_ref.call(&mut store, ()).unwrap(), expected);
        }
    }
}
