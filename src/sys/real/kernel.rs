//! [`RealKernel`]: the seam's [`Kernel`] over the host's libc.
//!
//! Every call goes through [`syscall`] (`-1` becomes an [`Errno`], `EINTR`
//! is retried) except `close`, which goes through [`syscall_close`]. Fds are
//! always created close-on-exec, `send` never raises `SIGPIPE`, and offsets
//! that do not fit `off_t` are rejected with `EINVAL` before reaching the
//! kernel instead of wrapping to a negative offset.

// FFI file: every `Kernel` method is one libc call.
#![allow(unsafe_code)]

use super::ffi::{addr_from_storage, file_type, socklen, zeroed_storage, RawAddr};
#[cfg(linux)]
use super::syscall::syscall_once;
use super::syscall::{syscall, syscall_close};
use crate::sys::{
    Advice, Errno, FileStat, FsStat, Interest, Kernel, MsgFlags, OpenFlags, RecvMeta, Shutdown,
    SockAddr, SockOpt, SockType, SysResult, Whence,
};
use std::ffi::CStr;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Most buffers one vectored call passes (Linux `UIO_MAXIOV`). Buffers past
/// it are left for the caller's next call, exactly like a short transfer.
const IOV_MAX: usize = 1024;

/// Most bytes one `sendfile` copies where it is emulated (off Linux).
#[cfg(not(linux))]
const SENDFILE_COPY_BYTES: usize = 1 << 20;

/// The seam over the real Linux kernel: each method is one blocking syscall.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealKernel;

/// `off` as a file offset; above `i64::MAX` it would wrap, so `EINVAL`.
fn file_offset(off: u64) -> SysResult<libc::off_t> {
    libc::off_t::try_from(off).map_err(|_| Errno::EINVAL)
}

/// `off` as a `splice` offset, with the same bound as [`file_offset`].
#[cfg(linux)]
fn splice_offset(off: u64) -> SysResult<libc::loff_t> {
    libc::loff_t::try_from(off).map_err(|_| Errno::EINVAL)
}

/// `off` as a signed `lseek` offset (identity on 64-bit Linux).
#[allow(clippy::useless_conversion)]
fn seek_offset(off: i64) -> SysResult<libc::off_t> {
    libc::off_t::try_from(off).map_err(|_| Errno::EINVAL)
}

/// The byte count of a successful call; [`syscall`] has already turned the
/// only negative value (`-1`) into an error.
pub(super) fn byte_count(n: isize) -> usize {
    n as usize
}

/// A raw syscall's non-negative return as a byte count.
#[cfg(linux)]
fn raw_byte_count(n: libc::c_long) -> usize {
    n as usize
}

/// A file offset as the (low, high) words of a raw `preadv2`/`pwritev2`
/// position. The kernel joins them as `high << 32 << 32 | low` for a
/// 64-bit long (so there the high word is shifted out and the low one
/// carries the whole offset) and as `high << 32 | low` for a 32-bit one.
#[cfg(linux)]
// `off_t` is `i64` here, `i32` on 32-bit targets without large files.
#[allow(clippy::useless_conversion)]
fn raw_pos(offset: libc::off_t) -> (libc::c_long, libc::c_long) {
    let offset = i64::from(offset);
    if libc::c_long::BITS == 64 {
        (offset as libc::c_long, 0)
    } else {
        (offset as libc::c_long, (offset >> 32) as libc::c_long)
    }
}

/// `preadv2(fd, bufs, pos, RWF_NOWAIT)`, one attempt (see [`nowait_rw`]).
#[cfg(linux)]
fn preadv2_nowait(fd: RawFd, bufs: &mut [IoSliceMut<'_>], pos: libc::off_t) -> SysResult<usize> {
    let count = iov_count(bufs.len());
    let iov = bufs.as_mut_ptr().cast::<libc::iovec>();
    // SAFETY: IoSliceMut is ABI-compatible with iovec; `count` entries are
    // in bounds and each points at a live writable buffer.
    unsafe { nowait_rw(libc::SYS_preadv2, fd, iov, count, pos) }
}

/// `preadv2`/`pwritev2` (`number`) with `RWF_NOWAIT`, one attempt: a nowait
/// call that was interrupted is a miss like any other (the caller goes the
/// blocking way). The raw syscall, not glibc's wrapper: the wrapper is a
/// cancellation point, and switching cancellation on and off around it
/// cost ~2 % of a cached 4 KiB read in profiles (`perf record`, iok bench
/// QD1).
///
/// # Safety
///
/// `iov` points at `count` live iovecs whose buffers are writable (for
/// `preadv2`) or readable (for `pwritev2`) for their lengths.
#[cfg(linux)]
unsafe fn nowait_rw(
    number: libc::c_long,
    fd: RawFd,
    iov: *const libc::iovec,
    count: libc::c_int,
    pos: libc::off_t,
) -> SysResult<usize> {
    let (low, high) = raw_pos(pos);
    syscall_once(|| {
        // SAFETY: the caller vouches for `iov` and `count`; the argument list
        // is preadv2's and pwritev2's (fd, iov, iovcnt, pos_l, pos_h, flags).
        unsafe { libc::syscall(number, fd, iov, count, low, high, libc::RWF_NOWAIT) }
    })
    .map(raw_byte_count)
    .map_err(nowait_errno)
}

/// How many of `len` buffers one vectored call passes.
/// A kernel without `preadv2`/`pwritev2` says `ENOSYS`; the seam reports
/// it as `EOPNOTSUPP` (nowait I/O is not supported here), and an
/// interrupted attempt as `EAGAIN` (a miss: go the blocking way).
#[cfg(linux)]
fn nowait_errno(errno: Errno) -> Errno {
    match errno {
        Errno::ENOSYS => Errno::EOPNOTSUPP,
        Errno::EINTR => Errno::EAGAIN,
        other => other,
    }
}

fn iov_count(len: usize) -> libc::c_int {
    len.min(IOV_MAX) as libc::c_int
}

/// Run `call` with a pointer to a zeroed `sockaddr_storage` and its length
/// (reset before every retry); returns the call's result and the storage.
pub(super) fn sockaddr_out(
    mut call: impl FnMut(*mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int,
) -> SysResult<(libc::c_int, libc::sockaddr_storage, libc::socklen_t)> {
    let mut storage = zeroed_storage();
    let mut len = 0;
    let ret = syscall(|| {
        len = socklen::<libc::sockaddr_storage>();
        call(ptr::from_mut(&mut storage).cast(), &mut len)
    })?;
    Ok((ret, storage, len))
}

// Field types differ between targets; on 64-bit Linux some are identities.
#[allow(clippy::useless_conversion)]
fn file_stat(st: &libc::stat) -> FileStat {
    FileStat {
        size_bytes: u64::try_from(st.st_size).unwrap_or(0),
        file_type: file_type(st.st_mode),
        permissions: u32::from(st.st_mode & 0o7777),
        block_size_bytes: u64::try_from(st.st_blksize).unwrap_or(0),
        blocks_512: u64::try_from(st.st_blocks).unwrap_or(0),
        inode: u64::from(st.st_ino),
        device: u64::try_from(st.st_dev).unwrap_or(0),
        links: u64::from(st.st_nlink),
    }
}

// Field types differ between targets; on 64-bit Linux some are identities.
#[allow(clippy::useless_conversion)]
fn fs_stat(st: &libc::statfs) -> FsStat {
    FsStat {
        magic: i64::from(st.f_type),
        block_size_bytes: u64::try_from(st.f_bsize).unwrap_or(0),
        blocks: u64::try_from(st.f_blocks).unwrap_or(0),
        blocks_available: u64::try_from(st.f_bavail).unwrap_or(0),
    }
}

/// A permission mode as `mode_t` (`u16` on macOS and the BSDs): a mode
/// that does not fit is `EINVAL`, never truncated.
// mode_t is u32 on Linux: the conversion is an identity there.
#[allow(clippy::useless_conversion)]
fn file_mode(mode: u32) -> SysResult<libc::mode_t> {
    libc::mode_t::try_from(mode).map_err(|_| Errno::EINVAL)
}

/// Mark a new fd close-on-exec (and non-blocking when asked): systems
/// without `SOCK_CLOEXEC`/`accept4`/`pipe2` set the flags after the call.
/// On failure the fd is closed and the error returned.
#[cfg(not(linux))]
pub(super) fn new_fd_flags(fd: RawFd, nonblocking: bool) -> SysResult<RawFd> {
    let cloexec = syscall(|| {
        // SAFETY: F_SETFD takes a plain int argument, no pointer.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }
    });
    let flags = cloexec.and_then(|_| match nonblocking {
        true => set_nonblocking(fd, true),
        false => Ok(()),
    });
    match flags {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = RealKernel.close(fd);
            Err(e)
        }
    }
}

/// One raw `accept`, close-on-exec (and non-blocking when asked) from the
/// start on Linux (`accept4`).
#[cfg(linux)]
pub(super) fn accept_raw(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    nonblocking: bool,
) -> libc::c_int {
    let nonblock = if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    let flags = libc::SOCK_CLOEXEC | nonblock;
    // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
    unsafe { libc::accept4(fd, addr, len, flags) }
}

/// One raw `accept`; the caller sets the fd flags ([`new_fd_flags`]).
#[cfg(not(linux))]
pub(super) fn accept_raw(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    _nonblocking: bool,
) -> libc::c_int {
    // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
    unsafe { libc::accept(fd, addr, len) }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> SysResult<()> {
    syscall(|| {
        // SAFETY: `value` is a live c_int and the length passed is its size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                ptr::from_ref(&value).cast(),
                socklen::<libc::c_int>(),
            )
        }
    })?;
    Ok(())
}

fn set_nonblocking(fd: RawFd, on: bool) -> SysResult<()> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = syscall(|| unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        syscall(|| {
            // SAFETY: F_SETFL takes a plain int argument, no pointer.
            unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) }
        })?;
    }
    Ok(())
}

#[cfg(linux)]
fn offset_ptr(off: &mut Option<libc::loff_t>) -> *mut libc::loff_t {
    off.as_mut().map_or(ptr::null_mut(), ptr::from_mut)
}

/// Slots of the process's fd epochs; fds share a slot modulo this, so a
/// close may move another fd's epoch too (allowed: see `Kernel::fd_epoch`).
const FD_EPOCH_SLOTS: usize = 4096;

/// The process's fd epochs (one fd table per process): lock-free, read on
/// every socket op of a readiness driver.
static FD_EPOCHS: [AtomicU32; FD_EPOCH_SLOTS] = [const { AtomicU32::new(0) }; FD_EPOCH_SLOTS];

fn epoch_slot(fd: RawFd) -> usize {
    fd as usize % FD_EPOCH_SLOTS
}

fn bump_fd_epoch(fd: RawFd) {
    FD_EPOCHS[epoch_slot(fd)].fetch_add(1, Ordering::AcqRel);
}

/// A number this process was just given for a new socket or pipe: its
/// epoch moves, so state kept for an earlier fd of the same number (one
/// closed behind the crate's back, say by std) is not taken for it.
fn fresh_fd(fd: RawFd) -> RawFd {
    bump_fd_epoch(fd);
    fd
}

impl Kernel for RealKernel {
    fn open(&self, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        let flags = (flags | OpenFlags::CLOEXEC).bits();
        syscall(|| {
            // SAFETY: `path` is NUL-terminated and outlives the call.
            unsafe { libc::open(path.as_ptr(), flags, mode) }
        })
    }

    fn openat(&self, dir_fd: RawFd, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        let flags = (flags | OpenFlags::CLOEXEC).bits();
        syscall(|| {
            // SAFETY: `path` is NUL-terminated and outlives the call.
            unsafe { libc::openat(dir_fd, path.as_ptr(), flags, mode) }
        })
    }

    fn close(&self, fd: RawFd) -> SysResult<()> {
        let closed = syscall_close(|| {
            // SAFETY: close takes no pointers.
            unsafe { libc::close(fd) }
        });
        // After the close: a number reused from here on sees the new epoch.
        bump_fd_epoch(fd);
        closed
    }

    fn fd_epoch(&self, fd: RawFd) -> u32 {
        FD_EPOCHS[epoch_slot(fd)].load(Ordering::Acquire)
    }

    fn note_fd_released(&self, fd: RawFd) {
        bump_fd_epoch(fd);
    }

    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
        syscall(|| {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
        })
        .map(byte_count)
    }

    fn write(&self, fd: RawFd, buf: &[u8]) -> SysResult<usize> {
        syscall(|| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
        })
        .map(byte_count)
    }

    fn pread(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let offset = file_offset(offset)?;
        syscall(|| {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) }
        })
        .map(byte_count)
    }

    fn pwrite(&self, fd: RawFd, buf: &[u8], offset: u64) -> SysResult<usize> {
        let offset = file_offset(offset)?;
        syscall(|| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) }
        })
        .map(byte_count)
    }

    fn readv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        let count = iov_count(bufs.len());
        syscall(|| {
            // SAFETY: IoSliceMut is ABI-compatible with iovec; `count` entries
            // are in bounds and each points at a live writable buffer.
            unsafe { libc::readv(fd, bufs.as_mut_ptr().cast::<libc::iovec>(), count) }
        })
        .map(byte_count)
    }

    fn writev(&self, fd: RawFd, bufs: &[IoSlice<'_>]) -> SysResult<usize> {
        let count = iov_count(bufs.len());
        syscall(|| {
            // SAFETY: IoSlice is ABI-compatible with iovec; `count` entries
            // are in bounds and each points at a live readable buffer.
            unsafe { libc::writev(fd, bufs.as_ptr().cast::<libc::iovec>(), count) }
        })
        .map(byte_count)
    }

    fn preadv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>], offset: u64) -> SysResult<usize> {
        let offset = file_offset(offset)?;
        let count = iov_count(bufs.len());
        syscall(|| {
            // SAFETY: IoSliceMut is ABI-compatible with iovec; `count` entries
            // are in bounds and each points at a live writable buffer.
            unsafe { libc::preadv(fd, bufs.as_mut_ptr().cast::<libc::iovec>(), count, offset) }
        })
        .map(byte_count)
    }

    fn pwritev(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        let offset = file_offset(offset)?;
        let count = iov_count(bufs.len());
        syscall(|| {
            // SAFETY: IoSlice is ABI-compatible with iovec; `count` entries
            // are in bounds and each points at a live readable buffer.
            unsafe { libc::pwritev(fd, bufs.as_ptr().cast::<libc::iovec>(), count, offset) }
        })
        .map(byte_count)
    }

    #[cfg(linux)]
    fn bypasses_page_cache(&self, fd: RawFd) -> SysResult<bool> {
        // SAFETY: F_GETFL takes no pointer argument.
        let flags = syscall(|| unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        Ok(flags & libc::O_DIRECT != 0)
    }

    #[cfg(linux)]
    fn preadv_nowait(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> SysResult<usize> {
        preadv2_nowait(fd, bufs, file_offset(offset)?)
    }

    #[cfg(linux)]
    fn read_nowait(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        // Position -1 is the file position (`preadv2(2)`), which is what a
        // stream has.
        preadv2_nowait(fd, bufs, -1)
    }

    #[cfg(linux)]
    fn pwritev_nowait(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        let offset = file_offset(offset)?;
        let count = iov_count(bufs.len());
        let iov = bufs.as_ptr().cast::<libc::iovec>();
        // SAFETY: IoSlice is ABI-compatible with iovec; `count` entries are
        // in bounds and each points at a live readable buffer.
        unsafe { nowait_rw(libc::SYS_pwritev2, fd, iov, count, offset) }
    }

    fn lseek(&self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64> {
        let offset = seek_offset(offset)?;
        let whence = match whence {
            Whence::Set => libc::SEEK_SET,
            Whence::Current => libc::SEEK_CUR,
            Whence::End => libc::SEEK_END,
        };
        let pos = syscall(|| {
            // SAFETY: lseek takes no pointers.
            unsafe { libc::lseek(fd, offset, whence) }
        })?;
        u64::try_from(pos).map_err(|_| Errno::EOVERFLOW)
    }

    fn fsync(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: fsync takes no pointers.
        syscall(|| unsafe { libc::fsync(fd) }).map(drop)
    }

    #[cfg(linux)]
    fn fdatasync(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: fdatasync takes no pointers.
        syscall(|| unsafe { libc::fdatasync(fd) }).map(drop)
    }

    /// macOS has no `fdatasync`: `fsync` is the stronger promise.
    #[cfg(not(linux))]
    fn fdatasync(&self, fd: RawFd) -> SysResult<()> {
        self.fsync(fd)
    }

    fn ftruncate(&self, fd: RawFd, len_bytes: u64) -> SysResult<()> {
        let len = file_offset(len_bytes)?;
        // SAFETY: ftruncate takes no pointers.
        syscall(|| unsafe { libc::ftruncate(fd, len) }).map(drop)
    }

    #[cfg(linux)]
    fn fallocate(&self, fd: RawFd, mode: i32, offset: u64, len_bytes: u64) -> SysResult<()> {
        let offset = file_offset(offset)?;
        let len = file_offset(len_bytes)?;
        // SAFETY: fallocate takes no pointers.
        syscall(|| unsafe { libc::fallocate(fd, mode, offset, len) }).map(drop)
    }

    /// `fallocate` is Linux's: elsewhere it is what a file system without
    /// it says (`EOPNOTSUPP`), after the same offset checks.
    #[cfg(not(linux))]
    fn fallocate(&self, _fd: RawFd, _mode: i32, offset: u64, len_bytes: u64) -> SysResult<()> {
        file_offset(offset)?;
        file_offset(len_bytes)?;
        Err(Errno::EOPNOTSUPP)
    }

    #[cfg(linux)]
    fn fadvise(&self, fd: RawFd, offset: u64, len_bytes: u64, advice: Advice) -> SysResult<()> {
        let offset = file_offset(offset)?;
        let len = file_offset(len_bytes)?;
        let advice = match advice {
            Advice::Normal => libc::POSIX_FADV_NORMAL,
            Advice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
            Advice::Random => libc::POSIX_FADV_RANDOM,
            Advice::NoReuse => libc::POSIX_FADV_NOREUSE,
            Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
            Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
        };
        // posix_fadvise returns the error number itself instead of setting
        // errno, and is never interrupted (it does not sleep on a signal).
        // SAFETY: posix_fadvise takes no pointers.
        match unsafe { libc::posix_fadvise(fd, offset, len, advice) } {
            0 => Ok(()),
            errno => Err(Errno(errno)),
        }
    }

    /// macOS has no `posix_fadvise`; advice is only a hint, so off Linux it
    /// is checked (offsets, a live fd) and otherwise dropped.
    #[cfg(not(linux))]
    fn fadvise(&self, fd: RawFd, offset: u64, len_bytes: u64, _advice: Advice) -> SysResult<()> {
        file_offset(offset)?;
        file_offset(len_bytes)?;
        self.fstat(fd).map(drop)
    }

    fn fstat(&self, fd: RawFd) -> SysResult<FileStat> {
        // SAFETY: `stat` is plain old data; all-zero bytes are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        syscall(|| {
            // SAFETY: `st` is a live, writable `stat` for the whole call.
            unsafe { libc::fstat(fd, &mut st) }
        })?;
        Ok(file_stat(&st))
    }

    fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat> {
        // SAFETY: `statfs` is plain old data; all-zero bytes are valid.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        syscall(|| {
            // SAFETY: `st` is a live, writable `statfs` for the whole call.
            unsafe { libc::fstatfs(fd, &mut st) }
        })?;
        Ok(fs_stat(&st))
    }

    #[cfg(linux)]
    fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
        syscall(|| {
            // SAFETY: `path`/`name` are NUL-terminated; `buf` is valid for
            // writes of `buf.len()` bytes (length 0 only asks for the size).
            unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        })
        .map(byte_count)
    }

    #[cfg(linux)]
    fn setxattr(&self, path: &CStr, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
        syscall(|| {
            // SAFETY: `path`/`name` are NUL-terminated; `value` is valid for
            // reads of `value.len()` bytes.
            unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    flags,
                )
            }
        })
        .map(drop)
    }

    /// Linux's xattr calls (`lustre.lov`); macOS and the BSDs spell them
    /// differently and have no Lustre, so: `EOPNOTSUPP`.
    #[cfg(not(linux))]
    fn getxattr(&self, _path: &CStr, _name: &CStr, _buf: &mut [u8]) -> SysResult<usize> {
        Err(Errno::EOPNOTSUPP)
    }

    /// See `getxattr`.
    #[cfg(not(linux))]
    fn setxattr(&self, _path: &CStr, _name: &CStr, _value: &[u8], _flags: i32) -> SysResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    fn rename(&self, from: &CStr, to: &CStr) -> SysResult<()> {
        // SAFETY: both paths are NUL-terminated and outlive the call.
        syscall(|| unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
    }

    fn unlink(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: `path` is NUL-terminated and outlives the call.
        syscall(|| unsafe { libc::unlink(path.as_ptr()) }).map(drop)
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
        let mode = file_mode(mode)?;
        // SAFETY: `path` is NUL-terminated and outlives the call.
        syscall(|| unsafe { libc::mkdir(path.as_ptr(), mode) }).map(drop)
    }

    fn socket(&self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd> {
        let domain = match like {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let ty = match ty {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Datagram => libc::SOCK_DGRAM,
        };
        #[cfg(linux)]
        let ty = ty | libc::SOCK_CLOEXEC;
        // SAFETY: socket takes no pointers.
        let fd = syscall(|| unsafe { libc::socket(domain, ty, 0) })?;
        #[cfg(not(linux))]
        let fd = new_fd_flags(fd, false)?;
        Ok(fresh_fd(fd))
    }

    fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()> {
        match opt {
            SockOpt::ReuseAddr(on) => {
                setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, on.into())
            }
            SockOpt::NoDelay(on) => {
                setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on.into())
            }
            SockOpt::NonBlocking(on) => set_nonblocking(fd, on),
        }
    }

    fn bind(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        let raw = RawAddr::new(addr);
        let (addr_ptr, len) = raw.as_ptr();
        // SAFETY: `addr_ptr` points at `len` bytes of `raw`, alive here.
        syscall(|| unsafe { libc::bind(fd, addr_ptr, len) }).map(drop)
    }

    fn listen(&self, fd: RawFd, backlog: i32) -> SysResult<()> {
        // SAFETY: listen takes no pointers.
        syscall(|| unsafe { libc::listen(fd, backlog) }).map(drop)
    }

    fn accept(&self, fd: RawFd, nonblocking: bool) -> SysResult<(RawFd, SocketAddr)> {
        let (new_fd, storage, len) =
            sockaddr_out(|addr, len| accept_raw(fd, addr, len, nonblocking))?;
        #[cfg(not(linux))]
        let new_fd = new_fd_flags(new_fd, nonblocking)?;
        match addr_from_storage(&storage, len) {
            Ok(peer) => Ok((fresh_fd(new_fd), peer)),
            Err(e) => {
                // Nobody else knows the new fd: release it; `e` is the error to report.
                let _ = self.close(new_fd);
                Err(e)
            }
        }
    }

    fn connect(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        // Retrying after EINTR is right on Linux: a blocking connect resumes
        // waiting for (or reports the outcome of) the pending handshake.
        let raw = RawAddr::new(addr);
        let (addr_ptr, len) = raw.as_ptr();
        // SAFETY: `addr_ptr` points at `len` bytes of `raw`, alive here.
        syscall(|| unsafe { libc::connect(fd, addr_ptr, len) }).map(drop)
    }

    fn local_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        let (_, storage, len) = sockaddr_out(|addr, len| {
            // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
            unsafe { libc::getsockname(fd, addr, len) }
        })?;
        addr_from_storage(&storage, len)
    }

    fn peer_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        let (_, storage, len) = sockaddr_out(|addr, len| {
            // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
            unsafe { libc::getpeername(fd, addr, len) }
        })?;
        addr_from_storage(&storage, len)
    }

    fn take_socket_error(&self, fd: RawFd) -> SysResult<Option<Errno>> {
        let mut err: libc::c_int = 0;
        let mut len = socklen::<libc::c_int>();
        syscall(|| {
            // SAFETY: `err` is a live c_int and `len` holds its size.
            unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    ptr::from_mut(&mut err).cast(),
                    &mut len,
                )
            }
        })?;
        Ok((err != 0).then_some(Errno(err)))
    }

    // The raw syscall on Linux, as in `preadv_nowait`: glibc's `recv` and
    // `send` are cancellation points, and switching cancellation on and
    // off around them took ~120 user-space instructions per echo round
    // trip (callgrind, `benches/compare/echo-instructions.sh`).
    #[cfg(linux)]
    fn recv(&self, fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        syscall(|| {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the
            // argument list is recvfrom's (fd, buf, len, flags, addr,
            // addrlen), with no address asked for.
            unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    fd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    flags.0,
                    std::ptr::null_mut::<libc::sockaddr>(),
                    std::ptr::null_mut::<libc::socklen_t>(),
                )
            }
        })
        .map(raw_byte_count)
    }

    #[cfg(not(linux))]
    fn recv(&self, fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        syscall(|| {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags.0) }
        })
        .map(byte_count)
    }

    #[cfg(linux)]
    fn send(&self, fd: RawFd, buf: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let flags = flags.0 | libc::MSG_NOSIGNAL;
        syscall(|| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes; the
            // argument list is sendto's (fd, buf, len, flags, addr,
            // addrlen), with no address (a connected socket).
            unsafe {
                libc::syscall(
                    libc::SYS_sendto,
                    fd,
                    buf.as_ptr(),
                    buf.len(),
                    flags,
                    std::ptr::null::<libc::sockaddr>(),
                    0 as libc::socklen_t,
                )
            }
        })
        .map(raw_byte_count)
    }

    #[cfg(not(linux))]
    fn send(&self, fd: RawFd, buf: &[u8], flags: MsgFlags) -> SysResult<usize> {
        let flags = flags.0 | libc::MSG_NOSIGNAL;
        syscall(|| {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) }
        })
        .map(byte_count)
    }

    fn unix_socket(&self, ty: SockType) -> SysResult<RawFd> {
        super::msg::unix_socket(ty).map(fresh_fd)
    }

    fn unix_pair(&self, ty: SockType) -> SysResult<(RawFd, RawFd)> {
        super::msg::unix_pair(ty).map(|(a, b)| (fresh_fd(a), fresh_fd(b)))
    }

    fn bind_unix(&self, fd: RawFd, path: &Path) -> SysResult<()> {
        super::msg::bind_unix(fd, path)
    }

    fn connect_unix(&self, fd: RawFd, path: &Path) -> SysResult<()> {
        super::msg::connect_unix(fd, path)
    }

    fn accept_unix(&self, fd: RawFd) -> SysResult<(RawFd, SockAddr)> {
        super::msg::accept_unix(fd).map(|(new_fd, peer)| (fresh_fd(new_fd), peer))
    }

    fn sock_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        super::msg::sock_name(fd)
    }

    fn peer_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        super::msg::peer_name(fd)
    }

    fn sendmsg(
        &self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        to: Option<&SockAddr>,
        fds: &[RawFd],
        flags: MsgFlags,
    ) -> SysResult<usize> {
        super::msg::sendmsg(fd, bufs, to, fds, flags)
    }

    fn recvmsg(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        fds_max: usize,
        flags: MsgFlags,
    ) -> SysResult<RecvMeta> {
        super::msg::recvmsg(fd, bufs, fds_max, flags)
    }

    fn shutdown(&self, fd: RawFd, how: Shutdown) -> SysResult<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown takes no pointers.
        syscall(|| unsafe { libc::shutdown(fd, how) }).map(drop)
    }

    #[cfg(linux)]
    fn sendfile(
        &self,
        out_fd: RawFd,
        in_fd: RawFd,
        in_offset: u64,
        len_bytes: usize,
    ) -> SysResult<usize> {
        // A local copy: the kernel advances it, not `in_fd`'s own offset.
        let mut offset = file_offset(in_offset)?;
        syscall(|| {
            // SAFETY: `offset` is a live, writable off_t for the whole call.
            unsafe { libc::sendfile(out_fd, in_fd, &mut offset, len_bytes) }
        })
        .map(byte_count)
    }

    /// No `sendfile(2)` with Linux's meaning elsewhere (macOS and FreeBSD
    /// send only to sockets, with other signatures): one bounded copy
    /// through memory, a short count as `sendfile` may give.
    #[cfg(not(linux))]
    fn sendfile(
        &self,
        out_fd: RawFd,
        in_fd: RawFd,
        in_offset: u64,
        len_bytes: usize,
    ) -> SysResult<usize> {
        let mut buf = vec![0u8; len_bytes.min(SENDFILE_COPY_BYTES)];
        let got = self.pread(in_fd, &mut buf, in_offset)?;
        self.write(out_fd, &buf[..got])
    }

    fn wait_ready(&self, fd: RawFd, interest: Interest, timeout_ms: i32) -> SysResult<bool> {
        let events = match interest {
            Interest::Readable => libc::POLLIN,
            Interest::Writable => libc::POLLOUT,
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ready = syscall(|| {
            // SAFETY: `pfd` is one live pollfd, matching the count of 1.
            unsafe { libc::poll(&mut pfd, 1, timeout_ms) }
        })?;
        Ok(ready > 0)
    }

    fn pipe(&self) -> SysResult<(RawFd, RawFd)> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        #[cfg(linux)]
        syscall(|| {
            // SAFETY: `fds` is a live, writable array of two c_ints.
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }
        })?;
        #[cfg(not(linux))]
        {
            syscall(|| {
                // SAFETY: `fds` is a live, writable array of two c_ints.
                unsafe { libc::pipe(fds.as_mut_ptr()) }
            })?;
            if let Err(e) = new_fd_flags(fds[0], false) {
                let _ = self.close(fds[1]);
                return Err(e);
            }
            if let Err(e) = new_fd_flags(fds[1], false) {
                let _ = self.close(fds[0]);
                return Err(e);
            }
        }
        Ok((fresh_fd(fds[0]), fresh_fd(fds[1])))
    }

    #[cfg(linux)]
    fn splice(
        &self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len_bytes: usize,
    ) -> SysResult<usize> {
        let mut off_in = off_in.map(splice_offset).transpose()?;
        let mut off_out = off_out.map(splice_offset).transpose()?;
        syscall(|| {
            let (in_ptr, out_ptr) = (offset_ptr(&mut off_in), offset_ptr(&mut off_out));
            // SAFETY: each offset pointer is null or points at a live loff_t.
            unsafe { libc::splice(fd_in, in_ptr, fd_out, out_ptr, len_bytes, 0) }
        })
        .map(byte_count)
    }

    /// `splice` is Linux's: elsewhere the call does not exist.
    #[cfg(not(linux))]
    fn splice(
        &self,
        _fd_in: RawFd,
        _off_in: Option<u64>,
        _fd_out: RawFd,
        _off_out: Option<u64>,
        _len_bytes: usize,
    ) -> SysResult<usize> {
        Err(Errno::ENOSYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    const K: RealKernel = RealKernel;

    fn cpath(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).expect("temp paths have no NUL")
    }

    fn create(dir: &Path, name: &str) -> (CString, RawFd) {
        let path = cpath(&dir.join(name));
        let flags = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::TRUNC;
        let fd = K.open(&path, flags, 0o644).expect("create file");
        (path, fd)
    }

    /// The raw `preadv2`/`pwritev2` calls pass offsets above 4 GiB whole
    /// (their position is split into words by hand).
    #[cfg(linux)]
    #[test]
    fn nowait_calls_reach_offsets_above_4_gib() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, fd) = create(dir.path(), "sparse");
        let far = (5u64 << 30) + 3;
        assert_eq!(K.pwrite(fd, b"far", far), Ok(3));
        let mut buf = [0u8; 3];
        // Just written, so cached (a file system without nowait reads
        // says so, and then there is nothing to check).
        match K.preadv_nowait(fd, &mut [IoSliceMut::new(&mut buf)], far) {
            Ok(n) => assert_eq!(&buf[..n], b"far"),
            Err(errno) => assert_eq!(errno, Errno::EOPNOTSUPP),
        }
        match K.pwritev_nowait(fd, &[IoSlice::new(b"FAR")], far) {
            Ok(3) => {
                assert_eq!(K.pread(fd, &mut buf, far), Ok(3));
                assert_eq!(&buf, b"FAR");
            }
            Ok(n) => panic!("a 3-byte nowait write wrote {n}"),
            Err(errno) => assert!(matches!(errno, Errno::EAGAIN | Errno::EOPNOTSUPP)),
        }
        // Nothing went to the low 32 bits of the offset.
        assert_eq!(K.pread(fd, &mut buf, 3), Ok(3));
        assert_eq!(buf, [0u8; 3]);
        K.close(fd).expect("close");
    }

    /// A listener on 127.0.0.1 plus one accepted connection:
    /// `(listener, client, server)`.
    fn loopback_pair() -> (RawFd, RawFd, RawFd) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = K.socket(&any, SockType::Stream).expect("socket");
        K.set_option(listener, SockOpt::ReuseAddr(true))
            .expect("reuseaddr");
        K.bind(listener, &any).expect("bind");
        K.listen(listener, 16).expect("listen");
        let addr = K.local_addr(listener).expect("local_addr");
        assert_ne!(addr.port(), 0);
        let client = K.socket(&addr, SockType::Stream).expect("socket");
        K.set_option(client, SockOpt::NoDelay(true))
            .expect("nodelay");
        K.connect(client, &addr).expect("connect");
        let (server, peer) = K.accept(listener, false).expect("accept");
        assert_eq!(peer, K.local_addr(client).expect("client addr"));
        assert_eq!(K.peer_addr(client).expect("peer_addr"), addr);
        (listener, client, server)
    }

    fn close_all(fds: &[RawFd]) {
        for &fd in fds {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn opened_fds_are_cloexec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, fd) = create(dir.path(), "f");
        // SAFETY: F_GETFD takes no pointer argument.
        let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        K.close(fd).expect("close");
    }

    #[test]
    fn closed_fd_is_ebadf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, fd) = create(dir.path(), "f");
        // Park a copy far above the fds other tests are using, so no
        // concurrently running test can be handed its number after close.
        // SAFETY: F_DUPFD_CLOEXEC takes a plain int argument, no pointer.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 900) };
        assert!(high >= 900, "dup failed");
        close_all(&[fd, high]);
        let mut buf = [0u8; 1];
        assert_eq!(K.read(high, &mut buf), Err(Errno::EBADF));
        assert_eq!(K.write(high, b"x"), Err(Errno::EBADF));
        assert_eq!(K.fstat(high), Err(Errno::EBADF));
        assert_eq!(K.close(high), Err(Errno::EBADF));
    }

    #[test]
    fn nonblocking_sockets_give_eagain() {
        let (listener, client, server) = loopback_pair();
        K.set_option(server, SockOpt::NonBlocking(true))
            .expect("nonblocking");
        let mut buf = [0u8; 4];
        assert_eq!(K.recv(server, &mut buf, MsgFlags::NONE), Err(Errno::EAGAIN));
        K.set_option(server, SockOpt::NonBlocking(false))
            .expect("blocking");
        assert_eq!(
            K.recv(client, &mut buf, MsgFlags::DONTWAIT),
            Err(Errno::EAGAIN)
        );
        K.set_option(listener, SockOpt::NonBlocking(true))
            .expect("nonblocking");
        assert_eq!(
            K.accept(listener, true).map(|(fd, _)| fd),
            Err(Errno::EAGAIN)
        );
        let addr = K.local_addr(listener).expect("local_addr");
        let second = K.socket(&addr, SockType::Stream).expect("socket");
        K.connect(second, &addr).expect("connect");
        assert_eq!(K.wait_ready(listener, Interest::Readable, 5_000), Ok(true));
        let (accepted, _) = K.accept(listener, true).expect("accept");
        // SAFETY: F_GETFL takes no pointer argument.
        let fl = unsafe { libc::fcntl(accepted, libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, libc::O_NONBLOCK);
        close_all(&[client, server, listener, second, accepted]);
    }

    #[test]
    fn sockaddr_conversions() {
        let v6: SocketAddr = "[fe80::1%3]:8080".parse().expect("addr");
        let v4: SocketAddr = "10.1.2.3:65535".parse().expect("addr");
        for addr in [v4, v6] {
            let raw = RawAddr::new(&addr);
            let (src, len) = raw.as_ptr();
            let mut storage = zeroed_storage();
            // SAFETY: `src` points at `len` readable bytes of `raw`, and
            // `len` is at most the size of the storage written to.
            unsafe {
                ptr::copy_nonoverlapping(
                    src.cast::<u8>(),
                    ptr::from_mut(&mut storage).cast(),
                    len as usize,
                )
            };
            assert_eq!(addr_from_storage(&storage, len), Ok(addr));
        }
        let mut unix = zeroed_storage();
        unix.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(
            addr_from_storage(&unix, socklen::<libc::sockaddr_storage>()),
            Err(Errno(libc::EAFNOSUPPORT))
        );
    }
}
