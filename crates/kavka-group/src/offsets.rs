//! Committed offsets and group administration: OffsetCommit, OffsetFetch, OffsetDelete,
//! ListGroups, DescribeGroups, DeleteGroups, and the writes to `__consumer_offsets`
//! behind them.

use super::classic::{Group, GroupState};
use super::coordinator::Shard;
use super::store::{GroupValue, Key, OffsetValue};
use super::{
    CommittedOffset, GroupCoordinator, GroupDescription, GroupListing, MemberDescription,
    OFFSETS_TOPIC, OffsetCommit, PartitionOutcome, WRITE_TIMEOUT, err, now_ms, protocol,
};
use bytes::Bytes;
use kavka_model::{ErrorCode, KafkaError, PartitionId};
use std::sync::Arc;

/// A committed offset per (topic, partition); `None` where nothing is committed.
pub type FetchedOffsets = Vec<(String, i32, Option<CommittedOffset>)>;

impl GroupCoordinator {
    /// Appends records to `partition` of `__consumer_offsets` with acks=all, mapping
    /// failures to the coordinator errors clients act on.
    pub(super) async fn append(
        &self,
        partition: PartitionId,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), KafkaError> {
        self.log
            .append(partition, records, now_ms(), WRITE_TIMEOUT)
            .await
            .map_err(coordinator_error)
    }

    /// Writes `key` with the value `value` makes of the group's current state (a
    /// tombstone when it makes none), serialised with the partition's other writes so
    /// that the latest state is the one the log ends with.
    async fn persist(
        &self,
        group_id: &str,
        partition: PartitionId,
        key: Key,
        value: impl FnOnce(&Group) -> Result<Option<Bytes>, KafkaError>,
    ) -> Result<(), KafkaError> {
        let writer = self.writer(partition);
        let _serial = writer.lock().await;
        let value = match self.with_group(group_id, false, |g| value(g))? {
            Some((_, v)) => v?,
            None => None,
        };
        self.append(partition, vec![(key.encode(), value)]).await
    }

    /// Writes the group's classic membership (or a tombstone once it is gone).
    pub(super) async fn persist_group(
        &self,
        group_id: &str,
        partition: PartitionId,
    ) -> Result<(), KafkaError> {
        self.persist(group_id, partition, Key::Group(group_id.to_string()), |g| {
            Ok(group_value(g).map(|v| v.encode()))
        })
        .await
    }

    /// Writes a KIP-848 group's state (or a tombstone once it has none).
    pub(super) async fn persist_consumer_group(
        &self,
        group_id: &str,
        partition: PartitionId,
    ) -> Result<(), KafkaError> {
        self.persist(
            group_id,
            partition,
            Key::ConsumerGroup(group_id.to_string()),
            |g| {
                let Some(c) = g.consumer.as_ref().filter(|_| g.state != GroupState::Dead) else {
                    return Ok(None);
                };
                serde_json::to_vec(&c.stored())
                    .map(|v| Some(Bytes::from(v)))
                    .map_err(|e| {
                        err(
                            ErrorCode::UnknownServerError,
                            format!("cannot encode group '{}': {e}", g.group_id),
                        )
                    })
            },
        )
        .await
    }

    /// OffsetCommit: per partition, NONE or why not; a group-level error (unknown
    /// member, illegal generation, not the coordinator) fails every partition.
    #[tracing::instrument(skip(self, offsets), fields(partitions = offsets.len()))]
    pub async fn commit_offsets(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        // A simple commit (generation -1) may name a group that does not exist yet.
        let create = generation_id < 0;
        let (partition, checked) = self
            .with_group(group_id, create, |g| {
                g.check_commit(member_id, instance, generation_id)
            })?
            .ok_or_else(|| {
                err(
                    ErrorCode::UnknownMemberId,
                    format!("group '{group_id}' has no member '{member_id}'"),
                )
            })?;
        checked?;
        let metadata = self.log.metadata();
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        let ts = now_ms();
        for o in offsets {
            let known = metadata
                .leader(&o.topic, PartitionId(o.partition))
                .is_some();
            let metadata = o.metadata.unwrap_or_default();
            let r = if !known {
                Err(err(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("{}-{} does not exist", o.topic, o.partition),
                ))
            } else if metadata.len() > self.config.offset_metadata_max_bytes {
                Err(err(
                    ErrorCode::OffsetMetadataTooLarge,
                    format!(
                        "offset metadata of {} bytes is larger than offset.metadata.max.bytes {}",
                        metadata.len(),
                        self.config.offset_metadata_max_bytes
                    ),
                ))
            } else if o.offset < 0 {
                Err(err(
                    ErrorCode::InvalidRequest,
                    format!(
                        "cannot commit offset {} for {}-{}",
                        o.offset, o.topic, o.partition
                    ),
                ))
            } else {
                let committed = CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: ts,
                };
                records.push((
                    Key::offset(group_id, &o.topic, o.partition).encode(),
                    Some(offset_value(&committed).encode()),
                ));
                accepted.push(((o.topic.clone(), o.partition), committed));
                Ok(())
            };
            results.push((o.topic, o.partition, r));
        }
        if records.is_empty() {
            return Ok(results);
        }
        let writer = self.writer(partition);
        let _serial = writer.lock().await;
        if let Err(e) = self.append(partition, records).await {
            for r in &mut results {
                if r.2.is_ok() {
                    r.2 = Err(e.clone());
                }
            }
            return Ok(results);
        }
        // Visible once written (a deleted group comes back holding them, as the log does).
        let _ = self.with_group(group_id, true, |g| g.offsets.extend(accepted));
        Ok(results)
    }

    /// OffsetFetch: the asked partitions, or every committed one when `topics` is None.
    #[tracing::instrument(skip(self, topics))]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, KafkaError> {
        let found = self.with_group(group_id, false, |g| match &topics {
            None => g
                .offsets
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, Some(o.clone())))
                .collect::<Vec<_>>(),
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| {
                    ps.iter()
                        .map(|p| (t.clone(), *p, g.offsets.get(&(t.clone(), *p)).cloned()))
                })
                .collect(),
        })?;
        Ok(match found {
            Some((_, r)) => r,
            None => topics
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p, None)))
                .collect(),
        })
    }

    /// ListGroups: the groups this broker coordinates, optionally by state and type.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let shards = self.shards();
        let mut out: Vec<GroupListing> = shards
            .values()
            .filter_map(|s| match s {
                Shard::Active { groups, .. } => Some(groups.values()),
                Shard::Loading(_) => None,
            })
            .flatten()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: match g.group_type() {
                    "consumer" => protocol::CONSUMER.to_string(),
                    _ => g.protocol_type.clone().unwrap_or_default(),
                },
                state: g.current_state(),
                group_type: g.group_type(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups for one group; an unknown group is reported `Dead`, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, KafkaError> {
        let found = self.with_group(group_id, false, |g| {
            if let Some(c) = g.consumer.as_ref().filter(|_| g.members.is_empty()) {
                return GroupDescription {
                    group_id: g.group_id.clone(),
                    state: g.current_state(),
                    protocol_type: protocol::CONSUMER.to_string(),
                    protocol_name: c.assignor.clone(),
                    generation_id: c.group_epoch,
                    members: c
                        .members
                        .values()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.clone(),
                            group_instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: Bytes::new(),
                            assignment: protocol::encode_assignment(
                                m.assigned
                                    .iter()
                                    .map(|(t, ps)| (t.as_str(), ps.iter().copied().collect())),
                            ),
                        })
                        .collect(),
                };
            }
            let protocol = g.protocol_name.clone().unwrap_or_default();
            GroupDescription {
                group_id: g.group_id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol_name: protocol.clone(),
                generation_id: g.generation_id,
                members: g
                    .members
                    .values()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: m.metadata(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }
        })?;
        Ok(found.map(|(_, d)| d).unwrap_or_else(|| GroupDescription {
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            generation_id: -1,
            members: Vec::new(),
        }))
    }

    /// DeleteGroups: an empty group's membership and offsets are tombstoned.
    #[tracing::instrument(skip(self))]
    pub async fn delete_group(&self, group_id: &str) -> Result<(), KafkaError> {
        let (partition, keys) = self
            .with_group(group_id, false, |g| {
                g.check_deletable()?;
                g.state = GroupState::Dead;
                let mut keys = vec![Key::Group(g.group_id.clone()).encode()];
                if g.consumer.is_some() {
                    keys.push(Key::ConsumerGroup(g.group_id.clone()).encode());
                }
                keys.extend(
                    g.offsets
                        .keys()
                        .map(|(t, p)| Key::offset(&g.group_id, t, *p).encode()),
                );
                Ok::<_, KafkaError>(keys)
            })?
            .ok_or_else(|| group_not_found(group_id))?;
        let keys = keys?;
        let writer = self.writer(partition);
        let _serial = writer.lock().await;
        let written = self
            .append(partition, keys.into_iter().map(|k| (k, None)).collect())
            .await;
        let mut shards = self.shards();
        if let Some(Shard::Active { groups, .. }) = shards.get_mut(&partition) {
            match &written {
                Ok(()) => {
                    groups.remove(group_id);
                }
                Err(_) => {
                    if let Some(g) = groups.get_mut(group_id) {
                        g.state = GroupState::Empty;
                    }
                }
            }
        }
        written
    }

    /// OffsetDelete: removes committed offsets of partitions the group no longer
    /// consumes (GROUP_SUBSCRIBED_TO_TOPIC for a topic an active member subscribes to).
    #[tracing::instrument(skip(self, partitions), fields(partitions = partitions.len()))]
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        let (partition, (results, keys)) = self
            .with_group(group_id, false, |g| {
                let subscribed = subscribed_topics(g);
                let mut results = Vec::new();
                let mut keys = Vec::new();
                for (t, p) in &partitions {
                    if subscribed.iter().any(|s| s == t) {
                        results.push((
                            t.clone(),
                            *p,
                            Err(err(
                                ErrorCode::GroupSubscribedToTopic,
                                format!("group '{group_id}' has members subscribed to '{t}'"),
                            )),
                        ));
                        continue;
                    }
                    if g.offsets.contains_key(&(t.clone(), *p)) {
                        keys.push((t.clone(), *p));
                    }
                    results.push((t.clone(), *p, Ok(())));
                }
                (results, keys)
            })?
            .ok_or_else(|| group_not_found(group_id))?;
        if keys.is_empty() {
            return Ok(results);
        }
        let writer = self.writer(partition);
        let _serial = writer.lock().await;
        let records = keys
            .iter()
            .map(|(t, p)| {
                let k = Key::offset(group_id, t, *p);
                (k.encode(), None)
            })
            .collect();
        self.append(partition, records).await?;
        let _ = self.with_group(group_id, false, |g| {
            for k in &keys {
                g.offsets.remove(k);
            }
        });
        Ok(results)
    }
}

fn group_not_found(group_id: &str) -> KafkaError {
    err(
        ErrorCode::GroupIdNotFound,
        format!("group '{group_id}' does not exist"),
    )
}

/// Topics the group's consumer-protocol members subscribe to.
fn subscribed_topics(g: &Group) -> Vec<String> {
    if g.protocol_type.as_deref() != Some(protocol::CONSUMER) {
        return Vec::new();
    }
    let protocol = g.protocol_name.clone().unwrap_or_default();
    let mut topics: Vec<String> = g
        .members
        .values()
        .filter_map(|m| protocol::subscribed_topics(&m.metadata(&protocol)))
        .flatten()
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

fn group_value(g: &Group) -> Option<GroupValue> {
    if g.state == GroupState::Dead {
        return None;
    }
    Some(GroupValue {
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        generation_id: g.generation_id,
        protocol_name: g.protocol_name.clone(),
        leader: g.leader.clone(),
        state_timestamp_ms: g.state_timestamp_ms,
        members: g.stored_members(),
    })
}

pub(super) fn offset_value(o: &CommittedOffset) -> OffsetValue {
    OffsetValue {
        offset: o.offset,
        leader_epoch: o.leader_epoch,
        metadata: o.metadata.clone(),
        commit_timestamp_ms: o.commit_timestamp_ms,
    }
}

/// The error a client of the coordinator acts on for a failed write: move to the new
/// coordinator, or retry here.
fn coordinator_error(e: KafkaError) -> KafkaError {
    let code = match e.code {
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::UnknownTopicOrPartition
        | ErrorCode::FencedLeaderEpoch
        | ErrorCode::LeaderNotAvailable => ErrorCode::NotCoordinator,
        ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        other => other,
    };
    KafkaError::new(
        code,
        format!("cannot write to {OFFSETS_TOPIC}: {}", e.message),
    )
}
