//! Replication, leader side: replica fetches (with long-poll), OffsetForLeaderEpoch, ISR
//! maintenance (AlterPartition proposals to the controller) and the high watermark
//! checkpoint. The follower side is `crate::fetcher`. Replica fetches are asked and
//! answered in model types (`kavka_model::data::ReplicaFetch`, `ReplicaFetched`);
//! `kavka-proto`'s `conv` maps them to and from the wire.
//!
//! Invariants: an ISR change takes effect only once the controller committed it (the
//! partition applies it from the next image); one proposal per partition is in flight;
//! the checkpoint is written whole to a temporary file, fsynced and renamed.

use super::budget::ResponseBudget;
use super::wakeup::Wakeups;
use super::{ReplicaManager, Slot, write_synced};
use crate::controllers::Controllers;
use crate::isr::{IsrDecision, IsrTiming};
use crate::partition::{Partition, blocking};
use kavka_model::data::{
    LogBounds, ReplicaFetch, ReplicaFetchOutcome, ReplicaFetched, ReplicaRead,
};
use kavka_model::{
    BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TopicName, TopicPartition,
};
use kavka_proto::v1;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Kafka's file name and format: version, count, then `topic partition hw` lines.
const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// Partitions this broker follows, grouped by their leader.
#[derive(Clone, Debug, Default)]
pub struct Followed {
    pub(crate) by_leader: BTreeMap<BrokerId, Vec<Arc<Partition>>>,
}

impl Followed {
    pub(crate) fn add(&mut self, leader: BrokerId, p: Arc<Partition>) {
        self.by_leader.entry(leader).or_default().push(p);
    }
}

/// Reads the high watermark checkpoint; a missing or unreadable file yields none (the
/// high watermarks then start at each log's start and catch up from the leaders).
pub(crate) fn read_hw_checkpoint(dir: &Path) -> HashMap<TopicPartition, Offset> {
    let path = dir.join(HW_CHECKPOINT_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in text.lines().skip(2).filter(|l| !l.is_empty()) {
        let mut parts = line.split(' ');
        let parsed = (|| {
            let topic = TopicName::new(parts.next()?).ok()?;
            let partition: i32 = parts.next()?.parse().ok()?;
            let hw: i64 = parts.next()?.parse().ok()?;
            Some((
                TopicPartition::new(topic, PartitionId(partition)),
                Offset(hw),
            ))
        })();
        match parsed {
            Some((tp, hw)) => {
                out.insert(tp, hw);
            }
            None => {
                tracing::warn!(file = %path.display(), line, "ignoring a malformed checkpoint line")
            }
        }
    }
    out
}

fn kafka(code: ErrorCode, message: String) -> KafkaError {
    KafkaError::new(code, message)
}

/// One partition of a replica fetch: the partition (or why not), offset, epoch, max bytes.
type FetchAsk = (
    Result<Arc<Partition>, KafkaError>,
    Offset,
    LeaderEpoch,
    usize,
);

impl ReplicaManager {
    /// Any hosted partition (leader or follower).
    pub(super) fn hosted(&self, tp: &TopicPartition) -> Result<Arc<Partition>, KafkaError> {
        match self.read_state().partitions.get(tp) {
            Some(Slot::Online(p)) => Ok(Arc::clone(p)),
            Some(Slot::Offline { error, .. }) => Err(error.clone()),
            None => Err(kafka(
                ErrorCode::NotLeaderOrFollower,
                format!("broker {} does not host {tp}", self.config.node_id),
            )),
        }
    }

    /// Serves one replica fetch: records each follower's progress, then reads; if
    /// nothing is new for any partition, waits up to `max_wait_ms` for appends on the
    /// partitions it asked for, and reads again only those that had some. One answer per
    /// asked partition, in request order.
    #[tracing::instrument(level = "debug", skip_all, fields(replica = %req.replica, partitions = req.partitions.len()))]
    pub async fn replica_fetch(&self, req: ReplicaFetch) -> Vec<ReplicaFetched> {
        let wait = Duration::from_millis(req.max_wait_ms.min(30_000));
        let deadline = tokio::time::Instant::now() + wait;
        let hosted: Vec<_> = req.partitions.iter().map(|p| self.hosted(&p.tp)).collect();
        // Subscribed before the first read: an append after it wakes the wait below.
        let mut wakeups = Wakeups::new(
            hosted
                .iter()
                .map(|p| p.as_ref().ok().map(|p| p.watch_appends())),
        );
        let mut resp = self.replica_fetch_once(&req, &hosted, None).await;
        let answered = |resp: Vec<ReplicaFetched>| {
            let bytes = resp
                .iter()
                .map(|r| match &r.outcome {
                    ReplicaFetchOutcome::Read(r) => r.records.len() as u64,
                    _ => 0,
                })
                .sum();
            crate::metrics::record_replica_fetch(bytes);
            resp
        };
        loop {
            if resp.iter().any(ReplicaFetched::has_news) || tokio::time::Instant::now() >= deadline
            {
                return answered(resp);
            }
            let Some(woken) = wakeups.wait_until(deadline).await else {
                return answered(resp);
            };
            // Only the woken partitions are read again (their fetch offsets are the same:
            // recording the follower's progress twice changes nothing).
            let again = self.replica_fetch_once(&req, &hosted, Some(&woken)).await;
            for (i, r) in again.into_iter().enumerate() {
                if woken[i] {
                    resp[i] = r;
                }
            }
        }
    }

    /// One pass over the fetched partitions (`only`: those marked), all read in one
    /// blocking task (a fetch round per follower per append: one thread hand-off, not
    /// one per partition).
    async fn replica_fetch_once(
        &self,
        req: &ReplicaFetch,
        hosted: &[Result<Arc<Partition>, KafkaError>],
        only: Option<&[bool]>,
    ) -> Vec<ReplicaFetched> {
        let replica = req.replica;
        let now = Instant::now();
        let asks: Vec<Option<FetchAsk>> = req
            .partitions
            .iter()
            .zip(hosted)
            .enumerate()
            .map(|(i, (p, part))| {
                only.is_none_or(|only| only[i]).then(|| {
                    (
                        part.clone(),
                        p.fetch_offset,
                        p.current_leader_epoch,
                        p.max_bytes.max(1),
                    )
                })
            })
            .collect();
        let mut budget = ResponseBudget::new(
            req.max_bytes
                .max(1)
                .min(self.config.replica_fetch_response_max_bytes),
        );
        // A leader whose lease lapsed serves no follower: it may be acting on a stale image.
        let lease = self.check_lease();
        // Moving replicas get no records while the leader's throttle is over its rate.
        let throttle_rate = self.dynamic_config().leader_replication_throttled_rate;
        let throttles = Arc::clone(&self.throttles);
        let held = throttle_rate
            .is_some_and(|rate| crate::throttle::with(&throttles.leader, |b| b.over(rate, now)));
        // A follower that has what we had at its previous fetch reads only records
        // appended since (page cache): read right here. A re-read after a wake-up is one.
        // Only while no log lock is held (a compaction, a cold read): a hint: the lock
        // may still be taken in the narrow window between this check and the read.
        let fresh = asks.iter().flatten().all(|(part, offset, ..)| {
            part.as_ref().is_ok_and(|p| {
                (only.is_some() || p.replica_reads_fresh(replica, *offset)) && p.log_is_free()
            })
        });
        let read_all = move || {
            Ok(asks
                .into_iter()
                .map(|ask| {
                    let Some((part, offset, epoch, max)) = ask else {
                        // Not read this pass: answered as before by the caller.
                        return Ok(None);
                    };
                    let part = part.map_err(|e| (e, None))?;
                    lease.clone().map_err(|e| (e, None))?;
                    // Read even with the budget spent: the read records the follower's
                    // progress, which may advance the high watermark.
                    let mut read = part.replica_read(
                        replica,
                        offset,
                        epoch,
                        max.min(budget.left_bytes().max(1)),
                        now,
                    );
                    let throttled = throttle_rate.is_some() && part.is_moving_in(replica);
                    match &mut read {
                        Ok(r) if throttled && held => r.data.records = Default::default(),
                        Ok(r) => {
                            r.data.records = budget.take(std::mem::take(&mut r.data.records));
                            if throttled {
                                let n = r.data.records.len();
                                crate::throttle::with(&throttles.leader, |b| b.spend(n));
                            }
                        }
                        // The follower needs our bounds to know where to go on.
                        Err(e) if e.code == ErrorCode::OffsetOutOfRange => {
                            return Err((e.clone(), Some(part.log_bounds())));
                        }
                        Err(_) => {}
                    }
                    read.map(Some).map_err(|e| (e, None))
                })
                .collect::<Vec<_>>())
        };
        let reads = if fresh {
            read_all()
        } else {
            blocking(read_all).await
        };
        let reads = match reads {
            Ok(r) => r,
            Err(e) => (0..req.partitions.len())
                .map(|_| Err((e.clone(), None)))
                .collect(),
        };
        req.partitions
            .iter()
            .zip(reads)
            .map(|(p, read)| ReplicaFetched {
                tp: p.tp.clone(),
                outcome: match read {
                    Ok(None) => ReplicaFetchOutcome::Unread,
                    Ok(Some(read)) => ReplicaFetchOutcome::Read(ReplicaRead {
                        high_watermark: read.high_watermark,
                        bounds: LogBounds {
                            log_start_offset: read.data.log_start_offset,
                            log_end_offset: read.data.log_end_offset,
                        },
                        records: read.data.records,
                    }),
                    Err((error, bounds)) => ReplicaFetchOutcome::Failed {
                        error,
                        bounds: bounds.map(|(start, end)| LogBounds {
                            log_start_offset: start,
                            log_end_offset: end,
                        }),
                    },
                },
            })
            .collect()
    }

    /// The partitions this broker follows, by leader (the fetchers watch it).
    pub fn followed(&self) -> watch::Receiver<Followed> {
        self.followed.subscribe()
    }

    /// The partitions hosted here whose logs are open.
    pub(crate) fn online(&self) -> Vec<Arc<Partition>> {
        self.read_state()
            .partitions
            .values()
            .filter_map(|s| match s {
                Slot::Online(p) => Some(Arc::clone(p)),
                Slot::Offline { .. } => None,
            })
            .collect()
    }

    /// As leader of each partition: proposes ISR shrinks and expansions to the active
    /// controller, until `shutdown`.
    pub async fn run_isr_maintenance(
        self: Arc<Self>,
        controllers: Arc<Controllers>,
        incarnation_id: uuid::Uuid,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let timing = IsrTiming::from_config(&self.config);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let image = self.image();
            let eligible = |b: BrokerId| image.broker(b).is_some_and(|r| !r.fenced);
            let now = Instant::now();
            for part in self.online() {
                let Some((decision, leader_epoch, partition_epoch)) =
                    part.isr_proposal(&timing, &eligible, now)
                else {
                    continue;
                };
                let (isr, shrink) = match decision {
                    IsrDecision::None => continue,
                    IsrDecision::Shrink(isr) => {
                        tracing::info!(partition = %part.tp, ?isr, "proposing ISR shrink");
                        (isr, true)
                    }
                    IsrDecision::Expand(isr) => {
                        tracing::info!(partition = %part.tp, ?isr, "proposing ISR expansion");
                        (isr, false)
                    }
                };
                let req = v1::AlterPartitionRequest {
                    broker_id: self.config.node_id.0,
                    incarnation_id: incarnation_id.to_string(),
                    topic_id: part.topic_id.to_string(),
                    partition: part.tp.partition.0,
                    leader_epoch: leader_epoch.0,
                    partition_epoch,
                    new_isr: isr.iter().map(|b| b.0).collect(),
                };
                let controllers = Arc::clone(&controllers);
                tokio::spawn(async move {
                    let r = controllers
                        .call(|mut c| {
                            let req = req.clone();
                            async move { c.alter_partition(req).await.map(|r| r.into_inner()) }
                        })
                        .await;
                    match r {
                        Ok(v1::AlterPartitionResponse { error: None, .. }) => {
                            crate::metrics::isr_changed(shrink);
                        }
                        Ok(v1::AlterPartitionResponse { error: Some(e), .. }) => {
                            tracing::info!(partition = %part.tp, error = %e.message, "ISR change refused");
                            part.clear_pending_isr();
                        }
                        Err(e) => {
                            tracing::warn!(partition = %part.tp, error = %e, "ISR change not sent");
                            part.clear_pending_isr();
                        }
                    }
                });
            }
        }
    }

    /// Writes the high watermark checkpoint every interval, and once more at shutdown.
    pub async fn run_hw_checkpoints(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.hw_checkpoint_interval_ms.max(100));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = String::new();
        loop {
            let stop = tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown.changed() => true,
            };
            let mut lines: Vec<String> = self
                .online()
                .iter()
                .map(|p| {
                    format!(
                        "{} {} {}",
                        p.tp.topic,
                        p.tp.partition.0,
                        p.high_watermark().0
                    )
                })
                .collect();
            // Partitions not open yet (offline, retrying) keep the mark read at start.
            lines.extend(
                self.unopened_checkpointed_hw()
                    .into_iter()
                    .map(|(tp, hw)| format!("{} {} {}", tp.topic, tp.partition.0, hw.0)),
            );
            lines.sort();
            let text = format!("0\n{}\n{}\n", lines.len(), lines.join("\n"));
            if text != last {
                let path = self.config.data_dir.join(HW_CHECKPOINT_FILE);
                let bytes = text.clone().into_bytes();
                let r = tokio::task::spawn_blocking(move || write_synced(&path, &bytes)).await;
                match r {
                    Ok(Ok(())) => last = text,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot write the high watermark checkpoint")
                    }
                    Err(e) => tracing::warn!(error = %e, "checkpoint task failed"),
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Partitions this broker leads, per the applied image.
    pub fn leaderships(&self) -> usize {
        let me = self.config.node_id;
        self.image()
            .topics()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.leader == me)
            .count()
    }
}
