//! The binary encoding of what the Raft storage keeps in sled: log entries, the vote, log
//! ids (committed, last purged) and snapshot meta, as the `Raft*` messages of
//! `proto/kavka/v1/metadata.proto` behind the format byte of `kavka_metadata::codec`.
//!
//! Invariants: encoding cannot fail; decoding refuses a missing field or another format
//! (JSON from before this encoding is migrated by `raft::migrate`, not read here) with a
//! [`DecodeError`]. The bytes are pinned by golden files in `tests/golden/`. Pure: no I/O.

use crate::types::{MetadataRequest, TypeConfig, VoterNode};
use kavka_metadata::codec::{DecodeError, batch_from_proto, batch_to_proto, frame, unframe};
use kavka_proto::v1;
use kavka_proto::v1::raft_entry::Payload;
use openraft::alias::{
    CommittedLeaderIdOf, EntryOf, LogIdOf, SnapshotMetaOf, StoredMembershipOf, VoteOf,
};
use openraft::{EntryPayload, LogId};
use std::collections::{BTreeMap, BTreeSet};

/// The quorum's membership config (openraft has no alias for it).
pub(crate) type MembershipOf<C> =
    openraft::Membership<openraft::alias::NodeIdOf<C>, openraft::alias::NodeOf<C>>;

fn missing(message: &'static str, field: &'static str) -> DecodeError {
    DecodeError::Missing { message, field }
}

fn leader_id_to(id: &CommittedLeaderIdOf<TypeConfig>) -> v1::RaftLeaderId {
    v1::RaftLeaderId {
        term: id.term,
        node_id: id.node_id,
    }
}

fn leader_id_from(id: v1::RaftLeaderId) -> CommittedLeaderIdOf<TypeConfig> {
    CommittedLeaderIdOf::<TypeConfig> {
        term: id.term,
        node_id: id.node_id,
    }
}

fn log_id_to(id: &LogIdOf<TypeConfig>) -> v1::RaftLogId {
    v1::RaftLogId {
        leader_id: Some(leader_id_to(&id.leader_id)),
        index: id.index,
    }
}

fn log_id_from(
    message: &'static str,
    id: v1::RaftLogId,
) -> Result<LogIdOf<TypeConfig>, DecodeError> {
    let leader = id.leader_id.ok_or(missing(message, "log_id.leader_id"))?;
    Ok(LogId::new(leader_id_from(leader), id.index))
}

fn membership_to(m: &MembershipOf<TypeConfig>) -> v1::RaftMembership {
    v1::RaftMembership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| v1::RaftVoterSet {
                node_ids: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| v1::RaftNode {
                node_id: *id,
                addr: n.addr.clone(),
                directory_id: n.directory_id.map(|d| d.to_string()).unwrap_or_default(),
                formed_with: n.formed_with.iter().flatten().copied().collect(),
            })
            .collect(),
    }
}

fn membership_from(m: v1::RaftMembership) -> Result<MembershipOf<TypeConfig>, DecodeError> {
    if m.configs.is_empty() && m.nodes.is_empty() {
        return Ok(MembershipOf::<TypeConfig>::default());
    }
    let configs: Vec<BTreeSet<u64>> = m
        .configs
        .into_iter()
        .map(|s| s.node_ids.into_iter().collect())
        .collect();
    let nodes = m
        .nodes
        .into_iter()
        .map(|n| {
            let directory_id = match n.directory_id.as_str() {
                "" => None,
                d => Some(d.parse::<crate::types::DirectoryId>().map_err(|reason| {
                    DecodeError::Invalid {
                        message: "RaftNode",
                        field: "directory_id",
                        reason,
                    }
                })?),
            };
            Ok((
                n.node_id,
                VoterNode {
                    addr: n.addr,
                    directory_id,
                    formed_with: (!n.formed_with.is_empty())
                        .then(|| n.formed_with.into_iter().collect()),
                },
            ))
        })
        .collect::<Result<BTreeMap<u64, VoterNode>, DecodeError>>()?;
    MembershipOf::<TypeConfig>::new(configs, nodes).map_err(|e| DecodeError::Invalid {
        message: "RaftMembership",
        field: "configs",
        reason: e.to_string(),
    })
}

fn stored_membership_to(m: &StoredMembershipOf<TypeConfig>) -> v1::RaftStoredMembership {
    v1::RaftStoredMembership {
        log_id: m.log_id().as_ref().map(log_id_to),
        membership: Some(membership_to(m.membership())),
    }
}

fn stored_membership_from(
    m: v1::RaftStoredMembership,
) -> Result<StoredMembershipOf<TypeConfig>, DecodeError> {
    let log_id = m
        .log_id
        .map(|id| log_id_from("RaftStoredMembership", id))
        .transpose()?;
    let membership = m
        .membership
        .ok_or(missing("RaftStoredMembership", "membership"))?;
    Ok(StoredMembershipOf::<TypeConfig>::new(
        log_id,
        membership_from(membership)?,
    ))
}

/// A log entry as stored in the `raft-log` tree.
pub fn encode_entry(e: &EntryOf<TypeConfig>) -> Vec<u8> {
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(v1::RaftBlank {}),
        EntryPayload::Normal(req) => Payload::Normal(batch_to_proto(&req.records)),
        EntryPayload::Membership(m) => Payload::Membership(membership_to(m)),
    };
    frame(&v1::RaftEntry {
        log_id: Some(log_id_to(&e.log_id)),
        payload: Some(payload),
    })
}

pub fn decode_entry(bytes: &[u8]) -> Result<EntryOf<TypeConfig>, DecodeError> {
    let e: v1::RaftEntry = unframe("RaftEntry", bytes)?;
    let log_id = log_id_from("RaftEntry", e.log_id.ok_or(missing("RaftEntry", "log_id"))?)?;
    let payload = match e.payload.ok_or(missing("RaftEntry", "payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Normal(batch) => EntryPayload::Normal(MetadataRequest {
            records: batch_from_proto(batch)?,
        }),
        Payload::Membership(m) => EntryPayload::Membership(membership_from(m)?),
    };
    Ok(EntryOf::<TypeConfig> { log_id, payload })
}

pub fn encode_vote(v: &VoteOf<TypeConfig>) -> Vec<u8> {
    frame(&v1::RaftVote {
        leader_id: Some(leader_id_to(&v.leader_id)),
        committed: v.committed,
    })
}

pub fn decode_vote(bytes: &[u8]) -> Result<VoteOf<TypeConfig>, DecodeError> {
    let v: v1::RaftVote = unframe("RaftVote", bytes)?;
    let leader = v.leader_id.ok_or(missing("RaftVote", "leader_id"))?;
    Ok(VoteOf::<TypeConfig> {
        leader_id: leader_id_from(leader),
        committed: v.committed,
    })
}

/// A log id that may be absent (committed, last purged).
pub fn encode_log_id(id: Option<&LogIdOf<TypeConfig>>) -> Vec<u8> {
    frame(&v1::RaftOptionalLogId {
        log_id: id.map(log_id_to),
    })
}

pub fn decode_log_id(bytes: &[u8]) -> Result<Option<LogIdOf<TypeConfig>>, DecodeError> {
    let id: v1::RaftOptionalLogId = unframe("RaftOptionalLogId", bytes)?;
    id.log_id
        .map(|id| log_id_from("RaftOptionalLogId", id))
        .transpose()
}

pub fn encode_snapshot_meta(m: &SnapshotMetaOf<TypeConfig>) -> Vec<u8> {
    frame(&v1::RaftSnapshotMeta {
        last_log_id: m.last_log_id.as_ref().map(log_id_to),
        last_membership: Some(stored_membership_to(&m.last_membership)),
    })
}

pub fn decode_snapshot_meta(bytes: &[u8]) -> Result<SnapshotMetaOf<TypeConfig>, DecodeError> {
    let m: v1::RaftSnapshotMeta = unframe("RaftSnapshotMeta", bytes)?;
    Ok(SnapshotMetaOf::<TypeConfig> {
        last_log_id: m
            .last_log_id
            .map(|id| log_id_from("RaftSnapshotMeta", id))
            .transpose()?,
        last_membership: stored_membership_from(
            m.last_membership
                .ok_or(missing("RaftSnapshotMeta", "last_membership"))?,
        )?,
    })
}

#[cfg(test)]
mod tests {
    //! Golden files pin the bytes of a Raft entry of each payload, a vote, a log id and
    //! snapshot meta; each decodes back. Regenerate with
    //! `KAVKA_UPDATE_GOLDEN=1 cargo test -p kavka-controller raft::codec` (and review: data
    //! already on disk must still read).
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kavka_metadata::MetadataRecord;
    use kavka_metadata::golden;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    fn log_id(term: u64, node: u64, index: u64) -> LogIdOf<TypeConfig> {
        LogId::new(
            CommittedLeaderIdOf::<TypeConfig> {
                term,
                node_id: node,
            },
            index,
        )
    }

    fn membership() -> MembershipOf<TypeConfig> {
        let nodes: BTreeMap<u64, VoterNode> = (1..=3)
            .map(|i| (i, VoterNode::new(format!("10.0.0.{i}:9093"))))
            .collect();
        MembershipOf::<TypeConfig>::new(vec![[1, 2, 3].into()], nodes).unwrap()
    }

    /// A joint change adding voter 4 (with its directory id) to 1..=3, one of which was
    /// added at run time too: the entry `add-voter` writes.
    fn joint_membership_with_directory_ids() -> MembershipOf<TypeConfig> {
        let mut nodes: BTreeMap<u64, VoterNode> = (1..=4)
            .map(|i| (i, VoterNode::new(format!("10.0.0.{i}:9093"))))
            .collect();
        for (id, d) in [(3u64, 0x33u128), (4, 0x44)] {
            if let Some(n) = nodes.get_mut(&id) {
                n.directory_id = Some(crate::types::DirectoryId(uuid::Uuid::from_u128(d)));
            }
        }
        MembershipOf::<TypeConfig>::new(vec![[1, 2, 3].into(), [1, 2, 3, 4].into()], nodes).unwrap()
    }

    /// A static quorum of 1..=3 after the active controller recorded the directory ids of
    /// voters 1 and 2 (each with the static list) but not yet 3's.
    fn static_membership_with_recorded_ids() -> MembershipOf<TypeConfig> {
        let mut nodes: BTreeMap<u64, VoterNode> = (1..=3)
            .map(|i| (i, VoterNode::new(format!("10.0.0.{i}:9093"))))
            .collect();
        for (id, d) in [(1u64, 0x11u128), (2, 0x22)] {
            if let Some(n) = nodes.get_mut(&id) {
                n.directory_id = Some(crate::types::DirectoryId(uuid::Uuid::from_u128(d)));
                n.formed_with = Some([1, 2, 3].into());
            }
        }
        MembershipOf::<TypeConfig>::new(vec![[1, 2, 3].into()], nodes).unwrap()
    }

    fn entries() -> Vec<(&'static str, EntryOf<TypeConfig>)> {
        vec![
            (
                "raft-entry-blank.bin",
                EntryOf::<TypeConfig> {
                    log_id: log_id(2, 1, 7),
                    payload: EntryPayload::Blank,
                },
            ),
            (
                "raft-entry-normal.bin",
                EntryOf::<TypeConfig> {
                    log_id: log_id(2, 1, 8),
                    payload: EntryPayload::Normal(MetadataRequest {
                        records: vec![
                            MetadataRecord::Cluster {
                                cluster_id: "c1".into(),
                            },
                            MetadataRecord::ProducerIds {
                                broker_id: kavka_model::BrokerId(1),
                                next_producer_id: 1000,
                            },
                        ],
                    }),
                },
            ),
            (
                "raft-entry-membership.bin",
                EntryOf::<TypeConfig> {
                    log_id: log_id(1, 3, 1),
                    payload: EntryPayload::Membership(membership()),
                },
            ),
            (
                "raft-entry-membership-directory-ids.bin",
                EntryOf::<TypeConfig> {
                    log_id: log_id(3, 1, 40),
                    payload: EntryPayload::Membership(joint_membership_with_directory_ids()),
                },
            ),
            (
                "raft-entry-membership-recorded-static.bin",
                EntryOf::<TypeConfig> {
                    log_id: log_id(3, 1, 41),
                    payload: EntryPayload::Membership(static_membership_with_recorded_ids()),
                },
            ),
        ]
    }

    #[test]
    fn raft_entries_have_golden_files_that_decode_back() {
        for (name, entry) in entries() {
            let bytes = golden::check(&dir(), name, &encode_entry(&entry));
            assert_eq!(decode_entry(&bytes).unwrap(), entry, "{name}");
        }
    }

    #[test]
    fn vote_log_ids_and_snapshot_meta_have_golden_files_that_decode_back() {
        let vote = VoteOf::<TypeConfig>::new_committed(4, 2);
        let bytes = golden::check(&dir(), "raft-vote.bin", &encode_vote(&vote));
        assert_eq!(decode_vote(&bytes).unwrap(), vote);

        let id = log_id(4, 2, 99);
        let bytes = golden::check(&dir(), "raft-log-id.bin", &encode_log_id(Some(&id)));
        assert_eq!(decode_log_id(&bytes).unwrap(), Some(id));
        let bytes = golden::check(&dir(), "raft-log-id-none.bin", &encode_log_id(None));
        assert_eq!(decode_log_id(&bytes).unwrap(), None);

        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(log_id(4, 2, 99)),
            last_membership: StoredMembershipOf::<TypeConfig>::new(
                Some(log_id(1, 3, 1)),
                membership(),
            ),
        };
        let bytes = golden::check(
            &dir(),
            "raft-snapshot-meta.bin",
            &encode_snapshot_meta(&meta),
        );
        assert_eq!(decode_snapshot_meta(&bytes).unwrap(), meta);
        // The meta of a snapshot taken before anything was applied.
        let empty = SnapshotMetaOf::<TypeConfig> {
            last_log_id: None,
            last_membership: StoredMembershipOf::<TypeConfig>::default(),
        };
        assert_eq!(
            decode_snapshot_meta(&encode_snapshot_meta(&empty)).unwrap(),
            empty
        );
    }

    /// Entries written before members had directory ids (the golden file above was made
    /// then, and its bytes are unchanged) decode with none.
    #[test]
    fn memberships_written_before_directory_ids_still_decode() {
        let bytes = std::fs::read(dir().join("raft-entry-membership.bin")).unwrap();
        let EntryPayload::Membership(m) = decode_entry(&bytes).unwrap().payload else {
            panic!("not a membership entry");
        };
        assert!(m.nodes().all(|(_, n)| n.directory_id.is_none()));
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn missing_fields_are_errors_not_defaults() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                frame(&v1::RaftEntry::default()),
                "RaftEntry.log_id is missing",
            ),
            (
                frame(&v1::RaftEntry {
                    log_id: Some(log_id_to(&log_id(1, 1, 1))),
                    payload: None,
                }),
                "RaftEntry.payload is missing",
            ),
            (
                frame(&v1::RaftEntry {
                    log_id: Some(v1::RaftLogId {
                        leader_id: None,
                        index: 3,
                    }),
                    payload: Some(Payload::Blank(v1::RaftBlank {})),
                }),
                "RaftEntry.log_id.leader_id is missing",
            ),
            (
                frame(&v1::RaftEntry {
                    log_id: Some(log_id_to(&log_id(1, 1, 1))),
                    payload: Some(Payload::Membership(v1::RaftMembership {
                        configs: vec![v1::RaftVoterSet { node_ids: vec![9] }],
                        nodes: Default::default(),
                    })),
                }),
                "RaftMembership.configs is invalid",
            ),
            (
                frame(&v1::RaftEntry {
                    log_id: Some(log_id_to(&log_id(1, 1, 1))),
                    payload: Some(Payload::Membership(v1::RaftMembership {
                        configs: vec![v1::RaftVoterSet { node_ids: vec![1] }],
                        nodes: vec![v1::RaftNode {
                            node_id: 1,
                            addr: "a:1".into(),
                            directory_id: "not-a-uuid".into(),
                            formed_with: vec![],
                        }],
                    })),
                }),
                "RaftNode.directory_id is invalid",
            ),
        ];
        for (bytes, want) in cases {
            let e = decode_entry(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{e} does not contain {want}");
        }
        let e = decode_vote(&frame(&v1::RaftVote::default())).unwrap_err();
        assert!(
            e.to_string().contains("RaftVote.leader_id is missing"),
            "{e}"
        );
    }
}
