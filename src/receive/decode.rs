//! Decoding Export requests: protobuf (gRPC and OTLP/HTTP) and OTLP/JSON.

use crate::normalize::{self, NormalizedRecord, Signal};
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

impl ExportRequest {
    pub fn normalize(&self) -> Vec<NormalizedRecord> {
        match self {
            ExportRequest::Logs(r) => normalize::logs(r),
            ExportRequest::Traces(r) => normalize::traces(r),
            ExportRequest::Metrics(r) => normalize::metrics(r),
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
    let err = |e: prost::DecodeError| format!("invalid protobuf: {e}");
    Ok(match kind {
        "logs" => ExportRequest::Logs(ExportLogsServiceRequest::decode(bytes).map_err(err)?),
        "traces" => ExportRequest::Traces(ExportTraceServiceRequest::decode(bytes).map_err(err)?),
        "metrics" => {
            ExportRequest::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(err)?)
        }
        other => return Err(format!("unknown signal {other}")),
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
