//! Func refs filled lazily: instantiation writes only those of functions that code can reach
//! (element segments, global initialisers, `ref.func` in bodies, which the compiler lists);
//! an exported function's is filled when the host first hands the function anywhere. Every
//! path must still see a callable func ref.

use kiln::{Engine, Extern, Instance, Linker, Module, Store, Val};

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
    (call_indirect $tab (type $t) (local.get 0))))"#;

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
    for bad in [&[1, 0][..], &[1, 1], &[5], &[u32::MAX]] {
        assert!(check(bad).is_err(), "{bad:?} was accepted");
    }
}
