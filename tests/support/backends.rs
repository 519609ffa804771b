//! Runtimes on every backend this host offers, for tests that run the
//! same scenario on each (included with `#[path]` by the test files that
//! use it).

use iokernel::runtime::{Backend, Runtime};

/// A runtime on `backend` with one worker and `io_threads` blocking-I/O
/// threads.
pub fn one_worker_runtime(backend: Backend, io_threads: usize) -> Runtime {
    Runtime::builder()
        .compute_threads(1)
        .io_threads(io_threads)
        .backend(backend)
        .build()
        .unwrap()
}

/// [`one_worker_runtime`] on each backend this host has (the others are
/// named as skipped).
pub fn runtimes_on_every_backend(io_threads: usize) -> Vec<(Backend, Runtime)> {
    Backend::CONCRETE
        .into_iter()
        .filter_map(|backend| {
            if let Err(reason) = iokernel::runtime::backend_availability(backend) {
                eprintln!("skipping {backend}: {reason}");
                return None;
            }
            Some((backend, one_worker_runtime(backend, io_threads)))
        })
        .collect()
}
