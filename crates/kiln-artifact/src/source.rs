//! The hashes of the WebAssembly a module was compiled from, recorded in its artifact.
//!
//! A module cache names an entry after the wasm it holds, but a name proves nothing: a file
//! can be renamed, or another module's artifact written under the name. The artifact itself
//! therefore says which wasm it came from, and the cache compares before it uses an entry.
//! Two hashes, because the two ways of trusting a cache need different ones: a private cache
//! only has to notice accidents, which a fast 128-bit xxh3 does at memory speed; a cache that
//! others can write to has to resist chosen inputs, which takes a cryptographic hash
//! (blake3). Computing both at compile time costs far less than compiling.

/// Hashes of a module's wasm bytes.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct SourceHashes {
    /// [`fast_hash`] of the wasm bytes (xxh3-128, little-endian).
    pub fast: [u8; 16],
    /// blake3 of the wasm bytes.
    pub strong: [u8; 32],
}

impl SourceHashes {
    /// Both hashes of `wasm`.
    pub fn of(wasm: &[u8]) -> SourceHashes {
        SourceHashes {
            fast: fast_hash(wasm),
            strong: strong_hash(wasm),
        }
    }
}

/// Inputs at least this large are hashed in [`FAST_CHUNK`]-sized pieces on all cores: one
/// xxh3 stream runs at about 12 GB/s here,
/// which is half the cost of reading the file, and a cache hit pays it every start.
const FAST_PARALLEL_THRESHOLD: usize = 4 << 20;
const FAST_CHUNK: usize = 1 << 20;

/// xxh3-128 of `wasm`: tells modules apart by accident, not against an adversary. Large
/// inputs hash as xxh3-128 over their length and the xxh3-128 of each 1 MiB piece, so the
/// pieces can be hashed in parallel; the result does not depend on the number of threads.
pub fn fast_hash(wasm: &[u8]) -> [u8; 16] {
    use rayon::prelude::*;
    if wasm.len() < FAST_PARALLEL_THRESHOLD {
        return twox_hash::XxHash3_128::oneshot(wasm).to_le_bytes();
    }
    let pieces: Vec<[u8; 16]> = wasm
        .par_chunks(FAST_CHUNK)
        .map(|piece| twox_hash::XxHash3_128::oneshot(piece).to_le_bytes())
        .collect();
    let mut summary = Vec::with_capacity(8 + 16 * pieces.len());
    summary.extend_from_slice(&(wasm.len() as u64).to_le_bytes());
    summary.extend(pieces.iter().flatten());
    twox_hash::XxHash3_128::oneshot(&summary).to_le_bytes()
}

/// [`fast_hash`] of the contents of `file`, read piece by piece with positioned reads into
/// small reused buffers (on all cores for large files), so a cache lookup neither copies the
/// whole file into fresh memory nor maps it (a mapped file truncated by someone else while it
/// is read would kill the process with `SIGBUS`). The file's length is taken once at the
/// start; a file that shrinks meanwhile gives an error.
pub fn fast_hash_file(file: &std::fs::File) -> std::io::Result<[u8; 16]> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len < FAST_PARALLEL_THRESHOLD as u64 {
        let mut small = vec![0; len as usize];
        file.read_exact_at(&mut small, 0)?;
        return Ok(fast_hash(&small));
    }
    let pieces = len.div_ceil(FAST_CHUNK as u64);
    let digests: Vec<[u8; 16]> = (0..pieces)
        .into_par_iter()
        .map(|i| {
            let start = i * FAST_CHUNK as u64;
            let piece_len = (len - start).min(FAST_CHUNK as u64);
            let mut hasher = twox_hash::XxHash3_128::new();
            read_in_parts(file, start, piece_len, |part| hasher.write(part))?;
            Ok(hasher.finish_128().to_le_bytes())
        })
        .collect::<std::io::Result<_>>()?;
    let mut summary = Vec::with_capacity(8 + 16 * digests.len());
    summary.extend_from_slice(&len.to_le_bytes());
    summary.extend(digests.iter().flatten());
    Ok(twox_hash::XxHash3_128::oneshot(&summary).to_le_bytes())
}

/// [`strong_hash`] of the contents of `file`, read like [`fast_hash_file`]: pieces of 1 MiB
/// are hashed on all cores as subtrees of blake3's own tree (its `hazmat` interface) and
/// merged, which gives exactly `blake3::hash` of the whole file.
pub fn strong_hash_file(file: &std::fs::File) -> std::io::Result<[u8; 32]> {
    use blake3::hazmat::{Mode, left_subtree_len, merge_subtrees_root};
    let len = file.metadata()?.len();
    if len <= FAST_CHUNK as u64 {
        let mut hasher = blake3::Hasher::new();
        read_in_parts(file, 0, len, |part| {
            hasher.update(part);
        })?;
        return Ok(*hasher.finalize().as_bytes());
    }
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(
        || subtree_value(file, 0, left),
        || subtree_value(file, left, len - left),
    );
    Ok(*merge_subtrees_root(&l?, &r?, Mode::Hash).as_bytes())
}

/// The chaining value of the blake3 subtree of `file` at `offset`, `len` bytes (which the
/// caller split the way blake3 does, so the subtree is one of blake3's).
fn subtree_value(
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<blake3::hazmat::ChainingValue> {
    use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};
    if len <= FAST_CHUNK as u64 {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        read_in_parts(file, offset, len, |part| {
            hasher.update(part);
        })?;
        return Ok(hasher.finalize_non_root());
    }
    let left = left_subtree_len(len);
    let (l, r) = rayon::join(
        || subtree_value(file, offset, left),
        || subtree_value(file, offset + left, len - left),
    );
    Ok(merge_subtrees_non_root(&l?, &r?, Mode::Hash))
}

/// Bytes read at a time: small enough that the buffer stays in a core's L2 cache between
/// the kernel's copy and the hash reading it (1 MiB reads measured the same here: the copy
/// out of the page cache is what costs).
const READ_LEN: usize = 256 << 10;

/// Feeds the `len` bytes of `file` at `offset` to `feed`, [`READ_LEN`] bytes at a time,
/// through this thread's reused buffer.
fn read_in_parts(
    file: &std::fs::File,
    offset: u64,
    len: u64,
    mut feed: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    std::thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.resize(READ_LEN, 0);
        let mut done = 0;
        while done < len {
            let part = &mut buffer[..(len - done).min(READ_LEN as u64) as usize];
            file.read_exact_at(part, offset + done)?;
            feed(part);
            done += part.len() as u64;
        }
        Ok(())
    })
}

/// blake3 of `wasm` (multi-threaded for large inputs): collision resistant.
pub fn strong_hash(wasm: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    if wasm.len() >= crate::seal::PARALLEL_THRESHOLD {
        hasher.update_rayon(wasm);
    } else {
        hasher.update(wasm);
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_hash_of_a_large_input_sees_every_piece() {
        let mut wasm = vec![7u8; FAST_PARALLEL_THRESHOLD + FAST_CHUNK / 2];
        let whole = fast_hash(&wasm);
        assert_eq!(whole, fast_hash(&wasm.clone()), "deterministic");
        for at in [0, FAST_CHUNK, wasm.len() - 1] {
            wasm[at] ^= 1;
            assert_ne!(fast_hash(&wasm), whole, "a change at {at} is seen");
            wasm[at] ^= 1;
        }
        assert_ne!(
            fast_hash(&wasm[..wasm.len() - 1]),
            whole,
            "the length counts"
        );
        let file = scratch_file(&wasm);
        assert_eq!(
            fast_hash_file(&file).unwrap(),
            whole,
            "the file gives the same hash"
        );
        // Below the threshold it is plain xxh3-128.
        let small = &wasm[..FAST_PARALLEL_THRESHOLD - 1];
        assert_eq!(
            fast_hash(small),
            twox_hash::XxHash3_128::oneshot(small).to_le_bytes()
        );
        assert_eq!(
            fast_hash_file(&scratch_file(small)).unwrap(),
            fast_hash(small)
        );
        assert_eq!(fast_hash_file(&scratch_file(&[])).unwrap(), fast_hash(&[]));
    }

    /// The artifact format depends on these values (checksums, signature ids, cache names):
    /// reference values of the C xxHash library (python-xxhash 3), so a change of the Rust
    /// implementation cannot change the format silently.
    #[test]
    fn xxh3_gives_the_reference_values() {
        let long: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(
            twox_hash::XxHash3_128::oneshot(b""),
            0x99aa06d3014798d86001c324468d497f
        );
        assert_eq!(
            twox_hash::XxHash3_128::oneshot(b"kiln artifact checksum"),
            0x77446d6ac702fb6f9fd6c4a7a17a3637
        );
        assert_eq!(
            twox_hash::XxHash3_128::oneshot(&long),
            0x28684b2ad44cd4a402df1e985a776b74
        );
        assert_eq!(twox_hash::XxHash3_64::oneshot(b"kiln"), 0x5c14e8865e2aa02a);
        assert_eq!(twox_hash::XxHash3_64::oneshot(&long), 0x02df1e985a776b74);
        let mut streamed = twox_hash::XxHash3_128::new();
        for part in long.chunks(7_777) {
            streamed.write(part);
        }
        assert_eq!(streamed.finish_128(), 0x28684b2ad44cd4a402df1e985a776b74);
    }

    #[test]
    fn the_strong_hash_of_a_file_is_blake3_of_its_bytes() {
        let bytes: Vec<u8> = (0..(5 << 20) + 3333u32)
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect();
        for len in [
            0,
            1,
            FAST_CHUNK - 1,
            FAST_CHUNK,
            FAST_CHUNK + 1,
            3 * FAST_CHUNK,
            4 * FAST_CHUNK + 1024 + 7,
            bytes.len(),
        ] {
            let file = scratch_file(&bytes[..len]);
            assert_eq!(
                strong_hash_file(&file).unwrap(),
                *blake3::hash(&bytes[..len]).as_bytes(),
                "{len} bytes"
            );
        }
    }

    fn scratch_file(contents: &[u8]) -> std::fs::File {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(contents).unwrap();
        file
    }
}
