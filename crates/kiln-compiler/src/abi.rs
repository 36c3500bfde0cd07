//! Cranelift signatures of Kiln's calling conventions (see `docs/design.md`): the wasm
//! convention `fn(callee_vmctx, caller_vmctx, params...) -> results`, the array-call
//! convention of host functions and the runtime builtins, and the mapping between Kiln's and
//! Cranelift's trap codes.

use cranelift_codegen::ir::{self, AbiParam, ArgumentPurpose, Signature, types};
use cranelift_codegen::isa::CallConv;
use kiln_artifact::{Builtin, FuncType, TrapCode, ValType};

/// The pointer type of every supported target.
pub const POINTER_TYPE: ir::Type = types::I64;

/// The Cranelift type that carries a wasm value.
pub fn clif_type(ty: ValType) -> ir::Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::FuncRef | ValType::ExternRef => POINTER_TYPE,
    }
}

/// The wasm-convention signature of functions of type `ty`.
pub fn wasm_signature(ty: &FuncType, call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(POINTER_TYPE, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(POINTER_TYPE));
    sig.params
        .extend(ty.params.iter().map(|t| AbiParam::new(clif_type(*t))));
    sig.returns
        .extend(ty.results.iter().map(|t| AbiParam::new(clif_type(*t))));
    sig
}

/// `fn(callee_vmctx, caller_vmctx, body, values)`: the array-to-wasm trampolines.
pub fn array_to_wasm_signature(call_conv: CallConv) -> Signature {
    pointer_signature(call_conv, 4)
}

/// `fn(host_vmctx, caller_vmctx, values, len)`: host functions called with a value array.
pub fn array_call_signature(call_conv: CallConv) -> Signature {
    pointer_signature(call_conv, 4)
}

/// The signature of `builtin`, as `kiln_artifact::Builtin` documents it.
pub fn builtin_signature(builtin: Builtin, call_conv: CallConv) -> Signature {
    use types::{I32, I64};
    let (params, result): (&[ir::Type], Option<ir::Type>) = match builtin {
        Builtin::MemoryGrow => (&[I32, I64], Some(I64)),
        Builtin::MemoryCopy => (&[I32, I64, I32, I64, I64], Some(I32)),
        Builtin::MemoryFill => (&[I32, I64, I32, I64], Some(I32)),
        Builtin::MemoryInit => (&[I32, I32, I64, I32, I32], Some(I32)),
        Builtin::DataDrop | Builtin::ElemDrop => (&[I32], None),
        Builtin::TableGrow => (&[I32, I32, I64], Some(I32)),
        Builtin::TableFill => (&[I32, I32, I64, I32], Some(I32)),
        Builtin::TableCopy | Builtin::TableInit => (&[I32, I32, I32, I32, I32], Some(I32)),
        Builtin::SignatureCheck => (&[I32, POINTER_TYPE], Some(I32)),
        Builtin::TableGetLazy => (&[I32, I32], Some(POINTER_TYPE)),
        Builtin::FuncRefLazy => (&[I32], Some(POINTER_TYPE)),
    };
    let mut sig = Signature::new(call_conv);
    sig.params.push(AbiParam::new(POINTER_TYPE));
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.extend(result.map(AbiParam::new));
    sig
}

fn pointer_signature(call_conv: CallConv, params: usize) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(POINTER_TYPE, ArgumentPurpose::VMContext));
    sig.params
        .extend((1..params).map(|_| AbiParam::new(POINTER_TYPE)));
    sig
}

/// The Cranelift trap code that generated code uses for Kiln's `code`.
///
/// Codes Cranelift knows map to its own; the others become user codes `code + 1`.
pub fn clif_trap(code: TrapCode) -> ir::TrapCode {
    match code {
        TrapCode::StackOverflow => ir::TrapCode::STACK_OVERFLOW,
        TrapCode::MemoryOutOfBounds => ir::TrapCode::HEAP_OUT_OF_BOUNDS,
        TrapCode::IntegerOverflow => ir::TrapCode::INTEGER_OVERFLOW,
        TrapCode::IntegerDivisionByZero => ir::TrapCode::INTEGER_DIVISION_BY_ZERO,
        TrapCode::BadConversionToInteger => ir::TrapCode::BAD_CONVERSION_TO_INTEGER,
        other => ir::TrapCode::unwrap_user(other as u8 + 1),
    }
}

/// Kiln's trap code for a Cranelift trap code, the inverse of [`clif_trap`].
pub fn kiln_trap(code: ir::TrapCode) -> Option<TrapCode> {
    Some(match code {
        ir::TrapCode::STACK_OVERFLOW => TrapCode::StackOverflow,
        ir::TrapCode::HEAP_OUT_OF_BOUNDS => TrapCode::MemoryOutOfBounds,
        ir::TrapCode::INTEGER_OVERFLOW => TrapCode::IntegerOverflow,
        ir::TrapCode::INTEGER_DIVISION_BY_ZERO => TrapCode::IntegerDivisionByZero,
        ir::TrapCode::BAD_CONVERSION_TO_INTEGER => TrapCode::BadConversionToInteger,
        other => return TrapCode::from_u8(other.as_raw().get().checked_sub(1)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_codes_round_trip() {
        for code in TrapCode::ALL {
            assert_eq!(kiln_trap(clif_trap(code)), Some(code));
        }
    }
}
