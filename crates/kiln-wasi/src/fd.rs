//! Calls on open descriptors (`fd_*`): reading and writing (also positioned and vectored),
//! seeking, status and flags, sizes and times, syncing, directory listings with cookies,
//! and the preopened directories' names.

use std::io::{Read, Seek, SeekFrom, Write};

use cap_std::fs::{FileExt, MetadataExt};
use kiln::Val;
use rustix::fs::DirEntryExt;

use crate::ctx::{Descriptor, Dirent, Kind, Stdio, read_stdin, write_output};
use crate::guest::{Guest, MAX_TRANSFER, u32_arg, u64_arg};
use crate::types::{
    Errno, Filestat, errno, errno_of, fdflags, fdstat_bytes, filetype, fstflags, rights,
};

type R = Result<(), Errno>;

fn io<T>(r: std::io::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| errno_of(&e))
}

/// Nanoseconds since the epoch of a metadata time (0 if unknown).
fn time_nanos(t: std::io::Result<cap_std::time::SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The `filestat` of host metadata.
pub(crate) fn filestat(m: &cap_std::fs::Metadata) -> Filestat {
    let ft = m.file_type();
    Filestat {
        dev: m.dev(),
        ino: m.ino(),
        filetype: if ft.is_dir() {
            filetype::DIRECTORY
        } else if ft.is_file() {
            filetype::REGULAR_FILE
        } else if ft.is_symlink() {
            filetype::SYMBOLIC_LINK
        } else {
            filetype::UNKNOWN
        },
        nlink: m.nlink(),
        size: m.len(),
        atim: time_nanos(m.accessed()),
        mtim: time_nanos(m.modified()),
        ctim: u64::try_from(m.ctime())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(m.ctime_nsec()).unwrap_or(0)),
    }
}

pub(crate) fn fd_close<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let fd = u32_arg(a, 0);
    g.ctx().get(fd)?;
    g.ctx().fds[fd as usize] = None;
    Ok(())
}

pub(crate) fn fd_renumber<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (from, to) = (u32_arg(a, 0), u32_arg(a, 1));
    let ctx = g.ctx();
    ctx.get(from)?;
    ctx.get(to)?;
    let d = ctx.fds[from as usize].take();
    ctx.fds[to as usize] = d;
    Ok(())
}

/// Reads into the iovecs; `at` is a position for `fd_pread`.
fn read_into<T: 'static>(g: &mut Guest<'_, T>, a: &[Val], at: Option<u64>, out: u32) -> R {
    let (fd, iovs, count) = (u32_arg(a, 0), u32_arg(a, 1), u32_arg(a, 2));
    let iovecs = g.iovecs(iovs, count)?;
    // Every destination, and where the count goes, must lie in memory before a byte is
    // consumed from the file or stream: a read that cannot be delivered must not lose data.
    for &(ptr, len) in &iovecs {
        g.check(ptr, len)?;
    }
    g.check(out, 4)?;
    let total: u64 = iovecs.iter().map(|&(_, len)| u64::from(len)).sum();
    let mut buf = vec![0u8; total.min(MAX_TRANSFER as u64) as usize];
    let deadline = g.ctx().deadline;
    let d = g.ctx().get_mut(fd)?;
    d.require(rights::FD_READ)?;
    if deadline.is_some() {
        match &d.kind {
            Kind::Stdin(Stdio::Inherit) => {
                crate::deadline::before_blocking(std::io::stdin(), false, deadline)?
            }
            Kind::File(f) if crate::deadline::may_block(f) => {
                crate::deadline::before_blocking(f, false, deadline)?
            }
            _ => {}
        }
    }
    let n = match (&mut d.kind, at) {
        (Kind::Stdin(s), None) => io(read_stdin(s, &mut buf))?,
        (Kind::File(f), None) => io(f.read(&mut buf))?,
        (Kind::File(f), Some(at)) => io(f.read_at(&mut buf, at))?,
        (Kind::Dir { .. }, _) => return Err(errno::ISDIR),
        (Kind::Output(..), _) => return Err(errno::BADF),
        (Kind::Stdin(_), Some(_)) => return Err(errno::SPIPE),
    };
    g.scatter(&iovecs, &buf[..n])?;
    g.write_u32(out, n as u32)
}

pub(crate) fn fd_read<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    read_into(g, a, None, u32_arg(a, 3))
}

pub(crate) fn fd_pread<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    read_into(g, a, Some(u64_arg(a, 3)), u32_arg(a, 4))
}

/// Writes the iovecs; `at` is a position for `fd_pwrite`.
fn write_from<T: 'static>(g: &mut Guest<'_, T>, a: &[Val], at: Option<u64>, out: u32) -> R {
    let (fd, iovs, count) = (u32_arg(a, 0), u32_arg(a, 1), u32_arg(a, 2));
    let data = g.gather(iovs, count)?;
    // A write whose count cannot be reported would be retried and done twice.
    g.check(out, 4)?;
    let ctx = g.ctx();
    if matches!(ctx.get(fd)?.kind, Kind::Output(..)) {
        ctx.output_bytes += data.len() as u64;
    }
    let deadline = ctx.deadline;
    let d = ctx.get_mut(fd)?;
    d.require(rights::FD_WRITE)?;
    if deadline.is_some() {
        // Waits until a write can start; one larger than the free space of a pipe can still
        // block (`kiln run --timeout` ends the process then).
        match &d.kind {
            Kind::Output(Stdio::Inherit, false) => {
                crate::deadline::before_blocking(std::io::stdout(), true, deadline)?
            }
            Kind::Output(Stdio::Inherit, true) => {
                crate::deadline::before_blocking(std::io::stderr(), true, deadline)?
            }
            Kind::File(f) if crate::deadline::may_block(f) => {
                crate::deadline::before_blocking(f, true, deadline)?
            }
            _ => {}
        }
    }
    let append = d.flags & fdflags::APPEND != 0;
    match (&mut d.kind, at) {
        (Kind::Output(s, stderr), None) => io(write_output(s, *stderr, &data))?,
        (Kind::File(f), None) => {
            if append {
                io(f.seek(SeekFrom::End(0)))?;
            }
            io(f.write_all(&data))?
        }
        (Kind::File(f), Some(at)) => io(f.write_all_at(&data, at))?,
        (Kind::Dir { .. }, _) => return Err(errno::ISDIR),
        (Kind::Stdin(_), _) => return Err(errno::BADF),
        (Kind::Output(..), Some(_)) => return Err(errno::SPIPE),
    }
    g.write_u32(out, data.len() as u32)
}

pub(crate) fn fd_write<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    write_from(g, a, None, u32_arg(a, 3))
}

pub(crate) fn fd_pwrite<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    write_from(g, a, Some(u64_arg(a, 3)), u32_arg(a, 4))
}

/// The open file behind `fd`, which must hold `needed`.
fn file(d: &mut Descriptor, needed: u64) -> Result<&mut cap_std::fs::File, Errno> {
    match &mut d.kind {
        Kind::File(f) => {
            if d.rights_base & needed != needed {
                return Err(errno::NOTCAPABLE);
            }
            Ok(f)
        }
        Kind::Dir { .. } => Err(errno::ISDIR),
        _ => Err(errno::SPIPE),
    }
}

pub(crate) fn fd_seek<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (fd, offset, whence, out) = (
        u32_arg(a, 0),
        u64_arg(a, 1) as i64,
        u32_arg(a, 2),
        u32_arg(a, 3),
    );
    let needed = if offset == 0 && whence == 1 {
        rights::FD_TELL
    } else {
        rights::FD_SEEK
    };
    let f = file(g.ctx().get_mut(fd)?, needed)?;
    let pos = match whence {
        0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| errno::INVAL)?),
        1 => SeekFrom::Current(offset),
        2 => SeekFrom::End(offset),
        _ => return Err(errno::INVAL),
    };
    let new = io(f.seek(pos))?;
    g.write_u64(out, new)
}

pub(crate) fn fd_tell<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let f = file(g.ctx().get_mut(u32_arg(a, 0))?, rights::FD_TELL)?;
    let pos = io(f.stream_position())?;
    g.write_u64(u32_arg(a, 1), pos)
}

pub(crate) fn fd_fdstat_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let d = g.ctx().get(u32_arg(a, 0))?;
    let stat = fdstat_bytes(d.filetype(), d.flags, d.rights_base, d.rights_inheriting);
    g.write(u32_arg(a, 1), &stat)
}

pub(crate) fn fd_fdstat_set_flags<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let flags = u32_arg(a, 1);
    let d = g.ctx().get_mut(u32_arg(a, 0))?;
    d.require(rights::FD_FDSTAT_SET_FLAGS)?;
    // APPEND can be switched at any time; the synchronisation and non-blocking flags are
    // fixed when a file is opened, so asking to change them is not supported.
    let fixed = !fdflags::APPEND;
    if (flags as u16 ^ d.flags) & fixed != 0 || flags > u32::from(fdflags::ALL) {
        return Err(errno::NOTSUP);
    }
    // A file's host descriptor carries O_APPEND (`path_open`): switch it there too, or
    // writes would go on appending.
    if let Kind::File(f) = &d.kind {
        let host = io(rustix::fs::fcntl_getfl(f).map_err(std::io::Error::from))?;
        let host = if flags as u16 & fdflags::APPEND != 0 {
            host | rustix::fs::OFlags::APPEND
        } else {
            host - rustix::fs::OFlags::APPEND
        };
        io(rustix::fs::fcntl_setfl(f, host).map_err(std::io::Error::from))?;
    }
    d.flags = flags as u16;
    Ok(())
}

pub(crate) fn fd_fdstat_set_rights<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (base, inheriting) = (u64_arg(a, 1), u64_arg(a, 2));
    let d = g.ctx().get_mut(u32_arg(a, 0))?;
    // Rights can only be dropped, never gained.
    if base & !d.rights_base != 0 || inheriting & !d.rights_inheriting != 0 {
        return Err(errno::NOTCAPABLE);
    }
    d.rights_base = base;
    d.rights_inheriting = inheriting;
    Ok(())
}

pub(crate) fn fd_filestat_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let d = g.ctx().get(u32_arg(a, 0))?;
    d.require(rights::FD_FILESTAT_GET)?;
    let stat = match &d.kind {
        Kind::File(f) => filestat(&io(f.metadata())?),
        Kind::Dir { dir, .. } => filestat(&io(dir.dir_metadata())?),
        Kind::Stdin(_) | Kind::Output(..) => Filestat {
            filetype: filetype::CHARACTER_DEVICE,
            ..Filestat::default()
        },
    };
    g.write(u32_arg(a, 1), &stat.to_bytes())
}

pub(crate) fn fd_filestat_set_size<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let f = file(
        g.ctx().get_mut(u32_arg(a, 0))?,
        rights::FD_FILESTAT_SET_SIZE,
    )?;
    io(f.set_len(u64_arg(a, 1)))
}

/// The `Timestamps` a `*_set_times` call asks for.
pub(crate) fn timestamps(
    atim: u64,
    mtim: u64,
    flags: u16,
) -> Result<rustix::fs::Timestamps, Errno> {
    if (flags & fstflags::ATIM != 0 && flags & fstflags::ATIM_NOW != 0)
        || (flags & fstflags::MTIM != 0 && flags & fstflags::MTIM_NOW != 0)
        || flags & !0xf != 0
    {
        return Err(errno::INVAL);
    }
    let spec = |set: u16, now: u16, value: u64| {
        let mut t = rustix::fs::Timespec {
            tv_sec: (value / 1_000_000_000) as i64,
            tv_nsec: (value % 1_000_000_000) as _,
        };
        if flags & now != 0 {
            t.tv_nsec = rustix::fs::UTIME_NOW;
        } else if flags & set == 0 {
            t.tv_nsec = rustix::fs::UTIME_OMIT;
        }
        t
    };
    Ok(rustix::fs::Timestamps {
        last_access: spec(fstflags::ATIM, fstflags::ATIM_NOW, atim),
        last_modification: spec(fstflags::MTIM, fstflags::MTIM_NOW, mtim),
    })
}

pub(crate) fn fd_filestat_set_times<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let times = timestamps(u64_arg(a, 1), u64_arg(a, 2), u32_arg(a, 3) as u16)?;
    let d = g.ctx().get(u32_arg(a, 0))?;
    d.require(rights::FD_FILESTAT_SET_TIMES)?;
    // The descriptor is already open inside the sandbox, so setting its times by
    // descriptor touches no path.
    match &d.kind {
        Kind::File(f) => rustix::fs::futimens(f, &times),
        Kind::Dir { dir, .. } => rustix::fs::futimens(dir, &times),
        _ => return Err(errno::BADF),
    }
    .map_err(|e| errno_of(&e.into()))
}

pub(crate) fn fd_advise<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    if u32_arg(a, 3) > 5 {
        return Err(errno::INVAL);
    }
    // Advice is only a hint; the file just has to be one that may receive it.
    file(g.ctx().get_mut(u32_arg(a, 0))?, rights::FD_ADVISE).map(|_| ())
}

pub(crate) fn fd_allocate<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let end = u64_arg(a, 1)
        .checked_add(u64_arg(a, 2))
        .ok_or(errno::FBIG)?;
    let f = file(g.ctx().get_mut(u32_arg(a, 0))?, rights::FD_ALLOCATE)?;
    if io(f.metadata())?.len() < end {
        io(f.set_len(end))?;
    }
    Ok(())
}

pub(crate) fn fd_datasync<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let f = file(g.ctx().get_mut(u32_arg(a, 0))?, rights::FD_DATASYNC)?;
    io(f.sync_data())
}

pub(crate) fn fd_sync<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let d = g.ctx().get_mut(u32_arg(a, 0))?;
    d.require(rights::FD_SYNC)?;
    match &d.kind {
        Kind::File(f) => io(f.sync_all()),
        Kind::Dir { dir, .. } => rustix::fs::fsync(dir).map_err(|e| errno_of(&e.into())),
        _ => Err(errno::INVAL),
    }
}

/// The guest name of preopened directory `fd`; `BADF` for any other descriptor (wasi-libc
/// walks descriptors from 3 upwards and stops at the first `BADF`).
fn preopen_name<T: 'static>(g: &mut Guest<'_, T>, fd: u32) -> Result<Vec<u8>, Errno> {
    match &g.ctx().get(fd)?.kind {
        Kind::Dir {
            preopen: Some(name),
            ..
        } => Ok(name.clone().into_bytes()),
        _ => Err(errno::BADF),
    }
}

pub(crate) fn fd_prestat_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let name = preopen_name(g, u32_arg(a, 0))?;
    let mut prestat = [0u8; 8];
    prestat[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
    g.write(u32_arg(a, 1), &prestat)
}

pub(crate) fn fd_prestat_dir_name<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let name = preopen_name(g, u32_arg(a, 0))?;
    if name.len() > u32_arg(a, 2) as usize {
        return Err(errno::NAMETOOLONG);
    }
    g.write(u32_arg(a, 1), &name)
}

/// The entries of `dir`: `.`, `..`, then its own in the order the host lists them.
fn list(dir: &cap_std::fs::Dir) -> Result<Vec<Dirent>, Errno> {
    use std::os::unix::ffi::OsStringExt;
    let mut entries = vec![
        Dirent {
            name: b".".to_vec(),
            filetype: filetype::DIRECTORY,
            ino: io(dir.dir_metadata())?.ino(),
        },
        Dirent {
            name: b"..".to_vec(),
            filetype: filetype::DIRECTORY,
            ino: 0,
        },
    ];
    for entry in io(dir.entries())? {
        let entry = io(entry)?;
        let filetype = match entry.file_type() {
            Ok(t) if t.is_dir() => filetype::DIRECTORY,
            Ok(t) if t.is_file() => filetype::REGULAR_FILE,
            Ok(t) if t.is_symlink() => filetype::SYMBOLIC_LINK,
            _ => filetype::UNKNOWN,
        };
        entries.push(Dirent {
            ino: entry.ino(),
            name: entry.file_name().into_vec(),
            filetype,
        });
    }
    Ok(entries)
}

/// `fd_readdir(fd, buf, buf_len, cookie, bufused)`: entries `.`, `..`, then the directory's
/// own in the order the host lists them; the cookie of an entry is its position plus one.
/// The last entry is cut off when the buffer is full, which tells the caller to continue.
/// The directory is listed when a caller starts from cookie 0 and that listing serves the
/// calls that continue it, so a directory read in k calls is listed once, not k times, and
/// its cookies stay meaningful while it changes. Names are passed as the host's bytes.
pub(crate) fn fd_readdir<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (fd, buf, buf_len, cookie, used) = (
        u32_arg(a, 0),
        u32_arg(a, 1),
        u32_arg(a, 2),
        u64_arg(a, 3),
        u32_arg(a, 4),
    );
    let d = g.ctx().get_mut(fd)?;
    d.require(rights::FD_READDIR)?;
    let Kind::Dir { dir, listing, .. } = &mut d.kind else {
        return Err(errno::NOTDIR);
    };
    if cookie == 0 || listing.is_none() {
        *listing = Some(list(dir)?);
    }
    let entries = listing.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate().skip(cookie as usize) {
        let mut dirent = [0u8; 24];
        dirent[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        dirent[8..16].copy_from_slice(&entry.ino.to_le_bytes());
        dirent[16..20].copy_from_slice(&(entry.name.len() as u32).to_le_bytes());
        dirent[20] = entry.filetype;
        out.extend_from_slice(&dirent);
        out.extend_from_slice(&entry.name);
        if out.len() >= buf_len as usize {
            break;
        }
    }
    out.truncate(buf_len as usize);
    g.write(buf, &out)?;
    g.write_u32(used, out.len() as u32)
}
