//! [`RankGroup`]: N ranks in one process (threads each with a runtime,
//! tasks on one runtime, or tasks in one simulated run) sharing counters
//! and a waker-based rendezvous.
//!
//! Contract, beyond [`Coordinator`]'s:
//! * No call blocks a thread: a collective is a future that completes
//!   once every rank has made the same collective (the `k`-th collective
//!   of each rank meets the `k`-th of the others); the counters are
//!   bumped under a short lock.
//! * A rank that gives up poisons the group: a collective future dropped
//!   while it waits for the others, or [`Coordinator::abandon`]. From then
//!   on every collective that has not yet completed, and every counter
//!   call, fails with an error naming the rank and why.
//! * A rank whose last handle is dropped has left: every collective it
//!   did not join fails, naming it (counters keep working). A collective
//!   every rank had joined still completes, so a rank that finished and
//!   dropped its handle does not break the others' last agreement.

use super::{CoordFuture, Coordinator, RankFailure};
use crate::sync::shim::{Arc as ShimArc, Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// N in-process ranks writing one output.
///
/// ```
/// use iokernel::writer::coord::RankGroup;
///
/// let ranks = RankGroup::ranks(2);
/// let threads: Vec<_> = ranks
///     .into_iter()
///     .map(|rank| {
///         std::thread::spawn(move || {
///             iokernel::runtime::block_on_here(async move {
///                 let start = rank.reserve_bytes(10).await.unwrap();
///                 let sum = rank.exclusive_prefix_sum(rank.rank() as u64 + 1).await.unwrap();
///                 (start, sum.before, sum.total)
///             })
///         })
///     })
///     .collect();
/// let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
/// assert_eq!(got[0].1, 0);
/// assert_eq!(got[1].1, 1);
/// assert!(got.iter().all(|g| g.2 == 3));
/// let mut starts: Vec<u64> = got.iter().map(|g| g.0).collect();
/// starts.sort();
/// assert_eq!(starts, [0, 10]);
/// ```
#[derive(Debug)]
pub struct RankGroup;

impl RankGroup {
    /// `ranks` handles (`ranks >= 1`), one per rank, indexed by rank.
    pub fn ranks(ranks: usize) -> Vec<Arc<dyn Coordinator>> {
        RankGroup::handles(ranks)
            .into_iter()
            .map(|h| Arc::new(h) as Arc<dyn Coordinator>)
            .collect()
    }

    /// Like [`RankGroup::ranks`], as the concrete handle type.
    pub fn handles(ranks: usize) -> Vec<InProcessRank> {
        let ranks = ranks.max(1);
        let shared = ShimArc::new(Shared {
            ranks,
            state: Mutex::new(State {
                next_byte: 0,
                next_slot: 0,
                calls: vec![0; ranks],
                rounds: BTreeMap::new(),
                failure: None,
                left: vec![false; ranks],
            }),
        });
        (0..ranks)
            .map(|rank| InProcessRank {
                rank,
                shared: ShimArc::clone(&shared),
            })
            .collect()
    }
}

/// One rank of a [`RankGroup`]. Dropping it leaves the group; abandoning
/// poisons it (see the module docs).
///
/// ```
/// use iokernel::writer::coord::{Coordinator, RankFailure, RankGroup};
///
/// let ranks = RankGroup::handles(2);
/// ranks[1].abandon(RankFailure::new(1, "pwrite", "/o", Some(0), Some(5), "EIO"));
/// let err = iokernel::runtime::block_on_here(ranks[0].barrier()).unwrap_err();
/// assert!(err.to_string().contains("rank 1: pwrite /o"));
/// ```
pub struct InProcessRank {
    rank: usize,
    shared: ShimArc<Shared>,
}

struct Shared {
    ranks: usize,
    state: Mutex<State>,
}

struct State {
    next_byte: u64,
    next_slot: u64,
    /// Collectives each rank has joined.
    calls: Vec<u64>,
    /// Collectives under way, by index.
    rounds: BTreeMap<u64, Round>,
    /// Why the group is poisoned.
    failure: Option<RankFailure>,
    /// Ranks whose handle is gone: collectives they have not joined fail.
    left: Vec<bool>,
}

impl State {
    /// Why round `index` (not complete) can never complete, if it cannot.
    fn doomed(&self, index: u64) -> Option<RankFailure> {
        if let Some(failure) = &self.failure {
            return Some(failure.clone());
        }
        let joined = |r: usize| self.calls[r] > index;
        (0..self.left.len())
            .find(|&r| self.left[r] && !joined(r))
            .map(|r| {
                RankFailure::new(
                    r,
                    "coordinate",
                    "",
                    None,
                    None,
                    format!("the rank left the group (its handle was dropped) before collective {index}"),
                )
            })
    }
}

struct Round {
    parts: Vec<Option<Vec<u8>>>,
    arrived: usize,
    wakers: Vec<Option<Waker>>,
    result: Option<ShimArc<Vec<Vec<u8>>>>,
    taken: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // State stays consistent between statements: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Poison the group with `failure` (the first one wins) and wake every
    /// rank waiting in a collective.
    fn poison(&self, failure: RankFailure) {
        self.wake_all(|state| {
            if state.failure.is_none() {
                state.failure = Some(failure);
            }
        });
    }

    /// Change the state with `change`, then wake every rank waiting in a
    /// collective so it looks again.
    fn wake_all(&self, change: impl FnOnce(&mut State)) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            change(&mut state);
            state
                .rounds
                .values_mut()
                .flat_map(|r| r.wakers.iter_mut().filter_map(Option::take))
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The error every call on a poisoned group returns: the failure that
/// poisoned it ([`rank_failure_of`](super::rank_failure_of) gets it back).
fn group_error(failure: &RankFailure) -> io::Error {
    failure.clone().into()
}

impl fmt::Debug for InProcessRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessRank")
            .field("rank", &self.rank)
            .field("ranks", &self.shared.ranks)
            .finish()
    }
}

impl Drop for InProcessRank {
    fn drop(&mut self) {
        let rank = self.rank;
        self.shared.wake_all(|state| state.left[rank] = true);
    }
}

impl Coordinator for InProcessRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.shared.ranks
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn reserve_bytes(&self, len: u64) -> CoordFuture<'_, u64> {
        let result = {
            let mut state = self.shared.lock();
            match &state.failure {
                Some(failure) => Err(group_error(failure)),
                None => {
                    let start = state.next_byte;
                    state.next_byte += len;
                    Ok(start)
                }
            }
        };
        Box::pin(async move { result })
    }

    fn reserve_slots(&self, count: u64) -> CoordFuture<'_, u64> {
        let result = {
            let mut state = self.shared.lock();
            match &state.failure {
                Some(failure) => Err(group_error(failure)),
                None => {
                    let first = state.next_slot;
                    state.next_slot += count;
                    Ok(first)
                }
            }
        };
        Box::pin(async move { result })
    }

    fn all_gather(&self, bytes: Vec<u8>) -> CoordFuture<'_, Vec<Vec<u8>>> {
        Box::pin(Gather {
            shared: &self.shared,
            rank: self.rank,
            bytes: Some(bytes),
            round: None,
            done: false,
        })
    }

    fn abandon(&self, failure: RankFailure) {
        self.shared.poison(failure);
    }
}

/// One rank's part in one collective.
struct Gather<'a> {
    shared: &'a Shared,
    rank: usize,
    bytes: Option<Vec<u8>>,
    round: Option<u64>,
    done: bool,
}

impl Gather<'_> {
    /// Join the next collective; the wakers to wake when this completes it.
    fn join(&mut self, state: &mut State) -> Vec<Waker> {
        let n = self.shared.ranks;
        let index = state.calls[self.rank];
        state.calls[self.rank] += 1;
        self.round = Some(index);
        let round = state.rounds.entry(index).or_insert_with(|| Round {
            parts: vec![None; n],
            arrived: 0,
            wakers: vec![None; n],
            result: None,
            taken: 0,
        });
        round.parts[self.rank] = self.bytes.take();
        round.arrived += 1;
        if round.arrived < n {
            return Vec::new();
        }
        let parts = round.parts.iter_mut().map(|p| p.take().unwrap_or_default());
        round.result = Some(ShimArc::new(parts.collect()));
        round.wakers.iter_mut().filter_map(Option::take).collect()
    }
}

impl Future for Gather<'_> {
    type Output = io::Result<Vec<Vec<u8>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = this.shared.lock();
        let mut wake = Vec::new();
        if this.round.is_none() {
            if let Some(failure) = state.doomed(state.calls[this.rank]) {
                this.done = true;
                return Poll::Ready(Err(group_error(&failure)));
            }
            wake = this.join(&mut state);
        }
        let index = this.round.expect("joined above");
        let n = this.shared.ranks;
        let failure = state.doomed(index);
        let round = state.rounds.get_mut(&index).expect("a joined round lives");
        let poll = if let Some(result) = round.result.clone() {
            round.taken += 1;
            if round.taken == n {
                state.rounds.remove(&index);
            }
            this.done = true;
            Poll::Ready(Ok((*result).clone()))
        } else if let Some(failure) = failure {
            this.done = true;
            Poll::Ready(Err(group_error(&failure)))
        } else {
            round.wakers[this.rank] = Some(cx.waker().clone());
            Poll::Pending
        };
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        poll
    }
}

impl Drop for Gather<'_> {
    fn drop(&mut self) {
        if self.round.is_some() && !self.done {
            self.shared.poison(RankFailure::new(
                self.rank,
                "coordinate",
                "",
                None,
                None,
                "the rank stopped waiting in a collective (its future was dropped)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on_here;

    /// Run `body` for each rank on its own thread; the results by rank.
    fn on_threads<T: Send + 'static>(
        ranks: Vec<Arc<dyn Coordinator>>,
        body: impl Fn(Arc<dyn Coordinator>) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let body = Arc::new(body);
        let (tx, rx) = std::sync::mpsc::channel();
        let n = ranks.len();
        for (r, rank) in ranks.into_iter().enumerate() {
            let (body, tx) = (Arc::clone(&body), tx.clone());
            crate::sys::real::thread::spawn_named(format!("rank {r}"), move || {
                let _ = tx.send((r, body(rank)));
            })
            .expect("spawn a rank thread");
        }
        let mut got: Vec<(usize, T)> = (0..n)
            .map(|_| rx.recv().expect("a rank's result"))
            .collect();
        got.sort_by_key(|g| g.0);
        got.into_iter().map(|g| g.1).collect()
    }

    #[test]
    fn collectives_meet_in_order_across_threads() {
        let got = on_threads(RankGroup::ranks(4), |rank| {
            block_on_here(async move {
                let mut out = Vec::new();
                for round in 0..50u64 {
                    let all = rank
                        .all_gather(vec![rank.rank() as u8, round as u8])
                        .await
                        .unwrap();
                    out.push(all);
                    let sum = rank.exclusive_prefix_sum(round).await.unwrap();
                    assert_eq!(sum.before, round * rank.rank() as u64);
                    assert_eq!(sum.total, round * 4);
                }
                out
            })
        });
        for rank in &got {
            for (round, all) in rank.iter().enumerate() {
                let want: Vec<Vec<u8>> = (0..4).map(|r| vec![r as u8, round as u8]).collect();
                assert_eq!(all, &want);
            }
        }
    }

    #[test]
    fn counters_hand_out_disjoint_ranges() {
        let got = on_threads(RankGroup::ranks(3), |rank| {
            block_on_here(async move {
                let mut starts = Vec::new();
                for _ in 0..100 {
                    starts.push((rank.reserve_bytes(7).await.unwrap(), 7));
                    starts.push((rank.reserve_slots(2).await.unwrap() + 1_000_000, 2));
                }
                starts
            })
        });
        let mut bytes: Vec<u64> = got
            .iter()
            .flatten()
            .filter(|s| s.1 == 7)
            .map(|s| s.0)
            .collect();
        bytes.sort();
        assert_eq!(bytes, (0..300).map(|i| i * 7).collect::<Vec<_>>());
        let mut slots: Vec<u64> = got
            .iter()
            .flatten()
            .filter(|s| s.1 == 2)
            .map(|s| s.0)
            .collect();
        slots.sort();
        assert_eq!(
            slots,
            (0..300).map(|i| 1_000_000 + i * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn agree_reports_the_lowest_failing_rank_everywhere() {
        let got = on_threads(RankGroup::ranks(4), |rank| {
            block_on_here(async move {
                let r = rank.rank();
                let mine = if r >= 2 {
                    Err(RankFailure::new(
                        r,
                        "pwrite",
                        "/o",
                        Some(r as u64),
                        Some(5),
                        "EIO",
                    ))
                } else {
                    Ok(())
                };
                rank.agree(mine).await.unwrap()
            })
        });
        for outcome in got {
            assert_eq!(outcome.unwrap_err().rank, 2);
        }
    }

    #[test]
    fn a_rank_dropped_while_others_wait_wakes_them() {
        let mut ranks = RankGroup::ranks(2);
        let gone = ranks.pop().unwrap();
        let waiter = ranks.pop().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        crate::sys::real::thread::spawn_named("waiter".into(), move || {
            let _ = tx.send(block_on_here(async move {
                waiter.barrier().await.unwrap_err().to_string()
            }));
        })
        .expect("spawn the waiter");
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(gone);
        let err = rx.recv().expect("the waiter's error");
        assert!(err.contains("rank 1") && err.contains("dropped"), "{err}");
    }

    #[test]
    fn a_completed_collective_survives_a_rank_that_leaves_after_it() {
        let got = on_threads(RankGroup::ranks(2), |rank| {
            block_on_here(async move {
                let r = rank.rank();
                let agreed = rank.agree(Ok(())).await;
                drop(rank); // rank 0 may leave before rank 1 polls again
                (r, agreed.is_ok())
            })
        });
        assert!(got.iter().all(|g| g.1), "{got:?}");
    }

    #[test]
    fn abandon_fails_counters_and_collectives() {
        let ranks = RankGroup::ranks(2);
        let failure = RankFailure::new(1, "pwrite", "/o", Some(9), Some(28), "ENOSPC");
        ranks[1].abandon(failure);
        block_on_here(async {
            let err = ranks[0].reserve_bytes(1).await.unwrap_err();
            assert!(
                err.to_string().contains("rank 1: pwrite /o at offset 9"),
                "{err}"
            );
            assert!(ranks[0].barrier().await.is_err());
        });
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::future::block_on;
    use loom::thread;

    /// Two ranks meet at two collectives in a row from two threads: each
    /// gets both ranks' bytes, by rank, every time; nobody hangs.
    #[test]
    fn two_ranks_meet_twice() {
        loom::model(|| {
            let mut handles = RankGroup::handles(2);
            let one = handles.pop().unwrap();
            let zero = handles.pop().unwrap();
            let other = thread::spawn(move || {
                let a = block_on(one.all_gather(vec![1])).unwrap();
                let b = block_on(one.all_gather(vec![11])).unwrap();
                (a, b)
            });
            let a = block_on(zero.all_gather(vec![0])).unwrap();
            let b = block_on(zero.all_gather(vec![10])).unwrap();
            let (oa, ob) = other.join().unwrap();
            assert_eq!(a, vec![vec![0], vec![1]]);
            assert_eq!(b, vec![vec![10], vec![11]]);
            assert_eq!((a, b), (oa, ob));
        });
    }

    /// A rank leaving races the other rank's collective: the waiting rank
    /// gets an error naming the one that left (never hangs).
    #[test]
    fn a_leaving_rank_never_strands_the_other() {
        loom::model(|| {
            let mut handles = RankGroup::handles(2);
            let one = handles.pop().unwrap();
            let zero = handles.pop().unwrap();
            let leaver = thread::spawn(move || drop(one));
            let err = block_on(zero.barrier()).unwrap_err();
            assert!(err.to_string().contains("rank 1"), "{err}");
            leaver.join().unwrap();
        });
    }
}
