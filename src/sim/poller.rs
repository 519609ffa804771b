//! [`SimPoller`]: the seam's [`Poller`] over the simulated kernel's sockets
//! and pipes, with epoll semantics or kqueue semantics (see
//! `crate::sys::poller` for both rule sets), so the readiness driver's
//! logic, kqueue's included, runs and is checked on any host.
//!
//! Owns: the registration table of each poller (one entry per fd under
//! epoll semantics, one per fd and direction under kqueue semantics), the
//! poller faults of [`PollerFaults`], and [`SimPollers`], the view the sim
//! scheduler uses to drive them (flush held events, describe what is still
//! armed when a run is stuck). It reads readiness through
//! `SimKernel::poll_target` and never changes socket, pipe or file state.
//!
//! Rules as the real kernels keep them:
//! * A registration remembers what its fd referred to; once the fd is
//!   closed (or its number reused for something else) the registration is
//!   gone, silently, as when the last reference to a file leaves an epoll
//!   set or a kqueue. Registering a closed fd is `EBADF`; epoll refuses
//!   regular files and directories with `EPERM` (kqueue accepts them:
//!   always ready).
//! * One-shot registrations disarm on report: the whole fd under epoll,
//!   the filter that fired under kqueue. Edge registrations report each
//!   direction when it becomes ready (a simplification: real edge triggers
//!   also fire on new data arriving while already ready).
//! * `wait` never blocks: only the scheduler moves virtual time, so a
//!   timeout changes nothing here, and a wake has nothing to interrupt.
//!
//! Faults (seed-driven, only when their probability is positive):
//! * **Spurious events**: an armed one-shot registration that is not ready
//!   is reported anyway; the op's retry sees `EAGAIN` and must wait again.
//! * **Delayed and reordered delivery**: a ready registration is held back
//!   to a later wait (always delivered before virtual time moves on, see
//!   [`SimPollers::flush_held`]), and each wait's events come in seed order.
//! * **Registration errors** where the real calls fail under pressure:
//!   `ENOMEM`/`ENOSPC` from `epoll_ctl(ADD)`, `ENOMEM` from a `kevent`
//!   `EV_ADD` that creates a filter. Re-arming an existing registration
//!   never fails.

use super::core::SimCore;
use super::kernel::{PollTarget, SimKernel};
use super::options::SimDriver;
use crate::sys::{Errno, PollEvent, PollMode, PollWake, Poller, Ready, SysResult};
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which kernel's rules a [`SimPoller`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Semantics {
    /// One registration per fd with a combined mask.
    Epoll,
    /// One filter per fd and direction.
    Kqueue,
}

impl Semantics {
    /// The semantics of a readiness `driver` (`None` for the pool).
    pub(crate) fn of(driver: SimDriver) -> Option<Semantics> {
        match driver {
            SimDriver::Pool => None,
            SimDriver::EpollSemantics => Some(Semantics::Epoll),
            SimDriver::KqueueSemantics => Some(Semantics::Kqueue),
        }
    }

    fn driver(self) -> SimDriver {
        match self {
            Semantics::Epoll => SimDriver::EpollSemantics,
            Semantics::Kqueue => SimDriver::KqueueSemantics,
        }
    }

    fn ctl_name(self) -> &'static str {
        match self {
            Semantics::Epoll => "epoll_ctl",
            Semantics::Kqueue => "kevent",
        }
    }
}

/// What one table entry watches: the whole fd (epoll) or one direction
/// (kqueue's `EVFILT_READ` / `EVFILT_WRITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Filter {
    WholeFd,
    Read,
    Write,
}

impl Filter {
    fn direction(self) -> Ready {
        match self {
            Filter::WholeFd => Ready::BOTH,
            Filter::Read => Ready::READABLE,
            Filter::Write => Ready::WRITABLE,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    identity: (u8, u64),
    token: u64,
    interest: Ready,
    mode: PollMode,
    armed: bool,
    /// Edge mode: the readiness last reported (re-reported once it drops).
    reported: Ready,
}

/// One poller's registrations.
#[derive(Default)]
struct PollerState {
    watches: BTreeMap<(RawFd, Filter), Watch>,
    /// The last wait held back at least one ready event.
    held_back: bool,
    /// The next wait delivers everything ready, with no faults.
    flush_next: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single-threaded use; a panic mid-update is already a failed run.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every poller a simulated run opened, for its scheduler.
#[derive(Default)]
pub(crate) struct SimPollers {
    states: Mutex<Vec<Arc<Mutex<PollerState>>>>,
}

impl SimPollers {
    /// If a poller held ready events back, make its next wait deliver
    /// everything; true when one did (the caller then polls again).
    pub(crate) fn flush_held(&self) -> bool {
        let mut any = false;
        for state in lock(&self.states).iter() {
            let mut state = lock(state);
            if state.held_back {
                state.flush_next = true;
                any = true;
            }
        }
        any
    }

    /// The registrations still armed, for a stuck run's report.
    pub(crate) fn describe_armed(&self) -> String {
        let mut armed = Vec::new();
        for state in lock(&self.states).iter() {
            for ((fd, filter), watch) in &lock(state).watches {
                if watch.armed {
                    armed.push(format!("fd {fd} {filter:?} {:?}", watch.interest));
                }
            }
        }
        match armed.is_empty() {
            true => "nothing is armed".to_string(),
            false => format!("armed and never ready: {}", armed.join(", ")),
        }
    }
}

/// A simulated poller; see the module docs.
pub(crate) struct SimPoller {
    kernel: Arc<SimKernel>,
    semantics: Semantics,
    state: Arc<Mutex<PollerState>>,
}

impl SimPoller {
    /// A poller over `kernel` keeping `semantics`, listed in `pollers`.
    pub(crate) fn new(
        kernel: Arc<SimKernel>,
        semantics: Semantics,
        pollers: &SimPollers,
    ) -> SimPoller {
        let state = Arc::new(Mutex::new(PollerState::default()));
        lock(&pollers.states).push(Arc::clone(&state));
        SimPoller {
            kernel,
            semantics,
            state,
        }
    }

    fn core(&self) -> &SimCore {
        self.kernel.core()
    }

    fn trace(&self, what: &str, fd: RawFd, interest: Ready, result: &SysResult<()>) {
        let line = format!(
            "{} {what} {fd} {interest:?} -> {result:?}",
            self.semantics.ctl_name()
        );
        self.core().trace(line.as_bytes());
    }

    /// The fd's target, dropping registrations left from what it named
    /// before a close.
    fn target(&self, state: &mut PollerState, fd: RawFd) -> SysResult<PollTarget> {
        let target = self.kernel.poll_target(fd);
        state.watches.retain(|&(watched, _), watch| {
            watched != fd || matches!(target, Ok(t) if t.identity == watch.identity)
        });
        target
    }

    /// A seed-drawn registration failure, if any.
    fn draw_register_fault(&self) -> Option<Errno> {
        let p = self.core().options().poller_faults.register_probability;
        if p <= 0.0 {
            return None;
        }
        let errnos = self.semantics.driver().register_errnos();
        let errno = self.core().with_rng(|rng| {
            if rng.chance(p) {
                rng.pick(errnos).copied()
            } else {
                None
            }
        })?;
        self.core().count(|s| s.poller_register_failures += 1);
        Some(errno)
    }

    fn epoll_ctl(
        &self,
        add: bool,
        fd: RawFd,
        token: u64,
        interest: Ready,
        mode: PollMode,
    ) -> SysResult<()> {
        let mut state = lock(&self.state);
        let target = self.target(&mut state, fd)?;
        if !target.stream {
            return Err(Errno::EPERM);
        }
        let key = (fd, Filter::WholeFd);
        let exists = state.watches.contains_key(&key);
        match (add, exists) {
            (true, true) => return Err(Errno::EEXIST),
            (false, false) => return Err(Errno::ENOENT),
            (true, false) => {
                if let Some(errno) = self.draw_register_fault() {
                    return Err(errno);
                }
            }
            (false, true) => {}
        }
        state
            .watches
            .insert(key, watch(target, token, interest, mode));
        Ok(())
    }

    fn kevent_add(&self, fd: RawFd, token: u64, interest: Ready, mode: PollMode) -> SysResult<()> {
        let mut state = lock(&self.state);
        let target = self.target(&mut state, fd)?;
        for filter in [Filter::Read, Filter::Write] {
            let key = (fd, filter);
            let wanted = !interest.and(filter.direction()).is_empty();
            if !wanted {
                state.watches.remove(&key);
                continue;
            }
            if !state.watches.contains_key(&key) {
                if let Some(errno) = self.draw_register_fault() {
                    return Err(errno);
                }
            }
            let filter_interest = filter.direction();
            state
                .watches
                .insert(key, watch(target, token, filter_interest, mode));
        }
        Ok(())
    }

    /// Report (or, by the faults, hold back or invent) the event of one
    /// armed registration; `None` when nothing is reported.
    fn check(
        &self,
        watch: &mut Watch,
        ready_now: Ready,
        flush: bool,
        held: &mut bool,
    ) -> Option<Ready> {
        let faults = &self.core().options().poller_faults;
        let ready = ready_now.and(watch.interest);
        let report = match watch.mode {
            PollMode::Oneshot => ready,
            PollMode::Edge => Ready {
                readable: ready.readable && !watch.reported.readable,
                writable: ready.writable && !watch.reported.writable,
            },
        };
        watch.reported = ready;
        if !report.is_empty() {
            let p = faults.delay_probability;
            if !flush && p > 0.0 && self.core().with_rng(|rng| rng.chance(p)) {
                self.core().count(|s| s.delayed_readiness += 1);
                *held = true;
                return None;
            }
            return Some(report);
        }
        let p = faults.spurious_probability;
        let oneshot = watch.mode == PollMode::Oneshot;
        if !flush && oneshot && p > 0.0 && self.core().with_rng(|rng| rng.chance(p)) {
            self.core().count(|s| s.spurious_readiness += 1);
            return Some(watch.interest);
        }
        None
    }

    /// Deliver `events` in a seed-chosen order when delays are on.
    fn reorder(&self, events: &mut [PollEvent]) {
        if self.core().options().poller_faults.delay_probability <= 0.0 {
            return;
        }
        for i in (1..events.len()).rev() {
            let j = self.core().with_rng(|rng| rng.below(i as u64 + 1)) as usize;
            events.swap(i, j);
        }
    }
}

fn watch(target: PollTarget, token: u64, interest: Ready, mode: PollMode) -> Watch {
    Watch {
        identity: target.identity,
        token,
        interest,
        mode,
        armed: true,
        reported: Ready::NONE,
    }
}

impl Poller for SimPoller {
    fn register(
        &mut self,
        fd: RawFd,
        token: u64,
        interest: Ready,
        mode: PollMode,
    ) -> SysResult<()> {
        let result = match self.semantics {
            Semantics::Epoll => self.epoll_ctl(true, fd, token, interest, mode),
            Semantics::Kqueue => self.kevent_add(fd, token, interest, mode),
        };
        self.trace("add", fd, interest, &result);
        result
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Ready, mode: PollMode) -> SysResult<()> {
        let result = match self.semantics {
            Semantics::Epoll => self.epoll_ctl(false, fd, token, interest, mode),
            Semantics::Kqueue => self.kevent_add(fd, token, interest, mode),
        };
        self.trace("mod", fd, interest, &result);
        result
    }

    fn deregister(&mut self, fd: RawFd) -> SysResult<()> {
        let mut state = lock(&self.state);
        let result = self.target(&mut state, fd).and_then(|_| {
            let removed = [Filter::WholeFd, Filter::Read, Filter::Write]
                .into_iter()
                .filter(|&filter| state.watches.remove(&(fd, filter)).is_some())
                .count();
            match removed {
                0 => Err(Errno::ENOENT),
                _ => Ok(()),
            }
        });
        drop(state);
        self.trace("del", fd, Ready::NONE, &result);
        result
    }

    fn wait(&mut self, events: &mut Vec<PollEvent>, _timeout: Option<Duration>) -> SysResult<()> {
        let mut state = lock(&self.state);
        let flush = std::mem::take(&mut state.flush_next);
        let mut held = false;
        let keys: Vec<(RawFd, Filter)> = state.watches.keys().copied().collect();
        let first = events.len();
        for key in keys {
            let target = match self.kernel.poll_target(key.0) {
                Ok(target) => target,
                // Closed: the registration went with the fd.
                Err(_) => {
                    state.watches.remove(&key);
                    continue;
                }
            };
            let Some(watch) = state.watches.get_mut(&key) else {
                continue;
            };
            if watch.identity != target.identity {
                state.watches.remove(&key);
                continue;
            }
            if !watch.armed {
                continue;
            }
            let Some(ready) = self.check(watch, target.ready, flush, &mut held) else {
                continue;
            };
            events.push(PollEvent {
                token: watch.token,
                ready,
            });
            if watch.mode == PollMode::Oneshot {
                match self.semantics {
                    Semantics::Epoll => watch.armed = false,
                    Semantics::Kqueue => {
                        state.watches.remove(&key);
                    }
                }
            }
        }
        state.held_back = held;
        drop(state);
        self.reorder(&mut events[first..]);
        let line = format!(
            "{}_wait -> {:?}",
            self.semantics.ctl_name(),
            &events[first..]
        );
        self.core().trace(line.as_bytes());
        Ok(())
    }

    fn waker(&self) -> Arc<dyn PollWake> {
        Arc::new(SimWake)
    }
}

/// The sim's cross-thread wake: a simulated run has one thread, which
/// never blocks in a wait, so there is nothing to interrupt.
struct SimWake;

impl PollWake for SimWake {
    fn wake(&self) {}
}
