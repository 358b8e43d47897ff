//! The console's live event stream: this node's `WatchCluster` view (the stream `kavka
//! cluster watch` reads) turned into the same event lines, each with the failover gap
//! this node measured, kept in a small ring and pushed to every `/api/events` page as
//! Server-Sent Events.
//!
//! The failover gap of a partition is measured here, from this node: from when its old
//! leader stopped answering (a prober asks every broker's `/health/live` every
//! [`PROBE_EVERY`], or, for a broker without an HTTP endpoint, connects to its gRPC
//! listener), or the partition lost its leader, whichever came first, to when this node
//! learned the new leader. A planned move (the old leader still
//! up, never leaderless) has no gap.
//!
//! Invariants: the ring keeps the last [`RING`] events, so a page opened after an
//! election still shows it; a page gets the ring, then every later event, each once (ids
//! rise by one); every stream sends a `tick` each [`TICK`] so a page can tell a silent
//! node from a quiet cluster. Must not depend on the gRPC services: it reads the view
//! through `kavka_broker::service::watch::run`.

use kavka_broker::cluster_view::{ClusterState, Subject};
use kavka_broker::node::BrokerNode;
use kavka_proto::v1;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc};

/// Events kept for pages that open later.
pub const RING: usize = 512;
/// How often a stream says the node is alive.
pub const TICK: Duration = Duration::from_secs(1);
/// How often each broker is probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How a broker is asked whether it is alive.
enum Probe {
    /// Its HTTP listener's `/health/live` answers: the process runs (a paused one
    /// accepts connections, the kernel does that, but does not answer).
    Http(String),
    /// Its gRPC listener accepts a connection (a broker without an HTTP endpoint).
    Connect(String),
}

impl Probe {
    async fn run(self) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        match self {
            Probe::Connect(addr) => tokio::net::TcpStream::connect(&addr).await.map(drop),
            Probe::Http(addr) => {
                let mut s = tokio::net::TcpStream::connect(&addr).await?;
                s.write_all(
                    format!(
                        "GET /health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
                let mut first = [0u8; 12];
                let n = s.read(&mut first).await?;
                if first[..n].starts_with(b"HTTP/1.1 200") {
                    Ok(())
                } else {
                    Err(std::io::Error::other("not live"))
                }
            }
        }
    }
}

/// One event, as a page shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConsoleEvent {
    pub id: u64,
    /// When this node saw it, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The node that saw it.
    pub node_id: i32,
    /// `controller`, `broker` or `partition`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<i32>,
    /// The partition's leader after the event (-1: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    /// "orders-2: leader 3 → 1, epoch 0 → 1, ISR [3,1,2] → [1,2]"
    pub text: String,
    /// The measured failover gap, for a partition that got a new leader after losing
    /// its old one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u64>,
}

/// The failover gap: from the earliest sign the partition lost its leader (the old
/// leader stopped answering, or the partition became leaderless) to `now`.
pub fn failover_gap(
    now: Instant,
    old_leader_down_since: Option<Instant>,
    leaderless_since: Option<Instant>,
) -> Option<Duration> {
    let since = match (old_leader_down_since, leaderless_since) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }?;
    Some(now.saturating_duration_since(since))
}

#[derive(Default)]
struct Inner {
    state: ClusterState,
    ring: VecDeque<ConsoleEvent>,
    next_id: u64,
    /// Brokers that stopped accepting connections, since when.
    down_since: BTreeMap<i32, Instant>,
    /// Partitions without a leader, since when.
    leaderless_since: BTreeMap<(String, i32), Instant>,
}

/// The event ring and its subscribers.
pub struct Hub {
    node_id: i32,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<ConsoleEvent>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Hub {
    pub fn new(node_id: i32) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            inner: Mutex::new(Inner::default()),
            tx: broadcast::channel(RING).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts following `broker`'s cluster view and probing the brokers it names.
    pub fn start(self: &Arc<Self>, broker: &Arc<BrokerNode>) {
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(kavka_broker::service::watch::run(
            Arc::clone(&broker.replicas),
            Arc::clone(&broker.session),
            false,
            tx,
        ));
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(view) = rx.recv().await {
                hub.apply(view, Instant::now(), now_ms());
            }
        });
        let hub = Arc::clone(self);
        let replicas = Arc::clone(&broker.replicas);
        tokio::spawn(async move { hub.probe_forever(replicas).await });
    }

    /// Applies one view: its changes become events in the ring and on the channel.
    pub fn apply(&self, view: v1::ClusterView, now: Instant, at_ms: i64) -> Vec<ConsoleEvent> {
        let mut inner = self.lock();
        let old_leaders: BTreeMap<(String, i32), i32> = inner
            .state
            .partitions
            .iter()
            .map(|(k, p)| (k.clone(), p.leader))
            .collect();
        let events = inner.state.apply(view);
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let mut ev = ConsoleEvent {
                id: 0,
                at_ms,
                node_id: self.node_id,
                kind: "controller",
                topic: None,
                partition: None,
                broker: None,
                leader: None,
                text: e.text,
                gap_ms: None,
            };
            match e.subject {
                Subject::Controller | Subject::Watcher => {}
                Subject::Broker(b) => {
                    ev.kind = "broker";
                    ev.broker = Some(b);
                }
                Subject::Partition(topic, partition) => {
                    ev.kind = "partition";
                    let key = (topic.clone(), partition);
                    let leader = inner.state.partitions.get(&key).map(|p| p.leader);
                    let old = old_leaders.get(&key).copied();
                    if leader.is_some_and(|l| l < 0) {
                        inner.leaderless_since.entry(key.clone()).or_insert(now);
                    } else if let (Some(new), Some(old)) = (leader, old)
                        && new != old
                    {
                        let leaderless = inner.leaderless_since.remove(&key);
                        let down = inner.down_since.get(&old).copied();
                        ev.gap_ms =
                            failover_gap(now, down, leaderless).map(|g| g.as_millis() as u64);
                    }
                    ev.topic = Some(topic);
                    ev.partition = Some(partition);
                    ev.leader = leader;
                }
            }
            ev.id = inner.next_id;
            inner.next_id += 1;
            if inner.ring.len() == RING {
                inner.ring.pop_front();
            }
            inner.ring.push_back(ev.clone());
            out.push(ev);
        }
        drop(inner);
        for ev in &out {
            // No subscriber is fine: the ring keeps it.
            let _ = self.tx.send(ev.clone());
        }
        out
    }

    /// Marks `broker` up or down as of `now`.
    pub fn probed(&self, broker: i32, up: bool, now: Instant) {
        let mut inner = self.lock();
        if up {
            inner.down_since.remove(&broker);
        } else {
            inner.down_since.entry(broker).or_insert(now);
        }
    }

    async fn probe_forever(self: Arc<Self>, replicas: Arc<kavka_broker::ReplicaManager>) {
        let mut every = tokio::time::interval(PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let image = replicas.image();
            let mut probes = tokio::task::JoinSet::new();
            for b in image.brokers().filter(|b| b.broker_id.0 != self.node_id) {
                let target = match (b.endpoint(super::api::HTTP_ENDPOINT), b.endpoint("grpc")) {
                    (Some(e), _) => Probe::Http(format!("{}:{}", e.host, e.port)),
                    (None, Some(e)) => Probe::Connect(format!("{}:{}", e.host, e.port)),
                    (None, None) => continue,
                };
                let id = b.broker_id.0;
                probes.spawn(async move {
                    let sent = Instant::now();
                    let up = tokio::time::timeout(PROBE_TIMEOUT, target.run())
                        .await
                        .is_ok_and(|r| r.is_ok());
                    (id, up, sent)
                });
            }
            // Down since the first unanswered probe was sent.
            while let Some(Ok((id, up, sent))) = probes.join_next().await {
                self.probed(id, up, sent);
            }
        }
    }

    /// The ring now, and a receiver of every later event.
    pub fn subscribe(&self) -> (Vec<ConsoleEvent>, broadcast::Receiver<ConsoleEvent>) {
        let inner = self.lock();
        // Subscribed under the lock: nothing is sent between the ring and the receiver.
        let rx = self.tx.subscribe();
        (inner.ring.iter().cloned().collect(), rx)
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_counts_from_the_first_sign_of_trouble() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (old leader down since, leaderless since) -> gap at t0 + 10 s
        let table = [
            ((None, None), None),
            ((Some(t0 + s(4)), None), Some(s(6))),
            ((None, Some(t0 + s(7))), Some(s(3))),
            ((Some(t0 + s(4)), Some(t0 + s(7))), Some(s(6))),
            ((Some(t0 + s(11)), None), Some(s(0))),
        ];
        for ((down, leaderless), want) in table {
            assert_eq!(
                failover_gap(t0 + s(10), down, leaderless),
                want,
                "{down:?} {leaderless:?}"
            );
        }
    }

    fn p(leader: i32, epoch: i32, isr: &[i32]) -> v1::PartitionView {
        v1::PartitionView {
            topic: "orders".into(),
            partition: 2,
            leader,
            leader_epoch: epoch,
            replicas: vec![3, 1, 2],
            isr: isr.to_vec(),
            elr: vec![],
        }
    }

    fn view(full: bool, partitions: Vec<v1::PartitionView>) -> v1::ClusterView {
        v1::ClusterView {
            full,
            controller_id: 1,
            term: 2,
            partitions,
            ..v1::ClusterView::default()
        }
    }

    #[test]
    fn an_election_after_a_dead_leader_carries_its_gap_and_stays_in_the_ring() {
        let hub = Hub::new(1);
        let t0 = Instant::now();
        assert!(
            hub.apply(view(true, vec![p(3, 0, &[3, 1, 2])]), t0, 0)
                .is_empty()
        );
        hub.probed(3, false, t0 + Duration::from_secs(1));
        let got = hub.apply(
            view(false, vec![p(1, 1, &[1, 2])]),
            t0 + Duration::from_millis(7500),
            7500,
        );
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!(
            e.text,
            "orders-2: leader 3 → 1, epoch 0 → 1, ISR [3,1,2] → [1,2]"
        );
        assert_eq!(
            (e.kind, e.leader, e.gap_ms, e.id),
            ("partition", Some(1), Some(6500), 0)
        );
        // A planned move back: broker 3 answers again, no gap.
        hub.probed(3, true, t0 + Duration::from_secs(9));
        let back = hub.apply(
            view(false, vec![p(3, 2, &[1, 2, 3])]),
            t0 + Duration::from_secs(10),
            10_000,
        );
        assert_eq!((back[0].gap_ms, back[0].id), (None, 1));
        let (ring, _rx) = hub.subscribe();
        assert_eq!(ring.len(), 2, "a page opened now still sees the election");
    }

    #[test]
    fn a_leaderless_stretch_is_a_gap_too() {
        let hub = Hub::new(1);
        let t0 = Instant::now();
        hub.apply(view(true, vec![p(3, 0, &[3])]), t0, 0);
        let none = hub.apply(
            view(false, vec![p(-1, 1, &[3])]),
            t0 + Duration::from_secs(2),
            0,
        );
        assert_eq!((none[0].leader, none[0].gap_ms), (Some(-1), None));
        let back = hub.apply(
            view(false, vec![p(1, 2, &[1])]),
            t0 + Duration::from_secs(5),
            0,
        );
        assert_eq!(back[0].gap_ms, Some(3000));
    }
}
