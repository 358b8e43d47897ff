//! `kavka`: the one binary — server roles, the `dev` playground, the admin CLI and
//! benchmarks.

#[macro_use]
mod cli;
mod bench;
mod log_levels;
mod meta_properties;
mod server;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kavka",
    version,
    about = "Kavka: a Kafka-compatible event log cluster"
)]
struct Cli {
    #[command(flatten)]
    connect: cli::profile::ConnectArgs,
    /// Authenticate as this user (a SCRAM user made with `kavka user create`); the
    /// password comes from KAVKA_PASSWORD or --password-file. Needed where the cluster
    /// enforces ACLs.
    #[arg(long, global = true, env = "KAVKA_USER")]
    user: Option<String>,
    /// A file holding --user's password (one line).
    #[arg(long, global = true, env = "KAVKA_PASSWORD_FILE")]
    password_file: Option<std::path::PathBuf>,
    /// Act as a node of the cluster, with every permission, by presenting its shared
    /// secret (the nodes' controller_secret_file): how the first users and ACLs are made
    /// once ACLs are enforced. Keep the file as private as the nodes' data.
    #[arg(
        long,
        global = true,
        env = "KAVKA_CLUSTER_SECRET_FILE",
        conflicts_with = "user"
    )]
    cluster_secret_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node (TOML file, KAVKA_* environment variables and flags; flags win).
    Server(Box<server::ServerArgs>),
    /// Run a one-node playground with embedded defaults.
    Dev(server::DevArgs),
    /// Create, list, describe, delete topics and change their configs.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Produce records from stdin or a file, one per line.
    Produce(cli::produce::ProduceArgs),
    /// Consume records and print them.
    Consume(cli::consume::ConsumeArgs),
    /// Consumer groups: list, describe with lag, reset offsets, delete.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// The controller quorum.
    #[command(subcommand)]
    Quorum(cli::cluster::QuorumCommand),
    /// Brokers, their sessions, and topics with their replicas.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
    /// ACLs: who may do what to which topic, group, transactional id or the cluster.
    #[command(subcommand)]
    Acl(cli::acl::AclCommand),
    /// Brokers: list with their load, decommission (move every replica off), recommission.
    #[command(subcommand)]
    Broker(cli::broker::BrokerCommand),
    /// Partition moves (Kafka's reassignment): move, list ongoing moves, cancel.
    #[command(subcommand)]
    Partition(cli::partition::PartitionCommand),
    /// SCRAM users: create (password from stdin), delete, list.
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Client quotas (producer_byte_rate, consumer_byte_rate, request_percentage) on
    /// users and client ids: alter, describe.
    #[command(subcommand)]
    Quota(cli::quota::QuotaCommand),
    /// Exit 0 if the node at --bootstrap serves (for container health checks).
    Health,
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Connection profiles: a bootstrap list, TLS files and a user, by name.
    #[command(subcommand)]
    Profile(cli::profile::ProfileCommand),
}

/// Huge untouched reservations (a Kafka frame declaring billions of elements) cost
/// address space, not an abort: see `kavka_kafka::alloc`.
#[global_allocator]
static ALLOC: kavka_kafka::alloc::LazyHuge = kavka_kafka::alloc::LazyHuge;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default) for servers and the CLI alike: a peer that
    // hangs up mid-request is an error to report, not a silent death (rc 141). Output to
    // a closed pipe (`| head`) ends the CLI quietly in `cli::write_line`.
    let cli = Cli::parse();
    let is_server = matches!(cli.command, Command::Server(_) | Command::Dev(_));
    let process = match &cli.command {
        Command::Server(args) => match args.process_settings() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => server::ProcessSettings::default(),
    };
    init_tracing(is_server, process.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = process.io_threads {
        builder.worker_threads(n.get());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let connects = !matches!(
            cli.command,
            Command::Server(_) | Command::Dev(_) | Command::Profile(_)
        );
        // Flags over the selected profile; only commands that connect read it.
        let bootstrap = if connects {
            let c = cli::profile::Connection::resolve(&cli.connect)?;
            // --user (or KAVKA_USER) wins over the profile's user.
            let user = cli.user.clone().or_else(|| c.user.clone());
            cli::set_credentials(
                user.as_deref(),
                cli.password_file.as_deref(),
                cli.cluster_secret_file.as_deref(),
            )?;
            tracing::debug!(bootstrap = %c.bootstrap, tls = ?c.tls, user = ?user, "connecting");
            let bootstrap = c.bootstrap.clone();
            cli::set_connection(c);
            bootstrap
        } else {
            String::new()
        };
        match cli.command {
            Command::Server(args) => server::run(*args).await,
            Command::Dev(args) => server::dev(args).await,
            Command::Profile(cmd) => cli::profile::run(&cli.connect, cli.user.clone(), cmd),
            Command::Topic(cmd) => cli::topic::run(&bootstrap, cmd).await,
            Command::Acl(cmd) => cli::acl::run(&bootstrap, cmd).await,
            Command::User(cmd) => cli::user::run(&bootstrap, cmd).await,
            Command::Quota(cmd) => cli::quota::run(&bootstrap, cmd).await,
            Command::Partition(cmd) => cli::partition::run(&bootstrap, cmd).await,
            Command::Broker(cmd) => cli::broker::run(&bootstrap, cmd).await,
            Command::Produce(args) => cli::produce::run(&bootstrap, args).await,
            Command::Consume(args) => cli::consume::run(&bootstrap, args).await,
            Command::Group(cmd) => cli::group::run(&bootstrap, cmd).await,
            Command::Quorum(cmd) => cli::cluster::quorum(&bootstrap, cmd).await,
            Command::Cluster(cmd) => cli::cluster::cluster(&bootstrap, cmd).await,
            Command::Health => cli::cluster::health(&bootstrap).await,
            Command::Bench(cmd) => bench::run(&bootstrap, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// openraft's modules that warn once per failed attempt to reach a peer.
const OPENRAFT_PEER_NOISE: &str = "openraft::core::heartbeat=error,openraft::replication=error,openraft::engine::handler::replication_handler=error";

fn init_tracing(is_server: bool, format: server::LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if is_server {
        "info,openraft=warn"
    } else {
        "warn"
    };
    let spec = std::env::var("KAVKA_LOG")
        .ok()
        .filter(|s| tracing_subscriber::EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| default.to_string());
    // openraft warns at every attempt to reach a dead voter (twice a second, with the
    // whole error chain); our Raft network logs that once, then every 30 s with a count.
    // Unless the filter asks for openraft by name, those per-attempt warnings are off.
    let spec = if spec.contains("openraft") {
        spec
    } else {
        format!("{spec},{OPENRAFT_PEER_NOISE}")
    };
    let filter = tracing_subscriber::EnvFilter::new(&spec);
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        server::LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .init(),
        // One object per line: time, level, message and fields, and the spans it is in.
        server::LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
    if is_server {
        log_levels::install(handle, &spec);
    }
}
