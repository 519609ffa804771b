//! The simulated io_uring: a [`CompletionRing`] whose kernel side is the
//! [`SimKernel`], for running the io_uring driver (`crate::driver::uring`)
//! unchanged inside a simulated run.
//!
//! Owns: [`SimRings`] (the ring source of one run) and its rings' queues.
//! It never touches file or socket state itself: an op entry runs the op's
//! own syscall against the simulated kernel ([`RingExec`]), so the
//! simulator's per-class faults and short transfers apply as they do on
//! the pool path. Like the kernel's ring entry, it does not look at what
//! cancelled ops left for the fd (`OpCode::run_entry`): keeping bytes in
//! order around those is the driver's work, and the simulation tests it.
//!
//! What the ring simulates, all drawn from the run's seed:
//! * **Latency and order.** A submitted op completes after its class's
//!   drawn latency; with [`SimOptions::reorder_completions`] the ring picks
//!   which ready entry completes next, so completions arrive out of
//!   submission order. Entries also complete while tasks run (a pop, or a
//!   submit before it hands new entries over, may find new completions),
//!   not only while the worker waits.
//! * **Receive streams** ([`RingWork::RecvStream`]): each time the fd is
//!   readable a chunk is received into the completion queue, reaching the
//!   stream's sink when popped (in queue order, as on the kernel's ring);
//!   a stream stops now and then with the connection open, and is
//!   cancelled when its sink is full.
//! * **A small submission queue** ([`RingOptions::sq_entries`]): pushes
//!   find it full and the driver must submit and retry.
//! * **`EBUSY` from submit**, at [`RingOptions::busy_probability`] and
//!   always while completions sit in the overflow list.
//! * **Completion-queue overflow** ([`RingOptions::cq_entries`]): completions
//!   that do not fit wait in an overflow list and come out of later pops,
//!   never dropped (the kernel's `IORING_FEAT_NODROP`).
//! * **Setup failure** ([`RingOptions::setup_errno`]: `EPERM`, `ENOSYS`,
//!   `ENOMEM`) and **missing opcodes** in the probe
//!   ([`RingOptions::missing_opcodes`]).
//! * **Cancellation races.** An async cancel reaches its target before the
//!   target ran (it completes with `-ECANCELED`) or too late (it completes
//!   with its own result), by the seed. A poll is always cancelled in time;
//!   a close never is (the kernel runs it at submission).
//!
//! Socket entries see `EAGAIN` from the simulated kernel, which never
//! blocks; the driver then submits a poll entry, which completes once the
//! simulated fd is ready. A run where every entry waits on something that
//! can never happen is reported as stuck by [`CompletionRing::wait`].
//!
//! [`SimOptions::reorder_completions`]: super::SimOptions::reorder_completions
//! [`RingOptions::sq_entries`]: super::RingOptions::sq_entries
//! [`RingOptions::busy_probability`]: super::RingOptions::busy_probability
//! [`RingOptions::cq_entries`]: super::RingOptions::cq_entries
//! [`RingOptions::setup_errno`]: super::RingOptions::setup_errno
//! [`RingOptions::missing_opcodes`]: super::RingOptions::missing_opcodes

#![allow(unsafe_code)]

use super::core::SimCore;
use super::kernel::SimKernel;
use super::offload::{class_of, SimOffload};
use crate::sys::ring::{
    opcode, CompletionRing, RingEntry, RingExec, RingSource, RingWork, SqFull, StreamSink,
    CANCEL_USER_DATA,
};
use crate::sys::{Errno, Interest, Kernel, MsgFlags};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Probability that a pop finds the kernel side finished one more entry
/// (completions arriving while tasks run, not only while the worker waits).
const COMPLETE_ON_POP_PROBABILITY: f64 = 0.25;
/// Probability that a submit finds the kernel side finished one more entry
/// before it hands the new ones over.
const COMPLETE_ON_SUBMIT_PROBABILITY: f64 = 0.25;
/// Most further ready entries a wait completes after the first.
const MAX_EXTRA_BURST: u64 = 8;
/// Probability that an async cancel reaches its target before it ran.
const CANCEL_IN_TIME_PROBABILITY: f64 = 0.5;
/// Probability that a receive stream ends after a chunk, connection still
/// open (what the kernel does when its buffers or completion queue run
/// out): the driver must start a new one.
const STREAM_STOP_PROBABILITY: f64 = 0.05;
/// Most bytes a receive stream takes per chunk (a provided buffer's size,
/// as on the kernel's ring).
const STREAM_CHUNK_BYTES: usize = 4096;

/// Ids of simulated ring sources (the kernel's io_uring has id 0).
static NEXT_SOURCE_ID: AtomicU64 = AtomicU64::new(1);

/// The ring source of one simulated run.
pub(crate) struct SimRings {
    id: u64,
    core: Arc<SimCore>,
    kernel: Arc<SimKernel>,
    offload: Arc<SimOffload>,
}

impl SimRings {
    pub(crate) fn new(kernel: &Arc<SimKernel>, offload: &Arc<SimOffload>) -> SimRings {
        SimRings {
            id: NEXT_SOURCE_ID.fetch_add(1, Ordering::Relaxed),
            core: Arc::clone(kernel.core()),
            kernel: Arc::clone(kernel),
            offload: Arc::clone(offload),
        }
    }
}

impl RingSource for SimRings {
    fn id(&self) -> u64 {
        self.id
    }

    fn open(&self, entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        let options = &self.core.options().ring;
        if let Some(errno) = options.setup_errno {
            self.core
                .trace(format!("io_uring_setup -> {errno:?}").as_bytes());
            return Err(io::Error::from_raw_os_error(errno.0));
        }
        self.core.trace(b"io_uring_setup -> ok");
        Ok(Box::new(SimRing {
            core: Arc::clone(&self.core),
            kernel: Arc::clone(&self.kernel),
            offload: Arc::clone(&self.offload),
            sq: VecDeque::new(),
            sq_entries: entries.min(options.sq_entries).max(1) as usize,
            running: Vec::new(),
            cq: VecDeque::new(),
            cq_entries: options.cq_entries.max(1) as usize,
            overflow: VecDeque::new(),
            overflowed: 0,
            next_seq: 0,
            missing_opcodes: options.missing_opcodes.clone(),
            watched: HashMap::new(),
        }))
    }
}

/// What a submitted entry waits for.
enum Task {
    /// Run the op in place once its latency has passed.
    Op {
        exec: *mut dyn RingExec,
        label: &'static str,
        opcode: u8,
    },
    /// Complete once `fd` is ready.
    Poll { fd: RawFd, interest: Interest },
    /// A receive stream: each time `fd` is readable, a chunk for its
    /// sink; completes only when it ends.
    Stream { fd: RawFd },
}

/// What the kernel side posted to the completion queue.
enum Posted {
    /// An entry's completion.
    Done(u64, i32),
    /// A chunk receive stream `user_data` received: it reaches the
    /// stream's sink when popped, in queue order, as a chunk in a provided
    /// buffer reaches it on the kernel's ring.
    Chunk { user_data: u64, bytes: Vec<u8> },
}

/// An entry on the kernel side.
struct Running {
    user_data: u64,
    seq: u64,
    ready_at: Duration,
    task: Task,
    cancelled: bool,
}

/// One simulated ring.
struct SimRing {
    core: Arc<SimCore>,
    kernel: Arc<SimKernel>,
    offload: Arc<SimOffload>,
    sq: VecDeque<RingEntry>,
    sq_entries: usize,
    running: Vec<Running>,
    cq: VecDeque<Posted>,
    cq_entries: usize,
    overflow: VecDeque<Posted>,
    /// Completions put in `overflow` since the last `take_cq_overflows`.
    overflowed: u64,
    next_seq: u64,
    missing_opcodes: Vec<u8>,
    /// Sinks of receive streams, named right after the push, kept until
    /// the stream's completion is popped.
    watched: HashMap<u64, Arc<dyn StreamSink>>,
}

/// The poll mask a ready poll entry completes with.
fn poll_mask(interest: Interest) -> i32 {
    match interest {
        Interest::Readable => libc::POLLIN as i32,
        Interest::Writable => libc::POLLOUT as i32,
    }
}

impl SimRing {
    /// Move every queued entry to the kernel side (the `io_uring_enter`).
    fn hand_over(&mut self) {
        while let Some(entry) = self.sq.pop_front() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let now = self.core.now();
            let (task, ready_at) = match entry.work {
                RingWork::Op { opcode, .. } if self.missing_opcodes.contains(&opcode) => {
                    // What a kernel without the opcode says.
                    self.core.trace(
                        format!(
                            "ring submit {:#x} opcode {opcode} -> EINVAL",
                            entry.user_data
                        )
                        .as_bytes(),
                    );
                    self.deliver(entry.user_data, -Errno::EINVAL.0);
                    continue;
                }
                RingWork::Op { exec, opcode, .. } => {
                    // SAFETY: `push`'s contract keeps the op behind `exec`
                    // alive and unmoved until this entry's completion is
                    // popped; only its name is read here.
                    let label = unsafe { (*exec).label() };
                    let latency = self.core.draw_latency(class_of(label));
                    (
                        Task::Op {
                            exec,
                            label,
                            opcode,
                        },
                        now + latency,
                    )
                }
                RingWork::Poll { fd, interest } => (Task::Poll { fd, interest }, now),
                RingWork::RecvStream { fd } => {
                    if !self.watched.contains_key(&entry.user_data) {
                        // The driver broke the seam's contract: no sink.
                        self.deliver(entry.user_data, -Errno::EINVAL.0);
                        continue;
                    }
                    (Task::Stream { fd }, now)
                }
                RingWork::Cancel { target } => {
                    self.cancel(target);
                    continue;
                }
            };
            self.core
                .trace(format!("ring submit {:#x} #{seq}", entry.user_data).as_bytes());
            self.running.push(Running {
                user_data: entry.user_data,
                seq,
                ready_at,
                task,
                cancelled: false,
            });
        }
    }

    /// An async cancel of `target`: in time (the target completes with
    /// `-ECANCELED` at once) or too late (it runs), by the seed.
    fn cancel(&mut self, target: u64) {
        let found = self
            .running
            .iter_mut()
            .find(|r| r.user_data == target && !r.cancelled);
        let res = match found {
            None => -Errno::ENOENT.0,
            Some(running) => {
                // A poll that has not fired is always still cancellable; a
                // close never is (the kernel runs it at submission, so it
                // always happens); any other op may already be with the
                // device.
                let in_time = match running.task {
                    Task::Poll { .. } | Task::Stream { .. } => true,
                    Task::Op { opcode, .. } if opcode == opcode::CLOSE => false,
                    Task::Op { .. } => self
                        .core
                        .with_rng(|rng| rng.chance(CANCEL_IN_TIME_PROBABILITY)),
                };
                if in_time {
                    running.cancelled = true;
                    running.ready_at = self.core.now();
                    0
                } else {
                    -Errno::EALREADY.0
                }
            }
        };
        self.core
            .trace(format!("ring cancel {target:#x} -> {res}").as_bytes());
        self.core.count(|s| s.ring_cancels += 1);
        self.deliver(CANCEL_USER_DATA, res);
    }

    /// Post a completion: into the CQ, or the overflow list when it is full.
    fn deliver(&mut self, user_data: u64, res: i32) {
        self.post(Posted::Done(user_data, res));
    }

    fn post(&mut self, posted: Posted) {
        if self.cq.len() < self.cq_entries && self.overflow.is_empty() {
            self.cq.push_back(posted);
        } else {
            self.core.count(|s| s.ring_cq_overflows += 1);
            self.overflowed += 1;
            self.overflow.push_back(posted);
        }
    }

    /// Take the oldest posted entry, refilling the CQ from the overflow.
    fn take_posted(&mut self) -> Option<Posted> {
        let posted = self.cq.pop_front();
        while self.cq.len() < self.cq_entries {
            match self.overflow.pop_front() {
                Some(completion) => self.cq.push_back(completion),
                None => break,
            }
        }
        posted
    }

    /// A popped chunk reaches its stream's sink; a sink that is full has
    /// the ring cancel its stream (as the kernel's ring does).
    fn hand_chunk(&mut self, user_data: u64, bytes: &[u8]) {
        let Some(sink) = self.watched.get(&user_data) else {
            return;
        };
        if !sink.received(bytes) {
            if let Some(running) = self
                .running
                .iter_mut()
                .find(|r| r.user_data == user_data && !r.cancelled)
            {
                running.cancelled = true;
                running.ready_at = self.core.now();
            }
        }
    }

    /// Whether entry `i` can complete now; a poll entry asks the kernel.
    fn is_ready(&self, i: usize) -> bool {
        let running = &self.running[i];
        if running.cancelled {
            return true;
        }
        match running.task {
            Task::Op { .. } => running.ready_at <= self.core.now(),
            Task::Poll { fd, interest } => {
                !matches!(self.kernel.wait_ready(fd, interest, 0), Ok(false))
            }
            Task::Stream { fd } => {
                !matches!(self.kernel.wait_ready(fd, Interest::Readable, 0), Ok(false))
            }
        }
    }

    /// One step of the receive stream `running[i]`: a chunk posted for
    /// its sink (the entry stays), or its end (`Some(res)`: the entry's
    /// completion).
    fn stream_step(&mut self, i: usize) -> Option<i32> {
        let Task::Stream { fd } = self.running[i].task else {
            unreachable!("a stream step of another entry");
        };
        let user_data = self.running[i].user_data;
        let mut chunk = [0u8; STREAM_CHUNK_BYTES];
        match self.kernel.recv(fd, &mut chunk, MsgFlags::DONTWAIT) {
            Ok(0) => Some(0),
            Ok(n) => {
                self.core.count(|s| s.ring_stream_chunks += 1);
                let bytes = chunk[..n].to_vec();
                self.post(Posted::Chunk { user_data, bytes });
                let stop = self
                    .core
                    .with_rng(|rng| rng.chance(STREAM_STOP_PROBABILITY));
                stop.then_some(n as i32)
            }
            // The kernel retries these itself; nothing was taken.
            Err(Errno::EAGAIN | Errno::EINTR) => None,
            Err(errno) => Some(-errno.0),
        }
    }

    /// Complete one ready entry (the oldest, or a seed-chosen one when
    /// reordering is on); false when none is ready.
    fn complete_one(&mut self) -> bool {
        let ready: Vec<usize> = (0..self.running.len())
            .filter(|&i| self.is_ready(i))
            .collect();
        let running_seq = |i: usize| self.running[i].seq;
        let Some(chosen) = self.core.pick_completion(&ready, running_seq) else {
            return false;
        };
        if matches!(self.running[chosen].task, Task::Stream { .. })
            && !self.running[chosen].cancelled
        {
            let step = self.stream_step(chosen);
            let running = &self.running[chosen];
            self.core.trace(
                format!(
                    "ring stream {:#x} #{} -> {step:?}",
                    running.user_data, running.seq
                )
                .as_bytes(),
            );
            let Some(res) = step else {
                return true;
            };
            let running = self.running.swap_remove(chosen);
            self.core.count(|s| {
                s.ring_completions += 1;
                s.ring_stream_ends += 1;
            });
            self.deliver(running.user_data, res);
            return true;
        }
        let running = self.running.swap_remove(chosen);
        let res = match running.task {
            _ if running.cancelled => -Errno::ECANCELED.0,
            // SAFETY: `push`'s contract keeps the op behind `exec` alive
            // and unmoved until this completion is popped, and nothing else
            // touches it while the ring runs it.
            Task::Op { exec, .. } => unsafe { (*exec).execute(&*self.kernel) },
            Task::Poll { fd, interest } => match self.kernel.wait_ready(fd, interest, 0) {
                Ok(_) => poll_mask(interest),
                Err(errno) => -errno.0,
            },
            Task::Stream { .. } => unreachable!("a live stream steps above"),
        };
        let label = match running.task {
            Task::Op { label, .. } => label,
            Task::Poll { .. } => "poll",
            Task::Stream { .. } => {
                self.core.count(|s| s.ring_stream_ends += 1);
                "recv stream"
            }
        };
        self.core.trace(
            format!(
                "ring complete {label} {:#x} #{} -> {res}",
                running.user_data, running.seq
            )
            .as_bytes(),
        );
        self.core.count(|s| s.ring_completions += 1);
        self.deliver(running.user_data, res);
        true
    }

    /// A look at an empty completion queue (`pop`, `has_completions`)
    /// may find that the kernel side finished one more entry meanwhile
    /// ([`COMPLETE_ON_POP_PROBABILITY`]).
    fn maybe_complete_on_look(&mut self) {
        if self.cq.is_empty()
            && self.overflow.is_empty()
            && self
                .core
                .with_rng(|rng| rng.chance(COMPLETE_ON_POP_PROBABILITY))
        {
            self.complete_one();
        }
    }

    /// When the next time-driven entry may complete: a seed-chosen one's
    /// time when reordering is on (so entries due earlier race it), else
    /// the earliest. Poll entries wait for other entries, not for time.
    fn next_ready_at(&self) -> Option<Duration> {
        let due: Vec<Duration> = self
            .running
            .iter()
            .filter(|r| r.cancelled || matches!(r.task, Task::Op { .. }))
            .map(|r| r.ready_at)
            .collect();
        if due.is_empty() {
            return None;
        }
        if self.core.options().reorder_completions {
            let i = self.core.with_rng(|rng| rng.below(due.len() as u64)) as usize;
            return Some(due[i]);
        }
        due.into_iter().min()
    }
}

impl CompletionRing for SimRing {
    fn take_cq_overflows(&mut self) -> u64 {
        std::mem::take(&mut self.overflowed)
    }

    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull> {
        if self.sq.len() >= self.sq_entries {
            self.core.count(|s| s.ring_sq_full += 1);
            return Err(SqFull(entry));
        }
        self.sq.push_back(entry);
        Ok(())
    }

    fn queued(&mut self) -> usize {
        self.sq.len()
    }

    fn submit(&mut self) -> io::Result<()> {
        let busy_probability = self.core.options().ring.busy_probability;
        if !self.overflow.is_empty() || self.core.with_rng(|rng| rng.chance(busy_probability)) {
            self.core.trace(b"ring submit -> EBUSY");
            self.core.count(|s| s.ring_busy += 1);
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        // The kernel side may finish an entry while the submit enters (as
        // the kernel's ring runs pending work then): before the new
        // entries, a cancel among them included.
        if self
            .core
            .with_rng(|rng| rng.chance(COMPLETE_ON_SUBMIT_PROBABILITY))
        {
            self.complete_one();
        }
        self.hand_over();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.hand_over();
        if !self.cq.is_empty() || !self.overflow.is_empty() {
            return Ok(());
        }
        if self.complete_one() {
            // The kernel side finishes what is due in bursts, which is what
            // fills (and overflows) the completion queue.
            let burst = self.core.with_rng(|rng| rng.between(0, MAX_EXTRA_BURST));
            for _ in 0..burst {
                if !self.complete_one() {
                    break;
                }
            }
            return Ok(());
        }
        if self.offload.run_one_ready() {
            return Ok(());
        }
        let now = self.core.now();
        let next = [
            self.next_ready_at(),
            self.offload.next_ready_at(),
            timeout.map(|t| now + t),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            let polls = self.running.len();
            let gated = self.offload.describe_gated();
            return Err(io::Error::other(format!(
                "deadlock: every task waits, and no ring entry, pool job or timer can complete \
                 ({polls} poll entries wait for fds no one will make ready; \
                 pool jobs waiting for readiness: [{gated}])"
            )));
        };
        self.core.advance_to(next);
        self.core
            .trace(format!("advance {}ns", next.as_nanos()).as_bytes());
        Ok(())
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        self.maybe_complete_on_look();
        loop {
            match self.take_posted()? {
                Posted::Chunk { user_data, bytes } => self.hand_chunk(user_data, &bytes),
                Posted::Done(user_data, res) => {
                    self.watched.remove(&user_data);
                    return Some((user_data, res));
                }
            }
        }
    }

    fn has_completions(&mut self) -> bool {
        self.maybe_complete_on_look();
        !self.cq.is_empty() || !self.overflow.is_empty()
    }

    fn supports(&self, opcode: u8) -> bool {
        !self.missing_opcodes.contains(&opcode)
    }

    /// Receive streams run on the simulated recv, so a ring whose probe
    /// lacks recv has none.
    fn supports_streams(&mut self) -> bool {
        !self.missing_opcodes.contains(&opcode::RECV)
    }

    fn watch_stream(&mut self, user_data: u64, sink: Arc<dyn StreamSink>) {
        self.watched.insert(user_data, sink);
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        // One thread runs a simulated runtime: news reaches the worker
        // through its own flag, never through a wake from another thread.
        Arc::new(|| {})
    }
}
