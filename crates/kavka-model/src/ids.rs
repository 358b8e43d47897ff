//! Strong types for the numbers that must never be mixed up: an offset is not an epoch,
//! a partition index is not a broker id. Each wraps Kafka's wire width.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(
    /// A record's dense position in its partition (Kafka's `int64` offset).
    Offset(i64)
);
id_type!(
    /// A broker's (node's) id, Kafka's `node.id`.
    BrokerId(i32)
);
id_type!(
    /// A partition's index within its topic, from 0.
    PartitionId(i32)
);
id_type!(
    /// Incremented on every leadership change of a partition; stamped on every batch.
    LeaderEpoch(i32)
);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }

    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

/// A topic's unique id (Kafka's topic UUID): a topic re-created under the same name is
/// another topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicId(pub uuid::Uuid);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
