//! Artifact round trips and the loader's checks.

use kiln::ArtifactError;
use kiln::{Config, Engine, Error, Instance, Module, Store};

const WAT: &str = r#"(module
  (memory (export "mem") 1)
  (data (i32.const 16) "kiln")
  (table 2 funcref)
  (elem (i32.const 1) $seven)
  (func $seven (result i32) i32.const 7)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "indirect") (result i32) (call_indirect (result i32) (i32.const 1)))
  (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0))))"#;

fn exercise(engine: &Engine, module: &Module) {
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let add = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, (20, 22)).unwrap(), 42);
    let indirect = instance
        .get_typed_func::<(), i32>(&mut store, "indirect")
        .unwrap();
    assert_eq!(indirect.call(&mut store, ()).unwrap(), 7);
    let byte = instance
        .get_typed_func::<i32, i32>(&mut store, "byte")
        .unwrap();
    assert_eq!(byte.call(&mut store, 17).unwrap(), i32::from(b'i'));
}

/// Writes `header` into `file` and recomputes the checksum, as someone editing an artifact
/// would, so that what a test changed reaches the loader's checks behind the checksum.
fn with_header(file: &[u8], header: &kiln_artifact::header::Header) -> Vec<u8> {
    let mut file = file.to_vec();
    file[..kiln_artifact::HEADER_SIZE].copy_from_slice(&header.encode().unwrap());
    fix_checksum(&mut file);
    file
}

/// Recomputes the checksum of an edited artifact.
fn fix_checksum(file: &mut [u8]) {
    let sum = kiln_artifact::header::checksum(file);
    file[456..472].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn serialize_deserialize_round_trip() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    exercise(&engine, &module);
    let bytes = module.serialize().unwrap();
    assert_eq!(engine.precompile_module(WAT.as_bytes()).unwrap(), bytes);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.kiln");
    std::fs::write(&path, &bytes).unwrap();

    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let checked = unsafe { Module::deserialize_file(&engine, &path) }.unwrap();
    exercise(&engine, &checked);
    assert_eq!(checked.serialize().unwrap(), bytes);
    // SAFETY: the file was just written from `Module::serialize` and is not modified.
    let unchecked = unsafe { Module::deserialize_file_unchecked(&engine, &path) }.unwrap();
    exercise(&engine, &unchecked);
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let from_bytes = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    exercise(&engine, &from_bytes);
    // SAFETY: the bytes come from `Module::serialize`.
    let unchecked_bytes = unsafe { Module::deserialize_unchecked(&engine, &bytes) }.unwrap();
    exercise(&engine, &unchecked_bytes);
    // The safe loader refuses an artifact that no seal vouches for.
    assert!(matches!(
        Module::from_file(&engine, &path),
        Err(Error::Artifact(ArtifactError::NoKey))
    ));

    let wat_path = dir.path().join("m.wat");
    std::fs::write(&wat_path, WAT).unwrap();
    exercise(&engine, &Module::from_file(&engine, &wat_path).unwrap());
}

#[test]
fn foreign_target_is_refused() {
    let mut config = Config::new();
    config.target("aarch64-unknown-linux-gnu");
    let cross = Engine::new(&config).unwrap();
    assert_eq!(cross.target(), "aarch64-unknown-linux-gnu");
    let bytes = cross.precompile_module(WAT.as_bytes()).unwrap();

    let host = Engine::default();
    for result in [
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize(&host, &bytes) },
        // SAFETY: the bytes are a genuine artifact of this Kiln version.
        unsafe { Module::deserialize_unchecked(&host, &bytes) },
    ] {
        match result {
            Err(Error::Artifact(ArtifactError::Target { expected, found })) => {
                assert_eq!(found, "aarch64-unknown-linux-gnu");
                assert_eq!(expected, host.target());
            }
            other => panic!("expected a target error, got {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cross.kiln");
    std::fs::write(&path, &bytes).unwrap();
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let err = unsafe { Module::deserialize_file(&host, &path) }.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("aarch64-unknown-linux-gnu") && msg.contains(host.target()),
        "{msg}"
    );
    // The cross engine cannot run its own code here either.
    assert!(Module::new(&cross, WAT).is_err());
}

#[test]
fn other_settings_are_refused() {
    let mut config = Config::new();
    config.bounds_checks(kiln::BoundsChecks::Explicit);
    let explicit = Engine::new(&config).unwrap();
    let bytes = explicit.precompile_module(WAT.as_bytes()).unwrap();
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let err = unsafe { Module::deserialize(&Engine::default(), &bytes) }.unwrap_err();
    assert!(
        matches!(err, Error::Artifact(ArtifactError::Settings { .. })),
        "{err}"
    );
    // And the explicit engine runs them.
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let module = unsafe { Module::deserialize(&explicit, &bytes) }.unwrap();
    exercise(&explicit, &module);
}

#[test]
fn artifacts_of_any_cpu_level_this_cpu_has_load_into_any_engine() {
    let mut config = Config::new();
    config.cpu(kiln::CpuLevel::Native);
    let native = Engine::new(&config).unwrap();
    let module = Module::new(&native, WAT).unwrap();
    exercise(&native, &module);
    let bytes = module.serialize().unwrap();
    let header = kiln_artifact::header::Header::parse(&bytes).unwrap();
    let host_features = kiln_artifact::cpu::host_features();
    for feature in header.compat.cpu_features.split(',') {
        assert!(host_features.contains(&feature), "{feature}");
    }
    // The cache must not mix levels, so each level has its own fingerprint.
    assert_ne!(native.fingerprint(), Engine::default().fingerprint());
    // The baseline engine runs the native artifact: the CPU decides, not the engine's level.
    let baseline = Engine::default();
    // SAFETY: artifact bytes this test's engine just wrote, unmodified.
    let loaded = unsafe { Module::deserialize(&baseline, &bytes) }.unwrap();
    exercise(&baseline, &loaded);
}

#[test]
fn artifacts_needing_features_this_cpu_lacks_are_refused() {
    let bytes = Engine::default().precompile_module(WAT.as_bytes()).unwrap();
    let header = kiln_artifact::header::Header::parse(&bytes).unwrap();
    // Claim one more feature: one the CPU lacks if there is such a known feature, and one
    // that no version of Kiln knows (a newer writer's) either way.
    let arch = std::env::consts::ARCH;
    let host = kiln_artifact::cpu::host_features();
    let lacking = kiln_artifact::cpu::known_features(arch)
        .into_iter()
        .find(|f| !host.contains(f));
    for extra in lacking.into_iter().chain(["quantum_fpu"]) {
        let mut forged = header.clone();
        forged.compat.cpu_features = format!("{},{extra}", header.compat.cpu_features);
        let bytes = with_header(&bytes, &forged);
        for result in [
            // SAFETY: Kiln's own code for this module; only the header's CPU features differ,
            // which both loads check before running anything.
            unsafe { Module::deserialize(&Engine::default(), &bytes) },
            // SAFETY: Kiln's own code for this module; only the header's CPU features differ,
            // which the unchecked load checks too before running anything.
            unsafe { Module::deserialize_unchecked(&Engine::default(), &bytes) },
        ] {
            match result {
                Err(Error::Artifact(ArtifactError::CpuFeatures { missing, found })) => {
                    assert!(missing.starts_with(extra), "{missing}");
                    assert_eq!(found, forged.compat.cpu_features);
                }
                other => panic!("{extra}: expected a CPU-features error, got {other:?}"),
            }
        }
    }
}

/// Found by the `artifact` fuzz target: a code offset moved to another power-of-two boundary
/// inside the metadata passed the header's layout check, and the loader copied metadata bytes
/// into the executable mapping (a checked load that then crashed when called).
#[test]
fn a_moved_code_section_is_refused() {
    let bytes = Engine::default().precompile_module(WAT.as_bytes()).unwrap();
    let header = kiln_artifact::header::Header::parse(&bytes).unwrap();
    assert!(header.code.offset >= 4096, "{}", header.code.offset);
    for moved in [header.code.offset / 2, header.code.offset - 16] {
        let mut forged = header.clone();
        forged.code.offset = moved;
        let file = with_header(&bytes, &forged);
        // SAFETY: Kiln's own artifact with only the code offset edited, which the loads
        // check before mapping or running anything.
        let result = unsafe { Module::deserialize(&Engine::default(), &file) };
        assert!(
            matches!(
                result,
                Err(Error::Artifact(ArtifactError::MalformedHeader(_)))
            ),
            "code moved to {moved}: {:?}",
            result.map(|_| ())
        );
    }
}

#[test]
fn another_proposal_set_is_refused() {
    let mut config = Config::new();
    config.wasm_simd(false).wasm_reference_types(false);
    let narrow = Engine::new(&config).unwrap();
    let bytes = narrow.precompile_module(WAT.as_bytes()).unwrap();
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let err = unsafe { Module::deserialize(&Engine::default(), &bytes) }.unwrap_err();
    assert!(
        matches!(err, Error::Artifact(ArtifactError::Settings { .. })),
        "{err}"
    );
    let bytes = Engine::default().precompile_module(WAT.as_bytes()).unwrap();
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    let err = unsafe { Module::deserialize(&narrow, &bytes) }.unwrap_err();
    assert!(
        matches!(err, Error::Artifact(ArtifactError::Settings { .. })),
        "{err}"
    );
    let module =
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize(&narrow, narrow.precompile_module(WAT.as_bytes()).unwrap()) }.unwrap();
    exercise(&narrow, &module);
}

#[test]
fn truncated_artifacts_are_errors() {
    let engine = Engine::default();
    let bytes = engine.precompile_module(WAT.as_bytes()).unwrap();
    let mut cut = 0;
    while cut < bytes.len() {
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        let result = unsafe { Module::deserialize(&engine, &bytes[..cut]) };
        assert!(
            matches!(result, Err(Error::Artifact(_))),
            "truncated to {cut} bytes: {result:?}"
        );
        cut += 1 + cut / 7;
    }
    // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
    assert!(unsafe { Module::deserialize(&engine, &bytes[..bytes.len() - 1]) }.is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.kiln");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize_file(&engine, &path) },
        Err(Error::Artifact(_))
    ));
    let missing = dir.path().join("missing.kiln");
    assert!(matches!(
        // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
        unsafe { Module::deserialize_file(&engine, &missing) },
        Err(Error::Io { .. })
    ));
}

#[test]
fn bit_flips_are_errors_in_checked_mode() {
    let engine = Engine::default();
    let bytes = engine.precompile_module(WAT.as_bytes()).unwrap();
    let mut positions: Vec<usize> = (0..bytes.len()).step_by(bytes.len() / 97 + 1).collect();
    positions.extend([
        0,
        8,
        16,
        20,
        60,
        130,
        300,
        420,
        460,
        506,
        511,
        bytes.len() - 1,
    ]);
    // The seal field (472..504) is read only by sealed loads (`tests/sealed.rs`).
    for pos in positions.into_iter().filter(|p| !(472..504).contains(p)) {
        for bit in [0, 3, 7] {
            let mut flipped = bytes.clone();
            flipped[pos] ^= 1 << bit;
            // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
            let result = unsafe { Module::deserialize(&engine, &flipped) };
            assert!(
                matches!(result, Err(Error::Artifact(_))),
                "flip of bit {bit} at {pos} was accepted: {result:?}"
            );
        }
    }
}

#[test]
fn garbage_is_not_an_artifact() {
    let engine = Engine::default();
    for bytes in [&b""[..], b"\0asm", b"\0KILNART", &[0u8; 600]] {
        assert!(matches!(
            // SAFETY: artifact bytes that Kiln wrote in this test, some damaged on purpose: what is tested is that the checked load refuses them.
            unsafe { Module::deserialize(&engine, bytes) },
            Err(Error::Artifact(_))
        ));
    }
    assert!(matches!(
        Module::new(&engine, "(module (func"),
        Err(Error::Wat(_))
    ));
    assert!(matches!(
        Module::new(&engine, b"\0asm\x01\0\0\0\x05"),
        Err(Error::Compile(_))
    ));
}

#[test]
fn copy_fallback_behaves_like_file_mapping() {
    let engine = Engine::default();
    let bytes = engine.precompile_module(WAT.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.kiln");
    std::fs::write(&path, &bytes).unwrap();
    kiln_runtime::loader::force_code_copy(true);
    // SAFETY: the artifact this engine wrote just now, unchanged while loaded.
    let copied = unsafe { Module::deserialize_file(&engine, &path) };
    kiln_runtime::loader::force_code_copy(false);
    let copied = copied.unwrap();
    exercise(&engine, &copied);
    assert_eq!(copied.serialize().unwrap(), bytes);
}

/// An unchecked load of a small file past the first read (32 KiB) reads its header,
/// metadata and data section but not its code, which it maps from the file (or, where that
/// fails, reads from the file to copy). Passive and active data, tables and calls work, and
/// `serialize` still gives the file's bytes.
#[test]
fn unchecked_loads_of_small_files_work_without_reading_the_code() {
    let mut wat = String::from(
        r#"(module
  (memory (export "mem") 1)
  (data (i32.const 16) "kiln")
  (data $passive "passive bytes")
  (table 2 funcref)
  (elem (i32.const 1) $seven)
  (func $seven (result i32) i32.const 7)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "indirect") (result i32) (call_indirect (result i32) (i32.const 1)))
  (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "init") (memory.init $passive (i32.const 100) (i32.const 0) (i32.const 13)))
"#,
    );
    for i in 0..600 {
        wat.push_str(&format!(
            "  (func (export \"f{i}\") (param i32) (result i32) \
             (i32.mul (i32.add (local.get 0) (i32.const {i})) (i32.const 3)))\n"
        ));
    }
    wat.push(')');
    let engine = Engine::default();
    let bytes = engine.precompile_module(wat.as_bytes()).unwrap();
    assert!(
        (32 * 1024..128 * 1024).contains(&bytes.len()),
        "{} bytes: not between the first read and the size up to which files are read",
        bytes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.kiln");
    std::fs::write(&path, &bytes).unwrap();
    for copy_code in [false, true] {
        kiln_runtime::loader::force_code_copy(copy_code);
        // SAFETY: the artifact this engine wrote just now, unchanged while loaded.
        let loaded = unsafe { Module::deserialize_file_unchecked(&engine, &path) };
        kiln_runtime::loader::force_code_copy(false);
        let module = loaded.unwrap();
        exercise(&engine, &module);
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let init = instance
            .get_typed_func::<(), ()>(&mut store, "init")
            .unwrap();
        init.call(&mut store, ()).unwrap();
        let memory = instance.get_memory(&mut store, "mem").unwrap();
        assert_eq!(&memory.data(&store)[100..113], b"passive bytes");
        assert_eq!(&memory.data(&store)[16..20], b"kiln");
        let f599 = instance
            .get_typed_func::<i32, i32>(&mut store, "f599")
            .unwrap();
        assert_eq!(f599.call(&mut store, 1).unwrap(), 1800);
        assert!(
            module.serialize().unwrap() == bytes,
            "serialize does not give the file's bytes"
        );
    }
}

/// Found by the `artifact` fuzz target: an export whose name was changed inside the metadata
/// (checksum recomputed) passed the checked load, and then `Instance::get_func` could not
/// find the function that `Module::exports` listed under that name (the archived hash index
/// still held the old name's hash). Exports now have a sorted name index that the checked
/// loader verifies: a renamed export is either found under its new name or refused.
#[test]
fn an_export_renamed_in_the_metadata_is_found_or_refused() {
    let engine = Engine::default();
    let wat = r#"(module
      (func (export "a_export") (result i32) (i32.const 1))
      (func (export "b_export") (result i32) (i32.const 2)))"#;
    let bytes = engine.precompile_module(wat.as_bytes()).unwrap();
    let rename = |from: &[u8], to: u8| {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("the name is in the metadata");
        let mut renamed = bytes.clone();
        renamed[at] = to;
        fix_checksum(&mut renamed);
        // SAFETY: an artifact Kiln wrote, with one metadata byte changed.
        unsafe { Module::deserialize(&engine, &renamed) }
    };
    // "b_export" -> "c_export" keeps the names in order: found under the new name.
    let module = rename(b"b_export", b'c').unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    for export in module.exports() {
        assert!(
            instance.get_func(&mut store, export.name()).is_some(),
            "{}",
            export.name()
        );
    }
    let c = instance
        .get_typed_func::<(), i32>(&mut store, "c_export")
        .unwrap();
    assert_eq!(c.call(&mut store, ()).unwrap(), 2);
    // "a_export" -> "c_export" breaks the order (and repeats a name): refused.
    assert!(matches!(
        rename(b"a_export", b'c'),
        Err(Error::Artifact(ArtifactError::InvalidMetadata(_)))
    ));
}

/// Fuzzing finding: shortening the archived trap table (14 records to 6, checksum recomputed)
/// passed the checked load, and the first trap whose record was gone then hit the runtime's
/// "fault without a trap record" abort. Each function now counts its own records, so a
/// table that lost (or gained) records no longer loads.
#[test]
fn a_shortened_trap_table_is_refused() {
    let engine = Engine::default();
    let wat = r#"(module
      (memory 1)
      (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
      (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
      (func (export "stop") unreachable))"#;
    let bytes = engine.precompile_module(wat.as_bytes()).unwrap();
    let header = kiln_artifact::header::Header::parse(&bytes).unwrap();
    // Copy the metadata to page-aligned memory so it can be read in place.
    let range = header.metadata.bounds(bytes.len()).unwrap();
    let mut aligned_bytes = memmap2::MmapMut::map_anon(range.len()).unwrap();
    aligned_bytes.copy_from_slice(&bytes[range.clone()]);
    let info =
        kiln_artifact::artifact::access_checked(&aligned_bytes, header.code.len, header.data.len)
            .unwrap();
    let records = info.traps.len();
    assert!(records >= 3, "{records} trap records");
    // An archived vector is a 4-byte relative pointer, then its 4-byte length: the length of
    // each column of the table.
    let base = aligned_bytes.as_ptr() as usize;
    let len_fields = [
        &info.traps.low_offsets as *const _ as usize,
        &info.traps.codes as *const _ as usize,
        &info.traps.wasm_deltas as *const _ as usize,
    ]
    .map(|field| range.start + field - base + 4);
    for len_at in len_fields {
        assert_eq!(
            u32::from_le_bytes(bytes[len_at..len_at + 4].try_into().unwrap()) as usize,
            records
        );
    }
    for shorter in [0, 1, records - 1] {
        let mut forged = bytes.clone();
        for len_at in len_fields {
            forged[len_at..len_at + 4].copy_from_slice(&(shorter as u32).to_le_bytes());
        }
        fix_checksum(&mut forged);
        // SAFETY: the machine code is what Kiln compiled for this module; only the metadata's
        // trap-table length differs, which the checked load validates (and must refuse).
        let result = unsafe { Module::deserialize(&engine, &forged) };
        assert!(
            matches!(
                result,
                Err(Error::Artifact(ArtifactError::InvalidMetadata(_)))
            ),
            "{shorter} of {records} trap records: {:?}",
            result.map(|_| ())
        );
    }
}

/// Checked loads refuse call-site records (which map return addresses to wasm offsets in
/// backtraces) that are out of order, repeated or past the code: the runtime binary-searches
/// them.
#[test]
fn call_sites_out_of_order_or_past_the_code_are_refused() {
    let engine = Engine::default();
    let wat = r#"(module
      (func $leaf (result i32) (i32.const 1))
      (func (export "calls") (result i32)
        (i32.add (call $leaf) (i32.add (call $leaf) (call $leaf)))))"#;
    let artifact = Module::new(&engine, wat).unwrap().serialize().unwrap();
    let header = kiln_artifact::Header::parse(&artifact).unwrap();
    let info = kiln_artifact::read_metadata(&artifact).unwrap();
    assert!(info.call_sites.len() >= 3, "{:?}", info.call_sites);
    let section = |range: kiln_artifact::SectionRange| {
        &artifact[range.offset as usize..(range.offset + range.len) as usize]
    };
    type Edit<'a> = &'a dyn Fn(&mut Vec<kiln_artifact::CallSiteRecord>);
    let load = |edit: Edit| {
        let mut info = info.clone();
        edit(&mut info.call_sites);
        let forged = kiln_artifact::build_artifact(&kiln_artifact::ArtifactParts {
            info: &info,
            code: section(header.code),
            data: section(header.data),
            compat: &header.compat,
            code_alignment: kiln_artifact::header::code_alignment(&header.compat.target).unwrap(),
        })
        .unwrap();
        kiln_artifact::open_checked(&forged, &header.compat).map(|_| ())
    };
    assert!(load(&|_| {}).is_ok(), "the unedited records");
    let code_len = header.code.len as u32;
    let edits: [(&str, Edit); 4] = [
        ("swapped", &|s| s.swap(0, 1)),
        ("repeated", &|s| s[1] = s[0]),
        ("last past the code", &|s| {
            s.last_mut().unwrap().return_offset = code_len + 1
        }),
        ("first past the code", &|s| {
            s[0].return_offset = code_len + 1
        }),
    ];
    for (what, edit) in edits {
        assert!(
            matches!(load(edit), Err(ArtifactError::InvalidMetadata(_))),
            "{what}"
        );
    }
}
