//! The Raft type configuration of the metadata quorum.

use kavka_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Controllers are identified by their `node.id`.
pub type NodeId = u64;

/// A batch of metadata records, proposed by the active controller and committed together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRequest {
    pub records: Vec<MetadataRecord>,
}

impl fmt::Display for MetadataRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} metadata record(s)", self.records.len())
    }
}

/// What a committed batch became: its offset (the Raft log index) in the metadata log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataReply {
    pub offset: u64,
}

/// A voter's address for Raft traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterNode {
    pub addr: String,
}

impl fmt::Display for VoterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

openraft::declare_raft_types!(
    /// The metadata quorum's types.
    pub TypeConfig:
        D = MetadataRequest,
        R = MetadataReply,
        NodeId = NodeId,
        Node = VoterNode,
);
