//! SASL on a Kafka listener (SASL_PLAINTEXT) with real clients: kcat and confluent-kafka
//! authenticate with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN as a user made by `kavka
//! user create`, then produce and consume; a wrong password gets
//! SASL_AUTHENTICATION_FAILED; a client that does not speak SASL on that port is cut
//! off; the plaintext listener beside it keeps serving. Raw requests pin the protocol's
//! error answers (unknown mechanism, steps out of order).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::{
    ApiKey, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kavka_harness::kafka_clients::{bounded, clients_or_skip};
use kavka_harness::{Node, NodeOptions, free_port};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const PASSWORD: &str = "pa55-w0rd";

struct SaslNode {
    node: Node,
    plain_addr: String,
    sasl_addr: String,
}

async fn sasl_node() -> SaslNode {
    sasl_node_with(&[]).await
}

/// [`sasl_node`] with more server flags.
async fn sasl_node_with(extra: &[&str]) -> SaslNode {
    let (p, s) = (free_port().unwrap(), free_port().unwrap());
    let plain_addr = format!("127.0.0.1:{p}");
    let sasl_addr = format!("127.0.0.1:{s}");
    let node = Node::start(NodeOptions {
        args: vec![
            "--kafka-listeners".into(),
            format!("PLAINTEXT://{plain_addr},CLIENTS://{sasl_addr}"),
            "--listener-security-protocol-map".into(),
            "CLIENTS:SASL_PLAINTEXT".into(),
        ]
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string()))
        .collect(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let out = node.cli_with_stdin(
            &[
                "user",
                "create",
                "alice",
                "--mechanism",
                m,
                "--password-stdin",
            ],
            format!("{PASSWORD}\n").as_bytes(),
        );
        assert!(out.status.success(), "{out:?}");
    }
    SaslNode {
        node,
        plain_addr,
        sasl_addr,
    }
}

fn kcat_sasl(
    addr: &str,
    mechanism: &str,
    password: &str,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let mut all = vec!["-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X"];
    let m = format!("sasl.mechanisms={mechanism}");
    let p = format!("sasl.password={password}");
    all.extend_from_slice(&[&m, "-X", "sasl.username=alice", "-X", &p]);
    all.extend_from_slice(args);
    bounded(60, "kcat", &all, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_authenticate_with_scram_and_plain() {
    let Some(python) = clients_or_skip("real_clients_authenticate_with_scram_and_plain") else {
        return;
    };
    let n = sasl_node().await;
    for (i, mechanism) in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
        .into_iter()
        .enumerate()
    {
        let topic = format!("secured-{i}");
        let out = kcat_sasl(
            &n.sasl_addr,
            mechanism,
            PASSWORD,
            &["-P", "-t", &topic],
            b"one\ntwo\n",
        );
        assert!(out.status.success(), "{mechanism} produce: {out:?}");
        let out = kcat_sasl(
            &n.sasl_addr,
            mechanism,
            PASSWORD,
            &["-C", "-t", &topic, "-o", "beginning", "-e", "-q"],
            b"",
        );
        assert!(out.status.success(), "{mechanism} consume: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "one\ntwo\n",
            "{mechanism}"
        );
    }

    // A wrong password: kcat reports the broker's SASL_AUTHENTICATION_FAILED.
    let out = kcat_sasl(
        &n.sasl_addr,
        "SCRAM-SHA-512",
        "wrong",
        &["-L", "-m", "10"],
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Authentication failed") || err.contains("SASL_AUTHENTICATION_FAILED"),
        "{err}"
    );
    assert!(n.node.log().contains("SASL authentication failed"));
    // Counted in the metrics, by listener and result.
    let m = kavka_harness::http::http_get(&n.node.http_addr(), "/metrics", Duration::from_secs(30))
        .await
        .unwrap();
    let samples = kavka_harness::http::parse_prometheus(&m.body).unwrap();
    let count = |result: &str| {
        kavka_harness::http::value(
            &samples,
            "kavka_kafka_authentications_total",
            &[("listener", "CLIENTS"), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert!(count("failure") >= 1.0, "{}", m.body);
    assert!(count("success") >= 6.0, "{}", m.body);

    // confluent-kafka's producer and consumer, SCRAM-SHA-512.
    let script = format!(
        r#"
import sys
from confluent_kafka import Producer, Consumer
conf = {{"bootstrap.servers": "{addr}", "security.protocol": "SASL_PLAINTEXT",
         "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "{pw}"}}
p = Producer(conf)
for i in range(10):
    p.produce("py-secured", value=f"v{{i}}".encode())
assert p.flush(30) == 0
c = Consumer(dict(conf, **{{"group.id": "g", "auto.offset.reset": "earliest"}}))
c.subscribe(["py-secured"])
got = []
import time
end = time.time() + 60
while len(got) < 10 and time.time() < end:
    m = c.poll(1.0)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
c.close()
print(",".join(sorted(got)))
"#,
        addr = n.sasl_addr,
        pw = PASSWORD
    );
    let out = bounded(120, python.to_str().unwrap(), &["-c", &script], b"");
    assert!(out.status.success(), "{out:?}");
    let mut want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join(","));

    // The plaintext listener beside it still serves without authentication.
    let out = bounded(60, "kcat", &["-b", &n.plain_addr, "-L", "-m", "10"], b"");
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sasl_protocol_answers_kafkas_errors() {
    let n = sasl_node().await;

    // A client that skips SASL: its first non-ApiVersions request closes the connection.
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    closes_on_metadata(&mut c).await;

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones listed.
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    let r: SaslHandshakeResponse = raw_kafka::call(
        &mut c,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    )
    .await;
    assert_eq!(r.error_code, 33);
    let offered: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE.
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    let r: SaslAuthenticateResponse = raw_kafka::call(
        &mut c,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(b"x")),
    )
    .await;
    assert_eq!(r.error_code, 34);

    // PLAIN with a wrong password, and a 10 MB token: SASL_AUTHENTICATION_FAILED.
    for token in [b"\0alice\0wrong".to_vec(), vec![b'x'; 10 * 1024 * 1024]] {
        let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
        let h: SaslHandshakeResponse = raw_kafka::call(
            &mut c,
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
        assert_eq!(h.error_code, 0);
        let r: SaslAuthenticateResponse = raw_kafka::call(
            &mut c,
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(token.into()),
        )
        .await;
        assert_eq!(r.error_code, 58, "{r:?}");
        let msg = r.error_message.unwrap().to_string();
        assert!(msg.contains("PLAIN"), "{msg}");
    }

    // On the plaintext listener SASL is not in use: ILLEGAL_SASL_STATE, and it serves on.
    let mut c = TcpStream::connect(&n.plain_addr).await.unwrap();
    let r: SaslHandshakeResponse = raw_kafka::call(
        &mut c,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .await;
    assert_eq!(r.error_code, 34);
}

/// Authenticates `c` with PLAIN as `user`; the answer.
async fn plain(c: &mut TcpStream, user: &str, password: &str) -> SaslAuthenticateResponse {
    let h: SaslHandshakeResponse = raw_kafka::call(
        c,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .await;
    assert_eq!(h.error_code, 0);
    raw_kafka::call(
        c,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(format!("\0{user}\0{password}").into_bytes().into()),
    )
    .await
}

/// Sends a Metadata request and expects the connection to close instead of an answer.
async fn closes_on_metadata(c: &mut TcpStream) {
    use bytes::BufMut;
    use kafka_protocol::protocol::Encodable;
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::new();
    buf.put_i32(0);
    kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(1)
        .encode(&mut buf, ApiKey::Metadata.request_header_version(12))
        .unwrap();
    MetadataRequest::default().encode(&mut buf, 12).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    let _ = c.write_all(&buf).await;
    let mut one = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(30), c.read(&mut one))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the connection must close: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_unless_the_client_re_authenticates() {
    const LIFETIME_MS: u64 = 5000;
    let n = sasl_node_with(&["--connections-max-reauth-ms", &LIFETIME_MS.to_string()]).await;
    let out = n.node.cli_with_stdin(
        &["user", "create", "bob", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");

    // The answer tells the client how long its session lasts (KIP-368).
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    let r = plain(&mut c, "alice", PASSWORD).await;
    assert_eq!(
        (r.error_code, r.session_lifetime_ms),
        (0, LIFETIME_MS as i64)
    );
    // Re-authenticating on the connection, as the same user: a new session, and the
    // connection serves on.
    let r = plain(&mut c, "alice", PASSWORD).await;
    assert_eq!(
        (r.error_code, r.session_lifetime_ms),
        (0, LIFETIME_MS as i64)
    );
    let _: kafka_protocol::messages::MetadataResponse =
        raw_kafka::call(&mut c, ApiKey::Metadata, 12, &MetadataRequest::default()).await;

    // Re-authenticating as someone else is refused, and the connection closes.
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    assert_eq!(plain(&mut c, "alice", PASSWORD).await.error_code, 0);
    let r = plain(&mut c, "bob", PASSWORD).await;
    assert_eq!(r.error_code, 58, "{r:?}");
    assert!(
        r.error_message
            .unwrap()
            .to_string()
            .contains("must keep the principal")
    );
    closes_on_metadata(&mut c).await;

    // A session past its lifetime without re-authentication: the next request closes
    // the connection, with one log line.
    let mut c = TcpStream::connect(&n.sasl_addr).await.unwrap();
    assert_eq!(plain(&mut c, "alice", PASSWORD).await.error_code, 0);
    tokio::time::sleep(Duration::from_millis(LIFETIME_MS + 500)).await;
    closes_on_metadata(&mut c).await;
    assert_eq!(
        n.node.log().matches("did not re-authenticate").count(),
        1,
        "{}",
        n.node.log()
    );

    // librdkafka re-authenticates by itself (KIP-368): a producer that outlives several
    // sessions keeps delivering on its connection.
    let Some(python) = clients_or_skip("sessions_end_unless_the_client_re_authenticates") else {
        return;
    };
    let script = format!(
        r#"
import time
from confluent_kafka import Producer
p = Producer({{"bootstrap.servers": "{addr}", "security.protocol": "SASL_PLAINTEXT",
              "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice",
              "sasl.password": "{pw}"}})
errors = []
for i in range(12):
    p.produce("reauth", value=b"v", on_delivery=lambda e, m: errors.append(e) if e else None)
    p.flush(30)
    time.sleep(1)
assert not errors, errors
print("delivered")
"#,
        addr = n.sasl_addr,
        pw = PASSWORD
    );
    let out = bounded(120, python.to_str().unwrap(), &["-c", &script], b"");
    assert!(out.status.success(), "{out:?}");
    // Its requests after each session's end would have closed its connection (one more
    // log line each) had it not re-authenticated.
    assert_eq!(
        n.node.log().matches("did not re-authenticate").count(),
        1,
        "{}",
        n.node.log()
    );
}
