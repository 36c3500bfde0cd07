//! A deadline for host calls that can block: reading a terminal, a pipe or a FIFO, opening a
//! FIFO, and sleeping in `poll_oneoff`. Epoch interruption stops wasm code at its next
//! check, but a program waiting inside a host call never reaches one; with a deadline
//! ([`crate::WasiCtxBuilder::deadline`]) such a call waits at most until then and then ends
//! the program with [`DeadlinePassed`] instead of returning to it.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::types::Errno;

/// The error that ends a program whose host call was still waiting at its deadline.
#[derive(Debug)]
pub struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the deadline passed while the program waited in a host call")
    }
}

impl std::error::Error for DeadlinePassed {}

/// Not a WASI errno: what a call returns to say "end the program with [`DeadlinePassed`]"
/// (the linker wrapper turns it into that error).
pub(crate) const STOP: Errno = u16::MAX;

/// Whether `error` is how a program was stopped at its WASI deadline.
pub fn deadline_passed(error: &kiln::Error) -> bool {
    matches!(error, kiln::Error::Host(e) if e.is::<DeadlinePassed>())
}

/// What is left until `deadline`, `None` for no deadline; [`STOP`] once it has passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, Errno> {
    match deadline {
        None => Ok(None),
        Some(at) => match at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(STOP),
        },
    }
}

/// Waits until `fd` is readable (or writable, if `write`), at end of file or in error, or
/// until `timeout`: whether it became ready.
pub(crate) fn wait_ready(
    fd: impl AsFd,
    write: bool,
    timeout: Option<Duration>,
) -> std::io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let flags = if write { PollFlags::OUT } else { PollFlags::IN };
    let mut fds = [PollFd::new(&fd, flags)];
    let timeout = timeout.map(|t| Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos() as _,
    });
    loop {
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Before a read (or write) of `fd` that may block: waits for it to be ready within the
/// deadline; [`STOP`] if the deadline passes first. Without a deadline it returns at once
/// and the call blocks as it would.
pub(crate) fn before_blocking(
    fd: impl AsFd,
    write: bool,
    deadline: Option<Instant>,
) -> Result<(), Errno> {
    let Some(left) = remaining(deadline)? else {
        return Ok(());
    };
    match wait_ready(fd, write, Some(left)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(STOP),
        Err(e) => Err(crate::types::errno_of(&e)),
    }
}

/// Whether reading or writing `file` can block: anything but a regular file or directory
/// (a FIFO, a socket, a terminal or another device).
pub(crate) fn may_block(file: impl AsFd) -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(file).is_ok_and(|s| {
        !matches!(
            FileType::from_raw_mode(s.st_mode),
            FileType::RegularFile | FileType::Directory
        )
    })
}
