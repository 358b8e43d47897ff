//! Replication messages <-> the broker API's model types (`kavka_model::data`). The
//! wire keeps its sentinels (`-1` for "no epoch" and for offsets not reported); the
//! model has none, and they are mapped here and only here.
//!
//! A replica fetch naming a topic Kafka would not accept is refused whole
//! (INVALID_REQUEST): only brokers send these, and a broker only follows topics the
//! controller created.

use crate::v1;
use kavka_model::data::{
    LogBounds, ReplicaFetch, ReplicaFetchOutcome, ReplicaFetchPartition, ReplicaFetched,
    ReplicaRead,
};
use kavka_model::{
    BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TopicName, TopicPartition,
};

/// A wire size: negative is none at all.
fn size(n: i32) -> usize {
    n.max(0) as usize
}

/// A model size on the wire, capped at the largest the wire holds.
fn wire_size(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

fn topic_partition(topic: String, partition: i32) -> Result<TopicPartition, KafkaError> {
    let name = TopicName::new(topic.clone()).map_err(|e| {
        KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("'{topic}' is not a valid topic name: {e}"),
        )
    })?;
    Ok(TopicPartition::new(name, PartitionId(partition)))
}

impl TryFrom<v1::ReplicaFetchPartition> for ReplicaFetchPartition {
    type Error = KafkaError;
    fn try_from(p: v1::ReplicaFetchPartition) -> Result<Self, KafkaError> {
        Ok(ReplicaFetchPartition {
            tp: topic_partition(p.topic, p.partition)?,
            fetch_offset: Offset(p.fetch_offset),
            last_fetched_epoch: (p.last_fetched_epoch >= 0)
                .then_some(LeaderEpoch(p.last_fetched_epoch)),
            current_leader_epoch: LeaderEpoch(p.current_leader_epoch),
            max_bytes: size(p.max_bytes),
        })
    }
}

impl From<&ReplicaFetchPartition> for v1::ReplicaFetchPartition {
    fn from(p: &ReplicaFetchPartition) -> Self {
        v1::ReplicaFetchPartition {
            topic: p.tp.topic.to_string(),
            partition: p.tp.partition.0,
            fetch_offset: p.fetch_offset.0,
            last_fetched_epoch: p.last_fetched_epoch.map_or(-1, |e| e.0),
            current_leader_epoch: p.current_leader_epoch.0,
            max_bytes: wire_size(p.max_bytes),
        }
    }
}

/// A negative `max_wait_ms` is no wait.
impl TryFrom<v1::ReplicaFetchRequest> for ReplicaFetch {
    type Error = KafkaError;
    fn try_from(r: v1::ReplicaFetchRequest) -> Result<Self, KafkaError> {
        Ok(ReplicaFetch {
            replica: BrokerId(r.replica_id),
            max_wait_ms: r.max_wait_ms.max(0) as u64,
            max_bytes: size(r.max_bytes),
            partitions: r
                .partitions
                .into_iter()
                .map(ReplicaFetchPartition::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&ReplicaFetch> for v1::ReplicaFetchRequest {
    fn from(r: &ReplicaFetch) -> Self {
        v1::ReplicaFetchRequest {
            replica_id: r.replica.0,
            max_wait_ms: r.max_wait_ms.min(i32::MAX as u64) as i32,
            max_bytes: wire_size(r.max_bytes),
            partitions: r.partitions.iter().map(Into::into).collect(),
        }
    }
}

/// Offsets not reported travel as `-1`; an unread partition as no error, no records.
impl From<ReplicaFetched> for v1::ReplicaFetchPartitionResult {
    fn from(r: ReplicaFetched) -> Self {
        let mut out = v1::ReplicaFetchPartitionResult {
            topic: r.tp.topic.to_string(),
            partition: r.tp.partition.0,
            error: None,
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            records: Default::default(),
        };
        let bounds = match r.outcome {
            ReplicaFetchOutcome::Unread => None,
            ReplicaFetchOutcome::Read(read) => {
                out.high_watermark = read.high_watermark.0;
                out.records = read.records;
                Some(read.bounds)
            }
            ReplicaFetchOutcome::Failed { error, bounds } => {
                out.error = Some(error.into());
                bounds
            }
        };
        if let Some(b) = bounds {
            out.log_start_offset = b.log_start_offset.0;
            out.log_end_offset = b.log_end_offset.0;
        }
        out
    }
}

/// The follower's reading: an error is a failure (with the bounds when reported), a
/// high watermark of `-1` an unread partition, anything else a read.
impl TryFrom<v1::ReplicaFetchPartitionResult> for ReplicaFetched {
    type Error = KafkaError;
    fn try_from(r: v1::ReplicaFetchPartitionResult) -> Result<Self, KafkaError> {
        let bounds = LogBounds {
            log_start_offset: Offset(r.log_start_offset),
            log_end_offset: Offset(r.log_end_offset),
        };
        let outcome = match r.error {
            Some(e) => ReplicaFetchOutcome::Failed {
                error: (&e).into(),
                bounds: (r.log_start_offset >= 0).then_some(bounds),
            },
            None if r.high_watermark < 0 => ReplicaFetchOutcome::Unread,
            None => ReplicaFetchOutcome::Read(ReplicaRead {
                high_watermark: Offset(r.high_watermark),
                bounds,
                records: r.records,
            }),
        };
        Ok(ReplicaFetched {
            tp: topic_partition(r.topic, r.partition)?,
            outcome,
        })
    }
}

impl From<Vec<ReplicaFetched>> for v1::ReplicaFetchResponse {
    fn from(partitions: Vec<ReplicaFetched>) -> Self {
        v1::ReplicaFetchResponse {
            partitions: partitions.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<v1::ReplicaFetchResponse> for Vec<ReplicaFetched> {
    type Error = KafkaError;
    fn try_from(r: v1::ReplicaFetchResponse) -> Result<Self, KafkaError> {
        r.partitions
            .into_iter()
            .map(ReplicaFetched::try_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new(TopicName::new("orders").unwrap(), PartitionId(p))
    }

    fn wire_partition(last_epoch: i32, max_bytes: i32) -> v1::ReplicaFetchPartition {
        v1::ReplicaFetchPartition {
            topic: "orders".into(),
            partition: 2,
            fetch_offset: 40,
            last_fetched_epoch: last_epoch,
            current_leader_epoch: 3,
            max_bytes,
        }
    }

    #[test]
    fn replica_fetch_partitions_lose_their_sentinels_and_get_them_back() {
        // (wire last epoch, wire max bytes) -> (model last epoch, model max, wire again)
        let table = [
            ((-1, 1024), (None, 1024, (-1, 1024))),
            ((0, 1024), (Some(LeaderEpoch(0)), 1024, (0, 1024))),
            ((7, -5), (Some(LeaderEpoch(7)), 0, (7, 0))),
        ];
        for ((epoch, max), (m_epoch, m_max, back)) in table {
            let m = ReplicaFetchPartition::try_from(wire_partition(epoch, max)).unwrap();
            assert_eq!((m.last_fetched_epoch, m.max_bytes), (m_epoch, m_max));
            assert_eq!(m.tp, tp(2));
            assert_eq!(
                (m.fetch_offset, m.current_leader_epoch),
                (Offset(40), LeaderEpoch(3))
            );
            let w = v1::ReplicaFetchPartition::from(&m);
            assert_eq!((w.last_fetched_epoch, w.max_bytes), back);
        }
    }

    #[test]
    fn replica_fetch_requests_round_trip_and_refuse_bad_names() {
        let wire = v1::ReplicaFetchRequest {
            replica_id: 2,
            max_wait_ms: -3,
            max_bytes: 8 << 20,
            partitions: vec![wire_partition(1, 100)],
        };
        let m = ReplicaFetch::try_from(wire).unwrap();
        assert_eq!(
            (m.replica, m.max_wait_ms, m.max_bytes),
            (BrokerId(2), 0, 8 << 20)
        );
        let back = v1::ReplicaFetchRequest::from(&m);
        assert_eq!((back.max_wait_ms, back.partitions.len()), (0, 1));

        let mut bad = wire_partition(1, 100);
        bad.topic = "no spaces".into();
        let e = ReplicaFetch::try_from(v1::ReplicaFetchRequest {
            replica_id: 2,
            max_wait_ms: 0,
            max_bytes: 0,
            partitions: vec![bad],
        })
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("no spaces"), "{e}");
    }

    #[test]
    fn replica_fetch_outcomes_map_to_the_wire_and_back() {
        let bounds = LogBounds {
            log_start_offset: Offset(5),
            log_end_offset: Offset(9),
        };
        let read = ReplicaFetchOutcome::Read(ReplicaRead {
            high_watermark: Offset(8),
            bounds,
            records: Bytes::from_static(b"batch"),
        });
        let out_of_range = ReplicaFetchOutcome::Failed {
            error: KafkaError::new(ErrorCode::OffsetOutOfRange, "past the end"),
            bounds: Some(bounds),
        };
        let fenced = ReplicaFetchOutcome::Failed {
            error: KafkaError::new(ErrorCode::FencedLeaderEpoch, "old epoch"),
            bounds: None,
        };
        // outcome -> (error code, hw, start, end, record bytes) on the wire
        let table = [
            (ReplicaFetchOutcome::Unread, (None, -1, -1, -1, 0)),
            (read, (None, 8, 5, 9, 5)),
            (
                out_of_range,
                (Some(ErrorCode::OffsetOutOfRange), -1, 5, 9, 0),
            ),
            (fenced, (Some(ErrorCode::FencedLeaderEpoch), -1, -1, -1, 0)),
        ];
        for (outcome, want) in table {
            let m = ReplicaFetched { tp: tp(1), outcome };
            let w = v1::ReplicaFetchPartitionResult::from(m.clone());
            let got = (
                w.error
                    .as_ref()
                    .map(|e| ErrorCode::from_code(e.code as i16)),
                w.high_watermark,
                w.log_start_offset,
                w.log_end_offset,
                w.records.len(),
            );
            assert_eq!(got, want, "{m:?}");
            assert_eq!((w.topic.as_str(), w.partition), ("orders", 1));
            assert_eq!(ReplicaFetched::try_from(w).unwrap(), m);
        }
    }
}
