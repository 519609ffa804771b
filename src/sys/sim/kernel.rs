//! [`SimKernel`]: the seam's [`Kernel`] over the simulated machine.
//!
//! Owns: the fd table and the syscall semantics on top of [`SimFs`] (files
//! and paths) and `SimNet` (sockets and pipes): argument and fd checks in
//! the order Linux makes them, so each call fails with the errno the real
//! kernel gives, and the fault injection of the module-level fault model.
//! Every call follows the same steps:
//!
//! 1. count it and check it, computing the real outcome without changing
//!    anything (a real error returns here, with no fault drawn);
//! 2. draw an injected fault for its [`OpClass`] (an injected `EINTR` is
//!    retried and counted; any other injected errno returns with no state
//!    changed, except that a failed file fsync drops the dirty data);
//! 3. draw a short transfer for reads, writes, sends and receives;
//! 4. apply it, and record `name args -> result` in the trace.
//!
//! Sockets and pipes are stream fds: their reads and writes (through any
//! call) use the `SocketRead`/`SocketWrite` classes, whose errnos (`EAGAIN`,
//! `EPIPE`, ...) make sense for them. Calls no class lists (`close`,
//! `pipe`, `set_option`, address and readiness queries) never fail at
//! random. For socket setup calls the net model cannot be asked in advance
//! whether the call would succeed, so their fault is drawn before the call.

use super::core::SimCore;
use super::dgram::{DgramId, SimDgram};
use super::fs::crash::{CrashLog, CrashPoint};
use super::fs::{InodeId, Last, SimFs, LUSTRE_LOV, MAX_FILE_BYTES, ROOT, XATTR_SIZE_MAX};
use super::net::{PipeId, SimNet, SocketId, EISCONN};
use super::options::OpClass;
use crate::sys::fsinfo;
use crate::sys::{
    Advice, Errno, FileStat, FileType, FsStat, Interest, Kernel, MsgFlags, OpenFlags, Ready,
    RecvMeta, Shutdown, SockAddr, SockOpt, SockType, SysResult, Whence,
};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fmt::Debug;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use std::sync::{Arc, Mutex, MutexGuard};

/// The lowest fd handed out (0, 1 and 2 are the standard streams).
const FIRST_FD: RawFd = 3;
/// One past the highest fd (`EMFILE` beyond).
const FD_LIMIT: RawFd = 65_536;
/// Most bytes one read or write moves (Linux `MAX_RW_COUNT`).
const MAX_RW_COUNT: usize = 0x7fff_f000;
/// Most buffers one vectored call passes (Linux `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;
/// Most bytes one `splice` moves (a default pipe's capacity).
const SPLICE_MAX: usize = 65_536;
/// Injected `EINTR`s retried in a row before the call proceeds anyway
/// (so an all-`EINTR` fault setting cannot hang a run).
const EINTR_RETRIES_MAX: u32 = 64;
/// `FALLOC_FL_KEEP_SIZE`.
const KEEP_SIZE: i32 = crate::sys::falloc::KEEP_SIZE;
/// `FALLOC_FL_PUNCH_HOLE`.
const PUNCH_HOLE: i32 = crate::sys::falloc::PUNCH_HOLE;
/// The `FALLOC_FL_*` bits Linux accepts at all (others: `EOPNOTSUPP` first).
const FALLOC_LINUX_MODES: i32 = crate::sys::falloc::KEEP_SIZE
    | crate::sys::falloc::PUNCH_HOLE
    | crate::sys::falloc::COLLAPSE_RANGE
    | crate::sys::falloc::ZERO_RANGE
    | crate::sys::falloc::INSERT_RANGE
    | crate::sys::falloc::UNSHARE_RANGE;
/// `XATTR_CREATE`.
const XATTR_CREATE: i32 = 1;
/// `XATTR_REPLACE`.
const XATTR_REPLACE: i32 = 2;
/// `SOCKFS_MAGIC` as an `f_type`.
const SOCKFS_MAGIC: i64 = fsinfo::SOCKFS_MAGIC as i64;
/// `PIPEFS_MAGIC` as an `f_type`.
const PIPEFS_MAGIC: i64 = fsinfo::PIPEFS_MAGIC as i64;
/// Device number `fstat` reports for sockets and pipes (files report 1).
const STREAM_DEVICE: u64 = 8;
/// `st_blksize` of sockets and pipes (the page size).
const STREAM_BLOCK_BYTES: u64 = 4096;

/// An open regular file.
#[derive(Clone, Copy, Debug)]
struct OpenFile {
    inode: InodeId,
    offset: u64,
    append: bool,
    readable: bool,
    writable: bool,
}

/// What an fd refers to.
#[derive(Clone, Copy, Debug)]
enum Fd {
    File(OpenFile),
    Directory(InodeId),
    Socket(SocketId),
    PipeRead(PipeId),
    PipeWrite(PipeId),
    /// A datagram socket (UDP or Unix), or a Unix stream socket that is not
    /// connected (idle or listening): see `dgram`.
    Dgram(DgramId),
}

impl Fd {
    /// Open with `FMODE_READ`.
    fn readable(self) -> bool {
        match self {
            Fd::File(f) => f.readable,
            Fd::PipeWrite(_) => false,
            Fd::Directory(_) | Fd::Socket(_) | Fd::PipeRead(_) | Fd::Dgram(_) => true,
        }
    }

    /// Open with `FMODE_WRITE`.
    fn writable(self) -> bool {
        match self {
            Fd::File(f) => f.writable,
            Fd::Directory(_) | Fd::PipeRead(_) => false,
            Fd::Socket(_) | Fd::PipeWrite(_) | Fd::Dgram(_) => true,
        }
    }
}

/// What a simulated poller sees of an fd ([`SimKernel::poll_target`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PollTarget {
    /// What the fd refers to (kind, object id): a registration whose fd
    /// now names something else was removed by a close.
    pub(crate) identity: (u8, u64),
    /// A socket or pipe (epoll refuses regular files and directories).
    pub(crate) stream: bool,
    /// Current readiness (errors and hang-ups count as both).
    pub(crate) ready: Ready,
    /// How often each direction (read, write) became ready since the fd
    /// was first looked at: what an edge-triggered registration reports
    /// (`EPOLLET`, `EV_CLEAR`). An `EAGAIN` or short transfer the fault
    /// model injects also counts, as the data (or room) arriving a moment
    /// later would on a real kernel.
    pub(crate) edges: [u64; 2],
    /// The read side is at end of stream (or the object failed): what a
    /// real poller flags with `EPOLLRDHUP` / `EV_EOF`.
    pub(crate) closed: bool,
}

/// The readiness edges of one watched object ([`PollTarget::edges`]).
#[derive(Clone, Copy, Debug)]
struct EdgeTrack {
    /// The fd it was last looked at through.
    fd: RawFd,
    /// Its readiness after the last syscall.
    last: Ready,
    edges: [u64; 2],
}

/// What `entry` refers to, as (kind, object id), and whether pollers take
/// it (a socket or pipe: epoll refuses regular files and directories).
fn identity(entry: Fd) -> ((u8, u64), bool) {
    match entry {
        Fd::File(file) => ((0, file.inode), false),
        Fd::Directory(inode) => ((1, inode), false),
        Fd::Socket(socket) => ((2, socket), true),
        Fd::Dgram(id) => ((5, id), true),
        Fd::PipeRead(pipe) => ((3, pipe), true),
        Fd::PipeWrite(pipe) => ((4, pipe), true),
    }
}

/// Everything behind the lock.
struct State {
    core: Arc<SimCore>,
    fs: SimFs,
    net: SimNet,
    dgram: SimDgram,
    fds: BTreeMap<RawFd, Fd>,
    /// Fds in flight (`SCM_RIGHTS` sent, not yet received), by token.
    in_flight: BTreeMap<u64, Fd>,
    next_right: u64,
    /// Unix stream connections (`SimNet` sockets): their local address and
    /// the fds passed along their bytes (see `kernel/msg.rs`).
    unix_conns: BTreeMap<SocketId, msg::UnixConn>,
    /// Crash points being recorded (crash exploration only).
    crash_log: Option<CrashLog>,
    /// Per fd number: how often it came to name a new object (installed,
    /// or turned into a connection in place), for `Kernel::fd_epoch`.
    fd_epochs: BTreeMap<RawFd, u32>,
    /// Readiness edges of what the simulated pollers look at, by identity.
    edges: BTreeMap<(u8, u64), EdgeTrack>,
    /// The running call drew an `EAGAIN` or a short transfer: a fault that
    /// stands for data (or room) arriving a moment later, which an edge
    /// registration then reports.
    faulted_late: Cell<bool>,
}

impl State {
    /// After a syscall: count every direction of a watched object that
    /// became ready; forget objects whose fd is gone or names another.
    /// After an injected `EAGAIN` or short transfer, every ready direction
    /// counts (the "late" data or room arrives now; extra events for the
    /// others are spurious, which the poller contract allows).
    fn note_edges(&mut self) {
        let late = self.faulted_late.take();
        if self.edges.is_empty() {
            return;
        }
        let mut edges = std::mem::take(&mut self.edges);
        edges.retain(|&id, track| {
            match self.entry(track.fd) {
                Ok(entry) if identity(entry).0 == id => {}
                _ => return false,
            }
            let now = self.readiness(track.fd);
            let rose = |now: bool, last: bool| u64::from(now && (late || !last));
            track.edges[0] += rose(now.readable, track.last.readable);
            track.edges[1] += rose(now.writable, track.last.writable);
            track.last = now;
            true
        });
        self.edges = edges;
    }

    /// Both directions' readiness of `fd` (a closed fd counts as ready).
    fn readiness(&self, fd: RawFd) -> Ready {
        let ready = |interest| self.wait_ready(fd, interest).unwrap_or(true);
        Ready {
            readable: ready(Interest::Readable),
            writable: ready(Interest::Writable),
        }
    }
}

impl State {
    /// A durability call is about to run: when recording, snapshot the
    /// file system as a crash point.
    fn crash_point(&mut self, label: impl FnOnce() -> String) {
        if let Some(log) = &mut self.crash_log {
            log.point(label(), &self.fs);
        }
    }
}

/// The simulated kernel: every seam call runs against an in-memory file
/// system, loopback sockets and pipes, with the faults of its
/// [`SimCore`]'s options (see the [module docs](super) for the fault model).
///
/// ```
/// use iokernel::sim::{SimCore, SimKernel, SimOptions};
/// use iokernel::sys::{Kernel, OpenFlags};
/// use std::sync::Arc;
///
/// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
/// let flags = OpenFlags::WRONLY | OpenFlags::CREAT;
/// let fd = kernel.open(c"/log", flags, 0o644).unwrap();
/// assert_eq!(kernel.write(fd, b"line\n"), Ok(5));
/// kernel.fsync(fd).unwrap();
/// kernel.close(fd).unwrap();
/// kernel.crash();
/// // The data was synced but the directory was not: the name is gone.
/// assert!(!kernel.exists("/log"));
/// ```
pub struct SimKernel {
    core: Arc<SimCore>,
    state: Mutex<State>,
    /// This machine's fd table ([`Kernel::fd_table_id`]), unique per process.
    fd_table_id: u64,
}

/// Ids of simulated fd tables (0 is the real process's).
static NEXT_FD_TABLE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for SimKernel {
    fn drop(&mut self) {
        // What cancelled ops left for this machine's fds goes with it.
        crate::sys::leftover::forget_table(self.fd_table_id);
    }
}

impl SimKernel {
    /// A machine with an empty file system (just `/`) and no fds.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(3))));
    /// assert_eq!(kernel.open_fds(), 0);
    /// ```
    pub fn new(core: Arc<SimCore>) -> SimKernel {
        let state = State {
            core: Arc::clone(&core),
            fs: SimFs::new(core.options()),
            net: SimNet::new(),
            dgram: SimDgram::new(),
            fds: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_right: 1,
            unix_conns: BTreeMap::new(),
            crash_log: None,
            fd_epochs: BTreeMap::new(),
            edges: BTreeMap::new(),
            faulted_late: Cell::new(false),
        };
        SimKernel {
            core,
            state: Mutex::new(state),
            fd_table_id: NEXT_FD_TABLE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The run's shared state (options, random stream, trace, counters).
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(5))));
    /// assert_eq!(kernel.core().options().seed, 5);
    /// ```
    pub fn core(&self) -> &Arc<SimCore> {
        &self.core
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Single-threaded use; a panic mid-call is already a failed run.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Power loss: every fd, socket and pipe is gone and the file system
    /// reverts to what was durable (see the [module docs](super)).
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use iokernel::sys::{Kernel, OpenFlags};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// kernel.write_file_durable("/data", b"v1").unwrap();
    /// let fd = kernel.open(c"/data", OpenFlags::WRONLY, 0).unwrap();
    /// kernel.write(fd, b"v2").unwrap(); // never fsynced
    /// kernel.crash();
    /// assert_eq!(kernel.open_fds(), 0);
    /// assert_eq!(kernel.read_file("/data").unwrap(), b"v1");
    /// ```
    pub fn crash(&self) {
        let mut state = self.lock();
        state.fds.clear();
        state.net.reset_all();
        state.dgram.reset_all();
        state.in_flight.clear();
        state.unix_conns.clear();
        state.fs.crash(&self.core);
        self.core.trace(b"crash");
    }

    /// A machine whose file system is `fs` (a recovered crash state).
    pub(crate) fn with_fs(core: Arc<SimCore>, fs: SimFs) -> SimKernel {
        let kernel = SimKernel::new(core);
        kernel.lock().fs = fs;
        kernel
    }

    /// From now on, snapshot the file system just before every fsync,
    /// fdatasync and rename (crash exploration).
    pub(crate) fn record_crash_points(&self) {
        self.lock().crash_log = Some(CrashLog::default());
    }

    /// Stop recording: the crash points so far plus one for the present
    /// moment, labelled `label`.
    pub(crate) fn take_crash_points(&self, label: &str) -> Vec<CrashPoint> {
        let mut state = self.lock();
        let Some(mut log) = state.crash_log.take() else {
            return Vec::new();
        };
        log.point(label.to_string(), &state.fs);
        log.points
    }

    /// Note that the workload reached `label` (say, "finish returned Ok").
    /// Under [`explore_crashes`](crate::sim::explore_crashes) every crash
    /// state explored from a later moment carries the mark
    /// ([`CrashState::marked`](crate::sim::CrashState::marked)), so an
    /// invariant can demand more once a promise was made. Outside an
    /// exploration it does nothing.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// kernel.crash_mark("finished"); // not exploring: no effect
    /// ```
    pub fn crash_mark(&self, label: &str) {
        if let Some(log) = &mut self.lock().crash_log {
            log.marks.push(label.to_string());
        }
    }

    /// How many fds are open (to check a workload closes what it opens).
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use iokernel::sys::Kernel;
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// let (rd, wr) = kernel.pipe().unwrap();
    /// assert_eq!((rd, wr, kernel.open_fds()), (3, 4, 2));
    /// ```
    pub fn open_fds(&self) -> usize {
        self.lock().fds.len()
    }

    /// The content of the regular file at `path` (relative paths start at
    /// `/`), without faults or trace.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// assert_eq!(kernel.read_file("/missing"), None);
    /// ```
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        self.lock()
            .fs
            .read_file(path.as_ref().as_os_str().as_bytes())
    }

    /// Create or replace the file at `path` with `bytes`, creating parent
    /// directories; the data and every name on the path are durable at once.
    /// No faults, no trace, no capacity check (for setting up a run).
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// kernel.write_file_durable("/in/data.json", b"{}").unwrap();
    /// kernel.crash();
    /// assert_eq!(kernel.read_file("/in/data.json").unwrap(), b"{}");
    /// ```
    pub fn write_file_durable(&self, path: impl AsRef<Path>, bytes: &[u8]) -> SysResult<()> {
        let path = path.as_ref().as_os_str().as_bytes();
        self.lock().fs.write_file_durable(path, bytes)
    }

    /// The value of extended attribute `name` of `path`, without faults or
    /// trace; `None` when the path or the attribute is missing.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// kernel.write_file_durable("/f", b"").unwrap();
    /// assert_eq!(kernel.xattr("/f", "user.k"), None);
    /// ```
    pub fn xattr(&self, path: impl AsRef<Path>, name: &str) -> Option<Vec<u8>> {
        let path = path.as_ref().as_os_str().as_bytes();
        self.lock().fs.read_xattr(path, name.as_bytes())
    }

    /// True when `path` names a file or directory.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// assert!(kernel.exists("/"));
    /// ```
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.lock().fs.exists(path.as_ref().as_os_str().as_bytes())
    }

    /// The names in directory `path`, sorted; `None` if it is not a directory.
    ///
    /// ```
    /// use iokernel::sim::{SimCore, SimKernel, SimOptions};
    /// use std::sync::Arc;
    /// let kernel = SimKernel::new(Arc::new(SimCore::new(SimOptions::new(1))));
    /// kernel.write_file_durable("/out/b", b"").unwrap();
    /// kernel.write_file_durable("/out/a", b"").unwrap();
    /// assert_eq!(kernel.list_dir("/out").unwrap(), ["a", "b"]);
    /// ```
    pub fn list_dir(&self, path: impl AsRef<Path>) -> Option<Vec<String>> {
        self.lock()
            .fs
            .list_dir(path.as_ref().as_os_str().as_bytes())
    }

    /// What `fd` refers to and how ready it is, for the simulated pollers:
    /// no syscall is counted or traced and no fault is drawn. `EBADF` for a
    /// closed fd.
    pub(crate) fn poll_target(&self, fd: RawFd) -> SysResult<PollTarget> {
        let mut state = self.lock();
        let (identity, stream) = identity(state.entry(fd)?);
        let ready = state.readiness(fd);
        let closed = state.hung_up(fd);
        let track = state.edges.entry(identity).or_insert(EdgeTrack {
            fd,
            last: ready,
            edges: [0, 0],
        });
        track.fd = fd;
        Ok(PollTarget {
            identity,
            stream,
            ready,
            edges: track.edges,
            closed,
        })
    }

    /// Whether `fd` is ready for `interest` (a closed fd, an error or a
    /// hang-up count as ready: the next call reports them), for the
    /// offload's gated jobs: no syscall is counted or traced, no fault is
    /// drawn and no poller edge is recorded.
    pub(crate) fn is_ready(&self, fd: RawFd, interest: Interest) -> bool {
        self.lock().wait_ready(fd, interest).unwrap_or(true)
    }

    /// Run one syscall: count it, run `op` under the lock, trace the result.
    fn call<A: Debug, T: Debug>(
        &self,
        name: &str,
        args: A,
        op: impl FnOnce(&mut State) -> SysResult<T>,
    ) -> SysResult<T> {
        self.core.count(|s| s.syscalls += 1);
        let mut state = self.lock();
        let result = op(&mut state);
        state.note_edges();
        drop(state);
        self.core
            .trace(format!("{name} {args:?} -> {result:?}").as_bytes());
        result
    }
}

/// `off` as a file offset; above `i64::MAX` it is `EINVAL`, as in the real kernel layer.
fn file_offset(off: u64) -> SysResult<u64> {
    if off > MAX_FILE_BYTES {
        return Err(Errno::EINVAL);
    }
    Ok(off)
}

/// `rw_verify_area`: a transfer may not run past the largest offset.
fn verify_range(offset: u64, len: usize) -> SysResult<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_FILE_BYTES => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

// ---- shared steps: fds, faults, short transfers ----

impl State {
    fn entry(&self, fd: RawFd) -> SysResult<Fd> {
        self.fds.get(&fd).copied().ok_or(Errno::EBADF)
    }

    fn socket_of(&self, fd: RawFd) -> SysResult<SocketId> {
        match self.entry(fd)? {
            Fd::Socket(s) => Ok(s),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    fn set_offset(&mut self, fd: RawFd, offset: u64) {
        if let Some(Fd::File(file)) = self.fds.get_mut(&fd) {
            file.offset = offset;
        }
    }

    /// `EMFILE` unless `n` more fds fit.
    fn check_fd_room(&self, n: usize) -> SysResult<()> {
        if self.fds.len() + n > (FD_LIMIT - FIRST_FD) as usize {
            return Err(Errno::EMFILE);
        }
        Ok(())
    }

    /// Install `entry` at the lowest free fd.
    fn install(&mut self, entry: Fd) -> SysResult<RawFd> {
        let mut fd = FIRST_FD;
        for &used in self.fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        if fd >= FD_LIMIT {
            return Err(Errno::EMFILE);
        }
        match entry {
            Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) => self.fs.open_ref(inode),
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) | Fd::Dgram(_) => {}
        }
        self.fds.insert(fd, entry);
        self.bump_fd_epoch(fd);
        Ok(fd)
    }

    /// `fd`'s number names a new object from now on.
    fn bump_fd_epoch(&mut self, fd: RawFd) {
        let epoch = self.fd_epochs.entry(fd).or_default();
        *epoch = epoch.wrapping_add(1);
    }

    fn fd_epoch(&self, fd: RawFd) -> u32 {
        self.fd_epochs.get(&fd).copied().unwrap_or(0)
    }

    /// Draw the injected fault of a call that would succeed.
    fn inject(&self, class: OpClass) -> SysResult<()> {
        for _ in 0..EINTR_RETRIES_MAX {
            match self.core.draw_fault(class) {
                None => return Ok(()),
                Some(Errno::EINTR) => self.core.count(|s| s.eintr_retried += 1),
                Some(errno) => {
                    if errno == Errno::EAGAIN {
                        self.faulted_late.set(true);
                    }
                    return Err(errno);
                }
            }
        }
        Ok(())
    }

    /// How many of `n` available bytes a read moves.
    fn short_read(&self, n: usize) -> usize {
        let moved = self.core.draw_io_len(n);
        if moved < n {
            self.core.count(|s| s.short_reads += 1);
            self.faulted_late.set(true);
        }
        moved
    }

    /// How many of `n` bytes a write moves.
    fn short_write(&self, n: usize) -> usize {
        let moved = self.core.draw_io_len(n);
        if moved < n {
            self.core.count(|s| s.short_writes += 1);
            self.faulted_late.set(true);
        }
        moved
    }

    fn close(&mut self, fd: RawFd) -> SysResult<()> {
        let entry = self.fds.remove(&fd).ok_or(Errno::EBADF)?;
        self.release(entry);
        Ok(())
    }

    /// Drop one reference to what `entry` names: a file's open count, or
    /// the socket or pipe end once no fd and no message in flight names it
    /// any more (fds passed with `SCM_RIGHTS` share it).
    fn release(&mut self, entry: Fd) {
        if let Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) = entry {
            self.fs.close_ref(inode);
            return;
        }
        let same = |other: &Fd| msg::same_object(other, &entry);
        if self.fds.values().any(same) || self.in_flight.values().any(same) {
            return;
        }
        match entry {
            Fd::File(_) | Fd::Directory(_) => {}
            Fd::Socket(s) => {
                let conn = self.unix_conns.remove(&s).map(msg::UnixConn::into_parts);
                self.net.close_socket(s);
                if let Some((peer, rights)) = conn {
                    if self.unix_conns.contains_key(&peer) {
                        self.net.unix_peer_closed(peer);
                    }
                    self.drop_rights(rights);
                }
            }
            Fd::PipeRead(p) => self.net.close_pipe_end(p, false),
            Fd::PipeWrite(p) => self.net.close_pipe_end(p, true),
            Fd::Dgram(d) => {
                let (rights, pending) = self.dgram.close(d);
                for s in pending {
                    self.unix_conns.remove(&s);
                    self.net.close_socket(s);
                }
                self.drop_rights(rights);
            }
        }
    }
}

mod dispatch;
mod file;
mod msg;
mod path;
mod stream;
#[cfg(test)]
mod tests;
