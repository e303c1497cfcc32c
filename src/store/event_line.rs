//! A raw event as the store writes it to `trace.jsonl`, borrowed from the record it
//! came from.
//!
//! An Export's events share their rollout, payload reference and, per record, their
//! ids. Building a [`RawEvent`] for each would copy all of those strings once per
//! event, only to serialize them and drop the copies (most events are evidence the
//! reducer never keeps). An [`EventLine`] points at them instead, and writes exactly
//! the bytes its [`RawEvent`] would (same fields, order and omissions; the tests
//! compare the two). It writes them itself, not through `serde`: the keys are fixed
//! text, and ids need no escaping, so most of a line is copied rather than escaped
//! byte by byte (this was the storer thread's largest cost after its write calls).

use crate::json_text::{push_integer_member, push_member, push_optional_member};
use crate::normalize::RawEventPayload;
use crate::normalize::raw_event::{RAW_EVENT_SCHEMA_VERSION, RawEvent};

/// An event that is given its `seq` as it is appended (see [`super::Bundle::append_events`]).
pub trait Sequenced {
    fn set_seq(&mut self, seq: u64);
    /// Appends the event as one line of JSON, without its newline.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl Sequenced for RawEvent {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// [`RawEvent`] with borrowed fields; always has evidence.
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
pub struct EvidenceLine<'a> {
    pub record_id: &'a str,
    pub signal: &'a str,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub parent_span_id: Option<&'a str>,
    pub raw_payload: PayloadRefLine<'a>,
}

/// [`crate::normalize::raw_event::RawPayloadRef`] of a payload pack line, borrowed.
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

    /// The event this line stands for, owned (what the tests compare the line with;
    /// the reducer keeps what it reads of the line itself, see
    /// [`crate::reduce::RolloutState::push_line`]).
    #[cfg(test)]
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

    // Field for field what `serde_json` makes of the `RawEvent`: `thread_id` and
    // `codex_turn_id` are `null` when absent, the evidence's optional ids are left out.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let evidence = &self.evidence;
        let payload_ref = &evidence.raw_payload;
        push_integer_member(out, "{\"schema_version\":", self.schema_version);
        push_integer_member(out, ",\"seq\":", self.seq);
        push_integer_member(out, ",\"wall_time_unix_ms\":", self.wall_time_unix_ms);
        push_member(out, ",\"rollout_id\":", self.rollout_id);
        for (key, id) in [
            (",\"thread_id\":", self.thread_id),
            (",\"codex_turn_id\":", self.codex_turn_id),
        ] {
            push_optional_member(out, key, id);
        }
        out.extend_from_slice(b",\"payload\":");
        push_payload(out, self.payload)?;
        push_member(out, ",\"evidence\":{\"record_id\":", evidence.record_id);
        push_member(out, ",\"signal\":", evidence.signal);
        for (key, id) in [
            (",\"trace_id\":", evidence.trace_id),
            (",\"span_id\":", evidence.span_id),
            (",\"parent_span_id\":", evidence.parent_span_id),
        ] {
            if let Some(id) = id {
                push_member(out, key, id);
            }
        }
        for (key, text) in [
            (
                ",\"raw_payload\":{\"raw_payload_id\":",
                payload_ref.raw_payload_id,
            ),
            (",\"kind\":", payload_ref.kind),
            (",\"path\":", payload_ref.path),
        ] {
            push_member(out, key, text);
        }
        push_integer_member(out, ",\"index\":", payload_ref.index);
        push_integer_member(out, ",\"offset\":", payload_ref.offset);
        out.extend_from_slice(b"}}}");
        Ok(())
    }
}

/// The evidence-only payloads (most lines), and the commonest of the others (a
/// stream's events, a turn's start and end), are written here; the rest by `serde`.
fn push_payload(out: &mut Vec<u8>, payload: &RawEventPayload) -> serde_json::Result<()> {
    match payload {
        RawEventPayload::OtelSpan { name } => {
            push_member(out, "{\"type\":\"otel_span\",\"name\":", name);
        }
        RawEventPayload::OtelLog { event_name, scope } => {
            let event_name = event_name.as_deref();
            push_optional_member(out, "{\"type\":\"otel_log\",\"event_name\":", event_name);
            push_member(out, ",\"scope\":", scope);
        }
        RawEventPayload::InferenceStreamEvent { kind, duration_ms } => {
            let (key, kind) = (
                "{\"type\":\"inference_stream_event\",\"kind\":",
                kind.as_deref(),
            );
            push_optional_member(out, key, kind);
            match duration_ms {
                Some(ms) => push_integer_member(out, ",\"duration_ms\":", *ms),
                None => out.extend_from_slice(b",\"duration_ms\":null"),
            }
        }
        RawEventPayload::CodexTurnStarted {
            codex_turn_id,
            thread_id,
            source,
        } => {
            let key = "{\"type\":\"codex_turn_started\",\"codex_turn_id\":";
            push_member(out, key, codex_turn_id);
            push_optional_member(out, ",\"thread_id\":", thread_id.as_deref());
            push_member(out, ",\"source\":", source);
        }
        RawEventPayload::CodexTurnEnded {
            codex_turn_id,
            source,
        } => {
            let key = "{\"type\":\"codex_turn_ended\",\"codex_turn_id\":";
            push_member(out, key, codex_turn_id);
            push_member(out, ",\"source\":", source);
        }
        other => return serde_json::to_writer(out, other),
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::raw_event::ToolCallEndedFields;
    use crate::reduce::kept::Interner;
    use proptest::prelude::*;

    fn line<'a>(
        payload: &'a RawEventPayload,
        rollout: &'a str,
        thread: Option<&'a str>,
        turn: Option<&'a str>,
        ids: [Option<&'a str>; 3],
    ) -> EventLine<'a> {
        let mut line = EventLine::new(
            1_795_312_060_796,
            rollout,
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

    /// The line's bytes are the `RawEvent`'s, and read back as it; and the reducer
    /// keeps the same of the line as of the `RawEvent`.
    fn assert_written_as_its_raw_event(line: &EventLine<'_>) {
        let event = line.to_raw_event();
        let mut written = Vec::new();
        line.write_json(&mut written).unwrap();
        assert_eq!(
            String::from_utf8(written.clone()).unwrap(),
            serde_json::to_string(&event).unwrap()
        );
        let read: RawEvent = serde_json::from_slice(&written).unwrap();
        assert_eq!(read, event);
        let kept_of_line = Interner::default().keep_line(line);
        let kept_of_event = Interner::default().keep(event);
        assert_eq!(format!("{kept_of_line:?}"), format!("{kept_of_event:?}"));
    }

    #[test]
    fn writes_exactly_the_raw_event_it_stands_for() {
        let payloads = [
            RawEventPayload::OtelSpan {
                name: "fs.get_metadata \"quoted\" \u{1}".into(),
            },
            RawEventPayload::OtelSpan {
                name: "handle_responses".into(),
            },
            RawEventPayload::OtelLog {
                event_name: Some("codex.sse_event".into()),
                scope: "codex_otel.log_only".into(),
            },
            RawEventPayload::OtelLog {
                event_name: None,
                scope: "back\\slash\n".into(),
            },
            RawEventPayload::InferenceStreamEvent {
                kind: Some("response.output_item.done".into()),
                duration_ms: Some(-3),
            },
            RawEventPayload::InferenceStreamEvent {
                kind: None,
                duration_ms: None,
            },
            RawEventPayload::CodexTurnStarted {
                codex_turn_id: "019a5c3e-7b1f-7c2a-9d4e-0123456789ab".into(),
                thread_id: Some("thread \"1\"".into()),
                source: "turn/start".into(),
            },
            RawEventPayload::CodexTurnStarted {
                codex_turn_id: "5f476de8:0".into(),
                thread_id: None,
                source: "session_task.turn".into(),
            },
            RawEventPayload::CodexTurnEnded {
                codex_turn_id: "turn\n".into(),
                source: "run_turn".into(),
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
            [None, Some("span \"odd\""), Some("\u{7f}é\t")],
        ];
        for payload in &payloads {
            for ids in id_sets {
                for (thread, turn) in [(None, None), (Some("thread-1"), Some("turn-1"))] {
                    let rollout = "01a200f0-09c5-7f30-b451-62bbbee265fa";
                    assert_written_as_its_raw_event(&line(payload, rollout, thread, turn, ids));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_strings_are_written_as_serde_json_writes_them(
            strings in proptest::collection::vec(any::<String>(), 6),
            seq in any::<u64>(),
            wall_time in any::<i64>(),
        ) {
            let payloads = [
                RawEventPayload::OtelLog {
                    event_name: Some(strings[0].clone()),
                    scope: strings[1].clone(),
                },
                RawEventPayload::InferenceStreamEvent {
                    kind: Some(strings[0].clone()),
                    duration_ms: Some(wall_time),
                },
                RawEventPayload::CodexTurnStarted {
                    codex_turn_id: strings[0].clone(),
                    thread_id: Some(strings[1].clone()),
                    source: strings[2].clone(),
                },
                RawEventPayload::CodexTurnEnded {
                    codex_turn_id: strings[1].clone(),
                    source: strings[0].clone(),
                },
            ];
            for payload in &payloads {
                let ids = [Some(strings[3].as_str()), Some(strings[4].as_str()), None];
                let mut line = line(payload, &strings[2], Some(&strings[5]), None, ids);
                line.wall_time_unix_ms = wall_time;
                line.set_seq(seq);
                assert_written_as_its_raw_event(&line);
            }
        }
    }
}
