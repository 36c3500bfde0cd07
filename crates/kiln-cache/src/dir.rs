//! The cache's directories, each opened once and then used only through its descriptor.
//!
//! A path is resolved again by every call that takes one, so a check made on a path says
//! nothing about the file a later call reaches: someone who can swap a name on the way (a
//! symlink in a shared or sticky directory) wins the race. So the root is opened once, its
//! owner and mode are checked on the open descriptor, and every later open, create, rename,
//! listing and removal is relative to a descriptor, names one component, and never follows
//! a symbolic link (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). Entries are opened
//! `O_NONBLOCK`, so a FIFO or device at an entry's name cannot block, and `fstat`ed before
//! anything reads them.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::error::{CacheError, io};

/// Whether a directory's contents are trusted because of who may write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// No key: entries run as they are, so every directory and entry must be this user's
    /// own and writable by nobody else.
    Ownership,
    /// A key: every entry's seal is verified, so anyone may write the directory.
    Seal,
}

/// An open directory of the cache, the path it was opened as (for messages only) and the
/// file system it is on.
#[derive(Debug)]
pub(crate) struct CacheDir {
    fd: OwnedFd,
    path: PathBuf,
    dev: u64,
}

/// A name found in a directory and what it is (not following links). A directory's status
/// is not taken: it may be a mount point, and asking another file system (a FUSE daemon that
/// never answers) could block; it is checked once opened ([`CacheDir::child`]).
pub(crate) struct Listed {
    pub(crate) name: CString,
    pub(crate) kind: FileType,
    /// The status of a file (not of a directory).
    pub(crate) stat: Option<Stat>,
}

impl Listed {
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    /// The file's length in bytes (0 for anything but a file).
    pub(crate) fn len(&self) -> u64 {
        self.stat.map_or(0, |s| s.st_size as u64)
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl CacheDir {
    /// Opens `path`, first creating it (and missing parents, mode 0700) if `create`, and
    /// with [`Trust::Ownership`] refuses it unless it is this user's and nobody else may write
    /// it. The path is resolved this once; what it named at that moment is the cache.
    pub(crate) fn open_root(
        path: &Path,
        trust: Trust,
        create: bool,
    ) -> Result<CacheDir, CacheError> {
        use std::os::unix::fs::DirBuilderExt;
        if create {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io(path))?;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| io(path)(e.into()))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(path)(e.into()))?;
        if trust == Trust::Ownership {
            check_private(&stat, path)?;
        }
        Ok(CacheDir {
            fd,
            path: path.to_owned(),
            dev: stat.st_dev,
        })
    }

    /// The path this directory was opened as.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub(crate) fn path_of(&self, name: &CStr) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.path.join(std::ffi::OsStr::from_bytes(name.to_bytes()))
    }

    /// The subdirectory `name`, created if `create` and missing; `None` if it does not exist
    /// and `create` is false. A symbolic link or any other kind of file at the name is an
    /// error, as is a directory on another file system (a mount someone made inside a shared
    /// cache, which could make every access block) and, with [`Trust::Ownership`], a
    /// directory that is not private.
    pub(crate) fn child(
        &self,
        name: &CStr,
        create: bool,
        trust: Trust,
    ) -> Result<Option<CacheDir>, CacheError> {
        let path = self.path_of(name);
        if create {
            match rustix::fs::mkdirat(&self.fd, name, Mode::RWXU) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io(&path)(e.into())),
            }
        }
        let fd = match open_dir_beneath(&self.fd, name) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::XDEV) => {
                return Err(io(&path)(std::io::Error::other(
                    "a mount point inside the cache",
                )));
            }
            Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(io(&path)(std::io::Error::other(
                    "not a directory (a symbolic link or another kind of file)",
                )));
            }
            Err(e) => return Err(io(&path)(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(&path)(e.into()))?;
        if stat.st_dev != self.dev {
            return Err(io(&path)(std::io::Error::other(
                "on another file system than the cache (a mount inside the cache)",
            )));
        }
        if trust == Trust::Ownership {
            check_private(&stat, &path)?;
        }
        Ok(Some(CacheDir {
            fd,
            path,
            dev: stat.st_dev,
        }))
    }

    /// Opens the regular file `name` for reading: never through a link, never blocking (a
    /// FIFO or device at the name is refused, not waited on). Returns the file and its
    /// status, taken from the open descriptor.
    pub(crate) fn open_file(&self, name: &CStr) -> std::io::Result<(std::fs::File, Stat)> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok((std::fs::File::from(fd), stat))
    }

    /// Creates a new file named `name` (mode 0600) for writing; fails if anything has that
    /// name.
    pub(crate) fn create_file(&self, name: &CStr) -> std::io::Result<std::fs::File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::RUSR | Mode::WUSR)?;
        Ok(std::fs::File::from(fd))
    }

    /// Renames `from` to `to` within this directory, replacing what `to` named (a link at
    /// `to` is replaced, never followed).
    pub(crate) fn rename(&self, from: &CStr, to: &CStr) -> std::io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// The status of the name `name` itself (a link is not followed).
    pub(crate) fn stat_of(&self, name: &CStr) -> std::io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.fd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Sets the access and modification times of the name `name` (never through a link) to
    /// now.
    pub(crate) fn touch(&self, name: &CStr) -> std::io::Result<()> {
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let times = rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        };
        Ok(rustix::fs::utimensat(
            &self.fd,
            name,
            &times,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Removes the name `name` (a file or a link, never what a link points to, never a
    /// directory).
    pub(crate) fn remove_file(&self, name: &CStr) -> std::io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Every name in the directory but `.` and `..`, with what it is (from the listing
    /// itself) and, for a file, its status (of the name itself, not of what a link points
    /// to). A name removed while listing, or whose status cannot be taken, is skipped.
    pub(crate) fn list(&self) -> Result<Vec<Listed>, CacheError> {
        let failed = |e: rustix::io::Errno| io(&self.path)(e.into());
        let mut listed = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let kind = entry.file_type();
            if kind == FileType::Directory {
                listed.push(Listed {
                    name: name.to_owned(),
                    kind,
                    stat: None,
                });
                continue;
            }
            // Files, links and whatever the listing did not name (`DT_UNKNOWN`).
            let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let kind = FileType::from_raw_mode(stat.st_mode);
            listed.push(Listed {
                name: name.to_owned(),
                kind,
                stat: (kind != FileType::Directory).then_some(stat),
            });
        }
        Ok(listed)
    }

    /// Makes renames in the directory durable; a file system that cannot sync directories
    /// loses nothing but durability.
    pub(crate) fn sync(&self) {
        let _ = rustix::fs::fsync(self.fd.as_fd());
    }
}

/// Opens the directory `name` in `dir` without following a link and without crossing into
/// another mount: `openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV` refuses a mount
/// point before the mounted file system is asked anything (`XDEV`). Kernels before 5.6 lack
/// `openat2`; there a plain `openat` with `O_NOFOLLOW` is used and the device is compared
/// after opening.
fn open_dir_beneath(dir: &OwnedFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV | ResolveFlags::BENEATH;
    match rustix::fs::openat2(dir, name, DIR_FLAGS, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS) => rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()),
        other => other,
    }
}

/// Refuses a directory or entry that another user owns or that others may write to.
pub(crate) fn check_private(stat: &Stat, path: &Path) -> Result<(), CacheError> {
    let not_private = |reason: String| CacheError::NotPrivate {
        path: path.to_owned(),
        reason,
    };
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(not_private(format!(
            "owned by uid {} (this process runs as {me})",
            stat.st_uid
        )));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(not_private(format!(
            "writable by others (mode {:o})",
            mode & 0o777
        )));
    }
    Ok(())
}
