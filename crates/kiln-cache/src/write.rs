//! Writing entries so that readers never see a partial file.
//!
//! An entry is written to a temporary file in its final directory, synced, and renamed over
//! its name: `rename` within one directory is atomic, so a reader opens the old entry, no
//! entry, or the complete new one. A writer killed halfway leaves only a temporary file
//! (named [`TEMP_PREFIX`]…), which no lookup opens and a later collection removes. When many
//! processes store the same entry at once, each rename replaces a complete file with an
//! equal one, and processes that mapped an earlier one keep their (unlinked) inode. Every
//! step goes through the shard's descriptor ([`crate::dir`]): the temporary file is created
//! `O_EXCL | O_NOFOLLOW`, so a name planted in a shared directory is never written through.

use std::ffi::{CStr, CString};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;

use crate::dir::CacheDir;
use crate::error::{CacheError, io};

/// Names of files being written start with this; they are never entries.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` as the entry `name` of `shard` atomically (see the module documentation).
pub(crate) fn write_atomically(
    shard: &CacheDir,
    name: &CStr,
    bytes: &[u8],
) -> Result<(), CacheError> {
    let (temp_name, mut temp) = create_temp(shard)?;
    let temp_path = shard.path_of(&temp_name);
    let written = temp
        .write_all(bytes)
        .and_then(|()| temp.sync_all())
        .map_err(io(&temp_path));
    drop(temp);
    if written.is_ok() {
        pause_point();
    }
    let renamed = written.and_then(|()| {
        shard
            .rename(&temp_name, name)
            .map_err(io(&shard.path_of(name)))
    });
    if renamed.is_err() {
        let _ = shard.remove_file(&temp_name);
    }
    renamed?;
    shard.sync();
    Ok(())
}

/// A new temporary file in `shard` under a name nobody can guess ahead of time.
fn create_temp(shard: &CacheDir) -> Result<(CString, std::fs::File), CacheError> {
    let mut last = None;
    for _ in 0..16 {
        let name = CString::new(format!("{TEMP_PREFIX}{:016x}", random_u64()))
            .expect("hexadecimal digits hold no NUL");
        match shard.create_file(&name) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io(shard.path())(e)),
        }
    }
    Err(io(shard.path())(last.expect("16 attempts were made")))
}

/// 64 bits from the standard library's randomly keyed hasher: unpredictable enough for
/// names that `O_EXCL` already keeps from colliding.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
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
