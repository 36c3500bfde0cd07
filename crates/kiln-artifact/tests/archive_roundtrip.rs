//! Archiving `ModuleInfo` loses nothing: the archive read in place holds the same values,
//! in the same order, as the original, and deserialises back to an equal value. Artifacts
//! are deterministic and their headers round-trip.

mod common;

use common::{Generated, generated, host_compat};
use kiln_artifact::artifact::archive_metadata;
use kiln_artifact::header::{FORMAT_VERSION, KILN_VERSION};
use kiln_artifact::*;
use proptest::prelude::*;
use rkyv::option::ArchivedOption;

// ---- field-by-field comparison of an archived value with its original ----

fn ref_type_of(a: &ArchivedRefType) -> RefType {
    match a {
        ArchivedRefType::FuncRef => RefType::FuncRef,
        ArchivedRefType::ExternRef => RefType::ExternRef,
    }
}

fn opt<T>(a: &ArchivedOption<T>) -> Option<&T> {
    a.as_ref()
}

fn check_func_type(what: &str, a: &ArchivedFuncType, b: &FuncType) {
    let params: Vec<ValType> = a.params.iter().map(ArchivedValType::native).collect();
    let results: Vec<ValType> = a.results.iter().map(ArchivedValType::native).collect();
    assert_eq!(params, b.params, "{what}: params");
    assert_eq!(results, b.results, "{what}: results");
    assert_eq!(a.signature_id(), b.signature_id(), "{what}: signature id");
}

fn check_table(what: &str, a: &ArchivedTableType, b: &TableType) {
    assert_eq!(ref_type_of(&a.element), b.element, "{what}: element");
    assert_eq!(a.min.to_native(), b.min, "{what}: min");
    assert_eq!(opt(&a.max).map(|m| m.to_native()), b.max, "{what}: max");
}

fn check_memory(what: &str, a: &ArchivedMemoryType, b: &MemoryType) {
    assert_eq!(a.min.to_native(), b.min, "{what}: min");
    assert_eq!(opt(&a.max).map(|m| m.to_native()), b.max, "{what}: max");
    assert_eq!(a.memory64, b.memory64, "{what}: memory64");
    assert_eq!(a.shared, b.shared, "{what}: shared");
}

fn check_global_type(what: &str, a: &ArchivedGlobalType, b: &GlobalType) {
    assert_eq!(a.content.native(), b.content, "{what}: content");
    assert_eq!(a.mutable, b.mutable, "{what}: mutable");
}

fn check_const(what: &str, a: &ArchivedConstExpr, b: &ConstExpr) {
    let same = match (a, b) {
        (ArchivedConstExpr::I32(x), ConstExpr::I32(y)) => x.to_native() == *y,
        (ArchivedConstExpr::I64(x), ConstExpr::I64(y)) => x.to_native() == *y,
        (ArchivedConstExpr::F32(x), ConstExpr::F32(y)) => x.to_native() == *y,
        (ArchivedConstExpr::F64(x), ConstExpr::F64(y)) => x.to_native() == *y,
        (ArchivedConstExpr::V128(x), ConstExpr::V128(y)) => x.to_native() == *y,
        (ArchivedConstExpr::GlobalGet(x), ConstExpr::GlobalGet(y)) => x.native() == *y,
        (ArchivedConstExpr::RefNull(x), ConstExpr::RefNull(y)) => ref_type_of(x) == *y,
        (ArchivedConstExpr::RefFunc(x), ConstExpr::RefFunc(y)) => x.native() == *y,
        _ => false,
    };
    assert!(same, "{what}: archived {a:?} != original {b:?}");
}

fn check_range(what: &str, a: &ArchivedByteRange, b: &ByteRange) {
    assert_eq!(a.native(), *b, "{what}");
}

fn check_import(what: &str, a: &ArchivedImport, b: &Import) {
    assert_eq!(a.module.as_str(), b.module, "{what}: module");
    assert_eq!(a.name.as_str(), b.name, "{what}: name");
    assert_eq!(a.index.native(), b.index, "{what}: index");
}

fn check_data(what: &str, a: &ArchivedDataSegment, b: &DataSegment) {
    check_range(&format!("{what}: bytes"), &a.bytes, &b.bytes);
    match (&a.kind, &b.kind) {
        (ArchivedDataKind::Passive, DataKind::Passive) => {}
        (
            ArchivedDataKind::Active { memory, offset },
            DataKind::Active {
                memory: m,
                offset: o,
            },
        ) => {
            assert_eq!(memory.native(), *m, "{what}: memory");
            check_const(&format!("{what}: offset"), offset, o);
        }
        (x, y) => panic!("{what}: kind {x:?} != {y:?}"),
    }
}

fn check_elem(what: &str, a: &ArchivedElemSegment, b: &ElemSegment) {
    assert_eq!(ref_type_of(&a.element), b.element, "{what}: element");
    match (&a.kind, &b.kind) {
        (ArchivedElemKind::Passive, ElemKind::Passive)
        | (ArchivedElemKind::Declared, ElemKind::Declared) => {}
        (
            ArchivedElemKind::Active { table, offset },
            ElemKind::Active {
                table: t,
                offset: o,
            },
        ) => {
            assert_eq!(table.native(), *t, "{what}: table");
            check_const(&format!("{what}: offset"), offset, o);
        }
        (x, y) => panic!("{what}: kind {x:?} != {y:?}"),
    }
    match (&a.items, &b.items) {
        (ArchivedElemItems::Functions(x), ElemItems::Functions(y)) => {
            let x: Vec<FuncIndex> = x.iter().map(ArchivedFuncIndex::native).collect();
            assert_eq!(&x, y, "{what}: functions");
        }
        (ArchivedElemItems::Exprs(x), ElemItems::Exprs(y)) => {
            assert_eq!(x.len(), y.len(), "{what}: number of items");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                check_const(&format!("{what}: item {i}"), x, y);
            }
        }
        (x, y) => panic!("{what}: items {x:?} != {y:?}"),
    }
}

/// Compares every field of the archive with the original, through the archived types'
/// own accessors (no deserialisation).
fn check_archived(a: &ArchivedModuleInfo, b: &ModuleInfo) {
    assert_eq!(opt(&a.name).map(|s| s.as_str()), b.name.as_deref(), "name");

    assert_eq!(a.types.len(), b.types.len(), "number of types");
    for (i, t) in b.types.iter() {
        check_func_type(&format!("type {i}"), &a.types[i], t);
        assert_eq!(a.types.get(i).map(|x| x.to_native()).as_ref(), Some(t));
    }
    assert!(a.types.get(TypeIndex(b.types.len() as u32)).is_none());

    assert_eq!(a.imports.len(), b.imports.len(), "number of imports");
    for (i, (x, y)) in a.imports.iter().zip(&b.imports).enumerate() {
        check_import(&format!("import {i}"), x, y);
    }

    // Exports keep their order, and lookup by name finds each one.
    assert_eq!(a.exports.len(), b.exports.len(), "number of exports");
    for (pos, ((an, ae), (bn, be))) in a.exports.iter().zip(&b.exports).enumerate() {
        assert_eq!(an.as_str(), bn, "export {pos}: name (order)");
        assert_eq!(ae.native(), *be, "export {pos}: index");
        let found = a.exports.get(bn.as_str()).map(ArchivedEntityIndex::native);
        assert_eq!(found, Some(*be), "export `{bn}` by name");
        assert_eq!(a.exports.get_index_of(bn.as_str()), Some(pos));
    }

    assert_eq!(a.functions.len(), b.functions.len(), "number of functions");
    for (i, f) in b.functions.iter() {
        let x = &a.functions[i];
        assert_eq!(x.ty.native(), f.ty, "function {i}: type");
        assert_eq!(x.signature.native(), f.signature, "function {i}: signature");
    }
    assert_eq!(a.tables.len(), b.tables.len(), "number of tables");
    for (i, t) in b.tables.iter() {
        check_table(&format!("table {i}"), &a.tables[i], t);
    }
    assert_eq!(a.memories.len(), b.memories.len(), "number of memories");
    for (i, m) in b.memories.iter() {
        check_memory(&format!("memory {i}"), &a.memories[i], m);
    }
    assert_eq!(a.globals.len(), b.globals.len(), "number of globals");
    for (i, g) in b.globals.iter() {
        let x = &a.globals[i];
        check_global_type(&format!("global {i}"), &x.ty, &g.ty);
        match (opt(&x.init), &g.init) {
            (None, None) => {}
            (Some(x), Some(y)) => check_const(&format!("global {i}: init"), x, y),
            (x, y) => panic!("global {i}: init {x:?} != {y:?}"),
        }
    }

    assert_eq!(a.num_imported_funcs.to_native(), b.num_imported_funcs);
    assert_eq!(a.num_imported_tables.to_native(), b.num_imported_tables);
    assert_eq!(a.num_imported_memories.to_native(), b.num_imported_memories);
    assert_eq!(a.num_imported_globals.to_native(), b.num_imported_globals);

    assert_eq!(a.data.len(), b.data.len(), "number of data segments");
    for (i, d) in b.data.iter() {
        check_data(&format!("data {i}"), &a.data[i], d);
    }
    assert_eq!(
        a.elements.len(),
        b.elements.len(),
        "number of elem segments"
    );
    for (i, e) in b.elements.iter() {
        check_elem(&format!("elem {i}"), &a.elements[i], e);
    }
    assert_eq!(
        opt(&a.start).map(ArchivedFuncIndex::native),
        b.start,
        "start"
    );

    assert_eq!(a.compiled.len(), b.compiled.len(), "number of bodies");
    for (i, c) in b.compiled.iter() {
        let x = &a.compiled[i];
        check_range(&format!("body {i}"), &x.body, &c.body);
        assert_eq!(x.wasm_offset.to_native(), c.wasm_offset, "body {i}: offset");
    }
    assert_eq!(
        a.trampolines.len(),
        b.trampolines.len(),
        "number of trampolines"
    );
    for (i, t) in b.trampolines.iter() {
        let x = &a.trampolines[i];
        check_range(
            &format!("trampoline {i}"),
            &x.array_to_wasm,
            &t.array_to_wasm,
        );
        check_range(
            &format!("trampoline {i}"),
            &x.wasm_to_array,
            &t.wasm_to_array,
        );
    }

    assert_eq!(a.traps.len(), b.traps.len(), "number of traps");
    for (i, (x, y)) in a.traps.iter().zip(b.traps.records()).enumerate() {
        assert_eq!(x, y, "trap {i}");
    }
    assert_eq!(
        a.call_sites.len(),
        b.call_sites.len(),
        "number of call sites"
    );
    for (i, (x, y)) in a.call_sites.iter().zip(&b.call_sites).enumerate() {
        assert_eq!(
            x.return_offset.to_native(),
            y.return_offset,
            "call site {i}"
        );
        assert_eq!(x.wasm_offset.to_native(), y.wasm_offset, "call site {i}");
    }
    assert_eq!(a.func_names.len(), b.func_names.len(), "number of names");
    for (i, (x, y)) in a.func_names.iter().zip(&b.func_names).enumerate() {
        assert_eq!(x.func.native(), y.func, "name {i}");
        assert_eq!(x.name.as_str(), y.name, "name {i}");
    }
}

/// The lookups the runtime makes on the archive agree with a search of the original.
fn check_lookups(a: &ArchivedModuleInfo, b: &ModuleInfo) {
    for c in &b.call_sites {
        assert_eq!(a.lookup_call_site(c.return_offset), Some(c.wasm_offset));
    }
    for t in b.traps.records() {
        let found = a
            .lookup_trap(t.code_offset)
            .expect("recorded trap is found");
        assert_eq!(found, t);
    }
    for n in &b.func_names {
        assert_eq!(a.func_name(n.func), Some(n.name.as_str()));
    }
    for (i, c) in b.compiled.iter() {
        assert_eq!(a.func_at_code_offset(c.body.start), Some(i));
        assert_eq!(a.func_at_code_offset(c.body.end().unwrap() - 1), Some(i));
    }
    for f in 0..b.functions.len() as u32 {
        let f = FuncIndex(f);
        assert_eq!(a.defined_func_index(f), b.defined_func_index(f));
    }
    assert_eq!(a.vmoffsets(8), b.vmoffsets(8));
}

fn roundtrip(g: &Generated) {
    let bytes = archive_metadata(&g.info).expect("archive");
    let archived = rkyv::access::<ArchivedModuleInfo, rkyv::rancor::Error>(&bytes)
        .expect("a fresh archive validates");
    check_archived(archived, &g.info);
    check_lookups(archived, &g.info);

    let back = rkyv::deserialize::<ModuleInfo, rkyv::rancor::Error>(archived).expect("deserialize");
    assert_eq!(back, g.info);
    // Export order survives deserialisation too.
    assert!(back.exports.keys().eq(g.info.exports.keys()));

    // The semantic checks accept what the generator calls consistent.
    let checked = access_checked(&bytes, g.code.len() as u64, g.data.len() as u64)
        .expect("generated metadata is consistent");
    check_archived(checked, &g.info);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn archive_preserves_every_field(g in generated()) {
        roundtrip(&g);
    }

    #[test]
    fn build_artifact_is_deterministic(g in generated(), align_pow in 4u32..17) {
        let compat = host_compat();
        let align = 1u64 << align_pow;
        let first = build_artifact(&g.parts(&compat, align)).unwrap();
        // An independently built equal value gives the same bytes.
        let copy = g.clone();
        let second = build_artifact(&copy.parts(&compat, align)).unwrap();
        prop_assert!(first == second, "two builds of equal parts differ");

        let (header, info) = open_checked(&first, &compat).expect("open_checked accepts a fresh artifact");
        check_archived(info, &g.info);
        check_header(&header, &first, &g, &compat, align);
    }
}

fn check_header(header: &Header, file: &[u8], g: &Generated, compat: &CompatInfo, align: u64) {
    assert_eq!(header.format_version, FORMAT_VERSION);
    assert_eq!(header.kiln_version, KILN_VERSION);
    assert_eq!(&header.compat, compat);
    assert_eq!(header.metadata.offset, HEADER_SIZE as u64);
    assert_eq!(header.metadata.offset % 16, 0);
    assert_eq!(
        header.code.offset % align.max(16),
        0,
        "text section alignment"
    );
    assert_eq!(header.code.len, g.code.len() as u64);
    assert_eq!(header.data.len, g.data.len() as u64);
    assert!(header.metadata.offset + header.metadata.len <= header.code.offset);
    assert!(header.code.offset + header.code.len <= header.data.offset);
    assert_eq!(header.data.offset + header.data.len, file.len() as u64);
    let code = header.code.bounds(file.len()).unwrap();
    assert_eq!(&file[code], &g.code[..]);
    let data = header.data.bounds(file.len()).unwrap();
    assert_eq!(&file[data], &g.data[..]);
    let meta = header.metadata.bounds(file.len()).unwrap();
    assert_eq!(&file[meta], &archive_metadata(&g.info).unwrap()[..]);
    assert_eq!(header.checksum, header::checksum(file));

    // encode ∘ parse is the identity on the header bytes.
    assert_eq!(&header.encode().unwrap()[..], &file[..HEADER_SIZE]);
    assert_eq!(&Header::parse(file).unwrap(), header);
}

#[test]
fn empty_module_roundtrips() {
    let g = Generated {
        info: ModuleInfo {
            function_alignment: 16,
            ..ModuleInfo::default()
        },
        code: Vec::new(),
        data: Vec::new(),
    };
    roundtrip(&g);
    let compat = host_compat();
    let file = build_artifact(&g.parts(&compat, 4096)).unwrap();
    let (header, info) = open_checked(&file, &compat).unwrap();
    check_archived(info, &g.info);
    check_header(&header, &file, &g, &compat, 4096);
}

#[test]
fn export_order_is_not_sorted_order() {
    // A hand-made case where insertion order, sorted order and hash order all differ.
    let mut g = Generated {
        info: ModuleInfo {
            function_alignment: 16,
            ..ModuleInfo::default()
        },
        code: vec![0xcc; 48],
        data: Vec::new(),
    };
    let ty = g.info.types.push(FuncType::new([], []));
    g.info.functions.push(FuncDecl {
        ty,
        signature: g.info.types[ty].signature_id(),
    });
    g.info.compiled.push(CompiledFunction {
        body: ByteRange { start: 0, len: 4 },
        wasm_offset: 0,
        trap_count: 0,
    });
    g.info.trampolines.push(TypeTrampolines {
        array_to_wasm: ByteRange { start: 16, len: 4 },
        wasm_to_array: ByteRange { start: 32, len: 4 },
    });
    let f = EntityIndex::Function(FuncIndex(0));
    g.info.exports = common::exports_of(&[("zeta", f), ("alpha", f), ("mid", f), ("", f)]);
    roundtrip(&g);
    let bytes = archive_metadata(&g.info).unwrap();
    let a = rkyv::access::<ArchivedModuleInfo, rkyv::rancor::Error>(&bytes).unwrap();
    let names: Vec<&str> = a.exports.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid", ""]);
}

#[test]
fn header_fields_roundtrip() {
    let compat = CompatInfo {
        target: "aarch64-unknown-linux-gnu".to_owned(),
        cpu_features: "x".repeat(160),
        settings: CodegenSettings {
            opt_level: OptLevel::SpeedAndSize,
            bounds_checks: BoundsChecks::Explicit,
            proposals: Proposals::WASM2,
            canonicalize_nans: true,
            epoch_interruption: true,
            spectre_guards: false,
        }
        .encode(),
        pointer_size: 8,
    };
    let header = Header {
        format_version: FORMAT_VERSION,
        kiln_version: KILN_VERSION.to_owned(),
        compat: compat.clone(),
        metadata: SectionRange {
            offset: 512,
            len: 0,
        },
        code: SectionRange {
            offset: 512,
            len: 0,
        },
        data: SectionRange {
            offset: 512,
            len: 0,
        },
        checksum: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        seal: [0x5a; 32],
    };
    let bytes = header.encode().unwrap();
    assert_eq!(Header::parse(&bytes).unwrap(), header);

    // A field one byte too long for its slot is refused when writing.
    let mut long = header.clone();
    long.compat.target = "t".repeat(65);
    assert!(matches!(
        long.encode(),
        Err(ArtifactError::FieldTooLong { max: 64, .. })
    ));
}

#[test]
fn generator_covers_every_shape() {
    // Guards the strength of the properties above: the generator must produce imports of
    // every kind, long signatures, global.get/ref.func constants, active segments and so on.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let g = generated().new_tree(&mut runner).unwrap().current();
        let i = &g.info;
        let mut note = |what: &'static str, yes: bool| {
            if yes {
                seen.insert(what);
            }
        };
        note("name", i.name.is_some());
        note(
            "long signature",
            i.types
                .values()
                .any(|t| t.params.len() + t.results.len() > 17),
        );
        for imp in &i.imports {
            note(
                match imp.index {
                    EntityIndex::Function(_) => "func import",
                    EntityIndex::Table(_) => "table import",
                    EntityIndex::Memory(_) => "memory import",
                    EntityIndex::Global(_) => "global import",
                },
                true,
            );
        }
        note("interleaved imports", {
            let kinds: Vec<u8> = i
                .imports
                .iter()
                .map(|x| match x.index {
                    EntityIndex::Function(_) => 0,
                    EntityIndex::Table(_) => 1,
                    EntityIndex::Memory(_) => 2,
                    EntityIndex::Global(_) => 3,
                })
                .collect();
            !kinds.is_sorted()
        });
        note("exports", i.exports.len() > 3);
        note(
            "defined tables",
            i.tables.len() > i.num_imported_tables as usize,
        );
        note(
            "defined memories",
            i.memories.len() > i.num_imported_memories as usize,
        );
        for g in i.globals.values() {
            match g.init {
                Some(ConstExpr::GlobalGet(_)) => note("global.get init", true),
                Some(ConstExpr::RefFunc(_)) => note("ref.func init", true),
                Some(ConstExpr::V128(_)) => note("v128 init", true),
                _ => {}
            }
        }
        note(
            "active data",
            i.data
                .values()
                .any(|d| matches!(d.kind, DataKind::Active { .. })),
        );
        note(
            "passive data",
            i.data.values().any(|d| d.kind == DataKind::Passive),
        );
        note(
            "active elem",
            i.elements
                .values()
                .any(|e| matches!(e.kind, ElemKind::Active { .. })),
        );
        note(
            "declared elem",
            i.elements.values().any(|e| e.kind == ElemKind::Declared),
        );
        note(
            "elem funcs",
            i.elements
                .values()
                .any(|e| matches!(&e.items, ElemItems::Functions(f) if !f.is_empty())),
        );
        note(
            "elem exprs",
            i.elements
                .values()
                .any(|e| matches!(&e.items, ElemItems::Exprs(x) if !x.is_empty())),
        );
        note("start", i.start.is_some());
        note("traps", i.traps.len() > 3);
        note("func names", i.func_names.len() > 2);
    }
    let all = [
        "name",
        "long signature",
        "func import",
        "table import",
        "memory import",
        "global import",
        "interleaved imports",
        "exports",
        "defined tables",
        "defined memories",
        "global.get init",
        "ref.func init",
        "v128 init",
        "active data",
        "passive data",
        "active elem",
        "declared elem",
        "elem funcs",
        "elem exprs",
        "start",
        "traps",
        "func names",
    ];
    let missing: Vec<_> = all.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "generator never produced: {missing:?}");
}
