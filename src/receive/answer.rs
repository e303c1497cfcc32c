//! What an Export is answered, over gRPC and OTLP/HTTP alike: each signal's response,
//! with the stored request's warning as its partial success message.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

/// An Export response (encoded as protobuf, or as JSON for OTLP/HTTP JSON).
pub trait ExportAnswer: prost::Message + serde::Serialize + Default + Send + 'static {
    /// The answer to a stored request; `warning` (none when empty) is reported as a
    /// partial success with nothing rejected.
    fn with_warning(warning: String) -> Self;
}

impl ExportAnswer for ExportLogsServiceResponse {
    fn with_warning(warning: String) -> Self {
        ExportLogsServiceResponse {
            partial_success: (!warning.is_empty()).then_some(ExportLogsPartialSuccess {
                rejected_log_records: 0,
                error_message: warning,
            }),
        }
    }
}

impl ExportAnswer for ExportTraceServiceResponse {
    fn with_warning(warning: String) -> Self {
        ExportTraceServiceResponse {
            partial_success: (!warning.is_empty()).then_some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: warning,
            }),
        }
    }
}

impl ExportAnswer for ExportMetricsServiceResponse {
    /// Metrics are never unattributed: there is no warning to give.
    fn with_warning(_warning: String) -> Self {
        ExportMetricsServiceResponse {
            partial_success: None,
        }
    }
}
