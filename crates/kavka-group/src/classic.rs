//! The classic group membership protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
//! as a pure state machine: no I/O and no clock of its own (every call is given `now`),
//! so every transition is unit-tested here.
//!
//! States and transitions are Kafka's: `Empty → PreparingRebalance → CompletingRebalance
//! → Stable`, back to `PreparingRebalance` when a member joins, leaves, changes its
//! protocols or misses its session timeout, and `Dead` once deleted.
//!
//! Invariants:
//! - the generation id grows by one on every completed join phase, and a request that
//!   names another generation is refused with ILLEGAL_GENERATION;
//! - a member id is known or the request fails with UNKNOWN_MEMBER_ID; a static member
//!   (`group.instance.id`) has exactly one current member id, and an older one gets
//!   FENCED_INSTANCE_ID;
//! - every waiting JoinGroup/SyncGroup is answered exactly once: by the transition that
//!   completes it, or with the error that ends it (its sender is never dropped silently
//!   while the group lives).

use super::consumer::{ConsumerGroup, ConsumerGroupState};
use super::{CommittedOffset, GroupConfig};
use bytes::Bytes;
use kavka_model::{ErrorCode, KafkaError};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Kafka's group states, named as `DescribeGroups` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
    /// KIP-848 groups: a new target assignment is being computed.
    Assigning,
    /// KIP-848 groups: members are moving to the target assignment.
    Reconciling,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }
}

/// A JoinGroup as the coordinator sees it (Kafka's fields, any protocol version).
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first be given its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// One member as the leader's JoinGroup answer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<JoinedMember>,
    /// A static leader that rejoined a stable group: it must not compute a new
    /// assignment (KIP-814).
    pub skip_assignment: bool,
}

#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, per member id.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub type JoinReply = oneshot::Sender<Result<JoinResult, KafkaError>>;
pub type SyncReply = oneshot::Sender<Result<SyncResult, KafkaError>>;

/// What a JoinGroup or SyncGroup gets: an answer now, or one to wait for.
pub enum Outcome<T> {
    Ready(Result<T, KafkaError>),
    Wait(oneshot::Receiver<Result<T, KafkaError>>),
    /// JoinGroup v4+ from a new member: MEMBER_ID_REQUIRED with the id to rejoin with.
    MemberIdRequired(String),
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    awaiting_join: Option<JoinReply>,
    awaiting_sync: Option<SyncReply>,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
}

/// A group's membership and committed offsets.
#[derive(Debug)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static members: `group.instance.id` → current member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their expiry.
    pending_members: HashMap<String, Instant>,
    /// When the current join phase ends even if not every member has rejoined.
    rebalance_deadline: Option<Instant>,
    /// The first join phase of an empty group waits `group.initial.rebalance.delay.ms`
    /// for more members before completing.
    initial_join: bool,
    initial_delay: Duration,
    /// Wall-clock time of the last state change (Kafka's `current_state_timestamp`).
    pub state_timestamp_ms: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Membership under the KIP-848 protocol, once a member joined that way.
    pub consumer: Option<ConsumerGroup>,
}

fn err(code: ErrorCode, msg: impl Into<String>) -> KafkaError {
    KafkaError::new(code, msg)
}

/// Effects of a transition the caller must carry out outside the group's lock.
#[derive(Debug, Default)]
#[must_use]
pub struct Effects {
    /// The group's membership changed in a way to write to `__consumer_offsets`.
    pub persist: bool,
    /// Leader's SyncGroup completed: answer these once the group is persisted.
    pub syncs: Vec<(SyncReply, Result<SyncResult, KafkaError>)>,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.persist |= other.persist;
        self.syncs.extend(other.syncs);
    }
}

impl Group {
    pub fn new(group_id: String, config: &GroupConfig, now_ms: i64) -> Self {
        Self {
            initial_delay: Duration::from_millis(config.initial_rebalance_delay_ms),
            group_id,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline: None,
            initial_join: false,
            state_timestamp_ms: now_ms,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    fn has_consumer_members(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// `classic` or `consumer` (KIP-848), as ListGroups reports it.
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() && self.members.is_empty() {
            "consumer"
        } else {
            "classic"
        }
    }

    /// The state as listed and described, whichever protocol the group uses.
    pub fn current_state(&self) -> GroupState {
        match &self.consumer {
            Some(c) if self.members.is_empty() && self.state != GroupState::Dead => match c.state()
            {
                ConsumerGroupState::Empty => GroupState::Empty,
                ConsumerGroupState::Assigning => GroupState::Assigning,
                ConsumerGroupState::Reconciling => GroupState::Reconciling,
                ConsumerGroupState::Stable => GroupState::Stable,
            },
            _ => self.state,
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// A group restored from `__consumer_offsets`: its members are taken as stable and
    /// get a full session to heartbeat the new coordinator.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        protocol_type: String,
        generation_id: i32,
        protocol_name: Option<String>,
        leader: Option<String>,
        state_timestamp_ms: i64,
        members: Vec<RestoredMember>,
        now: Instant,
    ) {
        self.protocol_type = (!protocol_type.is_empty()).then_some(protocol_type.clone());
        self.generation_id = generation_id;
        self.protocol_name = protocol_name.clone();
        self.leader = leader;
        self.state_timestamp_ms = state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        for m in members {
            if let Some(i) = &m.group_instance_id {
                self.static_members.insert(i.clone(), m.member_id.clone());
            }
            let protocols = protocol_name
                .iter()
                .map(|p| (p.clone(), m.subscription.clone()))
                .collect();
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: protocol_type.clone(),
                    protocols,
                    assignment: m.assignment,
                    last_heartbeat: now,
                    awaiting_join: None,
                    awaiting_sync: None,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// Whether the group holds nothing worth keeping (no members, no offsets).
    pub fn is_vacant(&self) -> bool {
        self.members.is_empty()
            && self.offsets.is_empty()
            && self.pending_members.is_empty()
            && !self.has_consumer_members()
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Protocols every member (and `extra`, a joining member) supports, in the order
    /// of the first member's preference.
    fn candidates<'a>(&'a self, extra: Option<&'a [(String, Bytes)]>) -> Vec<&'a str> {
        let mut lists = self
            .members
            .values()
            .map(|m| m.protocols.as_slice())
            .chain(extra);
        let Some(first) = lists.next() else {
            return Vec::new();
        };
        let rest: Vec<&[(String, Bytes)]> = lists.collect();
        first
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| rest.iter().all(|l| l.iter().any(|(m, _)| m == n)))
            .collect()
    }

    /// Kafka's protocol vote: each member votes for its most preferred candidate.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates(None);
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|c| (votes.get(*c).copied().unwrap_or(0), std::cmp::Reverse(**c)))
            .map(|c| c.to_string())
    }

    fn check_protocols(&self, req: &JoinRequest) -> Result<(), KafkaError> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(err(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "JoinGroup for group '{}' names no protocol type or no protocols",
                    self.group_id
                ),
            ));
        }
        if self.members.is_empty() {
            return Ok(());
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return Err(err(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{}' uses protocol type '{}', not '{}'",
                    self.group_id,
                    self.protocol_type.as_deref().unwrap_or(""),
                    req.protocol_type
                ),
            ));
        }
        // The joining member must share a protocol with every other member.
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.member_id != req.member_id)
            .collect();
        let shared = req
            .protocols
            .iter()
            .any(|(n, _)| others.iter().all(|m| m.supports(n)));
        if !shared {
            return Err(err(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "member of group '{}' offers protocols {:?}, none of which every member supports",
                    self.group_id,
                    req.protocols.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }

    fn unknown_member(&self, member_id: &str) -> KafkaError {
        err(
            ErrorCode::UnknownMemberId,
            format!(
                "member '{member_id}' is not a member of group '{}'",
                self.group_id
            ),
        )
    }

    /// FENCED_INSTANCE_ID when `instance` belongs to another member id now.
    fn check_instance(&self, member_id: &str, instance: Option<&str>) -> Result<(), KafkaError> {
        if let Some(i) = instance
            && let Some(current) = self.static_members.get(i)
            && current != member_id
        {
            return Err(err(
                ErrorCode::FencedInstanceId,
                format!(
                    "group.instance.id '{i}' of group '{}' belongs to member '{current}' now, not '{member_id}'",
                    self.group_id
                ),
            ));
        }
        Ok(())
    }

    fn check_generation(&self, generation_id: i32) -> Result<(), KafkaError> {
        if generation_id != self.generation_id {
            return Err(err(
                ErrorCode::IllegalGeneration,
                format!(
                    "generation {generation_id} is not group '{}''s current generation {}",
                    self.group_id, self.generation_id
                ),
            ));
        }
        Ok(())
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        config: &GroupConfig,
        new_member_id: impl FnOnce() -> String,
        now: Instant,
        now_ms: i64,
    ) -> (Outcome<JoinResult>, Effects) {
        let mut effects = Effects::default();
        let ready = |r| (Outcome::Ready(r), Effects::default());
        if self.state == GroupState::Dead {
            return ready(Err(err(
                ErrorCode::CoordinatorNotAvailable,
                format!("group '{}' is being deleted", self.group_id),
            )));
        }
        if self.has_consumer_members() {
            return ready(Err(err(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{}' has members using the consumer protocol (KIP-848); a classic member cannot join it",
                    self.group_id
                ),
            )));
        }
        let session = req.session_timeout_ms;
        if session < config.min_session_timeout_ms || session > config.max_session_timeout_ms {
            return ready(Err(err(
                ErrorCode::InvalidSessionTimeout,
                format!(
                    "session.timeout.ms {session} is outside the broker's group.min.session.timeout.ms {} .. group.max.session.timeout.ms {}",
                    config.min_session_timeout_ms, config.max_session_timeout_ms
                ),
            )));
        }
        if let Err(e) = self.check_protocols(&req) {
            return ready(Err(e));
        }
        let mut req = req;
        if req.member_id.is_empty() {
            let id = new_member_id();
            if let Some(instance) = req.group_instance_id.clone()
                && let Some(old) = self.static_members.get(&instance).cloned()
            {
                return self.rejoin_static(req, id, &old, instance, now, now_ms);
            }
            if req.require_known_member_id && req.group_instance_id.is_none() {
                self.pending_members
                    .insert(id.clone(), now + Duration::from_millis(session as u64));
                return (Outcome::MemberIdRequired(id), Effects::default());
            }
            req.member_id = id;
            if config.max_size > 0 && self.members.len() >= config.max_size {
                return ready(Err(self.full()));
            }
            let (rx, e) = self.add_member(req, now, now_ms);
            effects.merge(e);
            return (Outcome::Wait(rx), effects);
        }
        if let Err(e) = self.check_instance(&req.member_id, req.group_instance_id.as_deref()) {
            return ready(Err(e));
        }
        if !self.members.contains_key(&req.member_id) {
            if self.pending_members.remove(&req.member_id).is_none() {
                return ready(Err(self.unknown_member(&req.member_id)));
            }
            if config.max_size > 0 && self.members.len() >= config.max_size {
                return ready(Err(self.full()));
            }
            let (rx, e) = self.add_member(req, now, now_ms);
            effects.merge(e);
            return (Outcome::Wait(rx), effects);
        }
        // A known member rejoins.
        let member_id = req.member_id.clone();
        let Some(m) = self.members.get_mut(&member_id) else {
            return ready(Err(self.unknown_member(&member_id)));
        };
        let changed = m.protocols != req.protocols;
        m.protocols = req.protocols;
        m.session_timeout = Duration::from_millis(session as u64);
        m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.last_heartbeat = now;
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::CompletingRebalance | GroupState::Stable
                if !(changed || is_leader && self.state == GroupState::Stable) =>
            {
                // Nothing changed: the same answer again (a lost response, say).
                ready(Ok(self.join_result(&member_id, false)))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&member_id)
                    && let Some(old) = m.awaiting_join.replace(tx)
                {
                    let _ = old.send(Err(err(
                        ErrorCode::UnknownMemberId,
                        "superseded by a newer JoinGroup from the same member",
                    )));
                }
                if self.state != GroupState::PreparingRebalance {
                    effects.merge(self.prepare_rebalance(now, now_ms));
                }
                effects.merge(self.try_complete_join(now, now_ms));
                (Outcome::Wait(rx), effects)
            }
        }
    }

    fn full(&self) -> KafkaError {
        err(
            ErrorCode::GroupMaxSizeReached,
            format!("group '{}' has reached group.max.size", self.group_id),
        )
    }

    /// A static member came back with a new member id: it replaces its old incarnation,
    /// and a stable group with unchanged protocols does not rebalance (KIP-345).
    fn rejoin_static(
        &mut self,
        req: JoinRequest,
        new_id: String,
        old_id: &str,
        instance: String,
        now: Instant,
        now_ms: i64,
    ) -> (Outcome<JoinResult>, Effects) {
        let mut effects = Effects::default();
        let Some(mut m) = self.members.remove(old_id) else {
            self.static_members.remove(&instance);
            let mut req = req;
            req.member_id = new_id;
            let (rx, e) = self.add_member(req, now, now_ms);
            return (Outcome::Wait(rx), e);
        };
        let fenced = || {
            err(
                ErrorCode::FencedInstanceId,
                format!("group.instance.id '{instance}' rejoined with a new member id"),
            )
        };
        if let Some(tx) = m.awaiting_join.take() {
            let _ = tx.send(Err(fenced()));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(Err(fenced()));
        }
        let changed = m.protocols != req.protocols;
        m.member_id = new_id.clone();
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
        m.last_heartbeat = now;
        self.members.insert(new_id.clone(), m);
        self.static_members.insert(instance, new_id.clone());
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && !changed {
            effects.persist = true;
            return (
                Outcome::Ready(Ok(self.join_result(&new_id, was_leader))),
                effects,
            );
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&new_id) {
            m.awaiting_join = Some(tx);
        }
        if self.state != GroupState::PreparingRebalance {
            effects.merge(self.prepare_rebalance(now, now_ms));
        }
        effects.merge(self.try_complete_join(now, now_ms));
        (Outcome::Wait(rx), effects)
    }

    fn add_member(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> (oneshot::Receiver<Result<JoinResult, KafkaError>>, Effects) {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), req.member_id.clone());
        }
        self.members.insert(
            req.member_id.clone(),
            Member {
                member_id: req.member_id,
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                awaiting_join: Some(tx),
                awaiting_sync: None,
            },
        );
        let mut effects = Effects::default();
        if self.state != GroupState::PreparingRebalance {
            effects.merge(self.prepare_rebalance(now, now_ms));
        }
        effects.merge(self.try_complete_join(now, now_ms));
        (rx, effects)
    }

    fn join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            let protocol = self.protocol_name.as_deref().unwrap_or("");
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    /// Starts a join phase: everyone must rejoin before the deadline.
    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64) -> Effects {
        if self.state == GroupState::CompletingRebalance {
            self.fail_syncs(|| {
                err(
                    ErrorCode::RebalanceInProgress,
                    "the group started another rebalance",
                )
            });
        }
        self.initial_join = self.state == GroupState::Empty;
        let wait = if self.initial_join {
            self.initial_delay.min(self.rebalance_timeout())
        } else {
            self.rebalance_timeout()
        };
        self.rebalance_deadline = Some(now + wait);
        self.set_state(GroupState::PreparingRebalance, now_ms);
        Effects::default()
    }

    fn fail_syncs(&mut self, e: impl Fn() -> KafkaError) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(Err(e()));
            }
        }
    }

    /// Ends the join phase once every member has rejoined, or at the deadline (members
    /// that have not rejoined by then are removed).
    pub fn try_complete_join(&mut self, now: Instant, now_ms: i64) -> Effects {
        if self.state != GroupState::PreparingRebalance {
            return Effects::default();
        }
        let deadline_passed = self.rebalance_deadline.is_none_or(|d| now >= d);
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        if !deadline_passed && (self.initial_join || !all_joined) {
            return Effects::default();
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation_id += 1;
        // Kafka's group-completed-rebalance-count.
        metrics::counter!("kavka_group_rebalances_total", "protocol" => "classic").increment(1);
        self.rebalance_deadline = None;
        self.initial_join = false;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return Effects {
                persist: true,
                syncs: Vec::new(),
            };
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id, false);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_heartbeat = now;
                if let Some(tx) = m.awaiting_join.take() {
                    let _ = tx.send(Ok(result));
                }
            }
        }
        Effects::default()
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut m = self.members.remove(member_id)?;
        if let Some(i) = &m.group_instance_id
            && self.static_members.get(i).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(i);
        }
        let gone = || self.unknown_member(member_id);
        if let Some(tx) = m.awaiting_join.take() {
            let _ = tx.send(Err(gone()));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(Err(gone()));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(m)
    }

    /// A member is gone (left or expired): the others rebalance without it.
    fn member_gone(&mut self, member_id: &str, now: Instant, now_ms: i64) -> Effects {
        if self.remove_member(member_id).is_none() {
            return Effects::default();
        }
        let mut effects = Effects::default();
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                effects.merge(self.prepare_rebalance(now, now_ms));
                // Nobody left to wait for: complete at once.
                if self.members.is_empty() {
                    self.rebalance_deadline = Some(now);
                    self.initial_join = false;
                }
            }
            _ => {}
        }
        if self.members.is_empty() {
            self.rebalance_deadline = Some(now);
            self.initial_join = false;
        }
        effects.merge(self.try_complete_join(now, now_ms));
        effects
    }

    /// SyncGroup.
    pub fn sync(&mut self, req: SyncRequest, now: Instant) -> (Outcome<SyncResult>, Effects) {
        let ready = |r| (Outcome::Ready(r), Effects::default());
        if let Err(e) = self.check_instance(&req.member_id, req.group_instance_id.as_deref()) {
            return ready(Err(e));
        }
        if !self.members.contains_key(&req.member_id) {
            return ready(Err(self.unknown_member(&req.member_id)));
        }
        if let Err(e) = self.check_generation(req.generation_id) {
            return ready(Err(e));
        }
        let mismatch = |given: &Option<String>, ours: &Option<String>| {
            given.as_ref().is_some_and(|g| Some(g) != ours.as_ref())
        };
        if mismatch(&req.protocol_type, &self.protocol_type)
            || mismatch(&req.protocol_name, &self.protocol_name)
        {
            return ready(Err(err(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "SyncGroup names protocol {:?}/{:?}, group '{}' uses {:?}/{:?}",
                    req.protocol_type,
                    req.protocol_name,
                    self.group_id,
                    self.protocol_type,
                    self.protocol_name
                ),
            )));
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => ready(Err(err(
                ErrorCode::RebalanceInProgress,
                format!("group '{}' is rebalancing: rejoin", self.group_id),
            ))),
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(&req.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                ready(Ok(self.sync_result(assignment)))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id)
                    && let Some(old) = m.awaiting_sync.replace(tx)
                {
                    let _ = old.send(Err(err(
                        ErrorCode::UnknownMemberId,
                        "superseded by a newer SyncGroup from the same member",
                    )));
                }
                let mut effects = Effects::default();
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assigned: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assigned.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    effects.persist = true;
                    let pending: Vec<(SyncReply, Bytes)> = self
                        .members
                        .values_mut()
                        .filter_map(|m| Some((m.awaiting_sync.take()?, m.assignment.clone())))
                        .collect();
                    effects.syncs = pending
                        .into_iter()
                        .map(|(tx, a)| (tx, Ok(self.sync_result(a))))
                        .collect();
                }
                (Outcome::Wait(rx), effects)
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => ready(Err(self.unknown_member(&req.member_id))),
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// Persisting the leader's assignment failed: the members must rejoin.
    pub fn assignment_lost(&mut self, now: Instant, now_ms: i64) -> Effects {
        if self.state == GroupState::Stable {
            self.prepare_rebalance(now, now_ms)
        } else {
            Effects::default()
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), KafkaError> {
        self.check_instance(member_id, instance)?;
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        self.check_generation(generation_id)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(err(
                ErrorCode::RebalanceInProgress,
                format!("group '{}' is rebalancing: rejoin", self.group_id),
            )),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id alone).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
        now_ms: i64,
    ) -> (Result<String, KafkaError>, Effects) {
        let id = if member_id.is_empty() {
            match instance.and_then(|i| self.static_members.get(i)) {
                Some(id) => id.clone(),
                None => return (Err(self.unknown_member(member_id)), Effects::default()),
            }
        } else {
            if let Err(e) = self.check_instance(member_id, instance) {
                return (Err(e), Effects::default());
            }
            member_id.to_string()
        };
        if self.pending_members.remove(&id).is_some() {
            return (Ok(id), Effects::default());
        }
        if !self.members.contains_key(&id) {
            return (Err(self.unknown_member(&id)), Effects::default());
        }
        let effects = self.member_gone(&id, now, now_ms);
        (Ok(id), effects)
    }

    /// Expires members whose session ran out and ends join phases whose deadline passed.
    pub fn tick(&mut self, now: Instant, now_ms: i64) -> Effects {
        self.pending_members.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && now >= m.last_heartbeat + m.session_timeout)
            .map(|m| m.member_id.clone())
            .collect();
        let mut effects = Effects::default();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired");
            effects.merge(self.member_gone(&id, now, now_ms));
        }
        effects.merge(self.try_complete_join(now, now_ms));
        effects
    }

    /// Checks that a member may commit offsets now.
    pub fn check_commit(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        if let Some(c) = self.consumer.as_ref().filter(|c| !c.is_empty()) {
            return c.check_commit(&self.group_id, member_id, generation_id);
        }
        if generation_id < 0 && self.members.is_empty() {
            // Kafka's simple commit: generation (member epoch) -1 comes from an admin, or a
            // consumer that assigns partitions itself (a KIP-848 one sends its own member
            // id with it); accepted while the group has no members.
            return Ok(());
        }
        if generation_id < 0 && member_id.is_empty() {
            // A commit from outside the group (an admin or a consumer with manual
            // assignment): only while nobody is a member.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(err(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "group '{}' has active members: commit as a member, or stop them first",
                        self.group_id
                    ),
                ))
            };
        }
        self.check_instance(member_id, instance)?;
        if !self.members.contains_key(member_id) {
            return Err(self.unknown_member(member_id));
        }
        self.check_generation(generation_id)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(err(
                ErrorCode::RebalanceInProgress,
                format!("group '{}' is completing a rebalance", self.group_id),
            ));
        }
        Ok(())
    }

    /// Marks the group deleted: refuses when it has members (NON_EMPTY_GROUP).
    pub fn check_deletable(&self) -> Result<(), KafkaError> {
        if self.has_consumer_members() {
            return Err(err(
                ErrorCode::NonEmptyGroup,
                format!(
                    "group '{}' has active consumer-protocol members",
                    self.group_id
                ),
            ));
        }
        if !self.members.is_empty() {
            return Err(err(
                ErrorCode::NonEmptyGroup,
                format!(
                    "group '{}' has {} active member(s)",
                    self.group_id,
                    self.members.len()
                ),
            ));
        }
        Ok(())
    }
}

/// A member as stored in `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl Group {
    /// The stored form of the group's membership.
    pub fn stored_members(&self) -> Vec<RestoredMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| RestoredMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                session_timeout_ms: m.session_timeout.as_millis() as i32,
                subscription: m.metadata(protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
