use super::*;

const TOPIC: &str = "orders";

struct H {
    group: ConsumerGroup,
    config: GroupConfig,
    t0: Instant,
    partitions: i32,
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(TOPIC).cloned().unwrap_or_default()
}

impl H {
    fn new(assignor: &str) -> Self {
        let config = GroupConfig {
            consumer_assignor: assignor.into(),
            ..GroupConfig::default()
        };
        Self {
            group: ConsumerGroup::new(&config),
            config,
            t0: Instant::now(),
            partitions: 6,
        }
    }

    fn hb(
        &mut self,
        member: &str,
        epoch: i32,
        owned: Option<BTreeSet<i32>>,
        ms: u64,
    ) -> Result<HeartbeatResult, KafkaError> {
        let n = self.partitions;
        let req = HeartbeatRequest {
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topics: (epoch == 0).then(|| vec![TOPIC.to_string()]),
            owned: owned.map(|o| Assignment::from([(TOPIC.to_string(), o)])),
            client_id: "c".into(),
            ..HeartbeatRequest::default()
        };
        let now = self.t0 + Duration::from_millis(ms);
        self.group.heartbeat(
            "g",
            req,
            &move |t| (t == TOPIC).then_some(n),
            &self.config,
            || "generated".into(),
            now,
        )
    }

    /// Heartbeats like a client: reports what it owns (the last assignment it got).
    fn step(&mut self, member: &str, held: &mut BTreeSet<i32>, epoch: &mut i32, ms: u64) {
        let r = self.hb(member, *epoch, Some(held.clone()), ms).unwrap();
        *epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            *held = parts(&a);
        }
    }

    fn owned_by_all(&self) -> Vec<BTreeSet<i32>> {
        self.group
            .members
            .values()
            .map(|m| union(&m.assigned, &m.pending_revocation))
            .map(|a| parts(&a))
            .collect()
    }
}

fn no_partition_twice(h: &H) {
    let all = h.owned_by_all();
    let total: usize = all.iter().map(BTreeSet::len).sum();
    let distinct: BTreeSet<i32> = all.into_iter().flatten().collect();
    assert_eq!(
        total,
        distinct.len(),
        "a partition owned by two members: {:?}",
        h.group.members
    );
}

#[test]
fn members_converge_to_a_balanced_assignment_without_sharing_a_partition() {
    let mut h = H::new("uniform");
    let r = h.hb("a", 0, None, 0).unwrap();
    assert_eq!(r.member_epoch, 1);
    let (mut a, mut ea) = (parts(&r.assignment.unwrap()), r.member_epoch);
    assert_eq!(a.len(), 6, "alone, a gets everything");
    let r = h.hb("b", 0, None, 10).unwrap();
    let (mut b, mut eb) = (parts(&r.assignment.unwrap()), r.member_epoch);
    assert!(b.is_empty(), "b gets nothing a still owns");
    no_partition_twice(&h);
    let r = h.hb("c", 0, None, 20).unwrap();
    let (mut c, mut ec) = (parts(&r.assignment.unwrap()), r.member_epoch);
    for t in 1..6 {
        h.step("a", &mut a, &mut ea, 100 * t);
        no_partition_twice(&h);
        h.step("b", &mut b, &mut eb, 100 * t + 10);
        no_partition_twice(&h);
        h.step("c", &mut c, &mut ec, 100 * t + 20);
        no_partition_twice(&h);
    }
    assert_eq!((a.len(), b.len(), c.len()), (2, 2, 2));
    let all: BTreeSet<i32> = a.iter().chain(&b).chain(&c).copied().collect();
    assert_eq!(all.len(), 6);
    assert_eq!(h.group.state(), ConsumerGroupState::Stable);
    assert!(ea == eb && eb == ec && ec == h.group.assignment_epoch);

    // c leaves: a and b pick up its partitions, keeping their own (sticky).
    let (a_before, b_before) = (a.clone(), b.clone());
    let r = h.hb("c", LEAVE_EPOCH, None, 700).unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    h.step("a", &mut a, &mut ea, 800);
    h.step("b", &mut b, &mut eb, 810);
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(
        a.is_superset(&a_before) && b.is_superset(&b_before),
        "sticky"
    );
}

#[test]
fn a_partition_moves_only_after_its_owner_confirms_the_revocation() {
    let mut h = H::new("uniform");
    let r = h.hb("a", 0, None, 0).unwrap();
    let ea = r.member_epoch;
    let r = h.hb("b", 0, None, 10).unwrap();
    let eb = r.member_epoch;
    assert!(parts(&r.assignment.unwrap()).is_empty());
    // a is told to keep 3; it still owns all 6 until it says otherwise.
    let r = h.hb("a", ea, Some((0..6).collect()), 20).unwrap();
    let kept = parts(&r.assignment.unwrap());
    assert_eq!(kept.len(), 3);
    assert_eq!(
        r.member_epoch, ea,
        "no new epoch before the revocation is done"
    );
    let r = h.hb("b", eb, Some(BTreeSet::new()), 30).unwrap();
    assert!(
        r.assignment.is_none_or(|a| parts(&a).is_empty()),
        "nothing for b yet"
    );
    // a confirms; b gets the other three.
    let r = h.hb("a", ea, Some(kept.clone()), 40).unwrap();
    assert!(r.member_epoch > ea);
    let r = h.hb("b", eb, Some(BTreeSet::new()), 50).unwrap();
    let got = parts(&r.assignment.unwrap());
    assert_eq!(got.len(), 3);
    assert!(got.is_disjoint(&kept));
}

#[test]
fn the_range_assignor_gives_contiguous_ranges() {
    let mut h = H::new("range");
    let ea = h.hb("a", 0, None, 0).unwrap().member_epoch;
    let eb = h.hb("b", 0, None, 0).unwrap().member_epoch;
    let _ = h.hb("a", ea, Some((0..6).collect()), 10).unwrap();
    let r = h.hb("a", ea, Some([0, 1, 2].into()), 20).unwrap();
    assert_eq!(parts(&r.assignment.unwrap_or_default()).len(), 3);
    let r = h.hb("b", eb, Some(BTreeSet::new()), 30).unwrap();
    assert_eq!(parts(&r.assignment.unwrap()), [3, 4, 5].into());
    assert_eq!(parts(&h.group.target["a"]), [0, 1, 2].into());
}

#[test]
fn bad_heartbeats_get_kafkas_errors_and_change_nothing() {
    let mut h = H::new("uniform");
    let e = h.hb("a", 0, None, 0).unwrap().member_epoch;
    let epoch = h.group.group_epoch;
    assert_eq!(
        h.hb("a", e + 5, None, 10).unwrap_err().code,
        ErrorCode::FencedMemberEpoch
    );
    assert_eq!(
        h.hb("ghost", 3, None, 10).unwrap_err().code,
        ErrorCode::UnknownMemberId
    );
    let mut req = HeartbeatRequest {
        member_id: "x".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 1000,
        ..HeartbeatRequest::default()
    };
    let n = |_: &str| Some(6);
    let now = h.t0;
    assert_eq!(
        h.group
            .heartbeat("g", req.clone(), &n, &h.config, String::new, now)
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest,
        "a join must name its topics"
    );
    req.subscribed_topics = Some(vec![TOPIC.into()]);
    req.server_assignor = Some("sticky-ish".into());
    assert_eq!(
        h.group
            .heartbeat("g", req, &n, &h.config, String::new, now)
            .unwrap_err()
            .code,
        ErrorCode::UnsupportedAssignor
    );
    assert_eq!(h.group.group_epoch, epoch, "nothing changed");
    assert_eq!(h.group.members.len(), 1);
    assert_eq!(
        h.group.check_commit("g", "a", e + 1).unwrap_err().code,
        ErrorCode::FencedMemberEpoch
    );
    assert_eq!(
        h.group.check_commit("g", "a", e - 1).unwrap_err().code,
        ErrorCode::StaleMemberEpoch
    );
    assert_eq!(
        h.group.check_commit("g", "", -1).unwrap_err().code,
        ErrorCode::UnknownMemberId
    );
    h.group.check_commit("g", "a", e).unwrap();
}

#[test]
fn silent_members_expire_and_static_members_come_back_without_a_rebalance() {
    let mut h = H::new("uniform");
    let mut req = HeartbeatRequest {
        member_id: "s1".into(),
        member_epoch: 0,
        instance_id: Some("host-1".into()),
        rebalance_timeout_ms: 30_000,
        subscribed_topics: Some(vec![TOPIC.into()]),
        ..HeartbeatRequest::default()
    };
    let n = |t: &str| (t == TOPIC).then_some(6);
    let r = h
        .group
        .heartbeat("g", req.clone(), &n, &h.config, String::new, h.t0)
        .unwrap();
    let epoch = h.group.group_epoch;
    // Leaves for now (-2), comes back as a new member id with the same instance.
    req.member_epoch = STATIC_LEAVE_EPOCH;
    h.group
        .heartbeat("g", req.clone(), &n, &h.config, String::new, h.t0)
        .unwrap();
    req.member_id = "s1-again".into();
    req.member_epoch = 0;
    let back = h
        .group
        .heartbeat("g", req.clone(), &n, &h.config, String::new, h.t0)
        .unwrap();
    assert_eq!(back.assignment, r.assignment, "the same partitions");
    assert_eq!(h.group.group_epoch, epoch, "no rebalance");
    // A second holder of the instance id is refused while the first is active.
    req.member_id = "s1-impostor".into();
    assert_eq!(
        h.group
            .heartbeat("g", req, &n, &h.config, String::new, h.t0)
            .unwrap_err()
            .code,
        ErrorCode::UnreleasedInstanceId
    );
    // Silence past the session timeout removes the member.
    assert!(
        h.group
            .tick(Duration::from_secs(45), h.t0 + Duration::from_secs(46))
    );
    assert!(h.group.members.is_empty());
    assert_eq!(h.group.state(), ConsumerGroupState::Empty);
}

#[test]
fn a_stored_group_resumes_where_it_was() {
    let mut h = H::new("uniform");
    let ea = h.hb("a", 0, None, 0).unwrap().member_epoch;
    let eb = h.hb("b", 0, None, 10).unwrap().member_epoch;
    let _ = h.hb("a", ea, Some((0..6).collect()), 20).unwrap();
    let stored = h.group.stored();
    let json = serde_json::to_vec(&stored).unwrap();
    let back: StoredConsumerGroup = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, stored);
    let restored = ConsumerGroup::restore(back, h.t0);
    assert_eq!(restored.stored(), stored, "nothing lost in the round trip");
    // The restored coordinator accepts the members' current epochs.
    h.group = restored;
    let r = h.hb("b", eb, Some(BTreeSet::new()), 30).unwrap();
    assert_eq!(r.member_epoch, eb);
    assert!(
        h.hb("a", ea, Some(parts(&h.group.members["a"].assigned)), 40)
            .is_ok()
    );
}
