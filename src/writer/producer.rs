//! [`Producer`]: a handle that coalesces payloads into chunk-sized buffers
//! and hands sealed buffers to the writer's committer.
//!
//! A producer owns one buffer and fills it with no syscall at all. When the
//! buffer reaches the writer's chunk size it is *sealed*: it takes a permit
//! (the writer lets only a bounded number of chunks be in flight, so a
//! producer whose committer is behind waits here), takes the next sequence
//! number, and goes to the committer, through a compression task first when
//! the writer writes gzip. The producer then fills a fresh buffer while the
//! sealed one is compressed and written.
//!
//! This module owns the buffering rules and the hand-off; where chunks land
//! is `commit`'s business.

use super::config::ContentKind;
use super::error::WriteError;
use super::gzip;
use crate::sync::{Receiver, Sender};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A sealed buffer on its way to the committer.
pub(crate) struct Chunk {
    /// Sequence number, taken when the buffer was sealed.
    pub(crate) seq: u64,
    /// Index of the producer that sealed it.
    pub(crate) producer: usize,
    /// The bytes to write (a gzip member when compressing).
    pub(crate) bytes: Vec<u8>,
    /// Payload bytes before compression.
    pub(crate) payload_bytes: u64,
    /// Whether the chunk holds an in-flight permit to give back once
    /// written (a chunk sealed by a dropped producer may not).
    pub(crate) permit: bool,
}

/// Failure state every part of one writer shares. The first failure wins;
/// recording it closes the chunk and permit channels, so producers stop
/// waiting and the committer stops taking chunks.
///
/// It also keeps written chunk buffers for reuse ([`Status::spare_buffer`]),
/// so a producer fills memory that is already mapped instead of faulting in
/// (and the kernel zero-filling) a fresh chunk-sized allocation per chunk.
pub(crate) struct Status {
    failure: Mutex<Option<WriteError>>,
    /// Set (after `failure`) when a failure is recorded: the per-write
    /// check reads this flag, not the lock.
    failed: AtomicBool,
    chunks: Receiver<Chunk>,
    permits: Receiver<()>,
    /// Written buffers waiting to be filled again, at most `spare_max`.
    spare: Mutex<Vec<Vec<u8>>>,
    spare_max: usize,
    /// A buffer is kept only if it holds at least this many bytes without
    /// growing (the chunk size).
    spare_min_capacity: usize,
}

impl Status {
    pub(crate) fn new(chunks: Receiver<Chunk>, permits: Receiver<()>) -> Status {
        Status::with_spares(chunks, permits, 0, 0)
    }

    /// A status that keeps up to `spare_max` written buffers of at least
    /// `spare_min_capacity` bytes for reuse.
    pub(crate) fn with_spares(
        chunks: Receiver<Chunk>,
        permits: Receiver<()>,
        spare_max: usize,
        spare_min_capacity: usize,
    ) -> Status {
        Status {
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            chunks,
            permits,
            spare: Mutex::new(Vec::with_capacity(spare_max)),
            spare_max,
            spare_min_capacity,
        }
    }

    /// Record `err` unless a failure is already recorded; poison the writer.
    pub(crate) fn fail(&self, err: WriteError) {
        {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if failure.is_none() {
                *failure = Some(err);
            }
        }
        self.failed.store(true, Ordering::Release);
        self.chunks.close();
        self.permits.close();
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether a failure is recorded (no lock taken).
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The recorded failure, if any.
    pub(crate) fn failure(&self) -> Option<WriteError> {
        if !self.has_failed() {
            return None;
        }
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An empty buffer of at least `spare_min_capacity` bytes: a written
    /// one if any is kept, else a new one.
    pub(crate) fn spare_buffer(&self) -> Vec<u8> {
        let reused = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.spare_min_capacity))
    }

    /// Keep `buf` (its bytes written or no longer needed) for reuse, if it
    /// is big enough and fewer than `spare_max` are kept; else free it.
    pub(crate) fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() < self.spare_min_capacity || self.has_failed() {
            return;
        }
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < self.spare_max {
            spare.push(buf);
        }
    }
}

/// What every producer of one writer shares.
pub(crate) struct ProducerShared {
    pub(crate) chunk_bytes: usize,
    pub(crate) gzip_level: Option<u32>,
    pub(crate) content: ContentKind,
    /// Complete a JSON-lines producer's last line at close.
    pub(crate) final_newline: bool,
    pub(crate) path: PathBuf,
    pub(crate) next_seq: AtomicU64,
    pub(crate) next_producer: AtomicUsize,
    pub(crate) chunks: Sender<Chunk>,
    pub(crate) permits: Receiver<()>,
    pub(crate) status: Arc<Status>,
}

impl ProducerShared {
    fn failure_error(&self) -> io::Error {
        match self.status.failure() {
            Some(err) => err.into(),
            None => WriteError::new(
                "write",
                &self.path,
                None,
                io::Error::new(io::ErrorKind::BrokenPipe, "the parallel writer was closed"),
            )
            .into(),
        }
    }
}

/// One producer of a [`ParallelWriter`](super::ParallelWriter).
///
/// Writes are buffered; call [`Producer::close`] (or drop the producer) to
/// hand over the last partial buffer. Producers of one writer may run on
/// different tasks and threads at once. The writer's `finish()` waits until
/// every producer is closed or dropped.
///
/// With [`ContentKind::JsonLines`] a chunk is only ever cut at a line end,
/// and the producer's output is completed with a newline at close if its
/// last line lacks one (unless [`WriterConfig::final_newline`] is off).
///
/// [`WriterConfig::final_newline`]: super::WriterConfig::final_newline
pub struct Producer {
    shared: Arc<ProducerShared>,
    index: usize,
    buf: Vec<u8>,
}

impl Producer {
    pub(crate) fn new(shared: Arc<ProducerShared>) -> Producer {
        let index = shared.next_producer.fetch_add(1, Ordering::Relaxed);
        let buf = shared.status.spare_buffer();
        Producer { shared, index, buf }
    }

    /// This producer's index (0, 1, ... in creation order); the sharded
    /// layout writes it to shard `index % shards`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Append `data`. Returns once it is buffered (awaiting only when a full
    /// buffer must wait for a permit); an error means the writer failed and
    /// says why.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.check()?;
        match self.shared.content {
            ContentKind::Binary => self.write_cut_at_chunk_size(data).await,
            ContentKind::JsonLines => {
                self.seal_before(data.len()).await?;
                self.buf.extend_from_slice(data);
                self.seal_if_full().await
            }
        }
    }

    /// Append `data`, a piece of a line too long to hold whole: buffers are
    /// sealed at the chunk size even inside the line, as with
    /// [`ContentKind::Binary`], so memory stays bounded by the chunk size
    /// whatever the line length. The output is still the concatenation of
    /// what was written (with gzip, a member then ends inside a line). For
    /// the striped and sharded layouts (`iok pgzip`); in a padded
    /// JSON-lines file a slot would end inside a line, before its filler.
    pub async fn write_line_piece(&mut self, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.write_cut_at_chunk_size(data).await
    }

    async fn write_cut_at_chunk_size(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let room = self
                .shared
                .chunk_bytes
                .saturating_sub(self.buf.len())
                .max(1);
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= self.shared.chunk_bytes {
                self.seal().await?;
            }
        }
        Ok(())
    }

    /// Append `line` and a newline, keeping the line whole: with any
    /// content kind a chunk is never cut inside it (the buffer is sealed
    /// first if the line would not fit), so with gzip every member ends
    /// at a line end. The one exception: with [`ContentKind::Binary`], a
    /// line that alone (newline included) exceeds a chunk starts a new
    /// chunk and is cut at the chunk size, spanning chunks, so memory stays bounded by the chunk
    /// size (with [`ContentKind::JsonLines`] such a line makes one
    /// oversized chunk instead). [`Producer::write`] on `Binary` content
    /// still cuts at the chunk size wherever it falls.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self.shared.content {
            ContentKind::Binary => {
                self.check()?;
                let len = line.len() + 1;
                if !self.buf.is_empty() && self.buf.len() + len > self.shared.chunk_bytes {
                    self.seal().await?;
                }
                if len > self.shared.chunk_bytes {
                    // Alone bigger than a chunk: it starts a chunk and is
                    // cut at the chunk size.
                    self.write_cut_at_chunk_size(line).await?;
                    return self.write_cut_at_chunk_size(b"\n").await;
                }
                self.buf.extend_from_slice(line);
                self.buf.push(b'\n');
                if self.buf.len() >= self.shared.chunk_bytes {
                    self.seal().await?;
                }
                Ok(())
            }
            ContentKind::JsonLines => {
                self.check()?;
                self.seal_before(line.len() + 1).await?;
                self.buf.extend_from_slice(line);
                self.buf.push(b'\n');
                self.seal_if_full().await
            }
        }
    }

    /// Hand over the last partial buffer and release the producer.
    pub async fn close(mut self) -> io::Result<()> {
        self.check()?;
        self.terminate_line();
        if !self.buf.is_empty() {
            self.seal().await?;
        }
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        if !self.shared.status.has_failed() {
            return Ok(());
        }
        Err(self.shared.failure_error())
    }

    fn terminate_line(&mut self) {
        if self.shared.content == ContentKind::JsonLines
            && self.shared.final_newline
            && self.buf.last().is_some_and(|b| *b != b'\n')
        {
            self.buf.push(b'\n');
        }
    }

    /// Seal the buffer first if `incoming` more bytes would push it past
    /// the chunk size and it ends at a line end.
    async fn seal_before(&mut self, incoming: usize) -> io::Result<()> {
        let at_line_end = self.buf.last() == Some(&b'\n');
        if at_line_end && self.buf.len() + incoming > self.shared.chunk_bytes {
            self.seal().await?;
        }
        Ok(())
    }

    async fn seal_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= self.shared.chunk_bytes && self.buf.last() == Some(&b'\n') {
            self.seal().await?;
        }
        Ok(())
    }

    async fn seal(&mut self) -> io::Result<()> {
        if self.shared.permits.recv().await.is_none() {
            return Err(self.shared.failure_error());
        }
        let payload = std::mem::replace(&mut self.buf, self.shared.status.spare_buffer());
        if send_sealed(&self.shared, self.index, payload, true) {
            Ok(())
        } else {
            Err(self.shared.failure_error())
        }
    }
}

impl Drop for Producer {
    /// Hands over a partial buffer without waiting for a permit (so a
    /// dropped producer never blocks); the writer then holds at most one
    /// chunk per producer beyond its budget.
    fn drop(&mut self) {
        self.terminate_line();
        if self.buf.is_empty() || self.shared.status.failure().is_some() {
            return;
        }
        let permit = self.shared.permits.try_recv().is_ok();
        let payload = std::mem::take(&mut self.buf);
        send_sealed(&self.shared, self.index, payload, permit);
    }
}

/// A sealed chunk on its way to becoming one gzip member.
struct CompressJob {
    seq: u64,
    producer: usize,
    payload: Vec<u8>,
    permit: bool,
    level: u32,
    chunks: Sender<Chunk>,
    status: Arc<Status>,
}

impl CompressJob {
    /// Compress the payload into one gzip member and hand the chunk to the
    /// committer (nothing is compressed once the writer failed). The
    /// payload buffer goes back to the spares.
    fn run(self) {
        if self.status.failure().is_some() {
            self.status.give_back(self.payload);
            return;
        }
        let chunk = Chunk {
            seq: self.seq,
            producer: self.producer,
            bytes: gzip::encode_member(&self.payload, self.level),
            payload_bytes: self.payload.len() as u64,
            permit: self.permit,
        };
        self.status.give_back(self.payload);
        // A closed channel means the writer failed; the failure is recorded.
        let _ = self.chunks.try_send(chunk);
    }
}

/// Number `payload` and send it to the committer; with gzip output it is
/// first compressed on the runtime's compute pool, so compression never
/// holds up the producers, readers and committer on the workers (here,
/// when there is no runtime or the pool cannot take it). False when the
/// writer failed.
fn send_sealed(shared: &ProducerShared, producer: usize, payload: Vec<u8>, permit: bool) -> bool {
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    let Some(level) = shared.gzip_level else {
        let chunk = Chunk {
            seq,
            producer,
            payload_bytes: payload.len() as u64,
            bytes: payload,
            permit,
        };
        return shared.chunks.try_send(chunk).is_ok();
    };
    let job = CompressJob {
        seq,
        producer,
        payload,
        permit,
        level,
        chunks: shared.chunks.clone(),
        status: Arc::clone(&shared.status),
    };
    let compress: crate::sys::Job = Box::new(move || job.run());
    let offloaded = match crate::runtime::context::current_runtime() {
        Some(runtime) => runtime.offload_compute("deflate", compress),
        None => Err(compress),
    };
    if let Err(compress) = offloaded {
        compress();
    }
    shared.status.failure().is_none()
}
