//! Raw trace events: the envelope and vocabulary of Codex's rollout-trace events
//! (`codex-rs/rollout-trace/src/raw_event.rs`), extended with the facts that only
//! OpenTelemetry carries. One event per observation; each keeps its OTLP evidence.

use serde::{Deserialize, Serialize};

pub const RAW_EVENT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub schema_version: u32,
    /// Contiguous per bundle, from 1, assigned by the store.
    pub seq: u64,
    /// When the observed thing happened (Codex's own clock), not when it was received.
    pub wall_time_unix_ms: i64,
    pub rollout_id: String,
    pub thread_id: Option<String>,
    pub codex_turn_id: Option<String>,
    pub payload: RawEventPayload,
    /// Where this event came from; absent for events the collector itself decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// The OTLP record behind an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable hash of the OTLP record: the same record sent twice is stored once.
    pub record_id: String,
    /// `logs`, `traces` or `metrics`.
    pub signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The payload file holding the record, and its index there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_payload: Option<RawPayloadRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawPayloadRef {
    pub raw_payload_id: String,
    pub kind: String,
    pub path: String,
    pub index: usize,
    /// Byte offset of the payload's line in a payload pack (`path`); absent for a
    /// payload stored as a whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
    Aborted,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_output_tokens: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
}

impl TokenUsage {
    /// Adds `other` to these totals (`total_tokens` stays unknown until one side
    /// knows it).
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_output_tokens += other.reasoning_output_tokens;
        if let Some(t) = other.total_tokens {
            self.total_tokens = Some(self.total_tokens.unwrap_or(0) + t);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawEventPayload {
    /// First event of a bundle.
    RolloutStarted {
        trace_id: String,
        root_thread_id: String,
    },
    /// The collector closed the rollout: the Codex process exited or went idle.
    RolloutEnded {
        status: ExecutionStatus,
        reason: String,
    },
    /// `codex.conversation_starts`: a thread (conversation) started in a Codex process.
    ThreadStarted(Box<ThreadStartedFields>),
    /// The Codex process flushed its telemetry on exit.
    ProcessExited { service_name: Option<String> },
    /// A turn span began (`session_task.turn`, `turn/start`, `run_turn`).
    CodexTurnStarted {
        codex_turn_id: String,
        thread_id: Option<String>,
        source: String,
    },
    /// A turn span ended. Codex never marks failure; the reducer infers the status.
    CodexTurnEnded {
        codex_turn_id: String,
        source: String,
    },
    /// `codex.user_prompt`.
    UserPrompt {
        prompt: Option<String>,
        prompt_length: Option<i64>,
    },
    /// `codex.api_request`: one HTTP attempt of an inference call.
    InferenceAttempt(Box<InferenceAttemptFields>),
    /// `codex.sse_event` other than the completion with usage.
    InferenceStreamEvent {
        kind: Option<String>,
        duration_ms: Option<i64>,
    },
    /// `codex.sse_event` `response.completed` with token counts.
    InferenceCompleted {
        usage: TokenUsage,
        ttft_ms: Option<i64>,
    },
    /// A failed stream (`codex.sse_event` with `error.message`) or a
    /// `handle_response_stream_error` span.
    InferenceFailed {
        error_message: Option<String>,
        source: String,
    },
    /// `codex.turn_ttft`.
    TurnTtft { duration_ms: Option<i64> },
    /// `codex.tool_decision`.
    ToolCallApproval(Box<ToolCallApprovalFields>),
    /// The tool's own span began (a span named after the tool, with `call_id`).
    ToolCallStarted {
        tool_call_id: String,
        tool_name: Option<String>,
    },
    /// `codex.tool_result`.
    ToolCallEnded(Box<ToolCallEndedFields>),
    /// `unified_exec.exec_command`: the process that ran a command.
    TerminalProcess {
        tool_call_id: String,
        process_id: Option<String>,
        outcome: Option<String>,
    },
    /// Any other log record, kept as evidence.
    OtelLog {
        event_name: Option<String>,
        scope: String,
    },
    /// Any other span, kept as evidence.
    OtelSpan { name: String },
    /// A metric, kept as evidence (Codex's metrics carry no session ids).
    OtelMetric { name: String, points: usize },
}

impl RawEventPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RolloutStarted { .. } => "rollout_started",
            Self::RolloutEnded { .. } => "rollout_ended",
            Self::ThreadStarted(_) => "thread_started",
            Self::ProcessExited { .. } => "process_exited",
            Self::CodexTurnStarted { .. } => "codex_turn_started",
            Self::CodexTurnEnded { .. } => "codex_turn_ended",
            Self::UserPrompt { .. } => "user_prompt",
            Self::InferenceAttempt(_) => "inference_attempt",
            Self::InferenceStreamEvent { .. } => "inference_stream_event",
            Self::InferenceCompleted { .. } => "inference_completed",
            Self::InferenceFailed { .. } => "inference_failed",
            Self::TurnTtft { .. } => "turn_ttft",
            Self::ToolCallApproval(_) => "tool_call_approval",
            Self::ToolCallStarted { .. } => "tool_call_started",
            Self::ToolCallEnded(_) => "tool_call_ended",
            Self::TerminalProcess { .. } => "terminal_process",
            Self::OtelLog { .. } => "otel_log",
            Self::OtelSpan { .. } => "otel_span",
            Self::OtelMetric { .. } => "otel_metric",
        }
    }

    /// Events that only keep evidence; the reducer skips them.
    pub fn is_evidence_only(&self) -> bool {
        matches!(
            self,
            Self::OtelLog { .. } | Self::OtelSpan { .. } | Self::OtelMetric { .. }
        )
    }

    /// [`Self::is_evidence_only`] by the serialized `type` tag (see [`Self::type_name`]).
    pub fn is_evidence_only_type(type_name: &str) -> bool {
        matches!(type_name, "otel_log" | "otel_span" | "otel_metric")
    }
}

// The larger payloads are boxed, so every event in memory is not as large as they are
// (a rollout's events are most of the collector's memory). Boxed, they serialize the same.

/// What `codex.conversation_starts` tells of a thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadStartedFields {
    pub thread_id: String,
    pub agent_path: Option<String>,
    pub provider_name: Option<String>,
    pub model: Option<String>,
    pub originator: Option<String>,
    pub service_name: Option<String>,
    pub app_version: Option<String>,
    pub approval_policy: Option<String>,
    pub sandbox_policy: Option<String>,
}

/// One HTTP attempt of an inference call (`codex.api_request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceAttemptFields {
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error_message: Option<String>,
    pub upstream_request_id: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
}

/// A tool call's approval decision (`codex.tool_decision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallApprovalFields {
    pub tool_call_id: String,
    pub tool_name: Option<String>,
    pub decision: Option<String>,
    pub source: Option<String>,
}

/// A tool call's result (`codex.tool_result`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallEndedFields {
    pub tool_call_id: String,
    pub tool_name: Option<String>,
    pub success: Option<bool>,
    pub duration_ms: Option<i64>,
    pub arguments: Option<String>,
    pub output: Option<String>,
    pub output_truncated: Option<bool>,
    pub mcp_server: Option<String>,
    pub agent_name: Option<String>,
}
