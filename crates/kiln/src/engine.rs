//! Configuration and engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_artifact::{
    ArtifactKey, BoundsChecks, CodegenSettings, CompatInfo, CpuLevel, OptLevel, Proposal, Proposals,
};
use kiln_compiler::CompileConfig;

use crate::Result;

/// Compilation and runtime settings of an [`Engine`].
#[derive(Clone, Debug)]
pub struct Config {
    target: Option<String>,
    cpu: CpuLevel,
    settings: CodegenSettings,
    max_wasm_stack: usize,
    compile_threads: Option<usize>,
    artifact_key: Option<ArtifactKey>,
    cache: Option<kiln_cache::CacheConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: None,
            cpu: CpuLevel::Baseline,
            settings: CodegenSettings::default(),
            max_wasm_stack: 512 << 10,
            compile_threads: None,
            artifact_key: None,
            cache: None,
        }
    }
}

impl Config {
    /// The default configuration: host target, optimised code, guard pages, 512 KiB of
    /// wasm stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles for another target triple (the engine can then only precompile).
    pub fn target(&mut self, triple: &str) -> &mut Self {
        self.target = Some(triple.to_owned());
        self
    }

    /// Sets which CPU features compiled code may use: the portable baseline by default (an
    /// artifact runs on every CPU of its architecture, and compiling is deterministic across
    /// machines), `x86-64-v3`/`x86-64-v4` or a list of features for faster code on CPUs that
    /// have them, [`CpuLevel::Native`] for everything this CPU has (host target only). The
    /// features are recorded in the artifact header; loading an artifact on a CPU that lacks
    /// any of them fails with [`kiln_artifact::ArtifactError::CpuFeatures`]. Artifacts of any
    /// level load into any engine of the same target and settings.
    pub fn cpu(&mut self, level: CpuLevel) -> &mut Self {
        self.cpu = level;
        self
    }

    /// Sets the optimisation level.
    pub fn opt_level(&mut self, level: OptLevel) -> &mut Self {
        self.settings.opt_level = level;
        self
    }

    /// Sets how memory accesses are kept in bounds.
    pub fn bounds_checks(&mut self, mode: BoundsChecks) -> &mut Self {
        self.settings.bounds_checks = mode;
        self
    }

    /// Replaces every NaN produced by float arithmetic (scalar and SIMD) with the canonical
    /// NaN, so results are bit-identical on every CPU at a small cost per float operation.
    /// Off by default, as WebAssembly allows any NaN sign and payload there.
    pub fn canonicalize_nans(&mut self, enable: bool) -> &mut Self {
        self.settings.canonicalize_nans = enable;
        self
    }

    /// Makes compiled code interruptible: function entries and loop headers compare the
    /// engine's epoch ([`Engine::increment_epoch`]) with the store's deadline
    /// ([`crate::Store::set_epoch_deadline`]) and trap with `TrapCode::Interrupt` once it is
    /// reached. Costs a few instructions per loop iteration; off by default.
    pub fn epoch_interruption(&mut self, enable: bool) -> &mut Self {
        self.settings.epoch_interruption = enable;
        self
    }

    /// Clamps bounds-checked addresses with a branch-free select so that a mispredicted
    /// check cannot read out of bounds speculatively (on by default; affects explicit
    /// memory bounds checks and table accesses).
    pub fn spectre_guards(&mut self, enable: bool) -> &mut Self {
        self.settings.spectre_guards = enable;
        self
    }

    /// Enables or disables one WebAssembly proposal. Every proposal of WebAssembly 2.0 is
    /// on by default; modules that use a disabled one fail validation, and artifacts
    /// compiled with another set are refused with [`kiln_artifact::ArtifactError::Settings`].
    pub fn wasm_proposal(&mut self, proposal: Proposal, enable: bool) -> &mut Self {
        self.settings.proposals.set(proposal, enable);
        self
    }

    /// Replaces the whole set of enabled proposals.
    pub fn wasm_proposals(&mut self, proposals: Proposals) -> &mut Self {
        self.settings.proposals = proposals;
        self
    }

    /// The enabled proposals.
    pub fn proposals(&self) -> Proposals {
        self.settings.proposals
    }

    /// Bulk memory operations and passive segments (on by default).
    pub fn wasm_bulk_memory(&mut self, enable: bool) -> &mut Self {
        self.wasm_proposal(Proposal::BulkMemory, enable)
    }

    /// Reference types and multiple tables (on by default).
    pub fn wasm_reference_types(&mut self, enable: bool) -> &mut Self {
        self.wasm_proposal(Proposal::ReferenceTypes, enable)
    }

    /// 128-bit SIMD (on by default).
    pub fn wasm_simd(&mut self, enable: bool) -> &mut Self {
        self.wasm_proposal(Proposal::Simd, enable)
    }

    /// More than one linear memory (off by default: it belongs to WebAssembly 3.0).
    pub fn wasm_multi_memory(&mut self, enable: bool) -> &mut Self {
        self.wasm_proposal(Proposal::MultiMemory, enable)
    }

    /// Multiple results and block parameters (on by default).
    pub fn wasm_multi_value(&mut self, enable: bool) -> &mut Self {
        self.wasm_proposal(Proposal::MultiValue, enable)
    }

    /// Sets how many bytes of stack wasm may use (default 512 KiB).
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Gives the engine a secret key: every artifact it writes is sealed with it (a keyed
    /// blake3 MAC over the whole file), and [`crate::Module::deserialize_sealed`],
    /// [`crate::Module::deserialize_file_sealed`] and [`crate::Module::from_file`] load
    /// exactly the artifacts whose seal verifies under it. Keep the key secret: anyone who
    /// holds it can make this engine run machine code of their choosing.
    pub fn artifact_key(&mut self, key: ArtifactKey) -> &mut Self {
        self.artifact_key = Some(key);
        self
    }

    /// Reads the artifact key from a file (32 raw bytes or 64 hexadecimal digits); see
    /// [`Config::artifact_key`].
    pub fn artifact_key_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<&mut Self> {
        let key = ArtifactKey::from_file(path.as_ref())?;
        Ok(self.artifact_key(key))
    }

    /// Keeps compiled modules in a cache directory (off by default): [`crate::Module::new`]
    /// of wasm compiled before under the same settings loads the cached artifact (zero-copy,
    /// checked) instead of compiling, and stores what it compiles. An entry that fails to
    /// load or belongs to other wasm is removed and replaced, with a `tracing` warning. A
    /// directory that cannot be opened or written makes the engine go on without the cache
    /// (one warning). Without [`kiln_cache::CacheConfig::key`] the engine's artifact key, if
    /// any, authenticates the entries.
    pub fn cache(&mut self, cache: kiln_cache::CacheConfig) -> &mut Self {
        self.cache = Some(cache);
        self
    }

    /// Sets the number of compilation threads (`None`: rayon's global pool).
    pub fn compile_threads(&mut self, threads: Option<usize>) -> &mut Self {
        self.compile_threads = threads;
        self
    }
}

#[derive(Debug)]
struct EngineInner {
    config: Config,
    compile: CompileConfig,
    compat: CompatInfo,
    host_triple: String,
    epoch: Arc<AtomicU64>,
    cache: Option<kiln_cache::Cache>,
    fingerprint: String,
}

/// Compiles and loads modules for one target and configuration. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl Engine {
    /// Creates an engine for `config`.
    pub fn new(config: &Config) -> Result<Engine> {
        let compile = CompileConfig {
            target: config.target.clone(),
            settings: config.settings,
            cpu: config.cpu.clone(),
            threads: config.compile_threads,
        };
        let compat = kiln_compiler::compat_info(&compile)?;
        let fingerprint = format!(
            "kiln={} build={} format={} target={} cpu={} settings={} pointer={}",
            kiln_artifact::header::KILN_VERSION,
            kiln_compiler::BUILD_ID,
            kiln_artifact::header::FORMAT_VERSION,
            compat.target,
            compat.cpu_features,
            compat.settings,
            compat.pointer_size,
        );
        let cache = config.cache.as_ref().and_then(|c| {
            let mut c = c.clone();
            if !c.has_key()
                && let Some(key) = &config.artifact_key
            {
                c.key(key.clone());
            }
            kiln_cache::Cache::open(&c)
                .inspect_err(|e| tracing::warn!("running without the module cache: {e}"))
                .ok()
        });
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                compile,
                compat,
                host_triple: kiln_compiler::host_triple(),
                epoch: Arc::new(AtomicU64::new(0)),
                cache,
                fingerprint,
            }),
        })
    }

    /// Compiles `wasm` (binary or WAT) to artifact bytes, also for foreign targets.
    pub fn precompile_module(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        self.precompile_module_with_progress(wasm, |_, _| {})
    }

    /// Like [`Engine::precompile_module`], calling `progress(done, total)` (from any of the
    /// compilation threads) as functions finish compiling, for progress displays.
    pub fn precompile_module_with_progress(
        &self,
        wasm: &[u8],
        progress: impl Fn(usize, usize) + Sync,
    ) -> Result<Vec<u8>> {
        let wasm = crate::module::parse_wat(wasm)?;
        let mut artifact =
            kiln_compiler::compile_with_progress(&wasm, &self.inner.compile, &progress)?;
        if let Some(key) = &self.inner.config.artifact_key {
            kiln_artifact::seal::seal(&mut artifact, key)?;
        }
        Ok(artifact)
    }

    /// The module cache, if [`Config::cache`] enabled one and its directory could be opened.
    pub fn module_cache(&self) -> Option<&kiln_cache::Cache> {
        self.inner.cache.as_ref()
    }

    /// Everything besides the wasm that decides an artifact's bytes: Kiln version and build,
    /// artifact format, target, CPU features, settings and proposals (the cache's key input).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Whether this engine seals the artifacts it writes (it holds an artifact key).
    pub fn seals_artifacts(&self) -> bool {
        self.inner.config.artifact_key.is_some()
    }

    pub(crate) fn artifact_key(&self) -> Result<&ArtifactKey> {
        self.inner
            .config
            .artifact_key
            .as_ref()
            .ok_or(kiln_artifact::ArtifactError::NoKey.into())
    }

    /// Advances the epoch by one: code compiled with [`Config::epoch_interruption`] in any
    /// store of this engine whose deadline is reached traps at its next check. Cheap and
    /// callable from any thread (for example a timer).
    pub fn increment_epoch(&self) {
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether code compiled by this engine checks the epoch (see
    /// [`Config::epoch_interruption`]).
    pub fn is_interruptible(&self) -> bool {
        self.inner.config.settings.epoch_interruption
    }

    pub(crate) fn epoch_counter(&self) -> Arc<AtomicU64> {
        self.inner.epoch.clone()
    }

    /// The target triple this engine compiles for.
    pub fn target(&self) -> &str {
        &self.inner.compat.target
    }

    pub(crate) fn compat(&self) -> &CompatInfo {
        &self.inner.compat
    }

    /// Artifacts of this engine can run here.
    pub(crate) fn check_runnable(&self) -> Result<()> {
        if self.inner.compat.target != self.inner.host_triple {
            return Err(kiln_artifact::ArtifactError::Target {
                expected: self.inner.host_triple.clone(),
                found: self.inner.compat.target.clone(),
            }
            .into());
        }
        Ok(())
    }

    pub(crate) fn store_config(&self) -> kiln_runtime::StoreConfig {
        kiln_runtime::StoreConfig {
            memory_strategy: match self.inner.config.settings.bounds_checks {
                BoundsChecks::GuardPages => kiln_runtime::MemoryStrategy::GuardPages,
                BoundsChecks::Explicit => kiln_runtime::MemoryStrategy::Explicit,
            },
            max_wasm_stack: self.inner.config.max_wasm_stack,
        }
    }

    pub(crate) fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for Engine {
    /// An engine with the default [`Config`] for the host.
    fn default() -> Engine {
        Engine::new(&Config::default()).expect("the default configuration is valid")
    }
}
