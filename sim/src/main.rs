//! `iokernel-sim`: sweep seeds of the simulation workloads, or replay one.
//!
//! Every seed runs twice and the two runs must hash the same; a failing
//! seed prints the one line that replays it. The summary shows how many
//! times each fault class fired across the sweep.

use clap::Parser;
use iokernel::sim::SimStats;
use iokernel::sys::real::{thread::spawn_named, RealClock};
use iokernel::sys::Clock;
use iokernel_sim::{check_seed, failure_line, replay_line, SeedOutcome, Workload};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Parser, Debug)]
#[command(
    name = "iokernel-sim",
    about = "Deterministic fault-injection sweeps over iokernel's simulated kernel"
)]
struct Args {
    /// Seeds to run per workload.
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Workload: ops, runtime, writer, writer-ranks, canary, canary-fsync, or all (ops, runtime, writer and writer-ranks).
    #[arg(long, default_value = "all")]
    workload: String,
    /// Probability of each fault per call (0 turns faults off).
    #[arg(long, default_value_t = 0.02)]
    fault_rate: f64,
    /// Run only this seed and print its outcome.
    #[arg(long)]
    replay: Option<u64>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

fn workloads(name: &str) -> Result<Vec<Workload>, String> {
    if name == "all" {
        return Ok(Workload::SWEEP.to_vec());
    }
    Workload::parse(name).map(|w| vec![w])
}

fn print_stats(stats: &SimStats) {
    println!("fault injection across the sweep:");
    for ((class, errno), n) in &stats.injected {
        println!("  {:<13} {:<13} {n}", class.name(), errno);
    }
    println!(
        "  short reads {}, short writes {}, EINTR retried {}",
        stats.short_reads, stats.short_writes, stats.eintr_retried
    );
    println!(
        "  fsync dropped data {}, reordered completions {}, crashes {}, torn writes {}, ENOSPC (full) {}",
        stats.fsync_dropped_data, stats.reordered_completions, stats.crashes, stats.torn_writes, stats.enospc_full
    );
    println!(
        "  poller: {} spurious events, {} delayed events, {} failed registrations",
        stats.spurious_readiness, stats.delayed_readiness, stats.poller_register_failures
    );
    println!(
        "  page cache: {} nowait hits, {} nowait misses, {} evictions",
        stats.nowait_hits, stats.nowait_misses, stats.cache_evictions
    );
    println!(
        "  syscalls {}, scheduler steps {}",
        stats.syscalls, stats.steps
    );
    println!(
        "  ring: completions {}, SQ full {}, EBUSY {}, CQ overflows {}, cancels {}, \
         receive streams ended {} after {} chunks",
        stats.ring_completions,
        stats.ring_sq_full,
        stats.ring_busy,
        stats.ring_cq_overflows,
        stats.ring_cancels,
        stats.ring_stream_ends,
        stats.ring_stream_chunks
    );
}

fn replay(workload: Workload, seed: u64, fault_rate: f64) -> ExitCode {
    let outcome = check_seed(workload, seed, fault_rate);
    println!(
        "workload {} seed {seed} (driver {}, fault rate {fault_rate}): trace {:#018x}",
        workload.name(),
        iokernel_sim::driver_for(seed).name(),
        outcome.trace_hash
    );
    print_stats(&outcome.stats);
    match outcome.verdict {
        Ok(summary) => {
            println!("ok: {summary}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("FAILED: {why}");
            ExitCode::FAILURE
        }
    }
}

struct Sweep {
    next: AtomicU64,
    end: u64,
    failures: Mutex<Vec<SeedOutcome>>,
    stats: Mutex<SimStats>,
}

fn sweep(workload: Workload, args: &Args, jobs: usize) -> (Vec<SeedOutcome>, SimStats) {
    let state = Arc::new(Sweep {
        next: AtomicU64::new(args.start),
        end: args.start + args.seeds,
        failures: Mutex::new(Vec::new()),
        stats: Mutex::new(SimStats::default()),
    });
    let fault_rate = args.fault_rate;
    let threads: Vec<_> = (0..jobs)
        .map(|i| {
            let state = Arc::clone(&state);
            spawn_named(format!("sim-sweep-{i}"), move || loop {
                let seed = state.next.fetch_add(1, Ordering::Relaxed);
                if seed >= state.end {
                    return;
                }
                let outcome = check_seed(workload, seed, fault_rate);
                state
                    .stats
                    .lock()
                    .expect("stats lock")
                    .merge(&outcome.stats);
                if outcome.verdict.is_err() {
                    state.failures.lock().expect("failures lock").push(outcome);
                }
            })
            .expect("start a sweep thread")
        })
        .collect();
    for t in threads {
        t.join().expect("sweep thread panicked");
    }
    let failures = std::mem::take(&mut *state.failures.lock().expect("failures lock"));
    let stats = state.stats.lock().expect("stats lock").clone();
    (failures, stats)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let workloads = match workloads(&args.workload) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("iokernel-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seed) = args.replay {
        let failed = workloads
            .into_iter()
            .filter(|&w| replay(w, seed, args.fault_rate) != ExitCode::SUCCESS)
            .count();
        return if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| iokernel::sys::real::host_info().available_cores)
        .max(1);
    let clock = RealClock::new();
    let mut total = SimStats::default();
    let mut failed = 0;
    let runs = args.seeds * workloads.len() as u64;
    for workload in workloads {
        let start = clock.now();
        let (failures, stats) = sweep(workload, &args, jobs);
        let secs = (clock.now() - start).as_secs_f64().max(1e-9);
        println!(
            "workload {:<8} seeds {}..{}: {} run (each twice), {} failed, {:.1} s, {:.0} seeds/min",
            workload.name(),
            args.start,
            args.start + args.seeds,
            args.seeds,
            failures.len(),
            secs,
            args.seeds as f64 * 60.0 / secs
        );
        for f in &failures {
            println!("  {}", failure_line(f, args.fault_rate));
            println!(
                "    replay: {}",
                replay_line(workload, f.seed, args.fault_rate)
            );
        }
        failed += failures.len();
        total.merge(&stats);
    }
    print_stats(&total);
    println!(
        "late recv/accept results of cancelled ops kept for the next op: {}",
        iokernel::io::kept_after_cancel()
    );
    println!("{} passed, {failed} failed", runs - failed as u64);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
