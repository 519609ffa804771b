//! The writer workload: one `ParallelWriter` per seed with a random layout,
//! gzip on or off, ordered or not, JSON lines or binary, random producers,
//! payload sizes, stripe count and chunk size, and a random durability,
//! with every fault class on.
//!
//! Checks, per seed:
//! * Either `finish()` returns `Ok` and the output, read back (gunzipped,
//!   padding aside), holds exactly the payloads (ordered, one producer:
//!   byte for byte; ordered, many: each producer's lines in its order;
//!   otherwise the same multiset), or it returns an error that carries an
//!   errno the simulator may inject (or ENOSPC from a full disk). A
//!   producer that saw an error means `finish()` must fail too.
//! * Padded outputs: at every stripe boundary a chunk starts (a gzip
//!   member, a JSON line after a newline-terminated padded line) unless
//!   the boundary is inside a chunk that began on an earlier boundary.
//! * After `Ok` with `Fsync` or `AtomicRename`, a power loss
//!   (`SimKernel::crash`) changes nothing in the output files.
//! * On failure or drop without `finish()`, the final name never holds an
//!   incomplete file under `AtomicRename`; in place, the file is removed
//!   unless an injected unlink fault stopped the best-effort cleanup.
//! * No fd outlives a finished writer.
//! * A bystander file (some seeds) named like the writer's first
//!   temporary name survives byte for byte whatever happens: the writer
//!   never opens or removes a file it did not create.
//! * The created-files journal (`CreatedFiles::with_journal`, what `iok`'s
//!   cleanup helper follows), replayed at the end, lists exactly the files
//!   the run made that are still there and are not its kept output: a
//!   helper removing them leaves the directory as the run found it.

use super::ScriptRng;
use flate2::read::MultiGzDecoder;
use flate2::{Decompress, FlushDecompress, Status};
use iokernel::runtime;
use iokernel::sim::{self, OpClass, SimKernel};
use iokernel::writer::fs_kind::LUSTRE_MAGIC;
use iokernel::writer::{
    errno_of, is_temp_name, parse_lov, shard_path, temp_path, write_error_of, ContentKind,
    CreatedFiles, Durability, FilesystemKind, JournalRecord, Layout, ParallelWriter, StripeBytes,
    StripeRequest, WriteReport, WriterConfig,
};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

const STRIPE: usize = 64 << 10;
/// [`STRIPE`] as the writer takes it (checked equal at compile time).
const STRIPE_BYTES: StripeBytes = StripeBytes::MIN;
const _: () = assert!(STRIPE_BYTES.get() == STRIPE as u64);
const OUT: &str = "/out.data";
/// What the bystander file holds.
const BYSTANDER: &[u8] = b"not the writer's file\n";

/// What one seed asks the writer to do.
#[derive(Clone, Debug)]
struct Plan {
    layout: Layout,
    gzip_level: Option<u32>,
    ordered: bool,
    content: ContentKind,
    durability: Durability,
    stripe_count: u64,
    chunk_bytes: u64,
    drop_without_finish: bool,
    inputs: Vec<Vec<Vec<u8>>>,
    /// The stripe comes from `WriterConfig::stripe_bytes`, not the Lustre
    /// mimic: the report must keep the simulated file system's kind.
    configured_stripe: bool,
    /// One ordered JSON-lines producer whose last line has no newline,
    /// with `final_newline` off: the output must be its bytes exactly.
    exact_tail: bool,
    /// On a file system that reports Lustre's magic: lay every output file
    /// out with this stripe (`lustre.lov` set on create and read back).
    stripe_request: Option<StripeRequest>,
    /// Put a file at the writer's first temporary name before it runs.
    bystander: bool,
}

impl Plan {
    fn draw(rng: &mut ScriptRng, on_lustre: bool) -> Plan {
        let layout = match rng.below(4) {
            0 => Layout::Striped,
            1 => Layout::PaddedStriped,
            n => Layout::Sharded {
                shards: 1 + rng.below(3) as usize,
                merge: n == 3,
            },
        };
        let content = if rng.below(4) == 0 {
            ContentKind::Binary
        } else {
            ContentKind::JsonLines
        };
        let durability = match rng.below(8) {
            0 => Durability::None,
            1..=4 => Durability::Fsync,
            _ => Durability::AtomicRename,
        };
        // Binary chunks are cut anywhere, so producers' bytes interleave:
        // one producer keeps the output checkable.
        let producers = match content {
            ContentKind::Binary => 1,
            ContentKind::JsonLines => 1 + rng.below(4) as usize,
        };
        let gzip_level = (rng.below(2) == 0).then(|| rng.below(4) as u32);
        let inputs = (0..producers)
            .map(|p| {
                let count = 3 + rng.below(40) as usize;
                (0..count).map(|i| payload(rng, p, i, content)).collect()
            })
            .collect();
        let mut plan = Plan {
            layout,
            gzip_level,
            ordered: rng.below(2) == 0,
            content,
            durability,
            stripe_count: 1 + rng.below(4),
            chunk_bytes: [2048, 8192, 20_000, 65_536][rng.below(4) as usize],
            drop_without_finish: rng.below(10) == 0,
            inputs,
            configured_stripe: false,
            exact_tail: false,
            stripe_request: None,
            bystander: false,
        };
        // Drawn last, so earlier draws (and older seeds' plans) stay put.
        plan.configured_stripe = rng.below(3) == 0;
        let plain_padded = plan.layout == Layout::PaddedStriped && plan.gzip_level.is_none();
        plan.exact_tail = plan.content == ContentKind::JsonLines
            && plan.ordered
            && plan.inputs.len() == 1
            && !plain_padded
            && rng.below(2) == 0;
        if on_lustre && !plan.configured_stripe && rng.below(2) == 0 {
            plan.stripe_request = Some(StripeRequest {
                stripe_bytes: STRIPE_BYTES,
                stripe_count: plan.stripe_count as u16,
            });
        }
        plan.bystander = rng.below(3) == 0;
        plan
    }

    fn config(&self) -> WriterConfig {
        WriterConfig::new(OUT)
            .layout(self.layout)
            .gzip(self.gzip_level)
            .ordered(self.ordered)
            .content(self.content)
            .durability(self.durability)
            .producers(self.inputs.len())
            .mimic_lustre(
                (!self.configured_stripe && self.stripe_request.is_none())
                    .then(|| format!("64K:{}", self.stripe_count)),
            )
            .stripe_request(self.stripe_request)
            .stripe_bytes(self.configured_stripe.then_some(STRIPE_BYTES))
            .final_newline(!self.exact_tail)
            .chunk_bytes(Some(self.chunk_bytes))
    }

    /// What the decoded output must be when `exact_tail`: the lines joined
    /// by newlines, with none after the last.
    fn exact_bytes(&self) -> Vec<u8> {
        self.inputs.concat().join(&b'\n')
    }

    fn describe(&self) -> String {
        format!(
            "{} gzip={:?} ordered={} {:?} {:?} producers={} chunk={} configured_stripe={} \
             exact_tail={} stripe_request={:?} bystander={}",
            self.layout,
            self.gzip_level,
            self.ordered,
            self.content,
            self.durability,
            self.inputs.len(),
            self.chunk_bytes,
            self.configured_stripe,
            self.exact_tail,
            self.stripe_request
                .map(|r| (r.stripe_bytes, r.stripe_count)),
            self.bystander
        )
    }
}

/// A JSON line (no newline, no zero byte) or a binary payload (no zero
/// byte, so holes are told apart). One in 30 is larger than a stripe.
fn payload(rng: &mut ScriptRng, producer: usize, index: usize, content: ContentKind) -> Vec<u8> {
    let len = if rng.below(30) == 0 {
        STRIPE + rng.below(STRIPE as u64 / 2) as usize
    } else {
        rng.below(400) as usize
    };
    match content {
        ContentKind::JsonLines => {
            let letters: Vec<u8> = (0..len.min(64))
                .map(|_| b'a' + rng.below(26) as u8)
                .collect();
            let text: String = letters
                .iter()
                .cycle()
                .take(len)
                .map(|b| *b as char)
                .collect();
            format!("{{\"p\":{producer},\"i\":{index},\"t\":\"{text}\"}}").into_bytes()
        }
        ContentKind::Binary => (0..len.max(1)).map(|_| 1 + rng.below(255) as u8).collect(),
    }
}

/// What the writer run returned.
enum Outcome {
    /// `new()` failed.
    NotCreated(io::Error),
    /// Dropped without `finish()`.
    Dropped,
    /// `finish()` returned (boxed: a report is large); producers' errors
    /// alongside.
    Finished {
        producer_errors: Vec<io::Error>,
        result: Box<io::Result<WriteReport>>,
    },
}

async fn run_writer(plan: Plan, created: CreatedFiles) -> Outcome {
    let writer = match ParallelWriter::new(plan.config().created_files(Some(created))).await {
        Ok(writer) => writer,
        Err(e) => return Outcome::NotCreated(e),
    };
    let content = plan.content;
    let exact_tail = plan.exact_tail;
    let tasks: Vec<_> = plan
        .inputs
        .iter()
        .cloned()
        .map(|payloads| {
            let mut producer = writer.producer();
            runtime::spawn(async move {
                let last = payloads.len().saturating_sub(1);
                for (i, payload) in payloads.iter().enumerate() {
                    match content {
                        ContentKind::JsonLines if exact_tail && i == last => {
                            producer.write(payload).await?
                        }
                        ContentKind::JsonLines => producer.write_line(payload).await?,
                        ContentKind::Binary => producer.write(payload).await?,
                    }
                }
                producer.close().await
            })
        })
        .collect();
    if plan.drop_without_finish {
        drop(writer);
        for task in tasks {
            let _ = task.await;
        }
        return Outcome::Dropped;
    }
    let mut producer_errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => producer_errors.push(e),
            Err(join) => producer_errors.push(io::Error::other(join.to_string())),
        }
    }
    Outcome::Finished {
        producer_errors,
        result: Box::new(writer.finish().await),
    }
}

/// Run the writer workload for `seed`.
pub(crate) fn run(kernel: &Arc<SimKernel>, seed: u64) -> Result<String, String> {
    let mut rng = ScriptRng::new(seed, 0x0037_17E5);
    let on_lustre = kernel.core().options().fs_magic == i64::from(LUSTRE_MAGIC);
    let plan = Plan::draw(&mut rng, on_lustre);
    let what = plan.describe();
    let bystander = plan.bystander.then(|| temp_path(OUT.as_ref(), 0));
    if let Some(path) = &bystander {
        kernel
            .write_file_durable(path, BYSTANDER)
            .map_err(|e| format!("{what}: setting up the bystander: {e:?}"))?;
    }
    let before = names(kernel);
    let journal = Journal::default();
    let created = CreatedFiles::with_journal(journal.clone());
    let outcome = sim::run(kernel, run_writer(plan.clone(), created)).map_err(|e| e.to_string())?;
    let finished = matches!(&outcome, Outcome::Finished { result, producer_errors } if result.is_ok() && producer_errors.is_empty());
    check_journal(kernel, &plan, &journal, &before, finished)
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(path) = &bystander {
        if kernel.read_file(path).as_deref() != Some(BYSTANDER) {
            return Err(format!(
                "{what}: the bystander {} was changed or removed by the writer",
                path.display()
            ));
        }
    }
    let verdict = match outcome {
        Outcome::NotCreated(err) => {
            check_error(kernel, &err)?;
            check_no_complete_leftover(kernel, &plan)?;
            format!("not created: {}", short(&err))
        }
        Outcome::Dropped => {
            check_no_complete_leftover(kernel, &plan)?;
            "dropped without finish".to_string()
        }
        Outcome::Finished {
            producer_errors,
            result,
        } => {
            for err in &producer_errors {
                check_error(kernel, err)?;
            }
            if kernel.open_fds() != 0 {
                return Err(format!(
                    "{what}: {} fds open after finish",
                    kernel.open_fds()
                ));
            }
            match *result {
                Err(err) => {
                    check_error(kernel, &err)?;
                    check_no_complete_leftover(kernel, &plan)?;
                    format!("error reported: {}", short(&err))
                }
                Ok(_) if !producer_errors.is_empty() => {
                    return Err(format!(
                        "{what}: a producer failed ({}) yet finish() returned Ok",
                        producer_errors[0]
                    ))
                }
                Ok(report) => {
                    check_output(kernel, &plan, &report).map_err(|e| format!("{what}: {e}"))?
                }
            }
        }
    };
    Ok(format!("{what}: {verdict}"))
}

/// The created-files journal, kept in memory for the check.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<u8>>>);

impl io::Write for Journal {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The paths under `/` (the workload writes nowhere else).
fn names(kernel: &SimKernel) -> BTreeSet<String> {
    kernel
        .list_dir("/")
        .unwrap_or_default()
        .into_iter()
        .map(|name| format!("/{name}"))
        .collect()
}

/// The journal lists exactly the run's leftovers: files it made that are
/// still there, less its final outputs when it finished (kept) or when a
/// failure came after an atomic rename (complete, checked elsewhere).
fn check_journal(
    kernel: &SimKernel,
    plan: &Plan,
    journal: &Journal,
    before: &BTreeSet<String>,
    finished: bool,
) -> Result<(), String> {
    let bytes = journal.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let listed: BTreeSet<String> = JournalRecord::still_listed(&bytes)
        .map_err(|e| format!("journal: {e}"))?
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let finals: BTreeSet<String> = final_paths(plan).into_iter().collect();
    let made: BTreeSet<String> = names(kernel).difference(before).cloned().collect();
    let kept_may = finished || plan.durability == Durability::AtomicRename;
    let unlisted: Vec<&String> = made
        .iter()
        .filter(|p| !listed.contains(*p) && (!kept_may || !finals.contains(*p)))
        .collect();
    let stale: Vec<&String> = listed.iter().filter(|p| !made.contains(*p)).collect();
    if unlisted.is_empty() && stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the created-files journal is wrong: it misses {unlisted:?} (made by the run, \
             still there) and lists {stale:?} (not there, or not the run's); it lists {listed:?}"
        ))
    }
}

fn short(err: &io::Error) -> String {
    match write_error_of(err) {
        Some(w) => format!("{} errno {:?}", w.op(), w.errno()),
        None => err.to_string(),
    }
}

fn on_lustre(kernel: &SimKernel) -> bool {
    kernel.core().options().fs_magic == i64::from(LUSTRE_MAGIC)
}

/// Every output file carries the requested layout in `lustre.lov`, and the
/// writer sized itself from what it read back.
fn check_lustre_layout(
    kernel: &SimKernel,
    report: &WriteReport,
    request: StripeRequest,
) -> Result<(), String> {
    for path in &report.files {
        let blob = kernel
            .xattr(path, "lustre.lov")
            .ok_or_else(|| format!("{}: no lustre.lov after a stripe request", path.display()))?;
        let layout = parse_lov(&blob).map_err(|e| format!("{}: {e}", path.display()))?;
        let got = (layout.stripe_bytes, layout.stripe_count);
        let want = (request.stripe_bytes.get(), u32::from(request.stripe_count));
        if got != want {
            return Err(format!(
                "{}: lustre.lov holds (stripe, count) {got:?}, requested {want:?}",
                path.display()
            ));
        }
    }
    if report.fs_kind != FilesystemKind::Lustre || report.stripe_bytes != request.stripe_bytes.get()
    {
        return Err(format!(
            "on Lustre with a stripe request the report says {:?} with stripe {}",
            report.fs_kind, report.stripe_bytes
        ));
    }
    Ok(())
}

/// An error must carry an errno the simulator may produce.
fn check_error(kernel: &SimKernel, err: &io::Error) -> Result<(), String> {
    let Some(errno) = errno_of(err) else {
        return Err(format!("writer error without an errno: {err}"));
    };
    let options = kernel.core().options();
    let injectable = OpClass::ALL.iter().any(|class| {
        options
            .faults_of(*class)
            .errnos
            .iter()
            .any(|e| e.raw() == errno)
    });
    let disk_full =
        errno == iokernel::sys::Errno::ENOSPC.raw() && kernel.core().stats().enospc_full > 0;
    if injectable || disk_full {
        Ok(())
    } else {
        Err(format!(
            "writer error with an errno the simulator never injected: {err}"
        ))
    }
}

fn unlink_faults(kernel: &SimKernel) -> bool {
    kernel
        .core()
        .stats()
        .injected
        .keys()
        .any(|(class, _)| *class == OpClass::Metadata)
}

/// The paths a finished run leaves: the shards when they are kept, else
/// the output.
fn final_paths(plan: &Plan) -> Vec<String> {
    match plan.layout {
        Layout::Sharded {
            shards,
            merge: false,
        } => (0..shards)
            .map(|i| shard_path(OUT.as_ref(), i).display().to_string())
            .collect(),
        _ => vec![OUT.to_string()],
    }
}

/// After a failure or a drop: under `AtomicRename` the final name holds
/// nothing or the complete output; in place, the writer's files are gone
/// unless an injected fault stopped the cleanup.
fn check_no_complete_leftover(kernel: &SimKernel, plan: &Plan) -> Result<(), String> {
    for path in final_paths(plan) {
        let Some(bytes) = kernel.read_file(&path) else {
            continue;
        };
        if plan.durability == Durability::AtomicRename {
            // Only a rename that happened before a later step failed puts
            // a file here, and then it is complete.
            if plan.layout
                != (Layout::Sharded {
                    shards: 1,
                    merge: false,
                })
                && decode_lines(plan, &[bytes]).is_err()
            {
                return Err(format!(
                    "{}: {path} is incomplete after the writer failed",
                    plan.describe()
                ));
            }
        } else if !unlink_faults(kernel) {
            return Err(format!(
                "{}: {path} was left behind by a failed or dropped writer",
                plan.describe()
            ));
        }
    }
    Ok(())
}

/// The output files' bytes, decoded: gunzipped or padding stripped.
fn decode_lines(plan: &Plan, files: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let decoded = gunzip_files(plan.gzip_level.is_some(), files)?;
    Ok(match plan.content {
        // Holes read as zeros; payloads never contain one.
        ContentKind::Binary => decoded.into_iter().filter(|b| *b != 0).collect(),
        ContentKind::JsonLines => decoded,
    })
}

/// The files' bytes concatenated, each gunzipped (every member) when
/// `gzip`.
pub(super) fn gunzip_files(gzip: bool, files: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut decoded = Vec::new();
    for bytes in files {
        if gzip {
            MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut decoded)
                .map_err(|e| format!("output is not valid gzip: {e}"))?;
        } else {
            decoded.extend_from_slice(bytes);
        }
    }
    Ok(decoded)
}

/// JSON lines with padding spaces dropped; no blank line allowed.
pub(super) fn split_lines(decoded: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if decoded.is_empty() {
        return Ok(Vec::new());
    }
    if decoded.last() != Some(&b'\n') {
        return Err("output does not end with a newline".into());
    }
    let mut lines = Vec::new();
    for line in decoded[..decoded.len() - 1].split(|b| *b == b'\n') {
        let end = line.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
        let line = &line[..end];
        if !(line.starts_with(b"{") && line.ends_with(b"}")) {
            return Err(format!(
                "not a JSON line: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(60)])
            ));
        }
        lines.push(line.to_vec());
    }
    Ok(lines)
}

fn check_output(kernel: &SimKernel, plan: &Plan, report: &WriteReport) -> Result<String, String> {
    let mut files = Vec::new();
    for path in &report.files {
        files.push(
            kernel
                .read_file(path)
                .ok_or_else(|| format!("{} missing after finish", path.display()))?,
        );
    }
    if plan.layout == Layout::PaddedStriped {
        check_boundaries(plan, &files[0])?;
    }
    if plan.configured_stripe {
        if report.stripe_bytes != STRIPE as u64 {
            return Err(format!(
                "configured stripe {STRIPE}, report says {}",
                report.stripe_bytes
            ));
        }
        if report.fs_kind == FilesystemKind::Lustre && !on_lustre(kernel) {
            return Err("a configured stripe reported the file system as Lustre".into());
        }
    }
    if let Some(request) = plan.stripe_request {
        check_lustre_layout(kernel, report, request)?;
    }
    if let Layout::Sharded {
        shards,
        merge: true,
    } = plan.layout
    {
        for i in 0..shards {
            if kernel.exists(shard_path(OUT.as_ref(), i)) {
                return Err(format!("shard {i} still exists after the merge"));
            }
        }
    }
    let listed = kernel.list_dir("/").unwrap_or_default();
    let bystander = temp_path(OUT.as_ref(), 0);
    let bystander_name = bystander.file_name().and_then(|n| n.to_str());
    let is_bystander = |name: &str| plan.bystander && Some(name) == bystander_name;
    if listed
        .iter()
        .any(|name| is_temp_name(name) && !is_bystander(name))
    {
        return Err(format!("temporary file left after finish: {listed:?}"));
    }
    let decoded = decode_lines(plan, &files)?;
    check_content(plan, &decoded)?;
    let bytes_out: u64 = files.iter().map(|f| f.len() as u64).sum();
    if bytes_out != report.bytes_out {
        return Err(format!(
            "report says {} bytes out, the files hold {bytes_out}",
            report.bytes_out
        ));
    }
    if plan.durability == Durability::None {
        return Ok(format!("ok, {bytes_out} bytes (no sync, no crash check)"));
    }
    kernel.crash();
    for (path, before) in report.files.iter().zip(&files) {
        let after = kernel.read_file(path);
        if after.as_ref() != Some(before) {
            return Err(format!(
                "{} changed in the power loss after finish() returned Ok ({} bytes before, {:?} after)",
                path.display(),
                before.len(),
                after.map(|a| a.len())
            ));
        }
    }
    Ok(format!("ok, {bytes_out} bytes, survived power loss"))
}

fn check_content(plan: &Plan, decoded: &[u8]) -> Result<(), String> {
    if plan.content == ContentKind::Binary {
        let want: Vec<u8> = plan.inputs.concat().concat();
        if plan.ordered {
            return (decoded == &want[..])
                .then_some(())
                .ok_or_else(|| "binary output differs from the payloads in order".to_string());
        }
        let histogram = |bytes: &[u8]| {
            let mut h = [0usize; 256];
            bytes.iter().for_each(|b| h[*b as usize] += 1);
            h
        };
        return (histogram(decoded) == histogram(&want))
            .then_some(())
            .ok_or_else(|| "binary output holds other bytes than the payloads".to_string());
    }
    if plan.exact_tail {
        return (decoded == &plan.exact_bytes()[..])
            .then_some(())
            .ok_or_else(|| {
                "output with final_newline off is not the producer's bytes exactly".to_string()
            });
    }
    let got = split_lines(decoded)?;
    if plan.ordered && plan.inputs.len() == 1 {
        return (got == plan.inputs[0])
            .then_some(())
            .ok_or_else(|| "ordered output of one producer differs from its input".to_string());
    }
    let mut want: HashMap<&[u8], isize> = HashMap::new();
    for line in plan.inputs.iter().flatten() {
        *want.entry(line).or_default() += 1;
    }
    for line in &got {
        *want.entry(line).or_default() -= 1;
    }
    if want.values().any(|n| *n != 0) {
        return Err(format!(
            "lines lost or duplicated: {} read back, {} written",
            got.len(),
            plan.inputs.iter().map(Vec::len).sum::<usize>()
        ));
    }
    if plan.ordered {
        for (p, lines) in plan.inputs.iter().enumerate() {
            let tag = format!("{{\"p\":{p},");
            let mine = got.iter().filter(|l| l.starts_with(tag.as_bytes()));
            if !mine.zip(lines).all(|(a, b)| a == b) {
                return Err(format!("producer {p}'s lines are out of order"));
            }
        }
    }
    Ok(())
}

/// Every stripe boundary starts a chunk, or lies inside a chunk that began
/// on an earlier boundary (a chunk larger than a stripe).
fn check_boundaries(plan: &Plan, bytes: &[u8]) -> Result<(), String> {
    let starts: Vec<(usize, usize)> = if plan.gzip_level.is_some() {
        gzip_members(bytes)?
    } else {
        Vec::new()
    };
    let mut at = STRIPE;
    while at < bytes.len() {
        let ok = if plan.gzip_level.is_some() {
            starts
                .iter()
                .any(|&(s, e)| s == at || (s < at && at < e && s % STRIPE == 0))
        } else if plan.content == ContentKind::Binary {
            bytes[at] != 0
        } else if bytes[at - 1] == b'\n' {
            bytes[at] == b'{' && bytes[..at - 1].ends_with(b"}") || bytes[..at - 1].ends_with(b" ")
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

/// `(start, end)` of every gzip member, walking headers and deflate data.
fn gzip_members(bytes: &[u8]) -> Result<Vec<(usize, usize)>, String> {
    let mut members = Vec::new();
    let mut at = 0;
    let mut scratch = vec![0u8; 1 << 16];
    while at < bytes.len() {
        let bad = |why: &str| format!("gzip member at {at}: {why}");
        if bytes.len() - at < 18 || bytes[at..at + 3] != [0x1f, 0x8b, 8] {
            return Err(bad("no header"));
        }
        let flags = bytes[at + 3];
        let mut p = at + 10;
        if flags & 0x04 != 0 {
            let xlen = usize::from(u16::from_le_bytes([bytes[p], bytes[p + 1]]));
            p += 2 + xlen;
        }
        for flag in [0x08u8, 0x10] {
            if flags & flag != 0 {
                let nul = bytes[p..]
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| bad("open field"))?;
                p += nul + 1;
            }
        }
        if flags & 0x02 != 0 {
            p += 2;
        }
        let mut inflate = Decompress::new(false);
        loop {
            let (used, produced) = (inflate.total_in() as usize, inflate.total_out());
            let status = inflate
                .decompress(&bytes[p + used..], &mut scratch, FlushDecompress::None)
                .map_err(|e| bad(&e.to_string()))?;
            if status == Status::StreamEnd {
                break;
            }
            let stuck = inflate.total_in() as usize == used && inflate.total_out() == produced;
            if stuck {
                return Err(bad("truncated deflate data"));
            }
        }
        let end = p + inflate.total_in() as usize + 8;
        if end > bytes.len() {
            return Err(bad("truncated trailer"));
        }
        members.push((at, end));
        at = end;
    }
    Ok(members)
}
