//! Size accounting and least-recently-used eviction.
//!
//! The eviction order is each entry's modification time, which [`crate::Cache::lookup`]
//! refreshes at most once an hour: hits stay read-only, and the order is right to within
//! that hour. Collection runs after each store (a miss already paid for a compilation) and
//! on `kiln cache gc`, never on a hit.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{CacheError, io};
use crate::write::TEMP_PREFIX;

/// A temporary file older than this belongs to a writer that died.
const TEMP_MAX_AGE: Duration = Duration::from_secs(600);

/// What the cache holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries.
    pub entries: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Temporary files of writers still running or killed.
    pub temp_files: u64,
}

/// What a collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries removed.
    pub removed: u64,
    /// Bytes freed by removing them.
    pub freed: u64,
    /// Stale temporary files removed.
    pub temp_removed: u64,
    /// Entries and bytes left.
    pub left: CacheStats,
}

struct Found {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// Entries and temporary files under `versioned` (the format-version directory).
fn scan(versioned: &Path) -> Result<(Vec<Found>, Vec<Found>), CacheError> {
    let mut entries = Vec::new();
    let mut temps = Vec::new();
    let shards = match std::fs::read_dir(versioned) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((entries, temps)),
        Err(e) => return Err(io(versioned)(e)),
    };
    for shard in shards.flatten() {
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let found = Found {
                path: file.path(),
                len: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            };
            if file.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                temps.push(found);
            } else {
                entries.push(found);
            }
        }
    }
    Ok((entries, temps))
}

/// Counts what `versioned` holds.
pub fn stats(versioned: &Path) -> Result<CacheStats, CacheError> {
    let (entries, temps) = scan(versioned)?;
    Ok(CacheStats {
        entries: entries.len() as u64,
        bytes: entries.iter().map(|e| e.len).sum(),
        temp_files: temps.len() as u64,
    })
}

/// Removes stale temporary files, then the least recently used entries until at most
/// `max_size` bytes are left. `keep` (the entry just stored) stays, even if it alone is over
/// the limit: its process is about to use it.
pub fn collect(
    versioned: &Path,
    max_size: u64,
    keep: Option<&Path>,
) -> Result<GcReport, CacheError> {
    let (mut entries, temps) = scan(versioned)?;
    let now = SystemTime::now();
    let mut report = GcReport::default();
    for t in temps {
        let old = now
            .duration_since(t.modified)
            .is_ok_and(|age| age > TEMP_MAX_AGE);
        if old && std::fs::remove_file(&t.path).is_ok() {
            report.temp_removed += 1;
        } else {
            report.left.temp_files += 1;
        }
    }
    let mut total: u64 = entries.iter().map(|e| e.len).sum();
    // Oldest first; the entry just stored is the newest whatever the clock says.
    entries.sort_by_key(|e| (Some(e.path.as_path()) == keep, e.modified));
    let mut kept = Vec::new();
    for e in entries {
        let just_stored = Some(e.path.as_path()) == keep;
        if total > max_size && !just_stored && std::fs::remove_file(&e.path).is_ok() {
            total -= e.len;
            report.removed += 1;
            report.freed += e.len;
        } else {
            kept.push(e);
        }
    }
    report.left.entries = kept.len() as u64;
    report.left.bytes = total;
    Ok(report)
}

/// Removes every entry and temporary file under `root`, keeping the directory itself.
pub fn clear(root: &Path) -> Result<GcReport, CacheError> {
    let mut report = GcReport::default();
    let versions = match std::fs::read_dir(root) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(io(root)(e)),
    };
    for version in versions.flatten() {
        let path = version.path();
        if !path.is_dir() {
            continue;
        }
        let (entries, temps) = scan(&path)?;
        for e in entries {
            std::fs::remove_file(&e.path).map_err(io(&e.path))?;
            report.removed += 1;
            report.freed += e.len;
        }
        for t in temps {
            if std::fs::remove_file(&t.path).is_ok() {
                report.temp_removed += 1;
            }
        }
    }
    Ok(report)
}
