//! Size accounting, least-recently-used eviction, and emptying the cache.
//!
//! The eviction order is each entry's modification time, which [`crate::Cache::touch`]
//! refreshes after a hit at most once an hour: hits stay read-only, and the order is right
//! to within that hour. Collection runs after each store (a miss already paid for a compilation) and
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
use crate::{MAX_ENTRY_LEN, names};

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
    /// Entries and stale temporary files that were to go but could not be removed (a
    /// read-only directory, another user's files in a shared cache).
    pub not_removed: u64,
    /// Entries and bytes left.
    pub left: CacheStats,
}

/// A file found in a shard.
struct Found {
    shard: CString,
    name: CString,
    len: u64,
    modified: SystemTime,
}

/// What removing a found file did.
enum Removed {
    Now,
    /// Someone else (a concurrent collection) removed it first.
    Already,
    Failed(std::io::Error),
}

/// The entries and temporary files of one format-version directory. Shards are reopened
/// for each removal rather than kept open, so a cache of many shards never holds many
/// descriptors.
struct Scan {
    entries: Vec<Found>,
    temps: Vec<Found>,
}

fn remove(versioned: &CacheDir, trust: Trust, found: &Found) -> Removed {
    let shard = match versioned.child(&found.shard, false, trust) {
        Ok(Some(shard)) => shard,
        Ok(None) => return Removed::Already,
        Err(e) => return Removed::Failed(std::io::Error::other(e.to_string())),
    };
    match shard.remove_file(&found.name) {
        Ok(()) => Removed::Now,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Removed::Already,
        Err(e) => Removed::Failed(e),
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
/// that cannot be opened (a link, a mount, or with [`Trust::Ownership`] one that is not
/// private) are skipped, with a debug line.
fn scan(versioned: &CacheDir, trust: Trust) -> Result<Scan, CacheError> {
    let mut scan = Scan {
        entries: Vec::new(),
        temps: Vec::new(),
    };
    for listed in versioned.list()? {
        let shard_name = listed.name.to_bytes();
        if !(listed.is_dir() && names::is_shard(shard_name)) {
            continue;
        }
        let files = match versioned.child(&listed.name, false, trust) {
            Ok(Some(shard)) => shard.list(),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                tracing::debug!("module cache shard skipped: {e}");
                continue;
            }
        };
        for file in files.into_iter().filter(Listed::is_file) {
            let Some(stat) = file.stat else { continue };
            let found = Found {
                shard: listed.name.clone(),
                len: stat.st_size as u64,
                modified: modified(&stat),
                name: file.name,
            };
            if names::is_entry(shard_name, found.name.to_bytes()) {
                scan.entries.push(found);
            } else if names::is_temp(found.name.to_bytes()) {
                scan.temps.push(found);
            }
        }
    }
    Ok(scan)
}

/// Counts what `versioned` holds.
pub(crate) fn stats(versioned: &CacheDir, trust: Trust) -> Result<CacheStats, CacheError> {
    let scan = scan(versioned, trust)?;
    let entries = || scan.entries.iter().filter(|e| e.len <= MAX_ENTRY_LEN);
    Ok(CacheStats {
        entries: entries().count() as u64,
        bytes: entries().map(|e| e.len).sum(),
        temp_files: scan.temps.len() as u64,
    })
}

/// Removes stale temporary files, then the least recently used entries until at most
/// `max_size` bytes are left. The entry named `keep` (the one just stored) stays, even if it
/// alone is over the limit: its process is about to use it. Files at entry names larger than
/// any entry ([`MAX_ENTRY_LEN`], never a hit: a sparse giant planted in a shared cache) are
/// removed first and never count, so they cannot push real entries out. A file that cannot
/// be removed (another user's, in a shared cache) stays and counts in
/// [`GcReport::not_removed`].
pub(crate) fn collect(
    versioned: &CacheDir,
    trust: Trust,
    max_size: u64,
    keep: Option<&std::ffi::CStr>,
) -> Result<GcReport, CacheError> {
    let scan = scan(versioned, trust)?;
    let now = SystemTime::now();
    let mut report = GcReport::default();
    for t in &scan.temps {
        let old = now
            .duration_since(t.modified)
            .is_ok_and(|age| age > TEMP_MAX_AGE);
        if !old {
            report.left.temp_files += 1;
            continue;
        }
        match remove(versioned, trust, t) {
            Removed::Now => report.temp_removed += 1,
            Removed::Already => {}
            Removed::Failed(e) => {
                tracing::debug!("stale temporary file of the module cache kept: {e}");
                report.left.temp_files += 1;
                report.not_removed += 1;
            }
        }
    }
    let (giants, mut entries): (Vec<Found>, Vec<Found>) = scan
        .entries
        .into_iter()
        .partition(|e| e.len > MAX_ENTRY_LEN);
    for giant in &giants {
        if let Removed::Failed(e) = remove(versioned, trust, giant) {
            tracing::debug!("oversized file at a module cache entry's name kept: {e}");
            report.not_removed += 1;
        }
    }
    let is_kept = |e: &Found| Some(e.name.as_c_str()) == keep;
    let mut total: u64 = entries.iter().map(|e| e.len).sum();
    // Oldest first; the entry just stored is the newest whatever the clock says.
    entries.sort_by_key(|e| (is_kept(e), e.modified));
    for e in &entries {
        if total <= max_size || is_kept(e) {
            report.left.entries += 1;
            continue;
        }
        match remove(versioned, trust, e) {
            Removed::Now => {
                total -= e.len;
                report.removed += 1;
                report.freed += e.len;
            }
            Removed::Already => total -= e.len,
            Removed::Failed(err) => {
                tracing::debug!("module cache entry not evicted: {err}");
                report.left.entries += 1;
                report.not_removed += 1;
            }
        }
    }
    report.left.bytes = total;
    Ok(report)
}

/// Removes every entry and temporary file of every format version under `root`, keeping
/// the directories. Refuses, before removing anything, a root that holds anything Kiln does
/// not make there: `KILN_CACHE_DIR=$HOME kiln cache clear` is a mistake, not an order.
/// Removal goes on past a file that cannot be removed; the first such failure is the error.
pub(crate) fn clear(root: &CacheDir, trust: Trust) -> Result<GcReport, CacheError> {
    let foreign = |dir: &CacheDir, listed: &Listed| CacheError::Foreign {
        path: dir.path_of(&listed.name),
    };
    // Every version, shard and file by name, all checked before the first removal.
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
            for file in dir.list()? {
                let name = file.name.to_bytes();
                if !(file.is_file() && (names::is_entry(shard_name, name) || names::is_temp(name)))
                {
                    return Err(foreign(&dir, &file));
                }
                plan.push((version.name.clone(), shard.name.clone(), file));
            }
        }
    }
    let mut report = GcReport::default();
    let mut first_error = None;
    // The shard of the files removed last: the plan is in shard order.
    let mut open: Option<((&CString, &CString), Option<CacheDir>)> = None;
    for (version, shard, file) in &plan {
        if open.as_ref().is_none_or(|(at, _)| *at != (version, shard)) {
            let dir = root.child(version, false, trust).and_then(|v| match v {
                Some(v) => v.child(shard, false, trust),
                None => Ok(None),
            });
            let dir = match dir {
                Ok(dir) => dir,
                Err(e) => {
                    first_error.get_or_insert(e);
                    None
                }
            };
            open = Some(((version, shard), dir));
        }
        let dir = open.as_ref().and_then(|(_, dir)| dir.as_ref());
        let removed = Ok(dir).and_then(|dir| match dir {
            Some(dir) => match dir.remove_file(&file.name) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(crate::error::io(&dir.path_of(&file.name))(e)),
            },
            None => Ok(false),
        });
        match removed {
            Ok(true) if names::is_temp(file.name.to_bytes()) => report.temp_removed += 1,
            Ok(true) => {
                report.removed += 1;
                report.freed += file.len();
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
