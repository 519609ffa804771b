//! [`UdpSocket`]: a non-blocking UDP socket with owned-buffer ops.

use super::msg::{call_error, Message};
use super::Socket;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::io::{self, MsgFlags, SockAddr};
use crate::runtime::context;
use crate::sys::{Errno, SockType};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;

/// A UDP socket. Every datagram is sent whole or not at all; a datagram
/// longer than the receive buffer is an error (`EMSGSIZE` in the message)
/// whose buffer holds the datagram's head: the tail is gone, as with
/// `MSG_TRUNC`. [`UdpSocket::recv_msg`] reports it as a flag instead.
///
/// ```
/// use iokernel::net::UdpSocket;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping".to_vec(), b.local_addr().unwrap()).await.0.unwrap();
///     let (got, buf) = b.recv_from(vec![0u8; 16]).await.into_parts();
///     let (n, from) = got.unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// });
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    socket: Socket,
}

/// Try `f` on each address `addrs` resolves to; the last error if none works.
fn each_addr<T>(
    addrs: impl ToSocketAddrs,
    op: &str,
    mut f: impl FnMut(SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut last = None;
    for addr in addrs.to_socket_addrs()? {
        match f(addr) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{op}: the address resolved to nothing"),
        )
    }))
}

impl UdpSocket {
    /// Bind to the first address `addr` resolves to that works (port 0
    /// picks a free port).
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<UdpSocket> {
        each_addr(addr, "bind", |addr| {
            let kernel = context::current_kernel();
            let fd = kernel
                .socket(&addr, SockType::Datagram)
                .map_err(|e| call_error(e, "socket", &addr))?;
            let socket = Socket::adopt(fd, kernel)?;
            socket
                .kernel
                .bind(fd, &addr)
                .map_err(|e| call_error(e, "bind", &addr))?;
            Ok(UdpSocket { socket })
        })
    }

    /// Set the default destination and accept datagrams only from it. Never
    /// waits (UDP has no handshake).
    ///
    /// ```
    /// use iokernel::net::UdpSocket;
    /// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
    /// rt.block_on(async {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap();
    ///     a.send(b"hi".to_vec()).await.0.unwrap();
    ///     let (n, buf) = b.recv(vec![0u8; 8]).await.into_parts();
    ///     assert_eq!(&buf[..n.unwrap()], b"hi");
    ///     assert_eq!(b.peer_addr().unwrap(), a.local_addr().unwrap());
    /// });
    /// ```
    pub fn connect(&self, addr: impl ToSocketAddrs) -> std::io::Result<()> {
        each_addr(addr, "connect", |addr| {
            (self.socket.kernel.connect(self.socket.fd, &addr))
                .map_err(|e| call_error(e, "connect", &addr))
        })
    }

    /// Send one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.send_with_flags(buf, MsgFlags::NONE).await
    }

    /// [`UdpSocket::send`] with `MSG_*` flags.
    pub async fn send_with_flags<B: IoBuf>(&self, buf: B, flags: MsgFlags) -> BufResult<usize, B> {
        io::send_with_flags(self.socket.fd, buf, flags).await
    }

    /// Send one datagram to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> BufResult<usize, B> {
        let fd = self.socket.fd;
        let to = Some(SockAddr::Inet(addr));
        io::sendmsg(fd, buf, to, Vec::new(), MsgFlags::NONE).await
    }

    /// Receive one datagram (from the connected peer, if connected).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.recv_with_flags(buf, MsgFlags::NONE).await
    }

    /// [`UdpSocket::recv`] with `MSG_*` flags (`PEEK` leaves the datagram).
    pub async fn recv_with_flags<B: IoBufMut>(
        &self,
        buf: B,
        flags: MsgFlags,
    ) -> BufResult<usize, B> {
        let BufResult(result, buf) = self.recv_checked(buf, flags, "recv").await;
        BufResult(result.map(|(n, _)| n), buf)
    }

    /// Receive one datagram and its sender.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let BufResult(result, buf) = self.recv_checked(buf, MsgFlags::NONE, "recv_from").await;
        let result = result.and_then(|(n, from)| match from.and_then(|f| f.as_inet()) {
            Some(from) => Ok((n, from)),
            None => Err(std::io::Error::other(
                "recv_from: the kernel named no IP sender",
            )),
        });
        BufResult(result, buf)
    }

    /// Receive one datagram; truncation is a flag of the [`Message`], not
    /// an error (UDP passes no fds).
    pub async fn recv_msg<B: IoBufMut>(&self, buf: B) -> BufResult<Message, B> {
        let BufResult(meta, buf) = io::recvmsg(self.socket.fd, buf, 0, MsgFlags::NONE).await;
        BufResult(meta.map(|m| Message::new(m, &self.socket.kernel)), buf)
    }

    async fn recv_checked<B: IoBufMut>(
        &self,
        buf: B,
        flags: MsgFlags,
        op: &str,
    ) -> BufResult<(usize, Option<SockAddr>), B> {
        let fd = self.socket.fd;
        let BufResult(meta, buf) = io::recvmsg(fd, buf, 0, flags).await;
        let result = match meta {
            Ok(meta) if meta.truncated => Err(truncated(op, fd, meta.bytes)),
            Ok(meta) => Ok((meta.bytes, meta.from)),
            Err(e) => Err(e),
        };
        BufResult(result, buf)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        let fd = self.socket.fd;
        (self.socket.kernel.local_addr(fd))
            .map_err(|e| call_error(e, "local_addr", &format_args!("fd {fd}")))
    }

    /// The connected peer (`ENOTCONN` if not connected).
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        let fd = self.socket.fd;
        (self.socket.kernel.peer_addr(fd))
            .map_err(|e| call_error(e, "peer_addr", &format_args!("fd {fd}")))
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
    pub(crate) fn from_fd(fd: RawFd) -> UdpSocket {
        UdpSocket {
            socket: super::Socket::from_fd(fd),
        }
    }
}

/// The error of a datagram cut to fit the buffer (the head is in the buffer).
pub(super) fn truncated(op: &str, fd: RawFd, kept: usize) -> std::io::Error {
    let what = format_args!("fd {fd}: datagram longer than the {kept}-byte buffer, tail discarded");
    call_error(Errno(libc::EMSGSIZE), op, &what)
}
