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
        let wasm = parse_wat(bytes.as_ref())?;
        let artifact =
            kiln_compiler::compile_with_progress(&wasm, engine.compile_config(), &progress)?;
        let loaded = LoadedModule::from_bytes_checked(&artifact, engine.compat())
            .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads a module from a file: a `.wasm` binary, WAT text, or an artifact (recognised by
    /// its magic bytes, loaded in checked mode).
    pub fn from_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut magic = [0u8; 8];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(io)?;
            let mut n = 0;
            while n < magic.len() {
                match f.read(&mut magic[n..]).map_err(io)? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        };
        if n == magic.len() && magic == ARTIFACT_MAGIC {
            return Module::deserialize_file(engine, path);
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Module::new(engine, bytes)
    }

    /// The artifact bytes of this module, loadable with [`Module::deserialize`].
    pub fn serialize(&self) -> Result<Vec<u8>> {
        Ok(self.inner.loaded.bytes().to_vec())
    }

    /// Loads artifact bytes in checked mode: any bytes give a module or an error.
    pub fn deserialize(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        engine.check_runnable()?;
        let loaded = LoadedModule::from_bytes_checked(bytes.as_ref(), engine.compat())
            .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Maps an artifact file and loads it in checked mode. The file must not be modified
    /// while the module is alive.
    pub fn deserialize_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        engine.check_runnable()?;
        let loaded = LoadedModule::from_file_checked(path.as_ref(), engine.compat())
            .map_err(Error::from_load)?;
        Ok(Module::from_loaded(engine, loaded))
    }

    /// Loads artifact bytes checking only the header: O(1) in the module's size.
    ///
    /// # Safety
    /// `bytes` must be an artifact produced by this version of Kiln (by
    /// [`Engine::precompile_module`] or [`Module::serialize`]) and not modified since.
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
    /// The file must be an artifact produced by this version of Kiln, and must not be
    /// modified while the module is alive.
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
