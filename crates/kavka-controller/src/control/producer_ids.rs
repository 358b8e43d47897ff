//! Producer id blocks (Kafka's AllocateProducerIds, KIP-730): a broker asks for a block
//! of ids and hands them out to idempotent producers itself. Every block starts where the
//! last one ended, and the record naming the new end is committed before the block is
//! given, so no producer id is ever handed out twice, across controller failovers too.

use super::Decision;
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::{BrokerId, ErrorCode, KafkaError};

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const BLOCK_SIZE: i64 = 1000;

/// A block `[first, first + len)` for `broker`.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker: BrokerId,
) -> Decision<Result<(i64, i64), KafkaError>> {
    let first = image.next_producer_id;
    let Some(next) = first.checked_add(BLOCK_SIZE) else {
        return Decision {
            records: vec![],
            reply: Err(KafkaError::new(
                ErrorCode::UnknownServerError,
                "producer ids are exhausted",
            )),
        };
    };
    Decision {
        records: vec![MetadataRecord::ProducerIds {
            broker_id: broker,
            next_producer_id: next,
        }],
        reply: Ok((first, BLOCK_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_on_and_never_overlap() {
        let img = MetadataImage::empty();
        let d = allocate_producer_ids(&img, BrokerId(1));
        assert_eq!(d.reply, Ok((0, BLOCK_SIZE)));
        let (img, _, refused) = img.replay(0, &d.records);
        assert!(refused.is_empty());
        let d = allocate_producer_ids(&img, BrokerId(2));
        assert_eq!(d.reply, Ok((BLOCK_SIZE, BLOCK_SIZE)));
        let (img, _, _) = img.replay(1, &d.records);
        assert_eq!(img.next_producer_id, 2 * BLOCK_SIZE);
    }
}
