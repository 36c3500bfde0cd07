//! The runtime helpers that generated code calls through `VMBuiltinFunctions`
//! (`kiln_artifact::Builtin`): thin `extern "C"` entry points that find the calling
//! instance from its vmctx and run the operation in [`crate::bulk`] or on a memory.
//!
//! Helpers never unwind or longjmp: a failure is returned as a non-zero status, and the
//! generated code raises the trap itself.

use super::StoreOpaque;
use crate::instance::Instance;
use crate::vmcontext::{VMBuiltinFunctions, VMFuncRef, VMStoreContext};

/// The one table of builtins every instance points to.
pub static BUILTINS: VMBuiltinFunctions = VMBuiltinFunctions {
    memory_grow,
    memory_copy,
    memory_fill,
    memory_init,
    data_drop,
    table_grow,
    table_fill,
    table_copy,
    table_init,
    elem_drop,
    signature_check,
    table_get_lazy,
    func_ref_lazy,
};

/// The instance whose vmctx generated code passed.
///
/// # Safety
/// `vmctx` must be the vmctx of a live instance (generated code passes its own).
unsafe fn caller<'a>(vmctx: *mut u8) -> &'a Instance {
    // SAFETY: the caller's promise.
    unsafe { Instance::from_vmctx(vmctx) }
}

fn status(result: Result<(), kiln_artifact::TrapCode>) -> u32 {
    u32::from(result.is_err())
}

/// `Builtin::MemoryGrow`: the old size in pages, or `u64::MAX`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn memory_grow(vmctx: *mut u8, memory_index: u32, delta: u64) -> u64 {
    // SAFETY: generated code passes its own live vmctx.
    let instance = unsafe { caller(vmctx) };
    let Some(&memory) = instance.memory_ptrs.get(memory_index as usize) else {
        return u64::MAX;
    };
    // SAFETY: memories are boxed in the store, which outlives every call into its
    // instances; wasm is running, so no host reference to the memory is alive.
    let memory = unsafe { &mut *memory };
    memory.grow(delta).unwrap_or(u64::MAX)
}

/// `Builtin::MemoryCopy`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn memory_copy(
    vmctx: *mut u8,
    dst_mem: u32,
    dst: u64,
    src_mem: u32,
    src: u64,
    len: u64,
) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    status(unsafe { caller(vmctx) }.memory_copy(dst_mem, dst, src_mem, src, len))
}

/// `Builtin::MemoryFill`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn memory_fill(vmctx: *mut u8, mem: u32, dst: u64, byte: u32, len: u64) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    status(unsafe { caller(vmctx) }.memory_fill(mem, dst, byte as u8, len))
}

/// `Builtin::MemoryInit`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn memory_init(
    vmctx: *mut u8,
    mem: u32,
    data: u32,
    dst: u64,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    status(unsafe { caller(vmctx) }.memory_init(mem, data, dst, src, len))
}

/// `Builtin::DataDrop`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn data_drop(vmctx: *mut u8, data: u32) {
    // SAFETY: generated code passes its own live vmctx.
    unsafe { caller(vmctx) }.data_drop(data);
}

/// `Builtin::TableGrow`: the old size, or `u32::MAX`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn table_grow(vmctx: *mut u8, table: u32, delta: u32, init: u64) -> u32 {
    // SAFETY: generated code passes its own live vmctx and an `init` of the table's
    // reference type (validated wasm has no other reference values).
    unsafe { caller(vmctx).table_grow(table, delta, init) }
}

/// `Builtin::TableFill`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn table_fill(vmctx: *mut u8, table: u32, dst: u32, value: u64, len: u32) -> u32 {
    // SAFETY: as for `table_grow`.
    status(unsafe { caller(vmctx).table_fill(table, dst, value, len) })
}

/// `Builtin::TableCopy`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn table_copy(
    vmctx: *mut u8,
    dst_table: u32,
    src_table: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    status(unsafe { caller(vmctx) }.table_copy(dst_table, src_table, dst, src, len))
}

/// `Builtin::TableInit`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn table_init(
    vmctx: *mut u8,
    table: u32,
    elem: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    status(unsafe { caller(vmctx) }.table_init(table, elem, dst, src, len))
}

/// `Builtin::ElemDrop`.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn elem_drop(vmctx: *mut u8, elem: u32) {
    // SAFETY: generated code passes its own live vmctx.
    unsafe { caller(vmctx) }.elem_drop(elem);
}

/// `Builtin::SignatureCheck`: 0 if `func_ref` names a function of this store whose type is
/// exactly the caller's type `type_index`, 1 otherwise.
///
/// # Safety
/// Called only by generated code with its own, live vmctx and a non-null `func_ref` loaded
/// from one of its tables, while the store's entry into wasm is live.
unsafe extern "C" fn signature_check(
    vmctx: *mut u8,
    type_index: u32,
    func_ref: *const VMFuncRef,
) -> u32 {
    // SAFETY: generated code passes its own live vmctx.
    let instance = unsafe { caller(vmctx) };
    let Some(expected) = instance
        .info()
        .types
        .get(kiln_artifact::TypeIndex(type_index))
    else {
        return 1;
    };
    // SAFETY: the vmctx's store-context field points to the store's boxed context, whose
    // `opaque` the entry into wasm that is running this code set to the live `StoreOpaque`;
    // wasm only reads the store through it while it runs.
    let store = unsafe {
        let ctx = vmctx
            .add(instance.offsets.store_context() as usize)
            .cast::<*const VMStoreContext>()
            .read();
        &*(*ctx).opaque.cast::<StoreOpaque>()
    };
    match store.func_type_of_ref(func_ref) {
        Some(actual) if expected.matches(actual) => 0,
        _ => 1,
    }
}

/// `Builtin::TableGetLazy`: element `index` of `table`, which the caller found unwritten.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn table_get_lazy(vmctx: *mut u8, table: u32, index: u32) -> *const VMFuncRef {
    // SAFETY: generated code passes its own live vmctx.
    unsafe { caller(vmctx) }.table_get_lazy(table, index)
}

/// `Builtin::FuncRefLazy`: the func ref slot of `func` (an index in the function index
/// space, of a defined function: the compiler emits the call only for those), which the
/// caller found unwritten.
///
/// # Safety
/// Called only by generated code with its own, live vmctx.
unsafe extern "C" fn func_ref_lazy(vmctx: *mut u8, func: u32) -> *const VMFuncRef {
    // SAFETY: generated code passes its own live vmctx.
    unsafe { caller(vmctx) }.filled_func_ref(kiln_artifact::FuncIndex(func))
}
