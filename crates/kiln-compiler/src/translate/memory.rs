//! Linear memory (loads, stores, `memory.size`, `memory.grow`) and globals, addressed
//! through the vmctx layout of `kiln_artifact::vmoffsets`.
//!
//! An access computes `base + zext(index) + offset`. Under `BoundsChecks::GuardPages` the
//! reservation makes every such address either valid or faulting; under
//! `BoundsChecks::Explicit` the access first traps if `index + offset + size` exceeds the
//! current length. The base never changes and is loaded as a constant of the function; the
//! length is reloaded at every access.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{self, Endianness, InstBuilder, MemFlagsData, Value, types};
use kiln_artifact::vmoffsets::memory_definition;
use kiln_artifact::{BoundsChecks, Builtin, ConstExpr, GlobalIndex, MemoryIndex, TrapCode};
use wasmparser::{MemArg, MemArgTarget, Operator};

use super::FuncTranslator;
use crate::CompileError;
use crate::abi::{POINTER_TYPE, clif_trap, clif_type};

/// How a memory access moves its value.
#[derive(Clone, Copy)]
enum Access {
    /// Load `size` bytes into a value of type `ty`, sign- or zero-extending narrow loads.
    Load {
        ty: ir::Type,
        size: u8,
        signed: bool,
    },
    /// Store the low `size` bytes of the value.
    Store { size: u8 },
}

/// Whether `op` is a load or a store.
pub(super) fn is_access(op: &Operator<'_>) -> bool {
    access(op).is_some()
}

fn access(op: &Operator<'_>) -> Option<(Access, MemArg)> {
    use Access::{Load, Store};
    use types::{F32, F64, I32, I64};
    let load = |ty, size, signed| Load { ty, size, signed };
    Some(match *op {
        Operator::I32Load { memarg } => (load(I32, 4, false), memarg),
        Operator::I64Load { memarg } => (load(I64, 8, false), memarg),
        Operator::F32Load { memarg } => (load(F32, 4, false), memarg),
        Operator::F64Load { memarg } => (load(F64, 8, false), memarg),
        Operator::I32Load8S { memarg } => (load(I32, 1, true), memarg),
        Operator::I32Load8U { memarg } => (load(I32, 1, false), memarg),
        Operator::I32Load16S { memarg } => (load(I32, 2, true), memarg),
        Operator::I32Load16U { memarg } => (load(I32, 2, false), memarg),
        Operator::I64Load8S { memarg } => (load(I64, 1, true), memarg),
        Operator::I64Load8U { memarg } => (load(I64, 1, false), memarg),
        Operator::I64Load16S { memarg } => (load(I64, 2, true), memarg),
        Operator::I64Load16U { memarg } => (load(I64, 2, false), memarg),
        Operator::I64Load32S { memarg } => (load(I64, 4, true), memarg),
        Operator::I64Load32U { memarg } => (load(I64, 4, false), memarg),
        Operator::I32Store { memarg } | Operator::F32Store { memarg } => {
            (Store { size: 4 }, memarg)
        }
        Operator::I64Store { memarg } | Operator::F64Store { memarg } => {
            (Store { size: 8 }, memarg)
        }
        Operator::I32Store8 { memarg } | Operator::I64Store8 { memarg } => {
            (Store { size: 1 }, memarg)
        }
        Operator::I32Store16 { memarg } | Operator::I64Store16 { memarg } => {
            (Store { size: 2 }, memarg)
        }
        Operator::I64Store32 { memarg } => (Store { size: 4 }, memarg),
        _ => return None,
    })
}

impl FuncTranslator<'_, '_> {
    /// Flags of a linear-memory access: little-endian, traps as out of bounds, in the
    /// function's linear-memory alias region.
    pub(super) fn heap_flags(&self) -> MemFlagsData {
        MemFlagsData::new()
            .with_endianness(Endianness::Little)
            .with_trap_code(Some(clif_trap(TrapCode::MemoryOutOfBounds)))
            .with_alias_region(Some(self.heap_region))
    }

    /// Translates a load, store, `memory.size` or `memory.grow`.
    pub(super) fn memory_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        match *op {
            Operator::MemorySize { mem } => {
                let (_, length) = self.memory_base_and_length(MemoryIndex(mem));
                let pages = self.builder.ins().ushr_imm_u(length, 16);
                let pages = self.builder.ins().ireduce(types::I32, pages);
                self.push(pages);
            }
            Operator::MemoryGrow { mem } => self.memory_grow(MemoryIndex(mem)),
            _ => {
                let (access, memarg) = access(op).expect("memory_op only gets accesses");
                self.access(access, &memarg);
            }
        }
        Ok(())
    }

    fn access(&mut self, access: Access, memarg: &MemArg) {
        let flags = self.heap_flags();
        match access {
            Access::Load { ty, size, signed } => {
                let index = self.pop();
                let (addr, offset) = self.heap_address(memarg, index, size);
                let ins = self.builder.ins();
                let v = match (size, signed) {
                    (1, true) => ins.sload8(ty, flags, addr, offset),
                    (1, false) => ins.uload8(ty, flags, addr, offset),
                    (2, true) => ins.sload16(ty, flags, addr, offset),
                    (2, false) => ins.uload16(ty, flags, addr, offset),
                    (4, true) if ty == types::I64 => ins.sload32(flags, addr, offset),
                    (4, false) if ty == types::I64 => ins.uload32(flags, addr, offset),
                    _ => ins.load(ty, flags, addr, offset),
                };
                self.push(v);
            }
            Access::Store { size } => {
                let value = self.pop();
                let index = self.pop();
                let (addr, offset) = self.heap_address(memarg, index, size);
                let wide = self.builder.func.dfg.value_type(value).bytes() > u32::from(size);
                let ins = self.builder.ins();
                match size {
                    1 if wide => ins.istore8(flags, value, addr, offset),
                    2 if wide => ins.istore16(flags, value, addr, offset),
                    4 if wide => ins.istore32(flags, value, addr, offset),
                    _ => ins.store(flags, value, addr, offset),
                };
            }
        }
    }

    /// The native address of an access of `size` bytes at `index`, as a base value and an
    /// immediate offset; checks the bounds explicitly if the settings ask for it.
    pub(super) fn heap_address(&mut self, memarg: &MemArg, index: Value, size: u8) -> (Value, i32) {
        let memory = match memarg.target {
            MemArgTarget::Memory(index) => MemoryIndex(index),
            MemArgTarget::Array(_) => unreachable!("GC arrays are not enabled"),
        };
        let explicit = self.module.settings.bounds_checks == BoundsChecks::Explicit;
        let (base, length) = if explicit {
            let (base, length) = self.memory_base_and_length(memory);
            (base, Some(length))
        } else {
            (self.memory_base(memory), None)
        };
        let index = self.builder.ins().uextend(POINTER_TYPE, index);
        let mut out_of_bounds = None;
        if let Some(length) = length {
            // index < 2^32 and offset < 2^32, so the sum cannot overflow 64 bits.
            let end = memarg.offset + u64::from(size);
            let end = self.builder.ins().iadd_imm_u(index, end as i64);
            let oob = self
                .builder
                .ins()
                .icmp(IntCC::UnsignedGreaterThan, end, length);
            self.builder
                .ins()
                .trapnz(oob, clif_trap(TrapCode::MemoryOutOfBounds));
            out_of_bounds = Some(oob);
        }
        let mut addr = self.builder.ins().iadd(base, index);
        if let Some(oob) = out_of_bounds {
            addr = self.spectre_guard(oob, addr);
        }
        match i32::try_from(memarg.offset) {
            Ok(offset) => (addr, offset),
            Err(_) => (self.builder.ins().iadd_imm_u(addr, memarg.offset as i64), 0),
        }
    }

    /// The `VMMemoryDefinition` of `memory`: a pointer and an offset from it.
    fn memory_definition(&mut self, memory: MemoryIndex) -> (Value, u32) {
        let info = self.module.info;
        let offsets = self.module.offsets;
        match info.defined_memory_index(memory) {
            Some(defined) => (self.vmctx, offsets.defined_memory(defined.0)),
            None => {
                let slot = offsets.imported_memory(memory.0);
                let ptr = self.load_vm_constant(POINTER_TYPE, self.vmctx, slot);
                (ptr, 0)
            }
        }
    }

    /// The base of `memory`. A memory never moves (it grows inside its reservation in every
    /// strategy), so the load is marked read-only and movable: Cranelift keeps one base per
    /// function and hoists it out of loops instead of reloading it at every access.
    fn memory_base(&mut self, memory: MemoryIndex) -> Value {
        let (def, offset) = self.memory_definition(memory);
        self.load_vm_constant(POINTER_TYPE, def, offset + memory_definition::BASE)
    }

    /// The current base and length in bytes of `memory`.
    fn memory_base_and_length(&mut self, memory: MemoryIndex) -> (Value, Value) {
        let base = self.memory_base(memory);
        let (def, offset) = self.memory_definition(memory);
        let length = self.load_vm(
            POINTER_TYPE,
            def,
            offset + memory_definition::CURRENT_LENGTH,
        );
        (base, length)
    }

    /// `memory.grow` through the `MemoryGrow` builtin; its `u64::MAX` failure becomes -1.
    fn memory_grow(&mut self, memory: MemoryIndex) {
        let delta = self.pop();
        let delta = self.builder.ins().uextend(types::I64, delta);
        let index = self.builder.ins().iconst(types::I32, i64::from(memory.0));
        let old = self.call_builtin(Builtin::MemoryGrow, &[index, delta]);
        // Old sizes are at most 2^16 pages, and u64::MAX truncates to -1.
        let old = self.builder.ins().ireduce(types::I32, old[0]);
        self.push(old);
    }

    /// The slot of `global`: a pointer and an offset from it.
    fn global_slot(&mut self, global: GlobalIndex) -> (Value, u32) {
        let info = self.module.info;
        let offsets = self.module.offsets;
        match info.defined_global_index(global) {
            Some(defined) => (self.vmctx, offsets.defined_global(defined.0)),
            None => {
                let slot = offsets.imported_global(global.0);
                let ptr = self.load_vm_constant(POINTER_TYPE, self.vmctx, slot);
                (ptr, 0)
            }
        }
    }

    /// `global.get`. An immutable defined global with a numeric constant initialiser is
    /// that constant; other immutable globals never change once the instance exists, so
    /// their loads are constants of the function; mutable ones are reloaded.
    pub(super) fn global_get(&mut self, index: u32) {
        let global = GlobalIndex(index);
        let decl = &self.module.info.globals[global];
        let ty = clif_type(decl.ty.content);
        let v = match (decl.ty.mutable, decl.init) {
            (false, Some(ConstExpr::I32(v))) => self.builder.ins().iconst(ty, i64::from(v)),
            (false, Some(ConstExpr::I64(v))) => self.builder.ins().iconst(ty, v),
            (false, Some(ConstExpr::F32(bits))) => {
                self.builder.ins().f32const(Ieee32::with_bits(bits))
            }
            (false, Some(ConstExpr::F64(bits))) => {
                self.builder.ins().f64const(Ieee64::with_bits(bits))
            }
            (mutable, _) => {
                let (ptr, offset) = self.global_slot(global);
                if mutable {
                    self.load_vm(ty, ptr, offset)
                } else {
                    self.load_vm_constant(ty, ptr, offset)
                }
            }
        };
        self.push(v);
    }

    pub(super) fn global_set(&mut self, index: u32) {
        let value = self.pop();
        let (ptr, offset) = self.global_slot(GlobalIndex(index));
        self.store_vm(value, ptr, offset);
    }
}
