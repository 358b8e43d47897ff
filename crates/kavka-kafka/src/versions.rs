//! The APIs and versions this listener implements: exactly what ApiVersions advertises.
//!
//! Invariant: every (API, version) pair listed here is decoded, answered and covered by
//! a test; anything else is refused (UNSUPPORTED_VERSION or a closed connection), never
//! half-served. Versions that name topics by id only (Produce v13, Fetch v13+) are not
//! listed: clients fall back to the highest version both sides know.

use kafka_protocol::messages::ApiKey;

pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // KIP-853 (UpdateRaftVoter is not served: a voter moves by remove + add).
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    // v0 is advertised because librdkafka requires it in the range before it will use
    // v1 with SaslAuthenticate; a client that then sends v0's raw (unframed) tokens is
    // closed, as those bytes are not a Kafka request.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The versions of `key` served here, `None` for an API not served at all.
pub fn served(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|&&(k, ..)| k == key)
        .map(|&(_, min, max)| (min, max))
}

/// What the broker serves of `key`, for messages: "versions 3..=12" or "no version".
pub fn served_text(key: ApiKey) -> String {
    match served(key) {
        Some((min, max)) => format!("versions {min}..={max}"),
        None => "no version".to_string(),
    }
}

/// Whether `version` of `key` is implemented here.
pub fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_version_is_one_the_codec_knows() {
        for &(key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                codec.min <= min && max <= codec.max && min <= max,
                "{key:?} {min}..={max} outside the codec's {}..={}",
                codec.min,
                codec.max
            );
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(served_text(ApiKey::Produce), "versions 3..=12");
        assert_eq!(served_text(ApiKey::DescribeAcls), "versions 1..=3");
        assert_eq!(served_text(ApiKey::AddPartitionsToTxn), "no version");
        assert!(!supported(ApiKey::CreateAcls, 0));
        assert!(supported(ApiKey::Produce, 3));
        assert!(!supported(ApiKey::Produce, 13));
        assert!(!supported(ApiKey::Fetch, 3));
        assert!(!supported(ApiKey::JoinGroup, 0));
        assert!(supported(ApiKey::JoinGroup, 9));
        assert!(supported(ApiKey::ConsumerGroupHeartbeat, 1));
    }
}
