//! Zig-zag varints (Protocol Buffers' encoding, as Kafka's `ByteUtils` writes them).

pub(crate) fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_varlong(buf, v as i64)
}

pub(crate) fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

pub(crate) fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// A cursor over untrusted record bytes; every read checks bounds.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn varlong(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("varint runs past the end")?;
            self.pos += 1;
            z |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    pub(crate) fn varint(&mut self) -> Result<i32, String> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| format!("varint {v} out of 32-bit range"))
    }

    pub(crate) fn i8(&mut self) -> Result<i8, String> {
        let b = *self.buf.get(self.pos).ok_or("byte runs past the end")?;
        self.pos += 1;
        Ok(b as i8)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "field of {n} bytes runs past the end ({} left)",
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A varint-length-prefixed field; length -1 is null.
    pub(crate) fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.varint()?;
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(format!("negative length {n}")),
            n => Ok(Some(self.bytes(n as usize)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            let mut r = Reader::new(&buf);
            assert_eq!(r.varlong().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn known_encodings() {
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        assert_eq!(buf, [0x01]);
        buf.clear();
        put_varint(&mut buf, 150);
        assert_eq!(buf, [0xac, 0x02]);
    }

    #[test]
    fn refuses_overlong_and_truncated() {
        assert!(Reader::new(&[0x80; 11]).varlong().is_err());
        assert!(Reader::new(&[0x80]).varlong().is_err());
        assert!(Reader::new(&[0x03]).nullable_bytes().is_err()); // -2
    }
}
