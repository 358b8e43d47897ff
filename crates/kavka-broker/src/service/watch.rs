//! `WatchCluster`: the cluster as this broker sees it, pushed as it changes.
//!
//! A stream starts with the whole view (`full`), then sends only what changed each time
//! a metadata image is applied or the active controller changes; with nothing to say it
//! sends an empty view every [`KEEPALIVE`], so a watcher can tell a silent node (frozen,
//! cut off) from a quiet cluster. Broker addresses are those of the listener the watcher
//! connected through, as in `Metadata`.

use crate::replica_manager::ReplicaManager;
use crate::session::{ControllerSession, ControllerView};
use kavka_metadata::{BrokerRegistration, Endpoint, MetadataImage};
use kavka_proto::v1;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a stream with nothing new says it is still alive.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// The listener a broker registers for clients outside the cluster's network.
pub const EXTERNAL_LISTENER: &str = "external";

/// The endpoint to give a client: the external one when it came through the external
/// listener and the broker has one, else the cluster-internal gRPC endpoint.
pub fn client_endpoint(b: &BrokerRegistration, external: bool) -> Option<&Endpoint> {
    external
        .then(|| b.endpoint(EXTERNAL_LISTENER))
        .flatten()
        .or_else(|| b.endpoint("grpc"))
}

pub fn broker_info(
    image: &MetadataImage,
    b: &BrokerRegistration,
    external: bool,
) -> v1::BrokerInfo {
    let ep = client_endpoint(b, external);
    v1::BrokerInfo {
        id: b.broker_id.0,
        host: ep.map(|e| e.host.clone()).unwrap_or_default(),
        port: ep.map_or(0, |e| i32::from(e.port)),
        rack: b.rack.clone().unwrap_or_default(),
        fenced: b.fenced,
        decommissioned: image.is_decommissioned(b.broker_id),
    }
}

/// Everything a watcher is shown, keyed for diffing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    offset: i64,
    cluster_id: String,
    controller: ControllerView,
    brokers: BTreeMap<i32, v1::BrokerInfo>,
    partitions: BTreeMap<(String, i32), v1::PartitionView>,
}

impl Snapshot {
    pub fn of(image: &MetadataImage, controller: ControllerView, external: bool) -> Self {
        let ids = |v: &[kavka_model::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut partitions = BTreeMap::new();
        for t in image.topics() {
            for (p, r) in &t.partitions {
                let name = t.name.as_str().to_string();
                partitions.insert(
                    (name.clone(), p.0),
                    v1::PartitionView {
                        topic: name,
                        partition: p.0,
                        leader: r.leader.0,
                        leader_epoch: r.leader_epoch.0,
                        replicas: ids(&r.replicas),
                        isr: ids(&r.isr),
                        elr: ids(&r.eligible_leader_replicas),
                    },
                );
            }
        }
        Self {
            offset: image.offset,
            cluster_id: image.cluster_id.clone().unwrap_or_default(),
            controller,
            brokers: image
                .brokers()
                .map(|b| (b.broker_id.0, broker_info(image, b, external)))
                .collect(),
            partitions,
        }
    }

    fn header(&self, node_id: i32, full: bool) -> v1::ClusterView {
        v1::ClusterView {
            full,
            node_id,
            metadata_offset: self.offset,
            cluster_id: self.cluster_id.clone(),
            controller_id: self.controller.id.map_or(-1, |b| i64::from(b.0)),
            term: self.controller.term,
            ..v1::ClusterView::default()
        }
    }

    /// The whole view, for the first message of a stream.
    pub fn full(&self, node_id: i32) -> v1::ClusterView {
        v1::ClusterView {
            brokers: self.brokers.values().cloned().collect(),
            partitions: self.partitions.values().cloned().collect(),
            ..self.header(node_id, true)
        }
    }

    /// What changed from `prev` to `self`: an empty view (a keepalive) when nothing did.
    pub fn changes_since(&self, prev: &Snapshot, node_id: i32) -> v1::ClusterView {
        let mut v = self.header(node_id, false);
        v.brokers = self
            .brokers
            .iter()
            .filter(|(id, b)| prev.brokers.get(id) != Some(b))
            .map(|(_, b)| b.clone())
            .collect();
        v.removed_brokers = prev
            .brokers
            .keys()
            .filter(|id| !self.brokers.contains_key(id))
            .copied()
            .collect();
        v.partitions = self
            .partitions
            .iter()
            .filter(|(k, p)| prev.partitions.get(k) != Some(p))
            .map(|(_, p)| p.clone())
            .collect();
        v.removed_partitions = prev
            .partitions
            .keys()
            .filter(|k| !self.partitions.contains_key(k))
            .map(|(topic, partition)| v1::PartitionRef {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        v
    }
}

/// Feeds `tx` until the watcher goes away.
pub async fn run(
    replicas: Arc<ReplicaManager>,
    session: Arc<ControllerSession>,
    external: bool,
    tx: mpsc::Sender<v1::ClusterView>,
) {
    let node_id = replicas.config().node_id.0;
    let mut applied = replicas.watch_applied();
    let mut controller = session.watch_controller();
    let mut last = Snapshot::of(&replicas.image(), *controller.borrow_and_update(), external);
    applied.borrow_and_update();
    if tx.send(last.full(node_id)).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.reset();
    loop {
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            r = controller.changed() => if r.is_err() { return },
            _ = keepalive.tick() => {}
            _ = tx.closed() => return,
        }
        let next = Snapshot::of(&replicas.image(), *controller.borrow_and_update(), external);
        applied.borrow_and_update();
        let view = next.changes_since(&last, node_id);
        last = next;
        if tx.send(view).await.is_err() {
            return;
        }
        keepalive.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{
        MetadataRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicId,
        TopicRecord,
    };
    use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};

    fn broker(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: BrokerId(id),
            incarnation_id: uuid::Uuid::from_u128(id as u128),
            endpoints: vec![
                Endpoint {
                    name: "grpc".into(),
                    host: format!("kavka-{id}"),
                    port: 9093,
                },
                Endpoint {
                    name: EXTERNAL_LISTENER.into(),
                    host: "localhost".into(),
                    port: 9092 + id as u16,
                },
            ],
            rack: None,
            fenced,
        })
    }

    #[test]
    fn a_leader_change_is_sent_as_that_partition_alone() {
        let topic = TopicId(uuid::Uuid::from_u128(7));
        let part = |p: i32, leader: i32, isr: &[i32]| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id: topic,
                partition: PartitionId(p),
                replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                isr: isr.iter().copied().map(BrokerId).collect(),
                leader: BrokerId(leader),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            })
        };
        let records = vec![
            broker(1, false),
            broker(2, false),
            broker(3, false),
            MetadataRecord::Topic(TopicRecord {
                name: TopicName::new("orders").unwrap(),
                topic_id: topic,
            }),
            part(0, 1, &[1, 2, 3]),
            part(1, 2, &[2, 3, 1]),
        ];
        let (before, _, refused) = MetadataImage::empty().replay(0, &records);
        assert!(refused.is_empty(), "{refused:?}");
        let c = ControllerView {
            id: Some(BrokerId(1)),
            term: 3,
        };
        let s0 = Snapshot::of(&before, c, false);
        let full = s0.full(1);
        assert!(full.full);
        assert_eq!(full.partitions.len(), 2);
        assert_eq!(full.brokers[1].host, "kavka-2");

        let mut change = PartitionChangeRecord::new(topic, PartitionId(1));
        change.leader = Some(BrokerId(3));
        change.isr = Some(vec![BrokerId(3), BrokerId(1)]);
        let fence = MetadataRecord::FenceBroker {
            broker_id: BrokerId(2),
            incarnation_id: uuid::Uuid::from_u128(2),
        };
        let (after, _, refused) =
            before.replay(10, &[fence, MetadataRecord::PartitionChange(change)]);
        assert!(refused.is_empty(), "{refused:?}");
        let moved = ControllerView {
            id: Some(BrokerId(3)),
            term: 4,
        };
        let v = Snapshot::of(&after, moved, false).changes_since(&s0, 1);
        assert!(!v.full);
        assert_eq!((v.controller_id, v.term), (3, 4));
        assert_eq!(v.partitions.len(), 1, "{v:?}");
        let p = &v.partitions[0];
        assert_eq!((p.partition, p.leader, p.isr.clone()), (1, 3, vec![3, 1]));
        assert_eq!(p.leader_epoch, 1, "a new leader bumps the epoch");
        assert_eq!(v.brokers.len(), 1);
        assert!(v.brokers[0].fenced);

        let same = Snapshot::of(&after, moved, false);
        let keepalive = same.changes_since(&same, 1);
        assert!(keepalive.partitions.is_empty() && keepalive.brokers.is_empty());

        // Clients that came through the external listener see external addresses.
        let ext = Snapshot::of(&after, moved, true).full(1);
        let b3 = &ext.brokers[2];
        assert_eq!((b3.host.as_str(), b3.port), ("localhost", 9095));
    }
}
