//! ACLs and ACL filters <-> protobuf (`v1::Acl`, `v1::AclFilter`), for the metadata log
//! and the admin RPCs alike, through the model's wire forms (`WireAcl`, `WireAclFilter`),
//! which check codes and fields the same way for the Kafka listener.

use crate::v1;
use kavka_model::acl::{AclBinding, AclError, AclFilter, WireAcl, WireAclFilter};
use kavka_model::{ErrorCode, KafkaError};

impl From<&AclBinding> for v1::Acl {
    fn from(b: &AclBinding) -> Self {
        let w = WireAcl::from(b);
        v1::Acl {
            resource_type: w.resource_type,
            resource_name: w.resource_name,
            pattern_type: w.pattern_type,
            principal: w.principal,
            host: w.host,
            operation: w.operation,
            permission: w.permission,
        }
    }
}

impl TryFrom<v1::Acl> for AclBinding {
    type Error = AclError;

    fn try_from(a: v1::Acl) -> Result<Self, AclError> {
        AclBinding::try_from(WireAcl {
            resource_type: a.resource_type,
            resource_name: a.resource_name,
            pattern_type: a.pattern_type,
            principal: a.principal,
            host: a.host,
            operation: a.operation,
            permission: a.permission,
        })
    }
}

impl From<&AclFilter> for v1::AclFilter {
    fn from(f: &AclFilter) -> Self {
        let w = WireAclFilter::from(f);
        v1::AclFilter {
            resource_type: w.resource_type,
            resource_name: w.resource_name,
            pattern_type: w.pattern_type,
            principal: w.principal,
            host: w.host,
            operation: w.operation,
            permission: w.permission,
        }
    }
}

impl TryFrom<v1::AclFilter> for AclFilter {
    type Error = AclError;

    fn try_from(f: v1::AclFilter) -> Result<Self, AclError> {
        AclFilter::try_from(WireAclFilter {
            resource_type: f.resource_type,
            resource_name: f.resource_name,
            pattern_type: f.pattern_type,
            principal: f.principal,
            host: f.host,
            operation: f.operation,
            permission: f.permission,
        })
    }
}

/// An ACL from a request; a field that does not convert is INVALID_REQUEST naming it.
pub fn acl_from_request(a: v1::Acl) -> Result<AclBinding, KafkaError> {
    AclBinding::try_from(a)
        .map_err(|e| KafkaError::new(ErrorCode::InvalidRequest, format!("ACL {e}")))
}

/// An ACL filter from a request, as [`acl_from_request`].
pub fn acl_filter_from_request(f: v1::AclFilter) -> Result<AclFilter, KafkaError> {
    AclFilter::try_from(f)
        .map_err(|e| KafkaError::new(ErrorCode::InvalidRequest, format!("ACL filter {e}")))
}

/// One CreateAcls result.
impl From<Result<(), KafkaError>> for v1::AclCreation {
    fn from(r: Result<(), KafkaError>) -> Self {
        v1::AclCreation {
            error: r.err().map(Into::into),
        }
    }
}

/// One DeleteAcls result: the ACLs a filter deleted, or why it could not.
impl From<Result<Vec<AclBinding>, KafkaError>> for v1::AclDeletion {
    fn from(r: Result<Vec<AclBinding>, KafkaError>) -> Self {
        match r {
            Ok(acls) => v1::AclDeletion {
                error: None,
                deleted: acls.iter().map(v1::Acl::from).collect(),
            },
            Err(e) => v1::AclDeletion {
                error: Some(e.into()),
                deleted: vec![],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_model::acl::{Operation, PatternFilter, PatternType, ResourceType};

    fn acl() -> v1::Acl {
        v1::Acl {
            resource_type: 2,
            resource_name: "events-".into(),
            pattern_type: 4,
            principal: "User:analytics".into(),
            host: "*".into(),
            operation: 3,
            permission: 3,
        }
    }

    #[test]
    fn acls_convert_both_ways_and_bad_fields_are_named() {
        let b = AclBinding::try_from(acl()).unwrap();
        assert_eq!(b.pattern.resource_type, ResourceType::Topic);
        assert_eq!(b.pattern.pattern_type, PatternType::Prefixed);
        assert_eq!(b.entry.operation, Operation::Read);
        assert_eq!(v1::Acl::from(&b), acl());
        // (mutation) -> field named
        type Mutation = fn(&mut v1::Acl);
        let table: [(Mutation, &str); 8] = [
            (|a| a.resource_type = 1, "resource_type"),
            (|a| a.resource_type = 300, "resource_type"),
            (|a| a.pattern_type = 2, "pattern_type"),
            (|a| a.operation = 1, "operation"),
            (|a| a.permission = 0, "permission"),
            (|a| a.principal = "alice".into(), "principal"),
            (|a| a.resource_name = String::new(), "resource_name"),
            (|a| a.host = String::new(), "host"),
        ];
        for (mutate, field) in table {
            let mut a = acl();
            mutate(&mut a);
            assert_eq!(AclBinding::try_from(a).unwrap_err().field(), field);
        }
    }

    #[test]
    fn filters_convert_both_ways_with_any_and_match() {
        let any = v1::AclFilter {
            resource_type: 1,
            resource_name: None,
            pattern_type: 1,
            principal: None,
            host: None,
            operation: 1,
            permission: 1,
        };
        assert_eq!(AclFilter::try_from(any.clone()).unwrap(), AclFilter::any());
        assert_eq!(v1::AclFilter::from(&AclFilter::any()), any);
        let matching = v1::AclFilter {
            resource_type: 2,
            resource_name: Some("orders".into()),
            pattern_type: 2,
            principal: Some("User:alice".into()),
            operation: 4,
            ..any.clone()
        };
        let f = AclFilter::try_from(matching.clone()).unwrap();
        assert_eq!(f.pattern, PatternFilter::Match);
        assert_eq!(f.resource_type, Some(ResourceType::Topic));
        assert_eq!(f.operation, Some(Operation::Write));
        assert_eq!(v1::AclFilter::from(&f), matching);
        let bad = v1::AclFilter {
            operation: 0,
            ..any
        };
        assert_eq!(AclFilter::try_from(bad).unwrap_err().field(), "operation");
    }
}
