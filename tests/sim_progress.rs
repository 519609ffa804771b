//! A simulated run always makes progress or says why it cannot:
//! * a run that is never idle (tasks that keep waking themselves) fails on
//!   `SimOptions::max_steps` instead of spinning forever.
//!
//! Each run happens on a watchdog thread: a regression shows as a failed
//! test that says the run hung, not as a stalled test binary.

use iokernel::runtime::{sleep, spawn};
use iokernel::sim::{self, SimDriver, SimError, SimKernel, SimOptions};
use iokernel::sys::real::thread::spawn_named;
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Far more than any of these runs needs, far less than a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

fn pool_options(seed: u64) -> SimOptions {
    let mut options = SimOptions::new(seed);
    options.driver = SimDriver::Pool;
    options
}

/// Run `make()`'s future on a fresh kernel on another thread; panic if it
/// does not finish within [`WATCHDOG`].
fn run_watched<T, F>(
    options: SimOptions,
    make: impl FnOnce() -> F + Send + 'static,
) -> (Arc<SimKernel>, Result<T, SimError>)
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let kernel = sim::new_kernel(options).expect("valid options");
    let (tx, rx) = mpsc::channel();
    let run_kernel = Arc::clone(&kernel);
    spawn_named("sim-run".into(), move || {
        let _ = tx.send(sim::run(&run_kernel, make()));
    })
    .expect("start the run's thread");
    let result = rx
        .recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("the simulated run hung for {WATCHDOG:?}"));
    (kernel, result)
}

/// A future that wakes itself on every poll and never finishes.
async fn spin_forever() {
    std::future::poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    })
    .await
}

fn assert_livelock(result: Result<(), SimError>, steps: u64) {
    match result {
        Err(SimError::Stuck { reason, .. }) => {
            assert!(
                reason.contains("livelock") && reason.contains("max_steps"),
                "{reason}"
            );
        }
        other => panic!("expected a livelock on max_steps, got {other:?}"),
    }
    assert!(steps > 10_000, "{steps} steps counted");
}

#[test]
fn a_main_future_that_is_never_idle_fails_on_max_steps() {
    let mut options = pool_options(4);
    options.max_steps = 10_000;
    let (kernel, result) = run_watched(options, spin_forever);
    assert_livelock(result, kernel.core().stats().steps);
}

#[test]
fn a_spinning_task_that_keeps_a_timer_from_firing_fails_on_max_steps() {
    for driver in [
        SimDriver::Pool,
        SimDriver::Ring,
        SimDriver::EpollSemantics,
        SimDriver::KqueueSemantics,
    ] {
        let mut options = pool_options(5);
        options.driver = driver;
        options.max_steps = 10_000;
        // The spinner is always runnable, so the run never goes idle and
        // virtual time never moves to the sleep's deadline.
        let (kernel, result) = run_watched(options, || async {
            let _detached = spawn(spin_forever());
            sleep(Duration::from_millis(1)).await;
        });
        assert_livelock(result, kernel.core().stats().steps);
    }
}
