//! Idempotent-producer state persisted as a snapshot chain (issue 16 item 8), on real
//! files: what a reopened log knows equals what a log that never closed knows, across
//! rolls, expiry, retention, truncation and damaged files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_log::{FlushPolicy, LogConfig, LogError, PRODUCER_STATE_DELTAS_MAX, PartitionLog};
use kavka_model::{LeaderEpoch, Offset};
use kavka_record::{Compression, Record, RecordBatch};
use std::collections::BTreeMap;
use std::path::Path;

const FULL: &str = "producer-state-checkpoint";
const E: LeaderEpoch = LeaderEpoch(1);

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        flush: FlushPolicy::REPLICATED,
        ..LogConfig::default()
    }
}

/// One record from producer `pid` with sequence `seq`, stamped `ts`.
fn batch(pid: i64, seq: i32, ts: i64) -> Vec<u8> {
    let mut b = RecordBatch::new(
        ts,
        Compression::None,
        vec![Record {
            value: Some(bytes::Bytes::from_static(b"v")),
            ..Record::default()
        }],
    );
    b.producer_id = pid;
    b.producer_epoch = 0;
    b.base_sequence = seq;
    b.encode().unwrap()
}

/// The producer state files in `dir`: (deltas, whether the full snapshot is there).
fn state_files(dir: &Path) -> (Vec<String>, bool) {
    let mut deltas = Vec::new();
    let mut full = false;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == FULL {
            full = true;
        } else if name.starts_with("producer-state-") && name.ends_with(".delta") {
            deltas.push(name);
        }
    }
    deltas.sort();
    (deltas, full)
}

/// Appends to one or more logs alike, remembering each producer's next sequence.
struct Producers {
    next: BTreeMap<i64, i32>,
    ts: i64,
}

impl Producers {
    fn new() -> Self {
        Self {
            next: BTreeMap::new(),
            ts: 0,
        }
    }

    fn send(&mut self, pid: i64, logs: &mut [&mut PartitionLog]) {
        self.ts += 10;
        let seq = *self.next.get(&pid).unwrap_or(&0);
        let bytes = batch(pid, seq, self.ts);
        for log in logs.iter_mut() {
            let info = log.append_as_leader(&bytes[..], E, None, self.ts).unwrap();
            assert!(!info.duplicate);
        }
        self.next.insert(pid, seq + 1);
    }
}

/// What the log answers each producer: a retry of its last batch (a duplicate at its
/// offset, or written again when the log forgot the producer) and a batch far ahead of
/// its sequence (the sequence expected, or written when the producer is unknown).
/// Probing writes the same batches to logs that know the same, so two logs compared
/// probe by probe stay comparable.
fn fingerprint(log: &mut PartitionLog, producers: &Producers) -> Vec<String> {
    let mut out = vec![format!("{} producers", log.producer_count())];
    for (&pid, &next) in &producers.next {
        let retry = log
            .append_as_leader(&batch(pid, next - 1, 1)[..], E, None, 1)
            .unwrap();
        let retry = if retry.duplicate {
            format!("dup at {}", retry.first_offset)
        } else {
            "written".into()
        };
        let ahead = match log.append_as_leader(&batch(pid, next + 1000, 1)[..], E, None, 1) {
            Err(LogError::OutOfOrderSequence { expected, .. }) => format!("expects {expected}"),
            Ok(_) => "unknown".into(),
            Err(e) => e.to_string(),
        };
        out.push(format!("{pid}: {retry}, {ahead}"));
    }
    out
}

/// A pseudo-random producer id in `0..n` (an LCG, so every run is the same).
fn pick(state: &mut u64, n: i64) -> i64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 33) % n as u64) as i64
}

#[test]
fn a_reopened_log_knows_what_a_log_that_never_closed_knows() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = config(400);
    let mut a = PartitionLog::open(a_dir.path(), cfg.clone()).unwrap();
    let mut b = PartitionLog::open(b_dir.path(), cfg.clone()).unwrap();
    let mut producers = Producers::new();
    let mut rng = 7;
    let mut last_expiry = None;
    for step in 0..1_500 {
        let pid = pick(&mut rng, 40);
        producers.send(pid, &mut [&mut a, &mut b]);
        if step % 97 == 0 {
            // Producers silent for 60 batches expire: tombstones in the next delta.
            let now = producers.ts;
            assert_eq!(
                a.remove_expired_producers(now, 600),
                b.remove_expired_producers(now, 600)
            );
            last_expiry = Some(now);
        }
        if step % 131 == 0 {
            drop(b);
            b = PartitionLog::open(b_dir.path(), cfg.clone()).unwrap();
            // Expiry since the last roll is persisted only by the next one: applied again.
            if let Some(now) = last_expiry {
                b.remove_expired_producers(now, 600);
            }
            assert_eq!(a.producer_count(), b.producer_count(), "step {step}");
        }
    }
    assert!(a.segment_count() > 200, "the test needs many rolls");
    let (deltas, full) = state_files(b_dir.path());
    assert!(full);
    assert!(
        deltas.len() <= PRODUCER_STATE_DELTAS_MAX,
        "{}",
        deltas.len()
    );
    drop(b);
    let mut b = PartitionLog::open(b_dir.path(), cfg).unwrap();
    if let Some(now) = last_expiry {
        b.remove_expired_producers(now, 600);
    }
    assert_eq!(
        fingerprint(&mut a, &producers),
        fingerprint(&mut b, &producers)
    );
}

#[test]
fn a_roll_writes_only_the_producers_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    let mut producers = Producers::new();
    for pid in 0..2_000 {
        producers.send(pid, &mut [&mut log]);
    }
    log.roll().unwrap();
    let full_bytes = std::fs::metadata(dir.path().join(FULL)).unwrap().len();
    assert!(full_bytes > 2_000 * 20, "{full_bytes}");
    for round in 0..5 {
        producers.send(1_234, &mut [&mut log]);
        log.roll().unwrap();
        let (deltas, _) = state_files(dir.path());
        assert_eq!(deltas.len(), round + 1);
        let last = deltas.last().unwrap();
        let bytes = std::fs::metadata(dir.path().join(last)).unwrap().len();
        // The header, one producer's line with its batches, the CRC.
        assert!(bytes < 200, "{last}: {bytes} bytes");
    }
    assert_eq!(
        std::fs::metadata(dir.path().join(FULL)).unwrap().len(),
        full_bytes,
        "the full snapshot is not rewritten"
    );
}

#[test]
fn the_chain_is_replaced_by_a_full_snapshot_and_its_files_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    let mut producers = Producers::new();
    for pid in 0..100 {
        producers.send(pid, &mut [&mut log]);
    }
    let mut most = 0;
    let mut replaced = 0;
    let mut before = 0;
    for i in 0..400 {
        producers.send(i % 100, &mut [&mut log]);
        log.roll().unwrap();
        let (deltas, full) = state_files(dir.path());
        assert!(full);
        most = most.max(deltas.len());
        if deltas.len() < before {
            replaced += 1;
        }
        before = deltas.len();
    }
    // 100 producers' full snapshot weighs about 40 one-producer deltas.
    assert!(replaced >= 5, "replaced {replaced} times");
    assert!(most < 60, "{most} deltas at most");
    drop(log);
    let mut reopened = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    assert_eq!(reopened.producer_count(), 100);
    let f = fingerprint(&mut reopened, &producers);
    assert!(f.iter().skip(1).all(|l| l.contains("dup at")), "{f:?}");
}

/// Which producer sends the batch at each offset of [`rolled_log`] (one record each):
/// 100 producers once, then 200 batches from them at random.
fn senders() -> Vec<i64> {
    let mut rng = 3;
    (0..100)
        .chain((0..200).map(|_| pick(&mut rng, 100)))
        .collect()
}

/// A log of [`senders`]' batches in segments of about four, so many rolls.
fn rolled_log(dir: &Path) -> (PartitionLog, Producers) {
    let mut log = PartitionLog::open(dir, config(300)).unwrap();
    let mut producers = Producers::new();
    for pid in senders() {
        producers.send(pid, &mut [&mut log]);
    }
    (log, producers)
}

/// The offset the full snapshot in `dir` is as of.
fn full_at(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join(FULL)).unwrap();
    let header = text.lines().nth(1).unwrap();
    header.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The offset a delta's name says it brings the state to.
fn delta_to(name: &str) -> i64 {
    name.trim_start_matches("producer-state-")
        .trim_end_matches(".delta")
        .parse()
        .unwrap()
}

/// Copies every file of `from` into a new directory.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

#[test]
fn a_corrupt_or_missing_delta_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, producers) = rolled_log(dir.path());
    drop(log);
    let (deltas, _) = state_files(dir.path());
    assert!(deltas.len() > 4, "{deltas:?}");
    let middle = deltas[deltas.len() / 2].clone();
    let last = deltas[deltas.len() - 1].clone();
    let reference = copy_dir(dir.path());
    let mut want = PartitionLog::open(reference.path(), config(300)).unwrap();
    let want = fingerprint(&mut want, &producers);
    type Damage = (&'static str, fn(&Path, &str));
    let cases: &[Damage] = &[
        ("a digit changed", |dir, f| {
            let p = dir.join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, text.replacen(" 0 ", " 1 ", 1)).unwrap();
        }),
        ("cut short", |dir, f| {
            let p = dir.join(f);
            let text = std::fs::read(&p).unwrap();
            std::fs::write(&p, &text[..text.len() / 2]).unwrap();
        }),
        ("missing", |dir, f| {
            std::fs::remove_file(dir.join(f)).unwrap()
        }),
        ("the full snapshot missing", |dir, _| {
            std::fs::remove_file(dir.join(FULL)).unwrap()
        }),
        ("the full snapshot corrupt", |dir, _| {
            std::fs::write(dir.join(FULL), "2\nfull 1 0 0\ncrc32c 1\n").unwrap()
        }),
    ];
    for file in [&middle, &last] {
        for (name, damage) in cases {
            let copy = copy_dir(dir.path());
            damage(copy.path(), file);
            let mut log = PartitionLog::open(copy.path(), config(300)).unwrap();
            let files = state_files(copy.path());
            if *name == "missing" && file == &last {
                // The chain is whole, only shorter (a crash between a roll and its
                // delta): the missing link is rebuilt from the log and written.
                assert_eq!(files, (deltas.clone(), true), "{name} {file}");
            } else {
                // A new chain starts at the active segment's base.
                assert_eq!(files, (vec![], true), "{name} {file}");
            }
            assert_eq!(fingerprint(&mut log, &producers), want, "{name} {file}");
        }
    }
}

#[test]
fn truncation_below_the_chain_keeps_its_earlier_links_and_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(rolled_log(dir.path()));
    let (deltas, _) = state_files(dir.path());
    assert!(deltas.len() > 4, "{deltas:?}");
    let full = full_at(dir.path());
    assert!(
        full > 10,
        "the test needs a full snapshot past the log start"
    );
    let middle = delta_to(&deltas[deltas.len() / 2]);
    for (name, to) in [
        ("between two links", middle - 2),
        ("onto a link", middle),
        ("below the full snapshot", full - 3),
    ] {
        let copy = copy_dir(dir.path());
        let mut log = PartitionLog::open(copy.path(), config(300)).unwrap();
        // The same batches up to `to`, in a log that never went further.
        let reference_dir = tempfile::tempdir().unwrap();
        let mut reference = PartitionLog::open(reference_dir.path(), config(300)).unwrap();
        let all = log.read(Offset(0), 1 << 20, Offset(to)).unwrap();
        reference
            .append_as_follower(&all.records.clone().into_bytes(), 0)
            .unwrap();
        assert_eq!(reference.log_end_offset(), Offset(to), "{name}");
        log.truncate_to(Offset(to)).unwrap();
        assert_eq!(log.log_end_offset(), Offset(to), "{name}");
        // No link past the active segment's base is left: a new chain starts there.
        assert_eq!(state_files(copy.path()), (vec![], true), "{name}");
        assert!(full_at(copy.path()) <= to, "{name}");
        // What each producer wrote below `to` (one record per batch): its next sequence.
        let mut below = Producers::new();
        for pid in senders().into_iter().take(to as usize) {
            *below.next.entry(pid).or_insert(0) += 1;
        }
        let again = copy_dir(copy.path());
        let mut reopened = PartitionLog::open(again.path(), config(300)).unwrap();
        let want = fingerprint(&mut reference, &below);
        assert_eq!(fingerprint(&mut log, &below), want, "{name}");
        assert_eq!(fingerprint(&mut reopened, &below), want, "{name}: reopened");
    }
}

#[test]
fn truncation_within_the_active_segment_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut producers) = rolled_log(dir.path());
    // Two batches in a new active segment; the truncation removes the second.
    log.roll().unwrap();
    producers.send(3, &mut [&mut log]);
    producers.send(3, &mut [&mut log]);
    let (end, segments) = (log.log_end_offset(), log.segment_count());
    let files = state_files(dir.path());
    let full_modified = std::fs::metadata(dir.path().join(FULL))
        .unwrap()
        .modified()
        .unwrap();
    log.truncate_to(Offset(end.0 - 1)).unwrap();
    assert_eq!(log.segment_count(), segments);
    assert_eq!(state_files(dir.path()), files);
    assert_eq!(
        std::fs::metadata(dir.path().join(FULL))
            .unwrap()
            .modified()
            .unwrap(),
        full_modified
    );
    // The producer of the removed batch must send it again; the others are unchanged.
    drop(log);
    let mut reopened = PartitionLog::open(dir.path(), config(300)).unwrap();
    let f = fingerprint(&mut reopened, &producers);
    assert_eq!(
        f.iter().filter(|l| l.contains("written")).count(),
        1,
        "{f:?}"
    );
}

#[test]
fn expired_producers_stay_forgotten_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    let mut producers = Producers::new();
    for pid in 0..10 {
        producers.send(pid, &mut [&mut log]);
    }
    log.roll().unwrap();
    // Producers 0..5 wrote at 10..50, 5..10 at 60..100: expire the first five.
    assert_eq!(log.remove_expired_producers(1_055, 1_000), 5);
    producers.send(7, &mut [&mut log]);
    log.roll().unwrap();
    let (deltas, _) = state_files(dir.path());
    assert_eq!(deltas.len(), 1);
    let text = std::fs::read_to_string(dir.path().join(&deltas[0])).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("- ")).count(),
        5,
        "{text}"
    );
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    assert_eq!(log.producer_count(), 5);
    let f = fingerprint(&mut log, &producers);
    for pid in 0..5 {
        // Its retry is not recognised: written, and then its sequence follows on.
        assert_eq!(f[1 + pid], format!("{pid}: written, expects 1"), "{f:?}");
    }
    for pid in 5..10 {
        assert!(f[1 + pid].contains("dup at"), "{f:?}");
    }
}

#[test]
fn retention_below_the_full_snapshot_leaves_the_chain_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, producers) = rolled_log(dir.path());
    let segments = log.segment_count();
    let mut cfg = config(300);
    cfg.retention_bytes = 1_000;
    log.set_config(cfg.clone()).unwrap();
    assert!(log.enforce_retention(0).unwrap() > segments / 2);
    let copy = copy_dir(dir.path());
    let mut reopened = PartitionLog::open(copy.path(), cfg).unwrap();
    assert_eq!(
        fingerprint(&mut log, &producers),
        fingerprint(&mut reopened, &producers)
    );
}

#[test]
fn a_version_1_checkpoint_is_read_and_replaced_by_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    let mut producers = Producers::new();
    producers.send(7, &mut [&mut log]);
    producers.send(7, &mut [&mut log]);
    log.roll().unwrap();
    drop(log);
    // What the previous release wrote at that roll: producer 7, two batches, at 20.
    std::fs::write(dir.path().join(FULL), "1\n2\n1\n7 0 20 2 0 0 0 0 1 1 1 1\n").unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    let text = std::fs::read_to_string(dir.path().join(FULL)).unwrap();
    assert!(
        text.starts_with("2\nfull "),
        "rewritten as version 2: {text}"
    );
    assert_eq!(
        fingerprint(&mut log, &producers)[1],
        "7: dup at 1, expects 2"
    );
}

#[test]
fn compaction_leaves_the_chain_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: true,
        delete: false,
        min_compaction_lag_ms: 0,
        min_cleanable_dirty_ratio: kavka_model::TopicConfig::from_overrides(
            &std::iter::once(("min.cleanable.dirty.ratio".to_string(), "0".to_string())).collect(),
        )
        .unwrap()
        .min_cleanable_dirty_ratio,
        ..config(300)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let mut next = BTreeMap::new();
    // Every batch has the same key: compaction keeps only the last.
    for i in 0..120i64 {
        let pid = i % 6;
        let seq = next.entry(pid).or_insert(0);
        let mut b = RecordBatch::decode(&batch(pid, *seq, 10 * i)).unwrap().0;
        b.records[0].key = Some(bytes::Bytes::from_static(b"k"));
        log.append_as_leader(b.encode().unwrap(), E, None, 10 * i)
            .unwrap();
        *seq += 1;
    }
    let stats = log.compact(2_000, log.log_end_offset()).unwrap().unwrap();
    assert!(stats.records_removed > 50, "{stats:?}");
    let producers = Producers {
        next: next.clone(),
        ts: 0,
    };
    let copy = copy_dir(dir.path());
    let mut reopened = PartitionLog::open(copy.path(), cfg).unwrap();
    // The producers whose batches were cleaned away are still known after a reopen: the
    // chain holds them, whatever the cleaner removed.
    let want = fingerprint(&mut log, &producers);
    assert!(
        want.iter().skip(1).all(|l| l.contains("dup at")),
        "{want:?}"
    );
    assert_eq!(fingerprint(&mut reopened, &producers), want);
}

#[test]
fn active_producers_are_listed_with_their_last_sequence_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    assert!(log.active_producers().is_empty());
    let mut producers = Producers::new();
    for pid in [9, 3, 3, 3] {
        producers.send(pid, &mut [&mut log]);
    }
    let listed: Vec<(i64, i16, i32, Option<i64>)> = log
        .active_producers()
        .iter()
        .map(|p| {
            (
                p.producer_id,
                p.producer_epoch,
                p.last_sequence,
                p.last_timestamp,
            )
        })
        .collect();
    // By id; producer 3 sent three batches of one record (sequences 0, 1, 2).
    assert_eq!(listed, vec![(3, 0, 2, Some(40)), (9, 0, 0, Some(10))]);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(1 << 30)).unwrap();
    assert_eq!(log.active_producers().len(), 2);
}
