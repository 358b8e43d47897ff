//! The broker API's data-path vocabulary: what produce, ListOffsets and replica fetches
//! ask and answer, the same whichever protocol (Kafka or gRPC) they came over. The
//! listeners map Kafka's wire numbers onto these (`Acks::from_wire`,
//! `OffsetSpec::from_wire`); `kavka-proto`'s `conv` converts the replication messages to
//! and from protobuf.
//!
//! Invariants: no sentinels — "none" is `None`, never `-1`; a value of these types is
//! always one the broker can act on (an unknown `acks` or ListOffsets timestamp is an
//! error at the edge, with the message Kafka clients have always seen from us).

use crate::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, StoredRecords, TopicPartition};

/// How many replicas must have a produced batch before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Acks {
    /// Kafka's acks=0: no answer at all; the append goes on without the client.
    None,
    /// acks=1: once the leader appended.
    Leader,
    /// acks=-1 (all): once the high watermark passed the batch (every ISR member has it).
    All,
}

impl Acks {
    /// From Kafka's wire value: 0, 1 or -1; anything else is INVALID_REQUIRED_ACKS.
    pub fn from_wire(acks: i32) -> Result<Acks, KafkaError> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            _ => Err(KafkaError::new(
                ErrorCode::InvalidRequiredAcks,
                format!("acks must be -1 (all), 0 or 1, got {acks}"),
            )),
        }
    }

    /// Kafka's wire value.
    pub fn to_wire(self) -> i32 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Which offset a ListOffsets asks of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// The log start offset (Kafka's -2).
    Earliest,
    /// The high watermark (Kafka's -1).
    Latest,
    /// The record with the largest timestamp (Kafka's -3, KIP-734).
    MaxTimestamp,
    /// The first record at or after this time, in ms since the epoch (never negative).
    Timestamp(i64),
}

impl OffsetSpec {
    /// From Kafka's wire timestamp: -2, -1, -3 or a time in ms; below -3 is
    /// INVALID_REQUEST.
    pub fn from_wire(ts: i64) -> Result<OffsetSpec, KafkaError> {
        match ts {
            -2 => Ok(OffsetSpec::Earliest),
            -1 => Ok(OffsetSpec::Latest),
            -3 => Ok(OffsetSpec::MaxTimestamp),
            ts if ts >= 0 => Ok(OffsetSpec::Timestamp(ts)),
            ts => Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("unsupported timestamp {ts}: use -3, -2, -1 or a time in ms"),
            )),
        }
    }

    /// Kafka's wire timestamp.
    pub fn to_wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// What a ListOffsets found: an offset and, for a timestamp lookup, the record's
/// timestamp (None for earliest and latest, which name no record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp_ms: Option<i64>,
}

/// Where a partition's produced batches went. A produce answers `None` for a partition
/// with acks=0: the append goes on, nobody waits for it.
#[derive(Clone, Debug)]
pub struct ProduceResult {
    pub base_offset: Offset,
    pub record_count: i32,
    pub log_append_time: Option<i64>,
    pub log_start_offset: Offset,
}

/// One partition a consumer fetch asks for.
#[derive(Clone, Debug)]
pub struct FetchPartitionParams {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub max_bytes: usize,
}

/// A partition's offsets as a fetch reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchOffsets {
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// One partition's answer to a fetch, in request order.
#[derive(Clone, Debug)]
pub struct FetchedPartition {
    pub tp: TopicPartition,
    pub error: Option<KafkaError>,
    /// None when the partition is not served here (its error says why).
    pub offsets: Option<FetchOffsets>,
    /// Whole batches as the log holds them (a read of the tail shares its buffers).
    pub records: StoredRecords,
}

impl FetchedPartition {
    /// An answer with nothing read: `error` says why.
    pub fn failed(tp: TopicPartition, error: KafkaError) -> Self {
        Self {
            tp,
            error: Some(error),
            offsets: None,
            records: StoredRecords::default(),
        }
    }
}

/// One partition of a replica fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetchPartition {
    pub tp: TopicPartition,
    /// The follower's log end offset: where to read from, and its progress.
    pub fetch_offset: Offset,
    /// The epoch of the follower's last batch (None: its log is empty).
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// The leader epoch the follower follows; the leader checks it against its own.
    pub current_leader_epoch: LeaderEpoch,
    pub max_bytes: usize,
}

/// A follower's fetch from its leader (Kafka's Fetch with a replica id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub replica: BrokerId,
    /// Long-poll: wait up to this long when there is nothing new for any partition.
    pub max_wait_ms: u64,
    pub max_bytes: usize,
    pub partitions: Vec<ReplicaFetchPartition>,
}

/// The log's bounds as the leader reports them to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBounds {
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// What a replica fetch read of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRead {
    pub high_watermark: Offset,
    pub bounds: LogBounds,
    /// Whole batches as stored by the leader, to be written as received.
    pub records: StoredRecords,
}

/// One partition's answer to a replica fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaFetchOutcome {
    /// Not read on this pass (a long-poll re-reads only the partitions that changed).
    Unread,
    Read(ReplicaRead),
    /// Why not; with the leader's bounds when the follower needs them to go on
    /// (OFFSET_OUT_OF_RANGE).
    Failed {
        error: KafkaError,
        bounds: Option<LogBounds>,
    },
}

/// One partition's answer, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetched {
    pub tp: TopicPartition,
    pub outcome: ReplicaFetchOutcome,
}

impl ReplicaFetched {
    /// Whether the follower has anything to act on: records or an error.
    pub fn has_news(&self) -> bool {
        match &self.outcome {
            ReplicaFetchOutcome::Unread => false,
            ReplicaFetchOutcome::Read(r) => !r.records.is_empty(),
            ReplicaFetchOutcome::Failed { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_map_kafka_wire_values() {
        let table = [
            (0, Some(Acks::None)),
            (1, Some(Acks::Leader)),
            (-1, Some(Acks::All)),
            (2, None),
            (-2, None),
            (7, None),
        ];
        for (wire, want) in table {
            match (Acks::from_wire(wire), want) {
                (Ok(got), Some(want)) => {
                    assert_eq!(got, want, "{wire}");
                    assert_eq!(got.to_wire(), wire);
                }
                (Err(e), None) => {
                    assert_eq!(e.code, ErrorCode::InvalidRequiredAcks);
                    assert_eq!(
                        e.message,
                        format!("acks must be -1 (all), 0 or 1, got {wire}")
                    );
                }
                (got, want) => panic!("{wire}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn offset_specs_map_kafka_wire_timestamps() {
        let table = [
            (-2, Some(OffsetSpec::Earliest)),
            (-1, Some(OffsetSpec::Latest)),
            (-3, Some(OffsetSpec::MaxTimestamp)),
            (0, Some(OffsetSpec::Timestamp(0))),
            (
                1_700_000_000_000,
                Some(OffsetSpec::Timestamp(1_700_000_000_000)),
            ),
            (-4, None),
            (i64::MIN, None),
        ];
        for (wire, want) in table {
            match (OffsetSpec::from_wire(wire), want) {
                (Ok(got), Some(want)) => {
                    assert_eq!(got, want, "{wire}");
                    assert_eq!(got.to_wire(), wire);
                }
                (Err(e), None) => {
                    assert_eq!(e.code, ErrorCode::InvalidRequest);
                    assert_eq!(
                        e.message,
                        format!("unsupported timestamp {wire}: use -3, -2, -1 or a time in ms")
                    );
                }
                (got, want) => panic!("{wire}: got {got:?}, want {want:?}"),
            }
        }
    }
}
