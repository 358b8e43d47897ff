//! Admin and epoch messages <-> the broker API's model types (`kavka_model::admin`,
//! `kavka_model::epoch`). The wire keeps its sentinels (`-1`/`0` for "the default",
//! `-1` for "no epoch"); the model has none, and they are mapped here and only here.

use crate::v1;
use kavka_model::admin::{
    AlterConfigs, BalancePlan, ConfigTarget, ElectionType, NewPartitions, NewTopic, OngoingMove,
    PartitionMove, PartitionOutcome, PartitionRef, PlannedMove, StuckPartition, TopicOutcome,
};
use kavka_model::epoch::{EpochAnswer, EpochEnd, EpochQuery};
use kavka_model::logs::LogDir;
use kavka_model::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TopicId};

fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn ids(brokers: &[BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

fn error_of<T>(result: &Result<T, KafkaError>) -> Option<v1::Error> {
    result.as_ref().err().map(v1::Error::from)
}

/// `partitions`: -1 is the default; anything else is the client's (0 and below are
/// refused by the controller, naming the count).
impl From<v1::NewTopic> for NewTopic {
    fn from(t: v1::NewTopic) -> Self {
        NewTopic {
            name: t.name,
            partitions: (t.partitions != -1).then_some(t.partitions),
            replication_factor: (t.replication_factor > 0).then_some(t.replication_factor),
            configs: t.configs.into_iter().collect(),
            assignments: t
                .assignments
                .into_iter()
                .map(|a| (PartitionId(a.partition), brokers(&a.broker_ids)))
                .collect(),
        }
    }
}

impl From<&NewTopic> for v1::NewTopic {
    fn from(t: &NewTopic) -> Self {
        v1::NewTopic {
            name: t.name.clone(),
            partitions: t.partitions.unwrap_or(-1),
            replication_factor: t.replication_factor.unwrap_or(0),
            configs: t.configs.clone().into_iter().collect(),
            assignments: t
                .assignments
                .iter()
                .map(|(p, replicas)| v1::ReplicaAssignment {
                    partition: p.0,
                    broker_ids: ids(replicas),
                })
                .collect(),
        }
    }
}

impl From<v1::CreatePartitionsTopic> for NewPartitions {
    fn from(t: v1::CreatePartitionsTopic) -> Self {
        NewPartitions {
            name: t.name,
            count: t.count,
            assignments: t
                .assignments
                .iter()
                .map(|a| brokers(&a.broker_ids))
                .collect(),
        }
    }
}

impl From<&NewPartitions> for v1::CreatePartitionsTopic {
    fn from(t: &NewPartitions) -> Self {
        v1::CreatePartitionsTopic {
            name: t.name.clone(),
            count: t.count,
            assignments: t
                .assignments
                .iter()
                .map(|r| v1::ReplicaList { broker_ids: ids(r) })
                .collect(),
        }
    }
}

/// A result without an error must carry the topic's id; one that does not parse is the
/// controller's fault and says so.
impl From<v1::TopicResult> for TopicOutcome {
    fn from(r: v1::TopicResult) -> Self {
        let result = match &r.error {
            Some(e) if e.code != 0 => Err(KafkaError::from(e)),
            _ => r.topic_id.parse::<uuid::Uuid>().map(TopicId).map_err(|e| {
                KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!(
                        "the controller answered topic '{}' with a bad id '{}': {e}",
                        r.name, r.topic_id
                    ),
                )
            }),
        };
        TopicOutcome {
            name: r.name,
            result,
        }
    }
}

impl From<&TopicOutcome> for v1::TopicResult {
    fn from(o: &TopicOutcome) -> Self {
        v1::TopicResult {
            name: o.name.clone(),
            error: error_of(&o.result),
            topic_id: o.result.as_ref().map_or(String::new(), |id| id.to_string()),
        }
    }
}

/// `broker`: absent for a topic, `-1` for the cluster-wide defaults.
impl From<v1::AlterConfigsRequest> for AlterConfigs {
    fn from(r: v1::AlterConfigsRequest) -> Self {
        let target = match r.broker {
            Some(scope) if scope.broker_id == -1 => ConfigTarget::Cluster,
            Some(scope) => ConfigTarget::Broker(BrokerId(scope.broker_id)),
            None => ConfigTarget::Topic(r.topic),
        };
        AlterConfigs {
            target,
            set: r.set.into_iter().collect(),
            delete: r.delete,
            validate_only: r.validate_only,
        }
    }
}

impl From<&AlterConfigs> for v1::AlterConfigsRequest {
    fn from(r: &AlterConfigs) -> Self {
        let (topic, broker) = match &r.target {
            ConfigTarget::Topic(t) => (t.clone(), None),
            ConfigTarget::Broker(b) => (String::new(), Some(v1::BrokerScope { broker_id: b.0 })),
            ConfigTarget::Cluster => (String::new(), Some(v1::BrokerScope { broker_id: -1 })),
        };
        v1::AlterConfigsRequest {
            topic,
            set: r.set.clone().into_iter().collect(),
            delete: r.delete.clone(),
            validate_only: r.validate_only,
            broker,
        }
    }
}

/// The election type a request's raw enum value names; an unknown one is INVALID_REQUEST.
pub fn election_type(raw: i32) -> Result<ElectionType, KafkaError> {
    match v1::ElectionType::try_from(raw) {
        Ok(v1::ElectionType::Preferred) => Ok(ElectionType::Preferred),
        Ok(v1::ElectionType::Unclean) => Ok(ElectionType::Unclean),
        Err(_) => Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("unknown election type {raw}: 0 is preferred, 1 unclean"),
        )),
    }
}

impl From<ElectionType> for v1::ElectionType {
    fn from(t: ElectionType) -> Self {
        match t {
            ElectionType::Preferred => v1::ElectionType::Preferred,
            ElectionType::Unclean => v1::ElectionType::Unclean,
        }
    }
}

impl From<v1::ElectLeadersPartition> for PartitionRef {
    fn from(p: v1::ElectLeadersPartition) -> Self {
        PartitionRef {
            topic: p.topic,
            partition: PartitionId(p.partition),
        }
    }
}

impl From<&PartitionRef> for v1::ElectLeadersPartition {
    fn from(p: &PartitionRef) -> Self {
        v1::ElectLeadersPartition {
            topic: p.topic.clone(),
            partition: p.partition.0,
        }
    }
}

impl From<v1::ElectLeadersResult> for PartitionOutcome {
    fn from(r: v1::ElectLeadersResult) -> Self {
        PartitionOutcome {
            result: crate::conv::check(r.error.as_ref()),
            topic: r.topic,
            partition: PartitionId(r.partition),
        }
    }
}

impl From<&PartitionOutcome> for v1::ElectLeadersResult {
    fn from(o: &PartitionOutcome) -> Self {
        v1::ElectLeadersResult {
            topic: o.topic.clone(),
            partition: o.partition.0,
            error: error_of(&o.result),
        }
    }
}

impl From<v1::PartitionMove> for PartitionMove {
    fn from(m: v1::PartitionMove) -> Self {
        PartitionMove {
            target: (!m.cancel).then(|| brokers(&m.replicas)),
            partition: PartitionRef {
                topic: m.topic,
                partition: PartitionId(m.partition),
            },
        }
    }
}

impl From<&PartitionMove> for v1::PartitionMove {
    fn from(m: &PartitionMove) -> Self {
        v1::PartitionMove {
            topic: m.partition.topic.clone(),
            partition: m.partition.partition.0,
            replicas: m.target.as_deref().map(ids).unwrap_or_default(),
            cancel: m.target.is_none(),
        }
    }
}

impl From<v1::PartitionMoveResult> for PartitionOutcome {
    fn from(r: v1::PartitionMoveResult) -> Self {
        PartitionOutcome {
            result: crate::conv::check(r.error.as_ref()),
            topic: r.topic,
            partition: PartitionId(r.partition),
        }
    }
}

impl From<&PartitionOutcome> for v1::PartitionMoveResult {
    fn from(o: &PartitionOutcome) -> Self {
        v1::PartitionMoveResult {
            topic: o.topic.clone(),
            partition: o.partition.0,
            error: error_of(&o.result),
        }
    }
}

/// `leader` -1: none.
impl From<v1::OngoingMove> for OngoingMove {
    fn from(m: v1::OngoingMove) -> Self {
        OngoingMove {
            topic: m.topic,
            partition: PartitionId(m.partition),
            replicas: brokers(&m.replicas),
            adding: brokers(&m.adding_replicas),
            removing: brokers(&m.removing_replicas),
            isr: brokers(&m.isr),
            leader: (m.leader >= 0).then_some(BrokerId(m.leader)),
        }
    }
}

impl From<&OngoingMove> for v1::OngoingMove {
    fn from(m: &OngoingMove) -> Self {
        v1::OngoingMove {
            topic: m.topic.clone(),
            partition: m.partition.0,
            replicas: ids(&m.replicas),
            adding_replicas: ids(&m.adding),
            removing_replicas: ids(&m.removing),
            isr: ids(&m.isr),
            leader: m.leader.map_or(-1, |b| b.0),
        }
    }
}

impl From<v1::BalanceClusterResponse> for BalancePlan {
    fn from(r: v1::BalanceClusterResponse) -> Self {
        BalancePlan {
            moves: r
                .moves
                .into_iter()
                .map(|m| PlannedMove {
                    topic: m.topic,
                    partition: PartitionId(m.partition),
                    from: brokers(&m.from),
                    to: brokers(&m.to),
                })
                .collect(),
            stuck: r
                .stuck
                .into_iter()
                .map(|s| StuckPartition {
                    topic: s.topic,
                    partition: PartitionId(s.partition),
                    reason: s.reason,
                })
                .collect(),
            balanced: r.balanced,
        }
    }
}

impl From<&BalancePlan> for v1::BalanceClusterResponse {
    fn from(p: &BalancePlan) -> Self {
        v1::BalanceClusterResponse {
            moves: p
                .moves
                .iter()
                .map(|m| v1::PlannedMove {
                    topic: m.topic.clone(),
                    partition: m.partition.0,
                    from: ids(&m.from),
                    to: ids(&m.to),
                })
                .collect(),
            stuck: p
                .stuck
                .iter()
                .map(|s| v1::StuckPartition {
                    topic: s.topic.clone(),
                    partition: s.partition.0,
                    reason: s.reason.clone(),
                })
                .collect(),
            balanced: p.balanced,
        }
    }
}

/// Sizes unknown are -1 on the wire; `broker_id` is the caller's to set.
impl From<&LogDir> for v1::DescribeLogDirsResponse {
    fn from(d: &LogDir) -> Self {
        let bytes = |b: Option<u64>| b.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
        v1::DescribeLogDirsResponse {
            broker_id: -1,
            path: d.path.clone(),
            total_bytes: bytes(d.total_bytes),
            usable_bytes: bytes(d.usable_bytes),
            replicas: d
                .replicas
                .iter()
                .map(|r| v1::ReplicaLogInfo {
                    topic: r.partition.topic.as_str().to_string(),
                    partition: r.partition.partition.0,
                    size_bytes: i64::try_from(r.size_bytes).unwrap_or(i64::MAX),
                    offset_lag: r.offset_lag,
                })
                .collect(),
            error: d.error.as_ref().map(v1::Error::from),
        }
    }
}

/// `current_leader_epoch` below 0: not checked.
impl From<v1::OffsetForLeaderEpochPartition> for EpochQuery {
    fn from(p: v1::OffsetForLeaderEpochPartition) -> Self {
        EpochQuery {
            partition: PartitionRef {
                topic: p.topic,
                partition: PartitionId(p.partition),
            },
            current_leader_epoch: (p.current_leader_epoch >= 0)
                .then_some(LeaderEpoch(p.current_leader_epoch)),
            leader_epoch: LeaderEpoch(p.leader_epoch),
        }
    }
}

impl From<&EpochQuery> for v1::OffsetForLeaderEpochPartition {
    fn from(q: &EpochQuery) -> Self {
        v1::OffsetForLeaderEpochPartition {
            topic: q.partition.topic.clone(),
            partition: q.partition.partition.0,
            current_leader_epoch: q.current_leader_epoch.map_or(-1, |e| e.0),
            leader_epoch: q.leader_epoch.0,
        }
    }
}

/// No epoch known travels as `-1`/`-1`, Kafka's UNDEFINED_EPOCH and offset.
impl From<&EpochAnswer> for v1::EpochEndOffset {
    fn from(a: &EpochAnswer) -> Self {
        let end = a.result.as_ref().ok().copied().flatten();
        v1::EpochEndOffset {
            topic: a.partition.topic.clone(),
            partition: a.partition.partition.0,
            error: error_of(&a.result),
            leader_epoch: end.map_or(-1, |e| e.leader_epoch.0),
            end_offset: end.map_or(-1, |e| e.end_offset.0),
        }
    }
}

impl From<v1::EpochEndOffset> for EpochAnswer {
    fn from(r: v1::EpochEndOffset) -> Self {
        let result = crate::conv::check(r.error.as_ref()).map(|()| {
            (r.leader_epoch >= 0).then_some(EpochEnd {
                leader_epoch: LeaderEpoch(r.leader_epoch),
                end_offset: Offset(r.end_offset),
            })
        });
        EpochAnswer {
            partition: PartitionRef {
                topic: r.topic,
                partition: PartitionId(r.partition),
            },
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_types_both_ways() {
        for t in [ElectionType::Preferred, ElectionType::Unclean] {
            assert_eq!(election_type(v1::ElectionType::from(t) as i32), Ok(t));
        }
        let e = election_type(7).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("unknown election type 7"), "{e}");
    }

    fn topic(partitions: i32, rf: i32) -> v1::NewTopic {
        v1::NewTopic {
            name: "orders".into(),
            partitions,
            replication_factor: rf,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            assignments: vec![],
        }
    }

    #[test]
    fn new_topic_sentinels_become_none_and_go_back() {
        // (wire partitions, wire rf) -> (model partitions, model rf, wire again)
        let table = [
            ((-1, 0), (None, None, (-1, 0))),
            ((-1, -1), (None, None, (-1, 0))),
            ((3, 2), (Some(3), Some(2), (3, 2))),
            // Refused by the controller with the count named, so it must get through.
            ((0, 1), (Some(0), Some(1), (0, 1))),
            ((-5, 1), (Some(-5), Some(1), (-5, 1))),
        ];
        for ((p, rf), (mp, mrf, back)) in table {
            let m = NewTopic::from(topic(p, rf));
            assert_eq!((m.partitions, m.replication_factor), (mp, mrf), "{p} {rf}");
            assert_eq!(
                m.configs.get("cleanup.policy").map(String::as_str),
                Some("compact")
            );
            let w = v1::NewTopic::from(&m);
            assert_eq!((w.partitions, w.replication_factor), back, "{p} {rf}");
        }
    }

    #[test]
    fn topic_results_carry_an_id_or_an_error() {
        let id = TopicId(uuid::Uuid::new_v4());
        let ok = TopicOutcome {
            name: "a".into(),
            result: Ok(id),
        };
        assert_eq!(TopicOutcome::from(v1::TopicResult::from(&ok)), ok);
        let refused = TopicOutcome {
            name: "b".into(),
            result: Err(KafkaError::new(
                ErrorCode::TopicAlreadyExists,
                "topic 'b' exists",
            )),
        };
        assert_eq!(TopicOutcome::from(v1::TopicResult::from(&refused)), refused);
        let bad = TopicOutcome::from(v1::TopicResult {
            name: "c".into(),
            error: None,
            topic_id: "not-a-uuid".into(),
        });
        let e = bad.result.err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("'c'") && e.contains("not-a-uuid"), "{e}");
    }

    #[test]
    fn moves_round_trip_with_cancel_as_no_target() {
        let at = PartitionRef {
            topic: "orders".into(),
            partition: PartitionId(3),
        };
        for target in [Some(vec![BrokerId(4), BrokerId(2)]), None] {
            let m = PartitionMove {
                partition: at.clone(),
                target,
            };
            assert_eq!(PartitionMove::from(v1::PartitionMove::from(&m)), m);
        }
        for leader in [Some(BrokerId(2)), None] {
            let o = OngoingMove {
                topic: "orders".into(),
                partition: PartitionId(3),
                replicas: vec![BrokerId(4), BrokerId(2), BrokerId(1)],
                adding: vec![BrokerId(4)],
                removing: vec![BrokerId(1)],
                isr: vec![BrokerId(2), BrokerId(1)],
                leader,
            };
            assert_eq!(OngoingMove::from(v1::OngoingMove::from(&o)), o);
        }
    }

    #[test]
    fn config_targets_round_trip() {
        for target in [
            ConfigTarget::Topic("orders".into()),
            ConfigTarget::Broker(BrokerId(2)),
            ConfigTarget::Cluster,
        ] {
            let m = AlterConfigs {
                target,
                set: [("retention.ms".to_string(), "1000".to_string())].into(),
                delete: vec!["segment.ms".into()],
                validate_only: false,
            };
            assert_eq!(AlterConfigs::from(v1::AlterConfigsRequest::from(&m)), m);
        }
    }

    #[test]
    fn epoch_answers_round_trip_with_no_epoch_as_minus_one() {
        let at = PartitionRef {
            topic: "t".into(),
            partition: PartitionId(1),
        };
        for result in [
            Ok(None),
            Ok(Some(EpochEnd {
                leader_epoch: LeaderEpoch(3),
                end_offset: Offset(42),
            })),
            Err(KafkaError::new(
                ErrorCode::FencedLeaderEpoch,
                "t-1: epoch 1 is older",
            )),
        ] {
            let a = EpochAnswer {
                partition: at.clone(),
                result,
            };
            let wire = v1::EpochEndOffset::from(&a);
            if matches!(a.result, Ok(None)) {
                assert_eq!((wire.leader_epoch, wire.end_offset), (-1, -1));
            }
            assert_eq!(EpochAnswer::from(wire), a);
        }
        let q = EpochQuery {
            partition: at,
            current_leader_epoch: None,
            leader_epoch: LeaderEpoch(2),
        };
        let wire = v1::OffsetForLeaderEpochPartition::from(&q);
        assert_eq!(wire.current_leader_epoch, -1);
        assert_eq!(EpochQuery::from(wire), q);
    }
}
