//! Registration and heartbeats: register with a fresh incarnation id, then hold a session
//! with the active controller: a long-lived stream of heartbeats carrying the metadata
//! offset this broker has applied. The controller unfences the broker once it has caught
//! up, and fences it if the heartbeats stop. Each answered heartbeat renews the leader
//! lease (`crate::lease`) from the moment it was *sent*; answers come in send order.
//! Also controlled shutdown (moving leaderships away before stopping).

use super::{ControllerSession, controller_id_from_wire};
use crate::controllers::Controllers;
use crate::replica_manager::ReplicaManager;
use kavka_model::ErrorCode;
use kavka_model::failure_log::{FailureLog, Report};
use kavka_proto::v1;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

impl ControllerSession {
    /// Registers, then keeps a session with the active controller until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        replicas: Arc<ReplicaManager>,
        controllers: Arc<Controllers>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let config = replicas.config().clone();
        let heartbeat = Duration::from_millis(config.heartbeat_interval_ms.max(10));
        let request = v1::RegisterBrokerRequest {
            broker_id: config.node_id.0,
            incarnation_id: self.incarnation_id.to_string(),
            listeners: std::iter::once(v1::Listener {
                name: "grpc".into(),
                host: config.advertised_host.clone(),
                port: config.advertised_port as i32,
            })
            .chain(
                config
                    .external_advertised
                    .iter()
                    .map(|(host, port)| v1::Listener {
                        name: crate::service::watch::EXTERNAL_LISTENER.into(),
                        host: host.clone(),
                        port: i32::from(*port),
                    }),
            )
            .chain(
                config
                    .extra_listeners
                    .iter()
                    .map(|(name, host, port)| v1::Listener {
                        name: name.clone(),
                        host: host.clone(),
                        port: i32::from(*port),
                    }),
            )
            .collect(),
            rack: config.rack.clone().unwrap_or_default(),
        };
        let mut target: Option<String> = None;
        let mut register_failures = FailureLog::default();
        'register: loop {
            let resp = tokio::select! {
                r = controllers.call(|mut c| { let req = request.clone(); async move { c.register_broker(req).await.map(|r| r.into_inner()) } }) => r,
                _ = shutdown.changed() => return,
            };
            match resp {
                Ok(r) if r.error.is_none() => {
                    register_failures.succeeded(std::time::Instant::now());
                    target = r.hint.map(|h| h.leader_addr).or(target);
                    tracing::info!(broker = %config.node_id, incarnation = %self.incarnation_id, "registered with the controller quorum");
                }
                Ok(r) => {
                    let duplicate = r.error.as_ref().is_some_and(|e| {
                        e.code == ErrorCode::DuplicateBrokerRegistration.code() as i32
                    });
                    let e = r
                        .error
                        .map(|e| format!("{}: {}", e.name, e.message))
                        .unwrap_or_default();
                    if duplicate {
                        // Usually this broker's own previous process (a crash, a quick
                        // restart): its session expires within the session timeout.
                        tracing::info!(error = %e, "waiting for the previous registration of this node id to expire");
                    } else {
                        tracing::error!(error = %e, "registration refused");
                    }
                    if sleep_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue 'register;
                }
                Err(e) => {
                    match register_failures.failed(std::time::Instant::now()) {
                        Report::Started => {
                            tracing::warn!(error = %e, "cannot register yet (logged again every 30 s while it fails)")
                        }
                        Report::StillFailing { attempts, for_ } => {
                            tracing::warn!(error = %e, attempts, for_s = for_.as_secs(), "still cannot register")
                        }
                        _ => tracing::debug!(error = %e, "cannot register yet"),
                    }
                    if sleep_or_stop(&mut shutdown, Duration::from_millis(500)).await {
                        return;
                    }
                    continue 'register;
                }
            }
            // Session loop: reconnect to whichever controller is active.
            loop {
                let addr = target
                    .clone()
                    .unwrap_or_else(|| controllers.addrs().first().cloned().unwrap_or_default());
                match self
                    .session(&addr, &replicas, &controllers, heartbeat, &mut shutdown)
                    .await
                {
                    SessionEnd::Shutdown => return,
                    SessionEnd::Moved(hint) => target = hint,
                    SessionEnd::Reregister => continue 'register,
                    SessionEnd::Failed => {
                        target = next_controller(controllers.addrs(), &addr);
                        if sleep_or_stop(&mut shutdown, heartbeat).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        addr: &str,
        replicas: &ReplicaManager,
        controllers: &Controllers,
        every: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let Ok(mut client) = controllers.client_for(addr) else {
            return SessionEnd::Failed;
        };
        let (tx, rx) = mpsc::channel(2);
        let broker_id = replicas.config().node_id.0;
        let incarnation = self.incarnation_id.to_string();
        let beat = |offset: i64| v1::BrokerHeartbeatRequest {
            broker_id,
            incarnation_id: incarnation.clone(),
            metadata_offset: offset,
            offline_replicas: replicas
                .offline_replicas()
                .into_iter()
                .map(|(topic_id, partition)| v1::OfflineReplica {
                    topic_id: topic_id.0.to_string(),
                    partition: partition.0,
                })
                .collect(),
        };
        // Send times of the heartbeats not yet answered, oldest first (bounded by the
        // channel and the silence limit below).
        let mut in_flight: VecDeque<Instant> = VecDeque::new();
        in_flight.push_back(Instant::now());
        if tx.send(beat(replicas.image().offset)).await.is_err() {
            return SessionEnd::Failed;
        }
        let mut responses = match client
            .broker_session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(_) => return SessionEnd::Failed,
        };
        let mut tick = tokio::time::interval(every);
        // A frozen or cut-off controller answers nothing and closes nothing: after a few
        // unanswered heartbeats, find the active controller elsewhere.
        let silence_limit = (every * 4).max(Duration::from_millis(1000));
        let mut last_reply = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return SessionEnd::Shutdown,
                _ = tick.tick() => {
                    if last_reply.elapsed() > silence_limit {
                        tracing::warn!(controller = %addr, silent = ?last_reply.elapsed(), "controller stopped answering heartbeats: reconnecting");
                        return SessionEnd::Failed;
                    }
                    let sent_at = Instant::now();
                    match tx.try_send(beat(replicas.image().offset)) {
                        Ok(()) => in_flight.push_back(sent_at),
                        Err(_) if tx.is_closed() => return SessionEnd::Failed,
                        Err(_) => {}
                    }
                }
                msg = responses.message() => match msg {
                    Ok(Some(r)) => { last_reply = std::time::Instant::now(); let sent_at = in_flight.pop_front(); match r.error {
                        None => {
                            let was = self.lease.is_fenced();
                            // One answer per heartbeat, in order: a missing send time
                            // would be a bug, and renews nothing.
                            if let Some(sent_at) = sent_at {
                                self.lease.answered(sent_at, r.fenced, r.metadata_offset);
                            }
                            self.note_session_controller(addr);
                            controllers.prefer(addr);
                            self.note_controller_offset(r.metadata_offset);
                            if let Some(h) = &r.hint {
                                self.note_controller(controller_id_from_wire(h.leader_id), h.term);
                            }
                            if was != r.fenced {
                                tracing::info!(fenced = r.fenced, "broker fencing state changed");
                            }
                        }
                        Some(e) if e.code == ErrorCode::NotController.code() as i32 => {
                            return SessionEnd::Moved(r.hint.map(|h| h.leader_addr));
                        }
                        Some(e) if e.code == ErrorCode::BrokerIdNotRegistered.code() as i32 || e.code == ErrorCode::StaleBrokerEpoch.code() as i32 => {
                            tracing::warn!(error = %e.message, "controller does not know this incarnation: registering again");
                            return SessionEnd::Reregister;
                        }
                        Some(e) => {
                            tracing::warn!(error = %e.message, "heartbeat refused");
                        }
                    }},
                    _ => return SessionEnd::Failed,
                },
            }
        }
    }

    /// Controlled shutdown: asks the controller to move every leadership off this broker
    /// and waits (bounded) until the metadata shows it done. Partitions no other live ISR
    /// member can lead stay here until the process exits.
    pub async fn controlled_shutdown(
        &self,
        replicas: &ReplicaManager,
        controllers: &Controllers,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = replicas.leaderships();
        if before == 0 || self.is_fenced() {
            return;
        }
        tracing::info!(
            leaderships = before,
            "controlled shutdown: moving leadership away"
        );
        let request = v1::ControlledShutdownRequest {
            broker_id: replicas.config().node_id.0,
            incarnation_id: self.incarnation_id.to_string(),
        };
        let mut remaining = before;
        for _ in 0..3 {
            let call = controllers.call(|mut c| {
                let req = request.clone();
                async move { c.controlled_shutdown(req).await.map(|r| r.into_inner()) }
            });
            match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(v1::ControlledShutdownResponse {
                    error: None,
                    remaining_leaderships,
                })) => {
                    remaining = remaining_leaderships.max(0) as usize;
                    if remaining == 0 {
                        break;
                    }
                }
                Ok(Ok(v1::ControlledShutdownResponse { error: Some(e), .. })) => {
                    tracing::warn!(error = %e.message, "controlled shutdown refused");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "controlled shutdown failed");
                    return;
                }
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let done = replicas
            .wait_for_image(left, |_| replicas.leaderships() <= remaining)
            .await;
        tracing::info!(
            still_leading = replicas.leaderships(),
            done,
            "controlled shutdown finished"
        );
    }
}

enum SessionEnd {
    Shutdown,
    Moved(Option<String>),
    Reregister,
    Failed,
}

/// Sleeps, or returns true at once if shutdown fired.
async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

/// The controller to try after `failed`: the next in the configured list, or its first
/// when `failed` is not in it (an active controller added to the quorum at run time,
/// which the list does not name: searching the cycled list for it would never end).
fn next_controller(addrs: &[String], failed: &str) -> Option<String> {
    match addrs.iter().position(|a| a == failed) {
        Some(i) => addrs.get((i + 1) % addrs.len()).cloned(),
        None => addrs.first().cloned(),
    }
}

#[cfg(test)]
mod next_controller_tests {
    use super::next_controller;

    #[test]
    fn next_controller_table() {
        let addrs: Vec<String> = ["a:1", "b:1", "c:1"].map(String::from).to_vec();
        // (failed, next)
        let cases = [
            ("a:1", Some("b:1")),
            ("c:1", Some("a:1")),
            // A voter added at run time, not in the list.
            ("d:1", Some("a:1")),
        ];
        for (failed, want) in cases {
            assert_eq!(next_controller(&addrs, failed).as_deref(), want, "{failed}");
        }
        assert_eq!(next_controller(&[], "a:1"), None);
    }
}
