//! WASI preview 1 (`wasi_snapshot_preview1`) for Kiln: what a program compiled for
//! `wasm32-wasi`/`wasm32-wasip1` may do with the host, and nothing more.
//!
//! A [`WasiCtx`], made with [`WasiCtxBuilder`], holds the program's arguments, environment,
//! standard streams (inherited, discarded or redirected to buffers) and the host
//! directories it was given. [`add_to_linker`] defines every preview 1 function in a
//! [`kiln::Linker`]. Files are reached only through those directories, with `cap-std`
//! resolving every path inside them; descriptor rights follow the specification (a
//! descriptor opened from a directory never has more rights than the directory lets its
//! children inherit).
//!
//! * `ctx`: the state and its builder; `guest`: memory access for one call;
//! * `process`: arguments, environment, clocks, random, `poll_oneoff`, signals, sockets;
//! * `fd`: calls on descriptors; `path`: calls on paths; `types`: the ABI's numbers.
//!
//! ```no_run
//! use kiln::{Engine, Linker, Module, Store};
//! use kiln_wasi::WasiCtx;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::default();
//! let module = Module::from_file(&engine, "program.wasm")?;
//! let ctx = WasiCtx::builder()
//!     .arg("program")
//!     .env("GREETING", "hello")
//!     .preopened_dir("./data", "/data")?
//!     .build();
//! let mut store = Store::new(&engine, ctx);
//! let mut linker = Linker::new(&engine);
//! kiln_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
//! let instance = linker.instantiate(&mut store, &module)?;
//! let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
//! match start.call(&mut store, ()) {
//!     Ok(()) => {}
//!     Err(e) if kiln_wasi::exit_status(&e).is_some() => {}
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ctx;
mod deadline;
mod fd;
mod guest;
mod path;
mod process;
pub mod types;

use kiln::{Caller, FuncType, Linker, Val, ValType};

pub use ctx::{Stdio, WasiCtx, WasiCtxBuilder, is_kiln_secret};
pub use deadline::{DeadlinePassed, deadline_passed};
pub use process::ProcExit;

use guest::Guest;
use types::Errno;

/// The module name of WASI preview 1 imports.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

type Handler<T> = fn(&mut Guest<'_, T>, &[Val]) -> Result<(), Errno>;

/// The status a program passed to `proc_exit`, if `error` is how its call ended.
pub fn exit_status(error: &kiln::Error) -> Option<i32> {
    match error {
        kiln::Error::Host(e) => e.downcast_ref::<ProcExit>().map(|p| p.0),
        _ => None,
    }
}

/// Defines every `wasi_snapshot_preview1` function in `linker`, working on the
/// [`WasiCtx`] that `get` finds in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> kiln::Result<()> {
    use ValType::{I32, I64};
    let functions: Vec<(&str, &[ValType], Handler<T>)> = vec![
        ("args_get", &[I32, I32], process::args_get),
        ("args_sizes_get", &[I32, I32], process::args_sizes_get),
        ("environ_get", &[I32, I32], process::environ_get),
        ("environ_sizes_get", &[I32, I32], process::environ_sizes_get),
        ("clock_res_get", &[I32, I32], process::clock_res_get),
        ("clock_time_get", &[I32, I64, I32], process::clock_time_get),
        ("random_get", &[I32, I32], process::random_get),
        ("poll_oneoff", &[I32, I32, I32, I32], process::poll_oneoff),
        ("sched_yield", &[], process::sched_yield),
        ("proc_raise", &[I32], process::proc_raise),
        ("sock_accept", &[I32, I32, I32], process::sock_call),
        (
            "sock_recv",
            &[I32, I32, I32, I32, I32, I32],
            process::sock_call,
        ),
        ("sock_send", &[I32, I32, I32, I32, I32], process::sock_call),
        ("sock_shutdown", &[I32, I32], process::sock_call),
        ("fd_advise", &[I32, I64, I64, I32], fd::fd_advise),
        ("fd_allocate", &[I32, I64, I64], fd::fd_allocate),
        ("fd_close", &[I32], fd::fd_close),
        ("fd_datasync", &[I32], fd::fd_datasync),
        ("fd_fdstat_get", &[I32, I32], fd::fd_fdstat_get),
        ("fd_fdstat_set_flags", &[I32, I32], fd::fd_fdstat_set_flags),
        (
            "fd_fdstat_set_rights",
            &[I32, I64, I64],
            fd::fd_fdstat_set_rights,
        ),
        ("fd_filestat_get", &[I32, I32], fd::fd_filestat_get),
        (
            "fd_filestat_set_size",
            &[I32, I64],
            fd::fd_filestat_set_size,
        ),
        (
            "fd_filestat_set_times",
            &[I32, I64, I64, I32],
            fd::fd_filestat_set_times,
        ),
        ("fd_pread", &[I32, I32, I32, I64, I32], fd::fd_pread),
        ("fd_prestat_get", &[I32, I32], fd::fd_prestat_get),
        (
            "fd_prestat_dir_name",
            &[I32, I32, I32],
            fd::fd_prestat_dir_name,
        ),
        ("fd_pwrite", &[I32, I32, I32, I64, I32], fd::fd_pwrite),
        ("fd_read", &[I32, I32, I32, I32], fd::fd_read),
        ("fd_readdir", &[I32, I32, I32, I64, I32], fd::fd_readdir),
        ("fd_renumber", &[I32, I32], fd::fd_renumber),
        ("fd_seek", &[I32, I64, I32, I32], fd::fd_seek),
        ("fd_sync", &[I32], fd::fd_sync),
        ("fd_tell", &[I32, I32], fd::fd_tell),
        ("fd_write", &[I32, I32, I32, I32], fd::fd_write),
        (
            "path_create_directory",
            &[I32, I32, I32],
            path::path_create_directory,
        ),
        (
            "path_filestat_get",
            &[I32, I32, I32, I32, I32],
            path::path_filestat_get,
        ),
        (
            "path_filestat_set_times",
            &[I32, I32, I32, I32, I64, I64, I32],
            path::path_filestat_set_times,
        ),
        (
            "path_link",
            &[I32, I32, I32, I32, I32, I32, I32],
            path::path_link,
        ),
        (
            "path_open",
            &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
            path::path_open,
        ),
        (
            "path_readlink",
            &[I32, I32, I32, I32, I32, I32],
            path::path_readlink,
        ),
        (
            "path_remove_directory",
            &[I32, I32, I32],
            path::path_remove_directory,
        ),
        (
            "path_rename",
            &[I32, I32, I32, I32, I32, I32],
            path::path_rename,
        ),
        (
            "path_symlink",
            &[I32, I32, I32, I32, I32],
            path::path_symlink,
        ),
        ("path_unlink_file", &[I32, I32, I32], path::path_unlink_file),
    ];
    for (name, params, handler) in functions {
        let ty = FuncType::new(params.iter().copied(), [I32]);
        linker.func_new(
            WASI_MODULE,
            name,
            ty,
            move |caller: Caller<'_, T>, args: &[Val], results: &mut [Val]| {
                let mut guest = Guest { caller, get };
                let code = match handler(&mut guest, args) {
                    Ok(()) => types::errno::SUCCESS,
                    Err(deadline::STOP) => {
                        return Err(kiln::Error::Host(Box::new(DeadlinePassed)));
                    }
                    Err(e) => {
                        tracing::debug!(call = name, errno = e, "WASI call failed");
                        e
                    }
                };
                results[0] = Val::I32(i32::from(code));
                Ok(())
            },
        )?;
    }
    linker.func_new(
        WASI_MODULE,
        "proc_exit",
        FuncType::new([I32], []),
        move |mut caller: Caller<'_, T>, args: &[Val], _: &mut [Val]| {
            let code = args[0].i32().unwrap_or_default();
            get(caller.data_mut()).exit_code = Some(code);
            Err(kiln::Error::Host(Box::new(ProcExit(code))))
        },
    )?;
    Ok(())
}
