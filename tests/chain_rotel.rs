//! Chaining with a real peer collector, rotel (PyPI `rotel`), in both directions:
//!
//! 1. Codex telemetry → rotel → rollout-collector → downstream: rotel's otlp exporter
//!    feeds the collector, which rebuilds the same graph as when Codex sends to it
//!    directly, and exports the enriched spans on.
//! 2. rollout-collector → rotel → downstream: the enriched spans (`--export-endpoint`)
//!    and Codex's original telemetry (`--forward-endpoint`) both pass through rotel.
//!
//! The downstream is a real OTLP/gRPC server on loopback (tests/common/otlp_sink.rs).

mod common;

use common::otlp_sink::{Accepted, Sink};
use common::rotel::{Rotel, rotel_or_skip};
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rollout_collector::export::{ExportConfig, ForwardConfig, SpanOptions, build_spans};
use rollout_collector::serve::{ServeConfig, Server, start};
use std::collections::BTreeSet;
use std::time::Duration;

const ROLLOUT: &str = TOOL_CALL_OK_ROLLOUT;
const WAIT: Duration = Duration::from_secs(30);

fn stripped_graph(server: &Server) -> serde_json::Value {
    let mut graph = graph_json(server, ROLLOUT);
    strip_raw(&mut graph);
    graph
}

/// The graph of the fixture sent straight to a collector, and its record count.
async fn direct(requests: &[Captured]) -> (serde_json::Value, u64) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    send_all_grpc(server.grpc_addr, requests).await;
    let graph = stripped_graph(&server);
    let records = server
        .ingestor
        .counters
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    server.shutdown().await.unwrap();
    (graph, records)
}

fn service_name(resource: &Option<Resource>) -> Option<String> {
    resource.as_ref()?.attributes.iter().find_map(|kv| {
        match (kv.key.as_str(), kv.value.as_ref()?.value.as_ref()?) {
            ("service.name", Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    })
}

/// Span ids of the spans whose resource is (or is not) the collector's.
fn span_ids(accepted: &Accepted, from_collector: bool) -> BTreeSet<Vec<u8>> {
    accepted
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .filter(|rs| {
            (service_name(&rs.resource).as_deref() == Some("rollout-collector")) == from_collector
        })
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| ss.spans.iter().map(|s| s.span_id.clone()))
        .collect()
}

fn fixture_span_ids(requests: &[Captured]) -> BTreeSet<Vec<u8>> {
    requests
        .iter()
        .filter(|r| r.kind == "traces")
        .flat_map(|r| {
            ExportTraceServiceRequest::decode(&r.bytes[..])
                .unwrap()
                .resource_spans
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans.into_iter().map(|s| s.span_id))
        .collect()
}

fn fixture_log_records(requests: &[Captured]) -> usize {
    requests
        .iter()
        .filter(|r| r.kind == "logs")
        .flat_map(|r| {
            ExportLogsServiceRequest::decode(&r.bytes[..])
                .unwrap()
                .resource_logs
        })
        .flat_map(|rl| rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_telemetry_through_rotel_into_the_collector_and_on() {
    let Some(bin) = rotel_or_skip("codex_telemetry_through_rotel_into_the_collector_and_on") else {
        return;
    };
    let requests = fixture_requests("tool-call-ok");
    let (expected_graph, expected_records) = direct(&requests).await;

    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::ephemeral(dir.path());
    config.export = Some(ExportConfig::new(sink.endpoint()));
    let server = start(config).await.unwrap();
    let rotel = Rotel::start(&bin, &format!("http://{}", server.grpc_addr)).await;

    let mut accepted = server.ingestor.watch_accepted_records();
    send_all_grpc(rotel.grpc_addr, &requests).await;
    // Wait until rotel delivered every record.
    let delivered = tokio::time::timeout(WAIT, accepted.wait_for(|n| *n >= expected_records)).await;
    assert!(
        delivered.is_ok(),
        "rotel did not deliver every record; rotel said:\n{}",
        rotel.output()
    );
    assert_eq!(
        stripped_graph(&server),
        expected_graph,
        "the graph through rotel differs from the graph of a direct send"
    );

    let graph = server.collector.lock().unwrap().graph(ROLLOUT).unwrap();
    let expected: BTreeSet<Vec<u8>> = build_spans(&graph, &SpanOptions::default())
        .into_iter()
        .map(|s| s.span_id)
        .collect();
    sink.wait_until("the enriched spans", |a| span_ids(a, true) == expected)
        .await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_exports_and_forwards_through_rotel() {
    let Some(bin) = rotel_or_skip("collector_exports_and_forwards_through_rotel") else {
        return;
    };
    let requests = fixture_requests("tool-call-ok");
    let sink = Sink::start().await;
    let rotel = Rotel::start(&bin, &sink.endpoint()).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::ephemeral(dir.path());
    config.export = Some(ExportConfig::new(rotel.endpoint()));
    config.forward = Some(ForwardConfig::new(rotel.endpoint()));
    let server = start(config).await.unwrap();
    send_all_grpc(server.grpc_addr, &requests).await;

    let graph = server.collector.lock().unwrap().graph(ROLLOUT).unwrap();
    let enriched: BTreeSet<Vec<u8>> = build_spans(&graph, &SpanOptions::default())
        .into_iter()
        .map(|s| s.span_id)
        .collect();
    assert!(enriched.len() >= 4);
    let original_spans = fixture_span_ids(&requests);
    let original_logs = fixture_log_records(&requests);
    sink.wait_until("enriched spans and the original telemetry", |a| {
        span_ids(a, true) == enriched
            && span_ids(a, false) == original_spans
            && a.log_records() == original_logs
    })
    .await;
    server.shutdown().await.unwrap();
}
