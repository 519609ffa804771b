//! What a [`ParallelWriter`](super::ParallelWriter) is asked to do:
//! [`WriterConfig`] and its parts, and the [`WriteReport`] it hands back.
//!
//! Pure data; checking a configuration ([`WriterConfig::validate`]) does no
//! I/O.

use super::coord::{Coordinator, SharedCoordinator};
use super::fs_kind::FilesystemKind;
use super::gzip;
use super::output::CreatedFiles;
use super::sizing::MIMIC_LUSTRE_ENV;
use super::stripe::{StripeBytes, LUSTRE_MAX_STRIPE_COUNT};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How chunks are laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// One file; each chunk reserves the next free byte range and is written
    /// there with `pwrite`.
    Striped,
    /// One file cut into stripe-sized slots; every slot starts with a chunk
    /// and ends with filler readers skip (see the module docs).
    PaddedStriped,
    /// One file per shard, `<path>.shard_<i>`; a producer's chunks go to
    /// shard `producer_index % shards`. Across ranks, `shards` is per rank
    /// and rank `r`'s shard `i` is `<path>.shard_<r * shards + i>`.
    Sharded {
        /// Number of shard files (at least 1).
        shards: usize,
        /// Merge the shards into `<path>` at `finish()` (zero-copy
        /// `sendfile`) and remove them once the merged file is durable.
        merge: bool,
    },
}

impl Layout {
    /// Short name for reports and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Striped => "striped",
            Layout::PaddedStriped => "padded-striped",
            Layout::Sharded { merge: false, .. } => "sharded",
            Layout::Sharded { merge: true, .. } => "sharded+merge",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `finish()` does to make the output durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// No fsync: the data is in the page cache when `finish()` returns.
    None,
    /// Write in place, fsync every output file and then the directory (so
    /// the new names survive a crash too); the default.
    #[default]
    Fsync,
    /// Write to a temporary name in the same directory, fsync, rename into
    /// place and fsync the directory: the final name never shows a partial
    /// file, even after a crash.
    AtomicRename,
}

/// What the payloads are, which decides where chunks may be cut and what
/// padding looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContentKind {
    /// Newline-terminated JSON lines: chunks are cut only at line ends,
    /// each producer's output ends with a newline (unless
    /// [`WriterConfig::final_newline`] is off), and padding is spaces before
    /// a line's newline (every line stays valid JSON).
    JsonLines,
    /// Arbitrary bytes: chunks are cut anywhere; padding is a hole.
    #[default]
    Binary,
}

/// A stripe layout to request on Lustre (`setxattr("lustre.lov")` on
/// create). Ignored on other file systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeRequest {
    /// Stripe size (validated when the [`StripeBytes`] was made).
    pub stripe_bytes: StripeBytes,
    /// Stripe count (1..=[`LUSTRE_MAX_STRIPE_COUNT`]; `u16` per the v1
    /// layout).
    pub stripe_count: u16,
}

/// Everything a [`ParallelWriter`](super::ParallelWriter) needs.
///
/// ```
/// use iokernel::writer::{ContentKind, Durability, Layout, WriterConfig};
/// let config = WriterConfig::new("/tmp/out.jsonl.gz")
///     .layout(Layout::PaddedStriped)
///     .ordered(true)
///     .gzip(Some(6))
///     .content(ContentKind::JsonLines)
///     .durability(Durability::AtomicRename)
///     .producers(4)
///     .mimic_lustre(Some("1M:4".into()));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct WriterConfig {
    /// The output file (shards are `<path>.shard_<i>`).
    pub path: PathBuf,
    /// How chunks go to disk (default [`Layout::Striped`]).
    pub layout: Layout,
    /// Write chunks in sequence order: the output (or the merged output)
    /// is the concatenation of every chunk by sequence number, where
    /// sequence numbers are taken when a producer seals a buffer. With one
    /// producer the output is exactly its input. Compression and writes
    /// still run in parallel. Default: off (chunks go where they land).
    pub ordered: bool,
    /// Compress each chunk into one gzip member at this level (0..=9).
    pub gzip_level: Option<u32>,
    /// What the payloads are (default [`ContentKind::Binary`]).
    pub content: ContentKind,
    /// Default [`Durability::Fsync`].
    pub durability: Durability,
    /// How many producers will write at once (sizes buffers; more may be
    /// created). Default 1.
    pub producers: usize,
    /// Bytes the writer may hold in buffers at once. Default 256 MiB.
    pub memory_budget_bytes: u64,
    /// Force the Lustre path: `<stripe_bytes>:<count>` as in the
    /// `IOKERNEL_MIMIC_LUSTRE` variable (`None`, the default of
    /// [`WriterConfig::new`]: detect). [`WriterConfig::from_env`] reads the
    /// variable into it; `new` never looks at the environment.
    pub mimic_lustre: Option<String>,
    /// On Lustre, ask for this stripe layout when creating the file.
    pub stripe_request: Option<StripeRequest>,
    /// Seal producer buffers at this size instead of the sized chunk
    /// (a chunk is at most this big unless one payload is bigger). The
    /// buffers still fit [`WriterConfig::memory_budget_bytes`]: fewer of
    /// them, down to one per producer plus one; a chunk too big even for
    /// that is refused by [`WriterConfig::validate`].
    pub chunk_bytes: Option<u64>,
    /// Use this stripe (slot) size instead of the one the file system
    /// reports (validated when the [`StripeBytes`] was made). The chunk size
    /// follows it, as it would a Lustre stripe, but the file system is
    /// still reported as what it is ([`WriteReport::fs_kind`]). It takes
    /// precedence over `mimic_lustre` and `lustre.lov`; on Lustre it sizes
    /// the writer only (use `stripe_request` to lay the file out).
    pub stripe_bytes: Option<StripeBytes>,
    /// With [`ContentKind::JsonLines`], complete a producer's last line
    /// with a newline at close when it lacks one (default on). Off, the
    /// writer never adds a byte: the output holds exactly what producers
    /// wrote, still cut only at line ends (a last line without a newline
    /// ends its producer's final chunk). Off is refused for the plain
    /// padded-striped layout, whose padding sits before a chunk's final
    /// newline.
    pub final_newline: bool,
    /// Replace an existing regular file at a name the writer creates (the
    /// output, a shard). Off (the default), such a file is refused with
    /// `EEXIST` and left as it is. On, under [`Durability::Fsync`] (the
    /// default) the run then writes as [`Durability::AtomicRename`] does:
    /// under a temporary name renamed over the old file once complete and
    /// synced, so a run that fails keeps the old file whole (it needs room
    /// for both meanwhile). `AtomicRename` always works so; under
    /// [`Durability::None`] the old file is unlinked first. The
    /// new file is created with `O_EXCL` (a concurrent run racing for the
    /// name then fails instead of mixing its data in). Never applies to
    /// non-regular files (see [`crate::writer::output`]).
    pub overwrite: bool,
    /// Write to this already-open fd (e.g. a duplicate of stdout) as a
    /// stream instead of opening `path` (which then only names it in
    /// messages): chunks go out in sequence order with sequential `write`,
    /// nothing is synced, renamed or removed. Needs the striped layout and
    /// a durability other than `AtomicRename`. The writer owns the fd and
    /// closes it; a config with one is for one writer.
    pub stream_fd: Option<RawFd>,
    /// Record created files here as well, so a signal handler can remove
    /// them ([`CreatedFiles::seal`]); default: a private registry.
    pub created_files: Option<CreatedFiles>,
    /// Where this writer meets the other ranks writing the same output
    /// (see [`crate::writer::coord`] and "Across ranks" in
    /// [`crate::writer::parallel`]); default: one rank alone. Every rank's
    /// configuration must match rank 0's in path, layout, order, gzip,
    /// content, durability, stripe and overwrite (checked in `new()`);
    /// producers, memory budget and chunk size may differ.
    pub coordinator: SharedCoordinator,
}

/// Default memory budget: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 256 << 20;

impl WriterConfig {
    /// Defaults for `path`. Reads nothing from the environment (the file
    /// system is detected; see [`WriterConfig::from_env`] for the
    /// `IOKERNEL_MIMIC_LUSTRE` switch).
    ///
    /// ```
    /// use iokernel::writer::WriterConfig;
    /// assert_eq!(WriterConfig::new("/tmp/out.pfw").mimic_lustre, None);
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            path: path.into(),
            layout: Layout::Striped,
            ordered: false,
            gzip_level: None,
            content: ContentKind::Binary,
            durability: Durability::Fsync,
            producers: 1,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            mimic_lustre: None,
            stripe_request: None,
            chunk_bytes: None,
            stripe_bytes: None,
            final_newline: true,
            overwrite: false,
            stream_fd: None,
            created_files: None,
            coordinator: SharedCoordinator::default(),
        }
    }

    /// [`WriterConfig::new`], with [`WriterConfig::mimic_lustre`] read
    /// from the `IOKERNEL_MIMIC_LUSTRE` variable (`<stripe_bytes>:<count>`,
    /// e.g. `1M:4`; unset or blank: detect). What `iok` uses, so the
    /// variable keeps working on the command line.
    ///
    /// ```
    /// use iokernel::writer::WriterConfig;
    /// let config = WriterConfig::from_env("/tmp/out.pfw");
    /// assert_eq!(
    ///     config.mimic_lustre,
    ///     std::env::var("IOKERNEL_MIMIC_LUSTRE").ok().filter(|v| !v.trim().is_empty())
    /// );
    /// ```
    pub fn from_env(path: impl Into<PathBuf>) -> WriterConfig {
        let mimic = std::env::var(MIMIC_LUSTRE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        WriterConfig::new(path).mimic_lustre(mimic)
    }

    /// Set [`WriterConfig::layout`].
    pub fn layout(mut self, layout: Layout) -> WriterConfig {
        self.layout = layout;
        self
    }

    /// Set [`WriterConfig::ordered`].
    pub fn ordered(mut self, ordered: bool) -> WriterConfig {
        self.ordered = ordered;
        self
    }

    /// Set [`WriterConfig::gzip_level`].
    pub fn gzip(mut self, level: Option<u32>) -> WriterConfig {
        self.gzip_level = level;
        self
    }

    /// Set [`WriterConfig::content`].
    pub fn content(mut self, content: ContentKind) -> WriterConfig {
        self.content = content;
        self
    }

    /// Set [`WriterConfig::durability`].
    pub fn durability(mut self, durability: Durability) -> WriterConfig {
        self.durability = durability;
        self
    }

    /// Set [`WriterConfig::producers`].
    pub fn producers(mut self, producers: usize) -> WriterConfig {
        self.producers = producers;
        self
    }

    /// Set [`WriterConfig::memory_budget_bytes`].
    pub fn memory_budget_bytes(mut self, bytes: u64) -> WriterConfig {
        self.memory_budget_bytes = bytes;
        self
    }

    /// Set [`WriterConfig::mimic_lustre`].
    pub fn mimic_lustre(mut self, value: Option<String>) -> WriterConfig {
        self.mimic_lustre = value;
        self
    }

    /// Set [`WriterConfig::stripe_request`].
    pub fn stripe_request(mut self, request: Option<StripeRequest>) -> WriterConfig {
        self.stripe_request = request;
        self
    }

    /// Set [`WriterConfig::chunk_bytes`].
    pub fn chunk_bytes(mut self, bytes: Option<u64>) -> WriterConfig {
        self.chunk_bytes = bytes;
        self
    }

    /// Set [`WriterConfig::stripe_bytes`].
    pub fn stripe_bytes(mut self, bytes: Option<StripeBytes>) -> WriterConfig {
        self.stripe_bytes = bytes;
        self
    }

    /// Set [`WriterConfig::final_newline`].
    pub fn final_newline(mut self, on: bool) -> WriterConfig {
        self.final_newline = on;
        self
    }

    /// Set [`WriterConfig::overwrite`].
    pub fn overwrite(mut self, on: bool) -> WriterConfig {
        self.overwrite = on;
        self
    }

    /// Set [`WriterConfig::stream_fd`].
    pub fn stream_fd(mut self, fd: Option<RawFd>) -> WriterConfig {
        self.stream_fd = fd;
        self
    }

    /// Set [`WriterConfig::created_files`].
    pub fn created_files(mut self, created: Option<CreatedFiles>) -> WriterConfig {
        self.created_files = created;
        self
    }

    /// Set [`WriterConfig::coordinator`]: write one output together with
    /// the other ranks of `coordinator`.
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> WriterConfig {
        self.coordinator = SharedCoordinator::new(coordinator);
        self
    }

    /// Check the parts that need no I/O; the error (`InvalidInput`) says
    /// which field is wrong and why.
    pub fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.path.file_name().is_none() {
            return invalid(format!(
                "writer output path {:?} names no file",
                self.path.display()
            ));
        }
        if self.path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return invalid(format!(
                "writer output path {:?} ends with '/': it names a directory, not a file",
                self.path.display()
            ));
        }
        if self.producers == 0 {
            return invalid("writer needs producers >= 1".into());
        }
        if let Some(level) = self.gzip_level {
            if level > gzip::MAX_LEVEL {
                return invalid(format!(
                    "gzip level {level} is outside 0..={}",
                    gzip::MAX_LEVEL
                ));
            }
        }
        if let Layout::Sharded { shards: 0, .. } = self.layout {
            return invalid("sharded layout needs shards >= 1".into());
        }
        if self.chunk_bytes == Some(0) {
            return invalid("chunk_bytes must be at least 1".into());
        }
        if let Some(chunk) = self.chunk_bytes {
            let producers = u64::try_from(self.producers).unwrap_or(u64::MAX);
            let needed = super::sizing::fewest_buffer_bytes(producers, chunk);
            if needed > self.memory_budget_bytes {
                return invalid(format!(
                    "chunks of {chunk} bytes need at least {needed} bytes of buffers for {} \
                     producer(s) (one chunk each plus one on its way to the file), more than \
                     the memory budget of {} bytes (memory_budget_bytes)",
                    self.producers, self.memory_budget_bytes
                ));
            }
        }
        if self.stream_fd.is_some() {
            if let Some(why) = super::output::stream_refusal(self, "the output fd") {
                return invalid(why);
            }
        }
        let ranks = self.coordinator.get().ranks();
        if ranks > 1 && self.stream_fd.is_some() {
            return invalid(format!(
                "an output fd is one process's stream; it cannot be written by {ranks} ranks"
            ));
        }
        let plain_padded_json = self.layout == Layout::PaddedStriped
            && self.content == ContentKind::JsonLines
            && self.gzip_level.is_none();
        if plain_padded_json && !self.final_newline {
            return invalid(
                "final_newline off needs gzip or a layout other than padded-striped: plain \
                 JSON-lines padding goes before a chunk's final newline"
                    .into(),
            );
        }
        if let Some(request) = self.stripe_request {
            let count = u32::from(request.stripe_count);
            if count == 0 || count > LUSTRE_MAX_STRIPE_COUNT {
                return invalid(format!(
                    "requested Lustre stripe {} bytes x {count} is invalid: the count must be \
                     1..={LUSTRE_MAX_STRIPE_COUNT}",
                    request.stripe_bytes.get()
                ));
            }
        }
        Ok(())
    }
}

/// What a finished writer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteReport {
    /// The output file (the merged file for a merged sharded layout, the
    /// first shard's directory-relative base otherwise).
    pub path: PathBuf,
    /// Every output file, in order (one unless sharded without merge).
    pub files: Vec<PathBuf>,
    /// Payload bytes producers wrote.
    pub bytes_in: u64,
    /// Bytes in the output file(s), padding included.
    pub bytes_out: u64,
    /// Chunks committed.
    pub chunks: u64,
    /// Stripe-sized slots the output touches.
    pub stripes: u64,
    /// Filler bytes (padded-striped layout).
    pub padding_bytes: u64,
    /// The layout used.
    pub layout: Layout,
    /// The file system of the output, as detected (Lustre when mimicked).
    pub fs_kind: FilesystemKind,
    /// Stripe (slot) size used.
    pub stripe_bytes: u64,
    /// Chunk (producer buffer) size used.
    pub chunk_bytes: u64,
    /// From `new()` to the end of `finish()` (virtual under the sim).
    pub elapsed: Duration,
    /// This rank (0 for one process alone).
    pub rank: usize,
    /// How many ranks wrote the output (1 alone). `bytes_in`, `bytes_out`,
    /// `chunks`, `stripes` and `padding_bytes` count every rank's share.
    pub ranks: usize,
    /// Payload bytes this rank's producers wrote.
    pub rank_bytes_in: u64,
    /// Bytes this rank put in the output: its part or shards, or (striped
    /// and padded, unordered) the end of its furthest byte in the output.
    pub rank_bytes_out: u64,
    /// The output was a stream (stdout, a FIFO, a character device):
    /// written in order, one write at a time. The layout, stripe, padding
    /// and file-system fields then describe nothing about it.
    pub stream: bool,
}
