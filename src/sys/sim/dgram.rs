//! [`SimDgram`]: simulated datagram sockets (loopback UDP and Unix
//! datagram) and the Unix-socket name space (paths bound by Unix datagram
//! sockets and Unix stream listeners).
//!
//! Owns the state of every datagram socket (its addresses and its receive
//! queue of whole datagrams) and of every Unix stream socket that is not
//! connected (idle or listening, with its queue of pending connections,
//! which are `SimNet` stream sockets). Connected Unix streams live in
//! `SimNet` like TCP connections. Does not own fds, faults or randomness:
//! the kernel layer draws loss, duplication and reordering for UDP and
//! passes the outcome in as a [`Delivery`]. Every method is a deterministic
//! function of this struct.
//!
//! # UDP (loopback)
//!
//! * Binding follows the TCP rules of `SimNet` in a separate port space:
//!   only loopback and unspecified addresses, port 0 picks the next free
//!   port from 50000 upwards; two bindings of one port clash when their
//!   addresses are equal or one is unspecified. `send`/`connect` autobind.
//! * A datagram is sent whole or not at all; more than
//!   [`UDP_MAX_PAYLOAD_BYTES`] is `EMSGSIZE`. Sending never blocks: a
//!   datagram for a port nobody binds, or for a queue already holding
//!   [`RECV_QUEUE_BYTES`], is dropped (as UDP drops it), and so is one the
//!   [`Delivery`] loses. A duplicated datagram is queued twice; a reordered
//!   one is queued at the position the delivery names rather than last.
//! * A connected socket only receives from its peer (others are dropped)
//!   and `send` without a destination goes to the peer
//!   (`EDESTADDRREQ` when not connected). *Simplification:* no ICMP, so a
//!   send to a closed port never reports `ECONNREFUSED` later.
//! * Destinations outside loopback: `ENETUNREACH`.
//!
//! # Unix datagram
//!
//! Reliable and ordered, as Linux's are: a full receive queue gives
//! `EAGAIN` (the sender waits), a path nobody binds `ENOENT` (no such
//! file) or `ECONNREFUSED` (bound socket closed), a peer connected
//! elsewhere `EPERM`. Datagrams may carry fds (`SCM_RIGHTS`, as rights
//! tokens the kernel layer resolves).
//!
//! # Names
//!
//! A path names one socket while that socket is open: binding a bound path
//! is `EADDRINUSE`. *Simplification:* the name is not a file of the
//! simulated file system, and it goes away with the socket (Linux leaves
//! the socket file until it is unlinked).
//!
//! `shutdown` of a datagram socket is `EOPNOTSUPP` here (not simulated);
//! of an unconnected Unix stream socket it succeeds and does nothing.

use super::net::SocketId;
use crate::sys::{Errno, Interest, SockAddr, SysResult};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// Names one simulated datagram socket or unconnected Unix stream socket.
pub(crate) type DgramId = u64;

/// Largest UDP payload (IPv4: 65535 - 20 - 8).
pub(crate) const UDP_MAX_PAYLOAD_BYTES: usize = 65_507;
/// Largest Unix datagram (about Linux's default send buffer).
pub(crate) const UNIX_DGRAM_MAX_BYTES: usize = 208 * 1024;
/// Bytes a receive queue holds (Linux's default `rmem`).
pub(crate) const RECV_QUEUE_BYTES: usize = 212_992;
/// First UDP ephemeral port.
const UDP_FIRST_PORT: u16 = 50_000;
/// Last UDP ephemeral port.
const UDP_LAST_PORT: u16 = 60_999;

/// What happens to one UDP datagram on its way (drawn by the kernel layer).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivery {
    /// Dropped.
    pub(crate) lost: bool,
    /// Queued twice.
    pub(crate) duplicated: bool,
    /// Queued this many places before the end of the queue (0: last).
    pub(crate) ahead_by: usize,
}

/// One queued datagram.
#[derive(Clone, Debug)]
pub(crate) struct Datagram {
    pub(crate) data: Vec<u8>,
    pub(crate) from: SockAddr,
    /// Rights tokens of passed fds (see the kernel layer).
    pub(crate) rights: Vec<u64>,
}

#[derive(Debug)]
enum Kind {
    Udp { v6: bool },
    UnixDgram,
    UnixStream { listening: Option<Listen> },
}

#[derive(Debug)]
struct Listen {
    pending_max: usize,
    pending: VecDeque<SocketId>,
}

#[derive(Debug)]
struct Sock {
    kind: Kind,
    local: Option<SockAddr>,
    peer: Option<SockAddr>,
    /// The connected peer socket, for Unix sockets (found by id: a pair's
    /// peer has no name).
    peer_id: Option<DgramId>,
    queue: VecDeque<Datagram>,
    queued_bytes: usize,
}

/// Datagram sockets and Unix names; see the module docs.
#[derive(Debug)]
pub(crate) struct SimDgram {
    socks: BTreeMap<DgramId, Sock>,
    names: BTreeMap<SockAddr, DgramId>,
    next_id: DgramId,
    next_port: u16,
}

impl SimDgram {
    pub(crate) fn new() -> SimDgram {
        SimDgram {
            socks: BTreeMap::new(),
            names: BTreeMap::new(),
            next_id: 1,
            next_port: UDP_FIRST_PORT,
        }
    }

    fn insert(&mut self, kind: Kind) -> DgramId {
        let id = self.next_id;
        self.next_id += 1;
        let sock = Sock {
            kind,
            local: None,
            peer: None,
            peer_id: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
        };
        self.socks.insert(id, sock);
        id
    }

    /// A new unbound UDP socket.
    pub(crate) fn udp(&mut self, v6: bool) -> DgramId {
        self.insert(Kind::Udp { v6 })
    }

    /// A new unbound Unix datagram socket.
    pub(crate) fn unix_dgram(&mut self) -> DgramId {
        self.insert(Kind::UnixDgram)
    }

    /// A new unconnected Unix stream socket.
    pub(crate) fn unix_stream(&mut self) -> DgramId {
        self.insert(Kind::UnixStream { listening: None })
    }

    fn sock(&self, id: DgramId) -> SysResult<&Sock> {
        self.socks.get(&id).ok_or(Errno::EBADF)
    }

    fn sock_mut(&mut self, id: DgramId) -> SysResult<&mut Sock> {
        self.socks.get_mut(&id).ok_or(Errno::EBADF)
    }

    /// Whether `id` is a Unix stream socket (idle or listening).
    pub(crate) fn is_stream(&self, id: DgramId) -> bool {
        matches!(
            self.socks.get(&id).map(|s| &s.kind),
            Some(Kind::UnixStream { .. })
        )
    }

    /// `bind(2)` of a UDP socket.
    pub(crate) fn bind_inet(&mut self, id: DgramId, addr: &SocketAddr) -> SysResult<()> {
        let sock = self.sock(id)?;
        let Kind::Udp { v6 } = sock.kind else {
            return Err(Errno::EINVAL);
        };
        check_family(v6, addr)?;
        if sock.local.is_some() {
            return Err(Errno::EINVAL);
        }
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            return Err(Errno(libc::EADDRNOTAVAIL));
        }
        let port = match addr.port() {
            0 => self.ephemeral_port().ok_or(Errno(libc::EADDRINUSE))?,
            port if self.port_clash(addr.ip(), port) => return Err(Errno(libc::EADDRINUSE)),
            port => port,
        };
        self.set_name(id, SockAddr::Inet(SocketAddr::new(addr.ip(), port)));
        Ok(())
    }

    fn set_name(&mut self, id: DgramId, name: SockAddr) {
        self.names.insert(name.clone(), id);
        if let Some(sock) = self.socks.get_mut(&id) {
            sock.local = Some(name);
        }
    }

    fn port_clash(&self, ip: IpAddr, port: u16) -> bool {
        self.names.keys().any(|name| match name {
            SockAddr::Inet(a) => {
                a.port() == port && (a.ip() == ip || a.ip().is_unspecified() || ip.is_unspecified())
            }
            _ => false,
        })
    }

    fn ephemeral_port(&mut self) -> Option<u16> {
        let span = UDP_LAST_PORT - UDP_FIRST_PORT + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == UDP_LAST_PORT {
                UDP_FIRST_PORT
            } else {
                port + 1
            };
            if !self.port_clash(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port) {
                return Some(port);
            }
        }
        None
    }

    /// The local address, autobinding an unbound UDP socket to loopback.
    fn autobind(&mut self, id: DgramId) -> SysResult<SockAddr> {
        let sock = self.sock(id)?;
        if let Some(local) = &sock.local {
            return Ok(match local {
                SockAddr::Inet(a) if a.ip().is_unspecified() => {
                    SockAddr::Inet(SocketAddr::new(loopback(a.is_ipv6()), a.port()))
                }
                other => other.clone(),
            });
        }
        match sock.kind {
            Kind::Udp { v6 } => {
                let port = self.ephemeral_port().ok_or(Errno(libc::EAGAIN))?;
                let addr = SocketAddr::new(loopback(v6), port);
                self.set_name(id, SockAddr::Inet(addr));
                Ok(SockAddr::Inet(addr))
            }
            _ => Ok(SockAddr::Unnamed),
        }
    }

    /// `bind(2)` of a Unix socket (datagram or stream) to `path`.
    pub(crate) fn bind_unix(&mut self, id: DgramId, path: &Path) -> SysResult<()> {
        let sock = self.sock(id)?;
        if matches!(sock.kind, Kind::Udp { .. }) {
            return Err(Errno::EINVAL);
        }
        if sock.local.is_some() {
            return Err(Errno::EINVAL);
        }
        let name = SockAddr::Unix(path.to_path_buf());
        if self.names.contains_key(&name) {
            return Err(Errno(libc::EADDRINUSE));
        }
        self.set_name(id, name);
        Ok(())
    }

    /// `listen(2)` of a Unix stream socket (must be bound).
    pub(crate) fn listen(&mut self, id: DgramId, backlog: i32) -> SysResult<()> {
        let sock = self.sock_mut(id)?;
        let bound = sock.local.is_some();
        let Kind::UnixStream { listening } = &mut sock.kind else {
            return Err(Errno::EOPNOTSUPP);
        };
        if !bound {
            return Err(Errno::EINVAL);
        }
        let pending_max = usize::try_from(backlog).unwrap_or(4096).min(4096) + 1;
        match listening {
            Some(listen) => listen.pending_max = pending_max,
            None => {
                *listening = Some(Listen {
                    pending_max,
                    pending: VecDeque::new(),
                })
            }
        }
        Ok(())
    }

    /// The listener bound to `path` with room for one more connection:
    /// `ENOENT` for no name, `EPROTOTYPE` for a datagram socket's name,
    /// `ECONNREFUSED` for a stream socket that is not listening, `EAGAIN`
    /// for a full queue.
    pub(crate) fn find_listener(&self, path: &Path) -> SysResult<DgramId> {
        let id = *self
            .names
            .get(&SockAddr::Unix(path.to_path_buf()))
            .ok_or(Errno::ENOENT)?;
        match self.socks.get(&id).map(|s| &s.kind) {
            Some(Kind::UnixStream {
                listening: Some(listen),
            }) if listen.pending.len() < listen.pending_max => Ok(id),
            Some(Kind::UnixStream { listening: Some(_) }) => Err(Errno::EAGAIN),
            Some(Kind::UnixStream { listening: None }) => Err(Errno::ECONNREFUSED),
            _ => Err(Errno(libc::EPROTOTYPE)),
        }
    }

    /// Queue `server` (the listener's end of a new connection).
    pub(crate) fn queue_connection(&mut self, listener: DgramId, server: SocketId) {
        if let Some(Sock {
            kind: Kind::UnixStream {
                listening: Some(listen),
            },
            ..
        }) = self.socks.get_mut(&listener)
        {
            listen.pending.push_back(server);
        }
    }

    /// `accept(2)`: the next pending connection (`EAGAIN` if none, `EINVAL`
    /// if not listening, `EOPNOTSUPP` on a datagram socket).
    pub(crate) fn accept(&mut self, id: DgramId) -> SysResult<SocketId> {
        match &mut self.sock_mut(id)?.kind {
            Kind::UnixStream {
                listening: Some(listen),
            } => listen.pending.pop_front().ok_or(Errno::EAGAIN),
            Kind::UnixStream { listening: None } => Err(Errno::EINVAL),
            Kind::Udp { .. } | Kind::UnixDgram => Err(Errno::EOPNOTSUPP),
        }
    }

    /// `connect(2)` of a datagram socket: sets the default destination
    /// (and the only source accepted).
    pub(crate) fn connect(&mut self, id: DgramId, to: &SockAddr) -> SysResult<()> {
        let target = self.resolve(id, to)?;
        let peer = match target {
            Some(t) => self.sock(t)?.local.clone().unwrap_or_else(|| to.clone()),
            None => to.clone(),
        };
        let peer = match (&peer, to) {
            (SockAddr::Inet(a), SockAddr::Inet(d)) if a.ip().is_unspecified() => {
                SockAddr::Inet(SocketAddr::new(loopback_ip_of(d), a.port()))
            }
            _ => peer,
        };
        self.autobind(id)?;
        let unix = matches!(self.sock(id)?.kind, Kind::UnixDgram);
        let sock = self.sock_mut(id)?;
        sock.peer = Some(peer);
        sock.peer_id = if unix { target } else { None };
        Ok(())
    }

    /// The socket a datagram for `to` reaches (`None`: a UDP port nobody
    /// binds), after the family and reachability checks.
    fn resolve(&self, id: DgramId, to: &SockAddr) -> SysResult<Option<DgramId>> {
        let sock = self.sock(id)?;
        match (&sock.kind, to) {
            (Kind::Udp { v6 }, SockAddr::Inet(addr)) => {
                check_family(*v6, addr)?;
                let ip = addr.ip();
                if !ip.is_loopback() && !ip.is_unspecified() {
                    return Err(Errno(libc::ENETUNREACH));
                }
                let exact = SockAddr::Inet(SocketAddr::new(loopback_ip_of(addr), addr.port()));
                let any = SockAddr::Inet(SocketAddr::new(unspecified(addr.is_ipv6()), addr.port()));
                Ok(self.names.get(&exact).or(self.names.get(&any)).copied())
            }
            (Kind::UnixDgram, SockAddr::Unix(path)) => {
                let id = *self
                    .names
                    .get(&SockAddr::Unix(path.clone()))
                    .ok_or(Errno::ENOENT)?;
                match self.socks.get(&id).map(|s| &s.kind) {
                    Some(Kind::UnixDgram) => Ok(Some(id)),
                    _ => Err(Errno(libc::EPROTOTYPE)),
                }
            }
            (Kind::Udp { .. }, _) => Err(Errno::EINVAL),
            (Kind::UnixDgram, _) => Err(Errno::EINVAL),
            (Kind::UnixStream { .. }, _) => Err(Errno::EOPNOTSUPP),
        }
    }

    /// Connect two fresh Unix datagram sockets to each other (`socketpair`).
    pub(crate) fn pair_dgram(&mut self) -> (DgramId, DgramId) {
        let (a, b) = (self.unix_dgram(), self.unix_dgram());
        for (me, other) in [(a, b), (b, a)] {
            if let Some(sock) = self.socks.get_mut(&me) {
                sock.peer = Some(SockAddr::Unnamed);
                sock.peer_id = Some(other);
            }
        }
        (a, b)
    }

    /// Where a send without a destination goes, and where one with `to`
    /// goes: the target socket (`None`: dropped, UDP only).
    fn target(&self, id: DgramId, to: Option<&SockAddr>) -> SysResult<Option<DgramId>> {
        let sock = self.sock(id)?;
        match (to, &sock.peer_id, &sock.peer) {
            (Some(to), _, _) => self.resolve(id, to),
            (None, Some(peer), _) => match self.socks.contains_key(peer) {
                true => Ok(Some(*peer)),
                false => Err(Errno::ECONNREFUSED),
            },
            (None, None, Some(peer)) => self.resolve(id, &peer.clone()),
            (None, None, None) => match sock.kind {
                Kind::UnixDgram => Err(Errno::ENOTCONN),
                _ => Err(Errno(libc::EDESTADDRREQ)),
            },
        }
    }

    /// `sendmsg(2)` of one datagram: `EMSGSIZE`, `EAGAIN` (Unix, full
    /// queue) or the datagram's length. `Ok` does not mean delivered (UDP).
    pub(crate) fn send(
        &mut self,
        id: DgramId,
        data: &[u8],
        to: Option<&SockAddr>,
        rights: Vec<u64>,
        delivery: Delivery,
    ) -> SysResult<usize> {
        let unix = match self.sock(id)?.kind {
            Kind::UnixStream { .. } => return Err(Errno::ENOTCONN),
            Kind::UnixDgram => true,
            Kind::Udp { .. } => false,
        };
        let max = if unix {
            UNIX_DGRAM_MAX_BYTES
        } else {
            UDP_MAX_PAYLOAD_BYTES
        };
        if data.len() > max {
            return Err(Errno(libc::EMSGSIZE));
        }
        let target = self.target(id, to)?;
        let from = self.autobind(id)?;
        let Some(target) = target else {
            return Ok(data.len());
        };
        let dest = self.sock(target)?;
        if let (Some(peer), false) = (&dest.peer, from == SockAddr::Unnamed) {
            if *peer != from && dest.peer_id != Some(id) {
                return if unix {
                    Err(Errno::EPERM)
                } else {
                    Ok(data.len())
                };
            }
        }
        if dest.queued_bytes + data.len() > RECV_QUEUE_BYTES {
            return if unix {
                Err(Errno::EAGAIN)
            } else {
                Ok(data.len())
            };
        }
        if delivery.lost && !unix {
            return Ok(data.len());
        }
        let datagram = Datagram {
            data: data.to_vec(),
            from,
            rights,
        };
        let copies = if delivery.duplicated && !unix { 2 } else { 1 };
        let dest = self.sock_mut(target)?;
        for _ in 0..copies {
            let at = dest
                .queue
                .len()
                .saturating_sub(if unix { 0 } else { delivery.ahead_by });
            dest.queued_bytes += datagram.data.len();
            let mut copy = datagram.clone();
            if copies == 2 && at != dest.queue.len() {
                copy.rights.clear();
            }
            dest.queue.insert(at, copy);
        }
        Ok(data.len())
    }

    /// The next datagram, taken (or looked at, `peek`): `EAGAIN` if none.
    pub(crate) fn recv(&mut self, id: DgramId, peek: bool) -> SysResult<Datagram> {
        let sock = self.sock_mut(id)?;
        if matches!(sock.kind, Kind::UnixStream { .. }) {
            return Err(Errno::EINVAL);
        }
        let front = sock.queue.front().ok_or(Errno::EAGAIN)?;
        if peek {
            let mut copy = front.clone();
            copy.rights.clear();
            return Ok(copy);
        }
        let datagram = sock.queue.pop_front().ok_or(Errno::EAGAIN)?;
        sock.queued_bytes -= datagram.data.len();
        Ok(datagram)
    }

    /// `getsockname(2)`: unbound UDP is the unspecified address, port 0.
    pub(crate) fn local_addr(&self, id: DgramId) -> SysResult<SockAddr> {
        let sock = self.sock(id)?;
        Ok(match (&sock.local, &sock.kind) {
            (Some(local), _) => local.clone(),
            (None, Kind::Udp { v6 }) => SockAddr::Inet(SocketAddr::new(unspecified(*v6), 0)),
            (None, _) => SockAddr::Unnamed,
        })
    }

    /// `getpeername(2)`: `ENOTCONN` unless connected.
    pub(crate) fn peer_addr(&self, id: DgramId) -> SysResult<SockAddr> {
        let sock = self.sock(id)?;
        let peer = sock.peer.clone().ok_or(Errno::ENOTCONN)?;
        match (&peer, sock.peer_id) {
            (SockAddr::Unnamed, Some(p)) => self.local_addr(p),
            _ => Ok(peer),
        }
    }

    /// Readable with a queued datagram (a listener: a pending connection);
    /// writable unless a Unix peer's queue is full (never, for a listener).
    pub(crate) fn ready(&self, id: DgramId, interest: Interest) -> bool {
        let Some(sock) = self.socks.get(&id) else {
            return true;
        };
        match (&sock.kind, interest) {
            (Kind::UnixStream { listening: Some(l) }, Interest::Readable) => !l.pending.is_empty(),
            (Kind::UnixStream { listening: Some(_) }, Interest::Writable) => false,
            (Kind::UnixStream { listening: None }, _) => true,
            (_, Interest::Readable) => !sock.queue.is_empty(),
            (_, Interest::Writable) => sock
                .peer_id
                .and_then(|p| self.socks.get(&p))
                .map_or(true, |p| p.queued_bytes < RECV_QUEUE_BYTES),
        }
    }

    /// Close `id`: its name goes; returns the rights tokens of datagrams
    /// nobody will read and the stream sockets of unaccepted connections,
    /// for the kernel layer to release.
    pub(crate) fn close(&mut self, id: DgramId) -> (Vec<u64>, Vec<SocketId>) {
        let Some(sock) = self.socks.remove(&id) else {
            return (Vec::new(), Vec::new());
        };
        if let Some(name) = &sock.local {
            if self.names.get(name) == Some(&id) {
                self.names.remove(name);
            }
        }
        let rights = sock.queue.into_iter().flat_map(|d| d.rights).collect();
        let pending = match sock.kind {
            Kind::UnixStream {
                listening: Some(listen),
            } => listen.pending.into_iter().collect(),
            _ => Vec::new(),
        };
        (rights, pending)
    }

    /// Whether a queued datagram carries rights token `token`.
    pub(crate) fn holds_right(&self, token: u64) -> bool {
        self.socks
            .values()
            .any(|s| s.queue.iter().any(|d| d.rights.contains(&token)))
    }

    /// Power loss: every socket and name goes.
    pub(crate) fn reset_all(&mut self) {
        self.socks.clear();
        self.names.clear();
        self.next_port = UDP_FIRST_PORT;
    }
}

fn check_family(v6: bool, addr: &SocketAddr) -> SysResult<()> {
    match (v6, addr) {
        (false, SocketAddr::V6(_)) => Err(Errno(libc::EAFNOSUPPORT)),
        (true, SocketAddr::V4(_)) => Err(Errno::EINVAL),
        _ => Ok(()),
    }
}

fn unspecified(v6: bool) -> IpAddr {
    match v6 {
        false => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        true => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn loopback(v6: bool) -> IpAddr {
    match v6 {
        false => IpAddr::V4(Ipv4Addr::LOCALHOST),
        true => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// The address a datagram for `addr` reaches: the unspecified address means
/// loopback, as Linux does.
fn loopback_ip_of(addr: &SocketAddr) -> IpAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => loopback(addr.is_ipv6()),
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_pair(net: &mut SimDgram) -> (DgramId, DgramId, SockAddr) {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (a, b) = (net.udp(false), net.udp(false));
        net.bind_inet(a, &any).expect("bind");
        net.bind_inet(b, &any).expect("bind");
        let to = net.local_addr(b).expect("addr");
        (a, b, to)
    }

    fn send(net: &mut SimDgram, from: DgramId, to: &SockAddr, byte: u8, delivery: Delivery) {
        let sent = net.send(from, &[byte], Some(to), Vec::new(), delivery);
        assert_eq!(
            sent,
            Ok(1),
            "a UDP send succeeds even when the datagram is lost"
        );
    }

    fn drain(net: &mut SimDgram, id: DgramId) -> Vec<u8> {
        std::iter::from_fn(|| net.recv(id, false).ok().map(|d| d.data[0])).collect()
    }

    #[test]
    fn udp_deliveries_lose_duplicate_and_reorder() {
        let mut net = SimDgram::new();
        let (a, b, to) = udp_pair(&mut net);
        let plain = Delivery::default();
        send(&mut net, a, &to, 1, plain);
        send(
            &mut net,
            a,
            &to,
            2,
            Delivery {
                lost: true,
                ..plain
            },
        );
        send(
            &mut net,
            a,
            &to,
            3,
            Delivery {
                duplicated: true,
                ..plain
            },
        );
        send(
            &mut net,
            a,
            &to,
            4,
            Delivery {
                ahead_by: 2,
                ..plain
            },
        );
        assert_eq!(drain(&mut net, b), vec![1, 4, 3, 3]);
        assert_eq!(net.recv(b, false).map(|_| ()), Err(Errno::EAGAIN));
    }

    #[test]
    fn unix_datagrams_ignore_udp_faults_and_fill_up() {
        let mut net = SimDgram::new();
        let (a, b) = net.pair_dgram();
        let faulty = Delivery {
            lost: true,
            duplicated: true,
            ahead_by: 3,
        };
        for byte in 1..=3u8 {
            assert_eq!(net.send(a, &[byte], None, Vec::new(), faulty), Ok(1));
        }
        assert_eq!(drain(&mut net, b), vec![1, 2, 3]);
        let big = vec![0u8; UNIX_DGRAM_MAX_BYTES];
        assert_eq!(net.send(a, &big, None, Vec::new(), faulty), Ok(big.len()));
        assert!(
            !net.ready(a, Interest::Writable),
            "the peer's queue is full"
        );
        let more = net.send(a, &big, None, Vec::new(), faulty);
        assert_eq!(more, Err(Errno::EAGAIN));
        let too_big = vec![0u8; UNIX_DGRAM_MAX_BYTES + 1];
        let sent = net.send(a, &too_big, None, Vec::new(), faulty);
        assert_eq!(sent, Err(Errno(libc::EMSGSIZE)));
    }

    #[test]
    fn a_connected_udp_socket_only_hears_its_peer() {
        let mut net = SimDgram::new();
        let (a, b, to) = udp_pair(&mut net);
        let c = net.udp(false);
        let from_a = net.local_addr(a).expect("addr");
        net.connect(b, &from_a).expect("connect");
        send(&mut net, c, &to, 9, Delivery::default());
        send(&mut net, a, &to, 1, Delivery::default());
        assert_eq!(
            drain(&mut net, b),
            vec![1],
            "the stranger's datagram is dropped"
        );
        net.reset_all();
        assert_eq!(net.recv(b, false).map(|_| ()), Err(Errno::EBADF));
    }
}
