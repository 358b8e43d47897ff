//! TLS on the gRPC listeners, with certificates made by `deploy/certs.sh`: a three-node
//! cluster whose nodes speak mutual TLS to each other (Raft, broker sessions, replica
//! fetches; `security_inter_broker_protocol=SSL`) and TLS to clients
//! (`grpc_security_protocol=SSL`) replicates a topic, loses its partition leader and
//! serves the data from the new one, all through the CLI with `--tls-ca`; a plaintext
//! CLI and one that does not trust the CA fail with errors that say what to do; a client
//! port with `ssl_client_auth=required` wants a client certificate; a profile carries
//! the TLS flags and the user to authenticate as; a node whose certificate another CA
//! signed cannot join, and its peers say so in one log line; a renewed keystore is
//! served (gRPC and Kafka listeners) without a restart, and a broken one leaves the
//! previous certificate in use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::kafka_clients::root;
use kavka_harness::{Cluster, Node, NodeOptions, free_port, kavka_bin, run_cli, wait_until};
use kavka_tls::{ClientTlsFiles, Transport};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// A CA and certificates in `dir/name` (ca.pem, server.pem, client.pem + client.key).
fn certs(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let made = Command::new("bash")
        .arg(root().join("deploy/certs.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    out
}

fn s(p: PathBuf) -> String {
    p.display().to_string()
}

/// The server flags of a node with TLS everywhere gRPC goes.
fn tls_flags(certs: &Path) -> Vec<String> {
    vec![
        "--grpc-security-protocol".into(),
        "SSL".into(),
        "--security-inter-broker-protocol".into(),
        "SSL".into(),
        "--ssl-keystore-location".into(),
        s(certs.join("server.pem")),
        "--ssl-truststore-location".into(),
        s(certs.join("ca.pem")),
    ]
}

fn trusting(certs: &Path) -> Transport {
    Transport::tls(&ClientTlsFiles {
        ca: Some(certs.join("ca.pem")),
        ..ClientTlsFiles::default()
    })
    .unwrap()
}

/// The partition's leader and ISR as the node at `bootstrap` sees them.
async fn partition(bootstrap: &str, transport: &Transport, topic: &str) -> Option<(i32, Vec<i32>)> {
    let mut c = kavka_client::Client::connect_with(bootstrap, transport)
        .await
        .ok()?;
    let p = c
        .describe_topic(topic)
        .await
        .ok()?
        .partitions
        .into_iter()
        .next()?;
    Some((p.leader, p.isr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_mutual_tls_replicates_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path(), "certs");
    let ca = s(certs.join("ca.pem"));
    let flags = tls_flags(&certs);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let transport = trusting(&certs);
    let mut cluster = Cluster::start_with(
        &[
            "controller,broker",
            "controller,broker",
            "controller,broker",
        ],
        &flags,
        transport.clone(),
    )
    .await
    .unwrap();
    let bootstrap = cluster.bootstrap();
    let tls = ["--tls-ca", ca.as_str()];
    let cli = |args: &[&str], stdin: &[u8]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&tls);
        run_cli(&bootstrap, &all, stdin)
    };
    ok(cli(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ],
        b"",
    ));
    ok(cli(
        &["produce", "orders", "--acks", "all", "-q"],
        b"a\nb\nc\n",
    ));
    // Replicated over TLS: every replica in the ISR.
    wait_until("all three replicas in the ISR", DEADLINE, || async {
        partition(&bootstrap, &transport, "orders")
            .await
            .is_some_and(|(_, isr)| isr.len() == 3)
    })
    .await
    .unwrap();
    let out = ok(cli(
        &[
            "consume",
            "orders",
            "--from-beginning",
            "-n",
            "3",
            "--format",
            "%v",
        ],
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b", "c"], "{out}");

    // The controller listener wants a certificate: a plaintext peer gets nothing.
    let controller = cluster.node(1).controller_addr().unwrap();
    let plain = Transport::plaintext().endpoint(&controller).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(plain.connect_lazy());
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        health.check(tonic_health::pb::HealthCheckRequest::default()),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "{refused:?}");
    // Nor does a TLS client without a node's certificate.
    let no_cert = transport.endpoint(&controller).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(no_cert.connect_lazy());
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        health.check(tonic_health::pb::HealthCheckRequest::default()),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "{refused:?}");

    // Kill the leader: a new one is elected (the quorum and the sessions run over mutual
    // TLS) and the data is still there.
    let (leader, _) = partition(&bootstrap, &transport, "orders").await.unwrap();
    cluster.node(leader).kill();
    let survivors: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(Node::addr)
        .collect();
    let survivors = survivors.join(",");
    wait_until("a new leader", DEADLINE, || async {
        partition(&survivors, &transport, "orders")
            .await
            .is_some_and(|(l, _)| l > 0 && l != leader)
    })
    .await
    .unwrap();
    let out = ok(run_cli(
        &survivors,
        &[
            "consume",
            "orders",
            "--from-beginning",
            "-n",
            "3",
            "--format",
            "%v",
            "--tls-ca",
            &ca,
        ],
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b", "c"], "{out}");
    ok(run_cli(
        &survivors,
        &["produce", "orders", "--acks", "all", "-q", "--tls-ca", &ca],
        b"d\n",
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_tls_or_trust_are_told_what_to_do_and_profiles_carry_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path(), "certs");
    let ca = s(certs.join("ca.pem"));
    let mut args = tls_flags(&certs);
    args.extend(["--ssl-client-auth".into(), "required".into()]);
    let client_files = ClientTlsFiles {
        ca: Some(certs.join("ca.pem")),
        cert: Some(certs.join("client.pem")),
        key: Some(certs.join("client.key")),
        server_name: None,
    };
    let node = Node::start(NodeOptions {
        args,
        transport: Transport::tls(&client_files).unwrap(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let addr = node.addr();
    let (cert, key) = (s(certs.join("client.pem")), s(certs.join("client.key")));
    let mtls = [
        "--tls-ca",
        ca.as_str(),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];

    // Plaintext on a TLS port: the error says to use TLS; the node says why it closed.
    fails_with(run_cli(&addr, &["topic", "list"], b""), "--tls");
    wait_until("the node's handshake warning", DEADLINE, || async {
        node.log().contains("TLS handshake failed")
    })
    .await
    .unwrap();
    // TLS without the CA: the error says the certificate is not trusted.
    fails_with(
        run_cli(
            &addr,
            &[
                "topic",
                "list",
                "--tls",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            b"",
        ),
        "--tls-ca",
    );
    // A CA file that is not there is named.
    let missing = s(dir.path().join("nope.pem"));
    fails_with(
        run_cli(&addr, &["topic", "list", "--tls-ca", &missing], b""),
        "nope.pem",
    );
    // ssl_client_auth=required: no client certificate, no service.
    fails_with(
        run_cli(&addr, &["topic", "list", "--tls-ca", &ca], b""),
        "--tls-cert",
    );
    let mut all = vec!["topic", "create", "t1", "--partitions", "1"];
    all.extend_from_slice(&mtls);
    ok(run_cli(&addr, &all, b""));

    // A profile keeps the flags, and the user to authenticate as: the CLI works without
    // them.
    let mut all = vec!["user", "create", "alice", "--password-stdin"];
    all.extend_from_slice(&mtls);
    ok(run_cli(&addr, &all, b"pa55\n"));
    let config = dir.path().join("config");
    let kavka = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        let mut child = Command::new(kavka_bin())
            .args(args)
            .env("KAVKA_CONFIG_DIR", &config)
            .env_remove("KAVKA_BOOTSTRAP")
            .env_remove("KAVKA_PROFILE")
            .env_remove("KAVKA_USER")
            .env("KAVKA_PASSWORD", "pa55")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let mut create = vec![
        "profile",
        "create",
        "secure",
        "--bootstrap",
        addr.as_str(),
        "--user",
        "alice",
    ];
    create.extend_from_slice(&mtls);
    ok(kavka(&create, b""));
    ok(kavka(
        &["profile", "create", "plain", "--bootstrap", addr.as_str()],
        b"",
    ));
    let listed = ok(kavka(&["profile", "list"], b""));
    assert!(
        listed.contains("* ") && listed.contains("plain"),
        "{listed}"
    );
    // The latest profile created is the current one: plaintext, refused.
    fails_with(kavka(&["topic", "list"], b""), "--tls");
    ok(kavka(&["profile", "use", "secure"], b""));
    let shown = ok(kavka(&["profile", "show"], b""));
    assert!(
        shown.contains("user = \"alice\"") && shown.contains("ca.pem"),
        "{shown}"
    );
    ok(kavka(&["produce", "t1", "-q"], b"x\ny\n"));
    let out = ok(kavka(
        &[
            "consume",
            "t1",
            "--from-beginning",
            "-n",
            "2",
            "--format",
            "%v",
        ],
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["x", "y"], "{out}");
    // --profile picks another for one command.
    fails_with(
        kavka(&["topic", "list", "--profile", "plain"], b""),
        "--tls",
    );
    fails_with(
        kavka(&["topic", "list", "--profile", "nope"], b""),
        "no profile 'nope'",
    );
    ok(kavka(&["profile", "delete", "secure"], b""));
    fails_with(
        kavka(&["profile", "use", "secure"], b""),
        "no profile 'secure'",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_ca_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "ours");
    let theirs = certs(dir.path(), "theirs");
    let controller = free_port().unwrap();
    let voters = format!("1@127.0.0.1:{controller}");
    let first = Node::start(NodeOptions {
        node_id: Some(1),
        voters: Some(voters.clone()),
        args: tls_flags(&ours),
        transport: trusting(&ours),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    // A broker whose certificate another CA signed, trusting only that CA.
    let stranger = Node::start_unready(NodeOptions {
        node_id: Some(2),
        roles: Some("broker".into()),
        voters: Some(voters),
        args: tls_flags(&theirs),
        transport: trusting(&theirs),
        ..NodeOptions::default()
    })
    .unwrap();
    wait_until("the controller's refusal", DEADLINE, || async {
        first.log().lines().any(|l| {
            l.contains("TLS handshake failed")
                && l.contains("listener=\"controller\"")
                && l.contains("refused this listener's certificate")
        })
    })
    .await
    .unwrap();
    wait_until("the stranger's certificate error", DEADLINE, || async {
        stranger.log().contains("certificate")
    })
    .await
    .unwrap();
    // Not registered: the cluster has one broker.
    let mut c = first.client().await.unwrap();
    let brokers = c.metadata(Vec::new()).await.unwrap().brokers;
    assert_eq!(brokers.iter().map(|b| b.id).collect::<Vec<_>>(), [1]);
    // One warning per peer, not one per attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warnings = first
        .log()
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert!(warnings <= 2, "{warnings} warnings:\n{}", first.log());
}

/// Replaces `path` with `contents` at once (as a certificate renewal tool does).
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_keystore_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (certs(dir.path(), "a"), certs(dir.path(), "b"));
    let keystore = dir.path().join("keystore.pem");
    replace(&keystore, &std::fs::read(a.join("server.pem")).unwrap());
    let kafka = format!("127.0.0.1:{}", free_port().unwrap());
    let node = Node::start(NodeOptions {
        args: vec![
            "--grpc-security-protocol".into(),
            "SSL".into(),
            "--ssl-keystore-location".into(),
            s(keystore.clone()),
            "--ssl-truststore-location".into(),
            s(a.join("ca.pem")),
            "--kafka-listeners".into(),
            format!("SSL://{kafka}"),
        ],
        transport: trusting(&a),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let addr = node.addr();
    let (ca_a, ca_b) = (s(a.join("ca.pem")), s(b.join("ca.pem")));
    let grpc = |ca: &str| run_cli(&addr, &["topic", "list", "--tls-ca", ca], b"");
    let kcat = |ca: &str| {
        kavka_harness::kafka_clients::bounded(
            30,
            "kcat",
            &[
                "-b",
                &kafka,
                "-X",
                "security.protocol=SSL",
                "-X",
                &format!("ssl.ca.location={ca}"),
                "-L",
                "-m",
                "5",
            ],
            b"",
        )
    };
    let has_kcat = Command::new("kcat").arg("-V").output().is_ok();
    ok(grpc(&ca_a));
    if has_kcat {
        ok(kcat(&ca_a));
    }

    // A broken keystore: the previous certificate stays, and the log says why.
    replace(&keystore, b"not a keystore\n");
    ok(grpc(&ca_a));
    wait_until("the refused keystore's warning", DEADLINE, || async {
        node.log().contains("keystore changed but cannot be used")
    })
    .await
    .unwrap();

    // A renewed one (here: of another CA) is served from the next connection on.
    replace(&keystore, &std::fs::read(b.join("server.pem")).unwrap());
    ok(grpc(&ca_b));
    fails_with(grpc(&ca_a), "not trusted");
    if has_kcat {
        ok(kcat(&ca_b));
        let out = kcat(&ca_a);
        assert!(!out.status.success(), "{out:?}");
    } else {
        kavka_harness::say_skipped(
            "a_renewed_keystore_is_served_without_a_restart (Kafka listener part)",
            "no kcat",
        );
    }
    assert!(
        node.log()
            .contains("keystore changed: serving its certificate")
    );
}
