//! [`MpiCoordinator`]: the ranks of an MPI job (Open MPI, or any MPI the
//! `mpi` crate builds against) writing one output. Cargo feature `mpi`.
//!
//! This is an FFI file: the shared counters are an MPI one-sided window,
//! which the `mpi` crate (0.8) does not wrap, so they are driven through
//! its raw bindings (`mpi::ffi`); every `unsafe` block says why it holds.
//! The collectives use the crate's safe API.
//!
//! # The shared counters
//!
//! Rank 0 exposes two `u64` counters (next output byte, next slot) in a
//! window: `MPI_Win_allocate_shared` when every rank is on one node (Open
//! MPI's osc/sm: the atomic is done in shared memory), else
//! `MPI_Win_allocate` (a network window). Every rank opens one passive-target
//! epoch on it for the coordinator's lifetime (`MPI_Win_lock_all` with
//! `MPI_MODE_NOCHECK`), and a reservation is one `MPI_Fetch_and_op`
//! (`MPI_SUM` on `MPI_UINT64_T`) at rank 0 followed by `MPI_Win_flush(0)`:
//! an atomic fetch-add that involves no code on rank 0 (shared memory on
//! one node, an RDMA atomic where the network has them). The alternatives:
//! - a counter server on rank 0 answering point-to-point requests: a round
//!   trip through a thread that must poll MPI on rank 0 (a core burnt on
//!   an oversubscribed node), and every reservation serialised through it;
//! - collectives (each rank reserves a batch in an `MPI_Exscan` round):
//!   ranks would reserve in lockstep, but a striped writer reserves when a
//!   chunk is sealed, at a rate each rank decides alone.
//!
//! Measured per `reserve_bytes` call (`examples/mpi_coordinator.rs
//! --reserve-calls 20000`: every rank makes 20 000 back-to-back 1 MiB
//! reservations at once; mean over all ranks), Open MPI 4.1.4 on a 2-core
//! VM, so 2 and 4 ranks are oversubscribed. Before the shared window
//! (load 9-10 from other jobs, median of 3): inline 0.07 / 0.27 / 9.7 us
//! at 1 / 2 / 4 ranks, funnelled through the MPI thread 8.8 / 13.7 /
//! 42.9 us. With it (`benches/mpi-merge.sh`, load about 2): inline 0.07 /
//! 0.11 / 0.11 us, funnelled 9.5 / 8.3 / 25.8 us. Inline wins at every rank
//! count: the funnelled path adds two thread handoffs (a channel send and
//! a wake-up) to a sub-microsecond atomic.
//!
//! Inside real merges the difference the window makes is larger: with
//! `MPI_Win_allocate` on one node Open MPI chose osc/rdma over its
//! shared-memory transport, where a fetch-and-op is a message rank 0 must
//! progress, and a 4-rank merge reported 1.2-1.3 ms per reservation (rank
//! 0's idle progress poke is once a millisecond), 23-50 % of a 1 MiB
//! chunk's write time; with the shared window it reports 1-4 us (under
//! 0.3 %). `benches/mpi-merge.sh` prints both figures every run.
//!
//! # Threads
//!
//! MPI calls block the calling thread, and collectives wait for the
//! slowest rank, so none runs on a runtime worker: one dedicated thread
//! (`iok-mpi`) initialises MPI (requesting `MPI_THREAD_MULTIPLE`), makes
//! every collective in call order (non-blocking MPI collectives, tested
//! with naps while other ranks are still missing, so a rank that waits
//! leaves the CPU to the ranks still working), and finalises MPI when the coordinator
//! is dropped or [`MpiCoordinator::finalize`]d; callers await a reply
//! channel. When the library grants `MPI_THREAD_MULTIPLE`, reservations
//! (a microsecond-scale fetch-add) are made inline on the calling thread;
//! at a lower level (FUNNELED / SERIALIZED) they too go through the MPI
//! thread, so only that thread ever calls MPI ([`CounterPath`]).
//!
//! ```no_run
//! use iokernel::writer::coord::{Coordinator, CounterPath, MpiCoordinator};
//!
//! // Run under `mpirun -n 4`: every rank gets a disjoint range.
//! let coord = MpiCoordinator::init(CounterPath::Auto).unwrap();
//! iokernel::runtime::block_on_here(async {
//!     let start = coord.reserve_bytes(1 << 20).await.unwrap();
//!     let all = coord.all_gather(start.to_le_bytes().to_vec()).await.unwrap();
//!     assert_eq!(all.len(), coord.ranks());
//! });
//! coord.finalize();
//! ```

#![allow(unsafe_code)] // FFI file: the RMA window through `mpi::ffi`

use super::{CoordFuture, Coordinator, PrefixSum};
use crate::sync::{channel, Receiver, Sender};
use crate::sys::real::thread::spawn_named;
use crate::sys::real::RealClock;
use crate::sys::Clock;
use mpi::collective::CommunicatorCollectives;
use mpi::datatype::PartitionMut;
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::Root;
use mpi::Threading;
use std::fmt;
use std::io;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

/// Window displacement (in `u64`s) of the byte counter.
const BYTE_COUNTER: ffi::MPI_Aint = 0;
/// Window displacement of the slot counter.
const SLOT_COUNTER: ffi::MPI_Aint = 1;
/// How long the MPI thread waits for a call before it pokes MPI's
/// progress engine (rank 0 serves the counters; with an `osc` component
/// that needs the target to progress, this keeps reservations moving).
const IDLE_PROGRESS: Duration = Duration::from_millis(1);

/// Tests of a pending collective before [`wait_gently`] starts to nap.
const SPIN_TESTS: u32 = 200;
/// The first nap of a waiting collective.
const NAP_MIN: Duration = Duration::from_micros(20);
/// The longest nap of a waiting collective.
const NAP_MAX: Duration = Duration::from_millis(1);

/// How reservations reach MPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterPath {
    /// Inline on the calling thread when the library grants
    /// `MPI_THREAD_MULTIPLE`, else through the MPI thread.
    Auto,
    /// Always through the MPI thread, which then asks MPI only for
    /// `MPI_THREAD_FUNNELED`: for comparison, for an MPI whose
    /// `MPI_THREAD_MULTIPLE` is slow, and for one-sided components that
    /// refuse it (Open MPI 4's osc/pt2pt, used where the network has no
    /// RDMA: there `Auto` fails with an error saying to use this).
    Funnelled,
}

/// Counters of the time spent in [`Coordinator::reserve_bytes`] and
/// [`Coordinator::reserve_slots`] on this rank (the call as the writer
/// sees it: the fetch-add, and the handoff when funnelled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReserveStats {
    /// Reservations made.
    pub calls: u64,
    /// Their total time, nanoseconds.
    pub total_ns: u64,
    /// The slowest one, nanoseconds.
    pub max_ns: u64,
}

impl ReserveStats {
    /// Mean nanoseconds per reservation (0 without any).
    pub fn mean_ns(&self) -> u64 {
        self.total_ns.checked_div(self.calls).unwrap_or(0)
    }
}

/// The window handle, shared by the threads that reserve inline.
#[derive(Clone, Copy)]
struct Window(ffi::MPI_Win);

// SAFETY: an `MPI_Win` is an opaque handle into the MPI library, valid until
// `MPI_Win_free`, which only the MPI thread calls, after every caller is
// done (the coordinator is being dropped). Other threads use it only when
// the library granted MPI_THREAD_MULTIPLE (`Shared::inline`).
unsafe impl Send for Window {}
// SAFETY: as for `Send`: under MPI_THREAD_MULTIPLE concurrent RMA calls on
// one window are allowed by the MPI standard (12.4).
unsafe impl Sync for Window {}

/// A call for the MPI thread, with where to send its result.
enum Call {
    Reserve(ffi::MPI_Aint, u64, Sender<io::Result<u64>>),
    AllGather(Vec<u8>, Sender<io::Result<Vec<Vec<u8>>>>),
    Barrier(Sender<io::Result<()>>),
    PrefixSum(u64, Sender<io::Result<PrefixSum>>),
    Broadcast(Vec<u8>, Sender<io::Result<Vec<u8>>>),
}

/// The ranks of `MPI_COMM_WORLD`. See the module docs.
pub struct MpiCoordinator {
    rank: usize,
    ranks: usize,
    threading: Threading,
    /// The window, when reservations are made inline.
    inline: Option<Window>,
    calls: Mutex<Option<mpsc::Sender<Call>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    reserve_calls: AtomicU64,
    reserve_total_ns: AtomicU64,
    reserve_max_ns: AtomicU64,
    clock: RealClock,
}

impl fmt::Debug for MpiCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiCoordinator")
            .field("rank", &self.rank)
            .field("ranks", &self.ranks)
            .field("threading", &self.threading)
            .field("inline", &self.inline.is_some())
            .finish()
    }
}

/// What the MPI thread reports once MPI is up.
struct Started {
    rank: usize,
    ranks: usize,
    threading: Threading,
    window: Window,
}

impl MpiCoordinator {
    /// Initialises MPI on a dedicated thread and opens the counters'
    /// window (collective: every rank of the job calls it). Fails when MPI
    /// was already initialised in this process.
    pub fn init(path: CounterPath) -> io::Result<MpiCoordinator> {
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let (calls_tx, calls_rx) = mpsc::channel();
        let thread = spawn_named("iok-mpi".into(), move || {
            mpi_thread(path, started_tx, calls_rx)
        })?;
        let started = match started_rx.recv() {
            Ok(started) => started?,
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other(
                    "mpi: the MPI thread stopped while starting",
                ));
            }
        };
        let inline = (path == CounterPath::Auto && started.threading == Threading::Multiple)
            .then_some(started.window);
        Ok(MpiCoordinator {
            rank: started.rank,
            ranks: started.ranks,
            threading: started.threading,
            inline,
            calls: Mutex::new(Some(calls_tx)),
            thread: Mutex::new(Some(thread)),
            reserve_calls: AtomicU64::new(0),
            reserve_total_ns: AtomicU64::new(0),
            reserve_max_ns: AtomicU64::new(0),
            clock: RealClock::new(),
        })
    }

    /// The thread level the library granted (`"multiple"`, `"serialized"`,
    /// `"funneled"`, `"single"`).
    pub fn threading(&self) -> &'static str {
        match self.threading {
            Threading::Multiple => "multiple",
            Threading::Serialized => "serialized",
            Threading::Funneled => "funneled",
            Threading::Single => "single",
        }
    }

    /// True when reservations are made inline on the calling thread.
    pub fn reserves_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// This rank's reservation timings so far.
    pub fn reserve_stats(&self) -> ReserveStats {
        ReserveStats {
            calls: self.reserve_calls.load(Ordering::Relaxed),
            total_ns: self.reserve_total_ns.load(Ordering::Relaxed),
            max_ns: self.reserve_max_ns.load(Ordering::Relaxed),
        }
    }

    /// Frees the window and finalises MPI (collective, like dropping the
    /// last reference). Later calls fail with an error naming the
    /// coordinator.
    pub fn finalize(&self) {
        drop(self.calls.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Ends the whole job now (`MPI_Abort` on `MPI_COMM_WORLD`): mpirun
    /// kills every rank. For a rank that failed where the others may be
    /// waiting in a collective it will never join. Called from any thread
    /// (at a thread level below MULTIPLE this is outside the standard, as
    /// every MPI program's last-resort abort is).
    pub fn abort(&self, code: i32) -> ! {
        // SAFETY: MPI is initialised (the coordinator exists) and not yet
        // finalised (finalize takes `&self`, and the caller holds it);
        // MPI_Abort does not return on success.
        unsafe {
            ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::abort()
    }

    fn send(&self, call: Call) -> io::Result<()> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let stopped = || io::Error::other("mpi coordinator: MPI is finalised (or its thread died)");
        calls
            .as_ref()
            .ok_or_else(stopped)?
            .send(call)
            .map_err(|_| stopped())
    }

    fn reserve(&self, counter: ffi::MPI_Aint, amount: u64) -> CoordFuture<'_, u64> {
        let started = self.clock.now();
        let inline = self.inline.map(|window| fetch_add(window, counter, amount));
        Box::pin(async move {
            let start = match inline {
                Some(start) => start,
                None => {
                    let (tx, rx) = channel(1);
                    self.send(Call::Reserve(counter, amount, tx))?;
                    reply(rx).await?
                }
            };
            let ns = u64::try_from((self.clock.now() - started).as_nanos()).unwrap_or(u64::MAX);
            self.reserve_calls.fetch_add(1, Ordering::Relaxed);
            self.reserve_total_ns.fetch_add(ns, Ordering::Relaxed);
            self.reserve_max_ns.fetch_max(ns, Ordering::Relaxed);
            Ok(start)
        })
    }

    fn collective<T: Send + 'static>(
        &self,
        make: impl FnOnce(Sender<io::Result<T>>) -> Call,
    ) -> CoordFuture<'_, T> {
        let (tx, rx) = channel(1);
        let sent = self.send(make(tx));
        Box::pin(async move {
            sent?;
            reply(rx).await
        })
    }
}

impl Drop for MpiCoordinator {
    fn drop(&mut self) {
        self.finalize();
    }
}

async fn reply<T>(rx: Receiver<io::Result<T>>) -> io::Result<T> {
    rx.recv().await.unwrap_or_else(|| {
        Err(io::Error::other(
            "mpi coordinator: the MPI thread stopped before answering",
        ))
    })
}

impl Coordinator for MpiCoordinator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn kind(&self) -> &'static str {
        "mpi"
    }

    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        self.reserve(BYTE_COUNTER, len)
    }

    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        self.reserve(SLOT_COUNTER, count)
    }

    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        self.collective(|tx| Call::AllGather(bytes, tx))
    }

    fn barrier(&self) -> CoordFuture<'_, ()> {
        self.collective(Call::Barrier)
    }

    fn exclusive_prefix_sum(&self, value: u64) -> CoordFuture<'_, PrefixSum> {
        self.collective(|tx| Call::PrefixSum(value, tx))
    }

    fn broadcast(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<u8>> {
        self.collective(|tx| Call::Broadcast(bytes, tx))
    }
}

/// One atomic fetch-add of `amount` on counter `counter` at rank 0; the
/// value before the add. MPI's default error handler aborts the job on
/// failure, so a return code is not checked.
fn fetch_add(window: Window, counter: ffi::MPI_Aint, amount: u64) -> u64 {
    let mut before = 0u64;
    // SAFETY: `window` is live (see `Window`) with a lock_all epoch open on
    // this rank; origin and result point at u64s that outlive the call,
    // which completes at the flush before they go out of scope; the
    // datatype matches them; the displacement is inside rank 0's 2-u64
    // window (disp_unit 8).
    unsafe {
        ffi::MPI_Fetch_and_op(
            (&amount as *const u64).cast::<c_void>(),
            (&mut before as *mut u64).cast::<c_void>(),
            ffi::RSMPI_UINT64_T,
            0,
            counter,
            ffi::RSMPI_SUM,
            window.0,
        );
        ffi::MPI_Win_flush(0, window.0);
    }
    before
}

/// The MPI thread: initialises MPI and the window, serves calls in order,
/// then frees the window and finalises MPI when the call channel closes.
fn mpi_thread(
    path: CounterPath,
    started: mpsc::SyncSender<io::Result<Started>>,
    calls: mpsc::Receiver<Call>,
) {
    // Funnelled: only this thread calls MPI, so FUNNELED is all it needs,
    // and components that refuse THREAD_MULTIPLE (osc/pt2pt) still work.
    let wanted = match path {
        CounterPath::Auto => Threading::Multiple,
        CounterPath::Funnelled => Threading::Funneled,
    };
    let Some((universe, threading)) = mpi::initialize_with_threading(wanted) else {
        let _ = started.send(Err(io::Error::other(
            "mpi: MPI was already initialised in this process",
        )));
        return;
    };
    let world = universe.world();
    let rank = usize::try_from(world.rank()).unwrap_or(0);
    let ranks = usize::try_from(world.size()).unwrap_or(1);
    let window = match open_window(&world) {
        Ok(window) => window,
        Err(e) => {
            let _ = started.send(Err(e));
            drop(universe);
            return;
        }
    };
    let _ = started.send(Ok(Started {
        rank,
        ranks,
        threading,
        window,
    }));
    loop {
        match calls.recv_timeout(IDLE_PROGRESS) {
            Ok(call) => serve(&world, window, call),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if rank == 0 {
                    poke_progress(&world);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    close_window(window);
    drop(universe);
}

/// Rank 0's two zeroed counters, every rank inside a lock_all epoch. A
/// window MPI cannot make (every rank alike: the same osc component) is
/// an error that says what to try, not an abort.
fn open_window(world: &SimpleCommunicator) -> io::Result<Window> {
    let len_bytes: ffi::MPI_Aint = if world.rank() == 0 { 16 } else { 0 };
    // Every rank on one node: a shared-memory window (Open MPI's osc/sm),
    // whose fetch-and-op is an atomic in shared memory. MPI_Win_allocate
    // there gets osc/rdma over the shared-memory transport, which emulates
    // the atomic with a message rank 0 must progress: measured inside a
    // 4-rank merge on one node, 1.2 ms per reservation (rank 0's progress
    // poke) against 2.3 us with the shared window. Across nodes the
    // window is a network one (RDMA atomics where the fabric has them).
    let one_node = world.split_shared(world.rank()).size() == world.size();
    let mut base: *mut u64 = std::ptr::null_mut();
    let mut allocated = None;
    if one_node {
        // A component that cannot share memory (osc/pt2pt forced) refuses;
        // every rank alike, so all fall back together.
        allocated = Some(allocate_window(world, len_bytes, &mut base, true));
    }
    let (code, win) = match allocated {
        Some((code, win)) if code == ffi::MPI_SUCCESS as i32 => (code, win),
        _ => allocate_window(world, len_bytes, &mut base, false),
    };
    if code != ffi::MPI_SUCCESS as i32 {
        return Err(io::Error::other(format!(
            "mpi: allocating the window of the shared counters failed (MPI error {code}); Open MPI's \
             osc/pt2pt (networks without RDMA) refuses windows under MPI_THREAD_MULTIPLE: run \
             with IOK_MPI_COUNTERS=funnelled (iok merge --mpi) or CounterPath::Funnelled"
        )));
    }
    // SAFETY: `win` is the live window just made; lock_all opens this
    // rank's shared epoch on every target for the window's lifetime.
    unsafe {
        ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as i32, win);
    }
    if world.rank() == 0 {
        // SAFETY: on rank 0 `base` points at 16 bytes, 8-aligned (MPI
        // allocates at least word-aligned), that nothing else touches
        // before the barrier below; MPI_Win_sync makes the stores visible
        // to RMA in the separate memory model too.
        unsafe {
            base.write(0);
            base.add(1).write(0);
            ffi::MPI_Win_sync(win);
        }
    }
    world.barrier();
    Ok(Window(win))
}

/// Collective: a window of `len_bytes` on this rank, shared-memory
/// (`MPI_Win_allocate_shared`) or not (`MPI_Win_allocate`); the MPI return
/// code (errors return instead of aborting) and the window.
fn allocate_window(
    world: &SimpleCommunicator,
    len_bytes: ffi::MPI_Aint,
    base: &mut *mut u64,
    shared: bool,
) -> (i32, ffi::MPI_Win) {
    // SAFETY: collective over `world`, which every rank calls in the same
    // order (init, and the same `shared` everywhere); `base` receives a
    // pointer to `len_bytes` bytes owned by the window until MPI_Win_free;
    // `win` (starting as the null handle) receives the window. Errors
    // return (not abort) only around the allocation; the default handler
    // is restored before anything else.
    unsafe {
        let mut win = ffi::RSMPI_WIN_NULL;
        ffi::MPI_Comm_set_errhandler(world.as_raw(), ffi::RSMPI_ERRORS_RETURN);
        let out = (base as *mut *mut u64).cast::<c_void>();
        let code = if shared {
            ffi::MPI_Win_allocate_shared(
                len_bytes,
                8,
                ffi::RSMPI_INFO_NULL,
                world.as_raw(),
                out,
                &mut win,
            )
        } else {
            ffi::MPI_Win_allocate(
                len_bytes,
                8,
                ffi::RSMPI_INFO_NULL,
                world.as_raw(),
                out,
                &mut win,
            )
        };
        ffi::MPI_Comm_set_errhandler(world.as_raw(), ffi::RSMPI_ERRORS_ARE_FATAL);
        (code, win)
    }
}

fn close_window(window: Window) {
    let mut win = window.0;
    // SAFETY: collective; every rank's callers are gone (the call channel
    // closed when the coordinator was finalised or dropped), so no other
    // thread uses the handle any more.
    unsafe {
        ffi::MPI_Win_unlock_all(win);
        ffi::MPI_Win_free(&mut win);
    }
}

/// Drives MPI's progress engine once (a probe that matches nothing the
/// coordinator sends).
fn poke_progress(world: &SimpleCommunicator) {
    let mut flag = 0;
    let mut status = std::mem::MaybeUninit::<ffi::MPI_Status>::uninit();
    // SAFETY: `flag` and `status` are valid for writes for the call;
    // status is never read.
    unsafe {
        ffi::MPI_Iprobe(
            ffi::RSMPI_ANY_SOURCE,
            ffi::RSMPI_ANY_TAG,
            world.as_raw(),
            &mut flag,
            status.as_mut_ptr(),
        );
    }
}

fn serve(world: &SimpleCommunicator, window: Window, call: Call) {
    // A dropped reply receiver means the caller stopped waiting; the
    // collective still had to run, in order, for the other ranks.
    match call {
        Call::Reserve(counter, amount, tx) => {
            let _ = tx.try_send(Ok(fetch_add(window, counter, amount)));
        }
        Call::AllGather(bytes, tx) => {
            let _ = tx.try_send(all_gather(world, &bytes));
        }
        Call::Barrier(tx) => {
            wait_gently(world.immediate_barrier());
            let _ = tx.try_send(Ok(()));
        }
        Call::PrefixSum(value, tx) => {
            let mut values = vec![0u64; world.size() as usize];
            mpi::request::scope(|scope| {
                wait_gently(world.immediate_all_gather_into(scope, &value, &mut values[..]));
            });
            let rank = world.rank() as usize;
            let _ = tx.try_send(Ok(PrefixSum {
                before: values[..rank].iter().sum(),
                total: values.iter().sum(),
            }));
        }
        Call::Broadcast(mut bytes, tx) => {
            let root = world.process_at_rank(0);
            let mut len = bytes.len() as u64;
            mpi::request::scope(|scope| {
                wait_gently(root.immediate_broadcast_into(scope, &mut len));
            });
            bytes.resize(len as usize, 0);
            if len > 0 {
                // (An empty Vec's pointer would read as MPI_IN_PLACE.)
                mpi::request::scope(|scope| {
                    wait_gently(root.immediate_broadcast_into(scope, &mut bytes[..]));
                });
            }
            let _ = tx.try_send(Ok(bytes));
        }
    }
}

/// Completes `request`, testing it in a short spin, then with naps that
/// double up to [`NAP_MAX`]: a rank waiting for slower ones at a
/// collective does not burn the core they need (an oversubscribed node;
/// MPI's blocking collectives busy-poll). A collective finishes at most
/// one nap after the last rank arrives.
fn wait_gently<'a, D: ?Sized, S: mpi::request::Scope<'a>>(
    mut request: mpi::request::Request<'a, D, S>,
) {
    let mut nap = NAP_MIN;
    for tries in 0u32.. {
        match request.test() {
            Ok(_) => return,
            Err(pending) => request = pending,
        }
        if tries < SPIN_TESTS {
            std::hint::spin_loop();
        } else {
            thread::sleep(nap);
            nap = (nap * 2).min(NAP_MAX);
        }
    }
}

/// Every rank's bytes: the lengths (`MPI_Allgather`), then the bytes
/// (`MPI_Allgatherv`).
fn all_gather(world: &SimpleCommunicator, bytes: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let mut lens = vec![0u64; world.size() as usize];
    let len = bytes.len() as u64;
    mpi::request::scope(|scope| {
        wait_gently(world.immediate_all_gather_into(scope, &len, &mut lens[..]));
    });
    let total: u64 = lens.iter().sum();
    // Every rank sees the same lengths, so every rank fails here alike.
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mpi all_gather: {total} bytes from all ranks is past MPI's int counts"),
        )
    };
    if total > i32::MAX as u64 {
        return Err(too_big());
    }
    let counts: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let displs: Vec<i32> = counts
        .iter()
        .scan(0i32, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect();
    // Buffers are never empty: the dangling pointer of an empty Vec<u8> is
    // 0x1, which Open MPI takes for MPI_IN_PLACE (and refuses).
    let mut all = vec![0u8; (total as usize).max(1)];
    let placeholder = [0u8; 1];
    let send = if bytes.is_empty() {
        &placeholder[..0]
    } else {
        bytes
    };
    {
        let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
        mpi::request::scope(|scope| {
            wait_gently(world.immediate_all_gather_varcount_into(scope, send, &mut partition));
        });
    }
    Ok(displs
        .iter()
        .zip(&counts)
        .map(|(&d, &c)| all[d as usize..(d + c) as usize].to_vec())
        .collect())
}
