//! Client quotas in the broker API: DescribeClientQuotas reads this broker's image;
//! AlterClientQuotas is an admin write (`admin`); produce and consumer fetch bytes are
//! measured here for every listener (`throttle`), against the quotas in the image.
//!
//! Invariants: describing lists entities in the image's order (by entity), each with
//! all its quotas; a listener calls [`BrokerApi::throttle`] once per produce request
//! (bytes appended) and once per consumer fetch (bytes returned), never for a replica
//! fetch. Must not depend on any listener.

use super::BrokerApi;
use crate::quotas::QuotaClient;
use kavka_model::quota::{QuotaEntry, QuotaFilter, QuotaKey};
use std::time::Duration;

impl BrokerApi {
    /// The entities `filter` matches, with their quotas (DescribeClientQuotas).
    pub fn describe_client_quotas(&self, filter: &QuotaFilter) -> Vec<QuotaEntry> {
        self.image()
            .client_quotas()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, values)| (entity.clone(), values.clone()))
            .collect()
    }

    /// Records `bytes` of `key`'s kind (`producer_byte_rate`: appended,
    /// `consumer_byte_rate`: returned) for `client`; how long it must now wait (Kafka's
    /// throttle time, zero within its quota). `unrecord_if_throttled`: a throttled
    /// request is answered without its data, so it does not count (fetch).
    #[tracing::instrument(level = "trace", skip_all, fields(quota = %key, user = %client.user, client_id = %client.client_id))]
    pub fn throttle(
        &self,
        key: QuotaKey,
        client: &QuotaClient,
        bytes: u64,
        unrecord_if_throttled: bool,
    ) -> Duration {
        self.quotas
            .record(&self.image(), key, client, bytes, unrecord_if_throttled)
    }
}
