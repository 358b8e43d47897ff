//! Produce: validate every record (Kafka's `LogValidator`, once, on the leader, at most
//! [`ReplicaManager::decode_permits`] at a time per node), apply the topic's compression, append as leader, acknowledge:
//! at once for acks=0, after the append for acks=1, once the high watermark passes the
//! records for acks=all (DESIGN §5.1).

use super::{PartitionResults, ProduceResult, ReplicaManager};
use crate::partition::Partition;
use crate::records::{
    DecodeBudget, NewRecord, apply_topic_compression, build_batch, is_light, rules_for,
    validate_batches,
};
use kavka_model::data::Acks;
use kavka_model::{
    ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TimestampType, TopicName,
    TopicPartition, partitioner,
};
use kavka_record::{Compression, Origin, batches};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Uncompressed requests up to this size per partition are validated inline.
const INLINE_PREPARE_MAX_BYTES: usize = 1 << 20;

/// acks=all waits at most this long, whatever the request asks.
const PRODUCE_TIMEOUT_MAX: Duration = Duration::from_secs(120);
/// When a request gives no timeout (Kafka's `request.timeout.ms` default).
const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The acks=all wait for a request's `timeout_ms` (<= 0: the default).
pub fn produce_timeout(timeout_ms: i32) -> Duration {
    if timeout_ms <= 0 {
        PRODUCE_TIMEOUT_DEFAULT
    } else {
        Duration::from_millis(timeout_ms as u64).min(PRODUCE_TIMEOUT_MAX)
    }
}

/// Clients may not write to the broker's own topics (Kafka refuses appends to internal
/// topics): only the group coordinator writes `__consumer_offsets`.
fn refuse_internal(topic: &TopicName) -> Result<(), KafkaError> {
    if topic.as_str() == kavka_group::OFFSETS_TOPIC {
        return Err(KafkaError::new(
            ErrorCode::InvalidTopicException,
            format!("cannot append to internal topic {topic}"),
        ));
    }
    Ok(())
}

impl ReplicaManager {
    /// Appends to any topic, internal ones included, and waits as `acks` asks.
    pub(crate) async fn append_batches(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        batches: Vec<(PartitionId, Vec<u8>)>,
        origin: Origin,
        budget: &DecodeBudget,
    ) -> Result<PartitionResults<Option<ProduceResult>>, KafkaError> {
        Ok(self
            .append_staged(topic, acks, timeout, batches, origin, budget)
            .await?
            .replicated()
            .await)
    }

    /// Appends producer batches (already RecordBatch v2 bytes) to partitions of `topic`,
    /// in two stages: this returns once every partition's batches are
    /// appended (or refused), so the next request of the same producer may be appended
    /// behind them; awaiting [`Appended::replicated`] then waits for acks=all.
    #[tracing::instrument(level = "debug", skip(self, batches, budget), fields(batches = batches.len()))]
    pub async fn produce_staged(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        batches: Vec<(PartitionId, Vec<u8>)>,
        budget: &DecodeBudget,
    ) -> Result<Appended, KafkaError> {
        refuse_internal(topic)?;
        self.append_staged(topic, acks, timeout, batches, Origin::Client, budget)
            .await
    }

    async fn append_staged(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        batches: Vec<(PartitionId, Vec<u8>)>,
        origin: Origin,
        budget: &DecodeBudget,
    ) -> Result<Appended, KafkaError> {
        let (config, _) = self.topic_config(topic)?;
        let mut stages = Vec::with_capacity(batches.len());
        let mut tasks = Vec::new();
        let mut waited_for_ids = false;
        for (partition, records) in batches {
            let part = match self.partition(&TopicPartition::new(topic.clone(), partition)) {
                Ok(p) => p,
                Err(e) => {
                    stages.push((partition, Stage::Done(Err(e))));
                    continue;
                }
            };
            if let Err(e) = self.check_lease() {
                stages.push((partition, Stage::Done(Err(e))));
                continue;
            }
            if origin == Origin::Client
                && let Err(e) = self
                    .check_producer_ids_issued(&records, &mut waited_for_ids)
                    .await
            {
                stages.push((partition, Stage::Done(Err(e))));
                continue;
            }
            let config = config.clone();
            let rules = rules_for(&config, origin, crate::now_ms());
            let budget = budget.clone();
            let permits = Arc::clone(&self.decode_permits);
            // Small uncompressed batches are checked right on the worker (a CRC and a
            // walk over the records); the rest queue for the blocking pool.
            let light = is_light(&records, config.compression_type, INLINE_PREPARE_MAX_BYTES);
            tasks.push((
                partition,
                tokio::spawn(async move {
                    let tp = part.tp.clone();
                    let prepare = move || {
                        let records = validate_batches(&tp, records, &rules, &budget)?;
                        apply_topic_compression(
                            &tp,
                            records,
                            config.compression_type,
                            config.max_message_bytes as usize,
                        )
                    };
                    let records = if light {
                        prepare()?
                    } else {
                        let _permit = permits.acquire_owned().await.map_err(internal)?;
                        tokio::task::spawn_blocking(prepare)
                            .await
                            .map_err(internal)??
                    };
                    let log_append_time = (config.message_timestamp_type
                        == TimestampType::LogAppendTime)
                        .then(crate::now_ms);
                    let appended = part
                        .append(records, log_append_time, acks == Acks::All)
                        .await?;
                    Ok((part, appended))
                }),
            ));
        }
        for (partition, task) in tasks {
            if acks == Acks::None {
                // Fire and forget, as Kafka's acks=0: the append goes on without us.
                stages.push((partition, Stage::Done(Ok(None))));
                continue;
            }
            let stage = match task.await {
                Err(e) => Stage::Done(Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!("append failed: {e}"),
                ))),
                Ok(Err(e)) => Stage::Done(Err(e)),
                Ok(Ok((part, (info, epoch, log_start)))) => {
                    let result = ProduceResult {
                        base_offset: info.first_offset,
                        record_count: (info.last_offset.0 - info.first_offset.0 + 1) as i32,
                        log_append_time: info.log_append_time,
                        log_start_offset: log_start,
                    };
                    if acks == Acks::All {
                        Stage::Replicating {
                            part,
                            last: info.last_offset,
                            epoch,
                            result,
                        }
                    } else {
                        Stage::Done(Ok(Some(result)))
                    }
                }
            };
            stages.push((partition, stage));
        }
        // The request's timeout runs from its append, however long its answer then
        // waits behind earlier ones on the connection.
        let deadline = tokio::time::Instant::now() + timeout;
        Ok(Appended {
            stages,
            timeout,
            deadline,
        })
    }

    /// Partitions structured records (explicit partition, murmur2 of the key, or one
    /// sticky partition per request for keyless records), batches and appends them.
    pub async fn produce_records(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        records: Vec<(Option<PartitionId>, NewRecord)>,
        compression: Compression,
    ) -> Result<PartitionResults<Option<ProduceResult>>, KafkaError> {
        refuse_internal(topic)?;
        self.append_records(topic, acks, timeout, records, compression, Origin::Client)
            .await
    }

    /// `produce_records` for any topic, internal ones included.
    pub(crate) async fn append_records(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        records: Vec<(Option<PartitionId>, NewRecord)>,
        compression: Compression,
        origin: Origin,
    ) -> Result<PartitionResults<Option<ProduceResult>>, KafkaError> {
        let (_, partitions) = self.topic_config(topic)?;
        // A topic always has partitions once created; an image caught mid-creation must
        // not divide by zero.
        let n = u32::try_from(partitions)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                KafkaError::new(
                    ErrorCode::LeaderNotAvailable,
                    format!("topic {topic} has no partitions yet"),
                )
            })?;
        let sticky = self.sticky.fetch_add(1, Ordering::Relaxed) % n;
        let mut by_partition: BTreeMap<PartitionId, Vec<NewRecord>> = BTreeMap::new();
        for (partition, record) in records {
            let p = match (partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => PartitionId(partitioner::partition_for_key(key, n) as i32),
                (None, None) => PartitionId(sticky as i32),
            };
            by_partition.entry(p).or_default().push(record);
        }
        let mut batches = Vec::new();
        for (p, records) in by_partition {
            batches.push((p, build_batch(records, compression)?));
        }
        self.append_batches(
            topic,
            acks,
            timeout,
            batches,
            origin,
            &DecodeBudget::for_request(),
        )
        .await
    }
}

/// How long a produce waits for this broker's image to show a producer id as issued (it
/// may lag the controller that handed the id's block to another broker by a moment).
const ISSUED_WAIT: Duration = Duration::from_secs(1);

/// The largest producer id among the idempotent batches of `records` (headers only;
/// malformed batches are left to validation).
fn max_producer_id(records: &[u8]) -> Option<i64> {
    batches(records)
        .map_while(Result::ok)
        .map(|(h, _)| h.producer_id)
        .filter(|&pid| pid >= 0)
        .max()
}

impl ReplicaManager {
    /// Idempotent batches must carry a producer id the cluster issued (InitProducerId):
    /// made-up ids would each take producer state on every replica. Every id below the
    /// image's `next_producer_id` was handed out; a larger one gets a moment for this
    /// broker's image to catch up before it is refused with UNKNOWN_PRODUCER_ID; that
    /// moment is given once per request (`waited`), not once per partition.
    async fn check_producer_ids_issued(
        &self,
        records: &[u8],
        waited: &mut bool,
    ) -> Result<(), KafkaError> {
        let Some(pid) = max_producer_id(records) else {
            return Ok(());
        };
        let mut applied = self.applied.subscribe();
        let issued = |rm: &Self| pid < rm.image().next_producer_id;
        if issued(self) {
            return Ok(());
        }
        let wait = if std::mem::replace(waited, true) {
            Duration::ZERO
        } else {
            ISSUED_WAIT
        };
        let waited = tokio::time::timeout(wait, async {
            while !issued(self) {
                if applied.changed().await.is_err() {
                    return;
                }
            }
        });
        if waited.await.is_ok() && issued(self) {
            return Ok(());
        }
        Err(KafkaError::new(
            ErrorCode::UnknownProducerId,
            format!(
                "producer id {pid} was never issued by this cluster (ids handed out by \
                 InitProducerId are below {})",
                self.image().next_producer_id
            ),
        ))
    }
}

fn internal(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownServerError,
        format!("record validation failed: {e}"),
    )
}

/// One partition's produce after its append.
enum Stage {
    /// Answered: refused, appended with acks 0 or 1, or failed.
    Done(Result<Option<ProduceResult>, KafkaError>),
    /// Appended with acks=all: answered once the high watermark passes `last`.
    Replicating {
        part: Arc<Partition>,
        last: Offset,
        epoch: LeaderEpoch,
        result: ProduceResult,
    },
}

/// A produce whose batches are appended: [`Appended::replicated`] waits for what acks=all
/// asks and gives one result per partition, in request order.
pub struct Appended {
    stages: Vec<(PartitionId, Stage)>,
    timeout: Duration,
    /// When the acks=all waits give up (the request's timeout after the append).
    deadline: tokio::time::Instant,
}

impl Appended {
    /// Whether awaiting [`Appended::replicated`] may wait (some partition waits for its
    /// followers); false: it answers at once.
    pub fn waits(&self) -> bool {
        self.stages
            .iter()
            .any(|(_, s)| matches!(s, Stage::Replicating { .. }))
    }

    /// Waits for every acks=all partition's followers (all at once, until the request's
    /// timeout after the append), then answers.
    pub async fn replicated(self) -> PartitionResults<Option<ProduceResult>> {
        let (timeout, deadline) = (self.timeout, self.deadline);
        let waits = self
            .stages
            .into_iter()
            .map(|(partition, stage)| async move {
                let result = match stage {
                    Stage::Done(r) => r,
                    Stage::Replicating {
                        part,
                        last,
                        epoch,
                        result,
                    } => part
                        .wait_replicated(last, epoch, timeout, deadline)
                        .await
                        .map(|()| Some(result)),
                };
                (partition, result)
            });
        futures_util::future::join_all(waits).await
    }
}
