//! `throttle_time_ms` on any Kafka response that has the field: a client over its
//! `request_percentage` quota learns how long it is throttled from the response it gets,
//! whatever the API, as from Kafka's request quota (KIP-124), and backs off itself
//! (KIP-219). Pure: only the response body is touched; the muting stays in `conn`.

use kafka_protocol::messages::ResponseKind;

/// Calls `$set` on the response inside `$body` when its type has a `throttle_time_ms`
/// field (kafka-protocol's responses that carry one), else does nothing.
macro_rules! with_throttle_time {
    ($body:expr, $field:ident => $set:expr, [$($variant:ident),* $(,)?]) => {
        match $body {
            $(ResponseKind::$variant(r) => {
                let $field = &mut r.throttle_time_ms;
                $set
            })*
            _ => {}
        }
    };
}

/// Raises the response's `throttle_time_ms` to `ms` where it is lower (a byte-rate
/// throttle the handler set may already be longer); responses without the field, and
/// versions that do not encode it, are unchanged on the wire.
pub(crate) fn raise_throttle_time(body: &mut ResponseKind, ms: i32) {
    if ms <= 0 {
        return;
    }
    with_throttle_time!(body, t => *t = (*t).max(ms), [
        AddOffsetsToTxn, AddPartitionsToTxn, AddRaftVoter, AllocateProducerIds,
        AlterClientQuotas, AlterConfigs, AlterPartitionReassignments, AlterPartition,
        AlterReplicaLogDirs, AlterShareGroupOffsets, AlterUserScramCredentials,
        ApiVersions, AssignReplicasToDirs, BrokerHeartbeat, BrokerRegistration,
        ConsumerGroupDescribe, ConsumerGroupHeartbeat, ControllerRegistration,
        CreateAcls, CreateDelegationToken, CreatePartitions, CreateTopics, DeleteAcls,
        DeleteGroups, DeleteRecords, DeleteShareGroupOffsets, DeleteTopics,
        DescribeAcls, DescribeClientQuotas, DescribeCluster, DescribeConfigs,
        DescribeDelegationToken, DescribeGroups, DescribeLogDirs, DescribeProducers,
        DescribeShareGroupOffsets, DescribeTopicPartitions, DescribeTransactions,
        DescribeUserScramCredentials, ElectLeaders, EndTxn, ExpireDelegationToken,
        Fetch, FetchSnapshot, FindCoordinator, GetTelemetrySubscriptions, Heartbeat,
        IncrementalAlterConfigs, InitProducerId, JoinGroup, LeaveGroup,
        ListConfigResources, ListGroups, ListOffsets, ListPartitionReassignments,
        ListTransactions, Metadata, OffsetCommit, OffsetDelete, OffsetFetch,
        OffsetForLeaderEpoch, Produce, PushTelemetry, RemoveRaftVoter,
        RenewDelegationToken, ShareAcknowledge, ShareFetch, ShareGroupDescribe,
        ShareGroupHeartbeat, SyncGroup, TxnOffsetCommit, UnregisterBroker,
        UpdateFeatures, UpdateRaftVoter
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        FetchResponse, MetadataResponse, SaslHandshakeResponse, WriteTxnMarkersResponse,
    };

    #[test]
    fn raises_the_field_where_a_response_has_one() {
        let mut metadata = ResponseKind::Metadata(MetadataResponse::default());
        raise_throttle_time(&mut metadata, 250);
        let ResponseKind::Metadata(m) = &metadata else {
            unreachable!()
        };
        assert_eq!(m.throttle_time_ms, 250);

        // A longer throttle already set (a byte rate) stays; zero changes nothing.
        let mut fetch = ResponseKind::Fetch(FetchResponse::default().with_throttle_time_ms(900));
        raise_throttle_time(&mut fetch, 250);
        raise_throttle_time(&mut fetch, 0);
        let ResponseKind::Fetch(f) = &fetch else {
            unreachable!()
        };
        assert_eq!(f.throttle_time_ms, 900);

        // Responses without the field are left as they were.
        let mut handshake = ResponseKind::SaslHandshake(SaslHandshakeResponse::default());
        raise_throttle_time(&mut handshake, 250);
        assert_eq!(
            handshake,
            ResponseKind::SaslHandshake(SaslHandshakeResponse::default())
        );
        let mut stop = ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default());
        raise_throttle_time(&mut stop, 250);
        assert_eq!(
            stop,
            ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default())
        );
    }
}
