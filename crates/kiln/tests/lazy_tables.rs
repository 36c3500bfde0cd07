//! Tables whose active segments instantiation places without writing: each element reads
//! as the last segment that covers it until something writes it, whoever reads it first
//! (code through `call_indirect` or `table.get`, the host, another instance that imported
//! the table, a `table.copy`), after unchecked and checked loads alike.

mod common;

use common::load;
use kiln::{Engine, Error, Extern, Instance, Linker, Module, Store, TrapCode, Val};

/// Function `$fN` returns N. Three segments fill `$tab` (see `EXPECTED`): the second
/// overrides elements 2 and 3 of the first, the third is made of expressions (functions
/// and a null).
const DEFINER: &str = r#"(module
  (type $t (func (result i32)))
  (table $tab (export "table") 10 funcref)
  (table $other 6 funcref)
  (func $f0 (result i32) (i32.const 0))
  (func $f1 (result i32) (i32.const 1))
  (func $f2 (result i32) (i32.const 2))
  (func $f3 (result i32) (i32.const 3))
  (func $f4 (result i32) (i32.const 4))
  (func $f5 (result i32) (i32.const 5))
  (func $f6 (result i32) (i32.const 6))
  (func $f7 (result i32) (i32.const 7))
  (elem (table $tab) (i32.const 0) func $f0 $f1 $f2 $f3 $f2)
  (elem (table $tab) (i32.const 2) func $f4 $f5)
  (elem (table $tab) (i32.const 5) funcref (ref.func $f6) (ref.null func) (ref.func $f7))
  (func (export "call") (param i32) (result i32)
    (call_indirect $tab (type $t) (local.get 0)))
  (func (export "call_other") (param i32) (result i32)
    (call_indirect $other (type $t) (local.get 0)))
  (func (export "is_null") (param i32) (result i32)
    (ref.is_null (table.get $tab (local.get 0))))
  (func (export "move") (param i32 i32)
    (table.set $tab (local.get 0) (table.get $tab (local.get 1))))
  (func (export "copy") (param i32 i32 i32)
    (table.copy $tab $tab (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy_out") (param i32 i32 i32)
    (table.copy $other $tab (local.get 0) (local.get 1) (local.get 2)))
  (func (export "clear") (param i32)
    (table.set $tab (local.get 0) (ref.null func)))
  (func (export "grow") (param i32) (result i32)
    (table.grow $tab (ref.func $f3) (local.get 0))))"#;

/// What each element of `$tab` holds after instantiation: the function's number, or
/// `None` for null (index 6 is an explicit `ref.null`, 8 and 9 no segment reaches).
const EXPECTED: [Option<i32>; 10] = [
    Some(0),
    Some(1),
    Some(4),
    Some(5),
    Some(2),
    Some(6),
    None,
    Some(7),
    None,
    None,
];

fn artifact_file(engine: &Engine, wat: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("module.kiln");
    std::fs::write(
        &path,
        Module::new(engine, wat).unwrap().serialize().unwrap(),
    )
    .unwrap();
    (dir, path)
}

/// Runs `test` on `DEFINER` loaded from a file unchecked, then checked.
fn with_each_load(test: impl Fn(&Engine, &Module, bool)) {
    let engine = Engine::default();
    let (_dir, path) = artifact_file(&engine, DEFINER);
    for checked in [false, true] {
        test(&engine, &load(&engine, &path, checked), checked);
    }
}

fn trap_code(err: Error) -> TrapCode {
    match err.as_trap() {
        Some(t) => t.code(),
        None => panic!("expected a trap, got {err}"),
    }
}

/// What `call(index)` does: the function's number, or the trap code.
fn call(store: &mut Store<()>, instance: &Instance, index: u32) -> Result<i32, TrapCode> {
    let f = instance
        .get_typed_func::<i32, i32>(&mut *store, "call")
        .unwrap();
    f.call(&mut *store, index as i32).map_err(trap_code)
}

/// What the host reads at `index` of the exported table: the function's number (by
/// calling it), or `None` for null.
fn host_read(store: &mut Store<()>, instance: &Instance, index: u32) -> Option<i32> {
    let table = instance.get_table(&mut *store, "table").unwrap();
    match table.get(&mut *store, index).unwrap() {
        Val::FuncRef(Some(f)) => {
            let mut results = [Val::I32(-1)];
            f.call(&mut *store, &[], &mut results).unwrap();
            results[0].i32()
        }
        Val::FuncRef(None) => None,
        other => panic!("not a funcref: {other:?}"),
    }
}

fn expected_call(index: usize) -> Result<i32, TrapCode> {
    EXPECTED[index].ok_or(TrapCode::IndirectCallToNull)
}

#[test]
fn elements_read_as_the_last_segment_covering_them_whoever_reads_first() {
    with_each_load(|engine, module, checked| {
        // Code first, then the host, on one instance; the host first on another.
        let mut store = Store::new(engine, ());
        let by_code = Instance::new(&mut store, module, &[]).unwrap();
        let by_host = Instance::new(&mut store, module, &[]).unwrap();
        for (i, expected) in EXPECTED.iter().enumerate() {
            let i32_index = i as u32;
            assert_eq!(call(&mut store, &by_code, i32_index), expected_call(i));
            assert_eq!(host_read(&mut store, &by_code, i32_index), *expected);
            assert_eq!(host_read(&mut store, &by_host, i32_index), *expected);
            assert_eq!(call(&mut store, &by_host, i32_index), expected_call(i));
        }
        assert_eq!(
            call(&mut store, &by_code, 10),
            Err(TrapCode::IndirectCallOutOfBounds)
        );
        let is_null = by_code
            .get_typed_func::<i32, i32>(&mut store, "is_null")
            .unwrap();
        for (i, expected) in EXPECTED.iter().enumerate() {
            let null = is_null.call(&mut store, i as i32).unwrap();
            assert_eq!(
                null == 1,
                expected.is_none(),
                "element {i}, checked {checked}"
            );
        }
    });
}

#[test]
fn writes_copies_and_growth_change_only_what_they_touch() {
    with_each_load(|engine, module, _| {
        let mut store = Store::new(engine, ());
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        let func = |store: &mut Store<()>, name: &str| instance.get_func(store, name).unwrap();
        let run = |store: &mut Store<()>, name: &str, args: &[i32]| {
            let args: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
            let f = func(store, name);
            let mut results = vec![Val::I32(0); f.ty(&*store).results.len()];
            f.call(store, &args, &mut results).unwrap();
            results.first().and_then(Val::i32)
        };
        let mut expected = EXPECTED.to_vec();

        // table.set of a value read by table.get, and of null over a segment's element.
        run(&mut store, "move", &[8, 2]);
        expected[8] = expected[2];
        run(&mut store, "clear", &[0]);
        expected[0] = None;
        // An overlapping copy within the table, over elements nothing has read yet.
        run(&mut store, "copy", &[3, 1, 4]);
        expected.copy_within(1..5, 3);
        // A copy into the second table, read there by code.
        run(&mut store, "copy_out", &[0, 2, 6]);
        let copied: Vec<Option<i32>> = expected[2..8].to_vec();
        // Growth past the segments, filled with $f3.
        assert_eq!(run(&mut store, "grow", &[2]), Some(10));
        expected.extend([Some(3), Some(3)]);

        for (i, e) in expected.iter().enumerate() {
            let want = e.ok_or(TrapCode::IndirectCallToNull);
            assert_eq!(call(&mut store, &instance, i as u32), want, "element {i}");
            assert_eq!(
                host_read(&mut store, &instance, i as u32),
                *e,
                "element {i}"
            );
        }
        let call_other = instance
            .get_typed_func::<i32, i32>(&mut store, "call_other")
            .unwrap();
        for (i, e) in copied.iter().enumerate() {
            let got = call_other.call(&mut store, i as i32).map_err(trap_code);
            assert_eq!(got, e.ok_or(TrapCode::IndirectCallToNull), "other {i}");
        }
    });
}

/// Imports the table and calls through it; its own segment writes elements 8 and 9, the
/// eager way (the table is not its own).
const IMPORTER: &str = r#"(module
  (type $t (func (result i32)))
  (import "m" "table" (table $tab 10 funcref))
  (func $nine (result i32) (i32.const 9))
  (elem (table $tab) (i32.const 8) func $nine $nine)
  (func (export "call") (param i32) (result i32)
    (call_indirect $tab (type $t) (local.get 0))))"#;

#[test]
fn instances_that_import_the_table_read_the_definers_segments() {
    with_each_load(|engine, module, _| {
        let importer = Module::new(engine, IMPORTER).unwrap();
        let mut store = Store::new(engine, ());
        let definer = Instance::new(&mut store, module, &[]).unwrap();
        let table = definer.get_table(&mut store, "table").unwrap();
        let mut linker = Linker::new(engine);
        linker
            .define(&store, "m", "table", Extern::Table(table))
            .unwrap();
        let user = linker.instantiate(&mut store, &importer).unwrap();
        let mut expected = EXPECTED.to_vec();
        expected[8] = Some(9);
        expected[9] = Some(9);
        for (i, e) in expected.iter().enumerate() {
            let want = e.ok_or(TrapCode::IndirectCallToNull);
            // The importer reads first (its code finds the definer's unwritten words).
            assert_eq!(call(&mut store, &user, i as u32), want, "element {i}");
            assert_eq!(call(&mut store, &definer, i as u32), want, "element {i}");
        }
    });
}

/// A segment that does not fit fails instantiation, as before the table was lazy; the
/// segment before it still counts for an imported table (WebAssembly 2.0 order).
#[test]
fn a_segment_out_of_bounds_still_traps_at_instantiation() {
    let engine = Engine::default();
    let own = Module::new(
        &engine,
        r#"(module (table 4 funcref) (func $f)
             (elem (i32.const 0) func $f) (elem (i32.const 3) func $f $f))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let err = Instance::new(&mut store, &own, &[]).unwrap_err();
    assert_eq!(trap_code(err), TrapCode::TableOutOfBounds);

    let (_dir, path) = artifact_file(&engine, DEFINER);
    let module = load(&engine, &path, false);
    let definer = Instance::new(&mut store, &module, &[]).unwrap();
    let table = definer.get_table(&mut store, "table").unwrap();
    let partial = Module::new(
        &engine,
        r#"(module (import "m" "table" (table 10 funcref)) (func $f (result i32) (i32.const 42))
             (elem (i32.const 1) func $f) (elem (i32.const 9) func $f $f))"#,
    )
    .unwrap();
    let mut linker = Linker::new(&engine);
    linker
        .define(&store, "m", "table", Extern::Table(table))
        .unwrap();
    let err = linker.instantiate(&mut store, &partial).unwrap_err();
    assert_eq!(trap_code(err), TrapCode::TableOutOfBounds);
    assert_eq!(call(&mut store, &definer, 1), Ok(42));
    assert_eq!(
        call(&mut store, &definer, 2),
        Ok(4),
        "untouched: still lazy"
    );
}
