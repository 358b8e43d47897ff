//! `kavka consume`: prints records with a format template or as JSON lines.

use super::{OutputFormat, connect};
use anyhow::{Context, bail};
use clap::Args;
use indicatif::ProgressBar;
use kavka_client::{
    ConsumedRecord, Consumer, GroupConsumer, GroupConsumerConfig, OffsetReset, OffsetSpec,
};
use std::io::{IsTerminal, Write};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Start at the earliest offset (default: the latest).
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    pub from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "from_timestamp")]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time: ms since the epoch or RFC 3339.
    #[arg(long)]
    pub from_timestamp: Option<String>,
    /// Keep waiting for new records instead of exiting at the end.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub max_messages: Option<u64>,
    /// Template: %t topic, %p partition, %o offset, %k key, %v value, %h headers,
    /// %T timestamp (ms), %K key size, %S value size, %% a percent sign; \n \t escapes.
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Print no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Consume as a member of this group: partitions assigned by the coordinator,
    /// reading from the group's committed offsets and committing what was printed.
    #[arg(long, short = 'g', conflicts_with_all = ["partition", "offset", "from_timestamp"])]
    pub group: Option<String>,
}

/// Plain partitions, or a group's share of them.
enum Source {
    Assigned(Box<Consumer>),
    Group(Box<GroupConsumer>),
}

impl Source {
    async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, kavka_client::ClientError> {
        match self {
            Source::Assigned(c) => c.poll().await,
            Source::Group(g) => g.poll().await,
        }
    }

    fn at_end(&self) -> bool {
        match self {
            Source::Assigned(c) => c.at_end(),
            Source::Group(g) => g.at_end(),
        }
    }

    /// A group member commits what it read and leaves.
    async fn finish(self) -> Result<(), kavka_client::ClientError> {
        match self {
            Source::Assigned(_) => Ok(()),
            Source::Group(g) => g.close().await,
        }
    }
}

const DEFAULT_FORMAT: &str = "%p/%o\t%T\t%k\t%v\t%h";

fn parse_timestamp(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).with_context(|| {
        format!(
            "invalid timestamp '{s}': use ms since the epoch or RFC 3339 (2026-11-25T10:00:00Z)"
        )
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

fn text(b: &Option<bytes::Bytes>) -> String {
    b.as_ref()
        .map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
}

/// Renders one record with a kcat-style template.
pub fn render(template: &str, r: &ConsumedRecord) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.push_str(&r.topic),
                Some('p') => out.push_str(&r.partition.to_string()),
                Some('o') => out.push_str(&r.offset.to_string()),
                Some('k') => out.push_str(&text(&r.key)),
                Some('v') => out.push_str(&text(&r.value)),
                Some('T') => out.push_str(&r.timestamp_ms.to_string()),
                Some('K') => {
                    out.push_str(&r.key.as_ref().map_or(-1, |k| k.len() as i64).to_string())
                }
                Some('S') => {
                    out.push_str(&r.value.as_ref().map_or(-1, |v| v.len() as i64).to_string())
                }
                Some('h') => {
                    let hs: Vec<String> = r
                        .headers
                        .iter()
                        .map(|h| format!("{}={}", h.key, text(&h.value)))
                        .collect();
                    out.push_str(&hs.join(","));
                }
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

fn json_line(r: &ConsumedRecord) -> serde_json::Value {
    serde_json::json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
        "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
        "value": r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
        "headers": r.headers.iter().map(|h| (h.key.clone(), serde_json::json!(h.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())))).collect::<serde_json::Map<_, _>>(),
    })
}

pub async fn run(bootstrap: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    if args.format.is_some() && args.output == OutputFormat::Json {
        bail!("--format and --output json cannot be used together");
    }
    let start = match (args.from_beginning, args.offset, &args.from_timestamp) {
        (true, _, _) => OffsetSpec::Earliest,
        (_, Some(o), _) => OffsetSpec::Offset(o),
        (_, _, Some(ts)) => OffsetSpec::Timestamp(parse_timestamp(ts)?),
        _ => OffsetSpec::Latest,
    };
    let client = connect(bootstrap).await?;
    let mut consumer = match &args.group {
        Some(group) => {
            let mut config = GroupConsumerConfig::new(group.clone(), vec![args.topic.clone()]);
            config.client_id = "kavka-cli".into();
            config.auto_offset_reset = if args.from_beginning {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            };
            Source::Group(Box::new(GroupConsumer::subscribe(client, config)?))
        }
        None => {
            let partitions = args.partition.map(|p| vec![p]);
            Source::Assigned(Box::new(
                Consumer::assign(client, &args.topic, partitions, start).await?,
            ))
        }
    };
    let template = match &args.format {
        Some(f) => f.clone(),
        None => DEFAULT_FORMAT.to_string(),
    };
    let template = if template.ends_with("\\n") || template.ends_with('\n') {
        template
    } else {
        format!("{template}\\n")
    };

    let started = Instant::now();
    let progress =
        if !args.quiet && std::io::stderr().is_terminal() && !std::io::stdout().is_terminal() {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
    let (mut count, mut bytes) = (0u64, 0u64);
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    'outer: while count < limit {
        if !args.follow && consumer.at_end() {
            break;
        }
        let records = consumer.poll().await?;
        let mut out = stdout.lock();
        for r in records {
            let line = match args.output {
                OutputFormat::Json => format!("{}\n", json_line(&r)),
                OutputFormat::Table => render(&template, &r),
            };
            if let Err(e) = out.write_all(line.as_bytes()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    break 'outer;
                }
                return Err(e.into());
            }
            count += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64)
                + r.key.as_ref().map_or(0, |k| k.len() as u64);
            if count >= limit {
                break;
            }
        }
        let _ = out.flush();
        progress.set_position(count);
    }
    progress.finish_and_clear();
    consumer.finish().await?;
    if !args.quiet {
        eprintln!(
            "{}",
            super::produce::summary("Consumed", count, bytes, started.elapsed())
        );
        if count == 0 && start == OffsetSpec::Latest && !args.follow {
            eprintln!("(started at the latest offset: use --from-beginning or --follow)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kavka_record::Header;

    #[test]
    fn renders_templates() {
        let r = ConsumedRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 1000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![Header {
                key: "source".into(),
                value: Some(Bytes::from_static(b"cli")),
            }],
        };
        assert_eq!(render("%p/%o %k=%v %h", &r), "2/7 k1=hello source=cli");
        assert_eq!(render("%t %T %K %S 100%%\\n", &r), "orders 1000 2 5 100%\n");
    }

    #[test]
    fn parses_timestamps() {
        assert_eq!(parse_timestamp("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(
            parse_timestamp("yesterday")
                .unwrap_err()
                .to_string()
                .contains("invalid timestamp 'yesterday'")
        );
    }
}
