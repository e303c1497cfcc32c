//! OTLP/gRPC: the Logs, Trace and Metrics services, gzip accepted, message size
//! limited. Errors: INVALID_ARGUMENT for what does not decode (tonic),
//! RESOURCE_EXHAUSTED for an oversized message or when the collector is busy,
//! UNAVAILABLE when storage fails.

use super::decode::ExportRequest;
use super::ingest::{IngestError, Ingestor, warning};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct OtlpGrpc {
    ingestor: Ingestor,
}

fn status_of(err: IngestError) -> Status {
    match err {
        IngestError::Busy | IngestError::ForwardQueueFull(_) => {
            Status::resource_exhausted(err.to_string())
        }
        IngestError::Storage(_) => Status::unavailable(err.to_string()),
    }
}

impl OtlpGrpc {
    fn check_size<M: Message>(&self, message: &M) -> Result<(), Status> {
        let len = message.encoded_len();
        if len > self.ingestor.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "message of {len} bytes is over the limit of {} bytes (--max-message-bytes)",
                self.ingestor.max_message_bytes
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let report = self
            .ingestor
            .ingest(ExportRequest::Logs(request))
            .await
            .map_err(status_of)?;
        let message = warning(&report);
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (!message.is_empty()).then_some(ExportLogsPartialSuccess {
                rejected_log_records: 0,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let report = self
            .ingestor
            .ingest(ExportRequest::Traces(request))
            .await
            .map_err(status_of)?;
        let message = warning(&report);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (!message.is_empty()).then_some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        self.ingestor
            .ingest(ExportRequest::Metrics(request))
            .await
            .map_err(status_of)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None::<ExportMetricsPartialSuccess>,
        }))
    }
}

/// The three OTLP services, ready to add to a tonic router. tonic's own decode limit
/// is set above ours so that an oversized message gets our RESOURCE_EXHAUSTED answer
/// naming the limit; beyond twice the limit tonic refuses it before decoding.
pub fn services(
    ingestor: Ingestor,
) -> (
    LogsServiceServer<OtlpGrpc>,
    TraceServiceServer<OtlpGrpc>,
    MetricsServiceServer<OtlpGrpc>,
) {
    let hard_limit = ingestor.max_message_bytes.saturating_mul(2);
    let svc = OtlpGrpc { ingestor };
    (
        LogsServiceServer::new(svc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(hard_limit),
        TraceServiceServer::new(svc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(hard_limit),
        MetricsServiceServer::new(svc)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(hard_limit),
    )
}
