//! Partition leadership and ISR decisions: elections when brokers go away or come back,
//! AlterPartition (ISR changes proposed by leaders), controlled shutdown, and the
//! preferred and unclean leader elections an operator asks for.
//!
//! Rules (Kafka's, DESIGN §5.1):
//! - a new leader comes from the live ISR, first in replica order; failing that from the
//!   live eligible leader replicas (KIP-966); failing that the partition goes offline
//!   (leader -1), unless the topic sets `unclean.leader.election.enable`, when any live
//!   replica leads with ISR = [itself];
//! - "live" for leading is stricter than for staying in the ISR: an election picks only
//!   brokers that are heartbeating now ([`Electable::is_ready`]), and the preferred-leader
//!   election, which displaces a working leader, only brokers that have also been
//!   unfenced for a settle time ([`Electable::is_settled`]). A partition with live ISR
//!   members none of which is ready waits offline (its ISR kept) until one is;
//! - a replica its broker reports offline (the log cannot be opened) leaves the ISR of
//!   its partition and is never preferred to one that can serve
//!   ([`Electable::replica_online`]); where only offline replicas are left, things go as
//!   if none were (one leads, answering KAFKA_STORAGE_ERROR with the cause). The broker's
//!   other replicas are untouched;
//! - the ISR never becomes empty: its last member stays in it when it goes down, so the
//!   partition comes back with it;
//! - while the ISR is smaller than `min.insync.replicas` the high watermark does not
//!   advance, so replicas leaving the ISR then still hold every committed record: they
//!   join the ELR; the ELR is emptied once the ISR is back at the minimum;
//! - a change is one `PartitionChange` record; replay bumps the epochs.

pub use super::ElectionResult;
use super::liveness::Electable;
use super::{Decision, topic_config};
use kavka_metadata::{
    MetadataImage, MetadataRecord, NO_LEADER, PartitionChangeRecord, PartitionRegistration,
    TopicId, TopicImage,
};
use kavka_model::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, PartitionId, TopicConfig};
use std::collections::BTreeSet;

/// Leadership and ISR after a change in which brokers are live.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    leader: BrokerId,
    isr: Vec<BrokerId>,
    elr: Vec<BrokerId>,
}

/// The ELR that goes with `isr`: previous ISR members (and ELR members) that left while
/// the ISR is below the minimum.
fn eligible(reg: &PartitionRegistration, isr: &[BrokerId], min_isr: usize) -> Vec<BrokerId> {
    if isr.len() >= min_isr {
        return vec![];
    }
    reg.eligible_leader_replicas
        .iter()
        .chain(&reg.isr)
        .filter(|b| !isr.contains(b))
        .fold(Vec::new(), |mut out, &b| {
            if !out.contains(&b) {
                out.push(b);
            }
            out
        })
}

/// Re-decides leader and ISR given which brokers are live (stay in the ISR) and which
/// may lead (`ready`: live and heartbeating now).
fn reelect(
    reg: &PartitionRegistration,
    live: &dyn Fn(BrokerId) -> bool,
    ready: &dyn Fn(BrokerId) -> bool,
    config: &TopicConfig,
) -> Target {
    let min_isr = config.min_insync_replicas.max(1) as usize;
    let mut isr: Vec<BrokerId> = reg.isr.iter().copied().filter(|&b| live(b)).collect();
    if isr.is_empty() && !reg.isr.is_empty() {
        // Last replica standing: it stays in the ISR so the partition returns with it.
        let keep = if reg.isr.contains(&reg.leader) {
            reg.leader
        } else {
            reg.isr[0]
        };
        isr = vec![keep];
    }
    let in_replica_order = |set: &[BrokerId]| {
        reg.replicas
            .iter()
            .copied()
            .find(|b| set.contains(b) && live(*b) && ready(*b))
    };
    let leader = if live(reg.leader) && isr.contains(&reg.leader) {
        reg.leader
    } else if let Some(b) = in_replica_order(&isr) {
        b
    } else if let Some(b) = in_replica_order(&reg.eligible_leader_replicas) {
        isr = vec![b];
        b
    } else if config.unclean_leader_election_enable
        && let Some(b) = in_replica_order(&reg.replicas)
    {
        tracing::warn!(leader = %b, "unclean leader election: committed records may be lost");
        return Target {
            leader: b,
            isr: vec![b],
            elr: vec![],
        };
    } else {
        NO_LEADER
    };
    let elr = eligible(reg, &isr, min_isr);
    Target { leader, isr, elr }
}

fn change(
    topic_id: TopicId,
    p: PartitionId,
    reg: &PartitionRegistration,
    t: Target,
) -> Option<MetadataRecord> {
    if t.leader == reg.leader && t.isr == reg.isr && t.elr == reg.eligible_leader_replicas {
        return None;
    }
    let mut c = PartitionChangeRecord::new(topic_id, p);
    c.leader = (t.leader != reg.leader).then_some(t.leader);
    c.isr = (t.isr != reg.isr).then_some(t.isr);
    c.eligible_leader_replicas = (t.elr != reg.eligible_leader_replicas).then_some(t.elr);
    Some(MetadataRecord::PartitionChange(c))
}

fn unfenced(image: &MetadataImage, b: BrokerId) -> bool {
    image.broker(b).is_some_and(|r| !r.fenced)
}

/// `test` narrowed to the brokers whose replica of `topic`-`p` can serve.
fn serving<'a>(
    electable: &'a Electable,
    topic: TopicId,
    p: PartitionId,
    test: &'a dyn Fn(BrokerId) -> bool,
) -> impl Fn(BrokerId) -> bool + 'a {
    move |b| test(b) && electable.replica_online(b, topic, p)
}

/// Re-decides one partition with `live` and `ready` narrowed to its serving replicas. A
/// replica that cannot open its log never outranks one that can, and never makes way for
/// an unclean election: while a serving ISR (or ELR) member is live, the partition waits
/// for it to be ready. Only where every live ISR/ELR member is offline does it go as if
/// none were (one of them leads, answering KAFKA_STORAGE_ERROR naming the cause, rather
/// than the partition going leaderless with LEADER_NOT_AVAILABLE, or out of sync).
fn reelect_in(
    electable: &Electable,
    t: &TopicImage,
    p: PartitionId,
    reg: &PartitionRegistration,
    live: &dyn Fn(BrokerId) -> bool,
    ready: &dyn Fn(BrokerId) -> bool,
    config: &TopicConfig,
) -> Target {
    let online = |b: BrokerId| electable.replica_online(b, t.id, p);
    if reg.replicas.iter().all(|&b| online(b)) {
        return reelect(reg, live, ready, config);
    }
    let clean_only = TopicConfig {
        unclean_leader_election_enable: false,
        ..config.clone()
    };
    let narrowed = reelect(
        reg,
        &serving(electable, t.id, p, live),
        &serving(electable, t.id, p, ready),
        &clean_only,
    );
    let serving_member = reg
        .isr
        .iter()
        .chain(&reg.eligible_leader_replicas)
        .any(|&b| live(b) && online(b));
    if narrowed.leader != NO_LEADER || serving_member {
        return narrowed;
    }
    reelect(reg, live, ready, config)
}

/// A broker reports replicas whose logs it cannot open (Kafka's failed log dir, per
/// partition): each leaves the ISR and leadership moves to a ready ISR member. Where no
/// other replica can take over, nothing changes (see [`reelect_in`]).
pub fn replicas_offline(
    image: &MetadataImage,
    broker: BrokerId,
    offline: &BTreeSet<(TopicId, PartitionId)>,
    electable: &Electable,
) -> Vec<MetadataRecord> {
    let electable = electable
        .clone()
        .with_offline_replicas(offline.iter().map(|&(t, p)| (broker, t, p)));
    let live = |b: BrokerId| unfenced(image, b);
    let ready = |b: BrokerId| electable.is_ready(b);
    let mut out = Vec::new();
    for &(topic_id, p) in offline {
        let Some(t) = image.topic(topic_id) else {
            continue;
        };
        let Some(reg) = t.partitions.get(&p) else {
            continue;
        };
        if reg.leader != broker && !reg.isr.contains(&broker) {
            continue;
        }
        let config = topic_config(image, t);
        let target = reelect_in(&electable, t, p, reg, &live, &ready, &config);
        out.extend(change(t.id, p, reg, target));
    }
    out
}

/// Brokers that went away (fenced, or re-registered by a new process): every partition
/// they led gets a new leader and they leave every ISR, in one batch of records.
pub fn brokers_gone(
    image: &MetadataImage,
    gone: &BTreeSet<BrokerId>,
    electable: &Electable,
) -> Vec<MetadataRecord> {
    let live = |b: BrokerId| !gone.contains(&b) && unfenced(image, b);
    let ready = |b: BrokerId| electable.is_ready(b);
    let mut out = Vec::new();
    for t in image.topics() {
        let config = topic_config(image, t);
        for (&p, reg) in &t.partitions {
            if !reg
                .isr
                .iter()
                .chain([&reg.leader])
                .any(|b| gone.contains(b))
            {
                continue;
            }
            let target = reelect_in(electable, t, p, reg, &live, &ready, &config);
            out.extend(change(t.id, p, reg, target));
        }
    }
    out
}

/// A broker came back (is being unfenced, by the heartbeat being decided, so it is
/// heartbeating now): offline partitions it can lead get a leader.
pub fn broker_returns(
    image: &MetadataImage,
    back: BrokerId,
    electable: &Electable,
) -> Vec<MetadataRecord> {
    let live = |b: BrokerId| b == back || unfenced(image, b);
    let ready = |b: BrokerId| b == back || electable.is_ready(b);
    let mut out = Vec::new();
    for t in image.topics() {
        let config = topic_config(image, t);
        for (&p, reg) in &t.partitions {
            if reg.has_leader() || !reg.replicas.contains(&back) {
                continue;
            }
            let target = reelect_in(electable, t, p, reg, &live, &ready, &config);
            out.extend(change(t.id, p, reg, target));
        }
    }
    out
}

/// Offline partitions that can get a leader now (a config such as
/// `unclean.leader.election.enable` changed, an election was deferred, or a live ISR
/// member started heartbeating to this controller).
pub fn elect_offline(image: &MetadataImage, electable: &Electable) -> Vec<MetadataRecord> {
    let live = |b: BrokerId| unfenced(image, b);
    let ready = |b: BrokerId| electable.is_ready(b);
    let mut out = Vec::new();
    for t in image.topics() {
        let config = topic_config(image, t);
        for (&p, reg) in t.partitions.iter().filter(|(_, r)| !r.has_leader()) {
            let target = reelect_in(electable, t, p, reg, &live, &ready, &config);
            if target.leader != NO_LEADER {
                out.extend(change(t.id, p, reg, target));
            }
        }
    }
    out
}

/// Controlled shutdown: leadership moves off `broker` and it leaves the ISRs, wherever
/// another live ISR member can take over (no partition goes offline for it). Replies
/// with how many partitions it still leads afterwards.
pub fn controlled_shutdown(
    image: &MetadataImage,
    broker: BrokerId,
    shutting_down: &BTreeSet<BrokerId>,
    electable: &Electable,
) -> Decision<usize> {
    let live = |b: BrokerId| b != broker && !shutting_down.contains(&b) && unfenced(image, b);
    let ready = |b: BrokerId| electable.is_ready(b);
    let mut records = Vec::new();
    let mut still_leading = 0;
    for t in image.topics() {
        let config = topic_config(image, t);
        for (&p, reg) in &t.partitions {
            if !reg.isr.contains(&broker) && reg.leader != broker {
                continue;
            }
            let target = reelect_in(electable, t, p, reg, &live, &ready, &config);
            if target.leader == NO_LEADER || target.isr.contains(&broker) {
                if reg.leader == broker {
                    still_leading += 1;
                }
                continue;
            }
            records.extend(change(t.id, p, reg, target));
        }
    }
    Decision {
        records,
        reply: still_leading,
    }
}

/// Moves leadership back to each partition's preferred (first) replica where it is in
/// the ISR, unfenced, heartbeating now and settled (it takes leadership from a working
/// leader: never onto a broker that may be frozen). `only`: these partitions (with a
/// result each); `None`: every partition, with results only for those that moved.
pub fn elect_preferred(
    image: &MetadataImage,
    only: Option<&[(String, PartitionId)]>,
    shutting_down: &BTreeSet<BrokerId>,
    electable: &Electable,
) -> Decision<Vec<ElectionResult>> {
    let mut records = Vec::new();
    let decide = |t: &TopicImage, p: PartitionId, reg: &PartitionRegistration| {
        let &preferred = reg.replicas.first()?;
        if reg.leader == preferred {
            return Some(Err(KafkaError::new(
                ErrorCode::ElectionNotNeeded,
                format!(
                    "{}-{p} is already led by its preferred replica {preferred}",
                    t.name
                ),
            )));
        }
        if !reg.isr.contains(&preferred)
            || !unfenced(image, preferred)
            || shutting_down.contains(&preferred)
        {
            return Some(Err(KafkaError::new(
                ErrorCode::PreferredLeaderNotAvailable,
                format!(
                    "preferred replica {preferred} of {}-{p} is not live and in the ISR {:?}",
                    t.name, reg.isr
                ),
            )));
        }
        let not_now = if !electable.replica_online(preferred, t.id, p) {
            Some("cannot open its log of the partition (reported offline)")
        } else if !electable.is_ready(preferred) {
            Some("has sent no heartbeat to the active controller lately (it may be frozen)")
        } else if !electable.is_settled(preferred) {
            Some("was unfenced too recently to take leadership from a working leader")
        } else {
            None
        };
        if let Some(why) = not_now {
            return Some(Err(KafkaError::new(
                ErrorCode::PreferredLeaderNotAvailable,
                format!("preferred replica {preferred} of {}-{p} {why}", t.name),
            )));
        }
        let mut c = PartitionChangeRecord::new(t.id, p);
        c.leader = Some(preferred);
        records.push(MetadataRecord::PartitionChange(c));
        Some(Ok(()))
    };
    let reply = each_partition(image, only, decide);
    Decision { records, reply }
}

/// Runs an election's `decide` over `only` (a result each; a partition that does not
/// exist is UNKNOWN_TOPIC_OR_PARTITION) or, with `None`, over every partition, keeping
/// the results of those that moved.
fn each_partition(
    image: &MetadataImage,
    only: Option<&[(String, PartitionId)]>,
    mut decide: impl FnMut(
        &TopicImage,
        PartitionId,
        &PartitionRegistration,
    ) -> Option<Result<(), KafkaError>>,
) -> Vec<ElectionResult> {
    let mut reply = Vec::new();
    match only {
        Some(list) => {
            for (topic, p) in list {
                let found = kavka_model::TopicName::new(topic.clone())
                    .ok()
                    .and_then(|n| image.topic_by_name(&n))
                    .and_then(|t| t.partitions.get(p).map(|reg| (t, reg)));
                let r = match found {
                    Some((t, reg)) => decide(t, *p, reg).unwrap_or(Ok(())),
                    None => Err(KafkaError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("{topic}-{p} does not exist"),
                    )),
                };
                reply.push((topic.clone(), *p, r));
            }
        }
        None => {
            for t in image.topics() {
                for (&p, reg) in &t.partitions {
                    if let Some(Ok(())) = decide(t, p, reg) {
                        reply.push((t.name.to_string(), p, Ok(())));
                    }
                }
            }
        }
    }
    reply
}

/// Unclean leader election (Kafka's ElectionType.UNCLEAN), asked for by an operator: a
/// partition without a leader gets one from its live ISR or ELR if it can, else from any
/// live replica, which then leads alone (records it never got are lost). A partition
/// that has a leader needs none (ELECTION_NOT_NEEDED); one with no live replica stays
/// leaderless (ELIGIBLE_LEADERS_NOT_AVAILABLE). `only` and `None` as for
/// [`elect_preferred`].
pub fn elect_unclean(
    image: &MetadataImage,
    only: Option<&[(String, PartitionId)]>,
    shutting_down: &BTreeSet<BrokerId>,
    electable: &Electable,
) -> Decision<Vec<ElectionResult>> {
    let live = |b: BrokerId| unfenced(image, b) && !shutting_down.contains(&b);
    let ready = |b: BrokerId| electable.is_ready(b);
    let mut records = Vec::new();
    let decide = |t: &TopicImage, p: PartitionId, reg: &PartitionRegistration| {
        if reg.leader != NO_LEADER {
            return Some(Err(KafkaError::new(
                ErrorCode::ElectionNotNeeded,
                format!("{}-{p} has a leader, broker {}", t.name, reg.leader),
            )));
        }
        let config = TopicConfig {
            unclean_leader_election_enable: true,
            ..topic_config(image, t)
        };
        let target = reelect_in(electable, t, p, reg, &live, &ready, &config);
        if target.leader == NO_LEADER {
            return Some(Err(KafkaError::new(
                ErrorCode::EligibleLeadersNotAvailable,
                format!(
                    "no replica of {}-{p} ({:?}) is live and heartbeating",
                    t.name, reg.replicas
                ),
            )));
        }
        tracing::warn!(topic = %t.name, partition = %p, leader = %target.leader, "unclean leader election asked for: records the new leader lacks are lost");
        records.extend(change(t.id, p, reg, target));
        Some(Ok(()))
    };
    let reply = each_partition(image, only, decide);
    Decision { records, reply }
}

/// An ISR change proposed by a partition's leader (Kafka's AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartition {
    pub broker: BrokerId,
    pub topic_id: TopicId,
    pub partition: PartitionId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

/// Checks an AlterPartition against the current registration (compare-and-set on the
/// partition epoch) and returns the change; the reply is the ISR that will be committed.
/// An expansion that brings every target replica of an ongoing move into the ISR also
/// completes the move ([`super::reassign`]), handing leadership to a `ready` target
/// replica if the leader is leaving.
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartition,
    shutting_down: &BTreeSet<BrokerId>,
    ready: &dyn Fn(BrokerId) -> bool,
) -> Decision<Result<Vec<BrokerId>, KafkaError>> {
    let refuse = |code, message: String| Decision {
        records: vec![],
        reply: Err(KafkaError::new(code, message)),
    };
    let Some(t) = image.topic(req.topic_id) else {
        return refuse(
            ErrorCode::UnknownTopicId,
            format!("topic id {} does not exist", req.topic_id),
        );
    };
    let Some(reg) = t.partitions.get(&req.partition) else {
        return refuse(
            ErrorCode::UnknownTopicOrPartition,
            format!("{}-{} does not exist", t.name, req.partition),
        );
    };
    let tp = format!("{}-{}", t.name, req.partition);
    if reg.leader != req.broker {
        return refuse(
            ErrorCode::NotLeaderOrFollower,
            format!(
                "broker {} does not lead {tp} (broker {} does)",
                req.broker, reg.leader
            ),
        );
    }
    if req.leader_epoch != reg.leader_epoch {
        return refuse(
            ErrorCode::FencedLeaderEpoch,
            format!(
                "{tp}: leader epoch {} is not the current {}",
                req.leader_epoch, reg.leader_epoch
            ),
        );
    }
    if req.partition_epoch != reg.partition_epoch {
        return refuse(
            ErrorCode::InvalidUpdateVersion,
            format!(
                "{tp}: partition epoch {} is not the current {}",
                req.partition_epoch, reg.partition_epoch
            ),
        );
    }
    let distinct: BTreeSet<BrokerId> = req.new_isr.iter().copied().collect();
    if !req.new_isr.contains(&req.broker)
        || distinct.len() != req.new_isr.len()
        || req.new_isr.iter().any(|b| !reg.replicas.contains(b))
    {
        return refuse(
            ErrorCode::InvalidRequest,
            format!(
                "{tp}: ISR {:?} must be distinct replicas of {:?} including the leader",
                req.new_isr, reg.replicas
            ),
        );
    }
    if let Some(b) = req
        .new_isr
        .iter()
        .find(|b| !reg.isr.contains(b) && (!unfenced(image, **b) || shutting_down.contains(b)))
    {
        return refuse(
            ErrorCode::IneligibleReplica,
            format!("{tp}: broker {b} is fenced or shutting down and cannot join the ISR"),
        );
    }
    // Keep replica order, so elections pick the preferred live member first.
    let isr: Vec<BrokerId> = reg
        .replicas
        .iter()
        .copied()
        .filter(|b| req.new_isr.contains(b))
        .collect();
    let min_isr = topic_config(image, t).min_insync_replicas.max(1) as usize;
    let target = Target {
        leader: reg.leader,
        elr: eligible(reg, &isr, min_isr),
        isr: isr.clone(),
    };
    if reg.is_reassigning() {
        let next = PartitionRegistration {
            isr: target.isr.clone(),
            eligible_leader_replicas: target.elr.clone(),
            ..reg.clone()
        };
        let ready = |b: BrokerId| ready(b) && unfenced(image, b) && !shutting_down.contains(&b);
        if let Some(done) = super::reassign::complete(&next, &ready) {
            tracing::info!(partition = %tp, replicas = ?done.replicas, leader = %done.leader, "reassignment complete");
            return Decision {
                records: super::reassign::change(t.id, req.partition, reg, &done)
                    .into_iter()
                    .collect(),
                reply: Ok(done.isr),
            };
        }
    }
    Decision {
        records: change(t.id, req.partition, reg, target)
            .into_iter()
            .collect(),
        reply: Ok(isr),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use kavka_metadata::{ConfigResource, PartitionRecord, RegisterBrokerRecord, TopicRecord};
    use kavka_model::TopicName;

    fn b(id: i32) -> BrokerId {
        BrokerId(id)
    }

    pub(in crate::control) fn bs(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|&i| b(i)).collect()
    }

    pub(in crate::control) const TOPIC: TopicId = TopicId(uuid::Uuid::from_u128(7));

    /// Brokers 1..=n (fenced as listed) and topic "t" with one partition.
    pub(in crate::control) fn image(
        brokers: i32,
        fenced: &[i32],
        replicas: &[i32],
        isr: &[i32],
        leader: i32,
        configs: &[(&str, &str)],
    ) -> MetadataImage {
        let mut records: Vec<MetadataRecord> = (1..=brokers)
            .map(|id| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: b(id),
                    incarnation_id: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    fenced: fenced.contains(&id),
                })
            })
            .collect();
        records.push(MetadataRecord::Topic(TopicRecord {
            name: TopicName::new("t").unwrap(),
            topic_id: TOPIC,
        }));
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: TOPIC,
            partition: PartitionId(0),
            replicas: bs(replicas),
            isr: bs(isr),
            leader: b(leader),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }));
        for (k, v) in configs {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(TopicName::new("t").unwrap()),
                name: k.to_string(),
                value: Some(v.to_string()),
            });
        }
        let (img, _, refused) = MetadataImage::empty().replay(1, &records);
        assert!(refused.is_empty(), "{refused:?}");
        img
    }

    fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> PartitionRegistration {
        let (next, _, refused) = img.replay(img.offset + 1, records);
        assert!(refused.is_empty(), "{refused:?}");
        next.partition(TOPIC, PartitionId(0)).unwrap().clone()
    }

    /// Every broker heartbeating and settled.
    fn any() -> Electable {
        Electable::new((1..=9).map(BrokerId), (1..=9).map(BrokerId))
    }

    fn gone(ids: &[i32]) -> BTreeSet<BrokerId> {
        ids.iter().map(|&i| b(i)).collect()
    }

    #[test]
    fn elections_when_brokers_go() {
        // (case, replicas, isr, leader, gone, configs) -> (leader, isr, elr)
        type Case<'a> = (
            &'a str,
            &'a [i32],
            &'a [i32],
            i32,
            &'a [i32],
            &'a [(&'a str, &'a str)],
            i32,
            &'a [i32],
            &'a [i32],
        );
        let cases: &[Case] = &[
            (
                "leader dies: first live ISR member in replica order",
                &[1, 2, 3],
                &[3, 1, 2],
                1,
                &[1],
                &[],
                2,
                &[3, 2],
                &[],
            ),
            (
                "follower dies: leader stays, ISR shrinks",
                &[1, 2, 3],
                &[1, 2, 3],
                1,
                &[3],
                &[],
                1,
                &[1, 2],
                &[],
            ),
            (
                "out-of-ISR replica is never elected",
                &[1, 2, 3],
                &[1, 2],
                1,
                &[1],
                &[],
                2,
                &[2],
                &[],
            ),
            (
                "last replica standing stays in the ISR, offline",
                &[1, 2, 3],
                &[1],
                1,
                &[1],
                &[],
                -1,
                &[1],
                &[],
            ),
            (
                "unclean election picks a live replica",
                &[1, 2, 3],
                &[1],
                1,
                &[1],
                &[("unclean.leader.election.enable", "true")],
                2,
                &[2],
                &[],
            ),
            (
                "below min ISR the leaver joins the ELR",
                &[1, 2, 3],
                &[1, 2],
                1,
                &[2],
                &[("min.insync.replicas", "2")],
                1,
                &[1],
                &[2],
            ),
        ];
        for &(name, replicas, isr, leader, dead, configs, want_leader, want_isr, want_elr) in cases
        {
            let img = image(3, &[], replicas, isr, leader, configs);
            let reg = apply(&img, &brokers_gone(&img, &gone(dead), &any()));
            assert_eq!(reg.leader, b(want_leader), "{name}");
            assert_eq!(reg.isr, bs(want_isr), "{name}");
            assert_eq!(reg.eligible_leader_replicas, bs(want_elr), "{name}");
            if want_leader != leader {
                assert_eq!(reg.leader_epoch, LeaderEpoch(1), "{name}: epoch bumps");
            }
        }
    }

    #[test]
    fn untouched_partitions_get_no_records() {
        let img = image(3, &[], &[1, 2, 3], &[1, 2], 1, &[]);
        assert!(brokers_gone(&img, &gone(&[3]), &any()).is_empty());
    }

    #[test]
    fn eligible_replica_leads_when_the_isr_is_gone() {
        // min ISR 2: ISR [1,2] → 2 dies (ELR [2]) → 1 dies (offline) → 2 returns.
        let cfg = [("min.insync.replicas", "2")];
        let img = image(3, &[3], &[1, 2, 3], &[1, 2], 1, &cfg);
        let (img, ..) = img.replay(10, &brokers_gone(&img, &gone(&[2]), &any()));
        let (img, ..) = img.replay(
            11,
            &[MetadataRecord::FenceBroker {
                broker_id: b(2),
                incarnation_id: uuid::Uuid::from_u128(2),
            }],
        );
        let (img, ..) = img.replay(12, &brokers_gone(&img, &gone(&[1]), &any()));
        let reg = img.partition(TOPIC, PartitionId(0)).unwrap();
        assert_eq!((reg.leader, reg.isr.clone()), (NO_LEADER, bs(&[1])));
        assert_eq!(reg.eligible_leader_replicas, bs(&[2]));
        let (img, ..) = img.replay(
            13,
            &[MetadataRecord::FenceBroker {
                broker_id: b(1),
                incarnation_id: uuid::Uuid::from_u128(1),
            }],
        );
        // Broker 3 (never in the ISR) returning changes nothing; broker 2 leads.
        assert!(broker_returns(&img, b(3), &any()).is_empty());
        let reg = apply(&img, &broker_returns(&img, b(2), &any()));
        assert_eq!((reg.leader, reg.isr.clone()), (b(2), bs(&[2])));
        assert_eq!(
            reg.eligible_leader_replicas,
            bs(&[1]),
            "1 held every committed record too"
        );
    }

    #[test]
    fn offline_partition_returns_with_its_last_isr_member() {
        let img = image(3, &[1], &[1, 2, 3], &[1], -1, &[]);
        assert!(
            broker_returns(&img, b(2), &any()).is_empty(),
            "2 may lack records"
        );
        let reg = apply(&img, &broker_returns(&img, b(1), &any()));
        assert_eq!((reg.leader, reg.isr.clone()), (b(1), bs(&[1])));
    }

    #[test]
    fn enabling_unclean_election_elects_offline_partitions() {
        let img = image(3, &[1], &[1, 2, 3], &[1], -1, &[]);
        assert!(elect_offline(&img, &any()).is_empty());
        let unclean = image(
            3,
            &[1],
            &[1, 2, 3],
            &[1],
            -1,
            &[("unclean.leader.election.enable", "true")],
        );
        let reg = apply(&unclean, &elect_offline(&unclean, &any()));
        assert_eq!((reg.leader, reg.isr.clone()), (b(2), bs(&[2])));
    }

    #[test]
    fn controlled_shutdown_moves_leadership_but_never_offlines() {
        let img = image(3, &[], &[1, 2, 3], &[1, 2, 3], 1, &[]);
        let d = controlled_shutdown(&img, b(1), &BTreeSet::new(), &any());
        assert_eq!(d.reply, 0);
        let reg = apply(&img, &d.records);
        assert_eq!((reg.leader, reg.isr.clone()), (b(2), bs(&[2, 3])));

        let alone = image(3, &[], &[1, 2, 3], &[1], 1, &[]);
        let d = controlled_shutdown(&alone, b(1), &BTreeSet::new(), &any());
        assert_eq!((d.records.len(), d.reply), (0, 1));
    }

    #[test]
    fn preferred_election() {
        let img = image(3, &[], &[1, 2, 3], &[1, 2, 3], 2, &[]);
        let d = elect_preferred(&img, None, &BTreeSet::new(), &any());
        assert_eq!(apply(&img, &d.records).leader, b(1));
        assert_eq!(d.reply.len(), 1);
        let d = elect_preferred(&img, None, &gone(&[1]), &any());
        assert!(
            d.records.is_empty(),
            "a broker shutting down is not elected"
        );

        let not_in_isr = image(3, &[], &[1, 2, 3], &[2, 3], 2, &[]);
        let d = elect_preferred(
            &not_in_isr,
            Some(&[("t".into(), PartitionId(0))]),
            &BTreeSet::new(),
            &any(),
        );
        let code = d.reply[0].2.as_ref().unwrap_err().code;
        assert_eq!(code, ErrorCode::PreferredLeaderNotAvailable);
        let d = elect_preferred(
            &img,
            Some(&[("nope".into(), PartitionId(0))]),
            &BTreeSet::new(),
            &any(),
        );
        assert_eq!(
            d.reply[0].2.as_ref().unwrap_err().code,
            ErrorCode::UnknownTopicOrPartition
        );
    }

    #[test]
    fn unclean_election() {
        let t0 = || Some(vec![("t".to_string(), PartitionId(0))]);
        // (case, brokers fenced, replicas, isr, leader, gone) -> Ok(leader, isr) or the error
        type Case<'a> = (
            &'a str,
            &'a [i32],
            &'a [i32],
            &'a [i32],
            i32,
            &'a [i32],
            Result<(i32, &'a [i32]), ErrorCode>,
        );
        let cases: &[Case] = &[
            (
                "a leader needs none",
                &[],
                &[1, 2, 3],
                &[1, 2, 3],
                1,
                &[],
                Err(ErrorCode::ElectionNotNeeded),
            ),
            (
                "the last ISR member is down: a live out-of-sync replica leads alone",
                &[1],
                &[1, 2, 3],
                &[1],
                -1,
                &[],
                Ok((2, &[2])),
            ),
            (
                "first live replica in replica order",
                &[1, 2],
                &[1, 2, 3],
                &[1],
                -1,
                &[],
                Ok((3, &[3])),
            ),
            (
                "a broker shutting down is not elected",
                &[1],
                &[1, 2, 3],
                &[1],
                -1,
                &[2],
                Ok((3, &[3])),
            ),
            (
                "no live replica",
                &[1, 2, 3],
                &[1, 2, 3],
                &[1],
                -1,
                &[],
                Err(ErrorCode::EligibleLeadersNotAvailable),
            ),
        ];
        for (case, fenced, replicas, isr, leader, gone_ids, want) in cases {
            let img = image(3, fenced, replicas, isr, *leader, &[]);
            let d = elect_unclean(&img, t0().as_deref(), &gone(gone_ids), &any());
            assert_eq!(d.reply.len(), 1, "{case}");
            match want {
                Ok((l, want_isr)) => {
                    assert!(d.reply[0].2.is_ok(), "{case}: {:?}", d.reply);
                    let reg = apply(&img, &d.records);
                    assert_eq!(
                        (reg.leader, reg.isr.clone()),
                        (b(*l), bs(want_isr)),
                        "{case}"
                    );
                }
                Err(code) => {
                    assert!(d.records.is_empty(), "{case}");
                    assert_eq!(d.reply[0].2.as_ref().unwrap_err().code, *code, "{case}");
                }
            }
        }
        // Every partition: only the leaderless ones that found a leader are reported.
        let img = image(3, &[1], &[1, 2, 3], &[1], -1, &[]);
        let d = elect_unclean(&img, None, &BTreeSet::new(), &any());
        assert_eq!(d.reply, vec![("t".to_string(), PartitionId(0), Ok(()))]);
        let unknown = elect_unclean(
            &img,
            Some(&[("nope".into(), PartitionId(0))]),
            &BTreeSet::new(),
            &any(),
        );
        assert_eq!(
            unknown.reply[0].2.as_ref().unwrap_err().code,
            ErrorCode::UnknownTopicOrPartition
        );
    }

    /// Issue 22: elections hand leadership only to brokers heartbeating now; the
    /// preferred-leader election, which displaces a working leader, only to settled ones.
    #[test]
    fn elections_pick_only_heartbeating_brokers() {
        let e = |ready: &[i32], settled: &[i32]| Electable::new(bs(ready), bs(settled));
        // (case, isr, leader, gone, electable) -> (leader, isr)
        type Case<'a> = (
            &'a str,
            &'a [i32],
            i32,
            &'a [i32],
            Electable,
            i32,
            &'a [i32],
        );
        let cases: Vec<Case> = vec![
            (
                "first ISR member silent (frozen, not yet fenced): the next one leads",
                &[1, 2, 3],
                1,
                &[1],
                e(&[3], &[3]),
                3,
                &[2, 3],
            ),
            (
                "no ISR member heartbeating: offline, ISR kept for when one is",
                &[1, 2],
                1,
                &[1],
                e(&[3], &[3]),
                -1,
                &[2],
            ),
            (
                "a silent follower leaving nothing to elect keeps the leader",
                &[1, 2, 3],
                1,
                &[3],
                e(&[], &[]),
                1,
                &[1, 2],
            ),
        ];
        for (name, isr, leader, dead, electable, want_leader, want_isr) in cases {
            let img = image(3, &[], &[1, 2, 3], isr, leader, &[]);
            let reg = apply(&img, &brokers_gone(&img, &gone(dead), &electable));
            assert_eq!(reg.leader, b(want_leader), "{name}");
            assert_eq!(reg.isr, bs(want_isr), "{name}");
        }

        // The offline partition gets its leader once an ISR member heartbeats.
        let img = image(3, &[1], &[1, 2, 3], &[2], -1, &[]);
        assert!(elect_offline(&img, &e(&[3], &[3])).is_empty());
        let reg = apply(&img, &elect_offline(&img, &e(&[2], &[])));
        assert_eq!(
            (reg.leader, reg.isr.clone()),
            (b(2), bs(&[2])),
            "ready suffices offline"
        );
        // A returning broker is heartbeating by definition.
        let img = image(3, &[1], &[1, 2, 3], &[1], -1, &[]);
        let reg = apply(&img, &broker_returns(&img, b(1), &e(&[], &[])));
        assert_eq!(reg.leader, b(1));
        // Controlled shutdown moves leadership only to a heartbeating ISR member.
        let img = image(3, &[], &[1, 2, 3], &[1, 2, 3], 1, &[]);
        let d = controlled_shutdown(&img, b(1), &BTreeSet::new(), &e(&[3], &[]));
        assert_eq!(apply(&img, &d.records).leader, b(3));
        let d = controlled_shutdown(&img, b(1), &BTreeSet::new(), &e(&[], &[]));
        assert_eq!(
            (d.records.len(), d.reply),
            (0, 1),
            "stays until someone can take it"
        );
    }

    #[test]
    fn preferred_election_needs_a_heartbeating_settled_replica() {
        let img = image(3, &[], &[1, 2, 3], &[1, 2, 3], 2, &[]);
        let only = [("t".to_string(), PartitionId(0))];
        // (case, ready, settled) -> moved
        let cases: &[(&str, &[i32], &[i32], bool)] = &[
            (
                "frozen preferred replica (silent, unfenced, in the ISR)",
                &[2, 3],
                &[2, 3],
                false,
            ),
            (
                "heartbeating but unfenced a moment ago",
                &[1, 2, 3],
                &[2, 3],
                false,
            ),
            ("heartbeating and settled", &[1, 2, 3], &[1, 2, 3], true),
        ];
        for &(name, ready, settled, moved) in cases {
            let electable = Electable::new(bs(ready), bs(settled));
            for asked in [None, Some(&only[..])] {
                let d = elect_preferred(&img, asked, &BTreeSet::new(), &electable);
                assert_eq!(!d.records.is_empty(), moved, "{name}");
                if asked.is_some() {
                    let r = &d.reply[0].2;
                    match moved {
                        true => assert!(r.is_ok(), "{name}: {r:?}"),
                        false => assert_eq!(
                            r.as_ref().unwrap_err().code,
                            ErrorCode::PreferredLeaderNotAvailable,
                            "{name}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn alter_partition_is_compare_and_set() {
        let img = image(3, &[3], &[1, 2, 3], &[1, 2, 3], 1, &[]);
        let req = |broker, leader_epoch, partition_epoch, isr: &[i32]| AlterPartition {
            broker: b(broker),
            topic_id: TOPIC,
            partition: PartitionId(0),
            leader_epoch: LeaderEpoch(leader_epoch),
            partition_epoch,
            new_isr: bs(isr),
        };
        let none = BTreeSet::new();
        let d = alter_partition(&img, &req(1, 0, 0, &[2, 1]), &none, &|_| true);
        assert_eq!(d.reply, Ok(bs(&[1, 2])), "kept in replica order");
        let reg = apply(&img, &d.records);
        assert_eq!(
            (reg.isr.clone(), reg.partition_epoch, reg.leader_epoch),
            (bs(&[1, 2]), 1, LeaderEpoch(0))
        );

        for (r, code) in [
            (req(2, 0, 0, &[1, 2]), ErrorCode::NotLeaderOrFollower),
            (req(1, 1, 0, &[1, 2]), ErrorCode::FencedLeaderEpoch),
            (req(1, 0, 5, &[1, 2]), ErrorCode::InvalidUpdateVersion),
            (req(1, 0, 0, &[2]), ErrorCode::InvalidRequest),
            (req(1, 0, 0, &[1, 4]), ErrorCode::InvalidRequest),
            (req(1, 0, 0, &[1, 1]), ErrorCode::InvalidRequest),
        ] {
            let d = alter_partition(&img, &r, &none, &|_| true);
            assert_eq!(d.reply.unwrap_err().code, code, "{r:?}");
            assert!(d.records.is_empty());
        }
        // Adding a fenced broker back is refused.
        let shrunk = image(3, &[3], &[1, 2, 3], &[1, 2], 1, &[]);
        let d = alter_partition(&shrunk, &req(1, 0, 0, &[1, 2, 3]), &none, &|_| true);
        assert_eq!(d.reply.unwrap_err().code, ErrorCode::IneligibleReplica);
    }

    #[test]
    fn replicas_reported_offline_leave_the_isr_and_leadership() {
        // (case, isr, leader, min isr, ready) -> (leader, isr, elr); broker 1's replica of
        // partition 0 is reported offline.
        type Case<'a> = (
            &'a str,
            &'a [i32],
            i32,
            &'a str,
            &'a [i32],
            i32,
            &'a [i32],
            &'a [i32],
        );
        const ALL: &[i32] = &[1, 2, 3];
        let cases: &[Case] = &[
            (
                "offline leader: the next ISR member in replica order leads",
                &[1, 2, 3],
                1,
                "1",
                ALL,
                2,
                &[2, 3],
                &[],
            ),
            (
                "offline follower leaves the ISR, the leader stays",
                &[1, 2, 3],
                2,
                "1",
                ALL,
                2,
                &[2, 3],
                &[],
            ),
            (
                "last ISR member offline: no one can take over, nothing changes",
                &[1],
                1,
                "1",
                ALL,
                1,
                &[1],
                &[],
            ),
            (
                "the other ISR member not ready yet: leaderless until it is",
                &[1, 3],
                1,
                "1",
                &[1],
                -1,
                &[3],
                &[],
            ),
            (
                "below min ISR the offline replica joins the ELR",
                &[1, 2],
                1,
                "2",
                ALL,
                2,
                &[2],
                &[1],
            ),
            (
                "a replica out of the ISR changes nothing",
                &[2, 3],
                2,
                "1",
                ALL,
                2,
                &[2, 3],
                &[],
            ),
        ];
        let offline: BTreeSet<(TopicId, PartitionId)> = [(TOPIC, PartitionId(0))].into();
        for &(name, isr, leader, min_isr, ready, want_leader, want_isr, want_elr) in cases {
            let ready = Electable::new(bs(ready), bs(ready));
            let img = image(
                3,
                &[],
                &[1, 2, 3],
                isr,
                leader,
                &[("min.insync.replicas", min_isr)],
            );
            let records = replicas_offline(&img, b(1), &offline, &ready);
            let reg = apply(&img, &records);
            assert_eq!(reg.leader, b(want_leader), "{name}");
            assert_eq!(reg.isr, bs(want_isr), "{name}");
            assert_eq!(reg.eligible_leader_replicas, bs(want_elr), "{name}");
            // Reported again, nothing more changes.
            let (next, _, _) = img.replay(img.offset + 1, &records);
            assert!(
                replicas_offline(&next, b(1), &offline, &ready).is_empty(),
                "{name}: a repeated report changes nothing"
            );
        }
        // Another partition of the same broker is untouched.
        let img = image(3, &[], &[1, 2, 3], &[1, 2, 3], 1, &[]);
        let elsewhere: BTreeSet<(TopicId, PartitionId)> = [(TOPIC, PartitionId(7))].into();
        assert!(replicas_offline(&img, b(1), &elsewhere, &any()).is_empty());

        // With unclean elections on, an offline last ISR member still leads: its log is
        // whole, and an out-of-sync replica taking over would lose committed records.
        let img = image(
            3,
            &[],
            &[1, 2, 3],
            &[1],
            1,
            &[("unclean.leader.election.enable", "true")],
        );
        assert!(replicas_offline(&img, b(1), &offline, &any()).is_empty());
        // A serving ISR member that is not ready yet is waited for, not passed over for
        // the offline one.
        let img = image(3, &[], &[1, 2, 3], &[1, 2], -1, &[]);
        let off = any().with_offline_replicas([(b(1), TOPIC, PartitionId(0))]);
        let waiting = Electable::new(bs(&[1]), bs(&[1])).with_offline_replicas([(
            b(1),
            TOPIC,
            PartitionId(0),
        )]);
        assert!(elect_offline(&img, &waiting).is_empty());
        assert_eq!(apply(&img, &elect_offline(&img, &off)).leader, b(2));

        // An election prefers a replica that can serve; only where none is left does an
        // offline one lead (answering with the cause). The preferred election never
        // hands leadership to one.
        assert_eq!(apply(&img, &broker_returns(&img, b(1), &off)).leader, b(2));
        let img = image(3, &[], &[1, 2, 3], &[1], -1, &[]);
        assert_eq!(apply(&img, &elect_offline(&img, &off)).leader, b(1));
        let img = image(3, &[], &[1, 2, 3], &[1, 2], 2, &[]);
        let d = elect_preferred(
            &img,
            Some(&[("t".into(), PartitionId(0))]),
            &gone(&[]),
            &off,
        );
        assert!(d.records.is_empty());
        let err = d.reply[0].2.clone().unwrap_err();
        assert_eq!(err.code, ErrorCode::PreferredLeaderNotAvailable);
        assert!(err.message.contains("reported offline"), "{}", err.message);
    }
}
