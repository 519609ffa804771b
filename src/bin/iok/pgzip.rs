//! `iok pgzip`: parallel multi-member gzip of one input, members cut at
//! newlines, output in input order.
//!
//! This is the merge pipeline with one input, one producer, the ordered
//! striped layout and gzip on: the writer compresses sealed chunks on the
//! runtime's workers in parallel and commits them in sequence order, so the
//! output decompresses to the input byte for byte. There is no compressor
//! here; this module only maps the command line onto a [`MergeJob`].

use clap::Args;
use iokernel::writer::Layout;
use std::path::PathBuf;

use crate::input::{self, LineRules};

/// With pgzip, a partial line longer than this is handed on as a piece.
const READ_BYTES_PER_PIECE: u64 = 1 << 20;
use crate::merge::{
    durability_of, memory_budget, merge_inputs, parse_size_arg, print_outcome, writer_config,
    DurabilityArg, MergeJob, ReportArgs,
};
use crate::output::{self, OutputMode};
use crate::progress::human_bytes;
use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct PgzipArgs {
    /// The file to compress (plain, or gzip to recompress); a pipe, FIFO
    /// or `-` (stdin) is read as a stream.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The gzip file to write, or `-` for stdout (a stream, like FIFOs
    /// and character devices). Never the input.
    #[arg(short, long, value_name = "OUTPUT.gz")]
    output: PathBuf,
    /// Replace OUTPUT.gz if it exists as a regular file (like gzip -f);
    /// without it an existing output is refused and kept. The old output
    /// stays whole until the new one is complete (it is renamed over it;
    /// with --durability none it is removed first).
    #[arg(short, long)]
    force: bool,
    /// Compression level, 0 (store) to 9 (smallest).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    level: u32,
    /// Uncompressed bytes per gzip member (members end at a line end at or
    /// before it), e.g. 1M (default: the writer's chunk size). Each
    /// compressing thread holds one, plus one on its way to the file: a size
    /// for which that is more than half of this machine's memory is refused.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    member_size: Option<u64>,
    /// Threads compressing in parallel (default: available cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    /// Durability of the output when the command returns.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Fsync)]
    durability: DurabilityArg,
    #[command(flatten)]
    report: ReportArgs,
}

pub fn run(args: &PgzipArgs) -> std::io::Result<()> {
    let threads = args
        .threads
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or_else(|| iokernel::sys::real::host_info().available_cores.max(1));
    if let Some(member) = args.member_size {
        // Refused before anything is opened, in the command's own words
        // (the writer would refuse it too, speaking of chunks).
        let threads_u64 = u64::try_from(threads).unwrap_or(u64::MAX);
        let needed = iokernel::writer::fewest_buffer_bytes(threads_u64, member);
        let budget = memory_budget(threads, Some(member));
        if needed > budget {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "--member-size {} needs {} of buffers with {threads} compressing thread(s) \
                     (one member each plus one on its way to the file), more than the {} this \
                     machine allows (half its memory): use smaller members or fewer --threads",
                    human_bytes(member),
                    human_bytes(needed),
                    human_bytes(budget)
                ),
            ));
        }
    }
    let output_mode = OutputMode::for_run(&args.output, args.force, true)?;
    let source = input::inspect(&args.input)?;
    let job = MergeJob {
        inputs: vec![source],
        output: args.output.clone(),
        layout: Layout::Striped,
        gzip: Some(args.level),
        stripe_bytes: None,
        stripe_request: None,
        chunk_bytes: args.member_size,
        producers: 1,
        ordered: true,
        // pgzip compresses any file: a line longer than a member is cut
        // into pieces (members may then end inside it), never an error.
        line_rules: LineRules {
            max_line_bytes: READ_BYTES_PER_PIECE,
            cut_long_lines: true,
        },
        compute_threads: threads,
        complete_last_line: false,
        durability: durability_of(args.durability),
        output_mode,
        coordinator: None,
    };
    output::check_aliases(std::slice::from_ref(&args.input), &writer_config(&job))?;
    let progress = Progress::new(job.inputs[0].len_bytes, "pgzip");
    let outcome = merge_inputs(job, progress.clone());
    progress.finish();
    let outcome = outcome.map_err(output::hint_force)?;
    print_outcome(
        args.report,
        ("pgzip", "compressed"),
        1,
        true,
        &outcome,
        output::is_stdout(&args.output),
    )
}
