//! Spawned tasks' result plumbing: [`JoinHandle`], [`JoinError`] and the
//! wrapper that catches a task's panic and reports it instead of letting it
//! take the worker down.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Why a task produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The task panicked; the panic message.
    Panicked(String),
    /// The task was aborted, or its runtime shut down before it finished.
    Cancelled,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            JoinError::Cancelled => f.write_str("task was cancelled before it finished"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

struct JoinState<T> {
    output: Option<Result<T, JoinError>>,
    finished: bool,
    join_waker: Option<Waker>,
    task_waker: Option<Waker>,
}

struct JoinShared<T> {
    state: Mutex<JoinState<T>>,
    /// [`JoinHandle::abort`] was called. Outside the lock: a task polled
    /// with the waker it already registered checks it with no lock (the
    /// abort sets it before it takes that waker, so a poll that misses it
    /// is followed by a wake).
    abort_requested: AtomicBool,
}

impl<T> JoinShared<T> {
    fn lock(&self) -> MutexGuard<'_, JoinState<T>> {
        // Nothing panics while holding this lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, output: Result<T, JoinError>) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        state.output = Some(output);
        let waker = state.join_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Awaits a spawned task's value. Dropping it detaches the task.
#[must_use = "dropping a JoinHandle detaches the task; await it to see its result"]
pub struct JoinHandle<T> {
    shared: Arc<JoinShared<T>>,
}

impl<T> JoinHandle<T> {
    /// Ask the task to stop: it is dropped at its next scheduling point and
    /// the handle resolves to [`JoinError::Cancelled`] (unless it finished
    /// first). In-flight ops it owned are cancelled safely.
    pub fn abort(&self) {
        self.shared.abort_requested.store(true, Ordering::SeqCst);
        let mut state = self.shared.lock();
        let waker = state.task_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// True once the task has produced its result (or error).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().finished
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        if let Some(output) = state.output.take() {
            return Poll::Ready(output);
        }
        if state.finished {
            panic!("JoinHandle polled after it returned its result");
        }
        state.join_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The future a worker actually runs for a spawned task.
pub(crate) struct TaskCell<F: Future> {
    future: Pin<Box<F>>,
    shared: Arc<JoinShared<F::Output>>,
    /// The waker last registered for [`JoinHandle::abort`]: a poll with
    /// the same waker (every poll but the first, on a worker) registers
    /// nothing and takes no lock.
    registered: Option<Waker>,
}

/// Wrap `future` for spawning; returns the task and its handle.
pub(crate) fn new_task<F: Future>(future: F) -> (TaskCell<F>, JoinHandle<F::Output>) {
    let shared = Arc::new(JoinShared {
        state: Mutex::new(JoinState {
            output: None,
            finished: false,
            join_waker: None,
            task_waker: None,
        }),
        abort_requested: AtomicBool::new(false),
    });
    let handle = JoinHandle {
        shared: Arc::clone(&shared),
    };
    (
        TaskCell {
            future: Box::pin(future),
            shared,
            registered: None,
        },
        handle,
    )
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl<F: Future> Future for TaskCell<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // Registered before the abort flag is read: an abort that
            // this poll misses finds the waker and wakes the task.
            let mut state = this.shared.lock();
            if state.finished {
                return Poll::Ready(());
            }
            state.task_waker = Some(cx.waker().clone());
            this.registered = Some(cx.waker().clone());
        }
        let output = if this.shared.abort_requested.load(Ordering::SeqCst) {
            Err(JoinError::Cancelled)
        } else {
            let future = this.future.as_mut();
            match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(value)) => Ok(value),
                Err(payload) => Err(JoinError::Panicked(panic_message(&*payload))),
            }
        };
        this.shared.finish(output);
        // A poll after this one takes the lock and finds the task finished.
        this.registered = None;
        Poll::Ready(())
    }
}

impl<F: Future> Drop for TaskCell<F> {
    fn drop(&mut self) {
        // Dropped before finishing: the runtime shut down or the task was
        // aborted; the handle must not wait forever.
        self.shared.finish(Err(JoinError::Cancelled));
    }
}
