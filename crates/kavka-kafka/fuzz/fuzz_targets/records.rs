//! The produce path's record decoders on arbitrary bytes: the validator (Kafka's
//! `LogValidator`) and the in-place record walk may refuse them, never panic, and never
//! take more than the decompression cap.
#![no_main]

use kavka_record::{BatchRecords, Origin, Rules, TimestampWindow, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for compacted in [false, true] {
        let rules = Rules {
            origin: Origin::Client,
            compacted,
            create_time: Some(TimestampWindow {
                before_max_ms: i64::MAX,
                after_max_ms: 3_600_000,
            }),
            max_batch_bytes: 1 << 20,
            decompressed_bytes_max: kavka_record::DECOMPRESSED_BYTES_MAX,
            now_ms: 1_700_000_000_000,
        };
        let _ = validate(data, &rules);
    }
    if let Ok((batch, _)) = BatchRecords::open(data) {
        for r in batch.iter() {
            match r {
                Ok(view) => {
                    let _ = batch.offset_and_timestamp(&view);
                    for _ in view.headers() {}
                }
                Err(_) => break,
            }
        }
    }
});
