//! Helpers shared by the facade's integration tests.

use kiln::{Engine, Module};

/// The artifact at `path`, which `engine` serialized and nothing changes while it is
/// loaded, loaded checked or unchecked.
pub fn load(engine: &Engine, path: &std::path::Path, checked: bool) -> Module {
    // SAFETY: the file holds an artifact this engine serialized and is not changed.
    unsafe {
        if checked {
            Module::deserialize_file(engine, path)
        } else {
            Module::deserialize_file_unchecked(engine, path)
        }
    }
    .unwrap()
}
