//! Kavka's shared vocabulary: the ids, offsets and epochs every other crate speaks in,
//! Kafka's error codes, topic names and typed topic configs; the broker API's data and
//! admin types (`data`, `admin`, `epoch`); ACLs and the authorization decision (`acl`);
//! client quotas and their rate measurement (`quota`).
//!
//! Invariants: no I/O and no async here; every type validates on construction from
//! untrusted input (`TopicName::new`, `TopicConfig::from_overrides`), so a value of these
//! types is always valid.

pub mod acl;
pub mod admin;
mod broker_config;
mod config;
pub mod data;
pub mod epoch;
mod error;
pub mod failure_log;
mod ids;
pub mod logs;
pub mod partitioner;
pub mod quota;
pub mod raft_voters;
pub mod scram;
mod stored_records;
mod topic;

pub use broker_config::{DYNAMIC_BROKER_KEYS, DynamicBrokerConfig};
pub use config::{
    CleanupPolicy, CompressionType, ConfigEntry, ConfigError, ConfigSource, DirtyRatio,
    TimestampType, TopicConfig,
};
pub use error::{ErrorCode, KafkaError, RecordIndexError};
pub use ids::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicId};
pub use stored_records::StoredRecords;
pub use topic::{TopicName, TopicNameError, TopicPartition};
