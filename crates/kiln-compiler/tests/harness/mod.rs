//! A minimal hand-built instance for running compiled code in tests (x86_64 Linux hosts):
//! it maps the text section executable, lays out a `VMContext` as `kiln_artifact::vmoffsets`
//! says, and calls exports through their array-to-wasm trampolines.
//!
//! Supported: imported functions (given as host functions), one defined memory, defined
//! tables, defined globals with constant initialisers, active data and element segments
//! and the start function. There is no trap handling: a trap kills the test process.

#![allow(dead_code)]

use std::cell::Cell;

use kiln_artifact::vmoffsets::{func_ref, function_import, memory_definition, table_definition};
use kiln_artifact::{
    ArchivedConstExpr, ArchivedDataKind, ArchivedElemItems, ArchivedElemKind, ArchivedEntityIndex,
    ArchivedModuleInfo, CodegenSettings, CompatInfo, FuncIndex, WASM_PAGE_SIZE,
};
use kiln_compiler::{CompileConfig, CompileError, compat_info, compile};

/// One 16-byte `ValRaw` slot.
pub type ValRaw = u128;

/// A host function with the array-call convention.
pub type HostFn = unsafe extern "C" fn(*mut u8, *mut u8, *mut ValRaw, usize);

/// Pages reserved for a defined memory: the base never moves, so growth stops here.
pub const RESERVED_PAGES: u64 = 1024;

thread_local! {
    /// Offset of the defined memory's `VMMemoryDefinition` in the running instance's vmctx.
    static MEMORY_DEFINITION: Cell<usize> = const { Cell::new(0) };
    /// The running instance's maximum memory size in pages.
    static MAX_PAGES: Cell<u64> = const { Cell::new(0) };
}

/// `MemoryGrow` for the single defined memory, whose buffer holds [`RESERVED_PAGES`].
unsafe extern "C" fn memory_grow(vmctx: *mut u8, index: u32, delta: u64) -> u64 {
    assert_eq!(index, 0);
    let at = MEMORY_DEFINITION.with(Cell::get) + memory_definition::CURRENT_LENGTH as usize;
    // SAFETY: `vmctx` is a harness instance context, which holds the definition at `at`.
    let length = unsafe { &mut *vmctx.add(at).cast::<u64>() };
    let old = *length / WASM_PAGE_SIZE;
    let max = MAX_PAGES.with(Cell::get);
    match old.checked_add(delta) {
        Some(new) if new <= max => {
            *length = new * WASM_PAGE_SIZE;
            old
        }
        _ => u64::MAX,
    }
}

/// Why a module cannot be instantiated by the harness.
#[derive(Debug)]
pub enum Unsupported {
    /// It imports something other than the given host functions.
    Imports,
    /// It has something the harness does not model.
    Feature(&'static str),
    /// A segment does not fit (instantiation would trap).
    SegmentOutOfBounds,
}

/// A running instance.
pub struct Instance {
    artifact: Vec<u8>,
    compat: CompatInfo,
    _code: memmap2::Mmap,
    text: *const u8,
    vmctx: Vec<ValRaw>,
    memory: Vec<u8>,
    max_pages: u64,
    memory_definition: usize,
    _tables: Vec<Vec<usize>>,
    _store: Box<[usize; 2]>,
    _builtins: Box<[usize; 1]>,
    _hosts: Vec<[usize; 2]>,
}

fn put(vmctx: &mut [ValRaw], offset: u32, value: u64) {
    assert_eq!(offset % 8, 0);
    // SAFETY: a `u128` buffer viewed as twice as many `u64`s; the index below is checked.
    let words = unsafe {
        std::slice::from_raw_parts_mut(vmctx.as_mut_ptr().cast::<u64>(), vmctx.len() * 2)
    };
    words[offset as usize / 8] = value;
}

fn const_i32(e: &ArchivedConstExpr) -> Result<u32, Unsupported> {
    match e {
        ArchivedConstExpr::I32(v) => Ok(v.to_native() as u32),
        _ => Err(Unsupported::Feature("non-constant offset")),
    }
}

impl Instance {
    /// Compiles `wasm` for the host and instantiates it; imports must be exactly the
    /// functions of `hosts`, in order.
    pub fn new(
        wasm: &[u8],
        settings: CodegenSettings,
        hosts: &[HostFn],
    ) -> Result<Instance, Unsupported> {
        let config = CompileConfig {
            settings,
            ..CompileConfig::default()
        };
        let artifact = match compile(wasm, &config) {
            Ok(artifact) => artifact,
            Err(CompileError::Invalid(_) | CompileError::Unsupported(_)) => {
                return Err(Unsupported::Feature("rejected by the compiler"));
            }
            Err(e) => panic!("compilation failed: {e}"),
        };
        let compat = compat_info(&config).unwrap();
        let (header, info) = kiln_artifact::open_checked(&artifact, &compat).unwrap();
        if info.imports.len() != hosts.len()
            || info.num_imported_funcs.to_native() as usize != hosts.len()
        {
            return Err(Unsupported::Imports);
        }
        if info.memories.len() > 1 {
            return Err(Unsupported::Feature("several memories"));
        }
        let code_range = header.code.bounds(artifact.len()).unwrap();
        let mut code = memmap2::MmapMut::map_anon(code_range.len().max(1)).unwrap();
        code[..code_range.len()].copy_from_slice(&artifact[code_range]);
        let code = code.make_exec().unwrap();
        let text = code.as_ptr();

        let offsets = info.vmoffsets(8);
        let mut vmctx = vec![0u128; offsets.size() as usize / 16];
        let vmctx_ptr = vmctx.as_mut_ptr() as u64;
        let store = Box::new([0usize; 2]); // stack limit 0: never overflows
        let builtins = Box::new([memory_grow as *const () as usize]);
        put(&mut vmctx, offsets.store_context(), store.as_ptr() as u64);
        put(&mut vmctx, offsets.builtins(), builtins.as_ptr() as u64);

        // Imported host functions: a `VMHostFuncContext` each, called through the
        // wasm-to-array trampoline of the import's type.
        let hosts: Vec<[usize; 2]> = hosts.iter().map(|&h| [h as usize, 0]).collect();
        for (i, host) in hosts.iter().enumerate() {
            let ty = info.functions[FuncIndex(i as u32)].ty.native();
            let trampoline = info.trampolines[ty].wasm_to_array.start.to_native();
            let import = offsets.imported_function(i as u32);
            let code = text as u64 + u64::from(trampoline);
            put(&mut vmctx, import + function_import::WASM_CALL, code);
            put(
                &mut vmctx,
                import + function_import::VMCTX,
                host.as_ptr() as u64,
            );
        }

        // The memory: its maximum (up to the reservation) is allocated up front.
        let (mut memory, mut max_pages, mut memory_definition) = (Vec::new(), 0, 0);
        if let Some(m) = info.memories.as_slice().first() {
            let min = m.min.to_native();
            max_pages = m
                .max
                .as_ref()
                .map_or(RESERVED_PAGES, |m| m.to_native())
                .min(RESERVED_PAGES);
            if min > max_pages {
                return Err(Unsupported::Feature("memory larger than the reservation"));
            }
            memory = vec![0u8; (max_pages * WASM_PAGE_SIZE).max(1) as usize];
            memory_definition = offsets.defined_memory(0) as usize;
            let def = offsets.defined_memory(0);
            put(
                &mut vmctx,
                def + memory_definition::BASE,
                memory.as_ptr() as u64,
            );
            put(
                &mut vmctx,
                def + memory_definition::CURRENT_LENGTH,
                min * WASM_PAGE_SIZE,
            );
            for d in info.data.as_slice() {
                let ArchivedDataKind::Active { offset, .. } = &d.kind else {
                    continue;
                };
                let start = const_i32(offset)? as u64;
                let bytes = d.bytes.native();
                if start + u64::from(bytes.len) > min * WASM_PAGE_SIZE {
                    return Err(Unsupported::SegmentOutOfBounds);
                }
                let data_range = header.data.bounds(artifact.len()).unwrap();
                let src = &artifact[data_range][bytes.start as usize..][..bytes.len as usize];
                memory[start as usize..][..src.len()].copy_from_slice(src);
            }
        }

        // Globals.
        for (i, global) in info.globals.as_slice().iter().enumerate() {
            let value = match global.init.as_ref() {
                Some(ArchivedConstExpr::I32(v)) => u64::from(v.to_native() as u32),
                Some(ArchivedConstExpr::I64(v)) => v.to_native() as u64,
                Some(ArchivedConstExpr::F32(v)) => u64::from(v.to_native()),
                Some(ArchivedConstExpr::F64(v)) => v.to_native(),
                _ => return Err(Unsupported::Feature("global initialiser")),
            };
            put(&mut vmctx, offsets.defined_global(i as u32), value);
        }

        // Function references of every function.
        for (f, decl) in info.functions.iter() {
            let at = offsets.func_ref(f.0);
            let (code, callee_vmctx) = match info.defined_func_index(f) {
                Some(d) => (info.compiled[d].body.start.to_native(), vmctx_ptr),
                None => (
                    info.trampolines[decl.ty.native()]
                        .wasm_to_array
                        .start
                        .to_native(),
                    hosts[f.0 as usize].as_ptr() as u64,
                ),
            };
            put(
                &mut vmctx,
                at + func_ref::WASM_CALL,
                text as u64 + u64::from(code),
            );
            put(&mut vmctx, at + func_ref::VMCTX, callee_vmctx);
            put(
                &mut vmctx,
                at + func_ref::TYPE_ID,
                decl.signature.native().0,
            );
        }

        // Tables, filled from the element segments.
        let mut tables: Vec<Vec<usize>> = info
            .tables
            .as_slice()
            .iter()
            .map(|t| vec![0usize; t.min.to_native() as usize])
            .collect();
        for segment in info.elements.as_slice() {
            let ArchivedElemKind::Active { table, offset } = &segment.kind else {
                continue;
            };
            let ArchivedElemItems::Functions(fs) = &segment.items else {
                return Err(Unsupported::Feature("element expressions"));
            };
            let table = &mut tables[table.native().0 as usize];
            let start = const_i32(offset)? as usize;
            if start + fs.len() > table.len() {
                return Err(Unsupported::SegmentOutOfBounds);
            }
            for (i, f) in fs.iter().enumerate() {
                table[start + i] = vmctx_ptr as usize + offsets.func_ref(f.native().0) as usize;
            }
        }
        for (i, table) in tables.iter().enumerate() {
            let def = offsets.defined_table(i as u32);
            put(
                &mut vmctx,
                def + table_definition::BASE,
                table.as_ptr() as u64,
            );
            put(
                &mut vmctx,
                def + table_definition::CURRENT_ELEMENTS,
                table.len() as u64,
            );
        }
        let start = info.start.as_ref().map(|s| s.native());

        let mut instance = Instance {
            artifact,
            compat,
            _code: code,
            text,
            vmctx,
            memory,
            max_pages,
            memory_definition,
            _tables: tables,
            _store: store,
            _builtins: builtins,
            _hosts: hosts,
        };
        if let Some(start) = start {
            instance.call_func(start, &[]);
        }
        Ok(instance)
    }

    fn info(&self) -> &ArchivedModuleInfo {
        kiln_artifact::open_checked(&self.artifact, &self.compat)
            .unwrap()
            .1
    }

    /// The function exported as `name`, if any.
    pub fn export(&self, name: &str) -> Option<FuncIndex> {
        let info = self.info();
        let (_, export) = info.exports.iter().find(|(k, _)| k.as_str() == name)?;
        match export {
            ArchivedEntityIndex::Function(f) => Some(f.native()),
            _ => None,
        }
    }

    /// Calls export `name` through its type's array-to-wasm trampoline.
    pub fn call(&mut self, name: &str, args: &[ValRaw]) -> Vec<ValRaw> {
        let f = self
            .export(name)
            .unwrap_or_else(|| panic!("no function export {name}"));
        self.call_func(f, args)
    }

    /// Calls function `f` (which must be defined) through its array-to-wasm trampoline.
    pub fn call_func(&mut self, f: FuncIndex, args: &[ValRaw]) -> Vec<ValRaw> {
        let info = self.info();
        let ty = info.functions[f].ty.native();
        let (n, m) = (info.types[ty].params.len(), info.types[ty].results.len());
        assert_eq!(args.len(), n);
        let mut values = vec![0u128; n.max(m)];
        values[..n].copy_from_slice(args);
        let defined = info.defined_func_index(f).expect("a defined function");
        let trampoline = info.trampolines[ty].array_to_wasm.start.to_native() as usize;
        let body = info.compiled[defined].body.start.to_native() as usize;
        MEMORY_DEFINITION.with(|m| m.set(self.memory_definition));
        MAX_PAGES.with(|m| m.set(self.max_pages));
        type ArrayToWasm = unsafe extern "C" fn(*mut u8, *mut u8, *const u8, *mut ValRaw);
        // SAFETY: the text section is mapped executable and `trampoline` is the start of the
        // array-to-wasm trampoline of `f`'s type, whose signature is `ArrayToWasm`.
        let entry: ArrayToWasm = unsafe { std::mem::transmute(self.text.add(trampoline)) };
        let body = self.text.wrapping_add(body);
        let vmctx = self.vmctx.as_mut_ptr().cast::<u8>();
        // SAFETY: the instance context is fully built, `values` has max(n, m) slots, and
        // callers only take paths that do not trap.
        unsafe { entry(vmctx, vmctx, body, values.as_mut_ptr()) };
        values.truncate(m);
        values
    }

    /// The type of function `f`'s results.
    pub fn result_types(&self, f: FuncIndex) -> Vec<kiln_artifact::ValType> {
        let info = self.info();
        let ty = info.functions[f].ty.native();
        info.types[ty].results.iter().map(|t| t.native()).collect()
    }

    /// Sets the stack limit the generated prologues compare the stack pointer with.
    pub fn set_stack_limit(&mut self, limit: usize) {
        self._store[0] = limit;
    }

    /// The linear memory's bytes.
    pub fn memory(&self) -> &[u8] {
        &self.memory
    }
}
