//! The user's first experience, in CI when a Docker engine is present (skipped, saying
//! so, where none is): build the `FROM scratch` image, `docker compose up` the three-node
//! cluster, create an RF=3 topic from the host CLI, write with acks=all, kill the node
//! leading a partition, see the new leader through the CLI, and check with the history
//! checker that no acknowledged record was lost; then `compose down -v`. Misconfigured
//! containers exit non-zero with a message naming the problem.
//!
//! Then, with the same image, the secure overlay (`docker-compose.secure.yml`) with
//! certificates made by `deploy/certs.sh`: the nodes speak mutual TLS to each other (a
//! plaintext or certificate-less call to a controller listener is refused), the first
//! user is made with the cluster secret inside a node, the host CLI over TLS as that
//! super user makes alice and her ACLs, kcat over SASL_SSL as alice produces and
//! consumes, a wrong password, a plaintext Kafka client and an anonymous CLI are
//! refused, and a leader kill fails over through the TLS CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::checker::{self, Workload};
use kavka_harness::compose::{self, Compose};
use kavka_harness::kafka_clients::bounded;
use kavka_harness::{free_port, kavka_bin, run_cli, wait_until};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);
/// A cold release build on a 2-core machine takes several minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(25 * 60);

fn image() -> String {
    format!("kavka:test-{}", std::process::id())
}

fn remove_image(tag: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
}

fn describe_as(cli: &Cli, topic: &str) -> Option<serde_json::Value> {
    let out = cli.run(&["topic", "describe", topic, "-o", "json"], b"");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn leader_of(bootstrap: &str, topic: &str, partition: usize) -> Option<i64> {
    leader_as(&Cli::plain(bootstrap), topic, partition)
}

fn leader_as(cli: &Cli, topic: &str, partition: usize) -> Option<i64> {
    describe_as(cli, topic)?["partitions"][partition]["leader"]
        .as_i64()
        .filter(|l| *l > 0)
}

/// The host CLI: a bootstrap list, connection flags (--tls-ca) and a user's password.
struct Cli {
    bootstrap: String,
    flags: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Cli {
    fn plain(bootstrap: &str) -> Cli {
        Cli {
            bootstrap: bootstrap.to_string(),
            flags: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Over TLS trusting `ca`, as `user` (with `password`) if given.
    fn tls(bootstrap: &str, ca: &Path, user: Option<(&str, &str)>) -> Cli {
        let mut cli = Cli::plain(bootstrap);
        cli.flags = vec!["--tls-ca".into(), ca.display().to_string()];
        if let Some((user, password)) = user {
            cli.flags.extend(["--user".into(), user.to_string()]);
            cli.env.push(("KAVKA_PASSWORD", password.to_string()));
        }
        cli
    }

    /// Runs the CLI, bounded by a minute (`timeout`), whatever its exit status.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new("timeout")
            .arg("60")
            .arg(kavka_bin())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("--bootstrap")
            .arg(&self.bootstrap)
            .args(&self.flags)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `args` and fails the test, with the CLI's error, unless they succeed.
    fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kavka {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn kcat_installed() -> bool {
    Command::new("kcat").arg("-V").output().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_survives_a_leader_kill_without_losing_acknowledged_writes() {
    if let Some(why) = compose::unavailable() {
        kavka_harness::say_skipped("compose_cluster_survives_a_leader_kill", &why);
        return;
    }
    let tag = image();
    compose::build_image(&tag, BUILD_LIMIT).unwrap();
    struct Image(String);
    impl Drop for Image {
        fn drop(&mut self) {
            remove_image(&self.0);
        }
    }
    let _image = Image(tag.clone());

    // Misconfigured containers stop at once, non-zero, saying what is wrong.
    for (args, says) in [
        (
            vec![
                "server",
                "--node-id",
                "4",
                "--controller-voters",
                "1@kavka-1:9093",
            ],
            "not in the controller voters",
        ),
        (
            vec!["server", "--data-dir", "/proc/kavka"],
            "cannot create data dir /proc/kavka",
        ),
        (
            vec!["server", "--external-listen", "0.0.0.0:9093"],
            "cannot listen on 0.0.0.0:9093 (external listener)",
        ),
    ] {
        let out = Command::new("timeout")
            .args(["60", "docker", "run", "--rm", &tag])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let kafka_ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let cluster = Compose::new(&format!("kavka-test-{}", std::process::id()), ports)
        .with_kafka_ports(kafka_ports)
        .with_image(&tag);
    cluster.up().unwrap();
    cluster.wait_healthy(DEADLINE).await.unwrap();
    let bootstrap = cluster.bootstrap();
    // Each node's HTTP port is published: metrics and health from the host.
    for n in 1..=3 {
        let addr = cluster.http_addr(n);
        let ready = kavka_harness::http::http_get(&addr, "/health/ready", DEADLINE)
            .await
            .unwrap();
        assert_eq!(ready.status, 200, "node {n}: {}", ready.body);
        let metrics = kavka_harness::http::http_get(&addr, "/metrics", DEADLINE)
            .await
            .unwrap();
        assert!(
            metrics.body.contains("kavka_broker_fenced 0"),
            "node {n}: {}",
            metrics.body
        );
    }

    // The host CLI, through the published ports.
    let out = run_cli(
        &bootstrap,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-r",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("a leader for orders-0", DEADLINE, || async {
        leader_of(&bootstrap, "orders", 0).is_some()
    })
    .await
    .unwrap();

    // A Kafka client on the host sees every broker at its published EXTERNAL listener.
    if kcat_installed() {
        let kafka = cluster.kafka_bootstrap();
        let md = std::process::Command::new("timeout")
            .args(["60", "kcat", "-b", &kafka, "-L", "-J", "-t", "orders"])
            .output()
            .unwrap();
        let md: serde_json::Value = serde_json::from_slice(&md.stdout).unwrap();
        let mut names: Vec<String> = md["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        let mut want: Vec<String> = kafka_ports
            .iter()
            .map(|p| format!("localhost:{p}"))
            .collect();
        want.sort();
        assert_eq!(names, want, "{md}");
        assert_eq!(md["topics"][0]["partitions"].as_array().unwrap().len(), 3);
    } else {
        eprintln!("kcat is not installed: the host Kafka listener check is skipped");
    }

    let workload = Workload::start(&bootstrap, "orders", 2);
    workload.progress(300, DEADLINE).await.unwrap();
    let victim = leader_of(&bootstrap, "orders", 0).unwrap() as i32;
    workload.fault(&bootstrap, "orders", "kill", victim).await;
    cluster.kill(victim).unwrap();
    wait_until(
        "a new leader for orders-0, seen by the CLI",
        DEADLINE,
        || async { leader_of(&bootstrap, "orders", 0).is_some_and(|l| l != i64::from(victim)) },
    )
    .await
    .unwrap();
    workload.progress(300, DEADLINE).await.unwrap();
    cluster.start(victim).unwrap();
    cluster.wait_healthy(DEADLINE).await.unwrap();
    workload.progress(100, DEADLINE).await.unwrap();
    let history = workload.stop().await;

    let hws = checker::settled_high_watermarks(&bootstrap, "orders", 3, DEADLINE)
        .await
        .unwrap();
    let copies = tempfile::Builder::new()
        .prefix("kavka-docker-test-")
        .tempdir()
        .unwrap();
    let dirs: Vec<_> = (1..=3)
        .map(|n| {
            let dest = copies.path().join(format!("node-{n}"));
            cluster.copy_data(n, &dest).unwrap();
            (n, dest)
        })
        .collect();
    let report = checker::verify(&history, "orders", &dirs, &hws).unwrap();
    eprintln!("{}", report.summary());
    assert!(report.ok(), "{report:#?}");
    assert!(report.acked >= 700);
    assert_eq!(report.failover_gaps.len(), 1, "the kill hit a leader");
    drop(cluster);

    secure_cluster(&tag).await;
}

const ADMIN_PASSWORD: &str = "admin-pa55-w0rd";
const ALICE_PASSWORD: &str = "alice-pa55-w0rd";
/// Where the overlay mounts the certificates, and the cluster secret's file, in a node.
const CA_IN_NODE: &str = "/etc/kavka/certs/ca.pem";
const KEYSTORE_IN_NODE: &str = "/etc/kavka/certs/server.pem";
const SECRET_IN_NODE: &str = "/etc/kavka/secret/controller-secret";

fn said(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// kcat over SASL_SSL trusting `ca`, as `user` with `password` and SCRAM-SHA-512.
fn kcat_sasl_ssl(
    kafka: &str,
    ca: &Path,
    user: &str,
    password: &str,
    args: &[&str],
    stdin: &[u8],
) -> Output {
    let ca = format!("ssl.ca.location={}", ca.display());
    let user = format!("sasl.username={user}");
    let password = format!("sasl.password={password}");
    let mut all = vec![
        "-b",
        kafka,
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        &ca,
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &user,
        "-X",
        &password,
    ];
    all.extend_from_slice(args);
    bounded(60, "kcat", &all, stdin)
}

/// The secure overlay on the image `tag`: mutual TLS between the nodes, TLS to the gRPC
/// clients, SASL_SSL Kafka listeners and ACLs.
async fn secure_cluster(tag: &str) {
    // Certificates by deploy/certs.sh (no external CA), mounted into every node.
    let dir = tempfile::Builder::new()
        .prefix("kavka-docker-certs-")
        .tempdir()
        .unwrap();
    let certs = dir.path().join("certs");
    let made = Command::new("bash")
        .arg(compose::repo_root().join("deploy/certs.sh"))
        .arg(&certs)
        .args(["kavka-1", "kavka-2", "kavka-3", "localhost"])
        .output()
        .unwrap();
    assert!(made.status.success(), "deploy/certs.sh: {}", said(&made));
    let ca = certs.join("ca.pem");

    let ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let kafka_ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let cluster = Compose::new(&format!("kavka-test-secure-{}", std::process::id()), ports)
        .with_kafka_ports(kafka_ports)
        .with_image(tag)
        .with_files(&["docker-compose.secure.yml"])
        .with_env("KAVKA_CERTS_DIR", &certs.display().to_string());
    cluster.up().unwrap();
    // Healthy means the overlay's health check answered over TLS.
    cluster.wait_healthy(DEADLINE).await.unwrap();
    let bootstrap = cluster.bootstrap();
    let inside = |node: i32, args: &[&str], stdin: &[u8]| {
        cluster
            .exec(node, args, stdin, Duration::from_secs(60))
            .unwrap()
    };

    // The nodes speak mutual TLS to each other: a node's controller listener (Raft,
    // broker sessions) refuses a plaintext call and a TLS one without a certificate, and
    // answers one that presents a node's certificate.
    let controller_health = |tls: &[&str]| {
        let mut args = vec!["kavka", "health", "--bootstrap", "kavka-2:9094"];
        args.extend_from_slice(tls);
        inside(1, &args, b"")
    };
    let plaintext = controller_health(&[]);
    assert!(
        !plaintext.status.success(),
        "a plaintext call to the controller listener was answered: {}",
        said(&plaintext)
    );
    let no_cert = controller_health(&["--tls-ca", CA_IN_NODE]);
    assert!(
        !no_cert.status.success(),
        "a call without a client certificate was answered: {}",
        said(&no_cert)
    );
    let mutual = controller_health(&[
        "--tls-ca",
        CA_IN_NODE,
        "--tls-cert",
        KEYSTORE_IN_NODE,
        "--tls-key",
        KEYSTORE_IN_NODE,
    ]);
    assert!(mutual.status.success(), "{}", said(&mutual));

    // The client port speaks TLS only, and the authorizer refuses anonymous calls.
    let plaintext = Cli::plain(&bootstrap).run(&["topic", "list"], b"");
    assert!(!plaintext.status.success(), "{}", said(&plaintext));
    let anonymous = Cli::tls(&bootstrap, &ca, None).run(&["topic", "list"], b"");
    assert!(!anonymous.status.success(), "{}", said(&anonymous));
    assert!(
        said(&anonymous).contains("enforces ACLs"),
        "{}",
        said(&anonymous)
    );

    // The first user, made inside a node with the cluster secret (README: the secure
    // overlay): admin, the overlay's super user.
    let made = inside(
        1,
        &[
            "kavka",
            "--cluster-secret-file",
            SECRET_IN_NODE,
            "--tls-ca",
            CA_IN_NODE,
            "user",
            "create",
            "admin",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
        ],
        format!("{ADMIN_PASSWORD}\n").as_bytes(),
    );
    assert!(made.status.success(), "{}", said(&made));
    let admin = Cli::tls(&bootstrap, &ca, Some(("admin", ADMIN_PASSWORD)));
    wait_until(
        "the host CLI authenticated as admin on every node",
        DEADLINE,
        || async {
            ports.iter().all(|p| {
                Cli::tls(
                    &format!("127.0.0.1:{p}"),
                    &ca,
                    Some(("admin", ADMIN_PASSWORD)),
                )
                .run(&["topic", "list"], b"")
                .status
                .success()
            })
        },
    )
    .await
    .unwrap();

    // admin makes alice, her ACLs and the topic.
    admin.ok(
        &[
            "user",
            "create",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
        ],
        format!("{ALICE_PASSWORD}\n").as_bytes(),
    );
    admin.ok(
        &[
            "acl",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            "orders",
        ],
        b"",
    );
    admin.ok(
        &[
            "acl",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--group",
            "orders-readers",
        ],
        b"",
    );
    admin.ok(
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-r",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
        b"",
    );
    wait_until("leaders for orders, seen as admin", DEADLINE, || async {
        (0..3).all(|p| leader_as(&admin, "orders", p).is_some())
    })
    .await
    .unwrap();
    let alice = Cli::tls(&bootstrap, &ca, Some(("alice", ALICE_PASSWORD)));
    // alice may write orders, not create topics.
    let refused = alice.run(&["topic", "create", "payroll"], b"");
    assert!(!refused.status.success(), "{}", said(&refused));
    alice.ok(
        &["produce", "orders", "-p", "0", "--acks", "all", "-q"],
        b"cli-1\ncli-2\n",
    );

    let kafka = cluster.kafka_bootstrap();
    let kcat = kcat_installed();
    if kcat {
        // kcat as alice over SASL_SSL (SCRAM-SHA-512) on the published EXTERNAL listeners.
        let out = kcat_sasl_ssl(
            &kafka,
            &ca,
            "alice",
            ALICE_PASSWORD,
            &["-P", "-t", "orders", "-p", "0"],
            b"kcat-1\nkcat-2\n",
        );
        assert!(out.status.success(), "kcat produce: {}", said(&out));
        let out = kcat_sasl_ssl(
            &kafka,
            &ca,
            "alice",
            ALICE_PASSWORD,
            &[
                "-C",
                "-t",
                "orders",
                "-p",
                "0",
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            b"",
        );
        assert!(out.status.success(), "kcat consume: {}", said(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "cli-1\ncli-2\nkcat-1\nkcat-2\n"
        );
        // A wrong password: the broker's SASL_AUTHENTICATION_FAILED.
        let out = kcat_sasl_ssl(&kafka, &ca, "alice", "wrong", &["-L", "-m", "10"], b"");
        assert!(!out.status.success(), "{}", said(&out));
        assert!(
            said(&out).contains("Authentication failed")
                || said(&out).contains("SASL_AUTHENTICATION_FAILED"),
            "{}",
            said(&out)
        );
        // A plaintext client on the SASL_SSL port gets nothing.
        let out = bounded(30, "kcat", &["-b", &kafka, "-L", "-m", "10"], b"");
        assert!(!out.status.success(), "{}", said(&out));
    } else {
        eprintln!("kcat is not installed: the SASL_SSL Kafka client checks are skipped");
    }

    // Kill the leader of orders-0: a new one is elected over the nodes' mutual TLS, seen
    // through the TLS CLI; alice still writes with acks=all (two replicas in sync).
    let victim = leader_as(&admin, "orders", 0).unwrap() as i32;
    cluster.kill(victim).unwrap();
    wait_until(
        "a new leader for orders-0, seen by the TLS CLI",
        DEADLINE,
        || async { leader_as(&admin, "orders", 0).is_some_and(|l| l != i64::from(victim)) },
    )
    .await
    .unwrap();
    wait_until("alice's produce after the failover", DEADLINE, || async {
        alice
            .run(
                &["produce", "orders", "-p", "0", "--acks", "all", "-q"],
                b"after\n",
            )
            .status
            .success()
    })
    .await
    .unwrap();
    cluster.start(victim).unwrap();
    cluster.wait_healthy(DEADLINE).await.unwrap();
    // The restarted node fetches over mutual TLS until it is back in the ISR.
    wait_until("orders-0's ISR back to three", DEADLINE, || async {
        describe_as(&admin, "orders").is_some_and(|d| {
            d["partitions"][0]["isr"]
                .as_array()
                .is_some_and(|isr| isr.len() == 3)
        })
    })
    .await
    .unwrap();
    // alice reads everything back as a member of orders-readers (a retried "after" may be
    // there twice: each try is a new producer). The host CLI finds the group's
    // coordinator at its published external address, as Metadata names brokers.
    let mut want = vec!["cli-1", "cli-2", "after"];
    if kcat {
        want.extend(["kcat-1", "kcat-2"]);
    }
    let read = alice.ok(
        &[
            "consume",
            "orders",
            "-g",
            "orders-readers",
            "--from-beginning",
            "--format",
            "%v",
            "-q",
        ],
        b"",
    );
    let got: std::collections::BTreeSet<&str> = read.lines().collect();
    let want: std::collections::BTreeSet<&str> = want.into_iter().collect();
    assert_eq!(got, want, "{read}");
}
