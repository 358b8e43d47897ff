//! Client quota enforcement (Kafka's ClientQuotaManager): per quota entity, a windowed
//! measure of what its clients produced or fetched, and the throttle time of a client
//! over its quota.
//!
//! Invariants: the decisions are `kavka_model::quota`'s (which quota applies, the rate,
//! the throttle time); this module only keeps one [`RateWindow`] per measured entity and
//! reads the clock. A client with no quota that applies is not measured at all; windows
//! idle for a whole measurement window are dropped once there are more than
//! [`WINDOWS_SWEEP_AT`], so the state is bounded by the active clients. The quotas come
//! from the metadata image the caller passes, so a change applies on the next request.
//! Replica fetches never reach here. Must not depend on any listener.

use kavka_metadata::MetadataImage;
use kavka_model::quota::rate::RateWindow;
use kavka_model::quota::{QuotaKey, resolve};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many measured entities, idle ones are swept on the next record.
pub const WINDOWS_SWEEP_AT: usize = 1_024;

/// Who a request came from, as quotas see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaClient {
    /// The principal's name (`ANONYMOUS` for an unauthenticated client).
    pub user: String,
    /// The client id the client sent ("" when none).
    pub client_id: String,
}

/// The measurements of every quota entity with recent traffic.
#[derive(Debug)]
pub struct ClientQuotaManager {
    /// The clock's origin: times are milliseconds since it.
    started: Instant,
    /// (quota type, measured user, measured client id) -> its window.
    windows: Mutex<HashMap<(QuotaKey, String, String), RateWindow>>,
}

impl Default for ClientQuotaManager {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientQuotaManager {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records `value` (bytes, or microseconds for `request_percentage`) of `key`'s kind
    /// for `client` and answers how long it must wait (zero when no quota applies or it
    /// is within it). `unrecord_if_throttled`: a throttled request does not count (Kafka
    /// answers a throttled fetch without its records).
    pub fn record(
        &self,
        image: &MetadataImage,
        key: QuotaKey,
        client: &QuotaClient,
        value: u64,
        unrecord_if_throttled: bool,
    ) -> Duration {
        let Some(applied) = resolve(
            |entity, k| image.client_quota(entity, k).map(|v| v.get()),
            &client.user,
            &client.client_id,
            key,
        ) else {
            return Duration::ZERO;
        };
        let now = self.now_ms();
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        if windows.len() > WINDOWS_SWEEP_AT {
            windows.retain(|_, w| !w.is_idle(now));
        }
        let window = windows
            .entry((key, applied.user, applied.client_id))
            .or_default();
        let quota = applied.quota * key.measured_per_unit();
        let throttle_ms = window.record_and_throttle_ms(now, value as f64, quota);
        if throttle_ms > 0 {
            if unrecord_if_throttled {
                window.unrecord(value as f64);
            }
            crate::metrics::record_throttle(key.name(), throttle_ms);
        }
        Duration::from_millis(throttle_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure

    use super::*;
    use kavka_metadata::MetadataRecord;
    use kavka_model::quota::{EntityName, QuotaEntity};

    fn image_with(entity: QuotaEntity, key: QuotaKey, value: f64) -> MetadataImage {
        let r = MetadataRecord::ClientQuota {
            entity,
            key,
            value: Some(key.value(value).unwrap()),
        };
        MetadataImage::empty().replay(0, [&r]).0
    }

    #[test]
    fn only_clients_under_a_quota_are_measured_and_throttled() {
        let key = QuotaKey::ProducerByteRate;
        let alice = QuotaEntity::new(Some(EntityName::Name("alice".into())), None).unwrap();
        let img = image_with(alice, key, 1_000.0);
        let q = ClientQuotaManager::new();
        let client = |user: &str, id: &str| QuotaClient {
            user: user.into(),
            client_id: id.into(),
        };
        // bob has no quota: never throttled, never measured.
        assert_eq!(
            q.record(&img, key, &client("bob", "a"), 1 << 30, false),
            Duration::ZERO
        );
        assert!(q.windows.lock().unwrap().is_empty());
        // alice: 100 KB against 1000 B/s over the 10 s minimum window: over it.
        let t = q.record(&img, key, &client("alice", "a"), 100_000, false);
        assert!(t > Duration::ZERO && t <= Duration::from_secs(11), "{t:?}");
        // Her other client id shares the per-user measurement: throttled too.
        assert!(q.record(&img, key, &client("alice", "b"), 1, false) > Duration::ZERO);
        // Fetch quotas are another kind: none set, not throttled.
        let fetch = QuotaKey::ConsumerByteRate;
        assert_eq!(
            q.record(&img, fetch, &client("alice", "a"), 1 << 30, true),
            Duration::ZERO
        );
    }

    #[test]
    fn request_time_counts_against_request_percentage() {
        let key = QuotaKey::RequestPercentage;
        let busy = QuotaEntity::new(None, Some(EntityName::Name("busy".into()))).unwrap();
        // 1% of one handler: 10 ms per second, 100 ms over the 10 s minimum window.
        let img = image_with(busy, key, 1.0);
        let q = ClientQuotaManager::new();
        let c = |id: &str| QuotaClient {
            user: "ANONYMOUS".into(),
            client_id: id.into(),
        };
        assert_eq!(
            q.record(&img, key, &c("busy"), 50_000, false),
            Duration::ZERO
        );
        assert!(q.record(&img, key, &c("busy"), 500_000, false) > Duration::ZERO);
        assert_eq!(
            q.record(&img, key, &c("idle"), 10_000_000, false),
            Duration::ZERO,
            "no quota for another client id"
        );
    }

    #[test]
    fn a_throttled_fetch_does_not_count() {
        let key = QuotaKey::ConsumerByteRate;
        let default_client = QuotaEntity::new(None, Some(EntityName::Default)).unwrap();
        let img = image_with(default_client, key, 1_000.0);
        let q = ClientQuotaManager::new();
        let c = QuotaClient {
            user: "ANONYMOUS".into(),
            client_id: "consumer".into(),
        };
        // 9 KB fits (900 B/s over 10 s); 50 KB more would not, and is not counted...
        assert_eq!(q.record(&img, key, &c, 9_000, true), Duration::ZERO);
        assert!(q.record(&img, key, &c, 50_000, true) > Duration::ZERO);
        // ...so 500 B more still fits.
        assert_eq!(q.record(&img, key, &c, 500, true), Duration::ZERO);
    }
}
