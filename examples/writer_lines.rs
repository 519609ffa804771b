//! The writer benchmark `benches/writer-compare.sh` runs next to the naive
//! one-`write`-per-line loop (`examples/naive_lines.rs`) and fio: two
//! producer tasks, on a runtime with two workers, each calling
//! [`Producer::write_line`] once per line for half of the lines, into one
//! striped, plain (uncompressed), unordered JSON-lines output.
//!
//! The lines are the ones the naive loop copies: the input file is read
//! into memory and split into lines *before* the writer starts, so neither
//! reading nor line generation is part of what is measured. The measured
//! phase runs from `ParallelWriter::new` to the end of `finish` (the
//! writer's own [`WriteReport::elapsed`]); the line printed on stdout gives
//! it as `writer_seconds=` for the script, and also the whole run.
//! Nothing is fsynced unless `--fsync` is given (then `finish` fsyncs, the
//! writer's default durability).
//!
//! Run: `cargo run --release --example writer_lines -- INPUT OUTPUT [--fsync]`.

use iokernel::runtime::{self, Runtime};
use iokernel::writer::{
    ContentKind, Durability, Layout, ParallelWriter, WriteReport, WriterConfig,
};
use std::process::ExitCode;
use std::sync::Arc;

/// Producer tasks, and runtime workers, as issue 5 states the target.
const PRODUCERS: usize = 2;

/// `text` split into lines without their newlines, in `parts` runs of
/// about equal bytes, each cut at a line end. A last line without a
/// newline is kept (the writer then adds one, as it would for any line).
fn split_lines(text: &[u8], parts: usize) -> Vec<Vec<(usize, usize)>> {
    let mut lines = Vec::with_capacity(text.len() / 64);
    let mut start = 0;
    for (at, _) in text.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        lines.push((start, at));
        start = at + 1;
    }
    if start < text.len() {
        lines.push((start, text.len()));
    }
    let share = text.len() / parts + 1;
    let mut runs = vec![Vec::new(); parts];
    for (start, end) in lines {
        runs[(start / share).min(parts - 1)].push((start, end));
    }
    runs
}

async fn write_all_lines(
    text: Arc<Vec<u8>>,
    runs: Vec<Vec<(usize, usize)>>,
    output: String,
    durability: Durability,
) -> std::io::Result<WriteReport> {
    let config = WriterConfig::new(&output)
        .layout(Layout::Striped)
        .content(ContentKind::JsonLines)
        .durability(durability)
        .producers(PRODUCERS);
    let writer = ParallelWriter::new(config).await?;
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let mut producer = writer.producer();
            let text = Arc::clone(&text);
            runtime::spawn(async move {
                for (start, end) in run {
                    producer.write_line(&text[start..end]).await?;
                }
                producer.close().await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| std::io::Error::other(format!("producer task failed: {e}")))??;
    }
    writer.finish().await
}

fn run(input: &str, output: &str, fsync: bool) -> std::io::Result<(WriteReport, usize)> {
    let text = std::fs::read(input)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {input}: {e}")))?;
    let runs = split_lines(&text, PRODUCERS);
    let lines = runs.iter().map(Vec::len).sum();
    let durability = if fsync {
        Durability::Fsync
    } else {
        Durability::None
    };
    let rt = Runtime::builder()
        .name("writer-lines")
        .compute_threads(PRODUCERS)
        .build()?;
    let report = rt.block_on(write_all_lines(
        Arc::new(text),
        runs,
        output.to_owned(),
        durability,
    ))?;
    Ok((report, lines))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (input, output, fsync) = match args.as_slice() {
        [_, input, output] => (input, output, false),
        [_, input, output, flag] if flag == "--fsync" => (input, output, true),
        _ => {
            eprintln!("usage: writer_lines INPUT OUTPUT [--fsync]");
            return ExitCode::FAILURE;
        }
    };
    match run(input, output, fsync) {
        Ok((report, lines)) => {
            let seconds = report.elapsed.as_secs_f64();
            println!(
                "writer_seconds={seconds:.6} lines={lines} bytes={} chunks={} chunk_bytes={} \
                 fs={} producers={PRODUCERS} MiB/s={:.1}",
                report.bytes_out,
                report.chunks,
                report.chunk_bytes,
                report.fs_kind.name(),
                report.bytes_out as f64 / 1048576.0 / seconds.max(1e-9),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("writer_lines: {e}");
            ExitCode::FAILURE
        }
    }
}
