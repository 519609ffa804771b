//! Every public op against the real kernel, on every executor.
//!
//! Each test body is an `async fn(PathBuf) -> io::Result<()>` over a fresh
//! scratch directory. [`on_every_executor`] runs the same body on a
//! [`Runtime`] for each concrete backend this build can run (printing why it
//! skips the others), then once more through [`block_on_here`] with no
//! runtime at all (the sync fallback, where every op is a blocking syscall
//! completing on its first poll). Bodies only use the public API, so they
//! can later run unchanged against the simulated kernel: this file is the
//! seed of the conformance suite.
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
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// Run `body` on a runtime per available concrete backend, then on the sync
/// fallback (no runtime). Each run gets its own scratch directory.
fn on_every_executor<F, Fut>(body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .name(format!("ops-{backend}"))
            .compute_threads(2)
            .io_threads(2)
            .backend(backend)
            .build()
            .unwrap_or_else(|e| panic!("runtime on {backend} should build: {e}"));
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
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                on_every_executor(body::$name);
            }
        )*
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

#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
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
        let BufResult(n, back) = io::send(fd, slice, MsgFlags::NONE).await;
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
        let BufResult(n, back) = io::recv(fd, SliceMut::new(buf, have, len), MsgFlags::NONE).await;
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
// Bodies
// ---------------------------------------------------------------------------

mod body {
    use super::*;

    const SENDFILE_FILE_BYTES: usize = 1 << 20;
    const SENDFILE_OFFSET: usize = 1000;
    const SENDFILE_BYTES: usize = 300_000;

    pub async fn open_missing_file_is_enoent(dir: PathBuf) -> std::io::Result<()> {
        let missing = dir.join("open-missing");
        assert_errno(
            io::open(&missing, OpenFlags::RDONLY, 0).await,
            libc::ENOENT,
            "open of a missing file",
        );
        assert_errno(
            io::open(dir.join("no-dir/child"), RW_CREATE, 0o644).await,
            libc::ENOENT,
            "open O_CREAT under a missing directory",
        );
        Ok(())
    }

    pub async fn open_create_excl_on_existing_file_is_eexist(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("open-excl");
        let excl = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::EXCL;
        let fd = io::open(&path, excl, 0o644).await?;
        io::close(fd).await?;
        assert_errno(
            io::open(&path, excl, 0o644).await,
            libc::EEXIST,
            "open O_CREAT|O_EXCL of an existing file",
        );
        Ok(())
    }

    pub async fn open_bad_paths_and_modes_fail_with_their_errno(
        dir: PathBuf,
    ) -> std::io::Result<()> {
        let file = dir.join("open-bad-file");
        io::close(create_file(&file, b"x").await?).await?;
        assert_errno(
            io::open(&file, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await,
            libc::ENOTDIR,
            "open O_DIRECTORY of a regular file",
        );
        assert_errno(
            io::open(&dir, OpenFlags::WRONLY, 0).await,
            libc::EISDIR,
            "open of a directory for writing",
        );
        assert_errno(
            io::open(file.join("below-a-file"), OpenFlags::RDONLY, 0).await,
            libc::ENOTDIR,
            "open of a path through a regular file",
        );
        assert_errno(
            io::open(dir.join("nul\0byte"), OpenFlags::RDONLY, 0).await,
            libc::EINVAL,
            "open of a path with an interior NUL",
        );
        Ok(())
    }

    pub async fn read_on_a_directory_fd_is_eisdir(dir: PathBuf) -> std::io::Result<()> {
        let fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
        assert_errno(
            io::read(fd, vec![0u8; 16]).await.0,
            libc::EISDIR,
            "read on a directory fd",
        );
        assert_errno(
            io::pread(fd, vec![0u8; 16], 0).await.0,
            libc::EISDIR,
            "pread on a directory fd",
        );
        io::close(fd).await
    }

    pub async fn ops_on_a_closed_fd_are_ebadf(dir: PathBuf) -> std::io::Result<()> {
        // A number no open can hand out (fds are non-negative): safe even
        // when other tests share the process.
        assert_every_fd_op_is_ebadf(-1, "fd -1").await;
        if std::env::var_os("NEXTEST").is_none() {
            // Another test thread could be handed the closed number, and
            // write/ftruncate/close would then hit that test's file.
            eprintln!(
                "skipping the closed-fd half: it needs a process of its own (run under nextest)"
            );
            return Ok(());
        }
        let fd = create_file(&dir.join("closed-fd"), b"0123456789").await?;
        io::close(fd).await?;
        assert_errno(io::close(fd).await, libc::EBADF, "close twice");
        assert_every_fd_op_is_ebadf(fd, "a closed fd").await;
        Ok(())
    }

    pub async fn ops_against_the_fd_access_mode_fail(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("access-mode");
        io::close(create_file(&path, b"0123456789").await?).await?;
        let ro = io::open(&path, OpenFlags::RDONLY, 0).await?;
        assert_errno(
            io::write(ro, b"x").await.0,
            libc::EBADF,
            "write to O_RDONLY",
        );
        assert_errno(io::pwrite(ro, b"x", 0).await.0, libc::EBADF, "pwrite");
        assert_errno(
            io::ftruncate(ro, 0).await,
            libc::EINVAL,
            "ftruncate O_RDONLY",
        );
        io::close(ro).await?;
        let wo = io::open(&path, OpenFlags::WRONLY, 0).await?;
        assert_errno(
            io::read(wo, vec![0u8; 4]).await.0,
            libc::EBADF,
            "read O_WRONLY",
        );
        io::close(wo).await?;
        assert_eq!(read_file(&path).await?, b"0123456789", "content untouched");
        Ok(())
    }

    pub async fn write_and_read_move_the_file_offset(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("offset-rw");
        let fd = io::open(&path, RW_CREATE, 0o644).await?;
        assert_eq!(io::write(fd, b"hello ").await.0?, 6);
        assert_eq!(io::write(fd, b"world").await.0?, 5);
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 11, "after writes");
        let BufResult(n, buf) = io::read(fd, vec![0u8; 8]).await;
        assert_eq!(n?, 0, "read at the end of the file");
        assert!(buf.is_empty(), "an empty read leaves the Vec empty");
        assert_eq!(io::lseek(fd, 0, Whence::Set).await?, 0);
        let BufResult(n, buf) = io::read(fd, vec![0u8; 4]).await;
        assert_eq!((n?, &buf[..]), (4, &b"hell"[..]));
        let BufResult(n, buf) = io::read(fd, vec![0u8; 100]).await;
        assert_eq!(
            (n?, &buf[..]),
            (7, &b"o world"[..]),
            "second read continues"
        );
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 11, "after reads");
        io::close(fd).await?;

        let append = io::open(&path, OpenFlags::WRONLY | OpenFlags::APPEND, 0).await?;
        assert_eq!(io::lseek(append, 0, Whence::Set).await?, 0);
        assert_eq!(io::write(append, b"!").await.0?, 1);
        assert_eq!(io::lseek(append, 0, Whence::Current).await?, 12, "O_APPEND");
        io::close(append).await?;
        assert_eq!(read_file(&path).await?, b"hello world!");
        Ok(())
    }

    pub async fn pread_and_pwrite_leave_the_file_offset(dir: PathBuf) -> std::io::Result<()> {
        let fd = create_file(&dir.join("offset-p"), b"0123456789").await?;
        assert_eq!(io::lseek(fd, 3, Whence::Set).await?, 3);
        assert_eq!(io::pwrite(fd, b"XY", 8).await.0?, 2);
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3, "after pwrite");
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 4], 6).await;
        assert_eq!((n?, &buf[..]), (4, &b"67XY"[..]));
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3, "after pread");
        let BufResult(n, buf) = io::read(fd, vec![0u8; 2]).await;
        assert_eq!((n?, &buf[..]), (2, &b"34"[..]), "read starts at the offset");
        assert_eq!(
            io::pwrite(fd, b"end", 20).await.0?,
            3,
            "pwrite past the end"
        );
        assert_eq!(io::fstat(fd).await?.size_bytes, 23);
        assert_eq!(pread_exact(fd, 13, 10).await?, b"\0\0\0\0\0\0\0\0\0\0end");
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 5);
        io::close(fd).await
    }

    pub async fn lseek_set_current_end(dir: PathBuf) -> std::io::Result<()> {
        let fd = create_file(&dir.join("lseek"), b"0123456789").await?;
        assert_eq!(io::lseek(fd, 0, Whence::End).await?, 10);
        assert_eq!(io::lseek(fd, -3, Whence::Current).await?, 7);
        assert_eq!(io::lseek(fd, 2, Whence::Set).await?, 2);
        let BufResult(n, buf) = io::read(fd, vec![0u8; 1]).await;
        assert_eq!((n?, &buf[..]), (1, &b"2"[..]));
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3);
        assert_eq!(io::lseek(fd, -4, Whence::End).await?, 6);
        assert_errno(io::lseek(fd, -1, Whence::Set).await, libc::EINVAL, "Set -1");
        assert_errno(
            io::lseek(fd, -11, Whence::End).await,
            libc::EINVAL,
            "End -11",
        );
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 6, "failed seeks");
        assert_eq!(io::lseek(fd, 5, Whence::End).await?, 15, "past the end");
        assert_eq!(io::write(fd, b"x").await.0?, 1);
        assert_eq!(io::fstat(fd).await?.size_bytes, 16);
        io::close(fd).await?;

        let (_listener, client, server_fd) = loopback_pair().await?;
        let sock = client.as_raw_fd();
        assert_errno(
            io::lseek(sock, 0, Whence::Set).await,
            libc::ESPIPE,
            "socket",
        );
        io::close(server_fd).await
    }

    pub async fn short_read_at_eof(dir: PathBuf) -> std::io::Result<()> {
        let fd = create_file(&dir.join("short-read"), b"0123456789").await?;
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 4096], 6).await;
        assert_eq!(n?, 4, "pread of 4096 at 6 in a 10-byte file");
        assert_eq!(buf.len(), 4, "the Vec's length is what was read");
        assert_eq!(buf, b"6789");
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 4096], 10).await;
        assert_eq!((n?, buf.len()), (0, 0), "pread at the end");
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 16], 1000).await;
        assert_eq!((n?, buf.len()), (0, 0), "pread past the end");
        assert_eq!(io::lseek(fd, 7, Whence::Set).await?, 7);
        let BufResult(n, buf) = io::read(fd, Vec::with_capacity(64)).await;
        assert_eq!((n?, &buf[..]), (3, &b"789"[..]), "read into spare capacity");
        io::close(fd).await
    }

    pub async fn readv_and_writev_span_three_buffers(dir: PathBuf) -> std::io::Result<()> {
        let fd = io::open(dir.join("vectored"), RW_CREATE, 0o644).await?;
        let parts: Vec<&'static [u8]> = vec![b"abc", b"defgh", b"ijklmno"];
        let BufResult(n, parts) = io::writev(fd, parts).await;
        assert_eq!(n?, 15);
        assert_eq!(parts.len(), 3, "writev gives its buffers back");
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 15, "writev moves");

        assert_eq!(io::lseek(fd, 0, Whence::Set).await?, 0);
        let bufs = vec![vec![0u8; 4], vec![0u8; 8], vec![0u8; 16]];
        let BufResult(n, bufs) = io::readv(fd, bufs).await;
        assert_eq!(n?, 15);
        assert_eq!(bufs[0], b"abcd");
        assert_eq!(bufs[1], b"efghijkl");
        assert_eq!(bufs[2], b"mno", "the third Vec holds the 3 bytes left");
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 15, "readv moves");

        // Data that ends inside the second buffer.
        assert_eq!(io::lseek(fd, 9, Whence::Set).await?, 9);
        let bufs = vec![vec![0u8; 2], vec![0u8; 8], vec![0u8; 4]];
        let BufResult(n, bufs) = io::readv(fd, bufs).await;
        assert_eq!(n?, 6);
        let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
        assert_eq!(lens, [2, 4, 0], "filled lengths");
        assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"jk"[..], &b"lmno"[..]));

        // At the end: every buffer comes back empty.
        let BufResult(n, bufs) = io::readv(fd, vec![vec![0u8; 3], vec![0u8; 3]]).await;
        assert_eq!(n?, 0);
        assert!(bufs.iter().all(Vec::is_empty), "readv at the end");
        io::close(fd).await
    }

    pub async fn preadv_and_pwritev_span_three_buffers(dir: PathBuf) -> std::io::Result<()> {
        let fd = create_file(&dir.join("positional-vectored"), b"0123456789").await?;
        assert_eq!(io::lseek(fd, 4, Whence::Set).await?, 4);
        let parts = vec![b"XYZ".to_vec(), b"12345".to_vec(), b"!".to_vec()];
        let BufResult(n, _) = io::pwritev(fd, parts, 20).await;
        assert_eq!(n?, 9, "pwritev past the end");
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 4, "after pwritev");
        assert_eq!(io::fstat(fd).await?.size_bytes, 29);

        let bufs = vec![vec![0u8; 3], vec![0u8; 10], vec![0u8; 5]];
        let BufResult(n, bufs) = io::preadv(fd, bufs, 22).await;
        assert_eq!(n?, 7, "7 bytes from 22 to the end at 29");
        let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
        assert_eq!(lens, [3, 4, 0], "the data ends inside the second buffer");
        assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"Z12"[..], &b"345!"[..]));

        let bufs = vec![vec![0xffu8; 8], vec![0xffu8; 4], vec![0xffu8; 32]];
        let BufResult(n, bufs) = io::preadv(fd, bufs, 6).await;
        assert_eq!(n?, 23);
        assert_eq!(bufs[0], b"6789\0\0\0\0", "the hole reads as zeros");
        assert_eq!(bufs[1], b"\0\0\0\0");
        assert_eq!(bufs[2], b"\0\0XYZ12345!");

        let BufResult(n, bufs) = io::preadv(fd, vec![vec![0u8; 4]; 3], 29).await;
        assert_eq!(n?, 0);
        assert!(bufs.iter().all(Vec::is_empty), "preadv at the end");
        assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 4, "after preadv");
        io::close(fd).await
    }

    pub async fn boxed_static_string_and_slice_buffers(dir: PathBuf) -> std::io::Result<()> {
        let fd = io::open(dir.join("buffers"), RW_CREATE, 0o644).await?;
        let boxed: Box<[u8]> = Box::from(&b"boxed|"[..]);
        assert_eq!(io::write(fd, boxed).await.0?, 6);
        assert_eq!(io::write(fd, "static str|").await.0?, 11);
        assert_eq!(io::write(fd, String::from("string|")).await.0?, 7);
        assert_eq!(io::write(fd, b"array|").await.0?, 6, "&'static [u8; N]");
        let slice: &'static [u8] = b"slice|";
        assert_eq!(io::write(fd, slice).await.0?, 6);
        let BufResult(n, back) = io::write(fd, Slice::new(b"0123456789".to_vec(), 6)).await;
        assert_eq!(n?, 4, "a Slice writes from its start");
        assert_eq!(back.into_inner(), b"0123456789");
        let want: &[u8] = b"boxed|static str|string|array|slice|6789";
        assert_eq!(io::fstat(fd).await?.size_bytes, want.len() as u64);

        // A boxed slice keeps its length; the count says what was read.
        let boxed: Box<[u8]> = vec![b'.'; 10].into_boxed_slice();
        let BufResult(n, boxed) = io::pread(fd, boxed, 36).await;
        assert_eq!(n?, 4);
        assert_eq!(&boxed[..], b"6789......");

        // A window of a Vec: filled up to start + n.
        let window = SliceMut::new(vec![b'-'; 8], 2, 7);
        let BufResult(n, window) = io::pread(fd, window, 0).await;
        assert_eq!(n?, 5);
        assert_eq!(window.into_inner(), b"--boxed");

        // AlignedBuf without O_DIRECT: length follows the count.
        let mut aligned = AlignedBuf::new(64, 512);
        aligned.extend_from_slice(b"aligned")?;
        assert_eq!(io::pwrite(fd, aligned, 100).await.0?, 7);
        let BufResult(n, aligned) = io::pread(fd, AlignedBuf::new(64, 4096), 98).await;
        assert_eq!(n?, 9);
        assert_eq!(aligned.len(), 9);
        assert_eq!(aligned.as_bytes(), b"\0\0aligned");
        io::close(fd).await
    }

    pub async fn aligned_buf_with_and_without_o_direct(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("direct");
        let data = pattern(16384, 3);
        let fd = create_file(&path, &data).await?;
        io::fsync(fd).await?;
        io::close(fd).await?;
        let fd = match io::open(&path, OpenFlags::RDWR | OpenFlags::DIRECT, 0).await {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("skipping O_DIRECT: the scratch file system refuses it ({e})");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(8192, 4096), 4096).await;
        assert_eq!(n?, 8192, "O_DIRECT pread of 8192 at 4096");
        assert_eq!(buf.len(), 8192);
        assert_same_bytes(buf.as_bytes(), &data[4096..12288], "O_DIRECT pread");

        let mut block = AlignedBuf::new(4096, 4096);
        block.extend_from_slice(&pattern(4096, 99))?;
        assert_eq!(
            io::pwrite(fd, block, 8192).await.0?,
            4096,
            "O_DIRECT pwrite"
        );
        let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(4096, 4096), 8192).await;
        assert_eq!(n?, 4096);
        assert_same_bytes(buf.as_bytes(), &pattern(4096, 99), "O_DIRECT read back");

        let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(8192, 4096), 12288).await;
        assert_eq!(n?, 4096, "O_DIRECT short read at the end");
        assert_eq!(buf.len(), 4096);
        assert_same_bytes(buf.as_bytes(), &data[12288..], "O_DIRECT tail");
        io::close(fd).await
    }

    pub async fn fsync_and_fdatasync(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("sync");
        let fd = create_file(&path, b"durable").await?;
        io::fsync(fd).await?;
        assert_eq!(io::pwrite(fd, b"!", 7).await.0?, 1);
        io::fdatasync(fd).await?;
        io::close(fd).await?;
        let ro = io::open(&path, OpenFlags::RDONLY, 0).await?;
        io::fsync(ro).await?;
        io::close(ro).await?;
        let dir_fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
        io::fsync(dir_fd).await?;
        io::close(dir_fd).await?;
        assert_eq!(read_file(&path).await?, b"durable!");
        Ok(())
    }

    pub async fn ftruncate_grows_and_shrinks(dir: PathBuf) -> std::io::Result<()> {
        let fd = create_file(&dir.join("truncate"), b"0123456789").await?;
        io::ftruncate(fd, 4096).await?;
        assert_eq!(io::fstat(fd).await?.size_bytes, 4096, "grown");
        assert_eq!(pread_exact(fd, 4086, 10).await?, vec![0u8; 4086], "zeros");
        io::ftruncate(fd, 3).await?;
        assert_eq!(io::fstat(fd).await?.size_bytes, 3, "shrunk");
        let BufResult(n, buf) = io::pread(fd, vec![0u8; 10], 0).await;
        assert_eq!((n?, &buf[..]), (3, &b"012"[..]));
        io::ftruncate(fd, 0).await?;
        assert_eq!(io::fstat(fd).await?.size_bytes, 0, "emptied");
        io::close(fd).await
    }

    pub async fn fallocate_grows_the_file(dir: PathBuf) -> std::io::Result<()> {
        let fd = io::open(dir.join("fallocate"), RW_CREATE, 0o644).await?;
        match io::fallocate(fd, 0, 0, 1 << 20).await {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eprintln!("skipping fallocate: the scratch file system lacks it ({e})");
                return io::close(fd).await;
            }
            Err(e) => return Err(e),
        }
        let stat = io::fstat(fd).await?;
        assert_eq!(stat.size_bytes, 1 << 20, "fallocate sets the size");
        assert!(stat.blocks_512 >= 2048, "space allocated: {stat:?}");
        let keep = libc::FALLOC_FL_KEEP_SIZE;
        io::fallocate(fd, keep, 1 << 20, 1 << 20).await?;
        assert_eq!(io::fstat(fd).await?.size_bytes, 1 << 20, "KEEP_SIZE");
        assert_errno(io::fallocate(fd, 0, 0, 0).await, libc::EINVAL, "len 0");
        assert_eq!(
            pread_exact(fd, 16, 4096).await?,
            [0u8; 16],
            "reads as zeros"
        );
        io::close(fd).await
    }

    pub async fn fstat_reports_size_type_and_permissions(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("fstat");
        let fd = io::open(&path, RW_CREATE, 0o600).await?;
        pwrite_all(fd, b"0123456789".to_vec(), 0).await?;
        let stat = io::fstat(fd).await?;
        assert_eq!(stat.size_bytes, 10);
        assert_eq!(stat.file_type, FileType::Regular);
        assert_eq!(stat.permissions, 0o600);
        assert_eq!(stat.links, 1);
        assert!(stat.block_size_bytes > 0, "st_blksize: {stat:?}");
        let again = io::open(&path, OpenFlags::RDONLY, 0).await?;
        assert_eq!(io::fstat(again).await?.inode, stat.inode, "same file");
        io::close(again).await?;
        io::close(fd).await?;

        let dir_fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
        assert_eq!(io::fstat(dir_fd).await?.file_type, FileType::Directory);
        io::close(dir_fd).await?;

        let listener = TcpListener::bind(loopback())?;
        let sock = io::fstat(listener.as_raw_fd()).await?;
        assert_eq!(sock.file_type, FileType::Socket);
        Ok(())
    }

    pub async fn rename_moves_the_name(dir: PathBuf) -> std::io::Result<()> {
        let (old, new) = (dir.join("rename-old"), dir.join("rename-new"));
        io::close(create_file(&old, b"moved content").await?).await?;
        io::rename(&old, &new).await?;
        assert_errno(
            io::open(&old, OpenFlags::RDONLY, 0).await,
            libc::ENOENT,
            "open of the old name",
        );
        assert_eq!(read_file(&new).await?, b"moved content");

        let other = dir.join("rename-other");
        io::close(create_file(&other, b"replacement").await?).await?;
        io::rename(&other, &new).await?;
        assert_eq!(
            read_file(&new).await?,
            b"replacement",
            "replaces the target"
        );
        assert_errno(io::rename(&old, &new).await, libc::ENOENT, "rename missing");
        Ok(())
    }

    pub async fn unlink_removes_the_name(dir: PathBuf) -> std::io::Result<()> {
        let path = dir.join("unlink");
        let fd = create_file(&path, b"still readable").await?;
        io::unlink(&path).await?;
        assert_errno(
            io::open(&path, OpenFlags::RDONLY, 0).await,
            libc::ENOENT,
            "open after unlink",
        );
        assert_eq!(pread_exact(fd, 14, 0).await?, b"still readable", "open fd");
        assert_eq!(io::fstat(fd).await?.links, 0);
        io::close(fd).await?;
        assert_errno(io::unlink(&path).await, libc::ENOENT, "unlink twice");
        let sub = dir.join("unlink-dir");
        io::mkdir(&sub, 0o755).await?;
        assert_errno(
            io::unlink(&sub).await,
            libc::EISDIR,
            "unlink of a directory",
        );
        Ok(())
    }

    pub async fn mkdir_creates_a_directory_once(dir: PathBuf) -> std::io::Result<()> {
        let sub = dir.join("mkdir");
        io::mkdir(&sub, 0o755).await?;
        let fd = io::open(&sub, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
        assert_eq!(io::fstat(fd).await?.file_type, FileType::Directory);
        io::close(fd).await?;
        assert_errno(io::mkdir(&sub, 0o755).await, libc::EEXIST, "mkdir twice");
        assert_errno(
            io::mkdir(dir.join("mkdir-missing/child"), 0o755).await,
            libc::ENOENT,
            "mkdir under a missing parent",
        );
        let inside = sub.join("inside");
        io::close(create_file(&inside, b"in a new dir").await?).await?;
        assert_eq!(read_file(&inside).await?, b"in a new dir");
        Ok(())
    }

    pub async fn sendfile_file_to_file(dir: PathBuf) -> std::io::Result<()> {
        let data = pattern(64 * 1024, 5);
        let src = create_file(&dir.join("sendfile-file-src"), &data).await?;
        let dst_path = dir.join("sendfile-file-dst");
        let dst = io::open(&dst_path, RW_CREATE, 0o644).await?;
        let mut copied = 0;
        while copied < 5000 {
            let n = io::sendfile(dst, src, (1000 + copied) as u64, 5000 - copied).await?;
            assert!(n > 0, "sendfile made no progress at {copied}");
            copied += n;
        }
        assert_eq!(
            io::lseek(src, 0, Whence::Current).await?,
            0,
            "source offset"
        );
        assert_eq!(
            io::lseek(dst, 0, Whence::Current).await?,
            5000,
            "dest offset"
        );
        let n = io::sendfile(dst, src, data.len() as u64, 100).await?;
        assert_eq!(n, 0, "sendfile from the end of the source");
        io::close(dst).await?;
        io::close(src).await?;
        let copy = read_file(&dst_path).await?;
        assert_same_bytes(&copy, &data[1000..6000], "file to file");
        Ok(())
    }

    pub async fn sendfile_file_to_socket_in_turns(dir: PathBuf) -> std::io::Result<()> {
        let data = pattern(SENDFILE_FILE_BYTES, 7);
        let file = create_file(&dir.join("sendfile-turns"), &data).await?;
        let (_listener, client, server_fd) = loopback_pair().await?;
        // Send at most 64 KiB, then drain it all: the socket always has room,
        // so one thread can play both sides.
        let mut received = Vec::with_capacity(SENDFILE_BYTES);
        while received.len() < SENDFILE_BYTES {
            let at = SENDFILE_OFFSET + received.len();
            let want = (SENDFILE_BYTES - received.len()).min(64 * 1024);
            let n = io::sendfile(server_fd, file, at as u64, want).await?;
            assert!(n > 0 && n <= want, "sendfile of {want} at {at} gave {n}");
            received.extend(recv_exact(client.as_raw_fd(), n).await?);
        }
        let want = &data[SENDFILE_OFFSET..SENDFILE_OFFSET + SENDFILE_BYTES];
        assert_same_bytes(&received, want, "sendfile in turns");
        assert_eq!(io::lseek(file, 0, Whence::Current).await?, 0, "file offset");
        io::close(server_fd).await?;
        let BufResult(n, _) = io::recv(client.as_raw_fd(), vec![0u8; 16], MsgFlags::NONE).await;
        assert_eq!(n?, 0, "nothing more after the server closes");
        io::close(file).await
    }

    pub async fn sendfile_file_to_socket_with_a_concurrent_reader(
        dir: PathBuf,
    ) -> std::io::Result<()> {
        let data = pattern(SENDFILE_FILE_BYTES, 11);
        let file = create_file(&dir.join("sendfile-concurrent"), &data).await?;
        let (_listener, client, server_fd) = loopback_pair().await?;
        let reader = spawn_peer(
            "sendfile-reader",
            recv_exact(client.as_raw_fd(), SENDFILE_BYTES),
        );
        let mut sent = 0;
        while sent < SENDFILE_BYTES {
            let at = (SENDFILE_OFFSET + sent) as u64;
            let n = io::sendfile(server_fd, file, at, SENDFILE_BYTES - sent).await?;
            assert!(n > 0, "sendfile made no progress after {sent} bytes");
            sent += n;
        }
        assert_eq!(sent, SENDFILE_BYTES, "never more than asked");
        let received = reader.join().await?;
        let want = &data[SENDFILE_OFFSET..SENDFILE_OFFSET + SENDFILE_BYTES];
        assert_same_bytes(&received, want, "sendfile to a concurrent reader");
        assert_eq!(io::lseek(file, 0, Whence::Current).await?, 0, "file offset");
        io::close(server_fd).await?;
        io::close(file).await
    }

    pub async fn accept_send_recv_ping_pong_in_turns(_dir: PathBuf) -> std::io::Result<()> {
        let (_listener, client, server_fd) = loopback_pair().await?;
        client.set_nodelay(true)?;
        let client_fd = client.as_raw_fd();
        for i in 0..100 {
            send_all(client_fd, format!("ping {i:03}").into_bytes()).await?;
            let ping = recv_exact(server_fd, 8).await?;
            assert_eq!(ping, format!("ping {i:03}").as_bytes(), "round {i}");
            send_all(server_fd, format!("pong {i:03}").into_bytes()).await?;
            let pong = recv_exact(client_fd, 8).await?;
            assert_eq!(pong, format!("pong {i:03}").as_bytes(), "round {i}");
        }
        io::close(server_fd).await
    }

    pub async fn accept_send_recv_ping_pong_concurrently(_dir: PathBuf) -> std::io::Result<()> {
        let listener = TcpListener::bind(loopback())?;
        let addr = listener.local_addr()?;
        let server = spawn_peer("pong", async move {
            let (fd, _) = io::accept(listener.as_raw_fd()).await?;
            for i in 0..100 {
                let ping = recv_exact(fd, 8).await?;
                assert_eq!(ping, format!("ping {i:03}").as_bytes(), "server round {i}");
                send_all(fd, format!("pong {i:03}").into_bytes()).await?;
            }
            let BufResult(n, _) = io::recv(fd, vec![0u8; 8], MsgFlags::NONE).await;
            assert_eq!(n?, 0, "the client shut down");
            io::close(fd).await?;
            drop(listener);
            Ok::<_, std::io::Error>(())
        });
        let client = TcpStream::connect(addr).await?;
        client.set_nodelay(true)?;
        for i in 0..100 {
            send_all(client.as_raw_fd(), format!("ping {i:03}").into_bytes()).await?;
            let pong = recv_exact(client.as_raw_fd(), 8).await?;
            assert_eq!(pong, format!("pong {i:03}").as_bytes(), "client round {i}");
        }
        client.shutdown(Shutdown::Write)?;
        server.join().await
    }

    pub async fn recv_returns_zero_after_the_peer_shuts_down(_dir: PathBuf) -> std::io::Result<()> {
        let (_listener, client, server_fd) = loopback_pair().await?;
        client.write_all(b"bye").await.0?;
        client.shutdown(Shutdown::Write)?;
        assert_eq!(recv_exact(server_fd, 3).await?, b"bye");
        for attempt in 0..2 {
            let BufResult(n, buf) = io::recv(server_fd, vec![0u8; 16], MsgFlags::NONE).await;
            assert_eq!(n?, 0, "recv after the peer's shutdown, attempt {attempt}");
            assert!(buf.is_empty(), "the Vec comes back empty");
        }
        // The other direction still works.
        send_all(server_fd, b"ack".to_vec()).await?;
        assert_eq!(recv_exact(client.as_raw_fd(), 3).await?, b"ack");
        io::close(server_fd).await?;
        let BufResult(n, _) = client.read(vec![0u8; 16]).await;
        assert_eq!(n?, 0, "recv after the peer closed");
        Ok(())
    }

    pub async fn send_to_a_closed_peer_fails_with_epipe_or_econnreset(
        _dir: PathBuf,
    ) -> std::io::Result<()> {
        let (_listener, client, server_fd) = loopback_pair().await?;
        io::close(server_fd).await?;
        let chunk: &'static [u8] = &[b'z'; 1024];
        for attempt in 0..1000 {
            match io::send(client.as_raw_fd(), chunk, MsgFlags::NONE).await.0 {
                Ok(n) => assert!(n > 0, "send {attempt} sent 0 bytes"),
                Err(e) => {
                    let errno = e.raw_os_error();
                    assert!(
                        errno == Some(libc::EPIPE) || errno == Some(libc::ECONNRESET),
                        "send {attempt} to a closed peer: expected EPIPE or ECONNRESET, got {e:?}"
                    );
                    return Ok(());
                }
            }
        }
        panic!("1000 sends to a closed peer all succeeded");
    }

    pub async fn connect_without_a_listener_is_econnrefused(_dir: PathBuf) -> std::io::Result<()> {
        let addr = TcpListener::bind(loopback())?.local_addr()?;
        // The listener is gone: nothing listens on `addr` now.
        assert_errno(
            TcpStream::connect(addr).await.map(|s| s.as_raw_fd()),
            libc::ECONNREFUSED,
            "connect to a port with no listener",
        );
        Ok(())
    }

    pub async fn bind_to_a_port_in_use_is_eaddrinuse(_dir: PathBuf) -> std::io::Result<()> {
        let listener = TcpListener::bind(loopback())?;
        let addr = listener.local_addr()?;
        assert_errno(
            TcpListener::bind(addr).map(|l| l.as_raw_fd()),
            libc::EADDRINUSE,
            "bind to a port another listener holds",
        );
        Ok(())
    }
}

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
    let sent = io::send(client.as_raw_fd(), b"sync", MsgFlags::NONE).wait();
    assert_eq!(sent.0.expect("send"), 4);
    let BufResult(n, buf) = io::recv(server_fd, vec![0u8; 4], MsgFlags::WAITALL).wait();
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
    let mut recv = io::recv(server_fd, vec![0u8; 6], MsgFlags::WAITALL);
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
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .compute_threads(2)
            .io_threads(2)
            .backend(backend)
            .build()
            .expect("runtime builds");
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
