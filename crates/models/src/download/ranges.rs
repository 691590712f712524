//! The set of byte ranges of the `.part` file that are on disk.

use serde::{Deserialize, Serialize};

/// Sorted, disjoint, non-adjacent half-open byte ranges `[start, end)`.
///
/// Serialised as `[[start, end], ...]` in the sidecar. A set read back from disk is untrusted:
/// [`RangeSet::normalized`] sorts, merges and clamps it before use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, end)`, merging it with any range it overlaps or touches.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First range whose end reaches `start` (touching counts) ...
        let first = self.0.partition_point(|&(_, e)| e < start);
        // ... and one past the last range whose start is within reach of `end`.
        let last = self.0.partition_point(|&(s, _)| s <= end);
        if first == last {
            self.0.insert(first, (start, end));
            return;
        }
        let merged_start = start.min(self.0[first].0);
        let merged_end = end.max(self.0[last - 1].1);
        self.0.splice(first..last, [(merged_start, merged_end)]);
    }

    /// Total number of bytes covered.
    pub(crate) fn covered(&self) -> u64 {
        self.0.iter().map(|&(s, e)| e - s).sum()
    }

    /// Whether `[0, total)` is entirely covered.
    pub(crate) fn is_complete(&self, total: u64) -> bool {
        total == 0 || self.0.first().is_some_and(|&(s, e)| s == 0 && e >= total)
    }

    /// The gaps of `[0, total)`, in order.
    pub(crate) fn missing(&self, total: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s >= total {
                break;
            }
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
        }
        if at < total {
            gaps.push((at, total));
        }
        gaps
    }

    /// The same set sorted, merged and clipped to `[0, total)`, with empty or inverted
    /// ranges dropped: what a set read from an untrusted sidecar becomes before use.
    pub(crate) fn normalized(&self, total: u64) -> Self {
        let mut out = Self::new();
        for &(s, e) in &self.0 {
            out.insert(s.min(total), e.min(total));
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }
}

/// Splits each gap into pieces of at most `chunk` bytes (`chunk` ≥ 1).
pub(crate) fn split(gaps: &[(u64, u64)], chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    for &(mut s, e) in gaps {
        while s < e {
            let next = e.min(s.saturating_add(chunk));
            out.push((s, next));
            s = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    #[track_caller]
    fn check(inserts: &[(u64, u64)], expect: &[(u64, u64)]) {
        assert_eq!(set(inserts).ranges(), expect, "inserting {inserts:?}");
    }

    #[test]
    fn insert_merges_overlapping_and_touching_ranges() {
        check(&[], &[]);
        check(&[(5, 5)], &[]);
        check(&[(5, 3)], &[]);
        check(&[(0, 10)], &[(0, 10)]);
        check(&[(0, 10), (20, 30)], &[(0, 10), (20, 30)]);
        check(&[(20, 30), (0, 10)], &[(0, 10), (20, 30)]);
        check(&[(0, 10), (10, 20)], &[(0, 20)]);
        check(&[(10, 20), (0, 10)], &[(0, 20)]);
        check(&[(0, 10), (5, 15)], &[(0, 15)]);
        check(&[(0, 10), (20, 30), (40, 50), (5, 45)], &[(0, 50)]);
        check(&[(0, 10), (20, 30), (40, 50), (12, 18)], &[(0, 10), (12, 18), (20, 30), (40, 50)]);
        check(&[(0, 10), (20, 30), (10, 20)], &[(0, 30)]);
        check(&[(0, 100), (10, 20)], &[(0, 100)]);
        check(&[(10, 20), (0, 100)], &[(0, 100)]);
    }

    #[test]
    fn missing_and_covered() {
        let s = set(&[(10, 20), (30, 40)]);
        assert_eq!(s.covered(), 20);
        assert_eq!(s.missing(50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(s.missing(35), vec![(0, 10), (20, 30)]);
        assert_eq!(s.missing(5), vec![(0, 5)]);
        assert_eq!(RangeSet::new().missing(7), vec![(0, 7)]);
        assert!(set(&[(0, 50)]).missing(50).is_empty());
        assert!(set(&[(0, 50)]).is_complete(50));
        assert!(!s.is_complete(50));
        assert!(RangeSet::new().is_complete(0));
    }

    #[test]
    fn normalized_repairs_untrusted_sets() {
        let raw: RangeSet = serde_json::from_str("[[30,40],[0,10],[5,12],[50,40],[90,200]]").expect("json");
        assert_eq!(raw.normalized(100).ranges(), &[(0, 12), (30, 40), (90, 100)]);
        assert_eq!(raw.normalized(8).ranges(), &[(0, 8)]);
        assert_eq!(serde_json::to_string(&set(&[(0, 1), (3, 4)])).expect("json"), "[[0,1],[3,4]]");
    }

    #[test]
    fn split_into_chunks() {
        assert_eq!(split(&[(0, 10)], 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(split(&[(0, 3), (5, 6)], 4), vec![(0, 3), (5, 6)]);
        assert_eq!(split(&[(0, 2)], 0), vec![(0, 1), (1, 2)]);
        assert!(split(&[], 4).is_empty());
    }
}
