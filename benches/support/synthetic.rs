//! Synthetic Codex sessions for the benchmarks: the events of the `tool-call-ok`
//! fixture (one real Codex 0.169 turn: 566 events, most of them evidence-only spans),
//! replayed as many sessions and turns as wanted. Every copy gets fresh ids
//! (conversation, turn, trace, span, record, tool call, payload) and a later clock,
//! derived from the session and turn numbers, so the output is deterministic.

#![allow(dead_code)]

use rollout_collector::collector::Collector;
use rollout_collector::normalize::raw_event::{Evidence, RawPayloadRef};
use rollout_collector::normalize::{
    Attribution, NormalizedRecord, PendingEvent, RawEvent, RawEventPayload as P,
};
use rollout_collector::receive::decode::Received;
use rollout_collector::receive::import;
use rollout_collector::store::{Bundle, DataDir};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fixture every synthetic turn is copied from.
pub fn fixture_requests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex/tool-call-ok/requests")
}

/// The fixture's Export requests, as read.
pub fn fixture_export_requests() -> Vec<Received> {
    let files = import::collect_files(&[fixture_requests()]).expect("fixture files");
    files
        .iter()
        .flat_map(|f| import::read_file(f).expect("fixture request"))
        .collect()
}

/// One real turn's events, as the collector stores them.
pub struct Template {
    conversation_id: String,
    /// The fixture's records as normalized, before the store sees them.
    records: Vec<NormalizedRecord>,
    /// Everything but the bundle's first and last events.
    body: Vec<RawEvent>,
    first_ms: i64,
}

/// How far apart two copies of the turn are, in ms (the real turn lasts ~0.5 s).
const TURN_STRIDE_MS: i64 = 1_000;
/// Payload files per turn in the fixture's bundle (ids are shifted by this per copy).
const PAYLOADS_PER_TURN: u64 = 10;

impl Template {
    /// Imports the fixture through the normal pipeline and keeps its events.
    pub fn load() -> Template {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut collector = Collector::open(DataDir::new(dir.path())).expect("collector");
        let files = import::collect_files(&[fixture_requests()]).expect("fixture files");
        import::import(&mut collector, &files, Duration::from_secs(300), |_| {}).expect("import");
        let ids = collector.rollout_ids();
        let conversation_id = ids[0].clone();
        let events = rollout_collector::store::bundle::read_events(
            &DataDir::new(dir.path())
                .rollout_dir(&conversation_id)
                .join("trace.jsonl"),
        )
        .expect("fixture bundle");
        let body: Vec<RawEvent> = events
            .into_iter()
            .filter(|e| {
                !matches!(
                    e.payload,
                    P::RolloutStarted { .. } | P::RolloutEnded { .. } | P::ProcessExited { .. }
                )
            })
            .collect();
        let first_ms = body.iter().map(|e| e.wall_time_unix_ms).min().unwrap_or(0);
        let records = fixture_export_requests()
            .into_iter()
            .flat_map(|request| request.normalize(false).expect("fixture request").0)
            .collect();
        Template {
            conversation_id,
            records,
            body,
            first_ms,
        }
    }

    /// Events per synthetic turn.
    pub fn events_per_turn(&self) -> usize {
        self.body.len()
    }

    /// Records per synthetic turn.
    pub fn records_per_turn(&self) -> usize {
        self.records.len()
    }

    /// The normalized records of turn `turn` of synthetic session `session`, as the
    /// store receives them (fresh record, conversation, trace, span and turn ids).
    pub fn turn_records(&self, session: u64, turn: u64) -> Vec<NormalizedRecord> {
        let id = self.session_id(session);
        let copy = Copy {
            template: self,
            session,
            turn,
            id: &id,
        };
        self.records.iter().map(|r| copy.record(r)).collect()
    }

    /// The conversation id of synthetic session `session`.
    pub fn session_id(&self, session: u64) -> String {
        uuid(hash(&[session, 0xc0]))
    }

    /// The events of one synthetic session of `turns` turns, in arrival order:
    /// `rollout_started`, the turns, then `process_exited`. `seq` is left at 0 (the
    /// store assigns it).
    pub fn session(&self, session: u64, turns: u64) -> Vec<RawEvent> {
        let id = self.session_id(session);
        let start = self.first_ms + session as i64 * 7;
        let mut out = Vec::with_capacity(turns as usize * self.body.len() + 2);
        out.push(envelope(
            &id,
            start,
            None,
            P::RolloutStarted {
                trace_id: format!("otel:{id}"),
                root_thread_id: id.clone(),
            },
            None,
        ));
        for turn in 0..turns {
            let copy = Copy {
                template: self,
                session,
                turn,
                id: &id,
            };
            for event in &self.body {
                if turn > 0 && matches!(event.payload, P::ThreadStarted(_)) {
                    continue;
                }
                out.push(copy.event(event));
            }
        }
        let end = start + turns as i64 * TURN_STRIDE_MS;
        out.push(envelope(
            &id,
            end,
            None,
            P::ProcessExited { service_name: None },
            Some(Evidence {
                record_id: hex(hash(&[session, 0xe1]), 24),
                signal: "logs".into(),
                trace_id: None,
                span_id: None,
                parent_span_id: None,
                raw_payload: None,
            }),
        ));
        out
    }

    /// Writes `sessions` bundles of `turns` turns each into `root`, the way the
    /// collector stores them. Returns the number of events written.
    pub fn write_data_dir(&self, root: &Path, sessions: u64, turns: u64) -> u64 {
        let data_dir = DataDir::new(root);
        let mut written = 0;
        for session in 0..sessions {
            let mut events = self.session(session, turns);
            let id = self.session_id(session);
            let (mut bundle, _) =
                Bundle::open(&data_dir.rollout_dir(&id), &id, events[0].wall_time_unix_ms)
                    .expect("bundle");
            for chunk in events.chunks_mut(1 << 16) {
                bundle.append(None, chunk).expect("append");
            }
            written += events.len() as u64;
        }
        written
    }
}

/// One copy of the template turn.
struct Copy<'a> {
    template: &'a Template,
    session: u64,
    turn: u64,
    id: &'a str,
}

impl Copy<'_> {
    fn salt(&self, kind: u64, original: &str) -> u64 {
        let mut h = hash(&[self.session, self.turn, kind]);
        for b in original.bytes() {
            h = mix(h ^ u64::from(b));
        }
        h
    }

    fn conversation(&self, id: &str) -> String {
        if id == self.template.conversation_id {
            self.id.to_string()
        } else {
            uuid(self.salt(1, id))
        }
    }

    fn turn_id(&self, id: &str) -> String {
        uuid(self.salt(2, id))
    }

    fn hex_id(&self, kind: u64, id: &str) -> String {
        hex(self.salt(kind, id), id.len())
    }

    fn call_id(&self, id: &str) -> String {
        format!("{id}_{}_{}", self.session, self.turn)
    }

    fn payload_ref(&self, r: &RawPayloadRef) -> RawPayloadRef {
        let n: u64 = r
            .raw_payload_id
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let n = self.turn * PAYLOADS_PER_TURN + n;
        RawPayloadRef {
            raw_payload_id: format!("raw_payload:{n}"),
            kind: r.kind.clone(),
            path: format!("payloads/{n}.json"),
            index: r.index,
            offset: None,
        }
    }

    fn payload(&self, payload: &P) -> P {
        let mut payload = payload.clone();
        match &mut payload {
            P::ThreadStarted(s) => s.thread_id = self.conversation(&s.thread_id),
            P::CodexTurnStarted {
                codex_turn_id,
                thread_id,
                ..
            } => {
                *codex_turn_id = self.turn_id(codex_turn_id);
                *thread_id = thread_id.as_deref().map(|t| self.conversation(t));
            }
            P::CodexTurnEnded { codex_turn_id, .. } => *codex_turn_id = self.turn_id(codex_turn_id),
            P::ToolCallApproval(a) => a.tool_call_id = self.call_id(&a.tool_call_id),
            P::ToolCallEnded(e) => e.tool_call_id = self.call_id(&e.tool_call_id),
            P::ToolCallStarted { tool_call_id, .. } | P::TerminalProcess { tool_call_id, .. } => {
                *tool_call_id = self.call_id(tool_call_id)
            }
            _ => {}
        }
        payload
    }

    fn record(&self, r: &NormalizedRecord) -> NormalizedRecord {
        let a = &r.attribution;
        NormalizedRecord {
            record_id: self.hex_id(3, &r.record_id),
            signal: r.signal,
            attribution: Attribution {
                conversation_id: a.conversation_id.as_deref().map(|c| self.conversation(c)),
                trace_id: a.trace_id.as_deref().map(|t| self.hex_id(4, t)),
                span_id: a.span_id.as_deref().map(|s| self.hex_id(5, s)),
                parent_span_id: a.parent_span_id.as_deref().map(|s| self.hex_id(5, s)),
                turn_id: a.turn_id.as_deref().map(|t| self.turn_id(t)),
                spawned_conversation_id: a
                    .spawned_conversation_id
                    .as_deref()
                    .map(|c| self.conversation(c)),
            },
            events: r
                .events
                .iter()
                .map(|e| PendingEvent {
                    wall_time_unix_ms: e.wall_time_unix_ms
                        + (self.session as i64 * 7)
                        + self.turn as i64 * TURN_STRIDE_MS,
                    payload: self.payload(&e.payload),
                })
                .collect(),
            evidence: r.evidence.clone(),
        }
    }

    fn event(&self, e: &RawEvent) -> RawEvent {
        let payload = self.payload(&e.payload);
        RawEvent {
            schema_version: e.schema_version,
            seq: 0,
            wall_time_unix_ms: e.wall_time_unix_ms
                + (self.session as i64 * 7)
                + self.turn as i64 * TURN_STRIDE_MS,
            rollout_id: self.id.to_string(),
            thread_id: e.thread_id.as_deref().map(|t| self.conversation(t)),
            codex_turn_id: e.codex_turn_id.as_deref().map(|t| self.turn_id(t)),
            payload,
            evidence: e.evidence.as_ref().map(|ev| Evidence {
                record_id: self.hex_id(3, &ev.record_id),
                signal: ev.signal.clone(),
                trace_id: ev.trace_id.as_deref().map(|t| self.hex_id(4, t)),
                span_id: ev.span_id.as_deref().map(|s| self.hex_id(5, s)),
                parent_span_id: ev.parent_span_id.as_deref().map(|s| self.hex_id(5, s)),
                raw_payload: ev.raw_payload.as_ref().map(|r| self.payload_ref(r)),
            }),
        }
    }
}

fn envelope(
    rollout_id: &str,
    wall_time_unix_ms: i64,
    thread_id: Option<String>,
    payload: P,
    evidence: Option<Evidence>,
) -> RawEvent {
    RawEvent {
        schema_version: rollout_collector::normalize::raw_event::RAW_EVENT_SCHEMA_VERSION,
        seq: 0,
        wall_time_unix_ms,
        rollout_id: rollout_id.to_string(),
        thread_id,
        codex_turn_id: None,
        payload,
        evidence,
    }
}

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |h, p| mix(h ^ p))
}

/// `len` lowercase hex digits derived from `seed`.
fn hex(seed: u64, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut h = seed;
    while out.len() < len {
        h = mix(h);
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(len);
    out
}

/// A UUID-shaped id (Codex's conversation and turn ids are UUIDv7).
fn uuid(seed: u64) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-7{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
