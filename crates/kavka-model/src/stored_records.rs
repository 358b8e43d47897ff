//! Whole record batches as a log stores them, held as the buffers they were read or
//! appended in: a read that spans several appends hands those buffers over as they are,
//! and whoever needs one contiguous slice joins them ([`StoredRecords::into_bytes`]).
//! A replica fetch answer writes the pieces one after another into its message, so the
//! leader copies the records once (into the answer) rather than twice.
//!
//! Invariants: the pieces follow each other in the log, none is empty, and `len` is
//! their sum. Knows bytes only: nothing of batches, offsets or the wire.

use bytes::{Bytes, BytesMut};

/// Equal when the bytes are, however they are split into pieces.
#[derive(Clone, Debug, Default)]
pub struct StoredRecords {
    pieces: Vec<Bytes>,
    len: usize,
}

impl StoredRecords {
    /// The pieces in log order, the empty ones left out.
    pub fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> StoredRecords {
        let pieces: Vec<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let len = pieces.iter().map(Bytes::len).sum();
        StoredRecords { pieces, len }
    }

    /// The total size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in log order.
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// One contiguous buffer: the piece itself when there is one, a join otherwise.
    pub fn into_bytes(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.pieces) {
            Ok([one]) => one,
            Err(pieces) => {
                let mut out = BytesMut::with_capacity(self.len);
                for p in &pieces {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }
    }
}

impl PartialEq for StoredRecords {
    fn eq(&self, other: &StoredRecords) -> bool {
        self.len == other.len
            && (self.pieces.iter().flat_map(|p| p.iter()))
                .eq(other.pieces.iter().flat_map(|p| p.iter()))
    }
}

impl Eq for StoredRecords {}

impl From<Bytes> for StoredRecords {
    fn from(b: Bytes) -> StoredRecords {
        StoredRecords::from_pieces([b])
    }
}

impl From<Vec<u8>> for StoredRecords {
    fn from(v: Vec<u8>) -> StoredRecords {
        StoredRecords::from(Bytes::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_their_order_and_join_into_the_same_bytes() {
        // (pieces) -> (len, pieces kept, joined)
        type Case<'a> = (&'a [&'a [u8]], usize, usize, &'a [u8]);
        let cases: &[Case] = &[
            (&[], 0, 0, b""),
            (&[b""], 0, 0, b""),
            (&[b"abc"], 3, 1, b"abc"),
            (&[b"ab", b"", b"cde"], 5, 2, b"abcde"),
            (&[b"a", b"b", b"c"], 3, 3, b"abc"),
        ];
        for &(pieces, len, kept, joined) in cases {
            let r = StoredRecords::from_pieces(pieces.iter().map(|p| Bytes::copy_from_slice(p)));
            assert_eq!((r.len(), r.is_empty()), (len, len == 0), "{pieces:?}");
            assert_eq!(r.pieces().len(), kept, "{pieces:?}");
            assert_eq!(&r.into_bytes()[..], joined, "{pieces:?}");
        }
    }

    #[test]
    fn equal_bytes_are_equal_records_however_they_are_split() {
        let of = |pieces: &[&'static [u8]]| {
            StoredRecords::from_pieces(pieces.iter().map(|p| Bytes::from_static(p)))
        };
        assert_eq!(of(&[b"abc", b"de"]), of(&[b"a", b"bcde"]));
        assert_eq!(of(&[]), StoredRecords::default());
        assert_ne!(of(&[b"abc", b"de"]), of(&[b"abc", b"dx"]));
        assert_ne!(of(&[b"abc"]), of(&[b"abc", b"d"]));
    }

    #[test]
    fn one_piece_is_handed_over_without_a_copy() {
        let b = Bytes::from(vec![7u8; 64]);
        let ptr = b.as_ptr();
        assert_eq!(StoredRecords::from(b).into_bytes().as_ptr(), ptr);
    }
}
