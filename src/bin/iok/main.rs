//! `iok`: the iokernel command line.
//!
//! `iok merge` writes plain or gzip JSON-lines inputs into one output
//! through the `ParallelWriter`; `iok pgzip` is parallel multi-member gzip
//! of one file on the same pipeline; `iok probe` reports the host and the
//! backend choice; `iok demo` random-reads a data file on every backend and
//! merges a synthetic trace set with every layout, verifying each output;
//! `iok bench` measures random reads and sequential writes per backend
//! (`bench.rs`). `iok trace-gen` (hidden) makes synthetic trace files for
//! benches and tests; `iok verify-merge` (hidden) checks a merge's output
//! against its inputs for scripts; `iok cleanup-helper` (hidden) is the
//! child that removes a run's partial output when the run is killed
//! (`janitor.rs`).

mod bench;
mod demo;
mod demo_merge;
mod gunzip;
mod input;
mod janitor;
mod merge;
#[cfg(feature = "mpi")]
mod mpi_merge;
mod output;
mod pgzip;
mod probe;
mod progress;
// Pure and tested in every build; used by `mpi_merge` (feature `mpi`).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod ranks;
mod trace_gen;
mod verify;
mod verify_merge;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "iok",
    version,
    about = "iokernel: simulation-first async file and socket I/O"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the kernel, the backends this build has, which one is selected and why.
    Probe,
    /// Random-read a data file on every backend, then merge a synthetic
    /// trace set with every layout, verifying every output.
    Demo(demo::DemoArgs),
    /// Random 4 KiB reads (QD, hot/cold) and 1 MiB writes + fsync per backend: ops/s, MiB/s, p50/p99.
    Bench(Box<bench::BenchArgs>),
    /// Merge plain or gzip JSON-lines inputs into one output through the parallel writer.
    Merge(merge::MergeArgs),
    /// Parallel multi-member gzip of one file, members cut at newlines, in input order.
    Pgzip(pgzip::PgzipArgs),
    /// Write a synthetic JSON-lines trace file (benches and tests).
    #[command(hide = true)]
    TraceGen(trace_gen::TraceGenArgs),
    /// Check a merge's output against its inputs (scripts and CI).
    #[command(hide = true)]
    VerifyMerge(verify_merge::VerifyMergeArgs),
    /// Remove what a merge or pgzip run left when it died (started by the run).
    #[command(hide = true, name = janitor::SUBCOMMAND)]
    CleanupHelper,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe => probe::run(),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Pgzip(args) => pgzip::run(&args),
        Command::TraceGen(args) => trace_gen::run(&args),
        Command::VerifyMerge(args) => verify_merge::run(&args),
        Command::CleanupHelper => janitor::run(),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of a stream output (`-o -`, a FIFO) went away: quiet,
        // with the status a shell gives a process killed by SIGPIPE.
        Err(e) if iokernel::writer::errno_of(&e) == Some(libc::EPIPE) => ExitCode::from(141),
        Err(e) => {
            eprintln!("iok: {e}");
            ExitCode::FAILURE
        }
    };
    // After the error line: what the helper says comes after it.
    janitor::finish();
    code
}
