//! `serve --export-endpoint` and `--forward-endpoint` end to end: Codex's captured
//! Export requests go in over OTLP/gRPC; a real downstream OTLP/gRPC server on
//! loopback receives one clean trace per session, and (forwarding) every original
//! request, unchanged. Restarts and re-sends send nothing twice; a downstream outage
//! loses nothing. No sleeps: the tests wait on what the downstream received and on
//! the collector's counters.

mod common;

use common::otlp_sink::{Accepted, Sink};
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message;
use rollout_collector::export::{ExportConfig, ForwardConfig, SpanOptions, build_spans};
use rollout_collector::serve::{ServeConfig, Server, start};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const ROLLOUT: &str = TOOL_CALL_OK_ROLLOUT;

fn config(dir: &Path, export: Option<&Sink>, forward: Option<String>) -> ServeConfig {
    let mut config = ServeConfig::ephemeral(dir);
    config.export = export.map(|sink| ExportConfig::new(sink.endpoint()));
    config.forward = forward.map(|endpoint| {
        let mut forward = ForwardConfig::new(endpoint);
        forward.retry.initial_backoff = Duration::from_millis(20);
        forward.retry.max_backoff = Duration::from_millis(200);
        forward
    });
    // Shutdowns with the downstream down do not wait long for the queues to drain.
    config.drain_timeout = Duration::from_millis(100);
    config
}

/// Awaits a watch condition, failing the test (not hanging it) if it never holds.
async fn guard<T, E: std::fmt::Debug>(wait: impl std::future::Future<Output = Result<T, E>>) {
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("timed out waiting for a condition")
        .unwrap();
}

/// The spans the collector's graph of `rollout` gives now.
fn expected_spans(server: &Server, rollout: &str) -> Vec<Span> {
    let graph = server.collector.lock().unwrap().graph(rollout).unwrap();
    build_spans(&graph, &SpanOptions::default())
}

async fn first_feed_pass(server: &Server) {
    let mut passes = server.export_passes.clone().unwrap();
    guard(passes.wait_for(|n| *n >= 1)).await;
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// The forwarded requests are the captured ones, per signal in the same order.
fn assert_forwarded_unchanged(accepted: &Accepted, requests: &[Captured]) {
    let of = |kind: &'static str| requests.iter().filter(move |r| r.kind == kind);
    let logs: Vec<_> = of("logs")
        .map(|r| ExportLogsServiceRequest::decode(&r.bytes[..]).unwrap())
        .collect();
    let traces: Vec<_> = of("traces")
        .map(|r| ExportTraceServiceRequest::decode(&r.bytes[..]).unwrap())
        .collect();
    let metrics: Vec<_> = of("metrics")
        .map(|r| ExportMetricsServiceRequest::decode(&r.bytes[..]).unwrap())
        .collect();
    assert!(accepted.logs == logs, "forwarded logs differ");
    assert!(accepted.traces == traces, "forwarded traces differ");
    assert!(accepted.metrics == metrics, "forwarded metrics differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_one_clean_trace_per_session_and_forwards_the_original() {
    let requests = fixture_requests("tool-call-ok");
    let (export_sink, forward_sink) = (Sink::start().await, Sink::start().await);
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(
        dir.path(),
        Some(&export_sink),
        Some(forward_sink.endpoint()),
    ))
    .await
    .unwrap();
    send_all_grpc(server.grpc_addr, &requests).await;

    // Forwarding: every request, untouched, in order.
    forward_sink
        .wait_until("every request forwarded", |a| {
            a.requests() == requests.len()
        })
        .await;
    assert_forwarded_unchanged(&forward_sink.accepted(), &requests);

    // Export: the spans of the graph's complete objects, with their deterministic ids.
    let expected = expected_spans(&server, ROLLOUT);
    let n = expected.len();
    assert!(
        n >= 4,
        "expected a thread, a turn, model calls and a tool call: {n}"
    );
    export_sink
        .wait_until("the session's spans", |a| a.spans().len() >= n)
        .await;
    let spans = export_sink.accepted().spans();
    assert_eq!(spans.len(), n, "each span once");
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    for want in &expected {
        let got = by_id
            .get(&want.span_id)
            .unwrap_or_else(|| panic!("span {} not exported", want.name));
        assert_eq!(got.name, want.name);
        assert_eq!(got.trace_id, want.trace_id);
        assert_eq!(got.parent_span_id, want.parent_span_id);
    }
    // One trace, shaped invoke_agent → turn → chat / execute_tool.
    assert!(spans.iter().all(|s| s.trace_id == spans[0].trace_id));
    let named = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };
    let root = named("invoke_agent codex");
    assert_eq!(root.len(), 1);
    assert!(root[0].parent_span_id.is_empty());
    assert_eq!(attr(root[0], "gen_ai.conversation.id"), Some(ROLLOUT));
    let turns = named("turn");
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].parent_span_id, root[0].span_id);
    let chats = named("chat ");
    let tools = named("execute_tool exec_command");
    assert!(!chats.is_empty() && tools.len() == 1);
    for child in chats.iter().chain(&tools) {
        assert_eq!(child.parent_span_id, turns[0].span_id, "{}", child.name);
        assert!(child.end_time_unix_nano >= child.start_time_unix_nano);
        assert_ne!(
            child.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
    }
    assert_eq!(attr(chats[0], "gen_ai.operation.name"), Some("chat"));
    assert_eq!(attr(tools[0], "openinference.span.kind"), Some("TOOL"));

    // /api/status tells the user how far delivery got.
    let mut stats = server.exporter.as_ref().unwrap().watch_stats();
    guard(stats.wait_for(|s| s.queue_bytes == 0)).await;
    let mut stats = server.forwarder.as_ref().unwrap().watch_stats();
    guard(stats.wait_for(|s| s.queue_bytes == 0)).await;
    let status = status(&server).await;
    assert_eq!(status["export"]["sent_spans"], n as u64, "{status}");
    assert_eq!(status["export"]["dropped_spans"], 0, "{status}");
    assert_eq!(
        status["forward"]["sent_requests"],
        requests.len() as u64,
        "{status}"
    );
    assert_eq!(
        status["received"]["requests"],
        requests.len() as u64,
        "{status}"
    );
    assert_eq!(status["sessions"]["in_memory"], 1, "{status}");
    assert_eq!(status["sessions"]["evicted"], 0, "{status}");
    server.shutdown().await.unwrap();

    // Restart on the same data: the replayed session is offered again and nothing is
    // sent twice; the same requests sent again are neither stored nor forwarded twice.
    let server = start(config(
        dir.path(),
        Some(&export_sink),
        Some(forward_sink.endpoint()),
    ))
    .await
    .unwrap();
    first_feed_pass(&server).await;
    send_all_grpc(server.grpc_addr, &requests).await;
    let forwarder = server.forwarder.clone().unwrap();
    assert_eq!(forwarder.stats().enqueued_requests, 0);
    let exporter = server.exporter.clone().unwrap();
    server.shutdown().await.unwrap();
    assert_eq!(exporter.stats().enqueued_spans, 0);
    assert_eq!(export_sink.accepted().spans().len(), n);
    assert_eq!(forward_sink.accepted().requests(), requests.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_closes_is_exported_after_the_idle_timeout() {
    // Codex exited after a failed turn without flushing: nothing closes the turn.
    let requests = fixture_requests("api-error-fatal-logs-only");
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), Some(&sink), None);
    config.idle_timeout = Duration::from_millis(300);
    let server = start(config).await.unwrap();
    send_all_grpc(server.grpc_addr, &requests).await;
    sink.wait_until("the idle-closed session's root span", |a| {
        a.spans().iter().any(|s| s.name == "invoke_agent codex")
    })
    .await;
    let rollout = server.collector.lock().unwrap().rollout_ids()[0].clone();
    let graph = server.collector.lock().unwrap().graph(&rollout).unwrap();
    assert_eq!(graph.status, "completed", "closed by the idle timeout");
    let expected = expected_spans(&server, &rollout).len();
    sink.wait_until("every span", |a| a.spans().len() >= expected)
        .await;
    let spans = sink.accepted().spans();
    assert_eq!(spans.len(), expected);
    // The failed model call is an error span.
    assert!(
        spans.iter().any(|s| s.name.starts_with("chat")
            && s.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32)),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_survives_a_downstream_outage_and_a_full_queue_pushes_back() {
    let requests = fixture_requests("tool-call-ok");
    // A port with nothing listening yet: the downstream is down.
    let down = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), None, Some(format!("http://{down}"))))
        .await
        .unwrap();
    // Accepted while the downstream is down: queued durably.
    send_all_grpc(server.grpc_addr, &requests).await;
    let forwarder = server.forwarder.clone().unwrap();
    assert_eq!(forwarder.stats().enqueued_requests, requests.len() as u64);
    assert!(forwarder.stats().queue_bytes > 0);
    // A restart while it is still down keeps the queue.
    server.shutdown().await.unwrap();
    let server = start(config(dir.path(), None, Some(format!("http://{down}"))))
        .await
        .unwrap();
    assert!(server.forwarder.as_ref().unwrap().stats().queue_bytes > 0);

    // The downstream comes up: everything arrives, once, in order.
    let sink = Sink::start_on(down).await;
    sink.wait_until("every queued request", |a| a.requests() == requests.len())
        .await;
    assert_forwarded_unchanged(&sink.accepted(), &requests);
    let mut stats = server.forwarder.as_ref().unwrap().watch_stats();
    guard(stats.wait_for(|s| s.queue_bytes == 0)).await;
    server.shutdown().await.unwrap();

    // A full forward queue: RESOURCE_EXHAUSTED, nothing stored; sent again once there
    // is room, it is stored and forwarded.
    let dir = tempfile::tempdir().unwrap();
    let mut tiny = config(dir.path(), None, Some(format!("http://{down}")));
    tiny.forward.as_mut().unwrap().queue_max_bytes = 64;
    let server = start(tiny).await.unwrap();
    let refused = send_grpc(server.grpc_addr, &requests[0]).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("forward queue is full"),
        "{}",
        refused.message()
    );
    assert!(server.collector.lock().unwrap().rollout_ids().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_over_https_to_a_downstream_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let sink = Sink::start_tls(cert.pem(), key.serialize_pem()).await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut trusting = config(&dir.path().join("data"), None, None);
    let mut export = ExportConfig::new(format!("https://localhost:{}", sink.addr.port()));
    export.to.ca_file = Some(ca_file);
    trusting.export = Some(export);
    let server = start(trusting).await.unwrap();
    send_all_grpc(server.grpc_addr, &fixture_requests("tool-call-ok")).await;
    let n = expected_spans(&server, ROLLOUT).len();
    sink.wait_until("the session's spans over TLS", |a| a.spans().len() >= n)
        .await;
    server.shutdown().await.unwrap();

    // Without the CA the downstream is not trusted: nothing is sent, it is retried.
    let dir = tempfile::tempdir().unwrap();
    let mut untrusting = config(dir.path(), None, None);
    untrusting.export = Some(ExportConfig::new(format!(
        "https://localhost:{}",
        sink.addr.port()
    )));
    let server = start(untrusting).await.unwrap();
    send_all_grpc(server.grpc_addr, &fixture_requests("tool-call-ok")).await;
    let mut stats = server.exporter.as_ref().unwrap().watch_stats();
    guard(stats.wait_for(|s| s.retries > 0)).await;
    assert_eq!(server.exporter.as_ref().unwrap().stats().sent_spans, 0);
    server.shutdown().await.unwrap();
    assert_eq!(sink.accepted().spans().len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_otlp_http_gives_the_next_collector_the_same_session() {
    use rollout_collector::export::Protocol;
    let requests = fixture_requests("tool-call-ok");
    let next_dir = tempfile::tempdir().unwrap();
    let next = start(ServeConfig::ephemeral(next_dir.path()))
        .await
        .unwrap();
    let mut next_accepted = next.ingestor.watch_accepted_records();

    let dir = tempfile::tempdir().unwrap();
    let mut first = config(dir.path(), None, Some(format!("http://{}", next.http_addr)));
    first.forward.as_mut().unwrap().to.protocol = Protocol::HttpProtobuf;
    first.forward.as_mut().unwrap().to.gzip = true;
    let server = start(first).await.unwrap();
    send_all_grpc(server.grpc_addr, &requests).await;
    let records = server
        .ingestor
        .counters
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    guard(next_accepted.wait_for(|n| *n >= records)).await;
    let (mut here, mut there) = (graph_json(&server, ROLLOUT), graph_json(&next, ROLLOUT));
    strip_raw(&mut here);
    strip_raw(&mut there);
    assert_eq!(here, there);
    server.shutdown().await.unwrap();
    next.shutdown().await.unwrap();
}
