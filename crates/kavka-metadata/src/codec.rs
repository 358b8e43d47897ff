//! The metadata log's versioned binary encoding: records as the protobuf messages of
//! `proto/kavka/v1/metadata.proto`, each blob framed by one leading format byte.
//!
//! Invariants:
//! - every blob starts with [`FORMAT_V1`]; a blob in another format (JSON from before this
//!   encoding, or a future format) is refused with an error saying which, never guessed at;
//! - encoding cannot fail (every record has a protobuf form), so a batch is never shipped
//!   empty in place of one that did not encode;
//! - decoding is all or nothing: a batch with one bad record is an error, never the records
//!   that did decode; a missing or invalid field is a [`DecodeError`], never a default;
//! - the bytes of every record type are pinned by golden files (`tests/golden/`).
//!
//! Pure functions on bytes: no I/O. Depends only on `kavka-model`, `kavka-proto`'s
//! generated messages and this crate's record types.

use crate::image::Endpoint;
use crate::records::{
    ConfigResource, MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
    TopicId, TopicRecord,
};
use kavka_model::quota::{QuotaKey, QuotaValue};
use kavka_model::scram::{ScramCredential, ScramMechanism};
use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use kavka_proto::v1;
use kavka_proto::v1::config_resource_ref::Resource;
use kavka_proto::v1::metadata_record_v1::Record;
use prost::Message;

/// The format byte of this encoding (protobuf, `metadata.proto`).
pub const FORMAT_V1: u8 = 1;

/// Why bytes are not metadata in this encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("no bytes (not even a format byte)")]
    Empty,
    #[error(
        "written in the JSON format of kavka before binary metadata (starts with {0:?}); this build reads only format {FORMAT_V1}"
    )]
    LegacyJson(char),
    #[error(
        "unknown metadata format byte {0} (this build reads format {FORMAT_V1}): written by a newer kavka?"
    )]
    UnknownFormat(u8),
    #[error("not a valid {message} message: {reason}")]
    Protobuf {
        message: &'static str,
        reason: String,
    },
    #[error("{message}.{field} is missing")]
    Missing {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} is invalid: {reason}")]
    Invalid {
        message: &'static str,
        field: &'static str,
        reason: String,
    },
    #[error("AclRecord: {0}")]
    Acl(#[from] kavka_model::acl::AclError),
    #[error("record {index} of the batch: {source}")]
    Record {
        index: usize,
        source: Box<DecodeError>,
    },
}

/// True when `bytes` look like the JSON written before this encoding (an object, an array
/// or `null`): what a migration converts.
pub fn is_legacy_json(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(b'{' | b'[' | b'n'))
}

/// `msg` behind the format byte.
pub fn frame(msg: &impl Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + msg.encoded_len());
    out.push(FORMAT_V1);
    msg.encode_raw(&mut out);
    out
}

/// The message behind the format byte; `name` names it in errors.
pub fn unframe<M: Message + Default>(name: &'static str, bytes: &[u8]) -> Result<M, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Empty),
        Some(&FORMAT_V1) => M::decode(&bytes[1..]).map_err(|e| DecodeError::Protobuf {
            message: name,
            reason: e.to_string(),
        }),
        Some(&b) if is_legacy_json(bytes) => Err(DecodeError::LegacyJson(char::from(b))),
        Some(&b) => Err(DecodeError::UnknownFormat(b)),
    }
}

/// One committed batch of records (a Raft entry's payload, a FetchMetadata batch).
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    frame(&batch_to_proto(records))
}

/// The records of a batch, all of them or an error.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    batch_from_proto(unframe("MetadataRecordBatch", bytes)?)
}

/// The image as records at its offset (a snapshot's data, a broker's checkpoint).
pub fn encode_snapshot(offset: i64, records: &[MetadataRecord]) -> Vec<u8> {
    frame(&v1::MetadataSnapshotData {
        offset,
        records: records.iter().map(v1::MetadataRecordV1::from).collect(),
    })
}

/// The offset and records of a snapshot, all of them or an error.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(i64, Vec<MetadataRecord>), DecodeError> {
    let s: v1::MetadataSnapshotData = unframe("MetadataSnapshotData", bytes)?;
    Ok((s.offset, records_from_proto(s.records)?))
}

pub fn batch_to_proto(records: &[MetadataRecord]) -> v1::MetadataRecordBatch {
    v1::MetadataRecordBatch {
        records: records.iter().map(v1::MetadataRecordV1::from).collect(),
    }
}

pub fn batch_from_proto(
    batch: v1::MetadataRecordBatch,
) -> Result<Vec<MetadataRecord>, DecodeError> {
    records_from_proto(batch.records)
}

fn records_from_proto(
    records: Vec<v1::MetadataRecordV1>,
) -> Result<Vec<MetadataRecord>, DecodeError> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            MetadataRecord::try_from(r).map_err(|e| DecodeError::Record {
                index,
                source: Box::new(e),
            })
        })
        .collect()
}

// --- model -> protobuf (cannot fail) ---

fn uuid_bytes(u: &uuid::Uuid) -> prost::bytes::Bytes {
    prost::bytes::Bytes::copy_from_slice(u.as_bytes())
}

fn ids(list: &[BrokerId]) -> Vec<i32> {
    list.iter().map(|b| b.0).collect()
}

fn id_list(list: &Option<Vec<BrokerId>>) -> Option<v1::BrokerIdList> {
    list.as_ref()
        .map(|l| v1::BrokerIdList { broker_ids: ids(l) })
}

impl From<&Endpoint> for v1::BrokerEndpoint {
    fn from(e: &Endpoint) -> Self {
        Self {
            name: e.name.clone(),
            host: e.host.clone(),
            port: u32::from(e.port),
        }
    }
}

impl From<&ConfigResource> for v1::ConfigResourceRef {
    fn from(r: &ConfigResource) -> Self {
        let resource = match r {
            ConfigResource::Topic(t) => Resource::Topic(t.as_str().to_string()),
            ConfigResource::Broker(b) => Resource::Broker(b.0),
            ConfigResource::Cluster => Resource::Cluster(v1::ClusterDefaults {}),
        };
        Self {
            resource: Some(resource),
        }
    }
}

impl From<&MetadataRecord> for v1::MetadataRecordV1 {
    fn from(r: &MetadataRecord) -> Self {
        let record = match r {
            MetadataRecord::Cluster { cluster_id } => Record::Cluster(v1::ClusterRecord {
                cluster_id: cluster_id.clone(),
            }),
            MetadataRecord::RegisterBroker(b) => Record::RegisterBroker(v1::RegisterBrokerRecord {
                broker_id: b.broker_id.0,
                incarnation_id: uuid_bytes(&b.incarnation_id),
                endpoints: b.endpoints.iter().map(Into::into).collect(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            }),
            MetadataRecord::UnregisterBroker { broker_id } => {
                Record::UnregisterBroker(v1::UnregisterBrokerRecord {
                    broker_id: broker_id.0,
                })
            }
            MetadataRecord::BrokerDecommission {
                broker_id,
                decommissioned,
            } => Record::BrokerDecommission(v1::BrokerDecommissionRecord {
                broker_id: broker_id.0,
                decommissioned: *decommissioned,
            }),
            MetadataRecord::FenceBroker {
                broker_id,
                incarnation_id,
            } => Record::FenceBroker(v1::BrokerIncarnation {
                broker_id: broker_id.0,
                incarnation_id: uuid_bytes(incarnation_id),
            }),
            MetadataRecord::UnfenceBroker {
                broker_id,
                incarnation_id,
            } => Record::UnfenceBroker(v1::BrokerIncarnation {
                broker_id: broker_id.0,
                incarnation_id: uuid_bytes(incarnation_id),
            }),
            MetadataRecord::Topic(t) => Record::Topic(v1::TopicRecord {
                name: t.name.as_str().to_string(),
                topic_id: uuid_bytes(&t.topic_id.0),
            }),
            MetadataRecord::Partition(p) => Record::Partition(v1::PartitionRecord {
                topic_id: uuid_bytes(&p.topic_id.0),
                partition: p.partition.0,
                replicas: ids(&p.replicas),
                isr: ids(&p.isr),
                leader: p.leader.0,
                leader_epoch: p.leader_epoch.0,
                partition_epoch: p.partition_epoch,
                adding_replicas: ids(&p.adding_replicas),
                removing_replicas: ids(&p.removing_replicas),
            }),
            MetadataRecord::PartitionChange(c) => {
                Record::PartitionChange(v1::PartitionChangeRecord {
                    topic_id: uuid_bytes(&c.topic_id.0),
                    partition: c.partition.0,
                    leader: c.leader.map(|b| b.0),
                    isr: id_list(&c.isr),
                    replicas: id_list(&c.replicas),
                    eligible_leader_replicas: id_list(&c.eligible_leader_replicas),
                    adding_replicas: id_list(&c.adding_replicas),
                    removing_replicas: id_list(&c.removing_replicas),
                })
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                Record::RemoveTopic(v1::RemoveTopicRecord {
                    topic_id: uuid_bytes(&topic_id.0),
                })
            }
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id,
            } => Record::ProducerIds(v1::ProducerIdsRecord {
                broker_id: broker_id.0,
                next_producer_id: *next_producer_id,
            }),
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => Record::Config(v1::ConfigRecord {
                resource: Some(resource.into()),
                name: name.clone(),
                value: value.clone(),
            }),
            MetadataRecord::Acl(b) => Record::Acl(b.into()),
            MetadataRecord::RemoveAcl(b) => Record::RemoveAcl(b.into()),
            MetadataRecord::UserScramCredential { name, credential } => {
                Record::UserScramCredential(v1::UserScramCredentialRecord {
                    name: name.clone(),
                    mechanism: i32::from(credential.mechanism.code()),
                    salt: credential.salt.clone().into(),
                    stored_key: credential.stored_key.clone().into(),
                    server_key: credential.server_key.clone().into(),
                    iterations: i32::try_from(credential.iterations).unwrap_or(i32::MAX),
                })
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                Record::RemoveUserScramCredential(v1::RemoveUserScramCredentialRecord {
                    name: name.clone(),
                    mechanism: i32::from(mechanism.code()),
                })
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                Record::ClientQuota(v1::ClientQuotaRecord {
                    entity: kavka_proto::conv::quota_entity_components(entity),
                    key: key.name().to_string(),
                    value: value.map(QuotaValue::get),
                })
            }
        };
        Self {
            record: Some(record),
        }
    }
}

// --- protobuf -> model (a missing or invalid field is an error) ---

fn uuid_field(
    message: &'static str,
    field: &'static str,
    bytes: &[u8],
) -> Result<uuid::Uuid, DecodeError> {
    uuid::Uuid::from_slice(bytes).map_err(|_| DecodeError::Invalid {
        message,
        field,
        reason: format!("a UUID is 16 bytes, not {}", bytes.len()),
    })
}

fn topic_name(message: &'static str, name: String) -> Result<TopicName, DecodeError> {
    TopicName::new(name).map_err(|e| DecodeError::Invalid {
        message,
        field: "name",
        reason: e.to_string(),
    })
}

fn broker_ids(list: Vec<i32>) -> Vec<BrokerId> {
    list.into_iter().map(BrokerId).collect()
}

fn opt_ids(list: Option<v1::BrokerIdList>) -> Option<Vec<BrokerId>> {
    list.map(|l| broker_ids(l.broker_ids))
}

impl TryFrom<v1::BrokerEndpoint> for Endpoint {
    type Error = DecodeError;

    fn try_from(e: v1::BrokerEndpoint) -> Result<Self, DecodeError> {
        let port = u16::try_from(e.port).map_err(|_| DecodeError::Invalid {
            message: "BrokerEndpoint",
            field: "port",
            reason: format!("{} is not a TCP port", e.port),
        })?;
        Ok(Self {
            name: e.name,
            host: e.host,
            port,
        })
    }
}

impl TryFrom<v1::ConfigResourceRef> for ConfigResource {
    type Error = DecodeError;

    fn try_from(r: v1::ConfigResourceRef) -> Result<Self, DecodeError> {
        match r.resource {
            Some(Resource::Topic(t)) => Ok(Self::Topic(topic_name("ConfigResourceRef", t)?)),
            Some(Resource::Broker(b)) => Ok(Self::Broker(BrokerId(b))),
            Some(Resource::Cluster(_)) => Ok(Self::Cluster),
            None => Err(DecodeError::Missing {
                message: "ConfigResourceRef",
                field: "resource",
            }),
        }
    }
}

impl TryFrom<v1::RegisterBrokerRecord> for RegisterBrokerRecord {
    type Error = DecodeError;

    fn try_from(b: v1::RegisterBrokerRecord) -> Result<Self, DecodeError> {
        Ok(Self {
            broker_id: BrokerId(b.broker_id),
            incarnation_id: uuid_field(
                "RegisterBrokerRecord",
                "incarnation_id",
                &b.incarnation_id,
            )?,
            endpoints: b
                .endpoints
                .into_iter()
                .map(Endpoint::try_from)
                .collect::<Result<_, _>>()?,
            rack: b.rack,
            fenced: b.fenced,
        })
    }
}

impl TryFrom<v1::TopicRecord> for TopicRecord {
    type Error = DecodeError;

    fn try_from(t: v1::TopicRecord) -> Result<Self, DecodeError> {
        Ok(Self {
            name: topic_name("TopicRecord", t.name)?,
            topic_id: TopicId(uuid_field("TopicRecord", "topic_id", &t.topic_id)?),
        })
    }
}

impl TryFrom<v1::PartitionRecord> for PartitionRecord {
    type Error = DecodeError;

    fn try_from(p: v1::PartitionRecord) -> Result<Self, DecodeError> {
        Ok(Self {
            topic_id: TopicId(uuid_field("PartitionRecord", "topic_id", &p.topic_id)?),
            partition: PartitionId(p.partition),
            replicas: broker_ids(p.replicas),
            isr: broker_ids(p.isr),
            leader: BrokerId(p.leader),
            leader_epoch: LeaderEpoch(p.leader_epoch),
            partition_epoch: p.partition_epoch,
            adding_replicas: broker_ids(p.adding_replicas),
            removing_replicas: broker_ids(p.removing_replicas),
        })
    }
}

impl TryFrom<v1::PartitionChangeRecord> for PartitionChangeRecord {
    type Error = DecodeError;

    fn try_from(c: v1::PartitionChangeRecord) -> Result<Self, DecodeError> {
        Ok(Self {
            topic_id: TopicId(uuid_field(
                "PartitionChangeRecord",
                "topic_id",
                &c.topic_id,
            )?),
            partition: PartitionId(c.partition),
            leader: c.leader.map(BrokerId),
            isr: opt_ids(c.isr),
            replicas: opt_ids(c.replicas),
            eligible_leader_replicas: opt_ids(c.eligible_leader_replicas),
            adding_replicas: opt_ids(c.adding_replicas),
            removing_replicas: opt_ids(c.removing_replicas),
        })
    }
}

impl TryFrom<v1::MetadataRecordV1> for MetadataRecord {
    type Error = DecodeError;

    fn try_from(r: v1::MetadataRecordV1) -> Result<Self, DecodeError> {
        let record = r.record.ok_or(DecodeError::Missing {
            message: "MetadataRecordV1",
            field: "record",
        })?;
        Ok(match record {
            Record::Cluster(c) => Self::Cluster {
                cluster_id: c.cluster_id,
            },
            Record::RegisterBroker(b) => Self::RegisterBroker(b.try_into()?),
            Record::UnregisterBroker(b) => Self::UnregisterBroker {
                broker_id: BrokerId(b.broker_id),
            },
            Record::BrokerDecommission(b) => Self::BrokerDecommission {
                broker_id: BrokerId(b.broker_id),
                decommissioned: b.decommissioned,
            },
            Record::FenceBroker(b) => Self::FenceBroker {
                broker_id: BrokerId(b.broker_id),
                incarnation_id: uuid_field("FenceBroker", "incarnation_id", &b.incarnation_id)?,
            },
            Record::UnfenceBroker(b) => Self::UnfenceBroker {
                broker_id: BrokerId(b.broker_id),
                incarnation_id: uuid_field("UnfenceBroker", "incarnation_id", &b.incarnation_id)?,
            },
            Record::Topic(t) => Self::Topic(t.try_into()?),
            Record::Partition(p) => Self::Partition(p.try_into()?),
            Record::PartitionChange(c) => Self::PartitionChange(c.try_into()?),
            Record::RemoveTopic(t) => Self::RemoveTopic {
                topic_id: TopicId(uuid_field("RemoveTopicRecord", "topic_id", &t.topic_id)?),
            },
            Record::ProducerIds(p) => Self::ProducerIds {
                broker_id: BrokerId(p.broker_id),
                next_producer_id: p.next_producer_id,
            },
            Record::Config(c) => Self::Config {
                resource: c
                    .resource
                    .ok_or(DecodeError::Missing {
                        message: "ConfigRecord",
                        field: "resource",
                    })?
                    .try_into()?,
                name: c.name,
                value: c.value,
            },
            Record::Acl(a) => Self::Acl(a.try_into()?),
            Record::RemoveAcl(a) => Self::RemoveAcl(a.try_into()?),
            Record::UserScramCredential(c) => {
                const MSG: &str = "UserScramCredentialRecord";
                Self::UserScramCredential {
                    name: user_name(MSG, c.name)?,
                    credential: ScramCredential {
                        mechanism: scram_mechanism(MSG, c.mechanism)?,
                        salt: c.salt.to_vec(),
                        stored_key: c.stored_key.to_vec(),
                        server_key: c.server_key.to_vec(),
                        iterations: u32::try_from(c.iterations).map_err(|_| {
                            DecodeError::Invalid {
                                message: MSG,
                                field: "iterations",
                                reason: format!("{} is negative", c.iterations),
                            }
                        })?,
                    },
                }
            }
            Record::RemoveUserScramCredential(c) => {
                const MSG: &str = "RemoveUserScramCredentialRecord";
                Self::RemoveUserScramCredential {
                    name: user_name(MSG, c.name)?,
                    mechanism: scram_mechanism(MSG, c.mechanism)?,
                }
            }
            Record::ClientQuota(q) => {
                const MSG: &str = "ClientQuotaRecord";
                let invalid = |field: &'static str| {
                    move |e: kavka_model::KafkaError| DecodeError::Invalid {
                        message: MSG,
                        field,
                        reason: e.message,
                    }
                };
                let key = QuotaKey::parse(&q.key).map_err(invalid("key"))?;
                Self::ClientQuota {
                    entity: kavka_proto::conv::quota_entity(&q.entity)
                        .map_err(invalid("entity"))?,
                    key,
                    value: q
                        .value
                        .map(|v| key.value(v))
                        .transpose()
                        .map_err(invalid("value"))?,
                }
            }
        })
    }
}

/// A user name: not empty.
fn user_name(message: &'static str, name: String) -> Result<String, DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::Invalid {
            message,
            field: "name",
            reason: "empty".into(),
        });
    }
    Ok(name)
}

fn scram_mechanism(message: &'static str, code: i32) -> Result<ScramMechanism, DecodeError> {
    i8::try_from(code)
        .ok()
        .and_then(ScramMechanism::from_code)
        .ok_or(DecodeError::Invalid {
            message,
            field: "mechanism",
            reason: format!("no such code {code}"),
        })
}

#[cfg(test)]
mod tests;
