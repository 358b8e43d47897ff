//! CreateTopics, DeleteTopics and CreatePartitions: forwarded to the active controller
//! through the broker's AdminService, which answers once this broker's metadata image
//! shows the change (so a client's next Metadata request sees its own write).
//!
//! Invariant: every topic of a request gets exactly one result, in request order.

use super::{error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kavka_model::{ErrorCode, KafkaError};
use kavka_proto::conv::from_status;
use kavka_proto::v1::{self, admin_service_server::AdminService as _};
use tonic::Request;

/// The per-topic outcome from a gRPC admin answer: its error, or the request's.
fn outcome(
    results: &Result<Vec<v1::TopicResult>, KafkaError>,
    name: &str,
) -> Result<String, KafkaError> {
    match results {
        Err(e) => Err(e.clone()),
        Ok(rs) => match rs.iter().find(|r| r.name == name) {
            Some(r) => match &r.error {
                Some(e) if e.code != 0 => Err(e.into()),
                _ => Ok(r.topic_id.clone()),
            },
            None => Err(KafkaError::new(
                ErrorCode::UnknownServerError,
                format!("the controller gave no result for topic '{name}'"),
            )),
        },
    }
}

/// The refusal decided here for topic `name`, if any (each is answered once).
fn take(refused: &mut Vec<(String, KafkaError)>, name: &str) -> Option<KafkaError> {
    let i = refused.iter().position(|(n, _)| n == name)?;
    Some(refused.swap_remove(i).1)
}

pub(crate) async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    // Kafka's rule, checked here since our "default" is 0: -1 or at least 1.
    let mut refused: Vec<(String, KafkaError)> = req
        .topics
        .iter()
        .filter(|t| t.replication_factor == 0)
        .map(|t| {
            (
                t.name.0.to_string(),
                KafkaError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "replication factor must be larger than 0, or -1 to use the default value",
                ),
            )
        })
        .collect();
    // A dynamic num.partitions of this broker (or the cluster) for a count of -1.
    let default_partitions = broker
        .replicas
        .dynamic_config()
        .num_partitions
        .unwrap_or(-1);
    let topics: Vec<v1::NewTopic> = req
        .topics
        .iter()
        .filter(|t| t.replication_factor != 0)
        .map(|t| v1::NewTopic {
            name: t.name.0.to_string(),
            partitions: if t.num_partitions == -1 && t.assignments.is_empty() {
                default_partitions
            } else {
                t.num_partitions
            },
            // Kafka's -1 is "the broker default"; ours is 0.
            replication_factor: i32::from(t.replication_factor.max(0)),
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
            assignments: t
                .assignments
                .iter()
                .map(|a| v1::ReplicaAssignment {
                    partition: a.partition_index,
                    broker_ids: a.broker_ids.iter().map(|b| b.0).collect(),
                })
                .collect(),
        })
        .collect();
    let results = if topics.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .admin
            .create_topics(Request::new(v1::CreateTopicsRequest {
                topics,
                validate_only: req.validate_only,
            }))
            .await
            .map(|r| r.into_inner().results)
            .map_err(|s| from_status(&s))
    };
    let image = broker.replicas.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let refusal = take(&mut refused, &name);
            match refusal.map_or_else(|| outcome(&results, &name), Err) {
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    result
                        .with_error_code(code)
                        .with_error_message(msg)
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
                Ok(_) => {
                    let created = kavka_model::TopicName::new(name)
                        .ok()
                        .and_then(|n| image.topic_by_name(&n).cloned());
                    match created {
                        Some(c) => result
                            .with_topic_id(c.id.0)
                            .with_num_partitions(c.partitions.len() as i32)
                            .with_replication_factor(
                                c.partitions
                                    .values()
                                    .next()
                                    .map_or(-1, |p| p.replicas.len() as i16),
                            ),
                        None => result.with_num_partitions(-1).with_replication_factor(-1),
                    }
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub(crate) async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = broker.replicas.image();
    // v6 names topics by name or id; earlier versions by name only.
    let mut asked: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    for t in &req.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).or_else(|| {
            image
                .topics()
                .find(|i| i.id.0 == t.topic_id)
                .map(|i| i.name.to_string())
        });
        asked.push((name, t.topic_id));
    }
    let names: Vec<String> = asked.iter().filter_map(|(n, _)| n.clone()).collect();
    let results = if names.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .admin
            .delete_topics(Request::new(v1::DeleteTopicsRequest { names }))
            .await
            .map(|r| r.into_inner().results)
            .map_err(|s| from_status(&s))
    };
    let responses = asked
        .into_iter()
        .map(|(name, id)| {
            let r = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
                .with_topic_id(id);
            let outcome = match &name {
                None => Err(KafkaError::new(
                    ErrorCode::UnknownTopicId,
                    format!("no topic has id {id}"),
                )),
                Some(n) => outcome(&results, n),
            };
            match outcome {
                Ok(topic_id) => r.with_topic_id(topic_id.parse().unwrap_or(id)),
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    r.with_error_code(code).with_error_message(msg)
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(crate) async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    // An empty (not null) assignment list assigns none of the new partitions.
    let mut refused: Vec<(String, KafkaError)> = req
        .topics
        .iter()
        .filter(|t| t.assignments.as_ref().is_some_and(Vec::is_empty))
        .map(|t| {
            (
                t.name.0.to_string(),
                KafkaError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "an empty replica assignment was given for the new partitions of '{}': give one per new partition, or none (null)",
                        t.name.0.as_str()
                    ),
                ),
            )
        })
        .collect();
    let topics: Vec<v1::CreatePartitionsTopic> = req
        .topics
        .iter()
        .filter(|t| !t.assignments.as_ref().is_some_and(Vec::is_empty))
        .map(|t| v1::CreatePartitionsTopic {
            name: t.name.0.to_string(),
            count: t.count,
            assignments: t
                .assignments
                .iter()
                .flatten()
                .map(|a| v1::ReplicaList {
                    broker_ids: a.broker_ids.iter().map(|b| b.0).collect(),
                })
                .collect(),
        })
        .collect();
    let results = if topics.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .admin
            .create_partitions(Request::new(v1::CreatePartitionsRequest {
                topics,
                validate_only: req.validate_only,
            }))
            .await
            .map(|r| r.into_inner().results)
            .map_err(|s| from_status(&s))
    };
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            let refusal = take(&mut refused, &name);
            match refusal.map_or_else(|| outcome(&results, &name), Err) {
                Ok(_) => r,
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    r.with_error_code(code).with_error_message(msg)
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
