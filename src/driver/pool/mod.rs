//! The thread-pool driver: every op is a blocking syscall on the bounded
//! worker pool behind the seam's [`Offload`].
//!
//! Submission moves the op into a job; the job runs the syscall on a pool
//! thread, stores the op (with its buffer) and the result in a shared
//! [`Completion`] and wakes the task's waker, which reschedules the task on
//! the runtime worker that owns it (no polling, no sleeps). A full pool is
//! backpressure, not an error: the op keeps its job and waits for a free
//! queue slot.
//!
//! On an offload that may not block (the simulator's), a socket op's job
//! makes one non-blocking attempt; an `EAGAIN` comes back to the future,
//! which yields and submits the op again, so the peer task gets to run.
//! The new attempt is gated ([`Offload::try_offload_gated`]): the offload
//! holds it until the fd is ready, the op is abandoned, or a cancelled op
//! left bytes or a connection on the fd for it, so it is not retried at
//! the same instant over and over while the event that makes progress (a
//! peer's send, a timer) waits behind it.
//! On the real pool a socket op waits for readiness on its thread, but
//! when a wait slice ends with the fd still not ready while other jobs
//! wait for a thread, it gives the thread up the same way (an `EAGAIN`
//! back to the future, submitted again behind them): otherwise ops
//! waiting on each other's peers (an echo server's write and read, with
//! the client's write queued) hold every thread and never finish.
//!
//! Cancellation: dropping the future of a running op marks the completion
//! abandoned. A socket op checks that before each attempt (so after each
//! readiness wait, at most `ABANDON_CHECK_MS` apart) and then stops with
//! `ECANCELED` without calling the syscall. An attempt already under way
//! finishes (the buffer stays alive until then) and hands the late result
//! to [`OpCode::discard`], which closes an fd `open` produced and keeps
//! bytes a `recv` or a connection an `accept` got for the next op on that
//! socket. A job that never reached the queue is simply dropped: the
//! kernel never saw its buffer.

use super::completion::Completion;
use crate::op::{never_started_once_abandoned, run_until_done_or_give_way, OpCode};
use crate::sys::{leftover, Errno, Gate, Interest, Kernel, Offload, QueueProbe, Saturated};
use std::os::fd::RawFd;
// std's Arc: `Arc<dyn Kernel>` needs unsized coercion, which loom's lacks.
use std::sync::Arc;
use std::task::{Context, Poll};

/// Handle to the shared pool used by every runtime worker.
#[derive(Clone)]
pub(crate) struct PoolDriver {
    kernel: Arc<dyn Kernel>,
    offload: Arc<dyn Offload>,
    queue_probe: Option<QueueProbe>,
}

impl PoolDriver {
    pub(crate) fn new(kernel: Arc<dyn Kernel>, offload: Arc<dyn Offload>) -> PoolDriver {
        let queue_probe = offload.queue_probe();
        PoolDriver {
            kernel,
            offload,
            queue_probe,
        }
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        &self.kernel
    }

    pub(crate) fn threads(&self) -> usize {
        self.offload.threads()
    }

    pub(crate) fn submit<T: OpCode>(&self, op: T) -> Submission<T> {
        let label = op.name();
        let may_block = self.offload.may_block();
        let (completion, job) = make_job(op, &self.kernel, may_block, self.queue_probe.as_ref());
        Submission {
            offload: Arc::clone(&self.offload),
            completion,
            queued: Some(job),
            gate: None,
            label,
            kernel: Arc::clone(&self.kernel),
        }
    }
}

/// The job that runs `op` and the completion it reports to (see the
/// module docs for how socket ops wait). With `may_block` (the offload's)
/// a socket op waits for readiness on its thread and gives the thread up
/// when `queue_probe` says jobs wait for one; else it makes one attempt.
fn make_job<T: OpCode>(
    op: T,
    kernel: &Arc<dyn Kernel>,
    may_block: bool,
    queue_probe: Option<&QueueProbe>,
) -> (Arc<Completion<T>>, crate::sys::Job) {
    let completion = Completion::new(op.takes_in_order());
    let job_completion = Arc::clone(&completion);
    let kernel = Arc::clone(kernel);
    // Only an op that can wait for readiness asks the probe: socket ops,
    // and reads and writes (which may be handed a stream, at an offset
    // too); other file ops (sync, stat, open, ...) take no reference.
    let queue_probe = op.eagain_wait().and(queue_probe).cloned();
    let job = Box::new(move || {
        let mut op = op;
        let result = if may_block {
            let abandoned = || job_completion.is_abandoned();
            let give_way = || {
                queue_probe
                    .as_ref()
                    .is_some_and(|jobs_waiting| jobs_waiting())
            };
            run_until_done_or_give_way(&mut op, &*kernel, &abandoned, &give_way)
        } else if never_started_once_abandoned(&op) && job_completion.is_abandoned() {
            // Abandoned before the job ran: never start the socket syscall
            // (or a read at the file position, which takes bytes in order).
            Err(Errno::ECANCELED)
        } else {
            op.run_blocking(&*kernel)
        };
        job_completion.finish(op, result, &*kernel);
    });
    (completion, job)
}

/// The gate of the next attempt of a socket op that found `fd` not ready
/// for `interest`: open once the fd is ready (the offload checks that),
/// the op is abandoned, or, for a read, a cancelled op's leftovers on the
/// fd can finish it.
fn retry_gate<T: OpCode>(
    fd: RawFd,
    interest: Interest,
    completion: &Arc<Completion<T>>,
    kernel: &Arc<dyn Kernel>,
) -> Gate {
    let (completion, kernel) = (Arc::clone(completion), Arc::clone(kernel));
    let open_anyway = move || {
        completion.is_abandoned()
            || (interest == Interest::Readable && leftover::has_any(&*kernel, fd))
    };
    Gate {
        fd,
        interest,
        open_anyway: Arc::new(open_anyway),
    }
}

/// An op handed to the pool (or waiting for room in its queue).
pub(crate) struct Submission<T: OpCode> {
    offload: Arc<dyn Offload>,
    completion: Arc<Completion<T>>,
    queued: Option<crate::sys::Job>,
    /// What the queued job waits for: the retry of a socket op after
    /// `EAGAIN` waits for its fd.
    gate: Option<Gate>,
    label: &'static str,
    kernel: Arc<dyn Kernel>,
}

impl<T: OpCode> Submission<T> {
    /// Hand `job` to the offload, behind its gate if it has one.
    fn offer(&self, job: crate::sys::Job) -> Result<(), Saturated> {
        match &self.gate {
            Some(gate) => self
                .offload
                .try_offload_gated(self.label, gate.clone(), job),
            None => self.offload.try_offload(self.label, job),
        }
    }

    /// Queue the job if it is not queued yet; false when the pool is full
    /// (the waker is then registered for a free slot).
    fn enqueue(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(job) = self.queued.take() else {
            return true;
        };
        let job = match self.offer(job) {
            Ok(()) => return true,
            Err(Saturated(job)) => job,
        };
        super::metrics::note_pool_saturated();
        self.offload.wake_when_free(cx.waker());
        // A slot may have freed between the attempt and the registration.
        match self.offer(job) {
            Ok(()) => true,
            Err(Saturated(job)) => {
                self.queued = Some(job);
                false
            }
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        if !self.enqueue(cx) {
            return Poll::Pending;
        }
        match std::task::ready!(self.completion.poll_finished(cx)) {
            (op, Err(Errno::EAGAIN)) if op.eagain_wait().is_some() => {
                // A single non-blocking attempt found the socket not ready,
                // or a waiting attempt gave its thread up: submit the op
                // again (behind the jobs queued meanwhile, and once its fd
                // is ready) after letting other tasks run.
                // On a pool that may block, the job waits for readiness
                // itself: no gate (the offload would ignore it).
                let may_block = self.offload.may_block();
                let gate = (!may_block).then(|| op.eagain_wait()).flatten();
                let probe = may_block.then(|| self.offload.queue_probe()).flatten();
                let (completion, job) = make_job(op, &self.kernel, may_block, probe.as_ref());
                self.gate =
                    gate.map(|(fd, interest)| retry_gate(fd, interest, &completion, &self.kernel));
                self.completion = completion;
                self.queued = Some(job);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            (op, result) => Poll::Ready(op.complete(result)),
        }
    }
}

impl<T: OpCode> Drop for Submission<T> {
    fn drop(&mut self) {
        if self.queued.take().is_some() {
            return; // never queued: the kernel never saw the buffer
        }
        self.completion.abandon(&*self.kernel);
    }
}
