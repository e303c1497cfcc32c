//! OTLP/gRPC: the Logs, Trace and Metrics services' `Export`, gzip accepted, message
//! size limited. Errors: INVALID_ARGUMENT for what does not decode, RESOURCE_EXHAUSTED
//! for an oversized message or when the collector is busy, UNAVAILABLE when storage
//! fails.
//!
//! The services are served by hand rather than through tonic's generated servers, so
//! that a request reaches the ingest path as the protobuf it was sent as: it is
//! decoded there, off the server's threads, its size is its length, each record's id
//! hashes its own bytes, and `--forward-endpoint` passes on those bytes untouched.

use super::answer::ExportAnswer;
use super::decode::Received;
use super::ingest::{IngestError, Ingestor, warning};
use crate::normalize::Signal;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceResponse, logs_service_server,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceResponse, metrics_service_server,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceResponse, trace_service_server,
};
use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tonic::codec::{
    BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings,
};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// One OTLP service: its name, its signal and its answer.
pub trait OtlpService: Send + Sync + 'static {
    const NAME: &'static str;
    const SIGNAL: Signal;
    type Response: ExportAnswer;
}

pub struct Logs;
pub struct Traces;
pub struct Metrics;

impl OtlpService for Logs {
    const NAME: &'static str = logs_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Logs;
    type Response = ExportLogsServiceResponse;
}

impl OtlpService for Traces {
    const NAME: &'static str = trace_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Traces;
    type Response = ExportTraceServiceResponse;
}

impl OtlpService for Metrics {
    const NAME: &'static str = metrics_service_server::SERVICE_NAME;
    const SIGNAL: Signal = Signal::Metrics;
    type Response = ExportMetricsServiceResponse;
}

/// A tonic service answering `<S::NAME>/Export`.
pub struct ExportServer<S> {
    ingestor: Ingestor,
    /// tonic refuses a message past this before it reaches us (twice our own limit, so
    /// that a message just over ours gets our RESOURCE_EXHAUSTED naming the limit).
    hard_limit: usize,
    service: PhantomData<fn() -> S>,
}

impl<S> ExportServer<S> {
    fn new(ingestor: Ingestor) -> Self {
        ExportServer {
            hard_limit: ingestor.max_message_bytes.saturating_mul(2),
            ingestor,
            service: PhantomData,
        }
    }
}

impl<S> Clone for ExportServer<S> {
    fn clone(&self) -> Self {
        ExportServer {
            ingestor: self.ingestor.clone(),
            hard_limit: self.hard_limit,
            service: PhantomData,
        }
    }
}

impl<S: OtlpService> NamedService for ExportServer<S> {
    const NAME: &'static str = S::NAME;
}

fn status_of(err: IngestError) -> Status {
    match err {
        IngestError::Undecodable(message) => {
            Status::invalid_argument(format!("failed to decode the Export request: {message}"))
        }
        IngestError::Busy | IngestError::ForwardQueueFull(_) => {
            Status::resource_exhausted(err.to_string())
        }
        IngestError::Storage(_) => Status::unavailable(err.to_string()),
    }
}

impl<S: OtlpService, B> Service<http::Request<B>> for ExportServer<S>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = path.strip_prefix('/').and_then(|p| p.strip_prefix(S::NAME));
        if method != Some("/Export") {
            return Box::pin(async {
                Ok(Status::unimplemented("only the Export method is served").into_http())
            });
        }
        let export = Export::<S> {
            ingestor: self.ingestor.clone(),
            service: PhantomData,
        };
        let hard_limit = self.hard_limit;
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(ProtobufAsSent::<S::Response>(PhantomData))
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(hard_limit), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// One `Export` call.
struct Export<S> {
    ingestor: Ingestor,
    service: PhantomData<fn() -> S>,
}

impl<S: OtlpService> UnaryService<Bytes> for Export<S> {
    type Response = S::Response;
    type Future = BoxFuture<Response<S::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingestor = self.ingestor.clone();
        Box::pin(async move {
            let body = request.into_inner();
            if body.len() > ingestor.max_message_bytes {
                return Err(Status::resource_exhausted(format!(
                    "message of {} bytes is over the limit of {} bytes (--max-message-bytes)",
                    body.len(),
                    ingestor.max_message_bytes
                )));
            }
            let report = ingestor
                .ingest(Received::Protobuf(S::SIGNAL, body))
                .await
                .map_err(status_of)?;
            Ok(Response::new(S::Response::with_warning(warning(&report))))
        })
    }
}

/// Requests are taken as their protobuf bytes (decompressed, not decoded); answers
/// are encoded by prost.
struct ProtobufAsSent<R>(PhantomData<fn() -> R>);

impl<R: prost::Message + Send + 'static> Codec for ProtobufAsSent<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<R>;
    type Decoder = Undecoded;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        Undecoded
    }
}

struct Undecoded;

impl Decoder for Undecoded {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // The message's own bytes, split off tonic's buffer (not copied).
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// The three OTLP services, ready to add to a tonic router.
pub fn services(
    ingestor: Ingestor,
) -> (
    ExportServer<Logs>,
    ExportServer<Traces>,
    ExportServer<Metrics>,
) {
    (
        ExportServer::new(ingestor.clone()),
        ExportServer::new(ingestor.clone()),
        ExportServer::new(ingestor),
    )
}
