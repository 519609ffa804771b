//! `iok bench`: random 4 KiB `pread`s at a chosen queue depth, page cache
//! hot or cold, and sequential 1 MiB writes with a final `fsync`, on each
//! backend; prints ops/s, MiB/s and p50/p99 latency per (backend, test).
//! `iok bench --serve-echo ADDR` runs a TCP echo server instead, for the
//! loopback comparison in `benches/compare`.
//!
//! How each test runs, so its numbers can be set beside fio's:
//! - Queue depth N on a runtime backend is N tasks, each looping over
//!   "pick a uniformly random 4 KiB block, `pread` it, wait" and drawing
//!   from one shared read count or deadline: N reads are in flight until
//!   the last N (fio `--iodepth=N`).
//!   On io_uring that is N entries in the ring; on the pool and epoll
//!   backends the N reads queue for `--threads` blocking threads.
//! - The sync fallback ("sync") is `--threads` plain threads without a
//!   runtime, each doing one blocking `pread` at a time (fio `psync`), so
//!   it runs at queue depth 1 only.
//! - Offsets are uniform over the file's blocks, with replacement (fio
//!   `--norandommap`), from a fresh seed each run unless `--seed` is given
//!   (fio `--randrepeat=0`); the read fd gets `POSIX_FADV_RANDOM` like
//!   fio's default `fadvise_hint`.
//! - Hot: the whole file is read once first, then reads run for
//!   `--seconds` (or `--ops`). Cold: `fsync`, then
//!   `posix_fadvise(DONTNEED)` on the whole file, then only `--cold-ops`
//!   reads, so nearly all of them miss the cache.
//! - Write: the whole file in 1 MiB `pwrite`s, one at a time, then one
//!   `fsync`; MiB/s includes the `fsync`, the latencies are the writes'.
//!
//! Latency is taken per op with the crate's clock shim around each await.

use clap::Args;
use iokernel::buf::{BufResult, SliceMut};
use iokernel::io::{self, Advice, OpenFlags};
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{self, Backend, Runtime};
use iokernel::sys::real::{thread::spawn_named, RealClock};
use iokernel::sys::Clock;
use std::io::{Error, ErrorKind, Result, Write as _};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BLOCK_BYTES: usize = 4096;
const WRITE_CHUNK_BYTES: usize = 1 << 20;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Data file to read: a new path is created and filled to --file-mib;
    /// an existing file is only read, and refused if smaller than that; the
    /// write test overwrites PATH.write (created if missing, kept).
    /// Default: fresh files in a temp dir under the current directory,
    /// deleted afterwards.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Size of the data file in MiB (the whole file is read from and written).
    #[arg(long, default_value_t = 1024)]
    file_mib: u64,
    /// Backends, comma-separated: all, uring, epoll, pool, sync (the sync fallback).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    backend: Vec<String>,
    /// Tests, comma-separated: read, write.
    #[arg(long, value_delimiter = ',', default_value = "read,write")]
    test: Vec<String>,
    /// Read queue depths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    qd: Vec<u64>,
    /// Page-cache states for reads, comma-separated: hot, cold.
    #[arg(long, value_delimiter = ',', default_value = "hot,cold")]
    cache: Vec<String>,
    /// Hot reads per run (instead of --seconds).
    #[arg(long, conflicts_with = "seconds")]
    ops: Option<u64>,
    /// Seconds per hot read run (default 3 when --ops is not given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Reads per cold run (also capped at 1/8 of the file's blocks and at
    /// --ops), so that nearly every read misses the page cache.
    #[arg(long, default_value_t = 8192)]
    cold_ops: u64,
    /// Runtime worker threads and blocking-I/O threads (and sync threads).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the random offsets (default: a fresh one per run, so a cold
    /// run never re-reads the blocks an earlier run left in a cache below
    /// the page cache, such as the host's cache of a virtual disk).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object per result line instead of a table (with
    /// --metrics, then one `{"backend", "metrics"}` object per runtime
    /// backend).
    #[arg(long)]
    json: bool,
    /// Count every op on the runtime backends and print their metrics
    /// after the results (ops per kind, bytes, p50/p99, pool fallbacks,
    /// saturation, CQ overflows). Off, the runtimes count nothing, so a
    /// run with and one without measure what counting costs.
    #[arg(long)]
    metrics: bool,
    /// Instead of benchmarking files: serve TCP echo on this address with
    /// the first --backend (uring or epoll; not the pool, where each pending
    /// accept or recv holds a blocking thread), print the bound address,
    /// run until killed.
    #[arg(long)]
    serve_echo: Option<SocketAddr>,
}

/// Where a run stops.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Ops(u64),
    Time(Duration),
}

/// One contender: a runtime backend or the sync fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Runtime(Backend),
    Sync,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Runtime(b) => b.name(),
            Contender::Sync => "sync",
        }
    }
}

/// One result row.
struct Row {
    contender: &'static str,
    test: String,
    ops: u64,
    bytes: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Row {
    fn percentile_us(&self, pct: usize) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let i = (self.latencies_ns.len() * pct / 100).min(self.latencies_ns.len() - 1);
        self.latencies_ns[i] as f64 / 1000.0
    }

    fn print(&self, json: bool) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let (ops_s, mib_s) = (self.ops as f64 / secs, self.bytes as f64 / MIB / secs);
        let (p50, p99) = (self.percentile_us(50), self.percentile_us(99));
        if json {
            println!(
                "{{\"backend\":\"{}\",\"test\":\"{}\",\"ops\":{},\"seconds\":{:.6},\"ops_per_s\":{:.1},\"mib_per_s\":{:.2},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
                self.contender, self.test, self.ops, secs, ops_s, mib_s, p50, p99
            );
        } else {
            println!(
                "{:<8} {:<22} {:>9} {:>12.0} {:>10.1} {:>10.1} {:>10.1}",
                self.contender, self.test, self.ops, ops_s, mib_s, p50, p99
            );
        }
    }
}

/// The next SplitMix64 output.
fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic uniform block offsets for one reader.
struct Offsets {
    state: u64,
    blocks: u64,
}

impl Offsets {
    fn next_offset(&mut self) -> u64 {
        (split_mix(&mut self.state) % self.blocks) * BLOCK_BYTES as u64
    }
}

/// What the readers of one run draw from: a shared count of reads (each
/// reader takes one before issuing it, like fio's job-wide `io_size`, so
/// all N stay busy until the last N reads) or a shared deadline.
#[derive(Clone)]
enum Budget {
    Ops(Arc<AtomicU64>),
    Time(Duration),
}

impl Budget {
    fn new(limit: Limit) -> Budget {
        match limit {
            Limit::Ops(n) => Budget::Ops(Arc::new(AtomicU64::new(n))),
            Limit::Time(d) => Budget::Time(d),
        }
    }

    /// Whether one more read may start, `elapsed` into the run.
    fn take(&self, elapsed: Duration) -> bool {
        match self {
            Budget::Ops(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            Budget::Time(d) => elapsed < *d,
        }
    }
}

/// One reader: one read in flight at a time until the budget runs out
/// is done; returns each read's latency in nanoseconds.
async fn reader(
    fd: RawFd,
    seed: u64,
    blocks: u64,
    budget: Budget,
    clock: Arc<RealClock>,
) -> Result<Vec<u64>> {
    let mut offsets = Offsets {
        state: seed,
        blocks,
    };
    let mut latencies = Vec::new();
    let mut buf = vec![0u8; BLOCK_BYTES];
    let start = clock.now();
    while budget.take(clock.now() - start) {
        let offset = offsets.next_offset();
        let t0 = clock.now();
        let BufResult(n, back) = io::pread(fd, buf, offset).await;
        latencies.push((clock.now() - t0).as_nanos() as u64);
        let n = n.map_err(|e| context(e, "pread", offset))?;
        if n != BLOCK_BYTES {
            let msg = format!("pread at offset {offset} returned {n} of {BLOCK_BYTES} bytes");
            return Err(Error::new(ErrorKind::UnexpectedEof, msg));
        }
        buf = back;
    }
    Ok(latencies)
}

fn context(e: Error, op: &str, offset: u64) -> Error {
    Error::new(e.kind(), format!("{op} at offset {offset}: {e}"))
}

/// A seed that differs from run to run: std's per-process random hash keys
/// (no clock or RNG dependency needed).
fn fresh_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64)
}

/// The offset stream seed of reader `i`.
fn reader_seed(seed: u64, i: u64) -> u64 {
    let mut state = seed ^ i;
    split_mix(&mut state)
}

/// Merge per-reader latencies into one sorted sample.
fn merge(per_reader: Vec<Vec<u64>>) -> Vec<u64> {
    let mut all: Vec<u64> = per_reader.into_iter().flatten().collect();
    all.sort_unstable();
    all
}

/// `qd` readers as tasks on `runtime`, all started together.
fn read_on_runtime(
    runtime: &Runtime,
    fd: RawFd,
    qd: u64,
    (blocks, seed): (u64, u64),
    limit: Limit,
) -> Result<(Vec<u64>, Duration)> {
    let clock = Arc::new(RealClock::new());
    let budget = Budget::new(limit);
    runtime.block_on(async {
        let start = clock.now();
        let handles: Vec<_> = (0..qd)
            .map(|i| {
                let seed = reader_seed(seed, i);
                runtime::spawn(reader(fd, seed, blocks, budget.clone(), clock.clone()))
            })
            .collect();
        let mut per_reader = Vec::new();
        for handle in handles {
            per_reader.push(handle.await.map_err(Error::other)??);
        }
        Ok((merge(per_reader), clock.now() - start))
    })
}

/// `threads` plain threads (no runtime), each one blocking read at a time.
fn read_sync(
    fd: RawFd,
    threads: usize,
    (blocks, seed): (u64, u64),
    limit: Limit,
) -> Result<(Vec<u64>, Duration)> {
    let clock = Arc::new(RealClock::new());
    let budget = Budget::new(limit);
    let start = clock.now();
    let mut handles = Vec::new();
    for i in 0..threads as u64 {
        let (clock, budget) = (clock.clone(), budget.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = spawn_named(format!("iok-bench-sync-{i}"), move || {
            let _ = tx.send(runtime::block_on_here(reader(
                fd,
                reader_seed(seed, i),
                blocks,
                budget,
                clock,
            )));
        })?;
        handles.push((thread, rx));
    }
    let mut per_reader = Vec::new();
    for (thread, rx) in handles {
        let result = rx
            .recv()
            .map_err(|_| Error::other("a sync reader thread died"))?;
        thread
            .join()
            .map_err(|_| Error::other("a sync reader thread panicked"))?;
        per_reader.push(result?);
    }
    Ok((merge(per_reader), clock.now() - start))
}

/// Read the whole file once so every block sits in the page cache.
fn warm(path: &Path, size_bytes: u64) -> Result<()> {
    let fd = io::open(path, OpenFlags::RDONLY, 0).wait()?;
    let mut buf = vec![0u8; WRITE_CHUNK_BYTES];
    let mut offset = 0;
    while offset < size_bytes {
        let BufResult(n, back) = io::pread(fd, buf, offset).wait();
        match n.map_err(|e| context(e, "pread (warm-up)", offset))? {
            0 => break,
            n => offset += n as u64,
        }
        buf = back;
    }
    io::close(fd).wait()
}

/// Flush and drop the file's cached pages: the next reads go to the disk.
fn drop_cache(fd: RawFd) -> Result<()> {
    io::fsync(fd).wait()?;
    io::fadvise(fd, 0, 0, Advice::DontNeed)
        .wait()
        .map_err(|e| Error::new(e.kind(), format!("fadvise(DONTNEED): {e}")))
}

/// Make sure `path` holds at least `size_bytes` of written (not sparse)
/// data: a missing file is created and filled with 1 MiB writes and
/// synced. An existing file is only read: one shorter than `size_bytes` is
/// refused, never written into (it may be the user's data).
fn prepare_file(path: &Path, size_bytes: u64) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() >= size_bytes => return Ok(()),
        Ok(meta) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--file {}: holds {} bytes, less than --file-mib {} ({size_bytes} bytes), \
                     and bench never writes into a file it did not create: pass a larger \
                     file, a smaller --file-mib, or a path that does not exist yet (bench \
                     then creates and fills it)",
                    path.display(),
                    meta.len(),
                    size_bytes >> 20
                ),
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::new(
                e.kind(),
                format!("--file {}: {e}", path.display()),
            ))
        }
    }
    eprintln!("writing {} MiB to {} ...", size_bytes >> 20, path.display());
    // O_EXCL: a file that appeared meanwhile is not ours to fill.
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
    let fd = io::open(path, flags, 0o644)
        .wait()
        .map_err(|e| Error::new(e.kind(), format!("create {}: {e}", path.display())))?;
    let mut buf = pattern(WRITE_CHUNK_BYTES);
    let mut offset = 0;
    while offset < size_bytes {
        buf = runtime::block_on_here(write_chunk(fd, buf, offset))?;
        offset += WRITE_CHUNK_BYTES as u64;
    }
    io::fsync(fd).wait()?;
    io::close(fd).wait()
}

/// Incompressible-looking bytes, so no layer can shortcut the writes.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x5EED;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        buf.extend_from_slice(&split_mix(&mut state).to_le_bytes());
    }
    buf.truncate(len);
    buf
}

/// One 1 MiB `pwrite` of the whole buffer at `offset`, resuming a short
/// write (a rare path that copies the rest); returns the buffer.
async fn write_chunk(fd: RawFd, buf: Vec<u8>, offset: u64) -> Result<Vec<u8>> {
    let BufResult(n, buf) = io::pwrite(fd, buf, offset).await;
    let mut done = n.map_err(|e| context(e, "pwrite", offset))?;
    while done < buf.len() {
        let at = offset + done as u64;
        let BufResult(n, _) = io::pwrite(fd, buf[done..].to_vec(), at).await;
        match n.map_err(|e| context(e, "pwrite", at))? {
            0 => {
                return Err(Error::new(
                    ErrorKind::WriteZero,
                    format!("pwrite at offset {at} wrote 0 bytes"),
                ))
            }
            n => done += n,
        }
    }
    Ok(buf)
}

/// Sequential 1 MiB writes over `size_bytes`, then one `fsync`.
async fn write_file(path: PathBuf, size_bytes: u64) -> Result<(Vec<u64>, Duration)> {
    let clock = RealClock::new();
    let fd = io::open(&path, OpenFlags::WRONLY | OpenFlags::CREAT, 0o644).await?;
    let mut buf = pattern(WRITE_CHUNK_BYTES);
    let mut latencies = Vec::new();
    let start = clock.now();
    let mut offset = 0;
    while offset < size_bytes {
        let t0 = clock.now();
        buf = write_chunk(fd, buf, offset).await?;
        latencies.push((clock.now() - t0).as_nanos() as u64);
        offset += WRITE_CHUNK_BYTES as u64;
    }
    io::fsync(fd).await?;
    let elapsed = clock.now() - start;
    io::close(fd).await?;
    latencies.sort_unstable();
    Ok((latencies, elapsed))
}

/// What every test of one invocation shares.
struct Plan {
    path: PathBuf,
    write_path: PathBuf,
    size_bytes: u64,
    blocks: u64,
    hot: Limit,
    cold: Limit,
    /// Advances once per read run, so no two runs read the same blocks.
    seed: std::cell::Cell<u64>,
}

impl Plan {
    fn next_seed(&self) -> u64 {
        let mut state = self.seed.get();
        let seed = split_mix(&mut state);
        self.seed.set(state);
        seed
    }
}

/// Runs one contender's tests, keeping its runtime for all of them.
struct Bench<'a> {
    plan: &'a Plan,
    args: &'a BenchArgs,
    contender: Contender,
    runtime: Option<Runtime>,
}

impl Bench<'_> {
    fn read(&self, qd: u64, cold: bool) -> Result<Option<Row>> {
        let (blocks, limit) = (
            self.plan.blocks,
            if cold { self.plan.cold } else { self.plan.hot },
        );
        let fd = io::open(&self.plan.path, OpenFlags::RDONLY, 0).wait()?;
        io::fadvise(fd, 0, 0, Advice::Random).wait()?;
        if cold {
            drop_cache(fd)?;
        }
        let blocks = (blocks, self.plan.next_seed());
        let result = match (&self.runtime, self.contender) {
            (Some(rt), _) => read_on_runtime(rt, fd, qd, blocks, limit).map(Some),
            (None, _) if qd == 1 => read_sync(fd, self.args.threads, blocks, limit).map(Some),
            (None, _) => Ok(None),
        };
        io::close(fd).wait()?;
        let Some((latencies_ns, elapsed)) = result? else {
            return Ok(None);
        };
        let cache = if cold { "cold" } else { "hot" };
        Ok(Some(Row {
            contender: self.contender.name(),
            test: format!("randread-4k-qd{qd}-{cache}"),
            ops: latencies_ns.len() as u64,
            bytes: latencies_ns.len() as u64 * BLOCK_BYTES as u64,
            elapsed,
            latencies_ns,
        }))
    }

    fn write(&self) -> Result<Row> {
        let (path, size) = (self.plan.write_path.clone(), self.plan.size_bytes);
        let (latencies_ns, elapsed) = match &self.runtime {
            Some(rt) => rt.block_on(write_file(path, size))?,
            None => runtime::block_on_here(write_file(path, size))?,
        };
        Ok(Row {
            contender: self.contender.name(),
            test: "seqwrite-1m-fsync".to_string(),
            ops: latencies_ns.len() as u64,
            bytes: latencies_ns.len() as u64 * WRITE_CHUNK_BYTES as u64,
            elapsed,
            latencies_ns,
        })
    }
}

fn contenders(names: &[String]) -> Result<Vec<Contender>> {
    let mut out = Vec::new();
    for name in names {
        let add: Vec<Contender> = match name.trim() {
            "all" => {
                let mut all: Vec<Contender> = Backend::CONCRETE
                    .into_iter()
                    .filter(|b| match runtime::backend_availability(*b) {
                        Ok(()) => true,
                        Err(why) => {
                            eprintln!("{}: not run: {why}", b.name());
                            false
                        }
                    })
                    .map(Contender::Runtime)
                    .collect();
                all.push(Contender::Sync);
                all
            }
            "sync" => vec![Contender::Sync],
            other => vec![Contender::Runtime(Backend::parse(other)?)],
        };
        for c in add {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn build_runtime(contender: Contender, threads: usize, metrics: bool) -> Result<Option<Runtime>> {
    match contender {
        Contender::Sync => Ok(None),
        Contender::Runtime(backend) => Runtime::builder()
            .name(format!("bench-{backend}"))
            .backend(backend)
            .metrics(metrics)
            .compute_threads(threads)
            .io_threads(threads)
            .build()
            .map(Some),
    }
}

fn validate(args: &BenchArgs) -> Result<()> {
    let bad = |msg: &str| Err(Error::new(ErrorKind::InvalidInput, msg.to_string()));
    if args.file_mib == 0 || args.threads == 0 || args.cold_ops == 0 {
        return bad("--file-mib, --threads and --cold-ops must be positive");
    }
    if args.qd.contains(&0) || args.ops == Some(0) {
        return bad("--qd and --ops must be positive");
    }
    if args.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        return bad("--seconds must be a positive number");
    }
    for c in &args.cache {
        if c != "hot" && c != "cold" {
            return bad("--cache takes hot and/or cold");
        }
    }
    for t in &args.test {
        if t != "read" && t != "write" {
            return bad("--test takes read and/or write");
        }
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    validate(args)?;
    if let Some(addr) = args.serve_echo {
        return serve_echo(args, addr);
    }
    let contenders = contenders(&args.backend)?;
    // The default file lives in a temp dir under the current directory, so
    // it is on the file system the user runs from (not a tmpfs /tmp).
    let temp = match &args.file {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("iok-bench-")
                .tempdir_in(".")?,
        ),
    };
    let path = match (&args.file, &temp) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.path().canonicalize()?.join("data.bin"),
        (None, None) => unreachable!("a temp dir is made when --file is absent"),
    };
    let size_bytes = args.file_mib << 20;
    let blocks = size_bytes / BLOCK_BYTES as u64;
    let hot = match (args.ops, args.seconds) {
        (Some(n), _) => Limit::Ops(n),
        (None, s) => Limit::Time(Duration::from_secs_f64(s.unwrap_or(3.0))),
    };
    let cold_ops = args
        .cold_ops
        .min(args.ops.unwrap_or(u64::MAX))
        .min(blocks / 8)
        .max(1);
    let mut write_path = path.clone().into_os_string();
    write_path.push(".write");
    let plan = Plan {
        path,
        write_path: write_path.into(),
        size_bytes,
        blocks,
        hot,
        cold: Limit::Ops(cold_ops),
        seed: std::cell::Cell::new(args.seed.unwrap_or_else(fresh_seed)),
    };
    prepare_file(&plan.path, size_bytes)?;
    if !args.json {
        print_header(args, &plan, cold_ops);
    }
    run_all(args, &plan, &contenders)
}

fn print_header(args: &BenchArgs, plan: &Plan, cold_ops: u64) {
    let hot = match plan.hot {
        Limit::Ops(n) => format!("{n} reads"),
        Limit::Time(d) => format!("{:.1} s", d.as_secs_f64()),
    };
    println!(
        "file {} ({} MiB), {} thread(s); hot runs {hot}, cold runs {cold_ops} reads after fsync + fadvise(DONTNEED)",
        plan.path.display(),
        args.file_mib,
        args.threads
    );
    println!(
        "{:<8} {:<22} {:>9} {:>12} {:>10} {:>10} {:>10}",
        "backend", "test", "ops", "ops/s", "MiB/s", "p50 us", "p99 us"
    );
}

/// Hot reads for every contender first (one warm-up), then cold ones,
/// then writes, so a cold run never leaves a later hot run half-cached.
fn run_all(args: &BenchArgs, plan: &Plan, contenders: &[Contender]) -> Result<()> {
    let mut benches = Vec::new();
    for &contender in contenders {
        benches.push(Bench {
            plan,
            args,
            contender,
            runtime: build_runtime(contender, args.threads, args.metrics)?,
        });
    }
    let reads = args.test.iter().any(|t| t == "read");
    for cache in ["hot", "cold"] {
        if !reads || !args.cache.iter().any(|c| c == cache) {
            continue;
        }
        if cache == "hot" {
            warm(&plan.path, plan.size_bytes)?;
        }
        for bench in &benches {
            for &qd in &args.qd {
                match bench.read(qd, cache == "cold")? {
                    Some(row) => row.print(args.json),
                    None if !args.json => println!(
                        "{:<8} randread-4k-qd{qd}-{cache}: not run (the sync fallback blocks its thread: queue depth 1 per thread)",
                        bench.contender.name()
                    ),
                    None => {}
                }
                std::io::stdout().flush()?;
            }
        }
    }
    if args.test.iter().any(|t| t == "write") {
        for bench in &benches {
            bench.write()?.print(args.json);
            std::io::stdout().flush()?;
        }
    }
    if args.metrics {
        print_metrics(&benches, args.json)?;
    }
    Ok(())
}

/// Each runtime backend's metrics: a table, or one JSON object per backend.
fn print_metrics(benches: &[Bench<'_>], json: bool) -> Result<()> {
    for bench in benches {
        let Some(rt) = &bench.runtime else {
            continue;
        };
        let metrics = rt.metrics();
        if json {
            println!(
                "{{\"backend\":\"{}\",\"metrics\":{}}}",
                bench.contender.name(),
                metrics.to_json()
            );
        } else {
            println!(
                "\nmetrics of {}:\n{}",
                bench.contender.name(),
                metrics.to_string().trim_end()
            );
        }
    }
    std::io::stdout().flush()
}

/// Echo every byte back on each connection, one task per connection.
fn serve_echo(args: &BenchArgs, addr: SocketAddr) -> Result<()> {
    let backend = match contenders(&args.backend)?.first() {
        Some(Contender::Runtime(b)) if *b != Backend::ThreadPool => *b,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--serve-echo needs a backend that waits for sockets without a thread \
                 (uring or epoll): on the pool a pending accept or recv holds a blocking \
                 thread, so --threads 1 would stall",
            ))
        }
    };
    let rt = build_runtime(Contender::Runtime(backend), args.threads, args.metrics)?
        .ok_or_else(|| Error::other("no runtime"))?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr)?;
        println!("echo {} listening on {}", backend, listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            // Detached: a connection's error (the client resetting it at the
            // end of a run) ends that connection only.
            drop(runtime::spawn(echo(stream)));
        }
    })
}

async fn echo(stream: TcpStream) -> Result<()> {
    // A fixed-size buffer: a `Vec` would be zero-filled to its capacity
    // before every read (the safe `IoBufMut` for `Vec`), which the peers'
    // echo servers do not pay either.
    let mut buf: Box<[u8]> = vec![0u8; 4096].into_boxed_slice();
    loop {
        let BufResult(n, back) = stream.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(());
        }
        let BufResult(sent, back) = stream.write_all(SliceMut::new(back, 0, n)).await;
        sent?;
        buf = back.into_inner();
    }
}
