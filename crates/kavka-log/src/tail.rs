//! The log's tail in memory: the batches a leader appended most recently, kept as the
//! very bytes it wrote, so a follower that fetches what was just appended is answered
//! without reading the segment back (no `pread`, no zeroed buffer, no header reads).
//!
//! Invariants:
//! - the entries are whole batches, each exactly the bytes written at its offsets, and
//!   contiguous: each starts where the one before it ends (a push that does not is a
//!   gap, and the older entries are dropped);
//! - a read answers a run of whole entries that starts exactly at the asked offset, as
//!   the entries' own buffers (shared, never joined here), or nothing (the caller reads
//!   the segments then);
//! - whatever removes or rewrites written records (truncation, compaction, a follower's
//!   append, a failed write) clears the tail first (the log's job), so it never answers
//!   bytes the log no longer holds;
//! - memory is bounded per log ([`TAIL_LOG_BYTES_MAX`]) and per process
//!   ([`TAIL_BYTES_MAX`], one shared count), oldest dropped first; the owner trims what
//!   every replica has fetched ([`TailCache::trim_below`]).
//!
//! Knows offsets and bytes only: nothing of replicas, leaders or the broker.

use bytes::Bytes;
use kavka_model::{Offset, StoredRecords};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most one log keeps in memory.
pub const TAIL_LOG_BYTES_MAX: usize = 1 << 20;
/// The most all logs of this process keep in memory together.
pub const TAIL_BYTES_MAX: usize = 64 << 20;
/// The bytes all tails hold now.
static TAIL_BYTES: AtomicUsize = AtomicUsize::new(0);

/// One appended run of batches: offsets `[base, next)`.
#[derive(Debug)]
struct Entry {
    base: Offset,
    next: Offset,
    bytes: Bytes,
}

#[derive(Debug, Default)]
pub(crate) struct TailCache {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl TailCache {
    /// Keeps `bytes`, the batches just written at `[base, next)`, within the bounds.
    pub(crate) fn push(&mut self, base: Offset, next: Offset, bytes: Bytes) {
        let len = bytes.len();
        if self.entries.back().is_some_and(|e| e.next != base) || len > TAIL_LOG_BYTES_MAX {
            self.clear();
        }
        if len == 0 || len > TAIL_LOG_BYTES_MAX {
            return;
        }
        while self.bytes + len > TAIL_LOG_BYTES_MAX {
            self.pop_front();
        }
        let held = TAIL_BYTES.fetch_add(len, Ordering::Relaxed);
        if held + len > TAIL_BYTES_MAX {
            // Over the process' budget: not kept, and the older entries go too (a
            // run must stay contiguous).
            TAIL_BYTES.fetch_sub(len, Ordering::Relaxed);
            self.clear();
            return;
        }
        self.bytes += len;
        self.entries.push_back(Entry { base, next, bytes });
    }

    /// Whole entries from `from` on, contiguous, ending at or before `upper`, within
    /// `max_bytes` (the first entry always, as a segment read does), as their own
    /// buffers (not joined); `None` when no entry starts at `from`.
    pub(crate) fn read(
        &self,
        from: Offset,
        upper: Offset,
        max_bytes: usize,
    ) -> Option<StoredRecords> {
        let start = self.entries.binary_search_by(|e| e.base.cmp(&from)).ok()?;
        let mut run = self.entries.range(start..);
        let first = run.next().filter(|e| e.next <= upper)?;
        let mut end = first.next;
        let mut taken = first.bytes.len();
        let mut pieces = vec![first.bytes.clone()];
        for e in run {
            if e.base != end || e.next > upper || taken + e.bytes.len() > max_bytes {
                break;
            }
            taken += e.bytes.len();
            end = e.next;
            pieces.push(e.bytes.clone());
        }
        Some(StoredRecords::from_pieces(pieces))
    }

    /// Drops the entries wholly below `offset` (every replica has them).
    pub(crate) fn trim_below(&mut self, offset: Offset) {
        while self.entries.front().is_some_and(|e| e.next <= offset) {
            self.pop_front();
        }
    }

    pub(crate) fn clear(&mut self) {
        while !self.entries.is_empty() {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.bytes.len();
            TAIL_BYTES.fetch_sub(e.bytes.len(), Ordering::Relaxed);
        }
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(runs: &[(i64, i64, usize)]) -> TailCache {
        let mut t = TailCache::default();
        for &(base, next, len) in runs {
            t.push(
                Offset(base),
                Offset(next),
                Bytes::from(vec![base as u8; len]),
            );
        }
        t
    }

    fn offsets(t: &TailCache) -> Vec<(i64, i64)> {
        t.entries.iter().map(|e| (e.base.0, e.next.0)).collect()
    }

    #[test]
    fn reads_a_contiguous_run_from_the_asked_offset_within_the_bounds() {
        let t = tail(&[(0, 3, 10), (3, 5, 10), (5, 9, 10)]);
        // (from, upper, max_bytes) -> bytes answered (None: read the segments)
        let cases: &[(i64, i64, usize, Option<usize>)] = &[
            (0, 9, 100, Some(30)),
            (3, 9, 100, Some(20)),
            (5, 9, 100, Some(10)),
            (0, 9, 25, Some(20)),  // the budget stops at a whole entry
            (0, 9, 5, Some(10)),   // the first entry even over the budget
            (0, 5, 100, Some(20)), // not past the upper bound
            (0, 2, 100, None),     // the first entry ends past it
            (1, 9, 100, None),     // inside an entry: no entry starts there
            (9, 9, 100, None),     // the end
            (-1, 9, 100, None),
        ];
        for &(from, upper, max, want) in cases {
            let got = t.read(Offset(from), Offset(upper), max).map(|r| r.len());
            assert_eq!(got, want, "from {from} upper {upper} max {max}");
        }
        // The bytes are the entries' own buffers, in order.
        let r = t.read(Offset(3), Offset(9), 100).unwrap();
        let shared: Vec<bool> = (r.pieces().iter().zip(t.entries.range(1..)))
            .map(|(p, e)| p.as_ptr() == e.bytes.as_ptr())
            .collect();
        assert_eq!(shared, vec![true, true]);
        assert_eq!(&r.into_bytes()[..], &[[3u8; 10], [5u8; 10]].concat()[..]);
    }

    #[test]
    fn a_gap_trimming_and_the_bounds_drop_older_entries() {
        // A push that does not continue the run starts a new one.
        let t = tail(&[(0, 3, 10), (3, 5, 10), (7, 9, 10)]);
        assert_eq!(offsets(&t), vec![(7, 9)]);
        // Trimmed below an offset: only entries wholly below it.
        let mut t = tail(&[(0, 3, 10), (3, 5, 10), (5, 9, 10)]);
        t.trim_below(Offset(4));
        assert_eq!(offsets(&t), vec![(3, 5), (5, 9)]);
        t.trim_below(Offset(9));
        assert_eq!(offsets(&t), vec![]);
        assert_eq!(t.bytes, 0);
        // Over the per-log bound: the oldest go.
        let half = TAIL_LOG_BYTES_MAX / 2;
        let t = tail(&[(0, 1, half), (1, 2, half), (2, 3, half)]);
        assert_eq!(offsets(&t), vec![(1, 2), (2, 3)]);
        assert_eq!(t.bytes, 2 * half);
        // A run larger than the bound is not kept, nor is what came before it.
        let t = tail(&[(0, 1, 10), (1, 2, TAIL_LOG_BYTES_MAX + 1)]);
        assert_eq!(offsets(&t), vec![]);
        // Cleared: nothing is answered.
        let mut t = tail(&[(0, 3, 10)]);
        t.clear();
        assert_eq!(t.read(Offset(0), Offset(3), 100), None);
    }
}
