//! Dropping an op future mid-flight: the kernel never touches freed memory
//! and no fd leaks. On the pool backend the blocking syscall finishes first;
//! only then is the buffer dropped, and a late `open` result is closed. On
//! the simulated io_uring, with completions reordered by the seed, dropped
//! ops are cancelled (in time or too late), their buffers come back only
//! once the ring is done with them, and late `open`/`accept` fds are closed.

use iokernel::buf::{BufResult, IoBuf, IoBufMut};
use iokernel::io::{self, OpenFlags};
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{sleep, spawn, timeout, Backend, Runtime};
use iokernel::sim::{self, SimDriver, SimOptions};
use iokernel::sys::real::RealKernel;
use iokernel::sys::Kernel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/backends.rs"]
mod backends;
use backends::runtimes_on_every_backend;
#[path = "support/sim_ring.rs"]
mod sim_ring;
use sim_ring::on_a_busy_sim_ring;

fn runtime() -> Runtime {
    Runtime::builder()
        .compute_threads(2)
        .io_threads(4)
        .backend(Backend::ThreadPool)
        .build()
        .expect("runtime builds")
}

/// A read buffer that records, when it is dropped, what the kernel wrote
/// into it.
struct WatchedBuf {
    bytes: Vec<u8>,
    filled: usize,
    on_drop: Arc<Mutex<Option<Vec<u8>>>>,
}

impl IoBuf for WatchedBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }
}

impl IoBufMut for WatchedBuf {
    fn writable(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn set_filled(&mut self, filled: usize) {
        self.filled = filled;
    }
}

impl Drop for WatchedBuf {
    fn drop(&mut self) {
        *self.on_drop.lock().unwrap() = Some(self.bytes.clone());
    }
}

#[test]
fn a_dropped_read_of_an_empty_pipe_takes_none_of_the_later_bytes() {
    let rt = runtime();
    let (read_end, write_end) = RealKernel.pipe().expect("pipe");
    let dropped = Arc::new(Mutex::new(None));
    let buf = WatchedBuf {
        bytes: vec![0u8; 8],
        filled: 0,
        on_drop: Arc::clone(&dropped),
    };
    // The pipe is empty and blocking: the read, on a pool thread, waits for
    // it outside the syscall, and the timeout drops its future meanwhile.
    let timed_out = rt.block_on(timeout(Duration::from_millis(30), io::read(read_end, buf)));
    assert!(timed_out.is_err());
    // Bytes written after the drop go to the next read, not to the
    // abandoned one's buffer.
    assert_eq!(RealKernel.write(write_end, b"late"), Ok(4));
    let BufResult(n, got) = rt
        .block_on(timeout(
            Duration::from_secs(10),
            io::read(read_end, vec![0u8; 8]),
        ))
        .expect("the next read got the bytes");
    assert_eq!(&got[..n.unwrap()], b"late");
    // The abandoned read gives up at its next check and returns its
    // buffer untouched.
    rt.block_on(async {
        for _ in 0..500 {
            if dropped.lock().unwrap().is_some() {
                break;
            }
            sleep(Duration::from_millis(2)).await;
        }
    });
    let seen = dropped
        .lock()
        .unwrap()
        .clone()
        .expect("the abandoned read returned its buffer");
    assert_eq!(seen, vec![0u8; 8], "the abandoned read took bytes");
    RealKernel.close(read_end).unwrap();
    RealKernel.close(write_end).unwrap();
}

/// On every backend, with one and with two blocking-I/O threads: reads of
/// a blocking pipe, each first cancelled by a timeout while the pipe is
/// empty, then repeated after bytes arrive, get every byte in order.
#[test]
fn reads_of_a_pipe_cancelled_by_timeouts_lose_no_bytes_on_any_backend() {
    for io_threads in [1, 2] {
        for (backend, rt) in runtimes_on_every_backend(io_threads) {
            let (read_end, write_end) = RealKernel.pipe().expect("pipe");
            let got = rt.block_on(async move {
                let mut got = Vec::new();
                for chunk in [&b"first"[..], b"second", b"third"] {
                    let early =
                        timeout(Duration::from_millis(20), io::read(read_end, vec![0u8; 64]));
                    assert!(early.await.is_err(), "{backend}: the pipe was empty");
                    assert_eq!(RealKernel.write(write_end, chunk), Ok(chunk.len()));
                    let BufResult(n, buf) =
                        timeout(Duration::from_secs(10), io::read(read_end, vec![0u8; 64]))
                            .await
                            .unwrap_or_else(|_| {
                                panic!("{backend}/{io_threads}: {chunk:?} never arrived")
                            });
                    got.extend_from_slice(&buf[..n.unwrap()]);
                }
                got
            });
            assert_eq!(
                got, b"firstsecondthird",
                "{backend}, {io_threads} io threads"
            );
            drop(rt);
            RealKernel.close(read_end).unwrap();
            RealKernel.close(write_end).unwrap();
        }
    }
}

/// Reads at the file position of what else a read may be given: a file
/// (cached, in order, then end of file), character devices (`/dev/zero`,
/// `/dev/urandom`: readable at once, whether or not they take
/// `RWF_NOWAIT`) and a socket, on every backend.
#[test]
fn reads_at_the_position_of_files_devices_and_sockets_get_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    for (backend, rt) in runtimes_on_every_backend(1) {
        let path = path.clone();
        rt.block_on(async move {
            let fd = io::open(&path, OpenFlags::RDONLY, 0).await.unwrap();
            let mut got = Vec::new();
            loop {
                let BufResult(n, buf) = io::read(fd, vec![0u8; 4]).await;
                match n.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, b"0123456789", "{backend}: the file in order");
            io::close(fd).await.unwrap();
            for device in ["/dev/zero", "/dev/urandom"] {
                let fd = io::open(device, OpenFlags::RDONLY, 0).await.unwrap();
                let BufResult(n, _) = io::read(fd, vec![0u8; 4096]).await;
                assert_eq!(n.unwrap(), 4096, "{backend}: {device}");
                io::close(fd).await.unwrap();
            }
            let (a, b) = iokernel::net::UnixStream::pair().unwrap();
            a.write_all(b"over a socket".to_vec()).await.0.unwrap();
            let BufResult(n, buf) = io::read(b.as_raw_fd(), vec![0u8; 64]).await;
            assert_eq!(&buf[..n.unwrap()], b"over a socket", "{backend}: socket");
        });
    }
}

const PIPE_CHUNKS: usize = 24;

/// A simulated pipe under faults: a writer task writes numbered chunks at
/// seed-chosen times, the reader's reads (plain and vectored, at the file
/// position) are dropped at seed-chosen deadlines. The reader must get
/// every byte once and in order. Returns how many reads timed out.
fn check_pipe_cancellation_seed(seed: u64, driver: SimDriver) -> usize {
    let mut options = cancellation_options(seed);
    options.driver = driver;
    let kernel = sim::new_kernel(options).unwrap();
    let (read_end, write_end) = kernel.pipe().unwrap();
    let written: Vec<u8> = (0..PIPE_CHUNKS)
        .flat_map(|seq| vec![seq as u8; 1 + seq * 5])
        .collect();
    let expected = written.clone();
    let (got, timeouts) = sim::run(&kernel, async move {
        let writer = spawn(async move {
            for seq in 0..PIPE_CHUNKS {
                sleep(cancel_deadline(seed, seq + 100)).await;
                let mut chunk = vec![seq as u8; 1 + seq * 5];
                while !chunk.is_empty() {
                    let BufResult(n, back) = io::write(write_end, chunk).await;
                    chunk = back[n.unwrap()..].to_vec();
                }
            }
            io::close(write_end).await.unwrap();
        });
        let (mut got, mut timeouts) = (Vec::new(), 0);
        for round in 0.. {
            let deadline = cancel_deadline(seed, round);
            let read = if round % 2 == 0 {
                timeout(deadline, io::read(read_end, vec![0u8; 48]))
                    .await
                    .map(|BufResult(n, buf)| buf[..n.unwrap()].to_vec())
            } else {
                timeout(
                    deadline,
                    io::readv(read_end, vec![vec![0u8; 7], vec![0u8; 41]]),
                )
                .await
                .map(|BufResult(n, bufs)| {
                    let n = n.unwrap();
                    bufs.concat()[..n].to_vec()
                })
            };
            match read {
                Err(_) => timeouts += 1,
                Ok(bytes) if bytes.is_empty() => break, // end of stream
                Ok(bytes) => got.extend_from_slice(&bytes),
            }
        }
        writer.await.unwrap();
        (got, timeouts)
    })
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(
        got.len(),
        expected.len(),
        "seed {seed} ({driver:?}): bytes lost"
    );
    assert_eq!(
        got, expected,
        "seed {seed} ({driver:?}): bytes out of order"
    );
    timeouts
}

#[test]
fn dropped_reads_of_a_sim_pipe_lose_nothing_on_the_ring_pool_and_poller() {
    for driver in [SimDriver::Ring, SimDriver::Pool, SimDriver::EpollSemantics] {
        let kept_before = io::kept_after_cancel();
        let timeouts: usize = (0..60)
            .map(|seed| check_pipe_cancellation_seed(seed, driver))
            .sum();
        let kept = io::kept_after_cancel() - kept_before;
        eprintln!("{driver:?}: {timeouts} reads timed out, {kept} late results kept");
        assert!(timeouts > 0, "{driver:?}: nothing was cancelled");
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

#[test]
fn abandoned_opens_close_their_fds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"x").unwrap();
    let rt = runtime();
    let before = open_fds();
    rt.block_on(async {
        for _ in 0..200 {
            // Poll once (submitting the open to the pool), then drop it.
            let open = io::open(&path, OpenFlags::RDONLY, 0);
            // Usually the timeout wins; when the open is faster, close it.
            if let Ok(Ok(fd)) = timeout(Duration::ZERO, open).await {
                io::close(fd).await.unwrap();
            }
        }
    });
    // Dropping the runtime joins the pool after every accepted job ran, so
    // every abandoned open has finished (and been discarded) by now.
    drop(rt);
    assert_eq!(open_fds(), before, "an abandoned open leaked its fd");
}

#[test]
fn aborting_tasks_with_ops_in_flight_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![5u8; 1 << 20]).unwrap();
    let rt = runtime();
    let before = open_fds();
    let fd = io::open(&path, OpenFlags::RDONLY, 0).wait().unwrap();
    let handles: Vec<_> = (0..64u64)
        .map(|i| {
            rt.spawn(async move {
                loop {
                    let (n, buf) = io::pread(fd, vec![0u8; 4096], (i * 4096) % (1 << 20))
                        .await
                        .into_parts();
                    assert_eq!(n.unwrap(), 4096);
                    assert!(buf.iter().all(|&b| b == 5));
                }
            })
        })
        .collect();
    rt.block_on(sleep(Duration::from_millis(20)));
    for h in &handles {
        h.abort();
    }
    for h in handles {
        assert!(rt.block_on(h).is_err());
    }
    // The runtime still works after the aborts.
    let (n, _) = rt.block_on(io::pread(fd, vec![0u8; 16], 0)).into_parts();
    assert_eq!(n.unwrap(), 16);
    io::close(fd).wait().unwrap();
    drop(rt);
    assert_eq!(open_fds(), before);
}

/// What a watched buffer held when it was dropped (`None`: not dropped yet).
type DroppedBytes = Arc<Mutex<Option<Vec<u8>>>>;

/// What one simulated cancellation run saw.
#[derive(Default)]
struct CancelRecord {
    /// (offset, what the read buffer held when it was dropped).
    reads: Vec<(usize, DroppedBytes)>,
    /// (offset, the write completed and reported all its bytes).
    writes: Vec<(usize, bool)>,
}

const CANCEL_FILE_BYTES: usize = 4096;
const CANCEL_BLOCK_BYTES: usize = 256;

fn cancel_data() -> Vec<u8> {
    (0..CANCEL_FILE_BYTES)
        .map(|i| (i % 251) as u8 + 1)
        .collect()
}

fn cancel_pattern(task: usize) -> Vec<u8> {
    vec![0xA0 | task as u8; CANCEL_BLOCK_BYTES]
}

/// A deadline for task `task` of `seed`'s run, 0..40 µs of virtual time:
/// some ops are dropped before submission, some in flight, some finish.
fn cancel_deadline(seed: u64, task: usize) -> Duration {
    let mixed = seed.wrapping_mul(7919) ^ (task as u64).wrapping_mul(104_729);
    Duration::from_micros(mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

fn cancellation_options(seed: u64) -> SimOptions {
    let mut options = on_a_busy_sim_ring(SimOptions::new(seed), Duration::from_micros(15));
    options.reorder_completions = true;
    options
}

/// Reads, writes, opens and accepts (with connecting peers), each dropped
/// at a seed-chosen deadline.
async fn drop_ops_at_deadlines(seed: u64, record: Arc<Mutex<CancelRecord>>) {
    let listener = TcpListener::bind("127.0.0.1:4000").unwrap();
    let (listen_fd, addr) = (listener.as_raw_fd(), listener.local_addr().unwrap());
    let fd = io::open("/data", OpenFlags::RDWR, 0).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..16usize {
        let deadline = cancel_deadline(seed, task);
        let record = Arc::clone(&record);
        tasks.push(spawn(async move {
            match task % 4 {
                0 => {
                    let offset = task * CANCEL_BLOCK_BYTES;
                    let on_drop = Arc::new(Mutex::new(None));
                    record
                        .lock()
                        .unwrap()
                        .reads
                        .push((offset, Arc::clone(&on_drop)));
                    let buf = WatchedBuf {
                        bytes: vec![0u8; CANCEL_BLOCK_BYTES],
                        filled: 0,
                        on_drop,
                    };
                    if let Ok(BufResult(n, _)) =
                        timeout(deadline, io::pread(fd, buf, offset as u64)).await
                    {
                        assert_eq!(n.unwrap(), CANCEL_BLOCK_BYTES);
                    }
                }
                1 => {
                    let offset = CANCEL_FILE_BYTES + task * CANCEL_BLOCK_BYTES;
                    let write = io::pwrite(fd, cancel_pattern(task), offset as u64);
                    let done = match timeout(deadline, write).await {
                        Ok(BufResult(n, _)) => n.unwrap() == CANCEL_BLOCK_BYTES,
                        Err(_) => false,
                    };
                    record.lock().unwrap().writes.push((offset, done));
                }
                2 => {
                    let open = io::open("/data", OpenFlags::RDONLY, 0);
                    if let Ok(opened) = timeout(deadline, open).await {
                        io::close(opened.unwrap()).await.unwrap();
                    }
                }
                _ => {
                    let peer = spawn(async move {
                        if let Ok(stream) = TcpStream::connect(addr).await {
                            drop(stream);
                        }
                    });
                    if let Ok(accepted) = timeout(deadline, io::accept(listen_fd)).await {
                        io::close(accepted.unwrap().0).await.unwrap();
                    }
                    peer.await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    io::close(fd).await.unwrap();
    drop(listener);
}

fn check_cancellation_seed(seed: u64) {
    let kernel = sim::new_kernel(cancellation_options(seed)).unwrap();
    let data = cancel_data();
    kernel.write_file_durable("/data", &data).unwrap();
    let baseline = kernel.open_fds();
    let record = Arc::new(Mutex::new(CancelRecord::default()));
    sim::run(&kernel, drop_ops_at_deadlines(seed, Arc::clone(&record)))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(
        kernel.open_fds(),
        baseline,
        "seed {seed}: a late open or accept leaked its fd"
    );
    let record = record.lock().unwrap();
    for (offset, on_drop) in &record.reads {
        let seen =
            on_drop.lock().unwrap().clone().unwrap_or_else(|| {
                panic!("seed {seed}: the read buffer at {offset} never came back")
            });
        let want = &data[*offset..offset + CANCEL_BLOCK_BYTES];
        assert!(
            seen == want || seen.iter().all(|&b| b == 0),
            "seed {seed}: the read buffer at {offset} holds neither the file's bytes nor \
             its initial zeros"
        );
    }
    let file = kernel.read_file("/data").expect("the data file");
    assert_eq!(&file[..CANCEL_FILE_BYTES], &data[..], "seed {seed}");
    for &(offset, done) in &record.writes {
        let task = (offset - CANCEL_FILE_BYTES) / CANCEL_BLOCK_BYTES;
        let end = (offset + CANCEL_BLOCK_BYTES).min(file.len());
        let region = file.get(offset..end).unwrap_or(&[]);
        if done {
            assert_eq!(
                region,
                &cancel_pattern(task)[..],
                "seed {seed}: a completed write"
            );
        } else {
            assert!(
                region == &cancel_pattern(task)[..region.len()] || region.iter().all(|&b| b == 0),
                "seed {seed}: a dropped write left bytes it never wrote"
            );
        }
    }
}

#[test]
fn dropped_ops_on_the_sim_ring_under_reordering_lose_nothing() {
    let mut cancels = 0;
    for seed in 0..200 {
        check_cancellation_seed(seed);
        cancels += 1;
    }
    assert_eq!(cancels, 200);
}

/// Datagrams per seed of the datagram cancellation run.
const CANCEL_DATAGRAMS: usize = 24;

/// A Unix datagram pair and a UDP pair on the simulated ring under
/// reordering: a sender task sends numbered datagrams (every third over
/// Unix with a file's fd), the receiver's `recv_msg`/`recv_from` are dropped
/// at seed-chosen deadlines. Every datagram must arrive once, whole and in
/// order, each passed fd with its own datagram, and no fd may leak.
fn check_datagram_cancellation_seed(seed: u64) {
    use iokernel::net::{UdpSocket, UnixDatagram};
    let kernel = sim::new_kernel(cancellation_options(seed)).unwrap();
    kernel
        .write_file_durable("/passed", b"passed file")
        .unwrap();
    let baseline = kernel.open_fds();
    let (udp_timeouts, unix_timeouts) = sim::run(&kernel, async move {
        let (unix_tx, unix_rx) = UnixDatagram::pair().unwrap();
        let udp_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = udp_rx.local_addr().unwrap();
        let sender = spawn(async move {
            for seq in 0..CANCEL_DATAGRAMS {
                let bytes = vec![seq as u8; 1 + seq * 7];
                sleep(cancel_deadline(seed, seq + 100)).await;
                let fd = io::open("/passed", OpenFlags::RDONLY, 0).await.unwrap();
                let fds = if seq % 3 == 0 { vec![fd] } else { Vec::new() };
                unix_tx.send_msg(bytes.clone(), &fds).await.0.unwrap();
                io::close(fd).await.unwrap();
                udp_tx.send_to(bytes, to).await.0.unwrap();
            }
        });
        let (mut udp_timeouts, mut unix_timeouts) = (0, 0);
        let (mut next_unix, mut next_udp) = (0, 0);
        let mut round = 0;
        while next_unix < CANCEL_DATAGRAMS || next_udp < CANCEL_DATAGRAMS {
            round += 1;
            let deadline = cancel_deadline(seed, round);
            if next_unix < CANCEL_DATAGRAMS {
                match timeout(deadline, unix_rx.recv_msg(vec![0u8; 256], 2)).await {
                    Err(_) => unix_timeouts += 1,
                    Ok(BufResult(msg, buf)) => {
                        let msg = msg.unwrap();
                        let seq = next_unix;
                        assert_eq!(&buf[..msg.bytes], &vec![seq as u8; 1 + seq * 7][..]);
                        assert!(!msg.truncated);
                        assert_eq!(msg.fds.len(), usize::from(seq % 3 == 0), "seq {seq}");
                        for passed in &msg.fds {
                            let BufResult(n, got) =
                                io::pread(passed.as_raw_fd(), vec![0u8; 32], 0).await;
                            assert_eq!(&got[..n.unwrap()], b"passed file");
                        }
                        next_unix += 1;
                    }
                }
            }
            if next_udp < CANCEL_DATAGRAMS {
                match timeout(deadline, udp_rx.recv_from(vec![0u8; 256])).await {
                    Err(_) => udp_timeouts += 1,
                    Ok(BufResult(got, buf)) => {
                        let (n, _) = got.unwrap();
                        let seq = next_udp;
                        assert_eq!(&buf[..n], &vec![seq as u8; 1 + seq * 7][..]);
                        next_udp += 1;
                    }
                }
            }
        }
        sender.await.unwrap();
        (udp_timeouts, unix_timeouts)
    })
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(
        udp_timeouts + unix_timeouts > 0,
        "seed {seed}: nothing was cancelled"
    );
    assert_eq!(
        kernel.open_fds(),
        baseline,
        "seed {seed}: a socket or a passed fd leaked"
    );
}

#[test]
fn dropped_datagram_receives_on_the_sim_ring_lose_nothing() {
    let kept_before = io::kept_after_cancel();
    for seed in 0..100 {
        check_datagram_cancellation_seed(seed);
    }
    let kept = io::kept_after_cancel() - kept_before;
    eprintln!("{kept} datagrams received by cancelled ops were kept for the next receive");
    assert!(kept > 0, "no cancelled receive ever raced its datagram");
}

/// An op future polled once inside a simulated run and returned out of it
/// (still pending when the run ends and its ring closes): its output, or
/// the op itself.
enum Held<F: std::future::Future> {
    Done(F::Output),
    Pending(F),
}

/// Poll `op` once, keeping what it gave.
async fn poll_once<F: std::future::Future + Unpin>(mut op: F) -> Held<F> {
    let polled = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(std::pin::Pin::new(&mut op), cx))
    })
    .await;
    match polled {
        std::task::Poll::Ready(output) => Held::Done(output),
        std::task::Poll::Pending => Held::Pending(op),
    }
}

/// Its output: at once when it had one, else from one poll now.
fn output_of<F: std::future::Future + Unpin>(held: Held<F>, seed: u64) -> F::Output {
    match held {
        Held::Done(output) => output,
        Held::Pending(mut op) => {
            let waker = std::task::Waker::from(Arc::new(IgnoreWake));
            let mut cx = std::task::Context::from_waker(&waker);
            match std::future::Future::poll(std::pin::Pin::new(&mut op), &mut cx) {
                std::task::Poll::Ready(output) => output,
                std::task::Poll::Pending => {
                    panic!("seed {seed}: an op's result went with its ring")
                }
            }
        }
    }
}

/// Ops polled once inside a simulated run and returned out of it get
/// their results after the run's ring has closed, under reordered
/// completions and a small, often busy ring: reads that finished before
/// the end hold the file's bytes (left for their futures in the ring's
/// mailbox as the run's loop left, or as the ring closed), ops still in flight were brought back by the ring's drain (done
/// or `ECANCELED`), and an `open` dropped unpolled afterwards closes its
/// late fd.
#[test]
fn ops_that_outlive_their_sim_run_get_their_results() {
    // Reads whose bytes came after their run's ring had closed, over all seeds.
    let mut read_after_close = 0;
    for seed in 0..100 {
        let kernel = sim::new_kernel(cancellation_options(seed)).unwrap();
        let data = cancel_data();
        kernel.write_file_durable("/data", &data).unwrap();
        let baseline = kernel.open_fds();
        let (fd, reads, opens) = sim::run(&kernel, async {
            let fd = io::open("/data", OpenFlags::RDONLY, 0).await.unwrap();
            // Not cached: the reads go to the ring, not the inline path.
            let whole = CANCEL_FILE_BYTES as u64;
            io::fadvise(fd, 0, whole, io::Advice::DontNeed)
                .await
                .unwrap();
            let mut reads = Vec::new();
            for block in 0..CANCEL_FILE_BYTES / CANCEL_BLOCK_BYTES {
                let offset = (block * CANCEL_BLOCK_BYTES) as u64;
                let read = io::pread(fd, vec![0u8; CANCEL_BLOCK_BYTES], offset);
                reads.push((block, poll_once(read).await));
            }
            // The ring runs meanwhile: most reads finish in their slots and
            // wait there for futures that will be polled only after the run.
            sleep(Duration::from_millis(1)).await;
            // These are still with the ring when the run ends.
            let mut opens = Vec::new();
            for _ in 0..4 {
                opens.push(poll_once(io::open("/data", OpenFlags::RDONLY, 0)).await);
            }
            (fd, reads, opens)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for (block, held) in reads {
            let pending = matches!(held, Held::Pending(_));
            let BufResult(n, buf) = output_of(held, seed);
            match n {
                Ok(n) => {
                    let want = &data[block * CANCEL_BLOCK_BYTES..(block + 1) * CANCEL_BLOCK_BYTES];
                    assert_eq!(n, CANCEL_BLOCK_BYTES, "seed {seed}: block {block}");
                    assert_eq!(&buf[..], want, "seed {seed}: block {block}");
                    read_after_close += usize::from(pending);
                }
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "seed {seed}: {e}");
                }
            }
        }
        let mut kept = Vec::new();
        for (i, held) in opens.into_iter().enumerate() {
            match (i % 2, held) {
                // Taken: a later close through the kernel.
                (0, held) => {
                    if let Ok(opened) = output_of(held, seed) {
                        kept.push(opened);
                    }
                }
                // An fd it already gave is closed here like the others.
                (_, Held::Done(Ok(opened))) => kept.push(opened),
                // Dropped unpolled: its late fd is closed.
                (_, held) => drop(held),
            }
        }
        for opened in kept {
            kernel.close(opened).unwrap();
        }
        kernel.close(fd).unwrap();
        assert_eq!(kernel.open_fds(), baseline, "seed {seed}: an fd leaked");
    }
    assert!(
        read_after_close > 0,
        "no read's result outlived its ring: the scenario tests nothing"
    );
}

/// A waker for a single poll whose wake nobody needs.
struct IgnoreWake;

impl std::task::Wake for IgnoreWake {
    fn wake(self: Arc<Self>) {}
}

/// A recv, an accept and a read of a pipe polled once in one simulated
/// run, still waiting for their peer when it ends, and awaited in the
/// next run on the same machine get what the peer sends then, under reordered completions and
/// a small, often busy ring: the first run's ring gives them back
/// unstarted as its loop leaves (rather than waiting for a peer that does
/// not come, then cancelling them) and the second run submits them again.
/// Bytes sent before the first run ended come first and whole.
#[test]
fn ops_waiting_on_a_peer_as_their_sim_run_ends_resume_in_the_next() {
    // Seeds whose recv was still waiting when its first run ended.
    let mut resumed = 0;
    for seed in 0..60 {
        let kernel = sim::new_kernel(cancellation_options(seed)).unwrap();
        let early: &[u8] = if seed % 3 == 0 { b"early-" } else { b"" };
        let (read_end, write_end) = kernel.pipe().unwrap();
        let (listen_fd, addr, client_fd, server_fd, recv, accept, read) =
            sim::run(&kernel, async move {
                let listener = TcpListener::bind("127.0.0.1:4100").unwrap();
                let addr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                let (client_fd, server_fd) = (client.into_raw_fd(), server.into_raw_fd());
                let mut sent = early;
                while !sent.is_empty() {
                    let BufResult(n, _) = io::send(client_fd, sent.to_vec()).await;
                    sent = &sent[n.unwrap()..];
                }
                let recv = poll_once(io::recv(server_fd, vec![0u8; 64])).await;
                let listen_fd = listener.into_raw_fd();
                let accept = poll_once(io::accept(listen_fd)).await;
                let read = poll_once(io::read(read_end, vec![0u8; 16])).await;
                (listen_fd, addr, client_fd, server_fd, recv, accept, read)
            })
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        resumed += usize::from(matches!(recv, Held::Pending(_)));
        let (got, second_fd, accepted_fd) = sim::run(&kernel, async move {
            let BufResult(n, _) = io::send(client_fd, b"late".to_vec()).await;
            assert_eq!(n.unwrap(), 4, "seed {seed}");
            let BufResult(n, buf) = match recv {
                Held::Done(output) => output,
                Held::Pending(op) => op.await,
            };
            let mut got = buf[..n.unwrap_or_else(|e| panic!("seed {seed}: {e}"))].to_vec();
            while got.len() < early.len() + 4 {
                let BufResult(n, buf) = io::recv(server_fd, vec![0u8; 64]).await;
                let n = n.unwrap();
                assert!(n > 0, "seed {seed}: end of stream after {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            let second = TcpStream::connect(addr).await.unwrap();
            let accepted = match accept {
                Held::Done(output) => output,
                Held::Pending(op) => op.await,
            };
            let (accepted_fd, _) = accepted.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let BufResult(n, _) = io::write(write_end, b"piped".to_vec()).await;
            assert_eq!(n.unwrap(), 5, "seed {seed}");
            let BufResult(n, buf) = match read {
                Held::Done(output) => output,
                Held::Pending(op) => op.await,
            };
            let piped = buf[..n.unwrap_or_else(|e| panic!("seed {seed}: {e}"))].to_vec();
            assert_eq!(piped, b"piped", "seed {seed}: the pipe's bytes");
            (got, second.into_raw_fd(), accepted_fd)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(got, [early, b"late"].concat(), "seed {seed}");
        for fd in [
            listen_fd,
            client_fd,
            server_fd,
            second_fd,
            accepted_fd,
            read_end,
            write_end,
        ] {
            kernel.close(fd).unwrap();
        }
    }
    eprintln!("{resumed} of 60 recvs were still waiting when their run ended");
    assert!(resumed > 0, "no recv was waiting when its run ended");
}
