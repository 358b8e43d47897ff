//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, as Kafka speaks
//! them: no channel binding (`n,,`), credentials stored salted (`ScramCredential`: salt,
//! StoredKey, ServerKey, iterations; never the password), 4096 to 16384 iterations.
//!
//! Invariants: the exchange is a state machine a message can only move forward
//! ([`ServerExchange::start`], then [`ServerFirst::finish`]); the client's proof is checked
//! in constant time; every refusal says what was wrong without saying whether the user
//! exists (an unknown user fails like a wrong password, at the proof). No I/O: the caller
//! carries the bytes (SaslAuthenticate) and looks up credentials.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

pub use kavka_model::scram::{MAX_ITERATIONS, MIN_ITERATIONS};

pub use kavka_model::scram::{ScramCredential, ScramMechanism as Mechanism};

/// The mechanism's primitives (RFC 5802's HMAC(), H() and Hi()).
trait Primitives {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8>;
    fn hash(self, data: &[u8]) -> Vec<u8>;
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8>;
}

impl Primitives for Mechanism {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        match self {
            Mechanism::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Mechanism::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Mechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What a refused exchange or credential is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    #[error("channel binding is not supported (Kafka's SCRAM uses none: 'n,,')")]
    ChannelBinding,
    #[error("the nonce in the client's final message is not the one the server sent")]
    NonceMismatch,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {0}")]
    Iterations(u32),
    #[error("a SCRAM password must not be empty")]
    EmptyPassword,
}

/// Salts and hashes `password` into what is stored (Kafka's AlterUserScramCredentials
/// client does this; `kavka user create` does it here).
pub fn credential(
    mechanism: Mechanism,
    password: &[u8],
    salt: Vec<u8>,
    iterations: u32,
) -> Result<ScramCredential, ScramError> {
    if password.is_empty() {
        return Err(ScramError::EmptyPassword);
    }
    check_iterations(iterations)?;
    Ok(credential_from_salted(
        mechanism,
        &mechanism.salted_password(password, &salt, iterations),
        salt,
        iterations,
    ))
}

/// From an already salted password (what Kafka's AlterUserScramCredentials carries).
pub fn credential_from_salted(
    mechanism: Mechanism,
    salted_password: &[u8],
    salt: Vec<u8>,
    iterations: u32,
) -> ScramCredential {
    let client_key = mechanism.hmac(salted_password, b"Client Key");
    ScramCredential {
        mechanism,
        stored_key: mechanism.hash(&client_key),
        server_key: mechanism.hmac(salted_password, b"Server Key"),
        salt,
        iterations,
    }
}

/// Whether `password` is the one `credential` was made from (PLAIN is checked against a
/// user's SCRAM credential, as Redpanda does: one store of salted keys for both), in
/// constant time.
pub fn verify_password(credential: &ScramCredential, password: &[u8]) -> bool {
    let m = credential.mechanism;
    let salted = m.salted_password(password, &credential.salt, credential.iterations);
    let stored_key = m.hash(&m.hmac(&salted, b"Client Key"));
    bool::from(stored_key.ct_eq(&credential.stored_key))
}

/// Kafka refuses iteration counts outside [4096, 16384].
pub fn check_iterations(iterations: u32) -> Result<(), ScramError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(ScramError::Iterations(iterations))
    }
}

/// A fresh random nonce or salt (from the OS's generator, through UUID v4).
pub fn random_bytes() -> Vec<u8> {
    let mut out = uuid::Uuid::new_v4().as_bytes().to_vec();
    out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

/// The start of a server-side exchange.
pub struct ServerExchange;

/// After the server's first message: what the client's final message is checked against.
pub struct ServerFirst {
    mechanism: Mechanism,
    username: String,
    credential: Option<ScramCredential>,
    nonce: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
}

impl ServerExchange {
    /// Reads the client's first message and answers it. `lookup` gives the user's
    /// credential for `mechanism`; an unknown user gets a made-up salt and fails at the
    /// proof, as a wrong password does. `server_nonce` is appended to the client's.
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &[u8],
    ) -> Result<(ServerFirst, Vec<u8>), ScramError> {
        let msg = std::str::from_utf8(client_first)
            .map_err(|_| ScramError::Malformed("the client's first message is not UTF-8".into()))?;
        let (gs2_header, bare) = split_gs2(msg)?;
        let mut username = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => username = Some(decode_saslname(v)?),
                Some(("r", v)) if !v.is_empty() => client_nonce = Some(v),
                Some(("m", _)) => {
                    return Err(ScramError::Malformed(
                        "mandatory extensions (m=) are not supported".into(),
                    ));
                }
                // Extensions Kafka sends (tokenauth=true) and others: ignored.
                _ => {}
            }
        }
        let username = username.ok_or_else(|| ScramError::Malformed("no user name (n=)".into()))?;
        let client_nonce =
            client_nonce.ok_or_else(|| ScramError::Malformed("no client nonce (r=)".into()))?;
        let credential = lookup(&username).filter(|c| c.mechanism == mechanism);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (mechanism.hash(username.as_bytes()), MIN_ITERATIONS),
        };
        // Hex: printable, and no '=' or '/' for a client's attribute parser to trip on.
        let hex: String = server_nonce.iter().map(|b| format!("{b:02x}")).collect();
        let nonce = format!("{client_nonce}{hex}");
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        Ok((
            ServerFirst {
                mechanism,
                username,
                credential,
                nonce,
                gs2_header: gs2_header.to_string(),
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
            },
            server_first.into_bytes(),
        ))
    }
}

impl ServerFirst {
    /// Checks the client's final message: its channel binding, nonce and proof. On
    /// success, the authenticated user name and the server's final message.
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let msg = std::str::from_utf8(client_final)
            .map_err(|_| ScramError::Malformed("the client's final message is not UTF-8".into()))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| ScramError::Malformed("no proof (p=)".into()))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => binding = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => {}
            }
        }
        let binding =
            binding.ok_or_else(|| ScramError::Malformed("no channel binding (c=)".into()))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBinding);
        }
        // Ends with, not equals, as Kafka since 3.8.1: librdkafka before 2.6.1 sends its
        // own nonce again in front of the server's (which already starts with it).
        if !nonce.is_some_and(|n| n.ends_with(self.nonce.as_str())) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("the proof is not base64".into()))?;
        let credential = self.credential.ok_or(ScramError::InvalidCredentials)?;
        let m = self.mechanism;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((
            self.username,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

/// Splits `n,[a=authzid],` from the rest; refuses channel binding (`p=`, `y`).
fn split_gs2(msg: &str) -> Result<(&str, &str), ScramError> {
    let mut parts = msg.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts
        .next()
        .ok_or_else(|| ScramError::Malformed("no GS2 header".into()))?;
    let bare = parts
        .next()
        .ok_or_else(|| ScramError::Malformed("no client-first-message-bare".into()))?;
    match flag {
        "n" => {}
        "y" | "p" => return Err(ScramError::ChannelBinding),
        _ if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
        other => {
            return Err(ScramError::Malformed(format!(
                "unknown channel binding flag '{other}'"
            )));
        }
    }
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(ScramError::Malformed(format!(
            "invalid authorization id '{authzid}'"
        )));
    }
    let header_len = flag.len() + 1 + authzid.len() + 1;
    Ok((&msg[..header_len], bare))
}

/// RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => {
                return Err(ScramError::Malformed(format!(
                    "invalid escape in user name '{s}'"
                )));
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user `user`, password `pencil`.
    #[test]
    fn rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = credential(Mechanism::Sha256, b"pencil", salt, 4096).unwrap();
        let server_nonce_text = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        // The exchange appends the server nonce base64-encoded; the RFC's is text, so the
        // test drives the state by hand from the RFC's server-first message.
        let (mut first, _) = ServerExchange::start(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| (u == "user").then(|| cred.clone()),
            b"x",
        )
        .unwrap();
        first.nonce = format!("rOprNGfwEbeRWgbNEkqO{server_nonce_text}");
        first.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", first.nonce);
        let (user, server_final) = first
            .finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    /// A client as Kafka's: computes its proof from the password.
    fn client_final(
        m: Mechanism,
        password: &[u8],
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        let salt = B64.decode(attr("s")).unwrap();
        let iterations: u32 = attr("i").parse().unwrap();
        let salted = m.salted_password(password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={}", attr("r"));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(
        m: Mechanism,
        stored: Option<&ScramCredential>,
        user: &str,
        password: &[u8],
    ) -> Result<String, ScramError> {
        let bare = format!("n={user},r=clientnonce");
        let (first, server_first) = ServerExchange::start(
            m,
            format!("n,,{bare}").as_bytes(),
            |u| (u == "alice").then(|| stored.cloned()).flatten(),
            &random_bytes(),
        )?;
        let server_first = String::from_utf8(server_first).unwrap();
        let fin = client_final(m, password, &bare, &server_first);
        first.finish(fin.as_bytes()).map(|(u, _)| u)
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_anything_else() {
        for m in Mechanism::ALL {
            let cred = credential(m, b"s3cret", random_bytes(), 4096).unwrap();
            // (stored credential, user, password) -> outcome
            type Row<'a> = (
                Option<&'a ScramCredential>,
                &'a str,
                &'a [u8],
                Result<&'a str, ScramError>,
            );
            let table: [Row; 4] = [
                (Some(&cred), "alice", b"s3cret", Ok("alice")),
                (
                    Some(&cred),
                    "alice",
                    b"wrong",
                    Err(ScramError::InvalidCredentials),
                ),
                (
                    None,
                    "alice",
                    b"s3cret",
                    Err(ScramError::InvalidCredentials),
                ),
                (
                    Some(&cred),
                    "bob",
                    b"s3cret",
                    Err(ScramError::InvalidCredentials),
                ),
            ];
            for (stored, user, password, want) in table {
                assert_eq!(
                    exchange(m, stored, user, password).as_deref(),
                    want.as_ref().map(|s| *s),
                    "{} {user}",
                    m.name()
                );
            }
            // A credential for the other mechanism does not serve this one.
            let other = Mechanism::ALL.into_iter().find(|o| *o != m).unwrap();
            assert_eq!(
                exchange(other, Some(&cred), "alice", b"s3cret"),
                Err(ScramError::InvalidCredentials)
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused_saying_what_was_wrong() {
        let start = |msg: &str| {
            ServerExchange::start(Mechanism::Sha256, msg.as_bytes(), |_| None, b"n")
                .map(|_| ())
                .unwrap_err()
        };
        assert_eq!(start("p=tls-unique,,n=a,r=x"), ScramError::ChannelBinding);
        assert_eq!(start("y,,n=a,r=x"), ScramError::ChannelBinding);
        // (client first) -> words in the error
        for (msg, words) in [
            ("n,,r=x", "no user name"),
            ("n,,n=a", "no client nonce"),
            ("n,,n=a=zz,r=x", "invalid escape"),
            ("n,,m=ext,n=a,r=x", "mandatory extensions"),
            ("q,,n=a,r=x", "unknown channel binding flag"),
            ("n", "no GS2 header"),
        ] {
            let e = start(msg).to_string();
            assert!(e.contains(words), "{msg}: {e}");
        }
        let (first, _) =
            ServerExchange::start(Mechanism::Sha256, b"n,,n=a=2Cb=3Dc,r=x", |_| None, b"n")
                .unwrap();
        assert_eq!(first.username, "a,b=c");
        assert_eq!(
            first.finish(b"c=biws,r=wrong,p=AAAA").unwrap_err(),
            ScramError::NonceMismatch
        );
    }

    #[test]
    fn librdkafka_before_2_6_1_repeats_its_nonce_and_is_accepted_as_by_kafka() {
        let m = Mechanism::Sha256;
        let cred = credential(m, b"pw", random_bytes(), 4096).unwrap();
        let bare = "n=alice,r=cnonce";
        let (first, server_first) = ServerExchange::start(
            m,
            format!("n,,{bare}").as_bytes(),
            |_| Some(cred.clone()),
            &random_bytes(),
        )
        .unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        // The old client builds its final message from "cnonce" + the server's nonce.
        let doubled = server_first.replacen("r=", "r=cnonce", 1);
        let fin = client_final(m, b"pw", bare, &doubled);
        // Its proof must cover its own final message as the server reads it.
        let (without_proof, _) = fin.rsplit_once(",p=").unwrap();
        assert!(without_proof.contains("r=cnoncecnonce"), "{without_proof}");
        // Recompute the proof over the real auth message (the server's first as sent).
        let salt = B64
            .decode(
                server_first
                    .split(",s=")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap(),
            )
            .unwrap();
        let salted = m.salted_password(b"pw", &salt, 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let auth = format!("{bare},{server_first},{without_proof}");
        let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let fin = format!("{without_proof},p={}", B64.encode(proof));
        assert_eq!(first.finish(fin.as_bytes()).unwrap().0, "alice");
    }

    #[test]
    fn passwords_verify_against_stored_credentials() {
        for m in Mechanism::ALL {
            let c = credential(m, b"s3cret", random_bytes(), 4096).unwrap();
            assert!(verify_password(&c, b"s3cret"));
            assert!(!verify_password(&c, b"s3cret "));
            assert!(!verify_password(&c, b""));
        }
    }

    #[test]
    fn credentials_need_a_password_and_kafkas_iterations() {
        for (iterations, ok) in [(4095, false), (4096, true), (16384, true), (16385, false)] {
            assert_eq!(
                credential(Mechanism::Sha512, b"p", vec![1], iterations).is_ok(),
                ok,
                "{iterations}"
            );
        }
        assert_eq!(
            credential(Mechanism::Sha256, b"", vec![1], 4096),
            Err(ScramError::EmptyPassword)
        );
        let c = credential(Mechanism::Sha256, b"p", vec![1], 4096).unwrap();
        assert!(!format!("{c:?}").contains("stored_key"));
        assert_eq!(
            Mechanism::from_name("scram-sha-512"),
            Some(Mechanism::Sha512)
        );
        assert_eq!(Mechanism::from_code(1), Some(Mechanism::Sha256));
        assert_eq!(Mechanism::from_code(0), None);
    }
}
