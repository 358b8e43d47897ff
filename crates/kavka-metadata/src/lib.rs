//! The cluster metadata, KRaft-style: the controllers' Raft log holds
//! [`MetadataRecord`]s; replaying them in order gives a [`MetadataImage`].
//!
//! Invariants:
//! - plain data and pure functions: no I/O (but the test-only `golden` module), no async,
//!   no clocks; the same records replayed
//!   on any node give the same image;
//! - an image is immutable and cheap to share (`Arc` inside); replaying a batch returns a
//!   new image and a [`MetadataDelta`] naming what changed, for brokers to act on;
//! - every leader change bumps the partition's leader epoch; every change of a partition
//!   bumps its partition epoch (Kafka's rules), so AlterPartition can compare-and-set;
//! - records are stored and sent in the versioned binary encoding of [`codec`] (protobuf,
//!   one leading format byte); decoding a batch is all or nothing;
//! - a record that does not apply (e.g. a change to an unknown partition) is refused with
//!   a [`ReplayError`] and leaves the image unchanged.

pub mod codec;
mod delta;
#[cfg(any(test, feature = "golden"))]
pub mod golden;
mod image;
mod records;
mod replay;

pub use delta::MetadataDelta;
pub use image::{BrokerRegistration, Endpoint, MetadataImage, PartitionRegistration, TopicImage};
pub use records::{
    ConfigResource, MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
    TopicId, TopicRecord,
};
pub use replay::ReplayError;

/// No leader (Kafka's -1).
pub const NO_LEADER: kavka_model::BrokerId = kavka_model::BrokerId(-1);
