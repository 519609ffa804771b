//! The conformance suite: every public op, success and error paths, on
//! every executor.
//!
//! Each test body (in `body.rs`) is an `async fn(PathBuf) -> io::Result<()>`
//! over a fresh scratch directory. [`on_every_executor`] runs the same body
//! on a [`Runtime`] for each concrete backend this build can run (printing
//! why it skips the others), then once more through [`block_on_here`] with
//! no runtime at all (the sync fallback, where every op is a blocking
//! syscall completing on its first poll), then on the simulated kernel,
//! faults off, under every simulated driver ([`SIM_DRIVERS`]: pool, ring,
//! epoll semantics, kqueue semantics), where results and errnos must match
//! the real kernel's.
//!
//! Bodies that need two parties at once (a server and a client) start the
//! second one with [`spawn_peer`]: a runtime task inside a runtime, a helper
//! thread in the sync fallback. Bodies that can run both parties in turn on
//! one thread do so (a connect completes through the listen backlog before
//! the accept).
//!
//! Errors are checked by exact errno (`raw_os_error`). Ops on a closed fd
//! number rely on nextest running each test in its own process, where
//! nothing else opens fds while a body runs; under plain `cargo test` that
//! half is skipped (with a message) so it can never hit another test's fd.

use iokernel::buf::{AlignedBuf, BufResult, IoBuf, Slice, SliceMut};
use iokernel::io::{self, FileType, MsgFlags, OpenFlags, Whence};
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{
    backend_availability, block_on_here, current_backend_report, in_runtime, Backend, Runtime,
};
use iokernel::sim::{self, SimDriver, SimOptions};
use iokernel::sys::real::thread::spawn_named;
use iokernel::sys::{Errno, Kernel, Shutdown};
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// The concrete backends this build can run here, saying why it skips
/// the others.
fn available_backends() -> impl Iterator<Item = Backend> {
    Backend::CONCRETE
        .into_iter()
        .filter(|&backend| match backend_availability(backend) {
            Ok(_) => true,
            Err(reason) => {
                eprintln!("skipping {backend}: {reason}");
                false
            }
        })
}

/// A runtime forced onto `backend`, named `{what}-{backend}`, with two
/// compute and two I/O threads.
fn runtime_on(backend: Backend, what: &str) -> Runtime {
    Runtime::builder()
        .name(format!("{what}-{backend}"))
        .compute_threads(2)
        .io_threads(2)
        .backend(backend)
        .build()
        .unwrap_or_else(|e| panic!("runtime on {backend} should build: {e}"))
}

/// Run `body` on a runtime per available concrete backend, then on the sync
/// fallback (no runtime). Each run gets its own scratch directory.
fn on_every_executor<F, Fut>(body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    for backend in available_backends() {
        let rt = runtime_on(backend, "ops");
        assert_eq!(rt.backend_report().selected, backend, "forced backend");
        let dir = scratch_dir();
        eprintln!("running on {backend}");
        rt.block_on(body(dir.path().to_path_buf()))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
    }
    assert!(!in_runtime(), "the test thread runs no runtime");
    let dir = scratch_dir();
    eprintln!("running on the sync fallback (no runtime)");
    block_on_here(body(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("on the sync fallback: {e}"));
    // Parity: the same body on the simulated kernel under each sim driver,
    // faults off, must see the same results and errnos as on the real one.
    for driver in SIM_DRIVERS {
        on_the_sim(&body, driver);
    }
}

/// Run `body` on the simulated kernel (faults off) with `driver`.
fn on_the_sim<F, Fut>(body: &F, driver: SimDriver)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    eprintln!(
        "running on the simulated kernel, {} driver (faults off)",
        driver.name()
    );
    let mut options = SimOptions::new(1);
    options.driver = driver;
    let kernel = sim::new_kernel(options).expect("sim options");
    kernel
        .mkdir(c"/scratch", 0o755)
        .expect("sim scratch directory");
    let future = body(PathBuf::from("/scratch"));
    let report = sim::run(&kernel, async move {
        future.await?;
        Ok::<_, std::io::Error>(current_backend_report().expect("a simulated runtime"))
    })
    .unwrap_or_else(|e| panic!("the simulated run ({driver:?}) failed: {e}"))
    .unwrap_or_else(|e| panic!("on the simulated kernel ({driver:?}): {e}"));
    if driver == SimDriver::Ring {
        assert_eq!(report.selected, Backend::IoUring, "{report}");
    }
}

/// The drivers every body also runs on under the simulated kernel.
const SIM_DRIVERS: [SimDriver; 4] = [
    SimDriver::Pool,
    SimDriver::Ring,
    SimDriver::EpollSemantics,
    SimDriver::KqueueSemantics,
];

fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("scratch directory")
}

/// One `#[test]` per body, each running it on every executor.
macro_rules! on_every_executor {
    ($module:ident: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                on_every_executor($module::$name);
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        on_every_executor!(body: $($name),*);
    };
}

on_every_executor!(
    open_missing_file_is_enoent,
    open_create_excl_on_existing_file_is_eexist,
    open_bad_paths_and_modes_fail_with_their_errno,
    read_on_a_directory_fd_is_eisdir,
    ops_on_a_closed_fd_are_ebadf,
    ops_against_the_fd_access_mode_fail,
    write_and_read_move_the_file_offset,
    pread_and_pwrite_leave_the_file_offset,
    lseek_set_current_end,
    short_read_at_eof,
    readv_and_writev_span_three_buffers,
    preadv_and_pwritev_span_three_buffers,
    boxed_static_string_and_slice_buffers,
    aligned_buf_with_and_without_o_direct,
    fsync_and_fdatasync,
    ftruncate_grows_and_shrinks,
    fallocate_grows_the_file,
    fstat_reports_size_type_and_permissions,
    rename_moves_the_name,
    unlink_removes_the_name,
    mkdir_creates_a_directory_once,
    sendfile_file_to_file,
    sendfile_file_to_socket_in_turns,
    sendfile_file_to_socket_with_a_concurrent_reader,
    accept_send_recv_ping_pong_in_turns,
    accept_send_recv_ping_pong_concurrently,
    recv_returns_zero_after_the_peer_shuts_down,
    send_to_a_closed_peer_fails_with_epipe_or_econnreset,
    connect_without_a_listener_is_econnrefused,
    bind_to_a_port_in_use_is_eaddrinuse,
    recv_cancelled_by_a_timeout_loses_no_bytes,
    accept_cancelled_by_a_timeout_loses_no_connection,
    a_duration_max_sleep_or_timeout_waits_without_overflow,
    plain_read_and_write_on_a_socket_wait_for_it,
    positional_ops_on_a_stream_move_the_stream,
);

on_every_executor!(
    nowait:
    cached_and_dropped_pages_read_the_same,
    a_partly_cached_range_reads_whole,
    writes_to_cached_and_dropped_pages_land,
);

on_every_executor!(
    sockets:
    udp_send_to_and_recv_from_keep_datagram_boundaries,
    connected_udp_sends_and_receives_from_its_peer,
    a_datagram_larger_than_the_buffer_is_reported,
    unix_stream_echo_through_a_listener,
    unix_datagram_pair_and_bound_sockets,
    sendmsg_passes_a_file_fd_with_scm_rights,
    shutdown_write_gives_the_peer_end_of_stream,
    recv_on_a_closed_peer,
    unix_bind_to_a_path_in_use_is_eaddrinuse_naming_it,
    a_unix_path_longer_than_sun_path_is_refused_naming_it,
    a_unix_path_that_cannot_be_an_address_says_why,
    recv_from_and_recvmsg_cancelled_mid_flight_keep_the_datagram,
    tcp_echo_keeps_flowing_through_short_reads_and_sends,
    a_reused_fd_number_is_waited_on_afresh,
    ipv6_tcp_and_udp_report_their_addresses,
);

/// A second party for a body: a task inside a runtime, a thread (running
/// the future with `block_on_here`) in the sync fallback.
enum Peer<T> {
    Task(iokernel::runtime::JoinHandle<T>),
    Thread(std::thread::JoinHandle<()>, mpsc::Receiver<T>),
}

fn spawn_peer<F>(name: &str, future: F) -> Peer<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if in_runtime() {
        return Peer::Task(iokernel::runtime::spawn(future));
    }
    let (tx, rx) = mpsc::channel();
    let thread = spawn_named(format!("ops-peer-{name}"), move || {
        let _ = tx.send(block_on_here(future));
    })
    .expect("peer thread starts");
    Peer::Thread(thread, rx)
}

impl<T> Peer<T> {
    async fn join(self) -> T {
        match self {
            Peer::Task(handle) => handle.await.unwrap_or_else(|e| panic!("peer task: {e}")),
            Peer::Thread(thread, rx) => {
                if let Err(panic) = thread.join() {
                    std::panic::resume_unwind(panic);
                }
                rx.recv().expect("the peer thread sends its result")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers (all built from the public ops)
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_errno<T: Debug>(result: std::io::Result<T>, errno: i32, what: &str) {
    match result {
        Err(e) if e.raw_os_error() == Some(errno) => {}
        other => panic!("{what}: expected {:?}, got {other:?}", Errno(errno)),
    }
}

/// `len` bytes of a repeatable non-trivial pattern.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + usize::from(seed)) % 251) as u8)
        .collect()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

const RW_CREATE: OpenFlags = OpenFlags(OpenFlags::RDWR.0 | OpenFlags::CREAT.0 | OpenFlags::TRUNC.0);

/// Create (truncate) `path` for reading and writing, holding `contents`.
async fn create_file(path: &Path, contents: &[u8]) -> std::io::Result<RawFd> {
    let fd = io::open(path, RW_CREATE, 0o644).await?;
    pwrite_all(fd, contents.to_vec(), 0).await?;
    Ok(fd)
}

async fn pwrite_all(fd: RawFd, data: Vec<u8>, offset: u64) -> std::io::Result<()> {
    let mut slice = Slice::new(data, 0);
    while !slice.as_bytes().is_empty() {
        let at = offset + slice.start() as u64;
        let BufResult(n, back) = io::pwrite(fd, slice, at).await;
        let n = n?;
        if n == 0 {
            let msg = format!("pwrite on fd {fd} at {at} wrote 0 bytes");
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, msg));
        }
        let start = back.start();
        slice = Slice::new(back.into_inner(), start + n);
    }
    Ok(())
}

async fn pread_exact(fd: RawFd, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut have = 0;
    while have < len {
        let at = offset + have as u64;
        let BufResult(n, back) = io::pread(fd, SliceMut::new(buf, have, len), at).await;
        buf = back.into_inner();
        match n? {
            0 => {
                let msg = format!("fd {fd} ended at {at}, wanted {len} bytes from {offset}");
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg));
            }
            n => have += n,
        }
    }
    Ok(buf)
}

/// The whole content of `path`.
async fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let fd = io::open(path, OpenFlags::RDONLY, 0).await?;
    let size = io::fstat(fd).await?.size_bytes as usize;
    let data = pread_exact(fd, size, 0).await?;
    io::close(fd).await?;
    Ok(data)
}

async fn send_all(fd: RawFd, data: Vec<u8>) -> std::io::Result<()> {
    let mut slice = Slice::new(data, 0);
    while !slice.as_bytes().is_empty() {
        let BufResult(n, back) = io::send(fd, slice).await;
        let n = n?;
        assert!(n > 0, "send on fd {fd} sent 0 bytes");
        let start = back.start();
        slice = Slice::new(back.into_inner(), start + n);
    }
    Ok(())
}

async fn recv_exact(fd: RawFd, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut have = 0;
    while have < len {
        let BufResult(n, back) = io::recv(fd, SliceMut::new(buf, have, len)).await;
        buf = back.into_inner();
        match n? {
            0 => {
                let msg = format!("fd {fd}: peer closed after {have} of {len} bytes");
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg));
            }
            n => have += n,
        }
    }
    Ok(buf)
}

/// A connected pair over loopback: the client stream and the accepted
/// server fd (the connect completes through the backlog, then the accept).
async fn loopback_pair() -> std::io::Result<(TcpListener, TcpStream, RawFd)> {
    let listener = TcpListener::bind(loopback())?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server_fd, peer) = io::accept(listener.as_raw_fd()).await?;
    assert_eq!(peer, client.local_addr()?, "accept reports the client");
    Ok((listener, client, server_fd))
}

/// Every op that takes an fd fails with `EBADF` on `fd`.
async fn assert_every_fd_op_is_ebadf(fd: RawFd, which: &str) {
    let ebadf = libc::EBADF;
    let what = |op: &str| format!("{op} on {which} (fd {fd})");
    assert_errno(io::read(fd, vec![0u8; 4]).await.0, ebadf, &what("read"));
    assert_errno(io::write(fd, b"abc").await.0, ebadf, &what("write"));
    assert_errno(
        io::pread(fd, vec![0u8; 4], 0).await.0,
        ebadf,
        &what("pread"),
    );
    assert_errno(io::pwrite(fd, b"abc", 0).await.0, ebadf, &what("pwrite"));
    assert_errno(
        io::readv(fd, vec![vec![0u8; 4]]).await.0,
        ebadf,
        &what("readv"),
    );
    assert_errno(io::writev(fd, vec![b"ab"]).await.0, ebadf, &what("writev"));
    let preadv = io::preadv(fd, vec![vec![0u8; 4]], 0).await.0;
    assert_errno(preadv, ebadf, &what("preadv"));
    let pwritev = io::pwritev(fd, vec![b"ab"], 0).await.0;
    assert_errno(pwritev, ebadf, &what("pwritev"));
    assert_errno(io::fsync(fd).await, ebadf, &what("fsync"));
    assert_errno(io::fdatasync(fd).await, ebadf, &what("fdatasync"));
    assert_errno(io::ftruncate(fd, 0).await, ebadf, &what("ftruncate"));
    assert_errno(
        io::fallocate(fd, 0, 0, 4096).await,
        ebadf,
        &what("fallocate"),
    );
    assert_errno(io::fstat(fd).await, ebadf, &what("fstat"));
    assert_errno(
        io::lseek(fd, 0, Whence::Current).await,
        ebadf,
        &what("lseek"),
    );
    assert_errno(io::close(fd).await, ebadf, &what("close"));
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Poll `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    Pin::new(future).poll(&mut cx)
}

// ---------------------------------------------------------------------------
// Bodies (body.rs)
// ---------------------------------------------------------------------------

#[path = "../support/bytes.rs"]
mod bytes;
use bytes::assert_same_bytes;
mod body;
mod nowait;
mod sockets;

// ---------------------------------------------------------------------------
// Sync-only: ops without any runtime
// ---------------------------------------------------------------------------

#[test]
fn op_wait_runs_ops_from_plain_sync_code() {
    assert!(!in_runtime());
    let dir = scratch_dir();
    let path = dir.path().join("wait");
    let fd = io::open(&path, RW_CREATE, 0o644).wait().expect("open");
    assert_eq!(io::write(fd, b"hello wait").wait().0.expect("write"), 10);
    assert_eq!(io::lseek(fd, 6, Whence::Set).wait().expect("lseek"), 6);
    let BufResult(n, buf) = io::read(fd, vec![0u8; 16]).wait();
    assert_eq!((n.expect("read"), &buf[..]), (4, &b"wait"[..]));
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 5], 0).wait();
    assert_eq!((n.expect("pread"), &buf[..]), (5, &b"hello"[..]));
    assert_eq!(io::fstat(fd).wait().expect("fstat").size_bytes, 10);
    io::fsync(fd).wait().expect("fsync");
    io::close(fd).wait().expect("close");
    assert_errno(
        io::open(dir.path().join("wait-missing"), OpenFlags::RDONLY, 0).wait(),
        libc::ENOENT,
        "open of a missing file with wait",
    );

    let listener = TcpListener::bind(loopback()).expect("bind");
    let client =
        block_on_here(TcpStream::connect(listener.local_addr().expect("addr"))).expect("connect");
    let (server_fd, _) = io::accept(listener.as_raw_fd()).wait().expect("accept");
    let sent = io::send(client.as_raw_fd(), b"sync").wait();
    assert_eq!(sent.0.expect("send"), 4);
    let BufResult(n, buf) = io::recv_with_flags(server_fd, vec![0u8; 4], MsgFlags::WAITALL).wait();
    assert_eq!((n.expect("recv"), &buf[..]), (4, &b"sync"[..]));
    io::close(server_fd).wait().expect("close socket");
}

#[test]
fn an_op_without_a_runtime_completes_on_its_first_poll() {
    assert!(!in_runtime());
    let dir = scratch_dir();
    let path = dir.path().join("first-poll");

    let mut open = io::open(&path, RW_CREATE, 0o644);
    let Poll::Ready(fd) = poll_once(&mut open) else {
        panic!("open was pending on its first poll without a runtime");
    };
    let fd = fd.expect("open");

    let mut write = io::pwrite(fd, b"first poll", 0);
    let Poll::Ready(BufResult(n, _)) = poll_once(&mut write) else {
        panic!("pwrite was pending on its first poll");
    };
    assert_eq!(n.expect("pwrite"), 10);

    let mut read = io::pread(fd, vec![0u8; 32], 6);
    let Poll::Ready(BufResult(n, buf)) = poll_once(&mut read) else {
        panic!("pread was pending on its first poll");
    };
    assert_eq!((n.expect("pread"), &buf[..]), (4, &b"poll"[..]));

    let mut stat = io::fstat(fd);
    let Poll::Ready(stat) = poll_once(&mut stat) else {
        panic!("fstat was pending on its first poll");
    };
    assert_eq!(stat.expect("fstat").size_bytes, 10);

    let mut missing = io::open(dir.path().join("first-poll-missing"), OpenFlags::RDONLY, 0);
    let Poll::Ready(result) = poll_once(&mut missing) else {
        panic!("a failing open was pending on its first poll");
    };
    assert_errno(result, libc::ENOENT, "open of a missing file");

    // Socket ops whose data is already there complete at once, too.
    let listener = TcpListener::bind(loopback()).expect("bind");
    let client =
        block_on_here(TcpStream::connect(listener.local_addr().expect("addr"))).expect("connect");
    let mut accept = io::accept(listener.as_raw_fd());
    let Poll::Ready(accepted) = poll_once(&mut accept) else {
        panic!("accept of a queued connection was pending on its first poll");
    };
    let (server_fd, _) = accepted.expect("accept");
    block_on_here(send_all(client.as_raw_fd(), b"queued".to_vec())).expect("send");
    let mut recv = io::recv_with_flags(server_fd, vec![0u8; 6], MsgFlags::WAITALL);
    let Poll::Ready(BufResult(n, buf)) = poll_once(&mut recv) else {
        panic!("recv of queued data was pending on its first poll");
    };
    assert_eq!((n.expect("recv"), &buf[..]), (6, &b"queued"[..]));

    let mut close = io::close(fd);
    assert!(
        matches!(poll_once(&mut close), Poll::Ready(Ok(()))),
        "close completes on its first poll"
    );
    io::close(server_fd).wait().expect("close socket");
}

/// An op first polled inside a runtime (so it went to the driver) and then
/// finished with `Op::wait` on a thread without a runtime.
#[test]
fn op_wait_finishes_an_op_already_submitted_to_a_runtime() {
    let dir = scratch_dir();
    let path = dir.path().join("submitted");
    let fd = block_on_here(create_file(&path, b"submitted then waited")).expect("create");
    for backend in available_backends() {
        let rt = runtime_on(backend, "submitted");
        let mut submitted = 0;
        for _ in 0..20 {
            let pending = rt.block_on(async {
                let mut op = io::pread(fd, vec![0u8; 64], 10);
                match poll_once(&mut op) {
                    Poll::Ready(BufResult(n, buf)) => {
                        assert_eq!((n.expect("pread"), &buf[..]), (11, &b"then waited"[..]));
                        None
                    }
                    Poll::Pending => Some(op),
                }
            });
            let Some(op) = pending else { continue };
            submitted += 1;
            let BufResult(n, buf) = op.wait();
            assert_eq!(
                (n.expect("pread finished by wait"), &buf[..]),
                (11, &b"then waited"[..]),
                "on {backend}"
            );
        }
        eprintln!("{backend}: {submitted} of 20 reads were still in flight after one poll");
    }
    io::close(fd).wait().expect("close");
}

// ---------------------------------------------------------------------------
// Real kernel only: FIFOs (the simulated kernel has none)
// ---------------------------------------------------------------------------

/// A FIFO in a fresh scratch directory (kept while the directory lives);
/// `None`, said on stderr, where `mkfifo` is not permitted.
fn scratch_fifo() -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = scratch_dir();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    if !made.success() {
        eprintln!("skipped: mkfifo not permitted here");
        return None;
    }
    Some((dir, fifo))
}

/// A FIFO opens as `open(2)` opens it on every backend: for writing, the
/// open waits for a reader (io_uring's own first attempt would fail with
/// `ENXIO`), and both ends move the bytes.
#[test]
fn a_fifo_opened_before_its_other_end_waits_for_it_on_every_backend() {
    let Some((_dir, fifo)) = scratch_fifo() else {
        return;
    };
    let body = |fifo: PathBuf| async move {
        // The reader comes later: the open for writing waits for it.
        let reader_path = fifo.clone();
        let (read_tx, read_rx) = mpsc::channel();
        let reader = spawn_named("fifo-reader".into(), move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = read_tx.send(std::fs::read(reader_path).expect("read the FIFO"));
        })
        .expect("reader thread");
        let fd = io::open(&fifo, OpenFlags::WRONLY, 0)
            .await
            .expect("open the FIFO for writing before its reader");
        assert_eq!(io::write(fd, b"to the reader").await.0.expect("write"), 13);
        io::close(fd).await.expect("close");
        reader.join().unwrap();
        let read = read_rx.recv().expect("the reader's bytes");
        assert_same_bytes(&read, b"to the reader", "FIFO reader");

        // The writer comes later: the reader gets its bytes.
        let writer_path = fifo.clone();
        let writer = spawn_named("fifo-writer".into(), move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::write(writer_path, b"from the writer").expect("write the FIFO");
        })
        .expect("writer thread");
        let fd = io::open(&fifo, OpenFlags::RDONLY, 0)
            .await
            .expect("open the FIFO for reading before its writer");
        let mut got = Vec::new();
        loop {
            let BufResult(n, buf) = io::read(fd, vec![0u8; 64]).await;
            match n.expect("read") {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        io::close(fd).await.expect("close");
        writer.join().unwrap();
        assert_same_bytes(&got, b"from the writer", "FIFO read");
        Ok::<(), std::io::Error>(())
    };
    for backend in available_backends() {
        let rt = runtime_on(backend, "fifo");
        eprintln!("running on {backend}");
        rt.block_on(body(fifo.clone()))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
    }
    eprintln!("running on the sync fallback (no runtime)");
    block_on_here(body(fifo.clone())).expect("on the sync fallback");
}

/// A read or write at an offset on a FIFO moves the FIFO, ignoring the
/// offset, on every backend and the sync fallback (see
/// `positional_ops_on_a_stream_move_the_stream` for sockets).
#[test]
fn positional_ops_on_a_fifo_move_it_on_every_backend() {
    let Some((_dir, fifo)) = scratch_fifo() else {
        return;
    };
    let body = |fifo: PathBuf| async move {
        // Opened read-write, so the open does not wait for a peer.
        let fd = io::open(&fifo, OpenFlags::RDWR, 0).await?;
        let BufResult(n, _) = io::pwrite(fd, b"through a fifo".to_vec(), 4096).await;
        assert_eq!(n?, 14, "pwrite on a FIFO");
        let BufResult(n, got) = io::pread(fd, vec![0u8; 14], 8).await;
        assert_same_bytes(&got[..n?], b"through a fifo", "pread on a FIFO");
        io::close(fd).await?;
        Ok::<(), std::io::Error>(())
    };
    for backend in available_backends() {
        let rt = runtime_on(backend, "fifo-positional");
        rt.block_on(body(fifo.clone()))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
    }
    block_on_here(body(fifo.clone())).expect("on the sync fallback");
}

/// A FIFO open waiting for a reader that never comes, then dropped (its
/// timeout ends first), does not hold the runtime's drop, on any backend:
/// io_uring cancels it in the kernel; on the pool and epoll backends it
/// holds a blocking thread, as a blocked `open(2)` does, and the drop
/// waits for that thread only as long as `shutdown_wait`.
#[test]
fn a_dropped_fifo_open_does_not_hold_the_runtime_drop() {
    let Some((_dir, fifo)) = scratch_fifo() else {
        return;
    };
    for backend in available_backends() {
        let (done_tx, done_rx) = mpsc::channel();
        let fifo_path = fifo.clone();
        let run = spawn_named(format!("fifo-drop-{backend}"), move || {
            let rt = Runtime::builder()
                .name(format!("fifo-drop-{backend}"))
                .backend(backend)
                .shutdown_wait(std::time::Duration::from_millis(100))
                .build()
                .expect("runtime");
            let waited = rt.block_on(iokernel::runtime::timeout(
                std::time::Duration::from_millis(50),
                io::open(&fifo_path, OpenFlags::WRONLY, 0),
            ));
            drop(rt);
            let _ = done_tx.send(waited.is_err());
        })
        .expect("thread");
        let timed_out = done_rx.recv_timeout(std::time::Duration::from_secs(10));
        // A reader, without waiting for a writer, ends an open still
        // blocked on a pool thread left behind.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("open the FIFO's reader");
        run.join().unwrap();
        drop(reader);
        assert_eq!(
            timed_out,
            Ok(true),
            "{backend}: the open timed out and the runtime dropped"
        );
    }
}
