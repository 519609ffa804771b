//! The parallel writer across ranks on the real kernel: ranks are threads,
//! each with its own runtime and producers, meeting in a `RankGroup`.
//! Every layout x gzip x ordered x durability at 1, 2 and 4 ranks, read
//! back and checked (multiset of lines; exact rank order when ordered;
//! gzip decodes whole; padded outputs start a chunk at every stripe
//! boundary); then the failures: a failing rank, settings that differ, an
//! output that exists, a rank dropped mid-write.

use flate2::read::MultiGzDecoder;
use iokernel::runtime::{self, Runtime};
use iokernel::sys::real::thread::spawn_named;
use iokernel::writer::coord::{rank_failure_of, CoordFuture, Coordinator, RankFailure, RankGroup};
use iokernel::writer::{
    errno_of, is_temp_name, shard_path, ContentKind, Durability, Layout, ParallelWriter,
    WriteReport, WriterConfig,
};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

const STRIPE: u64 = 64 << 10;
const MIMIC: &str = "64K:2";
const CHUNK: u64 = 16 << 10;

const LAYOUTS: [Layout; 4] = [
    Layout::Striped,
    Layout::PaddedStriped,
    Layout::Sharded {
        shards: 2,
        merge: true,
    },
    Layout::Sharded {
        shards: 2,
        merge: false,
    },
];
const DURABILITIES: [Durability; 3] = [
    Durability::None,
    Durability::Fsync,
    Durability::AtomicRename,
];

#[derive(Clone, Copy, Debug)]
struct Case {
    layout: Layout,
    gzip: bool,
    ordered: bool,
    durability: Durability,
}

impl Case {
    fn config(&self, path: &Path) -> WriterConfig {
        WriterConfig::new(path)
            .layout(self.layout)
            .ordered(self.ordered)
            .gzip(self.gzip.then_some(1))
            .content(ContentKind::JsonLines)
            .durability(self.durability)
            .producers(self.producers())
            .chunk_bytes(Some(CHUNK))
            .mimic_lustre(Some(MIMIC.into()))
    }

    /// Ordered outputs are checked line for line: one producer per rank,
    /// so a rank's part is its lines in order.
    fn producers(&self) -> usize {
        if self.ordered {
            1
        } else {
            2
        }
    }
}

/// Lines of rank `r`, producer `p`: small (padded outputs then start a
/// chunk at every stripe boundary), a few of several KiB.
fn lines_of(r: usize, p: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let pad = if (i * 7 + r * 3 + p) % 23 == 0 {
                3000 + i * 11
            } else {
                (i * 37 + r * 11 + p * 5) % 200
            };
            format!(
                "{{\"r\":{r},\"p\":{p},\"i\":{i},\"pad\":\"{}\"}}",
                "x".repeat(pad)
            )
            .into_bytes()
        })
        .collect()
}

/// Run `body(rank, coordinator)` on one thread per rank, each with its
/// own runtime; the results by rank.
fn on_ranks<T: Send + 'static>(
    coords: Vec<Arc<dyn Coordinator>>,
    body: impl Fn(usize, Arc<dyn Coordinator>) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let body = Arc::new(body);
    let (tx, rx) = mpsc::channel();
    let n = coords.len();
    let threads: Vec<_> = coords
        .into_iter()
        .enumerate()
        .map(|(r, coord)| {
            let (body, tx) = (Arc::clone(&body), tx.clone());
            spawn_named(format!("rank-{r}"), move || {
                let _ = tx.send((r, body(r, coord)));
            })
            .expect("spawn a rank")
        })
        .collect();
    let mut got: Vec<(usize, T)> = (0..n)
        .map(|_| rx.recv().expect("a rank's result"))
        .collect();
    for thread in threads {
        thread.join().expect("rank thread");
    }
    got.sort_by_key(|g| g.0);
    got.into_iter().map(|g| g.1).collect()
}

fn rank_runtime() -> Runtime {
    Runtime::builder()
        .name("rank")
        .compute_threads(1)
        .io_threads(2)
        .build()
        .expect("runtime builds")
}

/// One rank's writer: every producer's lines from spawned tasks; `drop_after`
/// lines in, the writer is dropped without finish().
async fn write_rank(
    config: WriterConfig,
    inputs: Vec<Vec<Vec<u8>>>,
    drop_after: Option<usize>,
) -> io::Result<WriteReport> {
    let writer = ParallelWriter::new(config).await?;
    let mut tasks = Vec::new();
    for lines in inputs {
        let mut producer = writer.producer();
        tasks.push(runtime::spawn(async move {
            for line in lines {
                producer.write_line(&line).await?;
            }
            producer.close().await
        }));
    }
    if let Some(lines) = drop_after {
        let mut producer = writer.producer();
        for line in lines_of(99, 0, lines) {
            producer.write_line(&line).await?;
        }
        drop(producer);
        drop(writer);
        for task in tasks {
            let _ = task.await;
        }
        return Err(io::Error::other("dropped on purpose"));
    }
    // A producer's error does not skip finish(): finish() is where every
    // rank learns the agreed outcome.
    let mut producer_error = None;
    for task in tasks {
        if let Err(e) = task.await.map_err(|e| io::Error::other(e.to_string()))? {
            producer_error.get_or_insert(e);
        }
    }
    match (writer.finish().await, producer_error) {
        (Ok(_), Some(e)) => panic!("a producer failed ({e}) yet finish() returned Ok"),
        (result, _) => result,
    }
}

fn inputs_of(case: &Case, r: usize) -> Vec<Vec<Vec<u8>>> {
    (0..case.producers())
        .map(|p| lines_of(r, p, 40 + 13 * r))
        .collect()
}

fn decode(case: &Case, bytes: &[u8]) -> Vec<u8> {
    if !case.gzip {
        return bytes.to_vec();
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the output is valid gzip, every member");
    out
}

/// Lines with padding spaces dropped.
fn lines(decoded: &[u8]) -> Vec<Vec<u8>> {
    assert!(decoded.is_empty() || decoded.ends_with(b"\n"));
    decoded
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l[..l.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1)].to_vec())
        .collect()
}

fn check_padded(case: &Case, bytes: &[u8]) {
    let mut at = STRIPE as usize;
    while at < bytes.len() {
        if case.gzip {
            assert_eq!(
                &bytes[at..at + 2],
                &[0x1f, 0x8b],
                "{case:?}: no member at {at}"
            );
        } else {
            assert!(
                bytes[at - 1] == b'\n' && bytes[at] == b'{',
                "{case:?}: no line starts at stripe boundary {at}"
            );
        }
        at += STRIPE as usize;
    }
}

fn no_temp_left(dir: &Path) -> bool {
    !std::fs::read_dir(dir)
        .unwrap()
        .any(|e| is_temp_name(&e.unwrap().file_name().to_string_lossy()))
}

fn run_case(case: Case, ranks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pfw");
    let config = case.config(&path);
    let reports = on_ranks(RankGroup::ranks(ranks), move |r, coord| {
        let config = config.clone().coordinator(coord);
        rank_runtime().block_on(write_rank(config, inputs_of(&case, r), None))
    });
    let reports: Vec<WriteReport> = reports
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{case:?} at {ranks} ranks: {e}")))
        .collect();
    let what = format!("{case:?} at {ranks} ranks");
    for (r, report) in reports.iter().enumerate() {
        assert_eq!((report.rank, report.ranks), (r, ranks), "{what}");
        assert_eq!(report.bytes_out, reports[0].bytes_out, "{what}");
        assert_eq!(report.files, reports[0].files, "{what}");
    }
    let rank_in: u64 = reports.iter().map(|r| r.rank_bytes_in).sum();
    assert_eq!(rank_in, reports[0].bytes_in, "{what}");
    let files: Vec<Vec<u8>> = reports[0]
        .files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{what}: {}: {e}", f.display())))
        .collect();
    let on_disk: u64 = files.iter().map(|f| f.len() as u64).sum();
    assert_eq!(on_disk, reports[0].bytes_out, "{what}");
    if let Layout::Sharded { shards, merge } = case.layout {
        let kept = (0..ranks * shards)
            .filter(|&i| shard_path(&path, i).exists())
            .count();
        assert_eq!(
            kept,
            if merge { 0 } else { ranks * shards },
            "{what}: shards"
        );
    }
    assert!(no_temp_left(dir.path()), "{what}: temporary file left");
    if case.layout == Layout::PaddedStriped {
        check_padded(&case, &files[0]);
    }
    let got: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| lines(&decode(&case, f)))
        .collect();
    let all: Vec<Vec<Vec<Vec<u8>>>> = (0..ranks).map(|r| inputs_of(&case, r)).collect();
    if case.ordered && !matches!(case.layout, Layout::Sharded { merge: false, .. }) {
        let want: Vec<Vec<u8>> = all.concat().concat();
        assert!(
            got == want,
            "{what}: not rank 0's lines, then rank 1's, ..."
        );
        return;
    }
    let mut count: HashMap<Vec<u8>, isize> = HashMap::new();
    for line in all.concat().concat() {
        *count.entry(line).or_default() += 1;
    }
    for line in got {
        *count.entry(line).or_default() -= 1;
    }
    assert!(
        count.values().all(|n| *n == 0),
        "{what}: lines lost or duplicated"
    );
}

#[test]
fn every_layout_gzip_order_and_durability_across_1_2_and_4_ranks() {
    for layout in LAYOUTS {
        for gzip in [false, true] {
            for ordered in [false, true] {
                for durability in DURABILITIES {
                    let case = Case {
                        layout,
                        gzip,
                        ordered,
                        durability,
                    };
                    for ranks in [1, 2, 4] {
                        run_case(case, ranks);
                    }
                }
            }
        }
    }
}

#[test]
fn ranks_that_write_nothing_still_make_a_valid_output() {
    for layout in LAYOUTS {
        for ordered in [false, true] {
            let case = Case {
                layout,
                gzip: true,
                ordered,
                durability: Durability::Fsync,
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.pfw.gz");
            let config = case.config(&path);
            let reports = on_ranks(RankGroup::ranks(3), move |_, coord| {
                let config = config.clone().coordinator(coord);
                rank_runtime().block_on(write_rank(config, vec![Vec::new()], None))
            });
            for report in reports {
                let report = report.unwrap();
                for file in &report.files {
                    let bytes = std::fs::read(file).unwrap();
                    assert!(decode(&case, &bytes).is_empty(), "{case:?}");
                }
            }
        }
    }
}

/// A rank's coordinator that fails `reserve_bytes` after `ok` calls, as a
/// lost connection to the others would.
#[derive(Debug)]
struct FailsToReserve {
    inner: Arc<dyn Coordinator>,
    ok: u64,
    calls: AtomicU64,
}

impl Coordinator for FailsToReserve {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn ranks(&self) -> usize {
        self.inner.ranks()
    }
    fn kind(&self) -> &'static str {
        "failing"
    }
    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        if self.calls.fetch_add(1, Ordering::Relaxed) >= self.ok {
            return Box::pin(async { Err(io::Error::from_raw_os_error(libc::ECONNRESET)) });
        }
        self.inner.reserve_bytes(len)
    }
    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        self.inner.reserve_slots(count)
    }
    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        self.inner.all_gather(bytes)
    }
    fn abandon(&self, failure: RankFailure) {
        self.inner.abandon(failure)
    }
}

/// Every rank failed, each error naming `rank` (and `op`, with `errno`).
fn all_name(results: &[io::Result<WriteReport>], rank: usize, op: &str, errno: Option<i32>) {
    for (r, result) in results.iter().enumerate() {
        let err = result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("rank {r} succeeded"));
        let failure = rank_failure_of(err).unwrap_or_else(|| panic!("rank {r}: {err}"));
        assert_eq!(failure.rank, rank, "rank {r}: {err}");
        assert!(failure.op.contains(op), "rank {r}: {err}");
        assert!(err.to_string().contains(&format!("rank {rank}")), "{err}");
        if errno.is_some() {
            assert_eq!(errno_of(err), errno, "rank {r}: {err}");
        }
    }
}

#[test]
fn a_failing_rank_fails_every_rank_and_leaves_no_output() {
    for durability in DURABILITIES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pfw");
        let case = Case {
            layout: Layout::Striped,
            gzip: false,
            ordered: false,
            durability,
        };
        let config = case.config(&path);
        let results = on_ranks(RankGroup::ranks(3), move |r, coord| {
            let coord: Arc<dyn Coordinator> = if r == 2 {
                Arc::new(FailsToReserve {
                    inner: coord,
                    ok: 1,
                    calls: AtomicU64::new(0),
                })
            } else {
                coord
            };
            let config = config.clone().coordinator(coord);
            rank_runtime().block_on(write_rank(config, inputs_of(&case, r), None))
        });
        all_name(&results, 2, "reserve_bytes", Some(libc::ECONNRESET));
        assert!(!path.exists(), "{durability:?}: a failed output is left");
        assert!(no_temp_left(dir.path()), "{durability:?}");
    }
}

#[test]
fn settings_that_differ_between_ranks_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pfw");
    let other = dir.path().join("other.pfw");
    let (p, o) = (path.clone(), other.clone());
    let results = on_ranks(RankGroup::ranks(3), move |r, coord| {
        let case = Case {
            layout: Layout::Striped,
            gzip: false,
            ordered: false,
            durability: Durability::Fsync,
        };
        let config = case.config(if r == 1 { &o } else { &p }).coordinator(coord);
        rank_runtime().block_on(write_rank(config, inputs_of(&case, r), None))
    });
    all_name(&results, 1, "configuration", None);
    let text = results[0].as_ref().unwrap_err().to_string();
    assert!(text.contains("other.pfw"), "{text}");
    assert!(!path.exists() && !other.exists());
}

#[test]
fn an_invalid_setting_on_one_rank_fails_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pfw");
    let p = path.clone();
    let results = on_ranks(RankGroup::ranks(2), move |r, coord| {
        let config = WriterConfig::new(&p)
            .producers(if r == 1 { 0 } else { 1 })
            .coordinator(coord);
        rank_runtime().block_on(write_rank(config, Vec::new(), None))
    });
    all_name(&results, 1, "configuration", None);
    assert!(!path.exists());
}

#[test]
fn an_existing_output_fails_every_rank_with_rank_0s_eexist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pfw");
    std::fs::write(&path, b"keep me\n").unwrap();
    for layout in [Layout::Striped, Layout::PaddedStriped] {
        for ordered in [false, true] {
            let case = Case {
                layout,
                gzip: false,
                ordered,
                durability: Durability::Fsync,
            };
            let config = case.config(&path);
            let results = on_ranks(RankGroup::ranks(2), move |r, coord| {
                let config = config.clone().coordinator(coord);
                rank_runtime().block_on(write_rank(config, inputs_of(&case, r), None))
            });
            all_name(&results, 0, "create", Some(libc::EEXIST));
            assert_eq!(std::fs::read(&path).unwrap(), b"keep me\n");
            assert!(no_temp_left(dir.path()), "{case:?}");
        }
    }
}

#[test]
fn a_rank_dropped_mid_write_fails_the_others_and_no_final_name_appears() {
    for layout in LAYOUTS {
        for durability in [Durability::Fsync, Durability::AtomicRename] {
            for ordered in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("out.pfw");
                let case = Case {
                    layout,
                    gzip: false,
                    ordered,
                    durability,
                };
                let config = case.config(&path);
                let results = on_ranks(RankGroup::ranks(3), move |r, coord| {
                    let config = config.clone().coordinator(coord);
                    let drop_after = (r == 1).then_some(50);
                    rank_runtime().block_on(write_rank(config, inputs_of(&case, r), drop_after))
                });
                for (r, result) in results.iter().enumerate() {
                    let err = result
                        .as_ref()
                        .err()
                        .unwrap_or_else(|| panic!("{case:?}: rank {r} succeeded"));
                    if r != 1 {
                        let named = rank_failure_of(err).map(|f| f.rank);
                        assert_eq!(named, Some(1), "{case:?} rank {r}: {err}");
                    }
                }
                let finals: Vec<PathBuf> = match layout {
                    Layout::Sharded { merge: false, .. } => {
                        (0..6).map(|i| shard_path(&path, i)).collect()
                    }
                    _ => vec![path.clone()],
                };
                for f in finals {
                    assert!(!f.exists(), "{case:?}: {} is left", f.display());
                }
                let left: Vec<_> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(left.is_empty(), "{case:?}: files left: {left:?}");
            }
        }
    }
}

#[test]
fn ranks_as_tasks_on_one_runtime() {
    let rt = Runtime::builder()
        .name("ranks")
        .compute_threads(1)
        .io_threads(2)
        .build()
        .unwrap();
    for layout in LAYOUTS {
        for ordered in [false, true] {
            let case = Case {
                layout,
                gzip: true,
                ordered,
                durability: Durability::AtomicRename,
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.pfw.gz");
            let reports: Vec<WriteReport> = rt.block_on(async {
                let tasks: Vec<_> = RankGroup::ranks(3)
                    .into_iter()
                    .enumerate()
                    .map(|(r, coord)| {
                        let config = case.config(&path).coordinator(coord);
                        runtime::spawn(write_rank(config, inputs_of(&case, r), None))
                    })
                    .collect();
                let mut reports = Vec::new();
                for task in tasks {
                    reports.push(task.await.unwrap().unwrap());
                }
                reports
            });
            let got: Vec<Vec<u8>> = reports[0]
                .files
                .iter()
                .flat_map(|f| lines(&decode(&case, &std::fs::read(f).unwrap())))
                .collect();
            let mut want: Vec<Vec<u8>> =
                (0..3).flat_map(|r| inputs_of(&case, r).concat()).collect();
            if !(ordered && layout != LAYOUTS[3]) {
                let mut got = got;
                got.sort();
                want.sort();
                assert!(got == want, "{case:?}");
            } else {
                assert!(got == want, "{case:?}");
            }
        }
    }
}

/// `(start, end)` of every gzip member of `bytes`.
fn members(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let mut member = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut member, &mut std::io::sink()).expect("a whole member");
        rest = member.into_inner();
        out.push((start, bytes.len() - rest.len()));
    }
    out
}

#[test]
fn padded_chunks_larger_than_a_stripe_span_slots_reserved_together() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pfw");
        let case = Case {
            layout: Layout::PaddedStriped,
            gzip,
            ordered: false,
            durability: Durability::Fsync,
        };
        // Some lines of 1.5 stripes: their chunks span two slots.
        let big = |r: usize, p: usize| -> Vec<Vec<u8>> {
            (0..12)
                .map(|i| {
                    let pad = if i % 4 == 1 {
                        STRIPE as usize * 3 / 2
                    } else {
                        500 + i * 40
                    };
                    format!(
                        "{{\"r\":{r},\"p\":{p},\"i\":{i},\"t\":\"{}\"}}",
                        "z".repeat(pad)
                    )
                    .into_bytes()
                })
                .collect()
        };
        let config = case.config(&path).gzip(gzip.then_some(0));
        let results = on_ranks(RankGroup::ranks(3), move |r, coord| {
            let config = config.clone().coordinator(coord);
            let inputs = (0..2).map(|p| big(r, p)).collect();
            rank_runtime().block_on(write_rank(config, inputs, None))
        });
        for result in &results {
            result.as_ref().expect("every rank succeeds");
        }
        let bytes = std::fs::read(&path).unwrap();
        let stripe = STRIPE as usize;
        let spans = if gzip { members(&bytes) } else { Vec::new() };
        let mut at = stripe;
        while at < bytes.len() {
            let ok = if gzip {
                spans
                    .iter()
                    .any(|&(s, e)| s == at || (s < at && at < e && s % stripe == 0))
            } else if bytes[at - 1] == b'\n' {
                bytes[at] == b'{'
            } else {
                let start = bytes[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                start % stripe == 0
            };
            assert!(ok, "gzip {gzip}: stripe boundary {at} starts no chunk and is inside none that began on one");
            at += stripe;
        }
        let mut got = lines(&decode(&case, &bytes));
        let mut want: Vec<Vec<u8>> = (0..3)
            .flat_map(|r| (0..2).flat_map(move |p| big(r, p)))
            .collect();
        got.sort();
        want.sort();
        assert!(got == want, "gzip {gzip}: lines lost or duplicated");
    }
}

/// A rank's coordinator whose collectives fail from the `ok`-th on, on
/// this rank only (as a broken link would), while its group handle lives on.
#[derive(Debug)]
struct FailsToGather {
    inner: Arc<dyn Coordinator>,
    ok: u64,
    calls: AtomicU64,
}

impl Coordinator for FailsToGather {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn ranks(&self) -> usize {
        self.inner.ranks()
    }
    fn kind(&self) -> &'static str {
        "failing"
    }
    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        self.inner.reserve_bytes(len)
    }
    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        self.inner.reserve_slots(count)
    }
    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        if self.calls.fetch_add(1, Ordering::Relaxed) >= self.ok {
            return Box::pin(async { Err(io::Error::from_raw_os_error(libc::ECONNRESET)) });
        }
        self.inner.all_gather(bytes)
    }
    fn abandon(&self, failure: RankFailure) {
        self.inner.abandon(failure)
    }
}

#[test]
fn a_rank_whose_link_breaks_fails_the_others_instead_of_stranding_them() {
    // new() makes 4 collectives (0..=3), finish() 4 or 5 more: the link
    // breaks in new() or in finish().
    for (layout, ordered) in [(Layout::Striped, false), (Layout::Striped, true)] {
        for ok in 0..=6 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out.pfw");
            let case = Case {
                layout,
                gzip: false,
                ordered,
                durability: Durability::AtomicRename,
            };
            let config = case.config(&path);
            let results = on_ranks(RankGroup::ranks(3), move |r, coord| {
                // Keep the group handle alive past the rank's end.
                let keep = Arc::clone(&coord);
                let coord: Arc<dyn Coordinator> = if r == 1 {
                    Arc::new(FailsToGather {
                        inner: coord,
                        ok,
                        calls: AtomicU64::new(0),
                    })
                } else {
                    coord
                };
                let config = config.clone().coordinator(coord);
                let result = rank_runtime().block_on(write_rank(config, inputs_of(&case, r), None));
                (result, keep)
            });
            for (r, (result, _)) in results.iter().enumerate() {
                let err = result
                    .as_ref()
                    .err()
                    .unwrap_or_else(|| panic!("rank {r} succeeded"));
                if r != 1 {
                    let named = rank_failure_of(err).map(|f| f.rank);
                    assert_eq!(named, Some(1), "{case:?} ok {ok}: rank {r}: {err}");
                }
            }
            assert!(!path.exists(), "{case:?} ok {ok}: the output appeared");
            assert!(no_temp_left(dir.path()), "{case:?} ok {ok}");
        }
    }
}
