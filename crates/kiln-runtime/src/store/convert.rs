//! Native forms of archived types: the one place where the runtime and the facade turn
//! types read in place from an artifact into owned values.

use kiln_artifact::{GlobalType, TableType};

/// The native form of an archived table type.
pub fn table_type(ty: &kiln_artifact::ArchivedTableType) -> TableType {
    TableType {
        element: match ty.element {
            kiln_artifact::ArchivedRefType::FuncRef => kiln_artifact::RefType::FuncRef,
            kiln_artifact::ArchivedRefType::ExternRef => kiln_artifact::RefType::ExternRef,
        },
        min: ty.min.to_native(),
        max: ty.max.as_ref().map(|m| m.to_native()),
    }
}

/// The native form of an archived global type.
pub fn global_type(ty: &kiln_artifact::ArchivedGlobalType) -> GlobalType {
    GlobalType {
        content: ty.content.native(),
        mutable: ty.mutable,
    }
}

/// The native form of an archived memory type.
pub fn memory_type(ty: &kiln_artifact::ArchivedMemoryType) -> kiln_artifact::MemoryType {
    kiln_artifact::MemoryType {
        min: ty.min.to_native(),
        max: ty.max.as_ref().map(|m| m.to_native()),
        memory64: ty.memory64,
        shared: ty.shared,
    }
}
