//! What every comparison contender shares (tokio here; compio and monoio in
//! `benches/compare-compio` and `benches/compare-monoio`, which include this
//! file with `#[path]`): argument parsing, the JSON row in the shape of
//! `iok bench --json`, the random offsets, the read budget and the cold
//! file preparation. Each contender crate stays a crate of its own (its
//! own runtime, its own lockfile) and none of them duplicates the harness.

// Not every contender uses every item (the compio and monoio crates have
// no load generator, for one).
#![allow(dead_code)]

use std::io::{Error, ErrorKind, Result};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const BLOCK_BYTES: usize = 4096;
pub const WRITE_CHUNK_BYTES: usize = 1 << 20;

pub fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("argument {i}: expected {what}"),
        )
    })
}

/// One JSON row, the shape `iok bench --json` prints; `extra` is appended
/// verbatim (`,"key":value` pairs) for fields only some tests have.
pub fn print_row(
    backend: &str,
    test: &str,
    ops: u64,
    elapsed: Duration,
    bytes_per_op: u64,
    lat: &mut [u64],
    extra: &str,
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
        "{{\"backend\":\"{backend}\",\"test\":\"{test}\",\"ops\":{ops},\"seconds\":{secs:.6},\"ops_per_s\":{:.1},\"mib_per_s\":{:.2},\"p50_us\":{:.2},\"p99_us\":{:.2}{extra}}}",
        ops as f64 / secs,
        (ops * bytes_per_op) as f64 / (1024.0 * 1024.0) / secs,
        pct(50),
        pct(99)
    );
}

/// SplitMix64 offsets, the same generator `iok bench` uses.
pub fn next_offset(state: &mut u64, blocks: u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % blocks) * BLOCK_BYTES as u64
}

/// Task `i`'s seed: a fresh base per run (like fio --randrepeat=0), so a
/// cold run never re-reads blocks an earlier run left in a cache below the
/// page cache, and a distinct stream per task.
pub fn task_seeds(qd: u64) -> Vec<u64> {
    use std::hash::BuildHasher;
    let base = std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64);
    (0..qd)
        .map(|i| base.wrapping_add(i.wrapping_mul(0x2545_F491_4F6C_DD1D)))
        .collect()
}

pub fn fadvise(fd: &impl AsRawFd, advice: i32) -> Result<()> {
    // SAFETY: posix_fadvise takes no pointers.
    match unsafe { libc::posix_fadvise(fd.as_raw_fd(), 0, 0, advice) } {
        0 => Ok(()),
        e => Err(Error::from_raw_os_error(e)),
    }
}

#[derive(Clone, Copy)]
pub enum Limit {
    Ops(u64),
    Time(Duration),
}

/// The arguments every read contender takes after its subcommand:
/// `FILE QD THREADS LIMIT COLD` (LIMIT `ops:N` or `secs:S`, COLD `cold` or
/// `hot`), with the file's block count; a cold run first writes back and
/// drops the file's cached pages.
pub struct ReadArgs {
    pub path: String,
    pub qd: u64,
    pub threads: usize,
    pub limit: Limit,
    pub cold: bool,
    pub blocks: u64,
}

impl ReadArgs {
    pub fn parse(args: &[String]) -> Result<ReadArgs> {
        let path: String = arg(args, 2, "file")?;
        let qd: u64 = arg(args, 3, "queue depth")?;
        let threads: usize = arg(args, 4, "threads")?;
        let limit_arg: String = arg(args, 5, "ops:N or secs:S")?;
        let cold = arg::<String>(args, 6, "hot or cold")? == "cold";
        let limit = match limit_arg.split_once(':') {
            Some(("ops", n)) => Limit::Ops(n.parse().map_err(Error::other)?),
            Some(("secs", s)) => {
                Limit::Time(Duration::from_secs_f64(s.parse().map_err(Error::other)?))
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "limit: ops:N or secs:S",
                ))
            }
        };
        let file = std::fs::File::open(&path)?;
        let blocks = file.metadata()?.len() / BLOCK_BYTES as u64;
        if cold {
            file.sync_all()?;
            fadvise(&file, libc::POSIX_FADV_DONTNEED)?;
        }
        Ok(ReadArgs {
            path,
            qd,
            threads,
            limit,
            cold,
            blocks,
        })
    }

    /// The budget a shared op counter starts from (unused when time-limited).
    pub fn ops_budget(&self) -> u64 {
        match self.limit {
            Limit::Ops(n) => n,
            Limit::Time(_) => 0,
        }
    }

    pub fn test_name(&self) -> String {
        let cache = if self.cold { "cold" } else { "hot" };
        format!("randread-4k-qd{}-{cache}", self.qd)
    }

    /// Whether one more read may start: `left` is the shared read count
    /// (taken one at a time, so all readers stay busy until the end, like
    /// fio), or the deadline has not passed.
    pub fn take(&self, left: &AtomicU64, start: Instant) -> bool {
        match self.limit {
            Limit::Ops(_) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            Limit::Time(d) => start.elapsed() < d,
        }
    }
}

/// A read contender's row: `lat` holds one latency (ns) per read.
pub fn print_read_row(backend: &str, args: &ReadArgs, mut lat: Vec<u64>, elapsed: Duration) {
    let ops = lat.len() as u64;
    let test = args.test_name();
    print_row(
        backend,
        &test,
        ops,
        elapsed,
        BLOCK_BYTES as u64,
        &mut lat,
        "",
    );
}

/// The arguments every write contender takes after its subcommand:
/// `FILE MIB THREADS`.
pub fn write_args(args: &[String]) -> Result<(String, u64, usize)> {
    Ok((
        arg(args, 2, "file")?,
        arg(args, 3, "MiB")?,
        arg(args, 4, "threads")?,
    ))
}

/// A write contender's row: `lat` holds one latency (ns) per 1 MiB write;
/// `elapsed` includes the final sync.
pub fn print_write_row(backend: &str, mut lat: Vec<u64>, elapsed: Duration) {
    let ops = lat.len() as u64;
    let bytes = WRITE_CHUNK_BYTES as u64;
    print_row(
        backend,
        "seqwrite-1m-fsync",
        ops,
        elapsed,
        bytes,
        &mut lat,
        "",
    );
}

/// The arguments every echo server takes after its subcommand:
/// `ADDR THREADS`.
pub fn echo_args(args: &[String]) -> Result<(std::net::SocketAddr, usize)> {
    Ok((arg(args, 2, "address")?, arg(args, 3, "threads")?))
}

/// The single-threaded contenders (compio, monoio: one runtime thread).
pub fn one_thread(threads: usize) -> Result<()> {
    if threads == 1 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            "threads: this contender runs one runtime thread",
        ))
    }
}

/// The write contenders' 1 MiB chunk.
pub fn write_chunk() -> Vec<u8> {
    (0..WRITE_CHUNK_BYTES)
        .map(|i| (i * 131 % 251) as u8)
        .collect()
}
