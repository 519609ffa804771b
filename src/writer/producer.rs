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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
pub(crate) struct Status {
    failure: Mutex<Option<WriteError>>,
    chunks: Receiver<Chunk>,
    permits: Receiver<()>,
}

impl Status {
    pub(crate) fn new(chunks: Receiver<Chunk>, permits: Receiver<()>) -> Status {
        Status {
            failure: Mutex::new(None),
            chunks,
            permits,
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
        self.chunks.close();
        self.permits.close();
    }

    /// The recorded failure, if any.
    pub(crate) fn failure(&self) -> Option<WriteError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What every producer of one writer shares.
pub(crate) struct ProducerShared {
    pub(crate) chunk_bytes: usize,
    pub(crate) gzip_level: Option<u32>,
    pub(crate) content: ContentKind,
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
/// last line lacks one.
pub struct Producer {
    shared: Arc<ProducerShared>,
    index: usize,
    buf: Vec<u8>,
}

impl Producer {
    pub(crate) fn new(shared: Arc<ProducerShared>) -> Producer {
        let index = shared.next_producer.fetch_add(1, Ordering::Relaxed);
        let buf = Vec::with_capacity(shared.chunk_bytes);
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
            ContentKind::Binary => {
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
            ContentKind::JsonLines => {
                self.seal_before(data.len()).await?;
                self.buf.extend_from_slice(data);
                self.seal_if_full().await
            }
        }
    }

    /// Append `line` and a newline.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self.shared.content {
            ContentKind::Binary => {
                self.write(line).await?;
                self.write(b"\n").await
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
        match self.shared.status.failure() {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    fn terminate_line(&mut self) {
        if self.shared.content == ContentKind::JsonLines
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
        let payload = std::mem::replace(&mut self.buf, Vec::with_capacity(self.shared.chunk_bytes));
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

/// Number `payload` and send it to the committer, compressing it on a
/// spawned task when the writer writes gzip. False when the writer failed.
fn send_sealed(shared: &ProducerShared, producer: usize, payload: Vec<u8>, permit: bool) -> bool {
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    let payload_bytes = payload.len() as u64;
    let Some(level) = shared.gzip_level else {
        let chunk = Chunk {
            seq,
            producer,
            bytes: payload,
            payload_bytes,
            permit,
        };
        return shared.chunks.try_send(chunk).is_ok();
    };
    let chunks = shared.chunks.clone();
    let compress = move || {
        let chunk = Chunk {
            seq,
            producer,
            bytes: gzip::encode_member(&payload, level),
            payload_bytes,
            permit,
        };
        // A closed channel means the writer failed; the failure is recorded.
        let _ = chunks.try_send(chunk);
    };
    if crate::runtime::in_runtime() {
        drop(crate::runtime::spawn(async move { compress() }));
    } else {
        compress();
    }
    shared.status.failure().is_none()
}
