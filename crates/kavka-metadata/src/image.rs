//! The metadata image: brokers, topics with their partitions, configs, ACLs. Immutable;
//! the maps sit behind `Arc`s so replay copies only what a batch touches.

use crate::records::{
    ConfigResource, MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
    TopicId, TopicRecord,
};
use crate::replay::ReplayError;
use kavka_model::acl::Acls;
use kavka_model::quota::{QuotaEntity, QuotaKey, QuotaValue};
use kavka_model::scram::{ScramCredential, ScramMechanism};
use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name, e.g. `grpc` or `kafka`.
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub incarnation_id: uuid::Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl BrokerRegistration {
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// Eligible leader replicas (KIP-966): out of the ISR but known to hold every
    /// committed record.
    pub eligible_leader_replicas: Vec<BrokerId>,
    /// `NO_LEADER` (-1) when offline.
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// Replicas an ongoing reassignment adds (in `replicas` too); empty when none is.
    #[serde(default)]
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas an ongoing reassignment removes (in `replicas` until it completes).
    #[serde(default)]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    pub fn has_leader(&self) -> bool {
        self.leader != crate::NO_LEADER
    }

    /// True while a reassignment is moving this partition.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas it is moving to: `replicas` without those being removed (all of them
    /// when no reassignment is ongoing).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing_replicas.contains(b))
            .collect()
    }

    /// The replicas it had before the reassignment: `replicas` without those being added.
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.adding_replicas.contains(b))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: TopicId,
    pub name: TopicName,
    pub partitions: BTreeMap<PartitionId, PartitionRegistration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// The metadata log offset of the last record in this image (-1: empty).
    pub offset: i64,
    pub cluster_id: Option<String>,
    /// The first producer id not yet handed out (InitProducerId).
    pub next_producer_id: i64,
    /// The broker the last block went to (kept so a snapshot repeats the record).
    pub(crate) producer_ids_broker: Option<BrokerId>,
    pub(crate) brokers: Arc<BTreeMap<BrokerId, BrokerRegistration>>,
    pub(crate) topics: Arc<BTreeMap<TopicId, Arc<TopicImage>>>,
    pub(crate) topic_ids: Arc<BTreeMap<TopicName, TopicId>>,
    pub(crate) configs: Arc<BTreeMap<ConfigResource, BTreeMap<String, String>>>,
    pub(crate) acls: Arc<Acls>,
    pub(crate) scram: Arc<BTreeMap<(String, ScramMechanism), ScramCredential>>,
    /// Client quotas by entity; an entity with no quota left is not kept.
    pub(crate) client_quotas: Arc<BTreeMap<QuotaEntity, BTreeMap<QuotaKey, QuotaValue>>>,
    /// Registered brokers being decommissioned: their replicas move off and none is
    /// placed on them. Unregistering a broker takes it out.
    pub(crate) decommissioned: Arc<BTreeSet<BrokerId>>,
}

impl MetadataImage {
    pub fn empty() -> Self {
        Self {
            offset: -1,
            ..Self::default()
        }
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Whether `id` is being decommissioned (its replicas move away, none is placed on it).
    pub fn is_decommissioned(&self, id: BrokerId) -> bool {
        self.decommissioned.contains(&id)
    }

    /// The brokers being decommissioned.
    pub fn decommissioned_brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.decommissioned.iter().copied()
    }

    /// Brokers that may lead and host replicas.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values().map(Arc::as_ref)
    }

    pub fn topic(&self, id: TopicId) -> Option<&TopicImage> {
        self.topics.get(&id).map(Arc::as_ref)
    }

    pub fn topic_by_name(&self, name: &TopicName) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topic(*id))
    }

    pub fn partition(
        &self,
        topic: TopicId,
        partition: PartitionId,
    ) -> Option<&PartitionRegistration> {
        self.topic(topic).and_then(|t| t.partitions.get(&partition))
    }

    /// The cluster's ACLs.
    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// A user's SCRAM credential for `mechanism`.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(&(user.to_string(), mechanism))
    }

    /// Every user with a SCRAM credential, with their credentials, by name.
    pub fn scram_users(&self) -> impl Iterator<Item = (&str, &ScramCredential)> {
        self.scram.iter().map(|((name, _), c)| (name.as_str(), c))
    }

    /// Every entity with client quotas, with them, by entity.
    pub fn client_quotas(
        &self,
    ) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<QuotaKey, QuotaValue>)> {
        self.client_quotas.iter()
    }

    /// The `key` quota set on exactly `entity`.
    pub fn client_quota(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<QuotaValue> {
        self.client_quotas
            .get(entity)
            .and_then(|q| q.get(&key))
            .copied()
    }

    /// Config overrides of a resource (empty if none).
    pub fn configs(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        self.configs.get(resource).cloned().unwrap_or_default()
    }

    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// The records that rebuild this image from empty (a snapshot, as in Kafka): replaying
    /// them with [`MetadataImage::from_snapshot`] gives an equal image.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetadataRecord::Cluster {
                cluster_id: cluster_id.clone(),
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            }));
        }
        out.extend(self.decommissioned.iter().map(|&broker_id| {
            MetadataRecord::BrokerDecommission {
                broker_id,
                decommissioned: true,
            }
        }));
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            }));
            for (&partition, p) in &t.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: t.id,
                    partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding_replicas: p.adding_replicas.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                }));
                if !p.eligible_leader_replicas.is_empty() {
                    // A change record would bump the partition epoch: write the ELR through
                    // a change and compensate by recording the epoch one lower first.
                    if let Some(MetadataRecord::Partition(last)) = out.last_mut() {
                        last.partition_epoch -= 1;
                    }
                    out.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                        eligible_leader_replicas: Some(p.eligible_leader_replicas.clone()),
                        ..PartitionChangeRecord::new(t.id, partition)
                    }));
                }
            }
        }
        if let Some(broker_id) = self.producer_ids_broker {
            out.push(MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id: self.next_producer_id,
            });
        }
        for (resource, configs) in self.configs.iter() {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        out.extend(self.acls.iter().cloned().map(MetadataRecord::Acl));
        out.extend(
            self.scram
                .iter()
                .map(|((name, _), c)| MetadataRecord::UserScramCredential {
                    name: name.clone(),
                    credential: c.clone(),
                }),
        );
        for (entity, quotas) in self.client_quotas.iter() {
            out.extend(
                quotas
                    .iter()
                    .map(|(key, value)| MetadataRecord::ClientQuota {
                        entity: entity.clone(),
                        key: *key,
                        value: Some(*value),
                    }),
            );
        }
        out
    }

    /// A digest of the image's content (not its offset): two images with equal content
    /// have equal digests, on any node running the same build.
    pub fn digest(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in self.snapshot_records() {
            format!("{r:?}").hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// Rebuilds an image from [`MetadataImage::snapshot_records`] taken at `offset`.
    pub fn from_snapshot(offset: i64, records: &[MetadataRecord]) -> Result<Self, ReplayError> {
        let (mut image, _, refused) = MetadataImage::empty().replay(0, records);
        if let Some((_, e)) = refused.into_iter().next() {
            return Err(e);
        }
        image.offset = offset;
        Ok(image)
    }
}
