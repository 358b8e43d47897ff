//! The measured rate of a quota entity and the throttle time of a client over its quota,
//! as Kafka's `Rate` over a `SampledStat` and `QuotaUtils.throttleTime` compute them:
//! [`SAMPLES`] windows of [`WINDOW_MS`] (Kafka's `quota.window.num` 11 and
//! `quota.window.size.seconds` 1); the rate is the sum of the live samples over the
//! elapsed time since the oldest one began, counted as at least `SAMPLES - 1` whole
//! windows (so a first burst is not measured over a few milliseconds).
//!
//! Invariants: pure (the caller passes the time in milliseconds on a monotonic clock);
//! at most [`SAMPLES`] samples are kept; a sample older than `SAMPLES * WINDOW_MS` no
//! longer counts; the throttle time is never negative and never more than
//! [`THROTTLE_TIME_MAX_MS`].

use std::collections::VecDeque;

/// Samples in a quota's measurement (`quota.window.num`).
pub const SAMPLES: u64 = 11;
/// One sample's length in milliseconds (`quota.window.size.seconds` = 1).
pub const WINDOW_MS: u64 = 1_000;
/// The longest throttle: the whole measured window. By then every byte that made the
/// excess has aged out, so a longer wait is never needed. (Kafka caps request-time
/// throttles at one window and leaves byte-rate ones uncapped; an uncapped wait could
/// exceed the client's request timeout.)
pub const THROTTLE_TIME_MAX_MS: u64 = SAMPLES * WINDOW_MS;

/// A windowed sum of what one quota entity used (bytes, or request time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateWindow {
    /// (start of the sample in ms, total recorded in it), oldest first.
    samples: VecDeque<(u64, f64)>,
}

impl RateWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` at `now_ms`: to the current sample, or a new one once the current
    /// one is [`WINDOW_MS`] old.
    pub fn record(&mut self, now_ms: u64, value: f64) {
        self.purge(now_ms);
        match self.samples.back_mut() {
            Some((start, total)) if now_ms < start.saturating_add(WINDOW_MS) => *total += value,
            _ => {
                self.samples.push_back((now_ms, value));
                if self.samples.len() as u64 > SAMPLES {
                    self.samples.pop_front();
                }
            }
        }
    }

    /// Takes back `value` recorded in the current sample (Kafka unrecords a throttled
    /// fetch's bytes, as it answers without them).
    pub fn unrecord(&mut self, value: f64) {
        if let Some((_, total)) = self.samples.back_mut() {
            *total = (*total - value).max(0.0);
        }
    }

    /// The rate per second at `now_ms`.
    pub fn rate(&mut self, now_ms: u64) -> f64 {
        self.purge(now_ms);
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        total / (self.window_size_ms(now_ms) as f64 / 1_000.0)
    }

    /// The time the rate is measured over at `now_ms` (Kafka's `Rate.windowSize`): since
    /// the oldest sample began, at least `SAMPLES - 1` whole windows.
    pub fn window_size_ms(&self, now_ms: u64) -> u64 {
        let oldest = self.samples.front().map_or(now_ms, |(start, _)| *start);
        let elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / WINDOW_MS;
        let min_full = SAMPLES - 1;
        if full < min_full {
            elapsed + (min_full - full) * WINDOW_MS
        } else {
            elapsed
        }
    }

    /// Whether nothing recorded still counts at `now_ms` (the window can be dropped).
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.samples
            .back()
            .is_none_or(|(start, _)| now_ms.saturating_sub(*start) >= SAMPLES * WINDOW_MS)
    }

    fn purge(&mut self, now_ms: u64) {
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| now_ms.saturating_sub(*start) >= SAMPLES * WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Records `value` at `now_ms` and answers how long the client must wait (0: within
    /// its `quota` per second).
    pub fn record_and_throttle_ms(&mut self, now_ms: u64, value: f64, quota: f64) -> u64 {
        self.record(now_ms, value);
        let observed = self.rate(now_ms);
        throttle_time_ms(observed, quota, self.window_size_ms(now_ms))
    }
}

/// How long a client measured at `observed` per second over `window_ms` waits to be back
/// within `quota` (Kafka's `QuotaUtils.throttleTime`): `(observed - quota) / quota *
/// window`, rounded, 0 within the quota, at most [`THROTTLE_TIME_MAX_MS`].
pub fn throttle_time_ms(observed: f64, quota: f64, window_ms: u64) -> u64 {
    // NaN compares false either way: not over.
    let over = quota > 0.0 && observed > quota;
    if !over {
        return 0;
    }
    let ms = (observed - quota) / quota * window_ms as f64;
    if ms >= THROTTLE_TIME_MAX_MS as f64 {
        THROTTLE_TIME_MAX_MS
    } else {
        ms.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_time_table() {
        // (observed, quota, window, want)
        let table = [
            (100.0, 100.0, 10_000, 0),
            (50.0, 100.0, 10_000, 0),
            (110.0, 100.0, 10_000, 1_000),
            (150.0, 100.0, 10_000, 5_000),
            (150.0, 100.0, 11_000, 5_500),
            (1e9, 100.0, 10_000, THROTTLE_TIME_MAX_MS),
            (100.4, 100.0, 1_000, 4),
            (f64::NAN, 100.0, 10_000, 0),
            (10.0, 0.0, 10_000, 0),
        ];
        for (observed, quota, window, want) in table {
            assert_eq!(
                throttle_time_ms(observed, quota, window),
                want,
                "{observed} over {quota} in {window} ms"
            );
        }
    }

    #[test]
    fn the_window_is_at_least_samples_minus_one_windows() {
        let mut w = RateWindow::new();
        assert_eq!(w.window_size_ms(5_000), 10_000);
        w.record(5_000, 1_000.0);
        // 1000 bytes over the minimum 10 s.
        assert_eq!(w.rate(5_000), 100.0);
        assert_eq!(w.window_size_ms(5_500), 10_500);
        // 12 s later: 12 whole windows elapsed, but the sample has expired by then.
        assert_eq!(w.rate(5_000 + 12_000), 0.0);
        assert!(w.is_idle(5_000 + 11_000));
    }

    #[test]
    fn samples_roll_and_expire() {
        let mut w = RateWindow::new();
        // One sample per second for 20 s: at most SAMPLES kept, the oldest forgotten.
        for s in 0..20u64 {
            w.record(s * WINDOW_MS, 100.0);
        }
        assert_eq!(w.samples.len() as u64, SAMPLES);
        // 11 samples of 100 over 10 s (oldest began at 9 s, now 19 s).
        assert!((w.rate(19_000) - 110.0).abs() < 1e-9);
        // Two records within one window share a sample.
        let mut w = RateWindow::new();
        w.record(0, 1.0);
        w.record(999, 1.0);
        assert_eq!(w.samples.len(), 1);
        w.record(1_000, 1.0);
        assert_eq!(w.samples.len(), 2);
        w.unrecord(1.0);
        assert!((w.rate(1_000) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_burst_over_the_quota_is_throttled_and_a_trickle_is_not() {
        // quota 1000 B/s: 5000 B at once is 500 B/s over 10 s: fine.
        let mut w = RateWindow::new();
        assert_eq!(w.record_and_throttle_ms(0, 5_000.0, 1_000.0), 0);
        // Another 10000 B: 1500 B/s over 10 s: (1500-1000)/1000 * 10 s = 5 s.
        assert_eq!(w.record_and_throttle_ms(0, 10_000.0, 1_000.0), 5_000);
        // A huge one is capped.
        assert_eq!(
            w.record_and_throttle_ms(20, 1e12, 1_000.0),
            THROTTLE_TIME_MAX_MS
        );
    }
}
