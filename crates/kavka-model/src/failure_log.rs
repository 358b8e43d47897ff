//! When to log a failure that repeats (a dead peer, an unreachable controller): once when
//! it starts, then at most every `every` with how many attempts failed, and once when it
//! recovers; never each attempt, twice a second, with the whole error chain.
//!
//! Pure: the caller passes the clock's `now` and logs what [`FailureLog`] says. No I/O.
//!
//! ```text
//!   healthy --failed--> failing (Report::Started)
//!   failing --failed--> failing (Report::StillFailing every `every`, else Quiet)
//!   failing --succeeded--> healthy (Report::Recovered)
//!   healthy --succeeded--> healthy (Quiet)
//! ```

use std::time::{Duration, Instant};

/// How often a failure that goes on is reported again, by default.
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);

/// What to log now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing.
    Quiet,
    /// The first failure after success (or ever): log it with its error.
    Started,
    /// Still failing: `attempts` in a row since it started, for `for_` so far.
    StillFailing { attempts: u64, for_: Duration },
    /// The first success after `attempts` failures over `after`.
    Recovered { attempts: u64, after: Duration },
}

/// One repeating failure's state.
#[derive(Clone, Debug)]
pub struct FailureLog {
    every: Duration,
    /// Since when it fails, and when it was last reported; None while healthy.
    failing: Option<(Instant, Instant)>,
    attempts: u64,
}

impl Default for FailureLog {
    fn default() -> Self {
        Self::new(FAILURE_LOG_EVERY)
    }
}

impl FailureLog {
    pub fn new(every: Duration) -> Self {
        FailureLog {
            every,
            failing: None,
            attempts: 0,
        }
    }

    /// An attempt failed at `now`.
    pub fn failed(&mut self, now: Instant) -> Report {
        self.attempts += 1;
        match &mut self.failing {
            None => {
                self.failing = Some((now, now));
                Report::Started
            }
            Some((since, reported)) => {
                if now.saturating_duration_since(*reported) >= self.every {
                    *reported = now;
                    Report::StillFailing {
                        attempts: self.attempts,
                        for_: now.saturating_duration_since(*since),
                    }
                } else {
                    Report::Quiet
                }
            }
        }
    }

    /// An attempt succeeded at `now`.
    pub fn succeeded(&mut self, now: Instant) -> Report {
        let attempts = std::mem::take(&mut self.attempts);
        match self.failing.take() {
            Some((since, _)) => Report::Recovered {
                attempts,
                after: now.saturating_duration_since(since),
            },
            None => Report::Quiet,
        }
    }

    /// Whether the last attempt failed.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_reported_when_it_starts_then_every_period_then_when_it_ends() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_millis(n);
        let mut log = FailureLog::new(Duration::from_secs(30));
        // (at ms, ok?) -> report
        let table = [
            (0, true, Report::Quiet),
            (500, false, Report::Started),
            (1_000, false, Report::Quiet),
            (29_000, false, Report::Quiet),
            (
                30_500,
                false,
                Report::StillFailing {
                    attempts: 4,
                    for_: Duration::from_secs(30),
                },
            ),
            (31_000, false, Report::Quiet),
            (60_499, false, Report::Quiet),
            (
                60_500,
                false,
                Report::StillFailing {
                    attempts: 7,
                    for_: Duration::from_secs(60),
                },
            ),
            (
                61_000,
                true,
                Report::Recovered {
                    attempts: 7,
                    after: Duration::from_millis(60_500),
                },
            ),
            (61_500, true, Report::Quiet),
            (62_000, false, Report::Started),
            (
                62_100,
                true,
                Report::Recovered {
                    attempts: 1,
                    after: Duration::from_millis(100),
                },
            ),
        ];
        for (at, ok, want) in table {
            let got = if ok {
                log.succeeded(s(at))
            } else {
                log.failed(s(at))
            };
            assert_eq!(got, want, "at {at} ms, ok {ok}");
            assert_eq!(log.is_failing(), !ok, "at {at} ms");
        }
    }

    #[test]
    fn twice_a_second_for_ten_minutes_is_twenty_lines() {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        let lines = (0..1200u64)
            .map(|i| log.failed(t0 + Duration::from_millis(500 * i)))
            .filter(|r| *r != Report::Quiet)
            .count();
        // The start, then one every 30 s for 600 s.
        assert_eq!(lines, 1 + 19);
    }
}
