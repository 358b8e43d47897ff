//! The broker API's vocabulary for a broker's partition logs as they are on disk:
//! DescribeLogDirs (where the logs live and how big they are), DescribeProducers (the
//! idempotent producers a partition's leader knows) and DeleteRecords (moving a log's
//! start forward).
//!
//! Invariants: no sentinels — an unknown size or time is `None`, never `-1`.

use crate::{KafkaError, Offset, TopicPartition};

/// One log directory of a broker (Kavka has one: its data dir).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDir {
    pub path: String,
    /// Set when the directory cannot be read (Kafka's KAFKA_STORAGE_ERROR).
    pub error: Option<KafkaError>,
    /// The volume's size and free bytes; `None` where they could not be read.
    pub total_bytes: Option<u64>,
    pub usable_bytes: Option<u64>,
    /// The replicas asked about that this broker hosts, in partition order.
    pub replicas: Vec<ReplicaLog>,
}

/// One hosted replica's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLog {
    pub partition: TopicPartition,
    pub size_bytes: u64,
    /// How far the log end is behind the high watermark this replica knows (Kafka's
    /// `offsetLag` for a current log): 0 on a leader.
    pub offset_lag: i64,
}

/// An idempotent producer a partition's log knows (Kafka's DescribeProducers entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The sequence number of its last record.
    pub last_sequence: i32,
    /// The largest timestamp of its batches, if known.
    pub last_timestamp: Option<i64>,
}

/// A DeleteRecords outcome for one partition: the log's new start (Kafka's low
/// watermark), or why nothing was deleted.
pub type DeletedRecords = Result<Offset, KafkaError>;
