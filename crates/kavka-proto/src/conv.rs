//! Protobuf <-> model conversions: Kafka errors to and from `v1::Error`, and to gRPC
//! statuses whose message starts with the Kafka error name (and whose `kafka-error-code`
//! metadata carries the code) so any client can tell the errors apart; the broker API's
//! admin and epoch messages (`admin`), client quotas (`quota`), and produce, fetch, ListOffsets and replica
//! fetch answers (`data`).

mod acl;
mod admin;
mod data;
mod quota;
mod scram;

pub use acl::{acl_filter_from_request, acl_from_request};
pub use admin::election_type;
pub use data::{UnaskedPartition, fetch_response, list_offsets_result, produce_result};
pub use quota::{
    alter_client_quotas_request, alter_client_quotas_response, client_quota_entries,
    describe_client_quotas_request, quota_alterations, quota_entity, quota_entity_components,
    quota_entries, quota_filter, raw_components,
};
pub use scram::{scram_changes, scram_credential_record};

use crate::v1;
use kavka_model::{ErrorCode, KafkaError};

/// Metadata key carrying the Kafka error code on a failed gRPC status.
pub const ERROR_CODE_METADATA: &str = "kafka-error-code";

impl From<&KafkaError> for v1::Error {
    fn from(e: &KafkaError) -> Self {
        v1::Error {
            code: e.code.code() as i32,
            name: e.code.name().to_string(),
            message: e.message.clone(),
        }
    }
}

impl From<KafkaError> for v1::Error {
    fn from(e: KafkaError) -> Self {
        (&e).into()
    }
}

impl From<&v1::Error> for KafkaError {
    fn from(e: &v1::Error) -> Self {
        let code =
            i16::try_from(e.code).map_or(ErrorCode::UnknownServerError, ErrorCode::from_code);
        KafkaError::new(code, e.message.clone())
    }
}

/// `Ok(())` for an absent error, the Kafka error otherwise.
pub fn check(error: Option<&v1::Error>) -> Result<(), KafkaError> {
    match error {
        Some(e) if e.code != 0 => Err(e.into()),
        _ => Ok(()),
    }
}

/// A gRPC status for a request-level Kafka error.
pub fn status(e: &KafkaError) -> tonic::Status {
    let code = match e.code {
        ErrorCode::UnknownTopicOrPartition => tonic::Code::NotFound,
        ErrorCode::TopicAlreadyExists => tonic::Code::AlreadyExists,
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::LeaderNotAvailable
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend => tonic::Code::Unavailable,
        ErrorCode::RequestTimedOut => tonic::Code::DeadlineExceeded,
        ErrorCode::UnknownServerError | ErrorCode::KafkaStorageError => tonic::Code::Internal,
        ErrorCode::OffsetOutOfRange => tonic::Code::OutOfRange,
        ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::ClusterAuthorizationFailed
        | ErrorCode::TransactionalIdAuthorizationFailed => tonic::Code::PermissionDenied,
        ErrorCode::SaslAuthenticationFailed => tonic::Code::Unauthenticated,
        _ => tonic::Code::InvalidArgument,
    };
    let mut status = tonic::Status::new(code, e.to_string());
    if let Ok(v) = e.code.code().to_string().parse() {
        status.metadata_mut().insert(ERROR_CODE_METADATA, v);
    }
    status
}

/// The Kafka error a status carries; statuses from elsewhere (transport, deadline) map to
/// the nearest Kafka code with the status message.
pub fn from_status(s: &tonic::Status) -> KafkaError {
    let code = s
        .metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i16>().ok())
        .map(ErrorCode::from_code);
    match code {
        Some(code) => {
            let prefix = format!("{}: ", code.name());
            let msg = s.message().strip_prefix(&prefix).unwrap_or(s.message());
            KafkaError::new(code, msg)
        }
        None => {
            let code = match s.code() {
                tonic::Code::DeadlineExceeded => ErrorCode::RequestTimedOut,
                tonic::Code::Unavailable => ErrorCode::LeaderNotAvailable,
                // Our services always attach a Kafka code; without one, the call broke
                // in transit (connection reset or closed mid-call, a ping unanswered).
                tonic::Code::Unknown | tonic::Code::Cancelled => ErrorCode::NetworkException,
                tonic::Code::InvalidArgument => ErrorCode::InvalidRequest,
                tonic::Code::Unimplemented => {
                    return KafkaError::new(
                        ErrorCode::UnsupportedVersion,
                        "this node does not serve that API (a controller-only node? point the client at a broker)",
                    );
                }
                _ => ErrorCode::UnknownServerError,
            };
            KafkaError::new(code, s.message())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_broken_in_transit_is_a_retriable_network_error() {
        let e = from_status(&tonic::Status::unknown("transport error"));
        assert_eq!(e.code, ErrorCode::NetworkException);
        assert!(e.code.is_retriable());
        let e = from_status(&tonic::Status::unavailable("tcp connect error"));
        assert_eq!(e.code, ErrorCode::LeaderNotAvailable);
    }

    #[test]
    fn kafka_errors_survive_a_status_round_trip() {
        for &code in ErrorCode::ALL {
            if code == ErrorCode::None {
                continue;
            }
            let e = KafkaError::new(code, "topic 'x' is odd");
            assert_eq!(from_status(&status(&e)), e);
            let pb: v1::Error = (&e).into();
            assert_eq!(KafkaError::from(&pb), e);
            assert!(check(Some(&pb)).is_err());
        }
        assert!(check(None).is_ok());
    }

    #[test]
    fn foreign_statuses_map_to_kafka_codes() {
        let e = from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(e.code, ErrorCode::LeaderNotAvailable);
        assert_eq!(e.message, "connection refused");
    }
}
