//! Decoding Export requests: protobuf (gRPC and OTLP/HTTP) and OTLP/JSON.

use super::otlp::{DecodeError, LogsRequest, MetricsRequest, TracesRequest};
use crate::normalize::{self, NormalizedRecord, Signal};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;

/// An Export request decoded into owned messages (OTLP/JSON, or [`decode_protobuf`]).
pub enum ExportRequest {
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// An Export request as a receiver got it, for [`crate::receive::ingest`].
pub enum Received {
    /// Protobuf, not decoded yet: it is read in place off the server's threads, and
    /// each record's id hashes the record's bytes as sent.
    Protobuf(Signal, Bytes),
    /// Decoded already (OTLP/JSON).
    Decoded(ExportRequest),
}

impl Received {
    /// The request normalized, its signal, and its protobuf (as received, or encoded
    /// from the decoded request) when `want_protobuf`.
    pub fn normalize(
        self,
        want_protobuf: bool,
    ) -> Result<(Vec<NormalizedRecord>, Signal, Option<Bytes>), String> {
        let (signal, protobuf) = match self {
            Received::Protobuf(signal, body) => (signal, body),
            Received::Decoded(request) => (request.signal(), Bytes::from(request.encode())),
        };
        let records = normalize_protobuf(signal, &protobuf)?;
        Ok((records, signal, want_protobuf.then_some(protobuf)))
    }
}

impl ExportRequest {
    /// The request normalized, through its protobuf encoding (so that its records get
    /// the ids they would have had sent as protobuf).
    pub fn normalize(&self) -> Result<Vec<NormalizedRecord>, String> {
        normalize_protobuf(self.signal(), &self.encode())
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

/// A protobuf Export request of `signal`, read in place and normalized; refused whole
/// if any of it is malformed.
pub fn normalize_protobuf(signal: Signal, wire: &[u8]) -> Result<Vec<NormalizedRecord>, String> {
    let err = |e: DecodeError| format!("invalid protobuf: {e}");
    Ok(match signal {
        Signal::Logs => normalize::logs(&LogsRequest::decode(wire).map_err(err)?),
        Signal::Traces => normalize::traces(&TracesRequest::decode(wire).map_err(err)?),
        Signal::Metrics => normalize::metrics(&MetricsRequest::decode(wire).map_err(err)?),
    })
}

/// Decodes into owned messages; `kind` is `logs`, `traces` or `metrics`.
pub fn decode_protobuf(kind: &str, bytes: &[u8]) -> Result<ExportRequest, String> {
    let signal = Signal::parse(kind).ok_or_else(|| format!("unknown signal {kind}"))?;
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
