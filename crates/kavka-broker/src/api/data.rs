//! The data operations of the broker API: produce, fetch, ListOffsets, replica fetches
//! and OffsetForLeaderEpoch, in model types (`TopicName`, `TopicPartition`, `Acks`,
//! `OffsetSpec`, `kavka_model::data`), onto the replica manager.
//!
//! Invariants: names and wire values are checked by the listeners before they get here
//! (`topic_name`, `Acks::from_wire`, `OffsetSpec::from_wire`), with the errors clients
//! have always seen; `in_request_order` puts the items a listener answered itself back
//! among the others, so every request item gets exactly one outcome, in request order.

use super::BrokerApi;
use crate::PartitionState;
use crate::records::{DecodeBudget, NewRecord};
use crate::replica_manager::{
    Appended, FetchPartitionParams, FetchedPartition, PartitionResults, ProduceResult,
    TopicDescription, TopicSummary,
};
use kavka_model::data::{Acks, ListedOffset, OffsetSpec, ReplicaFetch, ReplicaFetched};
use kavka_model::epoch::{EpochAnswer, EpochQuery};
use kavka_model::{KafkaError, PartitionId, TopicName};
use kavka_record::Compression;
use std::time::Duration;

/// Answers `items` in request order: those a listener could not parse (`Err`) keep their
/// answer, the others are answered by `answer`, called once with all of them in order
/// and returning one answer each.
pub async fn in_request_order<A, B, F>(
    items: Vec<Result<A, F>>,
    answer: impl AsyncFnOnce(Vec<A>) -> Vec<B>,
) -> Vec<Result<B, F>> {
    let mut asks = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(a) => {
                asks.push(a);
                slots.push(None);
            }
            Err(f) => slots.push(Some(f)),
        }
    }
    let mut answers = answer(asks).await.into_iter();
    slots
        .into_iter()
        .filter_map(|slot| match slot {
            Some(f) => Some(Err(f)),
            None => answers.next().map(Ok),
        })
        .collect()
}

/// Counts a produce request's outcome for the metrics: bytes (`bytes_of` a partition)
/// and records appended, and the partitions that failed, by error code; `once`: the
/// bytes are the whole request's, counted once rather than per partition.
fn record_produce(
    topic: &TopicName,
    result: &Result<PartitionResults<Option<ProduceResult>>, KafkaError>,
    bytes_of: impl Fn(PartitionId) -> u64,
    once: bool,
) {
    match result {
        Ok(parts) => record_produced(topic, parts, bytes_of, once),
        Err(e) => crate::metrics::record_produce(topic, 0, 0, std::iter::once(e.code)),
    }
}

/// [`record_produce`] of a request answered per partition.
fn record_produced(
    topic: &TopicName,
    parts: &PartitionResults<Option<ProduceResult>>,
    bytes_of: impl Fn(PartitionId) -> u64,
    once: bool,
) {
    let (mut bytes, mut records) = (0, 0);
    for (p, r) in parts {
        if let Ok(r) = r {
            if !once || bytes == 0 {
                bytes += bytes_of(*p);
            }
            records += r.as_ref().map_or(0, |r| r.record_count.max(0) as u64);
        }
    }
    crate::metrics::record_produce(
        topic,
        bytes,
        records,
        parts
            .iter()
            .filter_map(|(_, r)| r.as_ref().err().map(|e| e.code)),
    );
}

impl BrokerApi {
    /// Appends producer batches (RecordBatch v2 bytes) to partitions of `topic`;
    /// validating them decompresses at most what is left of the request's `budget`.
    /// A partition's answer is None with `Acks::None` (nobody waits for the append).
    pub async fn produce(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        batches: Vec<(PartitionId, Vec<u8>)>,
        budget: &DecodeBudget,
    ) -> Result<PartitionResults<Option<ProduceResult>>, KafkaError> {
        let produced = self
            .produce_staged(topic, acks, timeout, batches, budget)
            .await?;
        Ok(produced.replicated().await)
    }

    /// [`BrokerApi::produce`] in two stages, for a listener that answers a connection's
    /// requests in order but appends the next one while this one waits for acks=all:
    /// returns once every batch is appended (or refused); [`Produced::replicated`] then
    /// waits for the followers and gives the same answer `produce` would.
    pub async fn produce_staged(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        batches: Vec<(PartitionId, Vec<u8>)>,
        budget: &DecodeBudget,
    ) -> Result<Produced, KafkaError> {
        let sizes: Vec<(PartitionId, u64)> =
            batches.iter().map(|(p, b)| (*p, b.len() as u64)).collect();
        let appended = self
            .replicas
            .produce_staged(topic, acks, timeout, batches, budget)
            .await;
        if let Err(e) = &appended {
            crate::metrics::record_produce(topic, 0, 0, std::iter::once(e.code));
        }
        Ok(Produced {
            topic: topic.clone(),
            sizes,
            appended: appended?,
        })
    }

    /// Partitions, batches and appends structured records (gRPC clients).
    pub async fn produce_records(
        &self,
        topic: &TopicName,
        acks: Acks,
        timeout: Duration,
        records: Vec<(Option<PartitionId>, NewRecord)>,
        compression: Compression,
    ) -> Result<PartitionResults<Option<ProduceResult>>, KafkaError> {
        // The records' payload (keys, values, headers) stands for their batch bytes.
        let bytes: u64 = records
            .iter()
            .map(|(_, r)| {
                let kv =
                    r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
                (kv + r
                    .headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                    .sum::<usize>()) as u64
            })
            .sum();
        let result = self
            .replicas
            .produce_records(topic, acks, timeout, records, compression)
            .await;
        // Records are partitioned inside: the bytes count once any partition took them.
        let took = matches!(&result, Ok(parts) if parts.iter().any(|(_, r)| r.is_ok()));
        record_produce(topic, &result, |_| if took { bytes } else { 0 }, true);
        result
    }

    /// A consumer fetch, with long-poll (see `ReplicaManager::fetch`).
    pub async fn fetch(
        &self,
        partitions: Vec<FetchPartitionParams>,
        max_wait_ms: u64,
        min_bytes: usize,
        max_bytes: usize,
    ) -> Vec<FetchedPartition> {
        let fetched = self
            .replicas
            .fetch(partitions, max_wait_ms, min_bytes, max_bytes)
            .await;
        let mut by_topic: Vec<(&TopicName, u64)> = Vec::new();
        for f in &fetched {
            match by_topic.last_mut() {
                Some((t, n)) if *t == &f.tp.topic => *n += f.records.len() as u64,
                _ => by_topic.push((&f.tp.topic, f.records.len() as u64)),
            }
        }
        crate::metrics::record_fetch(
            by_topic.into_iter(),
            fetched
                .iter()
                .filter_map(|f| f.error.as_ref().map(|e| e.code)),
        );
        fetched
    }

    /// ListOffsets of partitions of one topic.
    pub async fn list_offsets(
        &self,
        topic: &TopicName,
        partitions: Vec<(PartitionId, OffsetSpec)>,
    ) -> Vec<(PartitionId, Result<Option<ListedOffset>, KafkaError>)> {
        self.replicas.list_offsets(topic, partitions).await
    }

    /// OffsetForLeaderEpoch: where each asked epoch ends, as this broker leads.
    pub async fn epoch_ends(&self, queries: Vec<EpochQuery>) -> Vec<EpochAnswer> {
        self.replicas.epoch_ends(queries).await
    }

    /// A follower's fetch, with long-poll; one answer per asked partition, in order.
    pub async fn replica_fetch(&self, req: ReplicaFetch) -> Vec<ReplicaFetched> {
        self.replicas.replica_fetch(req).await
    }

    /// Topic metadata (`topics` empty: all), as (name, summary or error) and states.
    pub async fn metadata(
        &self,
        topics: &[String],
    ) -> (
        Vec<(String, Result<TopicSummary, KafkaError>)>,
        Vec<(TopicName, Vec<PartitionState>)>,
    ) {
        self.replicas.metadata(topics).await
    }

    /// One topic, its partitions' states and its configs.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, KafkaError> {
        self.replicas.describe_topic(name).await
    }

    /// Every topic.
    pub fn list_topics(&self) -> Vec<TopicSummary> {
        self.replicas.list_topics()
    }
}

/// A produce request whose batches are appended (see [`BrokerApi::produce_staged`]).
pub struct Produced {
    topic: TopicName,
    sizes: Vec<(PartitionId, u64)>,
    appended: Appended,
}

impl Produced {
    /// Whether [`Produced::replicated`] may wait for followers (acks=all).
    pub fn waits(&self) -> bool {
        self.appended.waits()
    }

    /// Waits for acks=all, counts the outcome, and answers per partition in request order.
    pub async fn replicated(self) -> PartitionResults<Option<ProduceResult>> {
        let parts = self.appended.replicated().await;
        let sizes = self.sizes;
        record_produced(
            &self.topic,
            &parts,
            |p| sizes.iter().filter(|(q, _)| *q == p).map(|(_, n)| *n).sum(),
            false,
        );
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Items = Vec<Result<i32, &'static str>>;

    #[tokio::test]
    async fn items_a_listener_answered_keep_their_place() {
        // items (Ok: asked, Err: answered already) -> outcomes in request order
        let table: [(Items, Items); 4] = [
            (vec![], vec![]),
            (vec![Ok(1), Ok(2)], vec![Ok(10), Ok(20)]),
            (
                vec![Err("a"), Ok(2), Err("c")],
                vec![Err("a"), Ok(20), Err("c")],
            ),
            (vec![Ok(1), Err("b"), Ok(3)], vec![Ok(10), Err("b"), Ok(30)]),
        ];
        for (items, want) in table {
            let got = in_request_order(items.clone(), async |asks: Vec<i32>| {
                asks.into_iter().map(|a| a * 10).collect::<Vec<_>>()
            })
            .await;
            assert_eq!(got, want, "{items:?}");
        }
    }
}
