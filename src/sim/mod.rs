//! The sim runner, and the public home of the simulator.
//!
//! The simulated machine itself (kernel, file system, sockets, pollers,
//! ring, offload, clock, options, RNG; its fault model) lives below the
//! runtime in [`crate::sys::sim`] and is re-exported here, so users write
//! `iokernel::sim::{SimOptions, new_kernel, run, SimKernel, ...}`.
//!
//! [`SimOptions::driver`] maps to a `runtime::Backend` that the same
//! selection code as a real runtime's builds, so the backend report reads
//! the same (a pool run reports `pool`). The same seed gives the same run,
//! byte for byte; [`SimCore::trace_hash`] proves it.
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
//! Owns: [`run`], which drives a future on a single-threaded runtime over a
//! [`SimKernel`] with a seed-driven scheduler (which task runs next, when an
//! offloaded job completes, when virtual time advances), the choice of
//! driver for a run ([`SimOptions::driver`]: the pool, the io_uring driver
//! over the simulated ring, or the readiness driver over a simulated poller
//! with epoll or kqueue semantics), [`SimError`], and [`explore_crashes`]
//! (check an invariant against every legal crash state of a run). May not touch: file or
//! socket state (that is `SimKernel`'s); it reaches the machine only
//! through the seam traits and the handles `crate::sys::sim` gives it. It
//! may import the runtime and the drivers; nothing below it may import it.
//!
//! The fault model (which faults are legal, per op class) is documented in
//! [`crate::sys::sim`].

mod explore;
mod sched;

/// `EXT4_SUPER_MAGIC`, what the simulated file system reports by default
/// ([`SimOptions::fs_magic`] is `i64::from(EXT4_MAGIC)`).
pub use crate::sys::fsinfo::EXT4_MAGIC;
/// The io_uring opcode numbers [`RingOptions::missing_opcodes`] takes.
pub use crate::sys::ring::opcode;
pub use crate::sys::sim::{
    ClassFaults, CrashModel, DatagramFaults, Latency, OpClass, PollerFaults, RingOptions, SimCore,
    SimDriver, SimKernel, SimOptions, SimRng, SimStats,
};
pub use explore::{
    explore_crashes, CrashBudget, CrashReport, CrashState, CrashViolation, ExploreOptions,
    ReplayHandle,
};
pub use sched::{new_kernel, run, SimError};
