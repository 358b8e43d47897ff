//! Access control lists and the authorization decision, as Kafka's `StandardAuthorizer`
//! makes it: who (`Principal`, from which host) may do what (`Operation`) to which
//! resource (a topic, group, the cluster or a transactional id).
//!
//! The rules, in Kafka's order:
//! 1. a super user (`super.users`) may do anything;
//! 2. the ACLs that apply are those whose pattern matches the resource — the literal name,
//!    the literal wildcard `*`, or a prefix of the name — and whose principal (or
//!    `User:*`) and host (or `*`) match the request;
//! 3. a matching DENY for the operation (or for `ALL`) denies: deny wins;
//! 4. else a matching ALLOW for the operation, for `ALL`, or for an operation that implies
//!    it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!    DESCRIBE_CONFIGS; implications widen allows only) allows;
//! 5. else, if no ACL at all names the resource (for any principal or operation), the
//!    answer is `allow.everyone.if.no.acl.found`; otherwise deny.
//!
//! Invariants: pure (no I/O, no clock); a decision carries the reason it was made, so a
//! denial can be logged with the rule that caused it. The wire codes are Kafka's.

mod filter;
mod wire;

pub use filter::{AclFilter, PatternFilter};
pub use wire::{ANY_CODE, MATCH_CODE, WireAcl, WireAclFilter};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Who makes a request: Kafka's `KafkaPrincipal`, written `User:alice`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Principal {
    kind: String,
    name: String,
}

/// A principal, an operation, a resource type or a pattern type that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("invalid principal '{0}': expected Type:name, e.g. User:alice")]
    Principal(String),
    #[error(
        "unknown operation '{0}': expected one of all, read, write, create, delete, alter, \
         describe, cluster_action, describe_configs, alter_configs, idempotent_write"
    )]
    Operation(String),
    #[error("unknown resource type '{0}': expected topic, group, cluster or transactional_id")]
    ResourceType(String),
    #[error("unknown resource pattern type '{0}': expected literal or prefixed")]
    PatternType(String),
    #[error("unknown permission '{0}': expected allow or deny")]
    Permission(String),
    #[error("a cluster ACL names the cluster as 'kafka-cluster', not '{0}'")]
    ClusterName(String),
    #[error("a prefixed pattern needs a non-empty prefix")]
    EmptyPrefix,
    #[error("{field} is invalid: no such code {code}")]
    Code { field: &'static str, code: i32 },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error(
        "unknown authorizer '{0}': Kavka has Kafka's StandardAuthorizer \
         (authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer); \
         leave it empty for none"
    )]
    Authorizer(String),
}

impl AclError {
    /// The field of an ACL (as Kafka names it on the wire) this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            AclError::Principal(_) => "principal",
            AclError::Operation(_) => "operation",
            AclError::ResourceType(_) => "resource_type",
            AclError::PatternType(_) => "pattern_type",
            AclError::Permission(_) => "permission",
            AclError::ClusterName(_) | AclError::EmptyPrefix => "resource_name",
            AclError::Code { field, .. } | AclError::Empty(field) => field,
            AclError::Authorizer(_) => "authorizer.class.name",
        }
    }
}

impl Principal {
    /// The principal of a client that did not authenticate (Kafka's `User:ANONYMOUS`).
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: "User".into(),
            name: name.into(),
        }
    }

    /// Parses `Type:name`; both parts must be non-empty.
    pub fn parse(s: &str) -> Result<Self, AclError> {
        match s.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Self {
                kind: kind.into(),
                name: name.into(),
            }),
            _ => Err(AclError::Principal(s.into())),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `User:*`: every user, in an ACL.
    fn is_wildcard(&self) -> bool {
        self.kind == "User" && self.name == "*"
    }

    /// Whether an ACL for `self` applies to a request by `who`.
    fn covers(&self, who: &Principal) -> bool {
        self == who || self.is_wildcard()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Who makes a request and from where: the parts of Kafka's `RequestContext` the
/// authorizer reads. `host` is the client's IP address as ACLs name it (`10.0.0.1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub principal: Principal,
    pub host: String,
}

impl Caller {
    pub fn new(principal: Principal, host: impl Into<String>) -> Self {
        Self {
            principal,
            host: host.into(),
        }
    }

    /// A client that did not authenticate (`User:ANONYMOUS`).
    pub fn anonymous(host: impl Into<String>) -> Self {
        Self::new(Principal::anonymous(), host)
    }

    /// A node of this cluster, proven by the cluster's shared secret (replication
    /// fetches, a node's own calls): allowed everything, as Kafka's brokers are super
    /// users. Only the gRPC gate that checked the secret makes one.
    pub fn cluster_node(host: impl Into<String>) -> Self {
        Self::new(
            Principal {
                kind: CLUSTER_NODE_KIND.into(),
                name: "cluster".into(),
            },
            host,
        )
    }

    pub fn is_cluster_node(&self) -> bool {
        self.principal.kind == CLUSTER_NODE_KIND
    }
}

/// The principal type of [`Caller::cluster_node`]: no SASL or TLS identity has it.
const CLUSTER_NODE_KIND: &str = "Node";

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.principal, self.host)
    }
}

/// Generates an enum with Kafka's wire codes and lower-case names.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident, $err:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL_VALUES: &[$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// From Kafka's wire code; `None` for UNKNOWN, ANY and codes we do not know.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name, lower case (`describe_configs`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses a name in any case, with `-` or `_` (`DescribeConfigs` too).
            pub fn parse(s: &str) -> Result<Self, AclError> {
                let folded: String = s
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .flat_map(char::to_lowercase)
                    .collect();
                Self::ALL_VALUES
                    .iter()
                    .copied()
                    .find(|v| v.name().replace('_', "") == folded)
                    .ok_or_else(|| AclError::$err(s.into()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What a request does to a resource (Kafka's `AclOperation`).
    Operation, Operation {
        All = 2, "all";
        Read = 3, "read";
        Write = 4, "write";
        Create = 5, "create";
        Delete = 6, "delete";
        Alter = 7, "alter";
        Describe = 8, "describe";
        ClusterAction = 9, "cluster_action";
        DescribeConfigs = 10, "describe_configs";
        AlterConfigs = 11, "alter_configs";
        IdempotentWrite = 12, "idempotent_write";
    }
);

kafka_enum!(
    /// The kinds of resource an ACL protects (Kafka's `ResourceType`).
    ResourceType, ResourceType {
        Topic = 2, "topic";
        Group = 3, "group";
        Cluster = 4, "cluster";
        TransactionalId = 5, "transactional_id";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches (Kafka's `PatternType`).
    PatternType, PatternType {
        Literal = 3, "literal";
        Prefixed = 4, "prefixed";
    }
);

kafka_enum!(
    /// Allow or deny (Kafka's `AclPermissionType`).
    Permission, Permission {
        Deny = 2, "deny";
        Allow = 3, "allow";
    }
);

/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal resource name that matches every resource of its type.
pub const WILDCARD: &str = "*";

/// The host an ACL names to apply from anywhere.
pub const ANY_HOST: &str = "*";

/// Which resources an ACL applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    /// A pattern Kafka would store: a cluster pattern names `kafka-cluster` literally; a
    /// prefix is not empty.
    pub fn new(
        resource_type: ResourceType,
        name: impl Into<String>,
        pattern_type: PatternType,
    ) -> Result<Self, AclError> {
        let name = name.into();
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(AclError::ClusterName(name));
        }
        if pattern_type == PatternType::Prefixed && name.is_empty() {
            return Err(AclError::EmptyPrefix);
        }
        Ok(Self {
            resource_type,
            name,
            pattern_type,
        })
    }

    fn matches(&self, resource: &Resource<'_>) -> bool {
        self.resource_type == resource.resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == resource.name || self.name == WILDCARD,
                PatternType::Prefixed => resource.name.starts_with(self.name.as_str()),
            }
    }
}

/// Who may (or may not) do what, from where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    pub principal: Principal,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// One ACL: an entry and the resources it applies to (Kafka's `AclBinding`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} from {} on {} {} '{}'",
            self.entry.permission,
            self.entry.principal,
            self.entry.operation,
            self.entry.host,
            self.pattern.pattern_type,
            self.pattern.resource_type,
            self.pattern.name
        )
    }
}

/// One resource a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Topic,
            name,
        }
    }

    pub fn group(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Group,
            name,
        }
    }

    pub fn cluster() -> Self {
        Self {
            resource_type: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }
}

/// The authorizer's settings, under Kafka's names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users`: principals every check allows.
    pub super_users: Vec<Principal>,
    /// `allow.everyone.if.no.acl.found`: the answer for a resource no ACL names.
    pub allow_everyone_if_no_acl_found: bool,
}

/// Kafka's class name for the authorizer Kavka implements (`authorizer.class.name`).
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

impl AuthorizerConfig {
    /// Whether `authorizer.class.name` turns the authorizer on: empty is off (Kafka's
    /// default: every request allowed), Kafka's StandardAuthorizer (full or short name)
    /// is on, anything else an error.
    pub fn enabled_by(class_name: &str) -> Result<bool, AclError> {
        match class_name.trim() {
            "" => Ok(false),
            STANDARD_AUTHORIZER | "StandardAuthorizer" => Ok(true),
            other => Err(AclError::Authorizer(other.into())),
        }
    }

    /// `super.users` as Kafka writes it: principals separated by `;`
    /// (`User:admin;User:ops`).
    pub fn parse_super_users(s: &str) -> Result<Vec<Principal>, AclError> {
        s.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Principal::parse)
            .collect()
    }
}

/// Why a request was allowed or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    SuperUser,
    /// The ACL that decided.
    Acl(AclBinding),
    /// No ACL names the resource: `allow.everyone.if.no.acl.found` decided.
    NoAclFound,
    /// ACLs name the resource, but none allows this principal this operation.
    NoMatchingAllow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed(Reason),
    Denied(Reason),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Every ACL of the cluster, by resource type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    by_type: BTreeMap<ResourceType, Vec<AclBinding>>,
}

impl Acls {
    /// Adds `binding`; false if it was there already (Kafka's CreateAcls is idempotent).
    pub fn add(&mut self, binding: AclBinding) -> bool {
        let list = self
            .by_type
            .entry(binding.pattern.resource_type)
            .or_default();
        if list.contains(&binding) {
            return false;
        }
        list.push(binding);
        true
    }

    /// Removes `binding`; false if it was not there.
    pub fn remove(&mut self, binding: &AclBinding) -> bool {
        let Some(list) = self.by_type.get_mut(&binding.pattern.resource_type) else {
            return false;
        };
        let before = list.len();
        list.retain(|b| b != binding);
        before != list.len()
    }

    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.by_type
            .get(&binding.pattern.resource_type)
            .is_some_and(|l| l.contains(binding))
    }

    pub fn len(&self) -> usize {
        self.by_type.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.by_type.values().flatten()
    }

    /// Whether `principal`, connected from `host`, may do `operation` to `resource`.
    pub fn authorize(
        &self,
        config: &AuthorizerConfig,
        principal: &Principal,
        host: &str,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Decision {
        if config.super_users.contains(principal) {
            return Decision::Allowed(Reason::SuperUser);
        }
        let mut named = false;
        let mut allow = None;
        let on_resource = self
            .by_type
            .get(&resource.resource_type)
            .into_iter()
            .flatten()
            .filter(|b| b.pattern.matches(&resource));
        for binding in on_resource {
            named = true;
            let e = &binding.entry;
            if !e.principal.covers(principal) || !(e.host == ANY_HOST || e.host == host) {
                continue;
            }
            match e.permission {
                Permission::Deny if e.operation == Operation::All || e.operation == operation => {
                    return Decision::Denied(Reason::Acl(binding.clone()));
                }
                Permission::Allow if allow.is_none() && allows(e.operation, operation) => {
                    allow = Some(binding);
                }
                _ => {}
            }
        }
        match (allow, named) {
            (Some(b), _) => Decision::Allowed(Reason::Acl(b.clone())),
            (None, false) if config.allow_everyone_if_no_acl_found => {
                Decision::Allowed(Reason::NoAclFound)
            }
            (None, false) => Decision::Denied(Reason::NoAclFound),
            (None, true) => Decision::Denied(Reason::NoMatchingAllow),
        }
    }

    /// Whether `principal` may do `operation` to at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, KIP-679: what lets an
    /// idempotent producer with WRITE on some topic get a producer id). True for a super
    /// user; false when a DENY for the operation covers every resource (the literal
    /// wildcard); true when an ALLOW for it (or for ALL) applies to the principal and
    /// host and no DENY covers that ALLOW's resources; otherwise, when no ACL of the type
    /// exists at all, `allow.everyone.if.no.acl.found`.
    pub fn authorize_by_resource_type(
        &self,
        config: &AuthorizerConfig,
        principal: &Principal,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if config.super_users.contains(principal) {
            return true;
        }
        let of_type = self
            .by_type
            .get(&resource_type)
            .map_or(&[][..], Vec::as_slice);
        let applies = |e: &AclEntry| {
            e.principal.covers(principal)
                && (e.host == ANY_HOST || e.host == host)
                && (e.operation == operation || e.operation == Operation::All)
        };
        let denies: Vec<&ResourcePattern> = of_type
            .iter()
            .filter(|b| b.entry.permission == Permission::Deny && applies(&b.entry))
            .map(|b| &b.pattern)
            .collect();
        let covered = |allowed: &ResourcePattern| {
            denies.iter().any(|d| match d.pattern_type {
                PatternType::Literal => {
                    d.name == WILDCARD
                        || (allowed.pattern_type == PatternType::Literal && d.name == allowed.name)
                }
                PatternType::Prefixed => allowed.name.starts_with(d.name.as_str()),
            })
        };
        if denies
            .iter()
            .any(|d| d.pattern_type == PatternType::Literal && d.name == WILDCARD)
        {
            return false;
        }
        let allowed = of_type.iter().any(|b| {
            b.entry.permission == Permission::Allow && applies(&b.entry) && !covered(&b.pattern)
        });
        allowed || (of_type.is_empty() && config.allow_everyone_if_no_acl_found)
    }
}

/// Whether an ALLOW for `granted` allows `asked`: the same operation, ALL, or one that
/// implies it.
fn allows(granted: Operation, asked: Operation) -> bool {
    use Operation::*;
    granted == asked
        || granted == All
        || (asked == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (asked == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        permission: Permission,
        principal: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern::new(resource_type, name, pattern_type).unwrap(),
            entry: AclEntry {
                principal: Principal::parse(principal).unwrap(),
                host: ANY_HOST.into(),
                operation,
                permission,
            },
        }
    }

    use Operation as Op;
    use PatternType::{Literal, Prefixed};
    use Permission::{Allow, Deny};
    use ResourceType::{Cluster, Group, Topic};

    fn acls() -> Acls {
        let mut a = Acls::default();
        for b in [
            acl(Allow, "User:alice", Op::Write, Topic, "orders", Literal),
            acl(
                Allow,
                "User:analytics",
                Op::Read,
                Topic,
                "events-",
                Prefixed,
            ),
            acl(
                Deny,
                "User:analytics",
                Op::Read,
                Topic,
                "events-secret",
                Literal,
            ),
            acl(
                Allow,
                "User:analytics",
                Op::Read,
                Group,
                "analytics",
                Literal,
            ),
            acl(Allow, "User:*", Op::Describe, Topic, "public", Literal),
            acl(Allow, "User:ops", Op::All, Topic, WILDCARD, Literal),
            acl(Deny, "User:ops", Op::All, Topic, "payroll", Literal),
            acl(
                Allow,
                "User:ops",
                Op::AlterConfigs,
                Cluster,
                CLUSTER_NAME,
                Literal,
            ),
        ] {
            assert!(a.add(b));
        }
        a
    }

    #[test]
    fn decisions_follow_kafkas_standard_authorizer() {
        let a = acls();
        let strict = AuthorizerConfig {
            super_users: vec![Principal::user("admin")],
            allow_everyone_if_no_acl_found: false,
        };
        let lenient = AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..strict.clone()
        };
        // (config, principal, operation, resource) -> allowed
        let table: &[(&AuthorizerConfig, &str, Op, Resource, bool)] = &[
            // a literal allow, and what it implies
            (
                &strict,
                "User:alice",
                Op::Write,
                Resource::topic("orders"),
                true,
            ),
            (
                &strict,
                "User:alice",
                Op::Describe,
                Resource::topic("orders"),
                true,
            ),
            (
                &strict,
                "User:alice",
                Op::Read,
                Resource::topic("orders"),
                false,
            ),
            (
                &strict,
                "User:bob",
                Op::Write,
                Resource::topic("orders"),
                false,
            ),
            // prefixed allow, and a literal deny inside it wins
            (
                &strict,
                "User:analytics",
                Op::Read,
                Resource::topic("events-clicks"),
                true,
            ),
            (
                &strict,
                "User:analytics",
                Op::Read,
                Resource::topic("events-secret"),
                false,
            ),
            (
                &strict,
                "User:analytics",
                Op::Describe,
                Resource::topic("events-secret"),
                true,
            ),
            (
                &strict,
                "User:analytics",
                Op::Read,
                Resource::topic("event"),
                false,
            ),
            (
                &strict,
                "User:analytics",
                Op::Read,
                Resource::group("analytics"),
                true,
            ),
            (
                &strict,
                "User:analytics",
                Op::Read,
                Resource::group("other"),
                false,
            ),
            // the wildcard principal
            (
                &strict,
                "User:bob",
                Op::Describe,
                Resource::topic("public"),
                true,
            ),
            (
                &strict,
                "User:bob",
                Op::Read,
                Resource::topic("public"),
                false,
            ),
            // ALL on the wildcard name; a deny of ALL on one topic
            (
                &strict,
                "User:ops",
                Op::Delete,
                Resource::topic("anything"),
                true,
            ),
            (
                &strict,
                "User:ops",
                Op::Describe,
                Resource::topic("payroll"),
                false,
            ),
            // ALTER_CONFIGS implies DESCRIBE_CONFIGS, not DESCRIBE
            (
                &strict,
                "User:ops",
                Op::DescribeConfigs,
                Resource::cluster(),
                true,
            ),
            (
                &strict,
                "User:ops",
                Op::Describe,
                Resource::cluster(),
                false,
            ),
            // super users
            (
                &strict,
                "User:admin",
                Op::Delete,
                Resource::topic("payroll"),
                true,
            ),
            // a resource no ACL names: the ops wildcard names every topic, not groups
            (
                &strict,
                "User:bob",
                Op::Read,
                Resource::group("nobody-names-me"),
                false,
            ),
            (
                &lenient,
                "User:bob",
                Op::Read,
                Resource::group("nobody-names-me"),
                true,
            ),
            // a resource some ACL names: lenient does not help
            (
                &lenient,
                "User:bob",
                Op::Read,
                Resource::topic("orders"),
                false,
            ),
        ];
        for (config, who, op, resource, allowed) in table {
            let d = a.authorize(
                config,
                &Principal::parse(who).unwrap(),
                "10.0.0.1",
                *op,
                *resource,
            );
            assert_eq!(
                d.is_allowed(),
                *allowed,
                "{who} {op} {:?} '{}': {d:?}",
                resource.resource_type,
                resource.name
            );
        }
    }

    #[test]
    fn authorize_by_resource_type_finds_any_allowed_resource() {
        let mut a = acls();
        let strict = AuthorizerConfig::default();
        let lenient = AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..AuthorizerConfig::default()
        };
        // (acls, config, principal, operation, type) -> allowed
        let mut denied_all = Acls::default();
        denied_all.add(acl(Allow, "User:carol", Op::Write, Topic, "t", Literal));
        denied_all.add(acl(Deny, "User:*", Op::Write, Topic, WILDCARD, Literal));
        let mut denied_prefix = Acls::default();
        denied_prefix.add(acl(Allow, "User:carol", Op::Write, Topic, "t-1", Literal));
        denied_prefix.add(acl(Deny, "User:carol", Op::All, Topic, "t-", Prefixed));
        let empty = Acls::default();
        let table: &[(&Acls, &AuthorizerConfig, &str, Op, ResourceType, bool)] = &[
            (&a, &strict, "User:alice", Op::Write, Topic, true),
            (&a, &strict, "User:alice", Op::Read, Topic, false),
            (&a, &strict, "User:bob", Op::Write, Topic, false),
            (&a, &strict, "User:ops", Op::Write, Topic, true),
            (&a, &strict, "User:analytics", Op::Read, Group, true),
            // no ACL of the type: only the lenient config allows
            (&empty, &strict, "User:bob", Op::Write, Topic, false),
            (&empty, &lenient, "User:bob", Op::Write, Topic, true),
            (&a, &lenient, "User:bob", Op::Write, Topic, false),
            // a deny of every resource, and a prefix deny over the only allow
            (&denied_all, &strict, "User:carol", Op::Write, Topic, false),
            (
                &denied_prefix,
                &strict,
                "User:carol",
                Op::Write,
                Topic,
                false,
            ),
        ];
        for (acls, config, who, op, rt, allowed) in table {
            assert_eq!(
                acls.authorize_by_resource_type(
                    config,
                    &Principal::parse(who).unwrap(),
                    "10.0.0.1",
                    *op,
                    *rt
                ),
                *allowed,
                "{who} {op} any {rt}"
            );
        }
        // a super user, with nothing granted
        a = Acls::default();
        let admin = AuthorizerConfig {
            super_users: vec![Principal::user("admin")],
            ..AuthorizerConfig::default()
        };
        assert!(a.authorize_by_resource_type(
            &admin,
            &Principal::user("admin"),
            "h",
            Op::Write,
            Topic
        ));
    }

    #[test]
    fn authorizer_settings_parse_kafkas_forms() {
        assert_eq!(AuthorizerConfig::enabled_by(""), Ok(false));
        assert_eq!(AuthorizerConfig::enabled_by(STANDARD_AUTHORIZER), Ok(true));
        assert_eq!(AuthorizerConfig::enabled_by("StandardAuthorizer"), Ok(true));
        assert!(matches!(
            AuthorizerConfig::enabled_by("kafka.security.authorizer.AclAuthorizer"),
            Err(AclError::Authorizer(_))
        ));
        assert_eq!(
            AuthorizerConfig::parse_super_users(" User:admin; User:ops ;"),
            Ok(vec![Principal::user("admin"), Principal::user("ops")])
        );
        assert_eq!(
            AuthorizerConfig::parse_super_users("admin"),
            Err(AclError::Principal("admin".into()))
        );
    }

    #[test]
    fn a_denial_names_its_reason() {
        let a = acls();
        let config = AuthorizerConfig::default();
        let who = Principal::user("analytics");
        assert_eq!(
            a.authorize(
                &config,
                &who,
                "h",
                Op::Read,
                Resource::topic("events-secret")
            ),
            Decision::Denied(Reason::Acl(acl(
                Deny,
                "User:analytics",
                Op::Read,
                Topic,
                "events-secret",
                Literal
            )))
        );
        assert_eq!(
            a.authorize(&config, &who, "h", Op::Write, Resource::topic("orders")),
            Decision::Denied(Reason::NoMatchingAllow)
        );
        assert_eq!(
            a.authorize(&config, &who, "h", Op::Read, Resource::group("g")),
            Decision::Denied(Reason::NoAclFound)
        );
    }

    #[test]
    fn hosts_must_match_unless_the_acl_says_any() {
        let mut a = Acls::default();
        let mut b = acl(Allow, "User:alice", Op::Read, Topic, "orders", Literal);
        b.entry.host = "10.0.0.1".into();
        a.add(b);
        let config = AuthorizerConfig::default();
        let alice = Principal::user("alice");
        assert!(
            a.authorize(
                &config,
                &alice,
                "10.0.0.1",
                Op::Read,
                Resource::topic("orders")
            )
            .is_allowed()
        );
        assert!(
            !a.authorize(
                &config,
                &alice,
                "10.0.0.2",
                Op::Read,
                Resource::topic("orders")
            )
            .is_allowed()
        );
    }

    #[test]
    fn adding_is_idempotent_and_removing_reports_what_it_did() {
        let mut a = Acls::default();
        let b = acl(Allow, "User:alice", Op::Write, Topic, "orders", Literal);
        assert!(a.add(b.clone()));
        assert!(!a.add(b.clone()));
        assert_eq!(a.iter().count(), 1);
        assert!(a.remove(&b));
        assert!(!a.remove(&b));
        assert_eq!(a.iter().count(), 0);
    }

    #[test]
    fn names_and_codes_are_kafkas() {
        // (input) -> parsed operation
        for (s, op) in [
            ("write", Op::Write),
            ("WRITE", Op::Write),
            ("describe_configs", Op::DescribeConfigs),
            ("DescribeConfigs", Op::DescribeConfigs),
            ("describe-configs", Op::DescribeConfigs),
            ("idempotent_write", Op::IdempotentWrite),
            ("all", Op::All),
        ] {
            assert_eq!(Operation::parse(s), Ok(op), "{s}");
        }
        assert_eq!(
            Operation::parse("frobnicate"),
            Err(AclError::Operation("frobnicate".into()))
        );
        for op in Operation::ALL_VALUES {
            assert_eq!(Operation::from_code(op.code()), Some(*op));
        }
        assert_eq!(
            Operation::from_code(1),
            None,
            "ANY is a filter, not an operation"
        );
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(Permission::Allow.code(), 3);
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Ok(ResourceType::TransactionalId)
        );
    }

    #[test]
    fn bad_principals_and_patterns_are_refused_with_what_was_wrong() {
        for bad in ["alice", ":alice", "User:", ""] {
            assert_eq!(
                Principal::parse(bad),
                Err(AclError::Principal(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            Principal::parse("User:alice").unwrap().to_string(),
            "User:alice"
        );
        assert_eq!(
            ResourcePattern::new(Cluster, "prod", Literal),
            Err(AclError::ClusterName("prod".into()))
        );
        assert_eq!(
            ResourcePattern::new(Topic, "", Prefixed),
            Err(AclError::EmptyPrefix)
        );
    }

    #[test]
    fn filters_match_as_kafkas_acl_binding_filters() {
        let a = acls();
        let count = |f: AclFilter| a.matching(&f).len();
        let any = AclFilter::any;
        // (filter) -> ACLs matched
        let table: Vec<(AclFilter, usize)> = vec![
            (any(), 8),
            (
                AclFilter {
                    resource_type: Some(Topic),
                    ..any()
                },
                6,
            ),
            (
                AclFilter {
                    resource_type: Some(Group),
                    ..any()
                },
                1,
            ),
            (
                AclFilter {
                    principal: Some(Principal::user("analytics")),
                    ..any()
                },
                3,
            ),
            (
                AclFilter {
                    permission: Some(Deny),
                    ..any()
                },
                2,
            ),
            (
                AclFilter {
                    operation: Some(Op::Read),
                    ..any()
                },
                3,
            ),
            // ANY with a name: that exact name, any pattern type
            (
                AclFilter {
                    name: Some("events-".into()),
                    ..any()
                },
                1,
            ),
            // an exact pattern type
            (
                AclFilter {
                    name: Some("events-".into()),
                    pattern: PatternFilter::Exactly(Literal),
                    ..any()
                },
                0,
            ),
            (
                AclFilter {
                    pattern: PatternFilter::Exactly(Prefixed),
                    ..any()
                },
                1,
            ),
            // MATCH: what applies to topic events-secret: the prefix, the literal deny
            // and the ops wildcard
            (
                AclFilter {
                    resource_type: Some(Topic),
                    name: Some("events-secret".into()),
                    pattern: PatternFilter::Match,
                    ..any()
                },
                3,
            ),
            (
                AclFilter {
                    resource_type: Some(Topic),
                    name: Some("orders".into()),
                    pattern: PatternFilter::Match,
                    ..any()
                },
                2,
            ),
            (
                AclFilter {
                    host: Some("10.0.0.9".into()),
                    ..any()
                },
                0,
            ),
        ];
        for (filter, n) in table {
            assert_eq!(count(filter.clone()), n, "{filter:?}");
        }
    }
}
