//! One writer run on the simulated kernel, decoded from arbitrary bytes,
//! and the checks on its output. Shared (`#[path]`) by the fuzz target
//! `fuzz/fuzz_targets/writer.rs` and by `tests/writer_fuzz_corpus.rs`,
//! which replays the committed seed corpus under `cargo nextest`.
//!
//! It uses only the public API (`iokernel::sim`, `iokernel::writer`): the
//! code that runs the writer on the simulator sits above both, and the sim
//! runner may not import the writer (tests/layers.rs).
//!
//! Input layout (missing bytes read as 0):
//! * 0..8 seed;
//! * 8 layout: `% 4` striped, padded-striped, sharded+merge, sharded;
//!   `/ 4 % 3 + 1` shards;
//! * 9 gzip: `% 12` below 10 is the level, else no gzip;
//! * 10 flags: bit 0 ordered, bit 1 JSON lines (else binary), bit 2
//!   final newline off, bits 3..5 durability (none, fsync, atomic rename,
//!   fsync), bit 5 completion reordering, bits 6..8 sim driver (pool,
//!   ring, epoll semantics, kqueue semantics);
//! * 11 producers `% 3 + 1`;
//! * 12 bit 0 stripe 64 or 128 KiB; bits 1..3 chunk 256 B, 1, 4, 16 KiB;
//! * 13..21 per-op-class fault probability (`byte / 255 * 0.2`), 21 short
//!   I/O probability (same scale);
//! * then ops of 2 bytes, `who` and `len`, the short ones followed by
//!   their `len % 64` payload bytes: producer `who % producers`, kind
//!   `who / 3 % 6`: a line, raw bytes, an empty line, a line longer than a
//!   stripe (whole, or in pieces when `len` is odd), a line piece, or the
//!   payload with no final newline of its own.
//!
//! The run ends either with a report, and then the output decodes to what
//! the producers wrote (every byte, every line; in each producer's order
//! when ordered; exactly when ordered with one producer), padded slots
//! start with a chunk and gzip members follow each other with nothing
//! between them; or with an error naming an errno (and, unless metadata
//! ops were failed, no output left). A panic or a stuck run (sim
//! `max_steps`) is a finding.

use iokernel::sim::{self, OpClass, SimDriver, SimKernel, SimOptions};
use iokernel::writer::{
    errno_of, planned_paths, shard_path, ContentKind, Durability, Layout, ParallelWriter,
    StripeBytes, WriteReport, WriterConfig,
};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Most ops a run takes (keeps one execution in the milliseconds).
const OPS_MAX: usize = 64;
/// Most lines longer than a stripe one run writes.
const LONG_MAX: usize = 2;
/// Scheduler steps before the run is declared stuck.
const MAX_STEPS: u64 = 2_000_000;
/// The output path on the simulated file system.
const OUT: &str = "/out.pfw";

/// What a producer is told to do.
#[derive(Clone, Debug)]
pub enum Op {
    /// `write_line`.
    Line(Vec<u8>),
    /// `write`.
    Raw(Vec<u8>),
    /// `write_line_piece` for each piece in turn.
    Pieces(Vec<Vec<u8>>),
}

/// A decoded input: the writer's configuration, the simulator's options and
/// every producer's script.
#[derive(Clone, Debug)]
pub struct Case {
    pub config: WriterConfig,
    pub options: SimOptions,
    pub scripts: Vec<Vec<Op>>,
    pub stripe_bytes: u64,
    pub chunk_bytes: u64,
    pub faults: bool,
}

impl Case {
    fn gzip(&self) -> bool {
        self.config.gzip_level.is_some()
    }

    fn json(&self) -> bool {
        self.config.content == ContentKind::JsonLines
    }

    /// Plain (uncompressed) padded-striped: filler is in the decoded bytes.
    fn plain_padded(&self) -> bool {
        self.config.layout == Layout::PaddedStriped && !self.gzip()
    }
}

/// A printable line of `len` bytes (a line longer than a stripe) that
/// gzip shrinks only to about three quarters, so compressed output still
/// crosses stripe boundaries.
fn long_line(len: usize, salt: u8) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = u64::from(salt) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[(state >> 58) as usize]
        })
        .collect()
}

/// Decode `data` into a case.
pub fn decode(data: &[u8]) -> Case {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut seed = [0u8; 8];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = byte(i);
    }
    let shards = usize::from(byte(8) / 4 % 3) + 1;
    let layout = match byte(8) % 4 {
        0 => Layout::Striped,
        1 => Layout::PaddedStriped,
        2 => Layout::Sharded {
            shards,
            merge: true,
        },
        _ => Layout::Sharded {
            shards,
            merge: false,
        },
    };
    let gzip = u32::from(byte(9) % 12);
    let gzip = (gzip < 10).then_some(gzip);
    let flags = byte(10);
    let ordered = flags & 1 == 1;
    let content = if flags & 2 == 2 {
        ContentKind::JsonLines
    } else {
        ContentKind::Binary
    };
    let mut final_newline = flags & 4 == 0;
    if layout == Layout::PaddedStriped && content == ContentKind::JsonLines && gzip.is_none() {
        // Refused by `validate` (padding goes before a chunk's newline).
        final_newline = true;
    }
    let durability = match flags >> 3 & 3 {
        0 => Durability::None,
        2 => Durability::AtomicRename,
        _ => Durability::Fsync,
    };
    let driver = match flags >> 6 {
        0 => SimDriver::Pool,
        1 => SimDriver::Ring,
        2 => SimDriver::EpollSemantics,
        _ => SimDriver::KqueueSemantics,
    };
    let producers = usize::from(byte(11) % 3) + 1;
    let stripe = if byte(12) & 1 == 0 {
        StripeBytes::MIN
    } else {
        StripeBytes::new(2 * StripeBytes::MIN.get()).expect("128 KiB is a stripe")
    };
    let stripe_bytes = stripe.get();
    let chunk_bytes = 256u64 << (2 * (byte(12) >> 1 & 3));

    let scale = |b: u8| f64::from(b) / 255.0 * 0.2;
    let mut options = SimOptions::new(u64::from_le_bytes(seed));
    let mut faults = false;
    for class in OpClass::ALL {
        let b = byte(13 + class.index());
        faults |= b != 0;
        options.faults[class.index()].probability = scale(b);
        options.faults[class.index()].errnos = class.legal_errnos().to_vec();
    }
    options.short_io_probability = scale(byte(21));
    options.reorder_completions = flags & 32 == 32;
    options.driver = driver;
    options.max_steps = MAX_STEPS;

    let config = WriterConfig::new(OUT)
        .mimic_lustre(None)
        .layout(layout)
        .gzip(gzip)
        .ordered(ordered)
        .content(content)
        .final_newline(final_newline)
        .durability(durability)
        .producers(producers)
        .stripe_bytes(Some(stripe))
        .chunk_bytes(Some(chunk_bytes));
    // Pieces end a slot inside a line, before its filler: not for plain
    // padded JSON lines.
    let pieces_ok = !(layout == Layout::PaddedStriped && content == ContentKind::JsonLines);

    let mut scripts = vec![Vec::new(); producers];
    let mut rest = data.get(22..).unwrap_or(&[]);
    let mut long = 0;
    let mut ops = 0;
    while let [who, len, tail @ ..] = rest {
        if ops == OPS_MAX {
            break;
        }
        ops += 1;
        rest = tail;
        let producer = usize::from(*who) % producers;
        let n = usize::from(*len % 64).min(rest.len());
        let kind = *who / 3 % 6;
        let mut payload = || {
            let (p, tail) = rest.split_at(n);
            rest = tail;
            p.to_vec()
        };
        let op = match kind {
            0 => Op::Line(payload()),
            1 => Op::Raw(payload()),
            2 => Op::Line(Vec::new()),
            3 if long < LONG_MAX => {
                long += 1;
                let line = long_line(stripe_bytes as usize + usize::from(*len) * 61, *len);
                if *len & 1 == 1 && pieces_ok {
                    let mut pieces: Vec<Vec<u8>> =
                        line.chunks(7 << 10).map(<[u8]>::to_vec).collect();
                    pieces.push(b"\n".to_vec());
                    Op::Pieces(pieces)
                } else {
                    Op::Line(line)
                }
            }
            3 => Op::Line(Vec::new()),
            4 if pieces_ok => Op::Pieces(vec![payload()]),
            _ => {
                // The payload with any final newline removed.
                let mut p = payload();
                while p.last() == Some(&b'\n') {
                    p.pop();
                }
                Op::Raw(p)
            }
        };
        scripts[producer].push(op);
    }
    Case {
        config,
        options,
        scripts,
        stripe_bytes,
        chunk_bytes,
        faults,
    }
}

/// What one producer's script puts in the output (before any filler).
fn expected_of(case: &Case, script: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in script {
        match op {
            Op::Line(line) => {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            Op::Raw(bytes) => out.extend_from_slice(bytes),
            Op::Pieces(pieces) => pieces.iter().for_each(|p| out.extend_from_slice(p)),
        }
    }
    if case.json() && case.config.final_newline && out.last().is_some_and(|b| *b != b'\n') {
        out.push(b'\n');
    }
    out
}

/// Run `script` on `producer`, then close it.
async fn produce(mut producer: iokernel::writer::Producer, script: Vec<Op>) -> std::io::Result<()> {
    for op in &script {
        match op {
            Op::Line(line) => producer.write_line(line).await?,
            Op::Raw(bytes) => producer.write(bytes).await?,
            Op::Pieces(pieces) => {
                for piece in pieces {
                    producer.write_line_piece(piece).await?;
                }
            }
        }
    }
    producer.close().await
}

/// What `finish()` returned, and what each producer's script returned.
pub type RunOutcome = (std::io::Result<WriteReport>, Vec<std::io::Result<()>>);

/// Run the writer for `case`; the sim run's own failure (a stuck run) is
/// returned as the outer error.
fn run(kernel: &Arc<SimKernel>, case: &Case) -> Result<RunOutcome, sim::SimError> {
    let config = case.config.clone();
    let scripts = case.scripts.clone();
    sim::run(kernel, async move {
        let writer = match ParallelWriter::new(config).await {
            Ok(writer) => writer,
            Err(e) => return (Err(e), Vec::new()),
        };
        let mut tasks = Vec::new();
        for script in scripts {
            let producer = writer.producer();
            tasks.push(iokernel::runtime::spawn(produce(producer, script)));
        }
        let mut produced = Vec::new();
        for task in tasks {
            produced.push(task.await.expect("a producer task ends"));
        }
        (writer.finish().await, produced)
    })
}

/// Every gzip member of `bytes`: (start offset, length, decoded bytes).
/// Panics on bytes that are not back-to-back members.
pub fn members(bytes: &[u8]) -> Vec<(usize, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let mut member = Vec::new();
        if let Err(e) = decoder.read_to_end(&mut member) {
            panic!(
                "no gzip member at offset {start} of {} (first bytes {:02x?}): {e}",
                bytes.len(),
                &rest[..rest.len().min(16)]
            );
        }
        rest = decoder.into_inner();
        let len = bytes.len() - rest.len() - start;
        out.push((start, len, member));
    }
    out
}

fn sorted(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.sort_unstable();
    v
}

/// Lines of `bytes` (split at `\n`; a final piece without one included),
/// trailing spaces trimmed when `trim`, sorted.
fn line_multiset(bytes: &[u8], trim: bool) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .map(|line| {
            let mut line = line.to_vec();
            while trim && line.last() == Some(&b' ') {
                line.pop();
            }
            line
        })
        .collect();
    if bytes.last() == Some(&b'\n') {
        lines.pop();
    }
    lines.sort_unstable();
    lines
}

/// Whether `needle` is a subsequence of `hay`.
fn subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|b| it.any(|h| h == b))
}

/// What one checked run did, so a replay can tell a vacuous check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The writer finished and its output passed the checks.
    pub finished: bool,
    /// The errno of a failed run.
    pub errno: Option<i32>,
    /// Stripe boundaries checked in padded output.
    pub boundaries: usize,
    /// Decoded output bytes compared with the producers' input.
    pub bytes: usize,
}

/// Check a finished run's output against what the producers wrote;
/// returns the boundaries checked and the bytes compared.
pub fn check_output(case: &Case, kernel: &SimKernel, report: &WriteReport) -> (usize, usize) {
    let mut checked = (0, 0);
    let mut total = 0;
    for (files, producers) in outputs(case, &report.files) {
        let ((boundaries, bytes), size) = check_files(case, kernel, &files, &producers);
        checked.0 += boundaries;
        checked.1 += bytes;
        total += size;
    }
    assert_eq!(report.bytes_out, total, "bytes_out against the files");
    checked
}

/// `files` grouped into independent outputs, each with the producers whose
/// data it holds: a shard of an unmerged sharded layout holds producers
/// `i % shards == shard`; otherwise the files are one output.
fn outputs(case: &Case, files: &[PathBuf]) -> Vec<(Vec<PathBuf>, Vec<usize>)> {
    let all = 0..case.scripts.len();
    match case.config.layout {
        Layout::Sharded {
            shards,
            merge: false,
        } => files
            .iter()
            .enumerate()
            .map(|(shard, file)| {
                let mine = all.clone().filter(|p| p % shards == shard).collect();
                (vec![file.clone()], mine)
            })
            .collect(),
        _ => vec![(files.to_vec(), all.collect())],
    }
}

/// Check `files`, in order, hold what `producers` wrote; returns the
/// boundaries checked, the bytes compared, and the files' total size.
fn check_files(
    case: &Case,
    kernel: &SimKernel,
    files: &[PathBuf],
    producers: &[usize],
) -> ((usize, usize), u64) {
    let mut raw_files = Vec::new();
    for file in files {
        let bytes = kernel
            .read_file(file)
            .unwrap_or_else(|| panic!("output {} is missing", file.display()));
        raw_files.push(bytes);
    }

    let mut decoded = Vec::new();
    let mut boundaries = 0;
    for (file, bytes) in files.iter().zip(&raw_files) {
        if case.gzip() {
            let all = members(bytes);
            if case.config.layout == Layout::PaddedStriped {
                boundaries += check_gzip_slots(case, &all, bytes.len(), file);
            }
            all.iter()
                .for_each(|(_, _, m)| decoded.extend_from_slice(m));
        } else {
            if case.plain_padded() && case.json() {
                boundaries += check_json_slots(case, bytes);
            }
            decoded.extend_from_slice(bytes);
        }
    }

    let expected: Vec<Vec<u8>> = producers
        .iter()
        .map(|p| expected_of(case, &case.scripts[*p]))
        .collect();
    let all_expected: Vec<u8> = expected.concat();
    if case.plain_padded() && !case.json() {
        // Filler is a hole (zeros): every other byte is there, once.
        let nonzero = |b: &[u8]| sorted(&b.iter().copied().filter(|b| *b != 0).collect::<Vec<_>>());
        assert!(
            nonzero(&decoded) == nonzero(&all_expected),
            "padded binary output holds other bytes than were written"
        );
        assert!(decoded.len() >= all_expected.len(), "bytes lost");
    } else if case.plain_padded() {
        assert!(
            line_multiset(&decoded, true) == line_multiset(&all_expected, true),
            "padded JSON-lines output holds other lines than were written"
        );
    } else {
        assert_eq!(decoded.len(), all_expected.len(), "decoded length");
        assert!(
            sorted(&decoded) == sorted(&all_expected),
            "output holds other bytes than were written"
        );
        // Lines stay whole in chunks unless a producer's last line lacks
        // a newline or a line was written in pieces (which cut anywhere;
        // then only one producer's ordered output keeps them whole).
        let every_line_whole = case.config.final_newline
            || expected.iter().all(|e| e.is_empty() || e.ends_with(b"\n"));
        let pieces = producers
            .iter()
            .flat_map(|p| &case.scripts[*p])
            .any(|op| matches!(op, Op::Pieces(_)));
        let lines_kept = !pieces || (case.config.ordered && producers.len() == 1);
        if case.json() && every_line_whole && lines_kept {
            assert!(
                line_multiset(&decoded, false) == line_multiset(&all_expected, false),
                "output holds other lines than were written"
            );
        }
    }
    if case.config.ordered {
        for (p, e) in expected.iter().enumerate() {
            assert!(
                subsequence(e, &decoded),
                "ordered output lost producer {p}'s order"
            );
        }
        if producers.len() == 1 && !case.plain_padded() {
            assert!(
                decoded == all_expected,
                "ordered output of one producer is not exactly its input"
            );
        }
    }
    let total: u64 = raw_files.iter().map(|f| f.len() as u64).sum();
    ((boundaries, decoded.len()), total)
}

/// Padded gzip: members are back to back (checked by [`members`]); every
/// stripe boundary is a member start, or inside a member that starts on a
/// boundary and is longer than a stripe (a chunk spanning slots).
fn check_gzip_slots(
    case: &Case,
    members: &[(usize, usize, Vec<u8>)],
    len: usize,
    file: &std::path::Path,
) -> usize {
    let stripe = case.stripe_bytes as usize;
    let mut checked = 0;
    for boundary in (stripe..len).step_by(stripe) {
        let (start, mlen, _) = members
            .iter()
            .find(|(s, l, _)| *s <= boundary && boundary < s + l)
            .expect("members cover the file");
        assert!(
            *start == boundary || (start % stripe == 0 && *mlen > stripe),
            "{}: stripe boundary {boundary} falls inside a member at {start} of {mlen} bytes",
            file.display()
        );
        checked += 1;
    }
    checked
}

/// Padded plain JSON lines: every stripe boundary starts a line, or falls
/// inside a line too long for a chunk to have been placed across it
/// otherwise (a chunk spanning slots).
fn check_json_slots(case: &Case, bytes: &[u8]) -> usize {
    let stripe = case.stripe_bytes as usize;
    let mut checked = 0;
    for boundary in (stripe..bytes.len()).step_by(stripe) {
        checked += 1;
        if bytes[boundary - 1] == b'\n' {
            continue;
        }
        let from = bytes[..boundary]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let to = bytes[boundary..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| boundary + i);
        assert!(
            to - from > stripe / 2,
            "stripe boundary {boundary} splits a {}-byte line (chunk {} bytes)",
            to - from,
            case.chunk_bytes
        );
    }
    checked
}

/// Decode `data`, run the writer on the simulator and check the outcome.
/// Panics on a finding.
pub fn check(data: &[u8]) -> Outcome {
    let case = decode(data);
    let kernel = sim::new_kernel(case.options.clone()).expect("options built from legal parts");
    let (finished, produced) = run_case(&kernel, &case);
    match finished {
        Ok(report) => {
            for (p, result) in produced.iter().enumerate() {
                if let Err(e) = result {
                    panic!("finish() succeeded but producer {p} failed: {e}");
                }
            }
            let (boundaries, bytes) = check_output(&case, &kernel, &report);
            Outcome {
                finished: true,
                errno: None,
                boundaries,
                bytes,
            }
        }
        Err(e) => {
            check_failure(&case, &kernel, &e, &produced);
            Outcome {
                errno: errno_of(&e),
                ..Outcome::default()
            }
        }
    }
}

/// Run `case` on `kernel`; a stuck run panics (a finding).
pub fn run_case(kernel: &Arc<SimKernel>, case: &Case) -> RunOutcome {
    match run(kernel, case) {
        Ok(outcome) => outcome,
        Err(e) => panic!("the writer run did not end: {e}"),
    }
}

/// A failed run names an errno (its producers too) and, unless metadata
/// ops (unlink among them) were failed, leaves none of its files.
fn check_failure(
    case: &Case,
    kernel: &SimKernel,
    e: &std::io::Error,
    produced: &[std::io::Result<()>],
) {
    assert!(case.faults, "no faults, yet the writer failed: {e}");
    assert!(errno_of(e).is_some(), "error names no errno: {e}");
    for result in produced {
        if let Err(e) = result {
            assert!(errno_of(e).is_some(), "producer error names no errno: {e}");
        }
    }
    // With AtomicRename a final name never holds a partial output: what
    // was renamed into place before a later step failed (the directory
    // fsync, another shard's rename) stays, whole.
    let finals = final_files(case);
    if case.config.durability == Durability::AtomicRename {
        for (files, producers) in outputs(case, &finals) {
            if files.iter().any(|f| kernel.read_file(f).is_some()) {
                check_files(case, kernel, &files, &producers);
            }
        }
    }
    // Anything else the writer created is removed, unless failed metadata
    // ops (unlink among them) kept it.
    let metadata_faults = kernel
        .core()
        .stats()
        .injected
        .keys()
        .any(|(class, _)| *class == OpClass::Metadata);
    if !metadata_faults {
        for path in planned_paths(&case.config) {
            let renamed =
                case.config.durability == Durability::AtomicRename && finals.contains(&path);
            assert!(
                renamed || kernel.read_file(&path).is_none(),
                "{} left behind after: {e}",
                path.display()
            );
        }
    }
}

/// The files a finished run reports, in order.
fn final_files(case: &Case) -> Vec<PathBuf> {
    match case.config.layout {
        Layout::Sharded {
            shards,
            merge: false,
        } => (0..shards)
            .map(|i| shard_path(std::path::Path::new(OUT), i))
            .collect(),
        _ => vec![PathBuf::from(OUT)],
    }
}
