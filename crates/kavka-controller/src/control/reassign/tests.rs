use super::*;
use crate::control::partitions::tests::{self as fixture, TOPIC, bs};
use crate::control::partitions::{AlterPartition, alter_partition};
use kavka_model::admin::PartitionRef;

const P0: PartitionId = PartitionId(0);

/// Brokers 1..=5 (those in `fenced` fenced), topic "t" with one partition, and
/// `min.insync.replicas`.
fn image(
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    fenced: &[i32],
    min_isr: i32,
) -> MetadataImage {
    let min_isr = min_isr.to_string();
    fixture::image(
        5,
        fenced,
        replicas,
        isr,
        leader,
        &[("min.insync.replicas", min_isr.as_str())],
    )
}

fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let (next, _, refused) = img.replay(img.offset + 1, records);
    assert!(refused.is_empty(), "{refused:?}");
    next
}

fn reg(img: &MetadataImage) -> &PartitionRegistration {
    img.partition(TOPIC, P0).unwrap()
}

fn move_to(target: Option<&[i32]>) -> PartitionMove {
    PartitionMove {
        partition: PartitionRef {
            topic: "t".into(),
            partition: P0,
        },
        target: target.map(bs),
    }
}

fn all_ready(_: BrokerId) -> bool {
    true
}

/// (replicas, isr, leader, adding, removing) of the registration.
type Shape = (Vec<i32>, Vec<i32>, i32, Vec<i32>, Vec<i32>);

fn shape(r: &PartitionRegistration) -> Shape {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    (
        ids(&r.replicas),
        ids(&r.isr),
        r.leader.0,
        ids(&r.adding_replicas),
        ids(&r.removing_replicas),
    )
}

#[test]
fn starting_a_move() {
    // (case, replicas, isr, leader, target) -> shape after the move started
    type Case<'a> = (&'a str, &'a [i32], &'a [i32], i32, &'a [i32], Shape);
    let cases: &[Case] = &[
        (
            "one replica replaced: target first, the leaving one last",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            &[4, 2, 3],
            (vec![4, 2, 3, 1], vec![1, 2, 3], 1, vec![4], vec![1]),
        ),
        (
            "all replicas replaced",
            &[1, 2, 3],
            &[1, 2, 3],
            2,
            &[4, 5],
            (
                vec![4, 5, 1, 2, 3],
                vec![1, 2, 3],
                2,
                vec![4, 5],
                vec![1, 2, 3],
            ),
        ),
        (
            "grow the replication factor",
            &[1, 2],
            &[1, 2],
            1,
            &[1, 2, 3],
            (vec![1, 2, 3], vec![1, 2], 1, vec![3], vec![]),
        ),
        (
            "only removals complete at once; the leader stays",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            &[1, 2],
            (vec![1, 2], vec![1, 2], 1, vec![], vec![]),
        ),
        (
            "removing the leader hands over to the first in-sync target replica",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            &[3, 2],
            (vec![3, 2], vec![3, 2], 3, vec![], vec![]),
        ),
        (
            "a reorder completes at once and keeps the leader",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            &[3, 2, 1],
            (vec![3, 2, 1], vec![3, 2, 1], 1, vec![], vec![]),
        ),
        (
            "a removal waits while a target replica is out of sync",
            &[1, 2, 3],
            &[1, 2],
            1,
            &[2, 3],
            (vec![2, 3, 1], vec![1, 2], 1, vec![], vec![1]),
        ),
        (
            "the same replicas: nothing changes",
            &[1, 2, 3],
            &[1, 2],
            1,
            &[1, 2, 3],
            (vec![1, 2, 3], vec![1, 2], 1, vec![], vec![]),
        ),
    ];
    for (case, replicas, isr, leader, target, want) in cases {
        let img = image(replicas, isr, *leader, &[], 1);
        let d = alter_reassignments(&img, &[move_to(Some(target))], &all_ready);
        assert_eq!(d.reply, vec![("t".into(), P0, Ok(()))], "{case}");
        let next = apply(&img, &d.records);
        assert_eq!(shape(reg(&next)), *want, "{case}");
        if replicas == target {
            assert!(d.records.is_empty(), "{case}: no record for no change");
        }
    }
}

#[test]
fn refused_moves_change_nothing() {
    // (case, target, fenced, min isr) -> error
    type Case<'a> = (
        &'a str,
        Option<&'a [i32]>,
        &'a [i32],
        i32,
        ErrorCode,
        &'a str,
    );
    let cases: &[Case] = &[
        (
            "unknown broker",
            Some(&[1, 2, 9]),
            &[],
            1,
            ErrorCode::InvalidReplicaAssignment,
            "broker 9 is not registered",
        ),
        (
            "fewer than min.insync.replicas",
            Some(&[4]),
            &[],
            2,
            ErrorCode::InvalidReplicaAssignment,
            "min.insync.replicas=2",
        ),
        (
            "empty",
            Some(&[]),
            &[],
            1,
            ErrorCode::InvalidReplicaAssignment,
            "empty",
        ),
        (
            "a broker twice",
            Some(&[4, 4, 2]),
            &[],
            1,
            ErrorCode::InvalidReplicaAssignment,
            "twice",
        ),
        (
            "cancel with nothing moving",
            None,
            &[],
            1,
            ErrorCode::NoReassignmentInProgress,
            "is not being moved",
        ),
    ];
    for (case, target, fenced, min_isr, code, says) in cases {
        let img = image(&[1, 2, 3], &[1, 2, 3], 1, fenced, *min_isr);
        let d = alter_reassignments(&img, &[move_to(*target)], &all_ready);
        assert!(d.records.is_empty(), "{case}");
        let err = d.reply[0].2.clone().unwrap_err();
        assert_eq!(err.code, *code, "{case}: {err:?}");
        assert!(err.message.contains(says), "{case}: {}", err.message);
        assert!(err.message.contains("t-0"), "{case}: names the partition");
    }
    let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[], 1);
    let unknown = PartitionMove {
        partition: PartitionRef {
            topic: "nope".into(),
            partition: P0,
        },
        target: Some(bs(&[1])),
    };
    let d = alter_reassignments(&img, &[unknown], &all_ready);
    assert_eq!(
        d.reply[0].2.clone().unwrap_err().code,
        ErrorCode::UnknownTopicOrPartition
    );
}

#[test]
fn a_move_to_a_fenced_broker_waits_for_it() {
    let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[4], 1);
    let d = alter_reassignments(&img, &[move_to(Some(&[1, 2, 4]))], &all_ready);
    assert_eq!(d.reply[0].2, Ok(()));
    let next = apply(&img, &d.records);
    assert_eq!(
        shape(reg(&next)),
        (vec![1, 2, 4, 3], vec![1, 2, 3], 1, vec![4], vec![3])
    );
}

#[test]
fn one_move_at_a_time_and_one_per_request() {
    let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[], 1);
    let d = alter_reassignments(
        &img,
        &[move_to(Some(&[4, 2, 3])), move_to(Some(&[5, 2, 3]))],
        &all_ready,
    );
    assert_eq!(d.reply[0].2, Ok(()));
    assert_eq!(
        d.reply[1].2.clone().unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(d.records.len(), 1, "only the first move");
    let moving = apply(&img, &d.records);
    let again = alter_reassignments(&moving, &[move_to(Some(&[5, 2, 3]))], &all_ready);
    let err = again.reply[0].2.clone().unwrap_err();
    assert_eq!(err.code, ErrorCode::ReassignmentInProgress);
    assert!(err.message.contains("[4,2,3]"), "{}", err.message);
    assert!(again.records.is_empty());
}

fn expand(
    img: &MetadataImage,
    leader: i32,
    new_isr: &[i32],
    ready: &dyn Fn(BrokerId) -> bool,
) -> MetadataImage {
    let r = reg(img);
    let req = AlterPartition {
        broker: BrokerId(leader),
        topic_id: TOPIC,
        partition: P0,
        leader_epoch: r.leader_epoch,
        partition_epoch: r.partition_epoch,
        new_isr: bs(new_isr),
    };
    let d = alter_partition(img, &req, &BTreeSet::new(), ready);
    assert!(d.reply.is_ok(), "{:?}", d.reply);
    apply(img, &d.records)
}

#[test]
fn a_move_completes_when_the_target_is_in_sync() {
    let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[], 2);
    let d = alter_reassignments(&img, &[move_to(Some(&[4, 5, 3]))], &all_ready);
    let moving = apply(&img, &d.records);
    // 4 catches up first: still moving, 4 in the ISR.
    let half = expand(&moving, 1, &[1, 2, 3, 4], &all_ready);
    assert_eq!(
        shape(reg(&half)),
        (
            vec![4, 5, 3, 1, 2],
            vec![4, 3, 1, 2],
            1,
            vec![4, 5],
            vec![1, 2]
        )
    );
    // 5 catches up while 4 is not ready to lead: 5 leads, the move is done.
    let not_4 = |b: BrokerId| b != BrokerId(4);
    let done = expand(&half, 1, &[1, 2, 3, 4, 5], &not_4);
    let r = reg(&done);
    assert_eq!(shape(r), (vec![4, 5, 3], vec![4, 5, 3], 5, vec![], vec![]));
    assert!(
        r.leader_epoch > reg(&half).leader_epoch,
        "a new leader, a new epoch"
    );
    // No target replica ready: the ISR grows, the move waits.
    let none_ready = |_| false;
    let waits = expand(&half, 1, &[1, 2, 3, 4, 5], &none_ready);
    assert!(reg(&waits).is_reassigning());
    assert_eq!(reg(&waits).leader, BrokerId(1));
}

#[test]
fn cancel_reverts_to_the_replicas_from_before() {
    let img = image(&[1, 2, 3], &[1, 2, 3], 1, &[], 1);
    let moving = apply(
        &img,
        &alter_reassignments(&img, &[move_to(Some(&[4, 2, 3]))], &all_ready).records,
    );
    let half = expand(&moving, 1, &[1, 2, 3], &all_ready);
    let d = alter_reassignments(&half, &[move_to(None)], &all_ready);
    assert_eq!(d.reply[0].2, Ok(()));
    let back = apply(&half, &d.records);
    assert_eq!(
        shape(reg(&back)),
        // Kafka's order: the target's replicas first, as the move listed them.
        (vec![2, 3, 1], vec![2, 3, 1], 1, vec![], vec![])
    );

    // Every original replica out of sync: cancelling is refused, the move stays.
    let gone = image(&[1, 2], &[1, 2], 1, &[], 1);
    let moving = apply(
        &gone,
        &alter_reassignments(&gone, &[move_to(Some(&[3, 4]))], &all_ready).records,
    );
    let caught_up = expand(&moving, 1, &[1, 2, 3], &all_ready);
    let shrunk = expand(&caught_up, 1, &[1, 3], &all_ready);
    let mut r = reg(&shrunk).clone();
    r.isr = bs(&[3]);
    r.leader = BrokerId(3);
    let d = cancel("t-0", &r, &all_ready);
    assert_eq!(d.unwrap_err().code, ErrorCode::InvalidReplicaAssignment);
}
