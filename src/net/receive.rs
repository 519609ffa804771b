//! The receive side of a [`TcpStream`](super::TcpStream): on io_uring, a
//! *receive stream* receives ahead of the reads.
//!
//! Owns: [`Receiver`] (a connection's queue of received bytes, what ended
//! its last receive stream, the tasks waiting to read) and [`Read`], the
//! future of `TcpStream::read`. May not touch: a ring (it asks the current
//! driver to start a stream, and `driver::uring::stop_stream` to stop one).
//!
//! On a thread whose driver is io_uring, the first read that finds nothing
//! queued starts a receive stream on the thread's ring (one multishot recv
//! entry into the ring's provided buffers, `sys::ring::RingWork::RecvStream`):
//! from then on the kernel receives every chunk as it arrives, with no
//! entry per read, and the ring copies it here when it reaps it. A read
//! takes from the queue at once when there is something in it, else waits
//! for the next chunk. A stream ends when the peer closes (the reads then
//! see end of stream after the queued bytes), on an error (reported once,
//! after the bytes), when the queue holds [`QUEUE_LIMIT`] bytes nobody
//! reads (the socket's own buffer takes over until the reads catch up),
//! when the ring runs out of buffers or its thread's loop leaves: the next
//! read that finds the queue empty starts a new one, on the ring of the
//! thread it runs on.
//!
//! A stream pays for each chunk a copy a plain recv does not (provided
//! buffer to queue, then queue to the read's buffer, where a recv copies
//! once, straight into it): a win for small messages, whose cost is the
//! entry per read, a loss for big ones. So after [`LARGE_CHUNKS_TO_STOP`]
//! chunks in a row of at least [`LARGE_CHUNK_BYTES`], the stream stops and
//! the next [`PLAIN_READS_AFTER_LARGE`] reads are plain; then a stream
//! tries again.
//!
//! Everywhere else (another backend, no runtime, a ring that cannot run
//! receive streams, or while a cancelled plain read of the socket may still
//! receive) a read is a plain `recv` op, which takes what cancelled ops
//! left for the fd first.
//!
//! Nothing received is lost: a read dropped while it waits leaves the
//! bytes in the queue for the next one. Closing the stream stops its
//! receive stream (the socket is released once the kernel side is done).
//! A plain read of the same socket through its raw fd (`io::recv`,
//! `io::read`), and `into_raw_fd`, stop it too: what was received, and
//! what still arrives until the stop lands, goes to the fd's leftovers
//! (`sys::leftover`), which that read takes first. Until the stop lands
//! the stream owes the fd its late bytes (`leftover::LateResult`), so a
//! plain read on any thread waits for them before it reads the socket
//! (on the ring's thread the ring also holds it back), and the bytes
//! stay in order.
//!
//! Given away whole (`TcpStream::into_raw_parts`, [`GiveAway`]), the
//! receive stream stops and late bytes go to the queue; once the stream
//! has ended, and every read of the fd dropped while the kernel had it
//! has come back (`leftover::poll_nothing_owed`), the queue goes with the
//! fd, after what was kept for the fd, so a reader outside iokernel loses
//! nothing.

use crate::buf::{BufResult, IoBufMut};
use crate::driver::uring::{stop_stream, StreamOnRing};
use crate::driver::Op;
use crate::op::net::Recv;
use crate::sys::leftover::{self, FileId, LateResult, ReadAhead};
use crate::sys::ring::StreamSink;
use crate::sys::{Errno, Kernel, SysResult};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

/// Most bytes a connection's queue holds before its receive stream stops
/// (the reads fall behind the peer): the socket's own buffer, and the TCP
/// window, hold the rest.
pub(crate) const QUEUE_LIMIT: usize = 256 * 1024;

/// A chunk at least this big is a *large* one: a receive stream pays a
/// copy of it (provided buffer to queue) on top of the read's, which a
/// plain recv, copying straight into the read's buffer, does not.
const LARGE_CHUNK_BYTES: usize = 1024;
/// Large chunks in a row after which the stream stops and reads are plain
/// for [`PLAIN_READS_AFTER_LARGE`] reads (then a stream tries again).
const LARGE_CHUNKS_TO_STOP: u32 = 4;
const PLAIN_READS_AFTER_LARGE: u32 = 256;

/// Most room an emptied queue keeps for the next bytes.
const QUEUE_KEPT_CAPACITY: usize = 64 * 1024;

/// A connection's received bytes and its receive stream, shared by the
/// stream's reads and the ring that runs the receive stream.
pub(crate) struct Receiver {
    fd: RawFd,
    kernel: Arc<dyn Kernel>,
    /// A receive stream was ever started (so the queue may hold bytes and
    /// the reads must look); until then a read on a backend without
    /// receive streams goes straight to a plain recv.
    streamed: AtomicBool,
    state: Mutex<State>,
}

/// Whose the socket is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The stream's: bytes go to the queue.
    Stream,
    /// Closed: late bytes are dropped.
    Closed,
    /// Given away (`into_raw_fd`): late bytes go to the leftovers.
    Released,
    /// A plain read of the fd stopped the receive stream: until it has
    /// ended, late bytes go to the leftovers.
    Lent,
    /// Being given away with what was received ([`GiveAway`]): late bytes
    /// go to the queue, which goes with the fd once the stream has ended.
    Leaving,
}

struct State {
    /// Received, not yet read, in order.
    bytes: Queue,
    /// What ended the last receive stream, for the reads after the bytes:
    /// end of stream (`Ok`, seen by every read from then on) or an errno
    /// (reported once).
    end: Option<Result<(), Errno>>,
    /// The receive stream running now.
    stream: Option<StreamOnRing>,
    /// A read is starting a receive stream (the lock is not held while
    /// the ring is asked).
    starting: bool,
    /// A stopped receive stream is still with the kernel: until it ends,
    /// its late bytes still come.
    stopping: bool,
    /// Stopped for plain reads or another owner, the stream owes the fd
    /// its late bytes until it ends: plain reads wait for them
    /// (`sys::leftover::LateResult`), on any thread.
    stop_owed: Option<LateResult>,
    /// The kernel cannot run receive streams (`EINVAL`): plain reads.
    plain_only: bool,
    /// Large chunks received in a row ([`LARGE_CHUNK_BYTES`]).
    large_chunks: u32,
    /// Reads left to do plainly after a stream of large chunks stopped.
    plain_reads_left: u32,
    /// Registered as the fd's read-ahead (`sys::leftover`): while a
    /// stream runs or the queue holds bytes, and until a plain spell or
    /// the close.
    registered: bool,
    owner: Owner,
    /// The socket the fd named when its bytes were last handed to the
    /// leftovers (`sys::leftover::file_of`): bytes that arrive after, until
    /// the stream stops, are kept for that socket, not for whatever the
    /// number names by then (the fd may be given away and closed).
    kept_for: Option<FileId>,
    /// Tasks waiting for bytes.
    readers: Vec<Waker>,
}

/// Bytes in arrival order: appended at the back, read from `start` on
/// (copies of whole runs, not byte by byte).
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    start: usize,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    fn unread(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    fn push(&mut self, more: &[u8]) {
        if self.is_empty() {
            self.bytes.clear();
            self.start = 0;
        } else if self.start > self.bytes.len() / 2 {
            // Most of it was read: move the rest to the front once.
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    /// Copy the oldest bytes into `out` (as many as fit); how many.
    fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.bytes[self.start..self.start + n]);
        self.start += n;
        if self.is_empty() && self.bytes.capacity() > QUEUE_KEPT_CAPACITY {
            // A burst is read: its room goes back.
            self.bytes = Vec::new();
            self.start = 0;
        }
        n
    }
}

/// What a read found.
enum Found {
    /// Its result.
    Done(SysResult<usize>),
    /// Nothing yet: its waker is registered.
    Wait,
    /// It reads with a plain recv.
    Plain,
}

impl Receiver {
    /// The receiver of connected stream socket `fd` of `kernel`.
    pub(crate) fn new(fd: RawFd, kernel: Arc<dyn Kernel>) -> Arc<Receiver> {
        Arc::new(Receiver {
            fd,
            kernel,
            streamed: AtomicBool::new(false),
            state: Mutex::new(State {
                bytes: Queue::default(),
                end: None,
                stream: None,
                starting: false,
                stopping: false,
                stop_owed: None,
                plain_only: false,
                large_chunks: 0,
                plain_reads_left: 0,
                registered: false,
                owner: Owner::Stream,
                kept_for: None,
                readers: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned state is whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a read here may take from, or start, a receive stream:
    /// one was started before (bytes may be queued), or this thread's
    /// driver runs them. Otherwise a read is a plain recv from the start.
    fn may_stream(&self) -> bool {
        self.streamed.load(Ordering::Acquire) || crate::driver::context::current_runs_streams()
    }

    /// One look for a read: bytes, an end, a wait, or a plain recv.
    fn find<B: IoBufMut>(self: &Arc<Self>, buf: &mut B, waker: &Waker) -> Found {
        let mut state = self.lock();
        if !state.bytes.is_empty() {
            let n = state.bytes.take_into(buf.writable());
            buf.set_filled(n);
            crate::driver::metrics::note_stream_read();
            return Found::Done(Ok(n));
        }
        // What a stopped stream handed to the leftovers came before its end.
        if leftover::has_any(&*self.kernel, self.fd) {
            return Found::Plain;
        }
        match state.end {
            Some(Ok(())) => return Found::Done(Ok(0)),
            Some(Err(errno)) => {
                state.end = None;
                return Found::Done(Err(errno));
            }
            None => {}
        }
        if state.stream.is_some() || state.starting {
            Self::wait(&mut state, waker);
            return Found::Wait;
        }
        if state.plain_reads_left > 0 {
            state.plain_reads_left -= 1;
            // Idle: plain reads need not ask this receiver for bytes.
            if state.registered {
                state.registered = false;
                leftover::unregister_read_ahead(&*self.kernel, self.fd);
            }
            return Found::Plain;
        }
        if state.plain_only || state.owner != Owner::Stream {
            return Found::Plain;
        }
        let Some(driver) = crate::driver::context::current_driver().filter(|d| d.runs_streams())
        else {
            return Found::Plain;
        };
        if driver.kernel().fd_table_id() != self.kernel.fd_table_id() {
            return Found::Plain;
        }
        self.streamed.store(true, Ordering::Release);
        if !state.registered {
            state.registered = true;
            let weak = Arc::downgrade(self);
            let weak: Weak<dyn ReadAhead> = weak;
            leftover::register_read_ahead(&*self.kernel, self.fd, weak);
        }
        // Not under the lock: queueing the entry may reap completions,
        // which hand bytes to this receiver.
        state.starting = true;
        drop(state);
        let sink: Arc<dyn StreamSink> = Arc::clone(self) as Arc<dyn StreamSink>;
        let started = driver.start_stream(self.fd, &sink);
        let mut state = self.lock();
        state.starting = false;
        match started {
            Some(stream) if state.owner == Owner::Stream => {
                crate::driver::metrics::note_receive_stream();
                state.stream = Some(stream);
                Self::wait(&mut state, waker);
                Found::Wait
            }
            // Closed or given away meanwhile (from another thread).
            Some(stream) => {
                drop(state);
                stop_stream(stream);
                Found::Plain
            }
            None => {
                // Reads that waited for this start look again.
                Self::wake_readers(&mut state);
                Found::Plain
            }
        }
    }

    fn wait(state: &mut State, waker: &Waker) {
        if !state.readers.iter().any(|w| w.will_wake(waker)) {
            state.readers.push(waker.clone());
        }
    }

    fn wake_readers(state: &mut State) {
        for reader in state.readers.drain(..) {
            reader.wake();
        }
    }

    /// The stream is closing: its receive stream stops, late bytes are
    /// dropped.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        self.leave_read_aheads(&mut state);
        self.give_to(state, Owner::Closed);
    }

    /// The fd is given away: what was received, and what still arrives
    /// before the receive stream stops, is kept for the next iokernel op
    /// on the fd.
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        self.leave_read_aheads(&mut state);
        self.keep_received(state, Owner::Released);
    }

    /// No longer the fd's read-ahead (`sys::leftover`).
    fn leave_read_aheads(&self, state: &mut State) {
        if std::mem::take(&mut state.registered) {
            leftover::unregister_read_ahead(&*self.kernel, self.fd);
        }
    }

    /// Move what was received to the fd's leftovers and give the socket to
    /// `owner` (late bytes go there too), unless it is closed.
    fn keep_received(&self, mut state: MutexGuard<'_, State>, owner: Owner) {
        if state.owner == Owner::Closed {
            return;
        }
        state.kept_for = leftover::file_of(&*self.kernel, self.fd);
        leftover::stash_bytes(&*self.kernel, self.fd, state.kept_for, state.bytes.unread());
        self.give_to(state, owner);
    }

    /// The socket is `owner`'s now: the queue is emptied (its bytes kept
    /// or dropped by the caller), the receive stream stopped, the readers
    /// woken (they look again).
    fn give_to(&self, mut state: MutexGuard<'_, State>, owner: Owner) {
        state.owner = owner;
        state.bytes = Queue::default();
        let stream = state.stream.take();
        state.stopping |= stream.is_some();
        if stream.is_some() && matches!(owner, Owner::Lent | Owner::Released) {
            state.stop_owed = Some(LateResult::owed(&*self.kernel, self.fd));
        }
        Self::wake_readers(&mut state);
        drop(state);
        if let Some(stream) = stream {
            stop_stream(stream);
        }
    }
}

impl ReadAhead for Receiver {
    fn hand_over(&self) {
        let state = self.lock();
        let idle = state.stream.is_none() && state.bytes.is_empty();
        if idle || state.owner != Owner::Stream {
            return;
        }
        self.keep_received(state, Owner::Lent);
    }
}

impl StreamSink for Receiver {
    fn received(&self, bytes: &[u8]) -> bool {
        let mut state = self.lock();
        match state.owner {
            Owner::Stream => {}
            Owner::Leaving => {
                state.bytes.push(bytes);
                return false;
            }
            Owner::Closed => return false,
            Owner::Released | Owner::Lent => {
                leftover::stash_bytes(&*self.kernel, self.fd, state.kept_for, bytes);
                return false;
            }
        }
        state.bytes.push(bytes);
        Self::wake_readers(&mut state);
        if bytes.len() < LARGE_CHUNK_BYTES {
            state.large_chunks = 0;
        } else {
            state.large_chunks += 1;
            if state.large_chunks >= LARGE_CHUNKS_TO_STOP {
                // Big chunks cost this path a copy more than plain reads:
                // stop, and read plainly for a while.
                state.large_chunks = 0;
                state.plain_reads_left = PLAIN_READS_AFTER_LARGE;
                return false;
            }
        }
        state.bytes.len() < QUEUE_LIMIT
    }

    fn ended(&self, res: i32) {
        let mut state = self.lock();
        state.stream = None;
        state.stopping = false;
        // Its late bytes are kept by now (`received`): plain reads go on.
        let owed = state.stop_owed.take();
        if state.owner == Owner::Lent {
            // What arrived meanwhile is in the leftovers, which the next
            // read takes first (it reads plainly until they are gone).
            state.owner = Owner::Stream;
        }
        match res {
            0 => state.end = Some(Ok(())),
            // Stopped with the connection open: the next read that finds
            // the queue empty starts another.
            res if res > 0 || res == -libc::ENOBUFS || res == -libc::ECANCELED => {}
            res if res == -libc::EINVAL => state.plain_only = true,
            res => state.end = Some(Err(Errno(-res))),
        }
        Self::wake_readers(&mut state);
        drop(state);
        drop(owed);
    }
}

/// A connection given away whole (`TcpStream::into_raw_parts`): its receive
/// stream stops, and once the kernel side has ended (no byte can arrive
/// here after), the future gives what was received and no read took, in
/// order (what was kept for the fd, then the queue), and an error the
/// stream saw that no read has reported.
#[must_use = "giving away does nothing until awaited"]
pub(crate) struct GiveAway<'a> {
    receiver: &'a Receiver,
    stopped: bool,
}

impl Receiver {
    pub(crate) fn give_away(&self) -> GiveAway<'_> {
        GiveAway {
            receiver: self,
            stopped: false,
        }
    }
}

impl Future for GiveAway<'_> {
    type Output = (Vec<u8>, Option<Errno>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let receiver = this.receiver;
        let mut state = receiver.lock();
        if !std::mem::replace(&mut this.stopped, true) {
            receiver.leave_read_aheads(&mut state);
            state.owner = Owner::Leaving;
            if let Some(stream) = state.stream.take() {
                state.stopping = true;
                drop(state);
                stop_stream(stream);
                state = receiver.lock();
            }
        }
        // (No read can be starting a stream: the stream is given away whole,
        // so none of its reads is alive.)
        if state.stopping {
            Receiver::wait(&mut state, cx.waker());
            return Poll::Pending;
        }
        // Reads of the fd dropped while the kernel had them: what they
        // still get is kept, and comes before what the new owner reads.
        if leftover::poll_nothing_owed(&*receiver.kernel, receiver.fd, cx.waker()).is_pending() {
            return Poll::Pending;
        }
        let mut received = leftover::take_all_bytes(&*receiver.kernel, receiver.fd);
        received.extend_from_slice(state.bytes.unread());
        state.bytes = Queue::default();
        let error = match state.end {
            Some(Err(errno)) => {
                state.end = None;
                Some(errno)
            }
            Some(Ok(())) | None => None,
        };
        state.owner = Owner::Released;
        Poll::Ready((received, error))
    }
}

/// A read of a [`TcpStream`](super::TcpStream) (see the module doc).
#[must_use = "a read does nothing until awaited"]
pub(crate) struct Read<'a, B: IoBufMut> {
    receiver: &'a Arc<Receiver>,
    buf: Option<B>,
    /// The plain recv, when the read is one.
    plain: Option<Op<Recv<B>>>,
}

impl<'a, B: IoBufMut> Read<'a, B> {
    /// Read from `fd` through `receiver` (its receiver), into `buf`: at
    /// most its capacity. Where no receive stream can be (see
    /// [`Receiver::may_stream`]) it is a plain recv from the start.
    pub(crate) fn new(receiver: &'a Arc<Receiver>, buf: B) -> Read<'a, B> {
        if receiver.may_stream() {
            return Read {
                receiver,
                buf: Some(buf),
                plain: None,
            };
        }
        Read {
            receiver,
            buf: None,
            plain: Some(crate::io::tcp_recv(receiver.fd, buf)),
        }
    }
}

// The buffer is moved, never pinned.
impl<B: IoBufMut> Unpin for Read<'_, B> {}

impl<B: IoBufMut> Future for Read<'_, B> {
    type Output = BufResult<usize, B>;

    /// A plain read goes straight to its op (inlined: on backends without
    /// receive streams every read is one); the rest is out of line.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(plain) = &mut this.plain {
            return Pin::new(plain).poll(cx);
        }
        this.poll_stream(cx)
    }
}

impl<B: IoBufMut> Read<'_, B> {
    /// A read that may take from, or start, a receive stream.
    #[inline(never)]
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<BufResult<usize, B>> {
        let Some(buf) = self.buf.as_mut() else {
            panic!("a TcpStream read polled after it completed");
        };
        match self.receiver.find(buf, cx.waker()) {
            Found::Done(result) => {
                let buf = self.buf.take().expect("checked above");
                Poll::Ready(crate::op::buf_result(result, buf))
            }
            Found::Wait => Poll::Pending,
            Found::Plain => {
                let buf = self.buf.take().expect("checked above");
                let plain = self
                    .plain
                    .insert(crate::io::tcp_recv(self.receiver.fd, buf));
                Pin::new(plain).poll(cx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Found, Receiver};
    use crate::runtime::{Backend, Runtime};
    use crate::sys::ring::StreamSink;
    use crate::sys::SockType;
    use std::task::Waker;

    /// What a first read finds on a fresh connected socket of a uring
    /// runtime, after `before` was done to its receiver.
    fn first_find(before: impl Fn(&Receiver)) -> Option<bool> {
        crate::driver::availability(Backend::IoUring).ok()?;
        let rt = Runtime::builder()
            .compute_threads(1)
            .backend(Backend::IoUring)
            .build()
            .unwrap();
        Some(rt.block_on(async {
            let kernel = crate::runtime::context::current_kernel();
            let (a, b) = kernel.unix_pair(SockType::Stream).unwrap();
            let receiver = Receiver::new(b, kernel.clone());
            before(&receiver);
            let mut buf = vec![0u8; 8];
            let plain = matches!(receiver.find(&mut buf, Waker::noop()), Found::Plain);
            receiver.close();
            kernel.close(a).unwrap();
            kernel.close(b).unwrap();
            plain
        }))
    }

    /// A kernel that cannot run receive streams says `EINVAL` to the first
    /// one: reads on that connection are plain from then on, where a
    /// stream would otherwise start.
    #[test]
    fn a_stream_refused_with_einval_leaves_the_reads_plain() {
        let Some(fresh) = first_find(|_| {}) else {
            eprintln!("skipping: no io_uring here");
            return;
        };
        assert!(!fresh, "a fresh connection's read started no stream");
        let refused = first_find(|r| r.ended(-libc::EINVAL)).unwrap();
        assert!(refused, "a read after EINVAL tried a stream again");
    }
}
