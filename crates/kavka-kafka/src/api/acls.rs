//! CreateAcls, DescribeAcls and DeleteAcls: Kafka's ACL administration translated onto
//! the broker API (ACLs live in the metadata log; writes go through the active
//! controller and are answered once this broker's image shows them).
//!
//! Invariants: every creation and every filter gets exactly one result, in request
//! order; an ACL or filter that does not parse is answered INVALID_REQUEST naming the
//! field, and the rest of the request goes ahead. ACLs are stored and listed whether or
//! not an authorizer enforces them (as Redpanda does; Kafka answers SECURITY_DISABLED
//! without an authorizer). Creating and deleting ACLs takes ALTER on the cluster,
//! listing them DESCRIBE on the cluster (Kafka's rules).

use super::{Ctx, error_parts, str_bytes};
use crate::Broker;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kavka_broker::api::in_request_order;
use kavka_model::acl::{AclBinding, AclFilter, Operation, Resource, WireAcl, WireAclFilter};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::BTreeMap;

fn invalid(what: &str, e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidRequest, format!("{what} {e}"))
}

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub(crate) async fn create_acls(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let allowed = ctx.check(broker, Operation::Alter, Resource::cluster());
    let asked: Vec<Result<AclBinding, KafkaError>> = req
        .creations
        .into_iter()
        .map(|c| {
            allowed.clone()?;
            AclBinding::try_from(WireAcl {
                resource_type: i32::from(c.resource_type),
                resource_name: c.resource_name.to_string(),
                pattern_type: i32::from(c.resource_pattern_type),
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: i32::from(c.operation),
                permission: i32::from(c.permission_type),
            })
            .map_err(|e| invalid("ACL", e))
        })
        .collect();
    let results = in_request_order(asked, async |acls: Vec<AclBinding>| {
        match broker.admin.create_acls(&acls).await {
            Ok(results) => results,
            Err(e) => acls.iter().map(|_| Err(e.clone())).collect(),
        }
    })
    .await
    .into_iter()
    .map(|r| match r.and_then(|r| r) {
        Ok(()) => AclCreationResult::default(),
        Err(e) => {
            let (code, msg) = error_parts(&e);
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(msg)
        }
    })
    .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(crate) fn describe_acls(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Err(e) = ctx.check(broker, Operation::Describe, Resource::cluster()) {
        let (code, msg) = error_parts(&e);
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(msg);
    }
    let filter = AclFilter::try_from(WireAclFilter {
        resource_type: i32::from(req.resource_type_filter),
        resource_name: text(&req.resource_name_filter),
        pattern_type: i32::from(req.pattern_type_filter),
        principal: text(&req.principal_filter),
        host: text(&req.host_filter),
        operation: i32::from(req.operation),
        permission: i32::from(req.permission_type),
    });
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            let (code, msg) = error_parts(&invalid("ACL filter", e));
            return DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(msg);
        }
    };
    // Kafka groups the ACLs by resource pattern.
    let mut by_pattern: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for b in broker.api.describe_acls(&filter) {
        let w = WireAcl::from(&b);
        by_pattern
            .entry((w.resource_type, w.resource_name, w.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(w.principal))
                    .with_host(str_bytes(w.host))
                    .with_operation(code(w.operation))
                    .with_permission_type(code(w.permission)),
            );
    }
    let resources = by_pattern
        .into_iter()
        .map(|((t, name, p), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(code(t))
                .with_resource_name(str_bytes(name))
                .with_pattern_type(code(p))
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub(crate) async fn delete_acls(
    broker: &Broker,
    ctx: &Ctx<'_>,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let allowed = ctx.check(broker, Operation::Alter, Resource::cluster());
    let asked: Vec<Result<AclFilter, KafkaError>> = req
        .filters
        .into_iter()
        .map(|f| {
            allowed.clone()?;
            AclFilter::try_from(WireAclFilter {
                resource_type: i32::from(f.resource_type_filter),
                resource_name: text(&f.resource_name_filter),
                pattern_type: i32::from(f.pattern_type_filter),
                principal: text(&f.principal_filter),
                host: text(&f.host_filter),
                operation: i32::from(f.operation),
                permission: i32::from(f.permission_type),
            })
            .map_err(|e| invalid("ACL filter", e))
        })
        .collect();
    let results = in_request_order(asked, async |filters: Vec<AclFilter>| {
        match broker.admin.delete_acls(&filters).await {
            Ok(results) => results,
            Err(e) => filters.iter().map(|_| Err(e.clone())).collect(),
        }
    })
    .await
    .into_iter()
    .map(|r| match r.and_then(|r| r) {
        Ok(deleted) => DeleteAclsFilterResult::default().with_matching_acls(
            deleted
                .iter()
                .map(|b| {
                    let w = WireAcl::from(b);
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(code(w.resource_type))
                        .with_resource_name(str_bytes(w.resource_name))
                        .with_pattern_type(code(w.pattern_type))
                        .with_principal(str_bytes(w.principal))
                        .with_host(str_bytes(w.host))
                        .with_operation(code(w.operation))
                        .with_permission_type(code(w.permission))
                })
                .collect(),
        ),
        Err(e) => {
            let (code, msg) = error_parts(&e);
            DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(msg)
        }
    })
    .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

/// A code of a model ACL on Kafka's wire: the model's codes are Kafka's i8 codes, so
/// this never saturates.
fn code(n: i32) -> i8 {
    i8::try_from(n).unwrap_or(i8::MAX)
}
