//! How an io_uring op's future reaches its ring from another thread.
//!
//! A ring op's state stays in its ring's table, which only the ring's
//! thread touches: its future takes the result from there when it is
//! polled on that thread (no lock, no reference count; iokernel's tasks
//! never move between workers). An `Op` is `Send`, though. A future that
//! cannot reach its ring (moved to another thread after submitting, or
//! polled or dropped while its thread's rings are borrowed, or outliving
//! the ring) writes to the ring's mailbox instead: *adopt* (deliver the
//! result through a shared [`Completion`](crate::driver::completion)) or
//! *abandon* (discard it). The ring applies the requests when it
//! dispatches completions (one atomic load while the mailbox is empty).
//! A ring whose thread's loop leaves (`block_on` returned), or that
//! closes, leaves the results no future has picked up yet in its mailbox,
//! as *orphans*, for their futures to take: a future awaited elsewhere
//! would otherwise wait for a loop that no longer reads this ring.
//!
//! Owns: the process's registry of mailboxes (ring id -> mailbox). May
//! not touch: a ring's table (the ring applies what the mailbox holds).

use crate::sync::shim::atomic::{AtomicBool, Ordering};
use crate::sync::shim::Mutex;
use crate::sys::leftover::LateResult;
use crate::sys::Kernel;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// What a future that cannot reach its ring asks of it.
pub(super) enum Request {
    /// Deliver the op's result through `completion` (an
    /// `Arc<Completion<T>>` of the op's type) from now on.
    Adopt {
        user_data: u64,
        completion: Box<dyn Any + Send>,
    },
    /// The future is gone: discard the result, cancel the entry; `owed`
    /// (a reader's) goes with the op until its result is discarded.
    Abandon {
        user_data: u64,
        owed: Option<LateResult>,
    },
    /// Cancel the receive stream `user_data` (its socket is closing or
    /// given away on another thread).
    StopStream { user_data: u64 },
}

/// Finished ops of a closing ring by `user_data`, each a
/// `Box<(T, SysResult<usize>)>`.
pub(super) type Orphans = Vec<(u64, Box<dyn Any + Send>)>;

/// What a future finds when it writes to its ring's mailbox.
pub(super) enum Reached {
    /// The request is queued; the ring applies it when it next dispatches.
    Queued,
    /// The ring left the op's result here (its loop left, or it closed)
    /// before the future picked it up: here it is (a
    /// `Box<(T, SysResult<usize>)>`).
    Orphan(Box<dyn Any + Send>),
    /// The ring closed with the op still in the kernel (its drain timed
    /// out and the op was leaked), or the ring is unknown: no result will
    /// come.
    Lost,
}

struct MailboxState {
    requests: Vec<Request>,
    closed: bool,
    orphans: HashMap<u64, Box<dyn Any + Send>>,
}

/// One ring's mailbox.
pub(super) struct Mailbox {
    ring_id: u64,
    /// Requests are waiting (read by the ring on every dispatch).
    pending: AtomicBool,
    state: Mutex<MailboxState>,
    /// Wakes the ring's thread when it is parked in the ring.
    wake: Arc<dyn Fn() + Send + Sync>,
    /// The ring's kernel, to discard an orphan's result with.
    kernel: Arc<dyn Kernel>,
}

/// Every open ring's mailbox, and closed ones still holding orphans.
static MAILBOXES: std::sync::Mutex<Option<HashMap<u64, Arc<Mailbox>>>> =
    std::sync::Mutex::new(None);

fn registry() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Arc<Mailbox>>>> {
    // Nothing panics while holding it; a poisoned registry is consistent.
    MAILBOXES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mailbox of ring `ring_id`, if the ring is open or left orphans.
pub(super) fn of_ring(ring_id: u64) -> Option<Arc<Mailbox>> {
    registry().as_ref()?.get(&ring_id).cloned()
}

impl Mailbox {
    /// The mailbox of a new ring, registered under `ring_id`.
    pub(super) fn open(
        ring_id: u64,
        wake: Arc<dyn Fn() + Send + Sync>,
        kernel: Arc<dyn Kernel>,
    ) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox {
            ring_id,
            pending: AtomicBool::new(false),
            state: Mutex::new(MailboxState {
                requests: Vec::new(),
                closed: false,
                orphans: HashMap::new(),
            }),
            wake,
            kernel,
        });
        registry()
            .get_or_insert_with(HashMap::new)
            .insert(ring_id, Arc::clone(&mailbox));
        mailbox
    }

    fn lock(&self) -> crate::sync::shim::MutexGuard<'_, MailboxState> {
        // Nothing panics while holding it; a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn kernel(&self) -> &Arc<dyn Kernel> {
        &self.kernel
    }

    /// Whether requests wait (the ring's cheap check before it locks).
    pub(super) fn has_requests(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// The waiting requests, in the order they came.
    pub(super) fn take_requests(&self) -> Vec<Request> {
        let mut state = self.lock();
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut state.requests)
    }

    /// Queue `request` for op `user_data` and wake the ring, or hand back
    /// the op's orphan once the ring has left it here.
    pub(super) fn send(&self, user_data: u64, request: Request) -> Reached {
        let mut state = self.lock();
        if let Some(orphan) = state.orphans.remove(&user_data) {
            let empty = state.closed && state.orphans.is_empty();
            drop(state);
            if empty {
                self.unregister();
            }
            return Reached::Orphan(orphan);
        }
        if state.closed {
            return Reached::Lost;
        }
        state.requests.push(request);
        self.pending.store(true, Ordering::Release);
        drop(state);
        (self.wake)();
        Reached::Queued
    }

    /// Hand the results no future has picked up (what `take_finished`
    /// takes out of the ring's table, by `user_data`) to the mailbox, for
    /// their futures to find here, and with `closing` close it: requests
    /// that came meanwhile come back instead (nothing is taken), for the
    /// ring to apply first and then settle again. Taken under the lock,
    /// so a request is either applied by the ring or answered here with
    /// its op's result, never lost between the two.
    ///
    /// A ring settles without closing when its thread's loop leaves (the
    /// futures may be awaited where no loop reads this ring now) and
    /// closes when it is dropped.
    pub(super) fn settle(
        &self,
        closing: bool,
        take_finished: impl FnOnce() -> Orphans,
    ) -> Result<(), Vec<Request>> {
        let mut state = self.lock();
        if !state.requests.is_empty() {
            self.pending.store(false, Ordering::Release);
            return Err(std::mem::take(&mut state.requests));
        }
        state.orphans.extend(take_finished());
        state.closed |= closing;
        let empty = state.closed && state.orphans.is_empty();
        drop(state);
        if empty {
            self.unregister();
        }
        Ok(())
    }

    fn unregister(&self) {
        if let Some(map) = registry().as_mut() {
            map.remove(&self.ring_id);
        }
    }
}

/// loom model of a future writing to its ring's mailbox while the ring
/// closes. Run by `just loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sim::{self, SimOptions};
    use loom::thread;

    /// A request that races the ring's settling (its loop leaving, or
    /// its close) is either applied by the ring (which then leaves no
    /// orphan for it) or answered with the orphan: never dropped, never
    /// both.
    #[test]
    fn a_request_racing_the_settling_is_applied_or_answered_with_the_orphan() {
        for closing in [false, true] {
            loom::model(move || {
                let kernel: Arc<dyn Kernel> = sim::new_kernel(SimOptions::new(1)).unwrap();
                let mailbox = Mailbox::open(u64::MAX - 11, Arc::new(|| {}), kernel);
                let future_side = {
                    let mailbox = Arc::clone(&mailbox);
                    thread::spawn(move || {
                        match mailbox.send(
                            7,
                            Request::Abandon {
                                user_data: 7,
                                owed: None,
                            },
                        ) {
                            Reached::Queued => false,
                            Reached::Orphan(_) => true,
                            Reached::Lost => panic!("a finished op's result was lost"),
                        }
                    })
                };
                // The ring: its finished op 7 stays in its table until a
                // request for it is applied (which discards it) or the
                // settling takes it as an orphan.
                let mut table: Orphans = vec![(7, Box::new(0u8))];
                let mut applied = 0;
                while let Err(requests) = mailbox.settle(closing, || std::mem::take(&mut table)) {
                    for request in requests {
                        if let Request::Abandon { user_data, .. } = request {
                            table.retain(|(held, _)| *held != user_data);
                            applied += 1;
                        }
                    }
                }
                let answered = future_side.join().unwrap();
                assert_eq!(applied + usize::from(answered), 1);
            });
        }
    }
}
