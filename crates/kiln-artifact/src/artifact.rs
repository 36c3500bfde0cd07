//! Writing an artifact file and reading one back in place.
//!
//! Layout: header (512 bytes), metadata archive (16-aligned), padding, text section aligned
//! to the target's page size so it can be mapped executable straight from the file, then
//! the data section: 16-aligned, or page-aligned when it starts with a memory image.

use crate::error::ArtifactError;
use crate::header::{self, CompatInfo, HEADER_SIZE, Header, SectionRange};
use crate::module::{ArchivedModuleInfo, ModuleInfo};

/// Everything that goes into an artifact.
pub struct ArtifactParts<'a> {
    /// The module's metadata.
    pub info: &'a ModuleInfo,
    /// The linked text section.
    pub code: &'a [u8],
    /// The data-segment bytes; `DataSegment::bytes` are ranges of this.
    pub data: &'a [u8],
    /// Target, CPU features and settings the code was compiled for.
    pub compat: &'a CompatInfo,
    /// Alignment of the text section in the file: the largest page size of the target.
    pub code_alignment: u64,
}

fn align_to(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

/// Archives `info` with the pinned rkyv format (little-endian, 32-bit relative pointers).
pub fn archive_metadata(info: &ModuleInfo) -> Result<rkyv::util::AlignedVec, ArtifactError> {
    rkyv::to_bytes::<rkyv::rancor::Error>(info).map_err(|e| ArtifactError::Serialize(e.to_string()))
}

/// Writes the artifact bytes. Deterministic: equal parts give equal bytes.
pub fn build_artifact(parts: &ArtifactParts<'_>) -> Result<Vec<u8>, ArtifactError> {
    let archive = archive_metadata(parts.info)?;
    let metadata = SectionRange {
        offset: HEADER_SIZE as u64,
        len: archive.len() as u64,
    };
    let code_offset = align_to(metadata.offset + metadata.len, parts.code_alignment.max(16));
    let code = SectionRange {
        offset: code_offset,
        len: parts.code.len() as u64,
    };
    // A memory image at the start of the data section must be mappable from the file, so
    // the section is then page-aligned like the code.
    let data_alignment = match parts.info.memory_image {
        Some(_) => parts.code_alignment.max(16),
        None => 16,
    };
    let data = SectionRange {
        offset: align_to(code.offset + code.len, data_alignment),
        len: parts.data.len() as u64,
    };
    let total = (data.offset + data.len) as usize;

    let mut out = vec![0u8; total];
    out[metadata.offset as usize..][..archive.len()].copy_from_slice(&archive);
    out[code.offset as usize..][..parts.code.len()].copy_from_slice(parts.code);
    out[data.offset as usize..][..parts.data.len()].copy_from_slice(parts.data);
    let mut head = Header {
        format_version: header::FORMAT_VERSION,
        kiln_version: header::KILN_VERSION.to_owned(),
        compat: parts.compat.clone(),
        metadata,
        code,
        data,
        checksum: 0,
        seal: [0; header::SEAL_LEN],
    };
    out[..HEADER_SIZE].copy_from_slice(&head.encode()?);
    head.checksum = header::checksum(&out);
    out[..HEADER_SIZE].copy_from_slice(&head.encode()?);
    Ok(out)
}

/// Verifies the checksum over the whole file (header included).
pub fn verify_checksum(file: &[u8], header: &Header) -> Result<(), ArtifactError> {
    if file.len() < HEADER_SIZE {
        return Err(ArtifactError::Truncated {
            needed: HEADER_SIZE as u64,
            found: file.len() as u64,
        });
    }
    let found = header::checksum(file);
    if found != header.checksum {
        return Err(ArtifactError::Checksum {
            expected: header.checksum,
            found,
        });
    }
    Ok(())
}

/// Validates the archive bytes with bytecheck, then checks every index and range the
/// runtime follows against the code and data section lengths. Never undefined behaviour and
/// never a panic, whatever `metadata` holds.
pub fn access_checked(
    metadata: &[u8],
    code_len: u64,
    data_len: u64,
) -> Result<&ArchivedModuleInfo, ArtifactError> {
    let info = rkyv::access::<ArchivedModuleInfo, rkyv::rancor::Error>(metadata)
        .map_err(|e| ArtifactError::InvalidArchive(e.to_string()))?;
    crate::validate::validate_metadata(info, code_len, data_len)?;
    Ok(info)
}

/// Reads the archive in place without any check: O(1).
///
/// # Safety
/// `metadata` must be the metadata section of an artifact written by [`build_artifact`] of
/// this Kiln version (or one that passed [`access_checked`] before), aligned to 16 bytes.
pub unsafe fn access_unchecked(metadata: &[u8]) -> &ArchivedModuleInfo {
    // SAFETY: the caller guarantees these are the bytes of a valid archive of `ModuleInfo`.
    unsafe { rkyv::access_unchecked::<ArchivedModuleInfo>(metadata) }
}

/// Parses everything in a full checked pass: header, compatibility, checksum and metadata.
/// Returns the header and the validated metadata.
pub fn open_checked<'a>(
    file: &'a [u8],
    expected: &CompatInfo,
) -> Result<(Header, &'a ArchivedModuleInfo), ArtifactError> {
    let header = Header::parse(file)?;
    header.check_compat(expected)?;
    verify_checksum(file, &header)?;
    let range = header
        .metadata
        .bounds(file.len())
        .ok_or(ArtifactError::BadMagic)?;
    let info = access_checked(&file[range], header.code.len, header.data.len)?;
    Ok((header, info))
}

/// Reads the metadata of an artifact into native form, whatever its alignment in memory,
/// after checking its header, checksum and metadata (but not its compatibility with any
/// engine). A copy: for tools and tests that look inside artifacts, never the load path.
pub fn read_metadata(file: &[u8]) -> Result<ModuleInfo, ArtifactError> {
    let header = Header::parse(file)?;
    verify_checksum(file, &header)?;
    let range = header
        .metadata
        .bounds(file.len())
        .ok_or(ArtifactError::BadMagic)?;
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(range.len());
    aligned.extend_from_slice(&file[range]);
    let info = access_checked(&aligned, header.code.len, header.data.len)?;
    rkyv::deserialize::<ModuleInfo, rkyv::rancor::Error>(info)
        .map_err(|e| ArtifactError::InvalidArchive(e.to_string()))
}
