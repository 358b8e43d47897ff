//! The quorum: owns this controller's `openraft::Raft`, forms the cluster from the static
//! voter list, proposes record batches and resolves them once committed.
//!
//! Only the active controller (the Raft leader) proposes; elsewhere `propose` answers
//! `NotLeader` with the leader's id and address so callers can forward (bounded retries
//! are the caller's). Cluster formation is idempotent: every voter calls `initialize`
//! with the same voter list, and a voter that already has state refuses it harmlessly.

use crate::raft::log_store::SledLogStore;
use crate::raft::network::{GrpcNetworkFactory, MetadataRaft, RaftServer};
use crate::raft::peers::{ControllerSecret, PeerPolicy};
use crate::raft::state_machine::MetadataStateMachine;
use crate::types::{MetadataRequest, NodeId, TypeConfig, VoterNode};
use kavka_metadata::{MetadataImage, MetadataRecord};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, RaftMetrics, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// A receiver of this voter's Raft metrics (leader, term, log progress).
pub type RaftMetricsWatch =
    openraft::type_config::alias::WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>;

#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// Where the sled store lives.
    pub dir: PathBuf,
    /// Every voter, this one included: `node.id` → Raft address.
    pub voters: BTreeMap<NodeId, VoterNode>,
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
    #[error("controller {node_id} is not a voter in the controller quorum {voters:?}")]
    NotAVoter {
        node_id: NodeId,
        voters: Vec<NodeId>,
    },
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

pub struct Quorum {
    node_id: NodeId,
    raft: MetadataRaft,
    sm: MetadataStateMachine,
    /// A reader of the committed log, for brokers following the metadata.
    log: SledLogStore,
    voters: BTreeMap<NodeId, VoterNode>,
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
        if !cfg.voters.contains_key(&cfg.node_id) {
            return Err(QuorumError::NotAVoter {
                node_id: cfg.node_id,
                voters: cfg.voters.keys().copied().collect(),
            });
        }
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
        let raft = MetadataRaft::new(
            cfg.node_id,
            Arc::new(config),
            GrpcNetworkFactory {
                secret: cfg.secret.clone(),
                transport: cfg.transport.clone(),
                voters: cfg.voters.clone(),
                image: sm.subscribe(),
                reachability: Arc::default(),
            },
            log,
            sm.clone(),
        )
        .await
        .map_err(|e| QuorumError::Fatal(e.to_string()))?;
        match raft.initialize(cfg.voters.clone()).await {
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
        })
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
    pub fn membership_mismatch(&self) -> Option<String> {
        let m = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let membership = m.membership();
        let actual: BTreeMap<NodeId, VoterNode> = membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
            .collect();
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
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (m.current_leader, m.current_term)
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

    /// The active controller, as far as this voter knows.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
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

    /// A voter with its configured address (its membership entry may hold an older one).
    fn configured(&self, id: Option<NodeId>) -> Option<(NodeId, VoterNode)> {
        let id = id?;
        self.voters.get(&id).map(|n| (id, n.clone()))
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
