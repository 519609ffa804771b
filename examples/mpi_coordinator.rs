//! The MPI coordinator across the ranks of a real job: checks every
//! operation, and measures what a reservation costs.
//!
//! ```text
//! cargo build --release --features mpi --example mpi_coordinator
//! mpirun --allow-run-as-root --oversubscribe -n 4 \
//!     target/release/examples/mpi_coordinator [--funnelled] [--reserve-calls N]
//! ```
//!
//! Checks (every rank, the job fails if any check fails on any rank):
//! reservations made concurrently by several tasks on every rank are
//! disjoint and cover `0..total` with no gap (bytes and slots); all_gather
//! of different lengths per rank (an empty one included); the prefix sum;
//! broadcast; barrier; agree with every rank fine and with two ranks
//! failing (every rank gets the lowest failing rank's failure).
//!
//! `--reserve-calls N`: then each rank makes N back-to-back 1 MiB
//! reservations at once with every other rank, and rank 0 prints the mean
//! and slowest call over all ranks (the per-chunk coordination cost).

use iokernel::runtime::Runtime;
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;
use iokernel::writer::coord::{Coordinator, CounterPath, MpiCoordinator, RankFailure};
use std::process::ExitCode;
use std::sync::Arc;

/// Tasks reserving concurrently on each rank.
const TASKS: u64 = 4;
/// Reservations per task in the check.
const RESERVES_PER_TASK: u64 = 50;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = if args.iter().any(|a| a == "--funnelled") {
        CounterPath::Funnelled
    } else {
        CounterPath::Auto
    };
    let reserve_calls: Option<u64> = args
        .iter()
        .position(|a| a == "--reserve-calls")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let coord = match MpiCoordinator::init(path) {
        Ok(coord) => Arc::new(coord),
        Err(e) => {
            eprintln!("mpi_coordinator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = Runtime::new().expect("a runtime");
    let outcome = runtime.block_on(run(Arc::clone(&coord), reserve_calls));
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpi_coordinator: rank {}: {e}", coord.rank());
            ExitCode::FAILURE
        }
    };
    coord.finalize();
    code
}

async fn run(coord: Arc<MpiCoordinator>, reserve_calls: Option<u64>) -> Result<(), String> {
    let rank = coord.rank();
    let ranks = coord.ranks();
    if rank == 0 {
        println!(
            "mpi_coordinator: {ranks} rank(s), thread level {}, reservations {}",
            coord.threading(),
            if coord.reserves_inline() {
                "inline"
            } else {
                "funnelled"
            }
        );
    }
    // Every rank runs every check (collectives must match); the first
    // failure is agreed on at the end, so every rank exits alike.
    let mut failure = None;
    for (name, check) in [
        ("reserve_bytes", check_reservations(&coord, false).await),
        ("reserve_slots", check_reservations(&coord, true).await),
        ("all_gather", check_all_gather(&coord).await),
        ("prefix sum", check_prefix_sum(&coord).await),
        ("broadcast", check_broadcast(&coord).await),
        ("agree", check_agree(&coord).await),
    ] {
        if let Err(e) = check {
            failure.get_or_insert(RankFailure::new(rank, name, "", None, None, e));
        }
    }
    coord.barrier().await.map_err(|e| format!("barrier: {e}"))?;
    let agreed = coord.agree(failure.map_or(Ok(()), Err)).await;
    match agreed.map_err(|e| format!("agree: {e}"))? {
        Ok(()) if rank == 0 => println!("mpi_coordinator: every check passed on {ranks} rank(s)"),
        Ok(()) => {}
        Err(f) => return Err(format!("check failed: {f}")),
    }
    if let Some(calls) = reserve_calls {
        measure(&coord, calls).await?;
    }
    Ok(())
}

/// Concurrent reservations from `TASKS` tasks on every rank; all ranks'
/// (start, len) pairs gathered must tile `0..total`.
async fn check_reservations(coord: &Arc<MpiCoordinator>, slots: bool) -> Result<(), String> {
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            let coord = Arc::clone(coord);
            iokernel::runtime::spawn(async move {
                let mut got = Vec::new();
                for i in 0..RESERVES_PER_TASK {
                    let len = 1 + (coord.rank() as u64 * 7 + task * 3 + i) % 11;
                    let start = if slots {
                        coord.reserve_slots(len).await
                    } else {
                        coord.reserve_bytes(len).await
                    };
                    got.push((start.map_err(|e| e.to_string())?, len));
                }
                Ok::<_, String>(got)
            })
        })
        .collect();
    let mut mine = Vec::new();
    for handle in handles {
        mine.extend(handle.await.map_err(|e| e.to_string())??);
    }
    let encoded: Vec<u8> = mine
        .iter()
        .flat_map(|&(s, l)| s.to_le_bytes().into_iter().chain(l.to_le_bytes()))
        .collect();
    let all = coord.all_gather(encoded).await.map_err(|e| e.to_string())?;
    let mut pairs: Vec<(u64, u64)> = all
        .iter()
        .flat_map(|b| b.chunks_exact(16))
        .map(|c| {
            let n = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
            (n(&c[..8]), n(&c[8..]))
        })
        .collect();
    pairs.sort_unstable();
    let expected = coord.ranks() as u64 * TASKS * RESERVES_PER_TASK;
    if pairs.len() as u64 != expected {
        return Err(format!(
            "{} reservations gathered, {expected} made",
            pairs.len()
        ));
    }
    let mut at = 0;
    for (start, len) in pairs {
        if start != at {
            return Err(format!(
                "reservation at {start}, expected {at} (gap or overlap)"
            ));
        }
        at += len;
    }
    Ok(())
}

async fn check_all_gather(coord: &MpiCoordinator) -> Result<(), String> {
    let payload = |r: usize| vec![r as u8; r * 1000];
    let all = coord
        .all_gather(payload(coord.rank()))
        .await
        .map_err(|e| e.to_string())?;
    if all.len() != coord.ranks() {
        return Err(format!("{} parts for {} ranks", all.len(), coord.ranks()));
    }
    for (r, part) in all.iter().enumerate() {
        if *part != payload(r) {
            return Err(format!("rank {r}'s part has {} bytes, wrong", part.len()));
        }
    }
    Ok(())
}

async fn check_prefix_sum(coord: &MpiCoordinator) -> Result<(), String> {
    let value = |r: u64| 10 + r * r;
    let sum = coord
        .exclusive_prefix_sum(value(coord.rank() as u64))
        .await
        .map_err(|e| e.to_string())?;
    let before: u64 = (0..coord.rank() as u64).map(value).sum();
    let total: u64 = (0..coord.ranks() as u64).map(value).sum();
    if (sum.before, sum.total) != (before, total) {
        return Err(format!(
            "prefix sum ({}, {}), expected ({before}, {total})",
            sum.before, sum.total
        ));
    }
    Ok(())
}

async fn check_broadcast(coord: &MpiCoordinator) -> Result<(), String> {
    let mine = format!("from rank {}", coord.rank()).into_bytes();
    let got = coord.broadcast(mine).await.map_err(|e| e.to_string())?;
    if got != b"from rank 0" {
        return Err(format!(
            "broadcast gave {:?}",
            String::from_utf8_lossy(&got)
        ));
    }
    Ok(())
}

async fn check_agree(coord: &MpiCoordinator) -> Result<(), String> {
    let all_fine = coord.agree(Ok(())).await.map_err(|e| e.to_string())?;
    if all_fine.is_err() {
        return Err(format!("agree on success gave {all_fine:?}"));
    }
    // The last rank and the one below it fail; the lower one is reported.
    let ranks = coord.ranks();
    let failing = |r: usize| r + 2 >= ranks;
    let failure = |r: usize| RankFailure::new(r, "pwrite", "/out", Some(r as u64), Some(5), "EIO");
    let mine = if failing(coord.rank()) {
        Err(failure(coord.rank()))
    } else {
        Ok(())
    };
    let agreed = coord.agree(mine).await.map_err(|e| e.to_string())?;
    let lowest = ranks.saturating_sub(2);
    if agreed != Err(failure(lowest)) {
        return Err(format!("agree on failure gave {agreed:?}"));
    }
    Ok(())
}

/// Back-to-back 1 MiB reservations on every rank at once; rank 0 prints
/// the mean over all ranks and the slowest call.
async fn measure(coord: &MpiCoordinator, calls: u64) -> Result<(), String> {
    coord.barrier().await.map_err(|e| e.to_string())?;
    let before = coord.reserve_stats();
    let clock = RealClock::new();
    let started = clock.now();
    for _ in 0..calls {
        coord
            .reserve_bytes(1 << 20)
            .await
            .map_err(|e| e.to_string())?;
    }
    let wall_ns = (clock.now() - started).as_nanos() as u64;
    let after = coord.reserve_stats();
    let total_ns = after.total_ns - before.total_ns;
    let mine: Vec<u8> = [total_ns, after.max_ns, wall_ns]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let all = coord.all_gather(mine).await.map_err(|e| e.to_string())?;
    if coord.rank() == 0 {
        let field =
            |b: &[u8], i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        let sum: u64 = all.iter().map(|b| field(b, 0)).sum();
        let max = all.iter().map(|b| field(b, 1)).max().unwrap_or(0);
        let n = calls * coord.ranks() as u64;
        println!(
            "reserve_bytes: ranks {} path {} calls/rank {calls}: mean {:.2} us, max {:.1} us",
            coord.ranks(),
            if coord.reserves_inline() {
                "inline"
            } else {
                "funnelled"
            },
            sum as f64 / n.max(1) as f64 / 1000.0,
            max as f64 / 1000.0,
        );
    }
    Ok(())
}
