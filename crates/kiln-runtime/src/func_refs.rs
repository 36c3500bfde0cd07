//! Which defined functions can have their func ref observed, so that instantiation fills
//! only those slots of the vmctx instead of one per function.
//!
//! Code reaches a func ref only through element segments (tables, `table.init`), global
//! initialisers and `ref.func` in bodies, which the compiler lists
//! (`ModuleInfo::ref_funcs_in_code`); the start function is called by the host; calls
//! between functions use code addresses, not func refs. An exported function's func ref is
//! not among them unless code names it: it is filled when the host first asks for it
//! (`StoreOpaque::wasm_func_ref`, which every way of handing a function to the host, to a
//! table, a global or another instance goes through), so instantiation does nothing per
//! export. Derived from the metadata once per module. The code was compiled against the
//! same metadata, which unchecked and sealed loads trust; after a checked load, whose
//! metadata may have been edited (checksum recomputed) to name fewer functions than the
//! code refers to, every slot is filled instead.

use kiln_artifact::{ArchivedConstExpr, ArchivedElemItems, ArchivedModuleInfo};

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
/// those slots are written again on each request (the same bytes each time).
#[derive(Clone, Debug)]
pub struct FuncRefsFilled(Vec<u64>);

impl FuncRefsFilled {
    /// None of `defined_funcs` slots written.
    pub fn new(defined_funcs: u32) -> FuncRefsFilled {
        FuncRefsFilled(vec![0; defined_funcs.div_ceil(64) as usize])
    }

    /// Whether the slot of defined function `defined` was written.
    pub fn contains(&self, defined: u32) -> bool {
        let (word, bit) = (defined as usize / 64, defined % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Records that the slot of defined function `defined` was written.
    pub fn insert(&mut self, defined: u32) {
        let (word, bit) = (defined as usize / 64, defined % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }
}

/// The defined functions whose func refs instantiation writes, and the same as the bits an
/// instance starts with (copied, not set one by one).
#[derive(Debug)]
pub struct EscapingFuncs {
    /// In index order.
    pub funcs: Vec<EscapingFunc>,
    /// Their bits.
    pub filled: FuncRefsFilled,
}

/// The defined functions of `info` whose func refs can be observed, in index order; with
/// `all`, every defined function.
pub fn escaping_funcs(info: &ArchivedModuleInfo, all: bool) -> EscapingFuncs {
    let imported = info.num_imported_funcs.to_native();
    let mut indices: Vec<u32> = Vec::new();
    if all {
        indices.extend(imported..info.functions.len() as u32);
    }
    let ref_func = |e: &ArchivedConstExpr| match e {
        ArchivedConstExpr::RefFunc(f) => Some(f.0.to_native()),
        _ => None,
    };
    for (_, segment) in info.elements.iter() {
        match &segment.items {
            ArchivedElemItems::Functions(fs) => indices.extend(fs.iter().map(|f| f.0.to_native())),
            ArchivedElemItems::Exprs(es) => indices.extend(es.iter().filter_map(ref_func)),
        }
    }
    indices.extend(info.ref_funcs_in_code.iter().map(|f| f.0.to_native()));
    for (_, global) in info.globals.iter() {
        indices.extend(global.init.as_ref().and_then(ref_func));
    }
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
    let mut filled = FuncRefsFilled::new((info.functions.len() as u32).saturating_sub(imported));
    for f in &funcs {
        filled.insert(f.index - imported);
    }
    EscapingFuncs { funcs, filled }
}
