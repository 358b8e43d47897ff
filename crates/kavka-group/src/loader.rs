//! Following leadership of `__consumer_offsets`: a partition this broker comes to lead
//! is read from its start to the log end it had then, replaying every record into
//! groups and offsets, before its groups are served; one it stops leading is dropped.
//! The same task ticks every group's timers (sessions, join deadlines).

use super::classic::Group;
use super::coordinator::Shard;
use super::store::{self, Key, Value};
use super::{CommittedOffset, GroupCoordinator, OFFSETS_TOPIC, TICK, now_ms};
use kavka_model::{LeaderEpoch, Offset, PartitionId};
use kavka_record::RecordBatch;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bytes read per fetch while loading.
const LOAD_FETCH_BYTES: usize = 4 * 1024 * 1024;
/// How long one read while loading waits for records to become readable.
const LOAD_FETCH_WAIT: Duration = Duration::from_millis(200);

impl GroupCoordinator {
    /// Follows the metadata image and ticks group timers until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut applied = self.log.watch_applied();
        // An image applied before this task subscribed counts too.
        self.follow_leadership();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                r = applied.changed() => {
                    if r.is_err() {
                        return;
                    }
                    self.follow_leadership();
                }
                _ = tick.tick() => self.tick(),
            }
        }
    }

    /// The offsets partitions this broker leads now, with their leader epochs.
    fn led(&self) -> BTreeMap<PartitionId, LeaderEpoch> {
        let metadata = self.log.metadata();
        let me = self.log.node_id();
        let n = metadata.partition_count(OFFSETS_TOPIC).unwrap_or(0);
        (0..n)
            .map(PartitionId)
            .filter_map(|p| match metadata.leader(OFFSETS_TOPIC, p) {
                Some((Some(leader), epoch)) if leader == me => Some((p, epoch)),
                _ => None,
            })
            .collect()
    }

    fn follow_leadership(self: &Arc<Self>) {
        let led = self.led();
        let mut to_load = Vec::new();
        {
            let mut shards = self.shards();
            shards.retain(|p, s| {
                let epoch = match s {
                    Shard::Loading(e) | Shard::Active { epoch: e, .. } => *e,
                };
                let keep = led.get(p) == Some(&epoch);
                if !keep {
                    tracing::info!(
                        partition = %p,
                        "no longer coordinating the groups of {OFFSETS_TOPIC}-{p}"
                    );
                }
                keep
            });
            for (&p, &epoch) in &led {
                if let std::collections::hash_map::Entry::Vacant(e) = shards.entry(p) {
                    e.insert(Shard::Loading(epoch));
                    to_load.push((p, epoch));
                }
            }
        }
        for (p, epoch) in to_load {
            let this = Arc::clone(self);
            tokio::spawn(async move { this.load(p, epoch).await });
        }
    }

    fn still_loading(&self, p: PartitionId, epoch: LeaderEpoch) -> bool {
        matches!(self.shards().get(&p), Some(Shard::Loading(e)) if *e == epoch)
    }

    /// Rebuilds partition `p`'s groups from the log, then serves them.
    #[tracing::instrument(skip(self))]
    async fn load(self: Arc<Self>, p: PartitionId, epoch: LeaderEpoch) {
        let started = Instant::now();
        // Everything this leader holds now will be committed (a leader never truncates
        // its own log), so that is what to read.
        let target = loop {
            match self.log.log_end(p).await {
                Ok(end) => break end,
                Err(_) if self.still_loading(p, epoch) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => return,
            }
        };
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut next = Offset(0);
        let mut records = 0usize;
        while next < target {
            if !self.still_loading(p, epoch) {
                return;
            }
            let read = self
                .log
                .read(p, next, LOAD_FETCH_BYTES, LOAD_FETCH_WAIT)
                .await;
            let chunk = match read.records {
                Ok(chunk) => chunk,
                Err(e) => {
                    if e.code == kavka_model::ErrorCode::OffsetOutOfRange
                        && next < read.log_start_offset
                    {
                        next = read.log_start_offset;
                        continue;
                    }
                    tracing::warn!(partition = %p, error = %e, "cannot read {OFFSETS_TOPIC}-{p}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if next < read.log_start_offset {
                next = read.log_start_offset;
            }
            let mut buf = chunk.as_slice();
            while !buf.is_empty() {
                let (batch, used) = match RecordBatch::decode(buf) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(partition = %p, offset = next.0, error = %e, "undecodable batch in {OFFSETS_TOPIC}-{p}; skipped");
                        break;
                    }
                };
                buf = &buf[used..];
                for (offset, _, r) in batch.offsets_and_timestamps() {
                    records += 1;
                    if let Some(key) = &r.key {
                        replay(
                            &mut groups,
                            &self.config,
                            key,
                            r.value.as_deref(),
                            p,
                            offset,
                        );
                    }
                }
                next = Offset(batch.last_offset() + 1);
            }
        }
        groups.retain(|_, g| !g.is_vacant() || g.protocol_type.is_some());
        let mut shards = self.shards();
        if matches!(shards.get(&p), Some(Shard::Loading(e)) if *e == epoch) {
            tracing::info!(
                partition = %p,
                groups = groups.len(),
                records,
                ms = started.elapsed().as_millis() as u64,
                "loaded the groups of {OFFSETS_TOPIC}-{p}"
            );
            shards.insert(p, Shard::Active { epoch, groups });
        }
    }

    fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let ms = now_ms();
        let mut work = Vec::new();
        let mut consumer_changed = Vec::new();
        {
            let mut shards = self.shards();
            for (&p, s) in shards.iter_mut() {
                if let Shard::Active { groups, .. } = s {
                    let consumer_session =
                        Duration::from_millis(self.config.consumer_session_timeout_ms);
                    for (id, g) in groups.iter_mut() {
                        if let Some(c) = g.consumer.as_mut()
                            && c.tick(consumer_session, now)
                        {
                            consumer_changed.push((id.clone(), p));
                        }
                        let effects = g.tick(now, ms);
                        if effects.persist || !effects.syncs.is_empty() {
                            work.push((id.clone(), p, effects));
                        }
                    }
                    groups.retain(|_, g| !(g.is_vacant() && g.state == super::GroupState::Empty));
                }
            }
        }
        for (id, p, effects) in work {
            self.carry_out(&id, p, effects);
        }
        for (id, p) in consumer_changed {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = this.persist_consumer_group(&id, p).await {
                    tracing::warn!(group = %id, error = %e, "cannot store the group's state");
                }
            });
        }
    }
}

/// Applies one record of the offsets topic.
fn replay(
    groups: &mut HashMap<String, Group>,
    config: &super::GroupConfig,
    key: &[u8],
    value: Option<&[u8]>,
    p: PartitionId,
    offset: i64,
) {
    let (key, value) = match store::decode(key, value) {
        Ok(kv) => kv,
        Err(e) => {
            tracing::warn!(partition = %p, offset, error = %e, "unreadable record in {OFFSETS_TOPIC}-{p}; skipped");
            return;
        }
    };
    let group = groups
        .entry(key.group().to_string())
        .or_insert_with(|| Group::new(key.group().to_string(), config, now_ms()));
    match (key, value) {
        (
            Key::Offset {
                topic, partition, ..
            },
            Some(Value::Offset(v)),
        ) => {
            group.offsets.insert(
                (topic, partition),
                CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp_ms: v.commit_timestamp_ms,
                },
            );
        }
        (
            Key::Offset {
                topic, partition, ..
            },
            None,
        ) => {
            group.offsets.remove(&(topic, partition));
        }
        (Key::Group(_), Some(Value::Group(v))) => {
            group.restore(
                v.protocol_type,
                v.generation_id,
                v.protocol_name,
                v.leader,
                v.state_timestamp_ms,
                v.members,
                Instant::now(),
            );
        }
        (Key::ConsumerGroup(_), Some(Value::ConsumerGroup(s))) => {
            group.consumer = Some(super::consumer::ConsumerGroup::restore(s, Instant::now()));
        }
        (Key::ConsumerGroup(_), None) => group.consumer = None,
        (Key::Group(id), None) => {
            let offsets = std::mem::take(&mut group.offsets);
            *group = Group::new(id, config, now_ms());
            group.offsets = offsets;
        }
        _ => {}
    }
}
