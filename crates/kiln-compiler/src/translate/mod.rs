//! Kiln's WebAssembly → Cranelift IR translator.
//!
//! [`translate_function`] walks one validated function body operator by operator, keeping
//! the wasm operand stack as a `Vec` of SSA values and the structured control flow as a stack
//! of [`control::Frame`]s. Each operator family lives in its own file: control flow
//! (`control`), linear memory and globals (`memory`), bulk memory operations (`bulk`),
//! tables and references (`tables`), arithmetic and conversions (`numeric`), 128-bit
//! vectors (`simd`) and calls (`calls`).

mod bulk;
mod calls;
mod control;
mod memory;
mod numeric;
mod simd;
mod tables;

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, Function, GlobalValueData, InstBuilder, MemFlagsData, SourceLoc, UserFuncName, Value,
    types,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_codegen::packed_option::ReservedValue;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use kiln_artifact::vmoffsets::store_context;
use kiln_artifact::{
    Builtin, CodegenSettings, DefinedFuncIndex, FuncIndex, ModuleInfo, TrapCode, TypeIndex,
    VMOffsets,
};
use wasmparser::{FunctionBody, Operator};

use crate::CompileError;
use crate::abi::{POINTER_TYPE, builtin_signature, clif_trap, clif_type, wasm_signature};
use control::Frame;

/// What the translator needs to know about the module and target.
pub struct ModuleContext<'a> {
    /// The module's metadata (types, functions, memories, ...).
    pub info: &'a ModuleInfo,
    /// The module's vmctx layout.
    pub offsets: VMOffsets,
    /// Settings that change the generated code.
    pub settings: CodegenSettings,
    /// The target's default calling convention.
    pub call_conv: CallConv,
    /// What the Cranelift frontend needs to know about the target.
    pub frontend: TargetFrontendConfig,
}

/// Translates the body of defined function `index` into a Cranelift function named
/// `u0:index`.
pub fn translate_function(
    module: &ModuleContext<'_>,
    index: DefinedFuncIndex,
    body: &FunctionBody<'_>,
    builder_ctx: &mut FunctionBuilderContext,
) -> Result<Function, CompileError> {
    let func_index = FuncIndex(module.info.num_imported_funcs + index.0);
    let ty = &module.info.types[module.info.functions[func_index].ty];
    let sig = wasm_signature(ty, module.call_conv);
    let mut func = Function::with_name_signature(UserFuncName::user(0, index.0), sig);
    let builder = FunctionBuilder::new(&mut func, builder_ctx);
    let mut translator = FuncTranslator::new(module, builder);
    translator.translate(func_index, body)?;
    translator.builder.seal_all_blocks();
    translator.builder.finalize(module.frontend);
    Ok(func)
}

/// The state of one function's translation.
pub(crate) struct FuncTranslator<'m, 'f> {
    module: &'m ModuleContext<'m>,
    builder: FunctionBuilder<'f>,
    /// The callee vmctx, the function's first parameter.
    vmctx: Value,
    /// One variable per wasm local (parameters first).
    locals: Vec<Variable>,
    /// The wasm operand stack.
    stack: Vec<Value>,
    /// Enclosing blocks, loops and ifs; the function body is the outermost block.
    control: Vec<Frame>,
    /// Whether the current position can be reached; unreachable operators are skipped.
    reachable: bool,
    /// Nesting depth of blocks opened while skipping unreachable code.
    unreachable_depth: u32,
    /// Signatures imported into the function, per type.
    signatures: HashMap<TypeIndex, ir::SigRef>,
    /// Directly callable functions imported into the function, per defined index.
    direct_callees: HashMap<DefinedFuncIndex, ir::FuncRef>,
    /// The alias region of every linear-memory access. Linear memories never overlap the
    /// instance context, tables or globals, so a store to a memory does not make Cranelift
    /// reload (or keep from merging) a global, a table slot or a memory's length; calls
    /// still clobber everything, as a host function may write any of them.
    heap_region: ir::AliasRegion,
}

impl<'m, 'f> FuncTranslator<'m, 'f> {
    fn new(module: &'m ModuleContext<'m>, builder: FunctionBuilder<'f>) -> Self {
        let heap_region = builder.func.dfg.alias_regions.insert(ir::AliasRegionData {
            user_id: 0,
            description: "linear memory".into(),
        });
        Self {
            module,
            builder,
            heap_region,
            vmctx: Value::reserved_value(),
            locals: Vec::new(),
            stack: Vec::new(),
            control: Vec::new(),
            reachable: true,
            unreachable_depth: 0,
            signatures: HashMap::new(),
            direct_callees: HashMap::new(),
        }
    }

    fn translate(&mut self, func: FuncIndex, body: &FunctionBody<'_>) -> Result<(), CompileError> {
        let info = self.module.info;
        let ty = &info.types[info.functions[func].ty];
        let entry = self.builder.create_block();
        self.builder.append_block_params_for_function_params(entry);
        self.builder.switch_to_block(entry);
        self.builder.seal_block(entry);
        self.builder
            .set_srcloc(SourceLoc::new(body.range().start as u32));
        let params = self.builder.block_params(entry).to_vec();
        self.vmctx = params[0];
        self.set_stack_limit();
        self.epoch_check();

        for (&param, &wasm_ty) in params[2..].iter().zip(&ty.params) {
            let var = self.builder.declare_var(clif_type(wasm_ty));
            self.builder.def_var(var, param);
            self.locals.push(var);
        }
        let mut locals = body.get_locals_reader().map_err(invalid)?;
        for _ in 0..locals.get_count() {
            let (count, wasm_ty) = locals.read().map_err(invalid)?;
            let clif_ty = clif_type(crate::environ::val_type(wasm_ty)?);
            for _ in 0..count {
                let var = self.builder.declare_var(clif_ty);
                let zero = self.zero(clif_ty);
                self.builder.def_var(var, zero);
                self.locals.push(var);
            }
        }

        let results: Vec<ir::Type> = ty.results.iter().map(|t| clif_type(*t)).collect();
        self.push_function_frame(&results);
        let mut ops = body.get_operators_reader().map_err(invalid)?;
        while !ops.eof() {
            let (op, offset) = ops.read_with_offset().map_err(invalid)?;
            self.builder.set_srcloc(SourceLoc::new(offset as u32));
            self.operator(&op)?;
        }
        Ok(())
    }

    /// `func.stack_limit = load(load(vmctx + store_context) + STACK_LIMIT)`.
    fn set_stack_limit(&mut self) {
        let flags = self
            .builder
            .func
            .dfg
            .mem_flags
            .insert_unchecked(MemFlagsData::trusted());
        let vmctx = self.builder.create_global_value(GlobalValueData::VMContext);
        let store = self.builder.create_global_value(GlobalValueData::Load {
            base: vmctx,
            offset: offset32(self.module.offsets.store_context()),
            global_type: POINTER_TYPE,
            flags,
        });
        let limit = self.builder.create_global_value(GlobalValueData::Load {
            base: store,
            offset: offset32(store_context::STACK_LIMIT),
            global_type: POINTER_TYPE,
            flags,
        });
        self.builder.func.stack_limit = Some(limit);
    }

    /// With epoch interruption on: traps with `Interrupt` once the engine's epoch reaches
    /// the store's deadline. Placed at function entry and loop headers, so every path that
    /// runs long passes one. The epoch is read with an atomic load, which the optimiser can
    /// never hoist out of a loop or merge with an earlier read.
    pub(super) fn epoch_check(&mut self) {
        if !self.module.settings.epoch_interruption {
            return;
        }
        let store = self.load_vm(
            POINTER_TYPE,
            self.vmctx,
            self.module.offsets.store_context(),
        );
        let counter = self.load_vm(POINTER_TYPE, store, store_context::EPOCH_COUNTER);
        let epoch = self
            .builder
            .ins()
            .atomic_load(types::I64, MemFlagsData::trusted(), counter);
        let deadline = self.load_vm(types::I64, store, store_context::EPOCH_DEADLINE);
        let due = self.builder.ins().icmp(
            cranelift_codegen::ir::condcodes::IntCC::UnsignedGreaterThanOrEqual,
            epoch,
            deadline,
        );
        self.builder
            .ins()
            .trapnz(due, clif_trap(TrapCode::Interrupt));
    }

    /// Translates one operator, or tracks nesting if the current position is unreachable.
    fn operator(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        if !self.reachable {
            self.skip_unreachable(op);
            return Ok(());
        }
        match op {
            Operator::Nop => {}
            Operator::Drop => {
                self.pop();
            }
            Operator::Select | Operator::TypedSelect { .. } => {
                let cond = self.pop();
                let (a, b) = self.pop2();
                let v = self.builder.ins().select(cond, a, b);
                self.push(v);
            }
            Operator::LocalGet { local_index } => {
                let v = self.builder.use_var(self.locals[*local_index as usize]);
                self.push(v);
            }
            Operator::LocalSet { local_index } => {
                let v = self.pop();
                self.builder.def_var(self.locals[*local_index as usize], v);
            }
            Operator::LocalTee { local_index } => {
                let v = self.peek(1)[0];
                self.builder.def_var(self.locals[*local_index as usize], v);
            }
            Operator::GlobalGet { global_index } => self.global_get(*global_index),
            Operator::GlobalSet { global_index } => self.global_set(*global_index),
            Operator::Unreachable
            | Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return => self.control_op(op)?,
            Operator::Call { .. } | Operator::CallIndirect { .. } => self.call_op(op)?,
            Operator::MemorySize { .. } | Operator::MemoryGrow { .. } => self.memory_op(op)?,
            Operator::MemoryCopy { .. }
            | Operator::MemoryFill { .. }
            | Operator::MemoryInit { .. }
            | Operator::DataDrop { .. } => self.bulk_memory_op(op),
            Operator::TableGet { .. }
            | Operator::TableSet { .. }
            | Operator::TableSize { .. }
            | Operator::TableGrow { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. }
            | Operator::ElemDrop { .. }
            | Operator::RefNull { .. }
            | Operator::RefIsNull
            | Operator::RefFunc { .. } => self.table_op(op),
            _ if memory::is_access(op) => self.memory_op(op)?,
            _ => self.numeric_op(op)?,
        }
        Ok(())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Value {
        self.stack
            .pop()
            .expect("validated wasm never pops an empty stack")
    }

    /// Pops two values, returning them in push order.
    fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop();
        let a = self.pop();
        (a, b)
    }

    /// Pops `n` values, returning them in push order.
    fn popn(&mut self, n: usize) -> Vec<Value> {
        let at = self.stack.len() - n;
        self.stack.split_off(at)
    }

    /// The top `n` values, in push order.
    fn peek(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    fn zero(&mut self, ty: ir::Type) -> Value {
        let ins = self.builder.ins();
        match ty {
            types::F32 => ins.f32const(0.0),
            types::F64 => ins.f64const(0.0),
            types::I8X16 => {
                let zero = ins.iconst(types::I8, 0);
                self.builder.ins().splat(types::I8X16, zero)
            }
            _ => ins.iconst(ty, 0),
        }
    }

    /// Replaces `v` by the canonical NaN of its type if it is a NaN and the settings ask for
    /// canonical NaNs; scalar and vector floats alike. Other values pass through.
    pub(crate) fn canonicalize_nan(&mut self, v: Value) -> Value {
        if !self.module.settings.canonicalize_nans {
            return v;
        }
        let ty = self.builder.func.dfg.value_type(v);
        let ins = self.builder.ins();
        let canonical = match ty.lane_type() {
            types::F32 => ins.f32const(Ieee32::with_bits(0x7fc0_0000)),
            types::F64 => ins.f64const(Ieee64::with_bits(0x7ff8_0000_0000_0000)),
            _ => return v,
        };
        let is_nan = self.builder.ins().fcmp(FloatCC::Unordered, v, v);
        if ty.is_vector() {
            let canonical = self.builder.ins().splat(ty, canonical);
            let little = MemFlagsData::new().with_endianness(ir::Endianness::Little);
            let mask = self.builder.ins().bitcast(ty, little, is_nan);
            self.builder.ins().bitselect(mask, canonical, v)
        } else {
            self.builder.ins().select(is_nan, canonical, v)
        }
    }

    /// Canonicalises the NaN on top of the stack (see [`Self::canonicalize_nan`]).
    fn canonicalize_top(&mut self) {
        if self.module.settings.canonicalize_nans {
            let v = self.pop();
            let v = self.canonicalize_nan(v);
            self.push(v);
        }
    }

    /// Loads a `ty` from `base + offset`, a location in the vmctx or a runtime structure
    /// that is always accessible.
    fn load_vm(&mut self, ty: ir::Type, base: Value, offset: u32) -> Value {
        let (base, offset) = self.split_offset(base, offset);
        self.builder.ins().load(ty, vm_flags(), base, offset)
    }

    /// Loads a `ty` from `base + offset`, a location that is written before any code of the
    /// instance runs and never changes afterwards (a memory's base, an import's slot, the
    /// builtins table). Read-only and movable, so Cranelift may merge and hoist it.
    fn load_vm_constant(&mut self, ty: ir::Type, base: Value, offset: u32) -> Value {
        let (base, offset) = self.split_offset(base, offset);
        let flags = vm_flags().with_readonly().with_can_move();
        self.builder.ins().load(ty, flags, base, offset)
    }

    /// Stores `value` at `base + offset`, like [`Self::load_vm`].
    fn store_vm(&mut self, value: Value, base: Value, offset: u32) {
        let (base, offset) = self.split_offset(base, offset);
        self.builder.ins().store(vm_flags(), value, base, offset);
    }

    /// With Spectre guards on, `addr` unless `out_of_bounds` holds, then null, through a
    /// select the CPU cannot predict: even a mispredicted bounds check (whose trap comes
    /// first architecturally) only ever reads from the null page speculatively.
    fn spectre_guard(&mut self, out_of_bounds: Value, addr: Value) -> Value {
        if !self.module.settings.spectre_guards {
            return addr;
        }
        let null = self.builder.ins().iconst(POINTER_TYPE, 0);
        self.builder
            .ins()
            .select_spectre_guard(out_of_bounds, null, addr)
    }

    /// Calls a runtime builtin with the caller's vmctx and `args`; returns its results.
    fn call_builtin(&mut self, builtin: Builtin, args: &[Value]) -> Vec<Value> {
        let builtins =
            self.load_vm_constant(POINTER_TYPE, self.vmctx, self.module.offsets.builtins());
        let callee = self.load_vm(
            POINTER_TYPE,
            builtins,
            builtin.offset(crate::isa::POINTER_SIZE),
        );
        let sig = self
            .builder
            .import_signature(builtin_signature(builtin, self.module.call_conv));
        let args = [&[self.vmctx][..], args].concat();
        let call = self.builder.ins().call_indirect(sig, callee, &args);
        self.builder.inst_results(call).to_vec()
    }

    /// Calls a builtin that returns a status and traps with `code` if it is non-zero.
    fn call_checked_builtin(&mut self, builtin: Builtin, args: &[Value], code: TrapCode) {
        let status = self.call_builtin(builtin, args)[0];
        self.builder.ins().trapnz(status, clif_trap(code));
    }

    /// Keeps `offset` in Cranelift's signed 32-bit immediate, adding it to `base` if needed.
    fn split_offset(&mut self, base: Value, offset: u32) -> (Value, i32) {
        match i32::try_from(offset) {
            Ok(offset) => (base, offset),
            Err(_) => (self.builder.ins().iadd_imm_u(base, i64::from(offset)), 0),
        }
    }
}

/// Flags of accesses to the vmctx and runtime structures: always accessible and aligned.
fn vm_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn offset32(offset: u32) -> ir::immediates::Offset32 {
    ir::immediates::Offset32::new(i32::try_from(offset).expect("vmctx header offsets are small"))
}

fn invalid(e: wasmparser::BinaryReaderError) -> CompileError {
    CompileError::Invalid(e.to_string())
}
