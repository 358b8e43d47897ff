//! Pure replay: `(image, records) -> (image, delta)`.

use crate::delta::MetadataDelta;
use crate::image::{BrokerRegistration, MetadataImage, PartitionRegistration, TopicImage};
use crate::records::{ConfigResource, MetadataRecord, TopicId};
use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A committed record that does not apply to the image it meets. Replay is deterministic,
/// so every node refuses the same records; the image stays as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {broker_id} has incarnation {current}, the record names {stale}")]
    StaleIncarnation {
        broker_id: BrokerId,
        current: uuid::Uuid,
        stale: uuid::Uuid,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(TopicName),
    #[error("topic id {0} already exists")]
    TopicIdExists(TopicId),
    #[error("topic {0} does not exist")]
    UnknownTopic(TopicId),
    #[error("partition {partition} of topic {topic_id} does not exist")]
    UnknownPartition {
        topic_id: TopicId,
        partition: PartitionId,
    },
    #[error("partition {partition} of topic {topic_id} already exists")]
    PartitionExists {
        topic_id: TopicId,
        partition: PartitionId,
    },
    #[error("cluster id is already {0}")]
    ClusterIdSet(String),
    #[error("producer ids would go back to {next} (already handed out below {current})")]
    ProducerIdsBackwards { next: i64, current: i64 },
}

impl MetadataImage {
    /// Replays a batch of records committed at consecutive offsets from `first_offset`.
    /// Records that do not apply are skipped and returned with their offsets.
    pub fn replay<'a>(
        &self,
        first_offset: i64,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> (MetadataImage, MetadataDelta, Vec<(i64, ReplayError)>) {
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        let mut refused = Vec::new();
        for (offset, record) in (first_offset..).zip(records) {
            if let Err(e) = next.apply(record, &mut delta) {
                refused.push((offset, e));
            }
            next.offset = offset;
        }
        (next, delta, refused)
    }

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicImage, ReplayError> {
        let topics = Arc::make_mut(&mut self.topics);
        let topic = topics.get_mut(&id).ok_or(ReplayError::UnknownTopic(id))?;
        Ok(Arc::make_mut(topic))
    }

    fn broker_mut(
        &mut self,
        id: BrokerId,
        incarnation: uuid::Uuid,
    ) -> Result<&mut BrokerRegistration, ReplayError> {
        let b = Arc::make_mut(&mut self.brokers)
            .get_mut(&id)
            .ok_or(ReplayError::UnknownBroker(id))?;
        if b.incarnation_id != incarnation {
            return Err(ReplayError::StaleIncarnation {
                broker_id: id,
                current: b.incarnation_id,
                stale: incarnation,
            });
        }
        Ok(b)
    }

    /// Applies one record, or changes nothing and says why.
    fn apply(
        &mut self,
        record: &MetadataRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::Cluster { cluster_id } => {
                if let Some(existing) = &self.cluster_id {
                    return Err(ReplayError::ClusterIdSet(existing.clone()));
                }
                self.cluster_id = Some(cluster_id.clone());
            }
            MetadataRecord::RegisterBroker(r) => {
                Arc::make_mut(&mut self.brokers).insert(
                    r.broker_id,
                    BrokerRegistration {
                        broker_id: r.broker_id,
                        incarnation_id: r.incarnation_id,
                        endpoints: r.endpoints.clone(),
                        rack: r.rack.clone(),
                        fenced: r.fenced,
                    },
                );
                delta.brokers.insert(r.broker_id);
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                Arc::make_mut(&mut self.brokers)
                    .remove(broker_id)
                    .ok_or(ReplayError::UnknownBroker(*broker_id))?;
                if self.decommissioned.contains(broker_id) {
                    Arc::make_mut(&mut self.decommissioned).remove(broker_id);
                }
                delta.brokers.insert(*broker_id);
            }
            MetadataRecord::BrokerDecommission {
                broker_id,
                decommissioned,
            } => {
                if !self.brokers.contains_key(broker_id) {
                    return Err(ReplayError::UnknownBroker(*broker_id));
                }
                let set = Arc::make_mut(&mut self.decommissioned);
                if *decommissioned {
                    set.insert(*broker_id);
                } else {
                    set.remove(broker_id);
                }
                delta.brokers.insert(*broker_id);
            }
            MetadataRecord::FenceBroker {
                broker_id,
                incarnation_id,
            } => {
                self.broker_mut(*broker_id, *incarnation_id)?.fenced = true;
                delta.brokers.insert(*broker_id);
            }
            MetadataRecord::UnfenceBroker {
                broker_id,
                incarnation_id,
            } => {
                self.broker_mut(*broker_id, *incarnation_id)?.fenced = false;
                delta.brokers.insert(*broker_id);
            }
            MetadataRecord::Topic(t) => {
                if self.topic_ids.contains_key(&t.name) {
                    return Err(ReplayError::TopicExists(t.name.clone()));
                }
                if self.topics.contains_key(&t.topic_id) {
                    return Err(ReplayError::TopicIdExists(t.topic_id));
                }
                Arc::make_mut(&mut self.topics).insert(
                    t.topic_id,
                    Arc::new(TopicImage {
                        id: t.topic_id,
                        name: t.name.clone(),
                        partitions: BTreeMap::new(),
                    }),
                );
                Arc::make_mut(&mut self.topic_ids).insert(t.name.clone(), t.topic_id);
                delta.created_topics.insert(t.topic_id);
            }
            MetadataRecord::Partition(p) => {
                let topic = self.topic_mut(p.topic_id)?;
                if topic.partitions.contains_key(&p.partition) {
                    return Err(ReplayError::PartitionExists {
                        topic_id: p.topic_id,
                        partition: p.partition,
                    });
                }
                topic.partitions.insert(
                    p.partition,
                    PartitionRegistration {
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        eligible_leader_replicas: Vec::new(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                        adding_replicas: p.adding_replicas.clone(),
                        removing_replicas: p.removing_replicas.clone(),
                    },
                );
                delta.partitions.insert((p.topic_id, p.partition));
            }
            MetadataRecord::PartitionChange(c) => {
                let topic = self.topic_mut(c.topic_id)?;
                let p = topic.partitions.get_mut(&c.partition).ok_or(
                    ReplayError::UnknownPartition {
                        topic_id: c.topic_id,
                        partition: c.partition,
                    },
                )?;
                if let Some(leader) = c.leader
                    && leader != p.leader
                {
                    p.leader = leader;
                    p.leader_epoch = LeaderEpoch(p.leader_epoch.0 + 1);
                }
                if let Some(isr) = &c.isr {
                    p.isr = isr.clone();
                }
                if let Some(replicas) = &c.replicas {
                    p.replicas = replicas.clone();
                }
                if let Some(elr) = &c.eligible_leader_replicas {
                    p.eligible_leader_replicas = elr.clone();
                }
                if let Some(adding) = &c.adding_replicas {
                    p.adding_replicas = adding.clone();
                }
                if let Some(removing) = &c.removing_replicas {
                    p.removing_replicas = removing.clone();
                }
                p.partition_epoch += 1;
                delta.partitions.insert((c.topic_id, c.partition));
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = Arc::make_mut(&mut self.topics)
                    .remove(topic_id)
                    .ok_or(ReplayError::UnknownTopic(*topic_id))?;
                Arc::make_mut(&mut self.topic_ids).remove(&topic.name);
                Arc::make_mut(&mut self.configs).remove(&ConfigResource::Topic(topic.name.clone()));
                delta.created_topics.remove(topic_id);
                delta.partitions.retain(|(t, _)| t != topic_id);
                delta.removed_topics.push((*topic_id, topic.name.clone()));
            }
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id,
            } => {
                if *next_producer_id <= self.next_producer_id {
                    return Err(ReplayError::ProducerIdsBackwards {
                        next: *next_producer_id,
                        current: self.next_producer_id,
                    });
                }
                self.next_producer_id = *next_producer_id;
                self.producer_ids_broker = Some(*broker_id);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = Arc::make_mut(&mut self.configs);
                match value {
                    Some(v) => {
                        configs
                            .entry(resource.clone())
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    None => {
                        if let Some(m) = configs.get_mut(resource) {
                            m.remove(name);
                            if m.is_empty() {
                                configs.remove(resource);
                            }
                        }
                    }
                }
                delta.configs.insert(resource.clone());
            }
            MetadataRecord::Acl(b) => {
                if !self.acls.contains(b) {
                    Arc::make_mut(&mut self.acls).add(b.clone());
                    delta.acls = true;
                }
            }
            MetadataRecord::UserScramCredential { name, credential } => {
                Arc::make_mut(&mut self.scram)
                    .insert((name.clone(), credential.mechanism), credential.clone());
                delta.scram_users.insert(name.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if Arc::make_mut(&mut self.scram)
                    .remove(&(name.clone(), *mechanism))
                    .is_some()
                {
                    delta.scram_users.insert(name.clone());
                }
            }
            MetadataRecord::RemoveAcl(b) => {
                if self.acls.contains(b) {
                    Arc::make_mut(&mut self.acls).remove(b);
                    delta.acls = true;
                }
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let quotas = Arc::make_mut(&mut self.client_quotas);
                match value {
                    Some(v) => {
                        quotas.entry(entity.clone()).or_default().insert(*key, *v);
                    }
                    None => {
                        if let Some(q) = quotas.get_mut(entity) {
                            q.remove(key);
                            if q.is_empty() {
                                quotas.remove(entity);
                            }
                        }
                    }
                }
                delta.client_quotas = true;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NO_LEADER;
    use crate::image::Endpoint;
    use crate::records::{
        PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicRecord,
    };

    fn b(id: i32) -> BrokerId {
        BrokerId(id)
    }

    fn inc(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    fn tid(n: u128) -> TopicId {
        TopicId(uuid::Uuid::from_u128(n))
    }

    fn name(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn register(id: i32, incarnation: u128) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: b(id),
            incarnation_id: inc(incarnation),
            endpoints: vec![Endpoint {
                name: "grpc".into(),
                host: format!("h{id}"),
                port: 9093,
            }],
            rack: None,
            fenced: true,
        })
    }

    fn topic(n: u128, s: &str, partitions: i32, replicas: &[i32]) -> Vec<MetadataRecord> {
        let mut out = vec![MetadataRecord::Topic(TopicRecord {
            name: name(s),
            topic_id: tid(n),
        })];
        for p in 0..partitions {
            let r: Vec<BrokerId> = replicas.iter().map(|&i| b(i)).collect();
            out.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: tid(n),
                partition: PartitionId(p),
                replicas: r.clone(),
                isr: r.clone(),
                leader: r[0],
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            }));
        }
        out
    }

    fn replay_all(
        records: &[MetadataRecord],
    ) -> (MetadataImage, MetadataDelta, Vec<(i64, ReplayError)>) {
        MetadataImage::empty().replay(0, records)
    }

    #[test]
    fn brokers_register_fence_unfence_and_reregister() {
        let records = [
            register(1, 10),
            register(2, 20),
            MetadataRecord::UnfenceBroker {
                broker_id: b(1),
                incarnation_id: inc(10),
            },
            MetadataRecord::UnfenceBroker {
                broker_id: b(2),
                incarnation_id: inc(20),
            },
            MetadataRecord::FenceBroker {
                broker_id: b(2),
                incarnation_id: inc(20),
            },
            // Broker 2 restarts with a new incarnation; the old one's fence is stale.
            register(2, 21),
            MetadataRecord::FenceBroker {
                broker_id: b(2),
                incarnation_id: inc(20),
            },
        ];
        let (img, delta, refused) = replay_all(&records);
        assert_eq!(img.offset, 6);
        assert!(!img.broker(b(1)).unwrap().fenced);
        let b2 = img.broker(b(2)).unwrap();
        assert_eq!((b2.incarnation_id, b2.fenced), (inc(21), true));
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, 6);
        assert!(matches!(refused[0].1, ReplayError::StaleIncarnation { .. }));
        assert_eq!(delta.brokers.len(), 2);
        assert_eq!(img.unfenced_brokers().count(), 1);
    }

    #[test]
    fn partition_changes_bump_epochs_by_kafkas_rules() {
        let mut records = topic(1, "orders", 1, &[1, 2, 3]);
        let p0 = PartitionId(0);
        // Table: (change, expected leader, leader epoch, partition epoch, isr)
        let table: Vec<(PartitionChangeRecord, i32, i32, i32, Vec<i32>)> = vec![
            // ISR shrink: partition epoch only.
            (
                PartitionChangeRecord {
                    isr: Some(vec![b(1), b(2)]),
                    ..PartitionChangeRecord::new(tid(1), p0)
                },
                1,
                0,
                1,
                vec![1, 2],
            ),
            // Leader change: both epochs.
            (
                PartitionChangeRecord {
                    leader: Some(b(2)),
                    isr: Some(vec![b(2)]),
                    ..PartitionChangeRecord::new(tid(1), p0)
                },
                2,
                1,
                2,
                vec![2],
            ),
            // "Change" to the same leader: no leader epoch bump.
            (
                PartitionChangeRecord {
                    leader: Some(b(2)),
                    ..PartitionChangeRecord::new(tid(1), p0)
                },
                2,
                1,
                3,
                vec![2],
            ),
            // Offline.
            (
                PartitionChangeRecord {
                    leader: Some(NO_LEADER),
                    isr: Some(vec![]),
                    ..PartitionChangeRecord::new(tid(1), p0)
                },
                -1,
                2,
                4,
                vec![],
            ),
        ];
        let mut img = replay_all(&records).0;
        for (change, leader, leader_epoch, partition_epoch, isr) in table {
            records.push(MetadataRecord::PartitionChange(change.clone()));
            let (next, delta, refused) =
                img.replay(img.offset + 1, [&MetadataRecord::PartitionChange(change)]);
            assert!(refused.is_empty());
            assert!(delta.partitions.contains(&(tid(1), p0)));
            let p = next.partition(tid(1), p0).unwrap();
            assert_eq!(p.leader, b(leader));
            assert_eq!(p.leader_epoch, LeaderEpoch(leader_epoch));
            assert_eq!(p.partition_epoch, partition_epoch);
            assert_eq!(p.isr, isr.into_iter().map(b).collect::<Vec<_>>());
            img = next;
        }
        // One batch or many: the same image.
        let (all_at_once, _, _) = replay_all(&records);
        assert_eq!(all_at_once, img);
    }

    #[test]
    fn topics_are_created_and_removed_with_their_configs() {
        let mut records = topic(1, "a", 2, &[1]);
        records.extend(topic(2, "b", 1, &[1]));
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(name("a")),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        let (img, delta, refused) = replay_all(&records);
        assert!(refused.is_empty());
        assert_eq!(img.partition_count(), 3);
        assert_eq!(delta.created_topics.len(), 2);
        assert_eq!(
            img.configs(&ConfigResource::Topic(name("a")))["retention.ms"],
            "1000"
        );

        let (next, delta, _) = img.replay(
            img.offset + 1,
            [&MetadataRecord::RemoveTopic { topic_id: tid(1) }],
        );
        assert!(next.topic_by_name(&name("a")).is_none());
        assert!(next.configs(&ConfigResource::Topic(name("a"))).is_empty());
        assert_eq!(delta.removed_topics, vec![(tid(1), name("a"))]);
        // The old image is untouched: images are immutable.
        assert!(img.topic_by_name(&name("a")).is_some());
        // The name can be used again, with a new id.
        let (again, _, refused) = next.replay(next.offset + 1, &topic(3, "a", 1, &[1]));
        assert!(refused.is_empty());
        assert_eq!(again.topic_by_name(&name("a")).unwrap().id, tid(3));
    }

    #[test]
    fn records_that_do_not_apply_are_refused_and_change_nothing() {
        let mut records = topic(1, "a", 1, &[1]);
        records.extend([
            MetadataRecord::Topic(TopicRecord {
                name: name("a"),
                topic_id: tid(9),
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(tid(1), PartitionId(5))),
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(tid(7), PartitionId(0))),
            MetadataRecord::FenceBroker {
                broker_id: b(4),
                incarnation_id: inc(1),
            },
            MetadataRecord::RemoveTopic { topic_id: tid(8) },
            MetadataRecord::ProducerIds {
                broker_id: b(1),
                next_producer_id: 1000,
            },
            // Producer ids never go back: an id handed out is never handed out again.
            MetadataRecord::ProducerIds {
                broker_id: b(2),
                next_producer_id: 1000,
            },
        ]);
        let (img, _, refused) = replay_all(&records);
        let kinds: Vec<String> = refused.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        assert!(kinds[5].contains("producer ids would go back"), "{kinds:?}");
        assert_eq!(img.next_producer_id, 1000);
        assert!(kinds[0].contains("topic 'a' already exists"));
        assert_eq!(img.topics().count(), 1);
        assert_eq!(
            img.partition(tid(1), PartitionId(0))
                .unwrap()
                .partition_epoch,
            0
        );
    }

    #[test]
    fn snapshots_rebuild_the_same_image_and_records_serialize() {
        let mut records = vec![
            MetadataRecord::Cluster {
                cluster_id: "c1".into(),
            },
            register(1, 1),
            register(2, 2),
        ];
        records.extend(topic(1, "a", 2, &[1, 2]));
        records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
            leader: Some(b(2)),
            isr: Some(vec![b(2)]),
            eligible_leader_replicas: Some(vec![b(1)]),
            ..PartitionChangeRecord::new(tid(1), PartitionId(1))
        }));
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Broker(b(1)),
            name: "x".into(),
            value: Some("y".into()),
        });
        records.push(MetadataRecord::ProducerIds {
            broker_id: b(2),
            next_producer_id: 2000,
        });
        let (img, _, refused) = replay_all(&records);
        assert!(refused.is_empty());
        let snap = img.snapshot_records();
        let json = serde_json::to_string(&snap).unwrap();
        let back: Vec<MetadataRecord> = serde_json::from_str(&json).unwrap();
        assert_eq!(
            MetadataImage::from_snapshot(img.offset, &back).unwrap(),
            img
        );
        let r = register(1, 1);
        assert_eq!(
            serde_json::from_str::<MetadataRecord>(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn decommissions_are_kept_until_recommissioned_or_unregistered_and_kept_in_snapshots() {
        let decommission = |b: i32, on: bool| MetadataRecord::BrokerDecommission {
            broker_id: BrokerId(b),
            decommissioned: on,
        };
        // (record, replay refused, decommissioned after)
        let table: [(MetadataRecord, bool, &[i32]); 6] = [
            (decommission(9, true), true, &[]),
            (decommission(1, true), false, &[1]),
            (decommission(1, true), false, &[1]),
            (decommission(1, false), false, &[]),
            (decommission(2, true), false, &[2]),
            (
                MetadataRecord::UnregisterBroker {
                    broker_id: BrokerId(2),
                },
                false,
                &[],
            ),
        ];
        let (mut img, _, _) = MetadataImage::empty().replay(0, [&register(1, 1), &register(2, 1)]);
        for (record, refused, want) in table {
            let (next, delta, r) = img.replay(img.offset + 1, [&record]);
            assert_eq!(!r.is_empty(), refused, "{record:?}");
            let got: Vec<i32> = next.decommissioned_brokers().map(|b| b.0).collect();
            assert_eq!(got, want, "{record:?}");
            assert_eq!(delta.is_empty(), refused, "{record:?}");
            img = next;
        }
        let (img, _, _) = img.replay(img.offset + 1, [&decommission(1, true)]);
        let restored = MetadataImage::from_snapshot(img.offset, &img.snapshot_records()).unwrap();
        assert_eq!(restored, img);
        assert!(restored.is_decommissioned(BrokerId(1)));
    }

    #[test]
    fn acls_are_created_once_removed_once_and_kept_in_snapshots() {
        use kavka_model::acl::{
            AclBinding, AclEntry, AuthorizerConfig, Operation, PatternType, Permission, Principal,
            Resource, ResourcePattern, ResourceType,
        };
        let write_orders = AclBinding {
            pattern: ResourcePattern::new(ResourceType::Topic, "orders", PatternType::Literal)
                .unwrap(),
            entry: AclEntry {
                principal: Principal::user("alice"),
                host: "*".into(),
                operation: Operation::Write,
                permission: Permission::Allow,
            },
        };
        let alice = Principal::user("alice");
        let may_write = |img: &MetadataImage| {
            img.acls()
                .authorize(
                    &AuthorizerConfig::default(),
                    &alice,
                    "h",
                    Operation::Write,
                    Resource::topic("orders"),
                )
                .is_allowed()
        };
        let img = MetadataImage::empty();
        assert!(!may_write(&img));
        // (record) -> (ACLs after, delta says changed)
        let table = [
            (MetadataRecord::Acl(write_orders.clone()), 1, true),
            (MetadataRecord::Acl(write_orders.clone()), 1, false),
            (MetadataRecord::RemoveAcl(write_orders.clone()), 0, true),
            (MetadataRecord::RemoveAcl(write_orders.clone()), 0, false),
            (MetadataRecord::Acl(write_orders.clone()), 1, true),
        ];
        let mut img = img;
        for (record, count, changed) in table {
            let (next, delta, refused) = img.replay(img.offset + 1, [&record]);
            assert!(refused.is_empty());
            assert_eq!(next.acls().len(), count, "{record:?}");
            assert_eq!(delta.acls, changed, "{record:?}");
            assert_eq!(delta.is_empty(), !changed);
            img = next;
        }
        assert!(may_write(&img));
        let restored = MetadataImage::from_snapshot(img.offset, &img.snapshot_records()).unwrap();
        assert_eq!(restored, img);
        assert!(may_write(&restored));
    }

    #[test]
    fn client_quotas_are_set_replaced_removed_and_kept_in_snapshots() {
        use kavka_model::quota::{EntityName, QuotaEntity, QuotaKey};
        let alice = QuotaEntity::new(Some(EntityName::Name("alice".into())), None).unwrap();
        let key = QuotaKey::ProducerByteRate;
        let set = |v: f64| MetadataRecord::ClientQuota {
            entity: alice.clone(),
            key,
            value: Some(key.value(v).unwrap()),
        };
        let remove = MetadataRecord::ClientQuota {
            entity: alice.clone(),
            key,
            value: None,
        };
        // (record, quota after, entities after)
        let table = [
            (set(1024.0), Some(1024.0), 1),
            (set(2048.0), Some(2048.0), 1),
            (remove.clone(), None, 0),
            (remove, None, 0),
            (set(4096.0), Some(4096.0), 1),
        ];
        let mut img = MetadataImage::empty();
        for (record, want, entities) in table {
            let (next, delta, refused) = img.replay(img.offset + 1, [&record]);
            assert!(refused.is_empty());
            assert!(delta.client_quotas && !delta.is_empty());
            assert_eq!(
                next.client_quota(&alice, key).map(|v| v.get()),
                want,
                "{record:?}"
            );
            assert_eq!(next.client_quotas().count(), entities);
            img = next;
        }
        let restored = MetadataImage::from_snapshot(img.offset, &img.snapshot_records()).unwrap();
        assert_eq!(restored, img);
    }
}
