//! Errors found in artifact bytes. Every check on untrusted bytes ends in one of these.

/// Why an artifact cannot be loaded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The file does not start with the Kiln artifact magic.
    #[error("not a Kiln artifact (bad magic bytes)")]
    BadMagic,
    /// The file is shorter than its header says.
    #[error("artifact is truncated: needs {needed} bytes, has {found}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// Another file-format version.
    #[error("artifact format version {found} is not supported (expected {expected})")]
    FormatVersion {
        /// Version this Kiln reads.
        expected: u32,
        /// Version in the file.
        found: u32,
    },
    /// Written by another Kiln version.
    #[error("artifact was compiled by Kiln {found}, but this is Kiln {expected}")]
    KilnVersion {
        /// This Kiln's version.
        expected: String,
        /// Version in the file.
        found: String,
    },
    /// Compiled for another target.
    #[error("artifact was compiled for target `{found}`, but this engine runs `{expected}`")]
    Target {
        /// The engine's target.
        expected: String,
        /// Target in the file.
        found: String,
    },
    /// Compiled for another pointer size.
    #[error("artifact has pointer size {found}, but this engine uses {expected}")]
    PointerSize {
        /// The engine's pointer size.
        expected: u8,
        /// Pointer size in the file.
        found: u8,
    },
    /// Compiled for CPU features this CPU lacks.
    #[error("artifact was compiled for CPU features `{found}`, but this CPU lacks {missing}")]
    CpuFeatures {
        /// The features of the file that this CPU lacks (or Kiln does not know).
        missing: String,
        /// Features in the file.
        found: String,
    },
    /// Compiled with other settings.
    #[error("artifact was compiled with settings `{found}`, but this engine uses `{expected}`")]
    Settings {
        /// The engine's settings.
        expected: String,
        /// Settings in the file.
        found: String,
    },
    /// A header field is malformed.
    #[error("malformed artifact header: {0}")]
    MalformedHeader(String),
    /// A header field is too long for its slot (when writing).
    #[error("{field} is {len} bytes, longer than the {max} the header holds")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// Room in the header.
        max: usize,
    },
    /// A section lies outside the file.
    #[error(
        "{section} section at offset {offset} with length {len} lies outside the {file_len}-byte artifact"
    )]
    SectionOutOfBounds {
        /// Which section.
        section: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The bytes after the header do not match the checksum.
    #[error(
        "artifact checksum mismatch: header says {expected:032x}, contents hash to {found:032x}"
    )]
    Checksum {
        /// Checksum in the header.
        expected: u128,
        /// Checksum of the contents.
        found: u128,
    },
    /// A sealed load was asked for, but the artifact carries no seal.
    #[error(
        "artifact is not sealed: it was compiled by an engine without an artifact key, so \
         nothing shows that a Kiln compiler wrote its machine code"
    )]
    Unsealed,
    /// The seal does not verify under the loader's key.
    #[error(
        "artifact seal does not verify: it was not written by a Kiln compiler holding this \
         key, or it was changed afterwards"
    )]
    SealMismatch,
    /// A sealed load was asked for, but the engine holds no key to verify a seal with.
    #[error("no artifact key to verify the seal with (set one with Config::artifact_key)")]
    NoKey,
    /// The metadata archive failed validation.
    #[error("invalid metadata archive: {0}")]
    InvalidArchive(String),
    /// The metadata is well-formed but inconsistent (an index or range out of bounds).
    #[error("inconsistent metadata: {0}")]
    InvalidMetadata(String),
    /// The metadata could not be archived.
    #[error("cannot archive metadata: {0}")]
    Serialize(String),
}
