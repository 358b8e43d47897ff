//! One Kafka request on a raw socket, for tests that speak the wire protocol byte by
//! byte (shared by the test files that `mod raw_kafka;` it).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(30);

/// Sends `req` at `version` and decodes its answer; panics (fails the test) on a closed
/// connection or no answer within 30 s.
pub async fn call<R: Encodable, S: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &R,
) -> S {
    call_as(conn, "raw-test", key, version, req).await
}

/// [`call`] with the client id `client_id`.
pub async fn call_as<R: Encodable, S: Decodable>(
    conn: &mut TcpStream,
    client_id: &str,
    key: ApiKey,
    version: i16,
    req: &R,
) -> S {
    let buf = request_frame(client_id, key, version, 7, req);
    conn.write_all(&buf).await.unwrap();
    let (correlation_id, answer) = read_answer(conn, key, version).await;
    assert_eq!(correlation_id, 7);
    answer
}

/// One request frame: size, header (with `correlation_id`), body.
pub fn request_frame<R: Encodable>(
    client_id: &str,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    buf
}

/// Reads the next answer on `conn`, of `key` at `version`: its correlation id and body;
/// panics on a closed connection or no answer within 30 s.
pub async fn read_answer<S: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
) -> (i32, S) {
    let n = tokio::time::timeout(DEADLINE, conn.read_i32())
        .await
        .expect("an answer in time")
        .unwrap();
    let mut body = vec![0; n as usize];
    tokio::time::timeout(DEADLINE, conn.read_exact(&mut body))
        .await
        .expect("an answer in time")
        .unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    (
        header.correlation_id,
        S::decode(&mut body, version).unwrap(),
    )
}

#[allow(dead_code)] // not every test file that shares this module names topics
pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// One RecordBatch v2 of one record holding `value`, from `producer_id` (-1: not
/// idempotent, epoch -1 too) at `sequence`, uncompressed.
#[allow(dead_code)] // not every test file that shares this module produces
pub fn record_batch(value: Bytes, producer_id: i64, sequence: i32, timestamp: i64) -> Bytes {
    let record = kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp,
        key: None,
        value: Some(value),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}
