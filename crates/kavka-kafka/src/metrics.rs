//! The Kafka listener's metrics: requests and their latency per API (Kafka's
//! `RequestsPerSec` and `TotalTimeMs`, keyed by the API's name as Kafka spells it:
//! `Produce`, `Fetch`), and open connections per listener (Kafka's `connection-count`).
//!
//! Invariants: one timing per request, taken around the handler in the connection loop
//! (the one place every API passes); connection counts are kept here and set as gauges
//! at scrape time ([`collect`]), so an idle listener keeps its series. Must not depend
//! on the HTTP crate: it only talks to the `metrics` facade.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Open connections by listener name, process-wide as the metrics recorder is.
static CONNECTIONS: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());

fn connections() -> std::sync::MutexGuard<'static, BTreeMap<String, i64>> {
    CONNECTIONS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts one open connection on `listener` while it lives.
pub(crate) struct OpenConnection(String);

impl OpenConnection {
    pub(crate) fn new(listener: &str) -> Self {
        *connections().entry(listener.to_string()).or_default() += 1;
        metrics::counter!("kavka_kafka_connections_accepted_total", "listener" => listener.to_string())
            .increment(1);
        OpenConnection(listener.to_string())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(n) = connections().get_mut(&self.0) {
            *n -= 1;
        }
    }
}

/// Sets the open-connection gauges (scrape time).
pub fn collect() {
    for (listener, n) in connections().iter() {
        metrics::gauge!("kavka_kafka_connections", "listener" => listener.clone()).set(*n as f64);
    }
}

/// The label of an API: Kafka's name for it (`Produce`, `ApiVersions`), made once per
/// API key for the process (a few dozen short strings), so a request allocates none.
pub(crate) fn api_label(key: kafka_protocol::messages::ApiKey) -> &'static str {
    static NAMES: std::sync::LazyLock<std::collections::HashMap<i16, &'static str>> =
        std::sync::LazyLock::new(|| {
            (0..=i16::from(u8::MAX))
                .filter_map(|k| kafka_protocol::messages::ApiKey::try_from(k).ok())
                .map(|k| (k as i16, &*Box::leak(format!("{k:?}").into_boxed_str())))
                .collect()
        });
    NAMES.get(&(key as i16)).copied().unwrap_or("Unknown")
}

/// Counts one SASL authentication on `listener` (Kafka's successful- and
/// failed-authentication-total).
pub(crate) fn authentication(listener: &str, succeeded: bool) {
    let result = if succeeded { "success" } else { "failure" };
    metrics::counter!("kavka_kafka_authentications_total", "listener" => listener.to_string(), "result" => result)
        .increment(1);
}

/// Counts a request of `api` served in the time since `started`.
pub(crate) fn request_done(api: &'static str, started: Instant) {
    metrics::histogram!("kavka_kafka_request_duration_seconds", "api" => api)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("kavka_kafka_requests_total", "api" => api).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn api_labels_are_kafkas_names() {
        assert_eq!(api_label(ApiKey::Produce), "Produce");
        assert_eq!(api_label(ApiKey::Fetch), "Fetch");
        assert_eq!(api_label(ApiKey::ApiVersions), "ApiVersions");
    }

    #[test]
    fn connections_count_while_open() {
        let count = |l: &str| connections().get(l).copied().unwrap_or(0);
        let a = OpenConnection::new("TEST_METRICS");
        let b = OpenConnection::new("TEST_METRICS");
        assert_eq!(count("TEST_METRICS"), 2);
        drop(a);
        assert_eq!(count("TEST_METRICS"), 1);
        drop(b);
        assert_eq!(count("TEST_METRICS"), 0);
    }
}
