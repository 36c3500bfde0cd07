//! Instances: the allocated `VMContext` of one instantiation and the runtime's view of it.

use std::alloc::Layout;
use std::cell::Cell;
use std::sync::Arc;

use kiln_artifact::vmoffsets::VMCTX_MAGIC;
use kiln_artifact::{ArchivedModuleInfo, DefinedFuncIndex, FuncIndex, VMHeaderOffsets, VMOffsets};

use crate::ids::{FuncId, GlobalId, InstanceId, MemoryId, TableId};
use crate::loader::LoadedModule;
use crate::memory::Memory;
use crate::table::Table;
use crate::vmcontext::VMFuncRef;

/// The 16-aligned allocation holding a `VMContext`: zeroed, but for the func refs of
/// defined functions, which are written before anything reads them
/// ([`Instance::filled_func_ref`]). A module with 20,000 functions has 480 KB of them:
/// zeroing those cost more than the rest of an instantiation.
#[derive(Debug)]
pub struct VMContextAlloc {
    ptr: *mut u8,
    layout: Layout,
}

impl VMContextAlloc {
    /// Allocates `size` bytes, all zero except those in `unwritten` (clamped to the size),
    /// which are left as the allocator gives them.
    pub fn new(size: u32, unwritten: std::ops::Range<u32>) -> VMContextAlloc {
        let layout = Layout::from_size_align((size as usize).max(16), 16)
            .expect("vmctx size fits in a layout");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let len = layout.size();
        let end = (unwritten.end as usize).min(len);
        let start = (unwritten.start as usize).min(end);
        // SAFETY: `[0, start)` and `[end, len)` lie inside the allocation just made.
        unsafe {
            ptr.write_bytes(0, start);
            ptr.add(end).write_bytes(0, len - end);
        }
        // Debug builds (the tests) poison the unwritten bytes, so that a path reading a slot
        // that was never filled fails loudly instead of finding fresh zeroed pages.
        #[cfg(debug_assertions)]
        // SAFETY: `[start, end)` lies inside the allocation too.
        unsafe {
            ptr.add(start).write_bytes(0xA5, end - start);
        }
        VMContextAlloc { ptr, layout }
    }

    /// The `VMContext` pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// A pointer to the field at `offset`.
    pub fn field<T>(&self, offset: u32) -> *mut T {
        assert!(
            offset as usize + size_of::<T>() <= self.layout.size(),
            "vmctx field out of bounds"
        );
        self.ptr.wrapping_add(offset as usize).cast()
    }
}

impl Drop for VMContextAlloc {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// One instance. Boxed by the store so that the vmctx can point back to it.
#[derive(Debug)]
pub struct Instance {
    /// This instance's id in its store.
    pub id: InstanceId,
    /// The module it instantiates.
    pub module: Arc<LoadedModule>,
    /// Its vmctx layout.
    pub offsets: VMOffsets,
    /// Its vmctx.
    pub vmctx: VMContextAlloc,
    /// The functions it imports, in import order (its defined functions need no list: their
    /// ids are this instance and their index, [`Instance::func`]).
    pub imported_funcs: Vec<FuncId>,
    /// Every table of its index space.
    pub tables: Vec<TableId>,
    /// Every memory of its index space.
    pub memories: Vec<MemoryId>,
    /// The memories again, as pointers for the `memory.grow` builtin (boxed in the store).
    pub memory_ptrs: Vec<*mut Memory>,
    /// Every global of its index space.
    pub globals: Vec<GlobalId>,
    /// The tables again, as pointers for the table builtins (boxed in the store).
    pub table_ptrs: Vec<*mut Table>,
    /// Which data segments were dropped (`data.drop`, or active after instantiation).
    pub dropped_data: Vec<Cell<bool>>,
    /// Which element segments were dropped (`elem.drop`, or active/declared after
    /// instantiation).
    pub dropped_elems: Vec<Cell<bool>>,
}

impl Instance {
    /// The module's metadata.
    pub fn info(&self) -> &ArchivedModuleInfo {
        self.module.info()
    }

    /// The function at `index` of its index space: an import, or one of its own.
    pub fn func(&self, index: FuncIndex) -> FuncId {
        let imported = self.info().num_imported_funcs.to_native();
        if index.0 < imported {
            self.imported_funcs[index.0 as usize]
        } else {
            FuncId::wasm(self.id, DefinedFuncIndex(index.0 - imported))
        }
    }

    /// The func ref slot of function `index` (in range), written first if it was not.
    ///
    /// Instantiation writes no func ref of a defined function. A slot is written, and its
    /// bit in the vmctx's filled set (`VMOffsets::func_ref_filled_word`) set, the first time
    /// a pointer to it is made, and every way to make one comes here: `ref.func` in code
    /// while the bit is clear (`Builtin::FuncRefLazy`; the bit test is inline), a table
    /// element when first read (`crate::table`), a global's initial value, and the host
    /// (`StoreOpaque::wasm_func_ref`, through which a function reaches a table, a global,
    /// another instance or a call). So instantiation does nothing per function, export or
    /// element, after any kind of load: nothing in the metadata says which slots code uses.
    pub fn filled_func_ref(&self, index: FuncIndex) -> *mut VMFuncRef {
        let slot = self
            .vmctx
            .field::<VMFuncRef>(self.offsets.func_ref(index.0));
        let info = self.info();
        let Some(defined) = index.0.checked_sub(info.num_imported_funcs.to_native()) else {
            // Imported: written when the import was linked.
            return slot;
        };
        let word = self
            .vmctx
            .field::<u64>(self.offsets.func_ref_filled_word(defined));
        let bit = 1u64 << (defined % 64);
        // SAFETY: the word lies in this live vmctx (bounds-checked by `field`), 8-aligned
        // by the layout. Slots are filled only while the store is held mutably (see the
        // `Sync` impl of `Store`), so no other thread touches this vmctx now; generated
        // code only reads this word.
        let filled = unsafe { word.read() } & bit != 0;
        if !filled {
            let body = info.compiled[DefinedFuncIndex(defined)]
                .body
                .start
                .to_native();
            let func_ref = VMFuncRef {
                wasm_call: self.module.code_base().wrapping_add(body as usize),
                vmctx: self.vmctx.as_ptr(),
                type_id: info.functions[index].signature.native().0,
            };
            // SAFETY: the slot and the word lie in this live vmctx (bounds-checked by
            // `field`). Wasm may be running (a builtin or a host function it called may get
            // here), but nothing reads this slot yet: no pointer to it was ever handed out,
            // since every way to make one comes through here.
            unsafe {
                slot.write(func_ref);
                word.write(word.read() | bit);
            }
        }
        slot
    }

    /// Checks the magic and returns the instance that owns `vmctx`.
    ///
    /// # Safety
    /// `vmctx` must be the vmctx of a live instance.
    pub unsafe fn from_vmctx<'a>(vmctx: *mut u8) -> &'a Instance {
        // Called on every builtin and host call: the header's offsets are constants.
        const HEADER: VMHeaderOffsets = VMHeaderOffsets::new(size_of::<usize>() as u8);
        let header = HEADER;
        // SAFETY: the caller guarantees `vmctx` is a live instance context, whose field at
        // `instance()` holds the pointer to its boxed `Instance`, and whose magic sits at
        // `magic()`.
        unsafe {
            let magic = vmctx.add(header.magic() as usize).cast::<u32>().read();
            debug_assert_eq!(magic, VMCTX_MAGIC);
            &*vmctx
                .add(header.instance() as usize)
                .cast::<*const Instance>()
                .read()
        }
    }
}
