//! A host call's view of the guest: its exported `memory` (every access bounds-checked,
//! failing with `FAULT`) and its [`WasiCtx`], reached through the store data accessor.

use kiln::{Caller, Extern, Memory, Val};

use crate::ctx::WasiCtx;
use crate::types::{Errno, errno};

/// The most bytes one read or write call moves; larger requests are short transfers.
pub(crate) const MAX_TRANSFER: usize = 64 << 20;

/// One WASI call in progress.
pub(crate) struct Guest<'a, T> {
    pub caller: Caller<'a, T>,
    pub get: fn(&mut T) -> &mut WasiCtx,
}

impl<T: 'static> Guest<'_, T> {
    pub fn ctx(&mut self) -> &mut WasiCtx {
        (self.get)(self.caller.data_mut())
    }

    fn memory(&mut self) -> Result<Memory, Errno> {
        self.caller
            .get_export("memory")
            .and_then(Extern::into_memory)
            .ok_or(errno::FAULT)
    }

    /// `FAULT` unless `ptr .. ptr + len` lies in the guest's memory. Called before the host
    /// allocates anything of a size the guest chose.
    pub fn check(&mut self, ptr: u32, len: u32) -> Result<Memory, Errno> {
        let memory = self.memory()?;
        let end = u64::from(ptr) + u64::from(len);
        if end > memory.data_size(&self.caller) as u64 {
            return Err(errno::FAULT);
        }
        Ok(memory)
    }

    pub fn read(&mut self, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        let memory = self.check(ptr, len)?;
        let mut buf = vec![0; len as usize];
        memory
            .read(&self.caller, ptr as usize, &mut buf)
            .map_err(|_| errno::FAULT)?;
        Ok(buf)
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        let memory = self.memory()?;
        memory
            .write(&mut self.caller, ptr as usize, bytes)
            .map_err(|_| errno::FAULT)
    }

    pub fn write_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A path or name argument: UTF-8 or `ILSEQ`.
    pub fn string(&mut self, ptr: u32, len: u32) -> Result<String, Errno> {
        String::from_utf8(self.read(ptr, len)?).map_err(|_| errno::ILSEQ)
    }

    /// The `(buf, len)` pairs of an `iovec`/`ciovec` array.
    pub fn iovecs(&mut self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let table_len = count.checked_mul(8).ok_or(errno::FAULT)?;
        let table = self.read(ptr, table_len)?;
        Ok(table
            .chunks_exact(8)
            .map(|c| {
                let word = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                (word(0), word(4))
            })
            .collect())
    }

    /// Concatenates the bytes an output iovec array names, up to [`MAX_TRANSFER`] bytes (a
    /// short write, as POSIX allows), so that iovecs repeating the same memory cannot make
    /// the host allocate without bound.
    pub fn gather(&mut self, iovs: u32, count: u32) -> Result<Vec<u8>, Errno> {
        let mut data = Vec::new();
        for (ptr, len) in self.iovecs(iovs, count)? {
            let room = MAX_TRANSFER - data.len();
            if room == 0 {
                break;
            }
            data.extend(self.read(ptr, len.min(room as u32))?);
        }
        Ok(data)
    }

    /// Spreads `data` over an input iovec array (the arrays were sized by the caller).
    pub fn scatter(&mut self, iovs: &[(u32, u32)], mut data: &[u8]) -> Result<(), Errno> {
        for &(ptr, len) in iovs {
            if data.is_empty() {
                break;
            }
            let n = (len as usize).min(data.len());
            self.write(ptr, &data[..n])?;
            data = &data[n..];
        }
        Ok(())
    }
}

/// Argument `i` as an unsigned 32-bit value (pointers, lengths, descriptors, flags).
pub(crate) fn u32_arg(args: &[Val], i: usize) -> u32 {
    args[i].i32().unwrap_or_default() as u32
}

/// Argument `i` as an unsigned 64-bit value (offsets, sizes, rights, times).
pub(crate) fn u64_arg(args: &[Val], i: usize) -> u64 {
    args[i].i64().unwrap_or_default() as u64
}
