//! The Raft type configuration of the metadata quorum.

use kavka_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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

/// A controller's data dir identity (Kafka's `directory.id` in `meta.properties`, KIP-853):
/// made once when the data dir is created, so a voter that comes back with an emptied
/// data dir has another one and cannot pass for the voter that cast its old votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DirectoryId(pub uuid::Uuid);

impl fmt::Display for DirectoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DirectoryId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| format!("directory id '{s}' is not a UUID"))
    }
}

/// A member of the quorum's membership: its controller listener for Raft traffic and,
/// for voters added at run time (`add-voter`), the directory id of the data dir it had
/// then. Voters of a quorum formed from a static `--controller-voters` list have none
/// (each voter writes the first membership entry on its own and knows only its own id),
/// as Kafka's `kraft.version` 0 voters have none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterNode {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<DirectoryId>,
    /// On a voter of the static list (`--controller-voters`) whose directory id the active
    /// controller recorded after the quorum formed (as Kafka's UpdateRaftVoter does): the
    /// node ids of that list. While every voter carries the same list and the voters are
    /// that list, the quorum is still the static one, which a node's own list must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formed_with: Option<BTreeSet<NodeId>>,
}

impl VoterNode {
    /// A member known by its address alone (a static voter).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            directory_id: None,
            formed_with: None,
        }
    }

    /// A member at `addr` with the directory id of its data dir.
    pub fn with_directory(addr: impl Into<String>, directory_id: DirectoryId) -> Self {
        Self {
            directory_id: Some(directory_id),
            ..Self::new(addr)
        }
    }
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
