//! Creating directories and entries so that readers never see a partial file.
//!
//! An entry is written to a temporary file in its final directory, synced, and renamed over
//! its name: `rename` within one directory is atomic, so a reader opens the old entry, no
//! entry, or the complete new one. A writer killed halfway leaves only a temporary file
//! (named [`TEMP_PREFIX`]…), which no lookup opens and a later collection removes. When many
//! processes store the same entry at once, each rename replaces a complete file with an
//! equal one, and processes that mapped an earlier one keep their (unlinked) inode.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{CacheError, io};

/// Names of files being written start with this; they are never entries.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), CacheError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Refuses a directory that another user owns or that others may write to.
pub fn check_private(dir: &Path) -> Result<(), CacheError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let not_private = |reason: String| CacheError::NotPrivate {
        path: dir.to_owned(),
        reason,
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(not_private(format!(
            "owned by uid {} (this process runs as {me})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(not_private(format!(
            "writable by others (mode {:o})",
            mode & 0o777
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (see the module documentation), creating its
/// directory if needed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().expect("entries live in a shard directory");
    create_private_dir(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io(dir))?;
    temp.write_all(bytes).map_err(io(temp.path()))?;
    temp.as_file().sync_all().map_err(io(temp.path()))?;
    pause_point();
    temp.persist(path).map_err(|e| CacheError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    // Make the rename itself durable; a file system that cannot sync directories loses
    // nothing but durability.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Test hook: with `KILN_CACHE_TEST_PAUSE_MS` set, a writer sleeps between writing its
/// temporary file and renaming it, so tests can kill it at that point.
fn pause_point() {
    if let Some(ms) = std::env::var_os("KILN_CACHE_TEST_PAUSE_MS")
        .and_then(|v| v.to_str().and_then(|s| s.parse::<u64>().ok()))
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
