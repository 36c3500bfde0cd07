//! Pins the calling convention and the trampolines end to end for every codegen setting:
//! one module is compiled under each combination of [`OptLevel`] and [`BoundsChecks`] and run
//! through the real runtime, with exact checks on what crosses the array-to-wasm and
//! wasm-to-array trampolines (host imports with many mixed parameters and results,
//! multi-value returns, a 12-parameter function), direct and indirect calls, control flow,
//! memory accesses with offsets, `memory.grow`, globals, and integer and float edge cases.
//! Floats are compared by their bits.

use kiln::{
    BoundsChecks, Caller, Config, Engine, FuncType, Instance, Linker, Module, OptLevel, Store, Val,
};

const MODULE: &str = r#"
(module
  (type $binop (func (param i32 i32) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (import "env" "spread" (func $spread (param i64 f64 i32 f32 i64 f64 i32 f32 i64)
                                       (result f32 i64 f64 i32 i64 i32)))
  (memory 1 2)
  (table 4 funcref)
  (global $counter (mut i32) (i32.const 40))
  (global $big i64 (i64.const 0x100000000))
  (elem (i32.const 1) $add $sub)
  (func $add (type $binop) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $binop) (i32.sub (local.get 0) (local.get 1)))

  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  (func (export "sum") (param $n i32) (result i64)
    (local $acc i64)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $n))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again)))
    (local.get $acc))

  (func (export "switch") (param i32) (result i32)
    (block $c (result i32)
      (block $b (result i32)
        (block $a (result i32)
          (i32.const 100)
          (br_table $a $b $c (local.get 0)))
        (i32.add (i32.const 10)) (br $c))
      (i32.add (i32.const 20))))

  (func (export "swap") (param i32 i64) (result i64 i32 f64 i64)
    (local.get 1) (local.get 0) (f64.const 2.5) (i64.const -7))

  (func (export "many") (param i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 f64) (result f64)
    (f64.add (f64.add (f64.add (f64.convert_i32_s (local.get 0)) (f64.convert_i64_s (local.get 1)))
                      (f64.add (f64.promote_f32 (local.get 2)) (local.get 3)))
      (f64.add (f64.add (f64.add (f64.convert_i32_s (local.get 4)) (f64.convert_i64_s (local.get 5)))
                        (f64.add (f64.promote_f32 (local.get 6)) (local.get 7)))
               (f64.add (f64.add (f64.convert_i32_s (local.get 8)) (f64.convert_i64_s (local.get 9)))
                        (f64.add (f64.promote_f32 (local.get 10)) (local.get 11))))))

  (func (export "memory") (param $addr i32) (result i32 i32 i32 i64)
    (i32.store offset=4 (local.get $addr) (i32.const 0x8081fe))
    (i64.store32 offset=12 (local.get $addr) (i64.const -1))
    (i32.load offset=4 (local.get $addr))
    (i32.load8_s offset=4 (local.get $addr))
    (i32.load16_u offset=5 (local.get $addr))
    (i64.load32_u offset=12 (local.get $addr)))

  (func (export "grow") (result i32 i32 i32 i32)
    (memory.grow (i32.const 1))
    (memory.size)
    (memory.grow (i32.const 10))
    (i32.store (i32.const 70000) (i32.const 5))
    (i32.load (i32.const 70000)))

  (func (export "bump") (result i32 i64)
    (global.set $counter (i32.add (global.get $counter) (i32.const 2)))
    (global.get $counter)
    (global.get $big))

  (func (export "indirect") (param i32 i32 i32) (result i32)
    (call $log (local.get 0))
    (call_indirect (type $binop) (local.get 1) (local.get 2) (local.get 0)))

  (func (export "spread") (result f32 i64 f64 i32 i64 i32)
    (call $spread (i64.const 1) (f64.const 2) (i32.const 3) (f32.const 4) (i64.const 5)
                  (f64.const 6) (i32.const 7) (f32.const 8) (i64.const 9)))

  (func (export "twice") (param i32) (result i32)
    (i32.add (call $twice (local.get 0)) (i32.const 1)))

  (func (export "div") (param i32 i32 i64 i64) (result i32 i32 i64 i64)
    (i32.rem_s (local.get 0) (local.get 1))
    (i32.div_u (local.get 0) (local.get 1))
    (i64.rem_s (local.get 2) (local.get 3))
    (i64.div_s (local.get 2) (i64.const 2)))

  (func (export "floats") (param f64) (result f64 f64 i32 i64 i32)
    (f64.nearest (local.get 0))
    (f64.min (f64.const 0) (f64.const -0))
    (i32.trunc_sat_f64_u (f64.neg (local.get 0)))
    (i64.trunc_f64_s (local.get 0))
    (i32.extend8_s (i32.const 0x80)))

  (func (export "multi_block") (param i32) (result i32)
    (i32.const 1) (i32.const 2)
    (block (param i32 i32) (result i32 i32 i32) (i32.const 3))
    (i32.add) (i32.add)
    (if (param i32) (result i32) (local.get 0)
      (then (i32.const 100) (i32.add))))

  (func (export "dead") (param i32) (result i32)
    (block (result i32)
      (br_if 0 (i32.const 7) (local.get 0))
      (drop)
      (br 0 (i32.const 8))
      (i32.add (unreachable))
      (block (loop (if (i32.const 0) (then) (else))))
      (drop)))
)
"#;

/// The store's data: the last value passed to `env.log`, if any.
type Logged = Option<i32>;

/// The parameters `env.spread` must receive (those the module passes).
fn spread_params() -> [Val; 9] {
    [
        i64v(1),
        f64v(2.0),
        i32v(3),
        f32v(4.0),
        i64v(5),
        f64v(6.0),
        i32v(7),
        f32v(8.0),
        i64v(9),
    ]
}

/// The results `env.spread` returns, and the export `spread` passes on.
fn spread_results() -> [Val; 6] {
    [
        f32v(-1.5),
        i64v(-2),
        f64v(3.25),
        i32v(-4),
        i64v(1 << 50),
        i32v(6),
    ]
}

/// One instance of [`MODULE`] compiled with one codegen setting.
struct Setup {
    settings: (OptLevel, BoundsChecks),
    store: Store<Logged>,
    instance: Instance,
}

impl Setup {
    fn new(opt_level: OptLevel, bounds_checks: BoundsChecks) -> Setup {
        let mut config = Config::new();
        config.opt_level(opt_level).bounds_checks(bounds_checks);
        let engine = Engine::new(&config).expect("engine");
        let module = Module::new(&engine, MODULE).expect("module compiles");
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap("env", "log", |mut caller: Caller<'_, Logged>, v: i32| {
                *caller.data_mut() = Some(v);
            })
            .unwrap();
        linker
            .func_wrap("env", "twice", |v: i32| v.wrapping_mul(2))
            .unwrap();
        let spread_ty = FuncType::new(
            spread_params().iter().map(Val::ty),
            spread_results().iter().map(Val::ty),
        );
        linker
            .func_new("env", "spread", spread_ty, |_caller, params, results| {
                assert_eq!(params, spread_params());
                results.copy_from_slice(&spread_results());
                Ok(())
            })
            .unwrap();
        let mut store = Store::new(&engine, None);
        let instance = linker
            .instantiate(&mut store, &module)
            .expect("instantiates");
        Setup {
            settings: (opt_level, bounds_checks),
            store,
            instance,
        }
    }

    /// Calls export `name` through `Func::call` and returns its results.
    fn call(&mut self, name: &str, args: &[Val]) -> Vec<Val> {
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .unwrap_or_else(|| panic!("no function export {name}"));
        let ty = func.ty(&self.store);
        let mut results: Vec<Val> = ty.results.iter().map(|&t| Val::default_for(t)).collect();
        func.call(&mut self.store, args, &mut results)
            .unwrap_or_else(|e| panic!("{name} under {:?}: {e}", self.settings));
        results
    }

    fn logged(&self) -> Logged {
        *self.store.data()
    }
}

fn i32v(v: i32) -> Val {
    Val::I32(v)
}
fn i64v(v: i64) -> Val {
    Val::I64(v)
}
fn f32v(v: f32) -> Val {
    Val::F32(v.to_bits())
}
fn f64v(v: f64) -> Val {
    Val::F64(v.to_bits())
}

/// An instance of [`MODULE`] for every combination of the codegen settings.
fn all_settings() -> Vec<Setup> {
    let mut all = Vec::new();
    for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
        for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
            all.push(Setup::new(opt_level, bounds_checks));
        }
    }
    all
}

#[test]
fn control_flow_and_calls() {
    for mut inst in all_settings() {
        let s = inst.settings;
        assert_eq!(inst.call("fib", &[i32v(20)]), [i32v(6765)], "{s:?}");
        assert_eq!(inst.call("sum", &[i32v(100)]), [i64v(5050)], "{s:?}");
        for (input, expected) in [(0, 110), (1, 120), (2, 100), (7, 100)] {
            assert_eq!(
                inst.call("switch", &[i32v(input)]),
                [i32v(expected)],
                "switch {input} under {s:?}"
            );
        }
        assert_eq!(inst.call("multi_block", &[i32v(0)]), [i32v(6)], "{s:?}");
        assert_eq!(inst.call("multi_block", &[i32v(1)]), [i32v(106)], "{s:?}");
        assert_eq!(inst.call("dead", &[i32v(1)]), [i32v(7)], "{s:?}");
        assert_eq!(inst.call("dead", &[i32v(0)]), [i32v(8)], "{s:?}");
    }
}

#[test]
fn values_cross_the_trampolines() {
    for mut inst in all_settings() {
        let s = inst.settings;
        assert_eq!(
            inst.call("swap", &[i32v(-3), i64v(1 << 40)]),
            [i64v(1 << 40), i32v(-3), f64v(2.5), i64v(-7)],
            "{s:?}"
        );
        let args = [
            i32v(1),
            i64v(2),
            f32v(3.0),
            f64v(4.0),
            i32v(5),
            i64v(6),
            f32v(7.0),
            f64v(8.0),
            i32v(9),
            i64v(10),
            f32v(11.0),
            f64v(12.5),
        ];
        assert_eq!(inst.call("many", &args), [f64v(78.5)], "{s:?}");
        assert_eq!(inst.call("twice", &[i32v(21)]), [i32v(43)], "{s:?}");
        assert_eq!(inst.call("spread", &[]), spread_results(), "{s:?}");
        assert_eq!(inst.logged(), None, "{s:?}");
        assert_eq!(
            inst.call("indirect", &[i32v(1), i32v(10), i32v(3)]),
            [i32v(13)],
            "{s:?}"
        );
        assert_eq!(inst.logged(), Some(1), "{s:?}");
        assert_eq!(
            inst.call("indirect", &[i32v(2), i32v(10), i32v(3)]),
            [i32v(7)],
            "{s:?}"
        );
        assert_eq!(inst.logged(), Some(2), "{s:?}");
    }
}

#[test]
fn memory_and_globals() {
    for mut inst in all_settings() {
        let s = inst.settings;
        assert_eq!(
            inst.call("memory", &[i32v(100)]),
            [i32v(0x8081fe), i32v(-2), i32v(0x8081), i64v(0xffff_ffff)],
            "{s:?}"
        );
        assert_eq!(
            inst.call("grow", &[]),
            [i32v(1), i32v(2), i32v(-1), i32v(5)],
            "{s:?}"
        );
        assert_eq!(inst.call("bump", &[]), [i32v(42), i64v(1 << 32)], "{s:?}");
        assert_eq!(inst.call("bump", &[]), [i32v(44), i64v(1 << 32)], "{s:?}");
    }
}

#[test]
fn arithmetic_edge_cases() {
    for mut inst in all_settings() {
        let s = inst.settings;
        assert_eq!(
            inst.call("div", &[i32v(i32::MIN), i32v(-1), i64v(i64::MIN), i64v(-1)]),
            [i32v(0), i32v(0), i64v(0), i64v(i64::MIN / 2)],
            "{s:?}"
        );
        assert_eq!(
            inst.call("div", &[i32v(-7), i32v(2), i64v(-7), i64v(2)]),
            [i32v(-1), i32v(2147483644), i64v(-1), i64v(-3)],
            "{s:?}"
        );
        assert_eq!(
            inst.call("floats", &[f64v(2.5)]),
            [f64v(2.0), f64v(-0.0), i32v(0), i64v(2), i32v(-128)],
            "{s:?}"
        );
    }
}
