//! Client quotas (Kafka's AlterClientQuotas, as its ClientQuotaControlManager decides
//! it): each entry is checked and turned into quota records.
//!
//! Invariants: one result per entry, in request order; an entry applies all of its ops
//! or none; a refused entry is INVALID_REQUEST with Kafka's message (unknown entity type,
//! duplicate or empty entity, unknown key, a value not greater than 0 or not a whole
//! number for a byte rate); removing a quota that is not set succeeds and writes nothing;
//! `validate_only` checks everything and writes nothing. Must not depend on the broker or
//! any listener.

use super::Decision;
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::quota::{AlterationOutcome, QuotaAlteration};

/// Sets and removes the quotas `entries` ask for; one outcome per entry, in order.
pub fn alter_client_quotas(
    image: &MetadataImage,
    entries: &[QuotaAlteration],
    validate_only: bool,
) -> Decision<Vec<AlterationOutcome>> {
    let mut records = Vec::new();
    let reply = entries
        .iter()
        .map(|entry| {
            let (entity, ops) = entry.check()?;
            for (key, value) in ops {
                let present = image.client_quota(&entity, key).is_some();
                if value.is_some() || present {
                    records.push(MetadataRecord::ClientQuota {
                        entity: entity.clone(),
                        key,
                        value,
                    });
                }
            }
            Ok(())
        })
        .collect();
    if validate_only {
        records.clear();
    }
    Decision { records, reply }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure

    use super::*;
    use kavka_model::ErrorCode;
    use kavka_model::quota::{EntityName, QuotaEntity, QuotaKey};

    fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, f64, bool)]) -> QuotaAlteration {
        QuotaAlteration {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            ops: ops
                .iter()
                .map(|(k, v, r)| (k.to_string(), *v, *r))
                .collect(),
        }
    }

    fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let (next, _, refused) = img.replay(img.offset + 1, records);
        assert!(refused.is_empty());
        next
    }

    #[test]
    fn entries_are_checked_one_by_one_and_apply_all_or_none() {
        let img = MetadataImage::empty();
        let entries = [
            entry(
                &[("user", Some("alice")), ("client-id", Some("app"))],
                &[
                    ("producer_byte_rate", 1024.0, false),
                    ("consumer_byte_rate", 2048.0, false),
                ],
            ),
            entry(
                &[("user", Some("bob"))],
                &[("producer_byte_rate", 10.0, false), ("bogus", 1.0, false)],
            ),
            entry(
                &[("user", Some("carol"))],
                &[("producer_byte_rate", -1.0, false)],
            ),
            entry(
                &[("group", Some("g"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
            entry(
                &[("user", None), ("user", Some("x"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
            entry(&[], &[("producer_byte_rate", 1.0, false)]),
            entry(
                &[("client-id", None)],
                &[("request_percentage", 12.5, false)],
            ),
            // Removing what is not set: fine, nothing written.
            entry(
                &[("user", Some("dave"))],
                &[("consumer_byte_rate", 0.0, true)],
            ),
        ];
        // (entry's outcome: None ok, or the words of its INVALID_REQUEST)
        let want: [Option<&str>; 8] = [
            None,
            Some("Invalid configuration key bogus"),
            Some("Quota producer_byte_rate must be greater than 0"),
            Some("Unhandled client quota entity type: group"),
            Some("Duplicate entity type: user"),
            Some("Invalid empty client quota entity"),
            None,
            None,
        ];
        let d = alter_client_quotas(&img, &entries, false);
        for (i, (got, want)) in d.reply.iter().zip(want).enumerate() {
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(words)) => {
                    assert_eq!(e.code, ErrorCode::InvalidRequest, "entry {i}");
                    assert!(e.message.contains(words), "entry {i}: {}", e.message);
                }
                (got, want) => panic!("entry {i}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            d.records.len(),
            3,
            "alice's two quotas and the client default"
        );
        let img = apply(&img, &d.records);
        let alice_app = QuotaEntity::new(
            Some(EntityName::Name("alice".into())),
            Some(EntityName::Name("app".into())),
        )
        .unwrap();
        assert_eq!(
            img.client_quota(&alice_app, QuotaKey::ConsumerByteRate)
                .map(|v| v.get()),
            Some(2048.0)
        );
        let bob = QuotaEntity::new(Some(EntityName::Name("bob".into())), None).unwrap();
        assert!(
            img.client_quota(&bob, QuotaKey::ProducerByteRate).is_none(),
            "bob: none applied"
        );

        // Removing alice's consumer quota writes one removal; validate_only writes none.
        let remove = [entry(
            &[("user", Some("alice")), ("client-id", Some("app"))],
            &[("consumer_byte_rate", 0.0, true)],
        )];
        let checked = alter_client_quotas(&img, &remove, true);
        assert!(checked.records.is_empty());
        assert!(checked.reply[0].is_ok());
        let d = alter_client_quotas(&img, &remove, false);
        assert_eq!(d.records.len(), 1);
        let img = apply(&img, &d.records);
        assert!(
            img.client_quota(&alice_app, QuotaKey::ConsumerByteRate)
                .is_none()
        );
        assert!(
            img.client_quota(&alice_app, QuotaKey::ProducerByteRate)
                .is_some()
        );
    }
}
