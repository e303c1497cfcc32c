//! What a rollout's state keeps of each event: only the fields the reducer reads,
//! with the strings that repeat from event to event (thread, turn and trace ids, the
//! payload file) stored once per rollout and shared. A rollout's events stay in
//! memory until it is finished and quiet (then evicted), so this is most of the
//! collector's memory.

use crate::normalize::raw_event::RawPayloadRef;
use crate::normalize::{RawEvent, RawEventPayload};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An event as the reducer reads it.
#[derive(Debug)]
pub struct KeptEvent {
    pub wall_time_unix_ms: i64,
    pub thread_id: Option<Arc<str>>,
    pub codex_turn_id: Option<Arc<str>>,
    pub payload: RawEventPayload,
    pub evidence: Option<KeptEvidence>,
}

/// The OTLP evidence of an event, as the reducer reads it.
#[derive(Debug)]
pub struct KeptEvidence {
    pub record_id: Box<str>,
    pub trace_id: Option<Arc<str>>,
    pub span_id: Option<Box<str>>,
    pub raw_payload: Option<Arc<KeptPayloadRef>>,
}

/// The payload file behind an event (without the record's index in it).
#[derive(Debug, PartialEq, Eq)]
pub struct KeptPayloadRef {
    pub raw_payload_id: String,
    pub kind: String,
    pub path: String,
}

/// The shared strings of one rollout.
#[derive(Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
    /// By `raw_payload_id`.
    payloads: HashMap<String, Arc<KeptPayloadRef>>,
}

impl Interner {
    fn string(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    fn payload(&mut self, r: &RawPayloadRef) -> Arc<KeptPayloadRef> {
        if let Some(shared) = self.payloads.get(r.raw_payload_id.as_str())
            && shared.kind == r.kind
            && shared.path == r.path
        {
            return shared.clone();
        }
        let shared = Arc::new(KeptPayloadRef {
            raw_payload_id: r.raw_payload_id.clone(),
            kind: r.kind.clone(),
            path: r.path.clone(),
        });
        self.payloads
            .insert(r.raw_payload_id.clone(), shared.clone());
        shared
    }

    /// Keeps what the reducer reads of an event.
    pub fn keep(&mut self, event: RawEvent) -> KeptEvent {
        KeptEvent {
            wall_time_unix_ms: event.wall_time_unix_ms,
            thread_id: event.thread_id.as_deref().map(|t| self.string(t)),
            codex_turn_id: event.codex_turn_id.as_deref().map(|t| self.string(t)),
            payload: event.payload,
            evidence: event.evidence.map(|ev| KeptEvidence {
                record_id: ev.record_id.into_boxed_str(),
                trace_id: ev.trace_id.as_deref().map(|t| self.string(t)),
                span_id: ev.span_id.map(String::into_boxed_str),
                raw_payload: ev.raw_payload.as_ref().map(|r| self.payload(r)),
            }),
        }
    }

    /// Copies what the reducer reads of an event.
    pub fn copy(&mut self, event: &RawEvent) -> KeptEvent {
        KeptEvent {
            wall_time_unix_ms: event.wall_time_unix_ms,
            thread_id: event.thread_id.as_deref().map(|t| self.string(t)),
            codex_turn_id: event.codex_turn_id.as_deref().map(|t| self.string(t)),
            payload: event.payload.clone(),
            evidence: event.evidence.as_ref().map(|ev| KeptEvidence {
                record_id: ev.record_id.as_str().into(),
                trace_id: ev.trace_id.as_deref().map(|t| self.string(t)),
                span_id: ev.span_id.as_deref().map(Box::from),
                raw_payload: ev.raw_payload.as_ref().map(|r| self.payload(r)),
            }),
        }
    }
}
