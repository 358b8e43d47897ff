//! CreateTopics, DeleteTopics and CreatePartitions: translated onto the broker API's
//! `Admin`, which forwards them to the active controller and answers once this broker's
//! metadata image shows the change (so a client's next Metadata request sees its own
//! write). What Kafka refuses before any controller sees it is refused here.
//!
//! Authorization, as Kafka: creating a topic takes CREATE on the cluster or the topic,
//! deleting it DELETE, adding partitions ALTER on the topic; a denied topic is answered
//! TOPIC_AUTHORIZATION_FAILED and the rest of the request goes ahead.
//!
//! Invariant: every topic of a request gets exactly one result, in request order.

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kavka_model::acl::{Operation, Resource};
use kavka_model::admin::{NewPartitions, NewTopic, TopicOutcome};
use kavka_model::{BrokerId, ErrorCode, KafkaError, PartitionId, TopicId};

/// The per-topic outcome from the broker API's answer: its error, or the request's.
fn outcome(
    results: &Result<Vec<TopicOutcome>, KafkaError>,
    name: &str,
) -> Result<TopicId, KafkaError> {
    match results {
        Err(e) => Err(e.clone()),
        Ok(rs) => match rs.iter().find(|r| r.name == name) {
            Some(r) => r.result.clone(),
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
    ctx: &Ctx<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut refused: Vec<(String, KafkaError)> = req
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.0.as_str();
            let refusal = if !ctx.may_create_topic(broker, name) {
                broker
                    .api
                    .authorize(ctx.caller, Operation::Create, Resource::topic(name))
                    .err()
            } else if t.replication_factor == 0 {
                // Kafka's rule, checked here since our "default" is 0: -1 or at least 1.
                Some(KafkaError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "replication factor must be larger than 0, or -1 to use the default value",
                ))
            } else {
                None
            };
            refusal.map(|e| (name.to_string(), e))
        })
        .collect();
    // A dynamic num.partitions of this broker (or the cluster) for a count of -1.
    let default_partitions = broker.api.dynamic_config().num_partitions;
    let topics: Vec<NewTopic> = req
        .topics
        .iter()
        .filter(|t| !refused.iter().any(|(n, _)| n == t.name.0.as_str()))
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            partitions: match t.num_partitions {
                -1 if t.assignments.is_empty() => default_partitions,
                -1 => None,
                n => Some(n),
            },
            // Kafka's -1 is "the broker default".
            replication_factor: (t.replication_factor > 0)
                .then_some(i32::from(t.replication_factor)),
            configs: t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect(),
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        PartitionId(a.partition_index),
                        a.broker_ids.iter().map(|b| BrokerId(b.0)).collect(),
                    )
                })
                .collect(),
        })
        .collect();
    let results = if topics.is_empty() {
        Ok(Vec::new())
    } else {
        broker.admin.create_topics(&topics, req.validate_only).await
    };
    let image = broker.api.image();
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
    ctx: &Ctx<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = broker.api.image();
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
    let mut refused: Vec<(String, KafkaError)> = asked
        .iter()
        .filter_map(|(n, _)| n.as_deref())
        .filter_map(|n| {
            ctx.check(broker, Operation::Delete, Resource::topic(n))
                .err()
                .map(|e| (n.to_string(), e))
        })
        .collect();
    let names: Vec<String> = asked
        .iter()
        .filter_map(|(n, _)| n.clone())
        .filter(|n| !refused.iter().any(|(r, _)| r == n))
        .collect();
    let results = if names.is_empty() {
        Ok(Vec::new())
    } else {
        broker.admin.delete_topics(&names).await
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
                Some(n) => take(&mut refused, n).map_or_else(|| outcome(&results, n), Err),
            };
            match outcome {
                Ok(topic_id) => r.with_topic_id(topic_id.0),
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
    ctx: &Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut refused: Vec<(String, KafkaError)> = req
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.0.as_str();
            let refusal = match ctx.check(broker, Operation::Alter, Resource::topic(name)) {
                Err(e) => Some(e),
                // An empty (not null) assignment list assigns none of the new partitions.
                Ok(()) if t.assignments.as_ref().is_some_and(Vec::is_empty) => {
                    Some(KafkaError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!(
                            "an empty replica assignment was given for the new partitions of '{name}': give one per new partition, or none (null)"
                        ),
                    ))
                }
                Ok(()) => None,
            };
            refusal.map(|e| (name.to_string(), e))
        })
        .collect();
    let topics: Vec<NewPartitions> = req
        .topics
        .iter()
        .filter(|t| !refused.iter().any(|(n, _)| n == t.name.0.as_str()))
        .map(|t| NewPartitions {
            name: t.name.0.to_string(),
            count: t.count,
            assignments: t
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
                .collect(),
        })
        .collect();
    let results = if topics.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .admin
            .create_partitions(&topics, req.validate_only)
            .await
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
