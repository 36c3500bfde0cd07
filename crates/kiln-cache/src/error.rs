//! What can go wrong with a cache directory.

use std::path::PathBuf;

/// A cache error. None of them is fatal to a run: callers go on without the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No directory is configured and neither `KILN_CACHE_DIR`, `XDG_CACHE_HOME` nor `HOME`
    /// names one.
    #[error("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoDirectory,
    /// A file operation failed (read-only or full file system, missing permission).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Without a key, the cache runs unsealed entries as they are, so its directory must be
    /// this user's own and writable by nobody else.
    #[error(
        "{} is {reason}: an unauthenticated cache must be owner-only (chmod 700, or set a cache key)",
        path.display()
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `clear` found something in the cache directory that Kiln does not make there (a
    /// directory named by mistake, or a file someone else put in a shared cache), and
    /// removed nothing.
    #[error(
        "{} is not a module cache entry: refusing to clear a directory that holds other files \
         (is KILN_CACHE_DIR right?)",
        path.display()
    )]
    Foreign {
        /// The first such file or directory found.
        path: PathBuf,
    },
    /// An entry is not a regular file of a size an artifact can have, or (without a key) is
    /// not this user's own.
    #[error("{}: {reason}", path.display())]
    BadEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}
