//! The io_uring driver: one ring per runtime thread (per ring source).
//!
//! The driver works on any [`CompletionRing`] (the seam in
//! `crate::sys::ring`): the kernel's io_uring ([`KernelRings`], FFI in
//! `ring.rs`) or the simulator's ring (`crate::sim`), so batching, the
//! full-queue and `EBUSY` paths, reaping, `EAGAIN` handling, cancellation,
//! pool fallback and draining are the same code on both. A thread keeps one
//! ring per ring source; the simulator closes its run's ring when the run
//! ends.
//!
//! An op submitted from a worker is boxed (so its buffers and op-owned
//! storage keep their address) into the worker's in-flight table and its
//! entry queued on the worker's ring. Its result stays in that slot, with
//! the waker of the task that awaits it: the future takes it from there
//! when polled on the ring's thread (tasks never move between workers),
//! with no lock or reference count between the ring and the future. A
//! future that cannot reach its ring (an `Op` moved to another thread, or
//! one outliving its ring) goes through the ring's mailbox
//! (`mailbox.rs`). Entries reach the kernel in batches:
//! when the worker is about to park, when many are queued, when the
//! submission queue is full (flush, then push again), or between task
//! polls while the ring is *device-bound*: its last submit left storage ops
//! (file reads, writes, syncs: ops that wait on no peer) with the kernel.
//! Those go one enter per op, as fio does: a burst submitted together tends
//! to come back together (a virtual disk may complete one notification's
//! requests at once), and the next burst waits for the slowest of them, so
//! the device idles between bursts. Page-cache hits complete inside the
//! submit and sockets wait on their peer, so neither makes the ring
//! device-bound, and their entries keep batching. A submit refused with `EBUSY` (the completion
//! queue is backed up) takes completions off the ring into a local queue,
//! which makes room without losing any, and tries again. The worker parks
//! *in* the ring (waiting for a completion or its next timer); other threads
//! wake it through the ring's waker (an eventfd on the kernel's ring). With
//! no storage op on the ring, the park's submit and wait are one enter.
//!
//! Completions are reaped between task polls (no syscall: the completion
//! queue is shared memory) and when the worker wakes. A socket op that
//! completes with `EAGAIN` (the fd is non-blocking) waits with a poll entry
//! and is submitted again. An op whose opcode the ring's probe lacks, or
//! that has no io_uring form (`lseek`, `sendfile`: see `ops.rs`), runs
//! on the pool, and the backend report lists it.
//!
//! Cancellation: dropping an in-flight op's future marks it abandoned (in
//! its slot, or through the mailbox from another thread) and submits an
//! async cancel; the op (and its buffer) stays in the table
//! until its completion arrives, and a late fd is closed. An abandoned op
//! whose readiness poll completes ends there (`ECANCELED`) instead of
//! issuing its syscall. A cancel can still lose the race: a late `recv` or
//! `accept` keeps its bytes or connection for the next op on the socket
//! (`OpCode::discard`), and while such an op is with the kernel a new
//! reader of the same fd is held back (a reserved slot, no entry) until
//! it is done, then takes the leftovers first: bytes stay in order and a
//! reader already in the kernel never waits for bytes that went elsewhere.
//! A read at an offset of a socket, which the kernel refuses with
//! `ESPIPE`, goes back to its future and is submitted anew at the
//! position, through the same gate. A thread's ring
//! is drained (cancel everything, wait for every completion) before it is
//! dropped, so the kernel never writes into freed memory; results no
//! future has taken by then wait in its mailbox for their futures. So do
//! the untaken results of a ring whose thread's loop leaves (`block_on`
//! returned) while their futures live on: a future moved to another worker
//! finds its result in the mailbox rather than in a table nobody reads.
//! An op of such a ring still waiting on a peer is cancelled and given
//! back unstarted; its future submits it again where it is polled
//! (`leave`).

mod flight;
mod mailbox;
mod ops;
mod streams;
// The kernel's io_uring (FFI); everything else here runs over the ring
// seam on every OS (the simulator's ring).
#[cfg(linux)]
mod ring;
#[cfg(not(linux))]
mod ring {
    use crate::sys::ring::{CompletionRing, RingSource};
    use std::io;

    /// Where the kernel's io_uring would come from: io_uring exists only
    /// on Linux, so opening a ring says why not.
    pub(crate) struct KernelRings;

    /// Id of [`KernelRings`]; other sources take ids above it.
    pub(crate) const KERNEL_RINGS_ID: u64 = 0;

    impl RingSource for KernelRings {
        fn id(&self) -> u64 {
            KERNEL_RINGS_ID
        }

        fn open(&self, _entries: u32) -> io::Result<Box<dyn CompletionRing>> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "io_uring: not built for this OS (io_uring is Linux-only; this is {})",
                    std::env::consts::OS
                ),
            ))
        }
    }
}

use super::completion::Completion;
use super::pool::PoolDriver;
use super::{InFlight, Park, Scheduler};
use crate::op::OpCode;
use crate::sys::leftover::LateResult;
use crate::sys::ring::opcode;
use crate::sys::ring::{CompletionRing, RingEntry, RingSource, RingWork, SqFull, CANCEL_USER_DATA};
use crate::sys::{Errno, Kernel, SysResult};
use flight::{Completed, Flight, Handoff, InRing, GIVEN_BACK};
use mailbox::{Mailbox, Reached, Request};
pub(crate) use ring::KernelRings;
use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use streams::RingStream;
pub(crate) use streams::{stop_stream, StreamOnRing};

/// Submission slots per ring.
pub(crate) const RING_ENTRIES: u32 = 256;
/// Queued entries that trigger a submit between task polls.
const SUBMIT_BATCH: usize = 32;
/// How long a ring waits for cancelled ops when its thread ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Submits in a row that may find the completion queue backed up before
/// an entry is given up on (its op then fails or runs on the pool).
const BUSY_RETRIES: usize = 64;

/// What an opcode probe found.
pub(crate) struct ProbeSummary {
    supported: Vec<bool>,
    /// How the probe's ring was set up (every ring of the source is set
    /// up the same way), for the backend report.
    setup: Option<&'static str>,
}

impl ProbeSummary {
    fn supports(&self, code: u8) -> bool {
        self.supported[usize::from(code)]
    }
}

/// Why a ring cannot be set up, in the words `iok probe` prints.
/// `io_uring_disabled` is the `kernel.io_uring_disabled` sysctl, which
/// tells a disabled io_uring from a seccomp filter when setup says `EPERM`.
pub(crate) fn setup_error(e: &io::Error, io_uring_disabled: Option<u32>) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => match io_uring_disabled {
            Some(2) => "io_uring_setup refused with EPERM: kernel.io_uring_disabled = 2 \
                        (io_uring is disabled for every process)"
                .to_string(),
            Some(1) => "io_uring_setup refused with EPERM: kernel.io_uring_disabled = 1 \
                        (only members of kernel.io_uring_group may use it)"
                .to_string(),
            Some(_) => "io_uring_setup refused with EPERM: a seccomp filter blocks it \
                        (kernel.io_uring_disabled is 0)"
                .to_string(),
            None => "io_uring_setup refused with EPERM (a seccomp filter, or \
                     kernel.io_uring_disabled)"
                .to_string(),
        },
        Some(libc::ENOMEM) => {
            "io_uring_setup failed with ENOMEM (RLIMIT_MEMLOCK too low for the ring)".to_string()
        }
        // A source that has no kernel ring at all says why in its error.
        _ if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::Unsupported => e.to_string(),
        _ => format!("io_uring_setup failed: {e}"),
    }
}

/// Set up a small ring from `rings` and record which opcodes it has.
fn probe_uncached(rings: &dyn RingSource) -> Result<Arc<ProbeSummary>, String> {
    let ring = rings
        .open(8)
        .map_err(|e| setup_error(&e, rings.io_uring_disabled()))?;
    let supported = (0..=u8::MAX).map(|code| ring.supports(code)).collect();
    Ok(Arc::new(ProbeSummary {
        supported,
        setup: ring.setup(),
    }))
}

/// The probe of `rings`: once per process for the kernel's io_uring.
fn probe(rings: &dyn RingSource) -> Result<Arc<ProbeSummary>, String> {
    static KERNEL_PROBE: OnceLock<Result<Arc<ProbeSummary>, String>> = OnceLock::new();
    if rings.id() == ring::KERNEL_RINGS_ID {
        return KERNEL_PROBE.get_or_init(|| probe_uncached(rings)).clone();
    }
    probe_uncached(rings)
}

/// Opcodes the driver cannot do without, with their names.
const REQUIRED: [(u8, &str); 8] = [
    (opcode::READ, "READ"),
    (opcode::WRITE, "WRITE"),
    (opcode::READV, "READV"),
    (opcode::WRITEV, "WRITEV"),
    (opcode::FSYNC, "FSYNC"),
    (opcode::OPENAT, "OPENAT"),
    (opcode::CLOSE, "CLOSE"),
    (opcode::POLL_ADD, "POLL_ADD"),
];

/// Optional opcodes whose absence sends one op to the pool.
const OPTIONAL: [(u8, &str); 13] = [
    (opcode::STATX, "fstat (STATX)"),
    (opcode::FALLOCATE, "fallocate (FALLOCATE)"),
    (opcode::FTRUNCATE, "ftruncate (FTRUNCATE, Linux 6.9)"),
    (opcode::RENAMEAT, "rename (RENAMEAT)"),
    (opcode::UNLINKAT, "unlink (UNLINKAT)"),
    (opcode::MKDIRAT, "mkdir (MKDIRAT)"),
    (opcode::ACCEPT, "accept (ACCEPT)"),
    (opcode::CONNECT, "connect (CONNECT)"),
    (opcode::RECV, "recv (RECV)"),
    (opcode::SEND, "send (SEND)"),
    (opcode::SENDMSG, "sendmsg (SENDMSG)"),
    (opcode::RECVMSG, "recvmsg (RECVMSG)"),
    (opcode::SHUTDOWN, "shutdown (SHUTDOWN, Linux 5.11)"),
];

/// Whether rings from `rings` can run the driver: `Ok(notes)` lists the
/// ops that will run on the pool instead (and, last, the ring's setup
/// flags when the ring reports them); `Err` says why the ring cannot be
/// used (setup refused, or required opcodes missing).
pub(crate) fn availability(rings: &dyn RingSource) -> Result<Vec<String>, String> {
    let summary = probe(rings)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(code, _)| !summary.supports(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the io_uring lacks required opcodes: {}",
            missing.join(", ")
        ));
    }
    let mut notes: Vec<String> = OPTIONAL
        .iter()
        .filter(|(code, _)| !summary.supports(*code))
        .map(|(_, name)| format!("{name}: opcode missing, runs on the pool"))
        .collect();
    notes.push("lseek: io_uring has no lseek, runs on the pool".to_string());
    notes.push("sendfile: runs on the pool (see driver/uring/ops.rs)".to_string());
    if let Some(setup) = summary.setup {
        notes.push(format!("ring setup: {setup}"));
    }
    Ok(notes)
}

/// A thread's ring from one source, and the ops it holds.
struct LocalRing {
    id: u64,
    source_id: u64,
    ring: Box<dyn CompletionRing>,
    table: Vec<Option<Box<dyn InRing>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    in_flight: usize,
    /// Completions taken off the ring but not yet dispatched (taken early
    /// to make room when a submit found the completion queue backed up).
    taken: VecDeque<(u64, i32)>,
    /// Slots of ops held back until an abandoned reader of their fd is
    /// done ([`LocalRing::defer`]); in the table, not with the kernel.
    deferred: Vec<usize>,
    /// Storage ops ([`InRing::on_device`]) pushed and not yet completed.
    device_ops: usize,
    /// The last submit left storage ops with the kernel
    /// ([`LocalRing::note_device`]).
    device_bound: bool,
    kernel: Arc<dyn Kernel>,
    /// Requests from futures that cannot reach this ring (`mailbox.rs`).
    mailbox: Arc<Mailbox>,
    /// Receive streams with the kernel side, by `user_data` (each holds a
    /// reserved slot with no op in it until it ends).
    streams: HashMap<u64, RingStream>,
}

static NEXT_RING_ID: AtomicU64 = AtomicU64::new(1);

/// Readers (`recv`, `accept`) whose future was dropped while their op was
/// on a ring (with the kernel or held back), and whose op has not come
/// back yet: in every ring of the process, since a future is dropped on
/// whatever thread holds it. Only a gate for
/// [`LocalRing::abandoned_reader`]: while it is 0, no ring holds an
/// abandoned reader and a new reader needs no scan of its ring's table
/// (a scan per recv, over every op of the ring, grows with the
/// connections a thread serves). A drop counts before it marks the op
/// abandoned, and the op's return uncounts it ([`Flight::finish`]), so
/// the gate is never 0 while such an op is on a ring.
static ABANDONED_READERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's rings, at most one per ring source.
    static LOCAL: RefCell<Vec<LocalRing>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with `value` on this thread's ring from `rings` (whose id is
/// `source_id`, passed to spare a virtual call per op), creating the ring
/// on first use; without a ring (it cannot be created, it is busy, or the
/// thread is ending) `value` comes back and the caller falls back to the
/// pool.
fn with_ring<V, R>(
    (rings, source_id): (&Arc<dyn RingSource>, u64),
    kernel: &Arc<dyn Kernel>,
    value: V,
    f: impl FnOnce(&mut LocalRing, V) -> Result<R, V>,
) -> Result<R, V> {
    let mut value = Some(value);
    let ran = LOCAL.try_with(|local| {
        let value = value.take().expect("taken once");
        let Ok(mut local) = local.try_borrow_mut() else {
            return Err(value);
        };
        let index = match local.iter().position(|r| r.source_id == source_id) {
            Some(index) => index,
            None => match LocalRing::new(&**rings, Arc::clone(kernel)) {
                Ok(ring) => {
                    local.push(ring);
                    local.len() - 1
                }
                Err(_) => return Err(value),
            },
        };
        f(&mut local[index], value)
    });
    match ran {
        Ok(ran) => ran,
        // The thread's rings are gone (its thread-locals are being dropped).
        Err(_) => Err(value.take().expect("not taken when the rings are gone")),
    }
}

/// Run `f` on this thread's ring from source `source_id`, if it has one
/// (none while the thread's thread-locals are being dropped: a future
/// dropped then goes through the ring's mailbox).
fn with_existing_ring<R>(source_id: u64, f: impl FnOnce(&mut LocalRing) -> R) -> Option<R> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            local.iter_mut().find(|r| r.source_id == source_id).map(f)
        })
        .ok()
        .flatten()
}

/// Drain and drop this thread's ring from source `source_id` (the end of a
/// simulated run: every op comes back before the run's kernel is gone).
/// Returns how many ops the ring still held after the drain (their
/// buffers are leaked rather than freed under the kernel); 0 is the rule.
// The simulator closes its run's ring; a dropped runtime closes the ring
// of the thread that drops it.
pub(crate) fn close_thread_ring(source_id: u64) -> usize {
    let ring = LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let index = local.iter().position(|r| r.source_id == source_id)?;
            Some(local.swap_remove(index))
        })
        .ok()
        .flatten();
    // Drained outside the borrow: finishing ops may drop futures that look
    // for this thread's rings.
    let Some(mut ring) = ring else {
        return 0;
    };
    ring.drain(true);
    ring.in_flight
}

fn errno_of(e: &io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

impl LocalRing {
    fn new(rings: &dyn RingSource, kernel: Arc<dyn Kernel>) -> io::Result<LocalRing> {
        let id = NEXT_RING_ID.fetch_add(1, Ordering::Relaxed);
        let ring = rings.open(RING_ENTRIES)?;
        let mailbox = Mailbox::open(id, ring.waker(), Arc::clone(&kernel));
        Ok(LocalRing {
            id,
            source_id: rings.id(),
            ring,
            table: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            taken: VecDeque::new(),
            deferred: Vec::new(),
            device_ops: 0,
            device_bound: false,
            kernel,
            mailbox,
            streams: HashMap::new(),
        })
    }

    /// Take every completion the ring has into `taken` (no dispatch).
    fn take_completions(&mut self) -> bool {
        let took = self.ring.pop_all(&mut self.taken);
        let overflows = self.ring.take_cq_overflows();
        if overflows > 0 {
            super::metrics::note_cq_overflows(overflows);
        }
        took
    }

    /// Whether queued entries go to the kernel between task polls rather
    /// than when the worker parks: a full batch, or any entry while the
    /// ring is device-bound, so the device gets each request as soon as
    /// it exists (see the module doc).
    ///
    /// Not while the ring is not device-bound: after a submit whose
    /// entries completed inside it (page-cache hits) or wait on a peer
    /// (sockets), submitting each entry at once would cost one enter per op
    /// where parking batches them.
    fn should_submit_now(&mut self) -> bool {
        let queued = self.ring.queued();
        queued >= SUBMIT_BATCH || (self.device_bound && queued > 0)
    }

    /// Right after a submit and the dispatch of what completed inside it:
    /// whether storage ops are still with the kernel, which makes the ring
    /// device-bound until the next submit. Not after waking from a wait:
    /// a burst that completed together would clear it just when the next
    /// requests should go out one by one.
    fn note_device(&mut self) {
        self.device_bound = self.device_ops > 0;
    }

    /// Hand queued entries to the kernel side (no enter when nothing is
    /// queued). A backed-up completion queue (`EBUSY`) is made room in
    /// (completions taken, not lost) and the submit retried; if it stays
    /// backed up, wait briefly for it.
    fn flush(&mut self) -> io::Result<()> {
        if self.ring.queued() == 0 {
            return Ok(());
        }
        for _ in 0..BUSY_RETRIES {
            match self.ring.submit() {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) => {
                    if !self.take_completions() {
                        self.ring.wait(Some(Duration::from_millis(1)))?;
                        self.take_completions();
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Push `entry`, flushing the submission queue first while it is full
    /// (a bounded number of times: a ring whose queue never drains gets
    /// `EBUSY` back rather than a spinning worker).
    // The driver's one unsafe step: handing a boxed op to the ring.
    #[allow(unsafe_code)]
    fn push(&mut self, entry: RingEntry) -> io::Result<()> {
        let mut entry = entry;
        for _ in 0..BUSY_RETRIES {
            // SAFETY: op entries point into an op the caller keeps boxed in
            // `self.table` from now until this user_data's completion is
            // dispatched (the ring is drained before it drops); poll and
            // cancel entries carry no pointers.
            match unsafe { self.ring.push(entry) } {
                Ok(()) => return Ok(()),
                Err(SqFull(back)) => entry = back,
            }
            self.flush()?;
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Queue `work` under a fresh `user_data` for a table slot; the caller
    /// stores the op in that slot on success.
    fn queue(&mut self, work: RingWork, on_device: bool) -> io::Result<(usize, u64)> {
        let (slot, user_data) = self.reserve();
        if let Err(e) = self.push_reserved(slot, work, on_device) {
            self.free.push(slot as u32);
            return Err(e);
        }
        Ok((slot, user_data))
    }

    /// A table slot under a fresh `user_data`, with nothing queued yet.
    fn reserve(&mut self) -> (usize, u64) {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.table.push(None);
                self.generations.push(0);
                self.table.len() - 1
            }
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        (slot, self.user_data(slot))
    }

    fn user_data(&self, slot: usize) -> u64 {
        (u64::from(self.generations[slot]) << 32) | slot as u64
    }

    /// Queue `work` under the reserved `slot`'s `user_data`; `on_device`
    /// says it is a storage op's entry ([`InRing::on_device`]).
    #[inline]
    fn push_reserved(&mut self, slot: usize, work: RingWork, on_device: bool) -> io::Result<()> {
        let user_data = self.user_data(slot);
        self.push(RingEntry { user_data, work })?;
        self.in_flight += 1;
        self.device_ops += usize::from(on_device);
        Ok(())
    }

    /// Ask the ring to cancel the entry with `user_data` (best effort: a
    /// cancel that cannot be queued leaves the op to finish on its own).
    fn cancel(&mut self, user_data: u64) {
        let _ = self.push(RingEntry {
            user_data: CANCEL_USER_DATA,
            work: RingWork::Cancel { target: user_data },
        });
    }

    /// Whether [`LocalRing::dispatch`] may find work: completions on the
    /// ring or taken early, requests in the mailbox, ops held back.
    fn has_news(&mut self) -> bool {
        !self.taken.is_empty()
            || !self.deferred.is_empty()
            || self.mailbox.has_requests()
            || self.ring.has_completions()
    }

    /// Reap every available completion and finish (or resubmit) its op.
    fn dispatch(&mut self) {
        self.read_mailbox();
        self.take_completions();
        while let Some((user_data, res)) = self.taken.pop_front() {
            if user_data == CANCEL_USER_DATA {
                continue;
            }
            let Some(slot) = self.slot_of(user_data) else {
                continue;
            };
            let Some(flight) = self.table[slot].take_if(|f| !f.is_finished()) else {
                if !self.streams.is_empty() {
                    self.end_stream(slot, user_data, res);
                }
                continue;
            };
            self.in_flight -= 1;
            self.device_ops -= usize::from(flight.on_device());
            let mut again = match flight.on_complete(res, &*self.kernel) {
                Completed::Again(again) => again,
                Completed::Kept(done) => {
                    self.table[slot] = Some(done);
                    continue;
                }
                Completed::Gone => {
                    self.free.push(slot as u32);
                    continue;
                }
            };
            // Again under the same slot and user_data, so the future's
            // cancel reaches the op's poll or its next attempt.
            let on_device = again.on_device();
            let pushed = match again.work() {
                Some(work) => self
                    .push_reserved(slot, work, on_device)
                    .map_err(|e| errno_of(&e)),
                None => Err(Errno::EINVAL),
            };
            match pushed {
                Ok(()) => self.table[slot] = Some(again),
                Err(errno) => {
                    let kept = again.finish_with(Err(errno), &*self.kernel);
                    self.keep_or_free(slot, kept);
                }
            }
        }
        self.release_deferred(false);
    }

    /// The slot of `user_data` while it is that op's (its generation).
    fn slot_of(&self, user_data: u64) -> Option<usize> {
        let slot = (user_data & 0xFFFF_FFFF) as usize;
        let generation = (user_data >> 32) as u32;
        (self.generations.get(slot) == Some(&generation)).then_some(slot)
    }

    /// Put a finished op back in `slot` for its future, or free the slot.
    fn keep_or_free(&mut self, slot: usize, kept: Option<Box<dyn InRing>>) {
        match kept {
            Some(done) => self.table[slot] = Some(done),
            None => self.free.push(slot as u32),
        }
    }

    /// The future of op `user_data`, on this thread: the finished op
    /// (its slot freed), or `Some(None)` with `waker` registered; `None`
    /// when the op is no longer in the table (its result was left in the
    /// mailbox when the thread's loop left).
    fn poll_slot(&mut self, user_data: u64, waker: &Waker) -> Option<Option<Box<dyn InRing>>> {
        let slot = self.slot_of(user_data)?;
        let flight = self.table[slot].as_mut()?;
        if !flight.is_finished() {
            flight.register(waker);
            return Some(None);
        }
        let done = self.table[slot].take();
        self.free.push(slot as u32);
        Some(done)
    }

    /// The future of op `user_data` is gone: discard a finished result,
    /// or mark the op abandoned and cancel its entry. `counted` says the
    /// dropping side counted a reader in [`ABANDONED_READERS`] (a request
    /// through the mailbox counts before it is sent); a finished reader
    /// uncounts it here. `owed` is the late result a reader's fd is owed:
    /// held by the op until its result is discarded.
    fn abandon_slot(&mut self, user_data: u64, counted: bool, owed: Option<LateResult>) {
        let Some(slot) = self.slot_of(user_data) else {
            return;
        };
        let Some(flight) = self.table[slot].as_mut() else {
            return;
        };
        if flight.is_finished() {
            let Some(done) = self.table[slot].take() else {
                return;
            };
            self.free.push(slot as u32);
            if done.discard_result(&*self.kernel) && counted {
                ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
            }
            drop(owed); // after the discard kept what came
            return;
        }
        flight.mark_abandoned(owed);
        self.cancel(user_data);
    }

    /// The future of op `user_data` is gone, dropped on this thread: as
    /// [`LocalRing::abandon_slot`], counting a reader that is not finished
    /// first. `false` when the op is no longer in the table (its result
    /// was left in the mailbox when the thread's loop left).
    fn abandon_here(&mut self, user_data: u64, reader: Option<RawFd>) -> bool {
        let Some(finished) = self
            .slot_of(user_data)
            .and_then(|slot| self.table[slot].as_ref())
            .map(|flight| flight.is_finished())
        else {
            return false;
        };
        let owed_by = reader.filter(|_| !finished);
        if owed_by.is_some() {
            ABANDONED_READERS.fetch_add(1, Ordering::AcqRel);
        }
        let owed = owed_by.map(|fd| LateResult::owed(&*self.kernel, fd));
        self.abandon_slot(user_data, owed_by.is_some(), owed);
        true
    }

    /// Apply what futures that cannot reach this ring asked of it.
    fn read_mailbox(&mut self) {
        if !self.mailbox.has_requests() {
            return;
        }
        let requests = self.mailbox.take_requests();
        self.apply(requests);
    }

    fn apply(&mut self, requests: Vec<Request>) {
        for request in requests {
            match request {
                Request::Adopt {
                    user_data,
                    completion,
                } => {
                    let Some(slot) = self.slot_of(user_data) else {
                        continue;
                    };
                    let Some(flight) = self.table[slot].take() else {
                        continue;
                    };
                    let kept = flight.adopt(completion, &*self.kernel);
                    self.keep_or_free(slot, kept);
                }
                Request::Abandon { user_data, owed } => self.abandon_slot(user_data, true, owed),
                Request::StopStream { user_data } => self.stop_stream(user_data),
            }
        }
    }

    /// Whether an abandoned op reading `fd` is still with the kernel: what
    /// it may still receive goes to the leftovers, so a new reader of `fd`
    /// waits for it (bytes stay in order, and a reader already in the
    /// kernel would never hear of them). Deferred slots are not with the
    /// kernel.
    fn abandoned_reader(&self, fd: RawFd) -> bool {
        if ABANDONED_READERS.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.stopping_stream_reads(fd)
            || self.table.iter().enumerate().any(|(slot, flight)| {
                flight
                    .as_ref()
                    .is_some_and(|f| f.reader_fd() == Some(fd) && f.is_abandoned())
                    && !self.deferred.contains(&slot)
            })
    }

    /// Whether `flight` must wait for an abandoned reader of its fd.
    /// The gate first, at the caller (every op asks): while no reader is
    /// abandoned, nothing to ask the op.
    #[inline]
    fn must_defer(&mut self, flight: &dyn InRing) -> bool {
        ABANDONED_READERS.load(Ordering::Acquire) != 0 && self.waits_for_abandoned_reader(flight)
    }

    /// [`LocalRing::must_defer`] past its gate.
    #[inline(never)]
    fn waits_for_abandoned_reader(&mut self, flight: &dyn InRing) -> bool {
        // A reader abandoned from afar is marked once its request is read.
        self.read_mailbox();
        flight
            .reader_fd()
            .is_some_and(|fd| self.abandoned_reader(fd))
    }

    /// Hold `flight` back (in a reserved slot, no entry) until
    /// [`LocalRing::release_deferred`] starts it; returns its `user_data`.
    fn defer(&mut self, flight: Box<dyn InRing>) -> u64 {
        let (slot, user_data) = self.reserve();
        self.table[slot] = Some(flight);
        self.deferred.push(slot);
        user_data
    }

    /// Start the deferred ops whose fd has no abandoned reader with the
    /// kernel any more (leftovers first); finish abandoned ones, or every
    /// one with `cancel_all`, with `ECANCELED`. Every dispatch asks, and
    /// ops are seldom held back: that gate is inlined at the caller.
    #[inline]
    fn release_deferred(&mut self, cancel_all: bool) {
        if !self.deferred.is_empty() {
            self.release_held_back(cancel_all);
        }
    }

    /// [`LocalRing::release_deferred`] past its gate.
    #[inline(never)]
    fn release_held_back(&mut self, cancel_all: bool) {
        let deferred = std::mem::take(&mut self.deferred);
        self.deferred.clone_from(&deferred);
        for slot in deferred {
            let Some(flight) = self.table[slot].as_ref() else {
                self.deferred.retain(|&s| s != slot);
                continue;
            };
            let cancel = cancel_all || flight.is_abandoned();
            if !cancel
                && flight
                    .reader_fd()
                    .is_some_and(|fd| self.abandoned_reader(fd))
            {
                continue;
            }
            self.deferred.retain(|&s| s != slot);
            let Some(mut flight) = self.table[slot].take() else {
                continue;
            };
            let kernel = Arc::clone(&self.kernel);
            let early = match (cancel, flight.is_given_back()) {
                (true, _) => Some(Err(Errno::ECANCELED)),
                // Its loop left: started where its future is polled next.
                (false, true) => Some(Err(GIVEN_BACK)),
                (false, false) => flight.take_leftover(&*kernel),
            };
            let result = match early {
                Some(result) => Err(result),
                None => match flight.work() {
                    Some(work) => self
                        .push_reserved(slot, work, flight.on_device())
                        .map_err(|e| Err(errno_of(&e))),
                    None => Err(Err(Errno::EINVAL)),
                },
            };
            match result {
                Ok(()) => self.table[slot] = Some(flight),
                Err(result) => {
                    let kept = flight.finish_with(result, &*kernel);
                    self.keep_or_free(slot, kept);
                }
            }
        }
    }

    /// Wait (up to a limit) until the kernel has returned every op,
    /// cancelling the abandoned ones first, or every one with `cancel_all`.
    fn drain(&mut self, cancel_all: bool) {
        self.release_deferred(cancel_all);
        let live: Vec<u64> = (0..self.table.len())
            .filter(|&slot| {
                self.table[slot].as_ref().is_some_and(|flight| {
                    !flight.is_finished() && (cancel_all || flight.is_abandoned())
                })
            })
            .map(|slot| (u64::from(self.generations[slot]) << 32) | slot as u64)
            .collect();
        for user_data in live {
            self.cancel(user_data);
        }
        if cancel_all {
            self.stop_streams();
        }
        let mut waited = Duration::ZERO;
        self.dispatch();
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

impl LocalRing {
    /// Mark the ops that wait on a peer to be given back and cancel the
    /// entries of those with the kernel (see [`leave`]).
    fn give_back_waiting_ops(&mut self) {
        // A receive stream waits on its peer for ever: stopped, and its
        // socket's next read starts one where it runs.
        self.stop_streams();
        for slot in 0..self.table.len() {
            let marked = self.table[slot]
                .as_mut()
                .is_some_and(|flight| flight.give_back_at_leave());
            if marked && !self.deferred.contains(&slot) {
                self.cancel(self.user_data(slot));
            }
        }
    }

    /// Leave the results no future has taken in the mailbox (with
    /// `closing`, and close it), applying the requests that came first: a
    /// request the ring has not applied and a result it has not left
    /// there cannot cross (`Mailbox::settle`).
    fn settle(&mut self, closing: bool) {
        let mailbox = Arc::clone(&self.mailbox);
        while let Err(requests) = mailbox.settle(closing, || self.take_finished()) {
            self.apply(requests);
        }
    }

    /// Take the finished ops out of the table, as orphans by `user_data`.
    fn take_finished(&mut self) -> mailbox::Orphans {
        let mut orphans = Vec::new();
        for slot in 0..self.table.len() {
            if let Some(done) = self.table[slot].take_if(|f| f.is_finished()) {
                orphans.push((self.user_data(slot), done.into_orphan()));
                self.free.push(slot as u32);
            }
        }
        orphans
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN)
    )
}

impl Drop for LocalRing {
    fn drop(&mut self) {
        self.drain(true);
        // Results no future has taken yet go to the mailbox, for futures
        // that outlive the ring.
        self.settle(true);
        if self.in_flight > 0 {
            // The kernel still holds pointers into these ops: leaking them is
            // the only memory-safe choice left.
            for mut flight in self.table.drain(..).flatten() {
                flight.forget_owed();
                std::mem::forget(flight);
            }
        }
    }
}

/// Handle to the io_uring driver shared by a runtime's threads.
///
/// One `Arc` around everything: the op future takes the thread's driver
/// on each submission, and one refcount is cheaper than one per field.
#[derive(Clone)]
pub(crate) struct UringDriver {
    shared: Arc<UringShared>,
}

struct UringShared {
    pool: PoolDriver,
    rings: Arc<dyn RingSource>,
    probe: Arc<ProbeSummary>,
    /// `rings.id()`, kept so a submission needs no virtual call for it.
    rings_id: u64,
}

impl UringDriver {
    /// A driver on rings from `rings`; `Err` says why they cannot be used.
    pub(crate) fn new(pool: PoolDriver, rings: Arc<dyn RingSource>) -> Result<UringDriver, String> {
        availability(&*rings)?;
        let probe = probe(&*rings)?;
        let rings_id = rings.id();
        Ok(UringDriver {
            shared: Arc::new(UringShared {
                pool,
                rings,
                probe,
                rings_id,
            }),
        })
    }

    pub(crate) fn kernel(&self) -> &Arc<dyn Kernel> {
        self.shared.pool.kernel()
    }

    pub(crate) fn pool(&self) -> &PoolDriver {
        &self.shared.pool
    }

    /// Id of the ring source, which the scheduler hooks take.
    pub(crate) fn rings_id(&self) -> u64 {
        self.shared.rings_id
    }

    /// Submit on this thread's ring, or on the pool when io_uring cannot
    /// run this op here. The completion wakes `waker` (the submitting
    /// task's): the op needs no poll until then.
    pub(crate) fn submit<T: OpCode>(&self, mut op: T, waker: &Waker) -> Result<Submission<T>, T> {
        if !ops::opcode(&mut op).is_some_and(|code| self.shared.probe.supports(code)) {
            return Err(op);
        }
        let readiness = op.readiness();
        let storage = readiness.is_none();
        let reader = op.may_take_in_order();
        let mut flight = Box::new(Flight {
            storage,
            reader: reader.is_some(),
            op,
            scratch: ops::Scratch::default(),
            handoff: Handoff::Local {
                waker: Some(waker.clone()),
                abandoned: false,
                result: None,
            },
            waiting_readiness: false,
            leaving: false,
            ran_in_place: None,
            owed: None,
        });
        let Some(work) = flight.work() else {
            return Err(flight.op);
        };
        // Without a ring on this thread, or when the entry cannot be
        // queued, the flight comes back untouched and runs on the pool.
        let rings = (&self.shared.rings, self.shared.rings_id);
        let placed = with_ring(rings, self.kernel(), flight, |ring, flight| {
            if ring.must_defer(&*flight) {
                return Ok((ring.id, ring.defer(flight)));
            }
            match ring.queue(work, flight.on_device()) {
                Ok((slot, user_data)) => {
                    ring.table[slot] = Some(flight);
                    Ok((ring.id, user_data))
                }
                Err(_) => Err(flight),
            }
        });
        match placed {
            Ok((ring_id, user_data)) => Ok(Submission {
                elsewhere: Elsewhere::Not,
                taken: false,
                reader,
                user_data,
                ring_id,
                source_id: self.shared.rings_id,
            }),
            Err(flight) => Err(flight.op),
        }
    }
}

/// An op on a ring.
///
/// Its state and result stay in the ring's slot while the future is
/// polled on the ring's thread; a future that cannot reach the ring goes
/// through the ring's mailbox (`mailbox.rs`) and a shared completion.
pub(crate) struct Submission<T: OpCode> {
    /// Where the op is when not in its ring's table.
    elsewhere: Elsewhere<T>,
    /// The result was taken: nothing is left to abandon on drop.
    taken: bool,
    /// A reader's fd ([`Flight::reader`]): its abandonment is counted in
    /// [`ABANDONED_READERS`], and the fd is owed its late result.
    reader: Option<RawFd>,
    user_data: u64,
    ring_id: u64,
    source_id: u64,
}

/// Where a ring op's result comes from, when not from its ring's slot.
enum Elsewhere<T: OpCode> {
    /// Nowhere else: from the slot.
    Not,
    /// The future could not reach its ring: the result comes through the
    /// completion from then on (the kernel discards a result the future
    /// no longer wants).
    Shared(Shared<T>),
    /// The ring gave the op back unstarted ([`GIVEN_BACK`]) and the
    /// future submitted it again where it was polled.
    Resubmitted(Box<InFlight<T>>),
}

/// A completion shared with a ring the future cannot reach, and the
/// kernel that discards a result the future no longer wants.
struct Shared<T: OpCode> {
    completion: Arc<Completion<T>>,
    kernel: Arc<dyn Kernel>,
}

impl<T: OpCode> Submission<T> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        match &mut self.elsewhere {
            Elsewhere::Not => {}
            Elsewhere::Shared(shared) => {
                let (op, result) = std::task::ready!(shared.completion.poll_finished(cx));
                self.taken = true;
                let kernel = Arc::clone(&shared.kernel);
                return self.deliver(op, result, || kernel, cx);
            }
            Elsewhere::Resubmitted(again) => return again.poll(cx),
        }
        let (ring_id, user_data) = (self.ring_id, self.user_data);
        let polled = with_existing_ring(self.source_id, |ring| {
            if ring.id != ring_id {
                return None;
            }
            ring.poll_slot(user_data, cx.waker())
        })
        .flatten();
        let (op, result) = match polled {
            Some(Some(done)) => {
                let Ok(flight) = done.into_any().downcast::<Flight<T>>() else {
                    unreachable!("a ring slot holds another op type");
                };
                flight.into_result()
            }
            Some(None) => return Poll::Pending,
            None => match self.reach_from_afar(cx) {
                Some((op, result, kernel)) => {
                    self.taken = true;
                    return self.deliver(op, result, || kernel, cx);
                }
                None => return Poll::Pending,
            },
        };
        self.taken = true;
        let source_id = self.source_id;
        self.deliver(
            op,
            result,
            || {
                with_existing_ring(source_id, |ring| Arc::clone(&ring.kernel))
                    .expect("the ring whose slot was just polled")
            },
            cx,
        )
    }

    /// The finished op's output; an op its ring gave back ([`GIVEN_BACK`])
    /// is submitted again from here, to a driver on `kernel` (the one its
    /// fds belong to), or run here when no such driver is current.
    fn deliver(
        &mut self,
        op: T,
        result: SysResult<usize>,
        kernel: impl FnOnce() -> Arc<dyn Kernel>,
        cx: &mut Context<'_>,
    ) -> Poll<T::Output> {
        if result != Err(GIVEN_BACK) {
            return Poll::Ready(op.complete(result));
        }
        match resubmit(op, &kernel(), cx.waker()) {
            // Polled once at once: a pool op is queued by its poll.
            Ok(again) => {
                self.elsewhere = Elsewhere::Resubmitted(Box::new(again));
                self.poll(cx)
            }
            Err(output) => Poll::Ready(output),
        }
    }

    /// The future cannot reach its ring, or its ring left the result in
    /// its mailbox: ask the ring to deliver through a shared completion,
    /// or take the result the ring left.
    fn reach_from_afar(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Option<(T, SysResult<usize>, Arc<dyn Kernel>)> {
        let mailbox = mailbox::of_ring(self.ring_id)?;
        let completion = Completion::<T>::waking(cx.waker().clone(), self.reader);
        let request = Request::Adopt {
            user_data: self.user_data,
            completion: Box::new(Arc::clone(&completion)),
        };
        match mailbox.send(self.user_data, request) {
            Reached::Queued => {
                self.elsewhere = Elsewhere::Shared(Shared {
                    completion,
                    kernel: Arc::clone(mailbox.kernel()),
                });
                None
            }
            Reached::Orphan(orphan) => {
                let (op, result) = take_orphan(orphan);
                Some((op, result, Arc::clone(mailbox.kernel())))
            }
            // Leaked with the kernel: no result will come.
            Reached::Lost => None,
        }
    }
}

/// Submit an op its ring gave back to this thread's driver when that
/// runs on `kernel` (what a cancelled op left for its fd is taken first),
/// or run it here, blocking, when no such driver is current: its output
/// then.
fn resubmit<T: OpCode>(
    mut op: T,
    kernel: &Arc<dyn Kernel>,
    waker: &Waker,
) -> Result<InFlight<T>, T::Output> {
    let driver = super::context::current_driver()
        .filter(|driver| driver.kernel().fd_table_id() == kernel.fd_table_id());
    let Some(driver) = driver else {
        let result = crate::op::run_here(&mut op, &**kernel);
        return Err(op.complete(result));
    };
    match crate::op::settle_early(&mut op, &**kernel) {
        Some(result) => Err(op.complete(result)),
        None => Ok(driver.submit(op, waker)),
    }
}

fn take_orphan<T: OpCode>(orphan: Box<dyn Any + Send>) -> (T, SysResult<usize>) {
    match orphan.downcast::<(T, SysResult<usize>)>() {
        Ok(done) => *done,
        Err(_) => unreachable!("a ring's orphan of another op type"),
    }
}

impl<T: OpCode> Drop for Submission<T> {
    /// Nothing to do once the result was taken (every op awaited to the
    /// end): that check is all most drops make.
    #[inline]
    fn drop(&mut self) {
        if !self.taken {
            self.abandon();
        }
    }
}

impl<T: OpCode> Submission<T> {
    /// The future is gone before it took the op's result.
    #[inline(never)]
    fn abandon(&mut self) {
        let (ring_id, user_data) = (self.ring_id, self.user_data);
        if let Elsewhere::Shared(Shared { completion, kernel }) = &self.elsewhere {
            // Counted before the mark, so a ring that sees the mark sees
            // the count; uncounted at once when the op had already come back.
            if self.reader.is_some() {
                ABANDONED_READERS.fetch_add(1, Ordering::AcqRel);
            }
            let with_ring = completion.abandon(&**kernel);
            if self.reader.is_some() && !with_ring {
                ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
            }
            if with_ring {
                // Ask for the cancel (the op stays marked in its completion).
                let reached = with_existing_ring(self.source_id, |ring| {
                    if ring.id == ring_id {
                        ring.cancel(user_data);
                    }
                    ring.id == ring_id
                });
                if reached != Some(true) {
                    if let Some(mailbox) = mailbox::of_ring(ring_id) {
                        // The completion holds what the fd is owed.
                        let owed = None;
                        mailbox.send(user_data, Request::Abandon { user_data, owed });
                    }
                }
            }
            return;
        }
        // On the ring's thread: straight to the slot.
        let reader = self.reader;
        let reached = with_existing_ring(self.source_id, |ring| {
            ring.id == ring_id && ring.abandon_here(user_data, reader)
        });
        if reached == Some(true) {
            return;
        }
        // From afar: counted first, uncounted by the ring (or here, for a
        // result the ring left in its mailbox).
        let Some(mailbox) = mailbox::of_ring(ring_id) else {
            return;
        };
        if reader.is_some() {
            ABANDONED_READERS.fetch_add(1, Ordering::AcqRel);
        }
        // Owed from now: one for the ring to hold with the op, one held
        // here until a result the ring left in its mailbox is discarded.
        let kernel = &**mailbox.kernel();
        let owed = reader.map(|fd| LateResult::owed(kernel, fd));
        let held = reader.map(|fd| LateResult::owed(kernel, fd));
        match mailbox.send(user_data, Request::Abandon { user_data, owed }) {
            Reached::Queued => {}
            Reached::Orphan(orphan) => {
                let (op, result) = take_orphan::<T>(orphan);
                op.discard(result, kernel);
                if reader.is_some() {
                    ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
                }
            }
            // Leaked with a closed ring: on no ring any more.
            Reached::Lost => {
                if reader.is_some() {
                    ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        drop(held);
    }
}

/// Between two task polls: submit a full batch, or whatever is queued
/// while the ring is device-bound (the entry would otherwise wait for the
/// worker to park, and go out in a burst); then dispatch completions, if
/// anything can be there to dispatch (most polls find nothing: a socket
/// op's completion arrives while the worker parks).
pub(crate) fn between_polls(source_id: u64) {
    with_existing_ring(source_id, |ring| {
        let submitted = ring.should_submit_now() && ring.flush().is_ok();
        if submitted || ring.has_news() {
            ring.dispatch();
        }
        if submitted {
            ring.note_device();
        }
    });
}

/// Nothing is runnable: submit, park in this thread's ring from
/// `source_id` until a completion, a wake or `timeout`, then dispatch.
/// `None` when the thread has no such ring (the caller parks otherwise).
pub(crate) fn park(
    source_id: u64,
    worker: &dyn Park,
    timeout: Option<Duration>,
) -> Option<Result<(), String>> {
    with_existing_ring(source_id, |ring| {
        if !worker.has_driver_wake() {
            worker.set_driver_wake(ring.ring.waker());
        }
        // With no storage op on the ring and no completion taken early,
        // one enter submits and waits (as the wait hands queued entries
        // over first): nothing can make the ring device-bound, and an
        // entry that completes inside the submit ends the wait at once.
        // Otherwise submit first, dispatch, and note whether storage ops
        // are left with the kernel (which needs the submit on its own).
        let one_enter = ring.device_ops == 0 && ring.taken.is_empty();
        if !one_enter {
            ring.flush().map_err(|e| format!("io_uring submit: {e}"))?;
            // Dispatch after the flush: a backed-up completion queue makes
            // it take completions early, and parking with those
            // undispatched would wait for completions that have already
            // arrived.
            ring.dispatch();
            ring.note_device();
        }
        if worker.begin_driver_park() {
            let waited = ring.ring.wait(timeout);
            worker.end_driver_park();
            waited.map_err(|e| {
                format!(
                    "io_uring wait: {e}; {} ops in flight, {} queued",
                    ring.in_flight,
                    ring.ring.queued()
                )
            })?;
        } else if one_enter {
            // News came first: hand the entries over without waiting.
            ring.flush().map_err(|e| format!("io_uring submit: {e}"))?;
        }
        ring.dispatch();
        if one_enter {
            ring.note_device();
        }
        Ok(())
    })
}

/// This thread's loop on rings from `source_id` ends (`block_on`
/// returned, or a worker stops). Futures of ops still on the ring live on
/// elsewhere (moved to another worker or thread, or held for later), and
/// nothing reads this ring until the thread runs a loop again, so:
/// * ops that may wait on a peer (sockets, polls, reads at the file
///   position, which wait on a pipe's writer) are cancelled and given
///   back unstarted ([`flight::GIVEN_BACK`]): their futures submit them
///   again where they are polled (a cancel that loses the race delivers
///   the op's own result instead). Waiting for a peer here could take
///   forever;
/// * storage ops and the cancels are waited for (up to a limit), and
///   abandoned ops drained;
/// * results no future has taken are left in the ring's mailbox, where a
///   future polled anywhere finds them.
///
/// The ring stays open for the thread's next loop.
pub(crate) fn leave(source_id: u64) {
    with_existing_ring(source_id, |ring| {
        ring.give_back_waiting_ops();
        ring.drain(false);
        ring.settle(false);
    });
}

/// Scheduling for io_uring runtimes: FIFO tasks, completions reaped
/// between polls, and parking inside the ring.
pub(crate) struct UringScheduler {
    pub(crate) rings_id: u64,
}

impl Scheduler for UringScheduler {
    fn pick_task(&self, _runnable: usize) -> usize {
        0
    }

    fn between_polls(&self) {
        between_polls(self.rings_id);
    }

    fn idle(&self, worker: &dyn Park, timeout: Option<Duration>) -> Result<(), String> {
        // A thread gets its ring on its first io_uring submission; until
        // then it parks on its condvar (so an idle worker opens no fds).
        match park(self.rings_id, worker, timeout) {
            Some(result) => result,
            None => {
                worker.park(timeout);
                Ok(())
            }
        }
    }

    fn leave(&self) {
        leave(self.rings_id);
    }
}

#[cfg(test)]
mod tests;
