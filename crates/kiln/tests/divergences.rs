//! Modules on which the differential fuzzer's reference interpreter (wasmi) and Kiln
//! disagreed and Kiln was right, checked against Wasmtime (`fuzz/known-divergences/`, each
//! file says what each engine answered). Kiln's answer is pinned here under every codegen
//! setting, so the case stays a test even though the fuzzer cannot use it.

use kiln::{BoundsChecks, Config, Engine, Instance, Module, OptLevel, Store};

/// `f(0.0, 0.0, 0.0)` computes `-129 rem_s 1` behind a fuel check and returns nothing;
/// wasmi 2.0.0 traps "integer divide by zero".
const REM_S: &str = include_str!("../../../fuzz/known-divergences/wasmi-2.0.0-rem-s.wat");

#[test]
fn rem_s_after_select_and_tee_returns() {
    for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
        for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
            let mut config = Config::new();
            config.opt_level(opt_level).bounds_checks(bounds_checks);
            let engine = Engine::new(&config).unwrap();
            let module = Module::new(&engine, REM_S).unwrap();
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let f = instance
                .get_typed_func::<(f64, f64, f64), ()>(&mut store, "f")
                .unwrap();
            let outcome = f.call(&mut store, (0.0, 0.0, 0.0));
            assert!(
                outcome.is_ok(),
                "{opt_level:?}, {bounds_checks:?}: {outcome:?}"
            );
        }
    }
}
