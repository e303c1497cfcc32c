//! Tool calls, joined by `call_id` across `codex.tool_decision`, `codex.tool_result`,
//! the tool's own span and the exec process span.

use super::Ctx;
use super::graph::{Approval, ToolCallKind};
use super::turns::Turns;
use crate::fast_hash::HashMap;
use crate::normalize::RawEventPayload as P;

#[derive(Debug, Default)]
pub struct ToolBuild {
    pub call_id: String,
    pub thread_id: Option<String>,
    pub turn: Option<usize>,
    pub span_start: Option<(i64, u64)>,
    pub first_seen: Option<(i64, u64)>,
    pub ended: Option<(i64, u64)>,
    pub tool_name: Option<String>,
    pub approval: Option<Approval>,
    pub success: Option<bool>,
    pub duration_ms: Option<i64>,
    pub arguments: Option<String>,
    pub output: Option<String>,
    pub mcp_server: Option<String>,
    pub agent_name: Option<String>,
    pub process_id: Option<String>,
}

impl ToolBuild {
    /// The tool span's start, else the result time less the handler's duration.
    pub fn start(&self) -> (i64, u64) {
        if let Some(start) = self.span_start {
            return start;
        }
        if let (Some((end, seq)), Some(d)) = (self.ended, self.duration_ms) {
            return (end - d.max(0), seq);
        }
        self.first_seen.unwrap_or((0, 0))
    }

    pub fn kind(&self) -> ToolCallKind {
        classify(self.tool_name.as_deref().unwrap_or("unknown"))
    }
}

/// Codex's own classification (`dispatched_tool_kind` in codex-rollout-trace).
pub fn classify(tool_name: &str) -> ToolCallKind {
    match tool_name {
        "exec_command" | "local_shell" | "shell" | "shell_command" | "container.exec" => {
            ToolCallKind::ExecCommand
        }
        "write_stdin" => ToolCallKind::WriteStdin,
        "apply_patch" => ToolCallKind::ApplyPatch,
        "web_search" | "web_search_preview" => ToolCallKind::Web,
        "image_generation" | "image_query" => ToolCallKind::ImageGeneration,
        "spawn_agent" => ToolCallKind::SpawnAgent,
        "send_message" | "send_input" => ToolCallKind::SendMessage,
        "followup_task" | "assign_task" => ToolCallKind::AssignAgentTask,
        "wait_agent" => ToolCallKind::WaitAgent,
        "close_agent" | "interrupt_agent" => ToolCallKind::CloseAgent,
        other => ToolCallKind::Other {
            name: other.to_string(),
        },
    }
}

pub fn build(ctx: &Ctx, turns: &Turns) -> Vec<ToolBuild> {
    let mut list: Vec<ToolBuild> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::default();
    for (i, e) in ctx.events.iter().enumerate() {
        let call_id = match &e.payload {
            P::ToolCallStarted { tool_call_id, .. } | P::TerminalProcess { tool_call_id, .. } => {
                tool_call_id
            }
            P::ToolCallApproval(approval) => &approval.tool_call_id,
            P::ToolCallEnded(ended) => &ended.tool_call_id,
            _ => continue,
        };
        let idx = *by_id.entry(call_id.clone()).or_insert_with(|| {
            list.push(ToolBuild {
                call_id: call_id.clone(),
                ..Default::default()
            });
            list.len() - 1
        });
        let tool = &mut list[idx];
        let at = (e.wall_time_unix_ms, ctx.seq(i));
        tool.first_seen.get_or_insert(at);
        if e.thread_id.is_some()
            && (tool.thread_id.is_none() || !matches!(e.payload, P::TerminalProcess { .. }))
        {
            tool.thread_id = e.thread_id.as_deref().map(str::to_string);
        }
        if tool.turn.is_none() || matches!(e.payload, P::ToolCallStarted { .. }) {
            tool.turn = turns.of_event[i].or(tool.turn);
        }
        match &e.payload {
            P::ToolCallStarted { tool_name, .. } => {
                tool.span_start = Some(at);
                if tool.tool_name.is_none() {
                    tool.tool_name = tool_name.clone();
                }
            }
            P::ToolCallApproval(approval) => {
                tool.approval = Some(Approval {
                    decision: approval.decision.clone(),
                    source: approval.source.clone(),
                });
                if tool.tool_name.is_none() {
                    tool.tool_name = approval.tool_name.clone();
                }
            }
            P::ToolCallEnded(ended) => {
                tool.ended = Some(at);
                // The result names the tool as dispatched (0.47's decision says local_shell).
                if ended.tool_name.is_some() {
                    tool.tool_name = ended.tool_name.clone();
                }
                tool.success = ended.success;
                tool.duration_ms = ended.duration_ms;
                tool.arguments = ended.arguments.clone();
                tool.output = ended.output.clone();
                tool.mcp_server = ended.mcp_server.clone();
                tool.agent_name = ended.agent_name.clone();
            }
            P::TerminalProcess { process_id, .. } => tool.process_id = process_id.clone(),
            _ => {}
        }
    }
    list.sort_by_key(|t| t.start());
    list
}
