//! `kavka.v1.ControllerService`: thin handlers over [`Controller`]. Admin writes and
//! registrations reaching a controller that is not active are forwarded once to the
//! active one; heartbeats are answered with a hint instead (the broker reconnects).

use crate::control::brokers::{Heartbeat, RegisterBroker};
use crate::control::partitions::AlterPartition;
use crate::control::topics::{CreateTopic, GrowTopic};
use crate::controller::{Controller, ControllerError};
use crate::quorum::MetadataUpdate;
use crate::types::{DirectoryId, NodeId, VoterNode};
use kavka_metadata::Endpoint;
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::admin::PartitionMove;
use kavka_model::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, PartitionId, TopicConfig};
use kavka_proto::conv::{acl_filter_from_request, acl_from_request, status};
use kavka_proto::v1::{
    self, controller_service_client::ControllerServiceClient,
    controller_service_server::ControllerService as Svc,
};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Batches buffered per metadata stream before the sender waits for the reader.
const METADATA_STREAM_BUFFER: usize = 64;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ControllerService {
    controller: Arc<Controller>,
}

impl ControllerService {
    pub fn new(controller: Arc<Controller>) -> Self {
        Self { controller }
    }

    pub fn into_server(self) -> v1::controller_service_server::ControllerServiceServer<Self> {
        v1::controller_service_server::ControllerServiceServer::new(self)
            .max_encoding_message_size(256 * 1024 * 1024)
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    fn hint(&self) -> Option<v1::ControllerHint> {
        self.controller
            .leader_hint()
            .map(|(id, node)| v1::ControllerHint {
                leader_id: id as i64,
                leader_addr: node.addr,
                term: self.controller.term(),
            })
    }

    /// A client to the active controller, when it is another node.
    async fn forward_target(
        &self,
        e: &ControllerError,
    ) -> Option<
        ControllerServiceClient<
            tonic::service::interceptor::InterceptedService<
                tonic::transport::Channel,
                kavka_proto::auth::PresentSecret,
            >,
        >,
    > {
        self.forward_target_for(e, FORWARD_TIMEOUT).await
    }

    /// [`Self::forward_target`] whose calls may take up to `timeout` (voter changes wait
    /// for a new voter to catch up).
    async fn forward_target_for(
        &self,
        e: &ControllerError,
        timeout: Duration,
    ) -> Option<
        ControllerServiceClient<
            tonic::service::interceptor::InterceptedService<
                tonic::transport::Channel,
                kavka_proto::auth::PresentSecret,
            >,
        >,
    > {
        let ControllerError::NotController(Some((id, node))) = e else {
            return None;
        };
        if *id == self.controller.quorum().node_id() {
            return None;
        }
        let endpoint = self
            .controller
            .quorum()
            .transport()
            .endpoint(&node.addr)
            .ok()?
            .timeout(timeout);
        Some(ControllerServiceClient::with_interceptor(
            endpoint.connect_lazy(),
            self.controller.quorum().present_secret(),
        ))
    }
}

/// How long a voter change may take when the caller names no bound.
const VOTER_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest bound a caller may ask for.
const VOTER_CHANGE_TIMEOUT_MAX: Duration = Duration::from_secs(300);

fn change_timeout(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => VOTER_CHANGE_TIMEOUT,
        ms => Duration::from_millis(ms.into()).min(VOTER_CHANGE_TIMEOUT_MAX),
    }
}

fn voter_id(id: i64) -> Result<NodeId, Status> {
    u64::try_from(id).map_err(|_| {
        status(&KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("voter id {id} is not a node id"),
        ))
    })
}

fn parse_directory_id(s: &str) -> Result<Option<DirectoryId>, Status> {
    match s.trim() {
        "" => Ok(None),
        d => d
            .parse::<DirectoryId>()
            .map(Some)
            .map_err(|why| status(&KafkaError::new(ErrorCode::InvalidRequest, why))),
    }
}

impl ControllerService {
    /// With a quorum secret, voter changes need it (they reach the client port).
    fn admit_voter_change<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let presented = req
            .metadata()
            .get(kavka_proto::auth::CONTROLLER_SECRET_HEADER)
            .and_then(|v| v.to_str().ok());
        self.controller
            .quorum()
            .check_admin_secret(presented)
            .map_err(|why| {
                status(&KafkaError::new(
                    ErrorCode::ClusterAuthorizationFailed,
                    format!("changing the controller voters needs the cluster secret (--cluster-secret-file): {why}"),
                ))
            })
    }

    /// Asks the node at `addr` (its controller listener) who it is: it must be node `id`,
    /// and its directory id is the new voter's (the one `asked`, when given).
    /// REQUEST_TIMED_OUT when it does not answer: nothing is changed then.
    async fn probe_new_voter(
        &self,
        id: NodeId,
        addr: &str,
        asked: Option<DirectoryId>,
    ) -> Result<DirectoryId, Status> {
        let q = self.controller.quorum();
        let refused = |code, msg: String| status(&KafkaError::new(code, msg));
        let endpoint = q
            .transport()
            .endpoint(addr.trim())
            .map_err(|e| {
                refused(
                    ErrorCode::InvalidRequest,
                    format!("bad address '{addr}': {e}"),
                )
            })?
            .connect_timeout(PROBE_TIMEOUT)
            .timeout(PROBE_TIMEOUT);
        let mut c =
            ControllerServiceClient::with_interceptor(endpoint.connect_lazy(), q.present_secret());
        let answer = c
            .quorum_status(v1::QuorumStatusRequest { from_leader: false })
            .await
            .map_err(|s| {
                refused(
                    ErrorCode::RequestTimedOut,
                    format!(
                        "node {id} does not answer at {addr} ({}): start it with the controller \
                         role and --controller-listen at that address; the voters are unchanged",
                        s.message()
                    ),
                )
            })?
            .into_inner();
        if answer.node_id != id as i64 {
            return Err(refused(
                ErrorCode::InvalidRequest,
                format!(
                    "the controller at {addr} is node {}, not {id}",
                    answer.node_id
                ),
            ));
        }
        let found = parse_directory_id(&answer.directory_id)?.ok_or_else(|| {
            refused(
                ErrorCode::InvalidRequest,
                format!("node {id} at {addr} reports no directory id"),
            )
        })?;
        match asked {
            Some(a) if a != found => Err(refused(
                ErrorCode::InvalidRequest,
                format!("node {id} at {addr} has directory id {found}, not {a}"),
            )),
            _ => Ok(found),
        }
    }
}

/// How long the active controller waits for a new voter to say who it is.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

fn to_status(e: &ControllerError) -> Status {
    match e {
        ControllerError::Kafka(k) => status(k),
        ControllerError::NotController(_) => status(&KafkaError::new(
            ErrorCode::NotController,
            e.to_string().trim_start_matches("NOT_CONTROLLER: "),
        )),
    }
}

fn topic_result(name: String, r: Result<kavka_metadata::TopicId, KafkaError>) -> v1::TopicResult {
    match r {
        Ok(id) => v1::TopicResult {
            name,
            error: None,
            topic_id: id.to_string(),
        },
        Err(e) => v1::TopicResult {
            name,
            error: Some(e.into()),
            topic_id: String::new(),
        },
    }
}

fn validate_only_unsupported() -> Status {
    status(&KafkaError::new(
        ErrorCode::InvalidRequest,
        "validate_only is not supported by the controller yet",
    ))
}

/// A heartbeat from its protobuf form; INVALID_REQUEST naming the field that is not valid.
fn heartbeat_from(hb: &v1::BrokerHeartbeatRequest) -> Result<Heartbeat, KafkaError> {
    let invalid = |what: String| KafkaError::new(ErrorCode::InvalidRequest, what);
    let incarnation_id = uuid::Uuid::parse_str(&hb.incarnation_id)
        .map_err(|_| invalid("incarnation id is not a UUID".into()))?;
    let offline = hb
        .offline_replicas
        .iter()
        .map(|r| {
            uuid::Uuid::parse_str(&r.topic_id)
                .map(|id| (kavka_metadata::TopicId(id), PartitionId(r.partition)))
                .map_err(|_| {
                    invalid(format!(
                        "offline replica topic id '{}' is not a UUID",
                        r.topic_id
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Heartbeat {
        broker_id: BrokerId(hb.broker_id),
        incarnation_id,
        metadata_offset: hb.metadata_offset,
        offline,
    })
}

fn parse_incarnation(s: &str) -> Result<uuid::Uuid, Status> {
    uuid::Uuid::parse_str(s).map_err(|_| {
        status(&KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("incarnation id '{s}' is not a UUID"),
        ))
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Svc for ControllerService {
    #[tracing::instrument(skip_all, fields(topics = req.get_ref().topics.len()))]
    async fn create_topics(
        &self,
        req: Request<v1::CreateTopicsRequest>,
    ) -> Result<Response<v1::CreateTopicsResponse>, Status> {
        let inner = req.into_inner();
        let requests: Vec<CreateTopic> = inner
            .topics
            .iter()
            .cloned()
            .map(CreateTopic::from)
            .collect();
        if inner.validate_only {
            return Err(validate_only_unsupported());
        }
        match self.controller.create_topics(requests).await {
            Ok(results) => Ok(Response::new(v1::CreateTopicsResponse {
                results: inner
                    .topics
                    .into_iter()
                    .zip(results)
                    .map(|(t, r)| topic_result(t.name, r))
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.create_topics(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all)]
    async fn delete_topics(
        &self,
        req: Request<v1::DeleteTopicsRequest>,
    ) -> Result<Response<v1::DeleteTopicsResponse>, Status> {
        let inner = req.into_inner();
        match self.controller.delete_topics(inner.names.clone()).await {
            Ok(results) => Ok(Response::new(v1::DeleteTopicsResponse {
                results: inner
                    .names
                    .into_iter()
                    .zip(results)
                    .map(|(n, r)| topic_result(n, r))
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.delete_topics(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(acls = req.get_ref().acls.len()))]
    async fn create_acls(
        &self,
        req: Request<v1::CreateAclsRequest>,
    ) -> Result<Response<v1::CreateAclsResponse>, Status> {
        let inner = req.into_inner();
        // An ACL that does not convert is answered in its place; the rest go ahead.
        let asked: Vec<Result<AclBinding, KafkaError>> =
            inner.acls.iter().cloned().map(acl_from_request).collect();
        let valid: Vec<AclBinding> = asked.iter().filter_map(|a| a.clone().ok()).collect();
        match self.controller.create_acls(valid).await {
            Ok(results) => {
                let mut results = results.into_iter();
                let results = asked
                    .into_iter()
                    .map(|a| {
                        a.and_then(|_| results.next().unwrap_or_else(|| Err(no_result())))
                            .into()
                    })
                    .collect();
                Ok(Response::new(v1::CreateAclsResponse { results }))
            }
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.create_acls(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(filters = req.get_ref().filters.len()))]
    async fn delete_acls(
        &self,
        req: Request<v1::DeleteAclsRequest>,
    ) -> Result<Response<v1::DeleteAclsResponse>, Status> {
        let inner = req.into_inner();
        let asked: Vec<Result<AclFilter, KafkaError>> = inner
            .filters
            .iter()
            .cloned()
            .map(acl_filter_from_request)
            .collect();
        let valid: Vec<AclFilter> = asked.iter().filter_map(|f| f.clone().ok()).collect();
        match self.controller.delete_acls(valid).await {
            Ok(deleted) => {
                let mut deleted = deleted.into_iter();
                let results = asked
                    .into_iter()
                    .map(|f| f.and_then(|_| deleted.next().ok_or_else(no_result)).into())
                    .collect();
                Ok(Response::new(v1::DeleteAclsResponse { results }))
            }
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.delete_acls(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(upsertions = req.get_ref().upsertions.len(), deletions = req.get_ref().deletions.len()))]
    async fn alter_user_scram_credentials(
        &self,
        req: Request<v1::AlterUserScramCredentialsRequest>,
    ) -> Result<Response<v1::AlterUserScramCredentialsResponse>, Status> {
        let inner = req.into_inner();
        let (upsertions, deletions) =
            kavka_proto::conv::scram_changes(&inner).map_err(|e| status(&e))?;
        match self
            .controller
            .alter_user_scram_credentials(upsertions, deletions)
            .await
        {
            Ok(results) => Ok(Response::new(v1::AlterUserScramCredentialsResponse {
                results: results
                    .into_iter()
                    .map(|(user, r)| v1::UserScramResult {
                        user,
                        error: r.err().map(Into::into),
                    })
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.alter_user_scram_credentials(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(entries = req.get_ref().entries.len(), validate_only = req.get_ref().validate_only))]
    async fn alter_client_quotas(
        &self,
        req: Request<v1::AlterClientQuotasRequest>,
    ) -> Result<Response<v1::AlterClientQuotasResponse>, Status> {
        let inner = req.into_inner();
        let entries = kavka_proto::conv::quota_alterations(&inner);
        match self
            .controller
            .alter_client_quotas(entries.clone(), inner.validate_only)
            .await
        {
            Ok(results) => Ok(Response::new(
                kavka_proto::conv::alter_client_quotas_response(&entries, results),
            )),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.alter_client_quotas(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all)]
    async fn create_partitions(
        &self,
        req: Request<v1::CreatePartitionsRequest>,
    ) -> Result<Response<v1::CreatePartitionsResponse>, Status> {
        let inner = req.into_inner();
        if inner.validate_only {
            return Err(validate_only_unsupported());
        }
        let asked = inner
            .topics
            .iter()
            .map(|t| GrowTopic::from(t.clone()))
            .collect();
        match self.controller.create_partitions(asked).await {
            Ok(results) => Ok(Response::new(v1::CreatePartitionsResponse {
                results: inner
                    .topics
                    .into_iter()
                    .zip(results)
                    .map(|(t, r)| topic_result(t.name, r))
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.create_partitions(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(topic = %req.get_ref().topic, broker = ?req.get_ref().broker))]
    async fn alter_configs(
        &self,
        req: Request<v1::AlterConfigsRequest>,
    ) -> Result<Response<v1::AlterConfigsResponse>, Status> {
        let inner = req.into_inner();
        if inner.validate_only {
            return Err(validate_only_unsupported());
        }
        if let Some(scope) = &inner.broker {
            let broker = (scope.broker_id != -1).then_some(BrokerId(scope.broker_id));
            return match self
                .controller
                .alter_broker_configs(
                    broker,
                    inner.set.clone().into_iter().collect(),
                    inner.delete.clone(),
                )
                .await
            {
                Ok(configs) => Ok(Response::new(v1::AlterConfigsResponse {
                    configs: configs
                        .into_iter()
                        .map(|(name, value)| v1::ConfigEntry {
                            name,
                            value,
                            is_default: false,
                            source: if broker.is_some() {
                                "DYNAMIC_BROKER_CONFIG"
                            } else {
                                "DYNAMIC_DEFAULT_BROKER_CONFIG"
                            }
                            .into(),
                        })
                        .collect(),
                })),
                Err(e) => match self.forward_target(&e).await {
                    Some(mut c) => c.alter_configs(inner).await,
                    None => Err(to_status(&e)),
                },
            };
        }
        match self
            .controller
            .alter_topic_configs(
                &inner.topic,
                inner.set.clone().into_iter().collect(),
                inner.delete.clone(),
            )
            .await
        {
            Ok(overrides) => {
                // Committed: described as stored (values from before today's rules too).
                // (Brokers' own defaults, e.g. flush.messages, are theirs to describe.)
                let (config, _) = TopicConfig::from_stored(&overrides);
                let configs = config
                    .entries(&BTreeMap::new(), &overrides)
                    .into_iter()
                    .map(|c| v1::ConfigEntry {
                        name: c.name.to_string(),
                        is_default: c.is_default(),
                        source: c.source.name().to_string(),
                        value: c.value,
                    })
                    .collect();
                Ok(Response::new(v1::AlterConfigsResponse { configs }))
            }
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.alter_configs(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(broker = req.get_ref().broker_id, partition = req.get_ref().partition))]
    async fn alter_partition(
        &self,
        req: Request<v1::AlterPartitionRequest>,
    ) -> Result<Response<v1::AlterPartitionResponse>, Status> {
        let inner = req.into_inner();
        let topic_id = uuid::Uuid::parse_str(&inner.topic_id).map_err(|_| {
            status(&KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("topic id '{}' is not a UUID", inner.topic_id),
            ))
        })?;
        let r = AlterPartition {
            broker: BrokerId(inner.broker_id),
            topic_id: kavka_metadata::TopicId(topic_id),
            partition: PartitionId(inner.partition),
            leader_epoch: LeaderEpoch(inner.leader_epoch),
            partition_epoch: inner.partition_epoch,
            new_isr: inner.new_isr.iter().map(|&b| BrokerId(b)).collect(),
        };
        let incarnation = parse_incarnation(&inner.incarnation_id)?;
        match self.controller.alter_partition(r, incarnation).await {
            Ok(isr) => Ok(Response::new(v1::AlterPartitionResponse {
                error: None,
                isr: isr.into_iter().map(|b| b.0).collect(),
            })),
            Err(ControllerError::Kafka(k)) => Ok(Response::new(v1::AlterPartitionResponse {
                error: Some(k.into()),
                isr: vec![],
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.alter_partition(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(broker = req.get_ref().broker_id))]
    async fn allocate_producer_ids(
        &self,
        req: Request<v1::AllocateProducerIdsRequest>,
    ) -> Result<Response<v1::AllocateProducerIdsResponse>, Status> {
        let inner = req.into_inner();
        let incarnation = parse_incarnation(&inner.incarnation_id)?;
        match self
            .controller
            .allocate_producer_ids(BrokerId(inner.broker_id), incarnation)
            .await
        {
            Ok((start, len)) => Ok(Response::new(v1::AllocateProducerIdsResponse {
                error: None,
                producer_id_start: start,
                producer_id_len: len,
            })),
            Err(ControllerError::Kafka(k)) => Ok(Response::new(v1::AllocateProducerIdsResponse {
                error: Some(k.into()),
                producer_id_start: -1,
                producer_id_len: 0,
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.allocate_producer_ids(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(broker = req.get_ref().broker_id))]
    async fn controlled_shutdown(
        &self,
        req: Request<v1::ControlledShutdownRequest>,
    ) -> Result<Response<v1::ControlledShutdownResponse>, Status> {
        let inner = req.into_inner();
        let incarnation = parse_incarnation(&inner.incarnation_id)?;
        match self
            .controller
            .controlled_shutdown(BrokerId(inner.broker_id), incarnation)
            .await
        {
            Ok(left) => Ok(Response::new(v1::ControlledShutdownResponse {
                error: None,
                remaining_leaderships: left as i32,
            })),
            Err(ControllerError::Kafka(k)) => Ok(Response::new(v1::ControlledShutdownResponse {
                error: Some(k.into()),
                remaining_leaderships: -1,
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.controlled_shutdown(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(partitions = req.get_ref().partitions.len()))]
    async fn elect_leaders(
        &self,
        req: Request<v1::ElectLeadersRequest>,
    ) -> Result<Response<v1::ElectLeadersResponse>, Status> {
        let inner = req.into_inner();
        let kind = kavka_proto::conv::election_type(inner.election_type)
            .map_err(|e| kavka_proto::conv::status(&e))?;
        let only = (!inner.partitions.is_empty()).then(|| {
            inner
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), PartitionId(p.partition)))
                .collect()
        });
        match self.controller.elect_leaders(only, kind).await {
            Ok(results) => Ok(Response::new(v1::ElectLeadersResponse {
                results: results
                    .into_iter()
                    .map(|(topic, p, r)| v1::ElectLeadersResult {
                        topic,
                        partition: p.0,
                        error: r.err().map(Into::into),
                    })
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.elect_leaders(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(moves = req.get_ref().moves.len()))]
    async fn alter_partition_reassignments(
        &self,
        req: Request<v1::AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<v1::AlterPartitionReassignmentsResponse>, Status> {
        let inner = req.into_inner();
        let moves = inner
            .moves
            .iter()
            .cloned()
            .map(PartitionMove::from)
            .collect();
        match self.controller.alter_reassignments(moves).await {
            Ok(results) => Ok(Response::new(v1::AlterPartitionReassignmentsResponse {
                results: results
                    .into_iter()
                    .map(|(topic, p, r)| v1::PartitionMoveResult {
                        topic,
                        partition: p.0,
                        error: r.err().map(Into::into),
                    })
                    .collect(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.alter_partition_reassignments(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(broker = req.get_ref().broker_id))]
    async fn decommission_broker(
        &self,
        req: Request<v1::DecommissionBrokerRequest>,
    ) -> Result<Response<v1::DecommissionBrokerResponse>, Status> {
        let inner = req.into_inner();
        let broker = BrokerId(inner.broker_id);
        match self
            .controller
            .decommission(broker, !inner.recommission)
            .await
        {
            Ok(r) => Ok(Response::new(v1::DecommissionBrokerResponse {
                error: r.err().map(Into::into),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.decommission_broker(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(execute = req.get_ref().execute))]
    async fn balance_cluster(
        &self,
        req: Request<v1::BalanceClusterRequest>,
    ) -> Result<Response<v1::BalanceClusterResponse>, Status> {
        let inner = req.into_inner();
        match self.controller.balance(inner.execute).await {
            Ok(plan) => Ok(Response::new(v1::BalanceClusterResponse::from(&plan))),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.balance_cluster(inner).await,
                None => Err(to_status(&e)),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(broker = req.get_ref().broker_id))]
    async fn register_broker(
        &self,
        req: Request<v1::RegisterBrokerRequest>,
    ) -> Result<Response<v1::RegisterBrokerResponse>, Status> {
        let inner = req.into_inner();
        let r = RegisterBroker {
            broker_id: BrokerId(inner.broker_id),
            incarnation_id: parse_incarnation(&inner.incarnation_id)?,
            endpoints: inner
                .listeners
                .iter()
                .map(|l| Endpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port.clamp(0, u16::MAX as i32) as u16,
                })
                .collect(),
            rack: (!inner.rack.is_empty()).then(|| inner.rack.clone()),
        };
        match self.controller.register_broker(r).await {
            Ok(()) => Ok(Response::new(v1::RegisterBrokerResponse {
                error: None,
                hint: self.hint(),
            })),
            Err(e) => match self.forward_target(&e).await {
                Some(mut c) => c.register_broker(inner).await,
                None => Ok(Response::new(v1::RegisterBrokerResponse {
                    error: Some(match &e {
                        ControllerError::Kafka(k) => k.into(),
                        other => {
                            KafkaError::new(ErrorCode::NotController, other.to_string()).into()
                        }
                    }),
                    hint: self.hint(),
                })),
            },
        }
    }

    type BrokerSessionStream = BoxStream<v1::BrokerHeartbeatResponse>;

    async fn broker_session(
        &self,
        req: Request<Streaming<v1::BrokerHeartbeatRequest>>,
    ) -> Result<Response<Self::BrokerSessionStream>, Status> {
        let mut incoming = req.into_inner();
        let controller = Arc::clone(&self.controller);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut broker = None;
            while let Ok(Some(hb)) = incoming.message().await {
                broker = Some(BrokerId(hb.broker_id));
                let reply = match heartbeat_from(&hb) {
                    Err(e) => Err(ControllerError::Kafka(e)),
                    Ok(beat) => controller.heartbeat(beat).await,
                };
                let hint = controller
                    .leader_hint()
                    .map(|(id, node)| v1::ControllerHint {
                        leader_id: id as i64,
                        leader_addr: node.addr,
                        term: controller.term(),
                    });
                let metadata_offset = controller.image().offset;
                let resp = match reply {
                    Ok(r) => v1::BrokerHeartbeatResponse {
                        error: None,
                        fenced: r.fenced,
                        hint,
                        metadata_offset,
                    },
                    Err(ControllerError::Kafka(k)) => v1::BrokerHeartbeatResponse {
                        error: Some(k.into()),
                        fenced: true,
                        hint,
                        metadata_offset,
                    },
                    Err(e) => v1::BrokerHeartbeatResponse {
                        error: Some(
                            KafkaError::new(ErrorCode::NotController, e.to_string()).into(),
                        ),
                        fenced: true,
                        hint,
                        metadata_offset,
                    },
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
            if let Some(b) = broker {
                controller.session_lost(b);
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type FetchMetadataStream = BoxStream<v1::MetadataBatch>;

    async fn fetch_metadata(
        &self,
        req: Request<v1::FetchMetadataRequest>,
    ) -> Result<Response<Self::FetchMetadataStream>, Status> {
        let mut last = req.get_ref().from_offset;
        let quorum = Arc::clone(self.controller.quorum());
        let (tx, rx) = mpsc::channel(METADATA_STREAM_BUFFER);
        tokio::spawn(async move {
            let mut images = quorum.subscribe();
            loop {
                let update = match quorum.read_after(last).await {
                    Ok(u) => u,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                let batches: Vec<v1::MetadataBatch> = match update {
                    MetadataUpdate::Snapshot(image) => vec![v1::MetadataBatch {
                        offset: image.offset,
                        snapshot: true,
                        records: kavka_metadata::codec::encode_batch(&image.snapshot_records())
                            .into(),
                    }],
                    MetadataUpdate::Batches(b) => b
                        .into_iter()
                        .map(|(offset, records)| v1::MetadataBatch {
                            offset: offset as i64,
                            snapshot: false,
                            records: kavka_metadata::codec::encode_batch(&records).into(),
                        })
                        .collect(),
                };
                for b in batches {
                    last = b.offset;
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                if images.borrow_and_update().offset > last {
                    continue;
                }
                tokio::select! {
                    r = images.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    #[tracing::instrument(skip_all, fields(voter = req.get_ref().voter_id))]
    async fn add_raft_voter(
        &self,
        req: Request<v1::AddRaftVoterRequest>,
    ) -> Result<Response<v1::RaftVoterChangeResponse>, Status> {
        self.admit_voter_change(&req)?;
        let r = req.get_ref().clone();
        let id = voter_id(r.voter_id)?;
        let timeout = change_timeout(r.timeout_ms);
        let q = self.controller.quorum();
        if !q.is_leader() {
            let e = ControllerError::NotController(self.controller.leader_hint());
            let mut c = self
                .forward_target_for(&e, timeout + PROBE_TIMEOUT)
                .await
                .ok_or_else(|| to_status(&e))?;
            return c.add_raft_voter(r).await;
        }
        if r.address.trim().is_empty() {
            return Err(status(&KafkaError::new(
                ErrorCode::InvalidRequest,
                "the new voter's address (its controller listener, host:port) is missing",
            )));
        }
        q.precheck_add_voter(id)
            .await
            .map_err(|e| to_status(&ControllerError::from(e)))?;
        let asked = parse_directory_id(&r.directory_id)?;
        let directory_id = self.probe_new_voter(id, &r.address, asked).await?;
        let node = VoterNode::with_directory(r.address.trim(), directory_id);
        let offset = q
            .add_voter(id, node, timeout)
            .await
            .map_err(|e| to_status(&ControllerError::from(e)))?;
        Ok(Response::new(v1::RaftVoterChangeResponse {
            membership_offset: offset as i64,
        }))
    }

    #[tracing::instrument(skip_all, fields(voter = req.get_ref().voter_id))]
    async fn remove_raft_voter(
        &self,
        req: Request<v1::RemoveRaftVoterRequest>,
    ) -> Result<Response<v1::RaftVoterChangeResponse>, Status> {
        self.admit_voter_change(&req)?;
        let r = req.get_ref().clone();
        let id = voter_id(r.voter_id)?;
        let q = self.controller.quorum();
        if !q.is_leader() {
            let e = ControllerError::NotController(self.controller.leader_hint());
            let mut c = self
                .forward_target_for(&e, change_timeout(r.timeout_ms) + PROBE_TIMEOUT)
                .await
                .ok_or_else(|| to_status(&e))?;
            return c.remove_raft_voter(r).await;
        }
        let directory_id = parse_directory_id(&r.directory_id)?;
        let offset = q
            .remove_voter(id, directory_id, change_timeout(r.timeout_ms))
            .await
            .map_err(|e| to_status(&ControllerError::from(e)))?;
        Ok(Response::new(v1::RaftVoterChangeResponse {
            membership_offset: offset as i64,
        }))
    }

    async fn quorum_status(
        &self,
        req: Request<v1::QuorumStatusRequest>,
    ) -> Result<Response<v1::QuorumStatusResponse>, Status> {
        let q = self.controller.quorum();
        if req.get_ref().from_leader
            && !q.is_leader()
            && let Some(leader) = self.controller.leader_hint()
            && let Some(mut c) = self
                .forward_target(&ControllerError::NotController(Some(leader)))
                .await
            && let Ok(r) = c
                .quorum_status(v1::QuorumStatusRequest { from_leader: false })
                .await
        {
            return Ok(r);
        }
        let m = q.metrics();
        let log_end = m.last_log_index.map_or(-1, |i| i as i64);
        let progress = m.replication.clone().unwrap_or_default();
        let heartbeats = m.heartbeat.clone().unwrap_or_default();
        let (membership_offset, membership) = q.membership();
        let status_of = |id: NodeId| {
            let node = q.member(id).unwrap_or_default();
            let end = if id == q.node_id() {
                Some(log_end)
            } else {
                progress
                    .get(&id)
                    .map(|p| p.as_ref().map_or(-1, |l| l.index() as i64))
            };
            let caught_up_ms_ago = if id == q.node_id() && q.is_leader() {
                0
            } else {
                heartbeats
                    .get(&id)
                    .and_then(|h| h.as_ref())
                    .map_or(-1, |t| openraft::Instant::elapsed(&**t).as_millis() as i64)
            };
            v1::VoterStatus {
                id: id as i64,
                addr: node.addr.clone(),
                log_end: end.unwrap_or(-1),
                lag: end.map_or(-1, |e| (log_end - e).max(0)),
                directory_id: membership
                    .get_node(&id)
                    .and_then(|n| n.directory_id)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                last_caught_up_ms_ago: caught_up_ms_ago,
            }
        };
        // The voters of the membership in force (the newest config while a change is in
        // flight); before this node has a membership (an observer), the static list.
        let voter_ids: Vec<NodeId> = match membership.get_joint_config().last() {
            Some(ids) if !ids.is_empty() => ids.iter().copied().collect(),
            _ => q.voters().keys().copied().collect(),
        };
        let voters = voter_ids.into_iter().map(status_of).collect();
        let observers = membership.learner_ids().map(status_of).collect();
        let image = q.image();
        Ok(Response::new(v1::QuorumStatusResponse {
            node_id: q.node_id() as i64,
            leader_id: q.leader().map_or(-1, |l| l as i64),
            term: m.current_term,
            log_end,
            committed: m.last_applied.map_or(-1, |l| l.index() as i64),
            applied: image.offset,
            voters,
            observers,
            directory_id: q.directory_id().map(|d| d.to_string()).unwrap_or_default(),
            membership_offset: membership_offset.map_or(-1, |o| o as i64),
            cluster_id: image.cluster_id.clone().unwrap_or_default(),
            image_digest: image.digest(),
            sessions: if q.is_leader() {
                self.controller
                    .session_status()
                    .into_iter()
                    .map(|s| v1::BrokerSessionStatus {
                        broker_id: s.broker_id.0,
                        last_heartbeat_age_ms: s.last_heartbeat_age.as_millis() as i64,
                        metadata_offset: s.metadata_offset,
                    })
                    .collect()
            } else {
                vec![]
            },
        }))
    }
}

/// The controller answered fewer items than it was asked: a bug, reported, not hidden.
fn no_result() -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownServerError,
        "the controller gave no result for this item",
    )
}
