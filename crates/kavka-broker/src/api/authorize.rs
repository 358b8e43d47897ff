//! Authorization: the one check every request of either protocol passes before it acts,
//! against the ACLs in this broker's metadata image (Kafka's `StandardAuthorizer`; the
//! decision itself is `kavka_model::acl`).
//!
//! Invariants: with no authorizer configured every request is allowed (Kafka's
//! default); a denial is Kafka's error for the resource's type
//! (TOPIC_/GROUP_/CLUSTER_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and names the
//! principal, the operation and the resource, never an ACL's contents; decisions read the
//! image the broker has applied, so an ACL takes effect on a broker once it applied the
//! record that made it.

use super::BrokerApi;
use kavka_model::acl::{Caller, Decision, Operation, Principal, Resource, ResourceType};
use kavka_model::scram::ScramMechanism;
use kavka_model::{ErrorCode, KafkaError};

/// Kafka's error for a request denied on a resource of `resource_type`.
pub fn denied_code(resource_type: ResourceType) -> ErrorCode {
    match resource_type {
        ResourceType::Topic => ErrorCode::TopicAuthorizationFailed,
        ResourceType::Group => ErrorCode::GroupAuthorizationFailed,
        ResourceType::Cluster => ErrorCode::ClusterAuthorizationFailed,
        ResourceType::TransactionalId => ErrorCode::TransactionalIdAuthorizationFailed,
    }
}

/// The error a denied request gets: Kafka's code, and who was refused what.
pub fn denied(caller: &Caller, operation: Operation, resource: Resource<'_>) -> KafkaError {
    let what = match resource.resource_type {
        ResourceType::Cluster => "the cluster".to_string(),
        t => format!("{t} '{}'", resource.name),
    };
    KafkaError::new(
        denied_code(resource.resource_type),
        format!(
            "{} is not authorized to {} {what}",
            caller.principal,
            operation.name().to_uppercase()
        ),
    )
}

impl BrokerApi {
    /// The principal `user` proves to be with `password`, checked against the user's
    /// SCRAM credential (the strongest it has) in constant time; the password is only
    /// compared, never kept or logged. SASL_AUTHENTICATION_FAILED otherwise, with the
    /// same message for an unknown user and a wrong password.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Result<Principal, KafkaError> {
        let image = self.image();
        let credential = [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .find_map(|m| image.scram_credential(user, m));
        match credential {
            Some(c) if kavka_sasl::scram::verify_password(c, password) => Ok(Principal::user(user)),
            _ => Err(KafkaError::new(
                ErrorCode::SaslAuthenticationFailed,
                format!("authentication failed: invalid credentials for user '{user}'"),
            )),
        }
    }

    /// Whether an authorizer is configured (`authorizer.class.name`).
    pub fn authorizer_enabled(&self) -> bool {
        self.broker_config().authorizer.is_some()
    }

    /// Whether `caller` may do `operation` to `resource`.
    pub fn is_authorized(
        &self,
        caller: &Caller,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool {
        let Some(config) = &self.broker_config().authorizer else {
            return true;
        };
        if caller.is_cluster_node() {
            return true;
        }
        let image = self.image();
        let decision =
            image
                .acls()
                .authorize(config, &caller.principal, &caller.host, operation, resource);
        if let Decision::Denied(reason) = &decision {
            tracing::debug!(
                target: "kavka::authorizer",
                principal = %caller.principal,
                host = %caller.host,
                operation = %operation,
                resource_type = %resource.resource_type,
                resource = resource.name,
                ?reason,
                "denied"
            );
        }
        decision.is_allowed()
    }

    /// [`Self::is_authorized`] as a result: Kafka's error for the resource when denied.
    pub fn authorize(
        &self,
        caller: &Caller,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Result<(), KafkaError> {
        if self.is_authorized(caller, operation, resource) {
            Ok(())
        } else {
            Err(denied(caller, operation, resource))
        }
    }

    /// Whether `caller` may do `operation` to some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`: an idempotent producer with WRITE on any topic).
    pub fn is_authorized_for_any(
        &self,
        caller: &Caller,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        let Some(config) = &self.broker_config().authorizer else {
            return true;
        };
        if caller.is_cluster_node() {
            return true;
        }
        self.image().acls().authorize_by_resource_type(
            config,
            &caller.principal,
            &caller.host,
            operation,
            resource_type,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_model::acl::Principal;

    #[test]
    fn denials_carry_kafkas_code_for_the_resource() {
        let bob = Caller::new(Principal::user("bob"), "127.0.0.1");
        // (operation, resource) -> code, message
        let table = [
            (
                Operation::Write,
                Resource::topic("orders"),
                ErrorCode::TopicAuthorizationFailed,
                "User:bob is not authorized to WRITE topic 'orders'",
            ),
            (
                Operation::Read,
                Resource::group("g1"),
                ErrorCode::GroupAuthorizationFailed,
                "User:bob is not authorized to READ group 'g1'",
            ),
            (
                Operation::Alter,
                Resource::cluster(),
                ErrorCode::ClusterAuthorizationFailed,
                "User:bob is not authorized to ALTER the cluster",
            ),
            (
                Operation::Write,
                Resource {
                    resource_type: ResourceType::TransactionalId,
                    name: "tx",
                },
                ErrorCode::TransactionalIdAuthorizationFailed,
                "User:bob is not authorized to WRITE transactional_id 'tx'",
            ),
        ];
        for (op, resource, code, message) in table {
            let e = denied(&bob, op, resource);
            assert_eq!((e.code, e.message.as_str()), (code, message));
        }
    }
}
