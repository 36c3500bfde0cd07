//! The one definition of the instance context (`vmctx`) layout.
//!
//! Generated code reads and writes the instance context at offsets computed here, and the
//! runtime lays out the memory it allocates with the same numbers; nothing else may hard-code
//! an offset. The layout depends only on the pointer size and on the counts of a module's
//! entities, so computing it costs O(1).
//!
//! ```text
//! VMContext (pointer size P = 8 on every supported target):
//!   0           *mut VMStoreContext        (per store: stack limit, ...)
//!   P           *const VMBuiltinFunctions  (runtime helpers such as memory.grow)
//!   2P          *mut Instance              (opaque to generated code)
//!   3P          magic u32 + padding
//!   imported functions   [VMFunctionImport { wasm_call, vmctx }]      2P each
//!   imported tables      [*mut VMTableDefinition]                     P each
//!   imported memories    [*mut VMMemoryDefinition]                    P each
//!   imported globals     [*mut VMGlobalDefinition]                    P each
//!   defined tables       [VMTableDefinition { base, current_elements }]  2P each
//!   defined memories     [VMMemoryDefinition { base, current_length }]   2P each
//!   defined globals      [VMGlobalDefinition] (16 bytes, 16-aligned)
//!   func refs filled     [u64], one bit per defined function (bit d % 64 of word d / 64)
//!   func refs            [VMFuncRef { wasm_call, vmctx, type_id }]   2P + 8 each, one per function
//! ```

/// Value at `VMCTX_MAGIC_OFFSET` of every instance context: "KILN" in ASCII.
pub const VMCTX_MAGIC: u32 = u32::from_le_bytes(*b"KILN");

/// Size of one `ValRaw` slot in the arrays that trampolines use to pass values.
pub const VAL_RAW_SIZE: u32 = 16;

/// Size of a `VMGlobalDefinition`.
pub const VMGLOBAL_SIZE: u32 = 16;

/// Offsets inside `VMStoreContext`.
pub mod store_context {
    /// `usize`: the lowest stack address wasm code may use; the prologue traps below it.
    pub const STACK_LIMIT: u32 = 0;
    /// `u64`: the epoch at which code compiled with epoch interruption traps.
    pub const EPOCH_DEADLINE: u32 = 8;
    /// `*const AtomicU64`: the engine's current epoch.
    pub const EPOCH_COUNTER: u32 = 16;
}

/// Offsets inside `VMMemoryDefinition`.
pub mod memory_definition {
    /// `*mut u8`: base of the linear memory.
    pub const BASE: u32 = 0;
    /// `usize`: current length in bytes.
    pub const CURRENT_LENGTH: u32 = 8;
    /// Size of the definition.
    pub const SIZE: u32 = 16;
}

/// Offsets inside `VMTableDefinition`.
pub mod table_definition {
    /// `*mut *const VMFuncRef`: the table's elements (null pointer = null reference).
    pub const BASE: u32 = 0;
    /// `u32`: current number of elements.
    pub const CURRENT_ELEMENTS: u32 = 8;
    /// Size of the definition.
    pub const SIZE: u32 = 16;
}

/// Offsets inside `VMFunctionImport`.
pub mod function_import {
    /// `*const u8`: code to call with the wasm calling convention.
    pub const WASM_CALL: u32 = 0;
    /// `*mut VMContext` (or `*mut VMHostFuncContext`) to pass as the callee's vmctx.
    pub const VMCTX: u32 = 8;
    /// Size of the import record.
    pub const SIZE: u32 = 16;
}

/// Offsets inside `VMFuncRef`, what `funcref` values and table elements point to.
pub mod func_ref {
    /// `*const u8`: code to call with the wasm calling convention.
    pub const WASM_CALL: u32 = 0;
    /// `*mut VMContext` to pass as the callee's vmctx.
    pub const VMCTX: u32 = 8;
    /// `u64`: the callee's `SignatureId`.
    pub const TYPE_ID: u32 = 16;
    /// Size of a func ref.
    pub const SIZE: u32 = 24;
}

/// Offsets inside `VMHostFuncContext`, the vmctx of a host function.
pub mod host_func_context {
    /// `unsafe extern "C" fn(host_vmctx, caller_vmctx, values: *mut ValRaw, len: usize)`.
    pub const ARRAY_CALL: u32 = 0;
    /// `u32`: `VMCTX_MAGIC` of host contexts, "HOST".
    pub const MAGIC: u32 = 8;
}

/// Value at `host_func_context::MAGIC`.
pub const HOST_FUNC_MAGIC: u32 = u32::from_le_bytes(*b"HOST");

/// Index of each runtime helper in `VMBuiltinFunctions`, an array of function pointers.
///
/// Every helper uses the target's default C calling convention and takes the caller's vmctx
/// first. Helpers that can fail return a `u32` status, non-zero meaning "trap": generated
/// code raises the trap itself (`trapnz`), so every trap keeps a trap record at a wasm
/// offset and no host frame is ever unwound by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Builtin {
    /// `fn(vmctx, memory_index: u32, delta_pages: u64) -> u64`: the old size in pages, or
    /// `u64::MAX` if the memory cannot grow.
    MemoryGrow = 0,
    /// `fn(vmctx, dst_memory: u32, dst: u64, src_memory: u32, src: u64, len: u64) -> u32`.
    MemoryCopy,
    /// `fn(vmctx, memory: u32, dst: u64, byte: u32, len: u64) -> u32`.
    MemoryFill,
    /// `fn(vmctx, memory: u32, data: u32, dst: u64, src: u32, len: u32) -> u32`.
    MemoryInit,
    /// `fn(vmctx, data: u32)`.
    DataDrop,
    /// `fn(vmctx, table: u32, delta: u32, init: u64) -> u32`: the old size, or `u32::MAX`.
    TableGrow,
    /// `fn(vmctx, table: u32, dst: u32, value: u64, len: u32) -> u32`.
    TableFill,
    /// `fn(vmctx, dst_table: u32, src_table: u32, dst: u32, src: u32, len: u32) -> u32`.
    TableCopy,
    /// `fn(vmctx, table: u32, elem: u32, dst: u32, src: u32, len: u32) -> u32`.
    TableInit,
    /// `fn(vmctx, elem: u32)`.
    ElemDrop,
    /// `fn(vmctx, type_index: u32, func_ref: *const VMFuncRef) -> u32`: 0 if the function
    /// has exactly the caller's type `type_index`. `call_indirect` calls it after the
    /// signature ids matched when the id is a hash (a long signature), so ids never have to
    /// be trusted to be unique.
    SignatureCheck,
    /// `fn(vmctx, table: u32, index: u32) -> *const VMFuncRef`: element `index` (in
    /// bounds) of a `funcref` table whose word is 0, not written since instantiation: the
    /// value its segments gave it, which the runtime writes back (tagged) for the next read.
    TableGetLazy,
    /// `fn(vmctx, func: u32) -> *const VMFuncRef`: the func ref of `func` (an index in the
    /// function index space, of a defined function), whose bit in the filled set was clear: written now (and the bit set), so that
    /// `ref.func` hands out only slots that hold a func ref.
    FuncRefLazy,
}

impl Builtin {
    /// Number of builtins.
    pub const COUNT: u32 = 13;

    /// Offset of this builtin's pointer in `VMBuiltinFunctions`.
    pub const fn offset(self, pointer_size: u8) -> u32 {
        self as u32 * pointer_size as u32
    }
}

/// Entity counts that determine a `VMContext` layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VMCounts {
    /// Imported functions.
    pub imported_funcs: u32,
    /// Imported tables.
    pub imported_tables: u32,
    /// Imported memories.
    pub imported_memories: u32,
    /// Imported globals.
    pub imported_globals: u32,
    /// Defined tables.
    pub defined_tables: u32,
    /// Defined memories.
    pub defined_memories: u32,
    /// Defined globals.
    pub defined_globals: u32,
    /// All functions (imported and defined).
    pub funcs: u32,
}

/// The layout of one module's `VMContext`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VMOffsets {
    /// Pointer size in bytes.
    pub pointer_size: u8,
    /// The counts this layout was made for.
    pub counts: VMCounts,
    imported_funcs: u32,
    imported_tables: u32,
    imported_memories: u32,
    imported_globals: u32,
    defined_tables: u32,
    defined_memories: u32,
    defined_globals: u32,
    func_refs_filled: u32,
    func_refs: u32,
    size: u32,
}

/// The fields at the start of every instance context. Their offsets depend only on the
/// pointer size, so the runtime, which reads them on every call from generated code into a
/// builtin or a host function, gets them as constants instead of computing a whole layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VMHeaderOffsets {
    pointer_size: u8,
}

impl VMHeaderOffsets {
    /// The header of contexts for `pointer_size`-byte pointers.
    pub const fn new(pointer_size: u8) -> Self {
        Self { pointer_size }
    }
    /// Offset of `*mut VMStoreContext`.
    pub const fn store_context(&self) -> u32 {
        0
    }
    /// Offset of `*const VMBuiltinFunctions`.
    pub const fn builtins(&self) -> u32 {
        self.pointer_size as u32
    }
    /// Offset of the runtime's `*mut Instance`.
    pub const fn instance(&self) -> u32 {
        2 * self.pointer_size as u32
    }
    /// Offset of the `u32` magic.
    pub const fn magic(&self) -> u32 {
        3 * self.pointer_size as u32
    }
}

impl VMOffsets {
    /// The header's offsets (the same for every module).
    pub const fn header(&self) -> VMHeaderOffsets {
        VMHeaderOffsets::new(self.pointer_size)
    }
    /// Offset of `*mut VMStoreContext`.
    pub const fn store_context(&self) -> u32 {
        self.header().store_context()
    }
    /// Offset of `*const VMBuiltinFunctions`.
    pub const fn builtins(&self) -> u32 {
        self.header().builtins()
    }
    /// Offset of the runtime's `*mut Instance`.
    pub const fn instance(&self) -> u32 {
        self.header().instance()
    }
    /// Offset of the `u32` magic.
    pub const fn magic(&self) -> u32 {
        self.header().magic()
    }

    /// Computes the layout. Saturates instead of overflowing: validation rejects counts
    /// whose layout does not fit in `u32`.
    pub fn new(pointer_size: u8, counts: VMCounts) -> Self {
        let p = u64::from(pointer_size);
        let mut at = 4 * p;
        let mut take = |count: u32, each: u64, align: u64| {
            at = at.div_ceil(align) * align;
            let start = at;
            at += u64::from(count) * each;
            start
        };
        let imported_funcs = take(counts.imported_funcs, 2 * p, p);
        let imported_tables = take(counts.imported_tables, p, p);
        let imported_memories = take(counts.imported_memories, p, p);
        let imported_globals = take(counts.imported_globals, p, p);
        let defined_tables = take(counts.defined_tables, 16, p);
        let defined_memories = take(counts.defined_memories, 16, p);
        let defined_globals = take(counts.defined_globals, u64::from(VMGLOBAL_SIZE), 16);
        let defined_funcs = counts.funcs.saturating_sub(counts.imported_funcs);
        let func_refs_filled = take(defined_funcs.div_ceil(64), 8, 8);
        let func_refs = take(counts.funcs, u64::from(func_ref::SIZE), p);
        let size = take(0, 0, 16);
        let c = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        Self {
            pointer_size,
            counts,
            imported_funcs: c(imported_funcs),
            imported_tables: c(imported_tables),
            imported_memories: c(imported_memories),
            imported_globals: c(imported_globals),
            defined_tables: c(defined_tables),
            defined_memories: c(defined_memories),
            defined_globals: c(defined_globals),
            func_refs_filled: c(func_refs_filled),
            func_refs: c(func_refs),
            size: c(size),
        }
    }

    /// Whether every offset fits in `u32`.
    pub fn fits(&self) -> bool {
        self.size != u32::MAX
    }

    /// Total size of the `VMContext` in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Offset of `VMFunctionImport` number `i` (an imported function's index).
    pub fn imported_function(&self, i: u32) -> u32 {
        self.imported_funcs + i * function_import::SIZE
    }
    /// Offset of the `*mut VMTableDefinition` of imported table `i`.
    pub fn imported_table(&self, i: u32) -> u32 {
        self.imported_tables + i * self.pointer_size as u32
    }
    /// Offset of the `*mut VMMemoryDefinition` of imported memory `i`.
    pub fn imported_memory(&self, i: u32) -> u32 {
        self.imported_memories + i * self.pointer_size as u32
    }
    /// Offset of the `*mut VMGlobalDefinition` of imported global `i`.
    pub fn imported_global(&self, i: u32) -> u32 {
        self.imported_globals + i * self.pointer_size as u32
    }
    /// Offset of the `VMTableDefinition` of defined table `i`.
    pub fn defined_table(&self, i: u32) -> u32 {
        self.defined_tables + i * table_definition::SIZE
    }
    /// Offset of the `VMMemoryDefinition` of defined memory `i`.
    pub fn defined_memory(&self, i: u32) -> u32 {
        self.defined_memories + i * memory_definition::SIZE
    }
    /// Offset of the `VMGlobalDefinition` of defined global `i`.
    pub fn defined_global(&self, i: u32) -> u32 {
        self.defined_globals + i * VMGLOBAL_SIZE
    }
    /// Offset of the `u64` that holds defined function `defined`'s bit (bit `defined % 64`)
    /// in the set of func ref slots written since instantiation. The set starts empty
    /// (the vmctx is zeroed but for the slots); a slot is written, and its bit set, before
    /// a pointer to it is first handed out.
    pub fn func_ref_filled_word(&self, defined: u32) -> u32 {
        self.func_refs_filled + defined / 64 * 8
    }
    /// Offset of the `VMFuncRef` of function `i` (any function index).
    pub fn func_ref(&self, i: u32) -> u32 {
        self.func_refs + i * func_ref::SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap_and_are_aligned() {
        let counts = VMCounts {
            imported_funcs: 3,
            imported_tables: 1,
            imported_memories: 1,
            imported_globals: 2,
            defined_tables: 2,
            defined_memories: 1,
            defined_globals: 3,
            funcs: 10,
        };
        let o = VMOffsets::new(8, counts);
        assert_eq!(o.imported_function(0), 32);
        assert!(o.imported_function(3) <= o.imported_table(0));
        assert!(o.imported_table(1) <= o.imported_memory(0));
        assert!(o.imported_memory(1) <= o.imported_global(0));
        assert!(o.imported_global(2) <= o.defined_table(0));
        assert!(o.defined_table(2) <= o.defined_memory(0));
        assert!(o.defined_memory(1) <= o.defined_global(0));
        assert_eq!(o.defined_global(0) % 16, 0);
        assert!(o.defined_global(3) <= o.func_ref_filled_word(0));
        assert_eq!(o.func_ref_filled_word(0) % 8, 0);
        assert!(o.func_ref_filled_word(6) + 8 <= o.func_ref(0));
        assert!(o.func_ref(10) <= o.size());
        assert_eq!(o.size() % 16, 0);
        assert!(o.fits());
    }

    #[test]
    fn the_filled_set_has_a_word_per_64_defined_functions() {
        let counts = VMCounts {
            imported_funcs: 2,
            funcs: 132,
            ..VMCounts::default()
        };
        let o = VMOffsets::new(8, counts);
        assert_eq!(o.func_ref_filled_word(63), o.func_ref_filled_word(0));
        assert_eq!(o.func_ref_filled_word(64), o.func_ref_filled_word(0) + 8);
        assert_eq!(o.func_ref_filled_word(129), o.func_ref_filled_word(0) + 16);
        assert!(o.func_ref_filled_word(129) + 8 <= o.func_ref(0));
    }
}
