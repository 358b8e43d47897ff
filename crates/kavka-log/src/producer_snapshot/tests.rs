//! The chain's decisions as tables, and the chain on real files.

use super::*;
use kavka_record::BatchHeader;

fn header(pid: i64, seq: i32, offset: i64) -> BatchHeader {
    BatchHeader {
        base_offset: offset,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: offset,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        record_count: 1,
    }
}

#[test]
fn link_kind_by_where_the_chain_ends() {
    // (chain end, link at) -> kind
    let cases = [
        (None, 10, LinkKind::Full),
        (Some(10), 10, LinkKind::Nothing),
        (Some(4), 10, LinkKind::Delta),
        (Some(12), 10, LinkKind::Full),
    ];
    for (end, at, want) in cases {
        assert_eq!(
            link_kind(end.map(Offset), Offset(at)),
            want,
            "{end:?} -> {at}"
        );
    }
}

#[test]
fn a_delta_is_written_while_the_deltas_stay_smaller_and_fewer() {
    // (full bytes, deltas, their bytes, new delta bytes) -> write a full snapshot instead
    let cases = [
        (1_000, 0, 0, 100, false),
        (1_000, 9, 900, 100, false),
        (1_000, 9, 900, 101, true),
        (1_000, 0, 0, 1_001, true),
        // A tiny full snapshot (few producers) is rewritten rather than followed.
        (40, 0, 0, 45, true),
        (u64::MAX, DELTAS_MAX - 1, 10, 10, false),
        (u64::MAX, DELTAS_MAX, 10, 10, true),
    ];
    for (full, n, bytes, new, want) in cases {
        assert_eq!(
            delta_outgrows(full, n, bytes, new),
            want,
            "{full} {n} {bytes} {new}"
        );
    }
}

#[test]
fn loading_judges_each_delta_by_name_then_header() {
    let (end, limit) = (Offset(100), Offset(300));
    // (named to) -> verdict without reading it
    let by_name = [
        (50, Some("Skip")),
        (100, Some("Skip")),
        (200, None),
        (300, None),
        (301, Some("Stop")),
    ];
    for (to, want) in by_name {
        let got = judge_name(end, limit, Offset(to)).map(|v| format!("{v:?}"));
        assert_eq!(got.as_deref().map(|v| &v[..4]), want, "{to}: {got:?}");
    }
    let h = |chain, from, to| DeltaHeader {
        chain,
        from: Offset(from),
        to: Offset(to),
    };
    // (header, named to) -> verdict
    let by_header = [
        (h(7, 100, 200), 200, "Apply"),
        (h(8, 100, 200), 200, "Skip"),
        (h(7, 100, 250), 200, "Stop"),
        (h(7, 90, 200), 200, "Stop"),
        (h(7, 150, 200), 200, "Stop"),
    ];
    for (header, to, want) in by_header {
        let got = format!("{:?}", judge_header(7, end, Offset(to), header));
        assert!(got.starts_with(want), "{header:?}: {got}");
    }
}

#[test]
fn delta_names_sort_by_offset_and_nothing_else_parses() {
    assert_eq!(
        delta_file_name(Offset(42)),
        "producer-state-00000000000000000042.delta"
    );
    assert_eq!(
        parse_delta_name(&delta_file_name(Offset(42))),
        Some(Offset(42))
    );
    for name in [
        "producer-state-checkpoint",
        "producer-state-.delta",
        "producer-state-12a.delta",
        "producer-state-00000000000000000042.tmp",
        "00000000000000000042.log",
    ] {
        assert_eq!(parse_delta_name(name), None, "{name}");
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Links a chain through `rolls` rolls of one batch each from producer `i % producers`,
/// returning the states at the end and the chain.
fn linked(dir: &Path, producers: i64, rolls: i64) -> (ProducerStates, SnapshotChain) {
    let mut chain = SnapshotChain::none(dir);
    let mut states = ProducerStates::default();
    for pid in 0..producers {
        states.record(&header(pid, 0, pid));
    }
    chain.link(&mut states, Offset(producers), false).unwrap();
    for i in 0..rolls {
        let offset = producers + i;
        states.record(&header(i % producers, 1 + (i / producers) as i32, offset));
        chain.link(&mut states, Offset(offset + 1), false).unwrap();
    }
    (states, chain)
}

#[test]
fn a_chain_reads_back_as_written_and_its_deltas_hold_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (states, chain) = linked(dir.path(), 50, 10);
    assert_eq!(chain.deltas.len(), 10, "{:?}", files(dir.path()));
    for (to, bytes) in &chain.deltas {
        // One producer's line, its header and its CRC: nothing of the other 49.
        assert!(*bytes < 120, "delta to {to} has {bytes} bytes");
    }
    let loaded = SnapshotChain::load(dir.path(), Offset(60))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.at, Offset(60));
    assert_eq!(loaded.chain.end(), Some(Offset(60)));
    assert_eq!(loaded.states, states);
    // Loaded up to an earlier active base: the links past it are left out.
    let loaded = SnapshotChain::load(dir.path(), Offset(55))
        .unwrap()
        .unwrap();
    assert_eq!((loaded.at, loaded.chain.end()), (Offset(55), None));
}

#[test]
fn the_deltas_give_way_to_a_full_snapshot_which_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    // Three producers: their full snapshot is outweighed after a few deltas.
    let (_, chain) = linked(dir.path(), 3, 40);
    let deltas = files(dir.path()).len() - 1;
    assert!(deltas < 4, "{:?}", files(dir.path()));
    assert_eq!(chain.deltas.len(), deltas);
    // Many producers, one change per roll: DELTAS_MAX bounds the files. The roll after
    // DELTAS_MAX deltas writes a full snapshot; four deltas follow it here.
    let dir = tempfile::tempdir().unwrap();
    let (states, _) = linked(dir.path(), 2_000, DELTAS_MAX as i64 + 5);
    assert_eq!(files(dir.path()).len(), 1 + 4, "{:?}", files(dir.path()));
    let end = Offset(2_000 + DELTAS_MAX as i64 + 5);
    let loaded = SnapshotChain::load(dir.path(), end).unwrap().unwrap();
    assert_eq!((loaded.at, &loaded.states), (end, &states));
    assert_eq!(loaded.chain.end(), Some(end));
}

#[test]
fn a_broken_chain_is_read_up_to_the_break_and_no_further() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = linked(dir.path(), 50, 6);
    let path = |to: i64| dir.path().join(delta_file_name(Offset(to)));
    // (damage to the delta 52..53) -> where the chain read ends
    type Case = (&'static str, fn(&Path), i64);
    let cases: &[Case] = &[
        ("intact", |_| {}, 56),
        (
            "a corrupt delta",
            |p| std::fs::write(p, "2\ndelta 1 2 3 0\ncrc32c 5\n").unwrap(),
            52,
        ),
        ("a missing delta", |p| std::fs::remove_file(p).unwrap(), 52),
        ("an empty delta", |p| std::fs::write(p, "").unwrap(), 52),
    ];
    for (name, damage, want_at) in cases {
        let copy = tempfile::tempdir().unwrap();
        for f in files(dir.path()) {
            std::fs::copy(dir.path().join(&f), copy.path().join(&f)).unwrap();
        }
        damage(&copy.path().join(delta_file_name(Offset(53))));
        let loaded = SnapshotChain::load(copy.path(), Offset(56))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.at, Offset(*want_at), "{name}");
        assert_eq!(
            loaded.chain.end().is_some(),
            *want_at == 56,
            "{name}: sound"
        );
    }
    assert!(path(53).exists());
    // Without its full snapshot nothing is read.
    std::fs::remove_file(dir.path().join(FULL_FILE)).unwrap();
    assert!(
        SnapshotChain::load(dir.path(), Offset(56))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_delta_of_another_chain_is_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = linked(dir.path(), 5, 3);
    let stale = std::fs::read(dir.path().join(delta_file_name(Offset(8)))).unwrap();
    // A new chain from offset 6 (say, after a truncation), then the old delta 6..7
    // put back beside it, where a crash between the new full snapshot and the removal
    // of the old deltas would leave it.
    let mut states = ProducerStates::default();
    states.record(&header(9, 0, 5));
    let mut chain = SnapshotChain::none(dir.path());
    chain.link(&mut states, Offset(6), false).unwrap();
    assert_eq!(files(dir.path()), [FULL_FILE]);
    std::fs::write(dir.path().join(delta_file_name(Offset(8))), stale).unwrap();
    let loaded = SnapshotChain::load(dir.path(), Offset(8)).unwrap().unwrap();
    assert_eq!(loaded.at, Offset(6));
    assert_eq!(loaded.states.entries().len(), 1);
    assert_eq!(
        loaded.chain.end(),
        None,
        "unsound: the next link starts anew"
    );
}
