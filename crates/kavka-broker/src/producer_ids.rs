//! Producer ids for idempotent producers (Kafka's `ProducerIdManager`): the broker asks
//! the active controller for a block of ids (committed in the metadata log before it is
//! given) and hands them out one by one. Ids are unique across the cluster and its
//! restarts; an id left unused in a block when the broker stops is simply never used.

use crate::controllers::Controllers;
use kavka_model::{BrokerId, ErrorCode, KafkaError};
use kavka_proto::v1;
use std::sync::Arc;

pub struct ProducerIdManager {
    controllers: Arc<Controllers>,
    broker_id: BrokerId,
    incarnation_id: uuid::Uuid,
    /// `[next, end)` of the current block; empty at start.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn new(
        controllers: Arc<Controllers>,
        broker_id: BrokerId,
        incarnation_id: uuid::Uuid,
    ) -> Self {
        Self {
            controllers,
            broker_id,
            incarnation_id,
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// A producer id no one else has had (epoch 0 goes with it).
    #[tracing::instrument(skip(self))]
    pub async fn next_id(&self) -> Result<i64, KafkaError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let req = v1::AllocateProducerIdsRequest {
                broker_id: self.broker_id.0,
                incarnation_id: self.incarnation_id.to_string(),
            };
            let resp = self
                .controllers
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.allocate_producer_ids(req).await.map(|r| r.into_inner()) }
                })
                .await?;
            kavka_proto::conv::check(resp.error.as_ref())?;
            if resp.producer_id_start < 0 || resp.producer_id_len <= 0 {
                return Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!(
                        "controller gave an empty producer id block [{}, +{})",
                        resp.producer_id_start, resp.producer_id_len
                    ),
                ));
            }
            tracing::info!(
                start = resp.producer_id_start,
                len = resp.producer_id_len,
                "new producer id block"
            );
            *block = (
                resp.producer_id_start,
                resp.producer_id_start + resp.producer_id_len,
            );
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
