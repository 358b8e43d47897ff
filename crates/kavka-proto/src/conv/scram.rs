//! Users' SCRAM credentials <-> protobuf. Keys travel salted, never a password; a
//! mechanism code we do not know is UNSUPPORTED_SASL_MECHANISM naming it.

use crate::v1;
use kavka_model::scram::{ScramCredential, ScramMechanism};
use kavka_model::{ErrorCode, KafkaError};

fn mechanism(code: i32) -> Result<ScramMechanism, KafkaError> {
    i8::try_from(code)
        .ok()
        .and_then(ScramMechanism::from_code)
        .ok_or_else(|| {
            KafkaError::new(
                ErrorCode::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism code {code}: expected 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)"),
            )
        })
}

/// A user's credential on the wire.
pub fn scram_credential_record(user: &str, c: &ScramCredential) -> v1::UserScramCredentialRecord {
    v1::UserScramCredentialRecord {
        name: user.to_string(),
        mechanism: i32::from(c.mechanism.code()),
        salt: c.salt.clone().into(),
        stored_key: c.stored_key.clone().into(),
        server_key: c.server_key.clone().into(),
        iterations: i32::try_from(c.iterations).unwrap_or(i32::MAX),
    }
}

/// What an AlterUserScramCredentials asks: credentials to set and to remove, per user.
pub type ScramChanges = (
    Vec<(String, ScramCredential)>,
    Vec<(String, ScramMechanism)>,
);

/// The upsertions and deletions an AlterUserScramCredentials asks for.
pub fn scram_changes(
    req: &v1::AlterUserScramCredentialsRequest,
) -> Result<ScramChanges, KafkaError> {
    let upsertions = req
        .upsertions
        .iter()
        .map(|u| {
            Ok((
                u.name.clone(),
                ScramCredential {
                    mechanism: mechanism(u.mechanism)?,
                    salt: u.salt.to_vec(),
                    stored_key: u.stored_key.to_vec(),
                    server_key: u.server_key.to_vec(),
                    iterations: u32::try_from(u.iterations).map_err(|_| {
                        KafkaError::new(
                            ErrorCode::UnacceptableCredential,
                            format!("iterations {} is negative", u.iterations),
                        )
                    })?,
                },
            ))
        })
        .collect::<Result<_, KafkaError>>()?;
    let deletions = req
        .deletions
        .iter()
        .map(|d| Ok((d.name.clone(), mechanism(d.mechanism)?)))
        .collect::<Result<_, KafkaError>>()?;
    Ok((upsertions, deletions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_convert_and_unknown_mechanisms_are_named() {
        let c = ScramCredential {
            mechanism: ScramMechanism::Sha512,
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations: 4096,
        };
        let mut req = v1::AlterUserScramCredentialsRequest {
            upsertions: vec![scram_credential_record("alice", &c)],
            deletions: vec![v1::RemoveUserScramCredentialRecord {
                name: "bob".into(),
                mechanism: 1,
            }],
        };
        let (up, del) = scram_changes(&req).unwrap();
        assert_eq!(up, vec![("alice".to_string(), c)]);
        assert_eq!(del, vec![("bob".to_string(), ScramMechanism::Sha256)]);
        req.deletions[0].mechanism = 7;
        let e = scram_changes(&req).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedSaslMechanism);
        assert!(e.message.contains("code 7"), "{}", e.message);
    }
}
