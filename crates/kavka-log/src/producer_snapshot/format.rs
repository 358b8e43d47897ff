//! The text of the producer state files (the chain they form is the parent module's).
//!
//! Version 2, a full snapshot (`producer-state-checkpoint`):
//!
//! ```text
//! 2
//! full <chain id> <offset it describes> <producer count>
//! <producer id> <epoch> <last timestamp> <n> then n times <first seq> <last seq> <first offset> <last offset>
//! ...
//! crc32c <CRC-32C of every byte above this line>
//! ```
//!
//! and a delta (`producer-state-<offset>.delta`), which brings the state of its chain
//! from one offset to the next:
//!
//! ```text
//! 2
//! delta <chain id> <from offset> <to offset> <line count>
//! + <a producer line as above>     the producer's entry now
//! - <producer id>                  the producer is forgotten (it expired)
//! ...
//! crc32c <...>
//! ```
//!
//! Producers are written in id order, so the same state gives the same bytes. Versions 0
//! and 1 (full snapshots only: no chain id, no CRC; version 0 also lacks the last
//! timestamp) are still read.

use crate::producer_state::{BatchMeta, Change, ProducerEntry, ProducerStates, UNKNOWN_TIMESTAMP};
use kavka_model::Offset;
use std::fmt::Write as _;

/// The version written.
const VERSION: &str = "2";
const CRC_PREFIX: &str = "crc32c ";

/// A full snapshot as read.
#[derive(Debug)]
pub(crate) struct Full {
    /// `None` for versions 0 and 1, which no delta can follow.
    pub(crate) chain: Option<u64>,
    pub(crate) at: Offset,
    pub(crate) states: ProducerStates,
}

/// The first lines of a delta, enough to judge whether it continues a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeltaHeader {
    pub(crate) chain: u64,
    pub(crate) from: Offset,
    pub(crate) to: Offset,
}

/// A delta as read: its header and each changed producer's entry (`None`: forgotten).
#[derive(Debug)]
pub(crate) struct Delta {
    pub(crate) header: DeltaHeader,
    pub(crate) changes: Vec<(i64, Option<ProducerEntry>)>,
}

pub(crate) fn encode_full(chain: u64, at: Offset, states: &ProducerStates) -> String {
    let entries = states.entries();
    let mut text = format!("{VERSION}\nfull {chain} {} {}\n", at.0, entries.len());
    for (id, e) in entries {
        write_entry(&mut text, id, e);
    }
    seal(text)
}

pub(crate) fn encode_delta(header: DeltaHeader, changes: &[Change<'_>]) -> String {
    let DeltaHeader { chain, from, to } = header;
    let mut text = format!(
        "{VERSION}\ndelta {chain} {} {} {}\n",
        from.0,
        to.0,
        changes.len()
    );
    for (id, entry) in changes {
        match entry {
            Some(e) => {
                text.push_str("+ ");
                write_entry(&mut text, *id, e);
            }
            None => {
                let _ = writeln!(text, "- {id}");
            }
        }
    }
    seal(text)
}

fn write_entry(text: &mut String, id: i64, e: &ProducerEntry) {
    let _ = write!(
        text,
        "{id} {} {} {}",
        e.epoch,
        e.last_timestamp,
        e.batches.len()
    );
    for b in &e.batches {
        let _ = write!(
            text,
            " {} {} {} {}",
            b.first_seq, b.last_seq, b.first_offset.0, b.last_offset.0
        );
    }
    text.push('\n');
}

/// Appends the CRC line over everything before it.
fn seal(mut text: String) -> String {
    let crc = crc32c::crc32c(text.as_bytes());
    let _ = writeln!(text, "{CRC_PREFIX}{crc}");
    text
}

/// The text before a valid CRC line, or why there is none.
fn unseal(text: &str) -> Result<&str, String> {
    let body_end = text
        .strip_suffix('\n')
        .and_then(|t| t.rfind('\n'))
        .map(|i| i + 1)
        .ok_or("no CRC line")?;
    let (body, last) = text.split_at(body_end);
    let stored: u32 = last
        .trim_end()
        .strip_prefix(CRC_PREFIX)
        .and_then(|v| v.parse().ok())
        .ok_or("no CRC line")?;
    let actual = crc32c::crc32c(body.as_bytes());
    if stored != actual {
        return Err(format!("CRC {actual} does not match the stored {stored}"));
    }
    Ok(body)
}

/// Reads a full snapshot of any version.
pub(crate) fn decode_full(text: &str) -> Result<Full, String> {
    let version = text.lines().next().unwrap_or_default();
    match version {
        "0" | "1" => decode_legacy(text, version == "1"),
        VERSION => {
            let body = unseal(text)?;
            let mut lines = body.lines().skip(1);
            let [chain, at, count] = header_fields(lines.next(), "full")?;
            let (chain, at, count) = (number(chain)?, Offset(number(at)?), number(count)?);
            let mut states = ProducerStates::default();
            let mut n = 0u64;
            for line in lines {
                let (id, e) = parse_entry(line, true)?;
                states.apply_persisted(id, Some(e));
                n += 1;
            }
            if n != count || states.len() as u64 != count {
                return Err(format!(
                    "{count} producers declared, {n} lines, {} distinct",
                    states.len()
                ));
            }
            Ok(Full {
                chain: Some(chain),
                at,
                states,
            })
        }
        _ => Err(format!("unknown version '{version}'")),
    }
}

/// Reads a delta: its header and changes.
pub(crate) fn decode_delta(text: &str) -> Result<Delta, String> {
    let version = text.lines().next().unwrap_or_default();
    if version != VERSION {
        return Err(format!("unknown delta version '{version}'"));
    }
    let body = unseal(text)?;
    let mut lines = body.lines().skip(1);
    let [chain, from, to, count] = header_fields(lines.next(), "delta")?;
    let header = DeltaHeader {
        chain: number(chain)?,
        from: Offset(number(from)?),
        to: Offset(number(to)?),
    };
    let count: u64 = number(count)?;
    let mut changes = Vec::new();
    for line in lines {
        let change = if let Some(entry) = line.strip_prefix("+ ") {
            let (id, e) = parse_entry(entry, true)?;
            (id, Some(e))
        } else if let Some(id) = line.strip_prefix("- ") {
            (number(id)?, None)
        } else {
            return Err(format!("malformed line '{line}'"));
        };
        changes.push(change);
    }
    if changes.len() as u64 != count {
        return Err(format!("{count} changes declared, {} found", changes.len()));
    }
    Ok(Delta { header, changes })
}

/// The `N` fields after the word `kind` that starts a header line.
fn header_fields<'a, const N: usize>(
    line: Option<&'a str>,
    kind: &str,
) -> Result<[&'a str; N], String> {
    let line = line.unwrap_or_default();
    let mut fields = line.split_whitespace();
    let found = fields.next().unwrap_or_default();
    if found != kind {
        return Err(format!("a '{found}' file where a '{kind}' one belongs"));
    }
    let fields: Vec<&str> = fields.collect();
    fields
        .try_into()
        .map_err(|_| format!("malformed header '{line}'"))
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad number '{s}'"))
}

/// Versions 0 and 1: `<version>\n<offset>\n<count>\n` then one line per producer.
fn decode_legacy(text: &str, with_timestamps: bool) -> Result<Full, String> {
    let mut lines = text.lines().skip(1);
    let mut next = |what: &str| -> Result<i64, String> {
        lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("missing or bad {what}"))
    };
    let at = Offset(next("offset")?);
    let count = next("producer count")?;
    let mut states = ProducerStates::default();
    for line in text.lines().skip(3).take(count.max(0) as usize) {
        let (id, e) = parse_entry(line, with_timestamps)?;
        states.apply_persisted(id, Some(e));
    }
    if states.len() as i64 != count {
        return Err(format!(
            "{count} producers declared, {} found",
            states.len()
        ));
    }
    Ok(Full {
        chain: None,
        at,
        states,
    })
}

/// One producer's line; without a last timestamp (version 0) it is unknown.
fn parse_entry(line: &str, with_timestamp: bool) -> Result<(i64, ProducerEntry), String> {
    let malformed = || format!("malformed line '{line}'");
    let nums: Vec<i64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| malformed())?;
    let (id, epoch, last_timestamp, n, rest) = match (with_timestamp, nums.as_slice()) {
        (true, [id, epoch, ts, n, rest @ ..]) => (*id, *epoch, *ts, *n, rest),
        (false, [id, epoch, n, rest @ ..]) => (*id, *epoch, UNKNOWN_TIMESTAMP, *n, rest),
        _ => return Err(malformed()),
    };
    if n < 1 || rest.len() as i64 != n * 4 {
        return Err(malformed());
    }
    let to_i32 = |v: i64| i32::try_from(v).map_err(|_| format!("bad value {v}"));
    let batches = rest
        .chunks_exact(4)
        .map(|b| {
            Ok(BatchMeta {
                first_seq: to_i32(b[0])?,
                last_seq: to_i32(b[1])?,
                first_offset: Offset(b[2]),
                last_offset: Offset(b[3]),
            })
        })
        .collect::<Result<_, String>>()?;
    let epoch = i16::try_from(epoch).map_err(|_| format!("bad epoch {epoch}"))?;
    Ok((
        id,
        ProducerEntry {
            epoch,
            last_timestamp,
            batches,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_record::BatchHeader;

    /// A two-record batch of producer `pid` at `offset`, its timestamp 1000 + offset.
    fn header(pid: i64, seq: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 1,
            base_timestamp: 0,
            max_timestamp: 1_000 + offset,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: seq,
            record_count: 2,
        }
    }

    fn states(batches: &[(i64, i32, i64)]) -> ProducerStates {
        let mut s = ProducerStates::default();
        for &(pid, seq, offset) in batches {
            s.record(&header(pid, seq, offset));
        }
        s
    }

    #[test]
    fn a_full_snapshot_round_trips_byte_for_byte() {
        let s = states(&[(3, 0, 0), (1, 0, 2), (3, 2, 4), (2, 0, 6)]);
        let text = encode_full(42, Offset(8), &s);
        assert!(
            text.starts_with("2\nfull 42 8 3\n1 0 1002 1 0 1 2 3\n"),
            "{text}"
        );
        let full = decode_full(&text).unwrap();
        assert_eq!(
            (full.chain, full.at, &full.states),
            (Some(42), Offset(8), &s)
        );
        assert_eq!(encode_full(42, Offset(8), &full.states), text);
    }

    #[test]
    fn a_delta_round_trips_with_its_tombstones() {
        let mut s = states(&[(1, 0, 0), (2, 0, 2)]);
        s.mark_persisted();
        s.record(&header(2, 2, 4));
        // Producer 1 (last at 1000) expires; 2 (last at 1004) stays.
        s.remove_expired(1_003, 2);
        let header = DeltaHeader {
            chain: 7,
            from: Offset(4),
            to: Offset(6),
        };
        let text = encode_delta(header, &s.changes());
        let delta = decode_delta(&text).unwrap();
        assert_eq!(delta.header, header);
        let got: Vec<(i64, bool)> = delta
            .changes
            .iter()
            .map(|(id, e)| (*id, e.is_some()))
            .collect();
        assert_eq!(got, [(1, false), (2, true)], "{text}");
    }

    /// Damaged files: each is refused with a reason, never half read.
    #[test]
    fn damaged_files_are_refused() {
        let full = encode_full(1, Offset(8), &states(&[(1, 0, 0), (2, 0, 2)]));
        let delta = encode_delta(
            DeltaHeader {
                chain: 1,
                from: Offset(8),
                to: Offset(9),
            },
            &[],
        );
        let flipped = full.replacen("1 0 1000", "1 0 1001", 1);
        let cases: &[(&str, String, &str)] = &[
            ("a digit changed", flipped, "CRC"),
            ("cut short", full[..full.len() - 5].to_string(), "CRC"),
            (
                "cut at a line",
                full[..full.find("2 0").unwrap()].to_string(),
                "no CRC",
            ),
            ("empty", String::new(), "unknown version"),
            (
                "from the future",
                full.replacen('2', "3", 1),
                "unknown version",
            ),
            ("a delta where a full belongs", delta.clone(), "'delta'"),
        ];
        for (name, text, want) in cases {
            let e = decode_full(text).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
        }
        assert!(decode_delta(&full).unwrap_err().contains("'full'"));
        let short = seal("2\ndelta 1 8 9 1\n".into());
        assert!(decode_delta(&short).unwrap_err().contains("declared"));
    }

    #[test]
    fn versions_0_and_1_still_load() {
        let v1 = decode_full("1\n16\n1\n7 0 1234 1 0 1 10 11\n").unwrap();
        assert_eq!((v1.chain, v1.at), (None, Offset(16)));
        assert_eq!(v1.states.entries()[0].1.last_timestamp, 1234);
        let v0 = decode_full("0\n16\n1\n7 0 1 0 1 10 11\n").unwrap();
        assert_eq!(v0.states.entries()[0].1.last_timestamp, UNKNOWN_TIMESTAMP);
        let e = decode_full("0\n16\n2\n1 0 1 0 0 0 0\n").unwrap_err();
        assert!(e.contains("declared"), "{e}");
    }
}
