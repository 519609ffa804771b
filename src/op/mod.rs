//! Backend-neutral op descriptors and the [`Op`] future that runs them.
//!
//! An op is data: a struct holding its fd, offsets and owned buffer
//! ([`file`](mod@file), [`path`], [`net`]). How an op runs is the driver's business
//! (`crate::driver`); this module only says what an op needs from a driver
//! and how a result turns into the user's output.
//!
//! # Lifecycle and cancellation
//!
//! `Op<T>` starts as `Ready(op)`. On first poll it either runs the blocking
//! syscall right there (no runtime on this thread: the *sync fallback*) or
//! is submitted to the current runtime's driver and becomes `InFlight`. An
//! in-flight op belongs to the driver: dropping the future marks it
//! abandoned, and the driver drops the buffer only after the kernel has
//! returned. A late result of an abandoned op goes to [`OpCode::discard`],
//! which for `open` closes the new fd so nothing leaks.
//!
//! A cancelled socket op never *starts* its syscall once abandoned (the
//! pool re-checks after every readiness wait, the ring driver after a
//! poll entry), and data the kernel delivered to it anyway is not lost:
//! `recv`'s and `accept`'s `discard` keep the bytes or the connection in a
//! per-socket leftover store (`crate::sys::leftover`) that the next
//! `recv`/`accept` on that fd takes first ([`OpCode::take_leftover`], asked
//! before any driver sees the op and again on every attempt). Closing the
//! fd through iokernel drops what was kept (closing kept connections).

pub mod file;
pub mod net;
pub mod path;
pub mod uring;

use crate::buf::BufResult;
use crate::driver::{Driver, InFlight};
use crate::runtime::context;
use crate::sys::{Errno, Interest, Kernel, SysResult};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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

    /// What the op can finish with without the kernel: bytes or a
    /// connection an earlier, cancelled op on the same fd received (see the
    /// module docs). Called before the op is submitted and by
    /// `run_blocking` on every attempt. Default: nothing.
    fn take_leftover(&mut self, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
        let _ = kernel;
        None
    }

    /// Perform the syscall once. Socket ops never block here: they return
    /// `EAGAIN` and the caller waits for [`OpCode::readiness`].
    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize>;

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
    loop {
        if op.readiness().is_some() && abandoned() {
            return Err(Errno::ECANCELED);
        }
        match op.run_blocking(kernel) {
            Err(Errno::EAGAIN) => {
                let Some((fd, interest)) = op.readiness() else {
                    return Err(Errno::EAGAIN);
                };
                kernel.wait_ready(fd, interest, ABANDON_CHECK_MS)?;
            }
            result => return result,
        }
    }
}

/// What happens before any driver sees `op`: closing an fd drops what
/// cancelled ops left for it; a recv/accept with leftovers is done.
fn settle_early<T: OpCode>(op: &mut T, kernel: &dyn Kernel) -> Option<SysResult<usize>> {
    if let Some(fd) = op.closes_fd() {
        crate::sys::leftover::forget(kernel, fd);
    }
    op.take_leftover(kernel)
}

enum OpState<T: OpCode> {
    Ready(T),
    InFlight(InFlight<T>),
    Done,
}

/// A submitted (or about to be submitted) op; await it, or call
/// [`Op::wait`] from synchronous code.
#[must_use = "an op does nothing until awaited or waited on"]
pub struct Op<T: OpCode> {
    state: OpState<T>,
}

// The op struct is moved into the driver on submission and never pinned.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    pub(crate) fn new(op: T) -> Op<T> {
        Op {
            state: OpState::Ready(op),
        }
    }

    /// Run the op to completion on this thread, blocking it. Uses the
    /// current runtime's kernel when called inside one (so a simulated
    /// kernel stays in charge), else the real kernel.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("iok-wait-doc-{}", std::process::id()));
    /// std::fs::write(&path, b"hello").unwrap();
    /// let fd = iokernel::io::open(&path, iokernel::io::OpenFlags::RDONLY, 0).wait().unwrap();
    /// let iokernel::buf::BufResult(n, buf) = iokernel::io::read(fd, vec![0u8; 16]).wait();
    /// assert_eq!(n.unwrap(), 5);
    /// assert_eq!(buf, b"hello");
    /// iokernel::io::close(fd).wait().unwrap();
    /// # std::fs::remove_file(path).unwrap();
    /// ```
    pub fn wait(mut self) -> T::Output {
        match std::mem::replace(&mut self.state, OpState::Done) {
            OpState::Ready(mut op) => {
                let kernel = context::current_kernel();
                let result = match settle_early(&mut op, &*kernel) {
                    Some(result) => result,
                    None => run_until_done(&mut op, &*kernel, &|| false),
                };
                op.complete(result)
            }
            OpState::InFlight(mut in_flight) => {
                crate::runtime::block_on_here(std::future::poll_fn(move |cx| in_flight.poll(cx)))
            }
            OpState::Done => panic!("Op::wait called on an op that already completed"),
        }
    }

    fn submit_or_run(op: T, driver: Option<Driver>) -> Result<InFlight<T>, T::Output> {
        let mut op = op;
        let kernel = match &driver {
            Some(driver) => Arc::clone(driver.kernel()),
            None => context::current_kernel(),
        };
        if let Some(result) = settle_early(&mut op, &*kernel) {
            return Err(op.complete(result));
        }
        match driver {
            Some(driver) => Ok(driver.submit(op)),
            None => {
                let result = run_until_done(&mut op, &*kernel, &|| false);
                Err(op.complete(result))
            }
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                OpState::Ready(_) => {
                    let OpState::Ready(op) = std::mem::replace(&mut this.state, OpState::Done)
                    else {
                        unreachable!("state checked above")
                    };
                    match Self::submit_or_run(op, context::current_driver()) {
                        Ok(in_flight) => this.state = OpState::InFlight(in_flight),
                        Err(output) => return Poll::Ready(output),
                    }
                }
                OpState::InFlight(in_flight) => {
                    let output = std::task::ready!(in_flight.poll(cx));
                    this.state = OpState::Done;
                    return Poll::Ready(output);
                }
                OpState::Done => panic!("Op polled after it completed"),
            }
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
