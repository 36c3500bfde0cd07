//! Generators shared by the integration tests: arbitrary `ModuleInfo` values that pass
//! `validate_metadata`, with text and data sections whose ranges they name.
//!
//! The strategy draws a "plan" of raw numbers and strings, and [`build`] turns it into a
//! consistent module: imports fill each index space in order before the definitions, every
//! index lies in range, constant expressions have the type their context needs, code ranges
//! are laid out in index order, traps and names are sorted.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use kiln_artifact::header::{HEADER_SIZE, MAGIC};
use kiln_artifact::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// A module's metadata with the sections it describes.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The metadata.
    pub info: ModuleInfo,
    /// A fake text section covering every code range in `info`.
    pub code: Vec<u8>,
    /// A data section covering every data segment of `info`.
    pub data: Vec<u8>,
}

impl Generated {
    /// Builds the artifact file with [`host_compat`] and a 4 KiB text alignment.
    pub fn artifact(&self) -> Vec<u8> {
        build_artifact(&self.parts(&host_compat(), 4096)).expect("generated parts archive")
    }

    /// The artifact parts for `compat`.
    pub fn parts<'a>(&'a self, compat: &'a CompatInfo, code_alignment: u64) -> ArtifactParts<'a> {
        ArtifactParts {
            info: &self.info,
            code: &self.code,
            data: &self.data,
            compat,
            code_alignment,
        }
    }
}

/// A compatibility record shaped like the one the compiler writes for x86_64 Linux.
pub fn host_compat() -> CompatInfo {
    CompatInfo {
        target: "x86_64-unknown-linux-gnu".to_owned(),
        cpu_features: "popcnt,sse3,sse41,sse42,ssse3".to_owned(),
        settings: CodegenSettings::default().encode(),
        pointer_size: 8,
    }
}

/// Recomputes the header checksum after the bytes behind the header were changed, so the
/// change reaches the archive and metadata checks instead of stopping at the checksum.
pub fn reseal(file: &mut [u8]) {
    assert!(file.len() >= HEADER_SIZE && file[..8] == MAGIC);
    let sum = header::checksum(file);
    file[456..472].copy_from_slice(&sum.to_le_bytes());
}

// ---- leaf strategies ----

pub fn val_type() -> impl Strategy<Value = ValType> {
    prop_oneof![
        Just(ValType::I32),
        Just(ValType::I64),
        Just(ValType::F32),
        Just(ValType::F64),
        Just(ValType::V128),
        Just(ValType::FuncRef),
        Just(ValType::ExternRef),
    ]
}

pub fn ref_type() -> impl Strategy<Value = RefType> {
    prop_oneof![Just(RefType::FuncRef), Just(RefType::ExternRef)]
}

/// Mostly short signatures (injective signature ids), sometimes long ones (hashed ids).
pub fn func_type() -> impl Strategy<Value = FuncType> {
    prop_oneof![
        4 => (vec(val_type(), 0..5), vec(val_type(), 0..3)),
        1 => (vec(val_type(), 0..24), vec(val_type(), 0..8)),
    ]
    .prop_map(|(p, r)| FuncType::new(p, r))
}

pub fn table_type() -> impl Strategy<Value = TableType> {
    (ref_type(), 0u32..10_000, option::of(0u32..10_000)).prop_map(|(element, min, extra)| {
        TableType {
            element,
            min,
            max: extra.map(|e| min + e),
        }
    })
}

pub fn memory_type() -> impl Strategy<Value = MemoryType> {
    (0u64..=65536, option::of(0u64..=65536)).prop_map(|(min, extra)| MemoryType {
        min,
        max: extra.map(|e| (min + e).min(65536)),
        memory64: false,
        shared: false,
    })
}

pub fn global_type() -> impl Strategy<Value = GlobalType> {
    (val_type(), any::<bool>()).prop_map(|(content, mutable)| GlobalType { content, mutable })
}

pub fn trap_code() -> impl Strategy<Value = TrapCode> {
    (0u8..TrapCode::ALL.len() as u8).prop_map(|b| TrapCode::from_u8(b).unwrap())
}

/// Any printable text, including non-ASCII and the empty string.
pub fn name() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

// ---- the plan ----

#[derive(Clone, Debug)]
pub struct RawImport {
    kind: u8,
    module: String,
    name: String,
    ty: u32,
    table: TableType,
    memory: MemoryType,
    global: GlobalType,
}

#[derive(Clone, Debug)]
pub struct RawFunc {
    ty: u32,
    body_len: u32,
    wasm_offset: u32,
}

#[derive(Clone, Debug)]
pub struct RawConst {
    pick: u8,
    bits: u64,
    index: u32,
}

#[derive(Clone, Debug)]
pub struct RawSegment {
    kind: u8,
    target: u32,
    offset: RawConst,
    start: u32,
    len: u32,
    element: RefType,
    items: Vec<RawConst>,
    use_exprs: bool,
}

#[derive(Clone, Debug)]
pub struct Plan {
    name: Option<String>,
    types: Vec<FuncType>,
    imports: Vec<RawImport>,
    funcs: Vec<RawFunc>,
    tables: Vec<TableType>,
    memories: Vec<MemoryType>,
    globals: Vec<(GlobalType, RawConst)>,
    exports: Vec<(String, u8, u32)>,
    data_bytes: Vec<u8>,
    data: Vec<RawSegment>,
    elements: Vec<RawSegment>,
    start: Option<u32>,
    trampoline_lens: Vec<(u32, u32)>,
    code_tail: u32,
    code_fill: u8,
    traps: Vec<(u32, u32, TrapCode)>,
    func_names: Vec<(u32, String)>,
}

fn raw_const() -> impl Strategy<Value = RawConst> {
    (any::<u8>(), any::<u64>(), any::<u32>()).prop_map(|(pick, bits, index)| RawConst {
        pick,
        bits,
        index,
    })
}

fn raw_import() -> impl Strategy<Value = RawImport> {
    (
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 2 => Just(3u8)],
        name(),
        name(),
        any::<u32>(),
        table_type(),
        memory_type(),
        global_type(),
    )
        .prop_map(
            |(kind, module, name, ty, table, memory, global)| RawImport {
                kind,
                module,
                name,
                ty,
                table,
                memory,
                global,
            },
        )
}

fn raw_func() -> impl Strategy<Value = RawFunc> {
    (any::<u32>(), 1u32..200, any::<u32>()).prop_map(|(ty, body_len, wasm_offset)| RawFunc {
        ty,
        body_len,
        wasm_offset,
    })
}

fn raw_segment() -> impl Strategy<Value = RawSegment> {
    (
        0u8..3,
        any::<u32>(),
        raw_const(),
        any::<u32>(),
        any::<u32>(),
        ref_type(),
        vec(raw_const(), 0..6),
        any::<bool>(),
    )
        .prop_map(
            |(kind, target, offset, start, len, element, items, use_exprs)| RawSegment {
                kind,
                target,
                offset,
                start,
                len,
                element,
                items,
                use_exprs,
            },
        )
}

fn plan() -> impl Strategy<Value = Plan> {
    let entities = (
        option::of(name()),
        vec(func_type(), 1..8),
        vec(raw_import(), 0..10),
        vec(raw_func(), 0..24),
        vec(table_type(), 0..3),
        vec(memory_type(), 0..3),
        vec((global_type(), raw_const()), 0..8),
        vec((name(), 0u8..4, any::<u32>()), 0..16),
    );
    let rest = (
        vec(any::<u8>(), 0..256),
        vec(raw_segment(), 0..6),
        vec(raw_segment(), 0..6),
        option::of(any::<u32>()),
        vec((1u32..64, 1u32..64), 8),
        (0u32..64, any::<u8>()),
        vec((any::<u32>(), any::<u32>(), trap_code()), 0..32),
        vec((any::<u32>(), name()), 0..12),
    );
    (entities, rest).prop_map(
        |(
            (name, types, imports, funcs, tables, memories, globals, exports),
            (
                data_bytes,
                data,
                elements,
                start,
                trampoline_lens,
                (code_tail, code_fill),
                traps,
                func_names,
            ),
        )| Plan {
            name,
            types,
            imports,
            funcs,
            tables,
            memories,
            globals,
            exports,
            data_bytes,
            data,
            elements,
            start,
            trampoline_lens,
            code_tail,
            code_fill,
            traps,
            func_names,
        },
    )
}

/// Arbitrary metadata that passes `validate_metadata`, with matching sections.
pub fn generated() -> impl Strategy<Value = Generated> {
    plan().prop_map(build)
}

// ---- turning a plan into a consistent module ----

/// A constant of type `ty`, possibly a `global.get` of an imported global of that type or a
/// `ref.func`.
fn const_of(ty: ValType, raw: &RawConst, info: &ModuleInfo) -> ConstExpr {
    let imported_globals: Vec<GlobalIndex> = info
        .globals
        .iter()
        .take(info.num_imported_globals as usize)
        .filter(|(_, g)| g.ty.content == ty)
        .map(|(i, _)| i)
        .collect();
    if raw.pick.is_multiple_of(4) && !imported_globals.is_empty() {
        return ConstExpr::GlobalGet(imported_globals[raw.index as usize % imported_globals.len()]);
    }
    let bits = raw.bits;
    match ty {
        ValType::I32 => ConstExpr::I32(bits as i32),
        ValType::I64 => ConstExpr::I64(bits as i64),
        ValType::F32 => ConstExpr::F32(bits as u32),
        ValType::F64 => ConstExpr::F64(bits),
        ValType::V128 => ConstExpr::V128((u128::from(bits) << 64) | u128::from(!bits)),
        ValType::FuncRef if raw.pick % 2 == 1 && !info.functions.is_empty() => {
            ConstExpr::RefFunc(FuncIndex(raw.index % info.functions.len() as u32))
        }
        ValType::FuncRef => ConstExpr::RefNull(RefType::FuncRef),
        ValType::ExternRef => ConstExpr::RefNull(RefType::ExternRef),
    }
}

fn decl(info: &ModuleInfo, raw_ty: u32) -> FuncDecl {
    let ty = TypeIndex(raw_ty % info.types.len() as u32);
    FuncDecl {
        ty,
        signature: info.types[ty].signature_id(),
    }
}

/// Builds a consistent module from `plan`.
pub fn build(plan: Plan) -> Generated {
    let mut info = ModuleInfo {
        name: plan.name,
        types: plan.types.into_iter().collect(),
        ..ModuleInfo::default()
    };

    // Imports, interleaved across kinds as the plan orders them; each fills the next slot of
    // its index space.
    for imp in &plan.imports {
        let index = match imp.kind {
            0 => {
                let d = decl(&info, imp.ty);
                info.num_imported_funcs += 1;
                EntityIndex::Function(info.functions.push(d))
            }
            1 => {
                info.num_imported_tables += 1;
                EntityIndex::Table(info.tables.push(imp.table))
            }
            2 => {
                info.num_imported_memories += 1;
                EntityIndex::Memory(info.memories.push(imp.memory))
            }
            _ => {
                info.num_imported_globals += 1;
                EntityIndex::Global(info.globals.push(GlobalDecl {
                    ty: imp.global,
                    init: None,
                }))
            }
        };
        info.imports.push(Import {
            module: imp.module.clone(),
            name: imp.name.clone(),
            index,
        });
    }

    for f in &plan.funcs {
        let d = decl(&info, f.ty);
        info.functions.push(d);
    }
    for t in plan.tables {
        info.tables.push(t);
    }
    for m in plan.memories {
        info.memories.push(m);
    }
    for (ty, raw) in &plan.globals {
        let init = const_of(ty.content, raw, &info);
        info.globals.push(GlobalDecl {
            ty: *ty,
            init: Some(init),
        });
    }

    for (name, kind, raw) in plan.exports {
        let spaces = [
            info.functions.len(),
            info.tables.len(),
            info.memories.len(),
            info.globals.len(),
        ];
        // Take the first non-empty space at or after `kind`.
        let Some(k) = (0..4)
            .map(|d| (usize::from(kind) + d) % 4)
            .find(|&k| spaces[k] > 0)
        else {
            break;
        };
        let i = raw % spaces[k] as u32;
        let index = match k {
            0 => EntityIndex::Function(FuncIndex(i)),
            1 => EntityIndex::Table(TableIndex(i)),
            2 => EntityIndex::Memory(MemoryIndex(i)),
            _ => EntityIndex::Global(GlobalIndex(i)),
        };
        info.exports.insert(name, index);
    }

    let data_len = plan.data_bytes.len() as u32;
    for seg in &plan.data {
        let start = seg.start % (data_len + 1);
        let len = seg.len % (data_len - start + 1);
        let kind = if seg.kind != 0 && !info.memories.is_empty() {
            DataKind::Active {
                memory: MemoryIndex(seg.target % info.memories.len() as u32),
                offset: const_of(ValType::I32, &seg.offset, &info),
            }
        } else {
            DataKind::Passive
        };
        info.data.push(DataSegment {
            kind,
            bytes: ByteRange { start, len },
        });
    }

    for seg in &plan.elements {
        let kind = match seg.kind {
            0 if !info.tables.is_empty() => ElemKind::Active {
                table: TableIndex(seg.target % info.tables.len() as u32),
                offset: const_of(ValType::I32, &seg.offset, &info),
            },
            1 => ElemKind::Declared,
            _ => ElemKind::Passive,
        };
        // An active segment holds what its table holds.
        let element = match kind {
            ElemKind::Active { table, .. } => info.tables[table].element,
            _ => seg.element,
        };
        let element_ty = match element {
            RefType::FuncRef => ValType::FuncRef,
            RefType::ExternRef => ValType::ExternRef,
        };
        let items = if seg.use_exprs || element == RefType::ExternRef || info.functions.is_empty() {
            ElemItems::Exprs(
                seg.items
                    .iter()
                    .map(|raw| const_of(element_ty, raw, &info))
                    .collect(),
            )
        } else {
            let n = info.functions.len() as u32;
            ElemItems::Functions(seg.items.iter().map(|r| FuncIndex(r.index % n)).collect())
        };
        info.elements.push(ElemSegment {
            kind,
            element,
            items,
        });
    }

    if let Some(raw) = plan.start {
        let candidates: Vec<FuncIndex> = info
            .functions
            .iter()
            .filter(|(_, f)| {
                let ty = &info.types[f.ty];
                ty.params.is_empty() && ty.results.is_empty()
            })
            .map(|(i, _)| i)
            .collect();
        if !candidates.is_empty() {
            info.start = Some(candidates[raw as usize % candidates.len()]);
        }
    }

    // Text section: bodies in index order, then two trampolines per type, each piece at the
    // next multiple of the function alignment.
    info.function_alignment = 16;
    let mut offset = 0u32;
    for f in &plan.funcs {
        offset = offset.next_multiple_of(16);
        info.compiled.push(CompiledFunction {
            body: ByteRange {
                start: offset,
                len: f.body_len,
            },
            wasm_offset: f.wasm_offset,
            trap_count: 0,
        });
        offset += f.body_len;
    }
    for i in 0..info.types.len() {
        let (a, w) = plan.trampoline_lens[i % plan.trampoline_lens.len()];
        let array_to_wasm = ByteRange {
            start: offset.next_multiple_of(16),
            len: a,
        };
        let wasm_to_array = ByteRange {
            start: (array_to_wasm.start + a).next_multiple_of(16),
            len: w,
        };
        offset = wasm_to_array.start + w;
        info.trampolines.push(TypeTrampolines {
            array_to_wasm,
            wasm_to_array,
        });
    }
    let code_len = offset + plan.code_tail;
    let code = (0..code_len)
        .map(|i| plan.code_fill ^ (i as u8).wrapping_mul(31))
        .collect();

    // Trap records lie in function bodies, and each body counts its own.
    let bodies: Vec<ByteRange> = info.compiled.values().map(|c| c.body).collect();
    let mut traps: Vec<TrapRecord> = plan
        .traps
        .into_iter()
        .filter(|_| !bodies.is_empty())
        .map(|(off, wasm_offset, code)| {
            let body = bodies[off as usize % bodies.len()];
            TrapRecord {
                code_offset: body.start + (off / 7) % body.len,
                wasm_offset,
                code,
            }
        })
        .collect();
    traps.sort_by_key(|t| t.code_offset);
    traps.dedup_by_key(|t| t.code_offset);
    for c in info.compiled.values_mut() {
        let end = c.body.start + c.body.len;
        c.trap_count = traps
            .iter()
            .filter(|t| (c.body.start..end).contains(&t.code_offset))
            .count() as u32;
    }
    // Calls return just after some of the recorded instructions.
    info.call_sites = traps
        .iter()
        .step_by(2)
        .map(|t| CallSiteRecord {
            return_offset: t.code_offset + 1,
            wasm_offset: t.wasm_offset ^ 1,
        })
        .collect();
    info.traps = TrapTable::from_records(&traps);

    if !info.functions.is_empty() {
        let n = info.functions.len() as u32;
        let mut names: Vec<FuncName> = plan
            .func_names
            .into_iter()
            .map(|(f, name)| FuncName {
                func: FuncIndex(f % n),
                name,
            })
            .collect();
        names.sort_by_key(|n| n.func);
        names.dedup_by_key(|n| n.func);
        info.func_names = names;
    }

    Generated {
        info,
        code,
        data: plan.data_bytes,
    }
}

/// A map of exports in the order given, for hand-written cases.
pub fn exports_of(items: &[(&str, EntityIndex)]) -> Exports {
    items.iter().map(|(n, e)| ((*n).to_owned(), *e)).collect()
}
