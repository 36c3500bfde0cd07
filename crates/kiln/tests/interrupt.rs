//! Epoch interruption: a runaway loop compiled with `Config::epoch_interruption` stops with
//! `TrapCode::Interrupt` when another thread advances the engine's epoch past the store's
//! deadline, and the store stays usable afterwards.

use std::time::Duration;

use kiln::{Config, Engine, Instance, Module, Store, TrapCode};

const SPIN: &str = r#"(module
  (func $spin (export "spin") (loop $l (br $l)))
  (func (export "count") (param i32) (result i32) (local i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (local.set 1 (i32.add (local.get 1) (i32.const 1)))
        (br $l)))
    (local.get 1))
  (func (export "recurse") (call $spin)))"#;

fn engine(interruptible: bool) -> Engine {
    let mut config = Config::new();
    config.epoch_interruption(interruptible);
    Engine::new(&config).unwrap()
}

#[test]
fn a_runaway_loop_is_interrupted() {
    let engine = engine(true);
    let module = Module::new(&engine, SPIN).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let spin = instance
        .get_typed_func::<(), ()>(&mut store, "spin")
        .unwrap();
    let count = instance
        .get_typed_func::<i32, i32>(&mut store, "count")
        .unwrap();

    // Without a deadline, finite work runs normally.
    assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);

    for entry in ["spin", "recurse"] {
        store.set_epoch_deadline(1);
        let ticker = engine.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            ticker.increment_epoch();
        });
        let func = instance
            .get_typed_func::<(), ()>(&mut store, entry)
            .unwrap();
        let err = func.call(&mut store, ()).unwrap_err();
        timer.join().unwrap();
        assert_eq!(
            err.as_trap().map(|t| t.code()),
            Some(TrapCode::Interrupt),
            "{entry}"
        );
    }
    let _ = spin;

    // A later deadline lets the store run again.
    store.set_epoch_deadline(10);
    assert_eq!(count.call(&mut store, 5).unwrap(), 5);
    // A deadline that has already passed stops the next call at its first check.
    store.set_epoch_deadline(0);
    let err = count.call(&mut store, 5).unwrap_err();
    assert_eq!(err.as_trap().map(|t| t.code()), Some(TrapCode::Interrupt));
}

#[test]
fn code_without_epoch_checks_ignores_deadlines() {
    let engine = engine(false);
    let module = Module::new(&engine, SPIN).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(0);
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let count = instance
        .get_typed_func::<i32, i32>(&mut store, "count")
        .unwrap();
    assert_eq!(count.call(&mut store, 100).unwrap(), 100);
}
