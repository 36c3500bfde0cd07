//! The numbers and layouts of WASI preview 1 (`wasi_snapshot_preview1`, witx definitions):
//! errno values, file types, flags, rights and the byte layout of the structures the guest
//! reads. Everything here is little-endian and 32-bit-pointer, as the ABI defines.

/// A WASI error number.
pub type Errno = u16;

#[allow(missing_docs)]
pub mod errno {
    use super::Errno;
    pub const SUCCESS: Errno = 0;
    pub const TOOBIG: Errno = 1;
    pub const ACCES: Errno = 2;
    pub const AGAIN: Errno = 6;
    pub const BADF: Errno = 8;
    pub const BUSY: Errno = 10;
    pub const EXIST: Errno = 20;
    pub const FAULT: Errno = 21;
    pub const FBIG: Errno = 22;
    pub const ILSEQ: Errno = 25;
    pub const INTR: Errno = 27;
    pub const INVAL: Errno = 28;
    pub const IO: Errno = 29;
    pub const ISDIR: Errno = 31;
    pub const LOOP: Errno = 32;
    pub const MFILE: Errno = 33;
    pub const MLINK: Errno = 34;
    pub const NAMETOOLONG: Errno = 37;
    pub const NOENT: Errno = 44;
    pub const NOMEM: Errno = 48;
    pub const NOSPC: Errno = 51;
    pub const NOSYS: Errno = 52;
    pub const NOTDIR: Errno = 54;
    pub const NOTEMPTY: Errno = 55;
    pub const NOTSOCK: Errno = 57;
    pub const NOTSUP: Errno = 58;
    pub const NOTTY: Errno = 59;
    pub const OVERFLOW: Errno = 61;
    pub const PERM: Errno = 63;
    pub const PIPE: Errno = 64;
    pub const RANGE: Errno = 68;
    pub const ROFS: Errno = 69;
    pub const SPIPE: Errno = 70;
    pub const TXTBSY: Errno = 74;
    pub const XDEV: Errno = 75;
    pub const NOTCAPABLE: Errno = 76;
}

/// The WASI errno for a host I/O error.
pub fn errno_of(e: &std::io::Error) -> Errno {
    use errno::*;
    if let Some(code) = e.raw_os_error() {
        return match rustix::io::Errno::from_raw_os_error(code) {
            rustix::io::Errno::TOOBIG => TOOBIG,
            rustix::io::Errno::ACCESS => ACCES,
            rustix::io::Errno::AGAIN => AGAIN,
            rustix::io::Errno::BADF => BADF,
            rustix::io::Errno::BUSY => BUSY,
            rustix::io::Errno::EXIST => EXIST,
            rustix::io::Errno::FAULT => FAULT,
            rustix::io::Errno::FBIG => FBIG,
            rustix::io::Errno::ILSEQ => ILSEQ,
            rustix::io::Errno::INTR => INTR,
            rustix::io::Errno::INVAL => INVAL,
            rustix::io::Errno::ISDIR => ISDIR,
            rustix::io::Errno::LOOP => LOOP,
            rustix::io::Errno::MFILE => MFILE,
            rustix::io::Errno::MLINK => MLINK,
            rustix::io::Errno::NAMETOOLONG => NAMETOOLONG,
            rustix::io::Errno::NOENT => NOENT,
            rustix::io::Errno::NOMEM => NOMEM,
            rustix::io::Errno::NOSPC => NOSPC,
            rustix::io::Errno::NOSYS => NOSYS,
            rustix::io::Errno::NOTDIR => NOTDIR,
            rustix::io::Errno::NOTEMPTY => NOTEMPTY,
            rustix::io::Errno::NOTSUP => NOTSUP,
            rustix::io::Errno::NOTTY => NOTTY,
            rustix::io::Errno::OVERFLOW => OVERFLOW,
            rustix::io::Errno::PERM => PERM,
            rustix::io::Errno::PIPE => PIPE,
            rustix::io::Errno::RANGE => RANGE,
            rustix::io::Errno::ROFS => ROFS,
            rustix::io::Errno::SPIPE => SPIPE,
            rustix::io::Errno::TXTBSY => TXTBSY,
            rustix::io::Errno::XDEV => XDEV,
            _ => IO,
        };
    }
    // cap-std reports an attempt to leave the sandbox (`..`, an absolute path, a symlink
    // pointing out) as a permission error without an OS code.
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => PERM,
        std::io::ErrorKind::NotFound => NOENT,
        std::io::ErrorKind::AlreadyExists => EXIST,
        std::io::ErrorKind::InvalidInput => INVAL,
        std::io::ErrorKind::Unsupported => NOTSUP,
        _ => IO,
    }
}

/// `filetype`.
#[allow(missing_docs)]
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// `oflags`.
pub mod oflags {
    /// Create the file if it does not exist.
    pub const CREAT: u16 = 1;
    /// Fail if not a directory.
    pub const DIRECTORY: u16 = 2;
    /// Fail if the file already exists.
    pub const EXCL: u16 = 4;
    /// Truncate the file to size 0.
    pub const TRUNC: u16 = 8;
}

/// `fdflags`.
pub mod fdflags {
    /// Writes go to the end of the file.
    pub const APPEND: u16 = 1;
    /// Writes complete when their data is on disk.
    pub const DSYNC: u16 = 2;
    /// Reads and writes do not block.
    pub const NONBLOCK: u16 = 4;
    /// Reads complete once data they depend on is on disk.
    pub const RSYNC: u16 = 8;
    /// Writes complete when data and metadata are on disk.
    pub const SYNC: u16 = 16;
    /// Every flag preview 1 defines.
    pub const ALL: u16 = 0x1f;
}

/// `lookupflags`: follow a final symlink.
pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

/// `rights`.
#[allow(missing_docs)]
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;

    /// What a regular file descriptor may ever do.
    pub const FILE: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;
    /// What a directory descriptor may ever do.
    pub const DIRECTORY: u64 = FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_DATASYNC
        | PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_SIZE
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE;
    /// What stdin, stdout and stderr may do.
    pub const STDIO: u64 =
        FD_READ | FD_WRITE | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE;
}

/// `fstflags` of the `*_set_times` calls.
#[allow(missing_docs)]
pub mod fstflags {
    pub const ATIM: u16 = 1;
    pub const ATIM_NOW: u16 = 2;
    pub const MTIM: u16 = 4;
    pub const MTIM_NOW: u16 = 8;
}

/// `clockid`.
#[allow(missing_docs)]
pub mod clock {
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME: u32 = 2;
    pub const THREAD_CPUTIME: u32 = 3;
}

/// `filestat`: 64 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filestat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// `filetype`.
    pub filetype: u8,
    /// Hard links.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Access time, ns since the epoch.
    pub atim: u64,
    /// Modification time.
    pub mtim: u64,
    /// Status change time.
    pub ctim: u64,
}

impl Filestat {
    /// The guest's bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.atim.to_le_bytes());
        b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        b
    }
}

/// `fdstat`: 24 bytes.
pub fn fdstat_bytes(filetype: u8, flags: u16, base: u64, inheriting: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0] = filetype;
    b[2..4].copy_from_slice(&flags.to_le_bytes());
    b[8..16].copy_from_slice(&base.to_le_bytes());
    b[16..24].copy_from_slice(&inheriting.to_le_bytes());
    b
}
