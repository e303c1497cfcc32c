//! `show` without `--json`: the rollout as a readable tree.

use crate::normalize::ExecutionStatus;
use crate::reduce::graph::{Execution, RolloutGraph, ToolCallKind};
use crate::reduce::preview;
use std::fmt::Write;

fn status(e: &Execution) -> &'static str {
    match e.status {
        ExecutionStatus::Running => "running",
        ExecutionStatus::Completed => "completed",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::Cancelled => "cancelled",
        ExecutionStatus::Aborted => "aborted",
    }
}

fn duration(e: &Execution) -> String {
    e.duration_ms()
        .map(|d| format!("{d} ms"))
        .unwrap_or_else(|| "…".into())
}

pub fn render(graph: &RolloutGraph) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rollout {}  [{}]  codex {}",
        graph.rollout_id,
        graph.status,
        graph.telemetry.codex_version.as_deref().unwrap_or("?")
    );
    for thread in graph.threads.values() {
        let _ = writeln!(
            out,
            "└ thread {}  {}{}  model {}  provider {}  [{}]",
            thread.thread_id,
            thread.agent_path,
            thread
                .nickname
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            thread.default_model.as_deref().unwrap_or("?"),
            thread.provider_name.as_deref().unwrap_or("?"),
            status(&thread.execution),
        );
        let mut turns: Vec<_> = graph
            .codex_turns
            .values()
            .filter(|t| t.thread_id == thread.thread_id)
            .collect();
        turns.sort_by_key(|t| t.execution.started_seq);
        for turn in turns {
            let u = &turn.usage;
            let _ = writeln!(
                out,
                "   └ turn {}  [{}]  {}  tokens in {} (cached {}) out {} (reasoning {}){}",
                turn.codex_turn_id,
                status(&turn.execution),
                duration(&turn.execution),
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_output_tokens,
                turn.ttft_ms
                    .map(|t| format!("  ttft {t} ms"))
                    .unwrap_or_default(),
            );
            let mut calls: Vec<_> = graph
                .inference_calls
                .values()
                .filter(|c| c.codex_turn_id.as_deref() == Some(&turn.codex_turn_id))
                .collect();
            calls.sort_by_key(|c| c.execution.started_seq);
            let last = calls.len().saturating_sub(1);
            for (index, call) in calls.into_iter().enumerate() {
                // The last model call closes the turn's branch.
                let (branch, rail) = if index == last {
                    ("└", " ")
                } else {
                    ("├", "│")
                };
                let attempts: Vec<String> = call
                    .attempts
                    .iter()
                    .map(|a| {
                        a.status_code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "?".into())
                    })
                    .collect();
                let tokens = call.usage.as_ref().map(|u| {
                    format!(
                        "  tokens in {} cached {} out {} reasoning {}",
                        u.input_tokens,
                        u.cached_input_tokens,
                        u.output_tokens,
                        u.reasoning_output_tokens
                    )
                });
                let _ = writeln!(
                    out,
                    "      {branch} model call {}  [{}]  {}  http [{}]{}{}{}",
                    call.model.as_deref().unwrap_or("?"),
                    status(&call.execution),
                    duration(&call.execution),
                    attempts.join(", "),
                    tokens.unwrap_or_default(),
                    call.ttft_ms
                        .map(|t| format!("  ttft {t} ms"))
                        .unwrap_or_default(),
                    call.error
                        .as_deref()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default(),
                );
                let mut tools: Vec<_> = graph
                    .tool_calls
                    .values()
                    .filter(|t| {
                        t.started_by_inference_call_id.as_deref() == Some(&call.inference_call_id)
                    })
                    .collect();
                tools.sort_by_key(|t| t.execution.started_seq);
                for tool in tools {
                    let name = match &tool.kind {
                        ToolCallKind::Other { name } => name.clone(),
                        _ => tool.tool_name.clone().unwrap_or_default(),
                    };
                    let approval = tool
                        .approval
                        .as_ref()
                        .map(|a| {
                            format!(
                                "  approval {} by {}",
                                a.decision.as_deref().unwrap_or("?"),
                                a.source.as_deref().unwrap_or("?")
                            )
                        })
                        .unwrap_or_default();
                    let op = tool
                        .terminal_operation_id
                        .as_ref()
                        .and_then(|id| graph.terminal_operations.get(id));
                    let exit = op
                        .and_then(|op| op.result.as_ref()?.exit_code)
                        .map(|c| format!("  exit {c}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      {rail}  └ tool {} {}  [{}]  {}{}{}",
                        name,
                        tool.tool_call_id,
                        status(&tool.execution),
                        duration(&tool.execution),
                        approval,
                        exit,
                    );
                    if let Some(op) = op {
                        let command = op
                            .request
                            .get("display_command")
                            .and_then(|c| c.as_str())
                            .unwrap_or("");
                        let output = op
                            .result
                            .as_ref()
                            .and_then(|r| r.stdout.as_deref())
                            .unwrap_or("");
                        let _ = writeln!(
                            out,
                            "      {rail}       $ {}  → {}",
                            preview(command, 80),
                            preview(output, 80)
                        );
                    }
                }
            }
        }
    }
    for edge in graph.interaction_edges.values() {
        let _ = writeln!(out, "edge {} ({})", edge.edge_id, edge.kind);
    }
    out
}
