//! Log compaction (`cleanup.policy=compact`, Kafka's log cleaner): keeps the latest record
//! for each key.
//!
//! Invariants:
//! - only closed segments wholly below the *cleanable end* are rewritten: the active
//!   segment's base, the caller's bound (the high watermark, so nothing uncommitted is
//!   judged) and `min.compaction.lag.ms` all stop it;
//! - offsets never change: a kept record keeps its offset, a rewritten batch keeps its base
//!   offset, last offset delta, timestamps, producer fields and leader epoch; compaction
//!   leaves gaps, it never moves a record;
//! - within the cleaned range the latest record of each key is kept; a tombstone (null
//!   value) is kept until its segment is older than `delete.retention.ms`; records without a
//!   key and control batches are kept;
//! - a segment is swapped by renaming a fully written, synced copy over it, after removing
//!   its indexes (rebuilt on open if a crash falls in between); readers hold the log, so
//!   they see the old segment or the new one, never a mix. A cleaning cut short leaves its
//!   work directory, which the next open removes.
//!
//! The cleaner's progress (its first dirty offset) is kept in `cleaner-offset-checkpoint`,
//! and a log is cleaned once the dirty share of the cleanable bytes reaches
//! `min.cleanable.dirty.ratio`.

use crate::error::{IoContext, LogError};
use crate::log::{PartitionLog, sync_dir};
use crate::segment::{self, LogSegment, Opened};
use bytes::Bytes;
use kavka_model::Offset;
use kavka_record::{BatchHeader, BatchRecords, RecordBatch};
use std::collections::HashMap;

/// Where a cleaning writes its copies before swapping them in.
pub(crate) const WORK_DIR: &str = "cleaning";
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// What one cleaning did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Every offset below this was cleaned; the next cleaning starts its dirty part here.
    pub cleaned_up_to: Offset,
}

impl PartitionLog {
    /// The cleaner's first dirty offset (the log start before the first cleaning).
    pub fn first_dirty_offset(&self) -> Offset {
        let path = self.dir.join(CHECKPOINT_FILE);
        let stored = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map_or(Offset(0), Offset);
        stored.max(self.log_start_offset())
    }

    /// Cleans the log if it is compacted and dirty enough: keeps the latest record per key
    /// in the closed segments below `upper` (the high watermark). `None` when there was
    /// nothing to do.
    #[tracing::instrument(skip(self), fields(dir = %self.dir.display()))]
    pub fn compact(
        &mut self,
        now_ms: i64,
        upper: Offset,
    ) -> Result<Option<CompactionStats>, LogError> {
        if !self.config.compact {
            return Ok(None);
        }
        let active = self.active().base_offset;
        let lag = self.config.min_compaction_lag_ms;
        let mut cleanable = Vec::new();
        let mut end = self.log_start_offset();
        for (&base, seg) in &self.segments {
            if base == active
                || seg.next_offset() > upper
                || (lag > 0 && seg.max_timestamp() > now_ms - lag)
            {
                break;
            }
            cleanable.push(base);
            end = seg.next_offset();
        }
        let first_dirty = self.first_dirty_offset();
        if cleanable.is_empty() || end <= first_dirty {
            return Ok(None);
        }
        let (mut total, mut dirty) = (0u64, 0u64);
        for base in &cleanable {
            let seg = &self.segments[base];
            total += seg.size();
            if seg.next_offset() > first_dirty {
                dirty += seg.size();
            }
        }
        // max.compaction.lag.ms: a dirty segment that began that long ago is cleaned
        // however clean the rest of the log is.
        let overdue = cleanable.iter().any(|base| {
            let seg = &self.segments[base];
            seg.next_offset() > first_dirty
                && seg
                    .rolled_at_ms()
                    .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.max_compaction_lag_ms)
        });
        let dirty_enough =
            (dirty as f64) >= self.config.min_cleanable_dirty_ratio.get() * total as f64;
        if total == 0 || !(dirty_enough || overdue) {
            return Ok(None);
        }

        // Pass 1: the latest offset of every key in the cleanable range.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for base in &cleanable {
            for_each_batch(&self.segments[base], |_, h, bytes| {
                if !h.is_control() {
                    let (batch, _) = BatchRecords::open(bytes)?;
                    for r in batch.iter() {
                        let r = r?;
                        if let Some(k) = r.key {
                            let (offset, _) = batch.offset_and_timestamp(&r);
                            latest.insert(Bytes::copy_from_slice(k), offset);
                        }
                    }
                }
                Ok(())
            })?;
        }

        // Pass 2: rewrite each segment, then swap it in.
        let work = self.dir.join(WORK_DIR);
        std::fs::create_dir_all(&work).at(&work)?;
        let mut stats = CompactionStats {
            cleaned_up_to: end,
            ..CompactionStats::default()
        };
        for base in cleanable {
            let (before, after, removed) = self.clean_segment(base, &latest, now_ms)?;
            stats.segments += 1;
            stats.bytes_before += before;
            stats.bytes_after += after;
            stats.records_removed += removed;
        }
        let _ = std::fs::remove_dir_all(&work);
        crate::durability::write_atomically(
            &self.dir.join(CHECKPOINT_FILE),
            format!("{}\n", end.0).as_bytes(),
            true,
        )?;
        tracing::info!(
            segments = stats.segments,
            records_removed = stats.records_removed,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            cleaned_up_to = %end,
            "compacted log"
        );
        Ok(Some(stats))
    }

    /// Rewrites one closed segment keeping what `latest` says survives; returns (bytes
    /// before, bytes after, records removed).
    fn clean_segment(
        &mut self,
        base: Offset,
        latest: &HashMap<Bytes, i64>,
        now_ms: i64,
    ) -> Result<(u64, u64, u64), LogError> {
        let interval = self.config.index_interval_bytes;
        let work = self.dir.join(WORK_DIR);
        let seg = &self.segments[&base];
        let before = seg.size();
        let horizon = self.config.delete_retention_ms;
        let drop_tombstones = seg.max_timestamp() >= 0 && now_ms - seg.max_timestamp() > horizon;
        let mut out = LogSegment::create(&work, base, interval)?;
        let mut removed = 0u64;
        for_each_batch(seg, |_, h, bytes| {
            if h.is_control() {
                return out.append(bytes, h, now_ms);
            }
            let (mut batch, _) = RecordBatch::decode(bytes)?;
            let count = batch.records.len();
            let batch_base = batch.base_offset;
            batch.records.retain(|r| match &r.key {
                None => true,
                Some(k) => {
                    let offset = batch_base + i64::from(r.offset_delta);
                    latest.get(k) == Some(&offset) && !(drop_tombstones && r.value.is_none())
                }
            });
            removed += (count - batch.records.len()) as u64;
            if batch.records.len() == count {
                out.append(bytes, h, now_ms)
            } else if batch.records.is_empty() {
                Ok(())
            } else {
                let encoded = batch.encode()?;
                let header = BatchHeader::parse(&encoded)?;
                out.append(&encoded, &header, now_ms)
            }
        })?;
        let after = out.size();
        out.seal(true)?;
        drop(out);
        // The segment in use keeps reading the old file until the cleaned one is open.
        if let Some(seg) = self.segments.get_mut(&base) {
            seg.pin()?;
        }
        let (old, new) = (segment::paths(&self.dir, base), segment::paths(&work, base));
        for index in [&old.index, &old.time_index] {
            crate::durability::remove_if_present(index)?;
        }
        // The replaced data stays readable under `*.deleted` for `file.delete.delay.ms`.
        let delay = self.file_delete_delay();
        self.retired
            .retire_copy(&old.log, delay, std::time::Instant::now())?;
        std::fs::rename(&new.log, &old.log).at(&old.log)?;
        std::fs::rename(&new.index, &old.index).at(&old.index)?;
        std::fs::rename(&new.time_index, &old.time_index).at(&old.time_index)?;
        sync_dir(&self.dir)?;
        // The records at these offsets changed: the tail no longer holds what is there.
        self.tail.clear();
        let seg = match LogSegment::open(&self.dir, base, interval, false)? {
            Opened::Clean(s) | Opened::TruncatedTail(s, _, _) => s,
        };
        self.segments.insert(base, seg);
        Ok((before, after, removed))
    }
}

/// Calls `f(position, header, bytes)` for each batch of `seg` in order.
fn for_each_batch(
    seg: &LogSegment,
    mut f: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let reader = seg.reader()?;
    let mut pos = 0;
    while pos < seg.size() {
        let h = reader.header_at(pos)?;
        let bytes = reader.read_at(pos, h.size())?;
        f(pos, &h, &bytes)?;
        pos += h.size() as u64;
    }
    Ok(())
}
