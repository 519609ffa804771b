//! The sim runner: [`run`], which drives a future on a single-threaded
//! runtime over a [`SimKernel`], and the seed-driven choice of what runs
//! next.
//!
//! Owns: the simulated host handed to `crate::driver::select` (the kernel,
//! the simulated ring source, the simulated pollers, the offload) and
//! [`SimScheduler`], which decorates the selected driver's own scheduler
//! (seeded task order, job completion between polls, time advance when
//! idle, stuck detection). The machine it drives (`SimOffload`, the seam's
//! `Offload`; `SimClock`, virtual time; the kernel, pollers and ring) lives
//! in `crate::sys::sim`. It never touches file or socket state; that is
//! `SimKernel`'s. It chooses no driver itself: [`SimOptions::driver`] maps
//! to a `Backend` (pool, io_uring, auto, epoll, kqueue) and to the
//! semantics its pollers get, and `select` builds that backend on the
//! simulated host exactly as on the real one, with the same report.
//!
//! Under [`SimDriver::EpollSemantics`] and [`SimDriver::KqueueSemantics`]
//! the run uses the readiness driver over a `SimPoller`: when every task
//! waits, the driver looks at the poller (waking the tasks whose fds are
//! ready) and the scheduler completes a ready job; with neither, it
//! releases events the poller held back, and only then advances virtual
//! time to the next job or timer.
//! With none left, the run is stuck: every task waits for readiness that
//! nothing can bring, and the report lists what is still armed.

use crate::driver::pool::PoolDriver;
use crate::driver::readiness::{PollerSource, ReadinessDriver};
use crate::driver::{select, Backend, DriverWake, Host, Park, Scheduler};
use crate::runtime::{RunEnd, Runtime};
use crate::sys::sim::{
    Semantics, SimClock, SimCore, SimDriver, SimKernel, SimOffload, SimOptions, SimPoller,
    SimPollers, SimRings,
};
use crate::sys::{Kernel, Offload};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Probability that the scheduler completes a ready job between two task
/// polls (rather than only when every task waits).
const JOB_BETWEEN_POLLS_PROBABILITY: f64 = 0.25;

/// Probability that the scheduler polls the readiness driver's poller
/// between two task polls (readiness drivers only).
const POLL_BETWEEN_POLLS_PROBABILITY: f64 = 0.25;

/// The scheduler's stand-in for the worker while the driver's own idle
/// hook runs: a driver that has nothing of its own to wait in parks the
/// worker, which here only records that it did (the simulated run never
/// blocks a thread; [`SimScheduler::idle`] then completes a job or moves
/// virtual time). Everything else goes to the real worker.
struct SimPark<'a> {
    worker: &'a dyn Park,
    /// The driver parked the worker (it has no ring or poller yet).
    parked: AtomicBool,
    /// The driver waited in its own mechanism (ring or poller).
    waited_in_driver: AtomicBool,
}

impl Park for SimPark<'_> {
    fn park(&self, _timeout: Option<Duration>) {
        self.parked.store(true, Ordering::Relaxed);
    }

    fn take_news(&self) -> bool {
        self.worker.take_news()
    }

    fn has_driver_wake(&self) -> bool {
        self.worker.has_driver_wake()
    }

    fn set_driver_wake(&self, wake: DriverWake) {
        self.worker.set_driver_wake(wake);
    }

    fn begin_driver_park(&self) -> bool {
        self.waited_in_driver.store(true, Ordering::Relaxed);
        self.worker.begin_driver_park()
    }

    fn end_driver_park(&self) {
        self.worker.end_driver_park();
    }
}

/// Seed-driven scheduling of a simulated run. It *decorates* the selected
/// driver's own scheduler (`inner`): the driver keeps its hooks (io_uring
/// reaping and parking in the simulated ring, readiness polling and
/// parking in the simulated poller), and this adds what the simulated
/// machine needs on top: seeded task order, offloaded jobs completing
/// between polls, and, when the driver's wait did not move the run on,
/// completing a job, releasing held readiness events or advancing virtual
/// time (or declaring the run stuck).
pub(crate) struct SimScheduler {
    core: Arc<SimCore>,
    offload: Arc<SimOffload>,
    /// The driver's scheduler.
    inner: Arc<dyn Scheduler>,
    /// Whether a wait inside the driver moves the run on by itself: true
    /// for the simulated ring (its wait completes entries and jobs or
    /// advances virtual time); a simulated poller's wait only polls.
    driver_wait_advances: bool,
    /// The simulated pollers, when the driver is a readiness driver.
    pollers: Option<Arc<SimPollers>>,
}

impl SimScheduler {
    /// Deliver the events a poller held back; true when tasks were woken.
    fn flush_readiness(&self) -> Result<bool, String> {
        match &self.pollers {
            Some(pollers) if pollers.flush_held() => Ok(self.inner.poll_now()? > 0),
            _ => Ok(false),
        }
    }

    fn stuck_reason(&self) -> String {
        let mut reason = "deadlock: every task waits, and no job or timer is pending".to_string();
        let gated = self.offload.describe_gated();
        if !gated.is_empty() {
            reason += &format!("; pool jobs wait for fds no job will make ready ({gated})");
        }
        if let Some(pollers) = &self.pollers {
            reason += &format!("; no readiness can come ({})", pollers.describe_armed());
        }
        reason
    }

    /// Count one run-loop turn; past `max_steps`, the run is a livelock.
    /// Counted every turn, not only when idle: a run whose tasks keep
    /// waking each other (or themselves) never goes idle and would
    /// otherwise spin forever at one instant of virtual time.
    fn step(&self) -> Result<(), String> {
        let max = self.core.options().max_steps;
        let mut steps = 0;
        self.core.count(|s| {
            s.steps += 1;
            steps = s.steps;
        });
        if steps > max {
            return Err(format!(
                "livelock: the run loop turned {max} times (SimOptions::max_steps) without \
                 finishing; virtual time is {:?}",
                self.core.now()
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

    fn new_turn(&self) -> Result<(), String> {
        self.inner.new_turn()?;
        self.step()
    }

    fn between_polls(&self) {
        self.inner.between_polls();
        if self
            .core
            .with_rng(|rng| rng.chance(JOB_BETWEEN_POLLS_PROBABILITY))
        {
            self.offload.run_one_ready();
        }
        if self.pollers.is_some()
            && self
                .core
                .with_rng(|rng| rng.chance(POLL_BETWEEN_POLLS_PROBABILITY))
        {
            // An error here resurfaces when the worker is idle.
            let _ = self.inner.poll_now();
        }
    }

    fn idle(&self, worker: &dyn Park, timeout: Option<Duration>) -> Result<(), String> {
        if worker.take_news() {
            return Ok(());
        }
        // The driver waits its own way first: in the simulated ring (which
        // runs entries and jobs, or advances virtual time), or with one
        // look at the simulated poller (which never blocks).
        let park = SimPark {
            worker,
            parked: AtomicBool::new(false),
            waited_in_driver: AtomicBool::new(false),
        };
        self.inner.idle(&park, timeout)?;
        if self.driver_wait_advances && park.waited_in_driver.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Both, every time: a job that keeps failing with EAGAIN (and is
        // resubmitted) must not starve the tasks waiting on readiness.
        let ran_job = self.offload.run_one_ready();
        if worker.take_news() || ran_job || self.flush_readiness()? {
            return Ok(());
        }
        let now = self.core.now();
        let timer = timeout.map(|t| now.saturating_add(t));
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

    fn poll_now(&self) -> Result<usize, String> {
        self.inner.poll_now()
    }

    fn enter(&self, worker: &Arc<dyn Park>) {
        self.inner.enter(worker);
    }

    fn leave(&self) {
        self.inner.leave();
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

/// The simulated host's pollers: the semantics `SimOptions::driver`
/// chose (epoll or kqueue), or none.
struct SimPollerSource {
    kernel: Arc<SimKernel>,
    /// The backend whose semantics the simulated pollers have.
    offered: Option<(Backend, Semantics)>,
    pollers: Arc<SimPollers>,
    /// `SimOptions::driver`, for the reason a poller is missing.
    driver: SimDriver,
}

impl PollerSource for SimPollerSource {
    fn availability(&self, backend: Backend) -> Result<(), String> {
        match self.offered {
            Some((offered, _)) if offered == backend => Ok(()),
            _ => Err(format!(
                "the simulated host has no {backend} poller (SimOptions::driver is {})",
                self.driver.name()
            )),
        }
    }

    fn driver(&self, backend: Backend, pool: PoolDriver) -> Result<ReadinessDriver, String> {
        self.availability(backend)?;
        let Some((_, semantics)) = self.offered else {
            return Err(format!("the simulated host has no {backend} poller"));
        };
        let (kernel, pollers) = (Arc::clone(&self.kernel), Arc::clone(&self.pollers));
        Ok(ReadinessDriver::new(pool, move || {
            Ok(SimPoller::new(Arc::clone(&kernel), semantics, &pollers))
        }))
    }
}

/// The backend `SimOptions::driver` asks for, and the semantics the
/// simulated pollers get (readiness drivers only).
fn backend_of(driver: SimDriver) -> (Backend, Option<Semantics>) {
    match driver {
        SimDriver::Pool => (Backend::ThreadPool, None),
        SimDriver::Ring => (Backend::IoUring, None),
        SimDriver::Auto => (Backend::Auto, None),
        SimDriver::EpollSemantics => (Backend::Epoll, Semantics::of(driver)),
        SimDriver::KqueueSemantics => (Backend::Kqueue, Semantics::of(driver)),
    }
}

/// The backends `Backend::Auto` tries on the simulated host: the simulated
/// ring, then the pool (its pollers exist only when asked for by name).
const SIM_AUTO_ORDER: [Backend; 2] = [Backend::IoUring, Backend::ThreadPool];

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
    let offload = Arc::new(SimOffload::new(kernel));
    let sim_driver = core.options().driver;
    let (requested, semantics) = backend_of(sim_driver);
    let pollers = Arc::new(SimPollers::default());
    let host_offload = Arc::clone(&offload);
    let host = Host {
        kernel: Arc::clone(kernel) as Arc<dyn Kernel>,
        rings: Arc::new(SimRings::new(kernel, &offload)),
        pollers: Arc::new(SimPollerSource {
            kernel: Arc::clone(kernel),
            offered: semantics.map(|semantics| (requested, semantics)),
            pollers: Arc::clone(&pollers),
            driver: sim_driver,
        }),
        make_offload: Box::new(move || Ok(Arc::clone(&host_offload) as Arc<dyn Offload>)),
        auto_order: &SIM_AUTO_ORDER,
    };
    let requested_by = format!("SimOptions::driver ({})", sim_driver.name());
    // IOKERNEL_BACKEND never applies: a run depends on its options only.
    let (driver, report) = select(requested, None, &requested_by, host)
        .map_err(|e| SimError::BackendUnavailable(e.to_string()))?;
    let scheduler = Arc::new(SimScheduler {
        core: Arc::clone(&core),
        offload: Arc::clone(&offload),
        inner: driver.scheduler(),
        driver_wait_advances: report.selected == Backend::IoUring,
        pollers: semantics.map(|_| pollers),
    });
    let clock = Arc::new(SimClock {
        core: Arc::clone(&core),
    });
    let closing = driver.clone();
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
    // Every op on this run's ring comes back (cancelled or done) before
    // the run ends, so no buffer or late fd outlives it.
    let stranded = closing.close_thread_state();
    if stranded > 0 && matches!(end, RunEnd::Done(_)) {
        end = RunEnd::Stuck(format!(
            "{stranded} ops were still on the simulated ring after it was drained"
        ));
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
