//! Owned non-blocking sockets with the socket ops as methods, closed on
//! drop: [`TcpListener`] and [`TcpStream`], [`UdpSocket`], and the Unix
//! sockets [`UnixStream`], [`UnixListener`] and [`UnixDatagram`] (which
//! pass fds: [`ReceivedFd`], [`Message`]).
//!
//! Setting up a socket (`socket`, `bind`, `listen`, options) never blocks
//! and is done directly through the current kernel; everything that can
//! wait (`accept`, `connect`, `recv`, `send`) is an op.
//!
//! Both types follow std's conventions: `bind`/`connect` take any
//! `ToSocketAddrs`; `AsFd`, `AsRawFd`, `IntoRawFd`, `FromRawFd` (unsafe),
//! `From<OwnedFd>` and `From` the std type (made non-blocking). An fd
//! belongs to the kernel of the thread that made the socket (on a simulated
//! runtime thread, the simulated machine's).

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::io;
use crate::op::to_io;
use crate::runtime::context;
use crate::sys::{Kernel, Shutdown, SockOpt, SockType};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::Arc;

mod msg;
mod receive;
mod udp;
mod unix;

pub use msg::{Message, ReceivedFd};
use receive::{Read, Receiver};
use std::future::Future;
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

/// Backlog passed to `listen(2)`.
pub const LISTEN_BACKLOG: i32 = 1024;

struct Socket {
    fd: RawFd,
    kernel: Arc<dyn Kernel>,
    /// A connected TCP socket's receive side ([`Socket::receiving`]).
    receiver: Option<Arc<Receiver>>,
}

impl Socket {
    /// Own `fd` of the current kernel, made non-blocking (closed on error).
    fn adopt(fd: RawFd, kernel: Arc<dyn Kernel>) -> std::io::Result<Socket> {
        let socket = Socket {
            fd,
            kernel,
            receiver: None,
        };
        to_io(socket.kernel.set_option(fd, SockOpt::NonBlocking(true)))?;
        Ok(socket)
    }

    fn new(like: &SocketAddr) -> std::io::Result<Socket> {
        let kernel = context::current_kernel();
        let fd = to_io(kernel.socket(like, SockType::Stream))?;
        Socket::adopt(fd, kernel)
    }

    /// The socket of a TCP connection, read through a [`Receiver`].
    fn receiving(mut self) -> Socket {
        self.receiver = Some(Receiver::new(self.fd, Arc::clone(&self.kernel)));
        self
    }

    fn into_raw_fd(mut self) -> RawFd {
        if let Some(receiver) = self.receiver.take() {
            receiver.release();
        }
        let fd = self.fd;
        std::mem::forget(self);
        fd
    }

    /// Shut down one or both directions, as an op.
    async fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        let fd = self.fd;
        io::shutdown(fd, how)
            .await
            .map_err(|e| msg::io_context(e, "shutdown", &format_args!("fd {fd}")))
    }

    /// Shut down with the blocking syscall (it never waits).
    #[cfg(any(feature = "compat-futures", feature = "compat-tokio"))]
    fn shutdown_now(&self, how: Shutdown) -> std::io::Result<()> {
        let fd = self.fd;
        (self.kernel.shutdown(fd, how))
            .map_err(|e| msg::call_error(e, "shutdown", &format_args!("fd {fd}")))
    }

    /// Own `fd` (an open socket of the current kernel), made non-blocking
    /// as every iokernel socket is. Failing to set the flag is ignored: it
    /// fails only for an fd that is not a socket, and then every op on it
    /// reports the errno.
    fn from_fd(fd: RawFd) -> Socket {
        let kernel = context::current_kernel();
        // Whatever per-fd state names this number belongs to an older fd.
        kernel.note_fd_released(fd);
        let _ = kernel.set_option(fd, SockOpt::NonBlocking(true));
        Socket {
            fd,
            kernel,
            receiver: None,
        }
    }
}

/// Resolve `addrs` and run `attempt` on each address in turn, like std:
/// the first success wins. With one address its error comes back as it
/// is (the raw errno intact); with several, the error names every address
/// and the last failure (its kind kept).
fn each_addr<T>(
    what: &str,
    addrs: impl ToSocketAddrs,
    mut attempt: impl FnMut(SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let list: Vec<SocketAddr> = addrs
        .to_socket_addrs()
        .map_err(|e| std::io::Error::new(e.kind(), format!("{what}: resolve: {e}")))?
        .collect();
    let mut last = None;
    for addr in &list {
        match attempt(*addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = Some((*addr, e)),
        }
    }
    match last {
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what}: the address resolved to nothing"),
        )),
        Some((_, e)) if list.len() == 1 => Err(e),
        Some((addr, e)) => Err(std::io::Error::new(
            e.kind(),
            format!("{what}: all of {list:?} failed; the last, {addr}: {e}"),
        )),
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("fd", &self.fd).finish()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(receiver) = &self.receiver {
            receiver.close();
        }
        // What cancelled ops left for this socket goes with it.
        crate::sys::leftover::forget(&*self.kernel, self.fd);
        let _ = self.kernel.close(self.fd);
    }
}

/// A [`TcpStream`] given away whole ([`TcpStream::into_raw_parts`]).
#[derive(Debug)]
pub struct RawParts {
    /// The connected socket, the caller's now (to read, hand on, close).
    pub fd: RawFd,
    /// What iokernel received and no read took, in order: it comes before
    /// anything read from `fd`.
    pub received: Vec<u8>,
    /// An error the kernel reported after `received` that no read has seen.
    pub error: Option<std::io::Error>,
}

/// A listening TCP socket.
///
/// ```
/// use iokernel::net::{TcpListener, TcpStream};
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
    /// Bind to `addr` (port 0 picks a free port) and listen. `addr` is
    /// anything `std::net::ToSocketAddrs` takes (`"127.0.0.1:8080"`, a
    /// `SocketAddr`, `("localhost", 0)`); each resolved address is tried
    /// in turn, like std (see [`TcpStream::connect`] for the error).
    ///
    /// ```
    /// let listener = iokernel::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.local_addr().unwrap().port() > 0);
    /// ```
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
        each_addr("bind", addr, TcpListener::bind_one)
    }

    fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
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
            receiver: None,
        };
        Ok((
            TcpStream {
                socket: socket.receiving(),
            },
            peer,
        ))
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.fd
    }

    /// Give up ownership of the fd without closing it.
    ///
    /// ```
    /// let listener = iokernel::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let fd = listener.into_raw_fd();
    /// iokernel::io::close(fd).wait().unwrap(); // now the caller's to close
    /// ```
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }

    /// Own `fd`, an open listening socket of the current kernel (the
    /// std-trait conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> TcpListener {
        TcpListener {
            socket: Socket::from_fd(fd),
        }
    }
}

/// A connected TCP socket.
///
/// ```
/// use iokernel::net::{TcpListener, TcpStream};
/// use iokernel::runtime::block_on_here;
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
/// let (server, peer) = block_on_here(listener.accept()).unwrap();
/// assert_eq!(peer, client.local_addr().unwrap());
/// block_on_here(server.write_all(b"hi")).0.unwrap();
/// let (n, buf) = block_on_here(client.read(vec![0u8; 2])).into_parts();
/// assert_eq!(&buf[..n.unwrap()], b"hi");
/// ```
pub struct TcpStream {
    socket: Socket,
}

impl TcpStream {
    /// Connect to `addr`: anything `std::net::ToSocketAddrs` takes. Each
    /// resolved address is tried in turn, like std; the first connection
    /// wins. With one address its error is the kernel's (raw errno
    /// intact); with several the error lists them and names the last
    /// failure. A host name is resolved by the system resolver, which
    /// blocks: pass a `SocketAddr` to avoid it inside a runtime.
    ///
    /// ```
    /// use iokernel::net::{TcpListener, TcpStream};
    /// use iokernel::runtime::block_on_here;
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let stream = block_on_here(TcpStream::connect(("127.0.0.1", port))).unwrap();
    /// assert_eq!(stream.peer_addr().unwrap().port(), port);
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
        let list: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| std::io::Error::new(e.kind(), format!("connect: resolve: {e}")))?
            .collect();
        let mut last = None;
        for addr in &list {
            match TcpStream::connect_one(*addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some((*addr, e)),
            }
        }
        match last {
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connect: the address resolved to nothing",
            )),
            Some((_, e)) if list.len() == 1 => Err(e),
            Some((addr, e)) => Err(std::io::Error::new(
                e.kind(),
                format!("connect: all of {list:?} failed; the last, {addr}: {e}"),
            )),
        }
    }

    async fn connect_one(addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = Socket::new(&addr)?;
        io::connect(socket.fd, addr).await?;
        Ok(TcpStream {
            socket: socket.receiving(),
        })
    }

    /// Receive up to the buffer's capacity; `Ok(0)` at end of stream.
    ///
    /// On io_uring the connection's bytes are received ahead of the reads
    /// by one receive stream (a multishot recv) and each read takes from
    /// what arrived; elsewhere each read is one `recv`. Either way a read
    /// dropped before it finished loses nothing. See the `receive` module
    /// (`src/net/receive.rs`) for when a receive stream runs and stops.
    pub fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        let receiver = self.socket.receiver.as_ref();
        Read::new(
            receiver.expect("a TcpStream reads through its receiver"),
            buf,
        )
    }

    /// Send some of the buffer.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        io::tcp_send(self.socket.fd, buf).await
    }

    /// Send the whole buffer, resuming short sends.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let mut slice = Slice::new(buf, 0);
        while !slice.as_bytes().is_empty() {
            let BufResult(result, back) = io::tcp_send(self.socket.fd, slice).await;
            let start = back.start();
            match result {
                Ok(n) => slice = Slice::new(back.into_inner(), start + n),
                Err(e) => return BufResult(Err(e), back.into_inner()),
            }
        }
        BufResult(Ok(()), slice.into_inner())
    }

    /// Shut down one or both directions (`Write`: the peer reads end of
    /// stream after what was sent), as an op (`IORING_OP_SHUTDOWN` on
    /// io_uring where the kernel has it).
    ///
    /// ```
    /// use iokernel::net::{TcpListener, TcpStream};
    /// use iokernel::io::Shutdown;
    /// iokernel::runtime::block_on_here(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    ///     let (server, _) = listener.accept().await.unwrap();
    ///     client.shutdown(Shutdown::Write).await.unwrap();
    ///     let (n, _) = server.read(vec![0u8; 8]).await.into_parts();
    ///     assert_eq!(n.unwrap(), 0);
    /// });
    /// ```
    pub async fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        self.socket.shutdown(how).await
    }

    /// [`TcpStream::shutdown`] with the blocking syscall (it never
    /// waits), for callers that cannot await: the compat adapters'
    /// `poll_shutdown`.
    #[cfg(any(feature = "compat-futures", feature = "compat-tokio"))]
    pub(crate) fn shutdown_now(&self, how: Shutdown) -> std::io::Result<()> {
        self.socket.shutdown_now(how)
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
    ///
    /// What the connection's receive stream (io_uring) received and no
    /// read took yet, and what still arrives until the stream stops, is
    /// kept for the next iokernel read of the fd (`io::recv`, `io::read`,
    /// a `TcpStream` made from it again), which takes it first. A reader
    /// outside iokernel (std, a C library) does not see those bytes: give
    /// the socket to one with [`TcpStream::into_raw_parts`]. Closed
    /// outside iokernel, the fd's kept bytes are dropped, never read from
    /// a socket that gets the number later.
    pub fn into_raw_fd(self) -> RawFd {
        self.socket.into_raw_fd()
    }

    /// Give up ownership of the fd, with everything iokernel received on
    /// it and no read took, for a reader outside iokernel (std, a C
    /// library, another process): the receive stream (io_uring) stops, and
    /// once the kernel has handed over the last of its bytes, this gives
    /// the fd, those bytes (which come before anything read from the fd)
    /// and an error the kernel reported after them that no read has seen
    /// (the kernel reports it only once). On backends that do not receive
    /// ahead, `received` holds only what cancelled reads left.
    ///
    /// A read of the fd dropped while the kernel still had it (on any
    /// thread, on any backend) is waited for too: what it received is
    /// kept and goes in `received`, in order. Dropped before it finishes,
    /// the stream is closed as when dropped.
    ///
    /// ```
    /// use iokernel::net::{TcpListener, TcpStream};
    /// use iokernel::runtime::block_on_here;
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let client = block_on_here(TcpStream::connect(listener.local_addr().unwrap())).unwrap();
    /// let (server, _) = block_on_here(listener.accept()).unwrap();
    /// block_on_here(client.write_all(b"hello, world".to_vec())).0.unwrap();
    /// let iokernel::io::BufResult(n, _) = block_on_here(server.read(vec![0u8; 5]));
    /// assert_eq!(n.unwrap(), 5);
    /// let parts = block_on_here(server.into_raw_parts());
    /// // `parts.received`, then what `parts.fd` reads: ", world".
    /// # let mut rest = parts.received.clone();
    /// # while rest.len() < 7 {
    /// #     let iokernel::io::BufResult(n, buf) = block_on_here(iokernel::io::recv(parts.fd, vec![0u8; 16]));
    /// #     rest.extend_from_slice(&buf[..n.unwrap()]);
    /// # }
    /// # assert_eq!(rest, b", world");
    /// assert!(parts.error.is_none());
    /// iokernel::io::close(parts.fd).wait().unwrap(); // the caller's to close
    /// ```
    pub async fn into_raw_parts(mut self) -> RawParts {
        let (received, error) = match &self.socket.receiver {
            Some(receiver) => receiver.give_away().await,
            None => (Vec::new(), None),
        };
        // Everything it received is in hand: nothing to stop or keep.
        self.socket.receiver = None;
        RawParts {
            fd: self.socket.into_raw_fd(),
            received,
            error: error.map(|errno| std::io::Error::from_raw_os_error(errno.0)),
        }
    }

    /// Own `fd`, an open connected socket of the current kernel (the
    /// std-trait conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> TcpStream {
        TcpStream {
            socket: Socket::from_fd(fd).receiving(),
        }
    }
}
