//! The controller role of a node: runs the control managers on the active controller,
//! one decision at a time, and tracks broker sessions.
//!
//! Invariants: a decision is made on an image that includes every earlier committed
//! decision (`ensure_linearizable` under the `deciding` lock), and its reply is given only
//! once its records are committed. Sessions live only on the active controller; a new
//! one gives every unfenced broker a fresh session timeout to find it.

use crate::control::brokers::{self, Heartbeat, HeartbeatReply, RegisterBroker};
use crate::control::liveness::{Electable, ElectionRules, SessionView};
use crate::control::partitions::{self, AlterPartition};
use crate::control::topics::{self, CreateTopic, GrowTopic, TopicDefaults};
use crate::control::{
    Decision, acls, balance, broker_configs, decommission, quotas, reassign, users,
};
use crate::quorum::{Quorum, QuorumError};
use crate::types::{NodeId, VoterNode};
use kavka_metadata::{ConfigResource, MetadataImage, MetadataRecord, TopicId};
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::admin::{ElectionType, PartitionMove, PartitionRef};
use kavka_model::quota::{AlterationOutcome, QuotaAlteration};
use kavka_model::scram::{ScramCredential, ScramMechanism, UserOutcome};
use kavka_model::{BrokerId, DynamicBrokerConfig, ErrorCode, KafkaError, PartitionId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the balancer's executor looks for moves to start.
const BALANCE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// A broker whose last heartbeat is older than this is fenced.
    pub session_timeout: Duration,
    /// A broker whose session stream dropped and did not come back within this is fenced.
    pub stream_grace: Duration,
    /// A new active controller fences unfenced brokers that have not opened a session
    /// with it within this (their old streams went to the previous controller).
    pub takeover_grace: Duration,
    pub topic_defaults: TopicDefaults,
    /// Kafka's `leader.imbalance.check.interval`: how often leadership moves back to
    /// preferred replicas (`None`: never, as `auto.leader.rebalance.enable=false`).
    pub leader_imbalance_check_interval: Option<Duration>,
    /// Kafka's `broker.heartbeat.interval.ms`, as the brokers are configured: an election
    /// picks only brokers heard from within a few intervals (`control::liveness`).
    pub broker_heartbeat_interval: Duration,
    /// The balancer's executor keeps at most this many partitions moving at once
    /// (Redpanda's `partition_autobalancing_concurrent_moves`).
    pub balancer_concurrent_moves: usize,
    /// `--auto-balance`: keep replicas and preferred leaders even at all times (a broker
    /// that joins takes its share), and move the replicas of a broker that stays fenced
    /// longer than this away (Redpanda's continuous balancing and its
    /// `partition_autobalancing_node_availability_timeout_sec`). `None`: off.
    pub auto_balance_down_after: Option<Duration>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_millis(2500),
            stream_grace: Duration::from_millis(500),
            takeover_grace: Duration::from_millis(1000),
            topic_defaults: TopicDefaults {
                partitions: 1,
                replication_factor: 3,
            },
            leader_imbalance_check_interval: Some(Duration::from_secs(10)),
            broker_heartbeat_interval: Duration::from_millis(250),
            balancer_concurrent_moves: 10,
            auto_balance_down_after: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("NOT_CONTROLLER: this node is not the active controller{}", match .0 { Some((id, node)) => format!("; the active controller is {id} at {}", node.addr), None => String::new() })]
    NotController(Option<(NodeId, VoterNode)>),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

impl From<QuorumError> for ControllerError {
    fn from(e: QuorumError) -> Self {
        match e {
            QuorumError::NotLeader { leader } => ControllerError::NotController(leader),
            QuorumError::Refused(k) => ControllerError::Kafka(k),
            other => ControllerError::Kafka(KafkaError::new(
                ErrorCode::UnknownServerError,
                other.to_string(),
            )),
        }
    }
}

#[derive(Clone, Debug)]
struct Session {
    /// For expiry: the last heartbeat, or when this controller took over.
    last_heartbeat: Instant,
    /// A heartbeat from this broker reached this controller (since it became active):
    /// only then may an election pick the broker.
    heard: bool,
    /// Since when the broker is unfenced, as far as this controller knows (`None`: fenced).
    unfenced_since: Option<Instant>,
    /// The session stream is gone (dropped, or held with another controller): fenced
    /// unless a heartbeat arrives by then.
    reconnect_by: Option<Instant>,
    /// The metadata offset the broker reported applying.
    metadata_offset: i64,
    /// In controlled shutdown: not elected, not added to ISRs.
    shutting_down: bool,
    /// Its replicas it reported offline in its last heartbeat.
    offline: BTreeSet<(TopicId, PartitionId)>,
}

impl Session {
    fn new(metadata_offset: i64) -> Self {
        Self {
            last_heartbeat: Instant::now(),
            heard: false,
            unfenced_since: None,
            reconnect_by: None,
            metadata_offset,
            shutting_down: false,
            offline: BTreeSet::new(),
        }
    }
}

/// STALE_BROKER_EPOCH unless `incarnation_id` is `broker`'s registered process.
fn check_incarnation(
    image: &MetadataImage,
    broker: BrokerId,
    incarnation_id: uuid::Uuid,
) -> Result<(), KafkaError> {
    if image
        .broker(broker)
        .is_some_and(|b| b.incarnation_id == incarnation_id)
    {
        return Ok(());
    }
    Err(KafkaError::new(
        ErrorCode::StaleBrokerEpoch,
        format!("broker {broker} incarnation {incarnation_id} is not the registered one"),
    ))
}

/// A broker session as reported by `kavka cluster describe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    pub broker_id: BrokerId,
    pub last_heartbeat_age: Duration,
    pub metadata_offset: i64,
}

pub struct Controller {
    quorum: Arc<Quorum>,
    config: ControllerConfig,
    deciding: tokio::sync::Mutex<()>,
    sessions: Mutex<HashMap<BrokerId, Session>>,
    /// A balance was asked for (`kavka cluster balance --execute`) and is not done yet.
    /// Kept by the active controller only: after a failover the caller asks again.
    balancing: std::sync::atomic::AtomicBool,
    /// Since when each fenced broker has been seen fenced by this active controller.
    down_since: Mutex<HashMap<BrokerId, Instant>>,
}

impl Controller {
    pub fn new(quorum: Arc<Quorum>, config: ControllerConfig) -> Arc<Self> {
        Arc::new(Self {
            quorum,
            config,
            deciding: tokio::sync::Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            balancing: std::sync::atomic::AtomicBool::new(false),
            down_since: Mutex::new(HashMap::new()),
        })
    }

    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<BrokerId, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The brokers an election may pick now (`control::liveness`).
    fn electable(&self, image: &MetadataImage) -> Electable {
        let now = Instant::now();
        let all = self.sessions();
        let sessions: BTreeMap<BrokerId, SessionView> = all
            .iter()
            .map(|(&b, s)| {
                let view = SessionView {
                    heartbeat_age: s.heard.then(|| now.duration_since(s.last_heartbeat)),
                    unfenced_for: s.unfenced_since.map(|t| now.duration_since(t)),
                    shutting_down: s.shutting_down,
                };
                (b, view)
            })
            .collect();
        let offline: Vec<(BrokerId, TopicId, PartitionId)> = all
            .iter()
            .flat_map(|(&b, s)| s.offline.iter().map(move |&(t, p)| (b, t, p)))
            .collect();
        drop(all);
        let rules = ElectionRules::from_heartbeat_interval(self.config.broker_heartbeat_interval);
        Electable::decide(image, &sessions, rules).with_offline_replicas(offline)
    }

    /// Runs a control manager on an up-to-date image and commits its records.
    async fn decide<R>(
        &self,
        f: impl FnOnce(&MetadataImage) -> Decision<R>,
    ) -> Result<R, ControllerError> {
        let _one_at_a_time = self.deciding.lock().await;
        self.quorum.ensure_linearizable().await?;
        let image = self.quorum.image();
        let d = f(&image);
        if !d.records.is_empty() {
            let counted = crate::metrics::count(&image, &d.records);
            self.quorum.propose(d.records).await?;
            crate::metrics::count_committed(counted);
        }
        Ok(d.reply)
    }

    pub async fn create_topics(
        &self,
        requests: Vec<CreateTopic>,
    ) -> Result<Vec<Result<TopicId, KafkaError>>, ControllerError> {
        let mut defaults = self.config.topic_defaults;
        self.decide(|img| {
            // A cluster-wide dynamic num.partitions wins over the static one.
            let (dynamic, _) = DynamicBrokerConfig::layered(
                &img.configs(&ConfigResource::Cluster),
                &BTreeMap::new(),
            );
            if let Some(n) = dynamic.num_partitions {
                defaults.partitions = n;
            }
            topics::create_topics(img, &requests, defaults, || TopicId(uuid::Uuid::new_v4()))
        })
        .await
    }

    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<Result<TopicId, KafkaError>>, ControllerError> {
        self.decide(|img| topics::delete_topics(img, &names)).await
    }

    pub async fn create_partitions(
        &self,
        requests: Vec<GrowTopic>,
    ) -> Result<Vec<Result<TopicId, KafkaError>>, ControllerError> {
        self.decide(|img| topics::create_partitions(img, &requests))
            .await
    }

    /// Dynamic broker configs of `broker` (None: cluster-wide).
    pub async fn alter_broker_configs(
        &self,
        broker: Option<BrokerId>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<BTreeMap<String, String>, ControllerError> {
        Ok(self
            .decide(|img| broker_configs::alter_broker_configs(img, broker, &set, &delete))
            .await??)
    }

    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<BTreeMap<String, String>, ControllerError> {
        Ok(self
            .decide(|img| topics::alter_topic_configs(img, topic, &set, &delete))
            .await??)
    }

    /// CreateAcls: one result per ACL, in order.
    pub async fn create_acls(
        &self,
        acls: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), KafkaError>>, ControllerError> {
        self.decide(|img| acls::create_acls(img, &acls)).await
    }

    /// DeleteAcls: per filter, in order, the ACLs it deleted.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        self.decide(|img| acls::delete_acls(img, &filters)).await
    }

    /// AlterUserScramCredentials: one result per user, in the order first named.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<(String, ScramCredential)>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> Result<Vec<UserOutcome>, ControllerError> {
        self.decide(|img| users::alter_user_scram_credentials(img, &upsertions, &deletions))
            .await
    }

    /// AlterClientQuotas: one outcome per entry, in order; `validate_only` writes nothing.
    pub async fn alter_client_quotas(
        &self,
        entries: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<Vec<AlterationOutcome>, ControllerError> {
        self.decide(|img| quotas::alter_client_quotas(img, &entries, validate_only))
            .await
    }

    pub async fn register_broker(&self, req: RegisterBroker) -> Result<(), ControllerError> {
        let id = req.broker_id;
        // Another process holding a live session under this id: refuse (Kafka waits for
        // the old session to expire too, so a restarted broker gets in within one timeout).
        if let Some(existing) = self.quorum.image().broker(id)
            && existing.incarnation_id != req.incarnation_id
            && !existing.fenced
            && self.sessions().get(&id).is_some_and(|s| {
                // Live until its reconnect deadline passes (after a controller takeover
                // every broker has one, and is still the rightful owner of its id).
                s.reconnect_by.is_none_or(|t| Instant::now() <= t)
                    && s.last_heartbeat.elapsed() < self.config.session_timeout
            })
        {
            return Err(ControllerError::Kafka(KafkaError::new(
                ErrorCode::DuplicateBrokerRegistration,
                format!(
                    "broker {id} is still registered by another process (incarnation {}) whose session has not expired: after a restart this clears within the session timeout; if it does not, node id {id} is used twice",
                    existing.incarnation_id
                ),
            )));
        }
        self.decide(|img| brokers::register_broker(img, &req, &self.electable(img)))
            .await??;
        self.sessions().insert(id, Session::new(-1));
        tracing::info!(broker = %id, "broker registered");
        Ok(())
    }

    pub async fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, ControllerError> {
        if !self.quorum.is_leader() {
            return Err(ControllerError::NotController(self.leader_hint()));
        }
        // Most heartbeats change nothing: decide on the current image without the lock,
        // and take the full path only to unfence.
        let image = self.quorum.image();
        let quick = brokers::heartbeat(&image, &hb, &self.electable(&image));
        let was_fenced = image.broker(hb.broker_id).is_some_and(|b| b.fenced);
        let reply = if quick.records.is_empty() {
            quick.reply?
        } else {
            // Unfencing, or offline replicas to move off.
            self.decide(|img| brokers::heartbeat(img, &hb, &self.electable(img)))
                .await??
        };
        let unfencing = was_fenced && !reply.fenced;

        let now = Instant::now();
        let mut sessions = self.sessions();
        let s = sessions
            .entry(hb.broker_id)
            .or_insert_with(|| Session::new(hb.metadata_offset));
        s.last_heartbeat = now;
        s.heard = true;
        s.reconnect_by = None;
        s.metadata_offset = hb.metadata_offset;
        if s.offline != hb.offline {
            if hb.offline.is_empty() {
                tracing::info!(broker = %hb.broker_id, "broker reports all its replicas open again");
            } else {
                tracing::warn!(broker = %hb.broker_id, offline = ?hb.offline, "broker reports replicas it cannot open: they leave their ISRs and leaderships");
            }
        }
        s.offline = hb.offline;
        s.unfenced_since = match s.unfenced_since {
            _ if reply.fenced => None,
            Some(t) if !unfencing => Some(t),
            _ => Some(now),
        };
        Ok(reply)
    }

    fn shutting_down(&self) -> BTreeSet<BrokerId> {
        self.sessions()
            .iter()
            .filter(|(_, s)| s.shutting_down)
            .map(|(&b, _)| b)
            .collect()
    }

    /// A leader's ISR change; the reply is the ISR as committed.
    pub async fn alter_partition(
        &self,
        req: AlterPartition,
        incarnation_id: uuid::Uuid,
    ) -> Result<Vec<BrokerId>, ControllerError> {
        let stopping = self.shutting_down();
        Ok(self
            .decide(
                |img| match check_incarnation(img, req.broker, incarnation_id) {
                    Err(e) => Decision {
                        records: vec![],
                        reply: Err(e),
                    },
                    Ok(()) => {
                        let electable = self.electable(img);
                        partitions::alter_partition(img, &req, &stopping, &|b| {
                            electable.is_ready(b)
                        })
                    }
                },
            )
            .await??)
    }

    /// A block of producer ids for `broker`, as `(first, count)`, once committed.
    pub async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        incarnation_id: uuid::Uuid,
    ) -> Result<(i64, i64), ControllerError> {
        Ok(self
            .decide(|img| match check_incarnation(img, broker, incarnation_id) {
                Err(e) => Decision {
                    records: vec![],
                    reply: Err(e),
                },
                Ok(()) => crate::control::producer_ids::allocate_producer_ids(img, broker),
            })
            .await??)
    }

    /// Controlled shutdown: moves leadership off `broker`; replies with how many
    /// partitions it still leads (those no other live ISR member can take).
    pub async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        incarnation_id: uuid::Uuid,
    ) -> Result<usize, ControllerError> {
        if !self.quorum.is_leader() {
            return Err(ControllerError::NotController(self.leader_hint()));
        }
        check_incarnation(&self.image(), broker, incarnation_id)?;
        self.sessions()
            .entry(broker)
            .or_insert_with(|| Session::new(-1))
            .shutting_down = true;
        let stopping = self.shutting_down();
        let left = self
            .decide(|img| {
                partitions::controlled_shutdown(img, broker, &stopping, &self.electable(img))
            })
            .await?;
        tracing::info!(%broker, still_leading = left, "controlled shutdown");
        Ok(left)
    }

    /// A preferred or unclean leader election for `only` (or every partition that can
    /// move).
    pub async fn elect_leaders(
        &self,
        only: Option<Vec<(String, PartitionId)>>,
        kind: ElectionType,
    ) -> Result<Vec<partitions::ElectionResult>, ControllerError> {
        let stopping = self.shutting_down();
        let elect = match kind {
            ElectionType::Preferred => partitions::elect_preferred,
            ElectionType::Unclean => partitions::elect_unclean,
        };
        self.decide(|img| elect(img, only.as_deref(), &stopping, &self.electable(img)))
            .await
    }

    /// Starts or cancels partition moves (AlterPartitionReassignments); one result per
    /// move, in order, once the changes commit.
    pub async fn alter_reassignments(
        &self,
        moves: Vec<PartitionMove>,
    ) -> Result<Vec<partitions::ElectionResult>, ControllerError> {
        let stopping = self.shutting_down();
        self.decide(|img| {
            let electable = self.electable(img);
            let ready = |b: BrokerId| electable.is_ready(b) && !stopping.contains(&b);
            reassign::alter_reassignments(img, &moves, &ready)
        })
        .await
    }

    /// Decommissions a broker (its replicas move off it, a bounded number at a time) or
    /// takes it back into service.
    pub async fn decommission(
        &self,
        broker: BrokerId,
        on: bool,
    ) -> Result<Result<(), KafkaError>, ControllerError> {
        self.decide(|img| decommission::decommission(img, broker, on))
            .await
    }

    /// The balancer's plan for the cluster as it is; with `execute`, the executor carries
    /// it out from now on, a bounded number of moves at a time, until nothing is left.
    /// Executing a plan with nothing to move and nothing moving moves leadership to the
    /// preferred replicas before it answers, so a caller told the plan is empty finds the
    /// leaders evened too (the executor's own election at the end may not have run yet).
    pub async fn balance(&self, execute: bool) -> Result<balance::Plan, ControllerError> {
        self.quorum.ensure_linearizable().await?;
        let img = self.image();
        let goals = self.balance_goals(&img, true, usize::MAX);
        let layout = balance::layout(&img);
        let mut plan = balance::plan(&layout, &goals);
        if !execute {
            return Ok(plan);
        }
        if plan.moves.is_empty() && !layout.iter().any(|p| p.moving) {
            self.balancing
                .store(false, std::sync::atomic::Ordering::SeqCst);
            plan.balanced = self.balanced().await;
        } else {
            self.balancing
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(plan)
    }

    /// The end of a requested balance: the plan evened preferred leaders, so leadership
    /// moves to them now rather than at the next periodic check. Whether it did.
    async fn balanced(&self) -> bool {
        match self.elect_leaders(None, ElectionType::Preferred).await {
            Ok(moved) => {
                tracing::info!(leaders_moved = moved.len(), "the cluster is balanced");
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "the cluster is balanced; leaders move at the next check");
                false
            }
        }
    }

    /// What the balancer aims for now: drain decommissioned brokers that still hold
    /// replicas (and, with auto-balance, brokers down too long); even out if `even`.
    fn balance_goals(&self, img: &MetadataImage, even: bool, max_moves: usize) -> balance::Goals {
        let mut drain: BTreeSet<BrokerId> = img.decommissioned_brokers().collect();
        if let Some(after) = self.config.auto_balance_down_after {
            let now = Instant::now();
            let down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
            drain.extend(
                down.iter()
                    .filter(|(_, since)| now.duration_since(**since) >= after)
                    .map(|(b, _)| *b),
            );
        }
        let mut hosts = decommission::hosts(img);
        hosts.retain(|b, _| !drain.contains(b));
        balance::Goals {
            hosts,
            drain,
            even,
            max_moves,
        }
    }

    /// One round of the balancer's executor: cancels moves onto brokers being drained,
    /// then starts planned moves while fewer than `balancer_concurrent_moves` partitions
    /// are moving. A failed round is only logged: the next one plans again from the
    /// image.
    async fn balance_step(&self) {
        use std::sync::atomic::Ordering;
        let img = self.image();
        {
            let now = Instant::now();
            let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
            down.retain(|b, _| img.broker(*b).is_some_and(|r| r.fenced));
            for b in img.brokers().filter(|b| b.fenced) {
                down.entry(b.broker_id).or_insert(now);
            }
        }
        let even =
            self.balancing.load(Ordering::SeqCst) || self.config.auto_balance_down_after.is_some();
        let mut goals = self.balance_goals(&img, even, usize::MAX);
        if !even && goals.drain.is_empty() {
            return;
        }
        let layout = balance::layout(&img);
        let holds = |b: &BrokerId| layout.iter().any(|p| p.replicas.contains(b));
        if !even && !goals.drain.iter().any(holds) {
            return;
        }
        // A move onto a broker being drained cannot be the plan any more (and onto a dead
        // one never completes): cancel it, and the next round plans the partition again.
        let doomed: Vec<PartitionMove> = layout
            .iter()
            .filter(|p| p.moving && p.replicas.iter().any(|b| goals.drain.contains(b)))
            .map(|p| PartitionMove {
                partition: PartitionRef {
                    topic: p.topic.clone(),
                    partition: p.partition,
                },
                target: None,
            })
            .collect();
        if !doomed.is_empty() {
            match self.alter_reassignments(doomed).await {
                Ok(results) => {
                    for (t, p, r) in &results {
                        match r {
                            Ok(()) => {
                                tracing::info!(topic = %t, partition = p.0, "balancer cancelled a move onto a drained broker")
                            }
                            Err(e) => {
                                tracing::warn!(topic = %t, partition = p.0, error = %e, "balancer cannot cancel a move onto a drained broker")
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "balancer cancels deferred"),
            }
            return;
        }
        let moving = layout.iter().filter(|p| p.moving).count();
        let room = self.config.balancer_concurrent_moves.saturating_sub(moving);
        // Only what can start now: a full plan of a large cluster is costly.
        goals.max_moves = room;
        let plan = balance::plan(&layout, &goals);
        if plan.moves.is_empty() && moving == 0 && self.balancing.swap(false, Ordering::SeqCst) {
            self.balanced().await;
        }
        if room == 0 || plan.moves.is_empty() {
            return;
        }
        let moves: Vec<PartitionMove> = plan
            .moves
            .into_iter()
            .take(room)
            .map(|m| PartitionMove {
                partition: PartitionRef {
                    topic: m.topic,
                    partition: m.partition,
                },
                target: Some(m.to),
            })
            .collect();
        match self.alter_reassignments(moves).await {
            Ok(results) => {
                let started = results.iter().filter(|(_, _, r)| r.is_ok()).count();
                for (t, p, r) in &results {
                    if let Err(e) = r {
                        tracing::debug!(topic = %t, partition = p.0, error = %e, "balancer move not started");
                    }
                }
                tracing::info!(started, moving, "balancer started partition moves");
            }
            Err(e) => tracing::debug!(error = %e, "balancer moves deferred"),
        }
    }

    /// The broker's session stream dropped: fence it unless it comes back within the grace.
    pub fn session_lost(&self, broker: BrokerId) {
        if let Some(s) = self.sessions().get_mut(&broker) {
            s.reconnect_by = Some(Instant::now() + self.config.stream_grace);
        }
    }

    /// Broker sessions (meaningful on the active controller only).
    pub fn session_status(&self) -> Vec<SessionStatus> {
        let now = Instant::now();
        let mut out: Vec<SessionStatus> = self
            .sessions()
            .iter()
            .map(|(&broker_id, s)| SessionStatus {
                broker_id,
                last_heartbeat_age: now.duration_since(s.last_heartbeat),
                metadata_offset: s.metadata_offset,
            })
            .collect();
        out.sort_by_key(|s| s.broker_id);
        out
    }

    /// The active controller and its address (from the static voters, or the membership
    /// for a voter added at run time), for brokers and forwarded calls.
    pub fn leader_hint(&self) -> Option<(NodeId, VoterNode)> {
        let leader = self.quorum.leader()?;
        self.quorum.member(leader).map(|n| (leader, n))
    }

    /// The Raft term this voter is in.
    pub fn term(&self) -> u64 {
        self.quorum.leader_and_term().1
    }

    /// On the active controller: writes the cluster id once, and fences brokers whose
    /// sessions expired. Runs until `shutdown` fires.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_leader = false;
        // The last active controller this voter knew of, other than itself.
        let mut previous_leader: Option<NodeId> = None;
        let mut last_rebalance = Instant::now();
        let mut last_balance = Instant::now();
        let mut balanced_at = -1;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let leader = self.quorum.is_leader();
            if leader && !was_leader {
                // New active controller: every unfenced broker must open a session here
                // within the takeover grace (a dead one is fenced then, not after a
                // whole session timeout).
                let now = Instant::now();
                let img = self.image();
                let mut sessions = self.sessions();
                sessions.clear();
                for b in img.unfenced_brokers() {
                    let mut s = Session::new(-1);
                    s.last_heartbeat = now;
                    // Unfenced before this controller took over: settled, but not
                    // electable until its first heartbeat here.
                    s.unfenced_since =
                        Some(now.checked_sub(Duration::from_secs(3600)).unwrap_or(now));
                    // The node whose controller stopped answering (this voter won an
                    // election because it did) most likely died with its broker: that
                    // broker is fenced at once. Alive after all, it registers again and
                    // is unfenced once caught up, as after any restart.
                    let grace = if previous_leader == Some(b.broker_id.0 as NodeId) {
                        Duration::ZERO
                    } else {
                        self.config.takeover_grace
                    };
                    s.reconnect_by = Some(now + grace);
                    sessions.insert(b.broker_id, s);
                }
                // Not in the middle of a failover: leadership moves back later.
                last_rebalance = now;
            }
            was_leader = leader;
            if !leader {
                if let Some(l) = self.quorum.leader().filter(|l| *l != self.quorum.node_id()) {
                    previous_leader = Some(l);
                }
                continue;
            }
            if self.image().cluster_id.is_none() {
                let id = uuid::Uuid::new_v4().to_string();
                let r = self
                    .decide(|img| Decision {
                        records: if img.cluster_id.is_none() {
                            vec![MetadataRecord::Cluster { cluster_id: id }]
                        } else {
                            vec![]
                        },
                        reply: (),
                    })
                    .await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "cluster id not written yet");
                }
            }
            let expired = self.expired_sessions();
            if !expired.is_empty() {
                match self
                    .decide(|img| brokers::fence_brokers(img, &expired, &self.electable(img)))
                    .await
                {
                    Ok(fenced) if !fenced.is_empty() => {
                        let mut sessions = self.sessions();
                        for b in &fenced {
                            if let Some(s) = sessions.get_mut(b) {
                                s.unfenced_since = None;
                            }
                        }
                        drop(sessions);
                        tracing::warn!(brokers = ?fenced, "fenced brokers whose sessions expired")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "fencing deferred"),
                }
            }
            if self
                .image()
                .topics()
                .any(|t| t.partitions.values().any(|p| !p.has_leader()))
            {
                let r = self
                    .decide(|img| Decision {
                        records: partitions::elect_offline(img, &self.electable(img)),
                        reply: (),
                    })
                    .await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "offline partition election deferred");
                }
            }
            // Each time the metadata changes (a move completed: room for the next), and
            // at least every BALANCE_EVERY (a broker down long enough to drain).
            let offset = self.image().offset;
            if offset != balanced_at || last_balance.elapsed() >= BALANCE_EVERY {
                last_balance = Instant::now();
                balanced_at = offset;
                self.balance_step().await;
            }
            if let Some(every) = self.config.leader_imbalance_check_interval
                && last_rebalance.elapsed() >= every
            {
                last_rebalance = Instant::now();
                match self.elect_leaders(None, ElectionType::Preferred).await {
                    Ok(moved) if !moved.is_empty() => {
                        tracing::info!(
                            partitions = moved.len(),
                            "moved leadership back to preferred replicas"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "preferred leader election deferred"),
                }
            }
        }
    }

    fn expired_sessions(&self) -> Vec<BrokerId> {
        let now = Instant::now();
        let img = self.image();
        let sessions = self.sessions();
        img.unfenced_brokers()
            .filter(|b| match sessions.get(&b.broker_id) {
                None => true,
                Some(s) => {
                    now.duration_since(s.last_heartbeat) > self.config.session_timeout
                        || s.reconnect_by.is_some_and(|t| now > t)
                }
            })
            .map(|b| b.broker_id)
            .collect()
    }
}
