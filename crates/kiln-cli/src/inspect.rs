//! `kiln inspect`: prints what an artifact holds, read with the artifact's own compatibility
//! info so that artifacts for other targets can be inspected too.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kiln_artifact::{
    ArchivedEntityIndex, ArchivedModuleInfo, DefinedFuncIndex, FuncIndex, HEADER_SIZE, Header,
    SectionRange, TypeIndex, open_checked,
};

use crate::{CliResult, fail, out};

/// Arguments of `kiln inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The artifact (.kiln) to describe.
    file: PathBuf,
}

/// Runs `kiln inspect`.
pub fn main(args: InspectArgs) -> CliResult {
    let path = &args.file;
    let bytes = std::fs::read(path).map_err(|e| fail!("cannot read `{}`: {e}", path.display()))?;
    let header =
        Header::parse(&bytes).map_err(|e| fail!("cannot inspect `{}`: {e}", path.display()))?;
    let (header, info) = open_checked(&bytes, &header.compat)
        .map_err(|e| fail!("cannot inspect `{}`: {e}", path.display()))?;
    out!("{}", describe(&header, info, bytes.len()))?;
    Ok(ExitCode::SUCCESS)
}

fn entity(index: &ArchivedEntityIndex) -> String {
    match index.native() {
        kiln_artifact::EntityIndex::Function(i) => format!("func {i}"),
        kiln_artifact::EntityIndex::Table(i) => format!("table {i}"),
        kiln_artifact::EntityIndex::Memory(i) => format!("memory {i}"),
        kiln_artifact::EntityIndex::Global(i) => format!("global {i}"),
    }
}

fn func_type(info: &ArchivedModuleInfo, ty: TypeIndex) -> String {
    info.types
        .get(ty)
        .map_or_else(|| "?".to_owned(), |t| t.to_native().to_string())
}

fn section(out: &mut String, name: &str, range: SectionRange) {
    let _ = writeln!(
        out,
        "  {name:<9} offset 0x{:08x}  size {:>9}",
        range.offset, range.len
    );
}

/// The full description, one item a line.
fn describe(header: &Header, info: &ArchivedModuleInfo, file_len: usize) -> String {
    let mut out = String::new();
    let o = &mut out;
    let compat = &header.compat;
    let _ = writeln!(o, "format version: {}", header.format_version);
    let _ = writeln!(o, "kiln version:   {}", header.kiln_version);
    let _ = writeln!(o, "target:         {}", compat.target);
    let _ = writeln!(o, "pointer size:   {}", compat.pointer_size);
    let _ = writeln!(o, "cpu features:   {}", compat.cpu_features);
    let _ = writeln!(o, "settings:       {}", compat.settings);
    let _ = writeln!(o, "checksum:       xxh3-128 {:032x}", header.checksum);
    if header.seal.iter().all(|&b| b == 0) {
        let _ = writeln!(o, "seal:           none");
    } else {
        let hex: String = header.seal.iter().map(|b| format!("{b:02x}")).collect();
        // Verifying it needs the key; `kiln run` does so with KILN_ARTIFACT_KEY.
        let _ = writeln!(o, "seal:           keyed blake3 {hex} (not verified here)");
    }
    let _ = writeln!(o, "file size:      {file_len}");
    let _ = writeln!(o, "sections:");
    let head = SectionRange {
        offset: 0,
        len: HEADER_SIZE as u64,
    };
    section(o, "header", head);
    section(o, "metadata", header.metadata);
    section(o, "code", header.code);
    section(o, "data", header.data);
    if let Some(name) = info.name.as_ref() {
        let _ = writeln!(o, "module name: {}", name.as_str());
    }

    let _ = writeln!(o, "imports ({}):", info.imports.len());
    for import in info.imports.iter() {
        let index = import.index.native();
        let ty = match index {
            kiln_artifact::EntityIndex::Function(f) => info
                .functions
                .get(f)
                .map(|d| format!(" {}", func_type(info, d.ty.native())))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {}::{} -> {}{ty}",
            import.module.as_str(),
            import.name.as_str(),
            entity(&import.index)
        );
    }

    let _ = writeln!(o, "exports ({}):", info.exports.len());
    for (name, index) in info.exports.iter() {
        let _ = writeln!(o, "  {} -> {}", name.as_str(), entity(index));
    }

    let imported = info.num_imported_funcs.to_native();
    let _ = writeln!(
        o,
        "functions ({}, {imported} imported):",
        info.functions.len()
    );
    for (index, decl) in info.functions.iter() {
        let index: FuncIndex = index;
        let name = info
            .func_name(index)
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        let ty = decl.ty.native();
        let _ = write!(o, "  [{index}]{name} type {ty} {}", func_type(info, ty));
        match info.defined_func_index(index) {
            None => {
                let _ = writeln!(o, " (imported)");
            }
            Some(DefinedFuncIndex(d)) => match info.compiled.get(DefinedFuncIndex(d)) {
                Some(compiled) => {
                    let body = compiled.body.native();
                    let _ = writeln!(
                        o,
                        " code offset 0x{:x} (file 0x{:x}) size {} (wasm offset 0x{:x})",
                        body.start,
                        header.code.offset + u64::from(body.start),
                        body.len,
                        compiled.wasm_offset.to_native()
                    );
                }
                None => {
                    let _ = writeln!(o, " (no code)");
                }
            },
        }
    }

    let counts = [
        (
            "memories",
            info.memories.len(),
            info.num_imported_memories.to_native(),
        ),
        (
            "tables",
            info.tables.len(),
            info.num_imported_tables.to_native(),
        ),
        (
            "globals",
            info.globals.len(),
            info.num_imported_globals.to_native(),
        ),
    ];
    for (what, total, imported) in counts {
        let _ = writeln!(o, "{what}: {total} ({imported} imported)");
    }
    let _ = writeln!(o, "data segments: {}", info.data.len());
    let _ = writeln!(o, "element segments: {}", info.elements.len());
    let _ = writeln!(o, "types: {}", info.types.len());
    let _ = writeln!(o, "trap sites: {}", info.traps.len());
    if let Some(start) = info.start.as_ref() {
        let _ = writeln!(o, "start function: {}", start.native());
    }
    out
}
