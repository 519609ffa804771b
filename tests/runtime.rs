//! Runtime behaviour on the real kernel: spawning, joining, panics, timers,
//! aborts, spawn_local, pipelines and backend selection.

use iokernel::runtime::{
    self, make_task, sleep, spawn_local, timeout, Backend, ErrorPolicy, JoinError, Pipeline,
    PipelineConfig, PipelineError, Runtime,
};
use iokernel::sync::channel;
use iokernel::sys::real::thread::spawn_named;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/backends.rs"]
mod backends;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .name("test")
        .compute_threads(workers)
        .io_threads(2)
        .backend(Backend::ThreadPool)
        .build()
        .expect("runtime builds")
}

fn worker_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

#[test]
fn ten_thousand_tasks_all_complete_across_workers() {
    let rt = runtime(3);
    let done = Arc::new(AtomicUsize::new(0));
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..10_000u64)
        .map(|i| {
            let (done, threads) = (Arc::clone(&done), Arc::clone(&threads));
            rt.spawn(async move {
                threads.lock().unwrap().insert(worker_name());
                done.fetch_add(1, Ordering::SeqCst);
                i * 2
            })
        })
        .collect();
    let sum: u64 = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("task completes");
        }
        sum
    });
    assert_eq!(done.load(Ordering::SeqCst), 10_000);
    assert_eq!(sum, (0..10_000u64).map(|i| i * 2).sum::<u64>());
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), 3, "tasks ran on every worker: {threads:?}");
    assert!(threads.iter().all(|t| t.starts_with("test-worker-")));
}

#[test]
fn tasks_spawned_from_tasks_and_yielding_through_ops_complete() {
    let rt = runtime(2);
    let total = rt.block_on(async {
        let outer: Vec<_> = (0..100u64)
            .map(|i| {
                runtime::spawn(async move {
                    let inner: Vec<_> = (0..10u64)
                        .map(|j| {
                            runtime::spawn(async move {
                                sleep(Duration::from_millis(1)).await;
                                i * 10 + j
                            })
                        })
                        .collect();
                    let mut s = 0;
                    for h in inner {
                        s += h.await.unwrap();
                    }
                    s
                })
            })
            .collect();
        let mut total = 0;
        for h in outer {
            total += h.await.unwrap();
        }
        total
    });
    assert_eq!(total, (0..1000u64).sum::<u64>());
}

#[test]
fn a_panicking_task_reports_an_error_and_the_runtime_keeps_going() {
    let rt = runtime(2);
    let bad = rt.spawn(async {
        panic!("task failed on purpose");
    });
    let err = rt.block_on(bad).expect_err("a panic is an error");
    assert_eq!(
        err,
        JoinError::Panicked("task failed on purpose".to_string())
    );
    // Every worker still runs tasks afterwards.
    let handles: Vec<_> = (0..100).map(|i| rt.spawn(async move { i })).collect();
    let values: Vec<i32> = rt.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            v.push(h.await.unwrap());
        }
        v
    });
    assert_eq!(values, (0..100).collect::<Vec<_>>());
}

#[test]
fn timers_fire_in_deadline_order() {
    let rt = runtime(2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let delays_ms = [50u64, 10, 40, 20, 30, 0, 60];
    let handles: Vec<_> = delays_ms
        .iter()
        .map(|&ms| {
            let order = Arc::clone(&order);
            rt.spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                order.lock().unwrap().push(ms);
            })
        })
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    let mut expected = delays_ms.to_vec();
    expected.sort();
    assert_eq!(*order.lock().unwrap(), expected);
}

#[test]
fn sleep_waits_at_least_its_duration() {
    let rt = runtime(1);
    let clock = iokernel::sys::real::RealClock::new();
    use iokernel::sys::Clock;
    let start = clock.now();
    rt.block_on(sleep(Duration::from_millis(30)));
    assert!(clock.now() - start >= Duration::from_millis(30));
}

#[test]
fn timeout_returns_the_value_or_elapsed() {
    let rt = runtime(1);
    rt.block_on(async {
        let fast = timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(fast, Ok(7));
        let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(30))).await;
        assert!(slow.is_err());
    });
}

#[test]
fn abort_cancels_a_sleeping_task() {
    let rt = runtime(2);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&finished);
    let handle = rt.spawn(async move {
        sleep(Duration::from_secs(30)).await;
        f.fetch_add(1, Ordering::SeqCst);
    });
    rt.block_on(sleep(Duration::from_millis(5)));
    handle.abort();
    let result = rt.block_on(handle);
    assert_eq!(result, Err(JoinError::Cancelled));
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

/// A task polled over and over with the waker it registered (it wakes
/// itself every poll) checks for an abort without the lock: an abort from
/// another thread still ends it.
#[test]
fn abort_stops_a_task_that_keeps_waking_itself() {
    let rt = runtime(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&polls);
    let handle = rt.spawn(std::future::poll_fn(move |cx| {
        p.fetch_add(1, Ordering::SeqCst);
        cx.waker().wake_by_ref();
        std::task::Poll::<()>::Pending
    }));
    while polls.load(Ordering::SeqCst) < 1000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.abort();
    let result = rt.block_on(timeout(Duration::from_secs(10), handle));
    assert_eq!(result, Ok(Err(JoinError::Cancelled)), "the abort was lost");
}

#[test]
fn spawn_local_runs_non_send_futures_on_the_same_thread() {
    let rt = runtime(2);
    let handle = rt.spawn(async {
        let here = worker_name();
        let local = spawn_local(async move {
            // Rc held across an await: this future is not Send.
            let shared = std::rc::Rc::new(std::cell::Cell::new(0));
            sleep(Duration::from_millis(1)).await;
            shared.set(shared.get() + 41);
            (worker_name(), shared.get())
        });
        let (there, value) = local.await.unwrap();
        (here == there, value + 1)
    });
    assert_eq!(rt.block_on(handle).unwrap(), (true, 42));
}

#[test]
fn dropping_the_runtime_cancels_pending_tasks() {
    let rt = runtime(2);
    let handle = rt.spawn(sleep(Duration::from_secs(60)));
    drop(rt);
    assert_eq!(runtime::block_on_here(handle), Err(JoinError::Cancelled));
}

#[test]
fn a_handle_spawns_from_another_thread_and_is_cancelled_after_the_runtime_drops() {
    let rt = runtime(2);
    let handle = rt.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = {
        let handle = handle.clone();
        spawn_named("not-iokernel".into(), move || {
            let _ = tx.send(runtime::block_on_here(
                handle.spawn(async { worker_name() }),
            ));
        })
        .expect("thread starts")
    };
    let ran_on = rx.recv().expect("thread answers").expect("task ran");
    thread.join().expect("thread joins");
    assert!(ran_on.starts_with("test"), "ran on {ran_on:?}");
    drop(rt);
    // The runtime is gone: a late spawn resolves to Cancelled, never hangs.
    let late = handle.spawn(async { 1 });
    assert_eq!(runtime::block_on_here(late), Err(JoinError::Cancelled));
}

#[test]
fn channel_moves_items_between_tasks_on_different_workers() {
    let rt = runtime(2);
    let (tx, rx) = channel::<u64>(8);
    let producer = rt.spawn(async move {
        for i in 0..10_000 {
            tx.send(i).await.unwrap();
        }
    });
    let consumer = rt.spawn(async move {
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    });
    rt.block_on(async {
        producer.await.unwrap();
        assert_eq!(consumer.await.unwrap(), (0..10_000u64).sum::<u64>());
    });
}

#[test]
fn pipeline_runs_a_graph_in_dependency_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let step = |name: &'static str| {
        let order = Arc::clone(&order);
        make_task(
            move |scope| async move {
                sleep(Duration::from_millis(2)).await;
                order.lock().unwrap().push(scope.name().to_string());
            },
            name,
        )
    };
    let mut pipeline = Pipeline::new(
        PipelineConfig::new()
            .with_name("graph")
            .with_compute_threads(2)
            .with_io_backend(Backend::ThreadPool),
    );
    let sources = pipeline.set_source(vec![step("a"), step("b")]);
    let c = pipeline.add_task(step("c"), &sources);
    pipeline.add_task(step("d"), &[c]);
    let report = pipeline.execute().expect("pipeline succeeds");
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 4);
    assert_eq!(&order[2..], &["c".to_string(), "d".to_string()]);
    assert_eq!(report.completed, order);
    assert!(report.failed.is_empty() && report.skipped.is_empty());
}

fn failing_pipeline(
    policy: ErrorPolicy,
) -> (
    Result<iokernel::runtime::PipelineReport, PipelineError>,
    usize,
) {
    let ran = Arc::new(AtomicUsize::new(0));
    let mut pipeline = Pipeline::new(
        PipelineConfig::new()
            .with_compute_threads(2)
            .with_error_policy(policy),
    );
    let r = Arc::clone(&ran);
    let slow = make_task(
        move |_| async move {
            sleep(Duration::from_millis(200)).await;
            r.fetch_add(1, Ordering::SeqCst);
        },
        "slow",
    );
    let broken = make_task(
        |_| async { Err::<(), _>(std::io::Error::from_raw_os_error(5)) },
        "broken",
    );
    let ids = pipeline.set_source(vec![slow, broken]);
    let r = Arc::clone(&ran);
    pipeline.add_task(
        make_task(
            move |_| async move {
                r.fetch_add(100, Ordering::SeqCst);
            },
            "after-broken",
        ),
        &[ids[1]],
    );
    let result = pipeline.execute();
    (result, ran.load(Ordering::SeqCst))
}

#[test]
fn pipeline_fail_fast_stops_at_the_first_failure() {
    let (result, ran) = failing_pipeline(ErrorPolicy::FailFast);
    let Err(PipelineError::TaskFailed {
        task,
        error,
        report,
    }) = result
    else {
        panic!("expected a task failure, got {result:?}");
    };
    assert_eq!(task, "broken");
    assert!(error.to_string().contains("Input/output error"), "{error}");
    assert_eq!(error.errno(), Some(5), "EIO without downcasting");
    assert_eq!(
        ran, 0,
        "the slow task was aborted and the dependent never ran"
    );
    assert!(report.skipped.contains(&"slow".to_string()));
    assert!(report.skipped.contains(&"after-broken".to_string()));
}

#[test]
fn pipeline_continue_runs_everything_independent_of_the_failure() {
    let (result, ran) = failing_pipeline(ErrorPolicy::Continue);
    let Err(PipelineError::TaskFailed { task, report, .. }) = result else {
        panic!("expected a task failure, got {result:?}");
    };
    assert_eq!(task, "broken");
    assert_eq!(
        ran, 1,
        "the independent task finished; the dependent did not run"
    );
    assert_eq!(report.completed, vec!["slow".to_string()]);
    assert_eq!(report.skipped, vec!["after-broken".to_string()]);
}

fn explode() {
    panic!("boom")
}

#[test]
fn pipeline_reports_a_panicking_task_as_failed() {
    let mut pipeline = Pipeline::new(PipelineConfig::new().with_compute_threads(1));
    pipeline.set_source(vec![make_task(|_| async { explode() }, "boom")]);
    let Err(PipelineError::TaskFailed { task, error, .. }) = pipeline.execute() else {
        panic!("a panicking task must fail the pipeline");
    };
    assert_eq!(task, "boom");
    assert!(error.to_string().contains("boom"));
}

#[test]
fn backend_report_names_the_choice_and_the_rejections() {
    let rt = Runtime::builder()
        .compute_threads(1)
        .backend(Backend::Auto)
        .build()
        .unwrap();
    let report = rt.backend_report();
    for (backend, why) in &report.rejected {
        assert!(!why.is_empty(), "{backend} rejected without a reason");
    }
    assert!(runtime::backend_availability(report.selected).is_ok());
}

#[test]
fn forcing_an_unavailable_backend_is_a_clear_error() {
    for backend in Backend::CONCRETE {
        let Err(why) = runtime::backend_availability(backend) else {
            continue;
        };
        let err = Runtime::builder()
            .compute_threads(1)
            .backend(backend)
            .build()
            .err()
            .expect("an unavailable backend must not build");
        let text = err.to_string();
        assert!(
            text.contains(backend.name()) && text.contains(&why),
            "{text}"
        );
    }
}

fn iok_probe(backend_env: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_iok"))
        .arg("probe")
        .env("IOKERNEL_BACKEND", backend_env)
        .output()
        .expect("iok runs")
}

#[test]
fn iokernel_backend_env_forces_or_refuses_clearly() {
    let out = iok_probe("pool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("selected: backend pool (requested pool by IOKERNEL_BACKEND"),
        "{stdout}"
    );

    let out = iok_probe("bogus");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown I/O backend \"bogus\""), "{stderr}");

    if let Err(why) = runtime::backend_availability(Backend::Kqueue) {
        let out = iok_probe("kqueue");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("kqueue was requested by IOKERNEL_BACKEND") && stderr.contains(&why),
            "{stderr}"
        );
    }
}

#[test]
fn pipeline_tasks_return_values_in_the_order_they_were_added() {
    let mut pipeline = Pipeline::new(
        PipelineConfig::new()
            .with_compute_threads(2)
            .with_io_backend(Backend::ThreadPool),
    );
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<_> = (0..4u64)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            pipeline.add_task(
                make_task(
                    move |_| async move {
                        // Later tasks finish first: values still come in task order.
                        sleep(Duration::from_millis(30 - 10 * i.min(3))).await;
                        let file = iokernel::fs::File::create(&path).await?;
                        let len = (i as usize + 1) * 10;
                        file.write_all_at(vec![b'x'; len], 0).await.0?;
                        std::io::Result::Ok(len)
                    },
                    format!("writer-{i}"),
                ),
                &[],
            )
        })
        .collect();
    let report = pipeline.execute().expect("every task succeeds");
    assert_eq!(report.value(ids[2]), Some(&30));
    assert_eq!(
        report.values().copied().collect::<Vec<_>>(),
        vec![10, 20, 30, 40]
    );
    assert_eq!(report.into_values(), vec![10, 20, 30, 40]);
}

/// A task id only works in the pipeline that returned it: as a dependency
/// elsewhere it is refused by name (it once indexed past the end, or named
/// another task), a report answers no value for it, and a second execute
/// says the pipeline already ran instead of succeeding with nothing.
#[test]
fn pipeline_task_ids_belong_to_their_pipeline_and_a_pipeline_runs_once() {
    let config = || PipelineConfig::new().with_compute_threads(1);
    let mut first = Pipeline::new(config());
    let first_ids = first.set_source(
        (0..3)
            .map(|i| {
                make_task(
                    move |_| async move { std::io::Result::Ok(i) },
                    format!("a{i}"),
                )
            })
            .collect(),
    );
    let mut second = Pipeline::new(config());
    let second_ids = second.set_source(vec![make_task(|_| async { std::io::Result::Ok(7) }, "b0")]);
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        second.add_task(
            make_task(|_| async { std::io::Result::Ok(8) }, "foreign"),
            &[first_ids[0]],
        )
    }));
    let message = match refused {
        Ok(id) => panic!("a foreign dependency was taken as {id:?}"),
        Err(panic) => panic.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        message.contains("\"foreign\"") && message.contains("not a task of this pipeline"),
        "{message}"
    );
    let report = first.execute().expect("the first run succeeds");
    assert_eq!(report.value(first_ids[1]), Some(&1));
    assert_eq!(
        report.value(second_ids[0]),
        None,
        "an id of another pipeline"
    );
    let again = first.execute();
    assert!(
        matches!(again, Err(PipelineError::AlreadyExecuted)),
        "{:?}",
        again.map(|r| r.completed)
    );
    assert_eq!(second.execute().expect("b0 runs").into_values(), vec![7]);
}

#[test]
fn pipeline_failure_errno_is_reachable_without_downcasting() {
    let mut pipeline: Pipeline<u64> = Pipeline::new(PipelineConfig::new().with_compute_threads(1));
    pipeline.set_source(vec![make_task(
        |_| async {
            let fd =
                iokernel::io::open("/nonexistent-dir-iok/x", iokernel::io::OpenFlags::RDONLY, 0)
                    .await?;
            std::io::Result::Ok(fd as u64)
        },
        "open-missing",
    )]);
    let error = pipeline.execute().expect_err("the open fails");
    assert_eq!(error.errno(), Some(libc::ENOENT), "{error}");
    let PipelineError::TaskFailed { task, error, .. } = error else {
        panic!("a task failure");
    };
    assert_eq!(task, "open-missing");
    assert_eq!(error.errno(), Some(libc::ENOENT));
    // A task error that is not an io::Error has no errno.
    let mut pipeline = Pipeline::new(PipelineConfig::new().with_compute_threads(1));
    pipeline.set_source(vec![make_task(
        |_| async { Err::<(), _>("plain text") },
        "text",
    )]);
    assert_eq!(pipeline.execute().expect_err("fails").errno(), None);
}

#[test]
fn pipeline_io_threads_setting_reaches_the_runtime() {
    for threads in [1, 3] {
        let mut pipeline = Pipeline::new(
            PipelineConfig::new()
                .with_io_threads(threads)
                .with_io_backend(Backend::ThreadPool),
        );
        pipeline.set_source(vec![make_task(
            |_| async {
                std::io::Result::Ok(runtime::current_backend_report().unwrap().io_threads)
            },
            "report",
        )]);
        assert_eq!(pipeline.execute().unwrap().into_values(), vec![threads]);
    }
}

/// The clock these tests read (the crate's shim, as clippy asks).
fn elapsed_since(start: std::time::Duration) -> std::time::Duration {
    use iokernel::sys::Clock;
    static CLOCK: std::sync::OnceLock<iokernel::sys::real::RealClock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(iokernel::sys::real::RealClock::new).now() - start
}

fn clock_now() -> std::time::Duration {
    elapsed_since(std::time::Duration::ZERO)
}

/// Outside a runtime, `timeout(20ms, sleep(300ms))` is cut short at the
/// timeout (generous bound: well under the 300 ms sleep).
#[test]
fn outside_a_runtime_a_timeout_cuts_a_sleep_short() {
    assert!(!runtime::in_runtime());
    let start = clock_now();
    let result = runtime::block_on_here(timeout(
        Duration::from_millis(20),
        sleep(Duration::from_millis(300)),
    ));
    let took = elapsed_since(start);
    assert!(result.is_err(), "the sleep outlasts the timeout");
    assert!(
        took >= Duration::from_millis(20),
        "not before the deadline: {took:?}"
    );
    assert!(took < Duration::from_millis(200), "cut short: {took:?}");
}

/// Nested timeouts outside a runtime: the earliest deadline wins, and a
/// future that finishes in time is not cut.
#[test]
fn outside_a_runtime_nested_timeouts_and_quick_futures() {
    let start = clock_now();
    let outer = runtime::block_on_here(timeout(
        Duration::from_millis(20),
        timeout(Duration::from_secs(5), sleep(Duration::from_secs(5))),
    ));
    assert!(outer.is_err(), "the outer 20 ms deadline fires: {outer:?}");
    assert!(elapsed_since(start) < Duration::from_millis(200));
    // The inner deadline first: the outer gets Ok(Err(Elapsed)).
    let inner = runtime::block_on_here(timeout(
        Duration::from_secs(5),
        timeout(Duration::from_millis(10), sleep(Duration::from_secs(5))),
    ));
    assert!(matches!(inner, Ok(Err(_))), "{inner:?}");
    // A sleep shorter than its timeout sleeps its full length and is Ok.
    let start = clock_now();
    let quick = runtime::block_on_here(timeout(
        Duration::from_secs(5),
        sleep(Duration::from_millis(15)),
    ));
    assert!(quick.is_ok());
    let took = elapsed_since(start);
    assert!(
        took >= Duration::from_millis(15) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // A bare sleep outside a runtime still sleeps its whole duration.
    let start = clock_now();
    runtime::block_on_here(sleep(Duration::from_millis(15)));
    assert!(elapsed_since(start) >= Duration::from_millis(15));
}

/// Outside a runtime, a timeout over a future woken from another thread
/// returns as soon as it is woken, not at the deadline.
#[test]
fn outside_a_runtime_a_timeout_returns_when_its_future_is_woken() {
    let (tx, rx) = channel::<u32>(1);
    let sender = iokernel::sys::real::thread::spawn_named("waker".into(), move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.try_send(7).unwrap();
    })
    .unwrap();
    let start = clock_now();
    let got = runtime::block_on_here(timeout(Duration::from_secs(10), rx.recv()));
    assert_eq!(got, Ok(Some(7)));
    assert!(
        elapsed_since(start) < Duration::from_secs(2),
        "woken, not timed out"
    );
    sender.join().unwrap();
}

/// Open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Dropping a runtime closes the io_uring ring and eventfd `block_on`
/// opened on the calling thread (not at thread exit): after each runtime
/// created and dropped on this thread the fd count is what it was before
/// the first.
#[test]
fn dropping_runtimes_in_a_loop_leaks_no_fds_on_the_calling_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fds");
    std::fs::write(&path, b"data").unwrap();
    let before = open_fds();
    for backend in Backend::CONCRETE {
        if let Err(reason) = runtime::backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let cycle = || {
            let rt = one_thread_runtime(backend);
            rt.block_on(async {
                // An op on this thread: on io_uring it opens this thread's ring.
                let fd = iokernel::io::open(&path, iokernel::io::OpenFlags::RDONLY, 0)
                    .await
                    .unwrap();
                iokernel::io::close(fd).await.unwrap();
            });
            drop(rt);
        };
        for i in 0..20 {
            cycle();
            let after = open_fds();
            assert_eq!(
                after, before,
                "{backend}: fds {before} -> {after} after runtime {i}"
            );
        }
    }
}

/// A runtime dropped from inside another runtime's `block_on` on the same
/// thread leaves that thread's ring to the running loop: an op the outer
/// loop has in flight on it is not cancelled, and completes afterwards.
#[test]
fn dropping_a_runtime_inside_another_runtimes_loop_keeps_the_loops_ring() {
    use std::io::Write;
    if let Err(reason) = runtime::backend_availability(Backend::IoUring) {
        eprintln!("skipping: io_uring unavailable: {reason}");
        return;
    }
    let build = || {
        Runtime::builder()
            .compute_threads(1)
            .backend(Backend::IoUring)
            .build()
            .unwrap()
    };
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let sock = std::os::fd::AsRawFd::as_raw_fd(&ours);
    let outer = build();
    let got = outer.block_on(async move {
        let mut recv = std::pin::pin!(iokernel::io::recv(sock, vec![0u8; 8]));
        // Submit the recv (on this thread's ring) without waiting for it.
        std::future::poll_fn(|cx| {
            assert!(
                std::future::Future::poll(recv.as_mut(), cx).is_pending(),
                "nothing to read yet"
            );
            std::task::Poll::Ready(())
        })
        .await;
        drop(build());
        theirs.write_all(b"hi").unwrap();
        let iokernel::buf::BufResult(n, buf) = recv.await;
        buf[..n.expect("the recv was not cancelled by the inner drop")].to_vec()
    });
    assert_eq!(got, b"hi");
}

/// An 8 KiB file of `byte`, just written (so in the page cache), in a
/// directory that lives as long as the returned guard.
fn hot_file(byte: u8) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot");
    std::fs::write(&path, vec![byte; 8192]).unwrap();
    (dir, path)
}

/// A runtime of one worker and one blocking thread on each backend this
/// host has (the others are named as skipped).
fn one_thread_runtimes() -> Vec<(Backend, Runtime)> {
    backends::runtimes_on_every_backend(1)
}

/// A runtime on `backend` with one worker and one blocking-I/O thread.
fn one_thread_runtime(backend: Backend) -> Runtime {
    backends::one_worker_runtime(backend, 1)
}

/// Run `body` on `rt` with `path` open for reading, and close it after.
fn on_hot_fd<T, Fut>(
    rt: &Runtime,
    path: &std::path::Path,
    body: impl FnOnce(std::os::fd::RawFd) -> Fut,
) -> T
where
    Fut: std::future::Future<Output = T>,
{
    rt.block_on(async {
        let fd = iokernel::io::open(path, iokernel::io::OpenFlags::RDONLY, 0)
            .await
            .unwrap();
        let value = body(fd).await;
        iokernel::io::close(fd).await.unwrap();
        value
    })
}

/// Reads of cached pages complete inline (no handoff), but a task whose
/// every read hits still lets the other tasks on its worker run: the
/// inline path yields every few hits. Without that, the reader below
/// would do all its reads before the task that stops it ever ran.
#[test]
fn a_task_whose_reads_all_hit_the_page_cache_still_yields() {
    const READS_MAX: u64 = 200_000;
    let (_dir, path) = hot_file(3);
    for (backend, rt) in one_thread_runtimes() {
        let reads = on_hot_fd(&rt, &path, |fd| async move {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = {
                let stop = Arc::clone(&stop);
                iokernel::runtime::spawn(async move {
                    let mut reads = 0;
                    let mut buf = vec![0u8; 4096];
                    while !stop.load(Ordering::Relaxed) && reads < READS_MAX {
                        let iokernel::buf::BufResult(n, back) =
                            iokernel::io::pread(fd, buf, 0).await;
                        assert_eq!(n.unwrap(), 4096);
                        buf = back;
                        reads += 1;
                    }
                    reads
                })
            };
            // Spawned after the reader, onto the same (only) worker.
            let stopper =
                iokernel::runtime::spawn(async move { stop.store(true, Ordering::Relaxed) });
            let reads = reader.await.unwrap();
            stopper.await.unwrap();
            reads
        });
        assert!(
            reads < READS_MAX,
            "{backend}: the reader never yielded to the task that stops it"
        );
    }
}

/// Tasks that take turns reading one hot file (the hint behind
/// `YIELD_EVERY_CONTENDED`).
const TURN_TASKS: usize = 8;
const TURN_READS_PER_TASK: usize = 400;
/// Hits in a row a task may get while others wait to run
/// (`YIELD_EVERY_CONTENDED`; a lone task's limit is 32).
const TURN_RUN_MAX: usize = 4;

/// `TURN_TASKS` tasks each pread `fd` `TURN_READS_PER_TASK` times; the
/// task ids in the order their reads completed.
async fn reads_in_turn(fd: std::os::fd::RawFd) -> Vec<usize> {
    // Warm the fd's inline state, so the reads below hit.
    let iokernel::buf::BufResult(n, _) = iokernel::io::pread(fd, vec![0u8; 4096], 0).await;
    assert_eq!(n.unwrap(), 4096);
    let order = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = (0..TURN_TASKS)
        .map(|task| {
            let order = Arc::clone(&order);
            iokernel::runtime::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for _ in 0..TURN_READS_PER_TASK {
                    let iokernel::buf::BufResult(n, back) = iokernel::io::pread(fd, buf, 0).await;
                    assert_eq!(n.unwrap(), 4096);
                    buf = back;
                    order.lock().unwrap().push(task);
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    order
}

/// The lengths of the runs of one task's reads in `order` while other
/// tasks still had reads left.
fn turn_runs(order: &[usize]) -> Vec<usize> {
    let mut left = [TURN_READS_PER_TASK; TURN_TASKS];
    let mut runs = Vec::new();
    let (mut run, mut last) = (0, usize::MAX);
    for &task in order {
        if task != last && run > 0 {
            runs.push(run);
            run = 0;
        }
        last = task;
        left[task] -= 1;
        if left.iter().filter(|&&l| l > 0).count() > 1 {
            run += 1;
        }
    }
    runs.push(run);
    runs
}

/// The median of [`turn_runs`].
fn median_turn(order: &[usize]) -> usize {
    let mut runs = turn_runs(order);
    runs.sort_unstable();
    runs[runs.len() / 2]
}

/// On the simulated kernel (faults off, so every read after the first
/// hits the page cache), on every driver: tasks whose reads all hit take
/// turns after `TURN_RUN_MAX` reads each, not after the long run a lone
/// task gets, so none waits for every other task's run of hits (what made
/// the p99 of hot reads at QD 32 about a millisecond). The simulated
/// scheduler picks the next task at random, so a task may get two turns
/// in a row: the typical run is checked, deterministically per seed.
#[cfg(feature = "sim")]
#[test]
fn tasks_whose_reads_all_hit_take_turns_after_a_few_reads_simulated() {
    use iokernel::sim::{self, SimDriver, SimOptions};
    for driver in [
        SimDriver::Pool,
        SimDriver::Ring,
        SimDriver::EpollSemantics,
        SimDriver::KqueueSemantics,
    ] {
        let mut options = SimOptions::new(7);
        options.driver = driver;
        let kernel = sim::new_kernel(options).unwrap();
        kernel.write_file_durable("/hot", &[5u8; 8192]).unwrap();
        let order = sim::run(&kernel, async {
            let fd = iokernel::io::open("/hot", iokernel::io::OpenFlags::RDONLY, 0)
                .await
                .unwrap();
            let order = reads_in_turn(fd).await;
            iokernel::io::close(fd).await.unwrap();
            order
        })
        .expect("the sim run ends");
        let median = median_turn(&order);
        assert!(
            median <= TURN_RUN_MAX,
            "{}: the median run of one task's hot reads while others waited is {median}",
            driver.name()
        );
    }
}

/// The same on the real kernel, every backend. A read can miss here (it
/// then waits on the driver and its task is not ready), letting the tasks
/// still ready run longer, so the typical run is checked: half the runs
/// at most `TURN_RUN_MAX` (without the hint every run is 32).
#[test]
fn tasks_whose_reads_all_hit_take_turns_after_a_few_reads() {
    let (_dir, path) = hot_file(5);
    for (backend, rt) in one_thread_runtimes() {
        let order = on_hot_fd(&rt, &path, reads_in_turn);
        let median = median_turn(&order);
        assert!(
            median <= TURN_RUN_MAX,
            "{backend}: the median run of one task's hot reads while others waited is {median}"
        );
    }
}

/// `block_on` returns as soon as its future does, even when that future
/// still holds an op in flight (a `timeout` around a `recv` that got no
/// data keeps the recv until the timeout itself is dropped): the op is
/// abandoned and cancelled when `block_on` drops the future, not waited
/// for. On io_uring the thread's ring used to wait for it for its whole
/// drain limit (10 s) before `block_on` returned.
#[test]
fn block_on_does_not_wait_for_an_op_its_finished_future_still_holds() {
    for (backend, rt) in one_thread_runtimes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
        let runner = spawn_named(format!("held-op-{backend}"), move || {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&server);
            let waited = rt.block_on(timeout(
                Duration::from_millis(20),
                iokernel::io::recv(fd, vec![0u8; 16]),
            ));
            let _ = done_tx.send(waited.is_err());
            // The runtime goes once the peer has closed: that ends a recv
            // still blocking a pool thread.
            let _ = closed_rx.recv();
            drop(rt);
        })
        .unwrap();
        let timed_out = done_rx.recv_timeout(Duration::from_secs(5));
        drop(client);
        let _ = closed_tx.send(());
        runner.join().unwrap();
        assert_eq!(
            timed_out,
            Ok(true),
            "{backend}: block_on returned after its timeout"
        );
    }
}

/// A worker whose only timer is a `Duration::MAX` deadline parks with
/// that far timeout (in the ring, the poller or on its condvar) and still
/// wakes for a value sent from a plain thread.
#[test]
fn a_worker_parked_on_a_duration_max_deadline_wakes_for_a_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touch");
    for (backend, rt) in one_thread_runtimes() {
        let (tx, rx) = channel::<u32>(1);
        let sender = spawn_named("far-deadline-sender".to_string(), move || {
            std::thread::sleep(Duration::from_millis(20));
            runtime::block_on_here(tx.send(7)).expect("receiver alive");
        })
        .unwrap();
        let got = rt.block_on(async {
            // An op first: on io_uring the thread parks in its ring from now.
            let fd = iokernel::io::open(
                &path,
                iokernel::io::OpenFlags::RDWR | iokernel::io::OpenFlags::CREAT,
                0o644,
            )
            .await
            .unwrap();
            iokernel::io::close(fd).await.unwrap();
            timeout(Duration::MAX, rx.recv()).await
        });
        assert_eq!(got, Ok(Some(7)), "{backend}");
        sender.join().unwrap();
    }
}

/// Names of this process's threads (`/proc/self/task/*/comm`).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A task holding the last reference to its own runtime drops it: the
/// runtime stops its other workers and the task's worker ends once that
/// poll returns. Dropping it there used to panic the task ("failed to join
/// thread: Resource deadlock avoided"): a worker cannot wait for itself.
#[test]
fn a_runtime_dropped_by_its_own_task_shuts_down_without_a_panic() {
    for backend in Backend::CONCRETE {
        if let Err(reason) = runtime::backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let name = format!("sd{}", backend.to_string().chars().next().unwrap_or('x'));
        let rt = Arc::new(
            Runtime::builder()
                .name(name.clone())
                .compute_threads(2)
                .backend(backend)
                .build()
                .unwrap(),
        );
        let worker = format!("{name}-worker");
        let count = || {
            thread_names()
                .iter()
                .filter(|n| n.starts_with(&worker))
                .count()
        };
        // (A worker names itself as it starts.)
        for _ in 0..200 {
            if count() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(count(), 2, "{backend}: the workers, by name");
        let (tx, rx) = std::sync::mpsc::channel();
        let last = Arc::clone(&rt);
        let task = rt.spawn(async move {
            // Wait until the test's own reference is gone.
            while Arc::strong_count(&last) > 1 {
                sleep(Duration::from_millis(1)).await;
            }
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(last)));
            let _ = tx.send(dropped.is_ok());
        });
        drop(task);
        drop(rt);
        let dropped_cleanly = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the task ran to its end");
        assert!(dropped_cleanly, "{backend}: the drop panicked");
        let mut left = Vec::new();
        for _ in 0..200 {
            left = thread_names()
                .into_iter()
                .filter(|n| n.starts_with(&worker))
                .collect();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            left.is_empty(),
            "{backend}: workers still running: {left:?}"
        );
    }
}

/// A connected Unix socket pair: ours (non-blocking, with its fd) and the
/// peer's.
fn socket_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
    std::os::fd::RawFd,
) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ours);
    (ours, theirs, fd)
}

/// Poll `op` once with the task's waker: its output, or pending (then it
/// is submitted and not waited for).
async fn poll_once<F: std::future::Future + Unpin>(op: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(std::pin::Pin::new(&mut *op), cx))
    })
    .await
}

/// An op submitted on a runtime's thread and then awaited on another
/// thread (an `Op` is `Send`) gets its bytes on every backend; on io_uring
/// it reaches its ring from there through the ring's mailbox, while the
/// ring's thread goes on running.
#[test]
fn an_op_awaited_on_another_thread_after_its_submission_gets_its_bytes() {
    use std::io::Write;
    for (backend, rt) in one_thread_runtimes() {
        let (_ours, mut theirs, sock) = socket_pair();
        let got = rt.block_on(async move {
            let mut recv = iokernel::io::recv(sock, vec![0u8; 8]);
            assert!(
                poll_once(&mut recv).await.is_pending(),
                "nothing to read yet"
            );
            let (tx, rx) = channel::<Vec<u8>>(1);
            let afar = spawn_named("afar".into(), move || {
                let iokernel::buf::BufResult(n, buf) = recv.wait();
                let n = n.expect("the recv awaited afar failed");
                tx.try_send(buf[..n].to_vec()).unwrap();
            })
            .unwrap();
            theirs.write_all(b"far").unwrap();
            let got = rx.recv().await.expect("the thread afar sent nothing");
            afar.join().unwrap();
            got
        });
        assert_eq!(got, b"far", "{backend}");
    }
}

/// A runtime dropped while an op it submitted is still held (returned
/// out of `block_on`) loses no bytes: the op's result waits for its
/// future after the ring has closed, or the op was cancelled before it
/// read anything and the bytes are still in the socket.
#[test]
fn an_op_that_outlives_its_runtime_loses_no_bytes() {
    use std::io::{Read, Write};
    for (backend, rt) in one_thread_runtimes() {
        let (mut ours, mut theirs, sock) = socket_pair();
        theirs.write_all(b"kept").unwrap();
        // The op, or its output when the first poll finished it (the bytes
        // were there).
        let first = rt.block_on(async move {
            let mut recv = iokernel::io::recv(sock, vec![0u8; 8]);
            match poll_once(&mut recv).await {
                std::task::Poll::Ready(output) => Err(output),
                std::task::Poll::Pending => Ok(recv),
            }
        });
        drop(rt);
        let output = match first {
            Err(output) => output,
            // (On the pool the job may still be finishing on its thread.)
            Ok(recv) => ready_within_seconds(recv, 10)
                .unwrap_or_else(|| panic!("{backend}: the op's result went with its runtime")),
        };
        let got = match output {
            iokernel::buf::BufResult(Ok(n), buf) => buf[..n].to_vec(),
            iokernel::buf::BufResult(Err(e), _) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "{backend}: {e}");
                let mut rest = [0u8; 8];
                let n = ours
                    .read(&mut rest)
                    .expect("the bytes are still in the socket");
                rest[..n].to_vec()
            }
        };
        assert_eq!(got, b"kept", "{backend}");
    }
}

/// An op polled inside `block_on` and handed to a task on a worker, which
/// awaits it only after `block_on` has returned (the calling thread never
/// runs the runtime again), gets its bytes on every backend. On io_uring
/// the op is on the calling thread's ring, whose loop has left: the ring
/// leaves the result in its mailbox for the worker instead of in a table
/// no loop reads.
#[test]
fn an_op_handed_to_a_worker_as_block_on_returns_gets_its_bytes() {
    use std::io::Write;
    for (backend, rt) in one_thread_runtimes() {
        let (_ours, mut theirs, sock) = socket_pair();
        theirs.write_all(b"handed").unwrap();
        let (returned_tx, returned_rx) = channel::<()>(1);
        let (got_tx, got_rx) = std::sync::mpsc::channel();
        rt.block_on(async move {
            let mut recv = iokernel::io::recv(sock, vec![0u8; 8]);
            let first = poll_once(&mut recv).await;
            drop(iokernel::runtime::spawn(async move {
                returned_rx.recv().await;
                let output = match first {
                    std::task::Poll::Ready(output) => output,
                    std::task::Poll::Pending => recv.await,
                };
                got_tx.send(output).unwrap();
            }));
        });
        returned_tx.try_send(()).unwrap();
        let iokernel::buf::BufResult(n, buf) = got_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{backend}: the op's result never reached the worker"));
        let n = n.unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(&buf[..n], b"handed", "{backend}");
    }
}

/// The same with the bytes sent only after `block_on` has returned: the
/// op is still waiting for them when the calling thread's loop leaves.
/// `block_on` returns promptly and the worker's task gets the bytes.
#[test]
fn an_op_still_waiting_when_block_on_returns_gets_its_bytes_on_a_worker() {
    use std::io::Write;
    for (backend, rt) in one_thread_runtimes() {
        let (_ours, mut theirs, sock) = socket_pair();
        let recv = iokernel::io::recv(sock, vec![0u8; 8]);
        let got =
            await_on_a_worker_after_block_on(backend, &rt, recv, || theirs.write_all(b"later"));
        assert_eq!(got, b"later", "{backend}");
    }
}

/// The same for a read of a pipe at its position (a read waits on the
/// pipe's writer as a recv waits on its peer).
#[test]
fn a_pipe_read_still_waiting_when_block_on_returns_gets_its_bytes_on_a_worker() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    for (backend, rt) in one_thread_runtimes() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let read = iokernel::io::read(reader.as_raw_fd(), vec![0u8; 8]);
        let got =
            await_on_a_worker_after_block_on(backend, &rt, read, || writer.write_all(b"piped"));
        assert_eq!(got, b"piped", "{backend}");
    }
}

/// Poll `op` once inside `block_on` (nothing to read yet), hand it to a
/// task on a worker as `block_on` returns, then let `send` give it its
/// bytes: what the worker's task got. `block_on` must return within 2 s
/// and the bytes reach the worker within 10 s.
fn await_on_a_worker_after_block_on<F>(
    backend: Backend,
    rt: &Runtime,
    op: F,
    send: impl FnOnce() -> std::io::Result<()>,
) -> Vec<u8>
where
    F: std::future::Future<Output = iokernel::buf::BufResult<usize, Vec<u8>>>
        + Unpin
        + Send
        + 'static,
{
    use iokernel::sys::Clock;
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let clock = iokernel::sys::real::RealClock::new();
    let started = clock.now();
    rt.block_on(async move {
        let mut op = op;
        assert!(poll_once(&mut op).await.is_pending(), "nothing to read yet");
        drop(iokernel::runtime::spawn(async move {
            got_tx.send(op.await).unwrap();
        }));
    });
    let returned_after = clock.now() - started;
    send().unwrap();
    let iokernel::buf::BufResult(n, buf) = got_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{backend}: the op's bytes never reached the worker"));
    assert!(
        returned_after < Duration::from_secs(2),
        "{backend}: block_on took {returned_after:?} to return"
    );
    buf[..n.unwrap_or_else(|e| panic!("{backend}: {e}"))].to_vec()
}

/// A recv submitted on a runtime's thread and dropped on another thread
/// loses no bytes, on every backend: the next recv on the socket gets
/// what the peer sends afterwards (on io_uring the drop reaches the ring
/// through its mailbox, and the next reader waits for the dropped one or
/// takes what it left).
#[test]
fn a_recv_dropped_on_another_thread_loses_no_bytes() {
    use std::io::Write;
    for (backend, rt) in one_thread_runtimes() {
        let (_ours, mut theirs, sock) = socket_pair();
        let got = rt.block_on(async move {
            let mut dropped = iokernel::io::recv(sock, vec![0u8; 8]);
            assert!(
                poll_once(&mut dropped).await.is_pending(),
                "nothing to read yet"
            );
            spawn_named("afar".into(), move || drop(dropped))
                .unwrap()
                .join()
                .unwrap();
            theirs.write_all(b"after").unwrap();
            let mut got = Vec::new();
            while got.len() < 5 {
                let iokernel::buf::BufResult(n, buf) = iokernel::io::recv(sock, vec![0u8; 8]).await;
                got.extend_from_slice(&buf[..n.expect("the next recv failed")]);
            }
            got
        });
        assert_eq!(got, b"after", "{backend}");
    }
}

/// A pending op kept in a thread-local that outlives the thread's rings
/// (dropped at thread exit after them) is dropped without touching the
/// gone rings, and a recv's bytes it got are kept for the next recv on the
/// socket, on every backend.
#[test]
fn an_op_dropped_after_its_threads_rings_loses_no_bytes() {
    use std::io::Write;
    type HeldRecv = iokernel::io::Op<iokernel::op::net::Recv<Vec<u8>>>;
    thread_local! {
        static HELD: std::cell::RefCell<Option<HeldRecv>> =
            const { std::cell::RefCell::new(None) };
    }
    for backend in one_thread_runtimes()
        .into_iter()
        .map(|(backend, _)| backend)
    {
        let (_ours, mut theirs, sock) = socket_pair();
        theirs.write_all(b"held").unwrap();
        // What the first recv got when its first poll finished it.
        let (first_tx, first_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        spawn_named("exits".into(), move || {
            // Touched first, so dropped last: after the rings.
            HELD.with(|held| assert!(held.borrow().is_none()));
            let rt = one_thread_runtime(backend);
            let pending = rt.block_on(async move {
                let mut recv = iokernel::io::recv(sock, vec![0u8; 8]);
                match poll_once(&mut recv).await {
                    std::task::Poll::Ready(iokernel::buf::BufResult(n, buf)) => {
                        first_tx.send(buf[..n.unwrap()].to_vec()).unwrap();
                        None
                    }
                    std::task::Poll::Pending => Some(recv),
                }
            });
            drop(rt);
            if let Some(recv) = pending {
                HELD.with(|held| *held.borrow_mut() = Some(recv));
            }
        })
        .unwrap()
        .join()
        .expect("the thread ended cleanly");
        if let Ok(first) = first_rx.try_recv() {
            assert_eq!(first, b"held", "{backend}");
            continue;
        }
        let got = one_thread_runtime(backend).block_on(async move {
            let iokernel::buf::BufResult(n, buf) = iokernel::io::recv(sock, vec![0u8; 8]).await;
            buf[..n.expect("the recv after the thread ended")].to_vec()
        });
        assert_eq!(got, b"held", "{backend}");
    }
}

/// Poll `op` on this thread (parked between polls, woken by its waker)
/// until it is ready, for at most about `seconds`: `None` if it never was.
fn ready_within_seconds<F: std::future::Future + Unpin>(
    mut op: F,
    seconds: u32,
) -> Option<F::Output> {
    let waker = std::task::Waker::from(Arc::new(UnparkWake(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    for _ in 0..seconds * 100 {
        if let std::task::Poll::Ready(output) =
            std::future::Future::poll(std::pin::Pin::new(&mut op), &mut cx)
        {
            return Some(output);
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
    None
}

/// Wakes the thread that made it.
struct UnparkWake(std::thread::Thread);

impl std::task::Wake for UnparkWake {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
