//! The readiness driver: a [`Poller`] (epoll, kqueue, or the simulator's
//! pollers with either semantics) for sockets, the pool for files.
//!
//! Routing is explicit ([`route`]): an op with no readiness fd (every file
//! and path op), or one that also reads a file and could block on the disk
//! (`sendfile`, see [`OpCode::reads_files`]), is *offloaded* to the pool.
//! Socket ops run on the worker thread that polls them: each poll runs the
//! op's non-blocking syscall once ([`Attempt`]): a result is the op's
//! output; `EAGAIN` means *wait readable / writable*, so the task's waker is
//! recorded against the fd in this thread's poller and the task sleeps.
//! `EAGAIN` never reaches the user: an event only means "try again", and an
//! attempt that still finds the socket not ready (a spurious event) simply
//! waits again.
//!
//! Everything here is written once against the seam's [`Poller`] contract;
//! where epoll and kqueue differ (one combined registration per fd versus
//! one filter per direction), the poller implements the difference and
//! this code keeps to the rules valid under both: edge-triggered
//! registrations ([`PollMode::Edge`]: `EPOLLET`, `EV_CLEAR`) for both
//! directions, made once per fd, answering `EEXIST` from `register` with
//! `modify`.
//!
//! Each run loop of a readiness runtime (a worker thread, or a `block_on`
//! caller) owns one poller set ([`PollSet`]), created the first time a
//! socket op in that loop has to wait (so a loop that never waits opens no
//! fds; until then it parks on its condvar) and dropped when the loop ends.
//! Once it has a poller, the loop parks in the poller's wait, and its
//! worker's driver wake (the poller's [`PollWake`]) is installed before the
//! first such park.
//!
//! Readiness is kept per fd and direction, edge-triggered, as tokio and
//! mio do: the first op on an fd that finds it not ready registers it for
//! both directions, once (no `epoll_ctl` per op). Each direction is *may be
//! ready* until a syscall says `EAGAIN`, or a result shows it used up
//! ([`OpCode::leaves_fd_drained`]: a short TCP recv or send); an event sets
//! it again. An op on a direction known not ready waits for the next event
//! without trying its syscall; any other op tries first (a send usually
//! succeeds at once). This is sound because an edge registration reports
//! every change that happens after the `EAGAIN` or the drain that cleared
//! the direction (the poller contract): an event is a hint, never lost.
//! Several ops may wait on one fd (a reader and a writer); an event wakes
//! (and forgets) the waiters of the directions it reports. A registration
//! is kept until the fd is closed; the kernel's `fd_epoch` tells a reused
//! number from the fd that was registered, so a new fd under an old number
//! is registered afresh. Every socket and pipe the kernel seam creates
//! (socket, accept, socketpair, pipe) moves its number's epoch too, so an
//! fd closed behind the crate's back (by std, or `libc::close`) and reused
//! by a socket made through the crate is still told apart; what is not seen
//! is a number closed *and* reused outside the crate, then handed in as a
//! raw fd without `from_raw_fd` (an op on it may wait for an event that
//! never comes).
//!
//! Readiness reaches tasks when the worker has nothing to run: it parks in
//! the poller's wait (other threads wake it through the [`PollWake`]). A
//! busy worker also checks without waiting every [`CHECK_EVERY_POLLS`] task
//! polls, so a stream of runnable tasks cannot starve waiting sockets. The
//! simulator's scheduler drives the same loop hooks on virtual time.
//!
//! Close: a `close` op (through this crate) of an fd that ops of the same
//! loop wait on runs inline on the worker; the fd leaves the poller first
//! and its waiters are woken after the close, so they retry and fail with
//! `EBADF` instead of waiting forever (a closed fd never reports again,
//! under epoll and kqueue alike). Waiters in *other* threads' loops, and
//! fds closed behind the crate's back, are not noticed: such an op waits
//! until it is dropped.
//!
//! Cancellation is trivially safe: the syscall only ever runs inside
//! `poll`, so the kernel never holds an op's buffer between polls. Dropping
//! a waiting op removes its waiter; a later event for it wakes nobody.
//! An op polled on a thread that runs no loop of this driver (`Op::wait`
//! from plain code) finishes there with blocking waits, like the sync
//! fallback.

use super::pool::PoolDriver;
use super::{Backend, Park, Scheduler};
use crate::op::{run_until_done, OpCode};
use crate::sys::{Errno, Interest, Kernel, PollEvent, PollMode, Poller, Ready, SysResult};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A busy worker looks for ready sockets (one zero-timeout wait) after
/// this many task polls.
const CHECK_EVERY_POLLS: u32 = 64;

/// Whether `epoll` can run here: `Err` says why not.
#[cfg(linux)]
pub(crate) fn epoll_availability() -> Result<(), String> {
    crate::sys::real::epoll::Epoll::new()
        .map(drop)
        .map_err(|errno| format!("epoll_create1 failed: {errno:?}"))
}

/// epoll exists only on Linux.
#[cfg(not(linux))]
pub(crate) fn epoll_availability() -> Result<(), String> {
    Err(format!(
        "epoll: not built for this OS (epoll is Linux-only; this is {})",
        std::env::consts::OS
    ))
}

/// Whether `kqueue` can run here: `Err` says why not.
#[cfg(kqueue)]
pub(crate) fn kqueue_availability() -> Result<(), String> {
    crate::sys::real::kqueue::Kqueue::new()
        .map(drop)
        .map_err(|errno| format!("kqueue failed: {errno:?}"))
}

/// Where a host's readiness drivers get their pollers: the real kernel's
/// epoll or kqueue ([`RealPollers`]), or the simulator's pollers with the
/// semantics its options chose.
pub(crate) trait PollerSource: Send + Sync {
    /// Whether this host has pollers with `backend`'s semantics
    /// (`Backend::Epoll` or `Backend::Kqueue`); `Err` says why not.
    fn availability(&self, backend: Backend) -> Result<(), String>;
    /// A readiness driver over this host's `backend` pollers, with `pool`
    /// for the ops that do not wait for readiness.
    fn driver(&self, backend: Backend, pool: PoolDriver) -> Result<ReadinessDriver, String>;
}

/// The real kernel's pollers: epoll on Linux, kqueue on macOS and the BSDs.
pub(crate) struct RealPollers;

impl PollerSource for RealPollers {
    fn availability(&self, backend: Backend) -> Result<(), String> {
        match backend {
            Backend::Epoll => epoll_availability(),
            #[cfg(kqueue)]
            Backend::Kqueue => kqueue_availability(),
            #[cfg(not(kqueue))]
            Backend::Kqueue => Err(format!(
                "not available on this OS: kqueue exists only on macOS and the BSDs, not on {}",
                std::env::consts::OS
            )),
            other => Err(format!("{other} is not a readiness backend")),
        }
    }

    fn driver(&self, backend: Backend, pool: PoolDriver) -> Result<ReadinessDriver, String> {
        match backend {
            #[cfg(linux)]
            Backend::Epoll => Ok(ReadinessDriver::new(
                pool,
                crate::sys::real::epoll::Epoll::new,
            )),
            #[cfg(kqueue)]
            Backend::Kqueue => Ok(ReadinessDriver::new(
                pool,
                crate::sys::real::kqueue::Kqueue::new,
            )),
            other => Err(format!("no readiness driver for {other} in this build")),
        }
    }
}

/// Where an op runs on this driver.
enum Route {
    /// Try the non-blocking syscall on the worker; wait on the poller on EAGAIN.
    Readiness,
    /// A blocking syscall on the pool.
    Offload,
}

fn route<T: OpCode>(op: &T, polling: &dyn Polling) -> Route {
    if let Some(fd) = op.closes_fd() {
        // Closing a watched fd: run it here, so its waiters learn of it.
        return match polling.watches_here(fd) {
            true => Route::Readiness,
            false => Route::Offload,
        };
    }
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

/// What one attempt made inside [`Polling::poll_op`] found.
enum Tried {
    /// The op's final result, and whether it left its fd drained in its
    /// direction ([`OpCode::leaves_fd_drained`]).
    Done(SysResult<usize>, bool),
    /// Not ready: wait for this fd to become readable / writable.
    Wait(RawFd, Interest),
}

/// What [`Polling::poll_op`] made of an op's poll.
enum PolledOp {
    /// The innermost loop on this thread is not this driver's (or the
    /// loop frames are borrowed): the op runs to completion off the loop.
    NotHere,
    /// The op's result.
    Done(SysResult<usize>),
    /// The op waits for readiness under this key.
    Waiting(WaiterKey),
    /// The attempt said wait, but the fd cannot be watched (this errno).
    Unwatchable(Errno),
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
    polling: Arc<dyn Polling>,
}

impl ReadinessDriver {
    /// A driver whose loops each open their poller with `open_poller`.
    pub(crate) fn new<P: Poller>(
        pool: PoolDriver,
        open_poller: impl Fn() -> SysResult<P> + Send + Sync + 'static,
    ) -> ReadinessDriver {
        let kernel = Arc::clone(pool.kernel());
        ReadinessDriver {
            pool,
            polling: Arc::new(PollingWith {
                id: NEXT_DRIVER_ID.fetch_add(1, Ordering::Relaxed),
                open: Box::new(open_poller),
                kernel,
            }),
        }
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        self.pool.kernel()
    }

    pub(crate) fn pool(&self) -> &PoolDriver {
        &self.pool
    }

    /// Take a socket op; give back an op that belongs on the pool.
    pub(crate) fn submit<T: OpCode>(&self, op: T) -> Result<ReadySubmission<T>, T> {
        match route(&op, &*self.polling) {
            Route::Offload => Err(op),
            Route::Readiness => Ok(ReadySubmission {
                op: Some(op),
                polling: Arc::clone(&self.polling),
                waiting: None,
            }),
        }
    }

    /// How a runtime's threads schedule and park with this driver.
    pub(crate) fn scheduler(&self) -> Arc<dyn Scheduler> {
        Arc::new(ReadinessScheduler {
            polling: Arc::clone(&self.polling),
        })
    }
}

/// A socket op owned by its future, run on each poll until it is done.
pub(crate) struct ReadySubmission<T: OpCode> {
    op: Option<T>,
    /// The driver's loops, and its kernel ([`Polling::kernel`]): one
    /// reference count per op.
    polling: Arc<dyn Polling>,
    waiting: Option<WaiterKey>,
}

impl<T: OpCode> ReadySubmission<T> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        let previous = self.waiting.take();
        let Some(op) = self.op.as_mut() else {
            panic!("socket op polled after it completed");
        };
        let kernel = self.polling.kernel();
        let closes = op.closes_fd();
        let ready = match closes {
            None => op.readiness(),
            Some(_) => None,
        };
        let Some((fd, interest)) = ready else {
            return self.poll_without_readiness(previous, closes, cx);
        };
        // Nothing new since the last EAGAIN (or drained result): wait for
        // the next edge without a syscall that would say EAGAIN.
        let epoch = kernel.fd_epoch(fd);
        let mut try_op = || match attempt(op, kernel) {
            Attempt::Done(result) => {
                let drained = op.leaves_fd_drained(&result);
                Tried::Done(result, drained)
            }
            Attempt::Wait(fd, interest) => Tried::Wait(fd, interest),
        };
        let polled = self.polling.poll_op(
            previous.as_ref(),
            (fd, interest, epoch),
            cx.waker(),
            &mut try_op,
        );
        match polled {
            PolledOp::NotHere => {
                let result = run_until_done(op, kernel, &|| false);
                self.finish(result)
            }
            PolledOp::Done(result) => self.finish(result),
            PolledOp::Waiting(key) => {
                self.waiting = Some(key);
                Poll::Pending
            }
            // The fd cannot be watched (EBADF: closed under us; ENOMEM or
            // ENOSPC: the poller is out of room): one more attempt reports
            // the op's own result if it has one by now, else that errno.
            PolledOp::Unwatchable(errno) => match attempt(op, kernel) {
                Attempt::Done(result) => self.finish(result),
                Attempt::Wait(..) => self.finish(Err(errno)),
            },
        }
    }

    /// The poll of an op with no readiness to wait for: a `close` of a
    /// watched fd (its waiters are woken once it is done), or one that
    /// runs to completion here.
    fn poll_without_readiness(
        &mut self,
        previous: Option<WaiterKey>,
        closes: Option<RawFd>,
        cx: &mut Context<'_>,
    ) -> Poll<T::Output> {
        let Some(op) = self.op.as_mut() else {
            panic!("socket op polled after it completed");
        };
        let kernel = self.polling.kernel();
        // Forget the previous waiter; off the loop, run to completion.
        let on_loop = self
            .polling
            .start_poll(previous.as_ref(), None, cx.waker())
            .is_some();
        let result = match closes {
            Some(fd) if on_loop => {
                let waiters = self.polling.closing(fd);
                let result = op.run_blocking(kernel);
                wake_all(waiters);
                result
            }
            _ => run_until_done(op, kernel, &|| false),
        };
        self.finish(result)
    }

    fn finish(&mut self, result: SysResult<usize>) -> Poll<T::Output> {
        match self.op.take() {
            Some(op) => Poll::Ready(op.complete(result)),
            None => panic!("socket op finished twice"),
        }
    }

    fn stop_waiting(&mut self) {
        if let Some(key) = self.waiting.take() {
            self.polling.unregister(&key);
        }
    }
}

impl<T: OpCode> Drop for ReadySubmission<T> {
    fn drop(&mut self) {
        self.stop_waiting();
    }
}

/// Names one waiter in one loop's poller set.
pub(crate) struct WaiterKey {
    set: u64,
    fd: RawFd,
    interest: Interest,
    id: u64,
}

/// What one loop knows of one fd: the ops waiting on it, whether it is
/// registered (edge-triggered, both directions) and which directions may
/// be ready.
struct FdWaiters {
    readers: Vec<(u64, Waker)>,
    writers: Vec<(u64, Waker)>,
    /// Whether the fd (as far as we know) is registered with the poller.
    registered: bool,
    /// The kernel's `fd_epoch` when this state was made: a different epoch
    /// means the number now names another fd, which this state is not of.
    epoch: u32,
    /// Directions that may be ready: set by events, cleared by `EAGAIN` or
    /// a result that drained the fd. Starts as both (unknown: try).
    ready: Ready,
    /// An event said end of stream or failure ([`PollEvent::closed`]): a
    /// short read no longer means used up (the end of stream is still to
    /// be read and no event will say so again); only `EAGAIN` clears
    /// readiness then.
    closed: bool,
}

impl FdWaiters {
    fn new(epoch: u32) -> FdWaiters {
        FdWaiters {
            readers: Vec::new(),
            writers: Vec::new(),
            registered: false,
            epoch,
            ready: Ready::BOTH,
            closed: false,
        }
    }

    /// The number was reused: forget the old fd's registration and
    /// readiness (its waiters stay, and retry on the new fd's events).
    fn renew(&mut self, epoch: u32) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.registered = false;
            self.ready = Ready::BOTH;
            self.closed = false;
        }
    }

    fn may_be_ready(&self, interest: Interest) -> bool {
        match interest {
            Interest::Readable => self.ready.readable,
            Interest::Writable => self.ready.writable,
        }
    }

    fn not_ready(&mut self, interest: Interest) {
        match interest {
            Interest::Readable => self.ready.readable = false,
            Interest::Writable => self.ready.writable = false,
        }
    }

    fn list(&mut self, interest: Interest) -> &mut Vec<(u64, Waker)> {
        match interest {
            Interest::Readable => &mut self.readers,
            Interest::Writable => &mut self.writers,
        }
    }

    fn count(&self) -> usize {
        self.readers.len() + self.writers.len()
    }

    /// Move every waiter of the interests in `ready` into `woken`.
    fn release(&mut self, ready: Ready, woken: &mut Vec<Waker>) {
        if ready.readable {
            woken.extend(self.readers.drain(..).map(|(_, waker)| waker));
        }
        if ready.writable {
            woken.extend(self.writers.drain(..).map(|(_, waker)| waker));
        }
    }
}

/// Hashes an fd number for the per-fd map, which every socket op looks up:
/// fds are small distinct integers chosen by the kernel, not by an
/// adversary, so a multiply spreads them well and SipHash is not needed.
#[derive(Default)]
struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, fd: i32) {
        // The high bits pick hashbrown's group; the multiply fills them.
        self.0 = u64::from(fd as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One loop's poller and the wakers waiting on it.
struct PollSet<P: Poller> {
    id: u64,
    poller: P,
    fds: HashMap<RawFd, FdWaiters, BuildHasherDefault<FdHasher>>,
    next_waiter: u64,
    waiters: usize,
    events: Vec<PollEvent>,
}

static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_DRIVER_ID: AtomicU64 = AtomicU64::new(1);

impl<P: Poller> PollSet<P> {
    fn new(poller: P) -> PollSet<P> {
        PollSet {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            poller,
            fds: HashMap::default(),
            next_waiter: 0,
            waiters: 0,
            events: Vec::new(),
        }
    }

    /// `interest` on `fd` is known not ready (registered, and no event
    /// since the last `EAGAIN` or drained result): record `waker` as
    /// waiting for it and return its key. `None`: it may be ready (or the
    /// fd is not known as `epoch`'s), so the op tries its syscall.
    fn wait_unless_ready(
        &mut self,
        fd: RawFd,
        interest: Interest,
        epoch: u32,
        waker: &Waker,
    ) -> Option<WaiterKey> {
        let entry = self.fds.get_mut(&fd)?;
        if entry.epoch != epoch || !entry.registered || entry.may_be_ready(interest) {
            return None;
        }
        Some(self.add_waiter(fd, interest, waker))
    }

    fn add_waiter(&mut self, fd: RawFd, interest: Interest, waker: &Waker) -> WaiterKey {
        let id = self.next_waiter;
        self.next_waiter += 1;
        let entry = self.fds.entry(fd).or_insert_with(|| FdWaiters::new(0));
        entry.list(interest).push((id, waker.clone()));
        self.waiters += 1;
        WaiterKey {
            set: self.id,
            fd,
            interest,
            id,
        }
    }

    /// The op's syscall said `EAGAIN`: record `waker` as waiting for
    /// `interest` on `fd` (as of `epoch`), registering the fd when it is
    /// not yet (edge-triggered, both directions, once per fd).
    fn register(
        &mut self,
        fd: RawFd,
        interest: Interest,
        epoch: u32,
        waker: &Waker,
    ) -> SysResult<WaiterKey> {
        let entry = self.fds.entry(fd).or_insert_with(|| FdWaiters::new(epoch));
        entry.renew(epoch);
        entry.not_ready(interest);
        if !entry.registered {
            arm(&mut self.poller, fd, entry)?;
        }
        Ok(self.add_waiter(fd, interest, waker))
    }

    /// A result showed `interest` on `fd` used up: the next op waits for
    /// an event instead of trying first.
    fn drained(&mut self, fd: RawFd, interest: Interest) {
        if let Some(entry) = self.fds.get_mut(&fd) {
            if !entry.closed {
                entry.not_ready(interest);
            }
        }
    }

    /// Forget a waiter (its op was polled again or dropped). The fd may
    /// stay armed; an event then wakes nobody.
    fn unregister(&mut self, key: &WaiterKey) {
        if key.set != self.id {
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

    /// `fd` is about to be closed: take it out of the poller and hand back
    /// its waiters (to wake once the close is done).
    fn closing(&mut self, fd: RawFd) -> Vec<Waker> {
        let mut woken = Vec::new();
        if let Some(mut entry) = self.fds.remove(&fd) {
            self.waiters -= entry.count();
            entry.release(Ready::BOTH, &mut woken);
            if entry.registered {
                // ENOENT/EBADF: already gone, which is all we want.
                let _ = self.poller.deregister(fd);
            }
        }
        woken
    }

    /// Wait for events (up to `timeout`): mark what they report as may-be
    /// ready and collect the wakers they release into `woken`. Edge
    /// registrations stay armed: nothing is re-armed.
    fn wait(&mut self, timeout: Option<Duration>, woken: &mut Vec<Waker>) -> SysResult<()> {
        let mut events = std::mem::take(&mut self.events);
        let waited = self.poller.wait(&mut events, timeout);
        for event in events.drain(..) {
            let Ok(fd) = RawFd::try_from(event.token) else {
                continue;
            };
            let Some(entry) = self.fds.get_mut(&fd) else {
                continue;
            };
            entry.ready.readable |= event.ready.readable;
            entry.ready.writable |= event.ready.writable;
            entry.closed |= event.closed;
            let before = entry.count();
            entry.release(event.ready, woken);
            self.waiters -= before - entry.count();
        }
        self.events = events;
        waited
    }
}

/// Register `fd` once, edge-triggered for both directions (`register`, or
/// `modify` when the poller already has it), under either semantics. An
/// edge registration reports what is ready at once, so a direction that
/// became ready before this call is not missed.
fn arm<P: Poller>(poller: &mut P, fd: RawFd, entry: &mut FdWaiters) -> SysResult<()> {
    let token = fd as u64;
    let mode = PollMode::Edge;
    let result = match poller.register(fd, token, Ready::BOTH, mode) {
        Err(Errno::EEXIST) => poller.modify(fd, token, Ready::BOTH, mode),
        other => other,
    };
    entry.registered = result.is_ok();
    result
}

thread_local! {
    /// The list a wait collects wakers into, kept between waits with its
    /// capacity: a fresh one grew (reallocated) with every wait that
    /// released more wakers than the last.
    static WOKEN: Cell<Vec<Waker>> = const { Cell::new(Vec::new()) };
}

/// An empty list to collect wakers into (this thread's kept one).
fn woken_list() -> Vec<Waker> {
    WOKEN.with(Cell::take)
}

/// Wake the tasks whose sockets became ready, outside any borrow; the
/// emptied list is kept for the next wait.
fn wake_all(mut woken: Vec<Waker>) {
    for waker in woken.drain(..) {
        waker.wake();
    }
    WOKEN.with(|kept| {
        let other = kept.take();
        kept.set(if other.capacity() > woken.capacity() {
            other
        } else {
            woken
        });
    });
}

/// One run loop on this thread: which driver it belongs to, its worker,
/// and its poller set once it has one.
struct LoopFrame {
    driver: u64,
    state: FrameState,
    /// A `PollSet<P>` for the driver's poller type.
    set: Option<Box<dyn Any>>,
}

/// What a loop frame keeps besides its poll set.
struct FrameState {
    worker: Weak<dyn Park>,
    /// Whether the worker can already be woken through the poller.
    wake_installed: bool,
    /// Task polls since the poller was last asked for events (see
    /// [`CHECK_EVERY_POLLS`]); on the frame, so that counting one needs
    /// no look at the typed set.
    polls_since_check: u32,
}

thread_local! {
    /// The readiness run loops this thread is inside, innermost last.
    static LOOPS: RefCell<Vec<LoopFrame>> = const { RefCell::new(Vec::new()) };
}

/// What the driver handle needs from the poller-typed half (object-safe,
/// so handles and submissions need not name the poller type).
trait Polling: Send + Sync {
    /// The kernel the driver's ops run on.
    fn kernel(&self) -> &dyn Kernel;
    /// The start of a socket op's poll, in one look at this thread's
    /// loop: forget the op's previous waiter (`previous`), then, for an op
    /// with readiness (`fd`, `interest` as of `epoch`), wait again when
    /// nothing new arrived for it ([`PollSet::wait_unless_ready`]).
    /// `Some(None)`: make the attempt. `None`: the innermost loop on this
    /// thread is not one of this driver's.
    fn start_poll(
        &self,
        previous: Option<&WaiterKey>,
        ready: Option<(RawFd, Interest, u32)>,
        waker: &Waker,
    ) -> Option<Option<WaiterKey>>;
    /// A socket op's poll, in one look at this thread's loop: forget its
    /// previous waiter, wait again when nothing new arrived for `ready`
    /// (`fd`, `interest` as of `epoch`), else make the attempt (`try_op`)
    /// and note a drained fd, or register the waker when it says wait.
    fn poll_op(
        &self,
        previous: Option<&WaiterKey>,
        ready: (RawFd, Interest, u32),
        waker: &Waker,
        try_op: &mut dyn FnMut() -> Tried,
    ) -> PolledOp;
    /// Whether this loop's poller watches `fd`.
    fn watches_here(&self, fd: RawFd) -> bool;
    fn unregister(&self, key: &WaiterKey);
    /// `fd` is about to be closed: its waiters in this loop.
    fn closing(&self, fd: RawFd) -> Vec<Waker>;
    fn enter(&self, worker: &Arc<dyn Park>);
    fn leave(&self);
    /// Between task polls: check for events now and then.
    fn between_polls(&self);
    /// Park the loop in the poller; `None` when it has none yet.
    fn park(&self, worker: &dyn Park, timeout: Option<Duration>) -> Option<SysResult<()>>;
    /// Zero-timeout check; `None` when the loop has no poller yet.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))] // only the sim runner calls it
    fn poll_now(&self) -> Option<SysResult<usize>>;
}

/// The poller-typed half of a [`ReadinessDriver`].
struct PollingWith<P: Poller> {
    id: u64,
    open: Box<dyn Fn() -> SysResult<P> + Send + Sync>,
    /// The driver's kernel (its pool's).
    kernel: Arc<dyn Kernel>,
}

impl<P: Poller> PollingWith<P> {
    /// Run `f` on this driver's innermost loop frame on this thread, split
    /// into its state and its set (`None` until the loop first needs one).
    /// `Ok(None)`: the innermost loop here is not one of this driver's.
    /// `Err(EBUSY)`: the frames are borrowed (a call from inside another).
    fn with_frame<R>(
        &self,
        f: impl FnOnce(&mut FrameState, &mut Option<Box<dyn Any>>) -> R,
    ) -> SysResult<Option<R>> {
        LOOPS.with(|loops| {
            let mut loops = loops.try_borrow_mut().map_err(|_| Errno::EBUSY)?;
            let frame = loops.last_mut().filter(|frame| frame.driver == self.id);
            Ok(frame.map(|LoopFrame { state, set, .. }| f(state, set)))
        })
    }

    /// Run `f` on this driver's innermost loop frame and its set (created
    /// when `create` and missing). `None`: no loop of this driver here, or
    /// no set and `create` is false.
    fn with_set<R>(
        &self,
        create: bool,
        f: impl FnOnce(&mut FrameState, &mut PollSet<P>) -> R,
    ) -> Option<SysResult<R>> {
        let ran = self.with_frame(|state, set| {
            if set.is_none() {
                if !create {
                    return None;
                }
                match (self.open)() {
                    Ok(poller) => *set = Some(Box::new(PollSet::new(poller))),
                    Err(errno) => return Some(Err(errno)),
                }
            }
            match set.as_mut()?.downcast_mut::<PollSet<P>>() {
                Some(typed) => Some(Ok(f(state, typed))),
                None => Some(Err(Errno::EINVAL)),
            }
        });
        match ran {
            Ok(ran) => ran.flatten(),
            Err(errno) => Some(Err(errno)),
        }
    }

    /// Let other threads wake the frame's worker out of the poller's wait.
    fn install_wake(state: &mut FrameState, set: &PollSet<P>) {
        if state.wake_installed {
            return;
        }
        if let Some(worker) = state.worker.upgrade() {
            let waker = set.poller.waker();
            worker.set_driver_wake(Arc::new(move || waker.wake()));
            state.wake_installed = true;
        }
    }
}

impl<P: Poller> Polling for PollingWith<P> {
    fn kernel(&self) -> &dyn Kernel {
        &*self.kernel
    }

    fn start_poll(
        &self,
        previous: Option<&WaiterKey>,
        ready: Option<(RawFd, Interest, u32)>,
        waker: &Waker,
    ) -> Option<Option<WaiterKey>> {
        let started = self.with_frame(|_, set| {
            // No set yet: nothing was registered, so nothing to forget or
            // to wait on.
            let set = set.as_mut()?.downcast_mut::<PollSet<P>>()?;
            if let Some(key) = previous {
                set.unregister(key);
            }
            let (fd, interest, epoch) = ready?;
            set.wait_unless_ready(fd, interest, epoch, waker)
        });
        // Frames borrowed: as off the loop, the op runs to completion.
        started.ok()?
    }

    fn watches_here(&self, fd: RawFd) -> bool {
        let watched = self.with_set(false, |_, set| set.fds.contains_key(&fd));
        matches!(watched, Some(Ok(true)))
    }

    fn poll_op(
        &self,
        previous: Option<&WaiterKey>,
        (fd, interest, epoch): (RawFd, Interest, u32),
        waker: &Waker,
        try_op: &mut dyn FnMut() -> Tried,
    ) -> PolledOp {
        let polled = self.with_frame(|_, set| {
            // No set yet: nothing was registered, so nothing to forget or
            // to wait on.
            if let Some(typed) = set.as_mut().and_then(|s| s.downcast_mut::<PollSet<P>>()) {
                if let Some(key) = previous {
                    typed.unregister(key);
                }
                if let Some(key) = typed.wait_unless_ready(fd, interest, epoch, waker) {
                    return PolledOp::Waiting(key);
                }
            }
            let (fd, interest) = match try_op() {
                Tried::Done(result, drained) => {
                    if drained {
                        if let Some(typed) =
                            set.as_mut().and_then(|s| s.downcast_mut::<PollSet<P>>())
                        {
                            typed.drained(fd, interest);
                        }
                    }
                    return PolledOp::Done(result);
                }
                Tried::Wait(fd, interest) => (fd, interest),
            };
            if set.is_none() {
                match (self.open)() {
                    Ok(poller) => *set = Some(Box::new(PollSet::new(poller))),
                    Err(errno) => return PolledOp::Unwatchable(errno),
                }
            }
            let Some(typed) = set.as_mut().and_then(|s| s.downcast_mut::<PollSet<P>>()) else {
                return PolledOp::Unwatchable(Errno::EINVAL);
            };
            let epoch = self.kernel.fd_epoch(fd);
            match typed.register(fd, interest, epoch, waker) {
                Ok(key) => PolledOp::Waiting(key),
                Err(errno) => PolledOp::Unwatchable(errno),
            }
        });
        // Frames borrowed: as off the loop, the op runs to completion.
        match polled {
            Ok(Some(polled)) => polled,
            Ok(None) | Err(_) => PolledOp::NotHere,
        }
    }

    fn unregister(&self, key: &WaiterKey) {
        let _ = self.with_set(false, |_, set| set.unregister(key));
    }

    fn closing(&self, fd: RawFd) -> Vec<Waker> {
        match self.with_set(false, |_, set| set.closing(fd)) {
            Some(Ok(woken)) => woken,
            _ => Vec::new(),
        }
    }

    fn enter(&self, worker: &Arc<dyn Park>) {
        LOOPS.with(|loops| {
            loops.borrow_mut().push(LoopFrame {
                driver: self.id,
                state: FrameState {
                    worker: Arc::downgrade(worker),
                    wake_installed: false,
                    polls_since_check: 0,
                },
                set: None,
            });
        });
    }

    fn leave(&self) {
        // Drop the frame (and its poller) outside the borrow.
        let frame = LOOPS.with(|loops| loops.borrow_mut().pop());
        drop(frame);
    }

    fn between_polls(&self) {
        // Counted on the frame: a poll that is not the check's touches
        // neither the typed set nor the poller.
        let due = self.with_frame(|state, _| {
            state.polls_since_check += 1;
            state.polls_since_check >= CHECK_EVERY_POLLS
        });
        if due != Ok(Some(true)) {
            return;
        }
        let mut woken = woken_list();
        let _ = self.with_set(false, |state, set| {
            if set.waiters > 0 {
                state.polls_since_check = 0;
                // An error here resurfaces at the next park.
                let _ = set.wait(Some(Duration::ZERO), &mut woken);
            }
        });
        wake_all(woken);
    }

    fn park(&self, worker: &dyn Park, timeout: Option<Duration>) -> Option<SysResult<()>> {
        let mut woken = woken_list();
        let parked = self.with_set(false, |state, set| {
            Self::install_wake(state, set);
            if worker.begin_driver_park() {
                state.polls_since_check = 0;
                let waited = set.wait(timeout, &mut woken);
                worker.end_driver_park();
                waited
            } else if set.waiters > 0 {
                state.polls_since_check = 0;
                set.wait(Some(Duration::ZERO), &mut woken)
            } else {
                Ok(())
            }
        });
        wake_all(woken);
        parked.map(|result| result.and_then(|waited| waited))
    }

    fn poll_now(&self) -> Option<SysResult<usize>> {
        let mut woken = woken_list();
        let polled = self.with_set(false, |state, set| {
            state.polls_since_check = 0;
            set.wait(Some(Duration::ZERO), &mut woken)
        });
        let count = woken.len();
        wake_all(woken);
        polled.map(|result| result.and_then(|waited| waited).map(|()| count))
    }
}

/// Scheduling for readiness runtimes: FIFO tasks, parking in the
/// poller's wait.
struct ReadinessScheduler {
    polling: Arc<dyn Polling>,
}

impl Scheduler for ReadinessScheduler {
    fn pick_task(&self, _runnable: usize) -> usize {
        0
    }

    fn between_polls(&self) {
        self.polling.between_polls();
    }

    fn idle(&self, worker: &dyn Park, timeout: Option<Duration>) -> Result<(), String> {
        // A loop that never waited on a socket has no poller (and no
        // fds): it parks on the worker's condvar.
        match self.polling.park(worker, timeout) {
            Some(waited) => waited.map_err(|errno| format!("readiness wait: {errno:?}")),
            None => {
                worker.park(timeout);
                Ok(())
            }
        }
    }

    fn poll_now(&self) -> Result<usize, String> {
        match self.polling.poll_now() {
            Some(polled) => polled.map_err(|errno| format!("readiness wait: {errno:?}")),
            None => Ok(0),
        }
    }

    fn enter(&self, worker: &Arc<dyn Park>) {
        self.polling.enter(worker);
    }

    fn leave(&self) {
        self.polling.leave();
    }
}
