//! The controller quorum's APIs (KIP-853): AddRaftVoter (v0), RemoveRaftVoter (v0) and
//! DescribeQuorum (v0–2), translated onto the broker API (`Admin::add_raft_voter`, ...),
//! which forwards them to the active controller. UpdateRaftVoter is not served (nor
//! advertised): a voter's address is changed by removing and adding it again.
//!
//! Authorization, as Kafka: ALTER on the cluster for voter changes, DESCRIBE for
//! DescribeQuorum. AddRaftVoter names the new voter's controller listener by its first
//! listener's host and port. A request naming another cluster id is refused
//! INCONSISTENT_CLUSTER_ID. DescribeQuorum answers for `__cluster_metadata-0` only (the
//! one Raft partition); any other partition is UNKNOWN_TOPIC_OR_PARTITION.

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, DescribeQuorumRequest,
    DescribeQuorumResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use kavka_model::acl::{Operation, Resource};
use kavka_model::raft_voters::{AddVoter, QuorumDescription, QuorumMember, RemoveVoter};
use kavka_model::{ErrorCode, KafkaError};

/// The metadata log's topic, as Kafka names it.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// A request's directory id: the nil UUID means "not given".
fn directory_id(d: uuid::Uuid) -> Option<uuid::Uuid> {
    (!d.is_nil()).then_some(d)
}

fn check_cluster(broker: &Broker, asked: Option<&StrBytes>) -> Result<(), KafkaError> {
    let image = broker.api.image();
    match (asked, image.cluster_id.as_deref()) {
        // An empty cluster id is none given (clients that do not know it send "").
        (Some(asked), Some(ours)) if !asked.is_empty() && asked.as_str() != ours => {
            Err(KafkaError::new(
                ErrorCode::InconsistentClusterId,
                format!("this is cluster {ours}, not {}", asked.as_str()),
            ))
        }
        _ => Ok(()),
    }
}

#[tracing::instrument(skip_all, fields(voter = req.voter_id))]
pub(crate) async fn add_raft_voter(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let decided = async {
        ctx.check(broker, Operation::Alter, Resource::cluster())?;
        check_cluster(broker, req.cluster_id.as_ref())?;
        let listener = req.listeners.first().ok_or_else(|| {
            KafkaError::new(
                ErrorCode::InvalidRequest,
                "the new voter names no listener (its controller listener's host and port)",
            )
        })?;
        let add = AddVoter {
            id: req.voter_id,
            directory_id: directory_id(req.voter_directory_id),
            address: format!("{}:{}", listener.host.as_str(), listener.port),
            timeout_ms: u32::try_from(req.timeout_ms).unwrap_or(0),
        };
        broker.api.admin.add_raft_voter(&add).await.map(|_| ())
    }
    .await;
    let (code, message) = outcome(&decided);
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

#[tracing::instrument(skip_all, fields(voter = req.voter_id))]
pub(crate) async fn remove_raft_voter(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let decided = async {
        ctx.check(broker, Operation::Alter, Resource::cluster())?;
        check_cluster(broker, req.cluster_id.as_ref())?;
        let remove = RemoveVoter {
            id: req.voter_id,
            directory_id: directory_id(req.voter_directory_id),
            timeout_ms: 0,
        };
        broker
            .api
            .admin
            .remove_raft_voter(&remove)
            .await
            .map(|_| ())
    }
    .await;
    let (code, message) = outcome(&decided);
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

fn outcome(r: &Result<(), KafkaError>) -> (i16, Option<StrBytes>) {
    match r {
        Ok(()) => (ErrorCode::None.code(), None),
        Err(e) => error_parts(e),
    }
}

#[tracing::instrument(skip_all)]
pub(crate) async fn describe_quorum(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let described = match ctx.check(broker, Operation::Describe, Resource::cluster()) {
        Ok(()) => broker.api.admin.describe_quorum().await,
        Err(e) => Err(e),
    };
    let q = match described {
        Ok(q) => q,
        Err(e) => {
            let (code, message) = error_parts(&e);
            return DescribeQuorumResponse::default()
                .with_error_code(code)
                .with_error_message(message.filter(|_| ctx.version >= 2));
        }
    };
    answer(&q, &req, ctx.version)
}

/// The response for `req` at `version` from the quorum `q`: the metadata partition's
/// state for each partition asked (UNKNOWN_TOPIC_OR_PARTITION for any other); the
/// timestamps from v1, directory ids, messages and the voters' endpoints from v2 (a
/// version without a field must leave it at its default to encode).
fn answer(
    q: &QuorumDescription,
    req: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let state = |m: &QuorumMember| {
        let s = ReplicaState::default()
            .with_replica_id(BrokerId(m.id))
            .with_log_end_offset(m.log_end);
        let s = if version >= 1 {
            // Kafka's timestamps are wall clock ms; the controller knows ages.
            s.with_last_caught_up_timestamp(caught_up_at(m.last_caught_up_ms_ago))
        } else {
            s
        };
        if version >= 2 {
            s.with_replica_directory_id(m.directory_id.unwrap_or(uuid::Uuid::nil()))
        } else {
            s
        }
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let ours = t.topic_name.0.as_str() == METADATA_TOPIC;
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            if !ours || p.partition_index != 0 {
                                return PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                                    .with_error_message((version >= 2).then(|| {
                                        str_bytes(format!(
                                            "the controller quorum's log is {METADATA_TOPIC}-0"
                                        ))
                                    }));
                            }
                            PartitionData::default()
                                .with_partition_index(0)
                                .with_leader_id(BrokerId(q.leader_id))
                                .with_leader_epoch(i32::try_from(q.epoch).unwrap_or(i32::MAX))
                                .with_high_watermark(q.high_watermark)
                                .with_current_voters(q.voters.iter().map(state).collect())
                                .with_observers(q.observers.iter().map(state).collect())
                        })
                        .collect(),
                )
        })
        .collect();
    let nodes = q
        .voters
        .iter()
        .chain(&q.observers)
        .filter(|_| version >= 2)
        .filter_map(|m| {
            let (host, port) = m.address.rsplit_once(':')?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(m.id))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(str_bytes("CONTROLLER"))
                            .with_host(str_bytes(host))
                            .with_port(port.parse().ok()?),
                    ]),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}

/// A wall clock time (ms since the epoch) from an age in ms; -1 stays unknown.
fn caught_up_at(age_ms: i64) -> i64 {
    if age_ms < 0 {
        return -1;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now - age_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{TopicName, describe_quorum_request};

    fn quorum() -> QuorumDescription {
        QuorumDescription {
            leader_id: 2,
            epoch: 7,
            high_watermark: 40,
            voters: vec![
                QuorumMember {
                    id: 2,
                    directory_id: None,
                    address: "127.0.0.1:9094".into(),
                    log_end: 41,
                    last_caught_up_ms_ago: 0,
                },
                QuorumMember {
                    id: 4,
                    directory_id: Some(uuid::Uuid::from_u128(4)),
                    address: "127.0.0.1:9095".into(),
                    log_end: -1,
                    last_caught_up_ms_ago: -1,
                },
            ],
            observers: vec![],
        }
    }

    fn ask(topic: &str, partition: i32) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(str_bytes(topic)))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default()
                        .with_partition_index(partition),
                ]),
        ])
    }

    #[test]
    fn the_metadata_partition_is_described_and_others_are_unknown() {
        // (topic, partition) -> error code of the partition
        let cases = [
            (METADATA_TOPIC, 0, ErrorCode::None),
            (METADATA_TOPIC, 1, ErrorCode::UnknownTopicOrPartition),
            ("orders", 0, ErrorCode::UnknownTopicOrPartition),
        ];
        for (topic, p, want) in cases {
            let r = answer(&quorum(), &ask(topic, p), 2);
            let part = &r.topics[0].partitions[0];
            assert_eq!(part.error_code, want.code(), "{topic}-{p}");
            if want == ErrorCode::None {
                assert_eq!(part.leader_id, BrokerId(2));
                assert_eq!(part.leader_epoch, 7);
                assert_eq!(part.high_watermark, 40);
                let ids: Vec<i32> = part.current_voters.iter().map(|v| v.replica_id.0).collect();
                assert_eq!(ids, vec![2, 4]);
                assert_eq!(
                    part.current_voters[0].replica_directory_id,
                    uuid::Uuid::nil()
                );
                assert_eq!(
                    part.current_voters[1].replica_directory_id,
                    uuid::Uuid::from_u128(4)
                );
                assert_eq!(part.current_voters[1].last_caught_up_timestamp, -1);
            }
        }
        let r = answer(&quorum(), &ask(METADATA_TOPIC, 0), 2);
        let ports: Vec<u16> = r.nodes.iter().map(|n| n.listeners[0].port).collect();
        assert_eq!(ports, vec![9094, 9095]);
        // Every version encodes: fields it lacks stay at their defaults.
        for version in 0..=2 {
            let r = answer(&quorum(), &ask(METADATA_TOPIC, 0), version);
            let mut buf = bytes::BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&r, &mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let r = answer(&quorum(), &ask("orders", 0), version);
            kafka_protocol::protocol::Encodable::encode(&r, &mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn a_nil_directory_id_is_not_given() {
        assert_eq!(directory_id(uuid::Uuid::nil()), None);
        let d = uuid::Uuid::from_u128(9);
        assert_eq!(directory_id(d), Some(d));
    }
}
