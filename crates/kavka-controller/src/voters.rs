//! Voter changes (KIP-853's AddRaftVoter and RemoveRaftVoter) as pure decisions: may this
//! change start, given the quorum's membership as this active controller sees it?
//!
//! Invariants the decisions keep (the quorum enforces them, see `Quorum::add_voter`):
//! - one change at a time: none starts while a membership entry is uncommitted or joint
//!   (openraft's joint consensus runs each change as two entries), REQUEST_TIMED_OUT as
//!   KIP-853 answers for pending changes;
//! - a voter is (node id, directory id): an id is a voter at most once (DUPLICATE_VOTER),
//!   and a removal that names a directory id removes only the voter with that id
//!   (VOTER_NOT_FOUND otherwise), so an operator cannot remove the replacement of a lost
//!   voter by mistake;
//! - the quorum never becomes empty (INVALID_REQUEST for the last voter).
//!
//! Static voters (`--controller-voters`) get their directory id recorded by the active
//! controller once they answer (Kafka's UpdateRaftVoter, [`directory_fill_in`]); a
//! membership made only of such voters, still the static list, stays the static quorum
//! ([`static_quorum`]), which each node's own list is held against.
//!
//! No I/O, no openraft types: a [`MembershipView`] is built from the membership by the
//! quorum.

use crate::types::{DirectoryId, NodeId, VoterNode};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::{BTreeMap, BTreeSet};

/// What a voter change decision needs to know of the membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// The voters of the newest config, with their directory ids where known (voters of
    /// a static `--controller-voters` quorum have none).
    pub voters: BTreeMap<NodeId, Option<DirectoryId>>,
    /// Members that replicate the log without voting (observers being added).
    pub learners: BTreeSet<NodeId>,
    /// A membership change has not finished: the newest membership entry is joint or
    /// not yet committed.
    pub change_in_flight: bool,
}

/// Whether the newest membership entry is still a change in flight: a joint config (the
/// first of openraft's two entries), or an entry (`entry`, its log index) that this
/// controller has not applied yet (`applied`, the last applied index).
pub fn membership_in_flight(
    joint_configs: usize,
    entry: Option<u64>,
    applied: Option<u64>,
) -> bool {
    joint_configs > 1 || entry > applied
}

/// A requested change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoterChange {
    Add {
        id: NodeId,
        directory_id: DirectoryId,
    },
    Remove {
        id: NodeId,
        /// When given, only the voter with this directory id is removed.
        directory_id: Option<DirectoryId>,
    },
}

/// `Ok` when `change` may start now; otherwise the Kafka error to answer, naming why.
pub fn check_voter_change(view: &MembershipView, change: VoterChange) -> Result<(), KafkaError> {
    if view.change_in_flight {
        return Err(KafkaError::new(
            ErrorCode::RequestTimedOut,
            "another voter change is in flight (one change at a time): retry once it has \
             committed (`kavka quorum describe`)",
        ));
    }
    match change {
        VoterChange::Add { id, .. } => match view.voters.get(&id) {
            Some(existing) => Err(KafkaError::new(
                ErrorCode::DuplicateVoter,
                format!(
                    "node {id} is already a voter{}",
                    existing.map_or(String::new(), |d| format!(" (directory id {d})"))
                ),
            )),
            None => Ok(()),
        },
        VoterChange::Remove { id, directory_id } => {
            let Some(recorded) = view.voters.get(&id) else {
                return Err(KafkaError::new(
                    ErrorCode::VoterNotFound,
                    format!(
                        "node {id} is not a voter (voters: {:?})",
                        view.voters.keys().collect::<Vec<_>>()
                    ),
                ));
            };
            // A voter without a recorded directory id (a static one) matches any: its
            // identity was never more than its node id.
            if let (Some(asked), Some(recorded)) = (directory_id, recorded)
                && asked != *recorded
            {
                return Err(KafkaError::new(
                    ErrorCode::VoterNotFound,
                    format!("voter {id} has directory id {recorded}, not {asked}"),
                ));
            }
            if view.voters.len() == 1 {
                return Err(KafkaError::new(
                    ErrorCode::InvalidRequest,
                    format!("node {id} is the last voter: a quorum cannot be empty"),
                ));
            }
            Ok(())
        }
    }
}

/// The static voter list a membership still is, if it is one: the bootstrap membership
/// (the one `initialize` wrote, `bootstrap`), or a later one whose voters are exactly the
/// list their directory-id fill-ins recorded (`VoterNode::formed_with`), each either filled
/// in with that list or still without a directory id. Any voter change (an added voter
/// has a directory id and no list; a removal leaves fewer voters than the list) makes it
/// dynamic: `None`.
pub fn static_quorum(
    voters: &BTreeMap<NodeId, VoterNode>,
    bootstrap: bool,
) -> Option<BTreeSet<NodeId>> {
    let ids: BTreeSet<NodeId> = voters.keys().copied().collect();
    if bootstrap {
        return Some(ids);
    }
    let mut list: Option<&BTreeSet<NodeId>> = None;
    for node in voters.values() {
        match (&node.formed_with, node.directory_id) {
            (Some(l), _) if list.is_none_or(|seen| seen == l) => list = Some(l),
            (None, None) => {}
            _ => return None,
        }
    }
    list.filter(|l| **l == ids).cloned()
}

/// What a voter change writes along with itself so that the quorum is dynamic from then
/// on: every member that carries the static list (its directory-id fill-in recorded it),
/// without it. Otherwise an add and then a remove would bring back a membership that
/// [`static_quorum`] takes for the static one.
pub fn static_lists_cleared(nodes: &BTreeMap<NodeId, VoterNode>) -> BTreeMap<NodeId, VoterNode> {
    nodes
        .iter()
        .filter(|(_, n)| n.formed_with.is_some())
        .map(|(id, n)| {
            (
                *id,
                VoterNode {
                    formed_with: None,
                    ..n.clone()
                },
            )
        })
        .collect()
}

/// The next voter whose directory id the active controller should record: the first
/// voter without one that has answered with its own (`answered`, the leader's included),
/// as the node to write for it. A voter of a static quorum also records the list
/// (`static_list`), so the membership stays static ([`static_quorum`]).
pub fn directory_fill_in(
    voters: &BTreeMap<NodeId, VoterNode>,
    static_list: Option<&BTreeSet<NodeId>>,
    answered: &BTreeMap<NodeId, DirectoryId>,
) -> Option<(NodeId, VoterNode)> {
    voters.iter().find_map(|(id, node)| {
        if node.directory_id.is_some() {
            return None;
        }
        let directory_id = *answered.get(id)?;
        Some((
            *id,
            VoterNode {
                addr: node.addr.clone(),
                directory_id: Some(directory_id),
                formed_with: static_list.cloned(),
            },
        ))
    })
}

/// How a controller's own identity stands against the membership (KIP-853's emptied
/// voter): a membership that records another directory id for this node's id means this
/// data dir is not the one that voted as that voter.
pub fn own_identity_conflict(
    node_id: NodeId,
    own: Option<DirectoryId>,
    recorded: Option<DirectoryId>,
) -> Option<String> {
    match (own, recorded) {
        (Some(own), Some(recorded)) if own != recorded => {
            Some(replace_hint(node_id, recorded, Some(own)))
        }
        (None, Some(recorded)) => Some(replace_hint(node_id, recorded, None)),
        _ => None,
    }
}

/// How this controller's identity stands on a Raft call: judged by the directory id the
/// caller's membership expects of it when the caller names one, else by this node's own
/// membership. The caller's record wins because a replaced voter's new incarnation,
/// catching up from an empty log, passes through old membership entries that name its
/// old directory id; the leader that added it again names the new one, and refusing its
/// appends on the stale record would stop the catch-up for good.
pub fn identity_on_call(
    node_id: NodeId,
    own: Option<DirectoryId>,
    caller_expects: Option<DirectoryId>,
    own_record: Option<DirectoryId>,
) -> Option<String> {
    own_identity_conflict(node_id, own, caller_expects.or(own_record))
}

/// The operator's way out for a voter whose data dir was lost: remove the old voter by
/// its directory id, then add the node again with its new one.
pub fn replace_hint(node_id: NodeId, recorded: DirectoryId, now: Option<DirectoryId>) -> String {
    format!(
        "voter {node_id} of the controller quorum has directory id {recorded}, but this data \
         dir's is {}: the data dir was emptied or replaced, and the votes it cast are \
         forgotten, so it must not vote as voter {node_id}. Replace it: stop this node, run \
         `kavka quorum remove-voter {node_id} --directory-id {recorded}`, empty its data dir, \
         start it again as an observer (its own entry left out of --controller-voters, its \
         controller listener given by --controller-listen HOST:PORT), then `kavka quorum \
         add-voter {node_id} --address HOST:PORT`",
        now.map_or("unknown".to_string(), |d| d.to_string())
    )
}

/// The check on a Raft call's sender: a sender whose id the membership records with a
/// directory id must present that directory id.
pub fn check_sender_directory(
    sender: NodeId,
    presented: Option<DirectoryId>,
    recorded: Option<DirectoryId>,
) -> Result<(), String> {
    match recorded {
        Some(r) if presented != Some(r) => Err(format!(
            "node {sender} presents directory id {}, but voter {sender} has {r} (emptied data dir?)",
            presented.map_or("none".to_string(), |d| d.to_string())
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(n: u128) -> DirectoryId {
        DirectoryId(uuid::Uuid::from_u128(n))
    }

    fn view(voters: &[(NodeId, Option<u128>)], in_flight: bool) -> MembershipView {
        MembershipView {
            voters: voters.iter().map(|&(id, dir)| (id, dir.map(d))).collect(),
            learners: BTreeSet::new(),
            change_in_flight: in_flight,
        }
    }

    #[test]
    fn voter_changes_table() {
        let three = view(&[(1, None), (2, None), (3, Some(3))], false);
        let busy = view(&[(1, None), (2, None), (3, None)], true);
        let one = view(&[(1, Some(1))], false);
        let add = |id, dir| VoterChange::Add {
            id,
            directory_id: d(dir),
        };
        let remove = |id, dir: Option<u128>| VoterChange::Remove {
            id,
            directory_id: dir.map(d),
        };
        // (membership, change, expected error code or None for allowed)
        let cases: &[(&MembershipView, VoterChange, Option<ErrorCode>)] = &[
            (&three, add(4, 4), None),
            (&three, add(3, 3), Some(ErrorCode::DuplicateVoter)),
            (&three, add(1, 9), Some(ErrorCode::DuplicateVoter)),
            (&busy, add(4, 4), Some(ErrorCode::RequestTimedOut)),
            (&three, remove(2, None), None),
            (&three, remove(3, Some(3)), None),
            // A static voter has no recorded id: any named one matches.
            (&three, remove(1, Some(7)), None),
            (&three, remove(3, Some(4)), Some(ErrorCode::VoterNotFound)),
            (&three, remove(9, None), Some(ErrorCode::VoterNotFound)),
            (&busy, remove(2, None), Some(ErrorCode::RequestTimedOut)),
            (&one, remove(1, None), Some(ErrorCode::InvalidRequest)),
            (&one, remove(1, Some(2)), Some(ErrorCode::VoterNotFound)),
        ];
        for (view, change, want) in cases {
            let got = check_voter_change(view, *change).err().map(|e| e.code);
            assert_eq!(got, *want, "{change:?} on {view:?}");
        }
        let last = check_voter_change(&one, remove(1, None)).unwrap_err();
        assert!(last.message.contains("last voter"), "{last}");
    }

    #[test]
    fn own_identity_table() {
        // (own, recorded) -> conflict?
        let cases: &[(Option<u128>, Option<u128>, bool)] = &[
            (Some(1), None, false),
            (None, None, false),
            (Some(1), Some(1), false),
            (Some(2), Some(1), true),
            (None, Some(1), true),
        ];
        for &(own, recorded, conflict) in cases {
            let got = own_identity_conflict(4, own.map(d), recorded.map(d));
            assert_eq!(got.is_some(), conflict, "{own:?} vs {recorded:?}");
        }
        let why = own_identity_conflict(4, Some(d(2)), Some(d(1))).unwrap();
        assert!(
            why.contains(&format!(
                "kavka quorum remove-voter 4 --directory-id {}",
                d(1)
            )),
            "{why}"
        );
    }

    fn node(dir: Option<u128>, list: Option<&[NodeId]>) -> VoterNode {
        VoterNode {
            addr: "127.0.0.1:1".into(),
            directory_id: dir.map(d),
            formed_with: list.map(|l| l.iter().copied().collect()),
        }
    }

    #[test]
    fn static_quorum_table() {
        let s: &[NodeId] = &[1, 2, 3];
        let set = |ids: &[NodeId]| Some(ids.iter().copied().collect::<BTreeSet<_>>());
        // (voters, bootstrap entry?) -> the static list it still is
        type Voters = Vec<(NodeId, VoterNode)>;
        let cases: Vec<(Voters, bool, Option<BTreeSet<NodeId>>)> = vec![
            // The bootstrap membership is the list, whatever it holds.
            (
                vec![(1, node(None, None)), (2, node(None, None))],
                true,
                set(&[1, 2]),
            ),
            // Filled in, partly or wholly: still static.
            (
                vec![
                    (1, node(Some(1), Some(s))),
                    (2, node(None, None)),
                    (3, node(None, None)),
                ],
                false,
                set(s),
            ),
            (
                vec![
                    (1, node(Some(1), Some(s))),
                    (2, node(Some(2), Some(s))),
                    (3, node(Some(3), Some(s))),
                ],
                false,
                set(s),
            ),
            // A voter removed: fewer voters than the list.
            (
                vec![(1, node(Some(1), Some(s))), (2, node(None, None))],
                false,
                None,
            ),
            // A voter added (a directory id, no list).
            (
                vec![
                    (1, node(Some(1), Some(s))),
                    (2, node(None, None)),
                    (3, node(None, None)),
                    (4, node(Some(4), None)),
                ],
                false,
                None,
            ),
            // A static voter removed and added again: it has no list now.
            (
                vec![
                    (1, node(Some(1), Some(s))),
                    (2, node(None, None)),
                    (3, node(Some(9), None)),
                ],
                false,
                None,
            ),
            // Two different lists cannot both hold.
            (
                vec![
                    (1, node(Some(1), Some(s))),
                    (2, node(Some(2), Some(&[1, 2][..]))),
                    (3, node(None, None)),
                ],
                false,
                None,
            ),
            // A later membership with no fill-in at all: a change happened (dynamic).
            (
                vec![
                    (1, node(None, None)),
                    (2, node(None, None)),
                    (3, node(None, None)),
                ],
                false,
                None,
            ),
        ];
        for (voters, bootstrap, want) in cases {
            let voters: BTreeMap<NodeId, VoterNode> = voters.into_iter().collect();
            assert_eq!(static_quorum(&voters, bootstrap), want, "{voters:?}");
        }
    }

    #[test]
    fn a_voter_change_leaves_no_static_list_behind() {
        let s: &[NodeId] = &[1, 2, 3];
        let filled: BTreeMap<NodeId, VoterNode> = [
            (1, node(Some(1), Some(s))),
            (2, node(Some(2), Some(s))),
            (3, node(None, None)),
        ]
        .into();
        let cleared = static_lists_cleared(&filled);
        // Only the members that carried the list are written, keeping their ids.
        assert_eq!(cleared.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert!(cleared.values().all(|n| n.formed_with.is_none()));
        assert_eq!(cleared[&2].directory_id, Some(d(2)));
        // Voter 4 added, then removed again: without the clearing, the static list's
        // membership would come back; with it, the quorum stays dynamic.
        assert_eq!(
            static_quorum(&filled, false),
            Some(s.iter().copied().collect())
        );
        let mut after = filled.clone();
        after.extend(cleared);
        assert_eq!(static_quorum(&after, false), None);
        assert!(static_lists_cleared(&after).is_empty());
    }

    #[test]
    fn membership_in_flight_table() {
        // (configs in the joint membership, its entry, last applied) -> in flight
        let cases = [
            (1, None, None, false),         // the initial, empty membership
            (1, Some(0), Some(0), false),   // formed and applied
            (1, Some(15), Some(17), false), // applied, more applied since
            (1, Some(15), Some(14), true),  // appended, not applied yet
            (1, Some(15), None, true),      // nothing applied at all
            (2, Some(15), Some(15), true),  // joint: the change's second entry is to come
            (2, Some(15), Some(20), true),
        ];
        for (joint, entry, applied, want) in cases {
            assert_eq!(
                membership_in_flight(joint, entry, applied),
                want,
                "joint={joint} entry={entry:?} applied={applied:?}"
            );
        }
    }

    #[test]
    fn directory_fill_in_table() {
        let s: BTreeSet<NodeId> = [1, 2, 3].into();
        let voters: BTreeMap<NodeId, VoterNode> = [
            (1, node(Some(1), Some(&[1, 2, 3][..]))),
            (2, node(None, None)),
            (3, node(None, None)),
        ]
        .into();
        let answered = |ids: &[(NodeId, u128)]| -> BTreeMap<NodeId, DirectoryId> {
            ids.iter().map(|&(id, dir)| (id, d(dir))).collect()
        };
        // Nothing answered yet: nothing to record.
        assert_eq!(directory_fill_in(&voters, Some(&s), &answered(&[])), None);
        // Voter 1 has its id already; 3 answered: 3 is recorded, with the list.
        let (id, n) = directory_fill_in(&voters, Some(&s), &answered(&[(1, 7), (3, 3)])).unwrap();
        assert_eq!(
            (id, n.directory_id, n.formed_with),
            (3, Some(d(3)), Some(s.clone()))
        );
        // In a dynamic quorum a leftover static voter gets its id and no list.
        let (id, n) = directory_fill_in(&voters, None, &answered(&[(2, 2)])).unwrap();
        assert_eq!((id, n.directory_id, n.formed_with), (2, Some(d(2)), None));
        // Everyone recorded: nothing left.
        let full: BTreeMap<NodeId, VoterNode> =
            [(1, node(Some(1), None)), (2, node(Some(2), None))].into();
        assert_eq!(
            directory_fill_in(&full, None, &answered(&[(1, 5), (2, 6)])),
            None
        );
    }

    #[test]
    fn identity_on_call_table() {
        // (own, caller expects, own membership records) -> conflict?
        type Dir = Option<u128>;
        let cases: &[(Dir, Dir, Dir, bool)] = &[
            // The leader that added the new incarnation names it: a stale own record
            // (an old membership entry met while catching up) does not refuse it.
            (Some(2), Some(2), Some(1), false),
            (Some(2), Some(2), None, false),
            // A caller that still names the old one is refused, whatever the log says.
            (Some(2), Some(1), Some(2), true),
            (Some(2), Some(1), None, true),
            // A caller naming none (a static voter's membership): the own record judges.
            (Some(2), None, Some(1), true),
            (Some(2), None, Some(2), false),
            (Some(2), None, None, false),
            (None, None, Some(1), true),
        ];
        for &(own, expects, record, conflict) in cases {
            let got = identity_on_call(4, own.map(d), expects.map(d), record.map(d));
            assert_eq!(
                got.is_some(),
                conflict,
                "own {own:?}, caller expects {expects:?}, own record {record:?}"
            );
        }
    }

    #[test]
    fn sender_directory_table() {
        let cases: &[(Option<u128>, Option<u128>, bool)] = &[
            (None, None, true),
            (Some(1), None, true),
            (Some(1), Some(1), true),
            (Some(2), Some(1), false),
            (None, Some(1), false),
        ];
        for &(presented, recorded, ok) in cases {
            let got = check_sender_directory(4, presented.map(d), recorded.map(d));
            assert_eq!(got.is_ok(), ok, "{presented:?} vs {recorded:?}");
        }
    }
}
