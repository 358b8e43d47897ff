//! Consumer group calls: find a group's coordinator (remembered per group) and call it, retrying
//! while the coordinator moves or loads (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE) for a bounded time.

use crate::connection::{Client, bounded};
use crate::credentials::Channel;
use crate::error::ClientError;
use kavka_model::ErrorCode;
use kavka_proto::v1::{self, group_service_client::GroupServiceClient};
use std::time::{Duration, Instant};

/// How long a group call keeps retrying a moving coordinator.
const COORDINATOR_RETRY: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn coordinator_moving(e: &ClientError) -> bool {
    matches!(
        e.kafka_code(),
        Some(
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NetworkException
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::RequestTimedOut
        )
    )
}

fn group_client(channel: Channel) -> GroupServiceClient<Channel> {
    GroupServiceClient::new(channel)
}

impl Client {
    fn groups_here(&self) -> GroupServiceClient<Channel> {
        group_client(self.channel())
    }

    /// The coordinator of `group_id`: its broker id and a client for it.
    pub async fn find_coordinator(
        &mut self,
        group_id: &str,
    ) -> Result<(i32, GroupServiceClient<Channel>), ClientError> {
        let req = v1::FindCoordinatorRequest {
            group_id: group_id.to_string(),
        };
        let r = bounded(CALL_TIMEOUT, self.groups_here().find_coordinator(req))
            .await?
            .into_inner();
        let addr = format!("{}:{}", r.host, r.port);
        let channel = self
            .transport()
            .endpoint(&addr)
            .map_err(|_| ClientError::Invalid(format!("coordinator address {addr} is invalid")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        let channel = self.authenticated(channel);
        self.cache_coordinator(group_id, Some((r.node_id, channel.clone())));
        Ok((r.node_id, group_client(channel)))
    }

    /// Runs `call` on the coordinator of `group_id`, finding it again after it moved.
    async fn on_coordinator<T, F, Fut>(
        &mut self,
        group_id: &str,
        mut call: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(GroupServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + COORDINATOR_RETRY;
        loop {
            // The coordinator found last time, until it says it is not one any more.
            let coordinator = match self.cached_coordinator(group_id) {
                Some((_, channel)) => Ok(group_client(channel)),
                None => self.find_coordinator(group_id).await.map(|(_, c)| c),
            };
            let r = match coordinator {
                Ok(c) => bounded(CALL_TIMEOUT, call(c))
                    .await
                    .map_err(ClientError::from),
                Err(e) => Err(e),
            };
            if r.as_ref().is_err_and(coordinator_moving) {
                self.cache_coordinator(group_id, None);
            }
            match r {
                Err(e) if coordinator_moving(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if matches!(
                        e.kafka_code(),
                        Some(ErrorCode::NetworkException | ErrorCode::LeaderNotAvailable)
                    ) {
                        let _ = self.reconnect().await;
                    }
                }
                r => return r,
            }
        }
    }

    /// Every group, from every broker's coordinator (brokers that do not answer are
    /// skipped; their groups are missing from the list).
    pub async fn list_groups(&mut self) -> Result<Vec<v1::GroupListing>, ClientError> {
        let md = self.metadata(Vec::new()).await?;
        let mut groups = Vec::new();
        let mut answered = 0;
        for b in md.brokers.iter().filter(|b| !b.fenced) {
            let addr = format!("{}:{}", b.host, b.port);
            let Ok(endpoint) = self.transport().endpoint(&addr) else {
                continue;
            };
            let channel = endpoint
                .connect_timeout(Duration::from_secs(5))
                .timeout(CALL_TIMEOUT)
                .connect_lazy();
            let channel = self.authenticated(channel);
            if let Ok(r) = bounded(
                CALL_TIMEOUT,
                group_client(channel).list_groups(v1::ListGroupsRequest {}),
            )
            .await
            {
                answered += 1;
                groups.extend(r.into_inner().groups);
            }
        }
        if answered == 0 {
            return Err(kavka_model::KafkaError::new(
                ErrorCode::CoordinatorNotAvailable,
                "no broker answered ListGroups",
            )
            .into());
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    pub async fn describe_group(
        &mut self,
        group_id: &str,
    ) -> Result<v1::DescribeGroupResponse, ClientError> {
        let req = v1::DescribeGroupRequest {
            group_id: group_id.to_string(),
        };
        self.on_coordinator(group_id, |mut c| {
            let req = req.clone();
            async move { c.describe_group(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Commits offsets from outside the group (allowed only while it has no members).
    pub async fn commit_group_offsets(
        &mut self,
        group_id: &str,
        offsets: Vec<v1::OffsetToCommit>,
    ) -> Result<Vec<v1::PartitionResult>, ClientError> {
        self.commit_member_offsets(group_id, "", -1, offsets).await
    }

    /// Commits offsets as a member of the group (its id and epoch or generation).
    pub async fn commit_member_offsets(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        offsets: Vec<v1::OffsetToCommit>,
    ) -> Result<Vec<v1::PartitionResult>, ClientError> {
        let req = v1::CommitOffsetsRequest {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            generation_id: epoch,
            group_instance_id: String::new(),
            offsets,
        };
        self.on_coordinator(group_id, |mut c| {
            let req = req.clone();
            async move { c.commit_offsets(req).await.map(|r| r.into_inner().results) }
        })
        .await
    }

    /// The group's committed offsets of `topic`'s `partitions` (-1 where none).
    pub async fn fetch_group_offsets(
        &mut self,
        group_id: &str,
        topic: &str,
        partitions: Vec<i32>,
    ) -> Result<Vec<v1::CommittedOffset>, ClientError> {
        let req = v1::FetchOffsetsRequest {
            group_id: group_id.to_string(),
            topics: vec![v1::TopicPartitions {
                topic: topic.to_string(),
                partitions,
            }],
        };
        self.on_coordinator(group_id, |mut c| {
            let req = req.clone();
            async move { c.fetch_offsets(req).await.map(|r| r.into_inner().offsets) }
        })
        .await
    }

    /// One ConsumerGroupHeartbeat, on the group's coordinator.
    pub async fn consumer_group_heartbeat(
        &mut self,
        req: v1::ConsumerGroupHeartbeatRequest,
    ) -> Result<v1::ConsumerGroupHeartbeatResponse, ClientError> {
        let group_id = req.group_id.clone();
        self.on_coordinator(&group_id, |mut c| {
            let req = req.clone();
            async move {
                c.consumer_group_heartbeat(req)
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    pub async fn delete_group(&mut self, group_id: &str) -> Result<(), ClientError> {
        let req = v1::DeleteGroupRequest {
            group_id: group_id.to_string(),
        };
        self.on_coordinator(group_id, |mut c| {
            let req = req.clone();
            async move { c.delete_group(req).await.map(|_| ()) }
        })
        .await
    }
}
