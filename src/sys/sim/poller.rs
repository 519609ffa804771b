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
//!   the filter that fired under kqueue. Edge registrations (`EPOLLET`,
//!   `EV_CLEAR`) report a direction when it is ready and became ready
//!   since the last report (`PollTarget::edges`: the kernel counts every
//!   not-ready-to-ready change, after every syscall), and once right after
//!   `register`/`modify` when ready then. An `EAGAIN` or short transfer
//!   that the fault model injects counts as a change, as the data (or
//!   room) arriving a moment later would on a real kernel. This is stingier than Linux,
//!   which also reports a still-ready direction whenever anything wakes
//!   the socket: a driver that works here relies only on the edges every
//!   kernel gives (after `EAGAIN`, or after a short TCP transfer that
//!   drained the socket, the next change is reported).
//! * `wait` never blocks: only the scheduler moves virtual time, so a
//!   timeout changes nothing here, and a wake has nothing to interrupt.
//!
//! Faults (seed-driven, only when their probability is positive):
//! * **Spurious events**: an armed registration (one-shot or edge) with
//!   nothing new to report is reported anyway; the op's retry sees
//!   `EAGAIN` and must wait again.
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
            SimDriver::Pool | SimDriver::Ring | SimDriver::Auto => None,
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
    /// Edge mode: the target's edge counts (read, write) as of the last
    /// look; `None` right after `register`/`modify`, which reports what
    /// is ready at once, as `EPOLL_CTL_ADD`/`MOD` and `EV_ADD` do.
    seen: Option<[u64; 2]>,
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
        target: &PollTarget,
        flush: bool,
        held: &mut bool,
    ) -> Option<Ready> {
        let faults = &self.core().options().poller_faults;
        let ready = target.ready.and(watch.interest);
        let report = match watch.mode {
            PollMode::Oneshot => ready,
            PollMode::Edge => edge_report(watch.seen, target, ready),
        };
        if !report.is_empty() {
            let p = faults.delay_probability;
            if !flush && p > 0.0 && self.core().with_rng(|rng| rng.chance(p)) {
                // Held back: `seen` stays, so a later wait reports it.
                self.core().count(|s| s.delayed_readiness += 1);
                *held = true;
                return None;
            }
            watch.seen = Some(target.edges);
            return Some(report);
        }
        watch.seen = Some(target.edges);
        let p = faults.spurious_probability;
        if !flush && p > 0.0 && self.core().with_rng(|rng| rng.chance(p)) {
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

/// What an edge registration reports of `ready` (the ready part of its
/// interest): a direction whose edge count moved since `seen` (every
/// direction right after registering). Stingier than a real `EPOLLET`,
/// which also reports a still-ready direction when another wakes the
/// socket, so code that works here does not lean on such extra events.
fn edge_report(seen: Option<[u64; 2]>, target: &PollTarget, ready: Ready) -> Ready {
    let Some(seen) = seen else {
        return ready;
    };
    Ready {
        readable: ready.readable && target.edges[0] != seen[0],
        writable: ready.writable && target.edges[1] != seen[1],
    }
}

fn watch(target: PollTarget, token: u64, interest: Ready, mode: PollMode) -> Watch {
    Watch {
        identity: target.identity,
        token,
        interest,
        mode,
        armed: true,
        seen: None,
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
            let Some(ready) = self.check(watch, &target, flush, &mut held) else {
                continue;
            };
            events.push(PollEvent {
                token: watch.token,
                ready,
                closed: target.closed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::sim::options::{ClassFaults, OpClass};
    use crate::sys::sim::{SimCore, SimOptions};
    use crate::sys::{Kernel, MsgFlags, OpenFlags, SockType};
    use std::net::SocketAddr;

    const R: Ready = Ready::READABLE;
    const ONESHOT: PollMode = PollMode::Oneshot;

    fn kernel_with(options: SimOptions) -> Arc<SimKernel> {
        Arc::new(SimKernel::new(Arc::new(SimCore::new(options))))
    }

    fn poller(kernel: &Arc<SimKernel>, semantics: Semantics) -> (SimPoller, SimPollers) {
        let pollers = SimPollers::default();
        (
            SimPoller::new(Arc::clone(kernel), semantics, &pollers),
            pollers,
        )
    }

    fn wait(poller: &mut SimPoller) -> Vec<(u64, Ready)> {
        let mut events = Vec::new();
        poller
            .wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        events.into_iter().map(|e| (e.token, e.ready)).collect()
    }

    /// A connected loopback pair: (client, accepted server side).
    fn connection(kernel: &SimKernel) -> (RawFd, RawFd) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let listener = kernel.socket(&any, SockType::Stream).expect("socket");
        kernel.bind(listener, &any).expect("bind");
        kernel.listen(listener, 8).expect("listen");
        let addr = kernel.local_addr(listener).expect("local_addr");
        let client = kernel.socket(&any, SockType::Stream).expect("socket");
        kernel.connect(client, &addr).expect("connect");
        let (server, _) = kernel.accept(listener, true).expect("accept");
        (client, server)
    }

    #[test]
    fn epoll_semantics_one_registration_per_fd_until_closed() {
        let kernel = kernel_with(SimOptions::new(1));
        let (mut epoll, _) = poller(&kernel, Semantics::Epoll);
        let (rd, wr) = kernel.pipe().expect("pipe");
        epoll.register(rd, 1, R, ONESHOT).expect("add");
        assert_eq!(epoll.register(rd, 1, R, ONESHOT), Err(Errno::EEXIST));
        assert_eq!(epoll.modify(wr, 2, R, ONESHOT), Err(Errno::ENOENT));
        assert_eq!(wait(&mut epoll), vec![], "nothing to read yet");
        kernel.write(wr, b"x").expect("write");
        assert_eq!(wait(&mut epoll), vec![(1, R)]);
        assert_eq!(wait(&mut epoll), vec![], "one shot: disarmed");
        epoll.modify(rd, 1, R, ONESHOT).expect("re-arm");
        assert_eq!(wait(&mut epoll), vec![(1, R)]);
        let file = kernel
            .open(c"/f", OpenFlags::RDWR | OpenFlags::CREAT, 0o644)
            .expect("open");
        assert_eq!(epoll.register(file, 3, R, ONESHOT), Err(Errno::EPERM));
        epoll.modify(rd, 1, R, ONESHOT).expect("re-arm");
        kernel.close(rd).expect("close");
        assert_eq!(wait(&mut epoll), vec![], "a closed fd never reports");
        assert_eq!(epoll.modify(rd, 1, R, ONESHOT), Err(Errno::EBADF));
        // The number comes back for a new pipe: the old registration went
        // with the close, so MOD is ENOENT and ADD works.
        let (rd2, wr2) = kernel.pipe().expect("pipe");
        assert_eq!(rd2, rd, "lowest free fd reused");
        assert_eq!(epoll.modify(rd2, 1, R, ONESHOT), Err(Errno::ENOENT));
        epoll
            .register(rd2, 1, R, ONESHOT)
            .expect("add after ENOENT");
        kernel.write(wr2, b"y").expect("write");
        assert_eq!(wait(&mut epoll), vec![(1, R)]);
        epoll.deregister(rd2).expect("del");
        assert_eq!(epoll.deregister(rd2), Err(Errno::ENOENT));
    }

    #[test]
    fn oneshot_disarms_the_fd_under_epoll_and_only_the_filter_under_kqueue() {
        for semantics in [Semantics::Epoll, Semantics::Kqueue] {
            let kernel = kernel_with(SimOptions::new(2));
            let (mut poller, _) = poller(&kernel, semantics);
            let (client, server) = connection(&kernel);
            poller
                .register(client, 5, Ready::BOTH, ONESHOT)
                .expect("register");
            // Room to send, nothing to receive: only the write side fires.
            assert_eq!(
                wait(&mut poller),
                vec![(5, Ready::WRITABLE)],
                "{semantics:?}"
            );
            kernel.send(server, b"ping", MsgFlags::NONE).expect("send");
            let after = wait(&mut poller);
            match semantics {
                // The whole registration was spent by the write event.
                Semantics::Epoll => assert_eq!(after, vec![]),
                // The read filter is still armed and now fires.
                Semantics::Kqueue => assert_eq!(after, vec![(5, R)]),
            }
            // Both filters fired (kqueue) or the fd is disarmed (epoll);
            // re-arming works either way, with no ENOENT or EEXIST.
            poller.modify(client, 5, R, ONESHOT).expect("re-arm");
            assert_eq!(wait(&mut poller), vec![(5, R)], "{semantics:?}");
        }
    }

    #[test]
    fn kqueue_semantics_filters_per_direction_and_close_removes_them() {
        let kernel = kernel_with(SimOptions::new(3));
        let (mut kqueue, _) = poller(&kernel, Semantics::Kqueue);
        let (client, server) = connection(&kernel);
        // EV_ADD creates or re-arms: register twice is fine, modify of an
        // fd never added is fine.
        kqueue.register(client, 1, R, ONESHOT).expect("add");
        kqueue.register(client, 1, R, ONESHOT).expect("add again");
        kqueue
            .modify(server, 2, Ready::WRITABLE, ONESHOT)
            .expect("modify creates");
        assert_eq!(wait(&mut kqueue), vec![(2, Ready::WRITABLE)]);
        // Deleting a filter that is not there is not an error for modify;
        // deregister of an fd with no filters left is ENOENT.
        kqueue
            .modify(server, 2, Ready::NONE, ONESHOT)
            .expect("delete");
        assert_eq!(kqueue.deregister(server), Err(Errno::ENOENT));
        // Regular files are accepted (always ready).
        let file = kernel
            .open(c"/f", OpenFlags::RDWR | OpenFlags::CREAT, 0o644)
            .expect("open");
        kqueue
            .register(file, 3, R, ONESHOT)
            .expect("files are fine");
        assert_eq!(wait(&mut kqueue), vec![(3, R)]);
        // Closing the client removes its read filter.
        kernel.close(client).expect("close");
        kernel.send(server, b"x", MsgFlags::NONE).ok();
        assert_eq!(wait(&mut kqueue), vec![]);
        assert_eq!(kqueue.register(client, 1, R, ONESHOT), Err(Errno::EBADF));
    }

    #[test]
    fn edge_mode_reports_each_readiness_once() {
        for semantics in [Semantics::Epoll, Semantics::Kqueue] {
            let kernel = kernel_with(SimOptions::new(4));
            let (mut poller, _) = poller(&kernel, semantics);
            let (rd, wr) = kernel.pipe().expect("pipe");
            poller.register(rd, 9, R, PollMode::Edge).expect("add");
            kernel.write(wr, b"x").expect("write");
            assert_eq!(wait(&mut poller), vec![(9, R)], "{semantics:?}");
            assert_eq!(wait(&mut poller), vec![], "still readable, no new edge");
            let mut byte = [0u8; 1];
            kernel.read(rd, &mut byte).expect("drain");
            assert_eq!(wait(&mut poller), vec![]);
            kernel.write(wr, b"y").expect("write");
            assert_eq!(wait(&mut poller), vec![(9, R)], "a new edge");
        }
    }

    #[test]
    fn edge_mode_reports_a_drain_and_refill_between_two_waits() {
        for semantics in [Semantics::Epoll, Semantics::Kqueue] {
            let kernel = kernel_with(SimOptions::new(8));
            let (mut poller, _) = poller(&kernel, semantics);
            let (client, server) = connection(&kernel);
            poller.register(server, 4, R, PollMode::Edge).expect("add");
            kernel.send(client, b"one", MsgFlags::NONE).expect("send");
            assert_eq!(wait(&mut poller), vec![(4, R)], "{semantics:?}");
            // Drained and refilled with no wait in between: still readable
            // at the next wait, and the refill is a new edge.
            let mut buf = [0u8; 8];
            assert_eq!(kernel.recv(server, &mut buf, MsgFlags::NONE), Ok(3));
            kernel.send(client, b"two", MsgFlags::NONE).expect("send");
            assert_eq!(wait(&mut poller), vec![(4, R)], "{semantics:?}: refill");
            // More data while still readable is no new edge here (Linux
            // would report it; callers must not rely on that).
            kernel.send(client, b"three", MsgFlags::NONE).expect("send");
            assert_eq!(wait(&mut poller), vec![], "{semantics:?}: no new edge");
        }
    }

    #[test]
    fn an_injected_eagain_stands_for_data_arriving_later() {
        let mut options = SimOptions::new(9);
        options.faults[OpClass::SocketRead.index()] = ClassFaults {
            probability: 1.0,
            errnos: vec![Errno::EAGAIN],
        };
        let kernel = kernel_with(options);
        let (mut poller, _) = poller(&kernel, Semantics::Epoll);
        let (client, server) = connection(&kernel);
        poller.register(server, 6, R, PollMode::Edge).expect("add");
        kernel.send(client, b"x", MsgFlags::NONE).expect("send");
        assert_eq!(wait(&mut poller), vec![(6, R)]);
        let mut buf = [0u8; 8];
        // The data is queued, but the fault says EAGAIN: the next wait must
        // report the fd again, or an edge-triggered caller would wait
        // forever for bytes already there.
        assert_eq!(
            kernel.recv(server, &mut buf, MsgFlags::NONE),
            Err(Errno::EAGAIN)
        );
        assert_eq!(wait(&mut poller), vec![(6, R)]);
    }

    #[test]
    fn spurious_and_delayed_events_and_registration_errors_are_injected() {
        let mut options = SimOptions::new(5);
        options.poller_faults.spurious_probability = 1.0;
        let kernel = kernel_with(options);
        let (mut epoll, _) = poller(&kernel, Semantics::Epoll);
        let (rd, _wr) = kernel.pipe().expect("pipe");
        epoll.register(rd, 1, R, ONESHOT).expect("add");
        assert_eq!(wait(&mut epoll), vec![(1, R)], "reported though empty");
        assert_eq!(kernel.core().stats().spurious_readiness, 1);

        let mut options = SimOptions::new(6);
        options.poller_faults.delay_probability = 1.0;
        let kernel = kernel_with(options);
        let (mut kqueue, pollers) = poller(&kernel, Semantics::Kqueue);
        let (rd, wr) = kernel.pipe().expect("pipe");
        kqueue.register(rd, 1, R, ONESHOT).expect("add");
        kernel.write(wr, b"x").expect("write");
        assert_eq!(wait(&mut kqueue), vec![], "held back");
        assert!(pollers.flush_held(), "the scheduler is told");
        assert_eq!(wait(&mut kqueue), vec![(1, R)], "delivered on the flush");
        assert!(!pollers.flush_held());
        assert_eq!(kernel.core().stats().delayed_readiness, 1);

        for (semantics, driver) in [
            (Semantics::Epoll, SimDriver::EpollSemantics),
            (Semantics::Kqueue, SimDriver::KqueueSemantics),
        ] {
            let mut options = SimOptions::new(7);
            options.poller_faults.register_probability = 1.0;
            let kernel = kernel_with(options);
            let (mut poller, pollers) = poller(&kernel, semantics);
            let (rd, _wr) = kernel.pipe().expect("pipe");
            let errno = poller
                .register(rd, 1, R, ONESHOT)
                .expect_err("registration fails");
            assert!(driver.register_errnos().contains(&errno), "{errno:?}");
            assert_eq!(pollers.describe_armed(), "nothing is armed");
        }
    }
}
