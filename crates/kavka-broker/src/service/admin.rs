//! `kavka.v1.AdminService`.

use crate::replica_manager::{PartitionState, ReplicaManager, TopicSummary};
use kavka_model::{ConfigEntry, KafkaError};
use kavka_proto::conv::status;
use kavka_proto::v1::{self, admin_service_server::AdminService as Admin};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminService {
    replicas: Arc<ReplicaManager>,
}

impl AdminService {
    pub fn new(replicas: Arc<ReplicaManager>) -> Self {
        Self { replicas }
    }

    pub fn into_server(self) -> v1::admin_service_server::AdminServiceServer<Self> {
        v1::admin_service_server::AdminServiceServer::new(self)
    }
}

fn topic_summary(t: &TopicSummary) -> v1::TopicSummary {
    v1::TopicSummary {
        name: t.name.to_string(),
        topic_id: t.id.clone(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        internal: t.name.as_str().starts_with("__"),
    }
}

fn config_entry(c: &ConfigEntry) -> v1::ConfigEntry {
    v1::ConfigEntry {
        name: c.name.to_string(),
        value: c.value.clone(),
        is_default: c.is_default,
    }
}

fn ids(v: &[kavka_model::BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

fn partition_info(p: &PartitionState) -> v1::PartitionInfo {
    v1::PartitionInfo {
        partition: p.partition.0,
        leader: p.leader.0,
        leader_epoch: p.leader_epoch.0,
        replicas: ids(&p.replicas),
        isr: ids(&p.isr),
        log_start_offset: p.log_start_offset.0,
        high_watermark: p.high_watermark.0,
        log_end_offset: p.log_end_offset.0,
        size_bytes: p.size_bytes as i64,
    }
}

fn topic_result(name: String, r: Result<String, KafkaError>) -> v1::TopicResult {
    match r {
        Ok(id) => v1::TopicResult {
            name,
            error: None,
            topic_id: id,
        },
        Err(e) => v1::TopicResult {
            name,
            error: Some(e.into()),
            topic_id: String::new(),
        },
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    #[tracing::instrument(skip_all, fields(topics = req.get_ref().topics.len()))]
    async fn create_topics(
        &self,
        req: Request<v1::CreateTopicsRequest>,
    ) -> Result<Response<v1::CreateTopicsResponse>, Status> {
        let req = req.into_inner();
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let configs = t.configs.into_iter().collect();
            let r = self
                .replicas
                .create_topic(
                    &t.name,
                    t.partitions,
                    t.replication_factor,
                    configs,
                    req.validate_only,
                )
                .await;
            results.push(topic_result(t.name, r));
        }
        Ok(Response::new(v1::CreateTopicsResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_topics(
        &self,
        req: Request<v1::DeleteTopicsRequest>,
    ) -> Result<Response<v1::DeleteTopicsResponse>, Status> {
        let mut results = Vec::new();
        for name in req.into_inner().names {
            let r = self
                .replicas
                .delete_topic(&name)
                .await
                .map(|()| String::new());
            results.push(topic_result(name, r));
        }
        Ok(Response::new(v1::DeleteTopicsResponse { results }))
    }

    async fn list_topics(
        &self,
        req: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let include_internal = req.get_ref().include_internal;
        let topics = self
            .replicas
            .list_topics()
            .iter()
            .map(topic_summary)
            .filter(|t| include_internal || !t.internal)
            .collect();
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().name))]
    async fn describe_topic(
        &self,
        req: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let d = self
            .replicas
            .describe_topic(&req.get_ref().name)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::DescribeTopicResponse {
            topic: Some(topic_summary(&d.topic)),
            partitions: d.partitions.iter().map(partition_info).collect(),
            configs: d.configs.iter().map(config_entry).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic))]
    async fn alter_configs(
        &self,
        req: Request<v1::AlterConfigsRequest>,
    ) -> Result<Response<v1::AlterConfigsResponse>, Status> {
        let req = req.into_inner();
        let entries = self
            .replicas
            .alter_configs(
                &req.topic,
                req.set.into_iter().collect(),
                req.delete,
                req.validate_only,
            )
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::AlterConfigsResponse {
            configs: entries.iter().map(config_entry).collect(),
        }))
    }

    async fn metadata(
        &self,
        req: Request<v1::MetadataRequest>,
    ) -> Result<Response<v1::MetadataResponse>, Status> {
        let (summaries, states) = self.replicas.metadata(&req.get_ref().topics).await;
        let c = self.replicas.config();
        let topics = summaries
            .into_iter()
            .map(|(name, s)| match s {
                Err(e) => v1::TopicMetadata {
                    name,
                    topic_id: String::new(),
                    error: Some(e.into()),
                    partitions: vec![],
                },
                Ok(s) => {
                    let partitions = states
                        .iter()
                        .find(|(t, _)| *t == s.name)
                        .map(|(_, ps)| {
                            ps.iter()
                                .map(|p| v1::PartitionMetadata {
                                    partition: p.partition.0,
                                    leader: p.leader.0,
                                    leader_epoch: p.leader_epoch.0,
                                    replicas: ids(&p.replicas),
                                    isr: ids(&p.isr),
                                    error: p.error.as_ref().map(Into::into),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    v1::TopicMetadata {
                        name,
                        topic_id: s.id,
                        error: None,
                        partitions,
                    }
                }
            })
            .collect();
        Ok(Response::new(v1::MetadataResponse {
            cluster_id: String::new(),
            controller_id: c.node_id.0,
            brokers: vec![v1::BrokerInfo {
                id: c.node_id.0,
                host: c.advertised_host.clone(),
                port: c.advertised_port as i32,
                rack: String::new(),
            }],
            topics,
        }))
    }
}
