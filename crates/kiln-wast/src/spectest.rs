//! The `spectest` host module the official scripts import: no-op print functions, four
//! immutable globals holding 666, a funcref table of 10..20 elements and a memory of
//! 1..2 pages.

use kiln::{
    Global, GlobalType, Linker, Memory, MemoryType, RefType, Result, Store, Table, TableType, Val,
    ValType,
};

/// Defines every item of the `spectest` module in `linker`.
pub fn define_spectest<T: 'static>(linker: &mut Linker<T>, store: &mut Store<T>) -> Result<()> {
    const M: &str = "spectest";
    linker.func_wrap(M, "print", || {})?;
    linker.func_wrap(M, "print_i32", |_: i32| {})?;
    linker.func_wrap(M, "print_i64", |_: i64| {})?;
    linker.func_wrap(M, "print_f32", |_: f32| {})?;
    linker.func_wrap(M, "print_f64", |_: f64| {})?;
    linker.func_wrap(M, "print_i32_f32", |_: i32, _: f32| {})?;
    linker.func_wrap(M, "print_f64_f64", |_: f64, _: f64| {})?;

    let globals = [
        ("global_i32", ValType::I32, Val::I32(666)),
        ("global_i64", ValType::I64, Val::I64(666)),
        ("global_f32", ValType::F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", ValType::F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, content, val) in globals {
        let ty = GlobalType {
            content,
            mutable: false,
        };
        let global = Global::new(&mut *store, ty, val)?;
        linker.define(&*store, M, name, global)?;
    }

    let table_ty = TableType {
        element: RefType::FuncRef,
        min: 10,
        max: Some(20),
    };
    let table = Table::new(&mut *store, table_ty, Val::FuncRef(None))?;
    linker.define(&*store, M, "table", table)?;

    let memory_ty = MemoryType {
        min: 1,
        max: Some(2),
        memory64: false,
        shared: false,
    };
    let memory = Memory::new(&mut *store, memory_ty)?;
    linker.define(&*store, M, "memory", memory)?;
    Ok(())
}
