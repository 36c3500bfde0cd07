//! Sealed artifacts: a keyed blake3 MAC over the whole file.
//!
//! No check of an artifact's structure can tell machine code that Kiln compiled from code
//! that someone else wrote, so loading an unsealed artifact is a promise of the caller's. A
//! seal turns that promise into a check: an engine holding a secret [`ArtifactKey`] writes
//! `blake3::keyed_hash(key, file with the seal field zeroed)` into the header, and a loader
//! holding the same key recomputes it before it uses any other byte. A matching seal means a
//! Kiln compiler that held the key wrote exactly these bytes. The threat model is in
//! `docs/security.md`.

use crate::error::ArtifactError;
use crate::header::{HEADER_SIZE, MAGIC, SEAL_FIELD, SEAL_LEN};

/// Files at least this large are hashed with blake3's multi-threaded mode (on this 2-core
/// machine it is slower than one thread at 1 MiB and 1.4x faster at 16 MiB: benches/seal.rs).
pub(crate) const PARALLEL_THRESHOLD: usize = 4 << 20;

/// The secret key that seals artifacts and verifies their seals: 32 bytes.
///
/// Its `Debug` form never shows the bytes, and they are overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ArtifactKey([u8; 32]);

impl std::fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArtifactKey(<secret>)")
    }
}

impl Drop for ArtifactKey {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the wipe of memory about to be freed from being optimised away.
        std::hint::black_box(&self.0);
    }
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not 64 hexadecimal digits.
    #[error("an artifact key is 64 hexadecimal digits (32 bytes); {0}")]
    Format(String),
    /// The key file could not be read.
    #[error("cannot read the artifact key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ArtifactKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> ArtifactKey {
        ArtifactKey(bytes)
    }

    /// A key from 64 hexadecimal digits (surrounding whitespace is ignored), the form of
    /// `KILN_ARTIFACT_KEY`.
    pub fn from_hex(text: &str) -> Result<ArtifactKey, KeyError> {
        let text = text.trim();
        if let Some(at) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
            return Err(KeyError::Format(format!(
                "character {} is not a hexadecimal digit",
                at + 1
            )));
        }
        if text.len() != 64 {
            return Err(KeyError::Format(format!("this has {} digits", text.len())));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).expect("ASCII digits");
            *byte = u8::from_str_radix(pair, 16).expect("two hexadecimal digits");
        }
        Ok(ArtifactKey(bytes))
    }

    /// A key for another purpose, derived from this one with blake3's key derivation under
    /// `context` (a fixed, unique string): it reveals nothing about this key.
    pub fn derive(&self, context: &'static str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    /// Reads a key file: 32 raw bytes, or 64 hexadecimal digits (with surrounding white
    /// space). At most 4 KiB are read, so a key path pointing at something else (a device, a
    /// huge file) fails instead of filling memory; the bytes read are overwritten afterwards.
    pub fn from_file(path: &std::path::Path) -> Result<ArtifactKey, KeyError> {
        use std::io::Read;
        const MOST: u64 = 4096;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut bytes = Vec::with_capacity(MOST as usize + 1);
        std::fs::File::open(path)
            .and_then(|f| f.take(MOST + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        let key = if bytes.len() as u64 > MOST {
            Err(KeyError::Format(format!(
                "{} is larger than a key file can be",
                path.display()
            )))
        } else if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(ArtifactKey(raw))
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => ArtifactKey::from_hex(text),
                Err(_) => Err(KeyError::Format(format!(
                    "{} holds {} bytes that are not text",
                    path.display(),
                    bytes.len()
                ))),
            }
        };
        bytes.fill(0);
        std::hint::black_box(&bytes);
        key
    }

    fn hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.0)
    }
}

/// The seal of `file` under `key`: the keyed hash of every byte, the seal field read as
/// zeros. `file` must be at least [`HEADER_SIZE`] bytes long.
pub fn compute_seal(file: &[u8], key: &ArtifactKey) -> [u8; SEAL_LEN] {
    compute_seal_with(file, key, file.len() >= PARALLEL_THRESHOLD)
}

/// [`compute_seal`] with the choice of blake3's multi-threaded mode made by the caller (for
/// measuring both).
pub fn compute_seal_with(file: &[u8], key: &ArtifactKey, parallel: bool) -> [u8; SEAL_LEN] {
    let mut hasher = key.hasher();
    hasher.update(&file[..SEAL_FIELD]);
    hasher.update(&[0u8; SEAL_LEN]);
    let rest = &file[SEAL_FIELD + SEAL_LEN..];
    if parallel {
        hasher.update_rayon(rest);
    } else {
        hasher.update(rest);
    }
    *hasher.finalize().as_bytes()
}

/// Seals artifact bytes in place (they must come from [`crate::build_artifact`]). Sealing
/// does not change the checksum, which reads the seal field as zeros too.
pub fn seal(file: &mut [u8], key: &ArtifactKey) -> Result<(), ArtifactError> {
    check_frame(file)?;
    let seal = compute_seal(file, key);
    file[SEAL_FIELD..SEAL_FIELD + SEAL_LEN].copy_from_slice(&seal);
    Ok(())
}

/// Verifies the seal of `file` under `key`. Reads nothing but the magic bytes before the
/// seal has been checked, and compares in constant time.
pub fn verify_seal(file: &[u8], key: &ArtifactKey) -> Result<(), ArtifactError> {
    check_frame(file)?;
    let stored = &file[SEAL_FIELD..SEAL_FIELD + SEAL_LEN];
    if stored.iter().all(|&b| b == 0) {
        return Err(ArtifactError::Unsealed);
    }
    let stored = blake3::Hash::from_bytes(stored.try_into().expect("the seal field is 32 bytes"));
    // `blake3::Hash`'s equality is constant-time.
    if stored == blake3::Hash::from_bytes(compute_seal(file, key)) {
        Ok(())
    } else {
        Err(ArtifactError::SealMismatch)
    }
}

/// The seal lies inside the header of anything that claims to be an artifact.
fn check_frame(file: &[u8]) -> Result<(), ArtifactError> {
    if file.len() < MAGIC.len() || file[..MAGIC.len()] != MAGIC {
        return Err(ArtifactError::BadMagic);
    }
    if file.len() < HEADER_SIZE {
        return Err(ArtifactError::Truncated {
            needed: HEADER_SIZE as u64,
            found: file.len() as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_parse_and_reject_bad_text() {
        let key = ArtifactKey::from_hex(&"0f".repeat(32)).unwrap();
        assert_eq!(key, ArtifactKey::new([0x0f; 32]));
        assert!(ArtifactKey::from_hex(&"0f".repeat(31)).is_err());
        assert!(ArtifactKey::from_hex(&format!("{}zz", "0f".repeat(31))).is_err());
        assert!(!format!("{key:?}").contains("0f"));
    }

    #[test]
    fn a_seal_depends_on_every_byte_and_on_the_key() {
        let mut file = vec![0u8; 4096];
        file[..8].copy_from_slice(&MAGIC);
        let key = ArtifactKey::new([7; 32]);
        seal(&mut file, &key).unwrap();
        verify_seal(&file, &key).unwrap();
        assert_eq!(
            verify_seal(&file, &ArtifactKey::new([8; 32])),
            Err(ArtifactError::SealMismatch)
        );
        for at in [9, SEAL_FIELD - 1, SEAL_FIELD + SEAL_LEN, 4095] {
            let mut changed = file.clone();
            changed[at] ^= 1;
            assert_eq!(
                verify_seal(&changed, &key),
                Err(ArtifactError::SealMismatch)
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(verify_seal(&longer, &key), Err(ArtifactError::SealMismatch));
        assert_eq!(
            compute_seal_with(&file, &key, true),
            compute_seal_with(&file, &key, false)
        );
    }
}
