//! The broker API: what a client can ask of this broker, by operation (Kafka's request
//! handlers are the model), in model types only. The gRPC services and the Kafka
//! listener are thin translators onto it: they decode, call, encode, and hold no logic
//! of their own, so both protocols share one behaviour and one place for the checks
//! every request must pass.
//!
//! [`BrokerApi`] is the one handle both listeners take; authorization, quotas and metrics
//! hook into it once. It groups:
//! - `admin`: topic and config writes, which go through the active controller; each
//!   answers once this broker's own metadata image shows the result, so a client reads
//!   its own write on its next request;
//! - the data operations (`data`): produce, fetch, ListOffsets, replica fetches,
//!   OffsetForLeaderEpoch, metadata and topic descriptions;
//! - the log operations (`logs`): DescribeLogDirs, DescribeProducers, DeleteRecords;
//! - `groups`: the group coordinator;
//! - `producers`: producer ids for idempotent producers;
//! - `quotas`: DescribeClientQuotas, and the byte-rate throttle every listener asks for
//!   on produce and consumer fetch (the writes are `admin`'s).
//!
//! Authorization (`authorize`) is the one check both listeners make before an
//! operation acts.
//!
//! Invariants: no protobuf or Kafka protocol type appears here (conversions live in
//! `kavka-proto`'s `conv` and in `kavka-kafka`'s handlers); every request item gets
//! exactly one outcome, in request order.

pub mod admin;
pub mod authorize;
pub mod data;
pub mod logs;
pub mod quotas;

pub use crate::replica_manager::topic_name;
pub use admin::{Admin, AlteredConfigs};
pub use data::{Produced, in_request_order};

use crate::BrokerConfig;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;
use kavka_group::GroupCoordinator;
use kavka_metadata::MetadataImage;
use kavka_model::DynamicBrokerConfig;
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::scram::{ScramMechanism, UserCredentials};
use kavka_model::{ErrorCode, KafkaError};
use std::sync::Arc;

/// The broker API: one handle, by operation.
#[derive(Clone)]
pub struct BrokerApi {
    /// Topic and config administration.
    pub admin: Arc<Admin>,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Producer ids (InitProducerId).
    pub producers: Arc<ProducerIdManager>,
    /// Serves the data operations (`data`).
    replicas: Arc<ReplicaManager>,
    /// Client quota measurements (`quotas`).
    quotas: Arc<crate::quotas::ClientQuotaManager>,
}

impl BrokerApi {
    pub fn new(
        replicas: Arc<ReplicaManager>,
        admin: Arc<Admin>,
        groups: Arc<GroupCoordinator>,
        producers: Arc<ProducerIdManager>,
    ) -> Self {
        Self {
            admin,
            groups,
            producers,
            replicas,
            quotas: Arc::new(crate::quotas::ClientQuotaManager::new()),
        }
    }

    /// The replica manager, for this crate's services (the watch stream).
    pub(crate) fn replicas(&self) -> &Arc<ReplicaManager> {
        &self.replicas
    }

    /// The metadata image this broker has applied: topics, partitions, brokers, configs.
    /// Reads of it (Metadata, DescribeConfigs, group listings) go through here so that
    /// one place can later filter what a principal may see.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.replicas.image()
    }

    /// The ACLs `filter` matches (DescribeAcls), from this broker's image.
    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.replicas.image().acls().matching(filter)
    }

    /// The users with SCRAM credentials (`users` empty: all), with each credential's
    /// mechanism and iterations; a user named with none is RESOURCE_NOT_FOUND.
    pub fn describe_user_scram_credentials(&self, users: &[String]) -> Vec<UserCredentials> {
        let image = self.replicas.image();
        let mut all: std::collections::BTreeMap<String, Vec<(ScramMechanism, u32)>> =
            std::collections::BTreeMap::new();
        for (user, c) in image.scram_users() {
            all.entry(user.to_string())
                .or_default()
                .push((c.mechanism, c.iterations));
        }
        if users.is_empty() {
            return all.into_iter().map(|(u, c)| (u, Ok(c))).collect();
        }
        users
            .iter()
            .map(|u| {
                let found = all.get(u).cloned().ok_or_else(|| {
                    KafkaError::new(
                        ErrorCode::ResourceNotFound,
                        format!("user '{u}' has no SCRAM credentials"),
                    )
                });
                (u.clone(), found)
            })
            .collect()
    }

    /// This broker's static configuration (node id, listeners, defaults).
    pub fn broker_config(&self) -> &BrokerConfig {
        self.replicas.config()
    }

    /// The cluster-wide broker configs as the metadata sets them, over the defaults.
    pub fn dynamic_config(&self) -> DynamicBrokerConfig {
        self.replicas.dynamic_config()
    }
}
