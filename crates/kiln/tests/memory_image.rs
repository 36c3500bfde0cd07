//! Memory images: active data segments laid out at compile time and mapped copy-on-write at
//! instantiation. Every load path (file mapping, in-memory file, copy) must give each
//! instance the same initial bytes, keep instances apart, and leave the artifact unchanged.

use kiln::{Engine, Extern, Instance, Module, Store, Table, Val};

/// Two pages; segments on both, overlapping in the second, and a passive one.
const WAT: &str = r#"(module
  (memory (export "mem") 2)
  (data (i32.const 16) "kiln")
  (data (i32.const 70000) "page two")
  (data (i32.const 70004) "TWO!")
  (data $passive "passive")
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "init") (param i32) (memory.init $passive (local.get 0) (i32.const 0) (i32.const 7)))
  (func (export "init_active") (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 1))))"#;

/// [`WAT`] with `word` (four bytes) at 16 instead of "kiln", and a second passive segment
/// of `padding` bytes, which makes the artifact larger without changing its memory.
fn wat_with(word: &str, padding: usize) -> String {
    assert_eq!(word.len(), 4);
    WAT.replacen("\"kiln\"", &format!("\"{word}\""), 1)
        .replacen(
            "(data $passive",
            &format!("(data $padding \"{}\") (data $passive", "p".repeat(padding)),
            1,
        )
}

/// Artifacts up to this size are read from their file, larger ones mapped
/// (`kiln_runtime::loader`): padding that puts an artifact past it.
const MAPPED_PADDING: usize = 200 * 1024;

fn image_of(module: &Module) -> Option<kiln_artifact::MemoryImage> {
    kiln_artifact::read_metadata(&module.serialize().unwrap())
        .unwrap()
        .memory_image
}

fn read(store: &mut Store<()>, instance: &Instance, at: i32, len: usize) -> Vec<u8> {
    let load = instance
        .get_typed_func::<i32, i32>(&mut *store, "load")
        .unwrap();
    (0..len as i32)
        .map(|i| load.call(&mut *store, at + i).unwrap() as u8)
        .collect()
}

/// Two instances of `module` in one store and one in another: each starts from the
/// segments' bytes, and writes stay in the instance that made them.
fn exercise(engine: &Engine, module: &Module) {
    let mut store = Store::new(engine, ());
    let a = Instance::new(&mut store, module, &[]).unwrap();
    let b = Instance::new(&mut store, module, &[]).unwrap();
    for instance in [&a, &b] {
        assert_eq!(read(&mut store, instance, 16, 4), b"kiln");
        assert_eq!(read(&mut store, instance, 70000, 8), b"pageTWO!");
        assert_eq!(read(&mut store, instance, 0, 16), [0; 16]);
        assert_eq!(read(&mut store, instance, 2 * 65536 - 4, 4), [0; 4]);
    }
    let write = a
        .get_typed_func::<(i32, i32), ()>(&mut store, "store")
        .unwrap();
    write.call(&mut store, (16, i32::from(b'K'))).unwrap();
    write.call(&mut store, (70001, i32::from(b'A'))).unwrap();
    assert_eq!(read(&mut store, &a, 16, 4), b"Kiln");
    assert_eq!(read(&mut store, &a, 70000, 4), b"pAge");
    assert_eq!(read(&mut store, &b, 16, 4), b"kiln");
    assert_eq!(read(&mut store, &b, 70000, 4), b"page");

    // The passive segment is still there; the active ones were dropped.
    let init = a.get_typed_func::<i32, ()>(&mut store, "init").unwrap();
    init.call(&mut store, 100).unwrap();
    assert_eq!(read(&mut store, &a, 100, 7), b"passive");
    let init_active = a
        .get_typed_func::<(), ()>(&mut store, "init_active")
        .unwrap();
    assert!(init_active.call(&mut store, ()).is_err());

    let mut other = Store::new(engine, ());
    let c = Instance::new(&mut other, module, &[]).unwrap();
    assert_eq!(read(&mut other, &c, 16, 4), b"kiln");
    // Growing keeps the image and adds zero pages.
    let memory = c.get_memory(&mut other, "mem").unwrap();
    assert_eq!(memory.grow(&mut other, 1).unwrap(), 2);
    assert_eq!(read(&mut other, &c, 70000, 8), b"pageTWO!");
    assert_eq!(read(&mut other, &c, 2 * 65536, 8), [0; 8]);
}

#[test]
fn active_segments_become_one_image() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    let image = image_of(&module).expect("the segments fit in an image");
    let page = u64::from(image.page_size);
    assert_eq!(image.offset, 0, "the first segment is in the first page");
    assert_eq!(image.offset % page, 0);
    assert_eq!(u64::from(image.bytes.len) % page, 0);
    assert!(u64::from(image.bytes.len) >= 70008);
}

#[test]
fn every_load_path_gives_the_same_memory() {
    let engine = Engine::default();
    // A small artifact file is read, a large one mapped.
    for padding in [0, MAPPED_PADDING] {
        let module = Module::new(&engine, wat_with("kiln", padding)).unwrap();
        every_load_path(&engine, &module);
    }
}

fn every_load_path(engine: &Engine, module: &Module) {
    let engine = engine.clone();
    exercise(&engine, module);

    let bytes = module.serialize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.kiln");
    std::fs::write(&path, &bytes).unwrap();
    // SAFETY: the file was written from `Module::serialize` just now and is not modified.
    let from_file = unsafe { Module::deserialize_file(&engine, &path) }.unwrap();
    exercise(&engine, &from_file);
    // SAFETY: as above.
    let unchecked = unsafe { Module::deserialize_file_unchecked(&engine, &path) }.unwrap();
    exercise(&engine, &unchecked);
    // SAFETY: the bytes come from `Module::serialize`.
    let from_bytes = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    exercise(&engine, &from_bytes);

    kiln_runtime::loader::force_memory_image_copy(true);
    exercise(&engine, &from_file);
    exercise(&engine, &from_bytes);
    kiln_runtime::loader::force_memory_image_copy(false);

    // Writes went to private pages, never to the artifact.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn segments_placed_at_run_time_are_written_as_before() {
    let engine = Engine::default();
    // An offset from an imported global is only known at instantiation.
    let from_global = Module::new(
        &engine,
        r#"(module
          (import "env" "at" (global i32))
          (memory (export "mem") 1)
          (data (global.get 0) "here")
          (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
    )
    .unwrap();
    assert!(image_of(&from_global).is_none());
    let mut store = Store::new(&engine, ());
    let at = kiln::Global::new(
        &mut store,
        kiln::GlobalType {
            content: kiln::ValType::I32,
            mutable: false,
        },
        Val::I32(300),
    )
    .unwrap();
    let instance = Instance::new(&mut store, &from_global, &[Extern::Global(at)]).unwrap();
    assert_eq!(read(&mut store, &instance, 300, 4), b"here");

    // A segment out of bounds traps at instantiation; one of an imported memory is the
    // importer's to keep.
    let out_of_bounds = Module::new(
        &engine,
        r#"(module (memory 1) (data (i32.const 65534) "abc"))"#,
    )
    .unwrap();
    assert!(image_of(&out_of_bounds).is_none());
    assert!(Instance::new(&mut store, &out_of_bounds, &[]).is_err());
    let imported = Module::new(
        &engine,
        r#"(module (import "env" "mem" (memory 1)) (data (i32.const 8) "x"))"#,
    )
    .unwrap();
    assert!(image_of(&imported).is_none());

    // Far-apart segments would make a large, mostly empty image.
    let sparse = Module::new(
        &engine,
        r#"(module (memory 200) (data (i32.const 0) "a") (data (i32.const 13000000) "b"))"#,
    )
    .unwrap();
    assert!(image_of(&sparse).is_none());
    // Segments of zeros need no image at all.
    let zeros = Module::new(
        &engine,
        r#"(module (memory 1) (data (i32.const 0) "\00\00\00\00"))"#,
    )
    .unwrap();
    assert!(image_of(&zeros).is_none());
}

/// Instantiates `module`, which imports `env.table` and places a `() -> i32` function at
/// its element 0 first: whether instantiation succeeded, and what that function returns.
fn instantiate_with_table(engine: &Engine, module: &Module, table_size: u32) -> (bool, i32) {
    let mut store = Store::new(engine, ());
    let ty = kiln::TableType {
        element: kiln::RefType::FuncRef,
        min: table_size,
        max: None,
    };
    let table = Table::new(&mut store, ty, Val::FuncRef(None)).unwrap();
    let result = Instance::new(&mut store, module, &[Extern::Table(table)]);
    let peek = match table.get(&mut store, 0) {
        Some(Val::FuncRef(Some(f))) => f,
        other => panic!("the first segment should have been written, found {other:?}"),
    };
    let peek = peek.typed::<(), i32>(&store).unwrap();
    (result.is_ok(), peek.call(&mut store, ()).unwrap())
}

/// Element segments are written before data segments: when one of them traps, functions
/// already placed in an imported table must see a memory without the data.
#[test]
fn a_trapping_element_segment_leaves_the_image_unwritten() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
          (import "env" "table" (table 2 funcref))
          (memory 1)
          (func $peek (result i32) (i32.load8_u (i32.const 40)))
          (elem (i32.const 0) $peek)
          (elem (i32.const 5) $peek)
          (data (i32.const 40) "data"))"#,
    )
    .unwrap();
    assert!(image_of(&module).is_some());
    // Also loaded anew from a file each time, so that the warm memory found is one of
    // another load of the file, with the image mapped from it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trapping.kiln");
    std::fs::write(&path, module.serialize().unwrap()).unwrap();
    let instantiate = |table_size: u32, from_file: bool| {
        let module = if from_file {
            // SAFETY: the file holds an artifact this engine serialized and is not changed.
            unsafe { Module::deserialize_file_unchecked(&engine, &path) }.unwrap()
        } else {
            module.clone()
        };
        instantiate_with_table(&engine, &module, table_size)
    };
    // With room for both segments the data is there; the memory's reservation then goes
    // back to the pool with the image in place, and the failing instantiation may get it.
    for from_file in [false, true, false, true] {
        for _ in 0..3 {
            assert_eq!(instantiate(10, from_file), (true, i32::from(b'd')));
            assert_eq!(instantiate(2, from_file), (false, 0));
        }
    }
}

/// A memory left warm with one file's image is taken by the next module whose image has
/// the same place and size, from another file: its image is mapped over the old one, which
/// must never show, not even when the instantiation fails before its data is written.
#[test]
fn another_files_image_is_replaced_or_cleared() {
    let engine = Engine::default();
    let wat = |word: &str| {
        format!(
            r#"(module
              (import "env" "table" (table 2 funcref))
              (memory 1)
              (func $peek (result i32) (i32.load (i32.const 40)))
              (elem (i32.const 0) $peek)
              (elem (i32.const 5) $peek)
              (data (i32.const 40) "{word}"))"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for word in ["AAAA", "BBBB"] {
        let module = Module::new(&engine, wat(word)).unwrap();
        assert!(image_of(&module).is_some());
        let path = dir.path().join(format!("{word}.kiln"));
        std::fs::write(&path, module.serialize().unwrap()).unwrap();
        paths.push(path);
    }
    let instantiate = |path: &std::path::Path, table_size: u32| {
        // SAFETY: the file holds an artifact this engine serialized and is not changed.
        let module = unsafe { Module::deserialize_file_unchecked(&engine, path) }.unwrap();
        let (ok, peek) = instantiate_with_table(&engine, &module, table_size);
        (ok, peek.to_le_bytes())
    };
    for _ in 0..4 {
        assert_eq!(instantiate(&paths[0], 10), (true, *b"AAAA"));
        assert_eq!(instantiate(&paths[1], 2), (false, [0; 4]));
        assert_eq!(instantiate(&paths[1], 10), (true, *b"BBBB"));
        assert_eq!(instantiate(&paths[0], 10), (true, *b"AAAA"));
        assert_eq!(instantiate(&paths[1], 10), (true, *b"BBBB"));
        assert_eq!(instantiate(&paths[0], 2), (false, [0; 4]));
    }
}

/// Dropped memories' reservations are reset and reused by later ones: nothing a previous
/// instance wrote, grew or had mapped may show through.
#[test]
fn reused_memories_start_from_the_image_and_zeros() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    for round in 0..50 {
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        assert_eq!(read(&mut store, &instance, 16, 4), b"kiln", "round {round}");
        assert_eq!(read(&mut store, &instance, 0, 8), [0; 8], "round {round}");
        assert_eq!(read(&mut store, &instance, 70000, 8), b"pageTWO!");
        let memory = instance.get_memory(&mut store, "mem").unwrap();
        assert_eq!(
            memory.size(&store),
            2,
            "round {round}: grown pages are gone"
        );
        let write = instance
            .get_typed_func::<(i32, i32), ()>(&mut store, "store")
            .unwrap();
        write.call(&mut store, (0, 7)).unwrap();
        write.call(&mut store, (17, 7)).unwrap();
        write.call(&mut store, (70002, 7)).unwrap();
        // Every other round grows: a grown memory is reset to zero, an unchanged one only
        // loses its writes and stays ready for the next instance of the module.
        if round % 2 == 0 {
            memory.grow(&mut store, 3).unwrap();
            write.call(&mut store, (4 * 65536, 7)).unwrap();
        }
    }
}

/// Memories without an image are kept warm too (discarded pages read as zero): a module
/// without data segments, instantiated in turn with one that has them, must always start
/// from zeros, and the other from its image.
#[test]
fn reused_memories_without_an_image_start_zero() {
    let engine = Engine::default();
    let with_image = Module::new(&engine, WAT).unwrap();
    let zero = Module::new(
        &engine,
        r#"(module
          (memory (export "mem") 2)
          (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
          (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))"#,
    )
    .unwrap();
    for round in 0..40 {
        let module = if round % 3 == 2 { &with_image } else { &zero };
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        let expected: &[u8] = if round % 3 == 2 { b"kiln" } else { &[0; 4] };
        assert_eq!(
            read(&mut store, &instance, 16, 4),
            expected,
            "round {round}"
        );
        assert_eq!(
            read(&mut store, &instance, 70000, 2),
            if round % 3 == 2 { b"pa" } else { &[0, 0] }
        );
        let write = instance
            .get_typed_func::<(i32, i32), ()>(&mut store, "store")
            .unwrap();
        for at in [0, 16, 17, 70000, 2 * 65536 - 1] {
            write.call(&mut store, (at, 9)).unwrap();
        }
        if round % 5 == 0 {
            let memory = instance.get_memory(&mut store, "mem").unwrap();
            memory.grow(&mut store, 1).unwrap();
            write.call(&mut store, (2 * 65536, 9)).unwrap();
        }
    }
}

/// A memory left warm with a file's image serves the next load of the same file (a host
/// that loads a module anew for each request); every load must still start from the
/// bytes the file holds then: after its previous instances wrote to their memories, after
/// the file was rewritten in place, and after it was replaced by another file.
#[test]
fn reloads_of_a_file_start_from_its_current_image() {
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    for padding in [0, MAPPED_PADDING] {
        let artifact = |word: &str| {
            Module::new(&engine, wat_with(word, padding))
                .unwrap()
                .serialize()
                .unwrap()
        };
        let (kiln, other) = (artifact("kiln"), artifact("KILN"));
        assert_eq!(kiln.len(), other.len(), "the same layout");
        let path = dir.path().join(format!("reloaded-{padding}.kiln"));
        let start = |expected: &[u8; 4], checked: bool| {
            // SAFETY: the file holds an artifact this engine serialized and is not changed
            // while the module is loaded (only between loads).
            let module = unsafe {
                if checked {
                    Module::deserialize_file(&engine, &path)
                } else {
                    Module::deserialize_file_unchecked(&engine, &path)
                }
            }
            .unwrap();
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            assert_eq!(&read(&mut store, &instance, 16, 4), expected);
            assert_eq!(read(&mut store, &instance, 70000, 8), b"pageTWO!");
            assert_eq!(read(&mut store, &instance, 0, 4), [0; 4]);
            let write = instance
                .get_typed_func::<(i32, i32), ()>(&mut store, "store")
                .unwrap();
            for at in [0, 16, 70000] {
                write.call(&mut store, (at, 7)).unwrap();
            }
        };
        std::fs::write(&path, &kiln).unwrap();
        for round in 0..3 {
            start(b"kiln", round == 1);
        }
        // The same file (same inode), new bytes.
        std::fs::write(&path, &other).unwrap();
        start(b"KILN", false);
        start(b"KILN", true);
        // Another file under the same name.
        let replacement = dir.path().join("replacement.kiln");
        std::fs::write(&replacement, &kiln).unwrap();
        std::fs::rename(&replacement, &path).unwrap();
        start(b"kiln", false);
        start(b"kiln", false);
    }
}

/// Review findings: an empty segment below the first page of data made the image's
/// placement underflow, and segments 4 GiB apart allocated a 4 GiB buffer before the
/// sparseness check refused it.
#[test]
fn empty_and_far_apart_segments_are_placed_safely() {
    let engine = Engine::default();
    let empty_first = Module::new(
        &engine,
        r#"(module
          (memory 2)
          (data (i32.const 0) "")
          (data (i32.const 65536) "x")
          (data (i32.const 131072) "")
          (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
    )
    .unwrap();
    let image = image_of(&empty_first).expect("one non-empty segment");
    assert_eq!(image.offset, 65536);
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &empty_first, &[]).unwrap();
    assert_eq!(read(&mut store, &instance, 65535, 2), [0, b'x']);

    // Refused before a 4 GiB buffer is made (which this test cannot observe beyond its
    // time; the empty-segment case above panicked before the fix).
    let far_apart = Module::new(
        &engine,
        r#"(module (memory 65536) (data (i32.const 0) "a") (data (i32.const -1) "b"))"#,
    )
    .unwrap();
    assert!(image_of(&far_apart).is_none());
}
