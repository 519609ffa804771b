//! `iokernel-compare`: the tokio contenders and the echo load generator for
//! `benches/compare/run.sh`. Each subcommand prints one JSON line in the
//! same shape as `iok bench --json`, so the script treats every contender
//! alike (the compio and monoio contenders, crates of their own beside
//! this one, share `common.rs`).
//!
//! - `tokio-read FILE QD THREADS LIMIT COLD`: random 4 KiB reads through
//!   `tokio::fs::File` (seek + read_exact: what tokio::fs offers; each op is
//!   a hop to tokio's blocking pool). QD tasks, each with its own `File`
//!   (its own fd, so seeks do not collide, each with `POSIX_FADV_RANDOM`),
//!   uniform offsets with replacement from a fresh seed; LIMIT is `ops:N`
//!   or `secs:S`; COLD is `cold` (fsync + `POSIX_FADV_DONTNEED` first) or
//!   `hot`.
//! - `tokio-write FILE MIB THREADS`: sequential 1 MiB `write_all`s, then
//!   `sync_all`; MiB/s includes the sync.
//! - `tokio-echo ADDR THREADS`: echo server; prints the bound address.
//! - `echo-load ADDR CONNS MSG_BYTES SECS [NAME [SERVER_PID]]`: ping-pong
//!   load generator on a single-threaded runtime: CONNS connections (all
//!   connected before the clock starts), each sending MSG_BYTES and waiting
//!   for them to come back, in a loop; reports round trips/s and round-trip
//!   p50/p99 as contender NAME. With SERVER_PID it adds the server
//!   process's CPU time (user + system of all its threads, from
//!   /proc/PID/stat) over the measured window, in total (`server_cpu_s`)
//!   and per round trip (`server_cpu_us_per_op`), and its user and system
//!   shares per round trip (`server_user_us_per_op`, `server_sys_us_per_op`).

// This crate does not link iokernel, so it has no clock shim to use: it
// times tokio with `Instant` directly (the workspace clippy.toml bans it for
// iokernel's own code, where time must go through the seam).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{
    arg, echo_args, fadvise, next_offset, print_read_row, print_row, print_write_row, task_seeds,
    write_args, write_chunk, ReadArgs, BLOCK_BYTES,
};
use std::io::{Error, ErrorKind, Result, SeekFrom};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_all()
        .build()
}

async fn tokio_reader(
    args: Arc<ReadArgs>,
    seed: u64,
    left: Arc<AtomicU64>,
    start: Instant,
) -> Result<Vec<u64>> {
    let mut file = tokio::fs::File::open(&args.path).await?;
    fadvise(&file, libc::POSIX_FADV_RANDOM)?;
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut lat = Vec::new();
    let mut state = seed;
    while args.take(&left, start) {
        let offset = next_offset(&mut state, args.blocks);
        let t0 = Instant::now();
        file.seek(SeekFrom::Start(offset)).await?;
        file.read_exact(&mut buf).await?;
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(lat)
}

fn tokio_read(args: &[String]) -> Result<()> {
    let args = Arc::new(ReadArgs::parse(args)?);
    let left = Arc::new(AtomicU64::new(args.ops_budget()));
    let rt = runtime(args.threads)?;
    let (lat, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = task_seeds(args.qd)
            .into_iter()
            .map(|seed| tokio::spawn(tokio_reader(args.clone(), seed, left.clone(), start)))
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(Error::other)??);
        }
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_read_row("tokio", &args, lat, elapsed);
    Ok(())
}

fn tokio_write(args: &[String]) -> Result<()> {
    let (path, mib, threads) = write_args(args)?;
    let rt = runtime(threads)?;
    let (lat, elapsed) = rt.block_on(async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await?;
        let chunk = write_chunk();
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
    print_write_row("tokio", lat, elapsed);
    Ok(())
}

fn tokio_echo(args: &[String]) -> Result<()> {
    let (addr, threads) = echo_args(args)?;
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

async fn ping_pong(mut stream: TcpStream, msg_bytes: usize, until: Instant) -> Result<Vec<u64>> {
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

/// CPU seconds (user, system; all threads) process `pid` has used so far:
/// fields 14 and 15 of /proc/PID/stat, in clock ticks.
fn process_cpu_secs(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after it do not.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| Error::other(format!("/proc/{pid}/stat: no field {}", i + 3)))
    };
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // After ")" come field 3 (state) onwards: utime is field 14, stime 15.
    Ok((ticks(14 - 3)? as f64 / hz, ticks(15 - 3)? as f64 / hz))
}

fn echo_load(args: &[String]) -> Result<()> {
    let addr: SocketAddr = arg(args, 2, "address")?;
    let conns: usize = arg(args, 3, "connections")?;
    let msg_bytes: usize = arg(args, 4, "message bytes")?;
    let secs: f64 = arg(args, 5, "seconds")?;
    let name: String = args.get(6).cloned().unwrap_or_else(|| "server".into());
    let server_pid: Option<u32> = args
        .get(7)
        .map(|_| arg(args, 7, "server pid"))
        .transpose()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut lat, elapsed, server_cpu) = rt.block_on(async {
        // Connect everyone first, so the measured window (time and the
        // server's CPU) holds round trips only, not accepts.
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let cpu0 = server_pid.map(process_cpu_secs).transpose()?;
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|s| tokio::spawn(ping_pong(s, msg_bytes, until)))
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(Error::other)??);
        }
        let elapsed = start.elapsed();
        let cpu = match (server_pid, cpu0) {
            (Some(pid), Some((user0, sys0))) => {
                let (user, sys) = process_cpu_secs(pid)?;
                Some((user - user0, sys - sys0))
            }
            _ => None,
        };
        Ok::<_, Error>((lat, elapsed, cpu))
    })?;
    let test = format!("echo-{conns}x{msg_bytes}B");
    let ops = lat.len() as u64;
    let per_op = |secs: f64| secs * 1e6 / ops.max(1) as f64;
    let extra = match server_cpu {
        Some((user, sys)) => format!(
            ",\"server_cpu_s\":{:.3},\"server_cpu_us_per_op\":{:.3},\
             \"server_user_us_per_op\":{:.3},\"server_sys_us_per_op\":{:.3}",
            user + sys,
            per_op(user + sys),
            per_op(user),
            per_op(sys)
        ),
        None => String::new(),
    };
    print_row(
        &name,
        &test,
        ops,
        elapsed,
        2 * msg_bytes as u64,
        &mut lat,
        &extra,
    );
    Ok(())
}

/// `tokio-pingpong ROUND_TRIPS`: two tasks on a current-thread runtime
/// ping-pong 64 bytes over a Unix socket pair, for counting user-space
/// instructions per round trip under callgrind beside iokernel's
/// `examples/ring_pingpong` (`BACKEND=epoll`).
fn tokio_pingpong(args: &[String]) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let trips: u64 = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "usage: tokio-pingpong ROUND_TRIPS"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (mut a, mut b) = tokio::net::UnixStream::pair()?;
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..trips {
                b.read_exact(&mut buf).await?;
                b.write_all(&buf).await?;
            }
            Ok::<(), std::io::Error>(())
        });
        let mut buf = [7u8; 64];
        for _ in 0..trips {
            a.write_all(&buf).await?;
            a.read_exact(&mut buf).await?;
        }
        echo.await.map_err(std::io::Error::other)?
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("tokio-read") => tokio_read(&args),
        Some("tokio-write") => tokio_write(&args),
        Some("tokio-echo") => tokio_echo(&args),
        Some("echo-load") => echo_load(&args),
        Some("tokio-pingpong") => tokio_pingpong(&args),
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
