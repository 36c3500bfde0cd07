//! Stores: the owner of every instance, function, memory, table and global, plus calls into
//! wasm and instantiation.

use std::any::Any;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_artifact::{
    ArchivedDataKind, ArchivedElemItems, ArchivedElemKind, ArchivedModuleInfo, DefinedFuncIndex,
    EntityIndex, FuncIndex, FuncType, GlobalType, MemoryType, TableType, TrapCode,
};

use crate::builtins::BUILTINS;
use crate::func::{HostFn, host_fn, new_host_context};
use crate::instance::{Instance, VMContextAlloc};
use crate::limits::StoreLimits;
use crate::loader::LoadedModule;
use crate::memory::{Memory, MemoryStrategy};
use crate::table::Table;
use crate::traphandlers::{self, HostError, UnwindReason};
use crate::vmcontext::{
    VMFuncRef, VMFunctionImport, VMGlobalDefinition, VMHostFuncContext, VMMemoryDefinition,
    VMStoreContext, VMTableDefinition, ValRaw,
};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
    };
}
id!(
    /// An instance of a store.
    InstanceId
);
/// A function of a store: a host function, or a defined function of an instance. The id
/// says which, so instantiation creates nothing per function: the id of an instance's
/// function is its instance and index, and what the store knows of it is read from the
/// module when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncId {
    /// The instance, or [`FuncId::HOST`] for host functions.
    owner: u32,
    /// The defined-function index in the instance, or the host function's index.
    index: u32,
}

/// What a [`FuncId`] names.
enum FuncOwner {
    Host(usize),
    Wasm(InstanceId, DefinedFuncIndex),
}

impl FuncId {
    const HOST: u32 = u32::MAX;

    fn host(index: usize) -> FuncId {
        FuncId {
            owner: Self::HOST,
            index: index as u32,
        }
    }

    pub(crate) fn wasm(instance: InstanceId, index: DefinedFuncIndex) -> FuncId {
        FuncId {
            owner: instance.0,
            index: index.0,
        }
    }

    fn owner(self) -> FuncOwner {
        if self.owner == Self::HOST {
            FuncOwner::Host(self.index as usize)
        } else {
            FuncOwner::Wasm(InstanceId(self.owner), DefinedFuncIndex(self.index))
        }
    }
}
id!(
    /// A memory of a store.
    MemoryId
);
id!(
    /// A table of a store.
    TableId
);
id!(
    /// A global of a store.
    GlobalId
);

/// An item of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extern {
    /// A function.
    Func(FuncId),
    /// A table.
    Table(TableId),
    /// A memory.
    Memory(MemoryId),
    /// A global.
    Global(GlobalId),
}

/// How a store runs code.
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Memory strategy matching the code's bounds checks.
    pub memory_strategy: MemoryStrategy,
    /// Stack bytes wasm may use below the outermost entry.
    pub max_wasm_stack: usize,
}

/// One wasm frame of a trap's backtrace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's index in its module.
    pub func_index: u32,
    /// Its name from the name section, if it has one.
    pub func_name: Option<String>,
    /// The wasm offset of the instruction executing in this frame (the trapping instruction
    /// in the innermost frame, the call in the others), if known.
    pub wasm_offset: Option<u32>,
}

/// A trap: why and where wasm stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// The trap code.
    pub code: TrapCode,
    /// The function it happened in, if known.
    pub func_index: Option<u32>,
    /// That function's name, if it has one.
    pub func_name: Option<String>,
    /// The wasm instruction's offset in the module's bytes, if known.
    pub wasm_offset: Option<u32>,
    /// The wasm frames from the trapping one outwards (up to 33), for this entry from the
    /// host; empty when the trap did not happen in wasm code.
    pub backtrace: Vec<FrameInfo>,
}

impl Trap {
    /// A trap with only a code (e.g. raised during instantiation).
    pub fn new(code: TrapCode) -> Trap {
        Trap {
            code,
            func_index: None,
            func_name: None,
            wasm_offset: None,
            backtrace: Vec::new(),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Wasm trapped.
    Trap(Trap),
    /// A host function returned an error.
    Host(HostError),
}

/// Why instantiation failed.
#[derive(Debug)]
pub enum InstantiateError {
    /// A resource could not be allocated.
    Resource(String),
    /// A segment did not fit, or the start function trapped.
    Trap(Trap),
    /// A host function called by the start function failed.
    Host(HostError),
}

/// A host function of the store.
struct HostFunc {
    ctx: Box<VMHostFuncContext>,
    /// Its own func ref, filled the first time a module provides a trampoline for it.
    func_ref: Box<VMFuncRef>,
    ty: FuncType,
}

/// A global's storage.
struct GlobalData {
    ty: GlobalType,
    definition: *mut VMGlobalDefinition,
    _own: Option<Box<VMGlobalDefinition>>,
}

/// The part of a store that does not depend on its data type.
///
/// Items are boxed on purpose: vmctx fields, imports and builtins point at them, so their
/// addresses must not change when the vectors grow.
#[allow(clippy::vec_box, clippy::box_collection)]
pub struct StoreOpaque {
    ctx: Box<VMStoreContext>,
    config: StoreConfig,
    // Instances are dropped after the items that their vmctx describes (field order).
    host_funcs: Vec<HostFunc>,
    memories: Vec<Box<Memory>>,
    tables: Vec<Box<Table>>,
    globals: Vec<GlobalData>,
    instances: Vec<Box<Instance>>,
    modules: Vec<Arc<LoadedModule>>,
    code_ranges: Box<Vec<(usize, usize)>>,
    /// The func refs of host functions (boxes of their own), by address.
    host_func_refs: HashMap<usize, FuncId>,
    /// Where each instance's array of func refs starts in its vmctx, with its instance and
    /// length: a func ref pointer of a wasm function is found by one ordered lookup, so
    /// instantiation registers one range instead of one entry per function.
    func_ref_arrays: BTreeMap<usize, (InstanceId, usize)>,
    /// The host objects behind `externref` values; a value is its index plus one. Objects
    /// live as long as the store (there is no collection while it lives), and are dropped
    /// with it, wherever wasm left references to them.
    extern_objects: Vec<Box<dyn Any + Send + Sync>>,
    limits: StoreLimits,
    /// The engine's epoch counter, kept alive while the context points to it.
    epoch: Option<Arc<AtomicU64>>,
}

/// The epoch of stores whose engine has none: never advances.
static NO_EPOCH: AtomicU64 = AtomicU64::new(0);

/// A store with host data `D`.
pub struct Store<D> {
    opaque: StoreOpaque,
    data: D,
}

// SAFETY: the raw pointers in a store point into allocations the store owns (vmctx,
// memories, tables, host contexts) or into modules it keeps alive; host closures are
// `Send + Sync`. Nothing in a store is tied to the thread that created it: the signal
// handling state is per call, not per store.
unsafe impl<D: Send> Send for Store<D> {}
// SAFETY: shared access to a store only reads; mutation needs `&mut Store`.
unsafe impl<D: Sync> Sync for Store<D> {}

/// # Safety
/// `def` must be a valid global definition.
unsafe fn read_global(def: *const VMGlobalDefinition) -> ValRaw {
    // SAFETY: the caller guarantees validity.
    ValRaw::from_u128(u128::from_le_bytes(unsafe { (*def).bytes }))
}

impl<D: 'static> Store<D> {
    /// An empty store.
    pub fn new(config: StoreConfig, data: D) -> Store<D> {
        Store {
            opaque: StoreOpaque {
                ctx: Box::new(VMStoreContext {
                    stack_limit: 0,
                    epoch_deadline: u64::MAX,
                    epoch_counter: &NO_EPOCH,
                    store: std::ptr::null_mut(),
                    code_ranges: std::ptr::null(),
                    opaque: std::ptr::null(),
                }),
                config,
                host_funcs: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                instances: Vec::new(),
                modules: Vec::new(),
                code_ranges: Box::default(),
                host_func_refs: HashMap::new(),
                func_ref_arrays: BTreeMap::new(),
                extern_objects: Vec::new(),
                limits: StoreLimits::default(),
                epoch: None,
            },
            data,
        }
    }

    // ---------------------------------------------------------------- functions

    /// Creates a host function.
    ///
    /// # Safety
    /// `f` runs while wasm frames of this store are live: it must not move, replace or drop
    /// the store it is given (only use it through its methods), and it must write results of
    /// `ty`'s types into the value array, references among them null or valid in this store.
    pub unsafe fn new_host_func(&mut self, ty: FuncType, f: HostFn<D>) -> FuncId {
        let ctx = new_host_context::<D>(ty.clone(), f);
        let func_ref = Box::new(VMFuncRef {
            wasm_call: std::ptr::null(),
            vmctx: (&*ctx as *const VMHostFuncContext).cast_mut().cast(),
            type_id: ty.signature_id().0,
        });
        let ptr: *const VMFuncRef = &*func_ref;
        let id = FuncId::host(self.opaque.host_funcs.len());
        self.opaque.host_funcs.push(HostFunc { ctx, func_ref, ty });
        self.opaque.host_func_refs.insert(ptr as usize, id);
        id
    }

    /// Calls `func` with `values` holding its parameters; its results are written to the
    /// front of `values`, which must have at least `max(params, results)` slots (checked).
    ///
    /// # Safety
    /// The parameters must have the function's types, and reference parameters must be null
    /// or valid references of this store (a `funcref` is a `VMFuncRef` pointer that wasm
    /// calls through). The facade checks both.
    pub unsafe fn call(&mut self, func: FuncId, values: &mut [ValRaw]) -> Result<(), CallError> {
        let ty = self.opaque.func_ty(func);
        assert!(
            values.len() >= ty.params.len().max(ty.results.len()),
            "value array too short for the function's signature"
        );
        match func.owner() {
            FuncOwner::Host(i) => {
                let f = host_fn::<D>(&self.opaque.host_funcs[i].ctx);
                f(self, None, values).map_err(CallError::Host)
            }
            FuncOwner::Wasm(instance, index) => {
                let inst = &self.opaque.instances[instance.0 as usize];
                let info = inst.info();
                let compiled = &info.compiled[index];
                let func_index = FuncIndex(index.0 + info.num_imported_funcs.to_native());
                let ty = info.functions[func_index].ty.native();
                let base = inst.module.code_base();
                let tramp = base
                    .wrapping_add(info.trampolines[ty].array_to_wasm.start.to_native() as usize);
                let body = base.wrapping_add(compiled.body.start.to_native() as usize);
                let vmctx = inst.vmctx.as_ptr();
                self.enter_wasm(tramp, vmctx, body, values)
            }
        }
    }

    fn enter_wasm(
        &mut self,
        tramp: *const u8,
        vmctx: *mut u8,
        body: *const u8,
        values: &mut [ValRaw],
    ) -> Result<(), CallError> {
        let max_stack = self.opaque.config.max_wasm_stack;
        let ranges: *const Vec<(usize, usize)> = &*self.opaque.code_ranges;
        let self_ptr: *mut Store<D> = self;
        let opaque: *const StoreOpaque = &self.opaque;
        let ctx: *mut VMStoreContext = &mut *self.opaque.ctx;
        // SAFETY: `ctx` is the store's boxed context; `store` points to this store, which
        // stays borrowed mutably for the whole call (host functions reach it only through
        // this pointer); tramp/body/vmctx come from a live instance of this store whose
        // module's code is in `code_ranges`; `values` was checked to be long enough.
        let result = unsafe {
            (*ctx).store = self_ptr.cast();
            (*ctx).code_ranges = ranges;
            (*ctx).opaque = opaque.cast();
            traphandlers::invoke(
                ctx,
                max_stack,
                tramp,
                vmctx,
                vmctx,
                body,
                values.as_mut_ptr(),
            )
        };
        match result {
            Ok(()) => Ok(()),
            Err(UnwindReason::Host(e)) => Err(CallError::Host(e)),
            Err(UnwindReason::Panic(p)) => std::panic::resume_unwind(p),
            Err(UnwindReason::Trap {
                pc,
                fault_address,
                signal,
                callers,
            }) => {
                let mut trap = self.opaque.trap_at(pc, fault_address, signal);
                trap.backtrace.extend(
                    callers
                        .iter()
                        .filter_map(|&ret| self.opaque.caller_frame(ret)),
                );
                Err(CallError::Trap(trap))
            }
        }
    }

    // ---------------------------------------------------------------- instantiation

    /// Instantiates `module` with `imports` (one per import, in module order) and runs its
    /// start function. Kinds are checked; types are not.
    ///
    /// # Safety
    /// Each import must have the type that the module declares for it: a function exactly
    /// its signature, a global its value type and mutability, a table its element type and
    /// limits, a memory its limits. Generated code relies on these without checking. The
    /// facade's linker checks them.
    pub unsafe fn instantiate(
        &mut self,
        module: &Arc<LoadedModule>,
        imports: &[Extern],
    ) -> Result<InstanceId, InstantiateError> {
        let (id, start) = self.opaque.instantiate(module, imports)?;
        if let Some(start) = start {
            let mut values = [];
            // SAFETY: a start function has no parameters.
            unsafe { self.call(start, &mut values) }.map_err(|e| match e {
                CallError::Trap(t) => InstantiateError::Trap(t),
                CallError::Host(h) => InstantiateError::Host(h),
            })?;
        }
        Ok(id)
    }
}

impl<D> Store<D> {
    /// The host data.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut D {
        &mut self.data
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.opaque.config
    }

    /// The signature of `func`.
    pub fn func_ty(&self, func: FuncId) -> &FuncType {
        self.opaque.func_ty(func)
    }

    /// The `*const VMFuncRef` of `func`, as stored in tables and `funcref` values.
    ///
    /// A host function that no module has imported yet has no wasm-callable entry; this
    /// borrows the wasm-to-array trampoline of its signature from a module of the store, and
    /// fails if there is none (wasm could not call it safely).
    pub fn func_ref(&mut self, func: FuncId) -> Result<*const VMFuncRef, String> {
        let index = match func.owner() {
            FuncOwner::Wasm(..) => return Ok(self.opaque.wasm_func_ref(func)),
            FuncOwner::Host(i) => i,
        };
        let StoreOpaque {
            host_funcs,
            modules,
            ..
        } = &mut self.opaque;
        let host = &mut host_funcs[index];
        if host.func_ref.wasm_call.is_null() {
            let trampoline = modules.iter().find_map(|m| {
                let info = m.info();
                let (ty, _) = info.types.iter().find(|(_, t)| t.matches(&host.ty))?;
                let start = info.trampolines.get(ty)?.wasm_to_array.start.to_native();
                Some(m.code_base().wrapping_add(start as usize))
            });
            match trampoline {
                Some(t) => host.func_ref.wasm_call = t,
                None => {
                    return Err(format!(
                        "host function of type {} cannot be used as a funcref before a \
                         module with that signature is instantiated in the store",
                        host.ty
                    ));
                }
            }
        }
        Ok(&*host.func_ref)
    }

    /// The function a `VMFuncRef` pointer names, if it is one of this store's.
    pub fn func_from_ref(&self, ptr: *const VMFuncRef) -> Option<FuncId> {
        self.opaque.func_from_ref(ptr)
    }

    /// The type-independent part.
    pub fn opaque(&self) -> &StoreOpaque {
        &self.opaque
    }

    /// The type-independent part, mutably.
    pub fn opaque_mut(&mut self) -> &mut StoreOpaque {
        &mut self.opaque
    }
}

impl StoreOpaque {
    /// The function a `VMFuncRef` pointer names, if it is one of this store's.
    pub fn func_from_ref(&self, ptr: *const VMFuncRef) -> Option<FuncId> {
        let address = ptr as usize;
        if let Some(id) = self.host_func_refs.get(&address) {
            return Some(*id);
        }
        let (&start, &(instance, len)) = self.func_ref_arrays.range(..=address).next_back()?;
        let stride = kiln_artifact::vmoffsets::func_ref::SIZE as usize;
        let offset = address - start;
        if !offset.is_multiple_of(stride) || offset / stride >= len {
            return None;
        }
        let index = FuncIndex((offset / stride) as u32);
        Some(self.instances[instance.0 as usize].func(index))
    }

    /// The signature of `func`.
    pub fn func_ty(&self, func: FuncId) -> &FuncType {
        match func.owner() {
            FuncOwner::Host(i) => &self.host_funcs[i].ty,
            FuncOwner::Wasm(instance, index) => {
                let instance = &self.instances[instance.0 as usize];
                let info = instance.info();
                let func_index = FuncIndex(index.0 + info.num_imported_funcs.to_native());
                let ty = info.functions[func_index].ty.native();
                &instance.module.func_types()[ty.0 as usize]
            }
        }
    }

    /// The func ref of a wasm function: its slot in its instance's vmctx.
    fn wasm_func_ref(&self, func: FuncId) -> *const VMFuncRef {
        let FuncOwner::Wasm(instance, index) = func.owner() else {
            unreachable!("wasm_func_ref of a host function")
        };
        let instance = &self.instances[instance.0 as usize];
        let func_index = index.0 + instance.info().num_imported_funcs.to_native();
        instance
            .vmctx
            .as_ptr()
            .wrapping_add(instance.offsets.func_ref(func_index) as usize)
            .cast_const()
            .cast()
    }

    /// The exact type of the function a `VMFuncRef` pointer names, if it is one of this
    /// store's.
    pub fn func_type_of_ref(&self, ptr: *const VMFuncRef) -> Option<&FuncType> {
        self.func_from_ref(ptr).map(|id| self.func_ty(id))
    }

    fn trap_at(&self, pc: usize, fault_address: Option<usize>, signal: i32) -> Trap {
        let module = self.modules.iter().find(|m| {
            let (s, e) = m.code_range();
            pc >= s && pc < e
        });
        let Some(module) = module else {
            return Trap::new(TrapCode::UnreachableCodeReached);
        };
        let info = module.info();
        let offset = (pc - module.code_base() as usize) as u32;
        let record = info.lookup_trap(offset);
        let code = match record {
            Some(r) => r.code.native(),
            None => {
                // Every instruction of generated code that may fault has a trap record
                // (memory accesses, explicit checks, the stack check in each prologue). A
                // fault anywhere else means a Kiln bug or corrupted state: continuing would
                // hide it behind an ordinary-looking trap.
                let func = info
                    .func_at_code_offset(offset)
                    .map(|d| d.0 + info.num_imported_funcs.to_native());
                let cause = if signal == libc::SIGBUS {
                    "; a SIGBUS there means the artifact file was truncated while mapped, \
                     which the unsafe deserialize_file contract forbids (sealed loads read the \
                     file into memory instead)"
                } else {
                    "; this is a bug in Kiln"
                };
                eprintln!(
                    "kiln: fatal: signal {signal} at pc {pc:#x} (code offset {offset:#x}, \
                     function {func:?}, fault address {fault_address:x?}) in generated code \
                     that has no trap record{cause}"
                );
                std::process::abort();
            }
        };
        let func_index = info
            .func_at_code_offset(offset)
            .map(|d| d.0 + info.num_imported_funcs.to_native());
        let func_name = func_index
            .and_then(|f| info.func_name(FuncIndex(f)))
            .map(str::to_owned);
        let wasm_offset = record
            .map(|r| r.wasm_offset.to_native())
            .filter(|&o| o != u32::MAX);
        Trap {
            code,
            func_index,
            func_name: func_name.clone(),
            wasm_offset,
            backtrace: func_index
                .map(|f| FrameInfo {
                    func_index: f,
                    func_name,
                    wasm_offset,
                })
                .into_iter()
                .collect(),
        }
    }

    /// The frame of a wasm caller whose call returns to `ret`, if `ret` is in a module of
    /// this store.
    fn caller_frame(&self, ret: usize) -> Option<FrameInfo> {
        let module = self.modules.iter().find(|m| {
            let (s, e) = m.code_range();
            ret > s && ret <= e
        })?;
        let info = module.info();
        let offset = (ret - module.code_base() as usize) as u32;
        let defined = info.func_at_code_offset(offset - 1)?;
        let func_index = defined.0 + info.num_imported_funcs.to_native();
        Some(FrameInfo {
            func_index,
            func_name: info.func_name(FuncIndex(func_index)).map(str::to_owned),
            wasm_offset: info.lookup_call_site(offset).filter(|&o| o != u32::MAX),
        })
    }

    fn register_module(&mut self, module: &Arc<LoadedModule>) {
        if !self.modules.iter().any(|m| Arc::ptr_eq(m, module)) {
            self.modules.push(module.clone());
            if module.code_len() > 0 {
                self.code_ranges.push(module.code_range());
            }
        }
    }

    fn instantiate(
        &mut self,
        module: &Arc<LoadedModule>,
        imports: &[Extern],
    ) -> Result<(InstanceId, Option<FuncId>), InstantiateError> {
        let info: &ArchivedModuleInfo = module.info();
        if imports.len() != info.imports.len() {
            return Err(InstantiateError::Resource(format!(
                "expected {} imports, got {}",
                info.imports.len(),
                imports.len()
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
        // Sizes too, before anything is allocated, so a refused instantiation leaves
        // nothing behind in the store.
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
        self.register_module(module);
        let offsets = info.vmoffsets(8);
        let vmctx = VMContextAlloc::new(offsets.size());
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
        let result = self.initialize(&mut instance, module, imports);
        // Registered even if initialisation failed: its segments may have written func
        // refs of this instance into imported tables before the failure.
        if !info.functions.is_empty() {
            let start = instance.vmctx.as_ptr() as usize + offsets.func_ref(0) as usize;
            self.func_ref_arrays
                .insert(start, (id, info.functions.len()));
        }
        self.instances.push(instance);
        result.map(|start| (id, start))
    }

    /// Fills the vmctx of a new instance, allocates its items and writes its segments.
    /// Returns its start function.
    fn initialize(
        &mut self,
        instance: &mut Instance,
        module: &Arc<LoadedModule>,
        imports: &[Extern],
    ) -> Result<Option<FuncId>, InstantiateError> {
        let info: &ArchivedModuleInfo = module.info();
        let offsets = instance.offsets;
        let vm = &instance.vmctx;
        let code_base = module.code_base();
        // SAFETY: (for every write below): each field pointer comes from `VMContextAlloc::field`,
        // which bounds-checks the offset against the allocation, and the offsets come from
        // this module's `VMOffsets`, so fields do not overlap.
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

        // Imports.
        let mut import_funcs = Vec::new();
        for (import, ext) in info.imports.iter().zip(imports) {
            match (import.index.native(), *ext) {
                (EntityIndex::Function(i), Extern::Func(f)) => {
                    let import_ty = info.functions[i].ty.native();
                    let wasm_to_array = code_base.wrapping_add(
                        info.trampolines[import_ty].wasm_to_array.start.to_native() as usize,
                    );
                    let record = match f.owner() {
                        FuncOwner::Host(h) => VMFunctionImport {
                            wasm_call: wasm_to_array,
                            vmctx: (&*self.host_funcs[h].ctx as *const VMHostFuncContext)
                                .cast_mut()
                                .cast(),
                        },
                        FuncOwner::Wasm(..) => {
                            // SAFETY: a wasm function's func ref lives in the vmctx of its
                            // instance, which was initialised before this one could import it.
                            let r = unsafe { *self.wasm_func_ref(f) };
                            VMFunctionImport {
                                wasm_call: r.wasm_call,
                                vmctx: r.vmctx,
                            }
                        }
                    };
                    // SAFETY: see above.
                    unsafe {
                        vm.field::<VMFunctionImport>(offsets.imported_function(i.0))
                            .write(record)
                    };
                    if let FuncOwner::Host(h) = f.owner()
                        && self.host_funcs[h].func_ref.wasm_call.is_null()
                    {
                        self.host_funcs[h].func_ref.wasm_call = wasm_to_array;
                    }
                    import_funcs.push((i, f, record));
                    instance.imported_funcs.push(f);
                }
                (EntityIndex::Table(i), Extern::Table(t)) => {
                    let table = &mut self.tables[t.0 as usize];
                    let def = table.definition();
                    instance.table_ptrs.push(&mut **table);
                    // SAFETY: see above.
                    unsafe {
                        vm.field::<*mut VMTableDefinition>(offsets.imported_table(i.0))
                            .write(def)
                    };
                    instance.tables.push(t);
                }
                (EntityIndex::Memory(i), Extern::Memory(m)) => {
                    let mem = &mut self.memories[m.0 as usize];
                    // SAFETY: see above.
                    unsafe {
                        vm.field::<*mut VMMemoryDefinition>(offsets.imported_memory(i.0))
                            .write(mem.definition())
                    };
                    instance.memory_ptrs.push(&mut **mem);
                    instance.memories.push(m);
                }
                (EntityIndex::Global(i), Extern::Global(g)) => {
                    // SAFETY: see above.
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

        // Func refs of every function (the ids of defined ones are their indices).
        let num_imported_funcs = info.num_imported_funcs.to_native();
        for (i, f, record) in &import_funcs {
            let sig = self.func_ty(*f).signature_id().0;
            let slot = vm.field::<VMFuncRef>(offsets.func_ref(i.0));
            // SAFETY: see above.
            unsafe {
                slot.write(VMFuncRef {
                    wasm_call: record.wasm_call,
                    vmctx: record.vmctx,
                    type_id: sig,
                })
            };
        }
        for (def_index, compiled) in info.compiled.iter() {
            let func_index = FuncIndex(def_index.0 + num_imported_funcs);
            let decl = &info.functions[func_index];
            let slot = vm.field::<VMFuncRef>(offsets.func_ref(func_index.0));
            // SAFETY: see above.
            unsafe {
                slot.write(VMFuncRef {
                    wasm_call: code_base.wrapping_add(compiled.body.start.to_native() as usize),
                    vmctx: vm.as_ptr(),
                    type_id: decl.signature.native().0,
                })
            };
        }

        // Defined memories.
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
            let mut mem = Memory::new(ty, self.config.memory_strategy, self.limits.memory_pages())
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

        // Defined tables.
        for (i, ty) in info
            .tables
            .iter()
            .skip(info.num_imported_tables.to_native() as usize)
        {
            let ty = table_type(ty);
            // SAFETY: null is a valid element of every table.
            let mut table = unsafe { Table::new(ty, std::ptr::null(), self.limits.table_elements) }
                .map_err(InstantiateError::Resource)?;
            let defined = i.0 - info.num_imported_tables.to_native();
            let slot = vm.field::<VMTableDefinition>(offsets.defined_table(defined));
            // SAFETY: as for memories.
            unsafe { table.relocate_definition(slot) };
            let tid = TableId(self.tables.len() as u32);
            instance.table_ptrs.push(&mut *table);
            self.tables.push(table);
            instance.tables.push(tid);
        }

        // Defined globals, in order: an initialiser may read the globals before it.
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
            let slot = vm.field::<VMGlobalDefinition>(offsets.defined_global(defined));
            // SAFETY: see above.
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

        // Segments, WebAssembly 2.0: element segments then data segments, in order, each
        // active one written as `table.init`/`memory.init` followed by its drop. The first
        // that does not fit traps, leaving the writes before it in place.
        for (e, seg) in info.elements.iter() {
            match &seg.kind {
                ArchivedElemKind::Active { table, offset } => {
                    let dst = instance.const_value(offset).get_u32();
                    let len = match &seg.items {
                        ArchivedElemItems::Functions(fs) => fs.len(),
                        ArchivedElemItems::Exprs(es) => es.len(),
                    } as u32;
                    instance
                        .table_init(table.native().0, e.0, dst, 0, len)
                        .map_err(|code| InstantiateError::Trap(Trap::new(code)))?;
                    instance.elem_drop(e.0);
                }
                ArchivedElemKind::Declared => instance.elem_drop(e.0),
                ArchivedElemKind::Passive => {}
            }
        }
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

        let start = info.start.as_ref().map(|s| instance.func(s.native()));
        Ok(start)
    }

    // ---------------------------------------------------------------- accessors

    /// The instance `id`.
    pub fn instance(&self, id: InstanceId) -> &Instance {
        &self.instances[id.0 as usize]
    }

    /// The item that `instance` exports as `name`.
    pub fn instance_export(&self, id: InstanceId, name: &str) -> Option<Extern> {
        let inst = self.instance(id);
        let index = inst.info().exports.get(name)?.native();
        Some(self.instance_item(id, index))
    }

    /// The item at `index` of `instance`'s index spaces.
    pub fn instance_item(&self, id: InstanceId, index: EntityIndex) -> Extern {
        let inst = self.instance(id);
        match index {
            EntityIndex::Function(i) => Extern::Func(inst.func(i)),
            EntityIndex::Table(i) => Extern::Table(inst.tables[i.0 as usize]),
            EntityIndex::Memory(i) => Extern::Memory(inst.memories[i.0 as usize]),
            EntityIndex::Global(i) => Extern::Global(inst.globals[i.0 as usize]),
        }
    }

    /// The memory `id`.
    pub fn memory(&self, id: MemoryId) -> &Memory {
        &self.memories[id.0 as usize]
    }

    /// The memory `id`, mutably.
    pub fn memory_mut(&mut self, id: MemoryId) -> &mut Memory {
        &mut self.memories[id.0 as usize]
    }

    /// Creates a host memory.
    pub fn new_memory(&mut self, ty: MemoryType) -> Result<MemoryId, String> {
        self.check_count("memories", self.memories.len(), self.limits.memories)?;
        let mem = Memory::new(ty, self.config.memory_strategy, self.limits.memory_pages())?;
        self.memories.push(mem);
        Ok(MemoryId(self.memories.len() as u32 - 1))
    }

    /// The table `id`.
    pub fn table(&self, id: TableId) -> &Table {
        &self.tables[id.0 as usize]
    }

    /// The table `id`, mutably.
    pub fn table_mut(&mut self, id: TableId) -> &mut Table {
        &mut self.tables[id.0 as usize]
    }

    /// Creates a host table.
    ///
    /// # Safety
    /// As for [`Table::new`].
    pub unsafe fn new_table(
        &mut self,
        ty: TableType,
        init: *const VMFuncRef,
    ) -> Result<TableId, String> {
        self.check_count("tables", self.tables.len(), self.limits.tables)?;
        // SAFETY: forwarded from this function's contract.
        let table = unsafe { Table::new(ty, init, self.limits.table_elements) }?;
        self.tables.push(table);
        Ok(TableId(self.tables.len() as u32 - 1))
    }

    /// Makes interruptible code of this store watch `counter` (the engine's epoch).
    pub fn set_epoch_counter(&mut self, counter: Arc<AtomicU64>) {
        self.ctx.epoch_counter = Arc::as_ptr(&counter);
        self.epoch = Some(counter);
    }

    /// Interruptible code traps once the epoch has advanced `ticks` past its current value.
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        // SAFETY: `epoch_counter` points to `NO_EPOCH` or to the counter `self.epoch` keeps
        // alive.
        let now = unsafe { (*self.ctx.epoch_counter).load(Ordering::Relaxed) };
        self.ctx.epoch_deadline = now.saturating_add(ticks);
    }

    /// Whether some memory of the store could not grow because of the store's limit.
    pub fn memory_limit_reached(&self) -> bool {
        self.memories.iter().any(|m| m.limit_reached())
    }

    /// The store's resource limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Sets the store's resource limits; they apply to items created afterwards.
    pub fn set_limits(&mut self, limits: StoreLimits) {
        self.limits = limits;
    }

    /// Fails if the store already holds `limit` items of a kind.
    fn check_count(&self, what: &str, count: usize, limit: usize) -> Result<(), String> {
        if count >= limit {
            return Err(format!("the store's limit of {limit} {what} is reached"));
        }
        Ok(())
    }

    /// Stores a host object and returns the raw, non-zero `externref` value that names it.
    pub fn new_extern_object(&mut self, object: Box<dyn Any + Send + Sync>) -> u64 {
        self.extern_objects.push(object);
        self.extern_objects.len() as u64
    }

    /// The host object named by a raw, non-null `externref` value.
    pub fn extern_object(&self, raw: u64) -> Option<&(dyn Any + Send + Sync)> {
        let index = usize::try_from(raw.checked_sub(1)?).ok()?;
        self.extern_objects.get(index).map(|b| &**b)
    }

    /// Creates a host global holding `value`.
    ///
    /// # Safety
    /// `value` must be a value of `ty.content`; a reference null or valid in this store.
    pub unsafe fn new_global(&mut self, ty: GlobalType, value: ValRaw) -> GlobalId {
        let mut own = Box::new(VMGlobalDefinition {
            bytes: value.get_u128().to_le_bytes(),
        });
        let definition: *mut VMGlobalDefinition = &mut *own;
        self.globals.push(GlobalData {
            ty,
            definition,
            _own: Some(own),
        });
        GlobalId(self.globals.len() as u32 - 1)
    }

    /// The type of global `id`.
    pub fn global_ty(&self, id: GlobalId) -> GlobalType {
        self.globals[id.0 as usize].ty
    }

    /// The value of global `id`.
    pub fn global_get(&self, id: GlobalId) -> ValRaw {
        // SAFETY: global definitions stay valid for the store's lifetime.
        unsafe { read_global(self.globals[id.0 as usize].definition) }
    }

    /// Sets global `id`.
    ///
    /// # Safety
    /// As for [`StoreOpaque::new_global`], with the global's type; mutability is the
    /// caller's business (wasm cannot tell).
    pub unsafe fn global_set(&mut self, id: GlobalId, value: ValRaw) {
        let def = self.globals[id.0 as usize].definition;
        // SAFETY: global definitions stay valid for the store's lifetime; `&mut self` means
        // no wasm of this store runs concurrently.
        unsafe {
            (*def).bytes = value.get_u128().to_le_bytes();
        }
    }
}

/// The native form of an archived table type.
pub fn table_type(ty: &kiln_artifact::ArchivedTableType) -> TableType {
    TableType {
        element: match ty.element {
            kiln_artifact::ArchivedRefType::FuncRef => kiln_artifact::RefType::FuncRef,
            kiln_artifact::ArchivedRefType::ExternRef => kiln_artifact::RefType::ExternRef,
        },
        min: ty.min.to_native(),
        max: ty.max.as_ref().map(|m| m.to_native()),
    }
}

/// The native form of an archived global type.
pub fn global_type(ty: &kiln_artifact::ArchivedGlobalType) -> GlobalType {
    GlobalType {
        content: ty.content.native(),
        mutable: ty.mutable,
    }
}

/// Native forms of archived types, for the facade.
pub mod convert {
    pub use super::{global_type, table_type};

    /// The native form of an archived memory type.
    pub fn memory_type(ty: &kiln_artifact::ArchivedMemoryType) -> kiln_artifact::MemoryType {
        kiln_artifact::MemoryType {
            min: ty.min.to_native(),
            max: ty.max.as_ref().map(|m| m.to_native()),
            memory64: ty.memory64,
            shared: ty.shared,
        }
    }
}
