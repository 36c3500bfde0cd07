//! Compiled modules: compiling, serialising and loading artifacts.

use std::path::Path;
use std::sync::Arc;

use kiln_artifact::{
    ArchivedModuleInfo, EntityIndex, FuncType, GlobalType, MemoryType, TableType,
    header::MAGIC as ARTIFACT_MAGIC,
};
use kiln_runtime::LoadedModule;
use kiln_runtime::store::convert;

use crate::{Engine, Error, Result};

/// The type of an importable or exportable item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A table.
    Table(TableType),
    /// A linear memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
}

impl std::fmt::Display for ExternType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn limits(f: &mut std::fmt::Formatter<'_>, min: u64, max: Option<u64>) -> std::fmt::Result {
            write!(f, "{min}")?;
            if let Some(max) = max {
                write!(f, " {max}")?;
            }
            Ok(())
        }
        match self {
            ExternType::Func(t) => write!(f, "{t}"),
            ExternType::Table(t) => {
                write!(f, "(table ")?;
                limits(f, t.min.into(), t.max.map(u64::from))?;
                let e = match t.element {
                    kiln_artifact::RefType::FuncRef => "funcref",
                    kiln_artifact::RefType::ExternRef => "externref",
                };
                write!(f, " {e})")
            }
            ExternType::Memory(m) => {
                write!(f, "(memory ")?;
                limits(f, m.min, m.max)?;
                write!(f, ")")
            }
            ExternType::Global(g) if g.mutable => write!(f, "(global (mut {}))", g.content),
            ExternType::Global(g) => write!(f, "(global {})", g.content),
        }
    }
}

impl ExternType {
    /// The function type, if this is one.
    pub fn func(&self) -> Option<&FuncType> {
        match self {
            ExternType::Func(t) => Some(t),
            _ => None,
        }
    }
}

pub(crate) fn entity_type(info: &ArchivedModuleInfo, index: EntityIndex) -> ExternType {
    match index {
        EntityIndex::Function(i) => {
            let ty = info.functions[i].ty.native();
            ExternType::Func(info.types[ty].to_native())
        }
        EntityIndex::Table(i) => ExternType::Table(convert::table_type(&info.tables[i])),
        EntityIndex::Memory(i) => ExternType::Memory(convert::memory_type(&info.memories[i])),
        EntityIndex::Global(i) => ExternType::Global(convert::global_type(&info.globals[i].ty)),
    }
}

/// An import of a module: where it comes from and what it must be.
#[derive(Debug)]
pub struct ImportType<'a> {
    module: &'a str,
    name: &'a str,
    ty: ExternType,
}

impl ImportType<'_> {
    /// The module name.
    pub fn module(&self) -> &str {
        self.module
    }
    /// The field name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// The required type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// An export of a module.
#[derive(Debug)]
pub struct ExportType<'a> {
    name: &'a str,
    ty: ExternType,
}

impl ExportType<'_> {
    /// The export name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// The exported item's type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

#[derive(Debug)]
struct ModuleInner {
    engine: Engine,
    loaded: Arc<LoadedModule>,
}

/// A compiled module, ready to be instantiated. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

/// Whether the file at `path` starts with the artifact magic bytes.
pub fn is_artifact_file(path: &Path) -> std::io::Result<bool> {
    Ok(file_prefix(&std::fs::File::open(path)?)? == ARTIFACT_MAGIC)
}

/// The first 8 bytes of `file` (fewer if it is shorter; the rest zero), read at offset 0
/// whatever the file's position.
fn file_prefix(file: &std::fs::File) -> std::io::Result<[u8; 8]> {
    use std::os::unix::fs::FileExt;
    let mut prefix = [0u8; 8];
    let mut n = 0;
    while n < prefix.len() {
        match file.read_at(&mut prefix[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(prefix)
}

/// Loads an artifact that `engine`'s compiler wrote just now.
pub(crate) fn load_fresh(engine: &Engine, artifact: &[u8]) -> Result<Arc<LoadedModule>> {
    // SAFETY: the engine's own compiler wrote these bytes just now, and they are copied into
    // memory the module owns; they are checked all the same (a compiler bug shows as an
    // error, not as a runtime fault).
    unsafe {
        LoadedModule::from_bytes(
            artifact,
            engine.compat(),
            kiln_runtime::Verification::Checked,
        )
    }
    .map_err(Error::from_load)
}

pub(crate) fn parse_wat(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    wat::parse_bytes(bytes).map_err(|e| Error::Wat(e.to_string()))
}

impl Module {
    /// Compiles a module from the WebAssembly binary or text in `bytes`.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        Self::new_with_progress(engine, bytes, |_, _| {})
    }

    /// Like [`Module::new`], calling `progress(done, total)` as functions finish compiling
    /// (see [`Engine::precompile_module_with_progress`]).
    pub fn new_with_progress(
        engine: &Engine,
        bytes: impl AsRef<[u8]>,
        progress: impl Fn(usize, usize) + Sync,
    ) -> Result<Module> {
        engine.check_runnable()?;
        if let Some(cache) = engine.module_cache() {
            let wasm = parse_wat(bytes.as_ref())?;
            let loaded = crate::cached::load_or_compile(engine, cache, &wasm, &progress)?;
            return Ok(Module::from_loaded(engine, loaded));
        }
        let artifact = engine.precompile_module_with_progress(bytes.as_ref(), progress)?;
        Ok(Module::from_loaded(engine, load_fresh(engine, &artifact)?))
    }

    /// Loads a module from a file: a `.wasm` binary or WAT text, which is compiled, or an
    /// artifact (recognised by its magic bytes), which is loaded only if its seal verifies
    /// under the engine's key ([`Module::deserialize_file_sealed`]). Without a key an
    /// artifact is refused: loading it would run machine code that nothing vouches for (use
    /// the unsafe [`Module::deserialize_file`] for artifacts you trust).
    ///
    /// With a module cache ([`crate::Config::cache`]) a wasm binary is looked up by hashing
    /// the file in pieces, so a hit costs neither compiling nor reading the file into memory.
    pub fn from_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        Self::from_file_with_progress(engine, path, |_, _| {})
    }

    /// Like [`Module::from_file`], calling `progress(done, total)` as functions finish
    /// compiling.
    pub fn from_file_with_progress(
        engine: &Engine,
        path: impl AsRef<Path>,
        progress: impl Fn(usize, usize) + Sync,
    ) -> Result<Module> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        // Opened once: the kind of file, the cache lookup and the read all use this handle.
        let file = std::fs::File::open(path).map_err(io)?;
        let prefix = file_prefix(&file).map_err(io)?;
        if prefix == ARTIFACT_MAGIC {
            return Module::deserialize_file_sealed(engine, path);
        }
        // A wasm binary is looked up by hashing the file; WAT text after parsing, by its
        // binary (in `new_with_progress`).
        if let Some(cache) = engine.module_cache()
            && prefix.starts_with(b"\0asm")
        {
            engine.check_runnable()?;
            if let Some(loaded) = crate::cached::load_file_hit(engine, cache, &file) {
                return Ok(Module::from_loaded(engine, loaded));
            }
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
        Module::new_with_progress(engine, bytes, progress)
    }

    /// The artifact bytes of this module, loadable with [`Module::deserialize`] (or, if the
    /// engine holds an artifact key, with [`Module::deserialize_sealed`]).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let bytes = self
            .inner
            .loaded
            .artifact_bytes()
            .map_err(|source| Error::Io {
                path: "<the module's artifact file>".into(),
                source,
            })?;
        Ok(bytes.into_owned())
    }

    /// Loads sealed artifact bytes: the seal is verified under the engine's key
    /// ([`crate::Config::artifact_key`]) before any other byte is used, so any bytes give a
    /// module that a Kiln compiler holding the key wrote, or an error
    /// ([`kiln_artifact::ArtifactError::Unsealed`], [`kiln_artifact::ArtifactError::SealMismatch`],
    /// [`kiln_artifact::ArtifactError::NoKey`], or a version, target or settings mismatch).
    /// Costs one keyed hash of the bytes (blake3, multi-threaded from 4 MiB) and one copy.
    pub fn deserialize_sealed(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        engine.check_runnable()?;
        let key = engine.artifact_key()?;
        let loaded = LoadedModule::from_bytes_sealed(bytes.as_ref(), engine.compat(), key)
            .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads a sealed artifact file, as [`Module::deserialize_sealed`]. The file is read
    /// into memory that the module owns before its seal is checked, so writing to or
    /// truncating the file afterwards changes nothing.
    pub fn deserialize_file_sealed(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        engine.check_runnable()?;
        let key = engine.artifact_key()?;
        let loaded = LoadedModule::from_file_sealed(path.as_ref(), engine.compat(), key)
            .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads artifact bytes in checked mode.
    ///
    /// Checked mode verifies the header, the engine's version, target, CPU features and
    /// settings, the checksum, the metadata archive (bytecheck) and every index and range
    /// the runtime follows, so corrupt, truncated or stale bytes give an error, never
    /// undefined behaviour *from the metadata*. What it cannot check is the machine code.
    ///
    /// # Safety
    /// Instantiating the module runs the artifact's machine code, and no check can tell code
    /// that a Kiln compiler wrote from code written by anyone else (a forged artifact with a
    /// recomputed checksum passes every check). The caller vouches that `bytes` were written
    /// by a Kiln compiler ([`Engine::precompile_module`] or [`Module::serialize`]) and not
    /// replaced by someone else since. To load bytes you cannot vouch for, seal them and use
    /// [`Module::deserialize_sealed`].
    ///
    /// ```compile_fail,E0133
    /// # let engine = kiln::Engine::default();
    /// # let bytes = engine.precompile_module(b"(module)").unwrap();
    /// // Without `unsafe` this does not compile: the caller must vouch for the bytes.
    /// let module = kiln::Module::deserialize(&engine, &bytes);
    /// ```
    pub unsafe fn deserialize(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        engine.check_runnable()?;
        // SAFETY: forwarded from this function's contract.
        let loaded = unsafe {
            LoadedModule::from_bytes(
                bytes.as_ref(),
                engine.compat(),
                kiln_runtime::Verification::Checked,
            )
        }
        .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads an artifact file in checked mode, as [`Module::deserialize`]. The code is
    /// zero-copy: it runs from the file's pages, mapped executable. The rest is read into
    /// memory when the file is small (up to 128 KiB, where one read costs less than mapping
    /// and faulting in pages) and mapped private (copy-on-write) otherwise.
    ///
    /// # Safety
    /// As for [`Module::deserialize`]; in addition the file must not be modified or truncated
    /// while the module is alive. Even a private mapping shows later writes to the file, and
    /// the pages of a truncated file fault with `SIGBUS` when touched, which ends the
    /// process (with a diagnostic when it happens in generated code). Files that others can
    /// write belong in [`Module::deserialize_file_sealed`], which reads them into memory.
    ///
    /// ```compile_fail,E0133
    /// # let engine = kiln::Engine::default();
    /// let module = kiln::Module::deserialize_file(&engine, "app.kiln");
    /// ```
    pub unsafe fn deserialize_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        engine.check_runnable()?;
        // SAFETY: forwarded from this function's contract.
        let loaded = unsafe {
            LoadedModule::from_file(
                path.as_ref(),
                engine.compat(),
                kiln_runtime::Verification::Checked,
            )
        }
        .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads artifact bytes checking only the header: O(1) in the module's size.
    ///
    /// # Safety
    /// As for [`Module::deserialize`], and the bytes must be exactly an artifact produced by
    /// this version of Kiln (by [`Engine::precompile_module`] or [`Module::serialize`]), not
    /// modified since: corrupt metadata is undefined behaviour.
    pub unsafe fn deserialize_unchecked(
        engine: &Engine,
        bytes: impl AsRef<[u8]>,
    ) -> Result<Module> {
        engine.check_runnable()?;
        // SAFETY: forwarded from this function's contract.
        let loaded = unsafe {
            LoadedModule::from_bytes(
                bytes.as_ref(),
                engine.compat(),
                kiln_runtime::Verification::Unchecked,
            )
        }
        .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Maps an artifact file checking only its header: O(1) in the module's size.
    ///
    /// # Safety
    /// As for [`Module::deserialize_unchecked`] and [`Module::deserialize_file`].
    pub unsafe fn deserialize_file_unchecked(
        engine: &Engine,
        path: impl AsRef<Path>,
    ) -> Result<Module> {
        engine.check_runnable()?;
        // SAFETY: forwarded from this function's contract.
        let loaded = unsafe {
            LoadedModule::from_file(
                path.as_ref(),
                engine.compat(),
                kiln_runtime::Verification::Unchecked,
            )
        }
        .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    fn from_loaded(engine: &Engine, loaded: Arc<LoadedModule>) -> Module {
        Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                loaded,
            }),
        }
    }

    /// The module's name from its name section.
    pub fn name(&self) -> Option<&str> {
        self.info().name.as_ref().map(|n| n.as_str())
    }

    /// The imports, in module order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = ImportType<'_>> {
        let info = self.info();
        info.imports.iter().map(move |imp| ImportType {
            module: imp.module.as_str(),
            name: imp.name.as_str(),
            ty: entity_type(info, imp.index.native()),
        })
    }

    /// The exports, in module order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = ExportType<'_>> {
        let info = self.info();
        info.exports
            .iter()
            .map(|(name, index)| ExportType {
                name: name.as_str(),
                ty: entity_type(info, index.native()),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    pub(crate) fn info(&self) -> &ArchivedModuleInfo {
        self.inner.loaded.info()
    }

    pub(crate) fn loaded(&self) -> &Arc<LoadedModule> {
        &self.inner.loaded
    }

    /// The engine this module was loaded with.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}
