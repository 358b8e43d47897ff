//! The port: all the coordinator sees of the broker it runs in (Kafka's
//! `CoordinatorRuntime` over a `PartitionWriter` and leadership events). The broker
//! implements it over its replica manager; tests can implement it over memory.
//!
//! Invariants an implementation keeps:
//! - `append` returns Ok only once the records are in the partition with acks=all (the
//!   coordinator itself serialises its appends to one partition);
//! - `read` returns whole record batches (RecordBatch v2 bytes) from `offset` on, as a
//!   consumer's fetch would: committed records only (below the high watermark);
//! - `watch_applied` changes after every metadata image `metadata` can return, and a
//!   `MetadataView` is one image: its answers agree with each other.
//!
//! This module must not name a broker, gRPC or Kafka protocol type: model types only.

use bytes::Bytes;
use kavka_model::admin::NewTopic;
use kavka_model::{BrokerId, KafkaError, LeaderEpoch, Offset, PartitionId};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// A boxed future, so the port can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a read of an offsets partition returns.
#[derive(Clone, Debug)]
pub struct LogRead {
    /// The partition's log start: a read below it answers OFFSET_OUT_OF_RANGE.
    pub log_start_offset: Offset,
    /// Whole RecordBatch v2 batches from the offset read, or why not.
    pub records: Result<Vec<u8>, KafkaError>,
}

/// One metadata image this broker applied, as far as the coordinator reads it.
pub trait MetadataView: Send + Sync {
    /// How many partitions `topic` has; None when there is no such topic.
    fn partition_count(&self, topic: &str) -> Option<i32>;
    /// The leader of a partition (None while it has none) and its leader epoch; None
    /// when there is no such partition.
    fn leader(
        &self,
        topic: &str,
        partition: PartitionId,
    ) -> Option<(Option<BrokerId>, LeaderEpoch)>;
    /// How many brokers are registered.
    fn broker_count(&self) -> usize;
    /// Calls `f` with the name of every topic.
    fn for_each_topic_name(&self, f: &mut dyn FnMut(&str));
}

/// The coordinator's view of the log of `__consumer_offsets` and of the cluster's
/// metadata.
pub trait CoordinatorLog: Send + Sync + 'static {
    /// This broker's id.
    fn node_id(&self) -> BrokerId;

    /// The metadata image this broker has applied.
    fn metadata(&self) -> Box<dyn MetadataView>;

    /// Changes whenever this broker applies a new metadata image.
    fn watch_applied(&self) -> watch::Receiver<i64>;

    /// Creates a topic (`__consumer_offsets`) through the active controller. The error
    /// is TOPIC_ALREADY_EXISTS when another broker created it first.
    fn create_topic(&self, topic: NewTopic) -> BoxFuture<'_, Result<(), KafkaError>>;

    /// Appends `(key, value)` records (a `None` value: a tombstone) stamped
    /// `timestamp_ms` to `partition` of `__consumer_offsets` with acks=all, waiting at
    /// most `timeout` for the in-sync replicas.
    fn append(
        &self,
        partition: PartitionId,
        records: Vec<(Bytes, Option<Bytes>)>,
        timestamp_ms: i64,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), KafkaError>>;

    /// The log end of `partition` of `__consumer_offsets` on this broker (an error when
    /// this broker does not host it yet).
    fn log_end(&self, partition: PartitionId) -> BoxFuture<'_, Result<Offset, KafkaError>>;

    /// Reads about `max_bytes` of `partition` of `__consumer_offsets` from `offset`,
    /// waiting at most `max_wait` when nothing is readable there yet.
    fn read(
        &self,
        partition: PartitionId,
        offset: Offset,
        max_bytes: usize,
        max_wait: Duration,
    ) -> BoxFuture<'_, LogRead>;
}
