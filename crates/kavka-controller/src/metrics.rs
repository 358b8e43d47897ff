//! The controller's metrics, in Kafka's vocabulary with Prometheus' conventions: the
//! quorum's state at scrape time ([`collect`]: active controller, Raft term, commit and
//! applied indexes, metadata offset, and on the active controller the cluster-wide
//! counts Kafka's active controller reports), and the leader elections and broker
//! fencings its committed decisions made ([`count_committed`]).
//!
//! Invariants: elections are counted once, by the controller that committed them, after
//! they committed; cluster-wide counts come from the active controller only (the others
//! report 0, as Kafka's do), so a `sum` over nodes is right. Collecting reads the Raft
//! metrics and the applied image, never waits on the quorum. Must not depend on the
//! broker or the HTTP crate.

use crate::quorum::Quorum;
use kavka_metadata::{MetadataImage, MetadataRecord, NO_LEADER};

/// What a batch of records, about to be committed on `image`, changes that is counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// A new leader from the ISR or the eligible leader replicas.
    pub clean_elections: u64,
    /// A new leader from outside both (`unclean.leader.election.enable`).
    pub unclean_elections: u64,
    pub fencings: u64,
    pub unfencings: u64,
}

/// Classifies `records` against the image they apply to. A partition change that names
/// a new leader is an election; it is unclean when that leader was neither in the ISR
/// nor an eligible leader replica (it may lack committed records). A change to no leader
/// is not an election (the partition goes offline).
pub fn count(image: &MetadataImage, records: &[MetadataRecord]) -> Counted {
    let mut c = Counted::default();
    for r in records {
        match r {
            MetadataRecord::PartitionChange(ch) => {
                let Some(leader) = ch.leader.filter(|l| *l != NO_LEADER) else {
                    continue;
                };
                let Some(reg) = image.partition(ch.topic_id, ch.partition) else {
                    continue;
                };
                if reg.leader == leader {
                    continue;
                }
                if reg.isr.contains(&leader) || reg.eligible_leader_replicas.contains(&leader) {
                    c.clean_elections += 1;
                } else {
                    c.unclean_elections += 1;
                }
            }
            MetadataRecord::FenceBroker { .. } => c.fencings += 1,
            MetadataRecord::UnfenceBroker { .. } => c.unfencings += 1,
            _ => {}
        }
    }
    c
}

/// Counts what a committed batch did (see [`count`]).
pub(crate) fn count_committed(c: Counted) {
    if c != Counted::default() {
        count_committed_always(c);
    }
}

fn count_committed_always(c: Counted) {
    metrics::counter!("kavka_controller_leader_elections_total", "kind" => "clean")
        .increment(c.clean_elections);
    metrics::counter!("kavka_controller_leader_elections_total", "kind" => "unclean")
        .increment(c.unclean_elections);
    metrics::counter!("kavka_controller_broker_fencings_total").increment(c.fencings);
    metrics::counter!("kavka_controller_broker_unfencings_total").increment(c.unfencings);
}

/// Cluster-wide counts of an image (what Kafka's active controller reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub topics: u64,
    pub partitions: u64,
    pub offline_partitions: u64,
    pub fenced_brokers: u64,
    pub active_brokers: u64,
}

pub fn cluster_counts(image: &MetadataImage) -> ClusterCounts {
    let mut c = ClusterCounts::default();
    for t in image.topics() {
        c.topics += 1;
        for reg in t.partitions.values() {
            c.partitions += 1;
            c.offline_partitions += u64::from(reg.leader == NO_LEADER);
        }
    }
    for b in image.brokers() {
        if b.fenced {
            c.fenced_brokers += 1;
        } else {
            c.active_brokers += 1;
        }
    }
    c
}

/// Sets the controller's scrape-time gauges from this voter's Raft metrics and image.
pub fn collect(quorum: &Quorum) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Counters of rare events start at 0, so rate() and increase() see their first one.
        count_committed_always(Counted::default());
    });
    let m = quorum.metrics();
    // `Quorum::leader`, not openraft's `current_leader`: a leader removed from the voters
    // may still name itself there after it reverted to a learner.
    let leader = quorum.leader();
    let active = leader == Some(quorum.node_id());
    metrics::gauge!("kavka_controller_active").set(f64::from(u8::from(active)));
    metrics::gauge!("kavka_controller_leader_id").set(leader.map_or(-1.0, |l| l as f64));
    metrics::gauge!("kavka_raft_term").set(m.current_term as f64);
    metrics::gauge!("kavka_raft_commit_index").set(
        m.local_committed
            .as_ref()
            .map_or(-1.0, |l| l.index() as f64),
    );
    metrics::gauge!("kavka_raft_applied_index")
        .set(m.last_applied.as_ref().map_or(-1.0, |l| l.index() as f64));
    metrics::gauge!("kavka_raft_last_log_index").set(m.last_log_index.map_or(-1.0, |i| i as f64));
    let image = quorum.image();
    metrics::gauge!("kavka_controller_metadata_offset").set(image.offset as f64);
    let c = if active {
        cluster_counts(&image)
    } else {
        ClusterCounts::default()
    };
    metrics::gauge!("kavka_controller_topics").set(c.topics as f64);
    metrics::gauge!("kavka_controller_partitions").set(c.partitions as f64);
    metrics::gauge!("kavka_controller_offline_partitions").set(c.offline_partitions as f64);
    metrics::gauge!("kavka_controller_fenced_brokers").set(c.fenced_brokers as f64);
    metrics::gauge!("kavka_controller_active_brokers").set(c.active_brokers as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{
        PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicId, TopicRecord,
    };
    use kavka_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};

    const TOPIC: TopicId = TopicId(uuid::Uuid::from_u128(7));

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|&i| BrokerId(i)).collect()
    }

    /// Brokers 1..=3 (3 fenced), topic "t" with partition 0 led by 1 (replicas 1,2,3;
    /// ISR 1,2; ELR 3 when `elr`) and partition 1 offline.
    fn image(elr: bool) -> MetadataImage {
        let mut records: Vec<MetadataRecord> = (1..=3)
            .map(|id| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: BrokerId(id),
                    incarnation_id: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    fenced: id == 3,
                })
            })
            .collect();
        records.push(MetadataRecord::Topic(TopicRecord {
            name: TopicName::new("t").unwrap(),
            topic_id: TOPIC,
        }));
        for (p, leader) in [(0, 1), (1, NO_LEADER.0)] {
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: TOPIC,
                partition: PartitionId(p),
                replicas: b(&[1, 2, 3]),
                isr: b(&[1, 2]),
                leader: BrokerId(leader),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            }));
        }
        if elr {
            let mut c = PartitionChangeRecord::new(TOPIC, PartitionId(0));
            c.eligible_leader_replicas = Some(b(&[3]));
            records.push(MetadataRecord::PartitionChange(c));
        }
        let (img, _, refused) = MetadataImage::empty().replay(1, &records);
        assert!(refused.is_empty(), "{refused:?}");
        img
    }

    fn leader_to(leader: i32) -> MetadataRecord {
        let mut c = PartitionChangeRecord::new(TOPIC, PartitionId(0));
        c.leader = Some(BrokerId(leader));
        MetadataRecord::PartitionChange(c)
    }

    #[test]
    fn elections_are_clean_from_the_isr_or_elr_and_unclean_otherwise() {
        let clean = Counted {
            clean_elections: 1,
            ..Counted::default()
        };
        let unclean = Counted {
            unclean_elections: 1,
            ..Counted::default()
        };
        // (ELR holds 3, new leader) -> counted
        let table = [
            (false, 2, clean),
            (false, 3, unclean),
            (true, 3, clean),
            (false, 1, Counted::default()), // the same leader: no election
            (false, NO_LEADER.0, Counted::default()), // offline: no election
        ];
        for (elr, leader, want) in table {
            assert_eq!(
                count(&image(elr), &[leader_to(leader)]),
                want,
                "elr {elr}, leader {leader}"
            );
        }
        // A change that leaves the leader alone (an ISR shrink) is no election.
        let mut isr = PartitionChangeRecord::new(TOPIC, PartitionId(0));
        isr.isr = Some(b(&[1]));
        assert_eq!(
            count(&image(false), &[MetadataRecord::PartitionChange(isr)]),
            Counted::default()
        );
    }

    #[test]
    fn fencings_are_counted() {
        let id = uuid::Uuid::from_u128(1);
        let records = [
            MetadataRecord::FenceBroker {
                broker_id: BrokerId(1),
                incarnation_id: id,
            },
            MetadataRecord::UnfenceBroker {
                broker_id: BrokerId(3),
                incarnation_id: id,
            },
            leader_to(2),
        ];
        assert_eq!(
            count(&image(false), &records),
            Counted {
                clean_elections: 1,
                unclean_elections: 0,
                fencings: 1,
                unfencings: 1
            }
        );
    }

    #[test]
    fn cluster_counts_of_an_image() {
        assert_eq!(
            cluster_counts(&image(false)),
            ClusterCounts {
                topics: 1,
                partitions: 2,
                offline_partitions: 1,
                fenced_brokers: 1,
                active_brokers: 2,
            }
        );
    }
}
