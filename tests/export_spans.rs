//! The exporter against real downstream servers started in the test: an OTLP/gRPC
//! TraceService (tonic, the generated server of opentelemetry-proto) and an OTLP/HTTP
//! endpoint (axum). No sleeps: the tests wait on what the servers receive and on the
//! exporter's stats.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message;
use rollout_collector::export::sender::retry_info_details;
use rollout_collector::export::{ExportConfig, Exporter, Protocol, ids};
use rollout_collector::normalize::{ExecutionStatus, TokenUsage};
use rollout_collector::reduce::graph::{
    AgentOrigin, Approval, CodexTurn, Execution, HttpAttempt, InferenceCall, InteractionEdge,
    Requester, RolloutGraph, Thread, ToolCall, ToolCallKind, ToolCallSummary, TraceAnchor,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- fake downstream

/// What a fake downstream received; `spans` follows the number of spans accepted.
struct Received {
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
    authorization: Mutex<Vec<String>>,
    spans: watch::Sender<usize>,
    /// Answer this many requests with a retryable error first.
    fail_first: AtomicUsize,
    failed: AtomicUsize,
}

impl Received {
    fn new(fail_first: usize) -> Arc<Received> {
        Arc::new(Received {
            requests: Mutex::new(Vec::new()),
            authorization: Mutex::new(Vec::new()),
            spans: watch::Sender::new(0),
            fail_first: AtomicUsize::new(fail_first),
            failed: AtomicUsize::new(0),
        })
    }

    /// True if this request is to be failed.
    fn should_fail(&self) -> bool {
        let left = self.fail_first.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_first.store(left - 1, Ordering::SeqCst);
            self.failed.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    fn accept(&self, request: ExportTraceServiceRequest, authorization: Option<String>) {
        let n: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.requests.lock().unwrap().push(request);
        if let Some(a) = authorization {
            self.authorization.lock().unwrap().push(a);
        }
        self.spans.send_modify(|s| *s += n);
    }

    async fn wait_for_spans(&self, n: usize) {
        let mut rx = self.spans.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|s| *s >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {n} spans, have {}",
                    *self.spans.borrow()
                )
            })
            .unwrap();
    }

    fn spans(&self) -> Vec<Span> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }
}

struct FakeGrpc(Arc<Received>);

#[tonic::async_trait]
impl TraceService for FakeGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.0.should_fail() {
            // Alternate the two codes the exporter must retry; one carries RetryInfo.
            return Err(if self.0.failed.load(Ordering::SeqCst) % 2 == 1 {
                tonic::Status::unavailable("downstream restarting")
            } else {
                let details = retry_info_details(8, "slow down", Duration::from_millis(20));
                tonic::Status::with_details(
                    tonic::Code::ResourceExhausted,
                    "slow down",
                    details.into(),
                )
            });
        }
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.0.accept(request.into_inner(), auth);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_grpc(listener: tokio::net::TcpListener, received: Arc<Received>) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(FakeGrpc(received)))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
}

async fn grpc_server(fail_first: usize) -> (SocketAddr, Arc<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::new(fail_first);
    start_grpc(listener, received.clone()).await;
    (addr, received)
}

async fn http_server(fail_first: usize) -> (SocketAddr, Arc<Received>) {
    use axum::http::{HeaderMap, StatusCode as Http};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::new(fail_first);
    let state = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                if state.should_fail() {
                    return (
                        Http::SERVICE_UNAVAILABLE,
                        [("retry-after", "0")],
                        Vec::new(),
                    );
                }
                assert_eq!(
                    headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                state.accept(request, auth);
                let response = ExportTraceServiceResponse {
                    partial_success: None,
                };
                (Http::OK, [("retry-after", "0")], response.encode_to_vec())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// A port with nothing listening (yet).
async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn config(endpoint: String) -> ExportConfig {
    let mut config = ExportConfig::new(endpoint);
    config.to.headers = vec![("authorization".to_string(), "Bearer test-token".to_string())];
    config.retry.initial_backoff = Duration::from_millis(10);
    config.retry.max_backoff = Duration::from_millis(100);
    config.to.timeout = Duration::from_secs(5);
    config
}

async fn wait_retries(exporter: &Exporter, n: u64) {
    let mut stats = exporter.watch_stats();
    tokio::time::timeout(WAIT, stats.wait_for(|s| s.retries >= n))
        .await
        .expect("timed out waiting for retries")
        .unwrap();
}

// ---------------------------------------------------------------- graph

fn exec(start: i64, end: Option<i64>, status: ExecutionStatus) -> Execution {
    Execution {
        started_at_unix_ms: start,
        started_seq: 1,
        ended_at_unix_ms: end,
        ended_seq: end.map(|_| 2),
        status,
    }
}

fn thread(id: &str, origin: AgentOrigin) -> Thread {
    Thread {
        thread_id: id.to_string(),
        agent_path: "/root".to_string(),
        nickname: None,
        origin,
        execution: exec(
            1_700_000_000_000,
            Some(1_700_000_009_000),
            ExecutionStatus::Completed,
        ),
        default_model: Some("gpt-5.1-codex".to_string()),
        conversation_item_ids: vec![],
        provider_name: Some("openai".to_string()),
    }
}

fn tool(id: &str, thread_id: &str, turn: &str, kind: ToolCallKind) -> ToolCall {
    ToolCall {
        tool_call_id: id.to_string(),
        mcp_call_id: None,
        model_visible_call_id: Some(id.to_string()),
        code_mode_runtime_tool_id: None,
        thread_id: thread_id.to_string(),
        started_by_codex_turn_id: Some(turn.to_string()),
        execution: exec(
            1_700_000_003_000,
            Some(1_700_000_003_250),
            ExecutionStatus::Completed,
        ),
        requester: Requester {
            kind: "model".to_string(),
        },
        kind,
        model_visible_call_item_ids: vec![],
        model_visible_output_item_ids: vec![],
        terminal_operation_id: None,
        summary: ToolCallSummary::Generic {
            label: "ls".to_string(),
            input_preview: Some("{\"cmd\":\"ls\"}".to_string()),
            output_preview: Some("secret output".to_string()),
        },
        raw_invocation_payload_id: None,
        raw_result_payload_id: None,
        raw_runtime_payload_ids: vec![],
        tool_name: None,
        approval: Some(Approval {
            decision: Some("approved".to_string()),
            source: Some("user".to_string()),
        }),
        success: Some(true),
        mcp_server: None,
        started_by_inference_call_id: None,
    }
}

/// A closed rollout: the root thread, one turn with a failed model call and a tool
/// call, and a sub-agent spawned by a `spawn_agent` tool call.
fn graph(rollout_id: &str) -> RolloutGraph {
    let root = rollout_id.to_string();
    let mut g = RolloutGraph {
        schema_version: 1,
        trace_id: "t".to_string(),
        rollout_id: root.clone(),
        started_at_unix_ms: Some(1_700_000_000_000),
        ended_at_unix_ms: Some(1_700_000_009_000),
        status: "completed".to_string(),
        root_thread_id: root.clone(),
        ..RolloutGraph::default()
    };
    g.threads
        .insert(root.clone(), thread(&root, AgentOrigin::Root));
    let child_origin = AgentOrigin::Spawned {
        parent_thread_id: root.clone(),
        spawned_by_tool_call_id: None,
    };
    g.threads
        .insert("child".to_string(), thread("child", child_origin));
    g.codex_turns.insert(
        "turn-1".to_string(),
        CodexTurn {
            codex_turn_id: "turn-1".to_string(),
            thread_id: root.clone(),
            execution: exec(
                1_700_000_001_000,
                Some(1_700_000_008_000),
                ExecutionStatus::Completed,
            ),
            input_item_ids: vec![],
            usage: TokenUsage {
                input_tokens: 1200,
                output_tokens: 80,
                ..TokenUsage::default()
            },
            ttft_ms: Some(420),
            closed_by: Some("span".to_string()),
            otel_trace_id: Some("0af7651916cd43dd8448eb211c80319c".to_string()),
        },
    );
    g.inference_calls.insert(
        "inf-1".to_string(),
        InferenceCall {
            inference_call_id: "inf-1".to_string(),
            thread_id: root.clone(),
            codex_turn_id: Some("turn-1".to_string()),
            execution: exec(
                1_700_000_001_100,
                Some(1_700_000_002_000),
                ExecutionStatus::Failed,
            ),
            model: Some("gpt-5.1-codex".to_string()),
            provider_name: Some("openai".to_string()),
            response_id: None,
            upstream_request_id: None,
            request_item_ids: vec![],
            response_item_ids: vec![],
            tool_call_ids_started_by_response: vec![],
            usage: Some(TokenUsage {
                input_tokens: 1200,
                cached_input_tokens: 1000,
                output_tokens: 80,
                reasoning_output_tokens: 64,
                ..TokenUsage::default()
            }),
            raw_request_payload_id: None,
            raw_response_payload_id: None,
            attempts: vec![
                HttpAttempt {
                    attempt: 1,
                    started_at_unix_ms: 1_700_000_001_100,
                    ended_at_unix_ms: 1_700_000_001_500,
                    status_code: Some(429),
                    error: Some("rate limited".to_string()),
                    upstream_request_id: None,
                },
                HttpAttempt {
                    attempt: 2,
                    started_at_unix_ms: 1_700_000_001_600,
                    ended_at_unix_ms: 1_700_000_002_000,
                    status_code: Some(500),
                    error: Some("server error".to_string()),
                    upstream_request_id: None,
                },
            ],
            ttft_ms: None,
            error: Some("exceeded retry limit, last status: 500".to_string()),
            otel_span_id: Some("b7ad6b7169203331".to_string()),
        },
    );
    g.tool_calls.insert(
        "call-exec".to_string(),
        tool("call-exec", &root, "turn-1", ToolCallKind::ExecCommand),
    );
    g.tool_calls.insert(
        "call-spawn".to_string(),
        tool("call-spawn", &root, "turn-1", ToolCallKind::SpawnAgent),
    );
    g.interaction_edges.insert(
        "edge:spawn".to_string(),
        InteractionEdge {
            edge_id: "edge:spawn".to_string(),
            kind: "spawn_agent".to_string(),
            source: TraceAnchor::ToolCall {
                tool_call_id: "call-spawn".to_string(),
            },
            target: TraceAnchor::Thread {
                thread_id: "child".to_string(),
            },
            started_at_unix_ms: 1_700_000_003_000,
            ended_at_unix_ms: Some(1_700_000_003_250),
            carried_item_ids: vec![],
            carried_raw_payload_ids: vec![],
        },
    );
    g
}

/// Spans per graph: 2 threads, 1 turn, 1 chat, 2 tools.
const SPANS_PER_GRAPH: usize = 6;

fn attr(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn s(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        Value::StringValue(v) => Some(v),
        _ => None,
    }
}

fn i(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::IntValue(v) => Some(v),
        _ => None,
    }
}

fn assert_no_duplicates(spans: &[Span]) {
    let mut seen = HashSet::new();
    for span in spans {
        assert!(
            seen.insert((span.trace_id.clone(), span.span_id.clone())),
            "duplicate {}",
            span.name
        );
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_one_clean_trace_once_even_across_restarts() {
    let (addr, received) = grpc_server(0).await;
    let data = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(config(format!("http://{addr}")), data.path()).unwrap();

    let report = exporter.offer(&graph("rollout-a"));
    assert_eq!(report.complete_spans, SPANS_PER_GRAPH);
    assert_eq!(report.enqueued_spans, SPANS_PER_GRAPH);
    received.wait_for_spans(SPANS_PER_GRAPH).await;

    let spans = received.spans();
    assert_eq!(spans.len(), SPANS_PER_GRAPH);
    let by_name: HashMap<&str, Vec<&Span>> = spans.iter().fold(HashMap::new(), |mut m, sp| {
        m.entry(sp.name.as_str()).or_default().push(sp);
        m
    });
    let trace = ids::trace_id("rollout-a").to_vec();
    assert!(spans.iter().all(|sp| sp.trace_id == trace));
    let sid = |kind, id| ids::span_id("rollout-a", kind, id).to_vec();

    // invoke_agent codex: the root thread (no parent) and the sub-agent, child of
    // the spawn_agent tool call.
    let agents = &by_name["invoke_agent codex"];
    assert_eq!(agents.len(), 2);
    let root = agents
        .iter()
        .find(|sp| sp.parent_span_id.is_empty())
        .unwrap();
    assert_eq!(root.span_id, sid(ids::KIND_THREAD, "rollout-a"));
    assert_eq!(
        s(root, "gen_ai.conversation.id").as_deref(),
        Some("rollout-a")
    );
    assert_eq!(
        s(root, "gen_ai.operation.name").as_deref(),
        Some("invoke_agent")
    );
    assert_eq!(s(root, "openinference.span.kind").as_deref(), Some("AGENT"));
    assert_eq!(s(root, "session.id").as_deref(), Some("rollout-a"));
    assert_eq!(i(root, "gen_ai.usage.input_tokens"), Some(1200));
    assert_eq!(root.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(root.end_time_unix_nano, 1_700_000_009_000_000_000);
    let child = agents
        .iter()
        .find(|sp| !sp.parent_span_id.is_empty())
        .unwrap();
    assert_eq!(child.span_id, sid(ids::KIND_THREAD, "child"));
    assert_eq!(child.parent_span_id, sid(ids::KIND_TOOL, "call-spawn"));

    // turn, child of the thread.
    let turn = by_name["turn"][0];
    assert_eq!(turn.parent_span_id, root.span_id);
    assert_eq!(s(turn, "codex.turn.id").as_deref(), Some("turn-1"));
    assert_eq!(s(turn, "codex.turn.status").as_deref(), Some("completed"));
    assert_eq!(i(turn, "codex.turn.ttft_ms"), Some(420));
    assert_eq!(s(turn, "openinference.span.kind").as_deref(), Some("CHAIN"));

    // chat, child of the turn, failed, linked to Codex's own span.
    let chat = by_name["chat gpt-5.1-codex"][0];
    assert_eq!(chat.parent_span_id, turn.span_id);
    assert_eq!(s(chat, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(s(chat, "gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(
        s(chat, "gen_ai.request.model").as_deref(),
        Some("gpt-5.1-codex")
    );
    assert_eq!(i(chat, "gen_ai.usage.output_tokens"), Some(80));
    assert_eq!(i(chat, "gen_ai.usage.cache_read.input_tokens"), Some(1000));
    assert_eq!(
        i(chat, "llm.token_count.completion_details.reasoning"),
        Some(64)
    );
    assert_eq!(i(chat, "codex.http.attempts"), Some(2));
    assert_eq!(i(chat, "http.response.status_code"), Some(500));
    assert_eq!(s(chat, "error.type").as_deref(), Some("500"));
    assert_eq!(s(chat, "openinference.span.kind").as_deref(), Some("LLM"));
    assert_eq!(chat.status.as_ref().unwrap().code, StatusCode::Error as i32);
    assert_eq!(chat.events.len(), 2);
    assert_eq!(hex::encode(&chat.links[0].span_id), "b7ad6b7169203331");

    // execute_tool, child of the turn; no content without opt-in.
    let exec_tool = by_name["execute_tool exec_command"][0];
    assert_eq!(exec_tool.parent_span_id, turn.span_id);
    assert_eq!(exec_tool.span_id, sid(ids::KIND_TOOL, "call-exec"));
    assert_eq!(
        s(exec_tool, "gen_ai.tool.name").as_deref(),
        Some("exec_command")
    );
    assert_eq!(
        s(exec_tool, "gen_ai.tool.call.id").as_deref(),
        Some("call-exec")
    );
    assert_eq!(
        s(exec_tool, "gen_ai.tool.type").as_deref(),
        Some("function")
    );
    assert_eq!(
        s(exec_tool, "codex.tool.approval.decision").as_deref(),
        Some("approved")
    );
    assert_eq!(
        s(exec_tool, "codex.tool.approval.source").as_deref(),
        Some("user")
    );
    assert_eq!(i(exec_tool, "codex.tool.duration_ms"), Some(250));
    assert!(exec_tool.status.is_none());
    assert!(
        spans
            .iter()
            .all(|sp| attr(sp, "gen_ai.tool.call.result").is_none())
    );
    assert!(spans.iter().all(|sp| attr(sp, "output.value").is_none()));

    // Resource and headers.
    let request = received.requests.lock().unwrap()[0].clone();
    let resource = request.resource_spans[0].resource.clone().unwrap();
    assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
        && kv.value.clone().and_then(|v| v.value)
            == Some(Value::StringValue("rollout-collector".to_string()))));
    assert_eq!(
        received.authorization.lock().unwrap()[0],
        "Bearer test-token"
    );

    // The same graph again: nothing new.
    let again = exporter.offer(&graph("rollout-a"));
    assert_eq!(again.complete_spans, SPANS_PER_GRAPH);
    assert_eq!(again.enqueued_spans, 0);
    exporter.shutdown(Duration::from_secs(5)).await;

    // A restart on the same data directory (a replay re-offers every graph).
    let exporter = Exporter::start(config(format!("http://{addr}")), data.path()).unwrap();
    assert_eq!(exporter.offer(&graph("rollout-a")).enqueued_spans, 0);
    // A new rollout still goes, after whatever was queued before it (FIFO): once its
    // spans arrived, a duplicate of the first would have arrived too.
    assert_eq!(
        exporter.offer(&graph("rollout-b")).enqueued_spans,
        SPANS_PER_GRAPH
    );
    received.wait_for_spans(2 * SPANS_PER_GRAPH).await;
    exporter.shutdown(Duration::from_secs(5)).await;
    let spans = received.spans();
    assert_eq!(spans.len(), 2 * SPANS_PER_GRAPH);
    assert_no_duplicates(&spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_loses_nothing() {
    // Nothing listens yet: the exporter keeps retrying.
    let addr = free_addr().await;
    let data = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(config(format!("http://{addr}")), data.path()).unwrap();
    assert_eq!(
        exporter.offer(&graph("rollout-a")).enqueued_spans,
        SPANS_PER_GRAPH
    );
    wait_retries(&exporter, 2).await;
    // More work arrives during the outage; offering never blocks.
    assert_eq!(
        exporter.offer(&graph("rollout-b")).enqueued_spans,
        SPANS_PER_GRAPH
    );
    assert_eq!(exporter.stats().sent_spans, 0);
    assert!(exporter.stats().queue_bytes > 0);

    // The downstream comes up, answers UNAVAILABLE and RESOURCE_EXHAUSTED (with
    // RetryInfo) twice, then accepts.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let received = Received::new(2);
    start_grpc(listener, received.clone()).await;
    received.wait_for_spans(2 * SPANS_PER_GRAPH).await;
    assert_eq!(received.failed.load(Ordering::SeqCst), 2);
    let spans = received.spans();
    assert_eq!(spans.len(), 2 * SPANS_PER_GRAPH);
    assert_no_duplicates(&spans);
    let mut stats = exporter.watch_stats();
    let stats = stats
        .wait_for(|s| s.queue_bytes == 0)
        .await
        .unwrap()
        .clone();
    assert_eq!(stats.sent_spans, 2 * SPANS_PER_GRAPH as u64);
    assert_eq!(stats.dropped_spans, 0);
    assert!(stats.retries >= 4);
    exporter.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_spans_survive_a_restart_during_an_outage() {
    let addr = free_addr().await;
    let data = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(config(format!("http://{addr}")), data.path()).unwrap();
    assert_eq!(
        exporter.offer(&graph("rollout-a")).enqueued_spans,
        SPANS_PER_GRAPH
    );
    wait_retries(&exporter, 1).await;
    exporter.shutdown(Duration::ZERO).await;
    drop(exporter);

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let received = Received::new(0);
    start_grpc(listener, received.clone()).await;
    // The new process sends what the old one queued, without being offered anything.
    let exporter = Exporter::start(config(format!("http://{addr}")), data.path()).unwrap();
    received.wait_for_spans(SPANS_PER_GRAPH).await;
    assert_eq!(exporter.offer(&graph("rollout-a")).enqueued_spans, 0);
    exporter.shutdown(Duration::from_secs(5)).await;
    let spans = received.spans();
    assert_eq!(spans.len(), SPANS_PER_GRAPH);
    assert_no_duplicates(&spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_with_retry_and_content_opt_in() {
    let (addr, received) = http_server(1).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = config(format!("http://{addr}"));
    config.to.protocol = Protocol::HttpProtobuf;
    config.include_content = true;
    config.content_cap_bytes = 6;
    config.to.gzip = false;
    let exporter = Exporter::start(config, data.path()).unwrap();
    assert_eq!(
        exporter.offer(&graph("rollout-h")).enqueued_spans,
        SPANS_PER_GRAPH
    );
    received.wait_for_spans(SPANS_PER_GRAPH).await;
    assert_eq!(received.failed.load(Ordering::SeqCst), 1);
    let spans = received.spans();
    let exec_tool = spans
        .iter()
        .find(|sp| sp.name == "execute_tool exec_command")
        .unwrap();
    assert_eq!(
        s(exec_tool, "gen_ai.tool.call.result").as_deref(),
        Some("secret")
    );
    assert_eq!(
        s(exec_tool, "gen_ai.tool.call.arguments").as_deref(),
        Some("{\"cmd\"")
    );
    assert_eq!(
        received.authorization.lock().unwrap()[0],
        "Bearer test-token"
    );
    exporter.shutdown(Duration::from_secs(5)).await;
}
