//! Produce, Fetch, ListOffsets and OffsetForLeaderEpoch, translated onto the broker
//! API's data operations exactly as the gRPC BrokerService translates them: Kafka's
//! wire values become model types here (`Acks::from_wire`, `OffsetSpec::from_wire`,
//! `topic_name`), and the answers go back with Kafka's `-1`s.
//!
//! Invariants: batches are stored as the client sent them once validated and given
//! offsets (the replica manager's append); consumers only ever see records below the
//! high watermark; Kafka sends no answer to acks=0 produce requests; every produce and
//! consumer fetch is measured against the client's byte-rate quota (`Ctx::throttle`),
//! and a consumer over it is answered without records.

use super::{Ctx, Staged, error_parts, str_bytes};
use crate::Broker;
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
use kavka_broker::api::{in_request_order, topic_name};
use kavka_broker::{FetchPartitionParams, ProduceResult, produce_timeout};
use kavka_model::acl::{Operation, Resource, ResourceType};
use kavka_model::admin::PartitionRef;
use kavka_model::data::{Acks, OffsetSpec};
use kavka_model::epoch::EpochQuery;
use kavka_model::quota::QuotaKey;
use kavka_model::{ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TopicPartition};

/// Fetch `max_bytes` when a client sends none (Kafka's `fetch.max.bytes` default).
const FETCH_MAX_BYTES_DEFAULT: usize = 50 * 1024 * 1024;
/// Per-partition limit when a client sends none (`max.partition.fetch.bytes`).
const PARTITION_MAX_BYTES_DEFAULT: usize = 1024 * 1024;

fn partition_response(
    index: PartitionId,
    r: Result<Option<ProduceResult>, KafkaError>,
) -> PartitionProduceResponse {
    let index = index.0;
    match r {
        // acks=0: never sent (Kafka answers no acks=0 request).
        Ok(None) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1),
        Ok(Some(r)) => PartitionProduceResponse::default()
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

pub(crate) async fn produce(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    match produce_staged(broker, ctx, req).await {
        Staged::Now(answer) => answer,
        Staged::Later(replicated) => Some(replicated.await),
    }
}

/// Produce in two stages: everything up to the appends is done when this returns (so a
/// connection may read and append its next request); an acks=all request's answer is
/// then the `Later` future, which waits for the followers.
pub(crate) async fn produce_staged(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ProduceRequest,
) -> Staged<Option<ProduceResponse>, ProduceResponse> {
    if req.transactional_id.is_some() {
        return Staged::Now(Some(produce_error(
            &req,
            ErrorCode::UnsupportedForMessageFormat.code(),
        )));
    }
    let answered = req.acks != 0;
    // What the producer's quota counts: the record bytes it sent.
    let bytes: u64 = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum();
    let acks = Acks::from_wire(i32::from(req.acks));
    let timeout = produce_timeout(req.timeout_ms);
    let mut tasks = Vec::with_capacity(req.topic_data.len());
    let budget = kavka_broker::DecodeBudget::for_request();
    for t in req.topic_data {
        let api = broker.api.clone();
        let budget = budget.clone();
        let topic = acks.clone().and_then(|acks| {
            ctx.check(broker, Operation::Write, Resource::topic(t.name.0.as_str()))?;
            Ok((topic_name(t.name.0.as_str())?, acks))
        });
        let batches: Vec<(PartitionId, Vec<u8>)> = t
            .partition_data
            .into_iter()
            .map(|p| {
                (
                    PartitionId(p.index),
                    p.records.map(|b| b.to_vec()).unwrap_or_default(),
                )
            })
            .collect();
        let indexes: Vec<PartitionId> = batches.iter().map(|(p, _)| *p).collect();
        tasks.push((
            t.name,
            indexes,
            tokio::spawn(async move {
                let (topic, acks) = topic?;
                api.produce_staged(&topic, acks, timeout, batches, &budget)
                    .await
            }),
        ));
    }
    let mut appended = Vec::with_capacity(tasks.len());
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
            && ctx.may_create_topic(broker, &name.0)
        {
            unknown.push(name.0.to_string());
        }
        appended.push((name, indexes, result));
    }
    // Unknown topics are created for the next try (auto.create.topics.enable), in one
    // call; this answer stays UNKNOWN_TOPIC_OR_PARTITION, which producers retry after
    // asking for metadata again. (Kafka creates topics on Metadata only; producers that
    // skip it get them too.)
    if !unknown.is_empty() {
        super::metadata::auto_create(broker, &unknown).await;
    }
    // Kafka counts every produce request against the quota, and throttles after the
    // append: the records are in, the client is told to wait (KIP-219).
    let throttle_ms = ctx.throttle(broker, QuotaKey::ProducerByteRate, bytes, false);
    if !answered {
        // acks=0: nothing waits, and `replicated` only counts the appends for the metrics.
        for (.., produced) in appended {
            if let Ok(produced) = produced {
                produced.replicated().await;
            }
        }
        return Staged::Now(None);
    }
    let waits = appended
        .iter()
        .any(|(.., r)| r.as_ref().is_ok_and(|p| p.waits()));
    let answer = async move {
        let mut responses = Vec::with_capacity(appended.len());
        for (name, indexes, result) in appended {
            let partitions = match result {
                Ok(produced) => produced
                    .replicated()
                    .await
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
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms)
    };
    if waits {
        Staged::Later(Box::pin(answer))
    } else {
        Staged::Now(Some(answer.await))
    }
}

pub(crate) async fn fetch(broker: &Broker, ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    // Fetch sessions (KIP-227) are not kept: every fetch is a full one, and a session id
    // of 0 in the answer tells the client so.
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let mut asks = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            // A name Kafka would not accept, or a topic the caller may not read, is
            // answered here, in its place.
            let named = ctx
                .check(broker, Operation::Read, Resource::topic(t.topic.0.as_str()))
                .and_then(|()| topic_name(t.topic.0.as_str()));
            asks.push(match named {
                Ok(topic) => Ok(FetchPartitionParams {
                    tp: TopicPartition::new(topic, PartitionId(p.partition)),
                    offset: Offset(p.fetch_offset),
                    max_bytes: if p.partition_max_bytes > 0 {
                        p.partition_max_bytes as usize
                    } else {
                        PARTITION_MAX_BYTES_DEFAULT
                    },
                }),
                Err(e) => Err((t.topic.clone(), p.partition, e)),
            });
        }
    }
    let max_bytes = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        FETCH_MAX_BYTES_DEFAULT
    };
    // An error answers the fetch at once, as the broker's own errors do.
    let max_wait_ms = if asks.iter().all(Result::is_ok) {
        req.max_wait_ms.max(0) as u64
    } else {
        0
    };
    let fetched = in_request_order(asks, async |params| {
        broker
            .api
            .fetch(
                params,
                max_wait_ms,
                req.min_bytes.max(0) as usize,
                max_bytes,
            )
            .await
    })
    .await;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for f in fetched {
        let (topic, partition, error, offsets, records) = match f {
            Ok(f) => (
                TopicName(str_bytes(f.tp.topic.to_string())),
                f.tp.partition.0,
                f.error,
                f.offsets,
                f.records,
            ),
            Err((topic, partition, e)) => (topic, partition, Some(e), None, Default::default()),
        };
        let hw = offsets.map_or(-1, |o| o.high_watermark.0);
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(error.as_ref().map_or(0, |e| e.code.code()))
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(offsets.map_or(-1, |o| o.log_start_offset.0))
            .with_aborted_transactions(Some(Vec::new()))
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(records.into_bytes()));
        match topics.last_mut() {
            Some(t) if t.topic == topic => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(topic)
                    .with_partitions(vec![data]),
            ),
        }
    }
    // A consumer over its quota gets no records and a throttle time (Kafka's throttled
    // fetch response); the bytes it was not given do not count. Replica fetches are
    // never throttled.
    if req.replica_id.0 < 0 {
        let bytes: u64 = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
            .sum();
        let throttle_ms = ctx.throttle(broker, QuotaKey::ConsumerByteRate, bytes, true);
        if throttle_ms > 0 {
            return FetchResponse::default().with_throttle_time_ms(throttle_ms);
        }
    }
    FetchResponse::default().with_responses(topics)
}

pub(crate) async fn list_offsets(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx
            .check(
                broker,
                Operation::Describe,
                Resource::topic(t.name.0.as_str()),
            )
            .and_then(|()| topic_name(t.name.0.as_str()));
        let asks = t
            .partitions
            .iter()
            .map(|p| {
                let partition = PartitionId(p.partition_index);
                let spec = match &topic {
                    Ok(_) => OffsetSpec::from_wire(p.timestamp),
                    Err(e) => Err(e.clone()),
                };
                spec.map(|spec| (partition, spec))
                    .map_err(|e| (partition, e))
            })
            .collect();
        let answers = in_request_order(asks, async |asked| match &topic {
            Ok(topic) => broker.api.list_offsets(topic, asked).await,
            // Every ask already failed on the name.
            Err(_) => Vec::new(),
        })
        .await;
        let partitions = answers
            .into_iter()
            .map(|r| {
                let (p, r) = match r {
                    Ok((p, r)) => (p, r),
                    Err((p, e)) => (p, Err(e)),
                };
                let resp = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.0)
                    .with_leader_epoch(-1);
                match r {
                    Ok(listed) => resp
                        .with_offset(listed.map_or(-1, |l| l.offset.0))
                        .with_timestamp(listed.and_then(|l| l.timestamp_ms).unwrap_or(-1)),
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
    ctx: &Ctx<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // Topics the caller may not describe are answered here, the rest by the broker.
    let (allowed, denied): (Vec<_>, Vec<_>) = req.topics.iter().partition(|t| {
        ctx.may(
            broker,
            Operation::Describe,
            Resource::topic(t.topic.0.as_str()),
        )
    });
    let asked = allowed
        .into_iter()
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
    let answers = broker.api.epoch_ends(asked).await;
    let mut topics: Vec<OffsetForLeaderTopicResult> = denied
        .into_iter()
        .map(|t| {
            let code = kavka_broker::api::authorize::denied_code(ResourceType::Topic).code();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(code)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
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
