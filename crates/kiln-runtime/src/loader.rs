//! Loading an artifact: map it (or read it, when it is small), check its header, read its
//! metadata in place and map its text section executable straight from the file.
//!
//! A start of a small module is mostly system calls, so a file load makes as few as it
//! can: `open`, `statx`, one `pread` (or `mmap` for an artifact over 128 KiB), one `mmap`
//! of the code, and at drop `munmap` and `close`. The memory image is named by the file
//! ([`crate::memory::ImageOrigin::File`]), so a load of a file whose image a pooled memory
//! still holds maps nothing at instantiation.

use std::path::Path;
use std::sync::Arc;

use kiln_artifact::{ArchivedModuleInfo, ArtifactError, ArtifactKey, CompatInfo, FuncType, Header};

use crate::code_mappings::CodeKey;

/// Why an artifact could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid or compatible artifact.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The file could not be read or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

static FORCE_CODE_COPY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later file load take the copy fallback (as on a `noexec` filesystem), so
/// tests can check that both paths behave the same.
#[doc(hidden)]
pub fn force_code_copy(on: bool) {
    FORCE_CODE_COPY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// How much to check while loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Header, compatibility, checksum, bytecheck and semantic validation of the metadata.
    Checked,
    /// Header and compatibility only; the metadata is trusted. O(1) in the module's size.
    Unchecked,
}

/// Artifacts up to this size are read from their file rather than mapped (their code is
/// mapped either way): reading a few pages costs less than mapping them, faulting them in
/// and unmapping them, and a read copy cannot change if the file does.
const READ_AT_MOST: usize = 128 * 1024;

/// What an unchecked load of a small file reads first, to learn from the header where the
/// text section lies: files up to this size are read whole.
const FIRST_READ: usize = 32 * 1024;

/// The bytes of an artifact: mapped from a file, read from a small one, or copied into an
/// anonymous mapping. At least 16-aligned, so the metadata archive (at offset 512) is too.
#[derive(Debug)]
enum Storage {
    /// A mapping of the file, which stays open to map the memory image from.
    Mapped(memmap2::Mmap, ArtifactFile),
    /// The bytes of a small file, which stays open to map the memory image from.
    Read(rkyv::util::AlignedVec<16>, ArtifactFile),
    /// The header and metadata of a small file, then its data section (at the next multiple
    /// of 16), but not its text section, which is mapped from the file: an unchecked load
    /// has no use for the code's bytes, and copying them out of the page cache was most of
    /// the time of a first load (`read_without_code`).
    ReadWithoutCode(rkyv::util::AlignedVec<16>, ArtifactFile),
    /// A page-aligned copy of bytes from memory, or of a sealed file.
    Anon(memmap2::Mmap),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m, _) | Storage::Anon(m) => m,
            Storage::Read(bytes, _) | Storage::ReadWithoutCode(bytes, _) => bytes,
        }
    }

    fn file(&self) -> Option<&ArtifactFile> {
        match self {
            Storage::Mapped(_, file)
            | Storage::Read(_, file)
            | Storage::ReadWithoutCode(_, file) => Some(file),
            Storage::Anon(_) => None,
        }
    }
}

/// The artifact file a module was loaded from and what names it.
#[derive(Debug)]
struct ArtifactFile {
    file: std::fs::File,
    identity: crate::memory::FileIdentity,
}

static FORCE_IMAGE_COPY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later instantiation copy memory images instead of mapping them, so tests can
/// check that both paths behave the same.
#[doc(hidden)]
pub fn force_memory_image_copy(on: bool) {
    FORCE_IMAGE_COPY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A module's memory image, ready to be written into a new memory.
pub struct MemoryImageSource<'a> {
    /// Which image it is and where it goes in the memory.
    pub id: crate::memory::ImageId,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// A file holding the same bytes at an offset, to map them from; `None` to copy them.
    pub file: Option<(&'a std::fs::File, u64)>,
}

/// A loaded artifact: its bytes, its header and its executable code. Shared by every module
/// handle and instance that uses it.
#[derive(Debug)]
pub struct LoadedModule {
    /// Unique in the process, never reused: names this module's memory image in reused
    /// memories.
    id: u64,
    storage: Storage,
    header: Header,
    metadata: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
    /// Length of the artifact (the anonymous copy may be longer by rounding).
    len: usize,
    /// The executable text section.
    code: Code,
    /// The function types in native form, made on first use and shared by every instance of
    /// the module in every store, so instantiating converts no signature.
    func_types: std::sync::OnceLock<Vec<Arc<FuncType>>>,
    /// For a module whose bytes are not mapped from a file: an in-memory file holding its
    /// memory image, made on first instantiation (`None` where one cannot be made).
    image_file: std::sync::OnceLock<Option<std::fs::File>>,
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        if let Code::FileMapped(map, key) = std::mem::replace(&mut self.code, Code::Empty) {
            crate::code_mappings::give_back(key, map);
        }
    }
}

/// Where a loaded module's executable code lives.
#[derive(Debug)]
enum Code {
    /// The text section is empty.
    Empty,
    /// A mapping of its own: the file's pages mapped executable, or a copy.
    Mapped(memmap2::Mmap),
    /// The file's pages mapped executable, returned to [`crate::code_mappings`] when the
    /// module is dropped, for the next load of the same file.
    FileMapped(memmap2::Mmap, CodeKey),
    /// Pages of the module's own copy of the artifact (`Storage::Anon`) or of the private
    /// mapping a checked load verified (`Storage::Mapped`), made executable in place: `len`
    /// bytes at `offset`.
    InStorage { offset: usize, len: usize },
}

fn next_module_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Checks the artifact of `file_len` bytes whose first bytes are `file` (all of them, unless
/// `verification` is `Unchecked`, which needs the header only) against `expected` and the
/// host CPU, to the depth `verification` asks for. Returns the header and the metadata and
/// data sections' ranges in the file.
fn check(
    file: &[u8],
    file_len: usize,
    expected: &CompatInfo,
    verification: Verification,
) -> Result<(Header, std::ops::Range<usize>, std::ops::Range<usize>), ArtifactError> {
    let header = Header::parse_start(file, file_len as u64)?;
    header.check_compat(expected)?;
    check_host_cpu(&header)?;
    check_code_placement(&header)?;
    let metadata = header
        .metadata
        .bounds(file_len)
        .ok_or(ArtifactError::BadMagic)?;
    let data = header
        .data
        .bounds(file_len)
        .ok_or(ArtifactError::BadMagic)?;
    if verification != Verification::Unchecked {
        kiln_artifact::verify_checksum(file, &header)?;
        kiln_artifact::access_checked(&file[metadata.clone()], header.code.len, header.data.len)?;
    }
    if metadata.start % 16 != 0 || metadata.is_empty() {
        return Err(ArtifactError::MalformedHeader(
            "metadata section is empty or not 16-aligned".into(),
        ));
    }
    Ok((header, metadata, data))
}

/// For an unchecked load of a small file: reads the header and the metadata, then the data
/// section onto the next multiple of 16 after them, and not the text section, which is
/// mapped from the file. One `pread` of the first [`FIRST_READ`] bytes, another for the
/// rest of the metadata if it is longer, one for the data section. The header is only
/// parsed here; `check` checks it.
fn read_without_code(
    path: &Path,
    file: &std::fs::File,
    len: usize,
) -> Result<rkyv::util::AlignedVec<16>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    // Room for all it may read, so that no read moves what came before.
    let mut bytes = rkyv::util::AlignedVec::<16>::with_capacity(len);
    crate::sys::read_file_into(file, 0, FIRST_READ.min(len), &mut bytes).map_err(io)?;
    let header = Header::parse_start(&bytes, len as u64)?;
    let metadata = header.metadata.bounds(len).ok_or(ArtifactError::BadMagic)?;
    let data = header.data.bounds(len).ok_or(ArtifactError::BadMagic)?;
    if metadata.end > bytes.len() {
        let rest = metadata.end - bytes.len();
        crate::sys::read_file_into(file, bytes.len() as u64, rest, &mut bytes).map_err(io)?;
    }
    // Drops what was read past the metadata (padding, code), or pads to 16.
    bytes.resize(metadata.end.next_multiple_of(16), 0);
    crate::sys::read_file_into(file, data.start as u64, data.len(), &mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Copies `bytes` into a fresh page-aligned read-only mapping (at least one byte long), so the
/// metadata archive after the 512-byte header is 16-aligned.
fn copy_to_anonymous(bytes: &[u8]) -> Result<memmap2::Mmap, LoadError> {
    let io = |source| LoadError::Io {
        path: "<memory>".into(),
        source,
    };
    let mut copy = memmap2::MmapOptions::new()
        .len(bytes.len().max(1))
        .populate()
        .map_anon()
        .map_err(io)?;
    copy[..bytes.len()].copy_from_slice(bytes);
    copy.make_read_only().map_err(io)
}

/// The architecture part of a target triple.
fn triple_arch(triple: &str) -> &str {
    triple.split('-').next().unwrap_or("")
}

/// Refuses a text section that is not where a Kiln compiler puts it for the artifact's
/// target: at the first multiple of [`kiln_artifact::header::code_alignment`] after the
/// metadata. The header alone accepts any power-of-two alignment, so an edited code offset
/// could otherwise make metadata bytes the code, copied into an executable mapping because
/// they cannot be mapped from the file.
fn check_code_placement(header: &Header) -> Result<(), ArtifactError> {
    let Some(alignment) = kiln_artifact::header::code_alignment(&header.compat.target) else {
        return Ok(()); // not a target Kiln compiles for: refused by the engine
    };
    let expected = (header.metadata.offset + header.metadata.len).next_multiple_of(alignment);
    if header.code.offset != expected {
        return Err(ArtifactError::MalformedHeader(format!(
            "code section at {}, not at {expected} where the {} text section goes",
            header.code.offset, header.compat.target
        )));
    }
    Ok(())
}

/// Refuses an artifact whose code needs CPU features the host lacks.
fn check_host_cpu(header: &Header) -> Result<(), ArtifactError> {
    if triple_arch(&header.compat.target) != std::env::consts::ARCH {
        // Not runnable here at all; the engine refuses it separately.
        return Ok(());
    }
    // The CPU does not change while the process runs: a list found present once is
    // present for every later load of artifacts built for it (most loads of a process).
    static PRESENT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let features = &header.compat.cpu_features;
    if PRESENT.lock().is_ok_and(|present| *present == *features) {
        return Ok(());
    }
    let mut missing = Vec::new();
    for feature in header
        .compat
        .cpu_features
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        match kiln_artifact::cpu::host_has(feature) {
            Some(true) => {}
            Some(false) => missing.push(feature.to_owned()),
            None => missing.push(format!("{feature} (unknown to this runtime)")),
        }
    }
    if missing.is_empty() {
        if let Ok(mut present) = PRESENT.lock() {
            present.clone_from(features);
        }
        Ok(())
    } else {
        Err(ArtifactError::CpuFeatures {
            missing: missing.join(", "),
            found: header.compat.cpu_features.clone(),
        })
    }
}

impl LoadedModule {
    /// Loads a sealed artifact file: the file is read into memory that this module owns, its
    /// seal verified under `key` before any other byte is used, then its header and
    /// compatibility are checked. Safe: only an artifact that a Kiln compiler holding `key`
    /// wrote loads, and what another process later does to the file changes nothing.
    pub fn from_file_sealed(
        path: &Path,
        expected: &CompatInfo,
        key: &ArtifactKey,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_open_file_sealed(&file, path, expected, key)
    }

    /// [`LoadedModule::from_file_sealed`] of a file the caller opened (`path` names it in
    /// errors). Reads the header first: a file whose length is not the one its header
    /// declares (a sparse giant behind a valid-looking header, or anything without the magic
    /// bytes) is refused before the rest of it is read.
    pub fn from_open_file_sealed(
        file: &std::fs::File,
        path: &Path,
        expected: &CompatInfo,
        key: &ArtifactKey,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        let head =
            crate::sys::read_file_start(file, kiln_artifact::header::HEADER_SIZE.min(len as usize))
                .map_err(io)?;
        let declared = Header::declared_len(&head)?;
        if declared != len {
            return Err(ArtifactError::MalformedHeader(format!(
                "the header declares {declared} bytes, the file has {len}"
            ))
            .into());
        }
        let len = usize::try_from(len).map_err(|_| ArtifactError::BadMagic)?;
        let map = crate::sys::read_file_to_anonymous(file, len).map_err(io)?;
        kiln_artifact::seal::verify_seal(&map[..len], key)?;
        // SAFETY: the seal verified: a Kiln compiler holding the key wrote exactly these
        // bytes, which this module owns and nothing can change.
        unsafe { Self::from_owned(map, len, expected, Verification::Unchecked) }
    }

    /// Loads sealed artifact bytes: copies them, verifies the seal of the copy under `key`
    /// before any other byte is used, then checks header and compatibility. Safe, as
    /// [`LoadedModule::from_file_sealed`].
    pub fn from_bytes_sealed(
        bytes: &[u8],
        expected: &CompatInfo,
        key: &ArtifactKey,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let map = copy_to_anonymous(bytes)?;
        kiln_artifact::seal::verify_seal(&map[..bytes.len()], key)?;
        // SAFETY: the seal of the copy verified, as in `from_file_sealed`.
        unsafe { Self::from_owned(map, bytes.len(), expected, Verification::Unchecked) }
    }

    /// Loads an artifact from a file: reads it when it is small (`READ_AT_MOST`), maps it
    /// read-only and private (copy-on-write) otherwise, and maps its code executable.
    ///
    /// # Safety
    /// Instantiating the module runs its machine code, which no check can tell from code
    /// that Kiln did not write: the file must be an artifact written by a Kiln compiler.
    /// [`Verification::Checked`] turns any corruption or mismatch of the file (of its
    /// header, metadata or layout, or of its version, target and settings) into an error;
    /// with [`Verification::Unchecked`] the file must also be exactly what this Kiln
    /// version's compiler wrote. The file must not be modified or truncated while the module
    /// is alive: a mapping shows later writes, and a truncated mapping faults.
    pub unsafe fn from_file(
        path: &Path,
        expected: &CompatInfo,
        verification: Verification,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::from_open_file(file, path, expected, verification) }
    }

    /// [`LoadedModule::from_file`] of a file the caller opened (`path` names it in errors),
    /// so that the file loaded is the one the caller checked (the module cache opens entries
    /// through a directory descriptor, never following links).
    ///
    /// A checked load runs the bytes it checked: the code is made executable in the checked
    /// private mapping, or copied from the checked read, never mapped from the file a second
    /// time. An unchecked load maps the code from the file (or takes a pooled mapping of it).
    ///
    /// # Safety
    /// As for [`LoadedModule::from_file`].
    pub unsafe fn from_open_file(
        file: std::fs::File,
        path: &Path,
        expected: &CompatInfo,
        verification: Verification,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let stat = file.metadata().map_err(io)?;
        let identity = crate::memory::FileIdentity::of(&stat);
        let len = usize::try_from(stat.len()).map_err(|_| ArtifactError::BadMagic)?;
        let storage = if len <= READ_AT_MOST {
            let file = ArtifactFile { file, identity };
            match verification {
                Verification::Unchecked if len > FIRST_READ => {
                    Storage::ReadWithoutCode(read_without_code(path, &file.file, len)?, file)
                }
                _ => Storage::Read(
                    crate::sys::read_file_start(&file.file, len).map_err(io)?,
                    file,
                ),
            }
        } else {
            // A checked load reads every byte: populating the mapping in one call beats a
            // page fault per page.
            let populate = verification != Verification::Unchecked;
            // SAFETY: the caller promises the file is not modified or truncated while mapped.
            let map = unsafe { crate::sys::map_file_private(&file, len, populate) }.map_err(io)?;
            Storage::Mapped(map, ArtifactFile { file, identity })
        };
        let bytes = storage.bytes();
        let file = &storage.file().expect("a file was just opened").file;
        let (header, metadata, mut data) = check(bytes, len, expected, verification)?;
        if let Storage::ReadWithoutCode(..) = storage {
            // `read_without_code` put the data section after the metadata.
            let start = metadata.end.next_multiple_of(16);
            data = start..start + data.len();
        }
        let code_range = header.code.bounds(len).ok_or(ArtifactError::BadMagic)?;
        let code = if code_range.is_empty() {
            Code::Empty
        } else if verification == Verification::Checked {
            Self::checked_code(&storage, code_range).map_err(io)?
        } else {
            let key = CodeKey {
                file: identity,
                checksum: header.checksum,
                offset: header.code.offset,
                len: code_range.len(),
            };
            let mapped = if FORCE_CODE_COPY.load(std::sync::atomic::Ordering::Relaxed) {
                Err(std::io::Error::other("file mapping disabled for testing"))
            } else if let Some(pooled) = crate::code_mappings::take(&key) {
                Ok(pooled)
            } else {
                crate::sys::map_file_executable(file, header.code.offset, code_range.len())
            };
            match mapped {
                Ok(m) => Code::FileMapped(m, key),
                Err(e) => {
                    tracing::debug!(
                        "cannot map the code of {} executable ({e}); copying it instead",
                        path.display()
                    );
                    let copy = match &storage {
                        Storage::ReadWithoutCode(..) => {
                            let mut code = rkyv::util::AlignedVec::<16>::new();
                            let offset = header.code.offset;
                            crate::sys::read_file_into(file, offset, code_range.len(), &mut code)
                                .map_err(io)?;
                            crate::sys::copy_to_executable(&code)
                        }
                        _ => crate::sys::copy_to_executable(&bytes[code_range]),
                    };
                    Code::Mapped(copy.map_err(io)?)
                }
            }
        };
        Ok(Arc::new(LoadedModule {
            id: next_module_id(),
            storage,
            header,
            metadata,
            data,
            len,
            code,
            func_types: std::sync::OnceLock::new(),
            image_file: std::sync::OnceLock::new(),
        }))
    }

    /// The code of a checked load of a file: the checked bytes themselves. In the private
    /// mapping of a large file the code pages become executable where they are; the code of
    /// a small file read into memory is copied from what was read, as is the code of a file
    /// whose mapping cannot be made executable (on a `noexec` file system).
    fn checked_code(
        storage: &Storage,
        code_range: std::ops::Range<usize>,
    ) -> std::io::Result<Code> {
        let copy = |range: std::ops::Range<usize>| {
            crate::sys::copy_to_executable(&storage.bytes()[range]).map(Code::Mapped)
        };
        match storage {
            Storage::Mapped(map, _)
                if code_range.start.is_multiple_of(crate::sys::page_size())
                    && !FORCE_CODE_COPY.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                // SAFETY: the range lies inside `map` (`bounds` checked it against the file's
                // length, which is the mapping's), a read-only private mapping that the
                // module owns and keeps until it is dropped, with the code; nothing writes to
                // it.
                let made_executable = unsafe {
                    crate::sys::protect_executable(
                        map.as_ptr().add(code_range.start),
                        code_range.len(),
                    )
                };
                match made_executable {
                    Ok(()) => Ok(Code::InStorage {
                        offset: code_range.start,
                        len: code_range.len(),
                    }),
                    Err(e) => {
                        tracing::debug!(
                            "cannot make the checked mapping executable ({e}); copying the code"
                        );
                        copy(code_range)
                    }
                }
            }
            _ => copy(code_range),
        }
    }

    /// Loads an artifact from bytes in memory, copying them into an aligned mapping.
    ///
    /// # Safety
    /// As for [`LoadedModule::from_file`], except that the bytes are copied, so nothing can
    /// change them afterwards.
    pub unsafe fn from_bytes(
        bytes: &[u8],
        expected: &CompatInfo,
        verification: Verification,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let map = copy_to_anonymous(bytes)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::from_owned(map, bytes.len(), expected, verification) }
    }

    /// Loads the artifact in the first `len` bytes of `map`, which this module takes over.
    ///
    /// # Safety
    /// As for [`LoadedModule::from_bytes`].
    unsafe fn from_owned(
        map: memmap2::Mmap,
        len: usize,
        expected: &CompatInfo,
        verification: Verification,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let io = |source| LoadError::Io {
            path: "<memory>".into(),
            source,
        };
        let file = &map[..len];
        let (header, metadata, data) = check(file, len, expected, verification)?;
        let code_range = header
            .code
            .bounds(file.len())
            .ok_or(ArtifactError::BadMagic)?;
        let code = if code_range.is_empty() {
            Code::Empty
        } else if code_range.start.is_multiple_of(crate::sys::page_size()) {
            // The copy is page-aligned and owned by this module: its code pages become
            // executable where they are, with no second copy.
            // SAFETY: the range lies inside `map`, which this module owns and keeps mapped
            // until it is dropped; nothing writes to the pages (the mapping is read-only).
            unsafe {
                crate::sys::protect_executable(map.as_ptr().add(code_range.start), code_range.len())
            }
            .map_err(io)?;
            Code::InStorage {
                offset: code_range.start,
                len: code_range.len(),
            }
        } else {
            Code::Mapped(crate::sys::copy_to_executable(&file[code_range]).map_err(io)?)
        };
        Ok(Arc::new(LoadedModule {
            id: next_module_id(),
            storage: Storage::Anon(map),
            header,
            metadata,
            data,
            len,
            code,
            func_types: std::sync::OnceLock::new(),
            image_file: std::sync::OnceLock::new(),
        }))
    }

    /// The module's id, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The artifact's bytes: read from its file again if the load did not read them all.
    pub fn artifact_bytes(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match &self.storage {
            Storage::ReadWithoutCode(_, file) => {
                let mut bytes = vec![0; self.len];
                std::os::unix::fs::FileExt::read_exact_at(&file.file, &mut bytes, 0)?;
                Ok(bytes.into())
            }
            storage => Ok(storage.bytes()[..self.len].into()),
        }
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The module's metadata, read in place.
    pub fn info(&self) -> &ArchivedModuleInfo {
        // SAFETY: `check` validated these bytes at load time (checked mode), or the caller
        // of the unsafe unchecked constructor vouched for them; they are 16-aligned (checked
        // in `check`) and immutable for the lifetime of `self`.
        unsafe { kiln_artifact::access_unchecked(&self.storage.bytes()[self.metadata.clone()]) }
    }

    /// The module's function types (by type index), converted once.
    pub fn func_types(&self) -> &[Arc<FuncType>] {
        self.func_types.get_or_init(|| {
            self.info()
                .types
                .iter()
                .map(|(_, ty)| Arc::new(ty.to_native()))
                .collect()
        })
    }

    /// The data section (the bytes of data segments).
    pub fn data(&self) -> &[u8] {
        &self.storage.bytes()[self.data.clone()]
    }

    /// The memory image, if the module has one, with the file to map it from: the artifact
    /// file itself, or an in-memory copy made once per module.
    pub fn memory_image(&self) -> Option<MemoryImageSource<'_>> {
        let image = self.info().memory_image.as_ref()?;
        let bytes = self.image_bytes()?;
        let memory_offset = image.offset.to_native();
        let len = bytes.len() as u64;
        let module_id = crate::memory::ImageId {
            origin: crate::memory::ImageOrigin::Module(self.id),
            memory_offset,
            len,
        };
        if FORCE_IMAGE_COPY.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(MemoryImageSource {
                id: module_id,
                bytes,
                file: None,
            });
        }
        Some(match self.storage.file() {
            Some(ArtifactFile { file, identity }) => {
                let offset = self.header.data.offset + u64::from(image.bytes.start.to_native());
                let origin = crate::memory::ImageOrigin::File {
                    file: *identity,
                    checksum: self.header.checksum,
                    offset,
                };
                MemoryImageSource {
                    id: crate::memory::ImageId {
                        origin,
                        ..module_id
                    },
                    bytes,
                    file: Some((file, offset)),
                }
            }
            None => MemoryImageSource {
                id: module_id,
                bytes,
                file: self.image_file().map(|file| (file, 0)),
            },
        })
    }

    fn image_bytes(&self) -> Option<&[u8]> {
        let range = self.info().memory_image.as_ref()?.bytes.native();
        self.data()
            .get(range.start as usize..)?
            .get(..range.len as usize)
    }

    #[cfg(target_os = "linux")]
    fn image_file(&self) -> Option<&std::fs::File> {
        self.image_file
            .get_or_init(|| {
                crate::sys::sealed_memory_file(c"kiln-memory-image", self.image_bytes()?)
                    .inspect_err(|e| {
                        tracing::debug!("cannot make a file of the memory image ({e}); copying it")
                    })
                    .ok()
            })
            .as_ref()
    }

    #[cfg(not(target_os = "linux"))]
    fn image_file(&self) -> Option<&std::fs::File> {
        None
    }

    /// Address of the first byte of executable code.
    pub fn code_base(&self) -> *const u8 {
        match &self.code {
            Code::Mapped(m) | Code::FileMapped(m, _) => m.as_ptr(),
            Code::InStorage { offset, .. } => self.storage.bytes()[*offset..].as_ptr(),
            Code::Empty => std::ptr::NonNull::<u8>::dangling().as_ptr(),
        }
    }

    /// Length of the text section in bytes.
    pub fn code_len(&self) -> usize {
        match &self.code {
            Code::Mapped(_) | Code::FileMapped(..) => self.header.code.len as usize,
            Code::InStorage { len, .. } => *len,
            Code::Empty => 0,
        }
    }

    /// The executable address range `[start, end)` of this module's code.
    pub fn code_range(&self) -> (usize, usize) {
        let start = self.code_base() as usize;
        (start, start + self.code_len())
    }
}
