//! The runtime: worker threads, spawning, `block_on`, timers and pipelines.
//!
//! Thread-per-core: `compute_threads` workers each run their own task table;
//! [`spawn`] places `Send` futures round-robin across them and
//! [`spawn_local`] keeps a future on the current worker. [`Runtime::block_on`]
//! runs a future on the calling thread with the same loop. Ops go to the
//! driver chosen once at build time (`crate::driver::select`).
//!
//! This module owns the workers, tasks and time; it never calls the OS
//! directly (threads and clock come from `crate::sys`). It sits on top of
//! `crate::driver`: it builds the driver through `driver::select` on the
//! real `driver::Host`, runs the driver's `Scheduler` and implements the
//! driver's `Park` seam for its workers (`worker.rs`); it makes the
//! runtime's driver current (`driver::context`) while a loop runs. Nothing
//! below it (driver, op, sys) may name it.

pub(crate) mod context;
mod handle;
mod pipeline;
mod task;
mod time;
mod worker;

pub use crate::driver::{
    availability as backend_availability, Backend, BackendReport, LatencyHistogram, OpMetrics,
    RuntimeMetrics,
};
pub use handle::Handle;
pub use pipeline::{
    make_task, ErrorPolicy, Pipeline, PipelineConfig, PipelineError, PipelineReport, Task,
    TaskError, TaskId, TaskOutcome, TaskScope,
};
pub use task::{JoinError, JoinHandle};
pub use time::{sleep, timeout, Elapsed, Sleep, Timeout};

pub(crate) use crate::driver::Scheduler;
use crate::driver::{self, Driver};
use crate::sys::real::{thread::spawn_named, RealClock, ThreadPool};
use crate::sys::{Clock, Job, Offload, Saturated};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Wake, Waker};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;
pub(crate) use worker::{RunEnd, WorkerShared};

/// State shared by every thread of one runtime.
pub(crate) struct RuntimeShared {
    pub(crate) name: String,
    pub(crate) driver: Driver,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timers: time::Timers,
    pub(crate) scheduler: Arc<dyn Scheduler>,
    workers: Vec<Arc<WorkerShared>>,
    /// True when `workers` run on no thread of their own: `block_on` then
    /// runs the first worker's tasks on the calling thread (the simulator).
    single_threaded: bool,
    next_worker: AtomicUsize,
    report: BackendReport,
    /// The op counters behind [`Runtime::metrics`].
    pub(crate) metrics: Arc<driver::metrics::Registry>,
    /// Whether ops are counted into `metrics` ([`Builder::metrics`]).
    pub(crate) count_ops: bool,
    /// How long a dropped pool waits for its busy workers
    /// ([`Builder::shutdown_wait`]).
    shutdown_wait: Duration,
    /// Where [`RuntimeShared::offload_compute`] sends CPU work: started on
    /// first use on a real runtime (`None` if its threads could not
    /// start); the simulator's offload under the sim.
    compute: OnceLock<Option<Arc<dyn Offload>>>,
}

impl RuntimeShared {
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (cell, handle) = task::new_task(future);
        let index = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[index].spawn(Box::pin(cell));
        handle
    }

    /// Run `job` (CPU work such as compressing a chunk) on the runtime's
    /// compute pool, so it never holds up the tasks of a worker; the pool
    /// (one thread per worker) starts on first use. The job comes back
    /// when the pool cannot take it (full, or its threads failed to
    /// start): the caller then runs it itself. A job must not own a
    /// reference to the runtime: the pool is dropped with the runtime, and
    /// its threads cannot drop (join) their own pool.
    pub(crate) fn offload_compute(&self, label: &'static str, job: Job) -> Result<(), Job> {
        let pool = self.compute.get_or_init(|| {
            let threads = self.workers.len();
            let queue = threads * crate::sys::real::pool::QUEUE_DEPTH_PER_THREAD;
            let name = format!("{}-compute", self.name);
            ThreadPool::new(&name, threads, queue)
                .ok()
                .map(|pool| Arc::new(pool.with_drop_wait(self.shutdown_wait)) as Arc<dyn Offload>)
        });
        match pool {
            Some(pool) => pool.try_offload(label, job).map_err(|Saturated(job)| job),
            None => Err(job),
        }
    }
}

/// Configures and builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    compute_threads: usize,
    io_threads: Option<usize>,
    backend: Backend,
    count_ops: bool,
    shutdown_wait: Duration,
}

impl Builder {
    /// Name used for thread names and reports.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// Worker threads running tasks (at least 1; default: available cores).
    pub fn compute_threads(mut self, n: usize) -> Builder {
        self.compute_threads = n.max(1);
        self
    }

    /// Threads for blocking I/O (default: available cores, at least 2).
    pub fn io_threads(mut self, n: usize) -> Builder {
        self.io_threads = Some(n.max(1));
        self
    }

    /// How long dropping the runtime waits for blocking jobs still running
    /// on its thread pools (default 10 s): a blocking syscall that never
    /// returns (an open of a FIFO no one opens from the other end, on the
    /// pool or epoll backends) would otherwise hold the drop forever. Past
    /// the wait the pool threads are left to finish on their own. (On
    /// io_uring, dropped ops are cancelled in the kernel.)
    pub fn shutdown_wait(mut self, limit: Duration) -> Builder {
        self.shutdown_wait = limit;
        self
    }

    /// The I/O backend (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// Whether ops are counted for [`Runtime::metrics`] (default: yes).
    /// Off, the snapshot stays all zero and ops skip the counting (a few
    /// atomic adds and two clock reads each).
    ///
    /// ```
    /// use iokernel::runtime::{Backend, Runtime};
    /// let rt = Runtime::builder().backend(Backend::ThreadPool).metrics(false).build().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// rt.block_on(iokernel::fs::File::create(dir.path().join("x"))).unwrap();
    /// assert_eq!(rt.metrics().total_ops(), 0);
    /// ```
    pub fn metrics(mut self, enabled: bool) -> Builder {
        self.count_ops = enabled;
        self
    }

    /// Start the worker threads and the chosen backend. Fails when a forced
    /// backend is unavailable (the error says why) or threads cannot start.
    pub fn build(self) -> io::Result<Runtime> {
        let cores = crate::sys::real::host_info().available_cores;
        let io_threads = self.io_threads.unwrap_or(cores.max(2));
        let env = std::env::var("IOKERNEL_BACKEND").ok();
        let pool_name = self.name.clone();
        let shutdown_wait = self.shutdown_wait;
        let host = driver::Host::real(move || {
            let queue = io_threads * crate::sys::real::pool::QUEUE_DEPTH_PER_THREAD;
            let name = format!("{pool_name}-io");
            let pool = ThreadPool::new(&name, io_threads, queue)?.with_drop_wait(shutdown_wait);
            Ok(Arc::new(pool) as Arc<dyn Offload>)
        });
        let (driver, report) =
            driver::select(self.backend, env.as_deref(), "the runtime builder", host)?;
        let workers = (0..self.compute_threads)
            .map(|_| WorkerShared::new())
            .collect();
        let scheduler = driver.scheduler();
        let clock: Arc<dyn Clock> = Arc::new(RealClock::new());
        let metrics = driver::metrics::Registry::new(Arc::clone(&clock), self.compute_threads);
        let shared = Arc::new(RuntimeShared {
            name: self.name,
            driver,
            clock,
            timers: time::Timers::new(),
            scheduler,
            workers,
            single_threaded: false,
            next_worker: AtomicUsize::new(0),
            report,
            metrics,
            count_ops: self.count_ops,
            shutdown_wait: self.shutdown_wait,
            compute: OnceLock::new(),
        });
        let mut runtime = Runtime {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        for (i, worker) in shared.workers.iter().enumerate() {
            let (rt, worker) = (Arc::clone(&shared), Arc::clone(worker));
            let thread = spawn_named(format!("{}-worker-{i}", shared.name), move || {
                worker::run::<std::future::Pending<()>>(rt, worker, None);
            })?;
            runtime.threads.push(thread);
        }
        Ok(runtime)
    }
}

/// A running set of workers and an I/O backend.
///
/// ```
/// use iokernel::runtime::{Backend, Runtime};
/// let rt = Runtime::builder()
///     .name("doc")
///     .compute_threads(2)
///     .io_threads(2)
///     .backend(Backend::ThreadPool)
///     .build()
///     .unwrap();
/// let handle = rt.spawn(async { 6 * 7 });
/// assert_eq!(rt.block_on(handle).unwrap(), 42);
/// ```
pub struct Runtime {
    shared: Arc<RuntimeShared>,
    threads: Vec<ThreadHandle<()>>,
}

impl Runtime {
    /// A builder with defaults (Auto backend, one worker per core).
    pub fn builder() -> Builder {
        let cores = crate::sys::real::host_info().available_cores;
        Builder {
            name: "iokernel".to_string(),
            compute_threads: cores.max(1),
            io_threads: None,
            backend: Backend::Auto,
            count_ops: true,
            shutdown_wait: crate::sys::real::pool::DROP_WAIT,
        }
    }

    /// A runtime with the default configuration.
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// Run `future` to completion on this thread (tasks it spawns run on the
    /// workers). Panics if called from inside a runtime thread.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        assert!(
            context::current().is_none(),
            "Runtime::block_on called from a thread that already runs an iokernel runtime; \
             await the future instead"
        );
        match self.run_main(future) {
            RunEnd::Done(value) => value,
            RunEnd::Shutdown => unreachable!("block_on's own loop is never shut down"),
            RunEnd::Stuck(why) => {
                panic!("runtime {:?} cannot make progress: {why}", self.shared.name)
            }
        }
    }

    /// Run `future` on this thread; on a single-threaded runtime the
    /// spawned tasks run here too.
    pub(crate) fn run_main<F: Future>(&self, future: F) -> RunEnd<F::Output> {
        let here = if self.shared.single_threaded {
            Arc::clone(&self.shared.workers[0])
        } else {
            WorkerShared::new()
        };
        worker::run(Arc::clone(&self.shared), here, Some(future))
    }

    /// A runtime whose only worker runs on the thread that calls
    /// `block_on`/`run_main`, with the given parts (the simulator's; its
    /// compute work goes to `compute`).
    #[cfg(feature = "sim")]
    pub(crate) fn single_threaded(
        name: String,
        driver: Driver,
        clock: Arc<dyn Clock>,
        scheduler: Arc<dyn Scheduler>,
        report: BackendReport,
        compute: Arc<dyn Offload>,
    ) -> Runtime {
        let metrics = driver::metrics::Registry::new(Arc::clone(&clock), 1);
        let shared = Arc::new(RuntimeShared {
            name,
            driver,
            clock,
            timers: time::Timers::new(),
            scheduler,
            workers: vec![WorkerShared::new()],
            single_threaded: true,
            next_worker: AtomicUsize::new(0),
            report,
            metrics,
            count_ops: true,
            // (The simulator's offloads are not thread pools.)
            shutdown_wait: crate::sys::real::pool::DROP_WAIT,
            compute: OnceLock::from(Some(compute)),
        });
        Runtime {
            shared,
            threads: Vec::new(),
        }
    }

    /// Spawn a `Send` future onto one of the workers.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future)
    }

    /// A cloneable [`Handle`] that spawns onto this runtime from any
    /// thread (for example from inside a tokio task, see [`Handle`]).
    ///
    /// ```
    /// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
    /// let handle = rt.handle();
    /// assert_eq!(rt.block_on(handle.spawn(async { 1 + 1 })).unwrap(), 2);
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Which backend runs this runtime's I/O, and why.
    pub fn backend_report(&self) -> &BackendReport {
        &self.shared.report
    }

    /// What the runtime's driver has done so far: ops per kind with bytes
    /// and latency percentiles, ops in flight, pool fallbacks and why,
    /// completion-queue overflows, pool saturation (see [`RuntimeMetrics`]).
    /// Counting costs a few relaxed atomic adds per op on per-thread
    /// shards; the snapshot sums them.
    ///
    /// ```
    /// use iokernel::runtime::{Backend, Runtime};
    /// let rt = Runtime::builder().backend(Backend::ThreadPool).build().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("x");
    /// rt.block_on(async {
    ///     let file = iokernel::fs::File::create(&path).await.unwrap();
    ///     file.write_all_at(b"abc", 0).await.0.unwrap();
    /// });
    /// let metrics = rt.metrics();
    /// assert_eq!(metrics.op("pwrite").unwrap().count, 1);
    /// println!("{metrics}");
    /// ```
    pub fn metrics(&self) -> RuntimeMetrics {
        self.shared.metrics.snapshot(&self.shared.report)
    }

    /// The runtime's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Number of compute workers.
    pub fn compute_threads(&self) -> usize {
        self.shared.workers.len()
    }
}

impl Drop for Runtime {
    /// Stops the workers (their threads close their io_uring rings as they
    /// exit) and closes the io_uring ring and eventfd that `block_on`
    /// opened on this thread, so dropping a runtime leaves no fds behind
    /// here. Not when dropped from inside a runtime's loop (that loop's
    /// ops may use the thread's ring; it closes with the thread), and a
    /// ring another thread opened with `block_on` closes when that thread
    /// exits. Another io_uring runtime's next `block_on` here opens a
    /// fresh ring. Dropped by a task on one of its own workers, it waits
    /// for the other workers; that one ends when the task's poll returns.
    fn drop(&mut self) {
        for worker in &self.shared.workers {
            worker.shutdown();
        }
        let here = std::thread::current().id();
        for thread in self.threads.drain(..) {
            // Dropped by a task on one of its own workers (it held the
            // last reference): that worker cannot wait for itself. It
            // sees the shutdown once this poll returns, and ends then.
            if thread.thread().id() == here {
                continue;
            }
            let _ = thread.join();
        }
        if context::current().is_none() {
            self.shared.driver.close_thread_state();
        }
    }
}

/// Spawn a `Send` future on the current runtime's workers.
///
/// Panics when called on a thread that runs no iokernel runtime.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = context::current_runtime()
        .expect("iokernel::runtime::spawn called outside an iokernel runtime (use Runtime::spawn)");
    runtime.spawn(future)
}

/// Spawn a future that stays on the current worker thread (it need not be
/// `Send`). Panics when called outside a runtime thread.
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let ctx = context::current()
        .expect("iokernel::runtime::spawn_local called outside an iokernel runtime thread");
    let (cell, handle) = task::new_task(future);
    ctx.local_spawns.borrow_mut().push(Box::pin(cell));
    handle
}

/// The backend report of the runtime this thread runs, if any: which
/// backend runs its I/O and why (including the backends Auto rejected).
///
/// ```
/// use iokernel::runtime::{current_backend_report, Backend, Runtime};
/// assert!(current_backend_report().is_none());
/// let rt = Runtime::builder().backend(Backend::ThreadPool).build().unwrap();
/// let report = rt.block_on(async { current_backend_report() }).unwrap();
/// assert_eq!(report.selected, Backend::ThreadPool);
/// ```
pub fn current_backend_report() -> Option<BackendReport> {
    context::current_runtime().map(|runtime| runtime.report.clone())
}

/// The metrics of the runtime this thread runs, if any (see
/// [`Runtime::metrics`]); how code inside a simulated run reads them.
///
/// ```
/// use iokernel::runtime::{current_metrics, Backend, Runtime};
/// assert!(current_metrics().is_none());
/// let rt = Runtime::builder().backend(Backend::ThreadPool).build().unwrap();
/// let metrics = rt.block_on(async { current_metrics() }).unwrap();
/// assert_eq!(metrics.in_flight, 0);
/// ```
pub fn current_metrics() -> Option<RuntimeMetrics> {
    context::current_runtime().map(|runtime| runtime.metrics.snapshot(&runtime.report))
}

/// True when the calling thread runs an iokernel runtime loop (ops will be
/// submitted to its driver rather than run as blocking calls).
pub fn in_runtime() -> bool {
    context::current().is_some()
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drive `future` to completion on the calling thread without starting a
/// runtime. On a thread with no runtime every op inside completes on its
/// first poll as a blocking syscall (the sync fallback), so this is how
/// synchronous code runs async iokernel code, e.g. `File` methods.
///
/// ```
/// use iokernel::runtime::block_on_here;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x");
/// let file = block_on_here(iokernel::fs::File::create(&path)).unwrap();
/// block_on_here(file.write_all_at(b"abc", 0)).0.unwrap();
/// ```
pub fn block_on_here<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn compute_jobs_run_on_the_compute_pool_not_on_a_worker() {
        let runtime = Runtime::builder()
            .name("cpt")
            .compute_threads(2)
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        runtime.block_on(async move {
            let shared = context::current_runtime().expect("inside the runtime");
            for _ in 0..8 {
                let tx = tx.clone();
                let job: Job = Box::new(move || {
                    let name = std::thread::current().name().map(str::to_owned);
                    tx.send(name).unwrap();
                });
                if shared.offload_compute("test", job).is_err() {
                    panic!("an idle compute pool refused a job");
                }
            }
        });
        for _ in 0..8 {
            let name = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            let name = name.expect("compute threads are named");
            assert!(name.starts_with("cpt-compute-"), "ran on {name}");
        }
    }
}
