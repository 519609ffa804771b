//! Writing one output across ranks: a [`WriterConfig::coordinator`] with
//! more than one rank (in-process [`RankGroup`](crate::writer::coord::RankGroup),
//! MPI, simulated ranks).
//!
//! Every rank runs its own `ParallelWriter` with its own producers; they
//! meet only through the coordinator, always in the same sequence of
//! collectives whatever happens locally, so a failure on one rank reaches
//! every rank at the next agreement and every rank's `new()` or `finish()`
//! returns the same error, a [`RankFailure`] naming the failing rank, op,
//! path, offset and errno.
//!
//! How each layout is written ([`RankMode`]):
//! * Striped and padded-striped, unordered (*direct*): rank 0 creates the
//!   output (or, with `AtomicRename`, its temporary file, whose name it
//!   broadcasts) and every other rank opens it. Each chunk takes its byte
//!   range (`reserve_bytes`) or its new slots (`reserve_slots`) from the
//!   coordinator and is written there by the rank that made it. A padded
//!   rank pads its last slot to the stripe boundary, since another rank's
//!   slot may follow.
//! * Ordered (striped or padded) and sharded with merge (*parts*): each
//!   rank writes a rank-local file (its ordered part, a temporary name; or
//!   its shards), then `exclusive_prefix_sum` of the part sizes gives its
//!   offset and it copies its part into the output there (`sendfile`).
//!   The output is rank 0's part, then rank 1's, ...; gzip parts are whole
//!   members, so the concatenation stays valid. Parts are removed once the
//!   output is durable.
//! * Sharded, kept (*shards*): rank `r`'s shard `i` of `s` is
//!   `<path>.shard_<r * s + i>` (a global index, so the names are the same
//!   as one rank writing `ranks * s` shards).
//!
//! Sequence (each step ends with an `agree` on every rank's outcome; a
//! failed agreement makes every rank remove what it created and return
//! the agreed failure):
//! 1. `new()`: gather every rank's configuration check and a fingerprint
//!    of the settings that must match (path, layout, order, gzip, content,
//!    durability, stripe and sizing overrides); a rank that differs from
//!    rank 0 is named. Rank 0 creates the output, every rank its own
//!    files; agree. Broadcast the output's name, the others open it,
//!    everyone sizes itself; agree. Only then is anything written.
//! 2. `finish()`: each rank drains its committer (direct: and fsyncs the
//!    output); agree. Gather sizes. Parts are copied in and the output
//!    fsynced by every rank that wrote to it; agree. Rank 0 renames the
//!    temporary file into place (or only fsyncs the directory); agree.
//!    Parts are removed; agree.
//!
//! A rank whose writer is dropped before `finish()` calls
//! [`Coordinator::abandon`], so the others fail at their next coordinator
//! call instead of waiting for it; with `AtomicRename` the final name then
//! never appears, in place the output is removed by rank 0.

use super::{
    copy_range, fsync, fsync_dir, shard_path, Committed, OutFile, OutFiles, ParallelWriter,
};
use crate::io::{self, OpenFlags, Whence};
use crate::writer::config::{Durability, Layout, WriteReport, WriterConfig};
use crate::writer::coord::{rank_failure_of, Coordinator, RankFailure};
use crate::writer::error::WriteError;
use crate::writer::output::{clear_for_create, kind_name, probe, Existing};
use std::io as stdio;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the ranks share the output (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RankMode {
    Direct,
    Parts,
    Shards,
}

impl RankMode {
    pub(super) fn of(config: &WriterConfig) -> RankMode {
        match config.layout {
            Layout::Sharded { merge: false, .. } => RankMode::Shards,
            Layout::Sharded { merge: true, .. } => RankMode::Parts,
            _ if config.ordered => RankMode::Parts,
            _ => RankMode::Direct,
        }
    }
}

/// `err` on `rank`, as every rank will report it (or the failure of the
/// rank that gave up, when `err` is a coordinator call that failed for it).
pub(super) fn failure_of(rank: usize, err: &WriteError) -> RankFailure {
    if let Some(failure) = rank_failure_of(err.source_error()) {
        // A coordinator call failed because another rank gave up.
        return failure.clone();
    }
    RankFailure::new(
        rank,
        err.op(),
        err.path(),
        err.offset(),
        err.errno(),
        err.source_error().to_string(),
    )
}

const CHECK_OP: &str = "check the writer configuration";

/// What must be the same on every rank for them to write one output.
fn fingerprint(config: &WriterConfig) -> String {
    format!(
        "path {:?}, layout {}, ordered {}, gzip {:?}, content {:?}, durability {:?}, \
         mimic_lustre {:?}, stripe_request {:?}, stripe_bytes {:?}, final_newline {}, \
         overwrite {}",
        config.path,
        config.layout,
        config.ordered,
        config.gzip_level,
        config.content,
        config.durability,
        config.mimic_lustre,
        config
            .stripe_request
            .map(|r| (r.stripe_bytes.get(), r.stripe_count)),
        config.stripe_bytes.map(|s| s.get()),
        config.final_newline,
        config.overwrite,
    )
}

/// Step 1 of `new()`: every rank's configuration is valid and matches
/// rank 0's, or every rank fails naming the lowest rank that is wrong.
pub(super) async fn check_config(
    config: &WriterConfig,
    coord: &dyn Coordinator,
) -> stdio::Result<()> {
    let rank = coord.rank();
    let local = config.validate().and_then(|()| {
        if crate::runtime::in_runtime() {
            Ok(())
        } else {
            Err(stdio::Error::new(
                stdio::ErrorKind::InvalidInput,
                "ParallelWriter::new must run inside an iokernel runtime",
            ))
        }
    });
    let mine = match &local {
        Ok(()) => [&[0u8][..], fingerprint(config).as_bytes()].concat(),
        Err(e) => {
            let failure = RankFailure::new(
                rank,
                CHECK_OP,
                &config.path,
                None,
                e.raw_os_error(),
                e.to_string(),
            );
            [&[1u8][..], &failure.encode()].concat()
        }
    };
    let all = coord
        .all_gather(mine)
        .await
        .map_err(|e| coord_failed("all_gather", &config.path, e))?;
    for bytes in &all {
        if let Some((1, failure)) = bytes.split_first() {
            return Err(RankFailure::decode(failure)?.into());
        }
    }
    let of_rank0 = all.first().map(|b| b.get(1..).unwrap_or_default());
    for (r, bytes) in all.iter().enumerate() {
        let theirs = bytes.get(1..).unwrap_or_default();
        if Some(theirs) != of_rank0 {
            let message = format!(
                "rank {r}'s writer settings differ from rank 0's: {} vs {}",
                String::from_utf8_lossy(theirs),
                String::from_utf8_lossy(of_rank0.unwrap_or_default())
            );
            let failure = RankFailure::new(r, CHECK_OP, &config.path, None, None, message);
            return Err(stdio::Error::new(stdio::ErrorKind::InvalidInput, failure));
        }
    }
    Ok(())
}

impl ParallelWriter {
    fn coord(&self) -> Arc<dyn Coordinator> {
        Arc::clone(self.config.coordinator.get())
    }

    /// Agree with every rank on `mine`: `Ok` when all succeeded, else the
    /// agreed failure (or the coordinator's own error).
    async fn agreed(&self, mine: Result<(), WriteError>) -> stdio::Result<()> {
        let coord = self.coord();
        let mine = mine.map_err(|e| failure_of(coord.rank(), &e));
        match coord.agree(mine).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(failure.into()),
            // A group poisoned by a rank that gave up names that rank.
            Err(e) => Err(match rank_failure_of(&e) {
                Some(failure) => failure.clone().into(),
                None => WriteError::new("agree", &self.config.path, None, e).into(),
            }),
        }
    }

    /// `new()` across ranks: create and open every file (see the module
    /// docs), size the writer; the files the committer writes.
    pub(super) async fn open_rank_outputs(&mut self) -> stdio::Result<OutFiles> {
        let coord = self.coord();
        let (rank, mode) = (coord.rank(), RankMode::of(&self.config));
        let created = async {
            if mode != RankMode::Shards && rank == 0 {
                let (path, fd) = self.create_shared_output(coord.ranks()).await?;
                self.shared_out_path = Some(path.clone());
                self.shared_out = Some(OutFiles(vec![OutFile {
                    write_path: path,
                    fd,
                    stream: false,
                }]));
            }
            self.create_rank_files(rank, mode).await
        }
        .await;
        let mine = created.as_ref().map(|_| ()).map_err(WriteError::clone);
        self.agreed(mine).await?;
        let mut local = created.map_err(stdio::Error::from)?;
        let opened = async {
            if mode != RankMode::Shards {
                let name = self
                    .shared_out
                    .as_ref()
                    .map(|f| f.0[0].write_path.as_os_str().as_encoded_bytes().to_vec())
                    .unwrap_or_default();
                let name = coord
                    .broadcast(name)
                    .await
                    .map_err(|e| WriteError::new("broadcast", &self.config.path, None, e))?;
                if rank != 0 {
                    let path = PathBuf::from(String::from_utf8_lossy(&name).into_owned());
                    let fd = io::open(&path, OpenFlags::RDWR, 0).await.map_err(|e| {
                        WriteError::new("open (another rank's output)", &path, None, e)
                    })?;
                    self.shared_out_path = Some(path.clone());
                    self.shared_out = Some(OutFiles(vec![OutFile {
                        write_path: path,
                        fd,
                        stream: false,
                    }]));
                }
                if mode == RankMode::Direct {
                    local = self.shared_out.take().expect("opened above");
                }
            }
            let write_paths: Vec<PathBuf> = local.0.iter().map(|f| f.write_path.clone()).collect();
            self.info = self
                .detect(local.0[0].fd, &write_paths)
                .await
                .map_err(|e| match e.into_inner() {
                    Some(inner) => match inner.downcast::<WriteError>() {
                        Ok(w) => *w,
                        Err(other) => WriteError::new(
                            "size",
                            &write_paths[0],
                            None,
                            stdio::Error::other(other.to_string()),
                        ),
                    },
                    None => WriteError::new(
                        "size",
                        &write_paths[0],
                        None,
                        stdio::Error::other("sizing failed"),
                    ),
                })?;
            Ok(())
        }
        .await;
        self.agreed(opened).await?;
        Ok(local)
    }

    /// Rank 0: create the output every rank writes into (or its temporary
    /// file); its write path and fd.
    async fn create_shared_output(
        &mut self,
        ranks: usize,
    ) -> Result<(PathBuf, std::os::fd::RawFd), WriteError> {
        let path = self.config.path.clone();
        if let Existing::Stream(kind) = probe(&path).await? {
            return Err(WriteError::new(
                "create",
                &path,
                None,
                stdio::Error::new(
                    stdio::ErrorKind::InvalidInput,
                    format!(
                        "is a {}: a stream cannot be written by {ranks} ranks",
                        kind_name(kind)
                    ),
                ),
            ));
        }
        let (write_path, fd) = if self.config.durability == Durability::AtomicRename {
            clear_for_create(&path, self.config.overwrite, false).await?;
            self.create_temp(&path, OpenFlags::RDWR).await?
        } else {
            let fd = self.create(&path, OpenFlags::RDWR).await?;
            (path, fd)
        };
        self.request_stripe(&write_path).await?;
        Ok((write_path, fd))
    }

    /// This rank's own files: none (direct), its ordered part, or its
    /// shards (named by global index).
    async fn create_rank_files(
        &mut self,
        rank: usize,
        mode: RankMode,
    ) -> Result<OutFiles, WriteError> {
        let path = self.config.path.clone();
        let mut files = OutFiles(Vec::new());
        let shards = match self.config.layout {
            Layout::Sharded { shards, .. } => shards,
            _ => 0,
        };
        let atomic = self.config.durability == Durability::AtomicRename;
        match mode {
            RankMode::Direct => return Ok(files),
            RankMode::Parts if shards == 0 => {
                let (part, fd) = self.create_temp(&path, OpenFlags::RDWR).await?;
                files.0.push(OutFile {
                    write_path: part,
                    fd,
                    stream: false,
                });
            }
            RankMode::Parts => {
                for i in 0..shards {
                    let shard = shard_path(&path, rank * shards + i);
                    let fd = self.create(&shard, OpenFlags::RDWR).await?;
                    files.0.push(OutFile {
                        write_path: shard,
                        fd,
                        stream: false,
                    });
                }
            }
            RankMode::Shards => {
                self.final_paths = (0..shards)
                    .map(|i| shard_path(&path, rank * shards + i))
                    .collect();
                for final_path in self.final_paths.clone() {
                    let (write_path, fd) = if atomic {
                        clear_for_create(&final_path, self.config.overwrite, false).await?;
                        self.create_temp(&final_path, OpenFlags::RDWR).await?
                    } else {
                        (
                            final_path.clone(),
                            self.create(&final_path, OpenFlags::RDWR).await?,
                        )
                    };
                    files.0.push(OutFile {
                        write_path: write_path.clone(),
                        fd,
                        stream: false,
                    });
                    self.request_stripe(&write_path).await?;
                }
            }
        }
        self.shard_paths = files.0.iter().map(|f| f.write_path.clone()).collect();
        if mode == RankMode::Shards {
            self.shard_paths.clear();
        }
        Ok(files)
    }

    /// `finish()` across ranks (see the module docs for the steps).
    pub(super) async fn finish_ranks(
        &mut self,
        committed: Result<Committed, WriteError>,
    ) -> stdio::Result<WriteReport> {
        let coord = self.coord();
        let (rank, ranks, mode) = (coord.rank(), coord.ranks(), RankMode::of(&self.config));
        let sync = self.config.durability != Durability::None;
        let gzip = self.config.gzip_level.is_some();
        let files = self.files.take().expect("files live until finish");
        let drained = async {
            let mut committed = committed?;
            if mode == RankMode::Shards && gzip {
                put_empty_members(&files, &mut committed.file_lens).await?;
            }
            if mode == RankMode::Direct && sync {
                fsync(files.0[0].fd, &files.0[0].write_path).await?;
            }
            Ok(committed)
        }
        .await;
        self.agreed(drained.as_ref().map(|_| ()).map_err(WriteError::clone))
            .await?;
        let committed = drained.map_err(stdio::Error::from)?;

        let my_len: u64 = committed.file_lens.iter().sum();
        let my_stripes: u64 = committed
            .file_lens
            .iter()
            .map(|len| len.div_ceil(self.stripe_bytes.max(1)))
            .sum();
        let mine = [
            my_len,
            committed.payload_bytes,
            committed.chunks,
            committed.padding_bytes,
            my_stripes,
        ];
        let stats = gather_stats(&*coord, &mine, &self.config.path).await?;
        let lens: Vec<u64> = stats.iter().map(|s| s[0]).collect();
        let sum = |i: usize| stats.iter().map(|s| s[i]).sum::<u64>();
        let mut bytes_out = match mode {
            RankMode::Direct => lens.iter().copied().max().unwrap_or(0),
            _ => sum(0),
        };
        let empty_member = gzip && bytes_out == 0 && mode != RankMode::Shards;
        if empty_member {
            bytes_out = super::super::gzip::EMPTY_MEMBER_BYTES as u64;
        }

        let placed = async {
            if mode == RankMode::Shards {
                if sync {
                    for file in &files.0 {
                        fsync(file.fd, &file.write_path).await?;
                    }
                }
                return Ok(());
            }
            let shared_out = match mode {
                RankMode::Parts => self
                    .shared_out
                    .take()
                    .expect("parts mode keeps the output open"),
                _ => OutFiles(Vec::new()),
            };
            let out = shared_out.0.first().unwrap_or(&files.0[0]);
            if mode == RankMode::Parts {
                let before: u64 = lens[..rank].iter().sum();
                self.copy_parts(out, &files, &committed, before).await?;
            }
            if rank == 0 && empty_member {
                let member =
                    super::super::gzip::empty_member(super::super::gzip::EMPTY_MEMBER_BYTES)
                        .expect("an empty member fits its own size");
                super::put_all(out, member, 0).await?;
            }
            let wrote = mode == RankMode::Parts || (rank == 0 && empty_member);
            if sync && wrote {
                fsync(out.fd, &out.write_path).await?;
            }
            Ok(())
        }
        .await;
        self.agreed(placed).await?;

        let write_paths: Vec<PathBuf> = files.0.iter().map(|f| f.write_path.clone()).collect();
        drop(files);
        let named = self.name_output(rank, mode, write_paths).await;
        self.agreed(named).await?;

        if mode == RankMode::Parts {
            let removed = self.remove_shards().await;
            self.agreed(removed).await?;
        }
        let path = self.config.path.clone();
        let report_files = match (mode, self.config.layout) {
            (RankMode::Shards, Layout::Sharded { shards, .. }) => {
                (0..ranks * shards).map(|i| shard_path(&path, i)).collect()
            }
            _ => vec![path.clone()],
        };
        Ok(WriteReport {
            path,
            files: report_files,
            bytes_in: sum(1),
            bytes_out,
            chunks: sum(2),
            stripes: match mode {
                RankMode::Shards => sum(4),
                _ => bytes_out.div_ceil(self.stripe_bytes.max(1)),
            },
            padding_bytes: sum(3),
            layout: self.config.layout,
            fs_kind: self.info.fs_kind,
            stripe_bytes: self.stripe_bytes,
            chunk_bytes: self.chunk_bytes,
            elapsed: super::now().saturating_sub(self.started),
            rank,
            ranks,
            rank_bytes_in: committed.payload_bytes,
            rank_bytes_out: my_len,
            // Several ranks never write a stream (refused at the start).
            stream: false,
        })
    }

    /// Copy this rank's part (its ordered part file, or its shards: whole,
    /// or chunk by chunk in sequence order) into the output at `before`.
    async fn copy_parts(
        &self,
        out: &OutFile,
        files: &OutFiles,
        committed: &Committed,
        before: u64,
    ) -> Result<(), WriteError> {
        let at = i64::try_from(before).map_err(|_| {
            WriteError::new(
                "lseek",
                &out.write_path,
                Some(before),
                stdio::Error::other("offset past i64"),
            )
        })?;
        io::lseek(out.fd, at, Whence::Set)
            .await
            .map_err(|e| WriteError::new("lseek", &out.write_path, Some(before), e))?;
        let whole: Vec<(usize, u64, u64)> = committed
            .file_lens
            .iter()
            .enumerate()
            .map(|(i, &len)| (i, 0, len))
            .collect();
        let extents: Vec<(usize, u64, u64)> = match &committed.extents {
            Some(extents) => extents.iter().map(|e| (e.shard, e.offset, e.len)).collect(),
            None => whole,
        };
        let mut done = before;
        for (file, offset, len) in extents {
            copy_range(out.fd, &files.0[file], offset, len, &out.write_path, done).await?;
            done += len;
        }
        Ok(())
    }

    /// Make the output's name durable: rank 0 renames the temporary file
    /// into place (or syncs the directory); with kept shards each rank
    /// renames its own.
    async fn name_output(
        &mut self,
        rank: usize,
        mode: RankMode,
        write_paths: Vec<PathBuf>,
    ) -> Result<(), WriteError> {
        let atomic = self.config.durability == Durability::AtomicRename;
        let sync = self.config.durability != Durability::None;
        let dir = super::dir_of(&self.config.path);
        let renames: Vec<(PathBuf, PathBuf)> = match mode {
            RankMode::Shards if atomic => write_paths
                .into_iter()
                .zip(self.final_paths.clone())
                .collect(),
            RankMode::Shards => Vec::new(),
            _ if rank != 0 => return Ok(()),
            _ if atomic => match self.shared_out_path.clone() {
                Some(temp) => vec![(temp, self.config.path.clone())],
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        for (from, to) in renames {
            io::rename(&from, &to)
                .await
                .map_err(|e| WriteError::new("rename", &to, None, e))?;
            self.created.forget(&from);
        }
        if sync {
            fsync_dir(&dir).await?;
        }
        Ok(())
    }
}

/// An empty file is not valid gzip: give each empty one an empty member.
async fn put_empty_members(files: &OutFiles, lens: &mut [u64]) -> Result<(), WriteError> {
    for (file, len) in files.0.iter().zip(lens.iter_mut()) {
        if *len == 0 {
            let member = super::super::gzip::empty_member(super::super::gzip::EMPTY_MEMBER_BYTES)
                .expect("an empty member fits its own size");
            *len = member.len() as u64;
            super::put_all(file, member, 0).await?;
        }
    }
    Ok(())
}

/// Every rank's `values`, by rank.
async fn gather_stats(
    coord: &dyn Coordinator,
    values: &[u64],
    path: &Path,
) -> stdio::Result<Vec<Vec<u64>>> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let all = coord
        .all_gather(bytes)
        .await
        .map_err(|e| coord_failed("all_gather", path, e))?;
    all.iter()
        .enumerate()
        .map(|(r, b)| {
            if b.len() != values.len() * 8 {
                return Err(stdio::Error::new(
                    stdio::ErrorKind::InvalidData,
                    format!(
                        "rank {r} sent {} bytes of sizes, expected {}",
                        b.len(),
                        values.len() * 8
                    ),
                ));
            }
            Ok(b.chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        })
        .collect()
}

/// A coordinator call `op` failed: the failure of the rank that gave up,
/// when that is why, else `op` on `path` with the coordinator's error.
fn coord_failed(op: &'static str, path: &Path, err: stdio::Error) -> stdio::Error {
    match rank_failure_of(&err) {
        Some(failure) => failure.clone().into(),
        None => WriteError::new(op, path, None, err).into(),
    }
}
