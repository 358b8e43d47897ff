//! The four codecs Kafka uses for the records section of a batch, with Kafka's framings:
//! gzip, snappy in xerial framing (raw snappy accepted on read, as Kafka does), the LZ4
//! frame format, and zstd. Decompression is capped at [`DECOMPRESSED_BYTES_MAX`].

use crate::error::RecordError;
use std::io::{Read, Write};

/// Upper bound on one batch's decompressed records: a compression bomb stops here.
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Java's `SnappyOutputStream` default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id in bits 0..=2 of the batch attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: u8) -> Result<Self, RecordError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordError::UnknownCompression(other)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses Kafka's `compression.type` names (`none` and `uncompressed` both mean none).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" | "uncompressed" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    pub(crate) fn compress(self, data: &[u8]) -> Result<Vec<u8>, RecordError> {
        let err = |e: std::io::Error| RecordError::Compress {
            codec: self.name(),
            reason: e.to_string(),
        };
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).map_err(err)?;
                enc.finish().map_err(err)
            }
            Compression::Snappy => {
                let mut out = Vec::with_capacity(16 + data.len() / 2);
                out.extend_from_slice(&XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes()); // version
                out.extend_from_slice(&1i32.to_be_bytes()); // min compatible version
                let mut enc = snap::raw::Encoder::new();
                for block in data.chunks(XERIAL_BLOCK) {
                    let c = enc.compress_vec(block).map_err(|e| RecordError::Compress {
                        codec: "snappy",
                        reason: e.to_string(),
                    })?;
                    out.extend_from_slice(&(c.len() as i32).to_be_bytes());
                    out.extend_from_slice(&c);
                }
                Ok(out)
            }
            Compression::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
                enc.write_all(data).map_err(err)?;
                enc.finish().map_err(|e| RecordError::Compress {
                    codec: "lz4",
                    reason: e.to_string(),
                })
            }
            Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(err),
        }
    }

    #[cfg(test)]
    pub(crate) fn decompress(self, data: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.decompress_capped(data, DECOMPRESSED_BYTES_MAX)
    }

    /// Decompresses at most `limit` bytes (more is `DecompressedTooLarge`).
    pub(crate) fn decompress_capped(
        self,
        data: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, RecordError> {
        let err = |reason: String| RecordError::Decompress {
            codec: self.name(),
            reason,
        };
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => read_capped(flate2::read::GzDecoder::new(data), limit)
                .map_err(|e| err(e.to_string()))?,
            Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(data), limit)
                .map_err(|e| err(e.to_string()))?,
            Compression::Zstd => zstd_decompress(data, limit),
            Compression::Snappy => {
                if data.starts_with(&XERIAL_MAGIC) {
                    decompress_xerial(data, limit)
                } else {
                    snappy_block(data, limit)
                }
            }
        }
    }
}

/// zstd with one decompression context per thread: creating one (some 100 KiB, zeroed)
/// for every batch cost more than decompressing a small batch. Concatenated frames are
/// read one after the other, as zstd's own reader does.
fn zstd_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    use zstd::zstd_safe::DCtx;
    DCTX.with(|cell| {
        // Never borrowed twice: nothing below calls back into this function.
        let mut dctx = cell.borrow_mut();
        let out = zstd_stream(&mut dctx, data, limit);
        // A frame with a large window leaves its buffers in the context: a thread keeps
        // one small context, not the largest window it ever met.
        if dctx.sizeof() > DCTX_KEPT_BYTES_MAX {
            *dctx = DCtx::create();
        }
        out
    })
}

thread_local! {
    static DCTX: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
}

/// This thread's zstd context's size, for tests.
#[cfg(test)]
fn thread_local_ctx_size(f: impl FnOnce(usize)) {
    DCTX.with(|cell| f(cell.borrow().sizeof()));
}

/// A thread's zstd context is recreated when it grows past this (default-level producer
/// frames need far less: a window of some 1-8 MiB).
const DCTX_KEPT_BYTES_MAX: usize = 16 << 20;

fn zstd_stream(
    dctx: &mut zstd::zstd_safe::DCtx<'static>,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
    use zstd::zstd_safe::{InBuffer, OutBuffer, ResetDirective, get_error_name};
    let err = |reason: String| RecordError::Decompress {
        codec: "zstd",
        reason,
    };
    dctx.reset(ResetDirective::SessionOnly)
        .map_err(|c| err(get_error_name(c).to_string()))?;
    let mut out: Vec<u8> =
        Vec::with_capacity(data.len().saturating_mul(4).max(4096).min(limit.max(1)));
    let mut input = InBuffer::around(data);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(RecordError::DecompressedTooLarge { limit });
            }
            out.reserve_exact(out.capacity().min(limit - out.len()).max(1));
        }
        let pos = out.len();
        let room = out.capacity() - pos;
        let hint = {
            let mut output = OutBuffer::around_pos(&mut out, pos);
            dctx.decompress_stream(&mut output, &mut input)
                .map_err(|c| err(get_error_name(c).to_string()))?
        };
        let consumed = input.pos() == data.len();
        if hint == 0 && consumed {
            return Ok(out);
        }
        // All input read, room left, yet the frame is not finished: it was cut short.
        if consumed && out.len() - pos < room {
            return Err(err("the zstd frame is cut short".into()));
        }
    }
}

/// Reads to the end, but at most `limit` bytes; more is `DecompressedTooLarge`.
fn read_capped(r: impl Read, limit: usize) -> std::io::Result<Result<Vec<u8>, RecordError>> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Ok(Err(RecordError::DecompressedTooLarge { limit }));
    }
    Ok(Ok(out))
}

fn snappy_block(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let err = |reason: String| RecordError::Decompress {
        codec: "snappy",
        reason,
    };
    let len = snap::raw::decompress_len(data).map_err(|e| err(e.to_string()))?;
    if len > limit {
        return Err(RecordError::DecompressedTooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| err(e.to_string()))
}

fn decompress_xerial(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut rest = data.get(16..).ok_or_else(|| RecordError::Decompress {
        codec: "snappy",
        reason: "xerial header truncated".into(),
    })?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) =
            rest.split_at_checked(4)
                .ok_or_else(|| RecordError::Decompress {
                    codec: "snappy",
                    reason: "xerial block length truncated".into(),
                })?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let block = usize::try_from(len)
            .ok()
            .and_then(|n| tail.get(..n))
            .ok_or_else(|| RecordError::Decompress {
                codec: "snappy",
                reason: format!(
                    "xerial block of {len} bytes does not fit in {} left",
                    tail.len()
                ),
            })?;
        out.extend(snappy_block(block, limit - out.len())?);
        rest = &tail[block.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_window_frame_does_not_stay_in_the_threads_context() {
        use zstd::zstd_safe::{CParameter, DCtx};
        // 24 MiB with a 32 MiB window: decoding it needs a buffer of the content's size.
        let data: Vec<u8> = (0..24u32 << 20).map(|i| (i / 4096 % 251) as u8).collect();
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.set_parameter(CParameter::WindowLog(25)).unwrap();
        let frame = c.compress(&data).unwrap();
        assert_eq!(
            Compression::Zstd.decompress(&frame).unwrap().len(),
            data.len()
        );
        thread_local_ctx_size(|size| {
            assert!(size <= DCTX_KEPT_BYTES_MAX, "context kept {size} bytes")
        });
        // A fresh context is far smaller than the bound: the check above can fail.
        assert!(DCtx::create().sizeof() < DCTX_KEPT_BYTES_MAX / 16);
    }

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in Compression::ALL {
            let z = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&z).unwrap(), data, "{}", c.name());
            assert_eq!(Compression::from_id(c.id()).unwrap(), c);
            assert_eq!(Compression::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn snappy_is_xerial_framed_and_raw_is_accepted() {
        let z = Compression::Snappy.compress(b"hello hello hello").unwrap();
        assert!(z.starts_with(&XERIAL_MAGIC));
        let raw = snap::raw::Encoder::new().compress_vec(b"plain").unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw).unwrap(), b"plain");
    }

    #[test]
    fn zstd_caps_cut_frames_and_concatenated_frames() {
        let data = vec![7u8; 100_000];
        let z = Compression::Zstd.compress(&data).unwrap();
        assert_eq!(zstd_decompress(&z, 100_000).unwrap(), data);
        assert_eq!(
            zstd_decompress(&z, 99_999).unwrap_err(),
            RecordError::DecompressedTooLarge { limit: 99_999 }
        );
        assert!(zstd_decompress(&z[..z.len() - 3], 1 << 20).is_err());
        let mut two = z.clone();
        two.extend_from_slice(&z);
        assert_eq!(zstd_decompress(&two, 1 << 20).unwrap().len(), 200_000);
        // The context is reused: a bad frame does not poison the next good one.
        assert!(zstd_decompress(&[0xff; 32], 1 << 20).is_err());
        assert_eq!(zstd_decompress(&z, 1 << 20).unwrap(), data);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in Compression::ALL.into_iter().skip(1) {
            assert!(
                c.decompress(b"\x82SNAPPY\0garbage-garbage").is_err(),
                "{}",
                c.name()
            );
            assert!(c.decompress(&[0xff; 64]).is_err(), "{}", c.name());
        }
        assert!(Compression::from_id(5).is_err());
    }
}
