//! [`SimKernel`](super::SimKernel)'s datagram and Unix-socket calls, and
//! `sendmsg`/`recvmsg` with `SCM_RIGHTS`.
//!
//! A passed fd travels as a *rights token*: `sendmsg` records what the fd
//! names (the `Fd` entry, which shares the socket, pipe end or open file)
//! under a new token in `in_flight`; `recvmsg` installs it at the lowest
//! free fd of the table. While in flight it keeps its object open, as the
//! kernel's reference does; a message dropped unread (its socket closed)
//! releases it. *Simplification:* a passed regular file gets its own file
//! offset (the sim's fd entries hold the offset), where Linux shares it.
//!
//! On a Unix stream the fds ride with the bytes of the `sendmsg` that sent
//! them, as Linux keeps them on that message's buffer: a receive that
//! reaches those bytes takes the fds (`recvmsg`) or closes them (`recv`,
//! `read`) and stops at the end of those bytes.

use super::super::dgram::{Datagram, Delivery};
use super::*;
use crate::sys::{check_unix_path, RecvMeta, SockAddr};
use std::collections::VecDeque;

/// A Unix stream connection's end, beside its `SimNet` socket.
#[derive(Debug)]
pub(super) struct UnixConn {
    local: SockAddr,
    peer: SockAddr,
    peer_socket: SocketId,
    /// Bytes that ever arrived into this end's receive buffer.
    arrived: u64,
    /// Bytes this end has read.
    read: u64,
    /// Passed fds, with the stream positions of the bytes sent with them
    /// (start, end).
    marks: VecDeque<(u64, u64, Vec<u64>)>,
}

impl UnixConn {
    fn new(local: SockAddr, peer: SockAddr, peer_socket: SocketId) -> UnixConn {
        UnixConn {
            local,
            peer,
            peer_socket,
            arrived: 0,
            read: 0,
            marks: VecDeque::new(),
        }
    }

    /// How many of `len` bytes a receive may take: it stops at the end of
    /// the first bytes with fds it reaches.
    fn limit(&self, len: usize) -> usize {
        match self.marks.front() {
            Some((start, end, _)) if *start < self.read + len as u64 => {
                len.min((end - self.read) as usize)
            }
            _ => len,
        }
    }

    /// `n` bytes were read: the fds of every mark they reached.
    fn consume(&mut self, n: usize) -> Vec<u64> {
        self.read += n as u64;
        let mut rights = Vec::new();
        while let Some((start, _, _)) = self.marks.front() {
            if *start >= self.read {
                break;
            }
            if let Some((_, _, r)) = self.marks.pop_front() {
                rights.extend(r);
            }
        }
        rights
    }

    /// The peer's socket and every rights token still waiting (the
    /// connection is going away).
    pub(super) fn into_parts(self) -> (SocketId, Vec<u64>) {
        let rights = self.marks.into_iter().flat_map(|(_, _, r)| r).collect();
        (self.peer_socket, rights)
    }
}

/// Whether two entries name the same socket or pipe end.
pub(super) fn same_object(a: &Fd, b: &Fd) -> bool {
    match (a, b) {
        (Fd::Socket(x), Fd::Socket(y)) => x == y,
        (Fd::PipeRead(x), Fd::PipeRead(y)) => x == y,
        (Fd::PipeWrite(x), Fd::PipeWrite(y)) => x == y,
        (Fd::Dgram(x), Fd::Dgram(y)) => x == y,
        _ => false,
    }
}

impl State {
    pub(super) fn dgram_of(&self, fd: RawFd) -> SysResult<Option<DgramId>> {
        Ok(match self.entry(fd)? {
            Fd::Dgram(id) => Some(id),
            Fd::Socket(_) => None,
            _ => return Err(Errno::ENOTSOCK),
        })
    }

    pub(super) fn udp_socket(&mut self, v6: bool) -> SysResult<RawFd> {
        self.check_fd_room(1)?;
        self.inject(OpClass::SocketSetup)?;
        let id = self.dgram.udp(v6);
        self.install(Fd::Dgram(id))
    }

    pub(super) fn unix_socket(&mut self, ty: SockType) -> SysResult<RawFd> {
        self.check_fd_room(1)?;
        self.inject(OpClass::SocketSetup)?;
        let id = match ty {
            SockType::Stream => self.dgram.unix_stream(),
            SockType::Datagram => self.dgram.unix_dgram(),
        };
        self.install(Fd::Dgram(id))
    }

    pub(super) fn unix_pair(&mut self, ty: SockType) -> SysResult<(RawFd, RawFd)> {
        self.check_fd_room(2)?;
        self.inject(OpClass::SocketSetup)?;
        let (a, b) = match ty {
            SockType::Stream => {
                let (a, b) = self.net.pair();
                for (me, peer) in [(a, b), (b, a)] {
                    let conn = UnixConn::new(SockAddr::Unnamed, SockAddr::Unnamed, peer);
                    self.unix_conns.insert(me, conn);
                }
                (Fd::Socket(a), Fd::Socket(b))
            }
            SockType::Datagram => {
                let (a, b) = self.dgram.pair_dgram();
                (Fd::Dgram(a), Fd::Dgram(b))
            }
        };
        Ok((self.install(a)?, self.install(b)?))
    }

    pub(super) fn bind_unix(&mut self, fd: RawFd, path: &Path) -> SysResult<()> {
        check_unix_path(path)?;
        let Some(id) = self.dgram_of(fd)? else {
            return Err(Errno::EINVAL);
        };
        self.inject(OpClass::SocketSetup)?;
        self.dgram.bind_unix(id, path)
    }

    pub(super) fn connect_unix(&mut self, fd: RawFd, path: &Path) -> SysResult<()> {
        check_unix_path(path)?;
        let Some(id) = self.dgram_of(fd)? else {
            return Err(EISCONN);
        };
        if !self.dgram.is_stream(id) {
            self.inject(OpClass::SocketSetup)?;
            return self.dgram.connect(id, &SockAddr::Unix(path.to_path_buf()));
        }
        let listener = self.dgram.find_listener(path)?;
        self.inject(OpClass::SocketSetup)?;
        let local = self.dgram.local_addr(id)?;
        let (client, server) = self.net.pair();
        let server_name = SockAddr::Unix(path.to_path_buf());
        self.unix_conns.insert(
            client,
            UnixConn::new(local.clone(), server_name.clone(), server),
        );
        self.unix_conns
            .insert(server, UnixConn::new(server_name, local, client));
        self.dgram.queue_connection(listener, server);
        // The fd now names the connection; the idle socket (and any name it
        // was bound to) goes.
        self.fds.insert(fd, Fd::Socket(client));
        self.bump_fd_epoch(fd);
        let _ = self.dgram.close(id);
        Ok(())
    }

    pub(super) fn accept_unix(&mut self, fd: RawFd) -> SysResult<(RawFd, SockAddr)> {
        let Some(id) = self.dgram_of(fd)? else {
            return Err(Errno::EINVAL);
        };
        self.check_fd_room(1)?;
        if self.dgram.ready(id, Interest::Readable) {
            self.inject(OpClass::SocketSetup)?;
        }
        let socket = self.dgram.accept(id)?;
        let peer = self
            .unix_conns
            .get(&socket)
            .map_or(SockAddr::Unnamed, |c| c.peer.clone());
        Ok((self.install(Fd::Socket(socket))?, peer))
    }

    pub(super) fn sock_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        match self.dgram_of(fd)? {
            Some(id) => self.dgram.local_addr(id),
            None => {
                let s = self.socket_of(fd)?;
                match self.unix_conns.get(&s) {
                    Some(conn) => Ok(conn.local.clone()),
                    None => self.net.local_addr(s).map(SockAddr::Inet),
                }
            }
        }
    }

    pub(super) fn peer_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        match self.dgram_of(fd)? {
            Some(id) => self.dgram.peer_addr(id),
            None => {
                let s = self.socket_of(fd)?;
                match self.unix_conns.get(&s) {
                    Some(conn) => Ok(conn.peer.clone()),
                    None => self.net.peer_addr(s).map(SockAddr::Inet),
                }
            }
        }
    }

    /// Put `fds` in flight: one rights token each (`EBADF` for a closed fd,
    /// with nothing put in flight).
    fn send_rights(&mut self, fds: &[RawFd]) -> SysResult<Vec<u64>> {
        let entries = fds
            .iter()
            .map(|&fd| self.entry(fd))
            .collect::<SysResult<Vec<Fd>>>()?;
        let mut tokens = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) = entry {
                self.fs.open_ref(inode);
            }
            let token = self.next_right;
            self.next_right += 1;
            self.in_flight.insert(token, entry);
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Release rights tokens nobody will receive.
    pub(super) fn drop_rights(&mut self, tokens: Vec<u64>) {
        for token in tokens {
            if let Some(entry) = self.in_flight.remove(&token) {
                self.release(entry);
            }
        }
    }

    /// Install received rights as new fds, at most `fds_max` (the rest are
    /// released); the flag says some were.
    fn receive_rights(&mut self, tokens: Vec<u64>, fds_max: usize) -> (Vec<RawFd>, bool) {
        let mut fds = Vec::new();
        let mut cut = false;
        for token in tokens {
            let Some(entry) = self.in_flight.remove(&token) else {
                continue;
            };
            let installed = (fds.len() < fds_max)
                .then(|| self.install(entry).ok())
                .flatten();
            match installed {
                Some(fd) => {
                    // `install` took its own file reference: drop the
                    // one the message held.
                    if let Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) = entry {
                        self.fs.close_ref(inode);
                    }
                    fds.push(fd);
                }
                None => {
                    cut = true;
                    self.release(entry);
                }
            }
        }
        (fds, cut)
    }

    /// What loopback UDP does to the next datagram (drawn from the seed).
    fn draw_delivery(&self) -> Delivery {
        let faults = &self.core.options().datagram;
        self.core.with_rng(|rng| Delivery {
            lost: rng.chance(faults.loss_probability),
            duplicated: rng.chance(faults.duplicate_probability),
            ahead_by: match rng.chance(faults.reorder_probability) {
                true => 1 + rng.below(faults.reorder_depth_max.max(1) as u64) as usize,
                false => 0,
            },
        })
    }

    /// Send one datagram (faults: only when the send would go ahead).
    pub(super) fn send_dgram(
        &mut self,
        id: DgramId,
        data: &[u8],
        to: Option<&SockAddr>,
        fds: &[RawFd],
    ) -> SysResult<usize> {
        if self.dgram.ready(id, Interest::Writable) {
            self.inject(OpClass::SocketWrite)?;
        }
        let rights = self.send_rights(fds)?;
        let delivery = self.draw_delivery();
        let kept = rights.clone();
        match self.dgram.send(id, data, to, rights, delivery) {
            Ok(n) => {
                // A datagram dropped on the way drops its fds.
                let queued: Vec<u64> = kept
                    .into_iter()
                    .filter(|t| !self.dgram.holds_right(*t))
                    .collect();
                self.drop_rights(queued);
                Ok(n)
            }
            Err(e) => {
                self.drop_rights(kept);
                Err(e)
            }
        }
    }

    /// Receive one datagram into `bufs`; the meta says whether it was cut.
    pub(super) fn recv_dgram(
        &mut self,
        id: DgramId,
        bufs: &mut [IoSliceMut<'_>],
        fds_max: usize,
        peek: bool,
    ) -> SysResult<RecvMeta> {
        if self.dgram.ready(id, Interest::Readable) {
            self.inject(OpClass::SocketRead)?;
        }
        let Datagram { data, from, rights } = self.dgram.recv(id, peek)?;
        let bytes = scatter(&data, bufs);
        let (fds, fds_truncated) = self.receive_rights(rights, fds_max);
        // Linux names no sender for an unbound Unix one.
        let from = (from != SockAddr::Unnamed).then_some(from);
        Ok(RecvMeta {
            bytes,
            from,
            fds,
            truncated: bytes < data.len(),
            fds_truncated,
        })
    }

    /// A stream receive that honours the fds riding on the stream: returns
    /// the bytes and the rights of the first byte read.
    pub(super) fn recv_stream(
        &mut self,
        socket: SocketId,
        buf: &mut [u8],
        peek: bool,
    ) -> SysResult<(usize, Vec<u64>)> {
        let limit = self
            .unix_conns
            .get(&socket)
            .map_or(buf.len(), |c| c.limit(buf.len()));
        let n = self.recv_bytes(socket, &mut buf[..limit], peek)?;
        let Some(conn) = self.unix_conns.get_mut(&socket) else {
            return Ok((n, Vec::new()));
        };
        if peek {
            return Ok((n, Vec::new()));
        }
        Ok((n, conn.consume(n)))
    }

    /// Count bytes arriving at the peer of a Unix stream end (for fd marks).
    pub(super) fn note_sent(&mut self, socket: SocketId, n: usize, rights: Vec<u64>) {
        let peer = self.unix_conns.get(&socket).map(|c| c.peer_socket);
        let Some(conn) = peer.and_then(|p| self.unix_conns.get_mut(&p)) else {
            self.drop_rights(rights);
            return;
        };
        if n > 0 && !rights.is_empty() {
            let end = conn.arrived + n as u64;
            conn.marks.push_back((conn.arrived, end, rights));
        } else if !rights.is_empty() {
            self.drop_rights(rights);
            return;
        }
        conn.arrived += n as u64;
    }

    pub(super) fn sendmsg(
        &mut self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        to: Option<&SockAddr>,
        fds: &[RawFd],
    ) -> SysResult<usize> {
        if fds.len() > crate::sys::SCM_MAX_FDS {
            return Err(Errno::EINVAL);
        }
        let data: Vec<u8> = bufs
            .iter()
            .take(IOV_MAX)
            .flat_map(|b| b.iter().copied())
            .collect();
        if let Some(id) = self.dgram_of(fd)? {
            return self.send_dgram(id, &data, to, fds);
        }
        let socket = self.socket_of(fd)?;
        if to.is_some() {
            return Err(EISCONN);
        }
        if !fds.is_empty() && !self.unix_conns.contains_key(&socket) {
            return Err(Errno::EINVAL);
        }
        // Check the fds before anything moves.
        let rights = self.send_rights(fds)?;
        match self.send_socket_raw(socket, &data) {
            Ok(n) => {
                self.note_sent(socket, n, rights);
                Ok(n)
            }
            Err(e) => {
                self.drop_rights(rights);
                Err(e)
            }
        }
    }

    pub(super) fn recvmsg(
        &mut self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        fds_max: usize,
        flags: MsgFlags,
    ) -> SysResult<RecvMeta> {
        let peek = flags.0 & MsgFlags::PEEK.0 != 0;
        let fds_max = fds_max.min(crate::sys::SCM_MAX_FDS);
        if let Some(id) = self.dgram_of(fd)? {
            return self.recv_dgram(id, bufs, fds_max, peek);
        }
        let socket = self.socket_of(fd)?;
        let room: usize = bufs.iter().take(IOV_MAX).map(|b| b.len()).sum();
        let mut tmp = vec![0; room];
        let (n, rights) = self.recv_stream(socket, &mut tmp, peek)?;
        let bytes = scatter(&tmp[..n], bufs);
        let (fds, fds_truncated) = self.receive_rights(rights, fds_max);
        Ok(RecvMeta {
            bytes,
            from: None,
            fds,
            truncated: false,
            fds_truncated,
        })
    }
}

/// Copy `data` into `bufs` in order; returns the bytes copied.
fn scatter(data: &[u8], bufs: &mut [IoSliceMut<'_>]) -> usize {
    let mut done = 0;
    for buf in bufs.iter_mut().take(IOV_MAX) {
        let n = buf.len().min(data.len() - done);
        buf[..n].copy_from_slice(&data[done..done + n]);
        done += n;
        if done == data.len() {
            break;
        }
    }
    done
}
