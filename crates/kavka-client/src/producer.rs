//! The producer: partitions records (explicit, murmur2 of the key, or sticky for keyless
//! ones), batches them per partition into RecordBatch v2 with the chosen codec, and sends
//! one request per partition leader per call, retrying the partitions that fail with a
//! retriable error (after refreshing the leaders, with a growing backoff, within the
//! delivery timeout).
//!
//! Idempotence (`enable_idempotence`, on by default with acks=all, as Kafka's): the
//! producer gets a producer id and stamps every batch with it and a sequence number that
//! runs on per partition, so a retry after an ambiguous failure (a timeout, a lost
//! connection, a leader failover) is recognised by the leader and written once. A
//! partition gets at most five batches per request, the number a leader remembers per
//! producer; larger sends go in rounds. A send that fails for good leaves its sequences
//! unknown, so the next send bumps the producer epoch (as Kafka's KIP-360), which restarts
//! the sequences at 0 and fences the failed batches should they still arrive, with no
//! broker call. Without idempotence a retry may write a record twice, as with
//! `enable.idempotence=false`.

use crate::connection::{Client, bounded};
use crate::error::ClientError;
use bytes::Bytes;
use kavka_model::{ErrorCode, KafkaError, partitioner};
use kavka_proto::v1;
use kavka_record::{Compression, Header, Record, RecordBatch};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a produce request waits before the producer checks whether its leader moved.
const LEADER_RECHECK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    None,
    #[default]
    Leader,
    All,
}

impl Acks {
    pub fn wire(self) -> i32 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Parses Kafka's `acks` values: 0, 1, -1 or all.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Acks::None),
            "1" => Some(Acks::Leader),
            "-1" | "all" => Some(Acks::All),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub compression: Compression,
    /// Kafka's `batch.size`: bytes of records per batch before a new one starts.
    pub batch_bytes: usize,
    /// Kafka's `retries`, bounded (the delivery timeout bounds them too).
    pub retries: u32,
    /// Kafka's `retry.backoff.ms`, doubling up to `retry.backoff.max.ms`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Kafka's `request.timeout.ms`: how long the broker may wait for acks=all.
    pub request_timeout: Duration,
    /// Kafka's `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// Kafka's `enable.idempotence`; takes effect with acks=all only.
    pub enable_idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            compression: Compression::None,
            batch_bytes: 16 * 1024,
            retries: 100,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(1000),
            request_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(30),
            enable_idempotence: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub partition: Option<i32>,
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    /// -1 with acks=0.
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// Batches per partition per request with idempotence: what a leader remembers per
/// producer to recognise a retry (Kafka's `max.in.flight.requests.per.connection` bound).
const IDEMPOTENT_BATCHES_PER_REQUEST: usize = 5;

/// One partition's part of a request: batch bytes, and the indexes of their records.
type PartitionRequest = (Vec<u8>, Vec<usize>);

/// An idempotent producer's identity and the next sequence number per partition.
#[derive(Debug)]
struct Idempotence {
    producer_id: i64,
    producer_epoch: i16,
    next_sequence: HashMap<(String, i32), i32>,
}

pub struct Producer {
    client: Client,
    config: ProducerConfig,
    partition_counts: HashMap<String, u32>,
    sticky: u32,
    /// The last send failed: refresh the leaders before the next one.
    stale: bool,
    /// With idempotence, once a producer id was obtained.
    idempotence: Option<Idempotence>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn record_size(r: &ProducerRecord) -> usize {
    let h: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4)
        .sum();
    r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len) + h + 16
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Self {
        Self {
            client,
            config,
            partition_counts: HashMap::new(),
            sticky: rand_seed(),
            stale: false,
            idempotence: None,
        }
    }

    fn idempotent(&self) -> bool {
        self.config.enable_idempotence && self.config.acks == Acks::All
    }

    /// The producer id in use (with idempotence, after the first send).
    pub fn producer_id(&self) -> Option<i64> {
        self.idempotence.as_ref().map(|i| i.producer_id)
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    async fn partitions(&mut self, topic: &str) -> Result<u32, ClientError> {
        if let Some(&n) = self.partition_counts.get(topic) {
            return Ok(n);
        }
        let n = self.client.refresh_leaders(topic).await?;
        self.partition_counts.insert(topic.to_string(), n);
        Ok(n)
    }

    /// Sends `records` to `topic`; returns where each landed, in input order.
    pub async fn send(
        &mut self,
        topic: &str,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<RecordMetadata>, ClientError> {
        if records.is_empty() {
            return Ok(vec![]);
        }
        if std::mem::take(&mut self.stale) {
            self.partition_counts.remove(topic);
        }
        if self.idempotent() && self.idempotence.is_none() {
            let (producer_id, producer_epoch) = self.client.init_producer_id().await?;
            self.idempotence = Some(Idempotence {
                producer_id,
                producer_epoch,
                next_sequence: HashMap::new(),
            });
        }
        let r = self.send_inner(topic, records).await;
        self.stale = r.is_err();
        if r.is_err()
            && let Some(id) = self.idempotence.as_mut()
        {
            // Whether the broker has the failed batches is unknown, and so is the next
            // sequence number: a new epoch starts again at 0 (past the last epoch, a new
            // producer id).
            if id.producer_epoch < i16::MAX {
                id.producer_epoch += 1;
                id.next_sequence.clear();
            } else {
                self.idempotence = None;
            }
        }
        r
    }

    async fn send_inner(
        &mut self,
        topic: &str,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<RecordMetadata>, ClientError> {
        let n = self.partitions(topic).await?;
        self.sticky = self.sticky.wrapping_add(1);
        let sticky = (self.sticky % n) as i32;
        let now = now_ms();
        // (partition, record index in input) in input order per partition.
        let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            let p = match (r.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => partitioner::partition_for_key(k, n) as i32,
                (None, None) => sticky,
            };
            if p < 0 || p as u32 >= n {
                return Err(KafkaError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("partition {p} of topic '{topic}' does not exist (it has {n})"),
                )
                .into());
            }
            by_partition.entry(p).or_default().push(i);
        }
        // Per partition, the requests to send in turn.
        let mut pending: BTreeMap<i32, VecDeque<PartitionRequest>> = BTreeMap::new();
        let per_request = if self.idempotent() {
            IDEMPOTENT_BATCHES_PER_REQUEST
        } else {
            usize::MAX
        };
        for (p, idxs) in by_partition {
            let mut batches: Vec<Vec<usize>> = vec![vec![]];
            let mut size = 0;
            for &i in &idxs {
                let s = record_size(&records[i]);
                if let Some(last) = batches.last_mut()
                    && !last.is_empty()
                    && size + s > self.config.batch_bytes
                {
                    batches.push(vec![]);
                    size = 0;
                }
                if let Some(last) = batches.last_mut() {
                    last.push(i);
                }
                size += s;
            }
            let requests = pending.entry(p).or_default();
            let mut encoded = 0;
            for group in batches.chunks(per_request) {
                let mut bytes = Vec::new();
                for batch in group {
                    bytes.extend(self.encode(topic, p, encoded, &records, batch, now)?);
                    encoded += batch.len() as i32;
                }
                requests.push_back((bytes, group.concat()));
            }
        }

        let mut out = vec![
            RecordMetadata {
                partition: -1,
                offset: -1,
                timestamp_ms: -1
            };
            records.len()
        ];
        let deadline = Instant::now() + self.config.delivery_timeout;
        let mut attempt = 0;
        let mut backoff = self.config.retry_backoff;
        loop {
            // One request per leader, all in flight at once.
            let mut last_error: Option<KafkaError> = None;
            let mut round_failed = false;
            let mut requests = tokio::task::JoinSet::new();
            let mut in_flight: Vec<(i32, Vec<i32>, tokio::task::AbortHandle)> = Vec::new();
            let (groups, unknown) = self.client.by_leader(topic, pending.keys().copied());
            if let Some(p) = unknown.first() {
                last_error = Some(KafkaError::new(
                    ErrorCode::LeaderNotAvailable,
                    format!("{topic}-{p} has no known leader"),
                ));
            }
            for (leader, mut conn, partitions) in groups {
                let req = v1::ProduceRequest {
                    topic: topic.to_string(),
                    acks: self.config.acks.wire(),
                    timeout_ms: self.config.request_timeout.as_millis() as i32,
                    batches: partitions
                        .iter()
                        .filter_map(|p| {
                            Some(v1::PartitionBatches {
                                partition: *p,
                                records: Bytes::from(pending.get(p)?.front()?.0.clone()),
                            })
                        })
                        .collect(),
                    records: vec![],
                    compression: String::new(),
                };
                // The broker answers within the request timeout; a frozen one does not.
                let bound = self.config.request_timeout + Duration::from_secs(1);
                let sent_to = partitions.clone();
                let handle = requests.spawn(async move {
                    (leader, partitions, bounded(bound, conn.produce(req)).await)
                });
                in_flight.push((leader, sent_to, handle));
            }
            let mut recheck = tokio::time::interval_at(
                tokio::time::Instant::now() + LEADER_RECHECK,
                LEADER_RECHECK,
            );
            loop {
                let done = tokio::select! {
                    done = requests.join_next() => match done {
                        Some(done) => done,
                        None => break,
                    },
                    _ = recheck.tick() => {
                        if let Some(e) = self.abandon_moved_leaders(topic, &in_flight).await {
                            last_error = Some(e);
                            round_failed = true;
                        }
                        continue;
                    }
                };
                let Ok((leader, partitions, resp)) = done else {
                    continue;
                };
                let results = match resp {
                    Ok(resp) => resp.into_inner().results,
                    Err(status) => {
                        let e = kavka_proto::conv::from_status(&status);
                        if !e.code.is_retriable() {
                            return Err(e.into());
                        }
                        last_error = Some(KafkaError::new(
                            e.code,
                            format!("broker {leader} ({partitions:?}): {}", e.message),
                        ));
                        round_failed = true;
                        continue;
                    }
                };
                for r in results {
                    let Some((_, idxs)) = pending.get(&r.partition).and_then(VecDeque::front)
                    else {
                        continue;
                    };
                    match kavka_proto::conv::check(r.error.as_ref()) {
                        Ok(()) => {
                            for (k, &i) in idxs.iter().enumerate() {
                                let offset = if r.base_offset < 0 {
                                    -1
                                } else {
                                    r.base_offset + k as i64
                                };
                                let ts = if r.log_append_time_ms >= 0 {
                                    r.log_append_time_ms
                                } else {
                                    records[i].timestamp_ms.unwrap_or(now)
                                };
                                out[i] = RecordMetadata {
                                    partition: r.partition,
                                    offset,
                                    timestamp_ms: ts,
                                };
                            }
                            if let Some(requests) = pending.get_mut(&r.partition) {
                                requests.pop_front();
                                if requests.is_empty() {
                                    pending.remove(&r.partition);
                                }
                            }
                        }
                        Err(e) if e.code.is_retriable() => {
                            last_error = Some(e);
                            round_failed = true;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if pending.is_empty() {
                self.commit_sequences(topic, &out);
                return Ok(out);
            }
            if !round_failed && last_error.is_none() {
                // Every request answered: send the next round of the larger partitions.
                continue;
            }
            if attempt >= self.config.retries || Instant::now() >= deadline {
                return Err(last_error
                    .unwrap_or_else(|| {
                        KafkaError::new(ErrorCode::RequestTimedOut, "no result for some partitions")
                    })
                    .into());
            }
            attempt += 1;
            tracing::debug!(attempt, error = ?last_error, "retrying produce after refreshing metadata");
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            backoff = (backoff * 2).min(self.config.retry_backoff_max);
            if let Err(e) = self.client.refresh_leaders(topic).await {
                tracing::debug!(error = %e, "metadata refresh failed");
            }
        }
    }

    /// A request still waiting after [`LEADER_RECHECK`] may sit on a leader that froze or
    /// was cut off: when fresh metadata names another leader for any of its partitions,
    /// the request is abandoned (and retried, if retries remain) instead of waiting out
    /// the request timeout. Like a timeout, abandoning leaves the write indeterminate.
    async fn abandon_moved_leaders(
        &mut self,
        topic: &str,
        in_flight: &[(i32, Vec<i32>, tokio::task::AbortHandle)],
    ) -> Option<KafkaError> {
        if in_flight.iter().all(|(.., h)| h.is_finished()) {
            return None;
        }
        let refreshed = tokio::time::timeout(LEADER_RECHECK, self.client.refresh_leaders(topic));
        if !matches!(refreshed.await, Ok(Ok(_))) {
            // The node answering metadata may be the one that froze: ask another next time.
            let _ = tokio::time::timeout(LEADER_RECHECK, self.client.reconnect()).await;
            return None;
        }
        let mut abandoned = None;
        for (leader, partitions, handle) in in_flight {
            if handle.is_finished() {
                continue;
            }
            if let Some(p) = partitions
                .iter()
                .find(|p| self.client.leader_id(topic, **p) != *leader)
            {
                handle.abort();
                let now = self.client.leader_id(topic, *p);
                tracing::debug!(
                    topic,
                    partition = p,
                    from = leader,
                    to = now,
                    "abandoning a request to a moved leader"
                );
                abandoned = Some(KafkaError::new(
                    ErrorCode::NotLeaderOrFollower,
                    format!(
                        "{topic}-{p}: leader moved from broker {leader} to {now} while waiting for it"
                    ),
                ));
            }
        }
        abandoned
    }

    /// After a successful send, the partitions' sequences run on past its records.
    fn commit_sequences(&mut self, topic: &str, out: &[RecordMetadata]) {
        if let Some(id) = self.idempotence.as_mut() {
            for m in out {
                let next = id
                    .next_sequence
                    .entry((topic.to_string(), m.partition))
                    .or_insert(0);
                *next = add_sequence(*next, 1);
            }
        }
    }

    /// The sequence number the next record to `topic`-`partition` gets, counting the
    /// records already encoded in this send (`encoded`).
    fn sequence(&self, topic: &str, partition: i32, encoded: i32) -> Option<(i64, i16, i32)> {
        let id = self.idempotence.as_ref()?;
        let next = id
            .next_sequence
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0);
        Some((
            id.producer_id,
            id.producer_epoch,
            add_sequence(next, encoded),
        ))
    }

    fn encode(
        &self,
        topic: &str,
        partition: i32,
        encoded: i32,
        records: &[ProducerRecord],
        idxs: &[usize],
        now: i64,
    ) -> Result<Vec<u8>, ClientError> {
        let ts: Vec<i64> = idxs
            .iter()
            .map(|&i| records[i].timestamp_ms.unwrap_or(now))
            .collect();
        let base = ts.iter().copied().min().unwrap_or(now);
        let recs = idxs
            .iter()
            .zip(&ts)
            .enumerate()
            .map(|(k, (&i, &t))| Record {
                offset_delta: k as i32,
                timestamp_delta: t - base,
                key: records[i].key.clone(),
                value: records[i].value.clone(),
                headers: records[i].headers.clone(),
            })
            .collect();
        let mut batch = RecordBatch::new(base, self.config.compression, recs);
        if let Some((producer_id, producer_epoch, sequence)) =
            self.sequence(topic, partition, encoded)
        {
            batch.producer_id = producer_id;
            batch.producer_epoch = producer_epoch;
            batch.base_sequence = sequence;
        }
        Ok(batch.encode()?)
    }
}

/// Sequence numbers wrap from `i32::MAX` to 0, as Kafka's.
fn add_sequence(seq: i32, n: i32) -> i32 {
    if seq > i32::MAX - n {
        n - (i32::MAX - seq) - 1
    } else {
        seq + n
    }
}

/// A per-process starting point for sticky partitioning, so producers spread out.
fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id()
}
