//! Drivers: how ops run. The one place that chooses a backend.
//!
//! A driver takes an op descriptor (`crate::op`) and runs it with its own
//! mechanism; it delivers completion by waking the task that awaits the op.
//! One module per mechanism: [`pool`] (every op a blocking syscall on a
//! bounded worker pool), [`uring`] (io_uring) and [`readiness`] (a poller
//! for sockets, the pool for files; epoll or kqueue on the real kernel,
//! either semantics on the simulator). Before any of them sees a file read
//! or small buffered write, the `Op` tries it on the calling thread with
//! `RWF_NOWAIT` (`inline.rs`: page-cache hits complete with no handoff;
//! the attempt backs off per fd, so cold files pay nothing).
//!
//! Owns: the [`Op`] future (`op.rs`), the inline fast path (`inline.rs`), the current-driver context
//! ([`context`]), the scheduling/park seam the runtime implements
//! ([`sched`]), the op counters behind `Runtime::metrics` ([`metrics`]),
//! the [`Host`] a driver runs on, and [`select`], the one
//! place a [`Backend`] (or `IOKERNEL_BACKEND`) becomes a driver, for the
//! real host and the simulated one alike, with one [`BackendReport`].
//! May use: `crate::op`, `crate::buf`, `crate::sys`. May not touch: the
//! runtime, io/fs/net, the writer, the simulator's types (the simulator
//! provides a `Host` through the seam traits: `Kernel`, `RingSource`,
//! [`readiness::PollerSource`], `Offload`).

pub(crate) mod completion;
pub(crate) mod context;
mod inline;
pub(crate) use inline::set_tasks_waiting;
pub(crate) mod metrics;
mod op;
pub(crate) mod pool;
pub(crate) mod readiness;
pub(crate) mod sched;
pub(crate) mod uring;

pub use metrics::{LatencyHistogram, OpMetrics, RuntimeMetrics};
pub use op::Op;
pub(crate) use sched::{DriverWake, Park, Scheduler, ThreadScheduler};

use crate::op::OpCode;
use crate::sys::ring::{RingSource, StreamSink};
use crate::sys::{Kernel, Offload};
use readiness::PollerSource;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Which I/O mechanism a runtime uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The best this host offers: io_uring, then epoll/kqueue + pool, then
    /// the pool. `IOKERNEL_BACKEND` overrides this choice (and only this).
    #[default]
    Auto,
    /// io_uring (Linux 5.1+).
    IoUring,
    /// epoll for sockets + the pool for files (Linux).
    Epoll,
    /// kqueue for sockets + the pool for files (macOS/BSD).
    Kqueue,
    /// Every op a blocking syscall on the worker pool (everywhere).
    ThreadPool,
}

impl Backend {
    /// The name `IOKERNEL_BACKEND` and `iok` use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "uring",
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
            Backend::ThreadPool => "pool",
        }
    }

    /// Parse a name as `IOKERNEL_BACKEND` takes it.
    ///
    /// ```
    /// use iokernel::runtime::Backend;
    /// assert_eq!(Backend::parse("pool").unwrap(), Backend::ThreadPool);
    /// assert!(Backend::parse("uringg").is_err());
    /// ```
    pub fn parse(name: &str) -> io::Result<Backend> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "uring" | "io_uring" | "iouring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            "kqueue" => Ok(Backend::Kqueue),
            "pool" | "threadpool" | "thread_pool" => Ok(Backend::ThreadPool),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unknown I/O backend {other:?}: expected uring, epoll, kqueue, pool or auto"
                ),
            )),
        }
    }

    /// The backends a runtime can be forced to, in Auto's order of preference.
    pub const CONCRETE: [Backend; 4] = [
        Backend::IoUring,
        Backend::Epoll,
        Backend::Kqueue,
        Backend::ThreadPool,
    ];
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the runtime runs on the backend it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendReport {
    /// What was asked for (after `IOKERNEL_BACKEND`).
    pub requested: Backend,
    /// Where the request came from.
    pub requested_by: String,
    /// The backend in use.
    pub selected: Backend,
    /// Each backend tried before the selected one and why it was rejected.
    pub rejected: Vec<(Backend, String)>,
    /// Blocking-I/O worker threads.
    pub io_threads: usize,
    /// Ops the selected backend hands to the worker pool, and why; for
    /// io_uring the last note is the ring's setup flags (`ring setup: ...`).
    pub pool_fallbacks: Vec<String>,
}

impl fmt::Display for BackendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backend {} (requested {} by {}; {} io threads)",
            self.selected, self.requested, self.requested_by, self.io_threads
        )?;
        for (backend, why) in &self.rejected {
            write!(f, "; {backend} rejected: {why}")?;
        }
        for note in &self.pool_fallbacks {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

/// The backends this build can run on the real host, and why the others
/// cannot.
pub fn availability(backend: Backend) -> Result<(), String> {
    match backend {
        Backend::ThreadPool | Backend::Auto => Ok(()),
        Backend::IoUring => uring::availability(&uring::KernelRings).map(drop),
        Backend::Epoll | Backend::Kqueue => readiness::RealPollers.availability(backend),
    }
}

/// What drivers run on: the kernel, where io_uring rings come from, which
/// pollers readiness drivers can open, and how to start an offload pool.
/// The real host ([`Host::real`]) and the simulator each provide one;
/// [`select`] treats them alike.
pub(crate) struct Host {
    /// Blocking syscalls.
    pub(crate) kernel: Arc<dyn Kernel>,
    /// io_uring rings (the kernel's, or simulated ones).
    pub(crate) rings: Arc<dyn RingSource>,
    /// Pollers with epoll and/or kqueue semantics.
    pub(crate) pollers: Arc<dyn readiness::PollerSource>,
    /// Starts the offload pool a driver runs blocking ops on.
    pub(crate) make_offload: Box<dyn FnMut() -> io::Result<Arc<dyn Offload>>>,
    /// The backends `Backend::Auto` tries, in order.
    pub(crate) auto_order: &'static [Backend],
}

impl Host {
    /// The machine this process runs on; `make_offload` starts the
    /// blocking-I/O pool.
    pub(crate) fn real(
        make_offload: impl FnMut() -> io::Result<Arc<dyn Offload>> + 'static,
    ) -> Host {
        Host {
            kernel: Arc::new(crate::sys::real::RealKernel),
            rings: Arc::new(uring::KernelRings),
            pollers: Arc::new(readiness::RealPollers),
            make_offload: Box::new(make_offload),
            auto_order: &Backend::CONCRETE,
        }
    }
}

/// A runtime's driver.
#[derive(Clone)]
pub(crate) enum Driver {
    Pool(pool::PoolDriver),
    Uring(uring::UringDriver),
    Readiness(readiness::ReadinessDriver),
}

/// An op the driver is running.
pub(crate) enum InFlight<T: OpCode> {
    Pool(pool::Submission<T>),
    Uring(uring::Submission<T>),
    Readiness(readiness::ReadySubmission<T>),
}

impl Driver {
    /// Hand `op` to this driver; `waker` is the submitting task's (see
    /// [`InFlight::is_waiting`]).
    pub(crate) fn submit<T: OpCode>(&self, op: T, waker: &Waker) -> InFlight<T> {
        match self {
            Driver::Pool(pool) => InFlight::Pool(pool.submit(op)),
            Driver::Uring(uring) => match uring.submit(op, waker) {
                Ok(submission) => InFlight::Uring(submission),
                Err(op) => InFlight::Pool(uring.pool().submit(op)),
            },
            Driver::Readiness(readiness) => match readiness.submit(op) {
                Ok(submission) => InFlight::Readiness(submission),
                Err(op) => InFlight::Pool(readiness.pool().submit(op)),
            },
        }
    }

    /// Start a receive stream on `fd` (a connected stream socket of this
    /// driver's kernel) into `sink`, on this thread's io_uring ring; `None`
    /// on other backends or where the ring cannot run one (see
    /// `uring::UringDriver::start_stream`).
    pub(crate) fn start_stream(
        &self,
        fd: RawFd,
        sink: &Arc<dyn StreamSink>,
    ) -> Option<uring::StreamOnRing> {
        match self {
            Driver::Uring(uring) => uring.start_stream(fd, sink),
            Driver::Pool(_) | Driver::Readiness(_) => None,
        }
    }

    /// Whether this driver may run receive streams ([`Driver::start_stream`]).
    pub(crate) fn runs_streams(&self) -> bool {
        matches!(self, Driver::Uring(_))
    }

    /// Whether this driver runs every op on its pool (so a pool submission
    /// is no fallback).
    pub(crate) fn is_pool(&self) -> bool {
        matches!(self, Driver::Pool(_))
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        match self {
            Driver::Pool(pool) => pool.kernel(),
            Driver::Uring(uring) => uring.kernel(),
            Driver::Readiness(readiness) => readiness.kernel(),
        }
    }

    pub(crate) fn io_threads(&self) -> usize {
        match self {
            Driver::Pool(pool) => pool.threads(),
            Driver::Uring(uring) => uring.pool().threads(),
            Driver::Readiness(readiness) => readiness.pool().threads(),
        }
    }

    /// Drain and drop what this thread holds for the driver (its io_uring
    /// ring and the ring's eventfd), so every op comes back before the
    /// driver's kernel goes away (the end of a simulated run) and a dropped
    /// runtime leaves no fds behind on the thread that dropped it. Returns
    /// how many ops were still held after the drain (their buffers leaked,
    /// not freed); 0 is the rule.
    pub(crate) fn close_thread_state(&self) -> usize {
        match self {
            Driver::Uring(uring) => uring::close_thread_ring(uring.rings_id()),
            Driver::Pool(_) | Driver::Readiness(_) => 0,
        }
    }

    /// How the runtime's threads schedule and park with this driver.
    pub(crate) fn scheduler(&self) -> Arc<dyn Scheduler> {
        match self {
            Driver::Pool(_) => Arc::new(ThreadScheduler),
            Driver::Uring(uring) => Arc::new(uring::UringScheduler {
                rings_id: uring.rings_id(),
            }),
            Driver::Readiness(readiness) => readiness.scheduler(),
        }
    }
}

impl<T: OpCode> InFlight<T> {
    /// Whether the op runs on the worker pool.
    pub(crate) fn on_pool(&self) -> bool {
        matches!(self, InFlight::Pool(_))
    }

    /// Whether the op already waits with the submitting task's waker, so
    /// the task needs not poll it before it is woken (a ring op). A pool
    /// op is queued by its first poll and a readiness op makes its first
    /// attempt there.
    pub(crate) fn is_waiting(&self) -> bool {
        matches!(self, InFlight::Uring(_))
    }

    #[inline]
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        match self {
            InFlight::Pool(submission) => submission.poll(cx),
            InFlight::Uring(submission) => submission.poll(cx),
            InFlight::Readiness(submission) => submission.poll(cx),
        }
    }
}

/// A pool driver over a fresh offload pool; `purpose` names the pool in
/// the error when it cannot start.
fn pool_driver(host: &mut Host, purpose: &str) -> Result<pool::PoolDriver, String> {
    let offload = (host.make_offload)().map_err(|e| format!("cannot start the {purpose}: {e}"))?;
    Ok(pool::PoolDriver::new(Arc::clone(&host.kernel), offload))
}

/// Whether `backend` can run on `host`: `Ok` with the ops it hands to the
/// pool (and why), `Err` with why it cannot run.
fn host_availability(backend: Backend, host: &Host) -> Result<Vec<String>, String> {
    match backend {
        Backend::ThreadPool => Ok(Vec::new()),
        Backend::IoUring => uring::availability(&*host.rings),
        Backend::Epoll | Backend::Kqueue => host.pollers.availability(backend).map(|()| {
            vec![
                "file ops run on the pool".to_string(),
                "sendfile runs on the pool (it reads a file)".to_string(),
            ]
        }),
        Backend::Auto => Err("Auto is not a driver".to_string()),
    }
}

/// Build the driver for one available backend.
fn build(backend: Backend, host: &mut Host) -> Result<Driver, String> {
    match backend {
        Backend::ThreadPool => Ok(Driver::Pool(pool_driver(host, "worker pool")?)),
        Backend::IoUring => Ok(Driver::Uring(uring::UringDriver::new(
            pool_driver(host, "fallback pool")?,
            Arc::clone(&host.rings),
        )?)),
        Backend::Epoll | Backend::Kqueue => {
            let pool = pool_driver(host, "file-op pool")?;
            Ok(Driver::Readiness(host.pollers.driver(backend, pool)?))
        }
        Backend::Auto => Err("Auto is not a driver".to_string()),
    }
}

/// Resolve `requested` (with `env_override`, `IOKERNEL_BACKEND`, applied
/// to `Auto`), build the driver on `host` and say why, in the same words
/// for the real and the simulated host. `requested_by` names who asked
/// (the runtime builder, `SimOptions::driver`). Forcing a backend the host
/// or build lacks is an error naming the reason, never a silent switch.
pub(crate) fn select(
    requested: Backend,
    env_override: Option<&str>,
    requested_by: &str,
    mut host: Host,
) -> io::Result<(Driver, BackendReport)> {
    let (requested, requested_by) = match (requested, env_override) {
        (Backend::Auto, Some(name)) => (Backend::parse(name)?, "IOKERNEL_BACKEND".to_string()),
        (backend, _) => (backend, requested_by.to_string()),
    };
    let mut rejected = Vec::new();
    let candidates: &[Backend] = match requested {
        Backend::Auto => host.auto_order,
        ref one => std::slice::from_ref(one),
    };
    for &candidate in candidates {
        let built = host_availability(candidate, &host)
            .and_then(|notes| build(candidate, &mut host).map(|driver| (driver, notes)));
        match built {
            Ok((driver, pool_fallbacks)) => {
                let report = BackendReport {
                    requested,
                    requested_by,
                    selected: candidate,
                    rejected,
                    io_threads: driver.io_threads(),
                    pool_fallbacks,
                };
                return Ok((driver, report));
            }
            Err(why) if requested != Backend::Auto => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("I/O backend {candidate} was requested by {requested_by} but is unavailable: {why}"),
                ));
            }
            Err(why) => rejected.push((candidate, why)),
        }
    }
    Err(io::Error::other("no I/O backend is available"))
}
