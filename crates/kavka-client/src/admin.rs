//! Admin calls: topics, configs, metadata.

use crate::connection::Client;
use crate::error::ClientError;
use kavka_model::BrokerId;
use kavka_model::admin::{BalancePlan, OngoingMove, PartitionMove, PartitionOutcome, PartitionRef};
use kavka_proto::conv::check;
use kavka_proto::v1;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
    /// The replicas of each partition in order, preferred leader first (Kafka's
    /// `--replica-assignment`); when given, `partitions` is -1 and `replication_factor` 0.
    pub assignment: Vec<Vec<BrokerId>>,
}

/// A described topic.
pub type TopicInfo = v1::DescribeTopicResponse;

impl Client {
    /// Creates one topic; returns its id.
    pub async fn create_topic(&mut self, t: NewTopic) -> Result<String, ClientError> {
        let resp = self
            .admin
            .create_topics(v1::CreateTopicsRequest {
                topics: vec![v1::NewTopic {
                    name: t.name,
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    configs: t.configs.into_iter().collect(),
                    assignments: t
                        .assignment
                        .into_iter()
                        .zip(0..)
                        .map(|(replicas, partition)| v1::ReplicaAssignment {
                            partition,
                            broker_ids: replicas.into_iter().map(|b| b.0).collect(),
                        })
                        .collect(),
                }],
                validate_only: false,
            })
            .await?
            .into_inner();
        let r = first(resp.results, "CreateTopics")?;
        check(r.error.as_ref())?;
        Ok(r.topic_id)
    }

    /// Deletes topics; one result per name.
    pub async fn delete_topics(
        &mut self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let resp = self
            .admin
            .delete_topics(v1::DeleteTopicsRequest { names })
            .await?
            .into_inner();
        Ok(resp
            .results
            .into_iter()
            .map(|r| (r.name, check(r.error.as_ref()).map_err(ClientError::from)))
            .collect())
    }

    pub async fn list_topics(&mut self) -> Result<Vec<v1::TopicSummary>, ClientError> {
        Ok(self
            .admin
            .list_topics(v1::ListTopicsRequest {
                include_internal: true,
            })
            .await?
            .into_inner()
            .topics)
    }

    /// Describes a topic; each partition's offsets (high watermark, log end) are its
    /// leader's, asked of the leader itself where it is another node.
    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        let mut info = self
            .admin
            .describe_topic(v1::DescribeTopicRequest { name: name.into() })
            .await?
            .into_inner();
        if self.refresh_leaders(name).await.is_err() {
            return Ok(info);
        }
        let leaders: std::collections::BTreeSet<i32> = info
            .partitions
            .iter()
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
            .collect();
        for leader in leaders {
            let Some(mut admin) = self.admin_for(leader) else {
                continue;
            };
            let Ok(from_leader) = admin
                .describe_topic(v1::DescribeTopicRequest { name: name.into() })
                .await
            else {
                continue;
            };
            let from_leader = from_leader.into_inner();
            for p in info.partitions.iter_mut().filter(|p| p.leader == leader) {
                if let Some(q) = from_leader
                    .partitions
                    .iter()
                    .find(|q| q.partition == p.partition && q.leader_epoch >= p.leader_epoch)
                {
                    *p = q.clone();
                }
            }
        }
        Ok(info)
    }

    /// A preferred or unclean leader election for `partitions` (empty: every partition
    /// that can move).
    pub async fn elect_leaders(
        &mut self,
        partitions: Vec<(String, i32)>,
        kind: v1::ElectionType,
    ) -> Result<Vec<v1::ElectLeadersResult>, ClientError> {
        Ok(self
            .admin
            .elect_leaders(v1::ElectLeadersRequest {
                partitions: partitions
                    .into_iter()
                    .map(|(topic, partition)| v1::ElectLeadersPartition { topic, partition })
                    .collect(),
                election_type: kind.into(),
            })
            .await?
            .into_inner()
            .results)
    }

    /// Starts (or, with a `None` target, cancels) partition moves; one outcome per move,
    /// in order.
    pub async fn alter_partition_reassignments(
        &mut self,
        moves: &[PartitionMove],
    ) -> Result<Vec<PartitionOutcome>, ClientError> {
        Ok(self
            .admin
            .alter_partition_reassignments(v1::AlterPartitionReassignmentsRequest {
                moves: moves.iter().map(v1::PartitionMove::from).collect(),
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(PartitionOutcome::from)
            .collect())
    }

    /// The log dir of the broker this client is connected to, with its replicas' sizes
    /// (all of them, or those of `only`).
    pub async fn describe_log_dirs(
        &mut self,
        only: &[PartitionRef],
    ) -> Result<v1::DescribeLogDirsResponse, ClientError> {
        let r = self
            .admin
            .describe_log_dirs(v1::DescribeLogDirsRequest {
                partitions: only.iter().map(v1::ElectLeadersPartition::from).collect(),
            })
            .await?
            .into_inner();
        check(r.error.as_ref())?;
        Ok(r)
    }

    /// Deletes `partition`'s records before `before` (None: the high watermark) on the
    /// broker this client is connected to, which must lead it; the new log start.
    pub async fn delete_records(
        &mut self,
        partition: &PartitionRef,
        before: Option<i64>,
    ) -> Result<i64, ClientError> {
        let r = self
            .admin
            .delete_records(v1::DeleteRecordsRequest {
                topic: partition.topic.clone(),
                partition: partition.partition.0,
                before_offset: before.unwrap_or(-1),
            })
            .await?
            .into_inner();
        check(r.error.as_ref())?;
        Ok(r.low_watermark)
    }

    /// Decommissions `broker` (`on`) or takes it back into service.
    pub async fn decommission_broker(
        &mut self,
        broker: BrokerId,
        on: bool,
    ) -> Result<(), ClientError> {
        let r = self
            .admin
            .decommission_broker(v1::DecommissionBrokerRequest {
                broker_id: broker.0,
                recommission: !on,
            })
            .await?
            .into_inner();
        Ok(check(r.error.as_ref())?)
    }

    /// The balancer's plan; with `execute`, the cluster carries it out.
    pub async fn balance_cluster(&mut self, execute: bool) -> Result<BalancePlan, ClientError> {
        Ok(BalancePlan::from(
            self.admin
                .balance_cluster(v1::BalanceClusterRequest { execute })
                .await?
                .into_inner(),
        ))
    }

    /// The ongoing partition moves (all of them, or those of `only`).
    pub async fn list_partition_reassignments(
        &mut self,
        only: &[PartitionRef],
    ) -> Result<Vec<OngoingMove>, ClientError> {
        Ok(self
            .admin
            .list_partition_reassignments(v1::ListPartitionReassignmentsRequest {
                partitions: only.iter().map(v1::ElectLeadersPartition::from).collect(),
            })
            .await?
            .into_inner()
            .moves
            .into_iter()
            .map(OngoingMove::from)
            .collect())
    }

    /// Sets and removes cluster-wide dynamic broker configs (the defaults every broker
    /// uses unless it has its own).
    pub async fn alter_cluster_configs(
        &mut self,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<Vec<v1::ConfigEntry>, ClientError> {
        Ok(self
            .admin
            .alter_configs(v1::AlterConfigsRequest {
                topic: String::new(),
                set: set.into_iter().collect(),
                delete,
                validate_only: false,
                broker: Some(v1::BrokerScope { broker_id: -1 }),
            })
            .await?
            .into_inner()
            .configs)
    }

    pub async fn alter_configs(
        &mut self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<Vec<v1::ConfigEntry>, ClientError> {
        Ok(self
            .admin
            .alter_configs(v1::AlterConfigsRequest {
                topic: topic.into(),
                set: set.into_iter().collect(),
                delete,
                validate_only: false,
                broker: None,
            })
            .await?
            .into_inner()
            .configs)
    }

    pub async fn metadata(
        &mut self,
        topics: Vec<String>,
    ) -> Result<v1::MetadataResponse, ClientError> {
        Ok(self
            .admin
            .metadata(v1::MetadataRequest { topics })
            .await?
            .into_inner())
    }

    /// The number of partitions of `topic`.
    pub async fn partition_count(&mut self, topic: &str) -> Result<u32, ClientError> {
        let md = self.metadata(vec![topic.to_string()]).await?;
        let t = first(md.topics, "Metadata")?;
        check(t.error.as_ref())?;
        Ok(t.partitions.len() as u32)
    }

    /// Kafka's ListOffsets for one partition (asked of its leader): -2 earliest, -1
    /// latest, or a timestamp. Retries leader changes for a few seconds.
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), ClientError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = self.list_offset_once(topic, partition, timestamp).await;
            match r {
                Err(ClientError::Kafka(e))
                    if e.code.is_retriable() && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let _ = self.refresh_leaders(topic).await;
                }
                r => return r,
            }
        }
    }

    async fn list_offset_once(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), ClientError> {
        let mut leader = self.leader_or_refresh(topic, partition).await?;
        let resp = leader
            .list_offsets(v1::ListOffsetsRequest {
                topic: topic.into(),
                partitions: vec![v1::ListOffsetsPartition {
                    partition,
                    timestamp,
                }],
            })
            .await?
            .into_inner();
        let r = first(resp.results, "ListOffsets")?;
        check(r.error.as_ref())?;
        Ok((r.offset, r.timestamp))
    }
}

/// The one result a single-item request gets back.
fn first<T>(items: Vec<T>, api: &str) -> Result<T, ClientError> {
    items
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Invalid(format!("empty {api} response")))
}
