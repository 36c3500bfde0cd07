//! Compiling Cranelift functions to machine code and linking them into one text section.
//!
//! Each function compiles on its own ([`compile_function`]) into a [`CompiledCode`] that
//! keeps only what linking needs: bytes, calls to other defined functions and trap sites.
//! [`link`] lays the pieces out in order, patches the PC-relative calls and turns trap sites
//! into text-section-relative `TrapRecord`s. Nothing is left for the loader to relocate.

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::{Context, FinalizedRelocTarget};
use kiln_artifact::{ByteRange, CallSiteRecord, TrapRecord};

use crate::CompileError;
use crate::abi::kiln_trap;

/// A call to a defined function that the linker must patch.
#[derive(Clone, Copy, Debug)]
pub struct CallSite {
    /// Offset of the relocated field from the start of the function.
    pub offset: u32,
    /// Relocation kind (a PC-relative call).
    pub kind: Reloc,
    /// The defined-function index of the callee.
    pub callee: u32,
    /// Addend of the relocation.
    pub addend: i64,
}

/// The machine code of one function, before linking.
pub struct CompiledCode {
    /// The code bytes.
    pub bytes: Vec<u8>,
    /// Calls to patch.
    pub calls: Vec<CallSite>,
    /// Trap sites, relative to the start of the function.
    pub traps: Vec<TrapRecord>,
    /// Calls, by return address relative to the function's start.
    pub call_sites: Vec<CallSiteRecord>,
}

/// Compiles `func` for `isa`.
pub fn compile_function(isa: &dyn TargetIsa, func: Function) -> Result<CompiledCode, CompileError> {
    let name = func.name.to_string();
    let mut ctx = Context::for_function(func);
    ctx.compile(isa, &mut ControlPlane::default())
        .map_err(|e| CompileError::Codegen(format!("{name}: {:?}", e.inner)))?;
    let buffer = &ctx.compiled_code().expect("compile() succeeded").buffer;

    let mut calls = Vec::new();
    for reloc in buffer.relocs() {
        let callee = match (&reloc.kind, &reloc.target) {
            (
                Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 | Reloc::Arm64Call,
                FinalizedRelocTarget::ExternalName(ExternalName::User(user)),
            ) => {
                let target = &ctx.func.params.user_named_funcs()[*user];
                if target.namespace != 0 {
                    return Err(unexpected_reloc(&name, reloc.kind));
                }
                target.index
            }
            _ => return Err(unexpected_reloc(&name, reloc.kind)),
        };
        calls.push(CallSite {
            offset: reloc.offset,
            kind: reloc.kind,
            callee,
            addend: reloc.addend,
        });
    }

    let srclocs = buffer.get_srclocs_sorted();
    // The wasm offset of the source region that contains the code at `offset`.
    let wasm_offset_at = |offset: u32| {
        let i = srclocs.partition_point(|s| s.start <= offset);
        i.checked_sub(1)
            .map(|i| &srclocs[i])
            .filter(|s| offset < s.end && !s.loc.is_default())
            .map_or(u32::MAX, |s| s.loc.bits())
    };
    let call_sites = buffer
        .call_sites()
        .filter(|c| c.ret_addr > 0)
        .map(|c| CallSiteRecord {
            return_offset: c.ret_addr,
            // The call instruction ends at the return address.
            wasm_offset: wasm_offset_at(c.ret_addr - 1),
        })
        .collect();
    let mut traps = Vec::new();
    for trap in buffer.traps() {
        let code = kiln_trap(trap.code).ok_or_else(|| {
            CompileError::Codegen(format!("{name}: unknown trap code {}", trap.code))
        })?;
        traps.push(TrapRecord {
            code_offset: trap.offset,
            wasm_offset: wasm_offset_at(trap.offset),
            code,
        });
    }
    Ok(CompiledCode {
        bytes: buffer.data().to_vec(),
        calls,
        traps,
        call_sites,
    })
}

fn unexpected_reloc(func: &str, kind: Reloc) -> CompileError {
    CompileError::Codegen(format!(
        "{func}: unexpected relocation {kind:?} (libcalls and load-time relocations are not supported)"
    ))
}

/// The linked text section.
pub struct Linked {
    /// The text section bytes.
    pub text: Vec<u8>,
    /// Where each input piece went, in input order.
    pub ranges: Vec<ByteRange>,
    /// Every trap site, sorted by code offset.
    pub traps: Vec<TrapRecord>,
    /// How many of `traps` lie in each piece, in input order.
    pub trap_counts: Vec<u32>,
    /// Every call site, sorted by return offset.
    pub call_sites: Vec<CallSiteRecord>,
}

/// Lays `pieces` out in order, each aligned to `align`, and patches calls: a call to
/// defined function `i` targets `pieces[i]` (defined functions come first).
pub fn link(pieces: &[CompiledCode], align: u32, padding: u8) -> Result<Linked, CompileError> {
    let mut text = Vec::new();
    let mut ranges = Vec::with_capacity(pieces.len());
    let mut traps = Vec::new();
    let mut call_sites = Vec::new();
    for piece in pieces {
        let start = text.len().next_multiple_of(align as usize);
        text.resize(start, padding);
        text.extend_from_slice(&piece.bytes);
        let start = u32::try_from(start)
            .map_err(|_| CompileError::Codegen("text section exceeds 4 GiB".into()))?;
        ranges.push(ByteRange {
            start,
            len: piece.bytes.len() as u32,
        });
        traps.extend(piece.traps.iter().map(|t| TrapRecord {
            code_offset: start + t.code_offset,
            ..*t
        }));
        call_sites.extend(piece.call_sites.iter().map(|c| CallSiteRecord {
            return_offset: start + c.return_offset,
            ..*c
        }));
    }
    if u32::try_from(text.len()).is_err() {
        return Err(CompileError::Codegen("text section exceeds 4 GiB".into()));
    }
    for (piece, range) in pieces.iter().zip(&ranges) {
        for call in &piece.calls {
            let target = ranges.get(call.callee as usize).ok_or_else(|| {
                CompileError::Codegen(format!("call to unknown function {}", call.callee))
            })?;
            let site = range.start + call.offset;
            patch_call(&mut text, site, target.start, call)?;
        }
    }
    // Keep one record per instruction (the first), sorted by offset.
    traps.sort_by_key(|t| t.code_offset);
    traps.dedup_by_key(|t| t.code_offset);
    call_sites.sort_by_key(|c| c.return_offset);
    call_sites.dedup_by_key(|c| c.return_offset);
    // Pieces are laid out in order, so each one's records are the next run of `traps`.
    let mut next_trap = 0;
    let trap_counts = ranges
        .iter()
        .map(|r| {
            let end = r.start + r.len;
            let first = next_trap;
            while traps.get(next_trap).is_some_and(|t| t.code_offset < end) {
                next_trap += 1;
            }
            (next_trap - first) as u32
        })
        .collect();
    Ok(Linked {
        text,
        ranges,
        traps,
        trap_counts,
        call_sites,
    })
}

fn patch_call(
    text: &mut [u8],
    site: u32,
    target: u32,
    call: &CallSite,
) -> Result<(), CompileError> {
    let delta = i64::from(target) - i64::from(site) + call.addend;
    let field: &mut [u8; 4] = (&mut text[site as usize..site as usize + 4])
        .try_into()
        .expect("four bytes");
    match call.kind {
        Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 => {
            let delta = i32::try_from(delta)
                .map_err(|_| CompileError::Codegen("call displacement out of range".into()))?;
            *field = delta.to_le_bytes();
        }
        Reloc::Arm64Call => {
            // BL imm26: a signed word offset, +-128 MiB.
            if delta % 4 != 0 || !(-(1 << 27)..(1 << 27)).contains(&delta) {
                return Err(CompileError::Codegen(
                    "call displacement out of range".into(),
                ));
            }
            let insn = u32::from_le_bytes(*field);
            let imm26 = ((delta >> 2) as u32) & 0x03ff_ffff;
            *field = ((insn & 0xfc00_0000) | imm26).to_le_bytes();
        }
        other => {
            return Err(CompileError::Codegen(format!(
                "unexpected relocation {other:?}"
            )));
        }
    }
    Ok(())
}
