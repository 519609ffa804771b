//! `iok demo`: write a data file, then random-read it at queue depth 32 on
//! each available backend and with the sync fallback, verifying every byte;
//! then merge a synthetic trace set with every writer layout
//! (`demo_merge.rs`), verifying every output.

use clap::Args;
use iokernel::buf::BufResult;
use iokernel::fs::File;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{self, Backend, Runtime};
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;
use std::io::{Error, ErrorKind};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

const BLOCK_BYTES: usize = 4096;
const WRITE_CHUNK_BYTES: usize = 1 << 20;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Size of the data file in MiB.
    #[arg(long, default_value_t = 64)]
    file_mib: u64,
    /// Random 4 KiB reads per backend.
    #[arg(long, default_value_t = 100_000)]
    reads: u64,
    /// Reads in flight at once.
    #[arg(long, default_value_t = 32)]
    queue_depth: u64,
    /// Size of the synthetic trace set merged afterwards, in MiB (0: skip).
    #[arg(long, default_value_t = 32)]
    trace_mib: u64,
    /// Files in the synthetic trace set.
    #[arg(long, default_value_t = 8)]
    trace_files: usize,
}

/// The 8-byte word stored at word index `w`: every byte of the file is a
/// function of its offset, so any block can be checked on its own.
fn word(w: u64) -> u64 {
    let mut z = w.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(buf: &mut [u8], offset: u64) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&word(offset / 8 + i as u64).to_le_bytes());
    }
}

fn check(buf: &[u8], offset: u64, label: &str) -> std::io::Result<()> {
    let mut want = vec![0u8; buf.len()];
    fill(&mut want, offset);
    if buf != want.as_slice() {
        let at = buf.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
        let msg = format!("{label}: wrong data at file offset {}", offset + at as u64);
        return Err(Error::new(ErrorKind::InvalidData, msg));
    }
    Ok(())
}

/// Write the data file through iokernel's own ops. No runtime runs on
/// this thread, so each op is a blocking syscall (the sync fallback).
fn write_data_file(path: &Path, size_bytes: u64) -> std::io::Result<()> {
    runtime::block_on_here(async {
        let file = File::create(path).await?;
        let mut offset = 0;
        while offset < size_bytes {
            let len = WRITE_CHUNK_BYTES.min((size_bytes - offset) as usize);
            let mut chunk = vec![0u8; len];
            fill(&mut chunk, offset);
            file.write_all_at(chunk, offset).await.0?;
            offset += len as u64;
        }
        file.sync_all().await?;
        file.close().await
    })
}

/// Deterministic offsets for one reader.
struct Offsets {
    state: u64,
    blocks: u64,
}

impl Iterator for Offsets {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.state = word(self.state);
        Some((self.state % self.blocks) * BLOCK_BYTES as u64)
    }
}

async fn reader(fd: RawFd, seed: u64, reads: u64, blocks: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; BLOCK_BYTES];
    for offset in (Offsets {
        state: seed,
        blocks,
    })
    .take(reads as usize)
    {
        let BufResult(n, back) = io::pread(fd, buf, offset).await;
        let n = n?;
        if n != BLOCK_BYTES {
            let msg = format!("pread at offset {offset} returned {n} of {BLOCK_BYTES} bytes");
            return Err(Error::new(ErrorKind::UnexpectedEof, msg));
        }
        check(&back, offset, "pread")?;
        buf = back;
    }
    Ok(())
}

struct Measured {
    label: String,
    reads: u64,
    elapsed: Duration,
}

fn run_backend(
    backend: Backend,
    path: &Path,
    args: &DemoArgs,
    blocks: u64,
) -> std::io::Result<Measured> {
    let runtime = Runtime::builder()
        .name(format!("demo-{backend}"))
        .backend(backend)
        .build()?;
    let clock = RealClock::new();
    let per_reader = args.reads / args.queue_depth.max(1);
    let path = path.to_path_buf();
    let elapsed = runtime.block_on(async move {
        let fd = io::open(&path, OpenFlags::RDONLY, 0).await?;
        let start = clock.now();
        let handles: Vec<_> = (0..args.queue_depth)
            .map(|i| runtime::spawn(reader(fd, i + 1, per_reader, blocks)))
            .collect();
        for handle in handles {
            handle.await??;
        }
        let elapsed = clock.now() - start;
        io::close(fd).await?;
        Ok::<_, std::io::Error>(elapsed)
    })?;
    let label = format!(
        "{} (QD{}, {} io threads)",
        backend,
        args.queue_depth,
        runtime.backend_report().io_threads
    );
    Ok(Measured {
        label,
        reads: per_reader * args.queue_depth,
        elapsed,
    })
}

fn run_sync_fallback(path: &Path, args: &DemoArgs, blocks: u64) -> std::io::Result<Measured> {
    let clock = RealClock::new();
    let fd = io::open(path, OpenFlags::RDONLY, 0).wait()?;
    let start = clock.now();
    runtime::block_on_here(reader(fd, 0xFA11_BAC4, args.reads, blocks))?;
    let elapsed = clock.now() - start;
    io::close(fd).wait()?;
    Ok(Measured {
        label: "sync fallback (QD1, no runtime)".to_string(),
        reads: args.reads,
        elapsed,
    })
}

pub fn run(args: &DemoArgs) -> std::io::Result<()> {
    if args.file_mib == 0 || args.reads == 0 || args.queue_depth == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--file-mib, --reads and --queue-depth must be positive",
        ));
    }
    let dir = tempfile::Builder::new().prefix("iok-demo-").tempdir()?;
    let path = dir.path().join("data.bin");
    let size_bytes = args.file_mib << 20;
    let blocks = size_bytes / BLOCK_BYTES as u64;
    println!("writing {} MiB to {} ...", args.file_mib, path.display());
    write_data_file(&path, size_bytes)?;
    println!(
        "random 4 KiB preads, {} per run, every byte checked:",
        args.reads
    );
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "backend", "ops/s", "MiB/s", "seconds"
    );
    let mut results = Vec::new();
    for backend in Backend::CONCRETE {
        match runtime::backend_availability(backend) {
            Ok(()) => results.push(run_backend(backend, &path, args, blocks)?),
            Err(why) => println!("{:<44} skipped: {why}", backend.name()),
        }
    }
    results.push(run_sync_fallback(&path, args, blocks)?);
    for m in &results {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let ops = m.reads as f64 / secs;
        let mib = ops * BLOCK_BYTES as f64 / (1024.0 * 1024.0);
        println!("{:<44} {:>12.0} {:>10.1} {:>10.3}", m.label, ops, mib, secs);
    }
    println!("all reads verified");
    if args.trace_mib > 0 {
        crate::demo_merge::run(dir.path(), args.trace_mib, args.trace_files)?;
    }
    Ok(())
}
