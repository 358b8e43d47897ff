//! `kavka produce`: one record per input line, optionally `key<delim>value`, with headers.

use super::{connect, parse_kv};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kavka_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use kavka_record::{Compression, Header};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

/// Lines read per request.
const LINES_PER_SEND: usize = 2000;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Split each line at the first occurrence into key and value.
    #[arg(long, short = 'K')]
    pub key_delimiter: Option<String>,
    /// A header on every record, key=value (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_kv)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition (default: by key, sticky when keyless).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, short = 'z', default_value = "none")]
    pub compression: String,
    /// 0, 1 or all (-1). The default is all, as Kafka's producer's since 3.0.
    #[arg(long, default_value = "all", allow_negative_numbers = true)]
    pub acks: String,
    /// Kafka's batch.size in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub batch_size: usize,
    /// Kafka's enable.idempotence (with --acks all): retries are written once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_idempotence: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn producer_config(
    compression: &str,
    acks: &str,
    batch_size: usize,
    enable_idempotence: bool,
) -> anyhow::Result<ProducerConfig> {
    let compression = Compression::from_name(compression).with_context(|| {
        format!("unknown compression '{compression}': use none, gzip, snappy, lz4 or zstd")
    })?;
    let acks =
        Acks::parse(acks).with_context(|| format!("invalid acks '{acks}': use 0, 1 or all"))?;
    if batch_size == 0 {
        bail!("batch size must be > 0");
    }
    Ok(ProducerConfig {
        acks,
        compression,
        batch_bytes: batch_size,
        enable_idempotence,
        ..ProducerConfig::default()
    })
}

pub async fn run(bootstrap: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let config = producer_config(
        &args.compression,
        &args.acks,
        args.batch_size,
        args.enable_idempotence,
    )?;
    if args.key_delimiter.as_deref() == Some("") {
        bail!("key delimiter must not be empty");
    }
    let reader: Box<dyn BufRead + Send> = match &args.file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let client = connect(bootstrap).await?;
    let mut producer = Producer::new(client, config);
    let headers: Vec<Header> = args
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: k.clone(),
            value: Some(Bytes::from(v.clone())),
        })
        .collect();

    // Lines are read on a blocking thread and handed over in chunks (bounded queue).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<String>>>(4);
    std::thread::spawn(move || {
        let mut chunk = Vec::with_capacity(LINES_PER_SEND);
        for line in reader.lines() {
            match line {
                Ok(l) => chunk.push(l),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if chunk.len() == LINES_PER_SEND
                && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
            {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });

    let progress = if !args.quiet && std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {pos} records {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = rx.recv().await {
        let lines = chunk.context("cannot read input")?;
        let records: Vec<ProducerRecord> = lines
            .into_iter()
            .map(|line| {
                let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
                let (key, value) = match &args.key_delimiter {
                    Some(d) => match line.split_once(d.as_str()) {
                        Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                        None => (None, line),
                    },
                    None => (None, line),
                };
                bytes += value.len() as u64 + key.as_ref().map_or(0, |k| k.len() as u64);
                ProducerRecord {
                    key,
                    value: Some(Bytes::from(value)),
                    headers: headers.clone(),
                    partition: args.partition,
                    timestamp_ms: None,
                }
            })
            .collect();
        let n = records.len() as u64;
        producer.send(&args.topic, records).await.with_context(|| {
            format!(
                "produce to topic '{}' failed after {count} records",
                args.topic
            )
        })?;
        count += n;
        progress.set_position(count);
    }
    progress.finish_and_clear();
    if !args.quiet {
        eprintln!("{}", summary("Produced", count, bytes, started.elapsed()));
    }
    Ok(())
}

pub fn summary(verb: &str, count: u64, bytes: u64, took: std::time::Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    format!(
        "{verb} {count} records ({}) in {:.2} s: {:.0} records/s, {:.2} MB/s",
        super::topic::human_bytes(bytes),
        secs,
        count as f64 / secs,
        bytes as f64 / secs / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ProduceArgs,
    }

    fn config(argv: &[&str]) -> anyhow::Result<ProducerConfig> {
        let a = Cmd::try_parse_from(argv)?.args;
        producer_config(&a.compression, &a.acks, a.batch_size, a.enable_idempotence)
    }

    #[test]
    fn acks_default_to_all_and_idempotent_as_kafkas_producer() {
        let c = config(&["produce", "t"]).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.enable_idempotence);
        // (argv tail, acks, idempotence asked)
        let cases: &[(&[&str], Acks, bool)] = &[
            (&["--acks", "1"], Acks::Leader, true),
            (&["--acks", "0"], Acks::None, true),
            (&["--acks", "-1"], Acks::All, true),
            (&["--enable-idempotence", "false"], Acks::All, false),
        ];
        for (tail, acks, idem) in cases {
            let argv: Vec<&str> = ["produce", "t"]
                .iter()
                .chain(tail.iter())
                .copied()
                .collect();
            let c = config(&argv).unwrap();
            assert_eq!((c.acks, c.enable_idempotence), (*acks, *idem), "{tail:?}");
        }
        let e = config(&["produce", "t", "--acks", "2"]).unwrap_err();
        assert!(e.to_string().contains("invalid acks '2'"), "{e}");
    }
}
