//! `kavka.v1.BrokerService`: produce, fetch, list offsets, and the replication RPCs
//! (replica fetch streams and OffsetForLeaderEpoch).

use crate::producer_ids::ProducerIdManager;
use crate::records::NewRecord;
use crate::replica_manager::{
    FetchPartitionParams, ProduceResult, ReplicaManager, produce_timeout,
};
use kavka_model::epoch::EpochQuery;
use kavka_model::{ErrorCode, KafkaError, Offset};
use kavka_proto::conv::status;
use kavka_proto::v1::{self, broker_service_server::BrokerService as Broker};
use kavka_record::{Compression, Header};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

pub struct BrokerService {
    replicas: Arc<ReplicaManager>,
    producer_ids: Arc<ProducerIdManager>,
}

impl BrokerService {
    pub fn new(replicas: Arc<ReplicaManager>, producer_ids: Arc<ProducerIdManager>) -> Self {
        Self {
            replicas,
            producer_ids,
        }
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

fn produce_result(
    partition: i32,
    r: Result<ProduceResult, KafkaError>,
) -> v1::PartitionProduceResult {
    match r {
        Ok(r) => v1::PartitionProduceResult {
            partition,
            error: None,
            base_offset: r.base_offset.0,
            log_append_time_ms: r.log_append_time.unwrap_or(-1),
            log_start_offset: r.log_start_offset.0,
            record_count: r.record_count,
        },
        Err(e) => v1::PartitionProduceResult {
            partition,
            error: Some(e.into()),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            record_count: 0,
        },
    }
}

#[tonic::async_trait]
impl Broker for BrokerService {
    #[tracing::instrument(skip_all)]
    async fn init_producer_id(
        &self,
        _req: Request<v1::InitProducerIdRequest>,
    ) -> Result<Response<v1::InitProducerIdResponse>, Status> {
        Ok(Response::new(match self.producer_ids.next_id().await {
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

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic, acks = req.get_ref().acks))]
    async fn produce(
        &self,
        req: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let req = req.into_inner();
        if !req.batches.is_empty() && !req.records.is_empty() {
            return Err(invalid(
                "a produce request carries either batches or records, not both".into(),
            ));
        }
        let results = if req.records.is_empty() {
            let batches = req
                .batches
                .into_iter()
                .map(|b| (b.partition, b.records.to_vec()))
                .collect();
            self.replicas
                .produce(
                    &req.topic,
                    req.acks,
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
                        r.partition,
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
            self.replicas
                .produce_records(
                    &req.topic,
                    req.acks,
                    produce_timeout(req.timeout_ms),
                    records,
                    compression,
                )
                .await
        }
        .map_err(|e| status(&e))?;
        Ok(Response::new(v1::ProduceResponse {
            results: results
                .into_iter()
                .map(|(p, r)| produce_result(p, r))
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(max_wait_ms = req.get_ref().max_wait_ms))]
    async fn fetch(
        &self,
        req: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        let req = req.into_inner();
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
        let mut params = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                if p.partition_max_bytes < 0 {
                    return Err(invalid(format!(
                        "partition_max_bytes must not be negative, got {}",
                        p.partition_max_bytes
                    )));
                }
                params.push(FetchPartitionParams {
                    topic: t.topic.clone(),
                    partition: p.partition,
                    offset: Offset(p.fetch_offset),
                    max_bytes: if p.partition_max_bytes == 0 {
                        1024 * 1024
                    } else {
                        p.partition_max_bytes as usize
                    },
                });
            }
        }
        let fetched = self
            .replicas
            .fetch(
                params,
                req.max_wait_ms as u64,
                req.min_bytes as usize,
                max_bytes.min(MESSAGE_BYTES_MAX / 2),
            )
            .await;
        let mut topics: Vec<v1::FetchTopicResult> = Vec::new();
        for f in fetched {
            let result = v1::FetchPartitionResult {
                partition: f.partition,
                error: f.error.map(Into::into),
                high_watermark: f.high_watermark.0,
                log_start_offset: f.log_start_offset.0,
                log_end_offset: f.log_end_offset.0,
                records: f.records.into(),
            };
            match topics.last_mut() {
                Some(t) if t.topic == f.topic => t.partitions.push(result),
                _ => topics.push(v1::FetchTopicResult {
                    topic: f.topic,
                    partitions: vec![result],
                }),
            }
        }
        Ok(Response::new(v1::FetchResponse { topics }))
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic))]
    async fn list_offsets(
        &self,
        req: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        let req = req.into_inner();
        let asked = req
            .partitions
            .iter()
            .map(|p| (p.partition, p.timestamp))
            .collect();
        let results = self
            .replicas
            .list_offsets(&req.topic, asked)
            .await
            .into_iter()
            .map(|(partition, r)| match r {
                Ok((offset, timestamp)) => v1::ListOffsetsResult {
                    partition,
                    error: None,
                    offset: offset.0,
                    timestamp,
                },
                Err(e) => v1::ListOffsetsResult {
                    partition,
                    error: Some(e.into()),
                    offset: -1,
                    timestamp: -1,
                },
            })
            .collect();
        Ok(Response::new(v1::ListOffsetsResponse { results }))
    }

    #[tracing::instrument(skip_all, fields(replica = req.get_ref().replica_id))]
    async fn offset_for_leader_epoch(
        &self,
        req: Request<v1::OffsetForLeaderEpochRequest>,
    ) -> Result<Response<v1::OffsetForLeaderEpochResponse>, Status> {
        let queries = req
            .into_inner()
            .partitions
            .into_iter()
            .map(EpochQuery::from)
            .collect();
        let answers = self.replicas.epoch_ends(queries).await;
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
        let mut incoming = req.into_inner();
        let replicas = Arc::clone(&self.replicas);
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
                let resp = replicas.replica_fetch(req).await;
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
