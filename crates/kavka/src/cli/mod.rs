//! The admin and data CLI: each subcommand connects, calls the client, and prints a
//! table for people or JSON for scripts.

/// `println!` for command output: when the reader of stdout is gone (`kavka topic list |
/// head -1`) the command ends quietly with success, as Unix tools do, instead of
/// panicking. (The CLI keeps SIGPIPE ignored, so a peer that hangs up on a socket is an
/// error it reports, never a silent death by signal.)
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

pub mod acl;
pub mod balance;
pub mod broker;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod partition;
pub mod produce;
pub mod profile;
pub mod quota;
pub mod topic;
pub mod user;
pub mod watch;

use anyhow::Context;
use clap::ValueEnum;
use kavka_client::{Client, Credentials};
use std::io::Write;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// How this invocation connects (bootstrap, plaintext or TLS, the profile's user): set
/// once by `main` from the flags and the profile, before any command runs.
static CONNECTION: std::sync::OnceLock<profile::Connection> = std::sync::OnceLock::new();

/// Sets how every connection of this invocation is made.
pub fn set_connection(connection: profile::Connection) {
    let _ = CONNECTION.set(connection);
}

/// How this invocation connects (`None` before `main` set it: plaintext).
pub fn connection() -> Option<&'static profile::Connection> {
    CONNECTION.get()
}

pub fn transport() -> kavka_client::Transport {
    connection()
        .map(|c| c.transport.clone())
        .unwrap_or_default()
}

/// An endpoint for `addr` with this invocation's transport.
pub fn endpoint(addr: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    Ok(transport().endpoint(addr)?)
}

/// The credentials of this invocation (`--user`), set once before any command runs.
static CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// Reads `--user`'s password (from `password_file`, else KAVKA_PASSWORD), or the
/// cluster's secret, and keeps the credentials every connection of this invocation
/// presents.
pub fn set_credentials(
    user: Option<&str>,
    password_file: Option<&std::path::Path>,
    cluster_secret_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let credentials = match (user, cluster_secret_file) {
        (_, Some(path)) => {
            let secret = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the cluster secret file {}", path.display())
            })?;
            Credentials::cluster_secret(&secret)?
        }
        (None, None) => Credentials::default(),
        (Some(user), None) => {
            let password = match password_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the password file {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                None => std::env::var("KAVKA_PASSWORD").map_err(|_| {
                    anyhow::anyhow!(
                        "--user {user} needs a password: set KAVKA_PASSWORD or --password-file"
                    )
                })?,
            };
            Credentials::user(user, &password)?
        }
    };
    let _ = CREDENTIALS.set(credentials);
    Ok(())
}

/// The credentials every connection presents (none unless `--user`).
pub fn credentials() -> Credentials {
    CREDENTIALS.get().cloned().unwrap_or_default()
}

pub async fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    Client::connect_using(bootstrap, &transport(), credentials())
        .await
        .with_context(|| {
            format!(
                "cannot reach kavka at {bootstrap} (set --bootstrap or KAVKA_BOOTSTRAP, or a profile)"
            )
        })
}

/// Parses `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got '{s}'")),
    }
}

pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(
        header
            .iter()
            .map(|h| comfy_table::Cell::new(h).add_attribute(comfy_table::Attribute::Bold)),
    );
    t
}

pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Writes one line to stdout; see `outln!`.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
