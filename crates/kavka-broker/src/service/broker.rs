//! `kavka.v1.BrokerService`: produce, fetch, list offsets, and the replication RPCs
//! (replica fetch streams and OffsetForLeaderEpoch), translated onto the broker API
//! (`crate::api::BrokerApi`): decode (names, acks and timestamps checked with the
//! errors the Kafka listener gives too), call, encode. Answers convert in
//! `kavka-proto`'s `conv`.

use super::auth;
use crate::api::authorize::denied;
use crate::api::{BrokerApi, in_request_order, topic_name};
use crate::quotas::QuotaClient;
use crate::records::NewRecord;
use crate::replica_manager::{FetchPartitionParams, produce_timeout};
use kavka_model::acl::{Caller, Operation, Resource, ResourceType};
use kavka_model::data::{Acks, OffsetSpec, ReplicaFetch};
use kavka_model::epoch::EpochQuery;
use kavka_model::quota::QuotaKey;
use kavka_model::{ErrorCode, KafkaError, Offset, PartitionId, TopicPartition};
use kavka_proto::conv::{
    UnaskedPartition, fetch_response, list_offsets_result, produce_result, status,
};
use kavka_proto::v1::{self, broker_service_server::BrokerService as Broker};
use kavka_record::{Compression, Header};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

pub struct BrokerService {
    api: BrokerApi,
}

impl BrokerService {
    /// Records `bytes` against the caller's `key` quota and, when it is over, waits out
    /// the throttle time before answering: gRPC answers carry no throttle time, so the
    /// client is slowed as Kafka slowed clients before KIP-219. Cluster nodes are never
    /// throttled; gRPC has no client id, so the user's quotas apply (with client id "").
    async fn throttle(&self, caller: &Caller, key: QuotaKey, bytes: u64) {
        if caller.is_cluster_node() {
            return;
        }
        let client = QuotaClient {
            user: caller.principal.name().to_string(),
            client_id: String::new(),
        };
        let wait = self.api.throttle(key, &client, bytes, false);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    pub fn new(api: BrokerApi) -> Self {
        Self { api }
    }

    pub fn into_server(self) -> v1::broker_service_server::BrokerServiceServer<Self> {
        v1::broker_service_server::BrokerServiceServer::new(self)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }
}

/// Largest gRPC message either way: a fetch answer or produce request of many batches.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

fn invalid(msg: String) -> Status {
    status(&KafkaError::new(ErrorCode::InvalidRequest, msg))
}

#[tonic::async_trait]
impl Broker for BrokerService {
    #[tracing::instrument(skip_all)]
    async fn init_producer_id(
        &self,
        req: Request<v1::InitProducerIdRequest>,
    ) -> Result<Response<v1::InitProducerIdResponse>, Status> {
        // IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
        let caller = auth::caller(&req);
        if !self
            .api
            .is_authorized(&caller, Operation::IdempotentWrite, Resource::cluster())
            && !self
                .api
                .is_authorized_for_any(&caller, Operation::Write, ResourceType::Topic)
        {
            return Err(status(&denied(
                &caller,
                Operation::IdempotentWrite,
                Resource::cluster(),
            )));
        }
        Ok(Response::new(match self.api.producers.next_id().await {
            Ok(id) => v1::InitProducerIdResponse {
                error: None,
                producer_id: id,
                producer_epoch: 0,
            },
            Err(e) => v1::InitProducerIdResponse {
                error: Some(e.into()),
                producer_id: -1,
                producer_epoch: -1,
            },
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().topic, acks = req.get_ref().acks))]
    async fn produce(
        &self,
        req: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let topic = req.get_ref().topic.clone();
        let caller = auth::caller(&req);
        auth::require(
            &self.api,
            &caller,
            [(Operation::Write, Resource::topic(&topic))],
        )?;
        let req = req.into_inner();
        // What the producer's quota counts: batch bytes, or the records' payload.
        let bytes: u64 = req
            .batches
            .iter()
            .map(|b| b.records.len() as u64)
            .sum::<u64>()
            + req
                .records
                .iter()
                .map(|r| {
                    (r.key.as_ref().map_or(0, |k| k.len())
                        + r.value.as_ref().map_or(0, |v| v.len())) as u64
                })
                .sum::<u64>();
        if !req.batches.is_empty() && !req.records.is_empty() {
            return Err(invalid(
                "a produce request carries either batches or records, not both".into(),
            ));
        }
        let acks = Acks::from_wire(req.acks).map_err(|e| status(&e))?;
        let topic = topic_name(&req.topic).map_err(|e| status(&e))?;
        let results = if req.records.is_empty() {
            let batches = req
                .batches
                .into_iter()
                .map(|b| (PartitionId(b.partition), b.records.to_vec()))
                .collect();
            self.api
                .produce(
                    &topic,
                    acks,
                    produce_timeout(req.timeout_ms),
                    batches,
                    &crate::DecodeBudget::for_request(),
                )
                .await
        } else {
            let compression = match req.compression.as_str() {
                "" => Compression::None,
                name => Compression::from_name(name).ok_or_else(|| {
                    status(&KafkaError::new(
                        ErrorCode::UnsupportedCompressionType,
                        format!(
                            "unknown compression '{name}': use none, gzip, snappy, lz4 or zstd"
                        ),
                    ))
                })?,
            };
            let now = crate::now_ms();
            let records = req
                .records
                .into_iter()
                .map(|r| {
                    (
                        r.partition.map(PartitionId),
                        NewRecord {
                            key: r.key,
                            value: r.value,
                            headers: r
                                .headers
                                .into_iter()
                                .map(|h| Header {
                                    key: h.key,
                                    value: h.value,
                                })
                                .collect(),
                            timestamp_ms: r.timestamp_ms.unwrap_or(now),
                        },
                    )
                })
                .collect();
            self.api
                .produce_records(
                    &topic,
                    acks,
                    produce_timeout(req.timeout_ms),
                    records,
                    compression,
                )
                .await
        }
        .map_err(|e| status(&e))?;
        self.throttle(&caller, QuotaKey::ProducerByteRate, bytes)
            .await;
        Ok(Response::new(v1::ProduceResponse {
            results: results
                .into_iter()
                .map(|(p, r)| produce_result(p, r))
                .collect(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(max_wait_ms = req.get_ref().max_wait_ms))]
    async fn fetch(
        &self,
        req: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        let caller = auth::caller(&req);
        let req = req.into_inner();
        auth::require(
            &self.api,
            &caller,
            req.topics
                .iter()
                .map(|t| (Operation::Read, Resource::topic(&t.topic))),
        )?;
        if req.max_wait_ms < 0 || req.min_bytes < 0 || req.max_bytes < 0 {
            return Err(invalid(format!(
                "max_wait_ms, min_bytes and max_bytes must not be negative (got {}, {}, {})",
                req.max_wait_ms, req.min_bytes, req.max_bytes
            )));
        }
        let max_bytes = if req.max_bytes == 0 {
            50 * 1024 * 1024
        } else {
            req.max_bytes as usize
        };
        let mut asks = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                if p.partition_max_bytes < 0 {
                    return Err(invalid(format!(
                        "partition_max_bytes must not be negative, got {}",
                        p.partition_max_bytes
                    )));
                }
                // A name Kafka would not accept is answered here, in its place.
                asks.push(match topic_name(&t.topic) {
                    Ok(topic) => Ok(FetchPartitionParams {
                        tp: TopicPartition::new(topic, PartitionId(p.partition)),
                        offset: Offset(p.fetch_offset),
                        max_bytes: if p.partition_max_bytes == 0 {
                            1024 * 1024
                        } else {
                            p.partition_max_bytes as usize
                        },
                    }),
                    Err(e) => Err((t.topic.clone(), p.partition, e)),
                });
            }
        }
        // An error answers the fetch at once, as the broker's own errors do.
        let max_wait_ms = if asks.iter().all(Result::is_ok) {
            req.max_wait_ms as u64
        } else {
            0
        };
        let fetched = in_request_order(asks, async |params| {
            self.api
                .fetch(
                    params,
                    max_wait_ms,
                    req.min_bytes as usize,
                    max_bytes.min(MESSAGE_BYTES_MAX / 2),
                )
                .await
        })
        .await;
        let bytes: u64 = fetched
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .map(|f| f.records.len() as u64)
            .sum();
        self.throttle(&caller, QuotaKey::ConsumerByteRate, bytes)
            .await;
        Ok(Response::new(fetch_response(fetched.into_iter().map(
            |f| {
                f.map_err(|(topic, partition, error)| UnaskedPartition {
                    topic,
                    partition,
                    error,
                })
            },
        ))))
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic))]
    async fn list_offsets(
        &self,
        req: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        let caller = auth::caller(&req);
        let req = req.into_inner();
        auth::require(
            &self.api,
            &caller,
            [(Operation::Describe, Resource::topic(&req.topic))],
        )?;
        let topic = match topic_name(&req.topic) {
            Ok(topic) => topic,
            Err(e) => {
                let results = req
                    .partitions
                    .iter()
                    .map(|p| list_offsets_result(PartitionId(p.partition), Err(e.clone())))
                    .collect();
                return Ok(Response::new(v1::ListOffsetsResponse { results }));
            }
        };
        let asks = req
            .partitions
            .iter()
            .map(|p| {
                let partition = PartitionId(p.partition);
                OffsetSpec::from_wire(p.timestamp)
                    .map(|spec| (partition, spec))
                    .map_err(|e| (partition, e))
            })
            .collect();
        let results = in_request_order(asks, async |asked| {
            self.api.list_offsets(&topic, asked).await
        })
        .await
        .into_iter()
        .map(|r| match r {
            Ok((partition, listed)) => list_offsets_result(partition, listed),
            Err((partition, e)) => list_offsets_result(partition, Err(e)),
        })
        .collect();
        Ok(Response::new(v1::ListOffsetsResponse { results }))
    }

    #[tracing::instrument(skip_all, fields(replica = req.get_ref().replica_id))]
    async fn offset_for_leader_epoch(
        &self,
        req: Request<v1::OffsetForLeaderEpochRequest>,
    ) -> Result<Response<v1::OffsetForLeaderEpochResponse>, Status> {
        let caller = auth::caller(&req);
        auth::require(
            &self.api,
            &caller,
            req.get_ref()
                .partitions
                .iter()
                .map(|p| (Operation::Describe, Resource::topic(&p.topic))),
        )?;
        let queries = req
            .into_inner()
            .partitions
            .into_iter()
            .map(EpochQuery::from)
            .collect();
        let answers = self.api.epoch_ends(queries).await;
        Ok(Response::new(v1::OffsetForLeaderEpochResponse {
            results: answers.iter().map(v1::EpochEndOffset::from).collect(),
        }))
    }

    type ReplicaFetchStream =
        Pin<Box<dyn Stream<Item = Result<v1::ReplicaFetchResponse, Status>> + Send>>;

    async fn replica_fetch(
        &self,
        req: Request<Streaming<v1::ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        // Replication is the cluster's own: a node presenting the cluster's secret.
        auth::require(
            &self.api,
            &auth::caller(&req),
            [(Operation::ClusterAction, Resource::cluster())],
        )?;
        let mut incoming = req.into_inner();
        let api = self.api.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let req = match incoming.message().await {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(s) => {
                        tracing::debug!(error = %s, "replica fetch stream broke");
                        return;
                    }
                };
                let req = match ReplicaFetch::try_from(req) {
                    Ok(req) => req,
                    Err(e) => {
                        let _ = tx.send(Err(status(&e))).await;
                        return;
                    }
                };
                let resp = v1::ReplicaFetchResponse::from(api.replica_fetch(req).await);
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
