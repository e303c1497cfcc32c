//! OTLP/HTTP receive path: the OpenTelemetry HTTP exporter, protobuf, JSON and gzip
//! bodies, and the error answers (415, 400, 413), each followed by a good request.

mod common;

use common::*;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use rollout_collector::serve::{ServeConfig, Server, start};
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

const CONVERSATION: &str = "0199bbbb-1111-7222-8333-444455556666";
const TURN: &str = "0199bbbb-2222-7333-8444-555566667777";
const LOGS_ONLY_ROLLOUT: &str = "01a200f0-ffa8-77a3-9e70-b1049a70976b";
/// 2026-11-22T01:47:40.900Z
const T0_MS: u64 = 1_795_312_060_900;

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn post(
    server: &Server,
    path: &str,
    content_type: Option<&str>,
    gzip: bool,
    body: Vec<u8>,
) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", server.http_addr))
        .body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.bytes().await.expect("body").to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A minimal OTLP/JSON logs body: one `codex.user_prompt` for `conversation`.
fn json_logs_body(conversation: &str, prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "codex_exec"}}
            ]},
            "scopeLogs": [{
                "scope": {"name": "codex_otel.log_only"},
                "logRecords": [{
                    "observedTimeUnixNano": "1795312060957000000",
                    "traceId": "fb9d342256c4e51d559972c78786a5bf",
                    "spanId": "b2391d13f96a56d1",
                    "attributes": [
                        {"key": "event.name", "value": {"stringValue": "codex.user_prompt"}},
                        {"key": "event.timestamp", "value": {"stringValue": "2026-11-22T01:47:40.957Z"}},
                        {"key": "conversation.id", "value": {"stringValue": conversation}},
                        {"key": "prompt", "value": {"stringValue": prompt}},
                        {"key": "prompt_length", "value": {"intValue": "9"}}
                    ]
                }]
            }]
        }]
    }))
    .unwrap()
}

async fn assert_good_request_succeeds(server: &Server) {
    let reply = post(
        server,
        "/v1/logs",
        Some("application/json"),
        false,
        json_logs_body(CONVERSATION, "still serving"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        server
            .collector
            .lock()
            .unwrap()
            .rollout_ids()
            .contains(&CONVERSATION.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_http_exporter_posts_protobuf_that_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);

    // Simple (synchronous) processors export on emit / span end; they run on a
    // blocking thread, which still has the runtime the async reqwest client needs.
    let trace_id = tokio::task::spawn_blocking(move || {
        let resource = Resource::builder().with_service_name("codex_exec").build();
        let loggers = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_simple_exporter(
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{base}/v1/logs"))
                    .build()
                    .unwrap(),
            )
            .build();
        let tracers = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_simple_exporter(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{base}/v1/traces"))
                    .build()
                    .unwrap(),
            )
            .build();
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(T0_MS + ms);
        let tracer = tracers.tracer("codex_otel");
        let span = tracer
            .span_builder("session_task.turn")
            .with_start_time(at(0))
            .with_attributes(vec![KeyValue::new("turn.id", TURN)])
            .start(&tracer);
        let cx = Context::current_with_span(span);
        let trace_id = cx.span().span_context().trace_id().to_string();
        {
            let _guard = cx.clone().attach();
            let logger = loggers.logger("codex_otel.log_only");
            let mut record = logger.create_log_record();
            for (k, v) in [
                ("event.name", "codex.user_prompt"),
                ("event.timestamp", "2026-11-22T01:47:40.957Z"),
                ("conversation.id", CONVERSATION),
                ("prompt", "say hello"),
            ] {
                record.add_attribute(k, AnyValue::from(v.to_string()));
            }
            logger.emit(record);
        }
        cx.span().end_with_timestamp(at(400));
        loggers.shutdown().expect("logger shutdown");
        tracers.shutdown().expect("tracer shutdown");
        trace_id
    })
    .await
    .unwrap();

    let events = read_trace(dir.path(), CONVERSATION);
    assert_contiguous_and_unique(&events);
    assert_eq!(
        payload_types(&events),
        vec![
            "rollout_started",
            "user_prompt",
            "codex_turn_started",
            "codex_turn_ended"
        ]
    );
    assert_eq!(
        events[1].evidence.as_ref().unwrap().trace_id.as_deref(),
        Some(trace_id.as_str())
    );
    let g = graph_json(&server, CONVERSATION);
    assert_eq!(g["codex_turns"][TURN]["execution"]["status"], "completed");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_are_answered_in_protobuf_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    for captured in fixture_requests("tool-call-ok") {
        let reply = post(
            &server,
            &format!("/v1/{}", captured.kind),
            Some("application/x-protobuf"),
            false,
            captured.bytes.clone(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}: {}", captured.file, reply.text());
        assert_eq!(reply.content_type, "application/x-protobuf");
        match captured.kind.as_str() {
            "logs" => {
                ExportLogsServiceResponse::decode(&reply.body[..]).expect("logs response");
            }
            _ => {
                ExportTraceServiceResponse::decode(&reply.body[..]).expect("trace response");
            }
        }
    }
    let events = read_trace(dir.path(), TOOL_CALL_OK_ROLLOUT);
    assert_contiguous_and_unique(&events);
    assert_tool_call_ok_graph(&graph_json(&server, TOOL_CALL_OK_ROLLOUT));
    server.shutdown().await.unwrap();
}

/// A record's id hashes its protobuf bytes as sent, or, for OTLP/JSON, the record
/// encoded again: Codex's requests re-sent as JSON are recognised, record by record
/// (doubles included: JSON numbers are parsed back exactly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_again_as_json_are_duplicates_of_their_protobuf_selves() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let captured = fixture_requests("tool-call-ok");
    for request in &captured {
        let path = format!("/v1/{}", request.kind);
        let reply = post(
            &server,
            &path,
            Some("application/x-protobuf"),
            false,
            request.bytes.clone(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}: {}", request.file, reply.text());
    }
    let counters = &server.ingestor.counters;
    let stored = counters.records.load(std::sync::atomic::Ordering::SeqCst);
    let events = read_trace(dir.path(), TOOL_CALL_OK_ROLLOUT).len();
    assert!(stored > 0);
    for request in &captured {
        let decoded =
            rollout_collector::receive::decode::decode_protobuf(&request.kind, &request.bytes)
                .expect("a fixture request decodes");
        let json = match decoded {
            rollout_collector::receive::decode::ExportRequest::Logs(r) => serde_json::to_vec(&r),
            rollout_collector::receive::decode::ExportRequest::Traces(r) => serde_json::to_vec(&r),
            rollout_collector::receive::decode::ExportRequest::Metrics(r) => serde_json::to_vec(&r),
        }
        .unwrap();
        let path = format!("/v1/{}", request.kind);
        let reply = post(&server, &path, Some("application/json"), false, json).await;
        assert_eq!(reply.status, 200, "{}: {}", request.file, reply.text());
    }
    assert_eq!(
        counters.records.load(std::sync::atomic::Ordering::SeqCst),
        stored
    );
    assert_eq!(
        counters
            .duplicates
            .load(std::sync::atomic::Ordering::SeqCst),
        stored
    );
    assert_eq!(read_trace(dir.path(), TOOL_CALL_OK_ROLLOUT).len(), events);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_is_accepted_and_answered_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let reply = post(
        &server,
        "/v1/logs",
        Some("application/json; charset=utf-8"),
        false,
        json_logs_body(CONVERSATION, "say hello"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type, "application/json");
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).expect("json answer");
    assert!(answer.is_object(), "{answer}");

    let events = read_trace(dir.path(), CONVERSATION);
    assert_eq!(
        payload_types(&events),
        vec!["rollout_started", "user_prompt"]
    );
    let e = &events[1];
    assert_eq!(e.wall_time_unix_ms, T0_MS as i64 + 57);
    let ev = e.evidence.as_ref().unwrap();
    assert_eq!(
        ev.trace_id.as_deref(),
        Some("fb9d342256c4e51d559972c78786a5bf")
    );
    assert_eq!(ev.span_id.as_deref(), Some("b2391d13f96a56d1"));
    match &e.payload {
        rollout_collector::normalize::RawEventPayload::UserPrompt {
            prompt,
            prompt_length,
        } => {
            assert_eq!(prompt.as_deref(), Some("say hello"));
            assert_eq!(*prompt_length, Some(9));
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let requests = fixture_requests("logs-only");
    assert_eq!(requests.len(), 1);
    let reply = post(
        &server,
        "/v1/logs",
        Some("application/x-protobuf"),
        true,
        gzip(&requests[0].bytes),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = read_trace(dir.path(), LOGS_ONLY_ROLLOUT);
    assert_contiguous_and_unique(&events);
    assert!(payload_types(&events).contains(&"user_prompt"));
    let g = graph_json(&server, LOGS_ONLY_ROLLOUT);
    assert_eq!(g["inference_calls"].as_object().unwrap().len(), 2, "{g:#}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let body = json_logs_body(CONVERSATION, "x");
    for content_type in [Some("text/plain"), None] {
        let reply = post(&server, "/v1/logs", content_type, false, body.clone()).await;
        assert_eq!(reply.status, 415, "{content_type:?}: {}", reply.text());
        assert!(
            reply.text().contains("application/x-protobuf"),
            "{}",
            reply.text()
        );
    }
    assert!(server.collector.lock().unwrap().rollout_ids().is_empty());
    assert_good_request_succeeds(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bodies_are_400_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();

    let reply = post(
        &server,
        "/v1/logs",
        Some("application/x-protobuf"),
        false,
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("invalid protobuf"),
        "{}",
        reply.text()
    );

    let reply = post(
        &server,
        "/v1/traces",
        Some("application/json"),
        false,
        b"{\"resourceSpans\": 42}".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("invalid OTLP/JSON"),
        "{}",
        reply.text()
    );

    let reply = post(
        &server,
        "/v1/logs",
        Some("application/x-protobuf"),
        true,
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("invalid gzip"), "{}", reply.text());

    assert!(server.collector.lock().unwrap().rollout_ids().is_empty());
    assert_eq!(outside_counts(&server), (0, 0));
    assert_good_request_succeeds(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::ephemeral(dir.path());
    config.max_message_bytes = 1024;
    let server = start(config).await.unwrap();

    // Over the limit as sent.
    let big = json_logs_body(CONVERSATION, &"x".repeat(2000));
    let reply = post(
        &server,
        "/v1/logs",
        Some("application/json"),
        false,
        big.clone(),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("limit of 1024 bytes"),
        "{}",
        reply.text()
    );

    // Small gzipped, over the limit once inflated.
    let compressed = gzip(&big);
    assert!(compressed.len() < 1024);
    let reply = post(
        &server,
        "/v1/logs",
        Some("application/json"),
        true,
        compressed,
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("limit of 1024 bytes"),
        "{}",
        reply.text()
    );

    assert!(server.collector.lock().unwrap().rollout_ids().is_empty());
    assert_good_request_succeeds(&server).await;
    server.shutdown().await.unwrap();
}
