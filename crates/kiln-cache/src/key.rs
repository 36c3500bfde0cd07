//! Entry names: a hash of the wasm together with everything that changes its code.
//!
//! The fingerprint (from the facade) names the Kiln build, the artifact format, target, CPU
//! features, compiler settings and proposals, so an entry written under any other setting or
//! by another Kiln has another name and is never found. Without a key the wasm is hashed
//! with xxh3-128 (memory speed; a private cache only needs to tell modules apart by
//! accident); with a key, with blake3 and the name is a keyed hash, so nobody without the
//! key can predict names or search for colliding modules.

use kiln_artifact::source::{fast_hash, fast_hash_file, strong_hash, strong_hash_file};
use kiln_artifact::{ArchivedSourceHashes, ArtifactKey};

/// The name of a cache entry: 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 16]);

/// The hash of the wasm an entry must have been compiled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceDigest {
    /// xxh3-128 (caches without a key).
    Fast([u8; 16]),
    /// blake3 (caches with a key).
    Strong([u8; 32]),
}

impl SourceDigest {
    /// Whether an artifact that records `recorded` was compiled from this wasm.
    pub fn matches(&self, recorded: &ArchivedSourceHashes) -> bool {
        match self {
            SourceDigest::Fast(h) => *h == recorded.fast,
            SourceDigest::Strong(h) => *h == recorded.strong,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            SourceDigest::Fast(h) => h,
            SourceDigest::Strong(h) => h,
        }
    }
}

const NAME_CONTEXT: &str = "kiln module cache 2026-12 entry names";

impl CacheKey {
    /// The key and source digest of `wasm` under `fingerprint`, keyed by `secret` if given.
    pub fn derive(
        wasm: &[u8],
        fingerprint: &str,
        secret: Option<&ArtifactKey>,
    ) -> (CacheKey, SourceDigest) {
        let digest = match secret {
            None => SourceDigest::Fast(fast_hash(wasm)),
            Some(_) => SourceDigest::Strong(strong_hash(wasm)),
        };
        (CacheKey::name(&digest, fingerprint, secret), digest)
    }

    /// Like [`CacheKey::derive`] for the contents of `file`, read in pieces without copying
    /// the whole file (`kiln_artifact::source::fast_hash_file`); the same key as `derive` of
    /// the file's bytes.
    pub fn derive_from_file(
        file: &std::fs::File,
        fingerprint: &str,
        secret: Option<&ArtifactKey>,
    ) -> std::io::Result<(CacheKey, SourceDigest)> {
        let digest = match secret {
            None => SourceDigest::Fast(fast_hash_file(file)?),
            Some(_) => SourceDigest::Strong(strong_hash_file(file)?),
        };
        Ok((CacheKey::name(&digest, fingerprint, secret), digest))
    }

    fn name(digest: &SourceDigest, fingerprint: &str, secret: Option<&ArtifactKey>) -> CacheKey {
        // Length-prefixed, so no two (fingerprint, digest) pairs give the same input.
        let mut input = Vec::with_capacity(8 + fingerprint.len() + 32);
        input.extend_from_slice(&(fingerprint.len() as u64).to_le_bytes());
        input.extend_from_slice(fingerprint.as_bytes());
        input.extend_from_slice(digest.bytes());
        CacheKey(match secret {
            None => twox_hash::XxHash3_128::oneshot(&input).to_le_bytes(),
            Some(key) => {
                let names = blake3::keyed_hash(&key.derive(NAME_CONTEXT), &input);
                names.as_bytes()[..16].try_into().expect("16 of 32 bytes")
            }
        })
    }

    /// 32 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}
