//! The simulated machine's offload: the seam's [`Offload`] for a
//! simulated run. A job waits for the drawn latency of its syscall's class,
//! then completes when the runner asks ([`SimOffload::run_one_ready`]), in
//! seed order when [`SimOptions::reorder_completions`] is on.
//!
//! Owns: the queue of pending jobs and which one completes next. It never
//! touches file or socket state (the jobs do, through `SimKernel`) and
//! never decides when to run a job: that is the runner's scheduler
//! (`crate::sim`).
//!
//! [`SimOptions::reorder_completions`]: super::SimOptions::reorder_completions

use super::core::SimCore;
use super::options::OpClass;
use crate::sys::{Job, Offload, Saturated};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

/// The class whose latency a job of syscall `label` gets.
pub(crate) fn class_of(label: &str) -> OpClass {
    match label {
        "open" | "mkdir" => OpClass::Open,
        "read" | "pread" | "readv" | "preadv" => OpClass::Read,
        "write" | "pwrite" | "writev" | "pwritev" | "ftruncate" | "fallocate" => OpClass::Write,
        "fsync" | "fdatasync" => OpClass::Sync,
        "accept" | "connect" => OpClass::SocketSetup,
        "recv" => OpClass::SocketRead,
        "send" | "sendfile" => OpClass::SocketWrite,
        _ => OpClass::Metadata,
    }
}

/// The least virtual time an offloaded job takes, also with zero latency
/// configured: without it a socket op retrying `EAGAIN` on the pool spins
/// at one instant and a timer it races (a `timeout`, a peer's `sleep`)
/// never fires.
const MIN_JOB_LATENCY: Duration = Duration::from_nanos(100);

struct PendingJob {
    ready_at: Duration,
    seq: u64,
    label: &'static str,
    job: Job,
}

/// Offloaded jobs of a simulated run.
pub(crate) struct SimOffload {
    core: Arc<SimCore>,
    jobs: Mutex<Vec<PendingJob>>,
    next_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single-threaded use; a panic mid-update is already a failed run.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimOffload {
    pub(crate) fn new(core: Arc<SimCore>) -> SimOffload {
        SimOffload {
            core,
            jobs: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
        }
    }

    /// When the next job may complete: the completion time of a
    /// seed-chosen pending job when reordering is on (so every job due
    /// earlier becomes ready too and they race), else the earliest.
    pub(crate) fn next_ready_at(&self) -> Option<Duration> {
        let jobs = lock(&self.jobs);
        if jobs.is_empty() {
            return None;
        }
        if self.core.options().reorder_completions {
            let i = self.core.with_rng(|rng| rng.below(jobs.len() as u64)) as usize;
            return Some(jobs[i].ready_at);
        }
        jobs.iter().map(|j| j.ready_at).min()
    }

    /// Take one job whose latency has passed: the oldest, or a seed-chosen
    /// one when reordering is on.
    fn take_ready(&self) -> Option<PendingJob> {
        let now = self.core.now();
        let mut jobs = lock(&self.jobs);
        let ready: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].ready_at <= now)
            .collect();
        let chosen = self.core.pick_completion(&ready, |i| jobs[i].seq)?;
        Some(jobs.swap_remove(chosen))
    }

    /// Run one ready job; false when none is ready.
    pub(crate) fn run_one_ready(&self) -> bool {
        let Some(pending) = self.take_ready() else {
            return false;
        };
        self.core
            .trace(format!("complete {} #{}", pending.label, pending.seq).as_bytes());
        (pending.job)();
        true
    }

    /// Run every job still queued, oldest first (end of a run: accepted jobs
    /// always run, so abandoned opens get their fds closed).
    pub(crate) fn drain(&self) {
        loop {
            let next = {
                let mut jobs = lock(&self.jobs);
                let Some(i) = (0..jobs.len()).min_by_key(|&i| jobs[i].seq) else {
                    return;
                };
                jobs.swap_remove(i)
            };
            self.core.advance_to(next.ready_at);
            (next.job)();
        }
    }
}

impl Offload for SimOffload {
    fn try_offload(&self, label: &'static str, job: Job) -> Result<(), Saturated> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // At least MIN_JOB_LATENCY: a socket op that keeps finding EAGAIN
        // (and is resubmitted) must let virtual time, and so timers, move.
        let latency = self.core.draw_latency(class_of(label)).max(MIN_JOB_LATENCY);
        let ready_at = self.core.now() + latency;
        self.core.trace(format!("submit {label} #{seq}").as_bytes());
        lock(&self.jobs).push(PendingJob {
            ready_at,
            seq,
            label,
            job,
        });
        Ok(())
    }

    fn wake_when_free(&self, waker: &Waker) {
        waker.wake_by_ref();
    }

    fn threads(&self) -> usize {
        1
    }

    fn may_block(&self) -> bool {
        false
    }
}
