//! Memories, tables, globals and the `Extern` that holds any item.

use kiln_artifact::{GlobalType, MemoryType, RefType, TableType, ValType};
use kiln_runtime::{GlobalId, MemoryId, TableId, VMFuncRef};

use crate::store::{RStore, store_id};
use crate::{
    AsContext, AsContextMut, Error, ExternType, Func, Result, StoreContext, StoreContextMut, Val,
};

fn assert_store<T>(handle_store: u64, store: &RStore<T>, what: &str) {
    assert_eq!(
        handle_store,
        store_id(store),
        "{what} used with the wrong store"
    );
}

/// A linear memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    store: u64,
    id: MemoryId,
}

impl Memory {
    pub(crate) fn from_id(store: u64, id: MemoryId) -> Memory {
        Memory { store, id }
    }

    pub(crate) fn id(&self) -> MemoryId {
        self.id
    }

    /// Creates a memory of type `ty` owned by the host.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let ctx = store.as_context_mut();
        let id = ctx
            .0
            .opaque_mut()
            .new_memory(ty)
            .map_err(Error::Instantiation)?;
        Ok(Memory {
            store: store_id(ctx.0),
            id,
        })
    }

    fn get<'a, T>(&self, store: &'a RStore<T>) -> &'a kiln_runtime::memory::Memory {
        assert_store(self.store, store, "memory");
        store.opaque().memory(self.id)
    }

    /// The memory's type, with its current size as minimum.
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        self.get(store.as_context().0).ty()
    }

    /// Current size in pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        self.get(store.as_context().0).size_pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        self.get(store.as_context().0).byte_len()
    }

    /// The memory's bytes.
    pub fn data<'a, T: 'a>(&self, store: impl Into<StoreContext<'a, T>>) -> &'a [u8] {
        let ctx = store.into();
        self.get(ctx.0).data()
    }

    /// The memory's bytes, mutably.
    pub fn data_mut<'a, T: 'a>(&self, store: impl Into<StoreContextMut<'a, T>>) -> &'a mut [u8] {
        let ctx = store.into();
        assert_store(self.store, ctx.0, "memory");
        ctx.0.opaque_mut().memory_mut(self.id).data_mut()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> Result<()> {
        let ctx = store.as_context();
        let data = self.get(ctx.0).data();
        let src = offset
            .checked_add(buf.len())
            .and_then(|end| data.get(offset..end))
            .ok_or_else(|| {
                Error::MemoryAccess(format!(
                    "read of {} bytes at {offset} exceeds the {}-byte memory",
                    buf.len(),
                    data.len()
                ))
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Copies `buf` into the memory at `offset`.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> Result<()> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "memory");
        let data = ctx.0.opaque_mut().memory_mut(self.id).data_mut();
        let len = data.len();
        let dst = offset
            .checked_add(buf.len())
            .and_then(|end| data.get_mut(offset..end))
            .ok_or_else(|| {
                Error::MemoryAccess(format!(
                    "write of {} bytes at {offset} exceeds the {len}-byte memory",
                    buf.len()
                ))
            })?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    /// Grows the memory by `delta_pages`; returns the old size in pages.
    pub fn grow(&self, mut store: impl AsContextMut, delta_pages: u64) -> Result<u64> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "memory");
        let mem = ctx.0.opaque_mut().memory_mut(self.id);
        mem.grow(delta_pages).ok_or_else(|| {
            Error::MemoryAccess(format!(
                "cannot grow memory of {} pages by {delta_pages} pages (maximum {})",
                mem.size_pages(),
                mem.max_pages()
            ))
        })
    }
}

/// A table of references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    store: u64,
    id: TableId,
}

fn ref_to_raw<T>(store: &mut RStore<T>, element: RefType, val: Val) -> Result<*const VMFuncRef> {
    match (element, val) {
        (RefType::FuncRef, Val::FuncRef(_)) | (RefType::ExternRef, Val::ExternRef(_)) => {
            Ok(val.to_raw(store)?.get_u64() as usize as *const VMFuncRef)
        }
        _ => Err(Error::Type(format!(
            "value of type {} cannot be stored in a {} table",
            val.ty(),
            match element {
                RefType::FuncRef => "funcref",
                RefType::ExternRef => "externref",
            }
        ))),
    }
}

impl Table {
    pub(crate) fn from_id(store: u64, id: TableId) -> Table {
        Table { store, id }
    }

    pub(crate) fn id(&self) -> TableId {
        self.id
    }

    /// Creates a table of type `ty` with every element set to `init`.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let ctx = store.as_context_mut();
        let init = ref_to_raw(ctx.0, ty.element, init)?;
        // SAFETY: `ref_to_raw` checked that `init` is a reference of the table's element type
        // and of this store.
        let id = unsafe { ctx.0.opaque_mut().new_table(ty, init) }.map_err(Error::Instantiation)?;
        Ok(Table {
            store: store_id(ctx.0),
            id,
        })
    }

    /// The table's type, with its current size as minimum.
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let ctx = store.as_context();
        assert_store(self.store, ctx.0, "table");
        ctx.0.opaque().table(self.id).ty()
    }

    /// Current number of elements.
    pub fn size(&self, store: impl AsContext) -> u32 {
        let ctx = store.as_context();
        assert_store(self.store, ctx.0, "table");
        ctx.0.opaque().table(self.id).size()
    }

    /// The element at `index`, or `None` if out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u32) -> Option<Val> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "table");
        let table = ctx.0.opaque().table(self.id);
        let raw = table.get(index)?;
        let ty = match table.ty().element {
            RefType::FuncRef => ValType::FuncRef,
            RefType::ExternRef => ValType::ExternRef,
        };
        Some(Val::from_raw(
            ctx.0,
            kiln_runtime::ValRaw::from_u64(raw as usize as u64),
            ty,
        ))
    }

    /// Sets the element at `index`.
    pub fn set(&self, mut store: impl AsContextMut, index: u32, val: Val) -> Result<()> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "table");
        let element = ctx.0.opaque().table(self.id).ty().element;
        let raw = ref_to_raw(ctx.0, element, val)?;
        // SAFETY: `ref_to_raw` checked `raw` against the table's element type and store.
        if unsafe { ctx.0.opaque_mut().table_mut(self.id).set(index, raw) } {
            Ok(())
        } else {
            Err(Error::Trap(crate::Trap::new(
                kiln_artifact::TrapCode::TableOutOfBounds,
            )))
        }
    }

    /// Grows the table by `delta` elements set to `init`; returns the old size.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u32, init: Val) -> Result<u32> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "table");
        let element = ctx.0.opaque().table(self.id).ty().element;
        let raw = ref_to_raw(ctx.0, element, init)?;
        // SAFETY: `ref_to_raw` checked `raw` against the table's element type and store.
        unsafe { ctx.0.opaque_mut().table_mut(self.id).grow(delta, raw) }
            .ok_or_else(|| Error::Instantiation(format!("cannot grow table by {delta} elements")))
    }
}

/// A global variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Global {
    store: u64,
    id: GlobalId,
}

impl Global {
    pub(crate) fn from_id(store: u64, id: GlobalId) -> Global {
        Global { store, id }
    }

    pub(crate) fn id(&self) -> GlobalId {
        self.id
    }

    /// Creates a global of type `ty` holding `val`.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global> {
        let ctx = store.as_context_mut();
        if val.ty() != ty.content {
            return Err(Error::Type(format!(
                "global of type {} cannot hold a {}",
                ty.content,
                val.ty()
            )));
        }
        let raw = val.to_raw(ctx.0)?;
        // SAFETY: `val` has the global's type (checked above) and `to_raw` checked that a
        // reference belongs to this store.
        let id = unsafe { ctx.0.opaque_mut().new_global(ty, raw) };
        Ok(Global {
            store: store_id(ctx.0),
            id,
        })
    }

    /// The global's type.
    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let ctx = store.as_context();
        assert_store(self.store, ctx.0, "global");
        ctx.0.opaque().global_ty(self.id)
    }

    /// The current value.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "global");
        let ty = ctx.0.opaque().global_ty(self.id);
        Val::from_raw(ctx.0, ctx.0.opaque().global_get(self.id), ty.content)
    }

    /// Sets the value; fails for immutable globals and values of another type.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<()> {
        let ctx = store.as_context_mut();
        assert_store(self.store, ctx.0, "global");
        let ty = ctx.0.opaque().global_ty(self.id);
        if !ty.mutable {
            return Err(Error::Type("cannot set an immutable global".into()));
        }
        if val.ty() != ty.content {
            return Err(Error::Type(format!(
                "global of type {} cannot hold a {}",
                ty.content,
                val.ty()
            )));
        }
        let raw = val.to_raw(ctx.0)?;
        // SAFETY: as in `Global::new`.
        unsafe { ctx.0.opaque_mut().global_set(self.id, raw) };
        Ok(())
    }
}

/// Any item that can be imported or exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A table.
    Table(Table),
    /// A memory.
    Memory(Memory),
    /// A global.
    Global(Global),
}

impl Extern {
    pub(crate) fn from_runtime(store: u64, ext: kiln_runtime::Extern) -> Extern {
        match ext {
            kiln_runtime::Extern::Func(id) => Extern::Func(Func { store, id }),
            kiln_runtime::Extern::Table(id) => Extern::Table(Table::from_id(store, id)),
            kiln_runtime::Extern::Memory(id) => Extern::Memory(Memory::from_id(store, id)),
            kiln_runtime::Extern::Global(id) => Extern::Global(Global::from_id(store, id)),
        }
    }

    pub(crate) fn to_runtime<T>(self, store: &RStore<T>) -> Result<kiln_runtime::Extern> {
        let (s, ext) = match self {
            Extern::Func(f) => (f.store, kiln_runtime::Extern::Func(f.id)),
            Extern::Table(t) => (t.store, kiln_runtime::Extern::Table(t.id())),
            Extern::Memory(m) => (m.store, kiln_runtime::Extern::Memory(m.id())),
            Extern::Global(g) => (g.store, kiln_runtime::Extern::Global(g.id())),
        };
        if s != store_id(store) {
            return Err(Error::Link("import belongs to another store".into()));
        }
        Ok(ext)
    }

    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        match self {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }
    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        match self {
            Extern::Table(t) => Some(t),
            _ => None,
        }
    }
    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        match self {
            Extern::Memory(m) => Some(m),
            _ => None,
        }
    }
    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        match self {
            Extern::Global(g) => Some(g),
            _ => None,
        }
    }

    /// The item's type.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        match self {
            Extern::Func(f) => ExternType::Func(f.ty(store)),
            Extern::Table(t) => ExternType::Table(t.ty(store)),
            Extern::Memory(m) => ExternType::Memory(m.ty(store)),
            Extern::Global(g) => ExternType::Global(g.ty(store)),
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}
