//! The controller session: this broker's registration with the controller quorum, its
//! heartbeats, the fencing state their answers report (through the leader lease), and
//! what they tell about the active controller (who it is, its term and committed
//! metadata offset, and which controller the session is held with).
//!
//! The registration and heartbeat loop is in `heartbeats`; this module holds the state it
//! writes and the metadata follower (`crate::metadata`) and the watch service read.
//!
//! Invariants:
//! - the active controller's committed offset only grows, and only heartbeat answers
//!   move it (`note_controller_offset`); "the controller is behind" is judged by counting
//!   fresh answers (`heartbeat_replies`), never by time alone;
//! - the controller view only moves to a newer term, or within a term from unknown to a
//!   known leader or to another leader;
//! - nothing here reaches partitions or logs: this module must not depend on the replica
//!   manager's state (it is handed the replica manager only to read the broker's config,
//!   applied image and offline replicas for the heartbeats it sends).

mod heartbeats;

use crate::lease::LeaderLease;
use kavka_model::BrokerId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The active controller as this broker last heard of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerView {
    /// `None` while no leader is known (an election in progress, nothing heard yet).
    pub id: Option<BrokerId>,
    pub term: u64,
}

impl ControllerView {
    /// Whether `next` is news: a newer term, or within the same term a known leader other
    /// than the one held.
    fn is_superseded_by(&self, next: &ControllerView) -> bool {
        next.term > self.term || (next.term == self.term && next.id.is_some() && next.id != self.id)
    }
}

/// One incarnation of this broker's session with the controller quorum.
#[derive(Debug)]
pub struct ControllerSession {
    /// Fresh for every process: the controllers tell a restarted broker from a live one.
    pub incarnation_id: uuid::Uuid,
    /// Renewed by answered heartbeats; holds the fencing state the answers report. Shared
    /// with the replica manager, which checks it before acting as leader.
    lease: Arc<LeaderLease>,
    /// The active controller's committed metadata offset, from heartbeat answers (`None`
    /// until the first answer).
    controller_offset: watch::Sender<Option<i64>>,
    /// The controller this broker's session is with (the active one, as far as known):
    /// the metadata follower streams from it first.
    session_controller: Mutex<Option<String>>,
    /// Heartbeat answers received: "the controller is behind" counts only what fresh
    /// answers say, never time alone (a frozen broker's clock jumps).
    heartbeat_replies: AtomicU64,
    /// The active controller and its Raft term, as last heard.
    controller: watch::Sender<ControllerView>,
}

impl ControllerSession {
    /// A new incarnation of this broker, renewing `lease` (the replica manager's).
    pub fn new(lease: Arc<LeaderLease>) -> Self {
        Self {
            incarnation_id: uuid::Uuid::new_v4(),
            lease,
            controller_offset: watch::channel(None).0,
            session_controller: Mutex::new(None),
            heartbeat_replies: AtomicU64::new(0),
            controller: watch::channel(ControllerView::default()).0,
        }
    }

    /// Whether the last heartbeat answer said this broker is fenced (true until one says
    /// otherwise).
    pub fn is_fenced(&self) -> bool {
        self.lease.is_fenced()
    }

    /// Notes the active controller's committed metadata offset (from a heartbeat answer;
    /// a negative one, nothing committed yet, counts as an answer but is no offset).
    pub fn note_controller_offset(&self, offset: i64) {
        self.heartbeat_replies.fetch_add(1, Ordering::AcqRel);
        self.controller_offset.send_if_modified(|o| {
            let newer = offset >= 0 && o.is_none_or(|o| offset > o);
            if newer {
                *o = Some(offset);
            }
            newer
        });
    }

    /// The active controller's committed metadata offset, as last heard.
    pub fn controller_offset(&self) -> Option<i64> {
        *self.controller_offset.borrow()
    }

    /// How many heartbeat answers (with the controller's offset) have arrived.
    pub fn heartbeat_replies(&self) -> u64 {
        self.heartbeat_replies.load(Ordering::Acquire)
    }

    /// Changes of [`ControllerSession::controller_offset`].
    pub fn watch_controller_offset(&self) -> watch::Receiver<Option<i64>> {
        self.controller_offset.subscribe()
    }

    /// Notes the address of the controller the broker's session is held with.
    pub fn note_session_controller(&self, addr: &str) {
        let mut c = self
            .session_controller
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if c.as_deref() != Some(addr) {
            *c = Some(addr.to_string());
        }
    }

    /// The address of the controller the session is held with, if any.
    pub fn session_controller(&self) -> Option<String> {
        self.session_controller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes who the active controller is: a newer term wins; within a term, a known
    /// leader replaces an unknown one (heartbeat answers and a local voter both report).
    pub fn note_controller(&self, id: Option<BrokerId>, term: u64) {
        let next = ControllerView { id, term };
        self.controller.send_if_modified(|c| {
            let newer = c.is_superseded_by(&next);
            if newer {
                *c = next;
            }
            newer
        });
    }

    /// The active controller as last heard.
    pub fn controller(&self) -> ControllerView {
        *self.controller.borrow()
    }

    /// The active controller as last heard; changes wake the receiver.
    pub fn watch_controller(&self) -> watch::Receiver<ControllerView> {
        self.controller.subscribe()
    }
}

/// A controller id as the controllers' protobuf messages carry it (-1: none).
pub(crate) fn controller_id_from_wire(id: i64) -> Option<BrokerId> {
    i32::try_from(id).ok().filter(|&i| i >= 0).map(BrokerId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn session() -> ControllerSession {
        ControllerSession::new(Arc::new(LeaderLease::new(
            BrokerId(1),
            Duration::from_secs(2),
        )))
    }

    #[test]
    fn the_controller_view_moves_only_forward() {
        let b = |i| Some(BrokerId(i));
        // (held, heard, taken?)
        let table = [
            ((None, 0), (b(1), 1), true),
            ((b(1), 1), (None, 1), false),
            ((None, 2), (b(2), 2), true),
            ((b(1), 2), (b(2), 2), true),
            ((b(2), 2), (b(2), 2), false),
            ((b(2), 3), (b(1), 2), false),
            ((b(2), 3), (None, 4), true),
        ];
        for ((id, term), (next_id, next_term), taken) in table {
            let s = session();
            s.controller.send_replace(ControllerView { id, term });
            s.note_controller(next_id, next_term);
            let want = if taken {
                ControllerView {
                    id: next_id,
                    term: next_term,
                }
            } else {
                ControllerView { id, term }
            };
            assert_eq!(
                s.controller(),
                want,
                "held {id:?}@{term}, heard {next_id:?}@{next_term}"
            );
        }
    }

    #[test]
    fn the_controller_offset_only_grows_and_every_answer_counts() {
        let s = session();
        assert_eq!(s.controller_offset(), None);
        s.note_controller_offset(-1);
        assert_eq!(
            s.controller_offset(),
            None,
            "nothing committed is no offset"
        );
        let mut rx = s.watch_controller_offset();
        s.note_controller_offset(5);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        s.note_controller_offset(3);
        assert_eq!(s.controller_offset(), Some(5));
        assert!(!rx.has_changed().unwrap(), "an older offset wakes no one");
        assert_eq!(s.heartbeat_replies(), 3);
    }

    #[test]
    fn wire_controller_ids_map_minus_one_to_none() {
        assert_eq!(controller_id_from_wire(-1), None);
        assert_eq!(controller_id_from_wire(3), Some(BrokerId(3)));
        assert_eq!(controller_id_from_wire(i64::MAX), None);
    }

    #[test]
    fn a_new_session_is_fenced_and_knows_no_controller() {
        let s = session();
        assert!(s.is_fenced());
        assert_eq!(s.controller(), ControllerView::default());
        assert_eq!(s.session_controller(), None);
        s.note_session_controller("a:1");
        assert_eq!(s.session_controller().as_deref(), Some("a:1"));
    }
}
