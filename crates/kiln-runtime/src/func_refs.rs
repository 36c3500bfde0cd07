//! Which defined functions' func refs instantiation writes, so that it fills only those
//! slots of the vmctx instead of one per function, and the record of which slots an
//! instance has filled since.
//!
//! Code reaches a func ref through `ref.func` in bodies (the compiler lists their targets,
//! `ModuleInfo::ref_funcs_in_code`), element segments and global initialisers. Only the
//! first kind is written at instantiation: code computes those addresses itself. The
//! others pass through [`crate::instance::Instance::filled_func_ref`], which fills a slot
//! the first time its pointer is handed out: a table element when something first reads
//! it (`crate::table`), a global's value when instantiation evaluates it. The host reaches
//! func refs the same way (`StoreOpaque::wasm_func_ref`, which every way of handing a
//! function to the host, a table, a global or another instance goes through), so
//! instantiation does nothing per export or per element. Derived from the metadata once
//! per module. The code was compiled against the same metadata, which unchecked and
//! sealed loads trust; after a checked load, whose metadata may have been edited (checksum
//! recomputed) to name fewer functions than the code refers to, every slot is filled
//! instead.

use std::cell::Cell;

use kiln_artifact::ArchivedModuleInfo;

/// What instantiation writes into the func ref slot of one defined function.
#[derive(Clone, Copy, Debug)]
pub struct EscapingFunc {
    /// Its index in the function index space (its func ref slot).
    pub index: u32,
    /// Offset of its body in the text section.
    pub body_start: u32,
    /// Its signature id.
    pub type_id: u64,
}

/// One bit per defined function of an instance: whether its func ref slot was written. A
/// set made for fewer functions answers `false` past its end and records nothing there, so
/// those slots are written again on each request (the same bytes each time). Cells, since
/// slots are filled through shared references to the instance (from builtins and tables).
#[derive(Clone, Debug)]
pub struct FuncRefsFilled(Vec<Cell<u64>>);

impl FuncRefsFilled {
    /// None of `defined_funcs` slots written.
    pub fn new(defined_funcs: u32) -> FuncRefsFilled {
        FuncRefsFilled(vec![Cell::new(0); defined_funcs.div_ceil(64) as usize])
    }

    /// The slots whose bits are set in `bits` written.
    pub fn from_bits(bits: &[u64]) -> FuncRefsFilled {
        FuncRefsFilled(bits.iter().map(|&w| Cell::new(w)).collect())
    }

    /// Whether the slot of defined function `defined` was written.
    pub fn contains(&self, defined: u32) -> bool {
        let (word, bit) = (defined as usize / 64, defined % 64);
        self.0.get(word).is_some_and(|w| w.get() & (1 << bit) != 0)
    }

    /// Records that the slot of defined function `defined` was written.
    pub fn insert(&self, defined: u32) {
        let (word, bit) = (defined as usize / 64, defined % 64);
        if let Some(w) = self.0.get(word) {
            w.set(w.get() | 1 << bit);
        }
    }
}

/// The defined functions whose func refs instantiation writes, and the same as the bits an
/// instance starts with (copied, not set one by one).
#[derive(Debug)]
pub struct EscapingFuncs {
    /// In index order.
    pub funcs: Vec<EscapingFunc>,
    /// Their bits, as [`FuncRefsFilled`] holds them.
    pub filled: Vec<u64>,
}

/// The defined functions of `info` whose func refs can be observed, in index order; with
/// `all`, every defined function.
pub fn escaping_funcs(info: &ArchivedModuleInfo, all: bool) -> EscapingFuncs {
    let imported = info.num_imported_funcs.to_native();
    let mut indices: Vec<u32> = Vec::new();
    if all {
        indices.extend(imported..info.functions.len() as u32);
    }
    indices.extend(info.ref_funcs_in_code.iter().map(|f| f.0.to_native()));
    indices.extend(info.start.as_ref().map(|s| s.0.to_native()));
    indices.sort_unstable();
    indices.dedup();
    let funcs: Vec<EscapingFunc> = indices
        .into_iter()
        .filter_map(|index| {
            let defined = index.checked_sub(imported)?;
            let compiled = info.compiled.as_slice().get(defined as usize)?;
            let decl = info.functions.as_slice().get(index as usize)?;
            Some(EscapingFunc {
                index,
                body_start: compiled.body.start.to_native(),
                type_id: decl.signature.native().0,
            })
        })
        .collect();
    let defined = (info.functions.len() as u32).saturating_sub(imported);
    let mut filled = vec![0u64; defined.div_ceil(64) as usize];
    for f in &funcs {
        let defined = f.index - imported;
        filled[defined as usize / 64] |= 1 << (defined % 64);
    }
    EscapingFuncs { funcs, filled }
}
