//! `kavka.v1.AdminService`: a translator onto the broker API (`crate::api::BrokerApi`:
//! its `admin` for writes, its data operations for metadata). It decodes, calls and
//! encodes; it holds no logic of its own.

use super::{auth, watch};
use crate::api::{Admin as AdminApi, AlteredConfigs, BrokerApi, in_request_order};
use crate::replica_manager::{PartitionState, TopicSummary};
use crate::session::ControllerSession;
use kavka_model::acl::{AclBinding, AclFilter, Operation, Resource};
use kavka_model::admin::{
    AlterConfigs, ConfigTarget, NewPartitions, NewTopic, PartitionMove, PartitionRef,
};
use kavka_model::{
    BrokerId, ConfigEntry, ErrorCode, KafkaError, Offset, PartitionId, TopicName, TopicPartition,
};
use kavka_proto::conv::{acl_filter_from_request, acl_from_request, scram_changes, status};
use kavka_proto::v1::{self, admin_service_server::AdminService as Admin};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AdminService {
    /// The broker API's admin operations.
    api: Arc<AdminApi>,
    /// The broker API, for metadata.
    broker: BrokerApi,
    /// Who the active controller is, for `WatchCluster`.
    session: Arc<ControllerSession>,
    /// The local port of the external listener, if any: clients that come through it
    /// are given brokers' external addresses.
    external_port: Option<u16>,
}

impl AdminService {
    /// Every check a call needs (see [`auth::require`]).
    fn require<'a, T>(
        &self,
        req: &Request<T>,
        checks: impl IntoIterator<Item = (Operation, Resource<'a>)>,
    ) -> Result<(), Status> {
        auth::require(&self.broker, &auth::caller(req), checks)
    }

    pub fn new(broker: BrokerApi) -> Self {
        Self {
            api: Arc::clone(&broker.admin),
            session: Arc::clone(broker.admin.session()),
            broker,
            external_port: None,
        }
    }

    /// Clients connecting to local port `port` are outside the cluster's network.
    pub fn with_external_port(mut self, port: Option<u16>) -> Self {
        self.external_port = port;
        self
    }

    fn is_external<T>(&self, req: &Request<T>) -> bool {
        self.external_port.is_some() && req.local_addr().map(|a| a.port()) == self.external_port
    }

    pub fn into_server(self) -> v1::admin_service_server::AdminServiceServer<Self> {
        v1::admin_service_server::AdminServiceServer::new(self)
    }
}

fn topic_summary(t: &TopicSummary) -> v1::TopicSummary {
    v1::TopicSummary {
        name: t.name.to_string(),
        topic_id: t.id.to_string(),
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
        leader: p.leader.map_or(-1, |b| b.0),
        leader_epoch: p.leader_epoch.0,
        replicas: ids(&p.replicas),
        isr: ids(&p.isr),
        log_start_offset: p.local.map_or(-1, |l| l.log_start_offset.0),
        high_watermark: p.local.map_or(-1, |l| l.high_watermark.0),
        log_end_offset: p.local.map_or(-1, |l| l.log_end_offset.0),
        size_bytes: p.local.map_or(0, |l| l.size_bytes as i64),
        durable_offset: p.local.map_or(-1, |l| l.durable_offset.0),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    #[tracing::instrument(skip_all, fields(acls = req.get_ref().acls.len()))]
    async fn create_acls(
        &self,
        req: Request<v1::CreateAclsRequest>,
    ) -> Result<Response<v1::CreateAclsResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        // An ACL that does not convert is answered in its place; the rest go ahead.
        let asked: Vec<_> = req
            .into_inner()
            .acls
            .into_iter()
            .map(acl_from_request)
            .collect();
        let valid: Vec<AclBinding> = asked.iter().filter_map(|a| a.clone().ok()).collect();
        let created = self.api.create_acls(&valid).await.map_err(|e| status(&e))?;
        let results = in_request_order(asked, async |_| created)
            .await
            .into_iter()
            .map(|r| r.and_then(|r| r).into())
            .collect();
        Ok(Response::new(v1::CreateAclsResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn alter_user_scram_credentials(
        &self,
        req: Request<v1::AlterUserScramCredentialsRequest>,
    ) -> Result<Response<v1::AlterUserScramCredentialsResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        let (upsertions, deletions) = scram_changes(&req.into_inner()).map_err(|e| status(&e))?;
        let results = self
            .api
            .alter_user_scram_credentials(&upsertions, &deletions)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::AlterUserScramCredentialsResponse {
            results: results
                .into_iter()
                .map(|(user, r)| v1::UserScramResult {
                    user,
                    error: r.err().map(Into::into),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn alter_client_quotas(
        &self,
        req: Request<v1::AlterClientQuotasRequest>,
    ) -> Result<Response<v1::AlterClientQuotasResponse>, Status> {
        self.require(&req, [(Operation::AlterConfigs, Resource::cluster())])?;
        let inner = req.into_inner();
        let entries = kavka_proto::conv::quota_alterations(&inner);
        let results = self
            .api
            .alter_client_quotas(&entries, inner.validate_only)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(
            kavka_proto::conv::alter_client_quotas_response(&entries, results),
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn describe_client_quotas(
        &self,
        req: Request<v1::DescribeClientQuotasRequest>,
    ) -> Result<Response<v1::DescribeClientQuotasResponse>, Status> {
        self.require(&req, [(Operation::DescribeConfigs, Resource::cluster())])?;
        let filter = kavka_proto::conv::quota_filter(req.get_ref()).map_err(|e| status(&e))?;
        let entries = self.broker.describe_client_quotas(&filter);
        Ok(Response::new(v1::DescribeClientQuotasResponse {
            entries: kavka_proto::conv::client_quota_entries(&entries),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn describe_user_scram_credentials(
        &self,
        req: Request<v1::DescribeUserScramCredentialsRequest>,
    ) -> Result<Response<v1::DescribeUserScramCredentialsResponse>, Status> {
        self.require(&req, [(Operation::Describe, Resource::cluster())])?;
        let users = self
            .broker
            .describe_user_scram_credentials(&req.into_inner().users)
            .into_iter()
            .map(|(user, r)| match r {
                Ok(creds) => v1::UserScramDescription {
                    user,
                    error: None,
                    credentials: creds
                        .into_iter()
                        .map(|(m, iterations)| v1::ScramCredentialInfo {
                            mechanism: i32::from(m.code()),
                            iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
                        })
                        .collect(),
                },
                Err(e) => v1::UserScramDescription {
                    user,
                    error: Some(e.into()),
                    credentials: vec![],
                },
            })
            .collect();
        Ok(Response::new(v1::DescribeUserScramCredentialsResponse {
            users,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn describe_acls(
        &self,
        req: Request<v1::DescribeAclsRequest>,
    ) -> Result<Response<v1::DescribeAclsResponse>, Status> {
        self.require(&req, [(Operation::Describe, Resource::cluster())])?;
        let filter = match req.into_inner().filter {
            Some(f) => acl_filter_from_request(f).map_err(|e| status(&e))?,
            None => AclFilter::any(),
        };
        Ok(Response::new(v1::DescribeAclsResponse {
            acls: self
                .broker
                .describe_acls(&filter)
                .iter()
                .map(v1::Acl::from)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(filters = req.get_ref().filters.len()))]
    async fn delete_acls(
        &self,
        req: Request<v1::DeleteAclsRequest>,
    ) -> Result<Response<v1::DeleteAclsResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        let asked: Vec<_> = req
            .into_inner()
            .filters
            .into_iter()
            .map(acl_filter_from_request)
            .collect();
        let valid: Vec<AclFilter> = asked.iter().filter_map(|f| f.clone().ok()).collect();
        let deleted = self.api.delete_acls(&valid).await.map_err(|e| status(&e))?;
        let results = in_request_order(asked, async |_| deleted)
            .await
            .into_iter()
            .map(|r| r.and_then(|r| r).into())
            .collect();
        Ok(Response::new(v1::DeleteAclsResponse { results }))
    }

    async fn create_topics(
        &self,
        req: Request<v1::CreateTopicsRequest>,
    ) -> Result<Response<v1::CreateTopicsResponse>, Status> {
        auth::require_create_topics(
            &self.broker,
            &auth::caller(&req),
            req.get_ref().topics.iter().map(|t| t.name.as_str()),
        )?;
        let req = req.into_inner();
        let topics: Vec<NewTopic> = req.topics.into_iter().map(NewTopic::from).collect();
        let outcomes = self
            .api
            .create_topics(&topics, req.validate_only)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::CreateTopicsResponse {
            results: outcomes.iter().map(v1::TopicResult::from).collect(),
        }))
    }

    async fn delete_topics(
        &self,
        req: Request<v1::DeleteTopicsRequest>,
    ) -> Result<Response<v1::DeleteTopicsResponse>, Status> {
        let names = req.get_ref().names.clone();
        self.require(
            &req,
            names
                .iter()
                .map(|n| (Operation::Delete, Resource::topic(n))),
        )?;
        let outcomes = self
            .api
            .delete_topics(&req.into_inner().names)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::DeleteTopicsResponse {
            results: outcomes.iter().map(v1::TopicResult::from).collect(),
        }))
    }

    async fn list_topics(
        &self,
        req: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let include_internal = req.get_ref().include_internal;
        let caller = auth::caller(&req);
        let topics = self
            .broker
            .list_topics()
            .iter()
            .map(topic_summary)
            .filter(|t| include_internal || !t.internal)
            .filter(|t| {
                self.broker
                    .is_authorized(&caller, Operation::Describe, Resource::topic(&t.name))
            })
            .collect();
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().name))]
    async fn describe_topic(
        &self,
        req: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.require(&req, [(Operation::Describe, Resource::topic(&name))])?;
        let d = self
            .broker
            .describe_topic(&req.get_ref().name)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::DescribeTopicResponse {
            topic: Some(topic_summary(&d.topic)),
            partitions: d.partitions.iter().map(partition_info).collect(),
            configs: d.configs.iter().map(config_entry).collect(),
        }))
    }

    async fn alter_configs(
        &self,
        req: Request<v1::AlterConfigsRequest>,
    ) -> Result<Response<v1::AlterConfigsResponse>, Status> {
        let caller = auth::caller(&req);
        let req = AlterConfigs::from(req.into_inner());
        let resource = match &req.target {
            ConfigTarget::Topic(t) => Resource::topic(t),
            ConfigTarget::Broker(_) | ConfigTarget::Cluster => Resource::cluster(),
        };
        auth::require(&self.broker, &caller, [(Operation::AlterConfigs, resource)])?;
        let configs = match self.api.alter_configs(&req).await {
            Err(e) => return Err(status(&e)),
            Ok(AlteredConfigs::Topic(entries)) => entries.iter().map(config_entry).collect(),
            Ok(AlteredConfigs::Broker { broker, stored }) => {
                let source = if broker.is_some() {
                    "DYNAMIC_BROKER_CONFIG"
                } else {
                    "DYNAMIC_DEFAULT_BROKER_CONFIG"
                };
                stored
                    .into_iter()
                    .map(|(name, value)| v1::ConfigEntry {
                        name,
                        value,
                        is_default: false,
                        source: source.into(),
                    })
                    .collect()
            }
        };
        Ok(Response::new(v1::AlterConfigsResponse { configs }))
    }

    async fn create_partitions(
        &self,
        req: Request<v1::CreatePartitionsRequest>,
    ) -> Result<Response<v1::CreatePartitionsResponse>, Status> {
        let names: Vec<String> = req
            .get_ref()
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect();
        self.require(
            &req,
            names.iter().map(|n| (Operation::Alter, Resource::topic(n))),
        )?;
        let req = req.into_inner();
        let topics: Vec<NewPartitions> = req.topics.into_iter().map(NewPartitions::from).collect();
        let outcomes = self
            .api
            .create_partitions(&topics, req.validate_only)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::CreatePartitionsResponse {
            results: outcomes.iter().map(v1::TopicResult::from).collect(),
        }))
    }

    async fn elect_leaders(
        &self,
        req: Request<v1::ElectLeadersRequest>,
    ) -> Result<Response<v1::ElectLeadersResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        let inner = req.into_inner();
        let kind = kavka_proto::conv::election_type(inner.election_type).map_err(|e| status(&e))?;
        let partitions: Vec<PartitionRef> = inner
            .partitions
            .into_iter()
            .map(PartitionRef::from)
            .collect();
        let outcomes = self
            .api
            .elect_leaders(&partitions, kind)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::ElectLeadersResponse {
            results: outcomes.iter().map(v1::ElectLeadersResult::from).collect(),
        }))
    }

    async fn alter_partition_reassignments(
        &self,
        req: Request<v1::AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<v1::AlterPartitionReassignmentsResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        let moves: Vec<PartitionMove> = req
            .into_inner()
            .moves
            .into_iter()
            .map(PartitionMove::from)
            .collect();
        let outcomes = self
            .api
            .alter_reassignments(&moves)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::AlterPartitionReassignmentsResponse {
            results: outcomes.iter().map(v1::PartitionMoveResult::from).collect(),
        }))
    }

    async fn list_partition_reassignments(
        &self,
        req: Request<v1::ListPartitionReassignmentsRequest>,
    ) -> Result<Response<v1::ListPartitionReassignmentsResponse>, Status> {
        self.require(&req, [(Operation::Describe, Resource::cluster())])?;
        let named: Vec<PartitionRef> = req
            .into_inner()
            .partitions
            .into_iter()
            .map(PartitionRef::from)
            .collect();
        let only = (!named.is_empty()).then_some(named.as_slice());
        let moves = self.api.list_reassignments(only);
        Ok(Response::new(v1::ListPartitionReassignmentsResponse {
            moves: moves.iter().map(v1::OngoingMove::from).collect(),
        }))
    }

    async fn describe_log_dirs(
        &self,
        req: Request<v1::DescribeLogDirsRequest>,
    ) -> Result<Response<v1::DescribeLogDirsResponse>, Status> {
        self.require(&req, [(Operation::Describe, Resource::cluster())])?;
        let named: Vec<PartitionRef> = req
            .into_inner()
            .partitions
            .into_iter()
            .map(PartitionRef::from)
            .collect();
        let dir = self
            .broker
            .describe_log_dir(|tp| {
                named.is_empty()
                    || named
                        .iter()
                        .any(|r| r.partition == tp.partition && r.topic == tp.topic.as_str())
            })
            .await;
        let mut resp = v1::DescribeLogDirsResponse::from(&dir);
        resp.broker_id = self.broker.broker_config().node_id.0;
        Ok(Response::new(resp))
    }

    async fn delete_records(
        &self,
        req: Request<v1::DeleteRecordsRequest>,
    ) -> Result<Response<v1::DeleteRecordsResponse>, Status> {
        self.require(
            &req,
            [(Operation::Delete, Resource::topic(&req.get_ref().topic))],
        )?;
        let r = req.into_inner();
        let topic = TopicName::new(r.topic).map_err(|e| {
            status(&KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no such topic: {e}"),
            ))
        })?;
        let before = match r.before_offset {
            -1 => None,
            o if o >= 0 => Some(Offset(o)),
            o => {
                return Err(status(&KafkaError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!("cannot delete records before offset {o}: it is negative"),
                )));
            }
        };
        let tp = TopicPartition::new(topic, PartitionId(r.partition));
        let deleted = self
            .broker
            .delete_records(&[(tp, before)])
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| {
                Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    "DeleteRecords gave no answer",
                ))
            });
        Ok(Response::new(match deleted {
            Ok(start) => v1::DeleteRecordsResponse {
                low_watermark: start.0,
                error: None,
            },
            Err(e) => v1::DeleteRecordsResponse {
                low_watermark: -1,
                error: Some(v1::Error::from(&e)),
            },
        }))
    }

    async fn decommission_broker(
        &self,
        req: Request<v1::DecommissionBrokerRequest>,
    ) -> Result<Response<v1::DecommissionBrokerResponse>, Status> {
        self.require(&req, [(Operation::Alter, Resource::cluster())])?;
        let r = req.into_inner();
        let done = self
            .api
            .decommission(BrokerId(r.broker_id), !r.recommission)
            .await;
        Ok(Response::new(v1::DecommissionBrokerResponse {
            error: done.err().as_ref().map(v1::Error::from),
        }))
    }

    async fn balance_cluster(
        &self,
        req: Request<v1::BalanceClusterRequest>,
    ) -> Result<Response<v1::BalanceClusterResponse>, Status> {
        let op = if req.get_ref().execute {
            Operation::Alter
        } else {
            Operation::Describe
        };
        self.require(&req, [(op, Resource::cluster())])?;
        let plan = self
            .api
            .balance(req.into_inner().execute)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(v1::BalanceClusterResponse::from(&plan)))
    }

    async fn metadata(
        &self,
        req: Request<v1::MetadataRequest>,
    ) -> Result<Response<v1::MetadataResponse>, Status> {
        // Every topic named must be describable.
        let names = req.get_ref().topics.clone();
        self.require(
            &req,
            names
                .iter()
                .map(|n| (Operation::Describe, Resource::topic(n))),
        )?;
        let (summaries, states) = self.broker.metadata(&req.get_ref().topics).await;
        let image = self.broker.replicas().image();
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
                                    leader: p.leader.map_or(-1, |b| b.0),
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
                        topic_id: s.id.to_string(),
                        error: None,
                        partitions,
                    }
                }
            })
            .collect();
        let external = self.is_external(&req);
        let brokers = image
            .brokers()
            .map(|b| watch::broker_info(&image, b, external))
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
        // The cluster view names every topic, broker and election.
        self.require(&req, [(Operation::Describe, Resource::cluster())])?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(watch::run(
            Arc::clone(self.broker.replicas()),
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
