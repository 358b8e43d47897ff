//! Replays the fuzz corpus (real client request frames) through the decoder: every
//! frame decodes to an API and version this broker serves, and truncations and byte
//! mutations of them are refused or decoded, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

// As in the kavka binary: huge declared array lengths must not abort the process.
#[global_allocator]
static ALLOC: kavka_kafka::alloc::LazyHuge = kavka_kafka::alloc::LazyHuge;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn real_client_frames_decode_to_served_versions() {
    let frames = corpus();
    assert!(
        frames.len() >= 30,
        "corpus has only {} frames",
        frames.len()
    );
    for (name, bytes) in &frames {
        let (key, version) = kavka_kafka::decode_frame(Bytes::copy_from_slice(bytes))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let api = ApiKey::try_from(key).unwrap();
        assert!(
            kavka_kafka::versions::supported(api, version),
            "{name}: a client sent {api:?} v{version}, which is not served"
        );
    }
}

/// xorshift64*: deterministic mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    let mut refused = 0;
    for (_, bytes) in corpus() {
        // Every truncation of the frame.
        for len in 0..bytes.len() {
            match kavka_kafka::decode_frame(Bytes::copy_from_slice(&bytes[..len])) {
                Ok(_) => decoded += 1,
                Err(_) => refused += 1,
            }
        }
        // Random byte rewrites, 1 to 4 at a time, and lengths stretched or cut.
        for _ in 0..300 {
            let mut m = bytes.clone();
            for _ in 0..=(rng.next() % 4) {
                let at = (rng.next() as usize) % m.len().max(1);
                if let Some(b) = m.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
            if rng.next().is_multiple_of(8) {
                m.extend((0..rng.next() % 64).map(|_| rng.next() as u8));
            }
            match kavka_kafka::decode_frame(Bytes::from(m)) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    assert!(!e.is_empty());
                    refused += 1;
                }
            }
        }
    }
    assert!(
        decoded > 0 && refused > 0,
        "decoded {decoded}, refused {refused}"
    );
}
