//! The controller quorum (DESIGN §2, §5): an openraft group whose log holds batches of
//! metadata records; its leader is the active controller.
//!
//! - `types`: the Raft type configuration (a log entry is a batch of `MetadataRecord`s);
//! - `raft::log_store`: the Raft log, vote and committed id in sled, flushed before an
//!   append or vote is acknowledged;
//! - `raft::state_machine`: replays committed batches into the `MetadataImage`;
//!   snapshots are the image's records, persisted with their meta in one sled batch;
//! - `control`: the control managers (pure decisions: topics, partitions, brokers,
//!   broker configs, producer ids, ACLs); `control::liveness` says which brokers an
//!   election may pick (heartbeating now; settled, to displace a leader);
//! - `controller`: runs them on the active controller and tracks broker sessions.
//!
//! Invariants: nothing here decides anything; an entry is applied only once committed;
//! the same log gives the same image on every voter. Must not depend on the broker.

pub mod client_port;
pub mod control;
pub mod controller;
pub mod metrics;
pub mod node;
pub mod quorum;
pub mod raft;
pub mod service;
mod types;
pub mod voters;

pub use quorum::{MetadataUpdate, Quorum, QuorumConfig, QuorumError};
pub use types::{DirectoryId, MetadataReply, MetadataRequest, NodeId, TypeConfig, VoterNode};
