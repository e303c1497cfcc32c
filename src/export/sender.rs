//! Sends encoded OTLP Export requests (logs, traces or metrics) downstream, over
//! OTLP/gRPC (tonic) or OTLP/HTTP with protobuf bodies (reqwest), `http://` or
//! `https://` (TLS with the system's root certificates, plus an optional CA file).
//!
//! The outcome of one send is success, a retryable failure (with the server's
//! requested delay, if any) or a permanent failure. Retrying, backoff and the queue are
//! the business of the caller ([`super::exporter`], [`super::forward`]).
//!
//! - gRPC: retryable codes are those of the OTLP specification (UNAVAILABLE,
//!   RESOURCE_EXHAUSTED, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
//!   DATA_LOSS) plus UNKNOWN (what a proxy in the way produces). A
//!   `google.rpc.RetryInfo` in the status details sets the delay.
//! - HTTP: 429, 502, 503 and 504 and connection failures are retryable, `Retry-After`
//!   (seconds) sets the delay.

use super::encoded_codec::AsEncoded;
use crate::normalize::Signal;
use bytes::Bytes;
use flate2::{Compression, write::GzEncoder};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http::Uri;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The wire protocol of a downstream endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC, e.g. `http://collector:4317`.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, POSTed to `<endpoint>/v1/{logs,traces,metrics}`
    /// (an endpoint already ending in `/v1/<signal>` is taken as the path for that
    /// signal), e.g. `http://collector:4318`.
    HttpProtobuf,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(Protocol::Grpc),
            "http" | "http/protobuf" | "http-protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(format!(
                "unknown protocol {other:?} (grpc or http/protobuf)"
            )),
        }
    }
}

/// Where and how to send: shared by the span exporter and the forwarder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// `http(s)://host:port[/path]`.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Sent with every request (gRPC metadata or HTTP headers), e.g. authorization.
    pub headers: Vec<(String, String)>,
    /// PEM file of extra root certificates for `https://` (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Gzip request bodies.
    pub gzip: bool,
    /// Per-request timeout (and connect timeout).
    pub timeout: Duration,
}

impl Destination {
    pub fn new(endpoint: impl Into<String>) -> Destination {
        Destination {
            endpoint: endpoint.into(),
            protocol: Protocol::Grpc,
            headers: Vec::new(),
            ca_file: None,
            gzip: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Try again later; `delay` is what the server asked for, if it did.
    Retryable {
        delay: Option<Duration>,
        message: String,
    },
    /// The server refused the data for good (bad request, auth, not found...).
    Permanent { message: String },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retryable { message, .. } => write!(f, "retryable: {message}"),
            SendError::Permanent { message } => write!(f, "permanent: {message}"),
        }
    }
}

/// A successful send: items (spans, log records, data points) the server said it
/// rejected (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub rejected: i64,
    pub message: String,
}

pub enum Transport {
    Grpc {
        channel: Channel,
        metadata: MetadataMap,
        gzip: bool,
        timeout: Duration,
    },
    Http(HttpTarget),
}

pub struct HttpTarget {
    client: reqwest::Client,
    /// The endpoint without a trailing `/v1/<signal>`.
    base: String,
    /// The signal whose full path the endpoint named, if it did.
    named: Option<(Signal, String)>,
    headers: reqwest::header::HeaderMap,
    gzip: bool,
}

impl HttpTarget {
    /// The URL a signal is POSTed to.
    pub fn url(&self, signal: Signal) -> String {
        match &self.named {
            Some((named, url)) if *named == signal => url.clone(),
            _ => format!("{}/v1/{}", self.base, signal.as_str()),
        }
    }
}

impl Transport {
    /// Checks the destination and prepares the client; connects lazily, so a
    /// downstream that is not up yet is not an error here.
    pub fn new(to: &Destination) -> anyhow::Result<Transport> {
        let uri: Uri = to
            .endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("endpoint {:?}: {e}", to.endpoint))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => anyhow::bail!(
                "endpoint {}: expected http://HOST:PORT or https://HOST:PORT",
                to.endpoint
            ),
        };
        if uri.host().is_none() {
            anyhow::bail!("endpoint {}: no host", to.endpoint);
        }
        let ca = match &to.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("CA file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        match to.protocol {
            Protocol::Grpc => {
                let mut endpoint = Endpoint::from_shared(to.endpoint.clone())?
                    .connect_timeout(to.timeout)
                    .tcp_nodelay(true);
                if tls {
                    let mut config = ClientTlsConfig::new().with_native_roots();
                    if let Some(pem) = &ca {
                        config = config.ca_certificate(Certificate::from_pem(pem));
                    }
                    endpoint = endpoint
                        .tls_config(config)
                        .map_err(|e| anyhow::anyhow!("endpoint {}: TLS: {e}", to.endpoint))?;
                }
                let mut metadata = MetadataMap::new();
                for (key, value) in &to.headers {
                    let key = MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                        .map_err(|e| anyhow::anyhow!("header {key:?}: {e}"))?;
                    let value = MetadataValue::try_from(value.as_str())
                        .map_err(|e| anyhow::anyhow!("header value for {key:?}: {e}"))?;
                    metadata.insert(key, value);
                }
                Ok(Transport::Grpc {
                    channel: endpoint.connect_lazy(),
                    metadata,
                    gzip: to.gzip,
                    timeout: to.timeout,
                })
            }
            Protocol::HttpProtobuf => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (key, value) in &to.headers {
                    let name = reqwest::header::HeaderName::from_bytes(key.as_bytes())
                        .map_err(|e| anyhow::anyhow!("header {key:?}: {e}"))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|e| anyhow::anyhow!("header value for {key:?}: {e}"))?;
                    headers.insert(name, value);
                }
                let mut client = reqwest::Client::builder()
                    .timeout(to.timeout)
                    .connect_timeout(to.timeout)
                    .tcp_nodelay(true)
                    .user_agent(concat!("rollout-collector/", env!("CARGO_PKG_VERSION")));
                if let Some(pem) = &ca {
                    for cert in reqwest::Certificate::from_pem_bundle(pem)
                        .map_err(|e| anyhow::anyhow!("CA file: {e}"))?
                    {
                        client = client.add_root_certificate(cert);
                    }
                }
                let client = client
                    .build()
                    .map_err(|e| anyhow::anyhow!("endpoint {}: {e}", to.endpoint))?;
                let trimmed = to.endpoint.trim_end_matches('/');
                let mut base = trimmed.to_string();
                let mut named = None;
                for signal in [Signal::Logs, Signal::Traces, Signal::Metrics] {
                    if let Some(stripped) =
                        trimmed.strip_suffix(&format!("/v1/{}", signal.as_str()))
                    {
                        base = stripped.to_string();
                        named = Some((signal, trimmed.to_string()));
                    }
                }
                Ok(Transport::Http(HttpTarget {
                    client,
                    base,
                    named,
                    headers,
                    gzip: to.gzip,
                }))
            }
        }
    }

    /// Sends one encoded Export request of `signal`.
    pub async fn send(&mut self, signal: Signal, body: Bytes) -> Result<Sent, SendError> {
        match self {
            Transport::Grpc {
                channel,
                metadata,
                gzip,
                timeout,
            } => {
                let call = grpc_export(channel.clone(), metadata, *gzip, *timeout, signal, body);
                match tokio::time::timeout(*timeout + Duration::from_secs(1), call).await {
                    Err(_) => Err(SendError::Retryable {
                        delay: None,
                        message: "gRPC export timed out".to_string(),
                    }),
                    Ok(result) => result,
                }
            }
            Transport::Http(target) => target.send(signal, body).await,
        }
    }
}

async fn grpc_export(
    channel: Channel,
    metadata: &MetadataMap,
    gzip: bool,
    timeout: Duration,
    signal: Signal,
    body: Bytes,
) -> Result<Sent, SendError> {
    let path = |service: &str| {
        let path = format!("/opentelemetry.proto.collector.{service}/Export");
        PathAndQuery::try_from(path).expect("a valid path")
    };
    let mut request = tonic::Request::new(body);
    *request.metadata_mut() = metadata.clone();
    request.set_timeout(timeout);
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(CompressionEncoding::Gzip);
    }
    let sent = match signal {
        Signal::Logs => unary(grpc, request, path("logs.v1.LogsService"), logs_sent).await,
        Signal::Traces => unary(grpc, request, path("trace.v1.TraceService"), traces_sent).await,
        Signal::Metrics => {
            unary(
                grpc,
                request,
                path("metrics.v1.MetricsService"),
                metrics_sent,
            )
            .await
        }
    };
    sent.map_err(|status| classify_grpc(&status))
}

/// One unary call of `path` with the encoded request; its response as [`Sent`].
async fn unary<R: Message + Default + Send + 'static>(
    mut grpc: tonic::client::Grpc<Channel>,
    request: tonic::Request<Bytes>,
    path: PathAndQuery,
    sent: fn(R) -> Sent,
) -> Result<Sent, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
    let response = grpc.unary(request, path, AsEncoded::default()).await?;
    Ok(sent(response.into_inner()))
}

fn logs_sent(response: ExportLogsServiceResponse) -> Sent {
    response
        .partial_success
        .map(|p| Sent {
            rejected: p.rejected_log_records,
            message: p.error_message,
        })
        .unwrap_or_default()
}

fn traces_sent(response: ExportTraceServiceResponse) -> Sent {
    response
        .partial_success
        .map(|p| Sent {
            rejected: p.rejected_spans,
            message: p.error_message,
        })
        .unwrap_or_default()
}

fn metrics_sent(response: ExportMetricsServiceResponse) -> Sent {
    response
        .partial_success
        .map(|p| Sent {
            rejected: p.rejected_data_points,
            message: p.error_message,
        })
        .unwrap_or_default()
}

fn http_sent(signal: Signal, body: &[u8]) -> Sent {
    match signal {
        Signal::Logs => ExportLogsServiceResponse::decode(body).map(logs_sent),
        Signal::Traces => ExportTraceServiceResponse::decode(body).map(traces_sent),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body).map(metrics_sent),
    }
    .unwrap_or_default()
}

/// Sorts a gRPC status into retryable or permanent, reading `RetryInfo`.
pub fn classify_grpc(status: &tonic::Status) -> SendError {
    use tonic::Code;
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Unknown => SendError::Retryable {
            delay: retry_info_delay(status.details()),
            message,
        },
        _ => SendError::Permanent { message },
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<prost_types::Duration>,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The delay of a `google.rpc.RetryInfo` in encoded `google.rpc.Status` details.
pub fn retry_info_delay(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE)
        .find_map(|any| {
            let d = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
            let secs = u64::try_from(d.seconds).ok()?;
            let nanos = u32::try_from(d.nanos).ok()?;
            Some(Duration::new(secs, nanos))
        })
}

/// Encoded `google.rpc.Status` details carrying a `RetryInfo` (for servers and tests).
pub fn retry_info_details(code: i32, message: &str, delay: Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![prost_types::Any {
            type_url: RETRY_INFO_TYPE.to_string(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

impl HttpTarget {
    async fn send(&self, signal: Signal, mut body: Bytes) -> Result<Sent, SendError> {
        let mut request = self
            .client
            .post(self.url(signal))
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            body = enc
                .write_all(&body)
                .and_then(|_| enc.finish())
                .map(Bytes::from)
                .map_err(|e| SendError::Permanent {
                    message: format!("gzip: {e}"),
                })?;
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retryable {
                delay: None,
                message: format!("OTLP/HTTP: {e}"),
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.unwrap_or_default();
        let message = format!(
            "OTLP/HTTP status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        match status {
            200..=299 => Ok(http_sent(signal, &body)),
            429 | 502 | 503 | 504 => Err(SendError::Retryable {
                delay: retry_after,
                message,
            }),
            _ => Err(SendError::Permanent { message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_and_classifies() {
        let details = retry_info_details(14, "busy", Duration::from_millis(1500));
        assert_eq!(
            retry_info_delay(&details),
            Some(Duration::from_millis(1500))
        );
        let status =
            tonic::Status::with_details(tonic::Code::ResourceExhausted, "busy", details.into());
        assert_eq!(
            classify_grpc(&status),
            SendError::Retryable {
                delay: Some(Duration::from_millis(1500)),
                message: "gRPC ResourceExhausted: busy".to_string()
            }
        );
        let status = tonic::Status::invalid_argument("bad");
        assert!(matches!(
            classify_grpc(&status),
            SendError::Permanent { .. }
        ));
        assert_eq!(retry_info_delay(b"garbage\xff"), None);
    }

    #[tokio::test]
    async fn http_paths_per_signal_and_bad_endpoints() {
        let mut to = Destination::new("ftp://example.com:4317");
        assert!(Transport::new(&to).is_err());
        to.endpoint = "https://example.com:4317".to_string();
        assert!(matches!(Transport::new(&to), Ok(Transport::Grpc { .. })));
        to.protocol = Protocol::HttpProtobuf;
        to.endpoint = "http://127.0.0.1:4318".to_string();
        let Transport::Http(t) = Transport::new(&to).unwrap() else {
            panic!("expected http")
        };
        assert_eq!(t.url(Signal::Traces), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.url(Signal::Logs), "http://127.0.0.1:4318/v1/logs");
        to.endpoint = "https://host/custom/v1/traces".to_string();
        let Transport::Http(t) = Transport::new(&to).unwrap() else {
            panic!("expected http")
        };
        assert_eq!(t.url(Signal::Traces), "https://host/custom/v1/traces");
        assert_eq!(t.url(Signal::Metrics), "https://host/custom/v1/metrics");
        to.headers = vec![("bad header".into(), "x".into())];
        assert!(Transport::new(&to).is_err());
        to.headers = vec![];
        to.ca_file = Some("/nonexistent/ca.pem".into());
        let Err(err) = Transport::new(&to) else {
            panic!("a missing CA file is an error")
        };
        assert!(err.to_string().contains("CA file"), "{err}");
    }
}
