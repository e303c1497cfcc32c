//! A rollout graph becomes enriched, semantic spans: a pure function, no I/O.
//!
//! ```text
//! invoke_agent codex            thread          AGENT  (gen_ai.conversation.id, totals)
//!  └ turn                       codex turn      CHAIN  (turn id, status, tokens, ttft)
//!     ├ chat {model}            inference call  LLM    (gen_ai.*, attempts, HTTP status)
//!     └ execute_tool {tool}     tool call       TOOL   (gen_ai.tool.*, approval, exit code)
//! ```
//!
//! A sub-agent's thread span is the child of the `execute_tool` span that spawned it
//! (when the graph knows it), else of the root thread's span. Only *complete* objects
//! become spans: an object whose execution is no longer `running`, or any object of a
//! rollout the collector has closed (process exit, idle timeout). A turn the reducer
//! named from log records alone, and its calls, wait until the turn's spans rename it or
//! the rollout is closed (see `Builder::turn_may_be_renamed`). Ids come from
//! [`super::ids`], so the same graph always gives the same spans.
//!
//! Attributes follow the OpenTelemetry GenAI conventions and OpenInference; facts only
//! Codex has are `codex.*`. Content (prompt text, tool arguments and output, model
//! output) is added only with [`SpanOptions::include_content`], each value capped at
//! [`SpanOptions::content_cap_bytes`].

use super::ids;
use crate::normalize::{ExecutionStatus, TokenUsage};
use crate::reduce::graph::{
    AgentOrigin, CodexTurn, Execution, InferenceCall, RolloutGraph, Thread, ToolCall, ToolCallKind,
    ToolCallSummary, TraceAnchor,
};
use crate::reduce::turns::is_provisional_turn_id;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    Span, Status,
    span::{Event, Link, SpanKind},
    status::StatusCode,
};

/// The instrumentation scope of every enriched span.
pub const SCOPE_NAME: &str = "rollout-collector/export";
/// `service.name` of the resource of every enriched span.
pub const SERVICE_NAME: &str = "rollout-collector";
/// Cap on error messages put in span status (they are not content, but can be long).
const ERROR_MESSAGE_CAP: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanOptions {
    /// Put prompt text, tool arguments, tool output and model output on spans.
    pub include_content: bool,
    /// Maximum bytes of each content value (cut on a UTF-8 boundary).
    pub content_cap_bytes: usize,
}

impl Default for SpanOptions {
    fn default() -> Self {
        SpanOptions {
            include_content: false,
            content_cap_bytes: 8 * 1024,
        }
    }
}

/// The resource of enriched spans: the collector itself. Rollout facts are on spans.
pub fn resource() -> Resource {
    Resource {
        attributes: vec![
            kv_str("service.name", SERVICE_NAME),
            kv_str("service.version", env!("CARGO_PKG_VERSION")),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// The instrumentation scope of enriched spans.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// The spans of every complete object of `graph`, parents before children where both
/// are complete. Running objects of a running rollout are left out; offer the graph
/// again later.
pub fn build_spans(graph: &RolloutGraph, opts: &SpanOptions) -> Vec<Span> {
    build_spans_where(graph, opts, &|_| true)
}

/// [`build_spans`], building only the spans whose span id `wanted` accepts (checked
/// before the span is built, so skipping already-sent objects is cheap).
pub fn build_spans_where(
    graph: &RolloutGraph,
    opts: &SpanOptions,
    wanted: &dyn Fn(&[u8]) -> bool,
) -> Vec<Span> {
    let b = Builder {
        graph,
        opts,
        trace_id: ids::trace_id(&graph.rollout_id).to_vec(),
    };
    let want = |kind: &str, id: &str| wanted(&b.span_id(kind, id));
    let mut spans = Vec::new();
    for thread in graph.threads.values() {
        if want(ids::KIND_THREAD, &thread.thread_id)
            && let Some(span) = b.thread_span(thread)
        {
            spans.push(span);
        }
    }
    for turn in graph.codex_turns.values() {
        if want(ids::KIND_TURN, &turn.codex_turn_id)
            && let Some(span) = b.turn_span(turn)
        {
            spans.push(span);
        }
    }
    for call in graph.inference_calls.values() {
        if want(ids::KIND_INFERENCE, &call.inference_call_id)
            && let Some(span) = b.chat_span(call)
        {
            spans.push(span);
        }
    }
    for call in graph.tool_calls.values() {
        if want(ids::KIND_TOOL, &call.tool_call_id)
            && let Some(span) = b.tool_span(call)
        {
            spans.push(span);
        }
    }
    spans
}

struct Builder<'a> {
    graph: &'a RolloutGraph,
    opts: &'a SpanOptions,
    trace_id: Vec<u8>,
}

/// When and how a complete object ended.
struct Closed {
    end_ms: i64,
    status: ExecutionStatus,
}

impl Builder<'_> {
    fn span_id(&self, kind: &str, object_id: &str) -> Vec<u8> {
        ids::span_id(&self.graph.rollout_id, kind, object_id).to_vec()
    }

    fn rollout_closed(&self) -> bool {
        self.graph.status == "completed"
    }

    /// `Some` once the object is complete: its execution ended, or the rollout was
    /// closed around it (then it ends when the rollout ended, status still `running`).
    fn closed(&self, exec: &Execution) -> Option<Closed> {
        let start = exec.started_at_unix_ms;
        if exec.status != ExecutionStatus::Running {
            let end = exec
                .ended_at_unix_ms
                .or(self.graph.ended_at_unix_ms)
                .unwrap_or(start);
            return Some(Closed {
                end_ms: end.max(start),
                status: exec.status,
            });
        }
        if self.rollout_closed() {
            let end = exec
                .ended_at_unix_ms
                .or(self.graph.ended_at_unix_ms)
                .unwrap_or(start);
            return Some(Closed {
                end_ms: end.max(start),
                status: exec.status,
            });
        }
        None
    }

    fn base_span(
        &self,
        name: String,
        kind: SpanKind,
        span_id: Vec<u8>,
        parent_span_id: Vec<u8>,
        start_ms: i64,
        closed: &Closed,
    ) -> Span {
        Span {
            trace_id: self.trace_id.clone(),
            span_id,
            trace_state: String::new(),
            parent_span_id,
            // W3C `sampled`; bit 8: whether the parent is remote is known (it is not).
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: ms_to_ns(start_ms),
            end_time_unix_nano: ms_to_ns(closed.end_ms),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: None,
        }
    }

    fn common_attrs(&self, attrs: &mut Vec<KeyValue>, thread_id: &str) {
        attrs.push(kv_str("session.id", &self.graph.rollout_id));
        attrs.push(kv_str("gen_ai.conversation.id", thread_id));
        attrs.push(kv_str("codex.rollout.id", &self.graph.rollout_id));
        attrs.push(kv_str("codex.thread.id", thread_id));
    }

    fn thread_parent(&self, thread: &Thread) -> Vec<u8> {
        if thread.thread_id == self.graph.root_thread_id {
            return Vec::new();
        }
        if let Some(tool_call_id) = self.spawning_tool_call(thread) {
            return self.span_id(ids::KIND_TOOL, &tool_call_id);
        }
        if self.graph.threads.contains_key(&self.graph.root_thread_id) {
            return self.span_id(ids::KIND_THREAD, &self.graph.root_thread_id);
        }
        match &thread.origin {
            AgentOrigin::Spawned {
                parent_thread_id, ..
            } if self.graph.threads.contains_key(parent_thread_id) => {
                self.span_id(ids::KIND_THREAD, parent_thread_id)
            }
            _ => Vec::new(),
        }
    }

    /// The tool call that spawned `thread`: from its origin, else a `spawn_agent` edge.
    fn spawning_tool_call(&self, thread: &Thread) -> Option<String> {
        if let AgentOrigin::Spawned {
            spawned_by_tool_call_id: Some(id),
            ..
        } = &thread.origin
            && self.graph.tool_calls.contains_key(id)
        {
            return Some(id.clone());
        }
        self.graph
            .interaction_edges
            .values()
            .find_map(|edge| match (&edge.source, &edge.target) {
                (TraceAnchor::ToolCall { tool_call_id }, TraceAnchor::Thread { thread_id })
                    if edge.kind == "spawn_agent"
                        && *thread_id == thread.thread_id
                        && self.graph.tool_calls.contains_key(tool_call_id) =>
                {
                    Some(tool_call_id.clone())
                }
                _ => None,
            })
    }

    fn thread_span(&self, thread: &Thread) -> Option<Span> {
        let closed = self.closed(&thread.execution)?;
        let mut span = self.base_span(
            "invoke_agent codex".to_string(),
            SpanKind::Internal,
            self.span_id(ids::KIND_THREAD, &thread.thread_id),
            self.thread_parent(thread),
            thread.execution.started_at_unix_ms,
            &closed,
        );
        let a = &mut span.attributes;
        a.push(kv_str("gen_ai.operation.name", "invoke_agent"));
        a.push(kv_str("gen_ai.agent.name", "codex"));
        a.push(kv_str("gen_ai.agent.id", &thread.thread_id));
        self.common_attrs(a, &thread.thread_id);
        a.push(kv_str("openinference.span.kind", "AGENT"));
        a.push(kv_str("codex.agent.path", &thread.agent_path));
        if let Some(nickname) = &thread.nickname {
            a.push(kv_str("codex.agent.nickname", nickname));
        }
        if let AgentOrigin::Spawned {
            parent_thread_id, ..
        } = &thread.origin
        {
            a.push(kv_str("codex.agent.parent_thread_id", parent_thread_id));
        }
        if let Some(provider) = &thread.provider_name {
            a.push(kv_str("gen_ai.provider.name", provider));
            a.push(kv_str("llm.provider", provider));
        }
        if let Some(model) = &thread.default_model {
            a.push(kv_str("gen_ai.request.model", model));
            a.push(kv_str("llm.model_name", model));
        }
        let t = &self.graph.telemetry;
        if let Some(v) = &t.codex_version {
            a.push(kv_str("codex.version", v));
        }
        if let Some(v) = &t.originator {
            a.push(kv_str("codex.originator", v));
        }
        if let Some(v) = &t.closed_by {
            a.push(kv_str("codex.closed_by", v));
        }
        let mut usage = TokenUsage::default();
        let mut inference_calls = 0;
        for call in self
            .graph
            .inference_calls
            .values()
            .filter(|c| c.thread_id == thread.thread_id)
        {
            inference_calls += 1;
            if let Some(u) = &call.usage {
                usage.add(u);
            }
        }
        let turns = self
            .graph
            .codex_turns
            .values()
            .filter(|t| t.thread_id == thread.thread_id)
            .count();
        let tools = self
            .graph
            .tool_calls
            .values()
            .filter(|t| t.thread_id == thread.thread_id)
            .count();
        a.push(kv_i64("codex.turn_count", turns as i64));
        a.push(kv_i64("codex.inference_call_count", inference_calls));
        a.push(kv_i64("codex.tool_call_count", tools as i64));
        usage_attrs(a, &usage);
        status_attrs(&mut span, &closed, None, None);
        Some(span)
    }

    fn turn_span(&self, turn: &CodexTurn) -> Option<Span> {
        if self.turn_may_be_renamed(Some(&turn.codex_turn_id)) {
            return None;
        }
        let closed = self.closed(&turn.execution)?;
        let parent = self.parent_thread_span(&turn.thread_id);
        let mut span = self.base_span(
            "turn".to_string(),
            SpanKind::Internal,
            self.span_id(ids::KIND_TURN, &turn.codex_turn_id),
            parent,
            turn.execution.started_at_unix_ms,
            &closed,
        );
        let a = &mut span.attributes;
        self.common_attrs(a, &turn.thread_id);
        a.push(kv_str("openinference.span.kind", "CHAIN"));
        a.push(kv_str("codex.turn.id", &turn.codex_turn_id));
        a.push(kv_str("codex.turn.status", status_name(closed.status)));
        if let Some(v) = &turn.closed_by {
            a.push(kv_str("codex.turn.closed_by", v));
        }
        if let Some(v) = turn.ttft_ms {
            a.push(kv_i64("codex.turn.ttft_ms", v));
        }
        if let Some(v) = &turn.otel_trace_id {
            a.push(kv_str("codex.otel.trace_id", v));
        }
        let calls = self
            .graph
            .inference_calls
            .values()
            .filter(|c| c.codex_turn_id.as_ref() == Some(&turn.codex_turn_id));
        a.push(kv_i64("codex.inference_call_count", calls.count() as i64));
        usage_attrs(a, &turn.usage);
        if self.opts.include_content {
            let text = self.items_text(&turn.input_item_ids, Some("user"));
            if !text.is_empty() {
                a.push(kv_str("input.value", &self.cap(&text)));
                a.push(kv_str("input.mime_type", "text/plain"));
            }
        }
        // Codex's own spans of the turn: link to the first known one of its calls.
        if let Some(trace) = turn
            .otel_trace_id
            .as_deref()
            .and_then(ids::parse_hex_id::<16>)
        {
            let first_call_span = self
                .graph
                .inference_calls
                .values()
                .filter(|c| c.codex_turn_id.as_ref() == Some(&turn.codex_turn_id))
                .find_map(|c| c.otel_span_id.as_deref().and_then(ids::parse_hex_id::<8>));
            if let Some(span_id) = first_call_span {
                span.links.push(codex_link(&trace, &span_id, "turn"));
            }
        }
        status_attrs(&mut span, &closed, None, None);
        Some(span)
    }

    /// Whether spans under `turn_id` must wait: while the rollout runs, a turn known
    /// only from log records may still be renamed when its spans arrive (Codex exports
    /// logs and spans in separate batches), and a span sent under the old name would
    /// stay downstream beside the renamed one, with its calls parented to the old one.
    fn turn_may_be_renamed(&self, turn_id: Option<&String>) -> bool {
        !self.rollout_closed() && turn_id.is_some_and(|id| is_provisional_turn_id(id))
    }

    fn parent_thread_span(&self, thread_id: &str) -> Vec<u8> {
        self.span_id(ids::KIND_THREAD, thread_id)
    }

    fn parent_turn_span(&self, turn_id: Option<&String>, thread_id: &str) -> Vec<u8> {
        match turn_id {
            Some(turn_id) if self.graph.codex_turns.contains_key(turn_id) => {
                self.span_id(ids::KIND_TURN, turn_id)
            }
            _ => self.parent_thread_span(thread_id),
        }
    }

    fn chat_span(&self, call: &InferenceCall) -> Option<Span> {
        if self.turn_may_be_renamed(call.codex_turn_id.as_ref()) {
            return None;
        }
        let closed = self.closed(&call.execution)?;
        let thread = self.graph.threads.get(&call.thread_id);
        let model = call
            .model
            .clone()
            .or_else(|| thread.and_then(|t| t.default_model.clone()));
        let provider = call
            .provider_name
            .clone()
            .or_else(|| thread.and_then(|t| t.provider_name.clone()));
        let name = match &model {
            Some(m) => format!("chat {m}"),
            None => "chat".to_string(),
        };
        let mut span = self.base_span(
            name,
            SpanKind::Client,
            self.span_id(ids::KIND_INFERENCE, &call.inference_call_id),
            self.parent_turn_span(call.codex_turn_id.as_ref(), &call.thread_id),
            call.execution.started_at_unix_ms,
            &closed,
        );
        let a = &mut span.attributes;
        a.push(kv_str("gen_ai.operation.name", "chat"));
        self.common_attrs(a, &call.thread_id);
        a.push(kv_str("openinference.span.kind", "LLM"));
        a.push(kv_str("codex.inference_call.id", &call.inference_call_id));
        if let Some(turn) = &call.codex_turn_id {
            a.push(kv_str("codex.turn.id", turn));
        }
        if let Some(p) = &provider {
            a.push(kv_str("gen_ai.provider.name", p));
            a.push(kv_str("llm.provider", p));
        }
        if let Some(m) = &model {
            a.push(kv_str("gen_ai.request.model", m));
            a.push(kv_str("llm.model_name", m));
        }
        if let Some(v) = &call.response_id {
            a.push(kv_str("gen_ai.response.id", v));
        }
        if let Some(v) = &call.upstream_request_id {
            a.push(kv_str("codex.upstream_request_id", v));
        }
        if let Some(v) = call.ttft_ms {
            a.push(kv_i64("codex.ttft_ms", v));
        }
        if let Some(u) = &call.usage {
            usage_attrs(a, u);
        }
        a.push(kv_i64("codex.http.attempts", call.attempts.len() as i64));
        let last_status = call.attempts.iter().rev().find_map(|at| at.status_code);
        if let Some(code) = last_status {
            a.push(kv_i64("http.response.status_code", code));
        }
        for attempt in &call.attempts {
            let mut attrs = vec![kv_i64("codex.http.attempt", attempt.attempt)];
            if let Some(code) = attempt.status_code {
                attrs.push(kv_i64("http.response.status_code", code));
            }
            attrs.push(kv_i64(
                "codex.http.duration_ms",
                attempt.ended_at_unix_ms - attempt.started_at_unix_ms,
            ));
            if let Some(e) = &attempt.error {
                attrs.push(kv_str("error.message", &cap_str(e, ERROR_MESSAGE_CAP)));
            }
            if let Some(v) = &attempt.upstream_request_id {
                attrs.push(kv_str("codex.upstream_request_id", v));
            }
            span.events.push(Event {
                time_unix_nano: ms_to_ns(attempt.ended_at_unix_ms),
                name: "http.attempt".to_string(),
                attributes: attrs,
                dropped_attributes_count: 0,
            });
        }
        if self.opts.include_content {
            let input = self.items_text(&call.request_item_ids, Some("user"));
            if !input.is_empty() {
                span.attributes
                    .push(kv_str("input.value", &self.cap(&input)));
            }
            let output = self.items_text(&call.response_item_ids, Some("assistant"));
            if !output.is_empty() {
                span.attributes
                    .push(kv_str("output.value", &self.cap(&output)));
            }
        }
        let turn_trace = call
            .codex_turn_id
            .as_ref()
            .and_then(|t| self.graph.codex_turns.get(t))
            .and_then(|t| t.otel_trace_id.as_deref())
            .and_then(ids::parse_hex_id::<16>);
        let own_span = call
            .otel_span_id
            .as_deref()
            .and_then(ids::parse_hex_id::<8>);
        if let (Some(trace), Some(span_id)) = (turn_trace, own_span) {
            span.links
                .push(codex_link(&trace, &span_id, "inference_call"));
        }
        let error_type = last_status.filter(|c| *c >= 400).map(|c| c.to_string());
        status_attrs(&mut span, &closed, error_type, call.error.as_deref());
        Some(span)
    }

    fn tool_span(&self, call: &ToolCall) -> Option<Span> {
        if self.turn_may_be_renamed(call.started_by_codex_turn_id.as_ref()) {
            return None;
        }
        let closed = self.closed(&call.execution)?;
        let tool_name = call
            .tool_name
            .clone()
            .unwrap_or_else(|| kind_name(&call.kind));
        let mut span = self.base_span(
            format!("execute_tool {tool_name}"),
            SpanKind::Internal,
            self.span_id(ids::KIND_TOOL, &call.tool_call_id),
            self.parent_turn_span(call.started_by_codex_turn_id.as_ref(), &call.thread_id),
            call.execution.started_at_unix_ms,
            &closed,
        );
        let a = &mut span.attributes;
        a.push(kv_str("gen_ai.operation.name", "execute_tool"));
        a.push(kv_str("gen_ai.tool.name", &tool_name));
        let call_id = call
            .model_visible_call_id
            .as_deref()
            .unwrap_or(&call.tool_call_id);
        a.push(kv_str("gen_ai.tool.call.id", call_id));
        let tool_type = if call.mcp_server.is_some() {
            "extension"
        } else {
            "function"
        };
        a.push(kv_str("gen_ai.tool.type", tool_type));
        self.common_attrs(a, &call.thread_id);
        a.push(kv_str("openinference.span.kind", "TOOL"));
        a.push(kv_str("tool.name", &tool_name));
        a.push(kv_str("codex.tool_call.id", &call.tool_call_id));
        a.push(kv_str("codex.tool.kind", &kind_name(&call.kind)));
        a.push(kv_str("codex.tool.requester", &call.requester.kind));
        if let Some(turn) = &call.started_by_codex_turn_id {
            a.push(kv_str("codex.turn.id", turn));
        }
        if let Some(v) = &call.started_by_inference_call_id {
            a.push(kv_str("codex.inference_call.id", v));
        }
        if let Some(approval) = &call.approval {
            if let Some(v) = &approval.decision {
                a.push(kv_str("codex.tool.approval.decision", v));
            }
            if let Some(v) = &approval.source {
                a.push(kv_str("codex.tool.approval.source", v));
            }
        }
        if let Some(v) = call.success {
            a.push(kv_bool("codex.tool.success", v));
        }
        if let Some(v) = &call.mcp_server {
            a.push(kv_str("codex.mcp.server", v));
        }
        if let Some(d) = call
            .execution
            .ended_at_unix_ms
            .map(|e| e - call.execution.started_at_unix_ms)
        {
            a.push(kv_i64("codex.tool.duration_ms", d));
        }
        let operation = call
            .terminal_operation_id
            .as_ref()
            .and_then(|id| self.graph.terminal_operations.get(id))
            .or_else(|| match &call.summary {
                ToolCallSummary::Terminal { operation_id } => {
                    self.graph.terminal_operations.get(operation_id)
                }
                ToolCallSummary::Generic { .. } => None,
            });
        if let Some(code) = operation
            .and_then(|o| o.result.as_ref())
            .and_then(|r| r.exit_code)
        {
            a.push(kv_i64("process.exit.code", code as i64));
            a.push(kv_i64("codex.tool.exit_code", code as i64));
        }
        if let Some(terminal) = operation.and_then(|o| o.terminal_id.as_ref()) {
            a.push(kv_str("codex.terminal.id", terminal));
        }
        if self.opts.include_content {
            let (args, result) = match (operation, &call.summary) {
                (Some(op), _) => (
                    (!op.request.is_null()).then(|| op.request.to_string()),
                    op.result
                        .as_ref()
                        .and_then(|r| r.formatted_output.clone().or_else(|| r.stdout.clone())),
                ),
                (
                    None,
                    ToolCallSummary::Generic {
                        input_preview,
                        output_preview,
                        ..
                    },
                ) => (input_preview.clone(), output_preview.clone()),
                (None, ToolCallSummary::Terminal { .. }) => (None, None),
            };
            if let Some(args) = args {
                let capped = self.cap(&args);
                a.push(kv_str("gen_ai.tool.call.arguments", &capped));
                a.push(kv_str("input.value", &capped));
            }
            if let Some(result) = result {
                let capped = self.cap(&result);
                a.push(kv_str("gen_ai.tool.call.result", &capped));
                a.push(kv_str("output.value", &capped));
            }
        }
        let error_type = (call.success == Some(false)).then(|| "tool_error".to_string());
        let failed_by_result = call.success == Some(false);
        status_attrs(&mut span, &closed, error_type, None);
        if failed_by_result && span.status.is_none() {
            span.status = Some(Status {
                message: "tool reported failure".to_string(),
                code: StatusCode::Error as i32,
            });
            span.attributes.push(kv_str("error.type", "tool_error"));
        }
        Some(span)
    }

    /// The text of conversation items, optionally of one role, joined by blank lines.
    fn items_text(&self, item_ids: &[String], role: Option<&str>) -> String {
        let texts: Vec<&str> = item_ids
            .iter()
            .filter_map(|id| self.graph.conversation_items.get(id))
            .filter(|item| role.is_none_or(|r| item.role == r))
            .filter_map(|item| item.text.as_deref())
            .collect();
        texts.join("\n\n")
    }

    fn cap(&self, text: &str) -> String {
        cap_str(text, self.opts.content_cap_bytes)
    }
}

fn codex_link(trace_id: &[u8; 16], span_id: &[u8; 8], object: &str) -> Link {
    Link {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        trace_state: String::new(),
        attributes: vec![
            kv_str("codex.link.type", "codex_span"),
            kv_str("codex.link.object", object),
        ],
        dropped_attributes_count: 0,
        // Sampled; the linked span is remote (Codex's process).
        flags: 0x301,
    }
}

/// Status ERROR (with `error.type`) for failed and aborted objects; cancelled and
/// rollout-closed objects keep status unset, with `codex.status` saying why.
fn status_attrs(
    span: &mut Span,
    closed: &Closed,
    error_type: Option<String>,
    message: Option<&str>,
) {
    span.attributes
        .push(kv_str("codex.status", status_name(closed.status)));
    match closed.status {
        ExecutionStatus::Failed | ExecutionStatus::Aborted => {
            let error_type = error_type.unwrap_or_else(|| status_name(closed.status).to_string());
            span.attributes.push(kv_str("error.type", &error_type));
            span.status = Some(Status {
                message: cap_str(
                    message.unwrap_or(status_name(closed.status)),
                    ERROR_MESSAGE_CAP,
                ),
                code: StatusCode::Error as i32,
            });
        }
        ExecutionStatus::Completed | ExecutionStatus::Cancelled | ExecutionStatus::Running => {}
    }
}

fn status_name(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "running",
        ExecutionStatus::Completed => "completed",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::Cancelled => "cancelled",
        ExecutionStatus::Aborted => "aborted",
    }
}

/// The tool name Codex uses for a kind of tool call.
pub fn kind_name(kind: &ToolCallKind) -> String {
    match kind {
        ToolCallKind::ExecCommand => "exec_command",
        ToolCallKind::WriteStdin => "write_stdin",
        ToolCallKind::ApplyPatch => "apply_patch",
        ToolCallKind::Web => "web_search",
        ToolCallKind::ImageGeneration => "image_generation",
        ToolCallKind::SpawnAgent => "spawn_agent",
        ToolCallKind::AssignAgentTask => "assign_agent_task",
        ToolCallKind::SendMessage => "send_message",
        ToolCallKind::WaitAgent => "wait_agent",
        ToolCallKind::CloseAgent => "close_agent",
        ToolCallKind::Other { name } => return name.clone(),
    }
    .to_string()
}

fn usage_attrs(a: &mut Vec<KeyValue>, u: &TokenUsage) {
    let total = u.total_tokens.unwrap_or(u.input_tokens + u.output_tokens);
    a.push(kv_i64("gen_ai.usage.input_tokens", u.input_tokens));
    a.push(kv_i64("gen_ai.usage.output_tokens", u.output_tokens));
    a.push(kv_i64(
        "gen_ai.usage.cache_read.input_tokens",
        u.cached_input_tokens,
    ));
    a.push(kv_i64(
        "gen_ai.usage.cache_creation.input_tokens",
        u.cache_write_input_tokens,
    ));
    a.push(kv_i64(
        "codex.usage.reasoning_output_tokens",
        u.reasoning_output_tokens,
    ));
    a.push(kv_i64("llm.token_count.prompt", u.input_tokens));
    a.push(kv_i64("llm.token_count.completion", u.output_tokens));
    a.push(kv_i64("llm.token_count.total", total));
    a.push(kv_i64(
        "llm.token_count.prompt_details.cache_read",
        u.cached_input_tokens,
    ));
    a.push(kv_i64(
        "llm.token_count.prompt_details.cache_write",
        u.cache_write_input_tokens,
    ));
    a.push(kv_i64(
        "llm.token_count.completion_details.reasoning",
        u.reasoning_output_tokens,
    ));
}

/// `text` cut to at most `cap` bytes, on a UTF-8 boundary.
pub fn cap_str(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn ms_to_ns(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

pub(crate) fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_string()))
}

fn kv_i64(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    kv(key, Value::BoolValue(value))
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduce::graph::{
        Approval, ConversationItem, HttpAttempt, InteractionEdge, Requester, TerminalOperation,
        TerminalResult,
    };

    fn exec(start: i64, end: Option<i64>, status: ExecutionStatus) -> Execution {
        Execution {
            started_at_unix_ms: start,
            started_seq: 1,
            ended_at_unix_ms: end,
            ended_seq: end.map(|_| 2),
            status,
        }
    }

    fn thread(id: &str, origin: AgentOrigin, status: ExecutionStatus) -> Thread {
        let end = (status != ExecutionStatus::Running).then_some(9_000);
        Thread {
            thread_id: id.into(),
            agent_path: "/root".into(),
            nickname: None,
            origin,
            execution: exec(1_000, end, status),
            default_model: Some("gpt-5.1-codex".into()),
            conversation_item_ids: vec![],
            provider_name: Some("openai".into()),
        }
    }

    fn tool(id: &str, thread_id: &str, turn: &str, kind: ToolCallKind) -> ToolCall {
        ToolCall {
            tool_call_id: id.into(),
            mcp_call_id: None,
            model_visible_call_id: Some(id.into()),
            code_mode_runtime_tool_id: None,
            thread_id: thread_id.into(),
            started_by_codex_turn_id: Some(turn.into()),
            execution: exec(3_000, Some(3_500), ExecutionStatus::Completed),
            requester: Requester {
                kind: "model".into(),
            },
            kind,
            model_visible_call_item_ids: vec![],
            model_visible_output_item_ids: vec![],
            terminal_operation_id: None,
            summary: ToolCallSummary::Generic {
                label: "x".into(),
                input_preview: Some("{\"cmd\":\"ls\"}".into()),
                output_preview: Some("a.txt".into()),
            },
            raw_invocation_payload_id: None,
            raw_result_payload_id: None,
            raw_runtime_payload_ids: vec![],
            tool_name: None,
            approval: Some(Approval {
                decision: Some("approved".into()),
                source: Some("config".into()),
            }),
            success: Some(true),
            mcp_server: None,
            started_by_inference_call_id: Some("inf-1".into()),
        }
    }

    fn graph() -> RolloutGraph {
        let mut g = RolloutGraph {
            schema_version: 1,
            trace_id: "t".into(),
            rollout_id: "root-thread".into(),
            started_at_unix_ms: Some(1_000),
            ended_at_unix_ms: None,
            status: "running".into(),
            root_thread_id: "root-thread".into(),
            ..RolloutGraph::default()
        };
        g.threads.insert(
            "root-thread".into(),
            thread("root-thread", AgentOrigin::Root, ExecutionStatus::Running),
        );
        g.codex_turns.insert(
            "turn-1".into(),
            CodexTurn {
                codex_turn_id: "turn-1".into(),
                thread_id: "root-thread".into(),
                execution: exec(2_000, Some(5_000), ExecutionStatus::Completed),
                input_item_ids: vec!["item-1".into()],
                usage: TokenUsage {
                    input_tokens: 100,
                    output_tokens: 20,
                    ..TokenUsage::default()
                },
                ttft_ms: Some(300),
                closed_by: Some("span".into()),
                otel_trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            },
        );
        g.conversation_items.insert(
            "item-1".into(),
            ConversationItem {
                item_id: "item-1".into(),
                thread_id: "root-thread".into(),
                codex_turn_id: Some("turn-1".into()),
                role: "user".into(),
                kind: "message".into(),
                call_id: None,
                text: Some("héllo world".into()),
                first_seen_at_unix_ms: 2_000,
            },
        );
        g.inference_calls.insert(
            "inf-1".into(),
            InferenceCall {
                inference_call_id: "inf-1".into(),
                thread_id: "root-thread".into(),
                codex_turn_id: Some("turn-1".into()),
                execution: exec(2_100, Some(2_900), ExecutionStatus::Completed),
                model: Some("gpt-5.1-codex".into()),
                provider_name: None,
                response_id: Some("resp_1".into()),
                upstream_request_id: None,
                request_item_ids: vec!["item-1".into()],
                response_item_ids: vec![],
                tool_call_ids_started_by_response: vec![],
                usage: Some(TokenUsage {
                    input_tokens: 100,
                    cached_input_tokens: 40,
                    output_tokens: 20,
                    reasoning_output_tokens: 5,
                    ..TokenUsage::default()
                }),
                raw_request_payload_id: None,
                raw_response_payload_id: None,
                attempts: vec![HttpAttempt {
                    attempt: 1,
                    started_at_unix_ms: 2_100,
                    ended_at_unix_ms: 2_200,
                    status_code: Some(200),
                    error: None,
                    upstream_request_id: None,
                }],
                ttft_ms: Some(250),
                error: None,
                otel_span_id: Some("b7ad6b7169203331".into()),
            },
        );
        g.tool_calls.insert(
            "call-1".into(),
            tool("call-1", "root-thread", "turn-1", ToolCallKind::ExecCommand),
        );
        g
    }

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
        match attr(span, key)? {
            Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    fn int_attr(span: &Span, key: &str) -> Option<i64> {
        match attr(span, key)? {
            Value::IntValue(v) => Some(*v),
            _ => None,
        }
    }

    fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    }

    #[test]
    fn a_turn_known_only_from_logs_waits_with_its_calls_until_renamed_or_closed() {
        let provisional = "otel-trace:0af7651916cd43dd8448eb211c80319c".to_string();
        let mut g = graph();
        let mut turn = g.codex_turns.remove("turn-1").unwrap();
        turn.codex_turn_id = provisional.clone();
        g.codex_turns.insert(provisional.clone(), turn);
        for call in g.inference_calls.values_mut() {
            call.codex_turn_id = Some(provisional.clone());
        }
        for call in g.tool_calls.values_mut() {
            call.started_by_codex_turn_id = Some(provisional.clone());
        }
        // Running: its spans may arrive and rename it, so nothing under it goes yet.
        assert!(build_spans(&g, &SpanOptions::default()).is_empty());
        // Closed: its name is final; the turn and its calls go, parented to it.
        g.status = "completed".into();
        let spans = build_spans(&g, &SpanOptions::default());
        let turn = by_name(&spans, "turn");
        assert_eq!(
            turn.span_id,
            ids::span_id("root-thread", ids::KIND_TURN, &provisional).to_vec()
        );
        assert_eq!(
            by_name(&spans, "chat gpt-5.1-codex").parent_span_id,
            turn.span_id
        );
        assert_eq!(
            by_name(&spans, "execute_tool exec_command").parent_span_id,
            turn.span_id
        );
    }

    #[test]
    fn running_rollout_emits_complete_objects_only() {
        let g = graph();
        let spans = build_spans(&g, &SpanOptions::default());
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["turn", "chat gpt-5.1-codex", "execute_tool exec_command"]
        );
        let thread_id = ids::span_id("root-thread", ids::KIND_THREAD, "root-thread").to_vec();
        let turn = by_name(&spans, "turn");
        assert_eq!(turn.parent_span_id, thread_id);
        assert_eq!(
            turn.span_id,
            ids::span_id("root-thread", ids::KIND_TURN, "turn-1").to_vec()
        );
        assert_eq!(turn.trace_id, ids::trace_id("root-thread").to_vec());
        assert_eq!(turn.start_time_unix_nano, 2_000_000_000);
        assert_eq!(turn.end_time_unix_nano, 5_000_000_000);
        assert_eq!(str_attr(turn, "openinference.span.kind"), Some("CHAIN"));
        assert_eq!(int_attr(turn, "codex.turn.ttft_ms"), Some(300));
        let chat = by_name(&spans, "chat gpt-5.1-codex");
        assert_eq!(chat.parent_span_id, turn.span_id);
        assert_eq!(chat.kind, SpanKind::Client as i32);
        assert_eq!(str_attr(chat, "gen_ai.provider.name"), Some("openai"));
        assert_eq!(
            int_attr(chat, "gen_ai.usage.cache_read.input_tokens"),
            Some(40)
        );
        assert_eq!(int_attr(chat, "llm.token_count.total"), Some(120));
        assert_eq!(int_attr(chat, "http.response.status_code"), Some(200));
        assert_eq!(chat.links.len(), 1);
        assert_eq!(hex::encode(&chat.links[0].span_id), "b7ad6b7169203331");
        assert_eq!(
            hex::encode(&chat.links[0].trace_id),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(turn.links.len(), 1);
        let tool = by_name(&spans, "execute_tool exec_command");
        assert_eq!(tool.parent_span_id, turn.span_id);
        assert_eq!(str_attr(tool, "gen_ai.tool.call.id"), Some("call-1"));
        assert_eq!(
            str_attr(tool, "codex.tool.approval.decision"),
            Some("approved")
        );
        assert_eq!(str_attr(tool, "openinference.span.kind"), Some("TOOL"));
        assert!(spans.iter().all(|s| s.status.is_none()));
        // No content by default.
        assert!(spans.iter().all(|s| attr(s, "input.value").is_none()));
        assert!(attr(tool, "gen_ai.tool.call.arguments").is_none());
        // Deterministic.
        assert_eq!(spans, build_spans(&g, &SpanOptions::default()));
    }

    #[test]
    fn completed_rollout_emits_thread_span_with_totals() {
        let mut g = graph();
        g.status = "completed".into();
        g.ended_at_unix_ms = Some(9_500);
        let spans = build_spans(&g, &SpanOptions::default());
        let agent = by_name(&spans, "invoke_agent codex");
        assert!(agent.parent_span_id.is_empty());
        assert_eq!(agent.end_time_unix_nano, 9_500_000_000);
        assert_eq!(
            str_attr(agent, "gen_ai.conversation.id"),
            Some("root-thread")
        );
        assert_eq!(str_attr(agent, "openinference.span.kind"), Some("AGENT"));
        assert_eq!(int_attr(agent, "gen_ai.usage.input_tokens"), Some(100));
        assert_eq!(int_attr(agent, "codex.turn_count"), Some(1));
    }

    #[test]
    fn sub_agent_is_child_of_spawning_tool() {
        let mut g = graph();
        g.tool_calls.insert(
            "spawn-1".into(),
            tool("spawn-1", "root-thread", "turn-1", ToolCallKind::SpawnAgent),
        );
        let origin = AgentOrigin::Spawned {
            parent_thread_id: "root-thread".into(),
            spawned_by_tool_call_id: None,
        };
        g.threads.insert(
            "child".into(),
            thread("child", origin, ExecutionStatus::Completed),
        );
        let edge = InteractionEdge {
            edge_id: "e1".into(),
            kind: "spawn_agent".into(),
            source: TraceAnchor::ToolCall {
                tool_call_id: "spawn-1".into(),
            },
            target: TraceAnchor::Thread {
                thread_id: "child".into(),
            },
            started_at_unix_ms: 3_000,
            ended_at_unix_ms: None,
            carried_item_ids: vec![],
            carried_raw_payload_ids: vec![],
        };
        g.interaction_edges.insert("e1".into(), edge);
        let spans = build_spans(&g, &SpanOptions::default());
        let child = spans
            .iter()
            .find(|s| {
                str_attr(s, "codex.thread.id") == Some("child")
                    && s.name.starts_with("invoke_agent")
            })
            .unwrap();
        assert_eq!(
            child.parent_span_id,
            ids::span_id("root-thread", ids::KIND_TOOL, "spawn-1").to_vec()
        );
        // Without the edge: child of the root thread span.
        g.interaction_edges.clear();
        let spans = build_spans(&g, &SpanOptions::default());
        let child = spans
            .iter()
            .find(|s| s.name.starts_with("invoke_agent"))
            .unwrap();
        assert_eq!(
            child.parent_span_id,
            ids::span_id("root-thread", ids::KIND_THREAD, "root-thread").to_vec()
        );
    }

    #[test]
    fn failures_are_status_error() {
        let mut g = graph();
        let call = g.inference_calls.get_mut("inf-1").unwrap();
        call.execution.status = ExecutionStatus::Failed;
        call.error = Some("stream disconnected".into());
        call.attempts[0].status_code = Some(500);
        g.tool_calls.get_mut("call-1").unwrap().success = Some(false);
        let spans = build_spans(&g, &SpanOptions::default());
        let chat = by_name(&spans, "chat gpt-5.1-codex");
        let status = chat.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "stream disconnected");
        assert_eq!(str_attr(chat, "error.type"), Some("500"));
        let tool = by_name(&spans, "execute_tool exec_command");
        assert_eq!(tool.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(str_attr(tool, "error.type"), Some("tool_error"));
    }

    #[test]
    fn content_only_when_opted_in_and_capped() {
        let mut g = graph();
        g.terminal_operations.insert(
            "op-1".into(),
            TerminalOperation {
                operation_id: "op-1".into(),
                terminal_id: None,
                tool_call_id: "call-1".into(),
                kind: "exec_command".into(),
                execution: exec(3_000, Some(3_500), ExecutionStatus::Completed),
                request: serde_json::json!({"cmd": "ls"}),
                result: Some(TerminalResult {
                    exit_code: Some(2),
                    stdout: Some("out".into()),
                    stderr: None,
                    formatted_output: None,
                    original_token_count: None,
                    chunk_id: None,
                }),
                model_observations: vec![],
                raw_payload_ids: vec![],
            },
        );
        g.tool_calls
            .get_mut("call-1")
            .unwrap()
            .terminal_operation_id = Some("op-1".into());
        let plain = build_spans(&g, &SpanOptions::default());
        let tool = by_name(&plain, "execute_tool exec_command");
        assert_eq!(int_attr(tool, "process.exit.code"), Some(2));
        assert!(attr(tool, "gen_ai.tool.call.result").is_none());
        let opts = SpanOptions {
            include_content: true,
            content_cap_bytes: 2,
        };
        let spans = build_spans(&g, &opts);
        let tool = by_name(&spans, "execute_tool exec_command");
        assert_eq!(str_attr(tool, "gen_ai.tool.call.arguments"), Some("{\""));
        assert_eq!(str_attr(tool, "gen_ai.tool.call.result"), Some("ou"));
        // "héllo": 'é' is 2 bytes; a cap of 2 must not split it.
        assert_eq!(str_attr(by_name(&spans, "turn"), "input.value"), Some("h"));
    }
}
