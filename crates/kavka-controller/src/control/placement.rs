//! Replica placement: spreads replicas and leaders evenly over unfenced brokers (not those
//! being decommissioned), and the replicas of one partition over distinct racks when
//! `broker.rack` is set.
//!
//! Greedy and deterministic: each new partition takes as leader the broker leading the
//! fewest partitions (counting the cluster's existing ones), then as followers the
//! brokers holding the fewest replicas, preferring racks the partition does not use yet.
//! Ties go to the lower broker id, rotated by the partition index so equal loads still
//! spread.

use kavka_metadata::MetadataImage;
use kavka_model::{BrokerId, ErrorCode, KafkaError, PartitionId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Load {
    leaders: usize,
    replicas: usize,
}

/// Replica lists for `partitions` new partitions of replication factor `rf`.
pub fn place(
    image: &MetadataImage,
    partitions: usize,
    rf: usize,
) -> Result<Vec<Vec<BrokerId>>, KafkaError> {
    // Not on a broker being decommissioned: its replicas are moving away.
    let brokers: Vec<(BrokerId, Option<String>)> = image
        .unfenced_brokers()
        .filter(|b| !image.is_decommissioned(b.broker_id))
        .map(|b| (b.broker_id, b.rack.clone()))
        .collect();
    if rf == 0 || rf > brokers.len() {
        return Err(KafkaError::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "replication factor {rf} is larger than the {} available (unfenced) broker(s)",
                brokers.len()
            ),
        ));
    }
    let mut load: BTreeMap<BrokerId, Load> =
        brokers.iter().map(|(b, _)| (*b, Load::default())).collect();
    for t in image.topics() {
        for p in t.partitions.values() {
            for r in &p.replicas {
                if let Some(l) = load.get_mut(r) {
                    l.replicas += 1;
                }
            }
            if let Some(l) = load.get_mut(&p.leader) {
                l.leaders += 1;
            }
        }
    }
    let racks: BTreeMap<BrokerId, Option<String>> = brokers.iter().cloned().collect();
    let n = brokers.len();
    let mut out = Vec::with_capacity(partitions);
    for p in 0..partitions {
        // Rotation for ties: position of each broker relative to this partition.
        let rank =
            |b: &BrokerId| (brokers.iter().position(|(x, _)| x == b).unwrap_or(0) + n - p % n) % n;
        let leader = *load
            .iter()
            .min_by_key(|(b, l)| (l.leaders, l.replicas, rank(b)))
            .map(|(b, _)| b)
            .ok_or_else(|| {
                KafkaError::new(ErrorCode::InvalidReplicationFactor, "no available brokers")
            })?;
        let mut replicas = vec![leader];
        let mut used_racks: BTreeSet<Option<String>> = BTreeSet::from([racks[&leader].clone()]);
        while replicas.len() < rf {
            let next = *load
                .iter()
                .filter(|(b, _)| !replicas.contains(b))
                .min_by_key(|(b, l)| {
                    let rack = &racks[*b];
                    let rack_taken = rack.is_some() && used_racks.contains(rack);
                    (rack_taken, l.replicas, rank(b))
                })
                .map(|(b, _)| b)
                .ok_or_else(|| {
                    KafkaError::new(ErrorCode::InvalidReplicationFactor, "not enough brokers")
                })?;
            used_racks.insert(racks[&next].clone());
            replicas.push(next);
        }
        for (i, b) in replicas.iter().enumerate() {
            if let Some(l) = load.get_mut(b) {
                l.replicas += 1;
                if i == 0 {
                    l.leaders += 1;
                }
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

/// Checks one partition's replica list as a client gave it (Kafka's manual assignment),
/// with Kafka's rules and messages: not empty, no broker twice, every broker registered,
/// as many replicas as `rf` (the other partitions' count), at least one unfenced. The
/// answer is the ISR: the unfenced replicas in the given order, whose first leads.
pub fn check_manual(
    image: &MetadataImage,
    partition: PartitionId,
    replicas: &[BrokerId],
    rf: Option<usize>,
) -> Result<Vec<BrokerId>, KafkaError> {
    let invalid = |msg: String| KafkaError::new(ErrorCode::InvalidReplicaAssignment, msg);
    if replicas.is_empty() {
        return Err(invalid(format!(
            "the manual partition assignment for partition {} is an empty replica list",
            partition.0
        )));
    }
    let mut seen = BTreeSet::new();
    for b in replicas {
        if image.broker(*b).is_none() {
            return Err(invalid(format!(
                "the manual partition assignment includes broker {}, but no such broker is registered",
                b.0
            )));
        }
        if !seen.insert(*b) {
            return Err(invalid(format!(
                "the manual partition assignment includes the broker {} more than once",
                b.0
            )));
        }
    }
    if let Some(rf) = rf.filter(|rf| *rf != replicas.len()) {
        return Err(invalid(format!(
            "the manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s)",
            replicas.len()
        )));
    }
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|b| image.broker(*b).is_some_and(|r| !r.fenced))
        .collect();
    if isr.is_empty() {
        return Err(invalid(format!(
            "all brokers specified in the manual partition assignment for partition {} are fenced",
            partition.0
        )));
    }
    Ok(isr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{MetadataRecord, RegisterBrokerRecord};

    fn image(brokers: &[(i32, Option<&str>, bool)]) -> MetadataImage {
        let records: Vec<MetadataRecord> = brokers
            .iter()
            .map(|(id, rack, fenced)| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: BrokerId(*id),
                    incarnation_id: uuid::Uuid::from_u128(*id as u128),
                    endpoints: vec![],
                    rack: rack.map(String::from),
                    fenced: *fenced,
                })
            })
            .collect();
        MetadataImage::empty().replay(0, &records).0
    }

    fn counts(assignment: &[Vec<BrokerId>]) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let mut leaders = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for r in assignment {
            *leaders.entry(r[0].0).or_default() += 1;
            for b in r {
                *replicas.entry(b.0).or_default() += 1;
            }
        }
        (leaders, replicas)
    }

    #[test]
    fn spreads_leaders_and_replicas_evenly() {
        // (brokers, partitions, rf) -> every broker leads partitions/brokers and holds
        // partitions*rf/brokers replicas.
        for (brokers, partitions, rf) in [(3, 6, 3), (3, 6, 1), (4, 8, 2), (5, 10, 3), (1, 4, 1)] {
            let img = image(&(1..=brokers).map(|i| (i, None, false)).collect::<Vec<_>>());
            let a = place(&img, partitions, rf).unwrap();
            assert_eq!(a.len(), partitions);
            for r in &a {
                assert_eq!(r.len(), rf);
                assert_eq!(
                    r.iter().collect::<BTreeSet<_>>().len(),
                    rf,
                    "distinct replicas: {r:?}"
                );
            }
            let (leaders, replicas) = counts(&a);
            assert!(
                leaders
                    .values()
                    .all(|&c| c == partitions / brokers as usize),
                "{brokers}/{partitions}/{rf}: {leaders:?}"
            );
            assert!(
                replicas
                    .values()
                    .all(|&c| c == partitions * rf / brokers as usize),
                "{replicas:?}"
            );
        }
    }

    #[test]
    fn respects_racks_and_skips_fenced_brokers() {
        let img = image(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
            (5, Some("a"), true),
        ]);
        let a = place(&img, 8, 2).unwrap();
        for r in &a {
            assert!(!r.contains(&BrokerId(5)), "fenced broker placed: {r:?}");
            let racks: BTreeSet<bool> = r.iter().map(|b| b.0 <= 2).collect();
            assert_eq!(racks.len(), 2, "replicas share a rack: {r:?}");
        }
    }

    #[test]
    fn manual_assignments_are_checked_as_kafka_checks_them() {
        // Brokers 1 and 2 live, 3 fenced; 4 never registered.
        let img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        // (replicas, rf of the other partitions, ISR or the words of the refusal)
        type Isr = Result<Vec<i32>, &'static str>;
        let table: Vec<(Vec<i32>, Option<usize>, Isr)> = vec![
            (vec![2, 1], None, Ok(vec![2, 1])),
            (vec![3, 1, 2], None, Ok(vec![1, 2])),
            (vec![1, 2, 3], Some(3), Ok(vec![1, 2])),
            (vec![], None, Err("empty replica list")),
            (
                vec![1, 4],
                None,
                Err("broker 4, but no such broker is registered"),
            ),
            (vec![1, 2, 1], None, Err("broker 1 more than once")),
            (vec![1, 2], Some(3), Err("with 2 replica(s), but")),
            (vec![3], None, Err("partition 7 are fenced")),
        ];
        for (replicas, rf, want) in table {
            let got = check_manual(&img, PartitionId(7), &ids(&replicas), rf);
            match (want, got) {
                (Ok(isr), Ok(got)) => assert_eq!(got, ids(&isr), "{replicas:?}"),
                (Err(words), Err(e)) => {
                    assert_eq!(e.code, ErrorCode::InvalidReplicaAssignment, "{replicas:?}");
                    assert!(e.message.contains(words), "{replicas:?}: {e}");
                }
                (want, got) => panic!("{replicas:?}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn refuses_a_replication_factor_above_the_live_brokers() {
        let img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        let e = place(&img, 1, 3).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidReplicationFactor);
        assert!(e.message.contains("2 available"), "{e}");
        assert_eq!(
            place(&img, 1, 0).unwrap_err().code,
            ErrorCode::InvalidReplicationFactor
        );
    }

    #[test]
    fn counts_existing_partitions_when_placing_new_ones() {
        let img = image(&[(1, None, false), (2, None, false)]);
        // Put 3 partitions' leadership on broker 1 and replay, then place 1 more.
        let first = place(&img, 3, 1).unwrap();
        let mut records = vec![];
        let tid = kavka_metadata::TopicId(uuid::Uuid::from_u128(7));
        records.push(MetadataRecord::Topic(kavka_metadata::TopicRecord {
            name: kavka_model::TopicName::new("t").unwrap(),
            topic_id: tid,
        }));
        for (i, r) in first.iter().enumerate() {
            records.push(MetadataRecord::Partition(kavka_metadata::PartitionRecord {
                topic_id: tid,
                partition: kavka_model::PartitionId(i as i32),
                replicas: r.clone(),
                isr: r.clone(),
                leader: r[0],
                leader_epoch: kavka_model::LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            }));
        }
        let img = img.replay(img.offset + 1, &records).0;
        let (leaders, _) = counts(&first);
        let more = place(&img, 1, 1).unwrap();
        let least = leaders
            .iter()
            .min_by_key(|(_, c)| **c)
            .map(|(b, _)| *b)
            .unwrap();
        assert_eq!(more[0][0].0, least);
    }
}
