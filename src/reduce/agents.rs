//! Sub-agents. A spawned child is a thread of its own (its own `conversation.id`);
//! the `spawn_agent` result names it (`{"agent_id": ..., "nickname": ...}`). Codex's
//! reducer draws a spawn edge from the spawn tool call to the child thread, and a
//! close edge from `close_agent` to the thread it closed.

use super::graph::{InteractionEdge, ToolCallKind, TraceAnchor};
use super::tools::ToolBuild;
use crate::normalize::tool_output::{self, SpawnedAgent};

pub fn spawned_child(tool: &ToolBuild) -> Option<SpawnedAgent> {
    if tool.kind() != ToolCallKind::SpawnAgent {
        return None;
    }
    tool_output::spawned_agent(tool.output.as_deref()?)
}

/// The thread a close (or another targeted agent tool) acts on.
fn target_thread(tool: &ToolBuild) -> Option<String> {
    tool_output::agent_target(tool.arguments.as_deref()?)
}

pub fn spawn_edge(parent_thread: &str, tool: &ToolBuild, child: &str) -> InteractionEdge {
    let (start, end) = (tool.start().0, tool.ended.map(|e| e.0));
    InteractionEdge {
        edge_id: format!("edge:spawn:{parent_thread}:{child}"),
        kind: "spawn_agent".into(),
        source: TraceAnchor::ToolCall {
            tool_call_id: tool.call_id.clone(),
        },
        target: TraceAnchor::Thread {
            thread_id: child.to_string(),
        },
        started_at_unix_ms: start,
        ended_at_unix_ms: end,
        carried_item_ids: Vec::new(),
        carried_raw_payload_ids: Vec::new(),
    }
}

/// A close edge, when the closed thread is one the rollout knows.
pub fn close_edge(
    tool: &ToolBuild,
    known_thread: impl Fn(&str) -> bool,
) -> Option<InteractionEdge> {
    if tool.kind() != ToolCallKind::CloseAgent {
        return None;
    }
    let target = target_thread(tool).filter(|t| known_thread(t))?;
    Some(InteractionEdge {
        edge_id: format!("edge:tool:{}", tool.call_id),
        kind: "close_agent".into(),
        source: TraceAnchor::ToolCall {
            tool_call_id: tool.call_id.clone(),
        },
        target: TraceAnchor::Thread { thread_id: target },
        started_at_unix_ms: tool.start().0,
        ended_at_unix_ms: tool.ended.map(|e| e.0),
        carried_item_ids: Vec::new(),
        carried_raw_payload_ids: Vec::new(),
    })
}
