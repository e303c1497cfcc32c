//! OTLP/gRPC receive path: a real OpenTelemetry SDK client, replayed Codex captures,
//! and the error answers (oversized, undecodable), each followed by a good request.

mod common;

use common::*;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Compression, WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, logs_service_client::LogsServiceClient,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rollout_collector::normalize::RawEventPayload;
use rollout_collector::serve::{ServeConfig, start};
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

const CONVERSATION: &str = "0199aaaa-1111-7222-8333-444455556666";
const TURN: &str = "0199aaaa-2222-7333-8444-555566667777";
/// 2026-11-22T01:47:40.900Z
const T0_MS: u64 = 1_795_312_060_900;

async fn export_logs(
    addr: std::net::SocketAddr,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse, tonic::Status> {
    let mut client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    client.export(request).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_client_exports_codex_shaped_records_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let endpoint = format!("http://{}", server.grpc_addr);

    let resource = Resource::builder().with_service_name("codex_exec").build();
    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let loggers = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(log_exporter)
        .build();
    let tracers = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(span_exporter)
        .build();

    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(T0_MS + ms);
    let tracer = tracers.tracer("codex_otel");
    let span = tracer
        .span_builder("session_task.turn")
        .with_start_time(at(0))
        .with_attributes(vec![
            KeyValue::new("turn.id", TURN),
            KeyValue::new("model", "gpt-5.1-codex"),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(span);
    let trace_id = cx.span().span_context().trace_id().to_string();
    {
        let _guard = cx.clone().attach();
        let logger = loggers.logger("codex_otel.log_only");
        let emit = |attrs: &[(&str, &str)]| {
            let mut record = logger.create_log_record();
            record.add_attribute("conversation.id", CONVERSATION);
            for (k, v) in attrs {
                record.add_attribute(k.to_string(), AnyValue::from(v.to_string()));
            }
            logger.emit(record);
        };
        emit(&[
            ("event.name", "codex.user_prompt"),
            ("event.timestamp", "2026-11-22T01:47:40.957Z"),
            ("prompt", "say hello"),
            ("prompt_length", "9"),
        ]);
        emit(&[
            ("event.name", "codex.api_request"),
            ("event.timestamp", "2026-11-22T01:47:41.009Z"),
            ("attempt", "0"),
            ("duration_ms", "40"),
            ("http.response.status_code", "200"),
            ("endpoint", "/responses"),
        ]);
        emit(&[
            ("event.name", "codex.sse_event"),
            ("event.timestamp", "2026-11-22T01:47:41.010Z"),
            ("event.kind", "response.created"),
            ("duration_ms", "0"),
        ]);
        emit(&[
            ("event.name", "codex.sse_event"),
            ("event.timestamp", "2026-11-22T01:47:41.011Z"),
            ("event.kind", "response.completed"),
            ("input_token_count", "100"),
            ("output_token_count", "7"),
            ("cached_token_count", "10"),
            ("cache_write_token_count", "0"),
            ("reasoning_token_count", "2"),
            ("tool_token_count", "107"),
            ("ttft_ms", "3"),
        ]);
    }
    cx.span().end_with_timestamp(at(400));

    // Logs first (they tie the trace to the conversation), then the span. Shutdown
    // blocks on the export, so it runs off the runtime's worker threads.
    tokio::task::spawn_blocking(move || {
        loggers.shutdown().expect("logger shutdown");
        tracers.shutdown().expect("tracer shutdown");
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
            "inference_attempt",
            "inference_stream_event",
            "inference_completed",
            "codex_turn_started",
            "codex_turn_ended",
        ]
    );
    for e in &events {
        assert_eq!(e.rollout_id, CONVERSATION);
    }
    for e in &events[1..5] {
        let ev = e.evidence.as_ref().expect("evidence");
        assert_eq!(ev.signal, "logs");
        assert_eq!(ev.trace_id.as_deref(), Some(trace_id.as_str()));
        assert_eq!(e.thread_id.as_deref(), Some(CONVERSATION));
    }
    for e in &events[5..] {
        let ev = e.evidence.as_ref().expect("evidence");
        assert_eq!(ev.signal, "traces");
        assert_eq!(e.codex_turn_id.as_deref(), Some(TURN));
    }
    assert_eq!(events[1].wall_time_unix_ms, T0_MS as i64 + 57);
    match &events[4].payload {
        RawEventPayload::InferenceCompleted { usage, ttft_ms } => {
            assert_eq!(usage.input_tokens, 100);
            assert_eq!(usage.cached_input_tokens, 10);
            assert_eq!(usage.output_tokens, 7);
            assert_eq!(*ttft_ms, Some(3));
        }
        other => panic!("expected inference_completed, got {other:?}"),
    }

    let g = graph_json(&server, CONVERSATION);
    let turns = g["codex_turns"].as_object().unwrap();
    assert_eq!(turns.len(), 1, "{g:#}");
    let turn = &turns[TURN];
    assert_eq!(turn["thread_id"], CONVERSATION);
    assert_eq!(turn["execution"]["status"], "completed", "{turn:#}");
    assert_eq!(turn["otel_trace_id"], trace_id.as_str());
    let calls = g["inference_calls"].as_object().unwrap();
    assert_eq!(calls.len(), 1, "{g:#}");
    let call = calls.values().next().unwrap();
    assert_eq!(call["codex_turn_id"], TURN, "{call:#}");
    assert_eq!(call["execution"]["status"], "completed", "{call:#}");
    assert_eq!(call["usage"]["input_tokens"], 100);
    assert_eq!(call["usage"]["output_tokens"], 7);
    assert_eq!(
        server.rollout_ids_for_test(),
        vec![CONVERSATION.to_string()]
    );
    server.shutdown().await.unwrap();
}

trait RolloutIds {
    fn rollout_ids_for_test(&self) -> Vec<String>;
}

impl RolloutIds for rollout_collector::serve::Server {
    fn rollout_ids_for_test(&self) -> Vec<String> {
        self.collector.lock().unwrap().rollout_ids()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_codex_capture_builds_the_tool_call_graph() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let requests = fixture_requests("tool-call-ok");
    assert_eq!(requests.len(), 3);
    send_all_grpc(server.grpc_addr, &requests).await;

    assert_eq!(
        server.rollout_ids_for_test(),
        vec![TOOL_CALL_OK_ROLLOUT.to_string()]
    );
    let events = read_trace(dir.path(), TOOL_CALL_OK_ROLLOUT);
    assert_contiguous_and_unique(&events);
    assert_eq!(events[0].payload.type_name(), "rollout_started");
    assert_tool_call_ok_graph(&graph_json(&server, TOOL_CALL_OK_ROLLOUT));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_resource_exhausted_and_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::ephemeral(dir.path());
    config.max_message_bytes = 1024;
    let server = start(config).await.unwrap();

    // Over the limit, under tonic's hard limit (twice ours): our own answer.
    let big = user_prompt_request(CONVERSATION, &"x".repeat(1500));
    let status = export_logs(server.grpc_addr, big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("limit of 1024 bytes"),
        "{status:?}"
    );

    // Far over (past tonic's decode limit): still RESOURCE_EXHAUSTED.
    let huge = user_prompt_request(CONVERSATION, &"x".repeat(10_000));
    let status = export_logs(server.grpc_addr, huge).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // Nothing was stored; the server keeps serving.
    assert!(server.rollout_ids_for_test().is_empty());
    let ok = export_logs(server.grpc_addr, user_prompt_request(CONVERSATION, "hi"))
        .await
        .expect("a good request after the oversized ones");
    assert!(ok.partial_success.is_none(), "{ok:?}");
    assert_eq!(
        server.rollout_ids_for_test(),
        vec![CONVERSATION.to_string()]
    );
    server.shutdown().await.unwrap();
}

/// Same path as `ExportLogsServiceRequest`, but field 1 is a varint where the real
/// message has a length-delimited `ResourceLogs`: the server cannot decode it.
#[derive(Clone, PartialEq, prost::Message)]
struct CollidingLogsRequest {
    #[prost(uint64, tag = "1")]
    resource_logs: u64,
}

async fn send_undecodable(addr: std::net::SocketAddr) -> tonic::Status {
    send_colliding(
        addr,
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    )
    .await
}

async fn send_colliding(addr: std::net::SocketAddr, path: &'static str) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec =
        tonic_prost::ProstCodec::<CollidingLogsRequest, ExportLogsServiceResponse>::default();
    grpc.unary(
        tonic::Request::new(CollidingLogsRequest { resource_logs: 7 }),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .expect_err("undecodable request must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_message_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();

    let status = send_undecodable(server.grpc_addr).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("decode"), "{status:?}");
    assert!(server.rollout_ids_for_test().is_empty());
    assert_eq!(outside_counts(&server), (0, 0));

    export_logs(server.grpc_addr, user_prompt_request(CONVERSATION, "hi"))
        .await
        .expect("a good request after the bad one");
    assert_eq!(
        server.rollout_ids_for_test(),
        vec![CONVERSATION.to_string()]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_other_than_export_is_unimplemented() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    for path in [
        "/opentelemetry.proto.collector.logs.v1.LogsService/Exports",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Other",
    ] {
        let status = send_colliding(server.grpc_addr, path).await;
        assert_eq!(
            status.code(),
            tonic::Code::Unimplemented,
            "{path}: {status:?}"
        );
    }
    assert!(server.rollout_ids_for_test().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_export_is_accepted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let metrics: Vec<Captured> = fixture_requests("with-metrics")
        .into_iter()
        .filter(|c| c.kind == "metrics")
        .collect();
    assert_eq!(metrics.len(), 1);
    let warning = send_grpc(server.grpc_addr, &metrics[0])
        .await
        .expect("metrics accepted");
    assert_eq!(warning, "");
    let (unattributed, metric_records) = outside_counts(&server);
    assert_eq!(unattributed, 0);
    assert!(metric_records > 0, "no metric records counted");
    assert!(
        dir.path().join("metrics/trace.jsonl").exists(),
        "metrics bundle not written"
    );
    // Metrics name no session: no rollout.
    assert!(server.rollout_ids_for_test().is_empty());

    // The same request again: stored once.
    send_grpc(server.grpc_addr, &metrics[0]).await.unwrap();
    assert_eq!(outside_counts(&server).1, metric_records);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_conversation_id_are_kept_as_unattributed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let request = logs_request(
        vec![
            vec![
                kv("event.name", "codex.startup_phase"),
                kv("event.timestamp", "2026-11-22T01:47:40.884Z"),
            ],
            vec![
                kv("event.name", "codex.sse_event"),
                kv("event.timestamp", "2026-11-22T01:47:41.010Z"),
                kv("event.kind", "response.created"),
            ],
        ],
        "",
    );
    let response = export_logs(server.grpc_addr, request)
        .await
        .expect("accepted");
    let partial = response.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_log_records, 0);
    assert!(
        partial.error_message.contains("unattributed"),
        "{partial:?}"
    );
    assert!(partial.error_message.starts_with('2'), "{partial:?}");
    let counters = &server.ingestor.counters;
    assert_eq!(counters.unattributed.load(Ordering::Relaxed), 2);
    assert_eq!(counters.records.load(Ordering::Relaxed), 2);
    assert!(
        outside_counts(&server).0 >= 2,
        "{:?}",
        outside_counts(&server)
    );
    assert_eq!(outside_counts(&server).1, 0);
    assert!(server.rollout_ids_for_test().is_empty());
    assert!(dir.path().join("unattributed/trace.jsonl").exists());
    assert_eq!(waiting_for_session(&server).await, 2);
    server.shutdown().await.unwrap();

    // After a restart they still wait for their session.
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    assert_eq!(waiting_for_session(&server).await, 2);
    server.shutdown().await.unwrap();
}

/// `received.waiting_for_session` of `GET /api/status`.
async fn waiting_for_session(server: &rollout_collector::serve::Server) -> u64 {
    let status = status(server).await;
    status["received"]["waiting_for_session"]
        .as_u64()
        .unwrap_or_else(|| panic!("{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_counts_count_only_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServeConfig::ephemeral(dir.path())).await.unwrap();
    let request = logs_request(
        vec![
            vec![kv("event.name", "codex.startup_phase")],
            vec![kv("event.name", "codex.turn_ttft")],
        ],
        "",
    );
    export_logs(server.grpc_addr, request).await.unwrap();
    assert_eq!(outside_counts(&server), (2, 0));
    server.shutdown().await.unwrap();
}
