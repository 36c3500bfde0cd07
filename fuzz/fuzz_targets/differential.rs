//! Fuzz target `differential`: modules from wasm-smith (WebAssembly 2.0 with SIMD, made to
//! terminate) run in Kiln and in the wasmi interpreter. Every exported function is called
//! with zero arguments, in the byte order of the names; results (NaNs compared as NaNs), trap kinds, the
//! final bytes of the exported memories and the values of exported globals must agree.
//! After a stack overflow (the engines' stacks differ) the comparison stops.

#![no_main]

use arbitrary::Unstructured;
use kiln_fuzz::{Outcome, Trap, Value, kiln_engine, kiln_value, run_kiln_exports};
use libfuzzer_sys::fuzz_target;

fn wasmi_trap(e: &wasmi::Error) -> Trap {
    use wasmi::TrapCode as W;
    match e.as_trap_code() {
        Some(W::MemoryOutOfBounds) => Trap::Memory,
        Some(W::TableOutOfBounds) => Trap::Table,
        Some(W::IndirectCallToNull) => Trap::Null,
        Some(W::BadSignature) => Trap::Signature,
        Some(W::IntegerDivisionByZero) => Trap::DivByZero,
        Some(W::IntegerOverflow) => Trap::Overflow,
        Some(W::BadConversionToInteger) => Trap::Conversion,
        Some(W::UnreachableCodeReached) => Trap::Unreachable,
        Some(W::StackOverflow) => Trap::StackOverflow,
        _ => Trap::Other,
    }
}

fn wasmi_zero(ty: wasmi::ValType) -> wasmi::Val {
    wasmi::Val::default_for_ty(ty)
}

fn wasmi_value(val: &wasmi::Val) -> Value {
    match val {
        wasmi::Val::I32(v) => Value::Int(*v as u32 as u64),
        wasmi::Val::I64(v) => Value::Int(*v as u64),
        wasmi::Val::F32(v) => Value::f32(v.to_bits()),
        wasmi::Val::F64(v) => Value::f64(v.to_bits()),
        wasmi::Val::V128(v) => Value::V128(v.as_u128()),
        wasmi::Val::FuncRef(r) => {
            if r.is_null() {
                Value::Null
            } else {
                Value::Ref
            }
        }
        wasmi::Val::ExternRef(r) => {
            if r.is_null() {
                Value::Null
            } else {
                Value::Ref
            }
        }
    }
}

/// Everything observable after running the exports.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    calls: Vec<(String, Outcome)>,
    memories: Vec<(String, Vec<u8>)>,
    globals: Vec<(String, Value)>,
    stopped: bool,
}

fn run_wasmi(wasm: &[u8]) -> Option<Observed> {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, wasm).ok()?;
    let mut store = wasmi::Store::new(&engine, ());
    let linker = wasmi::Linker::<()>::new(&engine);
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => instance,
        Err(e) => {
            return Some(Observed {
                calls: vec![("<instantiate>".into(), Outcome::Trapped(wasmi_trap(&e)))],
                memories: Vec::new(),
                globals: Vec::new(),
                stopped: true,
            });
        }
    };
    let mut calls = Vec::new();
    let mut stopped = false;
    let mut exports: Vec<(String, wasmi::ExternType)> = module
        .exports()
        .map(|e| (e.name().to_owned(), e.ty().clone()))
        .collect();
    // The order in which `run_kiln_exports` calls them.
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, ty) in &exports {
        let wasmi::ExternType::Func(fty) = ty else {
            continue;
        };
        let func = instance.get_func(&store, name).unwrap();
        let params: Vec<wasmi::Val> = fty.params().iter().map(|t| wasmi_zero(*t)).collect();
        let mut results: Vec<wasmi::Val> = fty.results().iter().map(|t| wasmi_zero(*t)).collect();
        let outcome = match func.call(&mut store, &params, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().map(wasmi_value).collect()),
            Err(e) => Outcome::Trapped(wasmi_trap(&e)),
        };
        let stop = outcome == Outcome::Trapped(Trap::StackOverflow);
        calls.push((name.clone(), outcome));
        if stop {
            stopped = true;
            break;
        }
    }
    let mut memories = Vec::new();
    let mut globals = Vec::new();
    for (name, ty) in &exports {
        match ty {
            wasmi::ExternType::Memory(_) => {
                let memory = instance.get_memory(&store, name).unwrap();
                memories.push((name.clone(), memory.data(&store).to_vec()));
            }
            wasmi::ExternType::Global(_) => {
                let global = instance.get_global(&store, name).unwrap();
                globals.push((name.clone(), wasmi_value(&global.get(&store))));
            }
            _ => {}
        }
    }
    Some(Observed {
        calls,
        memories,
        globals,
        stopped,
    })
}

fn run_kiln(wasm: &[u8]) -> Observed {
    let engine = kiln_engine();
    let module = kiln::Module::new(&engine, wasm).expect("wasmi accepted it, so must Kiln");
    let mut store = kiln::Store::new(&engine, ());
    let instance = match kiln::Instance::new(&mut store, &module, &[]) {
        Ok(instance) => instance,
        Err(e) => {
            let trap = e.as_trap().map_or(Trap::Other, |t| t.code().into());
            return Observed {
                calls: vec![("<instantiate>".into(), Outcome::Trapped(trap))],
                memories: Vec::new(),
                globals: Vec::new(),
                stopped: true,
            };
        }
    };
    let calls = run_kiln_exports(&mut store, &module, &instance);
    let stopped = calls
        .last()
        .is_some_and(|(_, o)| *o == Outcome::Trapped(Trap::StackOverflow));
    let mut memories = Vec::new();
    let mut globals = Vec::new();
    for export in module.exports() {
        match export.ty() {
            kiln::ExternType::Memory(_) => {
                let memory = instance.get_memory(&mut store, export.name()).unwrap();
                memories.push((export.name().to_owned(), memory.data(&store).to_vec()));
            }
            kiln::ExternType::Global(_) => {
                let global = instance.get_global(&mut store, export.name()).unwrap();
                globals.push((
                    export.name().to_owned(),
                    kiln_value(&global.get(&mut store)),
                ));
            }
            _ => {}
        }
    }
    // Name order, as on the wasmi side.
    memories.sort_by(|a, b| a.0.cmp(&b.0));
    globals.sort_by(|a, b| a.0.cmp(&b.0));
    Observed {
        calls,
        memories,
        globals,
        stopped,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(wasm) = kiln_fuzz::terminating_module(&mut u) else {
        return;
    };
    // `KILN_FUZZ_DUMP=file.wasm` keeps the module a replayed input made.
    if let Ok(path) = std::env::var("KILN_FUZZ_DUMP") {
        std::fs::write(path, &wasm).expect("the module is written");
    }
    let Some(expected) = run_wasmi(&wasm) else {
        return;
    };
    let actual = run_kiln(&wasm);
    if expected.stopped || actual.stopped {
        // Compare only the calls before the first stack overflow of either engine.
        let n = expected
            .calls
            .len()
            .min(actual.calls.len())
            .saturating_sub(1);
        assert_eq!(
            expected.calls[..n],
            actual.calls[..n],
            "calls before a stack overflow"
        );
        return;
    }
    assert_eq!(expected.calls, actual.calls, "call outcomes differ");
    assert_eq!(expected.globals, actual.globals, "exported globals differ");
    assert!(
        expected.memories == actual.memories,
        "exported memories differ"
    );
});
