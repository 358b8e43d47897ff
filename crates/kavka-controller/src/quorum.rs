//! The quorum: owns this controller's `openraft::Raft`, forms the cluster from the static
//! voter list, proposes record batches and resolves them once committed, and changes the
//! voter set one voter at a time (KIP-853: `add_voter`, `remove_voter`).
//!
//! Only the active controller (the Raft leader) proposes; elsewhere `propose` answers
//! `NotLeader` with the leader's id and address so callers can forward (bounded retries
//! are the caller's). Cluster formation is idempotent: every voter calls `initialize`
//! with the same voter list, and a voter that already has state refuses it harmlessly.
//! A controller outside the static list never initializes: it starts as an observer with
//! an empty log and becomes a member only when the active controller adds it.
//!
//! The static list is a bootstrap (Kafka's `controller.quorum.voters` under
//! `kraft.version` 1): once a voter change has committed, the membership in the log is
//! the voter set, and a static list that differs from it is no longer an error.
//!
//! Voter changes: at most one at a time (a local lock plus the membership's own state,
//! see `voters::check_voter_change`); adding is "add as learner, wait until it has caught
//! up (bounded), then change the voters" (openraft's joint consensus); a learner that
//! does not catch up in time is removed again, so a refused add leaves the voter set as
//! it was.

use crate::raft::log_store::SledLogStore;
use crate::raft::network::{AnsweredDirectoryIds, GrpcNetworkFactory, MetadataRaft, RaftServer};
use crate::raft::peers::{ControllerSecret, PeerPolicy};
use crate::raft::state_machine::MetadataStateMachine;
use crate::types::{DirectoryId, MetadataRequest, NodeId, TypeConfig, VoterNode};
use crate::voters::{
    MembershipView, VoterChange, check_voter_change, directory_fill_in, membership_in_flight,
    static_lists_cleared, static_quorum,
};
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::{ErrorCode, KafkaError};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::Precondition;
use openraft::{ChangeMembers, Config, RaftMetrics, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A receiver of this voter's Raft metrics (leader, term, log progress).
pub type RaftMetricsWatch =
    openraft::type_config::alias::WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>;

#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// Where the sled store lives.
    pub dir: PathBuf,
    /// The static voters (`--controller-voters`): `node.id` → Raft address. This node is
    /// one of them, or it starts as an observer waiting to be added.
    pub voters: BTreeMap<NodeId, VoterNode>,
    /// This controller's data dir identity (`directory.id` in meta.properties): presented
    /// on its Raft calls and compared with the membership's record of its id.
    pub directory_id: Option<DirectoryId>,
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout_ms: (u64, u64),
    /// Snapshot after this many entries since the last one; the log before it is purged.
    pub snapshot_after_entries: u64,
    /// Every Raft call between voters presents it, and calls without it are refused.
    pub secret: Option<ControllerSecret>,
    /// How this voter reaches the others' controller listeners (plaintext or mutual TLS).
    pub transport: kavka_tls::Transport,
}

impl QuorumConfig {
    pub fn new(node_id: NodeId, dir: PathBuf, voters: BTreeMap<NodeId, VoterNode>) -> Self {
        Self {
            node_id,
            dir,
            voters,
            directory_id: None,
            heartbeat_interval_ms: 100,
            // The old leader's lease (= the max) must lapse before a vote is granted, so a
            // crash costs about max + a random min..max: 0.6–1.2 s.
            election_timeout_ms: (300, 600),
            snapshot_after_entries: 10_000,
            secret: None,
            transport: kavka_tls::Transport::plaintext(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// A voter change refused (or timed out) with Kafka's code, nothing changed.
    #[error(transparent)]
    Refused(#[from] KafkaError),
    #[error("metadata store: {0}")]
    Storage(#[from] std::io::Error),
    #[error("invalid raft config: {0}")]
    Config(String),
    #[error("not the active controller; the active controller is {}", match leader { Some((id, node)) => format!("{id} at {}", node.addr), None => "not known yet".to_string() })]
    NotLeader { leader: Option<(NodeId, VoterNode)> },
    /// This node must stop: Raft hit a storage or internal failure.
    #[error("controller raft failed: {0}")]
    Fatal(String),
}

/// What `change_membership` answers.
type MembershipWrite = Result<
    openraft::raft::ClientWriteResponse<TypeConfig>,
    RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
>;

/// Sets a flag for as long as it lives.
struct Marked<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Marked<'a> {
    fn new(flag: &'a std::sync::atomic::AtomicBool) -> Self {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The longest a static voter's directory-id write may take before it is given up (and
/// tried again later).
const FILL_IN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operator's voter change waits for this controller to apply a membership
/// entry it has already committed (see `Quorum::settled_membership_view`).
const MEMBERSHIP_SETTLE: Duration = Duration::from_secs(2);

/// Whether the newest membership in `m` is a change in flight
/// ([`membership_in_flight`]: joint, or not applied yet here).
fn in_flight(m: &RaftMetrics<TypeConfig>) -> bool {
    let stored = &m.membership_config;
    membership_in_flight(
        stored.membership().get_joint_config().len(),
        stored.log_id().as_ref().map(|l| l.index()),
        m.last_applied.as_ref().map(|l| l.index()),
    )
}

pub struct Quorum {
    node_id: NodeId,
    raft: MetadataRaft,
    sm: MetadataStateMachine,
    /// A reader of the committed log, for brokers following the metadata.
    log: SledLogStore,
    voters: BTreeMap<NodeId, VoterNode>,
    directory_id: Option<DirectoryId>,
    /// Why this node is not the voter its id names (an emptied voter), once a caller or
    /// the membership has shown it; the node stops then.
    replaced: Arc<std::sync::OnceLock<String>>,
    /// Since when this node's own membership has recorded another directory id for it.
    own_conflict_since: crate::raft::network::ConflictTimer,
    /// Held for the whole of a voter change: one at a time from this controller.
    voter_change: tokio::sync::Mutex<()>,
    /// The directory ids peers answered Raft calls with.
    answered: Arc<AnsweredDirectoryIds>,
    /// Set while the voter-change lock is held only to record a directory id.
    filling_in: std::sync::atomic::AtomicBool,
    /// Who may send Raft calls to this voter.
    peers: Arc<PeerPolicy>,
    secret: Option<ControllerSecret>,
    transport: kavka_tls::Transport,
}

/// Committed metadata for an observer: batches from the log, or the whole image when
/// the asked part of the log was purged after a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataUpdate {
    Batches(Vec<(u64, Vec<MetadataRecord>)>),
    Snapshot(Arc<MetadataImage>),
}

impl Quorum {
    pub async fn start(cfg: QuorumConfig) -> Result<Self, QuorumError> {
        let observer = !cfg.voters.contains_key(&cfg.node_id);
        let (log, sm) = crate::raft::open(&cfg.dir)?;
        let reader = log.clone();
        let config = Config {
            cluster_name: "kavka".into(),
            heartbeat_interval: cfg.heartbeat_interval_ms,
            election_timeout_min: cfg.election_timeout_ms.0,
            election_timeout_max: cfg.election_timeout_ms.1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_after_entries),
            // A follower installing a snapshot must still find the log after it.
            max_in_snapshot_log_to_keep: cfg.snapshot_after_entries,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let (recorded_tx, recorded) = watch::channel(BTreeMap::new());
        let answered = Arc::new(AnsweredDirectoryIds::default());
        let raft = MetadataRaft::new(
            cfg.node_id,
            Arc::new(config),
            GrpcNetworkFactory {
                secret: cfg.secret.clone(),
                transport: cfg.transport.clone(),
                voters: cfg.voters.clone(),
                directory_id: cfg.directory_id,
                recorded,
                answered: Arc::clone(&answered),
                image: sm.subscribe(),
                reachability: Arc::default(),
            },
            log,
            sm.clone(),
        )
        .await
        .map_err(|e| QuorumError::Fatal(e.to_string()))?;
        tokio::spawn(keep_recorded_directory_ids(raft.metrics(), recorded_tx));
        let formed = if observer {
            tracing::info!(
                node_id = cfg.node_id,
                voters = ?cfg.voters.keys().collect::<Vec<_>>(),
                "not a static voter: following the controller quorum as an observer until `kavka quorum add-voter` adds this node"
            );
            Ok(())
        } else {
            raft.initialize(cfg.voters.clone()).await
        };
        match formed {
            Ok(()) if observer => {}
            Ok(()) => {
                tracing::info!(node_id = cfg.node_id, voters = ?cfg.voters.keys().collect::<Vec<_>>(), "formed the controller quorum")
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!(
                    node_id = cfg.node_id,
                    "rejoining the controller quorum from its stored state"
                )
            }
            Err(e) => return Err(QuorumError::Fatal(e.to_string())),
        }
        Ok(Self {
            node_id: cfg.node_id,
            raft,
            sm,
            log: reader,
            peers: Arc::new(PeerPolicy::new(
                cfg.voters.keys().copied(),
                cfg.secret.clone(),
            )),
            secret: cfg.secret,
            transport: cfg.transport,
            voters: cfg.voters,
            directory_id: cfg.directory_id,
            replaced: Arc::default(),
            own_conflict_since: Default::default(),
            voter_change: tokio::sync::Mutex::new(()),
            answered,
            filling_in: Default::default(),
        })
    }

    /// This controller's data dir identity.
    pub fn directory_id(&self) -> Option<DirectoryId> {
        self.directory_id
    }

    /// The membership as this controller knows it (the newest entry, maybe uncommitted):
    /// its log index, and every member (voters of any config, and learners).
    pub fn membership(&self) -> (Option<u64>, crate::raft::codec::MembershipOf<TypeConfig>) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (
            m.membership_config.log_id().as_ref().map(|l| l.index()),
            m.membership_config.membership().clone(),
        )
    }

    /// The voter set for a change decision.
    pub fn membership_view(&self) -> MembershipView {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let stored = &m.membership_config;
        let membership = stored.membership();
        let joint = membership.get_joint_config();
        let newest: BTreeSet<NodeId> = joint.last().cloned().unwrap_or_default();
        MembershipView {
            voters: newest
                .iter()
                .map(|id| (*id, membership.get_node(id).and_then(|n| n.directory_id)))
                .collect(),
            learners: membership.learner_ids().collect(),
            change_in_flight: in_flight(&m),
        }
    }

    /// [`Self::membership_view`] once this controller's metrics show its newest
    /// membership entry applied, waiting at most [`MEMBERSHIP_SETTLE`]. openraft answers
    /// a membership write as the entry is applied, a moment before its metrics say so:
    /// read at once after this controller's own write (a directory-id fill-in whose lock
    /// an operator's change was waiting on, or the operator's previous change), the view
    /// would show a change in flight that has already committed. A joint config is not
    /// waited for (a change truly in flight is refused at once), nor is an entry that
    /// does not apply in time (refused as in flight).
    async fn settled_membership_view(&self) -> MembershipView {
        let settled = self
            .raft
            .wait(Some(MEMBERSHIP_SETTLE))
            .metrics(
                |m| m.membership_config.membership().get_joint_config().len() > 1 || !in_flight(m),
                "the newest membership entry applied",
            )
            .await;
        if let Err(e) = settled {
            tracing::debug!(error = %e, "the newest membership entry is not applied yet");
        }
        self.membership_view()
    }

    /// A member's address: from the static list when it is there (addresses in old
    /// membership entries may be stale), else from the membership (a voter added at run
    /// time).
    pub fn member(&self, id: NodeId) -> Option<VoterNode> {
        if let Some(n) = self.voters.get(&id) {
            return Some(n.clone());
        }
        let (_, m) = self.membership();
        m.get_node(&id).cloned()
    }

    /// Adds `id` at `node.addr` (with its directory id) as a voter: as a learner first,
    /// then, once it has caught up, into the voter set. Bounded by `timeout`: a learner
    /// that has not caught up by then is removed again and REQUEST_TIMED_OUT answered.
    /// Returns the log index of the committed membership.
    #[tracing::instrument(skip_all, fields(voter = id, addr = %node.addr))]
    pub async fn add_voter(
        &self,
        id: NodeId,
        node: VoterNode,
        timeout: Duration,
    ) -> Result<u64, QuorumError> {
        let _one_at_a_time = self.lock_voter_change().await?;
        self.ensure_leader()?;
        let directory_id = node.directory_id.ok_or_else(|| {
            KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("node {id}'s directory id is needed to add it as a voter"),
            )
        })?;
        check_voter_change(
            &self.settled_membership_view().await,
            VoterChange::Add { id, directory_id },
        )?;
        let started = std::time::Instant::now();
        // openraft's blocking add_learner counts a learner within its replication lag
        // threshold as caught up, even one that never answered: wait for its own match.
        let caught_up = tokio::time::timeout(timeout, async {
            let added = self.raft.add_learner(id, node.clone(), false).await?;
            self.wait_matched(id, added.log_id.index()).await;
            Ok::<_, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>(())
        })
        .await;
        match caught_up {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.forget_learner(id).await;
                return Err(self.write_error(e));
            }
            Err(_) => {
                self.forget_learner(id).await;
                return Err(KafkaError::new(
                    ErrorCode::RequestTimedOut,
                    format!(
                        "node {id} at {} did not catch up with the metadata log within \
                         {timeout:?} (is it running, reachable from the active controller, \
                         with --controller-listen at that address?); the voters are unchanged",
                        node.addr
                    ),
                )
                .into());
            }
        }
        tracing::info!(
            caught_up_ms = started.elapsed().as_millis() as u64,
            "the new voter caught up"
        );
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let changed = tokio::time::timeout(
            left,
            self.raft.change_membership(
                self.made_dynamic(ChangeMembers::AddVoterIds(BTreeSet::from([id]))),
                false,
            ),
        )
        .await;
        self.changed(id, changed)
    }

    /// Removes voter `id` (only the one with `directory_id`, when given). When it is this
    /// controller, it steps down once the change has committed.
    #[tracing::instrument(skip_all, fields(voter = id))]
    pub async fn remove_voter(
        &self,
        id: NodeId,
        directory_id: Option<DirectoryId>,
        timeout: Duration,
    ) -> Result<u64, QuorumError> {
        let _one_at_a_time = self.lock_voter_change().await?;
        self.ensure_leader()?;
        check_voter_change(
            &self.settled_membership_view().await,
            VoterChange::Remove { id, directory_id },
        )?;
        let changed = tokio::time::timeout(
            timeout,
            self.raft.change_membership(
                self.made_dynamic(ChangeMembers::RemoveVoters(BTreeSet::from([id]))),
                false,
            ),
        )
        .await;
        self.changed(id, changed)
    }

    /// `change` as one membership change with the static lists cleared
    /// ([`crate::voters::static_lists_cleared`]): the first voter change makes the quorum
    /// dynamic for good.
    fn made_dynamic(
        &self,
        change: ChangeMembers<NodeId, VoterNode>,
    ) -> ChangeMembers<NodeId, VoterNode> {
        let (_, membership) = self.membership();
        let nodes: BTreeMap<NodeId, VoterNode> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let cleared = static_lists_cleared(&nodes);
        if cleared.is_empty() {
            return change;
        }
        ChangeMembers::Batch(vec![ChangeMembers::SetNodes(cleared), change])
    }

    /// The checks of an add that need nothing from the new node (DUPLICATE_VOTER, a
    /// change in flight), so they are answered before the node is asked who it is. A
    /// directory-id write of this controller's own is waited out first: it is no change
    /// in flight of the operator's.
    pub async fn precheck_add_voter(&self, id: NodeId) -> Result<(), QuorumError> {
        if self.filling_in.load(std::sync::atomic::Ordering::SeqCst) {
            drop(self.lock_voter_change().await?);
        }
        self.ensure_leader()?;
        let placeholder = DirectoryId(uuid::Uuid::nil());
        check_voter_change(
            &self.settled_membership_view().await,
            VoterChange::Add {
                id,
                directory_id: placeholder,
            },
        )?;
        Ok(())
    }

    /// The voter-change lock for an operator's change: refused at once while another
    /// operator's change holds it (one at a time), awaited while this controller only
    /// records a static voter's directory id (a write of milliseconds, bounded by
    /// [`FILL_IN_TIMEOUT`]), which is no change of the operator's to wait for.
    async fn lock_voter_change(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, QuorumError> {
        let in_flight = || {
            QuorumError::from(KafkaError::new(
                ErrorCode::RequestTimedOut,
                "another voter change is in flight (one change at a time): retry once it has \
                 committed",
            ))
        };
        match self.voter_change.try_lock() {
            Ok(guard) => Ok(guard),
            Err(_) if self.filling_in.load(std::sync::atomic::Ordering::SeqCst) => {
                tokio::time::timeout(
                    FILL_IN_TIMEOUT + Duration::from_secs(1),
                    self.voter_change.lock(),
                )
                .await
                .map_err(|_| in_flight())
            }
            Err(_) => Err(in_flight()),
        }
    }

    fn ensure_leader(&self) -> Result<(), QuorumError> {
        if self.is_leader() {
            return Ok(());
        }
        Err(QuorumError::NotLeader {
            leader: self.configured(self.leader()),
        })
    }

    /// The outcome of a voter change's `change_membership`.
    fn changed(
        &self,
        id: NodeId,
        r: Result<MembershipWrite, tokio::time::error::Elapsed>,
    ) -> Result<u64, QuorumError> {
        match r {
            Ok(Ok(resp)) => {
                let index = resp.log_id.index();
                tracing::info!(voter = id, index, "voter change committed");
                Ok(index)
            }
            Ok(Err(e)) => Err(self.write_error(e)),
            Err(_) => Err(KafkaError::new(
                ErrorCode::RequestTimedOut,
                format!(
                    "the change of voter {id} did not commit in time; it may still commit \
                     (`kavka quorum describe` shows the voters)"
                ),
            )
            .into()),
        }
    }

    fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> QuorumError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                QuorumError::NotLeader {
                    leader: self.configured(f.leader_id),
                }
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                let code = match c {
                    openraft::errors::ChangeMembershipError::InProgress(_) => {
                        ErrorCode::RequestTimedOut
                    }
                    _ => ErrorCode::InvalidRequest,
                };
                KafkaError::new(code, c.to_string()).into()
            }
            other => QuorumError::Fatal(other.to_string()),
        }
    }

    /// Returns once this leader's replication to `id` has matched the log up to `index`
    /// (callers bound the wait).
    async fn wait_matched(&self, id: NodeId, index: u64) {
        let mut rx = self.raft.metrics();
        loop {
            let matched = rx
                .borrow_watched()
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned())
                .flatten()
                .map(|l| l.index());
            if matched.is_some_and(|m| m >= index) {
                return;
            }
            if rx.changed().await.is_err() {
                // The Raft core stopped: never caught up; the caller's bound answers.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Records the directory id of one voter that has none in the membership yet (a
    /// static voter) but has answered with its own, as Kafka's UpdateRaftVoter does; from
    /// then on an emptied data dir behind that voter is refused as for a voter added with
    /// `add-voter`. A static quorum stays static (the list goes along, see
    /// [`crate::voters::static_quorum`]). Only on the active controller, one voter per
    /// call, under the voter-change lock, on a committed, non-joint membership that keeps
    /// this controller a voter, and only if the membership is still the one decided on.
    /// Returns the voter recorded.
    pub async fn record_directory_id(&self) -> Option<NodeId> {
        let _one_at_a_time = self.voter_change.try_lock().ok()?;
        let _recording = Marked::new(&self.filling_in);
        if !self.is_leader() {
            return None;
        }
        let (log_id, voters, bootstrap) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            let stored = &m.membership_config;
            let membership = stored.membership();
            if in_flight(&m) {
                return None;
            }
            let entry = stored.log_id().as_ref().map(|l| l.index());
            let voters: BTreeMap<NodeId, VoterNode> = membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
                .collect();
            (*stored.log_id(), voters, entry.is_none_or(|i| i == 0))
        };
        if !voters.contains_key(&self.node_id) {
            return None;
        }
        let mut answered = self.answered.snapshot();
        if let Some(own) = self.directory_id {
            answered.insert(self.node_id, own);
        }
        let list = static_quorum(&voters, bootstrap);
        let (id, node) = directory_fill_in(&voters, list.as_ref(), &answered)?;
        let directory_id = node.directory_id;
        let written = tokio::time::timeout(
            FILL_IN_TIMEOUT,
            self.raft.change_membership_if(
                ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
                false,
                [Precondition::LastMembershipLogId {
                    last_membership_log_id: log_id,
                }],
            ),
        )
        .await;
        match written {
            Ok(Ok(_)) => {
                tracing::info!(voter = id, directory_id = ?directory_id, "recorded the directory id of a static voter");
                Some(id)
            }
            other => {
                tracing::debug!(voter = id, outcome = ?other.map(|r| r.map(|_| ())), "did not record a voter's directory id (tried again later)");
                None
            }
        }
    }

    /// Takes back a learner added for a voter change that did not go ahead (best effort:
    /// a learner does not vote, so one left behind changes no quorum).
    async fn forget_learner(&self, id: NodeId) {
        if !self.membership_view().learners.contains(&id) {
            return;
        }
        let removed = tokio::time::timeout(
            Duration::from_secs(5),
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false),
        )
        .await;
        if !matches!(removed, Ok(Ok(_))) {
            tracing::warn!(learner = id, outcome = ?removed.map(|r| r.map(|_| ())), "could not remove the learner of a failed voter change");
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn voters(&self) -> &BTreeMap<NodeId, VoterNode> {
        &self.voters
    }

    /// The server half of Raft traffic, to mount on this node's gRPC server.
    pub fn raft_server(&self) -> RaftServer {
        RaftServer::new(
            self.raft.clone(),
            Arc::clone(&self.peers),
            self.sm.subscribe(),
            self.node_id,
            self.directory_id,
            Arc::clone(&self.replaced),
        )
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.sm.image()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.sm.subscribe()
    }

    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// When the quorum's membership (from its log) names other voters than this node was
    /// configured with, the reason, for the operator: such a node must not keep running.
    /// Voters are compared by id: their addresses come from the configuration (a voter
    /// list may move them, e.g. onto the controller listener; see `GrpcNetworkFactory`).
    ///
    /// Only a static voter's list is checked (an observer's only finds the quorum), and
    /// only against a static membership (the one `initialize` wrote, at log index 0, or it with
    /// voters' directory ids recorded since: [`crate::voters::static_quorum`]) is held
    /// against the static list: once a voter change has committed a newer one, the log is
    /// the voter set and the static list only a way to find the quorum. Whatever the
    /// membership, one that records this node's id with another directory id than this
    /// data dir's for `REPLACED_AFTER` means this node is an emptied voter
    /// ([`crate::voters::own_identity_conflict`]).
    pub fn membership_mismatch(&self) -> Option<String> {
        if let Some(why) = self.replaced.get() {
            return Some(why.clone());
        }
        let m = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let membership = m.membership();
        let conflict = membership.get_node(&self.node_id).and_then(|node| {
            crate::voters::own_identity_conflict(self.node_id, self.directory_id, node.directory_id)
        });
        // Held as long as callers must hold theirs: a new incarnation catching up from
        // a stream that outlived its removal passes through the memberships that listed
        // its old directory id, until the add-voter that follows brings it the newer ones.
        if self.own_conflict_since.lasted(conflict.is_some()) {
            return conflict;
        }
        // An observer's list only says where the quorum is: it formed nothing, and the
        // memberships it passes through while catching up need not match it.
        if !self.voters.contains_key(&self.node_id) {
            return None;
        }
        let actual: BTreeMap<NodeId, VoterNode> = membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
            .collect();
        let bootstrap = m.log_id().as_ref().is_none_or(|l| l.index() == 0);
        static_quorum(&actual, bootstrap)?;
        if actual.is_empty() || actual.keys().eq(self.voters.keys()) {
            return None;
        }
        let show = |v: &BTreeMap<NodeId, VoterNode>| {
            v.iter()
                .map(|(id, n)| format!("{id}@{}", n.addr))
                .collect::<Vec<_>>()
                .join(",")
        };
        Some(format!(
            "this node's controller voters ({}) disagree with the quorum's ({}); fix --controller-voters",
            show(&self.voters),
            show(&actual)
        ))
    }

    /// The admin check on voter changes reaching the client port: with a quorum secret,
    /// only a caller presenting it (an operator with `--cluster-secret-file`, or another
    /// controller forwarding) may change the voters.
    pub fn check_admin_secret(&self, presented: Option<&str>) -> Result<(), String> {
        self.peers.check_secret(presented)
    }

    /// Raft calls refused so far (no or a wrong secret, a sender outside the voters).
    pub fn refused_raft_calls(&self) -> u64 {
        self.peers.refused()
    }

    /// Why the Raft core stopped, when it stopped on a failure (an I/O error of the
    /// metadata store such as a full disk, a panic); `None` while it runs or after a
    /// normal stop. Such a core never recovers: the node must stop (fail-stop).
    pub fn failure(&self) -> Option<String> {
        match &self.raft.metrics().borrow_watched().running_state {
            Err(openraft::errors::Fatal::StorageError(e)) => Some(e.to_string()),
            Err(openraft::errors::Fatal::Panicked) => Some("the Raft core panicked".into()),
            _ => None,
        }
    }

    /// The active controller as far as this voter knows, and the Raft term.
    pub fn leader_and_term(&self) -> (Option<NodeId>, u64) {
        let term = self.raft.metrics().borrow_watched().current_term;
        (self.leader(), term)
    }

    /// Resolves when the leader or the term may have changed; `false` once the Raft
    /// core has stopped.
    pub async fn leader_changed(&self, rx: &mut RaftMetricsWatch) -> bool {
        rx.changed().await.is_ok()
    }

    /// A receiver for [`Quorum::leader_changed`].
    pub fn metrics_watch(&self) -> RaftMetricsWatch {
        self.raft.metrics()
    }

    /// The active controller, as far as this voter knows. A leader removed from the
    /// voters reverts to a learner (openraft's `removed_leader_step_down`) but may still
    /// name itself: it is not the active controller then.
    pub fn leader(&self) -> Option<NodeId> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        match m.current_leader {
            Some(l) if l == self.node_id && m.state != openraft::ServerState::Leader => None,
            other => other,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// Waits until this voter, as the active controller, has applied everything committed
    /// before the call: decisions made after it see every earlier decision.
    pub async fn ensure_linearizable(&self) -> Result<(), QuorumError> {
        match self
            .raft
            .ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex)
            .await
        {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::errors::LinearizableReadError::ForwardToLeader(
                f,
            ))) => Err(QuorumError::NotLeader {
                leader: self.configured(f.leader_id),
            }),
            Err(RaftError::APIError(e)) => Err(QuorumError::NotLeader { leader: None })
                .inspect_err(|_| tracing::debug!(error = %e, "not leader")),
            Err(e) => Err(QuorumError::Fatal(e.to_string())),
        }
    }

    /// The check that calls to this controller's listener present the quorum's secret.
    pub fn secret_check(&self) -> crate::raft::network::SecretCheck {
        crate::raft::network::SecretCheck::new(Arc::clone(&self.peers), self.sm.subscribe())
    }

    /// How this node reaches other controllers' listeners (plaintext or mutual TLS).
    pub fn transport(&self) -> &kavka_tls::Transport {
        &self.transport
    }

    /// What presents the quorum's secret on this node's calls to other controllers.
    pub fn present_secret(&self) -> kavka_proto::auth::PresentSecret {
        ControllerSecret::presenter(self.secret.as_ref())
    }

    /// A voter with its configured address (its membership entry may hold an older one),
    /// or the membership's for a voter added at run time.
    fn configured(&self, id: Option<NodeId>) -> Option<(NodeId, VoterNode)> {
        let id = id?;
        self.member(id).map(|n| (id, n))
    }

    /// Committed metadata after `after` (exclusive) up to what is applied here.
    pub async fn read_after(&self, after: i64) -> Result<MetadataUpdate, QuorumError> {
        use openraft::RaftLogReader;
        let image = self.image();
        let applied = image.offset;
        if after >= applied {
            return Ok(MetadataUpdate::Batches(vec![]));
        }
        let from = (after + 1).max(0) as u64;
        let mut reader = self.log.clone();
        let entries = reader.try_get_log_entries(from..=applied as u64).await?;
        if entries.first().is_none_or(|e| e.log_id.index() != from) {
            // Purged after a snapshot: send the whole image.
            return Ok(MetadataUpdate::Snapshot(image));
        }
        let batches = entries
            .into_iter()
            .map(|e| {
                let records = match e.payload {
                    openraft::EntryPayload::Normal(req) => req.records,
                    _ => vec![],
                };
                (e.log_id.index(), records)
            })
            .collect();
        Ok(MetadataUpdate::Batches(batches))
    }

    /// Proposes a batch of records; returns its metadata offset once committed and
    /// applied here.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        match self.raft.client_write(MetadataRequest { records }).await {
            Ok(resp) => Ok(resp.data.offset),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: self.configured(f.leader_id),
                })
            }
            Err(e) => Err(QuorumError::Fatal(e.to_string())),
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// Keeps `tx` at the directory ids of the membership in force, for the network's
/// checks; ends when the Raft core stops.
async fn keep_recorded_directory_ids(
    mut metrics: RaftMetricsWatch,
    tx: watch::Sender<BTreeMap<NodeId, Option<DirectoryId>>>,
) {
    loop {
        let recorded: BTreeMap<NodeId, Option<DirectoryId>> = metrics
            .borrow_watched()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.directory_id))
            .collect();
        tx.send_if_modified(|now| {
            let changed = *now != recorded;
            *now = recorded;
            changed
        });
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
