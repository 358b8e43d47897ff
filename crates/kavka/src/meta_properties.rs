//! A data dir's identity, as Kafka's `meta.properties`: `version`, `node.id`,
//! `directory.id` (made when the dir is initialised) and `cluster.id` (recorded once the
//! node has seen its cluster's).
//!
//! Invariants: a data dir serves one node id of one cluster for its whole life; a
//! controller whose data dir was initialised never starts without its Raft store (it
//! would have forgotten the votes it cast, and could vote twice in a term). The decisions
//! are pure ([`decide`], [`check_cluster`]); reading and writing the file are at the edges.
//! Must not depend on the controller or broker crates' internals: it sees paths only.

use anyhow::Context;
use std::path::Path;

pub const FILE: &str = "meta.properties";

/// What `meta.properties` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub node_id: i32,
    pub directory_id: uuid::Uuid,
    pub cluster_id: Option<String>,
}

impl MetaProperties {
    /// Parses Kafka's Java-properties form (`key=value` lines, `#` comments).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut node_id = None;
        let mut directory_id = None;
        let mut cluster_id = None;
        let mut version = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line '{line}' is not key=value"))?;
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "node.id" => {
                    node_id = Some(
                        v.parse::<i32>()
                            .map_err(|_| format!("node.id '{v}' is not a node id"))?,
                    )
                }
                "directory.id" => {
                    directory_id = Some(
                        v.parse::<uuid::Uuid>()
                            .map_err(|_| format!("directory.id '{v}' is not a UUID"))?,
                    )
                }
                "cluster.id" if !v.is_empty() => cluster_id = Some(v.to_string()),
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(format!(
                "version {} is not one this kavka reads (1)",
                version.as_deref().unwrap_or("(none)")
            ));
        }
        Ok(Self {
            node_id: node_id.ok_or("node.id is missing")?,
            directory_id: directory_id.ok_or("directory.id is missing")?,
            cluster_id,
        })
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "#\n# Written by kavka when this data dir was initialised: do not copy it to another node.\nversion=1\nnode.id={}\ndirectory.id={}\n",
            self.node_id, self.directory_id
        );
        if let Some(c) = &self.cluster_id {
            s.push_str(&format!("cluster.id={c}\n"));
        }
        s
    }
}

/// What a starting node finds in its data dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub meta: Option<&'a MetaProperties>,
    /// The controller's Raft store is there.
    pub has_raft_store: bool,
}

/// What to do at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write a new identity (a new data dir, or one from before `meta.properties`), once
    /// the controller's store exists (a crash before must not leave an identity without it).
    Initialise,
    /// The identity holds.
    Keep,
}

/// The start-up check: `Err` says why this node must not start on this data dir.
pub fn decide(found: Found<'_>, node_id: i32, controller: bool) -> Result<Decision, String> {
    let Some(meta) = found.meta else {
        return Ok(Decision::Initialise);
    };
    if meta.node_id != node_id {
        return Err(format!(
            "this data dir belongs to node {} ({FILE}), not node {node_id}: start node {} on \
             it, or give node {node_id} a data dir of its own",
            meta.node_id, meta.node_id
        ));
    }
    if controller && !found.has_raft_store {
        return Err(format!(
            "node {node_id} is a controller voter and its data dir was initialised (directory \
             {}), but its Raft store is gone: started like this it would have forgotten the \
             votes it cast and could vote twice in a term. (If this data dir was a broker's \
             and the node now has the controller role, that is a new voter: give it an \
             empty data dir.) Restore the store from a backup; \
             or, to replace this voter for good, remove the whole data dir only once the \
             other voters have a quorum without it (until `kavka quorum add-voter` exists, a \
             lost voter cannot rejoin a quorum of three safely: recreate the cluster)",
            meta.directory_id
        ));
    }
    Ok(Decision::Keep)
}

/// Once the node knows its cluster's id: `Ok(true)` when it is to be recorded.
pub fn check_cluster(meta: &MetaProperties, cluster_id: &str) -> Result<bool, String> {
    match &meta.cluster_id {
        None => Ok(true),
        Some(c) if c == cluster_id => Ok(false),
        Some(c) => Err(format!(
            "this data dir belongs to cluster {c} ({FILE}), but the controller quorum is \
             cluster {cluster_id}: was the data dir or --controller-voters copied from \
             another cluster?"
        )),
    }
}

/// Reads `meta.properties` in `dir` (`None` when there is none).
pub fn read(dir: &Path) -> anyhow::Result<Option<MetaProperties>> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MetaProperties::parse(&text)
            .map(Some)
            .map_err(|why| anyhow::anyhow!("{}: {why}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `meta.properties` in `dir` durably (a new file, synced, renamed into place).
pub fn write(dir: &Path, meta: &MetaProperties) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(meta.render().as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Whether `dir` holds anything besides the lock file and the identity.
pub fn has_data(dir: &Path) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .file_name();
        let name = name.to_string_lossy();
        if name != ".lock" && !name.starts_with(FILE) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(node_id: i32, cluster: Option<&str>) -> MetaProperties {
        MetaProperties {
            node_id,
            directory_id: uuid::Uuid::from_u128(7),
            cluster_id: cluster.map(String::from),
        }
    }

    #[test]
    fn round_trips_and_reads_kafkas_form() {
        for m in [
            meta(3, None),
            meta(1, Some("c6d791c7-40fe-4d2a-9259-dcb131d88b8f")),
        ] {
            assert_eq!(MetaProperties::parse(&m.render()).unwrap(), m);
        }
        let kafka = "#\n#Thu Dec 03 06:00:00 UTC 2026\nnode.id=2\ndirectory.id=00000000-0000-0000-0000-000000000007\nversion=1\ncluster.id=abc\n";
        assert_eq!(MetaProperties::parse(kafka).unwrap(), meta(2, Some("abc")));
        for (bad, why) in [
            (
                "node.id=1\ndirectory.id=00000000-0000-0000-0000-000000000007\n",
                "version (none)",
            ),
            ("version=0\nnode.id=1\n", "version 0"),
            ("version=1\nnode.id=x\n", "node.id 'x'"),
            ("version=1\nnode.id=1\n", "directory.id is missing"),
            ("version=1\ngarbage\n", "not key=value"),
        ] {
            let e = MetaProperties::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn start_decisions() {
        let m1 = meta(1, None);
        let found = |meta, has_raft_store| Found {
            meta,
            has_raft_store,
        };
        // (found, node id, controller) -> decision or the words of the refusal
        let cases: Vec<(Found<'_>, i32, bool, Result<Decision, &str>)> = vec![
            (found(None, false), 1, true, Ok(Decision::Initialise)),
            (found(None, true), 1, true, Ok(Decision::Initialise)),
            (found(Some(&m1), true), 1, true, Ok(Decision::Keep)),
            (found(Some(&m1), false), 1, false, Ok(Decision::Keep)),
            (found(Some(&m1), true), 2, true, Err("belongs to node 1")),
            (found(Some(&m1), false), 2, false, Err("belongs to node 1")),
            (found(Some(&m1), false), 1, true, Err("Raft store is gone")),
        ];
        for (f, node, controller, want) in cases {
            let got = decide(f, node, controller);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{f:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{f:?}: {e}"),
                _ => panic!("{f:?} node {node}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cluster_ids() {
        assert_eq!(check_cluster(&meta(1, None), "a"), Ok(true));
        assert_eq!(check_cluster(&meta(1, Some("a")), "a"), Ok(false));
        let e = check_cluster(&meta(1, Some("a")), "b").unwrap_err();
        assert!(
            e.contains("belongs to cluster a") && e.contains("cluster b"),
            "{e}"
        );
    }

    #[test]
    fn files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(".lock"), "").unwrap();
        assert!(!has_data(dir.path()).unwrap());
        let m = meta(4, Some("x"));
        write(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(m));
        assert!(!has_data(dir.path()).unwrap());
        std::fs::create_dir(dir.path().join("orders-0")).unwrap();
        assert!(has_data(dir.path()).unwrap());
        std::fs::write(dir.path().join(FILE), "version=1\nnode.id=oops\n").unwrap();
        let e = format!("{:#}", read(dir.path()).unwrap_err());
        assert!(
            e.contains("meta.properties") && e.contains("node.id 'oops'"),
            "{e}"
        );
    }
}
