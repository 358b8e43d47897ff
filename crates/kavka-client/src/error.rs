//! The client's one error type.

use kavka_model::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid bootstrap address '{0}': expected host:port[,host:port...]")]
    InvalidBootstrap(String),
    #[error("cannot connect to any bootstrap server ({addrs}): {reason}")]
    Connect { addrs: String, reason: String },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("broker sent a batch that does not decode: {0}")]
    Decode(#[from] kavka_record::RecordError),
    #[error("{0}")]
    Invalid(String),
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Kafka(kavka_proto::conv::from_status(&s))
    }
}

impl ClientError {
    pub fn kafka_code(&self) -> Option<kavka_model::ErrorCode> {
        match self {
            ClientError::Kafka(e) => Some(e.code),
            _ => None,
        }
    }
}
