//! The parts of Kafka's consumer protocol (`protocol_type` "consumer") the broker
//! reads: the topics a member subscribes to (ConsumerProtocolSubscription) and the
//! partitions it was assigned (ConsumerProtocolAssignment). Every version starts with
//! these fields, so later ones parse too; anything else in the bytes is ignored.
//!
//! Invariant: malformed bytes give `None`, never a panic.

use bytes::Buf;

pub const CONSUMER: &str = "consumer";

fn string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 || buf.remaining() < len as usize {
        return None;
    }
    let s = std::str::from_utf8(&buf[..len as usize]).ok()?.to_string();
    buf.advance(len as usize);
    Some(s)
}

fn count(buf: &mut &[u8]) -> Option<usize> {
    if buf.remaining() < 4 {
        return None;
    }
    let n = buf.get_i32();
    // Each element takes at least two bytes: a larger count is a lie.
    (n >= 0 && (n as usize) <= buf.remaining() / 2).then_some(n as usize)
}

/// The topics of a ConsumerProtocolSubscription.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata;
    if buf.remaining() < 2 {
        return None;
    }
    let _version = buf.get_i16();
    let n = count(&mut buf)?;
    (0..n).map(|_| string(&mut buf)).collect()
}

/// The partitions of a ConsumerProtocolAssignment, by topic.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut buf = assignment;
    if buf.is_empty() {
        return Some(Vec::new());
    }
    if buf.remaining() < 2 {
        return None;
    }
    let _version = buf.get_i16();
    let n = count(&mut buf)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = string(&mut buf)?;
        if buf.remaining() < 4 {
            return None;
        }
        let k = buf.get_i32();
        if k < 0 || buf.remaining() < k as usize * 4 {
            return None;
        }
        let partitions = (0..k).map(|_| buf.get_i32()).collect();
        out.push((topic, partitions));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        // Version 0, topics ["orders", "a"], no user data.
        let sub = b"\x00\x00\x00\x00\x00\x02\x00\x06orders\x00\x01a\xff\xff\xff\xff";
        assert_eq!(
            subscribed_topics(sub),
            Some(vec!["orders".to_string(), "a".to_string()])
        );
        // Version 1: orders → [0, 3].
        let asg = b"\x00\x01\x00\x00\x00\x01\x00\x06orders\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff";
        assert_eq!(
            assigned_partitions(asg),
            Some(vec![("orders".to_string(), vec![0, 3])])
        );
        assert_eq!(assigned_partitions(b""), Some(Vec::new()));
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(subscribed_topics(b"\x00"), None);
        assert_eq!(subscribed_topics(b"\x00\x00\x7f\xff\xff\xff"), None);
        assert_eq!(
            assigned_partitions(b"\x00\x00\x00\x00\x00\x01\x00\x01a\x00\x00\x00\x09"),
            None
        );
        for n in 0..40u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(91)).collect();
            let _ = subscribed_topics(&junk);
            let _ = assigned_partitions(&junk);
        }
    }
}

/// A ConsumerProtocolAssignment (version 0) of `partitions`, as a classic leader would
/// send it: how KIP-848 members' assignments are shown through DescribeGroups.
pub fn encode_assignment<'a>(
    partitions: impl IntoIterator<Item = (&'a str, Vec<i32>)>,
) -> bytes::Bytes {
    use bytes::BufMut;
    let topics: Vec<(&str, Vec<i32>)> = partitions.into_iter().collect();
    let mut b = bytes::BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod encode_tests {
    use super::*;

    #[test]
    fn encoded_assignments_parse_back() {
        let b = encode_assignment([("orders", vec![1, 4]), ("a", vec![])]);
        assert_eq!(
            assigned_partitions(&b),
            Some(vec![
                ("orders".to_string(), vec![1, 4]),
                ("a".to_string(), vec![])
            ])
        );
    }
}
