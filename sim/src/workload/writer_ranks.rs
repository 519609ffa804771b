//! The writer-ranks workload: N simulated ranks (tasks in one simulated
//! run, each with its own `ParallelWriter` and producers) write one output
//! through [`SimulatedRank`] coordinators, with every fault class on.
//!
//! The seed draws the ranks (2 to 4), the layout, gzip, order,
//! durability, stripe, chunk size and lines, which ranks are slow (each
//! coordinator call waits a few virtual milliseconds first) and whether
//! one rank fails: its coordinator stops handing out byte ranges (a lost
//! link), or its writer is dropped mid-write.
//!
//! Checks, per seed:
//! * Every rank that ran `finish()` got the same outcome: all `Ok` with the
//!   same report, or all an error; a rank failure is named alike on every
//!   rank. A rank that failed must make every rank fail: never a success
//!   with that rank's bytes missing.
//! * On success the output, read back (gunzipped, padding dropped), holds
//!   exactly every rank's lines (ordered: rank 0's, then rank 1's, ...),
//!   a padded output starts a chunk at every stripe boundary, and after a
//!   power loss the output is unchanged (unless durability is `None`).
//! * On failure the final name never holds the output under
//!   `AtomicRename`, and in place it is removed (unless an injected unlink
//!   fault stopped the cleanup); no fd is left open.

use super::writer::{gunzip_files, split_lines};
use super::ScriptRng;
use iokernel::runtime;
use iokernel::sim::{self, OpClass, SimKernel};
use iokernel::writer::coord::{rank_failure_of, CoordFuture, Coordinator, RankFailure, RankGroup};
use iokernel::writer::{
    shard_path, ContentKind, Durability, Layout, ParallelWriter, WriteReport, WriterConfig,
};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const STRIPE: usize = 64 << 10;
const OUT: &str = "/ranks.pfw";

/// A rank of a simulated run: an in-process rank whose calls may be slow
/// (a virtual delay before each) and whose byte ranges and slots may stop
/// coming (after `reserves_ok` reservations every one fails, as a lost
/// link to the others would), both drawn from the seed.
///
/// ```
/// use iokernel::writer::coord::{Coordinator, RankGroup};
/// use iokernel_sim::workload::SimulatedRank;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let ranks: Vec<Arc<dyn Coordinator>> = RankGroup::ranks(2)
///     .into_iter()
///     .map(|rank| Arc::new(SimulatedRank::new(rank, Duration::from_millis(2), Some(0))) as _)
///     .collect();
/// assert_eq!((ranks[1].kind(), ranks[1].rank()), ("simulated", 1));
/// ```
pub struct SimulatedRank {
    inner: Arc<dyn Coordinator>,
    delay: Duration,
    reserves_ok: u64,
    reserves: AtomicU64,
    lost: AtomicBool,
}

impl SimulatedRank {
    /// Wrap rank `inner`.
    pub fn new(
        inner: Arc<dyn Coordinator>,
        delay: Duration,
        reserves_ok: Option<u64>,
    ) -> SimulatedRank {
        SimulatedRank {
            inner,
            delay,
            reserves_ok: reserves_ok.unwrap_or(u64::MAX),
            reserves: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        }
    }

    /// Whether a reservation failed (the lost link showed).
    pub fn link_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Fail this reservation if the link is lost by now.
    fn link(&self) -> io::Result<()> {
        if self.reserves.fetch_add(1, Ordering::Relaxed) < self.reserves_ok {
            return Ok(());
        }
        self.lost.store(true, Ordering::Relaxed);
        Err(io::Error::from_raw_os_error(libc_econnreset()))
    }

    async fn slow(&self) {
        if !self.delay.is_zero() {
            runtime::sleep(self.delay).await;
        }
    }
}

impl fmt::Debug for SimulatedRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedRank")
            .field("rank", &self.inner.rank())
            .field("delay", &self.delay)
            .finish()
    }
}

impl Coordinator for SimulatedRank {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn ranks(&self) -> usize {
        self.inner.ranks()
    }

    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        Box::pin(async move {
            self.slow().await;
            self.link()?;
            self.inner.reserve_bytes(len).await
        })
    }

    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        Box::pin(async move {
            self.slow().await;
            self.link()?;
            self.inner.reserve_slots(count).await
        })
    }

    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        Box::pin(async move {
            self.slow().await;
            self.inner.all_gather(bytes).await
        })
    }

    fn abandon(&self, failure: RankFailure) {
        self.inner.abandon(failure);
    }
}

/// ECONNRESET (Linux's number; the sim is Linux-shaped).
fn libc_econnreset() -> i32 {
    104
}

/// How one rank misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RankFault {
    None,
    /// `reserve_bytes` fails after this many calls.
    LosesLink(u64),
    /// The writer is dropped after this many lines.
    Dropped(usize),
}

#[derive(Clone, Debug)]
struct Plan {
    layout: Layout,
    gzip_level: Option<u32>,
    ordered: bool,
    durability: Durability,
    chunk_bytes: u64,
    /// Lines of each producer of each rank.
    inputs: Vec<Vec<Vec<Vec<u8>>>>,
    delays_ms: Vec<u64>,
    faults: Vec<RankFault>,
}

impl Plan {
    fn draw(rng: &mut ScriptRng) -> Plan {
        let ranks = 2 + rng.below(3) as usize;
        let layout = match rng.below(4) {
            0 => Layout::Striped,
            1 => Layout::PaddedStriped,
            n => Layout::Sharded {
                shards: 1 + rng.below(2) as usize,
                merge: n == 3,
            },
        };
        let ordered = rng.below(2) == 0;
        let durability = match rng.below(4) {
            0 => Durability::None,
            1 => Durability::Fsync,
            _ => Durability::AtomicRename,
        };
        let producers = if ordered {
            1
        } else {
            1 + rng.below(2) as usize
        };
        let inputs = (0..ranks)
            .map(|r| {
                (0..producers)
                    .map(|p| {
                        let count = rng.below(30) as usize;
                        (0..count)
                            .map(|i| {
                                // One in 40 spans two stripes (a chunk
                                // over several slots when padded).
                                let len = match rng.below(40) {
                                    0 => STRIPE as u64 + rng.below(STRIPE as u64 / 2),
                                    1..=4 => rng.below(1500),
                                    _ => rng.below(120),
                                };
                                format!(
                                    "{{\"r\":{r},\"p\":{p},\"i\":{i},\"t\":\"{}\"}}",
                                    "y".repeat(len as usize)
                                )
                                .into_bytes()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let delays_ms = (0..ranks)
            .map(|_| {
                if rng.below(3) == 0 {
                    1 + rng.below(5)
                } else {
                    0
                }
            })
            .collect();
        let mut faults = vec![RankFault::None; ranks];
        match rng.below(6) {
            0 => faults[rng.below(ranks as u64) as usize] = RankFault::LosesLink(rng.below(3)),
            1 => {
                faults[rng.below(ranks as u64) as usize] =
                    RankFault::Dropped(rng.below(20) as usize)
            }
            _ => {}
        }
        Plan {
            layout,
            gzip_level: (rng.below(2) == 0).then(|| rng.below(3) as u32),
            ordered,
            durability,
            chunk_bytes: [1024, 4096, 16_384][rng.below(3) as usize],
            inputs,
            delays_ms,
            faults,
        }
    }

    fn config(&self, coord: Arc<dyn Coordinator>) -> WriterConfig {
        WriterConfig::new(OUT)
            .layout(self.layout)
            .gzip(self.gzip_level)
            .ordered(self.ordered)
            .content(ContentKind::JsonLines)
            .durability(self.durability)
            .producers(self.inputs[0].len())
            .mimic_lustre(Some("64K:2".into()))
            .chunk_bytes(Some(self.chunk_bytes))
            .coordinator(coord)
    }

    fn describe(&self) -> String {
        format!(
            "ranks={} {} gzip={:?} ordered={} {:?} chunk={} delays_ms={:?} faults={:?}",
            self.inputs.len(),
            self.layout,
            self.gzip_level,
            self.ordered,
            self.durability,
            self.chunk_bytes,
            self.delays_ms,
            self.faults
        )
    }

    /// Final names the output takes.
    fn finals(&self) -> Vec<PathBuf> {
        match self.layout {
            Layout::Sharded {
                shards,
                merge: false,
            } => (0..self.inputs.len() * shards)
                .map(|i| shard_path(OUT.as_ref(), i))
                .collect(),
            _ => vec![PathBuf::from(OUT)],
        }
    }
}

/// What one rank's writer did.
enum Outcome {
    NotCreated(io::Error),
    Dropped,
    Finished(io::Result<WriteReport>),
}

async fn run_rank(config: WriterConfig, inputs: Vec<Vec<Vec<u8>>>, fault: RankFault) -> Outcome {
    let writer = match ParallelWriter::new(config).await {
        Ok(writer) => writer,
        Err(e) => return Outcome::NotCreated(e),
    };
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|lines| {
            let mut producer = writer.producer();
            runtime::spawn(async move {
                for line in lines {
                    producer.write_line(&line).await?;
                }
                producer.close().await
            })
        })
        .collect();
    if let RankFault::Dropped(after) = fault {
        let mut producer = writer.producer();
        for i in 0..after {
            let _ = producer
                .write_line(format!("{{\"dropped\":{i}}}").as_bytes())
                .await;
        }
        drop(producer);
        drop(writer);
        for task in tasks {
            let _ = task.await;
        }
        return Outcome::Dropped;
    }
    let mut producer_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => producer_error = Some(e),
            Err(join) => producer_error = Some(io::Error::other(join.to_string())),
        }
    }
    let result = writer.finish().await;
    match (result, producer_error) {
        (Ok(_), Some(e)) => Outcome::Finished(Err(io::Error::other(format!(
            "a producer failed ({e}) yet finish() returned Ok"
        )))),
        (result, _) => Outcome::Finished(result),
    }
}

/// Run the writer-ranks workload for `seed`.
pub(crate) fn run(kernel: &Arc<SimKernel>, seed: u64) -> Result<String, String> {
    let mut rng = ScriptRng::new(seed, 0x0052_A4C5);
    let plan = Plan::draw(&mut rng);
    let what = plan.describe();
    let sim_ranks: Vec<Arc<SimulatedRank>> = RankGroup::ranks(plan.inputs.len())
        .into_iter()
        .enumerate()
        .map(|(r, inner)| {
            let link = match plan.faults[r] {
                RankFault::LosesLink(after) => Some(after),
                _ => None,
            };
            let delay = Duration::from_millis(plan.delays_ms[r]);
            Arc::new(SimulatedRank::new(inner, delay, link))
        })
        .collect();
    let rank_tasks = {
        let plan = plan.clone();
        let coords: Vec<Arc<dyn Coordinator>> = sim_ranks
            .iter()
            .map(|rank| Arc::clone(rank) as Arc<dyn Coordinator>)
            .collect();
        async move {
            let handles: Vec<_> = coords
                .into_iter()
                .enumerate()
                .map(|(r, coord)| {
                    let config = plan.config(coord);
                    runtime::spawn(run_rank(config, plan.inputs[r].clone(), plan.faults[r]))
                })
                .collect();
            let mut outcomes = Vec::new();
            for handle in handles {
                outcomes.push(handle.await.map_err(|e| e.to_string()));
            }
            outcomes
        }
    };
    let outcomes = sim::run(kernel, rank_tasks).map_err(|e| format!("{what}: {e}"))?;
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: a rank task failed: {e}"))?;
    if kernel.open_fds() != 0 {
        return Err(format!(
            "{what}: {} fds open after every rank ended",
            kernel.open_fds()
        ));
    }
    let link_lost = sim_ranks.iter().any(|rank| rank.link_lost());
    let verdict = judge(kernel, &plan, &outcomes, link_lost).map_err(|e| format!("{what}: {e}"))?;
    Ok(format!("{what}: {verdict}"))
}

fn judge(
    kernel: &SimKernel,
    plan: &Plan,
    outcomes: &[Outcome],
    link_lost: bool,
) -> Result<String, String> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for (r, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Dropped => {}
            Outcome::NotCreated(e) | Outcome::Finished(Err(e)) => errors.push((r, e)),
            Outcome::Finished(Ok(report)) => reports.push((r, report)),
        }
    }
    let dropped = outcomes.iter().any(|o| matches!(o, Outcome::Dropped));
    if !reports.is_empty() && !errors.is_empty() {
        return Err(format!(
            "ranks disagree: rank {} succeeded, rank {} failed: {}",
            reports[0].0, errors[0].0, errors[0].1
        ));
    }
    if !reports.is_empty() && link_lost {
        return Err("a rank's reservation failed yet the ranks succeeded".into());
    }
    if !reports.is_empty() && dropped {
        return Err("a rank was dropped mid-write yet the others succeeded".into());
    }
    let options = kernel.core().options();
    let no_kernel_faults = OpClass::ALL
        .iter()
        .all(|class| options.faults_of(*class).probability == 0.0);
    let dropped_rank = plan
        .faults
        .iter()
        .any(|f| matches!(f, RankFault::Dropped(_)));
    let no_rank_faults = !dropped_rank && !link_lost;
    if no_kernel_faults && no_rank_faults {
        if let Some((r, e)) = errors.first() {
            return Err(format!("rank {r} failed with no fault injected: {e}"));
        }
    }
    if let Some((r, e)) = errors.first() {
        // Every agreed failure names the same rank on every rank.
        let named: Vec<Option<usize>> = errors
            .iter()
            .map(|(_, e)| rank_failure_of(e).map(|f| f.rank))
            .collect();
        if named[0].is_some() && named.iter().any(|n| *n != named[0]) {
            return Err(format!(
                "ranks name different failing ranks: {named:?} (rank {r}: {e})"
            ));
        }
        check_no_complete_leftover(kernel, plan)?;
        return Ok(format!("every rank failed: {e}"));
    }
    let report = reports[0].1;
    if reports
        .iter()
        .any(|(_, rep)| rep.bytes_out != report.bytes_out || rep.files != report.files)
    {
        return Err("ranks report different outputs".into());
    }
    check_output(kernel, plan, report)
}

fn unlink_faults(kernel: &SimKernel) -> bool {
    kernel
        .core()
        .stats()
        .injected
        .keys()
        .any(|(class, _)| *class == OpClass::Metadata)
}

fn check_no_complete_leftover(kernel: &SimKernel, plan: &Plan) -> Result<(), String> {
    let written = plan.inputs.iter().flatten().flatten().count();
    for path in plan.finals() {
        let Some(bytes) = kernel.read_file(&path) else {
            continue;
        };
        if plan.durability == Durability::AtomicRename {
            // Only a rename that happened before a later step failed puts
            // a file here, and then it is complete.
            let lines =
                gunzip_files(plan.gzip_level.is_some(), &[bytes]).and_then(|d| split_lines(&d));
            let complete = lines.is_ok_and(|l| l.len() == written);
            let one_shard = plan.finals().len() > 1;
            if !complete && !one_shard {
                return Err(format!(
                    "{} is incomplete after every rank failed",
                    path.display()
                ));
            }
        } else if !unlink_faults(kernel) {
            return Err(format!(
                "{} was left behind after every rank failed",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `(start, end)` of every gzip member of `bytes`.
fn members(bytes: &[u8]) -> Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let mut member = flate2::bufread::GzDecoder::new(rest);
        io::copy(&mut member, &mut io::sink())
            .map_err(|e| format!("gzip member at {start}: {e}"))?;
        rest = member.into_inner();
        out.push((start, bytes.len() - rest.len()));
    }
    Ok(out)
}

/// Every stripe boundary starts a chunk, or lies inside a chunk that began
/// on an earlier boundary (a chunk larger than a stripe).
fn check_boundaries(plan: &Plan, bytes: &[u8]) -> Result<(), String> {
    let spans = if plan.gzip_level.is_some() {
        members(bytes)?
    } else {
        Vec::new()
    };
    let mut at = STRIPE;
    while at < bytes.len() {
        let ok = if plan.gzip_level.is_some() {
            spans
                .iter()
                .any(|&(s, e)| s == at || (s < at && at < e && s % STRIPE == 0))
        } else if bytes[at - 1] == b'\n' {
            bytes[at] == b'{'
        } else {
            let start = bytes[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            start % STRIPE == 0
        };
        if !ok {
            return Err(format!("no chunk starts at stripe boundary {at}"));
        }
        at += STRIPE;
    }
    Ok(())
}

fn check_output(kernel: &SimKernel, plan: &Plan, report: &WriteReport) -> Result<String, String> {
    let mut files = Vec::new();
    for path in &report.files {
        files.push(
            kernel
                .read_file(path)
                .ok_or_else(|| format!("{} missing after every rank succeeded", path.display()))?,
        );
    }
    if plan.layout == Layout::PaddedStriped {
        check_boundaries(plan, &files[0])?;
    }
    let got = split_lines(&gunzip_files(plan.gzip_level.is_some(), &files)?)?;
    let want: Vec<Vec<u8>> = plan.inputs.concat().concat();
    let kept_shards = matches!(plan.layout, Layout::Sharded { merge: false, .. });
    if plan.ordered && !kept_shards {
        if got != want {
            return Err(format!(
                "ordered output is not rank 0's lines, then rank 1's, ... ({} lines read, {} written)",
                got.len(),
                want.len()
            ));
        }
    } else {
        let mut count: HashMap<&[u8], isize> = HashMap::new();
        want.iter().for_each(|l| *count.entry(l).or_default() += 1);
        got.iter().for_each(|l| *count.entry(l).or_default() -= 1);
        if count.values().any(|n| *n != 0) {
            return Err(format!(
                "lines lost or duplicated: {} read back, {} written",
                got.len(),
                want.len()
            ));
        }
    }
    let bytes_out: u64 = files.iter().map(|f| f.len() as u64).sum();
    if bytes_out != report.bytes_out {
        return Err(format!(
            "report says {} bytes out, the files hold {bytes_out}",
            report.bytes_out
        ));
    }
    if plan.durability == Durability::None {
        return Ok(format!(
            "ok, {bytes_out} bytes from {} ranks (no sync)",
            report.ranks
        ));
    }
    kernel.crash();
    for (path, before) in report.files.iter().zip(&files) {
        if kernel.read_file(path).as_ref() != Some(before) {
            return Err(format!(
                "{} changed in the power loss after every rank succeeded",
                path.display()
            ));
        }
    }
    Ok(format!(
        "ok, {bytes_out} bytes from {} ranks, survived power loss",
        report.ranks
    ))
}
