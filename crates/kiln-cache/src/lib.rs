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

/// An open cache directory. Its root was opened (and, without a key, checked) once, in
/// [`Cache::open`], and its format-version directory once, when first needed; everything
/// after goes through their descriptors, so swapping a name in the path changes nothing.
#[derive(Debug)]
pub struct Cache {
    root: CacheDir,
    version: CString,
    versioned: std::sync::OnceLock<CacheDir>,
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
    /// Which file it is, for [`Cache::touch`] and [`Cache::remove_entry`] once the file has
    /// been handed to a loader.
    pub stamp: EntryStamp,
}

/// The identity and age of an entry's file: [`Cache::remove_entry`] removes the name only
/// while it still names this file, and [`Cache::touch`] refreshes it only when it is old.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryStamp {
    key: CacheKey,
    /// Device, inode and status-change time: an inode number freed by a removal and reused
    /// by a new file has a later change time.
    identity: (u64, u64, i64, i64),
    modified: SystemTime,
}

fn identity(stat: &rustix::fs::Stat) -> (u64, u64, i64, i64) {
    (
        stat.st_dev,
        stat.st_ino,
        stat.st_ctime,
        stat.st_ctime_nsec as i64,
    )
}

impl Cache {
    /// Opens (creating with owner-only permissions) the directory of `config` and its
    /// format-version directory. Without a key the directory must belong to this user and be
    /// writable by nobody else, as its unsealed entries are run as they are; that is checked
    /// on the open directory, before anything is created in it.
    pub fn open(config: &CacheConfig) -> Result<Cache, CacheError> {
        let cache = Self::open_root(config, true)?.expect("a created directory exists");
        cache.versioned(true)?;
        Ok(cache)
    }

    /// Opens the directory of `config` as [`Cache::open`] does, but creates nothing: `None`
    /// if there is no such directory. For commands that only look or remove (`kiln cache
    /// stats`, `gc`, `clear`), so that naming the wrong directory leaves no trace in it.
    pub fn open_existing(config: &CacheConfig) -> Result<Option<Cache>, CacheError> {
        Self::open_root(config, false)
    }

    fn open_root(config: &CacheConfig, create: bool) -> Result<Option<Cache>, CacheError> {
        let root = match &config.directory {
            Some(dir) => dir.clone(),
            None => config::default_directory().ok_or(CacheError::NoDirectory)?,
        };
        let trust = match config.key {
            Some(_) => Trust::Seal,
            None => Trust::Ownership,
        };
        let root = match CacheDir::open_root(&root, trust, create) {
            Ok(root) => root,
            Err(CacheError::Io { source, .. })
                if !create && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let version = CString::new(kiln_artifact::header::FORMAT_VERSION.to_string())
            .expect("digits hold no NUL");
        Ok(Some(Cache {
            root,
            version,
            versioned: std::sync::OnceLock::new(),
            trust,
            max_size: config.max_size,
            key: config.key.clone(),
            warned: AtomicBool::new(false),
        }))
    }

    /// The format-version directory, opened on first use (and created if `create`); `None`
    /// if it does not exist and is not to be created.
    fn versioned(&self, create: bool) -> Result<Option<&CacheDir>, CacheError> {
        if let Some(dir) = self.versioned.get() {
            return Ok(Some(dir));
        }
        match self.root.child(&self.version, create, self.trust)? {
            // Two threads may open it at once; either descriptor names the same directory.
            Some(dir) => Ok(Some(self.versioned.get_or_init(|| dir))),
            None => Ok(None),
        }
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
        use std::os::unix::ffi::OsStrExt;
        let hex = key.to_hex();
        self.root
            .path()
            .join(std::ffi::OsStr::from_bytes(self.version.to_bytes()))
            .join(&hex[..2])
            .join(hex)
    }

    /// The shard directory and file name of `key`'s entry; `None` if the shard does not
    /// exist (and is not to be created).
    fn shard_of(
        &self,
        key: &CacheKey,
        create: bool,
    ) -> Result<Option<(CacheDir, CString)>, CacheError> {
        let hex = key.to_hex();
        let shard = CString::new(&hex[..2]).expect("hexadecimal digits hold no NUL");
        let name = CString::new(hex).expect("hexadecimal digits hold no NUL");
        let Some(versioned) = self.versioned(create)? else {
            return Ok(None);
        };
        Ok(versioned
            .child(&shard, create, self.trust)?
            .map(|dir| (dir, name)))
    }

    /// The entry for `key`, if there is one. Anything at the entry's name that is not a
    /// plausible entry (a link, FIFO, device or directory, a file over [`MAX_ENTRY_LEN`], or
    /// without a key a file another user owns or may write) is no hit, with a warning; the
    /// store that follows the compilation replaces it. A lookup writes nothing: see
    /// [`Cache::touch`].
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
        Some(Entry {
            path,
            len: stat.st_size as u64,
            file,
            stamp: EntryStamp {
                key: *key,
                identity: identity(&stat),
                modified: gc::modified(&stat),
            },
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

    /// After a hit loaded: refreshes the entry's modification time (the eviction order) if
    /// it is more than an hour old and its name still names the file that was loaded, so a
    /// hit normally writes nothing. Only the eviction order depends on this: a read-only
    /// directory or another user's entry is no error.
    pub fn touch(&self, stamp: &EntryStamp) {
        let stale = SystemTime::now()
            .duration_since(stamp.modified)
            .is_ok_and(|age| age > TOUCH_AFTER);
        if !stale {
            return;
        }
        if let Ok(Some((shard, name))) = self.shard_of(&stamp.key, false)
            && let Ok(now) = shard.stat_of(&name)
            && identity(&now) == stamp.identity
        {
            let _ = shard.touch(&name);
        }
    }

    /// Removes an entry that failed to load, if its name still names the file that was
    /// opened (a writer may have replaced it with a good one since).
    pub fn remove_entry(&self, stamp: &EntryStamp) {
        let removed = self.shard_of(&stamp.key, false).and_then(|found| {
            let Some((shard, name)) = found else {
                return Ok(());
            };
            match shard.stat_of(&name) {
                Ok(now) if identity(&now) == stamp.identity => {}
                _ => return Ok(()),
            }
            match shard.remove_file(&name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(error::io(&self.entry_path(&stamp.key))(e))
                }
                _ => Ok(()),
            }
        });
        if let Err(e) = removed {
            self.warn_once(&e);
        }
    }

    /// Stores `artifact` under `key`, atomically: readers see the old entry, no entry, or
    /// the whole new one. Then evicts least-recently-used entries if the cache is over its
    /// limit (a failure of that is a warning: the entry is stored). Returns the entry's path.
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
        let versioned = self
            .versioned(false)?
            .expect("the entry's directory exists");
        if let Err(e) = gc::collect(versioned, self.trust, self.max_size, Some(&name)) {
            tracing::warn!("module cache not collected after a store: {e}");
        }
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

    /// Removes the entry for `key`, if there is one.
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
        match self.versioned(false)? {
            Some(versioned) => gc::stats(versioned, self.trust),
            None => Ok(CacheStats::default()),
        }
    }

    /// Removes every entry (of every format version). Refuses, removing nothing, if the
    /// directory holds anything else ([`CacheError::Foreign`]).
    pub fn clear(&self) -> Result<GcReport, CacheError> {
        gc::clear(&self.root, self.trust)
    }

    /// Evicts least-recently-used entries until the cache holds at most `max_size` bytes
    /// (the configured limit if `None`), and removes temporary files that writers left.
    pub fn gc(&self, max_size: Option<u64>) -> Result<GcReport, CacheError> {
        match self.versioned(false)? {
            Some(versioned) => gc::collect(
                versioned,
                self.trust,
                max_size.unwrap_or(self.max_size),
                None,
            ),
            None => Ok(GcReport::default()),
        }
    }

    fn warn_once(&self, e: &CacheError) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("module cache not written, running without it: {e}");
        }
    }
}
