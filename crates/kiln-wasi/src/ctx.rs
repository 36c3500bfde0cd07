//! The WASI state of one program: arguments, environment, the descriptor table (stdio and
//! the directories it was given), and its exit status; and the builder that sets it up.
//!
//! Every file the program reaches is opened through a preopened `cap_std::fs::Dir`, so no
//! path, `..`, absolute path or symlink can lead outside the directories it was given.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};

use crate::types::{Errno, errno, filetype, rights};

/// Where a standard stream goes or comes from.
#[derive(Clone, Debug, Default)]
pub enum Stdio {
    /// The host process's own stream.
    #[default]
    Inherit,
    /// Nothing: reads see end of file, writes are discarded.
    Null,
    /// A shared buffer: output is appended to it; input is read from it.
    Buffer(Arc<Mutex<Vec<u8>>>),
    /// A host file: output is written to it, input read from it.
    File(Arc<Mutex<std::fs::File>>),
}

impl Stdio {
    /// A fresh shared buffer and the `Stdio` that uses it.
    pub fn buffer() -> (Arc<Mutex<Vec<u8>>>, Stdio) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (buf.clone(), Stdio::Buffer(buf))
    }

    /// Input from fixed bytes.
    pub fn input(bytes: impl Into<Vec<u8>>) -> Stdio {
        Stdio::Buffer(Arc::new(Mutex::new(bytes.into())))
    }

    /// A host file (opened by the embedder) as the stream.
    pub fn file(file: std::fs::File) -> Stdio {
        Stdio::File(Arc::new(Mutex::new(file)))
    }
}

/// What a descriptor refers to.
pub(crate) enum Kind {
    /// fd 0.
    Stdin(Stdio),
    /// fd 1 or 2 (`true` for stderr).
    Output(Stdio, bool),
    /// A regular file (or anything else that is not a directory).
    File(File),
    /// A directory; `preopen` is its guest name if it was given to the program, `listing`
    /// what `fd_readdir` listed when a caller last started from cookie 0.
    Dir {
        dir: Dir,
        preopen: Option<String>,
        listing: Option<Vec<Dirent>>,
    },
}

/// One entry of a directory listing, as `fd_readdir` reports it: the name's bytes as the
/// host has them (not made UTF-8), the WASI file type and the inode.
pub(crate) struct Dirent {
    pub name: Vec<u8>,
    pub filetype: u8,
    pub ino: u64,
}

/// One open descriptor.
pub(crate) struct Descriptor {
    pub kind: Kind,
    pub rights_base: u64,
    pub rights_inheriting: u64,
    /// `fdflags`, all given to the host when the file was opened; `APPEND` also follows
    /// `fd_fdstat_set_flags` there (so on Linux `fd_pwrite` of an appending file appends,
    /// as `pwrite(2)` does), and `fd_write` of an appending output stream seeks first.
    pub flags: u16,
}

impl Descriptor {
    /// Fails with `NOTCAPABLE` unless the descriptor holds every right of `needed`.
    pub fn require(&self, needed: u64) -> Result<(), Errno> {
        if self.rights_base & needed == needed {
            Ok(())
        } else {
            Err(errno::NOTCAPABLE)
        }
    }

    pub fn filetype(&self) -> u8 {
        match &self.kind {
            Kind::Stdin(_) | Kind::Output(..) => filetype::CHARACTER_DEVICE,
            Kind::Dir { .. } => filetype::DIRECTORY,
            Kind::File(f) => match f.metadata() {
                Ok(m) if m.is_file() => filetype::REGULAR_FILE,
                Ok(m) if m.is_symlink() => filetype::SYMBOLIC_LINK,
                _ => filetype::UNKNOWN,
            },
        }
    }
}

/// The WASI state of one program. Put it (or something holding it) in the store's data
/// and pass an accessor to [`crate::add_to_linker`].
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) fds: Vec<Option<Descriptor>>,
    pub(crate) start: Instant,
    /// The status the program passed to `proc_exit`, once it did.
    pub exit_code: Option<i32>,
    /// Bytes the program wrote to stdout and stderr.
    pub(crate) output_bytes: u64,
    /// When host calls that can block stop waiting and end the program
    /// ([`crate::deadline`]).
    pub(crate) deadline: Option<Instant>,
}

impl WasiCtx {
    /// A builder with no arguments, no environment, inherited stdio and no directories.
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::default()
    }

    /// How many bytes the program has written to stdout and stderr so far.
    pub fn output_written(&self) -> u64 {
        self.output_bytes
    }

    /// Sets (or with `None` removes) the deadline of host calls that can block; see
    /// [`WasiCtxBuilder::deadline`].
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    pub(crate) fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.fds
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(errno::BADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.fds
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(errno::BADF)
    }

    /// The directory behind `fd`, which must hold `needed`.
    pub(crate) fn dir(&self, fd: u32, needed: u64) -> Result<&Dir, Errno> {
        let d = self.get(fd)?;
        match &d.kind {
            Kind::Dir { dir, .. } => {
                d.require(needed)?;
                Ok(dir)
            }
            _ => Err(errno::NOTDIR),
        }
    }

    /// Adds a descriptor at the lowest free number.
    pub(crate) fn insert(&mut self, d: Descriptor) -> Result<u32, Errno> {
        let slot = match self.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.fds.push(None);
                self.fds.len() - 1
            }
        };
        if slot > i32::MAX as usize {
            return Err(errno::MFILE);
        }
        self.fds[slot] = Some(d);
        Ok(slot as u32)
    }
}

/// Builds a [`WasiCtx`].
#[derive(Default)]
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    preopens: Vec<(Dir, String)>,
    deadline: Option<Instant>,
}

impl WasiCtxBuilder {
    /// Appends one argument (the first is the program's name).
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<S: Into<String>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Copies the host process's environment, except Kiln's own secrets
    /// ([`is_kiln_secret`]: `KILN_ARTIFACT_KEY`, `KILN_CACHE_KEY`, …) and variables that are
    /// not UTF-8.
    pub fn inherit_env(&mut self) -> &mut Self {
        for (k, v) in std::env::vars_os() {
            if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string())
                && !is_kiln_secret(&k)
            {
                self.env(k, v);
            }
        }
        self
    }

    /// Host calls that can block (a read of a terminal, pipe or FIFO, a write to a full one,
    /// the open of a FIFO, a sleep in `poll_oneoff`) wait at most until `at`; a call still
    /// waiting then ends the program with [`crate::DeadlinePassed`]. Pair it with an epoch
    /// deadline at the same time, which stops the program's own code.
    pub fn deadline(&mut self, at: Instant) -> &mut Self {
        self.deadline = Some(at);
        self
    }

    /// Where fd 0 reads from.
    pub fn stdin(&mut self, stdio: Stdio) -> &mut Self {
        self.stdin = stdio;
        self
    }

    /// Where fd 1 writes to.
    pub fn stdout(&mut self, stdio: Stdio) -> &mut Self {
        self.stdout = stdio;
        self
    }

    /// Where fd 2 writes to.
    pub fn stderr(&mut self, stdio: Stdio) -> &mut Self {
        self.stderr = stdio;
        self
    }

    /// Gives the program the host directory `host` under the name `guest`; everything it
    /// opens must lie inside one of these directories.
    pub fn preopened_dir(
        &mut self,
        host: impl AsRef<Path>,
        guest: impl Into<String>,
    ) -> io::Result<&mut Self> {
        let dir = Dir::open_ambient_dir(host.as_ref(), ambient_authority())?;
        self.preopens.push((dir, guest.into()));
        Ok(self)
    }

    /// The context. Descriptors 0–2 are stdio, the preopened directories follow from 3.
    pub fn build(&mut self) -> WasiCtx {
        let stdio = |kind| {
            Some(Descriptor {
                kind,
                rights_base: rights::STDIO,
                rights_inheriting: 0,
                flags: 0,
            })
        };
        let mut fds = vec![
            stdio(Kind::Stdin(std::mem::take(&mut self.stdin))),
            stdio(Kind::Output(std::mem::take(&mut self.stdout), false)),
            stdio(Kind::Output(std::mem::take(&mut self.stderr), true)),
        ];
        for (dir, guest) in self.preopens.drain(..) {
            fds.push(Some(Descriptor {
                kind: Kind::Dir {
                    dir,
                    preopen: Some(guest),
                    listing: None,
                },
                rights_base: rights::DIRECTORY,
                rights_inheriting: rights::DIRECTORY | rights::FILE,
                flags: 0,
            }));
        }
        WasiCtx {
            args: std::mem::take(&mut self.args),
            env: self
                .env
                .drain(..)
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            fds,
            start: Instant::now(),
            exit_code: None,
            output_bytes: 0,
            deadline: self.deadline,
        }
    }
}

/// Reads from a standard-input source into `buf`.
pub(crate) fn read_stdin(stdio: &Stdio, buf: &mut [u8]) -> io::Result<usize> {
    match stdio {
        // Straight from the descriptor: std's buffered stdin would keep bytes that
        // `poll_oneoff`, which polls the descriptor, cannot see.
        Stdio::Inherit => rustix::io::read(io::stdin(), buf).map_err(io::Error::from),
        Stdio::Null => Ok(0),
        Stdio::Buffer(b) => {
            let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
            let n = buf.len().min(b.len());
            buf[..n].copy_from_slice(&b[..n]);
            b.drain(..n);
            Ok(n)
        }
        Stdio::File(f) => f.lock().unwrap_or_else(|e| e.into_inner()).read(buf),
    }
}

/// Writes `data` to an output stream.
pub(crate) fn write_output(stdio: &Stdio, stderr: bool, data: &[u8]) -> io::Result<()> {
    match stdio {
        Stdio::Inherit if stderr => io::stderr().lock().write_all(data),
        Stdio::Inherit => {
            let mut out = io::stdout().lock();
            out.write_all(data)?;
            out.flush()
        }
        Stdio::Null => Ok(()),
        Stdio::Buffer(b) => {
            b.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(data);
            Ok(())
        }
        Stdio::File(f) => f.lock().unwrap_or_else(|e| e.into_inner()).write_all(data),
    }
}

/// Whether an environment variable holds one of Kiln's own secrets (or names a file that
/// does): `KILN_ARTIFACT_KEY`, `KILN_CACHE_KEY` and every other `KILN_…_KEY` or
/// `KILN_…_KEY_FILE`. With an artifact key anyone can seal native code that Kiln then runs, so
/// such a variable never reaches a guest through [`WasiCtxBuilder::inherit_env`]; an embedder
/// who means to hand one over must say so with [`WasiCtxBuilder::env`].
pub fn is_kiln_secret(name: &str) -> bool {
    name.strip_prefix("KILN_").is_some_and(|rest| {
        let rest = rest.strip_suffix("_FILE").unwrap_or(rest);
        rest == "KEY" || rest.ends_with("_KEY")
    })
}
