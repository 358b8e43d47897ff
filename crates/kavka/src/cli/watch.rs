//! `kavka cluster watch`: the cluster live, from one broker's `WatchCluster` stream.
//!
//! The watcher keeps its own copy of the cluster and turns every change it is sent into
//! a timestamped event line ("orders-3: leader 2 → 1, epoch 7 → 8, ISR [2,1,3] → [1,3]").
//! When the broker it watches dies or goes silent (no message, not even a keepalive, for
//! [`SILENCE_LIMIT`]) it moves to the next address it knows — the bootstrap list, then the
//! brokers the cluster named — and diffs that broker's full view against its own copy, so
//! changes made while it was switching still show as events.

use kavka_broker::cluster_view::{ClusterState, Event, Subject, leader_name, list};
use kavka_proto::v1::{self, admin_service_client::AdminServiceClient};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

/// A stream that brings nothing for this long is given up (the server sends a keepalive
/// every second).
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a changed row stays highlighted in the full-screen view.
const HIGHLIGHT: Duration = Duration::from_secs(5);
/// Event lines kept for the full-screen view.
const EVENTS_SHOWN: usize = 12;

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Where the view goes: event lines, or a redrawn screen.
trait Display {
    fn events(&mut self, state: &ClusterState, events: Vec<Event>);
    fn tick(&mut self, state: &ClusterState, watching: &str);
}

struct Plain;

impl Display for Plain {
    fn events(&mut self, _: &ClusterState, events: Vec<Event>) {
        let ts = timestamp();
        for e in events {
            outln!("{ts} {}", e.text);
        }
    }
    fn tick(&mut self, _: &ClusterState, _: &str) {}
}

struct FullScreen {
    log: VecDeque<String>,
    changed: HashMap<Subject, Instant>,
}

const BOLD_YELLOW: &str = "\x1b[1;33m";
const RESET: &str = "\x1b[0m";

fn terminal_rows() -> usize {
    #[cfg(unix)]
    {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ only fills the winsize struct we own.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_row > 0 {
            return usize::from(ws.ws_row);
        }
    }
    40
}

impl FullScreen {
    fn hot(&self, s: &Subject) -> bool {
        self.changed.get(s).is_some_and(|t| t.elapsed() < HIGHLIGHT)
    }

    fn line(&self, out: &mut String, subject: &Subject, text: &str) {
        if self.hot(subject) {
            let _ = writeln!(out, "{BOLD_YELLOW}{text}{RESET}");
        } else {
            let _ = writeln!(out, "{text}");
        }
    }

    fn render(&self, state: &ClusterState, watching: &str) -> String {
        let mut out = String::from("\x1b[H\x1b[2J");
        let _ = writeln!(
            out,
            "kavka cluster watch — cluster {}  (via broker {} at {watching}; Ctrl-C quits)",
            state.cluster_id, state.node_id
        );
        self.line(
            &mut out,
            &Subject::Controller,
            &format!(
                "active controller: {}   Raft term: {}   metadata offset: {}",
                leader_name(state.controller_id),
                state.term,
                state.metadata_offset
            ),
        );
        let _ = writeln!(out, "\nBROKER  ADDRESS                   RACK      STATE");
        for b in state.brokers.values() {
            self.line(
                &mut out,
                &Subject::Broker(b.id),
                &format!(
                    "{:<7} {:<25} {:<9} {}",
                    b.id,
                    format!("{}:{}", b.host, b.port),
                    if b.rack.is_empty() { "-" } else { &b.rack },
                    if b.fenced { "FENCED" } else { "unfenced" }
                ),
            );
        }
        let room = terminal_rows()
            .saturating_sub(state.brokers.len() + EVENTS_SHOWN + 9)
            .max(3);
        let _ = writeln!(
            out,
            "\n{:<28} {:>6} {:>6}  {:<12} {:<12} ELR",
            "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"
        );
        for (i, p) in state.partitions.values().enumerate() {
            if i == room {
                let _ = writeln!(out, "… {} more", state.partitions.len() - room);
                break;
            }
            let under = p.isr.len() < p.replicas.len();
            self.line(
                &mut out,
                &Subject::Partition(p.topic.clone(), p.partition),
                &format!(
                    "{:<28} {:>6} {:>6}  {:<12} {:<12} {}{}",
                    format!("{}-{}", p.topic, p.partition),
                    leader_name(p.leader.into()),
                    p.leader_epoch,
                    list(&p.replicas),
                    list(&p.isr),
                    if p.elr.is_empty() {
                        "-".into()
                    } else {
                        list(&p.elr)
                    },
                    if p.leader < 0 {
                        "  OFFLINE"
                    } else if under {
                        "  under-replicated"
                    } else {
                        ""
                    }
                ),
            );
        }
        let _ = writeln!(out, "\nEVENTS");
        for l in &self.log {
            let _ = writeln!(out, "{l}");
        }
        out
    }
}

impl Display for FullScreen {
    fn events(&mut self, _: &ClusterState, events: Vec<Event>) {
        let ts = timestamp();
        let now = Instant::now();
        for e in events {
            self.changed.insert(e.subject, now);
            self.log.push_back(format!("{ts} {}", e.text));
            while self.log.len() > EVENTS_SHOWN {
                self.log.pop_front();
            }
        }
    }
    fn tick(&mut self, state: &ClusterState, watching: &str) {
        print!("{}", self.render(state, watching));
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}

async fn open(addr: &str) -> anyhow::Result<tonic::Streaming<v1::ClusterView>> {
    let endpoint = super::endpoint(addr)?.connect_timeout(CONNECT_TIMEOUT);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}"))??;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        AdminServiceClient::with_interceptor(channel, crate::cli::credentials())
            .watch_cluster(v1::WatchClusterRequest {}),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}"))?
    .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(stream.into_inner())
}

/// Watches until Ctrl-C, moving from node to node as they fail.
pub async fn run(bootstrap: &str, plain: bool) -> anyhow::Result<()> {
    let seeds = kavka_client::parse_bootstrap(bootstrap)?;
    let full_screen = !plain && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut display: Box<dyn Display> = if full_screen {
        print!("\x1b[?1049h\x1b[?25l");
        Box::new(FullScreen {
            log: VecDeque::new(),
            changed: HashMap::new(),
        })
    } else {
        Box::new(Plain)
    };
    let result = tokio::select! {
        r = watch(&seeds, display.as_mut()) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    if full_screen {
        print!("\x1b[?25h\x1b[?1049l");
    }
    result
}

async fn watch(seeds: &[String], display: &mut dyn Display) -> anyhow::Result<()> {
    let mut state = ClusterState::default();
    let mut next = 0usize;
    let mut watching = String::new();
    loop {
        let mut candidates: Vec<String> = seeds.to_vec();
        for a in state.broker_addrs() {
            if !candidates.contains(&a) {
                candidates.push(a);
            }
        }
        let addr = candidates[next % candidates.len()].clone();
        next += 1;
        let mut stream = match open(&addr).await {
            Ok(s) => s,
            Err(e) => {
                if next.is_multiple_of(candidates.len()) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                tracing::debug!(%addr, error = %e, "cannot watch");
                continue;
            }
        };
        if watching != addr {
            display.events(
                &state,
                vec![Event::new(Subject::Watcher, format!("watching {addr}"))],
            );
            watching = addr.clone();
        }
        let ended = loop {
            match tokio::time::timeout(SILENCE_LIMIT, stream.message()).await {
                Err(_) => break format!("silent for {SILENCE_LIMIT:?}"),
                Ok(Err(s)) => break s.message().to_string(),
                Ok(Ok(None)) => break "stream closed".to_string(),
                Ok(Ok(Some(view))) => {
                    let events = state.apply(view);
                    display.events(&state, events);
                    display.tick(&state, &addr);
                }
            }
        };
        display.events(
            &state,
            vec![Event::new(
                Subject::Watcher,
                format!("lost {addr} ({ended}); moving to another node"),
            )],
        );
        // Start over from the first address, skipping the one that just failed.
        next = candidates
            .iter()
            .position(|a| *a == addr)
            .map_or(0, |i| i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32, leader: i32, epoch: i32, isr: &[i32]) -> v1::PartitionView {
        v1::PartitionView {
            topic: topic.into(),
            partition,
            leader,
            leader_epoch: epoch,
            replicas: vec![2, 1, 3],
            isr: isr.to_vec(),
            elr: vec![],
        }
    }

    fn b(id: i32, fenced: bool) -> v1::BrokerInfo {
        v1::BrokerInfo {
            id,
            host: format!("kavka-{id}"),
            port: 9093,
            rack: String::new(),
            fenced,
            decommissioned: false,
        }
    }

    fn view(full: bool, controller: i64, term: u64) -> v1::ClusterView {
        v1::ClusterView {
            full,
            controller_id: controller,
            term,
            ..v1::ClusterView::default()
        }
    }

    #[test]
    fn the_full_screen_highlights_what_just_changed() {
        let mut s = ClusterState::default();
        s.apply(v1::ClusterView {
            brokers: vec![b(1, false)],
            partitions: vec![p("orders", 0, 1, 0, &[1])],
            ..view(true, 1, 1)
        });
        let mut screen = FullScreen {
            log: VecDeque::new(),
            changed: HashMap::new(),
        };
        let events = s.apply(v1::ClusterView {
            partitions: vec![p("orders", 0, -1, 1, &[1])],
            ..view(false, 1, 1)
        });
        screen.events(&s, events);
        let out = screen.render(&s, "localhost:9093");
        assert!(
            out.contains("orders-0: leader 1 → none, epoch 0 → 1"),
            "{out}"
        );
        assert!(out.contains(&format!("{BOLD_YELLOW}orders-0")), "{out}");
        assert!(out.contains("OFFLINE"), "{out}");
        assert!(
            !out.contains(&format!("{BOLD_YELLOW}1 ")),
            "broker 1 did not change: {out}"
        );
    }
}
