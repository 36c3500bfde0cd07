//! The storage of a table's elements: a vector of words that starts zeroed without being
//! written. Lazy tables (`crate::table`) made instantiation write nothing per element, but
//! a zeroed heap vector is still a `memset` of the whole table (the allocator reuses freed
//! memory), which for a 20,000-element table cost more than the rest of an instantiation.
//! Large tables therefore live in an anonymous mapping, whose pages the kernel zeroes only
//! when first touched; small ones stay on the heap, where a mapping's two system calls
//! would cost more than the `memset`. A dropped table's mapping has its pages discarded
//! (zero again, one `madvise`) and is kept for the next large table, which then maps
//! nothing: instantiating a module with a large table makes no system call for it.

/// Tables of at least this many elements (32 KiB of words) are mapped.
const MAPPED_FROM: usize = 4096;

/// How many dropped tables' mappings are kept, and the largest kept.
const POOLED_MAPPINGS: usize = 8;
const POOLED_MAX_BYTES: usize = 16 << 20;

/// Mappings of dropped tables, all zero.
static POOL: std::sync::Mutex<Vec<memmap2::MmapMut>> = std::sync::Mutex::new(Vec::new());

/// Words of one table; every word past `len` in a mapping is zero.
#[derive(Debug)]
pub struct Words {
    storage: Storage,
    len: usize,
}

#[derive(Debug)]
enum Storage {
    Heap(Vec<usize>),
    Mapped(memmap2::MmapMut),
}

/// A zeroed mapping of at least `words` words: a pooled one not more than twice as large,
/// or a new one.
fn map_zeroed(words: usize) -> Option<memmap2::MmapMut> {
    let bytes = words.checked_mul(size_of::<usize>())?.max(1);
    let pooled = POOL.lock().ok().and_then(|mut pool| {
        let at = pool
            .iter()
            .position(|m| m.len() >= bytes && m.len() / 2 <= bytes)?;
        Some(pool.swap_remove(at))
    });
    match pooled {
        Some(map) => Some(map),
        None => memmap2::MmapOptions::new().len(bytes).map_anon().ok(),
    }
}

/// Keeps `map` for a later table once its pages are discarded; unmaps it otherwise.
fn pool_mapping(map: memmap2::MmapMut) {
    if map.len() > POOLED_MAX_BYTES {
        return;
    }
    // SAFETY: the mapping is private and anonymous, and its table is gone: no reference to
    // its words is left (generated code reads them only while the table's store lives), so
    // dropping its pages, which then read as zero, changes nothing anyone can see.
    let discarded = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    if discarded.is_ok()
        && let Ok(mut pool) = POOL.lock()
        && pool.len() < POOLED_MAPPINGS
    {
        pool.push(map);
    }
}

impl Words {
    /// `len` words of `word`; `None` if the memory cannot be had.
    pub fn new(len: usize, word: usize) -> Option<Words> {
        if len < MAPPED_FROM {
            return Some(Words {
                storage: Storage::Heap(vec![word; len]),
                len,
            });
        }
        let mut words = Words {
            storage: Storage::Mapped(map_zeroed(len)?),
            len,
        };
        if word != 0 {
            words.fill(word);
        }
        Some(words)
    }

    fn as_slice(&self) -> &[usize] {
        match &self.storage {
            Storage::Heap(v) => v,
            // SAFETY: the mapping is page-aligned, readable and writable, and holds at least
            // `len` words (`new`, `grow`); it lives as long as `self`.
            Storage::Mapped(m) => unsafe {
                std::slice::from_raw_parts(m.as_ptr().cast::<usize>(), self.len)
            },
        }
    }

    fn as_mut_slice(&mut self) -> &mut [usize] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // SAFETY: as in `as_slice`, and `&mut self` makes the access exclusive.
            Storage::Mapped(m) => unsafe {
                std::slice::from_raw_parts_mut(m.as_mut_ptr().cast::<usize>(), self.len)
            },
        }
    }

    /// Grows to `new_len` words (at least `len`), the new ones `word`; `None` if the
    /// memory cannot be had (then nothing changes). The words may move.
    pub fn grow(&mut self, new_len: usize, word: usize) -> Option<()> {
        let old_len = self.len;
        debug_assert!(new_len >= old_len);
        let bytes = new_len.checked_mul(size_of::<usize>())?;
        match &mut self.storage {
            Storage::Heap(v) => {
                v.try_reserve(new_len - old_len).ok()?;
                v.resize(new_len, word);
                self.len = new_len;
                return Some(());
            }
            Storage::Mapped(m) if m.len() >= bytes => {}
            Storage::Mapped(m) => {
                // Double, so that growing one element at a time copies little overall.
                let mut bigger = map_zeroed(new_len.max(old_len * 2))?;
                let old_bytes = old_len * size_of::<usize>();
                bigger[..old_bytes].copy_from_slice(&m[..old_bytes]);
                pool_mapping(std::mem::replace(m, bigger));
            }
        }
        // The mapping's words past the old length are zero.
        self.len = new_len;
        if word != 0 {
            self.as_mut_slice()[old_len..].fill(word);
        }
        Some(())
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        let storage = std::mem::replace(&mut self.storage, Storage::Heap(Vec::new()));
        if let Storage::Mapped(map) = storage {
            pool_mapping(map);
        }
    }
}

impl std::ops::Deref for Words {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for Words {
    fn deref_mut(&mut self) -> &mut [usize] {
        self.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_tables_mapping_comes_back_zeroed() {
        for _ in 0..3 {
            let mut words = Words::new(2 * MAPPED_FROM, 0).unwrap();
            assert!(words.iter().all(|&w| w == 0));
            words.fill(0xA5A5);
            // Grown past its mapping: the old one goes to the pool too.
            words.grow(8 * MAPPED_FROM, 0).unwrap();
            assert!(words[2 * MAPPED_FROM..].iter().all(|&w| w == 0));
        }
    }

    #[test]
    fn small_and_large_tables_start_filled_and_grow_keeping_their_words() {
        for len in [0, 3, MAPPED_FROM - 1, MAPPED_FROM, 3 * MAPPED_FROM] {
            for word in [0, 5] {
                let mut words = Words::new(len, word).unwrap();
                assert_eq!(words.len(), len);
                assert!(words.iter().all(|&w| w == word));
                if len > 0 {
                    words[len - 1] = 9;
                }
                // Within a mapping's pages, then past them.
                for new_len in [len + 1, len + 2, 2 * len + 4096] {
                    let old = words.len();
                    words.grow(new_len, 7).unwrap();
                    assert_eq!(words.len(), new_len);
                    assert!(words[old..].iter().all(|&w| w == 7));
                    if len > 0 {
                        assert_eq!(words[len - 1], 9);
                        assert!(words[..len - 1].iter().all(|&w| w == word));
                    }
                }
            }
        }
    }
}
