//! Who a gRPC call comes from, and whether the broker takes calls yet: the gate in front
//! of the client services (admin, data, groups). It finds the caller once per call and
//! leaves it in the request's extensions, where the services read it ([`caller`]) for
//! the broker API's authorization, the same check the Kafka listener makes.
//!
//! A call is, in this order: a node of this cluster when it presents the cluster's
//! shared secret (the controller secret; replication fetches do); a user when it
//! presents HTTP Basic credentials (`authorization: Basic base64(user:password)`) that
//! match the user's SCRAM credential; otherwise `User:ANONYMOUS`. Wrong credentials are
//! refused (UNAUTHENTICATED), never taken as anonymous; with an authorizer configured,
//! anonymous calls are refused too (Kafka's clients must authenticate to be authorized,
//! and so must ours).
//!
//! Invariants: a password is only compared, never kept or logged; a refusal names the
//! user, never the secret or password. Must not depend on a listener's protocol types
//! beyond tonic's request metadata.

use crate::api::BrokerApi;
use base64::Engine;
use kavka_model::acl::{Caller, Operation, Resource};
use kavka_proto::auth::{CONTROLLER_SECRET_HEADER, secret_matches};
use kavka_proto::conv::status;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::{Request, Status};

/// The metadata key of a user's credentials: `Basic base64(user:password)`.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The credentials a call presents, as read from its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Presented<'a> {
    Nothing,
    Secret(&'a str),
    User { user: String, password: Vec<u8> },
}

/// Reads the credentials of a call: the cluster secret header, else an `authorization`
/// header, which must be well-formed Basic credentials.
fn presented<'a>(
    secret: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Result<Presented<'a>, String> {
    if let Some(s) = secret {
        return Ok(Presented::Secret(s));
    }
    let Some(value) = authorization else {
        return Ok(Presented::Nothing);
    };
    let (user, password) = basic_credentials(value)?;
    Ok(Presented::User { user, password })
}

/// The user and password of an `authorization: Basic base64(user:password)` value (the
/// gRPC API's and the console's).
pub fn basic_credentials(value: &str) -> Result<(String, Vec<u8>), String> {
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or("the authorization header must be 'Basic base64(user:password)'")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the authorization header's credentials are not base64".to_string())?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or("the authorization header's credentials must be user:password")?;
    let user = String::from_utf8(decoded[..colon].to_vec())
        .map_err(|_| "the user name is not UTF-8".to_string())?;
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    Ok((user, decoded[colon + 1..].to_vec()))
}

/// Holds calls off until the broker is ready (registered, unfenced and caught up with
/// the metadata log, as Kafka enables request processing only then: UNAVAILABLE, which
/// clients retry), then finds the caller.
#[derive(Clone)]
pub struct Gate {
    ready: watch::Receiver<bool>,
    api: BrokerApi,
    /// The cluster's shared secret, if it has one.
    secret: Option<Arc<str>>,
}

impl Gate {
    pub fn new(ready: watch::Receiver<bool>, api: BrokerApi, secret: Option<Arc<str>>) -> Self {
        Self { ready, api, secret }
    }

    fn caller(&self, req: &Request<()>) -> Result<Caller, Status> {
        let host = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let header = |key: &str| req.metadata().get(key).and_then(|v| v.to_str().ok());
        let asked = presented(
            header(CONTROLLER_SECRET_HEADER),
            header(AUTHORIZATION_HEADER),
        )
        .map_err(Status::unauthenticated)?;
        match asked {
            Presented::Secret(s) => match &self.secret {
                Some(ours) if secret_matches(ours, s) => Ok(Caller::cluster_node(host)),
                _ => {
                    tracing::warn!(%host, "gRPC call refused: wrong cluster secret");
                    Err(Status::unauthenticated("wrong cluster secret"))
                }
            },
            Presented::User { user, password } => match self.api.authenticate(&user, &password) {
                Ok(principal) => Ok(Caller::new(principal, host)),
                Err(e) => {
                    tracing::warn!(%host, %user, "gRPC authentication failed");
                    Err(status(&e))
                }
            },
            Presented::Nothing if self.api.authorizer_enabled() => Err(Status::unauthenticated(
                "this cluster enforces ACLs: authenticate with --user NAME and the password in \
                 KAVKA_PASSWORD (or a profile)",
            )),
            Presented::Nothing => Ok(Caller::anonymous(host)),
        }
    }
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if !*self.ready.borrow() {
            return Err(Status::unavailable(
                "this broker is not ready yet: it is registering with the controller quorum and catching up with the metadata log",
            ));
        }
        let caller = self.caller(&req)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller the gate found for `req` (`User:ANONYMOUS` for a call that did not pass
/// it, as in-process calls do not).
pub fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| {
            Caller::anonymous(
                req.remote_addr()
                    .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string()),
            )
        })
}

/// Every check a call needs, as one result: the first denial, as a PERMISSION_DENIED
/// status carrying Kafka's error code. (Our own API refuses a whole call when any
/// resource in it is denied; the Kafka listener answers per resource, as Kafka does.)
pub fn require<'a>(
    api: &BrokerApi,
    caller: &Caller,
    checks: impl IntoIterator<Item = (Operation, Resource<'a>)>,
) -> Result<(), Status> {
    for (operation, resource) in checks {
        api.authorize(caller, operation, resource)
            .map_err(|e| status(&e))?;
    }
    Ok(())
}

/// CREATE on the cluster, or on each topic (Kafka's rule for creating topics).
pub fn require_create_topics<'a>(
    api: &BrokerApi,
    caller: &Caller,
    topics: impl IntoIterator<Item = &'a str>,
) -> Result<(), Status> {
    if api.is_authorized(caller, Operation::Create, Resource::cluster()) {
        return Ok(());
    }
    require(
        api,
        caller,
        topics
            .into_iter()
            .map(|t| (Operation::Create, Resource::topic(t))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn credentials_are_read_from_the_metadata() {
        let alice = basic("alice:pa:ss");
        let empty_user = basic(":pw");
        let no_colon = basic("alice");
        // (secret header, authorization header) -> what was presented, or the error
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Result<Presented<'a>, &'a str>,
        );
        let table: &[Case<'_>] = &[
            (None, None, Ok(Presented::Nothing)),
            (Some("s3"), Some(&alice), Ok(Presented::Secret("s3"))),
            (
                None,
                Some(&alice),
                Ok(Presented::User {
                    user: "alice".into(),
                    password: b"pa:ss".to_vec(),
                }),
            ),
            (
                None,
                Some("Bearer x"),
                Err("the authorization header must be 'Basic base64(user:password)'"),
            ),
            (
                None,
                Some("Basic %%%"),
                Err("the authorization header's credentials are not base64"),
            ),
            (None, Some(&empty_user), Err("the user name is empty")),
            (
                None,
                Some(&no_colon),
                Err("the authorization header's credentials must be user:password"),
            ),
        ];
        for (secret, authorization, want) in table {
            let got = presented(*secret, *authorization);
            assert_eq!(
                got,
                want.clone().map_err(String::from),
                "{secret:?} {authorization:?}"
            );
        }
    }
}
