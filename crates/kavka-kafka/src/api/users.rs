//! AlterUserScramCredentials and DescribeUserScramCredentials: users' SCRAM credentials
//! translated onto the broker API (stored in the metadata log by the controller).
//!
//! Invariants: one result per user; the client's salted password becomes StoredKey and
//! ServerKey here and is dropped (never stored, logged or forwarded); a user whose
//! request part does not parse (unknown mechanism, empty salted password, bad iterations)
//! is answered here and none of that user's changes go ahead, as Kafka does. Altering
//! credentials takes ALTER on the cluster, describing them DESCRIBE (Kafka's rules).

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kavka_model::acl::{Operation, Resource};
use kavka_model::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::BTreeMap;

fn mechanism(code: i8) -> Result<ScramMechanism, KafkaError> {
    ScramMechanism::from_code(code).ok_or_else(|| {
        KafkaError::new(
            ErrorCode::UnsupportedSaslMechanism,
            format!(
                "unknown SCRAM mechanism {code}: expected 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)"
            ),
        )
    })
}

pub(crate) async fn alter_user_scram_credentials(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let allowed = ctx.check(broker, Operation::Alter, Resource::cluster());
    let mut order: Vec<String> = Vec::new();
    let mut refused: BTreeMap<String, KafkaError> = BTreeMap::new();
    let mut upsertions = Vec::new();
    let mut deletions = Vec::new();
    let name = |n: &str, order: &mut Vec<String>| {
        if !order.iter().any(|o| o == n) {
            order.push(n.to_string());
        }
        n.to_string()
    };
    for d in &req.deletions {
        let user = name(&d.name, &mut order);
        match mechanism(d.mechanism) {
            Ok(m) => deletions.push((user, m)),
            Err(e) => {
                refused.entry(user).or_insert(e);
            }
        }
    }
    for u in &req.upsertions {
        let user = name(&u.name, &mut order);
        let credential = mechanism(u.mechanism).and_then(|m| {
            let iterations = u32::try_from(u.iterations)
                .ok()
                .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
                .ok_or_else(|| {
                    KafkaError::new(
                        ErrorCode::UnacceptableCredential,
                        format!(
                            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {}",
                            u.iterations
                        ),
                    )
                })?;
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err(KafkaError::new(
                    ErrorCode::UnacceptableCredential,
                    "salt and salted password must not be empty",
                ));
            }
            Ok(kavka_sasl::scram::credential_from_salted(
                m,
                &u.salted_password,
                u.salt.to_vec(),
                iterations,
            ))
        });
        match credential {
            Ok(c) => upsertions.push((user, c)),
            Err(e) => {
                refused.entry(user).or_insert(e);
            }
        }
    }
    if let Err(e) = allowed {
        for user in &order {
            refused.entry(user.clone()).or_insert(e.clone());
        }
    }
    // A user refused here has none of its changes sent.
    upsertions.retain(|(u, _)| !refused.contains_key(u));
    deletions.retain(|(u, _)| !refused.contains_key(u));
    let decided = if upsertions.is_empty() && deletions.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .admin
            .alter_user_scram_credentials(&upsertions, &deletions)
            .await
    };
    let results = order
        .into_iter()
        .map(|user| {
            let outcome = match refused.remove(&user) {
                Some(e) => Err(e),
                None => match &decided {
                    Err(e) => Err(e.clone()),
                    Ok(rs) => rs
                        .iter()
                        .find(|(u, _)| *u == user)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| {
                            Err(KafkaError::new(
                                ErrorCode::UnknownServerError,
                                format!("the controller gave no result for user '{user}'"),
                            ))
                        }),
                },
            };
            let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
            match outcome {
                Ok(()) => r,
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    r.with_error_code(code).with_error_message(msg)
                }
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub(crate) fn describe_user_scram_credentials(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(e) = ctx.check(broker, Operation::Describe, Resource::cluster()) {
        let (code, msg) = error_parts(&e);
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(code)
            .with_error_message(msg);
    }
    let asked: Vec<String> = req
        .users
        .unwrap_or_default()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let duplicated: std::collections::BTreeSet<String> = asked
        .iter()
        .filter(|u| !seen.insert(u.as_str()))
        .cloned()
        .collect();
    let mut first = std::collections::BTreeSet::new();
    let unique: Vec<String> = asked
        .iter()
        .filter(|u| first.insert(u.as_str()))
        .cloned()
        .collect();
    let results = broker
        .api
        .describe_user_scram_credentials(&unique)
        .into_iter()
        .map(|(user, r)| {
            let r = if duplicated.contains(&user) {
                Err(KafkaError::new(
                    ErrorCode::DuplicateResource,
                    format!("user '{user}' is named more than once"),
                ))
            } else {
                r
            };
            let out = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            match r {
                Ok(creds) => out.with_credential_infos(
                    creds
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.code())
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    out.with_error_code(code).with_error_message(msg)
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
