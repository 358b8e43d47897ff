//! Partition reassignment (Kafka's KIP-455, AlterPartitionReassignments): moving a
//! partition's replicas to another set of brokers while it serves.
//!
//! Rules:
//! - a move starts with one `PartitionChange`: `replicas` becomes the target followed by
//!   the replicas leaving, `adding_replicas` the target's new brokers, `removing_replicas`
//!   the leaving ones. The added replicas follow the leader like any other and join the
//!   ISR once caught up;
//! - it completes, in the same change as the ISR expansion that makes it possible, once
//!   every target replica is in the ISR: `replicas` becomes the target, the ISR and ELR
//!   keep only target replicas, and a leader outside the target hands over to the first
//!   target replica that is in the ISR and ready to lead. Until one is ready it waits;
//! - a move whose target is already in sync (a reorder, or only removals) completes at
//!   once;
//! - one move per partition at a time (REASSIGNMENT_IN_PROGRESS); a cancel reverts to the
//!   replicas it had (NO_REASSIGNMENT_IN_PROGRESS when none is ongoing), never leaving it
//!   without an in-sync replica;
//! - a target is distinct, registered brokers (as in Kafka, a fenced one may be named: the
//!   move waits for it), at least `min.insync.replicas` of them (INVALID_REPLICA_ASSIGNMENT
//!   naming what is wrong); a refused move changes nothing.
//!
//! Pure: `(image, request) -> records`, like every control manager; no I/O, no clock.

use super::{Decision, ElectionResult, topic_config};
use kavka_metadata::{
    MetadataImage, MetadataRecord, NO_LEADER, PartitionChangeRecord, PartitionRegistration, TopicId,
};
use kavka_model::admin::PartitionMove;
use kavka_model::{BrokerId, ErrorCode, KafkaError, PartitionId, TopicName};
use std::collections::BTreeSet;

/// Starts or cancels each move; one result per move, in order.
pub fn alter_reassignments(
    image: &MetadataImage,
    moves: &[PartitionMove],
    ready: &dyn Fn(BrokerId) -> bool,
) -> Decision<Vec<ElectionResult>> {
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    let mut reply = Vec::with_capacity(moves.len());
    for m in moves {
        let (topic, partition) = (&m.partition.topic, m.partition.partition);
        let tp = format!("{topic}-{partition}");
        let result = if !seen.insert((topic.clone(), partition)) {
            Err(KafkaError::new(
                ErrorCode::InvalidRequest,
                format!("{tp} is named more than once in the request"),
            ))
        } else {
            let found = TopicName::new(topic.clone())
                .ok()
                .and_then(|n| image.topic_by_name(&n))
                .and_then(|t| t.partitions.get(&partition).map(|reg| (t, reg)));
            match found {
                None => Err(KafkaError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("{tp} does not exist"),
                )),
                Some((t, reg)) => {
                    let min_isr = topic_config(image, t).min_insync_replicas.max(1) as usize;
                    let next = match &m.target {
                        Some(target) => start(image, &tp, reg, target, min_isr, ready),
                        None => cancel(&tp, reg, ready),
                    };
                    next.map(|next| records.extend(change(t.id, partition, reg, &next)))
                }
            }
        };
        reply.push((topic.clone(), partition, result));
    }
    Decision { records, reply }
}

/// The registration a move to `target` leads to: reassigning, or already complete.
fn start(
    image: &MetadataImage,
    tp: &str,
    reg: &PartitionRegistration,
    target: &[BrokerId],
    min_isr: usize,
    ready: &dyn Fn(BrokerId) -> bool,
) -> Result<PartitionRegistration, KafkaError> {
    let invalid = |why: String| {
        Err(KafkaError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!("{tp}: {why}"),
        ))
    };
    if reg.is_reassigning() {
        return Err(KafkaError::new(
            ErrorCode::ReassignmentInProgress,
            format!(
                "{tp} is already moving to [{}]; cancel that move first",
                list(&reg.target_replicas())
            ),
        ));
    }
    if target.is_empty() {
        return invalid("the target replica list is empty".into());
    }
    let distinct: BTreeSet<BrokerId> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return invalid(format!(
            "the target [{}] names a broker twice",
            list(target)
        ));
    }
    // Kafka's rule: registered. A fenced broker may be a target; the move waits for it.
    if let Some(b) = target.iter().find(|&&b| image.broker(b).is_none()) {
        return invalid(format!("broker {b} is not registered"));
    }
    if target.len() < min_isr {
        return invalid(format!(
            "the target [{}] has fewer replicas than min.insync.replicas={min_isr}",
            list(target)
        ));
    }
    if target == reg.replicas.as_slice() {
        return Ok(reg.clone());
    }
    let removing: Vec<BrokerId> = reg
        .replicas
        .iter()
        .copied()
        .filter(|b| !target.contains(b))
        .collect();
    let mut next = reg.clone();
    next.adding_replicas = target
        .iter()
        .copied()
        .filter(|b| !reg.replicas.contains(b))
        .collect();
    next.replicas = target.iter().chain(&removing).copied().collect();
    next.removing_replicas = removing;
    let in_sync = target.iter().all(|b| reg.isr.contains(b));
    Ok(in_sync
        .then(|| settle(&next, target.to_vec(), ready))
        .flatten()
        .unwrap_or(next))
}

/// The registration a cancel leads to: the replicas from before the move.
fn cancel(
    tp: &str,
    reg: &PartitionRegistration,
    ready: &dyn Fn(BrokerId) -> bool,
) -> Result<PartitionRegistration, KafkaError> {
    if !reg.is_reassigning() {
        return Err(KafkaError::new(
            ErrorCode::NoReassignmentInProgress,
            format!("{tp} is not being moved"),
        ));
    }
    let original = reg.original_replicas();
    settle(reg, original, ready).ok_or_else(|| {
        KafkaError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "{tp}: cancelling would leave no in-sync replica able to lead (ISR [{}], replicas before the move [{}])",
                list(&reg.isr),
                list(&reg.original_replicas())
            ),
        )
    })
}

/// `reg` completed, if every target replica is in its ISR and a target replica can lead.
pub(crate) fn complete(
    reg: &PartitionRegistration,
    ready: &dyn Fn(BrokerId) -> bool,
) -> Option<PartitionRegistration> {
    let target = reg.target_replicas();
    if !reg.is_reassigning() || !target.iter().all(|b| reg.isr.contains(b)) {
        return None;
    }
    settle(reg, target, ready)
}

/// `reg` with `replicas` as its replica set and no move ongoing: ISR and ELR narrowed to
/// them, the leader kept if it is one of them, else the first of them in the ISR that is
/// ready. None if no in-sync one is (the change would leave it without a leader).
fn settle(
    reg: &PartitionRegistration,
    replicas: Vec<BrokerId>,
    ready: &dyn Fn(BrokerId) -> bool,
) -> Option<PartitionRegistration> {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|b| reg.isr.contains(b))
        .collect();
    let leader = if isr.contains(&reg.leader) {
        reg.leader
    } else if reg.leader == NO_LEADER && !isr.is_empty() {
        NO_LEADER
    } else {
        *isr.iter().find(|&&b| ready(b))?
    };
    let mut next = reg.clone();
    next.eligible_leader_replicas = reg
        .eligible_leader_replicas
        .iter()
        .copied()
        .filter(|b| replicas.contains(b))
        .collect();
    next.isr = isr;
    next.leader = leader;
    next.replicas = replicas;
    next.adding_replicas = vec![];
    next.removing_replicas = vec![];
    Some(next)
}

/// Broker ids as a user writes them: `4,2,3`.
pub fn list(ids: &[BrokerId]) -> String {
    ids.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The change record that takes `from` to `to`; None if nothing differs.
pub(crate) fn change(
    topic_id: TopicId,
    partition: PartitionId,
    from: &PartitionRegistration,
    to: &PartitionRegistration,
) -> Option<MetadataRecord> {
    let differs = |a: &Vec<BrokerId>, b: &Vec<BrokerId>| (a != b).then(|| b.clone());
    let c = PartitionChangeRecord {
        leader: (from.leader != to.leader).then_some(to.leader),
        isr: differs(&from.isr, &to.isr),
        replicas: differs(&from.replicas, &to.replicas),
        eligible_leader_replicas: differs(
            &from.eligible_leader_replicas,
            &to.eligible_leader_replicas,
        ),
        adding_replicas: differs(&from.adding_replicas, &to.adding_replicas),
        removing_replicas: differs(&from.removing_replicas, &to.removing_replicas),
        ..PartitionChangeRecord::new(topic_id, partition)
    };
    (c != PartitionChangeRecord::new(topic_id, partition))
        .then_some(MetadataRecord::PartitionChange(c))
}

#[cfg(test)]
mod tests;
