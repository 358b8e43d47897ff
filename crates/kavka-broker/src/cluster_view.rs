//! The cluster as a watcher sees it, and its changes in words: a copy of the cluster
//! kept from `WatchCluster` views (`service::watch`), and the event lines both
//! `kavka cluster watch` and the web console show ("orders-3: leader 2 → 1, epoch 7 → 8,
//! ISR [2,1,3] → [1,3]").
//!
//! Invariants: pure (no I/O, no clock, no async); the first full view only fills the
//! state, later views (a full one after a reconnect included) turn every difference
//! into one event per subject, in the order controller, brokers, partitions. Must not
//! depend on the gRPC services, the replica manager or any listener.

use kavka_proto::v1;
use std::collections::BTreeMap;

/// What a change is about, for highlighting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Controller,
    Broker(i32),
    Partition(String, i32),
    Watcher,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub subject: Subject,
    pub text: String,
}

impl Event {
    pub fn new(subject: Subject, text: impl Into<String>) -> Self {
        Self {
            subject,
            text: text.into(),
        }
    }
}

/// The watcher's copy of the cluster.
#[derive(Debug, Default)]
pub struct ClusterState {
    pub cluster_id: String,
    pub controller_id: i64,
    pub term: u64,
    pub metadata_offset: i64,
    pub node_id: i32,
    pub brokers: BTreeMap<i32, v1::BrokerInfo>,
    pub partitions: BTreeMap<(String, i32), v1::PartitionView>,
    seen: bool,
}

pub fn list(v: &[i32]) -> String {
    let items: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[{}]", items.join(","))
}

pub fn leader_name(id: i64) -> String {
    if id < 0 {
        "none".into()
    } else {
        id.to_string()
    }
}

fn partition_changes(old: &v1::PartitionView, new: &v1::PartitionView) -> Vec<String> {
    let mut parts = Vec::new();
    if old.leader != new.leader {
        parts.push(format!(
            "leader {} → {}",
            leader_name(old.leader.into()),
            leader_name(new.leader.into())
        ));
    }
    if old.leader_epoch != new.leader_epoch {
        parts.push(format!("epoch {} → {}", old.leader_epoch, new.leader_epoch));
    }
    if old.isr != new.isr {
        parts.push(format!("ISR {} → {}", list(&old.isr), list(&new.isr)));
    }
    if old.elr != new.elr {
        parts.push(format!("ELR {} → {}", list(&old.elr), list(&new.elr)));
    }
    if old.replicas != new.replicas {
        parts.push(format!(
            "replicas {} → {}",
            list(&old.replicas),
            list(&new.replicas)
        ));
    }
    parts
}

impl ClusterState {
    /// Applies one message of a stream and returns the changes it made, in words. The
    /// first full view of a watch only fills the state.
    pub fn apply(&mut self, v: v1::ClusterView) -> Vec<Event> {
        let mut events = Vec::new();
        let first = !self.seen;
        self.seen = true;
        if !first && (v.controller_id != self.controller_id || v.term != self.term) {
            events.push(Event::new(
                Subject::Controller,
                format!(
                    "active controller {} → {}, term {} → {}",
                    leader_name(self.controller_id),
                    leader_name(v.controller_id),
                    self.term,
                    v.term
                ),
            ));
        }
        self.controller_id = v.controller_id;
        self.term = v.term;
        self.metadata_offset = v.metadata_offset;
        self.node_id = v.node_id;
        if !v.cluster_id.is_empty() {
            self.cluster_id = v.cluster_id;
        }

        let mut removed_brokers = v.removed_brokers;
        let mut removed_partitions: Vec<(String, i32)> = v
            .removed_partitions
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect();
        if v.full {
            // Whatever the full view does not name is gone.
            removed_brokers.extend(
                self.brokers
                    .keys()
                    .filter(|id| !v.brokers.iter().any(|b| b.id == **id)),
            );
            removed_partitions.extend(
                self.partitions
                    .keys()
                    .filter(|k| {
                        !v.partitions
                            .iter()
                            .any(|p| p.topic == k.0 && p.partition == k.1)
                    })
                    .cloned(),
            );
        }
        for b in v.brokers {
            let id = b.id;
            let event = match self.brokers.get(&id) {
                None => Some(format!(
                    "broker {id} registered at {}:{}{}",
                    b.host,
                    b.port,
                    if b.fenced { " (fenced)" } else { "" }
                )),
                Some(old) if old.fenced != b.fenced => Some(format!(
                    "broker {id} {}",
                    if b.fenced { "fenced" } else { "unfenced" }
                )),
                Some(old) if (&old.host, old.port) != (&b.host, b.port) => {
                    Some(format!("broker {id} moved to {}:{}", b.host, b.port))
                }
                Some(_) => None,
            };
            if let Some(text) = event.filter(|_| !first) {
                events.push(Event::new(Subject::Broker(id), text));
            }
            self.brokers.insert(id, b);
        }
        for id in removed_brokers {
            if self.brokers.remove(&id).is_some() {
                events.push(Event::new(
                    Subject::Broker(id),
                    format!("broker {id} unregistered"),
                ));
            }
        }
        for p in v.partitions {
            let key = (p.topic.clone(), p.partition);
            let name = format!("{}-{}", p.topic, p.partition);
            let text = match self.partitions.get(&key) {
                None => Some(format!(
                    "{name}: created, leader {}, replicas {}",
                    leader_name(p.leader.into()),
                    list(&p.replicas)
                )),
                Some(old) => {
                    let parts = partition_changes(old, &p);
                    (!parts.is_empty()).then(|| format!("{name}: {}", parts.join(", ")))
                }
            };
            if let Some(text) = text.filter(|_| !first) {
                events.push(Event::new(Subject::Partition(key.0.clone(), key.1), text));
            }
            self.partitions.insert(key, p);
        }
        for key in removed_partitions {
            if self.partitions.remove(&key).is_some() {
                events.push(Event::new(
                    Subject::Partition(key.0.clone(), key.1),
                    format!("{}-{}: deleted", key.0, key.1),
                ));
            }
        }
        events
    }

    /// Addresses to try after the bootstrap list: the brokers this watcher has seen.
    pub fn broker_addrs(&self) -> Vec<String> {
        self.brokers
            .values()
            .filter(|b| !b.host.is_empty() && b.port > 0)
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32, leader: i32, epoch: i32, isr: &[i32]) -> v1::PartitionView {
        v1::PartitionView {
            topic: topic.into(),
            partition,
            leader,
            leader_epoch: epoch,
            replicas: vec![2, 1, 3],
            isr: isr.to_vec(),
            elr: vec![],
        }
    }

    fn b(id: i32, fenced: bool) -> v1::BrokerInfo {
        v1::BrokerInfo {
            id,
            host: format!("kavka-{id}"),
            port: 9093,
            rack: String::new(),
            fenced,
            decommissioned: false,
        }
    }

    fn view(full: bool, controller: i64, term: u64) -> v1::ClusterView {
        v1::ClusterView {
            full,
            controller_id: controller,
            term,
            ..v1::ClusterView::default()
        }
    }

    fn texts(events: Vec<Event>) -> Vec<String> {
        events.into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn changes_read_as_kafka_operators_say_them() {
        let mut s = ClusterState::default();
        let first = v1::ClusterView {
            brokers: vec![b(1, false), b(2, false), b(3, false)],
            partitions: vec![
                p("orders", 3, 2, 7, &[2, 1, 3]),
                p("orders", 4, 1, 0, &[1, 2, 3]),
            ],
            ..view(true, 1, 5)
        };
        assert!(
            s.apply(first).is_empty(),
            "the first view only fills the state"
        );

        let failover = v1::ClusterView {
            brokers: vec![b(2, true)],
            partitions: vec![p("orders", 3, 1, 8, &[1, 3])],
            ..view(false, 3, 6)
        };
        assert_eq!(
            texts(s.apply(failover)),
            [
                "active controller 1 → 3, term 5 → 6",
                "broker 2 fenced",
                "orders-3: leader 2 → 1, epoch 7 → 8, ISR [2,1,3] → [1,3]",
            ]
        );
        assert!(
            s.apply(view(false, 3, 6)).is_empty(),
            "a keepalive says nothing"
        );

        // A full view from another broker after a reconnect: differences are events.
        let other = v1::ClusterView {
            brokers: vec![b(1, false), b(2, false), b(3, false)],
            partitions: vec![p("orders", 3, 1, 8, &[1, 3, 2])],
            ..view(true, 3, 6)
        };
        assert_eq!(
            texts(s.apply(other)),
            [
                "broker 2 unfenced",
                "orders-3: ISR [1,3] → [1,3,2]",
                "orders-4: deleted",
            ]
        );
        assert_eq!(s.partitions.len(), 1);
        assert_eq!(s.broker_addrs().len(), 3);
    }
}
