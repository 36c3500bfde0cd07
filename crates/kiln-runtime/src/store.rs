//! Stores: the owner of every instance, function, memory, table and global. Calls into wasm
//! live in `call`, host functions in [`host_func`], the builtins generated code calls in
//! [`builtins`], instantiation in `instantiate`, failures in `errors` and archived-to-native
//! type conversions in [`convert`]; the ids a store hands out are in [`crate::ids`], which
//! every other module can name without depending on stores.

pub mod builtins;
mod call;
pub mod convert;
mod errors;
pub mod host_func;
mod instantiate;

use crate::ids::FuncOwner;
pub use crate::ids::{Extern, FuncId, GlobalId, InstanceId, MemoryId, TableId};
pub use errors::{CallError, FrameInfo, InstantiateError, Trap};

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_artifact::{EntityIndex, FuncIndex, FuncType, GlobalType, MemoryType, TableType};

use crate::instance::Instance;
use crate::limits::StoreLimits;
use crate::loader::LoadedModule;
use crate::memory::{Memory, MemoryStrategy};
use crate::table::Table;
use crate::vmcontext::{VMFuncRef, VMGlobalDefinition, VMHostFuncContext, VMStoreContext, ValRaw};
use host_func::{HostFn, HostFuncDef};

/// How a store runs code.
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Memory strategy matching the code's bounds checks.
    pub memory_strategy: MemoryStrategy,
    /// Stack bytes wasm may use below the outermost entry.
    pub max_wasm_stack: usize,
}

/// A host function of the store: its shared context; its func ref lies in the store's
/// `host_func_refs`.
struct HostFunc {
    ctx: Arc<VMHostFuncContext>,
}

impl HostFunc {
    fn ty(&self) -> &FuncType {
        &self.ctx.func.ty
    }
}

/// Host func refs are kept in chunks of this many, so their addresses never move and a
/// store allocates once per chunk rather than once per function.
const HOST_FUNC_REF_CHUNK: usize = 32;

/// What lies at an address of [`StoreOpaque::func_refs`].
#[derive(Clone, Copy, Debug)]
enum FuncRefs {
    /// The func refs of an instance's functions, in index order.
    Instance { instance: InstanceId, len: usize },
    /// A chunk of host func refs, the first being that of host function `first`.
    Host { first: usize },
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
    /// The func refs of `host_funcs`, by index, in chunks of `HOST_FUNC_REF_CHUNK`.
    host_func_refs: Vec<Box<[VMFuncRef; HOST_FUNC_REF_CHUNK]>>,
    memories: Vec<Box<Memory>>,
    tables: Vec<Box<Table>>,
    globals: Vec<GlobalData>,
    instances: Vec<Box<Instance>>,
    modules: Vec<Arc<LoadedModule>>,
    code_ranges: Box<Vec<(usize, usize)>>,
    /// Where each instance's array of func refs starts in its vmctx, and where each host
    /// function's func ref lies: a func ref pointer is found by one ordered lookup, and
    /// instantiation registers one range instead of one entry per function.
    func_refs: BTreeMap<usize, FuncRefs>,
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
// SAFETY: what shared access to a store reaches through the facade (types, sizes, memory
// reads) only reads. The runtime's methods that write through `&self` (filling a func ref
// slot, `Instance::filled_func_ref`; writing back a lazily computed table element) are
// called only with the store held mutably: by the facade's `AsContextMut` methods, or by
// wasm code and builtins while an entry into wasm holds it. They are not for code that
// holds `&Store` on several threads.
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
                host_func_refs: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                instances: Vec::new(),
                modules: Vec::new(),
                code_ranges: Box::default(),
                func_refs: BTreeMap::new(),
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
    /// As for [`HostFuncDef::new`].
    pub unsafe fn new_host_func(&mut self, ty: Arc<FuncType>, f: HostFn<D>) -> FuncId {
        // SAFETY: forwarded from this function's contract.
        let def = unsafe { HostFuncDef::<D>::new(ty, f) };
        self.add_host_func(&def)
    }

    /// Adds a host function made for stores with data `D`; it shares `def`'s context.
    pub fn add_host_func(&mut self, def: &HostFuncDef<D>) -> FuncId {
        self.opaque.add_host_func(def.context().clone())
    }

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
            host_func_refs,
            modules,
            ..
        } = &mut self.opaque;
        let host = &host_funcs[index];
        let func_ref =
            &mut host_func_refs[index / HOST_FUNC_REF_CHUNK][index % HOST_FUNC_REF_CHUNK];
        if func_ref.wasm_call.is_null() {
            let trampoline = modules.iter().find_map(|m| {
                let info = m.info();
                let (ty, _) = info.types.iter().find(|(_, t)| t.matches(host.ty()))?;
                let start = info.trampolines.get(ty)?.wasm_to_array.start.to_native();
                Some(m.code_base().wrapping_add(start as usize))
            });
            match trampoline {
                Some(t) => func_ref.wasm_call = t,
                None => {
                    return Err(format!(
                        "host function of type {} cannot be used as a funcref before a \
                         module with that signature is instantiated in the store",
                        host.ty()
                    ));
                }
            }
        }
        Ok(func_ref)
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
    fn add_host_func(&mut self, ctx: Arc<VMHostFuncContext>) -> FuncId {
        let index = self.host_funcs.len();
        if index.is_multiple_of(HOST_FUNC_REF_CHUNK) {
            let chunk = Box::new([VMFuncRef::EMPTY; HOST_FUNC_REF_CHUNK]);
            self.func_refs
                .insert(chunk.as_ptr() as usize, FuncRefs::Host { first: index });
            self.host_func_refs.push(chunk);
        }
        *self.host_func_ref(index) = VMFuncRef {
            wasm_call: std::ptr::null(),
            vmctx: Arc::as_ptr(&ctx).cast_mut().cast(),
            type_id: ctx.func.ty.signature_id().0,
        };
        self.host_funcs.push(HostFunc { ctx });
        FuncId::host(index)
    }

    /// The func ref of host function `index`; its `wasm_call` is filled the first time a
    /// module provides a trampoline for its signature.
    fn host_func_ref(&mut self, index: usize) -> &mut VMFuncRef {
        &mut self.host_func_refs[index / HOST_FUNC_REF_CHUNK][index % HOST_FUNC_REF_CHUNK]
    }

    /// The function a `VMFuncRef` pointer names, if it is one of this store's.
    pub fn func_from_ref(&self, ptr: *const VMFuncRef) -> Option<FuncId> {
        let address = ptr as usize;
        let (&start, &refs) = self.func_refs.range(..=address).next_back()?;
        let stride = kiln_artifact::vmoffsets::func_ref::SIZE as usize;
        let offset = address - start;
        let (instance, len) = match refs {
            FuncRefs::Host { first } => {
                let index = first + offset / stride;
                let valid = offset.is_multiple_of(stride)
                    && offset / stride < HOST_FUNC_REF_CHUNK
                    && index < self.host_funcs.len();
                return valid.then(|| FuncId::host(index));
            }
            FuncRefs::Instance { instance, len } => (instance, len),
        };
        if !offset.is_multiple_of(stride) || offset / stride >= len {
            return None;
        }
        let index = FuncIndex((offset / stride) as u32);
        Some(self.instances[instance.0 as usize].func(index))
    }

    /// The signature of `func`.
    pub fn func_ty(&self, func: FuncId) -> &FuncType {
        match func.owner() {
            FuncOwner::Host(i) => self.host_funcs[i].ty(),
            FuncOwner::Wasm(instance, index) => {
                let instance = &self.instances[instance.0 as usize];
                let info = instance.info();
                let func_index = FuncIndex(index.0 + info.num_imported_funcs.to_native());
                let ty = info.functions[func_index].ty.native();
                &instance.module.func_types()[ty.0 as usize]
            }
        }
    }

    /// The func ref of a wasm function: its slot in its instance's vmctx, filled first if
    /// nothing has filled it yet (instantiation fills none).
    fn wasm_func_ref(&self, func: FuncId) -> *const VMFuncRef {
        let FuncOwner::Wasm(instance, index) = func.owner() else {
            unreachable!("wasm_func_ref of a host function")
        };
        let instance = &self.instances[instance.0 as usize];
        let func_index = index.0 + instance.info().num_imported_funcs.to_native();
        instance.filled_func_ref(FuncIndex(func_index))
    }

    /// The exact type of the function a `VMFuncRef` pointer names, if it is one of this
    /// store's.
    pub fn func_type_of_ref(&self, ptr: *const VMFuncRef) -> Option<&FuncType> {
        self.func_from_ref(ptr).map(|id| self.func_ty(id))
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
