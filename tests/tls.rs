//! TLS on Kafka listeners (SSL and SASL_SSL) with real clients and certificates made by
//! `deploy/certs.sh`: kcat, confluent-kafka and kafka-python produce and consume over
//! SSL; kcat authenticates with SCRAM over SASL_SSL; mutual TLS refuses a client without
//! a certificate; a plaintext client on a TLS port and a client that does not trust the
//! server's CA are cut off, with one log line, while the node serves on. The HTTP
//! listener (metrics, health, console) speaks HTTPS with the same certificate, and cuts
//! off a plaintext client the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::kafka_clients::{bounded, clients_or_skip, root};
use kavka_harness::{Node, NodeOptions, free_port};
use std::path::{Path, PathBuf};

fn certs(dir: &Path) -> PathBuf {
    let out = dir.join("certs");
    let made = std::process::Command::new("bash")
        .arg(root().join("deploy/certs.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    out
}

fn kcat(addr: &str, extra: &[&str], args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut all = vec!["-b", addr];
    all.extend_from_slice(extra);
    all.extend_from_slice(args);
    bounded(60, "kcat", &all, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_speak_tls_and_sasl_over_tls() {
    let Some(python) = clients_or_skip("real_clients_speak_tls_and_sasl_over_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let ca = certs.join("ca.pem").display().to_string();
    let (p, s, ss) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let (plain, ssl, sasl_ssl) = (
        format!("127.0.0.1:{p}"),
        format!("127.0.0.1:{s}"),
        format!("127.0.0.1:{ss}"),
    );
    let node = Node::start(NodeOptions {
        args: vec![
            "--kafka-listeners".into(),
            format!("PLAINTEXT://{plain},SSL://{ssl},SASL_SSL://{sasl_ssl}"),
            "--ssl-keystore-location".into(),
            certs.join("server.pem").display().to_string(),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let out = node.cli_with_stdin(
        &[
            "user",
            "create",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
        ],
        b"pa55\n",
    );
    assert!(out.status.success(), "{out:?}");

    // kcat over SSL: produce, consume.
    let tls = ["-X", "security.protocol=SSL", "-X"];
    let ca_opt = format!("ssl.ca.location={ca}");
    let ssl_opts: Vec<&str> = tls.iter().copied().chain([ca_opt.as_str()]).collect();
    let out = kcat(&ssl, &ssl_opts, &["-P", "-t", "tls"], b"a\nb\n");
    assert!(out.status.success(), "{out:?}");
    let out = kcat(
        &ssl,
        &ssl_opts,
        &["-C", "-t", "tls", "-o", "beginning", "-e", "-q"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");

    // kcat over SASL_SSL with SCRAM-SHA-512.
    let sasl_opts = [
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        &ca_opt,
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=pa55",
    ];
    let out = kcat(
        &sasl_ssl,
        &sasl_opts,
        &["-C", "-t", "tls", "-o", "beginning", "-e", "-q"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");

    // confluent-kafka and kafka-python over SSL.
    let script = format!(
        r#"
from confluent_kafka import Producer
p = Producer({{"bootstrap.servers": "{ssl}", "security.protocol": "SSL", "ssl.ca.location": "{ca}"}})
for i in range(5):
    p.produce("tls-py", value=f"c{{i}}".encode())
assert p.flush(30) == 0
from kafka import KafkaConsumer
c = KafkaConsumer("tls-py", bootstrap_servers="{ssl}", security_protocol="SSL", ssl_cafile="{ca}",
                  ssl_check_hostname=False, auto_offset_reset="earliest", consumer_timeout_ms=20000)
got = sorted(m.value.decode() for m, _ in zip(c, range(5)))
print(",".join(got))
"#
    );
    let out = bounded(120, python.to_str().unwrap(), &["-c", &script], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "c0,c1,c2,c3,c4"
    );

    // A plaintext client on the TLS port is cut off, with one log line.
    let out = kcat(&ssl, &[], &["-L", "-m", "5"], b"");
    assert!(!out.status.success());
    // A client that does not trust the server's CA is refused too.
    let other = certs_elsewhere(dir.path());
    let other_ca = format!("ssl.ca.location={}", other.join("ca.pem").display());
    let out = kcat(
        &ssl,
        &["-X", "security.protocol=SSL", "-X", &other_ca],
        &["-L", "-m", "5"],
        b"",
    );
    assert!(!out.status.success());
    assert!(
        node.log().contains("TLS handshake failed"),
        "{}",
        node.log()
    );

    // The plaintext listener beside them serves on.
    let out = kcat(&plain, &[], &["-L", "-m", "10"], b"");
    assert!(out.status.success(), "{out:?}");
}

fn certs_elsewhere(dir: &Path) -> PathBuf {
    let out = dir.join("other");
    let made = std::process::Command::new("bash")
        .arg(root().join("deploy/certs.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() {
    if clients_or_skip("mutual_tls_requires_a_client_certificate").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let ssl = format!("127.0.0.1:{}", free_port().unwrap());
    let _node = Node::start(NodeOptions {
        args: vec![
            "--kafka-listeners".into(),
            format!("PLAINTEXT://127.0.0.1:{},SSL://{ssl}", free_port().unwrap()),
            "--ssl-keystore-location".into(),
            certs.join("server.pem").display().to_string(),
            "--ssl-truststore-location".into(),
            certs.join("ca.pem").display().to_string(),
            "--ssl-client-auth".into(),
            "required".into(),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let ca = format!("ssl.ca.location={}", certs.join("ca.pem").display());
    let base = ["-X", "security.protocol=SSL", "-X", ca.as_str()];
    let out = kcat(&ssl, &base, &["-L", "-m", "10"], b"");
    assert!(
        !out.status.success(),
        "no client certificate must be refused"
    );
    let cert = format!(
        "ssl.certificate.location={}",
        certs.join("client.pem").display()
    );
    let key = format!("ssl.key.location={}", certs.join("client.key").display());
    let mut with_cert: Vec<&str> = base.to_vec();
    with_cert.extend_from_slice(&["-X", &cert, "-X", &key]);
    let out = kcat(&ssl, &with_cert, &["-L", "-m", "10"], b"");
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_subjects_become_principals_for_acls() {
    if clients_or_skip("certificate_subjects_become_principals_for_acls").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "mtls-secret\n").unwrap();
    let secret = secret.display().to_string();
    let ssl = format!("127.0.0.1:{}", free_port().unwrap());
    let node = Node::start(NodeOptions {
        args: vec![
            "--kafka-listeners".into(),
            format!("PLAINTEXT://127.0.0.1:{},SSL://{ssl}", free_port().unwrap()),
            "--ssl-keystore-location".into(),
            certs.join("server.pem").display().to_string(),
            "--ssl-truststore-location".into(),
            certs.join("ca.pem").display().to_string(),
            "--ssl-client-auth".into(),
            "required".into(),
            // CN=client,OU=clients,O=Kavka -> User:client
            "--ssl-principal-mapping-rules".into(),
            "RULE:^CN=([^,]*),OU=clients,.*$/$1/L,DEFAULT".into(),
            "--authorizer-class-name".into(),
            "StandardAuthorizer".into(),
            "--controller-secret-file".into(),
            secret.clone(),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    for args in [
        &["topic", "create", "allowed", "-p", "1", "-r", "1"][..],
        &["topic", "create", "other", "-p", "1", "-r", "1"],
        &[
            "acl",
            "create",
            "--allow-principal",
            "User:client",
            "--operation",
            "write",
            "--operation",
            "read",
            "--topic",
            "allowed",
        ],
    ] {
        let mut all = vec!["--cluster-secret-file", secret.as_str()];
        all.extend_from_slice(args);
        let out = node.cli(&all);
        assert!(out.status.success(), "{out:?}");
    }
    let ca = format!("ssl.ca.location={}", certs.join("ca.pem").display());
    let cert = format!(
        "ssl.certificate.location={}",
        certs.join("client.pem").display()
    );
    let key = format!("ssl.key.location={}", certs.join("client.key").display());
    let tls = [
        "-X",
        "security.protocol=SSL",
        "-X",
        ca.as_str(),
        "-X",
        &cert,
        "-X",
        &key,
    ];
    // User:client may write and read 'allowed'...
    let out = kcat(&ssl, &tls, &["-P", "-t", "allowed"], b"by-certificate\n");
    assert!(out.status.success(), "{out:?}");
    let out = kcat(
        &ssl,
        &tls,
        &["-C", "-t", "allowed", "-o", "beginning", "-e", "-q"],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "by-certificate\n",
        "{out:?}"
    );
    // ...and nothing else: Metadata does not list 'other', and writing it is refused.
    let out = kcat(&ssl, &tls, &["-L", "-m", "10"], b"");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("\"allowed\"") && !listed.contains("\"other\""),
        "{listed}"
    );
    let out = kcat(&ssl, &tls, &["-P", "-t", "other"], b"nope\n");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("Topic authorization failed"),
        "{out:?}"
    );
}

#[test]
fn tls_listeners_need_a_keystore_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "nothing here\n").unwrap();
    let port = free_port().unwrap();
    for (extra, words) in [
        (vec![], "no --ssl-keystore-location"),
        (
            vec![
                "--ssl-keystore-location".to_string(),
                bad.display().to_string(),
            ],
            "holds no certificate",
        ),
        (
            vec![
                "--ssl-keystore-location".to_string(),
                bad.display().to_string(),
                "--ssl-principal-mapping-rules".to_string(),
                "RULE:(/x/".to_string(),
            ],
            "invalid pattern in ssl_principal_mapping_rules",
        ),
    ] {
        let out = std::process::Command::new(kavka_harness::kavka_bin())
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", free_port().unwrap()),
            ])
            .args(["--kafka-listeners", &format!("SSL://127.0.0.1:{port}")])
            .args(["--http-listen", ""])
            .args(&extra)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{err}");
    }
}

/// One HTTPS GET of `path` at `addr`, trusting `ca`: the raw answer (status line,
/// headers, body).
async fn https_get(addr: &str, ca: &Path, path: &str) -> std::io::Result<String> {
    use kavka_tls::rustls;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out).await {
        // A server may close without TLS's close_notify once it has answered.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        other => {
            other?;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_speaks_https_and_cuts_off_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let node = Node::start(NodeOptions {
        args: vec![
            "--ssl-keystore-location".into(),
            certs.join("server.pem").display().to_string(),
            "--http-security-protocol".into(),
            "SSL".into(),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let ca = certs.join("ca.pem");
    let live = https_get(&node.http_addr(), &ca, "/health/live")
        .await
        .unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let metrics = https_get(&node.http_addr(), &ca, "/metrics").await.unwrap();
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("kavka_"),
        "{metrics}"
    );

    // A plaintext client gets no answer, and the node says why, once.
    let mut plain = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        plain
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            plain.read_to_end(&mut got),
        )
        .await
        .expect("the plaintext connection is closed");
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("200 OK"), "{read:?} {text}");
    }
    kavka_harness::wait_until(
        "the plaintext client in the log",
        std::time::Duration::from_secs(30),
        || {
            let logged = node.log().contains("a plaintext client");
            async move { logged }
        },
    )
    .await
    .unwrap();
    // And the listener serves on.
    let again = https_get(&node.http_addr(), &ca, "/health/live")
        .await
        .unwrap();
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}
