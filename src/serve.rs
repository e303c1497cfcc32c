//! `rollout-collector serve`: OTLP/gRPC (plus the RolloutService) on one port,
//! OTLP/HTTP (plus the JSON query API) on another, and the idle sweeper.

use crate::collector::Collector;
use crate::export::{ExportConfig, Exporter, ForwardConfig, Forwarder, feed};
use crate::query::grpc::RolloutQuery;
use crate::receive::{grpc, http, ingest::Ingestor};
use crate::store::DataDir;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub data_dir: DataDir,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_pending_requests: usize,
    /// `--export-endpoint`: enriched spans go there.
    pub export: Option<ExportConfig>,
    /// `--forward-endpoint`: the original telemetry goes there, untouched.
    pub forward: Option<ForwardConfig>,
    /// At shutdown, how long to wait for the export and forward queues to drain (what
    /// is left stays queued on disk and goes after the next start).
    pub drain_timeout: Duration,
}

impl ServeConfig {
    /// Loopback on ephemeral ports, for tests and examples.
    pub fn ephemeral(data_dir: impl Into<std::path::PathBuf>) -> Self {
        ServeConfig {
            grpc_addr: "127.0.0.1:0".parse().expect("addr"),
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            data_dir: DataDir::new(data_dir),
            max_message_bytes: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_pending_requests: 256,
            export: None,
            forward: None,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

pub struct Server {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub collector: Arc<Mutex<Collector>>,
    pub ingestor: Ingestor,
    pub exporter: Option<Arc<Exporter>>,
    pub forwarder: Option<Arc<Forwarder>>,
    /// Passes the export feed made (the first offers every stored rollout).
    pub export_passes: Option<watch::Receiver<u64>>,
    drain_timeout: Duration,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, lets in-flight requests finish, offers the last graph
    /// changes, gives the export and forward queues `drain_timeout` to drain, and
    /// returns. Nothing queued is lost: it is sent after the next start.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(exporter) = &self.exporter {
            exporter.shutdown(self.drain_timeout).await;
        }
        if let Some(forwarder) = &self.forwarder {
            forwarder.shutdown(self.drain_timeout).await;
        }
        Ok(())
    }
}

/// Tonic answers OUT_OF_RANGE for a message past its decode limit; OTLP senders
/// expect RESOURCE_EXHAUSTED.
fn oversized_is_resource_exhausted<B>(mut response: ::http::Response<B>) -> ::http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if headers.get("grpc-status").is_some_and(|s| s == "11") && too_large {
        headers.insert("grpc-status", ::http::HeaderValue::from_static("8"));
    }
    response
}

pub async fn start(config: ServeConfig) -> Result<Server> {
    let data_dir = config.data_dir.clone();
    let collector = tokio::task::spawn_blocking(move || {
        let mut collector = Collector::open(data_dir)?;
        collector.prepare_spare_bundles()?;
        anyhow::Ok(collector)
    })
    .await?
    .with_context(|| {
        format!(
            "opening the data directory {}",
            config.data_dir.root.display()
        )
    })?;
    let collector = Arc::new(Mutex::new(collector));
    let mut ingestor = Ingestor::new(
        collector.clone(),
        config.max_pending_requests,
        config.max_message_bytes,
    );
    let forwarder = match config.forward.clone() {
        Some(forward) => {
            let endpoint = forward.to.endpoint.clone();
            let forwarder = Forwarder::start(forward, &config.data_dir.root)
                .with_context(|| format!("--forward-endpoint {endpoint}"))?;
            Some(Arc::new(forwarder))
        }
        None => None,
    };
    if let Some(forwarder) = &forwarder {
        ingestor = ingestor.with_forwarder(forwarder.clone());
    }
    let exporter = match config.export.clone() {
        Some(export) => {
            let endpoint = export.to.endpoint.clone();
            let exporter = Exporter::start(export, &config.data_dir.root)
                .with_context(|| format!("--export-endpoint {endpoint}"))?;
            Some(Arc::new(exporter))
        }
        None => None,
    };
    let (stop, stop_rx) = watch::channel(false);
    // WatchRollout streams end at shutdown (else the gRPC server would wait for them).
    let query = RolloutQuery::new(collector.clone()).with_stop(stop_rx.clone());
    let mut tasks = Vec::new();

    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding --grpc-addr {}", config.grpc_addr))?;
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding --http-addr {}", config.http_addr))?;
    let (grpc_addr, http_addr) = (grpc_listener.local_addr()?, http_listener.local_addr()?);

    let (logs, traces, metrics) = grpc::services(ingestor.clone());
    let routes = tonic::service::Routes::new(logs)
        .add_service(traces)
        .add_service(metrics)
        .add_service(query.clone().server());
    let mut rx = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        // Exports of ~90 KB: without nodelay and windows larger than HTTP/2's 64 KiB
        // default, each waits out a delayed ACK (a ~40 ms floor on p99).
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .layer(tower::util::MapResponseLayer::new(
                oversized_is_resource_exhausted,
            ))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            )
            .await;
        if let Err(err) = result {
            tracing::error!(%err, "gRPC server stopped");
        }
    }));

    let status = crate::query::status::StatusSources {
        ingestor: ingestor.clone(),
        exporter: exporter.clone(),
        forwarder: forwarder.clone(),
    };
    let app = http::router(ingestor.clone())
        .merge(crate::query::http::router(query))
        .merge(crate::query::status::router(status));
    let mut rx = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let http_listener = http_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!(%err, "HTTP server stopped");
        }
    }));

    let mut export_passes = None;
    if let Some(exporter) = &exporter {
        let (task, passes) = feed::spawn(exporter.clone(), collector.clone(), stop_rx.clone());
        tasks.push(task);
        export_passes = Some(passes);
    }

    // Idle sweeper: closes sessions that stopped sending.
    let sweeper_collector = collector.clone();
    let idle = config.idle_timeout;
    let mut rx = stop_rx;
    tasks.push(tokio::spawn(async move {
        let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = rx.wait_for(|s| *s) => return,
            }
            let c = sweeper_collector.clone();
            let closed = tokio::task::spawn_blocking(move || {
                c.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .close_idle(idle, false)
            })
            .await;
            if let Ok(Err(err)) = closed {
                tracing::warn!(%err, "closing idle sessions failed");
            }
        }
    }));

    tracing::info!(%grpc_addr, %http_addr, data_dir = %config.data_dir.root.display(), "rollout-collector serving");
    Ok(Server {
        grpc_addr,
        http_addr,
        collector,
        ingestor,
        exporter,
        forwarder,
        export_passes,
        drain_timeout: config.drain_timeout,
        stop,
        tasks,
    })
}
