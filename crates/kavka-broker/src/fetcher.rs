//! Replica fetchers, follower side: one task per leader broker, holding one long-lived
//! `ReplicaFetch` stream that multiplexes every partition this broker follows from that
//! leader (DESIGN §5).
//!
//! Invariants:
//! - a partition is fetched in a leader epoch only after it truncated its divergent
//!   suffix for that epoch (KIP-101/279: OffsetForLeaderEpoch until the histories agree);
//! - fetched batches are written exactly as received, and only while the partition still
//!   follows the same leader epoch (checked under the log lock);
//! - every fetch carries the follower's log end offset and its last batch's epoch;
//! - partitions take turns at the head of the fetch (those that brought records move to
//!   the back, as in Kafka's fetcher), so a response budget
//!   (`replica.fetch.response.max.bytes`) that fills up on some starves none.
//!
//! Fetches are built and read in model types (`kavka_model::data::ReplicaFetch`,
//! `ReplicaFetched`), converted to and from the wire by `kavka-proto`'s `conv`.

use crate::partition::{Partition, Role, blocking};
use crate::replica_manager::ReplicaManager;
use kavka_model::data::{ReplicaFetch, ReplicaFetchOutcome, ReplicaFetchPartition, ReplicaFetched};
use kavka_model::failure_log::{FailureLog, Report};
use kavka_model::{BrokerId, ErrorCode, LeaderEpoch, Offset};
use kavka_proto::auth::PresentSecret;
use kavka_proto::v1::{self, broker_service_client::BrokerServiceClient};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A client of a leader's broker service, presenting the cluster's secret.
type Client = BrokerServiceClient<InterceptedService<Channel, PresentSecret>>;

/// The HTTP/2 frame size this follower accepts from its leader (the default is 16 KiB):
/// a fetch answer of records arrives in a few large frames, so in a few large reads,
/// rather than as one 16 KiB frame (and about one read) after another.
const REPLICA_FETCH_FRAME_BYTES: u32 = 1 << 20;
/// Pause after errors, so a broken partition or leader does not spin.
const BACKOFF: Duration = Duration::from_millis(100);
/// How often a fetcher holding only throttled partitions looks again.
const THROTTLE_WAIT: Duration = Duration::from_millis(50);
/// Bound on OffsetForLeaderEpoch rounds for one truncation.
const TRUNCATION_ROUNDS_MAX: usize = 64;

/// Runs a fetcher for every leader this broker follows partitions from, until `shutdown`.
/// Its calls present the cluster's secret (`secret`), which the leader's gate takes as
/// a node of this cluster (replication is allowed whatever the ACLs).
pub async fn run(
    replicas: Arc<ReplicaManager>,
    secret: PresentSecret,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut followed = replicas.followed();
    let mut tasks: HashMap<BrokerId, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let leaders: Vec<BrokerId> = followed
            .borrow_and_update()
            .by_leader
            .keys()
            .copied()
            .collect();
        for leader in leaders {
            if tasks.get(&leader).is_none_or(|t| t.is_finished()) {
                tasks.insert(
                    leader,
                    tokio::spawn(fetch_from(
                        Arc::clone(&replicas),
                        leader,
                        secret.clone(),
                        shutdown.clone(),
                    )),
                );
            }
        }
        tokio::select! {
            r = followed.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

fn partitions_of(
    followed: &watch::Receiver<crate::replica_manager::Followed>,
    leader: BrokerId,
) -> Vec<Arc<Partition>> {
    followed
        .borrow()
        .by_leader
        .get(&leader)
        .cloned()
        .unwrap_or_default()
}

/// The fetcher for one leader; returns once it follows nothing from it.
async fn fetch_from(
    replicas: Arc<ReplicaManager>,
    leader: BrokerId,
    secret: PresentSecret,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut followed = replicas.followed();
    let mut failures = FailureLog::default();
    loop {
        if *shutdown.borrow() || partitions_of(&followed, leader).is_empty() {
            return;
        }
        let addr = replicas
            .image()
            .broker(leader)
            .and_then(|b| b.endpoint("grpc").map(|e| format!("{}:{}", e.host, e.port)));
        let transport = &replicas.config().client_port_transport;
        let client = addr.and_then(|a| {
            transport.endpoint(&a).ok().map(|e| {
                e.connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .max_frame_size(REPLICA_FETCH_FRAME_BYTES)
            })
        });
        let Some(endpoint) = client else {
            tracing::debug!(%leader, "no address for the leader yet");
            if pause(&mut shutdown, BACKOFF).await {
                return;
            }
            continue;
        };
        let client = BrokerServiceClient::with_interceptor(endpoint.connect_lazy(), secret.clone())
            .max_decoding_message_size(crate::service::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(crate::service::MESSAGE_BYTES_MAX);
        match session(
            &replicas,
            leader,
            client,
            &mut followed,
            &mut shutdown,
            &mut failures,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                match failures.failed(std::time::Instant::now()) {
                    Report::Started => {
                        tracing::warn!(%leader, error = %e, "replica fetcher: cannot fetch from the leader (logged again every 30 s while it fails)");
                    }
                    Report::StillFailing { attempts, for_ } => {
                        tracing::warn!(%leader, error = %e, attempts, for_s = for_.as_secs(), "replica fetcher: still failing to fetch from the leader");
                    }
                    _ => tracing::debug!(%leader, error = %e, "replica fetch session ended"),
                }
                if pause(&mut shutdown, BACKOFF).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps, or returns true at once if shutdown fired.
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

/// One stream to the leader: fetch rounds until the stream breaks (`Err`), or nothing is
/// followed from this leader any more, or shutdown (`Ok`).
async fn session(
    replicas: &Arc<ReplicaManager>,
    leader: BrokerId,
    mut client: Client,
    followed: &mut watch::Receiver<crate::replica_manager::Followed>,
    shutdown: &mut watch::Receiver<bool>,
    failures: &mut FailureLog,
) -> Result<(), String> {
    let config = replicas.config().clone();
    let me = config.node_id;
    let (mut tx, mut responses) = open_stream(&mut client).await?;
    if let Report::Recovered { attempts, after } = failures.succeeded(std::time::Instant::now()) {
        tracing::info!(%leader, attempts, after_s = after.as_secs(), "replica fetcher: fetching from the leader again");
    }
    // Where in the followed partitions the next fetch starts.
    let mut head: usize = 0;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let parts = partitions_of(followed, leader);
        if parts.is_empty() {
            return Ok(());
        }
        let asked: Vec<_> = parts.iter().map(|p| p.tp.clone()).collect();
        let mut ready = Vec::with_capacity(parts.len());
        for p in parts {
            if p.needs_truncation()
                && let Err(e) = truncate(&mut client, me, &p).await
            {
                tracing::debug!(partition = %p.tp, error = %e, "truncation deferred");
                continue;
            }
            let (role, epoch) = p.role();
            if role == Role::Follower(leader) && !p.needs_truncation() {
                ready.push((p, epoch));
            }
        }
        // A replica being moved in waits while this broker's follower throttle is over.
        let follower_rate = replicas
            .dynamic_config()
            .follower_replication_throttled_rate;
        let held = follower_rate.is_some_and(|rate| {
            crate::throttle::with(&replicas.throttles.follower, |b| {
                b.over(rate, std::time::Instant::now())
            })
        });
        if held {
            ready.retain(|(p, _)| !p.is_moving_in(me));
        }
        if ready.is_empty() {
            let wait = if held { THROTTLE_WAIT } else { BACKOFF };
            if pause(shutdown, wait).await {
                return Ok(());
            }
            continue;
        }
        let turn = head % ready.len();
        ready.rotate_left(turn);
        let mut request = ReplicaFetch {
            replica: me,
            max_wait_ms: config.replica_fetch_wait_max_ms,
            max_bytes: config.replica_fetch_max_bytes.saturating_mul(8),
            partitions: Vec::with_capacity(ready.len()),
        };
        for (p, epoch) in &ready {
            let (leo, last_epoch) = p.fetch_position();
            request.partitions.push(ReplicaFetchPartition {
                tp: p.tp.clone(),
                fetch_offset: leo,
                last_fetched_epoch: (last_epoch >= 0).then_some(LeaderEpoch(last_epoch)),
                current_leader_epoch: *epoch,
                max_bytes: config.replica_fetch_max_bytes,
            });
        }
        tx.send(v1::ReplicaFetchRequest::from(&request))
            .await
            .map_err(|_| "stream closed".to_string())?;
        let wait =
            Duration::from_millis(config.replica_fetch_wait_max_ms) + Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + wait;
        let resp = loop {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, responses.message()) => break match r {
                    Err(_) => return Err("leader did not answer in time".into()),
                    Ok(Err(s)) => return Err(s.to_string()),
                    Ok(Ok(None)) => return Err("leader closed the stream".into()),
                    Ok(Ok(Some(resp))) => Some(resp),
                },
                changed = followed.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    // Seen: `changed` waits for the next change, not this one again.
                    followed.mark_unchanged();
                    // A partition newly followed from this leader (a new topic, an
                    // election) must not wait out the long-poll of a fetch that did not
                    // ask for it: a new stream asks for every partition at once. Nothing
                    // of the abandoned fetch is appended, so the log end stays right.
                    let now: Vec<_> =
                        partitions_of(followed, leader).iter().map(|p| p.tp.clone()).collect();
                    if now != asked {
                        break None;
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        };
        let Some(resp) = resp else {
            (tx, responses) = open_stream(&mut client).await?;
            continue;
        };
        let resp = Vec::<ReplicaFetched>::try_from(resp)
            .map_err(|e| format!("undecodable replica fetch answer: {e}"))?;
        let mut errors = 0;
        // Every partition's batches are appended in one blocking task: one thread
        // hand-off per fetch round, not one per partition.
        let mut appends = Vec::with_capacity(ready.len());
        head = head.wrapping_add(
            resp.iter()
                .filter(|r| matches!(&r.outcome, ReplicaFetchOutcome::Read(read) if !read.records.is_empty()))
                .count(),
        );
        for (r, (p, epoch)) in resp.into_iter().zip(&ready) {
            let read = match r.outcome {
                ReplicaFetchOutcome::Read(read) => read,
                // Not read: the leader answers every partition of a fetch it serves.
                ReplicaFetchOutcome::Unread => continue,
                ReplicaFetchOutcome::Failed { error: e, bounds } => {
                    errors += 1;
                    tracing::debug!(partition = %p.tp, error = %e.message, "replica fetch error");
                    if e.code == ErrorCode::OffsetOutOfRange {
                        let start = bounds.map(|b| b.log_start_offset);
                        let (p, epoch) = (Arc::clone(p), *epoch);
                        if let Some(start) = start.filter(|s| s.0 >= 0 && p.log_bounds().1 < *s) {
                            // Behind the leader's log start: begin again there.
                            if let Err(e) =
                                blocking(move || p.restart_at_as_follower(start, epoch)).await
                            {
                                tracing::warn!(error = %e, "cannot restart the log at the leader's log start");
                            }
                        } else {
                            // Past the leader's end: find the divergence again.
                            p.mark_synced(LeaderEpoch(-1));
                        }
                    }
                    continue;
                }
            };
            let leader = crate::partition::LeaderPosition {
                high_watermark: read.high_watermark,
                log_start: read.bounds.log_start_offset,
            };
            if follower_rate.is_some() && p.is_moving_in(me) {
                let n = read.records.len();
                crate::throttle::with(&replicas.throttles.follower, |b| b.spend(n));
            }
            appends.push((Arc::clone(p), *epoch, leader, read.records.into_bytes()));
        }
        // Small appends that need no fsync are page-cache copies: made right here, when
        // no log lock is held (a hint: one may still be
        // taken in the narrow window before the append).
        let light = appends.iter().map(|(.., r)| r.len()).sum::<usize>()
            <= crate::partition::INLINE_IO_MAX_BYTES
            && appends
                .iter()
                .all(|(p, ..)| p.append_is_light(0) && p.log_is_free());
        let append_all = move || {
            Ok(appends
                .into_iter()
                .filter_map(|(p, epoch, leader, records)| {
                    p.append_replicated(&records, leader, epoch)
                        .err()
                        .map(|e| (p.tp.clone(), e))
                })
                .collect::<Vec<_>>())
        };
        let appended = if light {
            append_all()
        } else {
            blocking(append_all).await
        };
        let failed = appended.unwrap_or_else(|e| vec![(ready[0].0.tp.clone(), e)]);
        for (tp, e) in failed {
            errors += 1;
            tracing::warn!(partition = %tp, error = %e, "cannot append replicated batches");
        }
        if errors > 0 && pause(shutdown, BACKOFF).await {
            return Ok(());
        }
    }
}

type FetchStream = (
    mpsc::Sender<v1::ReplicaFetchRequest>,
    tonic::Streaming<v1::ReplicaFetchResponse>,
);

/// Opens a `ReplicaFetch` stream to the leader: requests go in on the sender.
async fn open_stream(client: &mut Client) -> Result<FetchStream, String> {
    let (tx, rx) = mpsc::channel(1);
    let responses = client
        .replica_fetch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    Ok((tx, responses))
}

/// KIP-279: asks the leader where our latest epoch ends in its log, truncates our log
/// there, and repeats while our history still has epochs the leader does not.
async fn truncate(client: &mut Client, me: BrokerId, p: &Arc<Partition>) -> Result<(), String> {
    let (_, epoch) = p.role();
    for _ in 0..TRUNCATION_ROUNDS_MAX {
        let Some(mine) = p.latest_epoch() else {
            p.mark_synced(epoch);
            return Ok(());
        };
        let resp = client
            .offset_for_leader_epoch(v1::OffsetForLeaderEpochRequest {
                replica_id: me.0,
                partitions: vec![v1::OffsetForLeaderEpochPartition {
                    topic: p.tp.topic.to_string(),
                    partition: p.tp.partition.0,
                    current_leader_epoch: epoch.0,
                    leader_epoch: mine.0,
                }],
            })
            .await
            .map_err(|s| s.to_string())?
            .into_inner();
        let r = resp
            .results
            .into_iter()
            .next()
            .ok_or("empty OffsetForLeaderEpoch answer")?;
        if let Some(e) = r.error {
            return Err(format!("{}: {}", e.name, e.message));
        }
        let tp = p.clone();
        if r.leader_epoch < 0 {
            // The leader knows no epoch as old as ours: none of our log is its history.
            blocking(move || tp.truncate_as_follower(Offset::ZERO, epoch))
                .await
                .map_err(|e| e.to_string())?;
            p.mark_synced(epoch);
            return Ok(());
        }
        let leader_end = Offset(r.end_offset);
        let done = r.leader_epoch == mine.0;
        let target = if done {
            leader_end
        } else {
            let my_end = p
                .epoch_end(LeaderEpoch(r.leader_epoch))
                .map_or(Offset::ZERO, |e| e.end_offset);
            leader_end.min(my_end)
        };
        blocking(move || tp.truncate_as_follower(target, epoch))
            .await
            .map_err(|e| e.to_string())?;
        if done {
            p.mark_synced(epoch);
            return Ok(());
        }
    }
    Err("epoch histories did not converge".into())
}
