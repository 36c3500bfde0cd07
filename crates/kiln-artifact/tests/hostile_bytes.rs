//! `open_checked` on damaged or made-up bytes: every change to a real artifact is refused,
//! and nothing panics, whatever the bytes.
//!
//! Two kinds of damage: plain changes, which the checksum alone must catch, and changes
//! behind the header followed by a fresh checksum ("resealed"), which must get past the
//! checksum to the archive validation and the metadata checks. A resealed change may give a
//! different but consistent artifact; then everything the runtime follows must lie in bounds.

mod common;

use common::{Generated, generated, host_compat, reseal};
use kiln_artifact::header::{FORMAT_VERSION, KILN_VERSION, MAGIC, SEAL_FIELD, SEAL_LEN};
use kiln_artifact::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const CASES: u32 = 2000;

/// One way of damaging a file. Positions are raw and taken modulo the length.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(u32),
    FlipBits(Vec<(u32, u8)>),
    Overwrite { at: u32, bytes: Vec<u8> },
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u32>().prop_map(Mutation::Truncate),
        vec((any::<u32>(), 0u8..8), 1..=8).prop_map(Mutation::FlipBits),
        (any::<u32>(), vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

/// Applies `m` to `file[from..]`, leaving the first `from` bytes alone.
fn apply(file: &mut Vec<u8>, m: &Mutation, from: usize) {
    let span = file.len() - from;
    match m {
        Mutation::Truncate(n) => file.truncate(from + *n as usize % span),
        Mutation::FlipBits(bits) => {
            for &(pos, bit) in bits {
                file[from + pos as usize % span] ^= 1 << bit;
            }
        }
        Mutation::Overwrite { at, bytes } => {
            let at = from + *at as usize % span;
            let end = (at + bytes.len()).min(file.len());
            file[at..end].copy_from_slice(&bytes[..end - at]);
        }
        Mutation::Append(bytes) => file.extend_from_slice(bytes),
    }
}

/// A real artifact, compact (16-byte text alignment) or page-aligned.
fn artifact(g: &Generated, paged: bool) -> Vec<u8> {
    build_artifact(&g.parts(&host_compat(), if paged { 4096 } else { 16 })).unwrap()
}

/// What the runtime follows without further checks lies inside what it names. Written
/// independently of `validate_metadata` so that the two cross-check each other.
fn assert_usable(info: &ArchivedModuleInfo, header: &Header) {
    let code_len = header.code.len;
    let data_len = header.data.len;
    let in_code = |r: &ArchivedByteRange| {
        let r = r.native();
        u64::from(r.start) + u64::from(r.len) <= code_len
    };
    for (_, f) in info.functions.iter() {
        let ty = info
            .types
            .get(f.ty.native())
            .expect("function type in range");
        assert_eq!(ty.signature_id(), f.signature.native());
    }
    assert!(info.num_imported_funcs.to_native() as usize <= info.functions.len());
    assert_eq!(
        info.compiled.len() + info.num_imported_funcs.to_native() as usize,
        info.functions.len()
    );
    for (_, c) in info.compiled.iter() {
        assert!(in_code(&c.body), "body outside the text section");
    }
    assert_eq!(info.trampolines.len(), info.types.len());
    for (_, t) in info.trampolines.iter() {
        assert!(in_code(&t.array_to_wasm) && in_code(&t.wasm_to_array));
    }
    for (_, d) in info.data.iter() {
        let r = d.bytes.native();
        assert!(u64::from(r.start) + u64::from(r.len) <= data_len);
    }
    for (_, e) in info.exports.iter() {
        let (i, n) = match e.native() {
            EntityIndex::Function(i) => (i.0, info.functions.len()),
            EntityIndex::Table(i) => (i.0, info.tables.len()),
            EntityIndex::Memory(i) => (i.0, info.memories.len()),
            EntityIndex::Global(i) => (i.0, info.globals.len()),
        };
        assert!((i as usize) < n, "export out of range");
    }
    for (_, e) in info.elements.iter() {
        // Tables hold raw references: an extern handle must never land in a funcref table.
        if let ArchivedElemKind::Active { table, .. } = &e.kind {
            let table = info.tables.get(table.native()).expect("table in range");
            assert_eq!(table.element, e.element, "segment type matches its table");
        }
        match &e.items {
            ArchivedElemItems::Functions(fs) => {
                assert_eq!(e.element, ArchivedRefType::FuncRef);
                assert!(
                    fs.iter()
                        .all(|f| (f.0.to_native() as usize) < info.functions.len())
                );
            }
            ArchivedElemItems::Exprs(es) => {
                for x in es.iter() {
                    let is_func = match x {
                        ArchivedConstExpr::RefNull(t) => *t == ArchivedRefType::FuncRef,
                        ArchivedConstExpr::RefFunc(_) => true,
                        ArchivedConstExpr::GlobalGet(g) => {
                            let g = info.globals.get(g.native()).expect("global in range");
                            g.ty.content.native() == kiln_artifact::ValType::FuncRef
                        }
                        other => panic!("element item {other:?} is not a reference"),
                    };
                    assert_eq!(is_func, e.element == ArchivedRefType::FuncRef);
                }
            }
        }
    }
    if let Some(s) = info.start.as_ref() {
        assert!((s.0.to_native() as usize) < info.functions.len());
    }
    // The lookups the runtime makes must not panic either.
    let _ = info.vmoffsets(8);
    for t in info.traps.iter() {
        assert!(info.lookup_trap(t.code_offset).is_some());
        let _ = info.func_at_code_offset(t.code_offset);
    }
    for n in info.func_names.iter() {
        let _ = info.func_name(n.func.native());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any change anywhere in the file is refused (the checksum covers the whole file, the
    /// header's reserved bytes must be zero and the section layout is fixed), except in the
    /// seal, which the checked loader does not read: only a sealed load verifies it.
    #[test]
    fn damaged_artifact_is_refused(g in generated(), m in mutation(), paged in any::<bool>()) {
        let original = artifact(&g, paged);
        let mut file = original.clone();
        apply(&mut file, &m, 0);
        let result = open_checked(&file, &host_compat());
        let mut unsealed = file.clone();
        if let Some(seal) = unsealed.get_mut(SEAL_FIELD..SEAL_FIELD + SEAL_LEN) {
            seal.fill(0);
        }
        if unsealed == original {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "damaged artifact accepted: {m:?}");
        }
    }

    /// Flipping any bit of the header is refused, reserved bytes and section table included
    /// (the seal aside, as above).
    #[test]
    fn damage_to_the_header_is_refused(
        g in generated(),
        pos in 0..HEADER_SIZE,
        bit in 0u8..8,
        paged in any::<bool>(),
    ) {
        prop_assume!(!(SEAL_FIELD..SEAL_FIELD + SEAL_LEN).contains(&pos));
        let mut file = artifact(&g, paged);
        file[pos] ^= 1 << bit;
        let result = open_checked(&file, &host_compat());
        prop_assert!(result.is_err(), "flip of bit {bit} of header byte {pos} accepted");
    }

    /// A change behind the header always changes the checksum.
    #[test]
    fn damage_behind_the_header_is_refused(g in generated(), m in mutation(), paged in any::<bool>()) {
        let original = artifact(&g, paged);
        let mut file = original.clone();
        apply(&mut file, &m, HEADER_SIZE);
        let result = open_checked(&file, &host_compat());
        if file == original {
            prop_assert!(result.is_ok());
        } else {
            // Appending or truncating breaks the section layout before the checksum is read.
            prop_assert!(
                matches!(
                    result,
                    Err(ArtifactError::Checksum { .. }
                        | ArtifactError::SectionOutOfBounds { .. }
                        | ArtifactError::MalformedHeader(_))
                ),
                "unexpected result {result:?} for {m:?}"
            );
        }
    }

    /// Damage to the metadata archive with a matching checksum reaches bytecheck and the
    /// metadata checks: an error, or an artifact whose every range is usable.
    #[test]
    fn resealed_metadata_damage_never_panics(g in generated(), m in mutation()) {
        let before = kiln_artifact::artifact::archive_metadata(&g.info).unwrap().to_vec();
        // Damage only the archive (appending/truncating act on its end), then lay the file
        // out around it as the writer would, so the bytes reach `access_checked`.
        let mut archive = before.clone();
        apply(&mut archive, &m, 0);
        prop_assume!(archive != before);
        let file = assemble(&archive, &g.code, &g.data);
        match open_checked(&file, &host_compat()) {
            Err(ArtifactError::InvalidArchive(_) | ArtifactError::InvalidMetadata(_)) => {}
            Err(e) => return Err(TestCaseError::fail(format!("expected an archive error, got {e}"))),
            Ok((h, info)) => assert_usable(info, &h),
        }
    }

    /// Damage anywhere behind the header with a matching checksum: code and data bytes may
    /// change freely, so `Ok` is possible, but then the metadata must be usable.
    #[test]
    fn resealed_damage_never_panics(g in generated(), m in mutation(), paged in any::<bool>()) {
        let mut file = artifact(&g, paged);
        apply(&mut file, &m, HEADER_SIZE);
        reseal(&mut file);
        if let Ok((h, info)) = open_checked(&file, &host_compat()) {
            assert_usable(info, &h);
        }
    }

    /// Random bytes are never an artifact.
    #[test]
    fn random_bytes_are_refused(bytes in vec(any::<u8>(), 0..2048)) {
        prop_assert!(open_checked(&bytes, &host_compat()).is_err());
        prop_assert!(Header::parse(&bytes).is_err() || bytes.starts_with(&MAGIC));
    }

    /// Random bytes behind the magic are refused.
    #[test]
    fn random_bytes_after_magic_are_refused(bytes in vec(any::<u8>(), 0..2048)) {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&bytes);
        prop_assert!(open_checked(&file, &host_compat()).is_err());
    }

    /// Random bytes behind a valid header whose metadata section covers them and whose
    /// checksum matches: they reach bytecheck, which must refuse them without panicking.
    #[test]
    fn random_archive_behind_a_valid_header_is_refused(
        bytes in vec(any::<u8>(), 0..4096),
        code_len in 0usize..64,
    ) {
        let file = assemble(&bytes, &vec![0; code_len], &[]);
        match open_checked(&file, &host_compat()) {
            Err(_) => {}
            Ok((h, info)) => assert_usable(info, &h),
        }
    }

    /// The same with bytes that look more like an archive: a real archive's bytes shuffled
    /// into a random order of 4-byte words.
    #[test]
    fn shuffled_archive_behind_a_valid_header_never_panics(
        g in generated(),
        order in vec(any::<u32>(), 1..512),
    ) {
        let archive = kiln_artifact::artifact::archive_metadata(&g.info).unwrap();
        let words: Vec<&[u8]> = archive.chunks(4).collect();
        let mut bytes = Vec::with_capacity(archive.len());
        for i in &order {
            bytes.extend_from_slice(words[*i as usize % words.len()]);
        }
        let file = assemble(&bytes, &g.code, &g.data);
        if let Ok((h, info)) = open_checked(&file, &host_compat()) {
            assert_usable(info, &h);
        }
    }
}

/// An artifact for the host laid out as `build_artifact` lays it out (16-byte text
/// alignment) around arbitrary `metadata` bytes, with a matching checksum.
fn assemble(metadata: &[u8], code: &[u8], data: &[u8]) -> Vec<u8> {
    let align16 = |v: u64| v.div_ceil(16) * 16;
    let metadata_range = SectionRange {
        offset: HEADER_SIZE as u64,
        len: metadata.len() as u64,
    };
    let code_range = SectionRange {
        offset: align16(HEADER_SIZE as u64 + metadata.len() as u64),
        len: code.len() as u64,
    };
    let data_range = SectionRange {
        offset: align16(code_range.offset + code_range.len),
        len: data.len() as u64,
    };
    let header = Header {
        format_version: FORMAT_VERSION,
        kiln_version: KILN_VERSION.to_owned(),
        compat: host_compat(),
        metadata: metadata_range,
        code: code_range,
        data: data_range,
        checksum: 0,
        seal: [0; 32],
    };
    let mut file = header.encode().unwrap().to_vec();
    file.extend_from_slice(metadata);
    file.resize(code_range.offset as usize, 0);
    file.extend_from_slice(code);
    file.resize(data_range.offset as usize, 0);
    file.extend_from_slice(data);
    reseal(&mut file);
    file
}

#[test]
fn assemble_matches_build_artifact() {
    // The helper above lays out files exactly as the writer does, so the random cases
    // reach the archive checks rather than stopping at the header.
    let g = ValueTree::current(
        &generated()
            .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
            .unwrap(),
    );
    let archive = kiln_artifact::artifact::archive_metadata(&g.info).unwrap();
    let file = assemble(&archive, &g.code, &g.data);
    assert!(
        file == artifact(&g, false),
        "assemble differs from build_artifact"
    );
    open_checked(&file, &host_compat()).expect("an assembled real archive opens");
}

#[test]
fn every_truncation_of_one_artifact_is_refused() {
    let g = ValueTree::current(
        &generated()
            .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
            .unwrap(),
    );
    let file = artifact(&g, false);
    for len in 0..file.len() {
        assert!(
            open_checked(&file[..len], &host_compat()).is_err(),
            "truncation to {len} bytes accepted"
        );
    }
}

/// Exhaustive over the header of one artifact: every single-bit change is refused, except
/// in the seal, which the checksum reads as zeros (so that sealing leaves it unchanged) and
/// which only a sealed load checks (`crates/kiln/tests/sealed.rs`). (Before the checksum
/// covered the header, the reserved bytes 17..24 and 472..512 and several bits of the code
/// range and data offset could change and the artifact still opened.)
#[test]
fn every_header_bit_is_checked() {
    let g = ValueTree::current(
        &generated()
            .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
            .unwrap(),
    );
    let file = artifact(&g, false);
    let mut accepted = Vec::new();
    for pos in (0..HEADER_SIZE).filter(|p| !(SEAL_FIELD..SEAL_FIELD + SEAL_LEN).contains(p)) {
        for bit in 0..8 {
            let mut damaged = file.clone();
            damaged[pos] ^= 1 << bit;
            if open_checked(&damaged, &host_compat()).is_ok() {
                accepted.push((pos, bit));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "header bit flips accepted (byte, bit): {accepted:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Found by the `artifact` fuzz target: metadata that moved one function's entry point
    /// by 16 bytes (checksum recomputed) loaded, and calling the function ran the middle of
    /// other code. Every body and trampoline must now lie exactly where the linker's layout
    /// puts it, so moving, growing or shrinking any one of them is refused.
    #[test]
    fn a_moved_code_range_is_refused(g in generated(), pick in any::<u32>(), delta in 1u32..64) {
        let pieces = g.info.compiled.len() + 2 * g.info.trampolines.len();
        prop_assume!(pieces > 0);
        let k = pick as usize % pieces;
        let mut info = g.info.clone();
        let range = if k < info.compiled.len() {
            &mut info.compiled[DefinedFuncIndex(k as u32)].body
        } else {
            let t = &mut info.trampolines[TypeIndex(((k - info.compiled.len()) / 2) as u32)];
            if (k - g.info.compiled.len()).is_multiple_of(2) {
                &mut t.array_to_wasm
            } else {
                &mut t.wasm_to_array
            }
        };
        match pick % 3 {
            0 => range.start += delta,
            1 => range.start = range.start.saturating_sub(delta),
            // A longer last piece moves no entry point, nor does a piece that grows into its
            // alignment padding; one that grows past it moves the next piece.
            _ if k + 1 == pieces => range.start += delta,
            _ => range.len += 16 * delta,
        }
        prop_assume!(info != g.info);
        let bytes = kiln_artifact::artifact::archive_metadata(&info).unwrap();
        let result = access_checked(&bytes, g.code.len() as u64 + 64, g.data.len() as u64);
        prop_assert!(result.is_err(), "a moved code range was accepted");
    }
    /// Each function owns a run of the trap table: a record dropped, a count changed, or a
    /// record moved into another function's code is refused, so no trapping instruction of
    /// a checked-loaded artifact can lose its record.
    #[test]
    fn a_trap_table_that_disagrees_with_the_functions_is_refused(
        g in generated(),
        pick in any::<u32>(),
        how in 0u8..4,
    ) {
        prop_assume!(!g.info.traps.is_empty());
        let mut info = g.info.clone();
        let mut traps = info.traps.records();
        let t = pick as usize % traps.len();
        let f = DefinedFuncIndex(pick % info.compiled.len() as u32);
        match how {
            0 => {
                traps.remove(t);
            }
            1 => traps.truncate(t),
            2 => info.compiled[f].trap_count += 1 + pick % 3,
            _ => {
                // Into the body of another function (or past the last one).
                let owner = info
                    .compiled
                    .values()
                    .position(|c| {
                        (c.body.start..c.body.start + c.body.len).contains(&traps[t].code_offset)
                    })
                    .unwrap();
                let other = info.compiled.values().nth((owner + 1) % info.compiled.len()).unwrap();
                prop_assume!(info.compiled.len() > 1);
                traps[t].code_offset = other.body.start;
            }
        }
        info.traps = TrapTable::from_records(&traps);
        prop_assume!(info != g.info);
        let bytes = kiln_artifact::artifact::archive_metadata(&info).unwrap();
        let result = access_checked(&bytes, g.code.len() as u64 + 64, g.data.len() as u64);
        prop_assert!(result.is_err(), "a trap table that disagrees with the functions was accepted");
    }
}
