//! SASL PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL passwd`.
//!
//! Invariant: the password is handed to the caller to check and never kept or printed;
//! an authorization id other than the user's own is refused (Kafka does the same).

/// The user and password a PLAIN client sent.
pub struct PlainCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("malformed PLAIN message: expected authzid NUL user NUL password")]
    Malformed,
    #[error("PLAIN user name or password is empty")]
    Empty,
    #[error(
        "authorization id '{authzid}' is not the user '{username}': acting as another user is not supported"
    )]
    OtherAuthzid { authzid: String, username: String },
}

/// Reads a PLAIN client message.
pub fn parse(token: &[u8]) -> Result<PlainCredentials, PlainError> {
    let text = std::str::from_utf8(token).map_err(|_| PlainError::Malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    if username.is_empty() || password.is_empty() {
        return Err(PlainError::Empty);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::OtherAuthzid {
            authzid: authzid.into(),
            username: username.into(),
        });
    }
    Ok(PlainCredentials {
        username: username.into(),
        password: password.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_parse_or_say_what_is_wrong() {
        // (token) -> user, or the error
        let table: [(&[u8], Result<&str, PlainError>); 7] = [
            (b"\0alice\0secret", Ok("alice")),
            (b"alice\0alice\0secret", Ok("alice")),
            (
                b"bob\0alice\0secret",
                Err(PlainError::OtherAuthzid {
                    authzid: "bob".into(),
                    username: "alice".into(),
                }),
            ),
            (b"\0\0secret", Err(PlainError::Empty)),
            (b"\0alice\0", Err(PlainError::Empty)),
            (b"alice:secret", Err(PlainError::Malformed)),
            (b"\0a\0b\0c", Err(PlainError::Malformed)),
        ];
        for (token, want) in table {
            let got = parse(token).map(|c| c.username);
            assert_eq!(got.as_deref(), want.as_ref().map(|s| *s));
        }
        let c = parse(b"\0alice\0secret").unwrap();
        assert_eq!(c.password, "secret");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
