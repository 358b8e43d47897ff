//! Reconciling hosted partitions with the metadata: open the ones newly assigned here,
//! delete the ones removed, update roles, ISRs and configs — for the partitions a batch
//! changed only, or for all of them.
//!
//! Invariants:
//! - after a pass, the hosted slots are exactly the partitions the applied image assigns
//!   to this broker (open, or offline waiting for a retry), and `followed` lists exactly
//!   the open ones led by another broker;
//! - a delta is applied only on top of the image it was replayed from (the very `Arc`
//!   the replica manager holds); on any other base the pass is a full one;
//! - a full pass runs for the first image, a snapshot or checkpoint (no delta), the
//!   offline retries, and when the delta says "everything" ([`delta_scope`]): this
//!   broker's own registration or fencing changed, or cluster-wide or this broker's
//!   dynamic configs changed (rare events, where a full pass is always right);
//! - another broker's registration or fencing, or its configs, touch no partition here:
//!   reconcile reads no broker registration (ISR maintenance reads the image itself).
//!
//! [`delta_scope`] is a pure decision (no I/O, no locks); the pass does the file I/O and
//! runs one at a time (`reconciling`), off the async runtime.

use super::{Followed, ReplicaManager, Slot, open_retry_delay, topic_config};
use crate::partition::Partition;
use kavka_log::LogConfig;
use kavka_metadata::{
    ConfigResource, MetadataDelta, MetadataImage, PartitionRegistration, TopicId,
};
use kavka_model::{BrokerId, TopicName, TopicPartition};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// What one reconcile pass looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Whether every partition of the image was looked at.
    pub full: bool,
    /// Partitions assigned here that the pass updated or opened, plus the ones it
    /// removed.
    pub partitions: usize,
}

/// The partitions a batch changed that this broker may host or hosts, by name: `None`
/// when the batch needs a full pass (see the module doc). `old` is the image the batch
/// was replayed on, `new` the result.
pub(crate) fn delta_scope(
    old: &MetadataImage,
    new: &MetadataImage,
    delta: &MetadataDelta,
    me: BrokerId,
) -> Option<HashSet<TopicPartition>> {
    let everything = delta.brokers.contains(&me)
        || delta.configs.iter().any(|r| match r {
            ConfigResource::Cluster => true,
            ConfigResource::Broker(b) => *b == me,
            ConfigResource::Topic(_) => false,
        });
    if everything {
        return None;
    }
    let mut touched = HashSet::new();
    let mut all_of = |image: &MetadataImage, id: TopicId| {
        if let Some(t) = image.topic(id) {
            for &p in t.partitions.keys() {
                touched.insert(TopicPartition::new(t.name.clone(), p));
            }
        }
    };
    for (id, _) in &delta.removed_topics {
        all_of(old, *id);
    }
    for id in &delta.created_topics {
        all_of(new, *id);
    }
    for r in &delta.configs {
        if let ConfigResource::Topic(name) = r
            && let Some(t) = new.topic_by_name(name)
        {
            all_of(new, t.id);
        }
    }
    for (id, p) in &delta.partitions {
        if let Some(t) = new.topic(*id) {
            touched.insert(TopicPartition::new(t.name.clone(), *p));
        }
    }
    Some(touched)
}

/// A partition assigned here: its topic id, log config, `min.insync.replicas` and
/// registration.
type Wanted<'a> = (TopicId, LogConfig, usize, &'a PartitionRegistration);

impl ReplicaManager {
    /// Reconciles hosted partitions with `image`, all of them: opens the ones newly
    /// assigned here, deletes the ones removed, and updates roles and configs. Blocking
    /// (file I/O).
    pub fn apply_image(&self, image: Arc<MetadataImage>) -> ReconcileStats {
        let _one_at_a_time = self.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        self.reconcile(image, None)
    }

    /// Reconciles with `image`, replayed from `base` with `delta`: only the partitions the
    /// delta changed, when `base` is the image applied here and the delta does not ask
    /// for everything; otherwise all of them, as [`ReplicaManager::apply_image`].
    pub fn apply_delta(
        &self,
        base: &Arc<MetadataImage>,
        image: Arc<MetadataImage>,
        delta: &MetadataDelta,
    ) -> ReconcileStats {
        let _one_at_a_time = self.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        let scope = {
            let state = self.read_state();
            if Arc::ptr_eq(&state.image, base) {
                delta_scope(base, &image, delta, self.config.node_id)
            } else {
                None
            }
        };
        self.reconcile(image, scope.as_ref())
    }

    /// Reconciles again with the image already applied (offline partitions whose retry
    /// is due are opened); the image is read under the lock, so it is never an older one.
    pub(super) fn reapply_image(&self) {
        let _one_at_a_time = self.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        self.reconcile(self.image(), None);
    }

    /// The partitions of `image` assigned here, among `scope` (`None`: all of them).
    fn wanted<'a>(
        &self,
        image: &'a MetadataImage,
        scope: Option<&HashSet<TopicPartition>>,
    ) -> HashMap<TopicPartition, Wanted<'a>> {
        let me = self.config.node_id;
        let defaults = self.config.topic_defaults();
        let configs = |name: &TopicName| {
            let config = topic_config(image, &defaults, name);
            let min_isr = config.min_insync_replicas.max(1) as usize;
            (LogConfig::from_topic(&config), min_isr)
        };
        let mut wanted = HashMap::new();
        match scope {
            None => {
                for t in image.topics() {
                    let (log_config, min_isr) = configs(&t.name);
                    for (&p, reg) in &t.partitions {
                        if reg.replicas.contains(&me) {
                            wanted.insert(
                                TopicPartition::new(t.name.clone(), p),
                                (t.id, log_config.clone(), min_isr, reg),
                            );
                        }
                    }
                }
            }
            Some(scope) => {
                let mut by_topic: HashMap<&TopicName, (LogConfig, usize)> = HashMap::new();
                for tp in scope {
                    let Some(t) = image.topic_by_name(&tp.topic) else {
                        continue;
                    };
                    let Some(reg) = t.partitions.get(&tp.partition) else {
                        continue;
                    };
                    if reg.replicas.contains(&me) {
                        let (log_config, min_isr) = by_topic
                            .entry(&t.name)
                            .or_insert_with(|| configs(&t.name))
                            .clone();
                        wanted.insert(tp.clone(), (t.id, log_config, min_isr, reg));
                    }
                }
            }
        }
        wanted
    }

    /// One pass over the partitions in `scope` (`None`: all of them).
    fn reconcile(
        &self,
        image: Arc<MetadataImage>,
        scope: Option<&HashSet<TopicPartition>>,
    ) -> ReconcileStats {
        let me = self.config.node_id;
        let wanted = self.wanted(&image, scope);
        // Gone (or re-created under another id): unhost first, then delete the files.
        let removed: Vec<(TopicPartition, Slot)> = {
            let mut state = self.write_state();
            let unwanted = |tp: &TopicPartition, slot: &Slot| {
                let id = match slot {
                    Slot::Online(p) => p.topic_id,
                    Slot::Offline { topic_id, .. } => *topic_id,
                };
                wanted
                    .get(tp)
                    .is_none_or(|(wanted_id, ..)| *wanted_id != id)
            };
            let gone: Vec<TopicPartition> = match scope {
                None => state
                    .partitions
                    .iter()
                    .filter(|(tp, slot)| unwanted(tp, slot))
                    .map(|(tp, _)| tp.clone())
                    .collect(),
                Some(scope) => scope
                    .iter()
                    .filter(|tp| state.partitions.get(*tp).is_some_and(|s| unwanted(tp, s)))
                    .cloned()
                    .collect(),
            };
            gone.into_iter()
                .filter_map(|tp| state.partitions.remove_entry(&tp))
                .collect()
        };
        let stats = ReconcileStats {
            full: scope.is_none(),
            partitions: wanted.len() + removed.len(),
        };
        for (tp, _) in removed {
            let dir = self.partition_dir(&tp);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(partition = %tp, error = %e, "cannot delete partition files");
            } else {
                tracing::info!(partition = %tp, "deleted partition");
            }
        }
        // A full pass lists the followed partitions afresh; a scoped one keeps the others.
        let mut followed = match scope {
            None => Followed::default(),
            Some(scope) => {
                let mut f = self.followed.borrow().clone();
                f.by_leader.retain(|_, ps| {
                    ps.retain(|p| !scope.contains(&p.tp));
                    !ps.is_empty()
                });
                f
            }
        };
        let now = Instant::now();
        for (tp, (topic_id, log_config, min_isr, reg)) in wanted {
            if let Some(p) = self.reconcile_one(tp, topic_id, log_config, min_isr, reg, now)
                && reg.has_leader()
                && reg.leader != me
            {
                followed.add(reg.leader, p);
            }
        }
        let offset = image.offset;
        self.write_state().image = image;
        self.followed.send_replace(followed);
        self.applied.send_replace(offset);
        stats
    }

    /// Brings one partition assigned here in line with its registration: updates it if
    /// open, opens it if new or its retry is due. The partition if it is open.
    fn reconcile_one(
        &self,
        tp: TopicPartition,
        topic_id: TopicId,
        log_config: LogConfig,
        min_isr: usize,
        reg: &PartitionRegistration,
        now: Instant,
    ) -> Option<Arc<Partition>> {
        /// What this partition's slot asks for.
        enum Next {
            Online(Arc<Partition>),
            Wait,
            Open {
                attempts: u32,
                last_error: Option<String>,
            },
        }
        let next = match self.read_state().partitions.get(&tp) {
            Some(Slot::Online(p)) => Next::Online(Arc::clone(p)),
            Some(Slot::Offline {
                retry_at,
                attempts,
                error,
                ..
            }) if *retry_at <= now => Next::Open {
                attempts: *attempts,
                last_error: Some(error.message.clone()),
            },
            Some(Slot::Offline { .. }) => Next::Wait,
            None => Next::Open {
                attempts: 0,
                last_error: None,
            },
        };
        match next {
            Next::Online(p) => {
                p.apply_registration(reg, log_config, min_isr);
                Some(p)
            }
            Next::Wait => None,
            Next::Open {
                attempts,
                last_error,
            } => {
                let (slot, part) = match self.open_partition(&tp, topic_id, log_config) {
                    Ok(p) => {
                        let p = Arc::new(p);
                        p.apply_registration(reg, p.log_config(), min_isr);
                        if attempts > 0 {
                            tracing::info!(partition = %tp, attempts, "partition online: its log opened on a retry");
                        }
                        (Slot::Online(Arc::clone(&p)), Some(p))
                    }
                    Err(error) => {
                        let delay = open_retry_delay(attempts);
                        // Said once per cause; the retries of the same failure are quiet.
                        if last_error.as_deref() == Some(error.message.as_str()) {
                            tracing::debug!(partition = %tp, %error, attempts, retry_in = ?delay, "partition still offline");
                        } else {
                            tracing::error!(partition = %tp, %error, retry_in = ?delay, "partition offline: its log cannot be opened");
                        }
                        let slot = Slot::Offline {
                            topic_id,
                            error,
                            retry_at: now + delay,
                            attempts: attempts.saturating_add(1),
                        };
                        (slot, None)
                    }
                };
                self.write_state().partitions.insert(tp, slot);
                part
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{MetadataRecord, PartitionChangeRecord, PartitionRecord, TopicRecord};
    use kavka_model::{LeaderEpoch, PartitionId};

    const ME: BrokerId = BrokerId(1);

    fn tid(n: u128) -> TopicId {
        TopicId(uuid::Uuid::from_u128(n))
    }

    fn name(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn tp(s: &str, p: i32) -> TopicPartition {
        TopicPartition::new(name(s), PartitionId(p))
    }

    /// Topics `a` (id 1) and `b` (id 2), two partitions each, on brokers 1 and 2.
    fn base() -> MetadataImage {
        let mut records = Vec::new();
        for (n, s) in [(1, "a"), (2, "b")] {
            records.push(MetadataRecord::Topic(TopicRecord {
                name: name(s),
                topic_id: tid(n),
            }));
            for p in 0..2 {
                records.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: tid(n),
                    partition: PartitionId(p),
                    replicas: vec![BrokerId(1), BrokerId(2)],
                    isr: vec![BrokerId(1), BrokerId(2)],
                    leader: BrokerId(1),
                    leader_epoch: LeaderEpoch(0),
                    partition_epoch: 0,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                }));
            }
        }
        MetadataImage::from_snapshot(10, &records).unwrap()
    }

    fn config(resource: ConfigResource) -> MetadataRecord {
        MetadataRecord::Config {
            resource,
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }
    }

    #[test]
    fn a_batch_scopes_the_pass_to_what_it_changed() {
        let elect = |n, p| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                leader: Some(BrokerId(2)),
                ..PartitionChangeRecord::new(tid(n), PartitionId(p))
            })
        };
        let fence = |b| MetadataRecord::FenceBroker {
            broker_id: BrokerId(b),
            incarnation_id: uuid::Uuid::nil(),
        };
        let register = |b| {
            MetadataRecord::RegisterBroker(kavka_metadata::RegisterBrokerRecord {
                broker_id: BrokerId(b),
                incarnation_id: uuid::Uuid::nil(),
                endpoints: vec![],
                rack: None,
                fenced: true,
            })
        };
        // (batch, expected scope: None = full pass)
        let table: Vec<(Vec<MetadataRecord>, Option<Vec<TopicPartition>>)> = vec![
            (vec![], Some(vec![])),
            (vec![elect(1, 0)], Some(vec![tp("a", 0)])),
            (
                vec![elect(1, 1), elect(2, 0)],
                Some(vec![tp("a", 1), tp("b", 0)]),
            ),
            // Another broker: nothing here; this broker: everything.
            (vec![register(2), fence(2)], Some(vec![])),
            (vec![register(1)], None),
            // A topic's configs: its partitions; cluster-wide or ours: everything.
            (
                vec![config(ConfigResource::Topic(name("b")))],
                Some(vec![tp("b", 0), tp("b", 1)]),
            ),
            (
                vec![config(ConfigResource::Broker(BrokerId(2)))],
                Some(vec![]),
            ),
            (vec![config(ConfigResource::Broker(ME))], None),
            (vec![config(ConfigResource::Cluster)], None),
            // A removed topic: the partitions it had.
            (
                vec![MetadataRecord::RemoveTopic { topic_id: tid(1) }],
                Some(vec![tp("a", 0), tp("a", 1)]),
            ),
            // Removed and re-created under the same name: the old and new partitions.
            (
                vec![
                    MetadataRecord::RemoveTopic { topic_id: tid(1) },
                    MetadataRecord::Topic(TopicRecord {
                        name: name("a"),
                        topic_id: tid(3),
                    }),
                    MetadataRecord::Partition(PartitionRecord {
                        topic_id: tid(3),
                        partition: PartitionId(0),
                        replicas: vec![BrokerId(2)],
                        isr: vec![BrokerId(2)],
                        leader: BrokerId(2),
                        leader_epoch: LeaderEpoch(0),
                        partition_epoch: 0,
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    }),
                ],
                Some(vec![tp("a", 0), tp("a", 1)]),
            ),
        ];
        let old = base();
        for (batch, want) in table {
            let (new, delta, refused) = old.replay(old.offset + 1, &batch);
            // Fencing with a nil incarnation is refused after a register of another one;
            // what matters here is the delta.
            let _ = refused;
            let got = delta_scope(&old, &new, &delta, ME);
            let want: Option<HashSet<TopicPartition>> = want.map(|v| v.into_iter().collect());
            assert_eq!(got, want, "batch {batch:?}");
        }
    }
}
