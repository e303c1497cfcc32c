//! A simulated Codex session, through the collector, to a downstream.
//!
//! ```text
//! cargo run --example codex_session                      # everything in-process
//! cargo run --example codex_session -- --downstream http://127.0.0.1:4317   # to Jaeger, Tempo, an OTel Collector...
//! cargo run --example codex_session -- --collector http://127.0.0.1:4317    # to a running `rollout-collector serve`
//! ```
//!
//! The example plays one `codex exec` session the way Codex 0.169.0 reports it (see
//! `tests/fixtures/codex/tool-call-ok`): one turn, a model call that asks for
//! `exec_command`, the command, and a second model call that answers. It emits the
//! log records (scope `codex_otel.log_only`) and the key spans of that turn with the
//! real OpenTelemetry SDK and `opentelemetry-otlp` gRPC exporters, the way Codex does,
//! and ends like Codex: its "flushing OTEL metrics" record tells the collector the
//! process exited, which closes the session.
//!
//! By default it starts, in-process, a small OTLP/gRPC trace receiver (the
//! downstream, which prints the spans it gets as a tree) and the collector
//! (`serve::start`, exporting to that receiver), waits until the collector has sent
//! the session's enriched spans (`invoke_agent codex` → `turn` → `chat <model>` /
//! `execute_tool exec_command`), prints them and the rollout graph, and exits.

use clap::Parser;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{
    Event, SpanContext, SpanKind, TraceContextExt as _, TraceFlags, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use rollout_collector::export::{ExportConfig, Protocol};
use rollout_collector::proto::WatchRolloutRequest;
use rollout_collector::proto::rollout_service_client::RolloutServiceClient;
use rollout_collector::reduce::graph::RolloutGraph;
use rollout_collector::serve::{self, ServeConfig, Server};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const VERSION: &str = "0.169.0";
const MODEL: &str = "gpt-5.1-codex";
const CMD: &str = "echo hello-from-tool";
const TOOL_OUTPUT: &str = "Chunk ID: a69c0f\nWall time: 0.1119 seconds\nProcess exited with code 0\nOriginal token count: 4\nOutput:\nhello-from-tool\n";

#[derive(Parser, Debug)]
#[command(
    name = "codex_session",
    about = "Play a simulated Codex session (Codex 0.169 telemetry, sent with opentelemetry-otlp) \
             through rollout-collector to a downstream, and print what arrives there",
    long_about = None
)]
struct Args {
    /// Export the collector's enriched spans to this OTLP endpoint (Jaeger, Tempo, an
    /// OpenTelemetry Collector...) instead of the built-in receiver that prints them.
    /// OTLP/gRPC, or OTLP/HTTP for port 4318 or a /v1/ path (as `serve --export-endpoint`).
    #[arg(long, value_name = "URL", conflicts_with = "collector")]
    downstream: Option<String>,
    /// Send the session to an already running `rollout-collector serve` (its OTLP/gRPC
    /// address, e.g. http://127.0.0.1:4317) instead of starting one in-process; its own
    /// --export-endpoint decides where the spans go. The example then prints the graph
    /// it gets from that collector's WatchRollout.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// Data directory of the in-process collector (default: a temporary directory,
    /// removed at exit). Keep it to look again: `rollout-collector --data-dir DIR show ID`.
    #[arg(long, value_name = "DIR", conflicts_with = "collector")]
    data_dir: Option<PathBuf>,
    /// Put prompt text, tool arguments and output on the exported spans.
    #[arg(long, conflicts_with = "collector")]
    include_content: bool,
    /// Give up (exit 1) when the session is not through after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let wait = Duration::from_secs(args.timeout);
    let ids = Ids::new();
    println!("session (rollout) {}", ids.conversation);

    let Some(collector_url) = &args.collector else {
        return in_process(&args, &ids, wait).await;
    };
    emit_session(collector_url, &ids).await?;
    println!("sent to {collector_url}; watching the rollout there until it closes");
    let mut client = RolloutServiceClient::connect(collector_url.clone()).await?;
    let mut stream = client
        .watch_rollout(WatchRolloutRequest {
            rollout_id: ids.conversation.clone(),
        })
        .await?
        .into_inner();
    let graph = tokio::time::timeout(wait, async {
        while let Some(rollout) = stream.message().await? {
            let graph: RolloutGraph = serde_json::from_str(&rollout.graph_json)?;
            if graph.status == "completed" {
                return Ok(graph);
            }
        }
        anyhow::bail!("the WatchRollout stream ended before the session closed")
    })
    .await
    .map_err(|_| anyhow::anyhow!("the session did not close within {wait:?}"))??;
    println!("\nrollout graph (rollout-collector show):\n");
    print!("{}", rollout_collector::query::tree::render(&graph));
    Ok(())
}

/// The collector (and, without --downstream, the receiver) in this process.
async fn in_process(args: &Args, ids: &Ids, wait: Duration) -> anyhow::Result<()> {
    let receiver = match &args.downstream {
        Some(_) => None,
        None => Some(Receiver::start().await?),
    };
    let downstream = match (&args.downstream, &receiver) {
        (Some(url), _) => url.clone(),
        (None, Some(r)) => format!("http://{}", r.addr),
        (None, None) => unreachable!(),
    };
    let tmp = tempfile::tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| tmp.path().into());
    let mut export = ExportConfig::new(downstream.clone());
    // Like `serve --export-endpoint`: OTLP/HTTP for a /v1/ path or port 4318.
    if downstream.contains("/v1/") || downstream.contains(":4318") {
        export.to.protocol = Protocol::HttpProtobuf;
    }
    export.include_content = args.include_content;
    let span_options = export.span_options();
    let server = serve::start(ServeConfig {
        export: Some(export),
        ..ServeConfig::ephemeral(&data_dir)
    })
    .await?;
    println!(
        "collector on grpc {} / http {}, data in {}, exporting to {downstream}",
        server.grpc_addr,
        server.http_addr,
        data_dir.display()
    );

    let mut changes = server.collector.lock().unwrap().subscribe();
    emit_session(&format!("http://{}", server.grpc_addr), ids).await?;

    // The session is closed once Codex's exit record is in; then every object of the
    // graph is complete and the exporter sends one span each.
    let result = tokio::time::timeout(wait, async {
        let graph = loop {
            if let Some(graph) = closed_graph(&server, &ids.conversation) {
                break graph;
            }
            match changes.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => anyhow::bail!("collector changes: {e}"),
            }
        };
        let expected =
            rollout_collector::export::spans::build_spans(&graph, &span_options).len() as u64;
        let mut stats = server.exporter.as_ref().unwrap().watch_stats();
        // Sent, or refused for good (a wrong endpoint or protocol): either way, done.
        stats
            .wait_for(|s| s.sent_spans + s.dropped_spans >= expected)
            .await?;
        Ok(graph)
    })
    .await;
    let stats = server.exporter.as_ref().unwrap().stats();
    let graph = match result {
        Ok(Ok(graph)) if stats.dropped_spans == 0 => graph,
        Ok(Err(err)) => return Err(err),
        _ => {
            server.shutdown().await?;
            anyhow::bail!(
                "not through within {wait:?} or refused: {} spans sent to {downstream}, {} dropped, last error {:?}",
                stats.sent_spans,
                stats.dropped_spans,
                stats.last_error
            );
        }
    };
    println!(
        "collector exported {} spans in {} requests",
        stats.sent_spans, stats.sent_requests
    );
    if let Some(receiver) = &receiver {
        println!("\ndownstream received:\n");
        print!("{}", receiver.tree());
    }
    println!("\nrollout graph (rollout-collector show):\n");
    print!("{}", rollout_collector::query::tree::render(&graph));
    server.shutdown().await?;
    if args.data_dir.is_some() {
        println!(
            "\nagain: cargo run -- --data-dir {} show {}",
            data_dir.display(),
            ids.conversation
        );
    }
    Ok(())
}

fn closed_graph(server: &Server, id: &str) -> Option<RolloutGraph> {
    let graph = server.collector.lock().unwrap().graph(id)?;
    (graph.status == "completed").then(|| (*graph).clone())
}

// ---------------------------------------------------------------------------
// The simulated session

/// Ids shaped like Codex's: UUID v7 for the conversation and the turn.
struct Ids {
    conversation: String,
    turn: String,
    call: String,
}

impl Ids {
    fn new() -> Ids {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let uuid7 = |ms: u64| {
            let r = u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes());
            format!(
                "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
                ms >> 16,
                ms & 0xffff,
                (r >> 100) & 0xfff,
                0x8000 | ((r >> 84) & 0x3fff),
                r & 0xffff_ffff_ffff
            )
        };
        Ids {
            conversation: uuid7(ms),
            turn: uuid7(ms + 20),
            call: format!("call_{:x}", ms & 0xff_ffff),
        }
    }
}

/// Emits the session with the OpenTelemetry SDK to `endpoint` (OTLP/gRPC), flushes,
/// and shuts the providers down.
async fn emit_session(endpoint: &str, ids: &Ids) -> anyhow::Result<()> {
    let resource = Resource::builder()
        .with_attributes([
            KeyValue::new("service.name", "codex_exec"),
            KeyValue::new("service.version", VERSION),
            KeyValue::new("env", "dev"),
            KeyValue::new("host.name", "example"),
        ])
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let tracers = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();
    // Codex's records go out in batches; here all in one, at the flush below, so the
    // exit record shares its request with records naming the conversation.
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_secs(3600))
        .build();
    let loggers = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(
            BatchLogProcessor::builder(logs)
                .with_batch_config(batch)
                .build(),
        )
        .build();

    let session = Session {
        ids,
        tracer: tracers.tracer("codex_exec"),
        logger: loggers.logger("codex_otel.log_only"),
        t0: SystemTime::now() - Duration::from_secs(2),
    };
    session.play();
    let exit = loggers.logger("codex_otel::metrics::client");
    let mut record = exit.create_log_record();
    record.set_event_name("event otel/src/metrics/client.rs:324");
    record.set_severity_number(Severity::Debug);
    record.set_severity_text("DEBUG");
    record.set_body("flushing OTEL metrics".into());
    record.set_observed_timestamp(session.at(520));
    exit.emit(record);

    // Spans first, then logs (Codex's exit flush comes last). The SDK blocks on the
    // export, so off the runtime's worker threads.
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        tracers.force_flush()?;
        loggers.force_flush()?;
        tracers.shutdown()?;
        loggers.shutdown()?;
        Ok(())
    })
    .await??;
    Ok(())
}

struct Session<'a> {
    ids: &'a Ids,
    tracer: SdkTracer,
    logger: SdkLogger,
    t0: SystemTime,
}

fn kv(k: &'static str, v: impl Into<Value>) -> KeyValue {
    KeyValue::new(k, v)
}

impl Session<'_> {
    fn at(&self, ms: u64) -> SystemTime {
        self.t0 + Duration::from_millis(ms)
    }

    /// A span from `from` to `to` (ms after t0) with Codex's code-location attributes;
    /// returns its context, the parent of its children and of its log records.
    fn span(
        &self,
        parent: Option<&Context>,
        name: &'static str,
        module: &'static str,
        (from, to): (u64, u64),
        attrs: Vec<KeyValue>,
        events: Vec<Event>,
    ) -> Context {
        let mut all = vec![
            kv("code.module.name", module),
            kv("thread.name", "tokio-rt-worker"),
            kv("target", module),
        ];
        all.extend(attrs);
        all.push(kv("busy_ns", ((to - from) * 200_000) as i64));
        all.push(kv("idle_ns", ((to - from) * 800_000) as i64));
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(if parent.is_none() {
                SpanKind::Server
            } else {
                SpanKind::Internal
            })
            .with_start_time(self.at(from))
            .with_attributes(all)
            .with_events(events);
        let span = match parent {
            Some(cx) => builder.start_with_context(&self.tracer, cx),
            None => builder.start_with_context(&self.tracer, &Context::new()),
        };
        let cx = Context::current_with_span(span);
        cx.span().end_with_timestamp(self.at(to));
        cx
    }

    /// A span event the way Codex's `trace_safe` layer records one.
    fn event(&self, name: &'static str, ms: u64, attrs: Vec<KeyValue>) -> Event {
        let mut all = vec![
            kv("level", "INFO"),
            kv("target", "codex_otel.trace_safe"),
            kv("event.name", name),
        ];
        all.extend(attrs);
        all.push(kv("conversation.id", self.ids.conversation.clone()));
        Event::new(name, self.at(ms), all, 0)
    }

    /// A `codex.*` log record with the attributes every one carries; `span` gives its
    /// trace context (Codex's SSE events have none).
    fn log(
        &self,
        event: &'static str,
        site: &'static str,
        ms: u64,
        span: Option<&SpanContext>,
        attrs: Vec<(&'static str, AnyValue)>,
    ) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(site);
        record.set_severity_number(Severity::Info);
        record.set_severity_text("INFO");
        record.set_observed_timestamp(self.at(ms));
        record.add_attribute("event.name", event);
        record.add_attributes(attrs);
        let ts = iso_ms(self.at(ms));
        let conv = self.ids.conversation.clone();
        record.add_attributes([
            ("event.timestamp", ts),
            ("conversation.id", conv.into()),
            ("app.version", VERSION.into()),
            ("originator", "codex_exec".into()),
            ("terminal.type", "xterm".into()),
            ("model", MODEL.into()),
            ("slug", MODEL.into()),
        ]);
        if let Some(sc) = span {
            record.set_trace_context(sc.trace_id(), sc.span_id(), Some(TraceFlags::SAMPLED));
        }
        self.logger.emit(record);
    }

    fn play(&self) {
        let (conv, turn) = (self.ids.conversation.as_str(), self.ids.turn.as_str());
        let s = |v: &str| AnyValue::from(v.to_string());

        // Thread start: its spans are not exported by `codex exec`, only the log.
        let gen_ids = RandomIdGenerator::default();
        let thread_start = SpanContext::new(
            gen_ids.new_trace_id(),
            gen_ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            Default::default(),
        );
        self.log(
            "codex.conversation_starts",
            "event otel/src/events/session_telemetry.rs:703",
            0,
            Some(&thread_start),
            vec![
                ("provider_name", s("openai")),
                ("reasoning_summary", s("auto")),
                ("approval_policy", s("never")),
                ("sandbox_policy", s("danger-full-access")),
                ("mcp_servers", s("")),
            ],
        );

        // The turn: one trace, rooted at the app-server's `turn/start` request.
        let root = self.span(
            None,
            "turn/start",
            "codex_app_server::app_server_tracing",
            (10, 19),
            vec![
                kv("rpc.system", "jsonrpc"),
                kv("rpc.method", "turn/start"),
                kv("rpc.transport", "in-process"),
                kv("app_server.client_name", "codex_exec"),
                kv("app_server.client_version", VERSION),
                kv("turn.id", turn.to_string()),
            ],
            vec![],
        );
        let ids = |extra: Vec<KeyValue>| {
            let mut v = vec![
                kv("conversation.id", conv.to_string()),
                kv("turn.id", turn.to_string()),
            ];
            v.extend(extra);
            v
        };
        let turn_input = self.span(
            Some(&root),
            "codex.turn_input",
            "codex_core::session::turn_input",
            (12, 18),
            ids(vec![]),
            vec![],
        );
        let (usage_in, usage_cached, usage_out, usage_reason) = (300, 30, 21, 6);
        let task = self.span(
            Some(&turn_input),
            "session_task.turn",
            "codex_core::tasks",
            (18, 480),
            vec![
                kv("thread.id", conv.to_string()),
                kv("turn.id", turn.to_string()),
                kv("model", MODEL),
                kv("codex.turn.reasoning_effort", "default"),
                kv("codex.turn.token_usage.input_tokens", usage_in),
                kv("codex.turn.token_usage.cached_input_tokens", usage_cached),
                kv("codex.turn.token_usage.output_tokens", usage_out),
                kv(
                    "codex.turn.token_usage.reasoning_output_tokens",
                    usage_reason,
                ),
                kv("codex.turn.token_usage.total_tokens", usage_in + usage_out),
            ],
            vec![self.event(
                "codex.turn_profile",
                472,
                vec![
                    kv("turn_id", turn.to_string()),
                    kv("sampling_request_count", "2"),
                ],
            )],
        );
        let run = self.span(
            Some(&task),
            "session_task.run",
            "codex_core::tasks",
            (19, 475),
            vec![],
            vec![],
        );
        let run_turn = self.span(
            Some(&run),
            "run_turn",
            "codex_core::tasks::regular",
            (20, 470),
            ids(vec![]),
            vec![],
        );
        let prompt = "say hello using a tool";
        let hooks = self.span(
            Some(&run_turn),
            "run_hooks_and_record_inputs",
            "codex_core::session::turn",
            (69, 71),
            vec![],
            vec![],
        );
        self.log(
            "codex.user_prompt",
            "event otel/src/events/session_telemetry.rs:1200",
            70,
            Some(hooks.span().span_context()),
            vec![
                ("prompt_length", s(&prompt.len().to_string())),
                ("prompt", s(prompt)),
            ],
        );

        // Two model calls: the first asks for exec_command, the second answers.
        for call in 0..2u64 {
            let b = 80 + call * 330;
            let n = call as i64 + 1;
            let (tin, cached, tout, reason) = (100 * n, 10 * n, 7 * n, 2 * n);
            let rsr = self.span(
                Some(&run_turn),
                "run_sampling_request",
                "codex_core::session::turn",
                (b, b + if call == 0 { 320 } else { 50 }),
                vec![
                    kv("turn_id", turn.to_string()),
                    kv("model", MODEL),
                    kv("cwd", "/home/dev/work"),
                ],
                vec![],
            );
            let trsr = self.span(
                Some(&rsr),
                "try_run_sampling_request",
                "codex_core::session::turn",
                (b + 1, b + if call == 0 { 318 } else { 48 }),
                vec![kv("turn_id", turn.to_string()), kv("model", MODEL)],
                vec![],
            );
            let sampling = self.span(
                Some(&trsr),
                "codex.sampling",
                "codex_core::session::turn",
                (b + 2, b + 46),
                ids(vec![kv("codex.turn.phase", "sampling")]),
                vec![],
            );
            let endpoint = self.span(
                Some(&sampling),
                "endpoint_session.stream_encoded_json_with",
                "codex_api::endpoint::session",
                (b + 5, b + 45),
                vec![kv("http.method", "POST"), kv("api.path", "/responses")],
                vec![self.event(
                    "codex.api_request",
                    b + 45,
                    vec![
                        kv("duration_ms", "40"),
                        kv("http.response.status_code", 200),
                        kv("attempt", 0),
                        kv("endpoint", "/responses"),
                    ],
                )],
            );
            self.log(
                "codex.api_request",
                "event otel/src/events/session_telemetry.rs:803",
                b + 45,
                Some(endpoint.span().span_context()),
                vec![
                    ("duration_ms", s("40")),
                    ("http.response.status_code", 200i64.into()),
                    ("attempt", 0i64.into()),
                    ("endpoint", s("/responses")),
                ],
            );
            let kinds: &[&str] = if call == 0 {
                &[
                    "response.created",
                    "response.output_item.added",
                    "response.output_item.done",
                ]
            } else {
                &[
                    "response.created",
                    "response.output_item.added",
                    "response.output_text.delta",
                    "response.output_item.done",
                ]
            };
            for kind in kinds.iter().chain(&["response.completed"]) {
                self.log(
                    "codex.sse_event",
                    "event otel/src/events/session_telemetry.rs:1089",
                    b + 46,
                    None,
                    vec![("event.kind", s(kind)), ("duration_ms", s("0"))],
                );
            }
            self.log(
                "codex.sse_event",
                "event otel/src/events/session_telemetry.rs:1153",
                b + 46,
                None,
                vec![
                    ("event.kind", s("response.completed")),
                    ("input_token_count", s(&tin.to_string())),
                    ("output_token_count", s(&tout.to_string())),
                    ("cached_token_count", cached.into()),
                    ("cache_write_token_count", 0i64.into()),
                    ("reasoning_token_count", reason.into()),
                    ("tool_token_count", s(&(tin + tout).to_string())),
                    ("ttft_ms", 0i64.into()),
                ],
            );
            if call == 0 {
                self.log(
                    "codex.turn_ttft",
                    "event otel/src/events/session_telemetry.rs:393",
                    b + 46,
                    Some(trsr.span().span_context()),
                    vec![("duration_ms", s("118"))],
                );
            }
            let receiving = self.span(
                Some(&trsr),
                "receiving_stream",
                "codex_core::session::turn",
                (b + 45, b + 50),
                vec![],
                vec![],
            );
            let responses = self.span(
                Some(&receiving),
                "handle_responses",
                "codex_core::session::turn",
                (b + 46, b + 48),
                vec![
                    kv("codex.request.reasoning_effort", "default"),
                    kv("gen_ai.usage.input_tokens", tin),
                    kv("gen_ai.usage.cache_read.input_tokens", cached),
                    kv("gen_ai.usage.output_tokens", tout),
                    kv("codex.usage.reasoning_output_tokens", reason),
                    kv("codex.usage.total_tokens", tin + tout),
                ],
                vec![],
            );
            if call == 0 {
                self.tool_call(&trsr, &responses, b);
            }
        }
    }

    /// The exec_command call of the first response: spans, decision and result.
    fn tool_call(&self, trsr: &Context, responses: &Context, b: u64) {
        let (conv, turn, call) = (
            self.ids.conversation.as_str(),
            self.ids.turn.as_str(),
            self.ids.call.as_str(),
        );
        let s = |v: &str| AnyValue::from(v.to_string());
        let args = format!("{{\"cmd\": \"{CMD}\"}}");
        let call_attrs = || {
            vec![
                kv("call_id", call.to_string()),
                kv("tool_name", "exec_command"),
                kv("turn_id", turn.to_string()),
            ]
        };
        self.span(
            Some(responses),
            "handle_output_item_done",
            "codex_core::stream_events_utils",
            (b + 47, b + 48),
            vec![],
            vec![self.event("codex.tool_call_received", b + 47, call_attrs())],
        );
        let source = self.span(
            Some(trsr),
            "handle_tool_call_with_source",
            "codex_core::tools::parallel",
            (b + 49, b + 306),
            vec![],
            vec![],
        );
        let tool = self.span(
            Some(&source),
            "exec_command",
            "codex_core::tools::parallel",
            (b + 50, b + 305),
            vec![
                kv("tool_name", "exec_command"),
                kv("conversation.id", conv.to_string()),
                kv("turn.id", turn.to_string()),
                kv("turn_id", turn.to_string()),
                kv("tool_source", "direct"),
                kv("call_id", call.to_string()),
                kv("codex.tool.phase", "dispatch"),
                kv("aborted", false),
            ],
            vec![self.event("codex.tool_result_ready", b + 305, call_attrs())],
        );
        let dispatch = self.span(
            Some(&tool),
            "dispatch_tool_call_with_state",
            "codex_core::tools::router",
            (b + 51, b + 304),
            vec![],
            vec![self.event(
                "codex.tool_result",
                b + 300,
                vec![
                    kv("call_id", call.to_string()),
                    kv("tool_name", "exec_command"),
                    kv("success", "true"),
                ],
            )],
        );
        let exec = self.span(
            Some(&dispatch),
            "unified_exec.exec_command",
            "codex_core::unified_exec::process_manager",
            (b + 52, b + 300),
            vec![
                kv("conversation.id", conv.to_string()),
                kv("turn_id", turn.to_string()),
                kv("call_id", call.to_string()),
                kv("unified_exec_process_id", std::process::id().to_string()),
                kv("mode", "resumable"),
                kv("outcome", "exited"),
            ],
            vec![],
        );
        let open = self.span(
            Some(&exec),
            "unified_exec.open_session",
            "codex_core::unified_exec::process_manager",
            (b + 53, b + 200),
            vec![kv("outcome", "completed")],
            vec![],
        );
        self.log(
            "codex.tool_decision",
            "event otel/src/events/session_telemetry.rs:1225",
            b + 53,
            Some(open.span().span_context()),
            vec![
                ("tool_name", s("exec_command")),
                ("tool_namespace", s("functions")),
                ("call_id", s(call)),
                ("decision", s("approved")),
                ("source", s("Config")),
            ],
        );
        self.log(
            "codex.tool_result",
            "event otel/src/tool_result.rs:54",
            b + 300,
            Some(dispatch.span().span_context()),
            vec![
                ("tool_result_seq", s("1")),
                ("tool_name", s("exec_command")),
                ("tool_namespace", s("functions")),
                ("call_id", s(call)),
                ("duration_ms", s("248")),
                ("success", s("true")),
                ("output_truncated", false.into()),
                ("agent_name", s("/root")),
                ("arguments", s(&args)),
                ("output", s(TOOL_OUTPUT)),
                ("mcp_server", s("")),
                ("mcp_server_origin", s("")),
            ],
        );
    }
}

/// ISO-8601 UTC with milliseconds, like Codex's `event.timestamp`.
fn iso_ms(t: SystemTime) -> AnyValue {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    rollout_collector::normalize::time::format_iso8601_ms(ms).into()
}

// ---------------------------------------------------------------------------
// The built-in downstream: an OTLP/gRPC trace receiver that keeps what it gets

#[derive(Clone)]
struct Receiver {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: Vec<Span> = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        println!("downstream <- {} spans: {}", spans.len(), names.join(", "));
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Receiver {
            addr: listener.local_addr()?,
            spans: Arc::default(),
        };
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("downstream receiver stopped: {e}");
            }
        });
        Ok(receiver)
    }

    /// Every span received, as a tree per trace: name, duration, key attributes, status.
    fn tree(&self) -> String {
        let spans = self.spans.lock().unwrap();
        let mut children: HashMap<&[u8], Vec<&Span>> = HashMap::new();
        let known: std::collections::HashSet<&[u8]> =
            spans.iter().map(|s| s.span_id.as_slice()).collect();
        let mut roots = Vec::new();
        for span in spans.iter() {
            if known.contains(span.parent_span_id.as_slice()) {
                children.entry(&span.parent_span_id).or_default().push(span);
            } else {
                roots.push(span);
            }
        }
        let by_start =
            |v: &mut Vec<&Span>| v.sort_by_key(|s| (s.start_time_unix_nano, s.name.clone()));
        by_start(&mut roots);
        children.values_mut().for_each(by_start);
        let mut out = String::new();
        for root in roots {
            out.push_str(&span_line(root));
            print_children(&mut out, &children, root, "");
        }
        out
    }
}

fn print_children(
    out: &mut String,
    children: &HashMap<&[u8], Vec<&Span>>,
    span: &Span,
    indent: &str,
) {
    let Some(kids) = children.get(span.span_id.as_slice()) else {
        return;
    };
    for (i, kid) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(&span_line(kid));
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        print_children(out, children, kid, &deeper);
    }
}

const KEY_ATTRIBUTES: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.call.id",
    "codex.tool.approval.decision",
    "process.exit.code",
    "codex.status",
    "codex.closed_by",
];

fn span_line(span: &Span) -> String {
    let ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6;
    let attrs: Vec<String> = KEY_ATTRIBUTES
        .iter()
        .filter_map(|key| {
            let kv = span.attributes.iter().find(|kv| kv.key == *key)?;
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            Some(format!("{key}={value}"))
        })
        .collect();
    let status = match span.status.as_ref() {
        Some(s) if s.code == StatusCode::Error as i32 => format!("ERROR {}", s.message),
        Some(s) if s.code == StatusCode::Ok as i32 => "OK".into(),
        _ => "UNSET".into(),
    };
    format!(
        "{}  {ms:.0} ms  [{status}]  {}\n",
        span.name,
        attrs.join(" ")
    )
}
