//! The node's log levels by tracing target, read and changed while it runs: Kafka's
//! BROKER_LOGGER resource (DescribeConfigs, IncrementalAlterConfigs) over the `KAVKA_LOG`
//! filter, through a reload handle.
//!
//! Invariant: the filter in effect is always `root` plus one `target=level` per logger
//! set, plus any directive of `KAVKA_LOG` this module cannot describe (kept as given);
//! a change that would not parse changes nothing.

use kavka_kafka::LogLevels;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The reload handle of the process's filter.
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

const ROOT: &str = "root";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Directives {
    /// Logger (a tracing target, or `root`) → tracing level (`info`, ...).
    levels: BTreeMap<String, String>,
    /// Directives kept as given (span or field filters).
    other: Vec<String>,
}

impl Directives {
    fn parse(spec: &str) -> Self {
        let mut d = Directives::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                _ if part.contains('[') => d.other.push(part.to_string()),
                Some((target, level)) => {
                    d.levels
                        .insert(target.to_string(), level.to_ascii_lowercase());
                }
                None => {
                    d.levels.insert(ROOT.to_string(), part.to_ascii_lowercase());
                }
            }
        }
        d
    }

    fn spec(&self) -> String {
        self.levels
            .iter()
            .map(|(t, l)| {
                if t == ROOT {
                    l.clone()
                } else {
                    format!("{t}={l}")
                }
            })
            .chain(self.other.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Kafka's (log4j's) level as a tracing level.
fn tracing_level(kafka: &str) -> Option<&'static str> {
    Some(match kafka.to_ascii_uppercase().as_str() {
        "ALL" | "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        "OFF" => "off",
        _ => return None,
    })
}

/// The process's loggers, over its reloadable filter.
#[derive(Debug)]
pub struct TracingLevels {
    handle: FilterHandle,
    directives: Mutex<Directives>,
}

impl TracingLevels {
    fn apply(&self, next: Directives) -> Result<(), String> {
        let spec = next.spec();
        let filter = EnvFilter::try_new(&spec).map_err(|e| format!("log filter '{spec}': {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("log filter could not be changed: {e}"))?;
        *self.directives.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }
}

impl LogLevels for TracingLevels {
    fn levels(&self) -> Vec<(String, String)> {
        self.directives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .levels
            .iter()
            .map(|(t, l)| (t.clone(), l.to_ascii_uppercase()))
            .collect()
    }

    fn set(&self, logger: &str, level: Option<&str>) -> Result<(), String> {
        if !kavka_kafka::valid_logger_name(logger) {
            return Err(format!(
                "logger '{logger}' is not a tracing target (e.g. kavka_broker::replica_manager) or root"
            ));
        }
        let mut next = self
            .directives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match level {
            Some(level) => {
                let l = tracing_level(level).ok_or_else(|| {
                    format!("level '{level}' for logger {logger} is not a log level")
                })?;
                next.levels.insert(logger.to_string(), l.to_string());
            }
            None if logger == ROOT => {
                return Err("the root logger's level can be set, not removed".into());
            }
            None => {
                next.levels.remove(logger);
            }
        }
        self.apply(next)
    }
}

static INSTALLED: OnceLock<Arc<TracingLevels>> = OnceLock::new();

/// Remembers the process's filter handle and the spec it started from.
pub fn install(handle: FilterHandle, spec: &str) {
    let _ = INSTALLED.set(Arc::new(TracingLevels {
        handle,
        directives: Mutex::new(Directives::parse(spec)),
    }));
}

/// The process's loggers, once `install`ed.
pub fn installed() -> Option<Arc<dyn LogLevels>> {
    INSTALLED.get().map(|l| Arc::clone(l) as Arc<dyn LogLevels>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        // (KAVKA_LOG, loggers, spec printed back)
        let table = [
            (
                "info,openraft=warn",
                vec![("openraft", "warn"), ("root", "info")],
                "openraft=warn,info",
            ),
            ("warn", vec![("root", "warn")], "warn"),
            (
                "DEBUG, kavka_broker::replica_manager=trace, a[span]=info",
                vec![
                    ("kavka_broker::replica_manager", "trace"),
                    ("root", "debug"),
                ],
                "kavka_broker::replica_manager=trace,debug,a[span]=info",
            ),
        ];
        for (spec, levels, back) in table {
            let d = Directives::parse(spec);
            let want: BTreeMap<String, String> = levels
                .iter()
                .map(|(t, l)| (t.to_string(), l.to_string()))
                .collect();
            assert_eq!(d.levels, want, "{spec}");
            assert_eq!(d.spec(), back, "{spec}");
            assert!(EnvFilter::try_new(d.spec()).is_ok(), "{spec}");
        }
    }

    #[test]
    fn kafka_levels_map_to_tracing_levels() {
        let table = [
            ("ALL", Some("trace")),
            ("debug", Some("debug")),
            ("FATAL", Some("error")),
            ("OFF", Some("off")),
            ("LOUD", None),
        ];
        for (kafka, want) in table {
            assert_eq!(tracing_level(kafka), want, "{kafka}");
        }
    }
}
