//! The fixed-size artifact header: what the file is, who made it, for which target and
//! settings, where its sections lie, and the checksum of everything after it.
//!
//! ```text
//!   0  magic            8 bytes  "\0KILNART"
//!   8  format version   u32 LE
//!  12  header size      u32 LE   (512)
//!  16  pointer size     u8, then 7 reserved bytes
//!  24  kiln version     32 bytes, NUL-padded UTF-8
//!  56  target triple    64 bytes, NUL-padded UTF-8
//! 120  cpu features    160 bytes, NUL-padded UTF-8 (the features the code relies on, as
//!                      named by [`crate::cpu`], sorted, comma-separated)
//! 280  settings        128 bytes, NUL-padded UTF-8 (compiler settings that change the code)
//! 408  metadata        u64 offset, u64 length (the rkyv archive)
//! 424  code            u64 offset, u64 length (page-aligned text section)
//! 440  data            u64 offset, u64 length (data-segment bytes)
//! 456  checksum        16 bytes: xxh3-128 over the xxh3-128 of each 256 KiB of the file,
//!                      this field and the seal read as zeros, LE ([`checksum`])
//! 472  seal            32 bytes: keyed blake3 of the whole file, this field read as zeros
//!                      (all zero: not sealed; see [`crate::seal`])
//! 504  reserved        zero up to 512
//! ```
//!
//! The checksum covers the header too, reserved bytes must be zero, and the sections must lie
//! exactly where the writer puts them (metadata right after the header, the text section at
//! the next multiple of the code alignment, data at the next multiple of 16, or of the code
//! alignment when it starts with a memory image, nothing after it), so any change to any
//! byte of an artifact is detected in checked mode.

use crate::error::ArtifactError;

/// First bytes of every artifact.
pub const MAGIC: [u8; 8] = *b"\0KILNART";
/// Version of the file layout, of the archived metadata types and of the contract between
/// generated code and the runtime (the vmctx layout, builtins, table element encoding).
pub const FORMAT_VERSION: u32 = 10;
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 512;
/// The Kiln version written into artifacts and required when loading them.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

const KILN_VERSION_FIELD: (usize, usize) = (24, 32);
const TARGET_FIELD: (usize, usize) = (56, 64);
const CPU_FEATURES_FIELD: (usize, usize) = (120, 160);
const SETTINGS_FIELD: (usize, usize) = (280, 128);
const METADATA_FIELD: usize = 408;
const CODE_FIELD: usize = 424;
const DATA_FIELD: usize = 440;
const CHECKSUM_FIELD: usize = 456;
/// Offset of the seal in the header.
pub const SEAL_FIELD: usize = 472;
/// Length of the seal in bytes.
pub const SEAL_LEN: usize = 32;

/// What an artifact was compiled for. A loader requires equality on every field but the CPU
/// features, which it checks against the CPU it runs on instead.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompatInfo {
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: String,
    /// CPU features the code relies on ([`crate::cpu`] names), comma-separated and sorted.
    pub cpu_features: String,
    /// Compiler settings that change the generated code, `key=value` comma-separated.
    pub settings: String,
    /// Pointer size of the target in bytes.
    pub pointer_size: u8,
}

/// A byte range of the artifact file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SectionRange {
    /// Offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl SectionRange {
    /// The range as `usize` bounds, checked against a file of `file_len` bytes.
    pub fn bounds(&self, file_len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(self.offset).ok()?;
        let end = start.checked_add(usize::try_from(self.len).ok()?)?;
        (end <= file_len).then_some(start..end)
    }
}

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// File format version.
    pub format_version: u32,
    /// Version of Kiln that wrote the file.
    pub kiln_version: String,
    /// Target, CPU features, settings and pointer size.
    pub compat: CompatInfo,
    /// The rkyv archive of `ModuleInfo`.
    pub metadata: SectionRange,
    /// The text section.
    pub code: SectionRange,
    /// The data-segment bytes.
    pub data: SectionRange,
    /// xxh3-128 of the whole file with this field and the seal zeroed.
    pub checksum: u128,
    /// The seal (all zero when the artifact is not sealed). [`Header::encode`] writes it;
    /// only [`crate::seal::verify_seal`] can tell whether it is genuine.
    pub seal: [u8; SEAL_LEN],
}

fn put_str(
    out: &mut [u8],
    (at, len): (usize, usize),
    s: &str,
    what: &'static str,
) -> Result<(), ArtifactError> {
    if s.len() > len {
        return Err(ArtifactError::FieldTooLong {
            field: what,
            len: s.len(),
            max: len,
        });
    }
    out[at..at + s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

fn get_str(
    bytes: &[u8],
    (at, len): (usize, usize),
    what: &'static str,
) -> Result<String, ArtifactError> {
    let field = &bytes[at..at + len];
    // Every load parses these 416 bytes: a word-at-a-time search for the terminator and a
    // branch-free (vectorised) check of the padding beat a byte loop by 5x.
    let end = core::ffi::CStr::from_bytes_until_nul(field).map_or(len, |s| s.count_bytes());
    if field[end..].iter().fold(0, |any, &b| any | b) != 0 {
        return Err(ArtifactError::MalformedHeader(format!(
            "{what} has bytes after its terminator"
        )));
    }
    core::str::from_utf8(&field[..end])
        .map(str::to_owned)
        .map_err(|_| ArtifactError::MalformedHeader(format!("{what} is not UTF-8")))
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The first checks of anything that claims to be an artifact: the magic bytes, a whole
/// header, and this format version.
fn check_frame(start: &[u8]) -> Result<(), ArtifactError> {
    if start.len() < 8 || start[0..8] != MAGIC {
        return Err(ArtifactError::BadMagic);
    }
    if start.len() < HEADER_SIZE {
        return Err(ArtifactError::Truncated {
            needed: HEADER_SIZE as u64,
            found: start.len() as u64,
        });
    }
    let format_version = get_u32(start, 8);
    if format_version != FORMAT_VERSION {
        return Err(ArtifactError::FormatVersion {
            expected: FORMAT_VERSION,
            found: format_version,
        });
    }
    Ok(())
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn get_range(bytes: &[u8], at: usize) -> SectionRange {
    SectionRange {
        offset: get_u64(bytes, at),
        len: get_u64(bytes, at + 8),
    }
}

impl Header {
    /// Encodes the header into its 512 bytes.
    pub fn encode(&self) -> Result<[u8; HEADER_SIZE], ArtifactError> {
        let mut out = [0u8; HEADER_SIZE];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        out[16] = self.compat.pointer_size;
        put_str(
            &mut out,
            KILN_VERSION_FIELD,
            &self.kiln_version,
            "kiln version",
        )?;
        put_str(&mut out, TARGET_FIELD, &self.compat.target, "target")?;
        put_str(
            &mut out,
            CPU_FEATURES_FIELD,
            &self.compat.cpu_features,
            "cpu features",
        )?;
        put_str(&mut out, SETTINGS_FIELD, &self.compat.settings, "settings")?;
        for (at, r) in [
            (METADATA_FIELD, self.metadata),
            (CODE_FIELD, self.code),
            (DATA_FIELD, self.data),
        ] {
            out[at..at + 8].copy_from_slice(&r.offset.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&r.len.to_le_bytes());
        }
        out[CHECKSUM_FIELD..CHECKSUM_FIELD + 16].copy_from_slice(&self.checksum.to_le_bytes());
        out[SEAL_FIELD..SEAL_FIELD + SEAL_LEN].copy_from_slice(&self.seal);
        Ok(out)
    }

    /// Parses and checks the header of `file`: magic, format version, header size, and that
    /// every section lies inside the file. Never panics, whatever the bytes.
    pub fn parse(file: &[u8]) -> Result<Header, ArtifactError> {
        Self::parse_start(file, file.len() as u64)
    }

    /// The length of the file whose header begins `start`: where its last section, the data
    /// section, ends. Checks only the magic bytes and the format version, so a reader that may
    /// not use any other byte yet (a sealed load, before the seal is verified) can refuse a
    /// file whose length disagrees before reading the rest of it.
    pub fn declared_len(start: &[u8]) -> Result<u64, ArtifactError> {
        check_frame(start)?;
        let data = get_range(start, DATA_FIELD);
        data.offset
            .checked_add(data.len)
            .ok_or_else(|| ArtifactError::MalformedHeader("data section past 2^64".into()))
    }

    /// [`Header::parse`] of a file of `file_len` bytes that begins with `start` (at least
    /// the header; a loader that does not read the whole file).
    pub fn parse_start(file: &[u8], file_len: u64) -> Result<Header, ArtifactError> {
        check_frame(file)?;
        if file[17..24]
            .iter()
            .chain(&file[SEAL_FIELD + SEAL_LEN..HEADER_SIZE])
            .any(|&b| b != 0)
        {
            return Err(ArtifactError::MalformedHeader(
                "reserved bytes are not zero".into(),
            ));
        }
        let header_size = get_u32(file, 12);
        if header_size as usize != HEADER_SIZE {
            return Err(ArtifactError::MalformedHeader(format!(
                "header size {header_size}, expected {HEADER_SIZE}"
            )));
        }
        let header = Header {
            format_version: FORMAT_VERSION,
            kiln_version: get_str(file, KILN_VERSION_FIELD, "kiln version")?,
            compat: CompatInfo {
                target: get_str(file, TARGET_FIELD, "target")?,
                cpu_features: get_str(file, CPU_FEATURES_FIELD, "cpu features")?,
                settings: get_str(file, SETTINGS_FIELD, "settings")?,
                pointer_size: file[16],
            },
            metadata: get_range(file, METADATA_FIELD),
            code: get_range(file, CODE_FIELD),
            data: get_range(file, DATA_FIELD),
            checksum: {
                let mut b = [0u8; 16];
                b.copy_from_slice(&file[CHECKSUM_FIELD..CHECKSUM_FIELD + 16]);
                u128::from_le_bytes(b)
            },
            seal: file[SEAL_FIELD..SEAL_FIELD + SEAL_LEN]
                .try_into()
                .expect("the seal field is 32 bytes"),
        };
        for (name, range) in [
            ("metadata", header.metadata),
            ("code", header.code),
            ("data", header.data),
        ] {
            match usize::try_from(file_len)
                .ok()
                .and_then(|len| range.bounds(len))
            {
                Some(r) if r.start >= HEADER_SIZE || r.is_empty() => {}
                _ => {
                    return Err(ArtifactError::SectionOutOfBounds {
                        section: name,
                        offset: range.offset,
                        len: range.len,
                        file_len,
                    });
                }
            }
        }
        header.check_layout(file_len)?;
        Ok(header)
    }

    /// Checks that the sections lie exactly where [`crate::build_artifact`] puts them.
    ///
    /// A section's alignment is not recorded, so it is accepted at the first multiple of
    /// any power of two between 16 and 64 KiB after the section before it.
    fn check_layout(&self, file_len: u64) -> Result<(), ArtifactError> {
        let bad = |what: String| Err(ArtifactError::MalformedHeader(what));
        if self.metadata.offset != HEADER_SIZE as u64 {
            return bad(format!(
                "metadata starts at {}, not right after the header",
                self.metadata.offset
            ));
        }
        let meta_end = self.metadata.offset + self.metadata.len;
        if !first_aligned_after(self.code.offset, meta_end) {
            return bad(format!(
                "code section at {} is not aligned after the metadata ending at {meta_end}",
                self.code.offset
            ));
        }
        let code_end = self.code.offset + self.code.len;
        // The data section starts at the first multiple of 16 after the code, or of the
        // code's alignment when it begins with a memory image.
        if !first_aligned_after(self.data.offset, code_end) {
            return bad(format!(
                "data section at {} does not follow the code section ending at {code_end}",
                self.data.offset
            ));
        }
        if self.data.offset + self.data.len != file_len {
            return bad(format!(
                "{} bytes after the data section",
                file_len as i128 - (self.data.offset + self.data.len) as i128
            ));
        }
        Ok(())
    }

    /// Checks that the artifact was made by this Kiln for `expected`; each mismatch is its own
    /// error naming both values. The CPU features are not compared: code compiled for
    /// another CPU level than the engine's runs as well wherever the CPU has its features,
    /// which the loader checks ([`crate::cpu::host_has`]).
    pub fn check_compat(&self, expected: &CompatInfo) -> Result<(), ArtifactError> {
        if self.kiln_version != KILN_VERSION {
            return Err(ArtifactError::KilnVersion {
                expected: KILN_VERSION.to_owned(),
                found: self.kiln_version.clone(),
            });
        }
        if self.compat.target != expected.target {
            return Err(ArtifactError::Target {
                expected: expected.target.clone(),
                found: self.compat.target.clone(),
            });
        }
        if self.compat.pointer_size != expected.pointer_size {
            return Err(ArtifactError::PointerSize {
                expected: expected.pointer_size,
                found: self.compat.pointer_size,
            });
        }
        if self.compat.settings != expected.settings {
            return Err(ArtifactError::Settings {
                expected: expected.settings.clone(),
                found: self.compat.settings.clone(),
            });
        }
        Ok(())
    }
}

/// Alignment of the text section of artifacts for `target` (a triple): the architecture's
/// largest page size, so that the code can be mapped straight from the file. `None` for an
/// architecture Kiln does not compile for. The compiler places the text section at the first
/// such boundary after the metadata, and every load requires it there.
pub fn code_alignment(target: &str) -> Option<u64> {
    match target.split('-').next()? {
        "x86_64" => Some(4096),
        "aarch64" => Some(65536),
        _ => None,
    }
}

/// Pieces of the file that [`checksum`] hashes separately.
const CHECKSUM_PIECE: usize = 256 << 10;
/// Files at least this large have their pieces hashed on all cores. Below it one stream is
/// better: for SQLite's 2.8 MB artifact on 2 cores, hashing on rayon's pool took the checked
/// load from about 215 to about 200 µs, but the workers that spin after a job slowed whatever
/// the process did next (the loads that followed it in the peer bench took 1.5-2x longer).
const CHECKSUM_PARALLEL_THRESHOLD: usize = 16 << 20;

/// The checksum stored in the header: the file in 256 KiB pieces, each hashed with xxh3-128
/// (the checksum and seal fields read as zeros, so sealing leaves it unchanged), then
/// xxh3-128 of the file's length and the pieces' hashes. The pieces of large files are
/// hashed in parallel; the value does not depend on the number of threads. `file` must be
/// at least [`HEADER_SIZE`] bytes long.
pub fn checksum(file: &[u8]) -> u128 {
    use rayon::prelude::*;
    const _: () = assert!(CHECKSUM_FIELD + 16 == SEAL_FIELD && SEAL_FIELD < CHECKSUM_PIECE);
    let piece_hash = |(index, piece): (usize, &[u8])| {
        if index > 0 {
            return twox_hash::XxHash3_128::oneshot(piece).to_le_bytes();
        }
        let mut hasher = twox_hash::XxHash3_128::new();
        hasher.write(&piece[..CHECKSUM_FIELD]);
        hasher.write(&[0u8; 16 + SEAL_LEN]);
        hasher.write(&piece[SEAL_FIELD + SEAL_LEN..]);
        hasher.finish_128().to_le_bytes()
    };
    let pieces: Vec<[u8; 16]> = if file.len() >= CHECKSUM_PARALLEL_THRESHOLD {
        file.par_chunks(CHECKSUM_PIECE)
            .enumerate()
            .map(piece_hash)
            .collect()
    } else {
        file.chunks(CHECKSUM_PIECE)
            .enumerate()
            .map(piece_hash)
            .collect()
    };
    let mut summary = Vec::with_capacity(8 + 16 * pieces.len());
    summary.extend_from_slice(&(file.len() as u64).to_le_bytes());
    summary.extend(pieces.iter().flatten());
    twox_hash::XxHash3_128::oneshot(&summary)
}

/// Whether `offset` is the first multiple of some power of two between 16 and 64 KiB at or
/// after `end`.
fn first_aligned_after(offset: u64, end: u64) -> bool {
    offset >= end
        && (4..=16).any(|shift| {
            let align = 1u64 << shift;
            offset.is_multiple_of(align) && offset - end < align
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum's definition, written out sequentially.
    fn reference_checksum(file: &[u8]) -> u128 {
        let mut zeroed = file.to_vec();
        zeroed[CHECKSUM_FIELD..SEAL_FIELD + SEAL_LEN].fill(0);
        let mut summary = (file.len() as u64).to_le_bytes().to_vec();
        for piece in zeroed.chunks(CHECKSUM_PIECE) {
            summary.extend(twox_hash::XxHash3_128::oneshot(piece).to_le_bytes());
        }
        twox_hash::XxHash3_128::oneshot(&summary)
    }

    #[test]
    fn the_checksum_is_the_same_sequential_or_parallel_and_ignores_its_fields() {
        for len in [
            HEADER_SIZE,
            CHECKSUM_PIECE,
            CHECKSUM_PIECE + 1,
            CHECKSUM_PARALLEL_THRESHOLD + 12_345,
        ] {
            let mut file: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(167) ^ (i >> 13) as u8)
                .collect();
            let sum = checksum(&file);
            assert_eq!(sum, reference_checksum(&file), "{len} bytes");
            file[CHECKSUM_FIELD..SEAL_FIELD + SEAL_LEN].fill(0xa5);
            assert_eq!(
                checksum(&file),
                sum,
                "{len} bytes: checksum and seal fields count"
            );
            let last = len - 1;
            file[last] ^= 1;
            assert_ne!(
                checksum(&file),
                sum,
                "{len} bytes: the last byte is not covered"
            );
        }
    }
}
