//! Users' SCRAM credentials over the admin gRPC service (Kafka's
//! AlterUserScramCredentials and DescribeUserScramCredentials). Keys are derived by the
//! caller (`kavka-sasl`); a password never leaves this process.

use crate::connection::Client;
use crate::error::ClientError;
use kavka_model::scram::{ScramCredential, ScramMechanism};
use kavka_proto::conv::{check, scram_credential_record};
use kavka_proto::v1;

/// One user's outcome.
pub type UserResult = (String, Result<(), ClientError>);

/// A user's credentials as described: mechanism and iterations each.
pub type UserDescription = (String, Result<Vec<(ScramMechanism, u32)>, ClientError>);

impl Client {
    /// Sets `upsertions` and removes `deletions`; one result per user.
    pub async fn alter_user_scram_credentials(
        &mut self,
        upsertions: &[(String, ScramCredential)],
        deletions: &[(String, ScramMechanism)],
    ) -> Result<Vec<UserResult>, ClientError> {
        let resp = self
            .admin
            .alter_user_scram_credentials(v1::AlterUserScramCredentialsRequest {
                upsertions: upsertions
                    .iter()
                    .map(|(u, c)| scram_credential_record(u, c))
                    .collect(),
                deletions: deletions
                    .iter()
                    .map(|(u, m)| v1::RemoveUserScramCredentialRecord {
                        name: u.clone(),
                        mechanism: i32::from(m.code()),
                    })
                    .collect(),
            })
            .await?
            .into_inner();
        Ok(resp
            .results
            .into_iter()
            .map(|r| (r.user, check(r.error.as_ref()).map_err(ClientError::from)))
            .collect())
    }

    /// The users with SCRAM credentials (`users` empty: all).
    pub async fn describe_user_scram_credentials(
        &mut self,
        users: Vec<String>,
    ) -> Result<Vec<UserDescription>, ClientError> {
        let resp = self
            .admin
            .describe_user_scram_credentials(v1::DescribeUserScramCredentialsRequest { users })
            .await?
            .into_inner();
        Ok(resp
            .users
            .into_iter()
            .map(|u| {
                let creds = check(u.error.as_ref())
                    .map_err(ClientError::from)
                    .and_then(|()| {
                        u.credentials
                            .iter()
                            .map(|c| {
                                let m = i8::try_from(c.mechanism)
                                    .ok()
                                    .and_then(ScramMechanism::from_code)
                                    .ok_or_else(|| {
                                        ClientError::Invalid(format!(
                                            "the broker sent an unknown SCRAM mechanism {}",
                                            c.mechanism
                                        ))
                                    })?;
                                Ok((m, u32::try_from(c.iterations).unwrap_or(0)))
                            })
                            .collect()
                    });
                (u.user, creds)
            })
            .collect())
    }
}
