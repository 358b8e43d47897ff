//! Typed per-topic configs with Kafka's names, defaults and validation.
//!
//! A topic stores only its *overrides* (key → string value, as Kafka does); the typed
//! `TopicConfig` is derived from them and is valid by construction. Unknown keys and bad
//! values are refused with an error naming the key and the value.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// `compression.type`: what the broker stores. `Producer` keeps the producer's codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config '{key}'; known configs: {known}")]
    UnknownKey { key: String, known: String },
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// The typed configs of one topic. Field names are Kafka's keys with `_` for `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    /// Kafka's `internal.segment.bytes`: a segment size below the `segment.bytes` floor,
    /// for tests only; not described (as in Kafka), and it wins over `segment.bytes`.
    pub internal_segment_bytes: Option<u64>,
    pub segment_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub compression_type: CompressionType,
    pub max_message_bytes: u32,
    pub message_timestamp_type: TimestampType,
    /// A CreateTime record may be at most this much older than the broker's clock.
    pub message_timestamp_before_max_ms: i64,
    /// A CreateTime record may be at most this much ahead of the broker's clock.
    pub message_timestamp_after_max_ms: i64,
    pub index_interval_bytes: u32,
    pub delete_retention_ms: i64,
    /// Clean a compacted log once this share of it is dirty (not yet cleaned).
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// A record stays uncompacted for at least this long after it was written.
    pub min_compaction_lag_ms: i64,
    /// A record is compacted at the latest this long after it was written, however
    /// clean the log (`max.compaction.lag.ms`); `i64::MAX`: no bound.
    pub max_compaction_lag_ms: i64,
    /// Segments roll up to this much before `segment.ms`, a fixed amount per segment,
    /// so that partitions created together do not all roll at once.
    pub segment_jitter_ms: i64,
    /// A segment rolls once its offset index holds this many bytes of 8-byte entries
    /// (or its time index as many 12-byte ones), as Kafka's preallocated index files.
    pub segment_index_bytes: u32,
    /// fsync once this many messages are not yet on disk; 1: before every
    /// acknowledgement. `i64::MAX` (Kafka's default): never for this reason.
    pub flush_messages: i64,
    /// fsync data older than this; `i64::MAX` (Kafka's default): never for this reason.
    pub flush_ms: i64,
    /// A segment file removed by retention, compaction or truncation is renamed to
    /// `*.deleted` and unlinked this much later (`file.delete.delay.ms`).
    pub file_delete_delay_ms: i64,
    /// Reserve `segment.bytes` of disk for each new active segment (`preallocate`).
    pub preallocate: bool,
}

/// `min.cleanable.dirty.ratio`: a share in [0, 1] (never NaN, so it is `Eq`).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct DirtyRatio(f64);

impl Eq for DirtyRatio {}

impl DirtyRatio {
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Smallest `segment.bytes` accepted: Kafka 4's floor (KIP-1030). Tiny segments cost
/// file descriptors and index memory each: a topic of 1 KiB segments once filled a node's
/// descriptor limit.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;

/// Smallest `internal.segment.bytes` (tests only): room for a few batches.
pub const INTERNAL_SEGMENT_BYTES_MIN: u64 = 1024;

/// Topic configs accepted but never described, as Kafka's internal configs.
pub const INTERNAL_KEYS: &[&str] = &["internal.segment.bytes", LEGACY_TIMESTAMP_DIFFERENCE];

/// Kafka 3's `message.timestamp.difference.max.ms` (removed in Kafka 4): accepted from
/// older tools, not described; it bounds a CreateTime in both directions wherever
/// `message.timestamp.before.max.ms` / `after.max.ms` are not set themselves.
pub const LEGACY_TIMESTAMP_DIFFERENCE: &str = "message.timestamp.difference.max.ms";

impl Default for TopicConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            segment_bytes: 1024 * 1024 * 1024,
            internal_segment_bytes: None,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            cleanup_policy: CleanupPolicy::Delete,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            compression_type: CompressionType::Producer,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            // Kafka 4's default: an hour.
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            index_interval_bytes: 4096,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: DirtyRatio(0.5),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            preallocate: false,
        }
    }
}

/// Where a config's value comes from, as Kafka's DescribeConfigs says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Kafka's default (DEFAULT_CONFIG).
    Default,
    /// This broker's setting for every topic (STATIC_BROKER_CONFIG), e.g. `flush.messages`
    /// from `--log-flush fsync`.
    Broker,
    /// The topic's own override (DYNAMIC_TOPIC_CONFIG).
    Topic,
}

impl ConfigSource {
    /// Kafka's name for the source.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::Broker => "STATIC_BROKER_CONFIG",
            ConfigSource::Topic => "DYNAMIC_TOPIC_CONFIG",
        }
    }
}

/// One config as `describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

impl ConfigEntry {
    /// Not set on the topic itself.
    pub fn is_default(&self) -> bool {
        self.source != ConfigSource::Topic
    }
}

/// Topic configs Kafka 4 defines for features Kavka has not built: described with
/// Kafka's default, and refused when set to anything else, saying why, rather than
/// stored and ignored. (name, Kafka's default, what is missing)
pub const NOT_BUILT: &[(&str, &str, &str)] = &[
    (
        "compression.gzip.level",
        "-1",
        "per-codec compression levels",
    ),
    ("compression.lz4.level", "9", "per-codec compression levels"),
    (
        "compression.zstd.level",
        "3",
        "per-codec compression levels",
    ),
    (
        "follower.replication.throttled.replicas",
        "",
        "throttling listed replicas (a partition move throttles its new replicas by itself)",
    ),
    (
        "leader.replication.throttled.replicas",
        "",
        "throttling listed replicas (a partition move throttles its new replicas by itself)",
    ),
    ("local.retention.bytes", "-2", "tiered storage"),
    ("local.retention.ms", "-2", "tiered storage"),
    ("remote.log.copy.disable", "false", "tiered storage"),
    ("remote.log.delete.on.disable", "false", "tiered storage"),
    ("remote.storage.enable", "false", "tiered storage"),
];

pub const KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

impl TopicConfig {
    /// Kafka defaults with `overrides` applied; any unknown key or bad value is an error.
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = TopicConfig::default();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        config.apply_legacy(overrides);
        Ok(config)
    }

    /// `message.timestamp.difference.max.ms` where the configs that replaced it are unset.
    fn apply_legacy(&mut self, overrides: &BTreeMap<String, String>) {
        let Some(d) = overrides
            .get(LEGACY_TIMESTAMP_DIFFERENCE)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|d| *d >= 0)
        else {
            return;
        };
        if !overrides.contains_key("message.timestamp.before.max.ms") {
            self.message_timestamp_before_max_ms = d;
        }
        if !overrides.contains_key("message.timestamp.after.max.ms") {
            self.message_timestamp_after_max_ms = d;
        }
    }

    /// Configs as stored in the metadata, read leniently: a value that was valid when it
    /// was set stays in effect (a `segment.bytes` below today's floor is kept as it is),
    /// and any other bad entry is skipped alone, returned for
    /// the caller to log, instead of dropping the topic's other configs.
    pub fn from_stored(overrides: &BTreeMap<String, String>) -> (Self, Vec<ConfigError>) {
        let mut config = TopicConfig::default();
        let mut skipped = Vec::new();
        for (key, value) in overrides {
            if let Err(e) = config.set(key, value) {
                // Set under the floor of its day (1 KiB): kept, and described, as it is.
                let older_floor = match value.trim().parse::<u64>() {
                    Ok(v) if key == "segment.bytes" && v >= INTERNAL_SEGMENT_BYTES_MIN => {
                        config.segment_bytes = v;
                        true
                    }
                    _ => false,
                };
                if !older_floor {
                    skipped.push(e);
                }
            }
        }
        config.apply_legacy(overrides);
        (config, skipped)
    }

    /// Configs as stored, over this broker's settings for every topic (`broker`, e.g.
    /// `flush.messages` from `--log-flush`), read leniently as `from_stored`.
    pub fn from_stored_over(
        broker: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> (Self, Vec<ConfigError>) {
        let mut layered = broker.clone();
        layered.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::from_stored(&layered)
    }

    /// Checks a key without a value (for deletes of overrides).
    pub fn check_key(key: &str) -> Result<(), ConfigError> {
        if KEYS.contains(&key)
            || INTERNAL_KEYS.contains(&key)
            || NOT_BUILT.iter().any(|(k, ..)| *k == key)
        {
            Ok(())
        } else {
            Err(unknown(key))
        }
    }

    /// Sets one config from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        match key {
            "retention.ms" => self.retention_ms = parse_at_least(value, -1, &bad)?,
            "retention.bytes" => self.retention_bytes = parse_at_least(value, -1, &bad)?,
            "segment.bytes" => {
                self.segment_bytes = parse_at_least(value, SEGMENT_BYTES_MIN as i64, &bad)? as u64;
            }
            "internal.segment.bytes" => {
                self.internal_segment_bytes =
                    Some(parse_at_least(value, INTERNAL_SEGMENT_BYTES_MIN as i64, &bad)? as u64);
            }
            "segment.ms" => self.segment_ms = parse_at_least(value, 1, &bad)?,
            "delete.retention.ms" => self.delete_retention_ms = parse_at_least(value, 0, &bad)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_at_least(value, 0, &bad)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = parse_at_least(value, 1, &bad)?,
            "segment.jitter.ms" => self.segment_jitter_ms = parse_at_least(value, 0, &bad)?,
            // Checked here, applied by `apply_legacy` once every key is known.
            LEGACY_TIMESTAMP_DIFFERENCE => {
                parse_at_least(value, 0, &bad)?;
            }
            "segment.index.bytes" => {
                // Kafka's floor: room for at least one entry of either index.
                self.segment_index_bytes = parse_at_least(value, 4, &bad)?
                    .try_into()
                    .map_err(|_| bad("must fit in 32 bits"))?
            }
            "flush.messages" => self.flush_messages = parse_at_least(value, 1, &bad)?,
            "flush.ms" => self.flush_ms = parse_at_least(value, 0, &bad)?,
            "file.delete.delay.ms" => self.file_delete_delay_ms = parse_at_least(value, 0, &bad)?,
            "preallocate" => self.preallocate = parse_bool(value, &bad)?,
            "message.timestamp.before.max.ms" => {
                self.message_timestamp_before_max_ms = parse_at_least(value, 0, &bad)?
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = parse_at_least(value, 0, &bad)?
            }
            "min.cleanable.dirty.ratio" => {
                let r = f64::from_str(value.trim()).map_err(|_| bad("expected a number"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(bad("must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = DirtyRatio(r);
            }
            "min.insync.replicas" => {
                self.min_insync_replicas = parse_at_least(value, 1, &bad)? as i32
            }
            "max.message.bytes" => {
                self.max_message_bytes = parse_at_least(value, 0, &bad)?
                    .try_into()
                    .map_err(|_| bad("must fit in 32 bits"))?
            }
            "index.interval.bytes" => {
                self.index_interval_bytes = parse_at_least(value, 0, &bad)?
                    .try_into()
                    .map_err(|_| bad("must fit in 32 bits"))?
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse_bool(value, &bad)?
            }
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                self.cleanup_policy = match parts.as_slice() {
                    ["delete"] => CleanupPolicy::Delete,
                    ["compact"] => CleanupPolicy::Compact,
                    ["compact", "delete"] => CleanupPolicy::CompactDelete,
                    _ => return Err(bad("expected delete, compact or compact,delete")),
                }
            }
            "compression.type" => {
                self.compression_type = match value {
                    "producer" => CompressionType::Producer,
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => {
                        return Err(bad(
                            "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                        ));
                    }
                }
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(bad("expected CreateTime or LogAppendTime")),
                }
            }
            _ => match NOT_BUILT.iter().find(|(k, ..)| *k == key) {
                // Kafka's default changes nothing: tools that set every config may send it.
                Some((_, default, _)) if value.trim() == *default => {}
                Some((_, default, why)) => {
                    return Err(bad(&format!(
                        "{why} is not built in Kavka yet: only Kafka's default {default:?} is accepted"
                    )));
                }
                None => return Err(unknown(key)),
            },
        }
        Ok(())
    }

    /// The segment size in effect: `internal.segment.bytes` when set, else `segment.bytes`.
    pub fn effective_segment_bytes(&self) -> u64 {
        self.internal_segment_bytes.unwrap_or(self.segment_bytes)
    }

    /// Every config Kafka defines with its value in effect and where that comes from:
    /// the topic's `overrides`, this `broker`'s settings for every topic, or Kafka's
    /// default. Sorted by name.
    pub fn entries(
        &self,
        broker: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        let source = |name: &str| {
            if overrides.contains_key(name) {
                ConfigSource::Topic
            } else if broker.contains_key(name) {
                ConfigSource::Broker
            } else {
                ConfigSource::Default
            }
        };
        let mut entries: Vec<ConfigEntry> = KEYS
            .iter()
            .map(|&name| ConfigEntry {
                name,
                value: self.value_of(name),
                source: source(name),
            })
            .chain(NOT_BUILT.iter().map(|&(name, default, _)| ConfigEntry {
                name,
                value: default.to_string(),
                source: source(name),
            }))
            .collect();
        entries.sort_by_key(|e| e.name);
        entries
    }

    fn value_of(&self, key: &str) -> String {
        match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.0.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "cleanup.policy" => match self.cleanup_policy {
                CleanupPolicy::Delete => "delete",
                CleanupPolicy::Compact => "compact",
                CleanupPolicy::CompactDelete => "compact,delete",
            }
            .to_string(),
            "compression.type" => self.compression_type.to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_string(),
            _ => String::new(),
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        })
    }
}

fn unknown(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        known: KEYS.join(", "),
    }
}

fn parse_bool(value: &str, bad: &dyn Fn(&str) -> ConfigError) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad("expected true or false")),
    }
}

fn parse_at_least(
    value: &str,
    min: i64,
    bad: &dyn Fn(&str) -> ConfigError,
) -> Result<i64, ConfigError> {
    let v = i64::from_str(value.trim()).map_err(|_| bad("expected an integer"))?;
    if v < min {
        return Err(bad(&format!("must be at least {min}")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn applies_overrides() {
        let c = TopicConfig::from_overrides(&overrides(&[
            ("retention.ms", "1000"),
            ("cleanup.policy", "delete,compact"),
            ("compression.type", "zstd"),
            ("min.insync.replicas", "2"),
        ]))
        .unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(c.compression_type, CompressionType::Zstd);
        assert_eq!(c.min_insync_replicas, 2);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let e = TopicConfig::from_overrides(&overrides(&[("retention.mss", "1")])).unwrap_err();
        assert!(
            e.to_string().starts_with("unknown config 'retention.mss'"),
            "{e}"
        );
        let table = [
            ("retention.ms", "soon", "expected an integer"),
            ("retention.ms", "-2", "must be at least -1"),
            ("segment.bytes", "10", "must be at least 1048576"),
            ("segment.bytes", "1048575", "must be at least 1048576"),
            ("internal.segment.bytes", "10", "must be at least 1024"),
            ("min.insync.replicas", "0", "must be at least 1"),
            ("cleanup.policy", "keep", "expected delete"),
            ("compression.type", "brotli", "expected producer"),
            (
                "unclean.leader.election.enable",
                "yes",
                "expected true or false",
            ),
            ("max.message.bytes", "99999999999", "must fit in 32 bits"),
            (
                "min.cleanable.dirty.ratio",
                "1.5",
                "must be between 0 and 1",
            ),
            ("min.cleanable.dirty.ratio", "half", "expected a number"),
            ("min.compaction.lag.ms", "-1", "must be at least 0"),
            ("flush.messages", "0", "must be at least 1"),
            ("flush.ms", "-1", "must be at least 0"),
            ("remote.storage.enable", "true", "tiered storage"),
            ("segment.jitter.ms", "-1", "must be at least 0"),
            ("max.compaction.lag.ms", "0", "must be at least 1"),
            ("segment.index.bytes", "3", "must be at least 4"),
            ("preallocate", "yes", "expected true or false"),
            ("file.delete.delay.ms", "-1", "must be at least 0"),
            (
                "compression.zstd.level",
                "9",
                "per-codec compression levels is not built in Kavka yet",
            ),
        ];
        for (k, v, why) in table {
            let e = TopicConfig::from_overrides(&overrides(&[(k, v)])).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(k) && msg.contains(v) && msg.contains(why),
                "{msg}"
            );
        }
    }

    #[test]
    fn stored_configs_are_read_leniently() {
        // A segment.bytes stored before the 1 MiB floor, a bad value and a good one.
        let (c, skipped) = TopicConfig::from_stored(&overrides(&[
            ("segment.bytes", "4096"),
            ("retention.ms", "soon"),
            ("cleanup.policy", "compact"),
        ]));
        assert_eq!(c.effective_segment_bytes(), 4096);
        let described = c.entries(&BTreeMap::new(), &overrides(&[("segment.bytes", "4096")]));
        let seg = described
            .iter()
            .find(|e| e.name == "segment.bytes")
            .unwrap();
        assert_eq!(seg.value, "4096", "described as in effect");
        assert_eq!(
            c.cleanup_policy,
            CleanupPolicy::Compact,
            "the good one is kept"
        );
        assert_eq!(c.retention_ms, TopicConfig::default().retention_ms);
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].to_string().contains("retention.ms"),
            "{}",
            skipped[0]
        );
        // An explicit internal.segment.bytes wins over an old segment.bytes.
        let (c, skipped) = TopicConfig::from_stored(&overrides(&[
            ("internal.segment.bytes", "2048"),
            ("segment.bytes", "4096"),
        ]));
        assert_eq!((c.effective_segment_bytes(), skipped.len()), (2048, 0));
    }

    #[test]
    fn entries_show_values_and_defaults() {
        let o = overrides(&[
            ("segment.bytes", "2097152"),
            ("internal.segment.bytes", "2048"),
        ]);
        let c = TopicConfig::from_overrides(&o).unwrap();
        let entries = c.entries(&BTreeMap::new(), &o);
        assert_eq!(
            entries.len(),
            KEYS.len() + NOT_BUILT.len(),
            "internal configs are not described"
        );
        let seg = entries.iter().find(|e| e.name == "segment.bytes").unwrap();
        assert_eq!(
            (seg.value.as_str(), seg.source),
            ("2097152", ConfigSource::Topic)
        );
        assert_eq!(c.effective_segment_bytes(), 2048);
        assert!(TopicConfig::check_key("internal.segment.bytes").is_ok());
        let ret = entries.iter().find(|e| e.name == "retention.ms").unwrap();
        assert_eq!(
            (ret.value.as_str(), ret.source),
            ("604800000", ConfigSource::Default)
        );
        for e in &entries {
            let mut fresh = TopicConfig::default();
            fresh.set(e.name, &e.value).unwrap();
        }
    }

    #[test]
    fn the_legacy_timestamp_difference_bounds_what_is_not_set_itself() {
        let d = LEGACY_TIMESTAMP_DIFFERENCE;
        // (overrides, before, after)
        let table = [
            (vec![(d, "5000")], 5000, 5000),
            (
                vec![(d, "5000"), ("message.timestamp.after.max.ms", "10")],
                5000,
                10,
            ),
            (
                vec![(d, "5000"), ("message.timestamp.before.max.ms", "7")],
                7,
                5000,
            ),
            (vec![], i64::MAX, 3_600_000),
        ];
        for (o, before, after) in table {
            let c = TopicConfig::from_overrides(&overrides(&o)).unwrap();
            assert_eq!(
                (
                    c.message_timestamp_before_max_ms,
                    c.message_timestamp_after_max_ms
                ),
                (before, after),
                "{o:?}"
            );
            assert_eq!(TopicConfig::from_stored(&overrides(&o)).0, c, "{o:?}");
        }
        assert!(TopicConfig::from_overrides(&overrides(&[(d, "-1")])).is_err());
        let described = TopicConfig::default().entries(&BTreeMap::new(), &BTreeMap::new());
        assert!(described.iter().all(|e| e.name != d), "not described");
    }

    #[test]
    fn every_kafka_topic_config_is_described_with_its_source() {
        let broker = overrides(&[("flush.messages", "1")]);
        let topic = overrides(&[("flush.ms", "250")]);
        let (c, skipped) = TopicConfig::from_stored_over(&broker, &topic);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!((c.flush_messages, c.flush_ms), (1, 250));
        let entries = c.entries(&broker, &topic);
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .map(|e| (e.value.clone(), e.source))
        };
        // (config, value in effect, source)
        let table = [
            ("flush.messages", "1", ConfigSource::Broker),
            ("flush.ms", "250", ConfigSource::Topic),
            ("retention.ms", "604800000", ConfigSource::Default),
            ("remote.storage.enable", "false", ConfigSource::Default),
            ("segment.jitter.ms", "0", ConfigSource::Default),
            ("file.delete.delay.ms", "60000", ConfigSource::Default),
            ("preallocate", "false", ConfigSource::Default),
            (
                "max.compaction.lag.ms",
                "9223372036854775807",
                ConfigSource::Default,
            ),
        ];
        for (name, value, source) in table {
            assert_eq!(get(name), Some((value.to_string(), source)), "{name}");
        }
        // A topic override wins over the broker's setting.
        let (c, _) = TopicConfig::from_stored_over(&broker, &overrides(&[("flush.messages", "5")]));
        assert_eq!(c.flush_messages, 5);
        // A config not built is accepted at Kafka's default only, and can be deleted.
        assert!(
            TopicConfig::from_overrides(&overrides(&[("remote.storage.enable", "false")])).is_ok()
        );
        assert!(TopicConfig::check_key("remote.storage.enable").is_ok());
        let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted by name, each once");
        for (name, ..) in NOT_BUILT {
            assert!(!KEYS.contains(name), "{name} is built and not built");
        }
    }
}
