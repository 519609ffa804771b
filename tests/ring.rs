//! The io_uring driver over its two rings. On the simulated ring: ring
//! faults (a small submission queue, `EBUSY`, completion-queue overflow,
//! reordering) lose no completion and no byte; Auto falls back with the
//! reason when the ring refuses setup; forcing an unusable ring is a clear
//! error; a missing opcode sends only its op to the pool. On the kernel's
//! ring: a burst of ops larger than the submission queue is flushed and
//! retried, every op completing.

use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{
    backend_availability, current_backend_report, spawn, Backend, BackendReport, Runtime,
};
use iokernel::sim::{self, SimDriver, SimError, SimOptions};
use iokernel::sys::Errno;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

#[path = "support/sim_ring.rs"]
mod sim_ring;
use sim_ring::on_a_busy_sim_ring;

/// Faults off, but completions late and reordered and a ring so small that
/// every fault of its own happens: the SQ fills, submits hit `EBUSY`, the
/// CQ overflows.
fn stressed_ring(seed: u64) -> SimOptions {
    let mut options = on_a_busy_sim_ring(SimOptions::new(seed), Duration::from_micros(20));
    options.reorder_completions = true;
    options.ring.sq_entries = 3;
    options.ring.cq_entries = 2;
    options.ring.busy_probability = 0.2;
    options
}

fn block(task: usize, index: usize) -> Vec<u8> {
    (0..512)
        .map(|i| (task * 31 + index * 7 + i) as u8)
        .collect()
}

/// Eight tasks write eight blocks each at distinct offsets, concurrently,
/// then read every block back.
async fn write_then_read_blocks() -> std::io::Result<()> {
    let flags = OpenFlags::RDWR | OpenFlags::CREAT;
    let fd = io::open("/blocks", flags, 0o644).await?;
    let writers: Vec<_> = (0..8)
        .map(|task| {
            spawn(async move {
                for index in 0..8 {
                    let offset = ((task * 8 + index) * 512) as u64;
                    let BufResult(n, _) = io::pwrite(fd, block(task, index), offset).await;
                    assert_eq!(n?, 512, "write of task {task} block {index}");
                }
                Ok::<_, std::io::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task")?;
    }
    for task in 0..8 {
        for index in 0..8 {
            let offset = ((task * 8 + index) * 512) as u64;
            let BufResult(n, buf) = io::pread(fd, vec![0u8; 512], offset).await;
            assert_eq!(n?, 512);
            assert_eq!(buf, block(task, index), "task {task} block {index}");
        }
    }
    io::close(fd).await
}

#[test]
fn ring_faults_lose_no_completion_and_no_byte() {
    let mut totals = iokernel::sim::SimStats::default();
    for seed in 0..60 {
        let kernel = sim::new_kernel(stressed_ring(seed)).unwrap();
        sim::run(&kernel, write_then_read_blocks())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(kernel.open_fds(), 0, "seed {seed}");
        totals.merge(&kernel.core().stats());
    }
    assert!(totals.ring_completions > 0, "{totals:?}");
    assert!(totals.ring_sq_full > 0, "the SQ never filled: {totals:?}");
    assert!(totals.ring_busy > 0, "no submit saw EBUSY: {totals:?}");
    assert!(
        totals.ring_cq_overflows > 0,
        "the CQ never overflowed: {totals:?}"
    );
    assert!(totals.reordered_completions > 0, "{totals:?}");
}

#[test]
fn the_same_seed_gives_the_same_ring_run() {
    let hash = |seed| {
        let kernel = sim::new_kernel(stressed_ring(seed)).unwrap();
        sim::run(&kernel, write_then_read_blocks())
            .unwrap()
            .unwrap();
        kernel.core().trace_hash()
    };
    assert_eq!(hash(9), hash(9));
    assert_ne!(hash(9), hash(10));
}

/// Run a small file workload and return the runtime's backend report.
fn report_of(options: SimOptions) -> Result<BackendReport, SimError> {
    let kernel = sim::new_kernel(options).unwrap();
    sim::run(&kernel, async {
        let flags = OpenFlags::RDWR | OpenFlags::CREAT;
        let fd = io::open("/f", flags, 0o644).await.unwrap();
        let BufResult(n, _) = io::pwrite(fd, b"hello".to_vec(), 0).await;
        assert_eq!(n.unwrap(), 5);
        let stat = io::fstat(fd).await.unwrap();
        assert_eq!(stat.size_bytes, 5);
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 8], 0).await;
        assert_eq!(&buf[..n.unwrap()], b"hello");
        io::close(fd).await.unwrap();
        current_backend_report().expect("a simulated runtime")
    })
}

#[test]
fn auto_falls_back_to_the_pool_when_the_ring_refuses_setup() {
    for (errno, why) in [
        (Errno::EPERM, "EPERM"),
        (Errno::ENOSYS, "no io_uring"),
        (Errno::ENOMEM, "RLIMIT_MEMLOCK"),
    ] {
        let mut options = SimOptions::new(1);
        options.driver = SimDriver::Auto;
        options.ring.setup_errno = Some(errno);
        let report = report_of(options).unwrap();
        assert_eq!(report.requested, Backend::Auto, "{report}");
        assert_eq!(report.selected, Backend::ThreadPool, "{report}");
        assert_eq!(report.rejected.len(), 1, "{report}");
        let (rejected, reason) = &report.rejected[0];
        assert_eq!(*rejected, Backend::IoUring, "{report}");
        assert!(reason.contains(why), "{errno:?}: {reason}");
        assert!(report.to_string().contains("uring rejected"), "{report}");
    }
    // A healthy ring is what Auto takes.
    let mut options = SimOptions::new(1);
    options.driver = SimDriver::Auto;
    let report = report_of(options).unwrap();
    assert_eq!(report.selected, Backend::IoUring, "{report}");
    assert!(report.rejected.is_empty(), "{report}");
}

#[test]
fn auto_rejects_a_ring_without_a_required_opcode() {
    let mut options = SimOptions::new(1);
    options.driver = SimDriver::Auto;
    options.ring.missing_opcodes = vec![iokernel::sim::opcode::READ];
    let report = report_of(options).unwrap();
    assert_eq!(report.selected, Backend::ThreadPool, "{report}");
    let (_, reason) = &report.rejected[0];
    assert!(reason.contains("required opcodes: READ"), "{reason}");
}

#[test]
fn forcing_a_ring_that_refuses_setup_is_a_clear_error() {
    let mut options = SimOptions::new(1);
    options.driver = SimDriver::Ring;
    options.ring.setup_errno = Some(Errno::EPERM);
    match report_of(options) {
        Err(SimError::BackendUnavailable(why)) => {
            assert!(why.contains("uring was requested by"), "{why}");
            assert!(why.contains("EPERM"), "{why}");
        }
        other => panic!("forcing an unusable ring must fail clearly, got {other:?}"),
    }
}

#[test]
fn a_missing_opcode_sends_only_its_op_to_the_pool() {
    let mut options = SimOptions::new(1);
    options.driver = SimDriver::Ring;
    options.ring.missing_opcodes = vec![iokernel::sim::opcode::STATX];
    let kernel = sim::new_kernel(options.clone()).unwrap();
    let report = report_of(options).unwrap();
    assert_eq!(report.selected, Backend::IoUring, "{report}");
    assert!(
        report
            .pool_fallbacks
            .iter()
            .any(|note| note.contains("fstat (STATX)") && note.contains("pool")),
        "{report}"
    );
    // The other ops still ran on the ring.
    sim::run(&kernel, write_then_read_blocks())
        .unwrap()
        .unwrap();
    assert!(kernel.core().stats().ring_completions > 0);
}

/// Poll every future in one go on each wake, so a burst of ops is pushed
/// to the ring within a single task poll (no submit in between).
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

#[test]
fn a_burst_larger_than_the_kernel_ring_is_flushed_and_retried() {
    if let Err(why) = backend_availability(Backend::IoUring) {
        eprintln!("skipping: io_uring is unavailable here: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burst");
    // Each read is one byte longer than the inline fast path takes, so all
    // of them go to the ring even though the file is in the page cache.
    // (64 KiB is the cap in driver/inline.rs; the metrics check below fails
    // if the cap ever grows past this length.)
    let read_len = 64 * 1024 + 1;
    let data: Vec<u8> = (0..1000u32 + read_len as u32 / 4 + 1)
        .flat_map(|i| i.to_le_bytes())
        .collect();
    std::fs::write(&path, &data).unwrap();
    let rt = Runtime::builder()
        .compute_threads(1)
        .io_threads(1)
        .backend(Backend::IoUring)
        .build()
        .unwrap();
    rt.block_on(async {
        let fd = io::open(&path, OpenFlags::RDONLY, 0).await.unwrap();
        // 1000 reads pushed in one poll: four times the ring's 256 slots.
        let reads: Vec<_> = (0..1000u64)
            .map(|i| io::pread(fd, vec![0u8; read_len], i * 4))
            .collect();
        for (i, BufResult(n, buf)) in join_all(reads).await.into_iter().enumerate() {
            assert_eq!(n.unwrap(), read_len, "read {i}");
            assert_eq!(buf[..4], (i as u32).to_le_bytes(), "read {i}");
        }
        let metrics = iokernel::runtime::current_metrics().expect("metrics are on by default");
        assert_eq!(
            metrics.fast_path_hits, 0,
            "no read was small enough to go inline"
        );
        io::close(fd).await.unwrap();
    });
}

#[test]
fn a_burst_larger_than_the_sim_ring_is_flushed_and_retried() {
    let mut options = stressed_ring(3);
    // Every inline attempt finds the file evicted: the reads go to the ring.
    options.page_cache.evict_probability = 1.0;
    let kernel = sim::new_kernel(options).unwrap();
    let data: Vec<u8> = (0..1000u32).flat_map(|i| i.to_le_bytes()).collect();
    kernel.write_file_durable("/burst", &data).unwrap();
    sim::run(&kernel, async {
        let fd = io::open("/burst", OpenFlags::RDONLY, 0).await.unwrap();
        let reads: Vec<_> = (0..1000u64)
            .map(|i| io::pread(fd, vec![0u8; 4], i * 4))
            .collect();
        for (i, BufResult(n, buf)) in join_all(reads).await.into_iter().enumerate() {
            assert_eq!(n.unwrap(), 4, "read {i}");
            assert_eq!(buf, (i as u32).to_le_bytes(), "read {i}");
        }
        io::close(fd).await.unwrap();
    })
    .unwrap();
    let stats = kernel.core().stats();
    assert!(stats.ring_sq_full > 100, "{stats:?}");
    assert!(stats.ring_cq_overflows > 0, "{stats:?}");
}

#[test]
fn a_run_waiting_on_a_socket_no_one_writes_is_reported_stuck() {
    let mut options = SimOptions::new(4);
    options.driver = SimDriver::Ring;
    let kernel = sim::new_kernel(options).unwrap();
    let result = sim::run(&kernel, async {
        let listener = iokernel::net::TcpListener::bind("127.0.0.1:4100")?;
        let client = iokernel::net::TcpStream::connect(listener.local_addr()?).await?;
        let (_server, _) = listener.accept().await?;
        // Nothing is ever sent: the recv waits on a poll entry forever.
        let BufResult(n, _) = client.read(vec![0u8; 16]).await;
        n
    });
    match result {
        Err(SimError::Stuck { seed, reason }) => {
            assert_eq!(seed, 4);
            assert!(
                reason.contains("deadlock") && reason.contains("poll"),
                "{reason}"
            );
        }
        other => panic!("a run that can never finish must be reported stuck: {other:?}"),
    }
    // The drain at the end cancelled the waiting poll: nothing leaked.
    assert_eq!(kernel.open_fds(), 0);
}
