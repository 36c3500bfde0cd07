//! Calls: direct calls to defined functions (PC-relative, resolved by the linker), calls to
//! imported functions through their `VMFunctionImport`, and `call_indirect` through a table
//! with bounds, null and signature checks.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    self, ExtFuncData, ExternalName, InstBuilder, UserExternalName, types,
};
use kiln_artifact::vmoffsets::{func_ref, function_import};
use kiln_artifact::{Builtin, DefinedFuncIndex, FuncIndex, TableIndex, TrapCode, TypeIndex};
use wasmparser::Operator;

use super::FuncTranslator;
use crate::CompileError;
use crate::abi::{POINTER_TYPE, clif_trap, wasm_signature};

impl FuncTranslator<'_, '_> {
    /// Translates `call` and `call_indirect`.
    pub(super) fn call_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        match *op {
            Operator::Call { function_index } => self.call(FuncIndex(function_index)),
            Operator::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(TypeIndex(type_index), TableIndex(table_index)),
            _ => unreachable!("not a call operator: {op:?}"),
        }
        Ok(())
    }

    fn call(&mut self, func: FuncIndex) {
        let info = self.module.info;
        let ty = info.functions[func].ty;
        let num_params = info.types[ty].params.len();
        let params = self.popn(num_params);
        let call = match info.defined_func_index(func) {
            Some(defined) => {
                let args = [&[self.vmctx, self.vmctx][..], &params].concat();
                let callee = self.direct_callee(defined, ty);
                self.builder.ins().call(callee, &args)
            }
            None => {
                let import = self.module.offsets.imported_function(func.0);
                let code = self.load_vm_constant(
                    POINTER_TYPE,
                    self.vmctx,
                    import + function_import::WASM_CALL,
                );
                let callee_vmctx = self.load_vm_constant(
                    POINTER_TYPE,
                    self.vmctx,
                    import + function_import::VMCTX,
                );
                let args = [&[callee_vmctx, self.vmctx][..], &params].concat();
                let sig = self.signature(ty);
                self.builder.ins().call_indirect(sig, code, &args)
            }
        };
        self.push_results(call);
    }

    /// `call_indirect` per `docs/design.md`: bounds check, null check, signature check,
    /// then a call through the `VMFuncRef`.
    fn call_indirect(&mut self, ty: TypeIndex, table: TableIndex) {
        let info = self.module.info;
        let num_params = info.types[ty].params.len();
        let expected = info.types[ty].signature_id();
        let index = self.pop();
        let params = self.popn(num_params);

        let slot = self.table_slot(table, index, TrapCode::IndirectCallOutOfBounds);
        let funcref = self.load_element(table, index, slot);
        self.builder
            .ins()
            .trapz(funcref, clif_trap(TrapCode::IndirectCallToNull));
        let type_id = self.load_vm(types::I64, funcref, func_ref::TYPE_ID);
        let mismatch = self
            .builder
            .ins()
            .icmp_imm_u(IntCC::NotEqual, type_id, expected.0 as i64);
        self.builder
            .ins()
            .trapnz(mismatch, clif_trap(TrapCode::BadSignature));
        if expected.is_hashed() {
            // Equal hashes do not prove equal signatures: compare them out of line.
            let type_index = self.builder.ins().iconst(types::I32, i64::from(ty.0));
            self.call_checked_builtin(
                Builtin::SignatureCheck,
                &[type_index, funcref],
                TrapCode::BadSignature,
            );
        }

        let code = self.load_vm(POINTER_TYPE, funcref, func_ref::WASM_CALL);
        let callee_vmctx = self.load_vm(POINTER_TYPE, funcref, func_ref::VMCTX);
        let args = [&[callee_vmctx, self.vmctx][..], &params].concat();
        let sig = self.signature(ty);
        let call = self.builder.ins().call_indirect(sig, code, &args);
        self.push_results(call);
    }

    fn push_results(&mut self, call: ir::Inst) {
        let results = self.builder.inst_results(call).to_vec();
        self.stack.extend(results);
    }

    /// The wasm-convention signature of type `ty`, imported once per function.
    fn signature(&mut self, ty: TypeIndex) -> ir::SigRef {
        if let Some(&sig) = self.signatures.get(&ty) {
            return sig;
        }
        let sig = wasm_signature(&self.module.info.types[ty], self.module.call_conv);
        let sig = self.builder.import_signature(sig);
        self.signatures.insert(ty, sig);
        sig
    }

    /// The function reference of defined function `func`, named `u0:index` so that the
    /// linker can resolve the call.
    fn direct_callee(&mut self, func: DefinedFuncIndex, ty: TypeIndex) -> ir::FuncRef {
        if let Some(&callee) = self.direct_callees.get(&func) {
            return callee;
        }
        let signature = self.signature(ty);
        let name = self
            .builder
            .func
            .declare_imported_user_function(UserExternalName::new(0, func.0));
        let callee = self.builder.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            colocated: true,
            patchable: false,
        });
        self.direct_callees.insert(func, callee);
        callee
    }
}
