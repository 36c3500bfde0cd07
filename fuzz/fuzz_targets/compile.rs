//! Fuzz target `compile`: arbitrary bytes, and modules that wasm-smith generates within what
//! Kiln supports, through validation and compilation (native and cross to aarch64). Arbitrary
//! bytes must give a module or an error, never a panic; a generated module must compile,
//! load and instantiate.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Unstructured;
use kiln::{Config, Engine, Instance, Module, Store};
use libfuzzer_sys::fuzz_target;

fn engines() -> &'static (Engine, Engine) {
    static ENGINES: OnceLock<(Engine, Engine)> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let mut cross = Config::new();
        cross.target("aarch64-unknown-linux-gnu");
        (Engine::default(), Engine::new(&cross).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let (host, cross) = engines();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 4 == 0 {
        // Raw bytes (with the wasm header in front half of the time).
        let mut bytes = Vec::new();
        if selector % 8 == 0 {
            bytes.extend_from_slice(b"\0asm\x01\0\0\0");
        }
        bytes.extend_from_slice(rest);
        let _ = Module::new(host, &bytes);
        return;
    }
    let mut u = Unstructured::new(rest);
    let Ok(wasm) = kiln_fuzz::terminating_module(&mut u) else {
        return;
    };
    let module = match Module::new(host, &wasm) {
        Ok(module) => module,
        Err(e) => panic!("a valid module did not compile: {e}"),
    };
    if let Err(e) = cross.precompile_module(&wasm) {
        panic!("a valid module did not compile for aarch64: {e}");
    }
    let mut store = Store::new(host, ());
    // Instantiation may trap (a segment out of bounds, the start function) but not fail
    // otherwise: generated modules have no imports and small limits.
    if let Err(e) = Instance::new(&mut store, &module, &[]) {
        assert!(e.as_trap().is_some(), "instantiation failed: {e}");
    }
});
