//! The broker's logs as they are on disk, for Kafka's DescribeLogDirs, DescribeProducers
//! and DeleteRecords: where they live and how big they are, the idempotent producers a
//! leader knows, and moving a leader's log start forward.
//!
//! Invariants: DescribeProducers and DeleteRecords are answered only by the partition's
//! leader (NOT_LEADER_OR_FOLLOWER elsewhere); DeleteRecords deletes committed records
//! only. One answer per partition asked, in order. Must not depend on any listener.

use super::{ReplicaManager, Slot};
use kavka_model::logs::{ActiveProducer, DeletedRecords, LogDir, ReplicaLog};
use kavka_model::{ErrorCode, KafkaError, Offset, TopicPartition};
use std::sync::Arc;

impl ReplicaManager {
    /// This broker's one log dir and the hosted replicas `wanted` picks (`None`: all),
    /// in partition order. Offline replicas are left out (their logs cannot be read).
    #[tracing::instrument(skip_all)]
    pub async fn describe_log_dir(&self, wanted: impl Fn(&TopicPartition) -> bool) -> LogDir {
        let dir = &self.config.data_dir;
        let mut online: Vec<(TopicPartition, Arc<crate::partition::Partition>)> = self
            .read_state()
            .partitions
            .iter()
            .filter(|(tp, _)| wanted(tp))
            .filter_map(|(tp, slot)| match slot {
                Slot::Online(p) => Some((tp.clone(), Arc::clone(p))),
                Slot::Offline { .. } => None,
            })
            .collect();
        online.sort_by(|a, b| a.0.cmp(&b.0));
        let mut replicas = Vec::with_capacity(online.len());
        for (tp, part) in online {
            let (_, hw, end, size) = part.offsets().await;
            replicas.push(ReplicaLog {
                partition: tp,
                size_bytes: size,
                offset_lag: (hw.0 - end.0).max(0),
            });
        }
        let (space, error) = match kavka_log::volume_space(dir) {
            Ok(s) => (Some(s), None),
            Err(e) => (
                None,
                Some(KafkaError::new(
                    ErrorCode::KafkaStorageError,
                    format!("cannot read the log dir {}: {e}", dir.display()),
                )),
            ),
        };
        LogDir {
            path: dir.display().to_string(),
            error,
            total_bytes: space.map(|s| s.total_bytes),
            usable_bytes: space.map(|s| s.usable_bytes),
            replicas,
        }
    }

    /// The idempotent producers each partition's log knows, as its leader.
    #[tracing::instrument(skip_all, fields(partitions = partitions.len()))]
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Vec<Result<Vec<ActiveProducer>, KafkaError>> {
        let mut out = Vec::with_capacity(partitions.len());
        for tp in partitions {
            out.push(match self.partition(tp) {
                Ok(part) => part.active_producers().await,
                Err(e) => Err(e),
            });
        }
        out
    }

    /// Deletes each partition's records below its offset (`None`: below the high
    /// watermark), as its leader; answers each log's new start.
    #[tracing::instrument(skip_all, fields(partitions = asked.len()))]
    pub async fn delete_records(
        &self,
        asked: &[(TopicPartition, Option<Offset>)],
    ) -> Vec<DeletedRecords> {
        let mut out = Vec::with_capacity(asked.len());
        for (tp, before) in asked {
            let r = match self.partition(tp) {
                Ok(part) => part.delete_records(*before).await,
                Err(e) => Err(e),
            };
            if let Ok(start) = &r {
                tracing::info!(partition = %tp, log_start = %start, "records deleted");
            }
            out.push(r);
        }
        out
    }
}
