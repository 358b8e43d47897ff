//! Consumer groups over the Kafka protocol: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
//! DeleteGroups and OffsetDelete, mapped onto the broker's group coordinator.
//!
//! Invariants: every request gets an answer shaped for its version (one coordinator
//! key before FindCoordinator v4, a list after; one group before OffsetFetch v8, a list
//! after); a group-level error is reported on every partition it concerns, as Kafka's
//! clients expect.

use super::{Ctx, error_parts, str_bytes};
use crate::{Broker, endpoint_name};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kavka_group::{self as group, Joined, OffsetCommit};
use kavka_model::acl::{Operation, Resource};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::BTreeMap;

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn opt_bytes(s: Option<String>) -> Option<StrBytes> {
    s.map(str_bytes)
}

/// The coordinator of `key` as reached through `listener`.
async fn coordinator(
    broker: &Broker,
    listener: &str,
    key: &str,
) -> Result<(i32, String, i32), KafkaError> {
    let id = broker.groups.find_coordinator(key).await?;
    let image = broker.api.image();
    image
        .broker(id)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(&endpoint_name(listener)))
        .map(|e| (id.0, e.host.clone(), i32::from(e.port)))
        .ok_or_else(|| {
            KafkaError::new(
                ErrorCode::CoordinatorNotAvailable,
                format!("coordinator broker {id} of group '{key}' is not reachable on listener {listener}"),
            )
        })
}

pub(crate) async fn find_coordinator(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if ctx.version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let r = if req.key_type != 0 {
            Err(KafkaError::new(
                ErrorCode::CoordinatorNotAvailable,
                "only group coordinators exist here (transactions are not supported)",
            ))
        } else if let Err(e) = ctx.check(broker, Operation::Describe, Resource::group(&key)) {
            Err(e)
        } else {
            coordinator(broker, ctx.listener, &key).await
        };
        let c = Coordinator::default().with_key(str_bytes(key));
        found.push(match r {
            Ok((id, host, port)) => c
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port),
            Err(e) => {
                let (code, msg) = error_parts(&e);
                c.with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(msg)
            }
        });
    }
    if ctx.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(found);
    }
    let c = found.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message.filter(|_| ctx.version >= 1))
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

pub(crate) async fn join_group(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let jr = group::JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        client_id: ctx.client_id.to_string(),
        client_host: ctx.client_host.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if ctx.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let failed = |code: i16, member: StrBytes| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_protocol_name(Some(str_bytes("")))
            .with_leader(str_bytes(""))
            .with_member_id(member)
    };
    if let Err(e) = ctx.check(broker, Operation::Read, Resource::group(&jr.group_id)) {
        return failed(e.code.code(), req.member_id);
    }
    match broker.groups.join(jr).await {
        Ok(Joined::MemberIdRequired(id)) => {
            failed(ErrorCode::MemberIdRequired.code(), str_bytes(id))
        }
        // Fields a version lacks stay at their defaults (the codec refuses others).
        Ok(Joined::Done(r)) => JoinGroupResponse::default()
            .with_generation_id(r.generation_id)
            .with_protocol_type(opt_bytes(r.protocol_type).filter(|_| ctx.version >= 7))
            .with_protocol_name(Some(str_bytes(r.protocol_name.unwrap_or_default())))
            .with_leader(str_bytes(r.leader))
            .with_skip_assignment(r.skip_assignment && ctx.version >= 9)
            .with_member_id(str_bytes(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_group_instance_id(
                                opt_bytes(m.group_instance_id).filter(|_| ctx.version >= 5),
                            )
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(e) => failed(e.code.code(), req.member_id),
    }
}

pub(crate) async fn sync_group(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let v5 = ctx.version >= 5;
    if let Err(e) = ctx.check(broker, Operation::Read, Resource::group(&req.group_id.0)) {
        return SyncGroupResponse::default().with_error_code(e.code.code());
    }
    let sr = group::SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match broker.groups.sync(sr).await {
        Ok(r) => SyncGroupResponse::default()
            .with_protocol_type(opt_bytes(r.protocol_type).filter(|_| v5))
            .with_protocol_name(opt_bytes(r.protocol_name).filter(|_| v5))
            .with_assignment(r.assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(e.code.code()),
    }
}

pub(crate) fn heartbeat(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let r = ctx
        .check(broker, Operation::Read, Resource::group(&req.group_id.0))
        .and_then(|()| {
            broker.groups.heartbeat(
                req.group_id.0.as_str(),
                req.member_id.as_str(),
                req.group_instance_id.as_deref(),
                req.generation_id,
            )
        });
    HeartbeatResponse::default().with_error_code(r.err().map_or(0, |e| e.code.code()))
}

pub(crate) fn leave_group(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let left = ctx
        .check(broker, Operation::Read, Resource::group(&req.group_id.0))
        .and_then(|()| broker.groups.leave(req.group_id.0.as_str(), members));
    match left {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code.code()),
        Ok(results) if ctx.version < 3 => LeaveGroupResponse::default().with_error_code(
            results
                .first()
                .and_then(|(_, _, r)| r.as_ref().err())
                .map_or(0, |e| e.code.code()),
        ),
        Ok(results) => LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|(m, i, r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m))
                        .with_group_instance_id(opt_bytes(i))
                        .with_error_code(r.err().map_or(0, |e| e.code.code()))
                })
                .collect(),
        ),
    }
}

pub(crate) async fn offset_commit(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_allowed = ctx.check(broker, Operation::Read, Resource::group(&req.group_id.0));
    // Partitions of topics the caller may not read are answered here, in their place.
    let readable = |topic: &str| ctx.may(broker, Operation::Read, Resource::topic(topic));
    let offsets: Vec<OffsetCommit> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: opt(&p.committed_metadata),
            })
        })
        .collect();
    let (allowed, denied): (Vec<OffsetCommit>, Vec<OffsetCommit>) =
        offsets.into_iter().partition(|o| readable(&o.topic));
    let committed = match group_allowed {
        Err(e) => Err(e),
        Ok(()) if allowed.is_empty() => Ok(Vec::new()),
        Ok(()) => {
            broker
                .groups
                .commit_offsets(
                    req.group_id.0.as_str(),
                    req.member_id.as_str(),
                    req.group_instance_id.as_deref(),
                    req.generation_id_or_member_epoch,
                    allowed.clone(),
                )
                .await
        }
    };
    let mut results: Vec<(String, i32, i16)> = match committed {
        Ok(rs) => rs
            .into_iter()
            .map(|(t, p, r)| (t, p, r.err().map_or(0, |e| e.code.code())))
            .collect(),
        Err(e) => allowed
            .into_iter()
            .map(|o| (o.topic, o.partition, e.code.code()))
            .collect(),
    };
    let topic_denied = ErrorCode::TopicAuthorizationFailed.code();
    results.extend(
        denied
            .into_iter()
            .map(|o| (o.topic, o.partition, topic_denied)),
    );
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (t, p, code) in results {
        let part = OffsetCommitResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(code);
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.partitions.push(part),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// A committed offset as fetched, or the error code of its partition.
type FetchedOffset = Result<Option<group::CommittedOffset>, i16>;
type Fetched = Result<Vec<(String, i32, FetchedOffset)>, KafkaError>;

/// The committed offsets of one group, if the caller may describe it: of the topics it
/// named, those it may not describe answer TOPIC_AUTHORIZATION_FAILED; of all topics
/// (none named), those are left out (as Kafka does).
fn fetch_one(
    broker: &Broker,
    ctx: &Ctx<'_>,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Fetched {
    ctx.check(broker, Operation::Describe, Resource::group(group_id))?;
    let named = topics.is_some();
    let rows = broker.groups.fetch_offsets(group_id, topics)?;
    let denied = ErrorCode::TopicAuthorizationFailed.code();
    Ok(rows
        .into_iter()
        .filter_map(|(t, p, o)| {
            if ctx.may(broker, Operation::Describe, Resource::topic(&t)) {
                Some((t, p, Ok(o)))
            } else {
                named.then_some((t, p, Err(denied)))
            }
        })
        .collect())
}

fn by_topic(
    rows: Vec<(String, i32, FetchedOffset)>,
) -> BTreeMap<String, Vec<(i32, FetchedOffset)>> {
    let mut m: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (t, p, o) in rows {
        m.entry(t).or_default().push((p, o));
    }
    m
}

pub(crate) fn offset_fetch(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.version < 8 {
        let topics = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let epochs = ctx.version >= 5;
        return match fetch_one(broker, ctx, req.group_id.0.as_str(), topics) {
            // v1 has no group-level error: the client sees no offsets and asks again.
            Err(_) if ctx.version < 2 => OffsetFetchResponse::default(),
            Err(e) => OffsetFetchResponse::default().with_error_code(e.code.code()),
            Ok(rows) => OffsetFetchResponse::default().with_topics(
                by_topic(rows)
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, o)| {
                                        let (offset, epoch, meta, code) = parts(o);
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(if epochs {
                                                epoch
                                            } else {
                                                -1
                                            })
                                            .with_metadata(Some(str_bytes(meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        };
    }
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            match fetch_one(broker, ctx, g.group_id.0.as_str(), topics) {
                Err(e) => out.with_error_code(e.code.code()),
                Ok(rows) => out.with_topics(
                    by_topic(rows)
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            let (offset, epoch, meta, code) = parts(o);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(code)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(str_bytes(meta)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// (offset, leader epoch, metadata, error code) of one partition's answer.
fn parts(o: FetchedOffset) -> (i64, i32, String, i16) {
    match o {
        Ok(Some(o)) => (o.offset, o.leader_epoch, o.metadata, 0),
        Ok(None) => (-1, -1, String::new(), 0),
        Err(code) => (-1, -1, String::new(), code),
    }
}

pub(crate) fn list_groups(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let (state_field, type_field) = (ctx.version >= 4, ctx.version >= 5);
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    // DESCRIBE on the cluster lists every group; otherwise those the caller may describe.
    let all = ctx.may(broker, Operation::Describe, Resource::cluster());
    let groups = broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| all || ctx.may(broker, Operation::Describe, Resource::group(&g.group_id)))
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(if state_field { g.state.name() } else { "" }))
                .with_group_type(str_bytes(if type_field { g.group_type } else { "" }))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) fn describe_groups(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = ctx.version;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            match ctx
                .check(broker, Operation::Describe, Resource::group(&id.0))
                .and_then(|()| broker.groups.describe_group(id.0.as_str()))
            {
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    DescribedGroup::default()
                        .with_group_id(id)
                        .with_error_code(code)
                        .with_error_message(msg.filter(|_| v >= 6))
                        .with_group_state(str_bytes(""))
                        .with_authorized_operations(i32::MIN)
                }
                Ok(d) => DescribedGroup::default()
                    .with_group_id(id)
                    .with_group_state(str_bytes(d.state.name()))
                    .with_protocol_type(str_bytes(d.protocol_type))
                    .with_protocol_data(str_bytes(d.protocol_name))
                    .with_authorized_operations(i32::MIN)
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(
                                        opt_bytes(m.group_instance_id).filter(|_| v >= 4),
                                    )
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete_groups(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let r = match ctx.check(broker, Operation::Delete, Resource::group(&id.0)) {
            Ok(()) => broker.groups.delete_group(id.0.as_str()).await,
            Err(e) => Err(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(r.err().map_or(0, |e| e.code.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub(crate) async fn offset_delete(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if let Err(e) = ctx.check(broker, Operation::Delete, Resource::group(&req.group_id.0)) {
        return OffsetDeleteResponse::default().with_error_code(e.code.code());
    }
    let readable = |topic: &str| ctx.may(broker, Operation::Read, Resource::topic(topic));
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let (allowed, denied): (Vec<_>, Vec<_>) =
        partitions.into_iter().partition(|(t, _)| readable(t));
    let deleted = if allowed.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .groups
            .delete_offsets(req.group_id.0.as_str(), allowed)
            .await
    };
    match deleted {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code.code()),
        Ok(mut results) => {
            results.extend(denied.into_iter().map(|(t, p)| {
                let e = KafkaError::new(
                    ErrorCode::TopicAuthorizationFailed,
                    format!("{} may not read topic '{t}'", ctx.caller.principal),
                );
                (t, p, Err(e))
            }));
            let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
            for (t, p, r) in results {
                let part = OffsetDeleteResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(r.err().map_or(0, |e| e.code.code()));
                match topics.last_mut() {
                    Some(last) if last.name.0.as_str() == t => last.partitions.push(part),
                    _ => topics.push(
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(str_bytes(t)))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}

/// Topic ids ↔ names, from this broker's image.
fn topic_name(broker: &Broker, id: uuid::Uuid) -> Option<String> {
    broker
        .api
        .image()
        .topics()
        .find(|t| t.id.0 == id)
        .map(|t| t.name.to_string())
}

fn topic_id(broker: &Broker, name: &str) -> uuid::Uuid {
    kavka_model::TopicName::new(name)
        .ok()
        .and_then(|n| broker.api.image().topic_by_name(&n).map(|t| t.id.0))
        .unwrap_or_default()
}

pub(crate) async fn consumer_group_heartbeat(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    use kafka_protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions,
    };
    let allowed = ctx
        .check(broker, Operation::Read, Resource::group(&req.group_id.0))
        .and_then(|()| {
            // Subscribing names topics: each must be describable (Kafka's rule).
            req.subscribed_topic_names
                .iter()
                .flatten()
                .try_for_each(|t| {
                    ctx.check(broker, Operation::Describe, Resource::topic(t.0.as_str()))
                })
        });
    if let Err(e) = allowed {
        let (code, msg) = error_parts(&e);
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(msg)
            .with_member_epoch(-1);
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                topic_name(broker, tp.topic_id)
                    .map(|n| (n, tp.partitions.iter().copied().collect()))
            })
            .collect()
    });
    let hb = group::consumer::HeartbeatRequest {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt(&req.instance_id),
        rack_id: opt(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        // Null: unchanged; empty: cleared (the state machine tells them apart).
        subscribed_regex: opt(&req.subscribed_topic_regex),
        server_assignor: opt(&req.server_assignor),
        owned,
        client_id: ctx.client_id.to_string(),
        client_host: ctx.client_host.to_string(),
    };
    match broker
        .groups
        .consumer_heartbeat(req.group_id.0.as_str(), hb)
        .await
    {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(broker.groups.config().consumer_heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(topic_id(broker, &t))
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => {
            let (code, msg) = error_parts(&e);
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_member_epoch(-1)
        }
    }
}

pub(crate) fn consumer_group_describe(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use kafka_protocol::messages::consumer_group_describe_response::{
        Assignment, DescribedGroup, Member, TopicPartitions,
    };
    let to_assignment = |a: &group::consumer::Assignment| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(topic_id(broker, t))
                        .with_topic_name(TopicName(str_bytes(t.clone())))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let out = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Err(e) = ctx.check(broker, Operation::Describe, Resource::group(&id.0)) {
                let (code, msg) = error_parts(&e);
                return out.with_error_code(code).with_error_message(msg);
            }
            let state = broker
                .groups
                .describe_group(id.0.as_str())
                .map(|d| d.state.name());
            match (broker.groups.consumer_describe(id.0.as_str()), state) {
                (Err(e), _) | (_, Err(e)) => {
                    let (code, msg) = error_parts(&e);
                    out.with_error_code(code).with_error_message(msg)
                }
                (Ok(None), _) => out
                    .with_error_code(ErrorCode::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "group '{}' is not a consumer-protocol group",
                        id.0.as_str()
                    )))),
                (Ok(Some(c)), Ok(state)) => out
                    .with_group_state(str_bytes(state))
                    .with_group_epoch(c.group_epoch)
                    .with_assignment_epoch(c.assignment_epoch)
                    .with_assignor_name(str_bytes(c.assignor.clone()))
                    .with_members(
                        c.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.member_id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(str_bytes))
                                    .with_rack_id(m.rack_id.clone().map(str_bytes))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(str_bytes(m.client_id.clone()))
                                    .with_client_host(str_bytes(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .iter()
                                            .map(|t| TopicName(str_bytes(t.clone())))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_regex
                                            .as_ref()
                                            .map(|r| str_bytes(r.as_str().to_string())),
                                    )
                                    .with_assignment(to_assignment(&m.assigned))
                                    .with_target_assignment(to_assignment(
                                        c.target.get(&m.member_id).unwrap_or(&Default::default()),
                                    ))
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
