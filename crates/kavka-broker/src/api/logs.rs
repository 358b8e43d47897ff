//! The log operations of the broker API: DescribeLogDirs, DescribeProducers and
//! DeleteRecords, in model types (`kavka_model::logs`), onto the replica manager.
//!
//! Invariants: one outcome per partition asked, in order; only a partition's leader
//! answers DescribeProducers and DeleteRecords.

use super::BrokerApi;
use kavka_model::logs::{ActiveProducer, DeletedRecords, LogDir};
use kavka_model::{KafkaError, Offset, TopicPartition};

impl BrokerApi {
    /// This broker's log dir with the hosted replicas `wanted` picks.
    pub async fn describe_log_dir(&self, wanted: impl Fn(&TopicPartition) -> bool) -> LogDir {
        self.replicas().describe_log_dir(wanted).await
    }

    /// The idempotent producers each partition's leader knows.
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Vec<Result<Vec<ActiveProducer>, KafkaError>> {
        self.replicas().describe_producers(partitions).await
    }

    /// Deletes each partition's records below its offset (`None`: the high watermark).
    pub async fn delete_records(
        &self,
        asked: &[(TopicPartition, Option<Offset>)],
    ) -> Vec<DeletedRecords> {
        self.replicas().delete_records(asked).await
    }
}
