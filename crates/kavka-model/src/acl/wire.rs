//! ACLs and filters as both protocols carry them: Kafka's wire codes (with ANY and MATCH
//! in filters) and strings. Converting checks them as Kafka's controller does; an error
//! names the field.

use super::{
    AclBinding, AclEntry, AclError, AclFilter, Operation, PatternFilter, PatternType, Permission,
    Principal, ResourcePattern, ResourceType,
};

/// Kafka's ANY in a filter's enums.
pub const ANY_CODE: i8 = 1;
/// Kafka's MATCH pattern type in a filter.
pub const MATCH_CODE: i8 = 2;

/// An ACL as both protocols carry it: Kafka's wire codes and strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireAcl {
    pub resource_type: i32,
    pub resource_name: String,
    pub pattern_type: i32,
    pub principal: String,
    pub host: String,
    pub operation: i32,
    pub permission: i32,
}

/// An ACL filter as both protocols carry it: codes with ANY (1) and MATCH (2), and
/// strings where `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireAclFilter {
    pub resource_type: i32,
    pub resource_name: Option<String>,
    pub pattern_type: i32,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i32,
    pub permission: i32,
}

/// An enum from its wire code; `field` names it in the error.
fn from_code<T>(field: &'static str, n: i32, from: fn(i8) -> Option<T>) -> Result<T, AclError> {
    i8::try_from(n)
        .ok()
        .and_then(from)
        .ok_or(AclError::Code { field, code: n })
}

/// An enum of a filter: ANY is `None`.
fn filter_code<T>(
    field: &'static str,
    n: i32,
    from: fn(i8) -> Option<T>,
) -> Result<Option<T>, AclError> {
    if n == i32::from(ANY_CODE) {
        Ok(None)
    } else {
        from_code(field, n, from).map(Some)
    }
}

impl TryFrom<WireAcl> for AclBinding {
    type Error = AclError;

    /// Checks an ACL as Kafka's controller does: known codes (not ANY), a name, a host,
    /// a principal `Type:name`, `kafka-cluster` for the cluster.
    fn try_from(a: WireAcl) -> Result<Self, AclError> {
        let resource_type = from_code("resource_type", a.resource_type, ResourceType::from_code)?;
        let pattern_type = from_code("pattern_type", a.pattern_type, PatternType::from_code)?;
        if a.resource_name.is_empty() {
            return Err(AclError::Empty("resource_name"));
        }
        if a.host.is_empty() {
            return Err(AclError::Empty("host"));
        }
        Ok(AclBinding {
            pattern: ResourcePattern::new(resource_type, a.resource_name, pattern_type)?,
            entry: AclEntry {
                principal: Principal::parse(&a.principal)?,
                host: a.host,
                operation: from_code("operation", a.operation, Operation::from_code)?,
                permission: from_code("permission", a.permission, Permission::from_code)?,
            },
        })
    }
}

impl From<&AclBinding> for WireAcl {
    fn from(b: &AclBinding) -> Self {
        WireAcl {
            resource_type: i32::from(b.pattern.resource_type.code()),
            resource_name: b.pattern.name.clone(),
            pattern_type: i32::from(b.pattern.pattern_type.code()),
            principal: b.entry.principal.to_string(),
            host: b.entry.host.clone(),
            operation: i32::from(b.entry.operation.code()),
            permission: i32::from(b.entry.permission.code()),
        }
    }
}

impl TryFrom<WireAclFilter> for AclFilter {
    type Error = AclError;

    fn try_from(f: WireAclFilter) -> Result<Self, AclError> {
        Ok(AclFilter {
            resource_type: filter_code("resource_type", f.resource_type, ResourceType::from_code)?,
            name: f.resource_name,
            pattern: match f.pattern_type {
                n if n == i32::from(ANY_CODE) => PatternFilter::Any,
                n if n == i32::from(MATCH_CODE) => PatternFilter::Match,
                n => PatternFilter::Exactly(from_code("pattern_type", n, PatternType::from_code)?),
            },
            principal: f.principal.map(|p| Principal::parse(&p)).transpose()?,
            host: f.host,
            operation: filter_code("operation", f.operation, Operation::from_code)?,
            permission: filter_code("permission", f.permission, Permission::from_code)?,
        })
    }
}

impl From<&AclFilter> for WireAclFilter {
    fn from(f: &AclFilter) -> Self {
        let any = i32::from(ANY_CODE);
        WireAclFilter {
            resource_type: f.resource_type.map_or(any, |t| i32::from(t.code())),
            resource_name: f.name.clone(),
            pattern_type: match f.pattern {
                PatternFilter::Any => any,
                PatternFilter::Match => i32::from(MATCH_CODE),
                PatternFilter::Exactly(t) => i32::from(t.code()),
            },
            principal: f.principal.as_ref().map(ToString::to_string),
            host: f.host.clone(),
            operation: f.operation.map_or(any, |o| i32::from(o.code())),
            permission: f.permission.map_or(any, |p| i32::from(p.code())),
        }
    }
}
