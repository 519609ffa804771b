//! The completion-ring seam: what the io_uring driver (`crate::driver::uring`)
//! needs from a submission/completion ring, so the same driver code runs on
//! the kernel's io_uring (`driver/uring/ring.rs`) and on the simulator's ring
//! (`crate::sys::sim`, which runs every entry against the simulated kernel).
//!
//! Owns: the [`CompletionRing`] and [`RingSource`] traits, the entry
//! description [`RingEntry`] and the [`RingExec`] hook. It holds no state and
//! never touches a ring itself.
//!
//! # Contract
//!
//! A ring has a bounded *submission queue* (SQ) of entries the driver has
//! pushed but not yet handed over, the *kernel side* (entries handed over by
//! [`CompletionRing::submit`] or [`CompletionRing::wait`] and still running),
//! and a *completion queue* (CQ) of `(user_data, res)` pairs; `res` is a
//! count or a negative errno, as in a CQE.
//!
//! * **push** queues one entry. A full SQ hands the entry back
//!   ([`SqFull`]); the driver then submits and pushes again. It never blocks
//!   and never drops an entry.
//! * **submit** hands every queued entry to the kernel side without
//!   waiting. It may fail with `EBUSY` (or `EAGAIN`/`EINTR`) when the CQ is
//!   backed up: nothing was lost, the queued entries stay queued, and the
//!   driver pops completions (making room) before trying again. Other
//!   errnos are fatal for the ring.
//! * **wait** submits, then waits until at least one completion is
//!   available, `timeout` passes, or another thread calls the ring's
//!   [`CompletionRing::waker`]. It never fails with `EBUSY`, `EINTR` or
//!   `ETIME`; an `Err` means the ring can make no progress at all (the
//!   simulator's ring says so when every entry waits on something that can
//!   never happen: a stuck run).
//! * **pop** takes one completion, in the order the kernel side finished
//!   them (which is not submission order). It needs no wait: a ring whose
//!   kernel defers posting completions until the ring's thread asks
//!   (io_uring's `DEFER_TASKRUN`) asks from `pop` when some are pending. Completions that did not fit the
//!   CQ (overflow) are kept by the ring and come out of later pops: a
//!   completion is never lost. The ring's own internal entries (a wake-up
//!   read) never come out of `pop`; cancel requests do, with
//!   [`CANCEL_USER_DATA`].
//! * **supports** answers the opcode probe made when the ring was set up.
//!
//! # Buffers and cancellation
//!
//! An op entry points into an op the driver keeps boxed at a fixed address
//! (its buffers, its path strings, op-owned storage) from the push until its
//! completion is popped; that is the safety condition of
//! [`CompletionRing::push`]. A [`RingWork::Cancel`] entry asks the kernel
//! side to stop the entry with that `user_data`: the target then completes
//! with `-ECANCELED`, or with its own result when it had already finished.
//! Either way it completes exactly once, and only then may the driver free
//! its buffers.

use crate::sys::{Interest, Kernel};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// `user_data` of cancel requests; their own completions are ignored.
pub(crate) const CANCEL_USER_DATA: u64 = u64::MAX - 1;

/// Running an op's syscall in place: how a ring that is not the kernel's
/// (the simulator's) executes an op entry. The kernel's ring uses the
/// prepared submission entry instead and never calls this.
pub(crate) trait RingExec {
    /// The syscall's name, for latency classes and traces.
    fn label(&self) -> &'static str;
    /// Perform the op's syscall once against `kernel` and return the
    /// completion's `res` (a count or a negative errno). The op keeps the
    /// full result (and any output such as a stat or a peer address) for
    /// the driver.
    fn execute(&mut self, kernel: &dyn Kernel) -> i32;
}

/// What an entry asks the ring to do.
pub(crate) enum RingWork {
    /// An op: the kernel ring submits `sqe`; another ring calls `exec`.
    Op {
        /// The entry's opcode (checked against the probe before the push).
        opcode: u8,
        /// The prepared submission entry (without its `user_data`).
        sqe: io_uring::squeue::Entry,
        /// The boxed op the entry belongs to.
        exec: *mut dyn RingExec,
    },
    /// Complete (with the poll mask) once `fd` is ready for `interest`.
    Poll {
        /// The fd to watch.
        fd: RawFd,
        /// What to wait for.
        interest: Interest,
    },
    /// Cancel the in-flight entry with `user_data == target`.
    Cancel {
        /// The entry to cancel.
        target: u64,
    },
}

/// One submission: what to do, and the `user_data` its completion carries.
pub(crate) struct RingEntry {
    /// Echoed in the entry's completion.
    pub(crate) user_data: u64,
    /// What to do.
    pub(crate) work: RingWork,
}

/// The submission queue is full; the entry comes back unqueued.
pub(crate) struct SqFull(pub(crate) RingEntry);

/// A submission/completion ring (see the module contract).
pub(crate) trait CompletionRing {
    /// Queue `entry`, or hand it back when the submission queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` (into the op behind `exec`, its buffers and
    /// the storage its `sqe` names) must stay valid and unmoved until the
    /// completion with `entry.user_data` has been popped.
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull>;
    /// Entries pushed but not yet handed to the kernel side.
    fn queued(&mut self) -> usize;
    /// Hand queued entries to the kernel side without waiting.
    fn submit(&mut self) -> io::Result<()>;
    /// Submit, then wait for a completion, a wake or `timeout`.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Take one completion as `(user_data, res)`.
    fn pop(&mut self) -> Option<(u64, i32)>;
    /// Whether the probe found `opcode`.
    fn supports(&self, opcode: u8) -> bool;
    /// Wakes this ring's waiter from another thread.
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync>;
    /// How the ring was set up (the kernel ring's setup flags), for the
    /// backend report; `None` when there is nothing to say.
    fn setup(&self) -> Option<&'static str> {
        None
    }
}

/// Where rings come from: the kernel's io_uring, the simulator, or (in
/// tests) a source that refuses setup.
pub(crate) trait RingSource: Send + Sync {
    /// Rings from sources with the same id are interchangeable (a thread
    /// keeps one ring per source id).
    fn id(&self) -> u64;
    /// A new ring of `entries` submission slots, with its opcode probe.
    /// Setup errors keep their errno (`ENOSYS`, `EPERM`, `ENOMEM`).
    fn open(&self, entries: u32) -> io::Result<Box<dyn CompletionRing>>;
    /// What `kernel.io_uring_disabled` says, for explaining an `EPERM`
    /// (`None`: not known or not relevant).
    fn io_uring_disabled(&self) -> Option<u32> {
        None
    }
}
