//! Only the controller quorum's own voters, presenting its shared secret
//! (`--controller-secret-file`), may speak Raft, and only on the controller listener
//! (`--controller-listen`, the port the voter list names): the client port does not serve
//! Raft at all (nor broker sessions: of the controller's service it offers only the
//! quorum's status), and forged Vote and AppendEntries calls at the controller port, with no
//! secret, a wrong one, from a node id outside the voters, or from another cluster (its
//! cluster id differs), are refused and counted;
//! the quorum keeps its leader and term.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::raw_grpc::raw_unary;
use kavka_harness::{Cluster, run_cli, wait_until};
use kavka_proto::v1::RaftMessage;
use kavka_proto::v1::raft_service_client::RaftServiceClient;
use serde_json::{Value, json};
use std::time::Duration;

fn status(bootstrap: &str) -> (i64, i64) {
    let out = run_cli(bootstrap, &["quorum", "status", "-o", "json"], b"");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["leader_id"].as_i64().unwrap(),
        v["term"].as_i64().unwrap(),
    )
}

/// A Vote request from `candidate` for a term far ahead, as openraft encodes it.
fn forged_vote(candidate: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "vote": {"leader_id": {"term": 1_000_000, "node_id": candidate}, "committed": false},
        "last_log_id": {"leader_id": {"term": 1_000_000, "node_id": candidate}, "index": 1_000_000},
    }))
    .unwrap()
}

/// An empty AppendEntries from a leader `leader` of a term far ahead.
fn forged_append(leader: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "vote": {"leader_id": {"term": 1_000_000, "node_id": leader}, "committed": true},
        "prev_log_id": null,
        "entries": [],
        "leader_commit": null,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_raft_calls_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("controller-secret");
    let secret_arg = secret_file.display().to_string();
    // `kavka quorum create-secret` writes a random one, readable by its owner only, and
    // keeps a file that exists; one that holds no valid secret is named.
    let create = |file: &str| {
        let out = run_cli("127.0.0.1:1", &["quorum", "create-secret", file], b"");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = create(&secret_arg);
    assert!(code == Some(0) && out.contains("Created"), "{out} {err}");
    let made = std::fs::read_to_string(&secret_file).unwrap();
    assert!(made.trim().len() >= 32, "{made:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, out, _) = create(&secret_arg);
    assert!(code == Some(0) && out.contains("Kept"), "{out}");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), made);
    let bad = dir.path().join("bad-secret");
    std::fs::write(&bad, "two words\n").unwrap();
    let (code, _, err) = create(&bad.display().to_string());
    assert!(
        code != Some(0) && err.contains("bad-secret") && err.contains("printable"),
        "{err}"
    );
    // The quorum below runs on the secret it made; forged calls present it too.
    let the_secret = made.trim();
    // The three voters form a quorum while presenting the secret to each other.
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &["--controller-secret-file", &secret_arg],
    )
    .await
    .unwrap();
    let all = cluster.bootstrap();
    let before = status(&all);
    // The client port: no Raft there, whatever the call carries.
    let client_port = cluster.node(1).addr();
    let mut raft = RaftServiceClient::connect(format!("http://{client_port}"))
        .await
        .unwrap();
    for secret in [None, Some(the_secret)] {
        let mut r = tonic::Request::new(RaftMessage {
            json: forged_vote(2).into(),
        });
        if let Some(s) = secret {
            r.metadata_mut()
                .insert("kavka-controller-secret", s.parse().unwrap());
        }
        let status = raft.vote(r).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    }

    // Nor broker registrations, sessions or ISR changes: only the quorum's status.
    for method in [
        "/kavka.v1.ControllerService/RegisterBroker",
        "/kavka.v1.ControllerService/BrokerSession",
        "/kavka.v1.ControllerService/AlterPartition",
        "/kavka.v1.ControllerService/CreateTopics",
    ] {
        let refused = raw_unary(&client_port, method, Vec::new(), &[])
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::PermissionDenied,
            "{method}: {refused:?}"
        );
        assert!(
            refused.message().contains("controller listener"),
            "{refused:?}"
        );
    }

    // The controller port.
    let target = cluster.node(1).controller_addr().unwrap();
    assert_ne!(target, client_port);
    let mut raft = RaftServiceClient::connect(format!("http://{target}"))
        .await
        .unwrap();

    let call = |json: Vec<u8>, secret: Option<&str>| {
        let mut r = tonic::Request::new(RaftMessage { json: json.into() });
        if let Some(s) = secret {
            r.metadata_mut()
                .insert("kavka-controller-secret", s.parse().unwrap());
        }
        r
    };
    // (what, the call, whether it is a Vote rather than an AppendEntries)
    let cases: Vec<(&str, tonic::Request<RaftMessage>, bool)> = vec![
        ("vote without a secret", call(forged_vote(2), None), true),
        (
            "vote with a wrong secret",
            call(forged_vote(2), Some("guess")),
            true,
        ),
        (
            // Decoded (so the message is well formed) and refused for its sender.
            "vote from a node outside the voters",
            call(forged_vote(99), Some(the_secret)),
            true,
        ),
        (
            "append without a secret",
            call(forged_append(3), None),
            false,
        ),
        (
            "append from a node outside the voters",
            call(forged_append(42), Some(the_secret)),
            false,
        ),
    ];
    for (name, req, is_vote) in cases {
        let r = if is_vote {
            raft.vote(req).await
        } else {
            raft.append_entries(req).await
        };
        let status = r.expect_err(name);
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "{name}: {status:?}"
        );
    }
    // A voter of another cluster (its cluster id differs), with the secret and a voter's
    // id, is refused as Kafka's INCONSISTENT_CLUSTER_ID, once node 1 knows its cluster id.
    let controller = kavka_proto::v1::controller_service_client::ControllerServiceClient::connect(
        format!("http://{client_port}"),
    )
    .await
    .unwrap();
    wait_until(
        "node 1's quorum to know the cluster id",
        Duration::from_secs(60),
        || {
            let mut c = controller.clone();
            async move {
                c.quorum_status(kavka_proto::v1::QuorumStatusRequest { from_leader: false })
                    .await
                    .is_ok_and(|r| !r.into_inner().cluster_id.is_empty())
            }
        },
    )
    .await
    .unwrap();
    let mut other_cluster = call(forged_vote(2), Some(the_secret));
    other_cluster
        .metadata_mut()
        .insert("kavka-cluster-id", "another-cluster".parse().unwrap());
    let refused = raft.vote(other_cluster).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("INCONSISTENT_CLUSTER_ID"),
        "{refused:?}"
    );
    // Without the secret, a body is refused on the headers alone, before it is decoded:
    // bytes that are not even protobuf get PERMISSION_DENIED, not a decoding error.
    let refused = raw_unary(
        &target,
        "/kavka.v1.RaftService/AppendEntries",
        vec![0xff, 0xff, 0xff, 0xff, 0x0f],
        &[],
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // Broker sessions at the controller port present the secret too (the brokers of this
    // cluster do: they registered): a registration without it is refused.
    let refused = raw_unary(
        &target,
        "/kavka.v1.ControllerService/RegisterBroker",
        Vec::new(),
        &[],
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("no controller secret"),
        "{refused:?}"
    );

    // Nothing moved: no forged term was taken, an active controller leads. (An election
    // of its own, on a loaded machine, may change the leader and term: not a forged one.)
    let (leader, term) = status(&all);
    assert!(leader > 0, "no active controller");
    assert!(term >= before.1 && term < 1_000_000, "term {term}");
    let log = cluster.node(1).log();
    assert!(log.contains("refused a Raft call"), "{log}");
    assert!(log.contains("refused=8"), "every refusal counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_controller_secret_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (file, words) in [
        (
            empty.display().to_string(),
            "the controller secret is empty",
        ),
        (
            dir.path().join("missing").display().to_string(),
            "cannot read the controller secret file",
        ),
    ] {
        let out = std::process::Command::new(kavka_harness::kavka_bin())
            .args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--controller-secret-file", &file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(words), "{stderr}");
    }
}
