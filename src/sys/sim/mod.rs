//! The simulated machine: every seam trait implemented over an in-memory
//! machine, deterministic from one seed.
//!
//! [`SimKernel`] implements [`crate::sys::Kernel`] over an in-memory file
//! system (`fs`, with a durability model), loopback sockets and pipes
//! (`net`), datagram sockets and Unix socket names (`dgram`); `SimOffload` and `SimClock` implement [`crate::sys::Offload`]
//! and [`crate::sys::Clock`] with virtual time; the simulated pollers
//! implement [`crate::sys::Poller`] with epoll or kqueue semantics, and the
//! simulated ring implements the completion-ring seam. Every choice that
//! differs between runs on real hardware (how long a call takes, whether
//! it fails, which ready completion comes next) is drawn from one ChaCha
//! stream ([`SimCore`], seeded by [`SimOptions::seed`]); the same seed gives
//! the same run, byte for byte, and [`SimCore::trace_hash`] proves it.
//!
//! Owns: the machine's state (fd table, file system, sockets, pipes, pollers,
//! rings, pending jobs, virtual time) and its fault model. May not touch:
//! anything above the seam. It imports nothing from `crate::driver`,
//! `crate::runtime`, `crate::writer` or the runner (`crate::sim`); file-system
//! facts (magics, `lustre.lov`) come from [`crate::sys::fsinfo`]. The runner
//! that drives a runtime on this machine, and the public paths users write
//! (`iokernel::sim::{SimOptions, new_kernel, run, SimKernel, ...}`), live in
//! `crate::sim`.
//!
//! # Fault model
//!
//! Legal faults, each drawn per call with the probability of its
//! [`OpClass`] (see [`OpClass::legal_errnos`] for the errnos):
//! * **Injected errnos.** A call that would have succeeded fails instead,
//!   with no effect on any state. `EINTR` is retried inside the seam (and
//!   counted), never seen by callers; `EAGAIN` only on sockets, where the
//!   drivers turn it into a wait.
//! * **Short I/O.** A read, write, recv or send moves fewer bytes than asked
//!   (at least one); the untouched tail of the buffer or file stays as it
//!   was.
//! * **ENOSPC.** Writes past [`SimOptions::capacity_bytes`] of file data fail
//!   (or are cut short at the limit), as a full disk does.
//! * **fsync failure.** An injected `EIO` from `fsync`/`fdatasync` marks the
//!   file's dirty data clean *without* making it durable (Linux's
//!   "fsyncgate" behaviour): a retried fsync then succeeds, yet a crash loses
//!   those writes. Callers must treat the first failure as fatal.
//! * **Latency and reordering.** Offloaded jobs complete after a drawn
//!   virtual latency, in seed-chosen order when
//!   [`SimOptions::reorder_completions`] is on.
//! * **Ring faults** (with [`SimDriver::Ring`] or [`SimDriver::Auto`], see
//!   [`RingOptions`]): a small submission queue that fills, `EBUSY` from
//!   submit, completion-queue overflow (completions held back, never lost),
//!   ring setup refused (`EPERM`, `ENOSYS`, `ENOMEM`), opcodes missing from
//!   the probe, and async cancels that reach their op in time or too late.
//! * **Readiness** (the epoll- and kqueue-semantics drivers only, see
//!   [`SimDriver`] and [`PollerFaults`]): spurious events for fds that are
//!   not ready, ready events held back to a later wait and delivered in
//!   seed order, and `ENOMEM`/`ENOSPC` from adding a poller registration.
//! * **Datagrams** (see [`DatagramFaults`]): loopback UDP datagrams are
//!   lost, duplicated or overtake queued ones; each one that arrives is
//!   one that was sent, whole. Unix datagrams are reliable and ordered
//!   (`dgram`).
//! * **Page cache** (see [`PageCacheOptions`]): each file's cached pages
//!   (brought in by reads and writes) decide whether a nowait
//!   (`RWF_NOWAIT`) read or write hits, is short (a cached prefix) or
//!   fails with `EAGAIN`; a seeded eviction empties a file's cache just
//!   before a nowait call, `fadvise(DONTNEED)` drops a clean file's pages,
//!   and power loss drops everything. Nowait buffered writes are
//!   `EOPNOTSUPP` (ext4) unless [`PageCacheOptions::nowait_writes`].
//! * **Power loss.** [`SimKernel::crash`] drops every fd and socket and
//!   reverts the file system to what was durable: file data written since
//!   the last successful fsync is lost (or torn at 512-byte/4 KiB
//!   granularity), and a create, rename or unlink is kept only if its
//!   parent directory was fsynced afterwards.
//!   `fs/crash.rs` enumerates every such state of a snapshot instead of
//!   drawing one (for `crate::sim::explore_crashes`); the kernel records a
//!   snapshot before each fsync, fdatasync and rename while exploring.
//!
//! Not simulated (they fail the way Linux does when unsupported): other
//! address families (`EAFNOSUPPORT`), `fallocate` modes other than plain,
//! `KEEP_SIZE` and `PUNCH_HOLE` (`EOPNOTSUPP`), `O_DIRECT` alignment checks
//! (accepted). Sim sockets and pipes never block: a call that would block
//! returns `EAGAIN`, as on a non-blocking fd.

mod clock;
mod core;
mod dgram;
mod fs;
mod kernel;
mod net;
mod offload;
mod options;
mod poller;
mod ring;
mod rng;

pub use self::core::{SimCore, SimStats};
pub use kernel::SimKernel;
pub use options::{
    ClassFaults, CrashModel, DatagramFaults, Latency, OpClass, PageCacheOptions, PollerFaults,
    RingOptions, SimDriver, SimOptions,
};
pub use rng::SimRng;

pub(crate) use clock::SimClock;
pub(crate) use fs::crash as fs_crash;
pub(crate) use offload::SimOffload;
pub(crate) use poller::{Semantics, SimPoller, SimPollers};
pub(crate) use ring::SimRings;
