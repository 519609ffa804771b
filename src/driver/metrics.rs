//! Counting what a runtime's driver does: ops per kind, bytes, latency,
//! ops in flight, pool handoffs, pool saturation and completion-queue
//! overflows, read back as a [`RuntimeMetrics`] snapshot.
//!
//! Every op awaited on a runtime thread is wrapped in [`Counted`] when it is
//! submitted ([`super::Op`]); the wrapper records the op when its result
//! arrives (`complete`, or `discard` for an abandoned op), so no backend
//! file counts anything. Counters are relaxed atomics in a few cache-padded
//! shards, one per thread modulo the shard count (no lock per op); a
//! snapshot sums the shards. Latency is the runtime clock's time from
//! submission to result (virtual time under the simulator), kept in a
//! log2 histogram with two buckets per power of two.
//!
//! With the `tracing` feature the same wrapper carries the op's span
//! (`iok.op`, fields `op`, `fd`, `len`, `result`: the count, or minus the
//! errno), opened at submission and closed when the result arrives, on
//! every backend (ops of the sync fallback outside a runtime have none).
//!
//! Owns: the registry, the per-thread hooks drivers call
//! ([`note_pool_saturated`], [`note_cq_overflows`]) and the public snapshot
//! types. May use: `crate::op`, `crate::sys`.

use super::Backend;
use crate::op::{OpCode, Request};
use crate::sys::{Clock, Kernel, SysResult};
use std::cell::RefCell;
use std::fmt;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// The op kinds counted one by one (`OpCode::name`); anything else counts
/// as `other`. The bool says whether a successful result is a byte count.
const KINDS: [(&str, bool); 31] = [
    ("read", true),
    ("pread", true),
    ("readv", true),
    ("preadv", true),
    ("write", true),
    ("pwrite", true),
    ("writev", true),
    ("pwritev", true),
    ("recv", true),
    ("send", true),
    ("recvfrom", true),
    ("sendto", true),
    ("recvmsg", true),
    ("sendmsg", true),
    ("sendfile", true),
    ("open", false),
    ("close", false),
    ("fsync", false),
    ("fdatasync", false),
    ("ftruncate", false),
    ("fallocate", false),
    ("fadvise", false),
    ("fstat", false),
    ("fstatfs", false),
    ("lseek", false),
    ("rename", false),
    ("unlink", false),
    ("mkdir", false),
    ("accept", false),
    ("connect", false),
    ("shutdown", false),
];
const OTHER: usize = KINDS.len();
const KIND_SLOTS: usize = KINDS.len() + 1;

/// Latency buckets: two per power of two of nanoseconds, up to 2^40 ns
/// (about 18 minutes); the last bucket takes everything longer.
const OCTAVES: usize = 40;
const BUCKETS: usize = OCTAVES * 2;
const SHARDS_MAX: usize = 16;

fn kind_index(name: &'static str) -> usize {
    KINDS
        .iter()
        .position(|(kind, _)| *kind == name)
        .unwrap_or(OTHER)
}

fn bucket_of(ns: u64) -> usize {
    if ns < 2 {
        return 0;
    }
    let octave = 63 - ns.leading_zeros() as usize; // >= 1
    let half = ((ns >> (octave - 1)) & 1) as usize;
    (octave * 2 + half).min(BUCKETS - 1)
}

/// The largest latency (ns) bucket `index` holds.
fn bucket_upper_ns(index: usize) -> u64 {
    if index == 0 {
        return 1;
    }
    let octave = index / 2;
    let half = (index % 2) as u64;
    let base = 1u64 << octave;
    // Bucket (octave, half) holds [base + half*base/2, base + (half+1)*base/2).
    base + (half + 1) * (base / 2).max(1) - 1
}

struct KindCounters {
    ops: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// One thread group's counters, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    kinds: [KindCounters; KIND_SLOTS],
    submitted: AtomicU64,
    finished: AtomicU64,
    pool_handoffs: [AtomicU64; KIND_SLOTS],
    pool_saturated: AtomicU64,
    cq_overflows: AtomicU64,
    fast_path_hits: AtomicU64,
    fast_path_misses: AtomicU64,
    receive_streams: AtomicU64,
    stream_reads: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            kinds: std::array::from_fn(|_| KindCounters {
                ops: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                latency: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
            submitted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            pool_handoffs: std::array::from_fn(|_| AtomicU64::new(0)),
            pool_saturated: AtomicU64::new(0),
            cq_overflows: AtomicU64::new(0),
            fast_path_hits: AtomicU64::new(0),
            fast_path_misses: AtomicU64::new(0),
            receive_streams: AtomicU64::new(0),
            stream_reads: AtomicU64::new(0),
        }
    }
}

/// A runtime's counters (one per runtime, shared by its threads).
pub(crate) struct Registry {
    clock: Arc<dyn Clock>,
    shards: Box<[Shard]>,
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

/// Registries installed on threads ([`enter`] with one), in the whole
/// process. While it is 0, which is every run without metrics, no thread
/// counts ops and [`current`] answers without its thread-local look-up
/// (one per op). A thread counts its own registry before it installs it,
/// so its own ops always see a non-zero count.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Relaxed);
    static CURRENT: RefCell<Option<Arc<Registry>>> = const { RefCell::new(None) };
}

impl Registry {
    /// Counters for a runtime of `threads` threads, timed by `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>, threads: usize) -> Arc<Registry> {
        let shards = (threads + 1).clamp(1, SHARDS_MAX);
        Arc::new(Registry {
            clock,
            shards: (0..shards).map(|_| Shard::new()).collect(),
        })
    }

    fn shard(&self) -> &Shard {
        let index = THREAD_INDEX.with(|i| *i);
        &self.shards[index % self.shards.len()]
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sum the shards.
    pub(crate) fn snapshot(&self, report: &super::BackendReport) -> RuntimeMetrics {
        let sum = |get: &dyn Fn(&Shard) -> &AtomicU64| -> u64 {
            self.shards.iter().map(|s| get(s).load(Relaxed)).sum()
        };
        let mut ops = Vec::new();
        let mut pool_fallbacks = Vec::new();
        for kind in 0..KIND_SLOTS {
            let name = KINDS.get(kind).map_or("other", |(name, _)| name);
            let count = sum(&|s| &s.kinds[kind].ops);
            if count > 0 {
                ops.push(OpMetrics {
                    kind: name,
                    count,
                    errors: sum(&|s| &s.kinds[kind].errors),
                    bytes: sum(&|s| &s.kinds[kind].bytes),
                    latency: LatencyHistogram {
                        buckets: (0..BUCKETS)
                            .map(|b| sum(&|s| &s.kinds[kind].latency[b]))
                            .collect(),
                    },
                });
            }
            let handoffs = sum(&|s| &s.pool_handoffs[kind]);
            if handoffs > 0 {
                pool_fallbacks.push((name, handoffs));
            }
        }
        let submitted = sum(&|s| &s.submitted);
        let finished = sum(&|s| &s.finished);
        RuntimeMetrics {
            backend: report.selected,
            ops,
            in_flight: submitted.saturating_sub(finished),
            pool_fallbacks,
            fallback_reasons: report.pool_fallbacks.clone(),
            rejected_backends: report.rejected.clone(),
            cq_overflows: sum(&|s| &s.cq_overflows),
            pool_saturations: sum(&|s| &s.pool_saturated),
            fast_path_hits: sum(&|s| &s.fast_path_hits),
            fast_path_misses: sum(&|s| &s.fast_path_misses),
            receive_streams: sum(&|s| &s.receive_streams),
            stream_reads: sum(&|s| &s.stream_reads),
        }
    }
}

/// Make `registry` the one this thread's driver hooks count into for the
/// duration of `body` (nesting restores the previous one).
pub(crate) fn enter<R>(registry: Option<Arc<Registry>>, body: impl FnOnce() -> R) -> R {
    struct Reset {
        previous: Option<Arc<Registry>>,
        counted: bool,
    }
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.previous.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
            if self.counted {
                INSTALLED.fetch_sub(1, Relaxed);
            }
        }
    }
    let counted = registry.is_some();
    if counted {
        INSTALLED.fetch_add(1, Relaxed);
    }
    let previous = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), registry));
    let _reset = Reset { previous, counted };
    body()
}

/// The registry of the runtime this thread runs, if any. Every op asks:
/// the gate is inlined at the caller, the look at the thread is not.
#[inline]
pub(crate) fn current() -> Option<Arc<Registry>> {
    if INSTALLED.load(Relaxed) == 0 {
        return None;
    }
    current_installed()
}

#[inline(never)]
fn current_installed() -> Option<Arc<Registry>> {
    CURRENT.with(|c| c.borrow().clone())
}

fn with_current(f: impl FnOnce(&Registry)) {
    if INSTALLED.load(Relaxed) == 0 {
        return;
    }
    CURRENT.with(|c| {
        if let Some(registry) = &*c.borrow() {
            f(registry);
        }
    });
}

/// An op of kind `name` was handed to the pool by a ring or readiness
/// driver.
pub(crate) fn note_pool_handoff(name: &'static str) {
    with_current(|r| {
        r.shard().pool_handoffs[kind_index(name)].fetch_add(1, Relaxed);
    });
}

/// The offload pool refused a job (queue full): the op waits for a slot.
pub(crate) fn note_pool_saturated() {
    with_current(|r| {
        r.shard().pool_saturated.fetch_add(1, Relaxed);
    });
}

/// The completion queue overflowed `n` times (completions that did not
/// fit, kept by the ring).
/// A TCP connection's receive stream started (`net/receive.rs`).
pub(crate) fn note_receive_stream() {
    with_current(|r| {
        r.shard().receive_streams.fetch_add(1, Relaxed);
    });
}

/// A TCP read was served from its connection's receive stream (with no
/// op: it is not in the per-kind counts).
pub(crate) fn note_stream_read() {
    with_current(|r| {
        r.shard().stream_reads.fetch_add(1, Relaxed);
    });
}

pub(crate) fn note_cq_overflows(n: u64) {
    with_current(|r| {
        r.shard().cq_overflows.fetch_add(n, Relaxed);
    });
}

/// Wrap `op` for counting into `registry` (the op counts as in flight from
/// here) and, with the `tracing` feature, for its span.
pub(crate) fn counted<T: OpCode>(registry: Option<Arc<Registry>>, mut op: T) -> Counted<T> {
    let kind = kind_index(op.name());
    #[cfg(feature = "tracing")]
    let span = op_span(&mut op);
    #[cfg(not(feature = "tracing"))]
    let _ = &mut op;
    let start_ns = match &registry {
        Some(registry) => {
            registry.shard().submitted.fetch_add(1, Relaxed);
            registry.now_ns()
        }
        None => 0,
    };
    Counted {
        op,
        guard: Guard {
            registry,
            kind,
            start_ns,
            done: false,
            #[cfg(feature = "tracing")]
            span,
        },
    }
}

/// The `iok.op` span of `op`: its kind, fd and length (-1 and 0 when the
/// op has no portable form), and an empty `result` filled at completion.
#[cfg(feature = "tracing")]
fn op_span<T: OpCode>(op: &mut T) -> tracing::Span {
    let name = op.name();
    let (fd, len): (RawFd, usize) = match op.request() {
        Request::Read { fd, buf, .. } | Request::Recv { fd, buf, .. } => (fd, buf.len()),
        Request::Write { fd, buf, .. } | Request::Send { fd, buf, .. } => (fd, buf.len()),
        Request::ReadVectored { fd, bufs, .. } => (fd, bufs.iter().map(|b| b.len()).sum()),
        Request::WriteVectored { fd, bufs, .. } => (fd, bufs.iter().map(|b| b.len()).sum()),
        Request::Sync { fd, .. }
        | Request::Stat { fd, .. }
        | Request::Close { fd }
        | Request::Accept { fd, .. }
        | Request::Connect { fd, .. } => (fd, 0),
        Request::Truncate { fd, len_bytes } | Request::Allocate { fd, len_bytes, .. } => {
            (fd, usize::try_from(len_bytes).unwrap_or(usize::MAX))
        }
        _ => (-1, 0),
    };
    tracing::trace_span!("iok.op", op = name, fd, len, result = tracing::field::Empty)
}

/// Records its op once, when the result arrives or the op is dropped
/// unfinished (a job that never reached the pool).
pub(crate) struct Guard {
    registry: Option<Arc<Registry>>,
    kind: usize,
    start_ns: u64,
    done: bool,
    /// The op's span; closed when the guard drops.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Guard {
    fn finish(mut self, result: &SysResult<usize>) {
        self.done = true;
        #[cfg(feature = "tracing")]
        self.span.record(
            "result",
            match result {
                Ok(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Err(errno) => -i64::from(errno.0),
            },
        );
        let Some(registry) = &self.registry else {
            return;
        };
        let shard = registry.shard();
        let counters = &shard.kinds[self.kind];
        counters.ops.fetch_add(1, Relaxed);
        match result {
            Ok(n) if KINDS.get(self.kind).is_some_and(|(_, bytes)| *bytes) => {
                counters.bytes.fetch_add(*n as u64, Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                counters.errors.fetch_add(1, Relaxed);
            }
        }
        let elapsed = registry.now_ns().saturating_sub(self.start_ns);
        counters.latency[bucket_of(elapsed)].fetch_add(1, Relaxed);
        shard.finished.fetch_add(1, Relaxed);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let (false, Some(registry)) = (self.done, &self.registry) {
            registry.shard().finished.fetch_add(1, Relaxed);
        }
    }
}

/// An op that counts itself into a [`Registry`]; every driver runs it as
/// it would run the op.
pub(crate) struct Counted<T> {
    op: T,
    guard: Guard,
}

impl<T> Counted<T> {
    /// The inline fast path tried this op: `hit` when it completed it.
    pub(crate) fn note_fast_path(&self, hit: bool) {
        if let Some(registry) = &self.guard.registry {
            let shard = registry.shard();
            let counter = if hit {
                &shard.fast_path_hits
            } else {
                &shard.fast_path_misses
            };
            counter.fetch_add(1, Relaxed);
        }
    }
}

impl<T: OpCode> OpCode for Counted<T> {
    type Output = T::Output;

    fn name(&self) -> &'static str {
        self.op.name()
    }
    fn readiness(&self) -> Option<(RawFd, crate::sys::Interest)> {
        self.op.readiness()
    }
    fn eagain_wait(&self) -> Option<(RawFd, crate::sys::Interest)> {
        self.op.eagain_wait()
    }
    fn drop_offset(&mut self) -> bool {
        self.op.drop_offset()
    }
    fn reads_files(&self) -> bool {
        self.op.reads_files()
    }
    fn closes_fd(&self) -> Option<RawFd> {
        self.op.closes_fd()
    }
    fn request(&mut self) -> Request<'_> {
        self.op.request()
    }
    fn nowait(&mut self) -> Option<crate::op::Nowait> {
        self.op.nowait()
    }
    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.op.run_nowait(kernel)
    }
    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.op.run_entry(kernel)
    }
    fn takes_in_order(&self) -> Option<RawFd> {
        self.op.takes_in_order()
    }
    fn may_take_in_order(&self) -> Option<RawFd> {
        self.op.may_take_in_order()
    }
    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        self.op.take_leftover(kernel)
    }
    fn leaves_fd_drained(&self, result: &SysResult<usize>) -> bool {
        self.op.leaves_fd_drained(result)
    }
    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.op.run_blocking(kernel)
    }
    fn complete(self, result: SysResult<usize>) -> T::Output {
        let Counted { op, guard } = self;
        guard.finish(&result);
        op.complete(result)
    }
    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel) {
        let Counted { op, guard } = self;
        guard.finish(&result);
        op.discard(result, kernel);
    }
}

/// A latency histogram: two buckets per power of two of nanoseconds.
///
/// ```
/// use iokernel::runtime::{Backend, Runtime};
/// let rt = Runtime::builder().backend(Backend::ThreadPool).build().unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("h");
/// rt.block_on(async {
///     let file = iokernel::fs::File::create(&path).await.unwrap();
///     file.write_all_at(b"abc", 0).await.0.unwrap();
/// });
/// let metrics = rt.metrics();
/// let writes = metrics.op("pwrite").unwrap();
/// assert!(writes.latency.p50_ns() <= writes.latency.p99_ns());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
}

impl LatencyHistogram {
    /// Samples in the histogram.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The latency (ns) at or below which a fraction `q` (0..=1) of the
    /// samples fall, as the upper bound of their bucket (at most √2 too
    /// high); 0 for an empty histogram.
    pub fn percentile_ns(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_upper_ns(index);
            }
        }
        bucket_upper_ns(self.buckets.len() - 1)
    }

    /// The median latency in ns (see [`LatencyHistogram::percentile_ns`]).
    pub fn p50_ns(&self) -> u64 {
        self.percentile_ns(0.50)
    }

    /// The 99th-percentile latency in ns.
    pub fn p99_ns(&self) -> u64 {
        self.percentile_ns(0.99)
    }
}

/// Counters of one op kind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpMetrics {
    /// The syscall (`pread`, `pwrite`, `open`, ...; `other` for the rest).
    pub kind: &'static str,
    /// Ops whose result arrived (successes and errors).
    pub count: u64,
    /// Ops that ended with an errno.
    pub errors: u64,
    /// Bytes moved by the successful ones (data ops only).
    pub bytes: u64,
    /// Time from submission to result.
    pub latency: LatencyHistogram,
}

/// A snapshot of what a runtime's driver did: see
/// [`Runtime::metrics`](crate::runtime::Runtime::metrics).
///
/// Counts cover ops awaited on the runtime's threads (the sync fallback
/// outside a runtime counts nowhere). `fast_path_hits` and
/// `fast_path_misses` count the inline (`RWF_NOWAIT`) attempts of file
/// reads and buffered writes (`crate::driver`'s inline path): an op
/// completed on the calling thread, or tried and then handed on; ops
/// not tried (backing off, too big) count in neither.
///
/// ```
/// use iokernel::runtime::{Backend, Runtime};
/// let rt = Runtime::builder().backend(Backend::ThreadPool).build().unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m");
/// rt.block_on(async {
///     let file = iokernel::fs::File::create(&path).await.unwrap();
///     file.write_all_at(b"hello", 0).await.0.unwrap();
/// });
/// let metrics = rt.metrics();
/// assert_eq!(metrics.op("pwrite").unwrap().bytes, 5);
/// assert_eq!(metrics.in_flight, 0);
/// assert!(metrics.to_json().starts_with('{'));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// The backend in use.
    pub backend: Backend,
    /// Per op kind, only kinds that ran, in a fixed order.
    pub ops: Vec<OpMetrics>,
    /// Ops submitted whose result has not arrived yet.
    pub in_flight: u64,
    /// Ops a ring or readiness driver handed to the worker pool, per kind.
    pub pool_fallbacks: Vec<(&'static str, u64)>,
    /// Why the backend hands ops to the pool (its report's notes).
    pub fallback_reasons: Vec<String>,
    /// Backends `Auto` rejected before the one in use, and why.
    pub rejected_backends: Vec<(Backend, String)>,
    /// Completion-queue overflows: completions the io_uring CQ had no room for
    /// (the simulated ring counts each one; the kernel's ring each time its
    /// overflow flag is seen).
    pub cq_overflows: u64,
    /// Times the offload pool's queue was full (the op then waited).
    pub pool_saturations: u64,
    /// Ops the inline fast path completed on the calling thread (a
    /// page-cache hit: no ring entry, no pool handoff).
    pub fast_path_hits: u64,
    /// Ops the inline fast path tried and handed on (not cached, not
    /// supported, or short).
    pub fast_path_misses: u64,
    /// Receive streams started: on io_uring, a TCP connection's bytes are
    /// received ahead of its reads by one multishot recv (see
    /// `TcpStream::read`); one starts again after it stopped.
    pub receive_streams: u64,
    /// TCP reads served from a receive stream: no op, so not in `ops`.
    pub stream_reads: u64,
}

impl RuntimeMetrics {
    /// The counters of op kind `kind` (`"pread"`), if any ran.
    pub fn op(&self, kind: &str) -> Option<&OpMetrics> {
        self.ops.iter().find(|op| op.kind == kind)
    }

    /// Ops finished, over all kinds.
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().map(|op| op.count).sum()
    }

    /// Ops that ended with an errno, over all kinds.
    pub fn total_errors(&self) -> u64 {
        self.ops.iter().map(|op| op.errors).sum()
    }

    /// Bytes moved, over all kinds.
    pub fn total_bytes(&self) -> u64 {
        self.ops.iter().map(|op| op.bytes).sum()
    }

    /// One JSON object with stable field names: `backend`, `in_flight`,
    /// `cq_overflows`, `pool_saturations`, `fast_path_hits`,
    /// `fast_path_misses`, `receive_streams`, `stream_reads`, `ops` (an array of `{kind, count, errors, bytes,
    /// p50_ns, p99_ns}`), `pool_fallbacks` (`{kind: count}`),
    /// `fallback_reasons` (strings) and `rejected_backends`
    /// (`{backend: why}`).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        out += &format!(
            "\"backend\":{},\"in_flight\":{},\"cq_overflows\":{},\"pool_saturations\":{},\
             \"fast_path_hits\":{},\"fast_path_misses\":{},\"receive_streams\":{},\
             \"stream_reads\":{},\"ops\":[",
            json_string(self.backend.name()),
            self.in_flight,
            self.cq_overflows,
            self.pool_saturations,
            self.fast_path_hits,
            self.fast_path_misses,
            self.receive_streams,
            self.stream_reads
        );
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out += &format!(
                "{{\"kind\":{},\"count\":{},\"errors\":{},\"bytes\":{},\"p50_ns\":{},\"p99_ns\":{}}}",
                json_string(op.kind),
                op.count,
                op.errors,
                op.bytes,
                op.latency.p50_ns(),
                op.latency.p99_ns()
            );
        }
        out += "],\"pool_fallbacks\":{";
        let fallbacks: Vec<String> = self
            .pool_fallbacks
            .iter()
            .map(|(kind, n)| format!("{}:{n}", json_string(kind)))
            .collect();
        out += &fallbacks.join(",");
        out += "},\"fallback_reasons\":[";
        let reasons: Vec<String> = self
            .fallback_reasons
            .iter()
            .map(|r| json_string(r))
            .collect();
        out += &reasons.join(",");
        out += "],\"rejected_backends\":{";
        let rejected: Vec<String> = self
            .rejected_backends
            .iter()
            .map(|(b, why)| format!("{}:{}", json_string(b.name()), json_string(why)))
            .collect();
        out += &rejected.join(",");
        out += "}}";
        out
    }
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            '\t' => out += "\\t",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{} us", ns / 1_000),
        _ => format!("{} ms", ns / 1_000_000),
    }
}

impl fmt::Display for RuntimeMetrics {
    /// A human table: one line per op kind, then the runtime's counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>10} {:>8} {:>14} {:>10} {:>10}",
            "op", "count", "errors", "bytes", "p50", "p99"
        )?;
        for op in &self.ops {
            writeln!(
                f,
                "{:<10} {:>10} {:>8} {:>14} {:>10} {:>10}",
                op.kind,
                op.count,
                op.errors,
                op.bytes,
                human_ns(op.latency.p50_ns()),
                human_ns(op.latency.p99_ns())
            )?;
        }
        writeln!(
            f,
            "backend {}; in flight {}; cq overflows {}; pool saturated {}; fast path {} hits / {} misses",
            self.backend,
            self.in_flight,
            self.cq_overflows,
            self.pool_saturations,
            self.fast_path_hits,
            self.fast_path_misses
        )?;
        if self.receive_streams > 0 {
            writeln!(
                f,
                "receive streams {}; reads served from them {}",
                self.receive_streams, self.stream_reads
            )?;
        }
        if !self.pool_fallbacks.is_empty() {
            let list: Vec<String> = self
                .pool_fallbacks
                .iter()
                .map(|(kind, n)| format!("{kind} x{n}"))
                .collect();
            writeln!(f, "handed to the pool: {}", list.join(", "))?;
        }
        for reason in &self.fallback_reasons {
            writeln!(f, "backend note: {reason}")?;
        }
        for (backend, why) in &self.rejected_backends {
            writeln!(f, "rejected {backend}: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_bound_their_samples() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            100,
            1_000,
            1_000_000,
            u64::MAX / 2,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last, "bucket of {ns} went down");
            last = b;
            if b < BUCKETS - 1 {
                assert!(bucket_upper_ns(b) >= ns, "{ns} above its bucket's bound");
            }
        }
        for b in 3..BUCKETS {
            assert!(bucket_upper_ns(b) > bucket_upper_ns(b - 1));
        }
    }

    #[test]
    fn percentiles_of_a_histogram() {
        let mut buckets = vec![0; BUCKETS];
        buckets[bucket_of(1_000)] = 99;
        buckets[bucket_of(1_000_000)] = 1;
        let h = LatencyHistogram { buckets };
        assert!(h.p50_ns() >= 1_000 && h.p50_ns() < 1_500);
        assert!(h.p99_ns() < 1_500);
        assert!(h.percentile_ns(1.0) >= 1_000_000);
        assert_eq!(
            LatencyHistogram {
                buckets: vec![0; 4]
            }
            .p99_ns(),
            0
        );
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
