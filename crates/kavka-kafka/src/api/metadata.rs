//! Metadata and DescribeCluster: brokers as seen through the listener the client came
//! in on (Kafka's per-listener `advertised.listeners`), topics, partitions, leaders.
//!
//! Invariant: only unfenced brokers that registered this listener are listed, and every
//! leader named is one of them or -1. The controller id is one of the listed brokers
//! (every broker forwards admin writes to the active controller, so any of them can take
//! them), the same from every node: the active controller where it is a listed broker,
//! otherwise the lowest listed id.

use super::{Ctx, error_parts, str_bytes};
use crate::{Broker, endpoint_name};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kavka_metadata::{BrokerRegistration, MetadataImage};
use kavka_model::acl::{Operation, Resource};
use kavka_model::admin::NewTopic;
use kavka_model::{ErrorCode, KafkaError};
use std::collections::HashMap;

/// The controller id clients are given: `active` (the active controller's node id) where
/// it is among `listed`, otherwise the lowest listed broker, -1 when none is listed.
fn controller_for_clients(active: i64, listed: &[i32]) -> i32 {
    match i32::try_from(active) {
        Ok(a) if listed.contains(&a) => a,
        _ => listed.iter().copied().min().unwrap_or(-1),
    }
}

/// [`controller_for_clients`] as this broker sees the cluster.
fn controller_id(broker: &Broker, image: &MetadataImage, listener: &str) -> BrokerId {
    let listed: Vec<i32> = brokers(image, listener, false)
        .map(|(b, ..)| b.broker_id.0)
        .collect();
    let active = broker
        .admin
        .active_controller()
        .map_or(-1, |b| i64::from(b.0));
    BrokerId(controller_for_clients(active, &listed))
}

/// Whether a topic Metadata found unknown may be created for the asker: a valid name (an
/// invalid one was answered INVALID_TOPIC_EXCEPTION), never an internal one (`__`).
pub(crate) fn may_auto_create<T>(name: &str, summary: &Result<T, KafkaError>) -> bool {
    matches!(summary, Err(e) if e.code == ErrorCode::UnknownTopicOrPartition)
        && !name.starts_with("__")
}

/// `auto.create.topics.enable` in effect: dynamic (this broker's, else the cluster's),
/// else the node's static setting.
pub(crate) fn auto_create_enabled(broker: &Broker) -> bool {
    broker
        .api
        .dynamic_config()
        .auto_create_topics_enable
        .unwrap_or(broker.config.auto_create_topics_enable)
}

/// Creates `names` with the broker defaults (`num.partitions`,
/// `default.replication.factor`) through the active controller, as any topic is; returns
/// the topics whose creation failed, with why. One that another client created meanwhile
/// is no failure: concurrent first uses create a topic once.
pub(crate) async fn auto_create(broker: &Broker, names: &[String]) -> HashMap<String, KafkaError> {
    // A dynamic num.partitions (this broker's or the cluster's); else the controller's.
    let partitions = broker.api.dynamic_config().num_partitions;
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions,
            ..NewTopic::default()
        })
        .collect();
    let results = match broker.admin.create_topics(&topics, false).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(topics = ?names, error = %e, "auto-creating topics failed");
            return names.iter().map(|n| (n.clone(), e.clone())).collect();
        }
    };
    let mut failed = HashMap::new();
    for r in results {
        match r.result {
            Err(e) => {
                if e.code != ErrorCode::TopicAlreadyExists {
                    failed.insert(r.name, e);
                }
            }
            Ok(_) => {
                tracing::info!(topic = %r.name, "auto-created topic (auto.create.topics.enable)")
            }
        }
    }
    failed
}

/// Brokers reachable through `listener`: (registration, host, port).
fn brokers<'a>(
    image: &'a MetadataImage,
    listener: &str,
    include_fenced: bool,
) -> impl Iterator<Item = (&'a BrokerRegistration, String, i32)> + 'a {
    let name = endpoint_name(listener);
    image
        .brokers()
        .filter(move |b| include_fenced || !b.fenced)
        .filter_map(move |b| {
            b.endpoint(&name)
                .map(|e| (b, e.host.clone(), i32::from(e.port)))
        })
}

pub(crate) async fn metadata(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: MetadataRequest,
) -> MetadataResponse {
    let listener = ctx.listener;
    let mut image = broker.api.image();
    // Asked by name, or (v10+) by topic id.
    let asked: Option<Vec<Result<String, uuid::Uuid>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| match t.name {
                Some(n) => Ok(n.0.to_string()),
                None => image
                    .topics()
                    .find(|i| i.id.0 == t.topic_id)
                    .map(|i| i.name.to_string())
                    .ok_or(t.topic_id),
            })
            .collect()
    });
    let describable = |name: &str| ctx.may(broker, Operation::Describe, Resource::topic(name));
    let mut topics = Vec::new();
    let names: Vec<String> = match &asked {
        // Kafka: a null list is every topic the caller may describe; an empty one, none.
        None => image
            .topics()
            .map(|t| t.name.to_string())
            .filter(|n| describable(n))
            .collect(),
        // A topic named but not describable is answered TOPIC_AUTHORIZATION_FAILED,
        // whether it exists or not (Kafka does not tell).
        Some(v) => v
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .filter(|n| {
                let may = describable(n);
                if !may {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(str_bytes(n.clone()))))
                            .with_error_code(ErrorCode::TopicAuthorizationFailed.code()),
                    );
                }
                may
            })
            .collect(),
    };
    let mut live: Vec<BrokerId> = brokers(&image, listener, false)
        .map(|(b, ..)| BrokerId(b.broker_id.0))
        .collect();
    if !names.is_empty() {
        let (mut summaries, mut states) = broker.api.metadata(&names).await;
        let may_create = auto_create_enabled(broker) && req.allow_auto_topic_creation;
        let unknown: Vec<String> = summaries
            .iter()
            .filter(|(name, s)| may_auto_create(name, s) && ctx.may_create_topic(broker, name))
            .map(|(name, _)| name.clone())
            .collect();
        if may_create && !unknown.is_empty() {
            let failed = auto_create(broker, &unknown).await;
            image = broker.api.image();
            live = brokers(&image, listener, false)
                .map(|(b, ..)| BrokerId(b.broker_id.0))
                .collect();
            (summaries, states) = broker.api.metadata(&names).await;
            for (name, s) in summaries.iter_mut() {
                if let Some(e) = failed.get(name) {
                    *s = Err(e.clone());
                } else if unknown.contains(name) && s.is_err() {
                    // Created, but not in this broker's image yet: clients ask again.
                    *s = Err(KafkaError::new(
                        ErrorCode::LeaderNotAvailable,
                        format!("topic '{name}' is being created"),
                    ));
                }
            }
        }
        for (name, summary) in summaries {
            let mut t = MetadataResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(name.clone()))));
            match summary {
                Err(e) => t.error_code = e.code.code(),
                Ok(s) => {
                    t.topic_id = image
                        .topics()
                        .find(|i| i.name == s.name)
                        .map(|i| i.id.0)
                        .unwrap_or_default();
                    t.is_internal = s.name.as_str().starts_with("__");
                    let parts = states
                        .iter()
                        .find(|(n, _)| *n == s.name)
                        .map(|(_, ps)| ps.as_slice())
                        .unwrap_or_default();
                    t.partitions = parts
                        .iter()
                        .map(|p| {
                            let ids = |v: &[kavka_model::BrokerId]| {
                                v.iter().map(|b| BrokerId(b.0)).collect::<Vec<_>>()
                            };
                            let offline = p
                                .replicas
                                .iter()
                                .filter(|r| !live.contains(&BrokerId(r.0)))
                                .map(|b| BrokerId(b.0))
                                .collect();
                            let leader_live =
                                p.leader.is_some_and(|l| live.contains(&BrokerId(l.0)));
                            MetadataResponsePartition::default()
                                .with_error_code(match (&p.error, leader_live) {
                                    (Some(e), _) if e.code == ErrorCode::LeaderNotAvailable => {
                                        e.code.code()
                                    }
                                    (_, false) => ErrorCode::LeaderNotAvailable.code(),
                                    _ => 0,
                                })
                                .with_partition_index(p.partition.0)
                                .with_leader_id(BrokerId(match p.leader {
                                    Some(l) if leader_live => l.0,
                                    _ => -1,
                                }))
                                .with_leader_epoch(p.leader_epoch.0)
                                .with_replica_nodes(ids(&p.replicas))
                                .with_isr_nodes(ids(&p.isr))
                                .with_offline_replicas(offline)
                        })
                        .collect();
                }
            }
            topics.push(t);
        }
    }
    for id in asked.iter().flatten().filter_map(|r| r.as_ref().err()) {
        topics.push(
            MetadataResponseTopic::default()
                .with_topic_id(*id)
                .with_error_code(ErrorCode::UnknownTopicId.code()),
        );
    }
    MetadataResponse::default()
        .with_brokers(
            brokers(&image, listener, false)
                .map(|(b, host, port)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.broker_id.0))
                        .with_host(str_bytes(host))
                        .with_port(port)
                        .with_rack(b.rack.clone().map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(image.cluster_id.clone().map(str_bytes))
        .with_controller_id(controller_id(broker, &image, listener))
        .with_topics(topics)
}

pub(crate) fn describe_cluster(
    broker: &Broker,
    listener: &str,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = broker.api.image();
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(str_bytes(image.cluster_id.clone().unwrap_or_default()))
        .with_controller_id(controller_id(broker, &image, listener))
        .with_cluster_authorized_operations(i32::MIN);
    // Endpoint type 1 is brokers; controllers (2) are not reachable by clients here.
    if req.endpoint_type != 1 {
        let (code, msg) = error_parts(&kavka_model::KafkaError::new(
            ErrorCode::UnsupportedEndpointType,
            format!(
                "endpoint type {} is not served: controllers take no client connections",
                req.endpoint_type
            ),
        ));
        resp.error_code = code;
        resp.error_message = msg;
        return resp;
    }
    resp.brokers = brokers(&image, listener, req.include_fenced_brokers)
        .map(|(b, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.broker_id.0))
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(b.rack.clone().map(str_bytes))
                .with_is_fenced(b.fenced)
        })
        .collect();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_names_the_same_controller() {
        // (active controller, listed brokers) -> controller id for clients
        let cases: &[(i64, &[i32], i32)] = &[
            (2, &[1, 2, 3], 2),
            (4, &[3, 1, 2], 1), // a controller-only node: the lowest broker
            (-1, &[3, 2], 2),   // none known yet
            (1, &[], -1),
        ];
        for &(active, listed, want) in cases {
            assert_eq!(
                controller_for_clients(active, listed),
                want,
                "{active} {listed:?}"
            );
        }
    }
}
