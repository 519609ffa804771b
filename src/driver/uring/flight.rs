//! An op in a ring's table: the type-erased face the ring works with
//! ([`InRing`]), where the op's result goes ([`Handoff`]: its own slot, or
//! a shared completion for a future that cannot reach the ring) and the op
//! with its entry's scratch ([`Flight`]).
//!
//! Owns: one op's life on a ring, from its entry to its result. May not
//! touch: the ring's table and queues (`mod.rs` keeps them) or the
//! mailbox (`mailbox.rs`).

use super::ops;
use super::ABANDONED_READERS;
use crate::driver::completion::Completion;
use crate::op::OpCode;
use crate::sys::leftover::LateResult;
use crate::sys::ring::{RingExec, RingWork};
use crate::sys::{Errno, Kernel, SysResult};
use std::any::Any;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;

/// What became of an op whose completion a ring dispatched.
pub(super) enum Completed {
    /// Submit it again (its readiness poll fired, or it retries).
    Again(Box<dyn InRing>),
    /// Its result waits in the slot for the future ([`Handoff::Local`]).
    Kept(Box<dyn InRing>),
    /// Its result went to a shared completion or was discarded.
    Gone,
}

/// An op in a ring's table, type-erased.
pub(super) trait InRing: RingExec {
    /// What to submit now (the op's own entry, or a readiness poll).
    fn work(&mut self) -> Option<RingWork>;
    /// Handle a completion.
    fn on_complete(self: Box<Self>, res: i32, kernel: &dyn Kernel) -> Completed;
    /// Finish the op with `result` (it could not be submitted again, or
    /// it needs no kernel: leftovers, a cancelled deferred op); `Some`
    /// when the result waits in the slot for the future.
    fn finish_with(
        self: Box<Self>,
        result: SysResult<usize>,
        kernel: &dyn Kernel,
    ) -> Option<Box<dyn InRing>>;
    /// Whether the op's future is gone.
    fn is_abandoned(&self) -> bool;
    /// Whether the op is done and its result waits in the slot.
    fn is_finished(&self) -> bool;
    /// The fd the op takes bytes or connections from (`recv`, `accept`)
    /// while its data-moving entry (not a readiness poll) is queued.
    fn reader_fd(&self) -> Option<RawFd>;
    /// See [`OpCode::take_leftover`].
    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>>;
    /// Whether this is a storage op: one that waits on no peer (no
    /// [`OpCode::readiness`], so never a readiness poll either). What
    /// makes a ring device-bound.
    fn on_device(&self) -> bool;
    /// The future, polled on the ring's thread, waits with `waker`.
    fn register(&mut self, waker: &Waker);
    /// The future is gone: mark the op abandoned (it is not finished);
    /// `owed`, the late result its fd is owed, is held until the op's
    /// result is discarded (a shared completion holds its own).
    fn mark_abandoned(&mut self, owed: Option<LateResult>);
    /// The ring leaks the op (the kernel may still write into it): its fd
    /// is owed nothing, since no result will come.
    fn forget_owed(&mut self);
    /// The ring's thread's loop is leaving: an op that may wait on a peer
    /// (not a storage op, or a read at the file position), neither
    /// finished nor abandoned, is marked to be given back (see
    /// [`GIVEN_BACK`]); true when it was. The ring then cancels its entry.
    fn give_back_at_leave(&mut self) -> bool;
    /// Whether the op is marked to be given back.
    fn is_given_back(&self) -> bool;
    /// A finished op whose future is gone: discard its result. True when
    /// it was a reader (whose abandonment was counted).
    fn discard_result(self: Box<Self>, kernel: &dyn Kernel) -> bool;
    /// Deliver the result through `completion` from now on (the mailbox's
    /// `Request::Adopt`); a finished op delivers at once (`None`: the slot
    /// is free).
    fn adopt(
        self: Box<Self>,
        completion: Box<dyn Any + Send>,
        kernel: &dyn Kernel,
    ) -> Option<Box<dyn InRing>>;
    /// A finished op of a ring whose loop leaves or that closes, as a
    /// `(T, SysResult<usize>)` for its future to find in the mailbox.
    fn into_orphan(self: Box<Self>) -> Box<dyn Any + Send>;
    /// For the future that takes a finished op (it knows the type).
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// Where a ring op's result goes.
pub(super) enum Handoff<T: OpCode> {
    /// Into the op's own slot, for a future on the ring's thread; `result`
    /// is set once the op is done.
    Local {
        waker: Option<Waker>,
        abandoned: bool,
        result: Option<SysResult<usize>>,
    },
    /// Through a shared completion, for a future that could not reach the
    /// ring (see `mailbox.rs`).
    Shared(Arc<Completion<T>>),
}

/// The result of an op its ring gives back unstarted when its thread's
/// loop leaves (see `super::leave`): never a kernel's errno (those are
/// positive). The future submits the op again from where it is polled.
pub(crate) const GIVEN_BACK: Errno = Errno(-1);

/// An op on a ring, boxed in the ring's table so that its buffers and
/// scratch keep their address while the kernel may use them.
pub(super) struct Flight<T: OpCode> {
    pub(super) op: T,
    /// What the op's entry points into besides the op (iovecs, statx
    /// buffer, addresses): io_uring's business, not the descriptor's.
    pub(super) scratch: ops::Scratch,
    pub(super) handoff: Handoff<T>,
    pub(super) waiting_readiness: bool,
    /// The ring's loop left while the op waited on a peer: a cancelled
    /// or would-block result gives it back ([`GIVEN_BACK`]).
    pub(super) leaving: bool,
    /// The op has no readiness ([`InRing::on_device`]), decided once.
    pub(super) storage: bool,
    /// The op takes bytes or connections (`recv`, `accept`: readable
    /// readiness), decided once; see [`ABANDONED_READERS`].
    pub(super) reader: bool,
    /// The result of a ring that ran the op in place ([`RingExec`]); the
    /// kernel's ring leaves it `None` and the op decodes the CQE instead.
    pub(super) ran_in_place: Option<SysResult<usize>>,
    /// Abandoned while with the kernel, a reader's fd is owed its late
    /// result: dropped with the flight, after the discard.
    pub(super) owed: Option<LateResult>,
}

impl<T: OpCode> RingExec for Flight<T> {
    fn label(&self) -> &'static str {
        self.op.name()
    }

    fn execute(&mut self, kernel: &dyn Kernel) -> i32 {
        let result = self.op.run_entry(kernel);
        self.ran_in_place = Some(result);
        match result {
            Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
            Err(errno) => -errno.0,
        }
    }
}

impl<T: OpCode> Flight<T> {
    /// Hand the result to the future: into the slot (`Some`: keep the op
    /// there), or through the shared completion, or to
    /// [`OpCode::discard`] when the future is gone (an abandoned reader
    /// leaves [`ABANDONED_READERS`]).
    fn finish(
        mut self: Box<Self>,
        result: SysResult<usize>,
        kernel: &dyn Kernel,
    ) -> Option<Box<Self>> {
        let reader = self.reader;
        let abandoned = match &mut self.handoff {
            Handoff::Local {
                abandoned: false,
                waker,
                result: slot,
            } => {
                *slot = Some(result);
                if let Some(waker) = waker.take() {
                    waker.wake();
                }
                return Some(self);
            }
            Handoff::Local { .. } => {
                self.op.discard(result, kernel);
                true
            }
            Handoff::Shared(completion) => {
                let completion = Arc::clone(completion);
                let Flight { op, .. } = *self;
                completion.finish(op, result, kernel)
            }
        };
        if abandoned && reader {
            ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
        }
        None
    }

    /// The op and its result (the op is finished). Only the op moves out
    /// of the box (the whole flight is several times its size).
    #[allow(clippy::boxed_local)] // by box on purpose, see above
    pub(super) fn into_result(mut self: Box<Self>) -> (T, SysResult<usize>) {
        let result = match &mut self.handoff {
            Handoff::Local { result, .. } => result.take(),
            Handoff::Shared(_) => None,
        };
        let result = result.expect("a ring op taken before it finished");
        (self.op, result)
    }

    fn is_abandoned(&self) -> bool {
        match &self.handoff {
            Handoff::Local { abandoned, .. } => *abandoned,
            Handoff::Shared(completion) => completion.is_abandoned(),
        }
    }
}

impl<T: OpCode> InRing for Flight<T> {
    fn work(&mut self) -> Option<RingWork> {
        if self.waiting_readiness {
            let (fd, interest) = self.op.eagain_wait()?;
            return Some(RingWork::Poll { fd, interest });
        }
        let opcode = ops::opcode(&mut self.op)?;
        #[cfg(linux)]
        let sqe = ops::entry(&mut self.op, &mut self.scratch)?;
        let exec: *mut dyn RingExec = self as *mut Self;
        Some(RingWork::Op {
            opcode,
            #[cfg(linux)]
            sqe,
            exec,
        })
    }

    fn on_complete(mut self: Box<Self>, res: i32, kernel: &dyn Kernel) -> Completed {
        if self.waiting_readiness {
            let abandoned = Flight::is_abandoned(&self);
            self.waiting_readiness = false;
            // Leaving: readiness or its cancel, no new entry for the op.
            let given_back = self.leaving && (res >= 0 || res == -libc::ECANCELED);
            if abandoned || res < 0 || given_back {
                let result = if abandoned {
                    Err(Errno::ECANCELED)
                } else if given_back {
                    Err(GIVEN_BACK)
                } else {
                    Err(Errno(-res))
                };
                return self
                    .finish_with(result, kernel)
                    .map_or(Completed::Gone, Completed::Kept);
            }
            return Completed::Again(self);
        }
        let mut result = match self.ran_in_place.take() {
            Some(result) => result,
            None => ops::result(&mut self.op, &self.scratch, res, kernel),
        };
        // Cancelled as its loop left, or it would wait: it did nothing.
        if matches!(result, Err(Errno::ECANCELED | Errno::EAGAIN))
            && self.leaving
            && !Flight::is_abandoned(&self)
        {
            result = Err(GIVEN_BACK);
        }
        // (The abandoned check may lock a shared completion: only for a retry.)
        if result == Err(Errno::EAGAIN)
            && self.op.eagain_wait().is_some()
            && !Flight::is_abandoned(&self)
        {
            self.waiting_readiness = true;
            return Completed::Again(self);
        }
        // A read or write at an offset on a socket: given back to its
        // future, which submits it again as a stream op (`op::file`'s
        // `STREAMS`; io_uring already ignores the offset on pipes and
        // FIFOs) the way any new op goes: a read then takes what was kept
        // for the socket first and counts as a reader of it from there.
        if result == Err(Errno::ESPIPE) && self.op.drop_offset() && !Flight::is_abandoned(&self) {
            return self
                .finish_with(Err(GIVEN_BACK), kernel)
                .map_or(Completed::Gone, Completed::Kept);
        }
        self.finish_with(result, kernel)
            .map_or(Completed::Gone, Completed::Kept)
    }

    fn finish_with(
        self: Box<Self>,
        result: SysResult<usize>,
        kernel: &dyn Kernel,
    ) -> Option<Box<dyn InRing>> {
        self.finish(result, kernel)
            .map(|kept| kept as Box<dyn InRing>)
    }

    fn is_abandoned(&self) -> bool {
        Flight::is_abandoned(self)
    }

    fn give_back_at_leave(&mut self) -> bool {
        // A read at the file position waits on a pipe's or a tty's writer
        // as a recv waits on its peer (one of a file comes back anyway:
        // its cancel loses the race).
        let waits_on_peer =
            (!self.storage || self.reader) && !self.is_finished() && !Flight::is_abandoned(self);
        self.leaving |= waits_on_peer;
        waits_on_peer
    }

    fn is_given_back(&self) -> bool {
        self.leaving
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.handoff,
            Handoff::Local {
                result: Some(_),
                ..
            }
        )
    }

    fn reader_fd(&self) -> Option<RawFd> {
        if self.waiting_readiness || !self.reader || self.is_finished() {
            return None; // a poll moves no data
        }
        self.op.may_take_in_order()
    }

    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        self.op.take_leftover(kernel)
    }

    fn on_device(&self) -> bool {
        self.storage
    }

    fn register(&mut self, waker: &Waker) {
        if let Handoff::Local { waker: slot, .. } = &mut self.handoff {
            match slot {
                Some(old) if old.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    fn mark_abandoned(&mut self, owed: Option<LateResult>) {
        if let Handoff::Local {
            abandoned, waker, ..
        } = &mut self.handoff
        {
            *abandoned = true;
            *waker = None;
            self.owed = owed;
        }
    }

    fn forget_owed(&mut self) {
        self.owed = None;
    }

    fn discard_result(mut self: Box<Self>, kernel: &dyn Kernel) -> bool {
        let reader = self.reader;
        let owed = self.owed.take();
        let (op, result) = self.into_result();
        op.discard(result, kernel);
        // Kept: the fd is owed nothing more.
        drop(owed);
        reader
    }

    fn adopt(
        mut self: Box<Self>,
        completion: Box<dyn Any + Send>,
        kernel: &dyn Kernel,
    ) -> Option<Box<dyn InRing>> {
        let Ok(completion) = completion.downcast::<Arc<Completion<T>>>() else {
            unreachable!("a mailbox request of another op type");
        };
        let finished = match std::mem::replace(&mut self.handoff, Handoff::Shared(*completion)) {
            Handoff::Local { result, .. } => result,
            Handoff::Shared(_) => None,
        };
        match finished {
            Some(result) => self
                .finish(result, kernel)
                .map(|kept| kept as Box<dyn InRing>),
            None => Some(self),
        }
    }

    fn into_orphan(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.into_result())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
