//! `File`: an owned fd with the ops as methods, closed on drop.
//!
//! A thin layer over `crate::io`: every method is one op (or a loop of ops
//! for `write_all_at`/`read_exact_at`), so a `File` works inside a runtime,
//! under a simulated kernel and from plain synchronous code alike.

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice, SliceMut};
use crate::io::{self, FileStat, OpenFlags};
use crate::runtime::context;
use crate::sys::Kernel;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

/// How to open a [`File`]; mirrors `std::fs::OpenOptions`.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    custom_flags: i32,
    mode: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing set; mode 0o644.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            custom_flags: 0,
            mode: 0o644,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, yes: bool) -> &mut Self {
        self.read = yes;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, yes: bool) -> &mut Self {
        self.write = yes;
        self
    }

    /// Every write appends.
    pub fn append(&mut self, yes: bool) -> &mut Self {
        self.append = yes;
        self
    }

    /// Truncate to zero length.
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.truncate = yes;
        self
    }

    /// Create if missing.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// Create, failing with `EEXIST` if the file exists.
    pub fn create_new(&mut self, yes: bool) -> &mut Self {
        self.create_new = yes;
        self
    }

    /// Extra `O_*` bits (e.g. `OpenFlags::DIRECT.bits()`).
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// Permission bits for a created file.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Why these options cannot be opened, by std's rules, or `None`:
    /// truncate, create or create_new without write or append access (Linux
    /// would truncate a file opened read-only with `O_TRUNC`), append with
    /// truncate (unless create_new), or no access at all.
    fn refusal(&self) -> Option<&'static str> {
        let writes = self.write || self.append;
        if !self.read && !writes {
            return Some("none of read, write and append is set");
        }
        if !writes && (self.truncate || self.create || self.create_new) {
            return Some("truncate, create and create_new need write or append access");
        }
        if self.append && self.truncate && !self.create_new {
            return Some("append and truncate do not go together");
        }
        None
    }

    /// The `open(2)` flags these options stand for.
    pub fn flags(&self) -> OpenFlags {
        let access = match (self.read, self.write || self.append) {
            (_, false) => OpenFlags::RDONLY,
            (false, true) => OpenFlags::WRONLY,
            (true, true) => OpenFlags::RDWR,
        };
        let mut flags = access | OpenFlags(self.custom_flags);
        if self.append {
            flags = flags | OpenFlags::APPEND;
        }
        if self.truncate {
            flags = flags | OpenFlags::TRUNC;
        }
        if self.create_new {
            flags = flags | OpenFlags::CREAT | OpenFlags::EXCL;
        } else if self.create {
            flags = flags | OpenFlags::CREAT;
        }
        flags
    }

    /// The `open` op these options stand for, yielding the raw fd: the
    /// seed's `io::open(path, flags)` with its default mode 0o644 (or the
    /// one set with [`OpenOptions::mode`]). The fd is the caller's to
    /// close. Options std refuses (see [`OpenOptions::open`]) fail with
    /// `EINVAL` without reaching the kernel.
    ///
    /// ```
    /// use iokernel::io::{self, OpenOptions};
    /// use std::os::unix::fs::PermissionsExt;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("made.txt");
    /// let fd = OpenOptions::new().write(true).create(true).open_fd(&path).wait().unwrap();
    /// io::close(fd).wait().unwrap();
    /// let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    /// assert_eq!(mode & !0o022, 0o644 & !0o022); // the umask may clear bits
    /// ```
    pub fn open_fd(&self, path: impl AsRef<Path>) -> io::Op<crate::op::path::Open> {
        if self.refusal().is_some() {
            return io::Op::new(crate::op::path::Open {
                path: crate::op::path::KernelPath::refused(),
                flags: self.flags(),
                mode: self.mode,
            });
        }
        io::open(path, self.flags(), self.mode)
    }

    /// Open `path` with these options. Options that cannot mean what they
    /// say are refused with `InvalidInput` before anything is opened, as
    /// std refuses them: truncate, create or create_new without write or
    /// append access (Linux would truncate a file opened read-only with
    /// `O_TRUNC`), append with truncate (unless create_new), or none of
    /// read, write and append.
    ///
    /// ```
    /// use iokernel::fs::OpenOptions;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let file = iokernel::runtime::block_on_here(
    ///     OpenOptions::new().read(true).write(true).create_new(true).open(dir.path().join("n")),
    /// )
    /// .unwrap();
    /// # drop(file);
    /// ```
    pub async fn open(&self, path: impl AsRef<Path>) -> std::io::Result<File> {
        if let Some(why) = self.refusal() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "open {}: {why}; nothing was opened",
                    path.as_ref().display()
                ),
            ));
        }
        let fd = io::open(path, self.flags(), self.mode).await?;
        Ok(File::from_fd(fd))
    }
}

/// An open file; closed when dropped (or explicitly with [`File::close`]).
///
/// std's conventions hold: `AsFd`, `AsRawFd`, `IntoRawFd`, `FromRawFd`
/// (unsafe), `From<OwnedFd>` and `From<std::fs::File>`. The fd belongs to
/// the kernel of the thread that made the `File`: on a simulated runtime
/// thread that is the simulated machine's, unknown to the host.
///
/// ```
/// use iokernel::fs::File;
/// use iokernel::runtime::block_on_here;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("doc.txt");
/// // No runtime on this thread: every op runs as a blocking call.
/// let file = block_on_here(File::create(&path)).unwrap();
/// block_on_here(file.write_all_at(b"hello", 0)).0.unwrap();
/// let file = block_on_here(File::open(&path)).unwrap();
/// let (done, buf) = block_on_here(file.read_exact_at(vec![0u8; 5], 0)).into_parts();
/// done.unwrap();
/// assert_eq!(buf, b"hello");
/// ```
pub struct File {
    fd: RawFd,
    kernel: Arc<dyn Kernel>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File").field("fd", &self.fd).finish()
    }
}

impl File {
    /// Open for reading.
    pub async fn open(path: impl AsRef<Path>) -> std::io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Create (or truncate) for writing.
    pub async fn create(path: impl AsRef<Path>) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Own `fd`, an open file of the current kernel (closed when the
    /// `File` drops). Public conversions: `From<OwnedFd>`,
    /// `From<std::fs::File>` and the unsafe `FromRawFd` (`crate::io::fd`).
    pub(crate) fn from_fd(fd: RawFd) -> File {
        File {
            fd,
            kernel: context::current_kernel(),
        }
    }

    /// The fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }

    /// Give up ownership of the fd without closing it.
    pub fn into_raw_fd(self) -> RawFd {
        let fd = self.fd;
        std::mem::forget(self);
        fd
    }

    /// Read at `offset` (see [`io::pread`]).
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        io::pread(self.fd, buf, offset).await
    }

    /// Write at `offset` (see [`io::pwrite`]); may be short.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        io::pwrite(self.fd, buf, offset).await
    }

    /// Write the whole buffer at `offset`, resuming short writes. On error
    /// the message names the offset reached.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<(), B> {
        let mut slice = Slice::new(buf, 0);
        loop {
            if slice.as_bytes().is_empty() {
                return BufResult(Ok(()), slice.into_inner());
            }
            let at = offset + slice.start() as u64;
            let BufResult(result, back) = io::pwrite(self.fd, slice, at).await;
            let start = back.start();
            let buf = back.into_inner();
            match result {
                Ok(0) => {
                    let msg = format!("pwrite on fd {} at offset {at} wrote 0 bytes", self.fd);
                    return BufResult(
                        Err(std::io::Error::new(std::io::ErrorKind::WriteZero, msg)),
                        buf,
                    );
                }
                Ok(n) => slice = Slice::new(buf, start + n),
                Err(e) => return BufResult(Err(e), buf),
            }
        }
    }

    /// Fill all `buf.len()` bytes from `offset`, resuming short reads;
    /// fails with `UnexpectedEof` (naming the offset) if the file ends
    /// first, returning the buffer truncated to what was read.
    pub async fn read_exact_at(&self, buf: Vec<u8>, offset: u64) -> BufResult<(), Vec<u8>> {
        let want = buf.len();
        let mut buf = buf;
        let mut have = 0;
        while have < want {
            let at = offset + have as u64;
            let BufResult(result, back) =
                io::pread(self.fd, SliceMut::new(buf, have, want), at).await;
            buf = back.into_inner();
            match result {
                Ok(0) => {
                    let msg = format!(
                        "fd {}: file ended at offset {at}, wanted {want} bytes from offset {offset}",
                        self.fd
                    );
                    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg);
                    return BufResult(Err(eof), buf);
                }
                Ok(n) => have += n,
                Err(e) => return BufResult(Err(e), buf),
            }
        }
        BufResult(Ok(()), buf)
    }

    /// Flush data and metadata.
    pub async fn sync_all(&self) -> std::io::Result<()> {
        io::fsync(self.fd).await
    }

    /// Flush data.
    pub async fn sync_data(&self) -> std::io::Result<()> {
        io::fdatasync(self.fd).await
    }

    /// Set the length.
    pub async fn set_len(&self, len_bytes: u64) -> std::io::Result<()> {
        io::ftruncate(self.fd, len_bytes).await
    }

    /// Size, type and block facts.
    pub async fn metadata(&self) -> std::io::Result<FileStat> {
        io::fstat(self.fd).await
    }

    /// Close now and see the result (drop closes too, but ignores errors).
    pub async fn close(self) -> std::io::Result<()> {
        let fd = self.into_raw_fd();
        io::close(fd).await
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // close(2) does not block on regular files; errors cannot be
        // reported from drop (use `File::close` to see them).
        let _ = self.kernel.close(self.fd);
    }
}
