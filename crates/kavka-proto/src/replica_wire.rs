//! `kavka.v1.ReplicaFetchPartitionResult` written by hand (the build maps the proto
//! message here with `extern_path`), so that its `records` can be the leader's stored
//! buffers as they are: the pieces go one after another after a single length prefix,
//! the same bytes on the wire as one `bytes` field holding them joined. The leader copies
//! the records once, into the answer, instead of joining them first; the follower
//! decodes them as one piece (a slice of the received message, not a copy).
//!
//! Invariant: has exactly the proto message's fields (a test reads them from the
//! descriptor set), encodes exactly what prost's generated code encodes for it (pinned
//! against a derived twin), and decodes whatever that encodes.

use bytes::{Buf, BufMut, Bytes};
use kavka_model::StoredRecords;
use prost::DecodeError;
use prost::encoding::{
    DecodeContext, WireType, bytes as pbytes, encode_key, encode_varint, encoded_len_varint, int32,
    int64, key_len, message, skip_field, string,
};

const RECORDS: u32 = 7;

/// One partition's answer to a replica fetch (see `proto/kavka/v1/broker.proto`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaFetchPartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<crate::v1::Error>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Whole batches as stored by the leader, to be written as received.
    pub records: StoredRecords,
}

impl prost::Message for ReplicaFetchPartitionResult {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.topic.is_empty() {
            string::encode(1, &self.topic, buf);
        }
        if self.partition != 0 {
            int32::encode(2, &self.partition, buf);
        }
        if let Some(e) = &self.error {
            message::encode(3, e, buf);
        }
        if self.high_watermark != 0 {
            int64::encode(4, &self.high_watermark, buf);
        }
        if self.log_start_offset != 0 {
            int64::encode(5, &self.log_start_offset, buf);
        }
        if self.log_end_offset != 0 {
            int64::encode(6, &self.log_end_offset, buf);
        }
        if !self.records.is_empty() {
            encode_key(RECORDS, WireType::LengthDelimited, buf);
            encode_varint(self.records.len() as u64, buf);
            for piece in self.records.pieces() {
                buf.put_slice(piece);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => string::merge(wire_type, &mut self.topic, buf, ctx),
            2 => int32::merge(wire_type, &mut self.partition, buf, ctx),
            3 => message::merge(
                wire_type,
                self.error.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            4 => int64::merge(wire_type, &mut self.high_watermark, buf, ctx),
            5 => int64::merge(wire_type, &mut self.log_start_offset, buf, ctx),
            6 => int64::merge(wire_type, &mut self.log_end_offset, buf, ctx),
            RECORDS => {
                // A field sent twice: the last one wins, as in prost's generated code.
                let mut records = Bytes::new();
                pbytes::merge(wire_type, &mut records, buf, ctx)?;
                self.records = StoredRecords::from(records);
                Ok(())
            }
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if !self.topic.is_empty() {
            len += string::encoded_len(1, &self.topic);
        }
        if self.partition != 0 {
            len += int32::encoded_len(2, &self.partition);
        }
        if let Some(e) = &self.error {
            len += message::encoded_len(3, e);
        }
        if self.high_watermark != 0 {
            len += int64::encoded_len(4, &self.high_watermark);
        }
        if self.log_start_offset != 0 {
            len += int64::encoded_len(5, &self.log_start_offset);
        }
        if self.log_end_offset != 0 {
            len += int64::encoded_len(6, &self.log_end_offset);
        }
        if !self.records.is_empty() {
            let n = self.records.len();
            len += key_len(RECORDS) + encoded_len_varint(n as u64) + n;
        }
        len
    }

    fn clear(&mut self) {
        *self = ReplicaFetchPartitionResult::default();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure

    use super::*;
    use crate::v1;
    use prost::Message;

    /// What prost generates for the proto message, derived the same way.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Generated {
        #[prost(string, tag = "1")]
        topic: String,
        #[prost(int32, tag = "2")]
        partition: i32,
        #[prost(message, optional, tag = "3")]
        error: Option<v1::Error>,
        #[prost(int64, tag = "4")]
        high_watermark: i64,
        #[prost(int64, tag = "5")]
        log_start_offset: i64,
        #[prost(int64, tag = "6")]
        log_end_offset: i64,
        #[prost(bytes = "bytes", tag = "7")]
        records: Bytes,
    }

    fn pair(
        topic: &str,
        partition: i32,
        error: Option<v1::Error>,
        (hw, start, end): (i64, i64, i64),
        pieces: &[&[u8]],
    ) -> (ReplicaFetchPartitionResult, Generated) {
        let records = StoredRecords::from_pieces(pieces.iter().map(|p| Bytes::copy_from_slice(p)));
        let ours = ReplicaFetchPartitionResult {
            topic: topic.into(),
            partition,
            error: error.clone(),
            high_watermark: hw,
            log_start_offset: start,
            log_end_offset: end,
            records: records.clone(),
        };
        let theirs = Generated {
            topic: topic.into(),
            partition,
            error,
            high_watermark: hw,
            log_start_offset: start,
            log_end_offset: end,
            records: records.into_bytes(),
        };
        (ours, theirs)
    }

    fn cases() -> Vec<(ReplicaFetchPartitionResult, Generated)> {
        let big = vec![0xabu8; 300];
        let error = v1::Error {
            code: 6,
            name: "NOT_LEADER_OR_FOLLOWER".into(),
            message: "moved".into(),
        };
        vec![
            pair("", 0, None, (0, 0, 0), &[]),
            pair("t", 3, None, (10, 0, 12), &[b"one"]),
            pair("orders", 5, None, (-1, -1, -1), &[b"ab", b"", b"cde", &big]),
            pair("t", 0, Some(error), (0, 4, 9), &[]),
            pair("t", i32::MAX, None, (i64::MAX, i64::MIN, 1), &[&big, &big]),
        ]
    }

    #[test]
    fn the_proto_message_has_exactly_the_fields_written_here() {
        use prost_types::field_descriptor_proto::Type;
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let message = set
            .file
            .iter()
            .filter(|f| f.package() == "kavka.v1")
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == "ReplicaFetchPartitionResult")
            .unwrap();
        let fields: Vec<(i32, &str, Type)> = message
            .field
            .iter()
            .map(|f| (f.number(), f.name(), f.r#type()))
            .collect();
        assert_eq!(
            fields,
            vec![
                (1, "topic", Type::String),
                (2, "partition", Type::Int32),
                (3, "error", Type::Message),
                (4, "high_watermark", Type::Int64),
                (5, "log_start_offset", Type::Int64),
                (6, "log_end_offset", Type::Int64),
                (7, "records", Type::Bytes),
            ],
            "proto/kavka/v1/broker.proto changed: change ReplicaFetchPartitionResult here too"
        );
    }

    #[test]
    fn encodes_the_same_bytes_as_the_generated_message_whatever_the_pieces() {
        for (ours, theirs) in cases() {
            let bytes = ours.encode_to_vec();
            assert_eq!(bytes, theirs.encode_to_vec(), "{ours:?}");
            assert_eq!(ours.encoded_len(), bytes.len(), "{ours:?}");
        }
    }

    #[test]
    fn decodes_what_the_generated_message_encodes_into_one_piece() {
        for (ours, theirs) in cases() {
            let got =
                ReplicaFetchPartitionResult::decode(Bytes::from(theirs.encode_to_vec())).unwrap();
            assert_eq!(
                got.records.pieces().len(),
                usize::from(!ours.records.is_empty())
            );
            let want = ReplicaFetchPartitionResult {
                records: StoredRecords::from(ours.records.clone().into_bytes()),
                ..ours
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn skips_unknown_fields_and_refuses_a_truncated_message() {
        let (ours, _) = pair("t", 1, None, (5, 0, 5), &[b"abc", b"def"]);
        let mut bytes = ours.encode_to_vec();
        // An unknown field 15 (varint 1) at the end is skipped.
        bytes.extend_from_slice(&[15 << 3, 1]);
        let got = ReplicaFetchPartitionResult::decode(&bytes[..]).unwrap();
        assert_eq!(
            got.records.clone().into_bytes(),
            Bytes::from_static(b"abcdef")
        );
        // Cut inside the records: an error, not a shorter answer.
        let cut = &bytes[..bytes.len() - 5];
        assert!(ReplicaFetchPartitionResult::decode(cut).is_err());
    }
}
