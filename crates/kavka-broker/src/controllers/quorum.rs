//! The controller quorum's own admin calls (KIP-853), in model types: voter changes and
//! the quorum's description. Unlike the other admin writes these are not retried on
//! REQUEST_TIMED_OUT (for a voter change that is the answer: a change in flight, or a
//! node that did not catch up) and may take as long as the change's own bound; only a
//! controller that cannot be reached is skipped for the next.

use super::Controllers;
use kavka_model::raft_voters::{AddVoter, QuorumDescription, QuorumMember, RemoveVoter};
use kavka_model::{ErrorCode, KafkaError};
use kavka_proto::v1;
use std::future::Future;
use std::time::Duration;

/// Added to a voter change's own bound for the calls carrying it.
const CALL_SLACK: Duration = Duration::from_secs(10);
/// A voter change's bound when the request names none (the controller's default).
const CHANGE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

impl Controllers {
    /// AddRaftVoter, through whichever controller answers (it forwards to the active one).
    pub async fn add_raft_voter(&self, add: &AddVoter) -> Result<i64, KafkaError> {
        let req = v1::AddRaftVoterRequest {
            voter_id: add.id.into(),
            address: add.address.clone(),
            directory_id: add.directory_id.map(|d| d.to_string()).unwrap_or_default(),
            timeout_ms: add.timeout_ms,
        };
        let r = self
            .call_once_each(bound(add.timeout_ms), |mut c| {
                let req = req.clone();
                async move { c.add_raft_voter(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(r.membership_offset)
    }

    /// RemoveRaftVoter, likewise.
    pub async fn remove_raft_voter(&self, remove: &RemoveVoter) -> Result<i64, KafkaError> {
        let req = v1::RemoveRaftVoterRequest {
            voter_id: remove.id.into(),
            directory_id: remove
                .directory_id
                .map(|d| d.to_string())
                .unwrap_or_default(),
            timeout_ms: remove.timeout_ms,
        };
        let r = self
            .call_once_each(bound(remove.timeout_ms), |mut c| {
                let req = req.clone();
                async move { c.remove_raft_voter(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(r.membership_offset)
    }

    /// DescribeQuorum: the active controller's view (any controller fetches it).
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, KafkaError> {
        let s = self
            .call_once_each(CALL_SLACK, |mut c| async move {
                c.quorum_status(v1::QuorumStatusRequest { from_leader: true })
                    .await
                    .map(|r| r.into_inner())
            })
            .await?;
        let member = |v: v1::VoterStatus| QuorumMember {
            id: i32::try_from(v.id).unwrap_or(-1),
            directory_id: uuid::Uuid::parse_str(&v.directory_id).ok(),
            address: v.addr,
            log_end: v.log_end,
            last_caught_up_ms_ago: v.last_caught_up_ms_ago,
        };
        Ok(QuorumDescription {
            leader_id: i32::try_from(s.leader_id).unwrap_or(-1),
            epoch: s.term,
            high_watermark: s.committed,
            voters: s.voters.into_iter().map(member).collect(),
            observers: s.observers.into_iter().map(member).collect(),
        })
    }

    /// Calls `f` on each configured controller once, in order, until one
    /// answers; only an unreachable one is passed over. Each call may take `timeout`.
    async fn call_once_each<T, F, Fut>(&self, timeout: Duration, mut f: F) -> Result<T, KafkaError>
    where
        F: FnMut(super::ControllerClient) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = KafkaError::new(ErrorCode::NotController, "no controller configured");
        for addr in self.addrs() {
            let client = self.client_with_timeout(addr, timeout)?;
            match f(client).await {
                Ok(v) => return Ok(v),
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    last = KafkaError::new(
                        ErrorCode::NotController,
                        format!("controller {addr} unreachable: {}", s.message()),
                    );
                }
                Err(s) => return Err(kavka_proto::conv::from_status(&s)),
            }
        }
        Err(last)
    }
}

fn bound(timeout_ms: u32) -> Duration {
    let own = match timeout_ms {
        0 => CHANGE_TIMEOUT_DEFAULT,
        ms => Duration::from_millis(ms.into()),
    };
    own + CALL_SLACK
}
