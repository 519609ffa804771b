//! State every part of one simulated run shares: options, the random
//! stream, virtual time, the trace hash and the fault counters.
//!
//! A run is single-threaded (one runtime worker; offloaded jobs run on it
//! when the scheduler picks them), so the locks here are never contended;
//! they exist to make the types `Sync` for the seam traits.

use super::options::{OpClass, SimOptions};
use super::rng::SimRng;
use crate::sys::Errno;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How often each kind of injected behaviour happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Injected errnos by class and errno name.
    pub injected: BTreeMap<(OpClass, &'static str), u64>,
    /// Reads/recvs cut short.
    pub short_reads: u64,
    /// Writes/sends cut short.
    pub short_writes: u64,
    /// Injected `EINTR`s retried inside the seam.
    pub eintr_retried: u64,
    /// `ENOSPC` because the file system was full (not injected at random).
    pub enospc_full: u64,
    /// Failed fsyncs that dropped dirty data.
    pub fsync_dropped_data: u64,
    /// Completions delivered out of submission order.
    pub reordered_completions: u64,
    /// Power losses.
    pub crashes: u64,
    /// Non-durable writes torn (partly kept) by a crash.
    pub torn_writes: u64,
    /// Syscalls executed.
    pub syscalls: u64,
    /// Scheduler steps taken: turns of the run loop, idle or not.
    pub steps: u64,
    /// Entries the simulated ring completed (ops, polls, cancelled ones).
    pub ring_completions: u64,
    /// Pushes that found the simulated ring's submission queue full.
    pub ring_sq_full: u64,
    /// Ring submits refused with `EBUSY`.
    pub ring_busy: u64,
    /// Ring completions that went to the overflow list.
    pub ring_cq_overflows: u64,
    /// Async cancels the simulated ring processed.
    pub ring_cancels: u64,
    /// Chunks receive streams on the simulated ring handed to their sinks.
    pub ring_stream_chunks: u64,
    /// Receive streams that ended (stopped, cancelled, end of stream or
    /// an error).
    pub ring_stream_ends: u64,
    /// Readiness events a simulated poller reported for an fd that was
    /// not ready.
    pub spurious_readiness: u64,
    /// Ready events a simulated poller held back to a later wait.
    pub delayed_readiness: u64,
    /// Poller registrations failed by injection (`ENOMEM`/`ENOSPC`).
    pub poller_register_failures: u64,
    /// Nowait reads and writes served from the page cache (any count > 0).
    pub nowait_hits: u64,
    /// Nowait reads and writes that found their first page uncached (`EAGAIN`).
    pub nowait_misses: u64,
    /// Files whose cached pages were evicted by the seeded memory pressure.
    pub cache_evictions: u64,
}

impl SimStats {
    /// Add `other` into `self` (for sweep totals).
    pub fn merge(&mut self, other: &SimStats) {
        for (key, n) in &other.injected {
            *self.injected.entry(*key).or_default() += n;
        }
        self.short_reads += other.short_reads;
        self.short_writes += other.short_writes;
        self.eintr_retried += other.eintr_retried;
        self.enospc_full += other.enospc_full;
        self.fsync_dropped_data += other.fsync_dropped_data;
        self.reordered_completions += other.reordered_completions;
        self.crashes += other.crashes;
        self.torn_writes += other.torn_writes;
        self.syscalls += other.syscalls;
        self.steps += other.steps;
        self.ring_completions += other.ring_completions;
        self.ring_sq_full += other.ring_sq_full;
        self.ring_busy += other.ring_busy;
        self.ring_cq_overflows += other.ring_cq_overflows;
        self.ring_cancels += other.ring_cancels;
        self.ring_stream_chunks += other.ring_stream_chunks;
        self.ring_stream_ends += other.ring_stream_ends;
        self.spurious_readiness += other.spurious_readiness;
        self.delayed_readiness += other.delayed_readiness;
        self.poller_register_failures += other.poller_register_failures;
        self.nowait_hits += other.nowait_hits;
        self.nowait_misses += other.nowait_misses;
        self.cache_evictions += other.cache_evictions;
    }
}

/// FNV-1a over every recorded event: equal hashes mean equal runs.
#[derive(Clone, Copy, Debug)]
struct TraceHash(u64);

impl TraceHash {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
        // Separate events so ("ab","c") differs from ("a","bc").
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(Self::PRIME);
    }
}

/// Shared state of one simulated run.
pub struct SimCore {
    options: SimOptions,
    rng: Mutex<SimRng>,
    now: Mutex<Duration>,
    trace: Mutex<TraceHash>,
    stats: Mutex<SimStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single-threaded use; a panic mid-update is already a failed run.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimCore {
    /// Fresh state for `options` (not validated here).
    pub fn new(options: SimOptions) -> SimCore {
        let rng = SimRng::new(options.seed);
        SimCore {
            options,
            rng: Mutex::new(rng),
            now: Mutex::new(Duration::ZERO),
            trace: Mutex::new(TraceHash(TraceHash::OFFSET)),
            stats: Mutex::new(SimStats::default()),
        }
    }

    /// The run's options.
    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    /// Draw from the run's random stream.
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut SimRng) -> R) -> R {
        f(&mut lock(&self.rng))
    }

    /// Virtual time since the run started.
    pub fn now(&self) -> Duration {
        *lock(&self.now)
    }

    /// Move virtual time forward to `t` (never backwards).
    pub fn advance_to(&self, t: Duration) {
        let mut now = lock(&self.now);
        if t > *now {
            *now = t;
        }
    }

    /// Record an event in the trace hash.
    pub fn trace(&self, event: &[u8]) {
        lock(&self.trace).feed(event);
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> u64 {
        lock(&self.trace).0
    }

    /// Update the counters.
    pub fn count(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.stats));
    }

    /// Which of the `ready` completions (indices, with their submission
    /// order from `seq_of`) completes next: the oldest, or a seed-chosen one
    /// when reordering is on (counted when it is not the oldest). `None`
    /// when nothing is ready.
    pub(crate) fn pick_completion(
        &self,
        ready: &[usize],
        seq_of: impl Fn(usize) -> u64,
    ) -> Option<usize> {
        let oldest = *ready.iter().min_by_key(|&&i| seq_of(i))?;
        let chosen = if self.options.reorder_completions {
            ready[self.with_rng(|rng| rng.below(ready.len() as u64)) as usize]
        } else {
            oldest
        };
        if chosen != oldest {
            self.count(|s| s.reordered_completions += 1);
        }
        Some(chosen)
    }

    /// Count one injected errno.
    pub fn count_injected(&self, class: OpClass, errno: Errno) {
        let name = errno.name().unwrap_or("errno");
        self.count(|s| *s.injected.entry((class, name)).or_default() += 1);
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SimStats {
        lock(&self.stats).clone()
    }

    /// Draw an injected fault for a call of `class`: `Some(errno)` when the
    /// call must fail. Counted and traced.
    pub fn draw_fault(&self, class: OpClass) -> Option<Errno> {
        let faults = self.options.faults_of(class);
        let errno = self.with_rng(|rng| {
            if rng.chance(faults.probability) {
                rng.pick(&faults.errnos).copied()
            } else {
                None
            }
        })?;
        self.count_injected(class, errno);
        Some(errno)
    }

    /// Latency for a call of `class`, drawn from its range.
    pub fn draw_latency(&self, class: OpClass) -> Duration {
        let latency = self.options.latency_of(class);
        let min = latency.min.as_nanos() as u64;
        let max = (2 * latency.mean.as_nanos() as u64)
            .saturating_sub(min)
            .max(min);
        Duration::from_nanos(self.with_rng(|rng| rng.between(min, max)))
    }

    /// How many of `len` bytes a read/write moves: `len`, or (short I/O) a
    /// random count in `1..len`.
    pub fn draw_io_len(&self, len: usize) -> usize {
        if len <= 1 {
            return len;
        }
        let p = self.options.short_io_probability;
        self.with_rng(|rng| {
            if rng.chance(p) {
                1 + rng.below(len as u64 - 1) as usize
            } else {
                len
            }
        })
    }
}
