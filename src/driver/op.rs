//! The [`Op`] future: an op descriptor (`crate::op`) on its way through the
//! current driver.
//!
//! # Lifecycle and cancellation
//!
//! `Op<T>` starts as `Ready(op)`. On first poll it either runs the blocking
//! syscall right there (no driver on this thread: the *sync fallback*), or
//! completes inline from the page cache (`super::inline`: a file read or
//! small write the kernel serves with `RWF_NOWAIT`; every few such hits
//! the task yields once first), or is submitted to the current driver
//! (`super::context`) and becomes `InFlight`; a reader whose fd is owed
//! late bytes (an abandoned read's, a stopping receive stream's) waits in
//! `Ready` until they are kept, and takes them first. An in-flight op
//! belongs to the driver: dropping the future marks it abandoned, and the
//! driver drops the buffer only after the kernel has returned. A late result of an abandoned op goes to
//! [`OpCode::discard`], which for `open` and `accept` closes the new fd so
//! nothing leaks.

use super::inline::{self, Attempt};
use super::metrics::{self, Counted};
use super::{context, Driver, InFlight};
use crate::op::{run_here, settle_early, waits_for_late_results, OpCode};
use crate::sys::SysResult;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

enum OpState<T: OpCode> {
    Ready(T),
    /// In flight, neither counted nor traced (with the `tracing` feature
    /// every op is wrapped: `Counted`).
    InFlight(InFlight<T>),
    /// In flight and counted in the runtime's metrics.
    Counted(InFlight<Counted<T>>),
    /// Completed inline; the task yields once before taking the output
    /// (fairness, see `super::inline`).
    ///
    /// The op and its raw result are kept, not `T::Output`: an `Output`
    /// inside the future trips rustc's higher-ranked `Send` checks of the
    /// async fns that await it.
    Yielded(T, SysResult<usize>),
    /// The same, counted (or traced).
    YieldedCounted(Counted<T>, SysResult<usize>),
    Done,
}

/// A submitted (or about to be submitted) op; await it, or call
/// [`Op::wait`] from synchronous code.
///
/// An `Op` may move to another thread after its first poll submitted it
/// (it is `Send` when its op is): awaited or dropped there, it still gets
/// its result or is cancelled, on every backend. On io_uring the result
/// comes through the ring of the thread that submitted it, so that thread
/// must keep running its runtime loop meanwhile; when that runtime is
/// dropped instead, the ring's ops are brought back first and their
/// results wait for their futures.
#[must_use = "an op does nothing until awaited or waited on"]
pub struct Op<T: OpCode> {
    state: OpState<T>,
}

// The op struct is moved into the driver on submission and never pinned.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    pub(crate) fn new(op: T) -> Op<T> {
        Op {
            state: OpState::Ready(op),
        }
    }

    /// Run the op to completion on this thread, blocking it. Uses the
    /// current runtime's kernel when called inside one (so a simulated
    /// kernel stays in charge), else the real kernel.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("iok-wait-doc-{}", std::process::id()));
    /// std::fs::write(&path, b"hello").unwrap();
    /// let fd = iokernel::io::open(&path, iokernel::io::OpenFlags::RDONLY, 0).wait().unwrap();
    /// let iokernel::buf::BufResult(n, buf) = iokernel::io::read(fd, vec![0u8; 16]).wait();
    /// assert_eq!(n.unwrap(), 5);
    /// assert_eq!(buf, b"hello");
    /// iokernel::io::close(fd).wait().unwrap();
    /// # std::fs::remove_file(path).unwrap();
    /// ```
    pub fn wait(mut self) -> T::Output {
        match std::mem::replace(&mut self.state, OpState::Done) {
            OpState::Ready(mut op) => {
                let result = run_here(&mut op, &*context::current_kernel());
                op.complete(result)
            }
            OpState::InFlight(mut in_flight) => park_until(move |cx| in_flight.poll(cx)),
            OpState::Counted(mut in_flight) => park_until(move |cx| in_flight.poll(cx)),
            OpState::Yielded(op, result) => op.complete(result),
            OpState::YieldedCounted(op, result) => op.complete(result),
            OpState::Done => panic!("Op::wait called on an op that already completed"),
        }
    }

    /// `waker` is the polling task's, for a driver that registers it at
    /// submission ([`InFlight::is_waiting`]).
    /// Leaves the op's next state in `state` (in flight, or yielded after an
    /// inline hit) and returns `None`, or returns the output when done at
    /// once. (Written in place: the state is large, and each move of it
    /// through a return value costs instructions on every op.)
    fn submit_or_run(
        state: &mut OpState<T>,
        op: T,
        driver: Option<Rc<Driver>>,
        waker: &Waker,
    ) -> Option<T::Output> {
        let mut op = op;
        // (With a driver, the caller settled the op early: `settle_early`.)
        // A read or write the page cache can serve completes inline (see
        // `super::inline`); the rest go to the driver.
        match driver {
            Some(driver) => {
                let kernel = &**driver.kernel();
                if let Some(fd) = op.closes_fd() {
                    inline::forget(kernel, fd);
                }
                // Counted when the runtime keeps metrics; with the `tracing`
                // feature every op is wrapped (uncounted but traced), the
                // inline hits included.
                let registry = metrics::current();
                if registry.is_none() && !cfg!(feature = "tracing") {
                    if let Attempt::Hit { result, yield_now } = inline::attempt(&mut op, kernel) {
                        if yield_now {
                            *state = OpState::Yielded(op, result);
                            return None;
                        }
                        return Some(op.complete(result));
                    }
                    *state = OpState::InFlight(driver.submit(op, waker));
                    return None;
                }
                let mut op = metrics::counted(registry, op);
                match inline::attempt(&mut op, kernel) {
                    Attempt::Hit { result, yield_now } => {
                        op.note_fast_path(true);
                        if yield_now {
                            *state = OpState::YieldedCounted(op, result);
                            return None;
                        }
                        return Some(op.complete(result));
                    }
                    Attempt::Missed => op.note_fast_path(false),
                    Attempt::Skipped => {}
                }
                let name = op.name();
                let in_flight = driver.submit(op, waker);
                if in_flight.on_pool() && !driver.is_pool() {
                    metrics::note_pool_handoff(name);
                }
                *state = OpState::Counted(in_flight);
                None
            }
            None => {
                let result = run_here(&mut op, &*context::current_kernel());
                Some(op.complete(result))
            }
        }
    }
}

impl<T: OpCode> OpState<T> {
    /// In flight with the submitting task's waker already registered.
    fn is_waiting(&self) -> bool {
        match self {
            OpState::InFlight(in_flight) => in_flight.is_waiting(),
            OpState::Counted(in_flight) => in_flight.is_waiting(),
            _ => false,
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                OpState::Ready(op) => {
                    let driver = context::current_driver();
                    if let Some(driver) = &driver {
                        let kernel = &**driver.kernel();
                        // Closing an fd drops what cancelled ops left for
                        // it; a recv or accept with leftovers is done.
                        if let Some(result) = settle_early(op, kernel) {
                            let OpState::Ready(op) =
                                std::mem::replace(&mut this.state, OpState::Done)
                            else {
                                unreachable!("state checked above")
                            };
                            return Poll::Ready(op.complete(result));
                        }
                        // Late bytes still owed to the fd come before what
                        // the op would read now: polled again once they are
                        // kept (and taken above).
                        if waits_for_late_results(op, kernel, cx.waker()) {
                            return Poll::Pending;
                        }
                    }
                    let OpState::Ready(op) = std::mem::replace(&mut this.state, OpState::Done)
                    else {
                        unreachable!("state checked above")
                    };
                    if let Some(output) =
                        Self::submit_or_run(&mut this.state, op, driver, cx.waker())
                    {
                        return Poll::Ready(output);
                    }
                    if matches!(
                        this.state,
                        OpState::Yielded(..) | OpState::YieldedCounted(..)
                    ) {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    // Submitted with this task's waker: nothing to poll
                    // until the completion wakes it.
                    if this.state.is_waiting() {
                        return Poll::Pending;
                    }
                }
                OpState::Yielded(..) | OpState::YieldedCounted(..) => {
                    return Poll::Ready(match std::mem::replace(&mut this.state, OpState::Done) {
                        OpState::Yielded(op, result) => op.complete(result),
                        OpState::YieldedCounted(op, result) => op.complete(result),
                        _ => unreachable!("state checked above"),
                    });
                }
                OpState::InFlight(in_flight) => {
                    let output = std::task::ready!(in_flight.poll(cx));
                    this.state = OpState::Done;
                    return Poll::Ready(output);
                }
                OpState::Counted(in_flight) => {
                    let output = std::task::ready!(in_flight.poll(cx));
                    this.state = OpState::Done;
                    return Poll::Ready(output);
                }
                OpState::Done => panic!("Op polled after it completed"),
            }
        }
    }
}

/// Wakes the thread blocked in [`park_until`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Poll `poll` on this thread until it is ready, parking the thread in
/// between (the driver's completion wakes it).
fn park_until<R>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>) -> R {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}
