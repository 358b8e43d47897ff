//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`): per
//! producer id, its epoch and the sequence ranges and offsets of its last
//! [`BATCHES_TO_RETAIN`] batches, so a leader can tell a retried batch (answered with the
//! offsets it was first written at, not written again) from a gap in the sequence.
//!
//! Invariants: the state describes exactly the batches below the log end (it is rebuilt
//! from the log, not trusted, after a truncation); every replica builds it from the same
//! batches, so a new leader dedupes what the old one wrote. `producer-state-checkpoint`
//! holds the state as of the active segment's base offset, written when a segment rolls,
//! so opening a log replays at most the active segment. A missing, stale or unreadable
//! checkpoint only costs a scan of the log's batch headers.

use crate::durability::write_atomically;
use crate::error::LogError;
use kavka_model::Offset;
use kavka_record::{BatchHeader, NO_PRODUCER_EPOCH};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

pub(crate) const CHECKPOINT_FILE: &str = "producer-state-checkpoint";
/// Version 1 adds each producer's last timestamp; version 0 files are still read.
const VERSION: &str = "1";
/// A producer's last timestamp when a version 0 checkpoint did not say (set to the clock
/// at the next expiry check, so it is kept a whole expiration period).
const UNKNOWN_TIMESTAMP: i64 = i64::MIN;
/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`, which is also why
/// an idempotent producer keeps at most five requests in flight per partition).
pub const BATCHES_TO_RETAIN: usize = 5;

/// Where one producer batch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: Offset,
    last_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// The largest timestamp of its batches: the entry expires `producer.id.expiration.ms`
    /// after it (Kafka's `lastTimestamp`).
    last_timestamp: i64,
    /// Oldest first; never empty.
    batches: VecDeque<BatchMeta>,
}

impl ProducerEntry {
    fn last_seq(&self) -> i32 {
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

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
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            if e.last_timestamp == UNKNOWN_TIMESTAMP {
                e.last_timestamp = now_ms;
            }
            now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// Writes the state as of log offset `up_to` to the checkpoint in `dir`.
    pub(crate) fn save(&self, dir: &Path, up_to: Offset, fsync: bool) -> Result<(), LogError> {
        let mut text = format!("{VERSION}\n{}\n{}\n", up_to.0, self.producers.len());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            let _ = write!(
                text,
                "{id} {} {} {}",
                e.epoch,
                e.last_timestamp,
                e.batches.len()
            );
            for b in &e.batches {
                let _ = write!(
                    text,
                    " {} {} {} {}",
                    b.first_seq, b.last_seq, b.first_offset.0, b.last_offset.0
                );
            }
            text.push('\n');
        }
        write_atomically(&dir.join(CHECKPOINT_FILE), text.as_bytes(), fsync)
    }

    /// Reads the checkpoint in `dir`: `Ok(None)` when there is none, an error naming the
    /// file when it cannot be parsed (the caller rebuilds from the log instead).
    pub(crate) fn load(dir: &Path) -> Result<Option<(Offset, Self)>, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LogError::Io { path, source }),
        };
        let corrupt = |reason: String| LogError::Corrupt {
            path: path.clone(),
            position: 0,
            reason,
        };
        let mut lines = text.lines();
        let version = lines.next().unwrap_or_default();
        let with_timestamps = match version {
            "0" => false,
            VERSION => true,
            _ => return Err(corrupt(format!("unknown checkpoint version '{version}'"))),
        };
        let mut number = |what: &str| -> Result<i64, LogError> {
            lines
                .next()
                .and_then(|l| l.trim().parse().ok())
                .ok_or_else(|| corrupt(format!("missing or bad {what}")))
        };
        let up_to = Offset(number("offset")?);
        let count = number("producer count")?;
        let mut states = Self::default();
        for line in text.lines().skip(3).take(count.max(0) as usize) {
            let nums: Vec<i64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt(format!("malformed line '{line}'")))?;
            let (id, epoch, last_timestamp, n, rest) = match (with_timestamps, nums.as_slice()) {
                (true, [id, epoch, ts, n, rest @ ..]) => (*id, *epoch, *ts, *n, rest),
                (false, [id, epoch, n, rest @ ..]) => (*id, *epoch, UNKNOWN_TIMESTAMP, *n, rest),
                _ => return Err(corrupt(format!("malformed line '{line}'"))),
            };
            if n < 1 || rest.len() as i64 != n * 4 {
                return Err(corrupt(format!("malformed line '{line}'")));
            }
            let to_i32 = |v: i64| i32::try_from(v).map_err(|_| corrupt(format!("bad value {v}")));
            let batches = rest
                .chunks_exact(4)
                .map(|b| {
                    Ok(BatchMeta {
                        first_seq: to_i32(b[0])?,
                        last_seq: to_i32(b[1])?,
                        first_offset: Offset(b[2]),
                        last_offset: Offset(b[3]),
                    })
                })
                .collect::<Result<_, LogError>>()?;
            let epoch = i16::try_from(epoch).map_err(|_| corrupt(format!("bad epoch {epoch}")))?;
            states.producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    last_timestamp,
                    batches,
                },
            );
        }
        if states.producers.len() != count as usize {
            return Err(corrupt(format!(
                "{count} producers declared, {} found",
                states.producers.len()
            )));
        }
        Ok(Some((up_to, states)))
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
    fn checkpoint_round_trips_and_names_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ProducerStates::load(dir.path()).unwrap().is_none());
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(&batch(i % 3, 0, i as i32, 2, i * 2));
        }
        s.save(dir.path(), Offset(16), false).unwrap();
        let (at, loaded) = ProducerStates::load(dir.path()).unwrap().unwrap();
        assert_eq!((at, &loaded), (Offset(16), &s));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n16\n2\n1 0 1 0 0 0\n").unwrap();
        let e = ProducerStates::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CHECKPOINT_FILE), "{e}");
    }

    #[test]
    fn version_0_checkpoints_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            "0\n16\n1\n7 0 1 0 1 10 11\n",
        )
        .unwrap();
        let (_, mut s) = ProducerStates::load(dir.path()).unwrap().unwrap();
        assert_eq!(code(s.check_append(&[batch(7, 0, 0, 2, -1)])), "dup 10..11");
        // Its last timestamp is unknown: the first expiry check starts its period.
        assert_eq!(s.remove_expired(1_000, 500), 0);
        assert_eq!(s.remove_expired(1_499, 500), 0);
        assert_eq!(s.remove_expired(1_500, 500), 1);
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
