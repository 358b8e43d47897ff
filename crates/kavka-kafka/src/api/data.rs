//! Produce, Fetch, ListOffsets and OffsetForLeaderEpoch, mapped onto the replica
//! manager exactly as the gRPC BrokerService maps them.
//!
//! Invariants: batches are stored as the client sent them once validated and given
//! offsets (the replica manager's append); consumers only ever see records below the
//! high watermark; Kafka sends no answer to acks=0 produce requests.

use super::{error_parts, str_bytes};
use crate::Broker;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kavka_broker::{FetchPartitionParams, ProduceResult, produce_timeout};
use kavka_model::admin::PartitionRef;
use kavka_model::epoch::EpochQuery;
use kavka_model::{ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId};
use std::sync::Arc;

/// Fetch `max_bytes` when a client sends none (Kafka's `fetch.max.bytes` default).
const FETCH_MAX_BYTES_DEFAULT: usize = 50 * 1024 * 1024;
/// Per-partition limit when a client sends none (`max.partition.fetch.bytes`).
const PARTITION_MAX_BYTES_DEFAULT: usize = 1024 * 1024;

fn partition_response(
    index: i32,
    r: Result<ProduceResult, KafkaError>,
) -> PartitionProduceResponse {
    match r {
        Ok(r) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(r.base_offset.0)
            .with_log_append_time_ms(r.log_append_time.unwrap_or(-1))
            .with_log_start_offset(r.log_start_offset.0),
        Err(e) => {
            let (code, msg) = error_parts(&e);
            let record_errors = e
                .record_errors
                .iter()
                .map(|r| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(r.batch_index)
                        .with_batch_index_error_message(Some(str_bytes(r.message.clone())))
                })
                .collect();
            PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(code)
                .with_error_message(msg)
                .with_record_errors(record_errors)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
        }
    }
}

/// Every partition of `req` answered with `code`.
pub(crate) fn produce_error(req: &ProduceRequest, code: i16) -> ProduceResponse {
    ProduceResponse::default().with_responses(
        req.topic_data
            .iter()
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partition_responses(
                        t.partition_data
                            .iter()
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub(crate) async fn produce(broker: &Broker, req: ProduceRequest) -> Option<ProduceResponse> {
    if req.transactional_id.is_some() {
        return Some(produce_error(
            &req,
            ErrorCode::UnsupportedForMessageFormat.code(),
        ));
    }
    let acks = i32::from(req.acks);
    let timeout = produce_timeout(req.timeout_ms);
    let mut tasks = Vec::with_capacity(req.topic_data.len());
    let budget = kavka_broker::DecodeBudget::for_request();
    for t in req.topic_data {
        let replicas = Arc::clone(&broker.replicas);
        let budget = budget.clone();
        let name = t.name.0.to_string();
        let batches: Vec<(i32, Vec<u8>)> = t
            .partition_data
            .into_iter()
            .map(|p| (p.index, p.records.map(|b| b.to_vec()).unwrap_or_default()))
            .collect();
        let indexes: Vec<i32> = batches.iter().map(|(p, _)| *p).collect();
        tasks.push((
            t.name,
            indexes,
            tokio::spawn(async move {
                replicas
                    .produce(&name, acks, timeout, batches, &budget)
                    .await
            }),
        ));
    }
    let mut responses = Vec::with_capacity(tasks.len());
    let mut unknown = Vec::new();
    for (name, indexes, task) in tasks {
        let result = task.await.unwrap_or_else(|e| {
            Err(KafkaError::new(
                ErrorCode::UnknownServerError,
                format!("produce failed: {e}"),
            ))
        });
        if super::metadata::may_auto_create(&name.0, &result)
            && kavka_model::TopicName::new(name.0.to_string()).is_ok()
            && super::metadata::auto_create_enabled(broker)
        {
            unknown.push(name.0.to_string());
        }
        let partitions = match result {
            Ok(rs) => rs
                .into_iter()
                .map(|(p, r)| partition_response(p, r))
                .collect(),
            Err(e) => indexes
                .into_iter()
                .map(|p| partition_response(p, Err(e.clone())))
                .collect(),
        };
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions),
        );
    }
    // Unknown topics are created for the next try (auto.create.topics.enable), in one
    // call; this answer stays UNKNOWN_TOPIC_OR_PARTITION, which producers retry after
    // asking for metadata again. (Kafka creates topics on Metadata only; producers that
    // skip it get them too.)
    if !unknown.is_empty() {
        super::metadata::auto_create(broker, &unknown).await;
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

pub(crate) async fn fetch(broker: &Broker, req: FetchRequest) -> FetchResponse {
    // Fetch sessions (KIP-227) are not kept: every fetch is a full one, and a session id
    // of 0 in the answer tells the client so.
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let mut params = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            params.push(FetchPartitionParams {
                topic: t.topic.0.to_string(),
                partition: p.partition,
                offset: Offset(p.fetch_offset),
                max_bytes: if p.partition_max_bytes > 0 {
                    p.partition_max_bytes as usize
                } else {
                    PARTITION_MAX_BYTES_DEFAULT
                },
            });
        }
    }
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        FETCH_MAX_BYTES_DEFAULT
    };
    let fetched = broker
        .replicas
        .fetch(
            params,
            req.max_wait_ms.max(0) as u64,
            req.min_bytes.max(0) as usize,
            max_bytes,
        )
        .await;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for f in fetched {
        let data = PartitionData::default()
            .with_partition_index(f.partition)
            .with_error_code(f.error.as_ref().map_or(0, |e| e.code.code()))
            .with_high_watermark(f.high_watermark.0)
            .with_last_stable_offset(f.high_watermark.0)
            .with_log_start_offset(f.log_start_offset.0)
            .with_aborted_transactions(Some(Vec::new()))
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(Bytes::from(f.records)));
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == f.topic => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(str_bytes(f.topic)))
                    .with_partitions(vec![data]),
            ),
        }
    }
    FetchResponse::default().with_responses(topics)
}

pub(crate) async fn list_offsets(broker: &Broker, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let asked = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.timestamp))
            .collect();
        let partitions = broker
            .replicas
            .list_offsets(t.name.0.as_str(), asked)
            .await
            .into_iter()
            .map(|(p, r)| {
                let resp = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p)
                    .with_leader_epoch(-1);
                match r {
                    Ok((offset, ts)) => resp.with_offset(offset.0).with_timestamp(ts),
                    Err(e) => resp
                        .with_error_code(e.code.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

pub(crate) async fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let asked = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| EpochQuery {
                partition: PartitionRef {
                    topic: t.topic.0.to_string(),
                    partition: PartitionId(p.partition),
                },
                current_leader_epoch: (p.current_leader_epoch >= 0)
                    .then_some(LeaderEpoch(p.current_leader_epoch)),
                leader_epoch: LeaderEpoch(p.leader_epoch),
            })
        })
        .collect();
    let answers = broker.replicas.epoch_ends(asked).await;
    let mut topics: Vec<OffsetForLeaderTopicResult> = Vec::new();
    for a in answers {
        let (code, end) = match &a.result {
            Ok(end) => (0, *end),
            Err(e) => (e.code.code(), None),
        };
        // No epoch known (or an error): Kafka's UNDEFINED_EPOCH and offset, -1.
        let e = EpochEndOffset::default()
            .with_partition(a.partition.partition.0)
            .with_error_code(code)
            .with_leader_epoch(end.map_or(-1, |e| e.leader_epoch.0))
            .with_end_offset(end.map_or(-1, |e| e.end_offset.0));
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == a.partition.topic => t.partitions.push(e),
            _ => topics.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(TopicName(str_bytes(a.partition.topic)))
                    .with_partitions(vec![e]),
            ),
        }
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
