//! A consumer in a group: subscribes to topics, lets the coordinator assign it
//! partitions (Kafka's KIP-848 protocol, server-side assignment), reads them from the
//! group's committed offsets, and commits its positions (automatically or by hand).
//!
//! Invariants:
//! - heartbeats happen inside `poll` (as Kafka's `max.poll.interval.ms` expects a
//!   consumer to poll), at the interval the coordinator asks for, and at once while an
//!   assignment change is being reconciled;
//! - partitions are given up before the coordinator hears they are: with auto-commit
//!   their positions are committed first, then `on_revoked` runs, then the next
//!   heartbeat reports them gone; only then can another member get them;
//! - records are returned only from partitions currently assigned.

use crate::connection::Client;
use crate::consumer::{ConsumedRecord, Consumer};
use crate::error::ClientError;
use kavka_model::ErrorCode;
use kavka_proto::v1;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Where to start a partition the group has no committed offset for
/// (Kafka's `auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

#[derive(Clone, Debug)]
pub struct GroupConsumerConfig {
    pub group_id: String,
    pub topics: Vec<String>,
    /// `enable.auto.commit` and `auto.commit.interval.ms`.
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub auto_offset_reset: OffsetReset,
    /// `group.instance.id`: a static member.
    pub instance_id: Option<String>,
    /// `group.remote.assignor`: `uniform` or `range` (empty: the broker's default).
    pub assignor: String,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
}

impl GroupConsumerConfig {
    pub fn new(group_id: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group_id: group_id.into(),
            topics,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: OffsetReset::Latest,
            instance_id: None,
            assignor: String::new(),
            rebalance_timeout_ms: 300_000,
            client_id: "kavka-client".into(),
        }
    }
}

/// A topic partition.
pub type TopicPartition = (String, i32);

/// Told about assignment changes, as Kafka's ConsumerRebalanceListener.
pub trait RebalanceListener: Send {
    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {}
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}
}

pub struct GroupConsumer {
    client: Client,
    config: GroupConsumerConfig,
    member_id: String,
    epoch: i32,
    assigned: BTreeSet<TopicPartition>,
    readers: BTreeMap<String, Consumer>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_heartbeat: Instant,
    heartbeat_interval: Duration,
    /// The next heartbeat must report what the member owns (after a change).
    report_owned: bool,
    subscription_sent: bool,
    last_commit: Instant,
}

fn parts_of(a: &[v1::AssignedPartitions]) -> BTreeSet<TopicPartition> {
    a.iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
        .collect()
}

fn by_topic(parts: &BTreeSet<TopicPartition>) -> Vec<v1::AssignedPartitions> {
    let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        m.entry(t).or_default().push(*p);
    }
    m.into_iter()
        .map(|(t, ps)| v1::AssignedPartitions {
            topic: t.to_string(),
            partitions: ps,
        })
        .collect()
}

impl GroupConsumer {
    /// Subscribes to the config's topics; the first `poll` joins the group, as with
    /// Kafka's consumer (so a listener set before it hears of the first assignment).
    pub fn subscribe(client: Client, config: GroupConsumerConfig) -> Result<Self, ClientError> {
        if config.topics.is_empty() {
            return Err(ClientError::Invalid(
                "subscribe to at least one topic".into(),
            ));
        }
        if config.group_id.is_empty() {
            return Err(ClientError::Invalid("the group id is empty".into()));
        }
        Ok(Self {
            client,
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            assigned: BTreeSet::new(),
            readers: BTreeMap::new(),
            listener: None,
            next_heartbeat: Instant::now(),
            heartbeat_interval: Duration::from_secs(1),
            report_owned: true,
            subscription_sent: false,
            last_commit: Instant::now(),
            config,
        })
    }

    pub fn set_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn assignment(&self) -> &BTreeSet<TopicPartition> {
        &self.assigned
    }

    /// Heartbeats when due, then reads the assigned partitions once.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        if Instant::now() >= self.next_heartbeat {
            self.heartbeat().await?;
        }
        if self.config.auto_commit && self.last_commit.elapsed() >= self.config.auto_commit_interval
        {
            self.commit().await?;
        }
        let mut out = Vec::new();
        for reader in self.readers.values_mut().filter(|r| !r.is_empty()) {
            reader.max_wait_ms = 200;
            out.extend(reader.poll().await?);
        }
        if self.readers.values().all(Consumer::is_empty) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(out)
    }

    /// Whether it has partitions and has read each up to the high watermark last seen.
    pub fn at_end(&self) -> bool {
        !self.assigned.is_empty() && self.readers.values().all(Consumer::at_end)
    }

    /// The next offset to read of every assigned partition.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.readers
            .iter()
            .flat_map(|(t, r)| r.positions().iter().map(|(p, o)| ((t.clone(), *p), *o)))
            .collect()
    }

    /// Commits the positions of every assigned partition.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let positions = self.positions();
        self.commit_offsets(positions).await
    }

    /// Commits these offsets (the next offset to read, as Kafka commits them).
    pub async fn commit_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        self.last_commit = Instant::now();
        if offsets.is_empty() {
            return Ok(());
        }
        let results = self
            .client
            .commit_member_offsets(
                &self.config.group_id,
                &self.member_id,
                self.epoch,
                offsets
                    .into_iter()
                    .map(|((topic, partition), offset)| v1::OffsetToCommit {
                        topic,
                        partition,
                        offset,
                        leader_epoch: -1,
                        metadata: String::new(),
                    })
                    .collect(),
            )
            .await?;
        for r in results {
            kavka_proto::conv::check(r.error.as_ref())?;
        }
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit).
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.config.auto_commit {
            self.commit().await?;
        }
        let all: BTreeSet<TopicPartition> = self.assigned.clone();
        self.revoke(&all);
        let leave = if self.config.instance_id.is_some() {
            -2
        } else {
            -1
        };
        self.send_heartbeat(leave).await.map(|_| ())
    }

    async fn send_heartbeat(
        &mut self,
        epoch: i32,
    ) -> Result<v1::ConsumerGroupHeartbeatResponse, ClientError> {
        let req = v1::ConsumerGroupHeartbeatRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: epoch,
            instance_id: self.config.instance_id.clone().unwrap_or_default(),
            rebalance_timeout_ms: self.config.rebalance_timeout_ms,
            subscribed_topics: self.config.topics.clone(),
            subscription_changed: !self.subscription_sent || epoch == 0,
            server_assignor: self.config.assignor.clone(),
            owned: by_topic(&self.assigned),
            owned_reported: self.report_owned,
            client_id: self.config.client_id.clone(),
        };
        self.client.consumer_group_heartbeat(req).await
    }

    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let r = match self.send_heartbeat(self.epoch).await {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kafka_code(),
                    Some(ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId)
                ) =>
            {
                // Fenced or forgotten (a new coordinator, a missed session): the
                // partitions are lost; join again as a new member.
                tracing::info!(member = %self.member_id, error = %e, "rejoining the group");
                let all = self.assigned.clone();
                self.revoke(&all);
                self.epoch = 0;
                self.member_id = uuid::Uuid::new_v4().to_string();
                self.report_owned = true;
                self.send_heartbeat(0).await?
            }
            Err(e) => return Err(e),
        };
        self.subscription_sent = true;
        self.member_id = r.member_id;
        self.epoch = r.member_epoch;
        self.heartbeat_interval = Duration::from_millis(r.heartbeat_interval_ms.max(50) as u64);
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        self.report_owned = false;
        if r.has_assignment {
            let new = parts_of(&r.assignment);
            let revoked: BTreeSet<TopicPartition> =
                self.assigned.difference(&new).cloned().collect();
            let added: BTreeSet<TopicPartition> = new.difference(&self.assigned).cloned().collect();
            if !revoked.is_empty() {
                if self.config.auto_commit {
                    let positions: BTreeMap<TopicPartition, i64> = self
                        .positions()
                        .into_iter()
                        .filter(|(tp, _)| revoked.contains(tp))
                        .collect();
                    self.commit_offsets(positions).await?;
                }
                self.revoke(&revoked);
            }
            if !added.is_empty() {
                self.add(&added).await?;
            }
            // Tell the coordinator at once what this member owns now.
            self.report_owned = true;
            self.next_heartbeat = Instant::now();
        }
        Ok(())
    }

    fn revoke(&mut self, parts: &BTreeSet<TopicPartition>) {
        if parts.is_empty() {
            return;
        }
        for (t, p) in parts {
            if let Some(r) = self.readers.get_mut(t) {
                r.unassign(&[*p]);
            }
            self.assigned.remove(&(t.clone(), *p));
        }
        let list: Vec<TopicPartition> = parts.iter().cloned().collect();
        if let Some(l) = self.listener.as_mut() {
            l.on_revoked(&list);
        }
    }

    /// Starts reading newly assigned partitions from the group's committed offsets.
    async fn add(&mut self, parts: &BTreeSet<TopicPartition>) -> Result<(), ClientError> {
        let mut per_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in parts {
            per_topic.entry(t.clone()).or_default().push(*p);
        }
        for (topic, ps) in per_topic {
            let committed = self
                .client
                .fetch_group_offsets(&self.config.group_id, &topic, ps.clone())
                .await?;
            let mut positions = BTreeMap::new();
            for p in ps {
                let c = committed
                    .iter()
                    .find(|c| c.partition == p)
                    .map_or(-1, |c| c.offset);
                let pos = if c >= 0 {
                    c
                } else {
                    let spec = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => -2,
                        OffsetReset::Latest => -1,
                    };
                    self.client.list_offset(&topic, p, spec).await?.0
                };
                positions.insert(p, pos);
                self.assigned.insert((topic.clone(), p));
            }
            match self.readers.get_mut(&topic) {
                Some(r) => r.add(positions),
                None => {
                    let r = Consumer::assign_at(self.client.clone(), &topic, positions).await?;
                    self.readers.insert(topic.clone(), r);
                }
            }
        }
        let list: Vec<TopicPartition> = parts.iter().cloned().collect();
        if let Some(l) = self.listener.as_mut() {
            l.on_assigned(&list);
        }
        Ok(())
    }
}
