//! Who may speak Raft to this controller: only the configured voters and the members of
//! the quorum's membership (voters added at run time), and, when the
//! quorum has a shared secret (`--controller-secret-file`), only callers that present it
//! on every call; a voter of another cluster (its cluster id differs, as Kafka's
//! INCONSISTENT_CLUSTER_ID) is refused too. Anything else is refused before it reaches
//! openraft, and counted.
//!
//! Invariants: a forged Vote or AppendEntries from a caller without the secret, or
//! claiming a node id outside the voter set, changes nothing (no term, no vote, no log).
//! Pure decisions; depends on no I/O.

use crate::types::NodeId;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The gRPC metadata key carrying the quorum's shared secret.
pub const SECRET_HEADER: &str = kavka_proto::auth::CONTROLLER_SECRET_HEADER;

/// The gRPC metadata key carrying the caller's cluster id, once it knows one.
pub const CLUSTER_ID_HEADER: &str = "kavka-cluster-id";

/// The gRPC metadata key carrying the caller's directory id (KIP-853), when it has one;
/// on an answer, the answering controller's.
pub const DIRECTORY_ID_HEADER: &str = "kavka-directory-id";

/// The gRPC metadata key carrying the directory id the caller's membership records for
/// the controller it calls: a controller that is not that one (an emptied voter) learns
/// it on the first call, before it can grant a vote.
pub const EXPECTED_DIRECTORY_ID_HEADER: &str = "kavka-expected-directory-id";

/// The quorum's shared secret: printable ASCII (it travels in a gRPC header), not empty.
#[derive(Clone, PartialEq, Eq)]
pub struct ControllerSecret(Arc<str>);

impl std::fmt::Debug for ControllerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControllerSecret(..)")
    }
}

impl ControllerSecret {
    /// The secret from a file's text (surrounding whitespace trimmed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("the controller secret is empty".into());
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the controller secret must be printable ASCII without spaces".into());
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The interceptor that presents this secret on a client's calls.
    pub fn presenter(secret: Option<&Self>) -> kavka_proto::auth::PresentSecret {
        kavka_proto::auth::PresentSecret(secret.map(|s| std::sync::Arc::clone(&s.0)))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, presented: &str) -> bool {
        kavka_proto::auth::secret_matches(&self.0, presented)
    }
}

/// The check every incoming Raft call passes.
#[derive(Debug, Default)]
pub struct PeerPolicy {
    voters: BTreeSet<NodeId>,
    secret: Option<ControllerSecret>,
    refused: AtomicU64,
}

impl PeerPolicy {
    pub fn new(voters: impl IntoIterator<Item = NodeId>, secret: Option<ControllerSecret>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            secret,
            refused: AtomicU64::new(0),
        }
    }

    /// The secret check, on the call's header alone (before its body is decoded).
    pub fn check_secret(&self, presented: Option<&str>) -> Result<(), String> {
        match (&self.secret, presented) {
            (None, _) => Ok(()),
            (Some(_), None) => Err("no controller secret presented".into()),
            (Some(s), Some(p)) if s.matches(p) => Ok(()),
            (Some(_), Some(_)) => Err("wrong controller secret".into()),
        }
    }

    /// The cluster check (Kafka's INCONSISTENT_CLUSTER_ID): a caller and a controller
    /// that both know their cluster ids must agree. Before the quorum has committed one
    /// (it is chosen by the first active controller) there is nothing to compare.
    pub fn check_cluster(ours: Option<&str>, presented: Option<&str>) -> Result<(), String> {
        match (ours, presented) {
            (Some(ours), Some(theirs)) if ours != theirs => Err(format!(
                "INCONSISTENT_CLUSTER_ID: the caller is in cluster {theirs}, this controller in {ours}"
            )),
            _ => Ok(()),
        }
    }

    /// The sender check: the node id a Vote, AppendEntries or snapshot speaks for must
    /// be a static voter or a `member` of the quorum's membership as this node knows it.
    pub fn check_sender(&self, sender: NodeId, member: bool) -> Result<(), String> {
        if member || self.voters.contains(&sender) {
            Ok(())
        } else {
            Err(format!(
                "node {sender} is not a controller voter ({:?})",
                self.voters
            ))
        }
    }

    /// Counts a refused call; returns the count so far.
    pub fn refuse(&self) -> u64 {
        self.refused.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let secret = ControllerSecret::parse("s3cret\n").unwrap();
        let open = PeerPolicy::new([1, 2, 3], None);
        let closed = PeerPolicy::new([1, 2, 3], Some(secret));
        // (policy, presented secret, sender, a member of the membership) -> allowed
        let cases: &[(&PeerPolicy, Option<&str>, NodeId, bool, bool)] = &[
            (&open, None, 2, false, true),
            (&open, Some("anything"), 3, false, true),
            (&open, None, 4, false, false),
            // A voter added at run time.
            (&open, None, 4, true, true),
            (&closed, Some("s3cret"), 1, false, true),
            (&closed, None, 1, false, false),
            (&closed, Some("s3cre"), 1, false, false),
            (&closed, Some("s3cret!"), 1, false, false),
            (&closed, Some("S3cret"), 1, false, false),
            (&closed, Some("s3cret"), 99, false, false),
            (&closed, Some("s3cret"), 99, true, true),
            (&closed, None, 99, true, false),
        ];
        for (policy, presented, sender, member, allowed) in cases {
            let verdict = policy
                .check_secret(*presented)
                .and_then(|()| policy.check_sender(*sender, *member));
            assert_eq!(
                verdict.is_ok(),
                *allowed,
                "{presented:?} as {sender}: {verdict:?}"
            );
        }
    }

    #[test]
    fn cluster_ids_must_agree_once_both_are_known() {
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, None, true),
            (Some("a"), None, true),
            (None, Some("b"), true),
            (Some("a"), Some("a"), true),
            (Some("a"), Some("b"), false),
        ];
        for &(ours, theirs, allowed) in cases {
            let verdict = PeerPolicy::check_cluster(ours, theirs);
            assert_eq!(verdict.is_ok(), allowed, "{ours:?} vs {theirs:?}");
        }
        let why = PeerPolicy::check_cluster(Some("a"), Some("b")).unwrap_err();
        assert!(why.starts_with("INCONSISTENT_CLUSTER_ID"), "{why}");
    }

    #[test]
    fn secrets_are_printable_and_not_empty() {
        assert!(ControllerSecret::parse("  \n").is_err());
        assert!(ControllerSecret::parse("two words").is_err());
        assert!(ControllerSecret::parse("tab\there").is_err());
        assert_eq!(ControllerSecret::parse(" k3y\n").unwrap().as_str(), "k3y");
        assert_eq!(
            format!("{:?}", ControllerSecret::parse("k3y").unwrap()),
            "ControllerSecret(..)"
        );
    }

    #[test]
    fn refusals_are_counted() {
        let p = PeerPolicy::new([1], None);
        assert_eq!((p.refuse(), p.refuse(), p.refused()), (1, 2, 2));
    }
}
