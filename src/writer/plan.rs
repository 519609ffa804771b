//! The padded-striped layout's slot plan: where each chunk goes and which
//! bytes are padding.
//!
//! The file is cut into stripe-sized *slots*, slot `i` covering
//! `[i × stripe, (i + 1) × stripe)`. Chunks are placed in the order they are
//! committed:
//!
//! * A chunk that fits in the current slot's remaining space goes right
//!   after the previous chunk.
//! * A chunk that does not fit closes the slot: the rest of it becomes a
//!   padding region (shorter than a stripe) and the chunk starts at the next
//!   stripe boundary.
//! * A chunk larger than a stripe starts on a stripe boundary and spans
//!   consecutive slots. Its last slot is closed behind it: the next chunk
//!   starts at the following boundary, and the tail between is padding.
//!   So every slot holds either whole small chunks or part of one large one,
//!   and a reader that finds a chunk boundary can resynchronise at the next
//!   stripe boundary after any padding.
//!
//! Hence the invariants the property tests check: regions are contiguous
//! from offset 0 and never overlap; a chunk no larger than a stripe lies in
//! one slot; every padding region is shorter than a stripe and ends on a
//! stripe boundary, so whatever follows padding starts on one.
//!
//! **Trailing padding.** The last slot is not padded by default
//! ([`TrailingPadding::Omit`]): that would add up to a stripe of filler to
//! every file for nothing. [`TrailingPadding::ToStripeBoundary`] pads it,
//! for a file that will be appended to, or concatenated with others, by a
//! padded-striped writer and must keep its slots aligned.
//!
//! The plan says where padding goes, not what it holds. The writer fills it
//! with what readers skip: whitespace for text, empty gzip members for gzip,
//! a hole for binary. Note that an empty gzip member takes at least 20
//! bytes, so a gap of 1 to 19 bytes cannot be filled with one; the gzip
//! variant of the writer will have to deal with that (this plan does not).
//!
//! [`SlotPlanner`] keeps O(1) state and hands back each chunk's
//! [`Placement`] as it goes, so a writer streaming millions of chunks does
//! not keep a list; [`plan_chunks`] collects the regions for a known list of
//! chunk lengths (tests, small files, tools).

use std::fmt;

/// What a region of the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Chunk number `chunk_index` (0-based, in placement order).
    Data {
        /// Which chunk.
        chunk_index: u64,
    },
    /// Filler that readers ignore.
    Padding,
}

/// A byte range of the output file: `[offset, offset + len)`, `len > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Data or padding.
    pub kind: RegionKind,
}

impl Region {
    /// One past the last byte. Cannot overflow for regions the planner made.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Where one chunk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Padding to write before the chunk (closing the previous slot), if any.
    pub padding_before: Option<Region>,
    /// The chunk's own range.
    pub data: Region,
    /// How many slots the chunk touches (1 unless it is larger than a stripe
    /// or the stripe is tiny).
    pub slots_spanned: u64,
}

impl Placement {
    /// The padding (if any) then the data, in file order.
    pub fn regions(&self) -> impl Iterator<Item = Region> {
        self.padding_before
            .into_iter()
            .chain(std::iter::once(self.data))
    }
}

/// Whether [`SlotPlanner::finish`] pads the last slot to a stripe boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TrailingPadding {
    /// The file ends with its last chunk (the default).
    #[default]
    Omit,
    /// The file's length is rounded up to a multiple of the stripe.
    ToStripeBoundary,
}

/// Totals for a finished plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSummary {
    /// Length of the file: the end of the last region.
    pub file_len_bytes: u64,
    /// Padding closing the last slot, with [`TrailingPadding::ToStripeBoundary`].
    pub trailing_padding: Option<Region>,
    /// Chunks placed.
    pub chunks: u64,
    /// Bytes of chunk data.
    pub data_bytes: u64,
    /// Bytes of padding, trailing padding included.
    pub padding_bytes: u64,
}

/// Why a chunk could not be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// A stripe of 0 bytes.
    ZeroStripe,
    /// A chunk of 0 bytes (the writer never commits an empty buffer).
    EmptyChunk {
        /// Which chunk.
        chunk_index: u64,
    },
    /// The chunk would end, or its slot would close, past `u64::MAX`.
    Overflow {
        /// Which chunk.
        chunk_index: u64,
        /// End of the plan so far, where its padding and then it would go.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::ZeroStripe => f.write_str("padded-striped plan: stripe size is 0"),
            PlanError::EmptyChunk { chunk_index } => {
                write!(f, "padded-striped plan: chunk {chunk_index} is empty")
            }
            PlanError::Overflow {
                chunk_index,
                offset,
                len,
            } => write!(
                f,
                "padded-striped plan: chunk {chunk_index} of {len} bytes at offset {offset} \
                 would end past the largest file offset"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// Packs chunks into stripe-aligned slots, one chunk at a time.
///
/// ```
/// use iokernel::writer::{RegionKind, SlotPlanner, TrailingPadding};
///
/// let mut planner = SlotPlanner::new(100).unwrap();
/// assert_eq!(planner.place(60).unwrap().data.offset, 0);
/// let p = planner.place(30).unwrap(); // fits: 60..90
/// assert_eq!((p.data.offset, p.padding_before), (60, None));
/// let p = planner.place(30).unwrap(); // does not fit: pad 90..100
/// assert_eq!(p.padding_before.map(|r| (r.offset, r.len)), Some((90, 10)));
/// assert_eq!(p.data.offset, 100);
/// let big = planner.place(250).unwrap(); // spans slots 2, 3 and 4
/// assert_eq!((big.data.offset, big.slots_spanned), (200, 3));
/// let p = planner.place(5).unwrap(); // the spanning chunk's tail is closed
/// assert_eq!(p.padding_before.map(|r| (r.offset, r.len)), Some((450, 50)));
/// assert_eq!(p.data.kind, RegionKind::Data { chunk_index: 4 });
/// let summary = planner.finish(TrailingPadding::ToStripeBoundary);
/// assert_eq!(summary.file_len_bytes, 600);
/// ```
#[derive(Clone, Debug)]
pub struct SlotPlanner {
    stripe_bytes: u64,
    cursor_bytes: u64,
    tail_closed: bool,
    chunks: u64,
    data_bytes: u64,
    padding_bytes: u64,
}

impl SlotPlanner {
    /// A planner for an empty file with slots of `stripe_bytes`.
    pub fn new(stripe_bytes: u64) -> Result<SlotPlanner, PlanError> {
        if stripe_bytes == 0 {
            return Err(PlanError::ZeroStripe);
        }
        Ok(SlotPlanner {
            stripe_bytes,
            cursor_bytes: 0,
            tail_closed: false,
            chunks: 0,
            data_bytes: 0,
            padding_bytes: 0,
        })
    }

    /// The slot size.
    pub fn stripe_bytes(&self) -> u64 {
        self.stripe_bytes
    }

    /// End of everything placed so far.
    pub fn cursor_bytes(&self) -> u64 {
        self.cursor_bytes
    }

    /// Places the next chunk of `chunk_len` bytes. On error nothing changes.
    pub fn place(&mut self, chunk_len: u64) -> Result<Placement, PlanError> {
        let chunk_index = self.chunks;
        if chunk_len == 0 {
            return Err(PlanError::EmptyChunk { chunk_index });
        }
        let stripe = self.stripe_bytes;
        let used = self.cursor_bytes % stripe;
        let room = stripe - used;
        let must_pad = used != 0 && (self.tail_closed || chunk_len > room);
        let pad_len = if must_pad { room } else { 0 };
        let overflow = PlanError::Overflow {
            chunk_index,
            offset: self.cursor_bytes,
            len: chunk_len,
        };
        let offset = self.cursor_bytes.checked_add(pad_len).ok_or(overflow)?;
        let end = offset.checked_add(chunk_len).ok_or(overflow)?;
        // Keep the slot closable, so finish() can never overflow.
        end.checked_next_multiple_of(stripe).ok_or(overflow)?;

        let padding_before = must_pad.then_some(Region {
            offset: self.cursor_bytes,
            len: pad_len,
            kind: RegionKind::Padding,
        });
        let data = Region {
            offset,
            len: chunk_len,
            kind: RegionKind::Data { chunk_index },
        };
        self.cursor_bytes = end;
        self.tail_closed = chunk_len > stripe;
        self.chunks += 1;
        self.data_bytes += chunk_len;
        self.padding_bytes += pad_len;
        Ok(Placement {
            padding_before,
            data,
            slots_spanned: (end - 1) / stripe - offset / stripe + 1,
        })
    }

    /// Ends the plan, padding the last slot if asked to.
    pub fn finish(self, trailing: TrailingPadding) -> PlanSummary {
        let used = self.cursor_bytes % self.stripe_bytes;
        let trailing_padding = (trailing == TrailingPadding::ToStripeBoundary && used != 0)
            .then_some(Region {
                offset: self.cursor_bytes,
                len: self.stripe_bytes - used,
                kind: RegionKind::Padding,
            });
        let trailing_len = trailing_padding.map_or(0, |r| r.len);
        PlanSummary {
            // place() checked that rounding up to the stripe fits.
            file_len_bytes: self.cursor_bytes + trailing_len,
            trailing_padding,
            chunks: self.chunks,
            data_bytes: self.data_bytes,
            padding_bytes: self.padding_bytes + trailing_len,
        }
    }
}

/// A whole plan: every region in file order, and the totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    /// Data and padding regions, contiguous from offset 0.
    pub regions: Vec<Region>,
    /// Totals.
    pub summary: PlanSummary,
}

/// Plans a known sequence of chunk lengths.
///
/// ```
/// use iokernel::writer::{plan_chunks, RegionKind, TrailingPadding};
///
/// let plan = plan_chunks(64, [40, 40], TrailingPadding::Omit).unwrap();
/// let kinds: Vec<_> = plan.regions.iter().map(|r| (r.offset, r.len, r.kind)).collect();
/// assert_eq!(
///     kinds,
///     [
///         (0, 40, RegionKind::Data { chunk_index: 0 }),
///         (40, 24, RegionKind::Padding),
///         (64, 40, RegionKind::Data { chunk_index: 1 }),
///     ]
/// );
/// assert_eq!(plan.summary.file_len_bytes, 104);
/// ```
pub fn plan_chunks(
    stripe_bytes: u64,
    chunk_lens: impl IntoIterator<Item = u64>,
    trailing: TrailingPadding,
) -> Result<SlotPlan, PlanError> {
    let mut planner = SlotPlanner::new(stripe_bytes)?;
    let mut regions = Vec::new();
    for len in chunk_lens {
        regions.extend(planner.place(len)?.regions());
    }
    let summary = planner.finish(trailing);
    regions.extend(summary.trailing_padding);
    Ok(SlotPlan { regions, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(offset: u64, len: u64, chunk_index: u64) -> Region {
        Region {
            offset,
            len,
            kind: RegionKind::Data { chunk_index },
        }
    }

    fn pad(offset: u64, len: u64) -> Region {
        Region {
            offset,
            len,
            kind: RegionKind::Padding,
        }
    }

    #[test]
    fn packs_pads_and_spans() {
        let plan = plan_chunks(100, [60, 40, 30, 80, 250, 5, 100], TrailingPadding::Omit).unwrap();
        assert_eq!(
            plan.regions,
            [
                data(0, 60, 0),
                data(60, 40, 1), // fills slot 0 exactly: no padding
                data(100, 30, 2),
                pad(130, 70), // 80 does not fit in the 70 left
                data(200, 80, 3),
                pad(280, 20), // a spanning chunk starts on a boundary
                data(300, 250, 4),
                pad(550, 50), // its tail slot is closed
                data(600, 5, 5),
                pad(605, 95),
                data(700, 100, 6), // exactly one stripe: fits one slot
            ]
        );
        let s = plan.summary;
        assert_eq!(
            (s.file_len_bytes, s.chunks, s.data_bytes, s.padding_bytes),
            (800, 7, 565, 235)
        );
        assert_eq!(s.trailing_padding, None);
    }

    #[test]
    fn spanning_chunk_ending_on_a_boundary_needs_no_padding() {
        let plan = plan_chunks(100, [200, 10, 300, 1], TrailingPadding::Omit).unwrap();
        assert_eq!(
            plan.regions,
            [
                data(0, 200, 0),
                data(200, 10, 1),
                pad(210, 90),
                data(300, 300, 2),
                data(600, 1, 3)
            ]
        );
    }

    #[test]
    fn trailing_padding_option() {
        let omit = plan_chunks(100, [30], TrailingPadding::Omit).unwrap();
        assert_eq!(omit.summary.file_len_bytes, 30);
        let padded = plan_chunks(100, [30], TrailingPadding::ToStripeBoundary).unwrap();
        assert_eq!(padded.regions, [data(0, 30, 0), pad(30, 70)]);
        assert_eq!(padded.summary.trailing_padding, Some(pad(30, 70)));
        assert_eq!(
            (padded.summary.file_len_bytes, padded.summary.padding_bytes),
            (100, 70)
        );
        // Already on a boundary, or nothing placed: nothing to pad.
        let full = plan_chunks(100, [100], TrailingPadding::ToStripeBoundary).unwrap();
        assert_eq!(full.regions, [data(0, 100, 0)]);
        let empty = plan_chunks(100, [], TrailingPadding::ToStripeBoundary).unwrap();
        assert!(empty.regions.is_empty());
        assert_eq!(empty.summary.file_len_bytes, 0);
    }

    #[test]
    fn stripe_of_one_byte() {
        let plan = plan_chunks(1, [1, 3, 1], TrailingPadding::ToStripeBoundary).unwrap();
        assert_eq!(plan.regions, [data(0, 1, 0), data(1, 3, 1), data(4, 1, 2)]);
    }

    #[test]
    fn errors() {
        assert_eq!(SlotPlanner::new(0).unwrap_err(), PlanError::ZeroStripe);
        let mut planner = SlotPlanner::new(4096).unwrap();
        planner.place(10).unwrap();
        assert_eq!(
            planner.place(0),
            Err(PlanError::EmptyChunk { chunk_index: 1 })
        );
        let err = planner.place(u64::MAX - 5).unwrap_err();
        assert_eq!(
            err,
            PlanError::Overflow {
                chunk_index: 1,
                offset: 10,
                len: u64::MAX - 5
            }
        );
        assert!(err.to_string().contains("chunk 1 of"), "{err}");
        // Errors leave the planner as it was.
        assert_eq!(planner.cursor_bytes(), 10);
        assert_eq!(planner.place(5).unwrap().data, data(10, 5, 1));
    }

    #[test]
    fn overflow_when_the_slot_could_not_close() {
        let stripe = 1 << 40;
        let mut planner = SlotPlanner::new(stripe).unwrap();
        // Ends inside the last slot, whose end (2^64) is not a u64: rejected.
        let len = u64::MAX - 10;
        assert!(matches!(
            planner.place(len),
            Err(PlanError::Overflow { .. })
        ));
        // Ending on the last whole boundary is fine, and finish() is exact.
        let last_boundary = u64::MAX / stripe * stripe;
        planner.place(last_boundary).unwrap();
        let summary = planner.finish(TrailingPadding::ToStripeBoundary);
        assert_eq!(summary.file_len_bytes, last_boundary);
    }

    #[test]
    fn placement_regions_in_file_order() {
        let mut planner = SlotPlanner::new(10).unwrap();
        planner.place(8).unwrap();
        let p = planner.place(5).unwrap();
        assert_eq!(p.regions().collect::<Vec<_>>(), [pad(8, 2), data(10, 5, 1)]);
        assert_eq!(planner.stripe_bytes(), 10);
    }

    /// Checks every invariant of a plan made from `lens`.
    fn check(stripe: u64, lens: &[u64], trailing: TrailingPadding) -> Result<(), TestCaseError> {
        let plan = plan_chunks(stripe, lens.iter().copied(), trailing).unwrap();
        let mut pos = 0;
        let mut next_chunk = 0;
        let mut prev: Option<Region> = None;
        for r in &plan.regions {
            // Contiguous from 0, never overlapping, never empty.
            prop_assert_eq!(r.offset, pos);
            prop_assert!(r.len > 0);
            pos = r.end();
            match r.kind {
                RegionKind::Data { chunk_index } => {
                    prop_assert_eq!(chunk_index, next_chunk);
                    prop_assert_eq!(r.len, lens[chunk_index as usize]);
                    next_chunk += 1;
                    if r.len <= stripe {
                        prop_assert_eq!(
                            r.offset / stripe,
                            (r.end() - 1) / stripe,
                            "{:?} straddles",
                            r
                        );
                    } else {
                        prop_assert_eq!(r.offset % stripe, 0, "spanning {:?} off boundary", r);
                    }
                    if let Some(p) = prev.filter(|p| matches!(p.kind, RegionKind::Data { .. })) {
                        // A chunk right after a chunk: same slot, so packing
                        // was legal, and the previous one did not span.
                        prop_assert!(p.len <= stripe || r.offset % stripe == 0);
                    }
                }
                RegionKind::Padding => {
                    prop_assert!(r.len < stripe, "padding {:?} not shorter than stripe", r);
                    prop_assert_eq!(r.end() % stripe, 0, "padding {:?} ends off boundary", r);
                    let after_data = matches!(prev.map(|p| p.kind), Some(RegionKind::Data { .. }));
                    prop_assert!(after_data, "padding {:?} does not follow a chunk", r);
                }
            }
            prev = Some(*r);
        }
        prop_assert_eq!(next_chunk as usize, lens.len());
        check_padding_needed(stripe, &plan.regions)?;
        let s = plan.summary;
        prop_assert_eq!(s.file_len_bytes, pos);
        prop_assert_eq!(s.data_bytes + s.padding_bytes, pos);
        prop_assert_eq!(s.data_bytes, lens.iter().sum::<u64>());
        match trailing {
            TrailingPadding::ToStripeBoundary => prop_assert_eq!(pos % stripe, 0),
            TrailingPadding::Omit => prop_assert!(!matches!(
                plan.regions.last().map(|r| r.kind),
                Some(RegionKind::Padding)
            )),
        }
        Ok(())
    }

    /// Padding between two chunks only where the rules call for it: the next
    /// chunk did not fit in the room left, or the previous one spanned.
    fn check_padding_needed(stripe: u64, regions: &[Region]) -> Result<(), TestCaseError> {
        for w in regions.windows(3) {
            if let [before, Region {
                kind: RegionKind::Padding,
                len: room,
                ..
            }, after] = w
            {
                prop_assert!(after.len > *room || before.len > stripe, "{:?}", w);
            }
        }
        Ok(())
    }

    fn stripe_and_lens() -> impl Strategy<Value = (u64, Vec<u64>)> {
        prop_oneof![1u64..=16, 1u64..=(1 << 20)].prop_flat_map(|stripe| {
            let len = prop_oneof![
                1..=stripe.div_ceil(2),
                1..=3 * stripe,
                Just(stripe),
                Just(stripe + 1),
                Just((stripe - 1).max(1)),
            ];
            (Just(stripe), proptest::collection::vec(len, 0..64))
        })
    }

    proptest! {
        #[test]
        fn plan_invariants_hold((stripe, lens) in stripe_and_lens(), pad_tail in any::<bool>()) {
            let trailing = if pad_tail { TrailingPadding::ToStripeBoundary } else { TrailingPadding::Omit };
            check(stripe, &lens, trailing)?;
        }

        #[test]
        fn streaming_matches_collected((stripe, lens) in stripe_and_lens()) {
            let mut planner = SlotPlanner::new(stripe).unwrap();
            let streamed: Vec<Region> =
                lens.iter().flat_map(|&len| planner.place(len).unwrap().regions()).collect();
            let collected = plan_chunks(stripe, lens.iter().copied(), TrailingPadding::Omit).unwrap();
            prop_assert_eq!(streamed, collected.regions);
        }

        #[test]
        fn slots_spanned_is_exact((stripe, lens) in stripe_and_lens()) {
            let mut planner = SlotPlanner::new(stripe).unwrap();
            for len in lens {
                let p = planner.place(len).unwrap();
                let first = p.data.offset / stripe;
                let last = (p.data.end() - 1) / stripe;
                prop_assert_eq!(p.slots_spanned, last - first + 1);
                if len <= stripe {
                    prop_assert_eq!(p.slots_spanned, 1);
                }
            }
        }
    }
}
