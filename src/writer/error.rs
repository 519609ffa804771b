//! The writer's error: which op failed, on which path, at which offset, and
//! the errno the kernel gave.
//!
//! Every error the writer returns is an `io::Error` whose inner error is a
//! [`WriteError`] (its kind is the kernel error's kind). Get the errno with
//! [`errno_of`], which also reads plain OS errors:
//!
//! ```
//! use iokernel::writer::{errno_of, WriteError};
//! let err: std::io::Error = WriteError::os("pwrite", "/data/out.jsonl", Some(4096), 28).into();
//! assert_eq!(errno_of(&err), Some(28)); // ENOSPC
//! assert!(err.to_string().contains("pwrite"));
//! assert!(err.to_string().contains("/data/out.jsonl"));
//! assert!(err.to_string().contains("offset 4096"));
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A failed writer operation.
#[derive(Debug)]
pub struct WriteError {
    op: &'static str,
    path: PathBuf,
    offset: Option<u64>,
    source: io::Error,
}

impl WriteError {
    /// `op` on `path` (at `offset`, for positional ops) failed with `source`.
    pub fn new(
        op: &'static str,
        path: impl AsRef<Path>,
        offset: Option<u64>,
        source: io::Error,
    ) -> WriteError {
        WriteError {
            op,
            path: path.as_ref().to_path_buf(),
            offset,
            source,
        }
    }

    /// `op` on `path` failed with the kernel's `errno`.
    pub fn os(
        op: &'static str,
        path: impl AsRef<Path>,
        offset: Option<u64>,
        errno: i32,
    ) -> WriteError {
        WriteError::new(op, path, offset, io::Error::from_raw_os_error(errno))
    }

    /// The syscall (or writer step) that failed, e.g. `"pwrite"`, `"fsync"`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The file it failed on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file offset, for positional writes.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The kernel's errno, when the failure came from a syscall.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The underlying error.
    pub fn source_error(&self) -> &io::Error {
        &self.source
    }
}

impl Clone for WriteError {
    /// A copy with the same op, path, offset, kind and errno (an errno-less
    /// source keeps its kind and message).
    fn clone(&self) -> WriteError {
        let source = match self.source.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(self.source.kind(), self.source.to_string()),
        };
        WriteError {
            op: self.op,
            path: self.path.clone(),
            offset: self.offset,
            source,
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.path.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for io::Error {
    fn from(err: WriteError) -> io::Error {
        io::Error::new(err.source.kind(), err)
    }
}

/// The errno behind `err`: its raw OS error, or that of a [`WriteError`]
/// or a [`RankFailure`](super::coord::RankFailure) inside it.
pub fn errno_of(err: &io::Error) -> Option<i32> {
    err.raw_os_error()
        .or_else(|| write_error_of(err).and_then(WriteError::errno))
        .or_else(|| super::coord::rank_failure_of(err).and_then(|f| f.errno))
}

/// The [`WriteError`] inside `err`, if there is one.
pub fn write_error_of(err: &io::Error) -> Option<&WriteError> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<WriteError>())
}
