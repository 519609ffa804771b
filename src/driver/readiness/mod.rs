//! The readiness driver: epoll for sockets, the pool for files.
//!
//! Routing is explicit ([`route`]): an op with no readiness fd (every file
//! and path op), or one that also reads a file and could block on the disk
//! (`sendfile`, see [`OpCode::reads_files`]), is *offloaded* to the pool.
//! Socket ops run on the worker thread that polls them: each poll runs the
//! op's non-blocking syscall once ([`Attempt`]): a result is the op's
//! output; `EAGAIN` means *wait readable / writable*, so the task's waker is
//! recorded against the fd in this thread's epoll set and the task sleeps.
//!
//! Each runtime thread owns one epoll set (a thread-local [`Poller`],
//! created the first time a socket op on that thread has to wait, so a
//! thread that never waits opens no fds; until then it parks on its
//! condvar). Once it has a poller, it parks in `epoll_wait`, and its worker's
//! driver wake (the poller's eventfd) is installed before the first such park. Registrations
//! are one-shot and keyed by fd: several ops may wait on one fd (a reader
//! and a writer), the set is armed for the union of their interests, and an
//! event wakes (and forgets) the waiters of the interests it reports; the
//! others are armed again. Every registration re-arms with `EPOLL_CTL_MOD`
//! (`ADD` the first time, and after `ENOENT`: the fd was closed and its
//! number reused), so a stale arming never stands in for a live one.
//!
//! Readiness reaches tasks when the worker has nothing to run: it parks in
//! `epoll_wait` (other threads wake it through the set's eventfd). A busy
//! worker also checks without waiting every [`CHECK_EVERY_POLLS`] task
//! polls, so a stream of runnable tasks cannot starve waiting sockets.
//!
//! Cancellation is trivially safe: the syscall only ever runs inside
//! `poll`, so the kernel never holds an op's buffer between polls. Dropping
//! a waiting op removes its waiter; a later event for it wakes nobody.
//! An op polled on a thread that runs no readiness worker (`Op::wait` from
//! plain code) finishes there with blocking waits, like the sync fallback.

use super::pool::PoolDriver;
use crate::op::{run_until_done, OpCode};
use crate::runtime::{Scheduler, WorkerShared};
use crate::sys::real::epoll::{Epoll, Ready};
use crate::sys::{Errno, Interest, Kernel, SysResult};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A busy worker looks for ready sockets (one zero-timeout `epoll_wait`)
/// after this many task polls.
const CHECK_EVERY_POLLS: u32 = 64;

/// Whether `epoll` can run here: `Err` says why not.
pub(crate) fn availability() -> Result<(), String> {
    Epoll::new()
        .map(drop)
        .map_err(|errno| format!("epoll_create1 failed: {errno:?}"))
}

/// Where an op runs on this driver.
enum Route {
    /// Try the non-blocking syscall on the worker; wait on epoll on EAGAIN.
    Readiness,
    /// A blocking syscall on the pool.
    Offload,
}

fn route<T: OpCode>(op: &T) -> Route {
    match op.readiness() {
        Some(_) if !op.reads_files() => Route::Readiness,
        _ => Route::Offload,
    }
}

/// What one non-blocking attempt found.
enum Attempt {
    /// The op's final result.
    Done(SysResult<usize>),
    /// Not ready: wait for this fd to become readable / writable.
    Wait(RawFd, Interest),
}

fn attempt<T: OpCode>(op: &mut T, kernel: &dyn Kernel) -> Attempt {
    match (op.run_blocking(kernel), op.readiness()) {
        (Err(Errno::EAGAIN), Some((fd, interest))) => Attempt::Wait(fd, interest),
        (result, _) => Attempt::Done(result),
    }
}

/// Handle to the readiness driver shared by a runtime's threads.
#[derive(Clone)]
pub(crate) struct ReadinessDriver {
    pool: PoolDriver,
}

impl ReadinessDriver {
    pub(crate) fn new(pool: PoolDriver) -> ReadinessDriver {
        ReadinessDriver { pool }
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        self.pool.kernel()
    }

    pub(crate) fn pool(&self) -> &PoolDriver {
        &self.pool
    }

    /// Take a socket op; give back an op that belongs on the pool.
    pub(crate) fn submit<T: OpCode>(&self, op: T) -> Result<ReadySubmission<T>, T> {
        match route(&op) {
            Route::Offload => Err(op),
            Route::Readiness => Ok(ReadySubmission {
                op: Some(op),
                kernel: Arc::clone(self.kernel()),
                waiting: None,
            }),
        }
    }
}

/// A socket op owned by its future, run on each poll until it is done.
pub(crate) struct ReadySubmission<T: OpCode> {
    op: Option<T>,
    kernel: Arc<dyn Kernel>,
    waiting: Option<WaiterKey>,
}

impl<T: OpCode> ReadySubmission<T> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        self.stop_waiting();
        let Some(op) = self.op.as_mut() else {
            panic!("socket op polled after it completed");
        };
        let kernel = &*self.kernel;
        if !worker_here() {
            let result = run_until_done(op, kernel, &|| false);
            return self.finish(result);
        }
        let (fd, interest) = match attempt(op, kernel) {
            Attempt::Done(result) => return self.finish(result),
            Attempt::Wait(fd, interest) => (fd, interest),
        };
        match with_poller(|poller| poller.register(fd, interest, cx.waker())) {
            Ok(Ok(key)) => {
                self.waiting = Some(key);
                Poll::Pending
            }
            // The fd cannot be watched (EBADF: closed under us): one more
            // attempt reports the op's own error.
            Ok(Err(errno)) | Err(errno) => match attempt(op, kernel) {
                Attempt::Done(result) => self.finish(result),
                Attempt::Wait(..) => self.finish(Err(errno)),
            },
        }
    }

    fn finish(&mut self, result: SysResult<usize>) -> Poll<T::Output> {
        match self.op.take() {
            Some(op) => Poll::Ready(op.complete(result)),
            None => panic!("socket op finished twice"),
        }
    }

    fn stop_waiting(&mut self) {
        if let Some(key) = self.waiting.take() {
            with_existing_poller(|poller| poller.unregister(&key));
        }
    }
}

impl<T: OpCode> Drop for ReadySubmission<T> {
    fn drop(&mut self) {
        self.stop_waiting();
    }
}

/// Names one waiter in one thread's poller.
struct WaiterKey {
    poller: u64,
    fd: RawFd,
    interest: Interest,
    id: u64,
}

/// The ops waiting on one fd.
#[derive(Default)]
struct FdWaiters {
    readers: Vec<(u64, Waker)>,
    writers: Vec<(u64, Waker)>,
    /// Whether the fd (as far as we know) is in the epoll set.
    in_set: bool,
}

impl FdWaiters {
    fn wanted(&self) -> Ready {
        Ready {
            readable: !self.readers.is_empty(),
            writable: !self.writers.is_empty(),
        }
    }

    fn list(&mut self, interest: Interest) -> &mut Vec<(u64, Waker)> {
        match interest {
            Interest::Readable => &mut self.readers,
            Interest::Writable => &mut self.writers,
        }
    }
}

/// A thread's epoll set and the wakers waiting on it.
struct Poller {
    id: u64,
    epoll: Epoll,
    fds: HashMap<RawFd, FdWaiters>,
    next_waiter: u64,
    waiters: usize,
    events: Vec<(u64, bool, bool)>,
    polls_since_check: u32,
}

static NEXT_POLLER_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static POLLER: RefCell<Option<Poller>> = const { RefCell::new(None) };
    /// The readiness run loops this thread is inside (innermost last), and
    /// whether each one's worker can already be woken through the poller.
    static LOOPS: RefCell<Vec<(Weak<WorkerShared>, bool)>> = const { RefCell::new(Vec::new()) };
}

fn worker_here() -> bool {
    LOOPS.with(|loops| !loops.borrow().is_empty())
}

/// Let other threads wake the current loop's worker out of `epoll_wait`
/// (once per loop: the first time it parks with a poller).
fn install_wake(poller: &Poller) {
    LOOPS.with(|loops| {
        let mut loops = loops.borrow_mut();
        let Some((worker, installed)) = loops.last_mut() else {
            return;
        };
        if *installed {
            return;
        }
        if let Some(worker) = worker.upgrade() {
            let waker = poller.epoll.waker();
            worker.set_driver_wake(Arc::new(move || waker.wake()));
            *installed = true;
        }
    });
}

/// Run `f` on this thread's poller, creating it on first use.
fn with_poller<R>(f: impl FnOnce(&mut Poller) -> R) -> SysResult<R> {
    POLLER.with(|local| {
        let mut local = local.try_borrow_mut().map_err(|_| Errno::EBUSY)?;
        if local.is_none() {
            *local = Some(Poller::new()?);
        }
        match local.as_mut() {
            Some(poller) => Ok(f(poller)),
            None => Err(Errno::EIO),
        }
    })
}

/// Run `f` on this thread's poller if it has one.
fn with_existing_poller<R>(f: impl FnOnce(&mut Poller) -> R) -> Option<R> {
    POLLER.with(|local| local.try_borrow_mut().ok()?.as_mut().map(f))
}

impl Poller {
    fn new() -> SysResult<Poller> {
        Ok(Poller {
            id: NEXT_POLLER_ID.fetch_add(1, Ordering::Relaxed),
            epoll: Epoll::new()?,
            fds: HashMap::new(),
            next_waiter: 0,
            waiters: 0,
            events: Vec::new(),
            polls_since_check: 0,
        })
    }

    /// Record `waker` as waiting for `interest` on `fd` and arm the set for
    /// every interest waited on there.
    fn register(&mut self, fd: RawFd, interest: Interest, waker: &Waker) -> SysResult<WaiterKey> {
        let id = self.next_waiter;
        self.next_waiter += 1;
        let entry = self.fds.entry(fd).or_default();
        entry.list(interest).push((id, waker.clone()));
        if let Err(errno) = arm(&self.epoll, fd, entry) {
            entry.list(interest).pop();
            return Err(errno);
        }
        self.waiters += 1;
        Ok(WaiterKey {
            poller: self.id,
            fd,
            interest,
            id,
        })
    }

    /// Forget a waiter (its op was polled again or dropped). The set may
    /// stay armed; an event then wakes nobody.
    fn unregister(&mut self, key: &WaiterKey) {
        if key.poller != self.id {
            return;
        }
        if let Some(entry) = self.fds.get_mut(&key.fd) {
            let list = entry.list(key.interest);
            if let Some(at) = list.iter().position(|(id, _)| *id == key.id) {
                list.swap_remove(at);
                self.waiters -= 1;
            }
        }
    }

    /// Wait for events (up to `timeout`) and collect the wakers they
    /// release into `woken`; the remaining waiters of a fd are re-armed.
    fn wait(&mut self, timeout: Option<Duration>, woken: &mut Vec<Waker>) -> SysResult<()> {
        self.polls_since_check = 0;
        let mut events = std::mem::take(&mut self.events);
        let waited = self.epoll.wait(&mut events, timeout);
        for (token, readable, writable) in events.drain(..) {
            let Ok(fd) = RawFd::try_from(token) else {
                continue;
            };
            let Some(entry) = self.fds.get_mut(&fd) else {
                continue;
            };
            // One shot: the whole registration is disarmed now.
            if readable {
                self.waiters -= entry.readers.len();
                woken.extend(entry.readers.drain(..).map(|(_, waker)| waker));
            }
            if writable {
                self.waiters -= entry.writers.len();
                woken.extend(entry.writers.drain(..).map(|(_, waker)| waker));
            }
            if !entry.wanted().is_empty() && arm(&self.epoll, fd, entry).is_err() {
                // Cannot watch it any more: let the waiters find out why.
                self.waiters -= entry.readers.len() + entry.writers.len();
                woken.extend(entry.readers.drain(..).map(|(_, waker)| waker));
                woken.extend(entry.writers.drain(..).map(|(_, waker)| waker));
            }
        }
        self.events = events;
        waited
    }
}

/// Arm `fd` once for what its waiters want (`MOD`, or `ADD` when the fd is
/// not in the set).
fn arm(epoll: &Epoll, fd: RawFd, entry: &mut FdWaiters) -> SysResult<()> {
    let token = fd as u64;
    let wanted = entry.wanted();
    let result = if entry.in_set {
        match epoll.modify(fd, token, wanted) {
            Err(Errno::ENOENT) => epoll.add(fd, token, wanted),
            other => other,
        }
    } else {
        match epoll.add(fd, token, wanted) {
            Err(Errno::EEXIST) => epoll.modify(fd, token, wanted),
            other => other,
        }
    };
    entry.in_set = result.is_ok();
    result
}

/// Wake the tasks whose sockets became ready, outside the poller's borrow.
fn wake_all(woken: Vec<Waker>) {
    for waker in woken {
        waker.wake();
    }
}

/// Scheduling for readiness runtimes: FIFO tasks, parking in `epoll_wait`.
pub(crate) struct ReadinessScheduler;

impl Scheduler for ReadinessScheduler {
    fn pick_task(&self, _runnable: usize) -> usize {
        0
    }

    fn between_polls(&self) {
        let mut woken = Vec::new();
        with_existing_poller(|poller| {
            poller.polls_since_check += 1;
            if poller.polls_since_check >= CHECK_EVERY_POLLS && poller.waiters > 0 {
                // An error here resurfaces at the next park.
                let _ = poller.wait(Some(Duration::ZERO), &mut woken);
            }
        });
        wake_all(woken);
    }

    fn idle(&self, worker: &WorkerShared, timeout: Option<Duration>) -> Result<(), String> {
        let mut woken = Vec::new();
        // A thread that never waited on a socket has no poller (and no
        // fds): it parks on the worker's condvar.
        let parked = with_existing_poller(|poller| {
            install_wake(poller);
            if worker.begin_driver_park() {
                let waited = poller.wait(timeout, &mut woken);
                worker.end_driver_park();
                waited
            } else if poller.waiters > 0 {
                poller.wait(Some(Duration::ZERO), &mut woken)
            } else {
                Ok(())
            }
        });
        wake_all(woken);
        match parked {
            Some(waited) => waited.map_err(|errno| format!("epoll_wait: {errno:?}")),
            None => {
                worker.park(timeout);
                Ok(())
            }
        }
    }

    fn enter(&self, worker: &Arc<WorkerShared>) {
        LOOPS.with(|loops| loops.borrow_mut().push((Arc::downgrade(worker), false)));
    }

    fn leave(&self) {
        LOOPS.with(|loops| loops.borrow_mut().pop());
    }
}
