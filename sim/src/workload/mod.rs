//! Workloads: each drives the simulated kernel through iokernel's public
//! API and checks what it sees against its own reference model.

mod cache;
mod files;
mod runtime;
mod sockets;
mod writer;
mod writer_ranks;

pub use writer_ranks::SimulatedRank;

use iokernel::sim::SimKernel;
use std::sync::Arc;

/// Which workload a seed runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Random file-op scripts on several tasks plus a socket stream, checked
    /// against a model of every file and stream, then a power loss.
    Ops,
    /// Many tasks, timers, channels and cancellations.
    Runtime,
    /// One parallel writer per seed: random layout, gzip, order, producers
    /// and payloads, checked against the payloads and a power loss.
    Writer,
    /// Two to four simulated ranks writing one output through simulated
    /// coordinators (slow ranks, a rank that fails or is dropped), checked
    /// against every rank's lines and a power loss.
    WriterRanks,
    /// The deliberately wrong client: the ops workload, but short writes are
    /// taken as complete. The harness must catch it.
    Canary,
    /// The other wrong client: retries a failed fsync and trusts the retry
    /// (the fsyncgate mistake). The power-loss check must catch it.
    CanaryFsync,
}

impl Workload {
    /// Workloads a sweep runs (the canary only on request).
    pub const SWEEP: [Workload; 4] = [
        Workload::Ops,
        Workload::Runtime,
        Workload::Writer,
        Workload::WriterRanks,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Ops => "ops",
            Workload::Runtime => "runtime",
            Workload::Writer => "writer",
            Workload::WriterRanks => "writer-ranks",
            Workload::Canary => "canary",
            Workload::CanaryFsync => "canary-fsync",
        }
    }

    /// Parse a command-line name.
    pub fn parse(name: &str) -> Result<Workload, String> {
        match name {
            "ops" => Ok(Workload::Ops),
            "runtime" => Ok(Workload::Runtime),
            "writer" => Ok(Workload::Writer),
            "writer-ranks" => Ok(Workload::WriterRanks),
            "canary" => Ok(Workload::Canary),
            "canary-fsync" => Ok(Workload::CanaryFsync),
            other => Err(format!(
                "unknown workload {other:?}: expected ops, runtime, writer, writer-ranks, canary or canary-fsync"
            )),
        }
    }

    /// Run on `kernel`; `Ok(summary)` or what failed.
    pub fn run(self, kernel: &Arc<SimKernel>, seed: u64) -> Result<String, String> {
        match self {
            Workload::Ops => files::run(kernel, seed, files::Client::Correct),
            Workload::Runtime => runtime::run(kernel, seed),
            Workload::Writer => writer::run(kernel, seed),
            Workload::WriterRanks => writer_ranks::run(kernel, seed),
            Workload::Canary => files::run(kernel, seed, files::Client::IgnoresShortWrites),
            Workload::CanaryFsync => files::run(kernel, seed, files::Client::RetriesFailedFsync),
        }
    }
}

/// A small deterministic generator for workload scripts (independent of
/// the kernel's stream, so the script does not change when faults do).
#[derive(Clone, Debug)]
pub(crate) struct ScriptRng(u64);

impl ScriptRng {
    pub(crate) fn new(seed: u64, salt: u64) -> ScriptRng {
        ScriptRng(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }
}
