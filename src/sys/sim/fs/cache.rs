//! [`PageCache`]: which pages of one simulated file are in memory, so a
//! nowait read (`preadv2(RWF_NOWAIT)`) can hit or miss as on Linux.
//!
//! Pages are [`PAGE_BYTES`] long. A page enters the cache when a read or a
//! write touches it; it leaves on power loss (everything), on
//! `fadvise(DONTNEED)` (the pages wholly inside the range, as Linux rounds
//! inward), on truncation past it or a punched hole, and on a seeded
//! eviction (the simulator's memory pressure). Kept as disjoint, sorted,
//! page-aligned byte ranges, so a large sequential write costs one entry.

use std::collections::BTreeMap;

/// Page size of the simulated machine.
pub(crate) const PAGE_BYTES: u64 = 4096;

/// Cached ranges of one file: `start -> end` (page-aligned, disjoint, not
/// touching: neighbours are merged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PageCache {
    ranges: BTreeMap<u64, u64>,
}

fn page_floor(offset: u64) -> u64 {
    offset - offset % PAGE_BYTES
}

fn page_ceil(offset: u64) -> u64 {
    offset.saturating_add(PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES
}

impl PageCache {
    /// Bring the pages holding `offset..offset + len` into the cache.
    pub(crate) fn insert(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut start = page_floor(offset);
        let mut end = page_ceil(offset.saturating_add(len));
        // Absorb every range that overlaps or touches start..end.
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Drop the pages wholly inside `offset..offset + len`.
    pub(crate) fn remove(&mut self, offset: u64, len: u64) {
        let start = page_ceil(offset);
        let end = page_floor(offset.saturating_add(len));
        if start >= end {
            return;
        }
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.ranges.remove(&s);
            if s < start {
                self.ranges.insert(s, start);
            }
            if e > end {
                self.ranges.insert(end, e);
            }
        }
    }

    /// Drop every page (power loss, eviction).
    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
    }

    /// How many bytes from `offset` (at most `len`) lie in cached pages:
    /// the prefix a nowait read can return.
    pub(crate) fn cached_prefix(&self, offset: u64, len: u64) -> u64 {
        match self.ranges.range(..=offset).next_back() {
            Some((_, end)) if *end > offset => (*end - offset).min(len),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_reports_prefixes() {
        let mut cache = PageCache::default();
        cache.insert(100, 10);
        assert_eq!(cache.cached_prefix(0, 1 << 20), PAGE_BYTES);
        cache.insert(2 * PAGE_BYTES, 1);
        assert_eq!(cache.cached_prefix(0, 1 << 20), PAGE_BYTES);
        cache.insert(PAGE_BYTES, 1);
        assert_eq!(cache.cached_prefix(10, 1 << 20), 3 * PAGE_BYTES - 10);
        assert_eq!(cache.ranges.len(), 1);
        assert_eq!(cache.cached_prefix(3 * PAGE_BYTES, 5), 0);
    }

    #[test]
    fn removes_whole_pages_only() {
        let mut cache = PageCache::default();
        cache.insert(0, 4 * PAGE_BYTES);
        cache.remove(PAGE_BYTES + 1, PAGE_BYTES);
        assert_eq!(cache.cached_prefix(0, u64::MAX), 4 * PAGE_BYTES);
        cache.remove(PAGE_BYTES, 2 * PAGE_BYTES);
        assert_eq!(cache.cached_prefix(0, u64::MAX), PAGE_BYTES);
        assert_eq!(cache.cached_prefix(PAGE_BYTES, 1), 0);
        assert_eq!(cache.cached_prefix(3 * PAGE_BYTES, u64::MAX), PAGE_BYTES);
        cache.clear();
        assert_eq!(cache.cached_prefix(0, 1), 0);
    }
}
