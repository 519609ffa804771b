//! Op descriptors that name files by path: open, rename, unlink, mkdir.

use super::{to_io, OpCode, Request};
use crate::sys::{Errno, Kernel, OpenFlags, SysResult};
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A path as the kernel takes it; a path with an interior NUL byte cannot be
/// passed to the kernel and fails the op with `EINVAL`.
pub(crate) struct KernelPath(Option<CString>);

impl KernelPath {
    pub(crate) fn new(path: &Path) -> KernelPath {
        KernelPath(CString::new(path.as_os_str().as_bytes()).ok())
    }

    /// A path no call may use: the op fails with `EINVAL` before reaching
    /// the kernel (an open whose options std refuses).
    pub(crate) fn refused() -> KernelPath {
        KernelPath(None)
    }

    pub(crate) fn get(&self) -> SysResult<&std::ffi::CStr> {
        self.0.as_deref().ok_or(Errno::EINVAL)
    }
}

/// `open(2)`.
pub struct Open {
    pub(crate) path: KernelPath,
    pub(crate) flags: OpenFlags,
    pub(crate) mode: u32,
}

impl OpCode for Open {
    type Output = io::Result<RawFd>;

    fn name(&self) -> &'static str {
        "open"
    }

    fn request(&mut self) -> Request<'_> {
        match self.path.get() {
            Ok(path) => Request::Open {
                path,
                flags: self.flags,
                mode: self.mode,
            },
            Err(_) => Request::Other,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        let fd = kernel.open(self.path.get()?, self.flags, self.mode)?;
        Ok(fd as usize)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(|fd| fd as RawFd)
    }

    fn discard(self, result: SysResult<usize>, kernel: &dyn Kernel) {
        if let Ok(fd) = result {
            let _ = kernel.close(fd as RawFd);
        }
    }
}

/// `rename(2)`.
pub struct Rename {
    pub(crate) from: KernelPath,
    pub(crate) to: KernelPath,
}

impl OpCode for Rename {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "rename"
    }

    fn request(&mut self) -> Request<'_> {
        match (self.from.get(), self.to.get()) {
            (Ok(from), Ok(to)) => Request::Rename { from, to },
            _ => Request::Other,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.rename(self.from.get()?, self.to.get()?).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `unlink(2)`.
pub struct Unlink {
    pub(crate) path: KernelPath,
}

impl OpCode for Unlink {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "unlink"
    }

    fn request(&mut self) -> Request<'_> {
        match self.path.get() {
            Ok(path) => Request::Unlink { path },
            Err(_) => Request::Other,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.unlink(self.path.get()?).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// `mkdir(2)`.
pub struct Mkdir {
    pub(crate) path: KernelPath,
    pub(crate) mode: u32,
}

impl OpCode for Mkdir {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "mkdir"
    }

    fn request(&mut self) -> Request<'_> {
        match self.path.get() {
            Ok(path) => Request::Mkdir {
                path,
                mode: self.mode,
            },
            Err(_) => Request::Other,
        }
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.mkdir(self.path.get()?, self.mode).map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}

/// An extended-attribute name as the kernel takes it (`EINVAL` with an
/// interior NUL, like a path).
fn xattr_name(name: &str) -> KernelPath {
    KernelPath(CString::new(name).ok())
}

/// `getxattr(2)` into an owned buffer; yields the value's length.
pub struct GetXattr {
    pub(crate) path: KernelPath,
    pub(crate) name: KernelPath,
    pub(crate) buf: Vec<u8>,
}

impl GetXattr {
    pub(crate) fn new(path: &Path, name: &str, capacity: usize) -> GetXattr {
        GetXattr {
            path: KernelPath::new(path),
            name: xattr_name(name),
            buf: vec![0; capacity],
        }
    }
}

impl OpCode for GetXattr {
    type Output = io::Result<Vec<u8>>;

    fn name(&self) -> &'static str {
        "getxattr"
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel.getxattr(self.path.get()?, self.name.get()?, &mut self.buf)
    }

    fn complete(mut self, result: SysResult<usize>) -> Self::Output {
        let len = to_io(result)?;
        self.buf.truncate(len);
        Ok(self.buf)
    }
}

/// `setxattr(2)`.
pub struct SetXattr {
    pub(crate) path: KernelPath,
    pub(crate) name: KernelPath,
    pub(crate) value: Vec<u8>,
    pub(crate) flags: i32,
}

impl SetXattr {
    pub(crate) fn new(path: &Path, name: &str, value: Vec<u8>, flags: i32) -> SetXattr {
        SetXattr {
            path: KernelPath::new(path),
            name: xattr_name(name),
            value,
            flags,
        }
    }
}

impl OpCode for SetXattr {
    type Output = io::Result<()>;

    fn name(&self) -> &'static str {
        "setxattr"
    }

    fn run_blocking(&mut self, kernel: &dyn Kernel) -> SysResult<usize> {
        kernel
            .setxattr(self.path.get()?, self.name.get()?, &self.value, self.flags)
            .map(|()| 0)
    }

    fn complete(self, result: SysResult<usize>) -> Self::Output {
        to_io(result).map(drop)
    }
}
