//! The kqueue FFI boundary (macOS and the BSDs): a kqueue implementing the
//! seam's [`Poller`] with kqueue semantics (see `crate::sys::poller`).
//!
//! Kept to the raw calls: each direction of an fd is its own filter
//! (`EVFILT_READ`, `EVFILT_WRITE`) added with `EV_ADD` plus `EV_ONESHOT`
//! ([`PollMode::Oneshot`]) or `EV_CLEAR` ([`PollMode::Edge`]) and removed
//! with `EV_DELETE`; the token rides in `udata`. A wake is an `EVFILT_USER`
//! event triggered with `NOTE_TRIGGER` (a self-pipe on NetBSD and OpenBSD,
//! whose libc bindings have no `EVFILT_USER`). Every rule the driver relies
//! on (re-arming, waiters, close) is shared code in `crate::driver::readiness`
//! and tested on Linux through the simulator's kqueue-semantics poller.
//!
//! Each change is one `kevent` call with no event list, so a failing change
//! returns `-1` with its errno (`EBADF`, `ENOMEM`, `ENOENT` for deleting a
//! filter that does not exist, which `modify`/`deregister` tolerate).

#![allow(unsafe_code)]
// `kevent`'s field types differ between macOS and each BSD (i16 or u32
// filters, pointer or integer udata), so the casts below are needed on
// some targets and no-ops on others.
#![allow(clippy::unnecessary_cast)]

use super::syscall::{syscall, syscall_close, syscall_once};
use crate::sys::{Errno, PollEvent, PollMode, PollWake, Poller, Ready, SysResult};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// The token of the wake event; never reported by `wait`.
const WAKE_TOKEN: u64 = u64::MAX;

/// Events fetched per `kevent` wait.
const EVENTS_PER_WAIT: usize = 256;

/// A zeroed `kevent` describing one change.
fn change(ident: usize, filter: i32, flags: u32, fflags: u32, token: u64) -> libc::kevent {
    // SAFETY: `kevent` is plain old data (integers and a pointer/integer
    // udata) for which all-zero bytes are a valid value.
    let mut event: libc::kevent = unsafe { std::mem::zeroed() };
    event.ident = ident as _;
    event.filter = filter as _;
    event.flags = flags as _;
    event.fflags = fflags as _;
    event.udata = token as _;
    event
}

/// Apply one change to the kqueue `kq`.
fn apply(kq: RawFd, event: &libc::kevent) -> SysResult<()> {
    syscall(|| {
        // SAFETY: one live kevent in, no event list out, no timeout pointer.
        unsafe { libc::kevent(kq, event, 1, std::ptr::null_mut(), 0, std::ptr::null()) }
    })
    .map(drop)
}

fn close_fd(fd: RawFd) {
    let _ = syscall_close(|| {
        // SAFETY: the caller owns `fd` and closes it exactly once.
        unsafe { libc::close(fd) }
    });
}

/// An owned kqueue fd, shared by the [`Kqueue`] and its waker so a late
/// wake never reaches a reused fd number.
struct KqueueFd(RawFd);

impl Drop for KqueueFd {
    fn drop(&mut self) {
        close_fd(self.0);
    }
}

/// Wakes a thread waiting in [`Kqueue`]'s `wait`.
pub(crate) struct KqueueWaker {
    #[cfg(not(kqueue_pipe_wake))]
    kq: Arc<KqueueFd>,
    /// The write end of the wake pipe, owned (and closed) by the waker.
    #[cfg(kqueue_pipe_wake)]
    pipe_write: RawFd,
}

#[cfg(kqueue_pipe_wake)]
impl Drop for KqueueWaker {
    fn drop(&mut self) {
        close_fd(self.pipe_write);
    }
}

impl PollWake for KqueueWaker {
    #[cfg(not(kqueue_pipe_wake))]
    fn wake(&self) {
        let trigger = change(
            0,
            libc::EVFILT_USER as i32,
            0,
            libc::NOTE_TRIGGER as u32,
            WAKE_TOKEN,
        );
        // EBADF only after the kqueue is gone: nobody is left to wake.
        let _ = apply(self.kq.0, &trigger);
    }

    #[cfg(kqueue_pipe_wake)]
    fn wake(&self) {
        // EAGAIN (pipe full) still leaves the read end readable.
        let _ = syscall(|| {
            // SAFETY: writes one byte from a live static slice to our pipe.
            unsafe { libc::write(self.pipe_write, b"w".as_ptr().cast(), 1) }
        });
    }
}

/// A kqueue and its wake event.
pub(crate) struct Kqueue {
    kq: RawFd,
    /// Keeps `kq` open (shared with the waker).
    _owned: Arc<KqueueFd>,
    waker: Arc<KqueueWaker>,
    #[cfg(kqueue_pipe_wake)]
    pipe_read: RawFd,
    buf: Vec<libc::kevent>,
}

impl Kqueue {
    /// A fresh close-on-exec kqueue with its wake event registered.
    pub(crate) fn new() -> SysResult<Kqueue> {
        let kq = syscall(|| {
            // SAFETY: kqueue takes no arguments.
            unsafe { libc::kqueue() }
        })?;
        let cloexec = syscall(|| {
            // SAFETY: fcntl on our own new fd with an integer argument.
            unsafe { libc::fcntl(kq, libc::F_SETFD, libc::FD_CLOEXEC) }
        });
        if let Err(e) = cloexec {
            close_fd(kq);
            return Err(e);
        }
        Kqueue::with_wake(Arc::new(KqueueFd(kq)))
    }

    #[cfg(not(kqueue_pipe_wake))]
    fn with_wake(owned: Arc<KqueueFd>) -> SysResult<Kqueue> {
        let kq = owned.0;
        let flags = (libc::EV_ADD | libc::EV_CLEAR) as u32;
        apply(
            kq,
            &change(0, libc::EVFILT_USER as i32, flags, 0, WAKE_TOKEN),
        )?;
        Ok(Kqueue {
            kq,
            waker: Arc::new(KqueueWaker {
                kq: Arc::clone(&owned),
            }),
            _owned: owned,
            buf: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    #[cfg(kqueue_pipe_wake)]
    fn with_wake(owned: Arc<KqueueFd>) -> SysResult<Kqueue> {
        let kq = owned.0;
        let mut fds = [-1; 2];
        syscall(|| {
            // SAFETY: `fds` is a live array of two c_ints.
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }
        })?;
        let flags = libc::EV_ADD as u32;
        let wake = change(
            fds[0] as usize,
            libc::EVFILT_READ as i32,
            flags,
            0,
            WAKE_TOKEN,
        );
        if let Err(e) = apply(kq, &wake) {
            close_fd(fds[0]);
            close_fd(fds[1]);
            return Err(e);
        }
        Ok(Kqueue {
            kq,
            waker: Arc::new(KqueueWaker { pipe_write: fds[1] }),
            _owned: owned,
            pipe_read: fds[0],
            buf: Vec::with_capacity(EVENTS_PER_WAIT),
        })
    }

    /// Empty the wake pipe (NetBSD/OpenBSD); the user event clears itself.
    fn drain_wake(&self) {
        #[cfg(kqueue_pipe_wake)]
        {
            let mut bytes = [0u8; 64];
            // EAGAIN: already empty.
            while let Ok(n) = syscall(|| {
                // SAFETY: reads into a live local array of its own length.
                unsafe { libc::read(self.pipe_read, bytes.as_mut_ptr().cast(), bytes.len()) }
            }) {
                if n <= 0 {
                    break;
                }
            }
        }
    }

    /// Add or delete the filter of one direction.
    fn set_filter(
        &self,
        fd: RawFd,
        filter: i32,
        want: bool,
        token: u64,
        mode: PollMode,
    ) -> SysResult<()> {
        let ident = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        if !want {
            return match apply(
                self.kq,
                &change(ident, filter, libc::EV_DELETE as u32, 0, token),
            ) {
                Err(Errno::ENOENT) => Ok(()),
                other => other,
            };
        }
        let mode_flag = match mode {
            PollMode::Oneshot => libc::EV_ONESHOT,
            PollMode::Edge => libc::EV_CLEAR,
        };
        let flags = (libc::EV_ADD | mode_flag) as u32;
        apply(self.kq, &change(ident, filter, flags, 0, token))
    }
}

impl Poller for Kqueue {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Ready,
        mode: PollMode,
    ) -> SysResult<()> {
        self.modify(fd, token, interest, mode)
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Ready, mode: PollMode) -> SysResult<()> {
        self.set_filter(fd, libc::EVFILT_READ as i32, interest.readable, token, mode)?;
        self.set_filter(
            fd,
            libc::EVFILT_WRITE as i32,
            interest.writable,
            token,
            mode,
        )
    }

    fn deregister(&mut self, fd: RawFd) -> SysResult<()> {
        let ident = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let delete = libc::EV_DELETE as u32;
        let read = apply(
            self.kq,
            &change(ident, libc::EVFILT_READ as i32, delete, 0, 0),
        );
        let write = apply(
            self.kq,
            &change(ident, libc::EVFILT_WRITE as i32, delete, 0, 0),
        );
        match (read, write) {
            (Err(Errno::ENOENT), Err(Errno::ENOENT)) => Err(Errno::ENOENT),
            (Err(e), _) | (_, Err(e)) if e != Errno::ENOENT => Err(e),
            _ => Ok(()),
        }
    }

    fn wait(&mut self, events: &mut Vec<PollEvent>, timeout: Option<Duration>) -> SysResult<()> {
        let spec = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        let spec_ptr = spec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        self.buf.clear();
        let capacity = self.buf.capacity();
        let got = match syscall_once(|| {
            // SAFETY: `buf` has room for `capacity` events and the kernel
            // writes at most that many; `spec_ptr` is null or a live timespec.
            unsafe {
                libc::kevent(
                    self.kq,
                    std::ptr::null(),
                    0,
                    self.buf.as_mut_ptr(),
                    capacity as _,
                    spec_ptr,
                )
            }
        }) {
            Ok(n) => n as usize,
            Err(Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised the first `got` (<= capacity) events.
        unsafe { self.buf.set_len(got) };
        for event in &self.buf {
            let token = event.udata as u64;
            if token == WAKE_TOKEN {
                self.drain_wake();
                continue;
            }
            let failed = (event.flags as u32) & (libc::EV_EOF | libc::EV_ERROR) as u32 != 0;
            let filter = event.filter as i32;
            events.push(PollEvent {
                token,
                ready: Ready {
                    readable: failed || filter == libc::EVFILT_READ as i32,
                    writable: failed || filter == libc::EVFILT_WRITE as i32,
                },
                closed: failed,
            });
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn PollWake> {
        Arc::clone(&self.waker) as Arc<dyn PollWake>
    }
}

#[cfg(kqueue_pipe_wake)]
impl Drop for Kqueue {
    fn drop(&mut self) {
        close_fd(self.pipe_read);
    }
}
