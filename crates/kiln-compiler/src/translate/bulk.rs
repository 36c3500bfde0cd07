//! Bulk memory: `memory.copy`, `memory.fill`, `memory.init` and `data.drop`.
//!
//! Each is one call to a runtime builtin, which checks every bound before touching memory
//! (so a failing operation writes nothing) and returns a status that the generated code
//! turns into a `MemoryOutOfBounds` trap at the operator's wasm offset.

use cranelift_codegen::ir::{InstBuilder, Value, types};
use kiln_artifact::{Builtin, TrapCode};
use wasmparser::Operator;

use super::FuncTranslator;

impl FuncTranslator<'_, '_> {
    /// Translates a bulk-memory operator.
    pub(super) fn bulk_memory_op(&mut self, op: &Operator<'_>) {
        match *op {
            Operator::MemoryCopy { dst_mem, src_mem } => {
                let len = self.pop_u64();
                let src = self.pop_u64();
                let dst = self.pop_u64();
                let dst_mem = self.const_u32(dst_mem);
                let src_mem = self.const_u32(src_mem);
                self.call_checked_builtin(
                    Builtin::MemoryCopy,
                    &[dst_mem, dst, src_mem, src, len],
                    TrapCode::MemoryOutOfBounds,
                );
            }
            Operator::MemoryFill { mem } => {
                let len = self.pop_u64();
                let byte = self.pop();
                let dst = self.pop_u64();
                let mem = self.const_u32(mem);
                self.call_checked_builtin(
                    Builtin::MemoryFill,
                    &[mem, dst, byte, len],
                    TrapCode::MemoryOutOfBounds,
                );
            }
            Operator::MemoryInit { data_index, mem } => {
                let len = self.pop();
                let src = self.pop();
                let dst = self.pop_u64();
                let mem = self.const_u32(mem);
                let data = self.const_u32(data_index);
                self.call_checked_builtin(
                    Builtin::MemoryInit,
                    &[mem, data, dst, src, len],
                    TrapCode::MemoryOutOfBounds,
                );
            }
            Operator::DataDrop { data_index } => {
                let data = self.const_u32(data_index);
                self.call_builtin(Builtin::DataDrop, &[data]);
            }
            _ => unreachable!("not a bulk-memory operator: {op:?}"),
        }
    }

    /// Pops an i32 address or length and zero-extends it to the builtins' 64-bit form.
    fn pop_u64(&mut self) -> Value {
        let v = self.pop();
        self.builder.ins().uextend(types::I64, v)
    }

    pub(super) fn const_u32(&mut self, v: u32) -> Value {
        self.builder.ins().iconst(types::I32, i64::from(v))
    }
}
