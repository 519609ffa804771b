//! Op descriptors for messages and socket control: `sendmsg`/`recvmsg`
//! (one buffer, an optional address, fds passed with `SCM_RIGHTS`), Unix
//! `connect`/`accept`, and `shutdown`.
//!
//! On io_uring `sendmsg`, `recvmsg` and `shutdown` are `SENDMSG`,
//! `RECVMSG` and `SHUTDOWN` entries (where the probe has them; the msghdr,
//! iovec, address and control buffer live in the driver's per-op scratch
//! until the completion); Unix `connect`/`accept` have no io_uring form
//! ([`Request::Other`]) and run on the pool. On the readiness drivers every
//! one is a non-blocking attempt plus a readiness wait, like every socket
//! op.
//!
//! Cancellation keeps what the kernel delivered: a `recvmsg` abandoned after
//! its message arrived leaves the whole message (bytes, sender, passed fds)
//! in the per-socket leftover store, and the next `recvmsg` on the socket
//! takes it first. A datagram is never split: taken into a shorter buffer it
//! is cut and reported truncated, as the kernel does. A Unix `accept`
//! abandoned after it accepted closes the connection (the peer sees end of
//! stream).

use super::{to_io, OpCode, Request};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::sys::{leftover, Interest, Kernel, MsgFlags, RecvMeta, Shutdown, SockAddr, SysResult};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// `sendmsg(2)` from an owned buffer, to an address or the connected peer,
/// passing fds (which the caller keeps open until the op completes).
pub struct SendMsg<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) to: Option<SockAddr>,
    pub(crate) fds: Vec<RawFd>,
    pub(crate) flags: MsgFlags,
}

impl<B: IoBuf> OpCode for SendMsg<B> {
    type Output = BufResult<usize, B>;

    fn name(&self) -> &'static str {
        "sendmsg"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Writable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::SendMsg {
            fd: self.fd,
            buf: self.buf.as_bytes(),
            to: self.to.as_ref(),
            fds: &self.fds,
            flags: self.flags,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let flags = MsgFlags(self.flags.0 | MsgFlags::DONTWAIT.0);
        let bufs = [IoSlice::new(self.buf.as_bytes())];
        kernel.sendmsg(self.fd, &bufs, self.to.as_ref(), &self.fds, flags)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        BufResult(to_io(result), self.buf)
    }
}

/// `recvmsg(2)` into an owned buffer, accepting up to `fds_max` passed fds.
pub struct RecvMsg<B> {
    pub(crate) fd: RawFd,
    pub(crate) buf: B,
    pub(crate) fds_max: usize,
    pub(crate) flags: MsgFlags,
    pub(crate) meta: Option<RecvMeta>,
    /// What the result came from in the leftover store, if anything (a
    /// discard puts it back there, in front).
    pub(crate) took_leftover: Option<KeptAs>,
}

/// How a leftover a `recvmsg` took was kept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KeptAs {
    /// A message (with its sender and fds).
    Message,
    /// Stream bytes a `recv` left.
    Bytes,
}

impl<B: IoBufMut> RecvMsg<B> {
    fn peek(&self) -> bool {
        self.flags.0 & MsgFlags::PEEK.0 != 0
    }
}

impl<B: IoBufMut> OpCode for RecvMsg<B> {
    type Output = BufResult<RecvMeta, B>;

    fn name(&self) -> &'static str {
        "recvmsg"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Readable))
    }

    fn request(&mut self) -> Request<'_> {
        Request::RecvMsg {
            fd: self.fd,
            buf: self.buf.writable(),
            fds_max: self.fds_max,
            flags: self.flags,
            out: &mut self.meta,
        }
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        if self.peek() {
            return None;
        }
        let (meta, kept_as) = match leftover::take_msg(kernel, self.fd, self.buf.writable()) {
            Some(meta) => (meta, KeptAs::Message),
            None => {
                let n = leftover::take_bytes(kernel, self.fd, self.buf.writable(), false)?;
                let meta = RecvMeta {
                    bytes: n,
                    ..RecvMeta::default()
                };
                (meta, KeptAs::Bytes)
            }
        };
        let n = meta.bytes;
        self.meta = Some(meta);
        self.took_leftover = Some(kept_as);
        Some(Ok(n))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        if let Some(result) = self.take_leftover(kernel) {
            return result;
        }
        self.run_entry(kernel)
    }

    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let flags = MsgFlags(self.flags.0 | MsgFlags::DONTWAIT.0);
        let mut bufs = [IoSliceMut::new(self.buf.writable())];
        let meta = kernel.recvmsg(self.fd, &mut bufs, self.fds_max, flags)?;
        let n = meta.bytes;
        self.meta = Some(meta);
        Ok(n)
    }

    fn complete(mut self, result: SysResult<usize>) -> Self::Output {
        self.buf.set_filled(*result.as_ref().unwrap_or(&0));
        let meta = to_io(result).and_then(|_| {
            self.meta
                .take()
                .ok_or_else(|| io::Error::other("recvmsg completed without a message"))
        });
        BufResult(meta, self.buf)
    }

    /// A message received for nobody is kept whole for the next `recvmsg`
    /// on this fd (its passed fds too; closed with the socket); one taken
    /// from the kept ones goes back in front, as it was kept.
    fn discard(mut self, result: SysResult<usize>, kernel: &dyn Kernel) {
        let Some(meta) = self.meta.take() else {
            return;
        };
        if result.is_err() || self.peek() {
            for fd in meta.fds {
                let _ = kernel.close(fd);
            }
            return;
        }
        let took_leftover = self.took_leftover;
        let received = self.buf.writable();
        let n = meta.bytes.min(received.len());
        match took_leftover {
            Some(KeptAs::Message) => leftover::put_back_msg(kernel, self.fd, &received[..n], meta),
            Some(KeptAs::Bytes) => leftover::put_back_bytes(kernel, self.fd, &received[..n]),
            None => leftover::stash_msg(kernel, self.fd, &received[..n], meta),
        }
    }
}

/// `connect(2)` of a Unix socket to a path; a full listener queue is waited
/// out (`EAGAIN`, then writable, then again).
pub struct ConnectUnix {
    pub(crate) fd: RawFd,
    pub(crate) path: PathBuf,
}

impl OpCode for ConnectUnix {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "connect"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Writable))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.connect_unix(self.fd, &self.path).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `accept4(2)` on a Unix listener.
pub struct AcceptUnix {
    pub(crate) fd: RawFd,
    pub(crate) accepted: Option<(RawFd, SockAddr)>,
}

impl OpCode for AcceptUnix {
    type Output = io::Result<(RawFd, SockAddr)>;

    fn name(&self) -> &'static str {
        "accept"
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Readable))
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.accepted = Some(kernel.accept_unix(self.fd)?);
        Ok(0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result)?;
        self.accepted
            .ok_or_else(|| io::Error::other("accept completed without a socket"))
    }

    /// A connection accepted for nobody is closed (its peer sees end of
    /// stream).
    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel) {
        if let (Ok(_), Some((fd, _))) = (result, self.accepted) {
            let _ = kernel.close(fd);
        }
    }
}

/// `shutdown(2)` as an op: a `SHUTDOWN` entry on io_uring, one call on the
/// pool elsewhere (it never waits).
pub struct ShutdownOp {
    pub(crate) fd: RawFd,
    pub(crate) how: Shutdown,
}

impl OpCode for ShutdownOp {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "shutdown"
    }

    fn request(&mut self) -> Request<'_> {
        Request::Shutdown {
            fd: self.fd,
            how: self.how,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.shutdown(self.fd, self.how).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}
