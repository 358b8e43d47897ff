//! Dynamic broker configs: the broker settings that can change while the cluster runs,
//! set through the Kafka API (IncrementalAlterConfigs on a BROKER resource) and stored
//! in the metadata log, cluster-wide (resource name "") or for one broker (its id).
//!
//! Invariant: a value stored here parsed when it was set; a broker's value wins over the
//! cluster-wide one, which wins over the node's static setting (flag, env, file).

use crate::config::ConfigError;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Broker configs that may be changed while running, with Kafka's names.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "auto.create.topics.enable",
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "log.retention.check.interval.ms",
    "num.partitions",
];

/// The dynamic broker configs in effect for one broker: `None` where neither the broker
/// nor the cluster set one, so the node's static setting applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfig {
    pub auto_create_topics_enable: Option<bool>,
    pub log_retention_check_interval_ms: Option<u64>,
    pub num_partitions: Option<i32>,
    /// Bytes per second a leader sends to replicas a move is adding (None: unlimited).
    pub leader_replication_throttled_rate: Option<u64>,
    /// Bytes per second a replica a move is adding fetches (None: unlimited).
    pub follower_replication_throttled_rate: Option<u64>,
}

impl DynamicBrokerConfig {
    /// Checks one config as set by a client: a dynamic key and a valid value.
    pub fn check(key: &str, value: &str) -> Result<(), ConfigError> {
        Self::default().set(key, value)
    }

    /// Checks a key alone (to delete it).
    pub fn check_key(key: &str) -> Result<(), ConfigError> {
        if DYNAMIC_BROKER_KEYS.contains(&key) {
            Ok(())
        } else {
            Err(not_dynamic(key))
        }
    }

    /// The configs in effect from the stored cluster-wide and per-broker values (the
    /// broker's win). A stored value that no longer parses is skipped and returned.
    pub fn layered(
        cluster: &BTreeMap<String, String>,
        broker: &BTreeMap<String, String>,
    ) -> (Self, Vec<ConfigError>) {
        let mut config = Self::default();
        let mut skipped = Vec::new();
        for (k, v) in cluster.iter().chain(broker) {
            if let Err(e) = config.set(k, v) {
                skipped.push(e);
            }
        }
        (config, skipped)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let int = |min: i64| -> Result<i64, ConfigError> {
            let v = i64::from_str(value.trim()).map_err(|_| bad("expected an integer"))?;
            if v < min {
                return Err(bad(&format!("must be at least {min}")));
            }
            Ok(v)
        };
        match key {
            "auto.create.topics.enable" => {
                self.auto_create_topics_enable = Some(match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("expected true or false")),
                })
            }
            "log.retention.check.interval.ms" => {
                self.log_retention_check_interval_ms = Some(int(1)? as u64)
            }
            "num.partitions" => {
                self.num_partitions =
                    Some(int(1)?.try_into().map_err(|_| bad("must fit in 32 bits"))?)
            }
            "leader.replication.throttled.rate" => {
                self.leader_replication_throttled_rate = Some(int(1)? as u64)
            }
            "follower.replication.throttled.rate" => {
                self.follower_replication_throttled_rate = Some(int(1)? as u64)
            }
            _ => return Err(not_dynamic(key)),
        }
        Ok(())
    }
}

fn not_dynamic(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        known: format!(
            "{} (the broker configs that can change while running; set the others with kavka server flags, KAVKA_* variables or the config file)",
            DYNAMIC_BROKER_KEYS.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_checked_by_key() {
        // (key, value, error words or None)
        let table = [
            ("num.partitions", "3", None),
            ("num.partitions", "0", Some("must be at least 1")),
            ("num.partitions", "9999999999", Some("32 bits")),
            ("auto.create.topics.enable", "false", None),
            ("auto.create.topics.enable", "no", Some("true or false")),
            ("log.retention.check.interval.ms", "500", None),
            ("leader.replication.throttled.rate", "1048576", None),
            (
                "follower.replication.throttled.rate",
                "0",
                Some("must be at least 1"),
            ),
            (
                "leader.replication.throttled.rate",
                "fast",
                Some("expected an integer"),
            ),
            (
                "log.retention.check.interval.ms",
                "soon",
                Some("an integer"),
            ),
            ("broker.rack", "a", Some("can change while running")),
            ("log.flush", "fsync", Some("kavka server flags")),
        ];
        for (k, v, want) in table {
            match (DynamicBrokerConfig::check(k, v), want) {
                (Ok(()), None) => {}
                (Err(e), Some(words)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(k) && msg.contains(words), "{k}={v}: {msg}");
                }
                (got, want) => panic!("{k}={v}: got {got:?}, wanted {want:?}"),
            }
        }
        assert!(DynamicBrokerConfig::check_key("num.partitions").is_ok());
        assert!(DynamicBrokerConfig::check_key("node.id").is_err());
    }

    #[test]
    fn a_brokers_value_wins_over_the_clusters() {
        let (c, skipped) = DynamicBrokerConfig::layered(
            &map(&[
                ("num.partitions", "3"),
                ("auto.create.topics.enable", "false"),
            ]),
            &map(&[
                ("num.partitions", "5"),
                ("log.retention.check.interval.ms", "x"),
            ]),
        );
        assert_eq!(
            c,
            DynamicBrokerConfig {
                auto_create_topics_enable: Some(false),
                log_retention_check_interval_ms: None,
                num_partitions: Some(5),
                ..DynamicBrokerConfig::default()
            }
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
    }
}
