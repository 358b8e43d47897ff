//! The broker role of a node: opens the data dir's partitions, starts the broker's
//! background tasks (controller session, metadata follower, replica fetchers, ISR
//! maintenance, high-watermark checkpoints, retention and log timers, the group
//! coordinator) and builds its gRPC services.
//!
//! Invariants: every task stops when `shutdown` flips; the client services refuse calls
//! until `ready` flips (the broker is unfenced, as Kafka enables request processing only
//! then). Binding listeners and serving are the caller's. Must not depend on the
//! controller or the Kafka listener crates: the binary composes them (DESIGN §3).

use crate::controllers::Controllers;
use crate::group_log::GroupLog;
use crate::producer_ids::ProducerIdManager;
use crate::service::{AdminService, BrokerService, Gate, GroupService};
use crate::{BrokerConfig, BrokerError, ControllerSession, ReplicaManager};
use kavka_group::{GroupConfig, GroupCoordinator};
use kavka_proto::v1::admin_service_server::AdminServiceServer;
use kavka_proto::v1::broker_service_server::BrokerServiceServer;
use kavka_proto::v1::group_service_server::GroupServiceServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

/// A started broker role.
pub struct BrokerNode {
    pub replicas: Arc<ReplicaManager>,
    pub controllers: Arc<Controllers>,
    /// The controller session: registration, heartbeats, fencing, controller hints.
    pub session: Arc<ControllerSession>,
    /// The broker API's admin operations, which both listeners translate onto.
    pub admin: Arc<crate::api::Admin>,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: Arc<ProducerIdManager>,
    /// The broker API, the one handle both listeners take (admin, data, groups,
    /// producers).
    pub api: crate::api::BrokerApi,
}

/// A client service that waits for the broker to be ready.
pub type Gated<S> = InterceptedService<S, Gate>;

/// The broker role's gRPC services (the client port and the external listener).
pub struct BrokerServices {
    pub admin: Gated<AdminServiceServer<AdminService>>,
    pub broker: Gated<BrokerServiceServer<BrokerService>>,
    pub group: Gated<GroupServiceServer<GroupService>>,
}

impl BrokerNode {
    /// Opens the partitions in `config.data_dir` and starts the broker's tasks, which talk
    /// to the controllers through `controllers`; the returned tasks end once `shutdown`
    /// flips. A reason the node must stop (a metadata batch it cannot decode) is reported
    /// once on `fatal`.
    pub async fn start(
        config: BrokerConfig,
        controllers: Arc<Controllers>,
        group: GroupConfig,
        shutdown: &watch::Receiver<bool>,
        fatal: watch::Sender<Option<String>>,
    ) -> Result<(Self, Vec<JoinHandle<()>>), BrokerError> {
        let node_id = config.node_id;
        let replicas = tokio::task::spawn_blocking(move || ReplicaManager::open(config))
            .await
            .map_err(|e| BrokerError::Fatal(format!("opening the data dir panicked: {e}")))??;
        let session = Arc::new(ControllerSession::new(Arc::clone(replicas.lease())));
        let admin = Arc::new(crate::api::Admin::new(
            Arc::clone(&replicas),
            Arc::clone(&session),
            Arc::clone(&controllers),
        ));
        let groups = GroupCoordinator::new(
            GroupLog::new(Arc::clone(&replicas), Arc::clone(&admin)),
            group,
        );
        let producer_ids = Arc::new(ProducerIdManager::new(
            Arc::clone(&controllers),
            node_id,
            session.incarnation_id,
        ));
        let tasks = vec![
            tokio::spawn(Arc::clone(&session).run(
                Arc::clone(&replicas),
                Arc::clone(&controllers),
                shutdown.clone(),
            )),
            tokio::spawn(crate::metadata::follow(
                Arc::clone(&replicas),
                Arc::clone(&session),
                Arc::clone(&controllers),
                fatal,
                shutdown.clone(),
            )),
            tokio::spawn(Arc::clone(&replicas).run_retention(shutdown.clone())),
            tokio::spawn(Arc::clone(&replicas).run_log_timers(shutdown.clone())),
            tokio::spawn(Arc::clone(&replicas).run_offline_retries(shutdown.clone())),
            tokio::spawn(crate::fetcher::run(
                Arc::clone(&replicas),
                controllers.presenter(),
                shutdown.clone(),
            )),
            tokio::spawn(Arc::clone(&replicas).run_isr_maintenance(
                Arc::clone(&controllers),
                session.incarnation_id,
                shutdown.clone(),
            )),
            tokio::spawn(Arc::clone(&replicas).run_hw_checkpoints(shutdown.clone())),
            tokio::spawn(Arc::clone(&groups).run(shutdown.clone())),
        ];
        let api = crate::api::BrokerApi::new(
            Arc::clone(&replicas),
            Arc::clone(&admin),
            Arc::clone(&groups),
            Arc::clone(&producer_ids),
        );
        Ok((
            Self {
                replicas,
                controllers,
                session,
                admin,
                groups,
                producer_ids,
                api,
            },
            tasks,
        ))
    }

    /// The cluster's id, once this broker's metadata names it.
    pub fn cluster_id(&self) -> Option<String> {
        self.replicas.image().cluster_id.clone()
    }

    /// The admin gRPC service, a translator onto the broker API.
    fn admin_service(&self) -> AdminService {
        AdminService::new(self.api.clone())
    }

    /// The client services, refusing calls until `ready` flips; `external_port` is the
    /// external listener's, which the admin service advertises to its clients.
    pub fn services(
        &self,
        ready: &watch::Receiver<bool>,
        external_port: Option<u16>,
    ) -> BrokerServices {
        let gate = || Gate::new(ready.clone(), self.api.clone(), self.controllers.secret());
        BrokerServices {
            admin: InterceptedService::new(
                self.admin_service()
                    .with_external_port(external_port)
                    .into_server(),
                gate(),
            ),
            broker: InterceptedService::new(
                BrokerService::new(self.api.clone()).into_server(),
                gate(),
            ),
            group: InterceptedService::new(
                GroupService::new(self.api.clone())
                    .with_external_port(external_port)
                    .into_server(),
                gate(),
            ),
        }
    }

    /// Moves this broker's leaderships away (Kafka's controlled shutdown), for at most
    /// `timeout`.
    pub async fn controlled_shutdown(&self, timeout: Duration) {
        self.session
            .controlled_shutdown(&self.replicas, &self.controllers, timeout)
            .await;
    }

    /// Resolves once the controller has unfenced this broker, or when `shutdown` flips
    /// (then false).
    pub async fn unfenced(&self, shutdown: &watch::Receiver<bool>) -> bool {
        let mut stop = shutdown.clone();
        while self.session.is_fenced() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.changed() => return false,
            }
        }
        true
    }
}
