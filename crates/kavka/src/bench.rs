//! `kavka bench produce|consume`: throughput and latency, like Kafka's
//! producer-perf-test and consumer-perf-test. Latency is per produce request, counted once
//! per record in it, in an HDR histogram.

use crate::cli::{connect, produce::producer_config};
use anyhow::Context;
use bytes::Bytes;
use clap::Subcommand;
use hdrhistogram::Histogram;
use kavka_client::{ClientError, Consumer, NewTopic, OffsetSpec, Producer, ProducerRecord};
use kavka_model::ErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce fixed-size records as fast as the settings allow.
    Produce {
        #[arg(long, default_value = "kavka-bench")]
        topic: String,
        /// Partitions, if the topic has to be created.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor of the bench topic if it is created (0: the cluster default).
        #[arg(long, default_value_t = 0)]
        replication_factor: i32,
        /// Records per second to aim at, all producers together (Kafka's producer-perf-test
        /// --throughput); unlimited when absent. For latency at a given load.
        #[arg(long)]
        throughput: Option<u64>,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 100_000)]
        num_records: u64,
        /// Stop after this long even if records remain (e.g. 30s).
        #[arg(long)]
        duration: Option<humantime::Duration>,
        #[arg(long, default_value = "1", allow_negative_numbers = true)]
        acks: String,
        /// Bytes of records per request.
        #[arg(long, default_value_t = 64 * 1024)]
        batch_size: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        #[arg(long, default_value = "none")]
        compression: String,
        /// Kafka's enable.idempotence (with --acks all).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        enable_idempotence: bool,
    },
    /// Read a topic from the beginning as fast as possible.
    Consume {
        #[arg(long, default_value = "kavka-bench")]
        topic: String,
        /// Stop after this many records (default: everything up to the high watermark).
        #[arg(long)]
        num_records: Option<u64>,
    },
}

/// A payload that compresses like real data rather than like zeros.
fn payload(size: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words = [
        "order", "customer", "42", "EUR", "shipped", "pending", "item", "sku-",
    ];
    let mut out = Vec::with_capacity(size + 16);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.push(b' ' + (x >> 60) as u8);
    }
    out.truncate(size);
    Bytes::from(out)
}

pub async fn run(bootstrap: &str, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce {
            topic,
            partitions,
            replication_factor,
            throughput,
            record_size,
            num_records,
            duration,
            acks,
            batch_size,
            in_flight,
            compression,
            enable_idempotence,
        } => {
            let config = producer_config(&compression, &acks, batch_size, enable_idempotence)?;
            let mut client = connect(bootstrap).await?;
            match client
                .create_topic(NewTopic {
                    name: topic.clone(),
                    partitions,
                    replication_factor,
                    ..NewTopic::default()
                })
                .await
            {
                Ok(_) => {}
                Err(e) if e.kafka_code() == Some(ErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(e).context("cannot create the bench topic"),
            }
            let per_send = (batch_size / record_size.max(1)).max(1) as u64;
            let remaining = Arc::new(AtomicU64::new(num_records));
            let deadline = duration.map(|d| Instant::now() + Duration::from(d));
            let value = payload(record_size);
            let started = Instant::now();
            // With a target rate, send n is due at started + n / rate (records counted
            // across all producers), so the load is steady rather than bursty.
            let issued = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..in_flight.max(1) {
                let issued = Arc::clone(&issued);
                let mut producer = Producer::new(client.clone(), config.clone());
                let remaining = Arc::clone(&remaining);
                let value = value.clone();
                let topic = topic.clone();
                tasks.push(tokio::spawn(async move {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let mut sent = 0u64;
                    loop {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        let n =
                            match remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                                r.checked_sub(per_send.min(r)).filter(|_| r > 0)
                            }) {
                                Ok(r) => per_send.min(r),
                                Err(_) => break,
                            };
                        let records = (0..n)
                            .map(|_| ProducerRecord {
                                value: Some(value.clone()),
                                ..ProducerRecord::default()
                            })
                            .collect();
                        if let Some(rate) = throughput.filter(|r| *r > 0) {
                            let first = issued.fetch_add(n, Ordering::AcqRel);
                            let due = started + Duration::from_secs_f64(first as f64 / rate as f64);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let t = Instant::now();
                        producer.send(&topic, records).await?;
                        let us = (t.elapsed().as_micros() as u64).clamp(1, 60_000_000);
                        hist.record_n(us, n).map_err(|e| anyhow::anyhow!("{e}"))?;
                        sent += n;
                    }
                    Ok::<_, anyhow::Error>((sent, hist))
                }));
            }
            let mut total = 0u64;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for t in tasks {
                let (sent, h) = t.await.context("bench task panicked")??;
                total += sent;
                hist.add(&h).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let secs = started.elapsed().as_secs_f64();
            let mb = (total as f64 * record_size as f64) / 1e6;
            outln!(
                "{total} records sent, {:.0} records/s ({:.2} MB/s), latency ms: avg {:.2}, p50 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
                total as f64 / secs,
                mb / secs,
                hist.mean() / 1000.0,
                hist.value_at_quantile(0.5) as f64 / 1000.0,
                hist.value_at_quantile(0.99) as f64 / 1000.0,
                hist.value_at_quantile(0.999) as f64 / 1000.0,
                hist.max() as f64 / 1000.0,
            );
        }
        BenchCommand::Consume { topic, num_records } => {
            let client = connect(bootstrap).await?;
            let mut consumer = Consumer::assign(client, &topic, None, OffsetSpec::Earliest)
                .await
                .map_err(|e: ClientError| anyhow::anyhow!(e))?;
            consumer.max_wait_ms = 100;
            let started = Instant::now();
            let (mut count, mut bytes) = (0u64, 0u64);
            let limit = num_records.unwrap_or(u64::MAX);
            while count < limit && !consumer.at_end() {
                for r in consumer.poll().await? {
                    count += 1;
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                }
            }
            let secs = started.elapsed().as_secs_f64();
            outln!(
                "{count} records read, {:.0} records/s ({:.2} MB/s)",
                count as f64 / secs,
                bytes as f64 / 1e6 / secs
            );
        }
    }
    Ok(())
}
