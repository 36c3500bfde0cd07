//! Size accounting, least-recently-used eviction, and emptying the cache.
//!
//! The eviction order is each entry's modification time, which [`crate::Cache::lookup`]
//! refreshes at most once an hour: hits stay read-only, and the order is right to within
//! that hour. Collection runs after each store (a miss already paid for a compilation) and
//! on `kiln cache gc`, never on a hit.
//!
//! Walks go through directory descriptors and never follow a link ([`crate::dir`]), and
//! they see only names of the shapes Kiln writes ([`crate::names`]): a shard directory that
//! is a symlink to someone's documents, or a file of another name, is neither counted nor
//! removed. Removing unlinks a name in its shard, so the worst a swapped name can make a
//! removal do is unlink that name.

use std::ffi::CString;
use std::time::{Duration, SystemTime};

use crate::dir::{CacheDir, Listed, Trust};
use crate::error::CacheError;
use crate::names;

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

/// A file found in a shard.
struct Found {
    /// Index of its shard in [`Scan::shards`].
    shard: usize,
    name: CString,
    len: u64,
    modified: SystemTime,
}

/// The entries and temporary files of one format-version directory.
struct Scan {
    shards: Vec<CacheDir>,
    entries: Vec<Found>,
    temps: Vec<Found>,
}

impl Scan {
    fn remove(&self, found: &Found) -> bool {
        self.shards[found.shard].remove_file(&found.name).is_ok()
    }
}

pub(crate) fn modified(stat: &rustix::fs::Stat) -> SystemTime {
    let since_epoch = Duration::new(
        u64::try_from(stat.st_mtime).unwrap_or(0),
        u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

/// Entries and temporary files under `versioned` (the format-version directory). Shards
/// that cannot be opened (a link, or with [`Trust::Ownership`] one that is not private) are
/// skipped.
fn scan(versioned: &CacheDir, trust: Trust) -> Result<Scan, CacheError> {
    let mut scan = Scan {
        shards: Vec::new(),
        entries: Vec::new(),
        temps: Vec::new(),
    };
    for listed in versioned.list()? {
        let shard_name = listed.name.to_bytes();
        if !(listed.is_dir() && names::is_shard(shard_name)) {
            continue;
        }
        let Ok(Some(shard)) = versioned.child(&listed.name, false, trust) else {
            continue;
        };
        let Ok(files) = shard.list() else { continue };
        let index = scan.shards.len();
        for file in files.into_iter().filter(Listed::is_file) {
            let found = Found {
                shard: index,
                len: file.stat.st_size as u64,
                modified: modified(&file.stat),
                name: file.name,
            };
            if names::is_entry(shard_name, found.name.to_bytes()) {
                scan.entries.push(found);
            } else if names::is_temp(found.name.to_bytes()) {
                scan.temps.push(found);
            }
        }
        scan.shards.push(shard);
    }
    Ok(scan)
}

/// Counts what `versioned` holds.
pub(crate) fn stats(versioned: &CacheDir, trust: Trust) -> Result<CacheStats, CacheError> {
    let scan = scan(versioned, trust)?;
    Ok(CacheStats {
        entries: scan.entries.len() as u64,
        bytes: scan.entries.iter().map(|e| e.len).sum(),
        temp_files: scan.temps.len() as u64,
    })
}

/// Removes stale temporary files, then the least recently used entries until at most
/// `max_size` bytes are left. The entry named `keep` (the one just stored) stays, even if it
/// alone is over the limit: its process is about to use it.
pub(crate) fn collect(
    versioned: &CacheDir,
    trust: Trust,
    max_size: u64,
    keep: Option<&std::ffi::CStr>,
) -> Result<GcReport, CacheError> {
    let mut scan = scan(versioned, trust)?;
    let now = SystemTime::now();
    let mut report = GcReport::default();
    for t in &scan.temps {
        let old = now
            .duration_since(t.modified)
            .is_ok_and(|age| age > TEMP_MAX_AGE);
        if old && scan.remove(t) {
            report.temp_removed += 1;
        } else {
            report.left.temp_files += 1;
        }
    }
    let is_kept = |e: &Found| Some(e.name.as_c_str()) == keep;
    let mut total: u64 = scan.entries.iter().map(|e| e.len).sum();
    // Oldest first; the entry just stored is the newest whatever the clock says.
    let mut entries = std::mem::take(&mut scan.entries);
    entries.sort_by_key(|e| (is_kept(e), e.modified));
    for e in &entries {
        if total > max_size && !is_kept(e) && scan.remove(e) {
            total -= e.len;
            report.removed += 1;
            report.freed += e.len;
        } else {
            report.left.entries += 1;
        }
    }
    report.left.bytes = total;
    Ok(report)
}

/// Removes every entry and temporary file of every format version under `root`, keeping
/// the directories. Refuses, before removing anything, a root that holds anything Kiln does
/// not make there: `KILN_CACHE_DIR=$HOME kiln cache clear` is a mistake, not an order.
pub(crate) fn clear(root: &CacheDir, trust: Trust) -> Result<GcReport, CacheError> {
    let foreign = |dir: &CacheDir, listed: &Listed| CacheError::Foreign {
        path: dir.path_of(&listed.name),
    };
    // Every shard with its files, all checked before the first removal.
    let mut plan = Vec::new();
    for version in root.list()? {
        if !(version.is_dir() && names::is_version(version.name.to_bytes())) {
            return Err(foreign(root, &version));
        }
        let versioned = root
            .child(&version.name, false, trust)?
            .ok_or_else(|| foreign(root, &version))?;
        for shard in versioned.list()? {
            let shard_name = shard.name.to_bytes();
            if !(shard.is_dir() && names::is_shard(shard_name)) {
                return Err(foreign(&versioned, &shard));
            }
            let dir = versioned
                .child(&shard.name, false, trust)?
                .ok_or_else(|| foreign(&versioned, &shard))?;
            let files = dir.list()?;
            for file in &files {
                let name = file.name.to_bytes();
                if !(file.is_file() && (names::is_entry(shard_name, name) || names::is_temp(name)))
                {
                    return Err(foreign(&dir, file));
                }
            }
            plan.push((dir, files));
        }
    }
    let mut report = GcReport::default();
    for (dir, files) in &plan {
        for file in files {
            match dir.remove_file(&file.name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(crate::error::io(&dir.path_of(&file.name))(e)),
            }
            if names::is_temp(file.name.to_bytes()) {
                report.temp_removed += 1;
            } else {
                report.removed += 1;
                report.freed += file.stat.st_size as u64;
            }
        }
    }
    Ok(report)
}
