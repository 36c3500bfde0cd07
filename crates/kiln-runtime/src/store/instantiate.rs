//! Instantiation: checking a module's needs against the store's limits, filling the new
//! instance's vmctx (imports, func refs), creating its memories, tables and globals, and
//! writing its element and data segments or mapping its memory image. Nothing here is done
//! per function: function ids are computed from the instance, and func refs are written
//! when first used ([`Instance::filled_func_ref`]).

use std::cell::Cell;
use std::sync::Arc;

use kiln_artifact::{
    ArchivedDataKind, ArchivedElemKind, ArchivedMemoryImage, ArchivedModuleInfo, EntityIndex,
    MemoryType, RefType,
};

use super::builtins::BUILTINS;
use super::convert::{global_type, table_type};
use super::{
    Extern, FuncId, FuncOwner, FuncRefs, GlobalData, GlobalId, InstanceId, InstantiateError,
    MemoryId, StoreOpaque, TableId, Trap,
};
use crate::bulk::segment_len;
use crate::instance::{Instance, VMContextAlloc};
use crate::loader::LoadedModule;
use crate::memory::Memory;
use crate::table::{InitialElements, Table};
use crate::vmcontext::{
    VMFuncRef, VMFunctionImport, VMGlobalDefinition, VMMemoryDefinition, VMStoreContext,
    VMTableDefinition, ValRaw,
};

impl StoreOpaque {
    fn register_module(&mut self, module: &Arc<LoadedModule>) {
        if !self.modules.iter().any(|m| Arc::ptr_eq(m, module)) {
            self.modules.push(module.clone());
            if module.code_len() > 0 {
                self.code_ranges.push(module.code_range());
            }
        }
    }

    /// Refuses an instantiation the store cannot hold (too many items, memories or tables
    /// over its limits) or with the wrong number of imports, before anything is allocated,
    /// so a refused instantiation leaves nothing behind in the store.
    fn check_needs(
        &self,
        info: &ArchivedModuleInfo,
        imports: usize,
    ) -> Result<(), InstantiateError> {
        if imports != info.imports.len() {
            return Err(InstantiateError::Resource(format!(
                "expected {} imports, got {imports}",
                info.imports.len()
            )));
        }
        let defined = |all: usize, imported: &rkyv::rend::u32_le| {
            all.saturating_sub(imported.to_native() as usize)
        };
        let counts = [
            ("instances", self.instances.len() + 1, self.limits.instances),
            (
                "memories",
                self.memories.len() + defined(info.memories.len(), &info.num_imported_memories),
                self.limits.memories,
            ),
            (
                "tables",
                self.tables.len() + defined(info.tables.len(), &info.num_imported_tables),
                self.limits.tables,
            ),
        ];
        for (what, needed, limit) in counts {
            if needed > limit {
                return Err(InstantiateError::Resource(format!(
                    "instantiation needs {needed} {what} in the store, over its limit of {limit}"
                )));
            }
        }
        // Sizes too.
        let memory_limit = self.limits.memory_pages();
        let defined_memories = info
            .memories
            .iter()
            .skip(info.num_imported_memories.to_native() as usize);
        for (_, ty) in defined_memories {
            if ty.min.to_native() > memory_limit {
                return Err(InstantiateError::Resource(format!(
                    "memory minimum of {} pages exceeds the store's limit of {memory_limit} pages",
                    ty.min.to_native()
                )));
            }
        }
        let table_limit = self.limits.table_elements;
        let defined_tables = info
            .tables
            .iter()
            .skip(info.num_imported_tables.to_native() as usize);
        for (_, ty) in defined_tables {
            if ty.min.to_native() > table_limit {
                return Err(InstantiateError::Resource(format!(
                    "table minimum of {} elements exceeds the store's limit of {table_limit}",
                    ty.min.to_native()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn instantiate(
        &mut self,
        module: &Arc<LoadedModule>,
        imports: &[Extern],
    ) -> Result<(InstanceId, Option<FuncId>), InstantiateError> {
        let info: &ArchivedModuleInfo = module.info();
        self.check_needs(info, imports.len())?;
        self.register_module(module);
        let offsets = info.vmoffsets(8);
        let num_funcs = info.functions.len() as u32;
        let num_imported_funcs = info.num_imported_funcs.to_native();
        let defined_func_refs = offsets.func_ref(num_imported_funcs)..offsets.func_ref(num_funcs);
        // The filled set must be zeroed: it lies below the slots left unzeroed.
        let defined_funcs = num_funcs.saturating_sub(num_imported_funcs);
        debug_assert!(
            offsets.func_ref_filled_word(0) + 8 * defined_funcs.div_ceil(64) <= offsets.func_ref(0)
        );
        let vmctx = VMContextAlloc::new(offsets.size(), defined_func_refs);
        let id = InstanceId(self.instances.len() as u32);
        let mut instance = Box::new(Instance {
            id,
            module: module.clone(),
            offsets,
            vmctx,
            imported_funcs: Vec::with_capacity(info.num_imported_funcs.to_native() as usize),
            tables: Vec::with_capacity(info.tables.len()),
            memories: Vec::with_capacity(info.memories.len()),
            memory_ptrs: Vec::with_capacity(info.memories.len()),
            globals: Vec::with_capacity(info.globals.len()),
            table_ptrs: Vec::with_capacity(info.tables.len()),
            dropped_data: (0..info.data.len()).map(|_| Cell::new(false)).collect(),
            dropped_elems: (0..info.elements.len()).map(|_| Cell::new(false)).collect(),
        });
        // The instance is kept even if initialisation fails: its vmctx holds the definitions
        // of memories, tables and globals already registered in the store, and its id must
        // not be reused while those items (and their func refs) exist.
        let mut result = self.initialize(&mut instance, module, imports);
        if result.is_err() {
            // Failed before its data segments: a memory image already in place (a reused
            // memory) must not show through func refs left in imported tables.
            let defined = info.num_imported_memories.to_native() as usize;
            for id in instance.memories.iter().skip(defined) {
                if let Err(e) = self.memories[id.0 as usize].clear_image() {
                    result = Err(InstantiateError::Resource(e));
                }
            }
        }
        // Registered even if initialisation failed: its segments may have written func
        // refs of this instance into imported tables before the failure.
        if !info.functions.is_empty() {
            let start = instance.vmctx.as_ptr() as usize + offsets.func_ref(0) as usize;
            let refs = FuncRefs::Instance {
                instance: id,
                len: info.functions.len(),
            };
            self.func_refs.insert(start, refs);
        }
        self.instances.push(instance);
        result.map(|start| (id, start))
    }

    /// Fills the vmctx of a new instance, allocates its items and writes its segments, in
    /// the order the specification gives. Returns its start function.
    fn initialize(
        &mut self,
        instance: &mut Instance,
        module: &Arc<LoadedModule>,
        imports: &[Extern],
    ) -> Result<Option<FuncId>, InstantiateError> {
        self.write_vmctx_header(instance);
        self.link_imports(instance, module, imports)?;
        self.create_memories(instance, module)?;
        self.create_tables(instance, module)?;
        self.create_globals(instance, module);
        self.write_segments(instance, module)?;
        let info = module.info();
        Ok(info.start.as_ref().map(|s| instance.func(s.native())))
    }

    /// The fields every vmctx starts with: the store, the builtins, the instance, the magic.
    fn write_vmctx_header(&mut self, instance: &Instance) {
        let (vm, offsets) = (&instance.vmctx, instance.offsets);
        // SAFETY: each field pointer comes from `VMContextAlloc::field`, which bounds-checks
        // the offset against the allocation, and the offsets come from this module's
        // `VMOffsets`, so the fields do not overlap.
        unsafe {
            vm.field::<*mut VMStoreContext>(offsets.store_context())
                .write(&mut *self.ctx);
            vm.field::<*const u8>(offsets.builtins())
                .write((&BUILTINS as *const crate::vmcontext::VMBuiltinFunctions).cast());
            vm.field::<*const Instance>(offsets.instance())
                .write(&raw const *instance);
            vm.field::<u32>(offsets.magic())
                .write(kiln_artifact::vmoffsets::VMCTX_MAGIC);
        }
    }

    /// Points the vmctx at each import (checking that its kind matches) and fills the func
    /// refs of imported functions.
    fn link_imports(
        &mut self,
        instance: &mut Instance,
        module: &LoadedModule,
        imports: &[Extern],
    ) -> Result<(), InstantiateError> {
        let info = module.info();
        let offsets = instance.offsets;
        let code_base = module.code_base();
        for (import, ext) in info.imports.iter().zip(imports) {
            match (import.index.native(), *ext) {
                (EntityIndex::Function(i), Extern::Func(f)) => {
                    let import_ty = info.functions[i].ty.native();
                    let wasm_to_array = code_base.wrapping_add(
                        info.trampolines[import_ty].wasm_to_array.start.to_native() as usize,
                    );
                    let (record, type_id) = match f.owner() {
                        FuncOwner::Host(h) => {
                            let func_ref = self.host_func_ref(h);
                            if func_ref.wasm_call.is_null() {
                                func_ref.wasm_call = wasm_to_array;
                            }
                            let record = VMFunctionImport {
                                wasm_call: wasm_to_array,
                                vmctx: func_ref.vmctx,
                            };
                            (record, func_ref.type_id)
                        }
                        FuncOwner::Wasm(..) => {
                            // SAFETY: a wasm function's func ref lives in the vmctx of its
                            // instance, which was initialised before this one could import it.
                            let r = unsafe { *self.wasm_func_ref(f) };
                            let record = VMFunctionImport {
                                wasm_call: r.wasm_call,
                                vmctx: r.vmctx,
                            };
                            (record, r.type_id)
                        }
                    };
                    let func_ref = VMFuncRef {
                        wasm_call: record.wasm_call,
                        vmctx: record.vmctx,
                        type_id,
                    };
                    let vm = &instance.vmctx;
                    // SAFETY: both fields come from `VMContextAlloc::field` (bounds-checked)
                    // at this module's offsets for function `i`, which do not overlap.
                    unsafe {
                        vm.field::<VMFunctionImport>(offsets.imported_function(i.0))
                            .write(record);
                        vm.field::<VMFuncRef>(offsets.func_ref(i.0)).write(func_ref);
                    }
                    instance.imported_funcs.push(f);
                }
                (EntityIndex::Table(i), Extern::Table(t)) => {
                    let table = &mut self.tables[t.0 as usize];
                    let def = table.definition();
                    instance.table_ptrs.push(&mut **table);
                    let vm = &instance.vmctx;
                    // SAFETY: a bounds-checked field at this module's offset for table `i`.
                    unsafe {
                        vm.field::<*mut VMTableDefinition>(offsets.imported_table(i.0))
                            .write(def)
                    };
                    instance.tables.push(t);
                }
                (EntityIndex::Memory(i), Extern::Memory(m)) => {
                    let mem = &mut self.memories[m.0 as usize];
                    let vm = &instance.vmctx;
                    // SAFETY: a bounds-checked field at this module's offset for memory `i`.
                    unsafe {
                        vm.field::<*mut VMMemoryDefinition>(offsets.imported_memory(i.0))
                            .write(mem.definition())
                    };
                    instance.memory_ptrs.push(&mut **mem);
                    instance.memories.push(m);
                }
                (EntityIndex::Global(i), Extern::Global(g)) => {
                    let vm = &instance.vmctx;
                    // SAFETY: a bounds-checked field at this module's offset for global `i`.
                    unsafe {
                        vm.field::<*mut VMGlobalDefinition>(offsets.imported_global(i.0))
                            .write(self.globals[g.0 as usize].definition)
                    };
                    instance.globals.push(g);
                }
                (index, ext) => {
                    return Err(InstantiateError::Resource(format!(
                        "import {}::{} is {index:?} but was given {ext:?}",
                        import.module, import.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Creates the module's own memories, their definitions inline in the vmctx.
    fn create_memories(
        &mut self,
        instance: &mut Instance,
        module: &LoadedModule,
    ) -> Result<(), InstantiateError> {
        let info = module.info();
        let (vm, offsets) = (&instance.vmctx, instance.offsets);
        for (i, ty) in info
            .memories
            .iter()
            .skip(info.num_imported_memories.to_native() as usize)
        {
            let ty = MemoryType {
                min: ty.min.to_native(),
                max: ty.max.as_ref().map(|m| m.to_native()),
                memory64: ty.memory64,
                shared: ty.shared,
            };
            // A memory that gets the image mapped from a file may reuse a reservation left
            // warm with it (`Memory::has_image`).
            let mapped_image = info
                .memory_image
                .as_ref()
                .filter(|image| image.memory.native() == i)
                .and_then(|_| module.memory_image())
                .filter(|source| source.file.is_some())
                .map(|source| source.id);
            let mut mem = Memory::with_image(
                ty,
                self.config.memory_strategy,
                self.limits.memory_pages(),
                mapped_image,
            )
            .map_err(InstantiateError::Resource)?;
            let defined = i.0 - info.num_imported_memories.to_native();
            let slot = vm.field::<VMMemoryDefinition>(offsets.defined_memory(defined));
            // SAFETY: the slot lies in the vmctx, which lives as long as the store that owns
            // this memory.
            unsafe { mem.relocate_definition(slot) };
            let mid = MemoryId(self.memories.len() as u32);
            instance.memory_ptrs.push(&mut *mem);
            self.memories.push(mem);
            instance.memories.push(mid);
        }
        Ok(())
    }

    /// Creates the module's own tables (all null), their definitions inline in the vmctx.
    fn create_tables(
        &mut self,
        instance: &mut Instance,
        module: &LoadedModule,
    ) -> Result<(), InstantiateError> {
        let info = module.info();
        let (vm, offsets) = (&instance.vmctx, instance.offsets);
        for (i, ty) in info
            .tables
            .iter()
            .skip(info.num_imported_tables.to_native() as usize)
        {
            let ty = table_type(ty);
            // SAFETY: null is a valid element of every table.
            let mut table = unsafe { Table::new(ty, std::ptr::null(), self.limits.table_elements) }
                .map_err(InstantiateError::Resource)?;
            if ty.element == RefType::FuncRef {
                let source: *const Instance = &raw const *instance;
                // SAFETY: the instance is boxed and kept by the store as long as the table
                // (`instantiate` keeps it even if initialisation fails), and its segment
                // items are its own func refs or constant funcrefs: valid elements.
                table.set_initial(unsafe { InitialElements::new(source) });
            }
            let defined = i.0 - info.num_imported_tables.to_native();
            let slot = vm.field::<VMTableDefinition>(offsets.defined_table(defined));
            // SAFETY: the slot lies in the vmctx, which lives as long as the store that owns
            // this table.
            unsafe { table.relocate_definition(slot) };
            let tid = TableId(self.tables.len() as u32);
            instance.table_ptrs.push(&mut *table);
            self.tables.push(table);
            instance.tables.push(tid);
        }
        Ok(())
    }

    /// Creates the module's own globals, in order: an initialiser may read the globals
    /// before it.
    fn create_globals(&mut self, instance: &mut Instance, module: &LoadedModule) {
        let info = module.info();
        let offsets = instance.offsets;
        for (i, decl) in info
            .globals
            .iter()
            .skip(info.num_imported_globals.to_native() as usize)
        {
            let value = match decl.init.as_ref() {
                Some(e) => instance.const_value(e),
                None => ValRaw::default(),
            };
            let defined = i.0 - info.num_imported_globals.to_native();
            let slot = instance
                .vmctx
                .field::<VMGlobalDefinition>(offsets.defined_global(defined));
            // SAFETY: a bounds-checked field at this module's offset for the global.
            unsafe {
                slot.write(VMGlobalDefinition {
                    bytes: value.get_u128().to_le_bytes(),
                })
            };
            let gid = GlobalId(self.globals.len() as u32);
            self.globals.push(GlobalData {
                ty: global_type(&decl.ty),
                definition: slot,
                _own: None,
            });
            instance.globals.push(gid);
        }
    }

    /// Writes the element segments, then the data segments (or the memory image), as
    /// WebAssembly 2.0 instantiation does: each active segment as `table.init` or
    /// `memory.init` followed by its drop. The first that does not fit traps, leaving the
    /// writes before it in place. A segment for a `funcref` table of this instance is only
    /// placed, not written ([`place_segment`]).
    fn write_segments(
        &mut self,
        instance: &Instance,
        module: &LoadedModule,
    ) -> Result<(), InstantiateError> {
        let info = module.info();
        for (e, seg) in info.elements.iter() {
            match &seg.kind {
                ArchivedElemKind::Active { table, offset } => {
                    let table = table.native().0;
                    let dst = instance.const_value(offset).get_u32();
                    let len = segment_len(&seg.items) as u32;
                    if !place_segment(instance, table, e.0, dst, len) {
                        instance
                            .table_init(table, e.0, dst, 0, len)
                            .map_err(|code| InstantiateError::Trap(Trap::new(code)))?;
                    }
                    instance.elem_drop(e.0);
                }
                ArchivedElemKind::Declared => instance.elem_drop(e.0),
                ArchivedElemKind::Passive => {}
            }
        }
        match info.memory_image.as_ref() {
            Some(image) => self.write_memory_image(instance, module, image)?,
            None => {
                for (d, seg) in info.data.iter() {
                    if let ArchivedDataKind::Active { memory, offset } = &seg.kind {
                        let dst = instance.const_value(offset).get_u32();
                        let len = seg.bytes.len.to_native();
                        instance
                            .memory_init(memory.native().0, d.0, u64::from(dst), 0, len)
                            .map_err(|code| InstantiateError::Trap(Trap::new(code)))?;
                        instance.data_drop(d.0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the module's memory image instead of its active data segments, which the
    /// image holds (checked loads verify that they all target its memory, in bounds), and
    /// drops those segments as instantiation does.
    fn write_memory_image(
        &mut self,
        instance: &Instance,
        module: &LoadedModule,
        image: &ArchivedMemoryImage,
    ) -> Result<(), InstantiateError> {
        let source = module
            .memory_image()
            .ok_or_else(|| InstantiateError::Resource("the memory image is missing".into()))?;
        let memory = instance
            .memories
            .get(image.memory.native().0 as usize)
            .ok_or_else(|| InstantiateError::Resource("the memory image has no memory".into()))?;
        let memory = &mut self.memories[memory.0 as usize];
        if !memory.has_image(&source.id) {
            // SAFETY: the file holds the image bytes at that offset, and the caller of the
            // module's load promised not to change its file (an in-memory file is sealed);
            // the loader names the image by that file and range.
            unsafe { memory.write_image(source.id, source.bytes, source.file) }
                .map_err(InstantiateError::Resource)?;
        }
        for (d, seg) in module.info().data.iter() {
            if let ArchivedDataKind::Active { .. } = seg.kind {
                instance.data_drop(d.0);
            }
        }
        Ok(())
    }
}

/// Places active element segment `elem` in table `table` of `instance` without writing it,
/// if the table is one of the instance's own `funcref` tables and the segment fits: its
/// elements read as the segment's items until written (`crate::table`). Segments for
/// imported tables, which other instances may already have written, and those that do not
/// fit (which trap) take the eager path.
fn place_segment(instance: &Instance, table: u32, elem: u32, dst: u32, len: u32) -> bool {
    if table < instance.info().num_imported_tables.to_native() {
        return false;
    }
    // SAFETY: instantiation holds the store mutably, so no other reference to the table is
    // alive (`Instance::table`'s contract).
    match unsafe { instance.table(table) } {
        Ok(table) => table.place_segment(elem, dst, len),
        Err(_) => false,
    }
}
