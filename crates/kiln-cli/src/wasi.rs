//! A minimal, honest subset of WASI preview 1: enough for simple clang/wasi-libc programs
//! to print to stdout/stderr, read their arguments, the clocks and random bytes, and exit.
//! There is no filesystem and an empty environment; every other `wasi_snapshot_preview1`
//! function the module imports returns `ENOSYS`.

use std::io::{IsTerminal, Read, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kiln::{Caller, Extern, Linker, Memory, Module, Val, ValType};

/// The WASI module name.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;
const ESPIPE: i32 = 70;

const FILETYPE_UNKNOWN: u8 = 0;
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;

/// The state WASI functions share: the program's arguments and its exit status.
pub struct WasiCtx {
    args: Vec<String>,
    start: Instant,
    /// The status passed to `proc_exit`, once called.
    pub exit_code: Option<i32>,
}

impl WasiCtx {
    /// A context whose `argv` is `args` (the program name first).
    pub fn new(args: Vec<String>) -> Self {
        WasiCtx {
            args,
            start: Instant::now(),
            exit_code: None,
        }
    }
}

/// The error `proc_exit` unwinds with.
#[derive(Debug)]
pub struct ProcExit(pub i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "program exited with status {}", self.0)
    }
}

impl std::error::Error for ProcExit {}

type Cx<'a> = Caller<'a, WasiCtx>;

/// Checked access to the calling instance's exported `memory`.
struct Mem<'c, 'a> {
    caller: &'c mut Cx<'a>,
    memory: Memory,
}

impl<'c, 'a> Mem<'c, 'a> {
    fn new(caller: &'c mut Cx<'a>) -> Result<Self, i32> {
        let memory = caller
            .get_export("memory")
            .and_then(Extern::into_memory)
            .ok_or(EFAULT)?;
        Ok(Mem { caller, memory })
    }

    /// `EFAULT` unless `addr..addr + len` lies inside the memory.
    fn check(&mut self, addr: i32, len: u32) -> Result<(), i32> {
        let end = (addr as u32 as usize).saturating_add(len as usize);
        if end > self.memory.data_size(&mut *self.caller) {
            return Err(EFAULT);
        }
        Ok(())
    }

    fn read(&mut self, addr: i32, len: u32) -> Result<Vec<u8>, i32> {
        self.check(addr, len)?;
        let mut buf = vec![0; len as usize];
        self.memory
            .read(&mut *self.caller, addr as u32 as usize, &mut buf)
            .map_err(|_| EFAULT)?;
        Ok(buf)
    }

    fn write(&mut self, addr: i32, bytes: &[u8]) -> Result<(), i32> {
        self.memory
            .write(&mut *self.caller, addr as u32 as usize, bytes)
            .map_err(|_| EFAULT)
    }
}

fn errno(result: Result<(), i32>) -> i32 {
    result.err().unwrap_or(SUCCESS)
}

fn fd_write(caller: &mut Cx<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32 {
    errno((|| {
        let mut mem = Mem::new(caller)?;
        // Each iovec is { buf: u32, len: u32 }.
        let table_len = (iovs_len as u32).checked_mul(8).ok_or(EFAULT)?;
        let table = mem.read(iovs, table_len)?;
        let mut data = Vec::new();
        for iovec in table.chunks_exact(8) {
            let ptr = u32::from_le_bytes([iovec[0], iovec[1], iovec[2], iovec[3]]);
            let len = u32::from_le_bytes([iovec[4], iovec[5], iovec[6], iovec[7]]);
            data.extend(mem.read(ptr as i32, len)?);
        }
        let written = match fd {
            1 => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data).and_then(|()| out.flush())
            }
            2 => std::io::stderr().lock().write_all(&data),
            _ => return Err(EBADF),
        };
        written.map_err(|_| EIO)?;
        mem.write(nwritten, &(data.len() as u32).to_le_bytes())
    })())
}

/// Sizes of a NUL-terminated string list: count and total bytes.
fn list_sizes(list: &[String]) -> (u32, u32) {
    let bytes = list.iter().map(|s| s.len() + 1).sum::<usize>();
    (list.len() as u32, bytes as u32)
}

fn write_sizes(caller: &mut Cx<'_>, list: &[String], count_ptr: i32, size_ptr: i32) -> i32 {
    let (count, size) = list_sizes(list);
    errno((|| {
        let mut mem = Mem::new(caller)?;
        mem.write(count_ptr, &count.to_le_bytes())?;
        mem.write(size_ptr, &size.to_le_bytes())
    })())
}

fn write_list(caller: &mut Cx<'_>, list: &[String], ptrs: i32, buf: i32) -> i32 {
    errno((|| {
        let mut mem = Mem::new(caller)?;
        let mut at = buf as u32;
        for (i, s) in list.iter().enumerate() {
            mem.write(ptrs.wrapping_add(4 * i as i32), &at.to_le_bytes())?;
            let mut bytes = s.as_bytes().to_vec();
            bytes.push(0);
            mem.write(at as i32, &bytes)?;
            at = at.wrapping_add(bytes.len() as u32);
        }
        Ok(())
    })())
}

fn fd_fdstat_get(caller: &mut Cx<'_>, fd: i32, out: i32) -> i32 {
    let (terminal, rights) = match fd {
        0 => (std::io::stdin().is_terminal(), RIGHT_FD_READ),
        1 => (std::io::stdout().is_terminal(), RIGHT_FD_WRITE),
        2 => (std::io::stderr().is_terminal(), RIGHT_FD_WRITE),
        _ => return EBADF,
    };
    // fdstat: filetype u8, flags u16 at 2, rights_base u64 at 8, rights_inheriting u64 at 16.
    let mut stat = [0u8; 24];
    stat[0] = if terminal {
        FILETYPE_CHARACTER_DEVICE
    } else {
        FILETYPE_UNKNOWN
    };
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    errno(Mem::new(caller).and_then(|mut mem| mem.write(out, &stat)))
}

fn clock_time_get(caller: &mut Cx<'_>, id: i32, out: i32) -> i32 {
    let nanos = match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        1 => caller.data().start.elapsed().as_nanos() as u64,
        2 | 3 => return ENOTSUP,
        _ => return EINVAL,
    };
    errno(Mem::new(caller).and_then(|mut mem| mem.write(out, &nanos.to_le_bytes())))
}

fn random_get(caller: &mut Cx<'_>, buf: i32, len: i32) -> i32 {
    errno((|| {
        let mut mem = Mem::new(caller)?;
        mem.check(buf, len as u32)?;
        let mut bytes = vec![0u8; len as u32 as usize];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|_| EIO)?;
        mem.write(buf, &bytes)
    })())
}

/// Defines the WASI functions in `linker`, plus an `ENOSYS` stub for every other
/// `wasi_snapshot_preview1` function `module` imports.
pub fn add_to_linker(linker: &mut Linker<WasiCtx>, module: &Module) -> kiln::Result<()> {
    const W: &str = WASI_MODULE;
    linker.func_wrap(
        W,
        "fd_write",
        |mut c: Cx<'_>, fd: i32, iovs: i32, n: i32, out: i32| fd_write(&mut c, fd, iovs, n, out),
    )?;
    linker.func_wrap(
        W,
        "proc_exit",
        |mut c: Cx<'_>, code: i32| -> kiln::Result<()> {
            c.data_mut().exit_code = Some(code);
            Err(kiln::Error::Host(Box::new(ProcExit(code))))
        },
    )?;
    linker.func_wrap(
        W,
        "args_sizes_get",
        |mut c: Cx<'_>, count: i32, size: i32| {
            let args = c.data().args.clone();
            write_sizes(&mut c, &args, count, size)
        },
    )?;
    linker.func_wrap(W, "args_get", |mut c: Cx<'_>, ptrs: i32, buf: i32| {
        let args = c.data().args.clone();
        write_list(&mut c, &args, ptrs, buf)
    })?;
    linker.func_wrap(
        W,
        "environ_sizes_get",
        |mut c: Cx<'_>, count: i32, size: i32| write_sizes(&mut c, &[], count, size),
    )?;
    linker.func_wrap(W, "environ_get", |mut c: Cx<'_>, ptrs: i32, buf: i32| {
        write_list(&mut c, &[], ptrs, buf)
    })?;
    linker.func_wrap(W, "fd_close", |fd: i32| match fd {
        0..=2 => SUCCESS,
        _ => EBADF,
    })?;
    linker.func_wrap(
        W,
        "fd_seek",
        |fd: i32, _offset: i64, _whence: i32, _out: i32| match fd {
            0..=2 => ESPIPE,
            _ => EBADF,
        },
    )?;
    linker.func_wrap(W, "fd_fdstat_get", |mut c: Cx<'_>, fd: i32, out: i32| {
        fd_fdstat_get(&mut c, fd, out)
    })?;
    linker.func_wrap(
        W,
        "clock_time_get",
        |mut c: Cx<'_>, id: i32, _precision: i64, out: i32| clock_time_get(&mut c, id, out),
    )?;
    linker.func_wrap(W, "random_get", |mut c: Cx<'_>, buf: i32, len: i32| {
        random_get(&mut c, buf, len)
    })?;

    const DEFINED: [&str; 11] = [
        "fd_write",
        "proc_exit",
        "args_sizes_get",
        "args_get",
        "environ_sizes_get",
        "environ_get",
        "fd_close",
        "fd_seek",
        "fd_fdstat_get",
        "clock_time_get",
        "random_get",
    ];
    let mut stubbed = Vec::new();
    for import in module.imports() {
        if import.module() != W
            || DEFINED.contains(&import.name())
            || stubbed.contains(&import.name().to_owned())
        {
            continue;
        }
        stubbed.push(import.name().to_owned());
        let kiln::ExternType::Func(ty) = import.ty() else {
            continue;
        };
        if ty.results != [ValType::I32] {
            continue; // not a preview 1 function; the link error will name it
        }
        linker.func_new(W, import.name(), ty, |_, _, results: &mut [Val]| {
            results[0] = Val::I32(ENOSYS);
            Ok(())
        })?;
    }
    Ok(())
}
