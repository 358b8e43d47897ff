//! `kavka dev`: a playground with embedded defaults — one combined node in this process,
//! or `--nodes N` combined nodes as child processes of this binary on consecutive ports.
//!
//! Invariants: the playground reads neither a config file nor `KAVKA_*` variables (only
//! its own flags); the child processes are stopped (SIGTERM, then killed) when it stops.

use super::config::{ServerArgs, ServerConfig};
use super::serve::{READY_TIMEOUT, serve};
use super::shutdown::shutdown_signal;
use anyhow::{Context, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, default_value = "./kavka-data")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9093")]
    listen: String,
    /// Kafka wire-protocol listen address (node N of --nodes listens 100 * (N - 1)
    /// ports higher).
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_listen: String,
    /// HTTP listen address: metrics, health, the web console (node N of --nodes listens
    /// N - 1 ports higher; '' for none).
    #[arg(long, default_value = "127.0.0.1:9644")]
    http_listen: String,
    /// Durability: replicated or fsync.
    #[arg(long, default_value = "replicated")]
    log_flush: String,
    /// Run this many nodes (each controller and broker) as local processes, on
    /// consecutive ports from --listen's, with data in <data-dir>/node-<id>.
    #[arg(long, default_value_t = 1)]
    nodes: u16,
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes > 1 {
        return dev_cluster(args).await;
    }
    let mut flags = ServerConfig::default();
    flags.node.node_id = Some(1);
    flags.node.data_dir = Some(args.data_dir);
    flags.listeners.listen = Some(args.listen);
    flags.kafka.kafka_listeners = Some(format!("PLAINTEXT://{}", args.kafka_listen));
    flags.listeners.http_listen = Some(args.http_listen);
    flags.node.log_flush = Some(args.log_flush);
    flags.node.num_partitions = Some(1);
    let settings = ServerArgs {
        config: None,
        flags,
    }
    .resolve_flags_only()?;
    serve(settings, true).await
}

/// `kavka dev --nodes N`: N combined nodes as child processes of this binary.
async fn dev_cluster(args: DevArgs) -> anyhow::Result<()> {
    let base: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("invalid listen address '{}': expected ip:port", args.listen))?;
    let n = args.nodes;
    if n > 9 {
        bail!("kavka dev runs at most 9 nodes, got {n}");
    }
    if base.port() > u16::MAX - 20 {
        bail!(
            "--listen port {} leaves no room for the nodes' ports above it",
            base.port()
        );
    }
    let addr = |i: u16| SocketAddr::new(base.ip(), base.port() + i - 1);
    let kafka_base: SocketAddr = args.kafka_listen.parse().with_context(|| {
        format!(
            "invalid Kafka listen address '{}': expected ip:port",
            args.kafka_listen
        )
    })?;
    let kafka_addr = |i: u16| SocketAddr::new(kafka_base.ip(), kafka_base.port() + 100 * (i - 1));
    let http_base: Option<SocketAddr> = (!args.http_listen.is_empty())
        .then(|| {
            args.http_listen.parse().with_context(|| {
                format!(
                    "invalid HTTP listen address '{}': expected ip:port",
                    args.http_listen
                )
            })
        })
        .transpose()?;
    let http_addr = |i: u16| {
        http_base.map_or_else(String::new, |b| {
            SocketAddr::new(b.ip(), b.port().saturating_add(i - 1)).to_string()
        })
    };
    // Each node's controller listener, ten ports above the gRPC ones.
    let controller_addr = |i: u16| SocketAddr::new(base.ip(), base.port() + 10 + i - 1);
    let voters = (1..=n)
        .map(|i| format!("{i}@{}", controller_addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    // The nodes share this machine's cores: each runs that share of worker threads, as
    // a node of its own machine runs one per core.
    let io_threads = io_threads_per_node(
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n,
    )
    .to_string();
    let exe = std::env::current_exe().context("cannot find the kavka binary")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    // The voters speak Raft only with each other: one secret for the local quorum, made
    // once and kept with its data.
    let secret = args.data_dir.join("controller-secret");
    crate::cli::cluster::create_secret(&secret)?;
    let mut children = Vec::new();
    for i in 1..=n {
        let dir = args.data_dir.join(format!("node-{i}"));
        let log_path = args.data_dir.join(format!("node-{i}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = tokio::process::Command::new(&exe)
            .arg("server")
            .args([
                "--node-id",
                &i.to_string(),
                "--listen",
                &addr(i).to_string(),
                "--controller-voters",
                &voters,
                "--log-flush",
                &args.log_flush,
                "--kafka-listeners",
                &format!("PLAINTEXT://{}", kafka_addr(i)),
                "--http-listen",
                &http_addr(i),
                "--num-io-threads",
                &io_threads,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .arg("--controller-secret-file")
            .arg(&secret)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        children.push((i, child));
    }
    // Ready once every broker answers with itself unfenced.
    let bootstrap = (1..=n)
        .map(|i| addr(i).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match kavka_client::Client::connect(&bootstrap).await {
            Ok(mut c) => c
                .metadata(vec![])
                .await
                .is_ok_and(|md| md.brokers.iter().filter(|b| !b.fenced).count() == n as usize),
            Err(_) => false,
        };
        if ready {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the {n} nodes did not come up within {READY_TIMEOUT:?}; see {}/node-*.log",
                args.data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("kavka dev: {n} nodes ready (controller and broker each)");
    for i in 1..=n {
        let console = http_addr(i);
        println!(
            "  node {i}  gRPC {}  Kafka {}  console {}  data {}/node-{i}  log {}/node-{i}.log",
            addr(i),
            kafka_addr(i),
            if console.is_empty() {
                "-".to_string()
            } else {
                format!("http://{console}/")
            },
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    println!(
        "  try:     export KAVKA_BOOTSTRAP={bootstrap}\n           kavka quorum status; kavka topic create orders --partitions 6 --replication-factor 3"
    );
    // Nodes may be killed on purpose (to watch an election): report it, keep the rest.
    let report_exits = async {
        let mut reported = std::collections::BTreeSet::new();
        loop {
            for (i, c) in children.iter_mut() {
                if !reported.contains(i)
                    && let Ok(Some(status)) = c.try_wait()
                {
                    reported.insert(*i);
                    eprintln!(
                        "node {i} exited ({status}); restart it with:\n  kavka server --node-id {i} --listen {} --kafka-listeners PLAINTEXT://{} --controller-voters {voters} --num-io-threads {io_threads} --data-dir {}/node-{i} --controller-secret-file {}",
                        addr(*i),
                        kafka_addr(*i),
                        args.data_dir.display(),
                        secret.display()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = report_exits => {}
    }
    for (_, c) in children.iter_mut() {
        if let Some(pid) = c.id() {
            // SIGTERM lets each node stop cleanly; kill_on_drop covers the rest.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (_, mut c) in children {
        let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
    }
    Ok(())
}

/// Each of `nodes` local nodes' share of the machine's `cores`: at least one thread.
fn io_threads_per_node(cores: usize, nodes: u16) -> usize {
    (cores / usize::from(nodes.max(1))).max(1)
}

#[cfg(test)]
mod tests {
    use super::io_threads_per_node;

    #[test]
    fn nodes_split_the_cores_and_each_keeps_at_least_one_thread() {
        for (cores, nodes, want) in [
            (2, 1, 2),
            (2, 2, 1),
            (2, 3, 1),
            (8, 3, 2),
            (16, 3, 5),
            (1, 9, 1),
            (4, 0, 4),
        ] {
            assert_eq!(
                io_threads_per_node(cores, nodes),
                want,
                "{cores} cores, {nodes} nodes"
            );
        }
    }
}
