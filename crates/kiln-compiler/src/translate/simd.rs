//! 128-bit SIMD: `v128` loads and stores, constants, shuffles, lane access and vector
//! arithmetic, comparisons and conversions.
//!
//! A `v128` travels on the operand stack, in locals, block parameters and calls as
//! Cranelift `I8X16`; each operator bitcasts its operands to the lane type it works on and
//! its result back. Most operators are one Cranelift instruction with the wasm semantics
//! (saturating arithmetic, `swizzle` zeroing out-of-range lanes, `snarrow`/`unarrow`
//! saturation, `fmin`/`fmax` NaN propagation, `fcvt_to_*_sat`); the rest are built from a
//! few instructions whose result is exact on every target: shift counts are masked to the
//! lane width, `pmin`/`pmax` select with a comparison, pairwise and dot products widen
//! first, and the `_zero` conversions narrow against a zero vector.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    self, ConstantData, Endianness, InstBuilder, MemFlagsData, Value, types,
};
use cranelift_frontend::FunctionBuilder;
use wasmparser::{MemArg, Operator};

use super::FuncTranslator;
use crate::CompileError;

use types::{F32X4, F64X2, I8, I8X16, I16, I16X8, I32, I32X4, I64X2};

/// Flags of the bitcasts between lane interpretations of one 128-bit value.
fn lanes_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// How a lane-widening operator reads its input.
#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

impl FuncTranslator<'_, '_> {
    /// Translates a SIMD operator; anything else is unsupported.
    pub(super) fn simd_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        use IntCC::*;
        match *op {
            // Memory.
            Operator::V128Load { memarg } => self.v128_load(&memarg),
            Operator::V128Store { memarg } => {
                let v = self.pop();
                let index = self.pop();
                let (addr, offset) = self.heap_address(&memarg, index, 16);
                let flags = self.heap_flags();
                self.builder.ins().store(flags, v, addr, offset);
            }
            Operator::V128Load8x8S { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().sload8x8(flags, a, o))
            }
            Operator::V128Load8x8U { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().uload8x8(flags, a, o))
            }
            Operator::V128Load16x4S { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().sload16x4(flags, a, o))
            }
            Operator::V128Load16x4U { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().uload16x4(flags, a, o))
            }
            Operator::V128Load32x2S { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().sload32x2(flags, a, o))
            }
            Operator::V128Load32x2U { memarg } => {
                let flags = self.heap_flags();
                self.extend_load(&memarg, |b, a, o| b.ins().uload32x2(flags, a, o))
            }
            Operator::V128Load8Splat { memarg } => self.load_splat(&memarg, I8X16),
            Operator::V128Load16Splat { memarg } => self.load_splat(&memarg, I16X8),
            Operator::V128Load32Splat { memarg } => self.load_splat(&memarg, I32X4),
            Operator::V128Load64Splat { memarg } => self.load_splat(&memarg, I64X2),
            Operator::V128Load32Zero { memarg } => self.load_zero(&memarg, I32X4),
            Operator::V128Load64Zero { memarg } => self.load_zero(&memarg, I64X2),
            Operator::V128Load8Lane { memarg, lane } => self.load_lane(&memarg, I8X16, lane),
            Operator::V128Load16Lane { memarg, lane } => self.load_lane(&memarg, I16X8, lane),
            Operator::V128Load32Lane { memarg, lane } => self.load_lane(&memarg, I32X4, lane),
            Operator::V128Load64Lane { memarg, lane } => self.load_lane(&memarg, I64X2, lane),
            Operator::V128Store8Lane { memarg, lane } => self.store_lane(&memarg, I8X16, lane),
            Operator::V128Store16Lane { memarg, lane } => self.store_lane(&memarg, I16X8, lane),
            Operator::V128Store32Lane { memarg, lane } => self.store_lane(&memarg, I32X4, lane),
            Operator::V128Store64Lane { memarg, lane } => self.store_lane(&memarg, I64X2, lane),

            // Constants, shuffles, splats and lanes.
            Operator::V128Const { value } => {
                let bytes = ConstantData::from(value.bytes().to_vec());
                let constant = self.builder.func.dfg.constants.insert(bytes);
                let v = self.builder.ins().vconst(I8X16, constant);
                self.push(v);
            }
            Operator::I8x16Shuffle { lanes } => {
                let (a, b) = self.pop2();
                let mask = ConstantData::from(lanes.to_vec());
                let mask = self.builder.func.dfg.immediates.push(mask);
                let v = self.builder.ins().shuffle(a, b, mask);
                self.push(v);
            }
            Operator::I8x16Swizzle => self.vbinary(I8X16, |b, x, y| b.ins().swizzle(x, y)),
            Operator::I8x16Splat => self.splat(I8X16),
            Operator::I16x8Splat => self.splat(I16X8),
            Operator::I32x4Splat => self.splat(I32X4),
            Operator::I64x2Splat => self.splat(I64X2),
            Operator::F32x4Splat => self.splat(F32X4),
            Operator::F64x2Splat => self.splat(F64X2),
            Operator::I8x16ExtractLaneS { lane } => self.extract_lane(I8X16, lane, Some(true)),
            Operator::I8x16ExtractLaneU { lane } => self.extract_lane(I8X16, lane, Some(false)),
            Operator::I16x8ExtractLaneS { lane } => self.extract_lane(I16X8, lane, Some(true)),
            Operator::I16x8ExtractLaneU { lane } => self.extract_lane(I16X8, lane, Some(false)),
            Operator::I32x4ExtractLane { lane } => self.extract_lane(I32X4, lane, None),
            Operator::I64x2ExtractLane { lane } => self.extract_lane(I64X2, lane, None),
            Operator::F32x4ExtractLane { lane } => self.extract_lane(F32X4, lane, None),
            Operator::F64x2ExtractLane { lane } => self.extract_lane(F64X2, lane, None),
            Operator::I8x16ReplaceLane { lane } => self.replace_lane(I8X16, lane),
            Operator::I16x8ReplaceLane { lane } => self.replace_lane(I16X8, lane),
            Operator::I32x4ReplaceLane { lane } => self.replace_lane(I32X4, lane),
            Operator::I64x2ReplaceLane { lane } => self.replace_lane(I64X2, lane),
            Operator::F32x4ReplaceLane { lane } => self.replace_lane(F32X4, lane),
            Operator::F64x2ReplaceLane { lane } => self.replace_lane(F64X2, lane),

            // Integer comparisons: all-ones lanes where true.
            Operator::I8x16Eq => self.vicmp(I8X16, Equal),
            Operator::I8x16Ne => self.vicmp(I8X16, NotEqual),
            Operator::I8x16LtS => self.vicmp(I8X16, SignedLessThan),
            Operator::I8x16LtU => self.vicmp(I8X16, UnsignedLessThan),
            Operator::I8x16GtS => self.vicmp(I8X16, SignedGreaterThan),
            Operator::I8x16GtU => self.vicmp(I8X16, UnsignedGreaterThan),
            Operator::I8x16LeS => self.vicmp(I8X16, SignedLessThanOrEqual),
            Operator::I8x16LeU => self.vicmp(I8X16, UnsignedLessThanOrEqual),
            Operator::I8x16GeS => self.vicmp(I8X16, SignedGreaterThanOrEqual),
            Operator::I8x16GeU => self.vicmp(I8X16, UnsignedGreaterThanOrEqual),
            Operator::I16x8Eq => self.vicmp(I16X8, Equal),
            Operator::I16x8Ne => self.vicmp(I16X8, NotEqual),
            Operator::I16x8LtS => self.vicmp(I16X8, SignedLessThan),
            Operator::I16x8LtU => self.vicmp(I16X8, UnsignedLessThan),
            Operator::I16x8GtS => self.vicmp(I16X8, SignedGreaterThan),
            Operator::I16x8GtU => self.vicmp(I16X8, UnsignedGreaterThan),
            Operator::I16x8LeS => self.vicmp(I16X8, SignedLessThanOrEqual),
            Operator::I16x8LeU => self.vicmp(I16X8, UnsignedLessThanOrEqual),
            Operator::I16x8GeS => self.vicmp(I16X8, SignedGreaterThanOrEqual),
            Operator::I16x8GeU => self.vicmp(I16X8, UnsignedGreaterThanOrEqual),
            Operator::I32x4Eq => self.vicmp(I32X4, Equal),
            Operator::I32x4Ne => self.vicmp(I32X4, NotEqual),
            Operator::I32x4LtS => self.vicmp(I32X4, SignedLessThan),
            Operator::I32x4LtU => self.vicmp(I32X4, UnsignedLessThan),
            Operator::I32x4GtS => self.vicmp(I32X4, SignedGreaterThan),
            Operator::I32x4GtU => self.vicmp(I32X4, UnsignedGreaterThan),
            Operator::I32x4LeS => self.vicmp(I32X4, SignedLessThanOrEqual),
            Operator::I32x4LeU => self.vicmp(I32X4, UnsignedLessThanOrEqual),
            Operator::I32x4GeS => self.vicmp(I32X4, SignedGreaterThanOrEqual),
            Operator::I32x4GeU => self.vicmp(I32X4, UnsignedGreaterThanOrEqual),
            Operator::I64x2Eq => self.vicmp(I64X2, Equal),
            Operator::I64x2Ne => self.vicmp(I64X2, NotEqual),
            Operator::I64x2LtS => self.vicmp(I64X2, SignedLessThan),
            Operator::I64x2GtS => self.vicmp(I64X2, SignedGreaterThan),
            Operator::I64x2LeS => self.vicmp(I64X2, SignedLessThanOrEqual),
            Operator::I64x2GeS => self.vicmp(I64X2, SignedGreaterThanOrEqual),

            // Float comparisons; `ne` is true for unordered lanes, the others false.
            Operator::F32x4Eq => self.vfcmp(F32X4, FloatCC::Equal),
            Operator::F32x4Ne => self.vfcmp(F32X4, FloatCC::NotEqual),
            Operator::F32x4Lt => self.vfcmp(F32X4, FloatCC::LessThan),
            Operator::F32x4Gt => self.vfcmp(F32X4, FloatCC::GreaterThan),
            Operator::F32x4Le => self.vfcmp(F32X4, FloatCC::LessThanOrEqual),
            Operator::F32x4Ge => self.vfcmp(F32X4, FloatCC::GreaterThanOrEqual),
            Operator::F64x2Eq => self.vfcmp(F64X2, FloatCC::Equal),
            Operator::F64x2Ne => self.vfcmp(F64X2, FloatCC::NotEqual),
            Operator::F64x2Lt => self.vfcmp(F64X2, FloatCC::LessThan),
            Operator::F64x2Gt => self.vfcmp(F64X2, FloatCC::GreaterThan),
            Operator::F64x2Le => self.vfcmp(F64X2, FloatCC::LessThanOrEqual),
            Operator::F64x2Ge => self.vfcmp(F64X2, FloatCC::GreaterThanOrEqual),

            // Bitwise operations on the whole vector.
            Operator::V128Not => self.vunary(I8X16, |b, x| b.ins().bnot(x)),
            Operator::V128And => self.vbinary(I8X16, |b, x, y| b.ins().band(x, y)),
            Operator::V128AndNot => self.vbinary(I8X16, |b, x, y| b.ins().band_not(x, y)),
            Operator::V128Or => self.vbinary(I8X16, |b, x, y| b.ins().bor(x, y)),
            Operator::V128Xor => self.vbinary(I8X16, |b, x, y| b.ins().bxor(x, y)),
            Operator::V128Bitselect => {
                let mask = self.pop();
                let (a, b) = self.pop2();
                let v = self.builder.ins().bitselect(mask, a, b);
                self.push(v);
            }
            Operator::V128AnyTrue => self.vtest(I8X16, |b, x| b.ins().vany_true(x)),
            Operator::I8x16AllTrue => self.vtest(I8X16, |b, x| b.ins().vall_true(x)),
            Operator::I16x8AllTrue => self.vtest(I16X8, |b, x| b.ins().vall_true(x)),
            Operator::I32x4AllTrue => self.vtest(I32X4, |b, x| b.ins().vall_true(x)),
            Operator::I64x2AllTrue => self.vtest(I64X2, |b, x| b.ins().vall_true(x)),
            Operator::I8x16Bitmask => self.vtest(I8X16, |b, x| b.ins().vhigh_bits(I32, x)),
            Operator::I16x8Bitmask => self.vtest(I16X8, |b, x| b.ins().vhigh_bits(I32, x)),
            Operator::I32x4Bitmask => self.vtest(I32X4, |b, x| b.ins().vhigh_bits(I32, x)),
            Operator::I64x2Bitmask => self.vtest(I64X2, |b, x| b.ins().vhigh_bits(I32, x)),

            // Shifts: the count is taken modulo the lane width, as wasm says.
            Operator::I8x16Shl => self.vshift(I8X16, |b, x, y| b.ins().ishl(x, y)),
            Operator::I8x16ShrS => self.vshift(I8X16, |b, x, y| b.ins().sshr(x, y)),
            Operator::I8x16ShrU => self.vshift(I8X16, |b, x, y| b.ins().ushr(x, y)),
            Operator::I16x8Shl => self.vshift(I16X8, |b, x, y| b.ins().ishl(x, y)),
            Operator::I16x8ShrS => self.vshift(I16X8, |b, x, y| b.ins().sshr(x, y)),
            Operator::I16x8ShrU => self.vshift(I16X8, |b, x, y| b.ins().ushr(x, y)),
            Operator::I32x4Shl => self.vshift(I32X4, |b, x, y| b.ins().ishl(x, y)),
            Operator::I32x4ShrS => self.vshift(I32X4, |b, x, y| b.ins().sshr(x, y)),
            Operator::I32x4ShrU => self.vshift(I32X4, |b, x, y| b.ins().ushr(x, y)),
            Operator::I64x2Shl => self.vshift(I64X2, |b, x, y| b.ins().ishl(x, y)),
            Operator::I64x2ShrS => self.vshift(I64X2, |b, x, y| b.ins().sshr(x, y)),
            Operator::I64x2ShrU => self.vshift(I64X2, |b, x, y| b.ins().ushr(x, y)),

            // Integer arithmetic.
            Operator::I8x16Abs => self.vunary(I8X16, |b, x| b.ins().iabs(x)),
            Operator::I16x8Abs => self.vunary(I16X8, |b, x| b.ins().iabs(x)),
            Operator::I32x4Abs => self.vunary(I32X4, |b, x| b.ins().iabs(x)),
            Operator::I64x2Abs => self.vunary(I64X2, |b, x| b.ins().iabs(x)),
            Operator::I8x16Neg => self.vunary(I8X16, |b, x| b.ins().ineg(x)),
            Operator::I16x8Neg => self.vunary(I16X8, |b, x| b.ins().ineg(x)),
            Operator::I32x4Neg => self.vunary(I32X4, |b, x| b.ins().ineg(x)),
            Operator::I64x2Neg => self.vunary(I64X2, |b, x| b.ins().ineg(x)),
            Operator::I8x16Popcnt => self.vunary(I8X16, |b, x| b.ins().popcnt(x)),
            Operator::I8x16Add => self.vbinary(I8X16, |b, x, y| b.ins().iadd(x, y)),
            Operator::I16x8Add => self.vbinary(I16X8, |b, x, y| b.ins().iadd(x, y)),
            Operator::I32x4Add => self.vbinary(I32X4, |b, x, y| b.ins().iadd(x, y)),
            Operator::I64x2Add => self.vbinary(I64X2, |b, x, y| b.ins().iadd(x, y)),
            Operator::I8x16Sub => self.vbinary(I8X16, |b, x, y| b.ins().isub(x, y)),
            Operator::I16x8Sub => self.vbinary(I16X8, |b, x, y| b.ins().isub(x, y)),
            Operator::I32x4Sub => self.vbinary(I32X4, |b, x, y| b.ins().isub(x, y)),
            Operator::I64x2Sub => self.vbinary(I64X2, |b, x, y| b.ins().isub(x, y)),
            Operator::I16x8Mul => self.vbinary(I16X8, |b, x, y| b.ins().imul(x, y)),
            Operator::I32x4Mul => self.vbinary(I32X4, |b, x, y| b.ins().imul(x, y)),
            Operator::I64x2Mul => self.vbinary(I64X2, |b, x, y| b.ins().imul(x, y)),
            Operator::I8x16AddSatS => self.vbinary(I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
            Operator::I8x16AddSatU => self.vbinary(I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
            Operator::I8x16SubSatS => self.vbinary(I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
            Operator::I8x16SubSatU => self.vbinary(I8X16, |b, x, y| b.ins().usub_sat(x, y)),
            Operator::I16x8AddSatS => self.vbinary(I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
            Operator::I16x8AddSatU => self.vbinary(I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
            Operator::I16x8SubSatS => self.vbinary(I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
            Operator::I16x8SubSatU => self.vbinary(I16X8, |b, x, y| b.ins().usub_sat(x, y)),
            Operator::I8x16MinS => self.vbinary(I8X16, |b, x, y| b.ins().smin(x, y)),
            Operator::I8x16MinU => self.vbinary(I8X16, |b, x, y| b.ins().umin(x, y)),
            Operator::I8x16MaxS => self.vbinary(I8X16, |b, x, y| b.ins().smax(x, y)),
            Operator::I8x16MaxU => self.vbinary(I8X16, |b, x, y| b.ins().umax(x, y)),
            Operator::I16x8MinS => self.vbinary(I16X8, |b, x, y| b.ins().smin(x, y)),
            Operator::I16x8MinU => self.vbinary(I16X8, |b, x, y| b.ins().umin(x, y)),
            Operator::I16x8MaxS => self.vbinary(I16X8, |b, x, y| b.ins().smax(x, y)),
            Operator::I16x8MaxU => self.vbinary(I16X8, |b, x, y| b.ins().umax(x, y)),
            Operator::I32x4MinS => self.vbinary(I32X4, |b, x, y| b.ins().smin(x, y)),
            Operator::I32x4MinU => self.vbinary(I32X4, |b, x, y| b.ins().umin(x, y)),
            Operator::I32x4MaxS => self.vbinary(I32X4, |b, x, y| b.ins().smax(x, y)),
            Operator::I32x4MaxU => self.vbinary(I32X4, |b, x, y| b.ins().umax(x, y)),
            Operator::I8x16AvgrU => self.vbinary(I8X16, |b, x, y| b.ins().avg_round(x, y)),
            Operator::I16x8AvgrU => self.vbinary(I16X8, |b, x, y| b.ins().avg_round(x, y)),
            Operator::I16x8Q15MulrSatS => {
                self.vbinary(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y))
            }

            // Narrowing (saturating) and widening.
            Operator::I8x16NarrowI16x8S => self.vbinary(I16X8, |b, x, y| b.ins().snarrow(x, y)),
            Operator::I8x16NarrowI16x8U => self.vbinary(I16X8, |b, x, y| b.ins().unarrow(x, y)),
            Operator::I16x8NarrowI32x4S => self.vbinary(I32X4, |b, x, y| b.ins().snarrow(x, y)),
            Operator::I16x8NarrowI32x4U => self.vbinary(I32X4, |b, x, y| b.ins().unarrow(x, y)),
            Operator::I16x8ExtendLowI8x16S => self.extend(I8X16, Half::Low, true),
            Operator::I16x8ExtendHighI8x16S => self.extend(I8X16, Half::High, true),
            Operator::I16x8ExtendLowI8x16U => self.extend(I8X16, Half::Low, false),
            Operator::I16x8ExtendHighI8x16U => self.extend(I8X16, Half::High, false),
            Operator::I32x4ExtendLowI16x8S => self.extend(I16X8, Half::Low, true),
            Operator::I32x4ExtendHighI16x8S => self.extend(I16X8, Half::High, true),
            Operator::I32x4ExtendLowI16x8U => self.extend(I16X8, Half::Low, false),
            Operator::I32x4ExtendHighI16x8U => self.extend(I16X8, Half::High, false),
            Operator::I64x2ExtendLowI32x4S => self.extend(I32X4, Half::Low, true),
            Operator::I64x2ExtendHighI32x4S => self.extend(I32X4, Half::High, true),
            Operator::I64x2ExtendLowI32x4U => self.extend(I32X4, Half::Low, false),
            Operator::I64x2ExtendHighI32x4U => self.extend(I32X4, Half::High, false),
            Operator::I16x8ExtAddPairwiseI8x16S => self.extadd_pairwise(I8X16, true),
            Operator::I16x8ExtAddPairwiseI8x16U => self.extadd_pairwise(I8X16, false),
            Operator::I32x4ExtAddPairwiseI16x8S => self.extadd_pairwise(I16X8, true),
            Operator::I32x4ExtAddPairwiseI16x8U => self.extadd_pairwise(I16X8, false),
            Operator::I16x8ExtMulLowI8x16S => self.extmul(I8X16, Half::Low, true),
            Operator::I16x8ExtMulHighI8x16S => self.extmul(I8X16, Half::High, true),
            Operator::I16x8ExtMulLowI8x16U => self.extmul(I8X16, Half::Low, false),
            Operator::I16x8ExtMulHighI8x16U => self.extmul(I8X16, Half::High, false),
            Operator::I32x4ExtMulLowI16x8S => self.extmul(I16X8, Half::Low, true),
            Operator::I32x4ExtMulHighI16x8S => self.extmul(I16X8, Half::High, true),
            Operator::I32x4ExtMulLowI16x8U => self.extmul(I16X8, Half::Low, false),
            Operator::I32x4ExtMulHighI16x8U => self.extmul(I16X8, Half::High, false),
            Operator::I64x2ExtMulLowI32x4S => self.extmul(I32X4, Half::Low, true),
            Operator::I64x2ExtMulHighI32x4S => self.extmul(I32X4, Half::High, true),
            Operator::I64x2ExtMulLowI32x4U => self.extmul(I32X4, Half::Low, false),
            Operator::I64x2ExtMulHighI32x4U => self.extmul(I32X4, Half::High, false),
            Operator::I32x4DotI16x8S => {
                // Widen both halves, multiply, then add neighbouring products.
                let (a, b) = self.pop2_as(I16X8);
                let ins = |f: &mut Self, half, x| f.widen(x, half, true);
                let (a_lo, b_lo) = (ins(self, Half::Low, a), ins(self, Half::Low, b));
                let (a_hi, b_hi) = (ins(self, Half::High, a), ins(self, Half::High, b));
                let lo = self.builder.ins().imul(a_lo, b_lo);
                let hi = self.builder.ins().imul(a_hi, b_hi);
                let v = self.builder.ins().iadd_pairwise(lo, hi);
                self.push_vector(v);
            }

            // Float arithmetic; results that may be a new NaN are canonicalised on request.
            Operator::F32x4Abs => self.vunary(F32X4, |b, x| b.ins().fabs(x)),
            Operator::F64x2Abs => self.vunary(F64X2, |b, x| b.ins().fabs(x)),
            Operator::F32x4Neg => self.vunary(F32X4, |b, x| b.ins().fneg(x)),
            Operator::F64x2Neg => self.vunary(F64X2, |b, x| b.ins().fneg(x)),
            Operator::F32x4Ceil => self.vfloat_unary(F32X4, |b, x| b.ins().ceil(x)),
            Operator::F64x2Ceil => self.vfloat_unary(F64X2, |b, x| b.ins().ceil(x)),
            Operator::F32x4Floor => self.vfloat_unary(F32X4, |b, x| b.ins().floor(x)),
            Operator::F64x2Floor => self.vfloat_unary(F64X2, |b, x| b.ins().floor(x)),
            Operator::F32x4Trunc => self.vfloat_unary(F32X4, |b, x| b.ins().trunc(x)),
            Operator::F64x2Trunc => self.vfloat_unary(F64X2, |b, x| b.ins().trunc(x)),
            Operator::F32x4Nearest => self.vfloat_unary(F32X4, |b, x| b.ins().nearest(x)),
            Operator::F64x2Nearest => self.vfloat_unary(F64X2, |b, x| b.ins().nearest(x)),
            Operator::F32x4Sqrt => self.vfloat_unary(F32X4, |b, x| b.ins().sqrt(x)),
            Operator::F64x2Sqrt => self.vfloat_unary(F64X2, |b, x| b.ins().sqrt(x)),
            Operator::F32x4Add => self.vfloat_binary(F32X4, |b, x, y| b.ins().fadd(x, y)),
            Operator::F64x2Add => self.vfloat_binary(F64X2, |b, x, y| b.ins().fadd(x, y)),
            Operator::F32x4Sub => self.vfloat_binary(F32X4, |b, x, y| b.ins().fsub(x, y)),
            Operator::F64x2Sub => self.vfloat_binary(F64X2, |b, x, y| b.ins().fsub(x, y)),
            Operator::F32x4Mul => self.vfloat_binary(F32X4, |b, x, y| b.ins().fmul(x, y)),
            Operator::F64x2Mul => self.vfloat_binary(F64X2, |b, x, y| b.ins().fmul(x, y)),
            Operator::F32x4Div => self.vfloat_binary(F32X4, |b, x, y| b.ins().fdiv(x, y)),
            Operator::F64x2Div => self.vfloat_binary(F64X2, |b, x, y| b.ins().fdiv(x, y)),
            Operator::F32x4Min => self.vfloat_binary(F32X4, |b, x, y| b.ins().fmin(x, y)),
            Operator::F64x2Min => self.vfloat_binary(F64X2, |b, x, y| b.ins().fmin(x, y)),
            Operator::F32x4Max => self.vfloat_binary(F32X4, |b, x, y| b.ins().fmax(x, y)),
            Operator::F64x2Max => self.vfloat_binary(F64X2, |b, x, y| b.ins().fmax(x, y)),
            Operator::F32x4PMin => self.pseudo_min_max(F32X4, true),
            Operator::F64x2PMin => self.pseudo_min_max(F64X2, true),
            Operator::F32x4PMax => self.pseudo_min_max(F32X4, false),
            Operator::F64x2PMax => self.pseudo_min_max(F64X2, false),

            // Conversions.
            Operator::F32x4ConvertI32x4S => {
                self.vunary(I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x))
            }
            Operator::F32x4ConvertI32x4U => {
                self.vunary(I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x))
            }
            Operator::I32x4TruncSatF32x4S => {
                self.vunary(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x))
            }
            Operator::I32x4TruncSatF32x4U => {
                self.vunary(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x))
            }
            Operator::F64x2ConvertLowI32x4S => self.vunary(I32X4, |b, x| {
                let wide = b.ins().swiden_low(x);
                b.ins().fcvt_from_sint(F64X2, wide)
            }),
            Operator::F64x2ConvertLowI32x4U => self.vunary(I32X4, |b, x| {
                let wide = b.ins().uwiden_low(x);
                b.ins().fcvt_from_uint(F64X2, wide)
            }),
            Operator::I32x4TruncSatF64x2SZero => self.vunary(F64X2, |b, x| {
                let wide = b.ins().fcvt_to_sint_sat(I64X2, x);
                let zero = vector_zero(b, I64X2);
                b.ins().snarrow(wide, zero)
            }),
            Operator::I32x4TruncSatF64x2UZero => self.vunary(F64X2, |b, x| {
                let wide = b.ins().fcvt_to_uint_sat(I64X2, x);
                let zero = vector_zero(b, I64X2);
                b.ins().uunarrow(wide, zero)
            }),
            Operator::F32x4DemoteF64x2Zero => self.vfloat_unary(F64X2, |b, x| b.ins().fvdemote(x)),
            Operator::F64x2PromoteLowF32x4 => {
                self.vfloat_unary(F32X4, |b, x| b.ins().fvpromote_low(x))
            }

            ref other => {
                return Err(CompileError::Unsupported(format!("operator {other:?}")));
            }
        }
        Ok(())
    }

    /// Reinterprets `v` as a vector of type `ty`.
    fn as_lanes(&mut self, v: Value, ty: ir::Type) -> Value {
        if self.builder.func.dfg.value_type(v) == ty {
            v
        } else {
            self.builder.ins().bitcast(ty, lanes_flags(), v)
        }
    }

    /// Pops a `v128` as a vector of type `ty`.
    fn pop_as(&mut self, ty: ir::Type) -> Value {
        let v = self.pop();
        self.as_lanes(v, ty)
    }

    /// Pops two `v128`s (in push order) as vectors of type `ty`.
    fn pop2_as(&mut self, ty: ir::Type) -> (Value, Value) {
        let (a, b) = self.pop2();
        (self.as_lanes(a, ty), self.as_lanes(b, ty))
    }

    /// Pushes a vector as the canonical `I8X16` form of a `v128`.
    fn push_vector(&mut self, v: Value) {
        let v = self.as_lanes(v, I8X16);
        self.push(v);
    }

    fn vunary(&mut self, ty: ir::Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let x = self.pop_as(ty);
        let v = f(&mut self.builder, x);
        self.push_vector(v);
    }

    fn vbinary(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) {
        let (x, y) = self.pop2_as(ty);
        let v = f(&mut self.builder, x, y);
        self.push_vector(v);
    }

    /// A float operator whose NaN results are canonicalised when the settings ask for it.
    fn vfloat_unary(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value,
    ) {
        let x = self.pop_as(ty);
        let v = f(&mut self.builder, x);
        let v = self.canonicalize_nan(v);
        self.push_vector(v);
    }

    /// Like [`Self::vfloat_unary`], with two operands.
    fn vfloat_binary(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) {
        let (x, y) = self.pop2_as(ty);
        let v = f(&mut self.builder, x, y);
        let v = self.canonicalize_nan(v);
        self.push_vector(v);
    }

    /// An operator from a vector to an `i32` (`any_true`, `all_true`, `bitmask`).
    fn vtest(&mut self, ty: ir::Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let x = self.pop_as(ty);
        let v = f(&mut self.builder, x);
        let v = if self.builder.func.dfg.value_type(v) == I32 {
            v
        } else {
            self.builder.ins().uextend(I32, v)
        };
        self.push(v);
    }

    fn vicmp(&mut self, ty: ir::Type, cc: IntCC) {
        self.vbinary(ty, |b, x, y| b.ins().icmp(cc, x, y));
    }

    fn vfcmp(&mut self, ty: ir::Type, cc: FloatCC) {
        self.vbinary(ty, |b, x, y| b.ins().fcmp(cc, x, y));
    }

    /// A shift by an `i32` count, masked to the lane width first.
    fn vshift(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) {
        let count = self.pop();
        let x = self.pop_as(ty);
        let mask = self
            .builder
            .ins()
            .iconst(I32, i64::from(ty.lane_bits() - 1));
        let count = self.builder.ins().band(count, mask);
        let v = f(&mut self.builder, x, count);
        self.push_vector(v);
    }

    fn splat(&mut self, ty: ir::Type) {
        let x = self.pop();
        let lane = ty.lane_type();
        let x = if lane == I8 || lane == I16 {
            self.builder.ins().ireduce(lane, x)
        } else {
            x
        };
        let v = self.builder.ins().splat(ty, x);
        self.push_vector(v);
    }

    /// `extract_lane`; `signed` says how a narrow lane widens to `i32`.
    fn extract_lane(&mut self, ty: ir::Type, lane: u8, signed: Option<bool>) {
        let v = self.pop_as(ty);
        let x = self.builder.ins().extractlane(v, lane);
        let x = match signed {
            Some(true) => self.builder.ins().sextend(I32, x),
            Some(false) => self.builder.ins().uextend(I32, x),
            None => x,
        };
        self.push(x);
    }

    fn replace_lane(&mut self, ty: ir::Type, lane: u8) {
        let x = self.pop();
        let v = self.pop_as(ty);
        let lane_ty = ty.lane_type();
        let x = if lane_ty == I8 || lane_ty == I16 {
            self.builder.ins().ireduce(lane_ty, x)
        } else {
            x
        };
        let v = self.builder.ins().insertlane(v, x, lane);
        self.push_vector(v);
    }

    /// Sign- or zero-extends half of the lanes of `x` to lanes twice as wide.
    fn widen(&mut self, x: Value, half: Half, signed: bool) -> Value {
        let ins = self.builder.ins();
        match (half, signed) {
            (Half::Low, true) => ins.swiden_low(x),
            (Half::High, true) => ins.swiden_high(x),
            (Half::Low, false) => ins.uwiden_low(x),
            (Half::High, false) => ins.uwiden_high(x),
        }
    }

    fn extend(&mut self, ty: ir::Type, half: Half, signed: bool) {
        let x = self.pop_as(ty);
        let v = self.widen(x, half, signed);
        self.push_vector(v);
    }

    /// Widens both halves and adds neighbouring lanes: `r[i] = x[2i] + x[2i + 1]`.
    fn extadd_pairwise(&mut self, ty: ir::Type, signed: bool) {
        let x = self.pop_as(ty);
        let lo = self.widen(x, Half::Low, signed);
        let hi = self.widen(x, Half::High, signed);
        let v = self.builder.ins().iadd_pairwise(lo, hi);
        self.push_vector(v);
    }

    /// Widens the same half of both operands, then multiplies (never overflows).
    fn extmul(&mut self, ty: ir::Type, half: Half, signed: bool) {
        let (a, b) = self.pop2_as(ty);
        let a = self.widen(a, half, signed);
        let b = self.widen(b, half, signed);
        let v = self.builder.ins().imul(a, b);
        self.push_vector(v);
    }

    /// `pmin(a, b) = b < a ? b : a` and `pmax(a, b) = a < b ? b : a`, lane by lane: unlike
    /// `fmin`/`fmax` they return an operand unchanged, NaN or not.
    fn pseudo_min_max(&mut self, ty: ir::Type, min: bool) {
        let (a, b) = self.pop2_as(ty);
        let take_b = if min {
            self.builder.ins().fcmp(FloatCC::LessThan, b, a)
        } else {
            self.builder.ins().fcmp(FloatCC::LessThan, a, b)
        };
        let mask = self.as_lanes(take_b, ty);
        let v = self.builder.ins().bitselect(mask, b, a);
        self.push_vector(v);
    }

    fn v128_load(&mut self, memarg: &MemArg) {
        let index = self.pop();
        let (addr, offset) = self.heap_address(memarg, index, 16);
        let flags = self.heap_flags();
        let v = self.builder.ins().load(I8X16, flags, addr, offset);
        self.push(v);
    }

    /// The 8-byte loads that extend each lane to twice its width.
    fn extend_load(
        &mut self,
        memarg: &MemArg,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value, i32) -> Value,
    ) {
        let index = self.pop();
        let (addr, offset) = self.heap_address(memarg, index, 8);
        let v = f(&mut self.builder, addr, offset);
        self.push_vector(v);
    }

    /// Loads one lane-sized scalar and repeats it in every lane of `ty`.
    fn load_splat(&mut self, memarg: &MemArg, ty: ir::Type) {
        let x = self.load_scalar(memarg, ty.lane_type());
        let v = self.builder.ins().splat(ty, x);
        self.push_vector(v);
    }

    /// Loads one lane-sized scalar into lane 0 of `ty`, zeroing the others.
    fn load_zero(&mut self, memarg: &MemArg, ty: ir::Type) {
        let x = self.load_scalar(memarg, ty.lane_type());
        let v = self.builder.ins().scalar_to_vector(ty, x);
        self.push_vector(v);
    }

    /// Pops an address and loads a scalar of type `ty` from it.
    fn load_scalar(&mut self, memarg: &MemArg, ty: ir::Type) -> Value {
        let index = self.pop();
        let (addr, offset) = self.heap_address(memarg, index, ty.bytes() as u8);
        let flags = self.heap_flags();
        self.builder.ins().load(ty, flags, addr, offset)
    }

    fn load_lane(&mut self, memarg: &MemArg, ty: ir::Type, lane: u8) {
        let v = self.pop_as(ty);
        let x = self.load_scalar(memarg, ty.lane_type());
        let v = self.builder.ins().insertlane(v, x, lane);
        self.push_vector(v);
    }

    fn store_lane(&mut self, memarg: &MemArg, ty: ir::Type, lane: u8) {
        let v = self.pop_as(ty);
        let index = self.pop();
        let x = self.builder.ins().extractlane(v, lane);
        let size = ty.lane_type().bytes() as u8;
        let (addr, offset) = self.heap_address(memarg, index, size);
        let flags = self.heap_flags();
        self.builder.ins().store(flags, x, addr, offset);
    }
}

/// An all-zero vector of type `ty`, as a constant: the x86_64 backend lowers the `_zero`
/// conversions only when it can see that the upper half is a zero constant.
fn vector_zero(b: &mut FunctionBuilder<'_>, ty: ir::Type) -> Value {
    let zero = ConstantData::from(vec![0u8; 16]);
    let constant = b.func.dfg.constants.insert(zero);
    b.ins().vconst(ty, constant)
}
