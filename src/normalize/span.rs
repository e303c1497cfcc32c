//! Codex spans into raw events. Of the hundreds of spans per turn only a few carry
//! meaning: the turn spans, the tool spans, the stream-error span and the exec
//! process span. The rest are kept as evidence.

use super::attributes::Attributes;
use super::raw_event::RawEventPayload as P;
use super::record_json::RecordJson;
use super::time::nanos_to_ms;
use super::{
    Attribution, NormalizedRecord, PendingEvent, Signal, canonical_turn_id, id_hex, record_id,
    resource_key, thread_id_value,
};
use crate::receive::otlp::{Span, TracesRequest};

/// Spans that carry a `call_id` but are not the tool's own span.
const NOT_TOOL_SPANS: &[&str] = &[
    "unified_exec.exec_command",
    "guardian_scoring_observation",
    "dispatch_tool_call_with_state",
    "handle_output_item_done",
    "handle_tool_call_with_source",
];

pub fn normalize(request: &TracesRequest) -> Vec<NormalizedRecord> {
    let mut out = Vec::with_capacity(request.record_count());
    for resource_spans in &request.resources {
        let resource = resource_key(&resource_spans.resource);
        for scope_spans in &resource_spans.scopes {
            let scope = scope_spans.scope.name;
            for span in &scope_spans.records {
                let record_id = record_id(Signal::Traces, &resource, span.wire);
                out.push(normalize_span(span, scope, record_id));
            }
        }
    }
    out
}

fn normalize_span(span: &Span, scope: &str, record_id: String) -> NormalizedRecord {
    let a = Attributes(&span.attributes);
    let trace_id = id_hex(span.trace_id);
    let start = nanos_to_ms(span.start_time_unix_nano);
    let end = nanos_to_ms(span.end_time_unix_nano).max(start);
    let turn_id = a
        .first_text(&["turn.id", "turn_id"])
        .map(|raw| canonical_turn_id(&raw, trace_id.as_deref()));
    let conversation_id = ["conversation.id", "thread_id", "thread.id"]
        .iter()
        .find_map(|k| a.value(k).and_then(thread_id_value));
    let name = span.name;
    let at = |wall_time_unix_ms, payload| PendingEvent {
        wall_time_unix_ms,
        payload,
    };

    let events = match (name, &turn_id) {
        ("session_task.turn" | "run_turn", Some(turn)) => vec![
            at(
                start,
                P::CodexTurnStarted {
                    codex_turn_id: turn.clone(),
                    thread_id: conversation_id.clone(),
                    source: name.into(),
                },
            ),
            at(
                end,
                P::CodexTurnEnded {
                    codex_turn_id: turn.clone(),
                    source: name.into(),
                },
            ),
        ],
        ("turn/start" | "codex.turn_input", Some(turn)) => vec![at(
            start,
            P::CodexTurnStarted {
                codex_turn_id: turn.clone(),
                thread_id: conversation_id.clone(),
                source: name.into(),
            },
        )],
        ("handle_response_stream_error", _) => vec![at(
            start,
            P::InferenceFailed {
                error_message: a.non_empty("error.message"),
                source: name.into(),
            },
        )],
        ("unified_exec.exec_command", _) if a.non_empty_text("call_id").is_some() => vec![at(
            start,
            P::TerminalProcess {
                tool_call_id: a.non_empty("call_id").unwrap_or_default(),
                process_id: a.non_empty("unified_exec_process_id"),
                outcome: a.non_empty("outcome"),
            },
        )],
        _ => match a.non_empty_text("call_id") {
            Some(call_id) if is_tool_span(name, &a) => vec![at(
                start,
                P::ToolCallStarted {
                    tool_call_id: call_id.into_owned(),
                    tool_name: Some(name.to_string()),
                },
            )],
            _ => vec![at(
                start,
                P::OtelSpan {
                    name: name.to_string(),
                },
            )],
        },
    };

    let evidence = RecordJson::span(span, name, scope);
    NormalizedRecord {
        record_id,
        signal: Signal::Traces,
        attribution: Attribution {
            conversation_id,
            trace_id,
            span_id: id_hex(span.span_id),
            parent_span_id: id_hex(span.parent_span_id),
            turn_id,
            ..Default::default()
        },
        events,
        evidence,
    }
}

/// The tool's own span is named after the tool (`exec_command`, `apply_patch`,
/// `shell_command` in 0.80) and carries the call id.
fn is_tool_span(name: &str, a: &Attributes) -> bool {
    if NOT_TOOL_SPANS.contains(&name) {
        return false;
    }
    match a.non_empty_text("tool_name") {
        Some(tool) => tool == name,
        None => !name.contains('.') && !name.contains('/') && !name.contains(' '),
    }
}
