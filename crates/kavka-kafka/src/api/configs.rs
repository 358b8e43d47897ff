//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (SET, DELETE, and APPEND /
//! SUBTRACT for list-valued configs) for topics (dynamic, kept in the metadata log) and
//! brokers (static: described, never altered).
//!
//! Invariant: every resource of a request gets exactly one result; an alteration is
//! answered only once this broker's image shows it.

use super::str_bytes;
use super::{Ctx, error_parts};
use crate::{Broker, LogLevels};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    incremental_alter_configs_request,
};
use kavka_metadata::ConfigResource;
use kavka_model::acl::{Operation, Resource};
use kavka_model::admin::{AlterConfigs, ConfigTarget};
use kavka_model::{BrokerId, ConfigSource, DYNAMIC_BROKER_KEYS, ErrorCode, KafkaError, TopicName};
use std::collections::HashMap;

/// Kafka's ConfigResource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Kafka's list-typed topic configs that Kavka has: the only ones APPEND and SUBTRACT
/// apply to.
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

/// APPEND or SUBTRACT of `value`'s comma-separated items to or from `current` (the value
/// in effect, an override or the default), as Kafka's IncrementalAlterConfigs: APPEND
/// adds the items not there yet, SUBTRACT removes them (each must be there).
fn list_op(op: i8, name: &str, current: &str, value: &str) -> Result<String, KafkaError> {
    let verb = if op == APPEND { "APPEND" } else { "SUBTRACT" };
    if !LIST_CONFIGS.contains(&name) {
        return Err(KafkaError::new(
            ErrorCode::InvalidConfig,
            format!("{verb} is not allowed for config {name}: it is not a list"),
        ));
    }
    let items = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect()
    };
    let mut list = items(current);
    for item in items(value) {
        match (op, list.iter().position(|i| *i == item)) {
            (APPEND, None) => list.push(item),
            (APPEND, Some(_)) => {}
            (_, Some(at)) => {
                list.remove(at);
            }
            (_, None) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    format!("cannot SUBTRACT '{item}' from {name}: its value is '{current}'"),
                ));
            }
        }
    }
    Ok(list.join(","))
}

/// The value of topic config `name` in effect (its override, or the default).
fn value_in_effect(broker: &Broker, topic: &str, name: &str) -> String {
    let overrides = TopicName::new(topic.to_string())
        .map(|t| broker.api.image().configs(&ConfigResource::Topic(t)))
        .unwrap_or_default();
    let defaults = broker.api.broker_config().topic_defaults();
    kavka_model::TopicConfig::from_stored_over(&defaults, &overrides)
        .0
        .entries(&defaults, &overrides)
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.value)
        .unwrap_or_default()
}

fn unknown_type(t: i8) -> KafkaError {
    KafkaError::new(
        ErrorCode::InvalidRequest,
        format!(
            "config resource type {t} is not supported here: use TOPIC (2), BROKER (4) or (to describe and incrementally alter) BROKER_LOGGER (8)"
        ),
    )
}

/// Kafka's logger levels (log4j's), as BROKER_LOGGER values.
const LOG_LEVELS: &[&str] = &[
    "ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF",
];

/// This node's loggers, if `name` names this broker (a BROKER_LOGGER resource is one
/// broker's, as in Kafka).
fn loggers<'a>(broker: &'a Broker, name: &str) -> Result<&'a dyn LogLevels, KafkaError> {
    let me = broker.api.broker_config().node_id.0.to_string();
    if name != me {
        return Err(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("this is broker {me}: ask broker '{name}' for its loggers"),
        ));
    }
    broker.config.log_levels.as_deref().ok_or_else(|| {
        KafkaError::new(
            ErrorCode::InvalidRequest,
            "this node does not serve its loggers",
        )
    })
}

/// IncrementalAlterConfigs on BROKER_LOGGER: SET a logger's level or DELETE it, all
/// checked before any changes (not stored: a restart goes back to KAVKA_LOG, as Kafka).
fn alter_loggers(
    broker: &Broker,
    r: &incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), KafkaError> {
    let levels = loggers(broker, r.resource_name.as_str())?;
    let mut changes = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let name = c.name.to_string();
        if !crate::valid_logger_name(&name) {
            return Err(KafkaError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "logger '{name}' is not a tracing target (e.g. kavka_broker::replica_manager) or root"
                ),
            ));
        }
        match (c.config_operation, &c.value) {
            (SET, Some(v)) if LOG_LEVELS.contains(&v.to_ascii_uppercase().as_str()) => {
                changes.push((name, Some(v.to_ascii_uppercase())))
            }
            (SET, v) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    format!(
                        "level {v:?} for logger {name} is not one of {}",
                        LOG_LEVELS.join(", ")
                    ),
                ));
            }
            (DELETE, _) if name == "root" => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    "the root logger's level can be set, not removed",
                ));
            }
            (DELETE, _) => changes.push((name, None)),
            (op, _) => {
                return Err(KafkaError::new(
                    ErrorCode::InvalidConfig,
                    format!("operation {op} on logger {name}: loggers take SET (0) and DELETE (1)"),
                ));
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    for (name, level) in changes {
        levels
            .set(&name, level.as_deref())
            .map_err(|e| KafkaError::new(ErrorCode::InvalidConfig, e))?;
    }
    Ok(())
}

/// This broker's own settings, by Kafka name.
fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = broker.api.broker_config();
    vec![
        ("node.id", c.node_id.0.to_string()),
        ("broker.rack", c.rack.clone().unwrap_or_default()),
        ("num.partitions", c.default_partitions.to_string()),
        (
            "auto.create.topics.enable",
            broker.config.auto_create_topics_enable.to_string(),
        ),
        ("log.flush", c.flush.name().to_string()),
        ("log.flush.interval.messages", c.flush.messages.to_string()),
        ("log.flush.interval.ms", c.flush.ms.to_string()),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
        ),
        // Kafka's default: unlimited (Long.MAX_VALUE); only ever set dynamically.
        ("leader.replication.throttled.rate", i64::MAX.to_string()),
        ("follower.replication.throttled.rate", i64::MAX.to_string()),
        (
            "broker.heartbeat.interval.ms",
            c.heartbeat_interval_ms.to_string(),
        ),
        (
            "replica.lag.time.max.ms",
            c.replica_lag_time_max_ms.to_string(),
        ),
        (
            "replica.high.watermark.checkpoint.interval.ms",
            c.hw_checkpoint_interval_ms.to_string(),
        ),
        (
            "replica.fetch.wait.max.ms",
            c.replica_fetch_wait_max_ms.to_string(),
        ),
        (
            "replica.fetch.max.bytes",
            c.replica_fetch_max_bytes.to_string(),
        ),
        (
            "socket.request.max.bytes",
            broker.config.socket_request_max_bytes.to_string(),
        ),
        (
            "connections.max.idle.ms",
            broker.config.connections_max_idle.as_millis().to_string(),
        ),
    ]
}

/// Whether the caller may do `operation` to the configs of a resource: a topic's are
/// the topic's; a broker's and its loggers' are the cluster's (as Kafka checks them).
fn check(
    broker: &Broker,
    ctx: &Ctx<'_>,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), KafkaError> {
    match resource_type {
        TOPIC => ctx.check(broker, operation, Resource::topic(name)),
        BROKER | BROKER_LOGGER => ctx.check(broker, operation, Resource::cluster()),
        // Refused as unknown in its place.
        _ => Ok(()),
    }
}

pub(crate) async fn describe_configs(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        if let Err(e) = check(
            broker,
            ctx,
            Operation::DescribeConfigs,
            r.resource_type,
            r.resource_name.as_str(),
        ) {
            let (code, msg) = error_parts(&e);
            results.push(
                DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(msg),
            );
            continue;
        }
        let wanted = |name: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let entry = |name: &str, value: String, source: i8, read_only: bool| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_read_only(read_only)
                .with_config_source(source)
        };
        let configs: Result<Vec<_>, KafkaError> = match r.resource_type {
            TOPIC => broker
                .api
                .describe_topic(r.resource_name.as_str())
                .await
                .map(|d| {
                    d.configs
                        .iter()
                        .filter(|c| wanted(c.name))
                        .map(|c| {
                            let source = match c.source {
                                ConfigSource::Default => DEFAULT_CONFIG,
                                ConfigSource::Broker => STATIC_BROKER_CONFIG,
                                ConfigSource::Topic => DYNAMIC_TOPIC_CONFIG,
                            };
                            entry(c.name, c.value.clone(), source, false)
                        })
                        .collect()
                }),
            BROKER => {
                let me = broker.api.broker_config().node_id;
                let image = broker.api.image();
                let cluster = image.configs(&ConfigResource::Cluster);
                if r.resource_name.is_empty() {
                    // The cluster-wide dynamic defaults, as Kafka describes resource "".
                    Ok(cluster
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, v)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(n))
                                .with_value(Some(str_bytes(v)))
                                .with_config_source(DYNAMIC_DEFAULT_BROKER_CONFIG)
                        })
                        .collect())
                } else if r.resource_name.as_str() == me.0.to_string() {
                    let own = image.configs(&ConfigResource::Broker(me));
                    Ok(broker_configs(broker)
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, v)| {
                            let dynamic = DYNAMIC_BROKER_KEYS.contains(&n);
                            match (own.get(n), cluster.get(n)) {
                                (Some(v), _) => entry(n, v.clone(), DYNAMIC_BROKER_CONFIG, false),
                                (None, Some(v)) => {
                                    entry(n, v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG, false)
                                }
                                (None, None) => entry(n, v, STATIC_BROKER_CONFIG, !dynamic),
                            }
                        })
                        .collect())
                } else {
                    Err(KafkaError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "this is broker {me}: ask broker {} for its own configs",
                            r.resource_name.as_str()
                        ),
                    ))
                }
            }
            BROKER_LOGGER => loggers(broker, r.resource_name.as_str()).map(|l| {
                l.levels()
                    .into_iter()
                    .filter(|(n, _)| wanted(n))
                    .map(|(n, v)| entry(&n, v, DYNAMIC_BROKER_LOGGER_CONFIG, false))
                    .collect()
            }),
            t => Err(unknown_type(t)),
        };
        let result = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        results.push(match configs {
            Ok(c) => result.with_configs(c),
            Err(e) => {
                let (code, msg) = error_parts(&e);
                result.with_error_code(code).with_error_message(msg)
            }
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// Whose configs an alter request changes.
enum Target {
    Topic(String),
    /// Dynamic broker configs of one broker, or (None) the cluster-wide defaults.
    Broker(Option<BrokerId>),
}

impl Target {
    /// From a request's resource type and name: a BROKER resource is named by a broker
    /// id, or "" for the cluster-wide defaults, as in Kafka.
    fn of(resource_type: i8, name: &str) -> Result<Self, KafkaError> {
        match resource_type {
            TOPIC => Ok(Target::Topic(name.to_string())),
            BROKER if name.is_empty() => Ok(Target::Broker(None)),
            BROKER => name
                .parse::<i32>()
                .ok()
                .filter(|id| *id >= 0)
                .map(|id| Target::Broker(Some(BrokerId(id))))
                .ok_or_else(|| {
                    KafkaError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "broker resource '{name}' is not a broker id (or \"\" for the cluster-wide defaults)"
                        ),
                    )
                }),
            t => Err(unknown_type(t)),
        }
    }

    /// The configs set on it now, as stored.
    fn stored(&self, broker: &Broker) -> HashMap<String, String> {
        let image = broker.api.image();
        let resource = match self {
            Target::Topic(t) => match TopicName::new(t.clone()) {
                Ok(t) => ConfigResource::Topic(t),
                Err(_) => return HashMap::new(),
            },
            Target::Broker(None) => ConfigResource::Cluster,
            Target::Broker(Some(id)) => ConfigResource::Broker(*id),
        };
        image.configs(&resource).into_iter().collect()
    }
}

/// Sets and removes a topic's overrides, or dynamic broker configs, through the
/// controller quorum.
async fn alter(
    broker: &Broker,
    target: &Target,
    set: HashMap<String, String>,
    delete: Vec<String>,
    validate_only: bool,
) -> Result<(), KafkaError> {
    let target = match target {
        Target::Topic(t) => ConfigTarget::Topic(t.clone()),
        Target::Broker(Some(id)) => ConfigTarget::Broker(*id),
        Target::Broker(None) => ConfigTarget::Cluster,
    };
    broker
        .admin
        .alter_configs(&AlterConfigs {
            target,
            set: set.into_iter().collect(),
            delete,
            validate_only,
        })
        .await
        .map(|_| ())
}

pub(crate) async fn alter_configs(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.as_str();
        let target = check(broker, ctx, Operation::AlterConfigs, r.resource_type, name)
            .and_then(|()| Target::of(r.resource_type, name));
        let outcome = match target {
            Err(e) => Err(e),
            Ok(target) => {
                // AlterConfigs replaces the whole set: configs not given are removed.
                let set: HashMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                    .collect();
                let delete = target
                    .stored(broker)
                    .into_keys()
                    .filter(|k| !set.contains_key(k))
                    .collect();
                alter(broker, &target, set, delete, req.validate_only).await
            }
        };
        let resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => resp,
            Err(e) => {
                let (code, msg) = error_parts(&e);
                resp.with_error_code(code).with_error_message(msg)
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn incremental_alter_configs(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let allowed = check(
            broker,
            ctx,
            Operation::AlterConfigs,
            r.resource_type,
            r.resource_name.as_str(),
        );
        let outcome = if let Err(e) = allowed {
            Err(e)
        } else if r.resource_type == BROKER_LOGGER {
            alter_loggers(broker, &r, req.validate_only)
        } else {
            match Target::of(r.resource_type, r.resource_name.as_str()) {
                Err(e) => Err(e),
                Ok(target) => {
                    let mut set = HashMap::new();
                    let mut delete = Vec::new();
                    let mut refused = None;
                    for c in &r.configs {
                        match (c.config_operation, &c.value) {
                            (SET, Some(v)) => {
                                set.insert(c.name.to_string(), v.to_string());
                            }
                            (DELETE, _) => delete.push(c.name.to_string()),
                            (APPEND | SUBTRACT, Some(_)) if matches!(target, Target::Broker(_)) => {
                                refused = Some(KafkaError::new(
                                    ErrorCode::InvalidConfig,
                                    format!(
                                        "APPEND and SUBTRACT are for list-valued topic configs; broker config {} is not one",
                                        c.name.as_str()
                                    ),
                                ))
                            }
                            (APPEND | SUBTRACT, Some(v)) => {
                                let name = c.name.to_string();
                                // A second operation on the key in one request builds on the first.
                                let current = set.get(&name).cloned().unwrap_or_else(|| {
                                    value_in_effect(broker, r.resource_name.as_str(), &name)
                                });
                                match list_op(c.config_operation, &name, &current, v) {
                                    Ok(next) => {
                                        set.insert(name, next);
                                    }
                                    Err(e) => refused = Some(e),
                                }
                            }
                            (SET | APPEND | SUBTRACT, None) => {
                                refused = Some(KafkaError::new(
                                    ErrorCode::InvalidConfig,
                                    format!(
                                        "operation {} on {} needs a value",
                                        c.config_operation,
                                        c.name.as_str()
                                    ),
                                ))
                            }
                            (op, _) => {
                                refused = Some(KafkaError::new(
                                    ErrorCode::InvalidRequest,
                                    format!(
                                        "operation {op} on {} is not one of SET (0), DELETE (1), APPEND (2), SUBTRACT (3)",
                                        c.name.as_str()
                                    ),
                                ))
                            }
                        }
                    }
                    match refused {
                        Some(e) => Err(e),
                        None => alter(broker, &target, set, delete, req.validate_only).await,
                    }
                }
            }
        };
        let resp = IncrementalResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => resp,
            Err(e) => {
                let (code, msg) = error_parts(&e);
                resp.with_error_code(code).with_error_message(msg)
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_subtract_work_on_lists_only() {
        // (op, config, current, value) -> result or the error's words
        type Case<'a> = (i8, &'a str, &'a str, &'a str, Result<&'a str, &'a str>);
        let cases: &[Case] = &[
            (
                APPEND,
                "cleanup.policy",
                "delete",
                "compact",
                Ok("delete,compact"),
            ),
            (APPEND, "cleanup.policy", "delete", "delete", Ok("delete")),
            (APPEND, "cleanup.policy", "", "compact", Ok("compact")),
            (
                SUBTRACT,
                "cleanup.policy",
                "compact,delete",
                "delete",
                Ok("compact"),
            ),
            (SUBTRACT, "cleanup.policy", "delete", "delete", Ok("")),
            (
                SUBTRACT,
                "cleanup.policy",
                "delete",
                "compact",
                Err("cannot SUBTRACT 'compact'"),
            ),
            (
                APPEND,
                "retention.ms",
                "1000",
                "2000",
                Err("APPEND is not allowed"),
            ),
            (
                SUBTRACT,
                "retention.ms",
                "1000",
                "1000",
                Err("SUBTRACT is not allowed"),
            ),
        ];
        for &(op, name, current, value, want) in cases {
            let got = list_op(op, name, current, value);
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v, w, "{op} {name} {current} {value}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.code, ErrorCode::InvalidConfig);
                    assert!(e.message.contains(words), "{e}");
                }
                (got, want) => panic!("{op} {name} {current} {value}: {got:?}, want {want:?}"),
            }
        }
    }
}
