//! The epoll FFI boundary: an epoll set implementing the seam's
//! [`Poller`] with epoll semantics (see `crate::sys::poller`), and the
//! eventfd that wakes a thread parked in the wait.
//!
//! Contract:
//! - A [`PollMode::Oneshot`] registration (`EPOLLONESHOT`) stays in the set
//!   after it reports, disarmed until it is modified again; the caller
//!   re-arms only when someone waits. [`PollMode::Edge`] is `EPOLLET`.
//! - Tokens are the caller's; [`WAKE_TOKEN`] is reserved for the eventfd and
//!   never reported by [`Epoll::wait_events`].
//! - `EPOLLERR`/`EPOLLHUP` are reported as both readable and writable, so
//!   every waiter retries and sees the error from its own syscall.
//! - `wait` returns early (with no events) when interrupted by a signal
//!   (`EINTR`) or woken through [`EpollWaker::wake_now`].
//! - Errnos from `register`/`modify`/`delete`: `EBADF` (fd closed), `EEXIST`
//!   (`register` of an fd already in the set), `ENOENT` (`modify`/`delete` of an
//!   fd not in the set, e.g. closed and reused), `EPERM` (the fd does not
//!   support epoll, e.g. a regular file), `ENOMEM`/`ENOSPC` (limits).

#![allow(unsafe_code)]

use super::eventfd::EventFd;
use super::syscall::{syscall, syscall_close, syscall_once};
use crate::sys::{Errno, PollEvent, PollMode, PollWake, Poller, Ready, SysResult};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// The token of the wake eventfd inside every epoll set.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// Events fetched per `epoll_wait` call.
const EVENTS_PER_WAIT: usize = 256;

/// The `epoll_event` bits for `interest` in `mode`.
fn mask(interest: Ready, mode: PollMode) -> u32 {
    let mut mask = match mode {
        PollMode::Oneshot => libc::EPOLLONESHOT as u32,
        PollMode::Edge => libc::EPOLLET as u32,
    };
    if interest.readable {
        mask |= libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
    }
    if interest.writable {
        mask |= libc::EPOLLOUT as u32;
    }
    mask
}

/// An eventfd other threads write to wake the thread waiting in [`Epoll::wait`].
pub(crate) struct EpollWaker(EventFd);

impl EpollWaker {
    fn new() -> SysResult<EpollWaker> {
        EventFd::new(true).map(EpollWaker)
    }

    /// Make the eventfd readable, ending a wait in progress (or the next one).
    pub(crate) fn wake_now(&self) {
        self.0.signal();
    }

    /// Reset the counter so the eventfd is no longer readable.
    fn drain(&self) {
        self.0.drain();
    }
}

impl PollWake for EpollWaker {
    fn wake(&self) {
        self.wake_now();
    }
}

/// An epoll set with its wake eventfd.
pub(crate) struct Epoll {
    fd: RawFd,
    waker: Arc<EpollWaker>,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A fresh epoll set (`EPOLL_CLOEXEC`) with the wake eventfd registered.
    pub(crate) fn new() -> SysResult<Epoll> {
        let fd = syscall(|| {
            // SAFETY: epoll_create1 takes no pointers.
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }
        })?;
        let waker = match EpollWaker::new() {
            Ok(waker) => Arc::new(waker),
            Err(e) => {
                let _ = syscall_close(|| {
                    // SAFETY: we own the new epoll fd and close it once.
                    unsafe { libc::close(fd) }
                });
                return Err(e);
            }
        };
        let epoll = Epoll {
            fd,
            waker,
            buf: Vec::with_capacity(EVENTS_PER_WAIT),
        };
        // Level-triggered and not one-shot: readable until drained.
        epoll.ctl(
            libc::EPOLL_CTL_ADD,
            epoll.waker.0.fd(),
            WAKE_TOKEN,
            libc::EPOLLIN as u32,
        )?;
        Ok(epoll)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> SysResult<()> {
        let mut event = libc::epoll_event { events, u64: token };
        syscall(|| {
            // SAFETY: `event` is a live epoll_event for the call's duration
            // (the kernel copies it; DEL ignores it).
            unsafe { libc::epoll_ctl(self.fd, op, fd, &mut event) }
        })
        .map(drop)
    }

    /// Remove `fd` from the set (the driver does so before its own `close`
    /// of a watched fd; a closed fd leaves the set by itself).
    pub(crate) fn delete(&self, fd: RawFd) -> SysResult<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Wait up to `timeout` (`None`: until something happens) and append
    /// `(token, readable, writable)` for each ready registration. Returns
    /// early with nothing on a wake or a signal.
    pub(crate) fn wait_events(
        &mut self,
        events: &mut Vec<PollEvent>,
        timeout: Option<Duration>,
    ) -> SysResult<()> {
        let timeout_ms = match timeout {
            None => -1,
            // Round up so a sub-millisecond timer does not spin at 0 ms.
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        self.buf.clear();
        let capacity = self.buf.capacity() as libc::c_int;
        let got = match syscall_once(|| {
            // SAFETY: `buf` has room for `capacity` events; the kernel
            // writes at most that many and we set the length from its count.
            unsafe { libc::epoll_wait(self.fd, self.buf.as_mut_ptr(), capacity, timeout_ms) }
        }) {
            Ok(n) => n as usize,
            Err(Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialised the first `got` (<= capacity) events.
        unsafe { self.buf.set_len(got) };
        for event in &self.buf {
            let (bits, token) = (event.events, event.u64);
            if token == WAKE_TOKEN {
                self.waker.drain();
                continue;
            }
            let failed = bits & (libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0;
            let readable = failed || bits & (libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32) != 0;
            let writable = failed || bits & libc::EPOLLOUT as u32 != 0;
            let closed = failed || bits & libc::EPOLLRDHUP as u32 != 0;
            events.push(PollEvent {
                token,
                ready: Ready { readable, writable },
                closed,
            });
        }
        Ok(())
    }
}

impl Poller for Epoll {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Ready,
        mode: PollMode,
    ) -> SysResult<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, mask(interest, mode))
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Ready, mode: PollMode) -> SysResult<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, mask(interest, mode))
    }

    fn deregister(&mut self, fd: RawFd) -> SysResult<()> {
        self.delete(fd)
    }

    fn wait(&mut self, events: &mut Vec<PollEvent>, timeout: Option<Duration>) -> SysResult<()> {
        self.wait_events(events, timeout)
    }

    fn waker(&self) -> Arc<dyn PollWake> {
        Arc::clone(&self.waker) as Arc<dyn PollWake>
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        let _ = syscall_close(|| {
            // SAFETY: we own the epoll fd and close it exactly once.
            unsafe { libc::close(self.fd) }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Ready = Ready::READABLE;
    const W: Ready = Ready::WRITABLE;

    fn ev(token: u64, readable: bool, writable: bool) -> PollEvent {
        PollEvent {
            token,
            ready: Ready { readable, writable },
            closed: false,
        }
    }

    fn socketpair() -> (RawFd, RawFd) {
        let mut fds = [-1; 2];
        syscall(|| {
            // SAFETY: `fds` is a live array of two c_ints.
            unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                    fds.as_mut_ptr(),
                )
            }
        })
        .expect("socketpair");
        (fds[0], fds[1])
    }

    fn write_byte(fd: RawFd) {
        let n = syscall(|| {
            // SAFETY: writes one byte from a live static slice.
            unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }
        });
        assert_eq!(n, Ok(1));
    }

    fn read_byte(fd: RawFd) -> SysResult<isize> {
        let mut byte = 0u8;
        syscall(|| {
            // SAFETY: reads one byte into a live u8.
            unsafe { libc::read(fd, std::ptr::from_mut(&mut byte).cast(), 1) }
        })
    }

    fn close(fd: RawFd) {
        let _ = syscall_close(|| {
            // SAFETY: the test owns `fd` and closes it once.
            unsafe { libc::close(fd) }
        });
    }

    fn wait(epoll: &mut Epoll, ms: u64) -> Vec<PollEvent> {
        let mut events = Vec::new();
        epoll
            .wait_events(&mut events, Some(Duration::from_millis(ms)))
            .expect("wait");
        events
    }

    #[test]
    fn socketpair_reports_readable_and_writable() {
        let mut epoll = Epoll::new().expect("epoll");
        let (a, b) = socketpair();
        epoll.register(a, 7, R, PollMode::Oneshot).expect("add");
        assert_eq!(wait(&mut epoll, 0), vec![], "nothing to read yet");
        write_byte(b);
        assert_eq!(wait(&mut epoll, 1_000), vec![ev(7, true, false)]);
        epoll.modify(a, 7, W, PollMode::Oneshot).expect("modify");
        assert_eq!(wait(&mut epoll, 1_000), vec![ev(7, false, true)]);
        epoll.delete(a).expect("delete");
        assert_eq!(epoll.delete(a), Err(Errno::ENOENT));
        close(a);
        close(b);
    }

    #[test]
    fn oneshot_disarms_until_modified() {
        let mut epoll = Epoll::new().expect("epoll");
        let mut fds = [-1; 2];
        syscall(|| {
            // SAFETY: `fds` is a live array of two c_ints.
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }
        })
        .expect("pipe");
        let (rd, wr) = (fds[0], fds[1]);
        epoll.register(rd, 1, R, PollMode::Oneshot).expect("add");
        assert_eq!(
            epoll.register(rd, 1, R, PollMode::Oneshot),
            Err(Errno::EEXIST)
        );
        write_byte(wr);
        assert_eq!(wait(&mut epoll, 1_000), vec![ev(1, true, false)]);
        // Still readable, but the one shot is spent.
        assert_eq!(wait(&mut epoll, 20), vec![]);
        epoll.modify(rd, 1, R, PollMode::Oneshot).expect("re-arm");
        assert_eq!(wait(&mut epoll, 1_000), vec![ev(1, true, false)]);
        assert_eq!(read_byte(rd), Ok(1));
        epoll.modify(rd, 1, R, PollMode::Oneshot).expect("re-arm");
        assert_eq!(wait(&mut epoll, 20), vec![], "drained");
        close(wr);
        // A hang-up counts as both directions and says the fd is closed.
        let hang_up = PollEvent {
            closed: true,
            ..ev(1, true, true)
        };
        assert_eq!(wait(&mut epoll, 1_000), vec![hang_up], "hang-up");
        close(rd);
        assert_eq!(epoll.modify(rd, 1, R, PollMode::Oneshot), Err(Errno::EBADF));
    }

    #[test]
    fn edge_mode_reports_once_per_readiness_change() {
        let mut epoll = Epoll::new().expect("epoll");
        let (a, b) = socketpair();
        epoll.register(a, 3, R, PollMode::Edge).expect("add");
        write_byte(b);
        assert_eq!(wait(&mut epoll, 1_000), vec![ev(3, true, false)]);
        assert_eq!(wait(&mut epoll, 20), vec![], "no new edge while readable");
        assert_eq!(read_byte(a), Ok(1));
        write_byte(b);
        assert_eq!(
            wait(&mut epoll, 1_000),
            vec![ev(3, true, false)],
            "stays armed"
        );
        close(a);
        close(b);
    }

    #[test]
    fn eventfd_wake_ends_a_wait_and_is_drained() {
        let mut epoll = Epoll::new().expect("epoll");
        let waker = Poller::waker(&epoll);
        let thread = crate::sys::real::thread::spawn_named("epoll-wake".into(), move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        })
        .expect("thread");
        let mut events = Vec::new();
        epoll.wait_events(&mut events, None).expect("woken wait");
        assert!(events.is_empty(), "the wake token is never reported");
        thread.join().expect("join");
        assert_eq!(wait(&mut epoll, 10), vec![], "the wake was drained");
    }
}
