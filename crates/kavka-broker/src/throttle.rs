//! Replication throttles for moving replicas (Kafka's `leader.replication.throttled.rate`
//! and `follower.replication.throttled.rate`, bytes per second): a partition move must
//! not starve producers of disk and network.
//!
//! Which replicas are throttled: those a reassignment is adding (Kafka has its reassign
//! tool list them in `*.replication.throttled.replicas`; here a move throttles its new
//! replicas by itself). Replicas already in a partition's replica set are never held.
//!
//! How, as Kafka's `ReplicationQuotaManager`: the leader leaves a throttled partition's
//! records out of a replica fetch answer while its rate is over the limit (the follower's
//! progress is still recorded, so nothing stalls but the bytes); the follower leaves
//! throttled partitions out of its fetch requests while its own rate is over. One bucket
//! per side per broker, shared by every moving replica.
//!
//! Pure token bucket: callers pass the clock and the rate in effect (a dynamic config
//! may change it at any time). Must not depend on I/O or the protocol crates.

use std::sync::Mutex;
use std::time::Instant;

/// A byte budget refilled at a rate: up to one second's worth saved, and overdrawn by
/// at most the last answer (which is sent whole, as Kafka sends a batch whole).
#[derive(Debug, Default)]
pub(crate) struct ByteBucket {
    /// Bytes that may still go out; negative after an overdraft.
    tokens: f64,
    last: Option<Instant>,
}

impl ByteBucket {
    /// Whether the throttled bytes must wait now, at `rate` bytes per second.
    pub(crate) fn over(&mut self, rate: u64, now: Instant) -> bool {
        let rate = rate as f64;
        let elapsed = self
            .last
            .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.tokens = (self.tokens + rate * elapsed).min(rate);
        self.last = Some(now);
        self.tokens <= 0.0
    }

    /// `bytes` of throttled replication went out.
    pub(crate) fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

/// The two buckets of a broker.
#[derive(Debug, Default)]
pub(crate) struct Throttles {
    /// Bytes this broker, as leader, sends to moving replicas.
    pub(crate) leader: Mutex<ByteBucket>,
    /// Bytes this broker, as a moving replica, fetches.
    pub(crate) follower: Mutex<ByteBucket>,
}

/// Runs `f` on a bucket (a poisoned lock still holds a usable bucket).
pub(crate) fn with<T>(bucket: &Mutex<ByteBucket>, f: impl FnOnce(&mut ByteBucket) -> T) -> T {
    f(&mut bucket.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_holds_over_time_and_one_second_is_saved_at_most() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // (ms since start, bytes sent if not over) -> over?
        let steps: &[(u64, usize, bool)] = &[
            (0, 1_500, false),   // a full second saved (1000), overdrawn by 500
            (0, 0, true),        // over until refilled
            (500, 0, true),      // 500 refilled: back at 0, still over
            (1_000, 100, false), // 500 more: 400 left after 100
            (1_000, 900, false), // overdrawn by 500 again
            (1_000, 0, true),    // over
            (5_000, 0, false),   // refilled, capped at one second (1000)
        ];
        let mut b = ByteBucket::default();
        for (i, &(ms, bytes, want_over)) in steps.iter().enumerate() {
            let over = b.over(1_000, at(ms));
            assert_eq!(over, want_over, "step {i}");
            if !over {
                b.spend(bytes);
            }
        }
        assert!(b.tokens <= 1_000.0, "never more than one second saved");
    }

    #[test]
    fn a_lower_rate_takes_effect_at_once() {
        let t0 = Instant::now();
        let mut b = ByteBucket::default();
        assert!(!b.over(1_000_000, t0));
        b.spend(10);
        // The saved budget is capped at the new rate's second.
        assert!(!b.over(100, t0 + Duration::from_millis(1)));
        b.spend(101);
        assert!(b.over(100, t0 + Duration::from_millis(2)));
    }
}
