//! C layouts shared by the real kernel layer and the io_uring entries:
//! socket addresses in and out of `sockaddr_*`, and `st_mode` file types.

// FFI file: C struct layouts.
#![allow(unsafe_code)]

use crate::sys::{Errno, FileType, SysResult};
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;

/// `size_of::<T>()` as a `socklen_t` (only used for small C structs).
pub(crate) fn socklen<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

/// A [`SocketAddr`] laid out the way the kernel reads it.
pub(crate) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawAddr {
    pub(crate) fn new(addr: &SocketAddr) -> RawAddr {
        // Start from zeroed structs and set the fields every system has:
        // the BSDs add a length byte (`sin_len`), left zero as they allow.
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain old data; all-zero bytes are valid.
                let mut raw: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                raw.sin_family = libc::AF_INET as libc::sa_family_t;
                raw.sin_port = a.port().to_be();
                raw.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                RawAddr::V4(raw)
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain old data; all-zero bytes are valid.
                let mut raw: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                raw.sin6_port = a.port().to_be();
                raw.sin6_flowinfo = a.flowinfo();
                raw.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                raw.sin6_scope_id = a.scope_id();
                RawAddr::V6(raw)
            }
        }
    }

    /// Pointer and length to hand to `bind`/`connect`; valid while `self` is.
    pub(crate) fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawAddr::V4(a) => (ptr::from_ref(a).cast(), socklen::<libc::sockaddr_in>()),
            RawAddr::V6(a) => (ptr::from_ref(a).cast(), socklen::<libc::sockaddr_in6>()),
        }
    }
}

/// A zeroed `statx` for an io_uring `STATX` entry to fill.
#[cfg(linux)]
pub(crate) fn zeroed_statx() -> libc::statx {
    // SAFETY: statx is plain old data (integers only); all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

pub(crate) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

/// Decode an address the kernel wrote into `storage` (`len` bytes).
pub(crate) fn addr_from_storage(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> SysResult<SocketAddr> {
    let len = len as usize;
    let base = ptr::from_ref(storage);
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the storage is large and aligned enough for a
            // sockaddr_in, fully initialised (zeroed, then written by the kernel).
            let a = unsafe { *base.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the storage is large and aligned enough for a
            // sockaddr_in6, fully initialised (zeroed, then written by the kernel).
            let a = unsafe { *base.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Ok(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
        }
        // Another family (or a truncated address): nothing SocketAddr holds.
        _ => Err(Errno(libc::EAFNOSUPPORT)),
    }
}

pub(crate) fn file_type(mode: libc::mode_t) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileType::Regular,
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFIFO => FileType::Fifo,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::Other,
    }
}
