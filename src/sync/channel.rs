//! Bounded multi-producer multi-consumer async channel.
//!
//! `send` waits while the queue holds `capacity` items ([`channel`]; a
//! capacity of 0 is refused with a panic, as tokio does, rather than read
//! as unbounded or as a rendezvous), or never ([`unbounded_channel`]). `recv` returns `None` at end of stream: once the channel is
//! closed (by [`Sender::close`]/[`Receiver::close`]) or every sender is
//! dropped, *and* the queue is drained. Items already queued when the
//! channel closes are still delivered; nothing is lost or duplicated.
//!
//! Waiters are woken one at a time; a waiter dropped after being woken
//! passes its wakeup on, so no wakeup is lost to cancellation.

use super::shim::{Arc, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// The channel was closed; the value that could not be sent is returned.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(channel closed)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("send on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why `try_send` did not queue the value (which it hands back).
///
/// ```
/// use iokernel::sync::{channel, TrySendError};
/// let (tx, _rx) = channel::<u32>(1);
/// tx.try_send(1).unwrap();
/// let full = tx.try_send(2).unwrap_err();
/// assert_eq!(full.to_string(), "the channel is full");
/// let err: Box<dyn std::error::Error> = Box::new(full);
/// assert!(matches!(err.downcast_ref::<TrySendError<u32>>(), Some(TrySendError::Full(2))));
/// ```
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue is at capacity.
    Full(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "the channel is full",
            TrySendError::Closed(_) => "send on a closed channel",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// Why `try_recv` returned no value.
///
/// ```
/// use iokernel::sync::{channel, TryRecvError};
/// let (tx, rx) = channel::<u32>(1);
/// assert_eq!(rx.try_recv().unwrap_err().to_string(), "the channel is empty");
/// drop(tx);
/// let err: Box<dyn std::error::Error> = Box::new(rx.try_recv().unwrap_err());
/// assert_eq!(err.to_string(), "the channel is closed and drained");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued right now.
    Empty,
    /// Closed and drained: no value will ever arrive.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "the channel is empty",
            TryRecvError::Closed => "the channel is closed and drained",
        })
    }
}

impl std::error::Error for TryRecvError {}

#[derive(Default)]
struct WaitList {
    waiters: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl WaitList {
    fn register(&mut self, slot: &mut Option<u64>, waker: &Waker) {
        if let Some(id) = *slot {
            if let Some(entry) = self.waiters.iter_mut().find(|(i, _)| *i == id) {
                if !entry.1.will_wake(waker) {
                    entry.1 = waker.clone();
                }
                return;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiters.push_back((id, waker.clone()));
        *slot = Some(id);
    }

    /// Remove `id`; true if it was still waiting (not yet woken).
    fn remove(&mut self, id: u64) -> bool {
        match self.waiters.iter().position(|(i, _)| *i == id) {
            Some(pos) => {
                self.waiters.remove(pos);
                true
            }
            None => false,
        }
    }

    fn take_one(&mut self) -> Option<Waker> {
        self.waiters.pop_front().map(|(_, w)| w)
    }

    fn take_all(&mut self) -> Vec<Waker> {
        self.waiters.drain(..).map(|(_, w)| w).collect()
    }
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    closed: bool,
    senders: usize,
    receivers: usize,
    recv_waiters: WaitList,
    send_waiters: WaitList,
}

impl<T> State<T> {
    fn is_full(&self) -> bool {
        self.capacity != UNBOUNDED && self.queue.len() >= self.capacity
    }

    fn is_closed(&self) -> bool {
        self.closed || self.senders == 0
    }

    fn close(&mut self) -> Vec<Waker> {
        self.closed = true;
        let mut wakers = self.recv_waiters.take_all();
        wakers.extend(self.send_waiters.take_all());
        wakers
    }
}

struct Chan<T> {
    state: Mutex<State<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding this lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// Create a channel holding at most `capacity` queued items.
///
/// # Panics
///
/// When `capacity` is 0, like tokio's `mpsc::channel(0)`: crossbeam and
/// `std::sync::mpsc::sync_channel(0)` read 0 as a rendezvous, which this
/// channel does not offer, and reading it as "unbounded" would silently
/// lose the backpressure the caller asked for. Use [`unbounded_channel`]
/// for a queue without a bound.
///
/// ```should_panic
/// let _ = iokernel::sync::channel::<u32>(0); // panics: capacity 0
/// ```
///
/// ```
/// use iokernel::runtime::Runtime;
/// use iokernel::sync::channel;
/// let rt = Runtime::builder().compute_threads(1).build().unwrap();
/// let (tx, rx) = channel::<u32>(4);
/// rt.block_on(async move {
///     tx.send(1).await.unwrap();
///     drop(tx);
///     assert_eq!(rx.recv().await, Some(1));
///     assert_eq!(rx.recv().await, None); // every sender gone: end of stream
/// });
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "iokernel::sync::channel capacity must be at least 1 (0 is neither unbounded nor a \
         rendezvous here); use iokernel::sync::unbounded_channel for a queue without a bound"
    );
    with_capacity(capacity)
}

/// Create a channel whose `send` never waits (the queue grows as needed).
///
/// ```
/// let (tx, rx) = iokernel::sync::unbounded_channel::<u32>();
/// for i in 0..10_000 {
///     tx.try_send(i).unwrap();
/// }
/// assert_eq!(rx.try_recv(), Ok(0));
/// ```
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    with_capacity(UNBOUNDED)
}

/// `State::capacity` of an unbounded channel.
const UNBOUNDED: usize = 0;

fn with_capacity<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity,
            closed: false,
            senders: 1,
            receivers: 1,
            recv_waiters: WaitList::default(),
            send_waiters: WaitList::default(),
        }),
    });
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// Sending half; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// Receiving half; clone it for more consumers (each item goes to one).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Queue `value`, waiting while the channel is full. Fails (returning
    /// the value) once the channel is closed.
    pub fn send(&self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            chan: &self.chan,
            value: Some(value),
            waiter: None,
        }
    }

    /// Queue `value` without waiting.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.chan.lock();
        if state.is_closed() || state.receivers == 0 {
            return Err(TrySendError::Closed(value));
        }
        if state.is_full() {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        let waker = state.recv_waiters.take_one();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Close the channel for everyone: sends fail, receivers drain what is
    /// queued and then see end of stream.
    pub fn close(&self) {
        let wakers = self.chan.lock().close();
        wake_all(wakers);
    }

    /// True once closed (explicitly, or every receiver is gone).
    pub fn is_closed(&self) -> bool {
        let state = self.chan.lock();
        state.is_closed() || state.receivers == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.senders -= 1;
        if state.senders == 0 {
            let wakers = state.recv_waiters.take_all();
            drop(state);
            wake_all(wakers);
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting while the queue is empty; `None` at end of
    /// stream.
    pub fn recv(&self) -> RecvFuture<'_, T> {
        RecvFuture {
            chan: &self.chan,
            waiter: None,
        }
    }

    /// The next item without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.lock();
        match state.queue.pop_front() {
            Some(value) => {
                let waker = state.send_waiters.take_one();
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(value)
            }
            None if state.is_closed() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Close the channel for everyone (see [`Sender::close`]).
    pub fn close(&self) {
        let wakers = self.chan.lock().close();
        wake_all(wakers);
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// True when nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.receivers -= 1;
        if state.receivers == 0 {
            // Nobody can receive: blocked senders must fail, not hang.
            let wakers = state.send_waiters.take_all();
            drop(state);
            wake_all(wakers);
        }
    }
}

/// Future of [`Sender::send`].
#[must_use = "a send does nothing until awaited"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    waiter: Option<u64>,
}

impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = this.chan.lock();
        let Some(value) = this.value.take() else {
            panic!("SendFuture polled after it completed");
        };
        if state.is_closed() || state.receivers == 0 {
            return Poll::Ready(Err(SendError(value)));
        }
        if state.is_full() {
            this.value = Some(value);
            state.send_waiters.register(&mut this.waiter, cx.waker());
            return Poll::Pending;
        }
        if let Some(id) = this.waiter.take() {
            state.send_waiters.remove(id);
        }
        state.queue.push_back(value);
        let waker = state.recv_waiters.take_one();
        // Room may remain for another blocked sender.
        let next_sender = (!state.is_full())
            .then(|| state.send_waiters.take_one())
            .flatten();
        drop(state);
        waker.into_iter().chain(next_sender).for_each(Waker::wake);
        Poll::Ready(Ok(()))
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let mut state = self.chan.lock();
        if !state.send_waiters.remove(id) && self.value.is_some() && !state.is_full() {
            // Woken for a free slot we will not use: pass it on.
            let waker = state.send_waiters.take_one();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Future of [`Receiver::recv`].
#[must_use = "a recv does nothing until awaited"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    waiter: Option<u64>,
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let mut state = this.chan.lock();
        if let Some(value) = state.queue.pop_front() {
            if let Some(id) = this.waiter.take() {
                state.recv_waiters.remove(id);
            }
            let sender = state.send_waiters.take_one();
            // More items may be queued for another blocked receiver.
            let next_receiver = (!state.queue.is_empty())
                .then(|| state.recv_waiters.take_one())
                .flatten();
            drop(state);
            sender
                .into_iter()
                .chain(next_receiver)
                .for_each(Waker::wake);
            return Poll::Ready(Some(value));
        }
        if state.is_closed() {
            if let Some(id) = this.waiter.take() {
                state.recv_waiters.remove(id);
            }
            return Poll::Ready(None);
        }
        state.recv_waiters.register(&mut this.waiter, cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let mut state = self.chan.lock();
        if !state.recv_waiters.remove(id) && !state.queue.is_empty() {
            // Woken for an item we will not take: pass the wakeup on.
            let waker = state.recv_waiters.take_one();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// loom models of the channel: every interleaving (up to the preemption
/// bound) of the real code above, run by `just loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::future::block_on;
    use loom::thread;
    use std::task::Wake;

    /// A waker that does nothing: for a poll that gives up right after.
    struct IgnoreWake;

    impl Wake for IgnoreWake {
        fn wake(self: std::sync::Arc<Self>) {}
    }

    /// Two senders race one item each through a one-slot channel (one of
    /// them must wait for room); the receiver gets each item exactly once,
    /// then end of stream once both senders are dropped.
    #[test]
    fn racing_senders_lose_and_duplicate_nothing() {
        loom::model(|| {
            let (tx, rx) = channel::<u32>(1);
            let tx2 = tx.clone();
            let first = thread::spawn(move || block_on(tx.send(1)).is_ok());
            let second = thread::spawn(move || block_on(tx2.send(2)).is_ok());
            let mut received = Vec::new();
            while let Some(value) = block_on(rx.recv()) {
                received.push(value);
            }
            assert!(first.join().unwrap() && second.join().unwrap());
            received.sort_unstable();
            assert_eq!(received, [1, 2]);
        });
    }

    /// `close` races a sender that may be parked on a full channel and a
    /// receiver draining it: every send that reported success is received
    /// exactly once, in order, and nobody hangs.
    #[test]
    fn close_race_delivers_exactly_the_accepted_sends() {
        loom::model(|| {
            let (tx, rx) = channel::<u32>(1);
            let closer = rx.clone();
            let sender = thread::spawn(move || {
                [1, 2]
                    .into_iter()
                    .filter(|&v| block_on(tx.send(v)).is_ok())
                    .collect::<Vec<_>>()
            });
            let closing = thread::spawn(move || closer.close());
            let mut received = Vec::new();
            while let Some(value) = block_on(rx.recv()) {
                received.push(value);
            }
            closing.join().unwrap();
            let accepted = sender.join().unwrap();
            assert_eq!(received, accepted);
            assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        });
    }

    /// A receiver that was woken for an item and is then dropped without
    /// taking it (a timeout, a lost select) passes the wakeup on: the other
    /// waiting receiver gets the item while the sender is still alive (so
    /// end of stream cannot rescue it; a lost wakeup is a loom deadlock).
    #[test]
    fn dropped_woken_receiver_passes_the_item_on() {
        loom::model(|| {
            let (tx, rx) = unbounded_channel::<u32>();
            let quitter = rx.clone();
            let first = thread::spawn(move || {
                let waker = Waker::from(std::sync::Arc::new(IgnoreWake));
                let mut cx = Context::from_waker(&waker);
                let mut recv = quitter.recv();
                match Pin::new(&mut recv).poll(&mut cx) {
                    Poll::Ready(value) => value,
                    Poll::Pending => None, // dropped while registered
                }
            });
            let sender = thread::spawn(move || {
                tx.try_send(7).unwrap();
                tx
            });
            let second = thread::spawn(move || block_on(rx.recv()));
            let first_got = first.join().unwrap();
            let tx = sender.join().unwrap();
            if first_got.is_some() {
                drop(tx); // end of stream for the second receiver
                assert_eq!(second.join().unwrap(), None);
            } else {
                assert_eq!(second.join().unwrap(), Some(7));
                drop(tx);
            }
        });
    }

    /// Dropping the last receiver fails a sender parked on a full channel
    /// instead of leaving it waiting forever; the item it held comes back.
    #[test]
    fn last_receiver_drop_fails_a_parked_sender() {
        loom::model(|| {
            let (tx, rx) = channel::<u32>(1);
            tx.try_send(1).unwrap();
            let sender = thread::spawn(move || block_on(tx.send(2)));
            let receiver = thread::spawn(move || drop(rx));
            receiver.join().unwrap();
            assert_eq!(sender.join().unwrap(), Err(SendError(2)));
        });
    }
}
