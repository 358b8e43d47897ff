//! Dispatch of decoded requests to the API handlers, and the answers for APIs this
//! broker does not serve.

mod acls;
mod admin;
mod configs;
pub(crate) mod data;
mod elect;
mod groups;
mod logs;
mod metadata;
mod producers;
mod quorum;
mod quotas;
mod reassign;
mod users;

use crate::Broker;
use crate::versions::SUPPORTED;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kavka_broker::quotas::QuotaClient;
use kavka_model::acl::{Caller, Operation, Resource};
use kavka_model::quota::QuotaKey;
use kavka_model::{ErrorCode, KafkaError};
use std::sync::atomic::{AtomicU64, Ordering};

/// An answer ready now, or one that waits (an acks=all produce whose records are
/// appended waits for the followers): the connection reads its next request meanwhile.
pub(crate) enum Staged<N, L> {
    Now(N),
    Later(std::pin::Pin<Box<dyn Future<Output = L> + Send>>),
}

/// Who sent a request, and at which version: what some answers depend on.
pub(crate) struct Ctx<'a> {
    /// The Kafka listener the client came in on.
    pub listener: &'a str,
    pub version: i16,
    pub client_id: &'a str,
    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub client_host: &'a str,
    /// Who the client authenticated as (`User:ANONYMOUS` if it did not), and its IP:
    /// what every authorization check asks about.
    pub caller: &'a Caller,
    /// How long the client must now wait, in ms (a quota's throttle time): the handler
    /// sets it, the connection mutes itself for that long after answering.
    pub throttle_ms: &'a AtomicU64,
}

impl Ctx<'_> {
    /// Whether this request's caller may do `operation` to `resource`.
    pub(crate) fn may(
        &self,
        broker: &Broker,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool {
        broker.api.is_authorized(self.caller, operation, resource)
    }

    /// [`Self::may`] as a result carrying Kafka's error for the resource.
    pub(crate) fn check(
        &self,
        broker: &Broker,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Result<(), KafkaError> {
        broker.api.authorize(self.caller, operation, resource)
    }

    /// Records `bytes` against the caller's `key` quota (`unrecord_if_throttled`: a
    /// throttled fetch is answered without its records); the throttle time for the
    /// response, also kept for the connection to mute itself by.
    pub(crate) fn throttle(
        &self,
        broker: &Broker,
        key: QuotaKey,
        bytes: u64,
        unrecord_if_throttled: bool,
    ) -> i32 {
        if self.caller.is_cluster_node() {
            return 0;
        }
        let client = QuotaClient {
            user: self.caller.principal.name().to_string(),
            client_id: self.client_id.to_string(),
        };
        let wait = broker
            .api
            .throttle(key, &client, bytes, unrecord_if_throttled);
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.throttle_ms.fetch_max(ms, Ordering::Relaxed);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// Whether the caller may create topic `name`: CREATE on the cluster or on the topic
    /// (Kafka's rule for CreateTopics and auto-creation).
    pub(crate) fn may_create_topic(&self, broker: &Broker, name: &str) -> bool {
        self.may(broker, Operation::Create, Resource::cluster())
            || self.may(broker, Operation::Create, Resource::topic(name))
    }
}

/// Answers one request; `None` for a request Kafka does not answer (acks=0 produce).
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &Ctx<'_>,
    request: RequestKind,
) -> Option<ResponseKind> {
    let listener = ctx.listener;
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(ErrorCode::None)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::metadata(broker, ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(broker, listener, r))
        }
        RequestKind::Produce(r) => {
            return data::produce(broker, ctx, r)
                .await
                .map(ResponseKind::Produce);
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(data::fetch(broker, ctx, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(data::list_offsets(broker, ctx, r).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(data::offset_for_leader_epoch(broker, ctx, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(broker, ctx, r).await)
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(broker, ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(broker, ctx, r).await,
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, ctx, r).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(broker, ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, ctx, r).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, ctx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(broker, ctx, r)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, ctx, r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(broker, ctx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, ctx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, ctx, r).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, ctx, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            groups::consumer_group_heartbeat(broker, ctx, r).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(groups::consumer_group_describe(broker, ctx, r))
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create_acls(broker, ctx, r).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe_acls(broker, ctx, r))
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete_acls(broker, ctx, r).await)
        }
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            users::alter_user_scram_credentials(broker, ctx, r).await,
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            users::describe_user_scram_credentials(broker, ctx, r),
        ),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe_client_quotas(broker, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter_client_quotas(broker, ctx, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(logs::describe_log_dirs(broker, ctx, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(logs::describe_producers(broker, ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(logs::delete_records(broker, ctx, r).await)
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            ResponseKind::AlterReplicaLogDirs(logs::alter_replica_log_dirs(broker, ctx, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect::elect_leaders(broker, ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            reassign::alter_partition_reassignments(broker, ctx, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            reassign::list_partition_reassignments(broker, ctx, r),
        ),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producers::init_producer_id(broker, ctx, r).await)
        }
        RequestKind::AddRaftVoter(r) => {
            ResponseKind::AddRaftVoter(quorum::add_raft_voter(broker, ctx, r).await)
        }
        RequestKind::RemoveRaftVoter(r) => {
            ResponseKind::RemoveRaftVoter(quorum::remove_raft_voter(broker, ctx, r).await)
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(broker, ctx, r).await)
        }
        other => unsupported(other)?,
    })
}

/// The answer to a request this broker does not serve at this version, where the
/// response has an error code to carry UNSUPPORTED_VERSION; `None` otherwise (the
/// connection is then closed, as Kafka does).
pub(crate) fn unsupported(request: RequestKind) -> Option<ResponseKind> {
    use kafka_protocol::messages::*;
    let code = ErrorCode::UnsupportedVersion.code();
    Some(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions(ErrorCode::UnsupportedVersion))
        }
        RequestKind::Produce(r) => ResponseKind::Produce(data::produce_error(&r, code)),
        RequestKind::Fetch(_) => {
            ResponseKind::Fetch(FetchResponse::default().with_error_code(code))
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_coordinators(
                    r.coordinator_keys
                        .into_iter()
                        .map(|k| {
                            find_coordinator_response::Coordinator::default()
                                .with_key(k)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
        ),
        RequestKind::JoinGroup(_) => {
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(code))
        }
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        RequestKind::ListGroups(_) => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        RequestKind::InitProducerId(_) => {
            ResponseKind::InitProducerId(InitProducerIdResponse::default().with_error_code(code))
        }
        RequestKind::SaslHandshake(_) => {
            ResponseKind::SaslHandshake(SaslHandshakeResponse::default().with_error_code(code))
        }
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::DescribeCluster(_) => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default().with_error_code(code))
        }
        _ => return None,
    })
}

/// ApiVersions: exactly the versions in [`SUPPORTED`].
pub(crate) fn api_versions(code: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code.code())
        .with_finalized_features_epoch(-1)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// An error's code and message, as Kafka responses carry them.
pub(crate) fn error_parts(e: &KafkaError) -> (i16, Option<StrBytes>) {
    (e.code.code(), Some(str_bytes(e.message.clone())))
}
