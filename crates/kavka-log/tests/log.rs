//! The partition log against a simple in-memory model, plus recovery, retention and
//! timestamp lookups on real files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_log::{FlushPolicy, LogConfig, LogError, PartitionLog};
use kavka_model::{LeaderEpoch, Offset};
use kavka_record::{Compression, Record, RecordBatch};
use proptest::prelude::*;
use std::path::Path;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 256,
        max_message_bytes: 1 << 20,
        flush: FlushPolicy::REPLICATED,
        ..LogConfig::default()
    }
}

/// A producer batch of `values`, all at timestamp `ts`.
fn batch(values: &[u64], ts: i64, compression: Compression) -> Vec<u8> {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::from(format!("k{v}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(ts, compression, records).encode().unwrap()
}

/// Every (offset, value) in `bytes`, decoding and checking each batch.
fn decode_all(bytes: &[u8]) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (b, used) = RecordBatch::decode(rest).expect("a read returns only valid batches");
        for (offset, _, r) in b.offsets_and_timestamps() {
            let v = std::str::from_utf8(r.value.as_ref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            out.push((offset, v));
        }
        rest = &rest[used..];
    }
    out
}

/// Appends value `i` as one batch, at timestamp 1000 + `i`.
fn append_value(log: &mut PartitionLog, i: u64) {
    log.append_as_leader(
        &batch(&[i], 1000 + i as i64, Compression::None)[..],
        LeaderEpoch(0),
        None,
        0,
    )
    .unwrap();
}

fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, u64)> {
    let data = log
        .read(Offset(from), usize::MAX, log.log_end_offset())
        .unwrap();
    decode_all(&data.records.clone().into_bytes())
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8, bool),
    Roll,
    Truncate(u16),
    Reopen,
    ReadFrom(u16, u16),
    TrimTail(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..8, any::<bool>()).prop_map(|(n, z)| Op::Append(n, z)),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        2 => (any::<u16>(), 1u16..2000).prop_map(|(o, m)| Op::ReadFrom(o, m)),
        1 => any::<u16>().prop_map(Op::TrimTail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random append/roll/truncate/reopen/read sequences agree with a Vec of batches.
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let mut log = PartitionLog::open(&path, config(1024)).unwrap();
        // The model: batches of (offset, value).
        let mut model: Vec<Vec<(i64, u64)>> = Vec::new();
        let mut next_value = 0u64;
        for op in ops {
            match op {
                Op::Append(n, compressed) => {
                    let values: Vec<u64> = (next_value..next_value + n as u64).collect();
                    next_value += n as u64;
                    let codec = if compressed { Compression::Lz4 } else { Compression::None };
                    let info = log.append_as_leader(&batch(&values, 1000, codec)[..], LeaderEpoch(1), None, 0).unwrap();
                    let end = model.last().and_then(|b| b.last()).map_or(0, |(o, _)| o + 1);
                    prop_assert_eq!(info.first_offset, Offset(end));
                    model.push(values.iter().enumerate().map(|(i, v)| (end + i as i64, *v)).collect());
                }
                Op::Roll => log.roll().unwrap(),
                Op::Truncate(to) => {
                    let leo = log.log_end_offset().0;
                    let to = if leo == 0 { 0 } else { to as i64 % (leo + 1) };
                    log.truncate_to(Offset(to)).unwrap();
                    model.retain(|b| b.last().is_none_or(|(last, _)| *last < to));
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(&path, config(1024)).unwrap();
                }
                // What reads answer from memory is forgotten below `to`: reads still
                // answer the same (from the segments).
                Op::TrimTail(to) => {
                    let leo = log.log_end_offset().0;
                    log.trim_tail(Offset(if leo == 0 { 0 } else { to as i64 % (leo + 1) }));
                }
                Op::ReadFrom(from, max_bytes) => {
                    let leo = log.log_end_offset().0;
                    let from = if leo == 0 { 0 } else { from as i64 % (leo + 1) };
                    let got = decode_all(&log.read(Offset(from), max_bytes as usize, Offset(leo)).unwrap().records.into_bytes());
                    let want: Vec<(i64, u64)> = model.iter().filter(|b| b.last().is_some_and(|(l, _)| *l >= from)).flatten().copied().collect();
                    // A bounded read returns a prefix of whole batches, never nothing
                    // when there is something to return.
                    prop_assert!(want.starts_with(&got));
                    prop_assert_eq!(got.is_empty(), want.is_empty());
                }
            }
            let flat: Vec<(i64, u64)> = model.iter().flatten().copied().collect();
            let end = flat.last().map_or(0, |(o, _)| o + 1);
            prop_assert_eq!(log.log_end_offset(), Offset(end));
            prop_assert_eq!(read_all(&log, 0), flat);
        }
    }
}

/// A read of what was just appended is answered from memory (the log's tail) with the
/// very bytes the segments hold: offsets and leader epoch stamped, as a read after a
/// reopen (from the files) answers them; a truncation and a follower's append forget it.
#[test]
fn reads_of_the_tail_answer_the_bytes_the_segments_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    for i in 0..4u64 {
        log.append_as_leader(
            &batch(&[i, i + 10], 1000, Compression::None)[..],
            LeaderEpoch(3),
            None,
            0,
        )
        .unwrap();
    }
    let end = log.log_end_offset();
    let from_memory: Vec<_> = (0..8)
        .map(|o| {
            log.read(Offset(o), usize::MAX, end)
                .unwrap()
                .records
                .into_bytes()
        })
        .collect();
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    for (o, want) in from_memory.iter().enumerate() {
        let got = log
            .read(Offset(o as i64), usize::MAX, end)
            .unwrap()
            .records
            .into_bytes();
        assert_eq!(&got, want, "offset {o}");
    }
    assert_eq!(
        decode_all(&from_memory[2]),
        vec![(2, 1), (3, 11), (4, 2), (5, 12), (6, 3), (7, 13)]
    );
    // Appended, truncated, appended again: the new records, not the forgotten ones.
    log.append_as_leader(
        &batch(&[100], 1000, Compression::None)[..],
        LeaderEpoch(3),
        None,
        0,
    )
    .unwrap();
    log.truncate_to(Offset(8)).unwrap();
    log.append_as_leader(
        &batch(&[200], 1000, Compression::None)[..],
        LeaderEpoch(4),
        None,
        0,
    )
    .unwrap();
    assert_eq!(read_all(&log, 8), vec![(8, 200)]);
    // A follower's append of the same offsets after a truncation (the leader changed).
    log.truncate_to(Offset(8)).unwrap();
    let mut follower_batch = batch(&[300], 1000, Compression::None);
    follower_batch[..8].copy_from_slice(&8i64.to_be_bytes());
    log.append_as_follower(&follower_batch, 0).unwrap();
    assert_eq!(read_all(&log, 8), vec![(8, 300)]);
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    for i in 0..100u64 {
        append_value(&mut log, i);
    }
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    assert_eq!(read_all(&log, 57).first(), Some(&(57, 57)));
    assert_eq!(read_all(&log, 0).len(), 100);
    // Segment files are named by base offset, with both indexes beside them.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"00000000000000000000.log".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"00000000000000000000.index".to_string()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
}

/// Index entries reach their files in groups, but a sealed segment's indexes hold every
/// entry on disk (the next open trusts them), and the active segment's, rebuilt on open,
/// answer the same lookups as before.
#[test]
fn sealed_segments_hold_every_index_entry_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1 << 30);
    c.index_interval_bytes = 0; // one entry per batch after the first
    let batches = 600u64; // more than two groups of pending entries
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    for i in 0..batches {
        append_value(&mut log, i);
    }
    log.roll().unwrap();
    for i in batches..batches + 10 {
        append_value(&mut log, i);
    }
    let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    // No entry for the batch at position 0; the time index also gets the seal's last one.
    assert_eq!(len("00000000000000000000.index"), 8 * (batches - 1));
    assert_eq!(len("00000000000000000000.timeindex"), 12 * batches);
    let before: Vec<_> = (0..batches + 10)
        .step_by(37)
        .map(|t| log.offset_for_timestamp(1000 + t as i64).unwrap())
        .collect();
    drop(log); // the active segment's pending entries are not written: it is rebuilt
    let log = PartitionLog::open(dir.path(), c).unwrap();
    let after: Vec<_> = (0..batches + 10)
        .step_by(37)
        .map(|t| log.offset_for_timestamp(1000 + t as i64).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(read_all(&log, 0).len(), (batches + 10) as usize);
    assert_eq!(read_all(&log, 555).first(), Some(&(555, 555)));
}

/// segment.index.bytes: a segment rolls once another index entry would not fit, Kafka's
/// preallocated index size; the default (10 MiB) leaves the same writes in one segment.
#[test]
fn rolls_when_the_index_is_full() {
    for (index_bytes, one_segment) in [(64u32, false), (10 * 1024 * 1024, true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(1 << 30);
        c.index_interval_bytes = 0;
        c.segment_index_bytes = index_bytes;
        let mut log = PartitionLog::open(dir.path(), c).unwrap();
        for i in 0..50u64 {
            append_value(&mut log, i);
        }
        assert_eq!(
            log.segment_count() == 1,
            one_segment,
            "{index_bytes}: {} segments",
            log.segment_count()
        );
        assert_eq!(read_all(&log, 0).len(), 50);
    }
}

/// Under any fsync policy a roll fsyncs the sealed segment (the group commit's sync
/// point covers only the active one), and a log that starts fsyncing syncs its sealed
/// segments first; under `replicated` the log never fsyncs.
#[test]
fn a_roll_fsyncs_the_sealed_segment_under_any_flush_policy() {
    let every3 = FlushPolicy {
        messages: 3,
        ms: i64::MAX,
    };
    let timed = FlushPolicy {
        messages: i64::MAX,
        ms: 100,
    };
    for (flush, syncs) in [
        (FlushPolicy::REPLICATED, false),
        (every3, true),
        (timed, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(2048);
        c.flush = flush;
        let mut log = PartitionLog::open(dir.path(), c).unwrap();
        for i in 0..40u64 {
            log.append_as_leader(
                &batch(&[i], 1000, Compression::None)[..],
                LeaderEpoch(0),
                None,
                0,
            )
            .unwrap();
        }
        assert!(log.segment_count() > 1);
        assert_eq!(
            log.fsyncs() > 0,
            syncs,
            "{flush:?}: {} fsyncs",
            log.fsyncs()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    for i in 0..40u64 {
        log.append_as_leader(
            &batch(&[i], 1000, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    assert_eq!(log.fsyncs(), 0);
    let mut c = config(2048);
    c.flush = every3;
    log.set_config(c).unwrap();
    assert_eq!(log.fsyncs(), 1, "the sealed segments, once");
}

/// Descriptors this process holds on files under `dir` (other tests use other dirs).
fn open_files_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn closed_segments_hold_no_descriptors_and_reads_share_a_bounded_cache() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let mut log = PartitionLog::open(&dir, config(1024)).unwrap();
    for i in 0..400u64 {
        append_value(&mut log, i);
    }
    let segments = log.segment_count();
    assert!(segments > 30, "segments: {segments}");
    // The active segment's log and indexes (Kafka's model held 3 per segment).
    let writing = open_files_under(&dir);
    assert!(
        writing <= 4,
        "{writing} open while writing {segments} segments"
    );

    // Reading everything opens closed segments through the node's cache, bounded.
    kavka_log::set_closed_segment_handles(8);
    assert_eq!(read_all(&log, 0).len(), 400);
    let reading = open_files_under(&dir);
    assert!(reading <= writing + 8, "{reading} open after reading");

    // Reopened: closed segments hold nothing until read.
    drop(log);
    assert_eq!(
        open_files_under(&dir),
        0,
        "dropped segments close their files"
    );
    let mut log = PartitionLog::open(&dir, config(1024)).unwrap();
    assert!(open_files_under(&dir) <= 4);
    // Truncating back into a closed segment makes it active again: it is written.
    log.truncate_to(Offset(5)).unwrap();
    log.append_as_leader(
        &batch(&[5], 2000, Compression::None)[..],
        LeaderEpoch(1),
        None,
        0,
    )
    .unwrap();
    assert_eq!(
        read_all(&log, 0),
        (0..6).map(|i| (i as i64, i)).collect::<Vec<_>>()
    );
    kavka_log::set_closed_segment_handles(kavka_log::DEFAULT_CLOSED_SEGMENT_HANDLES);
}

#[test]
fn taken_files_stay_open_until_dropped_and_the_emptied_log_holds_none() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let mut log = PartitionLog::open(&dir, config(1 << 20)).unwrap();
    for i in 0..10u64 {
        append_value(&mut log, i);
    }
    let open = open_files_under(&dir);
    assert!(open > 0, "the active segment's files are open");
    let files = log.take_files();
    assert_eq!(files.segments(), 1);
    drop(log);
    assert_eq!(
        open_files_under(&dir),
        open,
        "the taken files are still open"
    );
    drop(files);
    assert_eq!(open_files_under(&dir), 0, "dropped, they are all closed");
}

#[test]
fn rolls_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1 << 20);
    c.segment_ms = 1000;
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    log.append_as_leader(
        &batch(&[1], 0, Compression::None)[..],
        LeaderEpoch(0),
        None,
        10_000,
    )
    .unwrap();
    log.append_as_leader(
        &batch(&[2], 0, Compression::None)[..],
        LeaderEpoch(0),
        None,
        10_500,
    )
    .unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append_as_leader(
        &batch(&[3], 0, Compression::None)[..],
        LeaderEpoch(0),
        None,
        11_000,
    )
    .unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    for i in 0..200u64 {
        log.append_as_leader(
            &batch(&[i, i + 1000], 10_000 + 10 * i as i64, Compression::Gzip)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    assert!(log.segment_count() > 2);
    let table = [
        (0, Some((0, 10_000))),
        (10_000, Some((0, 10_000))),
        (10_001, Some((2, 10_010))),
        (10_995, Some((200, 11_000))),
        (11_990, Some((398, 11_990))),
        (11_991, None),
    ];
    for (ts, want) in table {
        let got = log.offset_for_timestamp(ts).unwrap().map(|(o, t)| (o.0, t));
        assert_eq!(got, want, "timestamp {ts}");
    }
    drop(log);
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(
        log.offset_for_timestamp(10_995).unwrap(),
        Some((Offset(200), 11_000))
    );
}

#[test]
fn the_largest_timestamp_is_found_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1024)).unwrap();
    assert_eq!(log.offset_of_max_timestamp().unwrap(), None, "empty");
    // Out of order across segments; the largest (5000) twice: the first one counts.
    for (i, ts) in [1000, 5000, 2000, 5000, 3000].into_iter().enumerate() {
        log.append_as_leader(
            &batch(&[i as u64], ts, Compression::Zstd)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
        log.roll().unwrap();
    }
    assert_eq!(
        log.offset_of_max_timestamp().unwrap(),
        Some((Offset(1), 5000))
    );
}

#[test]
fn retention_deletes_whole_old_segments_by_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1024);
    c.retention_bytes = 4096;
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    for i in 0..200u64 {
        log.append_as_leader(
            &batch(&[i], 1_000 + i as i64, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    let before = log.segment_count();
    assert!(log.enforce_retention(0).unwrap() > 0);
    assert!(log.size_bytes() <= 4096 + 1024, "size {}", log.size_bytes());
    assert!(log.segment_count() < before);
    let start = log.log_start_offset();
    assert!(start > Offset(0));
    assert!(matches!(
        log.read(Offset(0), 100, log.log_end_offset()),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start.0).first().map(|r| r.0), Some(start.0));

    // By time: everything but the active segment is older than retention.ms.
    let mut c = config(1024);
    c.retention_ms = 60_000;
    log.set_config(c).unwrap();
    log.enforce_retention(1_000 + 200 + 60_001).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), Offset(200));
}

/// Files in `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

#[test]
fn removed_segment_files_wait_out_file_delete_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1024);
    c.retention_bytes = 4096;
    c.file_delete_delay_ms = 60_000;
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    for i in 0..200u64 {
        log.append_as_leader(
            &batch(&[i], 1_000 + i as i64, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    let segments = files_ending(dir.path(), ".log");
    let deleted = log.enforce_retention(0).unwrap();
    assert!(deleted > 0);
    assert_eq!(files_ending(dir.path(), ".log"), segments - deleted);
    assert_eq!(
        files_ending(dir.path(), ".log.deleted"),
        deleted,
        "renamed, not unlinked"
    );
    let start = log.log_start_offset();
    assert_eq!(read_all(&log, start.0).first().map(|r| r.0), Some(start.0));

    let now = std::time::Instant::now();
    let due = log.next_purge_due().unwrap();
    assert!(due > now + std::time::Duration::from_secs(50), "{due:?}");
    assert_eq!(log.purge_retired(now).unwrap(), 0, "not due yet");
    assert_eq!(files_ending(dir.path(), ".log.deleted"), deleted);
    // Each segment's delay runs from its own retirement, a little after the first's.
    let later = due + std::time::Duration::from_secs(5);
    assert!(log.purge_retired(later).unwrap() >= deleted);
    assert_eq!(files_ending(dir.path(), ".deleted"), 0);
    assert_eq!(log.next_purge_due(), None);

    // Truncation retires the segments it drops; a restart unlinks what still waits.
    log.truncate_to(Offset(start.0 + 1)).unwrap();
    assert!(files_ending(dir.path(), ".log.deleted") > 0);
    drop(log);
    let log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    assert_eq!(files_ending(dir.path(), ".deleted"), 0, "removed at open");
    assert_eq!(log.log_end_offset(), Offset(start.0 + 1));
    drop(log);

    // No delay: unlinked at once.
    let dir = tempfile::tempdir().unwrap();
    c.file_delete_delay_ms = 0;
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    for i in 0..200u64 {
        log.append_as_leader(
            &batch(&[i], 1_000, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    assert!(log.enforce_retention(0).unwrap() > 0);
    assert_eq!(files_ending(dir.path(), ".deleted"), 0);
    assert_eq!(log.next_purge_due(), None);
}

/// Bytes of disk `p` holds (reserved blocks included).
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// Appends one-record batches, values from `from`, until the log rolls, reserving ahead
/// whenever the log asks (as the broker does, off its async workers); returns the next
/// value.
fn append_until_rolled(log: &mut PartitionLog, from: u64) -> u64 {
    let mut i = from;
    while log.segment_count() == 1 {
        log.append_as_leader(
            &batch(&[i], 1_000, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
        if log.reservation_due() {
            log.reserve_ahead();
        }
        i += 1;
    }
    i
}

/// The sealed segment `log` keeps no more disk than its data.
fn assert_sealed_gave_back(log: &Path) {
    let sealed = std::fs::metadata(log).unwrap().len();
    assert!(
        allocated(log) < sealed + 64 * 1024,
        "sealed: {sealed} bytes of data, {} allocated",
        allocated(log)
    );
}

#[test]
fn preallocate_reserves_the_active_segment_and_a_roll_gives_the_rest_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(256 * 1024);
    c.preallocate = true;
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    let first = dir.path().join("00000000000000000000.log");
    assert_eq!(
        std::fs::metadata(&first).unwrap().len(),
        0,
        "length unchanged"
    );
    assert!(allocated(&first) >= 256 * 1024, "{}", allocated(&first));
    let i = append_until_rolled(&mut log, 0);
    assert_sealed_gave_back(&first);
    let active = dir
        .path()
        .join(format!("{:020}.log", log.log_end_offset().0 - 1));
    assert!(
        allocated(&active) >= 256 * 1024,
        "the new active segment is reserved"
    );
    drop(log);
    // Reserved blocks past the data are not data: a reopen reads exactly what was written.
    let log = PartitionLog::open(dir.path(), c).unwrap();
    assert_eq!(read_all(&log, 0).len() as u64, i);
}

#[test]
fn appends_reserve_nothing_themselves_and_a_roll_or_a_truncation_gives_the_reserve_back() {
    let dir = tempfile::tempdir().unwrap();
    // preallocate off (Kafka's default): the owner reserves ahead of the appends.
    let c = config(4 << 20);
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    let first = dir.path().join("00000000000000000000.log");
    assert_eq!(allocated(&first), 0, "an empty segment reserves nothing");
    assert!(!log.reservation_due(), "nor asks to");
    for i in 0..3u64 {
        log.append_as_leader(
            &batch(&[i], 1_000, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
    let len = std::fs::metadata(&first).unwrap().len();
    assert!(len < 8 * 1024, "{len}");
    // An append only copies into the page cache: it may wait for nothing on the disk.
    assert!(
        allocated(&first) < 64 * 1024,
        "{len} bytes written, none reserved past them: {} allocated",
        allocated(&first)
    );
    assert!(log.reservation_due());
    log.reserve_ahead();
    assert!(!log.reservation_due(), "a step is reserved");
    assert!(
        allocated(&first) >= 1 << 20,
        "{len} bytes of data, {} allocated",
        allocated(&first)
    );
    // A truncation gives back what lies past the data.
    log.truncate_to(Offset(1)).unwrap();
    let len = std::fs::metadata(&first).unwrap().len();
    assert!(allocated(&first) < len + 64 * 1024, "{}", allocated(&first));
    // Reserved again, and a roll gives the sealed segment's reserve back.
    let i = append_until_rolled(&mut log, 1);
    assert_sealed_gave_back(&first);
    drop(log);
    // Reserved blocks past the data are not data: a reopen reads exactly what was written.
    let log = PartitionLog::open(dir.path(), c).unwrap();
    assert_eq!(read_all(&log, 0).len() as u64, i);
}

#[test]
fn leader_epochs_are_stamped_and_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    log.append_as_leader(
        &batch(&[0, 1], 0, Compression::None)[..],
        LeaderEpoch(3),
        None,
        0,
    )
    .unwrap();
    log.append_as_leader(
        &batch(&[2], 0, Compression::None)[..],
        LeaderEpoch(5),
        None,
        0,
    )
    .unwrap();
    let data = log.read(Offset(0), usize::MAX, Offset(3)).unwrap();
    let (b, _) = RecordBatch::decode(&data.records.clone().into_bytes()).unwrap();
    assert_eq!(b.partition_leader_epoch, 3);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(
        log.epochs()
            .end_offset_for(LeaderEpoch(4), log.log_end_offset()),
        Some((LeaderEpoch(3), Offset(2)))
    );
    log.truncate_to(Offset(2)).unwrap();
    assert_eq!(log.epochs().latest_epoch(), Some(LeaderEpoch(3)));
}

#[test]
fn follower_append_keeps_offsets_and_refuses_gaps_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = PartitionLog::open(&dir.path().join("l"), config(1 << 20)).unwrap();
    let mut follower = PartitionLog::open(&dir.path().join("f"), config(1 << 20)).unwrap();
    leader
        .append_as_leader(
            &batch(&[1, 2, 3], 0, Compression::Snappy)[..],
            LeaderEpoch(2),
            None,
            0,
        )
        .unwrap();
    let data = leader.read(Offset(0), usize::MAX, Offset(3)).unwrap();
    follower
        .append_as_follower(&data.records.clone().into_bytes(), 0)
        .unwrap();
    assert_eq!(follower.log_end_offset(), Offset(3));
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert!(matches!(
        follower.append_as_follower(&data.records.clone().into_bytes(), 0),
        Err(LogError::NonContiguous { .. })
    ));
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    log.append_as_leader(
        &batch(&[1], 5, Compression::Zstd)[..],
        LeaderEpoch(0),
        Some(777),
        0,
    )
    .unwrap();
    let data = log.read(Offset(0), usize::MAX, Offset(1)).unwrap();
    let (b, _) = RecordBatch::decode(&data.records.clone().into_bytes()).unwrap();
    assert_eq!(b.offsets_and_timestamps().next().unwrap().1, 777);
}

#[test]
fn refuses_bad_batches_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1 << 20);
    c.max_message_bytes = 200;
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    let mut bad_crc = batch(&[1], 0, Compression::None);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let err = log
        .append_as_leader(&bad_crc[..], LeaderEpoch(0), None, 0)
        .unwrap_err();
    assert!(err.to_string().contains("CRC mismatch"), "{err}");
    let big = batch(&(0..50).collect::<Vec<_>>(), 0, Compression::None);
    assert!(matches!(
        log.append_as_leader(&big[..], LeaderEpoch(0), None, 0),
        Err(LogError::BatchTooLarge { max: 200, .. })
    ));
    let mut magic = batch(&[1], 0, Compression::None);
    magic[16] = 1;
    assert!(
        log.append_as_leader(&magic[..], LeaderEpoch(0), None, 0)
            .unwrap_err()
            .to_string()
            .contains("unsupported magic 1")
    );
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_bytes(), 0);
}

fn fill(dir: &Path, n: u64) {
    let mut log = PartitionLog::open(dir, config(2048)).unwrap();
    for i in 0..n {
        log.append_as_leader(
            &batch(&[i], 0, Compression::None)[..],
            LeaderEpoch(0),
            None,
            0,
        )
        .unwrap();
    }
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn recovery_truncates_a_torn_active_tail() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 50);
    let active = active_segment(dir.path());
    let len = std::fs::metadata(&active).unwrap().len();
    // Tear the last batch in half, then append garbage.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(49));
    assert_eq!(read_all(&log, 0).len(), 49);
    drop(log);

    let mut bytes = std::fs::read(&active).unwrap();
    bytes.extend_from_slice(&[0xab; 100]);
    std::fs::write(&active, bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(49));
}

#[test]
fn recovery_drops_a_crc_failing_tail_batch() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 50);
    let active = active_segment(dir.path());
    let mut bytes = std::fs::read(&active).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&active, bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(49));
}

#[test]
fn recovery_rebuilds_missing_indexes() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 200);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(200));
    assert_eq!(read_all(&log, 150).first(), Some(&(150, 150)));
    assert!(dir.path().join("00000000000000000000.index").exists());
}

#[test]
fn corruption_in_an_old_segment_refuses_to_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 200);
    let first = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    std::fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    // Refused every time: a failed open leaves no half-built index to trust on the next.
    for attempt in 0..2 {
        let err = PartitionLog::open(dir.path(), config(2048)).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { .. }), "attempt {attempt}");
        assert!(
            err.to_string().contains("00000000000000000000.log"),
            "attempt {attempt}: {err}"
        );
    }
}

/// An idempotent producer's batch: `values` from sequence number `seq`.
fn idempotent(producer_id: i64, seq: i32, values: &[u64]) -> Vec<u8> {
    let mut bytes = batch(values, 1000, Compression::None);
    let (mut b, _) = RecordBatch::decode(&bytes).unwrap();
    b.producer_id = producer_id;
    b.producer_epoch = 0;
    b.base_sequence = seq;
    bytes = b.encode().unwrap();
    bytes
}

#[test]
fn a_retried_producer_batch_is_written_once_across_rolls_reopens_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let small = config(200);
    let mut log = PartitionLog::open(dir.path(), small.clone()).unwrap();
    let e = LeaderEpoch(1);
    let mut seq = 0;
    for i in 0..12u64 {
        let info = log
            .append_as_leader(&idempotent(7, seq, &[i * 2, i * 2 + 1])[..], e, None, 0)
            .unwrap();
        assert!(!info.duplicate);
        seq += 2;
    }
    assert!(log.segment_count() > 2, "the test needs rolled segments");
    let end = log.log_end_offset();
    // The last batch again: answered with its offsets, nothing written.
    let again = log
        .append_as_leader(&idempotent(7, seq - 2, &[22, 23])[..], e, None, 0)
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.first_offset, again.last_offset),
        (Offset(22), Offset(23))
    );
    assert_eq!(log.log_end_offset(), end);
    // A gap in the sequence is refused and writes nothing.
    let gap = log
        .append_as_leader(&idempotent(7, seq + 1, &[99])[..], e, None, 0)
        .unwrap_err();
    assert!(
        matches!(gap, LogError::OutOfOrderSequence { expected, got, .. } if expected == seq && got == seq + 1),
        "{gap}"
    );
    assert_eq!(log.log_end_offset(), end);

    // Reopened (the checkpoint covers all but the active segment), it still knows.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), small.clone()).unwrap();
    let again = log
        .append_as_leader(&idempotent(7, seq - 2, &[22, 23])[..], e, None, 0)
        .unwrap();
    assert!(again.duplicate, "lost the producer state on reopen");
    // Without the checkpoint it is rebuilt from the log.
    drop(log);
    std::fs::remove_file(dir.path().join("producer-state-checkpoint")).unwrap();
    let mut log = PartitionLog::open(dir.path(), small.clone()).unwrap();
    assert_eq!(log.producer_count(), 1);
    assert!(
        log.append_as_leader(&idempotent(7, seq - 2, &[22, 23])[..], e, None, 0)
            .unwrap()
            .duplicate
    );

    // Truncated below the last two batches, the producer must send them again: a new
    // leader's log decides what was written.
    log.truncate_to(Offset(20)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(20));
    let gap = log
        .append_as_leader(&idempotent(7, seq, &[24])[..], e, None, 0)
        .unwrap_err();
    assert!(
        matches!(gap, LogError::OutOfOrderSequence { expected, .. } if expected == seq - 4),
        "{gap}"
    );
    let resent = log
        .append_as_leader(&idempotent(7, seq - 4, &[20, 21])[..], e, None, 0)
        .unwrap();
    assert!(!resent.duplicate);
    assert_eq!(resent.first_offset, Offset(20));
    // Truncation across a segment boundary rebuilds from the log and stays right.
    log.truncate_to(Offset(4)).unwrap();
    drop(log);
    let mut log = PartitionLog::open(dir.path(), small).unwrap();
    let info = log
        .append_as_leader(&idempotent(7, 2, &[2, 3])[..], e, None, 0)
        .unwrap();
    assert!(
        info.duplicate,
        "the batch at offsets 2..3 is still in the log"
    );
    assert_eq!(info.first_offset, Offset(2));
    assert!(
        !log.append_as_leader(&idempotent(7, 4, &[4, 5])[..], e, None, 0)
            .unwrap()
            .duplicate
    );
}

/// DeleteRecords: the log start moves inside a segment, whole segments below it go, the
/// start survives a reopen, and a damaged start file is ignored rather than fatal.
#[test]
fn the_log_start_moves_forward_and_is_kept_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    for i in 0..100u64 {
        append_value(&mut log, i);
    }
    let segments = log.segment_count();
    assert!(segments > 3, "segments: {segments}");
    assert!(log.increment_log_start(Offset(57)).unwrap());
    assert_eq!(log.log_start_offset(), Offset(57));
    assert!(log.segment_count() < segments, "whole segments below 57 go");
    assert!(matches!(
        log.read(Offset(56), usize::MAX, log.log_end_offset()),
        Err(LogError::OffsetOutOfRange {
            log_start: Offset(57),
            ..
        })
    ));
    assert_eq!(read_all(&log, 57).first(), Some(&(57, 57)));
    // A timestamp lookup does not answer a deleted record.
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|(o, _)| o),
        Some(Offset(57))
    );
    // Backwards or in place: nothing to do; past the end: refused.
    assert!(!log.increment_log_start(Offset(40)).unwrap());
    assert!(!log.increment_log_start(Offset(57)).unwrap());
    assert!(matches!(
        log.increment_log_start(Offset(101)),
        Err(LogError::OffsetOutOfRange {
            offset: Offset(101),
            ..
        })
    ));
    drop(log);

    let mut log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_start_offset(), Offset(57));
    assert_eq!(read_all(&log, 57).len(), 43);
    // Everything: the log is empty from its end.
    assert!(log.increment_log_start(Offset(100)).unwrap());
    assert_eq!(read_all(&log, 100), vec![]);
    drop(log);

    std::fs::write(
        dir.path().join(kavka_log::LOG_START_FILE),
        "9\nnot an offset\n",
    )
    .unwrap();
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    let first_base = log.log_start_offset();
    assert!(
        first_base < Offset(100),
        "the file was ignored: {first_base}"
    );

    // Truncating below everything starts the log afresh, and a stale start is forgotten.
    let mut log = log;
    log.increment_log_start(Offset(99)).unwrap();
    log.truncate_fully_and_start_at(Offset(10)).unwrap();
    assert_eq!(log.log_start_offset(), Offset(10));
    drop(log);
    let log = PartitionLog::open(dir.path(), config(2048)).unwrap();
    assert_eq!(log.log_start_offset(), Offset(10));
}
