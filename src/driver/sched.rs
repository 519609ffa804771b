//! The scheduling and parking seam between the drivers and the runtime.
//!
//! Owns: [`Scheduler`] (a run loop's decisions: which task next, what to do
//! between polls, how to wait when idle), [`Park`] (what a scheduler needs
//! from the worker it parks: the runtime's `WorkerShared` implements it)
//! and [`ThreadScheduler`] (the pool driver's: FIFO, park on the worker).
//! Each driver provides its scheduler (`Driver::scheduler`); the runtime
//! calls it and never the other way round, and the simulator decorates it.

use std::sync::Arc;
use std::time::Duration;

/// Wakes a worker parked inside its driver (an io_uring wait, a poller).
pub(crate) type DriverWake = Arc<dyn Fn() + Send + Sync>;

/// What a scheduler may ask of the worker whose loop it runs: park it,
/// learn whether news arrived, and let other threads wake it while it
/// waits inside the driver. Implemented by the runtime's worker.
pub(crate) trait Park: Send + Sync {
    /// Block until unparked or `timeout` passes.
    fn park(&self, timeout: Option<Duration>);
    /// True (consuming the notification) when a wake or spawn arrived since
    /// the last park.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))] // only the sim runner calls it
    fn take_news(&self) -> bool;
    /// Whether a driver wake is installed.
    fn has_driver_wake(&self) -> bool;
    /// Install how to wake this worker while it waits inside its driver.
    fn set_driver_wake(&self, wake: DriverWake);
    /// About to wait inside the driver: false (and no wait) when news is
    /// already here.
    fn begin_driver_park(&self) -> bool;
    /// Done waiting inside the driver.
    fn end_driver_park(&self);
}

/// A run loop's scheduling decisions: the real runtime runs tasks FIFO and
/// parks the thread when idle; the simulator picks by seed and uses idle
/// time to complete offloaded jobs and advance virtual time.
pub(crate) trait Scheduler: Send + Sync {
    /// Index (below `runnable`) of the task to poll next.
    fn pick_task(&self, runnable: usize) -> usize;
    /// A turn of the run loop begins (it polls a tick's worth of tasks,
    /// fires due timers and, with nothing runnable, calls `idle`). `Err`
    /// ends the run as stuck: the simulator counts its steps here, so a
    /// run that is never idle still meets its step limit. Default: go on.
    fn new_turn(&self) -> Result<(), String> {
        Ok(())
    }
    /// Called after each task poll.
    fn between_polls(&self);
    /// Nothing is runnable: wait for news on `worker` or for `timeout` (the
    /// next timer). `Err` means no progress is possible any more.
    fn idle(&self, worker: &dyn Park, timeout: Option<Duration>) -> Result<(), String>;
    /// Collect what the driver's mechanism has ready, without waiting, and
    /// wake those tasks; returns how many were woken. Default: nothing to
    /// collect (the readiness driver polls its poller).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))] // only the sim runner calls it
    fn poll_now(&self) -> Result<usize, String> {
        Ok(0)
    }
    /// A thread starts running `worker`'s loop.
    fn enter(&self, _worker: &Arc<dyn Park>) {}
    /// The thread's loop is done (its tasks are dropped).
    fn leave(&self) {}
}

/// The pool driver's scheduling: FIFO, park the thread when idle.
pub(crate) struct ThreadScheduler;

impl Scheduler for ThreadScheduler {
    fn pick_task(&self, _runnable: usize) -> usize {
        0
    }

    fn between_polls(&self) {}

    fn idle(&self, worker: &dyn Park, timeout: Option<Duration>) -> Result<(), String> {
        worker.park(timeout);
        Ok(())
    }
}
