//! Resource limits an embedder sets on a store: how large its memories and tables may grow
//! and how many instances, memories and tables it may hold.
//!
//! A limit caps an item when it is created: its effective maximum becomes the smaller of
//! its type's maximum and the limit, so `memory.grow`/`table.grow` past it return -1 like
//! growing past the type's maximum, and an item whose minimum already exceeds the limit
//! cannot be created (instantiation fails with a resource error).

/// Limits on what a store may allocate. The default limits nothing beyond what the
/// runtime allows anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Largest size of any one linear memory, in bytes.
    pub memory_size: usize,
    /// Largest number of elements of any one table.
    pub table_elements: u32,
    /// Most instances in the store.
    pub instances: usize,
    /// Most memories in the store (defined by instances or created by the host).
    pub memories: usize,
    /// Most tables in the store (defined by instances or created by the host).
    pub tables: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            memory_size: usize::MAX,
            table_elements: u32::MAX,
            instances: usize::MAX,
            memories: usize::MAX,
            tables: usize::MAX,
        }
    }
}

impl StoreLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Caps every linear memory at `bytes` (rounded down to whole 64 KiB pages).
    pub fn memory_size(mut self, bytes: usize) -> Self {
        self.memory_size = bytes;
        self
    }

    /// Caps every table at `elements`.
    pub fn table_elements(mut self, elements: u32) -> Self {
        self.table_elements = elements;
        self
    }

    /// Allows at most `n` instances.
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n;
        self
    }

    /// Allows at most `n` memories.
    pub fn memories(mut self, n: usize) -> Self {
        self.memories = n;
        self
    }

    /// Allows at most `n` tables.
    pub fn tables(mut self, n: usize) -> Self {
        self.tables = n;
        self
    }

    /// The largest number of 64 KiB pages a memory may have.
    pub fn memory_pages(&self) -> u64 {
        self.memory_size as u64 / kiln_artifact::types::WASM_PAGE_SIZE
    }
}
