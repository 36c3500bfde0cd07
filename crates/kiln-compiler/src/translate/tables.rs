//! Tables and references: `table.get/set/size` inline through the `VMTableDefinition`,
//! `table.grow/fill/copy/init` and `elem.drop` through runtime builtins, and `ref.null`,
//! `ref.is_null`, `ref.func`.
//!
//! A reference is one pointer-sized value, 0 meaning null: a `funcref` points to a
//! `VMFuncRef` (for `ref.func`, the one in the instance's own vmctx, written on first
//! use), an `externref` is an
//! opaque handle that only the runtime interprets. `externref` table elements hold the
//! same values; `funcref` table elements hold them tagged, so that instantiation can leave
//! them unwritten ([`FuncTranslator::load_element`]).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, Value, types};
use kiln_artifact::vmoffsets::table_definition;
use kiln_artifact::{Builtin, FuncIndex, RefType, TableIndex, TrapCode};
use wasmparser::Operator;

use super::FuncTranslator;
use crate::abi::{POINTER_TYPE, clif_trap};

/// The tag of a written element of a `funcref` table (`kiln-runtime`'s `table::WRITTEN`).
const WRITTEN: i64 = 1;

impl FuncTranslator<'_, '_> {
    /// Translates a table or reference operator.
    pub(super) fn table_op(&mut self, op: &Operator<'_>) {
        match *op {
            Operator::TableGet { table } => {
                let index = self.pop();
                let table = TableIndex(table);
                let slot = self.table_slot(table, index, TrapCode::TableOutOfBounds);
                let v = self.load_element(table, index, slot);
                self.push(v);
            }
            Operator::TableSet { table } => {
                let value = self.pop();
                let index = self.pop();
                let table = TableIndex(table);
                let slot = self.table_slot(table, index, TrapCode::TableOutOfBounds);
                let word = if self.is_funcref_table(table) {
                    self.builder.ins().bor_imm_u(value, WRITTEN)
                } else {
                    value
                };
                self.store_vm(word, slot, 0);
            }
            Operator::TableSize { table } => {
                let (def, offset) = self.table_definition(TableIndex(table));
                let size =
                    self.load_vm(types::I32, def, offset + table_definition::CURRENT_ELEMENTS);
                self.push(size);
            }
            Operator::TableGrow { table } => {
                let delta = self.pop();
                let init = self.pop();
                let table = self.const_u32(table);
                let old = self.call_builtin(Builtin::TableGrow, &[table, delta, init]);
                self.push(old[0]);
            }
            Operator::TableFill { table } => {
                let len = self.pop();
                let value = self.pop();
                let dst = self.pop();
                let table = self.const_u32(table);
                self.call_checked_builtin(
                    Builtin::TableFill,
                    &[table, dst, value, len],
                    TrapCode::TableOutOfBounds,
                );
            }
            Operator::TableCopy {
                dst_table,
                src_table,
            } => {
                let len = self.pop();
                let src = self.pop();
                let dst = self.pop();
                let dst_table = self.const_u32(dst_table);
                let src_table = self.const_u32(src_table);
                self.call_checked_builtin(
                    Builtin::TableCopy,
                    &[dst_table, src_table, dst, src, len],
                    TrapCode::TableOutOfBounds,
                );
            }
            Operator::TableInit { elem_index, table } => {
                let len = self.pop();
                let src = self.pop();
                let dst = self.pop();
                let table = self.const_u32(table);
                let elem = self.const_u32(elem_index);
                self.call_checked_builtin(
                    Builtin::TableInit,
                    &[table, elem, dst, src, len],
                    TrapCode::TableOutOfBounds,
                );
            }
            Operator::ElemDrop { elem_index } => {
                let elem = self.const_u32(elem_index);
                self.call_builtin(Builtin::ElemDrop, &[elem]);
            }
            Operator::RefNull { .. } => {
                let null = self.builder.ins().iconst(POINTER_TYPE, 0);
                self.push(null);
            }
            Operator::RefIsNull => {
                let v = self.pop();
                let is_null = self.builder.ins().icmp_imm_u(IntCC::Equal, v, 0);
                let is_null = self.builder.ins().uextend(types::I32, is_null);
                self.push(is_null);
            }
            Operator::RefFunc { function_index } => {
                let v = self.ref_func(FuncIndex(function_index));
                self.push(v);
            }
            _ => unreachable!("not a table operator: {op:?}"),
        }
    }

    /// The address of `func`'s func ref slot in this instance's vmctx. An imported
    /// function's slot was written when the import was linked; a defined function's is
    /// written on first use: while its bit in the vmctx's filled set is clear, the runtime
    /// writes it (`Builtin::FuncRefLazy`, out of line), so a pointer to a slot that does not
    /// hold a func ref is never handed out and instantiation writes none of them.
    fn ref_func(&mut self, func: FuncIndex) -> Value {
        let offsets = self.module.offsets;
        let slot = self
            .builder
            .ins()
            .iadd_imm_u(self.vmctx, i64::from(offsets.func_ref(func.0)));
        let Some(defined) = self.module.info.defined_func_index(func) else {
            return slot;
        };
        let word = self.load_vm(
            types::I64,
            self.vmctx,
            offsets.func_ref_filled_word(defined.0),
        );
        let filled = self
            .builder
            .ins()
            .band_imm_s(word, 1i64 << (defined.0 % 64));
        self.inline_or_builtin(
            |_| (filled, slot),
            Builtin::FuncRefLazy,
            |this| vec![this.const_u32(func.0)],
        )
    }

    /// A value made inline when it can be, else by `builtin`, out of line. `inline` makes
    /// (after the join block's parameter) a test and the value to use when the test is
    /// non-zero; otherwise a cold block calls `builtin` with the arguments `args` makes there.
    fn inline_or_builtin(
        &mut self,
        inline: impl FnOnce(&mut Self) -> (Value, Value),
        builtin: Builtin,
        args: impl FnOnce(&mut Self) -> Vec<Value>,
    ) -> Value {
        let cold = self.builder.create_block();
        let done = self.builder.create_block();
        let value = self.builder.append_block_param(done, POINTER_TYPE);
        let (test, fast) = inline(self);
        self.builder
            .ins()
            .brif(test, done, &[BlockArg::Value(fast)], cold, &[]);
        self.builder.set_cold_block(cold);
        self.builder.seal_block(cold);
        self.builder.switch_to_block(cold);
        let args = args(self);
        let computed = self.call_builtin(builtin, &args)[0];
        self.builder.ins().jump(done, &[BlockArg::Value(computed)]);
        self.builder.seal_block(done);
        self.builder.switch_to_block(done);
        value
    }

    fn is_funcref_table(&self, table: TableIndex) -> bool {
        self.module.info.tables[table].element == RefType::FuncRef
    }

    /// The reference stored at `slot`, element `index` of `table`. A `funcref` table holds
    /// tagged words (`kiln-runtime`'s `table.rs`): a non-zero word is the reference with
    /// bit 0 set, and 0 an element not written since instantiation, whose value the
    /// runtime computes from the segments and writes back, out of line.
    pub(super) fn load_element(&mut self, table: TableIndex, index: Value, slot: Value) -> Value {
        let word = self.load_vm(POINTER_TYPE, slot, 0);
        if !self.is_funcref_table(table) {
            return word;
        }
        self.inline_or_builtin(
            |this| (word, this.builder.ins().band_imm_s(word, !WRITTEN)),
            Builtin::TableGetLazy,
            |this| vec![this.const_u32(table.0), index],
        )
    }

    /// The `VMTableDefinition` of `table`: a pointer and an offset from it.
    pub(super) fn table_definition(&mut self, table: TableIndex) -> (Value, u32) {
        let info = self.module.info;
        let offsets = self.module.offsets;
        match info.defined_table_index(table) {
            Some(defined) => (self.vmctx, offsets.defined_table(defined.0)),
            None => {
                let ptr = self.load_vm(POINTER_TYPE, self.vmctx, offsets.imported_table(table.0));
                (ptr, 0)
            }
        }
    }

    /// The address of element `index` of `table`, after a bounds check that traps with
    /// `code`.
    pub(super) fn table_slot(&mut self, table: TableIndex, index: Value, code: TrapCode) -> Value {
        let (def, offset) = self.table_definition(table);
        let base = self.load_vm(POINTER_TYPE, def, offset + table_definition::BASE);
        let len = self.load_vm(types::I32, def, offset + table_definition::CURRENT_ELEMENTS);
        let oob = self
            .builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
        self.builder.ins().trapnz(oob, clif_trap(code));
        let index = self.builder.ins().uextend(POINTER_TYPE, index);
        let scaled = self.builder.ins().ishl_imm_u(index, 3);
        let slot = self.builder.ins().iadd(base, scaled);
        self.spectre_guard(oob, slot)
    }
}
