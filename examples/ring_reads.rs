//! Profiling harness for the ring path: QD tasks on the calling thread
//! (`spawn_local` inside `block_on`), each looping random 4 KiB `pread`s
//! into one owned buffer, like the monoio and compio contenders; no pool
//! op, no clock per op. `BACKEND=pool|epoll` picks another backend;
//! `METRICS=0` turns the runtime's metrics off (as `iok bench` without
//! `--metrics`).
//!
//! Count instructions per op as the difference of two runs (this takes
//! the setup out):
//!
//! ```sh
//! cargo build --release --example ring_reads
//! for n in 10000 30000; do valgrind --tool=callgrind target/release/examples/ring_reads FILE 32 $n; done
//! # (total(30000) - total(10000)) / 20000
//! ```
//!
//! `iok bench --backend uring` hung under valgrind 3.19 here: the worker
//! sat in `io_uring_enter` (waiting) while the other threads waited for
//! valgrind's thread lock, so whatever had to wake the worker from
//! another thread never ran. This harness keeps everything on one thread.
use iokernel::buf::BufResult;
#[path = "profiling/mod.rs"]
mod profiling;

use iokernel::runtime;
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: ring_reads PATH QD OPS");
        std::process::exit(2);
    }
    let path = &args[1];
    let qd: u64 = args[2].parse().unwrap();
    let ops: u64 = args[3].parse().unwrap();
    let file = std::fs::File::open(path).unwrap();
    let fd = file.as_raw_fd();
    let blocks = file.metadata().unwrap().len() / 4096;
    let rt = profiling::one_thread_runtime();
    let clock = RealClock::new();
    let start = clock.now();
    rt.block_on(async move {
        let left = Rc::new(Cell::new(ops));
        let handles: Vec<_> = (0..qd)
            .map(|i| {
                let left = left.clone();
                runtime::spawn_local(async move {
                    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
                    let mut buf = vec![0u8; 4096];
                    while left.get() > 0 {
                        left.set(left.get() - 1);
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let offset = (x % blocks) * 4096;
                        let BufResult(n, back) = iokernel::io::pread(fd, buf, offset).await;
                        assert_eq!(n.unwrap(), 4096);
                        buf = back;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let secs = (clock.now() - start).as_secs_f64();
    eprintln!("{ops} ops in {secs:.3}s: {:.0} ops/s", ops as f64 / secs);
}
