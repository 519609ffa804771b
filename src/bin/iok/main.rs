//! `iok`: the iokernel command line.
//!
//! `iok probe` reports the host and the backend choice; `iok demo` writes a
//! data file and reads it back with random `pread`s on every available
//! backend and the sync fallback, checking every byte; `iok bench` measures
//! random reads and sequential writes per backend (`bench.rs`).

mod bench;
mod demo;
mod probe;

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
    /// Random-read a fresh data file on every available backend and the sync fallback.
    Demo(demo::DemoArgs),
    /// Random 4 KiB reads (QD, hot/cold) and 1 MiB writes + fsync per backend: ops/s, MiB/s, p50/p99.
    Bench(Box<bench::BenchArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe => probe::run(),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iok: {e}");
            ExitCode::FAILURE
        }
    }
}
