//! The io_uring FFI boundary: ring setup, opcode probe, pushing entries,
//! entering the kernel, reaping completions, and the eventfd that wakes a
//! worker parked in the ring. The only file of the driver that touches the
//! io-uring crate's unsafe API or libc; it implements the completion-ring
//! seam (`crate::sys::ring`) for the kernel's io_uring.

#![allow(unsafe_code)]

use crate::sys::ring::{CompletionRing, RingEntry, RingSource, RingWork, SqFull};
use crate::sys::Interest;
use io_uring::{opcode, squeue, types, IoUring, Probe};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// `user_data` of the eventfd read that wakes a parked worker.
const WAKE_USER_DATA: u64 = u64::MAX;

/// An eventfd another thread writes to wake a worker parked in its ring.
struct EventFd(RawFd);

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
    fn wake(&self) {
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

/// The kernel's io_uring as a ring source (one id for the whole process:
/// every runtime on a thread shares that thread's kernel ring).
pub(crate) struct KernelRings;

/// Id of [`KernelRings`]; other sources take ids above it.
pub(crate) const KERNEL_RINGS_ID: u64 = 0;

impl RingSource for KernelRings {
    fn id(&self) -> u64 {
        KERNEL_RINGS_ID
    }

    fn open(&self, entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Ok(Box::new(KernelRing::new(entries)?))
    }

    fn io_uring_disabled(&self) -> Option<u32> {
        crate::sys::real::host_info().io_uring_disabled
    }
}

/// One kernel ring with its probe and wake eventfd.
struct KernelRing {
    ring: IoUring,
    probe: Probe,
    wake: Arc<EventFd>,
    wake_buf: Box<u64>,
    wake_armed: bool,
    reaped: VecDeque<(u64, i32)>,
}

fn poll_mask(interest: Interest) -> u32 {
    match interest {
        Interest::Readable => libc::POLLIN as u32,
        Interest::Writable => libc::POLLOUT as u32,
    }
}

/// The kernel's submission entry for `entry`: the one place a
/// backend-neutral entry becomes an `io_uring_sqe`.
fn sqe(entry: RingEntry) -> squeue::Entry {
    let built = match entry.work {
        RingWork::Op { sqe, .. } => sqe,
        RingWork::Poll { fd, interest } => {
            opcode::PollAdd::new(types::Fd(fd), poll_mask(interest)).build()
        }
        RingWork::Cancel { target } => opcode::AsyncCancel::new(target).build(),
    };
    built.user_data(entry.user_data)
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::ETIME)
    )
}

impl KernelRing {
    fn new(entries: u32) -> io::Result<KernelRing> {
        let ring = IoUring::builder().build(entries)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        Ok(KernelRing {
            ring,
            probe,
            wake: Arc::new(EventFd::new()?),
            wake_buf: Box::new(0),
            wake_armed: false,
            reaped: VecDeque::new(),
        })
    }

    /// Make sure the wake eventfd has a read in flight.
    fn arm_wake(&mut self) -> io::Result<()> {
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
        loop {
            // SAFETY: `wake_buf` is boxed and lives as long as the ring; the
            // eventfd is kept open by `self.wake`.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                break;
            }
            // A full queue: hand it over, then queue the read.
            if let Err(e) = self.ring.submit() {
                if !is_retry(&e) {
                    return Err(e);
                }
                self.take_completions();
            }
        }
        self.wake_armed = true;
        Ok(())
    }

    /// Move every completion off the shared CQ into `reaped`.
    fn take_completions(&mut self) {
        for cqe in self.ring.completion() {
            match cqe.user_data() {
                WAKE_USER_DATA => self.wake_armed = false,
                user_data => self.reaped.push_back((user_data, cqe.result())),
            }
        }
    }
}

impl CompletionRing for KernelRing {
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull> {
        if self.ring.submission().is_full() {
            return Err(SqFull(entry));
        }
        let sqe = sqe(entry);
        // SAFETY: the caller guarantees the entry's pointers stay valid until
        // its completion is popped; the queue has room (checked above).
        let pushed = unsafe { self.ring.submission().push(&sqe) };
        debug_assert!(pushed.is_ok(), "the submission queue had room");
        Ok(())
    }

    fn queued(&mut self) -> usize {
        self.ring.submission().len()
    }

    fn submit(&mut self) -> io::Result<()> {
        self.ring.submit().map(drop)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.arm_wake()?;
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
            Err(e) if is_retry(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        if self.reaped.is_empty() {
            self.take_completions();
        }
        if self.reaped.is_empty() && self.ring.submission().cq_overflow() {
            // Completions the CQ had no room for wait in the kernel
            // (IORING_FEAT_NODROP); entering the ring flushes them.
            let _ = self.ring.submit();
            self.take_completions();
        }
        self.reaped.pop_front()
    }

    fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let eventfd = Arc::clone(&self.wake);
        Arc::new(move || eventfd.wake())
    }
}
