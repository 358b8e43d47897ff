//! DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), v0-1: client quotas
//! translated onto the broker API (stored in the metadata log by the controller, which
//! checks every entry).
//!
//! Invariants: describing takes DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS
//! (Kafka's rules), else CLUSTER_AUTHORIZATION_FAILED (for every entry of an alter); a
//! bad filter is INVALID_REQUEST for the whole describe, a bad entry INVALID_REQUEST for
//! that entry only, each with Kafka's message; one result per entry, in order, naming
//! the entity as sent.

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, alter_client_quotas_response,
};
use kavka_model::KafkaError;
use kavka_model::acl::{Operation, Resource};
use kavka_model::quota::{ComponentMatch, EntityType, QuotaAlteration, QuotaFilter};

fn filter(req: &DescribeClientQuotasRequest) -> Result<QuotaFilter, KafkaError> {
    let components = req
        .components
        .iter()
        .map(|c| {
            let t = EntityType::parse(&c.entity_type)?;
            Ok((
                t,
                ComponentMatch::from_wire(c.match_type, c._match.as_deref())?,
            ))
        })
        .collect::<Result<Vec<_>, KafkaError>>()?;
    QuotaFilter::new(components, req.strict)
}

pub(crate) fn describe_client_quotas(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let asked = ctx
        .check(broker, Operation::DescribeConfigs, Resource::cluster())
        .and_then(|()| filter(&req));
    let filter = match asked {
        Ok(f) => f,
        Err(e) => {
            let (code, msg) = error_parts(&e);
            return DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_entries(None);
        }
    };
    let entries = broker
        .api
        .describe_client_quotas(&filter)
        .into_iter()
        .map(|(entity, values)| {
            DescribedEntry::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(t, n)| {
                            DescribedEntity::default()
                                .with_entity_type(str_bytes(t.name()))
                                .with_entity_name(n.as_wire().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(str_bytes(k.name()))
                                .with_value(v.get())
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub(crate) async fn alter_client_quotas(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let entries: Vec<QuotaAlteration> = req
        .entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|c| {
                    (
                        c.entity_type.to_string(),
                        c.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|o| (o.key.to_string(), o.value, o.remove))
                .collect(),
        })
        .collect();
    let outcomes: Vec<Result<(), KafkaError>> =
        match ctx.check(broker, Operation::AlterConfigs, Resource::cluster()) {
            Err(e) => vec![Err(e); entries.len()],
            Ok(()) if entries.is_empty() => Vec::new(),
            Ok(()) => match broker
                .admin
                .alter_client_quotas(&entries, req.validate_only)
                .await
            {
                Ok(rs) => rs,
                Err(e) => vec![Err(e); entries.len()],
            },
        };
    let results = req
        .entries
        .into_iter()
        .zip(outcomes)
        .map(|(e, outcome)| {
            let entity = e
                .entity
                .into_iter()
                .map(|c| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(c.entity_type)
                        .with_entity_name(c.entity_name)
                })
                .collect();
            let r = alter_client_quotas_response::EntryData::default().with_entity(entity);
            match outcome {
                Ok(()) => r,
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    r.with_error_code(code).with_error_message(msg)
                }
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(results)
}
