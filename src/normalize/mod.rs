//! normalize: a pure function from OTLP Export requests to raw trace events.
//!
//! Every Codex quirk is handled here, once: event names hidden in attributes, numbers
//! sent as strings, turn ids that are counters in old versions, the exit-time flush
//! record, tool names that differ between versions. A record this module does not
//! understand still becomes an evidence-only event; nothing is dropped.

pub mod attributes;
mod log_record;
mod metric;
pub mod raw_event;
mod record_ids;
pub mod record_json;
mod span;
pub mod time;
pub mod tool_arguments;
pub mod tool_output;

use crate::receive::otlp::{AnyValue, LogsRequest, MetricsRequest, Resource, TracesRequest};
use record_ids::record_id;
use std::borrow::Cow;

pub use record_json::RecordJson;

pub use raw_event::{ExecutionStatus, RawEvent, RawEventPayload, TokenUsage};

/// Which signal a record came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Traces,
    Metrics,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    /// The signal named by [`Signal::as_str`].
    pub fn parse(name: &str) -> Option<Signal> {
        match name {
            "logs" => Some(Signal::Logs),
            "traces" => Some(Signal::Traces),
            "metrics" => Some(Signal::Metrics),
            _ => None,
        }
    }
}

/// What ties a record to a rollout. `conversation_id` is decisive; the trace and turn
/// ids let the pipeline attribute records that carry no conversation id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribution {
    pub conversation_id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub parent_span_id: Option<String>,
    pub turn_id: Option<String>,
    /// A sub-agent this record spawned (its conversation id): its records join this rollout.
    pub spawned_conversation_id: Option<String>,
}

/// One event a record gives, before the store gives it a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingEvent {
    pub wall_time_unix_ms: i64,
    pub payload: RawEventPayload,
}

/// One OTLP record, normalized.
#[derive(Clone, Debug)]
pub struct NormalizedRecord {
    pub record_id: String,
    pub signal: Signal,
    pub attribution: Attribution,
    pub events: Vec<PendingEvent>,
    /// The record itself, as JSON, for the bundle's payload file (written once, when
    /// normalized).
    pub evidence: RecordJson,
}

impl NormalizedRecord {
    /// Whether the record says something the reducer uses.
    pub fn is_semantic(&self) -> bool {
        self.events.iter().any(|e| !e.payload.is_evidence_only())
    }
}

/// The log records of a request, normalized, in the order sent.
pub fn logs(request: &LogsRequest) -> Vec<NormalizedRecord> {
    log_record::normalize(request)
}

/// The spans of a request, normalized, in the order sent.
pub fn traces(request: &TracesRequest) -> Vec<NormalizedRecord> {
    span::normalize(request)
}

/// The metrics of a request, normalized, in the order sent.
pub fn metrics(request: &MetricsRequest) -> Vec<NormalizedRecord> {
    metric::normalize(request)
}

pub(crate) fn id_hex(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        None
    } else {
        Some(hex_string(bytes))
    }
}

/// `bytes` in lowercase hex (`hex::encode` builds its string a char at a time, which
/// showed in profiles: every record has three or four ids). An id (up to 32 bytes) is
/// written on the stack and copied once into its string, which is not zeroed first.
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    let mut on_stack = [0; 64];
    let mut on_heap = Vec::new();
    let text = match on_stack.get_mut(..bytes.len() * 2) {
        Some(text) => text,
        None => {
            on_heap.resize(bytes.len() * 2, 0);
            &mut on_heap[..]
        }
    };
    crate::hex_digits::write_lowercase_hex(bytes, text);
    debug_assert!(text.is_ascii());
    // SAFETY: `write_lowercase_hex` writes only ASCII digits and letters, which are UTF-8
    // (checking them again cost as much as writing them).
    unsafe { std::str::from_utf8_unchecked(text) }.to_owned()
}

/// Codex 0.80 sends the per-process submission counter ("0", "1") as the turn id.
/// Such ids are made unique by prefixing the trace they belong to.
pub(crate) fn canonical_turn_id(raw: &str, trace_id: Option<&str>) -> String {
    let looks_unique = raw.len() >= 16 && raw.contains('-');
    match (looks_unique, trace_id) {
        (false, Some(trace)) => format!("{trace}:{raw}"),
        _ => raw.to_string(),
    }
}

/// Codex thread ids are UUIDs. Some spans use `thread.id` for the OS thread number.
pub(crate) fn thread_id_attr(value: Option<Cow<'_, str>>) -> Option<String> {
    value
        .filter(|v| v.len() >= 32 && v.contains('-'))
        .map(Cow::into_owned)
}

/// [`thread_id_attr`] of an attribute's value. An integer or a boolean is never one
/// (its text is at most 20 characters), so it is not formatted: most spans carry
/// `thread.id` as the OS thread's number.
pub(crate) fn thread_id_value(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::Int(_) | AnyValue::Bool(_) => None,
        other => thread_id_attr(attributes::value_to_text(other)),
    }
}

/// What a record's id tells its resource by: the service's name and version.
pub(crate) fn resource_key(resource: &Resource) -> String {
    let a = attributes::Attributes(&resource.attributes);
    let name = a.non_empty("service.name");
    let version = a.non_empty("service.version");
    format!(
        "{}|{}",
        name.as_deref().unwrap_or(""),
        version.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_id_value_is_what_its_text_would_give() {
        let uuid = "019a5c3e-7b1f-7c2a-9d4e-0123456789ab";
        let values = [
            AnyValue::String(uuid),
            AnyValue::String("019a5c3e7b1f7c2a9d4e0123456789ab"),
            AnyValue::String(""),
            AnyValue::Int(3),
            AnyValue::Int(i64::MIN),
            AnyValue::Bool(true),
            // A double's text has no exponent: this one is long and has a '-'.
            AnyValue::Double(-1e-40),
            AnyValue::Double(-1.5),
            AnyValue::Bytes(b"0123456789abcdef0123456789abcdef-"),
            AnyValue::Empty,
        ];
        for value in values {
            let text = attributes::value_to_string(&value);
            assert_eq!(
                thread_id_value(&value),
                thread_id_attr(text.map(Cow::Owned)),
                "{value:?}"
            );
        }
        assert_eq!(
            thread_id_value(&AnyValue::String(uuid)).as_deref(),
            Some(uuid)
        );
        assert!(thread_id_value(&AnyValue::Double(-1e-40)).is_some());
    }

    #[test]
    fn hex_strings_are_lowercase_digit_pairs_of_any_length() {
        let every_byte: Vec<u8> = (0..=u8::MAX).collect();
        // Ids fit the stack buffer; attribute bytes may not.
        for bytes in [
            &[][..],
            &[0xab],
            &every_byte[..8],
            &every_byte[..32],
            &every_byte,
        ] {
            assert_eq!(hex_string(bytes), hex::encode(bytes));
        }
    }
}
