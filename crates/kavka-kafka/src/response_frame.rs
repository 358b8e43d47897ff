//! One encoded response frame as the list of chunks it is written from: protocol bytes
//! and, for Fetch, the partitions' record bytes as read from the log (see `gather`).
//!
//! Invariant: the frame's bytes are its chunks in order; no chunk is empty. As a
//! [`Buf`] it hands the writer up to 64 chunks per `writev` (tokio's
//! `write_all_buf`), and lets go of each chunk once it is written, so record buffers are
//! freed as the response goes out rather than when it is done.

use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;

/// A response frame: size, header and body, as chunks.
#[derive(Debug, Default)]
pub(crate) struct ResponseFrame {
    chunks: Vec<Bytes>,
    /// The first chunk not yet written whole.
    next: usize,
    /// Bytes not yet written.
    remaining: usize,
}

impl ResponseFrame {
    /// Appends a chunk (an empty one is dropped).
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push(chunk);
        }
    }

    /// The chunks not yet written (for tests and tracing).
    pub(crate) fn chunks(&self) -> &[Bytes] {
        self.chunks.get(self.next..).unwrap_or_default()
    }
}

impl From<BytesMut> for ResponseFrame {
    fn from(bytes: BytesMut) -> Self {
        let mut frame = Self::default();
        frame.push(bytes.freeze());
        frame
    }
}

impl Buf for ResponseFrame {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.get(self.next).map_or(&[][..], |c| &c[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt <= self.remaining,
            "advance by {cnt} past the {} bytes left of a response frame",
            self.remaining
        );
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(chunk) = self.chunks.get_mut(self.next) else {
                break;
            };
            let n = cnt.min(chunk.len());
            chunk.advance(n);
            cnt -= n;
            if chunk.is_empty() {
                // Written: free it now (a record buffer can be tens of MiB).
                *chunk = Bytes::new();
                self.next += 1;
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(parts: &[&[u8]]) -> ResponseFrame {
        let mut f = ResponseFrame::default();
        for p in parts {
            f.push(Bytes::copy_from_slice(p));
        }
        f
    }

    #[test]
    fn reads_back_its_chunks_in_order_whatever_the_steps() {
        let parts: &[&[u8]] = &[b"abc", b"", b"defgh", b"i", b"jklmnopq"];
        let want: Vec<u8> = parts.concat();
        for step in 1..=want.len() {
            let mut f = frame(parts);
            assert_eq!(f.chunks().len(), 4, "empty chunks are dropped");
            let mut got = Vec::new();
            while f.has_remaining() {
                let n = step.min(f.chunk().len());
                got.extend_from_slice(&f.chunk()[..n]);
                f.advance(n);
            }
            assert_eq!(got, want, "step {step}");
        }
    }

    #[test]
    fn vectored_writes_see_the_unwritten_chunks() {
        let mut f = frame(&[b"ab", b"cd", b"ef"]);
        f.advance(3);
        let mut slots = [IoSlice::new(&[]); 8];
        let n = f.chunks_vectored(&mut slots);
        let seen: Vec<u8> = slots[..n].iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(seen, b"def");
        let mut one = [IoSlice::new(&[])];
        assert_eq!(f.chunks_vectored(&mut one), 1);
        assert_eq!(&*one[0], b"d");
    }

    #[test]
    fn a_bytes_mut_is_one_chunk() {
        let f = ResponseFrame::from(BytesMut::from(&b"xyz"[..]));
        assert_eq!(f.remaining(), 3);
        assert_eq!(f.chunks().len(), 1);
    }
}
