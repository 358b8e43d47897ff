use super::*;

const T0_MS: i64 = 1_000;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..GroupConfig::default()
    }
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "billing".into(),
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: false,
    }
}

struct Harness {
    group: Group,
    config: GroupConfig,
    t0: Instant,
    next_id: u32,
}

impl Harness {
    fn new() -> Self {
        let config = config();
        Self {
            group: Group::new("billing".into(), &config, T0_MS),
            config,
            t0: Instant::now(),
            next_id: 0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn join(&mut self, req: JoinRequest, ms: u64) -> Outcome<JoinResult> {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        let now = self.at(ms);
        let (o, _) = self.group.join(req, &self.config, || id, now, T0_MS);
        o
    }

    fn tick(&mut self, ms: u64) -> Effects {
        let now = self.at(ms);
        self.group.tick(now, T0_MS)
    }

    fn sync(
        &mut self,
        member: &str,
        assignments: &[(&str, &str)],
        ms: u64,
    ) -> (Outcome<SyncResult>, Effects) {
        let req = SyncRequest {
            group_id: "billing".into(),
            generation_id: self.group.generation_id,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: self.group.protocol_name.clone(),
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        };
        let now = self.at(ms);
        self.group.sync(req, now)
    }
}

fn waiting<T>(o: Outcome<T>) -> oneshot::Receiver<Result<T, KafkaError>> {
    match o {
        Outcome::Wait(rx) => rx,
        Outcome::Ready(r) => panic!("expected to wait, got an answer: {:?}", r.err()),
        Outcome::MemberIdRequired(id) => panic!("expected to wait, got MEMBER_ID_REQUIRED {id}"),
    }
}

fn answered<T: std::fmt::Debug>(
    rx: &mut oneshot::Receiver<Result<T, KafkaError>>,
) -> Result<T, KafkaError> {
    rx.try_recv().expect("an answer was sent")
}

fn code<T: std::fmt::Debug>(r: Result<T, KafkaError>) -> ErrorCode {
    r.expect_err("an error").code
}

/// Three members join an empty group; the first join phase waits out the initial delay.
fn stable_group_of_three(h: &mut Harness) -> Vec<String> {
    let mut rxs: Vec<_> = (0..3)
        .map(|_| waiting(h.join(join_req("", None, &["range", "roundrobin"]), 0)))
        .collect();
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    let _ = h.tick(50);
    assert!(rxs[0].try_recv().is_err(), "the initial delay is not over");
    let _ = h.tick(100);
    let results: Vec<JoinResult> = rxs.iter_mut().map(|rx| answered(rx).unwrap()).collect();
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
    assert!(results.iter().all(|r| r.generation_id == 1));
    assert_eq!(results[0].protocol_name.as_deref(), Some("range"));
    let leader = results[0].leader.clone();
    let leader_view = results.iter().find(|r| r.member_id == leader).unwrap();
    assert_eq!(leader_view.members.len(), 3, "the leader sees every member");
    assert!(
        results
            .iter()
            .filter(|r| r.member_id != leader)
            .all(|r| r.members.is_empty()),
        "followers see no member list"
    );
    let ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
    // Followers sync first and wait for the leader.
    let mut follower_rx = Vec::new();
    for id in ids.iter().filter(|id| **id != leader) {
        let (o, e) = h.sync(id, &[], 120);
        assert!(e.syncs.is_empty());
        follower_rx.push((id.clone(), waiting(o)));
    }
    let plan: Vec<(&str, String)> = ids
        .iter()
        .map(|id| (id.as_str(), format!("parts-of-{id}")))
        .collect();
    let plan: Vec<(&str, &str)> = plan.iter().map(|(m, a)| (*m, a.as_str())).collect();
    let (o, effects) = h.sync(&leader, &plan, 130);
    assert!(
        effects.persist,
        "the assignment is stored before anyone hears it"
    );
    assert_eq!(effects.syncs.len(), 3);
    let mut leader_rx = waiting(o);
    for (tx, r) in effects.syncs {
        let _ = tx.send(r);
    }
    assert_eq!(h.group.state, GroupState::Stable);
    assert_eq!(
        answered(&mut leader_rx).unwrap().assignment,
        Bytes::from(format!("parts-of-{leader}"))
    );
    for (id, mut rx) in follower_rx {
        assert_eq!(
            answered(&mut rx).unwrap().assignment,
            Bytes::from(format!("parts-of-{id}"))
        );
    }
    ids
}

#[test]
fn members_join_sync_and_get_their_assignments() {
    let mut h = Harness::new();
    let ids = stable_group_of_three(&mut h);
    for id in &ids {
        h.group.heartbeat(id, None, 1, h.at(200)).unwrap();
    }
    assert_eq!(
        code(h.group.heartbeat(&ids[0], None, 0, h.at(200))),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        code(h.group.heartbeat("nobody", None, 1, h.at(200))),
        ErrorCode::UnknownMemberId
    );
    // A stable follower syncing again gets its assignment at once.
    let (o, _) = h.sync(&ids[1], &[], 210);
    match o {
        Outcome::Ready(Ok(r)) => {
            assert_eq!(r.assignment, Bytes::from(format!("parts-of-{}", ids[1])))
        }
        _ => panic!("expected the current assignment"),
    }
}

#[test]
fn a_crashed_member_is_expired_and_the_rest_rebalance_without_it() {
    let mut h = Harness::new();
    let ids = stable_group_of_three(&mut h);
    // Two keep heartbeating; the third goes silent past its 10 s session.
    for t in (1_000..=10_000).step_by(1_000) {
        h.group.heartbeat(&ids[0], None, 1, h.at(t)).unwrap();
        h.group.heartbeat(&ids[1], None, 1, h.at(t)).unwrap();
        let _ = h.tick(t);
    }
    let _ = h.tick(10_200);
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    assert!(!h.group.members.contains_key(&ids[2]));
    assert_eq!(
        code(h.group.heartbeat(&ids[0], None, 1, h.at(10_300))),
        ErrorCode::RebalanceInProgress
    );
    let mut a = waiting(h.join(join_req(&ids[0], None, &["range"]), 10_400));
    assert!(a.try_recv().is_err(), "waits for the other member");
    let mut b = waiting(h.join(join_req(&ids[1], None, &["range"]), 10_500));
    let (ra, rb) = (answered(&mut a).unwrap(), answered(&mut b).unwrap());
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(h.group.members.len(), 2);
    // The expired member's old generation is refused.
    assert_eq!(
        code(h.group.check_commit(&ids[2], None, 1)),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        code(h.group.check_commit(&ids[0], None, 1)),
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn members_that_do_not_rejoin_in_time_are_dropped() {
    let mut h = Harness::new();
    let ids = stable_group_of_three(&mut h);
    // A new member triggers a rebalance; only one old member rejoins.
    let mut new = waiting(h.join(join_req("", None, &["range"]), 1_000));
    let mut old = waiting(h.join(join_req(&ids[0], None, &["range"]), 1_100));
    let _ = h.tick(5_999);
    assert!(
        new.try_recv().is_err(),
        "the 5 s rebalance timeout is not over"
    );
    let _ = h.tick(6_000);
    assert_eq!(answered(&mut new).unwrap().generation_id, 2);
    assert_eq!(answered(&mut old).unwrap().generation_id, 2);
    assert_eq!(h.group.members.len(), 2);
}

#[test]
fn leaving_rebalances_and_the_last_one_out_empties_the_group() {
    let mut h = Harness::new();
    let ids = stable_group_of_three(&mut h);
    let (r, _) = h.group.leave(&ids[2], None, h.at(300), T0_MS);
    assert_eq!(r.unwrap(), ids[2]);
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    let (r, _) = h.group.leave("ghost", None, h.at(300), T0_MS);
    assert_eq!(code(r), ErrorCode::UnknownMemberId);
    let (_, _) = h.group.leave(&ids[0], None, h.at(310), T0_MS);
    let (_, effects) = h.group.leave(&ids[1], None, h.at(320), T0_MS);
    assert!(effects.persist);
    assert_eq!(h.group.state, GroupState::Empty);
    assert!(h.group.members.is_empty());
    assert_eq!(h.group.generation_id, 2);
    // Now anyone may commit from outside the group, and the group may be deleted.
    h.group.check_commit("", None, -1).unwrap();
    h.group.check_deletable().unwrap();
}

#[test]
fn new_members_must_first_get_an_id_with_member_id_required() {
    let mut h = Harness::new();
    let mut req = join_req("", None, &["range"]);
    req.require_known_member_id = true;
    let id = match h.join(req.clone(), 0) {
        Outcome::MemberIdRequired(id) => id,
        _ => panic!("expected MEMBER_ID_REQUIRED"),
    };
    assert!(h.group.members.is_empty(), "not a member until it rejoins");
    req.member_id = id.clone();
    let mut rx = waiting(h.join(req.clone(), 10));
    let _ = h.tick(200);
    assert_eq!(answered(&mut rx).unwrap().member_id, id);
    // An id nobody handed out is refused.
    req.member_id = "made-up".into();
    assert!(
        matches!(h.join(req, 300), Outcome::Ready(Err(e)) if e.code == ErrorCode::UnknownMemberId)
    );
}

#[test]
fn a_static_member_restart_does_not_rebalance_and_fences_its_old_incarnation() {
    let mut h = Harness::new();
    let mut a = waiting(h.join(join_req("", Some("host-a"), &["range"]), 0));
    let mut b = waiting(h.join(join_req("", Some("host-b"), &["range"]), 0));
    let _ = h.tick(100);
    let (ra, rb) = (answered(&mut a).unwrap(), answered(&mut b).unwrap());
    let leader = ra.leader.clone();
    let (o, e) = h.sync(&leader, &[(&ra.member_id, "A"), (&rb.member_id, "B")], 110);
    for (tx, r) in e.syncs {
        let _ = tx.send(r);
    }
    drop(o);
    assert_eq!(h.group.state, GroupState::Stable);
    let follower = if leader == ra.member_id {
        rb.member_id.clone()
    } else {
        ra.member_id.clone()
    };
    let follower_instance = if leader == ra.member_id {
        "host-b"
    } else {
        "host-a"
    };
    // The follower restarts: same instance id, no member id.
    let rejoined = match h.join(join_req("", Some(follower_instance), &["range"]), 500) {
        Outcome::Ready(Ok(r)) => r,
        _ => panic!("a static member of a stable group rejoins at once"),
    };
    assert_ne!(rejoined.member_id, follower);
    assert_eq!(rejoined.generation_id, 1, "no rebalance");
    assert_eq!(h.group.state, GroupState::Stable);
    let (o, _) = h.sync(&rejoined.member_id, &[], 510);
    let expected = if follower_instance == "host-b" {
        "B"
    } else {
        "A"
    };
    assert!(matches!(o, Outcome::Ready(Ok(r)) if r.assignment == expected));
    // The old incarnation is fenced.
    assert_eq!(
        code(
            h.group
                .heartbeat(&follower, Some(follower_instance), 1, h.at(520))
        ),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(
        code(h.group.check_commit(&follower, Some(follower_instance), 1)),
        ErrorCode::FencedInstanceId
    );
}

#[test]
fn bad_joins_are_refused_with_kafkas_errors_and_change_nothing() {
    let mut h = Harness::new();
    let mut req = join_req("", None, &["range"]);
    req.session_timeout_ms = 10;
    assert!(
        matches!(h.join(req, 0), Outcome::Ready(Err(e)) if e.code == ErrorCode::InvalidSessionTimeout)
    );
    let mut req = join_req("", None, &["range"]);
    req.protocols.clear();
    assert!(
        matches!(h.join(req, 0), Outcome::Ready(Err(e)) if e.code == ErrorCode::InconsistentGroupProtocol)
    );
    assert_eq!(h.group.state, GroupState::Empty);
    let ids = stable_group_of_three(&mut h);
    // A member offering only a protocol the others lack.
    let req = join_req("", None, &["sticky-only"]);
    assert!(
        matches!(h.join(req, 500), Outcome::Ready(Err(e)) if e.code == ErrorCode::InconsistentGroupProtocol)
    );
    let mut req = join_req("", None, &["range"]);
    req.protocol_type = "connect".into();
    assert!(
        matches!(h.join(req, 500), Outcome::Ready(Err(e)) if e.code == ErrorCode::InconsistentGroupProtocol)
    );
    assert_eq!(h.group.state, GroupState::Stable, "the group is untouched");
    assert_eq!(h.group.members.len(), ids.len());
    assert_eq!(code(h.group.check_deletable()), ErrorCode::NonEmptyGroup);
    assert_eq!(
        code(h.group.check_commit("", None, -1)),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn a_follower_rejoining_unchanged_gets_the_same_answer_without_a_rebalance() {
    let mut h = Harness::new();
    let ids = stable_group_of_three(&mut h);
    let leader = h.group.leader.clone().unwrap();
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    match h.join(join_req(&follower, None, &["range", "roundrobin"]), 600) {
        Outcome::Ready(Ok(r)) => assert_eq!(r.generation_id, 1),
        _ => panic!("expected the current generation"),
    }
    assert_eq!(h.group.state, GroupState::Stable);
    // Changed protocols do rebalance.
    let _rx = waiting(h.join(join_req(&follower, None, &["range"]), 700));
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
}
