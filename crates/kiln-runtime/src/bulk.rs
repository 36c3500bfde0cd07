//! The operations behind bulk memory, table instructions and segment initialisation, on an
//! instance's own memories, tables and segments: `memory.copy/fill/init`, `data.drop`,
//! `table.grow/fill/copy/init`, `elem.drop`, and the evaluation of constant expressions.
//!
//! Every operation checks all of its bounds before it writes anything, as WebAssembly 2.0
//! requires, and reports a failure as the trap code to raise. Instantiation uses the same
//! `table_init`/`memory_init` for active segments, so both paths share one implementation.

use kiln_artifact::{
    ArchivedConstExpr, ArchivedElemItems, DataIndex, ElemIndex, GlobalIndex, TrapCode,
};

use crate::instance::Instance;
use crate::memory::Memory;
use crate::table::{SegmentItems, Table};
use crate::vmcontext::{VMFuncRef, VMGlobalDefinition, ValRaw};

/// `start + len` lies within `size`.
fn in_bounds(start: u64, len: u64, size: u64) -> bool {
    start.checked_add(len).is_some_and(|end| end <= size)
}

impl Instance {
    /// Base and length of memory `index` of this instance.
    fn memory_span(&self, index: u32) -> Result<(*mut u8, u64), TrapCode> {
        let memory: *mut Memory = *self
            .memory_ptrs
            .get(index as usize)
            .ok_or(TrapCode::MemoryOutOfBounds)?;
        // SAFETY: memories are boxed in the store, which outlives its instances; only
        // their base and length are read here.
        let memory = unsafe { &*memory };
        Ok((memory.base(), memory.byte_len() as u64))
    }

    /// Table `index` of this instance.
    ///
    /// # Safety
    /// No other reference to that table may be alive while the result is used: callers
    /// are the builtins (wasm is running, so the host holds no reference into the store)
    /// and instantiation (which holds the store mutably).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn table(&self, index: u32) -> Result<&mut Table, TrapCode> {
        let table: *mut Table = *self
            .table_ptrs
            .get(index as usize)
            .ok_or(TrapCode::TableOutOfBounds)?;
        // SAFETY: tables are boxed in the store and outlive its instances; exclusivity is
        // the caller's promise.
        Ok(unsafe { &mut *table })
    }

    /// `memory.copy`: `len` bytes from `src` in `src_mem` to `dst` in `dst_mem`; the ranges
    /// may overlap.
    pub fn memory_copy(
        &self,
        dst_mem: u32,
        dst: u64,
        src_mem: u32,
        src: u64,
        len: u64,
    ) -> Result<(), TrapCode> {
        let (dst_base, dst_size) = self.memory_span(dst_mem)?;
        let (src_base, src_size) = self.memory_span(src_mem)?;
        if !in_bounds(dst, len, dst_size) || !in_bounds(src, len, src_size) {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        // SAFETY: both ranges were checked against the accessible lengths; `copy` allows
        // overlap.
        unsafe {
            std::ptr::copy(
                src_base.add(src as usize),
                dst_base.add(dst as usize),
                len as usize,
            )
        };
        Ok(())
    }

    /// `memory.fill`: `len` copies of `byte` at `dst`.
    pub fn memory_fill(&self, mem: u32, dst: u64, byte: u8, len: u64) -> Result<(), TrapCode> {
        let (base, size) = self.memory_span(mem)?;
        if !in_bounds(dst, len, size) {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        // SAFETY: the range was checked against the accessible length.
        unsafe { std::ptr::write_bytes(base.add(dst as usize), byte, len as usize) };
        Ok(())
    }

    /// The bytes of data segment `data`, empty once dropped.
    fn data_bytes(&self, data: u32) -> &[u8] {
        let info = self.info();
        let dropped = self.dropped_data.get(data as usize).is_none_or(|d| d.get());
        match info.data.get(DataIndex(data)) {
            Some(seg) if !dropped => {
                let range = seg.bytes.native();
                self.module
                    .data()
                    .get(range.start as usize..)
                    .and_then(|d| d.get(..range.len as usize))
                    .unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// `memory.init`: `len` bytes of data segment `data` from `src` to `dst` in `mem`.
    pub fn memory_init(
        &self,
        mem: u32,
        data: u32,
        dst: u64,
        src: u32,
        len: u32,
    ) -> Result<(), TrapCode> {
        let bytes = self.data_bytes(data);
        let (base, size) = self.memory_span(mem)?;
        let (src, len) = (u64::from(src), u64::from(len));
        if !in_bounds(src, len, bytes.len() as u64) || !in_bounds(dst, len, size) {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        let src = &bytes[src as usize..][..len as usize];
        // SAFETY: the destination range was checked against the accessible length; the
        // segment bytes live in the module's mapping, never inside a linear memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(dst as usize), src.len()) };
        Ok(())
    }

    /// `data.drop`.
    pub fn data_drop(&self, data: u32) {
        if let Some(flag) = self.dropped_data.get(data as usize) {
            flag.set(true);
        }
    }

    /// `table.grow`: the old size, or `u32::MAX` (-1) if the table cannot grow.
    ///
    /// # Safety
    /// `init` must be a valid element of the table (`Table::new`); validated wasm only has
    /// such reference values.
    pub unsafe fn table_grow(&self, table: u32, delta: u32, init: u64) -> u32 {
        // SAFETY: called from wasm or instantiation; see `table`.
        let Ok(table) = (unsafe { self.table(table) }) else {
            return u32::MAX;
        };
        // SAFETY: `init` is a valid element (this function's contract).
        unsafe { table.grow(delta, init as usize as *const VMFuncRef) }.unwrap_or(u32::MAX)
    }

    /// `table.fill`: `len` copies of `value` from `dst`.
    ///
    /// # Safety
    /// As for [`Instance::table_grow`], for `value`.
    pub unsafe fn table_fill(
        &self,
        table: u32,
        dst: u32,
        value: u64,
        len: u32,
    ) -> Result<(), TrapCode> {
        // SAFETY: called from wasm; see `table`.
        let table = unsafe { self.table(table)? };
        // SAFETY: `value` is a valid element (this function's contract).
        let filled = unsafe { table.fill(dst, value as usize as *const VMFuncRef, len) };
        filled.then_some(()).ok_or(TrapCode::TableOutOfBounds)
    }

    /// `table.copy`: `len` elements from `src` in `src_table` to `dst` in `dst_table`; the
    /// ranges may overlap.
    pub fn table_copy(
        &self,
        dst_table: u32,
        src_table: u32,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), TrapCode> {
        let dst_ptr = self.table_ptrs.get(dst_table as usize);
        let copied = if dst_ptr.is_some() && dst_ptr == self.table_ptrs.get(src_table as usize) {
            // SAFETY: called from wasm; see `table`.
            unsafe { self.table(dst_table)? }.copy_within(dst, src, len)
        } else {
            // SAFETY: called from wasm; see `table`. The two tables are different objects
            // (their pointers differ), so the two references do not alias. Elements of the
            // source table are valid in the destination (validation matched their types).
            unsafe {
                let from = self.table(src_table)?;
                self.table(dst_table)?.copy_from(from, dst, src, len)
            }
        };
        copied.then_some(()).ok_or(TrapCode::TableOutOfBounds)
    }

    /// Element `index` of `table`, which generated code found unwritten
    /// (`Builtin::TableGetLazy`), written back so the next read takes the fast path. Null
    /// if out of bounds (code checks bounds first).
    pub fn table_get_lazy(&self, table: u32, index: u32) -> *const VMFuncRef {
        // SAFETY: called from wasm; see `table`.
        match unsafe { self.table(table) } {
            Ok(table) => table.get_and_keep(index).unwrap_or(std::ptr::null()),
            Err(_) => std::ptr::null(),
        }
    }

    /// Number of items of element segment `elem`, 0 once dropped.
    fn elem_len(&self, elem: u32) -> usize {
        let dropped = self
            .dropped_elems
            .get(elem as usize)
            .is_none_or(|d| d.get());
        match self.info().elements.get(ElemIndex(elem)) {
            Some(seg) if !dropped => segment_len(&seg.items),
            _ => 0,
        }
    }

    /// `table.init`: `len` items of element segment `elem` from `src` to `dst` in `table`.
    pub fn table_init(
        &self,
        table: u32,
        elem: u32,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), TrapCode> {
        let items = self.elem_len(elem);
        // SAFETY: called from wasm or instantiation; see `table`.
        let table = unsafe { self.table(table)? };
        if src as usize + len as usize > items
            || dst as usize + len as usize > table.size() as usize
        {
            return Err(TrapCode::TableOutOfBounds);
        }
        let values = (src..src + len).map(|item| self.segment_item(elem, item));
        // SAFETY: segment items are this instance's func refs, filled by `segment_item`, or
        // constant references whose type the checked metadata matched with the table's
        // element type.
        let written = unsafe { table.write(dst, values) };
        debug_assert!(written, "bounds checked above");
        Ok(())
    }

    /// `elem.drop`.
    pub fn elem_drop(&self, elem: u32) {
        if let Some(flag) = self.dropped_elems.get(elem as usize) {
            flag.set(true);
        }
    }

    /// The `VMFuncRef` of function `func` in this instance's vmctx, filled if it was not
    /// yet (null if out of range), for element items, global initialisers and
    /// `table.init`; [`Instance::filled_func_ref`] says which other paths fill slots.
    pub fn func_ref_ptr(&self, func: u32) -> *const VMFuncRef {
        if (func as usize) < self.info().functions.len() {
            self.filled_func_ref(kiln_artifact::FuncIndex(func))
        } else {
            std::ptr::null()
        }
    }

    /// The definition of global `global`: in this vmctx, or the imported one it points to.
    pub fn global_ptr(&self, global: GlobalIndex) -> *mut VMGlobalDefinition {
        match self.info().defined_global_index(global) {
            Some(defined) => self
                .vmctx
                .field::<VMGlobalDefinition>(self.offsets.defined_global(defined.0)),
            None => {
                let slot = self
                    .vmctx
                    .field::<*mut VMGlobalDefinition>(self.offsets.imported_global(global.0));
                // SAFETY: the slot lies in this vmctx and was written at instantiation,
                // before any constant expression reads it.
                unsafe { slot.read() }
            }
        }
    }

    /// The value of a constant expression in this instance.
    pub fn const_value(&self, e: &ArchivedConstExpr) -> ValRaw {
        match e {
            ArchivedConstExpr::I32(v) => ValRaw::from_u32(v.to_native() as u32),
            ArchivedConstExpr::I64(v) => ValRaw::from_u64(v.to_native() as u64),
            ArchivedConstExpr::F32(v) => ValRaw::from_u32(v.to_native()),
            ArchivedConstExpr::F64(v) => ValRaw::from_u64(v.to_native()),
            ArchivedConstExpr::V128(v) => ValRaw::from_u128(v.to_native()),
            ArchivedConstExpr::GlobalGet(g) => {
                let g = g.native();
                if (g.0 as usize) >= self.info().globals.len() {
                    return ValRaw::default();
                }
                let def = self.global_ptr(g);
                // SAFETY: global definitions stay valid for the store's lifetime.
                ValRaw::from_u128(u128::from_le_bytes(unsafe { (*def).bytes }))
            }
            ArchivedConstExpr::RefNull(_) => ValRaw::from_u64(0),
            ArchivedConstExpr::RefFunc(f) => {
                ValRaw::from_u64(self.func_ref_ptr(f.native().0) as u64)
            }
        }
    }
}

impl SegmentItems for Instance {
    fn segment_item(&self, elem: u32, item: u32) -> *const VMFuncRef {
        let Some(segment) = self.info().elements.get(ElemIndex(elem)) else {
            return std::ptr::null();
        };
        match &segment.items {
            ArchivedElemItems::Functions(fs) => match fs.get(item as usize) {
                Some(f) => self.func_ref_ptr(f.0.to_native()),
                None => std::ptr::null(),
            },
            ArchivedElemItems::Exprs(es) => match es.get(item as usize) {
                Some(e) => self.const_value(e).get_u64() as usize as *const VMFuncRef,
                None => std::ptr::null(),
            },
        }
    }
}

/// Number of items of an element segment.
pub(crate) fn segment_len(items: &ArchivedElemItems) -> usize {
    match items {
        ArchivedElemItems::Functions(fs) => fs.len(),
        ArchivedElemItems::Exprs(es) => es.len(),
    }
}
