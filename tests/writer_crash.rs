//! Crash-state exploration of the parallel writer ([`explore_crashes`]):
//! every layout in each durability mode, the sharded merge, the `iok
//! pgzip` pipeline (one ordered gzip writer), with and without fsync
//! faults; and three broken writers (canaries) it must catch.
//!
//! The promise checked: with `AtomicRename` the final name holds the
//! complete output or nothing (or the previous file) in every crash state;
//! with `Fsync`, once `finish()` returned Ok, nothing is missing.

use flate2::read::MultiGzDecoder;
use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::sim::{
    explore_crashes, ClassFaults, CrashReport, CrashState, ExploreOptions, OpClass, SimKernel,
    SimOptions,
};
use iokernel::sys::Errno;
use iokernel::writer::{
    shard_path, ContentKind, Durability, Layout, ParallelWriter, StripeBytes, WriterConfig,
};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The mark a workload sets once `finish()` (or its stand-in) returned Ok.
const FINISHED: &str = "finish returned Ok";
const OUT: &str = "/out.pfw";

/// `producers` groups of JSON lines, distinct across groups, each with
/// `pad_bytes` of pseudo-random hex (compresses to about half).
fn producer_lines(producers: usize, per_producer: usize, pad_bytes: usize) -> Vec<Vec<Vec<u8>>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut hex = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        b"0123456789abcdef"[(state >> 60) as usize] as char
    };
    (0..producers)
        .map(|p| {
            (0..per_producer)
                .map(|i| {
                    let pad: String = (0..pad_bytes).map(|_| hex()).collect();
                    format!("{{\"producer\":{p},\"line\":{i},\"pad\":\"{pad}\"}}").into_bytes()
                })
                .collect()
        })
        .collect()
}

/// One output the writer must produce: its final path and its lines.
struct Output {
    path: PathBuf,
    lines: Vec<Vec<u8>>,
}

fn outputs(layout: Layout, groups: &[Vec<Vec<u8>>]) -> Vec<Output> {
    match layout {
        Layout::Sharded {
            shards,
            merge: false,
        } => (0..shards)
            .map(|shard| Output {
                path: shard_path(OUT.as_ref(), shard),
                lines: groups
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| p % shards == shard)
                    .flat_map(|(_, g)| g.iter().cloned())
                    .collect(),
            })
            .collect(),
        _ => vec![Output {
            path: OUT.into(),
            lines: groups.iter().flatten().cloned().collect(),
        }],
    }
}

/// Why `bytes` is not the complete output of `lines` (in any order, gzip
/// members and padding allowed), or None when it is.
fn incomplete(bytes: &[u8], lines: &[Vec<u8>], gzip: bool) -> Option<String> {
    let text = if gzip {
        let mut text = Vec::new();
        if let Err(e) = MultiGzDecoder::new(bytes).read_to_end(&mut text) {
            return Some(format!("{} bytes are not complete gzip: {e}", bytes.len()));
        }
        text
    } else {
        bytes.to_vec()
    };
    if !text.is_empty() && !text.ends_with(b"\n") {
        return Some("the last line is cut".into());
    }
    let mut got: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .map(|l| &l[..l.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)])
        .filter(|l| !l.is_empty())
        .collect();
    let mut want: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    got.sort_unstable();
    want.sort_unstable();
    (got != want).then(|| format!("{} lines where {} were written", got.len(), want.len()))
}

/// The writer's crash promise for `durability`, over `outputs`;
/// `previous` is what the final name held before the run, if anything.
fn promise(
    state: &CrashState<'_>,
    durability: Durability,
    outputs: &[Output],
    gzip: bool,
    previous: Option<&[u8]>,
) -> Result<(), String> {
    let finished = state.marked(FINISHED);
    for output in outputs {
        let found = state.read_file(&output.path);
        let shown = output.path.display();
        // An overwrite under Fsync writes as AtomicRename does: the old
        // file stays whole (and present) until the new one replaces it.
        let replacing = previous.is_some() && durability == Durability::Fsync;
        let durability = match replacing {
            true => Durability::AtomicRename,
            false => durability,
        };
        match (found, durability) {
            (None, _) if replacing => {
                return Err(format!("{shown}: the previous file is gone"));
            }
            (None, _) if finished => return Err(format!("{shown} is missing after finish()")),
            (None, _) => {}
            (Some(bytes), Durability::AtomicRename) if previous == Some(&bytes[..]) => {
                if finished {
                    return Err(format!(
                        "{shown} still holds the previous file after finish()"
                    ));
                }
            }
            (Some(bytes), Durability::AtomicRename) => {
                if let Some(why) = incomplete(&bytes, &output.lines, gzip) {
                    return Err(format!("{shown} is partial under AtomicRename: {why}"));
                }
            }
            (Some(bytes), _) if finished => {
                if let Some(why) = incomplete(&bytes, &output.lines, gzip) {
                    return Err(format!("{shown} is incomplete after finish(): {why}"));
                }
            }
            (Some(_), _) => {}
        }
    }
    Ok(())
}

struct Case {
    layout: Layout,
    durability: Durability,
    gzip: bool,
    ordered: bool,
    producers: usize,
    previous: Option<&'static [u8]>,
    /// Filler bytes the last successful run reported.
    padding_bytes: Arc<AtomicUsize>,
}

/// Padded cases: lines of about 1.2 KiB in 40 KiB chunks, so 64 KiB slots
/// close with filler (about 150 KiB in all).
const PADDED_LINE_PAD_BYTES: usize = 1200;
const PADDED_CHUNK_BYTES: u64 = 40 << 10;

impl Case {
    fn new(layout: Layout, durability: Durability) -> Case {
        Case {
            layout,
            durability,
            gzip: false,
            ordered: false,
            producers: 2,
            previous: None,
            padding_bytes: Arc::default(),
        }
    }

    fn padded(&self) -> bool {
        self.layout == Layout::PaddedStriped
    }

    fn config(&self) -> WriterConfig {
        let stripe = StripeBytes::new(64 << 10).expect("64 KiB is a stripe size");
        WriterConfig::new(OUT)
            .layout(self.layout)
            .durability(self.durability)
            .content(ContentKind::JsonLines)
            .gzip(self.gzip.then_some(1))
            .ordered(self.ordered)
            .producers(self.producers)
            .mimic_lustre(None)
            .chunk_bytes(Some(if self.padded() {
                PADDED_CHUNK_BYTES
            } else {
                1024
            }))
            .stripe_bytes(Some(stripe))
            .overwrite(self.previous.is_some())
    }

    /// Explore the writer's run under `sim`; the report, and whether
    /// `finish()` returned Ok.
    fn explore(&self, sim: SimOptions) -> (CrashReport, bool) {
        let pad_bytes = if self.padded() {
            PADDED_LINE_PAD_BYTES
        } else {
            16
        };
        let groups = producer_lines(self.producers, 120 / self.producers, pad_bytes);
        let outputs = outputs(self.layout, &groups);
        let finished = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&finished);
        let padding = Arc::clone(&self.padding_bytes);
        let (config, previous) = (self.config(), self.previous);
        let workload = move |kernel: Arc<SimKernel>| async move {
            if let Some(old) = previous {
                kernel
                    .write_file_durable(OUT, old)
                    .expect("set up the old file");
            }
            let result = async {
                let writer = ParallelWriter::new(config).await?;
                for group in &groups {
                    let mut producer = writer.producer();
                    for line in group {
                        producer.write_line(line).await?;
                    }
                    producer.close().await?;
                }
                writer.finish().await
            }
            .await;
            if let Ok(report) = result {
                kernel.crash_mark(FINISHED);
                done.store(1, Ordering::Relaxed);
                padding.store(report.padding_bytes as usize, Ordering::Relaxed);
            }
        };
        let (durability, gzip) = (self.durability, self.gzip);
        let report = explore_crashes(&ExploreOptions::new(sim), workload, |state| {
            promise(state, durability, &outputs, gzip, previous)
        })
        .expect("the simulated run ends");
        (report, finished.load(Ordering::Relaxed) == 1)
    }

    /// No fault: finish() succeeds and no crash state breaks the promise.
    fn holds(&self) -> CrashReport {
        let (report, finished) = self.explore(SimOptions::new(11));
        eprintln!(
            "{} {:?} gzip={} padding={}: {} crash points, {} states explored ({} generated, complete: {}) in {:?}",
            self.layout,
            self.durability,
            self.gzip,
            self.padding_bytes.load(Ordering::Relaxed),
            report.crash_points,
            report.states_explored,
            report.states_generated,
            report.complete,
            report.elapsed
        );
        assert!(finished, "finish() failed without faults");
        if let Some(v) = &report.violation {
            panic!("{}: {v}", self.layout);
        }
        assert!(report.crash_points >= 3, "{report:?}");
        let padding = self.padding_bytes.load(Ordering::Relaxed);
        assert_eq!(self.padded(), padding > 0, "padding {padding} bytes");
        assert!(report.states_explored >= 10, "{report:?}");
        report
    }
}

/// The simulated machine with fsync failing (EIO) at `probability`.
fn sync_faults(seed: u64, probability: f64) -> SimOptions {
    let mut sim = SimOptions::new(seed);
    sim.faults[OpClass::Sync.index()] = ClassFaults {
        probability,
        errnos: vec![Errno::EIO],
    };
    sim
}

const SHARDED: Layout = Layout::Sharded {
    shards: 2,
    merge: false,
};
const MERGED: Layout = Layout::Sharded {
    shards: 2,
    merge: true,
};

#[test]
fn crash_striped_fsync() {
    Case::new(Layout::Striped, Durability::Fsync).holds();
}

#[test]
fn crash_striped_atomic_rename() {
    Case::new(Layout::Striped, Durability::AtomicRename).holds();
}

#[test]
fn crash_padded_fsync() {
    Case::new(Layout::PaddedStriped, Durability::Fsync).holds();
}

#[test]
fn crash_padded_atomic_rename() {
    Case::new(Layout::PaddedStriped, Durability::AtomicRename).holds();
}

#[test]
fn crash_padded_gzip_atomic_rename() {
    let case = Case {
        gzip: true,
        ..Case::new(Layout::PaddedStriped, Durability::AtomicRename)
    };
    case.holds();
}

#[test]
fn crash_sharded_fsync() {
    Case::new(SHARDED, Durability::Fsync).holds();
}

#[test]
fn crash_sharded_atomic_rename() {
    Case::new(SHARDED, Durability::AtomicRename).holds();
}

#[test]
fn crash_sharded_merge_fsync() {
    Case::new(MERGED, Durability::Fsync).holds();
}

#[test]
fn crash_sharded_merge_atomic_rename() {
    Case::new(MERGED, Durability::AtomicRename).holds();
}

/// `iok pgzip`'s pipeline: one producer, ordered, gzip members.
#[test]
fn crash_pgzip_pipeline_in_both_modes() {
    for durability in [Durability::Fsync, Durability::AtomicRename] {
        let case = Case {
            gzip: true,
            ordered: true,
            producers: 1,
            ..Case::new(Layout::Striped, durability)
        };
        case.holds();
    }
}

/// Replacing an existing output: every crash state shows the old file,
/// nothing, or the complete new one.
#[test]
fn crash_atomic_rename_over_a_previous_file() {
    let case = Case {
        previous: Some(b"{\"old\":true}\n"),
        ..Case::new(Layout::Striped, Durability::AtomicRename)
    };
    case.holds();
}

/// `--force` under the default durability: replacing an existing output
/// keeps the old file in every crash state until the complete new one
/// takes its name (never nothing, never a partial file), in both plain
/// layouts.
#[test]
fn crash_fsync_over_a_previous_file_keeps_it_until_the_new_one_is_complete() {
    for layout in [Layout::Striped, Layout::PaddedStriped] {
        let case = Case {
            previous: Some(b"{\"old\":true}\n"),
            ..Case::new(layout, Durability::Fsync)
        };
        case.holds();
    }
}

/// The same with fsync failing at random: a run whose finish() fails
/// leaves the old file; across the seeds both outcomes happen.
#[test]
fn crash_fsync_over_a_previous_file_with_fsync_faults() {
    let mut outcomes = [0usize; 2];
    for seed in 0..6 {
        let case = Case {
            previous: Some(b"{\"old\":true}\n"),
            ..Case::new(Layout::Striped, Durability::Fsync)
        };
        let (report, finished) = case.explore(sync_faults(seed, 0.3));
        if let Some(v) = report.violation {
            panic!("seed {seed}: {v}");
        }
        outcomes[usize::from(finished)] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// With fsync failing at random, the writer either reports the failure
/// or keeps its promise; across the seeds both happen.
#[test]
fn crash_with_fsync_faults_keeps_the_promise_or_fails_finish() {
    let mut outcomes = [0usize; 2];
    for seed in 0..6 {
        for durability in [Durability::Fsync, Durability::AtomicRename] {
            let case = Case::new(Layout::Striped, durability);
            let (report, finished) = case.explore(sync_faults(seed, 0.3));
            if let Some(v) = report.violation {
                panic!("seed {seed} {durability:?}: {v}");
            }
            outcomes[usize::from(finished)] += 1;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// `Durability::None` promises nothing: the Fsync promise must be seen
/// broken (the check is not vacuous).
#[test]
fn crash_without_durability_is_caught_by_the_fsync_promise() {
    let groups = producer_lines(1, 10, 16);
    let outputs = outputs(Layout::Striped, &groups);
    let config = Case::new(Layout::Striped, Durability::None).config();
    let workload = |kernel: Arc<SimKernel>| async move {
        let result = async {
            let writer = ParallelWriter::new(config).await?;
            let mut producer = writer.producer();
            for line in &groups[0] {
                producer.write_line(line).await?;
            }
            producer.close().await?;
            writer.finish().await
        }
        .await;
        if result.is_ok() {
            kernel.crash_mark(FINISHED);
        }
    };
    let report = explore_crashes(&ExploreOptions::new(SimOptions::new(2)), workload, |s| {
        promise(s, Durability::Fsync, &outputs, false, None)
    })
    .unwrap();
    let violation = report.violation.expect("a lost output is caught");
    assert!(
        violation.message.contains("missing after finish()"),
        "{violation}"
    );
}

// ---- canaries: small broken writers built on iokernel::io ----

const DATA: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";

async fn create(path: &str) -> i32 {
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
    io::open(path, flags, 0o644).await.expect("create")
}

async fn write_data(fd: i32) {
    let BufResult(n, _) = io::pwrite(fd, DATA, 0).await;
    assert_eq!(n.expect("pwrite"), DATA.len());
}

async fn fsync_dir() -> std::io::Result<()> {
    let dir = io::open("/", OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
    let synced = io::fsync(dir).await;
    io::close(dir).await?;
    synced
}

fn data_lines() -> Vec<Vec<u8>> {
    DATA.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn check(state: &CrashState<'_>, durability: Durability) -> Result<(), String> {
    let outputs = [Output {
        path: OUT.into(),
        lines: data_lines(),
    }];
    promise(state, durability, &outputs, false, None)
}

#[test]
fn crash_canary_rename_before_fsync_is_caught() {
    let workload = |kernel: Arc<SimKernel>| async move {
        let fd = create("/.out.tmp").await;
        write_data(fd).await;
        io::rename("/.out.tmp", OUT).await.expect("rename");
        io::fsync(fd).await.expect("fsync");
        io::close(fd).await.expect("close");
        fsync_dir().await.expect("fsync dir");
        kernel.crash_mark(FINISHED);
    };
    let report = explore_crashes(&ExploreOptions::new(SimOptions::new(1)), workload, |s| {
        check(s, Durability::AtomicRename)
    })
    .unwrap();
    let violation = report
        .violation
        .expect("renaming before the fsync is caught");
    assert!(
        violation.message.contains("partial under AtomicRename"),
        "{violation}"
    );
    assert!(
        violation.point_label.starts_with("fsync of fd"),
        "{violation}"
    );
}

#[test]
fn crash_canary_the_same_writer_with_fsync_first_passes() {
    let workload = |kernel: Arc<SimKernel>| async move {
        let fd = create("/.out.tmp").await;
        write_data(fd).await;
        io::fsync(fd).await.expect("fsync");
        io::close(fd).await.expect("close");
        io::rename("/.out.tmp", OUT).await.expect("rename");
        fsync_dir().await.expect("fsync dir");
        kernel.crash_mark(FINISHED);
    };
    let report = explore_crashes(&ExploreOptions::new(SimOptions::new(1)), workload, |s| {
        check(s, Durability::AtomicRename)
    })
    .unwrap();
    assert_eq!(report.violation, None);
    assert!(report.complete, "{report:?}");
    assert_eq!(report.crash_points, 4, "{report:?}");
}

#[test]
fn crash_canary_skipped_directory_fsync_is_caught() {
    let workload = |kernel: Arc<SimKernel>| async move {
        let fd = create(OUT).await;
        write_data(fd).await;
        io::fsync(fd).await.expect("fsync");
        io::close(fd).await.expect("close");
        kernel.crash_mark(FINISHED);
    };
    let report = explore_crashes(&ExploreOptions::new(SimOptions::new(1)), workload, |s| {
        check(s, Durability::Fsync)
    })
    .unwrap();
    let violation = report
        .violation
        .expect("the missing directory fsync is caught");
    assert!(
        violation.message.contains("missing after finish()"),
        "{violation}"
    );
    assert_eq!(violation.point_label, "end of workload");
}

#[test]
fn crash_canary_trusting_a_retried_fsync_is_caught() {
    // Find a seed whose first fsync fails (the canary then retries it).
    for seed in 0..64 {
        let failures = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&failures);
        let workload = move |kernel: Arc<SimKernel>| async move {
            let fd = create(OUT).await;
            write_data(fd).await;
            while io::fsync(fd).await.is_err() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            io::close(fd).await.expect("close");
            while fsync_dir().await.is_err() {}
            kernel.crash_mark(FINISHED);
        };
        let report = explore_crashes(
            &ExploreOptions::new(sync_faults(seed, 0.5)),
            workload,
            |s| check(s, Durability::Fsync),
        )
        .unwrap();
        if failures.load(Ordering::Relaxed) == 0 {
            assert_eq!(report.violation, None, "seed {seed}: no fsync failed");
            continue;
        }
        let violation = report.violation.expect("the dropped data is caught");
        assert!(
            violation.message.contains("incomplete after finish()"),
            "{violation}"
        );
        return;
    }
    panic!("no seed in 0..64 failed the first fsync at probability 0.5");
}
