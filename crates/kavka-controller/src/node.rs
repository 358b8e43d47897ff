//! The controller role of a node: starts its voter in the metadata quorum and the active
//! controller's loop, watches the quorum for failures that must stop the node, and builds
//! the role's gRPC services.
//!
//! Invariants: every task stops when `shutdown` flips; a voter list that disagrees with
//! the quorum's, or a Raft core stopped by a metadata store failure (it never recovers),
//! is reported once on `fatal` instead of leaving a live-looking dead controller (a
//! supervisor restarts the node; the other voters elect another controller). Binding
//! listeners and serving are the caller's. Must not depend on the broker.

use crate::controller::{Controller, ControllerConfig};
use crate::raft::network::{RaftService, SecretCheck};
use crate::raft::peers::ControllerSecret;
use crate::service::ControllerService;
use crate::{NodeId, Quorum, QuorumConfig, QuorumError, VoterNode};
use kavka_proto::v1::controller_service_server::ControllerServiceServer;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

/// The Raft heartbeat between voters.
const RAFT_HEARTBEAT_INTERVAL_MS: u64 = 100;

/// How often the quorum is checked for a failure that stops the node.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// What the controller role needs to start.
#[derive(Debug)]
pub struct ControllerNodeConfig {
    pub node_id: NodeId,
    /// The Raft store (Kafka: `__cluster_metadata-0` in the data dir).
    pub dir: PathBuf,
    pub voters: BTreeMap<NodeId, VoterNode>,
    /// This node's data dir identity (meta.properties' `directory.id`).
    pub directory_id: Option<crate::types::DirectoryId>,
    /// The quorum's shared secret, if one is configured.
    pub secret: Option<ControllerSecret>,
    /// How this voter reaches the others (plaintext or mutual TLS).
    pub transport: kavka_tls::Transport,
    pub controller: ControllerConfig,
}

/// A started controller role.
pub struct ControllerNode {
    pub quorum: Arc<Quorum>,
    pub controller: Arc<Controller>,
}

/// The controller role's gRPC services.
pub struct ControllerServices {
    /// Raft between voters (the controller listener only).
    pub raft: RaftService,
    /// Broker sessions and admin writes from the other nodes, behind the quorum's secret
    /// check (the controller listener only).
    pub for_peers: InterceptedService<ControllerServiceServer<ControllerService>, SecretCheck>,
    /// What the client port may serve (see `client_port`).
    pub for_clients: ControllerServiceServer<ControllerService>,
}

impl ControllerNode {
    /// Starts the voter and the controller; the returned tasks end once `shutdown` flips.
    pub async fn start(
        cfg: ControllerNodeConfig,
        shutdown: &watch::Receiver<bool>,
        fatal: watch::Sender<Option<String>>,
    ) -> Result<(Self, Vec<JoinHandle<()>>), QuorumError> {
        let mut quorum_cfg = QuorumConfig::new(cfg.node_id, cfg.dir, cfg.voters);
        quorum_cfg.heartbeat_interval_ms = RAFT_HEARTBEAT_INTERVAL_MS;
        quorum_cfg.secret = cfg.secret;
        quorum_cfg.directory_id = cfg.directory_id;
        quorum_cfg.transport = cfg.transport;
        let quorum = Arc::new(Quorum::start(quorum_cfg).await?);
        let controller = Controller::new(Arc::clone(&quorum), cfg.controller);
        let tasks = vec![
            tokio::spawn(Arc::clone(&controller).run(shutdown.clone())),
            tokio::spawn(watch_quorum(Arc::clone(&quorum), fatal, shutdown.clone())),
            tokio::spawn(record_directory_ids(Arc::clone(&quorum), shutdown.clone())),
        ];
        Ok((Self { quorum, controller }, tasks))
    }

    /// The cluster's id, once the metadata names it.
    pub fn cluster_id(&self) -> Option<String> {
        self.controller.image().cluster_id.clone()
    }

    pub fn services(&self) -> ControllerServices {
        ControllerServices {
            raft: self.quorum.raft_server().into_service(),
            for_peers: InterceptedService::new(
                ControllerService::new(Arc::clone(&self.controller)).into_server(),
                self.quorum.secret_check(),
            ),
            for_clients: ControllerService::new(Arc::clone(&self.controller)).into_server(),
        }
    }
}

/// On the active controller, records the static voters' directory ids as they answer
/// (`Quorum::record_directory_id`), one per tick.
async fn record_directory_ids(quorum: Arc<Quorum>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEALTH_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if quorum.is_leader() {
            quorum.record_directory_id().await;
        }
    }
}

/// Reports on `fatal` (once) a voter list that disagrees with the quorum's bootstrap
/// membership, a membership that names this node's id with another directory id (an
/// emptied voter, with how to replace it), or a Raft core stopped by a metadata store
/// failure.
async fn watch_quorum(
    quorum: Arc<Quorum>,
    fatal: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HEALTH_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(reason) = quorum.membership_mismatch() {
            let _ = fatal.send(Some(reason));
            return;
        }
        if let Some(cause) = quorum.failure() {
            let _ = fatal.send(Some(format!(
                "fatal: the controller's metadata store failed ({cause}); stopping this node so a supervisor restarts it and the quorum elects another controller"
            )));
            return;
        }
    }
}
