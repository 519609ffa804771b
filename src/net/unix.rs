//! Unix sockets: [`UnixStream`], [`UnixListener`] and [`UnixDatagram`],
//! each able to pass fds (`send_msg`/`recv_msg`, `SCM_RIGHTS`).
//!
//! Paths longer than `sun_path` ([`UNIX_PATH_MAX_BYTES`](crate::sys::UNIX_PATH_MAX_BYTES)) are refused with
//! `ENAMETOOLONG` and an error naming the path; binding a path that exists
//! is `EADDRINUSE`, also naming it. A bound path is left behind when the
//! socket closes, as on Linux: remove it before binding it again.
//! Abstract addresses are not supported: a path with a NUL byte (or an
//! empty one) is refused with `EINVAL` and a message that shows it escaped
//! and says why. Ops that move data (send, recv,
//! `send_msg`, `recv_msg`) return the kernel's errno unchanged
//! (`raw_os_error`), as every op does; calls that name a path (`bind`,
//! `connect`) and setup calls put the call and its target in the message.

use super::msg::{call_error, io_context, Message};
use super::udp::truncated;
use super::Socket;
use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::io::{self, MsgFlags, SockAddr};
use crate::runtime::context;
use crate::sys::{check_unix_path, Errno, Shutdown, SockType, UNIX_PATH_MAX_BYTES};
use std::os::fd::RawFd;
use std::path::Path;

fn fd_name(fd: RawFd) -> impl std::fmt::Display {
    format!("fd {fd}")
}

/// A socket path in an error message; one that cannot be a socket address
/// is quoted with escapes (a NUL byte would otherwise print raw) and says
/// why.
fn path_name(path: &Path) -> String {
    let why = match check_unix_path(path) {
        Ok(()) => return path.display().to_string(),
        Err(Errno(libc::ENAMETOOLONG)) => {
            format!("longer than the {UNIX_PATH_MAX_BYTES} bytes a socket address holds")
        }
        Err(_) if path.as_os_str().is_empty() => "an empty path".to_string(),
        Err(_) => "a NUL byte in the path: abstract socket names are not supported".to_string(),
    };
    format!("{path:?} ({why})")
}

impl Socket {
    fn unix(ty: SockType) -> std::io::Result<Socket> {
        let kernel = context::current_kernel();
        let fd = (kernel.unix_socket(ty)).map_err(|e| call_error(e, "socket", &"AF_UNIX"))?;
        Socket::adopt(fd, kernel)
    }

    fn unix_pair(ty: SockType) -> std::io::Result<(Socket, Socket)> {
        let kernel = context::current_kernel();
        let (a, b) = (kernel.unix_pair(ty)).map_err(|e| call_error(e, "socketpair", &"AF_UNIX"))?;
        let first = Socket::adopt(a, std::sync::Arc::clone(&kernel));
        let second = Socket::adopt(b, kernel);
        Ok((first?, second?))
    }

    fn bind_path(&self, path: &Path) -> std::io::Result<()> {
        (self.kernel.bind_unix(self.fd, path)).map_err(|e| call_error(e, "bind", &path_name(path)))
    }

    fn local_name(&self) -> std::io::Result<SockAddr> {
        (self.kernel.sock_name(self.fd)).map_err(|e| call_error(e, "local_addr", &fd_name(self.fd)))
    }

    fn peer_name(&self) -> std::io::Result<SockAddr> {
        (self.kernel.peer_name(self.fd)).map_err(|e| call_error(e, "peer_addr", &fd_name(self.fd)))
    }

    async fn send_msg<B: IoBuf>(
        &self,
        buf: B,
        to: Option<SockAddr>,
        fds: &[RawFd],
    ) -> BufResult<usize, B> {
        io::sendmsg(self.fd, buf, to, fds.to_vec(), MsgFlags::NONE).await
    }

    async fn recv_msg<B: IoBufMut>(&self, buf: B, fds_max: usize) -> BufResult<Message, B> {
        let BufResult(meta, buf) = io::recvmsg(self.fd, buf, fds_max, MsgFlags::NONE).await;
        BufResult(meta.map(|m| Message::new(m, &self.kernel)), buf)
    }
}

/// A connected Unix stream socket.
///
/// ```
/// use iokernel::net::UnixStream;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     a.write_all(b"ping".to_vec()).await.0.unwrap();
///     let (n, buf) = b.read(vec![0u8; 16]).await.into_parts();
///     assert_eq!(&buf[..n.unwrap()], b"ping");
/// });
/// ```
#[derive(Debug)]
pub struct UnixStream {
    socket: Socket,
}

impl UnixStream {
    /// Connect to the listener bound at `path`. The path must fit
    /// `sun_path` (at most [`UNIX_PATH_MAX_BYTES`](crate::sys::UNIX_PATH_MAX_BYTES) bytes).
    pub async fn connect(path: impl AsRef<Path>) -> std::io::Result<UnixStream> {
        let path = path.as_ref();
        let socket = Socket::unix(SockType::Stream)?;
        io::connect_unix(socket.fd, path)
            .await
            .map_err(|e| io_context(e, "connect", &path_name(path)))?;
        Ok(UnixStream { socket })
    }

    /// Two connected, unnamed streams (`socketpair`).
    pub fn pair() -> std::io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::unix_pair(SockType::Stream)?;
        Ok((UnixStream { socket: a }, UnixStream { socket: b }))
    }

    /// Receive up to the buffer's capacity; `Ok(0)` at end of stream.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        io::recv(self.socket.fd, buf).await
    }

    /// Send some of the buffer.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        io::send(self.socket.fd, buf).await
    }

    /// Send the whole buffer, resuming short sends.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let mut slice = Slice::new(buf, 0);
        while !slice.as_bytes().is_empty() {
            let BufResult(result, back) = io::send(self.socket.fd, slice).await;
            let start = back.start();
            match result {
                Ok(n) => slice = Slice::new(back.into_inner(), start + n),
                Err(e) => return BufResult(Err(e), back.into_inner()),
            }
        }
        BufResult(Ok(()), slice.into_inner())
    }

    /// Send some of the buffer with `fds` passed along (the receiver gets
    /// them with the first byte of this send; we keep our own).
    ///
    /// ```
    /// use iokernel::net::UnixStream;
    /// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
    /// rt.block_on(async {
    ///     let (a, b) = UnixStream::pair().unwrap();
    ///     a.send_msg(b"x".to_vec(), &[a.as_raw_fd()]).await.0.unwrap();
    ///     let (msg, _) = b.recv_msg(vec![0u8; 4], 1).await.into_parts();
    ///     assert_eq!(msg.unwrap().fds.len(), 1);
    /// });
    /// ```
    pub async fn send_msg<B: IoBuf>(&self, buf: B, fds: &[RawFd]) -> BufResult<usize, B> {
        self.socket.send_msg(buf, None, fds).await
    }

    /// Receive bytes and up to `fds_max` passed fds; see [`Message`].
    pub async fn recv_msg<B: IoBufMut>(&self, buf: B, fds_max: usize) -> BufResult<Message, B> {
        self.socket.recv_msg(buf, fds_max).await
    }

    /// Shut down one or both directions (`Write`: the peer sees end of
    /// stream after what was sent).
    pub async fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        self.socket.shutdown(how).await
    }

    /// [`UnixStream::shutdown`] with the blocking syscall (it never
    /// waits), for the compat adapters' `poll_shutdown`.
    #[cfg(any(feature = "compat-futures", feature = "compat-tokio"))]
    pub(crate) fn shutdown_now(&self, how: Shutdown) -> std::io::Result<()> {
        self.socket.shutdown_now(how)
    }

    /// The local address ([`SockAddr::Unnamed`] for a pair or a client).
    pub fn local_addr(&self) -> std::io::Result<SockAddr> {
        self.socket.local_name()
    }

    /// The peer's address (the listener's path for a client,
    /// [`SockAddr::Unnamed`] for an unbound peer).
    pub fn peer_addr(&self) -> std::io::Result<SockAddr> {
        self.socket.peer_name()
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }

    /// Give up ownership of the fd without closing it.
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }

    /// Own `fd`, an open socket of the right kind of the current kernel
    /// (the std-trait conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> UnixStream {
        UnixStream {
            socket: super::Socket::from_fd(fd),
        }
    }
}

/// A listening Unix stream socket.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("iok-ul-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// use iokernel::net::{UnixListener, UnixStream};
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let listener = UnixListener::bind(dir.join("sock")).unwrap();
///     let client = UnixStream::connect(dir.join("sock")).await.unwrap();
///     let (server, _peer) = listener.accept().await.unwrap();
///     let path = iokernel::io::SockAddr::Unix(dir.join("sock"));
///     assert_eq!(client.peer_addr().unwrap(), path);
///     assert_eq!(listener.local_addr().unwrap(), path);
///     client.write_all(b"hi".to_vec()).await.0.unwrap();
///     let (n, buf) = server.read(vec![0u8; 8]).await.into_parts();
///     assert_eq!(&buf[..n.unwrap()], b"hi");
/// });
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixListener {
    socket: Socket,
}

impl UnixListener {
    /// Bind to `path` and listen. `EADDRINUSE` (naming the path) when the
    /// path exists; `ENAMETOOLONG` when it does not fit `sun_path`.
    pub fn bind(path: impl AsRef<Path>) -> std::io::Result<UnixListener> {
        let path = path.as_ref();
        let socket = Socket::unix(SockType::Stream)?;
        socket.bind_path(path)?;
        (socket.kernel.listen(socket.fd, super::LISTEN_BACKLOG))
            .map_err(|e| call_error(e, "listen", &path_name(path)))?;
        Ok(UnixListener { socket })
    }

    /// Wait for a connection: the stream and the peer's address.
    pub async fn accept(&self) -> std::io::Result<(UnixStream, SockAddr)> {
        let fd = self.socket.fd;
        let (new_fd, peer) = io::accept_unix(fd)
            .await
            .map_err(|e| io_context(e, "accept", &fd_name(fd)))?;
        let socket = Socket::adopt(new_fd, std::sync::Arc::clone(&self.socket.kernel))?;
        Ok((UnixStream { socket }, peer))
    }

    /// The bound path.
    pub fn local_addr(&self) -> std::io::Result<SockAddr> {
        self.socket.local_name()
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }

    /// Give up ownership of the fd without closing it.
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }

    /// Own `fd`, an open socket of the right kind of the current kernel
    /// (the std-trait conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> UnixListener {
        UnixListener {
            socket: super::Socket::from_fd(fd),
        }
    }
}

/// A Unix datagram socket: reliable and ordered; a datagram is sent whole or
/// waits for room. A datagram longer than the receive buffer is an error
/// from `recv`/`recv_from` (`EMSGSIZE` in the message, the head in the
/// buffer) and a flag of [`Message`] from `recv_msg`.
///
/// ```
/// use iokernel::net::UnixDatagram;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send(b"one".to_vec()).await.0.unwrap();
///     let (n, buf) = b.recv(vec![0u8; 8]).await.into_parts();
///     assert_eq!(&buf[..n.unwrap()], b"one");
/// });
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    /// A socket bound to `path` (errors as [`UnixListener::bind`]).
    pub fn bind(path: impl AsRef<Path>) -> std::io::Result<UnixDatagram> {
        let socket = Socket::unix(SockType::Datagram)?;
        socket.bind_path(path.as_ref())?;
        Ok(UnixDatagram { socket })
    }

    /// An unbound socket (it can send, and receive once connected to).
    pub fn unbound() -> std::io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: Socket::unix(SockType::Datagram)?,
        })
    }

    /// Two connected, unnamed sockets (`socketpair`).
    pub fn pair() -> std::io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::unix_pair(SockType::Datagram)?;
        Ok((UnixDatagram { socket: a }, UnixDatagram { socket: b }))
    }

    /// Set the default destination (never waits).
    pub fn connect(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        (self.socket.kernel.connect_unix(self.socket.fd, path))
            .map_err(|e| call_error(e, "connect", &path_name(path)))
    }

    /// Send one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.send_with_flags(buf, MsgFlags::NONE).await
    }

    /// [`UnixDatagram::send`] with `MSG_*` flags.
    pub async fn send_with_flags<B: IoBuf>(&self, buf: B, flags: MsgFlags) -> BufResult<usize, B> {
        io::send_with_flags(self.socket.fd, buf, flags).await
    }

    /// Send one datagram to the socket bound at `path`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        let to = SockAddr::Unix(path.as_ref().to_path_buf());
        self.socket.send_msg(buf, Some(to), &[]).await
    }

    /// Receive one datagram.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let BufResult(result, buf) = self.recv_from(buf).await;
        BufResult(result.map(|(n, _)| n), buf)
    }

    /// Receive one datagram and its sender ([`SockAddr::Unnamed`] for an
    /// unbound one).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SockAddr), B> {
        let fd = self.socket.fd;
        let BufResult(meta, buf) = io::recvmsg(fd, buf, 0, MsgFlags::NONE).await;
        let result = match meta {
            Ok(meta) if meta.truncated => Err(truncated("recv_from", fd, meta.bytes)),
            Ok(meta) => Ok((meta.bytes, meta.from.unwrap_or(SockAddr::Unnamed))),
            Err(e) => Err(e),
        };
        BufResult(result, buf)
    }

    /// Send one datagram to the connected peer with `fds` passed along.
    pub async fn send_msg<B: IoBuf>(&self, buf: B, fds: &[RawFd]) -> BufResult<usize, B> {
        self.socket.send_msg(buf, None, fds).await
    }

    /// Receive one datagram and up to `fds_max` passed fds; see [`Message`].
    pub async fn recv_msg<B: IoBufMut>(&self, buf: B, fds_max: usize) -> BufResult<Message, B> {
        self.socket.recv_msg(buf, fds_max).await
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SockAddr> {
        self.socket.local_name()
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }

    /// Give up ownership of the fd without closing it.
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }

    /// Own `fd`, an open socket of the right kind of the current kernel
    /// (the std-trait conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> UnixDatagram {
        UnixDatagram {
            socket: super::Socket::from_fd(fd),
        }
    }
}
