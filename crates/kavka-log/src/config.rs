//! What the log needs from a topic's configs (the broker's defaults applied).

use crate::durability::FlushPolicy;
use kavka_model::{CleanupPolicy, DirtyRatio, TopicConfig};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment once the active one would exceed this (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll once the active segment's first batch is this old (`segment.ms`).
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this; -1 keeps forever.
    pub retention_ms: i64,
    /// Delete old segments while the log exceeds this; -1 is unbounded.
    pub retention_bytes: i64,
    /// Bytes of batches between two sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Largest batch accepted (`max.message.bytes`).
    pub max_message_bytes: u32,
    pub flush: FlushPolicy,
    /// `cleanup.policy` includes `delete`: retention removes old segments.
    pub delete: bool,
    /// `cleanup.policy` includes `compact`: the cleaner keeps the latest record per key.
    pub compact: bool,
    /// Tombstones are removed once their segment is older than this (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Records younger than this are never compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// Records older than this are compacted whatever the dirty ratio, and the active
    /// segment of a compacted log rolls at this age (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: i64,
    /// Each segment rolls up to this much before `segment_ms` (`segment.jitter.ms`).
    pub segment_jitter_ms: i64,
    /// A segment rolls once either index would outgrow this (`segment.index.bytes`).
    pub segment_index_bytes: u32,
    /// Clean once this share of the log is dirty (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// Files of removed segments are unlinked this much later (`file.delete.delay.ms`).
    pub file_delete_delay_ms: i64,
    /// New active segments reserve `segment_bytes` of disk (`preallocate`).
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::from_topic(&TopicConfig::default())
    }
}

impl LogConfig {
    pub fn from_topic(t: &TopicConfig) -> Self {
        Self {
            // A segment's positions are u32 (as Kafka's are i32).
            segment_bytes: t.effective_segment_bytes().min(i32::MAX as u64),
            segment_ms: t.segment_ms,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
            index_interval_bytes: t.index_interval_bytes,
            max_message_bytes: t.max_message_bytes,
            flush: FlushPolicy {
                messages: t.flush_messages,
                ms: t.flush_ms,
            },
            delete: t.cleanup_policy.deletes(),
            compact: matches!(
                t.cleanup_policy,
                CleanupPolicy::Compact | CleanupPolicy::CompactDelete
            ),
            delete_retention_ms: t.delete_retention_ms,
            min_compaction_lag_ms: t.min_compaction_lag_ms,
            max_compaction_lag_ms: t.max_compaction_lag_ms,
            segment_jitter_ms: t.segment_jitter_ms,
            segment_index_bytes: t.segment_index_bytes,
            min_cleanable_dirty_ratio: t.min_cleanable_dirty_ratio,
            file_delete_delay_ms: t.file_delete_delay_ms,
            preallocate: t.preallocate,
        }
    }
}
