//! The syscall seam: the only way iokernel reaches the operating system.
//!
//! Everything above this module (drivers, runtime, ops, writer) talks to the
//! OS through the traits defined here, so the same code runs on the real
//! kernel ([`real`]) and on the simulated machine ([`sim`]). Only
//! `src/sys/real/**` may call `libc`.
//!
//! Owns: the seam traits and their contract (below), the completion-ring
//! seam (`ring`), and two implementations of them: [`real`] (libc and the
//! io-uring crate) and [`sim`] (the in-memory simulated machine; the runner
//! that drives a runtime on it is `crate::sim`, above). [`fsinfo`] holds the
//! file-system facts both the writer and the simulated machine need (fs
//! magic numbers, the `lustre.lov` codec). May not touch: anything above
//! it. Nothing under `sys` imports `crate::op`, `crate::driver`,
//! `crate::runtime`, `crate::writer` or `crate::sim`; a lower layer that
//! needs something from above gets a small trait here instead.
//!
//! # Contract
//!
//! [`Kernel`] is a set of *blocking* syscalls with Linux semantics.
//!
//! * **Results.** Every method returns `Result<_, Errno>`. Byte counts may be
//!   short (fewer than asked) for reads, writes, sends and receives; callers
//!   that need the whole range loop. A read returning `Ok(0)` on a non-empty
//!   buffer means end of file (or an orderly socket shutdown by the peer).
//! * **EINTR** never escapes: implementations retry an interrupted call.
//!   The one exception is `close`, where Linux has already released the fd;
//!   an interrupted close is reported as success and never retried.
//! * **Buffers** are borrowed for the duration of the call only. The caller
//!   owns them before and after; an implementation never keeps a pointer.
//!   Bytes of a read buffer past the returned count are left untouched.
//! * **Ordering.** Calls on the same fd issued from one thread take effect
//!   in program order. Calls from different threads are unordered, as with
//!   the real kernel; positional calls (`pread`, `pwrite`, ...) never move
//!   the file offset.
//! * **Cancellation.** A blocking call cannot be cancelled once entered. The
//!   drivers above make cancellation safe by keeping the buffer alive until
//!   the call returns (see `crate::op`).
//! * **Errnos.** Each method may return any errno Linux documents for the
//!   call; the ones the upper layers act on are: `EAGAIN` on non-blocking
//!   sockets (wait for readiness), `EBADF` (closed or never-open fd),
//!   `ENOENT`/`EEXIST`/`EISDIR`/`ENOTDIR` from path calls, `ENOSPC`/`EDQUOT`/
//!   `EIO` from writes and syncs, `EPIPE`/`ECONNRESET` from sockets, and
//!   `ENOSYS`/`EOPNOTSUPP`/`EINVAL` for unsupported requests. Unknown errnos
//!   pass through unchanged.
//!
//! **Nowait reads and writes** ([`Kernel::preadv_nowait`],
//! [`Kernel::pwritev_nowait`]) are `preadv2`/`pwritev2` with `RWF_NOWAIT`:
//! the call is served from the page cache or not at all, so it never
//! sleeps on the disk and may be made on a thread that must not block.
//! Results: `Ok(n)` with `n` the bytes moved, which may be *short* when
//! only a prefix of the range is cached (a caller that needs the whole
//! range treats a short count as a miss for the rest); `Ok(0)` at or past
//! end of file for a read; `EAGAIN` when nothing could be done without
//! waiting (the range is not cached, a write would allocate blocks or
//! wait for a lock); `EOPNOTSUPP` when the fd's file system does not
//! support nowait I/O of that kind (ext4 buffered writes, some network
//! file systems) or the host has no `preadv2` (`EOPNOTSUPP` is also what
//! kernels without the calls are reported as); `EINVAL` for flags the
//! kernel does not know; `ESPIPE` on pipes and sockets (a positional call
//! on a stream), `EISDIR`, `EBADF` as for `pread`/`pwrite`; and any errno
//! the plain call may return. A nowait call never moves the file offset.
//!
//! [`Offload`] runs a blocking job on another thread and reports saturation
//! as a typed [`Saturated`] value instead of blocking or growing without
//! bound. [`Clock`] is the monotonic time source the runtime's timers use.
//!
//! [`Poller`] registers, modifies and deregisters readiness interest and
//! waits for events, with epoll or kqueue semantics (its own contract is in
//! [`poller`], re-exported here).

mod errno;
pub mod fsinfo;
pub(crate) mod leftover;
mod msg;
pub mod poller;
pub mod real;
pub(crate) mod ring;
#[cfg(feature = "sim")]
pub mod sim;

pub use errno::Errno;
pub use msg::{check_unix_path, RecvMeta, SockAddr, SCM_MAX_FDS, UNIX_PATH_MAX_BYTES};
pub use poller::{PollEvent, PollMode, PollWake, Poller, Ready};

use std::ffi::CStr;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::task::Waker;
use std::time::Duration;

/// Result of a seam call.
pub type SysResult<T> = Result<T, Errno>;

/// Linux's `FALLOC_FL_*` bits, the `mode` of [`Kernel::fallocate`]: the
/// kernel ABI's numbers, written out so the simulator (which models Linux's
/// `fallocate`) builds on every OS. A unit test checks them against libc.
pub mod falloc {
    /// `FALLOC_FL_KEEP_SIZE`.
    pub const KEEP_SIZE: i32 = 0x01;
    /// `FALLOC_FL_PUNCH_HOLE`.
    pub const PUNCH_HOLE: i32 = 0x02;
    /// `FALLOC_FL_COLLAPSE_RANGE`.
    pub const COLLAPSE_RANGE: i32 = 0x08;
    /// `FALLOC_FL_ZERO_RANGE`.
    pub const ZERO_RANGE: i32 = 0x10;
    /// `FALLOC_FL_INSERT_RANGE`.
    pub const INSERT_RANGE: i32 = 0x20;
    /// `FALLOC_FL_UNSHARE_RANGE`.
    pub const UNSHARE_RANGE: i32 = 0x40;

    #[cfg(all(test, linux))]
    #[test]
    fn bits_match_libc() {
        assert_eq!(KEEP_SIZE, libc::FALLOC_FL_KEEP_SIZE);
        assert_eq!(PUNCH_HOLE, libc::FALLOC_FL_PUNCH_HOLE);
        assert_eq!(COLLAPSE_RANGE, libc::FALLOC_FL_COLLAPSE_RANGE);
        assert_eq!(ZERO_RANGE, libc::FALLOC_FL_ZERO_RANGE);
        assert_eq!(INSERT_RANGE, libc::FALLOC_FL_INSERT_RANGE);
        assert_eq!(UNSHARE_RANGE, libc::FALLOC_FL_UNSHARE_RANGE);
    }
}

/// Flags for `open`, with Linux's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenFlags(pub i32);

impl OpenFlags {
    /// Open for reading only.
    pub const RDONLY: OpenFlags = OpenFlags(libc::O_RDONLY);
    /// Open for writing only.
    pub const WRONLY: OpenFlags = OpenFlags(libc::O_WRONLY);
    /// Open for reading and writing.
    pub const RDWR: OpenFlags = OpenFlags(libc::O_RDWR);
    /// Create the file if it does not exist.
    pub const CREAT: OpenFlags = OpenFlags(libc::O_CREAT);
    /// With `CREAT`: fail with `EEXIST` if the file exists.
    pub const EXCL: OpenFlags = OpenFlags(libc::O_EXCL);
    /// Truncate to zero length on open.
    pub const TRUNC: OpenFlags = OpenFlags(libc::O_TRUNC);
    /// Every write appends at the end of the file.
    pub const APPEND: OpenFlags = OpenFlags(libc::O_APPEND);
    /// Bypass the page cache (buffers, offsets and lengths must be aligned).
    /// Linux only (macOS has no `O_DIRECT`).
    #[cfg(linux)]
    pub const DIRECT: OpenFlags = OpenFlags(libc::O_DIRECT);
    /// Fail with `ENOTDIR` unless the path is a directory.
    pub const DIRECTORY: OpenFlags = OpenFlags(libc::O_DIRECTORY);
    /// Close the fd on exec (always added by the real kernel layer).
    pub const CLOEXEC: OpenFlags = OpenFlags(libc::O_CLOEXEC);
    /// Non-blocking mode.
    pub const NONBLOCK: OpenFlags = OpenFlags(libc::O_NONBLOCK);
    /// Lustre's `O_LOV_DELAY_CREATE` (`O_NOCTTY | O_ASYNC` since Lustre
    /// 2.4): a created file gets no layout until one is set with the
    /// `lustre.lov` xattr or it is first written. Elsewhere a no-op on
    /// regular files (`open` ignores `O_ASYNC`; `O_NOCTTY` is for ttys).
    pub const LOV_DELAY_CREATE: OpenFlags = OpenFlags(libc::O_NOCTTY | libc::O_ASYNC);

    /// The raw flag bits.
    pub fn bits(self) -> i32 {
        self.0
    }

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: OpenFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The access mode bits (`RDONLY`, `WRONLY` or `RDWR`).
    pub fn access_mode(self) -> OpenFlags {
        OpenFlags(self.0 & libc::O_ACCMODE)
    }
}

impl std::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

/// `whence` of `lseek`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    /// Offset from the start of the file.
    Set,
    /// Offset from the current position.
    Current,
    /// Offset from the end of the file.
    End,
}

/// `how` of `shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more receives.
    Read,
    /// No more sends (the peer sees end of stream).
    Write,
    /// Both directions.
    Both,
}

/// What a readiness wait waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Data to read, a connection to accept, or the peer's shutdown.
    Readable,
    /// Room to write, or a non-blocking connect finished.
    Writable,
}

/// Access-pattern advice for `fadvise` (`posix_fadvise(2)`'s `POSIX_FADV_*`).
///
/// Advice is a hint: it never changes what a read returns, only what the
/// page cache keeps or reads ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// No special treatment (`POSIX_FADV_NORMAL`).
    Normal,
    /// Expect sequential access: read ahead more (`POSIX_FADV_SEQUENTIAL`).
    Sequential,
    /// Expect random access: no read-ahead (`POSIX_FADV_RANDOM`).
    Random,
    /// The data will be accessed once (`POSIX_FADV_NOREUSE`).
    NoReuse,
    /// The data will be needed soon: start reading it (`POSIX_FADV_WILLNEED`).
    WillNeed,
    /// The data will not be needed: drop its clean cached pages
    /// (`POSIX_FADV_DONTNEED`; dirty pages are not dropped, fsync first).
    DontNeed,
}

/// Kind of socket for `socket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// TCP (`SOCK_STREAM`).
    Stream,
    /// UDP (`SOCK_DGRAM`).
    Datagram,
}

/// Socket options the upper layers set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_REUSEADDR`.
    ReuseAddr(bool),
    /// `TCP_NODELAY`.
    NoDelay(bool),
    /// `O_NONBLOCK` on the fd.
    NonBlocking(bool),
}

/// Flags for `send`/`recv` (Linux `MSG_*` values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgFlags(pub i32);

impl MsgFlags {
    /// No flags.
    pub const NONE: MsgFlags = MsgFlags(0);
    /// Look at the data without consuming it.
    pub const PEEK: MsgFlags = MsgFlags(libc::MSG_PEEK);
    /// Fail with `EAGAIN` instead of blocking.
    pub const DONTWAIT: MsgFlags = MsgFlags(libc::MSG_DONTWAIT);
    /// Wait for the full amount (recv).
    pub const WAITALL: MsgFlags = MsgFlags(libc::MSG_WAITALL);
}

/// Kind of file, from `st_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Socket.
    Socket,
    /// Pipe or FIFO.
    Fifo,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Anything else.
    Other,
}

/// The fields of `struct stat` the library uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size_bytes: u64,
    /// Kind of file.
    pub file_type: FileType,
    /// Permission bits (`st_mode & 0o7777`).
    pub permissions: u32,
    /// Preferred I/O block size.
    pub block_size_bytes: u64,
    /// 512-byte blocks allocated (tells holes from data).
    pub blocks_512: u64,
    /// Inode number.
    pub inode: u64,
    /// Device id.
    pub device: u64,
    /// Hard link count.
    pub links: u64,
}

/// The fields of `struct statfs` the library uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStat {
    /// File-system magic (`f_type`), e.g. `0x0BD00BD0` for Lustre.
    pub magic: i64,
    /// Optimal transfer block size.
    pub block_size_bytes: u64,
    /// Total data blocks.
    pub blocks: u64,
    /// Free blocks available to unprivileged users.
    pub blocks_available: u64,
}

/// Blocking syscalls with Linux semantics; see the module docs for the
/// contract every implementation keeps.
pub trait Kernel: Send + Sync + 'static {
    /// Which fd table this kernel's fds index: every real kernel value
    /// shares the process's table (0, the default); each simulated machine
    /// has its own non-zero id. Keys per-fd state kept above the seam (what
    /// a cancelled `recv`/`accept` received, see `crate::op`).
    fn fd_table_id(&self) -> u64 {
        0
    }
    /// `open(2)`; returns the new fd.
    fn open(&self, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd>;
    /// `openat(2)` relative to `dir_fd`.
    fn openat(&self, dir_fd: RawFd, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd>;
    /// `close(2)`. The fd is released even when an error is returned.
    fn close(&self, fd: RawFd) -> SysResult<()>;
    /// A count that moves (wrapping) whenever `fd`'s number may have come
    /// to name another open file: every [`Kernel::close`] of it and every
    /// [`Kernel::note_fd_released`] move it, and it may also move when
    /// other fds close (a false "moved" costs a re-registration, never a
    /// missed reuse). Per-fd state kept above the seam, such as a readiness
    /// driver's edge-triggered registration, compares it to tell the fd it
    /// knew from a new one reusing the number. An fd closed behind the
    /// crate's back (`libc::close` on a raw fd) is not seen.
    fn fd_epoch(&self, fd: RawFd) -> u32;
    /// Record that `fd`'s number was released or adopted some way other
    /// than [`Kernel::close`] (an io_uring `CLOSE`; an fd handed to the
    /// crate with `from_raw_fd`), moving [`Kernel::fd_epoch`].
    fn note_fd_released(&self, fd: RawFd);
    /// `read(2)` at the file offset.
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize>;
    /// `write(2)` at the file offset.
    fn write(&self, fd: RawFd, buf: &[u8]) -> SysResult<usize>;
    /// `pread(2)`.
    fn pread(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> SysResult<usize>;
    /// `pwrite(2)`.
    fn pwrite(&self, fd: RawFd, buf: &[u8], offset: u64) -> SysResult<usize>;
    /// `readv(2)`.
    fn readv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize>;
    /// `writev(2)`.
    fn writev(&self, fd: RawFd, bufs: &[IoSlice<'_>]) -> SysResult<usize>;
    /// `preadv(2)`.
    fn preadv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>], offset: u64) -> SysResult<usize>;
    /// `pwritev(2)`.
    fn pwritev(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize>;
    /// `preadv2(2)` with `RWF_NOWAIT`: read only what the page cache holds
    /// (see the module docs for the results). Default: `EOPNOTSUPP`.
    fn preadv_nowait(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> SysResult<usize> {
        let _ = (fd, bufs, offset);
        Err(Errno::EOPNOTSUPP)
    }
    /// Whether `fd` bypasses the page cache (`O_DIRECT`, from
    /// `fcntl(F_GETFL)`): a nowait call on it still waits for the device
    /// (`RWF_NOWAIT` only refuses to wait for locks and allocation), so
    /// callers that must not block never try one. Default: `Ok(false)`
    /// (the simulator does not model `O_DIRECT`'s device wait).
    fn bypasses_page_cache(&self, fd: RawFd) -> SysResult<bool> {
        let _ = fd;
        Ok(false)
    }
    /// `preadv2(2)` at the file position (offset -1) with `RWF_NOWAIT`:
    /// what a stream (pipe, FIFO, socket) holds now, else `EAGAIN`, without
    /// waiting for bytes even on a blocking fd; on a file, what the page
    /// cache holds, advancing the position. `EOPNOTSUPP` where the fd or
    /// kernel cannot say (a terminal, some devices and file systems).
    /// Default: `EOPNOTSUPP`.
    fn read_nowait(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        let _ = (fd, bufs);
        Err(Errno::EOPNOTSUPP)
    }
    /// `pwritev2(2)` with `RWF_NOWAIT`: write only if it needs no wait
    /// (see the module docs). Default: `EOPNOTSUPP`.
    fn pwritev_nowait(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        let _ = (fd, bufs, offset);
        Err(Errno::EOPNOTSUPP)
    }
    /// `lseek(2)`; returns the new offset.
    fn lseek(&self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64>;
    /// `fsync(2)`. After an error the dirty data may be gone: never treat a
    /// later successful retry as proof the earlier writes are durable.
    fn fsync(&self, fd: RawFd) -> SysResult<()>;
    /// `fdatasync(2)`; same caveat as `fsync`.
    fn fdatasync(&self, fd: RawFd) -> SysResult<()>;
    /// `ftruncate(2)`.
    fn ftruncate(&self, fd: RawFd, len_bytes: u64) -> SysResult<()>;
    /// `fallocate(2)`; `mode` takes Linux `FALLOC_FL_*` bits.
    fn fallocate(&self, fd: RawFd, mode: i32, offset: u64, len_bytes: u64) -> SysResult<()>;
    /// `posix_fadvise(2)` on `len_bytes` bytes from `offset` (`0`: to the end
    /// of the file). `ESPIPE` on pipes and sockets, `EBADF` on a closed fd,
    /// `EINVAL` for an offset past `i64::MAX`. Only a hint: what later reads
    /// return never depends on it.
    fn fadvise(&self, fd: RawFd, offset: u64, len_bytes: u64, advice: Advice) -> SysResult<()>;
    /// `fstat(2)`.
    fn fstat(&self, fd: RawFd) -> SysResult<FileStat>;
    /// `fstatfs(2)`.
    fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat>;
    /// `getxattr(2)`; returns the value length (`ERANGE` if `buf` is short,
    /// `ENODATA` if absent). An empty `buf` asks for the length only.
    fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize>;
    /// `setxattr(2)`.
    fn setxattr(&self, path: &CStr, name: &CStr, value: &[u8], flags: i32) -> SysResult<()>;
    /// `rename(2)`.
    fn rename(&self, from: &CStr, to: &CStr) -> SysResult<()>;
    /// `unlink(2)`.
    fn unlink(&self, path: &CStr) -> SysResult<()>;
    /// `mkdir(2)`.
    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()>;
    /// `socket(2)` for the family of `like` (IPv4 or IPv6).
    fn socket(&self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd>;
    /// `setsockopt(2)` / `fcntl(2)` for the options in [`SockOpt`].
    fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()>;
    /// `bind(2)`.
    fn bind(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()>;
    /// `listen(2)`.
    fn listen(&self, fd: RawFd, backlog: i32) -> SysResult<()>;
    /// `accept4(2)`; the new fd is non-blocking when `nonblocking`.
    fn accept(&self, fd: RawFd, nonblocking: bool) -> SysResult<(RawFd, SocketAddr)>;
    /// `connect(2)`. On a non-blocking socket returns `EINPROGRESS`.
    fn connect(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()>;
    /// `getsockname(2)`.
    fn local_addr(&self, fd: RawFd) -> SysResult<SocketAddr>;
    /// `getpeername(2)`.
    fn peer_addr(&self, fd: RawFd) -> SysResult<SocketAddr>;
    /// `getsockopt(SO_ERROR)`: the pending error of a socket, if any.
    fn take_socket_error(&self, fd: RawFd) -> SysResult<Option<Errno>>;
    /// `recv(2)`.
    fn recv(&self, fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize>;
    /// `send(2)`. Never raises `SIGPIPE`; a closed peer gives `EPIPE`.
    fn send(&self, fd: RawFd, buf: &[u8], flags: MsgFlags) -> SysResult<usize>;
    /// `shutdown(2)`.
    fn shutdown(&self, fd: RawFd, how: Shutdown) -> SysResult<()>;
    /// `sendfile(2)`: copy up to `len_bytes` from `in_fd` at `in_offset`
    /// (the in-fd offset is not moved) to `out_fd`.
    fn sendfile(
        &self,
        out_fd: RawFd,
        in_fd: RawFd,
        in_offset: u64,
        len_bytes: usize,
    ) -> SysResult<usize>;
    /// `poll(2)` on one fd: wait up to `timeout_ms` (negative: forever) for
    /// `interest`. `Ok(true)` when ready (errors and hang-ups count as
    /// ready, so the next call reports them), `Ok(false)` on timeout.
    fn wait_ready(&self, fd: RawFd, interest: Interest, timeout_ms: i32) -> SysResult<bool>;
    /// `socket(AF_UNIX, ty)`, close-on-exec.
    fn unix_socket(&self, ty: SockType) -> SysResult<RawFd>;
    /// `socketpair(AF_UNIX, ty)`, both ends close-on-exec.
    fn unix_pair(&self, ty: SockType) -> SysResult<(RawFd, RawFd)>;
    /// `bind(2)` of a Unix socket to `path` (checked with
    /// [`check_unix_path`]); `EADDRINUSE` when the path exists.
    fn bind_unix(&self, fd: RawFd, path: &Path) -> SysResult<()>;
    /// `connect(2)` of a Unix socket to `path`. Completes at once or fails;
    /// a stream listener whose backlog is full gives `EAGAIN` on a
    /// non-blocking socket (wait for writable, then call again).
    fn connect_unix(&self, fd: RawFd, path: &Path) -> SysResult<()>;
    /// `accept4(2)` on a Unix listener; the new fd is non-blocking and
    /// close-on-exec.
    fn accept_unix(&self, fd: RawFd) -> SysResult<(RawFd, SockAddr)>;
    /// `getsockname(2)` of a socket of any family.
    fn sock_name(&self, fd: RawFd) -> SysResult<SockAddr>;
    /// `getpeername(2)` of a socket of any family.
    fn peer_name(&self, fd: RawFd) -> SysResult<SockAddr>;
    /// `sendmsg(2)`: the bytes of `bufs`, to `to` (`None`: the connected
    /// peer), with `fds` passed as `SCM_RIGHTS` (the caller keeps its own).
    /// Never raises `SIGPIPE`. A datagram is sent whole or not at all
    /// (`EMSGSIZE` when too big).
    fn sendmsg(
        &self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        to: Option<&SockAddr>,
        fds: &[RawFd],
        flags: MsgFlags,
    ) -> SysResult<usize>;
    /// `recvmsg(2)` with `MSG_CMSG_CLOEXEC`, accepting up to `fds_max`
    /// passed fds (more: closed, `fds_truncated`). A datagram longer than
    /// `bufs` is cut and reported `truncated`.
    fn recvmsg(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        fds_max: usize,
        flags: MsgFlags,
    ) -> SysResult<RecvMeta>;
    /// `pipe2(O_CLOEXEC)`; returns `(read_end, write_end)`.
    fn pipe(&self) -> SysResult<(RawFd, RawFd)>;
    /// `splice(2)` between a pipe and another fd; `None` offsets use the fd offset.
    fn splice(
        &self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len_bytes: usize,
    ) -> SysResult<usize>;
}

/// A blocking job handed to an [`Offload`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// The offload queue is full; the job is handed back untouched.
pub struct Saturated(pub Job);

impl std::fmt::Debug for Saturated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Saturated")
    }
}

/// Whether an offload's accepted jobs are waiting for a worker
/// ([`Offload::queue_probe`]).
pub type QueueProbe = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// What a job queued with [`Offload::try_offload_gated`] waits for before
/// it may run: `fd` ready for `interest`, or `open_anyway` saying true.
///
/// ```
/// use iokernel::sys::{Gate, Interest};
/// use std::sync::Arc;
/// let gate = Gate { fd: 7, interest: Interest::Readable, open_anyway: Arc::new(|| false) };
/// assert_eq!((gate.fd, gate.interest), (7, Interest::Readable));
/// ```
#[derive(Clone)]
pub struct Gate {
    /// The socket (or pipe) the job's syscall needs ready.
    pub fd: RawFd,
    /// The direction it needs.
    pub interest: Interest,
    /// True when the job should run whatever the fd's readiness: its op
    /// was abandoned (the job then stops without the syscall), or it can
    /// finish without the fd (bytes or a connection a cancelled op left
    /// over). Called by the offload, never while it runs a job; cheap and
    /// side-effect free.
    pub open_anyway: std::sync::Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("fd", &self.fd)
            .field("interest", &self.interest)
            .finish_non_exhaustive()
    }
}

/// Runs blocking jobs on worker threads.
///
/// Contract: a job accepted by `try_offload` runs exactly once, to the end,
/// even if nobody waits for it any more (that is what keeps buffers of
/// cancelled ops alive until the syscall returns). Jobs may run in any order
/// and concurrently with each other. When the bounded queue is full,
/// `try_offload` returns [`Saturated`] at once; a caller that wants to wait
/// registers a waker with `wake_when_free`, which is woken (possibly
/// spuriously) once a queue slot frees.
///
/// An offload whose `may_block` is false (the simulator's, which runs jobs
/// on the runtime's own thread) must never be given a job that waits for
/// another task: drivers then run socket ops as one non-blocking attempt
/// per job and retry on `EAGAIN` instead of waiting inside the job. The
/// retry goes through `try_offload_gated`, so such an offload holds it
/// until the socket is ready rather than running it again at once.
pub trait Offload: Send + Sync + 'static {
    /// Queue `job`, or hand it back if the queue is full. `label` names the
    /// syscall the job performs (for traces and simulated latency).
    fn try_offload(&self, label: &'static str, job: Job) -> Result<(), Saturated>;
    /// Queue `job` to run once `gate` opens (its fd is ready, or its
    /// `open_anyway` says so); saturation as for `try_offload`. The job
    /// still runs exactly once. The job is one non-blocking attempt of a
    /// socket op that just found its fd not ready: an offload that may not
    /// block must not run it before something changed, or the attempt
    /// spins. Default: queue it at once (a job on a thread that may block
    /// waits for readiness itself).
    fn try_offload_gated(
        &self,
        label: &'static str,
        gate: Gate,
        job: Job,
    ) -> Result<(), Saturated> {
        let _ = gate;
        self.try_offload(label, job)
    }
    /// Whether a job may block its thread waiting for readiness.
    fn may_block(&self) -> bool {
        true
    }
    /// A probe saying whether accepted jobs are waiting for a worker
    /// (every worker is busy); `None` when that cannot happen to a job
    /// that waits. A job waiting for a socket's readiness then gives its
    /// thread up after one wait slice, so waiting ops cannot hold every
    /// thread while the op that would make them ready sits in the queue.
    /// The probe must not own the offload: jobs hold it, and the last
    /// owner dropping an offload joins its threads.
    fn queue_probe(&self) -> Option<QueueProbe> {
        None
    }
    /// Wake `waker` once a queue slot is free.
    fn wake_when_free(&self, waker: &Waker);
    /// Number of worker threads.
    fn threads(&self) -> usize;
}

/// Monotonic time source.
pub trait Clock: Send + Sync + 'static {
    /// Time since this clock's origin.
    fn now(&self) -> Duration;
}
