//! What a cancelled socket op (or read at the file position) got from the
//! kernel anyway, kept for the next op on the same fd.
//!
//! Dropping a `recv`, `accept` or `read` future cannot always stop the
//! syscall: a pool worker may already be inside it, an io_uring async
//! cancel may lose the race, a simulated ring may run the entry before the
//! cancel. When the kernel has moved bytes or accepted a connection for an
//! op nobody awaits any more, the op's `discard` puts them here instead of
//! dropping them, and the next `recv` (`accept`, `read` at the file
//! position) on that fd takes them first: bytes in the order they were
//! received and before anything new, connections first in first out.
//! Closing the fd through iokernel (the `close` op, dropping a
//! `TcpStream`/`TcpListener`) drops its leftovers and closes stashed
//! connections.
//!
//! An fd whose bytes something receives ahead of its reads (a
//! `TcpStream`'s receive stream, `net/receive.rs`) is registered here too
//! ([`register_read_ahead`]): a plain read of that fd first has it hand
//! what it received over to this store ([`ReadAhead::hand_over`]), so the
//! bytes stay in order whichever way the socket is read.
//!
//! An op abandoned while the kernel still has it owes its fd a late result
//! ([`LateResult`], held by whatever holds the op until its `discard` is
//! done), as does a receive stream stopped for plain reads until it ends.
//! A new reader of the fd waits for them ([`poll_nothing_owed`]: on any
//! thread and backend, before it starts) and then takes them first; an fd
//! given away whole (`TcpStream::into_raw_parts`) is handed over only
//! once every such result is kept here, so what the kernel gave a
//! cancelled read reaches the new owner and never stays behind.
//!
//! Keyed by the kernel's fd table ([`Kernel::fd_table_id`]) and the fd, so
//! simulated kernels of different runs never see each other's leftovers.
//! What is kept also names the open file it came from ([`FileId`]: the
//! device and inode `fstat` gives, a socket's own): an fd given away
//! (`into_raw_fd`) and closed behind iokernel's back, say by the library
//! it went to, may come back as another socket with the same number, and
//! what was kept for the old one is then dropped (kept fds closed), never
//! read from the new one. That costs an `fstat` whenever something is kept
//! and whenever an op looks at an fd that has something kept, never
//! otherwise.
//!
//! Limits: a cancelled op whose late result comes after its fd was closed
//! elsewhere and the number reused keeps it for the new file (it learns
//! the file only then), as does a regular file closed and opened again at
//! the same number; bytes of a datagram socket are kept per datagram (a
//! recv takes from the first one only), but the unread tail of a datagram
//! taken into a short buffer is kept rather than truncated as the kernel
//! would.

use super::{Errno, Kernel, RecvMeta};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Poll, Waker};

/// Which open file an fd named when something was kept for it: the
/// device and inode `fstat` reports (a socket's inode is its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    device: u64,
    inode: u64,
}

/// What an fd number names now.
#[derive(Clone, Copy)]
enum Named {
    File(FileId),
    /// `EBADF`: nothing; what was kept for the number can never be read.
    Closed,
    /// `fstat` kept failing otherwise: cannot tell, so nothing is dropped.
    Unknown,
}

/// How many times [`named`] asks `fstat` before it answers `Unknown`.
const FSTAT_TRIES: usize = 8;

/// What `fd` names now. `fstat` of an fd fails but with `EBADF` only when
/// the kernel is short of memory (`ENOMEM`) or a simulated kernel injects
/// a fault: that passes, so it is asked again. An answer of `Unknown`
/// would keep bytes for whatever the number names, another socket's
/// included, so it is the last resort.
fn named(kernel: &dyn Kernel, fd: RawFd) -> Named {
    for _ in 0..FSTAT_TRIES {
        match kernel.fstat(fd) {
            Ok(stat) => {
                return Named::File(FileId {
                    device: stat.device,
                    inode: stat.inode,
                })
            }
            Err(Errno::EBADF) => return Named::Closed,
            Err(_) => {}
        }
    }
    Named::Unknown
}

/// The open file `fd` names now, for a caller that keeps something for it
/// later (a receive stream given away keeps its late bytes for the socket
/// it received them from, whatever the number names by then).
pub(crate) fn file_of(kernel: &dyn Kernel, fd: RawFd) -> Option<FileId> {
    match named(kernel, fd) {
        Named::File(file) => Some(file),
        Named::Closed | Named::Unknown => None,
    }
}

/// What one fd has left over.
#[derive(Default)]
struct Leftover {
    /// The open file it was kept for (`None`: not known).
    file: Option<FileId>,
    /// Received segments in arrival order (one per discarded recv).
    bytes: VecDeque<Vec<u8>>,
    /// Accepted connections in arrival order.
    conns: VecDeque<(RawFd, SocketAddr)>,
    /// Messages a discarded `recvmsg` received (bytes, sender, passed fds).
    msgs: VecDeque<(Vec<u8>, RecvMeta)>,
}

impl Leftover {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.conns.is_empty() && self.msgs.is_empty()
    }

    /// Whether this was kept for another open file than `fd` names now
    /// (`now`, looked up when not given), or `fd` is closed.
    fn is_stale(&self, kernel: &dyn Kernel, fd: RawFd, now: Option<Named>) -> bool {
        match now.unwrap_or_else(|| named(kernel, fd)) {
            Named::Closed => true,
            Named::File(file) => self.file.is_some_and(|kept_for| kept_for != file),
            Named::Unknown => false,
        }
    }

    /// Nobody will take these: close the connections and passed fds.
    fn close_fds(self, kernel: &dyn Kernel) {
        for (conn, _) in self.conns {
            let _ = kernel.close(conn);
        }
        for passed in self.msgs.into_iter().flat_map(|(_, meta)| meta.fds) {
            let _ = kernel.close(passed);
        }
    }
}

type Store = HashMap<(u64, RawFd), Leftover>;

/// What receives an fd's bytes ahead of its reads.
pub(crate) trait ReadAhead: Send + Sync {
    /// A plain read of the fd is about to run: stop receiving ahead and
    /// keep what was received, and what still arrives until that stop
    /// lands, here, in order (the reader then takes it first).
    fn hand_over(&self);
}

type ReadAheads = HashMap<(u64, RawFd), Weak<dyn ReadAhead>>;

/// How many fds have a [`ReadAhead`]: reads skip the lookup at 0.
static READ_AHEADS: AtomicUsize = AtomicUsize::new(0);

fn read_aheads() -> MutexGuard<'static, ReadAheads> {
    static AHEAD: OnceLock<Mutex<ReadAheads>> = OnceLock::new();
    locked_map(&AHEAD)
}

/// The process-wide map in `cell`, locked (made empty on first use).
fn locked_map<K, V>(
    cell: &'static OnceLock<Mutex<HashMap<K, V>>>,
) -> MutexGuard<'static, HashMap<K, V>> {
    // No code panics while holding the lock; a poisoned map is still whole.
    cell.get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// `reader` receives `fd`'s bytes ahead of its reads, until
/// [`unregister_read_ahead`].
pub(crate) fn register_read_ahead(kernel: &dyn Kernel, fd: RawFd, reader: Weak<dyn ReadAhead>) {
    if read_aheads().insert(key(kernel, fd), reader).is_none() {
        READ_AHEADS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Nothing receives `fd`'s bytes ahead any more (it is closing or given
/// away).
pub(crate) fn unregister_read_ahead(kernel: &dyn Kernel, fd: RawFd) {
    if READ_AHEADS.load(Ordering::SeqCst) == 0 {
        return;
    }
    if read_aheads().remove(&key(kernel, fd)).is_some() {
        READ_AHEADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a [`ReadAhead`] receives `fd`'s bytes (so `fd` is a socket).
pub(crate) fn is_read_ahead(kernel: &dyn Kernel, fd: RawFd) -> bool {
    READ_AHEADS.load(Ordering::SeqCst) != 0 && read_aheads().contains_key(&key(kernel, fd))
}

/// Whether any fd has something kept or read ahead: the gate, nearly
/// always closed off io_uring, of every lookup here a read makes.
#[inline]
pub(crate) fn any_kept_or_read_ahead() -> bool {
    ENTRIES.load(Ordering::SeqCst) | READ_AHEADS.load(Ordering::SeqCst) != 0
}

/// Before a plain read of `fd`: what its read-ahead received comes here.
fn hand_over_read_ahead(kernel: &dyn Kernel, fd: RawFd) {
    // Not under the map's lock: handing over takes the reader's lock and
    // this store's.
    let reader = read_aheads().get(&key(kernel, fd)).and_then(Weak::upgrade);
    if let Some(reader) = reader {
        reader.hand_over();
    }
}

/// How many fds have leftovers: the fast path skips the lock at 0.
static ENTRIES: AtomicUsize = AtomicUsize::new(0);
/// How many late results were kept, ever (see [`kept_total`]).
static KEPT: AtomicU64 = AtomicU64::new(0);

/// How many late recv results and accepted connections of cancelled ops
/// this process has kept for the next op (a race counter for tests).
pub(crate) fn kept_total() -> u64 {
    KEPT.load(Ordering::SeqCst)
}

fn store() -> MutexGuard<'static, Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    locked_map(&STORE)
}

fn key(kernel: &dyn Kernel, fd: RawFd) -> (u64, RawFd) {
    (kernel.fd_table_id(), fd)
}

/// Run `f` on `fd`'s leftovers (empty when there are none; stored only
/// when not empty), keeping the entry count.
/// What was kept for another open file than `fd` names now (`now`, looked
/// up only when something is kept) is dropped first, its fds closed.
fn with_entry<R>(
    kernel: &dyn Kernel,
    fd: RawFd,
    now: Option<Named>,
    f: impl FnOnce(&mut Leftover) -> R,
) -> R {
    let mut stale = None;
    let result = {
        let mut store = store();
        let key = key(kernel, fd);
        match store.get_mut(&key) {
            // Nothing kept for `fd`: an entry only if `f` keeps something.
            None => {
                let mut fresh = Leftover::default();
                let result = f(&mut fresh);
                if !fresh.is_empty() {
                    store.insert(key, fresh);
                    ENTRIES.fetch_add(1, Ordering::SeqCst);
                }
                result
            }
            Some(entry) => {
                if entry.is_stale(kernel, fd, now) {
                    stale = Some(std::mem::take(entry));
                }
                let result = f(entry);
                if entry.is_empty() {
                    store.remove(&key);
                    ENTRIES.fetch_sub(1, Ordering::SeqCst);
                }
                result
            }
        }
    };
    if let Some(stale) = stale {
        stale.close_fds(kernel);
    }
    result
}

/// Keep `item` for `fd` (first in line when `in_front`), for the open file
/// `from` when the caller knows it, else for what `fd` names now; dropped
/// (its fds closed) when `fd` is closed or names another file by now.
/// Whether it was kept.
fn keep(
    kernel: &dyn Kernel,
    fd: RawFd,
    from: Option<FileId>,
    item: Leftover,
    in_front: bool,
) -> bool {
    let now = named(kernel, fd);
    let file = match now {
        Named::Closed => {
            item.close_fds(kernel);
            return false;
        }
        Named::File(file) if from.is_some_and(|from| from != file) => {
            item.close_fds(kernel);
            return false;
        }
        Named::File(file) => Some(file),
        Named::Unknown => from,
    };
    with_entry(kernel, fd, Some(now), |left| {
        left.file = left.file.or(file);
        let Leftover {
            bytes, conns, msgs, ..
        } = item;
        if in_front {
            in_front_of(&mut left.bytes, bytes);
            in_front_of(&mut left.conns, conns);
            in_front_of(&mut left.msgs, msgs);
        } else {
            left.bytes.extend(bytes);
            left.conns.extend(conns);
            left.msgs.extend(msgs);
        }
    });
    true
}

/// Put `items` in front of `queue`, in their order.
fn in_front_of<T>(queue: &mut VecDeque<T>, items: VecDeque<T>) {
    for item in items.into_iter().rev() {
        queue.push_front(item);
    }
}

/// Whether `fd` has anything kept (bytes, connections or messages): an op
/// waiting for `fd` to become readable can finish with it instead.
/// Every stream read asks: the gate (nothing kept anywhere, nearly
/// always) is inlined at the caller, the look is not.
#[inline]
pub(crate) fn has_any(kernel: &dyn Kernel, fd: RawFd) -> bool {
    ENTRIES.load(Ordering::SeqCst) != 0 && has_kept(kernel, fd)
}

#[inline(never)]
fn has_kept(kernel: &dyn Kernel, fd: RawFd) -> bool {
    with_entry(kernel, fd, None, |left| !left.is_empty())
}

/// One kept thing as a [`Leftover`] of its own.
fn one(fill: impl FnOnce(&mut Leftover)) -> Leftover {
    let mut item = Leftover::default();
    fill(&mut item);
    item
}

/// Keep `bytes` received from `fd` for its next read: a discarded recv's
/// (`from` `None`: the file `fd` names now), or what a receive stream
/// received (`from` the socket it received them from, [`file_of`]).
pub(crate) fn stash_bytes(kernel: &dyn Kernel, fd: RawFd, from: Option<FileId>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    stash(
        kernel,
        fd,
        from,
        one(|left| left.bytes.push_back(bytes.to_vec())),
    );
}

/// Keep a late result for `fd`'s next op, counted ([`kept_total`]).
fn stash(kernel: &dyn Kernel, fd: RawFd, from: Option<FileId>, item: Leftover) {
    if keep(kernel, fd, from, item, false) {
        KEPT.fetch_add(1, Ordering::SeqCst);
    }
}

/// Put back, first in line, what an op took and nobody got.
fn put_back(kernel: &dyn Kernel, fd: RawFd, item: Leftover) {
    keep(kernel, fd, None, item, true);
}

/// Put back, in front of everything kept for `fd`, bytes an op took from
/// here ([`take_bytes`]) and then nobody got (its future was dropped
/// before taking them): they came before whatever is kept now.
pub(crate) fn put_back_bytes(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    put_back(kernel, fd, one(|left| left.bytes.push_back(bytes.to_vec())));
}

/// Copy leftover bytes of `fd` into `buf` (from the oldest segment only),
/// consuming them unless `peek`; `None` when there are none. What a
/// read-ahead of `fd` received is handed over first. Every recv asks: the
/// gate (nothing kept and nothing read ahead anywhere, nearly always off
/// io_uring) is inlined at the caller, the rest is not.
#[inline]
pub(crate) fn take_bytes(
    kernel: &dyn Kernel,
    fd: RawFd,
    buf: &mut [u8],
    peek: bool,
) -> Option<usize> {
    if !any_kept_or_read_ahead() || buf.is_empty() {
        return None;
    }
    take_kept_bytes(kernel, fd, buf, peek)
}

#[inline(never)]
fn take_kept_bytes(kernel: &dyn Kernel, fd: RawFd, buf: &mut [u8], peek: bool) -> Option<usize> {
    if READ_AHEADS.load(Ordering::SeqCst) != 0 {
        hand_over_read_ahead(kernel, fd);
        if ENTRIES.load(Ordering::SeqCst) == 0 {
            return None;
        }
    }
    with_entry(kernel, fd, None, |left| {
        let segment = left.bytes.front_mut()?;
        let n = segment.len().min(buf.len());
        buf[..n].copy_from_slice(&segment[..n]);
        if !peek {
            segment.drain(..n);
            if segment.is_empty() {
                left.bytes.pop_front();
            }
        }
        Some(n)
    })
}

/// Every kept byte of `fd`, oldest first (for an fd leaving iokernel).
pub(crate) fn take_all_bytes(kernel: &dyn Kernel, fd: RawFd) -> Vec<u8> {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return Vec::new();
    }
    with_entry(kernel, fd, None, |left| {
        left.bytes.drain(..).flatten().collect()
    })
}

/// Late results an fd is owed, and who waits for them all.
#[derive(Default)]
struct Owed {
    results: usize,
    waiters: Vec<Waker>,
}

/// How many fds are owed a late result: [`poll_nothing_owed`] skips the
/// lock at 0.
static OWED_FDS: AtomicUsize = AtomicUsize::new(0);

fn owed() -> MutexGuard<'static, HashMap<(u64, RawFd), Owed>> {
    static OWED: OnceLock<Mutex<HashMap<(u64, RawFd), Owed>>> = OnceLock::new();
    locked_map(&OWED)
}

/// Bytes or a connection still to come for `fd` and to be kept here: the
/// result of an op abandoned while the kernel had it (a `recv`, `accept`
/// or read at the file position, whose `discard` keeps it), or the last
/// chunks of a receive stream stopped for plain reads or a new owner.
/// Whatever holds the op or the stopping stream holds this too, and drops
/// it once what came is kept (or the op is dropped unfinished): only then
/// is the fd owed nothing more.
pub(crate) struct LateResult {
    key: (u64, RawFd),
}

impl LateResult {
    /// `fd` is owed what an op just abandoned, or a stream just stopped,
    /// still gets.
    pub(crate) fn owed(kernel: &dyn Kernel, fd: RawFd) -> LateResult {
        let key = key(kernel, fd);
        let mut owed = owed();
        let entry = owed.entry(key).or_default();
        if entry.results == 0 {
            OWED_FDS.fetch_add(1, Ordering::SeqCst);
        }
        entry.results += 1;
        LateResult { key }
    }
}

impl Drop for LateResult {
    fn drop(&mut self) {
        let waiters = {
            let mut owed = owed();
            let Some(entry) = owed.get_mut(&self.key) else {
                return;
            };
            entry.results -= 1;
            if entry.results != 0 {
                return;
            }
            OWED_FDS.fetch_sub(1, Ordering::SeqCst);
            owed.remove(&self.key).map(|entry| entry.waiters)
        };
        for waiter in waiters.into_iter().flatten() {
            waiter.wake();
        }
    }
}

/// Whether any fd is owed a late result: the gate, nearly always
/// closed, of the look a new reader makes ([`poll_nothing_owed`]).
#[inline]
pub(crate) fn anything_owed() -> bool {
    OWED_FDS.load(Ordering::SeqCst) != 0
}

/// Ready once `fd` is owed no late result ([`LateResult`]): what the
/// kernel gave its abandoned ops is then kept here. Else `waker` is woken
/// when the last one is.
pub(crate) fn poll_nothing_owed(kernel: &dyn Kernel, fd: RawFd, waker: &Waker) -> Poll<()> {
    if !anything_owed() {
        return Poll::Ready(());
    }
    match owed().get_mut(&key(kernel, fd)) {
        None => Poll::Ready(()),
        Some(entry) => {
            if !entry.waiters.iter().any(|w| w.will_wake(waker)) {
                entry.waiters.push(waker.clone());
            }
            Poll::Pending
        }
    }
}

/// Keep a connection a discarded accept on listening socket `fd` accepted.
pub(crate) fn stash_conn(kernel: &dyn Kernel, fd: RawFd, conn: (RawFd, SocketAddr)) {
    stash(kernel, fd, None, one(|left| left.conns.push_back(conn)));
}

/// Put back, first in line, a connection an accept took from here
/// ([`take_conn`]) and then nobody got.
pub(crate) fn put_back_conn(kernel: &dyn Kernel, fd: RawFd, conn: (RawFd, SocketAddr)) {
    put_back(kernel, fd, one(|left| left.conns.push_back(conn)));
}

/// The oldest kept connection of listening socket `fd`.
pub(crate) fn take_conn(kernel: &dyn Kernel, fd: RawFd) -> Option<(RawFd, SocketAddr)> {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return None;
    }
    with_entry(kernel, fd, None, |left| left.conns.pop_front())
}

/// Keep a message (its bytes, sender and passed fds) a discarded `recvmsg`
/// on `fd` received.
pub(crate) fn stash_msg(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8], meta: RecvMeta) {
    stash(
        kernel,
        fd,
        None,
        one(|left| left.msgs.push_back((bytes.to_vec(), meta))),
    );
}

/// Put back, first in line, a message a `recvmsg` took from here
/// ([`take_msg`], or bytes from [`take_bytes`]) and then nobody got.
pub(crate) fn put_back_msg(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8], meta: RecvMeta) {
    put_back(
        kernel,
        fd,
        one(|left| left.msgs.push_back((bytes.to_vec(), meta))),
    );
}

/// The oldest kept message of `fd`, copied into `buf`. A datagram (one with
/// a sender) is taken whole: a tail that does not fit is cut and reported
/// `truncated`, as the kernel would; a stream message's tail stays kept
/// (without its fds, which go with the first byte).
pub(crate) fn take_msg(kernel: &dyn Kernel, fd: RawFd, buf: &mut [u8]) -> Option<RecvMeta> {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return None;
    }
    with_entry(kernel, fd, None, |left| {
        let (bytes, mut meta) = left.msgs.pop_front()?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        meta.bytes = n;
        if n < bytes.len() {
            match meta.from {
                Some(_) => meta.truncated = true,
                None => left
                    .msgs
                    .push_front((bytes[n..].to_vec(), RecvMeta::default())),
            }
        }
        Some(meta)
    })
}

/// `fd` is being closed through iokernel: drop its leftover bytes and close
/// its kept connections and the fds of its kept messages.
pub(crate) fn forget(kernel: &dyn Kernel, fd: RawFd) {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return;
    }
    with_entry(kernel, fd, None, std::mem::take).close_fds(kernel);
}

/// Every fd table's leftovers dropped (without closing anything): the
/// kernel they belong to is gone.
#[cfg(feature = "sim")]
pub(crate) fn forget_table(fd_table_id: u64) {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return;
    }
    let mut store = store();
    let before = store.len();
    store.retain(|(table, _), _| *table != fd_table_id);
    ENTRIES.fetch_sub(before - store.len(), Ordering::SeqCst);
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::sim::{self, SimOptions};

    use crate::sys::SockType;

    /// A new stream socket of `kernel`.
    fn socket(kernel: &dyn Kernel) -> RawFd {
        let like = "127.0.0.1:0".parse().unwrap();
        kernel.socket(&like, SockType::Stream).unwrap()
    }

    #[test]
    fn bytes_come_back_in_order_and_peek_keeps_them() {
        let kernel = sim::new_kernel(SimOptions::new(7)).unwrap();
        let k: &dyn Kernel = &*kernel;
        let (a, b) = (socket(k), socket(k));
        stash_bytes(k, a, None, b"hello");
        stash_bytes(k, a, None, b" world");
        let mut buf = [0u8; 3];
        assert_eq!(take_bytes(k, a, &mut buf, true), Some(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(take_bytes(k, a, &mut buf, false), Some(3));
        assert_eq!(&buf, b"hel");
        let mut rest = [0u8; 64];
        assert_eq!(take_bytes(k, a, &mut rest, false), Some(2));
        assert_eq!(&rest[..2], b"lo");
        assert_eq!(take_bytes(k, a, &mut rest, false), Some(6));
        assert_eq!(&rest[..6], b" world");
        assert_eq!(take_bytes(k, a, &mut rest, false), None);
        // Another fd table never sees them.
        let other = sim::new_kernel(SimOptions::new(7)).unwrap();
        let (_, other_b) = (socket(&*other), socket(&*other));
        assert_eq!(other_b, b, "the same number in both tables");
        stash_bytes(k, b, None, b"x");
        assert_eq!(take_bytes(&*other, b, &mut rest, false), None);
        forget(k, b);
        assert_eq!(take_bytes(k, b, &mut rest, false), None);
    }

    /// What was kept for a socket closed behind the store's back is never
    /// read from the socket that gets its number next, and kept
    /// connections go with it (closed); late bytes of the old socket
    /// (`from` it) are not kept for the new one, nor for a closed number.
    #[test]
    fn what_was_kept_for_a_closed_socket_never_reaches_the_next_on_its_number() {
        let kernel = sim::new_kernel(SimOptions::new(7)).unwrap();
        let k: &dyn Kernel = &*kernel;
        let old = socket(k);
        let old_file = file_of(k, old);
        assert!(old_file.is_some());
        stash_bytes(k, old, old_file, b"old bytes");
        let conn = socket(k);
        let addr = "127.0.0.1:1".parse().unwrap();
        stash_conn(k, old, (conn, addr));
        k.close(old).unwrap();
        // Closed: nothing kept can be read, and late bytes are not kept.
        stash_bytes(k, old, old_file, b"late");
        assert!(!has_any(k, old));
        let new = socket(k);
        assert_eq!(new, old, "the number is reused");
        stash_bytes(k, new, old_file, b"later");
        let mut buf = [0u8; 64];
        assert_eq!(take_bytes(k, new, &mut buf, false), None);
        assert_eq!(take_conn(k, new), None);
        assert_eq!(
            k.fstat(conn).err(),
            Some(Errno::EBADF),
            "a kept connection of a closed listener stays open"
        );
        // Kept for the new socket, they are its.
        stash_bytes(k, new, None, b"new");
        assert_eq!(take_bytes(k, new, &mut buf, false), Some(3));
        assert_eq!(&buf[..3], b"new");
        // Kept for a socket closed and replaced since: dropped when looked at.
        stash_bytes(k, new, None, b"stale");
        k.close(new).unwrap();
        let newer = socket(k);
        assert_eq!(newer, new);
        assert!(!has_any(k, newer));
        assert_eq!(take_bytes(k, newer, &mut buf, false), None);
    }
}
