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

// Off Linux without the `sim` feature no ring exists to read an entry
// (the io_uring backend reports that it is not built for the OS).
#![cfg_attr(not(any(linux, feature = "sim")), allow(dead_code))]

use crate::sys::{Interest, Kernel};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// `user_data` of cancel requests; their own completions are ignored.
pub(crate) const CANCEL_USER_DATA: u64 = u64::MAX - 1;

/// A prepared submission entry for the kernel's ring (Linux only: other
/// systems have no kernel ring, and the simulator's ring runs the op
/// through [`RingExec`] instead of reading an entry).
#[cfg(linux)]
pub(crate) type Sqe = io_uring::squeue::Entry;

/// The io_uring opcode numbers (`IORING_OP_*`, the kernel's ABI) the
/// driver and the simulator's ring use, written out so that the driver
/// logic and the simulated ring build on every OS, not only where the
/// io-uring crate does. A unit test checks them against that crate.
pub mod opcode {
    /// `IORING_OP_READV`.
    pub const READV: u8 = 1;
    /// `IORING_OP_WRITEV`.
    pub const WRITEV: u8 = 2;
    /// `IORING_OP_FSYNC`.
    pub const FSYNC: u8 = 3;
    /// `IORING_OP_SENDMSG`.
    pub const SENDMSG: u8 = 9;
    /// `IORING_OP_RECVMSG`.
    pub const RECVMSG: u8 = 10;
    /// `IORING_OP_POLL_ADD`.
    pub const POLL_ADD: u8 = 6;
    /// `IORING_OP_ACCEPT`.
    pub const ACCEPT: u8 = 13;
    /// `IORING_OP_CONNECT`.
    pub const CONNECT: u8 = 16;
    /// `IORING_OP_FALLOCATE`.
    pub const FALLOCATE: u8 = 17;
    /// `IORING_OP_OPENAT`.
    pub const OPENAT: u8 = 18;
    /// `IORING_OP_CLOSE`.
    pub const CLOSE: u8 = 19;
    /// `IORING_OP_STATX`.
    pub const STATX: u8 = 21;
    /// `IORING_OP_READ`.
    pub const READ: u8 = 22;
    /// `IORING_OP_WRITE`.
    pub const WRITE: u8 = 23;
    /// `IORING_OP_SEND`.
    pub const SEND: u8 = 26;
    /// `IORING_OP_RECV`.
    pub const RECV: u8 = 27;
    /// `IORING_OP_SHUTDOWN` (Linux 5.11).
    pub const SHUTDOWN: u8 = 34;
    /// `IORING_OP_RENAMEAT`.
    pub const RENAMEAT: u8 = 35;
    /// `IORING_OP_UNLINKAT`.
    pub const UNLINKAT: u8 = 36;
    /// `IORING_OP_MKDIRAT`.
    pub const MKDIRAT: u8 = 37;
    /// `IORING_OP_FTRUNCATE` (Linux 6.9).
    pub const FTRUNCATE: u8 = 55;
}

/// Running an op's syscall in place: how a ring that is not the kernel's
/// (the simulator's) executes an op entry. The kernel's ring uses the
/// prepared submission entry instead and never calls this (so without the
/// `sim` feature nothing calls it).
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
pub(crate) trait RingExec {
    /// The syscall's name, for latency classes and traces.
    fn label(&self) -> &'static str;
    /// Perform the op's syscall once against `kernel`, as the kernel's
    /// entry would (`OpCode::run_entry`: without what cancelled ops left
    /// for the fd), and return the completion's `res` (a count or a
    /// negative errno). The op keeps the
    /// full result (and any output such as a stat or a peer address) for
    /// the driver.
    fn execute(&mut self, kernel: &dyn Kernel) -> i32;
}

/// Where a receive stream's bytes go ([`RingWork::RecvStream`]): the
/// ring hands each chunk the kernel side received, in order, as soon as it
/// reaps it, and takes its buffer back at once.
pub(crate) trait StreamSink: Send + Sync {
    /// `bytes` arrived (never empty). False when the sink holds as much
    /// as it will take: the ring then cancels the stream's entry (what was
    /// already received still comes, then the entry's last completion).
    fn received(&self, bytes: &[u8]) -> bool;
    /// The stream's entry completed with `res` (see
    /// [`RingWork::RecvStream`]): nothing more comes to this sink from it.
    /// Called by the driver that started the stream, on its ring's thread.
    fn ended(&self, res: i32);
}

/// What an entry asks the ring to do.
pub(crate) enum RingWork {
    /// An op: the kernel ring submits `sqe`; another ring calls `exec`
    /// (without the `sim` feature there is no other ring to read them).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    Op {
        /// The entry's opcode (checked against the probe before the push).
        opcode: u8,
        /// The prepared submission entry (without its `user_data`).
        #[cfg(linux)]
        sqe: Sqe,
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
    /// A *receive stream*: one entry that receives from the stream socket
    /// `fd` again and again (io_uring's multishot recv into the ring's own
    /// provided buffers), each chunk going to `sink` as it is reaped; it
    /// never comes out of `pop` until it ends. Its one completion then
    /// says why: `0` end of stream, `> 0` or `-ENOBUFS` it stopped with
    /// the connection still open (the kernel's choice, or out of buffers:
    /// a new stream may be started), or a negative errno (`-ECANCELED`
    /// when cancelled, by the driver or by the ring because the sink was
    /// full; `-EINVAL` when the kernel cannot run receive streams).
    /// Only pushed to a ring whose [`CompletionRing::supports_streams`]
    /// said yes; [`CompletionRing::watch_stream`] names its sink right
    /// after the push, before the next submit.
    RecvStream {
        /// The connected stream socket.
        fd: RawFd,
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
    // The seam's one unsafe boundary: building an entry is safe, pushing
    // it (handing the op's memory to the kernel side) is not.
    #[allow(unsafe_code)]
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull>;
    /// Entries pushed but not yet handed to the kernel side.
    fn queued(&mut self) -> usize;
    /// Hand queued entries to the kernel side without waiting.
    fn submit(&mut self) -> io::Result<()>;
    /// Submit, then wait for a completion, a wake or `timeout`.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Take one completion as `(user_data, res)`.
    fn pop(&mut self) -> Option<(u64, i32)>;
    /// Take every completion available now onto the back of `into`, in
    /// order; true when it took any. The same as `pop` until it answers
    /// `None` (the default), which a ring may do in one pass.
    fn pop_all(&mut self, into: &mut VecDeque<(u64, i32)>) -> bool {
        let before = into.len();
        while let Some(completion) = self.pop() {
            into.push_back(completion);
        }
        into.len() > before
    }
    /// Whether a `pop` now could find a completion: a cheap check that
    /// lets the driver skip reaping between task polls when nothing can be
    /// there. It may complete work to answer (the simulator's kernel side
    /// may finish an entry at any moment, as it may in `pop`), and must
    /// never answer false while a completion waits. Default: true (a ring
    /// that cannot tell is reaped every time).
    fn has_completions(&mut self) -> bool {
        true
    }
    /// Whether the probe found `opcode`.
    fn supports(&self, opcode: u8) -> bool;
    /// Whether this ring can run [`RingWork::RecvStream`] entries, setting
    /// up what they need (the kernel ring's provided buffers) on the first
    /// ask. Default: no.
    fn supports_streams(&mut self) -> bool {
        false
    }
    /// The receive stream just pushed under `user_data` (not yet
    /// submitted) hands its chunks to `sink`, kept until the stream's
    /// completion is popped. Only called on a ring whose
    /// `supports_streams` said yes.
    fn watch_stream(&mut self, user_data: u64, sink: Arc<dyn StreamSink>) {
        let _ = (user_data, sink);
    }
    /// Wakes this ring's waiter from another thread.
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync>;
    /// How the ring was set up (the kernel ring's setup flags), for the
    /// backend report; `None` when there is nothing to say.
    fn setup(&self) -> Option<&'static str> {
        None
    }
    /// Completion-queue overflows seen since the last call (completions
    /// the CQ had no room for, kept by the ring: see `pop`), for the
    /// runtime's metrics. Default: none.
    fn take_cq_overflows(&mut self) -> u64 {
        0
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

#[cfg(all(test, linux))]
mod tests {
    use super::opcode;
    use io_uring::opcode as crate_op;

    #[test]
    fn opcode_numbers_match_the_io_uring_crate() {
        let pairs = [
            (opcode::READV, crate_op::Readv::CODE),
            (opcode::WRITEV, crate_op::Writev::CODE),
            (opcode::FSYNC, crate_op::Fsync::CODE),
            (opcode::SENDMSG, crate_op::SendMsg::CODE),
            (opcode::RECVMSG, crate_op::RecvMsg::CODE),
            (opcode::POLL_ADD, crate_op::PollAdd::CODE),
            (opcode::ACCEPT, crate_op::Accept::CODE),
            (opcode::CONNECT, crate_op::Connect::CODE),
            (opcode::FALLOCATE, crate_op::Fallocate::CODE),
            (opcode::OPENAT, crate_op::OpenAt::CODE),
            (opcode::CLOSE, crate_op::Close::CODE),
            (opcode::STATX, crate_op::Statx::CODE),
            (opcode::READ, crate_op::Read::CODE),
            (opcode::WRITE, crate_op::Write::CODE),
            (opcode::SEND, crate_op::Send::CODE),
            (opcode::RECV, crate_op::Recv::CODE),
            (opcode::SHUTDOWN, crate_op::Shutdown::CODE),
            (opcode::RENAMEAT, crate_op::RenameAt::CODE),
            (opcode::UNLINKAT, crate_op::UnlinkAt::CODE),
            (opcode::MKDIRAT, crate_op::MkDirAt::CODE),
            (opcode::FTRUNCATE, crate_op::Ftruncate::CODE),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs);
        }
    }
}
