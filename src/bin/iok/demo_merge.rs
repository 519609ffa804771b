//! The second half of `iok demo`: generate a synthetic trace set, merge it
//! with every layout with and without gzip, verify every output and print
//! a table of MiB/s.
//!
//! Verification (see `verify.rs`): the output decompresses, holds the same
//! multiset of lines as the inputs, and a padded-striped output has a chunk
//! start at every stripe boundary. This module owns only the demo's
//! choices and its table.

use iokernel::writer::{Durability, Layout};
use std::io::{Error, ErrorKind};
use std::path::Path;

use crate::input::{self, LineRules};
use crate::merge::{merge_inputs, MergeJob, MergeOutcome};
use crate::progress::{human_bytes, mib_per_sec, Progress};
use crate::trace_gen;
use crate::verify;

/// Average bytes of a generated event line (for sizing the set).
const LINE_BYTES_ESTIMATE: u64 = 105;
/// Producers used by every demo merge.
const PRODUCERS: usize = 2;
/// Gzip level of the compressed runs.
const GZIP_LEVEL: u32 = 6;

/// What one verified merge measured.
struct Row {
    label: String,
    outcome: MergeOutcome,
    boundaries: Option<u64>,
}

/// Generates `trace_mib` MiB of events in `files` files under `dir`, then
/// merges and verifies them with every layout, gzip off and on.
pub fn run(dir: &Path, trace_mib: u64, files: usize) -> std::io::Result<()> {
    let files = files.max(1);
    let lines_per_file = (trace_mib << 20) / LINE_BYTES_ESTIMATE / files as u64;
    let set_dir = dir.join("traces");
    std::fs::create_dir_all(&set_dir)?;
    println!(
        "\ngenerating a synthetic trace set: {files} files x {lines_per_file} events \
         (every other file gzip) in {} ...",
        set_dir.display()
    );
    let set = trace_gen::generate_set(&set_dir, files, lines_per_file, 0x5EED)?;
    let expected = verify::decoded_contents_all(&set.paths).map_err(invalid)?;
    println!(
        "{} lines, {} uncompressed; merging with {PRODUCERS} producers, every output verified:",
        set.lines,
        human_bytes(set.bytes)
    );
    let layouts = [
        Layout::Striped,
        Layout::PaddedStriped,
        Layout::Sharded {
            shards: PRODUCERS,
            merge: true,
        },
    ];
    let mut rows = Vec::new();
    for layout in layouts {
        for gzip in [None, Some(GZIP_LEVEL)] {
            rows.push(merge_and_verify(dir, &set.paths, layout, gzip, &expected)?);
        }
    }
    print_table(&rows);
    println!("all merged outputs verified");
    Ok(())
}

fn merge_and_verify(
    dir: &Path,
    paths: &[std::path::PathBuf],
    layout: Layout,
    gzip: Option<u32>,
    expected: &[u8],
) -> std::io::Result<Row> {
    let label = match gzip {
        Some(level) => format!("{layout} + gzip -{level}"),
        None => layout.to_string(),
    };
    let suffix = if gzip.is_some() {
        ".jsonl.gz"
    } else {
        ".jsonl"
    };
    let output = dir.join(format!("merged-{}{suffix}", layout.name()));
    let job = MergeJob {
        inputs: input::inspect_all(paths)?,
        output: output.clone(),
        layout,
        gzip,
        stripe_bytes: None,
        stripe_request: None,
        chunk_bytes: None,
        producers: PRODUCERS,
        ordered: false,
        line_rules: LineRules {
            max_line_bytes: crate::merge::DEFAULT_MAX_LINE_BYTES,
            cut_long_lines: false,
        },
        compute_threads: iokernel::sys::real::host_info().available_cores.max(1),
        complete_last_line: true,
        durability: Durability::Fsync,
        output_mode: Default::default(),
        coordinator: None,
    };
    let outcome = merge_inputs(job, Progress::hidden())?;
    let check = |e: String| invalid(format!("{label}: {e}"));
    let got = verify::decoded_contents_all(&outcome.report.files).map_err(check)?;
    verify::same_lines(expected, &got).map_err(check)?;
    let boundaries = if layout == Layout::PaddedStriped {
        let stripe = outcome.report.stripe_bytes;
        Some(verify::check_stripe_boundaries(&output, stripe, gzip.is_some()).map_err(check)?)
    } else {
        None
    };
    for file in &outcome.report.files {
        std::fs::remove_file(file)?;
    }
    Ok(Row {
        label,
        outcome,
        boundaries,
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<26} {:>8} {:>11} {:>7} {:>11} {:>10} {:>9} {:>8}",
        "layout", "MiB/s", "output", "chunks", "padding", "stripe", "bnd ok", "seconds"
    );
    for row in rows {
        let report = &row.outcome.report;
        let boundaries = row
            .boundaries
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        println!(
            "{:<26} {:>8.1} {:>11} {:>7} {:>11} {:>10} {:>9} {:>8.3}",
            row.label,
            mib_per_sec(row.outcome.bytes_in, row.outcome.elapsed),
            human_bytes(report.bytes_out),
            report.chunks,
            human_bytes(report.padding_bytes),
            human_bytes(report.stripe_bytes),
            boundaries,
            row.outcome.elapsed.as_secs_f64()
        );
    }
    println!("(bnd ok: stripe boundaries of a padded output checked to start a chunk)");
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidData, message)
}
