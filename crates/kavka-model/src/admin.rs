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

/// Which leader an ElectLeaders asks for (Kafka's `ElectionType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElectionType {
    /// Leadership back to the first replica, where it is live and in the ISR.
    #[default]
    Preferred,
    /// A leaderless partition gets any live replica, in or out of the ISR: committed
    /// records may be lost.
    Unclean,
}

impl ElectionType {
    /// Kafka's wire value: 0 preferred, 1 unclean; anything else is not an election type.
    pub fn from_wire(v: i8) -> Option<Self> {
        match v {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }

    pub fn to_wire(self) -> i8 {
        match self {
            Self::Preferred => 0,
            Self::Unclean => 1,
        }
    }
}

/// What one partition of a leader election or reassignment came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub topic: String,
    pub partition: PartitionId,
    /// Elections: ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE (preferred),
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE (unclean). Reassignments:
    /// INVALID_REPLICA_ASSIGNMENT, REASSIGNMENT_IN_PROGRESS, NO_REASSIGNMENT_IN_PROGRESS.
    /// Both: UNKNOWN_TOPIC_OR_PARTITION.
    pub result: Result<(), KafkaError>,
}

/// One partition of an AlterPartitionReassignments: move it to `target` (preferred leader
/// first), or cancel its ongoing move (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMove {
    pub partition: PartitionRef,
    pub target: Option<Vec<BrokerId>>,
}

/// A partition being moved (Kafka's OngoingPartitionReassignment), with its ISR and
/// leader so a caller sees how far it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingMove {
    pub topic: String,
    pub partition: PartitionId,
    /// The target's replicas, then those being removed.
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
}

/// A move the balancer plans: a partition's replicas now and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMove {
    pub topic: String,
    pub partition: PartitionId,
    pub from: Vec<BrokerId>,
    pub to: Vec<BrokerId>,
}

/// A partition the balancer cannot move off a drained broker, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckPartition {
    pub topic: String,
    pub partition: PartitionId,
    pub reason: String,
}

/// The balancer's plan: drains first, then the moves that even the load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalancePlan {
    pub moves: Vec<PlannedMove>,
    pub stuck: Vec<StuckPartition>,
    /// An executed balance found nothing to move and nothing moving, and moved leadership
    /// to the preferred replicas: the cluster is balanced, leaders included.
    pub balanced: bool,
}

/// A partition named by a client for an election or a move: the topic as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: PartitionId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_types_on_the_wire() {
        for (wire, want) in [
            (0, Some(ElectionType::Preferred)),
            (1, Some(ElectionType::Unclean)),
            (2, None),
            (-1, None),
        ] {
            assert_eq!(ElectionType::from_wire(wire), want, "{wire}");
            if let Some(t) = want {
                assert_eq!(t.to_wire(), wire);
            }
        }
    }
}
