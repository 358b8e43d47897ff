//! What one replayed batch changed: brokers act on this instead of diffing images.

use crate::records::{ConfigResource, TopicId};
use kavka_model::{BrokerId, PartitionId, TopicName};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    pub brokers: BTreeSet<BrokerId>,
    pub created_topics: BTreeSet<TopicId>,
    pub removed_topics: Vec<(TopicId, TopicName)>,
    /// Created or changed partitions (of topics that still exist).
    pub partitions: BTreeSet<(TopicId, PartitionId)>,
    pub configs: BTreeSet<ConfigResource>,
    /// Whether any ACL was created or deleted.
    pub acls: bool,
    /// Users whose SCRAM credentials were set or removed.
    pub scram_users: BTreeSet<String>,
    /// Whether any client quota was set or removed.
    pub client_quotas: bool,
}

impl MetadataDelta {
    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
            && self.created_topics.is_empty()
            && self.removed_topics.is_empty()
            && self.partitions.is_empty()
            && self.configs.is_empty()
            && !self.acls
            && self.scram_users.is_empty()
            && !self.client_quotas
    }
}
