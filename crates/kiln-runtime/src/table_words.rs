//! The storage of a table's elements: a vector of words that starts zeroed without being
//! written. Lazy tables (`crate::table`) made instantiation write nothing per element, but
//! a zeroed heap vector is still a `memset` of the whole table (the allocator reuses freed
//! memory), which for a 20,000-element table cost more than the rest of an instantiation.
//! Large tables therefore live in an anonymous mapping, whose pages the kernel zeroes only
//! when first touched; small ones stay on the heap, where a mapping's two system calls
//! would cost more than the `memset`.

/// Tables of at least this many elements (32 KiB of words) are mapped.
const MAPPED_FROM: usize = 4096;

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

fn map_zeroed(words: usize) -> Option<memmap2::MmapMut> {
    let bytes = words.checked_mul(size_of::<usize>())?.max(1);
    memmap2::MmapOptions::new().len(bytes).map_anon().ok()
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
                *m = bigger;
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
