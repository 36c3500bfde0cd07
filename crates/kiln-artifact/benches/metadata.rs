//! What it costs to get at a large module's metadata: read it in place, validate it,
//! deserialise it with rkyv, or decode the same data with bincode.
//!
//! Reproduces Wasmer's 2021 comparison (bincode 3.4 ms, rkyv deserialise 386 µs, in place
//! 22 ns) on Kiln's own `ModuleInfo`. The module is generated with wasm-encoder and turned
//! into a `ModuleInfo` by a small wasmparser reader below; its code ranges and trap records
//! are fake but plausible, since only the metadata is measured.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_artifact::artifact::archive_metadata;
use kiln_artifact::*;

const NUM_TYPES: u32 = 300;
const NUM_FUNC_IMPORTS: u32 = 200;
const NUM_GLOBAL_IMPORTS: u32 = 16;
const NUM_FUNCS: u32 = 12_000;
const NUM_GLOBALS: u32 = 200;
const NUM_DATA: u32 = 300;
/// Every fifth function is exported, plus the globals, the memory and the table.
const FUNC_EXPORT_STRIDE: u32 = 5;

// ---- the module ----

fn wasm_val(i: u32) -> wasm_encoder::ValType {
    use wasm_encoder::ValType as V;
    [V::I32, V::I64, V::F32, V::F64][i as usize % 4]
}

fn push_const(f: &mut wasm_encoder::Function, ty: wasm_encoder::ValType, v: u32) {
    use wasm_encoder::ValType as V;
    let mut ins = f.instructions();
    match ty {
        V::I32 => ins.i32_const(v as i32),
        V::I64 => ins.i64_const(i64::from(v)),
        V::F32 => ins.f32_const((v as f32).into()),
        _ => ins.f64_const(f64::from(v).into()),
    };
}

/// A large module: many types, imports, functions, exports, globals and data segments.
fn large_module() -> Vec<u8> {
    use wasm_encoder::*;
    let mut module = Module::new();

    let mut types = TypeSection::new();
    let mut sigs = Vec::new();
    for i in 0..NUM_TYPES {
        let params: Vec<ValType> = (0..i % 7).map(|k| wasm_val(i + k)).collect();
        let results: Vec<ValType> = if i % 3 == 0 {
            vec![]
        } else {
            vec![wasm_val(i)]
        };
        types.ty().function(params.clone(), results.clone());
        sigs.push((params, results));
    }
    module.section(&types);

    let mut imports = ImportSection::new();
    for i in 0..NUM_FUNC_IMPORTS {
        imports.import(
            "env",
            &format!("host_{i}"),
            EntityType::Function(i % NUM_TYPES),
        );
    }
    for i in 0..NUM_GLOBAL_IMPORTS {
        let ty = GlobalType {
            val_type: wasm_val(i),
            mutable: false,
            shared: false,
        };
        imports.import("env", &format!("g_{i}"), ty);
    }
    module.section(&imports);

    let mut functions = FunctionSection::new();
    for i in 0..NUM_FUNCS {
        functions.function(i % NUM_TYPES);
    }
    module.section(&functions);

    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: 1024,
        maximum: None,
        shared: false,
    });
    module.section(&tables);

    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 16,
        maximum: Some(1024),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);

    let mut globals = GlobalSection::new();
    for i in 0..NUM_GLOBALS {
        let val_type = wasm_val(i);
        let init = if i % 4 == 0 {
            // global.get of the imported global of the same type.
            ConstExpr::global_get(i % 4)
        } else {
            match val_type {
                ValType::I32 => ConstExpr::i32_const(i as i32),
                ValType::I64 => ConstExpr::i64_const(i64::from(i)),
                ValType::F32 => ConstExpr::f32_const((i as f32).into()),
                _ => ConstExpr::f64_const(f64::from(i).into()),
            }
        };
        let ty = GlobalType {
            val_type,
            mutable: true,
            shared: false,
        };
        globals.global(ty, &init);
    }
    module.section(&globals);

    let mut exports = ExportSection::new();
    let num_imported = NUM_FUNC_IMPORTS;
    for i in (0..NUM_FUNCS).step_by(FUNC_EXPORT_STRIDE as usize) {
        exports.export(&format!("func_{i}"), ExportKind::Func, num_imported + i);
    }
    for i in 0..NUM_GLOBALS {
        exports.export(
            &format!("global_{i}"),
            ExportKind::Global,
            NUM_GLOBAL_IMPORTS + i,
        );
    }
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("table", ExportKind::Table, 0);
    module.section(&exports);

    let mut elements = ElementSection::new();
    let funcs: Vec<u32> = (0..1024).map(|i| num_imported + i * 7).collect();
    elements.active(
        None,
        &ConstExpr::i32_const(0),
        Elements::Functions(funcs.into()),
    );
    module.section(&elements);

    let mut code = CodeSection::new();
    for i in 0..NUM_FUNCS {
        let (params, results) = &sigs[(i % NUM_TYPES) as usize];
        let mut f = Function::new([]);
        // A few instructions of filler so that bodies differ in size.
        for k in 0..i % 5 {
            f.instructions().i32_const(k as i32).drop();
        }
        if !params.is_empty() {
            f.instructions().local_get(0).drop();
        }
        for r in results {
            push_const(&mut f, *r, i);
        }
        f.instructions().end();
        code.function(&f);
    }
    module.section(&code);

    let mut data = DataSection::new();
    for i in 0..NUM_DATA {
        let bytes: Vec<u8> = (0..32).map(|k| (i + k) as u8).collect();
        data.active(0, &ConstExpr::i32_const((i * 64) as i32), bytes);
    }
    module.section(&data);

    let mut names = NameSection::new();
    names.module("large");
    let mut func_names = NameMap::new();
    for i in 0..NUM_FUNC_IMPORTS + NUM_FUNCS {
        func_names.append(i, &format!("function_number_{i}"));
    }
    names.functions(&func_names);
    module.section(&names);

    module.finish()
}

// ---- a small reader: wasm bytes to ModuleInfo with fake code ----

fn val_type(t: wasmparser::ValType) -> ValType {
    match t {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => ref_val(r),
    }
}

fn ref_type(r: wasmparser::RefType) -> RefType {
    if r == wasmparser::RefType::EXTERNREF {
        RefType::ExternRef
    } else {
        RefType::FuncRef
    }
}

fn ref_val(r: wasmparser::RefType) -> ValType {
    match ref_type(r) {
        RefType::FuncRef => ValType::FuncRef,
        RefType::ExternRef => ValType::ExternRef,
    }
}

fn const_expr(e: &wasmparser::ConstExpr<'_>) -> ConstExpr {
    use wasmparser::Operator as O;
    let mut ops = e.get_operators_reader();
    match ops.read().expect("constant expression") {
        O::I32Const { value } => ConstExpr::I32(value),
        O::I64Const { value } => ConstExpr::I64(value),
        O::F32Const { value } => ConstExpr::F32(value.bits()),
        O::F64Const { value } => ConstExpr::F64(value.bits()),
        O::GlobalGet { global_index } => ConstExpr::GlobalGet(GlobalIndex(global_index)),
        O::RefFunc { function_index } => ConstExpr::RefFunc(FuncIndex(function_index)),
        O::RefNull {
            hty:
                wasmparser::HeapType::Abstract {
                    ty: wasmparser::AbstractHeapType::Extern,
                    ..
                },
        } => ConstExpr::RefNull(RefType::ExternRef),
        O::RefNull { .. } => ConstExpr::RefNull(RefType::FuncRef),
        op => panic!("unsupported constant {op:?}"),
    }
}

struct Parsed {
    info: ModuleInfo,
    code: Vec<u8>,
    data: Vec<u8>,
}

/// Reads the module's sections into a `ModuleInfo`. Each body gets 3 bytes of machine code
/// per byte of wasm (16-aligned), two trap records, and each type two 48-byte trampolines.
fn module_info(wasm: &[u8]) -> Parsed {
    use wasmparser::{Payload, TypeRef};
    let mut info = ModuleInfo {
        function_alignment: 16,
        ..ModuleInfo::default()
    };
    let mut data = Vec::new();
    let mut traps = Vec::new();
    let mut code_offset = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.expect("valid module") {
            Payload::TypeSection(r) => {
                for t in r.into_iter_err_on_gc_types() {
                    let t = t.unwrap();
                    info.types.push(FuncType::new(
                        t.params().iter().copied().map(val_type),
                        t.results().iter().copied().map(val_type),
                    ));
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.unwrap();
                    let index = match imp.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            info.num_imported_funcs += 1;
                            EntityIndex::Function(info.functions.push(decl(&info, t)))
                        }
                        TypeRef::Table(t) => {
                            info.num_imported_tables += 1;
                            EntityIndex::Table(info.tables.push(table_type(t)))
                        }
                        TypeRef::Memory(m) => {
                            info.num_imported_memories += 1;
                            EntityIndex::Memory(info.memories.push(memory_type(m)))
                        }
                        TypeRef::Global(g) => {
                            info.num_imported_globals += 1;
                            EntityIndex::Global(info.globals.push(GlobalDecl {
                                ty: global_type(g),
                                init: None,
                            }))
                        }
                        TypeRef::Tag(_) => panic!("tags are not supported"),
                    };
                    info.imports.push(Import {
                        module: imp.module.to_owned(),
                        name: imp.name.to_owned(),
                        index,
                    });
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    let d = decl(&info, t.unwrap());
                    info.functions.push(d);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    info.tables.push(table_type(t.unwrap().ty));
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    info.memories.push(memory_type(m.unwrap()));
                }
            }
            Payload::GlobalSection(r) => {
                for g in r {
                    let g = g.unwrap();
                    info.globals.push(GlobalDecl {
                        ty: global_type(g.ty),
                        init: Some(const_expr(&g.init_expr)),
                    });
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.unwrap();
                    let index = match e.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            EntityIndex::Function(FuncIndex(e.index))
                        }
                        wasmparser::ExternalKind::Table => EntityIndex::Table(TableIndex(e.index)),
                        wasmparser::ExternalKind::Memory => {
                            EntityIndex::Memory(MemoryIndex(e.index))
                        }
                        wasmparser::ExternalKind::Global => {
                            EntityIndex::Global(GlobalIndex(e.index))
                        }
                        wasmparser::ExternalKind::Tag => panic!("tags are not supported"),
                    };
                    info.exports.insert(e.name.to_owned(), index);
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(FuncIndex(func)),
            Payload::ElementSection(r) => {
                for e in r {
                    let e = e.unwrap();
                    let kind = match e.kind {
                        wasmparser::ElementKind::Passive => ElemKind::Passive,
                        wasmparser::ElementKind::Declared => ElemKind::Declared,
                        wasmparser::ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElemKind::Active {
                            table: TableIndex(table_index.unwrap_or(0)),
                            offset: const_expr(&offset_expr),
                        },
                    };
                    let (element, items) = match e.items {
                        wasmparser::ElementItems::Functions(fs) => (
                            RefType::FuncRef,
                            ElemItems::Functions(
                                fs.into_iter().map(|f| FuncIndex(f.unwrap())).collect(),
                            ),
                        ),
                        wasmparser::ElementItems::Expressions(ty, es) => (
                            ref_type(ty),
                            ElemItems::Exprs(
                                es.into_iter().map(|x| const_expr(&x.unwrap())).collect(),
                            ),
                        ),
                    };
                    info.elements.push(ElemSegment {
                        kind,
                        element,
                        items,
                    });
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    let d = d.unwrap();
                    let bytes = ByteRange {
                        start: data.len() as u32,
                        len: d.data.len() as u32,
                    };
                    data.extend_from_slice(d.data);
                    let kind = match d.kind {
                        wasmparser::DataKind::Passive => DataKind::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataKind::Active {
                            memory: MemoryIndex(memory_index),
                            offset: const_expr(&offset_expr),
                        },
                    };
                    info.data.push(DataSegment { kind, bytes });
                }
            }
            Payload::CodeSectionEntry(body) => {
                let range = body.range();
                let len = ((range.end - range.start) as u32 * 3).div_ceil(16) * 16;
                info.compiled.push(CompiledFunction {
                    body: ByteRange {
                        start: code_offset,
                        len,
                    },
                    wasm_offset: range.start as u32,
                    trap_count: 2,
                });
                for (k, code) in [
                    (0, TrapCode::StackOverflow),
                    (1, TrapCode::MemoryOutOfBounds),
                ] {
                    traps.push(TrapRecord {
                        code_offset: code_offset + 4 + k * 8,
                        wasm_offset: range.start as u32 + k,
                        code,
                    });
                }
                code_offset += len;
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    for n in names {
                        match n.unwrap() {
                            wasmparser::Name::Module { name, .. } => {
                                info.name = Some(name.to_owned())
                            }
                            wasmparser::Name::Function(map) => {
                                for n in map {
                                    let n = n.unwrap();
                                    info.func_names.push(FuncName {
                                        func: FuncIndex(n.index),
                                        name: n.name.to_owned(),
                                    });
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for _ in 0..info.types.len() {
        info.trampolines.push(TypeTrampolines {
            array_to_wasm: ByteRange {
                start: code_offset,
                len: 48,
            },
            wasm_to_array: ByteRange {
                start: code_offset + 48,
                len: 48,
            },
        });
        code_offset += 96;
    }
    info.func_names.sort_by_key(|n| n.func);
    info.traps = TrapTable::from_records(&traps);
    let code = (0..code_offset).map(|i| (i as u8) ^ 0xcc).collect();
    Parsed { info, code, data }
}

fn decl(info: &ModuleInfo, ty: u32) -> FuncDecl {
    let ty = TypeIndex(ty);
    FuncDecl {
        ty,
        signature: info.types[ty].signature_id(),
    }
}

fn table_type(t: wasmparser::TableType) -> TableType {
    TableType {
        element: ref_type(t.element_type),
        min: t.initial as u32,
        max: t.maximum.map(|m| m as u32),
    }
}

fn memory_type(m: wasmparser::MemoryType) -> MemoryType {
    MemoryType {
        min: m.initial,
        max: m.maximum,
        memory64: m.memory64,
        shared: m.shared,
    }
}

fn global_type(g: wasmparser::GlobalType) -> GlobalType {
    GlobalType {
        content: val_type(g.content_type),
        mutable: g.mutable,
    }
}

// ---- the bincode side: serde mirrors of the metadata types ----

mod mirror {
    //! `ModuleInfo` with serde derives, converted in both directions, for bincode.

    use kiln_artifact as k;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Clone, Copy)]
    pub enum ValType {
        I32,
        I64,
        F32,
        F64,
        V128,
        FuncRef,
        ExternRef,
    }

    #[derive(Serialize, Deserialize, Clone, Copy)]
    pub enum RefType {
        FuncRef,
        ExternRef,
    }

    #[derive(Serialize, Deserialize)]
    pub struct FuncType {
        pub params: Vec<ValType>,
        pub results: Vec<ValType>,
    }

    #[derive(Serialize, Deserialize, Clone, Copy)]
    pub enum EntityIndex {
        Function(u32),
        Table(u32),
        Memory(u32),
        Global(u32),
    }

    #[derive(Serialize, Deserialize)]
    pub struct Import {
        pub module: String,
        pub name: String,
        pub index: EntityIndex,
    }

    #[derive(Serialize, Deserialize)]
    pub struct FuncDecl {
        pub ty: u32,
        pub signature: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct TableType {
        pub element: RefType,
        pub min: u32,
        pub max: Option<u32>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct MemoryType {
        pub min: u64,
        pub max: Option<u64>,
        pub memory64: bool,
        pub shared: bool,
    }

    #[derive(Serialize, Deserialize, Clone, Copy)]
    pub enum ConstExpr {
        I32(i32),
        I64(i64),
        F32(u32),
        F64(u64),
        V128(u128),
        GlobalGet(u32),
        RefNull(RefType),
        RefFunc(u32),
    }

    #[derive(Serialize, Deserialize)]
    pub struct GlobalDecl {
        pub content: ValType,
        pub mutable: bool,
        pub init: Option<ConstExpr>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct ByteRange {
        pub start: u32,
        pub len: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub enum DataKind {
        Active { memory: u32, offset: ConstExpr },
        Passive,
    }

    #[derive(Serialize, Deserialize)]
    pub struct DataSegment {
        pub kind: DataKind,
        pub bytes: ByteRange,
    }

    #[derive(Serialize, Deserialize)]
    pub enum ElemKind {
        Active { table: u32, offset: ConstExpr },
        Passive,
        Declared,
    }

    #[derive(Serialize, Deserialize)]
    pub enum ElemItems {
        Functions(Vec<u32>),
        Exprs(Vec<ConstExpr>),
    }

    #[derive(Serialize, Deserialize)]
    pub struct ElemSegment {
        pub kind: ElemKind,
        pub element: RefType,
        pub items: ElemItems,
    }

    #[derive(Serialize, Deserialize)]
    pub struct CompiledFunction {
        pub body: ByteRange,
        pub wasm_offset: u32,
        pub trap_count: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub struct TypeTrampolines {
        pub array_to_wasm: ByteRange,
        pub wasm_to_array: ByteRange,
    }

    #[derive(Serialize, Deserialize)]
    pub struct TrapRecord {
        pub code_offset: u32,
        pub wasm_offset: u32,
        pub code: u8,
    }

    #[derive(Serialize, Deserialize)]
    pub struct FuncName {
        pub func: u32,
        pub name: String,
    }

    /// The same data as `kiln_artifact::ModuleInfo`; exports as an ordered list of pairs
    /// (the conversion back builds the export index).
    #[derive(Serialize, Deserialize)]
    pub struct ModuleInfo {
        pub name: Option<String>,
        pub types: Vec<FuncType>,
        pub imports: Vec<Import>,
        pub exports: Vec<(String, EntityIndex)>,
        pub functions: Vec<FuncDecl>,
        pub tables: Vec<TableType>,
        pub memories: Vec<MemoryType>,
        pub globals: Vec<GlobalDecl>,
        pub num_imported_funcs: u32,
        pub num_imported_tables: u32,
        pub num_imported_memories: u32,
        pub num_imported_globals: u32,
        pub data: Vec<DataSegment>,
        pub elements: Vec<ElemSegment>,
        pub start: Option<u32>,
        pub compiled: Vec<CompiledFunction>,
        pub trampolines: Vec<TypeTrampolines>,
        pub traps: Vec<TrapRecord>,
        pub call_sites: Vec<(u32, u32)>,
        pub func_names: Vec<FuncName>,
        pub function_alignment: u32,
        pub source: ([u8; 16], [u8; 32]),
    }

    fn val(t: k::ValType) -> ValType {
        match t {
            k::ValType::I32 => ValType::I32,
            k::ValType::I64 => ValType::I64,
            k::ValType::F32 => ValType::F32,
            k::ValType::F64 => ValType::F64,
            k::ValType::V128 => ValType::V128,
            k::ValType::FuncRef => ValType::FuncRef,
            k::ValType::ExternRef => ValType::ExternRef,
        }
    }

    fn val_back(t: ValType) -> k::ValType {
        match t {
            ValType::I32 => k::ValType::I32,
            ValType::I64 => k::ValType::I64,
            ValType::F32 => k::ValType::F32,
            ValType::F64 => k::ValType::F64,
            ValType::V128 => k::ValType::V128,
            ValType::FuncRef => k::ValType::FuncRef,
            ValType::ExternRef => k::ValType::ExternRef,
        }
    }

    fn rt(t: k::RefType) -> RefType {
        match t {
            k::RefType::FuncRef => RefType::FuncRef,
            k::RefType::ExternRef => RefType::ExternRef,
        }
    }

    fn rt_back(t: RefType) -> k::RefType {
        match t {
            RefType::FuncRef => k::RefType::FuncRef,
            RefType::ExternRef => k::RefType::ExternRef,
        }
    }

    fn ent(e: k::EntityIndex) -> EntityIndex {
        match e {
            k::EntityIndex::Function(i) => EntityIndex::Function(i.0),
            k::EntityIndex::Table(i) => EntityIndex::Table(i.0),
            k::EntityIndex::Memory(i) => EntityIndex::Memory(i.0),
            k::EntityIndex::Global(i) => EntityIndex::Global(i.0),
        }
    }

    fn ent_back(e: EntityIndex) -> k::EntityIndex {
        match e {
            EntityIndex::Function(i) => k::EntityIndex::Function(k::FuncIndex(i)),
            EntityIndex::Table(i) => k::EntityIndex::Table(k::TableIndex(i)),
            EntityIndex::Memory(i) => k::EntityIndex::Memory(k::MemoryIndex(i)),
            EntityIndex::Global(i) => k::EntityIndex::Global(k::GlobalIndex(i)),
        }
    }

    fn cexpr(e: k::ConstExpr) -> ConstExpr {
        match e {
            k::ConstExpr::I32(v) => ConstExpr::I32(v),
            k::ConstExpr::I64(v) => ConstExpr::I64(v),
            k::ConstExpr::F32(v) => ConstExpr::F32(v),
            k::ConstExpr::F64(v) => ConstExpr::F64(v),
            k::ConstExpr::V128(v) => ConstExpr::V128(v),
            k::ConstExpr::GlobalGet(g) => ConstExpr::GlobalGet(g.0),
            k::ConstExpr::RefNull(r) => ConstExpr::RefNull(rt(r)),
            k::ConstExpr::RefFunc(f) => ConstExpr::RefFunc(f.0),
        }
    }

    fn cexpr_back(e: ConstExpr) -> k::ConstExpr {
        match e {
            ConstExpr::I32(v) => k::ConstExpr::I32(v),
            ConstExpr::I64(v) => k::ConstExpr::I64(v),
            ConstExpr::F32(v) => k::ConstExpr::F32(v),
            ConstExpr::F64(v) => k::ConstExpr::F64(v),
            ConstExpr::V128(v) => k::ConstExpr::V128(v),
            ConstExpr::GlobalGet(g) => k::ConstExpr::GlobalGet(k::GlobalIndex(g)),
            ConstExpr::RefNull(r) => k::ConstExpr::RefNull(rt_back(r)),
            ConstExpr::RefFunc(f) => k::ConstExpr::RefFunc(k::FuncIndex(f)),
        }
    }

    fn range(r: k::ByteRange) -> ByteRange {
        ByteRange {
            start: r.start,
            len: r.len,
        }
    }

    fn range_back(r: &ByteRange) -> k::ByteRange {
        k::ByteRange {
            start: r.start,
            len: r.len,
        }
    }

    impl From<&k::ModuleInfo> for ModuleInfo {
        fn from(m: &k::ModuleInfo) -> Self {
            ModuleInfo {
                name: m.name.clone(),
                types: m
                    .types
                    .values()
                    .map(|t| FuncType {
                        params: t.params.iter().copied().map(val).collect(),
                        results: t.results.iter().copied().map(val).collect(),
                    })
                    .collect(),
                imports: m
                    .imports
                    .iter()
                    .map(|i| Import {
                        module: i.module.clone(),
                        name: i.name.clone(),
                        index: ent(i.index),
                    })
                    .collect(),
                exports: m
                    .exports
                    .iter()
                    .map(|(n, e)| (n.clone(), ent(*e)))
                    .collect(),
                functions: m
                    .functions
                    .values()
                    .map(|f| FuncDecl {
                        ty: f.ty.0,
                        signature: f.signature.0,
                    })
                    .collect(),
                tables: m
                    .tables
                    .values()
                    .map(|t| TableType {
                        element: rt(t.element),
                        min: t.min,
                        max: t.max,
                    })
                    .collect(),
                memories: m
                    .memories
                    .values()
                    .map(|t| MemoryType {
                        min: t.min,
                        max: t.max,
                        memory64: t.memory64,
                        shared: t.shared,
                    })
                    .collect(),
                globals: m
                    .globals
                    .values()
                    .map(|g| GlobalDecl {
                        content: val(g.ty.content),
                        mutable: g.ty.mutable,
                        init: g.init.map(cexpr),
                    })
                    .collect(),
                num_imported_funcs: m.num_imported_funcs,
                num_imported_tables: m.num_imported_tables,
                num_imported_memories: m.num_imported_memories,
                num_imported_globals: m.num_imported_globals,
                data: m
                    .data
                    .values()
                    .map(|d| DataSegment {
                        kind: match d.kind {
                            k::DataKind::Active { memory, offset } => DataKind::Active {
                                memory: memory.0,
                                offset: cexpr(offset),
                            },
                            k::DataKind::Passive => DataKind::Passive,
                        },
                        bytes: range(d.bytes),
                    })
                    .collect(),
                elements: m
                    .elements
                    .values()
                    .map(|e| ElemSegment {
                        kind: match e.kind {
                            k::ElemKind::Active { table, offset } => ElemKind::Active {
                                table: table.0,
                                offset: cexpr(offset),
                            },
                            k::ElemKind::Passive => ElemKind::Passive,
                            k::ElemKind::Declared => ElemKind::Declared,
                        },
                        element: rt(e.element),
                        items: match &e.items {
                            k::ElemItems::Functions(fs) => {
                                ElemItems::Functions(fs.iter().map(|f| f.0).collect())
                            }
                            k::ElemItems::Exprs(es) => {
                                ElemItems::Exprs(es.iter().copied().map(cexpr).collect())
                            }
                        },
                    })
                    .collect(),
                start: m.start.map(|s| s.0),
                compiled: m
                    .compiled
                    .values()
                    .map(|c| CompiledFunction {
                        body: range(c.body),
                        wasm_offset: c.wasm_offset,
                        trap_count: c.trap_count,
                    })
                    .collect(),
                trampolines: m
                    .trampolines
                    .values()
                    .map(|t| TypeTrampolines {
                        array_to_wasm: range(t.array_to_wasm),
                        wasm_to_array: range(t.wasm_to_array),
                    })
                    .collect(),
                traps: m
                    .traps
                    .records()
                    .iter()
                    .map(|t| TrapRecord {
                        code_offset: t.code_offset,
                        wasm_offset: t.wasm_offset,
                        code: t.code as u8,
                    })
                    .collect(),
                call_sites: m
                    .call_sites
                    .iter()
                    .map(|c| (c.return_offset, c.wasm_offset))
                    .collect(),
                func_names: m
                    .func_names
                    .iter()
                    .map(|n| FuncName {
                        func: n.func.0,
                        name: n.name.clone(),
                    })
                    .collect(),
                function_alignment: m.function_alignment,
                source: (m.source.fast, m.source.strong),
            }
        }
    }

    impl From<ModuleInfo> for k::ModuleInfo {
        fn from(m: ModuleInfo) -> Self {
            k::ModuleInfo {
                name: m.name,
                types: m
                    .types
                    .into_iter()
                    .map(|t| {
                        k::FuncType::new(
                            t.params.into_iter().map(val_back),
                            t.results.into_iter().map(val_back),
                        )
                    })
                    .collect(),
                imports: m
                    .imports
                    .into_iter()
                    .map(|i| k::Import {
                        module: i.module,
                        name: i.name,
                        index: ent_back(i.index),
                    })
                    .collect(),
                exports: m
                    .exports
                    .into_iter()
                    .map(|(n, e)| (n, ent_back(e)))
                    .collect(),
                functions: m
                    .functions
                    .into_iter()
                    .map(|f| k::FuncDecl {
                        ty: k::TypeIndex(f.ty),
                        signature: k::SignatureId(f.signature),
                    })
                    .collect(),
                tables: m
                    .tables
                    .into_iter()
                    .map(|t| k::TableType {
                        element: rt_back(t.element),
                        min: t.min,
                        max: t.max,
                    })
                    .collect(),
                memories: m
                    .memories
                    .into_iter()
                    .map(|t| k::MemoryType {
                        min: t.min,
                        max: t.max,
                        memory64: t.memory64,
                        shared: t.shared,
                    })
                    .collect(),
                globals: m
                    .globals
                    .into_iter()
                    .map(|g| k::GlobalDecl {
                        ty: k::GlobalType {
                            content: val_back(g.content),
                            mutable: g.mutable,
                        },
                        init: g.init.map(cexpr_back),
                    })
                    .collect(),
                num_imported_funcs: m.num_imported_funcs,
                num_imported_tables: m.num_imported_tables,
                num_imported_memories: m.num_imported_memories,
                num_imported_globals: m.num_imported_globals,
                data: m
                    .data
                    .into_iter()
                    .map(|d| k::DataSegment {
                        kind: match d.kind {
                            DataKind::Active { memory, offset } => k::DataKind::Active {
                                memory: k::MemoryIndex(memory),
                                offset: cexpr_back(offset),
                            },
                            DataKind::Passive => k::DataKind::Passive,
                        },
                        bytes: range_back(&d.bytes),
                    })
                    .collect(),
                elements: m
                    .elements
                    .into_iter()
                    .map(|e| k::ElemSegment {
                        kind: match e.kind {
                            ElemKind::Active { table, offset } => k::ElemKind::Active {
                                table: k::TableIndex(table),
                                offset: cexpr_back(offset),
                            },
                            ElemKind::Passive => k::ElemKind::Passive,
                            ElemKind::Declared => k::ElemKind::Declared,
                        },
                        element: rt_back(e.element),
                        items: match e.items {
                            ElemItems::Functions(fs) => {
                                k::ElemItems::Functions(fs.into_iter().map(k::FuncIndex).collect())
                            }
                            ElemItems::Exprs(es) => {
                                k::ElemItems::Exprs(es.into_iter().map(cexpr_back).collect())
                            }
                        },
                    })
                    .collect(),
                start: m.start.map(k::FuncIndex),
                compiled: m
                    .compiled
                    .into_iter()
                    .map(|c| k::CompiledFunction {
                        body: range_back(&c.body),
                        wasm_offset: c.wasm_offset,
                        trap_count: c.trap_count,
                    })
                    .collect(),
                trampolines: m
                    .trampolines
                    .into_iter()
                    .map(|t| k::TypeTrampolines {
                        array_to_wasm: range_back(&t.array_to_wasm),
                        wasm_to_array: range_back(&t.wasm_to_array),
                    })
                    .collect(),
                traps: k::TrapTable::from_records(
                    &m.traps
                        .into_iter()
                        .map(|t| k::TrapRecord {
                            code_offset: t.code_offset,
                            wasm_offset: t.wasm_offset,
                            code: k::TrapCode::from_u8(t.code).expect("valid trap code"),
                        })
                        .collect::<Vec<_>>(),
                ),
                call_sites: m
                    .call_sites
                    .into_iter()
                    .map(|(return_offset, wasm_offset)| k::CallSiteRecord {
                        return_offset,
                        wasm_offset,
                    })
                    .collect(),
                func_names: m
                    .func_names
                    .into_iter()
                    .map(|n| k::FuncName {
                        func: k::FuncIndex(n.func),
                        name: n.name,
                    })
                    .collect(),
                function_alignment: m.function_alignment,
                source: k::SourceHashes {
                    fast: m.source.0,
                    strong: m.source.1,
                },
                // The bench's modules keep their data segments as they are.
                memory_image: None,
            }
        }
    }
}

// ---- the benchmarks ----

struct Setup {
    info: ModuleInfo,
    /// The whole artifact, copied into 16-aligned memory as a mapped file would be.
    file: rkyv::util::AlignedVec<16>,
    metadata: std::ops::Range<usize>,
    header: Header,
    bincode_standard: Vec<u8>,
    bincode_legacy: Vec<u8>,
}

fn compat() -> CompatInfo {
    CompatInfo {
        target: "x86_64-unknown-linux-gnu".to_owned(),
        cpu_features: "popcnt,sse3,sse41,sse42,ssse3".to_owned(),
        settings: CodegenSettings::default().encode(),
        pointer_size: 8,
    }
}

fn setup() -> Setup {
    let wasm = large_module();
    let Parsed { info, code, data } = module_info(&wasm);
    let compat = compat();
    let bytes = build_artifact(&ArtifactParts {
        info: &info,
        code: &code,
        data: &data,
        compat: &compat,
        code_alignment: 4096,
    })
    .expect("artifact");
    let mut file = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    file.extend_from_slice(&bytes);
    let (header, checked) = open_checked(&file, &compat).expect("the artifact opens");
    assert_eq!(checked.exports.len(), info.exports.len());
    let metadata = header.metadata.bounds(file.len()).unwrap();

    let m = mirror::ModuleInfo::from(&info);
    let bincode_standard = bincode::serde::encode_to_vec(&m, bincode::config::standard()).unwrap();
    let bincode_legacy = bincode::serde::encode_to_vec(&m, bincode::config::legacy()).unwrap();
    // Both formats hold the same data as the archive.
    let (back, _): (mirror::ModuleInfo, usize) =
        bincode::serde::decode_from_slice(&bincode_standard, bincode::config::standard()).unwrap();
    assert!(ModuleInfo::from(back) == info, "bincode mirror round-trips");
    let archived = archive_metadata(&info).unwrap();
    let back = rkyv::from_bytes::<ModuleInfo, rkyv::rancor::Error>(&archived).unwrap();
    assert!(back == info, "rkyv round-trips");

    eprintln!(
        "large module: {} bytes of wasm; {} types, {} imports, {} functions, {} exports, \
         {} globals, {} data segments, {} traps, {} names",
        wasm.len(),
        info.types.len(),
        info.imports.len(),
        info.functions.len(),
        info.exports.len(),
        info.globals.len(),
        info.data.len(),
        info.traps.len(),
        info.func_names.len(),
    );
    eprintln!(
        "metadata: rkyv archive {} bytes, bincode standard {} bytes, bincode legacy {} bytes; \
         artifact {} bytes",
        metadata.len(),
        bincode_standard.len(),
        bincode_legacy.len(),
        file.len(),
    );
    Setup {
        info,
        file,
        metadata,
        header,
        bincode_standard,
        bincode_legacy,
    }
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let meta = &s.file[s.metadata.clone()];
    let probe = format!(
        "func_{}",
        (NUM_FUNCS / 2) / FUNC_EXPORT_STRIDE * FUNC_EXPORT_STRIDE
    );
    assert!(s.info.exports.contains_key(&probe));

    let mut g = c.benchmark_group("metadata");
    g.bench_function("in_place/access_unchecked", |b| {
        b.iter(|| {
            // SAFETY: `meta` is the metadata section of an artifact that `open_checked`
            // accepted in `setup`, in 16-aligned memory that does not change.
            let info = unsafe { access_unchecked(black_box(meta)) };
            black_box(info.functions.len())
        })
    });
    g.bench_function("in_place/access_unchecked+export_lookup", |b| {
        b.iter(|| {
            // SAFETY: as above.
            let info = unsafe { access_unchecked(black_box(meta)) };
            black_box(
                info.exports
                    .get(black_box(probe.as_str()))
                    .map(|e| e.native()),
            )
        })
    });
    g.bench_function("checked/rkyv_access_bytecheck", |b| {
        b.iter(|| {
            let info =
                rkyv::access::<ArchivedModuleInfo, rkyv::rancor::Error>(black_box(meta)).unwrap();
            black_box(info.functions.len())
        })
    });
    g.bench_function("checked/access_checked", |b| {
        b.iter(|| {
            let info =
                access_checked(black_box(meta), s.header.code.len, s.header.data.len).unwrap();
            black_box(info.functions.len())
        })
    });
    g.bench_function("checked/open_checked_whole_artifact", |b| {
        let compat = compat();
        b.iter(|| {
            let (_, info) = open_checked(black_box(&s.file), &compat).unwrap();
            black_box(info.functions.len())
        })
    });
    g.bench_function("deserialize/rkyv", |b| {
        b.iter(|| {
            // SAFETY: as above.
            let info = unsafe { access_unchecked(black_box(meta)) };
            rkyv::deserialize::<ModuleInfo, rkyv::rancor::Error>(info).unwrap()
        })
    });
    g.bench_function("bincode/decode_standard", |b| {
        b.iter(|| decode_mirror(black_box(&s.bincode_standard), bincode::config::standard()))
    });
    g.bench_function("bincode/decode_legacy", |b| {
        b.iter(|| decode_mirror(black_box(&s.bincode_legacy), bincode::config::legacy()))
    });
    g.bench_function("bincode/decode_standard+to_module_info", |b| {
        b.iter(|| {
            ModuleInfo::from(decode_mirror(
                black_box(&s.bincode_standard),
                bincode::config::standard(),
            ))
        })
    });
    g.finish();
}

criterion_group!(metadata, benches);
criterion_main!(metadata);

/// Decodes the serde mirror of the metadata with bincode.
fn decode_mirror(bytes: &[u8], config: impl bincode::config::Config) -> mirror::ModuleInfo {
    bincode::serde::decode_from_slice(bytes, config).unwrap().0
}
