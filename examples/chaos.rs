//! The chaos run (`deploy/chaos`): against the docker compose cluster (or, with
//! `--local`, three local `kavka` processes), the history checker's idempotent acks=all
//! workload writes while a bounded, seeded random schedule of faults hits the cluster —
//! `kill` a partition leader (then start it), `pause` one (then unpause),
//! `pause-preferred`: freeze a preferred replica while it follows, for longer than the
//! preferred-leader rebalance interval, so a rebalance happens while it is silent (issue
//! 22) — and, with compose, `disconnect` a leader's network (then connect). The run ends
//! with a table: faults by kind, records acknowledged, lost, duplicated (a single
//! duplicate from the idempotent producers is a violation), divergent replicas, failover
//! gaps (median, max) and a one-line verdict. The exit code is non-zero on any violation.
//!
//! Every fault is healed before the next one and the cluster must be whole again (every
//! replica back in the ISR) within a deadline, so the run stops by itself.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kavka_client::{Client, NewTopic};
use kavka_harness::Cluster;
use kavka_harness::checker::{self, Report, Workload};
use kavka_harness::compose::{self, Compose};
use kavka_harness::kafka_clients::RdkafkaProducer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Kill,
    Pause,
    /// Freeze a preferred replica that follows, across a rebalance interval.
    PausePreferred,
    Disconnect,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::PausePreferred => "pause-preferred",
            Kind::Disconnect => "disconnect",
        }
    }
}

/// What the faults hit: the compose project's containers or local processes.
enum Target {
    Compose(Compose),
    Local(Cluster),
}

impl Target {
    fn bootstrap(&self) -> String {
        match self {
            Target::Compose(c) => c.bootstrap(),
            Target::Local(c) => c.bootstrap(),
        }
    }

    fn kafka_bootstrap(&self) -> String {
        match self {
            Target::Compose(c) => c.kafka_bootstrap(),
            Target::Local(c) => c.kafka_bootstrap(),
        }
    }

    async fn inject(&mut self, kind: Kind, node: i32) -> anyhow::Result<()> {
        match (self, kind) {
            (Target::Compose(c), Kind::Kill) => c.kill(node),
            (Target::Compose(c), Kind::Pause | Kind::PausePreferred) => c.pause(node),
            (Target::Compose(c), Kind::Disconnect) => c.disconnect(node),
            (Target::Local(c), Kind::Kill) => {
                c.node(node).kill();
                Ok(())
            }
            (Target::Local(c), Kind::Pause | Kind::PausePreferred) => {
                c.node(node).pause();
                Ok(())
            }
            (Target::Local(_), Kind::Disconnect) => {
                bail!("disconnect needs the docker compose cluster (not --local)")
            }
        }
    }

    async fn heal(&mut self, kind: Kind, node: i32) -> anyhow::Result<()> {
        match (self, kind) {
            (Target::Compose(c), Kind::Kill) => c.start(node),
            (Target::Compose(c), Kind::Pause | Kind::PausePreferred) => c.unpause(node),
            (Target::Compose(c), Kind::Disconnect) => c.connect(node),
            (Target::Local(c), Kind::Kill) => c.node(node).start_again().await,
            (Target::Local(c), _) => {
                c.node(node).resume();
                Ok(())
            }
        }
    }

    /// Each node's data dir (compose: copied out of the container; local: the nodes are
    /// stopped first).
    fn data_dirs(
        &mut self,
        scratch: &std::path::Path,
    ) -> anyhow::Result<Vec<(i32, std::path::PathBuf)>> {
        let mut dirs = Vec::new();
        match self {
            Target::Compose(c) => {
                for n in 1..=3 {
                    let dest = scratch.join(format!("node-{n}"));
                    c.copy_data(n, &dest)?;
                    dirs.push((n, dest));
                }
            }
            Target::Local(c) => {
                for n in &mut c.nodes {
                    n.kill();
                    dirs.push((n.node_id(), n.data_dir()));
                }
            }
        }
        Ok(dirs)
    }
}

#[derive(Parser, Debug)]
#[command(about = "Chaos run against the docker compose cluster, checked for lost writes")]
struct Args {
    /// Number of faults (at most 300).
    #[arg(long, default_value_t = 12)]
    faults: usize,
    /// Fault kinds, taken in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,pause,pause-preferred,disconnect"
    )]
    kinds: Vec<Kind>,
    /// Three local `kavka` processes on 127.0.0.1 instead of the compose project
    /// (no `disconnect`); they run with --rebalance-interval-ms.
    #[arg(long)]
    local: bool,
    /// The cluster's preferred-leader rebalance interval
    /// (`--leader-imbalance-check-interval-ms`; 10 s by default): a `pause-preferred`
    /// fault lasts at least this plus a second, so a rebalance happens during it.
    #[arg(long, default_value_t = 10_000)]
    rebalance_interval_ms: u64,
    /// How long each fault lasts before it is healed, in ms (a random part of up to as
    /// much again is added).
    #[arg(long, default_value_t = 3000)]
    hold_ms: u64,
    /// Seed of the random schedule (default: from the clock); printed for replays.
    #[arg(long)]
    seed: Option<u64>,
    /// Compose project to attack (the repository's .env names it `kavka`).
    #[arg(long, default_value = "kavka")]
    project: String,
    /// Host ports of kavka-1..3 (KAVKA_1_PORT..KAVKA_3_PORT).
    #[arg(long, value_delimiter = ',', default_value = "9093,9094,9095")]
    ports: Vec<u16>,
    /// Start a fresh project of that name first and take it down (with its volumes)
    /// at the end, instead of attacking a running one.
    #[arg(long)]
    fresh: bool,
    /// Concurrent producers (kavka-client, idempotent).
    #[arg(long, default_value_t = 3)]
    producers: usize,
    /// Also run a librdkafka idempotent producer (needs `deploy/kafka-clients.sh`): its
    /// acknowledgements are checked like the others'. `false` to leave it out.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    librdkafka: bool,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

/// xorshift64*: a seeded schedule in a few lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const SETTLE: Duration = Duration::from_secs(90);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if args.faults == 0 || args.faults > 300 || args.kinds.is_empty() {
        bail!("--faults must be 1..=300 and --kinds non-empty");
    }
    let mut cluster = if args.local {
        if args.kinds.contains(&Kind::Disconnect) {
            bail!("--local cannot disconnect a node: leave disconnect out of --kinds");
        }
        let interval = args.rebalance_interval_ms.to_string();
        Target::Local(
            Cluster::start(
                &["controller,broker"; 3],
                &["--leader-imbalance-check-interval-ms", &interval],
            )
            .await?,
        )
    } else {
        if let Some(why) = compose::unavailable() {
            bail!("cannot run the chaos run: {why}");
        }
        let ports: [u16; 3] = args
            .ports
            .clone()
            .try_into()
            .map_err(|_| anyhow::anyhow!("--ports takes three ports"))?;
        let c = if args.fresh {
            let c = Compose::new(&args.project, ports);
            c.up()?;
            c
        } else {
            Compose::existing(&args.project, ports)
        };
        c.wait_healthy(SETTLE)
            .await
            .context("the cluster is not healthy (docker compose ps)")?;
        Target::Compose(c)
    };
    let bootstrap = cluster.bootstrap();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let mut rng = Rng(seed);
    let topic = format!("chaos-{seed:x}");
    let mut client = Client::connect(&bootstrap).await?;
    client
        .create_topic(NewTopic {
            name: topic.clone(),
            partitions: args.partitions,
            replication_factor: 3,
            configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            ..NewTopic::default()
        })
        .await?;
    println!(
        "chaos run: {} faults ({}) on {}, topic {topic} ({} partitions, RF 3, min.insync.replicas 2), seed {seed}",
        args.faults,
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(","),
        if args.local {
            "local processes".to_string()
        } else {
            format!("project {}", args.project)
        },
        args.partitions
    );
    settle(&bootstrap, &topic, args.partitions).await?;
    let workload = Workload::start(&bootstrap, &topic, args.producers);
    let rdkafka = if args.librdkafka {
        let python = kavka_harness::kafka_clients::clients().map_err(|why| {
            anyhow::anyhow!("--librdkafka needs the Kafka clients ({why}); run deploy/kafka-clients.sh or pass --librdkafka false")
        })?;
        println!("a librdkafka idempotent producer writes too");
        Some(RdkafkaProducer::start(
            &python,
            &cluster.kafka_bootstrap(),
            &topic,
            3600,
        )?)
    } else {
        None
    };
    wait_for_progress(&workload, 200).await?;

    let started = Instant::now();
    for i in 0..args.faults {
        let kind = args.kinds[i % args.kinds.len()];
        let victim = pick_victim(&bootstrap, &topic, kind, &mut rng).await?;
        workload
            .fault(&bootstrap, &topic, kind.name(), victim)
            .await;
        let mut hold = Duration::from_millis(args.hold_ms + rng.below(args.hold_ms + 1));
        if kind == Kind::PausePreferred {
            hold = hold.max(Duration::from_millis(args.rebalance_interval_ms + 1000));
        }
        println!(
            "[{:>6.1}s] fault {}/{}: {} kavka-{victim} for {:.1}s",
            started.elapsed().as_secs_f64(),
            i + 1,
            args.faults,
            kind.name(),
            hold.as_secs_f64()
        );
        cluster.inject(kind, victim).await?;
        tokio::time::sleep(hold).await;
        cluster.heal(kind, victim).await?;
        settle(&bootstrap, &topic, args.partitions)
            .await
            .with_context(|| format!("after healing kavka-{victim}"))?;
        wait_for_progress(&workload, 50).await?;
    }
    let mut history = workload.stop().await;
    if let Some(rd) = rdkafka {
        let acks = tokio::task::spawn_blocking(move || rd.stop()).await??;
        let unknown = acks.iter().filter(|a| a.offset.is_none()).count();
        println!(
            "librdkafka acknowledged {} records ({unknown} without an offset)",
            acks.len()
        );
        history
            .acked
            .extend(acks.into_iter().filter_map(|a| a.into_ack()));
    }
    let hws = checker::settled_high_watermarks(&bootstrap, &topic, 3, SETTLE).await?;
    let copies = tempfile::Builder::new().prefix("kavka-chaos-").tempdir()?;
    let dirs = cluster.data_dirs(copies.path())?;
    let report = checker::verify(&history, &topic, &dirs, &hws)?;
    print_table(&args, &report);
    Ok(report.ok())
}

/// The node a fault hits: a partition leader, or for `pause-preferred` a preferred
/// replica that follows (any follower when every partition is led by its preferred one).
async fn pick_victim(
    bootstrap: &str,
    topic: &str,
    kind: Kind,
    rng: &mut Rng,
) -> anyhow::Result<i32> {
    let mut client = Client::connect(bootstrap).await?;
    let partitions = client.describe_topic(topic).await?.partitions;
    let pool: Vec<i32> = if kind == Kind::PausePreferred {
        let preferred: Vec<i32> = partitions
            .iter()
            .filter(|p| p.replicas.first().is_some_and(|r| *r != p.leader))
            .map(|p| p.replicas[0])
            .collect();
        if preferred.is_empty() {
            partitions
                .iter()
                .flat_map(|p| p.isr.iter().copied().filter(move |r| *r != p.leader))
                .collect()
        } else {
            preferred
        }
    } else {
        partitions
            .iter()
            .map(|p| p.leader)
            .filter(|l| *l > 0)
            .collect()
    };
    if pool.is_empty() {
        bail!("no node of {topic} fits a {} fault", kind.name());
    }
    Ok(pool[rng.below(pool.len() as u64) as usize])
}

/// Every partition led and every replica in the ISR.
async fn settle(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    kavka_harness::wait_until("every replica back in the ISR", SETTLE, || async {
        let Ok(mut c) = Client::connect(bootstrap).await else {
            return false;
        };
        c.describe_topic(topic).await.is_ok_and(|d| {
            d.partitions.len() == partitions as usize
                && d.partitions
                    .iter()
                    .all(|p| p.leader > 0 && p.isr.len() == p.replicas.len())
        })
    })
    .await
}

async fn wait_for_progress(w: &Workload, more: usize) -> anyhow::Result<()> {
    let want = w.acked() + more;
    kavka_harness::wait_until("the workload to make progress", SETTLE, || async {
        w.acked() >= want
    })
    .await
}

fn print_table(args: &Args, r: &Report) {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "\n{:<16} {:>6} {:>16} {:>12}",
        "FAULT", "COUNT", "GAP MEDIAN", "GAP MAX"
    );
    let mut kinds: Vec<&'static str> = args.kinds.iter().map(|k| k.name()).collect();
    kinds.dedup();
    for k in kinds {
        let count = (0..args.faults)
            .filter(|i| args.kinds[i % args.kinds.len()].name() == k)
            .count();
        let (median, max) = r.gap_stats(Some(k));
        println!("{k:<16} {count:>6} {:>16} {:>12}", secs(median), secs(max));
    }
    let (median, max) = r.gap_stats(None);
    println!(
        "{:<16} {:>6} {:>16} {:>12}\n",
        "all",
        r.faults,
        secs(median),
        secs(max)
    );
    println!("records acknowledged   {}", r.acked);
    println!("indeterminate sends    {}", r.indeterminate);
    println!("lost                   {}", r.lost.len());
    println!("duplicated             {}", r.duplicated.len());
    println!("offset gaps            {}", r.gaps_in_offsets.len());
    println!("divergent replicas     {}", r.divergent.len());
    println!("split-brain epochs     {}", r.split_brain.len());
    for problem in r
        .lost
        .iter()
        .chain(&r.duplicated)
        .chain(&r.gaps_in_offsets)
        .chain(&r.divergent)
        .chain(&r.split_brain)
        .take(20)
    {
        println!("  {problem}");
    }
    if r.ok() {
        println!(
            "verdict: OK — no acknowledged record lost or duplicated, replicas identical, one leader per epoch"
        );
    } else {
        println!("verdict: VIOLATED — see the lines above");
    }
}
