#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use super::*;
use std::collections::BTreeMap;

/// An entity's (type, name) components, and what it reads as or the error's words.
type EntityCase<'a> = (&'a [(&'a str, Option<&'a str>)], &'a str);
/// (key, value, remove, Ok(value) or the error's words).
type KeyCase<'a> = (&'a str, f64, bool, Result<Option<f64>, &'a str>);

fn n(s: &str) -> EntityName {
    EntityName::Name(s.into())
}

fn entity(user: Option<EntityName>, client: Option<EntityName>) -> QuotaEntity {
    QuotaEntity::new(user, client).unwrap()
}

#[test]
fn entities_are_checked_as_kafka_does() {
    let ok: &[EntityCase] = &[
        (&[("user", Some("alice"))], "user=alice"),
        (&[("user", None)], "user=<default>"),
        (
            &[("client-id", Some("app")), ("user", Some("alice"))],
            "user=alice, client-id=app",
        ),
        (&[("client-id", None)], "client-id=<default>"),
    ];
    for (components, want) in ok {
        let e = QuotaEntity::from_components(components.iter().copied()).unwrap();
        assert_eq!(e.to_string(), *want);
    }
    let bad: &[EntityCase] = &[
        (&[], "Invalid empty client quota entity"),
        (
            &[("group", Some("g"))],
            "Unhandled client quota entity type: group",
        ),
        (&[("ip", Some("1.2.3.4"))], "ip quotas"),
        (&[("user", Some(""))], "Empty user not supported"),
        (
            &[("user", Some("a")), ("user", Some("b"))],
            "Duplicate entity type: user",
        ),
    ];
    for (components, want) in bad {
        let e = QuotaEntity::from_components(components.iter().copied()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains(want), "{} lacks {want}", e.message);
    }
}

#[test]
fn keys_and_values_are_checked_as_kafka_does() {
    let table: &[KeyCase] = &[
        (
            "producer_byte_rate",
            1_048_576.0,
            false,
            Ok(Some(1_048_576.0)),
        ),
        ("consumer_byte_rate", 1.0, false, Ok(Some(1.0))),
        ("request_percentage", 12.5, false, Ok(Some(12.5))),
        ("producer_byte_rate", -5.0, true, Ok(None)),
        (
            "producer_byte_rate",
            -1.0,
            false,
            Err("must be greater than 0"),
        ),
        (
            "consumer_byte_rate",
            0.0,
            false,
            Err("must be greater than 0"),
        ),
        ("producer_byte_rate", 1.5, false, Err("is not a valid LONG")),
        (
            "producer_byte_rate",
            1e30,
            false,
            Err("too large for a LONG"),
        ),
        (
            "request_percentage",
            f64::INFINITY,
            false,
            Err("not a valid DOUBLE"),
        ),
        (
            "request_percentage",
            f64::NAN,
            false,
            Err("must be greater than 0"),
        ),
        (
            "bogus_rate",
            1.0,
            false,
            Err("Invalid configuration key bogus_rate"),
        ),
        (
            "controller_mutation_rate",
            1.0,
            false,
            Err("Invalid configuration key"),
        ),
    ];
    for (key, value, remove, want) in table {
        let got = parse_ops([(*key, *value, *remove)]);
        match want {
            Ok(v) => assert_eq!(got.unwrap()[0].1.map(QuotaValue::get), *v, "{key}"),
            Err(words) => {
                let e = got.unwrap_err();
                assert_eq!(e.code, ErrorCode::InvalidRequest);
                assert!(e.message.contains(words), "{key}: {}", e.message);
            }
        }
    }
    let dup = parse_ops([
        ("producer_byte_rate", 1.0, false),
        ("producer_byte_rate", 2.0, false),
    ]);
    assert!(dup.unwrap_err().message.contains("Duplicate quota key"));
    assert_eq!(
        QuotaKey::ProducerByteRate
            .value(1_048_576.0)
            .unwrap()
            .to_string(),
        "1048576"
    );
    assert_eq!(
        QuotaKey::RequestPercentage.value(12.5).unwrap().to_string(),
        "12.5"
    );
}

#[test]
fn filters_match_exact_default_and_specified_parts() {
    let alice = entity(Some(n("alice")), None);
    let alice_app = entity(Some(n("alice")), Some(n("app")));
    let default_user = entity(Some(EntityName::Default), None);
    let default_client = entity(None, Some(EntityName::Default));
    let all = [&alice, &alice_app, &default_user, &default_client];
    let user = |m: ComponentMatch| (EntityType::User, m);
    let client = |m: ComponentMatch| (EntityType::ClientId, m);
    // (components, strict, which of `all` match)
    let table = vec![
        (
            vec![user(ComponentMatch::Exact("alice".into()))],
            false,
            vec![0, 1],
        ),
        (
            vec![user(ComponentMatch::Exact("alice".into()))],
            true,
            vec![0],
        ),
        (vec![user(ComponentMatch::Default)], false, vec![2]),
        (vec![user(ComponentMatch::Specified)], false, vec![0, 1]),
        (vec![user(ComponentMatch::Specified)], true, vec![0]),
        (
            vec![
                user(ComponentMatch::Exact("alice".into())),
                client(ComponentMatch::Specified),
            ],
            true,
            vec![1],
        ),
        (vec![client(ComponentMatch::Default)], false, vec![3]),
        (vec![], false, vec![0, 1, 2, 3]),
        (vec![], true, vec![]),
    ];
    for (components, strict, want) in table {
        let f = QuotaFilter::new(components.clone(), strict).unwrap();
        let got: Vec<usize> = (0..all.len()).filter(|&i| f.matches(all[i])).collect();
        assert_eq!(got, want, "{components:?} strict={strict}");
    }
    let dup = QuotaFilter::new(
        vec![
            user(ComponentMatch::Default),
            user(ComponentMatch::Specified),
        ],
        false,
    );
    assert_eq!(dup.unwrap_err().code, ErrorCode::InvalidRequest);
    assert_eq!(
        ComponentMatch::from_wire(0, None).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        ComponentMatch::from_wire(7, None).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        ComponentMatch::from_wire(1, Some("x")).unwrap(),
        ComponentMatch::Default
    );
}

#[test]
fn the_quota_that_applies_follows_kafkas_precedence() {
    use EntityName::Default as D;
    let key = QuotaKey::ProducerByteRate;
    // Entities set, each with a distinct quota: its position in Kafka's order (1..=8).
    let levels = [
        (Some(n("alice")), Some(n("app"))),
        (Some(n("alice")), Some(D)),
        (Some(n("alice")), None),
        (Some(D), Some(n("app"))),
        (Some(D), Some(D)),
        (Some(D), None),
        (None, Some(n("app"))),
        (None, Some(D)),
    ];
    // Remove levels from the top one at a time: the next one applies, measured per the
    // entity that matched.
    let want_measured = [
        ("alice", "app"),
        ("alice", "app"),
        ("alice", ""),
        ("alice", "app"),
        ("alice", "app"),
        ("alice", ""),
        ("", "app"),
        ("", "app"),
    ];
    for first in 0..levels.len() {
        let stored: BTreeMap<QuotaEntity, f64> = levels[first..]
            .iter()
            .enumerate()
            .map(|(i, (u, c))| (entity(u.clone(), c.clone()), (first + i + 1) as f64))
            .collect();
        let got = resolve(
            |e, k| (k == key).then(|| stored.get(e).copied()).flatten(),
            "alice",
            "app",
            key,
        )
        .unwrap();
        assert_eq!(got.quota, (first + 1) as f64, "level {}", first + 1);
        assert_eq!(
            (got.user.as_str(), got.client_id.as_str()),
            want_measured[first],
            "level {}",
            first + 1
        );
    }
    // Another key, or nothing stored: no quota.
    assert!(resolve(|_, _| None, "alice", "app", key).is_none());
    // Another user falls through alice's entries to the defaults.
    let stored: BTreeMap<QuotaEntity, f64> = [
        (entity(Some(n("alice")), None), 1.0),
        (entity(None, Some(D)), 8.0),
    ]
    .into_iter()
    .collect();
    let got = resolve(|e, _| stored.get(e).copied(), "bob", "tool", key).unwrap();
    assert_eq!(
        (got.quota, got.user.as_str(), got.client_id.as_str()),
        (8.0, "", "tool")
    );
}
