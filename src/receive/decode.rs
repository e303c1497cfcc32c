//! Decoding Export requests: protobuf (gRPC and OTLP/HTTP) and OTLP/JSON.

use crate::normalize::{self, NormalizedRecord, SentRecords, Signal};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;

pub enum ExportRequest {
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// An Export request as a receiver got it, for [`crate::receive::ingest`].
pub enum Received {
    /// Protobuf, not decoded yet: it is decoded off the server's threads, and each
    /// record's id hashes the record's bytes as sent.
    Protobuf(Signal, Bytes),
    /// Decoded already (OTLP/JSON).
    Decoded(ExportRequest),
}

impl Received {
    /// The request decoded and normalized, and its protobuf (as received, or encoded
    /// from the decoded request when `want_protobuf`).
    pub fn normalize(
        self,
        want_protobuf: bool,
    ) -> Result<(Vec<NormalizedRecord>, Signal, Option<Bytes>), String> {
        match self {
            Received::Protobuf(signal, body) => {
                let request = decode_signal(signal, &body)?;
                let sent = SentRecords::find(&body);
                let records = request.normalize_sent(sent.as_ref());
                Ok((records, signal, want_protobuf.then_some(body)))
            }
            Received::Decoded(request) => {
                let protobuf = want_protobuf.then(|| Bytes::from(request.encode()));
                Ok((request.normalize(), request.signal(), protobuf))
            }
        }
    }
}

impl ExportRequest {
    pub fn normalize(&self) -> Vec<NormalizedRecord> {
        self.normalize_sent(None)
    }

    /// [`ExportRequest::normalize`], hashing `sent` (this request's records as sent)
    /// for their ids instead of encoding each again.
    pub fn normalize_sent(&self, sent: Option<&SentRecords>) -> Vec<NormalizedRecord> {
        match self {
            ExportRequest::Logs(r) => normalize::logs(r, sent),
            ExportRequest::Traces(r) => normalize::traces(r, sent),
            ExportRequest::Metrics(r) => normalize::metrics(r, sent),
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            ExportRequest::Logs(_) => Signal::Logs,
            ExportRequest::Traces(_) => Signal::Traces,
            ExportRequest::Metrics(_) => Signal::Metrics,
        }
    }

    /// The request as protobuf (what `--forward-endpoint` passes on).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ExportRequest::Logs(r) => r.encode_to_vec(),
            ExportRequest::Traces(r) => r.encode_to_vec(),
            ExportRequest::Metrics(r) => r.encode_to_vec(),
        }
    }
}

/// `kind` is `logs`, `traces` or `metrics`.
pub fn decode_protobuf(kind: &str, bytes: &[u8]) -> Result<ExportRequest, String> {
    let signal = Signal::parse(kind).ok_or_else(|| format!("unknown signal {kind}"))?;
    decode_signal(signal, bytes)
}

fn decode_signal(signal: Signal, bytes: &[u8]) -> Result<ExportRequest, String> {
    let err = |e: prost::DecodeError| format!("invalid protobuf: {e}");
    Ok(match signal {
        Signal::Logs => ExportRequest::Logs(ExportLogsServiceRequest::decode(bytes).map_err(err)?),
        Signal::Traces => {
            ExportRequest::Traces(ExportTraceServiceRequest::decode(bytes).map_err(err)?)
        }
        Signal::Metrics => {
            ExportRequest::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(err)?)
        }
    })
}

/// OTLP/JSON (hex ids, camelCase keys), as the OTLP/HTTP JSON encoding and the
/// OpenTelemetry Collector file exporter write it.
pub fn decode_json(kind: &str, bytes: &[u8]) -> Result<ExportRequest, String> {
    let err = |e: serde_json::Error| format!("invalid OTLP/JSON: {e}");
    Ok(match kind {
        "logs" => ExportRequest::Logs(serde_json::from_slice(bytes).map_err(err)?),
        "traces" => ExportRequest::Traces(serde_json::from_slice(bytes).map_err(err)?),
        "metrics" => ExportRequest::Metrics(serde_json::from_slice(bytes).map_err(err)?),
        other => return Err(format!("unknown signal {other}")),
    })
}
