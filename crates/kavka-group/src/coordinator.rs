//! The coordinator itself: which groups this broker serves (the offsets partitions it
//! leads), FindCoordinator, and the membership calls, each run on the group's state
//! machine under one lock with its effects (writes, answers) carried out after.

use super::classic::{Effects, Group, Outcome};
use super::consumer;
use super::{
    CoordinatorLog, GroupConfig, JoinRequest, Joined, MetadataView, OFFSETS_TOPIC, SyncRequest,
    SyncResult, err, now_ms, partition_for, validate_group_id,
};
use kavka_model::admin::NewTopic;
use kavka_model::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, PartitionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One LeaveGroup member's answer: (member id, instance id, result).
pub type LeaveOutcome = (String, Option<String>, Result<(), KafkaError>);

pub(super) enum Shard {
    Loading(LeaderEpoch),
    Active {
        epoch: LeaderEpoch,
        groups: HashMap<String, Group>,
    },
}

pub struct GroupCoordinator {
    /// The broker, as far as the coordinator sees it: the offsets log and metadata.
    pub(super) log: Arc<dyn CoordinatorLog>,
    pub(super) config: GroupConfig,
    /// The groups of each offsets partition this broker leads.
    pub(super) shards: Mutex<HashMap<PartitionId, Shard>>,
    /// Serialises writes per offsets partition.
    writers: Mutex<HashMap<PartitionId, Arc<tokio::sync::Mutex<()>>>>,
    /// One creation of `__consumer_offsets` at a time.
    creating: tokio::sync::Mutex<()>,
}

impl GroupCoordinator {
    pub fn new(log: Arc<dyn CoordinatorLog>, config: GroupConfig) -> Arc<Self> {
        Arc::new(Self {
            log,
            config,
            shards: Mutex::new(HashMap::new()),
            writers: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn node_id(&self) -> BrokerId {
        self.log.node_id()
    }

    pub(super) fn shards(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, Shard>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn writer(&self, partition: PartitionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut w = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(w.entry(partition).or_default())
    }

    /// The offsets partition of `group_id`, when the topic exists.
    pub(super) fn offsets_partition(&self, group_id: &str) -> Option<PartitionId> {
        let n = self.log.metadata().partition_count(OFFSETS_TOPIC)?;
        Some(partition_for(group_id, n))
    }

    pub(super) fn not_coordinator(&self, group_id: &str) -> KafkaError {
        err(
            ErrorCode::NotCoordinator,
            format!(
                "broker {} is not the coordinator of group '{group_id}'",
                self.log.node_id()
            ),
        )
    }

    /// Runs `f` on the group (created when `create`), where this broker coordinates it.
    /// `Ok(None)`: the group does not exist and was not created.
    pub(super) fn with_group<R>(
        &self,
        group_id: &str,
        create: bool,
        f: impl FnOnce(&mut Group) -> R,
    ) -> Result<Option<(PartitionId, R)>, KafkaError> {
        validate_group_id(group_id)?;
        let p = self
            .offsets_partition(group_id)
            .ok_or_else(|| self.not_coordinator(group_id))?;
        let mut shards = self.shards();
        match shards.get_mut(&p) {
            None => Err(self.not_coordinator(group_id)),
            Some(Shard::Loading(_)) => Err(err(
                ErrorCode::CoordinatorLoadInProgress,
                format!("the coordinator of group '{group_id}' is loading its state"),
            )),
            Some(Shard::Active { groups, .. }) => {
                if !create && !groups.contains_key(group_id) {
                    return Ok(None);
                }
                let g = groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id.to_string(), &self.config, now_ms()));
                Ok(Some((p, f(g))))
            }
        }
    }

    // ---- FindCoordinator ----------------------------------------------------------

    /// The broker coordinating `group_id`, creating `__consumer_offsets` on first use.
    #[tracing::instrument(skip(self))]
    pub async fn find_coordinator(&self, group_id: &str) -> Result<BrokerId, KafkaError> {
        validate_group_id(group_id)?;
        let p = match self.offsets_partition(group_id) {
            Some(p) => p,
            None => {
                self.create_offsets_topic().await?;
                self.offsets_partition(group_id).ok_or_else(|| {
                    err(
                        ErrorCode::CoordinatorNotAvailable,
                        format!("{OFFSETS_TOPIC} is being created"),
                    )
                })?
            }
        };
        let leader = self
            .log
            .metadata()
            .leader(OFFSETS_TOPIC, p)
            .and_then(|(leader, _)| leader);
        leader.ok_or_else(|| {
            err(
                ErrorCode::CoordinatorNotAvailable,
                format!("{OFFSETS_TOPIC}-{p}, which coordinates group '{group_id}', has no leader"),
            )
        })
    }

    async fn create_offsets_topic(&self) -> Result<(), KafkaError> {
        let _one = self.creating.lock().await;
        if self.offsets_partition("").is_some() {
            return Ok(());
        }
        let brokers = self.log.metadata().broker_count() as i32;
        let rf = self
            .config
            .offsets_topic_replication_factor
            .min(brokers)
            .max(1);
        let topic = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: Some(self.config.offsets_topic_num_partitions),
            replication_factor: Some(rf),
            configs: [
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
            ]
            .into_iter()
            .collect(),
            assignments: Vec::new(),
        };
        match self.log.create_topic(topic).await {
            Err(e) if e.code != ErrorCode::TopicAlreadyExists => {
                return Err(err(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("cannot create {OFFSETS_TOPIC}: {}", e.message),
                ));
            }
            Err(_) => {}
            Ok(()) => tracing::info!(
                partitions = self.config.offsets_topic_num_partitions,
                replication_factor = rf,
                "created {OFFSETS_TOPIC}"
            ),
        }
        let ok = self
            .wait_for_metadata(Duration::from_secs(15), |m| {
                m.partition_count(OFFSETS_TOPIC).is_some_and(|n| {
                    (0..n).all(|p| {
                        m.leader(OFFSETS_TOPIC, PartitionId(p))
                            .is_some_and(|(leader, _)| leader.is_some())
                    })
                })
            })
            .await;
        if !ok {
            return Err(err(
                ErrorCode::CoordinatorNotAvailable,
                format!("{OFFSETS_TOPIC} was created but has not reached this broker yet"),
            ));
        }
        Ok(())
    }

    /// Waits (at most `timeout`) until the applied image satisfies `cond`.
    async fn wait_for_metadata(
        &self,
        timeout: Duration,
        cond: impl Fn(&dyn MetadataView) -> bool,
    ) -> bool {
        let mut applied = self.log.watch_applied();
        let wait = async {
            while !cond(self.log.metadata().as_ref()) {
                if applied.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && cond(self.log.metadata().as_ref())
    }

    // ---- membership ---------------------------------------------------------------

    #[tracing::instrument(skip_all, fields(group = %req.group_id, member = %req.member_id))]
    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> Result<Joined, KafkaError> {
        let group_id = req.group_id.clone();
        // Kafka's form, `<client.id>-<uuid>` (a static member: `<group.instance.id>-<uuid>`):
        // client-side assignors order members by id.
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let (p, (outcome, effects)) = self
            .with_group(&group_id, true, |g| {
                g.join(
                    req,
                    &self.config,
                    || format!("{prefix}-{}", uuid::Uuid::new_v4()),
                    Instant::now(),
                    now_ms(),
                )
            })?
            .ok_or_else(|| self.not_coordinator(&group_id))?;
        self.carry_out(&group_id, p, effects);
        match outcome {
            Outcome::Ready(r) => r.map(Joined::Done),
            Outcome::MemberIdRequired(id) => Ok(Joined::MemberIdRequired(id)),
            Outcome::Wait(rx) => match rx.await {
                Ok(r) => r.map(Joined::Done),
                Err(_) => Err(self.not_coordinator(&group_id)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(group = %req.group_id, member = %req.member_id))]
    pub async fn sync(self: &Arc<Self>, req: SyncRequest) -> Result<SyncResult, KafkaError> {
        let group_id = req.group_id.clone();
        let member = req.member_id.clone();
        let (p, (outcome, effects)) = self
            .with_group(&group_id, false, |g| g.sync(req, Instant::now()))?
            .ok_or_else(|| {
                err(
                    ErrorCode::UnknownMemberId,
                    format!("group '{group_id}' has no member '{member}'"),
                )
            })?;
        self.carry_out(&group_id, p, effects);
        match outcome {
            Outcome::Ready(r) => r,
            Outcome::MemberIdRequired(_) => Err(err(ErrorCode::UnknownServerError, "unexpected")),
            Outcome::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| Err(self.not_coordinator(&group_id))),
        }
    }

    #[tracing::instrument(skip(self))]
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        self.with_group(group_id, false, |g| {
            g.heartbeat(member_id, instance, generation_id, Instant::now())
        })?
        .map(|(_, r)| r)
        .unwrap_or_else(|| {
            Err(err(
                ErrorCode::UnknownMemberId,
                format!("group '{group_id}' has no member '{member_id}'"),
            ))
        })
    }

    /// LeaveGroup: one result per (member id, instance id), naming the member id.
    #[tracing::instrument(skip(self, members), fields(members = members.len()))]
    pub fn leave(
        self: &Arc<Self>,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Result<Vec<LeaveOutcome>, KafkaError> {
        let now = Instant::now();
        let r = self.with_group(group_id, false, |g| {
            let mut effects = Effects::default();
            let mut out = Vec::new();
            for (member, instance) in members.clone() {
                let (r, e) = g.leave(&member, instance.as_deref(), now, now_ms());
                effects.persist |= e.persist;
                effects.syncs.extend(e.syncs);
                let answer = match r {
                    Ok(id) => (id, Ok(())),
                    Err(e) => (member.clone(), Err(e)),
                };
                out.push((answer, instance));
            }
            (out, effects)
        })?;
        let Some((p, (out, effects))) = r else {
            return Ok(members
                .into_iter()
                .map(|(m, i)| {
                    let e = err(
                        ErrorCode::UnknownMemberId,
                        format!("group '{group_id}' has no member '{m}'"),
                    );
                    (m, i, Err(e))
                })
                .collect());
        };
        self.carry_out(group_id, p, effects);
        Ok(out.into_iter().map(|((m, r), i)| (m, i, r)).collect())
    }

    /// ConsumerGroupHeartbeat (KIP-848). Topics (partition counts, and the names regex
    /// subscriptions are matched against) are read from this broker's image, so a topic
    /// created or deleted since the last heartbeat is seen by the next one.
    /// A heartbeat that changed the group is answered once the change is stored.
    #[tracing::instrument(skip_all, fields(group = %group_id, member = %req.member_id, epoch = req.member_epoch))]
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: consumer::HeartbeatRequest,
    ) -> Result<consumer::HeartbeatResult, KafkaError> {
        let image = ImageTopics(self.log.metadata());
        let create = req.member_epoch == 0;
        let config = &self.config;
        let member_id = req.member_id.clone();
        let r = self.with_group(group_id, create, |g| {
            if !g.members.is_empty() {
                return Err(err(
                    ErrorCode::GroupIdNotFound,
                    format!(
                        "group '{group_id}' is a classic group with active members; it cannot take consumer-protocol members"
                    ),
                ));
            }
            let c = g
                .consumer
                .get_or_insert_with(|| consumer::ConsumerGroup::new(config));
            let before = c.stored();
            let r = c.heartbeat(
                group_id,
                req,
                &image,
                config,
                || uuid::Uuid::new_v4().to_string(),
                Instant::now(),
            )?;
            Ok((r, c.stored() != before))
        })?;
        let Some((partition, r)) = r else {
            return Err(err(
                ErrorCode::UnknownMemberId,
                format!("group '{group_id}' has no member '{member_id}'"),
            ));
        };
        let (answer, changed) = r?;
        if changed {
            self.persist_consumer_group(group_id, partition).await?;
        }
        Ok(answer)
    }

    /// ConsumerGroupDescribe: the KIP-848 view of a group (None: not such a group).
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<Option<consumer::ConsumerGroup>, KafkaError> {
        Ok(self
            .with_group(group_id, false, |g| g.consumer.clone())?
            .and_then(|(_, c)| c))
    }

    /// Persists the group where a transition asked for it, then answers the syncs it
    /// completed (with an error, and a new rebalance, if the write failed).
    pub(super) fn carry_out(
        self: &Arc<Self>,
        group_id: &str,
        partition: PartitionId,
        effects: Effects,
    ) {
        if !effects.persist && effects.syncs.is_empty() {
            return;
        }
        let this = Arc::clone(self);
        let group_id = group_id.to_string();
        tokio::spawn(async move {
            let written = if effects.persist {
                this.persist_group(&group_id, partition).await
            } else {
                Ok(())
            };
            match written {
                Ok(()) => {
                    for (tx, r) in effects.syncs {
                        let _ = tx.send(r);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "cannot store the group's assignment");
                    for (tx, _) in effects.syncs {
                        let _ = tx.send(Err(e.clone()));
                    }
                    if let Ok(Some((p, effects))) = this.with_group(&group_id, false, |g| {
                        g.assignment_lost(Instant::now(), now_ms())
                    }) {
                        this.carry_out(&group_id, p, effects);
                    }
                }
            }
        });
    }
}

/// The topics of this broker's image, as the consumer group state machine reads them.
struct ImageTopics(Box<dyn MetadataView>);

impl consumer::Topics for ImageTopics {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.0.partition_count(topic)
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        self.0.for_each_topic_name(f)
    }
}

#[cfg(test)]
mod tests;
