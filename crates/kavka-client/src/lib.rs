//! Rust client for Kavka over gRPC: admin calls, a producer that partitions and batches
//! on the client (Kafka's default partitioner, sticky for keyless records), and a
//! consumer that fetches and decodes batches.
//!
//! Depends only on `kavka-model`, `kavka-proto` and `kavka-record` (DESIGN §3).

mod admin;
mod connection;
mod consumer;
mod error;
mod groups;
mod producer;

pub use admin::{NewTopic, TopicInfo};
pub use connection::{Client, parse_bootstrap};
pub use consumer::{ConsumedRecord, Consumer, OffsetSpec};
pub use error::ClientError;
pub use kavka_proto::v1;
pub use producer::{Acks, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
