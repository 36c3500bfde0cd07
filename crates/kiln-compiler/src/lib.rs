//! Kiln's compiler: validates WebAssembly, translates every function to Cranelift IR with
//! Kiln's own translator, compiles the functions in parallel and links them into one text
//! section, then writes the artifact (see `kiln-artifact`).
//!
//! The public surface is small: [`compile`] turns wasm bytes into artifact bytes, and
//! [`compat_info`] says what the header of such an artifact will contain, so an engine can
//! check artifacts made elsewhere. [`translate_to_clif`] shows the translator's output for
//! tests and debugging.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod abi;
mod environ;
mod isa;
mod link;
mod memory_image;
mod trampolines;
mod translate;

use cranelift_codegen::ir::{Function, UserFuncName};
use cranelift_frontend::FunctionBuilderContext;
use kiln_artifact::{
    ArtifactError, ArtifactParts, CodegenSettings, CompatInfo, CompiledFunction, CpuLevel,
    CpuLevelError, DefinedFuncIndex, TypeIndex, TypeTrampolines,
};
use rayon::prelude::*;

use environ::ModuleEnv;
use isa::Target;
use link::CompiledCode;
use translate::ModuleContext;

/// What to compile for and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileConfig {
    /// Target triple (e.g. `aarch64-unknown-linux-gnu`); `None` means the host.
    pub target: Option<String>,
    /// Settings that change the generated code.
    pub settings: CodegenSettings,
    /// Which CPU features the code may use (the portable baseline by default).
    pub cpu: CpuLevel,
    /// Number of compilation threads; `None` uses rayon's global pool. The output does not
    /// depend on it.
    pub threads: Option<usize>,
}

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The bytes are not a valid WebAssembly module (the message is wasmparser's).
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// The module uses a feature Kiln does not support yet.
    #[error("unsupported WebAssembly feature: {0}")]
    Unsupported(String),
    /// The target triple is unknown or not supported.
    #[error("unsupported target `{0}`")]
    Target(String),
    /// The CPU level does not apply to the target.
    #[error(transparent)]
    Cpu(#[from] CpuLevelError),
    /// Cranelift failed to compile a function.
    #[error("code generation failed: {0}")]
    Codegen(String),
    /// The artifact could not be written.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// The triple of the machine Kiln runs on.
pub fn host_triple() -> String {
    target_lexicon::Triple::host().to_string()
}

/// A hash of the sources of the compiler, the artifact format and the runtime (and of the
/// locked Cranelift version) this Kiln was built from: two builds that may generate or call
/// code differently have different ids.
pub const BUILD_ID: &str = env!("KILN_BUILD_ID");

/// The compatibility fields an artifact compiled with `config` carries in its header.
pub fn compat_info(config: &CompileConfig) -> Result<CompatInfo, CompileError> {
    Ok(Target::new(config)?.compat_info(config))
}

/// Validates and compiles `wasm` into artifact bytes. Deterministic: the same bytes and
/// config give the same artifact on any host and with any thread count.
pub fn compile(wasm: &[u8], config: &CompileConfig) -> Result<Vec<u8>, CompileError> {
    compile_with_progress(wasm, config, &|_, _| {})
}

/// Like [`compile`], calling `progress(done, total)` (from any compilation thread) each
/// time one more of the `total` functions and trampolines is compiled.
pub fn compile_with_progress(
    wasm: &[u8],
    config: &CompileConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<u8>, CompileError> {
    let target = Target::new(config)?;
    let mut env = ModuleEnv::parse(wasm, config.settings.proposals)?;
    let pieces = match config.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| CompileError::Codegen(format!("thread pool: {e}")))?
            .install(|| compile_all(&env, &target, config, progress)),
        None => compile_all(&env, &target, config, progress),
    }?;

    let linked = link::link(&pieces, target.function_alignment(), target.padding_byte())?;
    tracing::debug!(
        functions = env.bodies.len(),
        types = env.info.types.len(),
        code_bytes = linked.text.len(),
        "compiled module"
    );
    let num_funcs = env.bodies.len();
    let info = &mut env.info;
    for (i, body) in env.bodies.iter().enumerate() {
        info.compiled.push(CompiledFunction {
            body: linked.ranges[i],
            wasm_offset: body.range().start as u32,
            trap_count: linked.trap_counts[i],
        });
    }
    // Trampolines never trap by themselves (a callee's stack check traps in the callee), so
    // every record belongs to a body, which is what checked loads verify.
    let body_traps: u64 = linked.trap_counts[..num_funcs]
        .iter()
        .map(|&n| u64::from(n))
        .sum();
    if body_traps != linked.traps.len() as u64 {
        return Err(CompileError::Codegen(format!(
            "{} trap records lie in trampolines",
            linked.traps.len() as u64 - body_traps
        )));
    }
    for pair in linked.ranges[num_funcs..].chunks_exact(2) {
        info.trampolines.push(TypeTrampolines {
            array_to_wasm: pair[0],
            wasm_to_array: pair[1],
        });
    }
    info.traps = kiln_artifact::TrapTable::from_records(&linked.traps);
    info.call_sites = linked.call_sites;
    info.function_alignment = target.function_alignment();
    info.source = kiln_artifact::SourceHashes::of(wasm);

    let data = memory_image::plan(&mut env.info, &env.data, target.code_alignment);

    let compat = target.compat_info(config);
    Ok(kiln_artifact::build_artifact(&ArtifactParts {
        info: &env.info,
        code: &linked.text,
        data: data.as_deref().unwrap_or(&env.data),
        compat: &compat,
        code_alignment: target.code_alignment,
    })?)
}

/// The Cranelift IR of every defined function of `wasm`, before optimisation, as text in
/// index order. For tests that pin the translator's output and for debugging; trampolines
/// are not included.
pub fn translate_to_clif(wasm: &[u8], config: &CompileConfig) -> Result<String, CompileError> {
    let target = Target::new(config)?;
    let env = ModuleEnv::parse(wasm, config.settings.proposals)?;
    let module = module_context(&env, &target, config);
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut text = String::new();
    for i in 0..env.bodies.len() {
        let func = build_unit(
            &env,
            &module,
            Unit::Body(DefinedFuncIndex(i as u32)),
            &mut builder_ctx,
        )?;
        text.push_str(&func.display().to_string());
        text.push('\n');
    }
    Ok(text)
}

/// One function to compile: a body or a trampoline.
#[derive(Clone, Copy)]
enum Unit {
    Body(DefinedFuncIndex),
    ArrayToWasm(TypeIndex),
    WasmToArray(TypeIndex),
}

fn module_context<'a>(
    env: &'a ModuleEnv<'_>,
    target: &Target,
    config: &CompileConfig,
) -> ModuleContext<'a> {
    ModuleContext {
        info: &env.info,
        offsets: env.info.vmoffsets(isa::POINTER_SIZE),
        settings: config.settings,
        call_conv: target.isa.default_call_conv(),
        frontend: target.isa.frontend_config(),
    }
}

/// Builds the Cranelift function of `unit`.
fn build_unit(
    env: &ModuleEnv<'_>,
    module: &ModuleContext<'_>,
    unit: Unit,
    builder_ctx: &mut FunctionBuilderContext,
) -> Result<Function, CompileError> {
    let func = match unit {
        Unit::Body(index) => {
            let body = &env.bodies[index.0 as usize];
            return translate::translate_function(module, index, body, builder_ctx);
        }
        Unit::ArrayToWasm(ty) => trampolines::array_to_wasm(
            &env.info.types[ty],
            module.frontend,
            UserFuncName::user(1, ty.0),
            builder_ctx,
        ),
        Unit::WasmToArray(ty) => trampolines::wasm_to_array(
            &env.info.types[ty],
            module.frontend,
            UserFuncName::user(2, ty.0),
            builder_ctx,
        ),
    };
    Ok(func)
}

/// Compiles every defined function, then both trampolines of every type, in that order.
fn compile_all(
    env: &ModuleEnv<'_>,
    target: &Target,
    config: &CompileConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<CompiledCode>, CompileError> {
    let module = module_context(env, target, config);
    let bodies = (0..env.bodies.len()).map(|i| Unit::Body(DefinedFuncIndex(i as u32)));
    let trampolines = (0..env.info.types.len()).flat_map(|i| {
        let ty = TypeIndex(i as u32);
        [Unit::ArrayToWasm(ty), Unit::WasmToArray(ty)]
    });
    let units: Vec<Unit> = bodies.chain(trampolines).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    units
        .par_iter()
        .map_init(FunctionBuilderContext::new, |builder_ctx, &unit| {
            let func = build_unit(env, &module, unit, builder_ctx)?;
            let code = link::compile_function(&*target.isa, func)?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, units.len());
            Ok(code)
        })
        .collect()
}
