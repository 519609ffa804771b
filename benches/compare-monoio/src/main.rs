//! `iokernel-compare-monoio`: the monoio contenders for
//! `benches/compare/run.sh`, written as monoio's docs show: one runtime
//! thread on the io_uring driver (`RuntimeBuilder::<IoUringDriver>`, built
//! without the `legacy` epoll driver, so it cannot fall back), owned
//! buffers passed into each op and handed back. Each subcommand prints one
//! JSON line in the shape of `iok bench --json`.
//!
//! - `monoio-read FILE QD THREADS LIMIT COLD`: QD tasks each looping
//!   `File::read_at` of a 4 KiB owned buffer at uniform random offsets, on
//!   one `File` with `POSIX_FADV_RANDOM`; LIMIT is `ops:N` or `secs:S`;
//!   COLD is `cold` (fsync + `POSIX_FADV_DONTNEED` first) or `hot`.
//!   THREADS must be 1.
//! - `monoio-write FILE MIB THREADS`: sequential 1 MiB `write_all_at`s,
//!   then `sync_all`; MiB/s includes the sync.
//! - `monoio-echo ADDR THREADS`: echo server (accept, then per connection
//!   a task looping `read` / `write_all` of one owned buffer); prints the
//!   bound address.

// No iokernel clock seam here: time monoio with `Instant` directly.
#![allow(clippy::disallowed_methods)]

#[path = "../../compare/src/common.rs"]
mod common;

use common::{
    echo_args, fadvise, next_offset, one_thread, print_read_row, print_write_row, task_seeds,
    write_args, write_chunk, ReadArgs, BLOCK_BYTES, WRITE_CHUNK_BYTES,
};
use monoio::fs::File;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpListener;
use std::io::{Error, ErrorKind, Result};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

fn runtime(threads: usize) -> Result<monoio::Runtime<monoio::IoUringDriver>> {
    one_thread(threads)?;
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()
}

async fn reader(
    file: Rc<File>,
    args: Rc<ReadArgs>,
    seed: u64,
    left: Rc<AtomicU64>,
    start: Instant,
) -> Result<Vec<u64>> {
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut lat = Vec::new();
    let mut state = seed;
    while args.take(&left, start) {
        let offset = next_offset(&mut state, args.blocks);
        let t0 = Instant::now();
        let (res, back) = file.read_at(buf, offset).await;
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
        let file = Rc::new(File::open(&args.path).await?);
        fadvise(&*file, libc::POSIX_FADV_RANDOM)?;
        let left = Rc::new(AtomicU64::new(args.ops_budget()));
        let start = Instant::now();
        let tasks: Vec<_> = task_seeds(args.qd)
            .into_iter()
            .map(|seed| {
                monoio::spawn(reader(
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
            lat.extend(t.await?);
        }
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_read_row("monoio", &args, lat, elapsed);
    Ok(())
}

fn write(args: &[String]) -> Result<()> {
    let (path, mib, threads) = write_args(args)?;
    let (lat, elapsed) = runtime(threads)?.block_on(async {
        let file = monoio::fs::OpenOptions::new()
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
            let (res, back) = file.write_all_at(chunk, i * WRITE_CHUNK_BYTES as u64).await;
            chunk = back;
            res?;
            lat.push(t0.elapsed().as_nanos() as u64);
        }
        file.sync_all().await?;
        Ok::<_, Error>((lat, start.elapsed()))
    })?;
    print_write_row("monoio", lat, elapsed);
    Ok(())
}

fn echo(args: &[String]) -> Result<()> {
    let (addr, threads) = echo_args(args)?;
    runtime(threads)?.block_on(async {
        let listener = TcpListener::bind(addr)?;
        println!("echo monoio listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let (res, back) = stream.read(buf).await;
                    buf = back;
                    match res {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let (res, back) = stream.write_all(buf).await;
                    buf = back;
                    if res.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("monoio-read") => read(&args),
        Some("monoio-write") => write(&args),
        Some("monoio-echo") => echo(&args),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            "usage: iokernel-compare-monoio monoio-read|monoio-write|monoio-echo ARGS (see the module docs)",
        )),
    };
    if let Err(e) = result {
        eprintln!("iokernel-compare-monoio: {e}");
        std::process::exit(1);
    }
}
