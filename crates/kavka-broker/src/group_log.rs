//! The group coordinator's port (`kavka_group::CoordinatorLog`) over this broker: appends
//! to and reads from `__consumer_offsets` through the replica manager, and creates the
//! topic through the broker API's admin operations.
//!
//! Invariants: appends use acks=all, so an append that returns Ok is committed; reads are
//! a consumer's (committed records only). Holds no state of its own. Model types only:
//! no protobuf or Kafka protocol type.

use crate::api::Admin;
use crate::records::NewRecord;
use crate::replica_manager::{FetchPartitionParams, ReplicaManager};
use bytes::Bytes;
use kavka_group::{BoxFuture, CoordinatorLog, LogRead, MetadataView, OFFSETS_TOPIC};
use kavka_metadata::MetadataImage;
use kavka_model::admin::NewTopic;
use kavka_model::data::Acks;
use kavka_model::{
    BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TopicName, TopicPartition,
};
use kavka_record::{Compression, Origin};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `__consumer_offsets` as a typed name (valid, so this never fails in practice).
fn offsets_topic() -> Result<TopicName, KafkaError> {
    crate::replica_manager::topic_name(OFFSETS_TOPIC)
}

/// The broker as the group coordinator sees it.
pub struct GroupLog {
    replicas: Arc<ReplicaManager>,
    /// Creates `__consumer_offsets` (through the active controller).
    admin: Arc<Admin>,
}

impl GroupLog {
    pub fn new(replicas: Arc<ReplicaManager>, admin: Arc<Admin>) -> Arc<Self> {
        Arc::new(Self { replicas, admin })
    }
}

impl CoordinatorLog for GroupLog {
    fn node_id(&self) -> BrokerId {
        self.replicas.config().node_id
    }

    fn metadata(&self) -> Box<dyn MetadataView> {
        Box::new(ImageView(self.replicas.image()))
    }

    fn watch_applied(&self) -> watch::Receiver<i64> {
        self.replicas.watch_applied()
    }

    fn create_topic(&self, topic: NewTopic) -> BoxFuture<'_, Result<(), KafkaError>> {
        Box::pin(async move {
            let name = topic.name.clone();
            let outcomes = self.admin.create_topics(&[topic], false).await?;
            match outcomes.into_iter().next() {
                Some(o) => o.result.map(|_| ()),
                None => Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!("creating topic '{name}' answered nothing"),
                )),
            }
        })
    }

    fn append(
        &self,
        partition: PartitionId,
        records: Vec<(Bytes, Option<Bytes>)>,
        timestamp_ms: i64,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), KafkaError>> {
        let records = records
            .into_iter()
            .map(|(key, value)| {
                let record = NewRecord {
                    key: Some(key),
                    value,
                    headers: Vec::new(),
                    timestamp_ms,
                };
                (Some(partition), record)
            })
            .collect();
        Box::pin(async move {
            let results = self
                .replicas
                .append_records(
                    &offsets_topic()?,
                    Acks::All,
                    timeout,
                    records,
                    Compression::None,
                    Origin::Broker,
                )
                .await?;
            for (_, r) in results {
                r?;
            }
            Ok(())
        })
    }

    fn log_end(&self, partition: PartitionId) -> BoxFuture<'_, Result<Offset, KafkaError>> {
        Box::pin(async move {
            let tp = TopicPartition::new(offsets_topic()?, partition);
            let part = self.replicas.partition(&tp)?;
            Ok(part.offsets().await.2)
        })
    }

    fn read(
        &self,
        partition: PartitionId,
        offset: Offset,
        max_bytes: usize,
        max_wait: Duration,
    ) -> BoxFuture<'_, LogRead> {
        Box::pin(async move {
            let topic = match offsets_topic() {
                Ok(t) => t,
                Err(e) => {
                    return LogRead {
                        log_start_offset: Offset::ZERO,
                        records: Err(e),
                    };
                }
            };
            let params = FetchPartitionParams {
                tp: TopicPartition::new(topic, partition),
                offset,
                max_bytes,
            };
            let max_wait_ms = max_wait.as_millis() as u64;
            let fetched = self
                .replicas
                .fetch(vec![params], max_wait_ms, 1, max_bytes)
                .await;
            match fetched.into_iter().next() {
                Some(f) => LogRead {
                    log_start_offset: f.offsets.map_or(Offset::ZERO, |o| o.log_start_offset),
                    records: match f.error {
                        Some(e) => Err(e),
                        None => Ok(f.records.into_bytes().into()),
                    },
                },
                None => LogRead {
                    log_start_offset: Offset::ZERO,
                    records: Err(KafkaError::new(
                        ErrorCode::UnknownServerError,
                        format!("a fetch of {OFFSETS_TOPIC}-{partition} answered nothing"),
                    )),
                },
            }
        })
    }
}

/// One applied image, read as the coordinator reads metadata.
struct ImageView(Arc<MetadataImage>);

impl MetadataView for ImageView {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        let name = TopicName::new(topic).ok()?;
        let t = self.0.topic_by_name(&name)?;
        Some(t.partitions.len() as i32)
    }

    fn leader(
        &self,
        topic: &str,
        partition: PartitionId,
    ) -> Option<(Option<BrokerId>, LeaderEpoch)> {
        let name = TopicName::new(topic).ok()?;
        let r = self.0.topic_by_name(&name)?.partitions.get(&partition)?;
        Some((r.has_leader().then_some(r.leader), r.leader_epoch))
    }

    fn broker_count(&self) -> usize {
        self.0.brokers().count()
    }

    fn for_each_topic_name(&self, f: &mut dyn FnMut(&str)) {
        for t in self.0.topics() {
            f(t.name.as_str());
        }
    }
}
