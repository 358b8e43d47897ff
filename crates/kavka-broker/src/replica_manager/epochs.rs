//! Kafka's OffsetForLeaderEpoch, answered by a partition's leader from its epoch
//! history: the end of the largest epoch at or below the one asked.
//!
//! Invariants: only the current leader answers; an asker whose current epoch is older
//! than the leader's is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH. One
//! answer per query, in order.

use super::ReplicaManager;
use crate::partition::Role;
use kavka_model::epoch::{EpochAnswer, EpochEnd, EpochQuery};
use kavka_model::{ErrorCode, KafkaError, TopicPartition};

impl ReplicaManager {
    /// Where each asked epoch ends, as this broker leads the partition.
    #[tracing::instrument(skip_all, fields(partitions = queries.len()))]
    pub async fn epoch_ends(&self, queries: Vec<EpochQuery>) -> Vec<EpochAnswer> {
        queries
            .into_iter()
            .map(|q| {
                let at = &q.partition;
                let hosted = super::topic_name(&at.topic)
                    .and_then(|topic| self.hosted(&TopicPartition::new(topic, at.partition)));
                let result = hosted.and_then(|part| {
                    let (role, epoch) = part.role();
                    if role != Role::Leader {
                        return Err(KafkaError::new(
                            ErrorCode::NotLeaderOrFollower,
                            format!("broker {} does not lead {}", self.config.node_id, part.tp),
                        ));
                    }
                    match q.current_leader_epoch {
                        Some(current) if current < epoch => Err(KafkaError::new(
                            ErrorCode::FencedLeaderEpoch,
                            format!(
                                "{}: epoch {current} is older than the leader's {epoch}",
                                part.tp
                            ),
                        )),
                        Some(current) if current > epoch => Err(KafkaError::new(
                            ErrorCode::UnknownLeaderEpoch,
                            format!(
                                "{}: epoch {current} is newer than the leader's {epoch}",
                                part.tp
                            ),
                        )),
                        _ => Ok(part.epoch_end(q.leader_epoch).map(|end| EpochEnd {
                            leader_epoch: end.epoch,
                            end_offset: end.end_offset,
                        })),
                    }
                });
                EpochAnswer {
                    partition: q.partition,
                    result,
                }
            })
            .collect()
    }
}
