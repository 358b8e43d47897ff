//! The KIP-848 consumer group protocol (`group.protocol=consumer`): members heartbeat
//! their subscription, the coordinator computes the target assignment with a server-side
//! assignor (`uniform`, `range`) and reconciles each member towards it incrementally.
//! A pure state machine, like `classic`: every call is given `now`.
//!
//! Invariants (KIP-848's):
//! - the group epoch grows whenever membership, a subscription or a subscribed topic's
//!   partition count changes; the target assignment is computed for the group epoch
//!   (`assignment_epoch`), so the two are equal after every heartbeat;
//! - a partition is never given to a member while another member still owns it: a member
//!   first gives up what it must revoke (and says so in a heartbeat), and only then do
//!   others get those partitions;
//! - a member's epoch moves to the assignment epoch only once it has nothing left to
//!   revoke; a request with an epoch that is neither its current nor (for a lost answer)
//!   its previous one gets FENCED_MEMBER_EPOCH.
//!
//! Subscriptions: a member subscribes to topic names, to a regular expression
//! (`SubscribedTopicRegex`, RE2 syntax, matched against the whole topic name as Java's
//! `Pattern.matches` does), or both; it consumes the union. The regex is resolved on
//! every heartbeat against the topics the caller passes in ([`Topics`], the broker's
//! metadata image), never against internal topics (`__`-prefixed), so a topic created or
//! deleted after the member joined changes the subscribed topics' partition counts the
//! group compares, and bumps the group epoch without the member sending anything new.
//! A regex that does not compile is refused with INVALID_REGULAR_EXPRESSION before any
//! state changes. In a heartbeat, an absent regex leaves it as it was and an empty one
//! clears it.

use super::GroupConfig;
use kavka_model::{ErrorCode, KafkaError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Partitions by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// The most memory one member's compiled regex may take (the `regex` crate's size limit):
/// a client cannot make the coordinator build an arbitrarily large automaton.
pub const REGEX_SIZE_BYTES_MAX: usize = 1024 * 1024;

/// The cluster's topics as the state machine sees them (the coordinator reads them from
/// its metadata image): a topic's partition count, and every topic's name for regex
/// subscriptions.
pub trait Topics {
    /// The partition count of `topic`; None: no such topic.
    fn partitions(&self, topic: &str) -> Option<i32>;
    /// Calls `f` with the name of every topic.
    fn for_each_name(&self, f: &mut dyn FnMut(&str));
}

/// A subscription regex: the source as the member sent it, compiled anchored at both
/// ends (`^(?:re)$`) so it matches whole topic names only.
#[derive(Clone, Debug)]
pub struct TopicRegex {
    source: String,
    anchored: regex::Regex,
}

impl TopicRegex {
    /// Compiles `source`, or answers INVALID_REGULAR_EXPRESSION naming it and why.
    pub fn new(source: &str) -> Result<Self, KafkaError> {
        let build = |re: &str| {
            regex::RegexBuilder::new(re)
                .size_limit(REGEX_SIZE_BYTES_MAX)
                .build()
        };
        // The source alone first: `a)|(b` is not a regex, though `^(?:a)|(b)$` is one.
        let anchored = build(source)
            .and_then(|_| build(&format!("^(?:{source})$")))
            .map_err(|e| {
                err(
                    ErrorCode::InvalidRegularExpression,
                    format!(
                        "SubscribedTopicRegex `{source}` is not a valid regular expression: {e}"
                    ),
                )
            })?;
        Ok(Self {
            source: source.to_string(),
            anchored,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the regex subscribes to `topic`: a whole-name match, never an internal topic.
    pub fn matches(&self, topic: &str) -> bool {
        !topic.starts_with("__") && self.anchored.is_match(topic)
    }
}

/// Epochs a member sends to leave: -1 for good, -2 a static member for now.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Clone, Debug, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// None: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    /// None: unchanged since the last heartbeat; empty: no regex any more.
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns now; None: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's assignment, when it changed (or the member must learn it).
    pub assignment: Option<Assignment>,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    /// Subscribed topic names, sorted and without duplicates.
    pub subscribed: Vec<String>,
    /// Subscribed topics by regex, besides the names.
    pub subscribed_regex: Option<TopicRegex>,
    rebalance_timeout: Duration,
    pub assigned: Assignment,
    /// Partitions the member was told to give up and has not yet confirmed.
    pub pending_revocation: Assignment,
    /// What the member was last told, to answer only with changes.
    last_sent: Option<Assignment>,
    last_heartbeat: Instant,
    revocation_deadline: Option<Instant>,
    /// A static member that left for now (epoch -2): its assignment waits for it.
    departed: bool,
}

impl ConsumerMember {
    /// Whether the member subscribes to `topic`, by name or by regex.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed.iter().any(|t| t == topic)
            || self
                .subscribed_regex
                .as_ref()
                .is_some_and(|r| r.matches(topic))
    }
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics (by name or regex) the target was
    /// computed with.
    topics_seen: BTreeMap<String, i32>,
}

fn err(code: ErrorCode, msg: impl Into<String>) -> KafkaError {
    KafkaError::new(code, msg)
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(t.clone(), both);
            }
        }
    }
    out
}

fn union(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(t.clone()).or_default().extend(ps);
    }
    out
}

/// A member as stored in `__consumer_offsets` (no timers: a restored member gets a fresh
/// session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub subscribed: Vec<String>,
    /// Absent in records written before regex subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_regex: Option<String>,
    pub rebalance_timeout_ms: u64,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub departed: bool,
}

/// A KIP-848 group as stored in `__consumer_offsets`, so a new coordinator resumes it
/// without a rebalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<StoredMember>,
    pub target: BTreeMap<String, Assignment>,
    pub topics_seen: BTreeMap<String, i32>,
}

/// Kafka's names for a consumer group's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroup {
    pub fn new(config: &GroupConfig) -> Self {
        Self {
            assignor: config.consumer_assignor.clone(),
            ..Self::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        let live = || self.members.values().filter(|m| !m.departed);
        if live().next().is_none() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if live()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// What is stored: everything but timers and what was last sent.
    pub fn stored(&self) -> StoredConsumerGroup {
        StoredConsumerGroup {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    subscribed: m.subscribed.clone(),
                    subscribed_regex: m.subscribed_regex.as_ref().map(|r| r.source.clone()),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.pending_revocation.clone(),
                    departed: m.departed,
                })
                .collect(),
            target: self.target.clone(),
            topics_seen: self.topics_seen.clone(),
        }
    }

    /// A group as stored; its members get a full session from `now`.
    pub fn restore(s: StoredConsumerGroup, now: Instant) -> Self {
        Self {
            group_epoch: s.group_epoch,
            assignment_epoch: s.assignment_epoch,
            assignor: s.assignor,
            members: s
                .members
                .into_iter()
                .map(|m| {
                    let revoking = !m.pending_revocation.is_empty();
                    let timeout = Duration::from_millis(m.rebalance_timeout_ms);
                    // Only regexes that compiled are stored.
                    let regex = m.subscribed_regex.and_then(|re| {
                        TopicRegex::new(&re)
                            .inspect_err(|e| {
                                tracing::warn!(member = %m.member_id, error = %e, "stored subscription regex dropped");
                            })
                            .ok()
                    });
                    (
                        m.member_id.clone(),
                        ConsumerMember {
                            member_id: m.member_id,
                            instance_id: m.instance_id,
                            rack_id: m.rack_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            member_epoch: m.member_epoch,
                            previous_epoch: m.previous_epoch,
                            subscribed: m.subscribed,
                            subscribed_regex: regex,
                            rebalance_timeout: timeout,
                            assigned: m.assigned,
                            pending_revocation: m.pending_revocation,
                            last_sent: None,
                            last_heartbeat: now,
                            revocation_deadline: revoking.then_some(now + timeout),
                            departed: m.departed,
                        },
                    )
                })
                .collect(),
            target: s.target,
            topics_seen: s.topics_seen,
        }
    }

    /// Every existing topic some member subscribes to, by name or by regex, with its
    /// partition count.
    pub fn subscribed_topics(&self, topics: &dyn Topics) -> BTreeMap<String, i32> {
        let mut names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect();
        let mut regexes: Vec<&TopicRegex> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        regexes.sort_by(|a, b| a.source.cmp(&b.source));
        regexes.dedup_by(|a, b| a.source == b.source);
        if !regexes.is_empty() {
            topics.for_each_name(&mut |t| {
                if !names.contains(t) && regexes.iter().any(|r| r.matches(t)) {
                    names.insert(t.to_string());
                }
            });
        }
        names
            .into_iter()
            .filter_map(|t| topics.partitions(&t).map(|n| (t, n)))
            .collect()
    }

    /// ConsumerGroupHeartbeat. `topics` gives the topics' partition counts and names;
    /// `new_member_id` names a member that joins without an id (v0).
    #[allow(clippy::too_many_arguments)]
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &dyn Topics,
        config: &GroupConfig,
        new_member_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<HeartbeatResult, KafkaError> {
        if let Some(a) = &req.server_assignor
            && !ASSIGNORS.contains(&a.as_str())
        {
            return Err(err(
                ErrorCode::UnsupportedAssignor,
                format!("server assignor '{a}' is not one of {ASSIGNORS:?}"),
            ));
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(group_id, &req, now);
        }
        // Some(None): clear the regex.
        let unchanged = |re: &str| {
            req.member_epoch != 0
                && self
                    .members
                    .get(&req.member_id)
                    .and_then(|m| m.subscribed_regex.as_ref())
                    .is_some_and(|r| r.as_str() == re)
        };
        let regex_update = match req.subscribed_regex.as_deref() {
            None => None,
            Some("") => Some(None),
            // Sent again as it was: not compiled again (clients may send it every time).
            Some(re) if unchanged(re) => None,
            Some(re) => Some(Some(TopicRegex::new(re)?)),
        };
        let mut bump = false;
        let member_id = if req.member_epoch == 0 {
            let joins_by_regex = matches!(regex_update, Some(Some(_)));
            let (id, joined) =
                self.join(group_id, &req, joins_by_regex, config, new_member_id, now)?;
            bump = joined;
            id
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return Err(err(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "member '{}' is not a member of group '{group_id}'",
                        req.member_id
                    ),
                ));
            };
            let owned_ok = req
                .owned
                .as_ref()
                .is_none_or(|o| minus(o, &m.assigned).is_empty());
            if req.member_epoch != m.member_epoch
                && !(req.member_epoch == m.previous_epoch && owned_ok)
            {
                return Err(err(
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "member '{}' of group '{group_id}' sent epoch {}, its epoch is {}",
                        req.member_id, req.member_epoch, m.member_epoch
                    ),
                ));
            }
            req.member_id.clone()
        };
        if let Some(a) = &req.server_assignor {
            self.assignor = a.clone();
        }
        if let Some(m) = self.members.get_mut(&member_id) {
            m.last_heartbeat = now;
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
            }
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            if let Some(mut topics) = req.subscribed_topics.clone() {
                topics.sort();
                topics.dedup();
                if topics != m.subscribed {
                    m.subscribed = topics;
                    bump = true;
                }
            }
            if let Some(regex) = regex_update {
                let source = |r: &Option<TopicRegex>| r.as_ref().map(|r| r.source.clone());
                if source(&regex) != source(&m.subscribed_regex) {
                    m.subscribed_regex = regex;
                    bump = true;
                }
            }
            if let Some(owned) = &req.owned {
                // Revocation is confirmed once the member no longer owns the partitions.
                m.pending_revocation = intersect(&m.pending_revocation, owned);
                if m.pending_revocation.is_empty() {
                    m.revocation_deadline = None;
                }
            }
        }
        // Subscribed topics created, deleted or grown since the target was computed; a
        // regex's matches are among them.
        let seen = self.subscribed_topics(topics);
        if seen != self.topics_seen {
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.topics_seen = seen;
            self.compute_target();
        }
        Ok(self.reconcile(
            &member_id,
            req.member_epoch == 0 || req.owned.is_some(),
            now,
        ))
    }

    /// A member (re)joining with epoch 0; `by_regex`: it subscribes with a regex.
    fn join(
        &mut self,
        group_id: &str,
        req: &HeartbeatRequest,
        by_regex: bool,
        config: &GroupConfig,
        new_member_id: impl FnOnce() -> String,
        now: Instant,
    ) -> Result<(String, bool), KafkaError> {
        let subscribed = req.subscribed_topics.clone().unwrap_or_default();
        if subscribed.is_empty() && !by_regex {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "a member joining group '{group_id}' must name the topics it subscribes to or give a SubscribedTopicRegex"
                ),
            ));
        }
        if req.rebalance_timeout_ms <= 0 {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("a member joining group '{group_id}' must give its rebalance timeout"),
            ));
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        // A static member coming back takes over its assignment without a rebalance.
        if let Some(instance) = &req.instance_id {
            let previous = self
                .members
                .values()
                .find(|m| {
                    m.instance_id.as_deref() == Some(instance.as_str()) && m.member_id != member_id
                })
                .map(|m| (m.member_id.clone(), m.departed));
            if let Some((old_id, departed)) = previous {
                if !departed {
                    return Err(err(
                        ErrorCode::UnreleasedInstanceId,
                        format!(
                            "instance '{instance}' of group '{group_id}' is still held by member '{old_id}'"
                        ),
                    ));
                }
                if let Some(mut m) = self.members.remove(&old_id) {
                    m.member_id = member_id.clone();
                    m.departed = false;
                    m.last_heartbeat = now;
                    m.last_sent = None;
                    if let Some(t) = self.target.remove(&old_id) {
                        self.target.insert(member_id.clone(), t);
                    }
                    self.members.insert(member_id.clone(), m);
                }
                return Ok((member_id, false));
            }
        }
        if config.max_size > 0
            && !self.members.contains_key(&member_id)
            && self.members.len() >= config.max_size
        {
            return Err(err(
                ErrorCode::GroupMaxSizeReached,
                format!("group '{group_id}' has reached group.max.size"),
            ));
        }
        let joined = !self.members.contains_key(&member_id);
        if joined {
            let mut subscribed = subscribed;
            subscribed.sort();
            subscribed.dedup();
            self.members.insert(
                member_id.clone(),
                ConsumerMember {
                    member_id: member_id.clone(),
                    instance_id: req.instance_id.clone(),
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    member_epoch: 0,
                    previous_epoch: 0,
                    subscribed,
                    // Set with the other subscription changes, after the join.
                    subscribed_regex: None,
                    rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms as u64),
                    assigned: Assignment::new(),
                    pending_revocation: Assignment::new(),
                    last_sent: None,
                    last_heartbeat: now,
                    revocation_deadline: None,
                    departed: false,
                },
            );
        }
        Ok((member_id, joined))
    }

    fn leave(
        &mut self,
        group_id: &str,
        req: &HeartbeatRequest,
        now: Instant,
    ) -> Result<HeartbeatResult, KafkaError> {
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return Err(err(
                ErrorCode::UnknownMemberId,
                format!(
                    "member '{}' is not a member of group '{group_id}'",
                    req.member_id
                ),
            ));
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && m.instance_id.is_some() {
            // Keeps its partitions until it comes back or its session runs out.
            m.departed = true;
            m.last_heartbeat = now;
        } else {
            self.remove(&req.member_id.clone());
        }
        Ok(HeartbeatResult {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            assignment: None,
        })
    }

    fn remove(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// Moves the member towards its target; the answer to its heartbeat.
    fn reconcile(&mut self, member_id: &str, must_tell: bool, now: Instant) -> HeartbeatResult {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: Assignment = self
            .members
            .values()
            .filter(|o| o.member_id != member_id)
            .fold(Assignment::new(), |acc, o| {
                union(&union(&acc, &o.assigned), &o.pending_revocation)
            });
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return HeartbeatResult {
                member_id: member_id.to_string(),
                member_epoch: LEAVE_EPOCH,
                assignment: None,
            };
        };
        let revoke = minus(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = intersect(&m.assigned, &target);
            m.pending_revocation = union(&m.pending_revocation, &revoke);
            m.revocation_deadline = Some(now + m.rebalance_timeout);
        }
        if m.pending_revocation.is_empty() {
            let grant = minus(&minus(&target, &m.assigned), &held_by_others);
            m.assigned = union(&m.assigned, &grant);
            if m.member_epoch != assignment_epoch {
                m.previous_epoch = m.member_epoch;
                m.member_epoch = assignment_epoch;
            }
        }
        let changed = m.last_sent.as_ref() != Some(&m.assigned);
        let assignment = (changed || must_tell).then(|| m.assigned.clone());
        if assignment.is_some() {
            m.last_sent = Some(m.assigned.clone());
        }
        HeartbeatResult {
            member_id: member_id.to_string(),
            member_epoch: m.member_epoch,
            assignment,
        }
    }

    /// Recomputes every member's target with the group's assignor.
    fn compute_target(&mut self) {
        let previous = std::mem::take(&mut self.target);
        let mut target: BTreeMap<String, Assignment> = self
            .members
            .keys()
            .map(|m| (m.clone(), Assignment::new()))
            .collect();
        for (topic, &count) in &self.topics_seen {
            let subscribers: Vec<&String> = self
                .members
                .values()
                .filter(|m| m.subscribes_to(topic))
                .map(|m| &m.member_id)
                .collect();
            if subscribers.is_empty() {
                continue;
            }
            let parts: Vec<i32> = (0..count).collect();
            let n = subscribers.len();
            let quota = |i: usize| parts.len() / n + usize::from(i < parts.len() % n);
            if self.assignor == "range" {
                let mut next = 0;
                for (i, m) in subscribers.iter().enumerate() {
                    let take = quota(i);
                    target
                        .entry((*m).clone())
                        .or_default()
                        .entry(topic.clone())
                        .or_default()
                        .extend(&parts[next..next + take]);
                    next += take;
                }
                continue;
            }
            // uniform: balanced, and sticky (a member keeps what it had, up to its quota).
            let mut free: BTreeSet<i32> = parts.iter().copied().collect();
            let mut mine: Vec<BTreeSet<i32>> = vec![BTreeSet::new(); n];
            for (i, m) in subscribers.iter().enumerate() {
                if let Some(had) = previous.get(*m).and_then(|a| a.get(topic)) {
                    for p in had.iter().filter(|p| free.contains(p)).take(quota(i)) {
                        mine[i].insert(*p);
                    }
                    for p in &mine[i] {
                        free.remove(p);
                    }
                }
            }
            for (i, set) in mine.iter_mut().enumerate() {
                while set.len() < quota(i) {
                    let Some(p) = free.pop_first() else { break };
                    set.insert(p);
                }
            }
            for (i, m) in subscribers.iter().enumerate() {
                if !mine[i].is_empty() {
                    target
                        .entry((*m).clone())
                        .or_default()
                        .insert(topic.clone(), mine[i].clone());
                }
            }
        }
        target.retain(|_, a| {
            a.retain(|_, ps| !ps.is_empty());
            true
        });
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        // A new target assignment: KIP-848's rebalance.
        metrics::counter!("kavka_group_rebalances_total", "protocol" => "consumer").increment(1);
    }

    /// Expires silent members and fences members that do not revoke in time.
    pub fn tick(&mut self, session_timeout: Duration, now: Instant) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now >= m.last_heartbeat + session_timeout
                    || m.revocation_deadline.is_some_and(|d| now >= d)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            tracing::info!(member = %id, "consumer group member expired");
            self.remove(id);
        }
        !gone.is_empty()
    }

    /// OffsetCommit/OffsetFetch member checks.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), KafkaError> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(err(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "group '{group_id}' has active members: commit as a member, or stop them first"
                    ),
                ))
            };
        }
        let Some(m) = self.members.get(member_id) else {
            return Err(err(
                ErrorCode::UnknownMemberId,
                format!("member '{member_id}' is not a member of group '{group_id}'"),
            ));
        };
        if epoch < m.member_epoch {
            return Err(err(
                ErrorCode::StaleMemberEpoch,
                format!(
                    "epoch {epoch} of member '{member_id}' is older than its epoch {}",
                    m.member_epoch
                ),
            ));
        }
        if epoch > m.member_epoch {
            return Err(err(
                ErrorCode::FencedMemberEpoch,
                format!(
                    "epoch {epoch} of member '{member_id}' is newer than its epoch {}",
                    m.member_epoch
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
