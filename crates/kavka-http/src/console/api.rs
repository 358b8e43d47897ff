//! The console's read-only JSON API under `/api/`: the cluster, topics and their
//! partitions, consumer groups with lag, and a message browser.
//!
//! Invariants: GET only, nothing here changes the cluster; every error is JSON
//! `{"error": "..."}` naming what was wrong (404 for what does not exist, 400 for a bad
//! parameter, 503 when this node cannot answer now); a message request reaching a node
//! that does not lead the partition is redirected (307) to the leader's console, the
//! way a Kafka client goes to the leader. Every answer allows any origin (CORS), so a
//! page can keep reading through another node when its own dies. Must not depend on the
//! gRPC services; groups are read through `kavka-client` (the coordinator and the
//! partitions' leaders may be other nodes), as `kavka group describe` reads them.

use crate::HttpState;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kavka_broker::FetchPartitionParams;
use kavka_broker::node::BrokerNode;
use kavka_client::Credentials;
use kavka_metadata::{BrokerRegistration, MetadataImage};
use kavka_model::acl::{Caller, Operation, Resource};
use kavka_model::data::OffsetSpec;
use kavka_model::{BrokerId, Offset, PartitionId, TopicName, TopicPartition};
use kavka_record::RecordBatch;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The endpoint name under which a broker registers its HTTP listener.
pub const HTTP_ENDPOINT: &str = "http";
/// Messages one request returns at most.
pub const MESSAGES_MAX: usize = 500;
const MESSAGES_DEFAULT: usize = 50;
const FETCH_BYTES: usize = 4 * 1024 * 1024;
/// How long a group request may take (it asks the coordinator and the leaders).
const GROUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("bad partition '{0}': expected a partition number")]
    BadPartition(String),
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    #[error("bad {name} '{value}': {why}")]
    BadParameter {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("unknown consumer group '{0}'")]
    UnknownGroup(String),
    #[error("{0}")]
    Unavailable(String),
    /// The ACLs do not let the signed-in user see this.
    #[error("{0}")]
    Denied(String),
}

/// Who is looking at the console: anyone (no authorizer), or the user a request
/// authenticated as, whose ACLs decide what it sees, and whose credentials the
/// console's own gRPC calls (groups) present.
#[derive(Clone, Debug)]
pub struct Viewer {
    caller: Option<Caller>,
    credentials: Credentials,
}

impl Viewer {
    pub fn anyone() -> Self {
        Self {
            caller: None,
            credentials: Credentials::default(),
        }
    }

    /// `user` if `password` is theirs (their SCRAM credential).
    pub fn authenticated(
        node: &BrokerNode,
        user: &str,
        password: &[u8],
        host: String,
    ) -> Result<Self, kavka_model::KafkaError> {
        let principal = node.api.authenticate(user, password)?;
        let text = String::from_utf8(password.to_vec()).map_err(|_| {
            kavka_model::KafkaError::new(
                kavka_model::ErrorCode::SaslAuthenticationFailed,
                "the password is not UTF-8",
            )
        })?;
        let credentials = Credentials::user(user, &text).map_err(|e| {
            kavka_model::KafkaError::new(
                kavka_model::ErrorCode::SaslAuthenticationFailed,
                e.to_string(),
            )
        })?;
        Ok(Self {
            caller: Some(Caller::new(principal, host)),
            credentials,
        })
    }

    /// Whether the viewer may do `operation` to `resource`.
    pub fn may(&self, node: &BrokerNode, operation: Operation, resource: Resource<'_>) -> bool {
        self.caller
            .as_ref()
            .is_none_or(|c| node.api.is_authorized(c, operation, resource))
    }

    /// [`Self::may`] as a result: 403 naming what was refused.
    pub fn check(
        &self,
        node: &BrokerNode,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Result<(), ApiError> {
        match &self.caller {
            Some(c) => node
                .api
                .authorize(c, operation, resource)
                .map_err(|e| ApiError::Denied(e.message)),
            None => Ok(()),
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownTopic(_) | Self::NoSuchPartition { .. } | Self::UnknownGroup(_) => {
                StatusCode::NOT_FOUND
            }
            Self::BadPartition(_) | Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Denied(_) => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn bad(name: &'static str, value: &str, why: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}

/// The broker role, or why there is none.
fn broker(state: &HttpState) -> Result<&Arc<BrokerNode>, ApiError> {
    state.broker.as_ref().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "node {} has no broker role: open the console of a broker",
            state.node_id
        ))
    })
}

/// `http://host:port/` of a broker's console, when it registered one.
pub fn console_url(b: &BrokerRegistration) -> Option<String> {
    b.endpoint(HTTP_ENDPOINT)
        .map(|e| format!("http://{}:{}/", e.host, e.port))
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// `GET /api/cluster`
#[tracing::instrument(skip_all)]
pub async fn cluster(State(state): State<Arc<HttpState>>) -> Result<Json<Value>, ApiError> {
    let node = broker(&state)?;
    let image = node.replicas.image();
    let controller = node.session.controller();
    let brokers: Vec<Value> = image
        .brokers()
        .map(|b| {
            json!({
                "id": b.broker_id.0,
                "rack": b.rack,
                "fenced": b.fenced,
                "state": if b.fenced { "fenced" } else { "unfenced" },
                "endpoints": b.endpoints.iter().map(|e| json!({"name": e.name, "host": e.host, "port": e.port})).collect::<Vec<_>>(),
                "console_url": console_url(b),
            })
        })
        .collect();
    let (mut topics, mut partitions, mut offline, mut under) = (0, 0, 0, 0);
    for t in image.topics() {
        topics += 1;
        for r in t.partitions.values() {
            partitions += 1;
            offline += usize::from(!r.has_leader());
            under += usize::from(r.isr.len() < r.replicas.len());
        }
    }
    Ok(Json(json!({
        "cluster_id": image.cluster_id,
        "node_id": state.node_id.0,
        "metadata_offset": image.offset,
        "controller_id": controller.id.map(|b| b.0),
        "term": controller.term,
        "brokers": brokers,
        "topic_count": topics,
        "partition_count": partitions,
        "offline_partitions": offline,
        "under_replicated_partitions": under,
    })))
}

/// `GET /api/topics`
#[tracing::instrument(skip_all)]
pub async fn topics(
    State(state): State<Arc<HttpState>>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Json<Value>, ApiError> {
    let node = broker(&state)?;
    let image = node.replicas.image();
    let mut out: Vec<Value> = image
        .topics()
        .filter(|t| viewer.may(node, Operation::Describe, Resource::topic(t.name.as_str())))
        .map(|t| {
            let rf = t.partitions.values().map(|r| r.replicas.len()).max();
            json!({
                "name": t.name.as_str(),
                "id": t.id.to_string(),
                "partitions": t.partitions.len(),
                "replication_factor": rf,
                "offline_partitions": t.partitions.values().filter(|r| !r.has_leader()).count(),
                "under_replicated_partitions": t.partitions.values().filter(|r| r.isr.len() < r.replicas.len()).count(),
            })
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(Value::Array(out)))
}

fn topic_name(name: &str) -> Result<TopicName, ApiError> {
    TopicName::new(name).map_err(|_| ApiError::UnknownTopic(name.to_string()))
}

/// `GET /api/topics/{topic}`
#[tracing::instrument(skip_all, fields(topic = %name))]
pub async fn topic(
    State(state): State<Arc<HttpState>>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = broker(&state)?;
    viewer.check(node, Operation::Describe, Resource::topic(&name))?;
    let image = node.replicas.image();
    let t = image
        .topic_by_name(&topic_name(&name)?)
        .ok_or_else(|| ApiError::UnknownTopic(name.clone()))?;
    let d = node
        .api
        .describe_topic(&name)
        .await
        .map_err(|e| match e.code {
            kavka_model::ErrorCode::UnknownTopicOrPartition => ApiError::UnknownTopic(name.clone()),
            _ => ApiError::Unavailable(e.message),
        })?;
    let partitions: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            let elr = t
                .partitions
                .get(&p.partition)
                .map(|r| ids(&r.eligible_leader_replicas))
                .unwrap_or_default();
            let local = p.local.map(|l| {
                json!({
                    "log_start_offset": l.log_start_offset.0,
                    "high_watermark": l.high_watermark.0,
                    "log_end_offset": l.log_end_offset.0,
                    "size_bytes": l.size_bytes,
                })
            });
            json!({
                "partition": p.partition.0,
                "leader": p.leader.map(|b| b.0),
                "leader_epoch": p.leader_epoch.0,
                "replicas": ids(&p.replicas),
                "isr": ids(&p.isr),
                "elr": elr,
                "local": local,
                "error": p.error.as_ref().map(|e| e.message.clone()),
            })
        })
        .collect();
    Ok(Json(json!({
        "name": d.topic.name.as_str(),
        "id": d.topic.id.to_string(),
        "node_id": state.node_id.0,
        "partitions": partitions,
        "configs": d.configs.iter().map(|c| json!({"name": c.name, "value": c.value, "default": c.is_default()})).collect::<Vec<_>>(),
    })))
}

/// A client of this node's own gRPC listener, for what lives on other nodes.
async fn client(node: &BrokerNode, viewer: &Viewer) -> Result<kavka_client::Client, ApiError> {
    let c = node.replicas.config();
    let addr = format!("{}:{}", c.advertised_host, c.advertised_port);
    let connect = kavka_client::Client::connect_using(
        &addr,
        &c.client_port_transport,
        viewer.credentials.clone(),
    );
    tokio::time::timeout(GROUP_TIMEOUT, connect)
        .await
        .map_err(|_| {
            ApiError::Unavailable(format!("no answer from {addr} within {GROUP_TIMEOUT:?}"))
        })?
        .map_err(|e| {
            ApiError::Unavailable(format!("cannot reach this node's broker at {addr}: {e}"))
        })
}

/// `GET /api/groups`: every group, from every coordinator.
#[tracing::instrument(skip_all)]
pub async fn groups(
    State(state): State<Arc<HttpState>>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Json<Value>, ApiError> {
    // The gRPC API lists only the groups the viewer's credentials may describe.
    let mut c = client(broker(&state)?, &viewer).await?;
    let groups = tokio::time::timeout(GROUP_TIMEOUT, c.list_groups())
        .await
        .map_err(|_| ApiError::Unavailable("listing groups took too long".into()))?
        .map_err(|e| ApiError::Unavailable(format!("cannot list groups: {e}")))?;
    Ok(Json(Value::Array(
        groups
            .iter()
            .map(|g| json!({"group_id": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
            .collect(),
    )))
}

/// `GET /api/groups/{group}`: members and lag per partition (the numbers `kavka group
/// describe` prints).
#[tracing::instrument(skip_all, fields(group = %group))]
pub async fn group(
    State(state): State<Arc<HttpState>>,
    Extension(viewer): Extension<Viewer>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = broker(&state)?;
    viewer.check(node, Operation::Describe, Resource::group(&group))?;
    let mut c = client(node, &viewer).await?;
    let g = tokio::time::timeout(GROUP_TIMEOUT, c.group_lag(&group))
        .await
        .map_err(|_| ApiError::Unavailable(format!("describing group '{group}' took too long")))?
        .map_err(|e| match e.kafka_code() {
            Some(kavka_model::ErrorCode::GroupIdNotFound) => ApiError::UnknownGroup(group.clone()),
            _ => ApiError::Unavailable(format!("cannot describe group '{group}': {e}")),
        })?;
    if g.is_unknown() {
        return Err(ApiError::UnknownGroup(group));
    }
    let d = &g.description;
    Ok(Json(json!({
        "group_id": d.group_id,
        "state": d.state,
        "protocol_type": d.protocol_type,
        "protocol": d.protocol,
        "generation_id": d.generation_id,
        "coordinator": d.coordinator,
        "members": d.members.iter().map(|m| json!({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "assignment": m.assignment.iter().map(|a| json!({"topic": a.topic, "partitions": a.partitions})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "partitions": g.rows.iter().map(|r| json!({
            "topic": r.topic,
            "partition": r.partition,
            "committed_offset": r.committed,
            "log_end_offset": r.log_end,
            "lag": r.lag(),
            "member_id": r.member.and_then(|i| d.members.get(i)).map(|m| &m.member_id),
        })).collect::<Vec<_>>(),
    })))
}

/// Where to read messages from: an offset, a time, or the last `limit` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Offset(i64),
    Timestamp(i64),
    Tail,
}

/// Parses a message request's query.
pub fn parse_messages_query(q: &HashMap<String, String>) -> Result<(Start, usize), ApiError> {
    let number = |name: &'static str, v: &str| -> Result<i64, ApiError> {
        let n: i64 = v
            .parse()
            .map_err(|_| bad(name, v, "expected a whole number"))?;
        if n < 0 {
            return Err(bad(name, v, "must not be negative"));
        }
        Ok(n)
    };
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "offset" | "timestamp" | "limit"))
    {
        return Err(bad(
            "parameter",
            k,
            "expected offset, timestamp (ms since the epoch) or limit",
        ));
    }
    let start = match (q.get("offset"), q.get("timestamp")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "parameter",
                "offset+timestamp",
                "give offset or timestamp, not both",
            ));
        }
        (Some(o), None) => Start::Offset(number("offset", o)?),
        (None, Some(t)) => Start::Timestamp(number("timestamp", t)?),
        (None, None) => Start::Tail,
    };
    let limit = match q.get("limit") {
        None => MESSAGES_DEFAULT,
        Some(l) => {
            let n = number("limit", l)?;
            if n == 0 || n > MESSAGES_MAX as i64 {
                return Err(bad("limit", l, format!("expected 1 to {MESSAGES_MAX}")));
            }
            n as usize
        }
    };
    Ok((start, limit))
}

fn partition_of(
    image: &MetadataImage,
    topic: &str,
    partition: &str,
) -> Result<(TopicPartition, Option<BrokerId>), ApiError> {
    let name = topic_name(topic)?;
    let t = image
        .topic_by_name(&name)
        .ok_or_else(|| ApiError::UnknownTopic(topic.to_string()))?;
    let p: i32 = partition
        .parse()
        .map_err(|_| ApiError::BadPartition(partition.to_string()))?;
    let reg = t
        .partitions
        .get(&PartitionId(p))
        .ok_or_else(|| ApiError::NoSuchPartition {
            topic: topic.to_string(),
            partition: p,
            count: t.partitions.len(),
        })?;
    Ok((
        TopicPartition::new(name, PartitionId(p)),
        reg.has_leader().then_some(reg.leader),
    ))
}

fn bytes_json(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => json!({
            "text": std::str::from_utf8(b).ok(),
            "base64": base64::engine::general_purpose::STANDARD.encode(b),
        }),
    }
}

/// `GET /api/topics/{topic}/partitions/{partition}/messages?offset=|timestamp=&limit=`
#[tracing::instrument(skip_all, fields(topic = %topic, partition = %partition))]
pub async fn messages(
    State(state): State<Arc<HttpState>>,
    Extension(viewer): Extension<Viewer>,
    Path((topic, partition)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let node = broker(&state)?;
    viewer.check(node, Operation::Read, Resource::topic(&topic))?;
    let image = node.replicas.image();
    let (tp, leader) = partition_of(&image, &topic, &partition)?;
    let (start, limit) = parse_messages_query(&q)?;
    let leader = leader.ok_or_else(|| {
        ApiError::Unavailable(format!("{topic}-{partition} has no leader right now"))
    })?;
    if leader != state.node_id {
        // Served by the leader, as Kafka clients are: send the page there.
        let target = image.broker(leader).and_then(console_url).ok_or_else(|| {
            ApiError::Unavailable(format!(
                "{topic}-{partition} is led by broker {}, which has no console",
                leader.0
            ))
        })?;
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        let location = format!("{}{}", target.trim_end_matches('/'), path);
        let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(r);
    }
    let offsets = node
        .api
        .list_offsets(
            &tp.topic,
            vec![
                (tp.partition, OffsetSpec::Earliest),
                (tp.partition, OffsetSpec::Latest),
            ],
        )
        .await;
    let read = |i: usize| -> Result<i64, ApiError> {
        match offsets.get(i).map(|(_, r)| r) {
            Some(Ok(Some(o))) => Ok(o.offset.0),
            Some(Err(e)) => Err(ApiError::Unavailable(e.message.clone())),
            _ => Err(ApiError::Unavailable(format!(
                "cannot read the offsets of {topic}-{partition}"
            ))),
        }
    };
    let (log_start, hw) = (read(0)?, read(1)?);
    let from = match start {
        Start::Offset(o) if o < log_start => {
            return Err(bad(
                "offset",
                &o.to_string(),
                format!("below the log start offset {log_start} of {topic}-{partition}"),
            ));
        }
        Start::Offset(o) if o > hw => {
            return Err(bad(
                "offset",
                &o.to_string(),
                format!("past the end of {topic}-{partition} (high watermark {hw})"),
            ));
        }
        Start::Offset(o) => o,
        Start::Tail => (hw - limit as i64).max(log_start),
        Start::Timestamp(ts) => {
            let found = node
                .api
                .list_offsets(&tp.topic, vec![(tp.partition, OffsetSpec::Timestamp(ts))])
                .await;
            match found.into_iter().next().map(|(_, r)| r) {
                Some(Ok(Some(o))) => o.offset.0,
                Some(Ok(None)) => hw,
                Some(Err(e)) => return Err(ApiError::Unavailable(e.message)),
                None => hw,
            }
        }
    };
    let mut out = Vec::new();
    let mut next = from;
    while out.len() < limit && next < hw {
        let fetched = node
            .api
            .fetch(
                vec![FetchPartitionParams {
                    tp: tp.clone(),
                    offset: Offset(next),
                    max_bytes: FETCH_BYTES,
                }],
                0,
                0,
                FETCH_BYTES,
            )
            .await;
        let Some(f) = fetched.into_iter().next() else {
            break;
        };
        if let Some(e) = f.error {
            return Err(ApiError::Unavailable(format!(
                "cannot read {topic}-{partition} at offset {next}: {}",
                e.message
            )));
        }
        let before = next;
        let records = f.records.into_bytes();
        let mut buf = &records[..];
        while !buf.is_empty() && out.len() < limit {
            let Ok((batch, size)) = RecordBatch::decode(buf) else {
                break; // a partial batch at the end of the fetch
            };
            buf = &buf[size..];
            if !batch.is_control {
                for (offset, ts, r) in batch.offsets_and_timestamps() {
                    if offset < next || offset >= hw || out.len() >= limit {
                        continue;
                    }
                    out.push(json!({
                        "offset": offset,
                        "timestamp_ms": ts,
                        "key": bytes_json(r.key.as_deref()),
                        "value": bytes_json(r.value.as_deref()),
                        "headers": r.headers.iter().map(|h| json!({"key": h.key, "value": bytes_json(h.value.as_deref())})).collect::<Vec<_>>(),
                    }));
                    next = offset + 1;
                }
            }
            if out.len() >= limit {
                break; // `next` is the offset after the last message returned
            }
            // Past the whole batch (control records, compacted-away offsets).
            next = next.max((batch.base_offset + i64::from(batch.last_offset_delta) + 1).min(hw));
        }
        if next == before {
            break; // nothing readable here: do not spin
        }
    }
    Ok(Json(json!({
        "topic": topic,
        "partition": tp.partition.0,
        "log_start_offset": log_start,
        "high_watermark": hw,
        "next_offset": next,
        "messages": out,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn message_queries_are_checked_with_a_clear_reason() {
        // query -> Ok((start, limit)) or the error's text
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<(Start, usize), &'a str>);
        let table: [Case; 9] = [
            (&[], Ok((Start::Tail, MESSAGES_DEFAULT))),
            (&[("offset", "7")], Ok((Start::Offset(7), MESSAGES_DEFAULT))),
            (
                &[("timestamp", "1700000000000"), ("limit", "3")],
                Ok((Start::Timestamp(1_700_000_000_000), 3)),
            ),
            (
                &[("offset", "x")],
                Err("bad offset 'x': expected a whole number"),
            ),
            (
                &[("offset", "-1")],
                Err("bad offset '-1': must not be negative"),
            ),
            (&[("limit", "0")], Err("bad limit '0': expected 1 to 500")),
            (
                &[("limit", "501")],
                Err("bad limit '501': expected 1 to 500"),
            ),
            (
                &[("offset", "1"), ("timestamp", "2")],
                Err("bad parameter 'offset+timestamp': give offset or timestamp, not both"),
            ),
            (
                &[("ofset", "1")],
                Err(
                    "bad parameter 'ofset': expected offset, timestamp (ms since the epoch) or limit",
                ),
            ),
        ];
        for (query, want) in table {
            let got = parse_messages_query(&q(query)).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{query:?}");
        }
    }

    #[test]
    fn errors_map_to_http_statuses() {
        let table = [
            (ApiError::UnknownTopic("t".into()), StatusCode::NOT_FOUND),
            (ApiError::BadPartition("x".into()), StatusCode::BAD_REQUEST),
            (ApiError::UnknownGroup("g".into()), StatusCode::NOT_FOUND),
            (
                ApiError::Unavailable("x".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (e, want) in table {
            assert_eq!(e.status(), want, "{e}");
        }
    }
}
