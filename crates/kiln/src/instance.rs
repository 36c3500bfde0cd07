//! Instances and import matching.

use kiln_runtime::InstanceId;

use crate::module::entity_type;
use crate::store::{RStore, store_id};
use crate::values::{WasmParams, WasmResults};
use crate::{
    AsContextMut, Error, Extern, ExternType, Func, Global, Memory, Module, Result, StoreContextMut,
    Table, TypedFunc,
};

/// An instantiated module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    store: u64,
    id: InstanceId,
}

/// Whether `actual` may be used where `expected` is imported (WebAssembly subtyping).
pub(crate) fn matches(expected: &ExternType, actual: &ExternType) -> bool {
    fn limits(emin: u64, emax: Option<u64>, amin: u64, amax: Option<u64>) -> bool {
        amin >= emin
            && match emax {
                None => true,
                Some(emax) => amax.is_some_and(|amax| amax <= emax),
            }
    }
    match (expected, actual) {
        (ExternType::Func(e), ExternType::Func(a)) => e == a,
        (ExternType::Table(e), ExternType::Table(a)) => {
            e.element == a.element
                && limits(
                    e.min.into(),
                    e.max.map(u64::from),
                    a.min.into(),
                    a.max.map(u64::from),
                )
        }
        (ExternType::Memory(e), ExternType::Memory(a)) => {
            e.memory64 == a.memory64 && e.shared == a.shared && limits(e.min, e.max, a.min, a.max)
        }
        (ExternType::Global(e), ExternType::Global(a)) => e == a,
        _ => false,
    }
}

impl Instance {
    /// Instantiates `module` with `imports` given in the module's import order.
    pub fn new(
        mut store: impl AsContextMut,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        let ctx = store.as_context_mut();
        Self::new_in(ctx.0, module, imports)
    }

    pub(crate) fn new_in<T: 'static>(
        store: &mut RStore<T>,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        if !store.data().engine.same(module.engine()) {
            return Err(Error::Link(
                "module and store belong to different engines".into(),
            ));
        }
        if imports.len() != module.imports().len() {
            return Err(Error::Link(format!(
                "module expects {} imports, {} were given",
                module.imports().len(),
                imports.len()
            )));
        }
        let sid = store_id(store);
        let mut raw = Vec::with_capacity(imports.len());
        let info = module.info();
        for (import, ext) in info.imports.iter().zip(imports) {
            let rext = ext.to_runtime(store)?;
            // Functions, nearly all imports, are compared in place; other kinds, and any
            // mismatch for its message, through owned types.
            let same_func = match (import.index.native(), ext) {
                (kiln_artifact::EntityIndex::Function(index), Extern::Func(f)) => {
                    let ty = info.functions[index].ty.native();
                    info.types[ty].matches(store.func_ty(f.id))
                }
                _ => false,
            };
            if !same_func {
                let actual = ext.ty(crate::StoreContext(&*store));
                let expected = entity_type(info, import.index.native());
                if !matches(&expected, &actual) {
                    return Err(Error::Link(format!(
                        "incompatible import type for `{}::{}`: expected {expected}, found {actual}",
                        import.module, import.name
                    )));
                }
            }
            raw.push(rext);
        }
        // SAFETY: every import belongs to this store (`to_runtime`) and its type matches the
        // module's import type (`matches` above: functions exactly, globals exactly, tables
        // and memories by element type and limits).
        let id = unsafe { store.instantiate(module.loaded(), &raw) }.map_err(|e| match e {
            kiln_runtime::InstantiateError::Resource(m) => Error::Instantiation(m),
            kiln_runtime::InstantiateError::Trap(t) => Error::Trap(t.into()),
            kiln_runtime::InstantiateError::Host(h) => Error::from_host(h),
        })?;
        Ok(Instance { store: sid, id })
    }

    /// The export `name`.
    pub fn get_export(&self, mut store: impl AsContextMut, name: &str) -> Option<Extern> {
        let ctx = store.as_context_mut();
        assert_eq!(
            self.store,
            store_id(ctx.0),
            "instance used with the wrong store"
        );
        let ext = ctx.0.opaque().instance_export(self.id, name)?;
        Some(Extern::from_runtime(self.store, ext))
    }

    /// The exported function `name`.
    pub fn get_func(&self, store: impl AsContextMut, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported function `name` with a typed signature.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        mut store: impl AsContextMut,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        let f = self
            .get_func(&mut store, name)
            .ok_or_else(|| Error::Type(format!("no exported function named `{name}`")))?;
        f.typed(&store)
    }

    /// The exported memory `name`.
    pub fn get_memory(&self, store: impl AsContextMut, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    /// The exported table `name`.
    pub fn get_table(&self, store: impl AsContextMut, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }

    /// The exported global `name`.
    pub fn get_global(&self, store: impl AsContextMut, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }

    /// Every export, in module order.
    pub fn exports<'a, T: 'a>(
        &'a self,
        store: impl Into<StoreContextMut<'a, T>>,
    ) -> impl Iterator<Item = (String, Extern)> + 'a {
        let ctx = store.into();
        assert_eq!(
            self.store,
            store_id(ctx.0),
            "instance used with the wrong store"
        );
        let opaque = ctx.0.opaque();
        let info = opaque.instance(self.id).info();
        let items: Vec<(String, Extern)> = info
            .exports
            .iter()
            .map(|(name, index)| {
                let ext = opaque.instance_item(self.id, index.native());
                (
                    name.as_str().to_owned(),
                    Extern::from_runtime(self.store, ext),
                )
            })
            .collect();
        items.into_iter()
    }
}
