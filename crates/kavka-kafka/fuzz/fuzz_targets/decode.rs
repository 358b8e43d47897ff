//! The Kafka listener's frame decoder on arbitrary bytes: it may refuse them, never
//! panic. Corpus seeded from real client traffic (see ../README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

// As in the kavka binary: huge declared array lengths are lazy reservations.
#[global_allocator]
static ALLOC: kavka_kafka::alloc::LazyHuge = kavka_kafka::alloc::LazyHuge;

fuzz_target!(|data: &[u8]| {
    let _ = kavka_kafka::decode_frame(bytes::Bytes::copy_from_slice(data));
});
