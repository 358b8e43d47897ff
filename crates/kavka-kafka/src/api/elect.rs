//! ElectLeaders (v0–2): preferred and unclean leader elections, translated onto the
//! broker API's `Admin::elect_leaders`, which forwards them to the active controller and
//! answers once this broker's image shows the new leaders.
//!
//! Authorization, as Kafka: ALTER on the cluster; a denied request is answered
//! CLUSTER_AUTHORIZATION_FAILED at the top (v1+) and for every partition it named.
//! v0 has no election type: it is a preferred election.
//!
//! Invariant: every partition named gets exactly one result; a request naming none
//! (null) elects wherever an election is possible and reports those partitions.

use super::{Ctx, error_parts};
use crate::Broker;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kavka_model::acl::{Operation, Resource};
use kavka_model::admin::{ElectionType, PartitionOutcome, PartitionRef};
use kavka_model::{ErrorCode, KafkaError, PartitionId};
use std::collections::BTreeMap;

#[tracing::instrument(skip_all, fields(election_type = req.election_type))]
pub(crate) async fn elect_leaders(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let asked: Vec<PartitionRef> = req
        .topic_partitions
        .iter()
        .flatten()
        .flat_map(|t| {
            t.partitions.iter().map(|&p| PartitionRef {
                topic: t.topic.0.to_string(),
                partition: PartitionId(p),
            })
        })
        .collect();
    let kind = if ctx.version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_wire(req.election_type)
    };
    let decided = match (
        ctx.check(broker, Operation::Alter, Resource::cluster()),
        kind,
    ) {
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!(
                "unknown election type {}: 0 is preferred, 1 unclean",
                req.election_type
            ),
        )),
        (Ok(()), Some(kind)) => broker.api.admin.elect_leaders(&asked, kind).await,
    };
    answer(&asked, decided, ctx.version)
}

/// The response: every asked partition's outcome (or the request's error for each), in
/// request order grouped by topic; the request's error also at the top from v1.
fn answer(
    asked: &[PartitionRef],
    decided: Result<Vec<PartitionOutcome>, KafkaError>,
    version: i16,
) -> ElectLeadersResponse {
    let mut top = ErrorCode::None.code();
    let outcomes: Vec<(String, PartitionId, Result<(), KafkaError>)> = match decided {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| (o.topic, o.partition, o.result))
            .collect(),
        Err(e) => {
            if version >= 1 && e.code == ErrorCode::ClusterAuthorizationFailed {
                top = e.code.code();
            }
            asked
                .iter()
                .map(|p| (p.topic.clone(), p.partition, Err(e.clone())))
                .collect()
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (topic, p, result) in outcomes {
        let (code, message) = match &result {
            Ok(()) => (ErrorCode::None.code(), None),
            Err(e) => error_parts(e),
        };
        if !by_topic.contains_key(&topic) {
            order.push(topic.clone());
        }
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(p.0)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    ElectLeadersResponse::default()
        .with_error_code(top)
        .with_replica_election_results(
            order
                .into_iter()
                .map(|topic| {
                    let results = by_topic.remove(&topic).unwrap_or_default();
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(super::str_bytes(topic)))
                        .with_partition_result(results)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32) -> PartitionRef {
        PartitionRef {
            topic: topic.into(),
            partition: PartitionId(partition),
        }
    }

    fn codes(r: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
        r.replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect()
    }

    #[test]
    fn answers_group_by_topic_and_carry_the_request_error() {
        let asked = [p("a", 0), p("b", 1), p("a", 2)];
        let ok = answer(
            &asked,
            Ok(vec![
                PartitionOutcome {
                    topic: "a".into(),
                    partition: PartitionId(0),
                    result: Ok(()),
                },
                PartitionOutcome {
                    topic: "b".into(),
                    partition: PartitionId(1),
                    result: Err(KafkaError::new(ErrorCode::ElectionNotNeeded, "led")),
                },
                PartitionOutcome {
                    topic: "a".into(),
                    partition: PartitionId(2),
                    result: Ok(()),
                },
            ]),
            2,
        );
        assert_eq!(ok.error_code, 0);
        assert_eq!(
            codes(&ok),
            vec![
                ("a".into(), 0, 0),
                ("a".into(), 2, 0),
                ("b".into(), 1, ErrorCode::ElectionNotNeeded.code())
            ]
        );

        let denied = KafkaError::new(ErrorCode::ClusterAuthorizationFailed, "no ALTER");
        for (version, top) in [(0, 0), (1, 31), (2, 31)] {
            let r = answer(&asked, Err(denied.clone()), version);
            assert_eq!(r.error_code, top, "v{version}");
            assert!(codes(&r).iter().all(|c| c.2 == 31), "v{version}");
            assert_eq!(codes(&r).len(), 3);
        }
        let bad = answer(
            &asked,
            Err(KafkaError::new(ErrorCode::InvalidRequest, "type 9")),
            2,
        );
        assert_eq!(bad.error_code, 0, "only authorization fails the request");
        assert!(codes(&bad).iter().all(|c| c.2 == 42));
    }
}
