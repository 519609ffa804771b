//! Op descriptors on sockets: accept, connect, recv, send.
//!
//! Socket ops never block inside the kernel: they try once without
//! blocking, and on `EAGAIN` report [`OpCode::readiness`] so the driver
//! waits for the fd instead. `EAGAIN` never reaches the user.

use super::{buf_result, to_io, OpCode, Request};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::sys::{leftover, Errno, Interest, Kernel, MsgFlags, SysResult};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// `accept4(2)`; the accepted socket is non-blocking.
pub struct Accept {
    pub(crate) fd: RawFd,
    pub(crate) accepted: Option<(RawFd, SocketAddr)>,
    /// The connection came from the leftover store (a discard puts it
    /// back first in line).
    pub(crate) took_leftover: bool,
}

impl OpCode for Accept {
    type Output = io::Result<(RawFd, SocketAddr)>;

    fn name(&self) -> &'static str {
        "accept"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Readable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::Accept {
            fd: self.fd,
            out: &mut self.accepted,
        }
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        let conn = leftover::take_conn(kernel, self.fd)?;
        self.accepted = Some(conn);
        self.took_leftover = true;
        Some(Ok(0))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        if let Some(result) = self.take_leftover(kernel) {
            return result;
        }
        self.run_entry(kernel)
    }

    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.accepted = Some(kernel.accept(self.fd, true)?);
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result)?;
        self.accepted
            .ok_or_else(|| io::Error::other("accept completed without a socket"))
    }

    /// A connection accepted for nobody is kept for the next accept on
    /// this listener (closed when the listener is closed through iokernel);
    /// one taken from the kept ones goes back first in line.
    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel) {
        match (result, self.accepted, self.took_leftover) {
            (Ok(_), Some(conn), true) => leftover::put_back_conn(kernel, self.fd, conn),
            (Ok(_), Some(conn), false) => leftover::stash_conn(kernel, self.fd, conn),
            _ => {}
        }
    }
}

/// `connect(2)` on a non-blocking socket, waiting for it to finish.
pub struct Connect {
    pub(crate) fd: RawFd,
    pub(crate) addr: SocketAddr,
    pub(crate) started: bool,
}

impl OpCode for Connect {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "connect"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Writable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::Connect {
            fd: self.fd,
            addr: &self.addr,
            started: &mut self.started,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        if !self.started {
            return match kernel.connect(self.fd, &self.addr) {
                Ok(()) => Ok(0),
                Err(Errno::EINPROGRESS) => {
                    self.started = true;
                    Err(Errno::EAGAIN)
                }
                // EAGAIN from connect itself means "try again" (no free
                // local port, full queue), not "in progress": the retry
                // after readiness calls connect again.
                Err(e) => Err(e),
            };
        }
        // The connect has finished once the socket is writable; SO_ERROR
        // then says how.
        if !kernel.wait_ready(self.fd, Interest::Writable, 0)? {
            return Err(Errno::EAGAIN);
        }
        match kernel.take_socket_error(self.fd)? {
            None => Ok(0),
            Some(e) => Err(e),
        }
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `recv(2)` into an owned buffer.
pub struct Recv<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) flags: MsgFlags,
    /// The fd is a TCP socket, so a short count from the kernel means
    /// nothing more was queued ([`OpCode::leaves_fd_drained`]); cleared when
    /// the bytes came from the leftover store instead.
    pub(crate) short_drains: bool,
    /// The bytes came from the leftover store (a discard puts them back
    /// in front).
    pub(crate) took_leftover: bool,
}

/// Whether `result` moved some but not all of `asked` bytes.
fn short(result: &SysResult<usize>, asked: usize) -> bool {
    matches!(result, Ok(n) if *n > 0 && *n < asked)
}

impl<B: IoBufMut> OpCode for Recv<B> {
    type Output = BufResult<usize, B>;

    fn name(&self) -> &'static str {
        "recv"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Readable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::Recv {
            fd: self.fd,
            buf: self.buf.writable(),
            flags: self.flags,
        }
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        let peek = self.flags.0 & MsgFlags::PEEK.0 != 0;
        let n = leftover::take_bytes(kernel, self.fd, self.buf.writable(), peek)?;
        self.took_leftover = true;
        Some(Ok(n))
    }

    fn leaves_fd_drained(&self, result: &SysResult<usize>) -> bool {
        let peek = self.flags.0 & MsgFlags::PEEK.0 != 0;
        self.short_drains && !peek && short(result, self.buf.as_bytes().len())
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        if let Some(result) = self.take_leftover(kernel) {
            // What a cancelled op left says nothing of the socket's queue.
            self.short_drains = false;
            return result;
        }
        self.run_entry(kernel)
    }

    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let flags = MsgFlags(self.flags.0 | MsgFlags::DONTWAIT.0);
        kernel.recv(self.fd, self.buf.writable(), flags)
    }

    fn complete(mut self, result: SysResult<usize>) -> Self::Output {
        self.buf.set_filled(*result.as_ref().unwrap_or(&0));
        buf_result(result, self.buf)
    }

    /// Bytes received for nobody are kept, in order, for the next recv on
    /// this fd (bytes taken from the kept ones go back in front). A
    /// `MSG_PEEK` recv consumed nothing, so there is nothing to keep; an
    /// end of stream is seen again by the next recv, an error is not kept
    /// (after a reset, the next recv reports end of stream).
    fn discard(mut self, result: SysResult<usize>, kernel: &dyn Kernel) {
        let peek = self.flags.0 & MsgFlags::PEEK.0 != 0;
        if let (Ok(n), false) = (result, peek) {
            let took_leftover = self.took_leftover;
            let received = self.buf.writable();
            let n = n.min(received.len());
            match took_leftover {
                true => leftover::put_back_bytes(kernel, self.fd, &received[..n]),
                false => leftover::stash_bytes(kernel, self.fd, None, &received[..n]),
            }
        }
    }
}

/// `send(2)` from an owned buffer.
pub struct Send<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) flags: MsgFlags,
    /// The fd is a TCP socket, so a short count means its send buffer is
    /// full ([`OpCode::leaves_fd_drained`]).
    pub(crate) short_drains: bool,
}

impl<B: IoBuf> OpCode for Send<B> {
    type Output = BufResult<usize, B>;

    fn name(&self) -> &'static str {
        "send"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Writable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::Send {
            fd: self.fd,
            buf: self.buf.as_bytes(),
            flags: self.flags,
        }
    }

    fn leaves_fd_drained(&self, result: &SysResult<usize>) -> bool {
        self.short_drains && short(result, self.buf.as_bytes().len())
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let flags = MsgFlags(self.flags.0 | MsgFlags::DONTWAIT.0);
        kernel.send(self.fd, self.buf.as_bytes(), flags)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        buf_result(result, self.buf)
    }
}
