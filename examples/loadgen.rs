//! Load generator: plays synthetic Codex CLI sessions over OTLP/gRPC.
//!
//! Sessions are shaped like the captured fixtures (`fixtures/codex/tool-call-ok`,
//! Codex 0.169.0): each session has a unique `conversation.id`, several turns, and
//! per turn one OTLP trace (`turn/start` root) holding the key spans Codex emits
//! (turn / inference / tool chain) plus configurable filler spans, and the log
//! records Codex emits (scope `codex_otel.log_only`) with the same attribute
//! names and mixed value types. All log records of a turn carry the turn's
//! trace_id/span_id except `codex.sse_event`, as in the real exporter.
//!
//! Records of several concurrent sessions are mixed into each Export request,
//! the way a batching exporter would. Each client owns one gRPC connection and
//! keeps one Export call in flight at a time.
//!
//! ```text
//! cargo run --release --example loadgen -- --endpoint http://127.0.0.1:4317 \
//!     --clients 4 --sessions 2000 --turns 3 --batch 200 [--rate 50000] [--gzip] [--json]
//! ```
//!
//! It reports records sent/accepted, accepted records per second, Export latency
//! (p50/p90/p99/max) and errors grouped by gRPC code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

const APP_VERSION: &str = "0.169.0";
const MODEL: &str = "gpt-5.1-codex";
const TOOL_OUTPUT: &str = "Chunk ID: ab\nWall time: 0.1 seconds\nProcess exited with code 0\nOriginal token count: 3\nOutput:\nhello\n";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "Play synthetic Codex sessions over OTLP/gRPC and report throughput, latency and errors"
)]
struct Args {
    /// OTLP/gRPC endpoint
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Concurrent gRPC clients (one HTTP/2 connection each, one Export in flight each)
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Total sessions to play (default 1000 when --duration is not given)
    #[arg(long)]
    sessions: Option<u64>,
    /// Run for this many seconds instead of a fixed number of sessions
    #[arg(long)]
    duration: Option<f64>,
    /// Turns per session
    #[arg(long, default_value_t = 3)]
    turns: u32,
    /// Target rate in records/s over all clients (0 = flat out)
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Records (log records or spans) per Export request
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// gzip-compress Export requests
    #[arg(long)]
    gzip: bool,
    /// Filler spans per turn (fs.get_metadata / append_items), to approach the real spans-per-turn ratio
    #[arg(long, default_value_t = 30)]
    filler_spans: u32,
    /// Spans per session in startup traces that no session record names (a real `codex exec`
    /// run exports about 230: `load_with_cli_overrides`, `list_models`, fs.* ...). The collector
    /// keeps them as unattributed records waiting for their session for 10 minutes.
    #[arg(long, default_value_t = 0)]
    startup_spans: u32,
    /// Sessions each client interleaves at a time (records of these get mixed into one batch)
    #[arg(long, default_value_t = 8)]
    interleave: usize,
    /// Print a progress line to stderr every second
    #[arg(long)]
    progress: bool,
    /// Also print the summary as one JSON object on stdout
    #[arg(long)]
    json: bool,
    /// Tokio worker threads for the generator (0 = one per core)
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

// ---------------------------------------------------------------------------
// attribute helpers

fn kv_s(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}
fn kv_i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}
fn kv_b(k: &str, v: bool) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(v)),
        }),
        ..Default::default()
    }
}
fn kv_d(k: &str, v: f64) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(v)),
        }),
        ..Default::default()
    }
}

/// ISO-8601 UTC with milliseconds, like Codex's `event.timestamp`.
fn iso_ms(unix_ns: u64) -> String {
    rollout_collector::normalize::time::format_iso8601_ms((unix_ns / 1_000_000) as i64)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// session generator

struct Session {
    idx: u64,
    conv: String,
    turns_done: u32,
    responses: i64,
    cursor_ns: u64,
}

struct Gen {
    rng: u64,
    run_tag: u32,
    turns: u32,
    filler: u32,
    startup: u32,
}

#[derive(Default)]
struct Produced {
    sessions_started: u64,
    turns: u64,
}

impl Gen {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn trace_id(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.next_u64().to_be_bytes());
        v.extend_from_slice(&self.next_u64().to_be_bytes());
        v
    }
    fn span_id(&mut self) -> Vec<u8> {
        self.next_u64().to_be_bytes().to_vec()
    }
    /// UUID-v7-looking id: 01a200f0-<run>-7<run>-8<kind>-<counter>.
    fn uuid(&self, kind: u16, counter: u64) -> String {
        format!(
            "01a200f0-{:04x}-7{:03x}-8{:03x}-{:012x}",
            self.run_tag >> 16,
            self.run_tag & 0xfff,
            kind & 0xfff,
            counter & 0xffff_ffff_ffff
        )
    }

    fn new_session(&mut self, idx: u64) -> Session {
        Session {
            idx,
            conv: self.uuid(0, idx),
            turns_done: 0,
            responses: 0,
            cursor_ns: now_ns(),
        }
    }

    fn log(
        &self,
        s: &Session,
        event: &str,
        site: &str,
        ts: u64,
        extra: Vec<KeyValue>,
        ids: Option<(&[u8], &[u8])>,
    ) -> LogRecord {
        let mut attrs = Vec::with_capacity(extra.len() + 8);
        attrs.push(kv_s("event.name", event));
        attrs.extend(extra);
        attrs.push(kv_s("event.timestamp", iso_ms(ts)));
        attrs.push(kv_s("conversation.id", s.conv.clone()));
        attrs.push(kv_s("app.version", APP_VERSION));
        attrs.push(kv_s("originator", "codex_exec"));
        attrs.push(kv_s("terminal.type", "xterm"));
        attrs.push(kv_s("model", MODEL));
        attrs.push(kv_s("slug", MODEL));
        let (trace_id, span_id, flags) = match ids {
            Some((t, sp)) => (t.to_vec(), sp.to_vec(), 1),
            None => (Vec::new(), Vec::new(), 0),
        };
        LogRecord {
            observed_time_unix_nano: ts,
            severity_number: 9, // INFO
            severity_text: "INFO".into(),
            attributes: attrs,
            flags,
            trace_id,
            span_id,
            event_name: format!("event otel/src/events/session_telemetry.rs:{site}"),
            ..Default::default()
        }
    }

    /// Codex-like span: code location + thread attrs, extras, busy/idle.
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        tid: &[u8],
        sid: &[u8],
        parent: Option<&[u8]>,
        name: &str,
        module: &str,
        start: u64,
        end: u64,
        extra: Vec<KeyValue>,
        events: Vec<span::Event>,
    ) -> Span {
        let mut attrs = Vec::with_capacity(extra.len() + 8);
        let file = module.trim_start_matches("codex_").replace("::", "/");
        attrs.push(kv_s("code.file.path", format!("{file}.rs")));
        attrs.push(kv_s("code.module.name", module));
        attrs.push(kv_i("code.line.number", (self.next_u64() % 4000) as i64));
        attrs.push(kv_i("thread.id", 3));
        attrs.push(kv_s("thread.name", "tokio-rt-worker"));
        attrs.push(kv_s("target", module));
        attrs.extend(extra);
        let dur = end.saturating_sub(start);
        attrs.push(kv_i("busy_ns", (dur / 5) as i64));
        attrs.push(kv_i("idle_ns", (dur - dur / 5) as i64));
        Span {
            trace_id: tid.to_vec(),
            span_id: sid.to_vec(),
            parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
            flags: 257,
            name: name.to_string(),
            kind: if parent.is_none() { 2 } else { 1 }, // SERVER for the root, else INTERNAL
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attrs,
            events,
            status: Some(Default::default()),
            ..Default::default()
        }
    }

    fn event(&self, s: &Session, name: &str, ts: u64, extra: Vec<KeyValue>) -> span::Event {
        let mut attrs = vec![
            kv_s("level", "INFO"),
            kv_s("target", "codex_otel.trace_safe"),
            kv_s("event.name", name),
        ];
        attrs.extend(extra);
        attrs.push(kv_s("conversation.id", s.conv.clone()));
        span::Event {
            time_unix_nano: ts,
            name: name.to_string(),
            attributes: attrs,
            ..Default::default()
        }
    }

    /// The session's startup spans: traces of up to 100 spans (a root and its children)
    /// that name no conversation or turn.
    fn startup_traces(&mut self, t0: u64, spans: &mut Vec<Span>) {
        let mut left = self.startup;
        while left > 0 {
            let in_trace = left.min(100);
            left -= in_trace;
            let tid = self.trace_id();
            let root = self.span_id();
            spans.push(self.span(
                &tid,
                &root,
                None,
                "load_with_cli_overrides",
                "codex_core::config",
                t0,
                t0 + 20 * MS,
                vec![],
                vec![],
            ));
            for i in 1..in_trace {
                let sid = self.span_id();
                let st = t0 + u64::from(i) * 50_000;
                let name = if i % 5 == 0 {
                    "fs.read_file"
                } else {
                    "fs.get_metadata"
                };
                spans.push(self.span(
                    &tid,
                    &sid,
                    Some(&root),
                    name,
                    "codex_exec_server::local_file_system",
                    st,
                    st + 30_000,
                    vec![kv_b("sandboxed", false)],
                    vec![],
                ));
            }
        }
    }

    /// Emit the session start (if first turn) and one turn. Returns true when the session is done.
    fn turn(
        &mut self,
        s: &mut Session,
        logs: &mut Vec<LogRecord>,
        spans: &mut Vec<Span>,
        p: &mut Produced,
    ) -> bool {
        let t0 = s.cursor_ns;
        if s.turns_done == 0 {
            p.sessions_started += 1;
            // thread-start trace: its spans are not exported by `codex exec`, only the log.
            let tid = self.trace_id();
            let sid = self.span_id();
            let auth = auth_attrs();
            let mut extra = vec![
                kv_s("config.legacy_multi_agent_disabled_sources", "none"),
                kv_s("provider_name", "openai"),
            ];
            extra.extend(auth);
            extra.extend([
                kv_s("reasoning_summary", "auto"),
                kv_s("approval_policy", "never"),
                kv_s("sandbox_policy", "danger-full-access"),
                kv_s("mcp_servers", ""),
            ]);
            logs.push(self.log(
                s,
                "codex.conversation_starts",
                "703",
                t0,
                extra,
                Some((&tid, &sid)),
            ));
            self.startup_traces(t0, spans);
        }
        let turn_no = s.turns_done;
        let turn_id = self.uuid(1, (s.idx << 8) | u64::from(turn_no & 0xff));
        let tid = self.trace_id();
        let conv = s.conv.clone();

        let root = self.span_id();
        let dispatch = self.span_id();
        let turn_input = self.span_id();
        let task_turn = self.span_id();
        let task_run = self.span_id();
        let run_turn = self.span_id();
        let hooks = self.span_id();
        let turn_end = t0 + 470 * MS;

        // --- logs + spans: user prompt
        let prompt = format!("turn {turn_no}: say hello using a tool");
        logs.push(self.log(
            s,
            "codex.user_prompt",
            "1200",
            t0 + 60 * MS,
            vec![
                kv_s("prompt_length", prompt.len().to_string()),
                kv_s("prompt", prompt.clone()),
            ],
            Some((&tid, &hooks)),
        ));
        let ev = self.event(
            s,
            "codex.user_prompt",
            t0 + 60 * MS,
            vec![
                kv_s("text_input_count", "1"),
                kv_s("prompt_length", prompt.len().to_string()),
            ],
        );
        let sp = self.span(
            &tid,
            &hooks,
            Some(&run_turn),
            "run_hooks_and_record_inputs",
            "codex_core::session::turn",
            t0 + 59 * MS,
            t0 + 61 * MS,
            vec![],
            vec![ev],
        );
        spans.push(sp);

        // --- two inference calls: the first asks for exec_command, the second answers
        let mut usage = [0i64; 4]; // in, cached, out, reasoning
        for call in 0..2u64 {
            s.responses += 1;
            let n = s.responses;
            let (tin, tcached, tout, treason) = (100 * n, 10 * n, 7 * n, 2 * n);
            usage[0] += tin;
            usage[1] += tcached;
            usage[2] += tout;
            usage[3] += treason;
            let b = t0 + 70 * MS + call * 330 * MS;
            let end = b + if call == 0 { 320 * MS } else { 40 * MS };
            let rsr = self.span_id();
            let trsr = self.span_id();
            let sampling = self.span_id();
            let stream_req = self.span_id();
            let stream_api = self.span_id();
            let resp_stream = self.span_id();
            let endpoint = self.span_id();
            let receiving = self.span_id();

            // codex.api_request (log + span event)
            let api_extra = || {
                let mut v = vec![
                    kv_s("duration_ms", "40"),
                    kv_i("http.response.status_code", 200),
                    kv_i("attempt", 0),
                    kv_b("auth.header_attached", true),
                    kv_s("auth.header_name", "authorization"),
                    kv_b("auth.retry_after_unauthorized", false),
                    kv_s("endpoint", "/responses"),
                ];
                v.extend(auth_attrs());
                v
            };
            logs.push(self.log(
                s,
                "codex.api_request",
                "803",
                b + 45 * MS,
                api_extra(),
                Some((&tid, &endpoint)),
            ));
            let api_ev = self.event(s, "codex.api_request", b + 45 * MS, api_extra());

            // SSE events (no trace ids); the first response has no text delta
            let kinds: &[&str] = if call == 0 {
                &[
                    "response.created",
                    "response.output_item.added",
                    "response.output_item.done",
                    "response.completed",
                ]
            } else {
                &[
                    "response.created",
                    "response.output_item.added",
                    "response.output_text.delta",
                    "response.output_item.done",
                    "response.completed",
                ]
            };
            for k in kinds {
                logs.push(self.log(
                    s,
                    "codex.sse_event",
                    "1089",
                    b + 46 * MS,
                    vec![kv_s("event.kind", *k), kv_s("duration_ms", "0")],
                    None,
                ));
            }
            logs.push(self.log(
                s,
                "codex.sse_event",
                "1153",
                b + 46 * MS,
                vec![
                    kv_s("event.kind", "response.completed"),
                    kv_s("input_token_count", tin.to_string()),
                    kv_s("output_token_count", tout.to_string()),
                    kv_i("cached_token_count", tcached),
                    kv_i("cache_write_token_count", 0),
                    kv_i("reasoning_token_count", treason),
                    kv_s("tool_token_count", (tin + tout).to_string()),
                    kv_i("ttft_ms", 0),
                ],
                None,
            ));
            let mut trsr_events = Vec::new();
            if call == 0 {
                logs.push(self.log(
                    s,
                    "codex.turn_ttft",
                    "393",
                    b + 46 * MS,
                    vec![kv_s("duration_ms", "118")],
                    Some((&tid, &trsr)),
                ));
                trsr_events.push(self.event(
                    s,
                    "codex.turn_ttft",
                    b + 46 * MS,
                    vec![kv_s("duration_ms", "118")],
                ));
            }

            let tid_ = tid.clone();
            let mut push = |g: &mut Gen,
                            sid: &[u8],
                            parent: &[u8],
                            name: &str,
                            module: &str,
                            st: u64,
                            en: u64,
                            extra: Vec<KeyValue>,
                            evs: Vec<span::Event>| {
                spans.push(g.span(&tid_, sid, Some(parent), name, module, st, en, extra, evs));
            };
            push(
                self,
                &rsr,
                &run_turn,
                "run_sampling_request",
                "codex_core::session::turn",
                b,
                end,
                vec![
                    kv_s("turn_id", turn_id.clone()),
                    kv_s("model", MODEL),
                    kv_s("cwd", "/home/dev/work"),
                ],
                vec![],
            );
            push(
                self,
                &trsr,
                &rsr,
                "try_run_sampling_request",
                "codex_core::session::turn",
                b + MS,
                end - MS,
                vec![kv_s("turn_id", turn_id.clone()), kv_s("model", MODEL)],
                trsr_events,
            );
            push(
                self,
                &sampling,
                &trsr,
                "codex.sampling",
                "codex_core::session::turn",
                b + 2 * MS,
                b + 60 * MS,
                vec![
                    kv_s("codex.turn.phase", "sampling"),
                    kv_s("conversation.id", conv.clone()),
                    kv_s("turn.id", turn_id.clone()),
                ],
                vec![],
            );
            push(
                self,
                &stream_req,
                &sampling,
                "stream_request",
                "codex_core::client",
                b + 3 * MS,
                b + 50 * MS,
                vec![],
                vec![],
            );
            push(
                self,
                &stream_api,
                &stream_req,
                "model_client.stream_responses_api",
                "codex_core::client",
                b + 4 * MS,
                b + 50 * MS,
                vec![
                    kv_s("model", MODEL),
                    kv_s("wire_api", "responses"),
                    kv_s("transport", "http"),
                ],
                vec![],
            );
            push(
                self,
                &resp_stream,
                &stream_api,
                "responses.stream_request",
                "codex_api::endpoint::responses",
                b + 4 * MS,
                b + 49 * MS,
                vec![],
                vec![],
            );
            push(
                self,
                &endpoint,
                &resp_stream,
                "endpoint_session.stream_encoded_json_with",
                "codex_api::endpoint::session",
                b + 5 * MS,
                b + 45 * MS,
                vec![kv_s("http.method", "POST"), kv_s("api.path", "/responses")],
                vec![api_ev],
            );
            push(
                self,
                &receiving,
                &trsr,
                "receiving_stream",
                "codex_core::session::turn",
                b + 45 * MS,
                b + 50 * MS,
                vec![],
                vec![],
            );
            let mut last_hr = Vec::new();
            for (i, _) in kinds.iter().enumerate() {
                let hr = self.span_id();
                let st = b + 46 * MS + i as u64 * 100_000;
                let mut extra = vec![
                    kv_s("codex.request.reasoning_effort", "default"),
                    kv_d("codex.response.receive_wait_ms", 0.0046),
                ];
                if i == kinds.len() - 1 {
                    extra.extend([
                        kv_i("gen_ai.usage.input_tokens", tin),
                        kv_i("gen_ai.usage.cache_read.input_tokens", tcached),
                        kv_i("gen_ai.usage.cache_write.input_tokens", 0),
                        kv_i("gen_ai.usage.output_tokens", tout),
                        kv_i("codex.usage.reasoning_output_tokens", treason),
                        kv_i("codex.usage.total_tokens", tin + tout),
                    ]);
                }
                push(
                    self,
                    &hr,
                    &receiving,
                    "handle_responses",
                    "codex_core::session::turn",
                    st,
                    st + 90_000,
                    extra,
                    vec![],
                );
                if i == kinds.len() - 2 {
                    last_hr = hr;
                }
            }
            let item_done = self.span_id();
            let call_id = format!(
                "call_{:07x}{:x}_{}",
                self.run_tag & 0xfff_ffff,
                s.idx,
                turn_no
            );
            let mut item_events = Vec::new();
            if call == 0 {
                item_events.push(self.event(
                    s,
                    "codex.tool_call_received",
                    b + 47 * MS,
                    vec![
                        kv_s("call_id", call_id.clone()),
                        kv_s("tool_name", "exec_command"),
                        kv_s("turn_id", turn_id.clone()),
                    ],
                ));
            }
            push(
                self,
                &item_done,
                &last_hr,
                "handle_output_item_done",
                "codex_core::session::turn",
                b + 47 * MS,
                b + 48 * MS,
                vec![],
                item_events,
            );

            if call == 0 {
                // tool call chain
                let source = self.span_id();
                let tool = self.span_id();
                let dispatch_tool = self.span_id();
                let uexec = self.span_id();
                let open = self.span_id();
                let args = format!("{{\"cmd\": \"echo hello-{turn_no}\"}}");
                logs.push(self.log(
                    s,
                    "codex.tool_decision",
                    "1225",
                    b + 70 * MS,
                    vec![
                        kv_s("tool_name", "exec_command"),
                        kv_s("tool_namespace", "functions"),
                        kv_s("call_id", call_id.clone()),
                        kv_s("decision", "approved"),
                        kv_s("source", "Config"),
                    ],
                    Some((&tid, &open)),
                ));
                let mut tr = self.log(
                    s,
                    "codex.tool_result",
                    "0",
                    b + 300 * MS,
                    vec![
                        kv_i("tool_result_seq", i64::from(turn_no) + 1),
                        kv_s("tool_name", "exec_command"),
                        kv_s("tool_namespace", "functions"),
                        kv_s("call_id", call_id.clone()),
                        kv_s("duration_ms", "250"),
                        kv_s("success", "true"),
                        kv_b("output_truncated", false),
                        kv_s("agent_name", "/root"),
                        kv_s("arguments", args.clone()),
                        kv_s("output", TOOL_OUTPUT),
                        kv_s("mcp_server", ""),
                        kv_s("mcp_server_origin", ""),
                    ],
                    Some((&tid, &dispatch_tool)),
                );
                tr.event_name = "event otel/src/tool_result.rs:54".into();
                logs.push(tr);
                let tr_ev = self.event(
                    s,
                    "codex.tool_result",
                    b + 300 * MS,
                    vec![
                        kv_s("call_id", call_id.clone()),
                        kv_s("tool_name", "exec_command"),
                        kv_s("success", "true"),
                        kv_i("arguments_length", args.len() as i64),
                        kv_i("output_length", TOOL_OUTPUT.len() as i64),
                    ],
                );
                let ready_ev = self.event(
                    s,
                    "codex.tool_result_ready",
                    b + 305 * MS,
                    vec![
                        kv_d("dispatch_to_result_ready_ms", 255.0),
                        kv_s("call_id", call_id.clone()),
                    ],
                );
                push(
                    self,
                    &source,
                    &trsr,
                    "handle_tool_call_with_source",
                    "codex_core::tools::parallel",
                    b + 49 * MS,
                    b + 306 * MS,
                    vec![],
                    vec![],
                );
                push(
                    self,
                    &tool,
                    &source,
                    "exec_command",
                    "codex_core::tools::parallel",
                    b + 50 * MS,
                    b + 305 * MS,
                    vec![
                        kv_s("tool_name", "exec_command"),
                        kv_s("conversation.id", conv.clone()),
                        kv_s("turn.id", turn_id.clone()),
                        kv_s("turn_id", turn_id.clone()),
                        kv_s("tool_source", "direct"),
                        kv_s("call_id", call_id.clone()),
                        kv_s("codex.tool.phase", "dispatch"),
                        kv_b("aborted", false),
                    ],
                    vec![ready_ev],
                );
                push(
                    self,
                    &dispatch_tool,
                    &tool,
                    "dispatch_tool_call_with_state",
                    "codex_core::tools::router",
                    b + 51 * MS,
                    b + 304 * MS,
                    vec![],
                    vec![tr_ev],
                );
                push(
                    self,
                    &uexec,
                    &dispatch_tool,
                    "unified_exec.exec_command",
                    "codex_core::unified_exec::process_manager",
                    b + 52 * MS,
                    b + 300 * MS,
                    vec![
                        kv_s("conversation.id", conv.clone()),
                        kv_s("turn_id", turn_id.clone()),
                        kv_s("call_id", call_id.clone()),
                        kv_i("unified_exec_process_id", 40_000 + i64::from(turn_no)),
                        kv_s("mode", "resumable"),
                        kv_s("outcome", "exited"),
                    ],
                    vec![],
                );
                push(
                    self,
                    &open,
                    &uexec,
                    "unified_exec.open_session",
                    "codex_core::unified_exec::process_manager",
                    b + 53 * MS,
                    b + 200 * MS,
                    vec![kv_s("outcome", "completed")],
                    vec![],
                );
            }
        }

        // --- turn skeleton
        let turn_profile = self.event(
            s,
            "codex.turn_profile",
            turn_end - 8 * MS,
            vec![
                kv_s("turn_id", turn_id.clone()),
                kv_s("sampling_request_count", "2"),
                kv_s("sampling_retry_count", "0"),
            ],
        );
        spans.push(self.span(
            &tid,
            &root,
            None,
            "turn/start",
            "codex_app_server::app_server_tracing",
            t0,
            t0 + 9 * MS,
            vec![
                kv_s("rpc.system", "jsonrpc"),
                kv_s("rpc.method", "turn/start"),
                kv_s("rpc.transport", "in-process"),
                kv_s("rpc.request_id", (turn_no + 2).to_string()),
                kv_s("app_server.connection_id", "0"),
                kv_s("app_server.api_version", "v2"),
                kv_s("app_server.client_name", "codex_exec"),
                kv_s("app_server.client_version", APP_VERSION),
                kv_s("turn.id", turn_id.clone()),
            ],
            vec![],
        ));
        spans.push(self.span(
            &tid,
            &dispatch,
            Some(&root),
            "op.dispatch.turn_input",
            "codex_core::session",
            t0 + MS,
            t0 + 8 * MS,
            vec![],
            vec![],
        ));
        spans.push(self.span(
            &tid,
            &turn_input,
            Some(&dispatch),
            "codex.turn_input",
            "codex_core::session::turn_input",
            t0 + 2 * MS,
            t0 + 8 * MS,
            vec![
                kv_s("conversation.id", conv.clone()),
                kv_s("turn.id", turn_id.clone()),
            ],
            vec![],
        ));
        spans.push(self.span(
            &tid,
            &task_turn,
            Some(&turn_input),
            "session_task.turn",
            "codex_core::tasks",
            t0 + 8 * MS,
            turn_end,
            vec![
                kv_s("thread.id", conv.clone()),
                kv_s("turn.id", turn_id.clone()),
                kv_s("model", MODEL),
                kv_s("codex.turn.reasoning_effort", "default"),
                kv_i("codex.turn.token_usage.input_tokens", usage[0]),
                kv_i("codex.turn.token_usage.cached_input_tokens", usage[1]),
                kv_i("codex.turn.token_usage.cache_write_input_tokens", 0),
                kv_i(
                    "codex.turn.token_usage.non_cached_input_tokens",
                    usage[0] - usage[1],
                ),
                kv_i("codex.turn.token_usage.output_tokens", usage[2]),
                kv_i("codex.turn.token_usage.reasoning_output_tokens", usage[3]),
                kv_i("codex.turn.token_usage.total_tokens", usage[0] + usage[2]),
            ],
            vec![turn_profile],
        ));
        spans.push(self.span(
            &tid,
            &task_run,
            Some(&task_turn),
            "session_task.run",
            "codex_core::tasks",
            t0 + 9 * MS,
            turn_end - 5 * MS,
            vec![],
            vec![],
        ));
        spans.push(self.span(
            &tid,
            &run_turn,
            Some(&task_run),
            "run_turn",
            "codex_core::session::turn",
            t0 + 10 * MS,
            turn_end - 10 * MS,
            vec![
                kv_s("conversation.id", conv.clone()),
                kv_s("turn.id", turn_id.clone()),
            ],
            vec![],
        ));

        // --- filler spans (2/3 fs.get_metadata, 1/3 append_items, like the capture)
        for i in 0..self.filler {
            let sid = self.span_id();
            let st = t0 + 10 * MS + u64::from(i) * (450 * MS / u64::from(self.filler.max(1)));
            let sp = if i % 3 == 2 {
                self.span(
                    &tid,
                    &sid,
                    Some(&task_run),
                    "append_items",
                    "codex_thread_store::live_thread",
                    st,
                    st + 10_000,
                    vec![kv_s("item_count", "1")],
                    vec![],
                )
            } else {
                self.span(
                    &tid,
                    &sid,
                    Some(&run_turn),
                    "fs.get_metadata",
                    "codex_exec_server::local_file_system",
                    st,
                    st + 130_000,
                    vec![kv_b("sandboxed", false)],
                    vec![],
                )
            };
            spans.push(sp);
        }

        s.turns_done += 1;
        s.cursor_ns = turn_end + 2_000 * MS; // user think time before the next turn
        p.turns += 1;
        s.turns_done >= self.turns
    }
}

fn auth_attrs() -> Vec<KeyValue> {
    vec![
        kv_b("auth.env_openai_api_key_present", false),
        kv_b("auth.env_codex_api_key_present", false),
        kv_b("auth.env_codex_api_key_enabled", true),
        kv_s("auth.env_provider_key_name", "configured"),
        kv_b("auth.env_provider_key_present", true),
        kv_b("auth.env_refresh_token_url_override_present", false),
    ]
}

fn common_resource(logs: bool) -> Resource {
    let mut attrs = vec![
        kv_s("service.name", "codex_exec"),
        kv_s("service.version", APP_VERSION),
        kv_s("env", "dev"),
        kv_s("telemetry.sdk.name", "opentelemetry"),
        kv_s("telemetry.sdk.language", "rust"),
        kv_s("telemetry.sdk.version", "0.31.0"),
    ];
    if logs {
        attrs.push(kv_s("host.name", "loadgen"));
    }
    Resource {
        attributes: attrs,
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(common_resource(true)),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "codex_otel.log_only".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn traces_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(common_resource(false)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "codex_exec".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------------------
// clients

struct Shared {
    next_session: AtomicU64,
    session_limit: Option<u64>,
    stop: AtomicBool,
    sent: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.next_session.fetch_add(1, Ordering::Relaxed);
        match self.session_limit {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    requests: u64,
    log_requests: u64,
    span_requests: u64,
    logs_sent: u64,
    spans_sent: u64,
    accepted: u64,
    rejected: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    /// The first message seen for each code: what went wrong, not only how often.
    error_messages: BTreeMap<String, String>,
    produced: Produced,
}

struct Client {
    logs: LogsServiceClient<Channel>,
    traces: TraceServiceClient<Channel>,
    interval: Option<tokio::time::Interval>,
}

/// Counts one Export of `n` records sent at `started`: latency, and accepted or
/// rejected records (`Ok`: how many the collector reported rejected), or the error.
fn account(st: &mut Stats, sh: &Shared, n: u64, started: Instant, res: Result<i64, tonic::Status>) {
    st.requests += 1;
    sh.sent.fetch_add(n, Ordering::Relaxed);
    st.latencies_us
        .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    match res {
        Ok(rejected) => {
            let rej = (rejected.max(0) as u64).min(n);
            st.rejected += rej;
            st.accepted += n - rej;
            sh.accepted.fetch_add(n - rej, Ordering::Relaxed);
        }
        Err(e) => {
            let code = format!("{:?}", e.code());
            st.error_messages
                .entry(code.clone())
                .or_insert_with(|| e.message().to_string());
            *st.errors.entry(code).or_default() += 1;
            sh.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Client {
    async fn pace(&mut self) {
        if let Some(iv) = self.interval.as_mut() {
            iv.tick().await;
        }
    }

    async fn send_logs(&mut self, recs: Vec<LogRecord>, st: &mut Stats, sh: &Shared) {
        self.pace().await;
        let n = recs.len() as u64;
        let req = logs_request(recs);
        st.bytes += req.encoded_len() as u64;
        st.log_requests += 1;
        st.logs_sent += n;
        let t = Instant::now();
        let res = self.logs.export(req).await.map(|r| {
            r.into_inner()
                .partial_success
                .map_or(0, |p| p.rejected_log_records)
        });
        account(st, sh, n, t, res);
    }

    async fn send_spans(&mut self, recs: Vec<Span>, st: &mut Stats, sh: &Shared) {
        self.pace().await;
        let n = recs.len() as u64;
        let req = traces_request(recs);
        st.bytes += req.encoded_len() as u64;
        st.span_requests += 1;
        st.spans_sent += n;
        let t = Instant::now();
        let res = self.traces.export(req).await.map(|r| {
            r.into_inner()
                .partial_success
                .map_or(0, |p| p.rejected_spans)
        });
        account(st, sh, n, t, res);
    }
}

async fn run_client(
    id: usize,
    args: Arc<Args>,
    channel: Channel,
    sh: Arc<Shared>,
    run_tag: u32,
) -> Stats {
    let mut st = Stats::default();
    let mut logs = LogsServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut traces = TraceServiceClient::new(channel).max_decoding_message_size(64 << 20);
    if args.gzip {
        logs = logs
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        traces = traces
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
    }
    let interval = (args.rate > 0.0).then(|| {
        let per_client = args.rate / args.clients as f64;
        let period = Duration::from_secs_f64(args.batch as f64 / per_client);
        // Clients start evenly spread over one period: their Exports arrive spaced
        // out, not in a burst of one per client on every tick.
        let offset = period.mul_f64(id as f64 / args.clients.max(1) as f64);
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        // Burst: after a slow Export, catch up so the average rate stays on target.
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        iv
    });
    let mut client = Client {
        logs,
        traces,
        interval,
    };
    let mut g = Gen {
        rng: (run_tag as u64) << 32 ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now_ns(),
        run_tag,
        turns: args.turns.max(1),
        filler: args.filler_spans,
        startup: args.startup_spans,
    };
    let batch = args.batch.max(1);
    let mut active: Vec<Session> = Vec::new();
    let mut log_buf: Vec<LogRecord> = Vec::with_capacity(batch * 2);
    let mut span_buf: Vec<Span> = Vec::with_capacity(batch * 2);
    let mut rr = 0usize;
    let mut exhausted = false;
    loop {
        // produce until one buffer holds a full batch
        while log_buf.len() < batch && span_buf.len() < batch && !exhausted {
            while active.len() < args.interleave.max(1) {
                match sh.claim() {
                    Some(i) => {
                        let s = g.new_session(i);
                        active.push(s);
                    }
                    None => break,
                }
            }
            if active.is_empty() {
                exhausted = true;
                break;
            }
            rr = (rr + 1) % active.len();
            let done = g.turn(
                &mut active[rr],
                &mut log_buf,
                &mut span_buf,
                &mut st.produced,
            );
            if done {
                active.swap_remove(rr);
            }
            if sh.stop.load(Ordering::Relaxed) {
                exhausted = true;
            }
        }
        if log_buf.len() >= batch {
            let rest = log_buf.split_off(batch);
            let full = std::mem::replace(&mut log_buf, rest);
            client.send_logs(full, &mut st, &sh).await;
        } else if span_buf.len() >= batch {
            let rest = span_buf.split_off(batch);
            let full = std::mem::replace(&mut span_buf, rest);
            client.send_spans(full, &mut st, &sh).await;
        } else if exhausted {
            // flush what is left (partial batches), then stop
            if !log_buf.is_empty() {
                let full = std::mem::take(&mut log_buf);
                client.send_logs(full, &mut st, &sh).await;
            }
            if !span_buf.is_empty() {
                let full = std::mem::take(&mut span_buf);
                client.send_spans(full, &mut st, &sh).await;
            }
            break;
        }
        if sh.stop.load(Ordering::Relaxed) {
            exhausted = true;
        }
    }
    st
}

fn cpu_seconds() -> Option<f64> {
    // utime + stime from /proc/self/stat, in clock ticks (USER_HZ = 100 on Linux)
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let stt: f64 = f.get(12)?.parse().ok()?;
    Some((ut + stt) / 100.0)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = rt.build().expect("tokio runtime");
    std::process::exit(rt.block_on(run(args)));
}

async fn run(args: Args) -> i32 {
    let args = Arc::new(args);
    let clients = args.clients.max(1);
    let session_limit = match (args.sessions, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1000),
    };
    let run_tag = (now_ns() / 1000) as u32 ^ std::process::id().rotate_left(16);

    // one connection per client
    let mut channels = Vec::with_capacity(clients);
    for _ in 0..clients {
        let ep = match Endpoint::from_shared(args.endpoint.clone()) {
            Ok(e) => e.tcp_nodelay(true).connect_timeout(Duration::from_secs(5)),
            Err(e) => {
                eprintln!("loadgen: bad endpoint {}: {e}", args.endpoint);
                return 2;
            }
        };
        match ep.connect().await {
            Ok(c) => channels.push(c),
            Err(e) => {
                eprintln!("loadgen: cannot connect to {}: {e}", args.endpoint);
                return 1;
            }
        }
    }

    let sh = Arc::new(Shared {
        next_session: AtomicU64::new(0),
        session_limit,
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    if let Some(d) = args.duration {
        let sh = sh.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(d)).await;
            sh.stop.store(true, Ordering::Relaxed);
        });
    }
    let progress = args.progress.then(|| {
        let sh = sh.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_secs(1));
            iv.tick().await;
            let mut last = 0u64;
            loop {
                iv.tick().await;
                let acc = sh.accepted.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>5.1}s] sent {} accepted {} ({} rec/s) errors {}",
                    start.elapsed().as_secs_f64(),
                    sh.sent.load(Ordering::Relaxed),
                    acc,
                    acc - last,
                    sh.errors.load(Ordering::Relaxed)
                );
                last = acc;
            }
        })
    });

    let handles: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| tokio::spawn(run_client(i, args.clone(), ch, sh.clone(), run_tag)))
        .collect();
    let mut total = Stats::default();
    for h in handles {
        let s = h.await.expect("client task panicked");
        total.latencies_us.extend(s.latencies_us);
        total.requests += s.requests;
        total.log_requests += s.log_requests;
        total.span_requests += s.span_requests;
        total.logs_sent += s.logs_sent;
        total.spans_sent += s.spans_sent;
        total.accepted += s.accepted;
        total.rejected += s.rejected;
        total.bytes += s.bytes;
        total.produced.sessions_started += s.produced.sessions_started;
        total.produced.turns += s.produced.turns;
        for (k, v) in s.errors {
            *total.errors.entry(k).or_default() += v;
        }
        for (k, message) in s.error_messages {
            total.error_messages.entry(k).or_insert(message);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    total.latencies_us.sort_unstable();
    let l = &total.latencies_us;
    let (p50, p90, p99) = (pct(l, 50.0), pct(l, 90.0), pct(l, 99.0));
    let max = l.last().map(|&v| f64::from(v) / 1000.0).unwrap_or(0.0);
    let sent = total.logs_sent + total.spans_sent;
    let acc_rate = total.accepted as f64 / elapsed.max(1e-9);
    let failed: u64 = total.errors.values().sum();
    let rate_s = if args.rate > 0.0 {
        format!("{} rec/s", args.rate)
    } else {
        "flat out".into()
    };

    println!("loadgen summary");
    println!(
        "  target      {}  clients={} batch={} gzip={} turns/session={} filler_spans={} startup_spans={} rate={}",
        args.endpoint,
        clients,
        args.batch,
        args.gzip,
        args.turns,
        args.filler_spans,
        args.startup_spans,
        rate_s
    );
    println!(
        "  generated   {} sessions, {} turns",
        total.produced.sessions_started, total.produced.turns
    );
    println!(
        "  requests    {} ({} logs, {} traces), {:.1} MiB protobuf ({:.1} MiB/s, before gzip)",
        total.requests,
        total.log_requests,
        total.span_requests,
        total.bytes as f64 / 1048576.0,
        total.bytes as f64 / 1048576.0 / elapsed.max(1e-9)
    );
    println!(
        "  records     sent {} ({} logs, {} spans), accepted {}, rejected {}",
        sent, total.logs_sent, total.spans_sent, total.accepted, total.rejected
    );
    println!("  elapsed     {elapsed:.2} s");
    println!("  throughput  {acc_rate:.0} accepted records/s");
    println!(
        "  latency     Export p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    if total.errors.is_empty() {
        println!("  errors      none");
    } else {
        let e: Vec<String> = total
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  errors      {failed} failed requests: {}", e.join(", "));
        for (code, message) in &total.error_messages {
            println!("              first {code}: {message}");
        }
    }
    if let Some(c) = cpu {
        println!(
            "  loadgen cpu {c:.2} s ({:.0}% of one core)",
            100.0 * c / elapsed.max(1e-9)
        );
    }
    if args.json {
        let errs: Vec<String> = total
            .errors
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        let messages: Vec<String> = total
            .error_messages
            .iter()
            .map(|(k, m)| format!("{}:{}", json_str(k), json_str(m)))
            .collect();
        println!(
            "{{\"endpoint\":{},\"clients\":{},\"batch\":{},\"gzip\":{},\"target_rate\":{},\"turns_per_session\":{},\"filler_spans\":{},\"startup_spans\":{},\
\"sessions\":{},\"turns\":{},\"requests\":{},\"log_requests\":{},\"trace_requests\":{},\"bytes\":{},\
\"records_sent\":{},\"logs_sent\":{},\"spans_sent\":{},\"records_accepted\":{},\"records_rejected\":{},\
\"elapsed_s\":{:.3},\"accepted_per_s\":{:.1},\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},\
\"failed_requests\":{},\"errors\":{{{}}},\"error_messages\":{{{}}},\"loadgen_cpu_s\":{}}}",
            json_str(&args.endpoint),
            clients,
            args.batch,
            args.gzip,
            args.rate,
            args.turns,
            args.filler_spans,
            args.startup_spans,
            total.produced.sessions_started,
            total.produced.turns,
            total.requests,
            total.log_requests,
            total.span_requests,
            total.bytes,
            sent,
            total.logs_sent,
            total.spans_sent,
            total.accepted,
            total.rejected,
            elapsed,
            acc_rate,
            p50,
            p90,
            p99,
            max,
            failed,
            errs.join(","),
            messages.join(","),
            cpu.map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "null".into()),
        );
    }
    if failed > 0 { 1 } else { 0 }
}
