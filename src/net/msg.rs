//! What the socket types share: errors that name the call and its target,
//! fds received with `SCM_RIGHTS` ([`ReceivedFd`]) and a received message
//! ([`Message`]).

use crate::sys::{Errno, Kernel, RecvMeta, SockAddr};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// An OS error with the call and what it was called on (`bind /tmp/s`);
/// the errno is its [`source`](std::error::Error::source).
#[derive(Debug)]
struct CallError {
    message: String,
    errno: Errno,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

/// `errno` of `op` on `target`, as an `io::Error` of the errno's kind whose
/// message names both and the errno (`bind /tmp/s: EADDRINUSE: ...`).
pub(super) fn call_error(errno: Errno, op: &str, target: &dyn fmt::Display) -> io::Error {
    let os = io::Error::from_raw_os_error(errno.raw());
    let name = errno.name().unwrap_or("errno");
    let message = format!("{op} {target}: {name}: {os}");
    io::Error::new(os.kind(), CallError { message, errno })
}

/// [`call_error`] for an `io::Error` from an op (kept as is without an
/// errno).
pub(super) fn io_context(e: io::Error, op: &str, target: &dyn fmt::Display) -> io::Error {
    match e.raw_os_error() {
        Some(raw) => call_error(Errno(raw), op, target),
        None => e,
    }
}

/// An fd received with `SCM_RIGHTS`: owned, close-on-exec, closed (through
/// the kernel it came from, real or simulated) when dropped.
///
/// ```
/// use iokernel::net::UnixDatagram;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send_msg(b"fd".to_vec(), &[a.as_raw_fd()]).await.0.unwrap();
///     let (msg, _) = b.recv_msg(vec![0u8; 8], 4).await.into_parts();
///     let msg = msg.unwrap();
///     assert_eq!(msg.fds.len(), 1);
///     assert!(msg.fds[0].as_raw_fd() >= 0);
/// });
/// ```
pub struct ReceivedFd {
    fd: RawFd,
    kernel: Arc<dyn Kernel>,
}

impl ReceivedFd {
    /// The fd number (valid while `self` lives).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }

    /// Give up ownership without closing: the caller closes it.
    pub fn into_raw_fd(self) -> RawFd {
        let fd = self.fd;
        std::mem::forget(self);
        fd
    }

    /// Own `fd`, an open fd of the current kernel (the std-trait
    /// conversions of `crate::io::fd` go through here).
    pub(crate) fn from_fd(fd: RawFd) -> ReceivedFd {
        ReceivedFd {
            fd,
            kernel: crate::runtime::context::current_kernel(),
        }
    }
}

impl fmt::Debug for ReceivedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReceivedFd").field(&self.fd).finish()
    }
}

impl Drop for ReceivedFd {
    fn drop(&mut self) {
        let _ = self.kernel.close(self.fd);
    }
}

/// What `recv_msg` received besides the bytes.
///
/// ```
/// use iokernel::net::UnixDatagram;
/// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(async {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send(b"hello".to_vec()).await.0.unwrap();
///     let (msg, buf) = b.recv_msg(vec![0u8; 2], 0).await.into_parts();
///     let msg = msg.unwrap();
///     assert_eq!((&buf[..msg.bytes], msg.truncated), (&b"he"[..], true));
/// });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Message {
    /// Bytes placed in the buffer.
    pub bytes: usize,
    /// The sender, where the socket type reports one (datagrams).
    pub from: Option<SockAddr>,
    /// Fds passed with the message.
    pub fds: Vec<ReceivedFd>,
    /// The datagram was longer than the buffer: its tail is gone
    /// (`MSG_TRUNC`).
    pub truncated: bool,
    /// More fds came than were asked for: the rest were closed
    /// (`MSG_CTRUNC`).
    pub fds_truncated: bool,
}

impl Message {
    pub(super) fn new(meta: RecvMeta, kernel: &Arc<dyn Kernel>) -> Message {
        let fds = meta
            .fds
            .into_iter()
            .map(|fd| ReceivedFd {
                fd,
                kernel: Arc::clone(kernel),
            })
            .collect();
        Message {
            bytes: meta.bytes,
            from: meta.from,
            fds,
            truncated: meta.truncated,
            fds_truncated: meta.fds_truncated,
        }
    }
}
