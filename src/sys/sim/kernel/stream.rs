//! [`SimKernel`](super::SimKernel)'s stream calls: sockets and pipes, and
//! the zero-copy calls between files, sockets and pipes (`sendfile`,
//! `splice`).

use super::*;

const EAFNOSUPPORT: Errno = Errno(libc::EAFNOSUPPORT);

impl State {
    pub(super) fn socket(&mut self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd> {
        if ty == SockType::Datagram {
            return self.udp_socket(like.is_ipv6());
        }
        self.check_fd_room(1)?;
        self.inject(OpClass::SocketSetup)?;
        let socket = self.net.socket(like);
        self.install(Fd::Socket(socket))
    }

    pub(super) fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()> {
        match (self.entry(fd)?, opt) {
            (Fd::Socket(_) | Fd::Dgram(_), _) | (_, SockOpt::NonBlocking(_)) => Ok(()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// A socket setup call: fd checks, then the fault, then `op`.
    pub(super) fn setup<T>(
        &mut self,
        fd: RawFd,
        op: impl FnOnce(&mut SimNet, SocketId) -> SysResult<T>,
    ) -> SysResult<T> {
        let socket = self.socket_of(fd)?;
        self.inject(OpClass::SocketSetup)?;
        op(&mut self.net, socket)
    }

    pub(super) fn accept(&mut self, fd: RawFd) -> SysResult<(RawFd, SocketAddr)> {
        if let Some(d) = self.dgram_of(fd)? {
            // A Unix listener's peer is no IP address: like the real
            // layer, the accepted connection is closed and the call fails.
            let socket = self.dgram.accept(d)?;
            self.unix_conns.remove(&socket);
            self.net.close_socket(socket);
            return Err(EAFNOSUPPORT);
        }
        let listener = self.socket_of(fd)?;
        self.check_fd_room(1)?;
        if self.net.socket_ready(listener, Interest::Readable) {
            self.inject(OpClass::SocketSetup)?;
        }
        let (socket, peer) = self.net.accept(listener)?;
        Ok((self.install(Fd::Socket(socket))?, peer))
    }

    /// Receive from a stream socket; fds that rode on the bytes read are
    /// closed (only `recvmsg` takes them).
    pub(super) fn recv_socket(
        &mut self,
        socket: SocketId,
        buf: &mut [u8],
        peek: bool,
    ) -> SysResult<usize> {
        let (n, rights) = self.recv_stream(socket, buf, peek)?;
        self.drop_rights(rights);
        Ok(n)
    }

    /// Send on a stream socket (counted for a Unix peer's fd marks).
    pub(super) fn send_socket(&mut self, socket: SocketId, data: &[u8]) -> SysResult<usize> {
        let n = self.send_socket_raw(socket, data)?;
        self.note_sent(socket, n, Vec::new());
        Ok(n)
    }

    /// Receive from a socket: peeked first, so a fault or a short count
    /// leaves the unread bytes queued.
    pub(super) fn recv_bytes(
        &mut self,
        socket: SocketId,
        buf: &mut [u8],
        peek: bool,
    ) -> SysResult<usize> {
        let mut queued = vec![0; buf.len()];
        let available = self.net.recv(socket, &mut queued, true)?;
        self.inject(OpClass::SocketRead)?;
        let n = self.short_read(available);
        if peek {
            buf[..n].copy_from_slice(&queued[..n]);
            return Ok(n);
        }
        self.net.recv(socket, &mut buf[..n], false)
    }

    pub(super) fn send_socket_raw(&mut self, socket: SocketId, data: &[u8]) -> SysResult<usize> {
        if !self.net.socket_ready(socket, Interest::Writable) {
            return self.net.send(socket, data);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        self.net.send(socket, &data[..n])
    }

    /// Read a pipe: ready means data or end of stream, so the read succeeds.
    pub(super) fn read_pipe(&mut self, pipe: PipeId, buf: &mut [u8]) -> SysResult<usize> {
        if !self.net.pipe_ready(pipe, false, Interest::Readable) {
            return self.net.pipe_read(pipe, buf);
        }
        self.inject(OpClass::SocketRead)?;
        let n = self.short_read(buf.len());
        self.net.pipe_read(pipe, &mut buf[..n])
    }

    pub(super) fn write_pipe(&mut self, pipe: PipeId, data: &[u8]) -> SysResult<usize> {
        if !self.net.pipe_ready(pipe, true, Interest::Writable) {
            return self.net.pipe_write(pipe, data);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        self.net.pipe_write(pipe, &data[..n])
    }

    /// Whether `fd`'s read side is at end of stream or failed (for the
    /// simulated pollers' `closed` flag; false for a closed fd).
    pub(in crate::sys::sim) fn hung_up(&self, fd: RawFd) -> bool {
        match self.entry(fd) {
            Ok(Fd::Socket(s)) => self.net.socket_hung_up(s),
            Ok(Fd::PipeRead(p)) => self.net.pipe_hung_up(p, false),
            Ok(Fd::PipeWrite(p)) => self.net.pipe_hung_up(p, true),
            _ => false,
        }
    }

    pub(super) fn wait_ready(&self, fd: RawFd, interest: Interest) -> SysResult<bool> {
        Ok(match self.entry(fd)? {
            Fd::File(_) | Fd::Directory(_) => true,
            Fd::Socket(s) => self.net.socket_ready(s, interest),
            Fd::Dgram(d) => self.dgram.ready(d, interest),
            Fd::PipeRead(p) => self.net.pipe_ready(p, false, interest),
            Fd::PipeWrite(p) => self.net.pipe_ready(p, true, interest),
        })
    }

    pub(super) fn pipe(&mut self) -> SysResult<(RawFd, RawFd)> {
        self.check_fd_room(2)?;
        let pipe = self.net.pipe();
        let read_end = self.install(Fd::PipeRead(pipe))?;
        let write_end = self.install(Fd::PipeWrite(pipe))?;
        Ok((read_end, write_end))
    }
}

// ---- zero-copy: sendfile and splice ----

impl State {
    pub(super) fn sendfile(
        &mut self,
        out_fd: RawFd,
        in_fd: RawFd,
        offset: u64,
        len: usize,
    ) -> SysResult<usize> {
        let input = self.entry(in_fd)?;
        if !input.readable() {
            return Err(Errno::EBADF);
        }
        if matches!(input, Fd::Socket(_) | Fd::PipeRead(_)) {
            return Err(Errno::ESPIPE);
        }
        let len = len
            .min(MAX_RW_COUNT)
            .min(usize::try_from(MAX_FILE_BYTES - offset).unwrap_or(usize::MAX));
        let output = self.entry(out_fd)?;
        if !output.writable() {
            return Err(Errno::EBADF);
        }
        let Fd::File(source) = input else {
            return Err(Errno::EINVAL); // a directory has no data to send
        };
        if matches!(output, Fd::File(f) if f.append) {
            return Err(Errno::EINVAL);
        }
        let mut data = vec![0; self.fs.readable_len(source.inode, offset, len)];
        if data.is_empty() {
            self.inject(OpClass::SocketWrite)?;
            return Ok(0);
        }
        self.fs.read(source.inode, offset, &mut data);
        match output {
            Fd::Socket(s) => self.send_socket(s, &data),
            Fd::PipeWrite(p) => self.write_pipe(p, &data),
            Fd::File(file) => self.write_file_fd(out_fd, file, &data, None, OpClass::SocketWrite),
            Fd::Directory(_) | Fd::PipeRead(_) | Fd::Dgram(_) => Err(Errno::EBADF),
        }
    }

    pub(super) fn splice(
        &mut self,
        (fd_in, off_in): (RawFd, Option<u64>),
        (fd_out, off_out): (RawFd, Option<u64>),
        len: usize,
    ) -> SysResult<usize> {
        if len == 0 {
            return Ok(0);
        }
        let len = len.min(SPLICE_MAX);
        let (input, output) = (self.entry(fd_in)?, self.entry(fd_out)?);
        if !input.readable() || !output.writable() {
            return Err(Errno::EBADF);
        }
        match (input, output) {
            (Fd::PipeRead(from), Fd::PipeWrite(to)) => {
                if off_in.is_some() || off_out.is_some() {
                    return Err(Errno::ESPIPE);
                }
                if from == to {
                    return Err(Errno::EINVAL);
                }
                self.pump(from, Sink::Pipe(to), len)
            }
            (Fd::PipeRead(from), out) => {
                if off_in.is_some() {
                    return Err(Errno::ESPIPE);
                }
                self.splice_from_pipe(from, (fd_out, out), off_out, len)
            }
            (input, Fd::PipeWrite(to)) => {
                if off_out.is_some() {
                    return Err(Errno::ESPIPE);
                }
                self.splice_to_pipe((fd_in, input), off_in, to, len)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Splice from pipe `from` into a file or socket.
    fn splice_from_pipe(
        &mut self,
        from: PipeId,
        (fd_out, output): (RawFd, Fd),
        off_out: Option<u64>,
        len: usize,
    ) -> SysResult<usize> {
        match output {
            Fd::File(file) if file.append => Err(Errno::EINVAL),
            Fd::File(file) => self.splice_pipe_to_file(from, fd_out, file, off_out, len),
            Fd::Socket(_) if off_out.is_some() => Err(Errno::ESPIPE),
            Fd::Socket(to) => self.pump(from, Sink::Socket(to), len),
            Fd::Directory(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) | Fd::Dgram(_) => {
                Err(Errno::EINVAL)
            }
        }
    }

    fn splice_pipe_to_file(
        &mut self,
        from: PipeId,
        fd_out: RawFd,
        file: OpenFile,
        off_out: Option<u64>,
        len: usize,
    ) -> SysResult<usize> {
        if !self.net.pipe_ready(from, false, Interest::Readable) {
            return Err(Errno::EAGAIN);
        }
        let offset = off_out.unwrap_or(file.offset);
        verify_range(offset, len)?;
        let fit = self.fs.write_fit(file.inode, offset, len);
        if fit == 0 {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(OpClass::SocketWrite)?;
        let mut data = vec![0; self.short_write(fit)];
        let n = self.net.pipe_read(from, &mut data)?;
        self.fs.write(file.inode, offset, &data[..n]);
        if off_out.is_none() {
            self.set_offset(fd_out, offset + n as u64);
        }
        Ok(n)
    }

    /// Splice from a file or socket into pipe `to`.
    fn splice_to_pipe(
        &mut self,
        (fd_in, input): (RawFd, Fd),
        off_in: Option<u64>,
        to: PipeId,
        len: usize,
    ) -> SysResult<usize> {
        let (mut data, consume) = match input {
            Fd::File(file) => {
                let offset = off_in.unwrap_or(file.offset);
                verify_range(offset, len)?;
                let mut data = vec![0; self.fs.readable_len(file.inode, offset, len)];
                self.fs.read(file.inode, offset, &mut data);
                (
                    data,
                    Consume::File(fd_in, off_in.is_none().then_some(offset)),
                )
            }
            Fd::Socket(_) if off_in.is_some() => return Err(Errno::ESPIPE),
            Fd::Socket(s) => {
                let mut data = vec![0; len];
                let n = self.net.recv(s, &mut data, true)?;
                data.truncate(n);
                (data, Consume::Socket(s))
            }
            Fd::Directory(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) | Fd::Dgram(_) => {
                return Err(Errno::EINVAL)
            }
        };
        if !self.net.pipe_ready(to, true, Interest::Writable) {
            return Err(Errno::EAGAIN);
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(data.len());
        let moved = if n == 0 {
            0
        } else {
            self.net.pipe_write(to, &data[..n])?
        };
        match consume {
            Consume::File(fd, Some(offset)) => self.set_offset(fd, offset + moved as u64),
            Consume::File(_, None) => {}
            Consume::Socket(s) => {
                self.net.recv(s, &mut data[..moved], false)?;
            }
        }
        Ok(moved)
    }

    /// Move up to `len` bytes from pipe `from` to `sink` one byte at a time,
    /// while both sides are ready: a pipe read cannot be undone, so no more
    /// is taken from the pipe than the sink has accepted.
    fn pump(&mut self, from: PipeId, sink: Sink, len: usize) -> SysResult<usize> {
        if !self.net.pipe_ready(from, false, Interest::Readable) || !self.sink_ready(sink) {
            return Err(Errno::EAGAIN);
        }
        if let Sink::Socket(s) = sink {
            // Report a dead connection before taking anything from the pipe.
            self.net.send(s, &[])?;
        }
        self.inject(OpClass::SocketWrite)?;
        let n = self.short_write(len);
        let mut moved = 0;
        let mut byte = [0u8; 1];
        while moved < n
            && self.net.pipe_ready(from, false, Interest::Readable)
            && self.sink_ready(sink)
        {
            if self.net.pipe_read(from, &mut byte)? == 0 {
                break;
            }
            let sent = match sink {
                Sink::Socket(s) => self.net.send(s, &byte),
                Sink::Pipe(p) => self.net.pipe_write(p, &byte),
            };
            match sent {
                Ok(_) => moved += 1,
                Err(errno) if moved == 0 => return Err(errno),
                Err(_) => break,
            }
        }
        Ok(moved)
    }

    fn sink_ready(&self, sink: Sink) -> bool {
        match sink {
            Sink::Socket(s) => self.net.socket_ready(s, Interest::Writable),
            Sink::Pipe(p) => self.net.pipe_ready(p, true, Interest::Writable),
        }
    }
}

/// Where a pipe's bytes go in [`State::pump`].
#[derive(Clone, Copy)]
enum Sink {
    Socket(SocketId),
    Pipe(PipeId),
}

/// How the source of a splice into a pipe is advanced once bytes moved.
enum Consume {
    /// A file: move the fd's offset from the given position, or (`None`) not at all.
    File(RawFd, Option<u64>),
    /// A socket: receive the bytes that were only peeked.
    Socket(SocketId),
}
