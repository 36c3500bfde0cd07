//! Constants, integer and float arithmetic, comparisons and conversions.
//!
//! Most operators map to one Cranelift instruction with the same semantics (Cranelift's
//! `fmin`, `fmax`, `nearest`, shifts and rotates follow wasm). The exceptions are handled
//! explicitly: division traps, `rem_s` by -1, and comparisons, whose `i8` results are widened
//! to `i32`.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;
use kiln_artifact::TrapCode;
use wasmparser::Operator;

use super::FuncTranslator;
use crate::CompileError;
use crate::abi::clif_trap;

use types::{F32, F64, I8, I16, I32, I64};

/// Which integer division operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Div {
    DivS,
    DivU,
    RemS,
    RemU,
}

impl FuncTranslator<'_, '_> {
    /// Translates a numeric operator; anything else is unsupported.
    pub(super) fn numeric_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        match *op {
            // Constants.
            Operator::I32Const { value } => {
                self.constant(|b| b.ins().iconst(I32, i64::from(value as u32)))
            }
            Operator::I64Const { value } => self.constant(|b| b.ins().iconst(I64, value)),
            Operator::F32Const { value } => {
                self.constant(|b| b.ins().f32const(Ieee32::with_bits(value.bits())))
            }
            Operator::F64Const { value } => {
                self.constant(|b| b.ins().f64const(Ieee64::with_bits(value.bits())))
            }

            // Integer tests and comparisons.
            Operator::I32Eqz | Operator::I64Eqz => self.eqz(),
            Operator::I32Eq | Operator::I64Eq => self.icmp(IntCC::Equal),
            Operator::I32Ne | Operator::I64Ne => self.icmp(IntCC::NotEqual),
            Operator::I32LtS | Operator::I64LtS => self.icmp(IntCC::SignedLessThan),
            Operator::I32LtU | Operator::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            Operator::I32GtS | Operator::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            Operator::I32GtU | Operator::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            Operator::I32LeS | Operator::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            Operator::I32LeU | Operator::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            Operator::I32GeS | Operator::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            Operator::I32GeU | Operator::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),

            // Float comparisons.
            Operator::F32Eq | Operator::F64Eq => self.fcmp(FloatCC::Equal),
            Operator::F32Ne | Operator::F64Ne => self.fcmp(FloatCC::NotEqual),
            Operator::F32Lt | Operator::F64Lt => self.fcmp(FloatCC::LessThan),
            Operator::F32Gt | Operator::F64Gt => self.fcmp(FloatCC::GreaterThan),
            Operator::F32Le | Operator::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            Operator::F32Ge | Operator::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),

            // Integer arithmetic.
            Operator::I32Clz | Operator::I64Clz => self.unary(|b, x| b.ins().clz(x)),
            Operator::I32Ctz | Operator::I64Ctz => self.unary(|b, x| b.ins().ctz(x)),
            Operator::I32Popcnt | Operator::I64Popcnt => self.unary(|b, x| b.ins().popcnt(x)),
            Operator::I32Add | Operator::I64Add => self.binary(|b, x, y| b.ins().iadd(x, y)),
            Operator::I32Sub | Operator::I64Sub => self.binary(|b, x, y| b.ins().isub(x, y)),
            Operator::I32Mul | Operator::I64Mul => self.binary(|b, x, y| b.ins().imul(x, y)),
            Operator::I32DivS | Operator::I64DivS => self.divide(Div::DivS),
            Operator::I32DivU | Operator::I64DivU => self.divide(Div::DivU),
            Operator::I32RemS | Operator::I64RemS => self.divide(Div::RemS),
            Operator::I32RemU | Operator::I64RemU => self.divide(Div::RemU),
            Operator::I32And | Operator::I64And => self.binary(|b, x, y| b.ins().band(x, y)),
            Operator::I32Or | Operator::I64Or => self.binary(|b, x, y| b.ins().bor(x, y)),
            Operator::I32Xor | Operator::I64Xor => self.binary(|b, x, y| b.ins().bxor(x, y)),
            // Cranelift takes shift amounts modulo the bit width, like wasm.
            Operator::I32Shl | Operator::I64Shl => self.binary(|b, x, y| b.ins().ishl(x, y)),
            Operator::I32ShrS | Operator::I64ShrS => self.binary(|b, x, y| b.ins().sshr(x, y)),
            Operator::I32ShrU | Operator::I64ShrU => self.binary(|b, x, y| b.ins().ushr(x, y)),
            Operator::I32Rotl | Operator::I64Rotl => self.binary(|b, x, y| b.ins().rotl(x, y)),
            Operator::I32Rotr | Operator::I64Rotr => self.binary(|b, x, y| b.ins().rotr(x, y)),

            // Float arithmetic; Cranelift's operators have wasm's NaN and signed-zero rules.
            // `abs`, `neg` and `copysign` only touch the sign bit, so their NaNs stay as
            // they were; the others may produce a new NaN and are canonicalised on request.
            Operator::F32Abs | Operator::F64Abs => self.unary(|b, x| b.ins().fabs(x)),
            Operator::F32Neg | Operator::F64Neg => self.unary(|b, x| b.ins().fneg(x)),
            Operator::F32Copysign | Operator::F64Copysign => {
                self.binary(|b, x, y| b.ins().fcopysign(x, y))
            }
            Operator::F32Ceil | Operator::F64Ceil => self.float_unary(|b, x| b.ins().ceil(x)),
            Operator::F32Floor | Operator::F64Floor => self.float_unary(|b, x| b.ins().floor(x)),
            Operator::F32Trunc | Operator::F64Trunc => self.float_unary(|b, x| b.ins().trunc(x)),
            Operator::F32Nearest | Operator::F64Nearest => {
                self.float_unary(|b, x| b.ins().nearest(x))
            }
            Operator::F32Sqrt | Operator::F64Sqrt => self.float_unary(|b, x| b.ins().sqrt(x)),
            Operator::F32Add | Operator::F64Add => self.float_binary(|b, x, y| b.ins().fadd(x, y)),
            Operator::F32Sub | Operator::F64Sub => self.float_binary(|b, x, y| b.ins().fsub(x, y)),
            Operator::F32Mul | Operator::F64Mul => self.float_binary(|b, x, y| b.ins().fmul(x, y)),
            Operator::F32Div | Operator::F64Div => self.float_binary(|b, x, y| b.ins().fdiv(x, y)),
            Operator::F32Min | Operator::F64Min => self.float_binary(|b, x, y| b.ins().fmin(x, y)),
            Operator::F32Max | Operator::F64Max => self.float_binary(|b, x, y| b.ins().fmax(x, y)),

            // Integer width changes.
            Operator::I32WrapI64 => self.unary(|b, x| b.ins().ireduce(I32, x)),
            Operator::I64ExtendI32S => self.unary(|b, x| b.ins().sextend(I64, x)),
            Operator::I64ExtendI32U => self.unary(|b, x| b.ins().uextend(I64, x)),
            Operator::I32Extend8S => self.sign_extend(I8, I32),
            Operator::I32Extend16S => self.sign_extend(I16, I32),
            Operator::I64Extend8S => self.sign_extend(I8, I64),
            Operator::I64Extend16S => self.sign_extend(I16, I64),
            Operator::I64Extend32S => self.sign_extend(I32, I64),

            // Float to integer: Cranelift traps on NaN (bad conversion) and out-of-range
            // values (integer overflow), or saturates in the `_sat` forms.
            Operator::I32TruncF32S | Operator::I32TruncF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint(I32, x))
            }
            Operator::I32TruncF32U | Operator::I32TruncF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint(I32, x))
            }
            Operator::I64TruncF32S | Operator::I64TruncF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint(I64, x))
            }
            Operator::I64TruncF32U | Operator::I64TruncF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint(I64, x))
            }
            Operator::I32TruncSatF32S | Operator::I32TruncSatF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint_sat(I32, x))
            }
            Operator::I32TruncSatF32U | Operator::I32TruncSatF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint_sat(I32, x))
            }
            Operator::I64TruncSatF32S | Operator::I64TruncSatF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint_sat(I64, x))
            }
            Operator::I64TruncSatF32U | Operator::I64TruncSatF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint_sat(I64, x))
            }

            // Integer to float and float width changes.
            Operator::F32ConvertI32S | Operator::F32ConvertI64S => {
                self.unary(|b, x| b.ins().fcvt_from_sint(F32, x))
            }
            Operator::F32ConvertI32U | Operator::F32ConvertI64U => {
                self.unary(|b, x| b.ins().fcvt_from_uint(F32, x))
            }
            Operator::F64ConvertI32S | Operator::F64ConvertI64S => {
                self.unary(|b, x| b.ins().fcvt_from_sint(F64, x))
            }
            Operator::F64ConvertI32U | Operator::F64ConvertI64U => {
                self.unary(|b, x| b.ins().fcvt_from_uint(F64, x))
            }
            Operator::F32DemoteF64 => self.float_unary(|b, x| b.ins().fdemote(F32, x)),
            Operator::F64PromoteF32 => self.float_unary(|b, x| b.ins().fpromote(F64, x)),

            // Reinterpretations.
            Operator::I32ReinterpretF32 => self.bitcast(I32),
            Operator::I64ReinterpretF64 => self.bitcast(I64),
            Operator::F32ReinterpretI32 => self.bitcast(F32),
            Operator::F64ReinterpretI64 => self.bitcast(F64),

            ref other => return self.simd_op(other),
        }
        Ok(())
    }

    fn constant(&mut self, f: impl FnOnce(&mut FunctionBuilder<'_>) -> Value) {
        let v = f(&mut self.builder);
        self.push(v);
    }

    fn unary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let x = self.pop();
        let v = f(&mut self.builder, x);
        self.push(v);
    }

    fn binary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value) {
        let (x, y) = self.pop2();
        let v = f(&mut self.builder, x, y);
        self.push(v);
    }

    /// A float operator whose NaN results are canonicalised when the settings ask for it.
    fn float_unary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        self.unary(f);
        self.canonicalize_top();
    }

    /// Like [`Self::float_unary`], with two operands.
    fn float_binary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value) {
        self.binary(f);
        self.canonicalize_top();
    }

    /// Pushes a comparison result (`i8` in Cranelift) as a wasm `i32`.
    fn push_bool(&mut self, b: Value) {
        let v = self.builder.ins().uextend(I32, b);
        self.push(v);
    }

    fn eqz(&mut self) {
        let x = self.pop();
        let b = self.builder.ins().icmp_imm_u(IntCC::Equal, x, 0);
        self.push_bool(b);
    }

    fn icmp(&mut self, cc: IntCC) {
        let (x, y) = self.pop2();
        let b = self.builder.ins().icmp(cc, x, y);
        self.push_bool(b);
    }

    fn fcmp(&mut self, cc: FloatCC) {
        let (x, y) = self.pop2();
        let b = self.builder.ins().fcmp(cc, x, y);
        self.push_bool(b);
    }

    /// Sign-extends the low `from` bits of the operand to the whole `to` type.
    fn sign_extend(&mut self, from: ir::Type, to: ir::Type) {
        self.unary(|b, x| {
            let narrow = b.ins().ireduce(from, x);
            b.ins().sextend(to, narrow)
        });
    }

    fn bitcast(&mut self, to: ir::Type) {
        self.unary(|b, x| b.ins().bitcast(to, MemFlagsData::new(), x));
    }

    /// Integer division and remainder with wasm's traps: division by zero traps, `div_s` of
    /// the minimum by -1 traps as overflow, and `rem_s` by -1 is 0 (computed as `rem_s` by 1
    /// so the hardware never sees the overflowing case).
    fn divide(&mut self, op: Div) {
        let (x, y) = self.pop2();
        let ty = self.builder.func.dfg.value_type(x);
        let ins = self.builder.ins();
        ins.trapz(y, clif_trap(TrapCode::IntegerDivisionByZero));
        let v = match op {
            Div::DivU => self.builder.ins().udiv(x, y),
            Div::RemU => self.builder.ins().urem(x, y),
            Div::DivS => {
                let min = if ty == I32 {
                    i64::from(i32::MIN)
                } else {
                    i64::MIN
                };
                let is_min = self.builder.ins().icmp_imm_s(IntCC::Equal, x, min);
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let overflow = self.builder.ins().band(is_min, is_neg1);
                self.builder
                    .ins()
                    .trapnz(overflow, clif_trap(TrapCode::IntegerOverflow));
                self.builder.ins().sdiv(x, y)
            }
            Div::RemS => {
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.builder.ins().iconst(ty, 1);
                let divisor = self.builder.ins().select(is_neg1, one, y);
                self.builder.ins().srem(x, divisor)
            }
        };
        self.push(v);
    }
}
