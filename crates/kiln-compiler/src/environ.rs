//! The module environment: validates the wasm bytes and records everything but the function
//! bodies into a [`ModuleInfo`], collecting the data-segment bytes and the bodies to compile.

use kiln_artifact::{
    ByteRange, ConstExpr, DataKind, DataSegment, ElemItems, ElemKind, ElemSegment, EntityIndex,
    FuncDecl, FuncIndex, FuncName, FuncType, GlobalDecl, GlobalIndex, GlobalType, Import,
    MemoryIndex, MemoryType, ModuleInfo, Proposal, Proposals, RefType, TableIndex, TableType,
    TypeIndex, ValType,
};
use wasmparser::{
    BinaryReaderError, ExternalKind, FunctionBody, KnownCustom, Name, Parser, Payload, TypeRef,
    Validator, WasmFeatures,
};

use crate::CompileError;

/// The WebAssembly features validation accepts: 1.0 plus the enabled proposals.
pub fn features(proposals: Proposals) -> WasmFeatures {
    // wasmparser's MVP is 1.0 without the mutable-global proposal.
    let mut features = WasmFeatures::MVP;
    let switches = [
        (Proposal::SignExtension, WasmFeatures::SIGN_EXTENSION),
        (
            Proposal::SaturatingFloatToInt,
            WasmFeatures::SATURATING_FLOAT_TO_INT,
        ),
        (Proposal::MultiValue, WasmFeatures::MULTI_VALUE),
        (Proposal::MutableGlobal, WasmFeatures::MUTABLE_GLOBAL),
        (Proposal::BulkMemory, WasmFeatures::BULK_MEMORY),
        (Proposal::ReferenceTypes, WasmFeatures::REFERENCE_TYPES),
        (Proposal::Simd, WasmFeatures::SIMD),
        (Proposal::MultiMemory, WasmFeatures::MULTI_MEMORY),
    ];
    for (proposal, feature) in switches {
        features.set(feature, proposals.contains(proposal));
    }
    features
}

/// A validated module, ready for its functions to be translated.
pub struct ModuleEnv<'a> {
    /// Everything about the module except the compiled code (filled in later).
    pub info: ModuleInfo,
    /// The bytes of every data segment, back to back.
    pub data: Vec<u8>,
    /// The body of every defined function, in index order.
    pub bodies: Vec<FunctionBody<'a>>,
}

impl<'a> ModuleEnv<'a> {
    /// Validates `wasm` and reads its sections.
    pub fn parse(wasm: &'a [u8], proposals: Proposals) -> Result<Self, CompileError> {
        Validator::new_with_features(features(proposals))
            .validate_all(wasm)
            .map_err(|e| CompileError::Invalid(e.to_string()))?;
        let mut env = ModuleEnv {
            info: ModuleInfo::default(),
            data: Vec::new(),
            bodies: Vec::new(),
        };
        for payload in Parser::new(0).parse_all(wasm) {
            env.payload(payload.map_err(invalid)?)?;
        }
        Ok(env)
    }

    fn payload(&mut self, payload: Payload<'a>) -> Result<(), CompileError> {
        let info = &mut self.info;
        match payload {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(invalid)?;
                    let params = ty.params().iter().map(|t| val_type(*t));
                    let results = ty.results().iter().map(|t| val_type(*t));
                    info.types.push(FuncType::new(
                        params.collect::<Result<Vec<_>, _>>()?,
                        results.collect::<Result<Vec<_>, _>>()?,
                    ));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let index = self.import(import.ty)?;
                    self.info.imports.push(Import {
                        module: import.module.to_owned(),
                        name: import.name.to_owned(),
                        index,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    let ty = TypeIndex(ty.map_err(invalid)?);
                    self.declare_func(ty);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(invalid)?;
                    if !matches!(table.init, wasmparser::TableInit::RefNull) {
                        return Err(unsupported("table initialiser expressions"));
                    }
                    info.tables.push(table_type(&table.ty)?);
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    info.memories.push(memory_type(&memory.map_err(invalid)?));
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global.map_err(invalid)?;
                    info.globals.push(GlobalDecl {
                        ty: global_type(&global.ty)?,
                        init: Some(const_expr(&global.init_expr)?),
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    let index = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => {
                            EntityIndex::Function(FuncIndex(export.index))
                        }
                        ExternalKind::Table => EntityIndex::Table(TableIndex(export.index)),
                        ExternalKind::Memory => EntityIndex::Memory(MemoryIndex(export.index)),
                        ExternalKind::Global => EntityIndex::Global(GlobalIndex(export.index)),
                        ExternalKind::Tag => return Err(unsupported("exception tags")),
                    };
                    info.exports.insert(export.name.to_owned(), index);
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(FuncIndex(func)),
            Payload::ElementSection(reader) => {
                for elem in reader {
                    let segment = elem_segment(elem.map_err(invalid)?)?;
                    info.elements.push(segment);
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.map_err(invalid)?;
                    let kind = match data.kind {
                        wasmparser::DataKind::Passive => DataKind::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataKind::Active {
                            memory: MemoryIndex(memory_index),
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    let bytes = append_data(&mut self.data, data.data)?;
                    info.data.push(DataSegment { kind, bytes });
                }
            }
            Payload::CodeSectionEntry(body) => self.bodies.push(body),
            Payload::CustomSection(section) => {
                if let KnownCustom::Name(reader) = section.as_known() {
                    // A malformed name section is not an error: the names are optional.
                    let _ = self.names(reader);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn declare_func(&mut self, ty: TypeIndex) -> FuncIndex {
        let signature = self.info.types[ty].signature_id();
        self.info.functions.push(FuncDecl { ty, signature })
    }

    fn import(&mut self, ty: TypeRef) -> Result<EntityIndex, CompileError> {
        let info = &mut self.info;
        Ok(match ty {
            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                info.num_imported_funcs += 1;
                EntityIndex::Function(self.declare_func(TypeIndex(ty)))
            }
            TypeRef::Table(t) => {
                info.num_imported_tables += 1;
                EntityIndex::Table(info.tables.push(table_type(&t)?))
            }
            TypeRef::Memory(m) => {
                info.num_imported_memories += 1;
                EntityIndex::Memory(info.memories.push(memory_type(&m)))
            }
            TypeRef::Global(g) => {
                info.num_imported_globals += 1;
                EntityIndex::Global(info.globals.push(GlobalDecl {
                    ty: global_type(&g)?,
                    init: None,
                }))
            }
            TypeRef::Tag(_) => return Err(unsupported("exception tags")),
        })
    }

    /// Reads the module and function names; all-or-nothing so a malformed section leaves
    /// no partial state behind.
    fn names(
        &mut self,
        reader: wasmparser::NameSectionReader<'a>,
    ) -> Result<(), BinaryReaderError> {
        let mut module_name = None;
        let mut func_names = Vec::new();
        for name in reader {
            match name? {
                Name::Module { name, .. } => module_name = Some(name.to_owned()),
                Name::Function(map) => {
                    for naming in map {
                        let naming = naming?;
                        func_names.push(FuncName {
                            func: FuncIndex(naming.index),
                            name: naming.name.to_owned(),
                        });
                    }
                }
                _ => {}
            }
        }
        let num_funcs = self.info.functions.len();
        func_names.retain(|n| (n.func.0 as usize) < num_funcs);
        func_names.sort_by_key(|n| n.func);
        func_names.dedup_by_key(|n| n.func);
        self.info.name = module_name;
        self.info.func_names = func_names;
        Ok(())
    }
}

fn invalid(e: BinaryReaderError) -> CompileError {
    CompileError::Invalid(e.to_string())
}

fn unsupported(what: &str) -> CompileError {
    CompileError::Unsupported(what.to_owned())
}

fn append_data(blob: &mut Vec<u8>, bytes: &[u8]) -> Result<ByteRange, CompileError> {
    let too_big = || unsupported("more than 4 GiB of data segments");
    let start = u32::try_from(blob.len()).map_err(|_| too_big())?;
    let len = u32::try_from(bytes.len()).map_err(|_| too_big())?;
    start.checked_add(len).ok_or_else(too_big)?;
    blob.extend_from_slice(bytes);
    Ok(ByteRange { start, len })
}

/// Converts a wasmparser value type.
pub fn val_type(ty: wasmparser::ValType) -> Result<ValType, CompileError> {
    Ok(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => match ref_type(r)? {
            RefType::FuncRef => ValType::FuncRef,
            RefType::ExternRef => ValType::ExternRef,
        },
    })
}

fn ref_type(ty: wasmparser::RefType) -> Result<RefType, CompileError> {
    if ty == wasmparser::RefType::FUNCREF {
        Ok(RefType::FuncRef)
    } else if ty == wasmparser::RefType::EXTERNREF {
        Ok(RefType::ExternRef)
    } else {
        Err(unsupported("typed function references"))
    }
}

fn table_type(ty: &wasmparser::TableType) -> Result<TableType, CompileError> {
    if ty.table64 || ty.shared {
        return Err(unsupported("64-bit or shared tables"));
    }
    let limit = |v: u64| u32::try_from(v).map_err(|_| unsupported("table limit above u32"));
    Ok(TableType {
        element: ref_type(ty.element_type)?,
        min: limit(ty.initial)?,
        max: ty.maximum.map(limit).transpose()?,
    })
}

fn memory_type(ty: &wasmparser::MemoryType) -> MemoryType {
    MemoryType {
        min: ty.initial,
        max: ty.maximum,
        memory64: ty.memory64,
        shared: ty.shared,
    }
}

fn global_type(ty: &wasmparser::GlobalType) -> Result<GlobalType, CompileError> {
    Ok(GlobalType {
        content: val_type(ty.content_type)?,
        mutable: ty.mutable,
    })
}

/// Converts a constant expression of a single instruction.
fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, CompileError> {
    use wasmparser::Operator;
    let mut ops = expr.get_operators_reader();
    let value = match ops.read().map_err(invalid)? {
        Operator::I32Const { value } => ConstExpr::I32(value),
        Operator::I64Const { value } => ConstExpr::I64(value),
        Operator::F32Const { value } => ConstExpr::F32(value.bits()),
        Operator::F64Const { value } => ConstExpr::F64(value.bits()),
        Operator::V128Const { value } => ConstExpr::V128(value.i128() as u128),
        Operator::GlobalGet { global_index } => ConstExpr::GlobalGet(GlobalIndex(global_index)),
        Operator::RefFunc { function_index } => ConstExpr::RefFunc(FuncIndex(function_index)),
        Operator::RefNull { hty } => ConstExpr::RefNull(match hty {
            wasmparser::HeapType::FUNC => RefType::FuncRef,
            wasmparser::HeapType::EXTERN => RefType::ExternRef,
            _ => return Err(unsupported("typed function references")),
        }),
        _ => return Err(unsupported("extended constant expressions")),
    };
    match ops.read().map_err(invalid)? {
        Operator::End => Ok(value),
        _ => Err(unsupported("extended constant expressions")),
    }
}

fn elem_segment(elem: wasmparser::Element<'_>) -> Result<ElemSegment, CompileError> {
    let kind = match elem.kind {
        wasmparser::ElementKind::Passive => ElemKind::Passive,
        wasmparser::ElementKind::Declared => ElemKind::Declared,
        wasmparser::ElementKind::Active {
            table_index,
            offset_expr,
        } => ElemKind::Active {
            table: TableIndex(table_index.unwrap_or(0)),
            offset: const_expr(&offset_expr)?,
        },
    };
    let (element, items) = match elem.items {
        wasmparser::ElementItems::Functions(reader) => {
            let funcs = reader
                .into_iter()
                .map(|f| f.map(FuncIndex))
                .collect::<Result<Vec<_>, _>>()
                .map_err(invalid)?;
            (RefType::FuncRef, ElemItems::Functions(funcs))
        }
        wasmparser::ElementItems::Expressions(ty, reader) => {
            let mut exprs = Vec::new();
            for expr in reader {
                exprs.push(const_expr(&expr.map_err(invalid)?)?);
            }
            (ref_type(ty)?, ElemItems::Exprs(exprs))
        }
    };
    Ok(ElemSegment {
        kind,
        element,
        items,
    })
}
