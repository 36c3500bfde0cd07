//! Tables of function references (and of host references, stored the same way).

use kiln_artifact::TableType;

use crate::vmcontext::{VMFuncRef, VMTableDefinition};

/// Upper bound on table sizes, to keep a hostile `table.grow` from exhausting memory.
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// A table: a vector of `*const VMFuncRef` (null = null reference). Extern references are
/// stored in the same slots as `index + 1` (0 = null).
#[derive(Debug)]
pub struct Table {
    elements: Vec<*const VMFuncRef>,
    ty: TableType,
    /// The store's limit on its size.
    limit: u32,
    definition: *mut VMTableDefinition,
    own_definition: Option<Box<VMTableDefinition>>,
}

impl Table {
    /// Creates a table of type `ty` filled with `init`, never larger than `limit` elements
    /// (the store's limit).
    ///
    /// # Safety
    /// Elements are what wasm reads from the table: `init` must be null, or for a `funcref`
    /// table a `VMFuncRef` of the store that will own the table, for an `externref` table a
    /// raw `externref` value of that store. The same holds for every element written later.
    pub unsafe fn new(
        ty: TableType,
        init: *const VMFuncRef,
        limit: u32,
    ) -> Result<Box<Table>, String> {
        if ty.min > MAX_TABLE_ELEMENTS {
            return Err(format!("table minimum of {} elements is too large", ty.min));
        }
        if ty.min > limit {
            return Err(format!(
                "table minimum of {} elements exceeds the store's limit of {limit}",
                ty.min
            ));
        }
        let mut elements = vec![init; ty.min as usize];
        let mut own = Box::new(VMTableDefinition {
            base: elements.as_mut_ptr(),
            current_elements: ty.min,
        });
        let definition: *mut VMTableDefinition = &mut *own;
        Ok(Box::new(Table {
            elements,
            ty,
            limit,
            definition,
            own_definition: Some(own),
        }))
    }

    /// Moves the definition to `slot` (inline in the defining instance's vmctx).
    ///
    /// # Safety
    /// `slot` must be valid for writes of a `VMTableDefinition` for as long as this table
    /// lives.
    pub unsafe fn relocate_definition(&mut self, slot: *mut VMTableDefinition) {
        // SAFETY: the caller guarantees `slot` is valid for writes.
        unsafe {
            slot.write(VMTableDefinition {
                base: self.elements.as_mut_ptr(),
                current_elements: self.elements.len() as u32,
            });
        }
        self.definition = slot;
        self.own_definition = None;
    }

    fn sync(&mut self) {
        // SAFETY: `definition` is valid for writes for the table's lifetime.
        unsafe {
            (*self.definition).base = self.elements.as_mut_ptr();
            (*self.definition).current_elements = self.elements.len() as u32;
        }
    }

    /// The authoritative definition, to point imports at.
    pub fn definition(&self) -> *mut VMTableDefinition {
        self.definition
    }

    /// The table's type with its current minimum.
    pub fn ty(&self) -> TableType {
        TableType {
            min: self.size(),
            ..self.ty
        }
    }

    /// Current number of elements.
    pub fn size(&self) -> u32 {
        self.elements.len() as u32
    }

    /// The element at `index`.
    pub fn get(&self, index: u32) -> Option<*const VMFuncRef> {
        self.elements.get(index as usize).copied()
    }

    /// Replaces the element at `index`; `false` if out of bounds.
    ///
    /// # Safety
    /// `value` must be a valid element, as for [`Table::new`].
    pub unsafe fn set(&mut self, index: u32, value: *const VMFuncRef) -> bool {
        match self.elements.get_mut(index as usize) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// The elements, mutably (for bulk operations; the length cannot change through it).
    ///
    /// # Safety
    /// Only valid elements may be written through it, as for [`Table::new`].
    pub unsafe fn elements_mut(&mut self) -> &mut [*const VMFuncRef] {
        &mut self.elements
    }

    /// Grows by `delta` elements filled with `init`; returns the old size.
    ///
    /// # Safety
    /// `init` must be a valid element, as for [`Table::new`].
    pub unsafe fn grow(&mut self, delta: u32, init: *const VMFuncRef) -> Option<u32> {
        let old = self.size();
        let new = old.checked_add(delta)?;
        if new > self.ty.max.unwrap_or(u32::MAX) || new > MAX_TABLE_ELEMENTS || new > self.limit {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}
