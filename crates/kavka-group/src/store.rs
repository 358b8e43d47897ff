//! Records of `__consumer_offsets`, in Kafka's own layouts so Kafka's tools can read
//! the topic: an offset commit (key version 1: group, topic, partition; value version
//! 3: offset, leader epoch, metadata, commit timestamp) and a group's membership (key
//! version 2: group; value version 3: protocol type, generation, protocol, leader,
//! state timestamp, members). A record with no value is a tombstone: compaction keeps
//! the latest record per key, so the topic holds the latest state of every key.
//!
//! Invariant: decoding never panics on any bytes; a record that does not parse is an
//! error naming what was wrong, and the loader skips it with a warning.

use super::classic::RestoredMember;
use bytes::{Buf, BufMut, Bytes, BytesMut};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("record truncated reading {0}")]
    Truncated(&'static str),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown key version {0}")]
    KeyVersion(i16),
    #[error("unknown {what} value version {version}")]
    ValueVersion { what: &'static str, version: i16 },
    #[error("undecodable consumer group state: {0}")]
    Json(String),
}

/// Key version of a KIP-848 group's state. Kafka stores those groups as several record
/// types (keys 3 to 8); Kavka keeps one record per group, as JSON, under a version Kafka
/// does not use, so Kafka's tools skip it rather than misread it.
pub const CONSUMER_GROUP_KEY_VERSION: i16 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group(String),
    /// A KIP-848 group's membership, epochs and assignments.
    ConsumerGroup(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<RestoredMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Offset(OffsetValue),
    Group(GroupValue),
    ConsumerGroup(super::consumer::StoredConsumerGroup),
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn need(&self, n: usize, what: &'static str) -> Result<(), StoreError> {
        if self.0.remaining() < n {
            Err(StoreError::Truncated(what))
        } else {
            Ok(())
        }
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, StoreError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, StoreError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, StoreError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn opt_str(&mut self, what: &'static str) -> Result<Option<String>, StoreError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        self.need(len, what)?;
        let s = std::str::from_utf8(&self.0[..len]).map_err(|_| StoreError::NotUtf8(what))?;
        let s = s.to_string();
        self.0.advance(len);
        Ok(Some(s))
    }
    fn str(&mut self, what: &'static str) -> Result<String, StoreError> {
        Ok(self.opt_str(what)?.unwrap_or_default())
    }
    fn bytes(&mut self, what: &'static str) -> Result<Bytes, StoreError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        let len = len as usize;
        self.need(len, what)?;
        let b = Bytes::copy_from_slice(&self.0[..len]);
        self.0.advance(len);
        Ok(b)
    }
}

impl Key {
    pub fn offset(group: &str, topic: &str, partition: i32) -> Self {
        Key::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            Key::Group(group) => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
            Key::ConsumerGroup(group) => {
                b.put_i16(CONSUMER_GROUP_KEY_VERSION);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(buf);
        match r.i16("key version")? {
            0 | 1 => Ok(Key::Offset {
                group: r.str("group")?,
                topic: r.str("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => Ok(Key::Group(r.str("group")?)),
            CONSUMER_GROUP_KEY_VERSION => Ok(Key::ConsumerGroup(r.str("group")?)),
            v => Err(StoreError::KeyVersion(v)),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. } | Key::Group(group) | Key::ConsumerGroup(group) => group,
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp_ms);
        b.freeze()
    }

    fn decode(buf: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(buf);
        let version = r.i16("offset value version")?;
        if !(0..=4).contains(&version) {
            return Err(StoreError::ValueVersion {
                what: "offset",
                version,
            });
        }
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader epoch")?
        } else {
            -1
        };
        let metadata = r.str("metadata")?;
        let commit_timestamp_ms = r.i64("commit timestamp")?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation_id);
        put_opt_str(&mut b, self.protocol_name.as_deref());
        put_opt_str(&mut b, self.leader.as_deref());
        b.put_i64(self.state_timestamp_ms);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_opt_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    fn decode(buf: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(buf);
        let version = r.i16("group value version")?;
        if !(0..=4).contains(&version) {
            return Err(StoreError::ValueVersion {
                what: "group",
                version,
            });
        }
        let protocol_type = r.str("protocol type")?;
        let generation_id = r.i32("generation")?;
        let protocol_name = r.opt_str("protocol")?;
        let leader = r.opt_str("leader")?;
        let state_timestamp_ms = if version >= 2 {
            r.i64("state timestamp")?
        } else {
            -1
        };
        let count = r.i32("member count")?.max(0) as usize;
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.str("member id")?;
            let group_instance_id = if version >= 3 {
                r.opt_str("group instance id")?
            } else {
                None
            };
            let client_id = r.str("client id")?;
            let client_host = r.str("client host")?;
            let rebalance_timeout_ms = if version >= 1 {
                r.i32("rebalance timeout")?
            } else {
                -1
            };
            let session_timeout_ms = r.i32("session timeout")?;
            members.push(RestoredMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: r.bytes("subscription")?,
                assignment: r.bytes("assignment")?,
            });
        }
        Ok(Self {
            protocol_type,
            generation_id,
            protocol_name,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

/// Decodes one record: its key, and its value unless it is a tombstone.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(Key, Option<Value>), StoreError> {
    let key = Key::decode(key)?;
    let value = match (value, &key) {
        (None, _) => None,
        (Some(v), Key::Offset { .. }) => Some(Value::Offset(OffsetValue::decode(v)?)),
        (Some(v), Key::Group(_)) => Some(Value::Group(GroupValue::decode(v)?)),
        (Some(v), Key::ConsumerGroup(_)) => Some(Value::ConsumerGroup(
            serde_json::from_slice(v).map_err(|e| StoreError::Json(e.to_string()))?,
        )),
    };
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> RestoredMember {
        RestoredMember {
            member_id: id.into(),
            group_instance_id: Some("i-1".into()),
            client_id: "rdkafka".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(b"\0\x01sub"),
            assignment: Bytes::from_static(b"\0\x01as"),
        }
    }

    #[test]
    fn records_round_trip() {
        let k = Key::Offset {
            group: "billing".into(),
            topic: "orders".into(),
            partition: 4,
        };
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(
            decode(&k.encode(), Some(&v.encode())).unwrap(),
            (k.clone(), Some(Value::Offset(v)))
        );
        assert_eq!(decode(&k.encode(), None).unwrap(), (k, None));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation_id: 7,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 5,
            members: vec![member("m-1"), member("m-2")],
        };
        let k = Key::Group("billing".into());
        assert_eq!(
            decode(&k.encode(), Some(&g.encode())).unwrap(),
            (k, Some(Value::Group(g)))
        );
    }

    /// Kafka's bytes for OffsetCommitKey v1 ("g", "t", 0), as its tools write them.
    #[test]
    fn key_layout_is_kafkas() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        assert_eq!(
            &k.encode()[..],
            b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x00"
        );
        assert_eq!(&Key::Group("g".into()).encode()[..], b"\x00\x02\x00\x01g");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Key::decode(b""), Err(StoreError::Truncated("key version")));
        assert_eq!(Key::decode(b"\x00\x09"), Err(StoreError::KeyVersion(9)));
        assert_eq!(
            Key::decode(b"\x00\x01\x00\x05ab"),
            Err(StoreError::Truncated("group"))
        );
        let k = Key::Group("g".into()).encode();
        assert!(decode(&k, Some(b"\x00\x03\x00")).is_err());
        assert!(decode(&k, Some(b"\x00\x03\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff\xff\xff")).is_err());
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = decode(&junk, Some(&junk));
        }
    }
}
