//! Fetch (with long-poll) and ListOffsets, in model types (`TopicPartition`,
//! `OffsetSpec`, `ListedOffset`).

use super::budget::ResponseBudget;
use super::wakeup::Wakeups;
use super::{
    FETCH_WAIT_MS_MAX, FetchOffsets, FetchPartitionParams, FetchedPartition, ReplicaManager,
};
use crate::partition::{ReadResult, Role};
use kavka_log::FetchData;
use kavka_model::data::{ListedOffset, OffsetSpec};
use kavka_model::{KafkaError, PartitionId, TopicName, TopicPartition};
use std::time::Duration;

impl ReplicaManager {
    /// Kafka's Fetch: reads every asked partition, at most `max_bytes` capped by the
    /// broker's `fetch.max.bytes` (at least one batch); if fewer than `min_bytes` are
    /// available, waits up to `max_wait` for high watermark (or role) changes on the
    /// asked partitions and reads again only those that changed.
    #[tracing::instrument(level = "debug", skip_all, fields(partitions = partitions.len(), max_wait_ms))]
    pub async fn fetch(
        &self,
        partitions: Vec<FetchPartitionParams>,
        max_wait_ms: u64,
        min_bytes: usize,
        max_bytes: usize,
    ) -> Vec<FetchedPartition> {
        let max_bytes = max_bytes.min(self.config.fetch_max_bytes);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(max_wait_ms.min(FETCH_WAIT_MS_MAX));
        // Subscribed before the first read: a change after it wakes the wait below. A
        // partition not served here has nothing to wait for (its read answers an error).
        let mut wakeups = Wakeups::new(
            partitions
                .iter()
                .map(|p| self.partition(&p.tp).ok().map(|part| part.watch_changes())),
        );
        let mut results = self.fetch_once(&partitions, max_bytes, None).await;
        loop {
            let bytes: usize = results.iter().map(|r| r.records.len()).sum();
            let any_error = results.iter().any(|r| r.error.is_some());
            if bytes >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
                return results;
            }
            let Some(woken) = wakeups.wait_until(deadline).await else {
                return results;
            };
            results = self
                .fetch_once(&partitions, max_bytes, Some((&woken, results)))
                .await;
        }
    }

    /// Reads the partitions in request order under one response budget; with
    /// `again = (woken, previous)`, reads only the woken ones and keeps the previous
    /// answers of the others (still counted against the budget, in order).
    async fn fetch_once(
        &self,
        partitions: &[FetchPartitionParams],
        max_bytes: usize,
        again: Option<(&[bool], Vec<FetchedPartition>)>,
    ) -> Vec<FetchedPartition> {
        let mut out = Vec::with_capacity(partitions.len());
        let mut budget = ResponseBudget::new(max_bytes);
        let (woken, mut previous) = match again {
            Some((woken, previous)) => (Some(woken), previous.into_iter()),
            None => (None, Vec::new().into_iter()),
        };
        for (i, p) in partitions.iter().enumerate() {
            let kept = previous.next();
            if let (Some(woken), Some(mut kept)) = (woken, kept)
                && !woken[i]
            {
                kept.records = budget.take(kept.records);
                out.push(kept);
                continue;
            }
            let mut r = FetchedPartition {
                tp: p.tp.clone(),
                error: None,
                offsets: None,
                records: Default::default(),
            };
            let part = self.partition(&p.tp).and_then(|part| {
                // As leader, only under a held lease (a follower serves committed records
                // whatever its session: they never change).
                if part.role().0 == Role::Leader {
                    self.check_lease()?;
                }
                Ok(part)
            });
            match part {
                Err(e) => r.error = Some(e),
                Ok(part) => {
                    // Kafka: at least one batch overall, so the first non-empty partition
                    // may exceed the budget; once it is spent, only offsets are reported.
                    let read = if budget.left_bytes() == 0 {
                        let (start, hw, end, _) = part.offsets().await;
                        Ok(ReadResult {
                            data: FetchData {
                                records: Default::default(),
                                log_start_offset: start,
                                log_end_offset: end,
                            },
                            high_watermark: hw,
                        })
                    } else {
                        part.read(p.offset, p.max_bytes.min(budget.left_bytes()))
                            .await
                    };
                    match read {
                        Ok(read) => {
                            r.offsets = Some(FetchOffsets {
                                high_watermark: read.high_watermark,
                                log_start_offset: read.data.log_start_offset,
                                log_end_offset: read.data.log_end_offset,
                            });
                            r.records = budget.take(read.data.records);
                        }
                        Err(e) => {
                            let (start, hw, end, _) = part.offsets().await;
                            r.offsets = Some(FetchOffsets {
                                high_watermark: hw,
                                log_start_offset: start,
                                log_end_offset: end,
                            });
                            r.error = Some(e);
                        }
                    }
                }
            }
            out.push(r);
        }
        out
    }

    /// Kafka's ListOffsets: earliest (the log start), latest (the high watermark), the
    /// record with the largest timestamp, or the first offset at or after a timestamp
    /// (None when there is none).
    pub async fn list_offsets(
        &self,
        topic: &TopicName,
        partitions: Vec<(PartitionId, OffsetSpec)>,
    ) -> Vec<(PartitionId, Result<Option<ListedOffset>, KafkaError>)> {
        let mut out = Vec::new();
        for (partition, spec) in partitions {
            let r = match self.partition(&TopicPartition::new(topic.clone(), partition)) {
                Err(e) => Err(e),
                Ok(part) => match spec {
                    OffsetSpec::Earliest => Ok(Some(ListedOffset {
                        offset: part.offsets().await.0,
                        timestamp_ms: None,
                    })),
                    OffsetSpec::Latest => Ok(Some(ListedOffset {
                        offset: part.high_watermark(),
                        timestamp_ms: None,
                    })),
                    OffsetSpec::MaxTimestamp => part.offset_for_timestamp(None).await.map(listed),
                    OffsetSpec::Timestamp(ts) => {
                        part.offset_for_timestamp(Some(ts)).await.map(listed)
                    }
                },
            };
            out.push((partition, r));
        }
        out
    }
}

fn listed(found: Option<(kavka_model::Offset, i64)>) -> Option<ListedOffset> {
    found.map(|(offset, ts)| ListedOffset {
        offset,
        timestamp_ms: Some(ts),
    })
}
