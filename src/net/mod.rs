//! Owned non-blocking sockets with the socket ops as methods, closed on
//! drop: [`TcpListener`] and [`TcpStream`], [`UdpSocket`], and the Unix
//! sockets [`UnixStream`], [`UnixListener`] and [`UnixDatagram`] (which
//! pass fds: [`ReceivedFd`], [`Message`]).
//!
//! Setting up a socket (`socket`, `bind`, `listen`, options) never blocks
//! and is done directly through the current kernel; everything that can
//! wait (`accept`, `connect`, `recv`, `send`) is an op.

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::io::{self, MsgFlags};
use crate::op::to_io;
use crate::runtime::context;
use crate::sys::{Kernel, Shutdown, SockOpt, SockType};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

mod msg;
mod udp;
mod unix;

pub use msg::{Message, ReceivedFd};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

/// Backlog passed to `listen(2)`.
pub const LISTEN_BACKLOG: i32 = 1024;

struct Socket {
    fd: RawFd,
    kernel: Arc<dyn Kernel>,
}

impl Socket {
    /// Own `fd` of the current kernel, made non-blocking (closed on error).
    fn adopt(fd: RawFd, kernel: Arc<dyn Kernel>) -> std::io::Result<Socket> {
        let socket = Socket { fd, kernel };
        to_io(socket.kernel.set_option(fd, SockOpt::NonBlocking(true)))?;
        Ok(socket)
    }

    fn new(like: &SocketAddr) -> std::io::Result<Socket> {
        let kernel = context::current_kernel();
        let fd = to_io(kernel.socket(like, SockType::Stream))?;
        let socket = Socket { fd, kernel };
        to_io(socket.kernel.set_option(fd, SockOpt::NonBlocking(true)))?;
        Ok(socket)
    }

    fn into_raw_fd(self) -> RawFd {
        let fd = self.fd;
        std::mem::forget(self);
        fd
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("fd", &self.fd).finish()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // What cancelled ops left for this socket goes with it.
        crate::sys::leftover::forget(&*self.kernel, self.fd);
        let _ = self.kernel.close(self.fd);
    }
}

/// A listening TCP socket.
///
/// ```
/// use iokernel::net::{TcpListener, TcpStream};
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = TcpStream::connect(addr).await.unwrap();
///     let (server, _) = listener.accept().await.unwrap();
///     client.write_all(b"ping").await.0.unwrap();
///     let (n, buf) = server.read(vec![0u8; 16]).await.into_parts();
///     assert_eq!(&buf[..n.unwrap()], b"ping");
/// });
/// ```
pub struct TcpListener {
    socket: Socket,
}

impl TcpListener {
    /// Bind to `addr` (port 0 picks a free port) and listen.
    pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
        let socket = Socket::new(&addr)?;
        let kernel = &socket.kernel;
        to_io(kernel.set_option(socket.fd, SockOpt::ReuseAddr(true)))?;
        to_io(kernel.bind(socket.fd, &addr))?;
        to_io(kernel.listen(socket.fd, LISTEN_BACKLOG))?;
        Ok(TcpListener { socket })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        to_io(self.socket.kernel.local_addr(self.socket.fd))
    }

    /// Wait for a connection.
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = io::accept(self.socket.fd).await?;
        let socket = Socket {
            fd,
            kernel: Arc::clone(&self.socket.kernel),
        };
        Ok((TcpStream { socket }, peer))
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }
}

/// A connected TCP socket.
pub struct TcpStream {
    socket: Socket,
}

impl TcpStream {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = Socket::new(&addr)?;
        io::connect(socket.fd, addr).await?;
        Ok(TcpStream { socket })
    }

    /// Receive up to the buffer's capacity; `Ok(0)` at end of stream.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        io::recv(self.socket.fd, buf, MsgFlags::NONE).await
    }

    /// Send some of the buffer.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        io::send(self.socket.fd, buf, MsgFlags::NONE).await
    }

    /// Send the whole buffer, resuming short sends.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let mut slice = Slice::new(buf, 0);
        while !slice.as_bytes().is_empty() {
            let BufResult(result, back) = io::send(self.socket.fd, slice, MsgFlags::NONE).await;
            let start = back.start();
            match result {
                Ok(n) => slice = Slice::new(back.into_inner(), start + n),
                Err(e) => return BufResult(Err(e), back.into_inner()),
            }
        }
        BufResult(Ok(()), slice.into_inner())
    }

    /// Shut down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        to_io(self.socket.kernel.shutdown(self.socket.fd, how))
    }

    /// Disable (true) or enable Nagle's algorithm.
    pub fn set_nodelay(&self, nodelay: bool) -> std::io::Result<()> {
        to_io(
            self.socket
                .kernel
                .set_option(self.socket.fd, SockOpt::NoDelay(nodelay)),
        )
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        to_io(self.socket.kernel.local_addr(self.socket.fd))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        to_io(self.socket.kernel.peer_addr(self.socket.fd))
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }

    /// Give up ownership of the fd without closing it.
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }
}
