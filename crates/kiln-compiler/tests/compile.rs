//! End-to-end compiler tests: WAT modules compile for the host and for aarch64, the output
//! is deterministic and accepted by the checked loader, and the metadata is as expected.

use kiln_artifact::{
    BoundsChecks, CodegenSettings, CpuLevel, CpuLevelError, EntityIndex, FuncIndex, MemoryIndex,
    OptLevel, Proposal, TrapCode, open_checked,
};
use kiln_compiler::{CompileConfig, CompileError, compat_info, compile};

const AARCH64: &str = "aarch64-unknown-linux-gnu";
const X86_64: &str = "x86_64-unknown-linux-gnu";

/// A module that exercises every operator family.
const KITCHEN_SINK: &str = r#"
(module
  (type $binop (func (param i32 i32) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (import "env" "mem" (memory 1))
  (import "env" "g" (global $g (mut i64)))
  (import "env" "tab" (table 2 funcref))
  (global $counter (mut i32) (i32.const 0))
  (global $pi f64 (f64.const 3.14159))
  (func $add (type $binop) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $binop) (i32.sub (local.get 0) (local.get 1)))
  (elem (i32.const 0) $add $sub)
  (data (i32.const 16) "hello")
  (data (i32.const 32) "world!")

  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else
        (i32.add
          (call $fib (i32.sub (local.get $n) (i32.const 1)))
          (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  (func (export "loop") (param $n i32) (result i64)
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
        (drop) (i32.const 1) (br $c))
      (drop) (i32.const 2)))

  (func (export "switch_empty") (param i32)
    (block $a (block $b (br_table $a $b $a (local.get 0)))))

  (func (export "memory") (param $addr i32) (result f64)
    (i32.store offset=4 (local.get $addr) (i32.const 7))
    (i64.store8 (local.get $addr) (i64.const 300))
    (f64.store offset=4000000000 (local.get $addr) (f64.const 1.5))
    (drop (memory.grow (i32.const 1)))
    (drop (memory.size))
    (f64.add
      (f64.convert_i32_s (i32.load16_s offset=2 (local.get $addr)))
      (f64.promote_f32 (f32.load (local.get $addr)))))

  (func (export "globals") (result i64)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (drop (global.get $pi))
    (global.get $g))

  (func (export "indirect") (param i32 i32 i32) (result i32)
    (call $log (local.get 0))
    (call_indirect (type $binop) (local.get 1) (local.get 2) (local.get 0)))

  (func (export "arith") (param i32 i32 i64 i64 f32 f64) (result i32)
    (drop (i32.div_s (local.get 0) (local.get 1)))
    (drop (i32.div_u (local.get 0) (local.get 1)))
    (drop (i32.rem_s (local.get 0) (local.get 1)))
    (drop (i32.rem_u (local.get 0) (local.get 1)))
    (drop (i64.div_s (local.get 2) (local.get 3)))
    (drop (i64.rem_s (local.get 2) (local.get 3)))
    (drop (i32.rotl (local.get 0) (local.get 1)))
    (drop (i64.shr_s (local.get 2) (local.get 3)))
    (drop (i32.clz (local.get 0)))
    (drop (i64.ctz (local.get 2)))
    (drop (i64.popcnt (local.get 2)))
    (drop (i32.extend8_s (local.get 0)))
    (drop (i64.extend32_s (local.get 2)))
    (drop (i32.trunc_f32_s (local.get 4)))
    (drop (i64.trunc_f64_u (local.get 5)))
    (drop (i32.trunc_sat_f64_u (local.get 5)))
    (drop (i64.trunc_sat_f32_s (local.get 4)))
    (drop (f32.convert_i64_u (local.get 2)))
    (drop (f64.convert_i64_u (local.get 2)))
    (drop (f32.nearest (local.get 4)))
    (drop (f64.floor (local.get 5)))
    (drop (f64.ceil (local.get 5)))
    (drop (f32.trunc (local.get 4)))
    (drop (f64.min (local.get 5) (local.get 5)))
    (drop (f32.max (local.get 4) (local.get 4)))
    (drop (f32.copysign (local.get 4) (local.get 4)))
    (drop (f64.sqrt (local.get 5)))
    (drop (i64.reinterpret_f64 (local.get 5)))
    (drop (f32.reinterpret_i32 (local.get 0)))
    (drop (f32.demote_f64 (local.get 5)))
    (drop (f64.ne (local.get 5) (local.get 5)))
    (select (local.get 0) (local.get 1) (i32.ge_u (local.get 0) (local.get 1))))

  (func (export "multi") (param i32 i64) (result i64 i32)
    (local.get 1) (local.get 0))

  (func (export "multi_block") (param i32) (result i32)
    (i32.const 1) (i32.const 2)
    (block (param i32 i32) (result i32 i32 i32)
      (i32.const 3))
    (i32.add) (i32.add)
    (loop (param i32) (result i32)
      (br_if 0 (local.get 0)))
    (if (param i32) (result i32) (local.get 0)
      (then (i32.const 1) (i32.add))))

  (func (export "dead") (param i32) (result i32)
    (block (result i32)
      (br 0 (i32.const 1))
      (i32.add (unreachable))
      (block (loop (if (i32.const 0) (then) (else))))
      (drop))
    (return (i32.const 5))
    (unreachable))

  (func (export "traps") (param i32 i32) (result i32)
    (if (local.get 0) (then unreachable))
    (i32.div_s (local.get 0) (local.get 1)))

  (start $start)
  (func $start)
)
"#;

fn config(target: Option<&str>, threads: Option<usize>) -> CompileConfig {
    CompileConfig {
        target: target.map(str::to_owned),
        settings: CodegenSettings::default(),
        threads,
        ..CompileConfig::default()
    }
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

fn compile_ok(wat: &str, config: &CompileConfig) -> Vec<u8> {
    compile(&wasm(wat), config).unwrap_or_else(|e| panic!("compile failed: {e}"))
}

#[test]
fn kitchen_sink_compiles_for_every_target_and_setting() {
    for target in [None, Some(X86_64), Some(AARCH64)] {
        for opt_level in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
            for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
                let mut config = config(target, None);
                config.settings = CodegenSettings {
                    opt_level,
                    bounds_checks,
                    ..Default::default()
                };
                let artifact = compile_ok(KITCHEN_SINK, &config);
                let compat = compat_info(&config).unwrap();
                let (header, info) = open_checked(&artifact, &compat).unwrap();
                assert!(header.code.len > 0);
                assert_eq!(info.compiled.len(), 15);
                assert_eq!(info.trampolines.len(), info.types.len());
            }
        }
    }
}

#[test]
fn output_is_deterministic_across_runs_and_thread_counts() {
    for target in [Some(X86_64), Some(AARCH64)] {
        let one = compile_ok(KITCHEN_SINK, &config(target, Some(1)));
        let four = compile_ok(KITCHEN_SINK, &config(target, Some(4)));
        let global = compile_ok(KITCHEN_SINK, &config(target, None));
        assert!(one == four, "{target:?}: thread count changed the output");
        assert!(
            one == global,
            "{target:?}: rayon's global pool changed the output"
        );
    }
}

#[test]
fn compat_info_describes_the_target() {
    let x86 = compat_info(&config(Some(X86_64), None)).unwrap();
    assert_eq!(x86.target, X86_64);
    assert_eq!(x86.cpu_features, "popcnt,sse3,sse41,sse42,ssse3");
    assert_eq!(
        x86.settings,
        "opt_level=speed,bounds_checks=guard_pages,proposals=0x7f,nans=native,epoch=false,\
         spectre=true"
    );
    assert_eq!(x86.pointer_size, 8);

    let arm = compat_info(&config(Some(AARCH64), None)).unwrap();
    assert_eq!(arm.target, AARCH64);

    let host = compat_info(&config(None, None)).unwrap();
    assert_eq!(host.target, kiln_compiler::host_triple());
}

/// `and` of a negation: two instructions at the baseline, one `andn` (BMI1) at x86-64-v3, so
/// the level can be seen in the code, not only in the header.
const ANDN: &str = r#"(module (func (export "f") (param i32 i32) (result i32)
    (i32.and (local.get 0) (i32.xor (local.get 1) (i32.const -1)))))"#;

#[test]
fn cpu_levels_reach_the_header_and_the_code() {
    let at = |cpu: CpuLevel| CompileConfig {
        target: Some(X86_64.into()),
        cpu,
        ..CompileConfig::default()
    };
    let v3 = compat_info(&at(CpuLevel::X86_64V3)).unwrap();
    assert_eq!(
        v3.cpu_features,
        "avx,avx2,bmi1,bmi2,fma,lzcnt,popcnt,sse3,sse41,sse42,ssse3"
    );
    let v4 = compat_info(&at(CpuLevel::X86_64V4)).unwrap();
    assert!(v4.cpu_features.contains("avx512f,avx512vl,bmi1"));
    let extra = compat_info(&at(CpuLevel::Features(vec!["lzcnt".into()]))).unwrap();
    assert_eq!(extra.cpu_features, "lzcnt,popcnt,sse3,sse41,sse42,ssse3");

    let baseline = compile_ok(ANDN, &at(CpuLevel::Baseline));
    let bmi = compile_ok(ANDN, &at(CpuLevel::X86_64V3));
    let code = |artifact: &[u8]| {
        let header = kiln_artifact::Header::parse(artifact).unwrap();
        artifact[header.code.bounds(artifact.len()).unwrap()].to_vec()
    };
    // `andn` is `c4 [map 0f38] [vvvv] f2 /r` (a three-byte VEX prefix, then its opcode).
    let has_andn = |text: &[u8]| {
        text.windows(4)
            .any(|w| w[0] == 0xc4 && w[1] & 0x1f == 2 && w[3] == 0xf2)
    };
    assert!(!has_andn(&code(&baseline)), "baseline code uses andn");
    assert!(has_andn(&code(&bmi)), "x86-64-v3 code does not use andn");

    // Levels that do not fit the target are refused before anything is compiled.
    let arm_v3 = CompileConfig {
        target: Some(AARCH64.into()),
        cpu: CpuLevel::X86_64V3,
        ..CompileConfig::default()
    };
    assert!(matches!(
        compat_info(&arm_v3).unwrap_err(),
        CompileError::Cpu(CpuLevelError::WrongArchitecture { .. })
    ));
    let unknown = at(CpuLevel::Features(vec!["sse5".into()]));
    assert!(matches!(
        compile(ANDN.as_bytes(), &unknown).unwrap_err(),
        CompileError::Cpu(CpuLevelError::UnknownFeature { .. })
    ));
}

#[test]
fn unknown_targets_are_rejected() {
    for target in ["no-such-triple-at-all", "riscv64gc-unknown-linux-gnu"] {
        let err = compat_info(&config(Some(target), None)).unwrap_err();
        assert!(matches!(err, CompileError::Target(_)), "{target}: {err}");
    }
}

#[test]
fn imports_and_exports_keep_module_order() {
    let artifact = compile_ok(KITCHEN_SINK, &config(None, None));
    let (_, info) = open_checked(&artifact, &compat_info(&config(None, None)).unwrap()).unwrap();
    let imports: Vec<_> = info
        .imports
        .iter()
        .map(|i| (i.module.as_str(), i.name.as_str(), i.index.native()))
        .collect();
    assert_eq!(
        imports,
        [
            ("env", "log", EntityIndex::Function(FuncIndex(0))),
            ("env", "mem", EntityIndex::Memory(MemoryIndex(0))),
            (
                "env",
                "g",
                EntityIndex::Global(kiln_artifact::GlobalIndex(0))
            ),
            (
                "env",
                "tab",
                EntityIndex::Table(kiln_artifact::TableIndex(0))
            ),
        ]
    );
    let exports: Vec<&str> = info.exports.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        exports,
        [
            "fib",
            "loop",
            "switch",
            "switch_empty",
            "memory",
            "globals",
            "indirect",
            "arith",
            "multi",
            "multi_block",
            "dead",
            "traps"
        ]
    );
    assert_eq!(info.data.len(), 2);
    assert_eq!(info.elements.len(), 1);
    assert_eq!(info.start.as_ref().map(|s| s.native()), Some(FuncIndex(15)));
}

#[test]
fn invalid_wasm_is_rejected() {
    let err = compile(b"\0asm\x01\0\0\0garbage", &config(None, None)).unwrap_err();
    assert!(matches!(err, CompileError::Invalid(_)), "{err}");
    let ill_typed = wasm("(module (func (result i32) (i64.const 1)))");
    let err = compile(&ill_typed, &config(None, None)).unwrap_err();
    assert!(matches!(err, CompileError::Invalid(_)), "{err}");
}

#[test]
fn proposals_after_2_0_are_rejected() {
    let modules = [
        "(module (func $f (return_call $f)))",
        "(module (memory 1) (memory 1))",
        "(module (memory i64 1))",
    ];
    for wat in modules {
        let err = compile(&wasm(wat), &config(None, None)).unwrap_err();
        assert!(matches!(err, CompileError::Invalid(_)), "{wat}: {err}");
    }
}

#[test]
fn disabled_proposals_are_rejected_and_recorded() {
    let cases = [
        (
            Proposal::Simd,
            "(module (func (drop (v128.const i32x4 0 0 0 0))))",
        ),
        (
            Proposal::BulkMemory,
            "(module (memory 1) (func (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))",
        ),
        (
            Proposal::ReferenceTypes,
            "(module (table 1 externref) (func (drop (table.get 0 (i32.const 0)))))",
        ),
        (
            Proposal::SignExtension,
            "(module (func (drop (i32.extend8_s (i32.const 0)))))",
        ),
        (
            Proposal::MultiValue,
            "(module (func (result i32 i32) (i32.const 0) (i32.const 1)))",
        ),
    ];
    for (proposal, wat) in cases {
        let mut config = config(None, None);
        config.settings.proposals.set(proposal, false);
        let err = compile(&wasm(wat), &config).unwrap_err();
        assert!(matches!(err, CompileError::Invalid(_)), "{wat}: {err}");
        // The set is part of the settings an artifact records.
        let compat = compat_info(&config).unwrap();
        assert_ne!(
            compat.settings,
            compat_info(&self::config(None, None)).unwrap().settings
        );
    }
    // Bulk memory and reference types compile when enabled (the default).
    for (_, wat) in &cases[1..] {
        compile(&wasm(wat), &config(None, None)).unwrap();
    }
}

/// The trap codes recorded for the body of defined function `index`.
fn trap_codes(artifact: &[u8], config: &CompileConfig, index: usize) -> Vec<TrapCode> {
    let (_, info) = open_checked(artifact, &compat_info(config).unwrap()).unwrap();
    let body = info.compiled.as_slice()[index].body.native();
    info.traps
        .iter()
        .filter(|t| t.code_offset >= body.start && t.code_offset < body.start + body.len)
        .map(|t| t.code)
        .collect()
}

#[test]
fn trap_records_carry_kiln_codes_and_wasm_offsets() {
    let wat = r#"(module
      (func (param i32 i32) (result i32)
        (if (local.get 0) (then unreachable))
        (i32.div_s (local.get 0) (local.get 1)))
      (func (param i32)
        (drop (local.get 0))
        (unreachable)))"#;
    let bytes = wasm(wat);
    for target in [X86_64, AARCH64] {
        let config = config(Some(target), None);
        let artifact = compile_ok(wat, &config);
        let codes = trap_codes(&artifact, &config, 0);
        for expected in [
            TrapCode::UnreachableCodeReached,
            TrapCode::IntegerDivisionByZero,
            TrapCode::IntegerOverflow,
        ] {
            assert!(
                codes.contains(&expected),
                "{target}: {expected:?} in {codes:?}"
            );
        }
        let (_, info) = open_checked(&artifact, &compat_info(&config).unwrap()).unwrap();
        let body = info.compiled.as_slice()[1].body.native();
        let unreachable = info
            .traps
            .iter()
            .find(|t| t.code_offset >= body.start)
            .unwrap();
        assert_eq!(unreachable.code, TrapCode::UnreachableCodeReached);
        let at = unreachable.wasm_offset as usize;
        assert_eq!(
            bytes[at], 0x00,
            "{target}: wasm offset points at `unreachable`"
        );
    }
}

#[test]
fn non_leaf_functions_check_the_stack_limit() {
    let wat = r#"(module
      (func $f (param i32) (result i32)
        (if (result i32) (local.get 0)
          (then (call $f (i32.sub (local.get 0) (i32.const 1))))
          (else (i32.const 0)))))"#;
    for target in [X86_64, AARCH64] {
        let config = config(Some(target), None);
        let codes = trap_codes(&compile_ok(wat, &config), &config, 0);
        assert!(
            codes.contains(&TrapCode::StackOverflow),
            "{target}: {codes:?}"
        );
    }
}

#[test]
fn memory_and_call_indirect_traps_are_recorded() {
    let wat = r#"(module
      (type $t (func))
      (table 1 funcref)
      (memory 1)
      (func (param i32) (result i32)
        (call_indirect (type $t) (local.get 0))
        (i32.load (local.get 0))))"#;
    for bounds_checks in [BoundsChecks::GuardPages, BoundsChecks::Explicit] {
        let mut config = config(None, None);
        config.settings.bounds_checks = bounds_checks;
        let artifact = compile_ok(wat, &config);
        let codes = trap_codes(&artifact, &config, 0);
        for expected in [
            TrapCode::MemoryOutOfBounds,
            TrapCode::IndirectCallOutOfBounds,
            TrapCode::IndirectCallToNull,
            TrapCode::BadSignature,
        ] {
            assert!(codes.contains(&expected), "{expected:?} in {codes:?}");
        }
    }
}

#[test]
fn float_to_int_conversions_record_both_trap_codes() {
    let wat = r#"(module (func (param f64) (result i32) (i32.trunc_f64_s (local.get 0))))"#;
    for target in [X86_64, AARCH64] {
        let config = config(Some(target), None);
        let artifact = compile_ok(wat, &config);
        let codes = trap_codes(&artifact, &config, 0);
        assert!(
            codes.contains(&TrapCode::BadConversionToInteger),
            "{target}: {codes:?}"
        );
        assert!(
            codes.contains(&TrapCode::IntegerOverflow),
            "{target}: {codes:?}"
        );
    }
}

#[test]
fn names_come_from_the_name_section() {
    let wat = r#"(module $m (func $b) (func $a) (func))"#;
    let artifact = compile_ok(wat, &config(None, None));
    let (_, info) = open_checked(&artifact, &compat_info(&config(None, None)).unwrap()).unwrap();
    assert_eq!(info.name.as_deref(), Some("m"));
    assert_eq!(info.func_name(FuncIndex(0)), Some("b"));
    assert_eq!(info.func_name(FuncIndex(1)), Some("a"));
    assert_eq!(info.func_name(FuncIndex(2)), None);
}

#[test]
fn empty_module_compiles() {
    let artifact = compile_ok("(module)", &config(None, None));
    let (_, info) = open_checked(&artifact, &compat_info(&config(None, None)).unwrap()).unwrap();
    assert!(info.compiled.is_empty());
}
