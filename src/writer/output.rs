//! Which files a writer owns, and how it makes them without touching
//! anything it did not create.
//!
//! Rules (the "lose nothing" contract):
//! * Every file the writer will own is created with `O_CREAT | O_EXCL`, so
//!   [`CreatedFiles`] lists exactly the files this run made, and cleanup
//!   (failure, drop, a signal) never removes anything else.
//! * An existing regular file at a name the writer creates is refused
//!   (`EEXIST`) unless [`WriterConfig::overwrite`] is set; then it is
//!   unlinked first and the new file is still created with `O_EXCL`, so a
//!   concurrent run racing for the same name gets `EEXIST`, never a mixed
//!   file.
//! * `AtomicRename` temporary files get a name unique to the run:
//!   `<dir>/.<name>.iok-tmp.<pid>.<n>`, created with `O_EXCL`; a name
//!   already taken (another run, or any file that happens to be called so)
//!   is skipped, never opened or removed.
//! * An existing character device or FIFO output (or a caller-supplied fd,
//!   [`WriterConfig::stream_fd`]) is a *stream*: written once, in sequence
//!   order, with `write`; never created, truncated, synced, renamed or
//!   unlinked. Other kinds (directory, block device, socket) are refused.
//!
//! [`planned_paths`] names every fixed path a configuration will create or
//! replace, so a caller can check them against its inputs before the
//! writer runs.

use super::config::{Durability, Layout, WriterConfig};
use super::error::WriteError;
use crate::io::{self, FileType, OpenFlags};
use std::fmt;
use std::io as stdio;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Temporary names tried per output before giving up.
const TEMP_ATTEMPTS_MAX: u32 = 1000;

/// The files a writer created and has not yet renamed into place or
/// removed; shareable, so a signal handler can remove them while the
/// writer is stuck (see [`WriterConfig::created_files`]).
///
/// ```
/// use iokernel::writer::CreatedFiles;
/// let created = CreatedFiles::new();
/// assert!(created.paths().is_empty());
/// assert!(created.seal().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct CreatedFiles(Arc<(Mutex<CreatedInner>, Condvar)>);

#[derive(Default)]
struct CreatedInner {
    paths: Vec<PathBuf>,
    sealed: bool,
    /// Creations under way ([`CreatedFiles::begin_create`]): their files
    /// may exist before they are listed, so [`CreatedFiles::seal`] waits.
    creating: usize,
    /// Where listings and unlistings are recorded
    /// ([`CreatedFiles::with_journal`]); dropped at its first failed write.
    journal: Option<Box<dyn stdio::Write + Send>>,
}

impl CreatedInner {
    /// Record `record` in the journal, if there is one. A journal that
    /// fails (its reader is gone) is dropped: the run goes on without it.
    fn record(&mut self, record: JournalRecord) {
        if let Some(journal) = &mut self.journal {
            let bytes = record.encode();
            if journal
                .write_all(&bytes)
                .and_then(|()| journal.flush())
                .is_err()
            {
                self.journal = None;
            }
        }
    }
}

/// One change to a [`CreatedFiles`] registry, as its journal carries it
/// ([`CreatedFiles::with_journal`]): a file the run created was listed, or
/// a listed file was unlisted (renamed into place, removed, or kept as the
/// finished output). A reader that replays the records knows at every
/// moment which files the run would leave behind if it died then.
///
/// ```
/// use iokernel::writer::JournalRecord;
/// let record = JournalRecord::Listed("/out/.t.pfw.iok-tmp.7.0".into());
/// let bytes = record.encode();
/// let mut reader = &bytes[..];
/// assert_eq!(JournalRecord::read_from(&mut reader).unwrap(), Some(record));
/// assert_eq!(JournalRecord::read_from(&mut reader).unwrap(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalRecord {
    /// The run created the file at this path.
    Listed(PathBuf),
    /// The file at this path is no longer the run's to remove.
    Unlisted(PathBuf),
}

impl JournalRecord {
    const LISTED: u8 = b'+';
    const UNLISTED: u8 = b'-';
    /// Ends a record: a path cannot contain it.
    const END: u8 = 0;

    /// The record's bytes: a tag, the path's bytes, a NUL.
    pub fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let (tag, path) = match self {
            JournalRecord::Listed(path) => (Self::LISTED, path),
            JournalRecord::Unlisted(path) => (Self::UNLISTED, path),
        };
        let path = path.as_os_str().as_bytes();
        let mut bytes = Vec::with_capacity(path.len() + 2);
        bytes.push(tag);
        bytes.extend_from_slice(path);
        bytes.push(Self::END);
        bytes
    }

    /// The next record from `reader`; `None` at the end. A record cut off
    /// by the end (its writer died mid-write) or with an unknown tag is an
    /// `InvalidData` error naming what was read.
    pub fn read_from(reader: &mut impl stdio::BufRead) -> stdio::Result<Option<JournalRecord>> {
        use std::os::unix::ffi::OsStrExt;
        let mut bytes = Vec::new();
        if reader.read_until(Self::END, &mut bytes)? == 0 {
            return Ok(None);
        }
        let bad = |why: &str, bytes: &[u8]| {
            stdio::Error::new(
                stdio::ErrorKind::InvalidData,
                format!(
                    "created-files journal: {why}: {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            )
        };
        if bytes.pop() != Some(Self::END) {
            return Err(bad("a record cut off by the end", &bytes));
        }
        let Some((&tag, path)) = bytes.split_first() else {
            return Err(bad("an empty record", &bytes));
        };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
        match tag {
            Self::LISTED => Ok(Some(JournalRecord::Listed(path))),
            Self::UNLISTED => Ok(Some(JournalRecord::Unlisted(path))),
            _ => Err(bad("an unknown record tag", &bytes)),
        }
    }

    /// Replay a whole journal: the paths listed and not unlisted, in
    /// listing order. A damaged record is the error [`Self::read_from`]
    /// gives.
    ///
    /// ```
    /// use iokernel::writer::JournalRecord;
    /// let bytes: Vec<u8> = [
    ///     JournalRecord::Listed("/a".into()),
    ///     JournalRecord::Listed("/b".into()),
    ///     JournalRecord::Unlisted("/a".into()),
    /// ]
    /// .iter()
    /// .flat_map(JournalRecord::encode)
    /// .collect();
    /// let listed = JournalRecord::still_listed(&bytes).unwrap();
    /// assert_eq!(listed, [std::path::PathBuf::from("/b")]);
    /// ```
    pub fn still_listed(mut journal: &[u8]) -> stdio::Result<Vec<PathBuf>> {
        let mut listed: Vec<PathBuf> = Vec::new();
        while let Some(record) = Self::read_from(&mut journal)? {
            match record {
                JournalRecord::Listed(path) => {
                    listed.retain(|p| *p != path);
                    listed.push(path);
                }
                JournalRecord::Unlisted(path) => listed.retain(|p| *p != path),
            }
        }
        Ok(listed)
    }
}

/// How long [`CreatedFiles::seal`] waits for creations under way (an
/// `open` with `O_EXCL`, milliseconds in practice).
const SEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A creation under way; dropping it without [`CreateGuard::created`]
/// (the open failed, or the future was dropped) ends it with nothing made.
pub(crate) struct CreateGuard<'a> {
    files: &'a CreatedFiles,
    done: bool,
}

impl CreateGuard<'_> {
    /// The file at `path` now exists: list it and end the creation.
    pub(crate) fn created(mut self, path: &Path) {
        self.done = true;
        self.files.end_create(Some(path));
    }
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.files.end_create(None);
        }
    }
}

impl CreatedFiles {
    /// An empty registry.
    pub fn new() -> CreatedFiles {
        CreatedFiles::default()
    }

    /// An empty registry that records every listing and unlisting in
    /// `journal` ([`JournalRecord`]), in order, as it happens: a process
    /// reading the other end can remove what the run leaves behind when it
    /// dies without cleaning up (SIGKILL, a crash). [`CreatedFiles::seal`]
    /// unlists nothing: its caller removes the files, and a reader that
    /// finds them gone has nothing to do. Writes happen under the
    /// registry's lock, a handful per run; the first failed write drops
    /// the journal and the run goes on.
    pub fn with_journal(journal: impl stdio::Write + Send + 'static) -> CreatedFiles {
        let created = CreatedFiles::default();
        created.lock().journal = Some(Box::new(journal));
        created
    }

    /// End the journal now (its reader sees the end of it) instead of at
    /// the process's exit, so that a process that waits for the reader
    /// can. Later listings are not journalled. No-op without a journal.
    ///
    /// ```
    /// use iokernel::writer::CreatedFiles;
    /// let created = CreatedFiles::with_journal(Vec::new());
    /// created.end_journal();
    /// created.end_journal();
    /// ```
    pub fn end_journal(&self) {
        // Dropped outside the lock: closing a pipe never waits, but a
        // writer of any kind may.
        let journal = self.lock().journal.take();
        drop(journal);
    }

    fn lock(&self) -> MutexGuard<'_, CreatedInner> {
        // A panic while holding the lock leaves a plain Vec: still usable.
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The paths listed now.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().paths.clone()
    }

    /// Refuse further creations, wait (a few seconds at most) for those
    /// under way to be listed, and take every listed path: a file the run
    /// made is listed even when the signal came between its `open` and its
    /// listing. For a signal path that removes the returned files and exits.
    pub fn seal(&self) -> Vec<PathBuf> {
        let mut inner = self.lock();
        inner.sealed = true;
        let (mut inner, _) = self
            .0
             .1
            .wait_timeout_while(inner, SEAL_WAIT, |inner| inner.creating > 0)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut inner.paths)
    }

    /// Start creating a file: `None` when sealed (create nothing then).
    pub(crate) fn begin_create(&self) -> Option<CreateGuard<'_>> {
        let mut inner = self.lock();
        if inner.sealed {
            return None;
        }
        inner.creating += 1;
        Some(CreateGuard {
            files: self,
            done: false,
        })
    }

    fn end_create(&self, created: Option<&Path>) {
        let mut inner = self.lock();
        inner.creating -= 1;
        if let Some(path) = created {
            inner.paths.push(path.to_path_buf());
            inner.record(JournalRecord::Listed(path.to_path_buf()));
        }
        self.0 .1.notify_all();
    }

    /// Forget `path` (renamed into place, or removed).
    pub(crate) fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        let before = inner.paths.len();
        inner.paths.retain(|p| p != path);
        if inner.paths.len() != before {
            inner.record(JournalRecord::Unlisted(path.to_path_buf()));
        }
    }

    /// Take every listed path: the files are the caller's now (the
    /// finished output, kept).
    pub(crate) fn take(&self) -> Vec<PathBuf> {
        let mut inner = self.lock();
        let paths = std::mem::take(&mut inner.paths);
        for path in &paths {
            inner.record(JournalRecord::Unlisted(path.clone()));
        }
        paths
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().paths.is_empty()
    }
}

impl fmt::Debug for CreatedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lock().paths.iter()).finish()
    }
}

impl PartialEq for CreatedFiles {
    /// Two handles are equal when they share one registry.
    fn eq(&self, other: &CreatedFiles) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What is at a path before the writer touches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Missing,
    Regular,
    /// A character device or FIFO: written as a stream.
    Stream(FileType),
    /// Anything the writer refuses to write to.
    Refused(FileType),
}

/// Look at `path` without changing it: `open(O_RDONLY | O_NONBLOCK)`
/// (which neither blocks on a FIFO nor truncates) and `fstat`.
pub(crate) async fn probe(path: &Path) -> Result<Existing, WriteError> {
    let fd = match io::open(path, OpenFlags::RDONLY | OpenFlags::NONBLOCK, 0).await {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Existing::Missing),
        Err(e) => return Err(WriteError::new("open (checking the output)", path, None, e)),
    };
    let stat = io::fstat(fd).await;
    // Only looked at: a failed close loses nothing.
    let _ = io::close(fd).await;
    let stat = stat.map_err(|e| WriteError::new("fstat (checking the output)", path, None, e))?;
    Ok(match stat.file_type {
        FileType::Regular => Existing::Regular,
        kind @ (FileType::CharDevice | FileType::Fifo) => Existing::Stream(kind),
        kind => Existing::Refused(kind),
    })
}

/// Words for a file type in messages.
pub(crate) fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Socket => "socket",
        FileType::Fifo => "FIFO",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Other => "special file",
    }
}

pub(crate) fn invalid(msg: String) -> stdio::Error {
    stdio::Error::new(stdio::ErrorKind::InvalidInput, msg)
}

/// `path` must be free for a new regular file: missing, or an existing
/// regular file when `overwrite` (it is then unlinked when `unlink`).
pub(crate) async fn clear_for_create(
    path: &Path,
    overwrite: bool,
    unlink: bool,
) -> Result<(), WriteError> {
    match probe(path).await? {
        Existing::Missing => Ok(()),
        Existing::Regular if overwrite => {
            if !unlink {
                return Ok(());
            }
            match io::unlink(path).await {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                Err(e) => Err(WriteError::new("unlink (overwrite)", path, None, e)),
            }
        }
        Existing::Regular => Err(WriteError::new(
            "create (the file exists and overwrite is off)",
            path,
            None,
            stdio::Error::from_raw_os_error(libc::EEXIST),
        )),
        Existing::Stream(kind) | Existing::Refused(kind) => Err(WriteError::new(
            "create",
            path,
            None,
            stdio::Error::new(
                stdio::ErrorKind::InvalidInput,
                format!(
                    "is a {}, not a regular file: the writer will not replace it",
                    kind_name(kind)
                ),
            ),
        )),
    }
}

/// `<dir>/.<name>.iok-tmp.<pid>.<attempt>`: a temporary name for `path`.
pub fn temp_path(path: &Path, attempt: u32) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".iok-tmp.{}.{attempt}", std::process::id()));
    path.with_file_name(name)
}

/// True when `name` (a file name) looks like one of the writer's
/// temporary names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".iok-tmp.")
}

/// Create a temporary file for `path` under a name nobody uses
/// (`O_EXCL`); taken names are skipped, never touched.
pub(crate) async fn create_temp(
    path: &Path,
    flags: OpenFlags,
) -> Result<(PathBuf, std::os::fd::RawFd), WriteError> {
    let mut last = None;
    for attempt in 0..TEMP_ATTEMPTS_MAX {
        let temp = temp_path(path, attempt);
        match io::open(&temp, flags | OpenFlags::CREAT | OpenFlags::EXCL, 0o644).await {
            Ok(fd) => return Ok((temp, fd)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = Some(temp),
            Err(e) => return Err(WriteError::new("create temporary file", &temp, None, e)),
        }
    }
    Err(WriteError::new(
        "create temporary file",
        last.unwrap_or_else(|| path.to_path_buf()),
        None,
        stdio::Error::from_raw_os_error(libc::EEXIST),
    ))
}

/// Every fixed path `config` will create or replace: the output (unless
/// only shards are kept) and each shard (of every rank, when the
/// configuration's coordinator has several). Temporary names are not listed:
/// they are unique per run and created with `O_EXCL`, so they cannot
/// alias an existing file. A stream output ([`WriterConfig::stream_fd`])
/// lists nothing.
///
/// ```
/// use iokernel::writer::{planned_paths, Layout, WriterConfig};
/// let config = WriterConfig::new("/d/out.pfw").layout(Layout::Sharded { shards: 2, merge: true });
/// let paths = planned_paths(&config);
/// assert_eq!(paths.len(), 3);
/// assert!(paths.iter().any(|p| p.ends_with("out.pfw.shard_1")));
/// ```
pub fn planned_paths(config: &WriterConfig) -> Vec<PathBuf> {
    if config.stream_fd.is_some() {
        return Vec::new();
    }
    match config.layout {
        Layout::Sharded { shards, merge } => {
            // Across ranks every rank's shards count: rank r's shard i is
            // shard r * shards + i.
            let ranks = config.coordinator.get().ranks();
            let mut paths: Vec<PathBuf> = (0..shards * ranks)
                .map(|i| super::parallel::shard_path(&config.path, i))
                .collect();
            if merge {
                paths.insert(0, config.path.clone());
            }
            paths
        }
        _ => vec![config.path.clone()],
    }
}

/// Why a stream output cannot take `config`, if it cannot.
pub(crate) fn stream_refusal(config: &WriterConfig, what: &str) -> Option<String> {
    if config.layout != Layout::Striped {
        return Some(format!(
            "{what} is a stream: it is written sequentially, so only the striped layout \
             works (not {})",
            config.layout
        ));
    }
    if config.durability == Durability::AtomicRename {
        return Some(format!(
            "{what} is a stream: atomic-rename would replace it with a regular file"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A signal that seals the registry between a file's `open` and its
    /// listing still gets the file: `seal` waits for creations under way.
    #[test]
    fn seal_waits_for_a_creation_under_way_and_then_refuses_new_ones() {
        let created = CreatedFiles::new();
        let guard = created.begin_create().expect("not sealed yet");
        let (tx, rx) = std::sync::mpsc::channel();
        let sealer = {
            let created = created.clone();
            crate::sys::real::thread::spawn_named("sealer".into(), move || {
                let _ = tx.send(created.seal());
            })
            .expect("spawn the sealer")
        };
        // The open is "in the kernel" while the sealer waits.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !sealer.is_finished(),
            "seal returned before the creation ended"
        );
        guard.created(Path::new("/out/file"));
        sealer.join().expect("the sealer thread");
        let sealed = rx.recv().expect("what seal returned");
        assert_eq!(sealed, [PathBuf::from("/out/file")]);
        assert!(
            created.begin_create().is_none(),
            "sealed: nothing more is created"
        );
    }

    /// A creation that fails (its guard dropped) lists nothing and does not
    /// hold a later seal up.
    #[test]
    fn a_failed_creation_lists_nothing() {
        let created = CreatedFiles::new();
        drop(created.begin_create().expect("not sealed"));
        assert!(created.seal().is_empty());
    }
}
