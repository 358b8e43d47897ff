//! Control managers, Kafka-style: pure functions `(image, request) -> (records, reply)`.
//! They decide and return records; they never mutate anything. Only the active
//! controller runs them, and a decision takes effect only once its records commit.

pub mod brokers;
pub mod liveness;
pub mod partitions;
pub mod placement;
pub mod producer_ids;
pub mod topics;

use kavka_metadata::MetadataRecord;

/// What a control manager decided: the records to propose and the reply to give once
/// they commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<R> {
    pub records: Vec<MetadataRecord>,
    pub reply: R,
}
