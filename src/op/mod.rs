//! Backend-neutral op descriptors and [`OpCode`].
//!
//! An op is data: a struct holding its fd, offsets and owned buffer
//! ([`file`](mod@file), [`path`], [`net`]). How an op runs is the driver's business
//! (`crate::driver`, which also owns the `Op` future that carries an op
//! through a driver); this module only says what an op needs from a driver
//! and how a result turns into the user's output.
//!
//! Owns: the descriptors, [`OpCode`], and helpers that need nothing but the
//! seam (`run_until_done`, result mapping). May not touch: drivers, the
//! runtime, io_uring, or anything else above `crate::sys` and `crate::buf`.
//!
//! A late result of an abandoned op goes to [`OpCode::discard`], which for
//! `open` closes the new fd so nothing leaks.
//!
//! A cancelled socket op, or read at the file position
//! ([`OpCode::takes_in_order`]), never *starts* its syscall once abandoned
//! (the pool re-checks after every readiness wait, the ring driver after a
//! poll entry), and data the kernel delivered to it anyway is not lost:
//! the `discard` of `recv`, `accept` and `read` keeps the bytes or the
//! connection in a per-fd leftover store (`crate::sys::leftover`) that the
//! next such op on that fd takes first ([`OpCode::take_leftover`], asked
//! before any driver sees the op and again on every attempt). Closing the
//! fd through iokernel drops what was kept (closing kept connections).

pub mod file;
pub mod msg;
pub mod net;
pub mod path;

use crate::buf::BufResult;
use crate::sys::{Errno, FileStat, Interest, Kernel, MsgFlags, OpenFlags, SysResult};
use std::ffi::CStr;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::task::Waker;

/// How long a blocking wait for socket readiness sleeps in `poll(2)` before
/// checking whether its op was abandoned.
pub(crate) const ABANDON_CHECK_MS: i32 = 50;

/// What every op descriptor provides to the drivers.
///
/// Implemented by iokernel's own ops; drivers call `run_blocking` (pool,
/// readiness, sync fallback) or encode [`OpCode::request`] their own way
/// (the io_uring driver turns it into a submission entry).
pub trait OpCode: Send + 'static {
    /// What awaiting the op yields.
    type Output;

    /// The syscall's name, for errors and traces.
    fn name(&self) -> &'static str;

    /// For socket ops: the fd and readiness to wait for when the
    /// non-blocking attempt says `EAGAIN`. File ops return `None`.
    fn readiness(&self) -> Option<(RawFd, Interest)> {
        None
    }

    /// What to wait for when the op's syscall says `EAGAIN` (its fd is
    /// non-blocking): [`OpCode::readiness`] for socket ops, and for a
    /// `read`/`write` (at the file position or an offset) too, which may be
    /// given a socket, pipe or FIFO. Unlike `readiness` it routes nothing:
    /// those ops still go where file ops go, and wait there. `None`:
    /// `EAGAIN` is the op's result.
    fn eagain_wait(&self) -> Option<(RawFd, Interest)> {
        self.readiness()
    }

    /// The op's syscall said `ESPIPE` (its fd is a stream): drop the offset
    /// and report true when the op moves the stream instead, as a read or
    /// write at an offset does (see `op::file`'s Streams); false when
    /// `ESPIPE` is the op's result (the default).
    fn drop_offset(&mut self) -> bool {
        false
    }

    /// Whether the op also reads or writes a regular file, so even with a
    /// readiness fd it may block on the disk (`sendfile` reads its input
    /// file): readiness drivers run such ops on the pool. Default: no.
    fn reads_files(&self) -> bool {
        false
    }

    /// For `close`: the fd it releases, so a readiness driver can wake the
    /// ops waiting on it. Every other op returns `None`.
    fn closes_fd(&self) -> Option<RawFd> {
        None
    }

    /// For the inline fast path: a positional read of a regular file, or a
    /// buffered positional write, that may first be tried on the calling
    /// thread with `RWF_NOWAIT` ([`OpCode::run_nowait`]). Default: `None`
    /// (never tried).
    fn nowait(&mut self) -> Option<Nowait> {
        None
    }

    /// One nowait attempt of the op ([`Kernel::preadv_nowait`] or
    /// [`Kernel::pwritev_nowait`]), only called when [`OpCode::nowait`] is
    /// `Some`. Its result is the op's own only when it moved all
    /// [`Nowait::len_bytes`]; anything else is up to the driver (see
    /// `crate::driver`'s inline path). Default: `EOPNOTSUPP`.
    fn run_nowait(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let _ = kernel;
        Err(Errno::EOPNOTSUPP)
    }

    /// The op as a backend-neutral [`Request`]: the syscall and its
    /// arguments, borrowing the op's buffers, paths and output slots, so a
    /// completion backend can encode it without knowing the op's type.
    /// Drivers call it once the op sits at its final address, and again
    /// when the result arrives (to fill the outputs). Default:
    /// [`Request::Other`], which runs the op through
    /// [`OpCode::run_blocking`] on every backend.
    fn request(&mut self) -> Request<'_> {
        Request::Other
    }

    /// The fd the op takes bytes or connections from, in order: a `recv`
    /// or `accept` (a readable [`OpCode::readiness`], the default) and a
    /// `read` at the file position. Such an op is not started once
    /// abandoned, a late result of it is kept ([`OpCode::discard`]), and
    /// a ring holds a new one of the same fd back while an abandoned one
    /// may still take bytes, so kept bytes come first.
    fn takes_in_order(&self) -> Option<RawFd> {
        match self.readiness() {
            Some((fd, Interest::Readable)) => Some(fd),
            _ => None,
        }
    }

    /// The fd the op may take bytes from in order as a ring entry: what
    /// [`OpCode::takes_in_order`] says, and for a read at offset 0 its fd
    /// (the kernel's ring reads a socket at offset 0 as at its position).
    /// A ring holds such an op back while an abandoned reader of the fd is
    /// with the kernel, and holds new readers of the fd back while such an
    /// op is abandoned there. Default: [`OpCode::takes_in_order`].
    fn may_take_in_order(&self) -> Option<RawFd> {
        self.takes_in_order()
    }

    /// What the op can finish with without the kernel: bytes or a
    /// connection an earlier, cancelled op on the same fd received (see the
    /// module docs). Called before the op is submitted and by
    /// `run_blocking` on every attempt. Default: nothing.
    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        let _ = kernel;
        None
    }

    /// For socket ops: whether `result`, just returned by
    /// [`OpCode::run_blocking`], proves the fd has nothing more to give in
    /// the op's direction right now (a TCP recv that filled only part of
    /// its buffer: Linux copies everything queued, up to the buffer's size;
    /// a TCP send that took only part of its bytes: the send buffer is
    /// full), so a readiness driver waits for the next event before trying
    /// again instead of making a syscall that would say `EAGAIN`. Only ops
    /// that know their socket keeps this rule say so. Default: no.
    fn leaves_fd_drained(&self, result: &SysResult<usize>) -> bool {
        let _ = result;
        false
    }

    /// Perform the syscall once. Socket ops never block here: they return
    /// `EAGAIN` and the caller waits for [`OpCode::readiness`].
    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize>;

    /// The syscall as a ring entry performs it: [`OpCode::run_blocking`]
    /// without its look at what cancelled ops left
    /// ([`OpCode::take_leftover`]). A kernel's ring entry never sees the
    /// leftovers: the driver takes them before it submits the op, and
    /// holds a new reader back while an abandoned one may still add to
    /// them, so a simulated ring that ran `run_blocking` would hide a
    /// driver that forgot to. Default: `run_blocking` (ops with no
    /// leftovers).
    fn run_entry(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        self.run_blocking(kernel)
    }

    /// Turn the raw result into the user's output, handing back buffers.
    fn complete(self, result: SysResult<usize>) -> Self::Output;

    /// The op was abandoned and its result arrived anyway: release what the
    /// result owns (an fd from `open`) or keep what another op must get
    /// (bytes from `recv`, a connection from `accept`: the leftover store).
    /// Default: nothing to release.
    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel)
    where
        Self: Sized,
    {
        let _ = (result, kernel);
    }
}

/// What [`OpCode::nowait`] says of an op that may be tried inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nowait {
    /// The file.
    pub fd: RawFd,
    /// Bytes the op reads or writes.
    pub len_bytes: usize,
    /// A write (else a read).
    pub write: bool,
}

/// What an op asks of the kernel, as data: see [`OpCode::request`].
///
/// Buffers are the regions the syscall reads or fills; output slots
/// (`out`, `started`) are where a backend that ran the call itself puts
/// what the call returned besides its count, exactly as
/// [`OpCode::run_blocking`] would have.
#[non_exhaustive]
pub enum Request<'a> {
    /// `read`/`pread` (`offset: None` is the file position).
    Read {
        /// The fd.
        fd: RawFd,
        /// Where the bytes go.
        buf: &'a mut [u8],
        /// Where to read (`None`: the file position, which advances).
        offset: Option<u64>,
    },
    /// `write`/`pwrite`.
    Write {
        /// The fd.
        fd: RawFd,
        /// The bytes.
        buf: &'a [u8],
        /// Where to write (`None`: the file position, which advances).
        offset: Option<u64>,
    },
    /// `readv`/`preadv`.
    ReadVectored {
        /// The fd.
        fd: RawFd,
        /// Where the bytes go, in order.
        bufs: Vec<IoSliceMut<'a>>,
        /// Where to read (`None`: the file position).
        offset: Option<u64>,
    },
    /// `writev`/`pwritev`.
    WriteVectored {
        /// The fd.
        fd: RawFd,
        /// The bytes, in order.
        bufs: Vec<IoSlice<'a>>,
        /// Where to write (`None`: the file position).
        offset: Option<u64>,
    },
    /// `fsync`/`fdatasync`.
    Sync {
        /// The fd.
        fd: RawFd,
        /// `fdatasync` rather than `fsync`.
        data_only: bool,
    },
    /// `ftruncate`.
    Truncate {
        /// The fd.
        fd: RawFd,
        /// The new length.
        len_bytes: u64,
    },
    /// `fallocate`.
    Allocate {
        /// The fd.
        fd: RawFd,
        /// The `fallocate` mode bits.
        mode: i32,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len_bytes: u64,
    },
    /// `fstat`; the result goes to `out`.
    Stat {
        /// The fd.
        fd: RawFd,
        /// Where the stat goes.
        out: &'a mut Option<FileStat>,
    },
    /// `close`.
    Close {
        /// The fd.
        fd: RawFd,
    },
    /// `open` (the fd is the count).
    Open {
        /// The path.
        path: &'a CStr,
        /// The flags.
        flags: OpenFlags,
        /// The mode for a created file.
        mode: u32,
    },
    /// `rename`.
    Rename {
        /// The old name.
        from: &'a CStr,
        /// The new name.
        to: &'a CStr,
    },
    /// `unlink`.
    Unlink {
        /// The name.
        path: &'a CStr,
    },
    /// `mkdir`.
    Mkdir {
        /// The name.
        path: &'a CStr,
        /// The mode.
        mode: u32,
    },
    /// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`; the new fd and the
    /// peer go to `out`.
    Accept {
        /// The listening fd.
        fd: RawFd,
        /// Where the accepted socket goes.
        out: &'a mut Option<(RawFd, SocketAddr)>,
    },
    /// `connect`; `started` says a previous attempt is under way (a
    /// repeated connect then reports its outcome).
    Connect {
        /// The socket.
        fd: RawFd,
        /// The peer.
        addr: &'a SocketAddr,
        /// Whether the handshake is already under way.
        started: &'a mut bool,
    },
    /// `recv`.
    Recv {
        /// The socket.
        fd: RawFd,
        /// Where the bytes go.
        buf: &'a mut [u8],
        /// The op's flags.
        flags: MsgFlags,
    },
    /// `send`.
    Send {
        /// The socket.
        fd: RawFd,
        /// The bytes.
        buf: &'a [u8],
        /// The op's flags.
        flags: MsgFlags,
    },
    /// `sendmsg(2)` of one buffer, with fds as `SCM_RIGHTS`.
    SendMsg {
        /// The socket.
        fd: RawFd,
        /// The bytes.
        buf: &'a [u8],
        /// The destination (`None`: the connected peer).
        to: Option<&'a crate::sys::SockAddr>,
        /// Fds to pass.
        fds: &'a [RawFd],
        /// The op's flags.
        flags: MsgFlags,
    },
    /// `recvmsg(2)` into one buffer; what it got besides the count goes to
    /// `out`.
    RecvMsg {
        /// The socket.
        fd: RawFd,
        /// Where the bytes go.
        buf: &'a mut [u8],
        /// Most fds to accept.
        fds_max: usize,
        /// The op's flags.
        flags: MsgFlags,
        /// Where the sender, fds and truncation flags go.
        out: &'a mut Option<crate::sys::RecvMeta>,
    },
    /// `shutdown(2)`.
    Shutdown {
        /// The socket.
        fd: RawFd,
        /// Which directions.
        how: crate::sys::Shutdown,
    },
    /// No portable form (`lseek`, `sendfile`, xattrs, ...): backends run
    /// [`OpCode::run_blocking`].
    Other,
}

/// Run `op` to its final result on the calling thread: retry `EAGAIN` of
/// socket ops after waiting for readiness. A socket op checks `abandoned`
/// before every attempt, so an abandoned op never starts its syscall (it
/// ends with `ECANCELED`); each wait lasts at most [`ABANDON_CHECK_MS`] and
/// is followed by a new attempt, which also picks up bytes or connections
/// a racing cancelled op left for this fd (they wake no readiness).
pub(crate) fn run_until_done<T: OpCode>(
    op: &mut T,
    kernel: &dyn Kernel,
    abandoned: &dyn Fn() -> bool,
) -> SysResult<usize> {
    run_until_done_or_give_way(op, kernel, abandoned, &|| false)
}

/// [`run_until_done`] for a thread others may need: after a readiness
/// wait that ended with the fd still not ready, `give_way` is asked, and
/// `true` ends the op with `EAGAIN` (the caller submits it again behind
/// the work that was waiting for the thread).
pub(crate) fn run_until_done_or_give_way<T: OpCode>(
    op: &mut T,
    kernel: &dyn Kernel,
    abandoned: &dyn Fn() -> bool,
    give_way: &dyn Fn() -> bool,
) -> SysResult<usize> {
    loop {
        if never_started_once_abandoned(op) && abandoned() {
            return Err(Errno::ECANCELED);
        }
        match op.run_blocking(kernel) {
            Err(Errno::EAGAIN) => {
                let Some((fd, interest)) = op.eagain_wait() else {
                    return Err(Errno::EAGAIN);
                };
                if !kernel.wait_ready(fd, interest, ABANDON_CHECK_MS)? && give_way() {
                    return Err(Errno::EAGAIN);
                }
                // (Socket ops check at the top; nothing moved yet either way.)
                if abandoned() {
                    return Err(Errno::ECANCELED);
                }
            }
            result => return result,
        }
    }
}

/// Whether `op`, once abandoned, must not start its syscall: a socket op
/// (its peer may deliver to it) or one that takes bytes in order
/// ([`OpCode::takes_in_order`]); drivers check this before every start.
pub(crate) fn never_started_once_abandoned<T: OpCode>(op: &T) -> bool {
    op.readiness().is_some() || op.takes_in_order().is_some()
}

/// What happens before any driver sees `op`: closing an fd drops what
/// cancelled ops left for it; a recv/accept with leftovers is done.
pub(crate) fn settle_early<T: OpCode>(op: &mut T, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
    if let Some(fd) = op.closes_fd() {
        crate::sys::leftover::forget(kernel, fd);
    }
    op.take_leftover(kernel)
}

/// Whether `op`, a reader in order ([`OpCode::takes_in_order`]), must
/// wait before it starts: its fd is owed the late result of an abandoned
/// reader, or the last bytes of a receive stream stopping for it (see
/// `crate::sys::leftover::LateResult`), which will be kept and come
/// before anything it would read now; `waker` is woken once nothing is.
#[inline]
pub(crate) fn waits_for_late_results<T: OpCode>(
    op: &T,
    kernel: &dyn Kernel,
    waker: &Waker,
) -> bool {
    crate::sys::leftover::anything_owed() && waits_for_owed_fd(op.takes_in_order(), kernel, waker)
}

#[inline(never)]
fn waits_for_owed_fd(fd: Option<RawFd>, kernel: &dyn Kernel, waker: &Waker) -> bool {
    fd.is_some_and(|fd| crate::sys::leftover::poll_nothing_owed(kernel, fd, waker).is_pending())
}

/// Run `op` on the calling thread, with no driver (the sync fallback):
/// what cancelled ops left for its fd first, else the syscall until done.
pub(crate) fn run_here<T: OpCode>(op: &mut T, kernel: &dyn Kernel) -> SysResult<usize> {
    match settle_early(op, kernel) {
        Some(result) => result,
        None => run_until_done(op, kernel, &|| false),
    }
}

/// Map a seam result to a user result.
pub(crate) fn to_io<T>(result: SysResult<T>) -> io::Result<T> {
    result.map_err(io::Error::from)
}

/// Map a seam byte count plus buffer to a [`BufResult`].
pub(crate) fn buf_result<B>(result: SysResult<usize>, buf: B) -> BufResult<usize, B> {
    BufResult(to_io(result), buf)
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::file::{Read, ReadVectored};
    use super::msg::RecvMsg;
    use super::net::{Accept, Recv};
    use super::OpCode;
    use crate::sim::{self, SimOptions};
    use crate::sys::{leftover, Kernel, MsgFlags, SockType};

    /// What a kept-bytes reader on `fd` gets from the store, segment by
    /// segment, until it is empty.
    fn drain_bytes(kernel: &dyn Kernel, fd: i32) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Some(n) = leftover::take_bytes(kernel, fd, &mut buf, false) {
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// An op that took kept bytes (or a kept connection) and whose future
    /// was dropped before taking them puts them back in front: what comes
    /// next is still in the order it was received, not the taken part
    /// behind later segments.
    #[test]
    fn kept_results_an_op_took_and_nobody_got_go_back_in_front() {
        let kernel = sim::new_kernel(SimOptions::new(11)).unwrap();
        let k: &dyn Kernel = &*kernel;
        // Sockets of the kernel: what is kept names the file it is for.
        let like = "127.0.0.1:0".parse().unwrap();
        let socket = || k.socket(&like, SockType::Stream).unwrap();
        let fresh_stash = || {
            let fd = socket();
            leftover::stash_bytes(k, fd, None, b"first-");
            leftover::stash_bytes(k, fd, None, b"second");
            fd
        };
        let fd = fresh_stash();
        let mut recv = Recv {
            fd,
            buf: vec![0u8; 3],
            flags: MsgFlags::NONE,
            short_drains: false,
            took_leftover: false,
        };
        assert_eq!(recv.take_leftover(k), Some(Ok(3)));
        recv.discard(Ok(3), k);
        assert_eq!(drain_bytes(k, fd), b"first-second", "recv");

        let fd = fresh_stash();
        let mut read = Read {
            fd,
            buf: vec![0u8; 4],
            offset: None,
            took_leftover: false,
        };
        assert_eq!(read.take_leftover(k), Some(Ok(4)));
        read.discard(Ok(4), k);
        assert_eq!(drain_bytes(k, fd), b"first-second", "read");

        let fd = fresh_stash();
        let mut readv = ReadVectored {
            fd,
            bufs: vec![vec![0u8; 2], vec![0u8; 2]],
            offset: None,
            took_leftover: false,
        };
        assert_eq!(readv.take_leftover(k), Some(Ok(2)));
        readv.discard(Ok(2), k);
        assert_eq!(drain_bytes(k, fd), b"first-second", "readv");

        let fd = fresh_stash();
        let mut recvmsg = RecvMsg {
            fd,
            buf: vec![0u8; 5],
            fds_max: 0,
            flags: MsgFlags::NONE,
            meta: None,
            took_leftover: None,
        };
        assert_eq!(recvmsg.take_leftover(k), Some(Ok(5)));
        recvmsg.discard(Ok(5), k);
        assert_eq!(drain_bytes(k, fd), b"first-second", "recvmsg");

        let addr = "127.0.0.1:1".parse().unwrap();
        let (listener, first, second) = (socket(), socket(), socket());
        leftover::stash_conn(k, listener, (first, addr));
        leftover::stash_conn(k, listener, (second, addr));
        let mut accept = Accept {
            fd: listener,
            accepted: None,
            took_leftover: false,
        };
        assert_eq!(accept.take_leftover(k), Some(Ok(0)));
        accept.discard(Ok(0), k);
        let firsts: Vec<i32> = std::iter::from_fn(|| leftover::take_conn(k, listener))
            .map(|(fd, _)| fd)
            .collect();
        assert_eq!(firsts, [first, second], "accept");
    }
}
