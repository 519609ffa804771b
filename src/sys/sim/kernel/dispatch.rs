//! The seam's [`Kernel`] for [`SimKernel`]: each call checks its
//! arguments, draws its faults and applies itself through the `State`
//! methods of the family modules (`file`, `path`, `stream`).

use super::*;

impl Kernel for SimKernel {
    fn fd_table_id(&self) -> u64 {
        self.fd_table_id
    }

    fn open(&self, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        self.call("open", (path, flags.bits(), mode), |st| {
            st.open(libc::AT_FDCWD, path, flags, mode)
        })
    }

    fn openat(&self, dir_fd: RawFd, path: &CStr, flags: OpenFlags, mode: u32) -> SysResult<RawFd> {
        self.call("openat", (dir_fd, path, flags.bits(), mode), |st| {
            st.open(dir_fd, path, flags, mode)
        })
    }

    fn close(&self, fd: RawFd) -> SysResult<()> {
        self.call("close", fd, |st| st.close(fd))
    }

    fn fd_epoch(&self, fd: RawFd) -> u32 {
        self.lock().fd_epoch(fd)
    }

    fn note_fd_released(&self, fd: RawFd) {
        self.lock().bump_fd_epoch(fd);
    }

    fn read(&self, fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
        self.call("read", (fd, buf.len()), |st| st.read_fd(fd, buf, None))
    }

    fn write(&self, fd: RawFd, buf: &[u8]) -> SysResult<usize> {
        self.call("write", (fd, buf.len()), |st| st.write_fd(fd, buf, None))
    }

    fn pread(&self, fd: RawFd, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        self.call("pread", (fd, buf.len(), offset), |st| {
            st.read_fd(fd, buf, Some(file_offset(offset)?))
        })
    }

    fn pwrite(&self, fd: RawFd, buf: &[u8], offset: u64) -> SysResult<usize> {
        self.call("pwrite", (fd, buf.len(), offset), |st| {
            st.write_fd(fd, buf, Some(file_offset(offset)?))
        })
    }

    fn readv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        self.call("readv", (fd, bufs.len()), |st| st.readv_fd(fd, bufs, None))
    }

    fn writev(&self, fd: RawFd, bufs: &[IoSlice<'_>]) -> SysResult<usize> {
        self.call("writev", (fd, bufs.len()), |st| {
            st.writev_fd(fd, bufs, None)
        })
    }

    fn preadv(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>], offset: u64) -> SysResult<usize> {
        self.call("preadv", (fd, bufs.len(), offset), |st| {
            st.readv_fd(fd, bufs, Some(file_offset(offset)?))
        })
    }

    fn pwritev(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        self.call("pwritev", (fd, bufs.len(), offset), |st| {
            st.writev_fd(fd, bufs, Some(file_offset(offset)?))
        })
    }

    fn preadv_nowait(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> SysResult<usize> {
        self.call("preadv_nowait", (fd, bufs.len(), offset), |st| {
            st.readv_nowait(fd, bufs, file_offset(offset)?)
        })
    }

    fn read_nowait(&self, fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> SysResult<usize> {
        self.call("read_nowait", (fd, bufs.len()), |st| {
            st.read_nowait(fd, bufs)
        })
    }

    fn pwritev_nowait(&self, fd: RawFd, bufs: &[IoSlice<'_>], offset: u64) -> SysResult<usize> {
        self.call("pwritev_nowait", (fd, bufs.len(), offset), |st| {
            st.writev_nowait(fd, bufs, file_offset(offset)?)
        })
    }

    fn lseek(&self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64> {
        self.call("lseek", (fd, offset, whence), |st| {
            st.lseek(fd, offset, whence)
        })
    }

    fn fsync(&self, fd: RawFd) -> SysResult<()> {
        self.call("fsync", fd, |st| st.fsync(fd))
    }

    fn fdatasync(&self, fd: RawFd) -> SysResult<()> {
        self.call("fdatasync", fd, |st| st.fsync(fd))
    }

    fn ftruncate(&self, fd: RawFd, len_bytes: u64) -> SysResult<()> {
        self.call("ftruncate", (fd, len_bytes), |st| {
            st.ftruncate(fd, file_offset(len_bytes)?)
        })
    }

    fn fallocate(&self, fd: RawFd, mode: i32, offset: u64, len_bytes: u64) -> SysResult<()> {
        self.call("fallocate", (fd, mode, offset, len_bytes), |st| {
            st.fallocate(fd, mode, file_offset(offset)?, file_offset(len_bytes)?)
        })
    }

    fn fstat(&self, fd: RawFd) -> SysResult<FileStat> {
        self.call("fstat", fd, |st| st.fstat(fd))
    }

    fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat> {
        self.call("fstatfs", fd, |st| st.fstatfs(fd))
    }

    fn fadvise(&self, fd: RawFd, offset: u64, len_bytes: u64, advice: Advice) -> SysResult<()> {
        self.call("fadvise", (fd, offset, len_bytes, advice), |st| {
            file_offset(offset)?;
            file_offset(len_bytes)?;
            st.fadvise(fd, offset, len_bytes, advice)
        })
    }

    fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
        self.call("getxattr", (path, name, buf.len()), |st| {
            st.getxattr(path, name, buf)
        })
    }

    fn setxattr(&self, path: &CStr, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
        self.call("setxattr", (path, name, value.len(), flags), |st| {
            st.setxattr(path, name, value, flags)
        })
    }

    fn rename(&self, from: &CStr, to: &CStr) -> SysResult<()> {
        self.call("rename", (from, to), |st| st.rename(from, to))
    }

    fn unlink(&self, path: &CStr) -> SysResult<()> {
        self.call("unlink", path, |st| st.unlink(path))
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
        self.call("mkdir", (path, mode), |st| st.mkdir(path, mode))
    }

    fn socket(&self, like: &SocketAddr, ty: SockType) -> SysResult<RawFd> {
        self.call("socket", (like, ty), |st| st.socket(like, ty))
    }

    fn set_option(&self, fd: RawFd, opt: SockOpt) -> SysResult<()> {
        self.call("set_option", (fd, opt), |st| st.set_option(fd, opt))
    }

    fn bind(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        self.call("bind", (fd, addr), |st| match st.dgram_of(fd)? {
            Some(d) => {
                st.inject(OpClass::SocketSetup)?;
                st.dgram.bind_inet(d, addr)
            }
            None => st.setup(fd, |net, s| net.bind(s, addr)),
        })
    }

    fn listen(&self, fd: RawFd, backlog: i32) -> SysResult<()> {
        self.call("listen", (fd, backlog), |st| match st.dgram_of(fd)? {
            Some(d) => {
                st.inject(OpClass::SocketSetup)?;
                st.dgram.listen(d, backlog)
            }
            None => st.setup(fd, |net, s| net.listen(s, backlog)),
        })
    }

    fn accept(&self, fd: RawFd, nonblocking: bool) -> SysResult<(RawFd, SocketAddr)> {
        // Sim sockets never block, so `nonblocking` changes nothing.
        self.call("accept", (fd, nonblocking), |st| st.accept(fd))
    }

    fn connect(&self, fd: RawFd, addr: &SocketAddr) -> SysResult<()> {
        self.call("connect", (fd, addr), |st| match st.dgram_of(fd)? {
            Some(d) => {
                st.inject(OpClass::SocketSetup)?;
                st.dgram.connect(d, &SockAddr::Inet(*addr))
            }
            None => st.setup(fd, |net, s| net.connect(s, addr)),
        })
    }

    fn local_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        self.call("local_addr", fd, |st| {
            st.sock_name(fd)?.as_inet().ok_or(Errno(libc::EAFNOSUPPORT))
        })
    }

    fn peer_addr(&self, fd: RawFd) -> SysResult<SocketAddr> {
        self.call("peer_addr", fd, |st| {
            st.peer_name(fd)?.as_inet().ok_or(Errno(libc::EAFNOSUPPORT))
        })
    }

    fn take_socket_error(&self, fd: RawFd) -> SysResult<Option<Errno>> {
        self.call("take_socket_error", fd, |st| st.dgram_of(fd).map(|_| None))
    }

    fn recv(&self, fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> SysResult<usize> {
        self.call("recv", (fd, buf.len(), flags.0), |st| {
            let peek = flags.0 & MsgFlags::PEEK.0 != 0;
            if let Some(d) = st.dgram_of(fd)? {
                let mut bufs = [IoSliceMut::new(buf)];
                return st.recv_dgram(d, &mut bufs, 0, peek).map(|m| m.bytes);
            }
            let socket = st.socket_of(fd)?;
            st.recv_socket(socket, buf, peek)
        })
    }

    fn send(&self, fd: RawFd, buf: &[u8], flags: MsgFlags) -> SysResult<usize> {
        self.call("send", (fd, buf.len(), flags.0), |st| {
            if let Some(d) = st.dgram_of(fd)? {
                return st.send_dgram(d, buf, None, &[]);
            }
            let socket = st.socket_of(fd)?;
            st.send_socket(socket, buf)
        })
    }

    fn shutdown(&self, fd: RawFd, how: Shutdown) -> SysResult<()> {
        self.call("shutdown", (fd, how), |st| match st.dgram_of(fd)? {
            Some(d) if st.dgram.is_stream(d) => Ok(()),
            Some(_) => Err(Errno::EOPNOTSUPP),
            None => st.setup(fd, |net, s| net.shutdown(s, how)),
        })
    }

    fn sendfile(
        &self,
        out_fd: RawFd,
        in_fd: RawFd,
        in_offset: u64,
        len_bytes: usize,
    ) -> SysResult<usize> {
        self.call("sendfile", (out_fd, in_fd, in_offset, len_bytes), |st| {
            st.sendfile(out_fd, in_fd, file_offset(in_offset)?, len_bytes)
        })
    }

    fn wait_ready(&self, fd: RawFd, interest: Interest, timeout_ms: i32) -> SysResult<bool> {
        // Never blocks: the sim has nothing else that could make `fd` ready.
        self.call("wait_ready", (fd, interest, timeout_ms), |st| {
            st.wait_ready(fd, interest)
        })
    }

    fn unix_socket(&self, ty: SockType) -> SysResult<RawFd> {
        self.call("unix_socket", ty, |st| st.unix_socket(ty))
    }

    fn unix_pair(&self, ty: SockType) -> SysResult<(RawFd, RawFd)> {
        self.call("unix_pair", ty, |st| st.unix_pair(ty))
    }

    fn bind_unix(&self, fd: RawFd, path: &Path) -> SysResult<()> {
        self.call("bind_unix", (fd, path), |st| st.bind_unix(fd, path))
    }

    fn connect_unix(&self, fd: RawFd, path: &Path) -> SysResult<()> {
        self.call("connect_unix", (fd, path), |st| st.connect_unix(fd, path))
    }

    fn accept_unix(&self, fd: RawFd) -> SysResult<(RawFd, SockAddr)> {
        self.call("accept_unix", fd, |st| st.accept_unix(fd))
    }

    fn sock_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        self.call("sock_name", fd, |st| st.sock_name(fd))
    }

    fn peer_name(&self, fd: RawFd) -> SysResult<SockAddr> {
        self.call("peer_name", fd, |st| st.peer_name(fd))
    }

    fn sendmsg(
        &self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        to: Option<&SockAddr>,
        fds: &[RawFd],
        flags: MsgFlags,
    ) -> SysResult<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        self.call("sendmsg", (fd, len, to, fds, flags.0), |st| {
            st.sendmsg(fd, bufs, to, fds)
        })
    }

    fn recvmsg(
        &self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        fds_max: usize,
        flags: MsgFlags,
    ) -> SysResult<RecvMeta> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        self.call("recvmsg", (fd, len, fds_max, flags.0), |st| {
            st.recvmsg(fd, bufs, fds_max, flags)
        })
    }

    fn pipe(&self) -> SysResult<(RawFd, RawFd)> {
        self.call("pipe", (), State::pipe)
    }

    fn splice(
        &self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len_bytes: usize,
    ) -> SysResult<usize> {
        let args = (fd_in, off_in, fd_out, off_out, len_bytes);
        self.call("splice", args, |st| {
            let off_in = off_in.map(file_offset).transpose()?;
            let off_out = off_out.map(file_offset).transpose()?;
            st.splice((fd_in, off_in), (fd_out, off_out), len_bytes)
        })
    }
}
