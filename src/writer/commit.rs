//! The committer: takes sealed chunks off the channel, decides where each
//! one lands (per layout), and writes them with `pwrite`, several at once.
//!
//! One committer task per writer. It is the only place that assigns file
//! offsets, so reserving a chunk's byte range is a plain counter bump done
//! in the order chunks are placed: on arrival, or (ordered) by sequence
//! number, with early arrivals held until the gap before them fills.
//! Placing is pure ([`Placer`]); writing is a spawned task per chunk that
//! resumes short writes and gives the chunk's permit back when done, so
//! compression, placement and several writes overlap.
//!
//! Padded striped: the most recently placed chunk is held back until the
//! next placement (or the end) tells whether its slot closes behind it; if
//! so the chunk's own buffer is extended with the filler before its single
//! write, so no two writes ever overlap and no filler is written twice.
//!
//! This module owns placement and chunk writes; opening, syncing, merging
//! and renaming files is `parallel`'s.

use super::config::{ContentKind, Layout};
use super::coord::Coordinator;
use super::error::WriteError;
use super::gzip;
use super::plan::{SlotPlanner, TrailingPadding};
use super::producer::{Chunk, Status};
use crate::buf::{BufResult, Slice};
use crate::runtime::JoinHandle;
use crate::sync::{Receiver, Sender};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

/// An open output file the committer writes into.
#[derive(Debug)]
pub(crate) struct OutFile {
    /// Where the data is written (a temporary name under `AtomicRename`).
    pub(crate) write_path: PathBuf,
    pub(crate) fd: RawFd,
    /// A stream (FIFO, character device, caller's fd): written in order
    /// with `write`, one write at a time; offsets are only bookkeeping.
    pub(crate) stream: bool,
}

/// The open output files of one writer; closed when the last user (the
/// writer or an in-flight write) lets go, so no write ever hits a closed or
/// reused fd.
#[derive(Debug)]
pub(crate) struct OutFiles(pub(crate) Vec<OutFile>);

impl Drop for OutFiles {
    fn drop(&mut self) {
        for file in &self.0 {
            // Nothing is left to report to; a close error after the writer
            // synced (or gave up on) the data changes nothing.
            let _ = crate::io::close(file.fd).wait();
        }
    }
}

/// One write: `bytes` at `offset` of output file `file`.
pub(crate) struct WriteJob {
    file: usize,
    offset: u64,
    bytes: Vec<u8>,
    permit: bool,
}

/// Where one chunk of a merged ordered sharded output lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardExtent {
    pub(crate) shard: usize,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Where the ranks of a shared output take their ranges and slots from
/// (writing across ranks, unordered striped or padded): the coordinator's
/// counters instead of the placer's own cursor.
pub(crate) struct SharedCursor {
    pub(crate) coord: Arc<dyn Coordinator>,
    /// The range or first slot [`Placer::reserve`] took for the next chunk.
    pending: Option<u64>,
    /// Padded: the latest run of local slots mapped to global slots,
    /// `(first local slot, first global slot)`, and the local slots
    /// mapped so far.
    run: (u64, u64),
    mapped_slots: u64,
    /// End of the furthest byte this rank placed, in the shared output.
    end: u64,
}

impl SharedCursor {
    pub(crate) fn new(coord: Arc<dyn Coordinator>) -> SharedCursor {
        SharedCursor {
            coord,
            pending: None,
            run: (0, 0),
            mapped_slots: 0,
            end: 0,
        }
    }
}

/// Decides where chunks land, per layout. Pure (no I/O), except that a
/// placer writing across ranks takes ranges or slots from the coordinator
/// in [`Placer::reserve`] first.
pub(crate) enum Placer {
    Striped {
        cursor: u64,
        shared: Option<SharedCursor>,
    },
    Padded {
        planner: SlotPlanner,
        held: Option<WriteJob>,
        filler: ContentKind,
        gzip: bool,
        path: PathBuf,
        /// Writing across ranks: the last slot is padded to its end too,
        /// so another rank's slot (or part) can follow it.
        pad_last: bool,
        shared: Option<SharedCursor>,
    },
    Sharded {
        cursors: Vec<u64>,
        extents: Option<Vec<ShardExtent>>,
    },
}

impl Placer {
    pub(crate) fn new(
        layout: Layout,
        stripe_bytes: u64,
        content: ContentKind,
        gzip: bool,
        ordered: bool,
        path: PathBuf,
    ) -> Result<Placer, WriteError> {
        Ok(match layout {
            Layout::Striped => Placer::Striped {
                cursor: 0,
                shared: None,
            },
            Layout::PaddedStriped => Placer::Padded {
                planner: SlotPlanner::new(stripe_bytes)
                    .map_err(|e| plan_error(&path, e.to_string()))?,
                held: None,
                filler: content,
                gzip,
                path,
                pad_last: false,
                shared: None,
            },
            Layout::Sharded { shards, merge } => Placer::Sharded {
                cursors: vec![0; shards],
                extents: (merge && ordered).then(Vec::new),
            },
        })
    }

    /// Writing across ranks: take ranges or slots from `shared`, and (with
    /// `pad_last`) pad the last slot of a padded layout to its end.
    pub(crate) fn across_ranks(mut self, shared: Option<SharedCursor>, last: bool) -> Placer {
        match &mut self {
            Placer::Striped { shared: s, .. } => *s = shared,
            Placer::Padded {
                shared: s,
                pad_last,
                ..
            } => {
                *s = shared;
                *pad_last = last;
            }
            Placer::Sharded { .. } => {}
        }
        self
    }

    /// Before [`Placer::place`] of a chunk of `len` bytes: a placer writing
    /// across ranks reserves its range (striped) or the new slots it opens
    /// (padded) from the coordinator.
    async fn reserve(&mut self, len: u64) -> Result<(), WriteError> {
        match self {
            Placer::Striped {
                shared: Some(shared),
                ..
            } => {
                let start = shared.coord.reserve_bytes(len).await;
                shared.pending = Some(start.map_err(|e| coord_error("reserve_bytes", e))?);
            }
            Placer::Padded {
                planner,
                shared: Some(shared),
                path,
                ..
            } => {
                let stripe = planner.stripe_bytes();
                let peek = planner
                    .clone()
                    .place(len)
                    .map_err(|e| plan_error(path, e.to_string()))?;
                let last_slot = (peek.data.offset + len.max(1) - 1) / stripe;
                if last_slot >= shared.mapped_slots {
                    let count = last_slot + 1 - shared.mapped_slots;
                    let first = shared.coord.reserve_slots(count).await;
                    let first = first.map_err(|e| coord_error("reserve_slots", e))?;
                    shared.run = (shared.mapped_slots, first);
                    shared.mapped_slots += count;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The writes that placing `chunk` makes ready (none, one or two).
    fn place(&mut self, chunk: Chunk) -> Result<Vec<WriteJob>, WriteError> {
        let len = chunk.bytes.len() as u64;
        match self {
            Placer::Striped { cursor, shared } => {
                let offset = match shared {
                    Some(shared) => {
                        let start = shared.pending.take().unwrap_or(*cursor);
                        shared.end = shared.end.max(start + len);
                        start
                    }
                    None => *cursor,
                };
                *cursor += len;
                Ok(vec![WriteJob {
                    file: 0,
                    offset,
                    bytes: chunk.bytes,
                    permit: chunk.permit,
                }])
            }
            Placer::Sharded { cursors, extents } => {
                let shard = chunk.producer % cursors.len();
                let offset = cursors[shard];
                cursors[shard] += len;
                if let Some(extents) = extents {
                    extents.push(ShardExtent { shard, offset, len });
                }
                Ok(vec![WriteJob {
                    file: shard,
                    offset,
                    bytes: chunk.bytes,
                    permit: chunk.permit,
                }])
            }
            Placer::Padded {
                planner,
                held,
                filler,
                gzip,
                path,
                shared,
                ..
            } => {
                let placement = planner
                    .place(len)
                    .map_err(|e| plan_error(path, e.to_string()))?;
                let mut ready = Vec::new();
                if let Some(mut previous) = held.take() {
                    if let Some(pad) = placement.padding_before {
                        append_filler(&mut previous.bytes, pad.len, *filler, *gzip, path)?;
                    }
                    ready.push(previous);
                }
                let mut offset = placement.data.offset;
                if let Some(shared) = shared {
                    let stripe = planner.stripe_bytes();
                    let (local, global) = shared.run;
                    offset = offset - local * stripe + global * stripe;
                }
                *held = Some(WriteJob {
                    file: 0,
                    offset,
                    bytes: chunk.bytes,
                    permit: chunk.permit,
                });
                Ok(ready)
            }
        }
    }

    /// The writes still held back at the end of the stream.
    fn finish(&mut self) -> Result<Vec<WriteJob>, WriteError> {
        match self {
            Placer::Padded {
                held,
                planner,
                pad_last,
                filler,
                gzip,
                path,
                shared,
            } => {
                let Some(mut last) = held.take() else {
                    return Ok(Vec::new());
                };
                let stripe = planner.stripe_bytes();
                let pad = (stripe - planner.cursor_bytes() % stripe) % stripe;
                if *pad_last && pad > 0 {
                    append_filler(&mut last.bytes, pad, *filler, *gzip, path)?;
                    if *filler == ContentKind::Binary && !*gzip {
                        // A hole would leave the part short: zeros instead.
                        last.bytes.resize(last.bytes.len() + pad as usize, 0);
                    }
                }
                if let Some(shared) = shared {
                    shared.end = shared.end.max(last.offset + last.bytes.len() as u64);
                }
                Ok(vec![last])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Length of each output file once everything placed is written (for
    /// a placer writing across ranks: the end of this rank's furthest byte
    /// in the shared output).
    fn file_lens(&self) -> Vec<u64> {
        match self {
            Placer::Striped {
                shared: Some(shared),
                ..
            }
            | Placer::Padded {
                shared: Some(shared),
                ..
            } => vec![shared.end],
            Placer::Striped { cursor, .. } => vec![*cursor],
            Placer::Padded {
                planner, pad_last, ..
            } => {
                let end = planner.cursor_bytes();
                let stripe = planner.stripe_bytes();
                vec![if *pad_last {
                    end.div_ceil(stripe) * stripe
                } else {
                    end
                }]
            }
            Placer::Sharded { cursors, .. } => cursors.clone(),
        }
    }

    fn padding_bytes(&self) -> u64 {
        match self {
            Placer::Padded {
                planner, pad_last, ..
            } => {
                let trailing = if *pad_last {
                    TrailingPadding::ToStripeBoundary
                } else {
                    TrailingPadding::Omit
                };
                planner.clone().finish(trailing).padding_bytes
            }
            _ => 0,
        }
    }
}

fn coord_error(op: &'static str, err: io::Error) -> WriteError {
    WriteError::new(op, "<coordinator>", None, err)
}

fn plan_error(path: &std::path::Path, msg: String) -> WriteError {
    WriteError::new("plan", path, None, io::Error::other(msg))
}

/// Grow the chunk `bytes` by `pad_bytes` of filler readers skip: gzip
/// filler when compressing, else spaces before the final newline of JSON
/// lines, else nothing (the gap stays a hole).
fn append_filler(
    bytes: &mut Vec<u8>,
    pad_bytes: u64,
    content: ContentKind,
    gzip: bool,
    path: &std::path::Path,
) -> Result<(), WriteError> {
    let pad = usize::try_from(pad_bytes).map_err(|_| plan_error(path, "padding too big".into()))?;
    if gzip {
        return gzip::pad_member(bytes, pad)
            .map_err(|e| plan_error(path, format!("gzip filler of {pad} bytes: {e:?}")));
    }
    match content {
        ContentKind::Binary => Ok(()),
        ContentKind::JsonLines => {
            if bytes.pop() != Some(b'\n') {
                return Err(plan_error(
                    path,
                    "a JSON-lines chunk to pad does not end with a newline".into(),
                ));
            }
            bytes.resize(bytes.len() + pad, b' ');
            bytes.push(b'\n');
            Ok(())
        }
    }
}

/// What the committer hands back after the stream ended.
pub(crate) struct Committed {
    pub(crate) file_lens: Vec<u64>,
    pub(crate) chunks: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) padding_bytes: u64,
    pub(crate) extents: Option<Vec<ShardExtent>>,
}

/// Everything the committer task needs.
pub(crate) struct Committer {
    pub(crate) chunks: Receiver<Chunk>,
    pub(crate) permits: Sender<()>,
    pub(crate) status: Arc<Status>,
    pub(crate) files: Arc<OutFiles>,
    pub(crate) placer: Placer,
    pub(crate) ordered: bool,
    pub(crate) writes_in_flight_max: usize,
    pub(crate) chunks_seen: u64,
    pub(crate) payload_seen: u64,
}

impl Committer {
    /// Commit every chunk until the stream ends (all producers gone) or
    /// something fails; every write it started has finished when it returns.
    pub(crate) async fn run(mut self) -> Result<Committed, WriteError> {
        let mut writes: VecDeque<JoinHandle<Result<(), WriteError>>> = VecDeque::new();
        let result = self.commit_all(&mut writes).await;
        // Wait for every write even after a failure: the fds stay open
        // until then anyway, but the caller must not report or clean up
        // while data is still landing.
        let mut first_error = result.err();
        while let Some(handle) = writes.pop_front() {
            if let Err(err) = join_write(handle).await {
                first_error.get_or_insert(err);
            }
        }
        if let Some(err) = first_error.or_else(|| self.status.failure()) {
            self.status.fail(err.clone());
            return Err(err);
        }
        Ok(Committed {
            file_lens: self.placer.file_lens(),
            chunks: self.chunks_seen,
            payload_bytes: self.payload_seen,
            padding_bytes: self.placer.padding_bytes(),
            extents: match &mut self.placer {
                Placer::Sharded { extents, .. } => extents.take(),
                _ => None,
            },
        })
    }
}

impl Committer {
    async fn commit_all(
        &mut self,
        writes: &mut VecDeque<JoinHandle<Result<(), WriteError>>>,
    ) -> Result<(), WriteError> {
        let mut early: BTreeMap<u64, Chunk> = BTreeMap::new();
        let mut next_seq = 0u64;
        while let Some(chunk) = self.chunks.recv().await {
            if let Some(err) = self.status.failure() {
                return Err(err);
            }
            self.chunks_seen += 1;
            self.payload_seen += chunk.payload_bytes;
            if !self.ordered {
                self.placer.reserve(chunk.bytes.len() as u64).await?;
                let jobs = self.placer.place(chunk)?;
                self.dispatch(jobs, writes).await?;
                continue;
            }
            early.insert(chunk.seq, chunk);
            while let Some(chunk) = early.remove(&next_seq) {
                next_seq += 1;
                self.placer.reserve(chunk.bytes.len() as u64).await?;
                let jobs = self.placer.place(chunk)?;
                self.dispatch(jobs, writes).await?;
            }
        }
        if let Some(err) = self.status.failure() {
            return Err(err);
        }
        if let Some((&seq, _)) = early.iter().next() {
            return Err(plan_error(
                &self.files.0[0].write_path,
                format!("ordered writer: chunk {next_seq} never arrived (next held: {seq})"),
            ));
        }
        let jobs = self.placer.finish()?;
        self.dispatch(jobs, writes).await
    }

    /// Start `jobs`, then wait for the oldest writes while too many are in
    /// flight.
    async fn dispatch(
        &mut self,
        jobs: Vec<WriteJob>,
        writes: &mut VecDeque<JoinHandle<Result<(), WriteError>>>,
    ) -> Result<(), WriteError> {
        for job in jobs {
            let files = Arc::clone(&self.files);
            let permits = self.permits.clone();
            let status = Arc::clone(&self.status);
            writes.push_back(crate::runtime::spawn(async move {
                let result = write_job(&files, job, &permits, &status).await;
                if let Err(err) = &result {
                    status.fail(err.clone());
                }
                result
            }));
        }
        while writes.len() > self.writes_in_flight_max {
            if let Some(handle) = writes.pop_front() {
                join_write(handle).await?;
            }
        }
        Ok(())
    }
}

async fn join_write(handle: JoinHandle<Result<(), WriteError>>) -> Result<(), WriteError> {
    match handle.await {
        Ok(result) => result,
        Err(join) => Err(WriteError::new(
            "pwrite",
            "<write task>",
            None,
            io::Error::other(join.to_string()),
        )),
    }
}

/// Write all of `job` at its offset; give its buffer (for reuse) and its
/// permit back once written.
async fn write_job(
    files: &OutFiles,
    job: WriteJob,
    permits: &Sender<()>,
    status: &Status,
) -> Result<(), WriteError> {
    let written = put_all(&files.0[job.file], job.bytes, job.offset).await?;
    status.give_back(written);
    if job.permit {
        // The permit channel only closes once the writer failed.
        let _ = permits.try_send(());
    }
    Ok(())
}

/// Write all of `bytes` to `file`: at `offset` for a file, next in line
/// for a stream (whose committer keeps one write in flight, in order).
pub(crate) async fn put_all(
    file: &OutFile,
    bytes: Vec<u8>,
    offset: u64,
) -> Result<Vec<u8>, WriteError> {
    if file.stream {
        write_all(file, bytes, offset).await
    } else {
        pwrite_all(file, bytes, offset).await
    }
}

/// Sequential `write` of all of `bytes` to a stream; `offset` (the
/// stream position) only names where a failure happened.
async fn write_all(file: &OutFile, mut bytes: Vec<u8>, offset: u64) -> Result<Vec<u8>, WriteError> {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = offset + done as u64;
        let BufResult(result, slice) = crate::io::write(file.fd, Slice::new(bytes, done)).await;
        bytes = slice.into_inner();
        match result {
            Ok(0) => {
                return Err(WriteError::new(
                    "write",
                    &file.write_path,
                    Some(at),
                    io::Error::new(io::ErrorKind::WriteZero, "write wrote 0 bytes"),
                ))
            }
            Ok(n) => done += n,
            Err(e) => return Err(WriteError::new("write", &file.write_path, Some(at), e)),
        }
    }
    Ok(bytes)
}

/// Write all of `bytes` at `offset` of `file`, resuming short writes;
/// hands the buffer back once written.
pub(crate) async fn pwrite_all(
    file: &OutFile,
    mut bytes: Vec<u8>,
    offset: u64,
) -> Result<Vec<u8>, WriteError> {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = offset + done as u64;
        let BufResult(result, slice) =
            crate::io::pwrite(file.fd, Slice::new(bytes, done), at).await;
        bytes = slice.into_inner();
        match result {
            Ok(0) => {
                return Err(WriteError::new(
                    "pwrite",
                    &file.write_path,
                    Some(at),
                    io::Error::new(io::ErrorKind::WriteZero, "pwrite wrote 0 bytes"),
                ))
            }
            Ok(n) => done += n,
            Err(e) => return Err(WriteError::new("pwrite", &file.write_path, Some(at), e)),
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    fn chunk(seq: u64, bytes: Vec<u8>) -> Chunk {
        Chunk {
            seq,
            producer: 0,
            payload_bytes: bytes.len() as u64,
            bytes,
            permit: true,
        }
    }

    /// Place `chunks` with the padded placer and lay the writes out in a
    /// file image; panics if two writes overlap.
    fn padded_image(
        stripe: u64,
        chunks: Vec<Vec<u8>>,
        content: ContentKind,
        gzip: bool,
    ) -> (Vec<u8>, Vec<u64>) {
        let mut placer = Placer::new(
            Layout::PaddedStriped,
            stripe,
            content,
            gzip,
            true,
            PathBuf::from("/image"),
        )
        .unwrap();
        let mut jobs = Vec::new();
        for (seq, bytes) in chunks.into_iter().enumerate() {
            jobs.extend(placer.place(chunk(seq as u64, bytes)).unwrap());
        }
        jobs.extend(placer.finish().unwrap());
        let len = placer.file_lens()[0];
        let mut image = vec![0u8; len as usize];
        let mut written = vec![false; len as usize];
        let mut starts = Vec::new();
        for job in &jobs {
            starts.push(job.offset);
            for (i, b) in job.bytes.iter().enumerate() {
                let at = job.offset as usize + i;
                assert!(!written[at], "two writes overlap at {at}");
                written[at] = true;
                image[at] = *b;
            }
        }
        if gzip || content == ContentKind::JsonLines {
            assert!(written.iter().all(|w| *w), "filler covers every gap");
        }
        (image, starts)
    }

    fn json_chunk(lines: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for len in lines {
            out.extend_from_slice(b"{\"x\":\"");
            out.extend(std::iter::repeat(b'q').take(*len));
            out.extend_from_slice(b"\"}\n");
        }
        out
    }

    /// Gap sizes that stress the filler: 1 to 25 bytes above each multiple
    /// (0 to 3) of the largest single empty member, the multiples
    /// themselves, and just under and over 64 KiB.
    fn edge_gaps() -> Vec<u64> {
        let largest = gzip::MAX_EMPTY_MEMBER_BYTES as u64;
        let mut gaps: Vec<u64> = (0..=3u64)
            .flat_map(|k| (1..=25).map(move |j| k * largest + j))
            .collect();
        gaps.extend((1..=3).map(|k| k * largest));
        gaps.extend((64 << 10) - 4..=(64 << 10) + 4);
        gaps
    }

    /// A `small` chunk, then a `big` one that does not fit in the rest of
    /// the first slot (`big.len() > gap`), in stripes of `small.len() +
    /// gap`: the first slot closes with exactly `gap` bytes of filler.
    /// Checks the second stripe starts with the big chunk; returns the image.
    fn image_with_gap(small: Vec<u8>, big: Vec<u8>, gap: u64, gzip: bool) -> Vec<u8> {
        let stripe = small.len() as u64 + gap;
        let big_len = big.len() as u64;
        assert!(
            gap < big_len && big_len <= stripe,
            "gap {gap}: bad test sizes"
        );
        let (image, starts) = padded_image(stripe, vec![small, big], ContentKind::JsonLines, gzip);
        assert_eq!(image.len() as u64, stripe + big_len, "gap {gap}");
        assert_eq!(
            starts,
            vec![0, stripe],
            "gap {gap}: the stripe boundary starts no chunk"
        );
        image
    }

    #[test]
    fn padding_edge_gaps_leave_no_zero_bytes_between_gzip_members() {
        for gap in edge_gaps() {
            let payloads = [json_chunk(&[100]), json_chunk(&[gap as usize])];
            // Stored members (level 0): a member is its data plus a few bytes.
            let small = gzip::encode_member(&payloads[0], 0);
            let big = gzip::encode_member(&payloads[1], 0);
            let image = image_with_gap(small, big, gap, true);
            // Walk the members one by one: each starts right where the last
            // ended (no zero byte or other junk between them, which GNU
            // gzip and zlib stop at).
            let (mut rest, mut decoded, mut count) = (&image[..], Vec::new(), 0);
            while !rest.is_empty() {
                assert_eq!(
                    &rest[..2],
                    &[0x1f, 0x8b],
                    "gap {gap}: junk after member {count}"
                );
                let mut member = flate2::bufread::GzDecoder::new(rest);
                member.read_to_end(&mut decoded).unwrap();
                rest = member.into_inner();
                count += 1;
            }
            assert_eq!(decoded, payloads.concat(), "gap {gap}");
        }
    }

    #[test]
    fn padding_edge_gaps_in_plain_json_are_spaces_before_a_newline() {
        for gap in edge_gaps() {
            let chunks = [json_chunk(&[100]), json_chunk(&[gap as usize + 41])];
            let image = image_with_gap(chunks[0].clone(), chunks[1].clone(), gap, false);
            assert!(
                !image.contains(&0),
                "gap {gap}: a zero byte in plain JSON lines"
            );
            let lines: Vec<&[u8]> = image
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| &l[..l.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1)])
                .collect();
            let want: Vec<&[u8]> = chunks.iter().map(|c| &c[..c.len() - 1]).collect();
            assert_eq!(lines, want, "gap {gap}");
        }
    }

    proptest! {
        // Deflate in a debug build is slow; fewer, still random, cases.
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn padded_gzip_writes_never_overlap_and_decode_to_the_input(
            sizes in proptest::collection::vec(1usize..3000, 1..40),
            stripe_units in 1u64..4,
        ) {
            let stripe = stripe_units * 1024;
            let payloads: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| (0..*n).map(|j| (i * 31 + j * 7) as u8).collect())
                .collect();
            let members = payloads.iter().map(|p| gzip::encode_member(p, 0)).collect();
            let (image, starts) = padded_image(stripe, members, ContentKind::Binary, true);
            let mut decoded = Vec::new();
            flate2::read::MultiGzDecoder::new(&image[..]).read_to_end(&mut decoded).unwrap();
            prop_assert_eq!(decoded, payloads.concat());
            // Every write starts a member; every stripe boundary inside the
            // image is a write start or inside a member spanning from one.
            for &s in &starts {
                prop_assert_eq!(&image[s as usize..s as usize + 2], &[0x1f, 0x8b]);
            }
        }

        #[test]
        fn padded_json_keeps_every_line_and_pads_before_newlines(
            chunks in proptest::collection::vec(
                proptest::collection::vec(0usize..900, 1..4), 1..30),
        ) {
            let stripe = 2048;
            let bytes: Vec<Vec<u8>> = chunks.iter().map(|c| json_chunk(c)).collect();
            let (image, _) = padded_image(stripe, bytes.clone(), ContentKind::JsonLines, false);
            let mut at = stripe as usize;
            while at < image.len() {
                if image[at - 1] == b'\n' {
                    prop_assert_eq!(image[at], b'{');
                }
                at += stripe as usize;
            }
            let trimmed: Vec<Vec<u8>> = image
                .split(|b| *b == b'\n')
                .map(|l| l.iter().rposition(|b| *b != b' ').map_or(Vec::new(), |i| l[..=i].to_vec()))
                .collect();
            let want: Vec<Vec<u8>> = bytes.concat().split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            prop_assert_eq!(trimmed, want);
        }
    }
}
