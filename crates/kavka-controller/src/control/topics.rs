//! Topic creation and deletion, and topic config changes.

use super::placement::{check_manual, place};
use super::{Decision, config_changes};
use kavka_metadata::{
    ConfigResource, MetadataImage, MetadataRecord, NO_LEADER, PartitionRecord, TopicId, TopicRecord,
};
use kavka_model::{
    BrokerId, ErrorCode, KafkaError, LeaderEpoch, PartitionId, TopicConfig, TopicName,
};
use std::collections::{BTreeMap, BTreeSet};

/// Most partitions one topic may have (each is a directory and open files on a broker).
pub const TOPIC_PARTITIONS_MAX: i32 = 100_000;

/// One topic to create: the broker API's request, as the controller receives it (no
/// sentinels: `None` partitions or replication factor take the defaults).
pub use kavka_model::admin::NewTopic as CreateTopic;

/// Grows a topic to `count` partitions (Kafka's CreatePartitions): the broker API's
/// request, as the controller receives it.
pub use kavka_model::admin::NewPartitions as GrowTopic;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicDefaults {
    pub partitions: i32,
    pub replication_factor: i32,
}

/// Creates topics: validates each, places its replicas, and returns its records; one
/// result per request, in order. `new_id` supplies topic ids (random in production).
pub fn create_topics(
    image: &MetadataImage,
    requests: &[CreateTopic],
    defaults: TopicDefaults,
    mut new_id: impl FnMut() -> TopicId,
) -> Decision<Vec<Result<TopicId, KafkaError>>> {
    let mut records = Vec::new();
    let mut replies = Vec::with_capacity(requests.len());
    let mut seen = BTreeSet::new();
    // Placement must see the partitions created earlier in this same request.
    let mut planned = image.clone();
    for req in requests {
        let reply = create_one(&planned, req, defaults, &mut new_id, &mut seen).map(
            |(id, topic_records)| {
                planned = planned.replay(planned.offset + 1, &topic_records).0;
                records.extend(topic_records);
                id
            },
        );
        replies.push(reply);
    }
    Decision {
        records,
        reply: replies,
    }
}

/// Kafka's KRaft metadata log as a topic name: never created by a client.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's `Topic.unifyCollisionChars`.
fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

fn create_one(
    image: &MetadataImage,
    req: &CreateTopic,
    defaults: TopicDefaults,
    new_id: &mut impl FnMut() -> TopicId,
    seen: &mut BTreeSet<TopicName>,
) -> Result<(TopicId, Vec<MetadataRecord>), KafkaError> {
    let name = TopicName::new(req.name.clone())
        .map_err(|e| KafkaError::new(ErrorCode::InvalidTopicException, e.to_string()))?;
    if image.topic_by_name(&name).is_some() || seen.contains(&name) {
        return Err(KafkaError::new(
            ErrorCode::TopicAlreadyExists,
            format!("topic '{name}' already exists"),
        ));
    }
    if name.as_str() == CLUSTER_METADATA_TOPIC {
        return Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited"),
        ));
    }
    // Kafka's rule: '.' and '_' collide in metric names, so two topics may not differ
    // only by them.
    if let Some(other) = image
        .topics()
        .map(|t| &t.name)
        .chain(seen.iter())
        .find(|other| unify_collision_chars(other.as_str()) == unify_collision_chars(name.as_str()))
    {
        return Err(KafkaError::new(
            ErrorCode::InvalidTopicException,
            format!(
                "topic '{name}' collides with existing topic '{other}' ('.' and '_' are treated alike)"
            ),
        ));
    }
    seen.insert(name.clone());
    TopicConfig::from_overrides(&req.configs)
        .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e.to_string()))?;
    let partitions = if req.assignments.is_empty() {
        placed(image, req, defaults)?
    } else {
        assigned(image, req)?
    };

    let topic_id = new_id();
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: name.clone(),
        topic_id,
    })];
    records.extend(
        partitions
            .into_iter()
            .enumerate()
            .map(|(p, (replicas, isr))| {
                new_partition(topic_id, PartitionId(p as i32), replicas, isr)
            }),
    );
    for (k, v) in &req.configs {
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(name.clone()),
            name: k.clone(),
            value: Some(v.clone()),
        });
    }
    Ok((topic_id, records))
}

/// A new partition's replicas and ISR.
type NewReplicas = (Vec<BrokerId>, Vec<BrokerId>);

/// A new partition led by the first of its ISR.
fn new_partition(
    topic_id: TopicId,
    partition: PartitionId,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        leader: isr.first().copied().unwrap_or(NO_LEADER),
        isr,
        replicas,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
        adding_replicas: vec![],
        removing_replicas: vec![],
    })
}

fn partition_count_in_range(partitions: i32) -> Result<(), KafkaError> {
    if partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX {
        return Err(KafkaError::new(
            ErrorCode::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {TOPIC_PARTITIONS_MAX}, got {partitions}"
            ),
        ));
    }
    Ok(())
}

/// Partitions placed by the controller from a count and replication factor.
fn placed(
    image: &MetadataImage,
    req: &CreateTopic,
    defaults: TopicDefaults,
) -> Result<Vec<NewReplicas>, KafkaError> {
    let partitions = req.partitions.unwrap_or(defaults.partitions);
    partition_count_in_range(partitions)?;
    let live = image.unfenced_brokers().count() as i32;
    let rf = req
        .replication_factor
        .unwrap_or_else(|| defaults.replication_factor.min(live.max(1)));
    Ok(place(image, partitions as usize, rf as usize)?
        .into_iter()
        .map(|r| (r.clone(), r))
        .collect())
}

/// Partitions as the client assigned them, checked as Kafka checks them.
fn assigned(image: &MetadataImage, req: &CreateTopic) -> Result<Vec<NewReplicas>, KafkaError> {
    if req.partitions.is_some() || req.replication_factor.is_some() {
        return Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!(
                "a manual partition assignment was given, so the number of partitions and the replication factor must be -1, got {} and {}",
                req.partitions.unwrap_or(-1),
                req.replication_factor.unwrap_or(-1)
            ),
        ));
    }
    partition_count_in_range(i32::try_from(req.assignments.len()).unwrap_or(i32::MAX))?;
    let mut by_partition: BTreeMap<PartitionId, NewReplicas> = BTreeMap::new();
    let mut rf = None;
    for (p, replicas) in &req.assignments {
        if by_partition.contains_key(p) {
            return Err(KafkaError::new(
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "found multiple manual partition assignments for partition {}",
                    p.0
                ),
            ));
        }
        let isr = check_manual(image, *p, replicas, rf)?;
        rf = Some(replicas.len());
        by_partition.insert(*p, (replicas.clone(), isr));
    }
    // Keys are distinct, so they are 0..n exactly when the last is n - 1.
    if by_partition
        .keys()
        .enumerate()
        .any(|(i, p)| p.0 != i as i32)
    {
        return Err(KafkaError::new(
            ErrorCode::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence",
        ));
    }
    Ok(by_partition.into_values().collect())
}

/// Deletes topics by name; one result per name.
pub fn delete_topics(
    image: &MetadataImage,
    names: &[String],
) -> Decision<Vec<Result<TopicId, KafkaError>>> {
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    let reply = names
        .iter()
        .map(|n| {
            let topic = TopicName::new(n.clone())
                .ok()
                .and_then(|name| image.topic_by_name(&name))
                .filter(|t| seen.insert(t.id))
                .ok_or_else(|| {
                    KafkaError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic '{n}' does not exist"),
                    )
                })?;
            records.push(MetadataRecord::RemoveTopic { topic_id: topic.id });
            Ok(topic.id)
        })
        .collect();
    Decision { records, reply }
}

/// Grows topics to new partition counts (Kafka's CreatePartitions): the new partitions
/// are placed like a new topic's, with the topic's replication factor, or as the client
/// assigned them; one result per request, in order. Existing partitions are untouched.
pub fn create_partitions(
    image: &MetadataImage,
    requests: &[GrowTopic],
) -> Decision<Vec<Result<TopicId, KafkaError>>> {
    let mut records = Vec::new();
    let mut planned = image.clone();
    let mut seen = BTreeSet::new();
    let reply = requests
        .iter()
        .map(|req| {
            let GrowTopic { name, count, .. } = req;
            let topic = TopicName::new(name.clone())
                .ok()
                .and_then(|n| planned.topic_by_name(&n))
                .ok_or_else(|| {
                    KafkaError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic '{name}' does not exist"),
                    )
                })?;
            if !seen.insert(topic.id) {
                return Err(KafkaError::new(
                    ErrorCode::InvalidRequest,
                    format!("topic '{name}' is listed twice"),
                ));
            }
            let current = topic.partitions.len() as i32;
            if *count <= current || *count > TOPIC_PARTITIONS_MAX {
                return Err(KafkaError::new(
                    ErrorCode::InvalidPartitions,
                    format!(
                        "topic '{name}' has {current} partitions: the new count must be greater, and at most {TOPIC_PARTITIONS_MAX}, got {count}"
                    ),
                ));
            }
            let rf = topic
                .partitions
                .values()
                .next()
                .map_or(1, |p| p.replicas.len());
            let id = topic.id;
            let added = (count - current) as usize;
            let replicas: Vec<NewReplicas> = if req.assignments.is_empty() {
                place(&planned, added, rf)?
                    .into_iter()
                    .map(|r| (r.clone(), r))
                    .collect()
            } else if req.assignments.len() != added {
                return Err(KafkaError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "attempted to add {added} additional partition(s), but only {} assignment(s) were specified",
                        req.assignments.len()
                    ),
                ));
            } else {
                req.assignments
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let p = PartitionId(current + i as i32);
                        Ok((r.clone(), check_manual(&planned, p, r, Some(rf))?))
                    })
                    .collect::<Result<_, KafkaError>>()?
            };
            let new: Vec<MetadataRecord> = replicas
                .into_iter()
                .enumerate()
                .map(|(i, (r, isr))| new_partition(id, PartitionId(current + i as i32), r, isr))
                .collect();
            planned = planned.replay(planned.offset + 1, &new).0;
            records.extend(new);
            Ok(id)
        })
        .collect();
    Decision { records, reply }
}

/// Sets and removes topic config overrides; the reply is the resulting overrides.
pub fn alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Decision<Result<BTreeMap<String, String>, KafkaError>> {
    let refuse = |e: KafkaError| Decision {
        records: vec![],
        reply: Err(e),
    };
    let Some(name) = TopicName::new(topic)
        .ok()
        .filter(|n| image.topic_by_name(n).is_some())
    else {
        return refuse(KafkaError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("topic '{topic}' does not exist"),
        ));
    };
    let resource = ConfigResource::Topic(name);
    for k in delete {
        if let Err(e) = TopicConfig::check_key(k) {
            return refuse(KafkaError::new(ErrorCode::InvalidConfig, e.to_string()));
        }
    }
    let mut overrides = image.configs(&resource);
    let records = config_changes(&resource, &mut overrides, set, delete);
    // What is set now meets today's rules; what was stored before stays as it was.
    if let Err(e) = TopicConfig::from_overrides(set) {
        return refuse(KafkaError::new(ErrorCode::InvalidConfig, e.to_string()));
    }
    Decision {
        records,
        reply: Ok(overrides),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::RegisterBrokerRecord;
    use kavka_model::BrokerId;

    fn cluster(brokers: i32) -> MetadataImage {
        let records: Vec<MetadataRecord> = (1..=brokers)
            .map(|id| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: BrokerId(id),
                    incarnation_id: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    fenced: false,
                })
            })
            .collect();
        MetadataImage::empty().replay(0, &records).0
    }

    fn ids() -> impl FnMut() -> TopicId {
        let mut n = 0u128;
        move || {
            n += 1;
            TopicId(uuid::Uuid::from_u128(n))
        }
    }

    const DEFAULTS: TopicDefaults = TopicDefaults {
        partitions: 1,
        replication_factor: 3,
    };

    fn req(name: &str, partitions: Option<i32>, rf: Option<i32>) -> CreateTopic {
        CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            assignments: vec![],
        }
    }

    fn grow(name: &str, count: i32) -> GrowTopic {
        GrowTopic {
            name: name.into(),
            count,
            assignments: vec![],
        }
    }

    #[test]
    fn create_topics_table() {
        let img = cluster(3);
        let mut bad_config = req("cfg", Some(1), Some(1));
        bad_config
            .configs
            .insert("retention.mss".into(), "1".into());
        // (request, expected error code or None)
        let table = vec![
            (req("orders", Some(6), Some(3)), None),
            (
                req("orders", Some(1), Some(1)),
                Some(ErrorCode::TopicAlreadyExists),
            ),
            (req("defaults", None, None), None),
            (
                req("bad/name", Some(1), Some(1)),
                Some(ErrorCode::InvalidTopicException),
            ),
            (
                req("..", Some(1), Some(1)),
                Some(ErrorCode::InvalidTopicException),
            ),
            (
                req("zero", Some(0), Some(1)),
                Some(ErrorCode::InvalidPartitions),
            ),
            (
                req("huge", Some(TOPIC_PARTITIONS_MAX + 1), Some(1)),
                Some(ErrorCode::InvalidPartitions),
            ),
            (
                req("rf4", Some(1), Some(4)),
                Some(ErrorCode::InvalidReplicationFactor),
            ),
            (bad_config, Some(ErrorCode::InvalidConfig)),
            (req("orders.eu", Some(1), Some(1)), None),
            (
                req("orders_eu", Some(1), Some(1)),
                Some(ErrorCode::InvalidTopicException),
            ),
            (
                req("__cluster_metadata", Some(1), Some(1)),
                Some(ErrorCode::InvalidRequest),
            ),
        ];
        let requests: Vec<CreateTopic> = table.iter().map(|(r, _)| r.clone()).collect();
        let d = create_topics(&img, &requests, DEFAULTS, ids());
        for ((r, want), got) in table.iter().zip(&d.reply) {
            assert_eq!(
                got.as_ref().err().map(|e| e.code),
                *want,
                "{}: {got:?}",
                r.name
            );
        }
        let (next, _, refused) = img.replay(img.offset + 1, &d.records);
        assert!(refused.is_empty(), "{refused:?}");
        let orders = next
            .topic_by_name(&TopicName::new("orders").unwrap())
            .unwrap();
        assert_eq!(orders.partitions.len(), 6);
        assert!(
            orders
                .partitions
                .values()
                .all(|p| p.replicas.len() == 3 && p.isr == p.replicas && p.leader == p.replicas[0])
        );
        let defaults = next
            .topic_by_name(&TopicName::new("defaults").unwrap())
            .unwrap();
        assert_eq!(defaults.partitions.len(), 1);
        assert_eq!(defaults.partitions[&PartitionId(0)].replicas.len(), 3);
    }

    #[test]
    fn default_replication_factor_is_capped_at_live_brokers() {
        let d = create_topics(&cluster(1), &[req("t", Some(2), None)], DEFAULTS, ids());
        assert!(d.reply[0].is_ok());
        let next = cluster(1).replay(1, &d.records).0;
        assert_eq!(
            next.topic_by_name(&TopicName::new("t").unwrap())
                .unwrap()
                .partitions[&PartitionId(1)]
                .replicas,
            vec![BrokerId(1)]
        );
    }

    #[test]
    fn create_partitions_table() {
        let img = cluster(3);
        let created = create_topics(&img, &[req("orders", Some(2), Some(2))], DEFAULTS, ids());
        let img = img.replay(img.offset + 1, &created.records).0;
        let d = create_partitions(
            &img,
            &[grow("orders", 5), grow("orders", 6), grow("missing", 3)],
        );
        assert!(d.reply[0].is_ok());
        assert_eq!(
            d.reply[1].as_ref().unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            d.reply[2].as_ref().unwrap_err().code,
            ErrorCode::UnknownTopicOrPartition
        );
        let img = img.replay(img.offset + 1, &d.records).0;
        let t = img
            .topic_by_name(&TopicName::new("orders").unwrap())
            .unwrap();
        assert_eq!(t.partitions.len(), 5);
        for (p, reg) in &t.partitions {
            assert_eq!(
                reg.replicas.len(),
                2,
                "partition {p:?} keeps the topic's RF"
            );
            assert_eq!(reg.leader, reg.replicas[0]);
        }
        for count in [5, 3, TOPIC_PARTITIONS_MAX + 1] {
            let d = create_partitions(&img, &[grow("orders", count)]);
            assert_eq!(
                d.reply[0].as_ref().unwrap_err().code,
                ErrorCode::InvalidPartitions,
                "{count}"
            );
            assert!(d.records.is_empty());
        }
    }

    #[test]
    fn delete_and_alter() {
        let img = cluster(1);
        let d = create_topics(&img, &[req("a", Some(1), Some(1))], DEFAULTS, ids());
        let img = img.replay(img.offset + 1, &d.records).0;

        let d = alter_topic_configs(
            &img,
            "a",
            &BTreeMap::from([("retention.ms".to_string(), "5".to_string())]),
            &[],
        );
        assert_eq!(d.reply.as_ref().unwrap()["retention.ms"], "5");
        let img = img.replay(img.offset + 1, &d.records).0;
        let d = alter_topic_configs(&img, "a", &BTreeMap::new(), &["retention.ms".to_string()]);
        assert!(d.reply.as_ref().unwrap().is_empty());
        let bad = alter_topic_configs(
            &img,
            "a",
            &BTreeMap::from([("retention.ms".to_string(), "x".to_string())]),
            &[],
        );
        assert_eq!(bad.reply.unwrap_err().code, ErrorCode::InvalidConfig);
        assert!(bad.records.is_empty());
        assert_eq!(
            alter_topic_configs(&img, "zz", &BTreeMap::new(), &[])
                .reply
                .unwrap_err()
                .code,
            ErrorCode::UnknownTopicOrPartition
        );

        let d = delete_topics(
            &img,
            &["a".to_string(), "a".to_string(), "missing".to_string()],
        );
        assert!(d.reply[0].is_ok());
        assert_eq!(
            d.reply[1].as_ref().unwrap_err().code,
            ErrorCode::UnknownTopicOrPartition
        );
        assert_eq!(d.records.len(), 1);
        let img = img.replay(img.offset + 1, &d.records).0;
        assert_eq!(img.topics().count(), 0);
    }
}
