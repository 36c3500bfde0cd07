//! Where the cache lives, how large it may grow, and the key that authenticates entries.

use std::path::PathBuf;

use kiln_artifact::ArtifactKey;

/// The default size limit: 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// Settings of a module cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub(crate) directory: Option<PathBuf>,
    pub(crate) max_size: u64,
    pub(crate) key: Option<ArtifactKey>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            directory: None,
            max_size: DEFAULT_MAX_SIZE,
            key: None,
        }
    }
}

impl CacheConfig {
    /// The default: [`default_directory`], 1 GiB, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps entries in `dir` instead of the default directory.
    pub fn directory(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.directory = Some(dir.into());
        self
    }

    /// Evicts least-recently-used entries when the cache grows past `bytes`.
    pub fn max_size(&mut self, bytes: u64) -> &mut Self {
        self.max_size = bytes;
        self
    }

    /// Authenticates entries: every entry is sealed with `key` (a keyed blake3 MAC over the
    /// whole file) and an entry whose seal does not verify is treated as corrupt, so whoever
    /// can write into the directory but lacks the key cannot make Kiln run their code.
    pub fn key(&mut self, key: ArtifactKey) -> &mut Self {
        self.key = Some(key);
        self
    }

    /// Whether a key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The directory in use: the configured one or [`default_directory`].
    pub fn resolved_directory(&self) -> Option<PathBuf> {
        self.directory.clone().or_else(default_directory)
    }
}

/// `$KILN_CACHE_DIR` (a relative one is taken from the current directory), else
/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln` (relative values of those two are ignored, as
/// the XDG specification asks).
pub fn default_directory() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let chosen = std::env::var_os("KILN_CACHE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .and_then(|dir| std::path::absolute(dir).ok());
    chosen
        .or_else(|| absolute("XDG_CACHE_HOME").map(|p| p.join("kiln")))
        .or_else(|| absolute("HOME").map(|p| p.join(".cache").join("kiln")))
}
