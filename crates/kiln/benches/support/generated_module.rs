//! The synthetic modules the load and cache benchmarks measure: many small functions of
//! arithmetic, sized by their wasm bytes, so that a bench can ask for 1 KiB or 30 MiB.

/// Arithmetic steps per generated function body.
const BODY_OPS: u32 = 24;
/// Measured size of one generated function in the module (body, function-section entry and
/// its share of the exports), to size the modules.
const BYTES_PER_FUNC: usize = 296;

/// A module of about `target` bytes: functions `(i32 i32) -> i32` with a short chain of
/// arithmetic each, every fourth exported, and a small memory.
pub fn module_of_size(target: usize) -> Vec<u8> {
    use wasm_encoder::*;
    let n = (target / BYTES_PER_FUNC).max(1) as u32;
    let mut m = wasm_encoder::Module::new();
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    for _ in 0..n {
        funcs.function(0);
    }
    m.section(&funcs);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    for i in (0..n).step_by(4) {
        exports.export(&format!("f{i}"), ExportKind::Func, i);
    }
    m.section(&exports);
    let mut code = CodeSection::new();
    for i in 0..n {
        let mut f = Function::new([]);
        let mut ins = f.instructions();
        for k in 0..BODY_OPS {
            ins.local_get(0).i32_const((i * 31 + k) as i32);
            match k % 4 {
                0 => ins.i32_add(),
                1 => ins.i32_xor(),
                2 => ins.i32_mul(),
                _ => ins.i32_rotl(),
            };
            ins.local_get(1).i32_add().local_set(0);
        }
        ins.local_get(0).end();
        code.function(&f);
    }
    m.section(&code);
    m.finish()
}
