//! A simulated run always makes progress or says why it cannot:
//! * a socket op on the simulated pool that finds `EAGAIN` waits for its fd
//!   (a gated job) instead of being retried at one instant, so virtual time
//!   reaches the timer or the peer's send that moves the run on;
//! * such an op that nothing can ever make ready, with no timer left, is a
//!   deadlock the run reports, naming the op and its fd;
//! * a run that is never idle (tasks that keep waking themselves) fails on
//!   `SimOptions::max_steps` instead of spinning forever.
//!
//! Each run happens on a watchdog thread: a regression shows as a failed
//! test that says the run hung, not as a stalled test binary.

use iokernel::buf::BufResult;
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{sleep, spawn, timeout};
use iokernel::sim::{self, SimDriver, SimError, SimKernel, SimOptions};
use iokernel::sys::real::thread::spawn_named;
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Far more than any of these runs needs, far less than a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Steps a run that waits correctly takes here: a few per op and timer.
/// A retry loop at the offload's 100 ns minimum latency needs tens of
/// millions to cover the virtual seconds these tests wait.
const FEW_STEPS: u64 = 1_000;

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

async fn connected_pair() -> std::io::Result<(TcpListener, TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    Ok((listener, client, server))
}

#[test]
fn a_pool_recv_waiting_for_eagain_lets_virtual_time_reach_its_timeout() {
    let (kernel, result) = run_watched(pool_options(1), || async {
        let (_listener, _client, server) = connected_pair().await.expect("pair");
        // Nobody sends: only the timeout, an hour of virtual time away,
        // can end the recv.
        timeout(Duration::from_secs(3600), server.read(vec![0u8; 16]))
            .await
            .is_err()
    });
    assert_eq!(result, Ok(true), "the recv times out");
    let stats = kernel.core().stats();
    assert!(
        kernel.core().now() >= Duration::from_secs(3600),
        "virtual time reached the timer: {:?}",
        kernel.core().now()
    );
    assert!(
        stats.steps < FEW_STEPS,
        "{} steps and {} syscalls: the recv was retried instead of waiting",
        stats.steps,
        stats.syscalls
    );
}

#[test]
fn a_pool_recv_completes_when_a_peer_sends_after_a_sleep() {
    let (kernel, result) = run_watched(pool_options(2), || async {
        let (_listener, client, server) = connected_pair().await.expect("pair");
        let sender = spawn(async move {
            sleep(Duration::from_secs(10)).await;
            client.write_all(b"late".to_vec()).await.0.map(|_| client)
        });
        let BufResult(n, buf) = server.read(vec![0u8; 16]).await;
        let _client = sender.await.expect("sender task").expect("send");
        buf[..n.expect("recv")].to_vec()
    });
    assert_eq!(result.as_deref(), Ok(&b"late"[..]));
    let now = kernel.core().now();
    assert!(now >= Duration::from_secs(10), "virtual time {now:?}");
    assert!(kernel.core().stats().steps < FEW_STEPS);
}

#[test]
fn a_pool_recv_that_nothing_can_make_ready_is_reported_as_a_deadlock() {
    let (_kernel, result) = run_watched(pool_options(3), || async {
        let (_listener, _client, server) = connected_pair().await.expect("pair");
        let BufResult(n, _) = server.read(vec![0u8; 16]).await;
        n.map_err(|e| e.to_string())
    });
    match result {
        Err(SimError::Stuck { reason, .. }) => {
            assert!(reason.contains("deadlock"), "{reason}");
            assert!(
                reason.contains("recv") && reason.contains("Readable"),
                "names the waiting op: {reason}"
            );
        }
        other => panic!("expected a reported deadlock, got {other:?}"),
    }
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

/// A sleep of `Duration::MAX` never fires, in virtual time too: alone it is
/// a run that can never finish (reported stuck, not ended after the 584
/// years a clamped deadline would have come to), and under a timeout the
/// timeout ends it at its own deadline.
#[test]
fn a_duration_max_sleep_never_fires_in_virtual_time() {
    let (_kernel, alone) = run_watched(pool_options(5), || sleep(Duration::MAX));
    match alone {
        Err(SimError::Stuck { .. }) => {}
        other => panic!("a run waiting only on Duration::MAX must be stuck: {other:?}"),
    }
    let (kernel, bounded) = run_watched(pool_options(6), || {
        timeout(Duration::from_secs(3), sleep(Duration::MAX))
    });
    assert!(matches!(bounded, Ok(Err(_))), "{bounded:?}");
    assert_eq!(
        kernel.core().now(),
        Duration::from_secs(3),
        "virtual time at the timeout"
    );
}
