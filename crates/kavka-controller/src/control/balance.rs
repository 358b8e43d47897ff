//! The balancer's planner: which partitions to move where so that no replica stays on a
//! broker being drained and replicas and preferred leaders are spread evenly over the
//! brokers that may host them, with as few moves as it can.
//!
//! Rules:
//! - a drained broker's replica is replaced in place (the preferred leader's slot stays
//!   the preferred leader's) by the host with the fewest replicas whose rack the
//!   partition does not use yet; a partition with no such host is reported as stuck, never
//!   moved half-way;
//! - then, while the most and least loaded hosts differ by more than one replica, one
//!   replica moves from the most to the least loaded, on a partition that does not lose a
//!   rack by it, preferring partitions the plan moves already (a move changes a partition
//!   once, however many of its replicas change);
//! - then preferred leaders (first replicas) are evened the same way by reordering, which
//!   costs no data movement; the controller's preferred-leader election moves leadership;
//! - partitions already moving are left alone, but count for the brokers they move to;
//! - deterministic: ties go to the lower broker id and the earlier partition.
//!
//! Pure: a layout in, a plan out; no image, no clock, no I/O. [`layout`] reads an image.

use kavka_metadata::MetadataImage;
pub use kavka_model::admin::{BalancePlan as Plan, PlannedMove, StuckPartition};
use kavka_model::{BrokerId, PartitionId};
use std::collections::{BTreeMap, BTreeSet};

/// One partition as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLayout {
    pub topic: String,
    pub partition: PartitionId,
    /// The replicas, preferred leader first (for a moving partition: its target).
    pub replicas: Vec<BrokerId>,
    /// Already moving: not planned again.
    pub moving: bool,
}

/// What the planner may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Goals {
    /// Brokers that may hold replicas, with their racks.
    pub hosts: BTreeMap<BrokerId, Option<String>>,
    /// Brokers every replica must leave (decommissioned, or down too long).
    pub drain: BTreeSet<BrokerId>,
    /// Also even replicas and preferred leaders over the hosts (else only drain).
    pub even: bool,
    /// Stop evening once the plan moves this many partitions (the executor asks only
    /// for what it can start: each step scans every partition). Drains are never cut.
    pub max_moves: usize,
}

/// Every partition of `image` in topic-name and partition order.
pub fn layout(image: &MetadataImage) -> Vec<PartitionLayout> {
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|(&partition, reg)| PartitionLayout {
                    topic: t.name.to_string(),
                    partition,
                    replicas: reg.target_replicas(),
                    moving: reg.is_reassigning(),
                })
        })
        .collect()
}

/// The plan for `partitions` under `goals`.
pub fn plan(partitions: &[PartitionLayout], goals: &Goals) -> Plan {
    let mut planned: Vec<Vec<BrokerId>> = partitions.iter().map(|p| p.replicas.clone()).collect();
    let mut stuck = Vec::new();
    let mut drained = BTreeSet::new();
    let mut load = Load::new(&goals.hosts, &planned);

    for (i, p) in partitions.iter().enumerate() {
        if p.moving || !p.replicas.iter().any(|b| goals.drain.contains(b)) {
            continue;
        }
        let mut next = planned[i].clone();
        let mut why = None;
        for slot in 0..next.len() {
            if !goals.drain.contains(&next[slot]) {
                continue;
            }
            let used = racks(&goals.hosts, &next, slot);
            let pick = goals
                .hosts
                .iter()
                .filter(|(b, _)| !next.contains(b) && !goals.drain.contains(b))
                .min_by_key(|&(b, rack)| {
                    let taken = rack.is_some() && used.contains(&rack.as_ref());
                    (taken, load.replicas(*b), *b)
                })
                .map(|(b, _)| *b);
            match pick {
                Some(b) => next[slot] = b,
                None => {
                    why = Some(format!(
                        "no broker left to take its replica from broker {} (replicas [{}], {} broker(s) may host)",
                        next[slot],
                        list(&p.replicas),
                        goals.hosts.len()
                    ));
                    break;
                }
            }
        }
        match why {
            Some(reason) => stuck.push(StuckPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                reason,
            }),
            None => {
                load.replace(&planned[i], &next);
                planned[i] = next;
                drained.insert(i);
            }
        }
    }

    if goals.even && goals.hosts.len() > 1 {
        even_replicas(partitions, goals, &mut planned, &mut load);
        even_leaders(partitions, goals.max_moves, &mut planned, &mut load);
    }

    let changed = |i: &usize| planned[*i] != partitions[*i].replicas;
    let order = drained
        .iter()
        .copied()
        .chain((0..partitions.len()).filter(|i| !drained.contains(i)));
    let moves = order
        .filter(changed)
        .map(|i| PlannedMove {
            topic: partitions[i].topic.clone(),
            partition: partitions[i].partition,
            from: partitions[i].replicas.clone(),
            to: planned[i].clone(),
        })
        .collect();
    Plan {
        moves,
        stuck,
        balanced: false,
    }
}

/// Moves replicas from the most to the least loaded hosts until they differ by one.
fn even_replicas(
    partitions: &[PartitionLayout],
    goals: &Goals,
    planned: &mut [Vec<BrokerId>],
    load: &mut Load,
) {
    let rack_of = |b: BrokerId| goals.hosts.get(&b).and_then(|r| r.as_ref());
    // Each step moves one replica closer to even: bounded by the replica count.
    let steps: usize = planned.iter().map(Vec::len).sum();
    for _ in 0..steps {
        if moved(partitions, planned) >= goals.max_moves {
            break;
        }
        let by_load: Vec<(usize, BrokerId)> =
            goals.hosts.keys().map(|&b| (load.replicas(b), b)).collect();
        let fits = |list: &[BrokerId], hi: BrokerId, lo: BrokerId| {
            list.contains(&hi) && !list.contains(&lo) && {
                let slot = list.iter().position(|&b| b == hi).unwrap_or(0);
                let others = racks(&goals.hosts, list, slot);
                // Never fewer distinct racks than before.
                !others.contains(&rack_of(lo)) || others.contains(&rack_of(hi))
            }
        };
        let Some((i, hi, lo)) = pick(by_load, partitions, planned, fits) else {
            break;
        };
        let mut next = planned[i].clone();
        if let Some(slot) = next.iter().position(|&b| b == hi) {
            next[slot] = lo;
        }
        load.replace(&planned[i], &next);
        planned[i] = next;
    }
}

/// Reorders replicas until preferred leaders differ by at most one between hosts.
fn even_leaders(
    partitions: &[PartitionLayout],
    max_moves: usize,
    planned: &mut [Vec<BrokerId>],
    load: &mut Load,
) {
    for _ in 0..planned.len() {
        if moved(partitions, planned) >= max_moves {
            break;
        }
        let by_load: Vec<(usize, BrokerId)> = load.hosts().map(|b| (load.leaders(b), b)).collect();
        let fits = |list: &[BrokerId], hi: BrokerId, lo: BrokerId| {
            list.first() == Some(&hi) && list.contains(&lo)
        };
        let Some((i, _, lo)) = pick(by_load, partitions, planned, fits) else {
            break;
        };
        let mut next = planned[i].clone();
        if let Some(slot) = next.iter().position(|&b| b == lo) {
            next.swap(0, slot);
        }
        load.replace(&planned[i], &next);
        planned[i] = next;
    }
}

/// How many partitions the plan moves so far.
fn moved(partitions: &[PartitionLayout], planned: &[Vec<BrokerId>]) -> usize {
    partitions
        .iter()
        .zip(planned)
        .filter(|(p, to)| p.replicas != **to)
        .count()
}

/// The next step: a partition that `fits` a change from a host `hi` to a host `lo` whose
/// loads differ by more than one, the most loaded `hi` first, then the least loaded `lo`,
/// preferring a partition the plan moves already (it costs no extra move).
fn pick(
    mut by_load: Vec<(usize, BrokerId)>,
    partitions: &[PartitionLayout],
    planned: &[Vec<BrokerId>],
    fits: impl Fn(&[BrokerId], BrokerId, BrokerId) -> bool,
) -> Option<(usize, BrokerId, BrokerId)> {
    by_load.sort();
    by_load.iter().rev().find_map(|&(hi_n, hi)| {
        by_load
            .iter()
            .take_while(|&&(lo_n, _)| lo_n + 1 < hi_n)
            .find_map(|&(_, lo)| {
                let all: Vec<usize> = (0..planned.len())
                    .filter(|&i| !partitions[i].moving && fits(&planned[i], hi, lo))
                    .collect();
                all.iter()
                    .copied()
                    .find(|&i| planned[i] != partitions[i].replicas)
                    .or(all.first().copied())
                    .map(|i| (i, hi, lo))
            })
    })
}

/// The racks of `list`'s brokers but the one at `skip`.
fn racks<'h>(
    hosts: &'h BTreeMap<BrokerId, Option<String>>,
    list: &[BrokerId],
    skip: usize,
) -> BTreeSet<Option<&'h String>> {
    list.iter()
        .enumerate()
        .filter(|&(i, _)| i != skip)
        .map(|(_, b)| hosts.get(b).and_then(|r| r.as_ref()))
        .collect()
}

/// Replicas and preferred leaders per host, as planned so far.
struct Load {
    per_host: BTreeMap<BrokerId, (usize, usize)>,
}

impl Load {
    fn new(hosts: &BTreeMap<BrokerId, Option<String>>, planned: &[Vec<BrokerId>]) -> Self {
        let mut load = Self {
            per_host: hosts.keys().map(|&b| (b, (0, 0))).collect(),
        };
        for list in planned {
            load.add(list, 1);
        }
        load
    }

    fn add(&mut self, list: &[BrokerId], sign: isize) {
        for (i, b) in list.iter().enumerate() {
            if let Some((replicas, leaders)) = self.per_host.get_mut(b) {
                *replicas = replicas.saturating_add_signed(sign);
                if i == 0 {
                    *leaders = leaders.saturating_add_signed(sign);
                }
            }
        }
    }

    fn replace(&mut self, old: &[BrokerId], new: &[BrokerId]) {
        self.add(old, -1);
        self.add(new, 1);
    }

    fn replicas(&self, b: BrokerId) -> usize {
        self.per_host.get(&b).map_or(0, |l| l.0)
    }

    fn leaders(&self, b: BrokerId) -> usize {
        self.per_host.get(&b).map_or(0, |l| l.1)
    }

    fn hosts(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.per_host.keys().copied()
    }
}

/// "4,2,3".
fn list(brokers: &[BrokerId]) -> String {
    brokers
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
