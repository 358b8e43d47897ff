//! Converts a controller data dir written by the JSON format (kavka before binary
//! metadata) to the binary encoding, in place, when the store is opened.
//!
//! Each value is told apart by its first byte (JSON starts with `{`, `[` or `n`; the binary
//! encoding with its format byte), so a migration interrupted by a crash resumes where it
//! stopped. Each tree is rewritten in one sled batch and flushed before openraft reads
//! anything. A JSON value that does not parse stops the node with a message naming the data
//! dir, the value and what to do; nothing is half-converted.

use super::log_store::{COMMITTED, LAST_PURGED, LOG_TREE, META_TREE, VOTE};
use super::sled_err;
use super::state_machine::{SNAPSHOT_DATA, SNAPSHOT_META, SNAPSHOT_TREE};
use crate::raft::codec;
use crate::types::TypeConfig;
use kavka_metadata::MetadataRecord;
use kavka_metadata::codec::is_legacy_json;
use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, VoteOf};
use std::io;
use std::path::Path;

/// A snapshot's data in the JSON format.
#[derive(serde::Deserialize)]
struct JsonSnapshotData {
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// Which binary value a JSON value of `tree`/`key` becomes.
fn convert(tree: &str, key: &[u8], json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    Ok(match (tree, key) {
        (LOG_TREE, _) => codec::encode_entry(&serde_json::from_slice::<EntryOf<TypeConfig>>(json)?),
        (META_TREE, VOTE) => {
            codec::encode_vote(&serde_json::from_slice::<VoteOf<TypeConfig>>(json)?)
        }
        (META_TREE, COMMITTED) => codec::encode_log_id(
            serde_json::from_slice::<Option<LogIdOf<TypeConfig>>>(json)?.as_ref(),
        ),
        (META_TREE, LAST_PURGED) => {
            codec::encode_log_id(Some(&serde_json::from_slice::<LogIdOf<TypeConfig>>(json)?))
        }
        (SNAPSHOT_TREE, SNAPSHOT_META) => codec::encode_snapshot_meta(&serde_json::from_slice::<
            SnapshotMetaOf<TypeConfig>,
        >(json)?),
        (SNAPSHOT_TREE, SNAPSHOT_DATA) => {
            let d: JsonSnapshotData = serde_json::from_slice(json)?;
            kavka_metadata::codec::encode_snapshot(d.offset, &d.records)
        }
        // Not a key this store writes: left as it is.
        _ => json.to_vec(),
    })
}

/// Converts every JSON value in the store to the binary encoding; returns how many.
pub(crate) fn json_to_binary(db: &sled::Db, dir: &Path) -> io::Result<usize> {
    let mut converted = 0;
    for name in [LOG_TREE, META_TREE, SNAPSHOT_TREE] {
        let tree = db.open_tree(name).map_err(sled_err)?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in tree.iter() {
            let (k, v) = item.map_err(sled_err)?;
            if !is_legacy_json(&v) {
                continue;
            }
            let bytes = convert(name, &k, &v).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "cannot convert the controller metadata store in {} from the JSON format: the {name} value {} does not parse ({e}); restore this data dir from a backup, or move it away so this controller rejoins the quorum empty and catches up from the others",
                        dir.display(),
                        String::from_utf8_lossy(&k).escape_debug(),
                    ),
                )
            })?;
            batch.insert(k, bytes);
            n += 1;
        }
        if n > 0 {
            tree.apply_batch(batch).map_err(sled_err)?;
            db.flush().map_err(sled_err)?;
            converted += n;
        }
    }
    if converted > 0 {
        tracing::info!(
            dir = %dir.display(),
            values = converted,
            "converted the controller metadata store from JSON to the binary format"
        );
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::raft::codec::MembershipOf;
    use crate::types::{MetadataRequest, VoterNode};
    use kavka_metadata::{MetadataImage, TopicId, TopicRecord};
    use openraft::alias::{CommittedLeaderIdOf, StoredMembershipOf};
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{EntryPayload, LogId, RaftLogReader};
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn log_id(index: u64) -> LogIdOf<TypeConfig> {
        LogId::new(
            CommittedLeaderIdOf::<TypeConfig> {
                term: 1,
                node_id: 1,
            },
            index,
        )
    }

    fn topic() -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: kavka_model::TopicName::new("orders").unwrap(),
            topic_id: TopicId(uuid::Uuid::from_u128(7)),
        })
    }

    #[derive(Serialize)]
    struct OldSnapshotData {
        offset: i64,
        records: Vec<MetadataRecord>,
    }

    /// A data dir as the JSON format left it: a snapshot at 2, entries 3 and 4, a vote.
    fn write_json_store(dir: &Path) -> MetadataImage {
        let db = sled::open(dir).unwrap();
        let json = |v: &dyn erased::Json| v.bytes();
        let log = db.open_tree(LOG_TREE).unwrap();
        let membership = MembershipOf::<TypeConfig>::new(
            vec![[1].into()],
            BTreeMap::from([(1, VoterNode::new("a:1"))]),
        )
        .unwrap();
        let entries: Vec<EntryOf<TypeConfig>> = vec![
            EntryOf::<TypeConfig> {
                log_id: log_id(3),
                payload: EntryPayload::Normal(MetadataRequest {
                    records: vec![topic()],
                }),
            },
            EntryOf::<TypeConfig> {
                log_id: log_id(4),
                payload: EntryPayload::Membership(membership.clone()),
            },
        ];
        for e in &entries {
            log.insert(e.log_id.index.to_be_bytes(), json(e)).unwrap();
        }
        let meta = db.open_tree(META_TREE).unwrap();
        meta.insert(VOTE, json(&VoteOf::<TypeConfig>::new_committed(1, 1)))
            .unwrap();
        meta.insert(COMMITTED, json(&Some(log_id(4)))).unwrap();
        meta.insert(LAST_PURGED, json(&log_id(2))).unwrap();
        let snap = db.open_tree(SNAPSHOT_TREE).unwrap();
        let records = vec![MetadataRecord::Cluster {
            cluster_id: "c1".into(),
        }];
        let sm = SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(log_id(2)),
            last_membership: StoredMembershipOf::<TypeConfig>::new(Some(log_id(1)), membership),
        };
        snap.insert(SNAPSHOT_META, json(&sm)).unwrap();
        snap.insert(
            SNAPSHOT_DATA,
            json(&OldSnapshotData {
                offset: 2,
                records: records.clone(),
            }),
        )
        .unwrap();
        db.flush().unwrap();
        MetadataImage::from_snapshot(2, &records).unwrap()
    }

    /// Serializes anything as JSON, as the old store did (a tiny object-safe shim).
    mod erased {
        pub trait Json {
            fn bytes(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize> Json for T {
            fn bytes(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap()
            }
        }
    }

    #[tokio::test]
    async fn a_json_data_dir_is_converted_on_open_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let image = write_json_store(dir.path());
        let (mut log, mut sm) = crate::raft::open(dir.path()).unwrap();
        assert_eq!(sm.image().digest(), image.digest());
        assert_eq!(sm.image().offset, 2);
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(2)));
        assert_eq!(membership.log_id(), &Some(log_id(1)));
        let entries = log.try_get_log_entries(3..=4).await.unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            matches!(&entries[0].payload, EntryPayload::Normal(r) if r.records == vec![topic()])
        );
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2)));
        assert_eq!(state.last_log_id, Some(log_id(4)));
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(VoteOf::<TypeConfig>::new_committed(1, 1))
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(4)));
        drop((log, sm));
    }

    #[test]
    fn converting_twice_changes_nothing_and_every_value_is_binary() {
        let dir = tempfile::tempdir().unwrap();
        write_json_store(dir.path());
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(json_to_binary(&db, dir.path()).unwrap(), 7);
        assert_eq!(json_to_binary(&db, dir.path()).unwrap(), 0);
        for name in [LOG_TREE, META_TREE, SNAPSHOT_TREE] {
            for item in db.open_tree(name).unwrap().iter() {
                let (_, v) = item.unwrap();
                assert_eq!(v[0], kavka_metadata::codec::FORMAT_V1, "{name}");
            }
        }
    }

    #[test]
    fn json_that_does_not_parse_is_refused_naming_the_dir_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        db.open_tree(META_TREE)
            .unwrap()
            .insert(VOTE, &b"{\"leader_id\": garbage"[..])
            .unwrap();
        let e = json_to_binary(&db, dir.path()).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(
            e.contains("vote") && e.contains("restore this data dir"),
            "{e}"
        );
    }
}
