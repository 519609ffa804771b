//! The simulated machine's scheduler: offloaded jobs, virtual time and the
//! seed-driven choice of what runs next; and [`run`], which drives a future
//! on a single-threaded runtime over a [`SimKernel`].
//!
//! Owns: [`SimOffload`] (the seam's `Offload`: jobs wait for their drawn
//! latency, then complete in seed order), [`SimClock`] (virtual time) and
//! [`SimScheduler`] (task order, job completion between polls, readiness
//! polling under the readiness drivers, time advance when idle, stuck
//! detection). It never touches file or socket state; that is
//! `SimKernel`'s.
//!
//! Under [`SimDriver::EpollSemantics`] and [`SimDriver::KqueueSemantics`]
//! the run uses the readiness driver over a `SimPoller`: when every task
//! waits, the scheduler completes a ready job and polls the poller (waking
//! the tasks whose fds are ready); with neither, it releases events the
//! poller held back, and only then advances virtual time to the next job
//! or timer.
//! With none left, the run is stuck: every task waits for readiness that
//! nothing can bring, and the report lists what is still armed.

use super::core::SimCore;
use super::kernel::SimKernel;
use super::options::{OpClass, SimDriver, SimOptions};
use super::poller::{Semantics, SimPoller, SimPollers};
use super::ring::SimRings;
use crate::driver::pool::PoolDriver;
use crate::driver::readiness::ReadinessDriver;
use crate::driver::uring::{self, UringDriver};
use crate::driver::{Backend, BackendReport, Driver};
use crate::runtime::{RunEnd, Runtime, Scheduler, WorkerShared};
use crate::sys::{Clock, Job, Kernel, Offload, Saturated};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

/// The least virtual time an offloaded job takes, also with zero latency
/// configured: without it a socket op retrying `EAGAIN` on the pool spins
/// at one instant and a timer it races (a `timeout`, a peer's `sleep`)
/// never fires.
const MIN_JOB_LATENCY: Duration = Duration::from_nanos(100);

/// Probability that the scheduler completes a ready job between two task
/// polls (rather than only when every task waits).
const JOB_BETWEEN_POLLS_PROBABILITY: f64 = 0.25;

/// Probability that the scheduler polls the readiness driver's poller
/// between two task polls (readiness drivers only).
const POLL_BETWEEN_POLLS_PROBABILITY: f64 = 0.25;

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
    fn new(core: Arc<SimCore>) -> SimOffload {
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
    fn drain(&self) {
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

/// Virtual time of a simulated run.
pub(crate) struct SimClock {
    core: Arc<SimCore>,
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.core.now()
    }
}

/// The readiness driver of a run and the pollers it opened.
struct SimReadiness {
    driver: ReadinessDriver,
    pollers: Arc<SimPollers>,
}

/// Seed-driven scheduling of a simulated run.
pub(crate) struct SimScheduler {
    core: Arc<SimCore>,
    offload: Arc<SimOffload>,
    /// The simulated ring source when the io_uring driver runs the ops: the
    /// worker then parks in its ring through the driver's own hooks.
    rings_id: Option<u64>,
    readiness: Option<SimReadiness>,
}

impl SimScheduler {
    /// Poll the readiness driver (if any); true when tasks were woken.
    fn poll_readiness(&self) -> Result<bool, String> {
        let Some(readiness) = &self.readiness else {
            return Ok(false);
        };
        match readiness.driver.poll_now() {
            Ok(woken) => Ok(woken > 0),
            Err(errno) => Err(format!("simulated poller wait failed: {errno:?}")),
        }
    }

    /// Deliver the events a poller held back; true when tasks were woken.
    fn flush_readiness(&self) -> Result<bool, String> {
        match &self.readiness {
            Some(readiness) if readiness.pollers.flush_held() => self.poll_readiness(),
            _ => Ok(false),
        }
    }

    fn stuck_reason(&self) -> String {
        let base = "deadlock: every task waits, and no job or timer is pending";
        match &self.readiness {
            Some(readiness) => format!(
                "{base}; no readiness can come ({})",
                readiness.pollers.describe_armed()
            ),
            None => base.to_string(),
        }
    }

    fn step(&self) -> Result<(), String> {
        let max = self.core.options().max_steps;
        let mut steps = 0;
        self.core.count(|s| {
            s.steps += 1;
            steps = s.steps;
        });
        if steps > max {
            return Err(format!(
                "no completion after {max} scheduler steps (livelock?)"
            ));
        }
        Ok(())
    }
}

impl Scheduler for SimScheduler {
    fn pick_task(&self, runnable: usize) -> usize {
        if runnable <= 1 {
            return 0;
        }
        let index = self.core.with_rng(|rng| rng.below(runnable as u64)) as usize;
        self.core
            .trace(format!("poll {index}/{runnable}").as_bytes());
        index
    }

    fn between_polls(&self) {
        if let Some(rings_id) = self.rings_id {
            uring::between_polls(rings_id);
        }
        if self
            .core
            .with_rng(|rng| rng.chance(JOB_BETWEEN_POLLS_PROBABILITY))
        {
            self.offload.run_one_ready();
        }
        if self.readiness.is_some()
            && self
                .core
                .with_rng(|rng| rng.chance(POLL_BETWEEN_POLLS_PROBABILITY))
        {
            // An error here resurfaces when the worker is idle.
            let _ = self.poll_readiness();
        }
    }

    fn idle(&self, worker: &WorkerShared, timeout: Option<Duration>) -> Result<(), String> {
        self.step()?;
        if worker.take_news() {
            return Ok(());
        }
        // With a ring on this thread, the io_uring driver parks in it; the
        // simulated ring advances virtual time and runs pool jobs too.
        if let Some(parked) = self
            .rings_id
            .and_then(|rings_id| uring::park(rings_id, worker, timeout))
        {
            return parked;
        }
        // Both, every time: a job that keeps failing with EAGAIN (and is
        // resubmitted) must not starve the tasks waiting on readiness.
        let ran_job = self.offload.run_one_ready();
        if self.poll_readiness()? || ran_job || self.flush_readiness()? {
            return Ok(());
        }
        let now = self.core.now();
        let timer = timeout.map(|t| now + t);
        let next = match (self.offload.next_ready_at(), timer) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Err(self.stuck_reason()),
        };
        self.core.advance_to(next);
        self.core
            .trace(format!("advance {}ns", next.as_nanos()).as_bytes());
        Ok(())
    }

    fn enter(&self, worker: &Arc<WorkerShared>) {
        if let Some(readiness) = &self.readiness {
            readiness.driver.enter_loop(worker);
        }
    }

    fn leave(&self) {
        if let Some(rings_id) = self.rings_id {
            uring::leave(rings_id);
        }
        if let Some(readiness) = &self.readiness {
            readiness.driver.leave_loop();
        }
    }
}

/// Why a simulated run did not produce its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The options are inconsistent; the text names the bad setting.
    InvalidOptions(String),
    /// [`SimDriver::Ring`] was asked for but the simulated ring cannot be
    /// used (its setup fails, or it lacks a required opcode); the text
    /// says why.
    BackendUnavailable(String),
    /// No task, job or timer could make progress.
    Stuck {
        /// Seed of the run.
        seed: u64,
        /// What the scheduler saw.
        reason: String,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::InvalidOptions(why) => write!(f, "invalid simulator options: {why}"),
            SimError::BackendUnavailable(why) => f.write_str(why),
            SimError::Stuck { seed, reason } => {
                write!(f, "simulated run (seed {seed}) is stuck: {reason}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// The message is kept; the kind says what went wrong: bad options are
/// `InvalidInput`, a driver the simulator cannot provide is `Unsupported`,
/// a run that cannot make progress is `Other` (`Deadlock` needs Rust 1.83,
/// above the crate's MSRV of 1.80).
impl From<SimError> for std::io::Error {
    fn from(e: SimError) -> std::io::Error {
        let kind = match &e {
            SimError::InvalidOptions(_) => std::io::ErrorKind::InvalidInput,
            SimError::BackendUnavailable(_) => std::io::ErrorKind::Unsupported,
            SimError::Stuck { .. } => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// A simulated kernel for `options` (checked first).
///
/// ```
/// use iokernel::sim::{self, SimOptions};
/// let kernel = sim::new_kernel(SimOptions::new(42)).unwrap();
/// assert_eq!(kernel.core().options().seed, 42);
/// ```
pub fn new_kernel(options: SimOptions) -> Result<Arc<SimKernel>, SimError> {
    options.validate().map_err(SimError::InvalidOptions)?;
    Ok(Arc::new(SimKernel::new(Arc::new(SimCore::new(options)))))
}

/// The readiness driver over a simulated poller with `semantics`, and the
/// scheduler's handle on it.
fn readiness_driver(
    kernel: &Arc<SimKernel>,
    pool: PoolDriver,
    semantics: Semantics,
) -> (Driver, SimReadiness) {
    let pollers = Arc::new(SimPollers::default());
    let (poll_kernel, poll_list) = (Arc::clone(kernel), Arc::clone(&pollers));
    let driver = ReadinessDriver::new(pool, move || {
        Ok(SimPoller::new(
            Arc::clone(&poll_kernel),
            semantics,
            &poll_list,
        ))
    });
    let readiness = SimReadiness {
        driver: driver.clone(),
        pollers,
    };
    (Driver::Readiness(driver), readiness)
}

/// Run `future` to completion on a single-threaded runtime over `kernel`:
/// iokernel ops inside it (and in tasks it spawns) go to the simulated
/// kernel, timers run on virtual time, and every scheduling choice comes
/// from the kernel's seed. Ops run on the driver its options name
/// ([`SimOptions::driver`]): the pool, the io_uring driver over the
/// simulated ring, or the readiness driver over a simulated poller with
/// epoll or kqueue semantics. Tasks still pending
/// when `future` completes are dropped and their queued jobs run to the
/// end. Call it again with the same kernel to continue (for example after [`SimKernel::crash`]).
///
/// ```
/// use iokernel::buf::BufResult;
/// use iokernel::io::{self, OpenFlags};
/// use iokernel::sim::{self, SimOptions};
/// let kernel = sim::new_kernel(SimOptions::new(7)).unwrap();
/// let n = sim::run(&kernel, async {
///     let fd = io::open("/hello", OpenFlags::WRONLY | OpenFlags::CREAT, 0o644).await.unwrap();
///     let BufResult(n, _) = io::write(fd, b"hi").await;
///     io::close(fd).await.unwrap();
///     n.unwrap()
/// })
/// .unwrap();
/// assert_eq!(n, 2);
/// assert_eq!(kernel.read_file("/hello").unwrap(), b"hi");
/// ```
pub fn run<F: Future>(kernel: &Arc<SimKernel>, future: F) -> Result<F::Output, SimError> {
    let core = Arc::clone(kernel.core());
    let offload = Arc::new(SimOffload::new(Arc::clone(&core)));
    let (driver, report, readiness) = sim_driver(kernel, &offload)?;
    let rings_id = match &driver {
        Driver::Uring(uring) => Some(uring.rings_id()),
        _ => None,
    };
    let scheduler = Arc::new(SimScheduler {
        core: Arc::clone(&core),
        offload: Arc::clone(&offload),
        rings_id,
        readiness,
    });
    let clock = Arc::new(SimClock {
        core: Arc::clone(&core),
    });
    let runtime = Runtime::single_threaded(
        format!("sim-{}", core.options().seed),
        driver,
        clock,
        scheduler,
        report,
        Arc::clone(&offload) as Arc<dyn Offload>,
    );
    let mut end = runtime.run_main(future);
    drop(runtime);
    if let Some(rings_id) = rings_id {
        // Every op on this run's ring comes back (cancelled or done) before
        // the run ends, so no buffer or late fd outlives it.
        let stranded = uring::close_thread_ring(rings_id);
        if stranded > 0 && matches!(end, RunEnd::Done(_)) {
            end = RunEnd::Stuck(format!(
                "{stranded} ops were still on the simulated ring after it was drained"
            ));
        }
    }
    offload.drain();
    match end {
        RunEnd::Done(value) => Ok(value),
        RunEnd::Shutdown => unreachable!("a simulated run is never shut down from outside"),
        RunEnd::Stuck(reason) => Err(SimError::Stuck {
            seed: core.options().seed,
            reason,
        }),
    }
}

/// The driver [`SimOptions::driver`] asks for, and the report saying why.
fn sim_driver(
    kernel: &Arc<SimKernel>,
    offload: &Arc<SimOffload>,
) -> Result<(Driver, BackendReport, Option<SimReadiness>), SimError> {
    let seam_kernel: Arc<dyn Kernel> = Arc::clone(kernel) as Arc<dyn Kernel>;
    let pool = PoolDriver::new(seam_kernel, Arc::clone(offload) as Arc<dyn Offload>);
    let requested = kernel.core().options().driver;
    let requested_by = format!("SimOptions::driver ({})", requested.name());
    let pool_report = |requested: Backend, rejected: Vec<(Backend, String)>| BackendReport {
        requested,
        requested_by: requested_by.clone(),
        selected: Backend::Sim,
        rejected,
        io_threads: 1,
        pool_fallbacks: Vec::new(),
    };
    if requested == SimDriver::Pool {
        return Ok((
            Driver::Pool(pool),
            pool_report(Backend::Sim, Vec::new()),
            None,
        ));
    }
    if let Some(semantics) = Semantics::of(requested) {
        let (driver, readiness) = readiness_driver(kernel, pool, semantics);
        let mut report = pool_report(Backend::Sim, Vec::new());
        report.pool_fallbacks = vec![format!(
            "{}: sockets wait on the simulated poller, file ops run on the simulated offload",
            requested.name()
        )];
        return Ok((driver, report, Some(readiness)));
    }
    let rings = Arc::new(SimRings::new(kernel, offload));
    let notes = uring::availability(&*rings);
    match (notes, requested) {
        (Ok(pool_fallbacks), _) => {
            let driver = UringDriver::new(pool, rings).map_err(SimError::BackendUnavailable)?;
            let report = BackendReport {
                requested: if requested == SimDriver::Auto {
                    Backend::Auto
                } else {
                    Backend::IoUring
                },
                requested_by,
                selected: Backend::IoUring,
                rejected: Vec::new(),
                io_threads: 1,
                pool_fallbacks,
            };
            Ok((Driver::Uring(driver), report, None))
        }
        (Err(why), SimDriver::Auto) => Ok((
            Driver::Pool(pool),
            pool_report(Backend::Auto, vec![(Backend::IoUring, why)]),
            None,
        )),
        (Err(why), _) => Err(SimError::BackendUnavailable(format!(
            "I/O backend uring was requested by {requested_by} but is unavailable: {why}"
        ))),
    }
}
