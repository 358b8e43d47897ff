//! Batches whose CRCs a leader has checked, so that it checks each batch once.
//!
//! A produced batch is checked record by record by [`crate::validate`] (which verifies
//! its CRC) before the leader assigns offsets; the log then appends it without reading
//! it again. [`CheckedBatches`] carries that fact from the validation to the log.
//!
//! Invariants: a value holds whole batches back to back, and every batch's CRC matched
//! when the value was built ([`CheckedBatches::check`], or [`CheckedBatches::validated`]
//! from [`Checked`] answers, which only [`crate::validate`] gives). Its bytes cannot be
//! changed through it, except by the max-timestamp fix-up here, which rewrites the CRC.

use crate::error::RecordError;
use crate::header::{TimestampType, batches, set_max_timestamp};
use crate::validate::Checked;

/// Whole batches, back to back, each with a CRC that has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBatches {
    bytes: Vec<u8>,
}

impl CheckedBatches {
    /// Checks the framing and CRC of every batch in `bytes`.
    pub fn check(bytes: Vec<u8>) -> Result<Self, RecordError> {
        for item in batches(&bytes) {
            let (h, batch) = item?;
            h.verify_crc(batch)?;
        }
        Ok(Self { bytes })
    }

    /// Validates each batch in turn: `validate_one` is handed the bytes from that batch
    /// on and answers what [`crate::validate`] found (the batch's length, and that its
    /// CRC held), or why it refuses it. A CreateTime batch whose header's max timestamp
    /// disagrees with its records' largest gets the records' (with its CRC rewritten),
    /// as Kafka's validator does.
    pub fn validated<E>(
        mut bytes: Vec<u8>,
        mut validate_one: impl FnMut(&[u8]) -> Result<Checked, E>,
    ) -> Result<Self, E> {
        let mut pos = 0;
        while pos < bytes.len() {
            let checked = validate_one(&bytes[pos..])?;
            let h = checked.header;
            let end = pos + h.size();
            if h.timestamp_type() == TimestampType::CreateTime
                && checked.max_timestamp != h.max_timestamp
            {
                set_max_timestamp(&mut bytes[pos..end], checked.max_timestamp);
            }
            pos = end;
        }
        Ok(Self { bytes })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes, for a caller that rewrites what the leader owns (offsets, epoch) and
    /// writes them.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Origin, Rules, TimestampWindow, validate};
    use crate::{Compression, Record, RecordBatch};
    use bytes::Bytes;

    fn batch(timestamps: &[i64]) -> Vec<u8> {
        let records = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                offset_delta: i as i32,
                timestamp_delta: ts - timestamps[0],
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: vec![],
            })
            .collect();
        RecordBatch::new(timestamps[0], Compression::None, records)
            .encode()
            .unwrap()
    }

    fn rules() -> Rules {
        Rules {
            origin: Origin::Client,
            compacted: false,
            create_time: Some(TimestampWindow {
                before_max_ms: i64::MAX,
                after_max_ms: i64::MAX,
            }),
            max_batch_bytes: 1 << 20,
            decompressed_bytes_max: 1 << 20,
            now_ms: 0,
        }
    }

    #[test]
    fn check_refuses_a_damaged_or_torn_batch_and_keeps_good_ones() {
        let good = [batch(&[1, 2]), batch(&[3])].concat();
        assert_eq!(
            CheckedBatches::check(good.clone()).unwrap().as_slice(),
            good
        );
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            CheckedBatches::check(flipped),
            Err(RecordError::CrcMismatch { .. })
        ));
        assert!(CheckedBatches::check(good[..good.len() - 1].to_vec()).is_err());
        assert!(CheckedBatches::check(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn validated_runs_the_validator_on_every_batch_and_fixes_the_max_timestamp() {
        let mut second = batch(&[5, 9]);
        // A producer's header that understates its records' largest timestamp.
        set_max_timestamp(&mut second, 6);
        let bytes = [batch(&[1, 2]), second].concat();
        let mut seen = 0;
        let checked = CheckedBatches::validated(bytes, |b| {
            seen += 1;
            validate(b, &rules())
        })
        .unwrap();
        assert_eq!(seen, 2);
        // The rewritten batch still passes a full check, with the records' largest.
        let again = CheckedBatches::check(checked.clone().into_vec()).unwrap();
        let maxes: Vec<i64> = batches(again.as_slice())
            .map(|b| b.unwrap().0.max_timestamp)
            .collect();
        assert_eq!(maxes, [2, 9]);

        let mut flipped = checked.into_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let refused = CheckedBatches::validated(flipped, |b| validate(b, &rules()));
        assert!(refused.is_err(), "the validator's CRC check refuses it");
    }
}
