//! Functions: host functions, calls from the host, and typed calls.

use std::marker::PhantomData;
use std::sync::Arc;

use kiln_artifact::FuncType;
use kiln_runtime::{FuncId, HostFn, ValRaw};

use crate::store::{RStore, StoreData, store_id};
use crate::values::{WasmParams, WasmResults, WasmRet, WasmTy};
use crate::{AsContext, AsContextMut, Caller, Error, Result, Val};

/// A function of a store: defined by wasm or by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) id: FuncId,
}

type DynHostFn<T> = dyn Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync;

pub(crate) fn host_fn_from_dyn<T: 'static>(
    ty: FuncType,
    f: Arc<DynHostFn<T>>,
) -> HostFn<StoreData<T>> {
    Arc::new(move |store: &mut RStore<T>, caller, raw: &mut [ValRaw]| {
        let params: Vec<Val> = ty
            .params
            .iter()
            .zip(raw.iter())
            .map(|(t, r)| Val::from_raw(store, *r, *t))
            .collect();
        let mut results: Vec<Val> = ty.results.iter().map(|t| Val::default_for(*t)).collect();
        f(
            Caller {
                store: &mut *store,
                instance: caller,
            },
            &params,
            &mut results,
        )
        .map_err(|e| Box::new(e) as kiln_runtime::HostError)?;
        for (i, (v, t)) in results.iter().zip(&ty.results).enumerate() {
            if v.ty() != *t {
                return Err(Box::new(Error::Type(format!(
                    "host function returned {} for result {i} of type {t}",
                    v.ty()
                ))) as kiln_runtime::HostError);
            }
            raw[i] = v
                .to_raw(store)
                .map_err(|e| Box::new(e) as kiln_runtime::HostError)?;
        }
        Ok(())
    })
}

impl Func {
    /// Creates a host function of type `ty` that gets and returns [`Val`]s.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Func {
        let ctx = store.as_context_mut();
        let host = host_fn_from_dyn(ty.clone(), Arc::new(f));
        // SAFETY: `host_fn_from_dyn` checks every result's type and store before writing
        // it, and gives the closure a `Caller`, which cannot replace the store.
        let id = unsafe { ctx.0.new_host_func(Arc::new(ty), host) };
        Func {
            store: store_id(ctx.0),
            id,
        }
    }

    /// Creates a host function from a Rust closure with typed parameters and results, e.g.
    /// `|a: i32, b: i32| a + b` or `|caller: Caller<'_, T>, x: f64| -> Result<()> { .. }`.
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let ctx = store.as_context_mut();
        let (ty, host) = f.into_host_fn();
        // SAFETY: `into_host_fn` writes results of the sealed scalar types of `ty` only, and
        // gives the closure a `Caller`, which cannot replace the store.
        let id = unsafe { ctx.0.new_host_func(Arc::new(ty), host) };
        Func {
            store: store_id(ctx.0),
            id,
        }
    }

    pub(crate) fn check_store<T>(&self, store: &RStore<T>) -> Result<()> {
        if self.store != store_id(store) {
            return Err(Error::Type("function used with the wrong store".into()));
        }
        Ok(())
    }

    fn assert_store<T>(&self, store: &RStore<T>) {
        assert_eq!(
            self.store,
            store_id(store),
            "function used with the wrong store"
        );
    }

    /// The function's type.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let ctx = store.as_context();
        self.assert_store(ctx.0);
        ctx.0.func_ty(self.id).clone()
    }

    /// Calls the function with `params`, writing its results into `results`.
    pub fn call(
        &self,
        mut store: impl AsContextMut,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        let ctx = store.as_context_mut();
        self.check_store(ctx.0)?;
        let ty = ctx.0.func_ty(self.id).clone();
        if params.len() != ty.params.len() {
            return Err(Error::Type(format!(
                "expected {} arguments, got {}",
                ty.params.len(),
                params.len()
            )));
        }
        if results.len() != ty.results.len() {
            return Err(Error::Type(format!(
                "expected {} results, got space for {}",
                ty.results.len(),
                results.len()
            )));
        }
        let mut raw = vec![ValRaw::default(); ty.params.len().max(ty.results.len())];
        for (i, (p, t)) in params.iter().zip(&ty.params).enumerate() {
            if p.ty() != *t {
                return Err(Error::Type(format!(
                    "argument {i} has type {}, expected {t}",
                    p.ty()
                )));
            }
            raw[i] = p.to_raw(ctx.0)?;
        }
        // SAFETY: every argument was checked against the parameter type above, and `to_raw`
        // checked that references belong to this store.
        unsafe { ctx.0.call(self.id, &mut raw) }.map_err(Error::from_call)?;
        for (i, t) in ty.results.iter().enumerate() {
            results[i] = Val::from_raw(ctx.0, raw[i], *t);
        }
        Ok(())
    }

    /// A typed view of this function; fails if `P` and `R` do not match its type.
    pub fn typed<P: WasmParams, R: WasmResults>(
        &self,
        store: impl AsContext,
    ) -> Result<TypedFunc<P, R>> {
        let ty = self.ty(store);
        let (p, r) = (P::valtypes(), R::valtypes());
        if ty.params != p || ty.results != r {
            return Err(Error::Type(format!(
                "function has type {ty}, not {}",
                FuncType::new(p, r)
            )));
        }
        Ok(TypedFunc {
            func: *self,
            marker: PhantomData,
        })
    }
}

/// A function with statically known parameter and result types.
pub struct TypedFunc<P, R> {
    func: Func,
    marker: PhantomData<fn(P) -> R>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

impl<P, R> std::fmt::Debug for TypedFunc<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFunc")
            .field("func", &self.func)
            .finish()
    }
}

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    /// Calls the function.
    pub fn call(&self, mut store: impl AsContextMut, params: P) -> Result<R> {
        let ctx = store.as_context_mut();
        self.func.check_store(ctx.0)?;
        let n = P::valtypes().len().max(R::valtypes().len());
        let mut raw = [ValRaw::default(); 8];
        let mut heap;
        let raw: &mut [ValRaw] = if n <= 8 {
            &mut raw[..n]
        } else {
            heap = vec![ValRaw::default(); n];
            &mut heap
        };
        params.store_raw(raw);
        // SAFETY: `Func::typed` checked that `P` is the function's parameter list, and the
        // sealed `WasmParams` types are scalars, which any bits make valid.
        unsafe { ctx.0.call(self.func.id, raw) }.map_err(Error::from_call)?;
        Ok(R::load_raw(raw))
    }

    /// The underlying function.
    pub fn func(&self) -> &Func {
        &self.func
    }
}

/// Closures that can become host functions: `Fn(A1, .., An) -> R` or
/// `Fn(Caller<'_, T>, A1, .., An) -> R` with up to 8 scalar parameters, where `R` is `()`,
/// a scalar, a tuple of scalars, or a `Result` of one of those.
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_host_fn(self) -> (FuncType, HostFn<StoreData<T>>);
}

fn host_err(e: Error) -> kiln_runtime::HostError {
    Box::new(e)
}

macro_rules! into_func {
    ($($a:ident)*) => {
        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<T: 'static, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, ($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_fn(self) -> (FuncType, HostFn<StoreData<T>>) {
                let ty = FuncType::new(vec![$($a::valtype()),*], R::Results::valtypes());
                let f = Arc::new(move |_store: &mut RStore<T>, _caller, raw: &mut [ValRaw]| {
                    let mut i = 0;
                    $(let $a = $a::from_raw(raw[i]); i += 1;)*
                    let r = (self)($($a),*).into_result().map_err(host_err)?;
                    r.store_raw(raw);
                    Ok(())
                });
                (ty, f)
            }
        }

        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<T: 'static, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, (Caller<'_, T>, $($a,)*), R> for F
        where
            F: for<'c> Fn(Caller<'c, T>, $($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_fn(self) -> (FuncType, HostFn<StoreData<T>>) {
                let ty = FuncType::new(vec![$($a::valtype()),*], R::Results::valtypes());
                let f = Arc::new(move |store: &mut RStore<T>, caller, raw: &mut [ValRaw]| {
                    let mut i = 0;
                    $(let $a = $a::from_raw(raw[i]); i += 1;)*
                    let caller = Caller { store, instance: caller };
                    let r = (self)(caller, $($a),*).into_result().map_err(host_err)?;
                    r.store_raw(raw);
                    Ok(())
                });
                (ty, f)
            }
        }
    };
}
into_func!();
into_func!(A1);
into_func!(A1 A2);
into_func!(A1 A2 A3);
into_func!(A1 A2 A3 A4);
into_func!(A1 A2 A3 A4 A5);
into_func!(A1 A2 A3 A4 A5 A6);
into_func!(A1 A2 A3 A4 A5 A6 A7);
into_func!(A1 A2 A3 A4 A5 A6 A7 A8);
