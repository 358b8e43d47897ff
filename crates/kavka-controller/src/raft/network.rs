//! Raft RPCs between controllers over tonic (`kavka.v1.RaftService`): the client side
//! (openraft's network factory) and the server side.
//!
//! Each call has the deadline openraft gives it (`RPCOption::hard_ttl`). A peer that
//! cannot be reached is `Unreachable` (openraft backs off); a call that fails midway is a
//! `NetworkError`. A peer that stays unreachable is logged once, then every
//! `FAILURE_LOG_EVERY` with a count, and once when it answers again ([`PeerReachability`],
//! shared by every client openraft makes for the peer); openraft's own per-attempt
//! warnings about it are filtered out by the binary's default log filter.

use crate::types::{NodeId, TypeConfig, VoterNode};
use kavka_proto::v1::RaftMessage;
use kavka_proto::v1::raft_service_client::RaftServiceClient;
use kavka_proto::v1::raft_service_server::{RaftService as RaftRpc, RaftServiceServer};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Raft};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::time::Duration;
use tonic::transport::Channel;

use super::peers::{
    CLUSTER_ID_HEADER, ControllerSecret, DIRECTORY_ID_HEADER, EXPECTED_DIRECTORY_ID_HEADER,
    PeerPolicy, SECRET_HEADER,
};
use super::state_machine::MetadataStateMachine;
use crate::types::DirectoryId;
use kavka_metadata::MetadataImage;
use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use tokio::sync::watch;

/// This controller's metadata image, for the cluster id it knows (if any yet).
pub type ImageWatch = watch::Receiver<Arc<MetadataImage>>;

fn cluster_id(image: &ImageWatch) -> Option<String> {
    image.borrow().cluster_id.clone()
}

pub type MetadataRaft = Raft<TypeConfig, MetadataStateMachine>;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Snapshots can be large (100k partitions): allow big messages between controllers.
const MESSAGE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Makes one client per peer; each presents the quorum's secret, if it has one, and the
/// cluster id, once this controller knows it.
///
/// A peer is dialed at its address in the configured voter list (`--controller-voters`,
/// static as Kafka's `controller.quorum.voters`), not the one its membership entry
/// recorded when the quorum formed: addresses change (the controller listener moved Raft
/// off the client port) while the voters stay the same. A peer outside that list (a
/// voter or learner added at run time) is dialed at its membership entry's address.
/// Every call presents this controller's directory id, which receivers compare with
/// the membership's record of it (KIP-853: an emptied voter's calls are refused).
#[derive(Clone, Debug)]
pub struct GrpcNetworkFactory {
    pub secret: Option<ControllerSecret>,
    /// Plaintext, or mutual TLS (`security_inter_broker_protocol=SSL`).
    pub transport: kavka_tls::Transport,
    pub voters: std::collections::BTreeMap<NodeId, VoterNode>,
    /// This controller's directory id, presented on every call.
    pub directory_id: Option<DirectoryId>,
    /// The directory ids the membership in force records, by member: read at each call,
    /// not when openraft makes the client (a replication stream may outlive the
    /// membership entry it was made for, e.g. across a remove and re-add of a voter).
    pub recorded: RecordedDirectoryIds,
    /// The directory ids peers answered with, for recording static voters' ones.
    pub answered: Arc<AnsweredDirectoryIds>,
    pub image: ImageWatch,
    pub reachability: Arc<PeerReachability>,
}

/// The directory id each peer last answered a Raft call with (the active controller
/// records a static voter's in the membership from it: Kafka's UpdateRaftVoter).
#[derive(Debug, Default)]
pub struct AnsweredDirectoryIds(std::sync::Mutex<BTreeMap<NodeId, DirectoryId>>);

impl AnsweredDirectoryIds {
    fn note(&self, peer: NodeId, id: DirectoryId) {
        let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(peer, id);
    }

    /// What each peer answered last.
    pub fn snapshot(&self) -> BTreeMap<NodeId, DirectoryId> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The directory ids of the membership in force, kept by `Quorum` from the Raft metrics.
pub type RecordedDirectoryIds =
    watch::Receiver<std::collections::BTreeMap<NodeId, Option<DirectoryId>>>;

/// Which peers fail to answer, for logging it once rather than each attempt.
#[derive(Debug, Default)]
pub struct PeerReachability {
    peers:
        std::sync::Mutex<std::collections::HashMap<NodeId, kavka_model::failure_log::FailureLog>>,
}

impl PeerReachability {
    fn note(&self, peer: NodeId, addr: &str, outcome: Result<(), &tonic::Status>) {
        use kavka_model::failure_log::Report;
        let now = std::time::Instant::now();
        let report = {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            let log = peers.entry(peer).or_default();
            match outcome {
                // Not reached (or no answer in time); any answer, even a refusal, is.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                    ) =>
                {
                    log.failed(now)
                }
                _ => log.succeeded(now),
            }
        };
        match (report, outcome) {
            (Report::Started, Err(s)) => {
                tracing::warn!(peer, %addr, code = ?s.code(), error = %s.message(), "controller peer unreachable (logged again every 30 s while it stays so)");
            }
            (Report::StillFailing { attempts, for_ }, _) => {
                tracing::warn!(peer, %addr, attempts, for_s = for_.as_secs(), "controller peer still unreachable");
            }
            (Report::Recovered { attempts, after }, _) => {
                tracing::info!(peer, %addr, attempts, after_s = after.as_secs(), "controller peer reachable again");
            }
            _ => {}
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &VoterNode) -> GrpcNetwork {
        let addr = self.voters.get(&target).unwrap_or(node).addr.clone();
        GrpcNetwork {
            target,
            addr,
            recorded: self.recorded.clone(),
            answered: Arc::clone(&self.answered),
            client: None,
            secret: self.secret.clone(),
            transport: self.transport.clone(),
            directory_id: self.directory_id,
            image: self.image.clone(),
            reachability: Arc::clone(&self.reachability),
        }
    }
}

pub struct GrpcNetwork {
    target: NodeId,
    addr: String,
    /// The directory ids the membership records: the target's answers must carry its
    /// own, or they do not count (an emptied voter's vote is not a vote).
    recorded: RecordedDirectoryIds,
    answered: Arc<AnsweredDirectoryIds>,
    client: Option<RaftServiceClient<Channel>>,
    secret: Option<ControllerSecret>,
    transport: kavka_tls::Transport,
    directory_id: Option<DirectoryId>,
    image: ImageWatch,
    reachability: Arc<PeerReachability>,
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
    TransferLeader,
}

impl GrpcNetwork {
    fn client(&mut self) -> Result<RaftServiceClient<Channel>, RPCError<TypeConfig>> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let endpoint = self
            .transport
            .endpoint(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let c = RaftServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        self.client = Some(c.clone());
        Ok(c)
    }

    async fn call<Req, Resp>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let json = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client()?;
        let mut request = tonic::Request::new(RaftMessage { json: json.into() });
        request.set_timeout(option.hard_ttl());
        if let Some(secret) = &self.secret {
            let value = tonic::metadata::MetadataValue::try_from(secret.as_str())
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            request.metadata_mut().insert(SECRET_HEADER, value);
        }
        if let Some(d) = self.directory_id {
            let value = tonic::metadata::MetadataValue::try_from(d.to_string())
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            request.metadata_mut().insert(DIRECTORY_ID_HEADER, value);
        }
        let expected = self.recorded.borrow().get(&self.target).copied().flatten();
        if let Some(d) = expected {
            let value = tonic::metadata::MetadataValue::try_from(d.to_string())
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            request
                .metadata_mut()
                .insert(EXPECTED_DIRECTORY_ID_HEADER, value);
        }
        if let Some(id) = cluster_id(&self.image) {
            let value = tonic::metadata::MetadataValue::try_from(id.as_str())
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            request.metadata_mut().insert(CLUSTER_ID_HEADER, value);
        }
        let resp = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.full_snapshot(request).await,
            Method::TransferLeader => client.transfer_leader(request).await,
        };
        self.reachability
            .note(self.target, &self.addr, resp.as_ref().map(|_| ()));
        let resp = resp.map_err(|s| {
            if s.code() == tonic::Code::Unavailable {
                // Reconnect next time: the peer may have restarted.
                self.client = None;
                RPCError::Unreachable(Unreachable::new(&s))
            } else {
                RPCError::Network(NetworkError::new(&s))
            }
        })?;
        let answered = resp
            .metadata()
            .get(DIRECTORY_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<DirectoryId>().ok());
        if let Err(why) = crate::voters::check_sender_directory(self.target, answered, expected) {
            tracing::warn!(target = self.target, %why, "ignored a Raft answer");
            return Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other(why),
            )));
        }
        if let Some(id) = answered {
            self.answered.note(self.target, id);
        }
        let result: Result<Resp, RaftError<TypeConfig>> =
            serde_json::from_slice(&resp.into_inner().json)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            tracing::debug!(target = self.target, error = %e, "raft peer refused");
            RPCError::Network(NetworkError::new(&e))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcNetwork {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Method::Append, &req, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Method::Vote, &req, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Method::TransferLeader, &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call(Method::Snapshot, &req, &option) => Ok(res?),
        }
    }
}

/// The server side: admits the caller ([`PeerPolicy`]: its secret in [`SecretCheck`], its
/// voter id here), decodes the request, hands it to
/// the local Raft, encodes the result.
pub struct RaftServer {
    raft: MetadataRaft,
    peers: Arc<PeerPolicy>,
    image: ImageWatch,
    /// This controller's id and directory id: a membership that records another
    /// directory id for it means this data dir is not that voter's (it was emptied), and
    /// it answers no Raft call (no vote it cannot remember casting).
    node_id: NodeId,
    directory_id: Option<DirectoryId>,
    /// Set once callers' memberships have shown for [`REPLACED_AFTER`] that this node
    /// was replaced (see [`crate::voters::own_identity_conflict`]); the node then stops.
    replaced: Arc<std::sync::OnceLock<String>>,
    /// Since when callers have named another directory id for this node, without one
    /// naming its own since.
    mismatched_since: ConflictTimer,
}

/// How long callers must keep naming another directory id for this node before it
/// stops: a replication stream of a membership that has just removed this node (the
/// step before a replaced voter is added again) may still call with the old one, for
/// as long as this node refuses it (seen past 4 s), until the add-voter that follows
/// names the new one; it must not stop the new incarnation. Its calls are refused
/// meanwhile, so no vote is cast while it waits.
pub(crate) const REPLACED_AFTER: Duration = Duration::from_secs(10);

/// How long a directory-id conflict has lasted without a break.
#[derive(Debug, Default)]
pub(crate) struct ConflictTimer(std::sync::Mutex<Option<std::time::Instant>>);

impl ConflictTimer {
    /// Notes whether the conflict holds now; true once it has held for
    /// [`REPLACED_AFTER`]. A moment without it starts the count again.
    pub(crate) fn lasted(&self, conflict: bool) -> bool {
        let mut since = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !conflict {
            *since = None;
            return false;
        }
        since.get_or_insert_with(std::time::Instant::now).elapsed() >= REPLACED_AFTER
    }
}

impl RaftServer {
    pub fn new(
        raft: MetadataRaft,
        peers: Arc<PeerPolicy>,
        image: ImageWatch,
        node_id: NodeId,
        directory_id: Option<DirectoryId>,
        replaced: Arc<std::sync::OnceLock<String>>,
    ) -> Self {
        Self {
            raft,
            peers,
            image,
            node_id,
            directory_id,
            replaced,
            mismatched_since: ConflictTimer::default(),
        }
    }

    /// Notes what a caller expects of this node's directory id: a mismatch that lasts
    /// [`REPLACED_AFTER`] marks this node replaced; a caller expecting its own resets it.
    fn note_expected(&self, conflict: Option<&str>) {
        if self.mismatched_since.lasted(conflict.is_some())
            && let Some(why) = conflict
        {
            let _ = self.replaced.set(why.to_string());
        }
    }

    /// Admits a call from `sender`: a static voter or a member of the membership, that
    /// presents the directory id the membership records for it (if any), to a controller
    /// whose own identity the membership does not contradict.
    fn admit_sender<T>(
        &self,
        req: &tonic::Request<T>,
        sender: NodeId,
    ) -> Result<(), tonic::Status> {
        let header = |key: &str| {
            req.metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<DirectoryId>().ok())
        };
        let presented = header(DIRECTORY_ID_HEADER);
        // The caller's membership records another directory id for this node: it is an
        // emptied voter, which must neither vote nor take entries as that voter.
        let expected = header(EXPECTED_DIRECTORY_ID_HEADER);
        let conflict =
            crate::voters::own_identity_conflict(self.node_id, self.directory_id, expected);
        if expected.is_some() || conflict.is_some() {
            self.note_expected(conflict.as_deref());
        }
        if let Some(why) = conflict {
            return Err(self.refused(req.remote_addr(), why));
        }
        let (sender_node, own_node) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            let membership = m.membership_config.membership();
            (
                membership.get_node(&sender).cloned(),
                membership.get_node(&self.node_id).cloned(),
            )
        };
        let verdict = self
            .peers
            .check_sender(sender, sender_node.is_some())
            .and_then(|()| {
                crate::voters::check_sender_directory(
                    sender,
                    presented,
                    sender_node.and_then(|n| n.directory_id),
                )
            })
            .and_then(|()| {
                match crate::voters::identity_on_call(
                    self.node_id,
                    self.directory_id,
                    expected,
                    own_node.and_then(|n| n.directory_id),
                ) {
                    Some(why) => Err(why),
                    None => Ok(()),
                }
            });
        verdict.map_err(|why| self.refused(req.remote_addr(), why))
    }

    fn refused(&self, peer: Option<std::net::SocketAddr>, why: String) -> tonic::Status {
        refuse(&self.peers, peer, why)
    }

    /// The service, with the secret checked on each call's headers before its body (up
    /// to [`MESSAGE_BYTES_MAX`]) is read or decoded.
    pub fn into_service(self) -> RaftService {
        let check = SecretCheck::new(Arc::clone(&self.peers), self.image.clone());
        let svc = RaftServiceServer::new(self)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        tonic::service::interceptor::InterceptedService::new(svc, check)
    }
}

/// The served Raft service: [`RaftServer`] behind the secret check.
pub type RaftService =
    tonic::service::interceptor::InterceptedService<RaftServiceServer<RaftServer>, SecretCheck>;

/// Refuses calls without the quorum's secret from their headers alone (Raft, and the
/// controller service on the controller listener).
#[derive(Clone)]
pub struct SecretCheck {
    peers: Arc<PeerPolicy>,
    image: ImageWatch,
}

impl SecretCheck {
    pub(crate) fn new(peers: Arc<PeerPolicy>, image: ImageWatch) -> Self {
        Self { peers, image }
    }
}

impl tonic::service::Interceptor for SecretCheck {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let header = |key: &str| req.metadata().get(key).and_then(|v| v.to_str().ok());
        let verdict = self
            .peers
            .check_secret(header(SECRET_HEADER))
            .and_then(|()| {
                PeerPolicy::check_cluster(
                    cluster_id(&self.image).as_deref(),
                    header(CLUSTER_ID_HEADER),
                )
            });
        match verdict {
            Ok(()) => Ok(req),
            Err(why) => Err(refuse(&self.peers, req.remote_addr(), why)),
        }
    }
}

fn refuse(peers: &PeerPolicy, peer: Option<std::net::SocketAddr>, why: String) -> tonic::Status {
    let count = peers.refuse();
    tracing::warn!(?peer, %why, refused = count, "refused a Raft call");
    tonic::Status::permission_denied(format!("Raft call refused: {why}"))
}

/// The Raft calls the controller listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftCall {
    AppendEntries,
    Vote,
    FullSnapshot,
}

/// Decodes one call's body from the wire as the listener does (the protobuf envelope,
/// then the JSON inside it) and answers the node id it speaks for, which the sender
/// check then judges; nothing reaches openraft. For the fuzz target and tests: any bytes
/// are an error or an id, never a panic.
pub fn claimed_sender(call: RaftCall, body: &[u8]) -> Result<NodeId, tonic::Status> {
    let m = <RaftMessage as prost::Message>::decode(body)
        .map_err(|e| tonic::Status::invalid_argument(format!("malformed raft envelope: {e}")))?;
    Ok(match call {
        RaftCall::AppendEntries => {
            decode::<AppendEntriesRequest<TypeConfig>>(&m)?
                .vote
                .leader_id()
                .node_id
        }
        RaftCall::Vote => {
            decode::<VoteRequest<TypeConfig>>(&m)?
                .vote
                .leader_id()
                .node_id
        }
        RaftCall::FullSnapshot => {
            let (vote, _, _): SnapshotCall = decode(&m)?;
            vote.leader_id().node_id
        }
    })
}

/// A full snapshot call's body: the sender's vote, the snapshot's meta and its data.
type SnapshotCall = (
    VoteOf<TypeConfig>,
    openraft::alias::SnapshotMetaOf<TypeConfig>,
    Vec<u8>,
);

fn decode<T: DeserializeOwned>(m: &RaftMessage) -> Result<T, tonic::Status> {
    serde_json::from_slice(&m.json)
        .map_err(|e| tonic::Status::invalid_argument(format!("malformed raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
    let json = serde_json::to_vec(v).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(RaftMessage { json: json.into() }))
}

impl RaftServer {
    /// An answer carrying this controller's directory id, which the caller checks.
    fn answer<T: Serialize>(&self, v: &T) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let mut resp = encode(v)?;
        if let Some(d) = self.directory_id
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(d.to_string())
        {
            resp.metadata_mut().insert(DIRECTORY_ID_HEADER, value);
        }
        Ok(resp)
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftServer {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        self.admit_sender(&req, m.vote.leader_id().node_id)?;
        let r = self.raft.append_entries(m).await;
        self.answer(&r)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m: VoteRequest<TypeConfig> = decode(req.get_ref())?;
        self.admit_sender(&req, m.vote.leader_id().node_id)?;
        let r = self.raft.vote(m).await;
        self.answer(&r)
    }

    async fn transfer_leader(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let m: TransferLeaderRequest<TypeConfig> = decode(req.get_ref())?;
        self.admit_sender(&req, m.from_leader().leader_id().node_id)?;
        let r = self
            .raft
            .handle_transfer_leader(m)
            .await
            .map_err(RaftError::<TypeConfig>::Fatal);
        self.answer(&r)
    }

    async fn full_snapshot(
        &self,
        req: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let (vote, meta, data): SnapshotCall = decode(req.get_ref())?;
        self.admit_sender(&req, vote.leader_id().node_id)?;
        let snapshot = SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
            meta,
            snapshot: Cursor::new(data),
        };
        let r = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(RaftError::<TypeConfig>::Fatal);
        self.answer(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(json: &[u8]) -> Vec<u8> {
        prost::Message::encode_to_vec(&RaftMessage {
            json: json.to_vec().into(),
        })
    }

    fn vote_json(candidate: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "vote": {"leader_id": {"term": 9, "node_id": candidate}, "committed": false},
            "last_log_id": null,
        }))
        .unwrap_or_default()
    }

    #[test]
    fn each_call_names_its_sender_and_a_bad_body_is_refused() {
        let append = serde_json::json!({
            "vote": {"leader_id": {"term": 9, "node_id": 3}, "committed": true},
            "prev_log_id": null, "entries": [], "leader_commit": null,
        });
        // (call, body, sender or the start of the refusal)
        let table: [(RaftCall, Vec<u8>, Result<NodeId, &str>); 6] = [
            (RaftCall::Vote, envelope(&vote_json(2)), Ok(2)),
            (
                RaftCall::AppendEntries,
                envelope(append.to_string().as_bytes()),
                Ok(3),
            ),
            (
                RaftCall::Vote,
                vec![0xff, 0xff, 0xff],
                Err("malformed raft envelope"),
            ),
            (
                RaftCall::Vote,
                envelope(b"{\"vote\": 1}"),
                Err("malformed raft message"),
            ),
            (
                RaftCall::AppendEntries,
                envelope(&vote_json(2)),
                Err("malformed raft message"),
            ),
            (
                RaftCall::FullSnapshot,
                envelope(b"[]"),
                Err("malformed raft message"),
            ),
        ];
        for (call, body, want) in table {
            let got = claimed_sender(call, &body).map_err(|s| s.message().to_string());
            match (got, want) {
                (Ok(id), Ok(w)) => assert_eq!(id, w, "{call:?}"),
                (Err(msg), Err(w)) => assert!(msg.starts_with(w), "{call:?}: {msg}"),
                (got, want) => panic!("{call:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    proptest! {
        /// Whatever reaches the controller listener decodes to an id or an error.
        #[test]
        fn any_body_is_an_id_or_an_error(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for call in [RaftCall::AppendEntries, RaftCall::Vote, RaftCall::FullSnapshot] {
                let _ = claimed_sender(call, &body);
                let _ = claimed_sender(call, &envelope(&body));
            }
        }

        /// A valid vote with bytes flipped anywhere in its JSON.
        #[test]
        fn damaged_votes_never_panic(at in 0usize..64, byte in any::<u8>()) {
            let mut json = vote_json(1);
            let i = at % json.len();
            json[i] = byte;
            let _ = claimed_sender(RaftCall::Vote, &envelope(&json));
        }
    }
}
