//! Codex log records (`codex.*` events) into raw events.

use super::attributes::{self, Attributes};
use super::raw_event::{
    InferenceAttemptFields, RawEventPayload as P, ThreadStartedFields, TokenUsage,
    ToolCallApprovalFields, ToolCallEndedFields,
};
use super::time::{nanos_to_ms, parse_iso8601_ms};
use super::{
    Attribution, NormalizedRecord, PendingEvent, RecordJson, Signal, id_hex, record_id,
    resource_key,
};
use crate::receive::otlp::{LogRecord, LogsRequest};

pub fn normalize(request: &LogsRequest) -> Vec<NormalizedRecord> {
    let mut out = Vec::with_capacity(request.record_count());
    for resource_logs in &request.resources {
        let resource = resource_key(&resource_logs.resource);
        let first = out.len();
        for scope_logs in &resource_logs.scopes {
            let scope = scope_logs.scope.name;
            for record in &scope_logs.records {
                let record_id = record_id(Signal::Logs, &resource, record.wire);
                out.push(normalize_record(record, scope, record_id));
            }
        }
        attribute_exit_flush(&mut out[first..]);
    }
    out
}

/// At exit Codex logs "flushing OTEL metrics" with no conversation id. In the same
/// resource (the same process) it belongs to the one conversation the others name.
fn attribute_exit_flush(records: &mut [NormalizedRecord]) {
    let mut conversations: Vec<&str> = records
        .iter()
        .filter_map(|r| r.attribution.conversation_id.as_deref())
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    if conversations.len() != 1 {
        return;
    }
    let conversation = conversations[0].to_string();
    for record in records.iter_mut() {
        let is_exit = record
            .events
            .iter()
            .any(|e| matches!(e.payload, P::ProcessExited { .. }));
        if is_exit && record.attribution.conversation_id.is_none() {
            record.attribution.conversation_id = Some(conversation.clone());
        }
    }
}

fn normalize_record(record: &LogRecord, scope: &str, record_id: String) -> NormalizedRecord {
    let a = Attributes(&record.attributes);
    let event_name = a.non_empty("event.name").or_else(|| {
        Some(record.event_name)
            .filter(|n| n.starts_with("codex."))
            .map(str::to_string)
    });
    let time = a
        .text("event.timestamp")
        .and_then(|t| parse_iso8601_ms(&t))
        .or_else(|| {
            Some(record.time_unix_nano)
                .filter(|t| *t > 0)
                .map(nanos_to_ms)
        })
        .unwrap_or_else(|| nanos_to_ms(record.observed_time_unix_nano));
    let trace_id = id_hex(record.trace_id);
    let body = record.body.as_ref().and_then(attributes::value_to_text);
    let payload = payload_for(event_name.as_deref(), &a, scope, body.as_deref());
    let evidence = RecordJson::log(record, body.as_deref(), event_name.as_deref(), scope);
    NormalizedRecord {
        record_id,
        signal: Signal::Logs,
        attribution: Attribution {
            conversation_id: super::thread_id_attr(
                a.first_text(&["conversation.id", "conversation_id"]),
            ),
            spawned_conversation_id: spawned_agent(&a),
            span_id: id_hex(record.span_id),
            trace_id,
            ..Default::default()
        },
        events: vec![PendingEvent {
            wall_time_unix_ms: time,
            payload,
        }],
        evidence,
    }
}

fn payload_for(event_name: Option<&str>, a: &Attributes, scope: &str, body: Option<&str>) -> P {
    let duration_ms = a.int("duration_ms");
    match event_name {
        Some("codex.conversation_starts") => P::ThreadStarted(Box::new(ThreadStartedFields {
            thread_id: a.non_empty("conversation.id").unwrap_or_default(),
            agent_path: a.non_empty("agent_path"),
            provider_name: a.non_empty("provider_name"),
            model: a.non_empty("model"),
            originator: a.non_empty("originator"),
            service_name: None,
            app_version: a.non_empty("app.version"),
            approval_policy: a.non_empty("approval_policy"),
            sandbox_policy: a.non_empty("sandbox_policy"),
        })),
        Some("codex.user_prompt") => P::UserPrompt {
            prompt: a.string("prompt"),
            prompt_length: a.int("prompt_length"),
        },
        Some("codex.api_request") => P::InferenceAttempt(Box::new(InferenceAttemptFields {
            attempt: a.int("attempt").unwrap_or(0),
            status_code: a.int("http.response.status_code"),
            duration_ms,
            error_message: a.non_empty("error.message"),
            upstream_request_id: a.non_empty("auth.request_id"),
            endpoint: a.non_empty("endpoint"),
            model: a.non_empty("model"),
        })),
        Some("codex.sse_event") => sse_event(a, duration_ms),
        Some("codex.turn_ttft") => P::TurnTtft { duration_ms },
        Some("codex.tool_decision") => match a.non_empty("call_id") {
            Some(call_id) => P::ToolCallApproval(Box::new(ToolCallApprovalFields {
                tool_call_id: call_id,
                tool_name: a.non_empty("tool_name"),
                decision: a.non_empty("decision").map(|d| d.to_ascii_lowercase()),
                source: a.non_empty("source"),
            })),
            None => other(event_name, scope),
        },
        // `log_tool_failed` sends a tool_result without a call id: it cannot be joined.
        Some("codex.tool_result") => match a.non_empty("call_id") {
            Some(call_id) => P::ToolCallEnded(Box::new(ToolCallEndedFields {
                tool_call_id: call_id,
                tool_name: a.non_empty("tool_name"),
                success: a.bool("success"),
                duration_ms,
                arguments: a.string("arguments"),
                output: a.string("output"),
                output_truncated: a.bool("output_truncated"),
                mcp_server: a.non_empty("mcp_server"),
                agent_name: a.non_empty("agent_name"),
            })),
            None => other(event_name, scope),
        },
        None if scope.ends_with("metrics::client")
            && body.is_some_and(|b| b.contains("flushing")) =>
        {
            P::ProcessExited { service_name: None }
        }
        _ => other(event_name, scope),
    }
}

/// A `spawn_agent` result names the child thread, whose records join this rollout.
fn spawned_agent(a: &Attributes) -> Option<String> {
    if a.non_empty("event.name").as_deref() != Some("codex.tool_result")
        || a.non_empty("tool_name").as_deref() != Some("spawn_agent")
    {
        return None;
    }
    super::tool_output::spawned_agent(&a.string("output")?).map(|s| s.thread_id)
}

fn sse_event(a: &Attributes, duration_ms: Option<i64>) -> P {
    let error_message = a.non_empty("error.message");
    if a.value("input_token_count").is_some() && error_message.is_none() {
        let usage = TokenUsage {
            input_tokens: a.int("input_token_count").unwrap_or(0),
            cached_input_tokens: a.int("cached_token_count").unwrap_or(0),
            cache_write_input_tokens: a.int("cache_write_token_count").unwrap_or(0),
            output_tokens: a.int("output_token_count").unwrap_or(0),
            reasoning_output_tokens: a.int("reasoning_token_count").unwrap_or(0),
            total_tokens: a.int("tool_token_count"),
        };
        return P::InferenceCompleted {
            usage,
            ttft_ms: a.int("ttft_ms"),
        };
    }
    if error_message.is_some() {
        return P::InferenceFailed {
            error_message,
            source: "codex.sse_event".into(),
        };
    }
    P::InferenceStreamEvent {
        kind: a.non_empty("event.kind"),
        duration_ms,
    }
}

fn other(event_name: Option<&str>, scope: &str) -> P {
    P::OtelLog {
        event_name: event_name.map(str::to_string),
        scope: scope.to_string(),
    }
}
