//! What the profiling harnesses (`ring_reads`, `ring_pingpong`) share: the
//! one-thread runtime they measure, chosen by the environment.

use iokernel::runtime::{Backend, Runtime};

/// One worker and one blocking-I/O thread; `BACKEND=pool|epoll` picks
/// another backend than io_uring, `METRICS=0` turns the runtime's metrics
/// off (as `iok bench` without `--metrics`).
pub fn one_thread_runtime() -> Runtime {
    let backend = match std::env::var("BACKEND").as_deref() {
        Ok("pool") => Backend::ThreadPool,
        Ok("epoll") => Backend::Epoll,
        _ => Backend::IoUring,
    };
    let metrics = std::env::var("METRICS").map_or(true, |v| v != "0");
    Runtime::builder()
        .metrics(metrics)
        .backend(backend)
        .compute_threads(1)
        .io_threads(1)
        .build()
        .unwrap()
}
