//! A raw event as the store writes it to `trace.jsonl`, borrowed from the record it
//! came from.
//!
//! An Export's events share their rollout, payload reference and, per record, their
//! ids. Building a [`RawEvent`] for each would copy all of those strings once per
//! event, only to serialize them and drop the copies (most events are evidence the
//! reducer never keeps). An [`EventLine`] points at them instead, and serializes to
//! exactly the bytes its [`RawEvent`] would (same fields, order and omissions; the
//! tests compare the two).

use crate::normalize::RawEventPayload;
use crate::normalize::raw_event::{RAW_EVENT_SCHEMA_VERSION, RawEvent};
use serde::Serialize;

/// An event that is given its `seq` as it is appended (see [`super::Bundle::append_events`]).
pub trait Sequenced: Serialize {
    fn set_seq(&mut self, seq: u64);
}

impl Sequenced for RawEvent {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

/// [`RawEvent`] with borrowed fields; always has evidence.
#[derive(Serialize)]
pub struct EventLine<'a> {
    schema_version: u32,
    pub seq: u64,
    pub wall_time_unix_ms: i64,
    pub rollout_id: &'a str,
    pub thread_id: Option<&'a str>,
    pub codex_turn_id: Option<&'a str>,
    pub payload: &'a RawEventPayload,
    pub evidence: EvidenceLine<'a>,
}

/// [`crate::normalize::raw_event::Evidence`], borrowed, with its payload reference.
#[derive(Serialize)]
pub struct EvidenceLine<'a> {
    pub record_id: &'a str,
    pub signal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<&'a str>,
    pub raw_payload: PayloadRefLine<'a>,
}

/// [`crate::normalize::raw_event::RawPayloadRef`] of a payload pack line, borrowed.
#[derive(Serialize)]
pub struct PayloadRefLine<'a> {
    pub raw_payload_id: &'a str,
    pub kind: &'a str,
    pub path: &'a str,
    pub index: usize,
    pub offset: u64,
}

impl<'a> EventLine<'a> {
    /// An event line with no `seq` yet.
    pub fn new(
        wall_time_unix_ms: i64,
        rollout_id: &'a str,
        thread_id: Option<&'a str>,
        codex_turn_id: Option<&'a str>,
        payload: &'a RawEventPayload,
        evidence: EvidenceLine<'a>,
    ) -> Self {
        EventLine {
            schema_version: RAW_EVENT_SCHEMA_VERSION,
            seq: 0,
            wall_time_unix_ms,
            rollout_id,
            thread_id,
            codex_turn_id,
            payload,
            evidence,
        }
    }

    /// The event this line stands for, owned (for the reducer, which keeps it).
    pub fn to_raw_event(&self) -> RawEvent {
        use crate::normalize::raw_event::{Evidence, RawPayloadRef};
        let evidence = &self.evidence;
        let payload_ref = &evidence.raw_payload;
        RawEvent {
            schema_version: self.schema_version,
            seq: self.seq,
            wall_time_unix_ms: self.wall_time_unix_ms,
            rollout_id: self.rollout_id.to_string(),
            thread_id: self.thread_id.map(str::to_string),
            codex_turn_id: self.codex_turn_id.map(str::to_string),
            payload: self.payload.clone(),
            evidence: Some(Evidence {
                record_id: evidence.record_id.to_string(),
                signal: evidence.signal.to_string(),
                trace_id: evidence.trace_id.map(str::to_string),
                span_id: evidence.span_id.map(str::to_string),
                parent_span_id: evidence.parent_span_id.map(str::to_string),
                raw_payload: Some(RawPayloadRef {
                    raw_payload_id: payload_ref.raw_payload_id.to_string(),
                    kind: payload_ref.kind.to_string(),
                    path: payload_ref.path.to_string(),
                    index: payload_ref.index,
                    offset: Some(payload_ref.offset),
                }),
            }),
        }
    }
}

impl Sequenced for EventLine<'_> {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::raw_event::ToolCallEndedFields;

    fn line<'a>(
        payload: &'a RawEventPayload,
        thread: Option<&'a str>,
        turn: Option<&'a str>,
        ids: [Option<&'a str>; 3],
    ) -> EventLine<'a> {
        let mut line = EventLine::new(
            1_795_312_060_796,
            "01a200f0-09c5-7f30-b451-62bbbee265fa",
            thread,
            turn,
            payload,
            EvidenceLine {
                record_id: "de3d90db00ec4d54bfd6833a",
                signal: "traces",
                trace_id: ids[0],
                span_id: ids[1],
                parent_span_id: ids[2],
                raw_payload: PayloadRefLine {
                    raw_payload_id: "raw_payload:pack@1024",
                    kind: "otlp_traces",
                    path: "payloads.jsonl",
                    index: 28,
                    offset: 1024,
                },
            },
        );
        line.set_seq(30);
        line
    }

    #[test]
    fn serializes_exactly_as_the_raw_event_it_stands_for() {
        let payloads = [
            RawEventPayload::OtelSpan {
                name: "fs.get_metadata \"quoted\" \u{1}".into(),
            },
            RawEventPayload::ToolCallEnded(Box::new(ToolCallEndedFields {
                tool_call_id: "call_1".into(),
                tool_name: Some("exec_command".into()),
                success: Some(true),
                duration_ms: None,
                arguments: Some("{\"cmd\":\"ls\"}".into()),
                output: None,
                output_truncated: Some(false),
                mcp_server: None,
                agent_name: None,
            })),
        ];
        let id_sets = [
            [None, None, None],
            [Some("f26b3db9587a038cf4f4b36f97fc905b"), None, None],
            [
                Some("f26b3db9587a038cf4f4b36f97fc905b"),
                Some("33da792dd70882cb"),
                Some("8e1a826410e70adc"),
            ],
        ];
        for payload in &payloads {
            for ids in id_sets {
                for (thread, turn) in [(None, None), (Some("thread-1"), Some("turn-1"))] {
                    let line = line(payload, thread, turn, ids);
                    let event = line.to_raw_event();
                    assert_eq!(
                        serde_json::to_string(&line).unwrap(),
                        serde_json::to_string(&event).unwrap()
                    );
                    let read: RawEvent =
                        serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
                    assert_eq!(read, event);
                }
            }
        }
    }
}
