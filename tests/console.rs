//! The web console against real nodes: its JSON API over HTTP (answers, and errors that
//! name what was wrong), the live event stream (recent events, then a leader change
//! with its failover gap), and the page itself in headless Chromium driven over the
//! DevTools protocol (`tests/console_cdp.py`): the overview lists three brokers, the
//! group page shows the lag `kavka group describe` prints, and after a SIGKILL of the
//! node the page reads, a partition leader, it says so in a banner, follows another
//! node and shows the new leader in its event strip. Screenshots go to
//! `target/console-screenshots/`. The browser part skips, saying so, without Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Cluster, Node, NodeOptions, kavka_bin, run_cli, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(60);
const CHROMIUM: &str = "/usr/bin/chromium";

/// One GET over a fresh connection: status and body.
async fn get(addr: &str, path: &str) -> (u16, String, String) {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(20), io)
        .await
        .expect("the HTTP answer took over 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

async fn get_json(addr: &str, path: &str) -> Value {
    let (status, _, body) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The JSON of `path` when it answers 200 (a node may not have seen a new topic yet).
async fn try_json(addr: &str, path: &str) -> Option<Value> {
    let (status, _, body) = get(addr, path).await;
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// GETs `path` and checks the status and that the JSON error names `needle`.
async fn expect_error(addr: &str, path: &str, status: u16, needle: &str) {
    let (got, head, body) = get(addr, path).await;
    assert_eq!(got, status, "GET {path}: {body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "GET {path}: {head}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "GET {path}: {msg:?} lacks {needle:?}");
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_and_names_what_was_wrong() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    let (addr, http) = (node.addr(), node.http_addr());
    ok(run_cli(
        &addr,
        &["topic", "create", "orders", "-p", "2"],
        b"",
    ));
    ok(run_cli(
        &addr,
        &["produce", "orders", "-p", "0", "-K", ":", "-H", "trace=abc"],
        b"k0:{\"n\":0}\nk1:{\"n\":1}\nk2:{\"n\":2}\nk3:{\"n\":3}\nk4:{\"n\":4}\n",
    ));

    let c = get_json(&http, "/api/cluster").await;
    assert_eq!(c["brokers"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["brokers"][0]["state"], "unfenced");
    assert_eq!(c["brokers"][0]["console_url"], format!("http://{http}/"));
    assert_eq!(
        (c["topic_count"].as_i64(), c["partition_count"].as_i64()),
        (Some(1), Some(2))
    );
    assert!(c["term"].as_u64().unwrap() >= 1, "{c}");

    let t = get_json(&http, "/api/topics/orders").await;
    let p0 = &t["partitions"][0];
    assert_eq!(
        (p0["leader"].as_i64(), p0["isr"].clone()),
        (Some(1), serde_json::json!([1]))
    );
    assert_eq!(p0["local"]["high_watermark"], 5);
    assert_eq!(p0["local"]["log_end_offset"], 5);
    assert!(p0["local"]["size_bytes"].as_u64().unwrap() > 0);

    let m = get_json(
        &http,
        "/api/topics/orders/partitions/0/messages?offset=1&limit=2",
    )
    .await;
    let msgs = m["messages"].as_array().unwrap();
    let offsets: Vec<i64> = msgs.iter().map(|m| m["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, [1, 2]);
    assert_eq!(msgs[0]["key"]["text"], "k1");
    assert_eq!(msgs[0]["value"]["text"], "{\"n\":1}");
    assert_eq!(msgs[0]["value"]["base64"], "eyJuIjoxfQ==");
    assert_eq!(msgs[0]["headers"][0]["key"], "trace");
    assert_eq!(msgs[0]["headers"][0]["value"]["text"], "abc");
    assert_eq!(m["next_offset"], 3);
    // By time: from the first record at or after it; no start: the latest records.
    let ts = msgs[0]["timestamp_ms"].as_i64().unwrap();
    let by_time = get_json(
        &http,
        &format!("/api/topics/orders/partitions/0/messages?timestamp={ts}&limit=1"),
    )
    .await;
    assert!(
        by_time["messages"][0]["offset"].as_i64().unwrap() <= 1,
        "{by_time}"
    );
    let tail = get_json(&http, "/api/topics/orders/partitions/0/messages?limit=2").await;
    assert_eq!(tail["messages"][1]["offset"], 4, "{tail}");

    // Bad input: 404 for what does not exist, 400 for a bad parameter, each named.
    expect_error(&http, "/api/topics/nope", 404, "unknown topic 'nope'").await;
    expect_error(
        &http,
        "/api/topics/nope/partitions/0/messages",
        404,
        "unknown topic 'nope'",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/x/messages",
        400,
        "bad partition 'x'",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/7/messages",
        404,
        "has no partition 7 (it has 2)",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/0/messages?offset=99",
        400,
        "bad offset '99': past the end of orders-0 (high watermark 5)",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/0/messages?offset=-3",
        400,
        "bad offset '-3': must not be negative",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/0/messages?offset=abc",
        400,
        "expected a whole number",
    )
    .await;
    expect_error(
        &http,
        "/api/topics/orders/partitions/0/messages?limit=0",
        400,
        "bad limit '0'",
    )
    .await;
    expect_error(
        &http,
        "/api/groups/no-such-group",
        404,
        "unknown consumer group 'no-such-group'",
    )
    .await;
    let (status, head, _) = get(&http, "/api/topics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );
    let (status, _, body) = get(&http, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Kavka console</title>"), "{body}");
}

/// The lines of a `/api/events` stream, collected as they come.
struct EventStream {
    lines: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventStream {
    async fn open(http: &str) -> EventStream {
        let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
        s.write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let task = tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(s).lines();
            while let Ok(Some(l)) = r.next_line().await {
                sink.lock().unwrap().push(l);
            }
        });
        EventStream { lines, task }
    }

    /// The `data:` of every `change` event so far, parsed.
    fn changes(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .windows(2)
            .filter(|w| w[0] == "event: change")
            .filter_map(|w| serde_json::from_str(w[1].strip_prefix("data: ")?).ok())
            .collect()
    }

    fn dump(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The CDP driver: one JSON command per line, one JSON answer per line.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start() -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() {
            eprintln!(
                "SKIPPED the browser checks: no Chromium at {CHROMIUM} (bash deploy/chromium.sh installs it)"
            );
            return None;
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console_cdp.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the CDP driver");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Browser {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one command and waits (blocking; every command is bounded by the driver).
    fn send(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the CDP driver said {line:?} ({e}) to {cmd}"));
        assert_eq!(v["ok"], true, "{cmd}: {v}");
        v["value"].clone()
    }

    fn goto(&mut self, url: &str) {
        self.send(serde_json::json!({"cmd": "goto", "url": url}));
    }

    /// Waits until `expr` is truthy in the page; its value.
    fn wait(&mut self, expr: &str) -> Value {
        self.send(serde_json::json!({"cmd": "wait", "expr": expr, "timeout": DEADLINE.as_secs()}))
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.send(serde_json::json!({"cmd": "eval", "expr": expr}))
    }

    fn screenshot(&mut self, name: &str) {
        let path = screenshots_dir().join(name);
        self.send(serde_json::json!({"cmd": "screenshot", "path": path}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", serde_json::json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    // target/<profile>/kavka -> target/console-screenshots
    let target = kavka_bin()
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap();
    target.join("console-screenshots")
}

/// Runs a blocking browser step off the async workers.
async fn in_browser<T: Send + 'static>(
    b: &mut Option<Browser>,
    f: impl FnOnce(&mut Browser) -> T + Send + 'static,
) -> Option<T> {
    let mut taken = b.take()?;
    let (out, back) = tokio::task::spawn_blocking(move || {
        let out = f(&mut taken);
        (out, taken)
    })
    .await
    .unwrap();
    *b = Some(back);
    Some(out)
}

fn lags(v: &Value) -> Vec<(String, i64, Option<i64>)> {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap().to_string(),
                p["partition"].as_i64().unwrap(),
                p["lag"].as_i64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_cluster_lag_and_a_failover_live() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    ok(run_cli(
        &all,
        &["topic", "create", "orders", "-p", "3", "-r", "3"],
        b"",
    ));
    let http: Vec<String> = cluster.nodes.iter().map(Node::http_addr).collect();
    // Every partition led by its preferred replica, as node 2 sees it.
    wait_until(
        "every partition led by its preferred replica",
        DEADLINE,
        || {
            let h = http[1].clone();
            async move {
                let Some(t) = try_json(&h, "/api/topics/orders").await else {
                    return false;
                };
                t["partitions"].as_array().unwrap().iter().all(|p| {
                    p["leader"] == p["replicas"][0] && p["isr"].as_array().unwrap().len() == 3
                })
            }
        },
    )
    .await
    .unwrap();
    let t = get_json(&http[1], "/api/topics/orders").await;
    let led_by_1 = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["leader"] == 1)
        .map(|p| p["partition"].as_i64().unwrap())
        .expect("node 1 leads one partition");

    // A group with committed offsets and lag: 12 records, all consumed and committed
    // by the group, then 7 more.
    let lines: String = (0..12).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    ok(run_cli(
        &all,
        &["produce", "orders", "-p", "0"],
        lines.as_bytes(),
    ));
    ok(run_cli(
        &all,
        &["consume", "orders", "-g", "audit", "-n", "12", "-q"],
        b"",
    ));
    let more: String = (12..19).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    ok(run_cli(
        &all,
        &["produce", "orders", "-p", "0"],
        more.as_bytes(),
    ));
    // Once the high watermark of orders-0 covers all 19 records, the numbers stay put.
    let describe = || -> Value {
        serde_json::from_str(&ok(run_cli(
            &all,
            &["group", "describe", "audit", "-o", "json"],
            b"",
        )))
        .unwrap()
    };
    wait_until(
        "group describe to see all 19 records of orders-0",
        DEADLINE,
        || {
            let settled = describe()["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["partition"] == 0 && p["log_end_offset"] == 19);
            async move { settled }
        },
    )
    .await
    .unwrap();
    let cli = describe();
    let want = lags(&cli);
    assert!(
        want.iter().any(|(_, _, l)| l.unwrap_or(0) > 0),
        "the group should lag: {cli}"
    );
    let api = get_json(&http[2], "/api/groups/audit").await;
    assert_eq!(lags(&api), want, "the API's lag is group describe's: {api}");

    // Records are read from the partition's leader: another node redirects there.
    let (status, head, _) = get(
        &http[1],
        &format!("/api/topics/orders/partitions/{led_by_1}/messages?limit=1"),
    )
    .await;
    assert_eq!(status, 307, "{head}");
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "location: http://{}/api/topics/orders/partitions/{led_by_1}/messages?limit=1",
            http[0]
        )),
        "{head}"
    );

    // The stream of node 2 (which stays up): first the node and what it saw so far.
    let stream = EventStream::open(&http[1]).await;
    wait_until("the stream's recent events", DEADLINE, || {
        let found = stream.changes().iter().any(|e| {
            e["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("orders-0: created, leader ")
        });
        async move { found }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", stream.dump()));
    assert!(
        stream
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("event: "))
            .is_some_and(|l| l == "event: hello"),
        "{}",
        stream.dump()
    );

    let mut browser = Browser::start();
    let console1 = format!("http://{}/", http[0]);
    let g = want.clone();
    in_browser(&mut browser, move |b| {
        b.goto(&console1);
        b.wait("document.querySelectorAll('#brokers tbody tr').length === 3");
        let states = b.eval("[...document.querySelectorAll('#brokers tbody tr')].map(r => r.children[1].textContent).join(',')");
        assert_eq!(states, "unfenced,unfenced,unfenced");
        b.screenshot("overview.png");
        b.goto(&format!("{console1}#/groups/audit"));
        b.wait("document.querySelectorAll('#group-partitions tbody tr').length > 0");
        let shown = b.eval(
            "JSON.stringify([...document.querySelectorAll('#group-partitions tbody tr')].map(r => [r.dataset.topic, Number(r.dataset.partition), r.dataset.lag === '-' ? null : Number(r.dataset.lag)]))",
        );
        let shown: Vec<(String, i64, Option<i64>)> =
            serde_json::from_str(shown.as_str().unwrap()).unwrap();
        assert_eq!(shown, g, "the group page shows group describe's lag");
        b.screenshot("group.png");
        // The message browser: from offset 3, two records, then as hex.
        b.goto(&format!("{console1}#/messages/orders/0"));
        b.wait("!!document.querySelector('#browse')");
        b.eval(
            "(() => { const f = document.querySelector('#browse'); f.from.value = 'offset'; f.at.value = '3'; f.limit.value = '2'; f.requestSubmit(); return true; })()",
        );
        b.wait("document.querySelectorAll('#messages tbody tr[data-offset]').length === 2");
        let first = b.eval("document.querySelector('#messages tbody tr').dataset.offset + ' ' + document.querySelector('#messages tbody tr').children[3].textContent");
        assert_eq!(first, "3 {\"n\":3}");
        b.eval(
            "(() => { const f = document.querySelector('#browse'); f.view.value = 'hex'; f.view.dispatchEvent(new Event('change')); return true; })()",
        );
        // {"n":3} in hex
        b.wait("document.querySelector('#messages').textContent.includes('7b 22 6e 22 3a 33 7d')");
        b.screenshot("messages.png");
        b.goto(&format!("{console1}#/topics/orders"));
        b.wait("document.querySelectorAll('#partitions tbody tr').length === 3");
    })
    .await;

    // SIGKILL node 1: the page's own node, and a partition leader.
    cluster.node(1).kill();
    let changed = |e: &Value| {
        e["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("orders-{led_by_1}: leader 1 → "))
    };
    wait_until("the leader change on node 2's stream", DEADLINE, || {
        let found = stream.changes().iter().any(changed);
        async move { found }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", stream.dump()));
    let event = stream.changes().into_iter().find(changed).unwrap();
    let new_leader = event["leader"].as_i64().unwrap();
    assert!(new_leader == 2 || new_leader == 3, "{event}");
    assert!(
        event["gap_ms"].as_u64().is_some(),
        "a failover after a dead leader carries its gap: {event}"
    );
    let text = format!("orders-{led_by_1}: leader 1 → {new_leader}");
    let text_js = serde_json::to_string(&text).unwrap();
    in_browser(&mut browser, move |b| {
        let banner = b.wait("!document.querySelector('#banner').hidden && document.querySelector('#banner').textContent.includes('now following') && document.querySelector('#banner').textContent");
        let banner = banner.as_str().unwrap().to_string();
        assert!(banner.starts_with("Lost node 1 "), "{banner}");
        b.wait(&format!(
            "[...document.querySelectorAll('#events li')].some(li => li.textContent.includes({text_js}))"
        ));
        b.wait(&format!(
            "document.querySelector('#partitions tr[data-partition=\"{led_by_1}\"]')?.dataset.leader === '{new_leader}'"
        ));
        b.screenshot("failover.png");
        b.eval("location.hash = '#/'");
        b.wait("document.querySelector('#brokers tr[data-broker-id=\"1\"]')?.children[1].textContent === 'fenced'");
        b.screenshot("failover-overview.png");
    })
    .await;
}
