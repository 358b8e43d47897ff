//! Metadata records: every decision the active controller makes is one of these, committed
//! in the metadata log. Names follow Kafka's KRaft records.

use kavka_model::acl::AclBinding;
use kavka_model::quota::{QuotaEntity, QuotaKey, QuotaValue};
use kavka_model::scram::{ScramCredential, ScramMechanism};
use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use serde::{Deserialize, Serialize};

pub use kavka_model::TopicId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: BrokerId,
    /// New on every process start: a restarted broker replaces its old registration.
    pub incarnation_id: uuid::Uuid,
    pub endpoints: Vec<crate::image::Endpoint>,
    pub rack: Option<String>,
    /// Brokers register fenced and are unfenced once caught up with the metadata log.
    pub fenced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: TopicName,
    pub topic_id: TopicId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: PartitionId,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (KIP-455); empty when none is ongoing.
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas an ongoing reassignment removes once the added ones are in sync.
    #[serde(default)]
    pub removing_replicas: Vec<BrokerId>,
}

/// A change to a partition; absent fields are unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub topic_id: TopicId,
    pub partition: PartitionId,
    pub leader: Option<BrokerId>,
    pub isr: Option<Vec<BrokerId>>,
    pub replicas: Option<Vec<BrokerId>>,
    /// Eligible leader replicas (KIP-966).
    pub eligible_leader_replicas: Option<Vec<BrokerId>>,
    /// Replicas a reassignment adds; `Some(vec![])` ends the reassignment.
    #[serde(default)]
    pub adding_replicas: Option<Vec<BrokerId>>,
    /// Replicas a reassignment removes; `Some(vec![])` ends the reassignment.
    #[serde(default)]
    pub removing_replicas: Option<Vec<BrokerId>>,
}

impl PartitionChangeRecord {
    /// A change that changes nothing yet; set the fields that change.
    pub fn new(topic_id: TopicId, partition: PartitionId) -> Self {
        Self {
            topic_id,
            partition,
            leader: None,
            isr: None,
            replicas: None,
            eligible_leader_replicas: None,
            adding_replicas: None,
            removing_replicas: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(TopicName),
    Broker(BrokerId),
    /// Cluster-wide broker defaults.
    Cluster,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Written once, first: the cluster's id.
    Cluster {
        cluster_id: String,
    },
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker {
        broker_id: BrokerId,
    },
    /// A broker is decommissioned (`true`: every replica moves off it and none is placed
    /// on it; it keeps serving until it is empty) or taken back into service (`false`).
    BrokerDecommission {
        broker_id: BrokerId,
        decommissioned: bool,
    },
    FenceBroker {
        broker_id: BrokerId,
        incarnation_id: uuid::Uuid,
    },
    UnfenceBroker {
        broker_id: BrokerId,
        incarnation_id: uuid::Uuid,
    },
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic {
        topic_id: TopicId,
    },
    /// A block of producer ids went to a broker (Kafka's `ProducerIdsRecord`): every id
    /// below `next_producer_id` has been handed out, so none is given twice.
    ProducerIds {
        broker_id: BrokerId,
        next_producer_id: i64,
    },
    /// Sets (`Some`) or removes (`None`) one config of a resource.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// An ACL is created (Kafka's `AccessControlEntryRecord`); one already there is no
    /// change.
    Acl(AclBinding),
    /// An ACL is deleted (Kafka's `RemoveAccessControlEntryRecord`); one not there is no
    /// change.
    RemoveAcl(AclBinding),
    /// A user's SCRAM credential for one mechanism is set (Kafka's
    /// `UserScramCredentialRecord`): salted keys, never the password.
    UserScramCredential {
        name: String,
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism is removed.
    RemoveUserScramCredential {
        name: String,
        mechanism: ScramMechanism,
    },
    /// A client quota is set (`Some`) or removed (`None`) on an entity (Kafka's
    /// `ClientQuotaRecord`).
    ClientQuota {
        entity: QuotaEntity,
        key: QuotaKey,
        value: Option<QuotaValue>,
    },
}
