//! Structured control flow: blocks, loops, ifs, branches, `return` and `unreachable`.
//!
//! Each wasm construct becomes a [`Frame`] whose `next` Cranelift block takes the construct's
//! results as block parameters; a loop also has a `header` block that takes its parameters,
//! the target of branches to the loop. After a branch the rest of the construct is
//! unreachable and is skipped, tracking nesting, until the matching `else` or `end`.

use std::collections::BTreeMap;

use cranelift_codegen::ir::{self, BlockArg, BlockCall, InstBuilder, JumpTableData};
use kiln_artifact::TrapCode;
use wasmparser::{BlockType, Operator};

use super::FuncTranslator;
use crate::CompileError;
use crate::abi::{clif_trap, clif_type};

/// One enclosing construct.
pub(super) struct Frame {
    kind: FrameKind,
    /// The block after the construct; its parameters are the construct's results.
    next: ir::Block,
    /// Number of values the construct takes from the stack.
    num_params: usize,
    /// Number of values the construct leaves on the stack.
    num_results: usize,
    /// Stack height below the construct's parameters.
    height: usize,
    /// Whether anything branches to or falls through into `next`.
    exit_reachable: bool,
}

enum FrameKind {
    Block,
    Loop {
        /// Branch target: the loop's first block, taking the loop's parameters.
        header: ir::Block,
    },
    If {
        /// Where the condition jumps when false.
        else_block: ir::Block,
        /// The parameters on entry, passed again to the `else` arm.
        params: Vec<ir::Value>,
        /// Whether an `else` was seen.
        has_else: bool,
    },
}

impl FuncTranslator<'_, '_> {
    /// Opens the outermost frame: the function body, whose results are returned.
    pub(super) fn push_function_frame(&mut self, results: &[ir::Type]) {
        let next = self.block_with_params(results);
        self.control.push(Frame {
            kind: FrameKind::Block,
            next,
            num_params: 0,
            num_results: results.len(),
            height: 0,
            exit_reachable: false,
        });
    }

    /// Translates a control-flow operator in reachable code.
    pub(super) fn control_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        match op {
            Operator::Unreachable => {
                self.builder
                    .ins()
                    .trap(clif_trap(TrapCode::UnreachableCodeReached));
                self.reachable = false;
            }
            Operator::Block { blockty } => {
                let (params, results) = self.block_type(*blockty);
                let next = self.block_with_params(&results);
                self.push_frame(FrameKind::Block, next, params.len(), results.len());
            }
            Operator::Loop { blockty } => {
                let (params, results) = self.block_type(*blockty);
                let header = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let args = block_args(self.peek(params.len()));
                self.builder.ins().jump(header, &args);
                self.builder.switch_to_block(header);
                self.epoch_check();
                let height = self.stack.len() - params.len();
                self.stack.truncate(height);
                self.stack
                    .extend_from_slice(self.builder.block_params(header));
                self.push_frame(
                    FrameKind::Loop { header },
                    next,
                    params.len(),
                    results.len(),
                );
            }
            Operator::If { blockty } => {
                let (params, results) = self.block_type(*blockty);
                let cond = self.pop();
                let then_block = self.builder.create_block();
                let else_block = self.builder.create_block();
                let next = self.block_with_params(&results);
                self.builder
                    .ins()
                    .brif(cond, then_block, &[], else_block, &[]);
                self.builder.seal_block(then_block);
                self.builder.seal_block(else_block);
                self.builder.switch_to_block(then_block);
                let kind = FrameKind::If {
                    else_block,
                    params: self.peek(params.len()).to_vec(),
                    has_else: false,
                };
                self.push_frame(kind, next, params.len(), results.len());
            }
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            Operator::Br { relative_depth } => {
                self.br(*relative_depth);
                self.reachable = false;
            }
            Operator::BrIf { relative_depth } => self.br_if(*relative_depth),
            Operator::BrTable { targets } => {
                let mut depths = Vec::with_capacity(targets.len() as usize);
                for depth in targets.targets() {
                    depths.push(depth.map_err(super::invalid)?);
                }
                self.br_table(&depths, targets.default());
                self.reachable = false;
            }
            Operator::Return => {
                let n = self.control[0].num_results;
                let results = self.popn(n);
                self.builder.ins().return_(&results);
                self.reachable = false;
            }
            _ => unreachable!("not a control operator: {op:?}"),
        }
        Ok(())
    }

    /// Skips an operator of unreachable code, ending the skip at the `else` or `end` that
    /// closes the construct in which reachability was lost.
    pub(super) fn skip_unreachable(&mut self, op: &Operator<'_>) {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                self.unreachable_depth += 1;
            }
            Operator::Else if self.unreachable_depth == 0 => self.else_(),
            Operator::End if self.unreachable_depth == 0 => self.end(),
            Operator::End => self.unreachable_depth -= 1,
            _ => {}
        }
    }

    fn push_frame(
        &mut self,
        kind: FrameKind,
        next: ir::Block,
        num_params: usize,
        num_results: usize,
    ) {
        let height = self.stack.len() - num_params;
        self.control.push(Frame {
            kind,
            next,
            num_params,
            num_results,
            height,
            exit_reachable: false,
        });
    }

    /// Ends the `then` arm of the innermost `if` and starts its `else` arm.
    fn else_(&mut self) {
        let reachable = self.reachable;
        let frame = self.control.last_mut().expect("else inside an if");
        let FrameKind::If {
            else_block,
            params,
            has_else,
        } = &mut frame.kind
        else {
            unreachable!("validated wasm has else only inside if");
        };
        *has_else = true;
        let else_block = *else_block;
        let params = params.clone();
        let (next, height, num_results) = (frame.next, frame.height, frame.num_results);
        if reachable {
            frame.exit_reachable = true;
            let args = block_args(self.peek(num_results));
            self.builder.ins().jump(next, &args);
        }
        self.stack.truncate(height);
        self.stack.extend_from_slice(&params);
        self.builder.switch_to_block(else_block);
        self.reachable = true;
    }

    /// Ends the innermost construct; at the outermost one, returns from the function.
    fn end(&mut self) {
        let mut frame = self.control.pop().expect("end inside a frame");
        if self.reachable {
            frame.exit_reachable = true;
            let args = block_args(self.peek(frame.num_results));
            self.builder.ins().jump(frame.next, &args);
        }
        match frame.kind {
            FrameKind::If {
                else_block,
                params,
                has_else: false,
            } => {
                // No `else`: the false arm passes the parameters through as results.
                self.builder.switch_to_block(else_block);
                self.builder.ins().jump(frame.next, &block_args(&params));
                frame.exit_reachable = true;
            }
            FrameKind::Loop { header } => self.builder.seal_block(header),
            _ => {}
        }
        self.stack.truncate(frame.height);
        self.unreachable_depth = 0;
        self.reachable = frame.exit_reachable;
        self.builder.seal_block(frame.next);
        if !frame.exit_reachable {
            return;
        }
        self.builder.switch_to_block(frame.next);
        self.stack
            .extend_from_slice(self.builder.block_params(frame.next));
        if self.control.is_empty() {
            let results = self.popn(frame.num_results);
            self.builder.ins().return_(&results);
            self.reachable = false;
        }
    }

    /// The block a branch to `depth` jumps to and how many values it passes; marks the
    /// target's exit reachable.
    fn branch_target(&mut self, depth: u32) -> (ir::Block, usize) {
        let index = self.control.len() - 1 - depth as usize;
        let frame = &mut self.control[index];
        match frame.kind {
            FrameKind::Loop { header } => (header, frame.num_params),
            _ => {
                frame.exit_reachable = true;
                (frame.next, frame.num_results)
            }
        }
    }

    fn br(&mut self, depth: u32) {
        let (target, n) = self.branch_target(depth);
        let args = block_args(self.peek(n));
        self.builder.ins().jump(target, &args);
    }

    fn br_if(&mut self, depth: u32) {
        let cond = self.pop();
        let (target, n) = self.branch_target(depth);
        let args = block_args(self.peek(n));
        let fallthrough = self.builder.create_block();
        self.builder
            .ins()
            .brif(cond, target, &args, fallthrough, &[]);
        self.builder.seal_block(fallthrough);
        self.builder.switch_to_block(fallthrough);
    }

    /// `br_table`: a Cranelift jump table. Targets that take values are reached through
    /// one intermediate block per distinct depth, which passes the values on.
    fn br_table(&mut self, depths: &[u32], default: u32) {
        let index = self.pop();
        let mut blocks = BTreeMap::new();
        let mut hops = Vec::new();
        for &depth in depths.iter().chain([&default]) {
            if blocks.contains_key(&depth) {
                continue;
            }
            let (target, n) = self.branch_target(depth);
            let block = if n == 0 {
                target
            } else {
                let hop = self.builder.create_block();
                hops.push((hop, target, n));
                hop
            };
            blocks.insert(depth, block);
        }
        let pool = &mut self.builder.func.dfg.value_lists;
        let table: Vec<BlockCall> = depths
            .iter()
            .map(|d| BlockCall::new(blocks[d], [], pool))
            .collect();
        let default = BlockCall::new(blocks[&default], [], pool);
        let jt = self
            .builder
            .create_jump_table(JumpTableData::new(default, &table));
        self.builder.ins().br_table(index, jt);
        for (hop, target, n) in hops {
            self.builder.switch_to_block(hop);
            self.builder.seal_block(hop);
            let args = block_args(self.peek(n));
            self.builder.ins().jump(target, &args);
        }
    }

    fn block_with_params(&mut self, types: &[ir::Type]) -> ir::Block {
        let block = self.builder.create_block();
        for &ty in types {
            self.builder.append_block_param(block, ty);
        }
        block
    }

    /// Parameter and result types of a block type.
    fn block_type(&self, ty: BlockType) -> (Vec<ir::Type>, Vec<ir::Type>) {
        match ty {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => {
                let t = crate::environ::val_type(t).expect("validated value type");
                (vec![], vec![clif_type(t)])
            }
            BlockType::FuncType(index) => {
                let ty = &self.module.info.types[kiln_artifact::TypeIndex(index)];
                (
                    ty.params.iter().map(|t| clif_type(*t)).collect(),
                    ty.results.iter().map(|t| clif_type(*t)).collect(),
                )
            }
        }
    }
}

fn block_args(values: &[ir::Value]) -> Vec<BlockArg> {
    values.iter().map(|&v| BlockArg::Value(v)).collect()
}
