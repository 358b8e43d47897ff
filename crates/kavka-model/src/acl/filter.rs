//! ACL filters (Kafka's `AclBindingFilter`): which ACLs DescribeAcls lists and
//! DeleteAcls removes.

use super::{
    AclBinding, Acls, Operation, PatternType, Permission, Principal, Resource, ResourcePattern,
    ResourceType,
};

/// How a filter matches an ACL's pattern type (Kafka's `PatternType` in a filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternFilter {
    /// ANY: every pattern type; a name given must equal the ACL's.
    Any,
    /// MATCH: the ACLs that apply to the named resource (its literal name, the literal
    /// `*`, and every prefix of it).
    Match,
    /// This pattern type only; a name given must equal the ACL's.
    Exactly(PatternType),
}

/// Which ACLs DescribeAcls lists and DeleteAcls removes (Kafka's `AclBindingFilter`):
/// `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<Principal>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Matches every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let p = &b.pattern;
        let e = &b.entry;
        let name_matches = match (&self.pattern, &self.name) {
            (_, None) => true,
            (PatternFilter::Match, Some(n)) => Resource {
                resource_type: p.resource_type,
                name: n,
            }
            .matched_by(p),
            (PatternFilter::Any | PatternFilter::Exactly(_), Some(n)) => &p.name == n,
        };
        let pattern_matches = match self.pattern {
            PatternFilter::Any | PatternFilter::Match => true,
            PatternFilter::Exactly(t) => p.pattern_type == t,
        };
        self.resource_type.is_none_or(|t| t == p.resource_type)
            && name_matches
            && pattern_matches
            && self.principal.as_ref().is_none_or(|w| *w == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && self.operation.is_none_or(|o| o == e.operation)
            && self.permission.is_none_or(|w| w == e.permission)
    }
}

impl Resource<'_> {
    fn matched_by(&self, pattern: &ResourcePattern) -> bool {
        pattern.matches(self)
    }
}

impl Acls {
    /// The ACLs `filter` matches, in a stable order.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let mut out: Vec<AclBinding> = self.iter().filter(|b| filter.matches(b)).cloned().collect();
        out.sort();
        out
    }
}
