//! The one wrapper every raw syscall goes through.
//!
//! [`syscall`] runs a closure that makes one raw libc call, turns the C
//! failure value (`-1`) into an [`Errno`] read from `errno`, and re-issues
//! the call when it was interrupted (`EINTR`), so `EINTR` never escapes the
//! seam. [`syscall_close`] is the one exception the contract allows: Linux
//! releases the fd before `close` can be interrupted, so retrying could
//! close an fd another thread has just been given; it runs once and reports
//! `EINTR` as success.
//!
//! The closures hold the `unsafe` block (with its `// SAFETY:` line) so the
//! reason each call is sound sits next to the call itself.

use crate::sys::{Errno, SysResult};

/// A raw libc return type whose failure value is `-1`.
pub(crate) trait RawReturn: Copy + PartialEq {
    /// The value the C call returns on failure (errno is then set).
    const FAILED: Self;
}

impl RawReturn for i32 {
    const FAILED: i32 = -1;
}

impl RawReturn for i64 {
    const FAILED: i64 = -1;
}

impl RawReturn for isize {
    const FAILED: isize = -1;
}

/// The calling thread's `errno`, as left by the last failed libc call.
fn last_errno() -> Errno {
    // `last_os_error` always carries a raw number; EIO is never expected.
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// Run `call` (one raw libc call) until it is not interrupted; `-1` becomes
/// `Err(errno)`, anything else is returned as is.
pub(crate) fn syscall<T: RawReturn>(mut call: impl FnMut() -> T) -> SysResult<T> {
    loop {
        let ret = call();
        if ret != T::FAILED {
            return Ok(ret);
        }
        let errno = last_errno();
        if errno != Errno::EINTR {
            return Err(errno);
        }
    }
}

/// Run `call` once, reporting `EINTR` like any other errno: for waits
/// (`epoll_wait`) whose caller treats an interruption as "nothing happened"
/// instead of restarting the full timeout.
pub(crate) fn syscall_once<T: RawReturn>(call: impl FnOnce() -> T) -> SysResult<T> {
    let ret = call();
    if ret != T::FAILED {
        return Ok(ret);
    }
    Err(last_errno())
}

/// Run a raw `close` once. Linux has released the fd even when `close`
/// reports `EINTR`, so that is success; it is never retried.
pub(crate) fn syscall_close(call: impl FnOnce() -> libc::c_int) -> SysResult<()> {
    if call() != -1 {
        return Ok(());
    }
    match last_errno() {
        Errno::EINTR => Ok(()),
        errno => Err(errno),
    }
}

#[cfg(test)]
#[allow(unsafe_code)] // the tests set errno and call libc directly
mod tests {
    use super::*;

    fn set_errno(raw: i32) {
        // SAFETY: `__errno_location` returns the calling thread's errno slot,
        // valid for writes for the thread's lifetime.
        unsafe { *libc::__errno_location() = raw };
    }

    #[test]
    fn failure_becomes_errno() {
        let got = syscall(|| {
            // SAFETY: closing an fd that is never open touches no memory.
            unsafe { libc::close(-1) }
        });
        assert_eq!(got, Err(Errno::EBADF));
    }

    #[test]
    fn success_value_passes_through() {
        assert_eq!(syscall(|| 7isize), Ok(7));
        assert_eq!(syscall(|| 0i64), Ok(0));
    }

    #[test]
    fn eintr_is_retried() {
        let mut calls = 0;
        let got = syscall(|| {
            calls += 1;
            if calls < 3 {
                set_errno(libc::EINTR);
                return -1;
            }
            42i32
        });
        assert_eq!(got, Ok(42));
        assert_eq!(calls, 3);
    }

    #[test]
    fn close_reports_eintr_as_success_without_retry() {
        let mut calls = 0;
        let got = syscall_close(|| {
            calls += 1;
            set_errno(libc::EINTR);
            -1
        });
        assert_eq!(got, Ok(()));
        assert_eq!(calls, 1);
    }

    #[test]
    fn close_passes_other_errors() {
        let got = syscall_close(|| {
            set_errno(libc::EIO);
            -1
        });
        assert_eq!(got, Err(Errno::EIO));
    }
}
