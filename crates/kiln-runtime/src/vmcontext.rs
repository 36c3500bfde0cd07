//! The structures that generated code reads and writes directly. Their layout is a contract
//! with the compiler, fixed by `kiln_artifact::vmoffsets`; the `const` assertions below keep
//! the Rust definitions in step with those offsets.

use kiln_artifact::vmoffsets::{
    func_ref, function_import, host_func_context, memory_definition, store_context,
    table_definition,
};
use std::mem::offset_of;

/// One 16-byte slot of the value arrays that trampolines pass: little-endian, i32/f32 in the
/// low 4 bytes, i64/f64/references in the low 8, v128 in all 16.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct ValRaw {
    bits: [u8; 16],
}

impl std::fmt::Debug for ValRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValRaw({:#034x})", self.get_u128())
    }
}

impl ValRaw {
    /// A slot holding `v` in its low 4 bytes.
    pub fn from_u32(v: u32) -> Self {
        Self::from_u128(u128::from(v))
    }
    /// A slot holding `v` in its low 8 bytes.
    pub fn from_u64(v: u64) -> Self {
        Self::from_u128(u128::from(v))
    }
    /// A slot holding all 16 bytes.
    pub fn from_u128(v: u128) -> Self {
        ValRaw {
            bits: v.to_le_bytes(),
        }
    }
    /// The low 4 bytes.
    pub fn get_u32(&self) -> u32 {
        self.get_u128() as u32
    }
    /// The low 8 bytes.
    pub fn get_u64(&self) -> u64 {
        self.get_u128() as u64
    }
    /// All 16 bytes.
    pub fn get_u128(&self) -> u128 {
        u128::from_le_bytes(self.bits)
    }
}

/// `VMStoreContext`: per-store state that generated code reads (the stack limit) followed by
/// fields private to the runtime.
#[repr(C)]
#[derive(Debug)]
pub struct VMStoreContext {
    /// Lowest stack address wasm may use; 0 when no wasm runs.
    pub stack_limit: usize,
    /// The epoch at which interruptible code traps.
    pub epoch_deadline: u64,
    /// The engine's epoch counter (a never-moving zero until the store gets one).
    pub epoch_counter: *const std::sync::atomic::AtomicU64,
    /// The generic `Store<D>` that owns this context, set on every entry into wasm.
    pub store: *mut (),
    /// The code ranges of the store's modules, read by the signal handler.
    pub code_ranges: *const Vec<(usize, usize)>,
    /// The store's type-independent part (`StoreOpaque`), set on every entry into wasm, for
    /// builtins that look up the store's functions.
    pub opaque: *const (),
}

const _: () = {
    assert!(offset_of!(VMStoreContext, stack_limit) == store_context::STACK_LIMIT as usize);
    assert!(offset_of!(VMStoreContext, epoch_deadline) == store_context::EPOCH_DEADLINE as usize);
    assert!(offset_of!(VMStoreContext, epoch_counter) == store_context::EPOCH_COUNTER as usize);
};

/// `VMMemoryDefinition`: base and current length of a linear memory.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// Base address.
    pub base: *mut u8,
    /// Current length in bytes.
    pub current_length: usize,
}

const _: () = {
    assert!(offset_of!(VMMemoryDefinition, base) == memory_definition::BASE as usize);
    assert!(
        offset_of!(VMMemoryDefinition, current_length)
            == memory_definition::CURRENT_LENGTH as usize
    );
    assert!(size_of::<VMMemoryDefinition>() == memory_definition::SIZE as usize);
};

/// `VMTableDefinition`: elements and current size of a table.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    /// The elements.
    pub base: *mut *const VMFuncRef,
    /// Current number of elements.
    pub current_elements: u32,
}

const _: () = {
    assert!(offset_of!(VMTableDefinition, base) == table_definition::BASE as usize);
    assert!(
        offset_of!(VMTableDefinition, current_elements)
            == table_definition::CURRENT_ELEMENTS as usize
    );
    assert!(size_of::<VMTableDefinition>() == table_definition::SIZE as usize);
};

/// `VMFunctionImport`: how an instance calls one of its imported functions.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFunctionImport {
    /// Code to call with the wasm calling convention.
    pub wasm_call: *const u8,
    /// The callee's vmctx (a `VMContext` or a `VMHostFuncContext`).
    pub vmctx: *mut u8,
}

const _: () = {
    assert!(offset_of!(VMFunctionImport, wasm_call) == function_import::WASM_CALL as usize);
    assert!(offset_of!(VMFunctionImport, vmctx) == function_import::VMCTX as usize);
    assert!(size_of::<VMFunctionImport>() == function_import::SIZE as usize);
};

/// `VMFuncRef`: what `funcref` values and table elements point to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFuncRef {
    /// Code to call with the wasm calling convention.
    pub wasm_call: *const u8,
    /// The callee's vmctx.
    pub vmctx: *mut u8,
    /// The callee's `SignatureId`.
    pub type_id: u64,
}

impl VMFuncRef {
    /// A slot not yet filled: nothing calls through it.
    pub const EMPTY: VMFuncRef = VMFuncRef {
        wasm_call: std::ptr::null(),
        vmctx: std::ptr::null_mut(),
        type_id: 0,
    };
}

const _: () = {
    assert!(offset_of!(VMFuncRef, wasm_call) == func_ref::WASM_CALL as usize);
    assert!(offset_of!(VMFuncRef, vmctx) == func_ref::VMCTX as usize);
    assert!(offset_of!(VMFuncRef, type_id) == func_ref::TYPE_ID as usize);
    assert!(size_of::<VMFuncRef>() == func_ref::SIZE as usize);
};

/// The host entry point stored in a `VMHostFuncContext`.
pub type VMArrayCallFn = unsafe extern "C" fn(
    host_vmctx: *mut u8,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
);

/// `VMHostFuncContext`: the vmctx of a host function. Generated code reads only
/// `array_call`; the rest belongs to the runtime.
#[repr(C)]
pub struct VMHostFuncContext {
    /// Called by the wasm-to-array trampoline.
    pub array_call: VMArrayCallFn,
    /// `HOST_FUNC_MAGIC`.
    pub magic: u32,
    /// The host closure and its signature.
    pub func: HostFuncData,
}

/// The runtime-private part of a `VMHostFuncContext`.
pub struct HostFuncData {
    /// The function's signature.
    pub ty: std::sync::Arc<kiln_artifact::FuncType>,
    /// A `HostFn<D>` (`crate::store::host_func`) for the store's `D`.
    pub callee: Box<dyn std::any::Any + Send + Sync>,
}

const _: () = {
    assert!(offset_of!(VMHostFuncContext, array_call) == host_func_context::ARRAY_CALL as usize);
    assert!(offset_of!(VMHostFuncContext, magic) == host_func_context::MAGIC as usize);
};

/// `VMGlobalDefinition`: one 16-byte global slot.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct VMGlobalDefinition {
    /// The value's bytes, laid out like a [`ValRaw`].
    pub bytes: [u8; 16],
}

const _: () =
    assert!(size_of::<VMGlobalDefinition>() == kiln_artifact::vmoffsets::VMGLOBAL_SIZE as usize);

/// `VMBuiltinFunctions`: runtime helpers that generated code calls, indexed by
/// `kiln_artifact::Builtin` (signatures documented there).
#[repr(C)]
pub struct VMBuiltinFunctions {
    /// `Builtin::MemoryGrow`.
    pub memory_grow: unsafe extern "C" fn(*mut u8, u32, u64) -> u64,
    /// `Builtin::MemoryCopy`.
    pub memory_copy: unsafe extern "C" fn(*mut u8, u32, u64, u32, u64, u64) -> u32,
    /// `Builtin::MemoryFill`.
    pub memory_fill: unsafe extern "C" fn(*mut u8, u32, u64, u32, u64) -> u32,
    /// `Builtin::MemoryInit`.
    pub memory_init: unsafe extern "C" fn(*mut u8, u32, u32, u64, u32, u32) -> u32,
    /// `Builtin::DataDrop`.
    pub data_drop: unsafe extern "C" fn(*mut u8, u32),
    /// `Builtin::TableGrow`.
    pub table_grow: unsafe extern "C" fn(*mut u8, u32, u32, u64) -> u32,
    /// `Builtin::TableFill`.
    pub table_fill: unsafe extern "C" fn(*mut u8, u32, u32, u64, u32) -> u32,
    /// `Builtin::TableCopy`.
    pub table_copy: unsafe extern "C" fn(*mut u8, u32, u32, u32, u32, u32) -> u32,
    /// `Builtin::TableInit`.
    pub table_init: unsafe extern "C" fn(*mut u8, u32, u32, u32, u32, u32) -> u32,
    /// `Builtin::ElemDrop`.
    pub elem_drop: unsafe extern "C" fn(*mut u8, u32),
    /// `Builtin::SignatureCheck`.
    pub signature_check: unsafe extern "C" fn(*mut u8, u32, *const VMFuncRef) -> u32,
    /// `Builtin::TableGetLazy`.
    pub table_get_lazy: unsafe extern "C" fn(*mut u8, u32, u32) -> *const VMFuncRef,
    /// `Builtin::FuncRefLazy`.
    pub func_ref_lazy: unsafe extern "C" fn(*mut u8, u32) -> *const VMFuncRef,
}

const _: () = {
    use kiln_artifact::Builtin;
    let p = size_of::<usize>() as u8;
    assert!(offset_of!(VMBuiltinFunctions, memory_grow) == Builtin::MemoryGrow.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, memory_copy) == Builtin::MemoryCopy.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, memory_fill) == Builtin::MemoryFill.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, memory_init) == Builtin::MemoryInit.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, data_drop) == Builtin::DataDrop.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, table_grow) == Builtin::TableGrow.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, table_fill) == Builtin::TableFill.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, table_copy) == Builtin::TableCopy.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, table_init) == Builtin::TableInit.offset(p) as usize);
    assert!(offset_of!(VMBuiltinFunctions, elem_drop) == Builtin::ElemDrop.offset(p) as usize);
    assert!(
        offset_of!(VMBuiltinFunctions, signature_check)
            == Builtin::SignatureCheck.offset(p) as usize
    );
    assert!(
        offset_of!(VMBuiltinFunctions, table_get_lazy) == Builtin::TableGetLazy.offset(p) as usize
    );
    assert!(
        offset_of!(VMBuiltinFunctions, func_ref_lazy) == Builtin::FuncRefLazy.offset(p) as usize
    );
    assert!(size_of::<VMBuiltinFunctions>() == Builtin::COUNT as usize * size_of::<usize>());
};
