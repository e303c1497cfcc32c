//! OTLP/HTTP: POST /v1/logs, /v1/traces and /v1/metrics with protobuf
//! (`application/x-protobuf`) or JSON (`application/json`) bodies, optionally gzip.
//! Errors: 400 for a body that does not decode, 413 over the size limit, 415 for
//! another content type, 429 when the collector is busy, 503 when storage fails.

use super::answer::ExportAnswer;
use super::decode::{Received, decode_json};
use super::ingest::{IngestError, Ingestor, warning};
use crate::normalize::Signal;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::io::Read;

pub fn router(ingestor: Ingestor) -> Router {
    Router::new()
        .route(
            "/v1/logs",
            post(|s: State<Ingestor>, r: Request| export(Signal::Logs, s, r)),
        )
        .route(
            "/v1/traces",
            post(|s: State<Ingestor>, r: Request| export(Signal::Traces, s, r)),
        )
        .route(
            "/v1/metrics",
            post(|s: State<Ingestor>, r: Request| export(Signal::Metrics, s, r)),
        )
        .with_state(ingestor)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

async fn export(signal: Signal, State(ingestor): State<Ingestor>, request: Request) -> Response {
    let kind = signal.as_str();
    let headers = request.headers().clone();
    let encoding = match content_type(&headers).as_deref() {
        Some("application/x-protobuf") | Some("application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {other:?} is not supported: use application/x-protobuf or application/json"
                ),
            );
        }
    };
    let limit = ingestor.max_message_bytes;
    let body = match read_body(request.into_body(), &headers, limit).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match encoding {
        // Decoded by the ingest path, off the server's threads.
        Encoding::Protobuf => Received::Protobuf(signal, body),
        Encoding::Json => match decode_json(kind, &body) {
            Ok(request) => Received::Decoded(request),
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        },
    };
    match ingestor.ingest(request).await {
        Ok(report) => success(signal, encoding, warning(&report)),
        Err(IngestError::Undecodable(message)) => error(StatusCode::BAD_REQUEST, message),
        Err(err @ (IngestError::Busy | IngestError::ForwardQueueFull(_))) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, err.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
        Err(err) => error(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The body, gunzipped if needed, refused with 413 past `limit` bytes either way.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes (--max-message-bytes)"),
        )
    };
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

fn success(signal: Signal, encoding: Encoding, warning: String) -> Response {
    match signal {
        Signal::Logs => answer(ExportLogsServiceResponse::with_warning(warning), encoding),
        Signal::Traces => answer(ExportTraceServiceResponse::with_warning(warning), encoding),
        Signal::Metrics => answer(
            ExportMetricsServiceResponse::with_warning(warning),
            encoding,
        ),
    }
}

fn answer<R: ExportAnswer>(response: R, encoding: Encoding) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}
