//! Timers: [`sleep`], [`timeout`] and the runtime's deadline heap.
//!
//! Deadlines are read from the seam's clock, so a runtime on a simulated
//! kernel runs on virtual time. Every worker fires due timers before it
//! parks and parks no longer than the earliest deadline. Timers fire in
//! deadline order; equal deadlines fire in registration order.
//!
//! Outside a runtime (the sync fallback) time is the real clock: a
//! [`sleep`] blocks its thread, and a [`timeout`] publishes its deadline
//! to the thread while it polls its future, so a sleep inside it blocks
//! only until that deadline and the timeout returns `Elapsed` on time
//! (`timeout(20ms, sleep(300ms))` returns after about 20 ms). An op inside
//! is a blocking syscall and is not cut short.

use super::context;
use crate::sys::real::RealClock;
use crate::sys::Clock;
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

const NO_DEADLINE: u64 = u64::MAX;

thread_local! {
    /// Outside a runtime: the earliest deadline of the [`timeout`]s being
    /// polled on this thread, on [`sync_now`]'s clock.
    static SYNC_DEADLINE: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// The real clock the sync fallback's sleeps and timeouts share.
fn sync_now() -> Duration {
    static CLOCK: OnceLock<RealClock> = OnceLock::new();
    CLOCK.get_or_init(RealClock::new).now()
}

/// The earlier of `deadline` and the enclosing timeouts' deadline.
fn cut_by_outer(deadline: Duration) -> Duration {
    SYNC_DEADLINE.with(|d| d.get().map_or(deadline, |outer| outer.min(deadline)))
}

#[derive(Default)]
struct TimerHeap {
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    wakers: HashMap<u64, Waker>,
    next_id: u64,
}

/// The runtime-wide set of pending timers.
pub(crate) struct Timers {
    heap: Mutex<TimerHeap>,
    /// Earliest pending deadline in nanoseconds, so workers can skip the
    /// lock when nothing is due.
    earliest_nanos: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NO_DEADLINE - 1)
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(TimerHeap::default()),
            earliest_nanos: AtomicU64::new(NO_DEADLINE),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TimerHeap> {
        // Nothing panics while holding this lock.
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_earliest(&self, heap: &mut TimerHeap) {
        while let Some(Reverse((_, id))) = heap.heap.peek() {
            if heap.wakers.contains_key(id) {
                break;
            }
            heap.heap.pop();
        }
        let earliest = heap
            .heap
            .peek()
            .map_or(NO_DEADLINE, |Reverse((d, _))| nanos(*d));
        self.earliest_nanos.store(earliest, Ordering::Release);
    }

    fn register(&self, deadline: Duration, waker: Waker) -> u64 {
        let mut heap = self.lock();
        let id = heap.next_id;
        heap.next_id += 1;
        heap.heap.push(Reverse((deadline, id)));
        heap.wakers.insert(id, waker);
        self.earliest_nanos
            .fetch_min(nanos(deadline), Ordering::AcqRel);
        id
    }

    fn update(&self, id: u64, waker: &Waker) {
        let mut heap = self.lock();
        if let Some(slot) = heap.wakers.get_mut(&id) {
            if !slot.will_wake(waker) {
                *slot = waker.clone();
            }
        }
    }

    fn cancel(&self, id: u64) {
        let mut heap = self.lock();
        if heap.wakers.remove(&id).is_some() {
            self.publish_earliest(&mut heap);
        }
    }

    /// Wake every timer due at `now()`, in deadline order; return the time
    /// until the next deadline, if any. The clock is read only when a
    /// timer is armed (a run loop without timers reads no clock).
    #[inline]
    pub(crate) fn fire_due(&self, now: impl FnOnce() -> Duration) -> Option<Duration> {
        let earliest = self.earliest_nanos.load(Ordering::Acquire);
        if earliest == NO_DEADLINE {
            return None;
        }
        self.fire_due_armed(earliest, now)
    }

    /// [`Timers::fire_due`] with a timer armed, the earliest at `earliest`.
    #[inline(never)]
    fn fire_due_armed(&self, earliest: u64, now: impl FnOnce() -> Duration) -> Option<Duration> {
        let now = now();
        if earliest > nanos(now) {
            return Some(Duration::from_nanos(earliest - nanos(now)));
        }
        let mut due = Vec::new();
        let mut heap = self.lock();
        while let Some(&Reverse((deadline, id))) = heap.heap.peek() {
            if deadline > now {
                break;
            }
            heap.heap.pop();
            if let Some(waker) = heap.wakers.remove(&id) {
                due.push(waker);
            }
        }
        self.publish_earliest(&mut heap);
        let next = heap
            .heap
            .peek()
            .map(|Reverse((d, _))| d.saturating_sub(now));
        drop(heap);
        for waker in due {
            waker.wake();
        }
        next
    }
}

/// A future that completes after a duration; see [`sleep`].
#[must_use = "a sleep does nothing until awaited"]
pub struct Sleep {
    duration: Duration,
    deadline: Option<Duration>,
    /// Outside a runtime: the deadline on [`sync_now`]'s clock.
    sync_deadline: Option<Duration>,
    timer: Option<(Arc<super::RuntimeShared>, u64)>,
}

/// Wait for `duration`. Inside a runtime the task yields to others; on a
/// thread without a runtime a poll blocks the thread until the deadline
/// (the sync fallback), or, inside a [`timeout`], at most until the
/// timeout's deadline (the sleep is then still pending and the timeout
/// returns `Elapsed`). A deadline past the clock's range (`Duration::MAX`,
/// the usual way to say "no limit") is never reached.
///
/// ```
/// use iokernel::runtime::{sleep, Runtime};
/// use std::time::Duration;
/// let rt = Runtime::builder().compute_threads(1).build().unwrap();
/// rt.block_on(sleep(Duration::from_millis(5)));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        duration,
        deadline: None,
        sync_deadline: None,
        timer: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(runtime) = context::current_runtime() else {
            let now = sync_now();
            let duration = self.duration;
            let deadline = *self
                .sync_deadline
                .get_or_insert(now.saturating_add(duration));
            let until = cut_by_outer(deadline);
            if until > now {
                std::thread::sleep(until - now);
            }
            if sync_now() >= deadline {
                return Poll::Ready(());
            }
            // Cut short by an enclosing timeout, which now sees its
            // deadline passed; poll again if it does not.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let now = runtime.clock.now();
        let duration = self.duration;
        let deadline = *self.deadline.get_or_insert(now.saturating_add(duration));
        if nanos(deadline) >= NO_DEADLINE - 1 {
            // Past the clock's range (Duration::MAX): it never fires, so no
            // timer at all (a run waiting only on it is idle, or stuck).
            return Poll::Pending;
        }
        if now >= deadline {
            if let Some((rt, id)) = self.timer.take() {
                rt.timers.cancel(id);
            }
            return Poll::Ready(());
        }
        match &self.timer {
            Some((rt, id)) => rt.timers.update(*id, cx.waker()),
            None => {
                let id = runtime.timers.register(deadline, cx.waker().clone());
                self.timer = Some((runtime, id));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((rt, id)) = self.timer.take() {
            rt.timers.cancel(id);
        }
    }
}

/// The deadline of a [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub Duration);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// A future bounded by a deadline; see [`timeout`].
#[must_use = "a timeout does nothing until awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
    /// Outside a runtime: the deadline on [`sync_now`]'s clock.
    sync_deadline: Option<Duration>,
}

/// Run `future` for at most `duration`. When time runs out the future is
/// dropped (cancelling any op it has in flight) and `Err(Elapsed)` returned.
/// `Duration::MAX` bounds nothing: the future runs to its end.
///
/// Outside a runtime the deadline holds too: a [`sleep`] inside is cut
/// short at it, and while the future waits for a wake-up the thread parks
/// no longer than the deadline. A blocking op inside (the sync fallback's
/// syscall) is not interrupted.
///
/// ```
/// use iokernel::runtime::{block_on_here, sleep, timeout};
/// use std::time::Duration;
/// // No runtime: returns after about 20 ms, not 300 ms.
/// let late = block_on_here(timeout(Duration::from_millis(20), sleep(Duration::from_millis(300))));
/// assert!(late.is_err());
/// ```
///
/// ```
/// use iokernel::runtime::{sleep, timeout, Runtime};
/// use std::time::Duration;
/// let rt = Runtime::builder().compute_threads(1).build().unwrap();
/// let late = rt.block_on(timeout(Duration::from_millis(5), sleep(Duration::from_secs(60))));
/// assert!(late.is_err());
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep(duration),
        sync_deadline: None,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if context::current_runtime().is_none() {
            return self.poll_sync(cx);
        }
        if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        let duration = self.sleep.duration;
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(duration))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: Future> Timeout<F> {
    /// The sync fallback: poll the future with this deadline published to
    /// the thread, then park until a wake-up or the deadline.
    fn poll_sync(&mut self, cx: &mut Context<'_>) -> Poll<Result<F::Output, Elapsed>> {
        struct Restore(Option<Duration>);
        impl Drop for Restore {
            fn drop(&mut self) {
                SYNC_DEADLINE.with(|d| d.set(self.0));
            }
        }
        let duration = self.sleep.duration;
        let deadline = *self
            .sync_deadline
            .get_or_insert(sync_now().saturating_add(duration));
        let until = cut_by_outer(deadline);
        let polled = {
            let _restore = Restore(SYNC_DEADLINE.with(|d| d.replace(Some(until))));
            self.future.as_mut().poll(cx)
        };
        if let Poll::Ready(value) = polled {
            return Poll::Ready(Ok(value));
        }
        let now = sync_now();
        if now >= deadline {
            return Poll::Ready(Err(Elapsed(duration)));
        }
        if until > now {
            // A wake-up of the future unparks this thread (block_on_here's
            // waker does); so does the deadline.
            std::thread::park_timeout(until - now);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
