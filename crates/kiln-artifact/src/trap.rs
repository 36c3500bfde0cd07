//! Trap codes, the records that map code offsets to them, and the table that stores the
//! records of a module compactly.

/// Why WebAssembly execution stopped abnormally.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, Clone, Copy))]
#[repr(u8)]
pub enum TrapCode {
    /// The call stack grew past the configured limit.
    StackOverflow = 0,
    /// A load or store outside a linear memory.
    MemoryOutOfBounds = 1,
    /// A misaligned atomic access.
    HeapMisaligned = 2,
    /// A table access outside the table.
    TableOutOfBounds = 3,
    /// `call_indirect` reached an element outside the table.
    IndirectCallOutOfBounds = 4,
    /// `call_indirect` through a null entry.
    IndirectCallToNull = 5,
    /// `call_indirect` to a function of another signature.
    BadSignature = 6,
    /// Signed integer overflow (`i32.div_s` of `MIN` by `-1`, or a float-to-int overflow).
    IntegerOverflow = 7,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 8,
    /// Float-to-int conversion of NaN.
    BadConversionToInteger = 9,
    /// The `unreachable` instruction.
    UnreachableCodeReached = 10,
    /// Access through a null reference.
    NullReference = 11,
    /// Execution was interrupted by the host.
    Interrupt = 12,
}

impl TrapCode {
    /// All trap codes, in code order.
    pub const ALL: [TrapCode; 13] = [
        TrapCode::StackOverflow,
        TrapCode::MemoryOutOfBounds,
        TrapCode::HeapMisaligned,
        TrapCode::TableOutOfBounds,
        TrapCode::IndirectCallOutOfBounds,
        TrapCode::IndirectCallToNull,
        TrapCode::BadSignature,
        TrapCode::IntegerOverflow,
        TrapCode::IntegerDivisionByZero,
        TrapCode::BadConversionToInteger,
        TrapCode::UnreachableCodeReached,
        TrapCode::NullReference,
        TrapCode::Interrupt,
    ];

    /// The trap with code `byte`, if there is one.
    pub fn from_u8(byte: u8) -> Option<TrapCode> {
        Self::ALL.get(usize::from(byte)).copied()
    }

    /// The wording used by the WebAssembly specification's tests.
    pub fn message(self) -> &'static str {
        match self {
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::HeapMisaligned => "unaligned atomic",
            TrapCode::TableOutOfBounds => "out of bounds table access",
            TrapCode::IndirectCallOutOfBounds => "undefined element",
            TrapCode::IndirectCallToNull => "uninitialized element",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::IntegerDivisionByZero => "integer divide by zero",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::UnreachableCodeReached => "unreachable",
            TrapCode::NullReference => "null reference",
            TrapCode::Interrupt => "interrupt",
        }
    }
}

impl ArchivedTrapCode {
    /// The code in native form.
    pub fn native(&self) -> TrapCode {
        TrapCode::from_u8(*self as u8).expect("archived trap codes are valid by construction")
    }
}

impl core::fmt::Display for TrapCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// One instruction in the text section that may trap, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrapRecord {
    /// Offset of the trapping instruction from the start of the text section.
    pub code_offset: u32,
    /// Offset of the WebAssembly instruction in the module's bytes (`u32::MAX` if unknown).
    pub wasm_offset: u32,
    /// Why it traps.
    pub code: TrapCode,
}

/// Size of a page of [`TrapTable::pages`]: the code offsets of one page share their high bits.
const PAGE_BITS: u32 = 16;

/// Every trap site of a text section, sorted by code offset, stored by columns: a record
/// usually costs 5 bytes (the low 16 bits of its code offset, its code, its wasm offset as
/// 16 bits above its page's lowest) instead of the 12 of a [`TrapRecord`]. Generated code
/// traps at nearly every memory access, so this table is most of a module's metadata; its
/// size is hashed and validated on checked loads.
///
/// The high bits of a record's code offset are its page: `pages[p]` is the index of the first
/// record at or after code offset `p << 16`, and the last entry is the number of records, so
/// the records of page `p` are `pages[p]..pages[p + 1]`.
///
/// Wasm offsets come in one of two forms. Narrow, when the known wasm offsets of every page
/// lie within 65,535 of each other (the code of one 64 KiB page comes from a few nearby
/// functions; SQLite's widest page spans 59,360 bytes of wasm): `wasm_bases[p]` is page `p`'s
/// lowest, and `wasm_deltas[i]` record `i`'s distance above it, [`UNKNOWN_DELTA`] for an
/// unknown offset. Wide otherwise: `wasm_wide[i]` is the offset itself, and the narrow
/// columns are empty.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct TrapTable {
    /// Where each 64 KiB page of code offsets starts in the columns, then their length.
    pub pages: Vec<u32>,
    /// The low 16 bits of each record's code offset.
    pub low_offsets: Vec<u16>,
    /// Each record's trap code (a [`TrapCode`] as `u8`: checked with one pass over plain
    /// bytes rather than per enum by bytecheck).
    pub codes: Vec<u8>,
    /// Narrow form: the lowest known wasm offset of each page (0 if none).
    pub wasm_bases: Vec<u32>,
    /// Narrow form: each record's wasm offset above its page's base.
    pub wasm_deltas: Vec<u16>,
    /// Wide form: each record's wasm offset (`u32::MAX` if unknown).
    pub wasm_wide: Vec<u32>,
}

/// The delta of a record whose wasm offset is unknown (`u32::MAX`) in the narrow form.
pub const UNKNOWN_DELTA: u16 = u16::MAX;

/// The wasm offset a narrow table stores as `base` and `delta`.
fn narrow_wasm_offset(base: u32, delta: u16) -> u32 {
    if delta == UNKNOWN_DELTA {
        u32::MAX
    } else {
        // Wraps rather than panics on a hostile table: wasm offsets only label traps.
        base.wrapping_add(u32::from(delta))
    }
}

impl TrapTable {
    /// The table of `records`, which it sorts by code offset (stable: records at the same
    /// offset keep their order, and a checked load refuses them).
    pub fn from_records(records: &[TrapRecord]) -> TrapTable {
        let mut records = records.to_vec();
        records.sort_by_key(|r| r.code_offset);
        let page_count = records
            .last()
            .map_or(0, |r| (r.code_offset >> PAGE_BITS) as usize + 1);
        let mut pages = Vec::with_capacity(page_count + 1);
        for page in 0..=page_count {
            let start = (page as u64) << PAGE_BITS;
            pages.push(records.partition_point(|r| u64::from(r.code_offset) < start) as u32);
        }
        let known = |run: &[TrapRecord]| {
            let mut known = run.iter().map(|r| r.wasm_offset).filter(|&w| w != u32::MAX);
            let first = known.next()?;
            Some(known.fold((first, first), |(lo, hi), w| (lo.min(w), hi.max(w))))
        };
        let spans: Vec<Option<(u32, u32)>> = pages
            .windows(2)
            .map(|run| known(&records[run[0] as usize..run[1] as usize]))
            .collect();
        let narrow = spans
            .iter()
            .flatten()
            .all(|&(lo, hi)| hi - lo < u32::from(UNKNOWN_DELTA));
        let (mut wasm_bases, mut wasm_deltas, mut wasm_wide) = (Vec::new(), Vec::new(), Vec::new());
        if narrow {
            wasm_bases = spans.iter().map(|s| s.map_or(0, |(lo, _)| lo)).collect();
            for (page, run) in pages.windows(2).enumerate() {
                let base = wasm_bases[page];
                wasm_deltas.extend(records[run[0] as usize..run[1] as usize].iter().map(|r| {
                    if r.wasm_offset == u32::MAX {
                        UNKNOWN_DELTA
                    } else {
                        (r.wasm_offset - base) as u16
                    }
                }));
            }
        } else {
            wasm_wide = records.iter().map(|r| r.wasm_offset).collect();
        }
        TrapTable {
            pages,
            low_offsets: records.iter().map(|r| r.code_offset as u16).collect(),
            codes: records.iter().map(|r| r.code as u8).collect(),
            wasm_bases,
            wasm_deltas,
            wasm_wide,
        }
    }

    /// The wasm offset of record `i` of page `page`, if the columns hold it.
    fn wasm_offset(&self, page: usize, i: usize) -> Option<u32> {
        if self.wasm_deltas.is_empty() {
            return self.wasm_wide.get(i).copied();
        }
        Some(narrow_wasm_offset(
            *self.wasm_bases.get(page)?,
            *self.wasm_deltas.get(i)?,
        ))
    }

    /// The records, in code order.
    pub fn records(&self) -> Vec<TrapRecord> {
        let mut out = Vec::with_capacity(self.low_offsets.len());
        for (page, run) in self.pages.windows(2).enumerate() {
            for i in run[0] as usize..run[1] as usize {
                // A table made by `from_records` is consistent; skip what is not (the fields
                // are public).
                let (Some(&low), Some(&code), Some(wasm_offset)) = (
                    self.low_offsets.get(i),
                    self.codes.get(i),
                    self.wasm_offset(page, i),
                ) else {
                    continue;
                };
                if let Some(code) = TrapCode::from_u8(code) {
                    out.push(TrapRecord {
                        code_offset: ((page as u32) << PAGE_BITS) | u32::from(low),
                        wasm_offset,
                        code,
                    });
                }
            }
        }
        out
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.low_offsets.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.low_offsets.is_empty()
    }
}

impl ArchivedTrapTable {
    /// The number of records.
    pub fn len(&self) -> usize {
        self.low_offsets.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.low_offsets.is_empty()
    }

    /// The record of page `page` at index `i`, if `i` is inside the columns and its code is
    /// valid (both hold for the indices of `pages` after [`ArchivedTrapTable::check`]).
    fn record(&self, page: usize, i: usize) -> Option<TrapRecord> {
        Some(TrapRecord {
            code_offset: ((page as u32) << PAGE_BITS)
                | u32::from(self.low_offsets.get(i)?.to_native()),
            wasm_offset: if self.wasm_deltas.is_empty() {
                self.wasm_wide.get(i)?.to_native()
            } else {
                narrow_wasm_offset(
                    self.wasm_bases.get(page)?.to_native(),
                    self.wasm_deltas.get(i)?.to_native(),
                )
            },
            code: TrapCode::from_u8(*self.codes.get(i)?)?,
        })
    }

    /// The code offset of record `i` (after [`ArchivedTrapTable::check`]), if there is one.
    pub fn code_offset(&self, i: usize) -> Option<u32> {
        let low = self.low_offsets.get(i)?.to_native();
        // The last page that starts at or before `i` (empty pages start where the next does).
        let page = self
            .pages
            .partition_point(|p| p.to_native() as usize <= i)
            .checked_sub(1)?;
        Some(((page as u32) << PAGE_BITS) | u32::from(low))
    }

    /// [`ArchivedTrapTable::code_offset`] for records visited in increasing order: `page`
    /// holds where the previous call ended (0 before the first), so a walk over the table
    /// steps once per page instead of searching the pages once per record.
    pub fn code_offset_from(&self, i: usize, page: &mut usize) -> Option<u32> {
        let low = self.low_offsets.get(i)?.to_native();
        let starts_by = |p: usize| {
            self.pages
                .get(p)
                .is_some_and(|s| s.to_native() as usize <= i)
        };
        if !starts_by(*page) {
            return None;
        }
        while starts_by(*page + 1) {
            *page += 1;
        }
        Some(((*page as u32) << PAGE_BITS) | u32::from(low))
    }

    /// The records, in code order (after [`ArchivedTrapTable::check`]).
    pub fn iter(&self) -> impl Iterator<Item = TrapRecord> + '_ {
        self.pages
            .windows(2)
            .enumerate()
            .flat_map(move |(page, run)| {
                (run[0].to_native() as usize..run[1].to_native() as usize)
                    .filter_map(move |i| self.record(page, i))
            })
    }

    /// The record of the instruction at `code_offset`, if it may trap. Bounded: a binary
    /// search among the records of one 64 KiB page.
    pub fn lookup(&self, code_offset: u32) -> Option<TrapRecord> {
        let page = (code_offset >> PAGE_BITS) as usize;
        let start = self.pages.get(page)?.to_native() as usize;
        let end = self.pages.get(page + 1)?.to_native() as usize;
        let low = code_offset as u16;
        let run = self.low_offsets.get(start..end)?;
        let i = run.binary_search_by_key(&low, |l| l.to_native()).ok()?;
        self.record(page, start + i)
    }

    /// Checks that the columns describe records sorted strictly by code offset, all below
    /// `code_len`: equal lengths (wasm offsets in one form, narrow with a base per page),
    /// pages that start at zero, never decrease and end at the number of records, one page
    /// per 64 KiB up to the last record, and increasing low bits within each page, and known
    /// trap codes.
    pub fn check(&self, code_len: u64) -> Result<(), String> {
        let len = self.low_offsets.len();
        let page_count = self.pages.len().saturating_sub(1);
        let wasm_columns = if self.wasm_deltas.is_empty() && self.wasm_bases.is_empty() {
            self.wasm_wide.len() == len
        } else {
            self.wasm_wide.is_empty()
                && self.wasm_deltas.len() == len
                && self.wasm_bases.len() == page_count
        };
        if self.codes.len() != len || !wasm_columns {
            return Err(format!(
                "trap table columns of {len} and {} records, wasm offsets of {}+{}+{}",
                self.codes.len(),
                self.wasm_bases.len(),
                self.wasm_deltas.len(),
                self.wasm_wide.len()
            ));
        }
        // Folds without early exits, so that these passes over every record vectorise.
        let largest_code = self.codes.iter().fold(0u8, |m, &c| m.max(c));
        if usize::from(largest_code) >= TrapCode::ALL.len() {
            return Err("trap table holds an unknown trap code".into());
        }
        let pages: Vec<usize> = self.pages.iter().map(|p| p.to_native() as usize).collect();
        if pages.is_empty() && len == 0 {
            // The default table: no page, no record.
            return Ok(());
        }
        if pages.first() != Some(&0) || pages.last() != Some(&len) {
            return Err(format!(
                "trap table pages {:?}..{:?} do not span its {len} records",
                pages.first(),
                pages.last()
            ));
        }
        let page_count = pages.len() - 1;
        // Code offsets are 32-bit: a page number above 16 bits would wrap.
        if page_count > 1 << (32 - PAGE_BITS)
            || (page_count as u64) << PAGE_BITS > code_len.next_multiple_of(1 << PAGE_BITS)
        {
            return Err(format!(
                "trap table has {page_count} pages for {code_len} bytes of code"
            ));
        }
        // Before any run is sliced: pages that never decrease stay within 0..=len.
        if let Some(page) = pages.windows(2).position(|run| run[0] > run[1]) {
            return Err(format!("trap table page {page} starts after the next one"));
        }
        for (page, run) in pages.windows(2).enumerate() {
            let lows = &self.low_offsets[run[0]..run[1]];
            let unordered = lows
                .windows(2)
                .fold(false, |bad, w| bad | (w[0].to_native() >= w[1].to_native()));
            if unordered {
                return Err(format!("trap records of page {page} are out of order"));
            }
            if let Some(last) = lows.last() {
                let end = ((page as u64) << PAGE_BITS) + u64::from(last.to_native());
                if end >= code_len {
                    return Err(format!(
                        "trap record at code offset {end} is outside the code"
                    ));
                }
            }
        }
        if page_count > 0 && pages[page_count - 1] == len {
            return Err("trap table ends with an empty page".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(code_offset: u32, wasm_offset: u32, code: TrapCode) -> TrapRecord {
        TrapRecord {
            code_offset,
            wasm_offset,
            code,
        }
    }

    #[test]
    fn records_round_trip_and_are_found_across_pages() {
        let records = vec![
            record(3, 10, TrapCode::MemoryOutOfBounds),
            record(0xffff, 11, TrapCode::StackOverflow),
            record(0x1_0000, u32::MAX, TrapCode::IntegerDivisionByZero),
            record(0x3_0002, 12, TrapCode::Interrupt),
        ];
        let mut shuffled = records.clone();
        shuffled.reverse();
        let table = TrapTable::from_records(&shuffled);
        assert_eq!(table.records(), records);
        assert_eq!(table.pages, [0, 2, 3, 3, 4]);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&table).unwrap();
        let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
        archived.check(0x3_0003).unwrap();
        assert_eq!(archived.iter().collect::<Vec<_>>(), records);
        for r in &records {
            assert_eq!(archived.lookup(r.code_offset), Some(*r));
        }
        for missing in [0, 4, 0x1_0001, 0x2_0000, 0x3_0003, u32::MAX] {
            assert_eq!(archived.lookup(missing), None, "{missing:#x}");
        }
        assert!(
            archived.check(0x3_0002).is_err(),
            "a record at the end of the code"
        );
        // The walking lookup agrees with the searching one, across the empty page too.
        let mut page = 0;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(archived.code_offset(i), Some(r.code_offset));
            assert_eq!(archived.code_offset_from(i, &mut page), Some(r.code_offset));
        }
        assert_eq!(archived.code_offset_from(records.len(), &mut page), None);
        assert!(table.wasm_wide.is_empty(), "narrow: {table:?}");
        assert_eq!(table.wasm_bases, [10, 0, 0, 12]);
    }

    #[test]
    fn wasm_offsets_too_far_apart_in_a_page_are_stored_wide() {
        let records = vec![
            record(0, 5, TrapCode::MemoryOutOfBounds),
            record(8, 5 + 65_534, TrapCode::MemoryOutOfBounds),
            record(0x1_0000, 100, TrapCode::StackOverflow),
            record(0x1_0004, u32::MAX, TrapCode::StackOverflow),
        ];
        let narrow = TrapTable::from_records(&records);
        assert_eq!(narrow.wasm_deltas, [0, 65_534, 0, UNKNOWN_DELTA]);
        assert_eq!(narrow.records(), records);

        let mut far = records.clone();
        far[1].wasm_offset += 1;
        let wide = TrapTable::from_records(&far);
        assert!(wide.wasm_deltas.is_empty() && wide.wasm_bases.is_empty());
        assert_eq!(wide.wasm_wide, [5, 5 + 65_535, 100, u32::MAX]);
        assert_eq!(wide.records(), far);
        for table in [narrow, wide] {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&table).unwrap();
            let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
            archived.check(0x1_0005).unwrap();
            let expected = table.records();
            assert_eq!(archived.iter().collect::<Vec<_>>(), expected);
            assert_eq!(archived.lookup(0x1_0004), Some(expected[3]));
        }
    }

    #[test]
    fn wasm_offset_columns_of_the_wrong_length_or_both_forms_are_refused() {
        let records = vec![
            record(0, 5, TrapCode::MemoryOutOfBounds),
            record(0x1_0000, 100, TrapCode::StackOverflow),
        ];
        let good = TrapTable::from_records(&records);
        let check = |t: &TrapTable| {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(t).unwrap();
            let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
            archived.check(0x2_0000)
        };
        check(&good).unwrap();
        let mut short_deltas = good.clone();
        short_deltas.wasm_deltas.pop();
        let mut short_bases = good.clone();
        short_bases.wasm_bases.pop();
        let mut both = good.clone();
        both.wasm_wide = vec![5, 100];
        let mut wide_short = good.clone();
        wide_short.wasm_bases.clear();
        wide_short.wasm_deltas.clear();
        wide_short.wasm_wide = vec![5];
        for (what, t) in [
            ("short deltas", short_deltas),
            ("short bases", short_bases),
            ("both forms", both),
            ("short wide column", wide_short),
        ] {
            assert!(check(&t).is_err(), "{what}");
        }
    }

    #[test]
    fn malformed_tables_are_refused() {
        let good = TrapTable::from_records(&[
            record(5, 1, TrapCode::MemoryOutOfBounds),
            record(7, 2, TrapCode::MemoryOutOfBounds),
            record(0x1_0000, 3, TrapCode::MemoryOutOfBounds),
        ]);
        let mut bad = Vec::new();
        let mut t = good.clone();
        t.codes.pop();
        bad.push(t);
        let mut t = good.clone();
        t.pages = vec![0, 2];
        bad.push(t);
        let mut t = good.clone();
        t.pages = vec![0, 3, 2, 3];
        bad.push(t);
        let mut t = good.clone();
        t.low_offsets.swap(0, 1);
        bad.push(t);
        let mut t = good.clone();
        t.low_offsets[1] = 5;
        bad.push(t);
        let mut t = good.clone();
        t.pages = vec![1, 2, 3];
        bad.push(t);
        let mut t = good.clone();
        t.pages.push(3);
        bad.push(t);
        let mut t = good.clone();
        t.codes[2] = TrapCode::ALL.len() as u8;
        bad.push(t);
        // A middle page past the records (must be refused, not sliced).
        let mut t = good.clone();
        t.pages = vec![0, 8, 3];
        bad.push(t);
        // More pages than 32-bit code offsets have.
        let mut t = good.clone();
        t.pages = vec![0; (1 << 16) + 2];
        t.pages.push(3);
        bad.push(t);
        for (i, table) in bad.iter().enumerate() {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(table).unwrap();
            let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
            assert!(archived.check(1 << 40).is_err(), "case {i} passed");
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&good).unwrap();
        let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
        archived.check(0x1_0001).unwrap();
        assert!(archived.check(0x1_0000).is_err());
        let mut records = good.records();
        records.push(records[1]);
        let twice = TrapTable::from_records(&records);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&twice).unwrap();
        let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
        assert!(
            archived.check(1 << 20).is_err(),
            "two records of one instruction"
        );
        for empty in [TrapTable::from_records(&[]), TrapTable::default()] {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&empty).unwrap();
            let archived = rkyv::access::<ArchivedTrapTable, rkyv::rancor::Error>(&bytes).unwrap();
            archived.check(0).unwrap();
            assert_eq!(archived.lookup(0), None);
        }
    }
}
