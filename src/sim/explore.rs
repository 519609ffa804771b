//! [`explore_crashes`]: run a workload on the simulated kernel and check an
//! invariant against every legal post-crash state at every durability
//! point.
//!
//! Owns: the exploration loop (record the run's crash points, enumerate
//! each point's candidate states within a [`CrashBudget`], deduplicate,
//! check), [`CrashState`] (the invariant's read-only view), the report and
//! the replay handle. What a crash may leave (the model) is the machine's:
//! see `crate::sys::sim` (`fs/crash.rs`).
//!
//! # Crash points
//!
//! The run is recorded on a fresh kernel: the file system is snapshotted
//! just before every `fsync`, `fdatasync` (files and directories) and
//! `rename` the workload makes, and once more when it ends. A crash at any
//! moment between two durability calls can leave only states that a crash
//! just before the later one can leave too (the pending set only grows
//! until a durability call shrinks it), so these points cover every moment.

use super::sched::{new_kernel, run, SimError};
use crate::sys::real::RealClock;
use crate::sys::sim::fs_crash::{candidates, CrashPoint, Keep, Limits, Pending};
use crate::sys::sim::{SimCore, SimKernel, SimOptions};
use crate::sys::Clock;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How much [`explore_crashes`] may explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashBudget {
    /// Most distinct states checked in the whole exploration.
    pub states_max: usize,
    /// Most candidate states generated at one crash point.
    pub states_per_point_max: usize,
    /// At a point with at most this many pending items (writes, size
    /// changes, namespace units), every subset is tried; above it, seeded
    /// random subsets fill the per-point budget.
    pub exhaustive_items_max: usize,
    /// Torn prefixes tried per pending write (first, last and evenly
    /// spread sector boundaries).
    pub torn_per_write: usize,
    /// Torn writes end on multiples of this (a sector).
    pub granularity_bytes: u64,
}

impl Default for CrashBudget {
    /// 20 000 states, 512 per point, every subset up to 8 items, 3 torn
    /// prefixes per write at 512-byte sectors.
    fn default() -> CrashBudget {
        CrashBudget {
            states_max: 20_000,
            states_per_point_max: 512,
            exhaustive_items_max: 8,
            torn_per_write: 3,
            granularity_bytes: 512,
        }
    }
}

/// Which state to re-check alone: the run's seed, the crash point's index
/// and the candidate's index at that point. Printed as
/// `seed=S point=P state=I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayHandle {
    /// [`SimOptions::seed`] of the run.
    pub seed: u64,
    /// Index of the crash point (in the order the run reached them).
    pub point: usize,
    /// Index of the candidate state at that point.
    pub state: usize,
}

impl fmt::Display for ReplayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} point={} state={}",
            self.seed, self.point, self.state
        )
    }
}

/// What [`explore_crashes`] is asked to do.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The simulated machine the workload runs on (faults included).
    pub sim: SimOptions,
    /// The exploration's bounds.
    pub budget: CrashBudget,
    /// Check only this state (from a report's [`CrashViolation::handle`]);
    /// its seed must be `sim.seed`.
    pub replay: Option<ReplayHandle>,
}

impl ExploreOptions {
    /// Explore a run of `sim` with the default budget.
    pub fn new(sim: SimOptions) -> ExploreOptions {
        ExploreOptions {
            sim,
            budget: CrashBudget::default(),
            replay: None,
        }
    }
}

/// One recovered file system, as the invariant sees it.
pub struct CrashState<'a> {
    kernel: Arc<SimKernel>,
    point: &'a CrashPoint,
    handle: ReplayHandle,
}

impl CrashState<'_> {
    /// A fresh machine (no faults) holding the recovered file system: read
    /// it, or run recovery code on it with [`run`](crate::sim::run).
    pub fn kernel(&self) -> &Arc<SimKernel> {
        &self.kernel
    }

    /// The whole content of the regular file at `path`, if it survived.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.kernel.read_file(path)
    }

    /// The names in directory `path`, sorted.
    pub fn list_dir(&self, path: impl AsRef<Path>) -> Option<Vec<String>> {
        self.kernel.list_dir(path)
    }

    /// True when `path` survived.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.kernel.exists(path)
    }

    /// True when the workload called [`SimKernel::crash_mark`] with
    /// `label` before this crash point.
    pub fn marked(&self, label: &str) -> bool {
        self.point.marks.iter().any(|m| m == label)
    }

    /// What the workload was about to do at this crash point.
    pub fn point_label(&self) -> &str {
        &self.point.label
    }

    /// How to re-check this state alone.
    pub fn handle(&self) -> ReplayHandle {
        self.handle
    }
}

/// The first state that broke the invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashViolation {
    /// How to re-check it alone ([`ExploreOptions::replay`]).
    pub handle: ReplayHandle,
    /// What the workload was about to do (`fsync of fd 5`, `rename a -> b`,
    /// `end of workload`).
    pub point_label: String,
    /// What survived of each pending item (`write /out @0+4096: torn after
    /// 512 bytes`, `names [/out -> inode 4]: lost`).
    pub survivors: Vec<String>,
    /// Every path of the recovered file system with its size (`None` for a
    /// directory).
    pub files: Vec<(String, Option<u64>)>,
    /// The invariant's message.
    pub message: String,
}

impl fmt::Display for CrashViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crash invariant broken ({}), crash before {}: {}",
            self.handle, self.point_label, self.message
        )?;
        for line in &self.survivors {
            writeln!(f, "  pending {line}")?;
        }
        for (path, size) in &self.files {
            match size {
                Some(size) => writeln!(f, "  file {path} ({size} bytes)")?,
                None => writeln!(f, "  dir  {path}")?,
            }
        }
        Ok(())
    }
}

/// What an exploration covered, and the first violation if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// [`SimOptions::seed`] of the run.
    pub seed: u64,
    /// Durability points reached (plus the end of the workload).
    pub crash_points: usize,
    /// Distinct recovered file systems checked.
    pub states_explored: usize,
    /// Candidate states generated (before deduplication).
    pub states_generated: usize,
    /// True when every legal state (per the model, torn prefixes included)
    /// was generated at every point; false when a budget cut it short.
    pub complete: bool,
    /// The first state that broke the invariant, if any (exploration stops
    /// there).
    pub violation: Option<CrashViolation>,
    /// Wall-clock time spent, the workload's run included.
    pub elapsed: Duration,
}

/// Run `workload` on a fresh simulated kernel built from `options.sim`,
/// then check `invariant` against every legal post-crash state at every
/// durability point of the run (see the module docs for the points and
/// the machine's `fs/crash.rs` for the model), within `options.budget`.
/// States whose visible trees and marks are equal are checked once. The workload
/// gets the kernel (to set up files with
/// [`SimKernel::write_file_durable`], which makes no crash point, and to
/// place [`SimKernel::crash_mark`]s); its output is ignored. The run is
/// deterministic from the seed, so a [`ReplayHandle`] re-checks one state.
///
/// ```
/// use iokernel::buf::BufResult;
/// use iokernel::io::{self, OpenFlags};
/// use iokernel::sim::{explore_crashes, ExploreOptions, SimOptions};
///
/// // A writer that forgets to fsync the directory after creating a file.
/// let options = ExploreOptions::new(SimOptions::new(1));
/// let report = explore_crashes(
///     &options,
///     |kernel| async move {
///         let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
///         let fd = io::open("/log", flags, 0o644).await.unwrap();
///         let BufResult(n, _) = io::pwrite(fd, b"entry\n", 0).await;
///         n.unwrap();
///         io::fsync(fd).await.unwrap();
///         io::close(fd).await.unwrap();
///         kernel.crash_mark("durable"); // what we would tell the user
///     },
///     |state| match (state.marked("durable"), state.read_file("/log")) {
///         (false, _) => Ok(()),
///         (true, Some(bytes)) if bytes == b"entry\n" => Ok(()),
///         (true, other) => Err(format!("promised durable, found {other:?}")),
///     },
/// )
/// .unwrap();
/// let violation = report.violation.expect("the missing directory fsync is caught");
/// assert_eq!(violation.point_label, "end of workload");
/// assert!(violation.message.contains("found None"));
///
/// // Re-check that one state alone.
/// let replay = ExploreOptions { replay: Some(violation.handle), ..options };
/// # let workload = |kernel: std::sync::Arc<iokernel::sim::SimKernel>| async move {
/// #     let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
/// #     let fd = io::open("/log", flags, 0o644).await.unwrap();
/// #     let BufResult(n, _) = io::pwrite(fd, b"entry\n", 0).await;
/// #     n.unwrap();
/// #     io::fsync(fd).await.unwrap();
/// #     io::close(fd).await.unwrap();
/// #     kernel.crash_mark("durable");
/// # };
/// let again = explore_crashes(&replay, workload, |state| {
///     if state.marked("durable") && state.read_file("/log").is_none() {
///         return Err("lost".into());
///     }
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(again.states_explored, 1);
/// assert!(again.violation.is_some());
/// ```
pub fn explore_crashes<W, F, I>(
    options: &ExploreOptions,
    workload: W,
    mut invariant: I,
) -> Result<CrashReport, SimError>
where
    W: FnOnce(Arc<SimKernel>) -> F,
    F: Future,
    I: FnMut(&CrashState<'_>) -> Result<(), String>,
{
    let wall = RealClock::new();
    let seed = options.sim.seed;
    if let Some(handle) = options.replay.filter(|h| h.seed != seed) {
        return Err(SimError::InvalidOptions(format!(
            "replay handle {handle} is for another seed than SimOptions::seed ({seed})"
        )));
    }
    let kernel = new_kernel(options.sim.clone())?;
    kernel.record_crash_points();
    run(&kernel, workload(Arc::clone(&kernel)))?;
    let points = kernel.take_crash_points("end of workload");
    drop(kernel);
    let mut report = CrashReport {
        seed,
        crash_points: points.len(),
        states_explored: 0,
        states_generated: 0,
        complete: true,
        violation: None,
        elapsed: Duration::ZERO,
    };
    let mut seen = HashSet::new();
    'points: for (index, point) in points.iter().enumerate() {
        if options.replay.is_some_and(|h| h.point != index) {
            continue;
        }
        let items = point.fs.pending();
        let limits = limits(&options.budget, seed, index);
        let generated = candidates(&items, &limits);
        report.complete &= generated.complete;
        report.states_generated += generated.choices.len();
        for (state, choice) in generated.choices.iter().enumerate() {
            let handle = ReplayHandle {
                seed,
                point: index,
                state,
            };
            if options.replay.is_some_and(|h| h != handle) {
                continue;
            }
            let recovered = point.fs.recovered(&items, choice);
            // The invariant sees the marks too: equal trees under
            // different marks are different states.
            let key = (recovered.tree_digest(), point.marks.len());
            if options.replay.is_none() && !seen.insert(key) {
                continue;
            }
            if report.states_explored >= options.budget.states_max {
                report.complete = false;
                break 'points;
            }
            report.states_explored += 1;
            let files = recovered.listing();
            let view = CrashState {
                kernel: recovered_kernel(seed, recovered),
                point,
                handle,
            };
            if let Err(message) = invariant(&view) {
                report.violation = Some(violation(point, &items, choice, handle, files, message));
                break 'points;
            }
        }
    }
    report.elapsed = wall.now();
    Ok(report)
}

fn limits(budget: &CrashBudget, seed: u64, point: usize) -> Limits {
    Limits {
        per_point_max: budget.states_per_point_max,
        exhaustive_items_max: budget.exhaustive_items_max,
        torn_per_write: budget.torn_per_write,
        granularity_bytes: budget.granularity_bytes,
        seed: seed ^ (point as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    }
}

/// A fault-free machine holding `fs`.
fn recovered_kernel(seed: u64, fs: crate::sys::sim::fs_crash::RecoveredFs) -> Arc<SimKernel> {
    let core = Arc::new(SimCore::new(SimOptions::new(seed)));
    Arc::new(SimKernel::with_fs(core, fs))
}

fn violation(
    point: &CrashPoint,
    items: &[Pending],
    choice: &[Keep],
    handle: ReplayHandle,
    files: Vec<(String, Option<u64>)>,
    message: String,
) -> CrashViolation {
    CrashViolation {
        handle,
        point_label: point.label.clone(),
        survivors: point.fs.describe(items, choice),
        files,
        message,
    }
}
