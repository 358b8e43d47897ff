//! `kavka acl create|list|delete` against a real node: ACLs made over gRPC are the ones
//! Kafka clients see (one metadata log), bad flags are refused naming what was wrong,
//! and a delete with no filter is refused rather than deleting everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::{Node, NodeOptions};
use tokio::net::TcpStream;

/// `kavka acl list -o json` as (principal, operation, permission, resource type, name,
/// pattern type).
fn listed(node: &Node, args: &[&str]) -> Vec<[String; 6]> {
    let mut all = vec!["acl", "list", "-o", "json"];
    all.extend_from_slice(args);
    let v: serde_json::Value = serde_json::from_str(&ok(node.cli(&all))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| {
            [
                "principal",
                "operation",
                "permission",
                "resource_type",
                "resource_name",
                "pattern_type",
            ]
            .map(|k| a[k].as_str().unwrap().to_string())
        })
        .collect()
}

fn row(p: &str, op: &str, perm: &str, t: &str, name: &str, pattern: &str) -> [String; 6] {
    [p, op, perm, t, name, pattern].map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_managed_from_the_cli_and_seen_by_kafka_clients() {
    let node = Node::start(NodeOptions::default()).await.unwrap();

    // Every principal × operation × resource, as kafka-acls --add does.
    let out = ok(node.cli(&[
        "acl",
        "create",
        "--allow-principal",
        "User:analytics",
        "--operation",
        "read",
        "--operation",
        "describe",
        "--topic",
        "events-",
        "--resource-pattern-type",
        "prefixed",
    ]));
    assert_eq!(out.matches("Created:").count(), 2, "{out}");
    ok(node.cli(&[
        "acl",
        "create",
        "--deny-principal",
        "User:intern",
        "--operation",
        "all",
        "--topic",
        "payroll",
        "--group",
        "payroll-readers",
    ]));
    // Creating one that exists succeeds and changes nothing.
    ok(node.cli(&[
        "acl",
        "create",
        "--deny-principal",
        "User:intern",
        "--operation",
        "all",
        "--topic",
        "payroll",
    ]));
    assert_eq!(listed(&node, &[]).len(), 4);
    assert_eq!(
        listed(&node, &["--principal", "User:intern", "--topic", "payroll"]),
        vec![row(
            "User:intern",
            "all",
            "deny",
            "topic",
            "payroll",
            "literal"
        )]
    );
    // MATCH: the ACLs that apply to one topic under the prefix.
    assert_eq!(
        listed(
            &node,
            &[
                "--topic",
                "events-clicks",
                "--resource-pattern-type",
                "match"
            ]
        ),
        // Listed in a stable order: by pattern, then principal, host and operation.
        vec![
            row(
                "User:analytics",
                "read",
                "allow",
                "topic",
                "events-",
                "prefixed"
            ),
            row(
                "User:analytics",
                "describe",
                "allow",
                "topic",
                "events-",
                "prefixed"
            ),
        ]
    );

    // A Kafka client sees the same ACLs (DescribeAcls v3, filter on one principal).
    let mut c = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let described: DescribeAclsResponse = raw_kafka::call(
        &mut c,
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(StrBytes::from_static_str("User:intern")))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    )
    .await;
    assert_eq!(described.error_code, 0);
    let mut names: Vec<String> = described
        .resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["payroll", "payroll-readers"]);

    // Bad input names what was wrong.
    let create = |extra: &[&str]| {
        let mut args = vec!["acl", "create"];
        args.extend_from_slice(extra);
        node.cli(&args)
    };
    fails_with(
        create(&[
            "--allow-principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "t",
        ]),
        "invalid principal 'alice'",
    );
    fails_with(
        create(&[
            "--allow-principal",
            "User:a",
            "--operation",
            "frobnicate",
            "--topic",
            "t",
        ]),
        "unknown operation 'frobnicate'",
    );
    fails_with(
        create(&["--allow-principal", "User:a", "--operation", "read"]),
        "give --topic, --group, --cluster or --transactional-id",
    );
    fails_with(
        create(&["--operation", "read", "--topic", "t"]),
        "give --allow-principal or --deny-principal",
    );
    fails_with(
        node.cli(&["acl", "delete"]),
        "an empty filter would delete every ACL",
    );
    assert_eq!(listed(&node, &[]).len(), 4, "nothing changed");

    // Delete by principal: reported, then gone.
    let out = ok(node.cli(&["acl", "delete", "--principal", "User:intern"]));
    assert!(out.contains("Deleted 2 ACLs."), "{out}");
    assert!(listed(&node, &["--principal", "User:intern"]).is_empty());
    assert_eq!(listed(&node, &[]).len(), 2);
}
