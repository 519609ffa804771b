//! `iokernel-compare-compio`: the compio contenders for
//! `benches/compare/run.sh`, written as compio's docs show: one runtime
//! thread on the io_uring driver (compio built without its `polling`
//! driver, so it cannot fall back), owned buffers passed into each op and
//! handed back. Each subcommand prints one JSON line in the shape of
//! `iok bench --json`.
//!
//! - `compio-read FILE QD THREADS LIMIT COLD`: QD tasks each looping
//!   `AsyncReadAt::read_at` of a 4 KiB owned buffer at uniform random
//!   offsets, on one `File` (clones share the fd) with
//!   `POSIX_FADV_RANDOM`; LIMIT is `ops:N` or `secs:S`; COLD is `cold`
//!   (fsync + `POSIX_FADV_DONTNEED` first) or `hot`. THREADS must be 1.
//! - `compio-write FILE MIB THREADS`: sequential 1 MiB `write_all_at`s,
//!   then `sync_all`; MiB/s includes the sync.
//! - `compio-echo ADDR THREADS`: echo server (accept, then per connection
//!   a task looping `read` / `write_all` of one owned buffer); prints the
//!   bound address.

// No iokernel clock seam here: time compio with `Instant` directly.
#![allow(clippy::disallowed_methods)]

#[path = "../../compare/src/common.rs"]
mod common;

use common::{
    echo_args, fadvise, next_offset, one_thread, print_read_row, print_write_row, task_seeds,
    write_args, write_chunk, ReadArgs, BLOCK_BYTES, WRITE_CHUNK_BYTES,
};
use compio::buf::BufResult;
use compio::fs::File;
use compio::io::{AsyncRead, AsyncReadAt, AsyncWriteAtExt, AsyncWriteExt};
use compio::net::TcpListener;
use compio::runtime::ResumeUnwind;
use std::io::{Error, ErrorKind, Result};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

fn runtime(threads: usize) -> Result<compio::runtime::Runtime> {
    one_thread(threads)?;
    compio::runtime::Runtime::new()
}

async fn reader(
    file: File,
    args: Rc<ReadArgs>,
    seed: u64,
    left: Rc<AtomicU64>,
    start: Instant,
) -> Result<Vec<u64>> {
    let mut buf = Vec::with_capacity(BLOCK_BYTES);
    let mut lat = Vec::new();
    let mut state = seed;
    while args.take(&left, start) {
        let offset = next_offset(&mut state, args.blocks);
        let t0 = Instant::now();
        let BufResult(res, back) = file.read_at(buf, offset).await;
        buf = back;
        if res? != BLOCK_BYTES {
            return Err(Error::new(ErrorKind::UnexpectedEof, "short read"));
        }
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(lat)
}

fn read(args: &[String]) -> Result<()> {
    let args = Rc::new(ReadArgs::parse(args)?);
    let (lat, elapsed) = runtime(args.threads)?.block_on(async {
        let file = File::open(&args.path).await?;
        fadvise(&file, libc::POSIX_FADV_RANDOM)?;
        let left = Rc::new(AtomicU64::new(args.ops_budget()));
        let start = Instant::now();
        let tasks: Vec<_> = task_seeds(args.qd)
            .into_iter()
            .map(|seed| {
                compio::runtime::spawn(reader(
                    file.clone(),
                    args.clone(),
                    seed,
                    left.clone(),
                    start,
                ))
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            let done = t.await.resume_unwind();
            lat.extend(done.ok_or_else(|| Error::other("reader task cancelled"))??);
        }
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_read_row("compio", &args, lat, elapsed);
    Ok(())
}

fn write(args: &[String]) -> Result<()> {
    let (path, mib, threads) = write_args(args)?;
    let (lat, elapsed) = runtime(threads)?.block_on(async {
        let mut file = compio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await?;
        let mut chunk = write_chunk();
        let mut lat = Vec::new();
        let start = Instant::now();
        for i in 0..mib {
            let t0 = Instant::now();
            let BufResult(res, back) = file.write_all_at(chunk, i * WRITE_CHUNK_BYTES as u64).await;
            chunk = back;
            res?;
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        file.sync_all().await?;
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_write_row("compio", lat, elapsed);
    Ok(())
}

fn echo(args: &[String]) -> Result<()> {
    let (addr, threads) = echo_args(args)?;
    runtime(threads)?.block_on(async {
        let listener = TcpListener::bind(addr).await?;
        println!("echo compio listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            compio::runtime::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    // A read fills the buffer from its start but only ever
                    // grows its length: start each message empty.
                    buf.clear();
                    let BufResult(res, back) = stream.read(buf).await;
                    buf = back;
                    match res {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let BufResult(res, back) = stream.write_all(buf).await;
                    buf = back;
                    if res.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("compio-read") => read(&args),
        Some("compio-write") => write(&args),
        Some("compio-echo") => echo(&args),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            "usage: iokernel-compare-compio compio-read|compio-write|compio-echo ARGS (see the module docs)",
        )),
    };
    if let Err(e) = result {
        eprintln!("iokernel-compare-compio: {e}");
        std::process::exit(1);
    }
}
