//! The broker: hosts partition logs and serves produce, fetch, offsets and topic
//! administration over gRPC.
//!
//! Layers, each talking only to the one below: `service` (thin tonic handlers, protobuf
//! in and out, converted by `kavka-proto`'s `conv`) and the Kafka listener (another
//! crate) → `api::BrokerApi` (the broker API, by operation, in model types) →
//! `replica_manager` (topics and partitions, produce/fetch semantics) → `partition` (one
//! log, its lock and group commit) → `kavka-log`.
//!
//! Topic metadata comes from the controller quorum: the broker follows the committed
//! metadata log (`metadata`), holds a session with the active controller (`session`),
//! whose answered heartbeats renew the leader lease (`lease`) every leader-side request
//! checks, and sends topic admin writes to the controllers (`controllers`).
//!
//! The group coordinator is its own crate, `kavka-group`; this crate implements its port
//! over the replica manager (`group_log`) and starts it (`node`).

pub mod api;
pub mod cluster_view;
mod config;
pub mod controllers;
mod error;
pub mod fetcher;
mod group_log;
mod isr;
pub mod lease;
pub mod metadata;
pub mod metrics;
pub mod node;
mod partition;
pub mod producer_ids;
pub mod quotas;
mod records;
mod replica_manager;
pub mod service;
pub mod session;
mod throttle;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use lease::LeaderLease;
pub use records::{DecodeBudget, NewRecord};
pub use replica_manager::{
    FetchOffsets, FetchPartitionParams, FetchedPartition, Followed, LocalReplica, PartitionResults,
    PartitionState, ProduceResult, ReconcileStats, ReplicaManager, TopicDescription, TopicSummary,
    produce_timeout,
};
pub use session::{ControllerSession, ControllerView};

/// Milliseconds since the Unix epoch: the broker's clock for timestamps and retention.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
