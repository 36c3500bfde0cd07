//! The ids that name what a store owns, and [`Extern`], an item of any kind. Ids are plain
//! numbers, valid only in the store that made them; a [`FuncId`] also says whether its
//! function is a host function or which instance defines it.

use kiln_artifact::DefinedFuncIndex;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
    };
}
id!(
    /// An instance of a store.
    InstanceId
);
/// A function of a store: a host function, or a defined function of an instance. The id
/// says which, so instantiation creates nothing per function: the id of an instance's
/// function is its instance and index, and what the store knows of it is read from the
/// module when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncId {
    /// The instance, or [`FuncId::HOST`] for host functions.
    owner: u32,
    /// The defined-function index in the instance, or the host function's index.
    index: u32,
}

/// What a [`FuncId`] names.
pub(crate) enum FuncOwner {
    Host(usize),
    Wasm(InstanceId, DefinedFuncIndex),
}

impl FuncId {
    const HOST: u32 = u32::MAX;

    pub(crate) fn host(index: usize) -> FuncId {
        FuncId {
            owner: Self::HOST,
            index: index as u32,
        }
    }

    pub(crate) fn wasm(instance: InstanceId, index: DefinedFuncIndex) -> FuncId {
        FuncId {
            owner: instance.0,
            index: index.0,
        }
    }

    pub(crate) fn owner(self) -> FuncOwner {
        if self.owner == Self::HOST {
            FuncOwner::Host(self.index as usize)
        } else {
            FuncOwner::Wasm(InstanceId(self.owner), DefinedFuncIndex(self.index))
        }
    }
}
id!(
    /// A memory of a store.
    MemoryId
);
id!(
    /// A table of a store.
    TableId
);
id!(
    /// A global of a store.
    GlobalId
);

/// An item of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extern {
    /// A function.
    Func(FuncId),
    /// A table.
    Table(TableId),
    /// A memory.
    Memory(MemoryId),
    /// A global.
    Global(GlobalId),
}
