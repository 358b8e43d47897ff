//! AlterPartitionReassignments (v0–1) and ListPartitionReassignments (v0): Kafka's
//! partition moves (KIP-455), translated onto the broker API's
//! `Admin::alter_reassignments` (forwarded to the active controller, answered once this
//! broker's image shows each accepted move) and `Admin::list_reassignments` (this
//! broker's image).
//!
//! Authorization, as Kafka: ALTER on the cluster to move, DESCRIBE on the cluster to
//! list; a denied request is CLUSTER_AUTHORIZATION_FAILED at the top (and, for a move,
//! for every partition it named).
//!
//! v1 (KIP-860): with `allow_replication_factor_change` false, a move whose target has
//! another replica count than the partition is INVALID_REPLICATION_FACTOR and is not
//! sent on. Null `replicas` cancels a partition's move.
//!
//! Invariant: every partition named in a move request gets exactly one result.

use super::{Ctx, error_parts};
use crate::Broker;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kavka_model::acl::{Operation, Resource};
use kavka_model::admin::{OngoingMove, PartitionMove, PartitionRef};
use kavka_model::{BrokerId, ErrorCode, KafkaError, PartitionId};

use kafka_protocol::messages::BrokerId as KafkaBrokerId;

fn wire_ids(ids: &[BrokerId]) -> Vec<KafkaBrokerId> {
    ids.iter().map(|b| KafkaBrokerId(b.0)).collect()
}

#[tracing::instrument(skip_all, fields(topics = req.topics.len()))]
pub(crate) async fn alter_partition_reassignments(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let moves: Vec<PartitionMove> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| PartitionMove {
                partition: PartitionRef {
                    topic: t.name.0.to_string(),
                    partition: PartitionId(p.partition_index),
                },
                target: p
                    .replicas
                    .as_ref()
                    .map(|r| r.iter().map(|b| BrokerId(b.0)).collect()),
            })
        })
        .collect();
    let allow_rf_change = ctx.version == 0 || req.allow_replication_factor_change;
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    if let Err(e) = ctx.check(broker, Operation::Alter, Resource::cluster()) {
        let (code, message) = error_parts(&e);
        let refused = moves.iter().map(|m| (m, Err(e.clone()))).collect();
        return response
            .with_error_code(code)
            .with_error_message(message)
            .with_responses(by_topic(refused));
    }
    // KIP-860: refused here, against this broker's image, before anything is sent on.
    let image = broker.api.image();
    let rf_refusal = |m: &PartitionMove| -> Option<KafkaError> {
        let target = m.target.as_ref()?;
        let topic = kavka_model::TopicName::new(m.partition.topic.clone()).ok()?;
        let reg = image
            .topic_by_name(&topic)?
            .partitions
            .get(&m.partition.partition)?;
        let had = reg.original_replicas().len();
        (!allow_rf_change && target.len() != had).then(|| {
            KafkaError::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "{}-{}: the target has {} replicas, the partition {had}, and the request does not allow a replication factor change",
                    m.partition.topic,
                    m.partition.partition,
                    target.len()
                ),
            )
        })
    };
    let refused: Vec<Option<KafkaError>> = moves.iter().map(rf_refusal).collect();
    let sent: Vec<PartitionMove> = moves
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(m, _)| m.clone())
        .collect();
    let decided = if sent.is_empty() {
        Ok(vec![])
    } else {
        broker.api.admin.alter_reassignments(&sent).await
    };
    let mut decided_iter = match &decided {
        Ok(outcomes) => outcomes.iter().map(|o| o.result.clone()).collect(),
        Err(e) => vec![Err(e.clone()); sent.len()],
    }
    .into_iter();
    let results: Vec<(&PartitionMove, Result<(), KafkaError>)> = moves
        .iter()
        .zip(refused)
        .map(|(m, refusal)| {
            let result = match refusal {
                Some(e) => Err(e),
                None => decided_iter.next().unwrap_or_else(|| {
                    Err(KafkaError::new(
                        ErrorCode::UnknownServerError,
                        "the controller answered fewer moves than were asked",
                    ))
                }),
            };
            (m, result)
        })
        .collect();
    response.with_responses(by_topic(results))
}

/// Results grouped by topic, topics in the order first named.
fn by_topic(
    results: Vec<(&PartitionMove, Result<(), KafkaError>)>,
) -> Vec<ReassignableTopicResponse> {
    let mut out: Vec<ReassignableTopicResponse> = Vec::new();
    for (m, result) in results {
        let (code, message) = match &result {
            Ok(()) => (ErrorCode::None.code(), None),
            Err(e) => error_parts(e),
        };
        let p = ReassignablePartitionResponse::default()
            .with_partition_index(m.partition.partition.0)
            .with_error_code(code)
            .with_error_message(message);
        match out
            .iter_mut()
            .find(|t| t.name.0.as_str() == m.partition.topic)
        {
            Some(t) => t.partitions.push(p),
            None => out.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(super::str_bytes(m.partition.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    out
}

#[tracing::instrument(skip_all)]
pub(crate) fn list_partition_reassignments(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if let Err(e) = ctx.check(broker, Operation::Describe, Resource::cluster()) {
        let (code, message) = error_parts(&e);
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(code)
            .with_error_message(message);
    }
    let named: Option<Vec<PartitionRef>> = req.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes.iter().map(|&p| PartitionRef {
                    topic: t.name.0.to_string(),
                    partition: PartitionId(p),
                })
            })
            .collect()
    });
    let moves = broker.api.admin.list_reassignments(named.as_deref());
    ListPartitionReassignmentsResponse::default().with_topics(ongoing_by_topic(moves))
}

fn ongoing_by_topic(moves: Vec<OngoingMove>) -> Vec<OngoingTopicReassignment> {
    let mut out: Vec<OngoingTopicReassignment> = Vec::new();
    for m in moves {
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(m.partition.0)
            .with_replicas(wire_ids(&m.replicas))
            .with_adding_replicas(wire_ids(&m.adding))
            .with_removing_replicas(wire_ids(&m.removing));
        match out.iter_mut().find(|t| t.name.0.as_str() == m.topic) {
            Some(t) => t.partitions.push(p),
            None => out.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(super::str_bytes(m.topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    out
}
