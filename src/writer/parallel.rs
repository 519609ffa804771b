//! [`ParallelWriter`]: opens the output, sizes itself from the file system,
//! runs the committer, and at `finish()` merges, syncs and renames.
//!
//! # Files, durability and cleanup
//!
//! * Every file is created with `O_EXCL`; an existing regular file is
//!   refused unless [`WriterConfig::overwrite`], which unlinks it first
//!   (see [`super::output`] for the rules, streams included), except
//!   under `Fsync`: there an overwrite that would replace an existing file
//!   runs as `AtomicRename`, so the old file stays whole until the new one
//!   is complete and synced.
//! * `Fsync`/`None`: data is written in place, so the final name exists,
//!   incomplete, while the writer runs.
//! * `AtomicRename`: data goes to a temporary name unique to the run,
//!   `.<name>.iok-tmp.<pid>.<n>` in the same directory, and is renamed
//!   over `<name>` after its fsync; the directory is then fsynced. The
//!   final name never holds a partial file, even after a crash (a crash
//!   may leave the temporary file behind).
//! * A stream output (FIFO, character device, [`WriterConfig::stream_fd`])
//!   is written in sequence order with `write`; durability does not apply
//!   to it (no fsync, no rename) and it is never removed.
//! * Sharded with merge: shards are intermediate files written in place;
//!   the merged file follows the durability rule above, and shards are
//!   removed only after the merged file is written (and synced, unless
//!   `Durability::None`).
//! * A writer dropped without `finish()`, or whose `finish()` fails, removes
//!   every file it created and had not yet renamed into place (best effort:
//!   a failing unlink is ignored), so no half-written file is left to look
//!   complete; it never removes a file it did not create. Producers still
//!   writing then get an error.
//! * Any fsync error poisons the writer: `finish()` returns it and never
//!   retries into a false success.
//!
//! # Across ranks
//!
//! With a [`WriterConfig::coordinator`] of several ranks (in-process
//! [`RankGroup`](crate::writer::coord::RankGroup) ranks, MPI ranks,
//! simulated ranks) each rank runs its own writer and producers and they
//! write one output:
//! * Striped and padded-striped, unordered: rank 0 creates the output (or
//!   its temporary file) and the others open it; each chunk takes its
//!   byte range or its slots from the coordinator's shared counters. Each
//!   rank pads its own last slot to the stripe boundary.
//! * Ordered (striped or padded) and sharded with merge: each rank writes
//!   its part (an ordered temporary file, or its shards), then copies it
//!   into the output at the offset an exclusive prefix sum of the part
//!   sizes gives: the output is rank 0's part, then rank 1's, and so on.
//! * Sharded, kept: rank `r`'s shard `i` of `s` is `<path>.shard_<r * s + i>`.
//! * `new()` checks that every rank's settings match rank 0's and agrees
//!   on every rank's open before anything is written; `finish()` agrees
//!   after each step (drain and fsync, copy, rename, cleanup), so either
//!   every rank returns the same report or every rank returns the same
//!   error, a [`RankFailure`] (see [`rank_failure_of`](crate::writer::coord::rank_failure_of))
//!   naming the failing rank, op, path, offset and errno; the output is
//!   then removed (in place) or never renamed into place (atomic rename).
//! * A rank whose writer is dropped before `finish()` abandons the group:
//!   the other ranks fail at their next coordinator call.
//!
//! ```
//! use iokernel::runtime::{self, Runtime};
//! use iokernel::writer::coord::RankGroup;
//! use iokernel::writer::{ParallelWriter, WriterConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("out.pfw");
//! let rt = Runtime::builder().compute_threads(1).build().unwrap();
//! let reports = rt.block_on(async {
//!     let mut ranks = Vec::new();
//!     for coord in RankGroup::ranks(2) {
//!         let rank = coord.rank();
//!         let config = WriterConfig::new(&path)
//!             .ordered(true)
//!             .mimic_lustre(None)
//!             .coordinator(coord);
//!         ranks.push(runtime::spawn(async move {
//!             let writer = ParallelWriter::new(config).await?;
//!             let mut producer = writer.producer();
//!             producer.write_line(format!("{{\"rank\":{rank}}}").as_bytes()).await?;
//!             producer.close().await?;
//!             writer.finish().await
//!         }));
//!     }
//!     let mut reports = Vec::new();
//!     for rank in ranks {
//!         reports.push(rank.await.unwrap().unwrap());
//!     }
//!     reports
//! });
//! assert_eq!(std::fs::read(&path).unwrap(), b"{\"rank\":0}\n{\"rank\":1}\n");
//! assert_eq!((reports[1].rank, reports[1].ranks, reports[1].bytes_out), (1, 2, 22));
//! ```

mod ranks;

use super::commit::{
    put_all, Committed, Committer, OutFile, OutFiles, Placer, ShardExtent, SharedCursor,
};
use super::config::{Durability, Layout, WriteReport, WriterConfig};
use super::coord::RankFailure;
use super::error::WriteError;
use super::fs_kind::FilesystemKind;
use super::lustre::{encode_v1, parse_lov};
use super::output::{
    clear_for_create, invalid, kind_name, probe, stream_refusal, CreatedFiles, Existing,
};
use super::producer::{Chunk, Producer, ProducerShared, Status};
use super::sizing::{LayoutInfo, WriterSizing};
use crate::io::{self, OpenFlags};
use crate::runtime::JoinHandle;
use std::io as stdio;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

/// Name of the Lustre layout extended attribute.
const LUSTRE_LOV_XATTR: &str = "lustre.lov";
/// Buffer for reading `lustre.lov` (a composite layout can be a few KiB).
const LOV_XATTR_MAX_BYTES: usize = 64 << 10;
/// `sendfile` moves at most this much per call on Linux.
const SENDFILE_MAX_BYTES: u64 = 0x7fff_f000;

/// Writes one output from many producers; see the module docs of
/// [`crate::writer`].
///
/// ```
/// use iokernel::runtime::Runtime;
/// use iokernel::writer::{Layout, ParallelWriter, WriterConfig};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("out.bin");
/// let rt = Runtime::builder().compute_threads(2).build().unwrap();
/// let report = rt.block_on(async {
///     let config = WriterConfig::new(&path).layout(Layout::Striped).mimic_lustre(None);
///     let writer = ParallelWriter::new(config).await?;
///     let mut producer = writer.producer();
///     producer.write_line(b"{\"hello\":1}").await?;
///     producer.close().await?;
///     writer.finish().await
/// }).unwrap();
/// assert_eq!(report.bytes_out, 12);
/// assert_eq!(std::fs::read(&path).unwrap(), b"{\"hello\":1}\n");
/// ```
pub struct ParallelWriter {
    config: WriterConfig,
    info: LayoutInfo,
    stripe_bytes: u64,
    chunk_bytes: u64,
    started: Duration,
    shared: Option<Arc<ProducerShared>>,
    status: Arc<Status>,
    committer: Option<JoinHandle<Result<Committed, WriteError>>>,
    files: Option<Arc<OutFiles>>,
    /// Paths this writer created and has not renamed into place or removed.
    created: CreatedFiles,
    /// Write paths of the shards a merged sharded layout removes at the end.
    shard_paths: Vec<PathBuf>,
    /// The output is a stream (see the module docs).
    stream: bool,
    /// Final name of each output file, by index.
    final_paths: Vec<PathBuf>,
    /// `fstatfs` said Lustre (not the mimic): stripe requests are set with
    /// the `lustre.lov` xattr on every file the writer creates.
    on_lustre: bool,
    /// Across ranks, parts mode: the output every rank copies its part into.
    shared_out: Option<OutFiles>,
    /// Across ranks: the output's write path (a temporary name under
    /// `AtomicRename`), as rank 0 created it.
    shared_out_path: Option<PathBuf>,
    /// `finish()` ran to its end: dropping the writer no longer abandons
    /// the other ranks.
    settled: bool,
}

fn now() -> Duration {
    crate::runtime::context::current_runtime()
        .map(|rt| rt.clock.now())
        .unwrap_or_default()
}

/// `<path>.shard_<i>`.
pub fn shard_path(path: &Path, shard: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".shard_{shard}"));
    PathBuf::from(name)
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether directory `dir` is on Lustre (`fstatfs` of the directory).
async fn dir_on_lustre(dir: &Path) -> Result<bool, WriteError> {
    let fd = io::open(dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0)
        .await
        .map_err(|e| WriteError::new("open", dir, None, e))?;
    let fs = io::fstatfs(fd).await;
    // Only read from: a failed close loses nothing.
    let _ = io::close(fd).await;
    let fs = fs.map_err(|e| WriteError::new("fstatfs", dir, None, e))?;
    Ok(FilesystemKind::from_magic(fs.magic) == FilesystemKind::Lustre)
}

/// The durability a run gets. An overwrite under `Fsync` that would replace
/// an existing regular file writes the new output under a temporary name
/// and renames it over the old one once it is complete and synced
/// (`AtomicRename`): a run that fails, is interrupted or crashes leaves the
/// old output whole instead of nothing. `None` keeps writing in place (no
/// syncs, no promises); a stream is never replaced. A path that cannot be
/// looked at changes nothing here: creating it reports the error, where
/// ranks agree on it.
async fn replacing_durability(config: &WriterConfig) -> Durability {
    if !config.overwrite || config.durability != Durability::Fsync {
        return config.durability;
    }
    for path in super::output::planned_paths(config) {
        if let Ok(Existing::Regular) = probe(&path).await {
            return Durability::AtomicRename;
        }
    }
    config.durability
}

impl ParallelWriter {
    /// Open the output, detect the file system, size the buffers and start
    /// the committer. Must run inside an iokernel runtime (real or
    /// simulated). Errors name the op, path and errno.
    pub async fn new(mut config: WriterConfig) -> stdio::Result<ParallelWriter> {
        // Before the ranks compare their settings: a rank that saw another
        // output then disagrees with rank 0 and says so.
        if crate::runtime::in_runtime() {
            config.durability = replacing_durability(&config).await;
        }
        let across_ranks = config.coordinator.get().ranks() > 1;
        if across_ranks {
            let coord = config.coordinator.get();
            if let Err(err) = ranks::check_config(&config, &**coord).await {
                if super::coord::rank_failure_of(&err).is_none() {
                    // The coordinator failed here: nothing was agreed, so
                    // the others must not wait for this rank.
                    coord.abandon(RankFailure::new(
                        coord.rank(),
                        "new",
                        &config.path,
                        None,
                        super::errno_of(&err),
                        err.to_string(),
                    ));
                }
                return Err(err);
            }
        } else {
            config.validate()?;
        }
        if !crate::runtime::in_runtime() {
            return Err(invalid(
                "ParallelWriter::new must run inside an iokernel runtime".into(),
            ));
        }
        let started = now();
        let final_paths = final_paths(&config);
        let mut writer = ParallelWriter {
            info: LayoutInfo::detect(0, 0, None, None).map_err(|e| invalid(e.to_string()))?,
            stripe_bytes: 0,
            chunk_bytes: 0,
            started,
            shared: None,
            status: {
                let (_, chunks) = crate::sync::channel::<Chunk>(1);
                let (_, permits) = crate::sync::channel::<()>(1);
                Arc::new(Status::new(chunks, permits))
            },
            committer: None,
            files: None,
            created: config.created_files.clone().unwrap_or_default(),
            shard_paths: Vec::new(),
            stream: false,
            final_paths,
            config,
            on_lustre: false,
            shared_out: None,
            shared_out_path: None,
            settled: false,
        };
        if writer.config.stripe_request.is_some() {
            // Lustre fixes a file's layout when it is created, so whether to
            // ask for one must be known before any output exists.
            writer.on_lustre = dir_on_lustre(&dir_of(&writer.config.path)).await?;
        }
        // On error the writer is dropped here, which removes what it created
        // (and dropping the open files closes them).
        let files = if across_ranks {
            writer.open_rank_outputs().await?
        } else {
            let files = writer.open_outputs().await?;
            let write_paths: Vec<PathBuf> = files.0.iter().map(|f| f.write_path.clone()).collect();
            writer.info = writer.detect(files.0[0].fd, &write_paths).await?;
            files
        };
        writer.start(files)?;
        Ok(writer)
    }

    /// Open the stream, or create every file the committer writes into
    /// (shards, the output or its temporary file). The output's name is
    /// checked first, so a refused output creates nothing.
    async fn open_outputs(&mut self) -> stdio::Result<OutFiles> {
        let path = self.config.path.clone();
        if let Some(fd) = self.config.stream_fd {
            self.stream = true;
            return Ok(stream_files(path, fd));
        }
        let only_shards = matches!(self.config.layout, Layout::Sharded { merge: false, .. });
        let merged = matches!(self.config.layout, Layout::Sharded { merge: true, .. });
        if !only_shards {
            if let Existing::Stream(kind) = probe(&path).await? {
                let what = format!("output {} (a {})", path.display(), kind_name(kind));
                if let Some(why) = stream_refusal(&self.config, &what) {
                    return Err(invalid(why));
                }
                // No O_CREAT, no O_TRUNC: the node is written, never replaced.
                let fd = io::open(&path, OpenFlags::WRONLY, 0)
                    .await
                    .map_err(|e| WriteError::new("open", &path, None, e))?;
                self.stream = true;
                return Ok(stream_files(path, fd));
            }
            clear_for_create(&path, self.config.overwrite, false).await?;
        }
        let atomic = self.config.durability == Durability::AtomicRename;
        let mut files = OutFiles(Vec::with_capacity(self.final_paths.len()));
        for final_path in self.final_paths.clone() {
            let (write_path, fd) = if atomic && !merged {
                clear_for_create(&final_path, self.config.overwrite, false).await?;
                self.create_temp(&final_path, OpenFlags::RDWR).await?
            } else {
                let fd = self.create(&final_path, OpenFlags::RDWR).await?;
                (final_path, fd)
            };
            files.0.push(OutFile {
                write_path: write_path.clone(),
                fd,
                stream: false,
            });
            self.request_stripe(&write_path).await?;
        }
        if merged {
            self.shard_paths = files.0.iter().map(|f| f.write_path.clone()).collect();
        }
        Ok(files)
    }

    /// Create output `path` for `access` with `O_EXCL`, after unlinking an
    /// existing regular file if overwrite is on (refused otherwise). On
    /// Lustre with a stripe request the file is created without a layout
    /// (`O_LOV_DELAY_CREATE`) so the requested one can be set.
    async fn create(&mut self, path: &Path, access: OpenFlags) -> Result<RawFd, WriteError> {
        clear_for_create(path, self.config.overwrite, true).await?;
        let mut flags = access | OpenFlags::CREAT | OpenFlags::EXCL;
        if self.lays_out_files() {
            flags = flags | OpenFlags::LOV_DELAY_CREATE;
        }
        let guard = self.created.begin_create().ok_or_else(|| stopping(path))?;
        let fd = io::open(path, flags, 0o644)
            .await
            .map_err(|e| WriteError::new("create", path, None, e))?;
        guard.created(path);
        Ok(fd)
    }

    /// Create a temporary file for `final_path` under a name unique to the
    /// run (see [`super::output`]).
    async fn create_temp(
        &mut self,
        final_path: &Path,
        access: OpenFlags,
    ) -> Result<(PathBuf, RawFd), WriteError> {
        let mut flags = access;
        if self.lays_out_files() {
            flags = flags | OpenFlags::LOV_DELAY_CREATE;
        }
        let guard = self
            .created
            .begin_create()
            .ok_or_else(|| stopping(final_path))?;
        let (temp, fd) = super::output::create_temp(final_path, flags).await?;
        guard.created(&temp);
        Ok((temp, fd))
    }

    /// True when the writer sets a Lustre layout on the files it creates.
    fn lays_out_files(&self) -> bool {
        self.on_lustre && self.config.stripe_request.is_some()
    }

    /// `fstatfs` + `fstat` (+ Lustre xattrs) -> the layout facts.
    async fn detect(&mut self, fd: RawFd, write_paths: &[PathBuf]) -> stdio::Result<LayoutInfo> {
        let path = &write_paths[0];
        let fs = io::fstatfs(fd)
            .await
            .map_err(|e| WriteError::new("fstatfs", path, None, e))?;
        let stat = io::fstat(fd)
            .await
            .map_err(|e| WriteError::new("fstat", path, None, e))?;
        let fd_on_lustre = FilesystemKind::from_magic(fs.magic) == FilesystemKind::Lustre;
        if fd_on_lustre && !self.on_lustre {
            // The directory did not say Lustre but the file is on it (or
            // no layout was asked for): a request is still tried, and its
            // read-back says whether Lustre took it.
            self.on_lustre = true;
            for target in write_paths {
                self.request_stripe(target).await?;
            }
        }
        let mut lov = None;
        if self.on_lustre {
            match io::getxattr(path, LUSTRE_LOV_XATTR, LOV_XATTR_MAX_BYTES).await {
                Ok(bytes) => lov = Some(bytes),
                Err(e) if e.raw_os_error() == Some(crate::sys::Errno::ENODATA.0) => {}
                Err(e) => return Err(WriteError::new("getxattr lustre.lov", path, None, e).into()),
            }
        }
        let info = LayoutInfo::detect(
            fs.magic,
            stat.block_size_bytes,
            lov.as_deref(),
            self.config.mimic_lustre.as_deref(),
        )
        .map_err(|e| invalid(format!("sizing the writer for {}: {e}", path.display())))?;
        Ok(match self.config.stripe_bytes {
            Some(stripe_bytes) => info.with_stripe_bytes(stripe_bytes),
            None => info,
        })
    }

    fn start(&mut self, files: OutFiles) -> stdio::Result<()> {
        let config = &self.config;
        let mut sizing =
            WriterSizing::plan(&self.info, config.producers, config.memory_budget_bytes)
                .map_err(|e| invalid(format!("sizing the writer: {e}")))?;
        if let Some(chunk) = config.chunk_bytes {
            // A chunk size given outright keeps to the budget too: fewer
            // buffers of it (validate refused one too big for even the
            // fewest).
            let producers = u64::try_from(config.producers).unwrap_or(u64::MAX);
            let ideal_capacity = u64::try_from(sizing.channel_capacity).unwrap_or(1);
            let (buffers, capacity) =
                super::sizing::fit(producers, chunk, config.memory_budget_bytes, ideal_capacity)
                    .ok_or_else(|| {
                        invalid(format!(
                            "sizing the writer: chunks of {chunk} bytes do not fit the memory \
                             budget of {} bytes",
                            config.memory_budget_bytes
                        ))
                    })?;
            sizing.chunk_bytes = chunk;
            sizing.buffers_per_producer = buffers;
            sizing.channel_capacity = capacity;
        }
        self.stripe_bytes = sizing.stripe_bytes;
        self.chunk_bytes = sizing.chunk_bytes;
        let chunk_bytes = usize::try_from(self.chunk_bytes)
            .map_err(|_| invalid(format!("chunk of {} bytes is too big", self.chunk_bytes)))?;
        let window =
            (config.producers * (sizing.buffers_per_producer - 1) + sizing.channel_capacity).max(1);
        let (chunks_tx, chunks_rx) = crate::sync::unbounded_channel::<Chunk>();
        let (permits_tx, permits_rx) = crate::sync::unbounded_channel::<()>();
        for _ in 0..window {
            let _ = permits_tx.try_send(());
        }
        // Buffers live: one filling per producer plus one per permit.
        let status = Arc::new(Status::with_spares(
            chunks_rx.clone(),
            permits_rx.clone(),
            window + config.producers,
            chunk_bytes,
        ));
        let files = Arc::new(files);
        // A stream is written in sequence order: there is no seeking back.
        let ordered = config.ordered || self.stream;
        let placer = Placer::new(
            config.layout,
            self.stripe_bytes,
            config.content,
            config.gzip_level.is_some(),
            ordered,
            files.0[0].write_path.clone(),
        )?;
        let coord = config.coordinator.get();
        let placer = if coord.ranks() > 1 {
            let direct = ranks::RankMode::of(config) == ranks::RankMode::Direct;
            let shared = direct.then(|| SharedCursor::new(Arc::clone(coord)));
            placer.across_ranks(shared, true)
        } else {
            placer
        };
        let committer = Committer {
            chunks: chunks_rx,
            permits: permits_tx,
            status: Arc::clone(&status),
            files: Arc::clone(&files),
            placer,
            ordered,
            // A stream takes one write at a time, in order.
            writes_in_flight_max: if self.stream {
                0
            } else {
                (self.info.stripe_count as usize).max(2).min(window.max(2))
            },
            chunks_seen: 0,
            payload_seen: 0,
        };
        self.shared = Some(Arc::new(ProducerShared {
            chunk_bytes,
            gzip_level: config.gzip_level,
            content: config.content,
            final_newline: config.final_newline,
            path: config.path.clone(),
            next_seq: AtomicU64::new(0),
            next_producer: AtomicUsize::new(0),
            chunks: chunks_tx,
            permits: permits_rx,
            status: Arc::clone(&status),
        }));
        self.status = status;
        self.files = Some(files);
        self.committer = Some(crate::runtime::spawn(committer.run()));
        Ok(())
    }

    /// A new producer handle.
    pub fn producer(&self) -> Producer {
        let shared = self
            .shared
            .as_ref()
            .expect("a ParallelWriter has producers until finish() consumes it");
        Producer::new(Arc::clone(shared))
    }

    /// The file system the output lives on, as detected.
    pub fn fs_kind(&self) -> FilesystemKind {
        self.info.fs_kind
    }

    /// The stripe (slot) size in use.
    pub fn stripe_bytes(&self) -> u64 {
        self.stripe_bytes
    }

    /// The chunk size producers seal buffers at.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// The layout facts detected when the writer was created.
    pub fn layout_info(&self) -> LayoutInfo {
        self.info
    }

    /// Wait until every producer is closed or dropped, commit what they
    /// sealed, then merge (sharded with merge), fsync, rename
    /// (`AtomicRename`) and report. On error nothing is reported as
    /// written: the error names the op, path, offset and errno, and the
    /// writer's files are removed (see the module docs).
    pub async fn finish(mut self) -> stdio::Result<WriteReport> {
        self.shared = None;
        let committed = match self.committer.take() {
            Some(handle) => match handle.await {
                Ok(result) => result,
                Err(join) => Err(WriteError::new(
                    "commit",
                    &self.config.path,
                    None,
                    stdio::Error::other(join.to_string()),
                )),
            },
            None => Err(WriteError::new(
                "commit",
                &self.config.path,
                None,
                stdio::Error::other("writer has no committer"),
            )),
        };
        if self.config.coordinator.get().ranks() > 1 {
            let result = self.finish_ranks(committed).await;
            if let Err(err) = &result {
                // After an agreed failure every rank returns anyway; after
                // the coordinator failed here, the others must not wait for
                // this rank's next collective.
                let coord = self.config.coordinator.get();
                let failure = match super::coord::rank_failure_of(err) {
                    Some(failure) => failure.clone(),
                    None => RankFailure::new(
                        coord.rank(),
                        "finish",
                        &self.config.path,
                        None,
                        super::errno_of(err),
                        err.to_string(),
                    ),
                };
                coord.abandon(failure);
                self.remove_created();
            } else {
                self.created.take();
            }
            self.settled = true;
            return result;
        }
        let result = match committed {
            Ok(committed) => self.finalize(committed).await,
            Err(err) => Err(err),
        };
        self.settled = true;
        match result {
            Ok(report) => {
                self.created.take();
                Ok(report)
            }
            Err(err) => {
                self.status.fail(err.clone());
                self.remove_created();
                Err(err.into())
            }
        }
    }

    async fn finalize(&mut self, mut committed: Committed) -> Result<WriteReport, WriteError> {
        let files = self.files.take().expect("files live until finish");
        if self.config.gzip_level.is_some() {
            // An empty file is not valid gzip: give it one empty member.
            for (file, len) in files.0.iter().zip(committed.file_lens.iter_mut()) {
                if *len == 0 {
                    let member = super::gzip::empty_member(super::gzip::EMPTY_MEMBER_BYTES)
                        .expect("an empty member fits its own size");
                    *len = member.len() as u64;
                    put_all(file, member, 0).await?;
                }
            }
        }
        // A stream has nothing to sync (and fsync on a pipe is EINVAL).
        let sync = self.config.durability != Durability::None && !self.stream;
        let mut outputs: Vec<(PathBuf, u64)> = Vec::new();
        if let Layout::Sharded { merge: true, .. } = self.config.layout {
            let merged = self
                .merge(&files, &committed.file_lens, committed.extents.as_deref())
                .await?;
            outputs.push(merged);
        } else {
            for (file, len) in files.0.iter().zip(&committed.file_lens) {
                if sync {
                    fsync(file.fd, &file.write_path).await?;
                }
                outputs.push((file.write_path.clone(), *len));
            }
        }
        drop(files);
        let mut final_files = Vec::new();
        if self.config.durability == Durability::AtomicRename {
            let renames: Vec<(PathBuf, PathBuf)> = match self.config.layout {
                Layout::Sharded { merge: true, .. } => {
                    vec![(outputs[0].0.clone(), self.config.path.clone())]
                }
                _ => outputs
                    .iter()
                    .map(|(p, _)| p.clone())
                    .zip(self.final_paths.iter().cloned())
                    .collect(),
            };
            for (from, to) in renames {
                io::rename(&from, &to)
                    .await
                    .map_err(|e| WriteError::new("rename", &to, None, e))?;
                self.created.forget(&from);
                final_files.push(to);
            }
            fsync_dir(&dir_of(&self.config.path)).await?;
        } else {
            final_files = outputs.iter().map(|(p, _)| p.clone()).collect();
            if sync {
                // The files were created by this writer: their names are
                // durable only once the directory is synced.
                fsync_dir(&dir_of(&self.config.path)).await?;
            }
        }
        if let Layout::Sharded { merge: true, .. } = self.config.layout {
            self.remove_shards().await?;
        }
        let bytes_out: u64 = outputs.iter().map(|(_, len)| len).sum();
        let stripes = outputs
            .iter()
            .map(|(_, len)| len.div_ceil(self.stripe_bytes.max(1)))
            .sum();
        Ok(WriteReport {
            path: self.config.path.clone(),
            files: final_files,
            bytes_in: committed.payload_bytes,
            bytes_out,
            chunks: committed.chunks,
            stripes,
            padding_bytes: committed.padding_bytes,
            layout: self.config.layout,
            fs_kind: self.info.fs_kind,
            stripe_bytes: self.stripe_bytes,
            chunk_bytes: self.chunk_bytes,
            elapsed: now().saturating_sub(self.started),
            rank: 0,
            ranks: 1,
            rank_bytes_in: committed.payload_bytes,
            rank_bytes_out: bytes_out,
            stream: self.stream,
        })
    }

    /// On Lustre, with a stripe request: lay out the new, still empty
    /// `target` by setting its `lustre.lov` xattr, then read the layout
    /// back. Lustre answers success even when it keeps a layout the file
    /// already had, so only the read-back tells; a different layout is an
    /// error naming both.
    async fn request_stripe(&self, target: &Path) -> Result<(), WriteError> {
        let Some(request) = self.config.stripe_request.filter(|_| self.on_lustre) else {
            return Ok(());
        };
        let blob = encode_v1(request.stripe_bytes, request.stripe_count);
        io::setxattr(target, LUSTRE_LOV_XATTR, blob, 0)
            .await
            .map_err(|e| WriteError::new("setxattr lustre.lov", target, None, e))?;
        let read_back = |e| WriteError::new("getxattr lustre.lov", target, None, e);
        let blob = io::getxattr(target, LUSTRE_LOV_XATTR, LOV_XATTR_MAX_BYTES)
            .await
            .map_err(read_back)?;
        let layout = parse_lov(&blob)
            .map_err(|e| read_back(stdio::Error::new(stdio::ErrorKind::InvalidData, e)))?;
        let got = (layout.stripe_bytes, layout.stripe_count);
        let asked = (request.stripe_bytes.get(), u32::from(request.stripe_count));
        if got == asked {
            return Ok(());
        }
        Err(read_back(stdio::Error::other(format!(
            "Lustre kept a layout of {} x {} bytes instead of the requested {} x {} bytes",
            got.1, got.0, asked.1, asked.0
        ))))
    }

    /// Copy the shards into the merged file with `sendfile` (in sequence
    /// order when ordered, else shard after shard) and sync it.
    async fn merge(
        &mut self,
        files: &OutFiles,
        shard_lens: &[u64],
        extents: Option<&[ShardExtent]>,
    ) -> Result<(PathBuf, u64), WriteError> {
        let path = self.config.path.clone();
        let (target, out) = match self.config.durability {
            Durability::AtomicRename => self.create_temp(&path, OpenFlags::WRONLY).await?,
            _ => {
                let fd = self.create(&path, OpenFlags::WRONLY).await?;
                (path, fd)
            }
        };
        let out = OutFiles(vec![OutFile {
            write_path: target.clone(),
            fd: out,
            stream: false,
        }]);
        // The merged file is the user's output: it gets the requested
        // layout too, before any data reaches it (dropping `out`
        // closes it on error).
        self.request_stripe(&target).await?;
        let whole: Vec<ShardExtent>;
        let extents = match extents {
            Some(extents) => extents,
            None => {
                whole = shard_lens
                    .iter()
                    .enumerate()
                    .map(|(shard, &len)| ShardExtent {
                        shard,
                        offset: 0,
                        len,
                    })
                    .collect();
                &whole
            }
        };
        let mut total = 0u64;
        for extent in extents {
            let source = &files.0[extent.shard];
            copy_range(
                out.0[0].fd,
                source,
                extent.offset,
                extent.len,
                &target,
                total,
            )
            .await?;
            total += extent.len;
        }
        if self.config.durability != Durability::None {
            fsync(out.0[0].fd, &target).await?;
        }
        Ok((target, total))
    }

    async fn remove_shards(&mut self) -> Result<(), WriteError> {
        for shard in std::mem::take(&mut self.shard_paths) {
            io::unlink(&shard)
                .await
                .map_err(|e| WriteError::new("unlink", &shard, None, e))?;
            self.created.forget(&shard);
        }
        if self.config.durability != Durability::None {
            fsync_dir(&dir_of(&self.config.path)).await?;
        }
        Ok(())
    }

    /// Best-effort removal of every file this writer created and did not
    /// rename into place.
    /// Remove every listed file, unlisting each once it is gone. One whose
    /// unlink failed stays listed, like the rest if this process dies part
    /// way: a journal reader ([`CreatedFiles::with_journal`]) still has it.
    fn remove_created(&mut self) {
        for path in self.created.paths() {
            match io::unlink(&path).wait() {
                Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {}
                _ => self.created.forget(&path),
            }
        }
    }
}

impl Drop for ParallelWriter {
    fn drop(&mut self) {
        let coord = self.config.coordinator.get();
        if !self.settled && coord.ranks() > 1 {
            // The other ranks learn why: this writer's own failure, if it
            // had one, else that it was dropped.
            let failure = match self.status.failure() {
                Some(err) => ranks::failure_of(coord.rank(), &err),
                None => RankFailure::new(
                    coord.rank(),
                    "write",
                    &self.config.path,
                    None,
                    None,
                    "the rank's writer was dropped before finish() ended",
                ),
            };
            coord.abandon(failure);
        }
        if self.created.is_empty() {
            return;
        }
        self.status.fail(WriteError::new(
            "write",
            &self.config.path,
            None,
            stdio::Error::new(
                stdio::ErrorKind::BrokenPipe,
                "the parallel writer was dropped before finish()",
            ),
        ));
        self.remove_created();
    }
}

/// The registry of created files is sealed (the run is being stopped by a
/// signal): `path` is not created.
fn stopping(path: &Path) -> WriteError {
    WriteError::new(
        "create",
        path,
        None,
        stdio::Error::new(
            stdio::ErrorKind::Interrupted,
            "the run is being stopped; nothing more is created",
        ),
    )
}

/// Final path of every file the committer writes, by index (shards, or
/// the output).
fn final_paths(config: &WriterConfig) -> Vec<PathBuf> {
    match config.layout {
        Layout::Sharded { shards, .. } => {
            (0..shards).map(|i| shard_path(&config.path, i)).collect()
        }
        _ => vec![config.path.clone()],
    }
}

/// The one stream "file": `fd`, named `path` in messages.
fn stream_files(path: PathBuf, fd: RawFd) -> OutFiles {
    OutFiles(vec![OutFile {
        write_path: path,
        fd,
        stream: true,
    }])
}

async fn fsync(fd: RawFd, path: &Path) -> Result<(), WriteError> {
    io::fsync(fd)
        .await
        .map_err(|e| WriteError::new("fsync", path, None, e))
}

async fn fsync_dir(dir: &Path) -> Result<(), WriteError> {
    let fd = io::open(dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0)
        .await
        .map_err(|e| WriteError::new("open directory", dir, None, e))?;
    let synced = io::fsync(fd).await;
    let closed = io::close(fd).await;
    synced.map_err(|e| WriteError::new("fsync directory", dir, None, e))?;
    closed.map_err(|e| WriteError::new("close directory", dir, None, e))
}

/// `sendfile` `len` bytes of `source` from `offset` to `out_fd`'s position.
async fn copy_range(
    out_fd: RawFd,
    source: &OutFile,
    offset: u64,
    len: u64,
    target: &Path,
    target_offset: u64,
) -> Result<(), WriteError> {
    let mut done = 0u64;
    while done < len {
        let ask = (len - done).min(SENDFILE_MAX_BYTES) as usize;
        match io::sendfile(out_fd, source.fd, offset + done, ask).await {
            Ok(0) => {
                return Err(WriteError::new(
                    "sendfile",
                    &source.write_path,
                    Some(offset + done),
                    stdio::Error::new(
                        stdio::ErrorKind::UnexpectedEof,
                        format!(
                            "shard ended early while merging into {} at offset {}",
                            target.display(),
                            target_offset + done
                        ),
                    ),
                ))
            }
            Ok(n) => done += n as u64,
            Err(e) => {
                return Err(WriteError::new(
                    "sendfile",
                    target,
                    Some(target_offset + done),
                    e,
                ))
            }
        }
    }
    Ok(())
}
