//! Shared helpers for the receive-path integration tests (receive_grpc, receive_http,
//! durability): fixtures, sending Export requests, reading bundles back.
#![allow(dead_code)]

pub mod otlp_sink;
pub mod rotel;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, logs_service_client::LogsServiceClient,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use rollout_collector::normalize::RawEvent;
use rollout_collector::serve::Server;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The root conversation (rollout) id of the `tool-call-ok` fixture.
pub const TOOL_CALL_OK_ROLLOUT: &str = "01a200f0-09c5-7f30-b451-62bbbee265fa";

/// One captured Export request: `logs`, `traces` or `metrics`, and its protobuf bytes.
#[derive(Clone, Debug)]
pub struct Captured {
    pub file: String,
    pub kind: String,
    pub bytes: Vec<u8>,
}

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/codex")
        .join(name)
}

/// The fixture's `requests/NNNN-<kind>.pb` files, in capture order.
pub fn fixture_requests(name: &str) -> Vec<Captured> {
    let dir = fixture_dir(name).join("requests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no requests in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let kind = file
                .trim_end_matches(".pb")
                .rsplit('-')
                .next()
                .expect("kind")
                .to_string();
            assert!(
                ["logs", "traces", "metrics"].contains(&kind.as_str()),
                "unexpected request file {file}"
            );
            Captured {
                file,
                kind,
                bytes: std::fs::read(&path).expect("read fixture"),
            }
        })
        .collect()
}

/// Sends one captured request over OTLP/gRPC with the generated tonic clients.
/// Returns the `partial_success.error_message` ("" when none).
pub async fn send_grpc(addr: SocketAddr, captured: &Captured) -> Result<String, tonic::Status> {
    let endpoint = format!("http://{addr}");
    match captured.kind.as_str() {
        "logs" => {
            let request = ExportLogsServiceRequest::decode(&captured.bytes[..]).expect("decode");
            let mut client = LogsServiceClient::connect(endpoint).await.expect("connect");
            let response = client.export(request).await?.into_inner();
            Ok(response
                .partial_success
                .map(|p| p.error_message)
                .unwrap_or_default())
        }
        "traces" => {
            let request = ExportTraceServiceRequest::decode(&captured.bytes[..]).expect("decode");
            let mut client = TraceServiceClient::connect(endpoint)
                .await
                .expect("connect");
            let response = client.export(request).await?.into_inner();
            Ok(response
                .partial_success
                .map(|p| p.error_message)
                .unwrap_or_default())
        }
        "metrics" => {
            let request = ExportMetricsServiceRequest::decode(&captured.bytes[..]).expect("decode");
            let mut client = MetricsServiceClient::connect(endpoint)
                .await
                .expect("connect");
            let response = client.export(request).await?.into_inner();
            Ok(response
                .partial_success
                .map(|p| p.error_message)
                .unwrap_or_default())
        }
        other => panic!("unknown kind {other}"),
    }
}

/// Sends every request, panicking on any error status.
pub async fn send_all_grpc(addr: SocketAddr, requests: &[Captured]) {
    for captured in requests {
        send_grpc(addr, captured)
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", captured.file));
    }
}

pub fn trace_path(data_dir: &Path, rollout_id: &str) -> PathBuf {
    data_dir
        .join("rollouts")
        .join(rollout_id)
        .join("trace.jsonl")
}

/// Parses `trace.jsonl` line by line (without the store's own reader, which repairs).
pub fn read_trace(data_dir: &Path, rollout_id: &str) -> Vec<RawEvent> {
    let path = trace_path(data_dir, rollout_id);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// `seq` is 1..=n in file order, and no OTLP record is stored twice.
pub fn assert_contiguous_and_unique(events: &[RawEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "seq is not 1..n contiguous");
    // One record may yield several events (a span: start and end), so unique per
    // (record_id, payload type).
    let mut seen = HashSet::new();
    for e in events {
        if let Some(ev) = &e.evidence {
            let key = (ev.record_id.clone(), e.payload.type_name());
            assert!(seen.insert(key), "record {} stored twice", ev.record_id);
        }
    }
}

pub fn payload_types(events: &[RawEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.payload.type_name()).collect()
}

/// The rollout's graph as JSON.
pub fn graph_json(server: &Server, rollout_id: &str) -> serde_json::Value {
    let graph = server
        .collector
        .lock()
        .unwrap()
        .graph(rollout_id)
        .unwrap_or_else(|| panic!("no graph for {rollout_id}"));
    serde_json::to_value(&*graph).expect("graph json")
}

/// Drops `raw_payloads` and every key starting with `raw_`, recursively: payload
/// file numbering depends on how requests were batched into files.
pub fn strip_raw(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !k.starts_with("raw_"));
            for v in map.values_mut() {
                strip_raw(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_raw),
        _ => {}
    }
}

pub fn outside_counts(server: &Server) -> (u64, u64) {
    server.collector.lock().unwrap().outside_counts()
}

/// `GET /api/status` of a running server.
pub async fn status(server: &Server) -> serde_json::Value {
    let body = reqwest::get(format!("http://{}/api/status", server.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Checks the `tool-call-ok` graph: one completed turn, two completed inference calls
/// with input tokens 100 and 200, one completed exec_command whose terminal op exited 0.
pub fn assert_tool_call_ok_graph(g: &serde_json::Value) {
    let turns = g["codex_turns"].as_object().expect("codex_turns");
    assert_eq!(turns.len(), 1, "turns: {turns:#?}");
    let turn = turns.values().next().unwrap();
    assert_eq!(turn["execution"]["status"], "completed", "{turn:#}");

    let calls = g["inference_calls"].as_object().expect("inference_calls");
    assert_eq!(calls.len(), 2, "inference calls: {calls:#?}");
    let mut inputs: Vec<i64> = calls
        .values()
        .map(|c| {
            assert_eq!(c["execution"]["status"], "completed", "{c:#}");
            c["usage"]["input_tokens"].as_i64().expect("usage")
        })
        .collect();
    inputs.sort();
    assert_eq!(inputs, vec![100, 200]);

    let tools = g["tool_calls"].as_object().expect("tool_calls");
    assert_eq!(tools.len(), 1, "tools: {tools:#?}");
    let tool = tools.values().next().unwrap();
    assert_eq!(tool["kind"]["type"], "exec_command", "{tool:#}");
    assert_eq!(tool["execution"]["status"], "completed", "{tool:#}");

    let ops = g["terminal_operations"]
        .as_object()
        .expect("terminal_operations");
    assert_eq!(ops.len(), 1, "terminal ops: {ops:#?}");
    let op = ops.values().next().unwrap();
    assert_eq!(op["result"]["exit_code"], 0, "{op:#}");
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A logs request of `records` log records, each with the given attributes.
pub fn logs_request(records: Vec<Vec<KeyValue>>, body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "codex_otel.log_only".into(),
                    ..Default::default()
                }),
                log_records: records
                    .into_iter()
                    .map(|attributes| LogRecord {
                        attributes,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(body.into())),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The attributes of a `codex.user_prompt` log record of `conversation`.
pub fn user_prompt_record(conversation: &str, prompt: &str) -> Vec<KeyValue> {
    vec![
        kv("event.name", "codex.user_prompt"),
        kv("event.timestamp", "2026-11-22T01:47:40.957Z"),
        kv("conversation.id", conversation),
        kv("prompt", prompt),
    ]
}

/// A small, valid request for the conversation `conversation` (one user prompt).
pub fn user_prompt_request(conversation: &str, prompt: &str) -> ExportLogsServiceRequest {
    logs_request(vec![user_prompt_record(conversation, prompt)], "")
}

/// The prompts of a rollout's `user_prompt` events, in order, after checking that its
/// `seq` is contiguous and no record is stored twice.
pub fn prompts_in(data_dir: &Path, conversation: &str) -> Vec<String> {
    let events = read_trace(data_dir, conversation);
    assert_contiguous_and_unique(&events);
    events
        .into_iter()
        .filter_map(|event| match event.payload {
            rollout_collector::normalize::RawEventPayload::UserPrompt { prompt, .. } => prompt,
            _ => None,
        })
        .collect()
}
