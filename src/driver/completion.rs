//! Where a running op's result meets the future waiting for it, shared by
//! the drivers that complete ops away from the awaiting task: the pool's
//! worker threads, and an io_uring ring for a future that cannot reach it
//! (`uring/mailbox.rs`; a future on its ring's thread takes its result
//! from the ring's slot instead).
//!
//! The driver holds one side (and the op with its buffer while the kernel
//! may touch it); the op future holds the other. If the future is dropped
//! first the completion is *abandoned*: the late result goes to
//! [`OpCode::discard`] so an fd it produced is closed, and the buffer is
//! dropped only then.

use crate::op::OpCode;
use crate::sync::shim::{Mutex, MutexGuard};
use crate::sys::leftover::LateResult;
use crate::sys::{Kernel, SysResult};
use std::os::fd::RawFd;
// std's Arc (drivers share it with `Arc<dyn ...>` code); the state inside is
// the shim's Mutex, which is what loom models.
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

pub(crate) enum CompletionState<T> {
    Running {
        waker: Option<Waker>,
    },
    Finished(T, SysResult<usize>),
    /// The future is gone; the fd of a reader still running is owed its
    /// late result until [`Completion::finish`] has discarded it.
    Abandoned(Option<LateResult>),
    Taken,
}

/// Where a driver leaves an op and its result for the waiting future.
pub(crate) struct Completion<T> {
    state: Mutex<CompletionState<T>>,
    /// The fd the op takes from in order, for a reader: abandoned while
    /// running, it owes the fd its late result.
    reader: Option<RawFd>,
}

impl<T: OpCode> Completion<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, CompletionState<T>> {
        // No code panics while holding this lock; a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        matches!(*self.lock(), CompletionState::Abandoned(_))
    }

    /// Called once by the job when the syscall has returned. True when
    /// the future was gone ([`Completion::abandon`] found the op running)
    /// and the result went to [`OpCode::discard`].
    pub(crate) fn finish(&self, op: T, result: SysResult<usize>, kernel: &dyn Kernel) -> bool {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, CompletionState::Taken) {
            CompletionState::Running { waker } => {
                *state = CompletionState::Finished(op, result);
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                false
            }
            gone => {
                drop(state);
                op.discard(result, kernel);
                // Kept: the fd is owed nothing more (`gone`'s LateResult).
                drop(gone);
                true
            }
        }
    }
}

impl<T: OpCode> Completion<T> {
    /// A completion whose op is running; `reader`, the fd a reader takes
    /// from in order ([`OpCode::takes_in_order`]).
    pub(crate) fn new(reader: Option<RawFd>) -> Arc<Completion<T>> {
        Self::running(None, reader)
    }

    /// A completion whose op is running, with `waker` registered: its
    /// future needs no poll before the result is in.
    pub(crate) fn waking(waker: Waker, reader: Option<RawFd>) -> Arc<Completion<T>> {
        Self::running(Some(waker), reader)
    }

    fn running(waker: Option<Waker>, reader: Option<RawFd>) -> Arc<Completion<T>> {
        Arc::new(Completion {
            state: Mutex::new(CompletionState::Running { waker }),
            reader,
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
    /// the op abandoned so its driver discards the result when it comes
    /// (a reader's fd is owed that result meanwhile: [`LateResult`]).
    /// True when the op is still with its driver (now abandoned), which
    /// is when a cancel is worth asking for.
    pub(crate) fn abandon(&self, kernel: &dyn Kernel) -> bool {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, CompletionState::Abandoned(None)) {
            CompletionState::Finished(op, result) => {
                drop(state);
                op.discard(result, kernel);
                false
            }
            CompletionState::Taken => {
                *state = CompletionState::Taken;
                false
            }
            CompletionState::Running { .. } => {
                // Owed under the lock: `finish` cannot discard before.
                let owed = self.reader.map(|fd| LateResult::owed(kernel, fd));
                *state = CompletionState::Abandoned(owed);
                true
            }
            CompletionState::Abandoned(owed) => {
                *state = CompletionState::Abandoned(owed);
                true
            }
        }
    }
}

/// loom models of the completion handoff between a driver thread (a pool
/// worker, the io_uring reaper) and the op future on a runtime worker,
/// including the cancellation path that parks the op's buffer until the
/// kernel is done with it. Run by `just loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::buf::{IoBuf, IoBufMut};
    use crate::op::file::Read;
    use crate::op::path::{KernelPath, Open};
    use crate::sim::{self, SimOptions};
    use crate::sys::{Errno, OpenFlags};
    use loom::future::block_on;
    use loom::thread;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// An op buffer that counts its drops, so a model can tell when the
    /// buffer was freed relative to the kernel finishing with it.
    struct TrackedBuf {
        bytes: Vec<u8>,
        drops: std::sync::Arc<AtomicUsize>,
    }

    impl Drop for TrackedBuf {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl IoBuf for TrackedBuf {
        fn as_bytes(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl IoBufMut for TrackedBuf {
        fn writable(&mut self) -> &mut [u8] {
            &mut self.bytes
        }

        fn set_filled(&mut self, _filled: usize) {}
    }

    struct IgnoreWake;

    impl Wake for IgnoreWake {
        fn wake(self: std::sync::Arc<Self>) {}
    }

    fn poll_once<T: OpCode>(completion: &Completion<T>) -> Option<(T, SysResult<usize>)> {
        let waker = Waker::from(std::sync::Arc::new(IgnoreWake));
        match completion.poll_finished(&mut Context::from_waker(&waker)) {
            Poll::Ready(done) => Some(done),
            Poll::Pending => None,
        }
    }

    fn quiet_kernel() -> std::sync::Arc<crate::sim::SimKernel> {
        sim::new_kernel(SimOptions::new(1)).unwrap()
    }

    /// The future polls once and is dropped (abandon) while the driver
    /// thread finishes the op: whichever comes first, the buffer ends up
    /// freed exactly once (by the future that took the result, or by the
    /// late completion's discard) and nothing stays parked in the slot.
    #[test]
    fn abandoned_read_parks_its_buffer_until_the_kernel_is_done() {
        loom::model(|| {
            let kernel = quiet_kernel();
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let op = Read {
                fd: 3,
                buf: TrackedBuf {
                    bytes: vec![0; 8],
                    drops: std::sync::Arc::clone(&drops),
                },
                offset: Some(0),
                took_leftover: false,
            };
            let completion = Completion::new(Some(3));
            let driver = {
                let completion = Arc::clone(&completion);
                let kernel = std::sync::Arc::clone(&kernel);
                // The op (and its buffer) belongs to the driver until the
                // kernel is done: it is moved in here, not shared.
                thread::spawn(move || completion.finish(op, Ok(8), &*kernel))
            };
            let taken = poll_once(&completion);
            let took_result = taken.is_some();
            drop(taken);
            if !took_result {
                completion.abandon(&*kernel);
            }
            driver.join().unwrap();
            // Freed exactly once, and not left parked in the completion.
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert!(matches!(
                *completion.lock(),
                CompletionState::Taken | CompletionState::Abandoned(_)
            ));
            // Discarded or taken: fd 3 is owed nothing.
            let waker = Waker::from(std::sync::Arc::new(IgnoreWake));
            let owed = crate::sys::leftover::poll_nothing_owed(&*kernel, 3, &waker);
            assert!(owed.is_ready());
        });
    }

    /// A late `open` completion for an abandoned future closes the fd it
    /// produced; a taken one hands it to the future. Either way exactly one
    /// owner closes it: afterwards the fd is gone from the kernel.
    #[test]
    fn abandoned_open_closes_the_late_fd() {
        loom::model(|| {
            let kernel = quiet_kernel();
            let flags = OpenFlags::RDWR | OpenFlags::CREAT;
            let path = std::ffi::CString::new("/late").unwrap();
            let fd = kernel.open(&path, flags, 0o644).unwrap();
            let op = Open {
                path: KernelPath::new(Path::new("/late")),
                flags,
                mode: 0o644,
            };
            let completion = Completion::new(None);
            let driver = {
                let completion = Arc::clone(&completion);
                let kernel = std::sync::Arc::clone(&kernel);
                thread::spawn(move || completion.finish(op, Ok(fd as usize), &*kernel))
            };
            match poll_once(&completion) {
                Some((_op, result)) => kernel.close(result.unwrap() as _).unwrap(),
                None => {
                    completion.abandon(&*kernel);
                }
            }
            driver.join().unwrap();
            assert_eq!(kernel.close(fd), Err(Errno::EBADF), "fd leaked");
        });
    }

    /// A future that registered its waker before the result arrived is
    /// woken and gets the result (a lost wakeup is a loom deadlock).
    #[test]
    fn registered_waiter_is_woken_by_the_completion() {
        loom::model(|| {
            let kernel = quiet_kernel();
            let completion = Completion::new(None);
            let op = Read {
                fd: 3,
                buf: vec![0u8; 4],
                offset: None,
                took_leftover: false,
            };
            let driver = {
                let completion = Arc::clone(&completion);
                let kernel = std::sync::Arc::clone(&kernel);
                thread::spawn(move || completion.finish(op, Ok(4), &*kernel))
            };
            let (op, result) = block_on(std::future::poll_fn(|cx| completion.poll_finished(cx)));
            assert_eq!(result, Ok(4));
            assert_eq!(op.buf.len(), 4);
            driver.join().unwrap();
        });
    }
}
