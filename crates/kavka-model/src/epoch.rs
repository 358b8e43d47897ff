//! OffsetForLeaderEpoch in model terms (KIP-101/KIP-279): a replica asks where an epoch
//! of the leader's history ends, to find where its own log diverges.

use crate::admin::PartitionRef;
use crate::{KafkaError, LeaderEpoch, Offset};

/// One partition's question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochQuery {
    pub partition: PartitionRef,
    /// The asker's view of the current leader epoch; None: not checked.
    pub current_leader_epoch: Option<LeaderEpoch>,
    /// The epoch whose end offset is asked.
    pub leader_epoch: LeaderEpoch,
}

/// The largest epoch at or below the one asked that the leader knows, and where it ends:
/// the start of the next epoch, or the leader's log end for its latest one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEnd {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}

/// One partition's answer: its epoch end, None when the leader knows no epoch at or
/// below the one asked, or why it cannot answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochAnswer {
    pub partition: PartitionRef,
    pub result: Result<Option<EpochEnd>, KafkaError>,
}
