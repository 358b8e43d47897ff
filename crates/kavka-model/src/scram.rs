//! SCRAM credentials as the metadata log stores them (Kafka's `UserScramCredentialRecord`):
//! salt, StoredKey, ServerKey and iterations per user and mechanism, never a password.
//! Deriving them and running the exchange is `kavka-sasl`'s.

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// One user's outcome of an AlterUserScramCredentials.
pub type UserOutcome = (String, Result<(), crate::KafkaError>);

/// What DescribeUserScramCredentials says of one user: each credential's mechanism and
/// iterations (never keys), or why not.
pub type UserCredentials = (
    String,
    Result<Vec<(ScramMechanism, u32)>, crate::KafkaError>,
);

/// A SCRAM mechanism, by Kafka's name and code.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's code in the user SCRAM credential APIs (1: SHA-256, 2: SHA-512).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// By name, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// A user's SCRAM credential for one mechanism.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl std::fmt::Debug for ScramCredential {
    // The keys are as good as the password to this server: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism.name())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_by_kafkas_names_and_codes_and_keys_never_printed() {
        assert_eq!(
            ScramMechanism::from_name("scram-sha-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_name("PLAIN"), None);
        assert_eq!(ScramMechanism::from_code(1), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::from_code(0), None);
        let c = ScramCredential {
            mechanism: ScramMechanism::Sha256,
            salt: vec![1],
            stored_key: vec![0xab; 32],
            server_key: vec![0xcd; 32],
            iterations: 4096,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("stored_key") && !shown.contains("171"),
            "{shown}"
        );
    }
}
