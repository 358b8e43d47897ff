//! The group coordinator (Kafka's `group-coordinator` module): consumer group membership
//! (the classic protocol, `classic`; KIP-848's consumer protocol, `consumer`) and
//! committed offsets, stored in the internal compacted topic `__consumer_offsets`
//! (`store`), protocol-neutral so the Kafka listener and gRPC map onto it alike.
//!
//! It sees the broker it runs in only through one narrow port, [`CoordinatorLog`]
//! (`log`): append to and read from a `__consumer_offsets` partition, this node's id,
//! the few facts it reads from the applied metadata image (partition counts, leaders,
//! broker count, topic names) and a watch of it, and creating the topic. The broker
//! implements the port over its replica manager.
//!
//! Invariants:
//! - the coordinator of a group is the leader of partition `hash(group) % n` of
//!   `__consumer_offsets` (Kafka's hash: Java's `String.hashCode`); this broker serves a
//!   group only while it leads that partition, and answers NOT_COORDINATOR otherwise;
//! - on becoming leader of a partition (a new leader epoch) the state of its groups is
//!   rebuilt from the partition before any request is served (COORDINATOR_LOAD_IN_PROGRESS
//!   until then); losing leadership drops it, and waiting requests end with
//!   NOT_COORDINATOR;
//! - an offset commit is acknowledged only after its record is in the partition with
//!   acks=all, and becomes visible to OffsetFetch only then; writes to one partition are
//!   serialised, so the in-memory state follows the log's order.
//!
//! This crate must not depend on `kavka-broker`, `kavka-kafka`, `kavka-proto` or `tonic`
//! (check with `cargo tree -p kavka-group`): no protocol type crosses into it, and the
//! broker depends on it, not the other way round.

pub mod classic;
pub mod consumer;
mod coordinator;
mod loader;
mod log;
mod offsets;
pub mod protocol;
pub mod store;

pub use classic::{GroupState, JoinRequest, JoinResult, JoinedMember, SyncRequest, SyncResult};
pub use coordinator::GroupCoordinator;
pub use log::{BoxFuture, CoordinatorLog, LogRead, MetadataView};

use bytes::Bytes;
use kavka_model::{ErrorCode, KafkaError, PartitionId};
use std::time::Duration;

/// The internal topic holding committed offsets and group membership.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Longest group id accepted (Kafka has no limit; a key this long is a mistake).
pub const GROUP_ID_LEN_MAX: usize = 255;

/// How often sessions and join deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How long a write to `__consumer_offsets` may wait for the ISR.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The coordinator's settings (Kafka's names).
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (capped at the brokers registered when the
    /// topic is created, so a one-node cluster gets one).
    pub offsets_topic_replication_factor: i32,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits
    /// this long for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (0: unlimited).
    pub max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// KIP-848 groups: `group.consumer.session.timeout.ms`,
    /// `group.consumer.heartbeat.interval.ms`, and the default of
    /// `group.consumer.assignors` (`uniform` or `range`).
    pub consumer_session_timeout_ms: u64,
    pub consumer_heartbeat_interval_ms: i32,
    pub consumer_assignor: String,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            offsets_topic_num_partitions: 16,
            offsets_topic_replication_factor: 3,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: 0,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignor: "uniform".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One partition's offset to commit.
#[derive(Clone, Debug)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What a JoinGroup ends with when it does not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    Done(JoinResult),
    /// JoinGroup v4+ of a new member: rejoin with this member id.
    MemberIdRequired(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub members: Vec<MemberDescription>,
}

/// Per-partition result of an offsets call.
pub type PartitionOutcome = (String, i32, Result<(), KafkaError>);

/// Kafka's partition for a group: `abs(groupId.hashCode()) % n`.
pub fn partition_for(group_id: &str, partitions: i32) -> PartitionId {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    PartitionId(abs % partitions.max(1))
}

/// Milliseconds since the Unix epoch: the coordinator's clock for commit and state
/// timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn err(code: ErrorCode, msg: impl Into<String>) -> KafkaError {
    KafkaError::new(code, msg)
}

/// INVALID_GROUP_ID for an empty or overlong id.
pub fn validate_group_id(group_id: &str) -> Result<(), KafkaError> {
    if group_id.is_empty() {
        return Err(err(ErrorCode::InvalidGroupId, "the group id is empty"));
    }
    if group_id.len() > GROUP_ID_LEN_MAX {
        return Err(err(
            ErrorCode::InvalidGroupId,
            format!(
                "group id of {} bytes is longer than {GROUP_ID_LEN_MAX}",
                group_id.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_maps_to_kafkas_partition() {
        // (group id, partitions, Kafka's partition: abs(String.hashCode) % n).
        let table = [
            ("", 50, 0),
            ("a", 50, 47),
            ("group", 50, 47),
            ("group", 16, 15),
            // A negative hash code.
            ("my-group", 50, 12),
            ("console-consumer-12345", 16, 2),
            // hashCode is i32::MIN, whose abs Kafka's Utils.abs maps to 0.
            ("polygenelubricants", 50, 0),
            // No partitions yet: never a division by zero.
            ("a", 0, 0),
        ];
        for (group, n, want) in table {
            assert_eq!(partition_for(group, n), PartitionId(want), "{group} of {n}");
        }
    }
}
