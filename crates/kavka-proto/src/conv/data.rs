//! Replication messages <-> the broker API's model types (`kavka_model::data`). The
//! wire keeps its sentinels (`-1` for "no epoch" and for offsets not reported); the
//! model has none, and they are mapped here and only here.
//!
//! A replica fetch naming a topic Kafka would not accept is refused whole
//! (INVALID_REQUEST): only brokers send these, and a broker only follows topics the
//! controller created.

use crate::v1;
use kavka_model::data::{
    FetchedPartition, ListedOffset, LogBounds, ProduceResult, ReplicaFetch, ReplicaFetchOutcome,
    ReplicaFetchPartition, ReplicaFetched, ReplicaRead,
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

/// One partition's produce outcome. Offsets not known travel as `-1`: acks=0 (nobody
/// waited) and errors; so does the append time of a topic without LogAppendTime.
pub fn produce_result(
    partition: PartitionId,
    r: Result<Option<ProduceResult>, KafkaError>,
) -> v1::PartitionProduceResult {
    let (error, r) = match r {
        Ok(r) => (None, r),
        Err(e) => (Some(e.into()), None),
    };
    v1::PartitionProduceResult {
        partition: partition.0,
        error,
        base_offset: r.as_ref().map_or(-1, |r| r.base_offset.0),
        log_append_time_ms: r.as_ref().and_then(|r| r.log_append_time).unwrap_or(-1),
        log_start_offset: r.as_ref().map_or(-1, |r| r.log_start_offset.0),
        record_count: r.as_ref().map_or(0, |r| r.record_count),
    }
}

/// A fetched partition without its topic (the response groups partitions by topic);
/// offsets of a partition not served here travel as `-1`.
impl From<FetchedPartition> for v1::FetchPartitionResult {
    fn from(f: FetchedPartition) -> Self {
        let offsets = f.offsets;
        v1::FetchPartitionResult {
            partition: f.tp.partition.0,
            error: f.error.map(Into::into),
            high_watermark: offsets.map_or(-1, |o| o.high_watermark.0),
            log_start_offset: offsets.map_or(-1, |o| o.log_start_offset.0),
            log_end_offset: offsets.map_or(-1, |o| o.log_end_offset.0),
            records: f.records.into_bytes(),
        }
    }
}

/// A partition the fetch could not even ask for (a topic name Kafka would not accept),
/// answered in its place with the name as the client sent it.
pub struct UnaskedPartition {
    pub topic: String,
    pub partition: i32,
    pub error: KafkaError,
}

/// The fetch response: the answers in request order, consecutive partitions of one topic
/// under one topic entry.
pub fn fetch_response(
    answers: impl IntoIterator<Item = Result<FetchedPartition, UnaskedPartition>>,
) -> v1::FetchResponse {
    let mut topics: Vec<v1::FetchTopicResult> = Vec::new();
    for a in answers {
        let (topic, result) = match a {
            Ok(f) => (f.tp.topic.to_string(), v1::FetchPartitionResult::from(f)),
            Err(u) => (
                u.topic,
                v1::FetchPartitionResult {
                    partition: u.partition,
                    error: Some(u.error.into()),
                    high_watermark: -1,
                    log_start_offset: -1,
                    log_end_offset: -1,
                    records: Default::default(),
                },
            ),
        };
        match topics.last_mut() {
            Some(t) if t.topic == topic => t.partitions.push(result),
            _ => topics.push(v1::FetchTopicResult {
                topic,
                partitions: vec![result],
            }),
        }
    }
    v1::FetchResponse { topics }
}

/// One partition's ListOffsets answer: no offset (no record at or after the timestamp
/// asked) and no timestamp travel as `-1`.
pub fn list_offsets_result(
    partition: PartitionId,
    r: Result<Option<ListedOffset>, KafkaError>,
) -> v1::ListOffsetsResult {
    let (error, listed) = match r {
        Ok(l) => (None, l),
        Err(e) => (Some(e.into()), None),
    };
    v1::ListOffsetsResult {
        partition: partition.0,
        error,
        offset: listed.map_or(-1, |l| l.offset.0),
        timestamp: listed.and_then(|l| l.timestamp_ms).unwrap_or(-1),
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
            records: Bytes::from_static(b"batch").into(),
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

    #[test]
    fn produce_results_put_their_sentinels_back() {
        let written = ProduceResult {
            base_offset: Offset(40),
            record_count: 3,
            log_append_time: None,
            log_start_offset: Offset(2),
        };
        let appended_at = ProduceResult {
            log_append_time: Some(1_700_000_000_000),
            ..written.clone()
        };
        let failed = KafkaError::new(ErrorCode::NotLeaderOrFollower, "not the leader");
        // (outcome) -> (error code, base offset, append time, log start, record count)
        let table = [
            (Ok(Some(written)), (None, 40, -1, 2, 3)),
            (Ok(Some(appended_at)), (None, 40, 1_700_000_000_000, 2, 3)),
            (Ok(None), (None, -1, -1, -1, 0)),
            (
                Err(failed),
                (
                    Some(ErrorCode::NotLeaderOrFollower.code() as i32),
                    -1,
                    -1,
                    -1,
                    0,
                ),
            ),
        ];
        for (outcome, (code, base, time, start, count)) in table {
            let w = produce_result(PartitionId(5), outcome);
            assert_eq!(w.partition, 5);
            assert_eq!(w.error.map(|e| e.code), code);
            assert_eq!(
                (
                    w.base_offset,
                    w.log_append_time_ms,
                    w.log_start_offset,
                    w.record_count
                ),
                (base, time, start, count)
            );
        }
    }

    #[test]
    fn fetch_answers_group_by_topic_in_request_order() {
        use kavka_model::data::FetchOffsets;
        let read = |topic: &str, p: i32| FetchedPartition {
            tp: TopicPartition::new(TopicName::new(topic).unwrap(), PartitionId(p)),
            error: None,
            offsets: Some(FetchOffsets {
                high_watermark: Offset(10),
                log_start_offset: Offset(1),
                log_end_offset: Offset(12),
            }),
            records: vec![1, 2, 3].into(),
        };
        let not_here = FetchedPartition::failed(
            tp(7),
            KafkaError::new(ErrorCode::NotLeaderOrFollower, "not here"),
        );
        let bad_name = UnaskedPartition {
            topic: "bad name!".into(),
            partition: 0,
            error: KafkaError::new(ErrorCode::UnknownTopicOrPartition, "no such topic"),
        };
        let r = fetch_response([
            Ok(read("orders", 0)),
            Ok(not_here),
            Err(bad_name),
            Ok(read("orders", 1)),
        ]);
        let shape: Vec<(&str, Vec<i32>)> = r
            .topics
            .iter()
            .map(|t| {
                (
                    t.topic.as_str(),
                    t.partitions.iter().map(|p| p.partition).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("orders", vec![0, 7]),
                ("bad name!", vec![0]),
                ("orders", vec![1])
            ]
        );
        let p = &r.topics[0].partitions;
        assert_eq!(
            (
                p[0].high_watermark,
                p[0].log_start_offset,
                p[0].log_end_offset
            ),
            (10, 1, 12)
        );
        assert_eq!(p[0].records.as_ref(), &[1, 2, 3]);
        assert!(p[0].error.is_none());
        assert_eq!(
            (
                p[1].high_watermark,
                p[1].log_start_offset,
                p[1].log_end_offset
            ),
            (-1, -1, -1)
        );
        assert_eq!(
            p[1].error.as_ref().map(|e| e.code),
            Some(ErrorCode::NotLeaderOrFollower.code() as i32)
        );
        assert_eq!(
            r.topics[1].partitions[0].error.as_ref().map(|e| e.code),
            Some(ErrorCode::UnknownTopicOrPartition.code() as i32)
        );
    }

    #[test]
    fn listed_offsets_put_their_sentinels_back() {
        let failed = KafkaError::new(ErrorCode::UnknownTopicOrPartition, "no such partition");
        // (outcome) -> (error code, offset, timestamp)
        let table = [
            (
                Ok(Some(ListedOffset {
                    offset: Offset(9),
                    timestamp_ms: Some(1_700_000_000_000),
                })),
                (None, 9, 1_700_000_000_000),
            ),
            (
                Ok(Some(ListedOffset {
                    offset: Offset(9),
                    timestamp_ms: None,
                })),
                (None, 9, -1),
            ),
            (Ok(None), (None, -1, -1)),
            (
                Err(failed),
                (
                    Some(ErrorCode::UnknownTopicOrPartition.code() as i32),
                    -1,
                    -1,
                ),
            ),
        ];
        for (outcome, (code, offset, ts)) in table {
            let w = list_offsets_result(PartitionId(3), outcome);
            assert_eq!(w.partition, 3);
            assert_eq!(w.error.map(|e| e.code), code);
            assert_eq!((w.offset, w.timestamp), (offset, ts));
        }
    }
}
