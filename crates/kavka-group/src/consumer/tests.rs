use super::*;

const TOPIC: &str = "orders";

impl Topics for BTreeMap<String, i32> {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.get(topic).copied()
    }

    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        self.keys().for_each(|t| f(t));
    }
}

/// Topics with their partition counts.
fn topics(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

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
            &topics(&[(TOPIC, n)]),
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
    let n = topics(&[(TOPIC, 6)]);
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
    let n = topics(&[(TOPIC, 6)]);
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

// ---- regex subscriptions ----------------------------------------------------------

/// A group driven over several topics, as a client would: each heartbeat reports what
/// the member holds (its last assignment).
struct Rx {
    group: ConsumerGroup,
    config: GroupConfig,
    topics: BTreeMap<String, i32>,
    t0: Instant,
    held: BTreeMap<String, (i32, Assignment)>,
}

impl Rx {
    fn new(list: &[(&str, i32)]) -> Self {
        let config = GroupConfig::default();
        Self {
            group: ConsumerGroup::new(&config),
            config,
            topics: topics(list),
            t0: Instant::now(),
            held: BTreeMap::new(),
        }
    }

    /// One heartbeat; `names`/`regex` None: unchanged. A member not yet held joins.
    fn beat(
        &mut self,
        member: &str,
        names: Option<&[&str]>,
        regex: Option<&str>,
    ) -> Result<HeartbeatResult, KafkaError> {
        let (epoch, owned) = match self.held.get(member) {
            Some((e, a)) => (*e, Some(a.clone())),
            None => (0, None),
        };
        let req = HeartbeatRequest {
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topics: names.map(|ns| ns.iter().map(|t| t.to_string()).collect()),
            subscribed_regex: regex.map(str::to_string),
            owned,
            ..HeartbeatRequest::default()
        };
        let r = self.group.heartbeat(
            "g",
            req,
            &self.topics,
            &self.config,
            || "generated".into(),
            self.t0,
        )?;
        let held = self.held.entry(member.to_string()).or_default();
        held.0 = r.member_epoch;
        if let Some(a) = &r.assignment {
            held.1 = a.clone();
        }
        Ok(r)
    }

    /// Heartbeats with nothing new until the member's assignment settles.
    fn settle(&mut self, member: &str) -> Assignment {
        for _ in 0..4 {
            self.beat(member, None, None).unwrap();
        }
        self.held[member].1.clone()
    }

    /// The topics the member holds.
    fn topics_of(&mut self, member: &str) -> Vec<String> {
        self.settle(member).into_keys().collect()
    }
}

const CLUSTER: &[(&str, i32)] = &[
    ("events-a", 2),
    ("events-b", 1),
    ("other", 3),
    ("x-events-a", 1),
    ("__consumer_offsets", 50),
];

#[test]
fn a_regex_matches_whole_topic_names_and_never_internal_topics() {
    let table: &[(&str, &[&str])] = &[
        ("events-.*", &["events-a", "events-b"]),
        ("^events-.*", &["events-a", "events-b"]),
        ("^events-.*$", &["events-a", "events-b"]),
        ("events-a", &["events-a"]),
        ("events", &[]),
        ("EVENTS-A", &[]),
        ("(?i)EVENTS-A", &["events-a"]),
        ("events-a|other", &["events-a", "other"]),
        (".*", &["events-a", "events-b", "other", "x-events-a"]),
        ("__.*", &[]),
    ];
    for (regex, want) in table {
        let mut g = Rx::new(CLUSTER);
        let r = g.beat("m", None, Some(regex)).unwrap();
        assert_eq!(r.member_epoch, 1, "{regex}: joins");
        assert_eq!(g.topics_of("m"), *want, "regex {regex}");
        assert_eq!(
            g.group.members["m"]
                .subscribed_regex
                .as_ref()
                .map(TopicRegex::as_str),
            Some(*regex)
        );
    }
}

#[test]
fn a_topic_created_later_joins_the_subscription_and_a_deleted_one_leaves_it() {
    let mut g = Rx::new(&[("events-a", 2), ("orders", 1)]);
    g.beat("m", None, Some("^events-.*")).unwrap();
    assert_eq!(g.topics_of("m"), ["events-a"]);
    let epoch = g.group.group_epoch;

    g.topics.insert("events-b".into(), 3);
    g.topics.insert("unrelated".into(), 3);
    let a = g.settle("m");
    assert_eq!(
        g.group.group_epoch,
        epoch + 1,
        "a new matching topic bumps once"
    );
    assert_eq!(a["events-b"], (0..3).collect::<BTreeSet<i32>>());
    assert_eq!(a["events-a"], (0..2).collect::<BTreeSet<i32>>());
    assert_eq!(a.len(), 2);
    assert_eq!(g.group.members["m"].member_epoch, epoch + 1);

    g.topics.remove("events-a");
    assert_eq!(g.topics_of("m"), ["events-b"]);
    assert_eq!(g.group.group_epoch, epoch + 2, "a deleted one too");
    assert_eq!(g.group.state(), ConsumerGroupState::Stable);

    // A topic that matches nothing changes nothing.
    g.topics.insert("orders-2".into(), 1);
    g.settle("m");
    assert_eq!(g.group.group_epoch, epoch + 2);
}

#[test]
fn members_share_a_regex_topic_with_members_subscribed_by_name() {
    let mut g = Rx::new(&[("events-a", 4)]);
    g.beat("by-regex", None, Some("events-.*")).unwrap();
    g.beat("by-name", Some(&["events-a"]), None).unwrap();
    for _ in 0..3 {
        g.settle("by-regex");
        g.settle("by-name");
    }
    let a = &g.held["by-regex"].1["events-a"];
    let b = &g.held["by-name"].1["events-a"];
    assert_eq!((a.len(), b.len()), (2, 2));
    assert!(a.is_disjoint(b));
}

#[test]
fn an_invalid_regex_is_refused_and_changes_nothing() {
    let invalid = [
        "^events-(",
        "a)|(b",
        "[z-a]",
        "*",
        "(?<n>a)(?<n>b)",
        // RE2 has no backreferences (POSIX regcomp, which librdkafka checks with, has).
        r"^events-(a)\1",
        // Compiles past the size limit.
        "(a{1000}){1000}",
    ];
    let mut g = Rx::new(CLUSTER);
    g.beat("m", Some(&["other"]), None).unwrap();
    g.settle("m");
    for regex in invalid {
        let before = g.group.stored();
        for member in ["m", "newcomer"] {
            let e = g.beat(member, None, Some(regex)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRegularExpression, "{regex}");
            assert!(e.message.contains(&format!("`{regex}`")), "{}", e.message);
            assert_eq!(g.group.stored(), before, "{regex}: nothing changed");
            g.held.remove("newcomer");
        }
    }
    assert_eq!(g.group.members.len(), 1);
}

#[test]
fn an_absent_regex_keeps_the_subscription_and_an_empty_one_clears_it() {
    let mut g = Rx::new(&[("events-a", 1), ("orders", 1)]);
    g.beat("m", Some(&["orders"]), Some("events-.*")).unwrap();
    assert_eq!(
        g.topics_of("m"),
        ["events-a", "orders"],
        "names and regex, united"
    );
    let epoch = g.group.group_epoch;

    g.beat("m", None, None).unwrap();
    assert_eq!(g.topics_of("m"), ["events-a", "orders"]);
    assert_eq!(g.group.group_epoch, epoch, "unchanged");

    // The same regex again is no change either.
    g.beat("m", None, Some("events-.*")).unwrap();
    assert_eq!(g.group.group_epoch, epoch);

    g.beat("m", None, Some("")).unwrap();
    assert_eq!(g.topics_of("m"), ["orders"]);
    assert!(g.group.members["m"].subscribed_regex.is_none());
    assert_eq!(g.group.group_epoch, epoch + 1);

    // A member may subscribe by regex alone, but must subscribe to something to join.
    let e = g.beat("n", Some(&[]), Some("")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

#[test]
fn a_stored_regex_survives_the_round_trip_and_old_records_still_read() {
    let mut g = Rx::new(&[("events-a", 1)]);
    g.beat("m", None, Some("^events-.*")).unwrap();
    g.settle("m");
    let stored = g.group.stored();
    let json = serde_json::to_vec(&stored).unwrap();
    let back: StoredConsumerGroup = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        back.members[0].subscribed_regex.as_deref(),
        Some("^events-.*")
    );
    g.group = ConsumerGroup::restore(back, g.t0);
    assert_eq!(g.group.stored(), stored);
    g.topics.insert("events-b".into(), 1);
    assert_eq!(g.topics_of("m"), ["events-a", "events-b"], "still resolved");

    // A record from before regex subscriptions has no such field.
    let mut old = serde_json::to_value(&stored).unwrap();
    old["members"][0]
        .as_object_mut()
        .unwrap()
        .remove("subscribed_regex");
    let old: StoredConsumerGroup = serde_json::from_value(old).unwrap();
    assert_eq!(old.members[0].subscribed_regex, None);
}
