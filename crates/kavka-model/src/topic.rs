//! Topic names, validated the way Kafka validates them, and topic-partition pairs.

use crate::ids::PartitionId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Kafka's limit (249) keeps `<topic>-<partition>` directory names under 255 bytes.
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// A topic name Kafka would accept: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name '{0}' is not allowed")]
    Reserved(String),
    #[error("topic name is {len} characters long; the maximum is {TOPIC_NAME_LEN_MAX}")]
    TooLong { len: usize },
    #[error(
        "topic name '{name}' contains '{ch}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
    )]
    IllegalChar { name: String, ch: char },
}

impl TopicName {
    pub fn new(name: impl Into<String>) -> Result<Self, TopicNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(TopicNameError::Empty);
        }
        if name == "." || name == ".." {
            return Err(TopicNameError::Reserved(name));
        }
        if name.len() > TOPIC_NAME_LEN_MAX {
            return Err(TopicNameError::TooLong { len: name.len() });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(TopicNameError::IllegalChar { name, ch });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<TopicName> for String {
    fn from(t: TopicName) -> String {
        t.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One partition of one topic; displays as Kafka does, `orders-3`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: TopicName,
    pub partition: PartitionId,
}

impl TopicPartition {
    pub fn new(topic: TopicName, partition: PartitionId) -> Self {
        Self { topic, partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names() {
        for ok in [
            "orders",
            "a",
            "with.dots_and-dashes",
            "X9",
            &"a".repeat(249),
        ] {
            assert!(TopicName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        assert_eq!(TopicName::new(""), Err(TopicNameError::Empty));
        assert_eq!(
            TopicName::new("."),
            Err(TopicNameError::Reserved(".".into()))
        );
        assert_eq!(
            TopicName::new(".."),
            Err(TopicNameError::Reserved("..".into()))
        );
        assert_eq!(
            TopicName::new("a".repeat(250)),
            Err(TopicNameError::TooLong { len: 250 })
        );
        let err = TopicName::new("bad/name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic name 'bad/name' contains '/'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        );
        assert!(TopicName::new("spa ce").is_err());
        assert!(TopicName::new("ünïcode").is_err());
    }

    #[test]
    fn displays_like_kafka() {
        let tp = TopicPartition::new(TopicName::new("orders").unwrap(), PartitionId(3));
        assert_eq!(tp.to_string(), "orders-3");
    }
}
