//! Calls about the program rather than its files: arguments, environment, clocks, random
//! bytes, `poll_oneoff`, `sched_yield`, `proc_raise`, and the socket calls (no sockets are
//! ever given to a program, so they fail with `NOTSUP`/`BADF`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln::Val;
use rustix::time::ClockId;

use crate::ctx::{Kind, Stdio};
use crate::guest::{Guest, u32_arg};
use crate::types::{Errno, clock, errno, errno_of};

type R = Result<(), Errno>;

fn write_list<T: 'static>(g: &mut Guest<'_, T>, list: &[String], ptrs: u32, buf: u32) -> R {
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        g.write_u32(ptrs.wrapping_add(4 * i as u32), at)?;
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        g.write(at, &bytes)?;
        at = at.wrapping_add(bytes.len() as u32);
    }
    Ok(())
}

fn write_sizes<T: 'static>(g: &mut Guest<'_, T>, list: &[String], count: u32, size: u32) -> R {
    let bytes: usize = list.iter().map(|s| s.len() + 1).sum();
    g.write_u32(count, list.len() as u32)?;
    g.write_u32(size, u32::try_from(bytes).map_err(|_| errno::OVERFLOW)?)
}

pub(crate) fn args_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let list = g.ctx().args.clone();
    write_list(g, &list, u32_arg(a, 0), u32_arg(a, 1))
}

pub(crate) fn args_sizes_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let list = g.ctx().args.clone();
    write_sizes(g, &list, u32_arg(a, 0), u32_arg(a, 1))
}

pub(crate) fn environ_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let list = g.ctx().env.clone();
    write_list(g, &list, u32_arg(a, 0), u32_arg(a, 1))
}

pub(crate) fn environ_sizes_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let list = g.ctx().env.clone();
    write_sizes(g, &list, u32_arg(a, 0), u32_arg(a, 1))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn timespec_nanos(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// The host clock behind a WASI clock id.
fn host_clock(id: u32) -> Result<Option<ClockId>, Errno> {
    Ok(match id {
        clock::REALTIME => Some(ClockId::Realtime),
        clock::MONOTONIC => None,
        clock::PROCESS_CPUTIME => Some(ClockId::ProcessCPUTime),
        clock::THREAD_CPUTIME => Some(ClockId::ThreadCPUTime),
        _ => return Err(errno::INVAL),
    })
}

pub(crate) fn clock_res_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let res = match host_clock(u32_arg(a, 0))? {
        Some(id) => timespec_nanos(rustix::time::clock_getres(id)),
        None => timespec_nanos(rustix::time::clock_getres(ClockId::Monotonic)),
    };
    g.write_u64(u32_arg(a, 1), res.max(1))
}

pub(crate) fn clock_time_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let now = match host_clock(u32_arg(a, 0))? {
        Some(ClockId::Realtime) => nanos(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ),
        Some(id) => timespec_nanos(rustix::time::clock_gettime(id)),
        // Monotonic time counts from the program's start.
        None => nanos(g.ctx().start.elapsed()),
    };
    g.write_u64(u32_arg(a, 2), now)
}

pub(crate) fn random_get<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (buf, len) = (u32_arg(a, 0), u32_arg(a, 1));
    g.check(buf, len)?;
    let mut bytes = vec![0u8; len as usize];
    // getrandom(2), not /dev/urandom: opening a file would fail once the process runs out
    // of descriptors, and costs three system calls a call.
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Err(errno::IO),
        }
    }
    g.write(buf, &bytes)
}

pub(crate) fn sched_yield<T: 'static>(_: &mut Guest<'_, T>, _: &[Val]) -> R {
    std::thread::yield_now();
    Ok(())
}

/// Raising signals is not part of the sandbox: no signal can be delivered.
pub(crate) fn proc_raise<T: 'static>(_: &mut Guest<'_, T>, _: &[Val]) -> R {
    Err(errno::NOTSUP)
}

/// `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`: a program is never given a
/// socket, so an open descriptor is not one (`NOTSOCK`) and anything else is `BADF`.
pub(crate) fn sock_call<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    g.ctx().get(u32_arg(a, 0))?;
    Err(errno::NOTSOCK)
}

const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;
const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1;

/// `poll_oneoff(in, out, nsubscriptions, nevents)`. Files, buffered stdio and output
/// streams are always ready. Reading the host's own stdin is ready when the host's stdin
/// has data, which is waited for (up to the earliest clock subscription). With nothing
/// ready, the call sleeps until the earliest clock subscription and reports every clock
/// that has expired by then.
pub(crate) fn poll_oneoff<T: 'static>(g: &mut Guest<'_, T>, a: &[Val]) -> R {
    let (input, out, count, nevents) = (u32_arg(a, 0), u32_arg(a, 1), u32_arg(a, 2), u32_arg(a, 3));
    if count == 0 {
        return Err(errno::INVAL);
    }
    let subs = g.read(input, count.checked_mul(48).ok_or(errno::FAULT)?)?;
    let mut events: Vec<[u8; 32]> = Vec::new();
    let mut clocks = Vec::new();
    let mut stdin_waiters = Vec::new();
    for sub in subs.chunks_exact(48) {
        let word = |at: usize| u32::from_le_bytes(sub[at..at + 4].try_into().unwrap());
        let long = |at: usize| u64::from_le_bytes(sub[at..at + 8].try_into().unwrap());
        let tag = sub[8];
        let mut event = [0u8; 32];
        event[0..8].copy_from_slice(&long(0).to_le_bytes());
        event[10] = tag;
        match tag {
            EVENT_CLOCK => {
                let (id, timeout) = (word(16), long(24));
                let absolute = u16::from_le_bytes([sub[40], sub[41]]) & SUBSCRIPTION_CLOCK_ABSTIME;
                let wait = match (host_clock(id), absolute != 0) {
                    (Err(e), _) => {
                        event[8..10].copy_from_slice(&e.to_le_bytes());
                        events.push(event);
                        continue;
                    }
                    (Ok(_), false) => timeout,
                    (Ok(Some(ClockId::Realtime)), true) => timeout.saturating_sub(nanos(
                        SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default(),
                    )),
                    (Ok(None), true) => timeout.saturating_sub(nanos(g.ctx().start.elapsed())),
                    (Ok(Some(id)), true) => {
                        timeout.saturating_sub(timespec_nanos(rustix::time::clock_gettime(id)))
                    }
                };
                clocks.push((wait, event));
            }
            EVENT_FD_READ | EVENT_FD_WRITE => {
                let ready = match g.ctx().get(word(16)) {
                    Err(e) => Err(e),
                    Ok(d) => match &d.kind {
                        Kind::Dir { .. } => Err(errno::BADF),
                        Kind::Stdin(Stdio::Inherit) if tag == EVENT_FD_READ => {
                            stdin_waiters.push(event);
                            continue;
                        }
                        Kind::Stdin(Stdio::Buffer(b)) => Ok(b.lock().map_or(0, |b| b.len() as u64)),
                        Kind::File(f) if tag == EVENT_FD_READ => {
                            match (f.metadata(), rustix::fs::tell(f)) {
                                (Ok(m), Ok(pos)) => Ok(m.len().saturating_sub(pos)),
                                _ => Ok(0),
                            }
                        }
                        _ => Ok(0),
                    },
                };
                match ready {
                    Ok(nbytes) => event[16..24].copy_from_slice(&nbytes.to_le_bytes()),
                    Err(e) => event[8..10].copy_from_slice(&e.to_le_bytes()),
                }
                events.push(event);
            }
            _ => return Err(errno::INVAL),
        }
    }
    if events.is_empty() {
        let earliest = clocks.iter().map(|(d, _)| *d).min();
        // A deadline ([`crate::deadline`]) earlier than every clock ends the wait, and then
        // the program.
        let left = crate::deadline::remaining(g.ctx().deadline)?.map(nanos);
        let stopped = matches!((left, earliest), (Some(l), Some(e)) if l < e)
            || (left.is_some() && earliest.is_none());
        let wait = match (left, earliest) {
            (Some(l), Some(e)) => Some(l.min(e)),
            (l, e) => l.or(e),
        };
        let stdin_ready = !stdin_waiters.is_empty() && wait_for_stdin(wait)?;
        if stdin_ready {
            events.append(&mut stdin_waiters);
        } else {
            if stdin_waiters.is_empty() {
                std::thread::sleep(Duration::from_nanos(wait.unwrap_or(0)));
            }
            if stopped {
                return Err(crate::deadline::STOP);
            }
            let earliest = earliest.unwrap_or(0);
            events.extend(
                clocks
                    .iter()
                    .filter(|(d, _)| *d <= earliest)
                    .map(|(_, e)| *e),
            );
        }
    }
    for (i, event) in events.iter().enumerate() {
        g.write(out.wrapping_add(32 * i as u32), event)?;
    }
    g.write_u32(nevents, events.len() as u32)
}

/// Waits until the host's stdin has data (or is at end of file), at most `timeout` ns
/// (forever if `None`); whether it became ready.
fn wait_for_stdin(timeout: Option<u64>) -> Result<bool, Errno> {
    let stdin = std::io::stdin();
    let mut fds = [rustix::event::PollFd::new(
        &stdin,
        rustix::event::PollFlags::IN,
    )];
    let timeout = timeout.map(|ns| rustix::event::Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as _,
    });
    loop {
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(errno_of(&e.into())),
        }
    }
}

/// The exit status of `proc_exit`, carried as the host error that ends the call.
#[derive(Debug)]
pub struct ProcExit(pub i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "program exited with status {}", self.0)
    }
}

impl std::error::Error for ProcExit {}
