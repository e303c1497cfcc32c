//! Sub-agents. A spawned child is a thread of its own (its own `conversation.id`);
//! the `spawn_agent` result names it (`{"agent_id": ..., "nickname": ...}`). Codex's
//! reducer draws a spawn edge from the spawn tool call to the child thread, and a
//! close edge from `close_agent` to the thread it closed.

use super::graph::{InteractionEdge, ToolCallKind, TraceAnchor};
use super::tools::ToolBuild;

/// What a `spawn_agent` result says about the child.
pub struct Spawned {
    pub child_thread_id: String,
    pub nickname: Option<String>,
}

pub fn spawned_child(tool: &ToolBuild) -> Option<Spawned> {
    if tool.kind() != ToolCallKind::SpawnAgent {
        return None;
    }
    let output: serde_json::Value = serde_json::from_str(tool.output.as_deref()?).ok()?;
    Some(Spawned {
        child_thread_id: output
            .get("agent_id")
            .or_else(|| output.get("thread_id"))?
            .as_str()?
            .to_string(),
        nickname: output
            .get("nickname")
            .and_then(|n| n.as_str())
            .map(str::to_string),
    })
}

/// The thread a close (or another targeted agent tool) acts on.
fn target_thread(tool: &ToolBuild) -> Option<String> {
    let args = tool.arguments_json()?;
    ["target", "id", "agent_id", "thread_id"]
        .iter()
        .find_map(|k| args.get(*k).and_then(|v| v.as_str()).map(str::to_string))
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
