//! Semantic checks of archived metadata: every index and byte range that the runtime will
//! follow without further checks must lie inside what it names.
//!
//! bytecheck proves the archive is memory-safe to read; this module proves it is safe to
//! *use*: a function's code lies in the text section, an export names an existing item,
//! a data segment's bytes lie in the data section, and so on.

use crate::entity::EntityRef;
use crate::error::ArtifactError;
use crate::module::*;
use crate::types::*;

fn bad(msg: impl Into<String>) -> ArtifactError {
    ArtifactError::InvalidMetadata(msg.into())
}

fn check_range(what: &str, r: &ArchivedByteRange, section_len: u64) -> Result<(), ArtifactError> {
    let r = r.native();
    match r.end() {
        Some(end) if u64::from(end) <= section_len => Ok(()),
        _ => Err(bad(format!(
            "{what} range {}+{} exceeds its {section_len}-byte section",
            r.start, r.len
        ))),
    }
}

/// The runtime maps an image over the memory's first `min` pages without further checks.
fn check_memory_image(
    image: &ArchivedMemoryImage,
    info: &ArchivedModuleInfo,
    data_len: u64,
) -> Result<(), ArtifactError> {
    let memory = image.memory.native();
    let ty = info
        .memories
        .get(memory)
        .filter(|_| memory.0 >= info.num_imported_memories.to_native())
        .ok_or_else(|| bad("the memory image is not of a defined memory"))?;
    if ty.memory64 || ty.shared {
        return Err(bad("the memory image is of a 64-bit or shared memory"));
    }
    let page = u64::from(image.page_size.to_native());
    let bytes = image.bytes.native();
    let (offset, len) = (image.offset.to_native(), u64::from(bytes.len));
    if !page.is_power_of_two() || !(4096..=WASM_PAGE_SIZE).contains(&page) {
        return Err(bad(format!("memory image page size {page}")));
    }
    if bytes.start != 0 || len == 0 || !offset.is_multiple_of(page) || !len.is_multiple_of(page) {
        return Err(bad(format!(
            "memory image {offset}+{len} is not laid out in whole {page}-byte pages"
        )));
    }
    check_range("memory image", &image.bytes, data_len)?;
    let initial = ty.min.to_native().saturating_mul(WASM_PAGE_SIZE);
    if offset.checked_add(len).is_none_or(|end| end > initial) {
        return Err(bad(format!(
            "memory image {offset}+{len} exceeds the memory's initial {initial} bytes"
        )));
    }
    Ok(())
}

fn check_const(
    what: &str,
    e: &ArchivedConstExpr,
    info: &ArchivedModuleInfo,
    expected: Option<ValType>,
) -> Result<(), ArtifactError> {
    let ty = match e {
        ArchivedConstExpr::I32(_) => ValType::I32,
        ArchivedConstExpr::I64(_) => ValType::I64,
        ArchivedConstExpr::F32(_) => ValType::F32,
        ArchivedConstExpr::F64(_) => ValType::F64,
        ArchivedConstExpr::V128(_) => ValType::V128,
        ArchivedConstExpr::GlobalGet(g) => {
            let g = g.native();
            let decl = info
                .globals
                .get(g)
                .ok_or_else(|| bad(format!("{what}: global {g} out of range")))?;
            decl.ty.content.native()
        }
        ArchivedConstExpr::RefNull(ArchivedRefType::FuncRef) => ValType::FuncRef,
        ArchivedConstExpr::RefNull(ArchivedRefType::ExternRef) => ValType::ExternRef,
        ArchivedConstExpr::RefFunc(f) => {
            let f = f.native();
            if info.functions.get(f).is_none() {
                return Err(bad(format!("{what}: function {f} out of range")));
            }
            ValType::FuncRef
        }
    };
    match expected {
        Some(exp) if exp != ty => Err(bad(format!(
            "{what}: constant of type {ty}, expected {exp}"
        ))),
        _ => Ok(()),
    }
}

/// Checks the archived metadata against the lengths of the code and data sections.
pub fn validate_metadata(
    info: &ArchivedModuleInfo,
    code_len: u64,
    data_len: u64,
) -> Result<(), ArtifactError> {
    let n_types = info.types.len();
    // One identity per type, not per function: modules have far fewer types than functions.
    let type_ids: Vec<SignatureId> = info
        .types
        .as_slice()
        .iter()
        .map(ArchivedFuncType::signature_id)
        .collect();
    for (i, f) in info.functions.iter() {
        let ty = f.ty.native();
        let id = type_ids
            .get(ty.index())
            .ok_or_else(|| bad(format!("function {i:?} has type {ty} out of range")))?;
        if *id != f.signature.native() {
            return Err(bad(format!(
                "function {i:?} has a signature id that does not match its type"
            )));
        }
    }
    let counts = [
        (
            "functions",
            info.num_imported_funcs.to_native(),
            info.functions.len(),
        ),
        (
            "tables",
            info.num_imported_tables.to_native(),
            info.tables.len(),
        ),
        (
            "memories",
            info.num_imported_memories.to_native(),
            info.memories.len(),
        ),
        (
            "globals",
            info.num_imported_globals.to_native(),
            info.globals.len(),
        ),
    ];
    for (what, imported, total) in counts {
        if imported as usize > total {
            return Err(bad(format!(
                "{imported} imported {what} but only {total} in all"
            )));
        }
    }
    let defined_funcs = info.functions.len() - info.num_imported_funcs.to_native() as usize;
    if info.compiled.len() != defined_funcs {
        return Err(bad(format!(
            "{} compiled bodies for {defined_funcs} defined functions",
            info.compiled.len()
        )));
    }
    if info.trampolines.len() != n_types {
        return Err(bad(format!(
            "{} trampoline pairs for {n_types} types",
            info.trampolines.len()
        )));
    }
    // Every entry point the runtime jumps to must be where the linker put a piece of code:
    // the pieces tile the text section in a fixed order, so no single changed range can
    // point a function into the middle of other code.
    let align = info.function_alignment.to_native();
    if !align.is_power_of_two() || !(16..=65536).contains(&align) {
        return Err(bad(format!(
            "function alignment {align} is not a power of two in 16..=65536"
        )));
    }
    let pieces = info
        .compiled
        .iter()
        .map(|(_, f)| ("function body", &f.body))
        .chain(info.trampolines.iter().flat_map(|(_, t)| {
            [
                ("array-to-wasm trampoline", &t.array_to_wasm),
                ("wasm-to-array trampoline", &t.wasm_to_array),
            ]
        }));
    let mut prev_end = 0u64;
    for (what, range) in pieces {
        check_range(what, range, code_len)?;
        let range = range.native();
        let expected = prev_end.next_multiple_of(u64::from(align));
        if u64::from(range.start) != expected || range.len == 0 {
            return Err(bad(format!(
                "{what} at code offset {} is not where the layout puts it ({expected})",
                range.start
            )));
        }
        prev_end = u64::from(range.start) + u64::from(range.len);
    }
    // Trap records: each function claims the next `trap_count` records, which must lie in
    // its own body, and together the functions claim them all. A record dropped or added (or
    // a count changed) would leave a trapping instruction of some function without its
    // record, which the runtime treats as a fatal Kiln bug. The table is sorted (checked
    // first) and the bodies follow each other, so a run lies in its body when its first and
    // last records do: the cost is per function, not per record.
    info.traps.check(code_len).map_err(bad)?;
    let mut next = 0usize;
    let mut page = 0usize;
    for (index, f) in info.compiled.iter() {
        let count = f.trap_count.to_native() as usize;
        if count == 0 {
            continue;
        }
        let body = f.body.native();
        let (start, end) = (body.start, body.start + body.len);
        let last = next + count - 1;
        let first_off = info.traps.code_offset_from(next, &mut page);
        let last_off = info.traps.code_offset_from(last, &mut page);
        let (Some(first_off), Some(last_off)) = (first_off, last_off) else {
            return Err(bad(format!(
                "defined function {} claims more trap records than there are",
                index.0
            )));
        };
        if first_off < start || last_off >= end {
            return Err(bad(format!(
                "trap records at code offsets {first_off}..={last_off} are not all in defined \
                 function {} ({start}..{end})",
                index.0
            )));
        }
        next += count;
    }
    if next != info.traps.len() {
        return Err(bad(format!(
            "{} trap records but the functions claim {next}",
            info.traps.len()
        )));
    }
    // One pass without early exits (SQLite has tens of thousands of call sites), then the
    // slow search for the culprit only if something is wrong.
    let sites = info.call_sites.as_slice();
    let sorted = sites.windows(2).fold(true, |ok, w| {
        ok & (w[0].return_offset.to_native() < w[1].return_offset.to_native())
    });
    let in_range = sites
        .last()
        .is_none_or(|c| u64::from(c.return_offset.to_native()) <= code_len);
    if !(sorted && in_range) {
        let bad_site = sites
            .iter()
            .enumerate()
            .find(|&(i, c)| {
                let off = c.return_offset.to_native();
                u64::from(off) > code_len
                    || i.checked_sub(1)
                        .is_some_and(|p| sites[p].return_offset.to_native() >= off)
            })
            .map_or(0, |(_, c)| c.return_offset.to_native());
        return Err(bad(format!(
            "call site returning to code offset {bad_site} is out of range or out of order"
        )));
    }
    // Imports fill each index space in order, before the definitions.
    let mut next = [0u32; 4];
    for imp in info.imports.iter() {
        let (slot, index, limit) = match imp.index.native() {
            EntityIndex::Function(i) => (0, i.0, info.num_imported_funcs.to_native()),
            EntityIndex::Table(i) => (1, i.0, info.num_imported_tables.to_native()),
            EntityIndex::Memory(i) => (2, i.0, info.num_imported_memories.to_native()),
            EntityIndex::Global(i) => (3, i.0, info.num_imported_globals.to_native()),
        };
        if index != next[slot] || index >= limit {
            return Err(bad(format!(
                "import {}::{} fills index {index} out of order",
                imp.module, imp.name
            )));
        }
        next[slot] += 1;
    }
    let expected_imports = [
        info.num_imported_funcs.to_native(),
        info.num_imported_tables.to_native(),
        info.num_imported_memories.to_native(),
        info.num_imported_globals.to_native(),
    ];
    if next != expected_imports {
        return Err(bad("import counts do not match the import list"));
    }
    for (name, e) in info.exports.iter() {
        let ok = match e.native() {
            EntityIndex::Function(i) => (i.0 as usize) < info.functions.len(),
            EntityIndex::Table(i) => (i.0 as usize) < info.tables.len(),
            EntityIndex::Memory(i) => (i.0 as usize) < info.memories.len(),
            EntityIndex::Global(i) => (i.0 as usize) < info.globals.len(),
        };
        if !ok {
            return Err(bad(format!("export `{name}` names an item out of range")));
        }
    }
    // Every export must be found under its own name, and only that one: a renamed entry or a
    // repeated name would make lookups disagree with the export list.
    info.exports.check().map_err(bad)?;
    for (i, g) in info.globals.iter() {
        let imported = i.0 < info.num_imported_globals.to_native();
        match (&g.init, imported) {
            (rkyv::option::ArchivedOption::None, true) => {}
            (rkyv::option::ArchivedOption::Some(e), false) => {
                check_const("global initialiser", e, info, Some(g.ty.content.native()))?
            }
            _ => {
                return Err(bad(format!(
                    "global {i:?} has an initialiser iff it is imported"
                )));
            }
        }
    }
    for (i, m) in info.memories.iter() {
        let min = m.min.to_native();
        let max = m.max.as_ref().map(|m| m.to_native());
        if min > 65536 || max.is_some_and(|max| max > 65536 || max < min) || m.memory64 || m.shared
        {
            return Err(bad(format!("memory {i:?} has unsupported limits or kind")));
        }
    }
    for (i, t) in info.tables.iter() {
        if t.max
            .as_ref()
            .is_some_and(|max| max.to_native() < t.min.to_native())
        {
            return Err(bad(format!("table {i:?} has max below min")));
        }
    }
    if let Some(image) = info.memory_image.as_ref() {
        check_memory_image(image, info, data_len)?;
    }
    for (i, d) in info.data.iter() {
        check_range("data segment", &d.bytes, data_len)?;
        if let (Some(image), ArchivedDataKind::Active { memory, .. }) =
            (info.memory_image.as_ref(), &d.kind)
            && (memory.native() != image.memory.native() || d.bytes.len != 0)
        {
            return Err(bad(format!(
                "active data segment {i:?} is not part of the memory image"
            )));
        }
        if let ArchivedDataKind::Active { memory, offset } = &d.kind {
            if info.memories.get(memory.native()).is_none() {
                return Err(bad(format!(
                    "data segment {i:?} targets a memory out of range"
                )));
            }
            check_const("data offset", offset, info, Some(ValType::I32))?;
        }
    }
    for (i, e) in info.elements.iter() {
        // The runtime stores items as raw references in tables: an extern handle in a
        // funcref table would be called as a function pointer, so types must agree.
        let element = match e.element {
            ArchivedRefType::FuncRef => ValType::FuncRef,
            ArchivedRefType::ExternRef => ValType::ExternRef,
        };
        if let ArchivedElemKind::Active { table, offset } = &e.kind {
            let table_ty = info.tables.get(table.native()).ok_or_else(|| {
                bad(format!(
                    "element segment {i:?} targets a table out of range"
                ))
            })?;
            if table_ty.element != e.element {
                return Err(bad(format!(
                    "element segment {i:?} does not match its table's element type"
                )));
            }
            check_const("element offset", offset, info, Some(ValType::I32))?;
        }
        match &e.items {
            ArchivedElemItems::Functions(_) if element != ValType::FuncRef => {
                return Err(bad(format!(
                    "element segment {i:?} lists functions but holds {element}"
                )));
            }
            ArchivedElemItems::Functions(fs) => {
                if fs
                    .iter()
                    .any(|f| f.native().0 as usize >= info.functions.len())
                {
                    return Err(bad(format!(
                        "element segment {i:?} names a function out of range"
                    )));
                }
            }
            ArchivedElemItems::Exprs(es) => {
                for x in es.iter() {
                    check_const("element item", x, info, Some(element))?;
                }
            }
        }
    }
    if let rkyv::option::ArchivedOption::Some(s) = &info.start {
        let s = s.native();
        let f = info
            .functions
            .get(s)
            .ok_or_else(|| bad("start function out of range"))?;
        let ty = &info.types[f.ty.native()];
        if !ty.params.is_empty() || !ty.results.is_empty() {
            return Err(bad("start function must take and return nothing"));
        }
    }
    let mut prev = None;
    for n in info.func_names.iter() {
        let f = n.func.native().0;
        if prev.is_some_and(|p| p >= f) {
            return Err(bad("function names are not sorted by index"));
        }
        prev = Some(f);
    }
    if !info.vmoffsets(8).fits() {
        return Err(bad("instance context layout exceeds 4 GiB"));
    }
    Ok(())
}
