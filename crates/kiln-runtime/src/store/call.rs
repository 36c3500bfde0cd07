//! Calls into wasm: entering generated code through a function's array-to-wasm trampoline,
//! and turning a fault inside it back into a [`Trap`] with its wasm backtrace.

use kiln_artifact::{FuncIndex, TrapCode};

use super::host_func::host_fn;
use super::{CallError, FrameInfo, FuncId, FuncOwner, Store, StoreOpaque, Trap};
use crate::traphandlers::{self, UnwindReason};
use crate::vmcontext::{VMStoreContext, ValRaw};

impl<D: 'static> Store<D> {
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
}

impl StoreOpaque {
    pub(super) fn trap_at(&self, pc: usize, fault_address: Option<usize>, signal: i32) -> Trap {
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
            Some(r) => r.code,
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
        let wasm_offset = record.map(|r| r.wasm_offset).filter(|&o| o != u32::MAX);
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
    pub(super) fn caller_frame(&self, ret: usize) -> Option<FrameInfo> {
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
}
