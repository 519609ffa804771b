//! Bounded worker pool: the real [`Offload`].
//!
//! `threads` OS threads pull jobs from one bounded FIFO. A full queue hands
//! the job back ([`Saturated`]); submitters that want to wait register a
//! waker and are woken when a worker takes a job off the queue. On drop the
//! pool stops accepting jobs, lets the workers finish every queued job (the
//! contract says an accepted job always runs) and joins them, waiting at
//! most its drop wait ([`DROP_WAIT`] unless set with
//! [`ThreadPool::with_drop_wait`]): a job blocked for good (the open of a
//! FIFO no one ever opens from the other end, a read of a pipe no one
//! writes) would otherwise hold the drop forever. Past the wait the
//! workers are left to finish on their own, each job still running on
//! them once what blocks it ends (a job owns everything it touches).

use super::thread::spawn_named;
use crate::sys::{Job, Offload, QueueProbe, Saturated};
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::Duration;

/// Default queued jobs per worker thread before the pool reports saturation.
pub const QUEUE_DEPTH_PER_THREAD: usize = 1024;

/// How long a dropped pool waits for its workers by default.
pub const DROP_WAIT: Duration = Duration::from_secs(10);

struct QueueState {
    jobs: VecDeque<Job>,
    space_waiters: Vec<Waker>,
    shutting_down: bool,
    /// Workers still in their loop.
    live_workers: usize,
}

struct Shared {
    state: Mutex<QueueState>,
    work_ready: Condvar,
    /// Notified as each worker leaves its loop.
    worker_left: Condvar,
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
    drop_wait: Duration,
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
                live_workers: 0,
            }),
            work_ready: Condvar::new(),
            worker_left: Condvar::new(),
            capacity: queue_capacity.max(1),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
            drop_wait: DROP_WAIT,
        };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            shared.lock().live_workers += 1;
            let spawned = spawn_named(format!("{name}-{i}"), move || {
                work_loop(&shared);
                shared.lock().live_workers -= 1;
                shared.worker_left.notify_all();
            });
            match spawned {
                Ok(worker) => pool.workers.push(worker),
                Err(e) => {
                    pool.shared.lock().live_workers -= 1;
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// Wait at most `limit` for the workers when the pool is dropped
    /// (default 10 s, `DROP_WAIT`; the module docs say why).
    pub fn with_drop_wait(mut self, limit: Duration) -> ThreadPool {
        self.drop_wait = limit;
        self
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
        let mut state = self.shared.lock();
        state.shutting_down = true;
        self.shared.work_ready.notify_all();
        let (state, _) = self
            .shared
            .worker_left
            .wait_timeout_while(state, self.drop_wait, |state| state.live_workers > 0)
            .unwrap_or_else(|p| p.into_inner());
        let all_left = state.live_workers == 0;
        drop(state);
        for worker in self.workers.drain(..) {
            // Past the wait, a worker still in a job is left to finish it
            // (and the queue) on its own.
            if all_left {
                let _ = worker.join();
            }
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

    /// A job blocked for good does not hold the drop past its wait; the
    /// worker left behind still finishes it, and the job queued behind it,
    /// once it unblocks.
    #[test]
    fn a_drop_waits_for_a_blocked_job_only_as_long_as_its_drop_wait() {
        let pool = ThreadPool::new("t", 1, 16)
            .unwrap()
            .with_drop_wait(Duration::from_millis(50));
        let (unblock_tx, unblock_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (ran_tx, ran_rx) = mpsc::channel::<u32>();
        let first = ran_tx.clone();
        pool.try_offload(
            "test",
            Box::new(move || {
                started_tx.send(()).unwrap();
                unblock_rx.recv().unwrap();
                first.send(1).unwrap();
            }),
        )
        .unwrap();
        pool.try_offload("test", Box::new(move || ran_tx.send(2).unwrap()))
            .unwrap();
        started_rx.recv().unwrap();
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let dropper = spawn_named("t-drop".into(), move || {
            drop(pool);
            dropped_tx.send(()).unwrap();
        })
        .unwrap();
        assert!(
            dropped_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the drop returned while a job was blocked"
        );
        dropper.join().unwrap();
        unblock_tx.send(()).unwrap();
        let after = Duration::from_secs(5);
        assert_eq!(
            ran_rx.recv_timeout(after),
            Ok(1),
            "the blocked job finished"
        );
        assert_eq!(
            ran_rx.recv_timeout(after),
            Ok(2),
            "and the job queued behind it ran"
        );
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
