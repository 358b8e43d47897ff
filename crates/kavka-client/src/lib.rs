//! Rust client for Kavka over gRPC: admin calls, a producer that partitions and batches
//! on the client (Kafka's default partitioner, sticky for keyless records), and a
//! consumer that fetches and decodes batches, a group consumer (subscribe, commit,
//! rebalance callbacks) and a retry-then-dead-letter helper.
//!
//! Depends only on `kavka-model`, `kavka-proto` and `kavka-record` (DESIGN §3).

mod acls;
mod admin;
mod connection;
mod consumer;
mod credentials;
pub mod dead_letter;
mod error;
mod group_consumer;
mod group_lag;
mod groups;
mod producer;
mod quotas;
mod users;

pub use admin::{NewTopic, TopicInfo};
pub use connection::{Client, parse_bootstrap};
pub use consumer::{ConsumedRecord, Consumer, OffsetSpec};
pub use credentials::Credentials;
pub use error::ClientError;
pub use group_consumer::{
    GroupConsumer, GroupConsumerConfig, OffsetReset, RebalanceListener, TopicPartition,
};
pub use group_lag::{GroupLag, LagRow, lag};
pub use kavka_proto::v1;
/// Plaintext or TLS channels (`Client::connect_with`).
pub use kavka_tls::{ClientTlsFiles, Transport};
pub use producer::{Acks, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
