//! Bounded worker pool: the real [`Offload`].
//!
//! `threads` OS threads pull jobs from one bounded FIFO. A full queue hands
//! the job back ([`Saturated`]); submitters that want to wait register a
//! waker and are woken when a worker takes a job off the queue. On drop the
//! pool stops accepting jobs, lets the workers finish every queued job (the
//! contract says an accepted job always runs) and joins them.

use super::thread::spawn_named;
use crate::sys::{Job, Offload, QueueProbe, Saturated};
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;

/// Default queued jobs per worker thread before the pool reports saturation.
pub const QUEUE_DEPTH_PER_THREAD: usize = 1024;

struct QueueState {
    jobs: VecDeque<Job>,
    space_waiters: Vec<Waker>,
    shutting_down: bool,
}

struct Shared {
    state: Mutex<QueueState>,
    work_ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A job panicking never holds this lock, so poisoning cannot leave
        // the queue half-updated; keep going with the inner state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded pool of blocking-I/O worker threads.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// Start `threads` workers (at least 1) named `<name>-io-<i>`, with a
    /// queue of `queue_capacity` jobs.
    /// `threads` workers named `<name>-<i>`.
    pub fn new(name: &str, threads: usize, queue_capacity: usize) -> io::Result<ThreadPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                space_waiters: Vec::new(),
                shutting_down: false,
            }),
            work_ready: Condvar::new(),
            capacity: queue_capacity.max(1),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            pool.workers
                .push(spawn_named(format!("{name}-{i}"), move || {
                    work_loop(&shared)
                })?);
        }
        Ok(pool)
    }
}

fn work_loop(shared: &Shared) {
    loop {
        let (job, waiters) = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break (job, std::mem::take(&mut state.space_waiters));
                }
                if state.shutting_down {
                    return;
                }
                state = shared
                    .work_ready
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        for waker in waiters {
            waker.wake();
        }
        // A panicking job must not take the worker (and every job queued
        // behind it) down with it; the job's own completion handles report it.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

impl Offload for ThreadPool {
    fn try_offload(&self, _label: &'static str, job: Job) -> Result<(), Saturated> {
        let mut state = self.shared.lock();
        if state.jobs.len() >= self.shared.capacity || state.shutting_down {
            return Err(Saturated(job));
        }
        state.jobs.push_back(job);
        drop(state);
        self.shared.work_ready.notify_one();
        Ok(())
    }

    fn queue_probe(&self) -> Option<QueueProbe> {
        let shared = Arc::clone(&self.shared);
        Some(Arc::new(move || !shared.lock().jobs.is_empty()))
    }

    fn wake_when_free(&self, waker: &Waker) {
        let mut state = self.shared.lock();
        if state.jobs.len() < self.shared.capacity {
            drop(state);
            waker.wake_by_ref();
            return;
        }
        if !state.space_waiters.iter().any(|w| w.will_wake(waker)) {
            state.space_waiters.push(waker.clone());
        }
    }

    fn threads(&self) -> usize {
        self.workers.len()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutting_down = true;
        self.shared.work_ready.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn every_accepted_job_runs_once_even_when_dropped() {
        let ran = Arc::new(AtomicUsize::new(0));
        let pool = ThreadPool::new("t", 2, 10_000).unwrap();
        for _ in 0..5000 {
            let ran = Arc::clone(&ran);
            pool.try_offload(
                "test",
                Box::new(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        }
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 5000);
    }

    #[test]
    fn full_queue_reports_saturation_and_hands_the_job_back() {
        let pool = ThreadPool::new("t", 1, 1).unwrap();
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.try_offload(
            "test",
            Box::new(move || {
                started_tx.send(()).unwrap();
                block_rx.recv().unwrap();
            }),
        )
        .unwrap();
        started_rx.recv().unwrap();
        pool.try_offload("test", Box::new(|| {})).unwrap();
        let (tx, rx) = mpsc::channel();
        let back = pool.try_offload("test", Box::new(move || tx.send(7).unwrap()));
        let Err(Saturated(job)) = back else {
            panic!("a full queue must report saturation")
        };
        block_tx.send(()).unwrap();
        // The handed-back job is intact and still runnable.
        job();
        assert_eq!(rx.recv().unwrap(), 7);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = ThreadPool::new("t", 1, 16).unwrap();
        pool.try_offload("test", Box::new(|| panic!("job failed on purpose")))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        pool.try_offload("test", Box::new(move || tx.send(1).unwrap()))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
    }
}
