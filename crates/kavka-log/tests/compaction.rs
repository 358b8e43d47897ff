//! Log compaction against a model: after cleaning, each surviving record sits at its
//! original offset with its original value, the latest record of every key in the cleaned
//! range survives, nothing past the cleanable end is touched, and the same holds after the
//! log is reopened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_log::{LogConfig, PartitionLog};
use kavka_model::{LeaderEpoch, Offset, TopicConfig};
use kavka_record::{Compression, Record, RecordBatch};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

fn config(overrides: &[(&str, &str)]) -> LogConfig {
    let o: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut c = LogConfig::from_topic(&TopicConfig::from_overrides(&o).unwrap());
    c.index_interval_bytes = 128;
    c
}

fn compacted(segment_bytes: u64) -> LogConfig {
    config(&[
        ("cleanup.policy", "compact"),
        ("internal.segment.bytes", &segment_bytes.to_string()),
        ("min.cleanable.dirty.ratio", "0"),
    ])
}

/// (key, value): `None` value is a tombstone.
type Rec = (u8, Option<u16>);

fn batch(records: &[Rec], ts: i64, compression: Compression) -> Vec<u8> {
    let records = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::from(format!("k{k}"))),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(ts, compression, records).encode().unwrap()
}

/// Every (offset, key, value) in the log.
fn read_all(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let data = log
        .read(log.log_start_offset(), usize::MAX, log.log_end_offset())
        .unwrap();
    let mut out = Vec::new();
    let mut rest = &data.records.clone().into_bytes()[..];
    while !rest.is_empty() {
        let (b, used) = RecordBatch::decode(rest).expect("a read returns only valid batches");
        for (offset, _, r) in b.offsets_and_timestamps() {
            let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
            out.push((offset, s(r.key.as_ref().unwrap()), r.value.as_ref().map(s)));
        }
        rest = &rest[used..];
    }
    out
}

fn append(log: &mut PartitionLog, records: &[Rec], ts: i64, compression: Compression) {
    let b = batch(records, ts, compression);
    log.append_as_leader(&b[..], LeaderEpoch(0), None, ts)
        .unwrap();
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn compaction_keeps_the_latest_record_per_key_at_its_offset(
        batches in prop::collection::vec(
            (prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u16..1000)), 1..4), codec()),
            1..60,
        ),
        segment_bytes in 1024u64..3000,
        twice in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compacted(segment_bytes)).unwrap();
        let mut model: Vec<(i64, String, Option<String>)> = Vec::new();
        for (records, codec) in &batches {
            append(&mut log, records, 1_000, *codec);
            for (k, v) in records {
                model.push((model.len() as i64, format!("k{k}"), v.map(|v| v.to_string())));
            }
        }
        let end = log.log_end_offset();
        let stats = log.compact(2_000, end).unwrap();
        if twice {
            // A second pass finds nothing new to clean.
            prop_assert_eq!(log.compact(2_000, end).unwrap(), None);
        }
        let cleaned_to = stats.map_or(0, |s| s.cleaned_up_to.0);
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for (o, k, _) in model.iter().filter(|(o, _, _)| *o < cleaned_to) {
            latest.insert(k, *o);
        }
        let want: Vec<_> = model
            .iter()
            .filter(|(o, k, _)| *o >= cleaned_to || latest.get(k.as_str()) == Some(o))
            .cloned()
            .collect();
        prop_assert_eq!(&read_all(&log), &want);
        prop_assert_eq!(log.log_end_offset(), end);
        drop(log);
        let log = PartitionLog::open(dir.path(), compacted(segment_bytes)).unwrap();
        prop_assert_eq!(read_all(&log), want);
        prop_assert_eq!(log.log_end_offset(), end);
    }
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = compacted(1024);
    c.delete_retention_ms = 10_000;
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    for i in 0..40u16 {
        append(
            &mut log,
            &[(1, Some(i)), (2, Some(i))],
            1_000,
            Compression::None,
        );
    }
    append(&mut log, &[(1, None)], 1_000, Compression::None);
    for i in 0..40u16 {
        append(&mut log, &[(3, Some(i))], 1_000, Compression::None);
    }
    let end = log.log_end_offset();
    // Young: the tombstone for k1 is kept, and hides every older k1.
    log.compact(5_000, end).unwrap().unwrap();
    let after = read_all(&log);
    let k1: Vec<_> = after.iter().filter(|(_, k, _)| k == "k1").collect();
    assert_eq!(k1.len(), 1);
    assert_eq!(k1[0].2, None, "the tombstone is the one k1 left");
    // Past delete.retention.ms the next cleaning drops it (more dirty data arrives first).
    for i in 0..40u16 {
        append(&mut log, &[(3, Some(100 + i))], 1_000, Compression::None);
    }
    log.compact(20_000, log.log_end_offset()).unwrap().unwrap();
    assert!(read_all(&log).iter().all(|(_, k, _)| k != "k1"));
}

#[test]
fn cleaned_segments_keep_the_old_data_for_file_delete_delay() {
    let deleted = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".log.deleted")
            })
            .count()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1024)).unwrap();
    for i in 0..60u16 {
        append(
            &mut log,
            &[(1, Some(i)), (2, Some(i))],
            1_000,
            Compression::None,
        );
    }
    let end = log.log_end_offset();
    let stats = log.compact(5_000, end).unwrap().unwrap();
    assert!(stats.records_removed > 0);
    let old = deleted(dir.path());
    assert!(old > 0, "each replaced segment waits as *.log.deleted");
    let later = log.next_purge_due().unwrap() + std::time::Duration::from_secs(5);
    assert_eq!(log.purge_retired(later).unwrap(), old);
    assert_eq!(deleted(dir.path()), 0);
    let kept = read_all(&log);
    drop(log);
    let log = PartitionLog::open(dir.path(), compacted(1024)).unwrap();
    assert_eq!(
        read_all(&log),
        kept,
        "the cleaned copies are what the log reads"
    );
}

#[test]
fn nothing_at_or_past_the_high_watermark_or_younger_than_the_lag_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1024)).unwrap();
    for i in 0..60u16 {
        append(&mut log, &[(0, Some(i))], 1_000, Compression::None);
    }
    let before = read_all(&log);
    // Upper bound at the log start: nothing below it to clean.
    assert_eq!(log.compact(2_000, Offset(0)).unwrap(), None);
    assert_eq!(read_all(&log), before);
    drop(log);
    let mut c = compacted(1024);
    c.min_compaction_lag_ms = 60_000;
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    assert_eq!(log.compact(2_000, log.log_end_offset()).unwrap(), None);
    assert_eq!(read_all(&log), before);
    // Old enough: cleaned.
    let s = log.compact(100_000, log.log_end_offset()).unwrap().unwrap();
    assert!(
        s.records_removed > 0 && s.bytes_after < s.bytes_before,
        "{s:?}"
    );
}

#[test]
fn the_dirty_ratio_decides_when_to_clean_and_delete_policy_never_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = compacted(1024);
    c.min_cleanable_dirty_ratio = TopicConfig::from_overrides(&BTreeMap::from([(
        "min.cleanable.dirty.ratio".to_string(),
        "0.9".to_string(),
    )]))
    .unwrap()
    .min_cleanable_dirty_ratio;
    let mut log = PartitionLog::open(dir.path(), c.clone()).unwrap();
    for i in 0..60u16 {
        append(&mut log, &[(i as u8, Some(i))], 1_000, Compression::None);
    }
    // Everything is dirty before the first cleaning.
    assert!(log.compact(2_000, log.log_end_offset()).unwrap().is_some());
    // A little new data (a segment against the five cleaned ones) is below 90% dirty.
    for i in 0..20u16 {
        append(&mut log, &[(0, Some(i))], 1_000, Compression::None);
    }
    assert_eq!(log.compact(2_000, log.log_end_offset()).unwrap(), None);
    // max.compaction.lag.ms: dirty data written at 1 000 is cleaned once it is 5 000 old,
    // whatever the ratio.
    let mut lagged = c.clone();
    lagged.max_compaction_lag_ms = 5_000;
    log.set_config(lagged).unwrap();
    assert_eq!(log.compact(5_999, log.log_end_offset()).unwrap(), None);
    assert!(log.compact(6_000, log.log_end_offset()).unwrap().is_some());
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let mut d = config(&[("internal.segment.bytes", "1024"), ("retention.ms", "1")]);
    d.index_interval_bytes = 128;
    let mut log = PartitionLog::open(dir.path(), d).unwrap();
    for i in 0..60u16 {
        append(&mut log, &[(0, Some(i))], 1_000, Compression::None);
    }
    assert_eq!(log.compact(2_000, log.log_end_offset()).unwrap(), None);
    // cleanup.policy=compact alone: retention never deletes.
    let mut c = compacted(1024);
    c.retention_ms = 1;
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), c).unwrap();
    for i in 0..60u16 {
        append(&mut log, &[(0, Some(i))], 1_000, Compression::None);
    }
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 0);
}

#[test]
fn a_cleaning_cut_short_leaves_the_log_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compacted(1024)).unwrap();
    for i in 0..60u16 {
        append(
            &mut log,
            &[(i as u8 % 3, Some(i))],
            1_000,
            Compression::None,
        );
    }
    let before = read_all(&log);
    drop(log);
    // A crash after the copy of a segment was written but before it was swapped in.
    let work = dir.path().join("cleaning");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("00000000000000000000.log"), b"half a segment").unwrap();
    let log = PartitionLog::open(dir.path(), compacted(1024)).unwrap();
    assert!(!work.exists(), "the work directory is removed on open");
    assert_eq!(read_all(&log), before);
}

#[test]
fn a_compacted_logs_active_segment_rolls_at_the_max_compaction_lag() {
    for (compact, rolls) in [(true, true), (false, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = if compact {
            compacted(1024 * 1024)
        } else {
            config(&[])
        };
        c.max_compaction_lag_ms = 5_000;
        let mut log = PartitionLog::open(dir.path(), c).unwrap();
        append(&mut log, &[(1, Some(1))], 1_000, Compression::None);
        append(&mut log, &[(1, Some(2))], 5_999, Compression::None);
        assert_eq!(log.segment_count(), 1, "compact: {compact}");
        append(&mut log, &[(1, Some(3))], 6_000, Compression::None);
        assert_eq!(
            log.segment_count(),
            if rolls { 2 } else { 1 },
            "compact: {compact}"
        );
    }
}
