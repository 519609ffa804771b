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
        make_task(name, move |scope| async move {
            sleep(Duration::from_millis(2)).await;
            order.lock().unwrap().push(scope.name().to_string());
        })
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
    let slow = make_task("slow", move |_| async move {
        sleep(Duration::from_millis(200)).await;
        r.fetch_add(1, Ordering::SeqCst);
    });
    let broken = make_task("broken", |_| async {
        Err::<(), _>(std::io::Error::from_raw_os_error(5))
    });
    let ids = pipeline.set_source(vec![slow, broken]);
    let r = Arc::clone(&ran);
    pipeline.add_task(
        make_task("after-broken", move |_| async move {
            r.fetch_add(100, Ordering::SeqCst);
        }),
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
    pipeline.set_source(vec![make_task("boom", |_| async { explode() })]);
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
