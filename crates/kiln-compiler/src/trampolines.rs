//! The two trampolines of each signature (see `docs/design.md`):
//!
//! * array-to-wasm, `fn(callee_vmctx, caller_vmctx, body, values)`: loads the parameters from
//!   the `ValRaw` array, calls `body` with the wasm convention and stores the results back;
//! * wasm-to-array, with the wasm convention: spills the parameters into a stack array and
//!   calls the host function of the `VMHostFuncContext` it gets as vmctx.
//!
//! Every slot a trampoline writes holds its value zero-extended to all 16 bytes.

use cranelift_codegen::ir::{
    self, Function, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, UserFuncName, Value,
    types,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use kiln_artifact::FuncType;
use kiln_artifact::vmoffsets::{VAL_RAW_SIZE, host_func_context};

use crate::abi::{
    POINTER_TYPE, array_call_signature, array_to_wasm_signature, clif_type, wasm_signature,
};

/// Flags of accesses to `ValRaw` arrays: always valid, little-endian as the format says.
fn val_raw_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_endianness(ir::Endianness::Little)
}

/// Builds the array-to-wasm trampoline of `ty`.
pub fn array_to_wasm(
    ty: &FuncType,
    frontend: TargetFrontendConfig,
    name: UserFuncName,
    builder_ctx: &mut FunctionBuilderContext,
) -> Function {
    let call_conv = frontend.default_call_conv;
    let mut func = Function::with_name_signature(name, array_to_wasm_signature(call_conv));
    let mut b = FunctionBuilder::new(&mut func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let &[callee_vmctx, caller_vmctx, body, values] = b.block_params(entry) else {
        unreachable!("the array-to-wasm signature has four parameters");
    };

    let mut args = vec![callee_vmctx, caller_vmctx];
    for (i, &param) in ty.params.iter().enumerate() {
        let offset = slot_offset(i);
        args.push(
            b.ins()
                .load(clif_type(param), val_raw_flags(), values, offset),
        );
    }
    let sig = b.import_signature(wasm_signature(ty, call_conv));
    let call = b.ins().call_indirect(sig, body, &args);
    let results = b.inst_results(call).to_vec();
    for (i, result) in results.into_iter().enumerate() {
        store_val_raw(&mut b, result, values, i);
    }
    b.ins().return_(&[]);
    b.finalize(frontend);
    func
}

/// Builds the wasm-to-array trampoline of `ty`.
pub fn wasm_to_array(
    ty: &FuncType,
    frontend: TargetFrontendConfig,
    name: UserFuncName,
    builder_ctx: &mut FunctionBuilderContext,
) -> Function {
    let call_conv = frontend.default_call_conv;
    let mut func = Function::with_name_signature(name, wasm_signature(ty, call_conv));
    let mut b = FunctionBuilder::new(&mut func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (host_vmctx, caller_vmctx) = (params[0], params[1]);

    let len = ty.params.len().max(ty.results.len());
    let slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (len.max(1) as u32) * VAL_RAW_SIZE,
        4,
    ));
    let values = b.ins().stack_addr(POINTER_TYPE, slot, 0);
    for (i, &param) in params[2..].iter().enumerate() {
        store_val_raw(&mut b, param, values, i);
    }
    let host = b.ins().load(
        POINTER_TYPE,
        MemFlagsData::trusted(),
        host_vmctx,
        host_func_context::ARRAY_CALL as i32,
    );
    let len = b.ins().iconst(POINTER_TYPE, len as i64);
    let sig = b.import_signature(array_call_signature(call_conv));
    b.ins()
        .call_indirect(sig, host, &[host_vmctx, caller_vmctx, values, len]);
    let results: Vec<Value> = ty
        .results
        .iter()
        .enumerate()
        .map(|(i, &result)| {
            b.ins()
                .load(clif_type(result), val_raw_flags(), values, slot_offset(i))
        })
        .collect();
    b.ins().return_(&results);
    b.finalize(frontend);
    func
}

/// Stores `value` into slot `i` of the `ValRaw` array at `values`, zero-extended to the
/// whole 16-byte slot so that no stale bits remain beside the value.
fn store_val_raw(b: &mut FunctionBuilder<'_>, value: Value, values: Value, i: usize) {
    let offset = slot_offset(i);
    let value = match b.func.dfg.value_type(value) {
        types::I32 => b.ins().uextend(types::I64, value),
        types::F32 => {
            let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), value);
            b.ins().uextend(types::I64, bits)
        }
        _ => value,
    };
    if b.func.dfg.value_type(value).bytes() == 8 {
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().store(val_raw_flags(), zero, values, offset + 8);
    }
    b.ins().store(val_raw_flags(), value, values, offset);
}

fn slot_offset(i: usize) -> i32 {
    i32::try_from(i as u64 * u64::from(VAL_RAW_SIZE)).expect("signatures have few values")
}
