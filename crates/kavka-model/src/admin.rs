//! The broker API's admin vocabulary: what a client asks of the cluster's topics and
//! configs and what it gets back, the same whichever protocol (Kafka or gRPC) it came
//! over. The listeners translate their own messages into these; `kavka-proto`'s `conv`
//! converts them to and from protobuf.
//!
//! Invariants: no sentinels — "the default" is `None`, never `-1` or `0`; every request
//! item gets exactly one outcome, in request order. Topic names stay as the client sent
//! them: the controller validates them and names a bad one in that topic's error.

use crate::{BrokerId, KafkaError, PartitionId, TopicId};
use std::collections::BTreeMap;

/// One topic to create (Kafka's CreatableTopic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// None: `num.partitions`. Must be None with `assignments`.
    pub partitions: Option<i32>,
    /// None: `default.replication.factor`, capped at the live brokers. Must be None with
    /// `assignments`.
    pub replication_factor: Option<i32>,
    /// Topic config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Replicas chosen by the client per partition, the preferred leader first (Kafka's
    /// manual assignment); empty: the controller places them.
    pub assignments: Vec<(PartitionId, Vec<BrokerId>)>,
}

/// Grows a topic to `count` partitions (Kafka's CreatePartitions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPartitions {
    pub name: String,
    /// The new total.
    pub count: i32,
    /// Replicas for each new partition in order; empty: the controller places them.
    pub assignments: Vec<Vec<BrokerId>>,
}

/// What one topic of an admin request came to: its id, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicOutcome {
    pub name: String,
    pub result: Result<TopicId, KafkaError>,
}

/// Whose configs an AlterConfigs changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigTarget {
    /// A topic, named as the client sent it (the controller names a bad one).
    Topic(String),
    /// One broker's dynamic configs.
    Broker(BrokerId),
    /// The cluster-wide dynamic broker defaults.
    Cluster,
}

/// Sets and removes config overrides of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterConfigs {
    pub target: ConfigTarget,
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
    pub validate_only: bool,
}

/// One partition of a preferred leader election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionOutcome {
    pub topic: String,
    pub partition: PartitionId,
    /// ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.
    pub result: Result<(), KafkaError>,
}

/// A partition named by a client for an election: the topic as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: PartitionId,
}
