//! Where a running op's result meets the future waiting for it, shared by
//! the drivers that complete ops away from the awaiting task (the pool's
//! worker threads, the io_uring completion queue).
//!
//! The driver holds one side (and the op with its buffer while the kernel
//! may touch it); the op future holds the other. If the future is dropped
//! first the completion is *abandoned*: the late result goes to
//! [`OpCode::discard`] so an fd it produced is closed, and the buffer is
//! dropped only then.

use crate::op::OpCode;
use crate::sync::shim::{Arc, Mutex, MutexGuard};
use crate::sys::{Kernel, SysResult};
use std::task::{Context, Poll, Waker};

pub(crate) enum CompletionState<T> {
    Running { waker: Option<Waker> },
    Finished(T, SysResult<usize>),
    Abandoned,
    Taken,
}

/// Where a driver leaves an op and its result for the waiting future.
pub(crate) struct Completion<T> {
    state: Mutex<CompletionState<T>>,
}

impl<T: OpCode> Completion<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, CompletionState<T>> {
        // No code panics while holding this lock; a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        matches!(*self.lock(), CompletionState::Abandoned)
    }

    /// Called once by the job when the syscall has returned.
    pub(crate) fn finish(&self, op: T, result: SysResult<usize>, kernel: &dyn Kernel) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, CompletionState::Taken) {
            CompletionState::Running { waker } => {
                *state = CompletionState::Finished(op, result);
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            _ => {
                drop(state);
                op.discard(result, kernel);
            }
        }
    }
}

impl<T: OpCode> Completion<T> {
    /// A completion whose op is running.
    pub(crate) fn new() -> Arc<Completion<T>> {
        Arc::new(Completion {
            state: Mutex::new(CompletionState::Running { waker: None }),
        })
    }

    /// The op and its result once finished (taking them), else register
    /// the waker.
    pub(crate) fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<(T, SysResult<usize>)> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, CompletionState::Taken) {
            CompletionState::Finished(op, result) => Poll::Ready((op, result)),
            CompletionState::Running { waker } => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *state = CompletionState::Running { waker: Some(waker) };
                Poll::Pending
            }
            other => {
                *state = other;
                panic!("op polled after completion")
            }
        }
    }

    /// The future is gone: discard a result that already arrived, or mark
    /// the op abandoned so its driver discards the result when it comes.
    pub(crate) fn abandon(&self, kernel: &dyn Kernel) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, CompletionState::Abandoned) {
            CompletionState::Finished(op, result) => {
                drop(state);
                op.discard(result, kernel);
            }
            CompletionState::Taken => *state = CompletionState::Taken,
            CompletionState::Running { .. } | CompletionState::Abandoned => {}
        }
    }
}
