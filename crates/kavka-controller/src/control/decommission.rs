//! Decommissioning a broker (Redpanda's `decommission`, Kafka's drain-then-unregister):
//! marks it in the metadata log so that every replica moves off it (the balancer's
//! executor does the moves, a bounded number at a time) and no new one is placed on it.
//!
//! Rules:
//! - only a registered broker; asking twice is no change;
//! - refused, changing nothing, when a partition's only in-sync replica is on it
//!   (NOT_ENOUGH_REPLICAS: its data would have nowhere safe to come from if it failed
//!   mid-move; a live broker's replica of a partition with replication factor 1 moves
//!   from it, a down broker's cannot), or when some partition has no broker left to take its replica
//!   (INVALID_REPLICATION_FACTOR: fewer hosts than its replication factor); each names
//!   the partitions;
//! - recommissioning takes the mark off; moves already started go on.
//!
//! Pure: `(image, request) -> records`.

use super::Decision;
use super::balance::{self, Goals};
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::{BrokerId, ErrorCode, KafkaError};
use std::collections::{BTreeMap, BTreeSet};

/// How many partitions an error names before "and N more".
const NAMED: usize = 5;

/// The brokers that may take replicas: unfenced and not being decommissioned.
pub fn hosts(image: &MetadataImage) -> BTreeMap<BrokerId, Option<String>> {
    image
        .unfenced_brokers()
        .filter(|b| !image.is_decommissioned(b.broker_id))
        .map(|b| (b.broker_id, b.rack.clone()))
        .collect()
}

/// Decommissions `broker` (`on`) or takes it back into service.
pub fn decommission(
    image: &MetadataImage,
    broker: BrokerId,
    on: bool,
) -> Decision<Result<(), KafkaError>> {
    let refuse = |code, msg: String| Decision {
        records: vec![],
        reply: Err(KafkaError::new(code, msg)),
    };
    if image.broker(broker).is_none() {
        return refuse(
            ErrorCode::BrokerIdNotRegistered,
            format!("broker {broker} is not registered"),
        );
    }
    if image.is_decommissioned(broker) == on {
        return Decision {
            records: vec![],
            reply: Ok(()),
        };
    }
    if on {
        // Its only in-sync copy is on it: refused while others could catch up, and when
        // the broker is down (nothing could copy it). A live broker's sole replica (a
        // replication factor of 1) moves from it.
        let down = image.broker(broker).is_some_and(|b| b.fenced);
        let last_copy: Vec<String> = image
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.isr == [broker] && (p.replicas.len() > 1 || down))
                    .map(move |(n, _)| format!("{}-{n}", t.name))
            })
            .collect();
        if !last_copy.is_empty() {
            return refuse(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "broker {broker} holds the only in-sync replica of {}; wait until the other replicas catch up",
                    named(&last_copy)
                ),
            );
        }
        let mut hosts = hosts(image);
        hosts.remove(&broker);
        let goals = Goals {
            hosts,
            drain: BTreeSet::from([broker]),
            even: false,
            max_moves: usize::MAX,
        };
        let plan = balance::plan(&balance::layout(image), &goals);
        if let Some(first) = plan.stuck.first() {
            let why = &first.reason;
            let stuck: Vec<String> = plan
                .stuck
                .iter()
                .map(|s| format!("{}-{}", s.topic, s.partition))
                .collect();
            return refuse(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "broker {broker} cannot be emptied: {} would have {why}",
                    named(&stuck)
                ),
            );
        }
    }
    Decision {
        records: vec![MetadataRecord::BrokerDecommission {
            broker_id: broker,
            decommissioned: on,
        }],
        reply: Ok(()),
    }
}

/// "a-0, a-1 and 3 more".
fn named(partitions: &[String]) -> String {
    let shown = partitions[..partitions.len().min(NAMED)].join(", ");
    match partitions.len().saturating_sub(NAMED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::partitions::tests::image;

    #[test]
    fn decommission_decisions() {
        // (case, brokers, fenced, replicas, isr, broker, on, already) -> error code or records
        type Case<'a> = (
            &'a str,
            i32,
            &'a [i32],
            &'a [i32],
            &'a [i32],
            i32,
            bool,
            bool,
            Result<usize, ErrorCode>,
        );
        let cases: &[Case] = &[
            (
                "a spare broker: accepted",
                4,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                true,
                false,
                Ok(1),
            ),
            (
                "unknown broker",
                3,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                7,
                true,
                false,
                Err(ErrorCode::BrokerIdNotRegistered),
            ),
            (
                "no broker left for its replica",
                3,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                true,
                false,
                Err(ErrorCode::InvalidReplicationFactor),
            ),
            (
                "the spare broker is fenced: refused",
                4,
                &[4],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                true,
                false,
                Err(ErrorCode::InvalidReplicationFactor),
            ),
            (
                "the only in-sync copy",
                4,
                &[],
                &[1, 2, 3],
                &[2],
                2,
                true,
                false,
                Err(ErrorCode::NotEnoughReplicas),
            ),
            (
                "replication factor 1 on a live broker: it moves from there",
                4,
                &[],
                &[2],
                &[2],
                2,
                true,
                false,
                Ok(1),
            ),
            (
                "replication factor 1 on a down broker: nothing could copy it",
                4,
                &[2],
                &[2],
                &[2],
                2,
                true,
                false,
                Err(ErrorCode::NotEnoughReplicas),
            ),
            (
                "a broker with no replicas: accepted",
                4,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                4,
                true,
                false,
                Ok(1),
            ),
            (
                "twice: no change",
                4,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                true,
                true,
                Ok(0),
            ),
            (
                "recommission",
                4,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                false,
                true,
                Ok(1),
            ),
            (
                "recommission one in service: no change",
                4,
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                2,
                false,
                false,
                Ok(0),
            ),
        ];
        for (case, brokers, fenced, replicas, isr, broker, on, already, want) in cases {
            let mut img = image(*brokers, fenced, replicas, isr, isr[0], &[]);
            if *already {
                let (next, _, refused) = img.replay(
                    img.offset + 1,
                    [&MetadataRecord::BrokerDecommission {
                        broker_id: BrokerId(*broker),
                        decommissioned: true,
                    }],
                );
                assert!(refused.is_empty());
                img = next;
            }
            let d = decommission(&img, BrokerId(*broker), *on);
            match want {
                Ok(n) => {
                    assert_eq!(d.reply, Ok(()), "{case}");
                    assert_eq!(d.records.len(), *n, "{case}");
                }
                Err(code) => {
                    let e = d.reply.unwrap_err();
                    assert_eq!(e.code, *code, "{case}: {e}");
                    assert!(
                        e.message.contains("t-0") || *code == ErrorCode::BrokerIdNotRegistered,
                        "{case}: {e}"
                    );
                    assert!(d.records.is_empty(), "{case}");
                }
            }
        }
    }

    #[test]
    fn errors_name_a_few_partitions_then_count() {
        let many: Vec<String> = (0..8).map(|i| format!("t-{i}")).collect();
        assert_eq!(named(&many[..2]), "t-0, t-1");
        assert_eq!(named(&many), "t-0, t-1, t-2, t-3, t-4 and 3 more");
    }
}
