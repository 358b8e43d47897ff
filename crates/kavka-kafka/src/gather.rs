//! Fetch responses encoded without copying their records: the frame goes out as a list
//! of chunks, protocol bytes interleaved with the partitions' record buffers as read
//! from the log, so answering N bytes of records takes N bytes of memory, not 2N
//! (issue 16 item 9). Other responses keep `conn::encode`, one buffer.
//!
//! How: kafka-protocol's own encoder runs over [`GatherBuf`], a buffer that appends
//! every slice it is handed to a scratch buffer, except a slice that *is* one of the
//! response's record buffers (the same address and length, at least
//! [`GATHER_MIN_BYTES`]): that one is kept by reference (a `Bytes` clone), and the
//! scratch is cut there. Smaller records are copied: a copy of a few KiB costs less than
//! one more chunk to write.
//!
//! Invariant: the concatenation of a frame's chunks is byte-for-byte what
//! `conn::encode` writes for the same response (the 4-byte size, the response header,
//! then the body, all as kafka-protocol encodes them), at every Fetch version the codec
//! knows. It holds by construction, since a kept slice is the very memory the encoder
//! asked to copy, and the table tests beside this module check it, and that the record
//! buffers are really kept rather than copied, over every version and shape of response.
//!
//! Must not depend on: the broker or the connection; it encodes, the caller writes.

use crate::response_frame::ResponseFrame;
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;
use std::collections::HashMap;
use std::ops::Range;

/// Record buffers at least this large go out by reference; smaller ones are copied.
pub(crate) const GATHER_MIN_BYTES: usize = 4096;

/// Encodes a Fetch response frame (size, header, body) as chunks.
/// `Err`: why kafka-protocol refuses the response at this version.
pub(crate) fn encode_fetch(
    correlation_id: i32,
    version: i16,
    body: &FetchResponse,
) -> Result<ResponseFrame, String> {
    let key = ApiKey::Fetch;
    let header_version = key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_bytes = header
        .compute_size(header_version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response header: {e}"))?;
    let body_bytes = body
        .compute_size(version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response: {e}"))?;
    let size = i32::try_from(header_bytes + body_bytes).map_err(|_| {
        format!(
            "a {key:?} v{version} response of {} bytes does not fit a frame",
            header_bytes + body_bytes
        )
    })?;

    let mut buf = GatherBuf::new(records_to_keep(body));
    buf.put_i32(size);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response header: {e}"))?;
    body.encode(&mut buf, version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response: {e}"))?;
    let frame = buf.finish();
    // kafka-protocol's sizes and its encoding agree; if an upgrade ever broke that, the
    // peer would misread every later frame: refuse instead.
    if frame.chunks().iter().map(Bytes::len).sum::<usize>() != 4 + size as usize {
        return Err(format!(
            "a {key:?} v{version} response encoded to another size than computed ({size})"
        ));
    }
    Ok(frame)
}

/// The record buffers worth sending by reference, by (address, length).
fn records_to_keep(body: &FetchResponse) -> HashMap<(usize, usize), Bytes> {
    body.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .filter(|r| r.len() >= GATHER_MIN_BYTES)
        .map(|r| ((r.as_ptr() as usize, r.len()), r.clone()))
        .collect()
}

/// A `BufMut` for kafka-protocol's encoder that keeps known record buffers by
/// reference and copies everything else into `scratch`.
struct GatherBuf {
    /// Buffers to keep by reference, by (address, length).
    keep: HashMap<(usize, usize), Bytes>,
    /// Everything before `scratch`.
    frame: ResponseFrame,
    /// Bytes in `frame`: where `scratch` starts in the whole frame.
    cut: usize,
    /// Protocol bytes since the last kept buffer.
    scratch: BytesMut,
}

impl GatherBuf {
    fn new(keep: HashMap<(usize, usize), Bytes>) -> Self {
        Self {
            keep,
            frame: ResponseFrame::default(),
            cut: 0,
            scratch: BytesMut::with_capacity(256),
        }
    }

    fn finish(mut self) -> ResponseFrame {
        self.frame.push(self.scratch.freeze());
        self.frame
    }

    /// Scratch range of a range of the whole frame: only what is still in `scratch` can
    /// be revisited (kafka-protocol seeks only when it encodes record batches itself,
    /// which a response it is handed never needs).
    fn scratch_range(&self, r: Range<usize>) -> Range<usize> {
        assert!(
            r.start >= self.cut,
            "kafka-protocol revisited bytes {r:?} already cut at {} of a gathered frame",
            self.cut
        );
        r.start - self.cut..r.end - self.cut
    }
}

// SAFETY: `remaining_mut`, `chunk_mut` and `advance_mut` forward to `scratch`, a
// `BytesMut`, whose implementation upholds `BufMut`'s contract; `put_slice` changes
// `scratch` only through its safe API, never between a caller's `chunk_mut` and the
// `advance_mut` that follows it.
unsafe impl BufMut for GatherBuf {
    fn remaining_mut(&self) -> usize {
        self.scratch.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `scratch.chunk_mut()`.
        unsafe { self.scratch.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.scratch.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= GATHER_MIN_BYTES
            && let Some(kept) = self.keep.get(&(src.as_ptr() as usize, src.len()))
        {
            let protocol = self.scratch.split().freeze();
            self.cut += protocol.len() + kept.len();
            self.frame.push(protocol);
            self.frame.push(kept.clone());
            return;
        }
        self.scratch.extend_from_slice(src);
    }
}

impl ByteBufMut for GatherBuf {
    fn offset(&self) -> usize {
        self.cut + self.scratch.len()
    }

    fn seek(&mut self, offset: usize) {
        let r = self.scratch_range(offset..offset);
        self.scratch.resize(r.start, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let r = self.scratch_range(r);
        &mut self.scratch[r]
    }
}

#[cfg(test)]
mod tests;
