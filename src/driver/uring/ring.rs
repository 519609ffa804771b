//! The io_uring FFI boundary: ring setup, opcode probe, pushing entries,
//! entering the kernel, reaping completions, and the eventfd that wakes a
//! worker parked in the ring. The only file of the driver that touches the
//! io-uring crate's unsafe API or libc.

#![allow(unsafe_code)]

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// `user_data` of the eventfd read that wakes a parked worker.
pub(crate) const WAKE_USER_DATA: u64 = u64::MAX;
/// `user_data` of cancel requests (their own completions are ignored).
pub(crate) const CANCEL_USER_DATA: u64 = u64::MAX - 1;

/// An eventfd another thread writes to wake a worker parked in its ring.
pub(crate) struct EventFd(RawFd);

impl EventFd {
    fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd(fd))
    }

    /// Make the armed read complete (wakes the ring's waiter).
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. EAGAIN
        // (counter saturated) still leaves the eventfd readable: ignored.
        let _ = unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own this fd and close it exactly once.
        unsafe { libc::close(self.0) };
    }
}

/// Why a ring cannot be used, in the words `iok probe` prints.
pub(crate) fn setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => {
            "io_uring_setup refused with EPERM (seccomp filter, or kernel.io_uring_disabled)"
                .to_string()
        }
        Some(libc::ENOMEM) => {
            "io_uring_setup failed with ENOMEM (RLIMIT_MEMLOCK too low for the ring)".to_string()
        }
        _ => format!("io_uring_setup failed: {e}"),
    }
}

/// One ring with its probe and wake eventfd.
pub(crate) struct Ring {
    ring: IoUring,
    probe: Probe,
    wake: std::sync::Arc<EventFd>,
    wake_buf: Box<u64>,
    wake_armed: bool,
}

impl Ring {
    /// A ring of `entries` submission slots.
    pub(crate) fn new(entries: u32) -> io::Result<Ring> {
        let ring = IoUring::builder().build(entries)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        Ok(Ring {
            ring,
            probe,
            wake: std::sync::Arc::new(EventFd::new()?),
            wake_buf: Box::new(0),
            wake_armed: false,
        })
    }

    /// Whether the kernel implements `opcode`.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    /// The eventfd that wakes this ring's waiter.
    pub(crate) fn waker(&self) -> std::sync::Arc<EventFd> {
        std::sync::Arc::clone(&self.wake)
    }

    /// Queue an entry, flushing the queue to the kernel first when full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until its completion has
    /// been reaped (the driver keeps the op boxed in its table until then).
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller guarantees the entry's pointers outlive it.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Hand queued entries to the kernel without waiting. `EBUSY` (the
    /// completion queue is backed up) is not an error: reap, then retry.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Entries queued but not yet handed to the kernel.
    pub(crate) fn unsubmitted(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// Make sure the wake eventfd has a read in flight.
    pub(crate) fn arm_wake(&mut self) -> io::Result<()> {
        if self.wake_armed {
            return Ok(());
        }
        let entry = opcode::Read::new(
            types::Fd(self.wake.0),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(WAKE_USER_DATA);
        // SAFETY: `wake_buf` is boxed and lives as long as the ring; the
        // eventfd is kept open by `self.wake`.
        unsafe { self.push(&entry)? };
        self.wake_armed = true;
        Ok(())
    }

    /// Submit and wait for at least one completion or `timeout`.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let result = match timeout {
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Take every available completion as `(user_data, result)`.
    pub(crate) fn reap(&mut self, out: &mut Vec<(u64, i32)>) {
        for cqe in self.ring.completion() {
            let cqe: cqueue::Entry = cqe;
            match cqe.user_data() {
                WAKE_USER_DATA => self.wake_armed = false,
                CANCEL_USER_DATA => {}
                user_data => out.push((user_data, cqe.result())),
            }
        }
    }

    /// Ask the kernel to cancel the request with `user_data`.
    pub(crate) fn cancel(&mut self, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_USER_DATA);
        // SAFETY: a cancel entry carries no pointers.
        unsafe { self.push(&entry) }
    }
}
