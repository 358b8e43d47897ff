//! Pure ISR and high-watermark decisions of a partition leader (DESIGN §5.1, Kafka's
//! `Partition.maybeShrinkIsr` / `maybeExpandIsr` / `maybeIncrementLeaderHW`): functions
//! of (partition state, follower states, now) that return decisions. `Partition` keeps
//! the state under its locks and applies what they decide; the caller reads the clock
//! once, at the edge.
//!
//! Rules:
//! - high watermark = min log end offset over the ISR (the leader's own included),
//!   decided only while the ISR has at least `min.insync.replicas` members (KIP-966: below
//!   it the mark stands still, so a replica that leaves a too-small ISR had every
//!   committed record and stays an eligible leader replica), only once every ISR follower
//!   fetched in the current leader epoch, and it never moves back;
//! - a follower is caught up when it fetches at the leader's log end, or past the log end
//!   the leader had at its previous fetch (Kafka's `Replica.updateFetchState`);
//! - shrink: an ISR follower not caught up within `replica.lag.time.max.ms` leaves; the
//!   leader never removes itself;
//! - expand: an eligible (unfenced) replica outside the ISR joins once it fetched in the
//!   current leader epoch, its log end ≥ the high watermark, and its last fetch is at most
//!   `replica.isr.join.fetch.max.ms` old (capped by the lag limit): a replica that fetched
//!   once and stopped does not join;
//! - one change in flight: no proposal while one is pending, until
//!   `alter.partition.timeout.ms` passed without the metadata showing it.
//!
//! Must not depend on: locks, the clock, I/O, tokio, the protocol crates.

use kavka_model::{BrokerId, Offset};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Kafka's `replica.lag.time.max.ms` is 30000; Kavka keeps 10000 (a lost follower
/// leaves the ISR sooner, so acks=all stalls shorter).
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 10_000;
/// How recent a follower's last fetch must be for it to join the ISR. Kafka has no such
/// limit (it adds a caught-up follower and lets the lag check drop it again).
pub const REPLICA_ISR_JOIN_FETCH_MAX_MS_DEFAULT: u64 = 2_000;
/// How long an AlterPartition proposal stays pending before the leader may propose
/// again (the part Kafka's `controller.socket.timeout.ms`, 30000, plays for its
/// AlterPartitionManager).
pub const ALTER_PARTITION_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// The timing of ISR decisions, from the broker's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IsrTiming {
    /// `replica.lag.time.max.ms`.
    pub lag_time_max: Duration,
    /// `replica.isr.join.fetch.max.ms`.
    pub join_fetch_max: Duration,
    /// `alter.partition.timeout.ms`.
    pub alter_partition_timeout: Duration,
}

impl IsrTiming {
    pub(crate) fn from_config(c: &crate::BrokerConfig) -> Self {
        Self {
            lag_time_max: Duration::from_millis(c.replica_lag_time_max_ms),
            join_fetch_max: Duration::from_millis(c.replica_isr_join_fetch_max_ms),
            alter_partition_timeout: Duration::from_millis(c.alter_partition_timeout_ms),
        }
    }
}

/// A follower's progress as the leader sees it in the current leader epoch (Kafka's
/// `Replica` state); dropped and started again on every new epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FollowerState {
    /// Its log end, as its last fetch in this epoch said; `None` until it fetched.
    pub log_end: Option<Offset>,
    pub last_fetch: Instant,
    /// The leader's log end when that fetch arrived.
    pub last_fetch_leader_log_end: Option<Offset>,
    pub last_caught_up: Instant,
}

impl FollowerState {
    /// A follower that has not fetched yet: it gets a full lag window to show up.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            log_end: None,
            last_fetch: now,
            last_fetch_leader_log_end: None,
            last_caught_up: now,
        }
    }

    /// Records a fetch at `fetch_offset` (the follower's log end) that arrived when the
    /// leader's log ended at `leader_log_end`.
    pub(crate) fn record_fetch(
        &mut self,
        fetch_offset: Offset,
        leader_log_end: Offset,
        now: Instant,
    ) {
        if fetch_offset >= leader_log_end {
            self.last_caught_up = now;
        } else if self
            .last_fetch_leader_log_end
            .is_none_or(|previous| fetch_offset >= previous)
        {
            // It has everything the leader had at its previous fetch.
            self.last_caught_up = self.last_caught_up.max(self.last_fetch);
        }
        self.log_end = Some(fetch_offset);
        self.last_fetch = now;
        self.last_fetch_leader_log_end = Some(leader_log_end);
    }

    /// Whether a fetch at `fetch_offset` asks only for records appended since this
    /// follower's previous fetch (it has all the leader had then): a read of the log's
    /// freshest bytes, which the page cache still holds.
    pub(crate) fn reads_fresh(&self, fetch_offset: Offset) -> bool {
        self.last_fetch_leader_log_end
            .is_some_and(|previous| fetch_offset >= previous)
    }
}

/// What the leader knows of its partition, for one decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaderView<'a> {
    pub me: BrokerId,
    pub isr: &'a [BrokerId],
    pub min_isr: usize,
    pub high_watermark: Offset,
    pub followers: &'a HashMap<BrokerId, FollowerState>,
}

/// The new high watermark given the leader's `log_end`, when it advances (`None`: it
/// stays where it is).
pub(crate) fn high_watermark(v: &LeaderView<'_>, log_end: Offset) -> Option<Offset> {
    if v.isr.len() < v.min_isr {
        return None;
    }
    let mut hw = log_end;
    for b in v.isr.iter().filter(|&&b| b != v.me) {
        hw = hw.min(v.followers.get(b)?.log_end?);
    }
    (hw > v.high_watermark).then_some(hw)
}

/// An ISR change to propose to the controller, as the whole new ISR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IsrDecision {
    None,
    Shrink(Vec<BrokerId>),
    Expand(Vec<BrokerId>),
}

/// The ISR change to propose now, if any: a shrink first, else an expansion.
/// `pending_since`: when the proposal still in flight was sent; `eligible`: whether a
/// replica may join (its broker is registered and unfenced).
pub(crate) fn isr_decision(
    v: &LeaderView<'_>,
    pending_since: Option<Instant>,
    now: Instant,
    timing: &IsrTiming,
    eligible: &dyn Fn(BrokerId) -> bool,
) -> IsrDecision {
    if pending_since
        .is_some_and(|at| now.saturating_duration_since(at) < timing.alter_partition_timeout)
    {
        return IsrDecision::None;
    }
    let caught_up = |b: &BrokerId| {
        *b == v.me
            || v.followers.get(b).is_some_and(|f| {
                now.saturating_duration_since(f.last_caught_up) <= timing.lag_time_max
            })
    };
    let kept: Vec<BrokerId> = v.isr.iter().copied().filter(caught_up).collect();
    if kept.len() < v.isr.len() {
        return IsrDecision::Shrink(kept);
    }
    let join_fetch_max = timing.join_fetch_max.min(timing.lag_time_max);
    let mut joining: Vec<BrokerId> = v
        .followers
        .iter()
        .filter(|(b, f)| {
            !v.isr.contains(b)
                && **b != v.me
                && f.log_end.is_some_and(|leo| leo >= v.high_watermark)
                && now.saturating_duration_since(f.last_fetch) <= join_fetch_max
                && eligible(**b)
        })
        .map(|(&b, _)| b)
        .collect();
    if joining.is_empty() {
        return IsrDecision::None;
    }
    joining.sort();
    let mut isr = v.isr.to_vec();
    isr.extend(joining);
    IsrDecision::Expand(isr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: BrokerId = BrokerId(1);
    const TIMING: IsrTiming = IsrTiming {
        lag_time_max: Duration::from_secs(10),
        join_fetch_max: Duration::from_secs(2),
        alter_partition_timeout: Duration::from_secs(5),
    };

    fn secs(base: Instant, s: u64) -> Instant {
        base + Duration::from_secs(s)
    }

    /// A follower that fetched at `leo` `fetched_s` seconds after `base` and was last
    /// caught up at `caught_up_s`.
    fn follower(
        base: Instant,
        leo: Option<i64>,
        fetched_s: u64,
        caught_up_s: u64,
    ) -> FollowerState {
        FollowerState {
            log_end: leo.map(Offset),
            last_fetch: secs(base, fetched_s),
            last_fetch_leader_log_end: leo.map(Offset),
            last_caught_up: secs(base, caught_up_s),
        }
    }

    #[test]
    fn high_watermark_is_min_log_end_over_the_isr_and_never_moves_back() {
        let base = Instant::now();
        // (isr, min_isr, leader log end, current hw, followers (id, leo)) -> new hw
        type Case = (
            &'static [i32],
            usize,
            i64,
            i64,
            &'static [(i32, Option<i64>)],
            Option<i64>,
        );
        let cases: &[Case] = &[
            // Min over the ISR, leader included.
            (&[1, 2, 3], 1, 10, 0, &[(2, Some(7)), (3, Some(9))], Some(7)),
            (&[1, 2, 3], 1, 5, 0, &[(2, Some(7)), (3, Some(9))], Some(5)),
            // Followers outside the ISR do not hold it back.
            (&[1, 2], 1, 10, 0, &[(2, Some(8)), (3, Some(1))], Some(8)),
            // Never back: a lower minimum leaves the mark where it is.
            (&[1, 2], 1, 10, 8, &[(2, Some(6))], None),
            (&[1, 2], 1, 10, 8, &[(2, Some(8))], None),
            // An ISR follower that has not fetched in this epoch holds it.
            (&[1, 2, 3], 1, 10, 0, &[(2, Some(9)), (3, None)], None),
            (&[1, 2, 3], 1, 10, 0, &[(2, Some(9))], None),
            // KIP-966: below min.insync.replicas it stands still.
            (&[1], 2, 10, 3, &[(2, Some(10))], None),
            (&[1, 2], 2, 10, 3, &[(2, Some(10))], Some(10)),
            // Alone in the ISR (RF 1): the leader's own log end.
            (&[1], 1, 4, 0, &[], Some(4)),
        ];
        for &(isr, min_isr, log_end, hw, fs, want) in cases {
            let isr: Vec<BrokerId> = isr.iter().map(|&b| BrokerId(b)).collect();
            let followers = fs
                .iter()
                .map(|&(b, leo)| (BrokerId(b), follower(base, leo, 0, 0)))
                .collect();
            let v = LeaderView {
                me: ME,
                isr: &isr,
                min_isr,
                high_watermark: Offset(hw),
                followers: &followers,
            };
            assert_eq!(
                high_watermark(&v, Offset(log_end)),
                want.map(Offset),
                "isr {isr:?} min {min_isr} leo {log_end} hw {hw} followers {fs:?}"
            );
        }
    }

    #[test]
    fn a_read_is_fresh_only_past_the_previous_fetchs_log_end() {
        let base = Instant::now();
        let first = FollowerState::new(base);
        let mut seen = FollowerState::new(base);
        seen.record_fetch(Offset(5), Offset(8), base);
        // (follower, fetch offset) -> fresh
        let cases = [
            (&first, 0, false),
            (&first, 100, false),
            (&seen, 7, false),
            (&seen, 8, true),
            (&seen, 20, true),
        ];
        for (i, (f, offset, fresh)) in cases.into_iter().enumerate() {
            assert_eq!(f.reads_fresh(Offset(offset)), fresh, "case {i}");
        }
    }

    #[test]
    fn record_fetch_tracks_when_the_follower_last_caught_up() {
        let base = Instant::now();
        // (previous fetch: (leader leo, at s) or none, this fetch offset, leader leo now,
        //  at s) -> last caught up (s)
        type Case = (Option<(i64, u64)>, i64, i64, u64, u64);
        let cases: &[Case] = &[
            // At the leader's log end: caught up now.
            (None, 10, 10, 3, 3),
            (Some((5, 1)), 10, 10, 3, 3),
            // Behind now, but has what the leader had at its previous fetch: caught up
            // as of that previous fetch.
            (Some((8, 1)), 8, 12, 3, 1),
            // Behind even the previous log end: no progress counted.
            (Some((9, 1)), 8, 12, 3, 0),
            // First fetch of the epoch, behind: caught up as of when it was created.
            (None, 3, 12, 3, 0),
        ];
        for &(previous, offset, leader_leo, at, want) in cases {
            let mut f = FollowerState::new(base);
            if let Some((prev_leo, prev_at)) = previous {
                f.record_fetch(Offset(prev_leo), Offset(prev_leo), secs(base, prev_at));
                // The earlier fetch was at the leader's end then; pretend it never
                // caught up so only this fetch's rule shows.
                f.last_caught_up = base;
            }
            f.record_fetch(Offset(offset), Offset(leader_leo), secs(base, at));
            assert_eq!(f.log_end, Some(Offset(offset)));
            assert_eq!(f.last_fetch, secs(base, at));
            assert_eq!(
                f.last_caught_up,
                secs(base, want),
                "previous {previous:?} offset {offset} leader {leader_leo} at {at}"
            );
        }
    }

    #[test]
    fn isr_decisions() {
        let base = Instant::now();
        // (isr, hw, followers (id, leo, fetched s, caught up s), pending since s, now s,
        //  fenced) -> decision
        type Case = (
            &'static [i32],
            i64,
            &'static [(i32, Option<i64>, u64, u64)],
            Option<u64>,
            u64,
            &'static [i32],
            IsrDecision,
        );
        let b = |ids: &[i32]| ids.iter().map(|&i| BrokerId(i)).collect::<Vec<_>>();
        let cases: Vec<Case> = vec![
            // All caught up: nothing to do.
            (
                &[1, 2, 3],
                5,
                &[(2, Some(5), 20, 20), (3, Some(5), 20, 20)],
                None,
                20,
                &[],
                IsrDecision::None,
            ),
            // Not caught up for exactly the lag limit: stays.
            (
                &[1, 2, 3],
                5,
                &[(2, Some(5), 20, 20), (3, Some(3), 20, 10)],
                None,
                20,
                &[],
                IsrDecision::None,
            ),
            // Past the lag limit: dropped, even though it still fetches.
            (
                &[1, 2, 3],
                5,
                &[(2, Some(5), 21, 21), (3, Some(3), 21, 10)],
                None,
                21,
                &[],
                IsrDecision::Shrink(b(&[1, 2])),
            ),
            // Silent followers are dropped; the leader never removes itself.
            (
                &[1, 2, 3],
                5,
                &[(2, None, 0, 0), (3, None, 0, 0)],
                None,
                11,
                &[],
                IsrDecision::Shrink(b(&[1])),
            ),
            // An ISR member the leader has no state for is dropped.
            (&[1, 2], 5, &[], None, 1, &[], IsrDecision::Shrink(b(&[1]))),
            // Join: log end ≥ hw and fetching now in this epoch.
            (
                &[1, 2],
                5,
                &[(2, Some(5), 20, 20), (3, Some(5), 20, 20)],
                None,
                20,
                &[],
                IsrDecision::Expand(b(&[1, 2, 3])),
            ),
            (
                &[1],
                5,
                &[(3, Some(7), 20, 20), (2, Some(6), 20, 20)],
                None,
                20,
                &[],
                IsrDecision::Expand(b(&[1, 2, 3])),
            ),
            // Behind the high watermark: not yet.
            (
                &[1, 2],
                5,
                &[(2, Some(5), 20, 20), (3, Some(4), 20, 20)],
                None,
                20,
                &[],
                IsrDecision::None,
            ),
            // Not fetched in this epoch: not yet.
            (
                &[1, 2],
                0,
                &[(2, Some(5), 20, 20), (3, None, 20, 20)],
                None,
                20,
                &[],
                IsrDecision::None,
            ),
            // Last fetch older than the join limit (2 s): not yet.
            (
                &[1, 2],
                5,
                &[(2, Some(5), 20, 20), (3, Some(5), 17, 17)],
                None,
                20,
                &[],
                IsrDecision::None,
            ),
            (
                &[1, 2],
                5,
                &[(2, Some(5), 20, 20), (3, Some(5), 18, 18)],
                None,
                20,
                &[],
                IsrDecision::Expand(b(&[1, 2, 3])),
            ),
            // Fenced: never joins.
            (
                &[1, 2],
                5,
                &[(2, Some(5), 20, 20), (3, Some(5), 20, 20)],
                None,
                20,
                &[3],
                IsrDecision::None,
            ),
            // Shrink wins over an expansion due at the same time.
            (
                &[1, 2],
                5,
                &[(2, Some(1), 20, 5), (3, Some(5), 20, 20)],
                None,
                20,
                &[],
                IsrDecision::Shrink(b(&[1])),
            ),
            // A proposal in flight blocks the next until alter.partition.timeout.ms.
            (
                &[1, 2, 3],
                5,
                &[(2, None, 0, 0), (3, Some(5), 20, 20)],
                Some(16),
                20,
                &[],
                IsrDecision::None,
            ),
            (
                &[1, 2, 3],
                5,
                &[(2, None, 0, 0), (3, Some(5), 20, 20)],
                Some(15),
                20,
                &[],
                IsrDecision::Shrink(b(&[1, 3])),
            ),
        ];
        for (isr, hw, fs, pending, now, fenced, want) in cases {
            let isr = b(isr);
            let followers = fs
                .iter()
                .map(|&(id, leo, fetched, caught_up)| {
                    (BrokerId(id), follower(base, leo, fetched, caught_up))
                })
                .collect();
            let v = LeaderView {
                me: ME,
                isr: &isr,
                min_isr: 1,
                high_watermark: Offset(hw),
                followers: &followers,
            };
            let eligible = |id: BrokerId| !fenced.contains(&id.0);
            let got = isr_decision(
                &v,
                pending.map(|s| secs(base, s)),
                secs(base, now),
                &TIMING,
                &eligible,
            );
            assert_eq!(
                got, want,
                "isr {isr:?} hw {hw} followers {fs:?} pending {pending:?} now {now}"
            );
        }
    }

    #[test]
    fn the_join_limit_never_exceeds_the_lag_limit() {
        let base = Instant::now();
        let timing = IsrTiming {
            lag_time_max: Duration::from_secs(1),
            ..TIMING
        };
        let isr = [ME];
        let followers = HashMap::from([(BrokerId(2), follower(base, Some(5), 0, 0))]);
        let v = LeaderView {
            me: ME,
            isr: &isr,
            min_isr: 1,
            high_watermark: Offset(5),
            followers: &followers,
        };
        let none = |_| true;
        assert_eq!(
            isr_decision(&v, None, secs(base, 2), &timing, &none),
            IsrDecision::None,
            "a fetch 2 s old is older than the 1 s lag limit"
        );
        assert_eq!(
            isr_decision(&v, None, secs(base, 1), &timing, &none),
            IsrDecision::Expand(vec![ME, BrokerId(2)])
        );
    }
}
