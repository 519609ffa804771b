//! The seam's message types: [`SockAddr`] (an address of any family the
//! seam handles) and [`RecvMeta`] (what `recvmsg` returned besides bytes).
//!
//! `sendmsg`/`recvmsg` carry fds with `SCM_RIGHTS`; the fds a receive
//! returns are new fds of the receiving fd table, close-on-exec
//! (`MSG_CMSG_CLOEXEC`), owned by the caller.

use super::{Errno, SysResult};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Most bytes of a Unix socket path, not counting the NUL
/// (`sizeof(sun_path) - 1` on Linux).
pub const UNIX_PATH_MAX_BYTES: usize = 107;

/// Most fds one `sendmsg`/`recvmsg` carries (Linux `SCM_MAX_FD`).
pub const SCM_MAX_FDS: usize = 253;

/// A socket address: IP, a Unix path, or an unnamed Unix socket.
///
/// ```
/// use iokernel::sys::SockAddr;
/// let ip = SockAddr::from("127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(ip.as_inet().map(|a| a.port()), Some(80));
/// let unix = SockAddr::Unix("/run/app.sock".into());
/// assert_eq!(unix.as_path(), Some(std::path::Path::new("/run/app.sock")));
/// assert_eq!(SockAddr::Unnamed.as_inet(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SockAddr {
    /// IPv4 or IPv6.
    Inet(SocketAddr),
    /// A Unix socket bound to a path.
    Unix(PathBuf),
    /// A Unix socket bound to nothing (`socketpair`, or never bound).
    Unnamed,
}

impl SockAddr {
    /// The IP address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SockAddr::Inet(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The Unix path, if this is one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            SockAddr::Unix(path) => Some(path),
            _ => None,
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        SockAddr::Inet(addr)
    }
}

/// `ENAMETOOLONG` unless `path` fits `sun_path`; `EINVAL` for an empty path
/// or one with a NUL (the kernel would read it as abstract or shorter).
///
/// ```
/// use iokernel::sys::{check_unix_path, Errno, UNIX_PATH_MAX_BYTES};
/// use std::path::PathBuf;
/// assert_eq!(check_unix_path("/tmp/s".as_ref()), Ok(()));
/// let long = PathBuf::from("x".repeat(UNIX_PATH_MAX_BYTES + 1));
/// assert_eq!(check_unix_path(&long), Err(Errno::ENAMETOOLONG));
/// ```
pub fn check_unix_path(path: &Path) -> SysResult<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if bytes.len() > UNIX_PATH_MAX_BYTES {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    Ok(())
}

/// What a `recvmsg` returned besides the bytes.
///
/// ```
/// use iokernel::sys::{Kernel, MsgFlags, SockType};
/// use iokernel::sys::real::RealKernel;
/// use std::io::{IoSlice, IoSliceMut};
/// let k = RealKernel;
/// let (a, b) = k.unix_pair(SockType::Datagram).unwrap();
/// k.sendmsg(a, &[IoSlice::new(b"hello")], None, &[], MsgFlags::NONE).unwrap();
/// let mut buf = [0u8; 2];
/// let meta = k.recvmsg(b, &mut [IoSliceMut::new(&mut buf)], 0, MsgFlags::NONE).unwrap();
/// assert_eq!((meta.bytes, meta.truncated, meta.fds.len()), (2, true, 0));
/// # k.close(a).unwrap(); k.close(b).unwrap();
/// ```
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written to the buffers.
    pub bytes: usize,
    /// The sender (`None` for a connected stream, where Linux reports none).
    pub from: Option<SockAddr>,
    /// Fds passed with `SCM_RIGHTS`, new in this fd table, close-on-exec.
    pub fds: Vec<std::os::fd::RawFd>,
    /// The datagram was longer than the buffers; its tail is gone
    /// (`MSG_TRUNC`).
    pub truncated: bool,
    /// More fds were passed than fit (`MSG_CTRUNC`); the kernel closed the
    /// rest.
    pub fds_truncated: bool,
}
