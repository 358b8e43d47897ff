//! Client quotas over the admin gRPC service (Kafka's AlterClientQuotas and
//! DescribeClientQuotas): entries go as the caller wrote them and are checked by the
//! controller; described entries are checked on the way back.

use crate::connection::Client;
use crate::error::ClientError;
use kavka_model::quota::{QuotaAlteration, QuotaEntry, QuotaFilter};
use kavka_proto::conv;

impl Client {
    /// Sets and removes client quotas; one result per entry, in order
    /// (`validate_only`: checked, nothing changed).
    pub async fn alter_client_quotas(
        &mut self,
        entries: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let resp = self
            .admin
            .alter_client_quotas(conv::alter_client_quotas_request(entries, validate_only))
            .await?
            .into_inner();
        Ok(resp
            .results
            .iter()
            .map(|r| conv::check(r.error.as_ref()).map_err(ClientError::from))
            .collect())
    }

    /// The entities `filter` matches, with their quotas.
    pub async fn describe_client_quotas(
        &mut self,
        filter: &QuotaFilter,
    ) -> Result<Vec<QuotaEntry>, ClientError> {
        let resp = self
            .admin
            .describe_client_quotas(conv::describe_client_quotas_request(filter))
            .await?
            .into_inner();
        Ok(conv::quota_entries(&resp)?)
    }
}
