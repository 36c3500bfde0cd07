//! Code placement as a variable of the execution comparison.
//!
//! On this machine kind, where a hot loop sits relative to 64-byte lines changes its speed
//! by up to 1.37x with the same instructions: shifting Kiln's `matmul` body byte by byte
//! over 64 positions gave 0.98 to 1.37 times Wasmtime's time. One build of each engine is one
//! draw from that lottery, so a single ratio can say more about where a loop landed than
//! about either compiler. [`variant`] rewrites a module so that every function body starts
//! with `stores` extra machine instructions that never run, which moves all of its code in
//! both engines (by 7 to 10 bytes per store, not always the same in each); timing a series
//! of these variants compares the engines over many placements instead of one.

use wasm_encoder::reencode::{self, Reencode};

/// `wasm` with `stores + 1` new mutable `i32` globals, all 0, and every function body
/// starting with `if (global.get $first) { global.set $next (i32.const 0) × stores }`. The
/// branch is never taken, but neither engine can know that, so both emit the stores inline
/// after the test, ahead of the function's own code. Each store has its own global: stores
/// to one would be merged into one.
pub fn variant(wasm: &[u8], stores: u32) -> Vec<u8> {
    let mut padder = Padder {
        stores,
        global: count_globals(wasm),
        added: false,
    };
    let mut module = wasm_encoder::Module::new();
    padder
        .parse_core_module(&mut module, wasmparser::Parser::new(0), wasm)
        .expect("the module re-encodes");
    assert!(
        padder.added,
        "placement variants need a module with a global section"
    );
    module.finish()
}

/// The number of globals, imported and defined: the index of a global appended to them.
fn count_globals(wasm: &[u8]) -> u32 {
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.expect("the module parses") {
            wasmparser::Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.expect("the import section parses");
                    if matches!(import.ty, wasmparser::TypeRef::Global(_)) {
                        count += 1;
                    }
                }
            }
            wasmparser::Payload::GlobalSection(globals) => count += globals.count(),
            _ => {}
        }
    }
    count
}

struct Padder {
    stores: u32,
    /// Index of the first global this adds.
    global: u32,
    added: bool,
}

impl Reencode for Padder {
    type Error = std::convert::Infallible;

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_global_section(self, globals, section)?;
        for _ in 0..=self.stores {
            globals.global(
                wasm_encoder::GlobalType {
                    val_type: wasm_encoder::ValType::I32,
                    mutable: true,
                    shared: false,
                },
                &wasm_encoder::ConstExpr::i32_const(0),
            );
        }
        self.added = true;
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        use wasm_encoder::Instruction;
        let mut function = self.new_function_with_parsed_locals(&body)?;
        if self.stores > 0 {
            function.instruction(&Instruction::GlobalGet(self.global));
            function.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
            for store in 1..=self.stores {
                function.instruction(&Instruction::I32Const(0));
                function.instruction(&Instruction::GlobalSet(self.global + store));
            }
            function.instruction(&Instruction::End);
        }
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            function.instruction(&self.parse_instruction(&mut reader)?);
        }
        code.function(&function);
        Ok(())
    }
}
