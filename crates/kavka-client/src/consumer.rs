//! A consumer of assigned partitions: resolves start offsets, long-poll fetches, decodes
//! batches and skips the records before each partition's position.

use crate::connection::{Client, bounded};
use crate::error::ClientError;
use bytes::Bytes;
use kavka_model::{ErrorCode, KafkaError};
use kavka_proto::conv::check;
use kavka_proto::v1;
use kavka_record::{Header, RecordBatch};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

pub struct Consumer {
    client: Client,
    topic: String,
    /// Next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    /// High watermark seen in the last fetch, per partition.
    high_watermarks: BTreeMap<i32, i64>,
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Consumer {
    /// Assigns `partitions` of `topic` (all when `None`) starting at `start`.
    pub async fn assign(
        mut client: Client,
        topic: &str,
        partitions: Option<Vec<i32>>,
        start: OffsetSpec,
    ) -> Result<Self, ClientError> {
        let n = client.refresh_leaders(topic).await? as i32;
        let partitions = match partitions {
            Some(ps) => {
                if let Some(bad) = ps.iter().find(|&&p| p < 0 || p >= n) {
                    return Err(KafkaError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("partition {bad} of topic '{topic}' does not exist (it has {n})"),
                    )
                    .into());
                }
                ps
            }
            None => (0..n).collect(),
        };
        let mut positions = BTreeMap::new();
        let mut high_watermarks = BTreeMap::new();
        for p in partitions {
            let (latest, _) = client.list_offset(topic, p, -1).await?;
            let pos = match start {
                OffsetSpec::Earliest => client.list_offset(topic, p, -2).await?.0,
                OffsetSpec::Latest => latest,
                OffsetSpec::Offset(o) => o,
                OffsetSpec::Timestamp(ts) => match client.list_offset(topic, p, ts).await?.0 {
                    -1 => latest,
                    o => o,
                },
            };
            positions.insert(p, pos);
            high_watermarks.insert(p, latest);
        }
        Ok(Self {
            client,
            topic: topic.to_string(),
            positions,
            high_watermarks,
            max_wait_ms: 500,
            max_bytes: 8 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        })
    }

    /// Reads `topic` from the given position of each partition.
    pub async fn assign_at(
        mut client: Client,
        topic: &str,
        positions: BTreeMap<i32, i64>,
    ) -> Result<Self, ClientError> {
        client.refresh_leaders(topic).await?;
        Ok(Self {
            client,
            topic: topic.to_string(),
            // Unknown until the first fetch answers: not at the end yet.
            high_watermarks: positions.keys().map(|p| (*p, i64::MAX)).collect(),
            positions,
            max_wait_ms: 500,
            max_bytes: 8 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        })
    }

    /// Stops reading `partitions`.
    pub fn unassign(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.positions.remove(p);
            self.high_watermarks.remove(p);
        }
    }

    /// Also reads these partitions, from the given positions.
    pub fn add(&mut self, positions: BTreeMap<i32, i64>) {
        for (p, o) in positions {
            self.high_watermarks.insert(p, i64::MAX);
            self.positions.insert(p, o);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Whether every partition has been read up to the high watermark last seen.
    pub fn at_end(&self) -> bool {
        self.positions
            .iter()
            .all(|(p, pos)| self.high_watermarks.get(p).is_some_and(|hw| pos >= hw))
    }

    /// One fetch round (one request per partition leader, concurrently): the records it
    /// returned, in partition then offset order. Partitions whose leader moved are
    /// skipped this round and asked of the new leader next time.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        let (groups, unknown) = self
            .client
            .by_leader(&self.topic, self.positions.keys().copied());
        let mut stale = !unknown.is_empty();
        let mut requests = tokio::task::JoinSet::new();
        for (_, mut conn, partitions) in groups {
            let req = v1::FetchRequest {
                max_wait_ms: self.max_wait_ms,
                min_bytes: 1,
                max_bytes: self.max_bytes,
                topics: vec![v1::FetchTopic {
                    topic: self.topic.clone(),
                    partitions: partitions
                        .iter()
                        .map(|p| v1::FetchPartition {
                            partition: *p,
                            fetch_offset: self.positions[p],
                            partition_max_bytes: self.partition_max_bytes,
                        })
                        .collect(),
                }],
            };
            let bound = std::time::Duration::from_millis(self.max_wait_ms.max(0) as u64)
                + std::time::Duration::from_secs(10);
            requests.spawn(async move { bounded(bound, conn.fetch(req)).await });
        }
        let mut out = Vec::new();
        while let Some(done) = requests.join_next().await {
            let Ok(resp) = done else { continue };
            let resp = match resp {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    let e = kavka_proto::conv::from_status(&status);
                    if !e.code.is_retriable() {
                        return Err(e.into());
                    }
                    stale = true;
                    continue;
                }
            };
            for t in resp.topics {
                for p in t.partitions {
                    if let Err(e) = check(p.error.as_ref()) {
                        if e.code.is_retriable() {
                            stale = true;
                            continue;
                        }
                        return Err(e.into());
                    }
                    self.high_watermarks.insert(p.partition, p.high_watermark);
                    let Some(pos) = self.positions.get_mut(&p.partition) else {
                        continue;
                    };
                    let mut rest = &p.records[..];
                    while !rest.is_empty() {
                        let (batch, used) = RecordBatch::decode(rest)?;
                        rest = &rest[used..];
                        for (offset, ts, r) in batch.offsets_and_timestamps() {
                            if offset < *pos || batch.is_control {
                                continue;
                            }
                            out.push(ConsumedRecord {
                                topic: t.topic.clone(),
                                partition: p.partition,
                                offset,
                                timestamp_ms: ts,
                                key: r.key.clone(),
                                value: r.value.clone(),
                                headers: r.headers.clone(),
                            });
                        }
                        *pos = (*pos).max(batch.last_offset() + 1);
                    }
                }
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        if stale {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Err(e) = self.client.refresh_leaders(&self.topic).await {
                tracing::debug!(error = %e, "metadata refresh failed");
            }
        }
        Ok(out)
    }
}
