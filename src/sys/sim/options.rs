//! `SimOptions`: everything a simulated run depends on besides the workload.

use crate::sys::fsinfo::EXT4_MAGIC;
use crate::sys::Errno;
use std::time::Duration;

/// Groups of syscalls that share fault and latency settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpClass {
    /// `open`, `openat`, `mkdir`.
    Open,
    /// `read`, `pread`, `readv`, `preadv`.
    Read,
    /// `write`, `pwrite`, `writev`, `pwritev`, `ftruncate`, `fallocate`.
    Write,
    /// `fsync`, `fdatasync`.
    Sync,
    /// `fstat`, `fstatfs`, `lseek`, `rename`, `unlink`, xattrs.
    Metadata,
    /// `socket`, `bind`, `listen`, `accept`, `connect`, `shutdown`.
    SocketSetup,
    /// `recv`.
    SocketRead,
    /// `send`, `sendfile`, `splice`.
    SocketWrite,
}

impl OpClass {
    /// Every class, in a fixed order.
    pub const ALL: [OpClass; 8] = [
        OpClass::Open,
        OpClass::Read,
        OpClass::Write,
        OpClass::Sync,
        OpClass::Metadata,
        OpClass::SocketSetup,
        OpClass::SocketRead,
        OpClass::SocketWrite,
    ];

    /// Stable index into per-class tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Open => "open",
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Sync => "sync",
            OpClass::Metadata => "metadata",
            OpClass::SocketSetup => "socket-setup",
            OpClass::SocketRead => "socket-read",
            OpClass::SocketWrite => "socket-write",
        }
    }

    /// The errnos the simulator may inject for this class: the ones Linux
    /// documents for these calls under resource pressure or device failure.
    /// `EINTR` is legal everywhere (the seam retries it, so callers never
    /// see it); `EAGAIN` only on sockets.
    pub fn legal_errnos(self) -> &'static [Errno] {
        match self {
            OpClass::Open => &[
                Errno::EINTR,
                Errno::EIO,
                Errno::ENOSPC,
                Errno::EDQUOT,
                Errno::EMFILE,
                Errno::ENFILE,
                Errno::ENOMEM,
                Errno::EACCES,
            ],
            OpClass::Read => &[Errno::EINTR, Errno::EIO, Errno::ENOMEM],
            OpClass::Write => &[
                Errno::EINTR,
                Errno::EIO,
                Errno::ENOSPC,
                Errno::EDQUOT,
                Errno::EFBIG,
            ],
            OpClass::Sync => &[Errno::EINTR, Errno::EIO, Errno::ENOSPC, Errno::EDQUOT],
            OpClass::Metadata => &[
                Errno::EINTR,
                Errno::EIO,
                Errno::ENOMEM,
                Errno::ENOSPC,
                Errno::EDQUOT,
            ],
            OpClass::SocketSetup => &[
                Errno::EINTR,
                Errno::EAGAIN,
                Errno::ECONNABORTED,
                Errno::EMFILE,
                Errno::ENOMEM,
            ],
            OpClass::SocketRead => &[
                Errno::EINTR,
                Errno::EAGAIN,
                Errno::ECONNRESET,
                Errno::ENOMEM,
            ],
            OpClass::SocketWrite => &[
                Errno::EINTR,
                Errno::EAGAIN,
                Errno::ECONNRESET,
                Errno::EPIPE,
                Errno::ENOMEM,
            ],
        }
    }
}

/// Fault settings of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFaults {
    /// Probability that a call of this class fails with an injected errno.
    pub probability: f64,
    /// The errnos to choose from (each must be in [`OpClass::legal_errnos`]).
    pub errnos: Vec<Errno>,
}

/// Latency of one class: uniform between `min` and `2 * mean - min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Shortest completion time.
    pub min: Duration,
    /// Mean completion time.
    pub mean: Duration,
}

/// What power loss does to data that was never made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashModel {
    /// Every non-durable write is lost.
    LoseUnsynced,
    /// Each non-durable write survives in part: a random prefix, cut at
    /// `granularity_bytes` (512 or 4096), reaches the disk.
    Torn {
        /// Sector or page size the tear happens at.
        granularity_bytes: u64,
    },
}

/// Which driver runs a simulated runtime's ops. Each maps to a
/// `runtime::Backend` that `sim::run` selects on the simulated host the
/// way a real runtime selects on the real one: `Pool` is
/// `Backend::ThreadPool`, `Ring` is `Backend::IoUring`, `Auto` is
/// `Backend::Auto` (the simulated ring, else the pool), and the two
/// poller variants are `Backend::Epoll`/`Backend::Kqueue` with the
/// simulated poller given that semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimDriver {
    /// Every op a job on the simulated offload (the thread-pool driver).
    #[default]
    Pool,
    /// The io_uring driver over the simulated ring ([`RingOptions`]); a
    /// ring that cannot be set up makes the run fail with
    /// `SimError::BackendUnavailable`.
    Ring,
    /// The simulated ring if it can be set up (with every required
    /// opcode), else the pool, with the reason in the backend report.
    Auto,
    /// The readiness driver over the simulator's epoll-semantics poller
    /// (sockets and pipes wait for readiness, files go to the offload).
    EpollSemantics,
    /// The readiness driver over the simulator's kqueue-semantics poller.
    KqueueSemantics,
}

impl SimDriver {
    /// Name for reports and replay lines.
    ///
    /// ```
    /// use iokernel::sim::SimDriver;
    /// assert_eq!(SimDriver::KqueueSemantics.name(), "kqueue-semantics");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            SimDriver::Pool => "pool",
            SimDriver::Ring => "ring",
            SimDriver::Auto => "auto",
            SimDriver::EpollSemantics => "epoll-semantics",
            SimDriver::KqueueSemantics => "kqueue-semantics",
        }
    }

    /// The errnos a failed registration may inject under this driver's
    /// poller: `ENOMEM` and `ENOSPC` (`max_user_watches`) for
    /// `epoll_ctl(ADD)`, `ENOMEM` for a `kevent` `EV_ADD`; none for the
    /// drivers without a poller.
    pub fn register_errnos(self) -> &'static [Errno] {
        match self {
            SimDriver::Pool | SimDriver::Ring | SimDriver::Auto => &[],
            SimDriver::EpollSemantics => &[Errno::ENOMEM, Errno::ENOSPC],
            SimDriver::KqueueSemantics => &[Errno::ENOMEM],
        }
    }
}

/// The simulated io_uring (used by [`SimDriver::Ring`] and [`SimDriver::Auto`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RingOptions {
    /// Submission-queue slots (at most the driver's ring size); a small
    /// queue fills up and makes the driver submit and retry.
    pub sq_entries: u32,
    /// Completion-queue slots; completions past them wait in an overflow
    /// list (never dropped) and make submits fail with `EBUSY` meanwhile.
    pub cq_entries: u32,
    /// Probability that a submit fails with `EBUSY` anyway.
    pub busy_probability: f64,
    /// Make ring setup fail with this errno: `EPERM` (seccomp or
    /// `kernel.io_uring_disabled`), `ENOSYS` (no io_uring) or `ENOMEM`
    /// (`RLIMIT_MEMLOCK`).
    pub setup_errno: Option<Errno>,
    /// io_uring opcodes (`IORING_OP_*` numbers) the ring's probe lacks; ops
    /// using them run on the pool.
    pub missing_opcodes: Vec<u8>,
}

impl Default for RingOptions {
    /// A healthy ring as large as the driver asks for.
    fn default() -> RingOptions {
        RingOptions {
            sq_entries: 256,
            cq_entries: 512,
            busy_probability: 0.0,
            setup_errno: None,
            missing_opcodes: Vec::new(),
        }
    }
}

/// Faults of the simulated pollers (used by the readiness drivers only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollerFaults {
    /// Probability, per armed registration and wait, of an event reported
    /// while the fd is not ready (the op's retry then sees `EAGAIN`).
    pub spurious_probability: f64,
    /// Probability, per ready registration and wait, that its event is held
    /// back to a later wait (always before virtual time moves on); when
    /// positive, each wait's events are also delivered in seed order.
    pub delay_probability: f64,
    /// Probability that adding a registration fails with one of the
    /// driver's [`SimDriver::register_errnos`].
    pub register_probability: f64,
}

/// What loopback UDP does to datagrams (Unix datagrams are reliable, as
/// Linux's are). Each probability is drawn per datagram sent.
///
/// ```
/// use iokernel::sim::{DatagramFaults, SimOptions};
/// let mut options = SimOptions::new(7);
/// assert_eq!(options.datagram, DatagramFaults::default()); // exact by default
/// options.datagram = DatagramFaults {
///     loss_probability: 0.1,
///     duplicate_probability: 0.05,
///     reorder_probability: 0.2,
///     reorder_depth_max: 3,
/// };
/// options.validate().unwrap();
/// assert!(SimOptions::with_faults(7, 0.02).datagram.loss_probability > 0.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatagramFaults {
    /// The datagram is dropped (the send still succeeds).
    pub loss_probability: f64,
    /// The datagram is queued twice.
    pub duplicate_probability: f64,
    /// The datagram overtakes up to [`DatagramFaults::reorder_depth_max`]
    /// datagrams already queued at the receiver.
    pub reorder_probability: f64,
    /// How many queued datagrams a reordered one may overtake.
    pub reorder_depth_max: usize,
}

/// A simulated run's configuration. Faults are off in [`SimOptions::new`]
/// (for parity with the real kernel) and on in [`SimOptions::with_faults`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// Seed of the run's only random stream.
    pub seed: u64,
    /// Per-class faults, indexed by [`OpClass::index`].
    pub faults: [ClassFaults; 8],
    /// Per-class latency, indexed by [`OpClass::index`].
    pub latency: [Latency; 8],
    /// Probability that a read, write, recv or send moves fewer bytes than
    /// asked (at least one); the untouched tail stays as it was.
    pub short_io_probability: f64,
    /// Complete ready offloaded jobs in a seed-chosen order (else FIFO).
    pub reorder_completions: bool,
    /// Bytes of file data the file system holds before `ENOSPC`.
    pub capacity_bytes: u64,
    /// `f_type` that `fstatfs` reports (e.g. `0x0BD00BD0` for Lustre).
    pub fs_magic: i64,
    /// `st_blksize`/`f_bsize` the file system reports.
    pub block_size_bytes: u64,
    /// What `crash()` does to non-durable data.
    pub crash: CrashModel,
    /// Scheduler steps (run-loop turns, idle or not) after which a run is
    /// declared a livelock and fails as stuck.
    pub max_steps: u64,
    /// Which driver runs the run's ops.
    pub driver: SimDriver,
    /// The simulated io_uring's settings.
    pub ring: RingOptions,
    /// Faults of the readiness drivers' pollers.
    pub poller_faults: PollerFaults,
    /// Loss, duplication and reordering of loopback UDP datagrams.
    pub datagram: DatagramFaults,
    /// The page cache nowait reads and writes see.
    pub page_cache: PageCacheOptions,
}

/// The simulated page cache (see `fs/cache.rs`): which nowait
/// (`RWF_NOWAIT`) calls hit. Pages are cached by reads and writes and
/// dropped by power loss, `fadvise(DONTNEED)` and eviction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PageCacheOptions {
    /// Probability that, just before a nowait call, every cached page of
    /// its file is evicted (memory pressure), so the call misses.
    pub evict_probability: f64,
    /// Whether buffered nowait writes are supported (xfs, btrfs). When
    /// false they fail with `EOPNOTSUPP`, as ext4's do. A supported nowait
    /// write succeeds only when every page it touches is cached and it
    /// does not extend the file (no block allocation); else `EAGAIN`.
    pub nowait_writes: bool,
}

impl SimOptions {
    /// Faults off, zero latency, FIFO completions: the sim behaves like an
    /// idle, healthy Linux box (used for sim-versus-real parity).
    pub fn new(seed: u64) -> SimOptions {
        let none = ClassFaults {
            probability: 0.0,
            errnos: Vec::new(),
        };
        let zero = Latency {
            min: Duration::ZERO,
            mean: Duration::ZERO,
        };
        SimOptions {
            seed,
            faults: std::array::from_fn(|_| none.clone()),
            latency: [zero; 8],
            short_io_probability: 0.0,
            reorder_completions: false,
            capacity_bytes: 1 << 30,
            fs_magic: i64::from(EXT4_MAGIC),
            block_size_bytes: 4096,
            crash: CrashModel::LoseUnsynced,
            max_steps: 10_000_000,
            driver: SimDriver::Pool,
            ring: RingOptions::default(),
            poller_faults: PollerFaults::default(),
            datagram: DatagramFaults::default(),
            page_cache: PageCacheOptions::default(),
        }
    }

    /// Every fault class on at `probability`, with all its legal errnos;
    /// short I/O, latency and reordering on; torn writes at 512 bytes;
    /// page-cache eviction before nowait calls at five times it (at most
    /// 1), nowait buffered writes supported on every other group of four seeds;
    /// for runs on the simulated ring, 4-slot queues (so the submission
    /// queue fills and the completion queue overflows) with `EBUSY` from
    /// submit at `probability`; for the readiness drivers, poller
    /// registration errors at `probability` and spurious and delayed
    /// readiness events at five times it (at most 1); loopback UDP loses,
    /// duplicates and reorders datagrams at twice it (at most 1).
    pub fn with_faults(seed: u64, probability: f64) -> SimOptions {
        let mut options = SimOptions::new(seed);
        for class in OpClass::ALL {
            options.faults[class.index()] = ClassFaults {
                probability,
                errnos: class.legal_errnos().to_vec(),
            };
            options.latency[class.index()] = Latency {
                min: Duration::from_micros(5),
                mean: Duration::from_micros(50),
            };
        }
        options.short_io_probability = probability;
        options.reorder_completions = true;
        // A run waits for readiness far less often than it makes syscalls,
        // so the poller's event faults are drawn at five times the rate.
        let event_probability = (5.0 * probability).min(1.0);
        options.poller_faults = PollerFaults {
            spurious_probability: event_probability,
            delay_probability: event_probability,
            register_probability: probability,
        };
        options.crash = CrashModel::Torn {
            granularity_bytes: 512,
        };
        // UDP promises nothing: lose, duplicate and reorder at twice the
        // rate (at most 1), as datagrams are rarer than syscalls.
        let datagram_probability = (2.0 * probability).min(1.0);
        options.datagram = DatagramFaults {
            loss_probability: datagram_probability,
            duplicate_probability: datagram_probability,
            reorder_probability: datagram_probability,
            reorder_depth_max: 4,
        };
        // Evict at five times the rate so both nowait outcomes are common;
        // half the seeds model a file system with nowait buffered writes.
        options.page_cache = PageCacheOptions {
            evict_probability: (5.0 * probability).min(1.0),
            nowait_writes: (seed >> 2) % 2 == 0,
        };
        options.ring = RingOptions {
            sq_entries: 4,
            cq_entries: 4,
            busy_probability: probability,
            ..RingOptions::default()
        };
        options
    }

    /// Check every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        for class in OpClass::ALL {
            let faults = &self.faults[class.index()];
            if !(0.0..=1.0).contains(&faults.probability) {
                return Err(format!(
                    "{} fault probability {} is not in 0..=1",
                    class.name(),
                    faults.probability
                ));
            }
            if faults.probability > 0.0 && faults.errnos.is_empty() {
                return Err(format!("{} faults are on but list no errno", class.name()));
            }
            if let Some(bad) = faults
                .errnos
                .iter()
                .find(|e| !class.legal_errnos().contains(e))
            {
                return Err(format!(
                    "{bad:?} is not a legal fault for {} calls",
                    class.name()
                ));
            }
            let latency = self.latency[class.index()];
            if latency.mean < latency.min {
                return Err(format!("{} latency mean is below its min", class.name()));
            }
        }
        let poller = &self.poller_faults;
        for (name, p) in [
            ("spurious readiness", poller.spurious_probability),
            ("delayed readiness", poller.delay_probability),
            ("poller registration", poller.register_probability),
            ("datagram loss", self.datagram.loss_probability),
            ("datagram duplication", self.datagram.duplicate_probability),
            ("datagram reordering", self.datagram.reorder_probability),
            ("page cache eviction", self.page_cache.evict_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} probability {p} is not in 0..=1"));
            }
        }
        if !(0.0..=1.0).contains(&self.short_io_probability) {
            return Err("short I/O probability is not in 0..=1".to_string());
        }
        if let CrashModel::Torn { granularity_bytes } = self.crash {
            if granularity_bytes != 512 && granularity_bytes != 4096 {
                return Err(format!(
                    "torn-write granularity {granularity_bytes} must be 512 or 4096"
                ));
            }
        }
        self.ring.validate()?;
        if self.block_size_bytes == 0 || !self.block_size_bytes.is_power_of_two() {
            return Err(format!(
                "block size {} must be a power of two",
                self.block_size_bytes
            ));
        }
        Ok(())
    }

    /// Faults of `class`.
    pub fn faults_of(&self, class: OpClass) -> &ClassFaults {
        &self.faults[class.index()]
    }

    /// Latency of `class`.
    pub fn latency_of(&self, class: OpClass) -> Latency {
        self.latency[class.index()]
    }
}

impl RingOptions {
    fn validate(&self) -> Result<(), String> {
        if self.sq_entries == 0 || self.cq_entries == 0 {
            return Err("ring queues need at least one slot each".to_string());
        }
        if !(0.0..=1.0).contains(&self.busy_probability) {
            return Err("ring EBUSY probability is not in 0..=1".to_string());
        }
        match self.setup_errno {
            None | Some(Errno::EPERM) | Some(Errno::ENOSYS) | Some(Errno::ENOMEM) => Ok(()),
            Some(other) => Err(format!(
                "ring setup errno {other:?} is not one io_uring_setup fails with here \
                 (EPERM, ENOSYS or ENOMEM)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        SimOptions::new(1).validate().unwrap();
        SimOptions::with_faults(1, 0.05).validate().unwrap();
    }

    #[test]
    fn illegal_fault_is_named() {
        let mut o = SimOptions::new(1);
        o.faults[OpClass::Read.index()] = ClassFaults {
            probability: 0.1,
            errnos: vec![Errno::EPIPE],
        };
        let err = o.validate().unwrap_err();
        assert!(err.contains("EPIPE") && err.contains("read"), "{err}");
    }
}
