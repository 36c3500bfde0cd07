//! Tables of references, and the encoding of their elements that lets instantiation leave
//! a table's initial contents unwritten.
//!
//! A `funcref` table holds *tagged words*: 0 means "not written since instantiation", and
//! any other word is a `*const VMFuncRef` (null included) with bit 0 ([`WRITTEN`]) set. An
//! unwritten element holds the value its defining instance's active element segments gave
//! it, computed from the segments when something first reads it ([`InitialElements`]). So a
//! zeroed vector is all a new table needs, and instantiation does nothing per element: a
//! module with thousands of function pointers (every C program's indirect-call table)
//! fills the elements its code actually calls, on the first call. Generated code reads
//! the same encoding: it clears the tag of a non-zero word, and calls
//! `Builtin::TableGetLazy` on a zero one (`kiln-compiler`'s `translate/tables.rs`).
//!
//! `externref` tables store `index + 1` (0 = null) untagged, and nothing in them is lazy.

use kiln_artifact::{RefType, TableType};

use crate::table_words::Words;
use crate::vmcontext::{VMFuncRef, VMTableDefinition};

/// Upper bound on table sizes, to keep a hostile `table.grow` from exhausting memory.
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// The tag of a written element of a `funcref` table. Func refs are pointer-aligned, so
/// bit 0 of their address is free.
pub const WRITTEN: usize = 1;

/// What an unwritten element of a table is: the item of an element segment, which the
/// instance that owns the segment resolves (filling the func ref it names if needed).
pub trait SegmentItems {
    /// Item `item` of element segment `elem` (null if out of range).
    fn segment_item(&self, elem: u32, item: u32) -> *const VMFuncRef;
}

/// An active element segment as instantiation placed it in a table: items `0..len` of
/// segment `elem` at elements `dst..dst + len` (checked to fit when placed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedSegment {
    /// The element segment.
    pub elem: u32,
    /// The first element it covers.
    pub dst: u32,
    /// How many elements it covers.
    pub len: u32,
}

/// The initial contents of a table defined by an instance: its active segments in order,
/// a later one overriding an earlier one where they overlap, null where none reaches.
#[derive(Debug)]
pub struct InitialElements {
    source: *const dyn SegmentItems,
    segments: Vec<PlacedSegment>,
}

impl InitialElements {
    /// No segments yet, resolved by `source`.
    ///
    /// # Safety
    /// `source` must stay valid for as long as the table that gets these elements, and the
    /// items it returns must be valid elements of that table (as for [`Table::new`]).
    pub unsafe fn new(source: *const dyn SegmentItems) -> InitialElements {
        InitialElements {
            source,
            segments: Vec::new(),
        }
    }

    fn value(&self, index: u32) -> *const VMFuncRef {
        let covering = self
            .segments
            .iter()
            .rev()
            .find(|s| index.wrapping_sub(s.dst) < s.len);
        match covering {
            // SAFETY: `new`'s contract keeps `source` valid while the table lives.
            Some(s) => unsafe { (*self.source).segment_item(s.elem, index - s.dst) },
            None => std::ptr::null(),
        }
    }
}

/// The word that stores `value` in a table of `element`s.
fn encode(element: RefType, value: *const VMFuncRef) -> usize {
    match element {
        RefType::FuncRef => value as usize | WRITTEN,
        RefType::ExternRef => value as usize,
    }
}

/// A table: its elements as words (see the module documentation), its type, and where its
/// `VMTableDefinition` lives.
#[derive(Debug)]
pub struct Table {
    words: Words,
    ty: TableType,
    /// The store's limit on its size.
    limit: u32,
    definition: *mut VMTableDefinition,
    own_definition: Option<Box<VMTableDefinition>>,
    /// For a table whose defining instance placed segments in it: what its unwritten
    /// elements hold.
    initial: Option<InitialElements>,
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
        // A null funcref may stay unwritten (0): with no initial elements it reads as null,
        // and a zeroed vector costs nothing per element.
        let word = if init.is_null() {
            0
        } else {
            encode(ty.element, init)
        };
        let words = Words::new(ty.min as usize, word)
            .ok_or_else(|| format!("no memory for a table of {} elements", ty.min))?;
        let mut table = Box::new(Table {
            words,
            ty,
            limit,
            definition: std::ptr::null_mut(),
            own_definition: None,
            initial: None,
        });
        let mut own = Box::new(VMTableDefinition {
            base: table.words.as_mut_ptr().cast(),
            current_elements: ty.min,
        });
        table.definition = &mut *own;
        table.own_definition = Some(own);
        Ok(table)
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
                base: self.words.as_mut_ptr().cast(),
                current_elements: self.words.len() as u32,
            });
        }
        self.definition = slot;
        self.own_definition = None;
    }

    /// Gives the table's unwritten elements their values from `initial`. Instantiation
    /// calls it on a table it has just created, before adding segments with
    /// [`Table::place_segment`].
    pub fn set_initial(&mut self, initial: InitialElements) {
        self.initial = Some(initial);
    }

    /// Places an active segment of `len` items at `dst`, as `table.init` would write it,
    /// without writing anything; `false` if it does not fit (then nothing changes).
    ///
    /// Only for a `funcref` table given [`InitialElements`] and not written since: every
    /// element the segment covers must still be unwritten.
    pub fn place_segment(&mut self, elem: u32, dst: u32, len: u32) -> bool {
        let fits = dst
            .checked_add(len)
            .is_some_and(|end| end as usize <= self.words.len());
        match &mut self.initial {
            Some(initial) if fits && self.ty.element == RefType::FuncRef => {
                debug_assert!(
                    self.words[dst as usize..][..len as usize]
                        .iter()
                        .all(|&w| w == 0)
                );
                initial.segments.push(PlacedSegment { elem, dst, len });
                true
            }
            _ => false,
        }
    }

    fn sync(&mut self) {
        // SAFETY: `definition` is valid for writes for the table's lifetime.
        unsafe {
            (*self.definition).base = self.words.as_mut_ptr().cast();
            (*self.definition).current_elements = self.words.len() as u32;
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
        self.words.len() as u32
    }

    fn tagged(&self) -> bool {
        self.ty.element == RefType::FuncRef
    }

    /// The word that stores `value`.
    fn encode(&self, value: *const VMFuncRef) -> usize {
        encode(self.ty.element, value)
    }

    /// The value of element `index`, whose word is `word`.
    fn decode(&self, index: u32, word: usize) -> *const VMFuncRef {
        if !self.tagged() {
            return word as *const VMFuncRef;
        }
        if word != 0 {
            return (word & !WRITTEN) as *const VMFuncRef;
        }
        match &self.initial {
            Some(initial) => initial.value(index),
            None => std::ptr::null(),
        }
    }

    /// The element at `index`.
    pub fn get(&self, index: u32) -> Option<*const VMFuncRef> {
        let word = *self.words.get(index as usize)?;
        Some(self.decode(index, word))
    }

    /// The element at `index`, written back if it was unwritten, so that code reading it
    /// again takes the fast path (the `TableGetLazy` builtin).
    pub fn get_and_keep(&mut self, index: u32) -> Option<*const VMFuncRef> {
        let value = self.get(index)?;
        self.words[index as usize] = self.encode(value);
        Some(value)
    }

    /// Writes back every unwritten element of `start..start + len` (in bounds), so that
    /// their words can be copied as they are.
    fn keep_range(&mut self, start: usize, len: usize) {
        if self.initial.is_none() {
            return;
        }
        for index in start..start + len {
            if self.words[index] == 0 {
                self.words[index] = self.encode(self.decode(index as u32, 0));
            }
        }
    }

    /// Replaces the element at `index`; `false` if out of bounds.
    ///
    /// # Safety
    /// `value` must be a valid element, as for [`Table::new`].
    pub unsafe fn set(&mut self, index: u32, value: *const VMFuncRef) -> bool {
        let word = self.encode(value);
        match self.words.get_mut(index as usize) {
            Some(slot) => {
                *slot = word;
                true
            }
            None => false,
        }
    }

    /// Writes `values` from `dst`; `false` (and nothing written) if they do not fit.
    ///
    /// # Safety
    /// Every value must be a valid element, as for [`Table::new`].
    pub unsafe fn write(
        &mut self,
        dst: u32,
        values: impl ExactSizeIterator<Item = *const VMFuncRef>,
    ) -> bool {
        let dst = dst as usize;
        let Some(end) = dst.checked_add(values.len()) else {
            return false;
        };
        if end > self.words.len() {
            return false;
        }
        for (index, value) in (dst..end).zip(values) {
            self.words[index] = self.encode(value);
        }
        true
    }

    /// `table.fill`: `len` copies of `value` from `dst`; `false` if out of bounds.
    ///
    /// # Safety
    /// `value` must be a valid element, as for [`Table::new`].
    pub unsafe fn fill(&mut self, dst: u32, value: *const VMFuncRef, len: u32) -> bool {
        let word = self.encode(value);
        let range = dst as usize..dst as usize + len as usize;
        match self.words.get_mut(range) {
            Some(slots) => {
                slots.fill(word);
                true
            }
            None => false,
        }
    }

    /// `table.copy` within this table; `false` if either range is out of bounds.
    pub fn copy_within(&mut self, dst: u32, src: u32, len: u32) -> bool {
        let (dst, src, len) = (dst as usize, src as usize, len as usize);
        let size = self.words.len();
        if src + len > size || dst + len > size {
            return false;
        }
        self.keep_range(src, len);
        self.words.copy_within(src..src + len, dst);
        true
    }

    /// `table.copy` from `source`, another table with the same element type; `false` if
    /// either range is out of bounds.
    pub fn copy_from(&mut self, source: &Table, dst: u32, src: u32, len: u32) -> bool {
        let (dst, src, len) = (dst as usize, src as usize, len as usize);
        if src + len > source.words.len() || dst + len > self.words.len() {
            return false;
        }
        for k in 0..len {
            let value = source.decode((src + k) as u32, source.words[src + k]);
            self.words[dst + k] = self.encode(value);
        }
        true
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
        // Written, even if null: the initial elements only reach the first `min`.
        let word = self.encode(init);
        self.words.grow(new as usize, word)?;
        self.sync();
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    /// Segment items as distinct fake func refs (aligned addresses, never dereferenced),
    /// counting how many were asked for.
    struct CountingItems {
        refs: RefCell<Vec<VMFuncRef>>,
        asked: Cell<usize>,
    }

    impl CountingItems {
        fn new() -> Box<CountingItems> {
            let refs = (0..64).map(|_| VMFuncRef::EMPTY).collect();
            Box::new(CountingItems {
                refs: RefCell::new(refs),
                asked: Cell::new(0),
            })
        }

        /// The fake func ref standing for item `item` of segment `elem`.
        fn item(&self, elem: u32, item: u32) -> *const VMFuncRef {
            &raw const self.refs.borrow()[(elem * 16 + item) as usize]
        }
    }

    impl SegmentItems for CountingItems {
        fn segment_item(&self, elem: u32, item: u32) -> *const VMFuncRef {
            self.asked.set(self.asked.get() + 1);
            self.item(elem, item)
        }
    }

    fn funcref_table(min: u32, items: &CountingItems) -> Box<Table> {
        let ty = TableType {
            element: RefType::FuncRef,
            min,
            max: None,
        };
        // SAFETY: null is a valid element; the items outlive the table in every test.
        let mut table = unsafe { Table::new(ty, std::ptr::null(), u32::MAX) }.unwrap();
        let source: *const dyn SegmentItems = items;
        // SAFETY: the items outlive the table (every test drops them after it), and their
        // fake func refs are valid elements of a table that code never reads.
        table.set_initial(unsafe { InitialElements::new(source) });
        table
    }

    #[test]
    fn placed_segments_are_read_on_demand_and_kept_once_read_by_code() {
        let items = CountingItems::new();
        let mut table = funcref_table(1000, &items);
        assert!(table.place_segment(0, 0, 8));
        assert!(table.place_segment(1, 4, 8), "overlaps the first");
        assert!(!table.place_segment(2, 999, 2), "one past the end");
        assert_eq!(items.asked.get(), 0, "placing reads nothing");
        assert!(table.words.iter().all(|&w| w == 0), "and writes nothing");

        // Later segments win where they overlap; beyond every segment, null.
        assert_eq!(table.get(3), Some(items.item(0, 3)));
        assert_eq!(table.get(4), Some(items.item(1, 0)));
        assert_eq!(table.get(11), Some(items.item(1, 7)));
        assert_eq!(table.get(12), Some(std::ptr::null()));
        assert_eq!(table.get(1000), None);
        assert_eq!(items.asked.get(), 3);

        // Code's reads write the element back, tagged, and never ask again.
        assert_eq!(table.get_and_keep(5), Some(items.item(1, 1)));
        assert_eq!(table.words[5], items.item(1, 1) as usize | WRITTEN);
        assert_eq!(table.get(5), Some(items.item(1, 1)));
        assert_eq!(items.asked.get(), 4);

        // A null element read by code is written as the tag alone, not left unwritten.
        assert_eq!(table.get_and_keep(500), Some(std::ptr::null()));
        assert_eq!(table.words[500], WRITTEN);
    }

    #[test]
    fn writes_override_segments_and_copies_carry_their_values() {
        let items = CountingItems::new();
        let mut table = funcref_table(16, &items);
        assert!(table.place_segment(0, 0, 4));
        // SAFETY: null and the fake func refs are the only elements written.
        unsafe {
            assert!(table.set(1, std::ptr::null()));
            assert_eq!(table.get(1), Some(std::ptr::null()), "a written null wins");
            assert!(table.fill(2, items.item(3, 0), 1));
        }
        // Overlapping copy forward within the table: [s0 null f30 s3] -> at 1.
        assert!(table.copy_within(1, 0, 4));
        let expect = [
            items.item(0, 0),
            items.item(0, 0),
            std::ptr::null(),
            items.item(3, 0),
            items.item(0, 3),
        ];
        for (i, e) in expect.iter().enumerate() {
            assert_eq!(table.get(i as u32), Some(*e), "element {i}");
        }
        assert!(!table.copy_within(14, 0, 3), "out of bounds");

        // Into another table: values, not words, move.
        let other_items = CountingItems::new();
        let mut other = funcref_table(4, &other_items);
        assert!(other.copy_from(&table, 0, 1, 4));
        for i in 0..4 {
            assert_eq!(other.get(i), table.get(i + 1));
        }
        assert_eq!(other_items.asked.get(), 0);

        // Grown elements are written with the value given, past every segment.
        // SAFETY: a fake func ref of the test.
        assert_eq!(unsafe { table.grow(2, items.item(2, 2)) }, Some(16));
        assert_eq!(table.get(17), Some(items.item(2, 2)));
    }

    #[test]
    fn externref_tables_store_values_untagged_and_place_nothing() {
        let items = CountingItems::new();
        let ty = TableType {
            element: RefType::ExternRef,
            min: 4,
            max: None,
        };
        // SAFETY: null is a valid element.
        let mut table = unsafe { Table::new(ty, std::ptr::null(), u32::MAX) }.unwrap();
        let source: *const dyn SegmentItems = &*items;
        // SAFETY: the items outlive the table.
        table.set_initial(unsafe { InitialElements::new(source) });
        assert!(!table.place_segment(0, 0, 2));
        let value = std::ptr::without_provenance::<VMFuncRef>(0x11);
        // SAFETY: an externref table's raw value.
        assert!(unsafe { table.set(2, value) });
        assert_eq!(table.words[2], 0x11);
        assert_eq!(table.get(2), Some(value));
    }
}
