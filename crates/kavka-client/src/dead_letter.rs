//! Retry, then dead-letter: a record whose handler keeps failing goes to `<topic>.DLQ`
//! with headers naming the error and where it came from, so the consumer can commit past
//! it instead of stopping or dropping it (the pattern users hand-build on Kafka).
//!
//! Invariant: `process` returns only once the record was handled or is durably in the
//! dead-letter topic (acks=all); if the dead-letter write fails, the error is returned
//! and the caller must not commit past the record.

use crate::admin::NewTopic;
use crate::connection::Client;
use crate::consumer::ConsumedRecord;
use crate::error::ClientError;
use crate::producer::{Producer, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use kavka_model::ErrorCode;
use kavka_record::Header;
use std::collections::BTreeSet;
use std::time::Duration;

/// Headers a dead-lettered record carries besides its own.
pub const HEADER_ERROR: &str = "kavka.dlq.error";
pub const HEADER_TOPIC: &str = "kavka.dlq.source.topic";
pub const HEADER_PARTITION: &str = "kavka.dlq.source.partition";
pub const HEADER_OFFSET: &str = "kavka.dlq.source.offset";
pub const HEADER_ATTEMPTS: &str = "kavka.dlq.attempts";

/// What became of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The handler succeeded on this attempt (1-based).
    Ok { attempts: u32 },
    /// Every attempt failed: the record is at `offset` of `topic`.
    DeadLettered {
        topic: String,
        partition: i32,
        offset: i64,
        error: String,
    },
}

pub struct DeadLetterQueue {
    client: Client,
    producer: Producer,
    max_attempts: u32,
    backoff: Duration,
    /// Dead-letter topics known to exist.
    ready: BTreeSet<String>,
}

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.DLQ")
}

impl DeadLetterQueue {
    /// Tries each record up to `max_attempts` times, `backoff` apart.
    pub fn new(client: Client, max_attempts: u32, backoff: Duration) -> Self {
        Self {
            producer: Producer::new(client.clone(), ProducerConfig::default()),
            client,
            max_attempts: max_attempts.max(1),
            backoff,
            ready: BTreeSet::new(),
        }
    }

    /// Runs `handler` on `record` until it succeeds or the attempts run out, then
    /// dead-letters the record.
    pub async fn process<F, Fut, E>(
        &mut self,
        record: &ConsumedRecord,
        mut handler: F,
    ) -> Result<Handled, ClientError>
    where
        F: FnMut(&ConsumedRecord) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            match handler(record).await {
                Ok(()) => return Ok(Handled::Ok { attempts: attempt }),
                Err(e) => {
                    last_error = e.to_string();
                    tracing::debug!(topic = %record.topic, partition = record.partition, offset = record.offset, attempt, error = %last_error, "handler failed");
                    if attempt < self.max_attempts {
                        tokio::time::sleep(self.backoff).await;
                    }
                }
            }
        }
        let topic = dead_letter_topic(&record.topic);
        self.ensure_topic(&topic, &record.topic).await?;
        let header = |k: &str, v: String| Header {
            key: k.to_string(),
            value: Some(Bytes::from(v)),
        };
        let mut headers = record.headers.clone();
        headers.extend([
            header(HEADER_ERROR, last_error.clone()),
            header(HEADER_TOPIC, record.topic.clone()),
            header(HEADER_PARTITION, record.partition.to_string()),
            header(HEADER_OFFSET, record.offset.to_string()),
            header(HEADER_ATTEMPTS, self.max_attempts.to_string()),
        ]);
        let sent = self
            .producer
            .send(
                &topic,
                vec![ProducerRecord {
                    key: record.key.clone(),
                    value: record.value.clone(),
                    headers,
                    partition: None,
                    timestamp_ms: Some(record.timestamp_ms),
                }],
            )
            .await?;
        let meta = sent
            .first()
            .ok_or_else(|| ClientError::Invalid("no answer for the dead-letter write".into()))?;
        Ok(Handled::DeadLettered {
            topic,
            partition: meta.partition,
            offset: meta.offset,
            error: last_error,
        })
    }

    /// Creates the dead-letter topic (as many partitions as its source) if missing.
    async fn ensure_topic(&mut self, topic: &str, source: &str) -> Result<(), ClientError> {
        if self.ready.contains(topic) {
            return Ok(());
        }
        let partitions = self.client.partition_count(source).await? as i32;
        match self
            .client
            .create_topic(NewTopic {
                name: topic.to_string(),
                partitions,
                replication_factor: 0,
                ..NewTopic::default()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if e.kafka_code() == Some(ErrorCode::TopicAlreadyExists) => {}
            Err(e) => return Err(e),
        }
        self.ready.insert(topic.to_string());
        Ok(())
    }
}
