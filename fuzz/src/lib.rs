//! What Kiln's fuzz targets share: the wasm-smith configuration restricted to what Kiln
//! supports, and running a module's exports in Kiln and summarising what happened.

use arbitrary::{Result, Unstructured};
use kiln::{Engine, Instance, Module, Store, Val, ValType};

/// A wasm-smith configuration of WebAssembly 2.0 without SIMD (and without imports, so a
/// module instantiates alone), with small memories and tables so that runs stay cheap.
pub fn smith_config(u: &mut Unstructured<'_>) -> Result<wasm_smith::Config> {
    let mut config: wasm_smith::Config = u.arbitrary()?;
    config.max_imports = 0;
    config.max_memories = 1;
    config.max_memory32_bytes = 16 << 16;
    config.memory64_enabled = false;
    config.max_tables = config.max_tables.min(4);
    config.max_table_elements = 1_000;
    config.max_funcs = config.max_funcs.min(50);
    config.max_instructions = config.max_instructions.min(1_000);
    // SIMD stays as arbitrary chose it; its float lanes may produce NaNs whose bits the spec
    // leaves open and that Kiln and wasmi produce differently, so wasm-smith canonicalises
    // them in the module itself (the engines run with their default settings).
    config.canonicalize_nans = config.simd_enabled;
    config.relaxed_simd_enabled = false;
    config.threads_enabled = false;
    config.tail_call_enabled = false;
    config.exceptions_enabled = false;
    config.gc_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.wide_arithmetic_enabled = false;
    config.extended_const_enabled = false;
    config.compact_imports_enabled = false;
    config.shared_everything_threads_enabled = false;
    config.export_everything = true;
    Ok(config)
}

/// A module from wasm-smith whose every loop and function burns fuel from a global, so each
/// call ends.
pub fn terminating_module(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let config = smith_config(u)?;
    let mut module = wasm_smith::Module::new(config, u)?;
    module
        .ensure_termination(2_000)
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(module.to_bytes())
}

/// How one exported call ended, in terms both engines share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Results, floats as canonical bits (any NaN compares equal to any NaN).
    Returned(Vec<Value>),
    /// A trap of this kind.
    Trapped(Trap),
}

/// A value in a comparable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer, as bits.
    Int(u64),
    /// A float's bits, or `Nan` for any NaN (the spec lets NaN bits differ).
    Float(u64),
    /// Some NaN.
    Nan,
    /// A null reference.
    Null,
    /// A non-null reference (which one is not compared).
    Ref,
    /// A `v128`, as bits (module NaNs are canonical when SIMD is on, see `smith_config`).
    V128(u128),
}

impl Value {
    /// A float of 32 bits.
    pub fn f32(bits: u32) -> Value {
        if f32::from_bits(bits).is_nan() {
            Value::Nan
        } else {
            Value::Float(bits.into())
        }
    }

    /// A float of 64 bits.
    pub fn f64(bits: u64) -> Value {
        if f64::from_bits(bits).is_nan() {
            Value::Nan
        } else {
            Value::Float(bits)
        }
    }
}

/// Trap kinds both engines distinguish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// Out-of-bounds memory access.
    Memory,
    /// Out-of-bounds table access or `call_indirect` index.
    Table,
    /// `call_indirect` to a null element.
    Null,
    /// `call_indirect` with the wrong signature.
    Signature,
    /// Integer division by zero.
    DivByZero,
    /// Integer overflow.
    Overflow,
    /// Float to integer conversion out of range.
    Conversion,
    /// `unreachable`, which is also how wasm-smith's fuel check ends a run.
    Unreachable,
    /// The stack was exhausted: engines have different stack sizes, so after this the
    /// comparison stops.
    StackOverflow,
    /// Anything else (engine-specific limits).
    Other,
}

impl From<kiln::TrapCode> for Trap {
    fn from(code: kiln::TrapCode) -> Trap {
        use kiln::TrapCode as K;
        match code {
            K::MemoryOutOfBounds | K::HeapMisaligned => Trap::Memory,
            K::TableOutOfBounds | K::IndirectCallOutOfBounds => Trap::Table,
            K::IndirectCallToNull | K::NullReference => Trap::Null,
            K::BadSignature => Trap::Signature,
            K::IntegerDivisionByZero => Trap::DivByZero,
            K::IntegerOverflow => Trap::Overflow,
            K::BadConversionToInteger => Trap::Conversion,
            K::UnreachableCodeReached => Trap::Unreachable,
            K::StackOverflow => Trap::StackOverflow,
            _ => Trap::Other,
        }
    }
}

/// Zero (or null) of `ty`, the argument every exported call gets.
pub fn kiln_zero(ty: ValType) -> Val {
    match ty {
        ValType::I32 => Val::I32(0),
        ValType::I64 => Val::I64(0),
        ValType::F32 => Val::F32(0),
        ValType::F64 => Val::F64(0),
        ValType::V128 => Val::V128(0),
        ValType::FuncRef => Val::FuncRef(None),
        ValType::ExternRef => Val::ExternRef(None),
    }
}

/// A Kiln value in comparable form.
pub fn kiln_value(val: &Val) -> Value {
    match val {
        Val::I32(v) => Value::Int(*v as u32 as u64),
        Val::I64(v) => Value::Int(*v as u64),
        Val::F32(bits) => Value::f32(*bits),
        Val::F64(bits) => Value::f64(*bits),
        Val::V128(v) => Value::V128(*v),
        Val::FuncRef(None) | Val::ExternRef(None) => Value::Null,
        Val::FuncRef(Some(_)) | Val::ExternRef(Some(_)) => Value::Ref,
    }
}

/// Calls every exported function of `instance` with zero arguments, in the byte order of
/// their names, stopping after a stack overflow. Returns each call's outcome by export name.
pub fn run_kiln_exports(
    store: &mut Store<()>,
    module: &Module,
    instance: &Instance,
) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::new();
    let names: Vec<String> = module
        .exports()
        .filter(|e| e.ty().func().is_some())
        .map(|e| e.name().to_owned())
        .collect();
    // By name, an order every engine can reproduce (wasmi lists exports sorted by name).
    let mut names = names;
    names.sort();
    for name in names {
        let func = instance.get_func(&mut *store, &name).expect("exported");
        let ty = func.ty(&*store);
        let params: Vec<Val> = ty.params.iter().map(|t| kiln_zero(*t)).collect();
        let mut results: Vec<Val> = ty.results.iter().map(|t| kiln_zero(*t)).collect();
        let outcome = match func.call(&mut *store, &params, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().map(kiln_value).collect()),
            Err(e) => match e.as_trap() {
                Some(trap) => Outcome::Trapped(trap.code().into()),
                None => Outcome::Trapped(Trap::Other),
            },
        };
        let stop = outcome == Outcome::Trapped(Trap::StackOverflow);
        outcomes.push((name, outcome));
        if stop {
            break;
        }
    }
    outcomes
}

/// A Kiln engine for fuzzing: default settings, the host target.
pub fn kiln_engine() -> Engine {
    Engine::default()
}
