//! The readiness driver's rules, on the simulated kernel under epoll and
//! kqueue semantics (so the kqueue logic is exercised on Linux) and, where
//! the rule has a real-kernel side, on real epoll:
//! * a spurious or delayed readiness event never surfaces `EAGAIN` and
//!   never loses or reorders stream bytes;
//! * a failed poller registration fails the op that wanted to wait, with
//!   the poller's errno, and leaves the socket usable;
//! * closing (through the crate) an fd an op waits on wakes that op with
//!   `EBADF`;
//! * a run whose tasks wait for readiness that can never come is reported
//!   stuck, naming what is armed;
//! * forcing the kqueue backend where there is none is a clear error;
//! * an end of stream that arrived with the last bytes is still read;
//! * ops waiting for readiness never hold every I/O thread while the op
//!   that would make them ready waits for one (the pool backend);
//! * a worker whose other task is always runnable still looks for ready
//!   sockets now and then (real epoll).

use iokernel::buf::BufResult;
use iokernel::io;
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{self, backend_availability, spawn, spawn_local, Backend, Runtime};
use iokernel::sim::{self, SimDriver, SimError, SimOptions};
use iokernel::sys::Errno;
use std::net::SocketAddr;
use std::time::Duration;

const READINESS_DRIVERS: [SimDriver; 2] = [SimDriver::EpollSemantics, SimDriver::KqueueSemantics];

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

fn options(seed: u64, driver: SimDriver) -> SimOptions {
    let mut options = SimOptions::new(seed);
    options.driver = driver;
    options
}

async fn connected_pair() -> std::io::Result<(TcpListener, TcpStream, TcpStream)> {
    let listener = TcpListener::bind(loopback())?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    Ok((listener, client, server))
}

/// Each side sends `rounds` numbered messages and echoes the other's:
/// every wait happens on the poller, concurrently in two tasks.
async fn ping_pong(rounds: u32) -> std::io::Result<u32> {
    let (_listener, client, server) = connected_pair().await?;
    let echo = spawn(async move {
        for _ in 0..rounds {
            let BufResult(n, buf) = server.read(vec![0u8; 4]).await;
            let n = n?;
            server.write_all(buf[..n].to_vec()).await.0?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut checked = 0;
    for round in 0..rounds {
        client.write_all(round.to_le_bytes().to_vec()).await.0?;
        let mut got = Vec::new();
        while got.len() < 4 {
            let BufResult(n, buf) = client.read(vec![0u8; 4 - got.len()]).await;
            let n = n?;
            assert!(n > 0, "end of stream in round {round}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, round.to_le_bytes(), "round {round}");
        checked += 1;
    }
    echo.await.expect("echo task")?;
    Ok(checked)
}

#[test]
fn spurious_and_delayed_readiness_never_surface_eagain_or_lose_bytes() {
    for driver in READINESS_DRIVERS {
        let mut options = options(21, driver);
        options.poller_faults.spurious_probability = 0.5;
        options.poller_faults.delay_probability = 0.5;
        let kernel = sim::new_kernel(options).expect("options");
        let checked = sim::run(&kernel, ping_pong(200))
            .expect("the run completes")
            .unwrap_or_else(|e| panic!("{}: {e}", driver.name()));
        assert_eq!(checked, 200);
        let stats = kernel.core().stats();
        assert!(stats.spurious_readiness > 0, "{}: {stats:?}", driver.name());
        assert!(stats.delayed_readiness > 0, "{}: {stats:?}", driver.name());
    }
}

#[test]
fn a_failed_registration_fails_the_waiting_op_with_the_poller_errno() {
    for driver in READINESS_DRIVERS {
        let mut options = options(22, driver);
        options.poller_faults.register_probability = 1.0;
        let kernel = sim::new_kernel(options).expect("options");
        let errno = sim::run(&kernel, async {
            let (_listener, client, server) = connected_pair().await.expect("pair");
            // Nothing to read: the recv must wait, and cannot register.
            let BufResult(result, _) = client.read(vec![0u8; 8]).await;
            let err = result.expect_err("the wait could not be registered");
            // The socket is still fine: ops that need no wait succeed.
            server.write_all(b"data".to_vec()).await.0.expect("send");
            let BufResult(n, buf) = client.read(vec![0u8; 8]).await;
            assert_eq!(&buf[..n.expect("recv with data ready")], b"data");
            err.raw_os_error().expect("an errno")
        })
        .expect("the run completes");
        assert!(
            driver.register_errnos().contains(&Errno(errno)),
            "{}: {:?}",
            driver.name(),
            Errno(errno)
        );
        assert!(kernel.core().stats().poller_register_failures > 0);
    }
}

/// A task waits in recv on the client fd; the main task closes that fd
/// through `io::close`: the waiter must finish with `EBADF`.
async fn close_under_a_waiting_recv() -> std::io::Result<()> {
    let (_listener, client, _server) = connected_pair().await?;
    let fd = client.into_raw_fd();
    let waiter = spawn_local(async move { io::recv(fd, vec![0u8; 8]).await.0 });
    // Let the waiter reach its wait.
    runtime::sleep(Duration::from_millis(20)).await;
    io::close(fd).await?;
    let result = waiter.await.expect("waiter task");
    match result {
        Err(e) if e.raw_os_error() == Some(Errno::EBADF.raw()) => Ok(()),
        other => panic!("the waiter should see EBADF, got {other:?}"),
    }
}

#[test]
fn closing_a_watched_fd_wakes_its_waiter_with_ebadf_on_the_sim() {
    for driver in READINESS_DRIVERS {
        let kernel = sim::new_kernel(options(23, driver)).expect("options");
        sim::run(&kernel, close_under_a_waiting_recv())
            .unwrap_or_else(|e| panic!("{}: {e}", driver.name()))
            .unwrap_or_else(|e| panic!("{}: {e}", driver.name()));
    }
}

/// A one-thread runtime on real epoll, or `None` (said on stderr) where
/// epoll is unavailable.
fn one_thread_epoll_runtime(name: &str) -> Option<Runtime> {
    if let Err(reason) = backend_availability(Backend::Epoll) {
        eprintln!("skipping: epoll is unavailable: {reason}");
        return None;
    }
    let rt = Runtime::builder()
        .name(name)
        .compute_threads(1)
        .io_threads(1)
        .backend(Backend::Epoll)
        .build()
        .expect("epoll runtime");
    Some(rt)
}

#[test]
fn closing_a_watched_fd_wakes_its_waiter_with_ebadf_on_real_epoll() {
    let Some(rt) = one_thread_epoll_runtime("readiness-close") else {
        return;
    };
    rt.block_on(close_under_a_waiting_recv())
        .expect("close wakes the waiter");
}

#[test]
fn waiting_for_readiness_that_never_comes_is_reported_stuck() {
    for driver in READINESS_DRIVERS {
        let kernel = sim::new_kernel(options(24, driver)).expect("options");
        let outcome = sim::run(&kernel, async {
            let (_listener, client, _server) = connected_pair().await.expect("pair");
            // The peer stays open and silent.
            client.read(vec![0u8; 8]).await.0
        });
        match outcome {
            Err(SimError::Stuck { seed: 24, reason }) => {
                assert!(reason.contains("armed"), "{}: {reason}", driver.name());
            }
            other => panic!("{}: expected a stuck run, got {other:?}", driver.name()),
        }
    }
}

#[test]
#[cfg(linux)]
fn forcing_kqueue_on_linux_is_a_clear_error() {
    let why = backend_availability(Backend::Kqueue).expect_err("no kqueue on Linux");
    assert!(why.contains("not available on this OS"), "{why}");
    let err = match Runtime::builder().backend(Backend::Kqueue).build() {
        Ok(_) => panic!("a kqueue runtime cannot build on Linux"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("kqueue") && err.contains("not available on this OS"),
        "{err}"
    );
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_iok"))
        .arg("probe")
        .env_remove("IOKERNEL_BACKEND")
        .output()
        .expect("iok runs");
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        stdout.contains(&format!("kqueue  unavailable: {why}")),
        "iok probe lists kqueue with the reason: {stdout}"
    );
}

/// The simulated host goes through the same backend selection as the real
/// one: a simulated run (faults on) reports the backend its options map
/// to, with the same notes a real runtime on that backend reports.
#[test]
fn a_simulated_run_reports_its_backend_like_a_real_runtime() {
    let cases = [
        (SimDriver::Pool, Backend::ThreadPool),
        (SimDriver::EpollSemantics, Backend::Epoll),
        (SimDriver::KqueueSemantics, Backend::Kqueue),
    ];
    for (seed, (driver, backend)) in (31..).zip(cases) {
        let mut options = SimOptions::with_faults(seed, 0.2);
        options.driver = driver;
        let kernel = sim::new_kernel(options).expect("options");
        let report = sim::run(&kernel, async {
            // An op through the driver, whatever the faults make of it.
            let _ = io::open("/f", io::OpenFlags::WRONLY | io::OpenFlags::CREAT, 0o644).await;
            runtime::current_backend_report().expect("a simulated runtime")
        })
        .expect("the run completes");
        assert_eq!(
            (report.requested, report.selected),
            (backend, backend),
            "{report}"
        );
        assert!(report.rejected.is_empty(), "{report}");
        assert!(
            report.requested_by.contains(driver.name()),
            "{}: {report}",
            driver.name()
        );
        assert_eq!(report.io_threads, 1, "{report}");
        let host_side = Runtime::builder().backend(backend).build();
        match (backend, host_side) {
            (_, Ok(rt)) => assert_eq!(
                rt.backend_report().pool_fallbacks,
                report.pool_fallbacks,
                "{backend}: the same notes on both hosts"
            ),
            (Backend::Kqueue, Err(e)) if cfg!(target_os = "linux") => {
                assert!(e.to_string().contains("not available on this OS"), "{e}");
                assert_eq!(report.pool_fallbacks.len(), 2, "{report}");
            }
            (_, Err(e)) => panic!("{backend} on the real host: {e}"),
        }
    }
}

/// A std socket waited on through the crate, then closed by std (behind
/// the crate's back): a socket the crate makes next under the same number
/// is waited on afresh, never left waiting for an event of the old fd.
async fn a_number_closed_by_std_then_reused() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let outside = std::net::TcpStream::connect(addr)?;
    outside.set_nonblocking(true)?;
    let (_kept, _) = listener.accept().await?;
    let old_fd = outside.as_raw_fd();
    // The driver registers the fd and learns it is not readable.
    let idle = runtime::timeout(Duration::from_millis(5), io::recv(old_fd, vec![0u8; 8])).await;
    assert!(idle.is_err(), "nothing was sent to the std socket");
    drop(outside);
    let client = TcpStream::connect(addr).await?;
    let (server, _) = listener.accept().await?;
    if client.as_raw_fd() != old_fd && server.as_raw_fd() != old_fd {
        eprintln!("fd {old_fd} was not reused: checking the exchange anyway");
    }
    let (client, server) = (std::sync::Arc::new(client), std::sync::Arc::new(server));
    for (reader, writer) in [(&client, &server), (&server, &client)] {
        let writer = std::sync::Arc::clone(writer);
        let sender = spawn_local(async move {
            runtime::sleep(Duration::from_millis(2)).await;
            writer.write_all(b"wake".to_vec()).await.0
        });
        let BufResult(n, buf) = reader.read(vec![0u8; 4]).await;
        assert_eq!(&buf[..n?], b"wake");
        sender.await.expect("writer task")?;
    }
    Ok(())
}

#[test]
fn a_number_closed_behind_the_crates_back_and_reused_is_waited_on_afresh_on_real_epoll() {
    let Some(rt) = one_thread_epoll_runtime("readiness-reuse") else {
        return;
    };
    rt.block_on(async {
        runtime::timeout(
            Duration::from_secs(20),
            a_number_closed_by_std_then_reused(),
        )
        .await
        .expect("an op on a reused fd number waited for an event that never came")
    })
    .expect("the exchange on the reused number");
}

/// The peer sends a little and closes while the reader waits: one event
/// reports both, the first read takes the bytes (a short read, which
/// usually means the socket is used up) and the end of stream is still
/// to be read with no new edge to come. The reader must see it, not wait.
async fn bytes_then_end_of_stream_in_one_event() -> std::io::Result<Vec<u8>> {
    let (_listener, client, server) = connected_pair().await?;
    let reader = spawn(async move {
        let mut got = Vec::new();
        loop {
            let BufResult(n, buf) = server.read(vec![0u8; 8192]).await;
            let n = n?;
            if n == 0 {
                return Ok::<_, std::io::Error>(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    // Let the reader find nothing and wait on the poller first.
    runtime::sleep(Duration::from_millis(20)).await;
    client.write_all(vec![7u8; 100]).await.0?;
    drop(client);
    reader.await.expect("reader task")
}

#[test]
fn end_of_stream_after_a_short_read_is_seen_on_the_sim() {
    for driver in READINESS_DRIVERS {
        let kernel = sim::new_kernel(options(5, driver)).expect("options");
        let got = sim::run(&kernel, bytes_then_end_of_stream_in_one_event())
            .unwrap_or_else(|e| panic!("{}: the run did not complete: {e}", driver.name()))
            .unwrap_or_else(|e| panic!("{}: {e}", driver.name()));
        assert_eq!(got, vec![7u8; 100], "{}", driver.name());
    }
}

/// Run `body` on a runtime per available concrete backend (one compute
/// thread; two I/O threads, as on the pool backend a waiting op holds
/// one) under a 20 s timeout, whose expiry panics naming the backend and
/// `hang`; returns each backend's output.
fn on_every_real_backend<T, Fut>(
    name: &str,
    hang: &str,
    body: impl Fn() -> Fut,
) -> Vec<(Backend, T)>
where
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let mut outputs = Vec::new();
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .name(name)
            .compute_threads(1)
            .io_threads(2)
            .backend(backend)
            .build()
            .expect("runtime");
        let output = rt
            .block_on(async {
                runtime::timeout(Duration::from_secs(20), body())
                    .await
                    .unwrap_or_else(|_| panic!("{backend}: {hang}"))
            })
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        outputs.push((backend, output));
    }
    outputs
}

#[test]
fn end_of_stream_after_a_short_read_is_seen_on_every_real_backend() {
    let outputs = on_every_real_backend(
        "readiness-eof",
        "the reader never saw the end of stream",
        bytes_then_end_of_stream_in_one_event,
    );
    for (backend, got) in outputs {
        assert_eq!(got, vec![7u8; 100], "{backend}");
    }
}

/// Two reads wait for bytes before the writes that feed them are made.
/// On a runtime with two I/O threads and the pool backend, the waiting
/// reads hold both threads; they must give them up to the queued writes
/// (an echo whose write and read both wait is the same shape).
async fn reads_waiting_on_every_thread_let_the_writes_through() -> std::io::Result<[usize; 2]> {
    let (_first_listener, first_client, first_server) = connected_pair().await?;
    let (_second_listener, second_client, second_server) = connected_pair().await?;
    let first = spawn(async move { first_server.read(vec![0u8; 64]).await.0 });
    let second = spawn(async move { second_server.read(vec![0u8; 64]).await.0 });
    // Let both reads start and find nothing.
    runtime::sleep(Duration::from_millis(20)).await;
    first_client.write_all(vec![1u8; 5]).await.0?;
    second_client.write_all(vec![2u8; 7]).await.0?;
    Ok([
        first.await.expect("first reader")?,
        second.await.expect("second reader")?,
    ])
}

#[test]
fn waiting_reads_let_the_writes_through_on_the_sim() {
    for driver in [
        SimDriver::Pool,
        SimDriver::EpollSemantics,
        SimDriver::KqueueSemantics,
    ] {
        for seed in 0..8 {
            let mut options = SimOptions::with_faults(seed, 0.05);
            options.driver = driver;
            // Short I/O, latency, reordering and readiness noise, but no
            // errnos: both reads must complete.
            for class in iokernel::sim::OpClass::ALL {
                options.faults[class.index()].probability = 0.0;
            }
            options.poller_faults.register_probability = 0.0;
            let kernel = sim::new_kernel(options).expect("options");
            let got = sim::run(
                &kernel,
                reads_waiting_on_every_thread_let_the_writes_through(),
            )
            .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", driver.name()))
            .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", driver.name()));
            // Short reads are on: each read gets part of its write.
            assert!(
                (1..=5).contains(&got[0]) && (1..=7).contains(&got[1]),
                "{} seed {seed}: {got:?}",
                driver.name()
            );
        }
    }
}

#[test]
fn waiting_reads_let_the_writes_through_on_every_real_backend() {
    let outputs = on_every_real_backend(
        "readiness-give-way",
        "the waiting reads held every thread",
        reads_waiting_on_every_thread_let_the_writes_through,
    );
    for (backend, got) in outputs {
        assert!(
            (1..=5).contains(&got[0]) && (1..=7).contains(&got[1]),
            "{backend}: {got:?}"
        );
    }
}

/// Returns `Pending` once, waking itself: one trip through the scheduler.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Polls a busy task may take before it gives up on the recv beside it.
const BUSY_POLLS_LIMIT: u64 = 5_000_000;

/// A recv waits on a worker whose other task never waits (it yields and is
/// runnable again at once), so the worker never parks. The bytes arrive
/// 20 ms in; the worker's periodic check for ready sockets must find them,
/// and the recv then stops the busy task. Returns the busy task's polls.
async fn a_recv_beside_a_task_that_never_waits() -> std::io::Result<u64> {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let peer = iokernel::sys::real::thread::spawn_named("busy-peer".into(), move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        std::thread::sleep(Duration::from_millis(20));
        stream.write_all(b"ready").expect("write");
    })?;
    let (server, _) = listener.accept().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        spawn_local(async move {
            let mut polls = 0u64;
            while !stop.load(Ordering::SeqCst) && polls < BUSY_POLLS_LIMIT {
                yield_once().await;
                polls += 1;
            }
            polls
        })
    };
    let BufResult(n, buf) = server.read(vec![0u8; 16]).await;
    stop.store(true, Ordering::SeqCst);
    assert_eq!(&buf[..n?], b"ready");
    let polls = busy.await?;
    peer.join().expect("peer thread");
    Ok(polls)
}

#[test]
fn a_busy_worker_still_looks_for_ready_sockets_on_real_epoll() {
    let Some(rt) = one_thread_epoll_runtime("readiness-busy") else {
        return;
    };
    let polls = rt
        .block_on(a_recv_beside_a_task_that_never_waits())
        .expect("the recv beside a busy task");
    assert!(
        polls < BUSY_POLLS_LIMIT,
        "the busy task ran {polls} polls: the worker never looked for the ready socket"
    );
}
