//! The readiness part of the seam: a [`Poller`] watches fds for
//! readability and writability and reports which became ready.
//!
//! # Contract
//!
//! One poller belongs to one thread (it is not `Sync`); only its
//! [`PollWake`] crosses threads. Two kernel mechanisms implement it, with
//! different rules that the trait lets the caller treat alike:
//!
//! * **epoll semantics** (`sys::real::epoll`, the sim's epoll mode): one
//!   registration per fd carrying the combined [`Ready`] mask. `register`
//!   is `EPOLL_CTL_ADD` and fails with `EEXIST` when the fd is already
//!   registered; `modify` is `EPOLL_CTL_MOD` and fails with `ENOENT` when it
//!   is not (the fd was closed, which removes it, and its number reused);
//!   `deregister` is `EPOLL_CTL_DEL`. In [`PollMode::Oneshot`] an event
//!   disarms the *whole* registration until the next `modify`.
//! * **kqueue semantics** (`sys::real::kqueue` on macOS/BSD, the sim's
//!   kqueue mode): one filter per fd and direction (`EVFILT_READ`,
//!   `EVFILT_WRITE`). `register` and `modify` both mean `EV_ADD` for each
//!   wanted direction (creating or re-arming its filter, never `EEXIST` or
//!   `ENOENT`) and `EV_DELETE` for each unwanted one (a missing filter is
//!   not an error). `deregister` deletes both and fails with `ENOENT` only
//!   when neither existed. In [`PollMode::Oneshot`] (`EV_ONESHOT`) an event
//!   deletes only the filter that fired; the other direction stays armed.
//!
//! A caller that re-arms with `modify` after each event for whatever it
//! still waits on, and answers `ENOENT` from `modify` with `register` (and
//! `EEXIST` from `register` with `modify`), is correct under both.
//!
//! **Edge mode** ([`PollMode::Edge`]: `EPOLLET`; `EV_CLEAR` on each
//! filter) stays armed after reporting. What a caller may rely on, under
//! both semantics: `register`/`modify` report a direction that is ready at
//! that moment; afterwards, a direction is reported again when it changes
//! from not ready to ready (new data after the queue was drained, room
//! after the buffer was full, a connection queued, a hang-up or error).
//! So after a syscall says `EAGAIN`, or after a TCP recv (send) moved less
//! than asked, which means the socket's queue was empty (its send buffer
//! full) at that moment, the next change is reported and nothing is
//! missed. A caller must not rely on more: Linux also reports a direction
//! that stays ready when new data arrives or when the other direction
//! wakes the socket, and kqueue on each new arrival, but the simulated
//! pollers do not. Events may coalesce: several changes between two waits
//! give one event.
//!
//! Common to both:
//! * **Tokens** are the caller's and come back unchanged in [`PollEvent`]s.
//! * **Close** removes an fd's registrations without any call: a later
//!   event for it is never reported. Registering a closed fd is `EBADF`.
//! * **Errors and hang-ups** are reported as both readable and writable,
//!   so each waiter retries and sees the error from its own syscall.
//! * **Spurious events** are allowed: an event says "try again", never "the
//!   next call will succeed". Callers must treat `EAGAIN` after an event as
//!   "wait again".
//! * **`wait`** appends the events ready within `timeout` (`None`: until one
//!   is ready or the poller is woken) and may return early with none: on a
//!   signal, or after [`PollWake::wake`]. A wake before the wait ends the
//!   next wait at once.
//! * **Errnos** from `register`/`modify`: `EBADF` (closed fd), `EEXIST`/
//!   `ENOENT` as above, `EPERM` (epoll: the fd cannot be polled, e.g. a
//!   regular file), `ENOMEM` and, for epoll, `ENOSPC` (the per-user watch
//!   limit). Callers surface these as the failure of the op that wanted to
//!   wait; the poller itself stays usable.

use super::SysResult;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// Which directions a registration watches (or an event reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ready {
    /// Data to read, a connection to accept, end of stream, or an error.
    pub readable: bool,
    /// Room to write, a finished connect, or an error.
    pub writable: bool,
}

impl Ready {
    /// Nothing.
    pub const NONE: Ready = Ready {
        readable: false,
        writable: false,
    };
    /// Readable only.
    pub const READABLE: Ready = Ready {
        readable: true,
        writable: false,
    };
    /// Writable only.
    pub const WRITABLE: Ready = Ready {
        readable: false,
        writable: true,
    };
    /// Both directions.
    pub const BOTH: Ready = Ready {
        readable: true,
        writable: true,
    };

    /// True when neither direction is set.
    ///
    /// ```
    /// use iokernel::sys::Ready;
    /// assert!(Ready::NONE.is_empty());
    /// assert!(!Ready::READABLE.is_empty());
    /// ```
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }

    /// The directions set in both `self` and `other`.
    ///
    /// ```
    /// use iokernel::sys::Ready;
    /// assert_eq!(Ready::BOTH.and(Ready::WRITABLE), Ready::WRITABLE);
    /// ```
    pub fn and(self, other: Ready) -> Ready {
        Ready {
            readable: self.readable && other.readable,
            writable: self.writable && other.writable,
        }
    }
}

/// How a registration behaves after it reports an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PollMode {
    /// Report once, then stay disarmed until `modify` (`EPOLLONESHOT`;
    /// `EV_ONESHOT`, which deletes the filter that fired).
    #[default]
    Oneshot,
    /// Stay armed; report again only after the state changes
    /// (`EPOLLET`; `EV_CLEAR`).
    Edge,
}

/// One ready registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollEvent {
    /// The token the fd was registered with.
    pub token: u64,
    /// What is ready (possibly more than was asked for: errors count as both).
    pub ready: Ready,
    /// The read side reached end of stream or the fd failed (`EPOLLRDHUP`,
    /// `EPOLLHUP`, `EPOLLERR`; `EV_EOF`, `EV_ERROR`): a state that stays,
    /// so no later event will report it again. A reader that has drained
    /// the bytes must still try once more to see it.
    pub closed: bool,
}

/// Ends a [`Poller::wait`] in progress (or the next one) from any thread.
pub trait PollWake: Send + Sync {
    /// Wake the poller's thread.
    fn wake(&self);
}

/// Readiness registration and waiting, with epoll or kqueue semantics;
/// see the module docs for the contract.
pub trait Poller: 'static {
    /// Start watching `fd` for `interest` under `token`.
    fn register(&mut self, fd: RawFd, token: u64, interest: Ready, mode: PollMode)
        -> SysResult<()>;
    /// Change (and re-arm) what a watched `fd` waits for.
    fn modify(&mut self, fd: RawFd, token: u64, interest: Ready, mode: PollMode) -> SysResult<()>;
    /// Stop watching `fd`.
    fn deregister(&mut self, fd: RawFd) -> SysResult<()>;
    /// Append ready registrations to `events`, waiting up to `timeout`.
    fn wait(&mut self, events: &mut Vec<PollEvent>, timeout: Option<Duration>) -> SysResult<()>;
    /// A handle other threads use to end a wait.
    fn waker(&self) -> Arc<dyn PollWake>;
}
