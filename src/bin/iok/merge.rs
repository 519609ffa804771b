//! `iok merge`: plain or gzip JSON-lines inputs into one output through the
//! `ParallelWriter`.
//!
//! Readers (one per input at a time, at most one per producer) read and
//! decompress inputs on the runtime and send blocks of whole lines down a
//! bounded channel; producers take blocks off it and hand every line to
//! their writer `Producer`. So a single large input still feeds every
//! producer, and many inputs are read concurrently without holding more
//! than the channel's worth of blocks in memory.
//!
//! `--ordered`: the output is the inputs' lines in input order, for any
//! `--producers`. Each input gets its own bounded queue; the readers (as
//! many as `--producers`) still read and decompress later inputs in
//! parallel into their queues, and one producer drains the queues in input
//! order, so chunks are sealed, numbered and committed in input order. The
//! gzip compression of sealed chunks stays parallel on the runtime's
//! compute pool (as in `iok pgzip`). Readers claim inputs in input order,
//! so the input the producer waits for is always being read: no deadlock
//! with the bounded queues or the writer's in-flight window.
//!
//! This module owns the merge pipeline and its command line; `iok pgzip`
//! and `iok demo` run the same pipeline ([`merge_inputs`]). The writer
//! (`iokernel::writer`) owns everything about the output file.

use clap::{Args, ValueEnum};
use iokernel::runtime::{self, Runtime, RuntimeMetrics};
use iokernel::sync::{channel, Receiver, Sender};
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;
use iokernel::writer::{
    coord::Coordinator, parse_size, ContentKind, Durability, Layout, ParallelWriter, Producer,
    StripeBytes, StripeRequest, WriteReport, WriterConfig, DEFAULT_MEMORY_BUDGET_BYTES,
    LUSTRE_MAX_STRIPE_COUNT,
};
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::input::{self, Input, LineBlocks, LineRules};
use crate::output::{self, OutputMode};
use crate::progress::{human_bytes, mib_per_sec, Progress};

/// Line blocks queued per producer between readers and producers.
const BLOCKS_PER_PRODUCER: usize = 4;
/// Pieces a chunk is handed to a producer in (see [`produce`]).
const PIECES_PER_CHUNK: u64 = 16;
/// Default `--max-line-size`: the longest line `iok merge` keeps whole.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 64 << 20;
/// `--max-line-size` bounds: at least a read (1 MiB), at most the
/// writer's default memory budget (256 MiB).
const MAX_LINE_BYTES_RANGE: std::ops::RangeInclusive<u64> =
    (1 << 20)..=iokernel::writer::DEFAULT_MEMORY_BUDGET_BYTES;

/// The layouts offered on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One file; every chunk written at its own reserved offset.
    Striped,
    /// One file cut into stripe-sized slots; each slot padded to its end.
    Padded,
    /// One file per producer, merged into the output at the end.
    Sharded,
}

/// How durable the output is when the command returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// No fsync.
    None,
    /// fsync the output before returning (the default).
    Fsync,
    /// Write a temporary file, fsync it, rename it into place.
    AtomicRename,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Input files: JSON lines, plain or gzip (detected by content); a
    /// pipe, FIFO or `-` (stdin, once) is read as a stream. A directory
    /// stands for every `*.pfw` and `*.pfw.gz` in it, sorted by name.
    #[arg(required_unless_present = "inputs_from", value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Also read the input paths from FILE (`-`: stdin), one a line
    /// (blank lines are ignored; directories are expanded as on the
    /// command line), after the INPUTs given as arguments.
    #[arg(long, value_name = "FILE")]
    pub inputs_from: Option<PathBuf>,
    /// Run as one rank of an MPI job (`mpirun -n N iok merge --mpi ...`):
    /// every rank reads a contiguous run of the inputs, balanced by size,
    /// and all write OUTPUT together; rank 0 prints the summary. Needs an
    /// `iok` built with `cargo build --release --features mpi`.
    #[arg(long)]
    pub mpi: bool,
    /// The output file, or `-` for stdout (written in order as a stream;
    /// so are FIFOs and character devices such as /dev/null). Never one
    /// of the inputs.
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: PathBuf,
    /// Replace OUTPUT (and with --layout sharded its shards) if it exists
    /// as a regular file; without it an existing output is refused and
    /// kept. The old output stays whole until the new one is complete (it
    /// is renamed over it; with --durability none it is removed first).
    /// Never replaces an input or a non-regular file.
    #[arg(short, long)]
    pub force: bool,
    /// How chunks are laid out in the output.
    #[arg(long, value_enum, default_value_t = LayoutArg::Striped)]
    pub layout: LayoutArg,
    /// With `--layout sharded`: keep the shards (`OUTPUT.shard_<i>`)
    /// instead of merging them into OUTPUT.
    #[arg(long)]
    pub keep_shards: bool,
    /// Compress the output as multi-member gzip (level 0-9, default 6).
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, require_equals = true,
          default_missing_value = "6", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip: Option<u32>,
    /// Stripe (and chunk) size, a multiple of 64 KiB, at most 4G - 64K
    /// (4294901760 bytes, the largest Lustre takes), e.g. 1M
    /// (default: from the file system).
    #[arg(long, value_name = "SIZE", value_parser = clap::value_parser!(StripeBytes))]
    pub stripe_size: Option<StripeBytes>,
    /// On Lustre: create OUTPUT (and shards) striped over N OSTs, with
    /// stripes of --stripe-size (default 1M), and check the layout took.
    /// Ignored on other file systems.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(LUSTRE_MAX_STRIPE_COUNT)))]
    pub stripe_count: Option<u16>,
    /// Producers writing in parallel.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub producers: u64,
    /// Write the inputs' lines in input order (for any --producers:
    /// inputs are still read and decompressed in parallel, and gzip
    /// output compressed in parallel; one task hands lines to the writer).
    #[arg(long)]
    pub ordered: bool,
    /// The longest line kept whole (newline included), 1M to 256M; a
    /// longer line is an error naming the input and the line's offset.
    /// Memory use grows with it: up to about (4 x producers + the
    /// writer's in-flight chunks) x this size when every line is that long.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_max_line_size)]
    pub max_line_size: u64,
    /// Durability of the output when the command returns.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Fsync)]
    pub durability: DurabilityArg,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// How `merge` and `pgzip` report a run.
#[derive(Args, Debug, Clone, Copy)]
pub struct ReportArgs {
    /// After the summary, print the runtime's I/O metrics as a table (ops
    /// per kind, bytes, p50/p99 latency, pool fallbacks, saturation).
    #[arg(long)]
    pub metrics: bool,
    /// Print one JSON object (the summary's fields and `metrics`) instead
    /// of the summary line.
    #[arg(long)]
    pub json: bool,
}

/// A size string (`64K`, `1M`, `4MiB`, `1048576`) for any size argument.
pub fn parse_size_arg(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes == 0 {
        return Err(format!("invalid size {text:?}: must be positive"));
    }
    Ok(bytes)
}

/// A `--max-line-size` string, within [`MAX_LINE_BYTES_RANGE`].
pub fn parse_max_line_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size_arg(text)?;
    if !MAX_LINE_BYTES_RANGE.contains(&bytes) {
        return Err(format!(
            "max line size {text:?} ({bytes} bytes) is outside {} to {} bytes",
            MAX_LINE_BYTES_RANGE.start(),
            MAX_LINE_BYTES_RANGE.end()
        ));
    }
    Ok(bytes)
}

/// Everything one run of the merge pipeline needs.
#[derive(Clone, Debug)]
pub struct MergeJob {
    /// Inputs, already inspected.
    pub inputs: Vec<Input>,
    /// The output file.
    pub output: PathBuf,
    /// Output layout.
    pub layout: Layout,
    /// Gzip level for the output, if compressed.
    pub gzip: Option<u32>,
    /// Stripe (slot, and so chunk) size instead of the file system's.
    pub stripe_bytes: Option<StripeBytes>,
    /// The Lustre layout to create the outputs with.
    pub stripe_request: Option<StripeRequest>,
    /// Chunk size (gzip member size) instead of the sized one.
    pub chunk_bytes: Option<u64>,
    /// Producers (and at most as many concurrent readers).
    pub producers: usize,
    /// The inputs' lines in input order: one producer, readers still
    /// parallel, chunks committed in sequence order.
    pub ordered: bool,
    /// How long lines are handled (merge: an error past the maximum;
    /// pgzip: cut into pieces).
    pub line_rules: LineRules,
    /// Runtime worker threads (compression runs on them).
    pub compute_threads: usize,
    /// Add a `\n` to an input's last line when it has none, so lines of
    /// different inputs never run together (merge); pgzip keeps bytes exact.
    pub complete_last_line: bool,
    /// Durability when `finish` returns.
    pub durability: Durability,
    /// `--force`, `-o -` and the created-files registry.
    pub output_mode: OutputMode,
    /// The ranks writing the output together (`--mpi`); `None`: this
    /// process alone.
    pub coordinator: Option<Arc<dyn Coordinator>>,
}

/// What a run did.
#[derive(Debug)]
pub struct MergeOutcome {
    /// The writer's report.
    pub report: WriteReport,
    /// Lines handed to producers.
    pub lines: u64,
    /// Uncompressed input bytes handed to producers.
    pub bytes_in: u64,
    /// Wall time from the first read to `finish` returning.
    pub elapsed: Duration,
    /// What the runtime's driver did.
    pub metrics: RuntimeMetrics,
}

#[derive(Default)]
struct Counters {
    lines: AtomicU64,
    bytes: AtomicU64,
}

/// Runs the pipeline: readers -> channel of line blocks -> producers ->
/// writer. On any error the writer is dropped without `finish` (it removes
/// what it created) and the first error is returned.
pub fn merge_inputs(job: MergeJob, progress: Progress) -> std::io::Result<MergeOutcome> {
    let runtime = Runtime::builder()
        .name("iok-merge")
        .compute_threads(job.compute_threads)
        .build()?;
    let clock = RealClock::new();
    let start = clock.now();
    let counters = Arc::new(Counters::default());
    let report = runtime.block_on(run_pipeline(job, progress, Arc::clone(&counters)))?;
    Ok(MergeOutcome {
        report,
        lines: counters.lines.load(Ordering::Relaxed),
        bytes_in: counters.bytes.load(Ordering::Relaxed),
        elapsed: clock.now() - start,
        metrics: runtime.metrics(),
    })
}

async fn run_pipeline(
    job: MergeJob,
    progress: Progress,
    counters: Arc<Counters>,
) -> std::io::Result<WriteReport> {
    let config = writer_config(&job);
    let writer = ParallelWriter::new(config).await?;
    // Ordered: one producer drains one queue per input in input order.
    let producers = if job.ordered { 1 } else { job.producers.max(1) };
    let queues = Queues::new(&job, job.inputs.len());
    let readers = job.producers.max(1).min(job.inputs.len()).max(1);
    let inputs = Arc::new(job.inputs);
    let next_input = Arc::new(AtomicUsize::new(0));
    let reader_handles: Vec<_> = (0..readers)
        .map(|_| {
            let reader = Reader {
                shared_tx: if queues.shared {
                    queues.sender(0)
                } else {
                    None
                },
                inputs: Arc::clone(&inputs),
                next_input: Arc::clone(&next_input),
                queues: queues.clone(),
                progress: progress.clone(),
                complete_last_line: job.complete_last_line,
                line_rules: job.line_rules,
            };
            runtime::spawn(reader.run())
        })
        .collect();
    queues.release_unclaimed();
    let piece_bytes = usize::try_from(writer.chunk_bytes() / PIECES_PER_CHUNK).unwrap_or(1 << 16);
    let producer_handles: Vec<_> = (0..producers)
        .map(|_| {
            let producer = writer.producer();
            runtime::spawn(produce(
                producer,
                queues.drain(),
                Arc::clone(&counters),
                piece_bytes,
                job.line_rules.cut_long_lines,
            ))
        })
        .collect();
    drop(queues);
    let mut first_error = None;
    for handle in reader_handles.into_iter().chain(producer_handles) {
        let outcome = match handle.await {
            Ok(result) => result,
            Err(e) => Err(Error::other(format!("merge task failed: {e}"))),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    writer.finish().await
}

pub fn writer_config(job: &MergeJob) -> WriterConfig {
    let producers = job.producers.max(job.compute_threads).max(1);
    // from_env: `IOKERNEL_MIMIC_LUSTRE` keeps working on the command line.
    let config = WriterConfig::from_env(&job.output)
        .layout(job.layout)
        .ordered(job.ordered)
        .gzip(job.gzip)
        .content(ContentKind::JsonLines)
        .durability(job.durability)
        // The writer sizes its in-flight window by producers; with fewer
        // producers than workers (pgzip has one) that window is sized for
        // the workers, so every worker has a chunk to compress.
        .producers(producers)
        .memory_budget_bytes(memory_budget(producers, job.chunk_bytes))
        .chunk_bytes(job.chunk_bytes)
        .stripe_bytes(job.stripe_bytes)
        .stripe_request(job.stripe_request)
        .final_newline(job.complete_last_line);
    let config = match &job.coordinator {
        Some(coordinator) => config.coordinator(Arc::clone(coordinator)),
        None => config,
    };
    job.output_mode.apply(config)
}

/// The writer's memory budget. With a chunk (member) size given, room for
/// the writer's usual buffers of it (two per producer and one in flight per
/// producer), never less than the library's default, and at most half of
/// this machine's memory: a size the machine cannot hold is then refused
/// by the writer with an error that says so, instead of a failed
/// allocation aborting the run.
pub fn memory_budget(producers: usize, chunk_bytes: Option<u64>) -> u64 {
    let Some(chunk) = chunk_bytes else {
        return DEFAULT_MEMORY_BUDGET_BYTES;
    };
    let producers = u64::try_from(producers).unwrap_or(u64::MAX);
    let usual = producers.saturating_mul(3).saturating_mul(chunk);
    let cap = mem_total_bytes().map_or(u64::MAX, |total| total / 2);
    usual.min(cap).max(DEFAULT_MEMORY_BUDGET_BYTES)
}

/// `MemTotal` of `/proc/meminfo`, in bytes, where there is one.
fn mem_total_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A queue's sender until a reader takes it.
type SenderSlot = Mutex<Option<Sender<Vec<u8>>>>;

/// The bounded queues of line blocks between readers and producers: one
/// shared by every producer, or (ordered) one per input.
#[derive(Clone)]
struct Queues {
    /// Per input (ordered): its queue's sender, taken by the reader that
    /// claims the input; else one shared sender.
    senders: Arc<Vec<SenderSlot>>,
    shared: bool,
    /// The queues, drained in this order.
    receivers: Arc<Vec<Receiver<Vec<u8>>>>,
}

impl Queues {
    fn new(job: &MergeJob, inputs: usize) -> Queues {
        let (count, capacity) = if job.ordered {
            (inputs, BLOCKS_PER_PRODUCER)
        } else {
            (1, job.producers.max(1) * BLOCKS_PER_PRODUCER)
        };
        let (senders, receivers) = (0..count)
            .map(|_| {
                let (tx, rx) = channel::<Vec<u8>>(capacity);
                (Mutex::new(Some(tx)), rx)
            })
            .unzip();
        Queues {
            senders: Arc::new(senders),
            shared: !job.ordered,
            receivers: Arc::new(receivers),
        }
    }

    /// The sender for input `index` (ordered: taken; at most once).
    fn sender(&self, index: usize) -> Option<Sender<Vec<u8>>> {
        let slot = if self.shared { 0 } else { index };
        let mut sender = self
            .senders
            .get(slot)?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.shared {
            sender.clone()
        } else {
            sender.take()
        }
    }

    /// Drops the senders not yet taken, so queues end once their readers
    /// are done (the shared one once every reader is done).
    fn release_unclaimed(&self) {
        if self.shared {
            for slot in self.senders.iter() {
                slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
        }
    }

    /// Stops everything: readers' sends fail, producers see the end.
    fn close_all(&self) {
        for rx in self.receivers.iter() {
            rx.close();
        }
    }

    fn drain(&self) -> Drain {
        Drain {
            queues: self.clone(),
            at: 0,
        }
    }
}

/// The blocks a producer writes: each queue's until it ends, in order.
struct Drain {
    queues: Queues,
    at: usize,
}

impl Drain {
    async fn next(&mut self) -> Option<Vec<u8>> {
        while let Some(rx) = self.queues.receivers.get(self.at) {
            if let Some(block) = rx.recv().await {
                return Some(block);
            }
            self.at += 1;
        }
        None
    }
}

/// One reader: takes the next unread input until none is left, sending its
/// line blocks to the producers.
struct Reader {
    /// The shared queue's sender (unordered); `None` when ordered.
    shared_tx: Option<Sender<Vec<u8>>>,
    inputs: Arc<Vec<Input>>,
    next_input: Arc<AtomicUsize>,
    queues: Queues,
    progress: Progress,
    complete_last_line: bool,
    line_rules: LineRules,
}

impl Reader {
    async fn run(self) -> std::io::Result<()> {
        let result = self.read_all(self.shared_tx.as_ref()).await;
        if result.is_err() {
            // Nothing more will be written: stop the producers and readers.
            self.queues.close_all();
        }
        result
    }

    async fn read_all(&self, shared_tx: Option<&Sender<Vec<u8>>>) -> std::io::Result<()> {
        loop {
            let index = self.next_input.fetch_add(1, Ordering::Relaxed);
            let Some(input) = self.inputs.get(index) else {
                return Ok(());
            };
            let own_tx = if shared_tx.is_some() {
                None
            } else {
                self.queues.sender(index)
            };
            let Some(tx) = shared_tx.or(own_tx.as_ref()) else {
                return Ok(());
            };
            let mut blocks =
                LineBlocks::open(input.clone(), self.progress.clone(), self.line_rules).await?;
            while let Some(mut block) = blocks.next_block().await? {
                if self.complete_last_line && !block.ends_with(b"\n") {
                    block.push(b'\n');
                }
                if tx.send(block).await.is_err() {
                    // Every producer is gone: one of them failed and reports why.
                    return Ok(());
                }
            }
        }
    }
}

/// One producer: every line of every block it receives, in block order.
/// Blocks go to the writer in pieces of whole lines of about
/// `piece_bytes` (a sixteenth of a chunk), so a sealed chunk is at least
/// ~94% full and never larger than the chunk size unless a single line is,
/// at a few calls per chunk instead of one per line.
///
/// With `cut_long_lines` (pgzip), a block that does not end in `\n` (a
/// piece of an over-long line, or an input's unterminated last line) is
/// written with [`Producer::write_line_piece`], which may seal a chunk
/// inside the line, so no buffer grows past the chunk size.
async fn produce(
    mut producer: Producer,
    mut blocks: Drain,
    counters: Arc<Counters>,
    piece_bytes: usize,
    cut_long_lines: bool,
) -> std::io::Result<()> {
    let result = async {
        while let Some(block) = blocks.next().await {
            let whole = if cut_long_lines {
                memchr::memrchr(b'\n', &block).map_or(0, |end| end + 1)
            } else {
                block.len()
            };
            for piece in LinePieces::new(&block[..whole], piece_bytes) {
                producer.write(piece).await?;
            }
            if whole < block.len() {
                producer.write_line_piece(&block[whole..]).await?;
            }
            // A piece of a cut line (pgzip) is not a line of its own.
            let lines = if cut_long_lines {
                count_newlines(&block)
            } else {
                count_lines(&block)
            };
            counters.lines.fetch_add(lines, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(block.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => producer.close().await,
        Err(e) => {
            // Stop the readers: nothing more will be written.
            blocks.queues.close_all();
            Err(e)
        }
    }
}

/// Splits a block of lines into runs of whole lines of at most
/// `max_bytes` each (a longer single line is one run of its own).
struct LinePieces<'a> {
    rest: &'a [u8],
    max_bytes: usize,
}

impl<'a> LinePieces<'a> {
    fn new(block: &'a [u8], max_bytes: usize) -> LinePieces<'a> {
        LinePieces {
            rest: block,
            max_bytes: max_bytes.max(1),
        }
    }
}

impl<'a> Iterator for LinePieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let cut = if self.rest.len() <= self.max_bytes {
            self.rest.len()
        } else {
            let window = &self.rest[..self.max_bytes];
            match memchr::memrchr(b'\n', window) {
                Some(end) => end + 1,
                None => memchr::memchr(b'\n', &self.rest[self.max_bytes..])
                    .map_or(self.rest.len(), |end| self.max_bytes + end + 1),
            }
        };
        let (piece, rest) = self.rest.split_at(cut);
        self.rest = rest;
        Some(piece)
    }
}

fn count_lines(block: &[u8]) -> u64 {
    count_newlines(block) + u64::from(!block.is_empty() && !block.ends_with(b"\n"))
}

/// Newlines in `bytes` (memchr's vectorised count).
fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Layout from the command line; sharded gets one shard per producer.
pub fn layout_of(arg: LayoutArg, keep_shards: bool, producers: usize) -> Layout {
    match arg {
        LayoutArg::Striped => Layout::Striped,
        LayoutArg::Padded => Layout::PaddedStriped,
        LayoutArg::Sharded => Layout::Sharded {
            shards: producers.max(1),
            merge: !keep_shards,
        },
    }
}

/// Durability from the command line.
pub fn durability_of(arg: DurabilityArg) -> Durability {
    match arg {
        DurabilityArg::None => Durability::None,
        DurabilityArg::Fsync => Durability::Fsync,
        DurabilityArg::AtomicRename => Durability::AtomicRename,
    }
}

/// The one-line summary printed after every successful run; `gzip` says
/// whether the job asked for gzip output.
pub fn summary_line(verb: &str, inputs: usize, gzip: bool, outcome: &MergeOutcome) -> String {
    let report = &outcome.report;
    let head = format!(
        "{verb} {inputs} input(s), {} lines, {} -> {} ({}",
        outcome.lines,
        human_bytes(outcome.bytes_in),
        report.path.display(),
        if gzip { "gzip" } else { "plain" },
    );
    let pace = format!(
        "{:.2} s, {:.1} MiB/s",
        outcome.elapsed.as_secs_f64(),
        mib_per_sec(outcome.bytes_in, outcome.elapsed),
    );
    if report.stream {
        // No layout, stripes or file system to speak of: bytes in order.
        return format!(
            "{head}, stream): {} written in order, {} chunks, {pace}",
            human_bytes(report.bytes_out),
            report.chunks,
        );
    }
    format!(
        "{head}): {} written, {}, {}, stripe {}, chunk {}, {} chunks, {} padding, {pace}",
        human_bytes(report.bytes_out),
        report.layout,
        report.fs_kind.name(),
        human_bytes(report.stripe_bytes),
        human_bytes(report.chunk_bytes),
        report.chunks,
        human_bytes(report.padding_bytes),
    )
}

/// The run's summary and metrics as one JSON object with stable field
/// names: `command`, `inputs`, `lines`, `bytes_in`, `output`, `gzip`,
/// `bytes_out`, `layout`, `fs`, `stripe_bytes`, `chunk_bytes`, `chunks`,
/// `padding_bytes`, `seconds`, `mib_per_s`, `stream` (true for stdout, a
/// FIFO or a character device, where `layout`, `fs`, `stripe_bytes` and
/// `padding_bytes` describe nothing), `metrics` (see
/// `RuntimeMetrics::to_json`).
pub fn outcome_json(command: &str, inputs: usize, gzip: bool, outcome: &MergeOutcome) -> String {
    let report = &outcome.report;
    format!(
        "{{\"command\":{},\"inputs\":{inputs},\"lines\":{},\"bytes_in\":{},\"output\":{},\
         \"gzip\":{gzip},\"bytes_out\":{},\"layout\":{},\"fs\":{},\"stripe_bytes\":{},\
         \"chunk_bytes\":{},\"chunks\":{},\"padding_bytes\":{},\"seconds\":{:.6},\
         \"mib_per_s\":{:.2},\"stream\":{},\"metrics\":{}}}",
        output::json_str(command),
        outcome.lines,
        outcome.bytes_in,
        output::json_str(&report.path.to_string_lossy()),
        report.bytes_out,
        output::json_str(&report.layout.to_string()),
        output::json_str(report.fs_kind.name()),
        report.stripe_bytes,
        report.chunk_bytes,
        report.chunks,
        report.padding_bytes,
        outcome.elapsed.as_secs_f64(),
        mib_per_sec(outcome.bytes_in, outcome.elapsed),
        report.stream,
        outcome.metrics.to_json(),
    )
}

/// Print what a run did the way `how` asks: the summary line (plus the
/// metrics table with `--metrics`), or one JSON object with `--json`. On
/// stdout, or on stderr when the data goes to stdout.
pub fn print_outcome(
    how: ReportArgs,
    (command, verb): (&str, &str),
    inputs: usize,
    gzip: bool,
    outcome: &MergeOutcome,
    data_on_stdout: bool,
) -> std::io::Result<()> {
    if how.json {
        return output::print_summary(
            &outcome_json(command, inputs, gzip, outcome),
            data_on_stdout,
        );
    }
    let mut text = summary_line(verb, inputs, gzip, outcome);
    if how.metrics {
        text.push('\n');
        text.push_str(outcome.metrics.to_string().trim_end());
    }
    output::print_summary(&text, data_on_stdout)
}

/// A plain output named `*.gz` would be taken for gzip by every reader
/// (DFTracer's included) and fail there: refused before anything is read,
/// saying how to get either.
fn refuse_plain_gz_name(output: &Path, gzip: Option<u32>) -> std::io::Result<()> {
    let named_gz = output
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    if gzip.is_none() && named_gz {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "output {} is named .gz but would be plain JSON lines: pass --gzip to \
                 compress it, or name it without .gz",
                output.display()
            ),
        ));
    }
    Ok(())
}

pub fn run(args: &MergeArgs) -> std::io::Result<()> {
    if args.keep_shards && args.layout != LayoutArg::Sharded {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--keep-shards needs --layout sharded",
        ));
    }
    refuse_plain_gz_name(&args.output, args.gzip)?;
    if args.mpi {
        return run_mpi(args);
    }
    let output_mode = OutputMode::for_run(&args.output, args.force, args.gzip.is_some())?;
    let paths = input::expand_inputs(&args.inputs, args.inputs_from.as_deref())?;
    let inputs = input::inspect_all(&paths)?;
    let job = job_of(args, inputs, output_mode);
    output::check_aliases(&paths, &writer_config(&job))?;
    let progress = Progress::new(input::total_len_bytes(&job.inputs), "merge");
    let count = job.inputs.len();
    let gzip = job.gzip.is_some();
    let outcome = merge_inputs(job, progress.clone());
    progress.finish();
    let outcome = outcome.map_err(output::hint_force)?;
    print_outcome(
        args.report,
        ("merge", "merged"),
        count,
        gzip,
        &outcome,
        output::is_stdout(&args.output),
    )
}

#[cfg(feature = "mpi")]
fn run_mpi(args: &MergeArgs) -> std::io::Result<()> {
    crate::mpi_merge::run(args)
}

#[cfg(not(feature = "mpi"))]
fn run_mpi(_args: &MergeArgs) -> std::io::Result<()> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "--mpi needs an iok built with the cargo feature `mpi`; this one was built without it: \
         cargo build --release --features mpi",
    ))
}

/// The merge job `args` describe, over `inputs` (already inspected).
pub fn job_of(args: &MergeArgs, inputs: Vec<Input>, output_mode: OutputMode) -> MergeJob {
    let producers = usize::try_from(args.producers).unwrap_or(1);
    MergeJob {
        inputs,
        output: args.output.clone(),
        layout: layout_of(args.layout, args.keep_shards, producers),
        gzip: args.gzip,
        stripe_bytes: args.stripe_size,
        stripe_request: args.stripe_count.map(|stripe_count| StripeRequest {
            stripe_bytes: args.stripe_size.unwrap_or(StripeBytes::LUSTRE_DEFAULT),
            stripe_count,
        }),
        chunk_bytes: None,
        producers,
        ordered: args.ordered,
        line_rules: LineRules {
            max_line_bytes: args.max_line_size,
            cut_long_lines: false,
        },
        compute_threads: iokernel::sys::real::host_info().available_cores.max(1),
        complete_last_line: true,
        durability: durability_of(args.durability),
        output_mode,
        coordinator: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(block: &[u8], max: usize) -> Vec<&[u8]> {
        LinePieces::new(block, max).collect()
    }

    #[test]
    fn pieces_are_whole_lines_within_the_limit() {
        let block = b"aa\nbbb\nc\ndddd\n";
        assert_eq!(pieces(block, 7), vec![&b"aa\nbbb\n"[..], b"c\ndddd\n"]);
        assert_eq!(pieces(block, 6), vec![&b"aa\n"[..], b"bbb\nc\n", b"dddd\n"]);
        assert_eq!(pieces(block, 100), vec![&block[..]]);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_its_own_piece() {
        let block = b"xxxxxxxx\ny\nzz";
        assert_eq!(pieces(block, 4), vec![&b"xxxxxxxx\n"[..], b"y\nzz"]);
        assert_eq!(pieces(block, 3), vec![&b"xxxxxxxx\n"[..], b"y\n", b"zz"]);
    }

    #[test]
    fn pieces_cover_the_block_exactly() {
        let block: Vec<u8> = (0..5000u32)
            .flat_map(|i| {
                let mut line = vec![b'a' + (i % 26) as u8; (i as usize * 37) % 300];
                line.push(b'\n');
                line
            })
            .collect();
        for max in [1, 64, 1000, 4096, 1 << 20] {
            let all = pieces(&block, max);
            assert_eq!(all.concat(), block);
            for piece in &all {
                assert!(piece.ends_with(b"\n"));
                let single_line = piece.iter().filter(|&&b| b == b'\n').count() == 1;
                assert!(piece.len() <= max || single_line);
            }
        }
    }

    #[test]
    fn stripe_size_flag_takes_only_valid_stripes() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            merge: MergeArgs,
        }
        let parse = |size: &str| {
            Cli::try_parse_from(["iok", "in.pfw", "-o", "out", "--stripe-size", size])
                .map(|cli| cli.merge.stripe_size)
        };
        assert_eq!(
            parse("1M").ok().flatten().map(StripeBytes::get),
            Some(1 << 20)
        );
        assert_eq!(parse("4194240K").ok().flatten(), Some(StripeBytes::MAX));
        for (bad, says) in [
            ("100K", "64 KiB"),
            ("0", "positive"),
            ("12Q", "12Q"),
            ("4G", "4294901760"),
        ] {
            let Err(err) = parse(bad) else {
                panic!("--stripe-size {bad} was taken");
            };
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn count_newlines_agrees_with_a_plain_count() {
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|i| if i % 7 == 0 { b'\n' } else { b'x' })
            .collect();
        for len in [0, 1, 31, 32, 8159, 8160, 8161, 50_000, 100_000] {
            let slice = &bytes[..len];
            let plain = slice.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(count_newlines(slice), plain, "len {len}");
        }
    }

    #[test]
    fn count_lines_counts_a_last_unterminated_line() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\nb\n"), 2);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
