//! `kavka.v1.AdminService`.

use super::watch;
use crate::controllers::Controllers;
use crate::replica_manager::{PartitionState, ReplicaManager, TopicSummary};
use crate::session::ControllerSession;
use kavka_metadata::{ConfigResource, MetadataImage};
use kavka_model::{ConfigEntry, KafkaError};
use kavka_model::{ErrorCode, TopicName};
use kavka_proto::conv::status;
use kavka_proto::v1::{self, admin_service_server::AdminService as Admin};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct AdminService {
    replicas: Arc<ReplicaManager>,
    /// Who the active controller is, for `WatchCluster` and Kafka's `Metadata`.
    session: Arc<ControllerSession>,
    controllers: Arc<Controllers>,
    /// The local port of the external listener, if any: clients that come through it
    /// are given brokers' external addresses.
    external_port: Option<u16>,
}

/// How long an admin write waits for this broker's image to show its effect.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(15);

impl AdminService {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        session: Arc<ControllerSession>,
        controllers: Arc<Controllers>,
    ) -> Self {
        Self {
            replicas,
            session,
            controllers,
            external_port: None,
        }
    }

    /// The active controller's node id, as this broker last heard.
    pub fn active_controller(&self) -> Option<kavka_model::BrokerId> {
        self.session.controller().id
    }

    /// Clients connecting to local port `port` are outside the cluster's network.
    pub fn with_external_port(mut self, port: Option<u16>) -> Self {
        self.external_port = port;
        self
    }

    fn is_external<T>(&self, req: &Request<T>) -> bool {
        self.external_port.is_some() && req.local_addr().map(|a| a.port()) == self.external_port
    }

    /// Waits until this broker has applied the change, so the caller reads its own write.
    async fn await_image(
        &self,
        what: &str,
        cond: impl Fn(&MetadataImage) -> bool,
    ) -> Result<(), Status> {
        if self
            .replicas
            .wait_for_image(PROPAGATION_TIMEOUT, cond)
            .await
        {
            Ok(())
        } else {
            Err(status(&KafkaError::new(
                ErrorCode::RequestTimedOut,
                format!("{what} was committed but has not reached this broker yet"),
            )))
        }
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
        is_default: c.is_default(),
        source: c.source.name().to_string(),
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
        durable_offset: p.durable_offset.0,
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
        let resp = self
            .controllers
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_topics(req).await.map(|r| r.into_inner()) }
            })
            .await
            .map_err(|e| status(&e))?;
        let created: Vec<String> = resp
            .results
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.topic_id.clone())
            .collect();
        self.await_image("topic creation", |img| {
            created
                .iter()
                .all(|id| img.topics().any(|t| t.id.to_string() == *id))
        })
        .await?;
        Ok(Response::new(resp))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_topics(
        &self,
        req: Request<v1::DeleteTopicsRequest>,
    ) -> Result<Response<v1::DeleteTopicsResponse>, Status> {
        let req = req.into_inner();
        let resp = self
            .controllers
            .call(|mut c| {
                let req = req.clone();
                async move { c.delete_topics(req).await.map(|r| r.into_inner()) }
            })
            .await
            .map_err(|e| status(&e))?;
        let deleted: Vec<String> = resp
            .results
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.topic_id.clone())
            .collect();
        self.await_image("topic deletion", |img| {
            !img.topics().any(|t| deleted.contains(&t.id.to_string()))
        })
        .await?;
        Ok(Response::new(resp))
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

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic, broker = ?req.get_ref().broker))]
    async fn alter_configs(
        &self,
        req: Request<v1::AlterConfigsRequest>,
    ) -> Result<Response<v1::AlterConfigsResponse>, Status> {
        let req = req.into_inner();
        let resp = self
            .controllers
            .call(|mut c| {
                let req = req.clone();
                async move { c.alter_configs(req).await.map(|r| r.into_inner()) }
            })
            .await
            .map_err(|e| status(&e))?;
        let resource = match &req.broker {
            Some(scope) if scope.broker_id == -1 => ConfigResource::Cluster,
            Some(scope) => ConfigResource::Broker(kavka_model::BrokerId(scope.broker_id)),
            None => ConfigResource::Topic(TopicName::new(req.topic.clone()).map_err(|e| {
                status(&KafkaError::new(
                    ErrorCode::InvalidTopicException,
                    e.to_string(),
                ))
            })?),
        };
        // Done here once this broker's image holds what was set and not what was deleted
        // (raw values, as stored).
        self.await_image("the config change", |img| {
            let stored = img.configs(&resource);
            req.set.iter().all(|(k, v)| stored.get(k) == Some(v))
                && req.delete.iter().all(|k| !stored.contains_key(k))
        })
        .await?;
        let mut resp = resp;
        if let ConfigResource::Topic(topic) = &resource {
            // Described here, over this broker's defaults (e.g. flush.messages from
            // --log-flush), which the controller does not know.
            let d = self
                .replicas
                .describe_topic(topic.as_str())
                .await
                .map_err(|e| status(&e))?;
            resp.configs = d.configs.iter().map(config_entry).collect();
        }
        Ok(Response::new(resp))
    }

    #[tracing::instrument(skip_all, fields(topics = req.get_ref().topics.len()))]
    async fn create_partitions(
        &self,
        req: Request<v1::CreatePartitionsRequest>,
    ) -> Result<Response<v1::CreatePartitionsResponse>, Status> {
        let req = req.into_inner();
        let resp = self
            .controllers
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_partitions(req).await.map(|r| r.into_inner()) }
            })
            .await
            .map_err(|e| status(&e))?;
        let grown: Vec<(String, usize)> = req
            .topics
            .iter()
            .filter(|t| {
                resp.results
                    .iter()
                    .any(|r| r.name == t.name && r.error.is_none())
            })
            .map(|t| (t.name.clone(), t.count.max(0) as usize))
            .collect();
        self.await_image("the new partitions", |img| {
            grown.iter().all(|(name, count)| {
                TopicName::new(name.clone())
                    .ok()
                    .and_then(|n| img.topic_by_name(&n))
                    .is_some_and(|t| t.partitions.len() >= *count)
            })
        })
        .await?;
        Ok(Response::new(resp))
    }

    #[tracing::instrument(skip_all, fields(partitions = req.get_ref().partitions.len()))]
    async fn elect_leaders(
        &self,
        req: Request<v1::ElectLeadersRequest>,
    ) -> Result<Response<v1::ElectLeadersResponse>, Status> {
        let req = req.into_inner();
        let resp = self
            .controllers
            .call(|mut c| {
                let req = req.clone();
                async move { c.elect_leaders(req).await.map(|r| r.into_inner()) }
            })
            .await
            .map_err(|e| status(&e))?;
        let moved: Vec<(String, i32)> = resp
            .results
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| (r.topic.clone(), r.partition))
            .collect();
        self.await_image("the leader election", |img| {
            moved.iter().all(|(topic, p)| {
                TopicName::new(topic.clone())
                    .ok()
                    .and_then(|n| img.topic_by_name(&n))
                    .and_then(|t| t.partitions.get(&kavka_model::PartitionId(*p)))
                    .is_none_or(|reg| reg.replicas.first() == Some(&reg.leader))
            })
        })
        .await?;
        Ok(Response::new(resp))
    }

    async fn metadata(
        &self,
        req: Request<v1::MetadataRequest>,
    ) -> Result<Response<v1::MetadataResponse>, Status> {
        let (summaries, states) = self.replicas.metadata(&req.get_ref().topics).await;
        let image = self.replicas.image();
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
        let external = self.is_external(&req);
        let brokers = image
            .brokers()
            .map(|b| watch::broker_info(b, external))
            .collect();
        Ok(Response::new(v1::MetadataResponse {
            cluster_id: image.cluster_id.clone().unwrap_or_default(),
            controller_id: -1,
            brokers,
            topics,
            metadata_offset: image.offset,
        }))
    }

    type WatchClusterStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<v1::ClusterView, Status>> + Send + 'static>,
    >;

    #[tracing::instrument(skip_all)]
    async fn watch_cluster(
        &self,
        req: Request<v1::WatchClusterRequest>,
    ) -> Result<Response<Self::WatchClusterStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(watch::run(
            Arc::clone(&self.replicas),
            Arc::clone(&self.session),
            self.is_external(&req),
            tx,
        ));
        let stream = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Ok::<_, Status>,
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
