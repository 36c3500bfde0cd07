//! `kiln run`: loads a module or artifact, links WASI if it asks for it, and runs `_start`
//! or the function named by `--invoke`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kiln::{
    BoundsChecks, Config, CpuLevel, Engine, Linker, Module, OptLevel, Proposal, Proposals, Store,
    StoreLimits, TrapCode, Val, ValType,
};
use kiln_artifact::Header;

use kiln_wasi::{WASI_MODULE, WasiCtx};

use crate::progress::CompileProgress;
use crate::{CliError, CliResult, fail, outln};

/// Arguments of `kiln run`.
#[derive(Args)]
pub struct RunArgs {
    /// The module (.wasm, .wat) or artifact (.kiln) to run.
    file: PathBuf,
    /// Call this exported function instead of `_start`.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,
    /// Give the program a host directory, as `HOST` or `HOST::GUEST` (the name the program
    /// sees; by default the host path). Repeatable. Nothing outside these is reachable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,
    /// Set an environment variable of the program. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// Pass the host environment to the program (before any --env), except Kiln's own keys:
    /// KILN_ARTIFACT_KEY, KILN_CACHE_KEY and every other KILN_*_KEY(_FILE) never reach it.
    #[arg(long)]
    inherit_env: bool,
    /// Stop the program after this many seconds (fractions allowed), also while it waits in
    /// a host call; it then exits with status 134, as for a trap.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Run a precompiled artifact whose seal does not verify under KILN_ARTIFACT_KEY (or that
    /// is not sealed). Its machine code runs as it is: only for artifacts you trust.
    #[arg(long)]
    allow_precompiled: bool,
    /// Compile without the module cache (by default a module compiled before under the same
    /// settings is loaded from `kiln cache dir` instead of compiled).
    #[arg(long)]
    no_cache: bool,
    /// CPU features the code may use when FILE is compiled here (see `kiln compile --cpu`);
    /// an artifact runs with the level it was compiled for, if this CPU has its features.
    #[arg(long, default_value_t = CpuLevel::Baseline, value_name = "LEVEL")]
    cpu: CpuLevel,
    /// Largest size of the program's linear memory, in bytes (suffixes K, M, G allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_memory: Option<usize>,
    /// Largest number of elements of any of the program's tables (at most 10,000,000, the
    /// runtime's own cap; each element takes 8 bytes of host memory).
    #[arg(long, value_name = "N")]
    max_table_elements: Option<u32>,
    /// With --invoke, the function's arguments (parsed by its parameter types); otherwise the
    /// program's arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

/// Loads `path`. An artifact (recognised by its magic bytes) gets an engine configured like
/// the compiler that made it; it loads if its seal verifies under `KILN_ARTIFACT_KEY`, or,
/// with `allow_precompiled`, through the checked deserializer. Anything else is compiled as
/// WebAssembly binary or text with the default engine for the CPU level `cpu` (made
/// interruptible if `interruptible`).
pub fn load_module(
    path: &Path,
    cpu: &CpuLevel,
    interruptible: bool,
    allow_precompiled: bool,
    use_cache: bool,
) -> Result<(Engine, Module), CliError> {
    let unreadable = |e| fail!("cannot read `{}`: {e}", path.display());
    let key = crate::key::artifact_key()?;
    let loaded = if kiln::is_artifact_file(path).map_err(unreadable)? {
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let mut config = match Header::parse(&bytes) {
            Ok(header) => config_for(&header.compat.settings),
            Err(_) => Config::new(), // the loads below report what is wrong
        };
        let sealed = match key {
            Some(key) => {
                config.artifact_key(key);
                let engine = Engine::new(&config)?;
                Module::deserialize_sealed(&engine, &bytes).map(|m| (engine, m))
            }
            None => Err(kiln::ArtifactError::NoKey.into()),
        };
        match sealed {
            Ok(loaded) => Ok(loaded),
            Err(_) if allow_precompiled => {
                let engine = Engine::new(&config)?;
                // SAFETY: the user vouched for this artifact with --allow-precompiled; the
                // checked load turns corruption and mismatches into errors.
                unsafe { Module::deserialize(&engine, &bytes) }.map(|m| (engine, m))
            }
            Err(kiln::Error::Artifact(kiln::ArtifactError::NoKey)) => {
                return Err(fail!(
                    "`{}` is a precompiled artifact, and running it runs its machine code as \
                     it is: pass --allow-precompiled if you trust it, or set {} to the key it \
                     was sealed with",
                    path.display(),
                    crate::key::KEY_VARIABLE
                ));
            }
            Err(e) => {
                return Err(fail!(
                    "cannot load `{}`: {e} (pass --allow-precompiled to run it anyway if you \
                     trust it)",
                    path.display()
                ));
            }
        }
    } else {
        let mut config = Config::new();
        config.cpu(cpu.clone()).epoch_interruption(interruptible);
        if use_cache {
            config.cache(crate::cache::config_from_env()?);
        }
        if let Some(key) = key {
            config.artifact_key(key);
        }
        let engine = Engine::new(&config)?;
        let progress = CompileProgress::new(&path.display().to_string());
        // From the file: with the cache, a hit is found without reading the file into memory.
        Module::from_file_with_progress(&engine, path, |done, total| progress.update(done, total))
            .map(|m| (engine, m))
    };
    loaded.map_err(|e| fail!("cannot load `{}`: {e}", path.display()))
}

/// The engine configuration matching an artifact's settings field
/// (`opt_level=..,bounds_checks=..,proposals=..,nans=..,epoch=..,spectre=..`); unknown values keep the defaults, so that loading
/// then reports the mismatch.
fn config_for(settings: &str) -> Config {
    let mut config = Config::new();
    for pair in settings.split(',') {
        match pair.split_once('=') {
            Some(("opt_level", "none")) => config.opt_level(OptLevel::None),
            Some(("opt_level", "speed")) => config.opt_level(OptLevel::Speed),
            Some(("opt_level", "speed_and_size")) => config.opt_level(OptLevel::SpeedAndSize),
            Some(("bounds_checks", "guard_pages")) => {
                config.bounds_checks(BoundsChecks::GuardPages)
            }
            Some(("bounds_checks", "explicit")) => config.bounds_checks(BoundsChecks::Explicit),
            Some(("nans", "canonical")) => config.canonicalize_nans(true),
            Some(("epoch", "true")) => config.epoch_interruption(true),
            Some(("spectre", "false")) => config.spectre_guards(false),
            Some(("proposals", bits)) => match parse_proposals(bits) {
                Some(proposals) => config.wasm_proposals(proposals),
                None => &mut config,
            },
            _ => &mut config,
        };
    }
    config
}

/// The proposal set written as `proposals=0x..` in an artifact's settings.
fn parse_proposals(bits: &str) -> Option<Proposals> {
    let bits = u32::from_str_radix(bits.strip_prefix("0x")?, 16).ok()?;
    let mut proposals = Proposals::NONE;
    for p in Proposal::ALL {
        proposals.set(p, bits & p as u32 != 0);
    }
    (proposals.bits() == bits).then_some(proposals)
}

/// Warns when a preopened directory holds the unkeyed module cache (or lies inside it):
/// unsealed entries run as they are, so a program that can write one can make a later start
/// of the same module run its machine code as this user. With a cache key entries are
/// authenticated and nothing needs saying.
fn warn_if_it_holds_the_cache(host: &Path) {
    // Whether a key is set, without reading it again (a key file may be a pipe, and a bad
    // key has failed the run already if the cache is in use).
    if crate::key::cache_key_is_set() {
        return;
    }
    let (Some(cache), Ok(host)) = (kiln::default_cache_directory(), host.canonicalize()) else {
        return;
    };
    let cache = canonical_prefix(&cache);
    if cache.starts_with(&host) || host.starts_with(&cache) {
        eprintln!(
            "warning: --dir {} gives the program write access to the module cache ({}): a \
             program that writes there can make later runs execute its own code. Set \
             KILN_CACHE_KEY (entries are then authenticated) or KILN_CACHE_DIR elsewhere",
            host.display(),
            cache.display()
        );
    }
}

/// `path` with its longest existing ancestor made canonical (the cache may not exist yet).
fn canonical_prefix(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(canonical) = at.canonicalize() {
            return rest.iter().rev().fold(canonical, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// How long after `--timeout` a program still blocked in a host call is given to return
/// before the process ends.
const BLOCKED_CALL_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `kiln run`.
pub fn main(args: RunArgs) -> CliResult {
    // Set once the program has returned, so that the `--timeout` watchdog leaves the exit
    // to this thread.
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result = run(args, &finished);
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    result
}

fn run(args: RunArgs, finished: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> CliResult {
    let timeout = match args.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(fail!(
                "--timeout takes a positive number of seconds, not {t}"
            ));
        }
        None => None,
    };
    let (engine, module) = load_module(
        &args.file,
        &args.cpu,
        timeout.is_some(),
        args.allow_precompiled,
        !args.no_cache,
    )?;
    let mut argv = vec![args.file.display().to_string()];
    if args.invoke.is_none() {
        argv.extend(args.args.iter().cloned());
    }
    let mut builder = WasiCtx::builder();
    builder.args(argv);
    if args.inherit_env {
        builder.inherit_env();
    }
    for pair in &args.envs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| fail!("--env takes KEY=VALUE, got `{pair}`"))?;
        builder.env(key, value);
    }
    for dir in &args.dirs {
        let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
        builder
            .preopened_dir(host, guest)
            .map_err(|e| fail!("cannot open directory `{host}` for --dir: {e}"))?;
        warn_if_it_holds_the_cache(Path::new(host));
    }
    let limits = Limits {
        timeout,
        max_memory: args.max_memory,
    };
    let mut store = Store::new(&engine, builder.build());
    let mut store_limits = StoreLimits::new();
    if let Some(bytes) = args.max_memory {
        store_limits = store_limits.memory_size(bytes);
    }
    if let Some(elements) = args.max_table_elements {
        store_limits = store_limits.table_elements(elements);
    }
    store.set_limits(store_limits);
    if let Some(timeout) = timeout {
        if !engine.is_interruptible() {
            return Err(fail!(
                "--timeout needs interruptible code, but `{}` was compiled without it \
                 (recompile with `kiln compile --epoch-interruption`)",
                args.file.display()
            ));
        }
        store.set_epoch_deadline(1);
        // Host calls that can block wait at most until the same moment (kiln_wasi's
        // deadline); the watchdog below is for what they cannot bound.
        store
            .data_mut()
            .set_deadline(Some(std::time::Instant::now() + timeout));
        let ticker = engine.clone();
        let finished = finished.clone();
        std::thread::spawn(move || {
            std::thread::sleep(timeout);
            ticker.increment_epoch();
            // Wasm code stops at its next epoch check and host calls that wait stop at the
            // WASI deadline, but a call that blocks where no deadline reaches (a write larger
            // than a full pipe's room, a long bulk-memory operation) would not return: after
            // a moment the process ends from here.
            std::thread::sleep(BLOCKED_CALL_GRACE);
            if !finished.load(std::sync::atomic::Ordering::SeqCst) {
                // Straight to the descriptor: the blocked call may hold the lock of Rust's
                // stderr (a write to a full pipe), and waiting for it would hang here too.
                let message = format!(
                    "error: the program ran longer than --timeout {}s and was stopped (it was \
                     still in a host call or a long bulk-memory operation)\n",
                    timeout.as_secs_f64()
                );
                let _ = rustix::io::write(std::io::stderr(), message.as_bytes());
                std::process::exit(i32::from(TRAP_STATUS));
            }
        });
    }
    let mut linker = Linker::new(&engine);
    if module.imports().any(|i| i.module() == WASI_MODULE) {
        kiln_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
    }
    let instance = linker.instantiate(&mut store, &module);
    let instance = match instance {
        Ok(instance) => instance,
        Err(e) => return finish(&store, &limits, Err(e)),
    };

    let Some(name) = &args.invoke else {
        let Some(start) = instance.get_func(&mut store, "_start") else {
            let funcs: Vec<String> = module
                .exports()
                .filter(|e| matches!(e.ty(), kiln::ExternType::Func(_)))
                .map(|e| format!("{} {}", e.name(), e.ty()))
                .collect();
            return Err(if funcs.is_empty() {
                fail!(
                    "`{}` has no `_start` function and exports no function to --invoke",
                    args.file.display()
                )
            } else {
                fail!(
                    "`{}` has no `_start` function; run one of its exports with --invoke NAME \
                     [ARGS]: {}",
                    args.file.display(),
                    funcs.join(", ")
                )
            });
        };
        let result = start.call(&mut store, &[], &mut []);
        return finish(&store, &limits, result);
    };
    if name != "_initialize"
        && let Some(init) = instance.get_func(&mut store, "_initialize")
    {
        let result = init.call(&mut store, &[], &mut []);
        if store.data().exit_code.is_some() || result.is_err() {
            return finish(&store, &limits, result);
        }
    }
    let func = instance
        .get_func(&mut store, name)
        .ok_or_else(|| fail!("`{}` exports no function `{name}`", args.file.display()))?;
    let ty = func.ty(&store);
    if ty.params.len() != args.args.len() {
        return Err(fail!(
            "`{name}` takes {} argument(s) of type {ty}, but {} were given",
            ty.params.len(),
            args.args.len()
        ));
    }
    let params = ty
        .params
        .iter()
        .zip(&args.args)
        .map(|(ty, text)| parse_arg(*ty, text))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = vec![Val::I32(0); ty.results.len()];
    let result = func.call(&mut store, &params, &mut results);
    if result.is_ok() && store.data().exit_code.is_none() {
        for val in &results {
            outln!("{}", render(val))?;
        }
    }
    finish(&store, &limits, result)
}

/// The exit status: `proc_exit`'s if it was called, else success or the error.
fn finish(store: &Store<WasiCtx>, limits: &Limits, result: kiln::Result<()>) -> CliResult {
    if store.memory_limit_reached()
        && let Some(bytes) = limits.max_memory
    {
        eprintln!(
            "note: the program asked for more linear memory than --max-memory allows \
             ({bytes} bytes); memory.grow returned -1"
        );
    }
    if let Some(code) = store.data().exit_code {
        if code == WASI_LIBC_STARTUP_FAILURE && store.data().output_written() == 0 {
            eprintln!(
                "note: the program exited with status 71 before writing anything; wasi-libc's \
                 start-up code exits so when a WASI call it depends on fails (run with \
                 KILN_LOG=debug to see failing WASI calls)"
            );
        }
        return Ok(exit_status(code));
    }
    match result {
        // A trap gets a status of its own (that of an abort), so scripts can tell it from
        // the program's own failures.
        Err(e)
            if e.as_trap().map(|t| t.code()) == Some(TrapCode::Interrupt)
                || kiln_wasi::deadline_passed(&e) =>
        {
            let after = limits.timeout.map_or(0.0, |t| t.as_secs_f64());
            eprintln!(
                "error: the program ran longer than --timeout {after}s and was stopped ({e})"
            );
            Ok(ExitCode::from(TRAP_STATUS))
        }
        Err(e) if e.as_trap().is_some() => {
            eprintln!("error: {e}");
            if let Some(trap) = e.as_trap()
                && !trap.backtrace().is_empty()
            {
                eprint!("wasm backtrace:\n{}", trap.backtrace_text());
            }
            Ok(ExitCode::from(TRAP_STATUS))
        }
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

/// The process status for a program's `proc_exit(code)`. WASI allows 0 to 125: a status is
/// cut to 8 bits by the OS (256 would look like success) and 126 and up mean "not
/// executable", "not found" and "killed by a signal" to shells (134, a trap's status, too).
/// Outside that range the program fails with status 1 and a message, as in Wasmtime.
fn exit_status(code: i32) -> ExitCode {
    match u8::try_from(code) {
        Ok(code) if code < 126 => ExitCode::from(code),
        _ => {
            eprintln!(
                "error: the program exited with status {code}, outside the range 0 to 125 that \
                 WASI allows; exiting with status 1"
            );
            ExitCode::FAILURE
        }
    }
}

/// The status (`EX_OSERR`) with which wasi-libc's `_start` exits when its set-up fails.
const WASI_LIBC_STARTUP_FAILURE: i32 = 71;

/// The exit status of a program that trapped.
pub const TRAP_STATUS: u8 = 134;

/// The limits given on the command line, for the messages when one is hit.
struct Limits {
    timeout: Option<std::time::Duration>,
    max_memory: Option<usize>,
}

/// A size in bytes: a number with an optional K, M or G suffix (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("unknown size suffix in `{text}` (use K, M or G)")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size in bytes"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_arg(ty: ValType, text: &str) -> Result<Val, CliError> {
    let bad = || fail!("cannot parse `{text}` as {ty}");
    Ok(match ty {
        ValType::I32 => Val::I32(
            text.parse::<i32>()
                .or_else(|_| text.parse::<u32>().map(|v| v as i32))
                .map_err(|_| bad())?,
        ),
        ValType::I64 => Val::I64(
            text.parse::<i64>()
                .or_else(|_| text.parse::<u64>().map(|v| v as i64))
                .map_err(|_| bad())?,
        ),
        ValType::F32 => Val::from(text.parse::<f32>().map_err(|_| bad())?),
        ValType::F64 => Val::from(text.parse::<f64>().map_err(|_| bad())?),
        ValType::V128 => Val::V128(match text.strip_prefix("0x") {
            Some(hex) => u128::from_str_radix(hex, 16).map_err(|_| bad())?,
            None => text.parse::<u128>().map_err(|_| bad())?,
        }),
        ValType::FuncRef if text == "null" => Val::FuncRef(None),
        ValType::ExternRef if text == "null" => Val::ExternRef(None),
        other => {
            return Err(fail!(
                "cannot pass a {other} argument from the command line"
            ));
        }
    })
}

fn render(val: &Val) -> String {
    match val {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(v) => format!("0x{v:032x}"),
        Val::FuncRef(None) | Val::ExternRef(None) => "null".to_owned(),
        Val::FuncRef(Some(_)) => "<funcref>".to_owned(),
        Val::ExternRef(Some(_)) => "<externref>".to_owned(),
    }
}
