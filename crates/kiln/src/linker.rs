//! Linking imports by name.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_artifact::FuncType;
use kiln_runtime::HostFuncDef;

use crate::func::host_fn_from_dyn;
use crate::store::{StoreData, store_id};
use crate::{
    AsContext, AsContextMut, Caller, Engine, Error, Extern, Func, Instance, IntoFunc, Module,
    Result, Val,
};

type Names<V> = HashMap<String, V, foldhash::fast::RandomState>;

enum Definition<T> {
    Extern(Extern),
    /// Made once, shared by every store the linker instantiates in.
    HostFunc(HostFuncDef<StoreData<T>>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(*e),
            Definition::HostFunc(def) => Definition::HostFunc(def.clone()),
        }
    }
}

/// Resolves imports by `module::name` and instantiates modules with them.
pub struct Linker<T> {
    engine: Engine,
    allow_shadowing: bool,
    /// Definitions by module name, then by name: looked up with `&str`s, so resolving an
    /// import allocates nothing, and hashed with foldhash (the embedder inserts the names;
    /// a module only looks them up), several times faster than SipHash for short names.
    defs: Names<Names<Definition<T>>>,
}

impl<T> Clone for Linker<T> {
    fn clone(&self) -> Self {
        Linker {
            engine: self.engine.clone(),
            allow_shadowing: self.allow_shadowing,
            defs: self.defs.clone(),
        }
    }
}

impl<T: 'static> Linker<T> {
    /// An empty linker for `engine`.
    pub fn new(engine: &Engine) -> Self {
        Linker {
            engine: engine.clone(),
            allow_shadowing: false,
            defs: Names::default(),
        }
    }

    /// Whether a later definition may replace an earlier one of the same name.
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) -> Result<&mut Self> {
        if !self.allow_shadowing && self.definition(module, name).is_some() {
            return Err(Error::Link(format!(
                "import `{module}::{name}` is already defined"
            )));
        }
        self.defs
            .entry(module.to_owned())
            .or_default()
            .insert(name.to_owned(), def);
        Ok(self)
    }

    fn definition(&self, module: &str, name: &str) -> Option<&Definition<T>> {
        self.defs.get(module)?.get(name)
    }

    /// Every `(module, name)` defined.
    fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.defs
            .iter()
            .flat_map(|(m, names)| names.keys().map(move |n| (m.as_str(), n.as_str())))
    }

    /// Defines `module::name` as `item`.
    pub fn define(
        &mut self,
        store: impl AsContext<Data = T>,
        module: &str,
        name: &str,
        item: impl Into<Extern>,
    ) -> Result<&mut Self> {
        let item = item.into();
        let ctx = store.as_context();
        item.to_runtime(ctx.0)?;
        self.insert(module, name, Definition::Extern(item))
    }

    /// Defines `module::name` as a host function made from a typed closure; each store that
    /// uses it gets its own function.
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, host) = f.into_host_fn();
        // SAFETY: `into_host_fn` writes results of the sealed scalar types of `ty` only, and
        // gives the closure a `Caller`, which cannot replace the store.
        let def = unsafe { HostFuncDef::new(Arc::new(ty), host) };
        self.insert(module, name, Definition::HostFunc(def))
    }

    /// Defines `module::name` as a host function of type `ty` working on [`Val`]s.
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let host = host_fn_from_dyn(ty.clone(), Arc::new(f));
        // SAFETY: `host_fn_from_dyn` checks every result's type and store before writing it,
        // and gives the closure a `Caller`, which cannot replace the store.
        let def = unsafe { HostFuncDef::new(Arc::new(ty), host) };
        self.insert(module, name, Definition::HostFunc(def))
    }

    /// Defines every export of `instance` under `module_name`.
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        module_name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        let exports: Vec<(String, Extern)> = instance.exports(store.as_context_mut()).collect();
        for (name, ext) in exports {
            self.insert(module_name, &name, Definition::Extern(ext))?;
        }
        Ok(self)
    }

    /// The item defined as `module::name`.
    pub fn get(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
        name: &str,
    ) -> Option<Extern> {
        let def = self.definition(module, name)?;
        let ctx = store.as_context_mut();
        Some(match def {
            Definition::Extern(e) => *e,
            Definition::HostFunc(def) => {
                let id = ctx.0.add_host_func(def);
                Extern::Func(Func {
                    store: store_id(ctx.0),
                    id,
                })
            }
        })
    }

    /// What the linker offers near a missing `module::name`, for the error message: the
    /// same name in other modules, or what the module defines, or which modules exist.
    fn what_is_defined(&self, module: &str, name: &str) -> String {
        let mut same_name: Vec<&str> = self
            .names()
            .filter(|&(m, n)| n == name && m != module)
            .map(|(m, _)| m)
            .collect();
        same_name.sort_unstable();
        if !same_name.is_empty() {
            let list: Vec<String> = same_name.iter().map(|m| format!("`{m}::{name}`")).collect();
            return format!("; the linker defines {}", list.join(", "));
        }
        let mut in_module: Vec<&str> = self
            .names()
            .filter(|&(m, _)| m == module)
            .map(|(_, n)| n)
            .collect();
        if !in_module.is_empty() {
            in_module.sort_unstable();
            let shown = in_module.len().min(8);
            let more = if in_module.len() > shown { ", ..." } else { "" };
            return format!(
                "; module `{module}` defines {}{more}",
                in_module[..shown].join(", ")
            );
        }
        let mut modules: Vec<&str> = self
            .defs
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(m, _)| m.as_str())
            .collect();
        modules.sort_unstable();
        modules.dedup();
        if modules.is_empty() {
            "; the linker defines nothing".to_owned()
        } else {
            format!(
                "; nothing is defined in module `{module}` (defined modules: {})",
                modules.join(", ")
            )
        }
    }

    /// Instantiates `module`, resolving each import by name.
    pub fn instantiate(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
    ) -> Result<Instance> {
        if !self.engine.same(module.engine()) {
            return Err(Error::Link(
                "module and linker belong to different engines".into(),
            ));
        }
        let wanted = &module.info().imports;
        let mut imports = Vec::with_capacity(wanted.len());
        for (i, import) in wanted.iter().enumerate() {
            let (module_name, name) = (import.module.as_str(), import.name.as_str());
            let ext = self.get(&mut store, module_name, name).ok_or_else(|| {
                let ty = module.imports().nth(i).map(|import| import.ty());
                Error::Link(format!(
                    "unknown import: `{module_name}::{name}` of type {} has not been defined{}",
                    ty.map_or_else(String::new, |ty| ty.to_string()),
                    self.what_is_defined(module_name, name)
                ))
            })?;
            imports.push(ext);
        }
        let ctx = store.as_context_mut();
        Instance::new_in(ctx.0, module, &imports)
    }
}
