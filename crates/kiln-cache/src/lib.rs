//! Kiln's module cache: where compiled artifacts are kept between runs.
//!
//! This crate owns the files only: naming entries after the wasm and the settings that
//! shaped their code ([`key`]), writing them so that no reader ever sees a partial file
//! ([`write`]), and keeping the directory under its size limit ([`gc`]). It never compiles
//! and never loads: the `kiln` facade does both, and tells the cache to drop an entry that
//! fails to load. Keeping the cache below the facade lets the facade use it for
//! `Module::new` without a dependency cycle.
//!
//! Layout: `<dir>/<artifact format version>/<first 2 hex digits of the key>/<key>`, each
//! entry one artifact file ([`names`]). Entries are created by `rename` and never written in
//! place, so a process that mapped one keeps a consistent file whatever others do to the
//! directory. The directories are opened once and used by descriptor, never following a
//! link ([`dir`]): a second user who can write the directory (a shared, keyed cache) or swap
//! a name on its path cannot make the cache open, run or delete anything but entries.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod dir;
pub mod error;
pub mod gc;
pub mod key;
mod names;
pub mod write;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

pub use config::CacheConfig;
use dir::{CacheDir, Trust};
pub use error::CacheError;
pub use gc::{CacheStats, GcReport};
pub use key::{CacheKey, SourceDigest};
use kiln_artifact::ArtifactKey;

/// How old an entry's modification time may get before a hit refreshes it: the time that
/// orders entries for eviction, kept coarse so that hits do not write.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// The largest entry the cache stores or opens: 1 GiB, the default size of the whole cache
/// and far more than any artifact needs (a 13 MB wasm module compiles to about 30 MB). A
/// larger file at an entry's name (a sparse giant planted in a shared cache) is refused
/// before a byte of it is read.
pub const MAX_ENTRY_LEN: u64 = 1 << 30;

/// An open cache directory. Its root and format-version directory were opened (and, without
/// a key, checked) once, in [`Cache::open`]; everything after goes through their
/// descriptors, so swapping a name in the path changes nothing.
#[derive(Debug)]
pub struct Cache {
    root: CacheDir,
    versioned: CacheDir,
    trust: Trust,
    max_size: u64,
    key: Option<ArtifactKey>,
    warned: AtomicBool,
}

/// An entry found for a key: its file, opened without following links and checked to be a
/// regular file (and, without a key, this user's own and writable by nobody else). Load from
/// [`Entry::file`], not from the path, which someone may have changed since.
#[derive(Debug)]
pub struct Entry {
    /// Its path, for messages.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// The open file.
    pub file: std::fs::File,
}

impl Cache {
    /// Opens (creating with owner-only permissions) the directory of `config`. Without a key
    /// the directory must belong to this user and be writable by nobody else, as its
    /// unsealed entries are run as they are; that is checked on the open directory, before
    /// anything is created in it.
    pub fn open(config: &CacheConfig) -> Result<Cache, CacheError> {
        let root = match &config.directory {
            Some(dir) => dir.clone(),
            None => config::default_directory().ok_or(CacheError::NoDirectory)?,
        };
        let trust = match config.key {
            Some(_) => Trust::Seal,
            None => Trust::Ownership,
        };
        let root = CacheDir::open_root(&root, trust)?;
        let version = CString::new(kiln_artifact::header::FORMAT_VERSION.to_string())
            .expect("digits hold no NUL");
        let versioned = root
            .child(&version, true, trust)?
            .expect("a created directory exists");
        Ok(Cache {
            root,
            versioned,
            trust,
            max_size: config.max_size,
            key: config.key.clone(),
            warned: AtomicBool::new(false),
        })
    }

    /// The cache directory (without the format-version level).
    pub fn directory(&self) -> &Path {
        self.root.path()
    }

    /// The size limit in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The key that authenticates entries, if there is one: then every entry must carry a
    /// seal made with it.
    pub fn authentication_key(&self) -> Option<&ArtifactKey> {
        self.key.as_ref()
    }

    /// The key of `wasm` compiled under `fingerprint` (every setting that changes code).
    pub fn key(&self, wasm: &[u8], fingerprint: &str) -> (CacheKey, SourceDigest) {
        key::CacheKey::derive(wasm, fingerprint, self.key.as_ref())
    }

    /// The key of the wasm in `file` (as [`Cache::key`] of its bytes), hashed without
    /// reading the whole file into memory: a hit never needs the bytes.
    pub fn key_of_file(
        &self,
        file: &std::fs::File,
        fingerprint: &str,
    ) -> std::io::Result<(CacheKey, SourceDigest)> {
        key::CacheKey::derive_from_file(file, fingerprint, self.key.as_ref())
    }

    /// The file an entry for `key` lives in (for messages; the cache itself opens it
    /// through its directory's descriptor).
    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.versioned.path().join(&hex[..2]).join(hex)
    }

    /// The shard directory and file name of `key`'s entry; `None` if the shard does not
    /// exist (and is not to be created) or cannot be used.
    fn shard_of(
        &self,
        key: &CacheKey,
        create: bool,
    ) -> Result<Option<(CacheDir, CString)>, CacheError> {
        let hex = key.to_hex();
        let shard = CString::new(&hex[..2]).expect("hexadecimal digits hold no NUL");
        let name = CString::new(hex).expect("hexadecimal digits hold no NUL");
        Ok(self
            .versioned
            .child(&shard, create, self.trust)?
            .map(|dir| (dir, name)))
    }

    /// The entry for `key`, if there is one. Refreshes its modification time (the
    /// eviction order) at most once an hour, so a hit normally writes nothing. Anything at
    /// the entry's name that is not a plausible entry (a link, FIFO, device or directory, a
    /// file over [`MAX_ENTRY_LEN`], or without a key a file another user owns or may write)
    /// is no hit; the store that follows the compilation replaces it.
    pub fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        let path = self.entry_path(key);
        let (shard, name) = match self.shard_of(key, false) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!("module cache entry not used: {e}");
                return None;
            }
        };
        let (file, stat) = match shard.open_file(&name) {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("module cache entry {} not used: {e}", path.display());
                return None;
            }
        };
        if let Err(e) = self.check_entry(&stat, &path) {
            tracing::warn!("module cache entry not used: {e}");
            return None;
        }
        let modified = gc::modified(&stat);
        let now = SystemTime::now();
        let stale = now
            .duration_since(modified)
            .is_ok_and(|age| age > TOUCH_AFTER);
        if stale {
            // Only the eviction order depends on this; a read-only directory is no error.
            let _ = file.set_modified(now);
        }
        Some(Entry {
            path,
            len: stat.st_size as u64,
            file,
        })
    }

    fn check_entry(&self, stat: &rustix::fs::Stat, path: &Path) -> Result<(), CacheError> {
        let len = stat.st_size as u64;
        if len > MAX_ENTRY_LEN {
            return Err(CacheError::BadEntry {
                path: path.to_owned(),
                reason: format!("{len} bytes, more than an entry may have ({MAX_ENTRY_LEN})"),
            });
        }
        if self.trust == Trust::Ownership {
            dir::check_private(stat, path)?;
        }
        Ok(())
    }

    /// Stores `artifact` under `key`, atomically: readers see the old entry, no entry, or
    /// the whole new one. Then evicts least-recently-used entries if the cache is over its
    /// limit. Returns the entry's path.
    pub fn store(&self, key: &CacheKey, artifact: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.entry_path(key);
        if artifact.len() as u64 > MAX_ENTRY_LEN {
            return Err(CacheError::BadEntry {
                path,
                reason: format!(
                    "{} bytes, more than an entry may have ({MAX_ENTRY_LEN})",
                    artifact.len()
                ),
            });
        }
        let (shard, name) = self
            .shard_of(key, true)?
            .expect("a created directory exists");
        write::write_atomically(&shard, &name, artifact)?;
        gc::collect(&self.versioned, self.trust, self.max_size, Some(&name))?;
        Ok(path)
    }

    /// Like [`Cache::store`], but a failure (read-only or full directory, missing
    /// permission) becomes one warning per cache instead of an error: the caller goes on
    /// without caching.
    pub fn store_or_warn(&self, key: &CacheKey, artifact: &[u8]) -> Option<PathBuf> {
        match self.store(key, artifact) {
            Ok(path) => Some(path),
            Err(e) => {
                self.warn_once(&e);
                None
            }
        }
    }

    /// Removes the entry for `key` (one that failed to load), if it is still there.
    pub fn remove(&self, key: &CacheKey) {
        let removed = self.shard_of(key, false).and_then(|found| match found {
            Some((shard, name)) => match shard.remove_file(&name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(error::io(&self.entry_path(key))(e))
                }
                _ => Ok(()),
            },
            None => Ok(()),
        });
        if let Err(e) = removed {
            self.warn_once(&e);
        }
    }

    /// Entries and bytes in the cache.
    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        gc::stats(&self.versioned, self.trust)
    }

    /// Removes every entry (of every format version). Refuses, removing nothing, if the
    /// directory holds anything else ([`CacheError::Foreign`]).
    pub fn clear(&self) -> Result<GcReport, CacheError> {
        gc::clear(&self.root, self.trust)
    }

    /// Evicts least-recently-used entries until the cache holds at most `max_size` bytes
    /// (the configured limit if `None`), and removes temporary files that writers left.
    pub fn gc(&self, max_size: Option<u64>) -> Result<GcReport, CacheError> {
        gc::collect(
            &self.versioned,
            self.trust,
            max_size.unwrap_or(self.max_size),
            None,
        )
    }

    fn warn_once(&self, e: &CacheError) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("module cache not written, running without it: {e}");
        }
    }
}
