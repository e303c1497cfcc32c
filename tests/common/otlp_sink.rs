//! A downstream OTLP/gRPC server for tests: the generated Logs, Trace and Metrics
//! services of opentelemetry-proto on tonic (gzip accepted), keeping every request it accepts. Tests
//! wait on its counters (no sleeps).

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const GZIP: tonic::codec::CompressionEncoding = tonic::codec::CompressionEncoding::Gzip;
const WAIT: Duration = Duration::from_secs(30);

/// Everything a sink accepted, in arrival order.
#[derive(Default)]
pub struct Accepted {
    pub logs: Vec<ExportLogsServiceRequest>,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

impl Accepted {
    pub fn requests(&self) -> usize {
        self.logs.len() + self.traces.len() + self.metrics.len()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    pub fn log_records(&self) -> usize {
        self.logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    accepted: Arc<Mutex<Accepted>>,
    /// Bumped on every accepted request.
    changes: watch::Sender<u64>,
}

impl Sink {
    /// A sink on a fresh loopback port.
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Sink::serve(listener)
    }

    /// A sink on `addr` (a port chosen earlier, for outage tests).
    pub async fn start_on(addr: SocketAddr) -> Sink {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Sink::serve(listener)
    }

    /// A sink speaking TLS (gRPC over https) with the given certificate chain and key.
    pub async fn start_tls(cert_pem: String, key_pem: String) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
        Sink::serve_with(listener, Some(tls))
    }

    fn serve(listener: tokio::net::TcpListener) -> Sink {
        Sink::serve_with(listener, None)
    }

    fn serve_with(
        listener: tokio::net::TcpListener,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Sink {
        let sink = Sink {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            changes: watch::Sender::new(0),
        };
        let service = sink.clone();
        tokio::spawn(async move {
            let mut server = tonic::transport::Server::builder();
            if let Some(tls) = tls {
                server = server.tls_config(tls).unwrap();
            }
            server
                .add_service(LogsServiceServer::new(service.clone()).accept_compressed(GZIP))
                .add_service(TraceServiceServer::new(service.clone()).accept_compressed(GZIP))
                .add_service(MetricsServiceServer::new(service).accept_compressed(GZIP))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        sink
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn accepted(&self) -> std::sync::MutexGuard<'_, Accepted> {
        self.accepted.lock().unwrap()
    }

    /// Waits until `done` holds for what was accepted.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Accepted) -> bool) {
        let mut rx = self.changes.subscribe();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                if done(&self.accepted()) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        })
        .await;
        if waited.is_err() {
            let a = self.accepted();
            panic!(
                "sink: timed out waiting for {what}: have {} logs, {} traces ({} spans), {} metrics requests",
                a.logs.len(),
                a.traces.len(),
                a.spans().len(),
                a.metrics.len()
            );
        }
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.accepted().logs.push(request.into_inner());
        self.bump();
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.accepted().traces.push(request.into_inner());
        self.bump();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.accepted().metrics.push(request.into_inner());
        self.bump();
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}
