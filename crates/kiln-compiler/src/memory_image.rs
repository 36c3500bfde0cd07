//! The memory image: what a module's defined memory holds after its active data segments,
//! planned at compile time and laid out in whole target pages at the start of the data
//! section, so that instantiation maps it copy-on-write from the artifact file instead of
//! writing segment after segment into fresh pages.
//!
//! Only modules whose segments can be placed ahead of time get one: every active segment
//! at a constant offset, into the same defined memory, inside its initial size. Anything
//! else (an offset read from an imported global, a segment of an imported memory, one out
//! of bounds that must trap at instantiation) keeps writing its segments in order.

use kiln_artifact::{
    ByteRange, ConstExpr, DataKind, MemoryImage, MemoryIndex, ModuleInfo, WASM_PAGE_SIZE,
};

/// Segments spread far apart would fill the artifact with zero pages: an image is made
/// only while it is at most this many times the bytes it holds, or at most `SMALL_IMAGE`.
const MAX_SPARSENESS: u64 = 2;
const SMALL_IMAGE: u64 = 1 << 20;

/// Where one active segment goes.
struct Placement {
    offset: u64,
    start: usize,
    len: usize,
}

/// The memory and placements of every active segment, if all can be placed ahead of time.
fn placements(info: &ModuleInfo) -> Option<(MemoryIndex, Vec<Placement>)> {
    let mut memory = None;
    let mut placed = Vec::new();
    for (_, segment) in info.data.iter() {
        let DataKind::Active { memory: m, offset } = &segment.kind else {
            continue;
        };
        let ConstExpr::I32(offset) = *offset else {
            return None;
        };
        if *memory.get_or_insert(*m) != *m {
            return None;
        }
        placed.push(Placement {
            offset: u64::from(offset as u32),
            start: segment.bytes.start as usize,
            len: segment.bytes.len as usize,
        });
    }
    let memory = memory?;
    info.defined_memory_index(memory)?;
    let ty = &info.memories[memory];
    if ty.memory64 || ty.shared {
        return None;
    }
    let initial = ty.min.checked_mul(WASM_PAGE_SIZE)?;
    placed
        .iter()
        .all(|p| p.offset + p.len as u64 <= initial)
        .then_some((memory, placed))
}

/// Replaces the active data segments of `info` by a memory image in pages of `page_size`
/// bytes when they allow one. Returns the new data section (the image, then the bytes of
/// the remaining, passive segments), or `None` to keep `data` and the segments as they are.
pub fn plan(info: &mut ModuleInfo, data: &[u8], page_size: u64) -> Option<Vec<u8>> {
    let (memory, mut placed) = placements(info)?;
    // Empty segments write nothing (they were checked in bounds above).
    placed.retain(|p| p.len > 0);
    let covered: u64 = placed.iter().map(|p| p.len as u64).sum();
    let lowest = placed.iter().map(|p| p.offset).min()?;
    let highest = placed.iter().map(|p| p.offset + p.len as u64).max()?;
    let first = lowest / page_size * page_size;
    let end = highest.div_ceil(page_size) * page_size;
    let limit = (MAX_SPARSENESS * covered).max(SMALL_IMAGE);
    // Checked before anything is allocated: far-apart segments could ask for 4 GiB.
    if end - first > limit + 2 * page_size {
        return None;
    }
    let mut image = vec![0u8; usize::try_from(end - first).ok()?];
    // In order: a later segment overwrites an earlier one where they overlap.
    for p in &placed {
        let at = (p.offset - first) as usize;
        image[at..][..p.len].copy_from_slice(&data[p.start..][..p.len]);
    }
    // Zero pages at either end need not be stored: fresh memory is zero.
    let pages = image.len() / page_size as usize;
    let is_zero = |page: usize| {
        image[page * page_size as usize..][..page_size as usize]
            .iter()
            .all(|&b| b == 0)
    };
    let leading = (0..pages).take_while(|&p| is_zero(p)).count();
    if leading == pages {
        return None;
    }
    let trailing = (leading..pages).rev().take_while(|&p| is_zero(p)).count();
    let kept = &image[leading * page_size as usize..(pages - trailing) * page_size as usize];
    if kept.len() as u64 > limit {
        return None;
    }
    let image_range = ByteRange {
        start: 0,
        len: u32::try_from(kept.len()).ok()?,
    };
    // Laid out in full before `info` changes, so that giving up leaves it untouched.
    let mut section = kept.to_vec();
    let mut ranges = Vec::with_capacity(info.data.len());
    for segment in info.data.values() {
        ranges.push(match segment.kind {
            DataKind::Active { .. } => ByteRange::default(),
            DataKind::Passive => {
                let start = u32::try_from(section.len()).ok()?;
                let bytes = &data[segment.bytes.start as usize..][..segment.bytes.len as usize];
                section.extend_from_slice(bytes);
                ByteRange {
                    start,
                    len: segment.bytes.len,
                }
            }
        });
    }
    u32::try_from(section.len()).ok()?;
    let page_size = u32::try_from(page_size).ok()?;
    for (segment, range) in info.data.values_mut().zip(ranges) {
        segment.bytes = range;
    }
    info.memory_image = Some(MemoryImage {
        memory,
        offset: first + leading as u64 * u64::from(page_size),
        bytes: image_range,
        page_size,
    });
    Some(section)
}
