//! Stores, the contexts that borrow them, and the `Caller` given to host functions.

use std::sync::atomic::{AtomicU64, Ordering};

use kiln_runtime::{InstanceId, StoreLimits};

use crate::{Engine, Extern};

/// What the runtime store holds for the facade: the engine, a unique id and the user data.
#[doc(hidden)]
pub struct StoreData<T> {
    pub(crate) engine: Engine,
    pub(crate) id: u64,
    pub(crate) data: T,
}

pub(crate) type RStore<T> = kiln_runtime::Store<StoreData<T>>;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Owns instances, functions, memories, tables and globals, plus host data of type `T`.
/// Everything created in a store lives until the store is dropped.
pub struct Store<T> {
    inner: RStore<T>,
}

impl<T: 'static> Store<T> {
    /// Creates an empty store for `engine` holding `data`.
    pub fn new(engine: &Engine, data: T) -> Self {
        let data = StoreData {
            engine: engine.clone(),
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            data,
        };
        let mut inner = kiln_runtime::Store::new(engine.store_config(), data);
        inner.opaque_mut().set_epoch_counter(engine.epoch_counter());
        Store { inner }
    }
}

impl<T> Store<T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.inner.data().data
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data_mut().data
    }

    /// The engine of this store.
    pub fn engine(&self) -> &Engine {
        &self.inner.data().engine
    }

    /// Limits what the store may allocate from now on: memory and table sizes (growing
    /// past them returns -1 in wasm and an error on the host) and the number of instances,
    /// memories and tables (creating more fails).
    pub fn set_limits(&mut self, limits: StoreLimits) {
        self.inner.opaque_mut().set_limits(limits);
    }

    /// Code compiled with `Config::epoch_interruption` traps with `TrapCode::Interrupt` once
    /// the engine's epoch has advanced `ticks` past its current value (the default deadline
    /// is never).
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        self.inner.opaque_mut().set_epoch_deadline(ticks);
    }

    /// Whether some memory of this store could not grow because of [`Store::set_limits`]
    /// (wasm saw -1 from `memory.grow`), as opposed to its own maximum.
    pub fn memory_limit_reached(&self) -> bool {
        self.inner.opaque().memory_limit_reached()
    }

    /// The store's limits.
    pub fn limits(&self) -> StoreLimits {
        self.inner.opaque().limits()
    }
}

impl<T> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.inner.data().id)
            .finish_non_exhaustive()
    }
}

/// A shared borrow of a store.
pub struct StoreContext<'a, T>(pub(crate) &'a RStore<T>);

/// An exclusive borrow of a store.
pub struct StoreContextMut<'a, T>(pub(crate) &'a mut RStore<T>);

impl<T> StoreContext<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data().data
    }
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.data().engine
    }
}

impl<T> StoreContextMut<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data().data
    }
    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data_mut().data
    }
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.data().engine
    }
}

/// Types that give shared access to a store: `Store<T>`, `&Store<T>`, `&mut Store<T>`,
/// store contexts and `Caller`.
pub trait AsContext {
    /// The store's host data type.
    type Data: 'static;
    /// Borrows the store.
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Types that give exclusive access to a store.
pub trait AsContextMut: AsContext {
    /// Borrows the store mutably.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T: 'static> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(&self.inner)
    }
}
impl<T: 'static> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(&mut self.inner)
    }
}
impl<T: 'static> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T: 'static> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T: 'static> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.0)
    }
}
impl<T: 'static> AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.store)
    }
}
impl<T: 'static> AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.store)
    }
}
impl<C: AsContext + ?Sized> AsContext for &C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}
impl<C: AsContext + ?Sized> AsContext for &mut C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}
impl<C: AsContextMut + ?Sized> AsContextMut for &mut C {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, C::Data> {
        (**self).as_context_mut()
    }
}

impl<'a, T> From<&'a Store<T>> for StoreContext<'a, T> {
    fn from(s: &'a Store<T>) -> Self {
        StoreContext(&s.inner)
    }
}
impl<'a, T> From<&'a mut Store<T>> for StoreContext<'a, T> {
    fn from(s: &'a mut Store<T>) -> Self {
        StoreContext(&s.inner)
    }
}
impl<'a, T> From<StoreContextMut<'a, T>> for StoreContext<'a, T> {
    fn from(s: StoreContextMut<'a, T>) -> Self {
        StoreContext(s.0)
    }
}
impl<'a, T> From<&'a StoreContextMut<'_, T>> for StoreContext<'a, T> {
    fn from(s: &'a StoreContextMut<'_, T>) -> Self {
        StoreContext(s.0)
    }
}
impl<'a, T> From<&'a Caller<'_, T>> for StoreContext<'a, T> {
    fn from(c: &'a Caller<'_, T>) -> Self {
        StoreContext(c.store)
    }
}
impl<'a, T> From<&'a mut Caller<'_, T>> for StoreContext<'a, T> {
    fn from(c: &'a mut Caller<'_, T>) -> Self {
        StoreContext(c.store)
    }
}
impl<'a, T> From<&'a mut Store<T>> for StoreContextMut<'a, T> {
    fn from(s: &'a mut Store<T>) -> Self {
        StoreContextMut(&mut s.inner)
    }
}
impl<'a, T> From<&'a mut StoreContextMut<'_, T>> for StoreContextMut<'a, T> {
    fn from(s: &'a mut StoreContextMut<'_, T>) -> Self {
        StoreContextMut(s.0)
    }
}
impl<'a, T> From<&'a mut Caller<'_, T>> for StoreContextMut<'a, T> {
    fn from(c: &'a mut Caller<'_, T>) -> Self {
        StoreContextMut(c.store)
    }
}

/// The context a host function runs in: the store and the calling instance.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut RStore<T>,
    pub(crate) instance: Option<InstanceId>,
}

impl<T> Caller<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.store.data().data
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.data_mut().data
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.store.data().engine
    }

    /// The export `name` of the calling instance (`None` when called from the host).
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        let instance = self.instance?;
        let ext = self.store.opaque().instance_export(instance, name)?;
        Some(Extern::from_runtime(self.store.data().id, ext))
    }
}

pub(crate) fn store_id<T>(store: &RStore<T>) -> u64 {
    store.data().id
}
