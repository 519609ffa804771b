//! Drivers: how ops run. The one place that chooses a backend.
//!
//! A driver takes an op descriptor (`crate::op`) and runs it with its own
//! mechanism; it delivers completion by waking the task that awaits the op.
//! One module per mechanism: [`pool`] (every op a blocking syscall on a
//! bounded worker pool), [`uring`] (io_uring) and [`readiness`] (a poller
//! for sockets, the pool for files; epoll or kqueue on the real kernel,
//! either semantics on the simulator). Selection ([`select`]) is the only code that looks
//! at [`Backend`] or `IOKERNEL_BACKEND`.

pub(crate) mod completion;
pub(crate) mod context;
mod op;
pub(crate) mod pool;
pub(crate) mod readiness;
pub(crate) mod sched;
pub(crate) mod uring;

pub use op::Op;
pub(crate) use sched::{DriverWake, Park, Scheduler, ThreadScheduler};

use crate::op::OpCode;
use crate::sys::ring::RingSource;
use crate::sys::{Kernel, Offload};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

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
    /// The deterministic simulated kernel; runs through `iokernel::sim::run`.
    Sim,
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
            Backend::Sim => "sim",
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

/// The backends this build can run, and why the others cannot.
pub fn availability(backend: Backend) -> Result<(), String> {
    match backend {
        Backend::ThreadPool | Backend::Auto => Ok(()),
        Backend::IoUring => uring::availability(&uring::KernelRings).map(drop),
        Backend::Epoll => readiness::epoll_availability(),
        #[cfg(any(
            target_os = "macos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        ))]
        Backend::Kqueue => readiness::kqueue_availability(),
        Backend::Sim => Err(
            "the simulated kernel runs through iokernel::sim::run, not a runtime builder".into(),
        ),
        #[cfg(not(any(
            target_os = "macos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        )))]
        Backend::Kqueue => Err(format!(
            "not available on this OS: kqueue exists only on macOS and the BSDs, not on {}",
            std::env::consts::OS
        )),
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
    pub(crate) fn submit<T: OpCode>(&self, op: T) -> InFlight<T> {
        match self {
            Driver::Pool(pool) => InFlight::Pool(pool.submit(op)),
            Driver::Uring(uring) => match uring.submit(op) {
                Ok(submission) => InFlight::Uring(submission),
                Err(op) => InFlight::Pool(uring.pool().submit(op)),
            },
            Driver::Readiness(readiness) => match readiness.submit(op) {
                Ok(submission) => InFlight::Readiness(submission),
                Err(op) => InFlight::Pool(readiness.pool().submit(op)),
            },
        }
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
fn pool_driver(
    kernel: &Arc<dyn Kernel>,
    make_offload: &mut dyn FnMut() -> io::Result<Arc<dyn Offload>>,
    purpose: &str,
) -> Result<pool::PoolDriver, String> {
    let offload = make_offload().map_err(|e| format!("cannot start the {purpose}: {e}"))?;
    Ok(pool::PoolDriver::new(Arc::clone(kernel), offload))
}

/// Build the driver for one available backend.
fn build(
    backend: Backend,
    kernel: &Arc<dyn Kernel>,
    rings: &Arc<dyn RingSource>,
    make_offload: &mut dyn FnMut() -> io::Result<Arc<dyn Offload>>,
) -> Result<Driver, String> {
    match backend {
        Backend::ThreadPool => Ok(Driver::Pool(pool_driver(
            kernel,
            make_offload,
            "worker pool",
        )?)),
        Backend::IoUring => Ok(Driver::Uring(uring::UringDriver::new(
            pool_driver(kernel, make_offload, "fallback pool")?,
            Arc::clone(rings),
        )?)),
        Backend::Epoll => Ok(Driver::Readiness(readiness::ReadinessDriver::new(
            pool_driver(kernel, make_offload, "file-op pool")?,
            crate::sys::real::epoll::Epoll::new,
        ))),
        #[cfg(any(
            target_os = "macos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        ))]
        Backend::Kqueue => Ok(Driver::Readiness(readiness::ReadinessDriver::new(
            pool_driver(kernel, make_offload, "file-op pool")?,
            crate::sys::real::kqueue::Kqueue::new,
        ))),
        other => Err(format!("no driver for {other} in this build")),
    }
}

/// Resolve `requested` (with `IOKERNEL_BACKEND` applied to `Auto`), build
/// the driver and say why. io_uring rings come from `rings` (the kernel's,
/// or in tests one that refuses setup). Forcing a backend this host or
/// build lacks is an error naming the reason, never a silent switch.
pub(crate) fn select(
    requested: Backend,
    env_override: Option<&str>,
    kernel: Arc<dyn Kernel>,
    rings: Arc<dyn RingSource>,
    mut make_offload: impl FnMut() -> io::Result<Arc<dyn Offload>>,
) -> io::Result<(Driver, BackendReport)> {
    let (requested, requested_by) = match (requested, env_override) {
        (Backend::Auto, Some(name)) => (Backend::parse(name)?, "IOKERNEL_BACKEND".to_string()),
        (backend, _) => (backend, "the runtime builder".to_string()),
    };
    let mut rejected = Vec::new();
    let candidates: &[Backend] = match requested {
        Backend::Auto => &Backend::CONCRETE,
        ref one => std::slice::from_ref(one),
    };
    for &candidate in candidates {
        let available = match candidate {
            Backend::IoUring => uring::availability(&*rings).map(drop),
            other => availability(other),
        };
        let built = match available {
            Ok(()) => build(candidate, &kernel, &rings, &mut make_offload),
            Err(why) => Err(why),
        };
        match built {
            Ok(driver) => {
                let pool_fallbacks = match candidate {
                    Backend::IoUring => uring::availability(&*rings).unwrap_or_default(),
                    Backend::Epoll | Backend::Kqueue => vec![
                        "file ops run on the pool".to_string(),
                        "sendfile runs on the pool (it reads a file)".to_string(),
                    ],
                    _ => Vec::new(),
                };
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
