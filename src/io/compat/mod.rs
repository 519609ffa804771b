//! Owned-buffer adapters that give iokernel files and streams the
//! ecosystem's I/O traits: `futures-io`'s `AsyncRead`/`AsyncWrite`/
//! `AsyncBufRead`/`AsyncSeek` (feature `compat-futures`, module
//! `io::compat::futures`) and the same four from `tokio::io`
//! (feature `compat-tokio`, module `io::compat::tokio`).
//!
//! # How the adapter works
//!
//! The ecosystem's traits lend the caller's buffer for one poll; an
//! iokernel op owns its buffer until the kernel is done with it. So a
//! [`Compat`] owns two buffers of [`DEFAULT_BUF_BYTES`] (or
//! [`Compat::with_buffer_bytes`]) and at most one read and one write op in
//! flight:
//! - `poll_read` copies out of the read buffer; when it is empty, the
//!   buffer moves into a read op (`recv`, or `read` at the file offset)
//!   and comes back filled.
//! - `poll_write` copies into the write buffer and returns at once; the
//!   buffer moves into a write op (`send`, or `write` at the file offset)
//!   as soon as no other write is in flight, and short writes are resumed.
//!   An error of a write shows at the next `poll_write` or `poll_flush`.
//! - `poll_flush` waits until every accepted byte was written;
//!   `poll_shutdown`/`poll_close` flushes, then shuts the write direction
//!   of a socket (nothing more for a file); a stream's `poll_write` after
//!   that fails (`BrokenPipe`) and accepts nothing.
//! - `poll_seek` (files) flushes, waits for a read in flight, forgets the
//!   read-ahead (a `Current` offset counts from what the caller consumed)
//!   and runs `lseek`.
//!
//! # Where the ops run
//!
//! [`Compat::new`] runs each op where the adapter is polled: submitted to
//! the driver of the iokernel runtime thread that polls it, or, on any
//! other thread (a tokio worker, plain synchronous code), as a blocking
//! syscall on the first poll — correct, but it blocks that thread.
//! [`Compat::with_handle`] spawns each op onto an iokernel
//! [`Runtime`](crate::runtime::Runtime) through its
//! [`Handle`] and awaits the [`JoinHandle`]: polled
//! from tokio it never blocks tokio's workers. Use that one inside a tokio
//! application.
//!
//! # Dropping an adapter mid-op
//!
//! No accepted byte is lost: bytes `poll_write` took but did not write yet
//! (in flight or still buffered) are written by a background task that
//! keeps the fd open until it is done (on the handle's runtime, on the
//! current iokernel runtime's workers, or — on a thread with neither — by
//! blocking writes in `drop`, like `std::io::BufWriter`). The task runs
//! while its runtime runs: a runtime dropped before it finishes cancels it.
//! Errors of those writes cannot be reported: flush (or shut down) first
//! to see them. A
//! read in flight is cancelled the way every iokernel op is (the kernel
//! never writes into freed memory; bytes a cancelled `recv` had received
//! are kept for the socket's next `recv`); on a handle its task is
//! aborted, so the fd closes at once rather than when a peer sends. Bytes
//! read ahead but not yet consumed go with the adapter unless
//! [`Compat::into_inner`] takes them.
//!
//! ```
//! use iokernel::fs::File;
//! use iokernel::io::compat::Compat;
//! use iokernel::runtime::block_on_here;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("compat.txt");
//! let file = block_on_here(File::create(&path)).unwrap();
//! let adapter = Compat::new(file).with_buffer_bytes(4096);
//! assert_eq!(adapter.buffer_bytes(), 4096);
//! let (file, read_ahead) = adapter.into_inner().map_err(|_| "busy").unwrap();
//! assert!(read_ahead.is_empty());
//! drop(file);
//! ```

#[cfg(feature = "compat-futures")]
pub mod futures;
#[cfg(feature = "compat-tokio")]
pub mod tokio;

use crate::buf::BufResult;
use crate::fs::File;
use crate::io::{self as ops, Whence};
use crate::net::{TcpStream, UnixStream};
use crate::runtime::{self, Handle, JoinError, JoinHandle};
use std::future::Future;
use std::io;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// The read and the write buffer size of a new adapter.
///
/// ```
/// assert_eq!(iokernel::io::compat::DEFAULT_BUF_BYTES, 64 * 1024);
/// ```
pub const DEFAULT_BUF_BYTES: usize = 64 * 1024;

/// A boxed, `Send` op future.
///
/// ```
/// use iokernel::io::compat::BoxOp;
/// let op: BoxOp<std::io::Result<u64>> = Box::pin(async { Ok(7) });
/// assert_eq!(iokernel::runtime::block_on_here(op).unwrap(), 7);
/// ```
pub type BoxOp<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A byte op on an owned buffer: yields the count and the buffer.
///
/// ```
/// use iokernel::io::compat::{BufOp, CompatIo};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("bufop");
/// # std::fs::write(&path, b"abc").unwrap();
/// let file = iokernel::runtime::block_on_here(iokernel::fs::File::open(&path)).unwrap();
/// let op: BufOp = file.start_read(Vec::with_capacity(8));
/// let (n, buf) = iokernel::runtime::block_on_here(op).into_parts();
/// assert_eq!(&buf[..n.unwrap()], b"abc");
/// ```
pub type BufOp = BoxOp<BufResult<usize, Vec<u8>>>;

mod sealed {
    /// Only this crate's fd-owning types are adapted.
    pub trait Sealed {}
}

/// What a [`Compat`] needs from the object it wraps: start a read, a
/// write or (files) a seek, and shut the write direction. Implemented by
/// [`File`], [`TcpStream`] and [`UnixStream`]; another stream type of this crate joins in
/// this module with `impl sealed::Sealed for T {}` and a `CompatIo` impl
/// like `TcpStream`'s (`recv`/`send` on its fd, `shutdown(Write)`,
/// `start_seek` → `None`).
///
/// The futures must not borrow `self` (the adapter keeps them across
/// polls): build them from the fd, as the `crate::io` ops do. The adapter
/// keeps the object alive until every op it started is done.
///
/// ```
/// use iokernel::io::compat::CompatIo;
/// use iokernel::net::TcpStream;
/// fn adaptable<T: CompatIo>() {}
/// adaptable::<TcpStream>();
/// adaptable::<iokernel::fs::File>();
/// ```
pub trait CompatIo: sealed::Sealed + Send + Sync + 'static {
    /// Read up to `buf.capacity()` bytes into `buf`; `Ok(0)` at the end.
    fn start_read(&self, buf: Vec<u8>) -> BufOp;
    /// Write some of `buf`; may be short.
    fn start_write(&self, buf: Vec<u8>) -> BufOp;
    /// After the last write: shut the write direction (sockets); files do
    /// nothing.
    fn shutdown_write(&self) -> io::Result<()>;
    /// What errors call the object, e.g. `"file fd 7"`.
    fn describe(&self) -> String;
    /// For an object whose reads and writes share a file offset: move it
    /// (`lseek`), yielding the new offset. `None` for streams, which
    /// cannot seek.
    fn start_seek(&self, offset: i64, whence: Whence) -> Option<BoxOp<io::Result<u64>>>;
}

impl sealed::Sealed for File {}

impl CompatIo for File {
    fn start_read(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::read(self.as_raw_fd(), buf))
    }

    fn start_write(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::write(self.as_raw_fd(), buf))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file fd {}", self.as_raw_fd())
    }

    fn start_seek(&self, offset: i64, whence: Whence) -> Option<BoxOp<io::Result<u64>>> {
        Some(Box::pin(ops::lseek(self.as_raw_fd(), offset, whence)))
    }
}

impl sealed::Sealed for TcpStream {}

impl CompatIo for TcpStream {
    fn start_read(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::recv(self.as_raw_fd(), buf))
    }

    fn start_write(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::send(self.as_raw_fd(), buf))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown_now(crate::sys::Shutdown::Write)
    }

    fn describe(&self) -> String {
        format!("tcp stream fd {}", self.as_raw_fd())
    }

    fn start_seek(&self, _offset: i64, _whence: Whence) -> Option<BoxOp<io::Result<u64>>> {
        None
    }
}

impl sealed::Sealed for UnixStream {}

impl CompatIo for UnixStream {
    fn start_read(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::recv(self.as_raw_fd(), buf))
    }

    fn start_write(&self, buf: Vec<u8>) -> BufOp {
        Box::pin(ops::send(self.as_raw_fd(), buf))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown_now(crate::sys::Shutdown::Write)
    }

    fn describe(&self) -> String {
        format!("unix stream fd {}", self.as_raw_fd())
    }

    fn start_seek(&self, _offset: i64, _whence: Whence) -> Option<BoxOp<io::Result<u64>>> {
        None
    }
}

/// Where an adapter's ops run.
#[derive(Clone, Debug)]
enum Exec {
    /// Polled in place: the current thread's driver, or the sync fallback.
    Here,
    /// Spawned onto an iokernel runtime.
    On(Handle),
}

impl Exec {
    fn launch_buf<T: CompatIo>(&self, io: &Arc<T>, op: BufOp) -> BufOp {
        match self {
            Exec::Here => op,
            Exec::On(handle) => {
                let io = Arc::clone(io);
                let task = handle.spawn(async move {
                    let result = op.await;
                    // Released before the result is published, so
                    // `into_inner` sees the adapter as the only owner.
                    drop(io);
                    result
                });
                let task = AbortOnDrop(task);
                Box::pin(async move {
                    task.await
                        .unwrap_or_else(|e| BufResult(Err(io::Error::from(e)), Vec::new()))
                })
            }
        }
    }

    fn launch<T: CompatIo, R: Send + 'static>(
        &self,
        io: &Arc<T>,
        op: BoxOp<io::Result<R>>,
    ) -> BoxOp<io::Result<R>> {
        match self {
            Exec::Here => op,
            Exec::On(handle) => {
                let io = Arc::clone(io);
                let task = handle.spawn(async move {
                    let result = op.await;
                    drop(io);
                    result
                });
                let task = AbortOnDrop(task);
                Box::pin(async move { task.await.map_err(io::Error::from).and_then(|r| r) })
            }
        }
    }
}

/// A spawned op that is aborted when its future is dropped unfinished: a
/// read an adapter no longer wants must not keep the fd open (and the
/// task alive) until a peer that may never send does. Writes are never
/// dropped this way: a dropped adapter awaits them (`finish_writes`).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abort();
        }
    }
}

/// An iokernel file or stream with the ecosystem's async I/O traits (see
/// the [module docs](self) for how it buffers, where ops run and what a
/// drop does).
///
/// ```
/// use iokernel::io::compat::Compat;
/// use iokernel::net::{TcpListener, TcpStream};
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let stream = rt.block_on(TcpStream::connect(addr)).unwrap();
/// // From a tokio task, run the ops on `rt`'s workers:
/// let adapter = Compat::with_handle(stream, &rt.handle());
/// assert!(adapter.get_ref().peer_addr().is_ok());
/// ```
pub struct Compat<T: CompatIo> {
    // Op futures first: dropped before the object they work on.
    read_op: Option<BufOp>,
    write_op: Option<BufOp>,
    seek_op: Option<BoxOp<io::Result<u64>>>,
    /// `Some` until `into_inner`.
    io: Option<Arc<T>>,
    exec: Exec,
    buf_bytes: usize,
    /// Read-ahead: `rbuf[rpos..]` is not consumed yet.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Accepted by `poll_write`, not yet handed to a write op.
    wbuf: Vec<u8>,
    spare: Option<Vec<u8>>,
    write_error: Option<io::Error>,
    written_bytes: u64,
    read_bytes: u64,
    /// tokio's `start_seek` request, consumed by `poll_complete`.
    #[cfg(feature = "compat-tokio")]
    seek_request: Option<SeekFrom>,
    shut: bool,
}

impl<T: CompatIo> std::fmt::Debug for Compat<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compat")
            .field("io", &self.io.as_ref().map(|io| io.describe()))
            .field("exec", &self.exec)
            .field("buf_bytes", &self.buf_bytes)
            .field("read_ahead", &(self.rbuf.len() - self.rpos))
            .field("unwritten", &self.wbuf.len())
            .finish()
    }
}

impl<T: CompatIo> Compat<T> {
    /// Adapt `io`; its ops run where the adapter is polled (see the
    /// [module docs](self)).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("new.txt");
    /// let file = iokernel::runtime::block_on_here(iokernel::fs::File::create(&path)).unwrap();
    /// let adapter = iokernel::io::compat::Compat::new(file);
    /// assert_eq!(adapter.buffer_bytes(), iokernel::io::compat::DEFAULT_BUF_BYTES);
    /// ```
    pub fn new(io: T) -> Compat<T> {
        Compat::build(io, Exec::Here)
    }

    /// Adapt `io`; each op is spawned onto the runtime of `handle`, so
    /// polling the adapter from another executor never blocks it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("handle.txt");
    /// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
    /// let file = rt.block_on(iokernel::fs::File::create(&path)).unwrap();
    /// let adapter = iokernel::io::compat::Compat::with_handle(file, &rt.handle());
    /// # drop(adapter);
    /// ```
    pub fn with_handle(io: T, handle: &Handle) -> Compat<T> {
        Compat::build(io, Exec::On(handle.clone()))
    }

    fn build(io: T, exec: Exec) -> Compat<T> {
        Compat {
            read_op: None,
            write_op: None,
            seek_op: None,
            io: Some(Arc::new(io)),
            exec,
            buf_bytes: DEFAULT_BUF_BYTES,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            spare: None,
            write_error: None,
            written_bytes: 0,
            read_bytes: 0,
            #[cfg(feature = "compat-tokio")]
            seek_request: None,
            shut: false,
        }
    }

    /// Use `bytes` (at least 1) for the read and the write buffer.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = iokernel::runtime::block_on_here(iokernel::fs::File::create(dir.path().join("b"))).unwrap();
    /// let adapter = iokernel::io::compat::Compat::new(file).with_buffer_bytes(0);
    /// assert_eq!(adapter.buffer_bytes(), 1);
    /// ```
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Compat<T> {
        self.buf_bytes = bytes.max(1);
        self
    }

    /// The read and the write buffer size.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = iokernel::runtime::block_on_here(iokernel::fs::File::create(dir.path().join("b"))).unwrap();
    /// let adapter = iokernel::io::compat::Compat::new(file).with_buffer_bytes(512);
    /// assert_eq!(adapter.buffer_bytes(), 512);
    /// ```
    pub fn buffer_bytes(&self) -> usize {
        self.buf_bytes
    }

    /// The wrapped object.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = iokernel::runtime::block_on_here(iokernel::fs::File::create(dir.path().join("r"))).unwrap();
    /// let adapter = iokernel::io::compat::Compat::new(file);
    /// assert!(adapter.get_ref().as_raw_fd() >= 0);
    /// ```
    pub fn get_ref(&self) -> &T {
        self.io()
    }

    /// The object and the bytes read ahead but not consumed, when no op is
    /// in flight and every accepted byte was written (flush first);
    /// otherwise the adapter back.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = iokernel::runtime::block_on_here(iokernel::fs::File::create(dir.path().join("i"))).unwrap();
    /// let adapter = iokernel::io::compat::Compat::new(file);
    /// let (file, unread) = adapter.into_inner().expect("idle");
    /// assert!(unread.is_empty() && file.as_raw_fd() >= 0);
    /// ```
    // The busy adapter comes back whole, as `std::io::BufWriter::into_inner`
    // gives back its writer: boxing it would only move the cost.
    #[allow(clippy::result_large_err)]
    pub fn into_inner(mut self) -> Result<(T, Vec<u8>), Compat<T>> {
        let busy = self.read_op.is_some()
            || self.write_op.is_some()
            || self.seek_op.is_some()
            || !self.wbuf.is_empty();
        if busy {
            return Err(self);
        }
        let io = self.io.take().expect("io present until into_inner");
        match Arc::try_unwrap(io) {
            Ok(io) => {
                let mut unread = std::mem::take(&mut self.rbuf);
                unread.drain(..self.rpos);
                Ok((io, unread))
            }
            Err(io) => {
                self.io = Some(io);
                Err(self)
            }
        }
    }

    fn io(&self) -> &Arc<T> {
        self.io.as_ref().expect("io present until into_inner")
    }

    fn context(&self, e: io::Error, what: &str, at_bytes: u64) -> io::Error {
        let msg = format!(
            "compat {what} on {} (after {at_bytes} bytes): {e}",
            self.io().describe()
        );
        io::Error::new(e.kind(), msg)
    }

    /// Drive the write side: finish the op in flight (resuming a short
    /// write), then hand the buffered bytes to the next op. Ready when
    /// nothing is in flight and nothing is buffered, or an error was
    /// recorded.
    fn drive_writes(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(op) = self.write_op.as_mut() {
                let BufResult(result, mut buf) = ready!(op.as_mut().poll(cx));
                self.write_op = None;
                match result {
                    Ok(0) if !buf.is_empty() => {
                        let e = io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes");
                        self.write_error = Some(self.context(e, "write", self.written_bytes));
                    }
                    Ok(n) => {
                        self.written_bytes += n as u64;
                        buf.drain(..n.min(buf.len()));
                        if !buf.is_empty() {
                            self.start_write(buf);
                            continue;
                        }
                        self.spare = Some(buf);
                    }
                    Err(e) => {
                        // The op's bytes are dropped; the ones buffered
                        // after them are kept for the next flush.
                        self.write_error = Some(self.context(e, "write", self.written_bytes));
                        buf.clear();
                        self.spare = Some(buf);
                    }
                }
            }
            if self.write_error.is_some() || self.wbuf.is_empty() {
                return Poll::Ready(());
            }
            let next = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(self.buf_bytes));
            let buf = std::mem::replace(&mut self.wbuf, next);
            self.start_write(buf);
        }
    }

    fn start_write(&mut self, buf: Vec<u8>) {
        let op = self.io().start_write(buf);
        self.write_op = Some(self.exec.launch_buf(self.io(), op));
    }

    /// `poll_write` of both trait families.
    pub(crate) fn poll_write_bytes(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.shut && !self.positioned() {
            // The stream's write direction is shut: a byte accepted now
            // could never be written (a stream's own write says EPIPE).
            let written = self.written_bytes;
            let e = io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the write direction was shut down; nothing was accepted",
            );
            return Poll::Ready(Err(self.context(e, "write", written)));
        }
        let read_ahead = self.read_op.is_some() || self.rpos < self.rbuf.len();
        if self.seek_op.is_some() || (read_ahead && self.positioned()) {
            // A file's writes continue from what the caller consumed:
            // hand the read-ahead back to the offset first.
            ready!(self.poll_seek_to(cx, SeekFrom::Current(0)))?;
        }
        let _ = self.drive_writes(cx);
        if let Some(e) = self.write_error.take() {
            return Poll::Ready(Err(e));
        }
        let room = self.buf_bytes.saturating_sub(self.wbuf.len());
        if room == 0 {
            // Full means a write is in flight (else `drive_writes` took
            // the buffer), and it holds our waker.
            return Poll::Pending;
        }
        let n = room.min(data.len());
        self.wbuf.extend_from_slice(&data[..n]);
        // Start it now if no write is in flight; an error of an op that
        // completes at once (sync fallback) shows at the next call.
        let _ = self.drive_writes(cx);
        Poll::Ready(Ok(n))
    }

    /// `poll_flush` of both trait families.
    pub(crate) fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive_writes(cx));
        match self.write_error.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// `poll_shutdown` (tokio) and `poll_close` (futures).
    pub(crate) fn poll_shut(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush_all(cx))?;
        if !self.shut {
            let written = self.written_bytes;
            self.io()
                .shutdown_write()
                .map_err(|e| self.context(e, "shutdown", written))?;
            self.shut = true;
        }
        Poll::Ready(Ok(()))
    }

    /// `poll_fill_buf` of both trait families.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.rpos < self.rbuf.len() {
            return Poll::Ready(Ok(&self.rbuf[self.rpos..]));
        }
        let unwritten = self.write_op.is_some() || !self.wbuf.is_empty();
        if self.read_op.is_none() && unwritten && self.positioned() {
            // A file's next read starts where the accepted writes end.
            ready!(self.poll_flush_all(cx))?;
        }
        if self.read_op.is_none() {
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.clear();
            buf.reserve_exact(self.buf_bytes);
            let op = self.io().start_read(buf);
            self.read_op = Some(self.exec.launch_buf(self.io(), op));
        }
        let op = self.read_op.as_mut().expect("read op started above");
        let BufResult(result, buf) = ready!(op.as_mut().poll(cx));
        self.read_op = None;
        self.rbuf = buf;
        self.rpos = 0;
        match result {
            Ok(n) => {
                self.rbuf.truncate(n);
                self.read_bytes += n as u64;
                Poll::Ready(Ok(&self.rbuf[..]))
            }
            Err(e) => {
                self.rbuf.clear();
                Poll::Ready(Err(self.context(e, "read", self.read_bytes)))
            }
        }
    }

    /// `consume` of both trait families.
    pub(crate) fn consume_bytes(&mut self, amt: usize) {
        self.rpos = (self.rpos + amt).min(self.rbuf.len());
    }

    /// `poll_read` of futures-io: copy into `out` (tokio's copies into a
    /// `ReadBuf` itself).
    #[cfg(feature = "compat-futures")]
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let ahead = ready!(self.poll_fill(cx))?;
        let n = ahead.len().min(out.len());
        out[..n].copy_from_slice(&ahead[..n]);
        self.consume_bytes(n);
        Poll::Ready(Ok(n))
    }
}

impl<T: CompatIo> Compat<T> {
    /// Whether reads and writes share a file offset (files).
    fn positioned(&self) -> bool {
        self.io().start_seek(0, Whence::Current).is_some()
    }

    /// `poll_seek` (futures) and `start_seek` + `poll_complete` (tokio),
    /// for objects with a file offset.
    pub(crate) fn poll_seek_to(
        &mut self,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        if self.seek_op.is_none() {
            ready!(self.poll_flush_all(cx))?;
            if self.read_op.is_some() {
                // Its bytes moved the file offset: wait and count them.
                ready!(self.poll_fill(cx))?;
            }
            let unread = (self.rbuf.len() - self.rpos) as i64;
            let (offset, whence) = match pos {
                SeekFrom::Start(at) => (i64::try_from(at).unwrap_or(i64::MAX), Whence::Set),
                SeekFrom::Current(delta) => (delta - unread, Whence::Current),
                SeekFrom::End(delta) => (delta, Whence::End),
            };
            let Some(op) = self.io().start_seek(offset, whence) else {
                let e = io::Error::from(crate::sys::Errno::ESPIPE);
                return Poll::Ready(Err(self.context(e, "seek", self.read_bytes)));
            };
            self.rbuf.clear();
            self.rpos = 0;
            self.seek_op = Some(self.exec.launch(self.io(), op));
        }
        let op = self.seek_op.as_mut().expect("seek op started above");
        let result = ready!(op.as_mut().poll(cx));
        self.seek_op = None;
        let what = format!("seek to {pos:?}");
        Poll::Ready(result.map_err(|e| self.context(e, &what, self.written_bytes)))
    }
}

impl<T: CompatIo> Drop for Compat<T> {
    fn drop(&mut self) {
        let op = self.write_op.take();
        let pending = std::mem::take(&mut self.wbuf);
        let Some(io) = self.io.take() else {
            return;
        };
        if op.is_none() && pending.is_empty() {
            return;
        }
        let finish = finish_writes(io, op, pending);
        match &self.exec {
            Exec::On(handle) => drop(handle.spawn(finish)),
            // A worker, not this thread's local queue: `block_on`'s loop
            // ends with its future, and its local tasks with it.
            Exec::Here if runtime::in_runtime() => drop(runtime::spawn(finish)),
            Exec::Here => runtime::block_on_here(finish),
        }
    }
}

/// Write what a dropped adapter had accepted: the rest of the op in
/// flight, then the buffered bytes. `io` stays open until done; errors
/// end it silently (nobody is left to tell).
async fn finish_writes<T: CompatIo>(io: Arc<T>, op: Option<BufOp>, pending: Vec<u8>) {
    let mut left = Vec::new();
    if let Some(op) = op {
        let BufResult(result, buf) = op.await;
        match result {
            Ok(n) => left.extend_from_slice(&buf[n.min(buf.len())..]),
            Err(_) => return,
        }
    }
    left.extend_from_slice(&pending);
    while !left.is_empty() {
        let BufResult(result, mut buf) = io.start_write(left).await;
        match result {
            Ok(n) if n > 0 => {
                buf.drain(..n.min(buf.len()));
                left = buf;
            }
            _ => return,
        }
    }
}
