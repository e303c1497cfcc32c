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
//! What every line of an append shares (the rollout, the payload pack line) is made
//! JSON once for all of them ([`SharedLineParts`]).

use crate::json_text::{
    push_integer, push_integer_member, push_member, push_optional_integer_member,
    push_optional_member,
};
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
    /// The rollout and the payload pack line, shared with the other lines of the append.
    pub shared: &'a SharedLineParts<'a>,
    pub thread_id: Option<&'a str>,
    pub codex_turn_id: Option<&'a str>,
    pub payload: &'a RawEventPayload,
    pub evidence: EvidenceLine<'a>,
}

/// [`crate::normalize::raw_event::Evidence`], borrowed; its payload reference is the
/// shared payload pack line ([`SharedLineParts`]) and the record's place in it.
pub struct EvidenceLine<'a> {
    pub record_id: &'a str,
    pub signal: &'a str,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub parent_span_id: Option<&'a str>,
    /// The record's place in the payload pack line.
    pub index: usize,
}

/// What the lines of one append share: their rollout, and the payload pack line
/// ([`crate::normalize::raw_event::RawPayloadRef`] but for the index) their records
/// are in. Written as JSON once for all of them, so that each line copies those
/// members instead of escaping them again.
pub struct SharedLineParts<'a> {
    rollout_id: &'a str,
    raw_payload_id: &'a str,
    kind: &'a str,
    path: &'a str,
    offset: u64,
    /// `,"rollout_id":"…"`
    rollout_json: Vec<u8>,
    /// `,"raw_payload":{"raw_payload_id":"…","kind":"…","path":"…","index":`
    payload_ref_json: Vec<u8>,
    /// `,"offset":…}}}`
    end_json: Vec<u8>,
}

impl<'a> SharedLineParts<'a> {
    pub fn new(
        rollout_id: &'a str,
        raw_payload_id: &'a str,
        kind: &'a str,
        path: &'a str,
        offset: u64,
    ) -> Self {
        let mut rollout_json = Vec::new();
        push_member(&mut rollout_json, ",\"rollout_id\":", rollout_id);
        let mut payload_ref_json = Vec::new();
        let key = ",\"raw_payload\":{\"raw_payload_id\":";
        push_member(&mut payload_ref_json, key, raw_payload_id);
        push_member(&mut payload_ref_json, ",\"kind\":", kind);
        push_member(&mut payload_ref_json, ",\"path\":", path);
        payload_ref_json.extend_from_slice(b",\"index\":");
        let mut end_json = Vec::new();
        push_integer_member(&mut end_json, ",\"offset\":", offset);
        end_json.extend_from_slice(b"}}}");
        SharedLineParts {
            rollout_id,
            raw_payload_id,
            kind,
            path,
            offset,
            rollout_json,
            payload_ref_json,
            end_json,
        }
    }

    pub fn rollout_id(&self) -> &'a str {
        self.rollout_id
    }

    pub fn raw_payload_id(&self) -> &'a str {
        self.raw_payload_id
    }

    pub fn kind(&self) -> &'a str {
        self.kind
    }

    pub fn path(&self) -> &'a str {
        self.path
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl<'a> EventLine<'a> {
    /// An event line with no `seq` yet.
    pub fn new(
        wall_time_unix_ms: i64,
        shared: &'a SharedLineParts<'a>,
        thread_id: Option<&'a str>,
        codex_turn_id: Option<&'a str>,
        payload: &'a RawEventPayload,
        evidence: EvidenceLine<'a>,
    ) -> Self {
        EventLine {
            schema_version: RAW_EVENT_SCHEMA_VERSION,
            seq: 0,
            wall_time_unix_ms,
            shared,
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
        let shared = self.shared;
        RawEvent {
            schema_version: self.schema_version,
            seq: self.seq,
            wall_time_unix_ms: self.wall_time_unix_ms,
            rollout_id: shared.rollout_id.to_string(),
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
                    raw_payload_id: shared.raw_payload_id.to_string(),
                    kind: shared.kind.to_string(),
                    path: shared.path.to_string(),
                    index: evidence.index,
                    offset: Some(shared.offset),
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
        let shared = self.shared;
        push_integer_member(out, "{\"schema_version\":", self.schema_version);
        push_integer_member(out, ",\"seq\":", self.seq);
        push_integer_member(out, ",\"wall_time_unix_ms\":", self.wall_time_unix_ms);
        out.extend_from_slice(&shared.rollout_json);
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
        out.extend_from_slice(&shared.payload_ref_json);
        push_integer(out, evidence.index);
        out.extend_from_slice(&shared.end_json);
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
            push_optional_integer_member(out, ",\"duration_ms\":", *duration_ms);
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

    fn shared(rollout: &str) -> SharedLineParts<'_> {
        let payload_id = "raw_payload:pack@1024";
        SharedLineParts::new(rollout, payload_id, "otlp_traces", "payloads.jsonl", 1024)
    }

    fn line<'a>(
        payload: &'a RawEventPayload,
        shared: &'a SharedLineParts<'a>,
        thread: Option<&'a str>,
        turn: Option<&'a str>,
        ids: [Option<&'a str>; 3],
    ) -> EventLine<'a> {
        let mut line = EventLine::new(
            1_795_312_060_796,
            shared,
            thread,
            turn,
            payload,
            EvidenceLine {
                record_id: "de3d90db00ec4d54bfd6833a",
                signal: "traces",
                trace_id: ids[0],
                span_id: ids[1],
                parent_span_id: ids[2],
                index: 28,
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
                    let shared = shared("01a200f0-09c5-7f30-b451-62bbbee265fa");
                    assert_written_as_its_raw_event(&line(payload, &shared, thread, turn, ids));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_strings_are_written_as_serde_json_writes_them(
            strings in proptest::collection::vec(any::<String>(), 9),
            seq in any::<u64>(),
            wall_time in any::<i64>(),
            (index, offset) in (any::<usize>(), any::<u64>()),
        ) {
            let (payload_id, kind, path) = (&strings[6], &strings[7], &strings[8]);
            let shared = SharedLineParts::new(&strings[2], payload_id, kind, path, offset);
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
                let mut line = line(payload, &shared, Some(&strings[5]), None, ids);
                line.evidence.index = index;
                line.wall_time_unix_ms = wall_time;
                line.set_seq(seq);
                assert_written_as_its_raw_event(&line);
            }
        }
    }
}
