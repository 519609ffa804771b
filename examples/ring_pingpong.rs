//! Profiling harness for the ring path of socket ops: two tasks on the
//! calling thread (`spawn_local` inside `block_on`) ping-pong a 64-byte
//! message over a Unix socket pair with `read` and `write`, four ring ops
//! per round trip and next to no kernel work, so user-space cost per op
//! dominates. `BACKEND=pool|epoll` picks another backend; `METRICS=0`
//! turns the runtime's metrics off (as `iok bench` without `--metrics`);
//! `TRANSPORT=tcp` ping-pongs over a loopback TCP connection instead
//! (whose reads on io_uring go through the connection's receive stream).
//! Prints round trips per second and the process's user and system time
//! per round trip (`/proc/self/stat`).
//!
//! Count instructions per round trip as the difference of two runs (this
//! takes the setup out); everything runs on one thread, so io_uring works
//! under valgrind here (see `ring_reads.rs`):
//!
//! ```sh
//! cargo build --release --example ring_pingpong
//! for n in 20000 60000; do METRICS=0 valgrind --tool=callgrind target/release/examples/ring_pingpong $n; done
//! # (total(60000) - total(20000)) / 40000
//! ```
use iokernel::buf::BufResult;
use iokernel::net::{TcpListener, TcpStream, UnixStream};
#[path = "profiling/mod.rs"]
mod profiling;

use iokernel::runtime;
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;

/// The process's (user, system) CPU seconds so far.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th of them, in clock ticks (100 per second
    // on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().unwrap() / 100.0;
    (ticks(11), ticks(12))
}

/// Ping-pong `trips` 64-byte messages between connected streams `a`
/// and `b` (any type with iokernel's `read` and `write`).
macro_rules! ping_pong {
    ($a:ident, $b:ident, $trips:ident) => {{
        let (a, b, trips) = ($a, $b, $trips);
        let echo = runtime::spawn_local(async move {
            let mut buf = vec![0u8; 64];
            for _ in 0..trips {
                let BufResult(n, back) = b.read(buf).await;
                assert_eq!(n.unwrap(), 64);
                let BufResult(n, back) = b.write(back).await;
                assert_eq!(n.unwrap(), 64);
                buf = back;
            }
        });
        let ping = runtime::spawn_local(async move {
            let mut buf = vec![7u8; 64];
            for _ in 0..trips {
                let BufResult(n, back) = a.write(buf).await;
                assert_eq!(n.unwrap(), 64);
                let BufResult(n, back) = a.read(back).await;
                assert_eq!(n.unwrap(), 64);
                buf = back;
            }
        });
        echo.await.unwrap();
        ping.await.unwrap();
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: ring_pingpong ROUND_TRIPS");
        std::process::exit(2);
    }
    let trips: u64 = args[1].parse().unwrap();
    let rt = profiling::one_thread_runtime();
    let clock = RealClock::new();
    let (user0, sys0) = cpu_seconds();
    let start = clock.now();
    let tcp = std::env::var("TRANSPORT").is_ok_and(|t| t == "tcp");
    rt.block_on(async move {
        if tcp {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (b, _) = listener.accept().await.unwrap();
            a.set_nodelay(true).unwrap();
            b.set_nodelay(true).unwrap();
            ping_pong!(a, b, trips);
        } else {
            let (a, b) = UnixStream::pair().unwrap();
            ping_pong!(a, b, trips);
        }
    });
    let secs = (clock.now() - start).as_secs_f64();
    let (user1, sys1) = cpu_seconds();
    let per_trip_us = |s: f64| s * 1e6 / trips as f64;
    eprintln!(
        "{trips} round trips in {secs:.3}s: {:.0}/s; user {:.2} us, system {:.2} us per round trip",
        trips as f64 / secs,
        per_trip_us(user1 - user0),
        per_trip_us(sys1 - sys0)
    );
}
