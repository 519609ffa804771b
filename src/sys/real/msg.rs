//! The real kernel's Unix-socket and message calls: `AF_UNIX` sockets,
//! their addresses, and `sendmsg`/`recvmsg` with `SCM_RIGHTS`.
//!
//! Received fds are close-on-exec from the start on Linux
//! (`MSG_CMSG_CLOEXEC`); elsewhere `FD_CLOEXEC` is set right after the call.

// FFI file: `sockaddr_un`, `msghdr` and control-message layouts.
#![allow(unsafe_code)]

use super::ffi::{addr_from_storage, socklen, zeroed_storage, RawAddr};
use super::kernel::{accept_raw, byte_count, sockaddr_out, RealKernel};
use super::syscall::syscall;
use crate::sys::{
    check_unix_path, Errno, Kernel, MsgFlags, RecvMeta, SockAddr, SockType, SysResult, SCM_MAX_FDS,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::{offset_of, size_of};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::ptr;

/// Most buffers one `sendmsg`/`recvmsg` passes (Linux `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

fn sock_type(ty: SockType) -> libc::c_int {
    let ty = match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Datagram => libc::SOCK_DGRAM,
    };
    #[cfg(linux)]
    let ty = ty | libc::SOCK_CLOEXEC;
    ty
}

/// Mark an fd close-on-exec where the call could not (off Linux).
#[cfg(not(linux))]
fn set_cloexec(fd: RawFd) -> SysResult<RawFd> {
    // SAFETY: F_SETFD takes a plain int argument, no pointer.
    match syscall(|| unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }) {
        Ok(_) => Ok(fd),
        Err(e) => {
            let _ = RealKernel.close(fd);
            Err(e)
        }
    }
}

#[cfg(linux)]
fn set_cloexec(fd: RawFd) -> SysResult<RawFd> {
    Ok(fd)
}

/// `path` as a `sockaddr_un` and the length to pass with it.
fn unix_addr(path: &Path) -> SysResult<(libc::sockaddr_un, libc::socklen_t)> {
    check_unix_path(path)?;
    // SAFETY: sockaddr_un is plain old data; all-zero bytes are valid.
    let mut raw: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    for (slot, &b) in raw.sun_path.iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    let len = offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    Ok((raw, len as libc::socklen_t))
}

/// Decode an address of any family the kernel wrote into `storage`. An
/// abstract Unix address is reported as [`SockAddr::Unnamed`].
fn sock_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> SysResult<SockAddr> {
    if libc::c_int::from(storage.ss_family) != libc::AF_UNIX {
        return addr_from_storage(storage, len).map(SockAddr::Inet);
    }
    let path_start = offset_of!(libc::sockaddr_un, sun_path);
    let len = (len as usize).min(size_of::<libc::sockaddr_un>());
    if len <= path_start {
        return Ok(SockAddr::Unnamed);
    }
    // SAFETY: the storage is large and aligned enough for a sockaddr_un,
    // fully initialised (zeroed, then written by the kernel).
    let un = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_un>() };
    let path: Vec<u8> = un.sun_path[..len - path_start]
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    if path.is_empty() {
        return Ok(SockAddr::Unnamed);
    }
    Ok(SockAddr::Unix(PathBuf::from(std::ffi::OsString::from_vec(
        path,
    ))))
}

pub(super) fn unix_socket(ty: SockType) -> SysResult<RawFd> {
    // SAFETY: socket takes no pointers.
    let fd = syscall(|| unsafe { libc::socket(libc::AF_UNIX, sock_type(ty), 0) })?;
    set_cloexec(fd)
}

pub(super) fn unix_pair(ty: SockType) -> SysResult<(RawFd, RawFd)> {
    let mut fds = [-1; 2];
    syscall(|| {
        // SAFETY: `fds` is a live array of two c_ints.
        unsafe { libc::socketpair(libc::AF_UNIX, sock_type(ty), 0, fds.as_mut_ptr()) }
    })?;
    let first = set_cloexec(fds[0]);
    let second = set_cloexec(fds[1]);
    match (first, second) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), other) | (Ok(_), other @ Err(e)) => {
            let _ = other.map(|fd| RealKernel.close(fd));
            let _ = first.map(|fd| RealKernel.close(fd));
            Err(e)
        }
    }
}

pub(super) fn bind_unix(fd: RawFd, path: &Path) -> SysResult<()> {
    let (raw, len) = unix_addr(path)?;
    // SAFETY: `raw` is a live sockaddr_un of at least `len` bytes.
    syscall(|| unsafe { libc::bind(fd, ptr::from_ref(&raw).cast(), len) }).map(drop)
}

pub(super) fn connect_unix(fd: RawFd, path: &Path) -> SysResult<()> {
    let (raw, len) = unix_addr(path)?;
    // SAFETY: `raw` is a live sockaddr_un of at least `len` bytes.
    syscall(|| unsafe { libc::connect(fd, ptr::from_ref(&raw).cast(), len) }).map(drop)
}

pub(super) fn accept_unix(fd: RawFd) -> SysResult<(RawFd, SockAddr)> {
    let (new_fd, storage, len) = sockaddr_out(|addr, len| accept_raw(fd, addr, len, true))?;
    #[cfg(not(linux))]
    let new_fd = super::kernel::new_fd_flags(new_fd, true)?;
    match sock_addr(&storage, len) {
        Ok(peer) => Ok((new_fd, peer)),
        Err(e) => {
            let _ = RealKernel.close(new_fd);
            Err(e)
        }
    }
}

pub(super) fn sock_name(fd: RawFd) -> SysResult<SockAddr> {
    let (_, storage, len) = sockaddr_out(|addr, len| {
        // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
        unsafe { libc::getsockname(fd, addr, len) }
    })?;
    sock_addr(&storage, len)
}

pub(super) fn peer_name(fd: RawFd) -> SysResult<SockAddr> {
    let (_, storage, len) = sockaddr_out(|addr, len| {
        // SAFETY: `addr`/`len` point at a live sockaddr_storage and its size.
        unsafe { libc::getpeername(fd, addr, len) }
    })?;
    sock_addr(&storage, len)
}

/// The destination of a `sendmsg`, laid out for the kernel.
enum Dest {
    Inet(RawAddr),
    Unix(libc::sockaddr_un, libc::socklen_t),
}

impl Dest {
    fn new(to: &SockAddr) -> SysResult<Dest> {
        match to {
            SockAddr::Inet(addr) => Ok(Dest::Inet(RawAddr::new(addr))),
            SockAddr::Unix(path) => unix_addr(path).map(|(raw, len)| Dest::Unix(raw, len)),
            SockAddr::Unnamed => Err(Errno::EINVAL),
        }
    }

    fn as_ptr(&self) -> (*mut libc::c_void, libc::socklen_t) {
        match self {
            Dest::Inet(raw) => {
                let (p, len) = raw.as_ptr();
                (p.cast_mut().cast(), len)
            }
            Dest::Unix(raw, len) => (ptr::from_ref(raw).cast_mut().cast(), *len),
        }
    }
}

/// A control buffer for `fds` fds, aligned for `cmsghdr`.
fn control_buffer(fds: usize) -> Vec<u64> {
    // SAFETY: CMSG_SPACE only computes a size.
    let bytes = unsafe { libc::CMSG_SPACE((fds * size_of::<RawFd>()) as u32) } as usize;
    vec![0u64; bytes.div_ceil(size_of::<u64>())]
}

pub(super) fn sendmsg(
    fd: RawFd,
    bufs: &[IoSlice<'_>],
    to: Option<&SockAddr>,
    fds: &[RawFd],
    flags: MsgFlags,
) -> SysResult<usize> {
    if fds.len() > SCM_MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let dest = to.map(Dest::new).transpose()?;
    let mut control = if fds.is_empty() {
        Vec::new()
    } else {
        control_buffer(fds.len())
    };
    // SAFETY: msghdr is plain old data; all-zero bytes are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(dest) = &dest {
        (msg.msg_name, msg.msg_namelen) = dest.as_ptr();
    }
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(IOV_MAX) as _;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = (control.len() * size_of::<u64>()) as _;
        // SAFETY: the control buffer holds CMSG_SPACE(fds) bytes, so the
        // first header and its data (CMSG_LEN(fds) bytes) fit inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
    }
    let flags = flags.0 | libc::MSG_NOSIGNAL;
    // SAFETY: `msg` points at the iovecs, the destination and the control
    // buffer, all alive for the call; IoSlice is ABI-compatible with iovec.
    syscall(|| unsafe { libc::sendmsg(fd, &msg, flags) }).map(byte_count)
}

pub(super) fn recvmsg(
    fd: RawFd,
    bufs: &mut [IoSliceMut<'_>],
    fds_max: usize,
    flags: MsgFlags,
) -> SysResult<RecvMeta> {
    let fds_max = fds_max.min(SCM_MAX_FDS);
    let mut control = control_buffer(fds_max.max(1));
    let mut storage = zeroed_storage();
    // SAFETY: msghdr is plain old data; all-zero bytes are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    #[cfg(linux)]
    let flags = flags.0 | libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(linux))]
    let flags = flags.0;
    let n = syscall(|| {
        msg.msg_name = ptr::from_mut(&mut storage).cast();
        msg.msg_namelen = socklen::<libc::sockaddr_storage>();
        msg.msg_iov = bufs.as_mut_ptr().cast();
        msg.msg_iovlen = bufs.len().min(IOV_MAX) as _;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = if fds_max == 0 {
            0
        } else {
            (control.len() * size_of::<u64>()) as _
        };
        msg.msg_flags = 0;
        // SAFETY: `msg` points at the iovecs, the address storage and the
        // control buffer, all alive and writable for the call.
        unsafe { libc::recvmsg(fd, &mut msg, flags) }
    })
    .map(byte_count)?;
    let mut meta = RecvMeta {
        bytes: n,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        ..RecvMeta::default()
    };
    meta.fds = received_fds(&msg);
    // The control buffer is rounded up to alignment and may hold more than
    // asked: close the extra fds, as a tighter buffer would have.
    if meta.fds.len() > fds_max {
        for extra in meta.fds.split_off(fds_max) {
            let _ = RealKernel.close(extra);
        }
        meta.fds_truncated = true;
    }
    for fd in &mut meta.fds {
        *fd = set_cloexec(*fd)?;
    }
    meta.from = match msg.msg_namelen {
        0 => None,
        len => Some(sock_addr(&storage, len)?),
    };
    Ok(meta)
}

/// The fds of every `SCM_RIGHTS` message in `msg`'s control buffer.
fn received_fds(msg: &libc::msghdr) -> Vec<RawFd> {
    let mut fds = Vec::new();
    if msg.msg_controllen == 0 {
        return fds;
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of the control
    // buffer with well-formed headers; CMSG_* walk them within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize - header) / size_of::<RawFd>();
                for i in 0..count {
                    fds.push(ptr::read_unaligned(data.cast::<RawFd>().add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    fds
}

/// A `msghdr` with its iovec, address and control buffer in one heap
/// block, for a completion ring's `SENDMSG`/`RECVMSG` entry: the kernel
/// reads (and, for a receive, writes) it until the completion arrives, so
/// its owner keeps the box alive until then and never moves what is inside.
/// Linux only (the only system with a kernel completion ring).
#[cfg(linux)]
pub(crate) struct MsgHeader {
    hdr: libc::msghdr,
    iov: libc::iovec,
    name: libc::sockaddr_storage,
    control: Vec<u64>,
    fds_max: usize,
}

// SAFETY: the raw pointers inside point into the box itself and into the
// buffer of the op that owns it; the box moves between threads only with
// that op, and only the kernel dereferences them, while the op is in flight.
#[cfg(linux)]
unsafe impl Send for MsgHeader {}

#[cfg(linux)]
impl MsgHeader {
    fn boxed(fds: usize, fds_max: usize) -> Box<MsgHeader> {
        Box::new(MsgHeader {
            // SAFETY: msghdr is plain old data; all-zero bytes are valid.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            },
            name: zeroed_storage(),
            control: if fds == 0 {
                Vec::new()
            } else {
                control_buffer(fds)
            },
            fds_max,
        })
    }

    /// Point the header at the box's own parts (after it has its address).
    fn link(&mut self, name_len: libc::socklen_t) {
        self.hdr.msg_iov = ptr::from_mut(&mut self.iov);
        self.hdr.msg_iovlen = 1;
        if name_len > 0 {
            self.hdr.msg_name = ptr::from_mut(&mut self.name).cast();
            self.hdr.msg_namelen = name_len;
        }
        if !self.control.is_empty() {
            self.hdr.msg_control = self.control.as_mut_ptr().cast();
            self.hdr.msg_controllen = (self.control.len() * size_of::<u64>()) as _;
        }
    }

    /// A header sending `buf` to `to` (`None`: the connected peer) with
    /// `fds` as `SCM_RIGHTS`; `buf` must outlive the entry.
    pub(crate) fn send(
        buf: &[u8],
        to: Option<&SockAddr>,
        fds: &[RawFd],
    ) -> SysResult<Box<MsgHeader>> {
        if fds.len() > SCM_MAX_FDS {
            return Err(Errno::EINVAL);
        }
        let mut header = MsgHeader::boxed(fds.len(), 0);
        let name_len = match to.map(Dest::new).transpose()? {
            None => 0,
            Some(dest) => {
                let (from, len) = dest.as_ptr();
                // SAFETY: `from` points at `len` bytes of a sockaddr (at
                // most a sockaddr_un), which fit a sockaddr_storage.
                unsafe {
                    ptr::copy_nonoverlapping(
                        from.cast::<u8>(),
                        ptr::from_mut(&mut header.name).cast::<u8>(),
                        len as usize,
                    )
                };
                len
            }
        };
        header.iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        header.link(name_len);
        if !fds.is_empty() {
            // SAFETY: the control buffer holds CMSG_SPACE(fds) bytes, so the
            // first header and its data (CMSG_LEN(fds) bytes) fit inside it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&header.hdr);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
                ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
            }
        }
        Ok(header)
    }

    /// A header receiving into `buf` with room for `fds_max` fds; `buf`
    /// must outlive the entry.
    pub(crate) fn recv(buf: &mut [u8], fds_max: usize) -> Box<MsgHeader> {
        let fds_max = fds_max.min(SCM_MAX_FDS);
        let mut header = MsgHeader::boxed(fds_max, fds_max);
        header.iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        header.link(socklen::<libc::sockaddr_storage>());
        header
    }

    /// The `msghdr` to put in the entry.
    pub(crate) fn as_ptr(&mut self) -> *mut libc::msghdr {
        ptr::from_mut(&mut self.hdr)
    }

    /// What a completed receive of `bytes` got, as `recvmsg` reports it on
    /// the pool (fds past `fds_max` closed, all close-on-exec).
    pub(crate) fn received(&self, bytes: usize) -> SysResult<RecvMeta> {
        let msg = &self.hdr;
        let mut meta = RecvMeta {
            bytes,
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
            fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
            ..RecvMeta::default()
        };
        meta.fds = received_fds(msg);
        if meta.fds.len() > self.fds_max {
            for extra in meta.fds.split_off(self.fds_max) {
                let _ = RealKernel.close(extra);
            }
            meta.fds_truncated = true;
        }
        for fd in &mut meta.fds {
            *fd = set_cloexec(*fd)?;
        }
        meta.from = match msg.msg_namelen {
            0 => None,
            len => Some(sock_addr(&self.name, len)?),
        };
        Ok(meta)
    }
}
