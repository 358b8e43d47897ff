//! Users' SCRAM credentials (Kafka's AlterUserScramCredentials): checked and turned into
//! credential records.
//!
//! Invariants, as Kafka's ScramControlManager: results are per user; a user's changes in
//! one request apply all or none; a user named twice for one mechanism is
//! DUPLICATE_RESOURCE; an empty name, bad iterations or empty keys are
//! UNACCEPTABLE_CREDENTIAL; deleting a credential that does not exist is
//! RESOURCE_NOT_FOUND. Keys are stored as given (the client salted them); a password
//! never reaches the controller.

use super::Decision;
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::scram::{
    MAX_ITERATIONS, MIN_ITERATIONS, ScramCredential, ScramMechanism, UserOutcome,
};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::{BTreeMap, BTreeSet};

/// Sets `upsertions` and removes `deletions`; one result per user, in the order each
/// user is first named.
pub fn alter_user_scram_credentials(
    image: &MetadataImage,
    upsertions: &[(String, ScramCredential)],
    deletions: &[(String, ScramMechanism)],
) -> Decision<Vec<UserOutcome>> {
    let mut order: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, Vec<MetadataRecord>> = BTreeMap::new();
    let mut failed: BTreeMap<String, KafkaError> = BTreeMap::new();
    let mut seen: BTreeSet<(String, ScramMechanism)> = BTreeSet::new();
    let fail = |failed: &mut BTreeMap<String, KafkaError>, user: &str, code, msg: String| {
        failed
            .entry(user.to_string())
            .or_insert_with(|| KafkaError::new(code, msg));
    };
    let asked = upsertions
        .iter()
        .map(|(u, c)| (u, c.mechanism, Some(c)))
        .chain(deletions.iter().map(|(u, m)| (u, *m, None)));
    for (user, mechanism, upsert) in asked {
        if !order.contains(user) {
            order.push(user.clone());
        }
        if user.is_empty() {
            fail(
                &mut failed,
                user,
                ErrorCode::UnacceptableCredential,
                "user name must not be empty".into(),
            );
            continue;
        }
        if !seen.insert((user.clone(), mechanism)) {
            fail(
                &mut failed,
                user,
                ErrorCode::DuplicateResource,
                format!(
                    "user '{user}' is named more than once for {} in one request",
                    mechanism.name()
                ),
            );
            continue;
        }
        let record = match upsert {
            Some(c) => {
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&c.iterations) {
                    fail(
                        &mut failed,
                        user,
                        ErrorCode::UnacceptableCredential,
                        format!(
                            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {}",
                            c.iterations
                        ),
                    );
                    continue;
                }
                if c.salt.is_empty() || c.stored_key.is_empty() || c.server_key.is_empty() {
                    fail(
                        &mut failed,
                        user,
                        ErrorCode::UnacceptableCredential,
                        "salt and keys must not be empty".into(),
                    );
                    continue;
                }
                MetadataRecord::UserScramCredential {
                    name: user.clone(),
                    credential: c.clone(),
                }
            }
            None => {
                if image.scram_credential(user, mechanism).is_none() {
                    fail(
                        &mut failed,
                        user,
                        ErrorCode::ResourceNotFound,
                        format!("user '{user}' has no {} credential", mechanism.name()),
                    );
                    continue;
                }
                MetadataRecord::RemoveUserScramCredential {
                    name: user.clone(),
                    mechanism,
                }
            }
        };
        changes.entry(user.clone()).or_default().push(record);
    }
    let records = order
        .iter()
        .filter(|u| !failed.contains_key(*u))
        .flat_map(|u| changes.remove(u).unwrap_or_default())
        .collect();
    let reply = order
        .into_iter()
        .map(|u| {
            let r = failed.remove(&u).map_or(Ok(()), Err);
            (u, r)
        })
        .collect();
    Decision { records, reply }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(m: ScramMechanism, iterations: u32) -> ScramCredential {
        ScramCredential {
            mechanism: m,
            salt: vec![1],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations,
        }
    }

    fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let (next, _, refused) = img.replay(img.offset + 1, records);
        assert!(refused.is_empty());
        next
    }

    fn codes(d: &Decision<Vec<UserOutcome>>) -> Vec<(&str, Option<ErrorCode>)> {
        d.reply
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().err().map(|e| e.code)))
            .collect()
    }

    use ScramMechanism::{Sha256, Sha512};

    #[test]
    fn results_are_per_user_and_a_users_changes_apply_all_or_none() {
        let img = MetadataImage::empty();
        let d = alter_user_scram_credentials(
            &img,
            &[
                ("alice".into(), cred(Sha256, 4096)),
                ("alice".into(), cred(Sha512, 8192)),
                ("bob".into(), cred(Sha256, 4096)),
                ("bob".into(), cred(Sha512, 100)),
                ("carol".into(), cred(Sha256, 4096)),
                ("carol".into(), cred(Sha256, 4096)),
                ("".into(), cred(Sha256, 4096)),
            ],
            &[("dave".into(), Sha256)],
        );
        assert_eq!(
            codes(&d),
            vec![
                ("alice", None),
                ("bob", Some(ErrorCode::UnacceptableCredential)),
                ("carol", Some(ErrorCode::DuplicateResource)),
                ("", Some(ErrorCode::UnacceptableCredential)),
                ("dave", Some(ErrorCode::ResourceNotFound)),
            ]
        );
        assert_eq!(d.records.len(), 2, "only alice's two credentials");
        let img = apply(&img, &d.records);
        assert!(img.scram_credential("alice", Sha512).is_some());
        assert!(
            img.scram_credential("bob", Sha256).is_none(),
            "bob: none applied"
        );
        // Deleting one of alice's credentials leaves the other.
        let d = alter_user_scram_credentials(&img, &[], &[("alice".into(), Sha256)]);
        assert_eq!(codes(&d), vec![("alice", None)]);
        let img = apply(&img, &d.records);
        assert!(img.scram_credential("alice", Sha256).is_none());
        assert_eq!(
            img.scram_credential("alice", Sha512).map(|c| c.iterations),
            Some(8192)
        );
    }
}
