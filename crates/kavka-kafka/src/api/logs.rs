//! DescribeLogDirs, DescribeProducers, DeleteRecords and AlterReplicaLogDirs: a broker's
//! partition logs, translated onto the broker API's log operations.
//!
//! Authorization, as Kafka: DescribeLogDirs takes DESCRIBE on the cluster (else the
//! whole response is CLUSTER_AUTHORIZATION_FAILED), DescribeProducers READ on each
//! topic, DeleteRecords DELETE on each topic (else TOPIC_AUTHORIZATION_FAILED for its
//! partitions), AlterReplicaLogDirs ALTER on the cluster.
//!
//! A broker has one log dir, its data dir: AlterReplicaLogDirs can move no replica, so a
//! replica asked to go to another path gets LOG_DIR_NOT_FOUND, and one asked to stay
//! where it is, nothing to do (NONE), as Kafka answers.
//!
//! Invariant: every partition asked gets exactly one result.

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, TopicName,
};
use kavka_broker::api::topic_name;
use kavka_model::acl::{Operation, Resource};
use kavka_model::logs::ReplicaLog;
use kavka_model::{ErrorCode, KafkaError, Offset, PartitionId, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's "delete up to the high watermark" in a DeleteRecords offset.
const HIGH_WATERMARK: i64 = -1;

fn wire_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

#[tracing::instrument(skip_all)]
pub(crate) async fn describe_log_dirs(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if let Err(e) = ctx.check(broker, Operation::Describe, Resource::cluster()) {
        return DescribeLogDirsResponse::default().with_error_code(e.code.code());
    }
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
            .collect()
    });
    let dir = broker
        .api
        .describe_log_dir(|tp| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&(tp.topic.as_str().to_string(), tp.partition.0)))
        })
        .await;
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for ReplicaLog {
        partition,
        size_bytes,
        offset_lag,
    } in &dir.replicas
    {
        by_topic
            .entry(partition.topic.as_str().to_string())
            .or_default()
            .push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition.partition.0)
                    .with_partition_size(i64::try_from(*size_bytes).unwrap_or(i64::MAX))
                    .with_offset_lag(*offset_lag),
            );
    }
    let bytes = |b: Option<u64>| b.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let result = DescribeLogDirsResult::default()
        .with_error_code(dir.error.as_ref().map_or(0, |e| e.code.code()))
        .with_log_dir(str_bytes(dir.path))
        .with_total_bytes(bytes(dir.total_bytes))
        .with_usable_bytes(bytes(dir.usable_bytes))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(wire_name(&name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The next partition's outcome: refused here (outer `Err`), or the broker API's answer.
fn next_answer<T>(
    answers: &mut impl Iterator<Item = Result<Result<T, KafkaError>, KafkaError>>,
) -> Result<T, KafkaError> {
    answers.next().unwrap_or_else(|| {
        Err(KafkaError::new(
            ErrorCode::UnknownServerError,
            "the broker gave no answer for this partition",
        ))
    })?
}

/// The partitions a request names, each checked (name, authorization) before it is
/// asked of the broker API: `Ok` to ask, `Err` answered as is.
fn checked(
    broker: &Broker,
    ctx: &Ctx<'_>,
    operation: Operation,
    topic: &str,
    partition: i32,
) -> Result<TopicPartition, KafkaError> {
    ctx.check(broker, operation, Resource::topic(topic))?;
    Ok(TopicPartition::new(
        topic_name(topic)?,
        PartitionId(partition),
    ))
}

#[tracing::instrument(skip_all, fields(topics = req.topics.len()))]
pub(crate) async fn describe_producers(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let items: Vec<Result<TopicPartition, KafkaError>> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partition_indexes
                .iter()
                .map(|&p| checked(broker, ctx, Operation::Read, &t.name.0, p))
        })
        .collect();
    let answers = kavka_broker::api::in_request_order(items, async |asks: Vec<TopicPartition>| {
        broker.api.describe_producers(&asks).await
    })
    .await;
    let mut answers = answers.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let r = PartitionResponse::default().with_partition_index(p);
                    match next_answer(&mut answers) {
                        Ok(producers) => r.with_active_producers(
                            producers
                                .into_iter()
                                .map(|a| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_producer_epoch(i32::from(a.producer_epoch))
                                        .with_last_sequence(a.last_sequence)
                                        .with_last_timestamp(a.last_timestamp.unwrap_or(-1))
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect(),
                        ),
                        Err(e) => {
                            let (code, message) = error_parts(&e);
                            r.with_error_code(code).with_error_message(message)
                        }
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// A DeleteRecords offset: -1 is the high watermark; any other negative one is out of
/// range, as Kafka answers.
fn delete_before(offset: i64) -> Result<Option<Offset>, KafkaError> {
    match offset {
        HIGH_WATERMARK => Ok(None),
        o if o >= 0 => Ok(Some(Offset(o))),
        o => Err(KafkaError::new(
            ErrorCode::OffsetOutOfRange,
            format!("cannot delete records before offset {o}: it is negative"),
        )),
    }
}

#[tracing::instrument(skip_all, fields(topics = req.topics.len()))]
pub(crate) async fn delete_records(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let items: Vec<Result<(TopicPartition, Option<Offset>), KafkaError>> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let tp = checked(broker, ctx, Operation::Delete, &t.name.0, p.partition_index)?;
                Ok((tp, delete_before(p.offset)?))
            })
        })
        .collect();
    let answers = kavka_broker::api::in_request_order(
        items,
        async |asks: Vec<(TopicPartition, Option<Offset>)>| broker.api.delete_records(&asks).await,
    )
    .await;
    let mut answers = answers.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match next_answer(&mut answers) {
                        Ok(start) => r.with_low_watermark(start.0),
                        Err(e) => {
                            tracing::debug!(topic = %t.name.0, partition = p.partition_index, error = %e, "DeleteRecords refused");
                            r.with_low_watermark(-1).with_error_code(e.code.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

#[tracing::instrument(skip_all, fields(dirs = req.dirs.len()))]
pub(crate) fn alter_replica_log_dirs(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let allowed = ctx.check(broker, Operation::Alter, Resource::cluster());
    let home = broker.api.broker_config().data_dir.clone();
    let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    for dir in req.dirs {
        let code = match &allowed {
            Err(e) => e.code,
            Ok(()) if std::path::Path::new(dir.path.as_str()) == home => ErrorCode::None,
            Ok(()) => {
                tracing::info!(path = %dir.path, log_dir = %home.display(), "AlterReplicaLogDirs to a dir this broker does not have");
                ErrorCode::LogDirNotFound
            }
        };
        for t in dir.topics {
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AlterReplicaLogDirPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    ),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_record_offsets() {
        for (wire, want) in [
            (-1, Ok(None)),
            (0, Ok(Some(Offset(0)))),
            (42, Ok(Some(Offset(42)))),
            (-2, Err(ErrorCode::OffsetOutOfRange)),
            (i64::MIN, Err(ErrorCode::OffsetOutOfRange)),
        ] {
            assert_eq!(delete_before(wire).map_err(|e| e.code), want, "{wire}");
        }
    }
}
