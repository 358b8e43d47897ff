//! Three controller voters in one process, talking Raft over real gRPC on 127.0.0.1:
//! they elect an active controller, commit proposals everywhere, refuse proposals on a
//! follower with a leader hint, re-elect after the leader dies, and a restarted voter
//! catches up from its own store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_controller::{NodeId, Quorum, QuorumConfig, QuorumError, VoterNode};
use kavka_metadata::{MetadataImage, MetadataRecord, RegisterBrokerRecord, TopicId, TopicRecord};
use kavka_model::{BrokerId, TopicName};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

struct Voter {
    quorum: Arc<Quorum>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_voter(
    id: NodeId,
    dir: PathBuf,
    voters: BTreeMap<NodeId, VoterNode>,
    listener: tokio::net::TcpListener,
) -> Voter {
    let quorum = Arc::new(
        Quorum::start(QuorumConfig::new(id, dir, voters))
            .await
            .unwrap(),
    );
    let svc = quorum.raft_server().into_service();
    let server = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
    });
    Voter { quorum, server }
}

async fn stop(v: Voter) {
    v.quorum.shutdown().await;
    v.server.abort();
    let _ = v.server.await;
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn topic(name: &str, n: u128) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: TopicName::new(name).unwrap(),
        topic_id: TopicId(uuid::Uuid::from_u128(n)),
    })
}

fn has_topic(img: &MetadataImage, name: &str) -> bool {
    img.topic_by_name(&TopicName::new(name).unwrap()).is_some()
}

/// Proposes through whichever voter leads, following `NotLeader` hints (bounded).
async fn propose(voters: &BTreeMap<NodeId, Voter>, records: Vec<MetadataRecord>) -> u64 {
    let end = Instant::now() + DEADLINE;
    let mut target = *voters.keys().next().unwrap();
    loop {
        match voters[&target].quorum.propose(records.clone()).await {
            Ok(offset) => return offset,
            Err(QuorumError::NotLeader {
                leader: Some((id, _)),
            }) if voters.contains_key(&id) => target = id,
            Err(e) => {
                assert!(Instant::now() < end, "no voter accepted the proposal: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                target = *voters.keys().find(|&&k| k != target).unwrap_or(&target);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_commit_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3u64 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, VoterNode::new(l.local_addr().unwrap().to_string()));
        listeners.insert(id, l);
    }
    let mut voters = BTreeMap::new();
    for (id, l) in listeners {
        voters.insert(
            id,
            start_voter(id, root.path().join(format!("c{id}")), addrs.clone(), l).await,
        );
    }

    let leader = wait_for("an active controller", || {
        let leaders: Vec<_> = voters.values().filter_map(|v| v.quorum.leader()).collect();
        (leaders.len() == 3 && leaders.iter().all(|l| *l == leaders[0])).then(|| leaders[0])
    })
    .await;

    let broker = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(1),
        incarnation_id: uuid::Uuid::from_u128(1),
        endpoints: vec![],
        rack: None,
        fenced: true,
    });
    let offset = propose(&voters, vec![broker, topic("orders", 1)]).await;
    for v in voters.values() {
        wait_for("every voter to apply the batch", || {
            let img = v.quorum.image();
            (img.offset >= offset as i64
                && has_topic(&img, "orders")
                && img.broker(BrokerId(1)).is_some())
            .then_some(())
        })
        .await;
    }

    // A follower refuses and names the active controller.
    let follower = *voters.keys().find(|&&k| k != leader).unwrap();
    match voters[&follower]
        .quorum
        .propose(vec![topic("nope", 9)])
        .await
    {
        Err(QuorumError::NotLeader {
            leader: Some((id, node)),
        }) => {
            assert_eq!(id, leader);
            assert_eq!(node, addrs[&leader]);
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // The active controller dies: the other two elect a new one and keep committing.
    let old = voters.remove(&leader).unwrap();
    stop(old).await;
    let new_leader = wait_for("a new active controller", || {
        let leaders: Vec<_> = voters
            .values()
            .filter_map(|v| v.quorum.leader())
            .filter(|l| *l != leader)
            .collect();
        (leaders.len() == 2 && leaders[0] == leaders[1]).then(|| leaders[0])
    })
    .await;
    assert_ne!(new_leader, leader);
    propose(&voters, vec![topic("after-failover", 2)]).await;

    // The old leader restarts from its store and catches up with everything committed.
    let l = tokio::net::TcpListener::bind(&addrs[&leader].addr)
        .await
        .unwrap();
    let restarted = start_voter(
        leader,
        root.path().join(format!("c{leader}")),
        addrs.clone(),
        l,
    )
    .await;
    wait_for("the restarted voter to catch up", || {
        let img = restarted.quorum.image();
        (has_topic(&img, "orders") && has_topic(&img, "after-failover")).then_some(())
    })
    .await;
    voters.insert(leader, restarted);
    let images: Vec<_> = voters.values().map(|v| v.quorum.image()).collect();
    wait_for("identical images", || {
        let images: Vec<_> = voters.values().map(|v| v.quorum.image()).collect();
        images
            .windows(2)
            .all(|w| w[0].snapshot_records() == w[1].snapshot_records())
            .then_some(())
    })
    .await;
    assert!(!has_topic(&images[0], "nope"));
    for (_, v) in voters {
        stop(v).await;
    }
}

/// A controller outside the static voters does not form a quorum of its own: it starts
/// as an observer with an empty membership, waiting to be added (KIP-853).
#[tokio::test]
async fn a_node_outside_the_voter_list_starts_as_an_observer() {
    let dir = tempfile::tempdir().unwrap();
    let voters = BTreeMap::from([(1, VoterNode::new("127.0.0.1:1"))]);
    let q = Quorum::start(QuorumConfig::new(7, dir.path().to_path_buf(), voters))
        .await
        .unwrap();
    // Longer than the longest election timeout (600 ms): a node that could elect itself
    // would have by then.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (index, membership) = q.membership();
    assert_eq!(index, None);
    assert_eq!(membership.voter_ids().count(), 0);
    assert!(!q.is_leader());
    assert_eq!(q.membership_mismatch(), None);
    q.shutdown().await;
}

/// Concurrent proposals once deadlocked sled (concurrent `flush_async` calls): they must
/// all commit, bounded in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let voters = BTreeMap::from([(1, VoterNode::new(l.local_addr().unwrap().to_string()))]);
    let q = Arc::new(
        Quorum::start(QuorumConfig::new(1, dir.path().join("c"), voters))
            .await
            .unwrap(),
    );
    wait_for("leadership", || q.is_leader().then_some(())).await;
    let run = async {
        let mut tasks = Vec::new();
        for p in 0..8u128 {
            let q = Arc::clone(&q);
            tasks.push(tokio::spawn(async move {
                for i in 0..50u128 {
                    q.propose(vec![topic(&format!("t-{p}-{i}"), 1000 * (p + 1) + i)])
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(DEADLINE, run)
        .await
        .expect("400 concurrent proposals did not all commit in time");
    assert_eq!(q.image().topics().count(), 400);
    q.shutdown().await;
}

/// One voter change at a time, and nothing half-done: while an add waits for a learner
/// that never answers (a listener that accepts nothing), another change is refused
/// REQUEST_TIMED_OUT; the add itself times out REQUEST_TIMED_OUT and leaves the voter set
/// and the learners as they were, after which a change may start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_change_at_a_time_and_a_timed_out_add_changes_nothing() {
    use kavka_controller::DirectoryId;
    use kavka_model::ErrorCode;
    let dir = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let voters = BTreeMap::from([(1, VoterNode::new(l.local_addr().unwrap().to_string()))]);
    let q = Arc::new(
        Quorum::start(QuorumConfig::new(1, dir.path().join("c"), voters))
            .await
            .unwrap(),
    );
    wait_for("leadership", || q.is_leader().then_some(())).await;
    let before = q.membership_view();
    // Accepts connections (the backlog does) but never answers a call.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let learner = VoterNode::with_directory(
        silent.local_addr().unwrap().to_string(),
        DirectoryId(uuid::Uuid::from_u128(2)),
    );
    let adding = {
        let q = Arc::clone(&q);
        tokio::spawn(async move { q.add_voter(2, learner, Duration::from_secs(2)).await })
    };
    let end = Instant::now() + DEADLINE;
    while !q.membership_view().learners.contains(&2) {
        if adding.is_finished() {
            panic!(
                "the add ended at once: {:?} {:?}",
                adding.await,
                q.membership()
            );
        }
        assert!(Instant::now() < end, "the add never got in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let code = |r: Result<u64, QuorumError>| match r {
        Err(QuorumError::Refused(e)) => e.code,
        other => panic!("not refused: {other:?}"),
    };
    let third = VoterNode::with_directory("127.0.0.1:1", DirectoryId(uuid::Uuid::from_u128(3)));
    assert_eq!(
        code(q.add_voter(3, third, Duration::from_secs(1)).await),
        ErrorCode::RequestTimedOut
    );
    assert_eq!(
        code(q.remove_voter(1, None, Duration::from_secs(1)).await),
        ErrorCode::RequestTimedOut
    );
    let e = match adding.await.unwrap() {
        Err(QuorumError::Refused(e)) => e,
        other => panic!("the add did not time out: {other:?}"),
    };
    assert_eq!(e.code, ErrorCode::RequestTimedOut, "{e}");
    assert!(e.message.contains("voters are unchanged"), "{e}");
    wait_for("the learner to be taken back", || {
        let now = q.membership_view();
        (now.voters == before.voters && now.learners.is_empty() && !now.change_in_flight)
            .then_some(())
    })
    .await;
    // The last voter stays.
    assert_eq!(
        code(q.remove_voter(1, None, Duration::from_secs(1)).await),
        ErrorCode::InvalidRequest
    );
    q.shutdown().await;
}
