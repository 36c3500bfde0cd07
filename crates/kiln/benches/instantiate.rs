//! Instantiation alone, by module shape: how the cost of `Linker::instantiate` (with a fresh
//! `Store`, dropped after) grows with the number of functions, of table elements and with
//! the bytes of active data segments. Issue 9 asks for flat time from the small module to
//! the large one.
//!
//! Modules (built with wasm-encoder, compiled once in setup): `small` (10 functions, no
//! data), `functions` (20,000 functions, no data), `data` (10 functions, 1 MiB of data in 16
//! segments), `large` (20,000 functions and 1 MiB of data). Every 4th function is exported,
//! and one active element segment puts every function in the table, as a C program's
//! indirect-call table holds every function whose address is taken. `large (checked load)`
//! instantiates `large` after a checked load of its artifact from a file (what `kiln run`
//! does on a cache hit), which trusts no list in the metadata.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kiln::{Engine, Linker, Module, Store};

const DATA_SEGMENTS: u32 = 16;

fn module(functions: u32, data_bytes: u32) -> Vec<u8> {
    use wasm_encoder::*;
    let mut m = wasm_encoder::Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    for _ in 0..functions {
        funcs.function(0);
    }
    m.section(&funcs);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        minimum: u64::from(functions.max(16)),
        maximum: None,
        table64: false,
        shared: false,
    });
    m.section(&tables);
    let mut memories = MemorySection::new();
    let pages = (u64::from(data_bytes) >> 16) + 1;
    memories.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    for i in (0..functions).step_by(4) {
        exports.export(&format!("f{i}"), ExportKind::Func, i);
    }
    m.section(&exports);
    let mut elements = ElementSection::new();
    let all: Vec<u32> = (0..functions).collect();
    elements.active(
        Some(0),
        &ConstExpr::i32_const(0),
        Elements::Functions(all.into()),
    );
    m.section(&elements);
    let mut code = CodeSection::new();
    for i in 0..functions {
        let mut f = Function::new([]);
        f.instructions()
            .local_get(0)
            .i32_const(i as i32)
            .i32_add()
            .end();
        code.function(&f);
    }
    m.section(&code);
    let mut data = DataSection::new();
    if data_bytes > 0 {
        let per_segment = data_bytes / DATA_SEGMENTS;
        for s in 0..DATA_SEGMENTS {
            let bytes: Vec<u8> = (0..per_segment).map(|b| (b ^ s) as u8).collect();
            data.active(0, &ConstExpr::i32_const((s * per_segment) as i32), bytes);
        }
    }
    m.section(&data);
    m.finish()
}

fn benches(c: &mut Criterion) {
    let engine = Engine::default();
    let cases = [
        ("small", 10, 0),
        ("functions", 20_000, 0),
        ("data", 10, 1 << 20),
        ("large", 20_000, 1 << 20),
    ];
    let mut group = c.benchmark_group("instantiate");
    for (label, functions, data_bytes) in cases {
        let wasm = module(functions, data_bytes);
        let module = Module::new(&engine, &wasm).expect("compiles");
        eprintln!(
            "{label}: {functions} functions, {data_bytes} bytes of data, {} bytes of wasm",
            wasm.len()
        );
        let linker = Linker::new(&engine);
        // The instance works: f0 is the first function.
        {
            let mut store = Store::new(&engine, ());
            let instance = linker.instantiate(&mut store, &module).unwrap();
            let f0 = instance
                .get_typed_func::<i32, i32>(&mut store, "f0")
                .unwrap();
            assert_eq!(f0.call(&mut store, 5).unwrap(), 5);
        }
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut store = Store::new(&engine, ());
                black_box(linker.instantiate(&mut store, &module).unwrap());
            })
        });
        if label == "large" {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("large.kiln");
            std::fs::write(&path, module.serialize().unwrap()).unwrap();
            // SAFETY: the file holds an artifact this engine just serialized, unchanged
            // while loaded; the checked load verifies it as well.
            let checked = unsafe { Module::deserialize_file(&engine, &path) }.unwrap();
            group.bench_function(BenchmarkId::from_parameter("large (checked load)"), |b| {
                b.iter(|| {
                    let mut store = Store::new(&engine, ());
                    black_box(linker.instantiate(&mut store, &checked).unwrap());
                })
            });
        }
    }
    group.finish();
}

criterion_group!(instantiate, benches);
criterion_main!(instantiate);
