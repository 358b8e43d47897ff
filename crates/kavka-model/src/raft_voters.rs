//! The controller quorum as the admin APIs see it (KIP-853): a voter change asked for,
//! and the quorum described (Kafka's DescribeQuorum). Plain data, no I/O.

/// AddRaftVoter: node `id`, reached by the other controllers at `address` (its
/// controller listener, host:port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddVoter {
    pub id: i32,
    /// The new voter's directory id; `None`: the active controller asks the node.
    pub directory_id: Option<uuid::Uuid>,
    pub address: String,
    /// How long the controller may wait for the node to catch up and the change to
    /// commit (0: its default).
    pub timeout_ms: u32,
}

/// RemoveRaftVoter: voter `id`, only with `directory_id` when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveVoter {
    pub id: i32,
    pub directory_id: Option<uuid::Uuid>,
    pub timeout_ms: u32,
}

/// One member of the quorum as the active controller sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumMember {
    pub id: i32,
    pub directory_id: Option<uuid::Uuid>,
    /// Its controller listener, host:port.
    pub address: String,
    /// -1 when unknown.
    pub log_end: i64,
    /// Milliseconds since it was last known caught up; -1 when unknown.
    pub last_caught_up_ms_ago: i64,
}

/// The quorum: its leader and epoch, what is committed, voters and observers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumDescription {
    /// -1 when there is none.
    pub leader_id: i32,
    pub epoch: u64,
    pub high_watermark: i64,
    pub voters: Vec<QuorumMember>,
    pub observers: Vec<QuorumMember>,
}
