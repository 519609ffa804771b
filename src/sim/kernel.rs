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
use super::fs::{InodeId, Last, SimFs, LUSTRE_LOV, MAX_FILE_BYTES, ROOT, XATTR_SIZE_MAX};
use super::net::{PipeId, SimNet, SocketId};
use super::options::OpClass;
use crate::sys::{
    Advice, Errno, FileStat, FileType, FsStat, Interest, Kernel, MsgFlags, OpenFlags, Ready,
    Shutdown, SockOpt, SockType, SysResult, Whence,
};
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
const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
/// `FALLOC_FL_PUNCH_HOLE`.
const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE;
/// The `FALLOC_FL_*` bits Linux accepts at all (others: `EOPNOTSUPP` first).
const FALLOC_LINUX_MODES: i32 = libc::FALLOC_FL_KEEP_SIZE
    | libc::FALLOC_FL_PUNCH_HOLE
    | libc::FALLOC_FL_COLLAPSE_RANGE
    | libc::FALLOC_FL_ZERO_RANGE
    | libc::FALLOC_FL_INSERT_RANGE
    | libc::FALLOC_FL_UNSHARE_RANGE;
/// `XATTR_CREATE`.
const XATTR_CREATE: i32 = 1;
/// `XATTR_REPLACE`.
const XATTR_REPLACE: i32 = 2;
/// `SOCKFS_MAGIC`.
const SOCKFS_MAGIC: i64 = 0x534F_434B;
/// `PIPEFS_MAGIC`.
const PIPEFS_MAGIC: i64 = 0x5049_5045;
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
}

impl Fd {
    /// Open with `FMODE_READ`.
    fn readable(self) -> bool {
        match self {
            Fd::File(f) => f.readable,
            Fd::PipeWrite(_) => false,
            Fd::Directory(_) | Fd::Socket(_) | Fd::PipeRead(_) => true,
        }
    }

    /// Open with `FMODE_WRITE`.
    fn writable(self) -> bool {
        match self {
            Fd::File(f) => f.writable,
            Fd::Directory(_) | Fd::PipeRead(_) => false,
            Fd::Socket(_) | Fd::PipeWrite(_) => true,
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
}

/// Everything behind the lock.
struct State {
    core: Arc<SimCore>,
    fs: SimFs,
    net: SimNet,
    fds: BTreeMap<RawFd, Fd>,
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
            fds: BTreeMap::new(),
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
        state.fs.crash(&self.core);
        self.core.trace(b"crash");
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
        let state = self.lock();
        let entry = state.entry(fd)?;
        let readiness = |interest| state.wait_ready(fd, interest).unwrap_or(true);
        let ready = Ready {
            readable: readiness(Interest::Readable),
            writable: readiness(Interest::Writable),
        };
        let (kind, id, stream) = match entry {
            Fd::File(file) => (0, file.inode, false),
            Fd::Directory(inode) => (1, inode, false),
            Fd::Socket(socket) => (2, socket, true),
            Fd::PipeRead(pipe) => (3, pipe, true),
            Fd::PipeWrite(pipe) => (4, pipe, true),
        };
        Ok(PollTarget {
            identity: (kind, id),
            stream,
            ready,
        })
    }

    /// Run one syscall: count it, run `op` under the lock, trace the result.
    fn call<A: Debug, T: Debug>(
        &self,
        name: &str,
        args: A,
        op: impl FnOnce(&mut State) -> SysResult<T>,
    ) -> SysResult<T> {
        self.core.count(|s| s.syscalls += 1);
        let result = op(&mut self.lock());
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
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => {}
        }
        self.fds.insert(fd, entry);
        Ok(fd)
    }

    /// Draw the injected fault of a call that would succeed.
    fn inject(&self, class: OpClass) -> SysResult<()> {
        for _ in 0..EINTR_RETRIES_MAX {
            match self.core.draw_fault(class) {
                None => return Ok(()),
                Some(Errno::EINTR) => self.core.count(|s| s.eintr_retried += 1),
                Some(errno) => return Err(errno),
            }
        }
        Ok(())
    }

    /// How many of `n` available bytes a read moves.
    fn short_read(&self, n: usize) -> usize {
        let moved = self.core.draw_io_len(n);
        if moved < n {
            self.core.count(|s| s.short_reads += 1);
        }
        moved
    }

    /// How many of `n` bytes a write moves.
    fn short_write(&self, n: usize) -> usize {
        let moved = self.core.draw_io_len(n);
        if moved < n {
            self.core.count(|s| s.short_writes += 1);
        }
        moved
    }

    fn close(&mut self, fd: RawFd) -> SysResult<()> {
        match self.fds.remove(&fd).ok_or(Errno::EBADF)? {
            Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) => self.fs.close_ref(inode),
            Fd::Socket(s) => self.net.close_socket(s),
            Fd::PipeRead(p) => self.net.close_pipe_end(p, false),
            Fd::PipeWrite(p) => self.net.close_pipe_end(p, true),
        }
        Ok(())
    }
}

// ---- files: read, write, seek, sync, size, stat ----

impl State {
    /// `read`/`pread` (`at` = `Some(offset)`) on any fd.
    fn read_fd(&mut self, fd: RawFd, buf: &mut [u8], at: Option<u64>) -> SysResult<usize> {
        let entry = self.entry(fd)?;
        if at.is_some() && matches!(entry, Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_)) {
            return Err(Errno::ESPIPE);
        }
        match entry {
            Fd::File(file) => self.read_file_fd(fd, file, buf, at),
            Fd::Directory(_) => Err(Errno::EISDIR),
            Fd::Socket(s) => self.recv_socket(s, buf, false),
            Fd::PipeRead(p) => self.read_pipe(p, buf),
            Fd::PipeWrite(_) => Err(Errno::EBADF),
        }
    }

    fn read_file_fd(
        &mut self,
        fd: RawFd,
        file: OpenFile,
        buf: &mut [u8],
        at: Option<u64>,
    ) -> SysResult<usize> {
        if !file.readable {
            return Err(Errno::EBADF);
        }
        let offset = at.unwrap_or(file.offset);
        let len = buf.len().min(MAX_RW_COUNT);
        verify_range(offset, len)?;
        let available = self.fs.readable_len(file.inode, offset, len);
        self.inject(OpClass::Read)?;
        let n = self.short_read(available);
        self.fs.read(file.inode, offset, &mut buf[..n]);
        if at.is_none() {
            self.set_offset(fd, offset + n as u64);
        }
        Ok(n)
    }

    /// `write`/`pwrite` (`at` = `Some(offset)`) on any fd.
    fn write_fd(&mut self, fd: RawFd, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let entry = self.entry(fd)?;
        if at.is_some() && matches!(entry, Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_)) {
            return Err(Errno::ESPIPE);
        }
        match entry {
            Fd::File(file) => self.write_file_fd(fd, file, data, at, OpClass::Write),
            Fd::Socket(s) => self.send_socket(s, data),
            Fd::PipeWrite(p) => self.write_pipe(p, data),
            Fd::Directory(_) | Fd::PipeRead(_) => Err(Errno::EBADF),
        }
    }

    /// Write to a regular file at `at` (or the fd offset, which then moves);
    /// with `O_APPEND` always at the end, as Linux does even for `pwrite`.
    fn write_file_fd(
        &mut self,
        fd: RawFd,
        file: OpenFile,
        data: &[u8],
        at: Option<u64>,
        class: OpClass,
    ) -> SysResult<usize> {
        if !file.writable {
            return Err(Errno::EBADF);
        }
        let data = &data[..data.len().min(MAX_RW_COUNT)];
        let offset = match (file.append, at) {
            (true, _) => self.fs.size(file.inode),
            (false, Some(offset)) => offset,
            (false, None) => file.offset,
        };
        verify_range(offset, data.len())?;
        let fit = self.fs.write_fit(file.inode, offset, data.len());
        if fit == 0 && !data.is_empty() {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(class)?;
        let n = self.short_write(fit);
        self.fs.write(file.inode, offset, &data[..n]);
        if at.is_none() {
            self.set_offset(fd, offset + n as u64);
        }
        Ok(n)
    }

    /// `readv`/`preadv`: one read into a bounce buffer, then scattered.
    fn readv_fd(
        &mut self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        at: Option<u64>,
    ) -> SysResult<usize> {
        let count = bufs.len().min(IOV_MAX);
        let bufs = &mut bufs[..count];
        let total = bufs
            .iter()
            .map(|b| b.len())
            .sum::<usize>()
            .min(MAX_RW_COUNT);
        let mut bounce = vec![0; total];
        let n = self.read_fd(fd, &mut bounce, at)?;
        let mut rest = &bounce[..n];
        for buf in bufs.iter_mut() {
            let k = rest.len().min(buf.len());
            buf[..k].copy_from_slice(&rest[..k]);
            rest = &rest[k..];
        }
        Ok(n)
    }

    /// `writev`/`pwritev`: the buffers gathered, then one write.
    fn writev_fd(&mut self, fd: RawFd, bufs: &[IoSlice<'_>], at: Option<u64>) -> SysResult<usize> {
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        let mut data = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        self.write_fd(fd, &data, at)
    }

    fn lseek(&mut self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64> {
        let (file, base) = match self.entry(fd)? {
            Fd::File(file) => {
                let base = match whence {
                    Whence::Set => 0,
                    Whence::Current => file.offset,
                    Whence::End => self.fs.size(file.inode),
                };
                (Some(file), base)
            }
            // Like ext4's hashed directories, whose end is the largest
            // offset; the position is not kept (there is no getdents).
            Fd::Directory(_) if whence == Whence::End => (None, MAX_FILE_BYTES),
            Fd::Directory(_) => (None, 0),
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => return Err(Errno::ESPIPE),
        };
        let target = (base as i64)
            .checked_add(offset)
            .filter(|t| *t >= 0)
            .ok_or(Errno::EINVAL)? as u64;
        self.inject(OpClass::Metadata)?;
        if file.is_some() {
            self.set_offset(fd, target);
        }
        Ok(target)
    }

    /// `fsync`/`fdatasync`. An injected failure on a file drops its dirty
    /// data (it is never made durable, even by a later successful sync).
    fn fsync(&mut self, fd: RawFd) -> SysResult<()> {
        match self.entry(fd)? {
            Fd::File(file) => match self.inject(OpClass::Sync) {
                Ok(()) => {
                    self.fs.sync_file(file.inode);
                    Ok(())
                }
                Err(errno) => {
                    if self.fs.drop_dirty(file.inode) {
                        self.core.count(|s| s.fsync_dropped_data += 1);
                    }
                    Err(errno)
                }
            },
            Fd::Directory(dir) => {
                self.inject(OpClass::Sync)?;
                self.fs.sync_dir(dir);
                Ok(())
            }
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => Err(Errno::EINVAL),
        }
    }

    fn ftruncate(&mut self, fd: RawFd, len_bytes: u64) -> SysResult<()> {
        let file = match self.entry(fd)? {
            Fd::File(file) if file.writable => file,
            _ => return Err(Errno::EINVAL),
        };
        self.inject(OpClass::Write)?;
        self.fs.truncate(file.inode, len_bytes);
        Ok(())
    }

    /// The regular file `fallocate` may work on, with Linux's checks in order.
    fn fallocate_target(&self, fd: RawFd, mode: i32, offset: u64, len: u64) -> SysResult<OpenFile> {
        let entry = self.entry(fd)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let punch = mode & PUNCH_HOLE != 0;
        if mode & !FALLOC_LINUX_MODES != 0 || (punch && mode & KEEP_SIZE == 0) {
            return Err(Errno::EOPNOTSUPP);
        }
        if !entry.writable() {
            return Err(Errno::EBADF);
        }
        let file = match entry {
            Fd::File(file) => file,
            Fd::PipeRead(_) | Fd::PipeWrite(_) => return Err(Errno::ESPIPE),
            Fd::Directory(_) => return Err(Errno::EISDIR),
            Fd::Socket(_) => return Err(Errno(libc::ENODEV)),
        };
        if offset + len > MAX_FILE_BYTES {
            return Err(Errno::EFBIG);
        }
        // Modes Linux knows but the sim does not model fail as an
        // unsupporting file system's would.
        if ![0, KEEP_SIZE, PUNCH_HOLE | KEEP_SIZE].contains(&mode) {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(file)
    }

    fn fallocate(&mut self, fd: RawFd, mode: i32, offset: u64, len: u64) -> SysResult<()> {
        let file = self.fallocate_target(fd, mode, offset, len)?;
        let punch = mode & PUNCH_HOLE != 0;
        if !punch && !self.fs.allocate_fits(file.inode, offset, len) {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(OpClass::Write)?;
        if punch {
            self.fs.punch(file.inode, offset, len);
        } else {
            self.fs
                .allocate(file.inode, offset, len, mode & KEEP_SIZE != 0);
        }
        Ok(())
    }

    fn fstat(&self, fd: RawFd) -> SysResult<FileStat> {
        let stat = match self.entry(fd)? {
            Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) => {
                self.fs.stat(inode).ok_or(Errno::EBADF)?
            }
            Fd::Socket(s) => stream_stat(FileType::Socket, 0o777, s),
            Fd::PipeRead(p) | Fd::PipeWrite(p) => stream_stat(FileType::Fifo, 0o600, p),
        };
        self.inject(OpClass::Metadata)?;
        Ok(stat)
    }

    /// `posix_fadvise`: checked like Linux's `generic_fadvise`, then ignored
    /// (the simulated kernel has no page cache to drop or fill). It has no
    /// fault class: Linux's fadvise fails only for the reasons checked here.
    fn fadvise(&self, fd: RawFd) -> SysResult<()> {
        match self.entry(fd)? {
            Fd::File(_) | Fd::Directory(_) => Ok(()),
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => Err(Errno::ESPIPE),
        }
    }

    fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat> {
        let stat = match self.entry(fd)? {
            Fd::File(_) | Fd::Directory(_) => self.fs.statfs(),
            Fd::Socket(_) => stream_statfs(SOCKFS_MAGIC),
            Fd::PipeRead(_) | Fd::PipeWrite(_) => stream_statfs(PIPEFS_MAGIC),
        };
        self.inject(OpClass::Metadata)?;
        Ok(stat)
    }
}

fn stream_stat(file_type: FileType, permissions: u32, id: u64) -> FileStat {
    FileStat {
        size_bytes: 0,
        file_type,
        permissions,
        block_size_bytes: STREAM_BLOCK_BYTES,
        blocks_512: 0,
        inode: id,
        device: STREAM_DEVICE,
        links: 1,
    }
}

fn stream_statfs(magic: i64) -> FsStat {
    FsStat {
        magic,
        block_size_bytes: STREAM_BLOCK_BYTES,
        blocks: 0,
        blocks_available: 0,
    }
}

// ---- paths: open, mkdir, rename, unlink, xattrs ----

/// What a checked `open` does.
enum OpenPlan {
    Existing { inode: InodeId, truncate: bool },
    Create { dir: InodeId, name: Vec<u8> },
}

impl State {
    /// The directory a relative `path` of `openat` starts from.
    fn start_dir(&self, dir_fd: RawFd, path: &[u8]) -> SysResult<InodeId> {
        if path.first() == Some(&b'/') || dir_fd == libc::AT_FDCWD {
            return Ok(ROOT);
        }
        match self.entry(dir_fd)? {
            Fd::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn open(
        &mut self,
        dir_fd: RawFd,
        path: &CStr,
        flags: OpenFlags,
        mode: u32,
    ) -> SysResult<RawFd> {
        if flags.contains(OpenFlags::CREAT) && flags.contains(OpenFlags::DIRECTORY) {
            return Err(Errno::EINVAL);
        }
        let path = path.to_bytes();
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.check_fd_room(1)?;
        let start = self.start_dir(dir_fd, path)?;
        let plan = self.plan_open(start, path, flags)?;
        self.inject(OpClass::Open)?;
        let inode = match plan {
            OpenPlan::Create { dir, name } => {
                let inode = self.fs.create_file(dir, &name, mode);
                if !flags.contains(OpenFlags::LOV_DELAY_CREATE) {
                    self.fs.instantiate_layout(inode);
                }
                inode
            }
            OpenPlan::Existing { inode, truncate } => {
                if truncate && !self.fs.is_empty_file(inode) {
                    self.fs.truncate(inode, 0);
                }
                inode
            }
        };
        if self.fs.is_dir(inode) {
            return self.install(Fd::Directory(inode));
        }
        let access = flags.access_mode();
        self.install(Fd::File(OpenFile {
            inode,
            offset: 0,
            append: flags.contains(OpenFlags::APPEND),
            readable: access == OpenFlags::RDONLY || access == OpenFlags::RDWR,
            writable: access == OpenFlags::WRONLY || access == OpenFlags::RDWR,
        }))
    }

    fn plan_open(&self, start: InodeId, path: &[u8], flags: OpenFlags) -> SysResult<OpenPlan> {
        if !flags.contains(OpenFlags::CREAT) {
            let inode = self.fs.lookup(start, path)?;
            return self.plan_open_existing(inode, flags);
        }
        let parent = self.fs.lookup_parent(start, path)?;
        let name = match parent.last {
            Last::Dots(inode) => return self.plan_open_existing(inode, flags),
            Last::Name(name) => name,
        };
        if parent.trailing_slash {
            return Err(Errno::EISDIR);
        }
        match self.fs.child(parent.dir, &name) {
            Some(inode) => self.plan_open_existing(inode, flags),
            None => {
                let (dir, name) = self.fs.plan_create(parent.dir, &name)?;
                Ok(OpenPlan::Create { dir, name })
            }
        }
    }

    fn plan_open_existing(&self, inode: InodeId, flags: OpenFlags) -> SysResult<OpenPlan> {
        let creat = flags.contains(OpenFlags::CREAT);
        if creat && flags.contains(OpenFlags::EXCL) {
            return Err(Errno::EEXIST);
        }
        let truncate = flags.contains(OpenFlags::TRUNC);
        if self.fs.is_dir(inode) {
            let writes = flags.access_mode() != OpenFlags::RDONLY || truncate;
            if creat || writes {
                return Err(Errno::EISDIR);
            }
        } else if flags.contains(OpenFlags::DIRECTORY) {
            return Err(Errno::ENOTDIR);
        }
        Ok(OpenPlan::Existing { inode, truncate })
    }

    fn mkdir(&mut self, path: &CStr, mode: u32) -> SysResult<()> {
        let (dir, name) = self.fs.plan_create(ROOT, path.to_bytes())?;
        self.inject(OpClass::Open)?;
        self.fs.mkdir(dir, &name, mode);
        Ok(())
    }

    fn rename(&mut self, from: &CStr, to: &CStr) -> SysResult<()> {
        let plan = self.fs.plan_rename(from.to_bytes(), to.to_bytes())?;
        self.inject(OpClass::Metadata)?;
        if let Some(plan) = plan {
            self.fs.rename(plan);
        }
        Ok(())
    }

    fn unlink(&mut self, path: &CStr) -> SysResult<()> {
        let plan = self.fs.plan_unlink(ROOT, path.to_bytes())?;
        self.inject(OpClass::Metadata)?;
        self.fs.unlink(plan);
        Ok(())
    }

    /// The inode an xattr call names, after Linux's name checks.
    fn xattr_target(&self, path: &CStr, name: &CStr) -> SysResult<InodeId> {
        let name = name.to_bytes();
        if name.is_empty() || name.len() > 255 {
            return Err(Errno::ERANGE);
        }
        let inode = self.fs.lookup(ROOT, path.to_bytes())?;
        self.fs.check_xattr_name(name)?;
        Ok(inode)
    }

    fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
        let inode = self.xattr_target(path, name)?;
        let value = self
            .fs
            .xattr(inode, name.to_bytes())
            .ok_or(Errno::ENODATA)?;
        if !buf.is_empty() && value.len() > buf.len() {
            return Err(Errno::ERANGE);
        }
        self.inject(OpClass::Metadata)?;
        if !buf.is_empty() {
            buf[..value.len()].copy_from_slice(value);
        }
        Ok(value.len())
    }

    fn setxattr(&mut self, path: &CStr, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno(libc::E2BIG));
        }
        let inode = self.xattr_target(path, name)?;
        let exists = self.fs.xattr(inode, name.to_bytes()).is_some();
        if exists && flags & XATTR_CREATE != 0 {
            return Err(Errno::EEXIST);
        }
        if !exists && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        self.inject(OpClass::Metadata)?;
        let name = name.to_bytes();
        if name == LUSTRE_LOV && self.fs.is_lustre() && exists {
            // Lustre cannot change an instantiated layout and, so that cp,
            // tar and rsync can copy xattrs, answers success (it drops its
            // own EEXIST): only reading the layout back tells.
            return Ok(());
        }
        self.fs.set_xattr(inode, name, value);
        Ok(())
    }
}

// ---- sockets and pipes ----

impl State {
    fn socket(&mut self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd> {
        if ty == SockType::Datagram {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        self.check_fd_room(1)?;
        self.inject(OpClass::SocketSetup)?;
        let socket = self.net.socket(like);
        self.install(Fd::Socket(socket))
    }

    fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()> {
        match (self.entry(fd)?, opt) {
            (Fd::Socket(_), _) | (_, SockOpt::NonBlocking(_)) => Ok(()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// A socket setup call: fd checks, then the fault, then `op`.
    fn setup<T>(
        &mut self,
        fd: RawFd,
        op: impl FnOnce(&mut SimNet, SocketId) -> SysResult<T>,
    ) -> SysResult<T> {
        let socket = self.socket_of(fd)?;
        self.inject(OpClass::SocketSetup)?;
        op(&mut self.net, socket)
    }

    fn accept(&mut self, fd: RawFd) -> SysResult<(RawFd, SocketAddr)> {
        let listener = self.socket_of(fd)?;
        self.check_fd_room(1)?;
        if self.net.socket_ready(listener, Interest::Readable) {
            self.inject(OpClass::SocketSetup)?;
        }
        let (socket, peer) = self.net.accept(listener)?;
        Ok((self.install(Fd::Socket(socket))?, peer))
    }

    /// Receive from a socket: peeked first, so a fault or a short count
    /// leaves the unread bytes queued.
    fn recv_socket(&mut self, socket: SocketId, buf: &mut [u8], peek: bool) -> SysResult<usize> {
        let mut queued = vec![0; buf.len()];
        let available = self.net.recv(socket, &mut queued, true)?;
        self.inject(OpClass::SocketRead)?;
        let n = self.short_read(available);
        if peek {
            buf[..n].copy_from_slice(&queued[..n]);
            return Ok(n);
        }
        self.net.recv(socket, &mut buf[..n], false)
    }

    fn send_socket(&mut self, socket: SocketId, data: &[u8]) -> SysResult<usize> {
        if !self.net.socket_ready(socket, Interest::Writable) {
            return self.net.send(socket, data);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        self.net.send(socket, &data[..n])
    }

    /// Read a pipe: ready means data or end of stream, so the read succeeds.
    fn read_pipe(&mut self, pipe: PipeId, buf: &mut [u8]) -> SysResult<usize> {
        if !self.net.pipe_ready(pipe, false, Interest::Readable) {
            return self.net.pipe_read(pipe, buf);
        }
        self.inject(OpClass::SocketRead)?;
        let n = self.short_read(buf.len());
        self.net.pipe_read(pipe, &mut buf[..n])
    }

    fn write_pipe(&mut self, pipe: PipeId, data: &[u8]) -> SysResult<usize> {
        if !self.net.pipe_ready(pipe, true, Interest::Writable) {
            return self.net.pipe_write(pipe, data);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        self.net.pipe_write(pipe, &data[..n])
    }

    fn wait_ready(&self, fd: RawFd, interest: Interest) -> SysResult<bool> {
        Ok(match self.entry(fd)? {
            Fd::File(_) | Fd::Directory(_) => true,
            Fd::Socket(s) => self.net.socket_ready(s, interest),
            Fd::PipeRead(p) => self.net.pipe_ready(p, false, interest),
            Fd::PipeWrite(p) => self.net.pipe_ready(p, true, interest),
        })
    }

    fn pipe(&mut self) -> SysResult<(RawFd, RawFd)> {
        self.check_fd_room(2)?;
        let pipe = self.net.pipe();
        let read_end = self.install(Fd::PipeRead(pipe))?;
        let write_end = self.install(Fd::PipeWrite(pipe))?;
        Ok((read_end, write_end))
    }
}

// ---- zero-copy: sendfile and splice ----

impl State {
    fn sendfile(
        &mut self,
        out_fd: RawFd,
        in_fd: RawFd,
        offset: u64,
        len: usize,
    ) -> SysResult<usize> {
        let input = self.entry(in_fd)?;
        if !input.readable() {
            return Err(Errno::EBADF);
        }
        if matches!(input, Fd::Socket(_) | Fd::PipeRead(_)) {
            return Err(Errno::ESPIPE);
        }
        let len = len
            .min(MAX_RW_COUNT)
            .min(usize::try_from(MAX_FILE_BYTES - offset).unwrap_or(usize::MAX));
        let output = self.entry(out_fd)?;
        if !output.writable() {
            return Err(Errno::EBADF);
        }
        let Fd::File(source) = input else {
            return Err(Errno::EINVAL); // a directory has no data to send
        };
        if matches!(output, Fd::File(f) if f.append) {
            return Err(Errno::EINVAL);
        }
        let mut data = vec![0; self.fs.readable_len(source.inode, offset, len)];
        if data.is_empty() {
            self.inject(OpClass::SocketWrite)?;
            return Ok(0);
        }
        self.fs.read(source.inode, offset, &mut data);
        match output {
            Fd::Socket(s) => self.send_socket(s, &data),
            Fd::PipeWrite(p) => self.write_pipe(p, &data),
            Fd::File(file) => self.write_file_fd(out_fd, file, &data, None, OpClass::SocketWrite),
            Fd::Directory(_) | Fd::PipeRead(_) => Err(Errno::EBADF),
        }
    }

    fn splice(
        &mut self,
        (fd_in, off_in): (RawFd, Option<u64>),
        (fd_out, off_out): (RawFd, Option<u64>),
        len: usize,
    ) -> SysResult<usize> {
        if len == 0 {
            return Ok(0);
        }
        let len = len.min(SPLICE_MAX);
        let (input, output) = (self.entry(fd_in)?, self.entry(fd_out)?);
        if !input.readable() || !output.writable() {
            return Err(Errno::EBADF);
        }
        match (input, output) {
            (Fd::PipeRead(from), Fd::PipeWrite(to)) => {
                if off_in.is_some() || off_out.is_some() {
                    return Err(Errno::ESPIPE);
                }
                if from == to {
                    return Err(Errno::EINVAL);
                }
                self.pump(from, Sink::Pipe(to), len)
            }
            (Fd::PipeRead(from), out) => {
                if off_in.is_some() {
                    return Err(Errno::ESPIPE);
                }
                self.splice_from_pipe(from, (fd_out, out), off_out, len)
            }
            (input, Fd::PipeWrite(to)) => {
                if off_out.is_some() {
                    return Err(Errno::ESPIPE);
                }
                self.splice_to_pipe((fd_in, input), off_in, to, len)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Splice from pipe `from` into a file or socket.
    fn splice_from_pipe(
        &mut self,
        from: PipeId,
        (fd_out, output): (RawFd, Fd),
        off_out: Option<u64>,
        len: usize,
    ) -> SysResult<usize> {
        match output {
            Fd::File(file) if file.append => Err(Errno::EINVAL),
            Fd::File(file) => self.splice_pipe_to_file(from, fd_out, file, off_out, len),
            Fd::Socket(_) if off_out.is_some() => Err(Errno::ESPIPE),
            Fd::Socket(to) => self.pump(from, Sink::Socket(to), len),
            Fd::Directory(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => Err(Errno::EINVAL),
        }
    }

    fn splice_pipe_to_file(
        &mut self,
        from: PipeId,
        fd_out: RawFd,
        file: OpenFile,
        off_out: Option<u64>,
        len: usize,
    ) -> SysResult<usize> {
        if !self.net.pipe_ready(from, false, Interest::Readable) {
            return Err(Errno::EAGAIN);
        }
        let offset = off_out.unwrap_or(file.offset);
        verify_range(offset, len)?;
        let fit = self.fs.write_fit(file.inode, offset, len);
        if fit == 0 {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(OpClass::SocketWrite)?;
        let mut data = vec![0; self.short_write(fit)];
        let n = self.net.pipe_read(from, &mut data)?;
        self.fs.write(file.inode, offset, &data[..n]);
        if off_out.is_none() {
            self.set_offset(fd_out, offset + n as u64);
        }
        Ok(n)
    }

    /// Splice from a file or socket into pipe `to`.
    fn splice_to_pipe(
        &mut self,
        (fd_in, input): (RawFd, Fd),
        off_in: Option<u64>,
        to: PipeId,
        len: usize,
    ) -> SysResult<usize> {
        let (mut data, consume) = match input {
            Fd::File(file) => {
                let offset = off_in.unwrap_or(file.offset);
                verify_range(offset, len)?;
                let mut data = vec![0; self.fs.readable_len(file.inode, offset, len)];
                self.fs.read(file.inode, offset, &mut data);
                (
                    data,
                    Consume::File(fd_in, off_in.is_none().then_some(offset)),
                )
            }
            Fd::Socket(_) if off_in.is_some() => return Err(Errno::ESPIPE),
            Fd::Socket(s) => {
                let mut data = vec![0; len];
                let n = self.net.recv(s, &mut data, true)?;
                data.truncate(n);
                (data, Consume::Socket(s))
            }
            Fd::Directory(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => return Err(Errno::EINVAL),
        };
        if !self.net.pipe_ready(to, true, Interest::Writable) {
            return Err(Errno::EAGAIN);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        let moved = if n == 0 {
            0
        } else {
            self.net.pipe_write(to, &data[..n])?
        };
        match consume {
            Consume::File(fd, Some(offset)) => self.set_offset(fd, offset + moved as u64),
            Consume::File(_, None) => {}
            Consume::Socket(s) => {
                self.net.recv(s, &mut data[..moved], false)?;
            }
        }
        Ok(moved)
    }

    /// Move up to `len` bytes from pipe `from` to `sink` one byte at a time,
    /// while both sides are ready: a pipe read cannot be undone, so no more
    /// is taken from the pipe than the sink has accepted.
    fn pump(&mut self, from: PipeId, sink: Sink, len: usize) -> SysResult<usize> {
        if !self.net.pipe_ready(from, false, Interest::Readable) || !self.sink_ready(sink) {
            return Err(Errno::EAGAIN);
        }
        if let Sink::Socket(s) = sink {
            // Report a dead connection before taking anything from the pipe.
            self.net.send(s, &[])?;
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(len);
        let mut moved = 0;
        let mut byte = [0u8; 1];
        while moved < n
            && self.net.pipe_ready(from, false, Interest::Readable)
            && self.sink_ready(sink)
        {
            if self.net.pipe_read(from, &mut byte)? == 0 {
                break;
            }
            let sent = match sink {
                Sink::Socket(s) => self.net.send(s, &byte),
                Sink::Pipe(p) => self.net.pipe_write(p, &byte),
            };
            match sent {
                Ok(_) => moved += 1,
                Err(errno) if moved == 0 => return Err(errno),
                Err(_) => break,
            }
        }
        Ok(moved)
    }

    fn sink_ready(&self, sink: Sink) -> bool {
        match sink {
            Sink::Socket(s) => self.net.socket_ready(s, Interest::Writable),
            Sink::Pipe(p) => self.net.pipe_ready(p, true, Interest::Writable),
        }
    }
}

/// Where a pipe's bytes go in [`State::pump`].
#[derive(Clone, Copy)]
enum Sink {
    Socket(SocketId),
    Pipe(PipeId),
}

/// How the source of a splice into a pipe is advanced once bytes moved.
enum Consume {
    /// A file: move the fd's offset from the given position, or (`None`) not at all.
    File(RawFd, Option<u64>),
    /// A socket: receive the bytes that were only peeked.
    Socket(SocketId),
}

impl Kernel for SimKernel {
    fn fd_table_id(&self) -> u64 {
        self.fd_table_id
    }

    fn open(&self, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        self.call("open", (path, flags.bits(), mode), |st| {
            st.open(libc::AT_FDCWD, path, flags, mode)
        })
    }

    fn openat(&self, dir_fd: RawFd, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        self.call("openat", (dir_fd, path, flags.bits(), mode), |st| {
            st.open(dir_fd, path, flags, mode)
        })
    }

    fn close(&self, fd: RawFd) -> SysResult<()> {
        self.call("close", fd, |st| st.close(fd))
    }

    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
        self.call("read", (fd, buf.len()), |st| st.read_fd(fd, buf, None))
    }

    fn write(&self, fd: RawFd, buf: &[u8]) -> SysResult<usize> {
        self.call("write", (fd, buf.len()), |st| st.write_fd(fd, buf, None))
    }

    fn pread(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.call("pread", (fd, buf.len(), offset), |st| {
            st.read_fd(fd, buf, Some(file_offset(offset)?))
        })
    }

    fn pwrite(&self, fd: RawFd, buf: &[u8], offset: u64) -> SysResult<usize> {
        self.call("pwrite", (fd, buf.len(), offset), |st| {
            st.write_fd(fd, buf, Some(file_offset(offset)?))
        })
    }

    fn readv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        self.call("readv", (fd, bufs.len()), |st| st.readv_fd(fd, bufs, None))
    }

    fn writev(&self, fd: RawFd, bufs: &[IoSlice<'_>]) -> SysResult<usize> {
        self.call("writev", (fd, bufs.len()), |st| {
            st.writev_fd(fd, bufs, None)
        })
    }

    fn preadv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>], offset: u64) -> SysResult<usize> {
        self.call("preadv", (fd, bufs.len(), offset), |st| {
            st.readv_fd(fd, bufs, Some(file_offset(offset)?))
        })
    }

    fn pwritev(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        self.call("pwritev", (fd, bufs.len(), offset), |st| {
            st.writev_fd(fd, bufs, Some(file_offset(offset)?))
        })
    }

    fn lseek(&self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64> {
        self.call("lseek", (fd, offset, whence), |st| {
            st.lseek(fd, offset, whence)
        })
    }

    fn fsync(&self, fd: RawFd) -> SysResult<()> {
        self.call("fsync", fd, |st| st.fsync(fd))
    }

    fn fdatasync(&self, fd: RawFd) -> SysResult<()> {
        self.call("fdatasync", fd, |st| st.fsync(fd))
    }

    fn ftruncate(&self, fd: RawFd, len_bytes: u64) -> SysResult<()> {
        self.call("ftruncate", (fd, len_bytes), |st| {
            st.ftruncate(fd, file_offset(len_bytes)?)
        })
    }

    fn fallocate(&self, fd: RawFd, mode: i32, offset: u64, len_bytes: u64) -> SysResult<()> {
        self.call("fallocate", (fd, mode, offset, len_bytes), |st| {
            st.fallocate(fd, mode, file_offset(offset)?, file_offset(len_bytes)?)
        })
    }

    fn fstat(&self, fd: RawFd) -> SysResult<FileStat> {
        self.call("fstat", fd, |st| st.fstat(fd))
    }

    fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat> {
        self.call("fstatfs", fd, |st| st.fstatfs(fd))
    }

    fn fadvise(&self, fd: RawFd, offset: u64, len_bytes: u64, advice: Advice) -> SysResult<()> {
        self.call("fadvise", (fd, offset, len_bytes, advice), |st| {
            file_offset(offset)?;
            file_offset(len_bytes)?;
            st.fadvise(fd)
        })
    }

    fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
        self.call("getxattr", (path, name, buf.len()), |st| {
            st.getxattr(path, name, buf)
        })
    }

    fn setxattr(&self, path: &CStr, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
        self.call("setxattr", (path, name, value.len(), flags), |st| {
            st.setxattr(path, name, value, flags)
        })
    }

    fn rename(&self, from: &CStr, to: &CStr) -> SysResult<()> {
        self.call("rename", (from, to), |st| st.rename(from, to))
    }

    fn unlink(&self, path: &CStr) -> SysResult<()> {
        self.call("unlink", path, |st| st.unlink(path))
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
        self.call("mkdir", (path, mode), |st| st.mkdir(path, mode))
    }

    fn socket(&self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd> {
        self.call("socket", (like, ty), |st| st.socket(like, ty))
    }

    fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()> {
        self.call("set_option", (fd, opt), |st| st.set_option(fd, opt))
    }

    fn bind(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        self.call("bind", (fd, addr), |st| {
            st.setup(fd, |net, s| net.bind(s, addr))
        })
    }

    fn listen(&self, fd: RawFd, backlog: i32) -> SysResult<()> {
        self.call("listen", (fd, backlog), |st| {
            st.setup(fd, |net, s| net.listen(s, backlog))
        })
    }

    fn accept(&self, fd: RawFd, nonblocking: bool) -> SysResult<(RawFd, SocketAddr)> {
        // Sim sockets never block, so `nonblocking` changes nothing.
        self.call("accept", (fd, nonblocking), |st| st.accept(fd))
    }

    fn connect(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        self.call("connect", (fd, addr), |st| {
            st.setup(fd, |net, s| net.connect(s, addr))
        })
    }

    fn local_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        self.call("local_addr", fd, |st| st.net.local_addr(st.socket_of(fd)?))
    }

    fn peer_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        self.call("peer_addr", fd, |st| st.net.peer_addr(st.socket_of(fd)?))
    }

    fn take_socket_error(&self, fd: RawFd) -> SysResult<Option<Errno>> {
        self.call("take_socket_error", fd, |st| st.socket_of(fd).map(|_| None))
    }

    fn recv(&self, fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        self.call("recv", (fd, buf.len(), flags.0), |st| {
            let socket = st.socket_of(fd)?;
            let peek = flags.0 & MsgFlags::PEEK.0 != 0;
            st.recv_socket(socket, buf, peek)
        })
    }

    fn send(&self, fd: RawFd, buf: &[u8], flags: MsgFlags) -> SysResult<usize> {
        self.call("send", (fd, buf.len(), flags.0), |st| {
            let socket = st.socket_of(fd)?;
            st.send_socket(socket, buf)
        })
    }

    fn shutdown(&self, fd: RawFd, how: Shutdown) -> SysResult<()> {
        self.call("shutdown", (fd, how), |st| {
            st.setup(fd, |net, s| net.shutdown(s, how))
        })
    }

    fn sendfile(
        &self,
        out_fd: RawFd,
        in_fd: RawFd,
        in_offset: u64,
        len_bytes: usize,
    ) -> SysResult<usize> {
        self.call("sendfile", (out_fd, in_fd, in_offset, len_bytes), |st| {
            st.sendfile(out_fd, in_fd, file_offset(in_offset)?, len_bytes)
        })
    }

    fn wait_ready(&self, fd: RawFd, interest: Interest, timeout_ms: i32) -> SysResult<bool> {
        // Never blocks: the sim has nothing else that could make `fd` ready.
        self.call("wait_ready", (fd, interest, timeout_ms), |st| {
            st.wait_ready(fd, interest)
        })
    }

    fn pipe(&self) -> SysResult<(RawFd, RawFd)> {
        self.call("pipe", (), State::pipe)
    }

    fn splice(
        &self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len_bytes: usize,
    ) -> SysResult<usize> {
        let args = (fd_in, off_in, fd_out, off_out, len_bytes);
        self.call("splice", args, |st| {
            let off_in = off_in.map(file_offset).transpose()?;
            let off_out = off_out.map(file_offset).transpose()?;
            st.splice((fd_in, off_in), (fd_out, off_out), len_bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{ClassFaults, CrashModel, SimOptions};
    use std::ffi::CString;

    const BS: u64 = 4096;
    const RW_CREATE: OpenFlags = OpenFlags(libc::O_RDWR | libc::O_CREAT);

    fn kernel_with(options: SimOptions) -> SimKernel {
        options.validate().expect("valid options");
        SimKernel::new(Arc::new(SimCore::new(options)))
    }

    fn kernel() -> SimKernel {
        kernel_with(SimOptions::new(1))
    }

    /// Options with every call of `class` failing with `errno` (or with
    /// probability `p`).
    fn faulty(seed: u64, classes: &[OpClass], errnos: &[Errno], p: f64) -> SimOptions {
        let mut o = SimOptions::new(seed);
        for class in classes {
            o.faults[class.index()] = ClassFaults {
                probability: p,
                errnos: errnos.to_vec(),
            };
        }
        o
    }

    fn open(k: &SimKernel, path: &CStr, flags: OpenFlags) -> RawFd {
        k.open(path, flags, 0o644).expect("open")
    }

    fn close_all(k: &SimKernel, fds: &[RawFd]) {
        for &fd in fds {
            k.close(fd).expect("close");
        }
    }

    // ---- the real kernel's tests, run on the sim (parity) ----

    #[test]
    fn open_missing_file_is_enoent() {
        assert_eq!(
            kernel().open(c"/missing", OpenFlags::RDONLY, 0),
            Err(Errno::ENOENT)
        );
    }

    #[test]
    fn write_then_pread_roundtrip_keeps_the_offset() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE | OpenFlags::TRUNC);
        assert_eq!(k.write(fd, b"hello world"), Ok(11));
        let mut buf = [0u8; 5];
        assert_eq!(k.pread(fd, &mut buf, 6), Ok(5));
        assert_eq!(&buf, b"world");
        assert_eq!(k.pwrite(fd, b"J", 0), Ok(1));
        assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(11));
        let mut tail = [9u8; 8];
        assert_eq!(k.pread(fd, &mut tail, 8), Ok(3));
        assert_eq!(&tail, b"rld\x09\x09\x09\x09\x09");
        assert_eq!(k.pread(fd, &mut buf, 0), Ok(5));
        assert_eq!(&buf, b"Jello");
        k.close(fd).expect("close");
    }

    #[test]
    fn pwritev_preadv_across_three_buffers() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        let out = [
            IoSlice::new(b"abc"),
            IoSlice::new(b"defg"),
            IoSlice::new(b"hi"),
        ];
        assert_eq!(k.pwritev(fd, &out, 4), Ok(9));
        let (mut a, mut b, mut c) = ([0u8; 2], [0u8; 5], [0u8; 4]);
        let mut bufs = [
            IoSliceMut::new(&mut a),
            IoSliceMut::new(&mut b),
            IoSliceMut::new(&mut c),
        ];
        assert_eq!(k.preadv(fd, &mut bufs, 4), Ok(9));
        assert_eq!((&a, &b, &c[..2]), (b"ab", b"cdefg", &b"hi"[..]));
        assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(0));
        assert_eq!(k.read_file("/f").expect("file"), b"\0\0\0\0abcdefghi");
    }

    #[test]
    fn writev_readv_move_the_offset() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        assert_eq!(
            k.writev(fd, &[IoSlice::new(b"12"), IoSlice::new(b"345")]),
            Ok(5)
        );
        assert_eq!(k.lseek(fd, 1, Whence::Set), Ok(1));
        let (mut a, mut b) = ([0u8; 1], [0u8; 8]);
        let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
        assert_eq!(k.readv(fd, &mut bufs), Ok(4));
        assert_eq!((&a, &b[..3]), (b"2", &b"345"[..]));
        assert_eq!(k.read(fd, &mut b), Ok(0));
    }

    #[test]
    fn lseek_maps_whence() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        assert_eq!(k.write(fd, b"0123456789"), Ok(10));
        assert_eq!(k.lseek(fd, 0, Whence::End), Ok(10));
        assert_eq!(k.lseek(fd, -3, Whence::Current), Ok(7));
        assert_eq!(k.lseek(fd, 2, Whence::Set), Ok(2));
        assert_eq!(k.lseek(fd, -1, Whence::Set), Err(Errno::EINVAL));
        assert_eq!(k.lseek(fd, i64::MAX, Whence::End), Err(Errno::EINVAL));
        let mut buf = [0u8; 1];
        assert_eq!(k.read(fd, &mut buf), Ok(1));
        assert_eq!(&buf, b"2");
        // Seeking past the end is fine; a write there leaves a hole.
        assert_eq!(k.lseek(fd, 20, Whence::Set), Ok(20));
        assert_eq!(k.write(fd, b"x"), Ok(1));
        assert_eq!(k.fstat(fd).map(|s| s.size_bytes), Ok(21));
    }

    #[test]
    fn offsets_above_i64_max_are_einval() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        let big = i64::MAX as u64 + 1;
        let mut buf = [0u8; 4];
        assert_eq!(k.pread(fd, &mut buf, big), Err(Errno::EINVAL));
        assert_eq!(k.pwrite(fd, b"x", u64::MAX), Err(Errno::EINVAL));
        assert_eq!(
            k.pwritev(fd, &[IoSlice::new(b"x")], big),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            k.preadv(fd, &mut [IoSliceMut::new(&mut buf)], big),
            Err(Errno::EINVAL)
        );
        assert_eq!(k.ftruncate(fd, big), Err(Errno::EINVAL));
        assert_eq!(k.fallocate(fd, 0, big, 1), Err(Errno::EINVAL));
        assert_eq!(k.sendfile(fd, fd, big, 1), Err(Errno::EINVAL));
        assert_eq!(k.splice(fd, Some(big), fd, None, 1), Err(Errno::EINVAL));
        // The end of the range may not pass i64::MAX either.
        assert_eq!(k.pwrite(fd, b"xy", i64::MAX as u64), Err(Errno::EINVAL));
        assert_eq!(k.fallocate(fd, 0, i64::MAX as u64, 1), Err(Errno::EFBIG));
        assert_eq!(k.fstat(fd).map(|st| st.size_bytes), Ok(0));
    }

    #[test]
    fn fstat_reports_size_type_and_links() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        assert_eq!(k.write(fd, &[7u8; 1000]), Ok(1000));
        k.ftruncate(fd, 1500).expect("ftruncate");
        k.fsync(fd).expect("fsync");
        k.fdatasync(fd).expect("fdatasync");
        let st = k.fstat(fd).expect("fstat");
        assert_eq!(
            (st.size_bytes, st.file_type, st.links),
            (1500, FileType::Regular, 1)
        );
        assert_eq!(
            (st.permissions, st.block_size_bytes, st.device),
            (0o644, BS, 1)
        );
        assert_ne!(st.inode, 0);
        k.mkdir(c"/d", 0o777).expect("mkdir");
        k.mkdir(c"/d/e", 0o700).expect("mkdir");
        let dir = open(&k, c"/d", OpenFlags::DIRECTORY);
        let st = k.fstat(dir).expect("fstat dir");
        assert_eq!(
            (st.file_type, st.permissions, st.links),
            (FileType::Directory, 0o755, 3)
        );
        let fs = k.fstatfs(fd).expect("fstatfs");
        assert_eq!(
            (fs.magic, fs.block_size_bytes, fs.blocks),
            (0xEF53, BS, (1 << 30) / BS)
        );
        assert_eq!(fs.blocks_available, fs.blocks - 1);
    }

    #[test]
    fn closed_fd_is_ebadf_and_fds_are_reused_lowest_first() {
        let k = kernel();
        let fds: Vec<RawFd> = (0..3).map(|_| open(&k, c"/f", RW_CREATE)).collect();
        assert_eq!(fds, [3, 4, 5]);
        k.close(4).expect("close");
        let mut buf = [0u8; 1];
        assert_eq!(k.read(4, &mut buf), Err(Errno::EBADF));
        assert_eq!(k.write(4, b"x"), Err(Errno::EBADF));
        assert_eq!(k.fstat(4), Err(Errno::EBADF));
        assert_eq!(k.close(4), Err(Errno::EBADF));
        assert_eq!(k.fsync(99), Err(Errno::EBADF));
        assert_eq!(open(&k, c"/f", OpenFlags::RDONLY), 4);
        assert_eq!(k.open_fds(), 3);
    }

    #[test]
    fn access_modes_and_directories() {
        let k = kernel();
        k.write_file_durable("/f", b"data").expect("setup");
        let ro = open(&k, c"/f", OpenFlags::RDONLY);
        let wo = open(&k, c"/f", OpenFlags::WRONLY);
        let mut buf = [0u8; 4];
        assert_eq!(k.write(ro, b"x"), Err(Errno::EBADF));
        assert_eq!(k.read(wo, &mut buf), Err(Errno::EBADF));
        assert_eq!(k.ftruncate(ro, 0), Err(Errno::EINVAL));
        assert_eq!(k.fallocate(ro, 0, 0, 1), Err(Errno::EBADF));
        let dir = open(&k, c"/", OpenFlags::RDONLY | OpenFlags::DIRECTORY);
        assert_eq!(k.read(dir, &mut buf), Err(Errno::EISDIR));
        assert_eq!(k.pread(dir, &mut buf, 0), Err(Errno::EISDIR));
        assert_eq!(k.write(dir, b"x"), Err(Errno::EBADF));
        assert_eq!(k.open(c"/", OpenFlags::WRONLY, 0), Err(Errno::EISDIR));
        assert_eq!(
            k.open(c"/", OpenFlags::RDONLY | OpenFlags::TRUNC, 0),
            Err(Errno::EISDIR)
        );
        assert_eq!(k.open(c"/", OpenFlags::CREAT, 0), Err(Errno::EISDIR));
        assert_eq!(k.open(c"/f", OpenFlags::DIRECTORY, 0), Err(Errno::ENOTDIR));
        assert_eq!(k.open(c"/f/", OpenFlags::RDONLY, 0), Err(Errno::ENOTDIR));
        assert_eq!(k.open(c"/g/", RW_CREATE, 0), Err(Errno::EISDIR));
        let creat_dir = OpenFlags::CREAT | OpenFlags::DIRECTORY;
        assert_eq!(k.open(c"/g", creat_dir, 0), Err(Errno::EINVAL));
        assert_eq!(k.open(c"", OpenFlags::RDONLY, 0), Err(Errno::ENOENT));
    }

    #[test]
    fn create_excl_and_trunc() {
        let k = kernel();
        let excl = RW_CREATE | OpenFlags::EXCL;
        let fd = open(&k, c"/f", excl);
        assert_eq!(k.open(c"/f", excl, 0o644), Err(Errno::EEXIST));
        assert_eq!(k.open(c"/.", excl, 0o644), Err(Errno::EEXIST));
        assert_eq!(k.write(fd, b"abc"), Ok(3));
        let again = open(&k, c"/f", RW_CREATE);
        assert_eq!(k.fstat(again).map(|s| s.size_bytes), Ok(3));
        let trunc = open(&k, c"/f", OpenFlags::WRONLY | OpenFlags::TRUNC);
        assert_eq!(k.fstat(trunc).map(|s| s.size_bytes), Ok(0));
        assert_eq!(k.open(c"/missing/f", RW_CREATE, 0), Err(Errno::ENOENT));
        let mode = open(&k, c"/m", OpenFlags::WRONLY | OpenFlags::CREAT);
        let _ = k.close(mode);
        let fd = k.open(c"/x", RW_CREATE, 0o4777).expect("open");
        assert_eq!(k.fstat(fd).map(|s| s.permissions), Ok(0o4755));
    }

    #[test]
    fn append_writes_go_to_the_end() {
        let k = kernel();
        k.write_file_durable("/log", b"one\n").expect("setup");
        let a = open(&k, c"/log", OpenFlags::WRONLY | OpenFlags::APPEND);
        let b = open(&k, c"/log", OpenFlags::RDWR);
        assert_eq!(k.write(b, b"ONE"), Ok(3));
        assert_eq!(k.write(a, b"two\n"), Ok(4));
        assert_eq!(k.lseek(a, 0, Whence::Current), Ok(8));
        // Linux appends even for pwrite on an O_APPEND fd.
        assert_eq!(k.pwrite(a, b"three\n", 0), Ok(6));
        assert_eq!(k.lseek(a, 0, Whence::Current), Ok(8));
        assert_eq!(k.read_file("/log").expect("file"), b"ONE\ntwo\nthree\n");
        let (rd, wr) = k.pipe().expect("pipe");
        assert_eq!(k.sendfile(a, b, 0, 4), Err(Errno::EINVAL));
        assert_eq!(k.write(wr, b"pipe"), Ok(4));
        assert_eq!(k.splice(rd, None, a, None, 4), Err(Errno::EINVAL));
    }

    #[test]
    fn openat_resolves_from_the_directory_fd() {
        let k = kernel();
        k.write_file_durable("/d/e/f", b"deep").expect("setup");
        let d = open(&k, c"/d", OpenFlags::DIRECTORY);
        let file = open(&k, c"/d/e/f", OpenFlags::RDONLY);
        let f = k.openat(d, c"e/f", OpenFlags::RDONLY, 0).expect("openat");
        assert_eq!(k.fstat(f).map(|s| s.inode), k.fstat(file).map(|s| s.inode));
        let up = k
            .openat(d, c"../d/e/../e/f", OpenFlags::RDONLY, 0)
            .expect("openat ..");
        assert_eq!(k.fstat(up).map(|s| s.inode), k.fstat(file).map(|s| s.inode));
        assert_eq!(
            k.openat(file, c"x", OpenFlags::RDONLY, 0),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(k.openat(77, c"x", OpenFlags::RDONLY, 0), Err(Errno::EBADF));
        // Absolute paths and AT_FDCWD ignore the fd (cwd is "/").
        assert!(k.openat(77, c"/d/e/f", OpenFlags::RDONLY, 0).is_ok());
        assert!(k
            .openat(libc::AT_FDCWD, c"d/e/f", OpenFlags::RDONLY, 0)
            .is_ok());
        let n = k
            .openat(d, c"new", RW_CREATE | OpenFlags::EXCL, 0o600)
            .expect("create");
        assert_eq!(k.write(n, b"x"), Ok(1));
        assert_eq!(k.list_dir("/d").expect("dir"), ["e", "new"]);
    }

    #[test]
    fn path_calls() {
        let k = kernel();
        k.mkdir(c"/sub", 0o755).expect("mkdir");
        assert_eq!(k.mkdir(c"/sub", 0o755), Err(Errno::EEXIST));
        assert_eq!(k.mkdir(c"/nope/sub", 0o755), Err(Errno::ENOENT));
        let sub = open(&k, c"/sub", OpenFlags::DIRECTORY);
        let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
        let fd = k.openat(sub, c"a", flags, 0o600).expect("openat");
        assert_eq!(k.openat(sub, c"a", flags, 0o600), Err(Errno::EEXIST));
        k.rename(c"/sub/a", c"/sub/b").expect("rename");
        assert_eq!(k.unlink(c"/sub/a"), Err(Errno::ENOENT));
        assert_eq!(k.unlink(c"/sub"), Err(Errno::EISDIR));
        assert_eq!(k.rename(c"/sub", c"/sub/b/c"), Err(Errno::ENOTDIR));
        assert_eq!(k.rename(c"/sub", c"/sub/c"), Err(Errno::EINVAL));
        k.unlink(c"/sub/b").expect("unlink");
        close_all(&k, &[fd, sub]);
        let long = CString::new(format!("/{}", "n".repeat(256))).expect("path");
        assert_eq!(k.mkdir(&long, 0o755), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn unlinked_open_file_stays_usable() {
        let k = kernel();
        let fd = open(&k, c"/tmp", RW_CREATE);
        k.unlink(c"/tmp").expect("unlink");
        assert!(!k.exists("/tmp"));
        assert_eq!(k.pwrite(fd, b"still here", 0), Ok(10));
        let mut buf = [0u8; 10];
        assert_eq!(k.pread(fd, &mut buf, 0), Ok(10));
        assert_eq!(&buf, b"still here");
        assert_eq!(k.fstat(fd).map(|s| s.links), Ok(0));
        let before = k.fstatfs(fd).expect("statfs").blocks_available;
        k.close(fd).expect("close");
        let root = open(&k, c"/", OpenFlags::RDONLY);
        assert_eq!(k.fstatfs(root).map(|s| s.blocks_available), Ok(before + 1));
    }

    #[test]
    fn sparse_files_fallocate_and_truncate() {
        let k = kernel();
        let fd = open(&k, c"/s", RW_CREATE);
        let mib = 1 << 20;
        assert_eq!(k.pwrite(fd, b"x", mib), Ok(1));
        let st = k.fstat(fd).expect("fstat");
        assert_eq!((st.size_bytes, st.blocks_512), (mib + 1, BS / 512));
        let mut buf = [9u8; 4];
        assert_eq!(k.pread(fd, &mut buf, 100), Ok(4));
        assert_eq!(buf, [0; 4], "holes read as zeros");
        k.ftruncate(fd, 10 * mib).expect("grow");
        assert_eq!(
            k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
            Ok((10 * mib, 8))
        );
        k.fallocate(fd, 0, 0, 2 * BS).expect("allocate");
        assert_eq!(k.fstat(fd).map(|s| s.blocks_512), Ok(24));
        k.fallocate(fd, KEEP_SIZE, 20 * mib, BS).expect("keep size");
        assert_eq!(
            k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
            Ok((10 * mib, 32))
        );
        k.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, BS)
            .expect("punch");
        assert_eq!(
            k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
            Ok((10 * mib, 24))
        );
        k.fallocate(fd, 0, 30 * mib, BS).expect("extend");
        assert_eq!(k.fstat(fd).map(|s| s.size_bytes), Ok(30 * mib + BS));
        k.ftruncate(fd, BS + 2).expect("shrink");
        // Block 0 was punched; block 1 is kept, everything past it freed.
        assert_eq!(
            k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
            Ok((BS + 2, 8))
        );
        assert_eq!(k.fallocate(fd, PUNCH_HOLE, 0, 1), Err(Errno::EOPNOTSUPP));
        let zero_range = libc::FALLOC_FL_ZERO_RANGE;
        assert_eq!(k.fallocate(fd, zero_range, 0, 1), Err(Errno::EOPNOTSUPP));
        assert_eq!(k.fallocate(fd, 0, 0, 0), Err(Errno::EINVAL));
        let dir = open(&k, c"/", OpenFlags::RDONLY);
        assert_eq!(k.fallocate(dir, 0, 0, 1), Err(Errno::EBADF));
        let (_, wr) = k.pipe().expect("pipe");
        assert_eq!(k.fallocate(wr, 0, 0, 1), Err(Errno::ESPIPE));
    }

    #[test]
    fn full_disk_gives_a_short_write_then_enospc() {
        let mut o = SimOptions::new(1);
        o.capacity_bytes = 4 * BS;
        let k = kernel_with(o);
        let fd = open(&k, c"/big", RW_CREATE);
        assert_eq!(k.write(fd, &vec![1; 3 * BS as usize]), Ok(3 * BS as usize));
        assert_eq!(k.write(fd, &vec![2; 2 * BS as usize]), Ok(BS as usize));
        assert_eq!(k.write(fd, b"more"), Err(Errno::ENOSPC));
        assert_eq!(k.fallocate(fd, 0, 8 * BS, 1), Err(Errno::ENOSPC));
        assert_eq!(k.fstatfs(fd).map(|s| s.blocks_available), Ok(0));
        assert_eq!(k.core().stats().enospc_full, 2);
        // Overwriting allocated blocks still works; freeing space helps.
        assert_eq!(k.pwrite(fd, b"ok", 0), Ok(2));
        k.ftruncate(fd, BS).expect("shrink");
        assert_eq!(k.write(fd, b"more"), Ok(4));
    }

    #[test]
    fn xattrs() {
        let k = kernel();
        k.write_file_durable("/f", b"").expect("setup");
        let mut buf = [0u8; 16];
        let name = c"user.iokernel";
        assert_eq!(k.getxattr(c"/f", name, &mut buf), Err(Errno::ENODATA));
        assert_eq!(k.getxattr(c"/nope", name, &mut buf), Err(Errno::ENOENT));
        assert_eq!(
            k.setxattr(c"/f", name, b"v1", XATTR_REPLACE),
            Err(Errno::ENODATA)
        );
        k.setxattr(c"/f", name, b"v1", XATTR_CREATE)
            .expect("create");
        assert_eq!(
            k.setxattr(c"/f", name, b"v2", XATTR_CREATE),
            Err(Errno::EEXIST)
        );
        assert_eq!(k.getxattr(c"/f", name, &mut []), Ok(2));
        assert_eq!(k.getxattr(c"/f", name, &mut buf[..1]), Err(Errno::ERANGE));
        assert_eq!(k.getxattr(c"/f", name, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"v1");
        k.setxattr(c"/f", name, b"v22", XATTR_REPLACE)
            .expect("replace");
        assert_eq!(k.getxattr(c"/f", name, &mut buf), Ok(3));
        assert_eq!(k.setxattr(c"/f", name, b"", 4), Err(Errno::EINVAL));
        let big = vec![0; XATTR_SIZE_MAX + 1];
        assert_eq!(k.setxattr(c"/f", name, &big, 0), Err(Errno(libc::E2BIG)));
        assert_eq!(k.getxattr(c"/f", c"", &mut buf), Err(Errno::ERANGE));
        assert_eq!(
            k.getxattr(c"/f", c"lustre.lov", &mut buf),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            k.setxattr(c"/f", c"trusted.x", b"", 0),
            Err(Errno::EOPNOTSUPP)
        );
    }

    fn lustre_kernel() -> SimKernel {
        let mut o = SimOptions::new(1);
        o.fs_magic = 0x0BD0_0BD0;
        kernel_with(o)
    }

    fn lov_of(k: &SimKernel, path: &CStr) -> (u64, u32) {
        let mut buf = [0u8; 256];
        let n = k.getxattr(path, c"lustre.lov", &mut buf).expect("a layout");
        let layout = crate::writer::parse_lov(&buf[..n]).expect("a v1 layout");
        (layout.stripe_size_bytes, layout.stripe_count)
    }

    #[test]
    fn lustre_sets_the_asked_layout_on_a_delay_created_file() {
        let k = lustre_kernel();
        let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::LOV_DELAY_CREATE;
        let fd = k.open(c"/f", flags, 0o644).expect("create");
        assert_eq!(
            k.getxattr(c"/f", c"lustre.lov", &mut []),
            Err(Errno::ENODATA)
        );
        let asked = crate::writer::encode_v1(4 << 20, 8);
        k.setxattr(c"/f", c"lustre.lov", &asked, 0).expect("set");
        k.pwrite(fd, b"data", 0).expect("write");
        assert_eq!(lov_of(&k, c"/f"), (4 << 20, 8));
        k.close(fd).expect("close");
    }

    #[test]
    fn lustre_keeps_an_instantiated_layout_yet_answers_success() {
        let k = lustre_kernel();
        let fd = k
            .open(c"/f", OpenFlags::WRONLY | OpenFlags::CREAT, 0o644)
            .expect("create");
        assert_eq!(
            lov_of(&k, c"/f"),
            (1 << 20, 1),
            "the default layout at create"
        );
        let asked = crate::writer::encode_v1(4 << 20, 8);
        k.setxattr(c"/f", c"lustre.lov", &asked, 0)
            .expect("Lustre says yes");
        assert_eq!(lov_of(&k, c"/f"), (1 << 20, 1), "but keeps the layout");
        k.close(fd).expect("close");
        // A delay-created file written before any layout was set gets the
        // default at its first write.
        let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::LOV_DELAY_CREATE;
        let fd = k.open(c"/g", flags, 0o644).expect("create");
        k.pwrite(fd, b"x", 0).expect("write");
        assert_eq!(lov_of(&k, c"/g"), (1 << 20, 1));
        k.close(fd).expect("close");
    }

    #[test]
    fn off_lustre_files_have_no_layout() {
        let k = kernel();
        let fd = k
            .open(c"/f", OpenFlags::WRONLY | OpenFlags::CREAT, 0o644)
            .expect("create");
        k.pwrite(fd, b"x", 0).expect("write");
        assert_eq!(
            k.getxattr(c"/f", c"lustre.lov", &mut []),
            Err(Errno::EOPNOTSUPP)
        );
        k.close(fd).expect("close");
    }

    // ---- durability ----

    #[test]
    fn fsync_keeps_data_but_a_new_name_needs_the_dir_fsync() {
        let k = kernel();
        k.write_file_durable("/old", b"v1").expect("setup");
        let old = open(&k, c"/old", OpenFlags::WRONLY | OpenFlags::TRUNC);
        assert_eq!(k.write(old, b"v2"), Ok(2));
        k.fsync(old).expect("fsync");
        let new = open(&k, c"/new", OpenFlags::WRONLY | OpenFlags::CREAT);
        assert_eq!(k.write(new, b"data"), Ok(4));
        k.fsync(new).expect("fsync");
        k.crash();
        assert_eq!(k.read_file("/old").expect("old"), b"v2");
        assert!(!k.exists("/new"), "the directory was never fsynced");
        let new = open(&k, c"/new", OpenFlags::WRONLY | OpenFlags::CREAT);
        assert_eq!(k.write(new, b"data"), Ok(4));
        k.fsync(new).expect("fsync");
        let root = open(&k, c"/", OpenFlags::RDONLY);
        k.fsync(root).expect("dir fsync");
        k.crash();
        assert_eq!(k.read_file("/new").expect("new"), b"data");
        assert_eq!(k.open_fds(), 0);
        assert_eq!(k.core().stats().crashes, 2);
    }

    #[test]
    fn writes_without_fsync_are_lost() {
        let k = kernel();
        k.write_file_durable("/f", b"durable").expect("setup");
        let fd = open(&k, c"/f", OpenFlags::RDWR);
        assert_eq!(k.pwrite(fd, b"DURABLE and more", 0), Ok(16));
        k.fallocate(fd, 0, 0, 8 * BS).expect("fallocate");
        k.crash();
        assert_eq!(k.read_file("/f").expect("file"), b"durable");
        assert_eq!(
            k.write(fd, b"x"),
            Err(Errno::EBADF),
            "fds died with the power"
        );
    }

    #[test]
    fn torn_crash_keeps_a_granularity_aligned_prefix() {
        let data: Vec<u8> = (0..3 * BS + 100).map(|i| (i % 250) as u8 + 1).collect();
        let mut lengths = Vec::new();
        for seed in 0..30 {
            let mut o = SimOptions::new(seed);
            o.crash = CrashModel::Torn {
                granularity_bytes: 4096,
            };
            let k = kernel_with(o);
            k.write_file_durable("/f", b"").expect("setup");
            let fd = open(&k, c"/f", OpenFlags::WRONLY);
            assert_eq!(k.write(fd, &data), Ok(data.len()));
            k.crash();
            let got = k.read_file("/f").expect("file");
            assert!(
                got.len() % 4096 == 0 || got.len() == data.len(),
                "{}",
                got.len()
            );
            assert_eq!(got, data[..got.len()]);
            lengths.push(got.len());
        }
        assert!(
            lengths.iter().any(|&n| n > 0 && n < data.len()),
            "{lengths:?}"
        );
    }

    #[test]
    fn failed_fsync_then_good_fsync_keeps_only_the_later_writes() {
        for seed in 0..200 {
            let k = kernel_with(faulty(seed, &[OpClass::Sync], &[Errno::EIO], 0.5));
            k.write_file_durable("/f", b"0000000000").expect("setup");
            let fd = open(&k, c"/f", OpenFlags::RDWR);
            assert_eq!(k.pwrite(fd, b"AAAAAA", 0), Ok(6));
            if k.fsync(fd) != Err(Errno::EIO) {
                continue;
            }
            assert_eq!(k.read_file("/f").expect("file"), b"AAAAAA0000");
            assert_eq!(k.pwrite(fd, b"BBBB", 4), Ok(4));
            if k.fsync(fd).is_err() {
                continue;
            }
            k.crash();
            assert_eq!(k.read_file("/f").expect("file"), b"0000BBBB00");
            assert_eq!(k.core().stats().fsync_dropped_data, 1);
            return;
        }
        panic!("no seed gave a failed then a successful fsync");
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_fsync() {
        let k = kernel();
        k.write_file_durable("/d/tmp", b"new").expect("setup");
        k.write_file_durable("/d/final", b"old").expect("setup");
        k.rename(c"/d/tmp", c"/d/final").expect("rename");
        assert_eq!(k.read_file("/d/final").expect("final"), b"new");
        k.crash();
        assert_eq!(k.read_file("/d/final").expect("final"), b"old");
        assert_eq!(k.read_file("/d/tmp").expect("tmp"), b"new");
        k.rename(c"/d/tmp", c"/d/final").expect("rename");
        let d = open(&k, c"/d", OpenFlags::RDONLY | OpenFlags::DIRECTORY);
        k.fsync(d).expect("dir fsync");
        k.crash();
        assert_eq!(k.read_file("/d/final").expect("final"), b"new");
        assert!(!k.exists("/d/tmp"));
    }

    // ---- faults ----

    /// A workload touching every call family; errors are part of the trace.
    fn workload(k: &SimKernel) {
        let _ = k.mkdir(c"/d", 0o755);
        for i in 0..60u64 {
            let path = CString::new(format!("/d/f{}", i % 7)).expect("path");
            if let Ok(fd) = k.open(&path, RW_CREATE | OpenFlags::APPEND, 0o644) {
                let _ = k.write(fd, &[i as u8; 700]);
                let _ = k.pwrite(fd, b"xyz", i * 10);
                let mut buf = [0u8; 64];
                let _ = k.pread(fd, &mut buf, i);
                let _ = k.fallocate(fd, KEEP_SIZE, 0, 3 * BS);
                if i % 3 == 0 {
                    let _ = k.fsync(fd);
                }
                let _ = k.fstat(fd);
                let _ = k.close(fd);
            }
            if i % 5 == 0 {
                let _ = k.rename(&path, c"/d/renamed");
                let _ = k.setxattr(c"/d/renamed", c"user.i", &i.to_le_bytes(), 0);
            }
            if i % 13 == 0 {
                if let Ok(d) = k.open(c"/d", OpenFlags::RDONLY, 0) {
                    let _ = k.fsync(d);
                    let _ = k.close(d);
                }
            }
            if let Ok((rd, wr)) = k.pipe() {
                let _ = k.write(wr, &[i as u8; 100]);
                let mut buf = [0u8; 100];
                let _ = k.read(rd, &mut buf);
                let _ = k.close(rd);
                let _ = k.close(wr);
            }
            if i % 23 == 22 {
                k.crash();
            }
        }
    }

    #[test]
    fn same_seed_same_trace() {
        let run = |seed| {
            let k = kernel_with(SimOptions::with_faults(seed, 0.2));
            workload(&k);
            let files: Vec<_> = (0..7).map(|i| k.read_file(format!("/d/f{i}"))).collect();
            (
                k.core().trace_hash(),
                k.core().stats(),
                files,
                k.list_dir("/d"),
            )
        };
        let (a, b, c) = (run(11), run(11), run(12));
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        let stats = &a.1;
        assert!(
            !stats.injected.is_empty() && stats.short_writes > 0,
            "{stats:?}"
        );
        assert!(stats.syscalls > 400 && stats.crashes == 2, "{stats:?}");
    }

    #[test]
    fn eintr_is_retried_and_invisible() {
        let classes = OpClass::ALL;
        let flaky = kernel_with(faulty(5, &classes, &[Errno::EINTR], 0.5));
        let calm = kernel();
        workload(&flaky);
        workload(&calm);
        assert!(flaky.core().stats().eintr_retried > 100);
        assert!(flaky
            .core()
            .stats()
            .injected
            .keys()
            .all(|(_, e)| *e == "EINTR"));
        for i in 0..7 {
            let path = format!("/d/f{i}");
            assert_eq!(flaky.read_file(&path), calm.read_file(&path), "{path}");
        }
        assert_eq!(flaky.list_dir("/d"), calm.list_dir("/d"));
    }

    #[test]
    fn injected_open_faults_change_nothing() {
        let k = kernel_with(faulty(1, &[OpClass::Open], &[Errno::EIO], 1.0));
        assert_eq!(k.open(c"/f", RW_CREATE, 0o644), Err(Errno::EIO));
        assert_eq!(k.mkdir(c"/d", 0o755), Err(Errno::EIO));
        assert!(!k.exists("/f") && !k.exists("/d"));
        assert_eq!(k.open_fds(), 0);
        k.write_file_durable("/t", b"keep").expect("setup");
        let trunc = OpenFlags::WRONLY | OpenFlags::TRUNC;
        assert_eq!(k.open(c"/t", trunc, 0), Err(Errno::EIO));
        assert_eq!(k.read_file("/t").expect("file"), b"keep");
        // Real errors come first and are not injected.
        assert_eq!(
            k.open(c"/missing", OpenFlags::RDONLY, 0),
            Err(Errno::ENOENT)
        );
        assert_eq!(k.core().stats().injected.values().sum::<u64>(), 3);
    }

    #[test]
    fn injected_write_and_metadata_faults_change_nothing() {
        let classes = [OpClass::Write, OpClass::Metadata];
        let k = kernel_with(faulty(1, &classes, &[Errno::EIO, Errno::ENOSPC], 1.0));
        k.write_file_durable("/f", b"abc").expect("setup");
        let fd = open(&k, c"/f", OpenFlags::RDWR);
        assert!(k.write(fd, b"XYZW").is_err());
        assert!(k.pwrite(fd, b"XYZW", 1).is_err());
        assert!(k.writev(fd, &[IoSlice::new(b"XY")]).is_err());
        assert!(k.ftruncate(fd, 0).is_err());
        assert!(k.fallocate(fd, 0, 0, 1 << 20).is_err());
        assert!(k.lseek(fd, 2, Whence::Set).is_err());
        assert!(k.rename(c"/f", c"/g").is_err());
        assert!(k.unlink(c"/f").is_err());
        assert!(k.setxattr(c"/f", c"user.x", b"1", 0).is_err());
        assert!(k.fstat(fd).is_err());
        let mut buf = [0u8; 8];
        assert_eq!(k.read(fd, &mut buf), Ok(3), "offset unmoved");
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(k.read_file("/f").expect("file"), b"abc");
        assert!(!k.exists("/g"));
        assert_eq!(k.list_dir("/").expect("root"), ["f"]);
        let root = open(&k, c"/", OpenFlags::RDONLY);
        k.fsync(root).expect("sync class is healthy");
        k.crash();
        assert_eq!(k.read_file("/f").expect("file"), b"abc");
    }

    #[test]
    fn injected_fsync_error_drops_dirty_data() {
        let k = kernel_with(faulty(1, &[OpClass::Sync], &[Errno::EIO], 1.0));
        k.write_file_durable("/f", b"old").expect("setup");
        let fd = open(&k, c"/f", OpenFlags::WRONLY);
        assert_eq!(k.write(fd, b"new"), Ok(3));
        assert_eq!(k.fsync(fd), Err(Errno::EIO));
        assert_eq!(k.fdatasync(fd), Err(Errno::EIO));
        assert_eq!(k.read_file("/f").expect("file"), b"new", "still cached");
        assert_eq!(k.core().stats().fsync_dropped_data, 1);
        k.crash();
        assert_eq!(k.read_file("/f").expect("file"), b"old");
    }

    #[test]
    fn injected_stream_faults_leave_the_bytes_queued() {
        let classes = [OpClass::SocketRead];
        let k = kernel_with(faulty(1, &classes, &[Errno::ECONNRESET], 1.0));
        let (rd, wr) = k.pipe().expect("pipe");
        assert_eq!(k.write(wr, b"queued"), Ok(6));
        let mut buf = [0u8; 8];
        assert_eq!(k.read(rd, &mut buf), Err(Errno::ECONNRESET));
        let out = open(&k, c"/out", RW_CREATE);
        assert_eq!(k.splice(rd, None, out, None, 64), Ok(6));
        assert_eq!(k.read_file("/out").expect("file"), b"queued");
    }

    #[test]
    fn short_io_moves_a_prefix() {
        let mut o = SimOptions::new(3);
        o.short_io_probability = 1.0;
        let k = kernel_with(o);
        let fd = open(&k, c"/f", RW_CREATE);
        let n = k.write(fd, b"0123456789").expect("write");
        assert!((1..10).contains(&n), "{n}");
        assert_eq!(k.read_file("/f").expect("file"), &b"0123456789"[..n]);
        assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(n as u64));
        let mut buf = [b'.'; 10];
        let m = k.pread(fd, &mut buf, 0).expect("read");
        assert!(m >= 1 && (m < n || n == 1), "{m} of {n}");
        assert_eq!(&buf[..m], &b"0123456789"[..m]);
        assert!(buf[m..].iter().all(|&b| b == b'.'));
        let stats = k.core().stats();
        assert_eq!(
            (stats.short_writes, stats.short_reads),
            (1, u64::from(n > 1))
        );
    }

    // ---- parity: the same calls on the real kernel and the sim ----

    /// Record `call => result` for a parity probe.
    macro_rules! probe {
        ($out:ident, $e:expr) => {
            $out.push(format!("{} => {:?}", stringify!($e), $e))
        };
    }

    /// Path errors, in the order Linux checks them.
    fn probe_paths(k: &dyn Kernel, p: &dyn Fn(&str) -> CString, out: &mut Vec<String>) {
        let rw = RW_CREATE;
        probe!(out, k.open(&p("/g/"), rw, 0o644));
        probe!(out, k.open(&p("/d/f/"), rw, 0o644));
        probe!(out, k.open(&p("/d/f/"), OpenFlags::RDONLY, 0));
        probe!(
            out,
            k.open(&p("/d"), OpenFlags::RDONLY | OpenFlags::TRUNC, 0)
        );
        probe!(out, k.open(&p("/d"), OpenFlags::WRONLY, 0));
        probe!(out, k.open(&p("/d"), OpenFlags::CREAT, 0));
        probe!(out, k.open(&p("/d/."), rw | OpenFlags::EXCL, 0));
        probe!(out, k.open(&p("/d/.."), rw, 0));
        probe!(
            out,
            k.open(&p("/d/x"), OpenFlags::CREAT | OpenFlags::DIRECTORY, 0)
        );
        probe!(out, k.open(&p("/d/f"), OpenFlags::DIRECTORY, 0));
        probe!(out, k.open(&p("/d/f/.."), OpenFlags::RDONLY, 0));
        probe!(out, k.open(&p(&format!("/d/{}", "x".repeat(256))), rw, 0));
        probe!(
            out,
            k.open(&p(&format!("/nope/{}", "x".repeat(256))), rw, 0)
        );
        probe!(out, k.mkdir(&p("/d/."), 0o755));
        probe!(out, k.mkdir(&p("/d/f/x"), 0o755));
        probe!(out, k.unlink(&p("/d/.")));
        probe!(out, k.unlink(&p("/d/f/")));
        probe!(out, k.unlink(&p("/d/sub/")));
        probe!(out, k.unlink(&p("/d")));
        probe!(out, k.rename(&p("/d"), &p("/d/sub/x")));
        probe!(out, k.rename(&p("/d/sub"), &p("/d/sub")));
        probe!(out, k.rename(&p("/d/f"), &p("/d/sub")));
        probe!(out, k.rename(&p("/d/sub"), &p("/d/f")));
        probe!(out, k.rename(&p("/d/f/"), &p("/d/h")));
        probe!(out, k.rename(&p("/d/f"), &p("/d/h/")));
        probe!(out, k.rename(&p("/d/."), &p("/d/h")));
        probe!(out, k.rename(&p("/d/f"), &p("/d/..")));
        probe!(out, k.mkdir(&p("/d/sub/inner"), 0o755));
        probe!(out, k.mkdir(&p("/e"), 0o755));
        probe!(out, k.rename(&p("/e"), &p("/d/sub")));
        probe!(out, k.rename(&p("/d/sub/inner"), &p("/d")));
        probe!(out, k.rename(&p("/d/sub/inner"), &p("/e")));
        probe!(out, k.rename(&p("/missing"), &p("/e")));
        let mut buf = [0u8; 4];
        probe!(out, k.getxattr(&p("/d/f"), c"", &mut buf));
        probe!(out, k.getxattr(&p("/nope"), c"user.x", &mut buf));
        probe!(out, k.getxattr(&p("/d/f"), c"lustre.lov", &mut buf));
        probe!(out, k.setxattr(&p("/d/f"), c"user.x", b"", 4));
        probe!(
            out,
            k.setxattr(&p("/nope"), c"user.x", &[0; XATTR_SIZE_MAX + 1], 0)
        );
    }

    /// Regular-file and directory fd errors and results.
    fn probe_files(k: &dyn Kernel, p: &dyn Fn(&str) -> CString, out: &mut Vec<String>) {
        let f = k.open(&p("/d/f"), OpenFlags::RDWR, 0).expect("open f");
        let ro = k.open(&p("/d/f"), OpenFlags::RDONLY, 0).expect("open ro");
        let dir = k.open(&p("/d"), OpenFlags::RDONLY, 0).expect("open dir");
        let mut buf = [0u8; 4];
        probe!(out, k.ftruncate(ro, 0));
        probe!(out, k.fallocate(ro, 0, 0, 1));
        probe!(out, k.fallocate(ro, 0, 0, 0));
        probe!(out, k.fallocate(ro, libc::FALLOC_FL_ZERO_RANGE, 0, 1));
        probe!(out, k.fallocate(f, PUNCH_HOLE, 0, 1));
        probe!(out, k.fallocate(f, 0, i64::MAX as u64, 1));
        probe!(out, k.pwrite(f, b"xy", i64::MAX as u64));
        probe!(out, k.lseek(f, i64::MAX, Whence::End));
        probe!(out, k.lseek(f, -11, Whence::End));
        probe!(out, k.lseek(f, 0, Whence::Current));
        probe!(out, k.write(ro, b"x"));
        probe!(out, k.read(dir, &mut buf));
        probe!(out, k.pread(dir, &mut buf, 0));
        probe!(out, k.read(dir, &mut []));
        probe!(out, k.fsync(dir));
        probe!(out, k.ftruncate(dir, 0));
        probe!(out, k.fallocate(dir, 0, 0, 1));
        probe!(out, k.openat(f, c"x", OpenFlags::RDONLY, 0));
        probe!(out, k.openat(9999, c"x", OpenFlags::RDONLY, 0));
        probe!(out, k.openat(dir, c"", OpenFlags::RDONLY, 0));
        probe!(out, k.sendfile(f, f, 100, 5));
        probe!(out, k.sendfile(ro, f, 0, 1));
        probe!(
            out,
            k.fstat(f).map(|s| (s.size_bytes, s.file_type, s.links))
        );
        probe!(out, k.fstat(dir).map(|s| (s.file_type, s.links)));
        probe!(out, k.take_socket_error(f));
        probe!(out, k.local_addr(f));
        probe!(out, k.wait_ready(f, Interest::Readable, 0));
        let app = k
            .open(&p("/d/f"), OpenFlags::WRONLY | OpenFlags::APPEND, 0)
            .expect("open");
        probe!(out, k.pwrite(app, b"appended", 0));
        probe!(out, k.sendfile(app, f, 0, 1));
        probe!(out, k.pread(f, &mut buf, 10));
        for fd in [f, ro, dir, app] {
            k.close(fd).expect("close");
        }
    }

    /// Pipe and unconnected-socket errors.
    fn probe_streams(k: &dyn Kernel, p: &dyn Fn(&str) -> CString, out: &mut Vec<String>) {
        let f = k.open(&p("/d/f"), OpenFlags::RDWR, 0).expect("open f");
        let (rd, wr) = k.pipe().expect("pipe");
        let mut buf = [0u8; 4];
        probe!(out, k.read(wr, &mut buf));
        probe!(out, k.write(rd, b"x"));
        probe!(out, k.pread(wr, &mut buf, 0));
        probe!(out, k.fallocate(wr, 0, 0, 1));
        probe!(out, k.fallocate(rd, 0, 0, 1));
        probe!(out, k.ftruncate(wr, 0));
        probe!(out, k.fsync(wr));
        probe!(out, k.lseek(rd, 0, Whence::Set));
        probe!(out, k.recv(rd, &mut buf, MsgFlags::NONE));
        probe!(out, k.set_option(rd, SockOpt::NonBlocking(true)));
        probe!(out, k.set_option(rd, SockOpt::NoDelay(true)));
        probe!(
            out,
            k.fstat(rd)
                .map(|s| (s.file_type, s.size_bytes, s.blocks_512, s.links))
        );
        probe!(out, k.fstatfs(rd).map(|s| s.magic));
        probe!(out, k.splice(9999, None, wr, None, 0));
        probe!(out, k.splice(rd, None, wr, None, 1));
        probe!(out, k.splice(rd, Some(0), f, None, 1));
        probe!(out, k.splice(f, None, wr, Some(0), 1));
        probe!(out, k.sendfile(wr, rd, 0, 1));
        probe!(out, k.write(wr, b"ab"));
        probe!(out, k.wait_ready(rd, Interest::Readable, 0));
        probe!(out, k.splice(rd, None, f, Some(2), 8));
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let s = k.socket(&any, SockType::Stream).expect("socket");
        probe!(out, k.pread(s, &mut buf, 0));
        probe!(out, k.ftruncate(s, 0));
        probe!(out, k.fsync(s));
        probe!(out, k.fallocate(s, 0, 0, 1));
        probe!(out, k.lseek(s, 0, Whence::Set));
        probe!(out, k.fstat(s).map(|s| s.file_type));
        probe!(out, k.fstatfs(s).map(|s| s.magic));
        probe!(out, k.sendfile(s, f, 0, 1));
        probe!(out, k.sendfile(f, s, 0, 1));
        probe!(out, k.send(s, b"x", MsgFlags::NONE));
        probe!(out, k.recv(s, &mut buf, MsgFlags::NONE));
        probe!(out, k.shutdown(s, Shutdown::Write));
        probe!(out, k.accept(s, true).map(|_| ()));
        for fd in [f, rd, wr, s] {
            k.close(fd).expect("close");
        }
    }

    fn probe_all(k: &dyn Kernel, root: &str) -> Vec<String> {
        let p = |s: &str| CString::new(format!("{root}{s}")).expect("path");
        k.mkdir(&p("/d"), 0o755).expect("mkdir");
        k.mkdir(&p("/d/sub"), 0o755).expect("mkdir");
        let f = k.open(&p("/d/f"), RW_CREATE, 0o644).expect("create");
        assert_eq!(k.write(f, b"0123456789"), Ok(10));
        k.close(f).expect("close");
        let mut out = Vec::new();
        probe_paths(k, &p, &mut out);
        probe_files(k, &p, &mut out);
        probe_streams(k, &p, &mut out);
        out
    }

    /// The sim and the host kernel give the same result, errno for errno,
    /// for calls whose outcome does not depend on the host's file system
    /// type, umask or xattr support.
    #[test]
    fn sim_agrees_with_the_real_kernel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8 temp path");
        let real = probe_all(&crate::sys::real::RealKernel, root);
        let sim = probe_all(&kernel(), "");
        let differ: Vec<String> = real
            .iter()
            .zip(&sim)
            .filter(|(r, s)| r != s)
            .map(|(r, s)| format!("real {r}\n sim {s}"))
            .collect();
        assert!(differ.is_empty(), "{}", differ.join("\n"));
        assert_eq!(real.len(), sim.len());
    }

    // ---- sockets and pipes ----

    /// A listener on 127.0.0.1 plus one accepted connection:
    /// `(listener, client, server)`.
    fn loopback_pair(k: &SimKernel) -> (RawFd, RawFd, RawFd) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = k.socket(&any, SockType::Stream).expect("socket");
        k.set_option(listener, SockOpt::ReuseAddr(true))
            .expect("reuseaddr");
        k.bind(listener, &any).expect("bind");
        k.listen(listener, 16).expect("listen");
        let addr = k.local_addr(listener).expect("local_addr");
        assert_ne!(addr.port(), 0);
        let client = k.socket(&addr, SockType::Stream).expect("socket");
        k.set_option(client, SockOpt::NoDelay(true))
            .expect("nodelay");
        k.connect(client, &addr).expect("connect");
        let (server, peer) = k.accept(listener, false).expect("accept");
        assert_eq!(peer, k.local_addr(client).expect("client addr"));
        assert_eq!(k.peer_addr(client).expect("peer_addr"), addr);
        (listener, client, server)
    }

    #[test]
    fn tcp_loopback_roundtrip() {
        let k = kernel();
        let (listener, client, server) = loopback_pair(&k);
        assert_eq!(k.take_socket_error(client), Ok(None));
        assert_eq!(k.wait_ready(server, Interest::Readable, 0), Ok(false));
        assert_eq!(k.wait_ready(client, Interest::Writable, 0), Ok(true));
        assert_eq!(k.send(client, b"hello", MsgFlags::NONE), Ok(5));
        assert_eq!(k.wait_ready(server, Interest::Readable, 5_000), Ok(true));
        let mut buf = [0u8; 16];
        assert_eq!(k.recv(server, &mut buf[..2], MsgFlags::PEEK), Ok(2));
        assert_eq!(k.recv(server, &mut buf[..5], MsgFlags::WAITALL), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(k.recv(server, &mut buf, MsgFlags::NONE), Err(Errno::EAGAIN));
        assert_eq!(k.write(client, b"via write"), Ok(9));
        assert_eq!(k.read(server, &mut buf), Ok(9));
        k.shutdown(client, Shutdown::Write).expect("shutdown");
        assert_eq!(k.recv(server, &mut buf, MsgFlags::NONE), Ok(0));
        assert_eq!(k.send(client, b"x", MsgFlags::NONE), Err(Errno::EPIPE));
        close_all(&k, &[client, server, listener]);
        assert_eq!(k.open_fds(), 0);
    }

    #[test]
    fn socket_calls_check_the_fd_kind() {
        let k = kernel();
        let fd = open(&k, c"/f", RW_CREATE);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut buf = [0u8; 4];
        assert_eq!(k.recv(fd, &mut buf, MsgFlags::NONE), Err(Errno::ENOTSOCK));
        assert_eq!(k.send(fd, b"x", MsgFlags::NONE), Err(Errno::ENOTSOCK));
        assert_eq!(k.bind(fd, &any), Err(Errno::ENOTSOCK));
        assert_eq!(k.accept(fd, true).map(|(fd, _)| fd), Err(Errno::ENOTSOCK));
        assert_eq!(
            k.set_option(fd, SockOpt::NoDelay(true)),
            Err(Errno::ENOTSOCK)
        );
        assert_eq!(k.set_option(fd, SockOpt::NonBlocking(true)), Ok(()));
        assert_eq!(k.recv(42, &mut buf, MsgFlags::NONE), Err(Errno::EBADF));
        assert_eq!(k.wait_ready(fd, Interest::Readable, -1), Ok(true));
        let udp = k.socket(&any, SockType::Datagram);
        assert_eq!(udp, Err(Errno(libc::EPROTONOSUPPORT)));
        let s = k.socket(&any, SockType::Stream).expect("socket");
        assert_eq!(k.pread(s, &mut buf, 0), Err(Errno::ESPIPE));
        assert_eq!(k.lseek(s, 0, Whence::Set), Err(Errno::ESPIPE));
        assert_eq!(k.fsync(s), Err(Errno::EINVAL));
        assert_eq!(k.ftruncate(s, 0), Err(Errno::EINVAL));
        assert_eq!(k.fstat(s).map(|st| st.file_type), Ok(FileType::Socket));
        assert_eq!(k.fstatfs(s).map(|st| st.magic), Ok(SOCKFS_MAGIC));
    }

    #[test]
    fn sendfile_file_to_socket_leaves_the_file_offset() {
        let k = kernel();
        let file = open(&k, c"/f", RW_CREATE);
        assert_eq!(k.pwrite(file, b"0123456789", 0), Ok(10));
        let (listener, client, server) = loopback_pair(&k);
        assert_eq!(k.sendfile(client, file, 3, 5), Ok(5));
        assert_eq!(k.lseek(file, 0, Whence::Current), Ok(0));
        let mut buf = [0u8; 8];
        assert_eq!(k.recv(server, &mut buf[..5], MsgFlags::WAITALL), Ok(5));
        assert_eq!(&buf[..5], b"34567");
        assert_eq!(k.sendfile(client, file, 100, 5), Ok(0));
        assert_eq!(k.sendfile(file, client, 0, 5), Err(Errno::ESPIPE));
        let copy = open(&k, c"/copy", RW_CREATE);
        assert_eq!(k.sendfile(copy, file, 2, 100), Ok(8));
        assert_eq!(k.lseek(copy, 0, Whence::Current), Ok(8));
        assert_eq!(k.read_file("/copy").expect("copy"), b"23456789");
        close_all(&k, &[file, client, server, listener, copy]);
    }

    #[test]
    fn pipe_and_splice() {
        let k = kernel();
        let file = open(&k, c"/f", RW_CREATE);
        assert_eq!(k.pwrite(file, b"spliced bytes", 0), Ok(13));
        let (rd, wr) = k.pipe().expect("pipe");
        assert_eq!(k.splice(file, Some(8), wr, None, 100), Ok(5));
        assert_eq!(k.lseek(file, 0, Whence::Current), Ok(0));
        assert_eq!(k.splice(rd, None, file, Some(20), 5), Ok(5));
        let mut buf = [0u8; 5];
        assert_eq!(k.pread(file, &mut buf, 20), Ok(5));
        assert_eq!(&buf, b"bytes");
        assert_eq!(k.splice(file, Some(0), file, None, 1), Err(Errno::EINVAL));
        assert_eq!(k.splice(rd, Some(0), file, None, 1), Err(Errno::ESPIPE));
        assert_eq!(k.splice(rd, None, file, None, 1), Err(Errno::EAGAIN));
        assert_eq!(k.splice(rd, None, wr, None, 1), Err(Errno::EINVAL));
        assert_eq!(k.splice(99, None, wr, None, 0), Ok(0));
        assert_eq!(k.write(wr, b"ab"), Ok(2));
        assert_eq!(k.read(rd, &mut buf), Ok(2));
        assert_eq!(k.read(rd, &mut buf), Err(Errno::EAGAIN));
        assert_eq!(k.read(wr, &mut buf), Err(Errno::EBADF));
        assert_eq!(k.write(rd, b"x"), Err(Errno::EBADF));
        // Through a pipe into a socket, as the uring fallback for sendfile does.
        let (listener, client, server) = loopback_pair(&k);
        assert_eq!(k.splice(file, None, wr, None, 7), Ok(7));
        assert_eq!(k.lseek(file, 0, Whence::Current), Ok(7));
        assert_eq!(k.splice(rd, None, client, None, 7), Ok(7));
        let mut got = [0u8; 7];
        assert_eq!(k.recv(server, &mut got, MsgFlags::NONE), Ok(7));
        assert_eq!(&got, b"spliced");
        assert_eq!(k.send(server, b"back", MsgFlags::NONE), Ok(4));
        assert_eq!(k.splice(client, None, wr, None, 64), Ok(4));
        assert_eq!(k.read(rd, &mut got), Ok(4));
        assert_eq!(&got[..4], b"back");
        close_all(&k, &[wr]);
        assert_eq!(k.read(rd, &mut got), Ok(0));
        assert_eq!(k.fstat(rd).map(|st| st.file_type), Ok(FileType::Fifo));
        close_all(&k, &[rd, file, listener, client, server]);
    }
}
