//! A module's exports: kept in module order, found by name through a sorted index.
//!
//! The index is a list of positions sorted by name, searched by bisection. Unlike a hash
//! table read in place, every part of it can be checked cheaply on untrusted bytes
//! ([`ArchivedExports::check`]): positions in range and names strictly increasing, which also
//! rules out repeated names. (rkyv's archived `IndexMap` does not bound the positions in its
//! hash table, so a damaged archive could make a lookup panic.)

use core::cmp::Ordering;

use crate::module::{ArchivedEntityIndex, EntityIndex};

/// One export: its name and the item it names.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Export {
    /// The export's name.
    pub name: String,
    /// The exported item.
    pub index: EntityIndex,
}

/// The exports of a module, in module order, with a by-name index.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct Exports {
    entries: Vec<Export>,
    /// Positions in `entries`, ordered by name.
    by_name: Vec<u32>,
}

impl Exports {
    /// No exports.
    pub fn new() -> Exports {
        Exports::default()
    }

    fn search(&self, name: &str) -> Result<usize, usize> {
        self.by_name
            .binary_search_by(|&pos| self.entries[pos as usize].name.as_str().cmp(name))
    }

    /// Adds an export at the end of the module order; an existing name keeps its position
    /// and gets the new item (as a map would). Returns the previous item of that name.
    pub fn insert(&mut self, name: String, index: EntityIndex) -> Option<EntityIndex> {
        match self.search(&name) {
            Ok(at) => {
                let entry = &mut self.entries[self.by_name[at] as usize];
                Some(core::mem::replace(&mut entry.index, index))
            }
            Err(at) => {
                let pos = u32::try_from(self.entries.len()).expect("fewer than 2^32 exports");
                self.entries.push(Export { name, index });
                self.by_name.insert(at, pos);
                None
            }
        }
    }

    /// The item exported as `name`.
    pub fn get(&self, name: &str) -> Option<&EntityIndex> {
        let at = self.search(name).ok()?;
        Some(&self.entries[self.by_name[at] as usize].index)
    }

    /// Whether something is exported as `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.search(name).is_ok()
    }

    /// Names and items in module order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &EntityIndex)> {
        self.entries.iter().map(|e| (&e.name, &e.index))
    }

    /// Names in module order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> {
        self.entries.iter().map(|e| &e.name)
    }

    /// Number of exports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(String, EntityIndex)> for Exports {
    fn from_iter<I: IntoIterator<Item = (String, EntityIndex)>>(iter: I) -> Exports {
        let mut exports = Exports::new();
        for (name, index) in iter {
            exports.insert(name, index);
        }
        exports
    }
}

impl<'a> IntoIterator for &'a Exports {
    type Item = (&'a String, &'a EntityIndex);
    type IntoIter = Box<dyn Iterator<Item = (&'a String, &'a EntityIndex)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl ArchivedExports {
    fn search(&self, name: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.by_name.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let pos = self.by_name[mid].to_native() as usize;
            match self.entries.get(pos)?.name.as_str().cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(pos),
            }
        }
        None
    }

    /// The item exported as `name`. O(log n) string comparisons; never panics, whatever
    /// the archive holds.
    pub fn get(&self, name: &str) -> Option<&ArchivedEntityIndex> {
        self.search(name).map(|pos| &self.entries[pos].index)
    }

    /// The position in module order of the export `name`.
    pub fn get_index_of(&self, name: &str) -> Option<usize> {
        self.search(name)
    }

    /// Whether something is exported as `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.search(name).is_some()
    }

    /// Names and items in module order.
    pub fn iter(
        &self,
    ) -> impl ExactSizeIterator<Item = (&rkyv::string::ArchivedString, &ArchivedEntityIndex)> {
        self.entries.iter().map(|e| (&e.name, &e.index))
    }

    /// Names in module order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &rkyv::string::ArchivedString> {
        self.entries.iter().map(|e| &e.name)
    }

    /// Number of exports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the index: one position per export, each in range, names strictly increasing
    /// in index order (so every export is found under its own name and names are unique).
    pub fn check(&self) -> Result<(), String> {
        if self.by_name.len() != self.entries.len() {
            return Err(format!(
                "{} index positions for {} exports",
                self.by_name.len(),
                self.entries.len()
            ));
        }
        let mut prev: Option<&str> = None;
        for pos in self.by_name.iter() {
            let Some(entry) = self.entries.get(pos.to_native() as usize) else {
                return Err(format!("export index position {pos} is out of range"));
            };
            let name = entry.name.as_str();
            if prev.is_some_and(|p| p >= name) {
                return Err(format!(
                    "export `{name}` is out of order or repeated in the name index"
                ));
            }
            prev = Some(name);
        }
        Ok(())
    }
}
