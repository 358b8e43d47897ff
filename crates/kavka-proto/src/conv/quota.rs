//! Client quotas <-> protobuf: entities as Kafka's (type, name) components, AlterClientQuotas
//! entries as sent (checked by the controller, not here), DescribeClientQuotas filters
//! checked as Kafka checks them (INVALID_REQUEST naming what was wrong).

use crate::v1;
use kavka_model::KafkaError;
use kavka_model::quota::{
    ComponentMatch, EntityType, QuotaAlteration, QuotaEntity, QuotaEntry, QuotaFilter,
};

/// An entity's components on the wire.
pub fn quota_entity_components(entity: &QuotaEntity) -> Vec<v1::QuotaEntityComponent> {
    entity
        .components()
        .into_iter()
        .map(|(t, n)| v1::QuotaEntityComponent {
            entity_type: t.name().to_string(),
            entity_name: n.as_wire().map(str::to_string),
        })
        .collect()
}

/// The entity the components name, checked.
pub fn quota_entity(components: &[v1::QuotaEntityComponent]) -> Result<QuotaEntity, KafkaError> {
    QuotaEntity::from_components(
        components
            .iter()
            .map(|c| (c.entity_type.as_str(), c.entity_name.as_deref())),
    )
}

/// The entries of an AlterClientQuotas, as sent.
pub fn quota_alterations(req: &v1::AlterClientQuotasRequest) -> Vec<QuotaAlteration> {
    req.entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|c| (c.entity_type.clone(), c.entity_name.clone()))
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|o| (o.key.clone(), o.value, o.remove))
                .collect(),
        })
        .collect()
}

/// An AlterClientQuotas request of `entries`.
pub fn alter_client_quotas_request(
    entries: &[QuotaAlteration],
    validate_only: bool,
) -> v1::AlterClientQuotasRequest {
    v1::AlterClientQuotasRequest {
        entries: entries
            .iter()
            .map(|e| v1::ClientQuotaAlteration {
                entity: raw_components(e),
                ops: e
                    .ops
                    .iter()
                    .map(|(key, value, remove)| v1::ClientQuotaOp {
                        key: key.clone(),
                        value: *value,
                        remove: *remove,
                    })
                    .collect(),
            })
            .collect(),
        validate_only,
    }
}

/// The entity of an entry, as sent (for its result).
pub fn raw_components(e: &QuotaAlteration) -> Vec<v1::QuotaEntityComponent> {
    e.entity
        .iter()
        .map(|(t, n)| v1::QuotaEntityComponent {
            entity_type: t.clone(),
            entity_name: n.clone(),
        })
        .collect()
}

/// The results of an AlterClientQuotas, one per entry of `entries`, in order.
pub fn alter_client_quotas_response(
    entries: &[QuotaAlteration],
    results: Vec<Result<(), KafkaError>>,
) -> v1::AlterClientQuotasResponse {
    v1::AlterClientQuotasResponse {
        results: entries
            .iter()
            .zip(results)
            .map(|(e, r)| v1::ClientQuotaAlterationResult {
                entity: raw_components(e),
                error: r.err().map(Into::into),
            })
            .collect(),
    }
}

/// The filter of a DescribeClientQuotas, checked.
pub fn quota_filter(req: &v1::DescribeClientQuotasRequest) -> Result<QuotaFilter, KafkaError> {
    let components = req
        .components
        .iter()
        .map(|c| {
            let t = EntityType::parse(&c.entity_type)?;
            let match_type = i8::try_from(c.match_type).unwrap_or(i8::MAX);
            Ok((
                t,
                ComponentMatch::from_wire(match_type, c.r#match.as_deref())?,
            ))
        })
        .collect::<Result<Vec<_>, KafkaError>>()?;
    QuotaFilter::new(components, req.strict)
}

/// A DescribeClientQuotas request of `filter`.
pub fn describe_client_quotas_request(filter: &QuotaFilter) -> v1::DescribeClientQuotasRequest {
    v1::DescribeClientQuotasRequest {
        components: filter
            .components()
            .iter()
            .map(|(t, m)| v1::QuotaFilterComponent {
                entity_type: t.name().to_string(),
                match_type: i32::from(m.match_type()),
                r#match: match m {
                    ComponentMatch::Exact(n) => Some(n.clone()),
                    _ => None,
                },
            })
            .collect(),
        strict: filter.strict(),
    }
}

/// The entries a DescribeClientQuotas answers.
pub fn client_quota_entries(entries: &[QuotaEntry]) -> Vec<v1::ClientQuotaEntry> {
    entries
        .iter()
        .map(|(entity, values)| v1::ClientQuotaEntry {
            entity: quota_entity_components(entity),
            values: values
                .iter()
                .map(|(k, v)| v1::ClientQuotaValue {
                    key: k.name().to_string(),
                    value: v.get(),
                })
                .collect(),
        })
        .collect()
}

/// The entries of a DescribeClientQuotas answer, checked.
pub fn quota_entries(
    resp: &v1::DescribeClientQuotasResponse,
) -> Result<Vec<QuotaEntry>, KafkaError> {
    resp.entries
        .iter()
        .map(|e| {
            let entity = quota_entity(&e.entity)?;
            let values = e
                .values
                .iter()
                .map(|v| {
                    let k = kavka_model::quota::QuotaKey::parse(&v.key)?;
                    Ok((k, k.value(v.value)?))
                })
                .collect::<Result<_, KafkaError>>()?;
            Ok((entity, values))
        })
        .collect()
}
