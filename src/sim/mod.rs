//! The deterministic simulated kernel.
//!
//! [`SimKernel`] implements the seam ([`crate::sys::Kernel`]) over an
//! in-memory file system, loopback sockets and pipes; the scheduler in this
//! module implements [`crate::sys::Offload`] and [`crate::sys::Clock`] with
//! virtual time, and the simulated pollers implement [`crate::sys::Poller`]
//! with epoll or kqueue semantics. [`SimOptions::driver`] picks the driver
//! a run uses: the pool (every op an offloaded job) or the readiness driver
//! over either poller. A runtime built on them ([`run`]) has one worker, and every
//! choice that differs between runs on real hardware (which task runs
//! next, which offloaded job completes next, how long a call takes, whether
//! it fails) is drawn from one ChaCha stream seeded by [`SimOptions::seed`].
//! The same seed gives the same run, byte for byte; [`SimCore::trace_hash`]
//! proves it.
//!
//! ```
//! use iokernel::sim::{self, SimOptions};
//! use std::io;
//!
//! // A SimError converts into io::Error, so `?` works in io::Result code.
//! fn simulate() -> io::Result<()> {
//!     let kernel = sim::new_kernel(SimOptions::with_faults(42, 0.02))?;
//!     let result = sim::run(&kernel, async { /* any iokernel code */ })?;
//!     kernel.crash(); // power loss: unsynced data is lost or torn
//!     let after = kernel.read_file("/out"); // what survived
//!     assert_eq!(after, None, "nothing wrote /out");
//!     Ok(result)
//! }
//! simulate()?;
//! # let mut bad = SimOptions::new(1);
//! # bad.latency[0].min = std::time::Duration::from_millis(2); // above its mean
//! # let err = io::Error::from(sim::new_kernel(bad).err().expect("invalid options"));
//! # assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
//! # assert!(err.to_string().contains("invalid simulator options"), "{err}");
//! # Ok::<(), io::Error>(())
//! ```
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
//! * **Power loss.** [`SimKernel::crash`] drops every fd and socket and
//!   reverts the file system to what was durable: file data written since
//!   the last successful fsync is lost (or torn at 512-byte/4 KiB
//!   granularity), and a create, rename or unlink is kept only if its
//!   parent directory was fsynced afterwards.
//!
//! Not simulated (they fail the way Linux does when unsupported): other
//! address families (`EAFNOSUPPORT`), `fallocate` modes other than plain,
//! `KEEP_SIZE` and `PUNCH_HOLE` (`EOPNOTSUPP`), `O_DIRECT` alignment checks
//! (accepted). Sim sockets and pipes never block: a call that would block
//! returns `EAGAIN`, as on a non-blocking fd.

mod core;
mod fs;
mod kernel;
mod net;
mod options;
mod poller;
mod ring;
mod rng;
mod sched;

pub use self::core::{SimCore, SimStats};
pub use kernel::SimKernel;
pub use options::{
    ClassFaults, CrashModel, Latency, OpClass, PollerFaults, RingOptions, SimDriver, SimOptions,
    EXT4_MAGIC,
};
pub use rng::SimRng;
pub use sched::{new_kernel, run, SimError};
