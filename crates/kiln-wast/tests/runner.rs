//! The runner's own behaviour on small scripts: counting, line numbers, NaN patterns, traps,
//! rejected modules, linking and unsupported directives.

use kiln_wast::{Failure, Report, WastRunner};

fn run(text: &str) -> Report {
    WastRunner::new(kiln::Engine::default()).run("test.wast", text)
}

fn failed_lines(report: &Report) -> Vec<usize> {
    report.failures().map(|(o, _)| o.line).collect()
}

#[test]
fn counts_passes_and_failures_with_lines() {
    let report = run(r#"(module
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4))
(assert_return (invoke "missing"))
"#);
    assert_eq!((report.passed(), report.failed()), (2, 2), "{report}");
    assert_eq!(failed_lines(&report), [4, 5]);
    assert!(report.to_string().contains("test.wast:4: assert_return"));
}

#[test]
fn floats_compare_by_bits_and_nan_patterns() {
    let report = run(r#"(module
  (func (export "div") (param f32 f32) (result f32) local.get 0 local.get 1 f32.div)
  (func (export "neg") (param f64) (result f64) local.get 0 f64.neg)
  (func (export "id") (param f32) (result f32) local.get 0))
(assert_return (invoke "div" (f32.const 0) (f32.const 0)) (f32.const nan:canonical))
(assert_return (invoke "div" (f32.const 0) (f32.const 0)) (f32.const nan:arithmetic))
(assert_return (invoke "neg" (f64.const 0)) (f64.const -0))
(assert_return (invoke "neg" (f64.const 0)) (f64.const 0))
(assert_return (invoke "id" (f32.const nan:0x200000)) (f32.const nan:canonical))
(assert_return (invoke "id" (f32.const nan:0x200000)) (f32.const nan:0x200000))
"#);
    assert_eq!(failed_lines(&report), [8, 9], "{report}");
}

#[test]
fn traps_on_invoke_and_instantiation() {
    let report = run(r#"(module
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "loop") (call 1)))
(assert_trap (invoke "div" (i32.const 1) (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "div" (i32.const 1) (i32.const 0)) "integer overflow")
(assert_trap (invoke "div" (i32.const 1) (i32.const 1)) "integer divide by zero")
(assert_exhaustion (invoke "loop") "call stack exhausted")
(assert_trap (module (func $f unreachable) (start $f)) "unreachable")
(assert_uninstantiable (module (func $f unreachable) (start $f)) "unreachable")
(assert_trap (module (memory 1) (data (i32.const 65536) "a")) "out of bounds memory access")
"#);
    assert_eq!(failed_lines(&report), [5, 6], "{report}");
    assert_eq!(report.outcomes[6].directive, "assert_uninstantiable");
}

#[test]
fn rejected_modules() {
    let report = run(r#"
(assert_invalid (module (func (result i32) (i64.const 0))) "type mismatch")
(assert_malformed (module quote "(func (i32.const))") "unexpected token")
(assert_malformed (module binary "\00asm\02\00\00\00") "unknown binary version")
(assert_invalid (module (func (result i32) (i32.const 0))) "accepted, so this fails")
"#);
    assert_eq!(failed_lines(&report), [5], "{report}");
    let (_, failure) = report.failures().next().unwrap();
    assert!(matches!(failure, Failure::Accepted { .. }));
}

#[test]
fn spectest_register_and_linking() {
    let report = run(r#"
(module $a
  (import "spectest" "print_i32" (func (param i32)))
  (import "spectest" "global_i32" (global i32))
  (import "spectest" "table" (table 10 funcref))
  (import "spectest" "memory" (memory 1 2))
  (global (export "g") (mut i32) (i32.const 7))
  (func (export "get") (result i32) global.get 0))
(register "a" $a)
(module (import "a" "g" (global (mut i32))) (func (export "read") (result i32) global.get 0))
(assert_return (invoke "read") (i32.const 7))
(assert_return (invoke $a "get") (i32.const 666))
(assert_return (get $a "g") (i32.const 7))
(assert_unlinkable (module (import "a" "nope" (func))) "unknown import")
(assert_unlinkable (module (import "spectest" "memory" (memory 3))) "incompatible import type")
(thread $t (module))
"#);
    assert_eq!(failed_lines(&report), [16], "{report}");
    let (_, failure) = report.failures().next().unwrap();
    assert!(matches!(failure, Failure::Unsupported(_)), "{failure}");
}

#[test]
fn unparsable_script_is_one_failure() {
    let report = run("(module)\n(assert_return (invoke \"f\")\n");
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.failed(), 1);
}

#[test]
fn nothing_runs_against_a_stale_module() {
    let report = run(r#"(module (func (export "f") (result i32) i32.const 1))
(module (func (export "f") (result i32) i64.const 1))
(assert_return (invoke "f") (i32.const 1))
"#);
    assert_eq!(failed_lines(&report), [2, 3], "{report}");
    let (_, failure) = report.failures().nth(1).unwrap();
    assert!(
        failure.to_string().contains("current module failed"),
        "{failure}"
    );
}
