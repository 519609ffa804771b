//! The public awaitable ops, one function per syscall, mirroring the
//! original C++ API (`io::read(fd, buf, len)` and friends) with owned
//! buffers.
//!
//! Every function returns an [`Op`]: `.await` it inside a runtime, or call
//! [`Op::wait`] from synchronous code. Awaited on a thread without an
//! iokernel runtime, an op performs the blocking syscall on its first poll
//! (the sync fallback), so the same code works everywhere.
//!
//! Errors are `std::io::Error` carrying the kernel's errno:
//! `err.raw_os_error() == Some(libc::ENOENT)` where the C++ API returned
//! `-ENOENT`. Buffers come back in a [`BufResult`] whatever happened.
//!
//! ```
//! use iokernel::buf::BufResult;
//! use iokernel::io::{self, OpenFlags};
//! # let path = std::env::temp_dir().join(format!("iok-io-doc-{}", std::process::id()));
//! # std::fs::write(&path, b"0123456789").unwrap();
//! let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
//! let n = rt.block_on(async {
//!     let fd = io::open(&path, OpenFlags::RDONLY, 0).await?;
//!     let BufResult(n, buf) = io::pread(fd, vec![0u8; 4], 3).await;
//!     assert_eq!(&buf[..], b"3456");
//!     io::close(fd).await?;
//!     n
//! }).unwrap();
//! assert_eq!(n, 4);
//! # std::fs::remove_file(path).unwrap();
//! ```

#[cfg(any(feature = "compat-futures", feature = "compat-tokio"))]
pub mod compat;
mod fd;

use crate::buf::{IoBuf, IoBufMut};
use crate::op::file::{
    Advise, Allocate, Close, Lseek, Read, ReadVectored, Sendfile, Stat, StatFs, Sync, SyncKind,
    Truncate, Write, WriteVectored,
};
use crate::op::msg::{AcceptUnix, ConnectUnix, RecvMsg, SendMsg, ShutdownOp};
use crate::op::net::{Accept, Connect, Recv, Send};
use crate::op::path::{GetXattr, KernelPath, Mkdir, Open, Rename, SetXattr, Unlink};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;

pub use crate::buf::BufResult;
pub use crate::driver::Op;
pub use crate::fs::OpenOptions;
pub use crate::sys::{
    Advice, FileStat, FileType, FsStat, MsgFlags, OpenFlags, RecvMeta, Shutdown, SockAddr, Whence,
};

/// Read up to the buffer's capacity at the file offset (advancing it).
///
/// Dropped before it completes (a `timeout`, a `select`), the read loses
/// nothing, on a pipe, FIFO, socket or file alike, as a cancelled
/// [`recv`]: it never waits for a stream's bytes inside the syscall (on
/// the pool it waits for readiness outside it and stops there once
/// abandoned, even on a blocking fd), and bytes a racing syscall moved
/// anyway are kept for the next `read` of the fd, which gets them first
/// ([`kept_after_cancel`] counts them). The same holds for [`readv`].
/// A [`pread`] of a file moves nothing another read would get; given a
/// pipe or FIFO (whose offset io_uring ignores), a cancelled one that
/// lost the race to its cancel on io_uring does not keep its bytes: read
/// streams at the file position.
///
/// ```
/// use iokernel::io;
/// use iokernel::runtime::{timeout, Runtime};
/// use iokernel::sys::{real::RealKernel, Kernel};
/// use std::time::Duration;
/// let (rx, tx) = RealKernel.pipe().unwrap(); // blocking ends
/// Runtime::new().unwrap().block_on(async {
///     // Nothing to read yet: the timeout drops the read.
///     assert!(timeout(Duration::from_millis(20), io::read(rx, vec![0u8; 16])).await.is_err());
///     RealKernel.write(tx, b"later").unwrap();
///     // The dropped read took none of it.
///     let (n, buf) = io::read(rx, vec![0u8; 16]).await.into_parts();
///     assert_eq!(&buf[..n.unwrap()], b"later");
/// });
/// # RealKernel.close(rx).unwrap();
/// # RealKernel.close(tx).unwrap();
/// ```
pub fn read<B: IoBufMut>(fd: RawFd, buf: B) -> Op<Read<B>> {
    Op::new(Read {
        took_leftover: false,
        fd,
        buf,
        offset: None,
    })
}

/// Write the buffer at the file offset; may write fewer bytes.
pub fn write<B: IoBuf>(fd: RawFd, buf: B) -> Op<Write<B>> {
    Op::new(Write {
        fd,
        buf,
        offset: None,
    })
}

/// Read at `offset` without moving the file offset. On a stream (pipe,
/// FIFO, socket, terminal) the offset is ignored and the stream is read,
/// on every backend, as io_uring reads a pipe (`pread(2)` itself would
/// fail with `ESPIPE`); the same holds for [`pwrite`], [`preadv`] and
/// [`pwritev`].
pub fn pread<B: IoBufMut>(fd: RawFd, buf: B, offset: u64) -> Op<Read<B>> {
    Op::new(Read {
        took_leftover: false,
        fd,
        buf,
        offset: Some(offset),
    })
}

/// Write at `offset` without moving the file offset; may write fewer bytes.
/// On a stream the offset is ignored (see [`pread`]).
pub fn pwrite<B: IoBuf>(fd: RawFd, buf: B, offset: u64) -> Op<Write<B>> {
    Op::new(Write {
        fd,
        buf,
        offset: Some(offset),
    })
}

/// The mode a created file gets when none is given: the seed's
/// `open(path, flags, mode = 0644)`.
///
/// ```
/// assert_eq!(iokernel::io::DEFAULT_MODE, 0o644);
/// ```
pub const DEFAULT_MODE: u32 = 0o644;

/// Open `path`; yields the new fd. `mode` applies when creating (the seed
/// defaults it to [`DEFAULT_MODE`]; Rust has no default arguments, so the
/// default lives in [`OpenOptions`]: `OpenOptions::new().write(true)
/// .create(true).open_fd(path)` creates with 0o644).
///
/// ```
/// use iokernel::io::{self, OpenFlags, DEFAULT_MODE};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("new.txt");
/// let fd = io::open(&path, OpenFlags::WRONLY | OpenFlags::CREAT, DEFAULT_MODE).wait().unwrap();
/// io::close(fd).wait().unwrap();
/// ```
pub fn open(path: impl AsRef<Path>, flags: OpenFlags, mode: u32) -> Op<Open> {
    Op::new(Open {
        path: KernelPath::new(path.as_ref()),
        flags,
        mode,
    })
}

/// Close `fd`.
pub fn close(fd: RawFd) -> Op<Close> {
    Op::new(Close { fd })
}

/// Move the file offset; yields the new offset.
pub fn lseek(fd: RawFd, offset: i64, whence: Whence) -> Op<Lseek> {
    Op::new(Lseek {
        fd,
        offset,
        whence,
        position: 0,
    })
}

/// Scatter-read into several buffers, in order, at the file offset.
/// Cancelled, it loses nothing, as [`read`]; bytes kept from a cancelled
/// read come back into the first buffer with room (a short read).
pub fn readv<B: IoBufMut>(fd: RawFd, bufs: Vec<B>) -> Op<ReadVectored<B>> {
    Op::new(ReadVectored {
        took_leftover: false,
        fd,
        bufs,
        offset: None,
    })
}

/// Gather-write several buffers, in order, at the file offset.
pub fn writev<B: IoBuf>(fd: RawFd, bufs: Vec<B>) -> Op<WriteVectored<B>> {
    Op::new(WriteVectored {
        fd,
        bufs,
        offset: None,
    })
}

/// Scatter-read at `offset`.
pub fn preadv<B: IoBufMut>(fd: RawFd, bufs: Vec<B>, offset: u64) -> Op<ReadVectored<B>> {
    Op::new(ReadVectored {
        took_leftover: false,
        fd,
        bufs,
        offset: Some(offset),
    })
}

/// Gather-write at `offset`.
pub fn pwritev<B: IoBuf>(fd: RawFd, bufs: Vec<B>, offset: u64) -> Op<WriteVectored<B>> {
    Op::new(WriteVectored {
        fd,
        bufs,
        offset: Some(offset),
    })
}

/// Copy up to `len_bytes` from `in_fd` at `offset` to `out_fd` inside the
/// kernel; yields the bytes copied.
pub fn sendfile(out_fd: RawFd, in_fd: RawFd, offset: u64, len_bytes: usize) -> Op<Sendfile> {
    Op::new(Sendfile {
        out_fd,
        in_fd,
        in_offset: offset,
        len_bytes,
    })
}

/// How many times, in this process, a cancelled `recv` or `accept` had
/// received bytes or a connection anyway (a cancel that lost the race) and
/// they were kept for the next `recv`/`accept` on that socket instead of
/// being lost. A counter for tests and diagnostics: it only grows.
///
/// ```
/// let before = iokernel::io::kept_after_cancel();
/// assert!(iokernel::io::kept_after_cancel() >= before);
/// ```
pub fn kept_after_cancel() -> u64 {
    crate::sys::leftover::kept_total()
}

/// Accept a connection on a listening socket; yields the new
/// (non-blocking) socket and the peer's address.
pub fn accept(listen_fd: RawFd) -> Op<Accept> {
    Op::new(Accept {
        took_leftover: false,
        fd: listen_fd,
        accepted: None,
    })
}

/// Connect a socket to `addr`.
pub fn connect(fd: RawFd, addr: SocketAddr) -> Op<Connect> {
    Op::new(Connect {
        fd,
        addr,
        started: false,
    })
}

/// Receive up to the buffer's capacity; `Ok(0)` when the peer shut down.
/// The seed's `recv(fd, buf, len, flags = 0)` with no flags; see
/// [`recv_with_flags`] for `MSG_PEEK`, `MSG_WAITALL` and friends.
///
/// ```
/// use iokernel::io;
/// use iokernel::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = iokernel::runtime::block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
/// let (server, _) = iokernel::runtime::block_on_here(listener.accept()).unwrap();
/// io::send(client.as_raw_fd(), b"hi".to_vec()).wait().0.unwrap();
/// let io::BufResult(n, buf) = io::recv(server.as_raw_fd(), vec![0u8; 8]).wait();
/// assert_eq!(&buf[..n.unwrap()], b"hi");
/// ```
pub fn recv<B: IoBufMut>(fd: RawFd, buf: B) -> Op<Recv<B>> {
    recv_with_flags(fd, buf, MsgFlags::NONE)
}

/// [`recv`] with `MSG_*` flags (e.g. [`MsgFlags::WAITALL`]).
///
/// ```
/// use iokernel::io::{self, MsgFlags};
/// use iokernel::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = iokernel::runtime::block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
/// let (server, _) = iokernel::runtime::block_on_here(listener.accept()).unwrap();
/// io::send(client.as_raw_fd(), b"four".to_vec()).wait().0.unwrap();
/// let io::BufResult(n, _) =
///     io::recv_with_flags(server.as_raw_fd(), vec![0u8; 4], MsgFlags::WAITALL).wait();
/// assert_eq!(n.unwrap(), 4);
/// ```
pub fn recv_with_flags<B: IoBufMut>(fd: RawFd, buf: B, flags: MsgFlags) -> Op<Recv<B>> {
    Op::new(Recv {
        took_leftover: false,
        fd,
        buf,
        flags,
        short_drains: false,
    })
}

/// [`recv`] on a TCP socket: a short count tells a readiness driver the
/// socket is drained (see `OpCode::leaves_fd_drained`).
pub(crate) fn tcp_recv<B: IoBufMut>(fd: RawFd, buf: B) -> Op<Recv<B>> {
    Op::new(Recv {
        took_leftover: false,
        fd,
        buf,
        flags: MsgFlags::NONE,
        short_drains: true,
    })
}

/// Send the buffer; may send fewer bytes. A closed peer gives `EPIPE`.
/// The seed's `send(fd, buf, len, flags = 0)` with no flags; see
/// [`send_with_flags`].
///
/// ```
/// use iokernel::io;
/// use iokernel::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = iokernel::runtime::block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
/// let sent = io::send(client.as_raw_fd(), b"hello".to_vec()).wait().0.unwrap();
/// assert_eq!(sent, 5);
/// ```
pub fn send<B: IoBuf>(fd: RawFd, buf: B) -> Op<Send<B>> {
    send_with_flags(fd, buf, MsgFlags::NONE)
}

/// [`send`] with `MSG_*` flags (e.g. [`MsgFlags::NONE`]).
///
/// ```
/// use iokernel::io::{self, MsgFlags};
/// use iokernel::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = iokernel::runtime::block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
/// let sent = io::send_with_flags(client.as_raw_fd(), b"x".to_vec(), MsgFlags::NONE).wait();
/// assert_eq!(sent.0.unwrap(), 1);
/// ```
pub fn send_with_flags<B: IoBuf>(fd: RawFd, buf: B, flags: MsgFlags) -> Op<Send<B>> {
    Op::new(Send {
        fd,
        buf,
        flags,
        short_drains: false,
    })
}

/// [`send`] on a TCP socket: a short count tells a readiness driver the
/// send buffer is full (see `OpCode::leaves_fd_drained`).
pub(crate) fn tcp_send<B: IoBuf>(fd: RawFd, buf: B) -> Op<Send<B>> {
    Op::new(Send {
        fd,
        buf,
        flags: MsgFlags::NONE,
        short_drains: true,
    })
}

/// Send one message: the buffer, to `to` (`None`: the connected peer),
/// passing `fds` with `SCM_RIGHTS` (Unix sockets; the caller keeps them and
/// must keep them open until the op completes). A datagram goes whole or
/// fails (`EMSGSIZE`); on a stream the count may be short.
///
/// ```
/// use iokernel::io::{self, MsgFlags, SockAddr};
/// use iokernel::net::UdpSocket;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let to = SockAddr::Inet(b.local_addr().unwrap());
///     let sent = io::sendmsg(a.as_raw_fd(), b"hi".to_vec(), Some(to), Vec::new(), MsgFlags::NONE);
///     assert_eq!(sent.await.0.unwrap(), 2);
///     let got = io::recvmsg(b.as_raw_fd(), vec![0u8; 8], 0, MsgFlags::NONE).await;
///     assert_eq!(got.0.unwrap().bytes, 2);
/// });
/// ```
pub fn sendmsg<B: IoBuf>(
    fd: RawFd,
    buf: B,
    to: Option<SockAddr>,
    fds: Vec<RawFd>,
    flags: MsgFlags,
) -> Op<SendMsg<B>> {
    Op::new(SendMsg {
        fd,
        buf,
        to,
        fds,
        flags,
    })
}

/// Receive one message into the buffer, accepting up to `fds_max` fds
/// passed with `SCM_RIGHTS`. The [`RecvMeta`] names the sender, the new
/// fds (close-on-exec; the caller owns and must close them) and whether the
/// datagram was longer than the buffer (`truncated`: its tail is gone) or
/// more fds came than `fds_max` (`fds_truncated`: the rest were closed).
/// A cancelled `recvmsg` that raced with its message loses nothing: the
/// next `recvmsg` on the socket gets it.
///
/// ```
/// use iokernel::io::{self, MsgFlags};
/// use iokernel::net::UnixDatagram;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send(b"0123456789".to_vec()).await.0.unwrap();
///     let got = io::recvmsg(b.as_raw_fd(), vec![0u8; 4], 0, MsgFlags::NONE).await;
///     let meta = got.0.unwrap();
///     assert_eq!((meta.bytes, meta.truncated), (4, true));
/// });
/// ```
pub fn recvmsg<B: IoBufMut>(fd: RawFd, buf: B, fds_max: usize, flags: MsgFlags) -> Op<RecvMsg<B>> {
    Op::new(RecvMsg {
        took_leftover: None,
        fd,
        buf,
        fds_max,
        flags,
        meta: None,
    })
}

/// Connect a Unix socket to the socket bound at `path`.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("iok-cu-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// use iokernel::net::{UnixListener, UnixStream};
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let listener = UnixListener::bind(dir.join("s")).unwrap();
///     let client = UnixStream::connect(dir.join("s")).await.unwrap();
///     let (server, _) = listener.accept().await.unwrap();
///     # drop((client, server));
/// });
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn connect_unix(fd: RawFd, path: impl AsRef<Path>) -> Op<ConnectUnix> {
    Op::new(ConnectUnix {
        fd,
        path: path.as_ref().to_path_buf(),
    })
}

/// Accept a connection on a Unix listener: the new (non-blocking,
/// close-on-exec) socket and the peer's address (usually
/// [`SockAddr::Unnamed`]). An accept cancelled after it accepted closes
/// the connection. See [`connect_unix`] for an example.
pub fn accept_unix(listen_fd: RawFd) -> Op<AcceptUnix> {
    Op::new(AcceptUnix {
        fd: listen_fd,
        accepted: None,
    })
}

/// Shut down one or both directions of a socket (`Write`: the peer reads
/// end of stream once it has drained what was sent).
///
/// ```
/// use iokernel::io::{self, Shutdown};
/// use iokernel::net::UnixStream;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     io::shutdown(a.as_raw_fd(), Shutdown::Write).await.unwrap();
///     assert_eq!(b.read(vec![0u8; 4]).await.0.unwrap(), 0);
/// });
/// ```
pub fn shutdown(fd: RawFd, how: Shutdown) -> Op<ShutdownOp> {
    Op::new(ShutdownOp { fd, how })
}

/// Flush the file's data and metadata to stable storage.
pub fn fsync(fd: RawFd) -> Op<Sync> {
    Op::new(Sync {
        fd,
        kind: SyncKind::All,
    })
}

/// Flush the file's data (and the metadata needed to read it).
pub fn fdatasync(fd: RawFd) -> Op<Sync> {
    Op::new(Sync {
        fd,
        kind: SyncKind::Data,
    })
}

/// Set the file's length.
pub fn ftruncate(fd: RawFd, len_bytes: u64) -> Op<Truncate> {
    Op::new(Truncate { fd, len_bytes })
}

/// Advise the kernel how a byte range will be accessed (`posix_fadvise`);
/// `len_bytes == 0` means to the end of the file. A hint only, e.g. drop a
/// file's clean cached pages after `fsync` so the next reads come from disk:
///
/// ```
/// use iokernel::io::{self, Advice, OpenFlags};
/// # let path = std::env::temp_dir().join(format!("iok-fadvise-doc-{}", std::process::id()));
/// # std::fs::write(&path, b"cached").unwrap();
/// let fd = io::open(&path, OpenFlags::RDWR, 0).wait().unwrap();
/// io::fsync(fd).wait().unwrap();
/// io::fadvise(fd, 0, 0, Advice::DontNeed).wait().unwrap();
/// io::close(fd).wait().unwrap();
/// # std::fs::remove_file(path).unwrap();
/// ```
pub fn fadvise(fd: RawFd, offset: u64, len_bytes: u64, advice: Advice) -> Op<Advise> {
    Op::new(Advise {
        fd,
        offset,
        len_bytes,
        advice,
    })
}

/// Allocate (or, with `FALLOC_FL_*` bits in `mode`, punch or zero) space.
pub fn fallocate(fd: RawFd, mode: i32, offset: u64, len_bytes: u64) -> Op<Allocate> {
    Op::new(Allocate {
        fd,
        mode,
        offset,
        len_bytes,
    })
}

/// The file's size, type and block facts.
pub fn fstat(fd: RawFd) -> Op<Stat> {
    Op::new(Stat { fd, stat: None })
}

/// Rename `from` to `to`, replacing `to` if it exists.
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Op<Rename> {
    Op::new(Rename {
        from: KernelPath::new(from.as_ref()),
        to: KernelPath::new(to.as_ref()),
    })
}

/// Remove a file name.
pub fn unlink(path: impl AsRef<Path>) -> Op<Unlink> {
    Op::new(Unlink {
        path: KernelPath::new(path.as_ref()),
    })
}

/// Create a directory.
pub fn mkdir(path: impl AsRef<Path>, mode: u32) -> Op<Mkdir> {
    Op::new(Mkdir {
        path: KernelPath::new(path.as_ref()),
        mode,
    })
}

/// The file system `fd` lives on (`fstatfs(2)`): its magic and block facts.
pub fn fstatfs(fd: RawFd) -> Op<StatFs> {
    Op::new(StatFs { fd, stat: None })
}

/// Read the extended attribute `name` of `path` into a buffer of
/// `capacity_bytes`; yields the value (`ERANGE` if it is longer, `ENODATA`
/// if absent).
pub fn getxattr(path: impl AsRef<Path>, name: &str, capacity_bytes: usize) -> Op<GetXattr> {
    Op::new(GetXattr::new(path.as_ref(), name, capacity_bytes))
}

/// Set the extended attribute `name` of `path` to `value` (`flags`:
/// `XATTR_CREATE`/`XATTR_REPLACE` bits, or 0).
pub fn setxattr(path: impl AsRef<Path>, name: &str, value: Vec<u8>, flags: i32) -> Op<SetXattr> {
    Op::new(SetXattr::new(path.as_ref(), name, value, flags))
}
