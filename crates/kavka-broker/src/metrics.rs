//! The broker's metrics, in Kafka's vocabulary with Prometheus' conventions (`kavka_`
//! prefix, `_total` counters, `_bytes`): scrape-time gauges from the replica manager, the
//! controller session and the group coordinator ([`collect`]), and the counters its
//! operations bump where they happen ([`isr_changed`], the broker API's produce and fetch).
//!
//! Invariants: per-partition series (`topic`, `partition` labels) exist only while their
//! count is at most the configured cap (`metrics_partition_series_max`), decided by
//! [`per_partition_series`]: beyond it only the per-topic and per-broker aggregates are
//! set, and the old per-partition series age out (the exporter drops gauges not set for
//! a while). Nothing here runs per record; collecting takes each partition's log lock
//! briefly, so [`collect`] runs off the async runtime. Must not depend on the listeners
//! or the HTTP crate: it only talks to the `metrics` facade.

use crate::node::BrokerNode;
use kavka_model::{ErrorCode, TopicName};
use std::collections::{BTreeMap, HashMap};
use std::sync::Once;

/// The default cap on per-partition series (`metrics_partition_series_max`).
pub const PARTITION_SERIES_MAX_DEFAULT: usize = 10_000;

/// One hosted replica as the metrics see it (`Partition::stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartitionStats {
    pub leader: bool,
    pub follower: bool,
    pub replicas: usize,
    pub isr: usize,
    pub min_isr: usize,
    pub high_watermark: i64,
    /// As follower, the leader's high watermark in its last fetch answer (-1: none).
    pub leader_high_watermark: i64,
    /// Whether the log fields below were read (the log was not busy).
    pub log_known: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    pub segments: usize,
    pub producers: usize,
}

/// How a partition this broker leads stands against its replication settings (Kafka's
/// UnderReplicated, UnderMinIsr and AtMinIsr); all false where it does not lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Health {
    pub under_replicated: bool,
    pub under_min_isr: bool,
    pub at_min_isr: bool,
}

impl PartitionStats {
    pub(crate) fn health(&self) -> Health {
        if !self.leader {
            return Health::default();
        }
        Health {
            under_replicated: self.isr < self.replicas,
            under_min_isr: self.isr < self.min_isr,
            at_min_isr: self.isr == self.min_isr,
        }
    }

    /// As follower, how many records it is behind the leader's high watermark (Kafka's
    /// replica fetcher lag); None where it does not follow or has not fetched yet.
    pub(crate) fn fetcher_lag(&self) -> Option<i64> {
        (self.follower && self.log_known && self.leader_high_watermark >= 0)
            .then(|| (self.leader_high_watermark - self.log_end_offset).max(0))
    }
}

/// A group's lag on one partition, as Kafka's lag exporters compute it: the high
/// watermark minus the committed offset, never below zero.
pub(crate) fn group_lag(committed: i64, high_watermark: i64) -> i64 {
    (high_watermark - committed.max(0)).max(0)
}

/// Whether `series` per-partition series may be exported under the cap `max`. All or
/// none: a subset would change from scrape to scrape and mislead sums.
pub fn per_partition_series(series: usize, max: usize) -> bool {
    series <= max
}

/// The Prometheus label value of a Kafka error code: Kafka's name for it
/// (`NOT_LEADER_OR_FOLLOWER`), as Kafka's `ErrorsPerSec` metric labels it.
pub fn error_label(code: ErrorCode) -> &'static str {
    code.name()
}

/// Counts an ISR change the controller accepted (Kafka's IsrShrinksPerSec and
/// IsrExpandsPerSec).
pub(crate) fn isr_changed(shrink: bool) {
    if shrink {
        metrics::counter!("kavka_isr_shrinks_total").increment(1);
    } else {
        metrics::counter!("kavka_isr_expands_total").increment(1);
    }
}

/// Counts what a produce request appended to `topic`: `bytes` of record batches holding
/// `records` records, and the partitions that failed, by error code.
pub(crate) fn record_produce(
    topic: &TopicName,
    bytes: u64,
    records: u64,
    errors: impl Iterator<Item = ErrorCode>,
) {
    if bytes > 0 {
        let t = topic.as_str().to_string();
        metrics::counter!("kavka_topic_bytes_in_total", "topic" => t.clone()).increment(bytes);
        metrics::counter!("kavka_topic_messages_in_total", "topic" => t).increment(records);
    }
    for e in errors {
        metrics::counter!("kavka_partition_errors_total", "api" => "produce", "error" => error_label(e))
            .increment(1);
    }
}

/// Counts what a consumer fetch returned: bytes per topic, failed partitions by code.
pub(crate) fn record_fetch<'a>(
    bytes_by_topic: impl Iterator<Item = (&'a TopicName, u64)>,
    errors: impl Iterator<Item = ErrorCode>,
) {
    for (topic, bytes) in bytes_by_topic {
        if bytes > 0 {
            metrics::counter!("kavka_topic_bytes_out_total", "topic" => topic.as_str().to_string())
                .increment(bytes);
        }
    }
    for e in errors {
        metrics::counter!("kavka_partition_errors_total", "api" => "fetch", "error" => error_label(e))
            .increment(1);
    }
}

/// Counts one replica fetch this leader answered and the record bytes it returned
/// (Kafka's `RequestsPerSec{request=FetchFollower}` and `ReplicationBytesOutPerSec`).
pub(crate) fn record_replica_fetch(bytes: u64) {
    metrics::counter!("kavka_replica_fetch_requests_total").increment(1);
    metrics::counter!("kavka_replication_bytes_out_total").increment(bytes);
}

/// Counts a client throttled for going over its `quota` (`producer_byte_rate`, ...):
/// one request, and the time it waits. Labelled by quota type only (bounded).
pub(crate) fn record_throttle(quota: &'static str, throttle_ms: u64) {
    metrics::counter!("kavka_quota_throttled_requests_total", "quota" => quota).increment(1);
    metrics::counter!("kavka_quota_throttle_time_ms_total", "quota" => quota)
        .increment(throttle_ms);
}

/// Per-broker sums over the hosted replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub partitions: u64,
    pub leaders: u64,
    pub under_replicated: u64,
    pub under_min_isr: u64,
    pub at_min_isr: u64,
    pub producers: u64,
    pub fetcher_max_lag: i64,
}

impl Totals {
    pub(crate) fn add(&mut self, s: &PartitionStats) {
        let h = s.health();
        self.partitions += 1;
        self.leaders += u64::from(s.leader);
        self.under_replicated += u64::from(h.under_replicated);
        self.under_min_isr += u64::from(h.under_min_isr);
        self.at_min_isr += u64::from(h.at_min_isr);
        self.producers += s.producers as u64;
        self.fetcher_max_lag = self.fetcher_max_lag.max(s.fetcher_lag().unwrap_or(0));
    }
}

fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use metrics::{Unit, describe_counter, describe_gauge};
        describe_gauge!(
            "kavka_broker_fenced",
            "1 while the controller has this broker fenced"
        );
        describe_gauge!(
            "kavka_broker_metadata_offset",
            "Offset of the last metadata record this broker applied"
        );
        describe_gauge!(
            "kavka_broker_metadata_lag",
            "Metadata records committed by the controllers and not yet applied here"
        );
        describe_gauge!(
            "kavka_broker_partitions",
            "Replicas hosted here (Kafka's PartitionCount)"
        );
        describe_gauge!(
            "kavka_broker_leader_partitions",
            "Partitions led here (Kafka's LeaderCount)"
        );
        describe_gauge!(
            "kavka_broker_under_replicated_partitions",
            "Partitions led here with an ISR smaller than the replica set"
        );
        describe_gauge!(
            "kavka_broker_under_min_isr_partitions",
            "Partitions led here with an ISR below min.insync.replicas"
        );
        describe_gauge!(
            "kavka_broker_at_min_isr_partitions",
            "Partitions led here with an ISR exactly at min.insync.replicas"
        );
        describe_gauge!(
            "kavka_broker_offline_replicas",
            "Replicas hosted here whose log cannot be opened"
        );
        describe_gauge!(
            "kavka_broker_producer_ids",
            "Producer ids with state in the logs hosted here (Kafka's ProducerIdCount)"
        );
        describe_gauge!(
            "kavka_replica_fetcher_max_lag",
            "Largest replica fetcher lag of this broker, in records"
        );
        describe_gauge!(
            "kavka_replica_fetcher_lag",
            "Records this follower is behind its leader's high watermark"
        );
        describe_gauge!(
            "kavka_log_size_bytes",
            Unit::Bytes,
            "Size of a partition's log"
        );
        describe_gauge!("kavka_log_segments", "Segments of a partition's log");
        describe_gauge!(
            "kavka_log_start_offset",
            "First offset of a partition's log"
        );
        describe_gauge!("kavka_log_end_offset", "Next offset of a partition's log");
        describe_gauge!(
            "kavka_partition_high_watermark",
            "High watermark of a partition"
        );
        describe_gauge!(
            "kavka_partition_under_replicated",
            "1 while a partition led here has an ISR smaller than its replica set"
        );
        describe_gauge!(
            "kavka_topic_log_size_bytes",
            Unit::Bytes,
            "Size of a topic's logs hosted here"
        );
        describe_gauge!("kavka_topic_partitions", "Replicas of a topic hosted here");
        describe_gauge!(
            "kavka_partition_series_capped",
            "1 while per-partition series are dropped by metrics_partition_series_max"
        );
        describe_gauge!(
            "kavka_consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark"
        );
        describe_gauge!(
            "kavka_consumer_group_lag_sum",
            "A group's lag summed over a topic's partitions"
        );
        describe_gauge!("kavka_consumer_groups", "Groups this broker coordinates");
        describe_counter!(
            "kavka_isr_shrinks_total",
            "ISR shrinks the controller accepted from this broker"
        );
        describe_counter!(
            "kavka_isr_expands_total",
            "ISR expansions the controller accepted from this broker"
        );
        describe_counter!(
            "kavka_producer_duplicate_batches_total",
            "Idempotent producer retries answered as duplicates"
        );
        describe_counter!(
            "kavka_topic_bytes_in_total",
            Unit::Bytes,
            "Record batch bytes appended by producers"
        );
        describe_counter!(
            "kavka_topic_messages_in_total",
            "Records appended by producers"
        );
        describe_counter!(
            "kavka_topic_bytes_out_total",
            Unit::Bytes,
            "Record batch bytes returned to consumers"
        );
        describe_counter!(
            "kavka_replica_fetch_requests_total",
            "Replica fetches this broker answered as leader (one per follower round)"
        );
        describe_counter!(
            "kavka_replication_bytes_out_total",
            Unit::Bytes,
            "Record batch bytes this broker sent to its followers"
        );
        describe_counter!(
            "kavka_partition_errors_total",
            "Produce and fetch partition errors, by Kafka error code"
        );
        describe_counter!(
            "kavka_quota_throttled_requests_total",
            "Requests of clients over their client quota, answered with a throttle time"
        );
        describe_counter!(
            "kavka_quota_throttle_time_ms_total",
            "Milliseconds clients over their client quota were told to wait (Kafka's throttle-time)"
        );
        describe_counter!(
            "kavka_group_rebalances_total",
            "Completed rebalances of the groups this broker coordinates"
        );
        // Counters of rare events start at 0, so rate() and increase() see their first one.
        for name in [
            "kavka_isr_shrinks_total",
            "kavka_isr_expands_total",
            "kavka_producer_duplicate_batches_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        for protocol in ["classic", "consumer"] {
            metrics::counter!("kavka_group_rebalances_total", "protocol" => protocol).increment(0);
        }
    });
}

/// Sets the broker's scrape-time gauges; per-partition series only while there are at
/// most `partition_series_max` of them (hosted replicas; group lag pairs counted apart).
pub fn collect(node: &BrokerNode, partition_series_max: usize) {
    describe();
    let replicas = &node.replicas;
    let image = replicas.image();
    let applied = image.offset;
    metrics::gauge!("kavka_broker_fenced").set(f64::from(u8::from(node.session.is_fenced())));
    metrics::gauge!("kavka_broker_metadata_offset").set(applied as f64);
    if let Some(committed) = node.session.controller_offset() {
        metrics::gauge!("kavka_broker_metadata_lag").set((committed - applied).max(0) as f64);
    }
    metrics::gauge!("kavka_broker_offline_replicas").set(replicas.offline_replicas().len() as f64);

    let online = replicas.online();
    let per_partition = per_partition_series(online.len(), partition_series_max);
    let mut totals = Totals::default();
    let mut topics: BTreeMap<&TopicName, (u64, u64)> = BTreeMap::new();
    let mut hw: HashMap<(&str, i32), i64> = HashMap::with_capacity(online.len());
    let stats: Vec<_> = online.iter().map(|p| (p, p.stats())).collect();
    for (p, s) in &stats {
        totals.add(s);
        let t = topics.entry(&p.tp.topic).or_default();
        t.0 += s.size_bytes;
        t.1 += 1;
        hw.insert((p.tp.topic.as_str(), p.tp.partition.0), s.high_watermark);
        if !per_partition {
            continue;
        }
        let labels = [
            ("topic", p.tp.topic.as_str().to_string()),
            ("partition", p.tp.partition.0.to_string()),
        ];
        if s.log_known {
            metrics::gauge!("kavka_log_size_bytes", &labels).set(s.size_bytes as f64);
            metrics::gauge!("kavka_log_segments", &labels).set(s.segments as f64);
            metrics::gauge!("kavka_log_start_offset", &labels).set(s.log_start_offset as f64);
            metrics::gauge!("kavka_log_end_offset", &labels).set(s.log_end_offset as f64);
        }
        metrics::gauge!("kavka_partition_high_watermark", &labels).set(s.high_watermark as f64);
        if s.leader {
            metrics::gauge!("kavka_partition_under_replicated", &labels)
                .set(f64::from(u8::from(s.health().under_replicated)));
        }
        if let Some(lag) = s.fetcher_lag() {
            metrics::gauge!("kavka_replica_fetcher_lag", &labels).set(lag as f64);
        }
    }
    metrics::gauge!("kavka_partition_series_capped").set(f64::from(u8::from(!per_partition)));
    for (topic, (size, count)) in topics {
        let t = topic.as_str().to_string();
        metrics::gauge!("kavka_topic_log_size_bytes", "topic" => t.clone()).set(size as f64);
        metrics::gauge!("kavka_topic_partitions", "topic" => t).set(count as f64);
    }
    metrics::gauge!("kavka_broker_partitions").set(totals.partitions as f64);
    metrics::gauge!("kavka_broker_leader_partitions").set(totals.leaders as f64);
    metrics::gauge!("kavka_broker_under_replicated_partitions").set(totals.under_replicated as f64);
    metrics::gauge!("kavka_broker_under_min_isr_partitions").set(totals.under_min_isr as f64);
    metrics::gauge!("kavka_broker_at_min_isr_partitions").set(totals.at_min_isr as f64);
    metrics::gauge!("kavka_broker_producer_ids").set(totals.producers as f64);
    metrics::gauge!("kavka_replica_fetcher_max_lag").set(totals.fetcher_max_lag as f64);
    collect_groups(node, &hw, partition_series_max);
}

/// Lag of the groups this broker coordinates, on the partitions it hosts: their high
/// watermark is known here without asking another broker, so a scrape never waits on
/// the network. A group's partitions hosted on no replica here are not shown (README).
fn collect_groups(node: &BrokerNode, hw: &HashMap<(&str, i32), i64>, partition_series_max: usize) {
    let groups = node.groups.list_groups();
    metrics::gauge!("kavka_consumer_groups").set(groups.len() as f64);
    let mut lags: Vec<(&str, String, i32, i64)> = Vec::new();
    let mut names = Vec::with_capacity(groups.len());
    for g in &groups {
        names.push(g.group_id.as_str());
    }
    let mut fetched = Vec::with_capacity(names.len());
    for name in names {
        if let Ok(offsets) = node.groups.fetch_offsets(name, None) {
            fetched.push((name, offsets));
        }
    }
    for (group, offsets) in &fetched {
        for (topic, partition, committed) in offsets {
            let (Some(c), Some(&h)) = (committed, hw.get(&(topic.as_str(), *partition))) else {
                continue;
            };
            lags.push((group, topic.clone(), *partition, group_lag(c.offset, h)));
        }
    }
    let per_partition = per_partition_series(lags.len(), partition_series_max);
    let mut sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (group, topic, partition, lag) in &lags {
        *sums.entry((group, topic.as_str())).or_default() += lag;
        if per_partition {
            metrics::gauge!("kavka_consumer_group_lag",
                "group" => group.to_string(), "topic" => topic.clone(), "partition" => partition.to_string())
            .set(*lag as f64);
        }
    }
    for ((group, topic), lag) in sums {
        metrics::gauge!("kavka_consumer_group_lag_sum", "group" => group.to_string(), "topic" => topic.to_string())
            .set(lag as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(replicas: usize, isr: usize, min_isr: usize) -> PartitionStats {
        PartitionStats {
            leader: true,
            replicas,
            isr,
            min_isr,
            leader_high_watermark: -1,
            ..PartitionStats::default()
        }
    }

    #[test]
    fn health_of_a_led_partition() {
        // (replicas, isr, min_isr) -> (under-replicated, under min ISR, at min ISR)
        let table = [
            ((3, 3, 2), (false, false, false)),
            ((3, 2, 2), (true, false, true)),
            ((3, 1, 2), (true, true, false)),
            ((1, 1, 1), (false, false, true)),
            ((3, 3, 3), (false, false, true)),
        ];
        for ((r, i, m), (ur, umi, ami)) in table {
            let h = leader(r, i, m).health();
            assert_eq!(
                (h.under_replicated, h.under_min_isr, h.at_min_isr),
                (ur, umi, ami),
                "replicas {r}, isr {i}, min isr {m}"
            );
        }
        // A follower counts nothing: its leader does.
        let mut f = leader(3, 1, 2);
        f.leader = false;
        f.follower = true;
        assert_eq!(f.health(), Health::default());
    }

    #[test]
    fn fetcher_lag_is_the_leaders_high_watermark_minus_our_log_end() {
        let follower = |leader_hw: i64, end: i64| PartitionStats {
            follower: true,
            log_known: true,
            leader_high_watermark: leader_hw,
            log_end_offset: end,
            ..PartitionStats::default()
        };
        assert_eq!(follower(-1, 0).fetcher_lag(), None, "not fetched yet");
        assert_eq!(follower(100, 40).fetcher_lag(), Some(60));
        assert_eq!(follower(100, 100).fetcher_lag(), Some(0));
        // Fetched past the leader's high watermark: not behind.
        assert_eq!(follower(100, 120).fetcher_lag(), Some(0));
        assert_eq!(
            leader(3, 3, 2).fetcher_lag(),
            None,
            "a leader has no fetcher"
        );
    }

    #[test]
    fn group_lag_as_lag_exporters_compute_it() {
        assert_eq!(group_lag(40, 100), 60);
        assert_eq!(group_lag(100, 100), 0);
        assert_eq!(group_lag(120, 100), 0, "committed past the high watermark");
        assert_eq!(group_lag(-1, 100), 100, "no position: the whole log");
    }

    #[test]
    fn the_cap_is_all_or_nothing() {
        for (series, max, on) in [
            (0, 0, true),
            (10, 10, true),
            (11, 10, false),
            (10_000, 10_000, true),
            (10_001, 10_000, false),
            (5, 0, false),
        ] {
            assert_eq!(
                per_partition_series(series, max),
                on,
                "{series} series, cap {max}"
            );
        }
    }

    #[test]
    fn totals_sum_the_replicas() {
        let mut t = Totals::default();
        t.add(&leader(3, 2, 2));
        t.add(&leader(3, 3, 2));
        t.add(&PartitionStats {
            follower: true,
            log_known: true,
            leader_high_watermark: 50,
            log_end_offset: 20,
            producers: 4,
            ..PartitionStats::default()
        });
        assert_eq!(
            t,
            Totals {
                partitions: 3,
                leaders: 2,
                under_replicated: 1,
                under_min_isr: 0,
                at_min_isr: 1,
                producers: 4,
                fetcher_max_lag: 30,
            }
        );
    }

    #[test]
    fn error_labels_are_kafkas_names() {
        assert_eq!(
            error_label(ErrorCode::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            error_label(ErrorCode::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
    }
}
