//! The io_uring driver: one ring per runtime thread.
//!
//! An op submitted from a worker is boxed (so its buffers and op-owned
//! storage keep their address) into the worker's in-flight table and its
//! entry queued on the worker's ring. Entries reach the kernel in batches:
//! when the worker is about to park, when many are queued, or when the
//! submission queue is full, never one `io_uring_enter` per op. The worker
//! parks *in* the ring (waiting for a completion or its next timer); other
//! threads wake it through an eventfd whose read is always armed.
//!
//! Completions are reaped between task polls (no syscall: the completion
//! queue is shared memory) and when the worker wakes. A socket op that
//! completes with `EAGAIN` (the fd is non-blocking) waits with a poll entry
//! and is submitted again. An op whose opcode the kernel lacks, or that has
//! no io_uring form (`lseek`, `sendfile` for now), runs on the pool.
//!
//! Cancellation: dropping an in-flight op's future marks it abandoned and
//! submits an async cancel; the op (and its buffer) stays in the table
//! until its completion arrives, and a late fd is closed. A thread's ring
//! is drained (cancel everything, wait for every completion) before it is
//! dropped, so the kernel never writes into freed memory.

mod ring;

use super::completion::Completion;
use super::pool::PoolDriver;
use crate::op::OpCode;
use crate::runtime::{Scheduler, WorkerShared};
use crate::sys::{Errno, Interest, Kernel, SysResult};
use io_uring::{opcode, squeue, types};
use ring::Ring;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// Submission slots per ring.
pub(crate) const RING_ENTRIES: u32 = 256;
/// Queued entries that trigger a submit between task polls.
const SUBMIT_BATCH: usize = 32;
/// How long a ring waits for cancelled ops when its thread ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What the opcode probe found, once per process.
struct ProbeSummary {
    supported: Vec<bool>,
}

static PROBE: OnceLock<Result<ProbeSummary, String>> = OnceLock::new();

fn probe() -> &'static Result<ProbeSummary, String> {
    PROBE.get_or_init(|| {
        let ring = Ring::new(8).map_err(|e| ring::setup_error(&e))?;
        let supported = (0..=u8::MAX).map(|code| ring.supports(code)).collect();
        Ok(ProbeSummary { supported })
    })
}

/// Opcodes the driver cannot do without, with their names.
const REQUIRED: [(u8, &str); 8] = [
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Readv::CODE, "READV"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::OpenAt::CODE, "OPENAT"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
];

/// Optional opcodes whose absence sends one op to the pool.
const OPTIONAL: [(u8, &str); 10] = [
    (opcode::Statx::CODE, "fstat (STATX)"),
    (opcode::Fallocate::CODE, "fallocate (FALLOCATE)"),
    (opcode::Ftruncate::CODE, "ftruncate (FTRUNCATE, Linux 6.9)"),
    (opcode::RenameAt::CODE, "rename (RENAMEAT)"),
    (opcode::UnlinkAt::CODE, "unlink (UNLINKAT)"),
    (opcode::MkDirAt::CODE, "mkdir (MKDIRAT)"),
    (opcode::Accept::CODE, "accept (ACCEPT)"),
    (opcode::Connect::CODE, "connect (CONNECT)"),
    (opcode::Recv::CODE, "recv (RECV)"),
    (opcode::Send::CODE, "send (SEND)"),
];

/// Whether io_uring can run here: `Ok(notes)` lists the ops that will run
/// on the pool instead; `Err` says why the ring cannot be used.
pub(crate) fn availability() -> Result<Vec<String>, String> {
    let summary = probe().as_ref().map_err(Clone::clone)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(code, _)| !summary.supported[usize::from(*code)])
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel's io_uring lacks required opcodes: {}",
            missing.join(", ")
        ));
    }
    let mut notes: Vec<String> = OPTIONAL
        .iter()
        .filter(|(code, _)| !summary.supported[usize::from(*code)])
        .map(|(_, name)| format!("{name}: opcode missing, runs on the pool"))
        .collect();
    notes.push("lseek: io_uring has no lseek, runs on the pool".to_string());
    notes.push("sendfile: runs on the pool (linked splices not built yet)".to_string());
    Ok(notes)
}

fn supported(code: u8) -> bool {
    matches!(probe(), Ok(summary) if summary.supported[usize::from(code)])
}

/// An op in a ring's table, type-erased.
trait InRing {
    /// The entry to submit now (the op's own, or a readiness poll).
    fn entry(&mut self) -> Option<squeue::Entry>;
    /// Handle a completion; `Some` means submit this op again.
    fn on_complete(self: Box<Self>, res: i32, kernel: &dyn Kernel) -> Option<Box<dyn InRing>>;
    /// Finish the op with `errno` (it could not be submitted again).
    fn fail(self: Box<Self>, errno: Errno, kernel: &dyn Kernel);
    /// Whether the op's future is gone.
    fn is_abandoned(&self) -> bool;
}

struct Flight<T: OpCode> {
    op: T,
    completion: Arc<Completion<T>>,
    waiting_readiness: bool,
}

fn poll_mask(interest: Interest) -> u32 {
    match interest {
        Interest::Readable => libc::POLLIN as u32,
        Interest::Writable => libc::POLLOUT as u32,
    }
}

impl<T: OpCode> InRing for Flight<T> {
    fn entry(&mut self) -> Option<squeue::Entry> {
        if self.waiting_readiness {
            let (fd, interest) = self.op.readiness()?;
            return Some(opcode::PollAdd::new(types::Fd(fd), poll_mask(interest)).build());
        }
        self.op.uring_entry()
    }

    fn on_complete(mut self: Box<Self>, res: i32, kernel: &dyn Kernel) -> Option<Box<dyn InRing>> {
        let abandoned = self.completion.is_abandoned();
        if self.waiting_readiness {
            self.waiting_readiness = false;
            if abandoned || res < 0 {
                let result = if abandoned {
                    Err(Errno::ECANCELED)
                } else {
                    Err(Errno(-res))
                };
                self.completion.finish(self.op, result, kernel);
                return None;
            }
            return Some(self);
        }
        let result = self.op.uring_result(res);
        if result == Err(Errno::EAGAIN) && self.op.readiness().is_some() && !abandoned {
            self.waiting_readiness = true;
            return Some(self);
        }
        self.completion.finish(self.op, result, kernel);
        None
    }

    fn fail(self: Box<Self>, errno: Errno, kernel: &dyn Kernel) {
        self.completion.finish(self.op, Err(errno), kernel);
    }

    fn is_abandoned(&self) -> bool {
        self.completion.is_abandoned()
    }
}

/// A thread's ring and the ops it holds.
struct LocalRing {
    id: u64,
    ring: Ring,
    table: Vec<Option<Box<dyn InRing>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    in_flight: usize,
    reaped: Vec<(u64, i32)>,
    kernel: Arc<dyn Kernel>,
}

static NEXT_RING_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LOCAL: RefCell<Option<LocalRing>> = const { RefCell::new(None) };
}

/// Run `f` with `value` on this thread's ring, creating the ring on first
/// use; without a ring (it cannot be created, or it is busy) `value` comes
/// back and the caller falls back to the pool.
fn with_ring<V, R>(
    kernel: &Arc<dyn Kernel>,
    value: V,
    f: impl FnOnce(&mut LocalRing, V) -> Result<R, V>,
) -> Result<R, V> {
    LOCAL.with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return Err(value);
        };
        if local.is_none() {
            match LocalRing::new(Arc::clone(kernel)) {
                Ok(ring) => *local = Some(ring),
                Err(_) => return Err(value),
            }
        }
        match local.as_mut() {
            Some(ring) => f(ring, value),
            None => Err(value),
        }
    })
}

/// Run `f` on this thread's ring if it has one.
fn with_existing_ring<R>(f: impl FnOnce(&mut LocalRing) -> R) -> Option<R> {
    LOCAL.with(|local| local.try_borrow_mut().ok()?.as_mut().map(f))
}

impl LocalRing {
    fn new(kernel: Arc<dyn Kernel>) -> std::io::Result<LocalRing> {
        Ok(LocalRing {
            id: NEXT_RING_ID.fetch_add(1, Ordering::Relaxed),
            ring: Ring::new(RING_ENTRIES)?,
            table: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            reaped: Vec::new(),
            kernel,
        })
    }

    /// Queue `entry` under a fresh `user_data` for a table slot; the
    /// caller stores the op in that slot on success.
    fn queue(&mut self, entry: squeue::Entry) -> std::io::Result<(usize, u64)> {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.table.push(None);
                self.generations.push(0);
                self.table.len() - 1
            }
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        let user_data = (u64::from(self.generations[slot]) << 32) | slot as u64;
        // SAFETY: the entry's pointers point into an op boxed by the caller
        // and its buffers; the caller stores that box in `self.table[slot]`
        // right after this succeeds, and it stays there until this
        // user_data's completion is reaped (the ring is drained before it
        // drops).
        if let Err(e) = unsafe { self.ring.push(&entry.user_data(user_data)) } {
            self.free.push(slot as u32);
            return Err(e);
        }
        self.in_flight += 1;
        Ok((slot, user_data))
    }

    /// Reap every available completion and finish (or resubmit) its op.
    fn dispatch(&mut self) {
        let mut reaped = std::mem::take(&mut self.reaped);
        self.ring.reap(&mut reaped);
        for (user_data, res) in reaped.drain(..) {
            let slot = (user_data & 0xFFFF_FFFF) as usize;
            let generation = (user_data >> 32) as u32;
            if self.generations.get(slot) != Some(&generation) {
                continue;
            }
            let Some(flight) = self.table[slot].take() else {
                continue;
            };
            self.free.push(slot as u32);
            self.in_flight -= 1;
            if let Some(mut again) = flight.on_complete(res, &*self.kernel) {
                match again.entry().map(|entry| self.queue(entry)) {
                    Some(Ok((slot, _))) => self.table[slot] = Some(again),
                    Some(Err(e)) => {
                        again.fail(Errno(e.raw_os_error().unwrap_or(libc::EIO)), &*self.kernel)
                    }
                    None => again.fail(Errno::EINVAL, &*self.kernel),
                }
            }
        }
        self.reaped = reaped;
    }

    /// Wait (up to a limit) until the kernel has returned every op,
    /// cancelling the abandoned ones first, or every one with `cancel_all`.
    fn drain(&mut self, cancel_all: bool) {
        let live: Vec<u64> = (0..self.table.len())
            .filter(|&slot| {
                self.table[slot]
                    .as_ref()
                    .is_some_and(|flight| cancel_all || flight.is_abandoned())
            })
            .map(|slot| (u64::from(self.generations[slot]) << 32) | slot as u64)
            .collect();
        for user_data in live {
            let _ = self.ring.cancel(user_data);
        }
        let mut waited = Duration::ZERO;
        while self.in_flight > 0 && waited < DRAIN_LIMIT {
            let step = Duration::from_millis(10);
            if self.ring.wait(Some(step)).is_err() {
                break;
            }
            self.dispatch();
            waited += step;
        }
    }
}

impl Drop for LocalRing {
    fn drop(&mut self) {
        self.drain(true);
        if self.in_flight > 0 {
            // The kernel still holds pointers into these ops: leaking them is
            // the only memory-safe choice left.
            for flight in self.table.drain(..).flatten() {
                std::mem::forget(flight);
            }
        }
    }
}

/// Handle to the io_uring driver shared by a runtime's threads.
#[derive(Clone)]
pub(crate) struct UringDriver {
    pool: PoolDriver,
}

impl UringDriver {
    pub(crate) fn new(pool: PoolDriver) -> UringDriver {
        UringDriver { pool }
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        self.pool.kernel()
    }

    pub(crate) fn pool(&self) -> &PoolDriver {
        &self.pool
    }

    /// Submit on this thread's ring, or on the pool when io_uring cannot
    /// run this op here.
    pub(crate) fn submit<T: OpCode>(&self, op: T) -> Result<Submission<T>, T> {
        if !op.uring_opcode().is_some_and(supported) {
            return Err(op);
        }
        let mut flight = Box::new(Flight {
            op,
            completion: Completion::new(),
            waiting_readiness: false,
        });
        let Some(entry) = flight.entry() else {
            return Err(flight.op);
        };
        let completion = Arc::clone(&flight.completion);
        let kernel = Arc::clone(self.kernel());
        // Without a ring on this thread, or when the entry cannot be
        // queued, the flight comes back untouched and runs on the pool.
        let placed = with_ring(&kernel, flight, |ring, flight| match ring.queue(entry) {
            Ok((slot, user_data)) => {
                ring.table[slot] = Some(flight);
                Ok((ring.id, user_data))
            }
            Err(_) => Err(flight),
        });
        match placed {
            Ok((ring_id, user_data)) => Ok(Submission {
                completion,
                user_data,
                ring_id,
                kernel,
            }),
            Err(flight) => Err(flight.op),
        }
    }
}

/// An op on a ring.
pub(crate) struct Submission<T: OpCode> {
    completion: Arc<Completion<T>>,
    user_data: u64,
    ring_id: u64,
    kernel: Arc<dyn Kernel>,
}

impl<T: OpCode> Submission<T> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        let (op, result): (T, SysResult<usize>) =
            std::task::ready!(self.completion.poll_finished(cx));
        Poll::Ready(op.complete(result))
    }
}

impl<T: OpCode> Drop for Submission<T> {
    fn drop(&mut self) {
        self.completion.abandon(&*self.kernel);
        if self.completion.is_abandoned() {
            let (ring_id, user_data) = (self.ring_id, self.user_data);
            with_existing_ring(|ring| {
                if ring.id == ring_id {
                    let _ = ring.ring.cancel(user_data);
                }
            });
        }
    }
}

/// Scheduling for io_uring runtimes: FIFO tasks, completions reaped
/// between polls, and parking inside the ring.
pub(crate) struct UringScheduler;

impl Scheduler for UringScheduler {
    fn pick_task(&self, _runnable: usize) -> usize {
        0
    }

    fn between_polls(&self) {
        with_existing_ring(|ring| {
            if ring.ring.unsubmitted() >= SUBMIT_BATCH {
                let _ = ring.ring.submit();
            }
            ring.dispatch();
        });
    }

    fn idle(&self, worker: &WorkerShared, timeout: Option<Duration>) -> Result<(), String> {
        // A thread gets its ring on its first io_uring submission; until
        // then it parks on its condvar (so an idle worker opens no fds).
        let parked = with_existing_ring(|ring| {
            if !worker.has_driver_wake() {
                let eventfd = ring.ring.waker();
                worker.set_driver_wake(Arc::new(move || eventfd.wake()));
            }
            ring.dispatch();
            // Arm the wake read after reaping: the reap may have consumed
            // the previous wake, and waiting without an armed read would
            // miss every later one.
            ring.ring
                .arm_wake()
                .map_err(|e| format!("arming the wake eventfd: {e}"))?;
            ring.ring
                .submit()
                .map_err(|e| format!("io_uring submit: {e}"))?;
            if worker.begin_driver_park() {
                let waited = ring.ring.wait(timeout);
                worker.end_driver_park();
                waited.map_err(|e| format!("io_uring wait: {e}"))?;
            }
            ring.dispatch();
            Ok(())
        });
        match parked {
            Some(result) => result,
            None => {
                worker.park(timeout);
                Ok(())
            }
        }
    }

    fn leave(&self) {
        with_existing_ring(|ring| ring.drain(false));
    }
}
