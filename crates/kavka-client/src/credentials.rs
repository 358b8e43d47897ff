//! The credentials a client presents on every gRPC call: a user's name and password as
//! `authorization: Basic base64(user:password)`, which the broker checks against the
//! user's SCRAM credential (under an authorizer, calls without them are refused); or the
//! cluster's shared secret, with which an operator acts as a node of the cluster (to
//! create the first users and ACLs).
//!
//! Invariant: a password or secret lives only in the header value, which `Debug` never
//! shows.

use base64::Engine;
use tonic::metadata::{Ascii, MetadataValue};

/// A connection to a node, with this client's credentials on every call.
pub(crate) type Channel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>;

/// Wraps a transport channel so that its calls carry `credentials`.
pub(crate) fn with_credentials(
    channel: tonic::transport::Channel,
    credentials: &Credentials,
) -> Channel {
    tonic::service::interceptor::InterceptedService::new(channel, credentials.clone())
}

/// A user's credentials, the cluster's secret, or none (the anonymous user): the
/// metadata key and value each call carries.
#[derive(Clone, Default)]
pub struct Credentials(Option<(&'static str, MetadataValue<Ascii>)>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credentials(..)"
        } else {
            "Credentials(none)"
        })
    }
}

impl Credentials {
    /// `user` with `password`; a user name with `:` cannot be sent as Basic credentials.
    pub fn user(user: &str, password: &str) -> Result<Self, crate::ClientError> {
        if user.is_empty() || user.contains(':') {
            return Err(crate::ClientError::Invalid(format!(
                "invalid user name '{user}': it must be non-empty and without ':'"
            )));
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let value = format!("Basic {token}").parse().map_err(|_| {
            crate::ClientError::Invalid("the credentials do not fit in a header".into())
        })?;
        Ok(Self(Some(("authorization", value))))
    }

    /// The cluster's shared secret (the nodes' `controller_secret_file`).
    pub fn cluster_secret(secret: &str) -> Result<Self, crate::ClientError> {
        let value = secret.trim().parse().map_err(|_| {
            crate::ClientError::Invalid("the cluster secret is not printable ASCII".into())
        })?;
        Ok(Self(Some((
            kavka_proto::auth::CONTROLLER_SECRET_HEADER,
            value,
        ))))
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((key, value)) = &self.0 {
            req.metadata_mut().insert(*key, value.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn the_header_is_basic_credentials_and_debug_hides_them() {
        let mut c = Credentials::user("alice", "pa:ss").unwrap();
        let req = c.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Basic YWxpY2U6cGE6c3M="
        );
        assert_eq!(format!("{c:?}"), "Credentials(..)");
        assert!(Credentials::user("a:b", "x").is_err());
        assert!(Credentials::user("", "x").is_err());
        let mut node = Credentials::cluster_secret("s3cret\n").unwrap();
        let req = node.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata()
                .get(kavka_proto::auth::CONTROLLER_SECRET_HEADER)
                .unwrap(),
            "s3cret"
        );
        let mut none = Credentials::default();
        let req = none.call(tonic::Request::new(())).unwrap();
        assert!(req.metadata().get("authorization").is_none());
    }
}
