//! The cache's files on their own: names, stores, lookups, eviction, temporary files and the
//! directory checks, without compiling anything (entries here are arbitrary bytes; the
//! facade's tests and `kiln-cli/tests/cache.rs` load real ones).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kiln_artifact::ArtifactKey;
use kiln_cache::{Cache, CacheConfig, CacheError};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cache-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path, max_size: u64) -> Cache {
    let mut config = CacheConfig::new();
    config.directory(dir).max_size(max_size);
    Cache::open(&config).unwrap()
}

fn age(path: &Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

#[test]
fn names_depend_on_the_wasm_the_settings_and_the_key() {
    let dir = scratch("names");
    let plain = open(&dir, 1 << 20);
    let (a, _) = plain.key(b"wasm a", "settings 1");
    assert_eq!(a, plain.key(b"wasm a", "settings 1").0, "deterministic");
    assert_ne!(a, plain.key(b"wasm b", "settings 1").0);
    assert_ne!(a, plain.key(b"wasm a", "settings 2").0);
    // The fingerprint is length-prefixed: moving bytes between it and the wasm changes the name.
    assert_ne!(plain.key(b"ab", "x").0, plain.key(b"b", "xa").0);
    let mut config = CacheConfig::new();
    config.directory(&dir).key(ArtifactKey::new([1; 32]));
    let keyed = Cache::open(&config).unwrap();
    let (k1, digest) = keyed.key(b"wasm a", "settings 1");
    assert_ne!(k1, a);
    assert!(matches!(digest, kiln_cache::SourceDigest::Strong(_)));
    config.key(ArtifactKey::new([2; 32]));
    let other = Cache::open(&config).unwrap();
    assert_ne!(other.key(b"wasm a", "settings 1").0, k1);
    let path = plain.entry_path(&a);
    let hex = a.to_hex();
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), hex);
    assert_eq!(
        path.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
        &hex[..2]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_is_found_and_a_hit_writes_nothing_until_the_entry_is_old() {
    let dir = scratch("store");
    let cache = open(&dir, 1 << 20);
    let (key, _) = cache.key(b"m", "s");
    assert!(cache.lookup(&key).is_none());
    let path = cache.store(&key, b"artifact bytes").unwrap();
    let entry = cache.lookup(&key).unwrap();
    assert_eq!(entry.path, path);
    assert_eq!(entry.len, 14);
    assert_eq!(std::fs::read(&path).unwrap(), b"artifact bytes");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    let hit = cache.lookup(&key).unwrap();
    cache.touch(&hit.stamp);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written
    );
    // An entry unused for more than an hour is refreshed by its next hit (once loaded).
    age(&path, Duration::from_secs(2 * 3600));
    let aged = std::fs::metadata(&path).unwrap().modified().unwrap();
    let hit = cache.lookup(&key).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), aged);
    cache.touch(&hit.stamp);
    assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > aged);
    // A failed entry is removed only while its name still names that file.
    let stale = cache.lookup(&key).unwrap().stamp;
    cache.store(&key, b"rewritten").unwrap();
    cache.remove_entry(&stale);
    assert_eq!(cache.lookup(&key).unwrap().len, 9, "the new entry stays");
    cache.remove_entry(&cache.lookup(&key).unwrap().stamp);
    assert!(cache.lookup(&key).is_none());
    cache.store(&key, b"again").unwrap();
    cache.remove(&key);
    assert!(cache.lookup(&key).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stores_evict_the_least_recently_used_and_keep_what_they_stored() {
    let dir = scratch("evict");
    let cache = open(&dir, 250);
    let keys: Vec<_> = (0..4u8).map(|i| cache.key(&[i], "s").0).collect();
    for (i, key) in keys.iter().enumerate() {
        let path = cache.store(key, &[i as u8; 100]).unwrap();
        // Oldest first, well apart.
        age(&path, Duration::from_secs(1000 - 100 * i as u64));
    }
    // 250 bytes hold two entries: each store evicted the oldest ones.
    let found: Vec<bool> = keys.iter().map(|k| cache.lookup(k).is_some()).collect();
    assert_eq!(found, [false, false, true, true]);
    assert_eq!(cache.stats().unwrap().entries, 2);
    // An entry bigger than the limit survives its own store (its process uses it next) and
    // takes everything else with it.
    let (big, _) = cache.key(b"big", "s");
    cache.store(&big, &[9; 400]).unwrap();
    assert!(cache.lookup(&big).is_some());
    assert!(keys.iter().all(|k| cache.lookup(k).is_none()));
    let report = cache.gc(Some(0)).unwrap();
    assert_eq!(
        (report.removed, report.freed, report.left.entries),
        (1, 400, 0)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn old_temporary_files_are_removed_and_young_ones_kept() {
    let dir = scratch("temps");
    let cache = open(&dir, 1 << 20);
    let (key, _) = cache.key(b"m", "s");
    let shard = cache.entry_path(&key).parent().unwrap().to_owned();
    std::fs::create_dir_all(&shard).unwrap();
    let old = shard.join(".tmp-killed-long-ago");
    let young = shard.join(".tmp-still-writing");
    std::fs::write(&old, b"partial").unwrap();
    std::fs::write(&young, b"partial").unwrap();
    age(&old, Duration::from_secs(3600));
    assert_eq!(cache.stats().unwrap().temp_files, 2);
    assert_eq!(
        cache.stats().unwrap().entries,
        0,
        "temporary files are no entries"
    );
    let report = cache.gc(None).unwrap();
    assert_eq!((report.temp_removed, report.left.temp_files), (1, 1));
    assert!(!old.exists() && young.exists());
    let cleared = cache.clear().unwrap();
    assert_eq!(cleared.temp_removed, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unkeyed_cache_refuses_a_directory_others_can_write() {
    let dir = scratch("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut config = CacheConfig::new();
    config.directory(&dir);
    let err = Cache::open(&config).unwrap_err();
    assert!(matches!(err, CacheError::NotPrivate { .. }), "{err}");
    // With a key every entry is authenticated, so a shared directory is fine.
    config.key(ArtifactKey::new([3; 32]));
    Cache::open(&config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error() {
    let dir = scratch("blocked");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let mut config = CacheConfig::new();
    config.directory(file.join("cache"));
    assert!(matches!(
        Cache::open(&config).unwrap_err(),
        CacheError::Io { .. }
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
