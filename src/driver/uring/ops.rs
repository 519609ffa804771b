//! How each op runs on io_uring: its submission entry and how a completion
//! result becomes the op's raw result. Only the io_uring driver
//! (`super`) uses this file; nothing here is visible outside it.
//!
//! Ops describe themselves as backend-neutral data ([`OpCode::request`]);
//! this file encodes a [`Request`] as an io_uring entry ([`entry`]) and
//! decodes the completion's `res` back into the op ([`result`]). A request
//! without an io_uring form ([`Request::Other`], or whose opcode the ring's
//! probe lacks) has no entry and runs on the pool.
//!
//! # What an entry points at
//!
//! Entries hold raw pointers into the op (its buffers and path strings) and
//! into the op's [`Scratch`]: the iovec array of a vectored op, the `statx`
//! buffer of `fstat`, the peer address of `accept`, the address of
//! `connect`. The driver keeps the op and its scratch side by side in one
//! boxed in-flight entry until the completion arrives, so those pointers
//! stay valid while the kernel holds them; nothing here is `unsafe`.
//!
//! # Parity with the pool
//!
//! Every op must give the result the pool path (`OpCode::run_blocking` on
//! the real kernel) gives for the same input; where the ring would differ,
//! the op has no entry and runs on the pool instead:
//!
//! * `read`/`write` and the vectored forms use offset `-1` for "the file
//!   position"; an explicit offset above `i64::MAX` (which the pool rejects
//!   with `EINVAL`, and `u64::MAX` of which the ring would read as `-1`)
//!   gets no entry. Vectored ops pass at most 1024 buffers, like the pool.
//! * `fstat` is `statx(fd, "", AT_EMPTY_PATH)`, converted field by field to
//!   the `FileStat` that `fstat(2)` gives.
//! * `open` adds `O_CLOEXEC`; `send` adds `MSG_NOSIGNAL`. An `open` for
//!   writing only, without `O_NONBLOCK`, goes to io_uring's workers at
//!   once (`IOSQE_ASYNC`): io_uring's first attempt forces `O_NONBLOCK`,
//!   which for a FIFO with no reader fails with `ENXIO` where `open(2)`
//!   waits for the reader. (An open for reading returns before a FIFO's
//!   writer comes, where `open(2)` waits; reads on the ring then wait for
//!   data, so the bytes are the same.) Socket ops never
//!   carry `MSG_DONTWAIT`: the ring waits for readiness itself, and an
//!   `EAGAIN` that still comes back is handled by the driver (poll, then
//!   the entry again).
//! * A path with an interior NUL gets no entry (the pool says `EINVAL`).
//! * `lseek` has no io_uring form. `sendfile` runs on the pool: on the ring
//!   it would be two linked `SPLICE` entries through a pipe, but a pipe
//!   holds 64 KiB (so one call moves at most that, where `sendfile(2)` on
//!   the pool moves the whole range in one zero-copy call), a short first
//!   splice breaks the link and leaves bytes in the pipe that need a third,
//!   unlinked splice (and a poll when the socket is full), and every op or
//!   thread needs two more fds. Its pool job already keeps the worker free.
//!   `fadvise`, `fstatfs` and the xattr calls run on the pool too.

// The entry builders and the storage they fill use the io-uring crate and
// Linux's structs, so they are Linux-only; the opcode side is built on
// every OS (the simulated ring runs ops by opcode and executes them in
// place, so it never needs an entry or a result decoded from one).
use crate::op::{OpCode, Request};
#[cfg(linux)]
use crate::sys::real::ffi::{addr_from_storage, file_type, zeroed_statx, zeroed_storage, RawAddr};
#[cfg(linux)]
use crate::sys::real::msg::MsgHeader;
use crate::sys::ring::opcode as code;
#[cfg(not(linux))]
use crate::sys::Kernel;
use crate::sys::{Errno, SysResult};
#[cfg(linux)]
use crate::sys::{FileStat, Kernel, OpenFlags};
#[cfg(linux)]
use io_uring::squeue::Entry;
#[cfg(linux)]
use io_uring::{opcode, squeue, types};
#[cfg(linux)]
use std::mem::size_of;
#[cfg(linux)]
use std::net::SocketAddr;
#[cfg(linux)]
use std::os::fd::RawFd;
#[cfg(linux)]
use std::ptr;

/// Per-op storage an entry points into, kept beside the op in the
/// driver's in-flight table (never in the op descriptor).
#[cfg(linux)]
#[derive(Default)]
pub(super) struct Scratch {
    /// The iovec array of a vectored op (rebuilt for every entry).
    iovecs: Vec<libc::iovec>,
    /// Where a `STATX` entry writes (boxed, like the addresses below, so
    /// every in-flight op does not carry a few hundred bytes it rarely uses).
    statx: Option<Box<libc::statx>>,
    /// Where an `ACCEPT` entry writes the peer's address.
    peer: Option<Box<PeerAddr>>,
    /// The address a `CONNECT` entry hands to the kernel.
    raw_addr: Option<Box<RawAddr>>,
    /// The msghdr (with iovec, address and control buffer) of a `SENDMSG`
    /// or `RECVMSG` entry.
    msg: Option<Box<MsgHeader>>,
}

/// Off Linux there is no kernel ring, so nothing to keep.
#[cfg(not(linux))]
#[derive(Default)]
pub(super) struct Scratch;

/// The opcode [`entry`] would use for `op`, checked against the ring's
/// probe before submission (`None` when there is no entry).
pub(super) fn opcode<T: OpCode>(op: &mut T) -> Option<u8> {
    Some(match op.request() {
        Request::Read { offset, .. } => rw_offset(offset).map(|_| code::READ)?,
        Request::Write { offset, .. } => rw_offset(offset).map(|_| code::WRITE)?,
        Request::ReadVectored { offset, .. } => rw_offset(offset).map(|_| code::READV)?,
        Request::WriteVectored { offset, .. } => rw_offset(offset).map(|_| code::WRITEV)?,
        Request::Sync { .. } => code::FSYNC,
        Request::Truncate { .. } => code::FTRUNCATE,
        Request::Allocate { .. } => code::FALLOCATE,
        Request::Stat { .. } => code::STATX,
        Request::Close { .. } => code::CLOSE,
        Request::Open { .. } => code::OPENAT,
        Request::Rename { .. } => code::RENAMEAT,
        Request::Unlink { .. } => code::UNLINKAT,
        Request::Mkdir { .. } => code::MKDIRAT,
        Request::Accept { .. } => code::ACCEPT,
        Request::Connect { .. } => code::CONNECT,
        Request::Recv { .. } => code::RECV,
        Request::Send { .. } => code::SEND,
        Request::Shutdown { .. } => code::SHUTDOWN,
        Request::SendMsg { .. } => code::SENDMSG,
        Request::RecvMsg { .. } => code::RECVMSG,
        _ => return None,
    })
}

/// The submission entry for `op`, pointing into `op` and `scratch`. Called
/// once both sit at their final heap address (boxed in the driver's
/// in-flight table) and again for each resubmission. `None`: run this op
/// on the pool instead.
#[cfg(linux)]
pub(super) fn entry<T: OpCode>(op: &mut T, scratch: &mut Scratch) -> Option<Entry> {
    Some(match op.request() {
        // Reads and writes: READ/WRITE, READV/WRITEV at an offset or the
        // file position.
        Request::Read { fd, buf, offset } => {
            let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), entry_len(buf.len()));
            entry.offset(rw_offset(offset)?).build()
        }
        Request::Write { fd, buf, offset } => {
            let entry = opcode::Write::new(types::Fd(fd), buf.as_ptr(), entry_len(buf.len()));
            entry.offset(rw_offset(offset)?).build()
        }
        Request::ReadVectored { fd, bufs, offset } => {
            let offset = rw_offset(offset)?;
            scratch.iovecs.clear();
            scratch
                .iovecs
                .extend(bufs.into_iter().take(IOV_MAX).map(|mut buf| libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                }));
            let (iovecs, count) = iovec_entry(&scratch.iovecs);
            opcode::Readv::new(types::Fd(fd), iovecs, count)
                .offset(offset)
                .build()
        }
        Request::WriteVectored { fd, bufs, offset } => {
            let offset = rw_offset(offset)?;
            scratch.iovecs.clear();
            scratch
                .iovecs
                .extend(bufs.iter().take(IOV_MAX).map(|buf| libc::iovec {
                    // The kernel only reads through a write's iovecs.
                    iov_base: buf.as_ptr().cast_mut().cast(),
                    iov_len: buf.len(),
                }));
            let (iovecs, count) = iovec_entry(&scratch.iovecs);
            opcode::Writev::new(types::Fd(fd), iovecs, count)
                .offset(offset)
                .build()
        }
        // File state: FSYNC, FTRUNCATE (Linux 6.9), FALLOCATE, STATX, CLOSE.
        // Offsets and lengths above i64::MAX reach the kernel as negative
        // values, which it rejects with EINVAL exactly as the pool path does.
        Request::Sync { fd, data_only } => {
            let flags = match data_only {
                false => types::FsyncFlags::empty(),
                true => types::FsyncFlags::DATASYNC,
            };
            opcode::Fsync::new(types::Fd(fd)).flags(flags).build()
        }
        Request::Truncate { fd, len_bytes } => {
            opcode::Ftruncate::new(types::Fd(fd), len_bytes).build()
        }
        Request::Allocate {
            fd,
            mode,
            offset,
            len_bytes,
        } => opcode::Fallocate::new(types::Fd(fd), len_bytes)
            .offset(offset)
            .mode(mode)
            .build(),
        // `statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS)` into the
        // scratch buffer; [`result`] converts it to what `fstat(2)` gives.
        Request::Stat { fd, .. } => {
            let statx: &mut libc::statx = scratch.statx.insert(Box::new(zeroed_statx()));
            let entry = opcode::Statx::new(
                types::Fd(fd),
                c"".as_ptr(),
                ptr::from_mut(statx).cast::<types::statx>(),
            );
            entry
                .flags(libc::AT_EMPTY_PATH)
                .mask(libc::STATX_BASIC_STATS)
                .build()
        }
        Request::Close { fd } => opcode::Close::new(types::Fd(fd)).build(),
        // Paths: OPENAT, RENAMEAT, UNLINKAT, MKDIRAT relative to the working
        // directory (`unlinkat(.., 0)` of a directory gives EISDIR, as
        // `unlink(2)`). A path with an interior NUL is `Request::Other`.
        Request::Open { path, flags, mode } => {
            let bits = (flags | OpenFlags::CLOEXEC).bits();
            let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr());
            let entry = entry.flags(bits).mode(mode).build();
            // io_uring first tries an open in the submit with O_NONBLOCK
            // forced on, and only an `EAGAIN` sends it to its workers: a
            // FIFO opened for writing with no reader then fails with
            // `ENXIO` where `open(2)` waits for the reader. Such an open
            // goes to the workers at once (`IOSQE_ASYNC`), which open as
            // `open(2)` does; a cancel interrupts the wait.
            if waits_for_a_reader(flags) {
                entry.flags(squeue::Flags::ASYNC)
            } else {
                entry
            }
        }
        Request::Rename { from, to } => {
            let cwd = types::Fd(libc::AT_FDCWD);
            opcode::RenameAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build()
        }
        Request::Unlink { path } => {
            opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).build()
        }
        Request::Mkdir { path, mode } => {
            let entry = opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr());
            entry.mode(mode).build()
        }
        // Sockets: ACCEPT, CONNECT, RECV, SEND.
        // `accept4(fd, .., SOCK_CLOEXEC | SOCK_NONBLOCK)` into the scratch
        // address buffer.
        Request::Accept { fd, .. } => {
            let peer: &mut PeerAddr = scratch.peer.insert(Box::new(PeerAddr::new()));
            let addr = ptr::from_mut(&mut peer.storage).cast::<libc::sockaddr>();
            opcode::Accept::new(types::Fd(fd), addr, &mut peer.len)
                .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                .build()
        }
        // `connect(2)` with the op's address (see [`result`] for a
        // handshake still under way). Building the entry never marks the
        // op started: an entry that never reached the kernel must leave a
        // later pool run calling connect itself.
        Request::Connect { fd, addr, .. } => {
            let raw: &mut RawAddr = scratch.raw_addr.insert(Box::new(RawAddr::new(addr)));
            let (addr, len) = raw.as_ptr();
            opcode::Connect::new(types::Fd(fd), addr, len).build()
        }
        // `recv(2)` with the op's flags minus `MSG_DONTWAIT`: the ring waits
        // for data itself (the pool path adds `MSG_DONTWAIT` and waits
        // outside).
        Request::Recv { fd, buf, flags } => {
            let entry = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), entry_len(buf.len()));
            entry.flags(flags.0 & !libc::MSG_DONTWAIT).build()
        }
        // `send(2)` with the op's flags minus `MSG_DONTWAIT`, plus
        // `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never `SIGPIPE`).
        Request::Send { fd, buf, flags } => {
            let flags = (flags.0 & !libc::MSG_DONTWAIT) | libc::MSG_NOSIGNAL;
            let entry = opcode::Send::new(types::Fd(fd), buf.as_ptr(), entry_len(buf.len()));
            entry.flags(flags).build()
        }
        // `sendmsg(2)`/`recvmsg(2)` through a msghdr in the scratch, with
        // the op's flags minus `MSG_DONTWAIT` (the ring waits itself), plus
        // `MSG_NOSIGNAL` for a send and `MSG_CMSG_CLOEXEC` for a receive.
        // A destination the pool would refuse gets no entry (the pool says
        // why).
        Request::SendMsg {
            fd,
            buf,
            to,
            fds,
            flags,
        } => {
            let header = scratch.msg.insert(MsgHeader::send(buf, to, fds).ok()?);
            let flags = (flags.0 & !libc::MSG_DONTWAIT) | libc::MSG_NOSIGNAL;
            opcode::SendMsg::new(types::Fd(fd), header.as_ptr())
                .flags(flags as u32)
                .build()
        }
        Request::RecvMsg {
            fd,
            buf,
            fds_max,
            flags,
            ..
        } => {
            let header = scratch.msg.insert(MsgHeader::recv(buf, fds_max));
            let flags = (flags.0 & !libc::MSG_DONTWAIT) | libc::MSG_CMSG_CLOEXEC;
            opcode::RecvMsg::new(types::Fd(fd), header.as_ptr())
                .flags(flags as u32)
                .build()
        }
        // `shutdown(2)`.
        Request::Shutdown { fd, how } => {
            let how = match how {
                crate::sys::Shutdown::Read => libc::SHUT_RD,
                crate::sys::Shutdown::Write => libc::SHUT_WR,
                crate::sys::Shutdown::Both => libc::SHUT_RDWR,
            };
            opcode::Shutdown::new(types::Fd(fd), how).build()
        }
        _ => return None,
    })
}

/// Turn a completion's `res` into the op's raw result, filling the outputs
/// the op owns from `scratch` (a stat, an accepted socket and its peer).
///
/// * `fstat`: the `statx` buffer becomes the `FileStat` `fstat(2)` gives.
/// * `accept`: the new fd and the decoded peer land in the op's output (so
///   an abandoned op's `discard` closes the fd). A peer address
///   `SocketAddr` cannot hold closes the new fd here (through `kernel`)
///   and fails with `EAFNOSUPPORT`, as the pool path does.
/// * `connect`: the ring waits for the handshake itself; should a kernel
///   still report it under way (`EINPROGRESS`, `EALREADY`), the op is
///   marked started and the result becomes `EAGAIN`: the driver waits for
///   writability and submits the entry again, and a repeated connect on a
///   connecting socket reports the handshake's outcome (`0`, the error, or
///   `EISCONN`, which after a start means success).
#[cfg(linux)]
pub(super) fn result<T: OpCode>(
    op: &mut T,
    scratch: &Scratch,
    res: i32,
    kernel: &dyn Kernel,
) -> SysResult<usize> {
    match op.request() {
        Request::Stat { out, .. } => {
            cqe_result(res)?;
            // The driver always builds the entry (which sets the buffer) first.
            let statx = scratch.statx.as_ref().ok_or(Errno::EIO)?;
            *out = Some(file_stat(statx));
            Ok(0)
        }
        Request::Accept { out, .. } => {
            cqe_result(res)?;
            let fd: RawFd = res;
            // The driver always builds the entry (which sets the buffer) first.
            match scratch
                .peer
                .as_ref()
                .ok_or(Errno::EIO)
                .and_then(|peer| peer.decode())
            {
                Ok(addr) => {
                    *out = Some((fd, addr));
                    Ok(0)
                }
                Err(e) => {
                    // Nobody else knows the new fd: release it; `e` is the
                    // error to report.
                    let _ = kernel.close(fd);
                    Err(e)
                }
            }
        }
        Request::RecvMsg { out, .. } => {
            let n = cqe_result(res)?;
            // The driver always builds the entry (which sets the header) first.
            let header = scratch.msg.as_ref().ok_or(Errno::EIO)?;
            *out = Some(header.received(n)?);
            Ok(n)
        }
        Request::Connect { started, .. } => match cqe_result(res) {
            Err(Errno::EINPROGRESS | Errno::EALREADY) => {
                *started = true;
                Err(Errno::EAGAIN)
            }
            Err(Errno(libc::EISCONN)) if *started => Ok(0),
            result => result,
        },
        Request::Close { fd } => {
            // The number is free again: per-fd state above the seam must
            // not take a reuse of it for the fd it knew.
            kernel.note_fd_released(fd);
            cqe_result(res)
        }
        _ => cqe_result(res),
    }
}

/// Off Linux only the simulated ring exists, and it executes ops in place:
/// a completion's `res` is all there is to decode.
#[cfg(not(linux))]
pub(super) fn result<T: OpCode>(
    _op: &mut T,
    _scratch: &Scratch,
    res: i32,
    _kernel: &dyn Kernel,
) -> SysResult<usize> {
    cqe_result(res)
}

/// A completion's `res`: negative errno or a count.
pub(crate) fn cqe_result(res: i32) -> SysResult<usize> {
    if res < 0 {
        Err(Errno(-res))
    } else {
        Ok(res as usize)
    }
}

// ---------------------------------------------------------------------------
// Shared helpers.

/// The `off` of a read or write entry meaning "use and advance the file
/// position" (`-1`).
const FILE_POSITION: u64 = u64::MAX;

/// Most buffers one vectored entry passes (Linux `UIO_MAXIOV`), the same
/// cap as the pool path: buffers past it are left for the next call.
#[cfg(linux)]
const IOV_MAX: usize = 1024;

/// The entry offset for a read or write at `offset` (`None`: the file
/// position). `None` when the offset does not fit `off_t`: the pool path
/// rejects it with `EINVAL`, and the ring would take `u64::MAX` for `-1`.
fn rw_offset(offset: Option<u64>) -> Option<u64> {
    match offset {
        None => Some(FILE_POSITION),
        Some(off) if i64::try_from(off).is_ok() => Some(off),
        Some(_) => None,
    }
}

/// Whether an open with `flags` waits for a reader when the path is a
/// FIFO (write-only, without `O_NONBLOCK`), which io_uring's first,
/// non-blocking attempt does not do (see the `OPENAT` entry).
#[cfg(linux)]
fn waits_for_a_reader(flags: OpenFlags) -> bool {
    flags.access_mode() == OpenFlags::WRONLY && !flags.contains(OpenFlags::NONBLOCK)
}

/// A buffer length as an entry's 32-bit `len`. The kernel caps one
/// transfer at `MAX_RW_COUNT` (just under 2 GiB) anyway.
#[cfg(linux)]
fn entry_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The iovec array and its length for a vectored entry.
#[cfg(linux)]
fn iovec_entry(iovecs: &[libc::iovec]) -> (*const libc::iovec, u32) {
    // At most IOV_MAX entries, so the count fits.
    (iovecs.as_ptr(), iovecs.len() as u32)
}

/// The `FileStat` `fstat(2)` would give, from a `statx` result.
// dev_t is u64 on Linux: the conversion is an identity there.
#[allow(clippy::useless_conversion)]
#[cfg(linux)]
fn file_stat(stx: &libc::statx) -> FileStat {
    let mode = libc::mode_t::from(stx.stx_mode);
    FileStat {
        size_bytes: stx.stx_size,
        file_type: file_type(mode),
        permissions: mode & 0o7777,
        block_size_bytes: u64::from(stx.stx_blksize),
        blocks_512: stx.stx_blocks,
        inode: stx.stx_ino,
        device: u64::from(libc::makedev(stx.stx_dev_major, stx.stx_dev_minor)),
        links: u64::from(stx.stx_nlink),
    }
}

/// Where an accept entry writes the peer's address and its length.
#[cfg(linux)]
pub(super) struct PeerAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

#[cfg(linux)]
impl PeerAddr {
    /// Zeroed storage, with the length set to its size (as accept wants).
    fn new() -> PeerAddr {
        PeerAddr {
            storage: zeroed_storage(),
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The address the kernel wrote; `EAFNOSUPPORT` for a family (or a
    /// truncated address) `SocketAddr` cannot hold, as the pool path says.
    fn decode(&self) -> SysResult<SocketAddr> {
        addr_from_storage(&self.storage, self.len)
    }
}

#[cfg(all(test, linux))]
#[allow(unsafe_code)] // the tests call libc directly to set up fds
mod tests {
    //! Each op's entry, submitted on a real ring, must give what the pool
    //! path (`run_blocking` on `RealKernel`) gives for the same input.

    use super::*;
    use crate::op::{file, net, path, run_until_done};
    use crate::sys::real::RealKernel;
    use crate::sys::{FileType, Interest, MsgFlags, Shutdown, SockOpt, SockType, Whence};
    use io_uring::{IoUring, Probe};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    const K: RealKernel = RealKernel;

    /// A small ring, or `None` (with the reason printed) where io_uring is
    /// unavailable (old kernel, seccomp, `io_uring_disabled`).
    fn ring() -> Option<IoUring> {
        match IoUring::new(8) {
            Ok(ring) => Some(ring),
            Err(e) => {
                eprintln!("skipping: io_uring unavailable here ({e})");
                None
            }
        }
    }

    fn supports(ring: &IoUring, code: u8, name: &str) -> bool {
        let mut probe = Probe::new();
        let ok = ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(code);
        if !ok {
            eprintln!("skipping {name}: the kernel's io_uring lacks the opcode");
        }
        ok
    }

    /// Submit `entry` and wait for its completion's `res`.
    ///
    /// # Safety
    ///
    /// Everything the entry points at must stay valid until this returns.
    unsafe fn submit_and_wait(ring: &mut IoUring, entry: &Entry) -> i32 {
        // SAFETY: the caller keeps the entry's memory valid until we return,
        // and we return only after its completion.
        unsafe { ring.submission().push(entry) }.expect("submission queue has room");
        ring.submit_and_wait(1).expect("io_uring_enter");
        ring.completion().next().expect("one completion").result()
    }

    /// An op with its scratch, as the driver's in-flight table holds them.
    struct Held<T> {
        op: T,
        scratch: Scratch,
    }

    fn held<T: OpCode>(op: T) -> Held<T> {
        Held {
            op,
            scratch: Scratch::default(),
        }
    }

    impl<T: OpCode> Held<T> {
        fn uring_entry(&mut self) -> Option<Entry> {
            entry(&mut self.op, &mut self.scratch)
        }

        fn uring_opcode(&mut self) -> Option<u8> {
            opcode(&mut self.op)
        }

        fn uring_result(&mut self, res: i32) -> SysResult<usize> {
            result(&mut self.op, &self.scratch, res, &K)
        }
    }

    impl<T> std::ops::Deref for Held<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.op
        }
    }

    /// Run `op` through its entry on `ring`: the op's raw result and the op.
    fn on_ring<T: OpCode>(ring: &mut IoUring, op: T) -> (SysResult<usize>, T) {
        let mut op = held(op);
        let entry = op.uring_entry().expect("op has an io_uring entry");
        assert_eq!(op.uring_opcode().map(u32::from), Some(entry.get_opcode()));
        // SAFETY: `op` (and the buffers and storage the entry points into)
        // lives on this frame, unmoved, until the completion is back.
        let res = unsafe { submit_and_wait(ring, &entry) };
        (op.uring_result(res), op.op)
    }

    /// Run `op` the way the pool does (retrying socket ops after readiness).
    fn on_pool<T: OpCode>(mut op: T) -> (SysResult<usize>, T) {
        (run_until_done(&mut op, &K, &|| false), op)
    }

    /// The op has no entry: it runs on the pool.
    fn no_entry<T: OpCode>(op: T) {
        let mut op = held(op);
        assert_eq!(op.uring_opcode(), None);
        assert!(op.uring_entry().is_none());
    }

    fn cpath(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).expect("temp paths have no NUL")
    }

    /// A new file holding `contents`, open read-write at position 0.
    fn file_with(dir: &Path, name: &str, contents: &[u8]) -> RawFd {
        let flags = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::TRUNC;
        let fd = K
            .open(&cpath(&dir.join(name)), flags, 0o640)
            .expect("create");
        assert_eq!(K.pwrite(fd, contents, 0), Ok(contents.len()));
        fd
    }

    fn read(fd: RawFd, len: usize, offset: Option<u64>) -> file::Read<Vec<u8>> {
        file::Read {
            took_leftover: false,
            fd,
            buf: Vec::with_capacity(len),
            offset,
        }
    }

    fn write(fd: RawFd, bytes: &'static [u8], offset: Option<u64>) -> file::Write<&'static [u8]> {
        file::Write {
            fd,
            buf: bytes,
            offset,
        }
    }

    fn fd_flags(fd: RawFd) -> (i32, i32) {
        // SAFETY: F_GETFD and F_GETFL take no pointer argument.
        unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD),
                libc::fcntl(fd, libc::F_GETFL),
            )
        }
    }

    #[test]
    fn read_and_write_match_the_pool() {
        let Some(mut ring) = ring() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = file_with(dir.path(), "f", b"hello world");
        for (len, offset) in [(16, Some(6)), (4, Some(0)), (8, Some(11)), (8, Some(100))] {
            let (uring, a) = on_ring(&mut ring, read(fd, len, offset));
            let (pool, b) = on_pool(read(fd, len, offset));
            assert_eq!(uring, pool, "pread {len} at {offset:?}");
            let (a, b) = (a.complete(uring).1, b.complete(pool).1);
            assert_eq!(a, b, "pread {len} at {offset:?}");
        }
        // Without an offset both use and advance the file position.
        let (uring, a) = on_ring(&mut ring, read(fd, 5, None));
        assert_eq!((uring, &a.complete(uring).1[..]), (Ok(5), &b"hello"[..]));
        let (pool, b) = on_pool(read(fd, 5, None));
        assert_eq!((pool, &b.complete(pool).1[..]), (Ok(5), &b" worl"[..]));
        assert_eq!(K.lseek(fd, 0, Whence::Current), Ok(10));
        let (uring, _) = on_ring(&mut ring, write(fd, b"D!", None));
        assert_eq!(uring, Ok(2));
        assert_eq!(on_pool(write(fd, b"?", None)).0, Ok(1));
        assert_eq!(on_ring(&mut ring, write(fd, b"J", Some(0))).0, Ok(1));
        assert_eq!(on_pool(write(fd, b"w", Some(6))).0, Ok(1));
        let (res, all) = on_pool(read(fd, 32, Some(0)));
        assert_eq!(all.complete(res).1, b"Jello worlD!?");
        assert_eq!(K.lseek(fd, 0, Whence::Current), Ok(13));
        // Offsets the pool rejects have no entry (u64::MAX would be -1).
        for big in [i64::MAX as u64 + 1, u64::MAX] {
            no_entry(read(fd, 4, Some(big)));
            no_entry(write(fd, b"x", Some(big)));
            assert_eq!(on_pool(read(fd, 4, Some(big))).0, Err(Errno::EINVAL));
        }
        // A bad fd is EBADF either way.
        let (uring, pool) = (
            on_ring(&mut ring, read(-1, 4, None)).0,
            on_pool(read(-1, 4, None)).0,
        );
        assert_eq!((uring, pool), (Err(Errno::EBADF), Err(Errno::EBADF)));
        K.close(fd).expect("close");
    }

    fn readv(fd: RawFd, lens: &[usize], offset: Option<u64>) -> file::ReadVectored<Vec<u8>> {
        file::ReadVectored {
            took_leftover: false,
            fd,
            bufs: lens.iter().map(|&len| Vec::with_capacity(len)).collect(),
            offset,
        }
    }

    fn writev(
        fd: RawFd,
        bufs: &[&'static [u8]],
        offset: Option<u64>,
    ) -> file::WriteVectored<&'static [u8]> {
        file::WriteVectored {
            fd,
            bufs: bufs.to_vec(),
            offset,
        }
    }

    #[test]
    fn vectored_io_matches_the_pool() {
        let Some(mut ring) = ring() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = file_with(dir.path(), "f", b"");
        let parts: &[&'static [u8]] = &[b"abc", b"", b"defg", b"hi"];
        assert_eq!(on_ring(&mut ring, writev(fd, parts, Some(4))).0, Ok(9));
        assert_eq!(on_ring(&mut ring, writev(fd, parts, None)).0, Ok(9));
        assert_eq!(on_pool(writev(fd, parts, None)).0, Ok(9));
        assert_eq!(K.lseek(fd, 0, Whence::Current), Ok(18));
        for (lens, offset) in [
            (&[2, 5, 4][..], Some(4)),
            (&[1, 0, 30][..], Some(0)),
            (&[3][..], Some(18)),
            (&[][..], Some(0)),
        ] {
            let (uring, a) = on_ring(&mut ring, readv(fd, lens, offset));
            let (pool, b) = on_pool(readv(fd, lens, offset));
            assert_eq!(uring, pool, "preadv {lens:?} at {offset:?}");
            assert_eq!(a.complete(uring).1, b.complete(pool).1);
        }
        K.lseek(fd, 0, Whence::Set).expect("lseek");
        let (uring, a) = on_ring(&mut ring, readv(fd, &[4, 5], None));
        assert_eq!(uring, Ok(9));
        assert_eq!(a.complete(uring).1, [&b"abcd"[..], b"efghi"]);
        assert_eq!(K.lseek(fd, 0, Whence::Current), Ok(9));
        no_entry(readv(fd, &[4], Some(u64::MAX)));
        no_entry(writev(fd, parts, Some(i64::MAX as u64 + 1)));
        K.close(fd).expect("close");
    }

    #[test]
    fn sync_truncate_allocate_match_the_pool() {
        let Some(mut ring) = ring() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = file_with(dir.path(), "f", &[7u8; 1000]);
        for kind in [file::SyncKind::All, file::SyncKind::Data] {
            assert_eq!(on_ring(&mut ring, file::Sync { fd, kind }).0, Ok(0));
            let bad = file::Sync { fd: -1, kind };
            assert_eq!(on_ring(&mut ring, bad).0, Err(Errno::EBADF));
        }
        let big = i64::MAX as u64 + 1;
        if supports(&ring, code::FTRUNCATE, "ftruncate") {
            let op = |len_bytes| file::Truncate { fd, len_bytes };
            assert_eq!(on_ring(&mut ring, op(1500)).0, Ok(0));
            assert_eq!(K.fstat(fd).map(|st| st.size_bytes), Ok(1500));
            assert_eq!(on_ring(&mut ring, op(big)).0, Err(Errno::EINVAL));
            assert_eq!(on_pool(op(big)).0, Err(Errno::EINVAL));
        }
        let allocate = |fd, offset, len_bytes| file::Allocate {
            fd,
            mode: 0,
            offset,
            len_bytes,
        };
        let other = file_with(dir.path(), "g", b"");
        let uring = on_ring(&mut ring, allocate(fd, 0, 8192)).0;
        let pool = on_pool(allocate(other, 0, 8192)).0;
        assert_eq!(uring, pool, "fallocate");
        assert_eq!(
            K.fstat(fd).map(|st| st.size_bytes),
            K.fstat(other).map(|st| st.size_bytes)
        );
        for (offset, len) in [(big, 1), (0, big), (0, 0)] {
            let uring = on_ring(&mut ring, allocate(fd, offset, len)).0;
            assert_eq!(
                uring,
                on_pool(allocate(fd, offset, len)).0,
                "fallocate {offset} {len}"
            );
        }
        K.close(fd).expect("close");
        K.close(other).expect("close");
    }

    fn stat(fd: RawFd) -> file::Stat {
        file::Stat { fd, stat: None }
    }

    #[test]
    fn statx_gives_what_fstat_gives() {
        let Some(mut ring) = ring() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_with(dir.path(), "f", &[1u8; 5000]);
        let dir_fd = K
            .open(&cpath(dir.path()), OpenFlags::DIRECTORY, 0)
            .expect("open dir");
        let (rd, wr) = K.pipe().expect("pipe");
        for fd in [file, dir_fd, rd, wr] {
            let (uring, a) = on_ring(&mut ring, stat(fd));
            let (pool, b) = on_pool(stat(fd));
            assert_eq!((uring, pool), (Ok(0), Ok(0)));
            assert!(a.stat.is_some());
            assert_eq!(a.stat, b.stat, "fd {fd}");
        }
        let st = on_ring(&mut ring, stat(file)).1.stat.expect("stat");
        assert_eq!(
            (st.size_bytes, st.file_type, st.permissions),
            (5000, FileType::Regular, 0o640)
        );
        assert_eq!(on_ring(&mut ring, stat(-1)).0, Err(Errno::EBADF));
        assert_eq!(on_pool(stat(-1)).0, Err(Errno::EBADF));
        for fd in [file, dir_fd, rd, wr] {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn close_matches_the_pool() {
        let Some(mut ring) = ring() else { return };
        let (rd, wr) = K.pipe().expect("pipe");
        assert_eq!(on_ring(&mut ring, file::Close { fd: wr }).0, Ok(0));
        // The write end is gone: the read end sees end of file.
        let mut buf = [0u8; 1];
        assert_eq!(K.read(rd, &mut buf), Ok(0));
        assert_eq!(
            on_ring(&mut ring, file::Close { fd: -1 }).0,
            Err(Errno::EBADF)
        );
        assert_eq!(on_pool(file::Close { fd: -1 }).0, Err(Errno::EBADF));
        K.close(rd).expect("close");
    }

    #[test]
    fn lseek_and_sendfile_run_on_the_pool() {
        no_entry(file::Lseek {
            fd: 0,
            offset: 0,
            whence: Whence::Current,
            position: 0,
        });
        no_entry(file::Sendfile {
            out_fd: 1,
            in_fd: 0,
            in_offset: 0,
            len_bytes: 1,
        });
    }

    fn open(path: &Path, flags: OpenFlags) -> path::Open {
        path::Open {
            path: path::KernelPath::new(path),
            flags,
            mode: 0o600,
        }
    }

    #[test]
    fn open_matches_the_pool() {
        let Some(mut ring) = ring() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let uring = on_ring(&mut ring, open(&missing, OpenFlags::RDONLY)).0;
        let pool = on_pool(open(&missing, OpenFlags::RDONLY)).0;
        assert_eq!((uring, pool), (Err(Errno::ENOENT), Err(Errno::ENOENT)));
        let flags = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::EXCL;
        let (res, op) = on_ring(&mut ring, open(&dir.path().join("new"), flags));
        let fd = op.complete(res).expect("open created the file");
        let (fd_flags, fl_flags) = fd_flags(fd);
        assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(fl_flags & libc::O_ACCMODE, libc::O_RDWR);
        assert_eq!(K.fstat(fd).map(|st| st.permissions), Ok(0o600 & !umask()));
        let again = |ring: &mut IoUring| on_ring(ring, open(&dir.path().join("new"), flags)).0;
        assert_eq!(again(&mut ring), Err(Errno::EEXIST));
        let dir_flags = OpenFlags::RDONLY | OpenFlags::DIRECTORY;
        let not_dir = on_ring(&mut ring, open(&dir.path().join("new"), dir_flags)).0;
        assert_eq!(not_dir, Err(Errno::ENOTDIR));
        let nul = Path::new(std::ffi::OsStr::from_bytes(b"bad\0path"));
        no_entry(open(nul, OpenFlags::RDONLY));
        assert_eq!(on_pool(open(nul, OpenFlags::RDONLY)).0, Err(Errno::EINVAL));
        K.close(fd).expect("close");
    }

    fn umask() -> u32 {
        // SAFETY: umask takes no pointers; it is set back right away.
        let mask = unsafe { libc::umask(0o022) };
        // SAFETY: as above.
        unsafe { libc::umask(mask) };
        mask
    }

    #[test]
    fn path_ops_match_the_pool() {
        let Some(mut ring) = ring() else { return };
        let ops = [
            (code::MKDIRAT, "mkdirat"),
            (code::RENAMEAT, "renameat"),
            (code::UNLINKAT, "unlinkat"),
        ];
        if !ops.iter().all(|&(code, name)| supports(&ring, code, name)) {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |name: &str| path::KernelPath::new(&dir.path().join(name));
        let mkdir = |name: &str| path::Mkdir {
            path: at(name),
            mode: 0o750,
        };
        let unlink = |name: &str| path::Unlink { path: at(name) };
        let rename = |from: &str, to: &str| path::Rename {
            from: at(from),
            to: at(to),
        };
        assert_eq!(on_ring(&mut ring, mkdir("d")).0, Ok(0));
        let mode = K
            .open(&cpath(&dir.path().join("d")), OpenFlags::DIRECTORY, 0)
            .and_then(|fd| {
                let st = K.fstat(fd);
                K.close(fd)?;
                st
            })
            .map(|st| (st.file_type, st.permissions));
        assert_eq!(mode, Ok((FileType::Directory, 0o750 & !umask())));
        assert_eq!(on_ring(&mut ring, mkdir("d")).0, Err(Errno::EEXIST));
        assert_eq!(on_pool(mkdir("d")).0, Err(Errno::EEXIST));
        assert_eq!(on_ring(&mut ring, unlink("d")).0, Err(Errno::EISDIR));
        assert_eq!(on_pool(unlink("d")).0, Err(Errno::EISDIR));
        assert_eq!(on_ring(&mut ring, rename("d", "e")).0, Ok(0));
        assert_eq!(on_ring(&mut ring, rename("d", "e")).0, Err(Errno::ENOENT));
        assert_eq!(on_pool(rename("d", "e")).0, Err(Errno::ENOENT));
        K.close(file_with(dir.path(), "f", b"x")).expect("close");
        assert_eq!(on_ring(&mut ring, unlink("f")).0, Ok(0));
        assert_eq!(on_ring(&mut ring, unlink("f")).0, Err(Errno::ENOENT));
        assert_eq!(on_pool(unlink("f")).0, Err(Errno::ENOENT));
        assert_eq!(
            on_ring(&mut ring, mkdir("missing/sub")).0,
            Err(Errno::ENOENT)
        );
        let nul = path::KernelPath::new(Path::new(std::ffi::OsStr::from_bytes(b"a\0b")));
        no_entry(path::Unlink { path: nul });
        no_entry(path::Rename {
            from: at("e"),
            to: path::KernelPath::new(Path::new(std::ffi::OsStr::from_bytes(b"\0"))),
        });
    }

    /// A non-blocking listener on 127.0.0.1 and its address.
    fn listener() -> (RawFd, SocketAddr) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let fd = K.socket(&any, SockType::Stream).expect("socket");
        K.bind(fd, &any).expect("bind");
        K.listen(fd, 8).expect("listen");
        K.set_option(fd, SockOpt::NonBlocking(true))
            .expect("nonblocking");
        (fd, K.local_addr(fd).expect("local_addr"))
    }

    fn nonblocking_socket(like: &SocketAddr) -> RawFd {
        let fd = K.socket(like, SockType::Stream).expect("socket");
        K.set_option(fd, SockOpt::NonBlocking(true))
            .expect("nonblocking");
        fd
    }

    fn connect(fd: RawFd, addr: SocketAddr) -> net::Connect {
        net::Connect {
            fd,
            addr,
            started: false,
        }
    }

    fn accept(fd: RawFd) -> net::Accept {
        net::Accept {
            fd,
            accepted: None,
            took_leftover: false,
        }
    }

    /// A ring with the socket opcodes, or `None` (reason printed).
    fn socket_ring() -> Option<IoUring> {
        let ring = ring()?;
        let ops = [
            (code::ACCEPT, "accept"),
            (code::CONNECT, "connect"),
            (code::RECV, "recv"),
            (code::SEND, "send"),
        ];
        ops.iter()
            .all(|&(code, name)| supports(&ring, code, name))
            .then_some(ring)
    }

    /// Connect and accept on `ring`: `(listener, client, server, address)`.
    fn connected_on(ring: &mut IoUring) -> (RawFd, RawFd, RawFd, SocketAddr) {
        let (listen_fd, addr) = listener();
        let client = nonblocking_socket(&addr);
        assert_eq!(on_ring(ring, connect(client, addr)).0, Ok(0));
        let (res, op) = on_ring(ring, accept(listen_fd));
        let (server, peer) = op.complete(res).expect("accept");
        assert_eq!(peer, K.local_addr(client).expect("client addr"));
        (listen_fd, client, server, addr)
    }

    fn send(fd: RawFd, buf: &'static [u8]) -> net::Send<&'static [u8]> {
        net::Send {
            fd,
            buf,
            flags: MsgFlags::NONE,
            short_drains: false,
        }
    }

    fn recv(fd: RawFd, len: usize, flags: MsgFlags) -> net::Recv<Vec<u8>> {
        net::Recv {
            took_leftover: false,
            fd,
            buf: Vec::with_capacity(len),
            flags,
            short_drains: false,
        }
    }

    #[test]
    fn connect_accept_send_recv_on_the_ring() {
        let Some(mut ring) = socket_ring() else {
            return;
        };
        let (listen_fd, client, server, _) = connected_on(&mut ring);
        let (fd_flags, fl_flags) = fd_flags(server);
        assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(fl_flags & libc::O_NONBLOCK, libc::O_NONBLOCK);
        assert_eq!(on_ring(&mut ring, send(client, b"hello")).0, Ok(5));
        assert_eq!(K.wait_ready(server, Interest::Readable, 5_000), Ok(true));
        let (res, op) = on_ring(&mut ring, recv(server, 2, MsgFlags::PEEK));
        assert_eq!((res, &op.complete(res).1[..]), (Ok(2), &b"he"[..]));
        let (res, op) = on_ring(&mut ring, recv(server, 16, MsgFlags::DONTWAIT));
        assert_eq!((res, &op.complete(res).1[..]), (Ok(5), &b"hello"[..]));

        // A recv on an empty non-blocking socket waits in the ring (or, on
        // some kernels, says EAGAIN and the driver polls): never an error.
        let mut op = held(recv(server, 16, MsgFlags::NONE));
        let entry = op.uring_entry().expect("recv entry");
        // SAFETY: `op` stays on this frame, unmoved, until the completion
        // is reaped below.
        unsafe { ring.submission().push(&entry) }.expect("queue has room");
        ring.submit().expect("submit");
        assert_eq!(K.send(client, b"late", MsgFlags::NONE), Ok(4));
        ring.submit_and_wait(1).expect("wait");
        let res = ring.completion().next().expect("completion").result();
        match op.uring_result(res) {
            Ok(n) => assert_eq!(&op.op.complete(Ok(n)).1[..], b"late"),
            Err(e) => assert_eq!(e, Errno::EAGAIN, "recv on an empty socket"),
        }
        for fd in [client, server, listen_fd] {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn socket_errors_match_the_pool() {
        let Some(mut ring) = socket_ring() else {
            return;
        };
        let (listen_fd, client, server, addr) = connected_on(&mut ring);
        // A write-shut socket: EPIPE on both paths, and no SIGPIPE.
        K.shutdown(client, Shutdown::Write).expect("shutdown");
        let uring = on_ring(&mut ring, send(client, b"x")).0;
        let pool = on_pool(send(client, b"x")).0;
        assert_eq!((uring, pool), (Err(Errno::EPIPE), Err(Errno::EPIPE)));
        let (res, op) = on_ring(&mut ring, recv(server, 16, MsgFlags::NONE));
        assert_eq!((res, op.complete(res).1.len()), (Ok(0), 0));
        // Connecting an already connected socket: EISCONN either way.
        let uring = on_ring(&mut ring, connect(client, addr)).0;
        assert_eq!(uring, Err(Errno(libc::EISCONN)));
        assert_eq!(on_pool(connect(client, addr)).0, uring);
        for fd in [client, server, listen_fd] {
            K.close(fd).expect("close");
        }
        // Nobody listening any more: ECONNREFUSED either way.
        let (a, b) = (nonblocking_socket(&addr), nonblocking_socket(&addr));
        let uring = on_ring(&mut ring, connect(a, addr)).0;
        let pool = on_pool(connect(b, addr)).0;
        let refused = Err(Errno::ECONNREFUSED);
        assert_eq!((uring, pool), (refused, refused));
        // An accept on a socket that is not listening: EINVAL either way.
        let uring = on_ring(&mut ring, accept(a)).0;
        let pool = on_pool(accept(b)).0;
        assert_eq!((uring, pool), (Err(Errno::EINVAL), Err(Errno::EINVAL)));
        for fd in [a, b] {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn shutdown_matches_the_pool() {
        let Some(mut ring) = socket_ring() else {
            return;
        };
        if !supports(&ring, code::SHUTDOWN, "shutdown") {
            return;
        }
        let shutdown = |fd, how| crate::op::msg::ShutdownOp { fd, how };
        let (listen_fd, client, server, addr) = connected_on(&mut ring);
        let uring = on_ring(&mut ring, shutdown(client, Shutdown::Write)).0;
        assert_eq!(uring, Ok(0));
        let (res, op) = on_ring(&mut ring, recv(server, 16, MsgFlags::NONE));
        assert_eq!((res, op.complete(res).1.len()), (Ok(0), 0), "peer sees EOF");
        // Not connected: ENOTCONN; not a socket: ENOTSOCK, either way.
        let (a, b) = (nonblocking_socket(&addr), nonblocking_socket(&addr));
        let uring = on_ring(&mut ring, shutdown(a, Shutdown::Both)).0;
        let pool = on_pool(shutdown(b, Shutdown::Both)).0;
        assert_eq!((uring, pool), (Err(Errno::ENOTCONN), Err(Errno::ENOTCONN)));
        let (rd, wr) = K.pipe().expect("pipe");
        let uring = on_ring(&mut ring, shutdown(rd, Shutdown::Read)).0;
        let pool = on_pool(shutdown(wr, Shutdown::Read)).0;
        assert_eq!((uring, pool), (Err(Errno::ENOTSOCK), Err(Errno::ENOTSOCK)));
        for fd in [listen_fd, client, server, a, b, rd, wr] {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn sendmsg_and_recvmsg_match_the_pool() {
        use crate::op::msg::{RecvMsg, SendMsg};
        use crate::sys::SockAddr;
        let Some(mut ring) = socket_ring() else {
            return;
        };
        if !supports(&ring, code::SENDMSG, "sendmsg") || !supports(&ring, code::RECVMSG, "recvmsg")
        {
            return;
        }
        let send = |fd, buf: &'static [u8], to: Option<SockAddr>, fds: Vec<RawFd>| SendMsg {
            fd,
            buf,
            to,
            fds,
            flags: MsgFlags::NONE,
        };
        let recv = |fd, len: usize, fds_max| RecvMsg {
            took_leftover: None,
            fd,
            buf: Vec::with_capacity(len),
            fds_max,
            flags: MsgFlags::NONE,
            meta: None,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (a, b) = (
            K.socket(&any, SockType::Datagram).expect("socket"),
            K.socket(&any, SockType::Datagram).expect("socket"),
        );
        for fd in [a, b] {
            K.set_option(fd, SockOpt::NonBlocking(true))
                .expect("nonblocking");
            K.bind(fd, &any).expect("bind");
        }
        let to = Some(SockAddr::Inet(K.local_addr(b).expect("addr")));
        let from = Some(SockAddr::Inet(K.local_addr(a).expect("addr")));
        // The same datagram each way, cut to 4 bytes: same count, sender
        // and truncation on the ring and on the pool.
        for on_the_ring in [true, false] {
            let sent = match on_the_ring {
                true => on_ring(&mut ring, send(a, b"0123456789", to.clone(), Vec::new())).0,
                false => on_pool(send(a, b"0123456789", to.clone(), Vec::new())).0,
            };
            assert_eq!(sent, Ok(10));
            let (res, op) = match on_the_ring {
                true => on_ring(&mut ring, recv(b, 4, 0)),
                false => on_pool(recv(b, 4, 0)),
            };
            let crate::buf::BufResult(meta, buf) = op.complete(res);
            let meta = meta.expect("recvmsg");
            assert_eq!((meta.bytes, meta.truncated, &meta.from), (4, true, &from));
            assert_eq!(&buf[..], b"0123", "ring: {on_the_ring}");
        }
        // Fds over a Unix pair: two sent, one accepted, the other closed.
        let (x, y) = K.unix_pair(SockType::Datagram).expect("socketpair");
        let sent = on_ring(&mut ring, send(x, b"fd", None, vec![a, b])).0;
        assert_eq!(sent, Ok(2));
        let (res, op) = on_ring(&mut ring, recv(y, 8, 1));
        let meta = op.complete(res).0.expect("recvmsg");
        assert_eq!(
            (meta.bytes, meta.fds.len(), meta.fds_truncated),
            (2, 1, true)
        );
        assert_eq!(
            K.fstat(meta.fds[0]).map(|s| s.file_type),
            Ok(FileType::Socket)
        );
        for fd in [a, b, x, y, meta.fds[0]] {
            K.close(fd).expect("close");
        }
    }

    #[test]
    fn connect_under_way_waits_and_resubmits() {
        let mut op = held(connect(-1, "127.0.0.1:1".parse().expect("addr")));
        assert_eq!(op.uring_result(-libc::EISCONN), Err(Errno(libc::EISCONN)));
        assert_eq!(op.uring_result(-libc::EINPROGRESS), Err(Errno::EAGAIN));
        assert!(op.started);
        assert_eq!(op.uring_result(-libc::EALREADY), Err(Errno::EAGAIN));
        assert_eq!(op.uring_result(-libc::EISCONN), Ok(0));
        assert_eq!(
            op.uring_result(-libc::ECONNREFUSED),
            Err(Errno::ECONNREFUSED)
        );
        // Building the entry alone does not count as started.
        let mut fresh = held(connect(-1, "[::1]:1".parse().expect("addr")));
        assert!(fresh.uring_entry().is_some());
        assert!(!fresh.started);
    }

    #[test]
    fn peer_addresses_decode_like_the_pool() {
        let v6: SocketAddr = "[fe80::1%3]:8080".parse().expect("addr");
        let v4: SocketAddr = "10.1.2.3:65535".parse().expect("addr");
        for addr in [v4, v6] {
            let raw = RawAddr::new(&addr);
            let (src, len) = raw.as_ptr();
            let mut peer = PeerAddr::new();
            // SAFETY: `src` points at `len` readable bytes of `raw`, and
            // `len` is at most the size of the storage written to.
            unsafe {
                ptr::copy_nonoverlapping(
                    src.cast::<u8>(),
                    ptr::from_mut(&mut peer.storage).cast(),
                    len as usize,
                )
            };
            peer.len = len;
            assert_eq!(peer.decode(), Ok(addr));
            peer.len = len - 1;
            assert_eq!(peer.decode(), Err(Errno(libc::EAFNOSUPPORT)));
        }
        let mut unix = PeerAddr::new();
        unix.storage.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(unix.decode(), Err(Errno(libc::EAFNOSUPPORT)));
        // A peer the op cannot describe: the new fd is closed, the error kept.
        let (rd, wr) = K.pipe().expect("pipe");
        let mut op = held(accept(-1));
        op.scratch.peer = Some(Box::new(unix));
        assert_eq!(op.uring_result(wr), Err(Errno(libc::EAFNOSUPPORT)));
        assert!(op.accepted.is_none());
        let mut buf = [0u8; 1];
        assert_eq!(K.read(rd, &mut buf), Ok(0), "the write end was closed");
        K.close(rd).expect("close");
    }
}
