//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`): per
//! producer id, its epoch and the sequence ranges and offsets of its last
//! [`BATCHES_TO_RETAIN`] batches, so a leader can tell a retried batch (answered with the
//! offsets it was first written at, not written again) from a gap in the sequence.
//!
//! Invariants: the state describes exactly the batches below the log end (it is rebuilt
//! from the log, not trusted, after a truncation), less the producers expired since; every
//! replica builds it from the same batches, so a new leader dedupes what the old one
//! wrote. It also remembers, for each producer changed since the state was last persisted
//! (the end of the snapshot chain, see `producer_snapshot`), that producer's entry as it
//! was then: what the next delta must hold, and how to step back to the persisted state
//! after a truncation. Persisting is `producer_snapshot`'s business; this module does no I/O.

use crate::error::LogError;
use kavka_model::Offset;
use kavka_record::{BatchHeader, NO_PRODUCER_EPOCH};
use std::collections::{HashMap, VecDeque};

/// A producer's last timestamp when a version 0 checkpoint did not say (set to the clock
/// at the next expiry check, so it is kept a whole expiration period).
pub(crate) const UNKNOWN_TIMESTAMP: i64 = i64::MIN;
/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`, which is also why
/// an idempotent producer keeps at most five requests in flight per partition).
pub const BATCHES_TO_RETAIN: usize = 5;

/// Where one producer batch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) first_offset: Offset,
    pub(crate) last_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    /// The largest timestamp of its batches: the entry expires `producer.id.expiration.ms`
    /// after it (Kafka's `lastTimestamp`).
    pub(crate) last_timestamp: i64,
    /// Oldest first; never empty.
    pub(crate) batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    pub(crate) fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }
}

/// An append whose batches the log already holds: where they were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// Sequence numbers wrap from `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
fn add_seq(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

fn last_seq(h: &BatchHeader) -> i32 {
    add_seq(h.base_sequence, h.last_offset_delta)
}

fn is_idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && !h.is_control()
}

/// A producer's entry after a change, or `None` once it is forgotten (a tombstone).
pub(crate) type Change<'a> = (i64, Option<&'a ProducerEntry>);

#[derive(Clone, Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Each producer changed since the state was last persisted, with its entry as it
    /// was then (`None`: it was unknown): the next delta writes these producers, and
    /// [`Self::revert_to_persisted`] puts the old entries back.
    persisted_before_change: HashMap<i64, Option<ProducerEntry>>,
}

/// Equal when they know the same producers; what is not yet persisted is bookkeeping.
impl PartialEq for ProducerStates {
    fn eq(&self, other: &Self) -> bool {
        self.producers == other.producers
    }
}

impl Eq for ProducerStates {}

impl ProducerStates {
    /// Checks a leader append (batches without offsets yet) against the state: `Ok(None)`
    /// to write it, `Ok(Some(d))` when it repeats batches already at `d`, or the error a
    /// producer gets for a sequence gap or a fenced epoch. Changes nothing.
    pub(crate) fn check_append(
        &self,
        headers: &[BatchHeader],
    ) -> Result<Option<Duplicate>, LogError> {
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            if !is_idempotent(h) {
                continue;
            }
            if h.is_transactional() {
                return Err(LogError::TransactionalBatch {
                    producer_id: h.producer_id,
                });
            }
            if h.base_sequence < 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            let current = pending.get(&h.producer_id).copied().or_else(|| {
                self.producers
                    .get(&h.producer_id)
                    .map(|e| (e.epoch, e.last_seq()))
            });
            if let Some((epoch, last)) = current {
                if h.producer_epoch < epoch {
                    return Err(LogError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        current: epoch,
                        got: h.producer_epoch,
                    });
                }
                if i == 0
                    && h.producer_epoch == epoch
                    && let Some(d) = self.duplicate_of(headers)
                {
                    return Ok(Some(d));
                }
                let expected = if h.producer_epoch > epoch {
                    0
                } else {
                    add_seq(last, 1)
                };
                // A new epoch starts at 0, except over a producer whose epoch was unknown.
                if h.base_sequence != expected && !(epoch == NO_PRODUCER_EPOCH && expected == 0) {
                    return Err(LogError::OutOfOrderSequence {
                        producer_id: h.producer_id,
                        expected,
                        got: h.base_sequence,
                    });
                }
            }
            pending.insert(h.producer_id, (h.producer_epoch, last_seq(h)));
        }
        Ok(None)
    }

    /// The append is a retry when its first batch is one the producer's entry remembers
    /// and every batch is that producer's: a retry resends the same batches, which were
    /// written together at dense offsets.
    fn duplicate_of(&self, headers: &[BatchHeader]) -> Option<Duplicate> {
        let first = headers.first()?;
        let entry = self.producers.get(&first.producer_id)?;
        let cached = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first.base_sequence && b.last_seq == last_seq(first))?;
        if headers
            .iter()
            .any(|h| h.producer_id != first.producer_id || h.producer_epoch != entry.epoch)
        {
            return None;
        }
        let records: i64 = headers.iter().map(|h| h.last_offset_delta as i64 + 1).sum();
        Some(Duplicate {
            first_offset: cached.first_offset,
            last_offset: Offset(cached.first_offset.0 + records - 1),
        })
    }

    /// Records a batch written to the log (`h` carries its offsets).
    pub(crate) fn record(&mut self, h: &BatchHeader) {
        if !is_idempotent(h) {
            return;
        }
        self.note_change(h.producer_id);
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                last_timestamp: h.max_timestamp,
                batches: VecDeque::new(),
            });
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        if entry.epoch != h.producer_epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            first_offset: Offset(h.base_offset),
            last_offset: Offset(h.last_offset()),
        });
        while entry.batches.len() > BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (Kafka's `producer.id.expiration.ms`); returns how many. A retry from a forgotten
    /// producer is no longer recognised, as in Kafka.
    pub(crate) fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let unknown: Vec<i64> = self
            .producers
            .iter()
            .filter(|(_, e)| e.last_timestamp == UNKNOWN_TIMESTAMP)
            .map(|(&id, _)| id)
            .collect();
        for id in unknown {
            self.note_change(id);
            if let Some(e) = self.producers.get_mut(&id) {
                e.last_timestamp = now_ms;
            }
        }
        let expired: Vec<i64> = self
            .producers
            .iter()
            .filter(|(_, e)| now_ms.saturating_sub(e.last_timestamp) >= expiration_ms)
            .map(|(&id, _)| id)
            .collect();
        for &id in &expired {
            self.note_change(id);
            self.producers.remove(&id);
        }
        expired.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every producer, by id.
    pub(crate) fn entries(&self) -> Vec<(i64, &ProducerEntry)> {
        let mut all: Vec<_> = self.producers.iter().map(|(&id, e)| (id, e)).collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// The producers changed since the state was last persisted, by id, as they are now
    /// (`None`: forgotten since). A producer that came and went in between is left out.
    pub(crate) fn changes(&self) -> Vec<Change<'_>> {
        let mut changed: Vec<Change<'_>> = self
            .persisted_before_change
            .iter()
            .filter_map(|(&id, before)| match (before, self.producers.get(&id)) {
                (None, None) => None,
                (_, now) => Some((id, now)),
            })
            .collect();
        changed.sort_unstable_by_key(|(id, _)| *id);
        changed
    }

    /// The state is now persisted as it is: changes count from here.
    pub(crate) fn mark_persisted(&mut self) {
        self.persisted_before_change.clear();
    }

    /// Steps back to the state as last persisted (the log was truncated; what came after
    /// is replayed from the log again).
    pub(crate) fn revert_to_persisted(&mut self) {
        for (id, before) in self.persisted_before_change.drain() {
            match before {
                Some(e) => self.producers.insert(id, e),
                None => self.producers.remove(&id),
            };
        }
    }

    /// Sets a producer's entry as a persisted file says (loading, not a change).
    pub(crate) fn apply_persisted(&mut self, id: i64, entry: Option<ProducerEntry>) {
        match entry {
            Some(e) => self.producers.insert(id, e),
            None => self.producers.remove(&id),
        };
    }

    /// Before changing producer `id`: remembers its entry as persisted, unless a change
    /// since already did.
    fn note_change(&mut self, id: i64) {
        if !self.persisted_before_change.contains_key(&id) {
            let before = self.producers.get(&id).cloned();
            self.persisted_before_change.insert(id, before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, records: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    fn code(r: Result<Option<Duplicate>, LogError>) -> String {
        match r {
            Ok(None) => "write".into(),
            Ok(Some(d)) => format!("dup {}..{}", d.first_offset.0, d.last_offset.0),
            Err(LogError::OutOfOrderSequence { expected, got, .. }) => {
                format!("out of order: expected {expected}, got {got}")
            }
            Err(LogError::InvalidProducerEpoch { current, got, .. }) => {
                format!("fenced: {got} < {current}")
            }
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sequences_must_follow_on_and_retries_are_recognised() {
        let mut s = ProducerStates::default();
        assert_eq!(code(s.check_append(&[batch(7, 0, 0, 3, -1)])), "write");
        s.record(&batch(7, 0, 0, 3, 10));
        // The same batch again: where it went, not a second write.
        assert_eq!(code(s.check_append(&[batch(7, 0, 0, 3, -1)])), "dup 10..12");
        // A gap, and a batch from before the last one.
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 5, 1, -1)])),
            "out of order: expected 3, got 5"
        );
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 1, 1, -1)])),
            "out of order: expected 3, got 1"
        );
        // Two batches in one append must follow on from each other too.
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 3, 2, -1), batch(7, 0, 6, 1, -1)])),
            "out of order: expected 5, got 6"
        );
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 3, 2, -1), batch(7, 0, 5, 1, -1)])),
            "write"
        );
        s.record(&batch(7, 0, 3, 2, 13));
        s.record(&batch(7, 0, 5, 1, 15));
        // A multi-batch retry is recognised by its first batch.
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 3, 2, -1), batch(7, 0, 5, 1, -1)])),
            "dup 13..15"
        );
        // Other producers and plain batches are independent.
        assert_eq!(code(s.check_append(&[batch(8, 0, 42, 1, -1)])), "write");
        assert_eq!(code(s.check_append(&[batch(-1, -1, -1, 1, -1)])), "write");
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.record(&batch(7, 1, 0, 1, 0));
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 1, 1, -1)])),
            "fenced: 0 < 1"
        );
        assert_eq!(
            code(s.check_append(&[batch(7, 2, 4, 1, -1)])),
            "out of order: expected 0, got 4"
        );
        assert_eq!(code(s.check_append(&[batch(7, 2, 0, 1, -1)])), "write");
        s.record(&batch(7, 2, 0, 1, 1));
        assert_eq!(code(s.check_append(&[batch(7, 2, 1, 1, -1)])), "write");
    }

    /// Issue 22, Kafka's rules for a new leader (`ProducerStateManager` /
    /// `ProducerAppendInfo.checkSequence`): it holds every acknowledged batch (it came
    /// from the ISR) but maybe not the old leader's unacknowledged tail. The producer
    /// resends its in-flight batches in order from the first unacknowledged one, so each
    /// is either a batch this leader holds (answered as a duplicate with the original
    /// offsets) or the next in sequence (written): never OUT_OF_ORDER_SEQUENCE_NUMBER.
    /// A producer this leader holds nothing of (no epoch known) may start at any
    /// sequence; UNKNOWN_PRODUCER_ID is never answered (Kafka dropped it with KIP-360).
    #[test]
    fn a_new_leader_behind_the_old_one_accepts_the_resent_tail() {
        let mut new_leader = ProducerStates::default();
        // The old leader wrote seqs 0..=4 (offsets 0..=4); the new one replicated 0..=2.
        for i in 0..3 {
            new_leader.record(&batch(7, 0, i, 1, i as i64));
        }
        // (case, resent batches) -> answer
        type Case<'a> = (&'a str, &'a [(i32, i32)], &'a str);
        let cases: &[Case] = &[
            ("an acknowledged batch it holds", &[(2, 1)], "dup 2..2"),
            ("the first unacknowledged one", &[(3, 1)], "write"),
            (
                "the whole unacknowledged tail at once",
                &[(3, 1), (4, 1)],
                "write",
            ),
            (
                "a later one before the first (out of order in flight)",
                &[(4, 1)],
                "out of order: expected 3, got 4",
            ),
        ];
        for (name, resent, want) in cases {
            let headers: Vec<BatchHeader> = resent
                .iter()
                .map(|&(seq, n)| batch(7, 0, seq, n, -1))
                .collect();
            assert_eq!(code(new_leader.check_append(&headers)), *want, "{name}");
        }
        // Nothing of the producer here at all: any sequence is accepted.
        assert_eq!(
            code(new_leader.check_append(&[batch(9, 3, 38_531, 1, -1)])),
            "write"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&batch(7, 0, i, 1, i as i64));
        }
        assert_eq!(code(s.check_append(&[batch(7, 0, 2, 1, -1)])), "dup 2..2");
        // Older than the window: Kafka calls it out of order too.
        assert_eq!(
            code(s.check_append(&[batch(7, 0, 1, 1, -1)])),
            "out of order: expected 7, got 1"
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(add_seq(i32::MAX, 1), 0);
        assert_eq!(add_seq(i32::MAX - 1, 3), 1);
        let mut s = ProducerStates::default();
        s.record(&batch(7, 0, i32::MAX - 1, 2, 0));
        assert_eq!(code(s.check_append(&[batch(7, 0, 0, 1, -1)])), "write");
    }

    #[test]
    fn changes_since_the_persisted_state_are_listed_and_can_be_reverted() {
        let at = |pid: i64, seq: i32, ts: i64| BatchHeader {
            max_timestamp: ts,
            ..batch(pid, 0, seq, 1, seq as i64)
        };
        let mut s = ProducerStates::default();
        s.record(&at(1, 0, 100));
        s.record(&at(2, 0, 100));
        s.mark_persisted();
        let persisted = s.clone();
        assert!(s.changes().is_empty());
        // (what happens after the persisted state) -> (producer, still known) in the delta
        type Case<'a> = (&'a str, &'a [(i64, i64)], i64, &'a [(i64, bool)]);
        let cases: &[Case<'_>] = &[
            ("nothing", &[], 0, &[]),
            ("one producer writes", &[(2, 500)], 0, &[(2, true)]),
            ("a new one", &[(3, 500)], 0, &[(3, true)]),
            ("two expire", &[], 1_100, &[(1, false), (2, false)]),
            (
                "a new one writes, then all expire",
                &[(3, 100)],
                1_100,
                &[(1, false), (2, false)],
            ),
            (
                "one writes, the other expires",
                &[(2, 900)],
                1_100,
                &[(1, false), (2, true)],
            ),
        ];
        for (name, writes, expire_at, want) in cases {
            let mut s = persisted.clone();
            for (i, (pid, ts)) in writes.iter().enumerate() {
                s.record(&at(*pid, 1 + i as i32, *ts));
            }
            if *expire_at > 0 {
                s.remove_expired(*expire_at, 1_000);
            }
            let got: Vec<(i64, bool)> = s
                .changes()
                .iter()
                .map(|(id, e)| (*id, e.is_some()))
                .collect();
            assert_eq!(&got, want, "{name}");
            s.revert_to_persisted();
            assert_eq!(s, persisted, "{name}: reverted");
            assert!(s.changes().is_empty(), "{name}");
        }
    }

    #[test]
    fn producers_expire_after_their_last_batch() {
        let at = |pid: i64, ts: i64| BatchHeader {
            max_timestamp: ts,
            ..batch(pid, 0, 0, 1, 0)
        };
        // (producer, its batch's timestamp)..., now, expiration -> producers left
        type Case<'a> = (&'a [(i64, i64)], i64, i64, &'a [i64]);
        let cases: &[Case<'_>] = &[
            (&[(1, 100), (2, 200)], 1_099, 1_000, &[1, 2]),
            (&[(1, 100), (2, 200)], 1_100, 1_000, &[2]),
            (&[(1, 100), (2, 200)], 9_999, 1_000, &[]),
            // A later batch renews the producer; an earlier timestamp does not age it.
            (&[(1, 100), (1, 900), (1, 50)], 1_500, 1_000, &[1]),
            (&[(1, 100)], 100, 0, &[]),
        ];
        for (batches, now, expiration, left) in cases {
            let mut s = ProducerStates::default();
            for (pid, ts) in *batches {
                s.record(&at(*pid, *ts));
            }
            s.remove_expired(*now, *expiration);
            let mut ids: Vec<i64> = s.producers.keys().copied().collect();
            ids.sort_unstable();
            assert_eq!(&ids, left, "{batches:?} at {now}");
        }
    }
}
