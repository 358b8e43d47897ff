//! The admin and data CLI: each subcommand connects, calls the client, and prints a
//! table for people or JSON for scripts.

pub mod cluster;
pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;
pub mod watch;

use anyhow::Context;
use clap::ValueEnum;
use kavka_client::Client;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

pub async fn connect(bootstrap: &str) -> anyhow::Result<Client> {
    Client::connect(bootstrap).await.with_context(|| {
        format!("cannot reach kavka at {bootstrap} (set --bootstrap or KAVKA_BOOTSTRAP)")
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
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
