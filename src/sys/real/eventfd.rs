//! The eventfd FFI (Linux): the wake-up fd of the epoll poller and of the
//! kernel's io_uring, with every call through the syscall wrapper.

#![allow(unsafe_code)]

use super::syscall::{syscall, syscall_close};
use crate::sys::SysResult;
use std::os::fd::RawFd;

/// An owned, close-on-exec eventfd (counter starting at 0).
pub(crate) struct EventFd(RawFd);

impl EventFd {
    /// A new eventfd; `nonblocking` adds `EFD_NONBLOCK` (the epoll set
    /// drains it with plain reads; the io_uring reads it through the ring,
    /// which needs a blocking fd to wait).
    pub(crate) fn new(nonblocking: bool) -> SysResult<EventFd> {
        let flags = match nonblocking {
            true => libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            false => libc::EFD_CLOEXEC,
        };
        let fd = syscall(|| {
            // SAFETY: eventfd takes no pointers.
            unsafe { libc::eventfd(0, flags) }
        })?;
        Ok(EventFd(fd))
    }

    /// The fd, to register with a poller or read through a ring.
    pub(crate) fn fd(&self) -> RawFd {
        self.0
    }

    /// Add one to the counter, making the eventfd readable. `EAGAIN` (the
    /// counter is saturated) still leaves it readable, so it is ignored.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        let _ = syscall(|| {
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.0, std::ptr::from_ref(&one).cast(), 8) }
        });
    }

    /// Reset the counter so the eventfd is no longer readable (`EAGAIN` on
    /// a non-blocking eventfd: already drained).
    pub(crate) fn drain(&self) {
        let mut count: u64 = 0;
        let _ = syscall(|| {
            // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
            unsafe { libc::read(self.0, std::ptr::from_mut(&mut count).cast(), 8) }
        });
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        let _ = syscall_close(|| {
            // SAFETY: we own this fd and close it exactly once.
            unsafe { libc::close(self.0) }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_then_drain_resets_the_counter() {
        let efd = EventFd::new(true).expect("eventfd");
        efd.signal();
        efd.signal();
        let mut count: u64 = 0;
        let got = syscall(|| {
            // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
            unsafe { libc::read(efd.fd(), std::ptr::from_mut(&mut count).cast(), 8) }
        });
        assert_eq!(got, Ok(8));
        assert_eq!(count, 2, "two signals add two");
        efd.drain();
        let again = syscall(|| {
            // SAFETY: as above.
            unsafe { libc::read(efd.fd(), std::ptr::from_mut(&mut count).cast(), 8) }
        });
        assert_eq!(again, Err(crate::sys::Errno::EAGAIN), "drained");
    }
}
