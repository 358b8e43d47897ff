//! SASL authentication of one connection (KIP-43, KIP-152): SaslHandshake v1 picks a
//! mechanism, SaslAuthenticate carries its messages. PLAIN checks the password against
//! the user's SCRAM credential (one store of salted keys, as Redpanda does); SCRAM-SHA-256
//! and SCRAM-SHA-512 run the RFC 5802 exchange (`kavka-sasl`).
//!
//! Invariants: on a SASL listener nothing but ApiVersions, SaslHandshake and
//! SaslAuthenticate is served before authentication (anything else closes the
//! connection); a failed authentication is answered SASL_AUTHENTICATION_FAILED after a
//! short delay, then the connection closes; passwords and keys are never logged. The
//! decisions are here, the bytes are `conn`'s.
//!
//! Re-authentication (KIP-368): an authenticated connection may run SaslHandshake and
//! SaslAuthenticate again; meanwhile it keeps its principal, and the new exchange must
//! authenticate the same principal (another one is refused and the connection closes).
//! `conn` ends a session that outlives `connections.max.reauth.ms` without
//! re-authenticating.

use kavka_metadata::MetadataImage;
use kavka_model::ErrorCode;
use kavka_model::acl::Principal;
use kavka_model::scram::ScramMechanism;
use kavka_sasl::scram::{ServerExchange, ServerFirst};
use std::time::Duration;

/// Kafka's `connection.failed.authentication.delay.ms` default: a failed authentication
/// is answered this much later, so guessing passwords is slow.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// The mechanisms a listener offers by default (Kafka's names; GSSAPI and OAUTHBEARER
/// are not served).
pub const DEFAULT_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn from_name(name: &str) -> Option<Self> {
        if name == "PLAIN" {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .map(Mechanism::Scram)
    }
}

enum State {
    AwaitHandshake,
    Chosen(Mechanism),
    ScramFirst(Box<ServerFirst>),
    Authenticated(Principal),
    Failed,
}

/// What a refused step answers: its error, the message, and whether the connection
/// must close after the answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

/// One connection's SASL state.
pub(crate) struct SaslSession {
    state: State,
    enabled: Vec<String>,
    /// The principal the connection acts as: the last one authenticated (kept while a
    /// re-authentication runs).
    principal: Option<Principal>,
    /// Completed authentications on this connection (the first, then re-authentications).
    completed: u64,
}

impl SaslSession {
    pub(crate) fn new(enabled: &[String]) -> Self {
        Self {
            state: State::AwaitHandshake,
            enabled: enabled.to_vec(),
            principal: None,
            completed: 0,
        }
    }

    /// The authenticated principal, once there is one.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// How many authentications completed on this connection.
    pub(crate) fn completed(&self) -> u64 {
        self.completed
    }

    /// A step reached an authenticated principal: the first one, or the same one again
    /// (a re-authentication as someone else is refused).
    fn authenticated(&mut self, who: Principal) -> Result<(), Refusal> {
        if let Some(before) = &self.principal
            && *before != who
        {
            return Err(Refusal {
                code: ErrorCode::SaslAuthenticationFailed,
                message: format!(
                    "re-authentication must keep the principal: it was {before}, now {who}"
                ),
            });
        }
        self.state = State::Authenticated(who.clone());
        self.principal = Some(who);
        self.completed += 1;
        Ok(())
    }

    /// The mechanisms offered, for SaslHandshake's answer.
    pub(crate) fn enabled(&self) -> &[String] {
        &self.enabled
    }

    /// SaslHandshake: picks `mechanism` if it is enabled.
    /// On an authenticated connection, it starts a re-authentication (KIP-368).
    pub(crate) fn handshake(&mut self, mechanism: &str) -> Result<(), Refusal> {
        if !matches!(self.state, State::AwaitHandshake | State::Authenticated(_)) {
            return Err(Refusal {
                code: ErrorCode::IllegalSaslState,
                message: "SaslHandshake while an authentication is under way".into(),
            });
        }
        match Mechanism::from_name(mechanism)
            .filter(|_| self.enabled.iter().any(|e| e == mechanism))
        {
            Some(m) => {
                self.state = State::Chosen(m);
                Ok(())
            }
            None => {
                self.state = State::Failed;
                Err(Refusal {
                    code: ErrorCode::UnsupportedSaslMechanism,
                    message: format!(
                        "mechanism '{mechanism}' is not enabled on this listener (enabled: {})",
                        self.enabled.join(", ")
                    ),
                })
            }
        }
    }

    /// SaslAuthenticate: one message of the chosen mechanism; the bytes to answer with
    /// (empty when the mechanism has nothing to say). `image` holds the credentials.
    pub(crate) fn authenticate(
        &mut self,
        bytes: &[u8],
        image: &MetadataImage,
    ) -> Result<Vec<u8>, Refusal> {
        let failed = |message: String| Refusal {
            code: ErrorCode::SaslAuthenticationFailed,
            message,
        };
        let state = std::mem::replace(&mut self.state, State::Failed);
        match state {
            State::Chosen(Mechanism::Plain) => {
                let c = kavka_sasl::plain::parse(bytes).map_err(|e| failed(e.to_string()))?;
                let known = ScramMechanism::ALL
                    .into_iter()
                    .rev()
                    .find_map(|m| image.scram_credential(&c.username, m));
                match known {
                    Some(cred)
                        if kavka_sasl::scram::verify_password(cred, c.password.as_bytes()) =>
                    {
                        self.authenticated(Principal::user(&c.username))?;
                        Ok(Vec::new())
                    }
                    _ => Err(invalid_credentials("PLAIN")),
                }
            }
            State::Chosen(Mechanism::Scram(m)) => {
                let (first, answer) = ServerExchange::start(
                    m,
                    bytes,
                    |user| image.scram_credential(user, m).cloned(),
                    &kavka_sasl::scram::random_bytes(),
                )
                .map_err(|e| failed(format!("{}: {e}", m.name())))?;
                self.state = State::ScramFirst(Box::new(first));
                Ok(answer)
            }
            State::ScramFirst(first) => match first.finish(bytes) {
                Ok((user, answer)) => {
                    self.authenticated(Principal::user(user))?;
                    Ok(answer)
                }
                Err(kavka_sasl::scram::ScramError::InvalidCredentials) => {
                    Err(invalid_credentials("SCRAM"))
                }
                Err(e) => Err(failed(e.to_string())),
            },
            State::AwaitHandshake => Err(Refusal {
                code: ErrorCode::IllegalSaslState,
                message: "SaslAuthenticate before SaslHandshake".into(),
            }),
            State::Authenticated(p) => {
                self.state = State::Authenticated(p);
                Err(Refusal {
                    code: ErrorCode::IllegalSaslState,
                    message: "already authenticated: re-authenticate with SaslHandshake first"
                        .into(),
                })
            }
            State::Failed => Err(Refusal {
                code: ErrorCode::IllegalSaslState,
                message: "authentication already failed on this connection".into(),
            }),
        }
    }
}

/// Kafka's words for a wrong user or password: the same for both, so they do not tell
/// which users exist.
fn invalid_credentials(mechanism: &str) -> Refusal {
    Refusal {
        code: ErrorCode::SaslAuthenticationFailed,
        message: format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::MetadataRecord;

    fn image_with(user: &str, password: &[u8]) -> MetadataImage {
        let records: Vec<MetadataRecord> = ScramMechanism::ALL
            .into_iter()
            .map(|m| MetadataRecord::UserScramCredential {
                name: user.into(),
                credential: kavka_sasl::scram::credential(
                    m,
                    password,
                    kavka_sasl::scram::random_bytes(),
                    4096,
                )
                .unwrap(),
            })
            .collect();
        MetadataImage::empty().replay(0, &records).0
    }

    fn enabled() -> Vec<String> {
        DEFAULT_MECHANISMS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_checks_the_password_against_the_scram_credential() {
        let img = image_with("alice", b"s3cret");
        // (token) -> authenticated principal or the refusal's code
        let table: [(&[u8], Result<&str, ErrorCode>); 4] = [
            (b"\0alice\0s3cret", Ok("User:alice")),
            (b"\0alice\0wrong", Err(ErrorCode::SaslAuthenticationFailed)),
            (
                b"\0nobody\0s3cret",
                Err(ErrorCode::SaslAuthenticationFailed),
            ),
            (b"garbage", Err(ErrorCode::SaslAuthenticationFailed)),
        ];
        for (token, want) in table {
            let mut s = SaslSession::new(&enabled());
            s.handshake("PLAIN").unwrap();
            let got = s
                .authenticate(token, &img)
                .map(|_| s.principal().map(ToString::to_string).unwrap())
                .map_err(|r| r.code);
            assert_eq!(got, want.map(String::from));
        }
    }

    #[test]
    fn steps_out_of_order_or_unknown_mechanisms_are_refused() {
        let img = MetadataImage::empty();
        let mut s = SaslSession::new(&enabled());
        assert_eq!(
            s.authenticate(b"x", &img).unwrap_err().code,
            ErrorCode::IllegalSaslState
        );
        let mut s = SaslSession::new(&["SCRAM-SHA-512".to_string()]);
        let r = s.handshake("PLAIN").unwrap_err();
        assert_eq!(r.code, ErrorCode::UnsupportedSaslMechanism);
        assert!(
            r.message.contains("enabled: SCRAM-SHA-512"),
            "{}",
            r.message
        );
        let mut s = SaslSession::new(&enabled());
        assert_eq!(
            s.handshake("GSSAPI").unwrap_err().code,
            ErrorCode::UnsupportedSaslMechanism
        );
        let mut s = SaslSession::new(&enabled());
        s.handshake("SCRAM-SHA-256").unwrap();
        assert_eq!(
            s.handshake("PLAIN").unwrap_err().code,
            ErrorCode::IllegalSaslState
        );
        // A malformed SCRAM first message fails and the session stays failed.
        assert_eq!(
            s.authenticate(b"not scram", &img).unwrap_err().code,
            ErrorCode::SaslAuthenticationFailed
        );
        assert_eq!(
            s.authenticate(b"n,,n=a,r=x", &img).unwrap_err().code,
            ErrorCode::IllegalSaslState
        );
        assert!(s.principal().is_none());
    }

    #[test]
    fn re_authentication_keeps_the_principal_and_refuses_another() {
        let mut img = image_with("alice", b"pw-a");
        img = img
            .replay(
                1,
                &[MetadataRecord::UserScramCredential {
                    name: "bob".into(),
                    credential: kavka_sasl::scram::credential(
                        ScramMechanism::Sha256,
                        b"pw-b",
                        kavka_sasl::scram::random_bytes(),
                        4096,
                    )
                    .unwrap(),
                }],
            )
            .0;
        let mut s = SaslSession::new(&enabled());
        s.handshake("PLAIN").unwrap();
        s.authenticate(b"\0alice\0pw-a", &img).unwrap();
        assert_eq!(
            (s.completed(), s.principal()),
            (1, Some(&Principal::user("alice")))
        );
        // Again as alice: allowed; while it runs, the connection is still alice's.
        s.handshake("PLAIN").unwrap();
        assert_eq!(s.principal(), Some(&Principal::user("alice")));
        s.authenticate(b"\0alice\0pw-a", &img).unwrap();
        assert_eq!(s.completed(), 2);
        // As bob: refused, and the connection keeps alice (conn closes it).
        s.handshake("PLAIN").unwrap();
        let r = s.authenticate(b"\0bob\0pw-b", &img).unwrap_err();
        assert_eq!(r.code, ErrorCode::SaslAuthenticationFailed);
        assert!(
            r.message.contains("must keep the principal"),
            "{}",
            r.message
        );
        assert_eq!(s.completed(), 2);
    }
}
