//! Topic and config administration: forwarded to the active controller (through
//! `Controllers`, any of which forwards to the active one), then answered once this
//! broker's metadata image shows the change.
//!
//! Invariants: a write the controller refused is answered at once with its error; a
//! committed write that does not reach this broker within `PROPAGATION_TIMEOUT` is
//! REQUEST_TIMED_OUT naming what was committed. Must not depend on any listener.

use crate::controllers::Controllers;
use crate::replica_manager::ReplicaManager;
use crate::session::ControllerSession;
use kavka_metadata::{ConfigResource, MetadataImage};
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::admin::{
    AlterConfigs, BalancePlan, ConfigTarget, ElectionType, NewPartitions, NewTopic, OngoingMove,
    PartitionMove, PartitionOutcome, PartitionRef, TopicOutcome,
};
use kavka_model::quota::{AlterationOutcome, QuotaAlteration};
use kavka_model::scram::{ScramCredential, ScramMechanism, UserOutcome};
use kavka_model::{BrokerId, ConfigEntry, ErrorCode, KafkaError, TopicId, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long an admin write waits for this broker's image to show its effect.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(15);

/// What AlterConfigs answers: a topic's configs as this broker describes them, or the
/// dynamic configs stored for a broker (or the cluster).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlteredConfigs {
    Topic(Vec<ConfigEntry>),
    Broker {
        broker: Option<BrokerId>,
        stored: BTreeMap<String, String>,
    },
}

/// The admin operations of the broker API.
#[derive(Debug)]
pub struct Admin {
    replicas: Arc<ReplicaManager>,
    session: Arc<ControllerSession>,
    controllers: Arc<Controllers>,
}

fn succeeded(outcomes: &[TopicOutcome]) -> Vec<TopicId> {
    outcomes
        .iter()
        .filter_map(|o| o.result.clone().ok())
        .collect()
}

impl Admin {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        session: Arc<ControllerSession>,
        controllers: Arc<Controllers>,
    ) -> Self {
        Self {
            replicas,
            session,
            controllers,
        }
    }

    pub fn replicas(&self) -> &Arc<ReplicaManager> {
        &self.replicas
    }

    pub fn session(&self) -> &Arc<ControllerSession> {
        &self.session
    }

    /// The active controller's node id, as this broker last heard.
    pub fn active_controller(&self) -> Option<BrokerId> {
        self.session.controller().id
    }

    /// Waits until this broker has applied the change, so the caller reads its own write.
    async fn await_image(
        &self,
        what: &str,
        cond: impl Fn(&MetadataImage) -> bool,
    ) -> Result<(), KafkaError> {
        if self
            .replicas
            .wait_for_image(PROPAGATION_TIMEOUT, cond)
            .await
        {
            Ok(())
        } else {
            Err(KafkaError::new(
                ErrorCode::RequestTimedOut,
                format!("{what} was committed but has not reached this broker yet"),
            ))
        }
    }

    /// Creates `topics`; one outcome per topic, in order.
    #[tracing::instrument(skip_all, fields(topics = topics.len()))]
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let outcomes = self
            .controllers
            .create_topics(topics, validate_only)
            .await?;
        let created = succeeded(&outcomes);
        self.await_image("topic creation", |img| {
            created.iter().all(|id| img.topics().any(|t| t.id == *id))
        })
        .await?;
        Ok(outcomes)
    }

    /// Deletes the topics named; one outcome per name, in order.
    #[tracing::instrument(skip_all, fields(topics = names.len()))]
    pub async fn delete_topics(&self, names: &[String]) -> Result<Vec<TopicOutcome>, KafkaError> {
        let outcomes = self.controllers.delete_topics(names).await?;
        let deleted = succeeded(&outcomes);
        self.await_image("topic deletion", |img| {
            !img.topics().any(|t| deleted.contains(&t.id))
        })
        .await?;
        Ok(outcomes)
    }

    /// Grows topics to the counts asked; one outcome per topic, in order.
    #[tracing::instrument(skip_all, fields(topics = topics.len()))]
    pub async fn create_partitions(
        &self,
        topics: &[NewPartitions],
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let outcomes = self
            .controllers
            .create_partitions(topics, validate_only)
            .await?;
        let grown: Vec<(TopicName, usize)> = topics
            .iter()
            .filter(|t| {
                outcomes
                    .iter()
                    .any(|o| o.name == t.name && o.result.is_ok())
            })
            .filter_map(|t| {
                Some((
                    TopicName::new(t.name.clone()).ok()?,
                    t.count.max(0) as usize,
                ))
            })
            .collect();
        self.await_image("the new partitions", |img| {
            grown.iter().all(|(name, count)| {
                img.topic_by_name(name)
                    .is_some_and(|t| t.partitions.len() >= *count)
            })
        })
        .await?;
        Ok(outcomes)
    }

    /// Sets and removes config overrides of one resource.
    #[tracing::instrument(skip_all, fields(target = ?req.target))]
    pub async fn alter_configs(&self, req: &AlterConfigs) -> Result<AlteredConfigs, KafkaError> {
        let stored = self.controllers.alter_configs(req).await?;
        let resource = match &req.target {
            ConfigTarget::Cluster => ConfigResource::Cluster,
            ConfigTarget::Broker(b) => ConfigResource::Broker(*b),
            ConfigTarget::Topic(name) => {
                ConfigResource::Topic(TopicName::new(name.clone()).map_err(|e| {
                    KafkaError::new(ErrorCode::InvalidTopicException, e.to_string())
                })?)
            }
        };
        // Done here once this broker's image holds what was set and not what was deleted
        // (raw values, as stored).
        self.await_image("the config change", |img| {
            let stored = img.configs(&resource);
            req.set.iter().all(|(k, v)| stored.get(k) == Some(v))
                && req.delete.iter().all(|k| !stored.contains_key(k))
        })
        .await?;
        match resource {
            // Described here, over this broker's defaults (e.g. flush.messages from
            // --log-flush), which the controller does not know.
            ConfigResource::Topic(topic) => Ok(AlteredConfigs::Topic(
                self.replicas.describe_topic(topic.as_str()).await?.configs,
            )),
            ConfigResource::Broker(b) => Ok(AlteredConfigs::Broker {
                broker: Some(b),
                stored,
            }),
            ConfigResource::Cluster => Ok(AlteredConfigs::Broker {
                broker: None,
                stored,
            }),
        }
    }

    /// Creates ACLs; one result per ACL, in order, once this broker's image holds every
    /// ACL created.
    #[tracing::instrument(skip_all, fields(acls = acls.len()))]
    pub async fn create_acls(
        &self,
        acls: &[AclBinding],
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        let results = self.controllers.create_acls(acls).await?;
        let created: Vec<&AclBinding> = acls
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(a, _)| a)
            .collect();
        self.await_image("the ACL creation", |img| {
            created.iter().all(|a| img.acls().contains(a))
        })
        .await?;
        Ok(results)
    }

    /// Deletes the ACLs each filter matches; per filter, in order, what it deleted, once
    /// this broker's image no longer holds them.
    #[tracing::instrument(skip_all, fields(filters = filters.len()))]
    pub async fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>, KafkaError>>, KafkaError> {
        let results = self.controllers.delete_acls(filters).await?;
        let deleted: Vec<&AclBinding> = results.iter().flatten().flatten().collect();
        self.await_image("the ACL deletion", |img| {
            deleted.iter().all(|a| !img.acls().contains(a))
        })
        .await?;
        Ok(results)
    }

    /// Sets and removes users' SCRAM credentials; one result per user, once this
    /// broker's image shows every change that succeeded.
    #[tracing::instrument(skip_all, fields(upsertions = upsertions.len(), deletions = deletions.len()))]
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: &[(String, ScramCredential)],
        deletions: &[(String, ScramMechanism)],
    ) -> Result<Vec<UserOutcome>, KafkaError> {
        let results = self
            .controllers
            .alter_user_scram_credentials(upsertions, deletions)
            .await?;
        let ok = |u: &String| results.iter().any(|(r, o)| r == u && o.is_ok());
        let set: Vec<&(String, ScramCredential)> =
            upsertions.iter().filter(|(u, _)| ok(u)).collect();
        let removed: Vec<&(String, ScramMechanism)> =
            deletions.iter().filter(|(u, _)| ok(u)).collect();
        self.await_image("the credential change", |img| {
            set.iter()
                .all(|(u, c)| img.scram_credential(u, c.mechanism) == Some(c))
                && removed
                    .iter()
                    .all(|(u, m)| img.scram_credential(u, *m).is_none())
        })
        .await?;
        Ok(results)
    }

    /// Sets and removes client quotas; one outcome per entry, in order, once this
    /// broker's image shows every change that succeeded (`validate_only`: checked,
    /// nothing written).
    #[tracing::instrument(skip_all, fields(entries = entries.len(), validate_only))]
    pub async fn alter_client_quotas(
        &self,
        entries: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<Vec<AlterationOutcome>, KafkaError> {
        let results = self
            .controllers
            .alter_client_quotas(entries, validate_only)
            .await?;
        if validate_only {
            return Ok(results);
        }
        let applied: Vec<_> = entries
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .filter_map(|(e, _)| e.check().ok())
            .collect();
        self.await_image("the client quota change", |img| {
            applied.iter().all(|(entity, ops)| {
                ops.iter()
                    .all(|(key, value)| img.client_quota(entity, *key) == *value)
            })
        })
        .await?;
        Ok(results)
    }

    /// Moves leadership of `partitions` (empty: every partition) back to their preferred
    /// replica, or (unclean) gives leaderless ones any live replica; one outcome per
    /// partition the controller looked at.
    #[tracing::instrument(skip_all, fields(partitions = partitions.len(), ?kind))]
    pub async fn elect_leaders(
        &self,
        partitions: &[PartitionRef],
        kind: ElectionType,
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        let outcomes = self.controllers.elect_leaders(partitions, kind).await?;
        let moved: Vec<(TopicName, kavka_model::PartitionId)> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .filter_map(|o| Some((TopicName::new(o.topic.clone()).ok()?, o.partition)))
            .collect();
        self.await_image("the leader election", |img| {
            moved.iter().all(|(topic, p)| {
                img.topic_by_name(topic)
                    .and_then(|t| t.partitions.get(p))
                    .is_none_or(|reg| match kind {
                        ElectionType::Preferred => reg.replicas.first() == Some(&reg.leader),
                        ElectionType::Unclean => reg.leader != kavka_metadata::NO_LEADER,
                    })
            })
        })
        .await?;
        Ok(outcomes)
    }

    /// Starts moves of partitions to new replicas, or cancels them (AlterPartitionReassignments);
    /// one outcome per move, in order, once this broker's image shows each accepted one
    /// (moving, or already done).
    #[tracing::instrument(skip_all, fields(moves = moves.len()))]
    pub async fn alter_reassignments(
        &self,
        moves: &[PartitionMove],
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        let outcomes = self.controllers.alter_reassignments(moves).await?;
        let accepted: Vec<(TopicName, kavka_model::PartitionId, Option<Vec<BrokerId>>)> = moves
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.result.is_ok())
            .filter_map(|(m, _)| {
                let topic = TopicName::new(m.partition.topic.clone()).ok()?;
                Some((topic, m.partition.partition, m.target.clone()))
            })
            .collect();
        self.await_image("the partition reassignment", |img| {
            accepted.iter().all(|(topic, p, target)| {
                img.topic_by_name(topic)
                    .and_then(|t| t.partitions.get(p))
                    .is_none_or(|reg| match target {
                        Some(target) => reg.target_replicas() == *target,
                        None => !reg.is_reassigning(),
                    })
            })
        })
        .await?;
        Ok(outcomes)
    }

    /// Decommissions `broker` (`on`: its replicas move off it, none is placed on it) or
    /// takes it back into service, once this broker's image shows it.
    #[tracing::instrument(skip(self))]
    pub async fn decommission(&self, broker: BrokerId, on: bool) -> Result<(), KafkaError> {
        self.controllers.decommission(broker, on).await?;
        self.await_image("the decommission", |img| {
            img.broker(broker).is_none() || img.is_decommissioned(broker) == on
        })
        .await
    }

    /// The balancer's plan for the cluster; with `execute`, the active controller carries
    /// it out (a bounded number of moves at a time) until nothing is left to do.
    #[tracing::instrument(skip(self))]
    pub async fn balance(&self, execute: bool) -> Result<BalancePlan, KafkaError> {
        self.controllers.balance(execute).await
    }

    /// The ongoing moves (ListPartitionReassignments) of `only` (None: all), from this
    /// broker's image; a named partition that is not moving is left out, as Kafka does.
    pub fn list_reassignments(&self, only: Option<&[PartitionRef]>) -> Vec<OngoingMove> {
        let image = self.replicas.image();
        let mut out = Vec::new();
        for t in image.topics() {
            for (&p, reg) in &t.partitions {
                let named = only.is_none_or(|only| {
                    only.iter()
                        .any(|r| r.partition == p && r.topic == t.name.as_str())
                });
                if reg.is_reassigning() && named {
                    out.push(OngoingMove {
                        topic: t.name.to_string(),
                        partition: p,
                        replicas: reg.replicas.clone(),
                        adding: reg.adding_replicas.clone(),
                        removing: reg.removing_replicas.clone(),
                        isr: reg.isr.clone(),
                        leader: reg.has_leader().then_some(reg.leader),
                    });
                }
            }
        }
        out
    }
}

/// The controller quorum's voters (KIP-853): forwarded to the active controller, which
/// answers once the change has committed in the metadata log (the quorum is the
/// controllers' own state: nothing waits on this broker's image).
impl Admin {
    #[tracing::instrument(skip_all, fields(voter = add.id))]
    pub async fn add_raft_voter(
        &self,
        add: &kavka_model::raft_voters::AddVoter,
    ) -> Result<i64, KafkaError> {
        self.controllers.add_raft_voter(add).await
    }

    #[tracing::instrument(skip_all, fields(voter = remove.id))]
    pub async fn remove_raft_voter(
        &self,
        remove: &kavka_model::raft_voters::RemoveVoter,
    ) -> Result<i64, KafkaError> {
        self.controllers.remove_raft_voter(remove).await
    }

    pub async fn describe_quorum(
        &self,
    ) -> Result<kavka_model::raft_voters::QuorumDescription, KafkaError> {
        self.controllers.describe_quorum().await
    }
}
