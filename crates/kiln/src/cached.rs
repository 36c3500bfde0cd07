//! `Module::new` through the module cache: load the entry if there is a good one, else
//! compile, store and load.
//!
//! A hit is loaded in checked mode, and then the wasm hash the artifact records must equal
//! the wasm's own, so an entry renamed from another module is not used. With a key the entry
//! must carry a seal made with it, checked before any other byte is used. Whatever is wrong
//! with an entry (truncated, flipped bits, other version or target, other module, forged), it
//! is removed (if its name still names that file) and the module compiled again; an entry
//! that could not be read (out of descriptors, say) is only compiled past, and the store
//! replaces it. A cache can cost a compilation, never a wrong result.

use std::sync::Arc;

use kiln_cache::{Cache, CacheKey, Entry, SourceDigest};
use kiln_runtime::LoadedModule;

use crate::{Engine, Result};

pub(crate) fn load_or_compile(
    engine: &Engine,
    cache: &Cache,
    wasm: &[u8],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Arc<LoadedModule>> {
    let (key, digest) = cache.key(wasm, engine.fingerprint());
    if let Some(loaded) = load_hit(engine, cache, &key, &digest) {
        return Ok(loaded);
    }
    compile_and_store(engine, cache, &key, wasm, progress)
}

/// The entry for the wasm binary in `file`, if the cache holds a good one. The file is
/// hashed in pieces: a hit never reads the whole file into memory.
pub(crate) fn load_file_hit(
    engine: &Engine,
    cache: &Cache,
    file: &std::fs::File,
) -> Option<Arc<LoadedModule>> {
    let (key, digest) = cache.key_of_file(file, engine.fingerprint()).ok()?;
    load_hit(engine, cache, &key, &digest)
}

fn load_hit(
    engine: &Engine,
    cache: &Cache,
    key: &CacheKey,
    digest: &SourceDigest,
) -> Option<Arc<LoadedModule>> {
    let entry = cache.lookup(key)?;
    let (path, stamp) = (entry.path.clone(), entry.stamp);
    match load_entry(engine, cache, entry, digest) {
        Ok(loaded) => {
            tracing::debug!(entry = %path.display(), "module cache hit");
            cache.touch(&stamp);
            Some(loaded)
        }
        Err(Unusable::Unreadable(why)) => {
            // Out of descriptors or memory, say: the entry may be good. The store after the
            // compilation replaces it either way.
            tracing::warn!(
                entry = %path.display(),
                "cannot read module cache entry, recompiling: {why}"
            );
            None
        }
        Err(Unusable::Bad(why)) => {
            tracing::warn!(
                entry = %path.display(),
                "removing unusable module cache entry and recompiling: {why}"
            );
            cache.remove_entry(&stamp);
            None
        }
    }
}

/// Why an entry was not used.
enum Unusable {
    /// Reading or mapping it failed.
    Unreadable(String),
    /// It is not a valid artifact of this wasm for this engine.
    Bad(String),
}

fn compile_and_store(
    engine: &Engine,
    cache: &Cache,
    key: &CacheKey,
    wasm: &[u8],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Arc<LoadedModule>> {
    let mut artifact = engine.precompile_module_with_progress(wasm, progress)?;
    if let Some(key) = cache.authentication_key() {
        kiln_artifact::seal::seal(&mut artifact, key)?;
    }
    cache.store_or_warn(key, &artifact);
    crate::module::load_fresh(engine, &artifact)
}

fn load_entry(
    engine: &Engine,
    cache: &Cache,
    entry: Entry,
    digest: &SourceDigest,
) -> std::result::Result<Arc<LoadedModule>, Unusable> {
    let loaded = match cache.authentication_key() {
        Some(key) => {
            LoadedModule::from_open_file_sealed(&entry.file, &entry.path, engine.compat(), key)
        }
        // SAFETY: without a key the cache is trusted by ownership: `Cache::open` checked the
        // open root and format directories, `Cache::lookup` the shard and the entry (this
        // user's own, writable by nobody else, a regular file opened without following a
        // link; docs/cache.md), so nobody else wrote the bytes. Entries are created by rename
        // and never written in place, so the file does not change under the module. What
        // checked mode cannot tell (whose code it is) is vouched for by that ownership.
        None => unsafe {
            LoadedModule::from_open_file(
                entry.file,
                &entry.path,
                engine.compat(),
                kiln_runtime::Verification::Checked,
            )
        },
    }
    .map_err(|e| match e {
        kiln_runtime::LoadError::Io { .. } => Unusable::Unreadable(e.to_string()),
        kiln_runtime::LoadError::Artifact(_) => Unusable::Bad(e.to_string()),
    })?;
    if !digest.matches(&loaded.info().source) {
        return Err(Unusable::Bad(
            "the entry was compiled from other wasm".into(),
        ));
    }
    Ok(loaded)
}
