//! `Config::canonicalize_nans`: NaNs produced by float arithmetic become the canonical NaN,
//! whatever the CPU produced, while sign-bit operations keep their NaN payloads.

use kiln::{Config, Engine, Instance, Module, Store, Val};

const WAT: &str = r#"(module
  (func (export "div32") (param f32 f32) (result f32) (f32.div (local.get 0) (local.get 1)))
  (func (export "add64") (param f64 f64) (result f64) (f64.add (local.get 0) (local.get 1)))
  (func (export "neg32") (param f32) (result f32) (f32.neg (local.get 0)))
  (func (export "sqrt64") (param f64) (result f64) (f64.sqrt (local.get 0)))
  (func (export "demote") (param f64) (result f32) (f32.demote_f64 (local.get 0)))
  (func (export "div32x4") (param v128 v128) (result v128)
    (f32x4.div (local.get 0) (local.get 1)))
  (func (export "pmin64x2") (param v128 v128) (result v128)
    (f64x2.pmin (local.get 0) (local.get 1))))"#;

fn call(engine: &Engine, name: &str, args: &[Val]) -> Val {
    let module = Module::new(engine, WAT).unwrap();
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let func = instance.get_func(&mut store, name).unwrap();
    let mut out = [Val::I32(0)];
    func.call(&mut store, args, &mut out).unwrap();
    out[0]
}

#[test]
fn arithmetic_nans_are_canonical_when_asked() {
    let mut config = Config::new();
    config.canonicalize_nans(true);
    let engine = Engine::new(&config).unwrap();
    let zero32 = Val::F32(0);
    // 0/0: x86 produces a negative NaN; canonical is positive with only the quiet bit.
    assert_eq!(
        call(&engine, "div32", &[zero32, zero32]),
        Val::F32(0x7fc0_0000)
    );
    // A NaN operand with a payload and the sign set.
    let payload64 = Val::F64(0xfff4_0000_0000_0001);
    assert_eq!(
        call(&engine, "add64", &[payload64, Val::F64(1.0f64.to_bits())]),
        Val::F64(0x7ff8_0000_0000_0000)
    );
    assert_eq!(
        call(&engine, "sqrt64", &[Val::F64((-1.0f64).to_bits())]),
        Val::F64(0x7ff8_0000_0000_0000)
    );
    assert_eq!(call(&engine, "demote", &[payload64]), Val::F32(0x7fc0_0000));
    // Ordinary results are untouched.
    assert_eq!(
        call(
            &engine,
            "add64",
            &[Val::F64(1.5f64.to_bits()), Val::F64(2.0f64.to_bits())]
        ),
        Val::F64(3.5f64.to_bits())
    );
    // Negation only flips the sign bit, even of a NaN.
    assert_eq!(
        call(&engine, "neg32", &[Val::F32(0x7fa0_0001)]),
        Val::F32(0xffa0_0001)
    );
}

#[test]
fn without_the_option_nans_keep_what_the_cpu_produced() {
    // Default engines do not canonicalise: a NaN with a payload passes through `add`
    // quieted but otherwise as the CPU propagates it (x86 and aarch64 keep the payload).
    let engine = Engine::default();
    let payload64 = Val::F64(0x7ff4_0000_0000_0001);
    let Val::F64(bits) = call(&engine, "add64", &[payload64, Val::F64(1.0f64.to_bits())]) else {
        panic!("f64 result");
    };
    assert_eq!(bits, 0x7ffc_0000_0000_0001);
}
