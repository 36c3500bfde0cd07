//! The metadata of a compiled module: everything the runtime needs besides the machine code
//! and the data-segment bytes. It is archived with rkyv and read in place at load time.

use crate::entity::*;
use crate::exports::Exports;
use crate::trap::{TrapRecord, TrapTable};
use crate::types::*;

/// A byte range inside one section of the artifact (the text or the data section).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ByteRange {
    /// Offset from the section's start.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl ByteRange {
    /// The range's end, or `None` if it overflows `u32`.
    pub fn end(&self) -> Option<u32> {
        self.start.checked_add(self.len)
    }
}

impl ArchivedByteRange {
    /// The range in native form.
    pub fn native(&self) -> ByteRange {
        ByteRange {
            start: self.start.to_native(),
            len: self.len.to_native(),
        }
    }
}

/// An item of one of the four importable index spaces.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub enum EntityIndex {
    /// A function.
    Function(FuncIndex),
    /// A table.
    Table(TableIndex),
    /// A linear memory.
    Memory(MemoryIndex),
    /// A global.
    Global(GlobalIndex),
}

impl ArchivedEntityIndex {
    /// The index in native form.
    pub fn native(&self) -> EntityIndex {
        match self {
            ArchivedEntityIndex::Function(i) => EntityIndex::Function(i.native()),
            ArchivedEntityIndex::Table(i) => EntityIndex::Table(i.native()),
            ArchivedEntityIndex::Memory(i) => EntityIndex::Memory(i.native()),
            ArchivedEntityIndex::Global(i) => EntityIndex::Global(i.native()),
        }
    }
}

/// One import, in the module's order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Import {
    /// The module name.
    pub module: String,
    /// The field name.
    pub name: String,
    /// The slot it fills in its index space.
    pub index: EntityIndex,
}

/// A function's declaration: its signature.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct FuncDecl {
    /// Index of its type in the type section.
    pub ty: TypeIndex,
    /// The compile-time identity of that type, as `call_indirect` compares it.
    pub signature: SignatureId,
}

/// A global: its type and, for defined globals, its initialiser.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct GlobalDecl {
    /// Value type and mutability.
    pub ty: GlobalType,
    /// Initial value (`None` for imported globals).
    pub init: Option<ConstExpr>,
}

pub use segment_kinds::*;

/// Segment placement enums, in a module of their own because rkyv's generated resolver
/// types for struct-like variants carry no docs.
#[allow(missing_docs)]
mod segment_kinds {
    use crate::entity::*;
    use crate::types::*;

    /// Where a data segment goes.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
    )]
    #[rkyv(derive(Debug), attr(allow(missing_docs)))]
    pub enum DataKind {
        /// Copied into `memory` at `offset` during instantiation.
        Active {
            /// Target memory.
            memory: MemoryIndex,
            /// Offset expression.
            offset: ConstExpr,
        },
        /// Used by `memory.init` only.
        Passive,
    }

    /// Where an element segment goes.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
    )]
    #[rkyv(derive(Debug), attr(allow(missing_docs)))]
    pub enum ElemKind {
        /// Copied into `table` at `offset` during instantiation.
        Active {
            /// Target table.
            table: TableIndex,
            /// Offset expression.
            offset: ConstExpr,
        },
        /// Used by `table.init` only.
        Passive,
        /// Only declares functions for `ref.func`.
        Declared,
    }
}

/// A data segment; its bytes live in the artifact's data section.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct DataSegment {
    /// Active or passive.
    pub kind: DataKind,
    /// The bytes, as a range of the data section.
    pub bytes: ByteRange,
}

/// A defined memory's initial contents after all active data segments, laid out so that
/// instantiation can map them copy-on-write from the artifact file instead of copying.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct MemoryImage {
    /// The memory, a defined one.
    pub memory: MemoryIndex,
    /// Where the image starts in the memory; a multiple of `page_size`.
    pub offset: u64,
    /// The image: a range of the data section starting at its first byte (which the writer
    /// aligns to `page_size` in the file), its length a multiple of `page_size`. Bytes the
    /// segments do not cover are zero.
    pub bytes: ByteRange,
    /// The page size the layout was made for: the largest page size of the target.
    pub page_size: u32,
}

/// The items of an element segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum ElemItems {
    /// A list of function indices.
    Functions(Vec<FuncIndex>),
    /// A list of constant expressions of the segment's reference type.
    Exprs(Vec<ConstExpr>),
}

/// An element segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct ElemSegment {
    /// Active, passive or declared.
    pub kind: ElemKind,
    /// Element type.
    pub element: RefType,
    /// The items.
    pub items: ElemItems,
}

/// Where a defined function's machine code lies in the text section.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct CompiledFunction {
    /// The function body's code, called with the wasm calling convention.
    pub body: ByteRange,
    /// Offset of the function in the module's bytes (its code-section entry).
    pub wasm_offset: u32,
    /// How many records of [`ModuleInfo::traps`] lie in `body`. The records of the bodies
    /// follow each other in function order, so a checked load can confirm that each record
    /// belongs to the function that claims it and that none was added or dropped.
    pub trap_count: u32,
}

/// The two trampolines compiled for each signature of the type section.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct TypeTrampolines {
    /// Host → wasm: `extern "C" fn(callee_vmctx, caller_vmctx, body, values: *mut ValRaw)`.
    pub array_to_wasm: ByteRange,
    /// Wasm → host: the wasm calling convention on the outside, calls the host function
    /// stored in `VMHostFuncContext` with a `ValRaw` array.
    pub wasm_to_array: ByteRange,
}

/// A call instruction in the text section: where execution returns to, and the wasm
/// instruction that made the call. A wasm backtrace finds the offset of each caller here.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct CallSiteRecord {
    /// Offset of the return address from the start of the text section.
    pub return_offset: u32,
    /// Offset of the calling WebAssembly instruction in the module's bytes.
    pub wasm_offset: u32,
}

/// A function's name from the name section.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct FuncName {
    /// The function.
    pub func: FuncIndex,
    /// Its name.
    pub name: String,
}

/// Everything Kiln knows about a compiled module besides its code and data bytes.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ModuleInfo {
    /// The module's name from the name section.
    pub name: Option<String>,
    /// The type section.
    pub types: PrimaryMap<TypeIndex, FuncType>,
    /// Imports in the module's order.
    pub imports: Vec<Import>,
    /// Exports in the module's order, looked up by name.
    pub exports: Exports,
    /// Every function, imported ones first.
    pub functions: PrimaryMap<FuncIndex, FuncDecl>,
    /// Every table, imported ones first.
    pub tables: PrimaryMap<TableIndex, TableType>,
    /// Every memory, imported ones first.
    pub memories: PrimaryMap<MemoryIndex, MemoryType>,
    /// Every global, imported ones first.
    pub globals: PrimaryMap<GlobalIndex, GlobalDecl>,
    /// How many of `functions` are imported.
    pub num_imported_funcs: u32,
    /// How many of `tables` are imported.
    pub num_imported_tables: u32,
    /// How many of `memories` are imported.
    pub num_imported_memories: u32,
    /// How many of `globals` are imported.
    pub num_imported_globals: u32,
    /// Data segments.
    pub data: PrimaryMap<DataIndex, DataSegment>,
    /// Element segments.
    pub elements: PrimaryMap<ElemIndex, ElemSegment>,
    /// The start function.
    pub start: Option<FuncIndex>,
    /// The code of every defined function.
    pub compiled: PrimaryMap<DefinedFuncIndex, CompiledFunction>,
    /// The trampolines of every type.
    pub trampolines: PrimaryMap<TypeIndex, TypeTrampolines>,
    /// Instructions that may trap, sorted by code offset.
    pub traps: TrapTable,
    /// Calls from wasm functions, sorted by `return_offset`.
    pub call_sites: Vec<CallSiteRecord>,
    /// Function names, sorted by function index.
    pub func_names: Vec<FuncName>,
    /// Alignment of each piece of the text section: the bodies in index order, then each
    /// type's two trampolines, every piece starting at the first multiple of this after the
    /// previous one (checked loads require exactly this layout).
    pub function_alignment: u32,
    /// Hashes of the wasm this module was compiled from (a cache compares them with the
    /// wasm it looks up).
    pub source: crate::source::SourceHashes,
    /// The initial contents of the defined memory, when every active data segment could be
    /// laid out ahead of time. Then each active data segment targets that memory, lies
    /// inside its initial size and has empty `bytes`: instantiation maps or copies the image
    /// instead of writing segments.
    pub memory_image: Option<MemoryImage>,
}

impl ModuleInfo {
    /// The defined-function index of `func`, or `None` if it is imported.
    pub fn defined_func_index(&self, func: FuncIndex) -> Option<DefinedFuncIndex> {
        func.0
            .checked_sub(self.num_imported_funcs)
            .map(DefinedFuncIndex)
    }

    /// The defined-memory index of `memory`, or `None` if it is imported.
    pub fn defined_memory_index(&self, memory: MemoryIndex) -> Option<DefinedMemoryIndex> {
        memory
            .0
            .checked_sub(self.num_imported_memories)
            .map(DefinedMemoryIndex)
    }

    /// The defined-table index of `table`, or `None` if it is imported.
    pub fn defined_table_index(&self, table: TableIndex) -> Option<DefinedTableIndex> {
        table
            .0
            .checked_sub(self.num_imported_tables)
            .map(DefinedTableIndex)
    }

    /// The defined-global index of `global`, or `None` if it is imported.
    pub fn defined_global_index(&self, global: GlobalIndex) -> Option<DefinedGlobalIndex> {
        global
            .0
            .checked_sub(self.num_imported_globals)
            .map(DefinedGlobalIndex)
    }

    /// The instance-context layout of this module.
    pub fn vmoffsets(&self, pointer_size: u8) -> crate::vmoffsets::VMOffsets {
        crate::vmoffsets::VMOffsets::new(
            pointer_size,
            crate::vmoffsets::VMCounts {
                imported_funcs: self.num_imported_funcs,
                imported_tables: self.num_imported_tables,
                imported_memories: self.num_imported_memories,
                imported_globals: self.num_imported_globals,
                defined_tables: self.tables.len() as u32 - self.num_imported_tables,
                defined_memories: self.memories.len() as u32 - self.num_imported_memories,
                defined_globals: self.globals.len() as u32 - self.num_imported_globals,
                funcs: self.functions.len() as u32,
            },
        )
    }
}

impl ArchivedModuleInfo {
    /// The defined-function index of `func`, or `None` if it is imported.
    pub fn defined_func_index(&self, func: FuncIndex) -> Option<DefinedFuncIndex> {
        func.0
            .checked_sub(self.num_imported_funcs.to_native())
            .map(DefinedFuncIndex)
    }

    /// The defined-memory index of `memory`, or `None` if it is imported.
    pub fn defined_memory_index(&self, memory: MemoryIndex) -> Option<DefinedMemoryIndex> {
        memory
            .0
            .checked_sub(self.num_imported_memories.to_native())
            .map(DefinedMemoryIndex)
    }

    /// The defined-table index of `table`, or `None` if it is imported.
    pub fn defined_table_index(&self, table: TableIndex) -> Option<DefinedTableIndex> {
        table
            .0
            .checked_sub(self.num_imported_tables.to_native())
            .map(DefinedTableIndex)
    }

    /// The defined-global index of `global`, or `None` if it is imported.
    pub fn defined_global_index(&self, global: GlobalIndex) -> Option<DefinedGlobalIndex> {
        global
            .0
            .checked_sub(self.num_imported_globals.to_native())
            .map(DefinedGlobalIndex)
    }

    /// The instance-context layout of this module. O(1): it depends only on the counts.
    pub fn vmoffsets(&self, pointer_size: u8) -> crate::vmoffsets::VMOffsets {
        let n = |x: usize, imported: &rkyv::rend::u32_le| {
            (x as u32).saturating_sub(imported.to_native())
        };
        crate::vmoffsets::VMOffsets::new(
            pointer_size,
            crate::vmoffsets::VMCounts {
                imported_funcs: self.num_imported_funcs.to_native(),
                imported_tables: self.num_imported_tables.to_native(),
                imported_memories: self.num_imported_memories.to_native(),
                imported_globals: self.num_imported_globals.to_native(),
                defined_tables: n(self.tables.len(), &self.num_imported_tables),
                defined_memories: n(self.memories.len(), &self.num_imported_memories),
                defined_globals: n(self.globals.len(), &self.num_imported_globals),
                funcs: self.functions.len() as u32,
            },
        )
    }

    /// The trap record for the instruction at `code_offset` in the text section, if any.
    pub fn lookup_trap(&self, code_offset: u32) -> Option<TrapRecord> {
        self.traps.lookup(code_offset)
    }

    /// The wasm offset of the call that returns to `return_offset`, if it is one.
    pub fn lookup_call_site(&self, return_offset: u32) -> Option<u32> {
        let idx = self
            .call_sites
            .binary_search_by_key(&return_offset, |c| c.return_offset.to_native())
            .ok()?;
        Some(self.call_sites[idx].wasm_offset.to_native())
    }

    /// The defined function whose body contains `code_offset`, if any.
    pub fn func_at_code_offset(&self, code_offset: u32) -> Option<DefinedFuncIndex> {
        let funcs = self.compiled.as_slice();
        let idx = funcs.partition_point(|f| f.body.start.to_native() <= code_offset);
        let candidate = idx.checked_sub(1)?;
        let body = funcs[candidate].body.native();
        (code_offset < body.start.saturating_add(body.len))
            .then_some(DefinedFuncIndex(candidate as u32))
    }

    /// The name of `func` from the name section, if it has one.
    pub fn func_name(&self, func: FuncIndex) -> Option<&str> {
        let idx = self
            .func_names
            .binary_search_by_key(&func.0, |n| n.func.0.to_native())
            .ok()?;
        Some(self.func_names[idx].name.as_str())
    }
}
