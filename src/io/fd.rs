//! std's fd conventions for every fd-owning type of this crate: `AsFd`,
//! `AsRawFd`, `IntoRawFd`, `FromRawFd` (unsafe, as std's) and
//! `From<OwnedFd>`, through one macro, [`impl_fd_traits!`], applied to
//! each type here; plus `From` the matching std type.
//!
//! A type joins by having three inherent functions — `as_raw_fd(&self)`,
//! `into_raw_fd(self)` and `pub(crate) from_fd(RawFd) -> Self` (own an
//! open fd of the current kernel) — and one `impl_fd_traits!(Type);` line
//! below.
//!
//! The fd numbers are the kernel's the object was made on: on a
//! simulated runtime thread they are the simulated machine's, which the
//! host kernel does not know; hand them only to iokernel there.
//!
//! ```
//! use iokernel::fs::File;
//! use std::os::fd::{AsFd, AsRawFd, OwnedFd};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("fd.txt");
//! # std::fs::write(&path, b"std").unwrap();
//! let std_file = std::fs::File::open(&path).unwrap();
//! let file = File::from(std_file);
//! assert_eq!(file.as_fd().as_raw_fd(), AsRawFd::as_raw_fd(&file));
//! let owned: OwnedFd = file.as_fd().try_clone_to_owned().unwrap();
//! let again = File::from(owned);
//! let (n, buf) = iokernel::runtime::block_on_here(again.read_at(vec![0u8; 8], 0)).into_parts();
//! assert_eq!(&buf[..n.unwrap()], b"std");
//!
//! // The unsafe way, as with std: the caller vouches for the fd.
//! use std::os::fd::{FromRawFd, IntoRawFd};
//! let raw = std::fs::File::open(&path).unwrap().into_raw_fd();
//! // SAFETY: `raw` is an open file this code owns and hands over.
//! let file = unsafe { File::from_raw_fd(raw) };
//! assert_eq!(file.into_raw_fd(), raw);
//! # iokernel::io::close(raw).wait().unwrap();
//! ```

// FFI file: `AsFd` lends a `BorrowedFd` and `FromRawFd` is an unsafe
// trait method; both are std's I/O-safety boundary.
#![allow(unsafe_code)]

use crate::fs::File;
use crate::net::{
    ReceivedFd, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use std::os::fd::OwnedFd;

/// Implement `AsFd`, `AsRawFd`, `IntoRawFd`, `FromRawFd` and
/// `From<OwnedFd>` for an fd-owning type (see the module docs).
macro_rules! impl_fd_traits {
    ($ty:ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                <$ty>::as_raw_fd(self)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                // SAFETY: `self` owns the fd and closes it only when
                // dropped (or gives it up by value), so it stays open for
                // the borrow's lifetime.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(<$ty>::as_raw_fd(self)) }
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                <$ty>::into_raw_fd(self)
            }
        }

        impl std::os::fd::FromRawFd for $ty {
            /// Own `fd`, which must be open, of the right kind, owned by
            /// nobody else, and the current kernel's (std's contract).
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                <$ty>::from_fd(fd)
            }
        }

        impl From<std::os::fd::OwnedFd> for $ty {
            fn from(fd: std::os::fd::OwnedFd) -> $ty {
                <$ty>::from_fd(std::os::fd::IntoRawFd::into_raw_fd(fd))
            }
        }
    };
}

impl_fd_traits!(File);
impl_fd_traits!(TcpStream);
impl_fd_traits!(TcpListener);
impl_fd_traits!(UdpSocket);
impl_fd_traits!(UnixStream);
impl_fd_traits!(UnixListener);
impl_fd_traits!(UnixDatagram);
impl_fd_traits!(ReceivedFd);

impl From<std::fs::File> for File {
    /// Own a std file's fd (the real kernel's).
    fn from(file: std::fs::File) -> File {
        File::from(OwnedFd::from(file))
    }
}

impl From<std::net::TcpStream> for TcpStream {
    /// Own a std stream's fd, switched to non-blocking like every
    /// iokernel socket.
    fn from(stream: std::net::TcpStream) -> TcpStream {
        TcpStream::from(OwnedFd::from(stream))
    }
}

impl From<std::net::TcpListener> for TcpListener {
    /// Own a std listener's fd, switched to non-blocking.
    fn from(listener: std::net::TcpListener) -> TcpListener {
        TcpListener::from(OwnedFd::from(listener))
    }
}

impl From<std::net::UdpSocket> for UdpSocket {
    /// Own a std UDP socket's fd, switched to non-blocking.
    fn from(socket: std::net::UdpSocket) -> UdpSocket {
        UdpSocket::from(OwnedFd::from(socket))
    }
}

impl From<std::os::unix::net::UnixStream> for UnixStream {
    /// Own a std Unix stream's fd, switched to non-blocking.
    fn from(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream::from(OwnedFd::from(stream))
    }
}

impl From<std::os::unix::net::UnixListener> for UnixListener {
    /// Own a std Unix listener's fd, switched to non-blocking.
    fn from(listener: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener::from(OwnedFd::from(listener))
    }
}

impl From<std::os::unix::net::UnixDatagram> for UnixDatagram {
    /// Own a std Unix datagram socket's fd, switched to non-blocking.
    fn from(socket: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram::from(OwnedFd::from(socket))
    }
}
