//! `Errno`: the error half of every seam result.
//!
//! A newtype over the raw number, not an exhaustive enum: the host kernel may
//! return errnos this crate has never heard of, and they must pass through
//! unchanged so that `io::Error::raw_os_error()` reports exactly what the
//! kernel said.

use std::fmt;
use std::io;

/// A raw `errno` value as returned by the kernel (always positive).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// libc's errno numbers, with `ENODATA` (no such extended attribute) read
/// as `ENOATTR` where the system has no `ENODATA` or reports a missing
/// attribute with `ENOATTR` (macOS and the BSDs).
mod host {
    pub(super) use libc::*;
    #[cfg(not(linux))]
    pub(super) const ENODATA: i32 = libc::ENOATTR;
}

macro_rules! errno_consts {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno(host::$name);
            )*
        }

        fn errno_name(raw: i32) -> Option<&'static str> {
            $( if raw == host::$name { return Some(stringify!($name)); } )*
            None
        }
    };
}

errno_consts!(
    EPERM,
    ENOENT,
    EINTR,
    EIO,
    EBADF,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    EMFILE,
    ENFILE,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EPIPE,
    ERANGE,
    ENOSYS,
    ENOTEMPTY,
    ENOTSOCK,
    EOPNOTSUPP,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETUNREACH,
    ECONNABORTED,
    ECONNRESET,
    ENOTCONN,
    ETIMEDOUT,
    ECONNREFUSED,
    EINPROGRESS,
    EALREADY,
    ECANCELED,
    EDQUOT,
    ENODATA,
    EOVERFLOW,
    ENAMETOOLONG,
    EMSGSIZE,
    EDESTADDRREQ,
    EISCONN,
    EAFNOSUPPORT,
    EPROTOTYPE,
);

impl Errno {
    /// The raw errno number.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name (`"ENOENT"`) when this crate knows it.
    pub fn name(self) -> Option<&'static str> {
        errno_name(self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = io::Error::from_raw_os_error(self.0);
        match self.name() {
            Some(name) => write!(f, "{name}: {text}"),
            None => write!(f, "errno {}: {text}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_keeps_the_raw_number() {
        let err: io::Error = Errno::ENOENT.into();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn unknown_errno_still_prints() {
        assert_eq!(format!("{:?}", Errno(4095)), "Errno(4095)");
        assert_eq!(format!("{:?}", Errno::EBADF), "EBADF(9)");
    }
}
