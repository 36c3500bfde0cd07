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
//! entry one artifact file. Entries are created by `rename` and never written in place, so a
//! process that mapped one keeps a consistent file whatever others do to the directory.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod gc;
pub mod key;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

pub use config::CacheConfig;
pub use error::CacheError;
pub use gc::{CacheStats, GcReport};
pub use key::{CacheKey, SourceDigest};
use kiln_artifact::ArtifactKey;

/// How old an entry's modification time may get before a hit refreshes it: the time that
/// orders entries for eviction, kept coarse so that hits do not write.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// An open cache directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    versioned: PathBuf,
    max_size: u64,
    key: Option<ArtifactKey>,
    warned: AtomicBool,
}

/// An entry found for a key.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

impl Cache {
    /// Opens (creating with owner-only permissions) the directory of `config`. Without a key
    /// an existing directory must belong to this user and be writable by nobody else, as
    /// its unsealed entries are run as they are.
    pub fn open(config: &CacheConfig) -> Result<Cache, CacheError> {
        let root = match &config.directory {
            Some(dir) => dir.clone(),
            None => config::default_directory().ok_or(CacheError::NoDirectory)?,
        };
        let versioned = root.join(kiln_artifact::header::FORMAT_VERSION.to_string());
        write::create_private_dir(&versioned)?;
        if config.key.is_none() {
            write::check_private(&root)?;
            write::check_private(&versioned)?;
        }
        Ok(Cache {
            root,
            versioned,
            max_size: config.max_size,
            key: config.key.clone(),
            warned: AtomicBool::new(false),
        })
    }

    /// The cache directory (without the format-version level).
    pub fn directory(&self) -> &Path {
        &self.root
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

    /// The file an entry for `key` lives in.
    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.versioned.join(&hex[..2]).join(hex)
    }

    /// The entry for `key`, if there is one. Refreshes its modification time (the
    /// eviction order) at most once an hour, so a hit normally writes nothing.
    pub fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        let path = self.entry_path(key);
        let file = std::fs::File::open(&path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let now = SystemTime::now();
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > TOUCH_AFTER);
        if stale {
            // Only the eviction order depends on this; a read-only directory is no error.
            let _ = file.set_modified(now);
        }
        Some(Entry {
            path,
            len: meta.len(),
        })
    }

    /// Stores `artifact` under `key`, atomically: readers see the old entry, no entry, or
    /// the whole new one. Then evicts least-recently-used entries if the cache is over its
    /// limit. Returns the entry's path.
    pub fn store(&self, key: &CacheKey, artifact: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.entry_path(key);
        write::write_atomically(&path, artifact)?;
        gc::collect(&self.versioned, self.max_size, Some(&path))?;
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
        let path = self.entry_path(key);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            self.warn_once(&CacheError::Io { path, source: e });
        }
    }

    /// Entries and bytes in the cache.
    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        gc::stats(&self.versioned)
    }

    /// Removes every entry (of every format version).
    pub fn clear(&self) -> Result<GcReport, CacheError> {
        gc::clear(&self.root)
    }

    /// Evicts least-recently-used entries until the cache holds at most `max_size` bytes
    /// (the configured limit if `None`), and removes temporary files that writers left.
    pub fn gc(&self, max_size: Option<u64>) -> Result<GcReport, CacheError> {
        gc::collect(&self.versioned, max_size.unwrap_or(self.max_size), None)
    }

    fn warn_once(&self, e: &CacheError) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("module cache not written, running without it: {e}");
        }
    }
}
