//! Control managers, Kafka-style: pure functions `(image, request) -> (records, reply)`.
//! They decide and return records; they never mutate anything. Only the active
//! controller runs them, and a decision takes effect only once its records commit.

pub mod acls;
pub mod balance;
pub mod broker_configs;
pub mod brokers;
pub mod decommission;
pub mod liveness;
pub mod partitions;
pub mod placement;
pub mod producer_ids;
pub mod quotas;
pub mod reassign;
pub mod topics;
pub mod users;

use kavka_metadata::{ConfigResource, MetadataImage, MetadataRecord, TopicImage};
use kavka_model::{KafkaError, PartitionId, TopicConfig};
use std::collections::BTreeMap;

/// One partition's outcome of an election or a move: (topic as named, partition, result).
pub type ElectionResult = (String, PartitionId, Result<(), KafkaError>);

/// The configs in effect for topic `t`.
pub(crate) fn topic_config(image: &MetadataImage, t: &TopicImage) -> TopicConfig {
    TopicConfig::from_stored(&image.configs(&ConfigResource::Topic(t.name.clone()))).0
}

/// What a control manager decided: the records to propose and the reply to give once
/// they commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<R> {
    pub records: Vec<MetadataRecord>,
    pub reply: R,
}

/// Config records that delete `delete` (those present) and set `set` on `resource`,
/// applying them to `configs`, its configs until now.
pub(crate) fn config_changes(
    resource: &ConfigResource,
    configs: &mut BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for k in delete {
        if configs.remove(k).is_some() {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: k.clone(),
                value: None,
            });
        }
    }
    for (k, v) in set {
        configs.insert(k.clone(), v.clone());
        records.push(MetadataRecord::Config {
            resource: resource.clone(),
            name: k.clone(),
            value: Some(v.clone()),
        });
    }
    records
}
