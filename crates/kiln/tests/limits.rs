//! Store limits: memories and tables stop growing at the embedder's limit (-1 in wasm, an
//! error on the host), items whose minimum exceeds it are refused, counts are capped, and
//! refused instantiations leave no reservation behind.

use kiln::{
    Engine, Error, Instance, Memory, MemoryType, Module, RefType, Store, StoreLimits, Table,
    TableType, Val,
};

const GROWER: &str = r#"(module
  (memory (export "mem") 1)
  (table (export "tab") 1 funcref)
  (func (export "grow_memory") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "grow_table") (param i32) (result i32)
    (table.grow (ref.null func) (local.get 0))))"#;

#[test]
fn growth_stops_at_the_store_limit() {
    let engine = Engine::default();
    let module = Module::new(&engine, GROWER).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limits(StoreLimits::new().memory_size(3 << 16).table_elements(10));
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let grow_memory = instance
        .get_typed_func::<i32, i32>(&mut store, "grow_memory")
        .unwrap();
    let grow_table = instance
        .get_typed_func::<i32, i32>(&mut store, "grow_table")
        .unwrap();
    assert_eq!(grow_memory.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow_memory.call(&mut store, 1).unwrap(), -1);
    assert_eq!(grow_table.call(&mut store, 9).unwrap(), 1);
    assert_eq!(grow_table.call(&mut store, 1).unwrap(), -1);

    // The host sees the same limits.
    let mem = instance.get_memory(&mut store, "mem").unwrap();
    assert_eq!(mem.size(&store), 3);
    assert!(matches!(
        mem.grow(&mut store, 1),
        Err(Error::MemoryAccess(_))
    ));
    let tab = instance.get_table(&mut store, "tab").unwrap();
    assert!(tab.grow(&mut store, 1, Val::FuncRef(None)).is_err());
    assert_eq!(tab.size(&store), 10);

    // Items whose minimum exceeds a limit cannot be created.
    let big = MemoryType {
        min: 4,
        max: None,
        memory64: false,
        shared: false,
    };
    assert!(Memory::new(&mut store, big).is_err());
    let big = TableType {
        element: RefType::FuncRef,
        min: 11,
        max: None,
    };
    assert!(Table::new(&mut store, big, Val::FuncRef(None)).is_err());
    let big = Module::new(&engine, "(module (memory 4))").unwrap();
    assert!(matches!(
        Instance::new(&mut store, &big, &[]),
        Err(Error::Instantiation(_))
    ));
}

#[test]
fn counts_are_capped() {
    let engine = Engine::default();
    let module = Module::new(&engine, GROWER).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limits(StoreLimits::new().instances(2).memories(3));
    Instance::new(&mut store, &module, &[]).unwrap();
    Instance::new(&mut store, &module, &[]).unwrap();
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(matches!(err, Error::Instantiation(_)), "{err}");
    let ty = MemoryType {
        min: 0,
        max: None,
        memory64: false,
        shared: false,
    };
    Memory::new(&mut store, ty).unwrap();
    assert!(Memory::new(&mut store, ty).is_err());
}

#[test]
fn refused_instantiations_leave_no_reservation_behind() {
    // Each attempt would reserve 8 GiB of address space for its memory under guard pages;
    // 20,000 of them exceed the 128 TiB a process has, so any leak would make later
    // attempts fail differently (or the final instantiation fail).
    let engine = Engine::default();
    let module = Module::new(&engine, "(module (memory 1) (table 5 funcref))").unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limits(StoreLimits::new().table_elements(4));
    for _ in 0..20_000 {
        let err = Instance::new(&mut store, &module, &[]).unwrap_err();
        assert!(matches!(err, Error::Instantiation(_)), "{err}");
    }
    store.set_limits(StoreLimits::new());
    Instance::new(&mut store, &module, &[]).unwrap();
}
