//! Sends OTLP trace requests downstream: OTLP/gRPC (tonic) or OTLP/HTTP protobuf.
//!
//! The outcome of one send is success, a retryable failure (with the server's
//! requested delay, if any) or a permanent failure. Retrying, backoff and the queue are
//! the business of [`super::exporter`].
//!
//! - gRPC: retryable codes are those of the OTLP specification (UNAVAILABLE,
//!   RESOURCE_EXHAUSTED, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
//!   DATA_LOSS) plus UNKNOWN (what a proxy in the way produces). A
//!   `google.rpc.RetryInfo` in the status details sets the delay.
//! - HTTP: 429, 502, 503 and 504 and connection failures are retryable, `Retry-After`
//!   (seconds) sets the delay. The client is a minimal HTTP/1.1 one (one connection per
//!   request, `http://` only), so no further dependency is needed.
//! - `https://` needs TLS, which this build of tonic lacks: [`Transport::new`] refuses
//!   it with a clear error.

use super::config::{ExportConfig, Protocol};
use flate2::{Compression, write::GzEncoder};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse, trace_service_client::TraceServiceClient,
};
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::CompressionEncoding;
use tonic::codegen::http::Uri;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

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

/// A successful send: spans the server said it rejected (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub rejected_spans: i64,
    pub message: String,
}

pub enum Transport {
    Grpc {
        client: TraceServiceClient<Channel>,
        metadata: MetadataMap,
        timeout: Duration,
    },
    Http(HttpTarget),
}

pub struct HttpTarget {
    host: String,
    port: u16,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
}

impl Transport {
    /// Checks the configuration and prepares the client; connects lazily, so a
    /// downstream that is not up yet is not an error here.
    pub fn new(config: &ExportConfig) -> anyhow::Result<Transport> {
        let uri: Uri = config
            .endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("export endpoint {:?}: {e}", config.endpoint))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => anyhow::bail!(
                "export endpoint {}: https needs TLS, which this build lacks \
                 (tonic features tls-ring + tls-native-roots)",
                config.endpoint
            ),
            _ => anyhow::bail!(
                "export endpoint {}: expected http://HOST:PORT",
                config.endpoint
            ),
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("export endpoint has no host"))?;
        match config.protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(config.endpoint.clone())?
                    .connect_timeout(config.timeout)
                    .connect_lazy();
                let mut client =
                    TraceServiceClient::new(channel).max_decoding_message_size(4 * 1024 * 1024);
                if config.gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                let mut metadata = MetadataMap::new();
                for (key, value) in &config.headers {
                    let key = MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                        .map_err(|e| anyhow::anyhow!("export header {key:?}: {e}"))?;
                    let value = MetadataValue::try_from(value.as_str())
                        .map_err(|e| anyhow::anyhow!("export header value for {key:?}: {e}"))?;
                    metadata.insert(key, value);
                }
                Ok(Transport::Grpc {
                    client,
                    metadata,
                    timeout: config.timeout,
                })
            }
            Protocol::HttpProtobuf => {
                let port = uri.port_u16().unwrap_or(80);
                let mut path = uri.path().trim_end_matches('/').to_string();
                if !path.ends_with("/v1/traces") {
                    path.push_str("/v1/traces");
                }
                for (key, value) in &config.headers {
                    let bad = |s: &str| s.is_empty() || s.bytes().any(|b| b == b'\r' || b == b'\n');
                    if bad(key)
                        || key.contains(':')
                        || value.bytes().any(|b| b == b'\r' || b == b'\n')
                    {
                        anyhow::bail!("export header {key:?}: not a valid HTTP header");
                    }
                }
                Ok(Transport::Http(HttpTarget {
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    port,
                    authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
                    path,
                    headers: config.headers.clone(),
                    gzip: config.gzip,
                    timeout: config.timeout,
                }))
            }
        }
    }

    pub async fn send(&mut self, request: ExportTraceServiceRequest) -> Result<Sent, SendError> {
        match self {
            Transport::Grpc {
                client,
                metadata,
                timeout,
            } => {
                let mut req = tonic::Request::new(request);
                *req.metadata_mut() = metadata.clone();
                req.set_timeout(*timeout);
                let call = client.export(req);
                match tokio::time::timeout(*timeout + Duration::from_secs(1), call).await {
                    Err(_) => Err(SendError::Retryable {
                        delay: None,
                        message: "gRPC export timed out".to_string(),
                    }),
                    Ok(Ok(response)) => Ok(sent_of(response.into_inner())),
                    Ok(Err(status)) => Err(classify_grpc(&status)),
                }
            }
            Transport::Http(target) => target.send(request).await,
        }
    }
}

fn sent_of(response: ExportTraceServiceResponse) -> Sent {
    match response.partial_success {
        Some(p) => Sent {
            rejected_spans: p.rejected_spans,
            message: p.error_message,
        },
        None => Sent::default(),
    }
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
    async fn send(&self, request: ExportTraceServiceRequest) -> Result<Sent, SendError> {
        let mut body = request.encode_to_vec();
        if self.gzip {
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&body)
                .and_then(|_| enc.finish())
                .map(|b| body = b)
                .map_err(|e| SendError::Permanent {
                    message: format!("gzip: {e}"),
                })?;
        }
        let exchange = self.exchange(&body);
        let (status, headers, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(SendError::Retryable {
                    delay: None,
                    message: "OTLP/HTTP export timed out".to_string(),
                });
            }
            Ok(Err(e)) => {
                return Err(SendError::Retryable {
                    delay: None,
                    message: format!("OTLP/HTTP: {e}"),
                });
            }
            Ok(Ok(r)) => r,
        };
        let message = format!("OTLP/HTTP status {status}");
        match status {
            200..=299 => Ok(ExportTraceServiceResponse::decode(body.as_slice())
                .map(sent_of)
                .unwrap_or_default()),
            429 | 502 | 503 | 504 => {
                let delay = header(&headers, "retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(SendError::Retryable { delay, message })
            }
            _ => Err(SendError::Permanent { message }),
        }
    }

    /// One HTTP/1.1 request on a fresh connection; returns status, headers and body.
    async fn exchange(&self, body: &[u8]) -> std::io::Result<HttpResponse> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: rollout-collector/{}\r\n",
            self.path,
            self.authority,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        if self.gzip {
            head.push_str("Content-Encoding: gzip\r\n");
        }
        for (key, value) in &self.headers {
            head.push_str(&format!("{key}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        parse_response(&response)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Status, headers and body of an HTTP response.
type HttpResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Parses a whole HTTP/1.1 response (the connection was closed after it).
fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no HTTP head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("HTTP head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad HTTP status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    } else if let Some(len) =
        header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// The delay before retry number `attempt` (0-based): `initial * 2^attempt`, capped at
/// `max`. Deterministic: no jitter (one exporter per collector, nothing to spread).
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(attempt.min(30)))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let i = Duration::from_millis(500);
        let m = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, i, m), Duration::from_millis(500));
        assert_eq!(backoff_delay(1, i, m), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, i, m), Duration::from_secs(4));
        assert_eq!(backoff_delay(10, i, m), m);
        assert_eq!(backoff_delay(u32::MAX, i, m), m);
    }

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

    #[test]
    fn parses_http_responses() {
        let raw =
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n";
        let (status, headers, body) = parse_response(raw).unwrap();
        assert_eq!(status, 503);
        assert_eq!(header(&headers, "retry-after"), Some("7"));
        assert!(body.is_empty());
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (status, _, body) = parse_response(raw).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"abcde");
    }

    #[test]
    fn refuses_https_without_tls_and_builds_http_paths() {
        let mut config = ExportConfig::new("https://example.com:4317");
        assert!(Transport::new(&config).is_err());
        config.endpoint = "http://127.0.0.1:4318".to_string();
        config.protocol = Protocol::HttpProtobuf;
        match Transport::new(&config).unwrap() {
            Transport::Http(t) => assert_eq!(t.path, "/v1/traces"),
            Transport::Grpc { .. } => panic!("expected http"),
        }
        config.endpoint = "http://127.0.0.1:4318/custom/v1/traces".to_string();
        match Transport::new(&config).unwrap() {
            Transport::Http(t) => assert_eq!(t.path, "/custom/v1/traces"),
            Transport::Grpc { .. } => panic!("expected http"),
        }
    }
}
