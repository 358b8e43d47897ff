//! The chaos run (`deploy/chaos`): against the docker compose cluster, the history
//! checker's acks=all workload writes while a bounded, seeded random schedule of faults
//! hits partition leaders — `docker kill` (then start), `docker pause` (then unpause),
//! `docker network disconnect` (then connect) — and the run ends with a table: faults by
//! kind, records acknowledged, lost, duplicated, divergent replicas, failover gaps
//! (median, max) and a one-line verdict. The exit code is non-zero on any violation.
//!
//! Every fault is healed before the next one and the cluster must be whole again (every
//! replica back in the ISR) within a deadline, so the run stops by itself.

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kavka_client::{Client, NewTopic};
use kavka_harness::checker::{self, Report, Workload};
use kavka_harness::compose::{self, Compose};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Kill,
    Pause,
    Disconnect,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Disconnect => "disconnect",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Chaos run against the docker compose cluster, checked for lost writes")]
struct Args {
    /// Number of faults (at most 300).
    #[arg(long, default_value_t = 12)]
    faults: usize,
    /// Fault kinds, taken in turn.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,disconnect")]
    kinds: Vec<Kind>,
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
    /// Concurrent producers.
    #[arg(long, default_value_t = 3)]
    producers: usize,
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
    if let Some(why) = compose::unavailable() {
        bail!("cannot run the chaos run: {why}");
    }
    if args.faults == 0 || args.faults > 300 || args.kinds.is_empty() {
        bail!("--faults must be 1..=300 and --kinds non-empty");
    }
    let ports: [u16; 3] = args
        .ports
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("--ports takes three ports"))?;
    let cluster = if args.fresh {
        let c = Compose::new(&args.project, ports);
        c.up()?;
        c
    } else {
        Compose::existing(&args.project, ports)
    };
    cluster
        .wait_healthy(SETTLE)
        .await
        .context("the cluster is not healthy (docker compose ps)")?;
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
        })
        .await?;
    println!(
        "chaos run: {} faults ({}) on project {}, topic {topic} ({} partitions, RF 3, min.insync.replicas 2), seed {seed}",
        args.faults,
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(","),
        args.project,
        args.partitions
    );
    settle(&bootstrap, &topic, args.partitions).await?;
    let workload = Workload::start(&bootstrap, &topic, args.producers);
    wait_for_progress(&workload, 200).await?;

    let started = Instant::now();
    for i in 0..args.faults {
        let kind = args.kinds[i % args.kinds.len()];
        let leaders = checker::leaders(&bootstrap, &topic)
            .await
            .context("no metadata from the cluster")?;
        let led: Vec<i32> = leaders
            .values()
            .map(|(l, _)| *l)
            .filter(|l| *l > 0)
            .collect();
        if led.is_empty() {
            bail!("no partition of {topic} has a leader");
        }
        let victim = led[rng.below(led.len() as u64) as usize];
        workload
            .fault(&bootstrap, &topic, kind.name(), victim)
            .await;
        let hold = Duration::from_millis(args.hold_ms + rng.below(args.hold_ms + 1));
        println!(
            "[{:>6.1}s] fault {}/{}: {} kavka-{victim} for {:.1}s",
            started.elapsed().as_secs_f64(),
            i + 1,
            args.faults,
            kind.name(),
            hold.as_secs_f64()
        );
        match kind {
            Kind::Kill => cluster.kill(victim)?,
            Kind::Pause => cluster.pause(victim)?,
            Kind::Disconnect => cluster.disconnect(victim)?,
        }
        tokio::time::sleep(hold).await;
        match kind {
            Kind::Kill => cluster.start(victim)?,
            Kind::Pause => cluster.unpause(victim)?,
            Kind::Disconnect => cluster.connect(victim)?,
        }
        settle(&bootstrap, &topic, args.partitions)
            .await
            .with_context(|| format!("after healing kavka-{victim}"))?;
        wait_for_progress(&workload, 50).await?;
    }
    let history = workload.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, &topic, 3, SETTLE).await?;
    let copies = tempfile::Builder::new().prefix("kavka-chaos-").tempdir()?;
    let mut dirs = Vec::new();
    for n in 1..=3 {
        let dest = copies.path().join(format!("node-{n}"));
        cluster.copy_data(n, &dest)?;
        dirs.push((n, dest));
    }
    let report = checker::verify(&history, &topic, &dirs, &hws)?;
    print_table(&args, &report);
    Ok(report.ok())
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
        "\n{:<12} {:>6} {:>16} {:>12}",
        "FAULT", "COUNT", "GAP MEDIAN", "GAP MAX"
    );
    let mut kinds: Vec<&'static str> = args.kinds.iter().map(|k| k.name()).collect();
    kinds.dedup();
    for k in kinds {
        let count = (0..args.faults)
            .filter(|i| args.kinds[i % args.kinds.len()].name() == k)
            .count();
        let (median, max) = r.gap_stats(Some(k));
        println!("{k:<12} {count:>6} {:>16} {:>12}", secs(median), secs(max));
    }
    let (median, max) = r.gap_stats(None);
    println!(
        "{:<12} {:>6} {:>16} {:>12}\n",
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
