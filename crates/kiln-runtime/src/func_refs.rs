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

/// The defined functions of `info` whose func refs can be observed, in index order; with
/// `all`, every defined function.
pub fn escaping_funcs(info: &ArchivedModuleInfo, all: bool) -> Vec<EscapingFunc> {
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
    indices
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
        .collect()
}
