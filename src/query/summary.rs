//! One line of `list`: a rollout's status and totals.

use crate::proto::RolloutSummary;
use crate::reduce::graph::RolloutGraph;

pub fn summarize(graph: &RolloutGraph) -> RolloutSummary {
    let first_seen = graph.started_at_unix_ms.unwrap_or(0);
    let last_seen = graph
        .ended_at_unix_ms
        .into_iter()
        .chain(graph.codex_turns.values().filter_map(|t| {
            t.execution
                .ended_at_unix_ms
                .or(Some(t.execution.started_at_unix_ms))
        }))
        .chain(
            graph
                .inference_calls
                .values()
                .filter_map(|c| c.execution.ended_at_unix_ms),
        )
        .max()
        .unwrap_or(first_seen);
    let usage = graph
        .inference_calls
        .values()
        .filter_map(|c| c.usage.as_ref());
    let (input, output) = usage.fold((0, 0), |(i, o), u| {
        (
            i + u.input_tokens.max(0) as u64,
            o + u.output_tokens.max(0) as u64,
        )
    });
    RolloutSummary {
        rollout_id: graph.rollout_id.clone(),
        status: graph.status.clone(),
        codex_version: graph.telemetry.codex_version.clone().unwrap_or_default(),
        service_name: graph.telemetry.service_name.clone().unwrap_or_default(),
        first_seen_unix_ms: first_seen,
        last_seen_unix_ms: last_seen,
        record_count: graph.telemetry.record_count,
        event_count: graph.telemetry.event_count,
        turn_count: graph.codex_turns.len() as u32,
        inference_call_count: graph.inference_calls.len() as u32,
        tool_call_count: graph.tool_calls.len() as u32,
        input_tokens: input,
        output_tokens: output,
    }
}

pub fn summary_json(s: &RolloutSummary) -> serde_json::Value {
    serde_json::json!({
        "rollout_id": s.rollout_id,
        "status": s.status,
        "codex_version": s.codex_version,
        "first_seen_unix_ms": s.first_seen_unix_ms,
        "last_seen_unix_ms": s.last_seen_unix_ms,
        "record_count": s.record_count,
        "event_count": s.event_count,
        "turn_count": s.turn_count,
        "inference_call_count": s.inference_call_count,
        "tool_call_count": s.tool_call_count,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
    })
}
