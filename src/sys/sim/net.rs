//! [`SimNet`]: simulated loopback TCP sockets and pipes.
//!
//! Owns the *state* of every simulated socket and pipe: bound addresses and
//! the ephemeral port cursor, listen queues, one receive buffer per
//! direction of a connection, shutdown and reset flags, pending errors, and
//! the readiness they imply. It does not own fds, fault injection, latency,
//! the random stream, wakeups or tracing: `kernel.rs` maps fds to
//! [`SocketId`]s and [`PipeId`]s, injects faults before calling in and turns
//! readiness into wakeups. Code here may not touch the file system, the
//! scheduler or the shared run state; every method is a deterministic
//! function of this struct (all maps are `BTreeMap`s, nothing is hashed).
//!
//! Nothing blocks: where Linux would block, a call returns `EAGAIN`, as on a
//! non-blocking fd. Unknown (or closed) ids give `EBADF`; readiness of an
//! unknown id is `true` (Linux `POLLNVAL` counts as ready), so the next call
//! reports the `EBADF`.
//!
//! # Addresses and ports
//!
//! * Only 127.0.0.0/8, `::1` and the unspecified addresses can be bound;
//!   anything else is `EADDRNOTAVAIL` (IPv4-mapped IPv6 addresses included:
//!   not simulated). An IPv4 socket given an IPv6 address gets
//!   `EAFNOSUPPORT`, an IPv6 socket given an IPv4 address `EINVAL`, as with
//!   the lengths the real seam passes to Linux.
//! * Port 0 (and the autobind of `listen` and `connect`) takes the next
//!   port from a rolling cursor over [`EPHEMERAL_FIRST_PORT`]`..=`
//!   [`EPHEMERAL_LAST_PORT`], skipping ports any live socket uses; the cursor
//!   starts at 40000 and never depends on anything but the call sequence.
//!   Exhaustion: `EADDRINUSE` from `bind`/`listen`, `EADDRNOTAVAIL` from
//!   `connect`.
//! * Two bindings of one port clash when their addresses are equal or one is
//!   the unspecified address of the same family; `[::]` is dual-stack (Linux
//!   default `bindv6only=0`), so it clashes with every IPv4 binding of the
//!   port, while `::1` clashes with none. Every socket that was bound (by
//!   `bind` or autobind), listening or not, holds its port until
//!   `close_socket`; accepted sockets do not (as if `SO_REUSEADDR` were on,
//!   which the kernel layer accepts and ignores). Binding a bound socket is
//!   `EINVAL`. Ports below 1024 are allowed (the sim runs as root).
//!
//! # Connections
//!
//! * `connect` completes at once: it creates the server-side socket, queues
//!   it on the listener and returns `Ok(())`. The destination `0.0.0.0`/`::`
//!   means loopback (Linux does the same); a destination outside loopback is
//!   `ENETUNREACH` (the simulated host has no other network). The listener
//!   bound to the exact address wins over one on the unspecified address; a
//!   `[::]` listener also takes IPv4 connections, with IPv4-mapped
//!   addresses on its side. No listener: `ECONNREFUSED`, and the socket stays
//!   unbound. An unbound client gets `127.0.0.1` (`::1`) and an ephemeral
//!   port; one bound to the unspecified address keeps its port and gets the
//!   loopback address. A listening or (ever) connected socket: `EISCONN`.
//! * Backlog: like Linux, `listen(n)` admits `n + 1` unaccepted connections
//!   (`n` clamped to [`SOMAXCONN`], a negative `n` meaning [`SOMAXCONN`]).
//!   *Simplification:* one more is refused with `ECONNREFUSED`, where Linux
//!   drops the SYN and the client keeps retrying. `listen` again changes the
//!   backlog; `listen` on a connected socket is `EINVAL`; on an unbound one
//!   it autobinds the unspecified address.
//! * `accept` on a socket that is not listening: `EINVAL`; empty: `EAGAIN`.
//!
//! # Data, shutdown, close and reset (Linux's order of checks)
//!
//! * Each direction is one receive buffer of [`STREAM_BUFFER_BYTES`] on the
//!   receiving side. `send` copies what fits (short), `EAGAIN` if nothing
//!   does; zero bytes on a live connection is `Ok(0)`.
//! * `recv`: buffered data first (peek leaves it); then end of stream
//!   (`Ok(0)`) once the peer shut down writing or closed; then a pending
//!   error (reported once); then `Ok(0)` after our own `Shutdown::Read` or a
//!   reset; else `EAGAIN`. Not connected (listening included): `ENOTCONN`.
//! * `send`: a pending error (reported once); then `EPIPE` after our own
//!   `Shutdown::Write`, after a reset, or once both directions are shut down;
//!   else data. Not connected (listening included): `EPIPE`, as Linux does
//!   for TCP, not `ENOTCONN`.
//! * `Shutdown::Read` only makes an empty `recv` return `Ok(0)`: as on
//!   Linux, the peer's sends still succeed and their data is still read.
//!   `Shutdown::Write` gives the peer end of stream after it drains.
//!   `shutdown` of an unconnected socket, or of a connection that is already
//!   closed (reset, or both directions shut down): `ENOTCONN`. On a listener,
//!   `Write` does nothing and `Read`/`Both` stop listening (pending
//!   connections are reset; the socket keeps its address and can listen
//!   again). `peer_addr` of such a closed connection is `ENOTCONN` too.
//! * `close_socket` with unread data in our receive buffer sends a reset;
//!   otherwise the peer sees end of stream. Either way the peer's buffered
//!   data stays readable. After a clean close the peer's *first* non-empty
//!   send is accepted and discarded (the orphaned socket answers with a
//!   reset, as on loopback Linux); later sends fail.
//! * A reset stores a one-shot error on the receiving socket: `ECONNRESET`,
//!   or `EPIPE` if that socket had already seen end of stream (Linux
//!   `CLOSE_WAIT`), or none if both directions were already shut down. It
//!   is reported by the next `send`, or by the next `recv` that finds no data
//!   and no end of stream; after it, `recv` gives `Ok(0)` and `send` `EPIPE`.
//! * Closing a listener resets its unaccepted connections: their clients
//!   see `ECONNRESET` once, then `Ok(0)`/`EPIPE`.
//!
//! # Readiness (what `poll` reports on Linux)
//!
//! * Unconnected, non-listening socket: ready for both interests (Linux
//!   reports `POLLOUT|POLLHUP`), so the next call reports its error.
//! * Listener: readable while a connection is pending; never writable.
//! * Connection: readable with data, after end of stream, our
//!   `Shutdown::Read`, a reset, or with an error pending; writable with room
//!   in the peer's buffer (always, once the peer is closed), after our
//!   `Shutdown::Write`, a reset, or with an error pending.
//!
//! # Pipes
//!
//! [`PIPE_CAPACITY_BYTES`] of buffer. `pipe_read`: data, else `EAGAIN`
//! while the write end is open, else `Ok(0)`. `pipe_write`: `EPIPE` once the
//! read end is closed; writes of at most [`PIPE_ATOMIC_BYTES`] are
//! all-or-nothing (`EAGAIN` if they do not fit, POSIX `PIPE_BUF`); larger
//! ones write what fits, `EAGAIN` if nothing does. Zero-byte reads and
//! writes return `Ok(0)` at once. The read end is readable with data or once
//! the write end is closed, and ready for any interest after that (`POLLHUP`);
//! the write end is writable with [`PIPE_ATOMIC_BYTES`] of room (Linux
//! frees space a page at a time) and ready for any interest once the read
//! end is closed (`POLLERR`). Using a closed end is `EBADF`.
//!
//! [`SimNet::reset_all`] (power loss) drops every socket and pipe and
//! restarts the port cursor; ids keep counting up, so stale ids stay
//! `EBADF` rather than naming new objects.

use crate::sys::{Errno, Interest, Shutdown, SysResult};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Names one simulated socket (the fd table maps fds to it).
pub(crate) type SocketId = u64;
/// Names one simulated pipe (both of its ends).
pub(crate) type PipeId = u64;

/// Receive buffer of each direction of a stream connection.
pub(crate) const STREAM_BUFFER_BYTES: usize = 256 * 1024;
/// Bytes a pipe holds (Linux default: 16 pages).
pub(crate) const PIPE_CAPACITY_BYTES: usize = 64 * 1024;
/// Pipe writes up to this size are all-or-nothing (POSIX `PIPE_BUF`).
pub(crate) const PIPE_ATOMIC_BYTES: usize = 4096;
/// First port of the ephemeral range (where the cursor starts).
pub(crate) const EPHEMERAL_FIRST_PORT: u16 = 40_000;
/// Last port of the ephemeral range (Linux's default upper bound).
pub(crate) const EPHEMERAL_LAST_PORT: u16 = 60_999;
/// Largest listen backlog (Linux `net.core.somaxconn` default).
pub(crate) const SOMAXCONN: usize = 4096;

pub(crate) const EISCONN: Errno = Errno(libc::EISCONN);
const EAFNOSUPPORT: Errno = Errno(libc::EAFNOSUPPORT);

/// Loopback TCP sockets and pipes; see the module docs for the model.
#[derive(Debug)]
pub(crate) struct SimNet {
    sockets: BTreeMap<SocketId, Socket>,
    pipes: BTreeMap<PipeId, Pipe>,
    next_socket: SocketId,
    next_pipe: PipeId,
    /// Where the next ephemeral port search starts.
    next_port: u16,
}

#[derive(Debug)]
struct Socket {
    v6: bool,
    local: Option<SocketAddr>,
    /// Bound by `bind` or autobind (accepted sockets share their
    /// listener's port without holding it).
    holds_port: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Never connected, not listening (bound or not).
    Idle,
    Listening {
        /// Most unaccepted connections (`backlog + 1`).
        pending_max: usize,
        pending: VecDeque<SocketId>,
    },
    Connected(Conn),
}

/// One end of an established connection.
#[derive(Debug)]
struct Conn {
    /// The other end; `None` once that socket is gone.
    peer: Option<SocketId>,
    peer_addr: SocketAddr,
    /// Bytes the peer sent that we have not read.
    rx: VecDeque<u8>,
    /// The peer shut down writing or closed (Linux: FIN received).
    fin_received: bool,
    read_shut: bool,
    write_shut: bool,
    /// Killed by a reset (Linux `TCP_CLOSE` after RST).
    reset: bool,
    /// One-shot error (`SO_ERROR`), reported by the next send or recv.
    error: Option<Errno>,
}

#[derive(Debug)]
struct Pipe {
    data: VecDeque<u8>,
    reader_open: bool,
    writer_open: bool,
}

impl Conn {
    fn new(peer: SocketId, peer_addr: SocketAddr) -> Conn {
        Conn {
            peer: Some(peer),
            peer_addr,
            rx: VecDeque::new(),
            fin_received: false,
            read_shut: false,
            write_shut: false,
            reset: false,
            error: None,
        }
    }

    /// Linux `TCP_CLOSE`: reset, or both directions finished.
    fn closed(&self) -> bool {
        self.reset || (self.fin_received && self.write_shut)
    }

    /// A reset arrives (Linux `tcp_reset`).
    fn take_reset(&mut self) {
        if !self.closed() {
            let errno = if self.fin_received {
                Errno::EPIPE
            } else {
                Errno::ECONNRESET
            };
            self.error = Some(errno);
        }
        self.reset = true;
        self.peer = None;
    }

    fn recv(&mut self, buf: &mut [u8], peek: bool) -> SysResult<usize> {
        if !self.rx.is_empty() {
            return Ok(copy_out(&mut self.rx, buf, peek));
        }
        if self.fin_received {
            return Ok(0);
        }
        if let Some(errno) = self.error.take() {
            return Err(errno);
        }
        if self.read_shut || self.reset {
            Ok(0)
        } else {
            Err(Errno::EAGAIN)
        }
    }

    /// Apply `how`; returns the peer that must now see end of stream.
    fn shut(&mut self, how: Shutdown) -> Option<SocketId> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) && !self.write_shut {
            self.write_shut = true;
            return self.peer;
        }
        None
    }

    fn readable(&self) -> bool {
        !self.rx.is_empty()
            || self.fin_received
            || self.read_shut
            || self.reset
            || self.error.is_some()
    }

    fn writable(&self, peer_has_room: bool) -> bool {
        peer_has_room || self.write_shut || self.reset || self.error.is_some()
    }
}

/// Copy the front of `queue` into `buf`; consume it unless `peek`.
fn copy_out(queue: &mut VecDeque<u8>, buf: &mut [u8], peek: bool) -> usize {
    let n = buf.len().min(queue.len());
    let (front, back) = queue.as_slices();
    let from_front = n.min(front.len());
    buf[..from_front].copy_from_slice(&front[..from_front]);
    buf[from_front..n].copy_from_slice(&back[..n - from_front]);
    if !peek {
        queue.drain(..n);
    }
    n
}

/// Append what fits of non-empty `data`; `EAGAIN` if nothing does.
fn push_in(queue: &mut VecDeque<u8>, data: &[u8], capacity_bytes: usize) -> SysResult<usize> {
    let n = capacity_bytes.saturating_sub(queue.len()).min(data.len());
    if n == 0 {
        return Err(Errno::EAGAIN);
    }
    queue.extend(&data[..n]);
    Ok(n)
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    }
}

fn loopback(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    }
}

/// The errno Linux gives for an address of the other family.
fn check_family(v6: bool, addr: &SocketAddr) -> SysResult<()> {
    match (v6, addr) {
        (false, SocketAddr::V6(_)) => Err(EAFNOSUPPORT),
        (true, SocketAddr::V4(_)) => Err(Errno::EINVAL),
        _ => Ok(()),
    }
}

/// Whether bindings of one port on `a` and `b` clash.
fn ips_clash(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V6(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V4(_)) | (IpAddr::V4(_), IpAddr::V6(x)) => x.is_unspecified(),
    }
}

/// Where a connect to `addr` goes: loopback only.
fn loopback_destination(addr: &SocketAddr) -> SysResult<SocketAddr> {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => loopback(addr.is_ipv6()),
        ip if ip.is_loopback() => ip,
        _ => return Err(Errno::ENETUNREACH),
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// How well a listener bound to `local` matches `dest` (higher wins).
fn listen_rank(local: SocketAddr, dest: SocketAddr) -> Option<u8> {
    if local.port() != dest.port() {
        return None;
    }
    match (local.ip(), dest.ip()) {
        (l, d) if l == d => Some(2),
        (IpAddr::V4(l), IpAddr::V4(_)) if l.is_unspecified() => Some(1),
        (IpAddr::V6(l), IpAddr::V6(_)) if l.is_unspecified() => Some(1),
        (IpAddr::V6(l), IpAddr::V4(_)) if l.is_unspecified() => Some(0),
        _ => None,
    }
}

/// `addr` as a socket of the given family sees it (IPv4-mapped on IPv6).
fn in_family(addr: SocketAddr, v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if v6 => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
        _ => addr,
    }
}

/// Unaccepted connections `listen(backlog)` admits.
fn pending_max(backlog: i32) -> usize {
    usize::try_from(backlog).map_or(SOMAXCONN, |b| b.min(SOMAXCONN)) + 1
}

impl SimNet {
    /// No sockets, no pipes, the port cursor at [`EPHEMERAL_FIRST_PORT`].
    pub(crate) fn new() -> SimNet {
        SimNet {
            sockets: BTreeMap::new(),
            pipes: BTreeMap::new(),
            next_socket: 1,
            next_pipe: 1,
            next_port: EPHEMERAL_FIRST_PORT,
        }
    }

    /// A new unbound stream socket of the family of `like`.
    pub(crate) fn socket(&mut self, like: &SocketAddr) -> SocketId {
        self.insert_socket(Socket {
            v6: like.is_ipv6(),
            local: None,
            holds_port: false,
            state: State::Idle,
        })
    }

    /// Two connected stream sockets that hold no port: the two ends of a
    /// Unix stream connection (`socketpair`, or `connect` to a Unix
    /// listener). Their IP addresses are placeholders nobody reads: the
    /// kernel layer answers address queries on Unix sockets itself.
    pub(crate) fn pair(&mut self) -> (SocketId, SocketId) {
        let unnamed = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let first = self.next_socket;
        let second = first + 1;
        for (me, peer) in [(first, second), (second, first)] {
            self.insert_socket(Socket {
                v6: false,
                local: None,
                holds_port: false,
                state: State::Connected(Conn::new(peer, unnamed)),
            });
            debug_assert!(self.sockets.contains_key(&me));
        }
        (first, second)
    }

    fn insert_socket(&mut self, socket: Socket) -> SocketId {
        let id = self.next_socket;
        self.next_socket += 1;
        self.sockets.insert(id, socket);
        id
    }

    fn sock(&self, s: SocketId) -> SysResult<&Socket> {
        self.sockets.get(&s).ok_or(Errno::EBADF)
    }

    fn sock_mut(&mut self, s: SocketId) -> SysResult<&mut Socket> {
        self.sockets.get_mut(&s).ok_or(Errno::EBADF)
    }

    fn conn(&self, s: SocketId) -> Option<&Conn> {
        match self.sockets.get(&s) {
            Some(Socket {
                state: State::Connected(c),
                ..
            }) => Some(c),
            _ => None,
        }
    }

    fn conn_mut(&mut self, s: SocketId) -> Option<&mut Conn> {
        match self.sockets.get_mut(&s) {
            Some(Socket {
                state: State::Connected(c),
                ..
            }) => Some(c),
            _ => None,
        }
    }

    fn set_local(&mut self, s: SocketId, addr: SocketAddr) {
        if let Some(sock) = self.sockets.get_mut(&s) {
            sock.local = Some(addr);
            sock.holds_port = true;
        }
    }

    /// The next port from the cursor that no live socket uses.
    fn ephemeral_port(&mut self) -> Option<u16> {
        let used: BTreeSet<u16> = self
            .sockets
            .values()
            .filter_map(|s| s.local)
            .map(|a| a.port())
            .collect();
        let mut candidates =
            (self.next_port..=EPHEMERAL_LAST_PORT).chain(EPHEMERAL_FIRST_PORT..self.next_port);
        let port = candidates.find(|p| !used.contains(p))?;
        self.next_port = if port == EPHEMERAL_LAST_PORT {
            EPHEMERAL_FIRST_PORT
        } else {
            port + 1
        };
        Some(port)
    }

    fn port_taken(&self, ip: IpAddr, port: u16) -> bool {
        self.sockets
            .values()
            .filter(|s| s.holds_port)
            .filter_map(|s| s.local)
            .any(|a| a.port() == port && ips_clash(a.ip(), ip))
    }

    /// `bind(2)`.
    pub(crate) fn bind(&mut self, s: SocketId, addr: &SocketAddr) -> SysResult<()> {
        let sock = self.sock(s)?;
        check_family(sock.v6, addr)?;
        let ip = addr.ip();
        if !(ip.is_loopback() || ip.is_unspecified()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if sock.local.is_some() {
            return Err(Errno::EINVAL);
        }
        let port = match addr.port() {
            0 => self.ephemeral_port().ok_or(Errno::EADDRINUSE)?,
            p if self.port_taken(ip, p) => return Err(Errno::EADDRINUSE),
            p => p,
        };
        self.set_local(s, SocketAddr::new(ip, port));
        Ok(())
    }

    /// `listen(2)`.
    pub(crate) fn listen(&mut self, s: SocketId, backlog: i32) -> SysResult<()> {
        let sock = self.sock(s)?;
        if matches!(sock.state, State::Connected(_)) {
            return Err(Errno::EINVAL);
        }
        if sock.local.is_none() {
            let ip = unspecified(sock.v6);
            let port = self.ephemeral_port().ok_or(Errno::EADDRINUSE)?;
            self.set_local(s, SocketAddr::new(ip, port));
        }
        let max = pending_max(backlog);
        match &mut self.sock_mut(s)?.state {
            State::Listening { pending_max, .. } => *pending_max = max,
            state => {
                *state = State::Listening {
                    pending_max: max,
                    pending: VecDeque::new(),
                }
            }
        }
        Ok(())
    }

    /// `accept(2)`: the oldest pending connection and its peer's address.
    pub(crate) fn accept(&mut self, s: SocketId) -> SysResult<(SocketId, SocketAddr)> {
        let State::Listening { pending, .. } = &mut self.sock_mut(s)?.state else {
            return Err(Errno::EINVAL);
        };
        let server = pending.pop_front().ok_or(Errno::EAGAIN)?;
        match self.conn(server) {
            Some(c) => Ok((server, c.peer_addr)),
            None => Err(Errno::ECONNABORTED),
        }
    }

    /// `connect(2)`: completes at once (see the module docs).
    pub(crate) fn connect(&mut self, s: SocketId, addr: &SocketAddr) -> SysResult<()> {
        let sock = self.sock(s)?;
        check_family(sock.v6, addr)?;
        if !matches!(sock.state, State::Idle) {
            return Err(EISCONN);
        }
        let dest = loopback_destination(addr)?;
        let listener = self.find_listener(dest).ok_or(Errno::ECONNREFUSED)?;
        let local = self.client_local(s)?;
        let server = self.queue_connection(listener, dest, s, local);
        if let Some(sock) = self.sockets.get_mut(&s) {
            sock.state = State::Connected(Conn::new(server, dest));
        }
        Ok(())
    }

    /// The best listener for `dest` that still has room in its queue.
    fn find_listener(&self, dest: SocketAddr) -> Option<SocketId> {
        let (_, id, has_room) = self
            .sockets
            .iter()
            .filter_map(|(id, sock)| match &sock.state {
                State::Listening {
                    pending_max,
                    pending,
                } => {
                    let rank = listen_rank(sock.local?, dest)?;
                    Some((rank, *id, pending.len() < *pending_max))
                }
                _ => None,
            })
            .max_by_key(|(rank, _, _)| *rank)?;
        has_room.then_some(id)
    }

    /// Bind a connecting socket: loopback address, ephemeral port if none.
    fn client_local(&mut self, s: SocketId) -> SysResult<SocketAddr> {
        let sock = self.sock(s)?;
        let (v6, bound) = (sock.v6, sock.local);
        let local = match bound {
            Some(a) if a.ip().is_unspecified() => SocketAddr::new(loopback(v6), a.port()),
            Some(a) => a,
            None => {
                let port = self.ephemeral_port().ok_or(Errno::EADDRNOTAVAIL)?;
                SocketAddr::new(loopback(v6), port)
            }
        };
        self.set_local(s, local);
        Ok(local)
    }

    /// Create the server side of `client`'s connection and queue it.
    fn queue_connection(
        &mut self,
        listener: SocketId,
        dest: SocketAddr,
        client: SocketId,
        client_addr: SocketAddr,
    ) -> SocketId {
        let v6 = self.sockets.get(&listener).is_some_and(|l| l.v6);
        let server = self.insert_socket(Socket {
            v6,
            local: Some(in_family(dest, v6)),
            holds_port: false,
            state: State::Connected(Conn::new(client, in_family(client_addr, v6))),
        });
        if let Some(Socket {
            state: State::Listening { pending, .. },
            ..
        }) = self.sockets.get_mut(&listener)
        {
            pending.push_back(server);
        }
        server
    }

    /// `getsockname(2)`: the unspecified address, port 0, if unbound.
    pub(crate) fn local_addr(&self, s: SocketId) -> SysResult<SocketAddr> {
        let sock = self.sock(s)?;
        Ok(sock
            .local
            .unwrap_or_else(|| SocketAddr::new(unspecified(sock.v6), 0)))
    }

    /// `getpeername(2)`.
    pub(crate) fn peer_addr(&self, s: SocketId) -> SysResult<SocketAddr> {
        match &self.sock(s)?.state {
            State::Connected(c) if !c.closed() => Ok(c.peer_addr),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// `recv(2)`; `peek` leaves the data queued (`MSG_PEEK`).
    pub(crate) fn recv(&mut self, s: SocketId, buf: &mut [u8], peek: bool) -> SysResult<usize> {
        match &mut self.sock_mut(s)?.state {
            State::Connected(c) => c.recv(buf, peek),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// `send(2)` (never `SIGPIPE`).
    pub(crate) fn send(&mut self, s: SocketId, data: &[u8]) -> SysResult<usize> {
        let State::Connected(conn) = &mut self.sock_mut(s)?.state else {
            return Err(Errno::EPIPE);
        };
        if let Some(errno) = conn.error.take() {
            return Err(errno);
        }
        if conn.closed() || conn.write_shut {
            return Err(Errno::EPIPE);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let Some(peer) = conn.peer else {
            // The peer closed cleanly: its orphan takes this segment and
            // answers with a reset.
            conn.take_reset();
            return Ok(data.len().min(STREAM_BUFFER_BYTES));
        };
        match self.conn_mut(peer) {
            Some(p) => push_in(&mut p.rx, data, STREAM_BUFFER_BYTES),
            None => Err(Errno::EPIPE),
        }
    }

    /// `shutdown(2)`.
    pub(crate) fn shutdown(&mut self, s: SocketId, how: Shutdown) -> SysResult<()> {
        match &mut self.sock_mut(s)?.state {
            State::Idle => Err(Errno::ENOTCONN),
            State::Listening { .. } if how == Shutdown::Write => Ok(()),
            State::Listening { .. } => {
                self.stop_listening(s);
                Ok(())
            }
            State::Connected(c) if c.closed() => Err(Errno::ENOTCONN),
            State::Connected(c) => {
                let fin_to = c.shut(how);
                if let Some(peer) = fin_to.and_then(|p| self.conn_mut(p)) {
                    peer.fin_received = true;
                }
                Ok(())
            }
        }
    }

    /// Back to an idle (still bound) socket; pending connections are reset.
    fn stop_listening(&mut self, s: SocketId) {
        let Some(sock) = self.sockets.get_mut(&s) else {
            return;
        };
        if let State::Listening { pending, .. } = std::mem::replace(&mut sock.state, State::Idle) {
            for server in pending {
                self.abort(server);
            }
        }
    }

    /// Drop an unaccepted server socket, resetting its client.
    fn abort(&mut self, server: SocketId) {
        if let Some(Socket {
            state: State::Connected(c),
            ..
        }) = self.sockets.remove(&server)
        {
            if let Some(client) = c.peer.and_then(|p| self.conn_mut(p)) {
                client.take_reset();
            }
        }
    }

    /// `close(2)` of the socket's last fd; unknown ids are ignored.
    pub(crate) fn close_socket(&mut self, s: SocketId) {
        let Some(sock) = self.sockets.remove(&s) else {
            return;
        };
        match sock.state {
            State::Idle => {}
            State::Listening { pending, .. } => {
                for server in pending {
                    self.abort(server);
                }
            }
            State::Connected(conn) => self.hang_up(&conn),
        }
    }

    /// A Unix stream end whose peer closed cleanly: Linux fails its sends
    /// with `EPIPE` at once (no orphaned socket accepts one first, as
    /// TCP's does), while reads still drain, then see end of stream.
    pub(crate) fn unix_peer_closed(&mut self, s: SocketId) {
        if let Some(conn) = self.conn_mut(s) {
            if conn.error.is_none() && conn.peer.is_none() {
                conn.reset = true;
            }
        }
    }

    /// Tell the peer of a closing connection: reset if `conn` left data
    /// unread, else end of stream.
    fn hang_up(&mut self, conn: &Conn) {
        let Some(peer) = conn.peer.and_then(|p| self.conn_mut(p)) else {
            return;
        };
        if conn.rx.is_empty() {
            peer.fin_received = true;
            peer.peer = None;
        } else {
            peer.take_reset();
        }
    }

    /// Socket `s` will read end of stream (or an error) once its bytes are
    /// taken: the peer's FIN arrived, its read side is shut, or it failed.
    pub(crate) fn socket_hung_up(&self, s: SocketId) -> bool {
        match self.sockets.get(&s).map(|sock| &sock.state) {
            Some(State::Connected(c)) => {
                c.fin_received || c.read_shut || c.reset || c.error.is_some()
            }
            _ => false,
        }
    }

    /// Whether a call waiting for `interest` would make progress (or
    /// report an error) now.
    pub(crate) fn socket_ready(&self, s: SocketId, interest: Interest) -> bool {
        let Some(sock) = self.sockets.get(&s) else {
            return true;
        };
        match (&sock.state, interest) {
            (State::Idle, _) => true,
            (State::Listening { pending, .. }, Interest::Readable) => !pending.is_empty(),
            (State::Listening { .. }, Interest::Writable) => false,
            (State::Connected(c), Interest::Readable) => c.readable(),
            (State::Connected(c), Interest::Writable) => c.writable(self.peer_has_room(c)),
        }
    }

    fn peer_has_room(&self, conn: &Conn) -> bool {
        match conn.peer {
            None => true,
            Some(p) => self
                .conn(p)
                .is_some_and(|peer| peer.rx.len() < STREAM_BUFFER_BYTES),
        }
    }

    /// A new pipe with both ends open.
    pub(crate) fn pipe(&mut self) -> PipeId {
        let id = self.next_pipe;
        self.next_pipe += 1;
        let pipe = Pipe {
            data: VecDeque::new(),
            reader_open: true,
            writer_open: true,
        };
        self.pipes.insert(id, pipe);
        id
    }

    /// `read(2)` on the read end.
    pub(crate) fn pipe_read(&mut self, p: PipeId, buf: &mut [u8]) -> SysResult<usize> {
        let pipe = self.pipes.get_mut(&p).filter(|pipe| pipe.reader_open);
        let pipe = pipe.ok_or(Errno::EBADF)?;
        if buf.is_empty() {
            return Ok(0);
        }
        if !pipe.data.is_empty() {
            return Ok(copy_out(&mut pipe.data, buf, false));
        }
        if pipe.writer_open {
            Err(Errno::EAGAIN)
        } else {
            Ok(0)
        }
    }

    /// `write(2)` on the write end (never `SIGPIPE`).
    pub(crate) fn pipe_write(&mut self, p: PipeId, data: &[u8]) -> SysResult<usize> {
        let pipe = self.pipes.get_mut(&p).filter(|pipe| pipe.writer_open);
        let pipe = pipe.ok_or(Errno::EBADF)?;
        if data.is_empty() {
            return Ok(0);
        }
        if !pipe.reader_open {
            return Err(Errno::EPIPE);
        }
        let room_bytes = PIPE_CAPACITY_BYTES.saturating_sub(pipe.data.len());
        if data.len() <= PIPE_ATOMIC_BYTES && data.len() > room_bytes {
            return Err(Errno::EAGAIN);
        }
        push_in(&mut pipe.data, data, PIPE_CAPACITY_BYTES)
    }

    /// `close(2)` of one end; the pipe is gone once both ends are.
    pub(crate) fn close_pipe_end(&mut self, p: PipeId, write_end: bool) {
        let Some(pipe) = self.pipes.get_mut(&p) else {
            return;
        };
        if write_end {
            pipe.writer_open = false;
        } else {
            pipe.reader_open = false;
            pipe.data.clear();
        }
        if !pipe.reader_open && !pipe.writer_open {
            self.pipes.remove(&p);
        }
    }

    /// The other end of pipe `p` is closed (what a poller flags as a
    /// hang-up on this end).
    pub(crate) fn pipe_hung_up(&self, p: PipeId, write_end: bool) -> bool {
        self.pipes.get(&p).is_some_and(|pipe| match write_end {
            true => !pipe.reader_open,
            false => !pipe.writer_open,
        })
    }

    /// Readiness of one end of a pipe (see the module docs).
    pub(crate) fn pipe_ready(&self, p: PipeId, write_end: bool, interest: Interest) -> bool {
        let Some(pipe) = self.pipes.get(&p) else {
            return true;
        };
        if write_end {
            let room_bytes = PIPE_CAPACITY_BYTES.saturating_sub(pipe.data.len());
            let has_room = interest == Interest::Writable && room_bytes >= PIPE_ATOMIC_BYTES;
            !pipe.writer_open || !pipe.reader_open || has_room
        } else {
            let has_data = interest == Interest::Readable && !pipe.data.is_empty();
            !pipe.reader_open || !pipe.writer_open || has_data
        }
    }

    /// Power loss: every socket and pipe is gone, the port cursor restarts.
    pub(crate) fn reset_all(&mut self) {
        self.sockets.clear();
        self.pipes.clear();
        self.next_port = EPHEMERAL_FIRST_PORT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_ANY_PORT: &str = "127.0.0.1:0";
    const V6_ANY_PORT: &str = "[::1]:0";

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    /// A listener on `bind_to`: `(net, listener, its address)`.
    fn listening(net: &mut SimNet, bind_to: &str, backlog: i32) -> (SocketId, SocketAddr) {
        let listener = net.socket(&addr(bind_to));
        net.bind(listener, &addr(bind_to)).expect("bind");
        net.listen(listener, backlog).expect("listen");
        let local = net.local_addr(listener).expect("local_addr");
        (listener, local)
    }

    /// `(net, listener, client, server)` over 127.0.0.1.
    fn connected() -> (SimNet, SocketId, SocketId, SocketId) {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, V4_ANY_PORT, 16);
        let client = net.socket(&at);
        net.connect(client, &at).expect("connect");
        let (server, _) = net.accept(listener).expect("accept");
        (net, listener, client, server)
    }

    fn recv_all(net: &mut SimNet, s: SocketId) -> SysResult<Vec<u8>> {
        let mut buf = vec![0u8; 2 * STREAM_BUFFER_BYTES];
        let n = net.recv(s, &mut buf, false)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn ready(net: &SimNet, s: SocketId) -> (bool, bool) {
        (
            net.socket_ready(s, Interest::Readable),
            net.socket_ready(s, Interest::Writable),
        )
    }

    fn handshake(bind_to: &str, loopback_ip: &str) {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, bind_to, 4);
        assert_eq!(at, addr(&format!("{loopback_ip}:40000")));
        let client = net.socket(&at);
        assert_eq!(net.peer_addr(client), Err(Errno::ENOTCONN));
        assert_eq!(net.connect(client, &at), Ok(()));
        let client_addr = net.local_addr(client).expect("client addr");
        assert_eq!(client_addr, addr(&format!("{loopback_ip}:40001")));
        assert_eq!(net.peer_addr(client), Ok(at));
        let (server, peer) = net.accept(listener).expect("accept");
        assert_eq!(peer, client_addr);
        assert_eq!(net.local_addr(server), Ok(at));
        assert_eq!(net.peer_addr(server), Ok(client_addr));
        assert_eq!(net.accept(listener), Err(Errno::EAGAIN));
    }

    #[test]
    fn handshake_on_ipv4_loopback_with_port_0() {
        handshake(V4_ANY_PORT, "127.0.0.1");
    }

    #[test]
    fn handshake_on_ipv6_loopback_with_port_0() {
        handshake(V6_ANY_PORT, "[::1]");
    }

    #[test]
    fn accept_when_empty_or_not_listening() {
        let mut net = SimNet::new();
        let (listener, _) = listening(&mut net, V4_ANY_PORT, 4);
        assert_eq!(net.accept(listener), Err(Errno::EAGAIN));
        let idle = net.socket(&addr(V4_ANY_PORT));
        assert_eq!(net.accept(idle), Err(Errno::EINVAL));
        assert_eq!(net.accept(999), Err(Errno::EBADF));
    }

    #[test]
    fn connect_without_listener_is_refused_and_leaves_the_socket_unbound() {
        let mut net = SimNet::new();
        let client = net.socket(&addr(V4_ANY_PORT));
        let to = addr("127.0.0.1:5000");
        assert_eq!(net.connect(client, &to), Err(Errno::ECONNREFUSED));
        assert_eq!(net.local_addr(client), Ok(addr("0.0.0.0:0")));
        let bound_only = net.socket(&to);
        net.bind(bound_only, &to).expect("bind");
        assert_eq!(net.connect(client, &to), Err(Errno::ECONNREFUSED));
        let remote = addr("10.1.2.3:80");
        assert_eq!(net.connect(client, &remote), Err(Errno::ENETUNREACH));
        assert_eq!(
            net.connect(client, &addr("[::1]:80")),
            Err(Errno(libc::EAFNOSUPPORT))
        );
        assert_eq!(ready(&net, client), (true, true), "POLLOUT|POLLHUP");
    }

    #[test]
    fn bind_conflicts_are_eaddrinuse() {
        let mut net = SimNet::new();
        let (_, at) = listening(&mut net, "127.0.0.1:7000", 4);
        for clash in ["127.0.0.1:7000", "0.0.0.0:7000", "[::]:7000"] {
            let s = net.socket(&addr(clash));
            assert_eq!(net.bind(s, &addr(clash)), Err(Errno::EADDRINUSE), "{clash}");
        }
        for free in ["127.0.0.2:7000", "[::1]:7000", "127.0.0.1:7001"] {
            let s = net.socket(&addr(free));
            assert_eq!(net.bind(s, &addr(free)), Ok(()), "{free}");
        }
        let bound = net.socket(&at);
        net.bind(bound, &addr("127.0.0.9:7002")).expect("bind");
        let again = net.socket(&at);
        assert_eq!(
            net.bind(again, &addr("0.0.0.0:7002")),
            Err(Errno::EADDRINUSE)
        );
        net.close_socket(bound);
        assert_eq!(net.bind(again, &addr("0.0.0.0:7002")), Ok(()));
    }

    #[test]
    fn bind_errors() {
        let mut net = SimNet::new();
        let s = net.socket(&addr(V4_ANY_PORT));
        assert_eq!(net.bind(s, &addr("10.0.0.1:0")), Err(Errno::EADDRNOTAVAIL));
        assert_eq!(
            net.bind(s, &addr("[::1]:0")),
            Err(Errno(libc::EAFNOSUPPORT))
        );
        net.bind(s, &addr("127.0.0.5:0"))
            .expect("any 127/8 address");
        assert_eq!(net.bind(s, &addr(V4_ANY_PORT)), Err(Errno::EINVAL));
        let s6 = net.socket(&addr(V6_ANY_PORT));
        assert_eq!(net.bind(s6, &addr(V4_ANY_PORT)), Err(Errno::EINVAL));
        let mapped = addr("[::ffff:127.0.0.1]:0");
        assert_eq!(net.bind(s6, &mapped), Err(Errno::EADDRNOTAVAIL));
        assert_eq!(net.bind(99, &addr(V4_ANY_PORT)), Err(Errno::EBADF));
    }

    #[test]
    fn ephemeral_ports_skip_used_ones_deterministically() {
        let mut net = SimNet::new();
        let taken = net.socket(&addr(V4_ANY_PORT));
        net.bind(taken, &addr("127.0.0.1:40001")).expect("bind");
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                let s = net.socket(&addr(V4_ANY_PORT));
                net.bind(s, &addr(V4_ANY_PORT)).expect("bind");
                net.local_addr(s).expect("local").port()
            })
            .collect();
        assert_eq!(ports, [40000, 40002, 40003]);
        // listen autobinds the unspecified address.
        let (_, at) = {
            let s = net.socket(&addr(V6_ANY_PORT));
            net.listen(s, 1).expect("listen");
            (s, net.local_addr(s).expect("local"))
        };
        assert_eq!(at, addr("[::]:40004"));
    }

    #[test]
    fn backlog_admits_backlog_plus_one() {
        for (backlog, admitted) in [(0, 1), (1, 2), (3, 4)] {
            let mut net = SimNet::new();
            let (listener, at) = listening(&mut net, V4_ANY_PORT, backlog);
            for _ in 0..admitted {
                let c = net.socket(&at);
                assert_eq!(net.connect(c, &at), Ok(()));
            }
            let late = net.socket(&at);
            assert_eq!(net.connect(late, &at), Err(Errno::ECONNREFUSED));
            net.accept(listener).expect("accept");
            assert_eq!(net.connect(late, &at), Ok(()));
        }
    }

    #[test]
    fn unspecified_and_dual_stack_destinations() {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, "0.0.0.0:8000", 4);
        assert_eq!(at, addr("0.0.0.0:8000"));
        let c = net.socket(&at);
        net.connect(c, &addr("127.0.0.5:8000")).expect("connect");
        let (server, _) = net.accept(listener).expect("accept");
        assert_eq!(net.local_addr(server), Ok(addr("127.0.0.5:8000")));
        assert_eq!(net.local_addr(c), Ok(addr("127.0.0.1:40000")));
        let c2 = net.socket(&at);
        net.connect(c2, &addr("0.0.0.0:8000")).expect("connect");
        assert_eq!(net.peer_addr(c2), Ok(addr("127.0.0.1:8000")));

        let (listener6, _) = listening(&mut net, "[::]:9000", 4);
        let c4 = net.socket(&at);
        net.connect(c4, &addr("127.0.0.1:9000"))
            .expect("dual stack");
        let (server6, peer) = net.accept(listener6).expect("accept");
        assert_eq!(peer, addr("[::ffff:127.0.0.1]:40002"));
        assert_eq!(net.local_addr(server6), Ok(addr("[::ffff:127.0.0.1]:9000")));
        assert_eq!(net.peer_addr(c4), Ok(addr("127.0.0.1:9000")));
    }

    #[test]
    fn connect_state_errors() {
        let (mut net, listener, client, server) = connected();
        let at = net.local_addr(listener).expect("local");
        assert_eq!(net.connect(client, &at), Err(Errno(libc::EISCONN)));
        assert_eq!(net.connect(server, &at), Err(Errno(libc::EISCONN)));
        assert_eq!(net.connect(listener, &at), Err(Errno(libc::EISCONN)));
        assert_eq!(net.listen(client, 1), Err(Errno::EINVAL));
        assert_eq!(net.bind(server, &addr(V4_ANY_PORT)), Err(Errno::EINVAL));
        assert_eq!(net.listen(listener, 0), Ok(()), "listen again");
    }

    #[test]
    fn send_recv_roundtrip_and_peek() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.send(client, b"hello"), Ok(5));
        let mut buf = [0u8; 3];
        assert_eq!(net.recv(server, &mut buf, true), Ok(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(net.recv(server, &mut buf, false), Ok(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(recv_all(&mut net, server), Ok(b"lo".to_vec()));
        assert_eq!(net.recv(server, &mut buf, false), Err(Errno::EAGAIN));
        assert_eq!(net.recv(server, &mut [], false), Err(Errno::EAGAIN));
        assert_eq!(net.send(server, b"back"), Ok(4));
        assert_eq!(recv_all(&mut net, client), Ok(b"back".to_vec()));
        assert_eq!(net.send(client, b""), Ok(0));
    }

    #[test]
    fn full_buffer_gives_short_send_then_eagain() {
        let (mut net, _, client, server) = connected();
        let big = vec![7u8; STREAM_BUFFER_BYTES + 100];
        assert_eq!(net.send(client, &big[..100]), Ok(100));
        assert_eq!(net.send(client, &big), Ok(STREAM_BUFFER_BYTES - 100));
        assert_eq!(net.send(client, b"x"), Err(Errno::EAGAIN));
        assert_eq!(ready(&net, client), (false, false));
        let mut buf = [0u8; 10];
        assert_eq!(net.recv(server, &mut buf, false), Ok(10));
        assert_eq!(ready(&net, client), (false, true));
        assert_eq!(net.send(client, &big), Ok(10));
        let got = recv_all(&mut net, server).expect("recv");
        assert_eq!(got.len(), STREAM_BUFFER_BYTES);
    }

    #[test]
    fn end_of_stream_after_shutdown_write() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.send(client, b"last"), Ok(4));
        assert_eq!(net.shutdown(client, Shutdown::Write), Ok(()));
        assert_eq!(net.shutdown(client, Shutdown::Write), Ok(()), "again");
        assert_eq!(net.send(client, b"x"), Err(Errno::EPIPE));
        assert_eq!(net.send(client, b""), Err(Errno::EPIPE));
        assert_eq!(ready(&net, client), (false, true));
        assert_eq!(ready(&net, server), (true, true));
        assert_eq!(recv_all(&mut net, server), Ok(b"last".to_vec()));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        // The other direction still works.
        assert_eq!(net.send(server, b"reply"), Ok(5));
        assert_eq!(recv_all(&mut net, client), Ok(b"reply".to_vec()));
        // Both directions shut down: the connection is closed.
        assert_eq!(net.shutdown(server, Shutdown::Write), Ok(()));
        assert_eq!(recv_all(&mut net, client), Ok(Vec::new()));
        for s in [client, server] {
            assert_eq!(net.peer_addr(s), Err(Errno::ENOTCONN));
            assert_eq!(net.shutdown(s, Shutdown::Read), Err(Errno::ENOTCONN));
            assert_eq!(net.send(s, b"x"), Err(Errno::EPIPE));
            assert_eq!(ready(&net, s), (true, true));
        }
    }

    #[test]
    fn shutdown_read_gives_eof_but_data_still_arrives() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.shutdown(server, Shutdown::Read), Ok(()));
        assert_eq!(ready(&net, server), (true, true));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        assert_eq!(net.send(client, b"hi"), Ok(2));
        assert_eq!(recv_all(&mut net, server), Ok(b"hi".to_vec()));
        assert_eq!(net.peer_addr(server).map(|a| a.port()), Ok(40001));
    }

    #[test]
    fn end_of_stream_after_close_then_epipe() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.send(client, b"bye"), Ok(3));
        net.close_socket(client);
        assert_eq!(ready(&net, server), (true, true));
        assert_eq!(recv_all(&mut net, server), Ok(b"bye".to_vec()));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        assert!(net.peer_addr(server).is_ok(), "CLOSE_WAIT keeps the peer");
        // The closed peer's orphan swallows one segment, then resets.
        assert_eq!(net.send(server, b""), Ok(0));
        assert_eq!(net.send(server, b"lost"), Ok(4));
        assert_eq!(net.send(server, b"x"), Err(Errno::EPIPE));
        assert_eq!(net.send(server, b"x"), Err(Errno::EPIPE));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        assert_eq!(net.peer_addr(server), Err(Errno::ENOTCONN));
        assert_eq!(net.shutdown(server, Shutdown::Both), Err(Errno::ENOTCONN));
        assert_eq!(net.recv(client, &mut [0u8; 1], false), Err(Errno::EBADF));
    }

    #[test]
    fn close_with_unread_data_resets_the_peer() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.send(client, b"hi"), Ok(2));
        assert_eq!(net.send(server, b"unread"), Ok(6));
        net.close_socket(client);
        assert_eq!(ready(&net, server), (true, true));
        assert_eq!(recv_all(&mut net, server), Ok(b"hi".to_vec()));
        assert_eq!(recv_all(&mut net, server), Err(Errno::ECONNRESET));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        assert_eq!(net.send(server, b"x"), Err(Errno::EPIPE));
        assert_eq!(net.peer_addr(server), Err(Errno::ENOTCONN));
    }

    #[test]
    fn reset_is_reported_once_by_send_too() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.send(server, b"unread"), Ok(6));
        net.close_socket(client);
        assert_eq!(net.send(server, b"x"), Err(Errno::ECONNRESET));
        assert_eq!(net.send(server, b"x"), Err(Errno::EPIPE));
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
    }

    #[test]
    fn reset_after_end_of_stream_is_epipe() {
        let (mut net, _, client, server) = connected();
        assert_eq!(net.shutdown(client, Shutdown::Write), Ok(()));
        assert_eq!(net.send(server, b"unread"), Ok(6));
        net.close_socket(client);
        assert_eq!(recv_all(&mut net, server), Ok(Vec::new()));
        assert_eq!(net.send(server, b"x"), Err(Errno::EPIPE));
    }

    #[test]
    fn closing_a_listener_resets_pending_clients() {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, V4_ANY_PORT, 4);
        let client = net.socket(&at);
        net.connect(client, &at).expect("connect");
        assert_eq!(net.send(client, b"early"), Ok(5));
        assert_eq!(ready(&net, listener), (true, false));
        net.close_socket(listener);
        assert_eq!(ready(&net, client), (true, true));
        assert_eq!(recv_all(&mut net, client), Err(Errno::ECONNRESET));
        assert_eq!(recv_all(&mut net, client), Ok(Vec::new()));
        assert_eq!(net.send(client, b"x"), Err(Errno::EPIPE));
        let again = net.socket(&at);
        assert_eq!(net.bind(again, &at), Ok(()), "port freed by close");
    }

    #[test]
    fn listener_shutdown_read_stops_listening() {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, V4_ANY_PORT, 4);
        let client = net.socket(&at);
        net.connect(client, &at).expect("connect");
        assert_eq!(net.shutdown(listener, Shutdown::Write), Ok(()));
        assert_eq!(ready(&net, listener), (true, false));
        assert_eq!(net.shutdown(listener, Shutdown::Read), Ok(()));
        assert_eq!(recv_all(&mut net, client), Err(Errno::ECONNRESET));
        assert_eq!(net.accept(listener), Err(Errno::EINVAL));
        assert_eq!(ready(&net, listener), (true, true));
        assert_eq!(net.local_addr(listener), Ok(at));
        assert_eq!(net.listen(listener, 4), Ok(()));
        assert_eq!(ready(&net, listener), (false, false));
    }

    #[test]
    fn unconnected_sockets() {
        let mut net = SimNet::new();
        let (listener, _) = listening(&mut net, V4_ANY_PORT, 4);
        let fresh = net.socket(&addr(V4_ANY_PORT));
        let mut buf = [0u8; 4];
        for s in [fresh, listener] {
            assert_eq!(net.recv(s, &mut buf, false), Err(Errno::ENOTCONN));
            assert_eq!(net.send(s, b"x"), Err(Errno::EPIPE), "Linux TCP");
            assert_eq!(net.peer_addr(s), Err(Errno::ENOTCONN));
        }
        assert_eq!(net.shutdown(fresh, Shutdown::Both), Err(Errno::ENOTCONN));
        assert_eq!(net.local_addr(fresh), Ok(addr("0.0.0.0:0")));
        assert_eq!(ready(&net, fresh), (true, true), "POLLOUT|POLLHUP");
        assert_eq!(ready(&net, listener), (false, false));
    }

    #[test]
    fn unknown_socket_ids_are_ebadf() {
        let mut net = SimNet::new();
        let a = addr(V4_ANY_PORT);
        assert_eq!(net.listen(7, 1), Err(Errno::EBADF));
        assert_eq!(net.connect(7, &a), Err(Errno::EBADF));
        assert_eq!(net.local_addr(7), Err(Errno::EBADF));
        assert_eq!(net.peer_addr(7), Err(Errno::EBADF));
        assert_eq!(net.send(7, b"x"), Err(Errno::EBADF));
        assert_eq!(net.recv(7, &mut [0u8; 1], true), Err(Errno::EBADF));
        assert_eq!(net.shutdown(7, Shutdown::Read), Err(Errno::EBADF));
        assert_eq!(ready(&net, 7), (true, true), "POLLNVAL");
        net.close_socket(7);
    }

    #[test]
    fn readiness_transitions() {
        let mut net = SimNet::new();
        let (listener, at) = listening(&mut net, V4_ANY_PORT, 4);
        assert_eq!(ready(&net, listener), (false, false));
        let client = net.socket(&at);
        net.connect(client, &at).expect("connect");
        assert_eq!(ready(&net, listener), (true, false));
        let (server, _) = net.accept(listener).expect("accept");
        assert_eq!(ready(&net, listener), (false, false));
        assert_eq!(ready(&net, client), (false, true));
        assert_eq!(ready(&net, server), (false, true));
        net.send(client, b"ping").expect("send");
        assert_eq!(ready(&net, server), (true, true));
        recv_all(&mut net, server).expect("recv");
        assert_eq!(ready(&net, server), (false, true));
        net.close_socket(server);
        assert_eq!(ready(&net, client), (true, true));
    }

    #[test]
    fn pipe_data_eagain_and_end_of_file() {
        let mut net = SimNet::new();
        let p = net.pipe();
        let mut buf = [0u8; 8];
        assert_eq!(net.pipe_read(p, &mut buf), Err(Errno::EAGAIN));
        assert_eq!(net.pipe_read(p, &mut []), Ok(0));
        assert!(!net.pipe_ready(p, false, Interest::Readable));
        assert!(!net.pipe_ready(p, false, Interest::Writable));
        assert!(net.pipe_ready(p, true, Interest::Writable));
        assert!(!net.pipe_ready(p, true, Interest::Readable));
        assert_eq!(net.pipe_write(p, b"abc"), Ok(3));
        assert!(net.pipe_ready(p, false, Interest::Readable));
        assert_eq!(net.pipe_read(p, &mut buf[..2]), Ok(2));
        net.close_pipe_end(p, true);
        assert_eq!(net.pipe_write(p, b"x"), Err(Errno::EBADF));
        assert!(net.pipe_ready(p, false, Interest::Writable), "POLLHUP");
        assert_eq!(net.pipe_read(p, &mut buf), Ok(1));
        assert_eq!(buf[0], b'c');
        assert_eq!(net.pipe_read(p, &mut buf), Ok(0));
        net.close_pipe_end(p, false);
        assert_eq!(net.pipe_read(p, &mut buf), Err(Errno::EBADF));
    }

    #[test]
    fn pipe_capacity_atomicity_and_epipe() {
        let mut net = SimNet::new();
        let p = net.pipe();
        let big = vec![1u8; PIPE_CAPACITY_BYTES + 10];
        assert_eq!(net.pipe_write(p, &big[..100]), Ok(100));
        assert_eq!(net.pipe_write(p, &big), Ok(PIPE_CAPACITY_BYTES - 100));
        assert_eq!(net.pipe_write(p, b"x"), Err(Errno::EAGAIN));
        assert!(!net.pipe_ready(p, true, Interest::Writable));
        let mut buf = vec![0u8; PIPE_ATOMIC_BYTES];
        assert_eq!(net.pipe_read(p, &mut buf[..100]), Ok(100));
        assert!(!net.pipe_ready(p, true, Interest::Writable), "< PIPE_BUF");
        assert_eq!(net.pipe_write(p, &big[..200]), Err(Errno::EAGAIN));
        assert_eq!(net.pipe_write(p, &big[..50]), Ok(50));
        assert_eq!(net.pipe_read(p, &mut buf), Ok(PIPE_ATOMIC_BYTES));
        assert!(net.pipe_ready(p, true, Interest::Writable));
        net.close_pipe_end(p, false);
        assert_eq!(net.pipe_write(p, b"x"), Err(Errno::EPIPE));
        assert_eq!(net.pipe_write(p, b""), Ok(0));
        assert!(net.pipe_ready(p, true, Interest::Readable), "POLLERR");
        assert!(net.pipe_ready(p, true, Interest::Writable));
        net.close_pipe_end(p, true);
        assert_eq!(net.pipe_write(p, b"x"), Err(Errno::EBADF));
        assert!(net.pipe_ready(p, true, Interest::Writable), "POLLNVAL");
    }

    #[test]
    fn reset_all_drops_everything() {
        let (mut net, listener, client, _) = connected();
        let p = net.pipe();
        net.reset_all();
        assert_eq!(net.local_addr(listener), Err(Errno::EBADF));
        assert_eq!(net.send(client, b"x"), Err(Errno::EBADF));
        assert_eq!(net.pipe_read(p, &mut [0u8; 1]), Err(Errno::EBADF));
        let s = net.socket(&addr(V4_ANY_PORT));
        assert!(s > client, "ids are never reused");
        net.bind(s, &addr(V4_ANY_PORT)).expect("bind");
        assert_eq!(net.local_addr(s), Ok(addr("127.0.0.1:40000")));
        assert_ne!(net.pipe(), p);
    }
}
