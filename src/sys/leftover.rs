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
//! Keyed by the kernel's fd table ([`Kernel::fd_table_id`]) and the fd, so
//! simulated kernels of different runs never see each other's leftovers.
//! Limits, as documented on the ops: an fd closed behind iokernel's back
//! and reused keeps the old socket's leftovers; bytes of a datagram socket
//! are kept per datagram (a recv takes from the first one only), but the
//! unread tail of a datagram taken into a short buffer is kept rather than
//! truncated as the kernel would.

use super::{Kernel, RecvMeta};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, Weak};

/// What one fd has left over.
#[derive(Default)]
struct Leftover {
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

/// Run `f` on `fd`'s leftovers (created empty), keeping the entry count.
fn with_entry<R>(kernel: &dyn Kernel, fd: RawFd, f: impl FnOnce(&mut Leftover) -> R) -> R {
    let mut store = store();
    let key = key(kernel, fd);
    let existed = store.contains_key(&key);
    let entry = store.entry(key).or_default();
    let result = f(entry);
    let empty = entry.is_empty();
    if empty {
        store.remove(&key);
    }
    match (existed, empty) {
        (false, false) => {
            ENTRIES.fetch_add(1, Ordering::SeqCst);
        }
        (true, true) => {
            ENTRIES.fetch_sub(1, Ordering::SeqCst);
        }
        _ => {}
    }
    result
}

/// Whether `fd` has anything kept (bytes, connections or messages): an op
/// waiting for `fd` to become readable can finish with it instead.
pub(crate) fn has_any(kernel: &dyn Kernel, fd: RawFd) -> bool {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return false;
    }
    store()
        .get(&key(kernel, fd))
        .is_some_and(|left| !left.is_empty())
}

/// Keep `bytes` a discarded recv on `fd` received.
pub(crate) fn stash_bytes(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    KEPT.fetch_add(1, Ordering::SeqCst);
    with_entry(kernel, fd, |left| left.bytes.push_back(bytes.to_vec()));
}

/// Put back, in front of everything kept for `fd`, bytes an op took from
/// here ([`take_bytes`]) and then nobody got (its future was dropped
/// before taking them): they came before whatever is kept now.
pub(crate) fn put_back_bytes(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    with_entry(kernel, fd, |left| left.bytes.push_front(bytes.to_vec()));
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
    with_entry(kernel, fd, |left| {
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

/// Keep a connection a discarded accept on listening socket `fd` accepted.
pub(crate) fn stash_conn(kernel: &dyn Kernel, fd: RawFd, conn: (RawFd, SocketAddr)) {
    KEPT.fetch_add(1, Ordering::SeqCst);
    with_entry(kernel, fd, |left| left.conns.push_back(conn));
}

/// Put back, first in line, a connection an accept took from here
/// ([`take_conn`]) and then nobody got.
pub(crate) fn put_back_conn(kernel: &dyn Kernel, fd: RawFd, conn: (RawFd, SocketAddr)) {
    with_entry(kernel, fd, |left| left.conns.push_front(conn));
}

/// The oldest kept connection of listening socket `fd`.
pub(crate) fn take_conn(kernel: &dyn Kernel, fd: RawFd) -> Option<(RawFd, SocketAddr)> {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return None;
    }
    with_entry(kernel, fd, |left| left.conns.pop_front())
}

/// Keep a message (its bytes, sender and passed fds) a discarded `recvmsg`
/// on `fd` received.
pub(crate) fn stash_msg(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8], meta: RecvMeta) {
    KEPT.fetch_add(1, Ordering::SeqCst);
    with_entry(kernel, fd, |left| {
        left.msgs.push_back((bytes.to_vec(), meta))
    });
}

/// Put back, first in line, a message a `recvmsg` took from here
/// ([`take_msg`], or bytes from [`take_bytes`]) and then nobody got.
pub(crate) fn put_back_msg(kernel: &dyn Kernel, fd: RawFd, bytes: &[u8], meta: RecvMeta) {
    with_entry(kernel, fd, |left| {
        left.msgs.push_front((bytes.to_vec(), meta))
    });
}

/// The oldest kept message of `fd`, copied into `buf`. A datagram (one with
/// a sender) is taken whole: a tail that does not fit is cut and reported
/// `truncated`, as the kernel would; a stream message's tail stays kept
/// (without its fds, which go with the first byte).
pub(crate) fn take_msg(kernel: &dyn Kernel, fd: RawFd, buf: &mut [u8]) -> Option<RecvMeta> {
    if ENTRIES.load(Ordering::SeqCst) == 0 {
        return None;
    }
    with_entry(kernel, fd, |left| {
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
    let left = with_entry(kernel, fd, std::mem::take);
    for (conn, _) in left.conns {
        let _ = kernel.close(conn);
    }
    for passed in left.msgs.into_iter().flat_map(|(_, meta)| meta.fds) {
        let _ = kernel.close(passed);
    }
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

    #[test]
    fn bytes_come_back_in_order_and_peek_keeps_them() {
        let kernel = sim::new_kernel(SimOptions::new(7)).unwrap();
        let k: &dyn Kernel = &*kernel;
        stash_bytes(k, 5, b"hello");
        stash_bytes(k, 5, b" world");
        let mut buf = [0u8; 3];
        assert_eq!(take_bytes(k, 5, &mut buf, true), Some(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(take_bytes(k, 5, &mut buf, false), Some(3));
        assert_eq!(&buf, b"hel");
        let mut rest = [0u8; 64];
        assert_eq!(take_bytes(k, 5, &mut rest, false), Some(2));
        assert_eq!(&rest[..2], b"lo");
        assert_eq!(take_bytes(k, 5, &mut rest, false), Some(6));
        assert_eq!(&rest[..6], b" world");
        assert_eq!(take_bytes(k, 5, &mut rest, false), None);
        // Another fd table never sees them.
        let other = sim::new_kernel(SimOptions::new(7)).unwrap();
        stash_bytes(k, 6, b"x");
        assert_eq!(take_bytes(&*other, 6, &mut rest, false), None);
        forget(k, 6);
        assert_eq!(take_bytes(k, 6, &mut rest, false), None);
    }
}
