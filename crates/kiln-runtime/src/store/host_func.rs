//! Host functions: their contexts, and the array-call shim through which wasm calls them.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use kiln_artifact::FuncType;
use kiln_artifact::vmoffsets::HOST_FUNC_MAGIC;

use crate::ids::InstanceId;
use crate::instance::Instance;
use crate::traphandlers::{self, HostError, UnwindReason};
use crate::vmcontext::{HostFuncData, VMHostFuncContext, VMStoreContext, ValRaw};

use super::Store;

/// A host function over a store with data `D`: gets the store, the calling instance (if
/// called from wasm) and the value array (params in, results out).
pub type HostFn<D> = Arc<
    dyn Fn(&mut Store<D>, Option<InstanceId>, &mut [ValRaw]) -> Result<(), HostError> + Send + Sync,
>;

/// A host function that any number of stores with data `D` can hold: its context is made
/// once (a linker makes one per definition) and shared, so adding it to a store allocates
/// nothing of its own. Immutable once made.
pub struct HostFuncDef<D> {
    ctx: Arc<VMHostFuncContext>,
    _data: PhantomData<fn(D)>,
}

impl<D> Clone for HostFuncDef<D> {
    fn clone(&self) -> Self {
        HostFuncDef {
            ctx: self.ctx.clone(),
            _data: PhantomData,
        }
    }
}

impl<D: 'static> HostFuncDef<D> {
    /// A host function of signature `ty` calling `f`.
    ///
    /// # Safety
    /// `f` runs while wasm frames of a store are live: it must not move, replace or drop
    /// the store it is given (only use it through its methods), and it must write results
    /// of `ty`'s types into the value array, references among them null or valid in that
    /// store.
    pub unsafe fn new(ty: Arc<FuncType>, f: HostFn<D>) -> Self {
        HostFuncDef {
            ctx: Arc::new(VMHostFuncContext {
                array_call: array_call_shim::<D>,
                magic: HOST_FUNC_MAGIC,
                func: HostFuncData {
                    ty,
                    callee: Box::new(f),
                },
            }),
            _data: PhantomData,
        }
    }
}

impl<D> HostFuncDef<D> {
    /// The shared context, which only stores with data `D` may call.
    pub(crate) fn context(&self) -> &Arc<VMHostFuncContext> {
        &self.ctx
    }

    /// The function's signature.
    pub fn ty(&self) -> &Arc<FuncType> {
        &self.ctx.func.ty
    }
}

/// The host function of `ctx`, for stores with data `D`.
pub fn host_fn<D: 'static>(ctx: &VMHostFuncContext) -> HostFn<D> {
    ctx.func
        .callee
        .downcast_ref::<HostFn<D>>()
        .expect("host function used with a store of another data type")
        .clone()
}

/// Calls the host function behind `host_vmctx` with the caller found through
/// `caller_vmctx`.
///
/// # Safety
/// As for [`array_call_shim`].
unsafe fn call_host<D: 'static>(
    host_vmctx: *mut u8,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
) -> Result<(), HostError> {
    // SAFETY: the wasm-to-array trampoline passes the `VMHostFuncContext` it was linked with;
    // the store keeps it alive.
    let ctx = unsafe { &*host_vmctx.cast::<VMHostFuncContext>() };
    assert_eq!(ctx.magic, HOST_FUNC_MAGIC, "not a host function context");
    let f = host_fn::<D>(ctx);
    // SAFETY: the caller's vmctx is a live instance context whose first field points to its
    // store's `VMStoreContext`; the runtime set `store` to the running `Store<D>` on entry.
    let (store, instance) = unsafe {
        let store_ctx = caller_vmctx.cast::<*mut VMStoreContext>().read();
        let store = (*store_ctx).store.cast::<Store<D>>();
        let instance = Instance::from_vmctx(caller_vmctx).id;
        (&mut *store, instance)
    };
    // SAFETY: the trampoline passes an array of `len` slots that it owns for the call.
    let values = unsafe { std::slice::from_raw_parts_mut(values, len) };
    f(store, Some(instance), values)
}

/// The `array_call` of every host function context.
///
/// # Safety
/// Called only by a wasm-to-array trampoline, with a host context created by
/// [`HostFuncDef::<D>::new`], the vmctx of a calling instance of a `Store<D>` that is
/// running wasm on this thread, and a value array of `len` slots.
unsafe extern "C" fn array_call_shim<D: 'static>(
    host_vmctx: *mut u8,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
) {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        unsafe { call_host::<D>(host_vmctx, caller_vmctx, values, len) }
    }));
    let reason = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => UnwindReason::Host(e),
        Err(payload) => UnwindReason::Panic(payload),
    };
    // SAFETY: we were called by wasm on this thread, so an activation exists; `reason` is
    // moved into it and this frame holds nothing else that needs dropping.
    unsafe { traphandlers::raise(reason) }
}
