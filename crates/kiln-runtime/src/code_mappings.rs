//! Executable mappings of artifact files, kept for a while after their module is dropped so
//! that loading the same file again (a host that loads an artifact per request) maps
//! nothing and unmaps nothing: two of the seven system calls of a small module's start.
//!
//! A mapping is named by the file's identity (device, inode, modification time), the
//! artifact's header checksum and the range it maps. A pooled mapping is `MAP_SHARED` and
//! read-only, so it shows the file's current pages exactly as a fresh mapping would; and it
//! keeps the inode alive, so no other file can take that identity while it is pooled. The
//! cost: a pooled mapping keeps its file's blocks allocated after the file is deleted, until
//! the mapping is evicted (at most [`POOLED_MAPPINGS`] are kept), as pooled memories do.

use crate::memory::FileIdentity;

/// How many mappings are kept; the oldest goes first.
const POOLED_MAPPINGS: usize = 16;

/// What a code mapping maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeKey {
    /// The artifact file.
    pub file: FileIdentity,
    /// The artifact's header checksum.
    pub checksum: u128,
    /// The mapped range of the file.
    pub offset: u64,
    /// Its length.
    pub len: usize,
}

static POOL: std::sync::Mutex<Vec<(CodeKey, memmap2::Mmap)>> = std::sync::Mutex::new(Vec::new());

/// A pooled mapping of exactly `key`, if there is one.
pub fn take(key: &CodeKey) -> Option<memmap2::Mmap> {
    let mut pool = POOL.lock().ok()?;
    let at = pool.iter().rposition(|(k, _)| k == key)?;
    Some(pool.remove(at).1)
}

/// Keeps `map`, the executable mapping of `key`, for a later [`take`]; the oldest pooled
/// mapping is unmapped if the pool is full.
pub fn give_back(key: CodeKey, map: memmap2::Mmap) {
    let evicted = match POOL.lock() {
        Ok(mut pool) => {
            pool.push((key, map));
            (pool.len() > POOLED_MAPPINGS).then(|| pool.remove(0))
        }
        // A poisoned pool keeps nothing: the mapping is unmapped here.
        Err(_) => Some((key, map)),
    };
    // Unmapped outside the lock.
    drop(evicted);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(inode: u64) -> CodeKey {
        CodeKey {
            file: FileIdentity {
                device: 1,
                inode,
                modified: (2, 3),
            },
            checksum: 4,
            offset: 4096,
            len: 4096,
        }
    }

    #[test]
    fn mappings_are_found_by_their_exact_key_and_the_oldest_is_evicted() {
        // Inodes no other test uses; the pool is process-wide.
        let base = 0xC0DE_0000;
        let map = || memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
        let a = map().make_read_only().unwrap();
        let address = a.as_ptr();
        give_back(key(base), a);
        assert!(take(&key(base + 1)).is_none());
        assert!(
            take(&CodeKey {
                len: 8192,
                ..key(base)
            })
            .is_none()
        );
        let again = take(&key(base)).expect("pooled");
        assert_eq!(again.as_ptr(), address);
        assert!(take(&key(base)).is_none(), "taken once");

        give_back(key(base), again);
        for i in 1..=POOLED_MAPPINGS as u64 {
            give_back(key(base + i), map().make_read_only().unwrap());
        }
        assert!(take(&key(base)).is_none(), "the oldest was evicted");
        assert!(take(&key(base + POOLED_MAPPINGS as u64)).is_some());
    }
}
