//! Synthetic trace sets: DFTracer-like JSON-lines events (`name`, `cat`,
//! `pid`, `tid`, `ts`, `dur`, `args`), about 100 bytes a line, plain or
//! gzip, deterministic from a seed.
//!
//! Used by `iok demo`, the hidden `iok trace-gen` command (the benches and
//! `tests/cli.rs` make their inputs with it) and nothing else. This module
//! owns the event format and the files it creates; it writes them with
//! iokernel ops from plain synchronous code (the sync fallback).

use clap::Args;
use flate2::write::GzEncoder;
use flate2::Compression;
use iokernel::fs::File;
use iokernel::runtime::block_on_here;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes gathered before each write to the output file.
const FLUSH_BYTES: usize = 1 << 20;

const NAMES: [&str; 10] = [
    "open", "close", "read", "write", "pread", "pwrite", "fsync", "stat", "lseek", "mmap",
];
const CATS: [&str; 4] = ["POSIX", "STDIO", "MPI", "APP"];

/// A small deterministic generator (splitmix64): every line is a function
/// of the seed and the line's position.
pub struct EventRng(u64);

impl EventRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> EventRng {
        EventRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Appends one event line (with its `\n`) to `out`. `ts_us` is the event's
/// start time; `pid` tells the files of a set apart.
pub fn push_event(rng: &mut EventRng, pid: u32, ts_us: u64, out: &mut Vec<u8>) {
    let name = NAMES[rng.below(NAMES.len() as u64) as usize];
    let cat = CATS[rng.below(CATS.len() as u64) as usize];
    let tid = pid + rng.below(8) as u32;
    let dur = 1 + rng.below(5000);
    // `write!` into a Vec cannot fail.
    let _ = if rng.below(4) == 0 {
        writeln!(
            out,
            r#"{{"name":"{name}","cat":"{cat}","pid":{pid},"tid":{tid},"ts":{ts_us},"dur":{dur},"args":{{"fname":"/scratch/r{}/c{:04}.h5"}}}}"#,
            rng.below(100),
            rng.below(10_000)
        )
    } else {
        writeln!(
            out,
            r#"{{"name":"{name}","cat":"{cat}","pid":{pid},"tid":{tid},"ts":{ts_us},"dur":{dur},"args":{{"size":{}}}}}"#,
            4096 * (1 + rng.below(256)),
        )
    };
}

/// What was generated.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    /// The files, in the order they were made.
    pub paths: Vec<PathBuf>,
    /// Lines in all files.
    pub lines: u64,
    /// Uncompressed bytes in all files.
    pub bytes: u64,
}

/// Writes `lines` events to `path`, gzip-compressed at `gzip_level` if set.
/// Returns the uncompressed byte count.
pub fn write_trace_file(
    path: &Path,
    lines: u64,
    seed: u64,
    pid: u32,
    gzip_level: Option<u32>,
) -> std::io::Result<u64> {
    let mut rng = EventRng::new(seed);
    let mut sink = FileSink::create(path, gzip_level)?;
    let mut block = Vec::with_capacity(FLUSH_BYTES + 256);
    let mut ts_us = rng.below(1_000_000);
    let mut raw_bytes = 0u64;
    for _ in 0..lines {
        ts_us += 1 + rng.below(200);
        push_event(&mut rng, pid, ts_us, &mut block);
        if block.len() >= FLUSH_BYTES {
            raw_bytes += block.len() as u64;
            sink.push(&block)?;
            block.clear();
        }
    }
    raw_bytes += block.len() as u64;
    sink.push(&block)?;
    sink.finish()?;
    Ok(raw_bytes)
}

/// Makes `files` trace files of `lines_per_file` lines in `dir`; every
/// other file is gzip (level 1), so a set exercises both input kinds.
pub fn generate_set(
    dir: &Path,
    files: usize,
    lines_per_file: u64,
    seed: u64,
) -> std::io::Result<Generated> {
    let mut generated = Generated::default();
    for i in 0..files {
        let gzip = i % 2 == 1;
        let name = if gzip {
            format!("trace-{i:03}.jsonl.gz")
        } else {
            format!("trace-{i:03}.jsonl")
        };
        let path = dir.join(name);
        let pid = 1000 + i as u32 * 10;
        let level = gzip.then_some(1);
        let file_seed = seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        generated.bytes += write_trace_file(&path, lines_per_file, file_seed, pid, level)?;
        generated.lines += lines_per_file;
        generated.paths.push(path);
    }
    Ok(generated)
}

/// The output file, written in order with iokernel ops, through a gzip
/// encoder when asked.
struct FileSink {
    file: File,
    path: PathBuf,
    offset: u64,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl FileSink {
    fn create(path: &Path, gzip_level: Option<u32>) -> std::io::Result<FileSink> {
        let file = block_on_here(File::create(path))
            .map_err(|e| crate::input::with_path(e, "cannot create", path))?;
        Ok(FileSink {
            file,
            path: path.to_path_buf(),
            offset: 0,
            encoder: gzip_level.map(|l| GzEncoder::new(Vec::new(), Compression::new(l))),
        })
    }

    fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let out = match self.encoder.as_mut() {
            Some(encoder) => {
                encoder.write_all(bytes)?;
                std::mem::take(encoder.get_mut())
            }
            None => bytes.to_vec(),
        };
        self.write(out)
    }

    fn write(&mut self, out: Vec<u8>) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let len = out.len() as u64;
        let at = self.offset;
        block_on_here(self.file.write_all_at(out, at))
            .0
            .map_err(|e| {
                crate::input::with_path(e, &format!("cannot write at offset {at} to"), &self.path)
            })?;
        self.offset += len;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        if let Some(encoder) = self.encoder.take() {
            let tail = encoder.finish()?;
            self.write(tail)?;
        }
        block_on_here(self.file.close())
    }
}

/// `iok trace-gen` (hidden): make one synthetic trace file.
#[derive(Args, Debug)]
pub struct TraceGenArgs {
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Number of event lines.
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compress the file with gzip at this level.
    #[arg(long)]
    gzip: Option<u32>,
}

pub fn run(args: &TraceGenArgs) -> std::io::Result<()> {
    let bytes = write_trace_file(&args.output, args.lines, args.seed, 1000, args.gzip)?;
    println!(
        "wrote {} lines ({} uncompressed bytes) to {}",
        args.lines,
        bytes,
        args.output.display()
    );
    Ok(())
}
