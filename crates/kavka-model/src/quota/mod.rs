//! Client quotas as Kafka has them (KIP-13, KIP-55, KIP-546): quota entities (a user, a
//! client id, or both, each possibly the `<default>`), the quota keys
//! (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`), the checks
//! AlterClientQuotas makes, DescribeClientQuotas' filters, and which quota applies to a
//! (user, client id) (Kafka's precedence order). The rate measurement and throttle time
//! are in [`rate`].
//!
//! Invariants: a [`QuotaEntity`] names at least one of user and client id, never an
//! empty name; a stored [`QuotaValue`] is finite and greater than 0 (and whole for the
//! byte rates); every refusal is INVALID_REQUEST with Kafka's message. Pure data and
//! functions: no I/O, no clocks (callers pass the time).

pub mod rate;

use crate::{ErrorCode, KafkaError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Kafka's name of the default entity in messages and the CLI (`<default>`).
pub const DEFAULT_NAME: &str = "<default>";

/// An entity type of a quota entity, by Kafka's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityType {
    User,
    ClientId,
}

impl EntityType {
    /// Kafka's name: `user`, `client-id`.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ClientId => "client-id",
        }
    }

    /// The type Kafka calls `name`; `ip` (connection-rate quotas) is not served here.
    pub fn parse(name: &str) -> Result<Self, KafkaError> {
        match name {
            "user" => Ok(Self::User),
            "client-id" => Ok(Self::ClientId),
            "ip" => Err(invalid(
                "ip quotas (connection_creation_rate) are not supported by this broker",
            )),
            other => Err(invalid(format!(
                "Unhandled client quota entity type: {other}"
            ))),
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One component's name: a user or client id, or the default for every one without a
/// quota of its own (Kafka's null entity name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Name(String),
}

impl EntityName {
    /// Kafka's wire form: `None` for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            Self::Default => None,
            Self::Name(n) => Some(n),
        }
    }

    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => Self::Default,
            Some(n) => Self::Name(n.to_string()),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str(DEFAULT_NAME),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// What a quota is set on: a user, a client id, or a (user, client id) pair, each part a
/// name or the default. At least one part is present.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    user: Option<EntityName>,
    client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// An entity of the parts given; `None` if neither is.
    pub fn new(user: Option<EntityName>, client_id: Option<EntityName>) -> Option<Self> {
        (user.is_some() || client_id.is_some()).then_some(Self { user, client_id })
    }

    pub fn user(&self) -> Option<&EntityName> {
        self.user.as_ref()
    }

    pub fn client_id(&self) -> Option<&EntityName> {
        self.client_id.as_ref()
    }

    /// The entity a request names as (type, name) components on the wire, checked as
    /// Kafka's controller checks it: known types, each at most once, no empty name, not
    /// empty.
    pub fn from_components<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, KafkaError> {
        let (mut user, mut client_id) = (None, None);
        for (entity_type, name) in components {
            let t = EntityType::parse(entity_type)?;
            if name.is_some_and(str::is_empty) {
                return Err(invalid(format!("Empty {t} not supported")));
            }
            let slot = match t {
                EntityType::User => &mut user,
                EntityType::ClientId => &mut client_id,
            };
            if slot.is_some() {
                return Err(invalid(format!("Duplicate entity type: {t}")));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        Self::new(user, client_id).ok_or_else(|| invalid("Invalid empty client quota entity"))
    }

    /// The (type, name) components, user first, as Kafka lists them.
    pub fn components(&self) -> Vec<(EntityType, &EntityName)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((EntityType::User, u));
        }
        if let Some(c) = &self.client_id {
            out.push((EntityType::ClientId, c));
        }
        out
    }
}

impl fmt::Display for QuotaEntity {
    /// `user=alice, client-id=<default>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components()
            .into_iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A quota key, by Kafka's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// Bytes per second a producer may append (whole number).
    ProducerByteRate,
    /// Bytes per second a consumer may fetch (whole number).
    ConsumerByteRate,
    /// Percent of one request handler's time (100: one handler busy all the time),
    /// measured as the time spent answering requests.
    RequestPercentage,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 3] = [
        Self::ProducerByteRate,
        Self::ConsumerByteRate,
        Self::RequestPercentage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ProducerByteRate => "producer_byte_rate",
            Self::ConsumerByteRate => "consumer_byte_rate",
            Self::RequestPercentage => "request_percentage",
        }
    }

    /// How many measured units per second one unit of the quota allows: bytes for the
    /// byte rates; for `request_percentage`, microseconds of answering (1% of one
    /// handler's time is 10,000 µs per second).
    pub fn measured_per_unit(self) -> f64 {
        match self {
            Self::ProducerByteRate | Self::ConsumerByteRate => 1.0,
            Self::RequestPercentage => 10_000.0,
        }
    }

    pub fn parse(name: &str) -> Result<Self, KafkaError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| invalid(format!("Invalid configuration key {name}")))
    }

    /// The value checked as Kafka's controller checks it: greater than 0, and a whole
    /// number that fits a LONG for the byte rates.
    pub fn value(self, value: f64) -> Result<QuotaValue, KafkaError> {
        let key = self.name();
        if value.is_nan() || value <= 0.0 {
            return Err(invalid(format!("Quota {key} must be greater than 0")));
        }
        match self {
            Self::ProducerByteRate | Self::ConsumerByteRate => {
                // i64::MAX as f64 rounds up to 2^63: anything at or past it is too large.
                if value >= i64::MAX as f64 {
                    return Err(invalid(format!(
                        "Proposed value for {key} is too large for a LONG."
                    )));
                }
                if value.fract() != 0.0 {
                    return Err(invalid(format!(
                        "Proposed value for {key} is not a valid LONG."
                    )));
                }
            }
            Self::RequestPercentage => {
                if !value.is_finite() {
                    return Err(invalid(format!(
                        "Proposed value for {key} is not a valid DOUBLE."
                    )));
                }
            }
        }
        Ok(QuotaValue(value))
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quota's value as Kafka carries it (a double), checked by [`QuotaKey::value`]:
/// finite and greater than 0, so equality by bits is equality of numbers.
#[derive(Clone, Copy, Debug, PartialOrd, Serialize, Deserialize)]
pub struct QuotaValue(f64);

impl QuotaValue {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

impl fmt::Display for QuotaValue {
    /// Whole numbers without a fraction (`1048576`), others as they are (`12.5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// One change AlterClientQuotas asks for on an entity: set a key, or remove it (`None`).
pub type QuotaOp = (QuotaKey, Option<QuotaValue>);

/// The ops of one entry, checked: known keys with valid values, each key at most once.
pub fn parse_ops<'a>(
    ops: impl IntoIterator<Item = (&'a str, f64, bool)>,
) -> Result<Vec<QuotaOp>, KafkaError> {
    let mut out: Vec<QuotaOp> = Vec::new();
    for (key, value, remove) in ops {
        let k = QuotaKey::parse(key)?;
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(invalid(format!("Duplicate quota key: {k}")));
        }
        let v = if remove { None } else { Some(k.value(value)?) };
        out.push((k, v));
    }
    Ok(out)
}

/// One entry of an AlterClientQuotas request as the client sent it, not yet checked:
/// the controller checks it (so every listener gets the same answers).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaAlteration {
    /// (entity type, name; `None`: the default), as on the wire.
    pub entity: Vec<(String, Option<String>)>,
    /// (key, value, remove), as on the wire.
    pub ops: Vec<(String, f64, bool)>,
}

impl QuotaAlteration {
    /// The entity and ops, checked as Kafka's controller checks them.
    pub fn check(&self) -> Result<(QuotaEntity, Vec<QuotaOp>), KafkaError> {
        let entity = QuotaEntity::from_components(
            self.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref())),
        )?;
        let ops = parse_ops(self.ops.iter().map(|(k, v, r)| (k.as_str(), *v, *r)))?;
        Ok((entity, ops))
    }
}

/// AlterClientQuotas' outcome for one entry, in request order.
pub type AlterationOutcome = Result<(), KafkaError>;

/// An entity with its quotas, as DescribeClientQuotas lists them.
pub type QuotaEntry = (
    QuotaEntity,
    std::collections::BTreeMap<QuotaKey, QuotaValue>,
);

/// How a DescribeClientQuotas component matches an entity's part of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentMatch {
    /// The part is this name (Kafka's match type 0, EXACT).
    Exact(String),
    /// The part is the default (match type 1, DEFAULT).
    Default,
    /// The part is any name, not the default (match type 2, SPECIFIED).
    Specified,
}

impl ComponentMatch {
    /// Kafka's (match_type, match) pair.
    pub fn from_wire(match_type: i8, name: Option<&str>) -> Result<Self, KafkaError> {
        match (match_type, name) {
            (0, Some(n)) => Ok(Self::Exact(n.to_string())),
            (0, None) => Err(invalid(
                "An exact match must name the entity (match is null)",
            )),
            (1, _) => Ok(Self::Default),
            (2, _) => Ok(Self::Specified),
            (t, _) => Err(invalid(format!("Unknown match type {t}"))),
        }
    }

    pub fn match_type(&self) -> i8 {
        match self {
            Self::Exact(_) => 0,
            Self::Default => 1,
            Self::Specified => 2,
        }
    }

    fn matches(&self, part: Option<&EntityName>) -> bool {
        match (self, part) {
            (Self::Exact(want), Some(EntityName::Name(n))) => want == n,
            (Self::Default, Some(EntityName::Default)) => true,
            (Self::Specified, Some(EntityName::Name(_))) => true,
            _ => false,
        }
    }
}

/// A DescribeClientQuotas filter: every component must match its part of an entity;
/// `strict`: the entity has no parts of other types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaFilter {
    components: Vec<(EntityType, ComponentMatch)>,
    strict: bool,
}

impl QuotaFilter {
    /// Checked as Kafka checks it: known entity types, each at most once.
    pub fn new(
        components: Vec<(EntityType, ComponentMatch)>,
        strict: bool,
    ) -> Result<Self, KafkaError> {
        for (i, (t, _)) in components.iter().enumerate() {
            if components[..i].iter().any(|(u, _)| u == t) {
                return Err(invalid(format!(
                    "Duplicate {t} filter component entity type"
                )));
            }
        }
        Ok(Self { components, strict })
    }

    pub fn components(&self) -> &[(EntityType, ComponentMatch)] {
        &self.components
    }

    pub fn strict(&self) -> bool {
        self.strict
    }

    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let part = |t: EntityType| match t {
            EntityType::User => entity.user(),
            EntityType::ClientId => entity.client_id(),
        };
        self.components.iter().all(|(t, m)| m.matches(part(*t)))
            && (!self.strict
                || entity
                    .components()
                    .iter()
                    .all(|(t, _)| self.components.iter().any(|(u, _)| u == t)))
    }
}

/// The quota that applies to a client, and the entity its usage is measured under
/// (Kafka's metric tags): everyone the matched entry covers shares one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedQuota {
    /// The user the usage is counted under ("" when the quota is per client id only).
    pub user: String,
    /// The client id the usage is counted under ("" when the quota is per user only).
    pub client_id: String,
    pub quota: f64,
}

/// The `key` quota that applies to `user` (the principal's name) with `client_id`, in
/// Kafka's precedence order (the first entity with a `key` quota wins):
///
/// ```text
/// 1 /config/users/<user>/clients/<client-id>
/// 2 /config/users/<user>/clients/<default>
/// 3 /config/users/<user>
/// 4 /config/users/<default>/clients/<client-id>
/// 5 /config/users/<default>/clients/<default>
/// 6 /config/users/<default>
/// 7 /config/clients/<client-id>
/// 8 /config/clients/<default>
/// ```
///
/// `lookup` reads the stored quotas; `None` when no entity has one.
pub fn resolve(
    lookup: impl Fn(&QuotaEntity, QuotaKey) -> Option<f64>,
    user: &str,
    client_id: &str,
    key: QuotaKey,
) -> Option<AppliedQuota> {
    use EntityName::{Default as D, Name as N};
    let (u, c) = (|| N(user.to_string()), || N(client_id.to_string()));
    // (user part, client part, measured per user, measured per client id)
    let order = [
        (Some(u()), Some(c()), true, true),
        (Some(u()), Some(D), true, true),
        (Some(u()), None, true, false),
        (Some(D), Some(c()), true, true),
        (Some(D), Some(D), true, true),
        (Some(D), None, true, false),
        (None, Some(c()), false, true),
        (None, Some(D), false, true),
    ];
    order
        .into_iter()
        .find_map(|(up, cp, per_user, per_client)| {
            let entity = QuotaEntity::new(up, cp)?;
            let quota = lookup(&entity, key)?;
            Some(AppliedQuota {
                user: if per_user { user.into() } else { String::new() },
                client_id: if per_client {
                    client_id.into()
                } else {
                    String::new()
                },
                quota,
            })
        })
}

fn invalid(message: impl Into<String>) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidRequest, message)
}

#[cfg(test)]
mod tests;
