//! Func refs filled lazily: instantiation writes only those of functions that code can reach
//! (element segments, global initialisers, `ref.func` in bodies, which the compiler lists);
//! an exported function's is filled when the host first hands the function anywhere. Every
//! path must still see a callable func ref.

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

#[test]
fn the_compiler_lists_the_functions_bodies_name() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    let info = kiln_artifact::read_metadata(&module.serialize().unwrap()).unwrap();
    assert_eq!(info.ref_funcs_in_code, [kiln_artifact::FuncIndex(1)]);
}

/// Each way a function leaves its instance: called by code through `ref.func`, called by
/// the host, put in a table by the host, imported by another instance; after an unchecked
/// load (lazy func refs) and a checked one (every func ref filled).
#[test]
fn exported_functions_work_on_every_path() {
    let engine = Engine::default();
    let artifact = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exports.kiln");
    std::fs::write(&path, &artifact).unwrap();
    for checked in [false, true] {
        // SAFETY: the file holds an artifact this engine serialized and is not changed.
        let module = unsafe {
            if checked {
                Module::deserialize_file(&engine, &path)
            } else {
                Module::deserialize_file_unchecked(&engine, &path)
            }
        }
        .unwrap();
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

/// A checked load refuses a list of `ref.func` targets that is unsorted, repeats a function
/// or names one out of range (the runtime indexes func ref slots by it).
#[test]
fn checked_loads_refuse_a_malformed_list() {
    let engine = Engine::default();
    let artifact = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let header = kiln_artifact::Header::parse(&artifact).unwrap();
    let info = kiln_artifact::read_metadata(&artifact).unwrap();
    let section = |range: kiln_artifact::SectionRange| {
        &artifact[range.offset as usize..(range.offset + range.len) as usize]
    };
    let rebuild = |list: &[u32]| {
        let mut info = info.clone();
        info.ref_funcs_in_code = list.iter().map(|&f| kiln_artifact::FuncIndex(f)).collect();
        kiln_artifact::build_artifact(&kiln_artifact::ArtifactParts {
            info: &info,
            code: section(header.code),
            data: section(header.data),
            compat: &header.compat,
            code_alignment: kiln_artifact::header::code_alignment(&header.compat.target).unwrap(),
        })
        .unwrap()
    };
    let check =
        |list: &[u32]| kiln_artifact::open_checked(&rebuild(list), &header.compat).map(|_| ());
    assert!(check(&[1]).is_ok());
    assert!(check(&[0, 1, 2]).is_ok());
    for bad in [&[1, 0][..], &[1, 1], &[6], &[u32::MAX]] {
        assert!(check(bad).is_err(), "{bad:?} was accepted");
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
