//! The inline fast path: a file read (or buffered write) tried on the
//! calling worker with `RWF_NOWAIT` before any driver sees it.
//!
//! A page-cache hit costs one `preadv2` on this thread instead of a ring
//! entry or a pool handoff (~13 µs on the pool and epoll backends). Every
//! backend does it (uring, readiness, pool); the sync fallback has no
//! handoff to save and runs the op directly.
//!
//! # What counts as a hit
//!
//! A nowait result that is the op's own result: all of
//! [`Nowait::len_bytes`] moved, `0` for a read at or past end of file, or
//! a short write (some bytes are already in the file, and `pwrite` may
//! return a short count: callers that need the whole range loop, as
//! `write_all_at` does; re-writing them would duplicate data on an
//! `O_APPEND` fd). Anything else goes the normal way for the *whole* op,
//! which re-runs the syscall and reports its own result:
//! * a short read (only a prefix was cached, or the range ends at end of
//!   file): the driver reads the whole range again; a short count mid-file
//!   is never handed to the user as if it were the read;
//! * `EAGAIN` (not cached / would block), `EOPNOTSUPP`/`EINVAL` (not
//!   supported for this fd or kernel) and every other errno: the attempt
//!   changed nothing, and the normal op reports whatever the kernel says.
//!   So results and errors are exactly those of the normal path.
//!
//! # Adapting per fd
//!
//! Each worker thread keeps a small direct-mapped table keyed by fd and
//! fd table ([`Kernel::fd_table_id`]), one state for reads and one for
//! writes. A miss doubles a back-off (the next `2^k - 1` ops on that fd go
//! straight to the driver, `k` capped at [`BACKOFF_LOG2_MAX`]); a hit
//! resets it; "not supported" turns attempts off for [`DISABLED_OPS`] ops.
//! An fd opened with `O_DIRECT` is never tried (its nowait calls would
//! still wait for the device; the kernel is asked once per fd, when its
//! slot is taken). A close through iokernel forgets the fd (reuse starts
//! fresh); a slot
//! taken over by another fd starts fresh too, and a stale state only
//! delays the next attempt, so correctness never depends on the table.
//! Ops larger than [`INLINE_BYTES_MAX`] are never tried: big chunk writes
//! (the writer's) stay on the ring or pool, off the producer's thread.
//!
//! # Fairness
//!
//! A task whose every read hits would never return `Pending`, starving
//! the other tasks, timers and the driver's completions on its worker.
//! After [`YIELD_EVERY`] hits in a row on a thread, or only
//! [`YIELD_EVERY_CONTENDED`] while other tasks wait in the worker's run
//! queue ([`set_tasks_waiting`], which the runtime sets before each poll),
//! the hit says so ([`Attempt::Hit`]'s `yield_now`): the `Op` then keeps
//! its output, wakes its task and returns `Pending` once (a trip through
//! the scheduler, no syscall). A lone task yields rarely (the yield costs
//! it a few percent at QD 1); many tasks sharing a worker take turns
//! after a few reads each, so none waits for every other task's long run
//! of hits (at QD 32 on hot data, p99 fell from ~1.4 ms to ~0.2 ms).

use crate::op::{Nowait, OpCode};
use crate::sys::{Errno, Kernel, SysResult};
use std::cell::RefCell;
use std::os::fd::RawFd;

/// Largest op tried inline.
pub(crate) const INLINE_BYTES_MAX: usize = 64 * 1024;
/// Largest back-off exponent: a cold fd is tried once every 1024 ops.
pub(crate) const BACKOFF_LOG2_MAX: u32 = 10;
/// Ops skipped after "not supported" (`EOPNOTSUPP`, `EINVAL`, `ESPIPE`, ...).
pub(crate) const DISABLED_OPS: u32 = 1 << 16;
/// Slots in each thread's table.
const SLOTS: usize = 64;
/// Inline hits on one thread between two forced yields.
pub(crate) const YIELD_EVERY: u32 = 32;
/// The same while other tasks wait to run on the thread.
pub(crate) const YIELD_EVERY_CONTENDED: u32 = 4;

/// What the attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Not tried (not an inline op, too big, or backing off).
    Skipped,
    /// Tried, not usable: run the op the normal way.
    Missed,
    /// The op's result; with `yield_now`, the task should yield before
    /// taking it (see the module docs).
    Hit {
        /// The result.
        result: SysResult<usize>,
        /// Whether the task should yield before taking the result (see
        /// the module docs: fairness).
        yield_now: bool,
    },
}

/// Back-off state of one direction of one fd.
#[derive(Clone, Copy, Default)]
struct Backoff {
    /// Ops still to skip.
    skip: u32,
    /// Misses in a row (the exponent of the next back-off).
    misses: u32,
}

impl Backoff {
    fn miss(&mut self) {
        self.misses = (self.misses + 1).min(BACKOFF_LOG2_MAX);
        self.skip = (1 << self.misses) - 1;
    }
}

#[derive(Clone, Copy)]
struct Slot {
    table: u64,
    fd: RawFd,
    /// Reads, writes.
    dirs: [Backoff; 2],
}

const EMPTY: Slot = Slot {
    table: u64::MAX,
    fd: -1,
    dirs: [Backoff { skip: 0, misses: 0 }; 2],
};

/// One thread's slots and its hits since the last yield (for
/// [`YIELD_EVERY`]), counted per fd table so that a simulated machine's
/// run (a fresh table) yields at the same ops whatever ran on the thread
/// before it.
struct Table {
    slots: [Slot; SLOTS],
    hits: u32,
    hits_table: u64,
    /// Other tasks wait in this thread's run queue ([`set_tasks_waiting`]).
    tasks_waiting: bool,
}

thread_local! {
    static TABLE: RefCell<Table> = const {
        RefCell::new(Table {
            slots: [EMPTY; SLOTS],
            hits: 0,
            hits_table: 0,
            tasks_waiting: false,
        })
    };
}

/// Whether other tasks wait to run on this thread while the next one is
/// polled: the runtime's run loop says so before each poll, and hits then
/// yield after [`YIELD_EVERY_CONTENDED`] in a row instead of
/// [`YIELD_EVERY`].
pub(crate) fn set_tasks_waiting(waiting: bool) {
    TABLE.with(|t| t.borrow_mut().tasks_waiting = waiting);
}

fn slot_index(fd: RawFd) -> usize {
    fd.unsigned_abs() as usize % SLOTS
}

/// Try `op` inline (see the module docs).
pub(crate) fn attempt<T: OpCode>(op: &mut T, kernel: &dyn Kernel) -> Attempt {
    let Some(Nowait {
        fd,
        len_bytes,
        write,
    }) = op.nowait()
    else {
        return Attempt::Skipped;
    };
    if len_bytes > INLINE_BYTES_MAX {
        return Attempt::Skipped;
    }
    let table = kernel.fd_table_id();
    let dir = usize::from(write);
    TABLE.with(|t| {
        let t = &mut *t.borrow_mut();
        let slot = &mut t.slots[slot_index(fd)];
        if slot.fd != fd || slot.table != table {
            *slot = Slot { table, fd, ..EMPTY };
            // O_DIRECT: a nowait call would wait for the device on this
            // thread. Asked once per fd (per slot it takes over).
            if kernel.bypasses_page_cache(fd) != Ok(false) {
                let off = Backoff {
                    skip: DISABLED_OPS,
                    misses: 0,
                };
                slot.dirs = [off; 2];
            }
        }
        let state = &mut slot.dirs[dir];
        if state.skip > 0 {
            state.skip -= 1;
            return Attempt::Skipped;
        }
        match op.run_nowait(kernel) {
            Ok(n) if n == len_bytes || (n == 0 && !write) || (n > 0 && write) => {
                state.misses = 0;
                if t.hits_table != table {
                    t.hits_table = table;
                    t.hits = 0;
                }
                t.hits += 1;
                let due = if t.tasks_waiting {
                    YIELD_EVERY_CONTENDED
                } else {
                    YIELD_EVERY
                };
                let yield_now = t.hits >= due;
                if yield_now {
                    t.hits = 0;
                }
                Attempt::Hit {
                    result: Ok(n),
                    yield_now,
                }
            }
            Err(Errno::EOPNOTSUPP | Errno::EINVAL | Errno::ESPIPE | Errno::EISDIR) => {
                // Not supported for this fd: stop trying for a long while.
                state.skip = DISABLED_OPS;
                Attempt::Missed
            }
            // A short read, EAGAIN, or an error the normal op will report.
            Ok(_) | Err(_) => {
                state.miss();
                Attempt::Missed
            }
        }
    })
}

/// `fd` (of `kernel`'s table) is being closed: its next owner starts fresh.
pub(crate) fn forget(kernel: &dyn Kernel, fd: RawFd) {
    let table = kernel.fd_table_id();
    TABLE.with(|t| {
        let slot = &mut t.borrow_mut().slots[slot_index(fd)];
        if slot.fd == fd && slot.table == table {
            *slot = EMPTY;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::default();
        let skips: Vec<u32> = (0..12)
            .map(|_| {
                b.miss();
                b.skip
            })
            .collect();
        assert_eq!(&skips[..4], &[1, 3, 7, 15]);
        assert_eq!(skips[11], (1 << BACKOFF_LOG2_MAX) - 1);
    }
}
