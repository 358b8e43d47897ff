//! InitProducerId for idempotent producers (`enable.idempotence=true`). Transactions are
//! not served: a request with a transactional id is refused. A producer id takes
//! IDEMPOTENT_WRITE on the cluster or WRITE on some topic (Kafka's rule since KIP-679).

use super::Ctx;
use crate::Broker;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kavka_model::ErrorCode;
use kavka_model::acl::{Operation, Resource, ResourceType};

pub(crate) async fn init_producer_id(
    broker: &Broker,
    ctx: &Ctx<'_>,
    r: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if r.transactional_id.is_some() {
        tracing::info!(
            "InitProducerId with a transactional id refused: transactions are not supported"
        );
        return failed(ErrorCode::InvalidRequest);
    }
    if !ctx.may(broker, Operation::IdempotentWrite, Resource::cluster())
        && !broker
            .api
            .is_authorized_for_any(ctx.caller, Operation::Write, ResourceType::Topic)
    {
        return failed(ErrorCode::ClusterAuthorizationFailed);
    }
    // As Kafka for a producer without a transactional id, a request naming its current
    // id and epoch (KIP-360) gets a fresh id rather than a bumped epoch.
    match broker.api.producers.next_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "no producer id to give");
            failed(if e.code.is_retriable() {
                ErrorCode::CoordinatorNotAvailable
            } else {
                e.code
            })
        }
    }
}
