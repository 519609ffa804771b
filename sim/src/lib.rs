//! The iokernel simulation harness: workloads that run on the simulated
//! kernel for many seeds, each checked against a reference model, each run
//! twice to prove determinism, each failure printed with a one-line replay.
//!
//! Owns the workloads ([`workload`]) and the per-seed driver ([`check_seed`]);
//! the simulated kernel itself is `iokernel::sim`.

pub mod workload;

use iokernel::sim::{self, SimDriver, SimOptions, SimStats};
pub use workload::Workload;

/// What one seed of one workload did.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// The workload.
    pub workload: Workload,
    /// Hash of every syscall and scheduling decision of the run.
    pub trace_hash: u64,
    /// Fault and syscall counters.
    pub stats: SimStats,
    /// `Ok(summary)` when every check held, else what went wrong.
    pub verdict: Result<String, String>,
}

/// File-system capacity of every fourth faulty seed: small enough that the
/// ops workload fills the disk.
pub const SMALL_DISK_BYTES: u64 = 256 * 1024;

/// The drivers a sweep rotates through, one per seed in turn.
pub const DRIVERS: [SimDriver; 4] = [
    SimDriver::Pool,
    SimDriver::Ring,
    SimDriver::EpollSemantics,
    SimDriver::KqueueSemantics,
];

/// The driver seed `seed` runs on: [`DRIVERS`] in turn, so any run of
/// consecutive seeds covers every driver.
pub fn driver_for(seed: u64) -> SimDriver {
    DRIVERS[(seed % DRIVERS.len() as u64) as usize]
}

/// io_uring opcodes (`IORING_OP_STATX`, `IORING_OP_RECV`) the simulated ring
/// lacks on every third faulty ring seed, so per-op pool fallback runs too.
const MISSING_ON_SOME_RINGS: [u8; 2] = [21, 27];

/// Options for `seed`: the seed's driver ([`driver_for`]); faults off when
/// `fault_rate` is 0, else every fault class on at that rate (with a small
/// disk for every fourth seed, so real ENOSPC happens too, on every third
/// seed a ring that lacks some opcodes, and on every fifth a file system
/// that reports Lustre's magic and takes `lustre.*` xattrs).
pub fn options_for(seed: u64, fault_rate: f64) -> SimOptions {
    let mut options = if fault_rate <= 0.0 {
        SimOptions::new(seed)
    } else {
        SimOptions::with_faults(seed, fault_rate)
    };
    options.driver = driver_for(seed);
    if fault_rate <= 0.0 {
        return options;
    }
    if seed % 4 == 0 {
        options.capacity_bytes = SMALL_DISK_BYTES;
    }
    if seed % 3 == 0 {
        options.ring.missing_opcodes = MISSING_ON_SOME_RINGS.to_vec();
    }
    if seed % 5 == 2 {
        options.fs_magic = i64::from(iokernel::writer::fs_kind::LUSTRE_MAGIC);
    }
    options
}

/// Run `workload` once for `seed`.
pub fn run_seed(workload: Workload, seed: u64, fault_rate: f64) -> SeedOutcome {
    let (trace_hash, stats, verdict) = match sim::new_kernel(options_for(seed, fault_rate)) {
        Err(e) => (0, SimStats::default(), Err(e.to_string())),
        Ok(kernel) => {
            let verdict = workload.run(&kernel, seed);
            (kernel.core().trace_hash(), kernel.core().stats(), verdict)
        }
    };
    SeedOutcome {
        seed,
        workload,
        trace_hash,
        stats,
        verdict,
    }
}

/// Run `workload` twice for `seed`; the outcome fails if either run failed
/// or the two runs differ (trace hash or verdict).
pub fn check_seed(workload: Workload, seed: u64, fault_rate: f64) -> SeedOutcome {
    let first = run_seed(workload, seed, fault_rate);
    let second = run_seed(workload, seed, fault_rate);
    if first.verdict.is_ok()
        && (first.trace_hash != second.trace_hash || first.verdict != second.verdict)
    {
        let why = format!(
            "nondeterministic: trace hashes {:#x} vs {:#x}, verdicts {:?} vs {:?}",
            first.trace_hash, second.trace_hash, first.verdict, second.verdict
        );
        return SeedOutcome {
            verdict: Err(why),
            ..first
        };
    }
    first
}

/// The command that reruns exactly this seed (and the driver it ran on,
/// which the seed chooses).
pub fn replay_line(workload: Workload, seed: u64, fault_rate: f64) -> String {
    format!(
        "cargo run --release -p iokernel-sim -- --workload {} --fault-rate {fault_rate} --replay {seed}  # driver {}",
        workload.name(),
        driver_for(seed).name()
    )
}

/// The line a sweep prints for a failed seed: everything that chose the
/// run (workload, seed, the seed's driver, fault rate), then why it failed.
/// The replay command ([`replay_line`]) follows it.
pub fn failure_line(outcome: &SeedOutcome, fault_rate: f64) -> String {
    format!(
        "FAILED workload {} seed {} driver {} fault-rate {fault_rate}: {}",
        outcome.workload.name(),
        outcome.seed,
        driver_for(outcome.seed).name(),
        outcome.verdict.as_ref().err().map_or("", |s| s.as_str())
    )
}
