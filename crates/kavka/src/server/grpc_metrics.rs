//! Request counts and latency of the gRPC client port, per method and status, as a tower
//! layer around every service (`kavka_grpc_requests_total{method,code}`,
//! `kavka_grpc_request_duration_seconds{method}`).
//!
//! Invariants: one count per call, taken when the response head is ready (for streaming
//! methods that is when the stream starts, not when it ends); the `method` label is the
//! call's path only for Kavka's, health and reflection services, `other` for anything
//! else, so a client cannot grow the series by sending made-up paths. Must not look into
//! bodies. Depends on nothing but the `metrics` facade and tonic's HTTP types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};

/// The layer to put on the gRPC server.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// The `method` label of a call's path: the path for known services, else `other`.
pub fn method_label(path: &str) -> String {
    const KNOWN: &[&str] = &["/kavka.", "/grpc.health.", "/grpc.reflection."];
    let valid = path.len() <= 128
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_'));
    if valid && KNOWN.iter().any(|k| path.starts_with(k)) {
        path.to_string()
    } else {
        "other".to_string()
    }
}

/// The `code` label: the response's `grpc-status` (a trailers-only answer carries it in
/// its head), `0` (OK) where the head has none (the status comes in the trailers, after
/// a body, which is how successful calls end).
fn code_label<B>(response: &Response<B>) -> String {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 2 && v.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("0")
        .to_string()
}

impl<S, B, R> Service<Request<B>> for GrpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(r) => code_label(r),
                Err(_) => "transport".to_string(),
            };
            metrics::histogram!("kavka_grpc_request_duration_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("kavka_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_bounded() {
        let table = [
            (
                "/kavka.v1.BrokerService/Produce",
                "/kavka.v1.BrokerService/Produce",
            ),
            (
                "/grpc.health.v1.Health/Check",
                "/grpc.health.v1.Health/Check",
            ),
            ("/evil/path", "other"),
            ("/kavka.v1.X/{injected}", "other"),
            ("", "other"),
        ];
        for (path, want) in table {
            assert_eq!(method_label(path), want, "{path}");
        }
        assert_eq!(
            method_label(&format!("/kavka.{}", "a".repeat(200))),
            "other"
        );
    }

    #[test]
    fn codes_come_from_the_head_or_are_ok() {
        let ok = Response::builder().body(()).unwrap();
        assert_eq!(code_label(&ok), "0");
        let refused = Response::builder()
            .header("grpc-status", "14")
            .body(())
            .unwrap();
        assert_eq!(code_label(&refused), "14");
        let junk = Response::builder()
            .header("grpc-status", "lots")
            .body(())
            .unwrap();
        assert_eq!(code_label(&junk), "0");
    }
}
