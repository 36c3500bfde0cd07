//! Typed indices and the entity maps keyed by them.
//!
//! Each WebAssembly index space gets its own index type so that the compiler catches a
//! function index used where a defined-function index is meant. [`PrimaryMap`] is a `Vec`
//! addressed by such an index; it is archived with rkyv like any other field and can be read
//! in place through [`ArchivedPrimaryMap`].

use core::marker::PhantomData;

/// A dense `u32` index into one index space.
pub trait EntityRef: Copy + Eq {
    /// Builds the index from its position.
    fn new(index: usize) -> Self;
    /// The position this index names.
    fn index(self) -> usize;
}

macro_rules! entity_index {
    ($(#[$doc:meta])* $name:ident, $archived:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
        #[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash))]
        pub struct $name(pub u32);

        impl EntityRef for $name {
            fn new(index: usize) -> Self {
                Self(u32::try_from(index).expect("entity index exceeds u32"))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl $name {
            /// The raw index as a `u32`.
            pub const fn as_u32(self) -> u32 {
                self.0
            }
        }

        impl $archived {
            /// The index in native form.
            pub fn native(&self) -> $name {
                $name(self.0.to_native())
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

entity_index!(
    /// Index into the module's type section.
    TypeIndex,
    ArchivedTypeIndex
);
entity_index!(
    /// Index into the function index space (imported functions first).
    FuncIndex,
    ArchivedFuncIndex
);
entity_index!(
    /// Index of a function defined (not imported) by the module.
    DefinedFuncIndex,
    ArchivedDefinedFuncIndex
);
entity_index!(
    /// Index into the table index space (imported tables first).
    TableIndex,
    ArchivedTableIndex
);
entity_index!(
    /// Index into the memory index space (imported memories first).
    MemoryIndex,
    ArchivedMemoryIndex
);
entity_index!(
    /// Index into the global index space (imported globals first).
    GlobalIndex,
    ArchivedGlobalIndex
);
entity_index!(
    /// Index of a table defined by the module.
    DefinedTableIndex,
    ArchivedDefinedTableIndex
);
entity_index!(
    /// Index of a memory defined by the module.
    DefinedMemoryIndex,
    ArchivedDefinedMemoryIndex
);
entity_index!(
    /// Index of a global defined by the module.
    DefinedGlobalIndex,
    ArchivedDefinedGlobalIndex
);
entity_index!(
    /// Index of a data segment.
    DataIndex,
    ArchivedDataIndex
);
entity_index!(
    /// Index of an element segment.
    ElemIndex,
    ArchivedElemIndex
);

/// A vector whose elements are addressed by a typed index `K`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PrimaryMap<K, V> {
    elems: Vec<V>,
    marker: PhantomData<K>,
}

impl<K, V> Default for PrimaryMap<K, V> {
    fn default() -> Self {
        Self {
            elems: Vec::new(),
            marker: PhantomData,
        }
    }
}

impl<K: EntityRef, V> PrimaryMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `value` and returns its index.
    pub fn push(&mut self, value: V) -> K {
        let key = K::new(self.elems.len());
        self.elems.push(value);
        key
    }

    /// The value at `key`, if present.
    pub fn get(&self, key: K) -> Option<&V> {
        self.elems.get(key.index())
    }

    /// The value at `key`, mutably.
    pub fn get_mut(&mut self, key: K) -> Option<&mut V> {
        self.elems.get_mut(key.index())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether the map holds no entry.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Entries with their keys, in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (K, &V)> + '_ {
        self.elems.iter().enumerate().map(|(i, v)| (K::new(i), v))
    }

    /// Values in index order.
    pub fn values(&self) -> core::slice::Iter<'_, V> {
        self.elems.iter()
    }

    /// Values in index order, mutably.
    pub fn values_mut(&mut self) -> core::slice::IterMut<'_, V> {
        self.elems.iter_mut()
    }

    /// The entries as a slice.
    pub fn as_slice(&self) -> &[V] {
        &self.elems
    }
}

impl<K: EntityRef, V> core::ops::Index<K> for PrimaryMap<K, V> {
    type Output = V;
    fn index(&self, key: K) -> &V {
        &self.elems[key.index()]
    }
}

impl<K: EntityRef, V> core::ops::IndexMut<K> for PrimaryMap<K, V> {
    fn index_mut(&mut self, key: K) -> &mut V {
        &mut self.elems[key.index()]
    }
}

impl<K: EntityRef, V> FromIterator<V> for PrimaryMap<K, V> {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        Self {
            elems: iter.into_iter().collect(),
            marker: PhantomData,
        }
    }
}

impl<K: EntityRef, V: rkyv::Archive> ArchivedPrimaryMap<K, V> {
    /// The archived value at `key`, if present.
    pub fn get(&self, key: K) -> Option<&V::Archived> {
        self.elems.get(key.index())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether the map holds no entry.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Archived entries with their keys, in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (K, &V::Archived)> + '_ {
        self.elems.iter().enumerate().map(|(i, v)| (K::new(i), v))
    }

    /// The archived entries as a slice.
    pub fn as_slice(&self) -> &[V::Archived] {
        self.elems.as_slice()
    }
}

impl<K: EntityRef, V: rkyv::Archive> core::ops::Index<K> for ArchivedPrimaryMap<K, V> {
    type Output = V::Archived;
    fn index(&self, key: K) -> &V::Archived {
        &self.elems[key.index()]
    }
}

impl<K, V: rkyv::Archive> core::fmt::Debug for ArchivedPrimaryMap<K, V>
where
    V::Archived: core::fmt::Debug,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.elems.iter()).finish()
    }
}
