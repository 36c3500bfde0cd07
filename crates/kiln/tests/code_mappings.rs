//! Executable mappings of artifact files are kept after their module is dropped
//! (`kiln_runtime::code_mappings`): loading the same file again maps nothing. A file of its
//! own, since the pool is process-wide and other test files switch the loader to copying.

use kiln::{Engine, Instance, Module, Store};
use kiln_runtime::loader::{LoadedModule, Verification};

fn artifact(engine: &Engine, result: i32) -> Vec<u8> {
    let wat = format!(r#"(module (func (export "f") (result i32) (i32.const {result})))"#);
    Module::new(engine, wat).unwrap().serialize().unwrap()
}

/// What `f` of the artifact at `path` returns, loaded through the facade.
fn run(engine: &Engine, path: &std::path::Path) -> i32 {
    // SAFETY: the file holds an artifact this engine serialized and is not changed while the
    // module is loaded (only between loads).
    let module = unsafe { Module::deserialize_file_unchecked(engine, path) }.unwrap();
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
    f.call(&mut store, ()).unwrap()
}

#[test]
fn reloading_a_file_reuses_its_code_mapping_and_runs_what_the_file_holds() {
    let engine = Engine::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("module.kiln");
    let one = artifact(&engine, 1);
    std::fs::write(&path, &one).unwrap();
    let compat = kiln_artifact::Header::parse(&one).unwrap().compat;
    let load = || {
        // SAFETY: as in `run`.
        unsafe { LoadedModule::from_file(&path, &compat, Verification::Unchecked) }.unwrap()
    };

    let first = load();
    let address = first.code_base();
    drop(first);
    let second = load();
    assert_eq!(second.code_base(), address, "the dropped module's mapping");
    let third = load();
    assert_ne!(
        third.code_base(),
        address,
        "a mapping in use is never shared"
    );
    drop((second, third));

    // Rewritten in place (the same inode): the new code runs, whether or not the pooled
    // mapping of the old bytes is found.
    assert_eq!(run(&engine, &path), 1);
    std::fs::write(&path, artifact(&engine, 2)).unwrap();
    assert_eq!(run(&engine, &path), 2);
    // Replaced by another file at the same path.
    let other = dir.path().join("other.kiln");
    std::fs::write(&other, artifact(&engine, 3)).unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(run(&engine, &path), 3);
}
