//! ACLs enforced on the Kafka protocol (Kafka's StandardAuthorizer, `super.users`,
//! `allow.everyone.if.no.acl.found` off): a matrix of allowed and denied operations per
//! principal with real clients (confluent-kafka's producer, consumer and admin client,
//! kcat), each denied one with Kafka's exact error; Metadata hides the topics a
//! principal may not describe; raw requests pin InitProducerId's rule (IDEMPOTENT_WRITE
//! on the cluster, or WRITE on some topic) and the anonymous principal of a plaintext
//! listener. The gRPC API (the `kavka` CLI) is checked the same way: the first users and
//! ACLs are made with the cluster secret, then each user sees and does what its ACLs
//! allow; anonymous calls and wrong passwords are refused; the console's API is off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use kavka_harness::cli_output::ok;
use kavka_harness::cli_output::{fails_with, stdout};
use kavka_harness::kafka_clients::{bounded, clients_or_skip};
use kavka_harness::{Cluster, Node, NodeOptions, free_port, run_cli_with_env};
use std::time::Duration;
use tokio::net::TcpStream;

const PASSWORD: &str = "s3cret-pw";
const USERS: &[&str] = &["admin", "alice", "bob", "analytics", "ops"];

struct Secured {
    node: Node,
    plain_addr: String,
    sasl_addr: String,
    /// Holds the cluster secret file.
    _dir: tempfile::TempDir,
    secret_file: String,
}

impl Secured {
    /// The CLI acting as a node of the cluster (the secret): every permission.
    fn as_cluster(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--cluster-secret-file", &self.secret_file];
        all.extend_from_slice(args);
        self.node.cli(&all)
    }

    /// The CLI as `user`, with `password` in KAVKA_PASSWORD.
    fn as_user(&self, user: &str, password: &str, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--user", user];
        all.extend_from_slice(args);
        run_cli_with_env(
            &self.node.addr(),
            &all,
            b"",
            &[("KAVKA_PASSWORD", password)],
        )
    }
}

/// One node with the authorizer on (`User:admin` a super user), a SASL_PLAINTEXT
/// listener and a plaintext one; five users; topics `orders`, `events-clicks` and
/// `events-secret` with a record each in the `events-` ones; and the ACLs of the matrix.
async fn secured() -> Secured {
    let (p, s) = (free_port().unwrap(), free_port().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("cluster-secret");
    std::fs::write(&secret_file, "authz-test-secret\n").unwrap();
    let secret_file = secret_file.to_str().unwrap().to_string();
    let plain_addr = format!("127.0.0.1:{p}");
    let sasl_addr = format!("127.0.0.1:{s}");
    let node = Node::start(NodeOptions {
        args: [
            "--kafka-listeners",
            &format!("PLAINTEXT://{plain_addr},CLIENTS://{sasl_addr}"),
            "--listener-security-protocol-map",
            "CLIENTS:SASL_PLAINTEXT",
            "--authorizer-class-name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--super-users",
            "User:admin",
            "--controller-secret-file",
            &secret_file,
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let secret_arg = ["--cluster-secret-file", secret_file.as_str()];
    for user in USERS {
        ok(node.cli_with_stdin(
            &[
                secret_arg[0],
                secret_arg[1],
                "user",
                "create",
                user,
                "--mechanism",
                "SCRAM-SHA-512",
                "--password-stdin",
            ],
            format!("{PASSWORD}\n").as_bytes(),
        ));
    }
    for topic in ["orders", "events-clicks", "events-secret"] {
        ok(node.cli(&[
            secret_arg[0],
            secret_arg[1],
            "topic",
            "create",
            topic,
            "-p",
            "1",
            "-r",
            "1",
        ]));
    }
    let acls: &[&[&str]] = &[
        &[
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
        &[
            "--allow-principal",
            "User:analytics",
            "--operation",
            "read",
            "--topic",
            "events-",
            "--resource-pattern-type",
            "prefixed",
        ],
        &[
            "--allow-principal",
            "User:analytics",
            "--operation",
            "read",
            "--group",
            "analytics",
        ],
        &[
            "--deny-principal",
            "User:analytics",
            "--operation",
            "read",
            "--topic",
            "events-secret",
        ],
        &[
            "--allow-principal",
            "User:ops",
            "--operation",
            "create",
            "--operation",
            "delete",
            "--topic",
            "ops-",
            "--resource-pattern-type",
            "prefixed",
        ],
        &[
            "--allow-principal",
            "User:ops",
            "--operation",
            "alter_configs",
            "--topic",
            "orders",
        ],
    ];
    for acl in acls {
        let mut args = vec![secret_arg[0], secret_arg[1], "acl", "create"];
        args.extend_from_slice(acl);
        ok(node.cli(&args));
    }
    // The admin (a super user) writes a record to each events- topic.
    for topic in ["events-clicks", "events-secret"] {
        let out = kcat(&sasl_addr, "admin", &["-P", "-t", topic], b"seed\n");
        assert!(out.status.success(), "{out:?}");
    }
    Secured {
        node,
        plain_addr,
        sasl_addr,
        _dir: dir,
        secret_file,
    }
}

fn kcat(addr: &str, user: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let u = format!("sasl.username={user}");
    let p = format!("sasl.password={PASSWORD}");
    let mut all = vec![
        "-b",
        addr,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &u,
        "-X",
        &p,
    ];
    all.extend_from_slice(args);
    bounded(60, "kcat", &all, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_gets_what_its_acls_allow_and_kafkas_error_otherwise() {
    let Some(python) =
        clients_or_skip("each_principal_gets_what_its_acls_allow_and_kafkas_error_otherwise")
    else {
        return;
    };
    let s = secured().await;
    let script = kavka_harness::kafka_clients::root().join("tests/kafka/authz.py");
    let out = bounded(
        420,
        python.to_str().unwrap(),
        &[script.to_str().unwrap(), &s.sasl_addr, PASSWORD],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    // (case, outcome): "OK" or the exact Kafka error the client reports.
    let want: &[(&str, &str)] = &[
        ("produce alice orders", "OK"),
        ("produce bob orders", "TOPIC_AUTHORIZATION_FAILED"),
        ("idempotent produce alice orders", "OK"),
        ("consume analytics events-clicks in analytics", "OK"),
        (
            "consume analytics events-clicks in other",
            "GROUP_AUTHORIZATION_FAILED",
        ),
        (
            "consume analytics events-secret in analytics",
            "TOPIC_AUTHORIZATION_FAILED",
        ),
        (
            "consume bob events-clicks in analytics",
            "GROUP_AUTHORIZATION_FAILED",
        ),
        ("create topic ops ops-new", "OK"),
        ("create topic bob bobs", "TOPIC_AUTHORIZATION_FAILED"),
        ("delete topic ops ops-new", "OK"),
        ("delete topic bob orders", "TOPIC_AUTHORIZATION_FAILED"),
        ("describe configs ops orders", "OK"),
        ("describe configs bob orders", "TOPIC_AUTHORIZATION_FAILED"),
        ("alter configs ops orders", "OK"),
        ("alter configs alice orders", "TOPIC_AUTHORIZATION_FAILED"),
        ("create acl bob", "CLUSTER_AUTHORIZATION_FAILED"),
        ("create acl admin", "OK"),
        ("topics bob", ""),
        ("topics alice", "orders"),
        ("topics admin", "events-clicks,events-secret,orders"),
    ];
    let mut wrong = Vec::new();
    for (case, outcome) in want {
        if got[case] != *outcome {
            wrong.push(format!("{case}: want {outcome}, got {}", got[case]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n\nclient log:\n{}",
        wrong.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    // What was allowed happened: alice's records are there for the admin to read.
    let out = kcat(
        &s.sasl_addr,
        "admin",
        &["-C", "-t", "orders", "-o", "beginning", "-e", "-q"],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\nv\n", "{out:?}");

    // kcat as bob: the producer's error names the authorization failure.
    let out = kcat(&s.sasl_addr, "bob", &["-P", "-t", "orders"], b"nope\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Topic authorization failed"),
        "{out:?}"
    );
}

/// A SASL/PLAIN connection authenticated as `user`.
async fn connect_as(addr: &str, user: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let h: SaslHandshakeResponse = raw_kafka::call(
        &mut c,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .await;
    assert_eq!(h.error_code, 0);
    let token = format!("\0{user}\0{PASSWORD}");
    let r: SaslAuthenticateResponse = raw_kafka::call(
        &mut c,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()),
    )
    .await;
    assert_eq!(r.error_code, 0, "{r:?}");
    c
}

async fn init_producer_id(c: &mut TcpStream) -> i16 {
    let r: InitProducerIdResponse = raw_kafka::call(
        c,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    r.error_code
}

/// Topic names and error codes Metadata answers `c` for `topics` (None: all topics).
async fn metadata(c: &mut TcpStream, topics: Option<&[&str]>) -> Vec<(String, i16)> {
    let req = MetadataRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(raw_kafka::topic(t))))
            .collect()
    }));
    let r: MetadataResponse = raw_kafka::call(c, ApiKey::Metadata, 12, &req).await;
    let mut out: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .filter(|(n, _)| !n.starts_with("__"))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_metadata_and_the_anonymous_principal_follow_kafkas_rules() {
    // kcat seeds the topics.
    if clients_or_skip("producer_ids_metadata_and_the_anonymous_principal_follow_kafkas_rules")
        .is_none()
    {
        return;
    }
    let s = secured().await;

    // InitProducerId: WRITE on some topic is enough (alice); nothing is not (bob).
    let mut alice = connect_as(&s.sasl_addr, "alice").await;
    let mut bob = connect_as(&s.sasl_addr, "bob").await;
    assert_eq!(init_producer_id(&mut alice).await, 0);
    assert_eq!(init_producer_id(&mut bob).await, 31); // CLUSTER_AUTHORIZATION_FAILED

    // Metadata for all topics lists only the describable ones; a named topic the
    // principal may not describe is TOPIC_AUTHORIZATION_FAILED, whether it exists or not
    // (and an unauthorized name is never auto-created).
    assert_eq!(metadata(&mut alice, None).await, [("orders".into(), 0)]);
    assert_eq!(metadata(&mut bob, None).await, []);
    assert_eq!(
        metadata(&mut bob, Some(&["orders", "no-such-topic"])).await,
        [("no-such-topic".into(), 29), ("orders".into(), 29)]
    );
    let admin_view = metadata(&mut connect_as(&s.sasl_addr, "admin").await, None).await;
    assert!(
        !admin_view.iter().any(|(n, _)| n == "no-such-topic"),
        "{admin_view:?}"
    );

    // The plaintext listener's clients are User:ANONYMOUS: no ACL names them, so they
    // see no topics and cannot produce.
    let mut anonymous = TcpStream::connect(&s.plain_addr).await.unwrap();
    assert_eq!(metadata(&mut anonymous, None).await, []);
    let out = bounded(
        60,
        "kcat",
        &["-b", &s.plain_addr, "-P", "-t", "orders"],
        b"anonymous\n",
    );
    assert!(!out.status.success(), "{out:?}");
    // Denials are logged at debug only: a client retrying a denied request must not
    // fill the log.
    assert!(
        !s.node.log().contains("is not authorized"),
        "{}",
        s.node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_api_and_the_cli_obey_the_same_acls() {
    // kcat seeds the topics.
    if clients_or_skip("the_grpc_api_and_the_cli_obey_the_same_acls").is_none() {
        return;
    }
    let s = secured().await;

    // No credentials: refused, saying how to authenticate.
    fails_with(s.node.cli(&["topic", "list"]), "enforces ACLs");
    // A wrong password, and an unknown user: the same refusal, naming the user.
    fails_with(
        s.as_user("alice", "wrong", &["topic", "list"]),
        "invalid credentials for user 'alice'",
    );
    fails_with(
        s.as_user("mallory", PASSWORD, &["topic", "list"]),
        "invalid credentials for user 'mallory'",
    );
    // --user without a password source is a usage error.
    fails_with(
        run_cli_with_env(
            &s.node.addr(),
            &["--user", "alice", "topic", "list"],
            b"",
            &[],
        ),
        "needs a password",
    );

    // Each user lists the topics it may describe.
    let listed = |user: &str| stdout(&s.as_user(user, PASSWORD, &["topic", "list"]));
    let alice = listed("alice");
    assert!(
        alice.contains("orders") && !alice.contains("events-"),
        "{alice}"
    );
    let analytics = listed("analytics");
    assert!(
        analytics.contains("events-clicks") && !analytics.contains("orders"),
        "{analytics}"
    );
    let admin = listed("admin");
    assert!(
        ["orders", "events-clicks", "events-secret"]
            .iter()
            .all(|t| admin.contains(t)),
        "{admin}"
    );

    // alice may write orders, not delete it or read it; bob may do nothing.
    let out = run_cli_with_env(
        &s.node.addr(),
        &["--user", "alice", "produce", "orders"],
        b"from-cli\n",
        &[("KAVKA_PASSWORD", PASSWORD)],
    );
    assert!(out.status.success(), "{out:?}");
    fails_with(
        s.as_user("alice", PASSWORD, &["topic", "delete", "orders"]),
        "User:alice is not authorized to DELETE topic 'orders'",
    );
    fails_with(
        s.as_user("bob", PASSWORD, &["topic", "create", "bobs-topic"]),
        "User:bob is not authorized to CREATE topic 'bobs-topic'",
    );
    fails_with(
        s.as_user("bob", PASSWORD, &["acl", "list"]),
        "User:bob is not authorized to DESCRIBE the cluster",
    );
    let read_one = [
        "consume",
        "orders",
        "--from-beginning",
        "--max-messages",
        "1",
    ];
    fails_with(
        s.as_user("alice", PASSWORD, &read_one),
        "User:alice is not authorized to READ topic 'orders'",
    );
    // The admin (a super user) reads what alice wrote over gRPC.
    let out = s.as_user("admin", PASSWORD, &read_one);
    assert!(stdout(&out).contains("from-cli"), "{out:?}");
    // The cluster secret acts as a node: everything is allowed.
    let out = s.as_cluster(&["acl", "list"]);
    assert!(out.status.success(), "{out:?}");

    // The console's API obeys the same ACLs: without credentials, 401 asking for them
    // (the browser prompts); with a user's, what that user may see.
    let get = |path: &'static str, user: Option<&'static str>| {
        let addr = s.node.http_addr();
        async move {
            let auth = user.map(|u| {
                use base64::Engine;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{PASSWORD}"));
                format!("Basic {token}")
            });
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            kavka_harness::http::http_get_with(&addr, path, &headers, Duration::from_secs(30))
                .await
                .unwrap()
        }
    };
    let r = get("/api/topics", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.headers
            .get("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "{:?}",
        r.headers
    );
    let names = |body: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = get("/api/topics", Some("alice")).await;
    assert_eq!(
        (r.status, names(&r.body)),
        (200, vec!["orders".to_string()])
    );
    let r = get("/api/topics", Some("analytics")).await;
    assert_eq!(
        names(&r.body),
        ["events-clicks", "events-secret"],
        "DESCRIBE is implied by a READ allow; the deny is for READ only"
    );
    // alice may describe orders but not read its messages; analytics may read events-clicks.
    assert_eq!(get("/api/topics/orders", Some("alice")).await.status, 200);
    let r = get("/api/topics/orders/partitions/0/messages", Some("alice")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("not authorized to READ topic 'orders'"),
        "{}",
        r.body
    );
    let r = get(
        "/api/topics/events-clicks/partitions/0/messages",
        Some("analytics"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("seed"), "{}", r.body);
    assert_eq!(
        get(
            "/api/topics/events-secret/partitions/0/messages",
            Some("analytics")
        )
        .await
        .status,
        403
    );
    // A wrong password: 401 again.
    let r = kavka_harness::http::http_get_with(
        &s.node.http_addr(),
        "/api/topics",
        &[("Authorization", "Basic YWxpY2U6d3Jvbmc=")], // alice:wrong
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    // Failed gRPC authentications are logged with the peer and the user, never the
    // password.
    let log = s.node.log();
    assert!(log.contains("gRPC authentication failed"), "{log}");
    assert!(!log.contains("wrong\n") && !log.contains(PASSWORD), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_and_failover_work_under_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("cluster-secret");
    std::fs::write(&secret_path, "three-node-secret\n").unwrap();
    let secret = secret_path.to_str().unwrap().to_string();
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &[
            "--authorizer-class-name",
            "StandardAuthorizer",
            "--controller-secret-file",
            &secret,
        ],
    )
    .await
    .unwrap();
    let all = cluster.bootstrap();
    let as_cluster = |args: &[&str], stdin: &[u8]| {
        let mut a = vec!["--cluster-secret-file", secret.as_str()];
        a.extend_from_slice(args);
        run_cli_with_env(&all, &a, stdin, &[])
    };
    let as_alice = |args: &[&str], stdin: &[u8]| {
        let mut a = vec!["--user", "alice"];
        a.extend_from_slice(args);
        run_cli_with_env(&all, &a, stdin, &[("KAVKA_PASSWORD", PASSWORD)])
    };
    ok(as_cluster(
        &["user", "create", "alice", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    ));
    ok(as_cluster(
        &[
            "acl",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--operation",
            "read",
            "--topic",
            "replicated",
        ],
        b"",
    ));
    ok(as_cluster(
        &["topic", "create", "replicated", "-p", "1", "-r", "3"],
        b"",
    ));
    let describe = || -> serde_json::Value {
        serde_json::from_str(&ok(as_cluster(
            &["topic", "describe", "replicated", "-o", "json"],
            b"",
        )))
        .unwrap()
    };
    // acks=all is answered once every in-sync follower fetched the records: through the
    // leader's gRPC gate, with the cluster secret (anonymous calls are refused there).
    ok(as_alice(
        &["produce", "replicated", "--acks", "all"],
        b"a\nb\n",
    ));
    kavka_harness::wait_until("three in-sync replicas", Duration::from_secs(60), || {
        let d = describe();
        async move { d["partitions"][0]["isr"].as_array().map(Vec::len) == Some(3) }
    })
    .await
    .unwrap();
    let leader = describe()["partitions"][0]["leader"].as_i64().unwrap() as i32;
    cluster.node(leader).kill();
    // A new leader is elected, and alice writes to it and reads everything back.
    kavka_harness::wait_until("a new leader", Duration::from_secs(60), || {
        let d = describe();
        async move {
            d["partitions"][0]["leader"]
                .as_i64()
                .is_some_and(|l| l > 0 && l != i64::from(leader))
        }
    })
    .await
    .unwrap();
    kavka_harness::wait_until("a write to the new leader", Duration::from_secs(60), || {
        let out = as_alice(&["produce", "replicated", "--acks", "all"], b"c\n");
        async move { out.status.success() }
    })
    .await
    .unwrap();
    let out = ok(as_alice(
        &[
            "consume",
            "replicated",
            "--from-beginning",
            "--max-messages",
            "3",
            "--format",
            "%v\n",
        ],
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b", "c"], "{out}");
}
