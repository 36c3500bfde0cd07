//! Calls that name a path relative to a directory descriptor (`path_*`). Every one goes
//! through `cap_std::fs::Dir`, which resolves the path inside that directory only: `..`
//! above it, absolute paths and symlinks leading out fail (as `PERM`), also when the tree
//! changes during the call.

use std::time::{Duration, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, SystemTimeSpec};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use kiln::Val;

use crate::ctx::{Descriptor, Kind};
use crate::fd::filestat;
use crate::guest::{Guest, u32_arg, u64_arg};
use crate::types::{
    Errno, LOOKUP_SYMLINK_FOLLOW, errno, errno_of, fdflags, fstflags, oflags, rights,
};

type R = Result<(), Errno>;

fn io<T>(r: std::io::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| errno_of(&e))
}

/// Reads the path argument at `a[i]`, `a[i + 1]`.
fn path_arg<T: 'static>(g: &mut Guest<'_, T>, a: &[Val], i: usize) -> Result<String, Errno> {
    g.string(u32_arg(a, i), u32_arg(a, i + 1))
}

pub(crate) fn path_open<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (fd, lookup) = (u32_arg(a, 0), u32_arg(a, 1));
    let path = path_arg(g, a, 2)?;
    let (oflags, base, inheriting) = (u32_arg(a, 4) as u16, u64_arg(a, 5), u64_arg(a, 6));
    let (fdflags, out) = (u32_arg(a, 7) as u16, u32_arg(a, 8));
    if fdflags & !fdflags::ALL != 0 || oflags & !0xf != 0 {
        return Err(errno::INVAL);
    }
    // Where the new descriptor goes must be writable before anything is opened or created,
    // or a bad pointer would leave a file created and a descriptor nobody can name.
    g.check(out, 4)?;
    let follow = lookup & LOOKUP_SYMLINK_FOLLOW != 0;
    let ctx = g.ctx();
    let deadline = ctx.deadline;
    let parent = ctx.get(fd)?;
    let mut needed = rights::PATH_OPEN;
    if oflags & oflags::CREAT != 0 {
        needed |= rights::PATH_CREATE_FILE;
    }
    if oflags & oflags::TRUNC != 0 {
        needed |= rights::PATH_FILESTAT_SET_SIZE;
    }
    let dir = ctx.dir(fd, needed)?;
    let allowed = parent.rights_inheriting;

    let kind = if oflags & oflags::DIRECTORY != 0 {
        if oflags & (oflags::CREAT | oflags::EXCL | oflags::TRUNC) != 0 {
            return Err(errno::INVAL);
        }
        // A directory cannot be written: asking for the right is an error, not a right
        // silently dropped.
        if base & rights::FD_WRITE != 0 {
            return Err(errno::ISDIR);
        }
        let sub = if follow {
            dir.open_dir(&path)
        } else {
            dir.open_dir_nofollow(&path)
        };
        Kind::Dir {
            dir: io(sub)?,
            preopen: None,
            listing: None,
        }
    } else {
        let read = base & (rights::FD_READ | rights::FD_READDIR) != 0;
        let write =
            base & (rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE) != 0;
        let create = oflags & oflags::CREAT != 0;
        let truncate = oflags & oflags::TRUNC != 0;
        let mut opts = OpenOptions::new();
        // Creating or truncating needs a writable handle on the host; what the program may
        // do with it is still limited by the rights recorded below.
        opts.read(read || !(write || create || truncate))
            .write(write || create || truncate)
            .create(create)
            .create_new(create && oflags & oflags::EXCL != 0)
            .truncate(truncate)
            .follow(if follow {
                FollowSymlinks::Yes
            } else {
                FollowSymlinks::No
            });
        // APPEND, the synchronisation and the non-blocking flags go to the host as open flags
        // (APPEND as a custom flag: the standard options refuse it together with truncate,
        // which POSIX allows).
        let mut custom = rustix::fs::OFlags::empty();
        for (flag, host) in [
            (fdflags::APPEND, rustix::fs::OFlags::APPEND),
            (fdflags::DSYNC, rustix::fs::OFlags::DSYNC),
            (fdflags::NONBLOCK, rustix::fs::OFlags::NONBLOCK),
            (fdflags::RSYNC, rustix::fs::OFlags::RSYNC),
            (fdflags::SYNC, rustix::fs::OFlags::SYNC),
        ] {
            if fdflags & flag != 0 {
                custom |= host;
            }
        }
        opts.custom_flags(custom.bits() as i32);
        let file = match deadline {
            Some(_) if is_fifo(dir, &path, follow) => {
                let blocking = fdflags & fdflags::NONBLOCK == 0;
                open_fifo(dir, &path, &mut opts, custom, write, blocking, deadline)?
            }
            _ => io(dir.open_with(&path, &opts))?,
        };
        if io(file.metadata())?.is_dir() {
            Kind::Dir {
                dir: Dir::from_std_file(file.into_std()),
                preopen: None,
                listing: None,
            }
        } else {
            Kind::File(file)
        }
    };
    let ceiling = match kind {
        Kind::Dir { .. } => rights::DIRECTORY,
        _ => rights::FILE,
    };
    let new = ctx.insert(Descriptor {
        kind,
        rights_base: base & allowed & ceiling,
        rights_inheriting: inheriting & allowed,
        flags: fdflags,
    })?;
    g.write_u32(out, new)
}

fn is_fifo(dir: &Dir, path: &str, follow: bool) -> bool {
    use cap_std::fs::FileTypeExt;
    let meta = if follow {
        dir.metadata(path)
    } else {
        dir.symlink_metadata(path)
    };
    meta.is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens the FIFO `path` within the deadline ([`crate::deadline`]): an open of a FIFO waits
/// for the other end, so it is opened without blocking, for writing retried while no reader
/// is there, for reading followed by a wait until a writer has written or left; then it is
/// made blocking again unless the program asked otherwise.
fn open_fifo(
    dir: &Dir,
    path: &str,
    opts: &mut OpenOptions,
    custom: rustix::fs::OFlags,
    write: bool,
    blocking: bool,
    deadline: Option<std::time::Instant>,
) -> Result<cap_std::fs::File, Errno> {
    opts.custom_flags((custom | rustix::fs::OFlags::NONBLOCK).bits() as i32);
    let file = loop {
        match dir.open_with(path, opts) {
            Ok(file) => break file,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                crate::deadline::remaining(deadline)?;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(errno_of(&e)),
        }
    };
    if !write {
        crate::deadline::before_blocking(&file, false, deadline)?;
    }
    if blocking {
        let flags = io(rustix::fs::fcntl_getfl(&file).map_err(std::io::Error::from))?;
        io(
            rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
                .map_err(std::io::Error::from),
        )?;
    }
    Ok(file)
}

pub(crate) fn path_create_directory<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 1)?;
    let dir = g.ctx().dir(u32_arg(a, 0), rights::PATH_CREATE_DIRECTORY)?;
    io(dir.create_dir(&path))
}

pub(crate) fn path_remove_directory<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 1)?;
    let dir = g.ctx().dir(u32_arg(a, 0), rights::PATH_REMOVE_DIRECTORY)?;
    io(dir.remove_dir(&path))
}

pub(crate) fn path_unlink_file<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 1)?;
    let dir = g.ctx().dir(u32_arg(a, 0), rights::PATH_UNLINK_FILE)?;
    io(dir.remove_file_or_symlink(&path))
}

pub(crate) fn path_filestat_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 2)?;
    let dir = g.ctx().dir(u32_arg(a, 0), rights::PATH_FILESTAT_GET)?;
    let meta = if u32_arg(a, 1) & LOOKUP_SYMLINK_FOLLOW != 0 {
        dir.metadata(&path)
    } else {
        dir.symlink_metadata(&path)
    };
    let stat = filestat(&io(meta)?);
    g.write(u32_arg(a, 4), &stat.to_bytes())
}

/// One time of `path_filestat_set_times`, as cap-std takes it.
fn time_spec(flags: u16, set: u16, now: u16, value: u64) -> Option<SystemTimeSpec> {
    if flags & now != 0 {
        Some(SystemTimeSpec::SymbolicNow)
    } else if flags & set != 0 {
        let t = UNIX_EPOCH + Duration::from_nanos(value);
        Some(SystemTimeSpec::Absolute(
            cap_std::time::SystemTime::from_std(t),
        ))
    } else {
        None
    }
}

pub(crate) fn path_filestat_set_times<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 2)?;
    let (atim, mtim, flags) = (u64_arg(a, 4), u64_arg(a, 5), u32_arg(a, 6) as u16);
    crate::fd::timestamps(atim, mtim, flags)?; // validates the flag combination
    let dir = g
        .ctx()
        .dir(u32_arg(a, 0), rights::PATH_FILESTAT_SET_TIMES)?;
    let atime = time_spec(flags, fstflags::ATIM, fstflags::ATIM_NOW, atim);
    let mtime = time_spec(flags, fstflags::MTIM, fstflags::MTIM_NOW, mtim);
    if u32_arg(a, 1) & LOOKUP_SYMLINK_FOLLOW != 0 {
        io(dir.set_times(&path, atime, mtime))
    } else {
        io(dir.set_symlink_times(&path, atime, mtime))
    }
}

pub(crate) fn path_link<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let old = path_arg(g, a, 2)?;
    let new = path_arg(g, a, 5)?;
    if u32_arg(a, 1) & LOOKUP_SYMLINK_FOLLOW != 0 {
        // Linking to a symlink's target is not offered by the host call cap-std uses.
        return Err(errno::INVAL);
    }
    let ctx = g.ctx();
    let from = ctx.dir(u32_arg(a, 0), rights::PATH_LINK_SOURCE)?;
    let to = ctx.dir(u32_arg(a, 4), rights::PATH_LINK_TARGET)?;
    io(from.hard_link(&old, to, &new))
}

pub(crate) fn path_rename<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let old = path_arg(g, a, 1)?;
    let new = path_arg(g, a, 4)?;
    let ctx = g.ctx();
    let from = ctx.dir(u32_arg(a, 0), rights::PATH_RENAME_SOURCE)?;
    let to = ctx.dir(u32_arg(a, 3), rights::PATH_RENAME_TARGET)?;
    io(from.rename(&old, to, &new))
}

pub(crate) fn path_symlink<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let target = path_arg(g, a, 0)?;
    let link = path_arg(g, a, 3)?;
    let dir = g.ctx().dir(u32_arg(a, 2), rights::PATH_SYMLINK)?;
    // An absolute target could only ever point outside the sandbox.
    if target.starts_with('/') {
        return Err(errno::PERM);
    }
    io(dir.symlink(&target, &link))
}

pub(crate) fn path_readlink<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let path = path_arg(g, a, 1)?;
    let (buf, buf_len, used) = (u32_arg(a, 3), u32_arg(a, 4), u32_arg(a, 5));
    let dir = g.ctx().dir(u32_arg(a, 0), rights::PATH_READLINK)?;
    let target = io(dir.read_link_contents(&path))?;
    // An absolute target names a place on the host outside every preopen: telling it to the
    // program would disclose the host's layout (Wasmtime refuses the same way).
    if target.is_absolute() {
        return Err(errno::PERM);
    }
    let mut bytes = target.to_string_lossy().into_owned().into_bytes();
    bytes.truncate(buf_len as usize);
    g.write(buf, &bytes)?;
    g.write_u32(used, bytes.len() as u32)
}
