//! Backend-neutral op descriptors and [`OpCode`].
//!
//! An op is data: a struct holding its fd, offsets and owned buffer
//! ([`file`], [`path`], [`net`]). How an op runs is the driver's business
//! (`crate::driver`, which also owns the `Op` future that carries an op
//! through a driver); this module only says what an op needs from a driver
//! and how a result turns into the user's output.
//!
//! Owns: the descriptors, [`OpCode`], and helpers that need nothing but the
//! seam (`run_until_done`, result mapping). May not touch: drivers, the
//! runtime, io_uring, or anything else above `crate::sys` and `crate::buf`.
//!
//! A late result of an abandoned op goes to [`OpCode::discard`], which for
//! `open` and `accept` closes the new fd so nothing leaks.

pub mod file;
pub mod net;
pub mod path;
pub mod uring;

use crate::buf::BufResult;
use crate::sys::{Errno, Interest, Kernel, SysResult};
use std::io;
use std::os::fd::RawFd;

/// How long a blocking wait for socket readiness sleeps in `poll(2)` before
/// checking whether its op was abandoned.
pub(crate) const ABANDON_CHECK_MS: i32 = 50;

/// What every op descriptor provides to the drivers.
///
/// Implemented by iokernel's own ops; drivers call `run_blocking` (pool,
/// sync fallback) or their own per-backend methods.
pub trait OpCode: Send + 'static + uring::UringOp {
    /// What awaiting the op yields.
    type Output;

    /// The syscall's name, for errors and traces.
    fn name(&self) -> &'static str;

    /// For socket ops: the fd and readiness to wait for when the
    /// non-blocking attempt says `EAGAIN`. File ops return `None`.
    fn readiness(&self) -> Option<(RawFd, Interest)> {
        None
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

    /// Perform the syscall once. Socket ops never block here: they return
    /// `EAGAIN` and the caller waits for [`OpCode::readiness`].
    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize>;

    /// Turn the raw result into the user's output, handing back buffers.
    fn complete(self, result: SysResult<usize>) -> Self::Output;

    /// The op was abandoned and its result arrived anyway: release what the
    /// result owns (an fd from `open`/`accept`). Default: nothing to release.
    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel)
    where
        Self: Sized,
    {
        let _ = (result, kernel);
    }
}

/// Run `op` to its final result on the calling thread: retry `EAGAIN` of
/// socket ops after waiting for readiness, checking `abandoned` between
/// waits so an abandoned op stops waiting (with `ECANCELED`).
pub(crate) fn run_until_done<T: OpCode>(
    op: &mut T,
    kernel: &dyn Kernel,
    abandoned: &dyn Fn() -> bool,
) -> SysResult<usize> {
    loop {
        match op.run_blocking(kernel) {
            Err(Errno::EAGAIN) => {
                let Some((fd, interest)) = op.readiness() else {
                    return Err(Errno::EAGAIN);
                };
                loop {
                    if abandoned() {
                        return Err(Errno::ECANCELED);
                    }
                    if kernel.wait_ready(fd, interest, ABANDON_CHECK_MS)? {
                        break;
                    }
                }
            }
            result => return result,
        }
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
