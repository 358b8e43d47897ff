//! `kavka.v1.GroupService`: consumer group administration and committed offsets over
//! gRPC, on the same coordinator the Kafka protocol uses.

use super::auth;
use crate::api::BrokerApi;
use kavka_group::{CommittedOffset, GroupCoordinator, OffsetCommit, consumer, protocol};
use kavka_model::acl::{Operation, Resource};
use kavka_model::{ErrorCode, KafkaError};
use kavka_proto::conv::status;
use kavka_proto::v1::{self, group_service_server::GroupService as Groups};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct GroupService {
    /// A shorthand for `api.groups`.
    groups: Arc<GroupCoordinator>,
    /// The broker API (the metadata image names a coordinator's gRPC endpoint).
    api: BrokerApi,
    /// The local port of the external listener, if any: clients that come through it
    /// are given the coordinator's external address, as Metadata gives them brokers'.
    external_port: Option<u16>,
}

impl GroupService {
    pub fn new(api: BrokerApi) -> Self {
        Self {
            groups: Arc::clone(&api.groups),
            api,
            external_port: None,
        }
    }

    /// Clients connecting to local port `port` are outside the cluster's network.
    pub fn with_external_port(mut self, port: Option<u16>) -> Self {
        self.external_port = port;
        self
    }

    pub fn into_server(self) -> v1::group_service_server::GroupServiceServer<Self> {
        v1::group_service_server::GroupServiceServer::new(self)
    }
}

fn committed(topic: String, partition: i32, o: Option<CommittedOffset>) -> v1::CommittedOffset {
    match o {
        Some(o) => v1::CommittedOffset {
            topic,
            partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata,
            commit_timestamp_ms: o.commit_timestamp_ms,
        },
        None => v1::CommittedOffset {
            topic,
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: -1,
        },
    }
}

fn asked(topics: Vec<v1::TopicPartitions>) -> Option<Vec<(String, Vec<i32>)>> {
    (!topics.is_empty()).then(|| {
        topics
            .into_iter()
            .map(|t| (t.topic, t.partitions))
            .collect()
    })
}

fn results(rs: Vec<kavka_group::PartitionOutcome>) -> Vec<v1::PartitionResult> {
    rs.into_iter()
        .map(|(topic, partition, r)| v1::PartitionResult {
            topic,
            partition,
            error: r.err().map(Into::into),
        })
        .collect()
}

fn to_assignment(parts: Vec<v1::AssignedPartitions>) -> consumer::Assignment {
    parts
        .into_iter()
        .map(|a| (a.topic, a.partitions.into_iter().collect()))
        .collect()
}

#[tonic::async_trait]
impl Groups for GroupService {
    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id, member = %req.get_ref().member_id))]
    async fn consumer_group_heartbeat(
        &self,
        req: Request<v1::ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<v1::ConsumerGroupHeartbeatResponse>, Status> {
        let host = req
            .remote_addr()
            .map(|a| format!("/{}", a.ip()))
            .unwrap_or_default();
        let caller = auth::caller(&req);
        let req = req.into_inner();
        // READ on the group; subscribing names topics, each must be describable.
        auth::require(
            &self.api,
            &caller,
            std::iter::once((Operation::Read, Resource::group(&req.group_id))).chain(
                req.subscribed_topics
                    .iter()
                    .map(|t| (Operation::Describe, Resource::topic(t))),
            ),
        )?;
        let hb = consumer::HeartbeatRequest {
            member_id: req.member_id,
            member_epoch: req.member_epoch,
            instance_id: (!req.instance_id.is_empty()).then_some(req.instance_id),
            rack_id: None,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_topics: req.subscription_changed.then_some(req.subscribed_topics),
            // The gRPC API subscribes by names only.
            subscribed_regex: None,
            server_assignor: (!req.server_assignor.is_empty()).then_some(req.server_assignor),
            owned: req.owned_reported.then(|| to_assignment(req.owned)),
            client_id: req.client_id,
            client_host: host,
        };
        let r = self
            .groups
            .consumer_heartbeat(&req.group_id, hb)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::ConsumerGroupHeartbeatResponse {
            member_id: r.member_id,
            member_epoch: r.member_epoch,
            heartbeat_interval_ms: self.groups.config().consumer_heartbeat_interval_ms,
            has_assignment: r.assignment.is_some(),
            assignment: r
                .assignment
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, ps)| v1::AssignedPartitions {
                    topic,
                    partitions: ps.into_iter().collect(),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id))]
    async fn find_coordinator(
        &self,
        req: Request<v1::FindCoordinatorRequest>,
    ) -> Result<Response<v1::FindCoordinatorResponse>, Status> {
        let caller = auth::caller(&req);
        let external = self.external_port.is_some()
            && req.local_addr().map(|a| a.port()) == self.external_port;
        let group_id = req.into_inner().group_id;
        auth::require(
            &self.api,
            &caller,
            [(Operation::Describe, Resource::group(&group_id))],
        )?;
        let id = self
            .groups
            .find_coordinator(&group_id)
            .await
            .map_err(|e| status(&e))?;
        let image = self.api.image();
        let b = image
            .broker(id)
            .and_then(|b| {
                super::watch::client_endpoint(b, external).map(|e| (e.host.clone(), e.port))
            })
            .ok_or_else(|| {
                status(&KafkaError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    format!("coordinator broker {id} of group '{group_id}' has no gRPC endpoint"),
                ))
            })?;
        Ok(Response::new(v1::FindCoordinatorResponse {
            node_id: id.0,
            host: b.0,
            port: i32::from(b.1),
        }))
    }

    async fn list_groups(
        &self,
        req: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        // DESCRIBE on the cluster lists every group; otherwise the describable ones.
        let caller = auth::caller(&req);
        let all = self
            .api
            .is_authorized(&caller, Operation::Describe, Resource::cluster());
        Ok(Response::new(v1::ListGroupsResponse {
            groups: self
                .groups
                .list_groups()
                .into_iter()
                .filter(|g| {
                    all || self.api.is_authorized(
                        &caller,
                        Operation::Describe,
                        Resource::group(&g.group_id),
                    )
                })
                .map(|g| v1::GroupListing {
                    group_id: g.group_id,
                    protocol_type: g.protocol_type,
                    state: g.state.name().into(),
                })
                .collect(),
            coordinator: self.groups.node_id().0,
        }))
    }

    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id))]
    async fn describe_group(
        &self,
        req: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let caller = auth::caller(&req);
        let group_id = req.into_inner().group_id;
        auth::require(
            &self.api,
            &caller,
            [(Operation::Describe, Resource::group(&group_id))],
        )?;
        let d = self
            .groups
            .describe_group(&group_id)
            .map_err(|e| status(&e))?;
        let offsets = self
            .groups
            .fetch_offsets(&group_id, None)
            .map_err(|e| status(&e))?;
        let consumer = d.protocol_type == protocol::CONSUMER;
        Ok(Response::new(v1::DescribeGroupResponse {
            group_id: d.group_id,
            state: d.state.name().into(),
            protocol_type: d.protocol_type,
            protocol: d.protocol_name,
            generation_id: d.generation_id,
            members: d
                .members
                .into_iter()
                .map(|m| v1::GroupMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id.unwrap_or_default(),
                    client_id: m.client_id,
                    client_host: m.client_host,
                    assignment: if consumer {
                        protocol::assigned_partitions(&m.assignment)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(topic, partitions)| v1::AssignedPartitions { topic, partitions })
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            offsets: offsets
                .into_iter()
                .map(|(t, p, o)| committed(t, p, o))
                .collect(),
            coordinator: self.groups.node_id().0,
        }))
    }

    async fn fetch_offsets(
        &self,
        req: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let caller = auth::caller(&req);
        let req = req.into_inner();
        auth::require(
            &self.api,
            &caller,
            [(Operation::Describe, Resource::group(&req.group_id))],
        )?;
        let offsets = self
            .groups
            .fetch_offsets(&req.group_id, asked(req.topics))
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::FetchOffsetsResponse {
            offsets: offsets
                .into_iter()
                .map(|(t, p, o)| committed(t, p, o))
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id))]
    async fn commit_offsets(
        &self,
        req: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let caller = auth::caller(&req);
        let req = req.into_inner();
        auth::require(
            &self.api,
            &caller,
            std::iter::once((Operation::Read, Resource::group(&req.group_id))).chain(
                req.offsets
                    .iter()
                    .map(|o| (Operation::Read, Resource::topic(&o.topic))),
            ),
        )?;
        let offsets = req
            .offsets
            .into_iter()
            .map(|o| OffsetCommit {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: Some(o.metadata),
            })
            .collect();
        let instance =
            (!req.group_instance_id.is_empty()).then_some(req.group_instance_id.as_str());
        let rs = self
            .groups
            .commit_offsets(
                &req.group_id,
                &req.member_id,
                instance,
                req.generation_id,
                offsets,
            )
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::CommitOffsetsResponse {
            results: results(rs),
        }))
    }

    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id))]
    async fn delete_group(
        &self,
        req: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        auth::require(
            &self.api,
            &auth::caller(&req),
            [(Operation::Delete, Resource::group(&req.get_ref().group_id))],
        )?;
        self.groups
            .delete_group(&req.into_inner().group_id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::DeleteGroupResponse {}))
    }

    #[tracing::instrument(skip_all, fields(group = %req.get_ref().group_id))]
    async fn delete_offsets(
        &self,
        req: Request<v1::DeleteOffsetsRequest>,
    ) -> Result<Response<v1::DeleteOffsetsResponse>, Status> {
        let caller = auth::caller(&req);
        let req = req.into_inner();
        auth::require(
            &self.api,
            &caller,
            std::iter::once((Operation::Delete, Resource::group(&req.group_id))).chain(
                req.topics
                    .iter()
                    .map(|t| (Operation::Read, Resource::topic(&t.topic))),
            ),
        )?;
        let partitions = req
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic;
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect();
        let rs = self
            .groups
            .delete_offsets(&req.group_id, partitions)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::DeleteOffsetsResponse {
            results: results(rs),
        }))
    }
}
