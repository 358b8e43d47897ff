//! Golden files pin the bytes of every record type, of a batch and of a snapshot; each is
//! decoded back to the value it was made from. Regenerate with
//! `KAVKA_UPDATE_GOLDEN=1 cargo test -p kavka-metadata codec` (and review the diff: old
//! data must still read).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use super::*;
use crate::golden;
use kavka_model::acl::{
    AclBinding, AclEntry, Operation, PatternType, Permission, Principal, ResourcePattern,
    ResourceType,
};
use kavka_model::quota::{EntityName, QuotaEntity};
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn topic_id() -> TopicId {
    TopicId(uuid::Uuid::from_u128(
        0x0011_2233_4455_6677_8899_aabb_ccdd_eeff,
    ))
}

fn incarnation() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xfeed_beef_0000_0000_0000_0000_0000_0042)
}

/// The golden file of a record's type. The match has no wildcard: a new record type does
/// not compile until it has a name here, and [`samples`] must then cover it.
fn golden_name(r: &MetadataRecord) -> &'static str {
    match r {
        MetadataRecord::Cluster { .. } => "record-cluster.bin",
        MetadataRecord::RegisterBroker(_) => "record-register-broker.bin",
        MetadataRecord::UnregisterBroker { .. } => "record-unregister-broker.bin",
        MetadataRecord::BrokerDecommission { .. } => "record-broker-decommission.bin",
        MetadataRecord::FenceBroker { .. } => "record-fence-broker.bin",
        MetadataRecord::UnfenceBroker { .. } => "record-unfence-broker.bin",
        MetadataRecord::Topic(_) => "record-topic.bin",
        MetadataRecord::Partition(_) => "record-partition.bin",
        MetadataRecord::PartitionChange(_) => "record-partition-change.bin",
        MetadataRecord::RemoveTopic { .. } => "record-remove-topic.bin",
        MetadataRecord::ProducerIds { .. } => "record-producer-ids.bin",
        MetadataRecord::Config { .. } => "record-config.bin",
        MetadataRecord::Acl(_) => "record-acl.bin",
        MetadataRecord::RemoveAcl(_) => "record-remove-acl.bin",
        MetadataRecord::UserScramCredential { .. } => "record-user-scram-credential.bin",
        MetadataRecord::RemoveUserScramCredential { .. } => {
            "record-remove-user-scram-credential.bin"
        }
        MetadataRecord::ClientQuota { .. } => "record-client-quota.bin",
    }
}

/// One fixed value of every record type (some types twice, for optional fields).
pub(crate) fn samples() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::Cluster {
            cluster_id: "kavka-cluster-1".into(),
        },
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: BrokerId(2),
            incarnation_id: incarnation(),
            endpoints: vec![
                Endpoint {
                    name: "grpc".into(),
                    host: "10.0.0.2".into(),
                    port: 9092,
                },
                Endpoint {
                    name: "kafka".into(),
                    host: "broker-2.local".into(),
                    port: 19092,
                },
            ],
            rack: Some("rack-a".into()),
            fenced: true,
        }),
        MetadataRecord::UnregisterBroker {
            broker_id: BrokerId(3),
        },
        MetadataRecord::BrokerDecommission {
            broker_id: BrokerId(3),
            decommissioned: true,
        },
        MetadataRecord::FenceBroker {
            broker_id: BrokerId(2),
            incarnation_id: incarnation(),
        },
        MetadataRecord::UnfenceBroker {
            broker_id: BrokerId(2),
            incarnation_id: incarnation(),
        },
        MetadataRecord::Topic(TopicRecord {
            name: TopicName::new("orders").unwrap(),
            topic_id: topic_id(),
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: topic_id(),
            partition: PartitionId(4),
            replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
            isr: vec![BrokerId(1), BrokerId(3)],
            leader: BrokerId(3),
            leader_epoch: LeaderEpoch(7),
            partition_epoch: 12,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: topic_id(),
            partition: PartitionId(5),
            replicas: vec![BrokerId(4), BrokerId(2), BrokerId(1)],
            isr: vec![BrokerId(2), BrokerId(1)],
            leader: BrokerId(1),
            leader_epoch: LeaderEpoch(2),
            partition_epoch: 3,
            adding_replicas: vec![BrokerId(4)],
            removing_replicas: vec![BrokerId(1)],
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            leader: Some(BrokerId(-1)),
            isr: Some(vec![]),
            replicas: None,
            eligible_leader_replicas: Some(vec![BrokerId(1)]),
            ..PartitionChangeRecord::new(topic_id(), PartitionId(4))
        }),
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            replicas: Some(vec![BrokerId(4), BrokerId(2)]),
            adding_replicas: Some(vec![]),
            removing_replicas: Some(vec![]),
            ..PartitionChangeRecord::new(topic_id(), PartitionId(5))
        }),
        MetadataRecord::RemoveTopic {
            topic_id: topic_id(),
        },
        MetadataRecord::ProducerIds {
            broker_id: BrokerId(1),
            next_producer_id: 5_000,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Topic(TopicName::new("orders").unwrap()),
            name: "retention.ms".into(),
            value: Some("86400000".into()),
        },
        MetadataRecord::Config {
            resource: ConfigResource::Broker(BrokerId(2)),
            name: "log.retention.bytes".into(),
            value: None,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Cluster,
            name: "min.insync.replicas".into(),
            value: Some("2".into()),
        },
        MetadataRecord::Acl(acl(
            ResourceType::Topic,
            "events-",
            PatternType::Prefixed,
            "User:analytics",
            Operation::Read,
            Permission::Allow,
        )),
        MetadataRecord::Acl(acl(
            ResourceType::Cluster,
            kavka_model::acl::CLUSTER_NAME,
            PatternType::Literal,
            "User:*",
            Operation::AlterConfigs,
            Permission::Deny,
        )),
        MetadataRecord::UserScramCredential {
            name: "alice".into(),
            credential: kavka_model::scram::ScramCredential {
                mechanism: kavka_model::scram::ScramMechanism::Sha512,
                salt: vec![1, 2, 3, 4],
                stored_key: vec![0xaa; 64],
                server_key: vec![0xbb; 64],
                iterations: 8192,
            },
        },
        MetadataRecord::RemoveUserScramCredential {
            name: "bob".into(),
            mechanism: kavka_model::scram::ScramMechanism::Sha256,
        },
        MetadataRecord::RemoveAcl(acl(
            ResourceType::Group,
            "billing",
            PatternType::Literal,
            "User:bob",
            Operation::All,
            Permission::Allow,
        )),
        MetadataRecord::ClientQuota {
            entity: QuotaEntity::new(
                Some(EntityName::Name("alice".into())),
                Some(EntityName::Name("app".into())),
            )
            .unwrap(),
            key: QuotaKey::ProducerByteRate,
            value: Some(QuotaKey::ProducerByteRate.value(1_048_576.0).unwrap()),
        },
        MetadataRecord::ClientQuota {
            entity: QuotaEntity::new(None, Some(EntityName::Default)).unwrap(),
            key: QuotaKey::RequestPercentage,
            value: Some(QuotaKey::RequestPercentage.value(12.5).unwrap()),
        },
        MetadataRecord::ClientQuota {
            entity: QuotaEntity::new(Some(EntityName::Default), None).unwrap(),
            key: QuotaKey::ConsumerByteRate,
            value: None,
        },
    ]
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern::new(resource_type, name, pattern_type).unwrap(),
        entry: AclEntry {
            principal: Principal::parse(principal).unwrap(),
            host: "*".into(),
            operation,
            permission,
        },
    }
}

#[test]
fn every_record_type_has_a_golden_file_that_decodes_back() {
    let mut covered = std::collections::BTreeSet::new();
    let mut by_type: std::collections::BTreeMap<&str, Vec<MetadataRecord>> = Default::default();
    for r in samples() {
        by_type.entry(golden_name(&r)).or_default().push(r);
    }
    for (name, records) in by_type {
        // Each type's file is a batch of that type's samples.
        let bytes = golden::check(&golden_dir(), name, &encode_batch(&records));
        assert_eq!(decode_batch(&bytes).unwrap(), records, "{name}");
        covered.insert(name);
    }
    // Every `record-*.bin` on disk is a type the samples cover, and the other way round.
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("record-"))
        .collect();
    let covered: std::collections::BTreeSet<String> =
        covered.into_iter().map(String::from).collect();
    assert_eq!(on_disk, covered);
    assert_eq!(covered.len(), 17, "one golden file per MetadataRecord type");
}

#[test]
fn a_snapshot_has_a_golden_file_that_decodes_back() {
    let records = samples();
    let bytes = golden::check(
        &golden_dir(),
        "snapshot.bin",
        &encode_snapshot(41, &records),
    );
    assert_eq!(decode_snapshot(&bytes).unwrap(), (41, records));
}

#[test]
fn blobs_carry_the_format_byte_and_other_formats_are_named() {
    let bytes = encode_batch(&samples());
    assert_eq!(bytes[0], FORMAT_V1);
    let cases: &[(&[u8], DecodeError)] = &[
        (b"", DecodeError::Empty),
        (b"[{\"Cluster\":{}}]", DecodeError::LegacyJson('[')),
        (b"{\"offset\":1}", DecodeError::LegacyJson('{')),
        (b"null", DecodeError::LegacyJson('n')),
        (&[2, 0, 0], DecodeError::UnknownFormat(2)),
    ];
    for (input, want) in cases {
        assert_eq!(decode_batch(input).unwrap_err(), *want, "{input:?}");
    }
    assert!(
        decode_snapshot(b"{}")
            .unwrap_err()
            .to_string()
            .contains("JSON")
    );
}

#[test]
fn a_bad_record_fails_the_whole_batch_naming_the_record_and_field() {
    let good = v1::MetadataRecordV1::from(&samples()[0]);
    let short_id = v1::MetadataRecordV1 {
        record: Some(Record::RemoveTopic(v1::RemoveTopicRecord {
            topic_id: vec![1, 2, 3].into(),
        })),
    };
    let cases: Vec<(v1::MetadataRecordV1, &str)> = vec![
        (
            short_id,
            "record 1 of the batch: RemoveTopicRecord.topic_id is invalid",
        ),
        (
            v1::MetadataRecordV1 { record: None },
            "record 1 of the batch: MetadataRecordV1.record is missing",
        ),
        (
            v1::MetadataRecordV1 {
                record: Some(Record::Config(v1::ConfigRecord {
                    resource: None,
                    name: "x".into(),
                    value: None,
                })),
            },
            "ConfigRecord.resource is missing",
        ),
        (
            v1::MetadataRecordV1 {
                record: Some(Record::Topic(v1::TopicRecord {
                    name: "".into(),
                    topic_id: uuid_bytes(&topic_id().0),
                })),
            },
            "TopicRecord.name is invalid",
        ),
        (
            v1::MetadataRecordV1 {
                record: Some(Record::RegisterBroker(v1::RegisterBrokerRecord {
                    incarnation_id: uuid_bytes(&incarnation()),
                    endpoints: vec![v1::BrokerEndpoint {
                        name: "grpc".into(),
                        host: "h".into(),
                        port: 70_000,
                    }],
                    ..Default::default()
                })),
            },
            "BrokerEndpoint.port is invalid",
        ),
    ];
    let acl_record = |operation: i32, principal: &str| v1::MetadataRecordV1 {
        record: Some(Record::Acl(v1::Acl {
            resource_type: 2,
            resource_name: "orders".into(),
            pattern_type: 3,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: 3,
        })),
    };
    let quota_record = |entity_type: &str, key: &str, value: Option<f64>| v1::MetadataRecordV1 {
        record: Some(Record::ClientQuota(v1::ClientQuotaRecord {
            entity: vec![v1::QuotaEntityComponent {
                entity_type: entity_type.into(),
                entity_name: Some("alice".into()),
            }],
            key: key.into(),
            value,
        })),
    };
    let cases = cases.into_iter().chain([
        (
            acl_record(99, "User:a"),
            "AclRecord: operation is invalid: no such code 99",
        ),
        (
            acl_record(1, "User:a"),
            "AclRecord: operation is invalid: no such code 1",
        ),
        (
            acl_record(4, "alice"),
            "AclRecord: invalid principal 'alice'",
        ),
        (
            quota_record("user", "producer_byte_rate", Some(-1.0)),
            "ClientQuotaRecord.value is invalid: Quota producer_byte_rate must be greater than 0",
        ),
        (
            quota_record("user", "bogus", Some(1.0)),
            "ClientQuotaRecord.key is invalid: Invalid configuration key bogus",
        ),
        (
            quota_record("group", "producer_byte_rate", None),
            "ClientQuotaRecord.entity is invalid: Unhandled client quota entity type: group",
        ),
    ]);
    for (bad, want) in cases {
        let batch = frame(&v1::MetadataRecordBatch {
            records: vec![good.clone(), bad],
        });
        let e = decode_batch(&batch).unwrap_err().to_string();
        assert!(e.contains(want), "{e} does not contain {want}");
    }
    let mut truncated = encode_batch(&samples());
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(
        decode_batch(&truncated),
        Err(DecodeError::Protobuf { .. })
    ));
}
