//! Receive streams on a thread's ring: one multishot recv entry per
//! connection whose chunks go straight to the connection's sink (see
//! `sys::ring::RingWork::RecvStream` and `net/receive.rs`).
//!
//! Owns: which receive streams each ring runs ([`RingStream`]), starting
//! and stopping them (from the ring's thread, or through its mailbox from
//! any other) and telling a sink when its stream ended. May not touch:
//! ops in the ring's table (`mod.rs` keeps them) or the chunks themselves
//! (the ring hands them to the sink as it reaps them).
//!
//! A stream holds a reserved slot of the ring's table (its `user_data`)
//! with no op in it, and counts as in flight until its one completion. A
//! stopped stream counts as an abandoned reader of its fd until that
//! completion: what it still receives goes to the fd's leftovers, so a
//! plain reader of the fd on the ring waits for it, then takes them first.

use super::ABANDONED_READERS;
use super::{mailbox, with_existing_ring, with_ring, LocalRing, Request, UringDriver};
use crate::sys::ring::{RingWork, StreamSink};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A receive stream with a ring's kernel side.
pub(super) struct RingStream {
    fd: RawFd,
    sink: Arc<dyn StreamSink>,
    /// Cancelled: until it ends, what it receives goes to the fd's
    /// leftovers, and it counts as an abandoned reader of `fd` (new
    /// readers of the fd wait for it, see [`LocalRing::abandoned_reader`]).
    stopping: bool,
}

/// A receive stream on some thread's ring ([`UringDriver::start_stream`]):
/// what [`stop_stream`] needs to reach it from any thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamOnRing {
    ring_id: u64,
    source_id: u64,
    user_data: u64,
}

impl LocalRing {
    /// Whether a stopped receive stream of `fd` is still with the kernel
    /// (an abandoned reader of `fd`, see [`LocalRing::abandoned_reader`]).
    pub(super) fn stopping_stream_reads(&self, fd: RawFd) -> bool {
        self.streams
            .values()
            .any(|stream| stream.stopping && stream.fd == fd)
    }

    /// Start a receive stream on `fd` into `sink`; `None` when this ring
    /// cannot run one (the kernel's ring refused its provided buffers), or
    /// when the entry could not be queued.
    pub(super) fn start_stream(&mut self, fd: RawFd, sink: &Arc<dyn StreamSink>) -> Option<u64> {
        if !self.ring.supports_streams() {
            return None;
        }
        let (slot, user_data) = self.reserve();
        if self
            .push_reserved(slot, RingWork::RecvStream { fd }, false)
            .is_err()
        {
            self.free.push(slot as u32);
            return None;
        }
        // Before the entry is submitted, so before its first chunk.
        self.ring.watch_stream(user_data, Arc::clone(sink));
        let stream = RingStream {
            fd,
            sink: Arc::clone(sink),
            stopping: false,
        };
        self.streams.insert(user_data, stream);
        Some(user_data)
    }

    /// Cancel receive stream `user_data` if it is still with the kernel
    /// (its end comes as its completion); until then it is an abandoned
    /// reader of its fd.
    pub(super) fn stop_stream(&mut self, user_data: u64) {
        let Some(stream) = self.streams.get_mut(&user_data) else {
            return;
        };
        if !stream.stopping {
            stream.stopping = true;
            ABANDONED_READERS.fetch_add(1, Ordering::AcqRel);
            self.cancel(user_data);
        }
    }

    /// A completion whose slot holds no op: a receive stream that ended
    /// (its reserved slot is freed and its sink told), or nothing.
    pub(super) fn end_stream(&mut self, slot: usize, user_data: u64, res: i32) {
        if let Some(stream) = self.streams.remove(&user_data) {
            self.in_flight -= 1;
            self.free.push(slot as u32);
            if stream.stopping {
                ABANDONED_READERS.fetch_sub(1, Ordering::AcqRel);
            }
            stream.sink.ended(res);
        }
    }

    /// Cancel every receive stream with the kernel side.
    pub(super) fn stop_streams(&mut self) {
        let streams: Vec<u64> = self.streams.keys().copied().collect();
        for user_data in streams {
            self.stop_stream(user_data);
        }
    }
}

impl UringDriver {
    /// Start a receive stream on `fd` (a connected stream socket of this
    /// driver's kernel) into `sink`, on this thread's ring; `None` when
    /// there is no ring here or it cannot run one (the caller reads with
    /// plain recvs). See [`RingWork::RecvStream`] for what `sink` gets.
    pub(crate) fn start_stream(
        &self,
        fd: RawFd,
        sink: &Arc<dyn StreamSink>,
    ) -> Option<StreamOnRing> {
        let rings = (&self.shared.rings, self.shared.rings_id);
        with_ring(rings, self.kernel(), (), |ring, ()| {
            // What an abandoned reader of this fd still receives goes to
            // the leftovers: plain recvs until it is back.
            if ABANDONED_READERS.load(Ordering::Acquire) != 0 && ring.abandoned_reader(fd) {
                return Err(());
            }
            let user_data = ring.start_stream(fd, sink).ok_or(())?;
            Ok(StreamOnRing {
                ring_id: ring.id,
                source_id: ring.source_id,
                user_data,
            })
        })
        .ok()
    }
}

/// Stop a receive stream from any thread: on its ring's thread at once,
/// from elsewhere through the ring's mailbox (a closed ring has already
/// stopped it). Its sink's `ended` comes when the kernel side is done.
pub(crate) fn stop_stream(stream: StreamOnRing) {
    let reached = with_existing_ring(stream.source_id, |ring| {
        let here = ring.id == stream.ring_id;
        if here {
            ring.stop_stream(stream.user_data);
            // At once: the socket stays open (to its peer too) until the
            // kernel side lets go of it.
            let _ = ring.flush();
        }
        here
    });
    if reached == Some(true) {
        return;
    }
    if let Some(mailbox) = mailbox::of_ring(stream.ring_id) {
        let request = Request::StopStream {
            user_data: stream.user_data,
        };
        mailbox.send(stream.user_data, request);
    }
}
