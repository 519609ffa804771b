//! The io_uring FFI boundary: ring setup, opcode probe, pushing entries,
//! entering the kernel, reaping completions, and the eventfd that wakes a
//! worker parked in the ring. The only file of the driver that touches the
//! io-uring crate's unsafe API or libc; it implements the completion-ring
//! seam (`crate::sys::ring`) for the kernel's io_uring.
//!
//! Rings are set up with `COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER |
//! DEFER_TASKRUN` when the kernel accepts them (see [`SetupLevel`]): the
//! kernel then never interrupts the thread to post completions, and posts
//! them only when that thread enters the ring asking for events
//! (`IORING_ENTER_GETEVENTS`). This is sound because a ring lives in one
//! thread's local storage (`super::LOCAL`) and only that thread ever
//! pushes, submits, waits or pops on it, including cancel-on-drop and the
//! drain when the thread ends; other threads only write the wake eventfd.
//! Every enter that expects completions therefore asks for events, and
//! [`CompletionRing::pop`] enters when the kernel flags deferred
//! completions (`IORING_SQ_TASKRUN`), so a peek never misses one.

#![allow(unsafe_code)]

use crate::sys::real::eventfd::EventFd;
use crate::sys::ring::{CompletionRing, RingEntry, RingSource, RingWork, SqFull, StreamSink};
use crate::sys::Interest;
use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `user_data` of the eventfd read that wakes a parked worker.
const WAKE_USER_DATA: u64 = u64::MAX;

/// Provided buffers of a ring's receive streams: how many, and the bytes
/// of each (a power of two; 2 MiB a ring, set up on the first stream).
/// The ring takes a buffer back as soon as it reaped it, so they only
/// need to cover the chunks the kernel posts between two reaps.
const STREAM_BUFFERS: u16 = 512;
const STREAM_BUFFER_BYTES: usize = 4096;
/// The buffer group of the receive streams' provided buffers.
const STREAM_GROUP: u16 = 0;

/// `IORING_ENTER_GETEVENTS` (linux/io_uring.h): run deferred completion
/// work and post its completions.
const ENTER_GETEVENTS: u32 = 1;

/// How a ring is set up, best first; each level drops the flag the one
/// before it added, so a kernel that refuses a flag (`EINVAL`) gets the
/// next level down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetupLevel {
    /// `COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER | DEFER_TASKRUN` (6.1).
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER` (6.0).
    SingleIssuer,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (5.19).
    CoopTaskrun,
    /// No setup flags.
    Plain,
}

impl SetupLevel {
    const ALL: [SetupLevel; 4] = [
        SetupLevel::DeferTaskrun,
        SetupLevel::SingleIssuer,
        SetupLevel::CoopTaskrun,
        SetupLevel::Plain,
    ];

    /// The flags, in the words `iok probe` prints.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            SetupLevel::DeferTaskrun => {
                "COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER | DEFER_TASKRUN"
            }
            SetupLevel::SingleIssuer => "COOP_TASKRUN | TASKRUN_FLAG | SINGLE_ISSUER",
            SetupLevel::CoopTaskrun => "COOP_TASKRUN | TASKRUN_FLAG",
            SetupLevel::Plain => "no setup flags",
        }
    }

    fn apply(self, builder: &mut io_uring::Builder) {
        if self != SetupLevel::Plain {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        if matches!(self, SetupLevel::DeferTaskrun | SetupLevel::SingleIssuer) {
            builder.setup_single_issuer();
        }
        if self == SetupLevel::DeferTaskrun {
            builder.setup_defer_taskrun();
        }
    }
}

/// Set up with the best level from `first` down that `build` accepts: a
/// level refused with `EINVAL` (a kernel that predates one of its flags)
/// falls to the next; any other error (`ENOSYS`, `EPERM`, `ENOMEM`) is the
/// setup's answer and comes back as is.
pub(crate) fn setup_with_fallback<T>(
    first: SetupLevel,
    mut build: impl FnMut(SetupLevel) -> io::Result<T>,
) -> io::Result<(T, SetupLevel)> {
    let start = SetupLevel::ALL
        .iter()
        .position(|&l| l == first)
        .unwrap_or(0);
    let mut refused = None;
    for &level in &SetupLevel::ALL[start..] {
        match build(level) {
            Ok(ring) => return Ok((ring, level)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && level != SetupLevel::Plain => {
                refused = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(refused.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

/// The best level this process's kernel accepted so far (an index into
/// [`SetupLevel::ALL`]), so later rings skip the levels it refused.
static ACCEPTED_LEVEL: AtomicUsize = AtomicUsize::new(0);

/// The kernel's io_uring as a ring source (one id for the whole process:
/// every runtime on a thread shares that thread's kernel ring).
pub(crate) struct KernelRings;

/// Id of [`KernelRings`]; other sources take ids above it.
pub(crate) const KERNEL_RINGS_ID: u64 = 0;

impl RingSource for KernelRings {
    fn id(&self) -> u64 {
        KERNEL_RINGS_ID
    }

    fn open(&self, entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Ok(Box::new(KernelRing::new(entries)?))
    }

    fn io_uring_disabled(&self) -> Option<u32> {
        crate::sys::real::host_info().io_uring_disabled
    }
}

/// One kernel ring with its probe and wake eventfd.
struct KernelRing {
    ring: IoUring,
    level: SetupLevel,
    /// Set up with `IORING_SETUP_SQPOLL` ([`sqpoll_idle_ms`]).
    sqpolled: bool,
    probe: Probe,
    wake: Arc<EventFd>,
    wake_buf: Box<u64>,
    wake_armed: bool,
    reaped: VecDeque<(u64, i32)>,
    /// Times `pop` found the CQ-overflow flag set, since the last
    /// `take_cq_overflows`.
    cq_overflows: u64,
    /// The sinks of the receive streams with the kernel, by `user_data`.
    sinks: HashMap<u64, Arc<dyn StreamSink>, BuildHasherDefault<UserDataHasher>>,
    /// Receive streams the ring cancelled itself (their sink was full).
    stopping: Vec<u64>,
    /// The receive streams' provided buffers (after `ring`: dropped after
    /// the ring is closed).
    provided: Provided,
}

/// A ring's provided buffers for receive streams.
enum Provided {
    /// Not asked for yet.
    Untried,
    /// Registered with the kernel.
    Ready(ProvidedBuffers),
    /// The kernel refused them: no receive streams on this ring.
    Refused,
}

/// `user_data` is the driver's slot (low half, dense) and generation: one
/// multiply spreads it (the low bits stay distinct per slot, the top bits,
/// which the table's control bytes use, mix in every bit).
#[derive(Default)]
struct UserDataHasher(u64);

impl Hasher for UserDataHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The provided-buffer ring of a ring's receive streams: entries the kernel
/// takes buffers from, and the buffers.
struct ProvidedBuffers {
    entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    bufs: Box<[u8]>,
    tail: u16,
}

impl ProvidedBuffers {
    /// Register [`STREAM_BUFFERS`] buffers with `ring`, every one given to
    /// the kernel.
    fn register(ring: &IoUring) -> io::Result<ProvidedBuffers> {
        let layout = std::alloc::Layout::from_size_align(
            usize::from(STREAM_BUFFERS) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut provided = ProvidedBuffers {
            entries,
            layout,
            bufs: vec![0u8; usize::from(STREAM_BUFFERS) * STREAM_BUFFER_BYTES].into_boxed_slice(),
            tail: 0,
        };
        // SAFETY: `entries` points at STREAM_BUFFERS zeroed, page-aligned
        // entries, freed only after the ring is closed (field order of
        // `KernelRing`) or never (a ring dropped with streams left).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries as u64,
                STREAM_BUFFERS,
                STREAM_GROUP,
                0,
            )?
        };
        for bid in 0..STREAM_BUFFERS {
            provided.give_back(bid);
        }
        Ok(provided)
    }

    /// The bytes the kernel put in buffer `bid`.
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * STREAM_BUFFER_BYTES;
        &self.bufs[start..start + len.min(STREAM_BUFFER_BYTES)]
    }

    /// Hand buffer `bid` back to the kernel.
    fn give_back(&mut self, bid: u16) {
        let addr = self.bufs.as_ptr() as u64 + (usize::from(bid) * STREAM_BUFFER_BYTES) as u64;
        let index = usize::from(self.tail & (STREAM_BUFFERS - 1));
        // SAFETY: the index is masked into the ring; the kernel reads
        // entries only up to the published tail, which moves after this.
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(addr);
        entry.set_len(STREAM_BUFFER_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field shared with the kernel (in the first
        // entry), published with release ordering as liburing does.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout; the ring that
        // registered it is closed (see `KernelRing::drop`).
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}

fn poll_mask(interest: Interest) -> u32 {
    match interest {
        Interest::Readable => libc::POLLIN as u32,
        Interest::Writable => libc::POLLOUT as u32,
    }
}

/// The kernel's submission entry for `entry`: the one place a
/// backend-neutral entry becomes an `io_uring_sqe`.
fn sqe(entry: RingEntry) -> squeue::Entry {
    let built = match entry.work {
        RingWork::Op { sqe, .. } => sqe,
        RingWork::Poll { fd, interest } => {
            opcode::PollAdd::new(types::Fd(fd), poll_mask(interest)).build()
        }
        RingWork::RecvStream { fd } => recv_stream_sqe(fd),
        RingWork::Cancel { target } => opcode::AsyncCancel::new(target).build(),
    };
    built.user_data(entry.user_data)
}

/// A receive stream's entry: a multishot recv into the provided buffers
/// (out of line: off the path of every other push).
#[inline(never)]
fn recv_stream_sqe(fd: std::os::fd::RawFd) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fd(fd), STREAM_GROUP).build()
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::ETIME)
    )
}

/// `IOKERNEL_SQPOLL=<idle ms>`: set rings up with a kernel submission
/// thread (`IORING_SETUP_SQPOLL`) that sleeps after that many idle
/// milliseconds. Off by default: on the measured workloads it did not win
/// (see the README), and it costs a kernel thread spinning per ring.
fn sqpoll_idle_ms() -> Option<u32> {
    std::env::var("IOKERNEL_SQPOLL").ok()?.trim().parse().ok()
}

/// What `iok probe` prints for a ring set up with [`sqpoll_idle_ms`].
const SQPOLL_SETUP: &str = "SQPOLL (IOKERNEL_SQPOLL; no task-run flags, which SQPOLL refuses)";

impl KernelRing {
    fn new(entries: u32) -> io::Result<KernelRing> {
        KernelRing::open(entries, sqpoll_idle_ms())
    }

    /// A ring of `entries`, with a kernel submission thread when
    /// `sqpoll_idle_ms` says so and the kernel allows it.
    fn open(entries: u32, sqpoll_idle_ms: Option<u32>) -> io::Result<KernelRing> {
        // SQPOLL excludes COOP_TASKRUN and DEFER_TASKRUN (EINVAL); a ring
        // that cannot have it (EPERM before 5.11 without privileges) gets
        // the usual setup.
        let sqpoll = sqpoll_idle_ms.and_then(|idle_ms| {
            let ring = IoUring::builder()
                .setup_sqpoll(idle_ms)
                .build(entries)
                .ok()?;
            Some((ring, SetupLevel::Plain))
        });
        let sqpolled = sqpoll.is_some();
        let (ring, level) = match sqpoll {
            Some(built) => built,
            None => Self::set_up_best(entries)?,
        };
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        Ok(KernelRing {
            ring,
            level,
            sqpolled,
            probe,
            wake: Arc::new(EventFd::new(false)?),
            wake_buf: Box::new(0),
            wake_armed: false,
            reaped: VecDeque::new(),
            cq_overflows: 0,
            sinks: HashMap::default(),
            stopping: Vec::new(),
            provided: Provided::Untried,
        })
    }

    /// Set up with the best level the kernel accepts.
    fn set_up_best(entries: u32) -> io::Result<(IoUring, SetupLevel)> {
        let first = SetupLevel::ALL[ACCEPTED_LEVEL.load(Ordering::Relaxed)];
        let (ring, level) = setup_with_fallback(first, |level| {
            let mut builder = IoUring::builder();
            level.apply(&mut builder);
            builder.build(entries)
        })?;
        let index = SetupLevel::ALL
            .iter()
            .position(|&l| l == level)
            .unwrap_or(0);
        ACCEPTED_LEVEL.fetch_max(index, Ordering::Relaxed);
        Ok((ring, level))
    }

    /// Make sure the wake eventfd has a read in flight.
    fn arm_wake(&mut self) -> io::Result<()> {
        if self.wake_armed {
            return Ok(());
        }
        let entry = opcode::Read::new(
            types::Fd(self.wake.fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(WAKE_USER_DATA);
        loop {
            // SAFETY: `wake_buf` is boxed and lives as long as the ring; the
            // eventfd is kept open by `self.wake`.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                break;
            }
            // A full queue: hand it over, then queue the read.
            if let Err(e) = self.ring.submit() {
                if !is_retry(&e) {
                    return Err(e);
                }
                self.take_completions();
            }
        }
        self.wake_armed = true;
        Ok(())
    }

    /// Enter the ring only to have the kernel post deferred completions
    /// (and flush an overflowed CQ): submits nothing, waits for nothing.
    fn enter_for_completions(&mut self) {
        // SAFETY: an enter with no submissions, no wait and no argument
        // touches no memory of ours beyond the mapped rings.
        let entered = unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(0, 0, ENTER_GETEVENTS, None)
        };
        // EINTR/EBUSY/EAGAIN: nothing was posted this time; the flag stays
        // set and the next pop or wait enters again.
        let _ = entered;
    }

    /// Move every completion off the shared CQ into `reaped`.
    fn take_completions(&mut self) {
        let mut reaped = std::mem::take(&mut self.reaped);
        self.take_completions_into(&mut reaped);
        self.reaped = reaped;
    }

    /// Move every completion off the shared CQ onto the back of `into`.
    fn take_completions_into(&mut self, into: &mut VecDeque<(u64, i32)>) {
        if !self.sinks.is_empty() {
            return self.take_completions_with_streams(into);
        }
        for cqe in self.ring.completion() {
            match cqe.user_data() {
                WAKE_USER_DATA => self.wake_armed = false,
                user_data => into.push_back((user_data, cqe.result())),
            }
        }
    }

    /// [`KernelRing::take_completions_into`] while receive streams run:
    /// their chunks go to their sinks, only their last completion onto
    /// `into`.
    #[inline(never)]
    fn take_completions_with_streams(&mut self, into: &mut VecDeque<(u64, i32)>) {
        let KernelRing {
            ring,
            sinks,
            provided,
            stopping,
            wake_armed,
            ..
        } = self;
        for cqe in ring.completion() {
            let user_data = cqe.user_data();
            if user_data == WAKE_USER_DATA {
                *wake_armed = false;
                continue;
            }
            let Some(sink) = sinks.get(&user_data) else {
                into.push_back((user_data, cqe.result()));
                continue;
            };
            // A chunk: its bytes to the sink, its buffer back to the kernel.
            let (res, flags) = (cqe.result(), cqe.flags());
            let more = cqueue::more(flags);
            if let (Some(bid), Provided::Ready(buffers)) =
                (cqueue::buffer_select(flags), &mut *provided)
            {
                let full = res > 0 && !sink.received(buffers.bytes(bid, res as usize));
                if full && more && !stopping.contains(&user_data) {
                    stopping.push(user_data);
                }
                buffers.give_back(bid);
            }
            if !more {
                // The stream's last completion.
                sinks.remove(&user_data);
                stopping.retain(|&u| u != user_data);
                into.push_back((user_data, res));
            }
        }
        if !self.stopping.is_empty() {
            self.stop_full_streams();
        }
    }

    /// Cancel the receive streams whose sink said it was full (a full
    /// submission queue leaves them for the next reap).
    fn stop_full_streams(&mut self) {
        let mut sq = self.ring.submission();
        for &target in &self.stopping {
            if !self.sinks.contains_key(&target) {
                continue;
            }
            let cancel = opcode::AsyncCancel::new(target)
                .build()
                .user_data(crate::sys::ring::CANCEL_USER_DATA);
            // SAFETY: a cancel entry carries no pointers.
            if unsafe { sq.push(&cancel) }.is_err() {
                return;
            }
        }
        drop(sq);
        self.stopping.clear();
    }

    /// Have the kernel post what it holds back: completions whose work it
    /// deferred to this thread (COOP_TASKRUN, DEFER_TASKRUN: flagged by
    /// TASKRUN_FLAG), or that the CQ had no room for (IORING_FEAT_NODROP),
    /// are only posted by an enter asking for events. Then take them.
    fn post_deferred(&mut self) {
        let sq = self.ring.submission();
        let overflowed = sq.cq_overflow();
        let deferred = sq.taskrun() || overflowed;
        drop(sq);
        if overflowed {
            self.cq_overflows += 1;
        }
        if deferred {
            self.enter_for_completions();
            self.take_completions();
        }
    }
}

impl Drop for KernelRing {
    fn drop(&mut self) {
        // Receive streams still with the kernel (a drain that gave up)
        // may write into the provided buffers until the closed ring's
        // teardown ends: leaked rather than freed under it.
        if !self.sinks.is_empty() {
            if let Provided::Ready(buffers) =
                std::mem::replace(&mut self.provided, Provided::Refused)
            {
                std::mem::forget(buffers);
            }
        }
    }
}

impl CompletionRing for KernelRing {
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull> {
        // One view of the queue for the check and the push (each view
        // reads the kernel's head and publishes the tail when dropped).
        let mut sq = self.ring.submission();
        if sq.is_full() {
            return Err(SqFull(entry));
        }
        let sqe = sqe(entry);
        // SAFETY: the caller guarantees the entry's pointers stay valid until
        // its completion is popped; the queue has room (checked above).
        let pushed = unsafe { sq.push(&sqe) };
        debug_assert!(pushed.is_ok(), "the submission queue had room");
        Ok(())
    }

    fn queued(&mut self) -> usize {
        self.ring.submission().len()
    }

    fn submit(&mut self) -> io::Result<()> {
        self.ring.submit().map(drop)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.arm_wake()?;
        let result = match timeout {
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_retry(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        if self.reaped.is_empty() {
            self.take_completions();
        }
        if self.reaped.is_empty() {
            self.post_deferred();
        }
        self.reaped.pop_front()
    }

    fn pop_all(&mut self, into: &mut VecDeque<(u64, i32)>) -> bool {
        let before = into.len();
        // (`append` costs ~50 instructions even with nothing to move.)
        if !self.reaped.is_empty() {
            into.append(&mut self.reaped);
        }
        self.take_completions_into(into);
        // What `pop` does once the queue is empty, so both take the same.
        self.post_deferred();
        if !self.reaped.is_empty() {
            into.append(&mut self.reaped);
        }
        into.len() > before
    }

    fn has_completions(&mut self) -> bool {
        if !self.reaped.is_empty() || !self.ring.completion().is_empty() {
            return true;
        }
        // Completions the kernel holds back until an enter asks for them
        // (see `post_deferred`).
        let sq = self.ring.submission();
        sq.taskrun() || sq.cq_overflow()
    }

    fn supports_streams(&mut self) -> bool {
        if let Provided::Untried = self.provided {
            let recv = self.probe.is_supported(opcode::RecvMulti::CODE);
            self.provided = match recv.then(|| ProvidedBuffers::register(&self.ring)) {
                Some(Ok(buffers)) => Provided::Ready(buffers),
                _ => Provided::Refused,
            };
        }
        matches!(self.provided, Provided::Ready(_))
    }

    fn watch_stream(&mut self, user_data: u64, sink: Arc<dyn StreamSink>) {
        self.sinks.insert(user_data, sink);
    }

    fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let eventfd = Arc::clone(&self.wake);
        Arc::new(move || eventfd.signal())
    }

    fn setup(&self) -> Option<&'static str> {
        match self.sqpolled {
            true => Some(SQPOLL_SETUP),
            false => Some(self.level.describe()),
        }
    }

    fn take_cq_overflows(&mut self) -> u64 {
        std::mem::take(&mut self.cq_overflows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::real::RealKernel;
    use crate::sys::Kernel;
    use std::os::fd::RawFd;
    use std::time::Duration;

    /// A setup that refuses (with `errno`) every level above `accepts`.
    fn refusing_above(
        accepts: SetupLevel,
        errno: i32,
        tried: &mut Vec<SetupLevel>,
    ) -> impl FnMut(SetupLevel) -> io::Result<SetupLevel> + '_ {
        move |level| {
            tried.push(level);
            let rank = |l| SetupLevel::ALL.iter().position(|&x| x == l).unwrap();
            if rank(level) < rank(accepts) {
                Err(io::Error::from_raw_os_error(errno))
            } else {
                Ok(level)
            }
        }
    }

    #[test]
    fn setup_falls_back_flag_by_flag_on_einval_only() {
        for accepts in SetupLevel::ALL {
            let mut tried = Vec::new();
            let (built, level) = setup_with_fallback(
                SetupLevel::DeferTaskrun,
                refusing_above(accepts, libc::EINVAL, &mut tried),
            )
            .unwrap();
            assert_eq!((built, level), (accepts, accepts));
            let upto = SetupLevel::ALL.iter().position(|&l| l == accepts).unwrap();
            assert_eq!(tried, SetupLevel::ALL[..=upto].to_vec());
        }
        // Another errno is the setup's answer: no weaker level is tried.
        let mut tried = Vec::new();
        let err = setup_with_fallback(
            SetupLevel::DeferTaskrun,
            refusing_above(SetupLevel::Plain, libc::EPERM, &mut tried),
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert_eq!(tried, vec![SetupLevel::DeferTaskrun]);
        // A plain setup refused with EINVAL keeps its errno.
        let mut tried = Vec::new();
        let err = setup_with_fallback(SetupLevel::CoopTaskrun, |level| {
            tried.push(level);
            Err::<(), _>(io::Error::from_raw_os_error(libc::EINVAL))
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(tried, vec![SetupLevel::CoopTaskrun, SetupLevel::Plain]);
    }

    fn pipe() -> (RawFd, RawFd) {
        RealKernel.pipe().expect("pipe")
    }

    fn close(fd: RawFd) {
        RealKernel.close(fd).expect("close");
    }

    /// A completion the kernel posts after the submit (a poll on a pipe
    /// written later) comes out of `pop` without a `wait`: under
    /// DEFER_TASKRUN it is only posted by an enter asking for events, which
    /// `pop` makes when the kernel flags pending work.
    /// Queue and submit a readable-poll of `fd` under `user_data`.
    fn push_poll(ring: &mut KernelRing, user_data: u64, fd: RawFd) {
        let entry = RingEntry {
            user_data,
            work: RingWork::Poll {
                fd,
                interest: Interest::Readable,
            },
        };
        // SAFETY: a poll entry carries no pointers.
        assert!(unsafe { ring.push(entry) }.is_ok());
        ring.submit().unwrap();
    }

    #[test]
    fn pop_reaps_a_deferred_completion_without_waiting() {
        let mut ring = KernelRing::new(8).unwrap();
        eprintln!("ring setup: {}", ring.level.describe());
        let (read_end, write_end) = pipe();
        push_poll(&mut ring, 7, read_end);
        assert_eq!(ring.pop(), None, "nothing is readable yet");
        assert_eq!(RealKernel.write(write_end, b"x"), Ok(1));
        let mut popped = None;
        for _ in 0..1000 {
            popped = ring.pop();
            if popped.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(popped, Some((7, libc::POLLIN as i32)));
        close(read_end);
        close(write_end);
    }

    /// `has_completions` never says no while `pop` would find something:
    /// not for a completion the kernel deferred to this thread (posted
    /// only by an enter asking for events), and it says no once taken.
    #[test]
    fn has_completions_sees_a_deferred_completion() {
        let mut ring = KernelRing::new(8).unwrap();
        let (read_end, write_end) = pipe();
        push_poll(&mut ring, 7, read_end);
        assert!(!ring.has_completions(), "nothing is readable yet");
        assert_eq!(RealKernel.write(write_end, b"x"), Ok(1));
        let mut seen = false;
        for _ in 0..1000 {
            if ring.has_completions() {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(seen, "the poll's completion was never seen");
        let mut taken = VecDeque::new();
        assert!(ring.pop_all(&mut taken));
        assert_eq!(taken, VecDeque::from([(7, libc::POLLIN as i32)]));
        assert!(!ring.has_completions(), "everything was taken");
        close(read_end);
        close(write_end);
    }

    /// `pop_all` takes what `pop` would: a completion the kernel deferred
    /// to this thread (posted only by an enter asking for events) comes
    /// without a wait, and nothing is left behind for `pop`.
    #[test]
    fn pop_all_reaps_a_deferred_completion_without_waiting() {
        let mut ring = KernelRing::new(8).unwrap();
        let (read_end, write_end) = pipe();
        push_poll(&mut ring, 7, read_end);
        let mut taken = VecDeque::new();
        assert!(!ring.pop_all(&mut taken), "nothing is readable yet");
        assert_eq!(RealKernel.write(write_end, b"x"), Ok(1));
        for _ in 0..1000 {
            if ring.pop_all(&mut taken) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(Vec::from(taken), vec![(7, libc::POLLIN as i32)]);
        assert_eq!(ring.pop(), None);
        close(read_end);
        close(write_end);
    }

    /// A ring with a kernel submission thread (`IOKERNEL_SQPOLL`) takes
    /// entries without an enter per submit and still completes them.
    #[test]
    fn an_sqpoll_ring_completes_what_it_is_given() {
        let mut ring = KernelRing::open(8, Some(10)).unwrap();
        eprintln!("ring setup: {:?}", ring.setup());
        let (read_end, write_end) = pipe();
        assert_eq!(RealKernel.write(write_end, b"x"), Ok(1));
        push_poll(&mut ring, 9, read_end);
        let mut popped = None;
        for _ in 0..100 {
            ring.wait(Some(Duration::from_millis(10))).unwrap();
            popped = ring.pop();
            if popped.is_some() {
                break;
            }
        }
        assert_eq!(popped, Some((9, libc::POLLIN as i32)));
        close(read_end);
        close(write_end);
    }

    /// Another thread's wake ends a wait with no timeout, however the ring
    /// was set up.
    #[test]
    fn a_wake_from_another_thread_ends_a_wait() {
        let mut ring = KernelRing::new(8).unwrap();
        let wake = ring.waker();
        let waker = crate::sys::real::thread::spawn_named("ring-waker".into(), move || {
            std::thread::sleep(Duration::from_millis(20));
            wake();
        })
        .unwrap();
        ring.wait(None).unwrap();
        waker.join().unwrap();
        assert_eq!(ring.pop(), None, "the wake read is the ring's own");
    }

    /// A sink that keeps what a receive stream hands it.
    #[derive(Default)]
    struct Collect {
        bytes: std::sync::Mutex<Vec<u8>>,
        /// Say "full" once this many bytes came (0: never).
        full_at: usize,
    }

    impl StreamSink for Collect {
        fn received(&self, bytes: &[u8]) -> bool {
            assert!(!bytes.is_empty(), "an empty chunk");
            let mut kept = self.bytes.lock().unwrap();
            kept.extend_from_slice(bytes);
            self.full_at == 0 || kept.len() < self.full_at
        }

        fn ended(&self, _res: i32) {}
    }

    /// Pop until `user_data` completes (its result), waiting as needed.
    fn wait_for(ring: &mut KernelRing, user_data: u64) -> i32 {
        for _ in 0..200 {
            while let Some((done, res)) = ring.pop() {
                if done == user_data {
                    return res;
                }
            }
            ring.wait(Some(Duration::from_millis(10))).unwrap();
        }
        panic!("{user_data:#x} never completed");
    }

    /// Start a receive stream on `fd` into `sink` under `user_data`.
    fn start_stream(ring: &mut KernelRing, user_data: u64, fd: RawFd, sink: Arc<Collect>) {
        assert!(
            ring.supports_streams(),
            "this kernel refused provided buffers"
        );
        let entry = RingEntry {
            user_data,
            work: RingWork::RecvStream { fd },
        };
        // SAFETY: a receive stream's entry carries no pointers.
        assert!(unsafe { ring.push(entry) }.is_ok());
        ring.watch_stream(user_data, sink);
        ring.submit().unwrap();
    }

    /// Receive streams take every chunk a peer sends, in order, recycling
    /// the provided buffers (far more bytes than they hold pass through);
    /// a stream's one completion comes when it ends: `> 0` or `-ENOBUFS`
    /// when the kernel stopped it (a full completion queue, no buffer
    /// left; the driver then starts another, as here), 0 at the end of
    /// stream.
    #[test]
    fn receive_streams_hand_every_chunk_to_their_sink_until_end_of_stream() {
        let mut ring = KernelRing::new(8).unwrap();
        let (a, b) = RealKernel.unix_pair(crate::sys::SockType::Stream).unwrap();
        let sink = Arc::new(Collect::default());
        let mut user_data = 7;
        start_stream(&mut ring, user_data, b, Arc::clone(&sink));
        let data: Vec<u8> = (0..6 * usize::from(STREAM_BUFFERS) * STREAM_BUFFER_BYTES / 5)
            .map(|i| (i % 253) as u8)
            .collect();
        let (mut sent, mut restarts, mut closed) = (0, 0, false);
        loop {
            if sent < data.len() {
                let end = (sent + 100_000).min(data.len());
                match RealKernel.send(a, &data[sent..end], crate::sys::MsgFlags::DONTWAIT) {
                    Ok(n) => sent += n,
                    Err(crate::sys::Errno::EAGAIN) => {}
                    Err(e) => panic!("send: {e:?}"),
                }
            } else if !closed {
                close(a);
                closed = true;
            }
            let _ = ring.wait(Some(Duration::from_millis(1)));
            // Reap as the driver would: chunks go to the sink.
            let mut ended = None;
            while let Some((done, res)) = ring.pop() {
                assert_eq!(done, user_data, "a completion of another entry");
                ended = Some(res);
            }
            match ended {
                None => {}
                Some(0) => break,
                Some(res) if res > 0 || res == -libc::ENOBUFS => {
                    restarts += 1;
                    user_data += 1;
                    start_stream(&mut ring, user_data, b, Arc::clone(&sink));
                }
                Some(res) => panic!("the stream failed: {res}"),
            }
        }
        assert_eq!(sent, data.len());
        let got = sink.bytes.lock().unwrap();
        assert_eq!(got.len(), data.len(), "{restarts} restarts");
        assert!(*got == data, "bytes out of order");
        assert!(ring.sinks.is_empty(), "an ended stream's sink is kept");
        close(b);
    }

    /// A stream whose sink says it is full is cancelled by the ring (what
    /// was received still reaches the sink); a cancel from the driver ends
    /// another the same way.
    #[test]
    fn a_full_sink_or_a_cancel_ends_a_receive_stream() {
        let mut ring = KernelRing::new(8).unwrap();
        let (a, b) = RealKernel.unix_pair(crate::sys::SockType::Stream).unwrap();
        let sink = Arc::new(Collect {
            full_at: 10,
            ..Collect::default()
        });
        start_stream(&mut ring, 9, b, Arc::clone(&sink));
        for _ in 0..3 {
            RealKernel
                .send(a, &[5u8; 8], crate::sys::MsgFlags::NONE)
                .unwrap();
            let _ = ring.wait(Some(Duration::from_millis(5)));
        }
        assert_eq!(wait_for(&mut ring, 9), -libc::ECANCELED);
        let got = sink.bytes.lock().unwrap().len();
        assert!(
            (16..=24).contains(&got),
            "{got} bytes reached the full sink"
        );
        // The rest waits in the socket for whoever reads next.
        let mut rest = [0u8; 64];
        let left = RealKernel
            .recv(b, &mut rest, crate::sys::MsgFlags::DONTWAIT)
            .unwrap_or(0);
        assert_eq!(
            got + left,
            24,
            "bytes lost between the stream and the socket"
        );

        let other = Arc::new(Collect::default());
        start_stream(&mut ring, 11, b, Arc::clone(&other));
        let cancel = RingEntry {
            user_data: crate::sys::ring::CANCEL_USER_DATA,
            work: RingWork::Cancel { target: 11 },
        };
        // SAFETY: a cancel entry carries no pointers.
        assert!(unsafe { ring.push(cancel) }.is_ok());
        ring.submit().unwrap();
        assert_eq!(wait_for(&mut ring, 11), -libc::ECANCELED);
        assert!(ring.sinks.is_empty());
        close(a);
        close(b);
    }
}
