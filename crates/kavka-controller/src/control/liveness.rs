//! Which brokers an election may hand leadership to.
//!
//! Unfenced is not enough: a broker frozen (a GC-like pause, SIGSTOP, a VM stall) stays
//! unfenced for a whole session timeout, and leadership handed to it then is an outage
//! until it is fenced — and, when it thaws, a leader acting on a stale image. So:
//!
//! - **ready** (may take over a partition whose leader is gone, or an offline one): the
//!   broker is unfenced, not in controlled shutdown, and this controller received a
//!   heartbeat from it within [`HEARTBEAT_INTERVALS_FRESH`] heartbeat intervals;
//! - **settled** (may take leadership from a working leader, as the preferred-leader
//!   rebalance does): ready, and unfenced for at least [`HEARTBEAT_INTERVALS_SETTLE`]
//!   heartbeat intervals, so a broker that just came back proves it stays.
//!
//! A replica whose broker reports it offline (its log cannot be opened) counts as neither
//! for its partition: it may not lead it nor stay in its ISR, while the broker's other
//! replicas serve on.
//!
//! A broker this controller has not heard from since it became active is not ready: a new
//! active controller elects onto brokers only once they have found it (until then a
//! partition whose leader is gone waits offline, and is elected on the next tick after).
//!
//! Pure: sessions and rules in, sets out. Knows nothing of Raft or the network.

use kavka_metadata::{MetadataImage, TopicId};
use kavka_model::{BrokerId, PartitionId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A heartbeat at most this many intervals old counts as "heartbeating now".
pub const HEARTBEAT_INTERVALS_FRESH: u32 = 4;
/// Unfenced at least this many intervals before taking leadership from a working leader.
pub const HEARTBEAT_INTERVALS_SETTLE: u32 = 4;

/// The thresholds, from `broker.heartbeat.interval.ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionRules {
    pub heartbeat_age_max: Duration,
    pub settle: Duration,
}

impl ElectionRules {
    pub fn from_heartbeat_interval(interval: Duration) -> Self {
        Self {
            heartbeat_age_max: interval * HEARTBEAT_INTERVALS_FRESH,
            settle: interval * HEARTBEAT_INTERVALS_SETTLE,
        }
    }
}

/// What the active controller knows of one broker's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// Age of the last heartbeat this controller received (`None`: none since it became
    /// the active controller).
    pub heartbeat_age: Option<Duration>,
    /// How long the broker has been unfenced (`None`: fenced, or unknown).
    pub unfenced_for: Option<Duration>,
    pub shutting_down: bool,
}

/// The brokers an election may pick, decided once per decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Electable {
    ready: BTreeSet<BrokerId>,
    settled: BTreeSet<BrokerId>,
    /// Replicas reported offline by their brokers.
    offline: BTreeSet<(BrokerId, TopicId, PartitionId)>,
}

impl Electable {
    /// Applies `rules` to the sessions of the brokers `image` shows unfenced.
    pub fn decide(
        image: &MetadataImage,
        sessions: &BTreeMap<BrokerId, SessionView>,
        rules: ElectionRules,
    ) -> Self {
        let mut out = Electable::default();
        for b in image.unfenced_brokers() {
            let Some(s) = sessions.get(&b.broker_id) else {
                continue;
            };
            let fresh = s
                .heartbeat_age
                .is_some_and(|a| a <= rules.heartbeat_age_max);
            if !fresh || s.shutting_down {
                continue;
            }
            out.ready.insert(b.broker_id);
            if s.unfenced_for.is_some_and(|u| u >= rules.settle) {
                out.settled.insert(b.broker_id);
            }
        }
        out
    }

    /// Explicit sets (tests, and callers that know better).
    pub fn new(
        ready: impl IntoIterator<Item = BrokerId>,
        settled: impl IntoIterator<Item = BrokerId>,
    ) -> Self {
        let ready: BTreeSet<BrokerId> = ready.into_iter().collect();
        let settled = settled.into_iter().filter(|b| ready.contains(b)).collect();
        Self {
            ready,
            settled,
            offline: BTreeSet::new(),
        }
    }

    /// Also counts these replicas (broker, topic, partition) as offline: their brokers
    /// cannot open their logs.
    pub fn with_offline_replicas(
        mut self,
        offline: impl IntoIterator<Item = (BrokerId, TopicId, PartitionId)>,
    ) -> Self {
        self.offline.extend(offline);
        self
    }

    /// Whether `broker`'s replica of the partition can serve (its broker has not reported
    /// it offline). Elections and ISR membership need this besides liveness.
    pub fn replica_online(&self, broker: BrokerId, topic: TopicId, partition: PartitionId) -> bool {
        !self.offline.contains(&(broker, topic, partition))
    }

    /// Also counts `broker` as ready: it is heartbeating this very moment (the heartbeat
    /// that unfences it is being decided).
    pub fn with_ready(mut self, broker: BrokerId) -> Self {
        self.ready.insert(broker);
        self
    }

    /// May take over a partition whose leader is gone (or that is offline).
    pub fn is_ready(&self, broker: BrokerId) -> bool {
        self.ready.contains(&broker)
    }

    /// May take leadership from a working leader.
    pub fn is_settled(&self, broker: BrokerId) -> bool {
        self.settled.contains(&broker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{MetadataRecord, RegisterBrokerRecord};

    fn image(fenced: &[i32]) -> MetadataImage {
        let records: Vec<MetadataRecord> = (1..=4)
            .map(|id| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: BrokerId(id),
                    incarnation_id: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    fenced: fenced.contains(&id),
                })
            })
            .collect();
        MetadataImage::empty().replay(1, &records).0
    }

    #[test]
    fn ready_and_settled() {
        let rules = ElectionRules::from_heartbeat_interval(Duration::from_millis(250));
        assert_eq!(rules.heartbeat_age_max, Duration::from_millis(1000));
        let ms = |n| Some(Duration::from_millis(n));
        let s = |age, unfenced, stopping| SessionView {
            heartbeat_age: age,
            unfenced_for: unfenced,
            shutting_down: stopping,
        };
        // (case, fenced in image, session) -> (ready, settled)
        let cases: &[(&str, bool, Option<SessionView>, bool, bool)] = &[
            (
                "heartbeating, long unfenced",
                false,
                Some(s(ms(100), ms(60_000), false)),
                true,
                true,
            ),
            (
                "heartbeat at the limit",
                false,
                Some(s(ms(1000), ms(60_000), false)),
                true,
                true,
            ),
            (
                "silent 1.7 s (frozen, not yet fenced)",
                false,
                Some(s(ms(1700), ms(60_000), false)),
                false,
                false,
            ),
            (
                "just unfenced",
                false,
                Some(s(ms(10), ms(200), false)),
                true,
                false,
            ),
            (
                "not heard since this controller took over",
                false,
                Some(s(None, ms(60_000), false)),
                false,
                false,
            ),
            (
                "in controlled shutdown",
                false,
                Some(s(ms(10), ms(60_000), true)),
                false,
                false,
            ),
            (
                "fenced in the image",
                true,
                Some(s(ms(10), ms(60_000), false)),
                false,
                false,
            ),
            ("no session at all", false, None, false, false),
        ];
        for &(name, fenced, session, ready, settled) in cases {
            let img = image(if fenced { &[1] } else { &[] });
            let sessions: BTreeMap<BrokerId, SessionView> =
                session.map(|s| (BrokerId(1), s)).into_iter().collect();
            let e = Electable::decide(&img, &sessions, rules);
            assert_eq!(e.is_ready(BrokerId(1)), ready, "{name}: ready");
            assert_eq!(e.is_settled(BrokerId(1)), settled, "{name}: settled");
        }
    }

    #[test]
    fn explicit_sets_keep_settled_within_ready() {
        let e = Electable::new([BrokerId(1)], [BrokerId(1), BrokerId(2)]);
        assert!(e.is_settled(BrokerId(1)));
        assert!(!e.is_settled(BrokerId(2)));
        assert!(e.clone().with_ready(BrokerId(3)).is_ready(BrokerId(3)));
        assert!(!e.is_ready(BrokerId(3)));
    }
}
