//! `iok merge --mpi`: one rank of an MPI job (cargo feature `mpi`).
//!
//! Every rank runs the same command under `mpirun`. In order, every step
//! collective, so every rank either goes on or fails with the same error:
//! 1. the normalised arguments are compared (a digest per argument,
//!    all-gathered): a rank launched with a different `-o`, layout, input
//!    list, ... is named with the argument, and nothing is created;
//! 2. each rank inspects a share of the inputs (open, stat, gzip magic,
//!    output aliasing) and the ranks agree: a missing or corrupt input
//!    fails every rank, naming the rank that saw it and the path, before
//!    the output exists;
//! 3. the inputs are assigned to ranks in contiguous runs, in the order
//!    given, balanced by size ([`crate::ranks::assign_to_ranks`]), and
//!    every rank merges its run with its own runtime and producers into
//!    the one output, through the [`MpiCoordinator`];
//! 4. rank 0 prints the one summary (ranks, lines, bytes, aggregate MiB/s,
//!    the reservation cost); only rank 0 shows a progress bar.
//!
//! A rank whose merge fails ends the job (`MPI_Abort`): the others may be
//! waiting in a collective it will never join. mpirun then stops every
//! rank with SIGTERM, and each rank's signal watcher removes the files it
//! created, or its cleanup helper (`janitor.rs`) does when mpirun's
//! SIGKILL comes first; with `--durability atomic-rename` the final name
//! never appears.
//!
//! `IOK_MPI_COUNTERS=funnelled` sends reservations through the MPI thread
//! even when MPI grants THREAD_MULTIPLE (the bench compares both).
//!
//! Test hook: `IOK_TEST_ONLY_ABORT_RANK=RANK:CHUNKS` makes rank RANK die
//! (SIGABRT, as a crashed process) at its reservation number CHUNKS + 1, or
//! at its first collective after it reserved CHUNKS chunks (layouts that
//! reserve nothing die at the writer's first collective). Only for the
//! MPI CI script (`tests/mpi/run.sh`); never set it otherwise.

use iokernel::writer::coord::{
    CoordFuture, Coordinator, CounterPath, MpiCoordinator, PrefixSum, RankFailure,
};
use std::io::{Error, ErrorKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::input::{self, Input, STDIN_PATH};
use crate::merge::{self, MergeArgs, MergeOutcome};
use crate::output::{self, OutputMode};
use crate::progress::{human_bytes, Progress};
use crate::ranks;

/// Chooses the [`CounterPath`] (see [`counter_path`]).
const COUNTERS_VAR: &str = "IOK_MPI_COUNTERS";
/// The test hook's environment variable (see the module docs).
const TEST_ONLY_ABORT_VAR: &str = "IOK_TEST_ONLY_ABORT_RANK";

pub fn run(args: &MergeArgs) -> std::io::Result<()> {
    if output::is_stdout(&args.output) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--mpi cannot write to stdout (-o -): every rank writes into one file",
        ));
    }
    // Before MPI starts threads: the signal watcher needs the mask first.
    let output_mode = OutputMode::for_run(&args.output, args.force, args.gzip.is_some())?;
    let mpi = Arc::new(MpiCoordinator::init(counter_path()?)?);
    let result = run_rank(args, output_mode, &mpi);
    let result = result.map_err(|e| {
        Error::new(
            e.kind(),
            format!("rank {} of {}: {e}", mpi.rank(), mpi.ranks()),
        )
    });
    mpi.finalize();
    result
}

/// How reservations reach MPI: `IOK_MPI_COUNTERS=funnelled` sends them
/// through the MPI thread (for comparison, or for an MPI whose
/// THREAD_MULTIPLE is slow); unset or `auto`: inline when MPI grants
/// THREAD_MULTIPLE.
fn counter_path() -> std::io::Result<CounterPath> {
    match std::env::var(COUNTERS_VAR).as_deref() {
        Err(_) | Ok("auto") | Ok("") => Ok(CounterPath::Auto),
        Ok("funnelled") => Ok(CounterPath::Funnelled),
        Ok(other) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{COUNTERS_VAR}={other:?}: expected auto or funnelled"),
        )),
    }
}

/// Steps 1 and 2 (agreed), then the merge; `Err` on every rank alike
/// unless the merge itself failed (then this rank aborts the job).
fn run_rank(
    args: &MergeArgs,
    output_mode: OutputMode,
    mpi: &Arc<MpiCoordinator>,
) -> std::io::Result<()> {
    let (rank, ranks) = (mpi.rank(), mpi.ranks());
    // Every rank reads the list; mpirun gives stdin to rank 0 only.
    if args
        .inputs_from
        .as_ref()
        .is_some_and(|list| list.as_os_str() == STDIN_PATH)
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--mpi: --inputs-from - (stdin) reaches rank 0 only; give the list as a file",
        ));
    }
    // Expanding a directory or a list can fail on one rank only; agree.
    let expanded = input::expand_inputs(&args.inputs, args.inputs_from.as_deref());
    let failure = expanded.as_ref().err().map(|e| {
        let path = args.inputs_from.clone().unwrap_or_default();
        RankFailure::new(rank, "list inputs", path, None, errno(e), e.to_string())
    });
    agreed(mpi, failure)?;
    let paths = expanded?;
    check_same_args(mpi, &ranks::normalized_args(args, &paths))?;
    if let Some(stdin) = paths.iter().find(|p| p.as_os_str() == STDIN_PATH) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--mpi reads only regular files; {} (stdin) cannot be shared by ranks",
                stdin.display()
            ),
        ));
    }
    let coordinator = coordinator_for(mpi)?;
    let mut job = merge::job_of(args, Vec::new(), output_mode);
    job.coordinator = Some(Arc::clone(&coordinator));
    let sizes = inspect_share(mpi, &paths, &merge::writer_config(&job))?;
    let assigned = ranks::assign_to_ranks(
        &sizes.iter().map(|&(len, _)| len).collect::<Vec<_>>(),
        ranks,
    );
    let mine = assigned[rank].clone();
    job.inputs = mine
        .clone()
        .map(|i| Input::regular(paths[i].clone(), sizes[i].0, sizes[i].1))
        .collect();
    let my_bytes: u64 = sizes[mine].iter().map(|&(len, _)| len).sum();
    let progress = if rank == 0 {
        Progress::new(Some(my_bytes), "merge (rank 0)")
    } else {
        Progress::hidden()
    };
    let gzip = job.gzip.is_some();
    let outcome = merge::merge_inputs(job, progress.clone());
    progress.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            let e = output::hint_force(e);
            eprintln!("iok: rank {rank} of {ranks}: {e}; aborting the MPI job");
            mpi.abort(1);
        }
    };
    report(mpi, args.report, paths.len(), gzip, outcome)
}

/// Every rank's `failure` reduced: `Err` on every rank when any failed.
fn agreed(mpi: &MpiCoordinator, failure: Option<RankFailure>) -> std::io::Result<()> {
    let outcome = failure.map_or(Ok(()), Err);
    match iokernel::runtime::block_on_here(mpi.agree(outcome))? {
        Ok(()) => Ok(()),
        Err(f) => Err(Error::new(ErrorKind::InvalidInput, f.to_string())),
    }
}

fn errno(e: &Error) -> Option<i32> {
    iokernel::writer::errno_of(e)
}

/// Step 1: every rank's argument digests against rank 0's; on a
/// difference every rank learns the first differing rank and argument,
/// and both values.
fn check_same_args(mpi: &MpiCoordinator, args: &[ranks::ArgValue]) -> std::io::Result<()> {
    let all = iokernel::runtime::block_on_here(mpi.all_gather(ranks::encode_digests(args)))?;
    let Some((rank, field)) = ranks::first_difference(&all) else {
        return Ok(());
    };
    // Every rank sends its value of that argument (small: shortened).
    let mine = args
        .get(field)
        .map_or(String::new(), |a| ranks::shorten(&a.value, 200));
    let values = iokernel::runtime::block_on_here(mpi.all_gather(mine.into_bytes()))?;
    let text = |r: usize| String::from_utf8_lossy(&values[r]).into_owned();
    let flag = args.get(field).map_or("an argument", |a| a.flag);
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "the ranks were launched with different arguments: rank {rank} has {flag} {} but \
             rank 0 has {flag} {}; every rank must run the same command (nothing was written)",
            text(rank),
            text(0),
        ),
    ))
}

/// Step 2: this rank inspects its share of the inputs (and checks none
/// is the output); the ranks agree, then gather every input's size and
/// gzip flag, in input order.
fn inspect_share(
    mpi: &MpiCoordinator,
    paths: &[PathBuf],
    config: &iokernel::writer::WriterConfig,
) -> std::io::Result<Vec<(u64, bool)>> {
    let share = &paths[ranks::inspection_share(paths.len(), mpi.rank(), mpi.ranks())];
    let mut mine = Vec::with_capacity(share.len() * 9);
    let mut failure = None;
    for path in share {
        match inspect_regular(path) {
            Ok(input) => {
                mine.extend_from_slice(&input.len_bytes.unwrap_or(0).to_le_bytes());
                mine.push(u8::from(input.gzip));
            }
            Err(e) => {
                let f = RankFailure::new(mpi.rank(), "input", path, None, errno(&e), e.to_string());
                failure = Some(f);
                break;
            }
        }
    }
    if failure.is_none() {
        if let Err(e) = output::check_aliases(share, config) {
            let f = RankFailure::new(
                mpi.rank(),
                "output",
                &config.path,
                None,
                errno(&e),
                e.to_string(),
            );
            failure = Some(f);
        }
    }
    agreed(mpi, failure)?;
    let all = iokernel::runtime::block_on_here(mpi.all_gather(mine))?;
    let sizes: Vec<(u64, bool)> = all
        .iter()
        .flat_map(|b| b.chunks_exact(9))
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                c[8] != 0,
            )
        })
        .collect();
    if sizes.len() != paths.len() {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "{} input sizes gathered for {} inputs",
                sizes.len(),
                paths.len()
            ),
        ));
    }
    Ok(sizes)
}

/// Inspect `path`, which must be a regular file: another rank may read it.
fn inspect_regular(path: &std::path::Path) -> std::io::Result<Input> {
    let input = input::inspect(path)?;
    if input.len_bytes.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "input {} is not a regular file; --mpi reads only regular files (another rank \
                 may read it)",
                path.display()
            ),
        ));
    }
    Ok(input)
}

/// Step 4: every rank's counts to rank 0, which prints the summary.
/// The totals are summed over ranks; the metrics (`--metrics`, `--json`)
/// are rank 0's runtime's.
fn report(
    mpi: &MpiCoordinator,
    how: merge::ReportArgs,
    inputs: usize,
    gzip: bool,
    outcome: MergeOutcome,
) -> std::io::Result<()> {
    let stats = mpi.reserve_stats();
    let mine: Vec<u8> = [
        outcome.lines,
        outcome.bytes_in,
        u64::try_from(outcome.elapsed.as_nanos()).unwrap_or(u64::MAX),
        stats.calls,
        stats.total_ns,
        stats.max_ns,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect();
    let all = iokernel::runtime::block_on_here(mpi.all_gather(mine))?;
    if mpi.rank() != 0 {
        return Ok(());
    }
    let field = |b: &Vec<u8>, i: usize| {
        b.get(i * 8..i * 8 + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    };
    let sum = |i: usize| all.iter().map(|b| field(b, i)).sum::<u64>();
    let max = |i: usize| all.iter().map(|b| field(b, i)).max().unwrap_or(0);
    let total = MergeOutcome {
        lines: sum(0),
        bytes_in: sum(1),
        elapsed: Duration::from_nanos(max(2)),
        report: outcome.report,
        metrics: outcome.metrics,
    };
    if how.json {
        return output::print_summary(&merge::outcome_json("merge", inputs, gzip, &total), false);
    }
    let verb = format!("merged across {} MPI ranks:", mpi.ranks());
    let (calls, total_ns) = (sum(3), sum(4));
    let coordination =
        format!(
        "coordination ({}, reservations {}): {calls} reservations, mean {:.2} us, slowest {:.1} \
         us; {} per rank on average",
        mpi.threading(),
        if mpi.reserves_inline() { "inline" } else { "funnelled" },
        total_ns as f64 / calls.max(1) as f64 / 1e3,
        max(5) as f64 / 1e3,
        human_bytes(total.bytes_in / mpi.ranks().max(1) as u64),
    );
    let mut text = format!(
        "{}\n{coordination}",
        merge::summary_line(&verb, inputs, gzip, &total)
    );
    if how.metrics {
        text.push_str("\nrank 0's runtime:\n");
        text.push_str(total.metrics.to_string().trim_end());
    }
    output::print_summary(&text, false)
}

/// The coordinator the writer gets: the MPI one, or (test hook only) one
/// that dies on cue.
fn coordinator_for(mpi: &Arc<MpiCoordinator>) -> std::io::Result<Arc<dyn Coordinator>> {
    let Ok(spec) = std::env::var(TEST_ONLY_ABORT_VAR) else {
        return Ok(Arc::clone(mpi) as Arc<dyn Coordinator>);
    };
    let parsed = spec
        .split_once(':')
        .and_then(|(r, n)| Some((r.parse::<usize>().ok()?, n.parse::<u64>().ok()?)));
    let Some((rank, chunks)) = parsed else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{TEST_ONLY_ABORT_VAR}={spec:?}: expected RANK:CHUNKS"),
        ));
    };
    Ok(Arc::new(TestOnlyAbortAfterChunks {
        inner: Arc::clone(mpi),
        dying: mpi.rank() == rank,
        chunks,
        reserved: AtomicU64::new(0),
    }))
}

/// Test hook (see the module docs): the MPI coordinator, except that on
/// the chosen rank it kills the process once `chunks` chunks were
/// reserved.
#[derive(Debug)]
struct TestOnlyAbortAfterChunks {
    inner: Arc<MpiCoordinator>,
    dying: bool,
    chunks: u64,
    reserved: AtomicU64,
}

impl TestOnlyAbortAfterChunks {
    fn die_if_due(&self, reserving: bool) {
        let reserved = self.reserved.load(Ordering::Relaxed);
        if self.dying && (reserved >= self.chunks) {
            eprintln!(
                "iok: rank {}: {TEST_ONLY_ABORT_VAR}: dying after {reserved} reserved chunk(s) \
                 (at a {})",
                self.inner.rank(),
                if reserving {
                    "reservation"
                } else {
                    "collective"
                }
            );
            std::process::abort();
        }
        if reserving {
            self.reserved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Coordinator for TestOnlyAbortAfterChunks {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn ranks(&self) -> usize {
        self.inner.ranks()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        self.die_if_due(true);
        self.inner.reserve_bytes(len)
    }
    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        self.die_if_due(true);
        self.inner.reserve_slots(count)
    }
    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        self.die_if_due(false);
        self.inner.all_gather(bytes)
    }
    fn barrier(&self) -> CoordFuture<'_, ()> {
        self.die_if_due(false);
        self.inner.barrier()
    }
    fn exclusive_prefix_sum(&self, value: u64) -> CoordFuture<'_, PrefixSum> {
        self.die_if_due(false);
        self.inner.exclusive_prefix_sum(value)
    }
    fn broadcast(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<u8>> {
        self.die_if_due(false);
        self.inner.broadcast(bytes)
    }
}
