//! The coordination seam: everything the parallel writer does that crosses
//! processes (MPI ranks) goes through one [`Coordinator`].
//!
//! A writer on one rank reserves output byte ranges (striped) and slots
//! (padded) from counters shared by all ranks, orders the ranks' parts with
//! an exclusive prefix sum (ordered and merged outputs), waits at a barrier
//! before durability, and agrees with the other ranks on the outcome, so
//! either every rank reports success or every rank reports the same
//! failure, naming the failing rank, op, path and errno ([`RankFailure`]).
//!
//! Implementations: [`Solo`] (one rank, the default), in-process rank
//! groups ([`RankGroup`]), MPI (cargo feature `mpi`) and simulated ranks. The trait's
//! futures are boxed so the writer holds one `Arc<dyn Coordinator>`;
//! collective calls ([`Coordinator::all_gather`], [`Coordinator::barrier`]
//! and the provided methods built on them) must be made by every rank in
//! the same order, as with MPI collectives.
//!
//! This module owns the contract and the encoding of outcomes; it does no
//! file I/O and may not import the sim runner.
//!
//! ```
//! use iokernel::writer::coord::{Coordinator, RankFailure, Solo};
//! use std::sync::Arc;
//!
//! let solo: Arc<dyn Coordinator> = Arc::new(Solo::default());
//! iokernel::runtime::block_on_here(async {
//!     assert_eq!(solo.reserve_bytes(100).await.unwrap(), 0);
//!     assert_eq!(solo.reserve_bytes(50).await.unwrap(), 100);
//!     let sum = solo.exclusive_prefix_sum(7).await.unwrap();
//!     assert_eq!((sum.before, sum.total), (0, 7));
//!     let failed = RankFailure::new(0, "pwrite", "/out", Some(4096), Some(28), "No space left");
//!     let agreed = solo.agree(Err(failed.clone())).await.unwrap();
//!     assert_eq!(agreed, Err(failed));
//! });
//! ```

mod group;

pub use group::{InProcessRank, RankGroup};

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use mpi::{CounterPath, MpiCoordinator, ReserveStats};

/// A coordinator call in flight.
pub type CoordFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// A rank's position in the ordered concatenation of all ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixSum {
    /// Sum over the ranks below this one.
    pub before: u64,
    /// Sum over every rank.
    pub total: u64,
}

/// Where the writers of one output meet. See the module docs.
pub trait Coordinator: Send + Sync + fmt::Debug {
    /// This rank, `0..ranks()`.
    fn rank(&self) -> usize;

    /// How many ranks write the output.
    fn ranks(&self) -> usize;

    /// What the ranks are, for reports: `"solo"`, `"in-process"`, `"mpi"`,
    /// `"simulated"`.
    fn kind(&self) -> &'static str;

    /// Reserve `len` bytes of the shared output cursor; the start offset.
    /// Not collective: each rank calls it as often as it needs.
    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64>;

    /// Reserve `count` consecutive slots of the shared slot counter; the
    /// first slot's index. Not collective.
    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64>;

    /// Collective: every rank's `bytes`, indexed by rank.
    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>>;

    /// Collective: returns once every rank has called it.
    fn barrier(&self) -> CoordFuture<'_, ()> {
        Box::pin(async move { self.all_gather(Vec::new()).await.map(drop) })
    }

    /// Collective: the sum of `value` over the ranks below this one, and
    /// over all ranks.
    fn exclusive_prefix_sum(&self, value: u64) -> CoordFuture<'_, PrefixSum> {
        Box::pin(async move {
            let all = self.all_gather(value.to_le_bytes().to_vec()).await?;
            let values = all
                .iter()
                .map(|b| decode_u64(b))
                .collect::<io::Result<Vec<u64>>>()?;
            let before = values[..self.rank()].iter().sum();
            Ok(PrefixSum {
                before,
                total: values.iter().sum(),
            })
        })
    }

    /// Collective: rank 0's `bytes` on every rank (other ranks' `bytes`
    /// are ignored).
    fn broadcast(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let bytes = if self.rank() == 0 { bytes } else { Vec::new() };
            let mut all = self.all_gather(bytes).await?;
            Ok(all.swap_remove(0))
        })
    }

    /// Collective: every rank's outcome reduced. `Ok(Ok(()))` on every rank
    /// when all succeeded, else `Ok(Err(f))` on every rank, `f` being the
    /// failure of the lowest failing rank. The outer `Err` is the
    /// coordinator itself failing (then nothing is agreed).
    fn agree(&self, outcome: Result<(), RankFailure>) -> CoordFuture<'_, Result<(), RankFailure>> {
        Box::pin(async move {
            let mine = match &outcome {
                Ok(()) => Vec::new(),
                Err(failure) => failure.encode(),
            };
            let all = self.all_gather(mine).await?;
            match all.iter().find(|b| !b.is_empty()) {
                Some(bytes) => Ok(Err(RankFailure::decode(bytes)?)),
                None => Ok(Ok(())),
            }
        })
    }

    /// Not collective: this rank gives up (its writer was dropped before
    /// `finish()`). Implementations that can ([`RankGroup`]) make every
    /// other rank's pending and later calls fail with `failure`, so no rank
    /// waits forever for this one. Default: nothing (under MPI the
    /// launcher sees the process end).
    fn abandon(&self, failure: RankFailure) {
        let _ = failure;
    }
}

fn decode_u64(bytes: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("a u64 of {} bytes", bytes.len())))?;
    Ok(u64::from_le_bytes(bytes))
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("coordinator: {what} from another rank"),
    )
}

/// One rank's failure, as every rank reports it after [`Coordinator::agree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankFailure {
    /// The rank that failed.
    pub rank: usize,
    /// The op that failed (`"pwrite"`, `"open"`, `"fsync"`, ...).
    pub op: String,
    /// The path it failed on.
    pub path: PathBuf,
    /// The file offset, for positional ops.
    pub offset: Option<u64>,
    /// The kernel's errno, when a syscall failed.
    pub errno: Option<i32>,
    /// The error's text.
    pub message: String,
}

impl RankFailure {
    /// `op` on `path` failed on `rank`.
    pub fn new(
        rank: usize,
        op: impl Into<String>,
        path: impl AsRef<Path>,
        offset: Option<u64>,
        errno: Option<i32>,
        message: impl Into<String>,
    ) -> RankFailure {
        RankFailure {
            rank,
            op: op.into(),
            path: path.as_ref().to_path_buf(),
            offset,
            errno,
            message: message.into(),
        }
    }

    /// The failure as bytes another rank can [`decode`](Self::decode).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.rank as u64).to_le_bytes());
        out.extend_from_slice(&self.offset.map_or(u64::MAX, |o| o).to_le_bytes());
        out.push(u8::from(self.offset.is_some()));
        out.extend_from_slice(&self.errno.unwrap_or(0).to_le_bytes());
        out.push(u8::from(self.errno.is_some()));
        let path = self.path.to_string_lossy();
        for text in [self.op.as_str(), &path, self.message.as_str()] {
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// The failure [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> io::Result<RankFailure> {
        let mut rest = bytes;
        let mut take = |n: usize| -> io::Result<&[u8]> {
            if rest.len() < n {
                return Err(corrupt(format!(
                    "a truncated failure of {} bytes",
                    bytes.len()
                )));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let rank = decode_u64(take(8)?)?;
        let offset = decode_u64(take(8)?)?;
        let has_offset = take(1)?[0] != 0;
        let errno = i32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let has_errno = take(1)?[0] != 0;
        let mut texts = Vec::with_capacity(3);
        for _ in 0..3 {
            let len = usize::try_from(decode_u64(take(8)?)?)
                .map_err(|_| corrupt("an oversized failure text".into()))?;
            let text = String::from_utf8_lossy(take(len)?).into_owned();
            texts.push(text);
        }
        let message = texts.pop().expect("three texts");
        let path = PathBuf::from(texts.pop().expect("three texts"));
        let op = texts.pop().expect("three texts");
        Ok(RankFailure {
            rank: usize::try_from(rank).map_err(|_| corrupt("a rank past usize".into()))?,
            op,
            path,
            offset: has_offset.then_some(offset),
            errno: has_errno.then_some(errno),
            message,
        })
    }
}

impl fmt::Display for RankFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {}: {} {}", self.rank, self.op, self.path.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(errno) = self.errno {
            if !self.message.contains("os error") {
                write!(f, " (errno {errno})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RankFailure {}

impl From<RankFailure> for io::Error {
    /// An `io::Error` of the errno's kind (`Other` without one) carrying
    /// the failure; [`rank_failure_of`] gets it back,
    /// [`errno_of`](crate::writer::errno_of) reads its errno.
    fn from(failure: RankFailure) -> io::Error {
        let kind = failure.errno.map_or(io::ErrorKind::Other, |e| {
            io::Error::from_raw_os_error(e).kind()
        });
        io::Error::new(kind, failure)
    }
}

/// The [`RankFailure`] inside `err`, if there is one: every rank's error
/// after a failed agreement carries the failing rank's.
///
/// ```
/// use iokernel::writer::coord::{rank_failure_of, RankFailure};
/// let err: std::io::Error = RankFailure::new(2, "pwrite", "/o", Some(8), Some(28), "full").into();
/// assert_eq!(rank_failure_of(&err).map(|f| f.rank), Some(2));
/// assert_eq!(iokernel::writer::errno_of(&err), Some(28));
/// assert!(err.to_string().contains("rank 2: pwrite /o at offset 8"));
/// ```
pub fn rank_failure_of(err: &io::Error) -> Option<&RankFailure> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<RankFailure>())
}

/// One rank alone: the counters are plain atomics, collectives return at
/// once. The writer's default.
#[derive(Debug, Default)]
pub struct Solo {
    next_byte: AtomicU64,
    next_slot: AtomicU64,
}

impl Coordinator for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn kind(&self) -> &'static str {
        "solo"
    }

    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        let start = self.next_byte.fetch_add(len, Ordering::Relaxed);
        Box::pin(async move { Ok(start) })
    }

    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        let first = self.next_slot.fetch_add(count, Ordering::Relaxed);
        Box::pin(async move { Ok(first) })
    }

    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        Box::pin(async move { Ok(vec![bytes]) })
    }
}

/// The coordinator a [`WriterConfig`](super::WriterConfig) carries: one
/// `Arc<dyn Coordinator>`, compared by identity (two configs are equal
/// when they share one coordinator). The default is a fresh [`Solo`].
#[derive(Clone)]
pub struct SharedCoordinator(Arc<dyn Coordinator>);

impl SharedCoordinator {
    /// Share `coordinator`.
    pub fn new(coordinator: Arc<dyn Coordinator>) -> SharedCoordinator {
        SharedCoordinator(coordinator)
    }

    /// The coordinator.
    pub fn get(&self) -> &Arc<dyn Coordinator> {
        &self.0
    }
}

impl Default for SharedCoordinator {
    fn default() -> SharedCoordinator {
        SharedCoordinator(Arc::new(Solo::default()))
    }
}

impl fmt::Debug for SharedCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCoordinator")
            .field("kind", &self.0.kind())
            .field("rank", &self.0.rank())
            .field("ranks", &self.0.ranks())
            .finish()
    }
}

impl PartialEq for SharedCoordinator {
    fn eq(&self, other: &SharedCoordinator) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_survive_encoding() {
        for failure in [
            RankFailure::new(3, "pwrite", "/out/x.pfw", Some(1 << 40), Some(5), "EIO"),
            RankFailure::new(0, "open", "", None, None, ""),
            RankFailure::new(usize::MAX >> 1, "fsync", "/ünï", None, Some(-1), "m\0x"),
        ] {
            assert_eq!(RankFailure::decode(&failure.encode()).unwrap(), failure);
        }
    }

    #[test]
    fn truncated_failures_are_refused() {
        let bytes = RankFailure::new(1, "pwrite", "/o", Some(0), Some(5), "EIO").encode();
        for len in 0..bytes.len() {
            let err = RankFailure::decode(&bytes[..len]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "len {len}");
        }
    }
}
