//! `Runtime::metrics` on every real backend and on the simulated kernel:
//! the counts are the ops the test issued, the bytes the bytes they moved,
//! percentiles are monotone, and under faults the error counts are the
//! errors the ops returned.

use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{backend_availability, Backend, Runtime, RuntimeMetrics};
use std::path::Path;

const OPS: u64 = 40;
const LEN: usize = 1000;

/// Open, `OPS` pwrites and `OPS` preads of `LEN` bytes, fsync, close.
async fn workload(path: &Path) -> std::io::Result<()> {
    let fd = io::open(path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644).await?;
    for i in 0..OPS {
        let iokernel::buf::BufResult(n, _) = io::pwrite(fd, vec![7u8; LEN], i * LEN as u64).await;
        assert_eq!(n?, LEN);
    }
    for i in 0..OPS {
        let iokernel::buf::BufResult(n, _) = io::pread(fd, vec![0u8; LEN], i * LEN as u64).await;
        assert_eq!(n?, LEN);
    }
    io::fsync(fd).await?;
    io::close(fd).await?;
    Ok(())
}

fn check_workload_counts(metrics: &RuntimeMetrics) {
    let writes = metrics.op("pwrite").expect("pwrites counted");
    let reads = metrics.op("pread").expect("preads counted");
    assert_eq!(writes.count, OPS, "{metrics}");
    assert_eq!(reads.count, OPS, "{metrics}");
    assert_eq!(writes.bytes, OPS * LEN as u64, "{metrics}");
    assert_eq!(reads.bytes, OPS * LEN as u64, "{metrics}");
    assert_eq!(writes.errors + reads.errors, 0);
    assert_eq!(metrics.op("open").map(|o| o.count), Some(1));
    assert_eq!(metrics.op("fsync").map(|o| o.count), Some(1));
    assert_eq!(metrics.op("close").map(|o| o.count), Some(1));
    assert_eq!(metrics.total_ops(), 2 * OPS + 3);
    assert_eq!(metrics.in_flight, 0);
    for op in &metrics.ops {
        assert_eq!(op.latency.count(), op.count, "{}", op.kind);
        let (p50, p99, max) = (
            op.latency.p50_ns(),
            op.latency.p99_ns(),
            op.latency.percentile_ns(1.0),
        );
        assert!(p50 <= p99 && p99 <= max, "{}: {p50} {p99} {max}", op.kind);
    }
}

#[test]
fn counts_and_bytes_equal_the_ops_issued_on_every_backend() {
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .name(format!("metrics-{backend}"))
            .compute_threads(2)
            .io_threads(2)
            .backend(backend)
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        assert_eq!(rt.metrics().total_ops(), 0);
        rt.block_on(workload(&path)).unwrap();
        let metrics = rt.metrics();
        eprintln!("{backend}:\n{metrics}");
        assert_eq!(metrics.backend, backend);
        check_workload_counts(&metrics);
        // Each forced backend reports where its file ops go.
        match backend {
            Backend::Epoll | Backend::Kqueue => {
                let handed: u64 = metrics.pool_fallbacks.iter().map(|(_, n)| n).sum();
                assert_eq!(
                    handed + metrics.fast_path_hits,
                    2 * OPS + 3,
                    "readiness drivers run file ops on the pool unless done inline"
                );
            }
            Backend::ThreadPool => assert!(metrics.pool_fallbacks.is_empty()),
            _ => {}
        }
        // The preads read what the pwrites just wrote: in the page cache,
        // so every one completes inline on every backend.
        assert!(
            metrics.fast_path_hits >= OPS,
            "{backend}: every pread of cached data is an inline hit\n{metrics}"
        );
    }
}

/// An `O_DIRECT` fd is never tried inline (a nowait direct read would
/// still wait for the device on the worker): its reads count as neither
/// hits nor misses, on every backend.
#[test]
fn o_direct_reads_are_never_tried_inline() {
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder().backend(backend).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::write(&path, vec![4u8; 16384]).unwrap();
        let tried = rt.block_on(async {
            let fd = match io::open(&path, OpenFlags::RDONLY | OpenFlags::DIRECT, 0).await {
                Ok(fd) => fd,
                Err(e) => {
                    eprintln!("skipping O_DIRECT on {backend}: {e}");
                    return None;
                }
            };
            for i in 0..8u64 {
                let iokernel::buf::BufResult(n, buf) = io::pread(
                    fd,
                    iokernel::buf::AlignedBuf::new(4096, 4096),
                    (i % 4) * 4096,
                )
                .await;
                assert_eq!(n.unwrap(), 4096);
                assert!(iokernel::buf::IoBuf::as_bytes(&buf).iter().all(|&b| b == 4));
            }
            io::close(fd).await.unwrap();
            let metrics = iokernel::runtime::current_metrics().unwrap();
            Some(metrics.fast_path_hits + metrics.fast_path_misses)
        });
        if let Some(tried) = tried {
            assert_eq!(tried, 0, "{backend}: O_DIRECT reads were tried inline");
        }
    }
}

#[test]
fn uring_counts_the_ops_it_hands_to_the_pool() {
    if let Err(reason) = backend_availability(Backend::IoUring) {
        eprintln!("skipping: io_uring unavailable: {reason}");
        return;
    }
    let rt = Runtime::builder()
        .backend(Backend::IoUring)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    rt.block_on(async {
        let fd = io::open(&path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644).await?;
        io::lseek(fd, 0, io::Whence::Set).await?;
        io::close(fd).await
    })
    .unwrap();
    let metrics = rt.metrics();
    assert_eq!(metrics.pool_fallbacks, vec![("lseek", 1)], "{metrics}");
    assert!(metrics.fallback_reasons.iter().any(|r| r.contains("lseek")));
}

#[test]
fn a_full_pool_queue_is_counted_as_saturation() {
    use std::io::Write;
    let rt = Runtime::builder()
        .compute_threads(1)
        .io_threads(1)
        .backend(Backend::ThreadPool)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    std::fs::write(&path, vec![1u8; 64]).unwrap();
    // A recv with no data yet holds the pool's one thread; meanwhile more
    // fsyncs than its queue holds (1024 per thread) pile up behind it.
    // (Not reads: a read of a cached file completes inline, and a nowait
    // miss starts the kernel's readahead, so reads soon hit.)
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let sock = std::os::fd::AsRawFd::as_raw_fd(&ours);
    let reads = 1500;
    let total = rt.block_on(async move {
        let fd = io::open(&path, OpenFlags::RDONLY, 0).await.unwrap();
        let recv = iokernel::runtime::spawn(async move { io::recv(sock, vec![0u8; 8]).await.0 });
        iokernel::runtime::sleep(std::time::Duration::from_millis(20)).await;
        let handles: Vec<_> = (0..reads)
            .map(|_| {
                iokernel::runtime::spawn(async move {
                    io::fsync(fd).await.unwrap();
                    64
                })
            })
            .collect();
        iokernel::runtime::sleep(std::time::Duration::from_millis(50)).await;
        theirs.write_all(b"go").unwrap();
        assert_eq!(recv.await.unwrap().unwrap(), 2);
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        io::close(fd).await.unwrap();
        total
    });
    drop(ours);
    assert_eq!(total, reads * 64);
    let metrics = rt.metrics();
    assert_eq!(metrics.op("fsync").unwrap().count, reads as u64);
    assert!(metrics.pool_saturations > 0, "{metrics}");
    assert_eq!(metrics.in_flight, 0);
}

#[test]
fn the_json_report_parses_and_names_its_fields() {
    let rt = Runtime::builder()
        .backend(Backend::ThreadPool)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(workload(&dir.path().join("j"))).unwrap();
    let json = rt.metrics().to_json();
    for field in [
        "\"backend\":\"pool\"",
        "\"in_flight\":0",
        "\"kind\":\"pwrite\"",
        "\"p99_ns\":",
        "\"pool_saturations\":",
        "\"cq_overflows\":",
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    let parsed = std::process::Command::new("python3")
        .args(["-c", "import json,sys; json.load(sys.stdin)"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(json.as_bytes())?;
            child.wait()
        });
    match parsed {
        Ok(status) => assert!(status.success(), "python3 rejects {json}"),
        Err(e) => eprintln!("python3 not runnable ({e}); field checks only"),
    }
}

#[cfg(feature = "sim")]
mod simulated {
    use super::*;
    use iokernel::runtime::current_metrics;
    use iokernel::sim::{self, SimDriver, SimOptions};
    use iokernel::sys::Kernel;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    const DRIVERS: [SimDriver; 4] = [
        SimDriver::Pool,
        SimDriver::Ring,
        SimDriver::EpollSemantics,
        SimDriver::KqueueSemantics,
    ];

    /// Reads of cached pages are inline hits and reads of dropped pages
    /// misses, on every simulated driver; with a file system that takes
    /// nowait buffered writes, a write over cached pages is a hit too. The
    /// counters agree with what the simulated kernel saw.
    #[test]
    fn inline_hits_and_misses_are_counted_on_every_simulated_driver() {
        for driver in DRIVERS {
            let mut options = SimOptions::new(4);
            options.driver = driver;
            options.page_cache.nowait_writes = true;
            let kernel = sim::new_kernel(options).unwrap();
            let (cold, hot) = sim::run(&kernel, async {
                let fd = io::open("/c", OpenFlags::RDWR | OpenFlags::CREAT, 0o644)
                    .await
                    .unwrap();
                // Extends the file: a nowait write would allocate, so a miss.
                let iokernel::buf::BufResult(n, _) = io::pwrite(fd, vec![5u8; 8192], 0).await;
                assert_eq!(n.unwrap(), 8192);
                let before = current_metrics().unwrap();
                // Over cached pages, inside the file: skipped (backing off
                // one op after the miss), then a hit.
                for _ in 0..2 {
                    let iokernel::buf::BufResult(n, _) = io::pwrite(fd, vec![6u8; 100], 10).await;
                    assert_eq!(n.unwrap(), 100);
                }
                io::fsync(fd).await.unwrap();
                io::fadvise(fd, 0, 0, iokernel::io::Advice::DontNeed)
                    .await
                    .unwrap();
                let iokernel::buf::BufResult(n, cold) = io::pread(fd, vec![0u8; 4096], 0).await;
                assert_eq!(n.unwrap(), 4096);
                let mut hot = Vec::new();
                for _ in 0..2 {
                    let iokernel::buf::BufResult(n, buf) = io::pread(fd, vec![0u8; 4096], 0).await;
                    assert_eq!(n.unwrap(), 4096);
                    hot = buf;
                }
                let after = current_metrics().unwrap();
                assert_eq!(
                    before.fast_path_misses, 1,
                    "{driver:?}: the extending write\n{before}"
                );
                assert_eq!(before.fast_path_hits, 0, "{driver:?}\n{before}");
                // The third write hit; the cold read missed (and cached
                // the page), the next was skipped, the last hit.
                assert_eq!(after.fast_path_hits, 2, "{driver:?}\n{after}");
                assert_eq!(after.fast_path_misses, 2, "{driver:?}\n{after}");
                io::close(fd).await.unwrap();
                (cold, hot)
            })
            .unwrap();
            assert_eq!(
                cold, hot,
                "{driver:?}: a miss and a hit read the same bytes"
            );
            assert_eq!(&cold[..10], &[5u8; 10]);
            assert_eq!(&cold[10..110], &[6u8; 100][..]);
            let stats = kernel.core().stats();
            assert_eq!(
                (stats.nowait_hits, stats.nowait_misses),
                (2, 2),
                "{stats:?}"
            );
        }
    }

    #[test]
    fn counts_equal_the_ops_issued_on_every_simulated_driver() {
        for driver in DRIVERS {
            let mut options = SimOptions::new(3);
            options.driver = driver;
            let kernel = sim::new_kernel(options).unwrap();
            let metrics = sim::run(&kernel, async {
                workload(Path::new("/m")).await.unwrap();
                current_metrics().expect("a simulated runtime")
            })
            .unwrap();
            eprintln!("{driver:?}:\n{metrics}");
            check_workload_counts(&metrics);
        }
    }

    /// Under faults (errnos, short I/O, a 4-slot ring that overflows) the
    /// counters agree with what the ops returned.
    #[test]
    fn error_counts_match_the_errors_the_ops_returned_under_faults() {
        for (seed, driver) in (1..=6u64).zip(DRIVERS.iter().cycle()) {
            let mut options = SimOptions::with_faults(seed, 0.2);
            options.driver = *driver;
            let kernel = sim::new_kernel(options).unwrap();
            // The setup open itself may draw a fault: retry it.
            let flags = iokernel::sys::OpenFlags::RDWR | iokernel::sys::OpenFlags::CREAT;
            let fd = (0..100)
                .find_map(|_| kernel.open(c"/f", flags, 0o644).ok())
                .expect("an open succeeds within 100 tries");
            let (errors, bytes, issued, metrics) = sim::run(&kernel, async move {
                let (mut errors, mut bytes, mut issued) = (0u64, 0u64, 0u64);
                // Many ops at once so the 4-slot ring overflows.
                let handles: Vec<_> = (0..64u64)
                    .map(|i| {
                        iokernel::runtime::spawn(async move {
                            let w = io::pwrite(fd, vec![1u8; 100], i * 100).await.0;
                            let r = io::pread(fd, vec![0u8; 100], i * 100).await.0;
                            (w, r)
                        })
                    })
                    .collect();
                for h in handles {
                    let (w, r) = h.await.unwrap();
                    for result in [w, r] {
                        issued += 1;
                        match result {
                            Ok(n) => bytes += n as u64,
                            Err(_) => errors += 1,
                        }
                    }
                }
                (errors, bytes, issued, current_metrics().unwrap())
            })
            .unwrap();
            eprintln!("seed {seed} {driver:?}: {errors} errors\n{metrics}");
            let data: Vec<_> = ["pwrite", "pread"]
                .iter()
                .filter_map(|k| metrics.op(k))
                .collect();
            assert_eq!(data.iter().map(|o| o.count).sum::<u64>(), issued);
            assert_eq!(data.iter().map(|o| o.errors).sum::<u64>(), errors);
            assert_eq!(data.iter().map(|o| o.bytes).sum::<u64>(), bytes);
            assert_eq!(metrics.in_flight, 0);
            assert!(metrics.cq_overflows <= kernel.core().stats().ring_cq_overflows);
        }
    }

    /// Poll every future until all are done (a burst of ops at once).
    async fn join_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
        let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
        std::future::poll_fn(move |cx| {
            let mut pending = false;
            for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
                if output.is_none() {
                    match Pin::new(future).poll(cx) {
                        Poll::Ready(value) => *output = Some(value),
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                return Poll::Pending;
            }
            Poll::Ready(
                outputs
                    .iter_mut()
                    .map(|o| o.take().expect("ready"))
                    .collect(),
            )
        })
        .await
    }

    /// A burst larger than a 2-slot completion queue: every overflow the
    /// simulated ring made is in the metrics.
    #[test]
    fn completion_queue_overflows_are_counted() {
        let mut options = SimOptions::new(5);
        options.driver = SimDriver::Ring;
        options.reorder_completions = true;
        options.ring.sq_entries = 3;
        options.ring.cq_entries = 2;
        // Every inline attempt finds the file evicted: the reads go to the ring.
        options.page_cache.evict_probability = 1.0;
        let kernel = sim::new_kernel(options).unwrap();
        kernel.write_file_durable("/burst", &[9u8; 4000]).unwrap();
        let metrics = sim::run(&kernel, async {
            let fd = io::open("/burst", OpenFlags::RDONLY, 0).await.unwrap();
            let reads: Vec<_> = (0..1000u64)
                .map(|i| io::pread(fd, vec![0u8; 4], i * 4))
                .collect();
            for iokernel::buf::BufResult(n, _) in join_all(reads).await {
                assert_eq!(n.unwrap(), 4);
            }
            io::close(fd).await.unwrap();
            current_metrics().unwrap()
        })
        .unwrap();
        let stats = kernel.core().stats();
        assert!(stats.ring_cq_overflows > 0, "{stats:?}");
        assert_eq!(metrics.cq_overflows, stats.ring_cq_overflows, "{metrics}");
        assert_eq!(metrics.op("pread").unwrap().count, 1000);
        assert_eq!(metrics.op("pread").unwrap().bytes, 4000);
    }
}

/// An op waiting in the kernel counts as in flight until its result comes.
#[test]
fn a_pending_recv_counts_as_in_flight_on_every_backend() {
    use std::io::Write;
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .compute_threads(1)
            .io_threads(2)
            .backend(backend)
            .build()
            .unwrap();
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let sock = std::os::fd::AsRawFd::as_raw_fd(&ours);
        let recv = rt.spawn(async move { io::recv(sock, vec![0u8; 8]).await.0 });
        let mut waited = 0;
        while rt.metrics().in_flight == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            waited += 1;
            assert!(
                waited < 2500,
                "{backend}: the recv never showed as in flight"
            );
        }
        assert_eq!(rt.metrics().in_flight, 1, "{backend}");
        theirs.write_all(b"hi").unwrap();
        assert_eq!(rt.block_on(recv).unwrap().unwrap(), 2);
        let metrics = rt.metrics();
        assert_eq!(metrics.in_flight, 0, "{backend}: {metrics}");
        assert_eq!(
            metrics.op("recv").map(|o| (o.count, o.bytes)),
            Some((1, 2)),
            "{backend}"
        );
    }
}
