//! The rollout graph, in the shape and with the field names of Codex's `state.json`
//! (`codex-rs/rollout-trace/src/model`). Facts that only OpenTelemetry has get fields
//! of their own, marked in their doc comments.

use crate::normalize::{ExecutionStatus, TokenUsage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GRAPH_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutGraph {
    pub schema_version: u32,
    pub trace_id: String,
    pub rollout_id: String,
    pub started_at_unix_ms: Option<i64>,
    pub ended_at_unix_ms: Option<i64>,
    /// `running` or `completed` (Codex's RolloutStatus).
    pub status: String,
    /// False: telemetry is never proof that nothing is missing.
    pub recording_complete: bool,
    pub root_thread_id: String,
    pub threads: BTreeMap<String, Thread>,
    pub codex_turns: BTreeMap<String, CodexTurn>,
    pub conversation_items: BTreeMap<String, ConversationItem>,
    pub inference_calls: BTreeMap<String, InferenceCall>,
    pub code_cells: BTreeMap<String, serde_json::Value>,
    pub tool_calls: BTreeMap<String, ToolCall>,
    pub terminal_sessions: BTreeMap<String, TerminalSession>,
    pub terminal_operations: BTreeMap<String, TerminalOperation>,
    pub compactions: BTreeMap<String, serde_json::Value>,
    pub compaction_requests: BTreeMap<String, serde_json::Value>,
    pub interaction_edges: BTreeMap<String, InteractionEdge>,
    pub raw_payloads: BTreeMap<String, RawPayload>,
    /// Telemetry only: where the graph came from.
    pub telemetry: RolloutTelemetry,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutTelemetry {
    pub codex_version: Option<String>,
    pub service_name: Option<String>,
    pub originator: Option<String>,
    /// Semantic events reduced.
    pub event_count: u64,
    /// OTLP records stored in the bundle, the ones kept only as evidence included.
    pub record_count: u64,
    /// `process_exit` or `idle_timeout` once the collector closed the rollout.
    pub closed_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub started_at_unix_ms: i64,
    pub started_seq: u64,
    pub ended_at_unix_ms: Option<i64>,
    pub ended_seq: Option<u64>,
    pub status: ExecutionStatus,
}

impl Execution {
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at_unix_ms
            .map(|end| end - self.started_at_unix_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentOrigin {
    Root,
    Spawned {
        parent_thread_id: String,
        spawned_by_tool_call_id: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub thread_id: String,
    pub agent_path: String,
    pub nickname: Option<String>,
    pub origin: AgentOrigin,
    pub execution: Execution,
    pub default_model: Option<String>,
    pub conversation_item_ids: Vec<String>,
    /// Telemetry only: `provider_name` of `codex.conversation_starts`.
    pub provider_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodexTurn {
    pub codex_turn_id: String,
    pub thread_id: String,
    pub execution: Execution,
    pub input_item_ids: Vec<String>,
    /// Telemetry only: the turn's tokens, summed over its inference calls.
    pub usage: TokenUsage,
    /// Telemetry only: `codex.turn_ttft`.
    pub ttft_ms: Option<i64>,
    /// Telemetry only: how the end was known (`span`, `final_response`, `next_turn`,
    /// `process_exit`, `idle_timeout`), or null while it runs.
    pub closed_by: Option<String>,
    /// Telemetry only: the OTLP trace id of the turn, when spans were exported.
    pub otel_trace_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceCall {
    pub inference_call_id: String,
    pub thread_id: String,
    pub codex_turn_id: Option<String>,
    pub execution: Execution,
    pub model: Option<String>,
    pub provider_name: Option<String>,
    pub response_id: Option<String>,
    pub upstream_request_id: Option<String>,
    pub request_item_ids: Vec<String>,
    pub response_item_ids: Vec<String>,
    pub tool_call_ids_started_by_response: Vec<String>,
    pub usage: Option<TokenUsage>,
    pub raw_request_payload_id: Option<String>,
    pub raw_response_payload_id: Option<String>,
    /// Telemetry only: one entry per HTTP attempt (`codex.api_request`).
    pub attempts: Vec<HttpAttempt>,
    /// Telemetry only: time to first token, as Codex measured it.
    pub ttft_ms: Option<i64>,
    /// Telemetry only: the error of a failed call.
    pub error: Option<String>,
    /// Telemetry only: OTLP span id of the call's `endpoint_session` span.
    pub otel_span_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpAttempt {
    pub attempt: i64,
    pub started_at_unix_ms: i64,
    pub ended_at_unix_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub upstream_request_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolCallKind {
    ExecCommand,
    WriteStdin,
    ApplyPatch,
    Web,
    ImageGeneration,
    SpawnAgent,
    AssignAgentTask,
    SendMessage,
    WaitAgent,
    CloseAgent,
    Other { name: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolCallSummary {
    Terminal {
        operation_id: String,
    },
    Generic {
        label: String,
        input_preview: Option<String>,
        output_preview: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requester {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub tool_call_id: String,
    pub mcp_call_id: Option<String>,
    pub model_visible_call_id: Option<String>,
    pub code_mode_runtime_tool_id: Option<String>,
    pub thread_id: String,
    pub started_by_codex_turn_id: Option<String>,
    pub execution: Execution,
    pub requester: Requester,
    pub kind: ToolCallKind,
    pub model_visible_call_item_ids: Vec<String>,
    pub model_visible_output_item_ids: Vec<String>,
    pub terminal_operation_id: Option<String>,
    pub summary: ToolCallSummary,
    pub raw_invocation_payload_id: Option<String>,
    pub raw_result_payload_id: Option<String>,
    pub raw_runtime_payload_ids: Vec<String>,
    /// Telemetry only: the tool name Codex logged.
    pub tool_name: Option<String>,
    /// Telemetry only: `codex.tool_decision`.
    pub approval: Option<Approval>,
    /// Telemetry only: `success` of `codex.tool_result` (not an exit code).
    pub success: Option<bool>,
    /// Telemetry only: the MCP server, for MCP tools.
    pub mcp_server: Option<String>,
    /// Telemetry only: the inference call whose response asked for this tool.
    pub started_by_inference_call_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub decision: Option<String>,
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalSession {
    pub terminal_id: String,
    pub thread_id: String,
    pub created_by_operation_id: String,
    pub operation_ids: Vec<String>,
    pub execution: Execution,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalOperation {
    pub operation_id: String,
    pub terminal_id: Option<String>,
    pub tool_call_id: String,
    /// `exec_command` or `write_stdin`.
    pub kind: String,
    pub execution: Execution,
    pub request: serde_json::Value,
    pub result: Option<TerminalResult>,
    pub model_observations: Vec<serde_json::Value>,
    pub raw_payload_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalResult {
    pub exit_code: Option<i32>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub formatted_output: Option<String>,
    pub original_token_count: Option<u64>,
    pub chunk_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationItem {
    pub item_id: String,
    pub thread_id: String,
    pub codex_turn_id: Option<String>,
    pub role: String,
    /// `message`, `function_call` or `function_call_output`.
    pub kind: String,
    pub call_id: Option<String>,
    pub text: Option<String>,
    pub first_seen_at_unix_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceAnchor {
    ToolCall { tool_call_id: String },
    Thread { thread_id: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InteractionEdge {
    pub edge_id: String,
    pub kind: String,
    pub source: TraceAnchor,
    pub target: TraceAnchor,
    pub started_at_unix_ms: i64,
    pub ended_at_unix_ms: Option<i64>,
    pub carried_item_ids: Vec<String>,
    pub carried_raw_payload_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawPayload {
    pub raw_payload_id: String,
    pub kind: String,
    pub path: String,
}
