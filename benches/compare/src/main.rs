//! `iokernel-compare`: the tokio contenders and the echo load generator for
//! `benches/compare/run.sh`. Each subcommand prints one JSON line in the
//! same shape as `iok bench --json`, so the script treats every contender
//! alike.
//!
//! - `tokio-read FILE QD THREADS LIMIT COLD`: random 4 KiB reads through
//!   `tokio::fs::File` (seek + read_exact: what tokio::fs offers; each op is
//!   a hop to tokio's blocking pool). QD tasks, each with its own `File`
//!   (its own fd, so seeks do not collide), uniform offsets with
//!   replacement from a fresh seed, `POSIX_FADV_RANDOM`; LIMIT is `ops:N` or `secs:S`; COLD
//!   is `cold` (fsync + `POSIX_FADV_DONTNEED` first) or `hot`.
//! - `tokio-write FILE MIB THREADS`: sequential 1 MiB `write_all`s, then
//!   `sync_all`; MiB/s includes the sync.
//! - `tokio-echo ADDR THREADS`: echo server; prints the bound address.
//! - `echo-load ADDR CONNS MSG_BYTES SECS`: ping-pong load generator on a
//!   single-threaded runtime: CONNS connections, each sending MSG_BYTES and
//!   waiting for them to come back, in a loop; reports round trips/s and
//!   round-trip p50/p99.

// This crate does not link iokernel, so it has no clock shim to use: it
// times tokio with `Instant` directly (the workspace clippy.toml bans it for
// iokernel's own code, where time must go through the seam).
#![allow(clippy::disallowed_methods)]

use std::io::{Error, ErrorKind, Result, SeekFrom};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BLOCK_BYTES: usize = 4096;
const WRITE_CHUNK_BYTES: usize = 1 << 20;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("argument {i}: expected {what}"),
        )
    })
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_all()
        .build()
}

fn print_row(
    backend: &str,
    test: &str,
    ops: u64,
    elapsed: Duration,
    bytes_per_op: u64,
    lat: &mut [u64],
) {
    lat.sort_unstable();
    let pct = |p: usize| {
        if lat.is_empty() {
            0.0
        } else {
            lat[(lat.len() * p / 100).min(lat.len() - 1)] as f64 / 1000.0
        }
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{{\"backend\":\"{backend}\",\"test\":\"{test}\",\"ops\":{ops},\"seconds\":{secs:.6},\"ops_per_s\":{:.1},\"mib_per_s\":{:.2},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
        ops as f64 / secs,
        (ops * bytes_per_op) as f64 / (1024.0 * 1024.0) / secs,
        pct(50),
        pct(99)
    );
}

/// SplitMix64 offsets, the same generator `iok bench` uses.
fn next_offset(state: &mut u64, blocks: u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % blocks) * BLOCK_BYTES as u64
}

fn fadvise(fd: i32, advice: i32) -> Result<()> {
    // SAFETY: posix_fadvise takes no pointers.
    match unsafe { libc::posix_fadvise(fd, 0, 0, advice) } {
        0 => Ok(()),
        e => Err(Error::from_raw_os_error(e)),
    }
}

#[derive(Clone, Copy)]
enum Limit {
    Ops(u64),
    Time(Duration),
}

/// Whether one more read may start: a shared read count (taken one at a
/// time, so all readers stay busy until the end, like fio) or a deadline.
fn take(left: &AtomicU64, limit: Limit, start: Instant) -> bool {
    match limit {
        Limit::Ops(_) => left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok(),
        Limit::Time(d) => start.elapsed() < d,
    }
}

async fn tokio_reader(
    path: String,
    seed: u64,
    blocks: u64,
    limit: Limit,
    left: Arc<AtomicU64>,
) -> Result<Vec<u64>> {
    let mut file = tokio::fs::File::open(&path).await?;
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut lat = Vec::new();
    let mut state = seed;
    let start = Instant::now();
    while take(&left, limit, start) {
        let offset = next_offset(&mut state, blocks);
        let t0 = Instant::now();
        file.seek(SeekFrom::Start(offset)).await?;
        file.read_exact(&mut buf).await?;
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(lat)
}

fn tokio_read(args: &[String]) -> Result<()> {
    let path: String = arg(args, 2, "file")?;
    let qd: u64 = arg(args, 3, "queue depth")?;
    let threads: usize = arg(args, 4, "threads")?;
    let limit_arg: String = arg(args, 5, "ops:N or secs:S")?;
    let cold = arg::<String>(args, 6, "hot or cold")? == "cold";
    let limit = match limit_arg.split_once(':') {
        Some(("ops", n)) => Limit::Ops(n.parse().map_err(Error::other)?),
        Some(("secs", s)) => Limit::Time(Duration::from_secs_f64(s.parse().map_err(Error::other)?)),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "limit: ops:N or secs:S",
            ))
        }
    };
    let file = std::fs::File::open(&path)?;
    let blocks = file.metadata()?.len() / BLOCK_BYTES as u64;
    fadvise(file.as_raw_fd(), libc::POSIX_FADV_RANDOM)?;
    if cold {
        file.sync_all()?;
        fadvise(file.as_raw_fd(), libc::POSIX_FADV_DONTNEED)?;
    }
    let left = Arc::new(AtomicU64::new(match limit {
        Limit::Ops(n) => n,
        Limit::Time(_) => 0,
    }));
    // A fresh seed per run (like fio --randrepeat=0), so a cold run never
    // re-reads blocks an earlier run left in a cache below the page cache.
    let run_seed = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64)
    };
    let rt = runtime(threads)?;
    let (mut lat, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..qd)
            .map(|i| {
                let seed = run_seed.wrapping_add(i.wrapping_mul(0x2545_F491_4F6C_DD1D));
                tokio::spawn(tokio_reader(
                    path.clone(),
                    seed,
                    blocks,
                    limit,
                    left.clone(),
                ))
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(Error::other)??);
        }
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    let test = format!("randread-4k-qd{qd}-{}", if cold { "cold" } else { "hot" });
    print_row(
        "tokio",
        &test,
        lat.len() as u64,
        elapsed,
        BLOCK_BYTES as u64,
        &mut lat,
    );
    Ok(())
}

fn tokio_write(args: &[String]) -> Result<()> {
    let path: String = arg(args, 2, "file")?;
    let mib: u64 = arg(args, 3, "MiB")?;
    let threads: usize = arg(args, 4, "threads")?;
    let rt = runtime(threads)?;
    let (mut lat, elapsed) = rt.block_on(async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await?;
        let chunk: Vec<u8> = (0..WRITE_CHUNK_BYTES)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        let mut lat = Vec::new();
        let start = Instant::now();
        for _ in 0..mib {
            let t0 = Instant::now();
            file.write_all(&chunk).await?;
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        file.sync_all().await?;
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_row(
        "tokio",
        "seqwrite-1m-fsync",
        lat.len() as u64,
        elapsed,
        WRITE_CHUNK_BYTES as u64,
        &mut lat,
    );
    Ok(())
}

fn tokio_echo(args: &[String]) -> Result<()> {
    let addr: SocketAddr = arg(args, 2, "address")?;
    let threads: usize = arg(args, 3, "threads")?;
    runtime(threads)?.block_on(async {
        let listener = TcpListener::bind(addr).await?;
        println!("echo tokio listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

async fn ping_pong(addr: SocketAddr, msg_bytes: usize, until: Instant) -> Result<Vec<u64>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let msg = vec![0x5Au8; msg_bytes];
    let mut back = vec![0u8; msg_bytes];
    let mut lat = Vec::new();
    while Instant::now() < until {
        let t0 = Instant::now();
        stream.write_all(&msg).await?;
        stream.read_exact(&mut back).await?;
        lat.push(t0.elapsed().as_nanos() as u64);
        if back != msg {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "echo returned different bytes",
            ));
        }
    }
    Ok(lat)
}

fn echo_load(args: &[String]) -> Result<()> {
    let addr: SocketAddr = arg(args, 2, "address")?;
    let conns: usize = arg(args, 3, "connections")?;
    let msg_bytes: usize = arg(args, 4, "message bytes")?;
    let secs: f64 = arg(args, 5, "seconds")?;
    let name: String = args.get(6).cloned().unwrap_or_else(|| "server".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut lat, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(ping_pong(addr, msg_bytes, until)))
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(Error::other)??);
        }
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    let test = format!("echo-{conns}x{msg_bytes}B");
    print_row(
        &name,
        &test,
        lat.len() as u64,
        elapsed,
        2 * msg_bytes as u64,
        &mut lat,
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("tokio-read") => tokio_read(&args),
        Some("tokio-write") => tokio_write(&args),
        Some("tokio-echo") => tokio_echo(&args),
        Some("echo-load") => echo_load(&args),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            "usage: iokernel-compare tokio-read|tokio-write|tokio-echo|echo-load ARGS (see the module docs)",
        )),
    };
    if let Err(e) = result {
        eprintln!("iokernel-compare: {e}");
        std::process::exit(1);
    }
}
