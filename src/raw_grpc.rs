//! A gRPC unary call with raw bytes for its body, to put on the wire what no generated
//! client would send (a malformed message, a body for another method).
//!
//! Must not depend on the generated services: the point is to bypass them.

use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Calls `path` (e.g. `/kavka.v1.RaftService/Vote`) on `addr` with `body` as the message
/// bytes and `metadata` as headers; the answer's bytes or its status.
pub async fn raw_unary(
    addr: impl std::fmt::Display,
    path: &'static str,
    body: Vec<u8>,
    metadata: &[(&'static str, &str)],
) -> anyhow::Result<Result<Vec<u8>, tonic::Status>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let mut req = tonic::Request::new(body);
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse()?);
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    Ok(grpc
        .unary::<Vec<u8>, Vec<u8>, _>(req, path, RawCodec)
        .await
        .map(tonic::Response::into_inner))
}

/// Sends and receives raw bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}
