//! Op descriptors on open file descriptors: reads, writes, vectored I/O,
//! seeking, syncing, sizing, stat, close and sendfile.
//!
//! # Streams
//!
//! A read or write *at an offset* on a stream (a pipe, FIFO, socket or
//! terminal, where `pread`/`pwrite` fail with `ESPIPE`) moves the stream
//! instead, ignoring the offset, on every backend: that is what io_uring
//! does with such an op, and the blocking path (pool, sync fallback,
//! simulated ring) follows it, so an op answers alike wherever it runs.
//! The op then drops its offset ([`OpCode::drop_offset`]; io_uring itself
//! ignores it for pipes and FIFOs but answers `ESPIPE` for a socket, which
//! its driver then resubmits without it), and an `EAGAIN` waits for
//! readiness as for a plain read or write. A read at offset 0, which
//! io_uring runs on a socket as a read at its position, drops its offset
//! before any driver sees it when the socket's bytes are read ahead (a
//! receive stream) or kept (see below), so it takes those first. (Referred
//! to as `STREAMS` below.)
//!
//! # Cancelled reads at the file position
//!
//! A `read` at the file position takes bytes in order, as a `recv` does,
//! and gets the same care when it is cancelled ([`OpCode::takes_in_order`]):
//! bytes its syscall moved for nobody are kept for the next `read` of the
//! fd (`crate::sys::leftover`), a ring holds a new read of the fd back while
//! an abandoned one may still take bytes, and where the read runs as a
//! blocking syscall (pool, sync fallback) it never waits for a stream's
//! bytes inside the syscall, even on a blocking fd: it reads only what is
//! there (`Kernel::read_nowait`), else waits for readiness outside the
//! syscall, checking whether it was abandoned, as a socket op does. So an
//! abandoned read stops before it takes bytes that arrive later.

use super::{buf_result, to_io, Nowait, OpCode, Request};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::sys::{leftover, Advice, Errno, FileStat, Interest, Kernel, SysResult, Whence};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::RawFd;

/// Record `filled` bytes read across `bufs`, front to back.
fn fill_vectored<B: IoBufMut>(bufs: &mut [B], mut filled: usize) {
    for buf in bufs {
        let room = buf.writable().len();
        let here = room.min(filled);
        buf.set_filled(here);
        filled -= here;
    }
}

/// A read at the file position that waits for a stream outside the
/// syscall: what is there now (`read_nowait`); if nothing is and the fd is
/// not readable, `EAGAIN` (the caller waits for readiness, and gives up
/// there if the op is abandoned); if it is readable (a file, whose read
/// waits only for the device, a stream that just got bytes, an fd that
/// cannot read without waiting), the plain `read`.
fn read_at_position(
    kernel: &dyn Kernel,
    fd: RawFd,
    bufs: &mut [IoSliceMut<'_>],
) -> SysResult<usize> {
    match kernel.read_nowait(fd, bufs) {
        Err(Errno::EAGAIN | Errno::EOPNOTSUPP) => {}
        result => return result,
    }
    if !kernel.wait_ready(fd, Interest::Readable, 0)? {
        return Err(Errno::EAGAIN);
    }
    match bufs {
        [one] => kernel.read(fd, one),
        _ => kernel.readv(fd, bufs),
    }
}

/// Whether a read at offset 0 of `fd` must drop its offset before any
/// driver sees it (`STREAMS`): `fd` is a stream whose bytes a receive
/// stream reads ahead or that has bytes kept for its next read. Such a
/// read then takes those bytes first, in order: the kernel's ring would
/// read a socket at offset 0 as at its position, past them. (At any other
/// offset the ring answers `ESPIPE`, the op goes back to its future
/// without the offset, and its new submission takes them.) The gate is
/// inlined; a regular file with bytes kept (a cancelled read at its
/// position) keeps its offset.
#[inline]
fn reads_a_kept_stream(kernel: &dyn Kernel, fd: RawFd) -> bool {
    leftover::any_kept_or_read_ahead() && is_kept_stream(kernel, fd)
}

#[inline(never)]
fn is_kept_stream(kernel: &dyn Kernel, fd: RawFd) -> bool {
    leftover::is_read_ahead(kernel, fd) || (leftover::has_any(kernel, fd) && is_stream(kernel, fd))
}

/// Before taking what was kept for `fd`: whether a read of it with
/// `offset` reads at the position, and so takes it. One at the position
/// does, and one at offset 0 of a kept stream ([`reads_a_kept_stream`]),
/// which drops its offset here.
#[inline]
fn reads_at_position(kernel: &dyn Kernel, fd: RawFd, offset: &mut Option<u64>) -> bool {
    match *offset {
        None => true,
        Some(0) if reads_a_kept_stream(kernel, fd) => {
            *offset = None;
            true
        }
        Some(_) => false,
    }
}

/// The fd whose bytes a finished read of `fd` at `offset` took in order,
/// to keep them when nobody took its result: one at the position, or at
/// offset 0 of a stream (one lseek).
fn stream_read_fd(kernel: &dyn Kernel, fd: RawFd, offset: Option<u64>) -> Option<RawFd> {
    match offset {
        None => Some(fd),
        Some(0) => is_stream(kernel, fd).then_some(fd),
        Some(_) => None,
    }
}

/// Whether `fd` is a stream (it has no file position to seek).
fn is_stream(kernel: &dyn Kernel, fd: RawFd) -> bool {
    kernel.lseek(fd, 0, Whence::Current) == Err(Errno::ESPIPE)
}

/// Leftover bytes of `fd` into the first of `bufs` with room (a short
/// read, as any read may be).
fn take_leftover_into<B: IoBufMut>(
    kernel: &dyn Kernel,
    fd: RawFd,
    bufs: &mut [B],
) -> Option<usize> {
    let room = bufs
        .iter_mut()
        .map(|b| b.writable())
        .find(|b| !b.is_empty())?;
    leftover::take_bytes(kernel, fd, room, false)
}

/// Keep the first `n` bytes read across `bufs` for the next read of `fd`:
/// behind what is kept when they came from the kernel, back in front when
/// they came from the store (`took_leftover`), as they were.
fn stash_read<B: IoBufMut>(
    kernel: &dyn Kernel,
    fd: RawFd,
    bufs: &mut [B],
    n: usize,
    took_leftover: bool,
) {
    let mut read = Vec::with_capacity(n);
    for buf in bufs {
        let bytes = buf.writable();
        let take = bytes.len().min(n - read.len());
        read.extend_from_slice(&bytes[..take]);
    }
    match took_leftover {
        true => leftover::put_back_bytes(kernel, fd, &read),
        false => leftover::stash_bytes(kernel, fd, None, &read),
    }
}

/// `read(2)` into an owned buffer at the file offset.
pub struct Read<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) offset: Option<u64>,
    /// The bytes came from the leftover store (a discard puts them back
    /// in front).
    pub(crate) took_leftover: bool,
}

impl<B: IoBufMut> Read<B> {
    /// One attempt: at the offset (a stream refuses it: `STREAMS`), else
    /// at the file position, taking what cancelled reads left first when
    /// `leftovers` (see [`OpCode::run_entry`]).
    fn read_once(&mut self, kernel: &dyn Kernel, leftovers: bool) -> SysResult<usize> {
        if let Some(offset) = self.offset {
            match kernel.pread(self.fd, self.buf.writable(), offset) {
                // A stream (`STREAMS`); as a ring entry, the driver drops
                // the offset and submits again, but at offset 0 the entry
                // reads the stream (see `OpCode::run_entry`).
                Err(Errno::ESPIPE) if leftovers && self.drop_offset() => {}
                Err(Errno::ESPIPE) if offset == 0 => {}
                result => return result,
            }
        }
        if leftovers {
            if let Some(result) = self.take_leftover(kernel) {
                return result;
            }
        }
        read_at_position(kernel, self.fd, &mut [IoSliceMut::new(self.buf.writable())])
    }
}

impl<B: IoBufMut> OpCode for Read<B> {
    type Output = BufResult<usize, B>;

    fn name(&self) -> &'static str {
        if self.offset.is_some() {
            "pread"
        } else {
            "read"
        }
    }

    fn request(&mut self) -> Request<'_> {
        Request::Read {
            fd: self.fd,
            buf: self.buf.writable(),
            offset: self.offset,
        }
    }

    fn eagain_wait(&self) -> Option<(RawFd, Interest)> {
        // Only a stream (socket, pipe, FIFO) answers EAGAIN, at the file
        // position or (see `STREAMS`) at an offset.
        Some((self.fd, Interest::Readable))
    }

    fn drop_offset(&mut self) -> bool {
        self.offset.take().is_some()
    }

    fn nowait(&mut self) -> Option<Nowait> {
        self.offset?;
        Some(Nowait {
            fd: self.fd,
            len_bytes: self.buf.writable().len(),
            write: false,
        })
    }

    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let offset = self.offset.unwrap_or(0);
        kernel.preadv_nowait(self.fd, &mut [IoSliceMut::new(self.buf.writable())], offset)
    }

    fn takes_in_order(&self) -> Option<RawFd> {
        self.offset.is_none().then_some(self.fd)
    }

    fn may_take_in_order(&self) -> Option<RawFd> {
        matches!(self.offset, None | Some(0)).then_some(self.fd)
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        if !reads_at_position(kernel, self.fd, &mut self.offset) {
            return None;
        }
        let n = take_leftover_into(kernel, self.fd, std::slice::from_mut(&mut self.buf))?;
        self.took_leftover = true;
        Some(Ok(n))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.read_once(kernel, true)
    }

    /// At an offset of a stream, what the kernel's ring does with a
    /// socket: at offset 0 it reads at the position, at any other it
    /// answers `ESPIPE` (the op then drops the offset and goes back to its
    /// future, which submits it again; for a pipe the kernel's ring
    /// ignores any offset at once: the same bytes, one entry sooner).
    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.read_once(kernel, false)
    }

    fn complete(mut self, result: SysResult<usize>) -> Self::Output {
        self.buf.set_filled(*result.as_ref().unwrap_or(&0));
        buf_result(result, self.buf)
    }

    /// Bytes a cancelled read at the file position moved are kept for the
    /// next read of the fd (module docs), and so are those a read at
    /// offset 0 took from a stream (`STREAMS`); a read at an offset of a
    /// file moved nothing another read would have got.
    fn discard(mut self, result: SysResult<usize>, kernel: &dyn Kernel) {
        if let (Ok(n), Some(fd)) = (result, stream_read_fd(kernel, self.fd, self.offset)) {
            let took_leftover = self.took_leftover;
            stash_read(
                kernel,
                fd,
                std::slice::from_mut(&mut self.buf),
                n,
                took_leftover,
            );
        }
    }
}

/// `write(2)`/`pwrite(2)` from an owned buffer.
pub struct Write<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) offset: Option<u64>,
}

impl<B: IoBuf> OpCode for Write<B> {
    type Output = BufResult<usize, B>;

    fn name(&self) -> &'static str {
        if self.offset.is_some() {
            "pwrite"
        } else {
            "write"
        }
    }

    fn request(&mut self) -> Request<'_> {
        Request::Write {
            fd: self.fd,
            buf: self.buf.as_bytes(),
            offset: self.offset,
        }
    }

    fn eagain_wait(&self) -> Option<(RawFd, Interest)> {
        // Only a stream (socket, pipe, FIFO) answers EAGAIN, at the file
        // position or (see `STREAMS`) at an offset.
        Some((self.fd, Interest::Writable))
    }

    fn drop_offset(&mut self) -> bool {
        self.offset.take().is_some()
    }

    fn nowait(&mut self) -> Option<Nowait> {
        self.offset?;
        Some(Nowait {
            fd: self.fd,
            len_bytes: self.buf.as_bytes().len(),
            write: true,
        })
    }

    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let offset = self.offset.unwrap_or(0);
        kernel.pwritev_nowait(self.fd, &[IoSlice::new(self.buf.as_bytes())], offset)
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        if let Some(offset) = self.offset {
            match kernel.pwrite(self.fd, self.buf.as_bytes(), offset) {
                Err(Errno::ESPIPE) if self.drop_offset() => {} // a stream: `STREAMS`
                result => return result,
            }
        }
        kernel.write(self.fd, self.buf.as_bytes())
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        buf_result(result, self.buf)
    }
}

/// `readv(2)`/`preadv(2)` into several owned buffers.
pub struct ReadVectored<B> {
    pub(crate) fd: RawFd,
    pub(crate) bufs: Vec<B>,
    pub(crate) offset: Option<u64>,
    /// As [`Read::took_leftover`].
    pub(crate) took_leftover: bool,
}

impl<B: IoBufMut> ReadVectored<B> {
    /// [`Read`]'s attempt, into every buffer.
    fn read_once(&mut self, kernel: &dyn Kernel, leftovers: bool) -> SysResult<usize> {
        if let Some(offset) = self.offset {
            let mut slices: Vec<IoSliceMut<'_>> = self
                .bufs
                .iter_mut()
                .map(|b| IoSliceMut::new(b.writable()))
                .collect();
            match kernel.preadv(self.fd, &mut slices, offset) {
                // (`drop_offset`, on the field: the slices borrow the buffers.)
                Err(Errno::ESPIPE) if leftovers && self.offset.take().is_some() => {} // `STREAMS`
                Err(Errno::ESPIPE) if offset == 0 => {}                               // as `Read`'s
                result => return result,
            }
        }
        if leftovers {
            if let Some(result) = self.take_leftover(kernel) {
                return result;
            }
        }
        let mut slices: Vec<IoSliceMut<'_>> = self
            .bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(b.writable()))
            .collect();
        read_at_position(kernel, self.fd, &mut slices)
    }
}

impl<B: IoBufMut> OpCode for ReadVectored<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn name(&self) -> &'static str {
        if self.offset.is_some() {
            "preadv"
        } else {
            "readv"
        }
    }

    fn request(&mut self) -> Request<'_> {
        Request::ReadVectored {
            fd: self.fd,
            bufs: self
                .bufs
                .iter_mut()
                .map(|b| IoSliceMut::new(b.writable()))
                .collect(),
            offset: self.offset,
        }
    }

    fn eagain_wait(&self) -> Option<(RawFd, Interest)> {
        // Only a stream (socket, pipe, FIFO) answers EAGAIN, at the file
        // position or (see `STREAMS`) at an offset.
        Some((self.fd, Interest::Readable))
    }

    fn drop_offset(&mut self) -> bool {
        self.offset.take().is_some()
    }

    fn nowait(&mut self) -> Option<Nowait> {
        self.offset?;
        Some(Nowait {
            fd: self.fd,
            len_bytes: self.bufs.iter_mut().map(|b| b.writable().len()).sum(),
            write: false,
        })
    }

    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = self
            .bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(b.writable()))
            .collect();
        kernel.preadv_nowait(self.fd, &mut slices, self.offset.unwrap_or(0))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.read_once(kernel, true)
    }

    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.read_once(kernel, false)
    }

    fn complete(mut self, result: SysResult<usize>) -> Self::Output {
        fill_vectored(&mut self.bufs, *result.as_ref().unwrap_or(&0));
        buf_result(result, self.bufs)
    }

    fn takes_in_order(&self) -> Option<RawFd> {
        self.offset.is_none().then_some(self.fd)
    }

    fn may_take_in_order(&self) -> Option<RawFd> {
        matches!(self.offset, None | Some(0)).then_some(self.fd)
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        if !reads_at_position(kernel, self.fd, &mut self.offset) {
            return None;
        }
        let n = take_leftover_into(kernel, self.fd, &mut self.bufs)?;
        self.took_leftover = true;
        Some(Ok(n))
    }

    /// As [`Read`]'s: bytes of a cancelled read at the file position are
    /// kept for the next read of the fd.
    fn discard(mut self, result: SysResult<usize>, kernel: &dyn Kernel) {
        if let (Ok(n), Some(fd)) = (result, stream_read_fd(kernel, self.fd, self.offset)) {
            stash_read(kernel, fd, &mut self.bufs, n, self.took_leftover);
        }
    }
}

/// `writev(2)`/`pwritev(2)` from several owned buffers.
pub struct WriteVectored<B> {
    pub(crate) fd: RawFd,
    pub(crate) bufs: Vec<B>,
    pub(crate) offset: Option<u64>,
}

impl<B: IoBuf> OpCode for WriteVectored<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn name(&self) -> &'static str {
        if self.offset.is_some() {
            "pwritev"
        } else {
            "writev"
        }
    }

    fn request(&mut self) -> Request<'_> {
        Request::WriteVectored {
            fd: self.fd,
            bufs: self
                .bufs
                .iter()
                .map(|b| IoSlice::new(b.as_bytes()))
                .collect(),
            offset: self.offset,
        }
    }

    fn eagain_wait(&self) -> Option<(RawFd, Interest)> {
        // Only a stream (socket, pipe, FIFO) answers EAGAIN, at the file
        // position or (see `STREAMS`) at an offset.
        Some((self.fd, Interest::Writable))
    }

    fn drop_offset(&mut self) -> bool {
        self.offset.take().is_some()
    }

    fn nowait(&mut self) -> Option<Nowait> {
        self.offset?;
        Some(Nowait {
            fd: self.fd,
            len_bytes: self.bufs.iter().map(|b| b.as_bytes().len()).sum(),
            write: true,
        })
    }

    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let slices: Vec<IoSlice<'_>> = self
            .bufs
            .iter()
            .map(|b| IoSlice::new(b.as_bytes()))
            .collect();
        kernel.pwritev_nowait(self.fd, &slices, self.offset.unwrap_or(0))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let slices: Vec<IoSlice<'_>> = self
            .bufs
            .iter()
            .map(|b| IoSlice::new(b.as_bytes()))
            .collect();
        if let Some(offset) = self.offset {
            match kernel.pwritev(self.fd, &slices, offset) {
                // (`drop_offset`, on the field: the slices borrow the buffers.)
                Err(Errno::ESPIPE) if self.offset.take().is_some() => {} // `STREAMS`
                result => return result,
            }
        }
        kernel.writev(self.fd, &slices)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        buf_result(result, self.bufs)
    }
}

/// `lseek(2)`.
pub struct Lseek {
    pub(crate) fd: RawFd,
    pub(crate) offset: i64,
    pub(crate) whence: Whence,
    pub(crate) position: u64,
}

impl OpCode for Lseek {
    type Output = io::Result<u64>;

    fn name(&self) -> &'static str {
        "lseek"
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.position = kernel.lseek(self.fd, self.offset, self.whence)?;
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(|_| self.position)
    }
}

/// What a [`Sync`] op flushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// Data and metadata (`fsync`).
    All,
    /// Data and the metadata needed to read it (`fdatasync`).
    Data,
}

/// `fsync(2)`/`fdatasync(2)`.
pub struct Sync {
    pub(crate) fd: RawFd,
    pub(crate) kind: SyncKind,
}

impl OpCode for Sync {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        match self.kind {
            SyncKind::All => "fsync",
            SyncKind::Data => "fdatasync",
        }
    }

    fn request(&mut self) -> Request<'_> {
        Request::Sync {
            fd: self.fd,
            data_only: self.kind == SyncKind::Data,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        match self.kind {
            SyncKind::All => kernel.fsync(self.fd)?,
            SyncKind::Data => kernel.fdatasync(self.fd)?,
        }
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `ftruncate(2)`.
pub struct Truncate {
    pub(crate) fd: RawFd,
    pub(crate) len_bytes: u64,
}

impl OpCode for Truncate {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "ftruncate"
    }

    fn request(&mut self) -> Request<'_> {
        Request::Truncate {
            fd: self.fd,
            len_bytes: self.len_bytes,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.ftruncate(self.fd, self.len_bytes).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `fallocate(2)`.
pub struct Allocate {
    pub(crate) fd: RawFd,
    pub(crate) mode: i32,
    pub(crate) offset: u64,
    pub(crate) len_bytes: u64,
}

impl OpCode for Allocate {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "fallocate"
    }

    fn request(&mut self) -> Request<'_> {
        Request::Allocate {
            fd: self.fd,
            mode: self.mode,
            offset: self.offset,
            len_bytes: self.len_bytes,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel
            .fallocate(self.fd, self.mode, self.offset, self.len_bytes)
            .map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `posix_fadvise(2)`: an access-pattern hint for a range of a file.
pub struct Advise {
    pub(crate) fd: RawFd,
    pub(crate) offset: u64,
    pub(crate) len_bytes: u64,
    pub(crate) advice: Advice,
}

impl OpCode for Advise {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "fadvise"
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel
            .fadvise(self.fd, self.offset, self.len_bytes, self.advice)
            .map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `fstat(2)`.
pub struct Stat {
    pub(crate) fd: RawFd,
    pub(crate) stat: Option<FileStat>,
}

impl OpCode for Stat {
    type Output = io::Result<FileStat>;

    fn name(&self) -> &'static str {
        "fstat"
    }

    fn request(&mut self) -> Request<'_> {
        Request::Stat {
            fd: self.fd,
            out: &mut self.stat,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.stat = Some(kernel.fstat(self.fd)?);
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result)?;
        self.stat
            .ok_or_else(|| io::Error::other("fstat completed without a result"))
    }
}

/// `close(2)`.
pub struct Close {
    pub(crate) fd: RawFd,
}

impl OpCode for Close {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "close"
    }

    fn closes_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn request(&mut self) -> Request<'_> {
        Request::Close { fd: self.fd }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.close(self.fd).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `sendfile(2)` from a file at an offset to a file or socket.
pub struct Sendfile {
    pub(crate) out_fd: RawFd,
    pub(crate) in_fd: RawFd,
    pub(crate) in_offset: u64,
    pub(crate) len_bytes: usize,
}

impl OpCode for Sendfile {
    type Output = io::Result<usize>;

    fn name(&self) -> &'static str {
        "sendfile"
    }

    fn readiness(&self) -> Option<(RawFd, crate::sys::Interest)> {
        Some((self.out_fd, crate::sys::Interest::Writable))
    }

    fn reads_files(&self) -> bool {
        true
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.sendfile(self.out_fd, self.in_fd, self.in_offset, self.len_bytes)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result)
    }
}

/// `fstatfs(2)`: the file system an fd lives on.
pub struct StatFs {
    pub(crate) fd: RawFd,
    pub(crate) stat: Option<crate::sys::FsStat>,
}

impl OpCode for StatFs {
    type Output = io::Result<crate::sys::FsStat>;

    fn name(&self) -> &'static str {
        "fstatfs"
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.stat = Some(kernel.fstatfs(self.fd)?);
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result)?;
        self.stat
            .ok_or_else(|| io::Error::other("fstatfs completed without a result"))
    }
}
