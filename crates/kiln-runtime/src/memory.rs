//! Linear memories: a reservation of address space whose accessible prefix grows in place.
//!
//! Guard-page reservations are all the same size, so a dropped memory's reservation is reset
//! (one `mmap` that discards its pages) and kept in a small process-wide pool for the next
//! memory: creating and dropping an instance then costs two system calls fewer than mapping
//! and unmapping 8 GiB of address space each time.

use kiln_artifact::types::WASM_PAGE_SIZE;
use kiln_artifact::{GUARD_RESERVATION, MemoryType};

use crate::sys::Reservation;
use crate::vmcontext::VMMemoryDefinition;

/// The largest 32-bit memory: 65536 pages, 4 GiB.
pub const MAX_PAGES: u64 = 1 << 16;

/// How memories keep accesses in bounds; must match the code's `BoundsChecks` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryStrategy {
    /// Reserve `GUARD_RESERVATION` bytes so every 32-bit access lands inside the reservation.
    GuardPages,
    /// Reserve only the maximum size; generated code checks each access.
    Explicit,
}

/// How many reset guard-page reservations the process keeps for new memories: enough for
/// a burst of short-lived instances, 8 GiB of address space (and no memory) each.
const POOLED_RESERVATIONS: usize = 16;

/// Where a memory image's bytes come from. Two loads of one artifact file name the same
/// origin, so a memory left warm with the image by one module's instance serves the next
/// load of that file too (a serverless host reloading a module for each request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageOrigin {
    /// Bytes private to one loaded module (an in-memory copy); module ids are never reused.
    Module(u64),
    /// A page-aligned range of an artifact file. A warm memory keeps its mapping of the
    /// file, so the file's inode stays alive and no other file on the device can have its
    /// number while the memory is pooled; its modification time and the artifact's
    /// checksum must match as well. Discarding a warm memory's written pages shows the
    /// file's current bytes, as a new mapping of the same range would.
    File {
        /// Which file.
        file: FileIdentity,
        /// The checksum in the artifact's header.
        checksum: u128,
        /// Where the image starts in the file.
        offset: u64,
    },
}

/// What names a file across opens of it: device, inode and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
    /// Modification time: seconds and nanoseconds.
    pub modified: (i64, i64),
}

impl FileIdentity {
    /// The identity of the file `metadata` describes.
    pub fn of(metadata: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        }
    }
}

/// A memory image: where its bytes come from, where they go in the memory, how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageId {
    /// Where its bytes come from.
    pub origin: ImageOrigin,
    /// Where it starts in the memory.
    pub memory_offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// What the accessible start of a memory holds, as far as reuse is concerned: `[0,
/// accessible)` readable and writable, anonymous (zero once written pages are discarded)
/// but for the memory image mapped copy-on-write, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ImageKey {
    image: Option<ImageId>,
    accessible: usize,
}

impl ImageKey {
    /// Whether a memory laid out as `old` becomes one laid out as `self` by mapping
    /// `self`'s image over `old`'s: both have images, at the same offset and of the same
    /// length, in memories of the same accessible size.
    fn replaces(&self, old: ImageKey) -> bool {
        match (self.image, old.image) {
            (Some(new), Some(old_image)) => {
                self.accessible == old.accessible
                    && new.memory_offset == old_image.memory_offset
                    && new.len == old_image.len
            }
            _ => false,
        }
    }
}

/// A reservation in the pool: zero and inaccessible, or (`warm`) left exactly as a new
/// memory with that key would start, every written page discarded back to the image or to
/// zero. A memory without an image is warm too, so instantiating a module without data
/// segments again makes no system call for its memory either.
#[derive(Debug)]
struct Pooled {
    reservation: Reservation,
    warm: Option<ImageKey>,
}

static RESERVATION_POOL: std::sync::Mutex<Vec<Pooled>> = std::sync::Mutex::new(Vec::new());

/// A guard-page reservation of at least `len` bytes: preferably a pooled one already warm
/// with `want`, else a pooled one reset to zero, else a new one.
fn guard_reservation(len: usize, want: ImageKey) -> std::io::Result<Pooled> {
    let pooled = RESERVATION_POOL.lock().ok().and_then(|mut pool| {
        let found = pool.iter().rposition(|p| p.warm == Some(want)).or_else(|| {
            pool.iter()
                .rposition(|p| p.warm.is_some_and(|w| want.replaces(w)))
        });
        match found {
            Some(i) => Some(pool.swap_remove(i)),
            None => pool.pop(),
        }
    });
    match pooled {
        Some(p) if p.reservation.len() >= len && p.warm == Some(want) => Ok(p),
        // Warm with another image of the same place and size: the new one is mapped over
        // it (`Memory::write_image`), so nothing needs resetting first. The memory starts
        // out naming the old image, which a failed instantiation clears.
        Some(p) if p.reservation.len() >= len && p.warm.is_some_and(|w| want.replaces(w)) => Ok(p),
        Some(p) if p.reservation.len() >= len => {
            if let Some(old) = p.warm {
                p.reservation.reset(old.accessible)?;
            }
            Ok(Pooled {
                reservation: p.reservation,
                warm: None,
            })
        }
        _ => Ok(Pooled {
            reservation: Reservation::new(len)?,
            warm: None,
        }),
    }
}

/// Pools `reservation` of a dropped memory whose first `used` bytes were ever made
/// accessible (or tried to be: a failed grow may have changed part of its range): kept
/// warm when they are still laid out as `image` says (written pages discarded), else reset.
/// Unmapped instead when the pool is full or a reset fails, so no reservation with old
/// contents is ever reused.
fn recycle(reservation: Reservation, used: usize, image: Option<ImageKey>) {
    let warm = image.filter(|key| key.accessible == used && reservation.discard(used).is_ok());
    if warm.is_none() && reservation.reset(used).is_err() {
        return;
    }
    if let Ok(mut pool) = RESERVATION_POOL.lock()
        && pool.len() < POOLED_RESERVATIONS
    {
        pool.push(Pooled { reservation, warm });
    }
}

/// A linear memory. Its base never moves, so raw pointers to its bytes stay valid for the
/// memory's lifetime (they may only cover less than the accessible length).
#[derive(Debug)]
pub struct Memory {
    /// Taken out only in `drop`.
    reservation: std::mem::ManuallyDrop<Reservation>,
    strategy: MemoryStrategy,
    /// What its start holds (the memory image mapped over it, or nothing), while the
    /// memory is as instantiation left it but for writes (it has not grown).
    image: Option<ImageKey>,
    /// How far the reservation was ever made accessible, including grows that failed
    /// part-way: what must be reset before the reservation is reused.
    touched: usize,
    ty: MemoryType,
    /// Largest size in pages this memory may reach.
    max_pages: u64,
    /// Set when growing failed only because of the store's limit.
    limit_reached: bool,
    /// Where the authoritative definition lives: inline in the defining instance's vmctx,
    /// or in `own_definition` for memories created by the host.
    definition: *mut VMMemoryDefinition,
    own_definition: Option<Box<VMMemoryDefinition>>,
}

impl Memory {
    /// Creates a memory of type `ty` with its definition stored in the memory itself, never
    /// larger than `limit_pages` (the store's limit).
    pub fn new(
        ty: MemoryType,
        strategy: MemoryStrategy,
        limit_pages: u64,
    ) -> Result<Box<Memory>, String> {
        Self::with_image(ty, strategy, limit_pages, None)
    }

    /// As [`Memory::new`], for a memory that will get memory image `image`: a reservation
    /// left warm with it is taken if the pool has one, and [`Memory::has_image`] then says
    /// the image is already in place.
    pub fn with_image(
        ty: MemoryType,
        strategy: MemoryStrategy,
        limit_pages: u64,
        image: Option<ImageId>,
    ) -> Result<Box<Memory>, String> {
        if ty.memory64 || ty.shared {
            return Err("64-bit and shared memories are not supported".into());
        }
        let max_pages = ty.max.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if ty.min > max_pages {
            return Err(format!(
                "memory minimum of {} pages exceeds the limit of {max_pages} pages",
                ty.min
            ));
        }
        if ty.min > limit_pages {
            return Err(format!(
                "memory minimum of {} pages exceeds the store's limit of {limit_pages} pages",
                ty.min
            ));
        }
        let max_pages = max_pages.min(limit_pages);
        let reserve = match strategy {
            MemoryStrategy::GuardPages => GUARD_RESERVATION,
            MemoryStrategy::Explicit => max_pages * WASM_PAGE_SIZE,
        };
        let reserve = usize::try_from(reserve).map_err(|_| "memory reservation too large")?;
        let initial = (ty.min * WASM_PAGE_SIZE) as usize;
        let want = ImageKey {
            image,
            accessible: initial,
        };
        let Pooled { reservation, warm } = match strategy {
            MemoryStrategy::GuardPages => guard_reservation(reserve, want),
            MemoryStrategy::Explicit => Reservation::new(reserve).map(|reservation| Pooled {
                reservation,
                warm: None,
            }),
        }
        .map_err(|e| format!("cannot reserve memory: {e}"))?;
        let image = match warm {
            Some(key) => key,
            None => {
                reservation
                    .make_accessible(0, initial)
                    .map_err(|e| format!("cannot commit memory: {e}"))?;
                ImageKey {
                    image: None,
                    accessible: initial,
                }
            }
        };
        let mut own = Box::new(VMMemoryDefinition {
            base: reservation.as_ptr(),
            current_length: initial,
        });
        let definition: *mut VMMemoryDefinition = &mut *own;
        Ok(Box::new(Memory {
            reservation: std::mem::ManuallyDrop::new(reservation),
            strategy,
            image: Some(image),
            touched: initial,
            ty,
            max_pages,
            limit_reached: false,
            definition,
            own_definition: Some(own),
        }))
    }

    /// Moves the definition to `slot` (inline in the defining instance's vmctx).
    ///
    /// # Safety
    /// `slot` must be valid for writes of a `VMMemoryDefinition` for as long as this memory
    /// lives, and not be written by anyone else but generated code reading it.
    pub unsafe fn relocate_definition(&mut self, slot: *mut VMMemoryDefinition) {
        // SAFETY: the caller guarantees `slot` is valid for writes; `self.definition` is.
        unsafe {
            slot.write(VMMemoryDefinition {
                base: (*self.definition).base,
                current_length: (*self.definition).current_length,
            });
        }
        self.definition = slot;
        self.own_definition = None;
    }

    /// The authoritative definition, to point imports at.
    pub fn definition(&self) -> *mut VMMemoryDefinition {
        self.definition
    }

    /// The memory's type, with its current minimum.
    pub fn ty(&self) -> MemoryType {
        MemoryType {
            min: self.size_pages(),
            ..self.ty
        }
    }

    /// Whether a `grow` was refused because of the store's limit rather than the type's.
    pub fn limit_reached(&self) -> bool {
        self.limit_reached
    }

    /// The largest number of pages this memory may reach.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// Current length in bytes.
    pub fn byte_len(&self) -> usize {
        // SAFETY: `definition` is valid for the memory's lifetime (see `relocate_definition`).
        unsafe { (*self.definition).current_length }
    }

    /// Current size in pages.
    pub fn size_pages(&self) -> u64 {
        self.byte_len() as u64 / WASM_PAGE_SIZE
    }

    /// Base address of the memory.
    pub fn base(&self) -> *mut u8 {
        self.reservation.as_ptr()
    }

    /// Whether `addr` lies inside this memory's reservation.
    pub fn reservation_contains(&self, addr: usize) -> bool {
        let start = self.reservation.as_ptr() as usize;
        addr >= start && addr - start < self.reservation.len()
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `[base, base + byte_len)` is mapped read-write and owned by this memory;
        // the shared borrow of `self` keeps it from growing or being dropped meanwhile.
        unsafe { std::slice::from_raw_parts(self.base(), self.byte_len()) }
    }

    /// The accessible bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.base(), self.byte_len()) }
    }

    /// Writes memory image `image` (its `bytes`): maps the same bytes from `file` (at its
    /// offset) copy-on-write when that is given and everything is page-aligned, so that
    /// instantiating writes no page; copies them otherwise.
    ///
    /// # Safety
    /// When `file` is given, its bytes at the offset must be `bytes`, and not be modified
    /// or truncated while this memory lives; `image` must name exactly those bytes.
    pub unsafe fn write_image(
        &mut self,
        image: ImageId,
        bytes: &[u8],
        file: Option<(&std::fs::File, u64)>,
    ) -> Result<(), String> {
        let offset = image.memory_offset;
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&end| end <= self.byte_len() as u64)
            .ok_or("the memory image does not fit in the memory")?;
        let (start, end) = (offset as usize, end as usize);
        // Not reusable while the range is being replaced: a failed map or restore below
        // could leave it unmapped, and such a reservation must be reset before reuse.
        let before = self.image.take();
        if let Some((file, file_offset)) = file
            && !bytes.is_empty()
        {
            // SAFETY: the range lies inside the accessible part of this memory (checked
            // above), and the caller keeps the file's bytes equal to `bytes` and unchanged.
            match unsafe {
                self.reservation
                    .map_file_over(start, bytes.len(), file, file_offset)
            } {
                Ok(()) => {
                    self.image = Some(ImageKey {
                        image: Some(image),
                        accessible: self.byte_len(),
                    });
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!("cannot map the memory image ({e}); copying it");
                    // A MAP_FIXED that failed after its checks (not for alignment) may have
                    // unmapped the range already: map it anew before writing there.
                    if e.kind() != std::io::ErrorKind::InvalidInput {
                        self.reservation
                            .reset_range(start, bytes.len())
                            .and_then(|()| self.reservation.make_accessible(start, bytes.len()))
                            .map_err(|e| {
                                format!("cannot restore memory after a failed map: {e}")
                            })?;
                    }
                }
            }
        }
        self.data_mut()[start..end].copy_from_slice(bytes);
        // Copied into anonymous pages: a memory that held no image is reusable as before
        // (discarding its written pages gives zeros again); any other is reset.
        self.image = before.filter(|key| key.image.is_none());
        Ok(())
    }

    /// Whether memory image `image` is already in place (this memory reuses a reservation
    /// that held it, with every write discarded).
    pub fn has_image(&self, image: &ImageId) -> bool {
        self.image.is_some_and(|key| key.image == Some(*image))
    }

    /// Discards an image already in place, for an instantiation that failed before its data
    /// segments would have been written: the memory is all zero again.
    pub fn clear_image(&mut self) -> Result<(), String> {
        let Some(ImageKey {
            image: Some(_),
            accessible,
        }) = self.image
        else {
            return Ok(());
        };
        // Not reusable until the reset succeeded: the image may still be mapped.
        self.image = None;
        let len = self.byte_len();
        self.reservation
            .reset(len)
            .and_then(|()| self.reservation.make_accessible(0, len))
            .map_err(|e| format!("cannot clear memory: {e}"))?;
        // Anonymous (zero) again, and reusable as such.
        self.image = Some(ImageKey {
            image: None,
            accessible,
        });
        Ok(())
    }

    /// Grows by `delta` pages; returns the old size in pages, or `None` if the memory cannot
    /// grow that far.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.size_pages();
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            // Within the type's maximum, so only the store's limit stood in the way.
            if new <= self.ty.max.unwrap_or(MAX_PAGES).min(MAX_PAGES) {
                self.limit_reached = true;
            }
            return None;
        }
        if delta == 0 {
            return Some(old);
        }
        let old_bytes = self.byte_len();
        let new_bytes = usize::try_from(new * WASM_PAGE_SIZE).ok()?;
        if new_bytes > self.reservation.len() {
            return None;
        }
        self.touched = self.touched.max(new_bytes);
        self.image = None;
        self.reservation
            .make_accessible(old_bytes, new_bytes - old_bytes)
            .ok()?;
        // SAFETY: `definition` is valid for writes for the memory's lifetime.
        unsafe { (*self.definition).current_length = new_bytes };
        Some(old)
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let used = self.touched.max(self.byte_len());
        // SAFETY: the reservation is taken out once, here, and `self` is not used after.
        let reservation = unsafe { std::mem::ManuallyDrop::take(&mut self.reservation) };
        if self.strategy == MemoryStrategy::GuardPages {
            recycle(reservation, used, self.image);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType {
            min,
            max,
            memory64: false,
            shared: false,
        }
    }

    #[test]
    fn grow_in_place_up_to_max() {
        for strategy in [MemoryStrategy::GuardPages, MemoryStrategy::Explicit] {
            let mut m = Memory::new(ty(1, Some(3)), strategy, u64::MAX).unwrap();
            let base = m.base();
            m.data_mut()[65535] = 1;
            assert_eq!(m.grow(2), Some(1));
            assert_eq!(m.base(), base);
            assert_eq!(m.byte_len(), 3 * 65536);
            assert_eq!(m.data()[65535], 1);
            m.data_mut()[3 * 65536 - 1] = 2;
            assert_eq!(m.grow(1), None);
            assert_eq!(m.grow(0), Some(3));
        }
        assert!(Memory::new(ty(2, Some(1)), MemoryStrategy::GuardPages, u64::MAX).is_err());
        assert!(Memory::new(ty(65537, None), MemoryStrategy::Explicit, u64::MAX).is_err());
        let mut m = Memory::new(ty(0, None), MemoryStrategy::GuardPages, u64::MAX).unwrap();
        assert_eq!(m.grow(u64::MAX), None);
        assert_eq!(m.grow(65537), None);
    }

    #[test]
    fn store_limit_caps_growth_and_creation() {
        for strategy in [MemoryStrategy::GuardPages, MemoryStrategy::Explicit] {
            let mut m = Memory::new(ty(1, None), strategy, 4).unwrap();
            assert_eq!(m.max_pages(), 4);
            assert_eq!(m.grow(3), Some(1));
            assert_eq!(m.grow(1), None);
            assert_eq!(m.size_pages(), 4);
            assert!(Memory::new(ty(5, Some(10)), strategy, 4).is_err());
        }
    }
}
