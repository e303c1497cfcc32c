//! The canonical order of a rollout's events. Export batching and arrival order mean
//! nothing, so events are ordered by Codex's own clock, then by a fixed rank for
//! events in the same millisecond, then by record id. This order alone drives the
//! reducer, which makes the graph the same however the events arrived.

use super::kept::{KeptEvent, KeptRecordId};
use crate::normalize::RawEventPayload as P;

/// Rank of an event among events of the same millisecond: the order Codex emits them.
fn rank(payload: &P) -> u8 {
    match payload {
        P::RolloutStarted { .. } => 0,
        P::ThreadStarted(_) => 1,
        P::CodexTurnStarted { .. } => 2,
        P::UserPrompt { .. } => 3,
        P::InferenceAttempt(_) => 4,
        P::InferenceStreamEvent { kind, .. } => 5 + stream_event_rank(kind.as_deref()),
        P::InferenceCompleted { .. } | P::InferenceFailed { .. } => 11,
        P::TurnTtft { .. } => 12,
        P::ToolCallStarted { .. } => 13,
        P::ToolCallApproval(_) => 14,
        P::TerminalProcess { .. } => 15,
        P::ToolCallEnded(_) => 16,
        P::CodexTurnEnded { .. } => 17,
        P::OtelLog { .. } | P::OtelSpan { .. } | P::OtelMetric { .. } => 18,
        P::ProcessExited { .. } => 19,
        P::RolloutEnded { .. } => 20,
    }
}

fn stream_event_rank(kind: Option<&str>) -> u8 {
    match kind {
        Some("response.created") => 0,
        Some("response.output_item.added") => 1,
        Some(k) if k.ends_with(".delta") => 2,
        Some("response.output_item.done") => 3,
        Some("response.completed") => 5,
        _ => 4,
    }
}

/// Sorts events into canonical order.
pub fn canonical<'a>(events: impl IntoIterator<Item = &'a KeptEvent>) -> Vec<&'a KeptEvent> {
    let mut sorted: Vec<&KeptEvent> = events.into_iter().collect();
    sorted.sort_by(|a, b| {
        let key = |e: &'a KeptEvent| (e.wall_time_unix_ms, rank(&e.payload));
        key(a)
            .cmp(&key(b))
            .then_with(|| KeptRecordId::cmp_as_text(record_id(a), record_id(b)))
            .then_with(|| a.payload.type_name().cmp(b.payload.type_name()))
    });
    sorted
}

fn record_id(e: &KeptEvent) -> Option<&KeptRecordId> {
    e.evidence.as_ref().map(|ev| &ev.record_id)
}
