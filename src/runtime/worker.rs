//! A runtime worker: one thread, its task table and its run loop.
//!
//! Tasks never move between workers; a waker pushes the task's id onto its
//! owner's injection queue and unparks that worker. The same loop runs
//! `block_on`'s future on the calling thread.

use super::context::{self, Context, LocalFuture};
use super::RuntimeShared;
use crate::driver::{DriverWake, Park, Scheduler};
use crate::sync::shim::atomic::{AtomicBool, Ordering};
use crate::sync::shim::{Condvar, Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
// std's Arc: wakers (`std::task::Wake`) and `Arc<dyn Fn()>` need it.
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

/// How many tasks a worker polls before it looks at its injection queue
/// and timers again.
const TASKS_PER_TICK: usize = 256;

pub(crate) type SendFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Injected {
    Spawn(SendFuture),
    Wake(u64),
}

#[derive(Default)]
struct Inbox {
    items: VecDeque<Injected>,
    shutdown: bool,
    /// A `park` that has not happened yet must return at once.
    notified: bool,
    /// The worker waits on `unparked` (set and cleared under this lock by
    /// `park`): only then does news need a condvar notify, which costs a
    /// futex syscall even when no one waits.
    parked: bool,
}

/// The part of a worker other threads touch.
pub(crate) struct WorkerShared {
    inbox: Mutex<Inbox>,
    /// The inbox holds items or the shutdown (set and cleared under its
    /// lock): the run loop looks here before it locks, every turn.
    inbox_news: AtomicBool,
    unparked: Condvar,
    /// True while the worker waits inside its driver rather than on
    /// `unparked`; wakers then also call `driver_wake`.
    parked_in_driver: AtomicBool,
    driver_wake: Mutex<Option<DriverWake>>,
    /// `driver_wake` is set (it is never unset): what every park of an
    /// io_uring loop asks, answered without the lock.
    driver_wake_set: AtomicBool,
}

impl WorkerShared {
    pub(crate) fn new() -> Arc<WorkerShared> {
        Arc::new(WorkerShared {
            inbox: Mutex::new(Inbox::default()),
            inbox_news: AtomicBool::new(false),
            unparked: Condvar::new(),
            parked_in_driver: AtomicBool::new(false),
            driver_wake: Mutex::new(None),
            driver_wake_set: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // Nothing panics while holding this lock.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, item: Injected) {
        let mut inbox = self.lock();
        if inbox.shutdown {
            // No loop will take it (a `Handle` outlived its runtime): drop
            // it now, outside the lock, so a spawned task's handle resolves
            // to `Cancelled` instead of waiting forever.
            drop(inbox);
            drop(item);
            return;
        }
        inbox.items.push_back(item);
        self.inbox_news.store(true, Ordering::Release);
        self.notify(inbox);
    }

    /// Record news and wake the worker wherever it waits: on `unparked`
    /// (notified only when `park` said it waits there) or in its driver.
    /// A worker that is running sees `notified` before it parks again.
    fn notify(&self, mut inbox: MutexGuard<'_, Inbox>) {
        inbox.notified = true;
        let parked = inbox.parked;
        drop(inbox);
        if parked {
            self.unparked.notify_one();
        }
        self.wake_driver();
    }

    fn wake_driver(&self) {
        if self.parked_in_driver.load(Ordering::SeqCst) {
            let wake = self
                .driver_wake
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(wake) = wake {
                wake();
            }
        }
    }

    /// Whether a driver wake is installed.
    pub(crate) fn has_driver_wake(&self) -> bool {
        self.driver_wake_set.load(Ordering::Acquire)
    }

    /// Install how to wake this worker while it waits inside its driver.
    pub(crate) fn set_driver_wake(&self, wake: DriverWake) {
        *self.driver_wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
        self.driver_wake_set.store(true, Ordering::Release);
    }

    /// About to wait inside the driver: false (and no wait) when news is
    /// already here.
    pub(crate) fn begin_driver_park(&self) -> bool {
        self.parked_in_driver.store(true, Ordering::SeqCst);
        if self.take_news() {
            self.parked_in_driver.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Done waiting inside the driver.
    pub(crate) fn end_driver_park(&self) {
        self.parked_in_driver.store(false, Ordering::SeqCst);
    }

    pub(crate) fn spawn(&self, future: SendFuture) {
        self.push(Injected::Spawn(future));
    }

    pub(crate) fn unpark(&self) {
        self.notify(self.lock());
    }

    pub(crate) fn shutdown(&self) {
        let mut inbox = self.lock();
        inbox.shutdown = true;
        self.inbox_news.store(true, Ordering::Release);
        self.notify(inbox);
    }

    /// True (consuming the notification) when a wake or spawn arrived
    /// since the last park; what arrived is in the inbox (or, for wakes
    /// from the worker's own thread, in its local wakes).
    pub(crate) fn take_news(&self) -> bool {
        let mut inbox = self.lock();
        let news = inbox.notified || !inbox.items.is_empty() || inbox.shutdown;
        inbox.notified = false;
        news || local_wakes::pending(self)
    }

    /// Block until unparked or `timeout` passes.
    pub(crate) fn park(&self, timeout: Option<Duration>) {
        let mut inbox = self.lock();
        if !inbox.notified
            && inbox.items.is_empty()
            && !inbox.shutdown
            && !local_wakes::pending(self)
        {
            // Set under the lock that `notify` reads it under, and cleared
            // only after the wait: a notifier either sees it (and
            // notifies a waiter the condvar already holds) or ran before
            // this check and left `notified` set.
            inbox.parked = true;
            inbox = match timeout {
                Some(t) => {
                    self.unparked
                        .wait_timeout(inbox, t)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.unparked.wait(inbox).unwrap_or_else(|p| p.into_inner()),
            };
            inbox.parked = false;
        }
        inbox.notified = false;
    }
}

/// The driver's schedulers park and wake the worker through this.
impl Park for WorkerShared {
    fn park(&self, timeout: Option<Duration>) {
        WorkerShared::park(self, timeout);
    }

    fn take_news(&self) -> bool {
        WorkerShared::take_news(self)
    }

    fn has_driver_wake(&self) -> bool {
        WorkerShared::has_driver_wake(self)
    }

    fn set_driver_wake(&self, wake: DriverWake) {
        WorkerShared::set_driver_wake(self, wake);
    }

    fn begin_driver_park(&self) -> bool {
        WorkerShared::begin_driver_park(self)
    }

    fn end_driver_park(&self) {
        WorkerShared::end_driver_park(self);
    }
}

struct TaskWaker {
    worker: Arc<WorkerShared>,
    id: u64,
    scheduled: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) && !local_wakes::push(&self.worker, self.id)
        {
            self.worker.push(Injected::Wake(self.id));
        }
    }
}

/// Wakes a worker gives its own tasks while its run loop runs on this
/// thread (an op completion reaped between polls, a channel send from a
/// sibling task): queued here with no lock and no notify, since the
/// worker is running and takes them before it parks. Wakes from any
/// other thread, or from this thread for another worker, go through the
/// inbox. Under loom every model thread shares one OS thread, so the
/// models keep the inbox path.
mod local_wakes {
    use super::WorkerShared;
    #[cfg(not(loom))]
    use std::cell::RefCell;

    /// The worker running on this thread and the ids it woke.
    #[cfg(not(loom))]
    pub(super) struct Running {
        worker: *const WorkerShared,
        ids: Vec<u64>,
    }

    #[cfg(not(loom))]
    thread_local! {
        static RUNNING: RefCell<Running> = const {
            RefCell::new(Running { worker: std::ptr::null(), ids: Vec::new() })
        };
    }

    /// Queue a wake of task `id` of `worker` if `worker` runs on this
    /// thread; false means the caller goes through the inbox.
    #[cfg(not(loom))]
    pub(super) fn push(worker: &WorkerShared, id: u64) -> bool {
        RUNNING
            .try_with(|running| match running.try_borrow_mut() {
                Ok(mut running) if std::ptr::eq(running.worker, worker) => {
                    running.ids.push(id);
                    true
                }
                _ => false,
            })
            .unwrap_or(false)
    }

    /// Whether `worker` runs here and has local wakes not yet taken.
    #[cfg(not(loom))]
    pub(super) fn pending(worker: &WorkerShared) -> bool {
        RUNNING
            .try_with(|running| {
                running
                    .try_borrow()
                    .is_ok_and(|r| std::ptr::eq(r.worker, worker) && !r.ids.is_empty())
            })
            .unwrap_or(false)
    }

    /// Move `worker`'s local wakes to `into` (in wake order).
    #[cfg(not(loom))]
    pub(super) fn take(worker: &WorkerShared, into: &mut std::collections::VecDeque<u64>) {
        let _ = RUNNING.try_with(|running| {
            if let Ok(mut running) = running.try_borrow_mut() {
                // (An empty drain still costs ~50 instructions; most
                // looks after a tick find nothing.)
                if std::ptr::eq(running.worker, worker) && !running.ids.is_empty() {
                    into.extend(running.ids.drain(..));
                }
            }
        });
    }

    /// Make `worker` the one running on this thread for `body`; the
    /// previous one (a nested run loop's caller) and its wakes come back
    /// afterwards. Wakes left when `body` ends go to the inbox.
    #[cfg(not(loom))]
    pub(super) fn enter<R>(worker: &WorkerShared, body: impl FnOnce() -> R) -> R {
        let fresh = Running {
            worker,
            ids: Vec::new(),
        };
        let previous = RUNNING.with(|r| std::mem::replace(&mut *r.borrow_mut(), fresh));
        struct Restore<'a>(&'a WorkerShared, Option<Running>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let Some(previous) = self.1.take() else {
                    return;
                };
                let mine = RUNNING.with(|r| std::mem::replace(&mut *r.borrow_mut(), previous));
                for id in mine.ids {
                    self.0.push(super::Injected::Wake(id));
                }
            }
        }
        let _restore = Restore(worker, Some(previous));
        body()
    }

    #[cfg(loom)]
    pub(super) fn push(_worker: &WorkerShared, _id: u64) -> bool {
        false
    }

    #[cfg(loom)]
    pub(super) fn pending(_worker: &WorkerShared) -> bool {
        false
    }

    #[cfg(loom)]
    pub(super) fn take(_worker: &WorkerShared, _into: &mut std::collections::VecDeque<u64>) {}

    #[cfg(loom)]
    pub(super) fn enter<R>(_worker: &WorkerShared, body: impl FnOnce() -> R) -> R {
        body()
    }
}

struct MainWaker {
    worker: Arc<WorkerShared>,
    woken: AtomicBool,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.worker.unpark();
    }
}

struct Task {
    future: LocalFuture,
    waker: Arc<TaskWaker>,
    /// `waker` as a `Waker`, made once: a poll lends it instead of
    /// cloning the `Arc` (and an op keeps its clone while `will_wake`).
    as_waker: Waker,
}

/// Task ids are handed out in sequence, so the table needs no SipHash:
/// the id is its own hash.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type TaskTable = HashMap<u64, Task, std::hash::BuildHasherDefault<IdHasher>>;

/// The thread-owned part of a worker.
struct Executor {
    worker: Arc<WorkerShared>,
    tasks: TaskTable,
    run_queue: VecDeque<u64>,
    next_id: u64,
}

impl Executor {
    fn insert(&mut self, future: LocalFuture) {
        let id = self.next_id;
        self.next_id += 1;
        let waker = Arc::new(TaskWaker {
            worker: Arc::clone(&self.worker),
            id,
            scheduled: AtomicBool::new(true),
        });
        let as_waker = Waker::from(Arc::clone(&waker));
        self.tasks.insert(
            id,
            Task {
                future,
                waker,
                as_waker,
            },
        );
        self.run_queue.push_back(id);
    }

    /// Move injected items into the task table; false on shutdown.
    fn take_inbox(&mut self) -> bool {
        // The usual turn: nothing came from other threads (an item pushed
        // after this look is taken next turn; `park` looks under the lock).
        if !self.worker.inbox_news.load(Ordering::Acquire) {
            local_wakes::take(&self.worker, &mut self.run_queue);
            return true;
        }
        let (items, shutdown) = {
            let mut inbox = self.worker.lock();
            // Kept set after a shutdown: every later turn sees it.
            self.worker
                .inbox_news
                .store(inbox.shutdown, Ordering::Release);
            (std::mem::take(&mut inbox.items), inbox.shutdown)
        };
        for item in items {
            match item {
                Injected::Spawn(future) => self.insert(future),
                Injected::Wake(id) => self.run_queue.push_back(id),
            }
        }
        local_wakes::take(&self.worker, &mut self.run_queue);
        !shutdown
    }

    /// Checked after every task poll; the usual case, nothing new, is one
    /// inlined look.
    #[inline]
    fn take_local_spawns(&mut self, ctx: &Context) {
        if ctx.local_spawns.borrow().is_empty() {
            return;
        }
        self.insert_local_spawns(ctx);
    }

    #[inline(never)]
    fn insert_local_spawns(&mut self, ctx: &Context) {
        let spawned = std::mem::take(&mut *ctx.local_spawns.borrow_mut());
        for future in spawned {
            self.insert(future);
        }
    }

    /// Tasks wait to run here besides the one about to be polled: in the
    /// run queue, or woken on this thread and not yet queued.
    fn others_ready(&self) -> bool {
        !self.run_queue.is_empty() || local_wakes::pending(&self.worker)
    }

    fn poll_task(&mut self, id: u64) {
        let others_ready = self.others_ready();
        let Some(task) = self.tasks.get_mut(&id) else {
            return; // finished earlier; a stale wake
        };
        task.waker.scheduled.store(false, Ordering::Release);
        let mut cx = std::task::Context::from_waker(&task.as_waker);
        crate::driver::set_tasks_waiting(others_ready);
        if task.future.as_mut().poll(&mut cx).is_ready() {
            self.tasks.remove(&id);
        }
    }

    /// Poll up to a tick's worth of ready tasks, in the order the
    /// scheduler picks.
    fn run_tick(&mut self, ctx: &Context, scheduler: &dyn Scheduler) {
        for _ in 0..TASKS_PER_TICK {
            if self.run_queue.is_empty() {
                break;
            }
            let index = scheduler.pick_task(self.run_queue.len());
            // FIFO schedulers pick the front: the cheap removal.
            let picked = match index {
                0 => self.run_queue.pop_front(),
                _ => self.run_queue.remove(index),
            };
            let Some(id) = picked else {
                break;
            };
            self.poll_task(id);
            self.take_local_spawns(ctx);
            scheduler.between_polls();
        }
    }
}

/// How a run loop ended.
pub(crate) enum RunEnd<T> {
    /// `main` completed with this value.
    Done(T),
    /// The worker was shut down.
    Shutdown,
    /// The scheduler found that nothing can make progress.
    Stuck(String),
}

/// Run tasks on this thread until `main` completes (block_on) or, with no
/// `main`, until the worker is shut down.
pub(crate) fn run<F: Future>(
    runtime: Arc<RuntimeShared>,
    worker: Arc<WorkerShared>,
    main: Option<F>,
) -> RunEnd<F::Output> {
    let mut main = std::pin::pin!(main);
    let ctx = Rc::new(Context {
        runtime: Arc::clone(&runtime),
        local_spawns: Default::default(),
    });
    let mut exec = Executor {
        worker: Arc::clone(&worker),
        tasks: TaskTable::default(),
        run_queue: VecDeque::new(),
        next_id: 0,
    };
    let parked: Arc<dyn Park> = Arc::clone(&worker) as Arc<dyn Park>;
    runtime.scheduler.enter(&parked);
    let result = context::enter(Rc::clone(&ctx), || {
        local_wakes::enter(&worker, || {
            run_loop(&runtime, &ctx, &mut exec, main.as_mut().as_pin_mut())
        })
    });
    // Drop `main` (finished, but it may still hold an op: a `timeout`
    // keeps its timed-out future until dropped) and leftover tasks inside
    // the context, so their in-flight ops are abandoned through the
    // runtime's driver, then let the driver settle: it waits for
    // abandoned ops only as long as their cancels take.
    context::enter(Rc::clone(&ctx), || {
        main.set(None);
        exec.tasks.clear();
        ctx.local_spawns.borrow_mut().clear();
    });
    runtime.scheduler.leave();
    result
}

fn run_loop<F: Future>(
    runtime: &RuntimeShared,
    ctx: &Context,
    exec: &mut Executor,
    mut main: Option<Pin<&mut F>>,
) -> RunEnd<F::Output> {
    let main_waker = Arc::new(MainWaker {
        worker: Arc::clone(&exec.worker),
        // The main future needs a first poll; a worker without one must
        // not look permanently woken (it would never park).
        woken: AtomicBool::new(main.is_some()),
    });
    let waker = Waker::from(Arc::clone(&main_waker));
    loop {
        if let Err(why) = runtime.scheduler.new_turn() {
            return RunEnd::Stuck(why);
        }
        if let Some(main) = main.as_mut() {
            if main_waker.woken.swap(false, Ordering::AcqRel) {
                let mut cx = std::task::Context::from_waker(&waker);
                crate::driver::set_tasks_waiting(exec.others_ready());
                if let Poll::Ready(value) = main.as_mut().poll(&mut cx) {
                    return RunEnd::Done(value);
                }
                exec.take_local_spawns(ctx);
            }
        }
        if !exec.take_inbox() {
            return RunEnd::Shutdown;
        }
        exec.run_tick(ctx, &*runtime.scheduler);
        let next_deadline = runtime.timers.fire_due(|| runtime.clock.now());
        // Tasks woken on this thread during the tick (completions reaped
        // between polls) run before the worker thinks of parking.
        local_wakes::take(&exec.worker, &mut exec.run_queue);
        if exec.run_queue.is_empty() && !main_waker.woken.load(Ordering::Acquire) {
            if let Err(why) = runtime.scheduler.idle(&*exec.worker, next_deadline) {
                return RunEnd::Stuck(why);
            }
        }
    }
}

/// loom models of cross-thread spawn and wakeups: the real inbox, park,
/// driver-park handshake, task wakers and executor bookkeeping, driven by
/// a minimal run loop (the full `run_loop` also needs timers, a clock and
/// a driver, which are not what these models check). Run by `just loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::shim;
    use loom::thread;

    fn executor(worker: &Arc<WorkerShared>) -> Executor {
        Executor {
            worker: Arc::clone(worker),
            tasks: TaskTable::default(),
            run_queue: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Poll whatever is runnable; park when nothing is, until `done`.
    fn run_until(exec: &mut Executor, done: impl Fn() -> bool) {
        loop {
            assert!(exec.take_inbox(), "unexpected shutdown");
            while let Some(id) = exec.run_queue.pop_front() {
                exec.poll_task(id);
            }
            if done() {
                return;
            }
            exec.worker.park(None);
        }
    }

    /// A future spawned from another thread runs on the worker, which may
    /// already be parked (a lost unpark is a loom deadlock).
    #[test]
    fn spawn_from_another_thread_runs_on_the_worker() {
        loom::model(|| {
            let worker = WorkerShared::new();
            let ran = Arc::new(shim::atomic::AtomicBool::new(false));
            let spawner = {
                let worker = Arc::clone(&worker);
                let ran = Arc::clone(&ran);
                thread::spawn(move || {
                    worker.spawn(Box::pin(async move { ran.store(true, Ordering::SeqCst) }));
                })
            };
            let mut exec = executor(&worker);
            run_until(&mut exec, || ran.load(Ordering::SeqCst));
            assert!(exec.tasks.is_empty());
            spawner.join().unwrap();
        });
    }

    /// What a task waits for: a flag another thread sets, and the waker to
    /// call when it does.
    #[derive(Default)]
    struct Signal {
        state: shim::Mutex<(bool, Option<Waker>)>,
    }

    impl Signal {
        fn set(&self) {
            let waker = {
                let mut state = self.state.lock().unwrap();
                state.0 = true;
                state.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }

        fn poll_set(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
            let mut state = self.state.lock().unwrap();
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// A task parked on the worker is woken from two threads at once: it
    /// runs to completion (no lost wakeup), and its waker queues it at most
    /// once per poll (the `scheduled` flag), so the worker never sees more
    /// wake entries than wakes.
    #[test]
    fn concurrent_wakes_from_other_threads_reach_the_task() {
        loom::model(|| {
            let worker = WorkerShared::new();
            let signals = [Arc::new(Signal::default()), Arc::new(Signal::default())];
            let finished = Arc::new(shim::atomic::AtomicBool::new(false));
            let mut exec = executor(&worker);
            {
                let signals = signals.clone();
                let finished = Arc::clone(&finished);
                exec.insert(Box::pin(async move {
                    for signal in &signals {
                        std::future::poll_fn(|cx| signal.poll_set(cx)).await;
                    }
                    finished.store(true, Ordering::SeqCst);
                }));
            }
            let wakers: Vec<_> = signals
                .iter()
                .map(|signal| {
                    let signal = Arc::clone(signal);
                    thread::spawn(move || signal.set())
                })
                .collect();
            run_until(&mut exec, || finished.load(Ordering::SeqCst));
            assert!(exec.tasks.is_empty());
            for waker in wakers {
                waker.join().unwrap();
            }
        });
    }

    /// `unpark` (the main future's waker) and `shutdown` from another
    /// thread reach a worker that parks on its condvar: `notify` only
    /// signals the condvar when `park` said it waits there, so a notify
    /// skipped while the worker runs must still leave it unable to sleep.
    #[test]
    fn unpark_and_shutdown_reach_a_parking_worker() {
        loom::model(|| {
            let worker = WorkerShared::new();
            let woken = Arc::new(shim::atomic::AtomicBool::new(false));
            let unparker = {
                let worker = Arc::clone(&worker);
                let woken = Arc::clone(&woken);
                thread::spawn(move || {
                    woken.store(true, Ordering::SeqCst);
                    worker.unpark();
                })
            };
            while !woken.load(Ordering::SeqCst) {
                worker.park(None);
            }
            unparker.join().unwrap();
            let stopper = {
                let worker = Arc::clone(&worker);
                thread::spawn(move || worker.shutdown())
            };
            let mut exec = executor(&worker);
            while exec.take_inbox() {
                worker.park(None);
            }
            stopper.join().unwrap();
        });
    }

    /// The worker waits inside its driver (an io_uring wait): a spawn from
    /// another thread either is seen by `begin_driver_park` (no wait) or
    /// fires the installed driver wake, so the wait always ends.
    #[test]
    fn driver_park_is_woken_by_a_cross_thread_spawn() {
        loom::model(|| {
            let worker = WorkerShared::new();
            // A stand-in for the ring's eventfd: a level-triggered flag.
            let eventfd = Arc::new((shim::Mutex::new(false), shim::Condvar::new()));
            {
                let eventfd = Arc::clone(&eventfd);
                worker.set_driver_wake(Arc::new(move || {
                    *eventfd.0.lock().unwrap() = true;
                    eventfd.1.notify_one();
                }));
            }
            let spawner = {
                let worker = Arc::clone(&worker);
                thread::spawn(move || worker.spawn(Box::pin(async {})))
            };
            let mut exec = executor(&worker);
            loop {
                exec.take_inbox();
                if !exec.run_queue.is_empty() {
                    break;
                }
                if worker.begin_driver_park() {
                    let mut signalled = eventfd.0.lock().unwrap();
                    while !*signalled {
                        signalled = eventfd.1.wait(signalled).unwrap();
                    }
                    *signalled = false;
                    drop(signalled);
                    worker.end_driver_park();
                }
            }
            spawner.join().unwrap();
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn wake(task: &Arc<TaskWaker>) {
        task.scheduled.store(false, Ordering::Release);
        Waker::from(Arc::clone(task)).wake_by_ref();
    }

    fn inbox_wakes(worker: &WorkerShared) -> usize {
        worker.lock().items.len()
    }

    /// A wake given on the thread whose run loop owns the task queues
    /// locally (no inbox lock) and still counts as news for a park; every
    /// other wake, and one left when the loop ends, goes to the inbox.
    #[test]
    fn a_wake_on_the_workers_own_thread_skips_the_inbox_but_is_never_lost() {
        let worker = WorkerShared::new();
        let other = WorkerShared::new();
        let task = |worker: &Arc<WorkerShared>, id| {
            Arc::new(TaskWaker {
                worker: Arc::clone(worker),
                id,
                scheduled: AtomicBool::new(false),
            })
        };
        let (mine, theirs) = (task(&worker, 7), task(&other, 8));
        let mut queue = VecDeque::new();
        local_wakes::enter(&worker, || {
            wake(&mine);
            assert_eq!(inbox_wakes(&worker), 0);
            assert!(
                worker.take_news(),
                "a local wake keeps the worker from parking"
            );
            // A nested run loop (block_on_here inside a task) owns the
            // thread for a while: wakes of the outer worker's tasks then
            // go through its inbox, and the outer local wakes wait.
            local_wakes::enter(&other, || {
                wake(&mine);
                wake(&theirs);
            });
            assert_eq!(inbox_wakes(&worker), 1);
            assert_eq!(inbox_wakes(&other), 1, "left at the end of the nested loop");
            local_wakes::take(&worker, &mut queue);
            wake(&mine);
        });
        assert_eq!(queue, [7]);
        assert_eq!(
            inbox_wakes(&worker),
            2,
            "a wake left at the end goes to the inbox"
        );
        // Outside any run loop (another thread) the inbox it is.
        wake(&mine);
        assert_eq!(inbox_wakes(&worker), 3);
        assert!(!local_wakes::pending(&worker));
    }
}
