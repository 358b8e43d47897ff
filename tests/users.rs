//! `kavka user create|delete|list` against a real node: the password only from stdin,
//! credentials a Kafka client describes the same way, bad input refused naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::{Node, NodeOptions};
use tokio::net::TcpStream;

fn listed(node: &Node) -> Vec<(String, String, u64)> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(node.cli(&["user", "list", "-o", "json"]))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user"].as_str().unwrap().to_string(),
                u["mechanism"].as_str().unwrap().to_string(),
                u["iterations"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_are_managed_from_the_cli() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    let out = ok(node.cli_with_stdin(
        &[
            "user",
            "create",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
            "--iterations",
            "8192",
        ],
        b"pa55word\n",
    ));
    assert!(out.contains("Created user alice (SCRAM-SHA-512)"), "{out}");
    ok(node.cli_with_stdin(&["user", "create", "alice", "--password-stdin"], b"other\n"));
    assert_eq!(
        listed(&node),
        vec![
            ("alice".to_string(), "SCRAM-SHA-256".to_string(), 4096),
            ("alice".to_string(), "SCRAM-SHA-512".to_string(), 8192),
        ]
    );
    // The password is nowhere in what the node logged.
    assert!(!node.log().contains("pa55word"));

    // A Kafka client describes the same credentials.
    let mut c = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let d: DescribeUserScramCredentialsResponse = raw_kafka::call(
        &mut c,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    )
    .await;
    let infos: Vec<(String, i8, i32)> = d
        .results
        .iter()
        .flat_map(|r| {
            r.credential_infos
                .iter()
                .map(|i| (r.user.to_string(), i.mechanism, i.iterations))
        })
        .collect();
    assert_eq!(
        infos,
        vec![
            ("alice".to_string(), 1, 4096),
            ("alice".to_string(), 2, 8192)
        ]
    );

    // Bad input names what was wrong, and changes nothing.
    fails_with(
        node.cli_with_stdin(&["user", "create", "bob", "--password-stdin"], b"\n"),
        "the password on stdin is empty",
    );
    fails_with(
        node.cli_with_stdin(
            &[
                "user",
                "create",
                "bob",
                "--mechanism",
                "PLAIN",
                "--password-stdin",
            ],
            b"x\n",
        ),
        "unknown mechanism 'PLAIN'",
    );
    fails_with(
        node.cli_with_stdin(
            &[
                "user",
                "create",
                "bob",
                "--password-stdin",
                "--iterations",
                "100",
            ],
            b"x\n",
        ),
        "iterations must be between 4096 and 16384, got 100",
    );
    fails_with(
        node.cli_with_stdin(&["user", "create", "bob"], b"x\n"),
        "--password-stdin",
    );
    fails_with(
        node.cli(&["user", "delete", "nobody"]),
        "user 'nobody' has no SCRAM credentials",
    );
    assert_eq!(listed(&node).len(), 2);

    // Delete one mechanism, then the rest.
    ok(node.cli(&["user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"]));
    assert_eq!(
        listed(&node),
        vec![("alice".to_string(), "SCRAM-SHA-512".to_string(), 8192)]
    );
    let out = ok(node.cli(&["user", "delete", "alice"]));
    assert!(out.contains("Deleted user alice (SCRAM-SHA-512)"), "{out}");
    assert!(listed(&node).is_empty());
}
