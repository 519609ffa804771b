//! The simulated machine's offload: the seam's [`Offload`] for a
//! simulated run. A job waits for the drawn latency of its syscall's class,
//! then completes when the runner asks ([`SimOffload::run_one_ready`]), in
//! seed order when [`SimOptions::reorder_completions`] is on.
//!
//! A gated job ([`Offload::try_offload_gated`]: the next attempt of a
//! socket op that found its fd not ready) is held aside until its gate
//! opens (the fd is ready, checked without a syscall, or the op was
//! abandoned) and only then counts as pending: retrying it earlier would
//! only find `EAGAIN` again. So when nothing but gated jobs is left the
//! runner sees no job due and moves virtual time to the next timer, or,
//! with no timer either, reports the run stuck
//! ([`SimOffload::describe_gated`] says what the jobs wait for).
//!
//! Owns: the queue of pending jobs and which one completes next. It never
//! touches file or socket state (the jobs do, through `SimKernel`) and
//! never decides when to run a job: that is the runner's scheduler
//! (`crate::sim`).
//!
//! [`SimOptions::reorder_completions`]: super::SimOptions::reorder_completions

use super::core::SimCore;
use super::kernel::SimKernel;
use super::options::OpClass;
use crate::sys::{Gate, Job, Offload, Saturated};
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
/// configured: a socket op whose gate is open but whose attempt still
/// says `EAGAIN` (an injected fault on a ready socket) is retried, and
/// each retry must let virtual time, and so the timers it races, move.
const MIN_JOB_LATENCY: Duration = Duration::from_nanos(100);

struct PendingJob {
    ready_at: Duration,
    seq: u64,
    label: &'static str,
    /// What the job waits for before it may run (`None`: nothing).
    gate: Option<Gate>,
    job: Job,
}

/// Offloaded jobs of a simulated run.
pub(crate) struct SimOffload {
    core: Arc<SimCore>,
    /// Asked whether a gated job's fd is ready.
    kernel: Arc<SimKernel>,
    jobs: Mutex<Vec<PendingJob>>,
    next_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single-threaded use; a panic mid-update is already a failed run.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimOffload {
    pub(crate) fn new(kernel: &Arc<SimKernel>) -> SimOffload {
        SimOffload {
            core: Arc::clone(kernel.core()),
            kernel: Arc::clone(kernel),
            jobs: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(0),
        }
    }

    /// Whether `job` may run once its latency has passed: ungated, or its
    /// gate is open.
    fn gate_open(&self, job: &PendingJob) -> bool {
        job.gate.as_ref().map_or(true, |gate| {
            (gate.open_anyway)() || self.kernel.is_ready(gate.fd, gate.interest)
        })
    }

    /// When the next job may complete: the completion time of a
    /// seed-chosen pending job when reordering is on (so every job due
    /// earlier becomes ready too and they race), else the earliest. Jobs
    /// whose gate is closed do not count: only another job can open it.
    pub(crate) fn next_ready_at(&self) -> Option<Duration> {
        let jobs = lock(&self.jobs);
        let open: Vec<Duration> = jobs
            .iter()
            .filter(|job| self.gate_open(job))
            .map(|job| job.ready_at)
            .collect();
        if open.is_empty() {
            return None;
        }
        if self.core.options().reorder_completions {
            let i = self.core.with_rng(|rng| rng.below(open.len() as u64)) as usize;
            return Some(open[i]);
        }
        open.into_iter().min()
    }

    /// What the jobs whose gate is closed wait for, for a stuck report
    /// (empty when there are none).
    pub(crate) fn describe_gated(&self) -> String {
        let jobs = lock(&self.jobs);
        let waiting: Vec<String> = jobs
            .iter()
            .filter(|job| !self.gate_open(job))
            .filter_map(|job| {
                let gate = job.gate.as_ref()?;
                Some(format!(
                    "{} #{} on fd {} {:?}",
                    job.label, job.seq, gate.fd, gate.interest
                ))
            })
            .collect();
        waiting.join(", ")
    }

    /// Take one job whose latency has passed and whose gate is open: the
    /// oldest, or a seed-chosen one when reordering is on.
    fn take_ready(&self) -> Option<PendingJob> {
        let now = self.core.now();
        let mut jobs = lock(&self.jobs);
        let ready: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].ready_at <= now && self.gate_open(&jobs[i]))
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

    /// Run every job still queued, oldest first, gated or not (end of a
    /// run: accepted jobs always run, so abandoned opens get their fds
    /// closed; an abandoned socket op stops without its syscall).
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

impl SimOffload {
    fn push(&self, label: &'static str, gate: Option<Gate>, job: Job) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // At least MIN_JOB_LATENCY: a socket op that keeps finding EAGAIN
        // (and is resubmitted) must let virtual time, and so timers, move.
        let latency = self.core.draw_latency(class_of(label)).max(MIN_JOB_LATENCY);
        let ready_at = self.core.now() + latency;
        match &gate {
            None => self.core.trace(format!("submit {label} #{seq}").as_bytes()),
            Some(gate) => self.core.trace(
                format!(
                    "submit {label} #{seq} when fd {} {:?}",
                    gate.fd, gate.interest
                )
                .as_bytes(),
            ),
        }
        lock(&self.jobs).push(PendingJob {
            ready_at,
            seq,
            label,
            gate,
            job,
        });
    }
}

impl Offload for SimOffload {
    fn try_offload(&self, label: &'static str, job: Job) -> Result<(), Saturated> {
        self.push(label, None, job);
        Ok(())
    }

    fn try_offload_gated(
        &self,
        label: &'static str,
        gate: Gate,
        job: Job,
    ) -> Result<(), Saturated> {
        self.push(label, Some(gate), job);
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
