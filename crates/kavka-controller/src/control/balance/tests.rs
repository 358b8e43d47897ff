use super::*;

fn bs(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

/// Partitions "t-0", "t-1", ... with these replica lists (a list starting with 0 is
/// moving: the 0 is dropped).
fn parts(lists: &[&[i32]]) -> Vec<PartitionLayout> {
    lists
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let moving = l.first() == Some(&0);
            PartitionLayout {
                topic: "t".into(),
                partition: PartitionId(i as i32),
                replicas: bs(if moving { &l[1..] } else { l }),
                moving,
            }
        })
        .collect()
}

/// Hosts `ids`, racks by position from `racks` (None where it runs out).
fn goals(ids: &[i32], racks: &[&str], drain: &[i32], even: bool) -> Goals {
    Goals {
        hosts: ids
            .iter()
            .enumerate()
            .map(|(i, &b)| (BrokerId(b), racks.get(i).map(|r| r.to_string())))
            .collect(),
        drain: bs(drain).into_iter().collect(),
        even,
        max_moves: usize::MAX,
    }
}

/// The replica lists after applying the plan.
fn after(p: &[PartitionLayout], plan: &Plan) -> Vec<Vec<i32>> {
    p.iter()
        .map(|part| {
            let to = plan
                .moves
                .iter()
                .find(|m| m.partition == part.partition)
                .map_or(&part.replicas, |m| &m.to);
            to.iter().map(|b| b.0).collect()
        })
        .collect()
}

fn counts(lists: &[Vec<i32>], hosts: &[i32]) -> (Vec<usize>, Vec<usize>) {
    let replicas = hosts
        .iter()
        .map(|h| lists.iter().filter(|l| l.contains(h)).count())
        .collect();
    let leaders = hosts
        .iter()
        .map(|h| lists.iter().filter(|l| l.first() == Some(h)).count())
        .collect();
    (replicas, leaders)
}

#[test]
fn plans() {
    // (case, partitions, hosts, racks, drain, even) -> (lists after, moves, stuck)
    type Case<'a> = (
        &'a str,
        &'a [&'a [i32]],
        &'a [i32],
        &'a [&'a str],
        &'a [i32],
        bool,
        &'a [&'a [i32]],
        usize,
        usize,
    );
    let cases: &[Case] = &[
        (
            "balanced: nothing to do",
            &[&[1, 2], &[2, 3], &[3, 1]],
            &[1, 2, 3],
            &[],
            &[],
            true,
            &[&[1, 2], &[2, 3], &[3, 1]],
            0,
            0,
        ),
        (
            "drain 2 in place: the preferred slot stays first, to the least loaded host",
            &[&[2, 1], &[1, 2], &[3, 1]],
            &[1, 3, 4],
            &[],
            &[2],
            false,
            &[&[4, 1], &[1, 3], &[3, 1]],
            2,
            0,
        ),
        (
            "drain with no spare broker: stuck, not moved half-way",
            &[&[1, 2, 3], &[1, 2]],
            &[1, 3],
            &[],
            &[2],
            false,
            &[&[1, 2, 3], &[1, 3]],
            1,
            1,
        ),
        (
            "a new empty broker takes replicas: loads differ by at most one",
            &[&[1, 2], &[2, 3], &[3, 1], &[1, 2], &[2, 3], &[3, 1]],
            &[1, 2, 3, 4],
            &[],
            &[],
            true,
            &[&[1, 4], &[2, 4], &[4, 3], &[1, 2], &[2, 3], &[3, 1]],
            3,
            0,
        ),
        (
            "racks: no partition loses a rack, even if loads stay uneven",
            &[&[1, 2], &[1, 2], &[1, 2], &[1, 2]],
            &[1, 2, 3],
            &["a", "b", "a"],
            &[],
            true,
            // Broker 2 is rack b's only broker: it keeps every partition's b replica.
            &[&[2, 3], &[3, 2], &[1, 2], &[1, 2]],
            2,
            0,
        ),
        (
            "moving partitions are left alone but count for their targets",
            &[&[0, 3, 1], &[1, 2], &[1, 2]],
            &[1, 2, 3],
            &[],
            &[],
            true,
            &[&[3, 1], &[2, 3], &[1, 2]],
            1,
            0,
        ),
        (
            "preferred leaders even by reordering alone",
            &[&[1, 2], &[1, 2], &[1, 2], &[1, 2]],
            &[1, 2],
            &[],
            &[],
            true,
            &[&[2, 1], &[2, 1], &[1, 2], &[1, 2]],
            2,
            0,
        ),
        (
            "only drain when not asked to even",
            &[&[1, 2], &[1, 2], &[1, 2], &[1, 2]],
            &[1, 2, 3],
            &[],
            &[],
            false,
            &[&[1, 2], &[1, 2], &[1, 2], &[1, 2]],
            0,
            0,
        ),
    ];
    for (case, lists, hosts, racks, drain, even, want, moves, stuck) in cases {
        let p = parts(lists);
        let g = goals(hosts, racks, drain, *even);
        let plan = plan(&p, &g);
        let got = after(&p, &plan);
        let want: Vec<Vec<i32>> = want.iter().map(|l| l.to_vec()).collect();
        assert_eq!(got, want, "{case}: {plan:?}");
        assert_eq!(plan.moves.len(), *moves, "{case}: moves {plan:?}");
        assert_eq!(plan.stuck.len(), *stuck, "{case}: stuck {plan:?}");
        for m in &plan.moves {
            let distinct: BTreeSet<_> = m.to.iter().collect();
            assert_eq!(
                distinct.len(),
                m.to.len(),
                "{case}: a broker twice in {m:?}"
            );
            assert_eq!(
                m.to.len(),
                m.from.len(),
                "{case}: replication factor changed"
            );
        }
    }
}

#[test]
fn drains_come_first_and_every_plan_is_even_and_stable() {
    // 3 -> 5 brokers with 30 partitions of 3 replicas, then broker 3 drained.
    let lists: Vec<Vec<i32>> = (0..30)
        .map(|i| (0..3).map(|k| (i + k) % 3 + 1).collect())
        .collect();
    let refs: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
    let p = parts(&refs);
    let hosts = [1, 2, 3, 4, 5];
    let plan = plan(&p, &goals(&hosts, &[], &[], true));
    let got = after(&p, &plan);
    let (replicas, leaders) = counts(&got, &hosts);
    assert!(
        replicas.iter().max().unwrap() - replicas.iter().min().unwrap() <= 1,
        "{replicas:?}"
    );
    assert!(
        leaders.iter().max().unwrap() - leaders.iter().min().unwrap() <= 1,
        "{leaders:?}"
    );
    // 90 replicas over 5 brokers: 36 must land on 4 and 5; no partition moves twice.
    assert!(plan.moves.len() <= 30, "{}", plan.moves.len());
    // The planned layout is stable: planning again moves nothing.
    let settled = parts(&got.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert_eq!(
        super::plan(&settled, &goals(&hosts, &[], &[], true)).moves,
        vec![]
    );

    // Drain 3 (with 4 hosts left): its partitions come first in the plan.
    let drain = super::plan(&settled, &goals(&[1, 2, 4, 5], &[], &[3], true));
    let first_not_drain = drain
        .moves
        .iter()
        .position(|m| !m.from.contains(&BrokerId(3)))
        .unwrap_or(drain.moves.len());
    assert!(
        drain.moves[first_not_drain..]
            .iter()
            .all(|m| !m.from.contains(&BrokerId(3))),
        "{drain:?}"
    );
    let got = after(&settled, &drain);
    assert!(got.iter().all(|l| !l.contains(&3)), "{got:?}");
    assert!(drain.stuck.is_empty());
}

#[test]
fn evening_stops_at_the_moves_asked_for_but_drains_are_never_cut() {
    let lists: Vec<Vec<i32>> = (0..12).map(|i| vec![i % 2 + 1, (i + 1) % 2 + 1]).collect();
    let refs: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
    let p = parts(&refs);
    for max in [0, 1, 3] {
        let mut g = goals(&[1, 2, 3, 4], &[], &[], true);
        g.max_moves = max;
        assert_eq!(plan(&p, &g).moves.len(), max, "max {max}");
    }
    let mut g = goals(&[1, 3, 4], &[], &[2], true);
    g.max_moves = 1;
    let drained = plan(&p, &g);
    assert_eq!(drained.moves.len(), 12, "every partition leaves broker 2");
}
