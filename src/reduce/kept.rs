//! What a rollout's state keeps of each event: only the fields the reducer reads,
//! with the strings that repeat from event to event (thread, turn and trace ids, the
//! payload file) stored once per rollout and shared. A rollout's events stay in
//! memory until it is finished and quiet (then evicted), so this is most of the
//! collector's memory.

use crate::fast_hash::{HashMap, HashSet};
use crate::hex_digits::{lowercase_hex_value, write_lowercase_hex};
use crate::normalize::{RawEvent, RawEventPayload};
use crate::store::event_line::EventLine;
use std::cmp::Ordering;
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
    pub record_id: KeptRecordId,
    pub trace_id: Option<Arc<str>>,
    pub span_id: Option<Box<str>>,
    pub raw_payload: Option<Arc<KeptPayloadRef>>,
}

/// A record id as kept. The collector's own ids (24 lowercase hex digits) are kept
/// as their 12 bytes, in place; any other id as it came. A boxed string took 16
/// bytes here plus 24 (a 32-byte block) on the heap; this takes 24 and no block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptRecordId {
    Hex([u8; HEX_ID_BYTES]),
    Other(Box<str>),
}

/// The bytes of the record ids the collector makes (`normalize::record_ids`).
const HEX_ID_BYTES: usize = 12;

impl KeptRecordId {
    pub fn of(id: &str) -> KeptRecordId {
        let value = Some(id)
            .filter(|id| id.len() == 2 * HEX_ID_BYTES)
            .and_then(|id| lowercase_hex_value(id.as_bytes()));
        match value {
            Some(value) => {
                let bytes = value.to_be_bytes();
                let id = bytes[bytes.len() - HEX_ID_BYTES..].try_into();
                KeptRecordId::Hex(id.expect("the last bytes of a u128"))
            }
            None => KeptRecordId::Other(id.into()),
        }
    }

    /// Orders ids as their text would order (an absent id counts as empty text).
    pub fn cmp_as_text(a: Option<&KeptRecordId>, b: Option<&KeptRecordId>) -> Ordering {
        if let (Some(KeptRecordId::Hex(a)), Some(KeptRecordId::Hex(b))) = (a, b) {
            // Lowercase hex keeps the bytes' order.
            return a.cmp(b);
        }
        let (mut a_buf, mut b_buf) = ([0u8; 2 * HEX_ID_BYTES], [0u8; 2 * HEX_ID_BYTES]);
        Self::text(a, &mut a_buf).cmp(Self::text(b, &mut b_buf))
    }

    fn text<'a>(id: Option<&'a KeptRecordId>, buf: &'a mut [u8; 2 * HEX_ID_BYTES]) -> &'a [u8] {
        match id {
            None => b"",
            Some(KeptRecordId::Other(text)) => text.as_bytes(),
            Some(KeptRecordId::Hex(bytes)) => {
                write_lowercase_hex(bytes, buf);
                buf
            }
        }
    }
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

    fn payload(&mut self, raw_payload_id: &str, kind: &str, path: &str) -> Arc<KeptPayloadRef> {
        if let Some(shared) = self.payloads.get(raw_payload_id)
            && shared.kind == kind
            && shared.path == path
        {
            return shared.clone();
        }
        let shared = Arc::new(KeptPayloadRef {
            raw_payload_id: raw_payload_id.to_string(),
            kind: kind.to_string(),
            path: path.to_string(),
        });
        self.payloads
            .insert(raw_payload_id.to_string(), shared.clone());
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
                record_id: KeptRecordId::of(&ev.record_id),
                trace_id: ev.trace_id.as_deref().map(|t| self.string(t)),
                span_id: ev.span_id.map(String::into_boxed_str),
                raw_payload: ev
                    .raw_payload
                    .as_ref()
                    .map(|r| self.payload(&r.raw_payload_id, &r.kind, &r.path)),
            }),
        }
    }

    /// Keeps what the reducer reads of an event being stored, from its line: only the
    /// payload and what is not shared yet are copied (building the line's [`RawEvent`]
    /// first would copy each of its strings, only to drop most of them here).
    pub fn keep_line(&mut self, line: &EventLine) -> KeptEvent {
        let ev = &line.evidence;
        let shared = line.shared;
        KeptEvent {
            wall_time_unix_ms: line.wall_time_unix_ms,
            thread_id: line.thread_id.map(|t| self.string(t)),
            codex_turn_id: line.codex_turn_id.map(|t| self.string(t)),
            payload: line.payload.clone(),
            evidence: Some(KeptEvidence {
                record_id: KeptRecordId::of(ev.record_id),
                trace_id: ev.trace_id.map(|t| self.string(t)),
                span_id: ev.span_id.map(Box::from),
                raw_payload: Some(self.payload(
                    shared.raw_payload_id(),
                    shared.kind(),
                    shared.path(),
                )),
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
                record_id: KeptRecordId::of(&ev.record_id),
                trace_id: ev.trace_id.as_deref().map(|t| self.string(t)),
                span_id: ev.span_id.as_deref().map(Box::from),
                raw_payload: ev
                    .raw_payload
                    .as_ref()
                    .map(|r| self.payload(&r.raw_payload_id, &r.kind, &r.path)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kept(id: &str) -> KeptRecordId {
        KeptRecordId::of(id)
    }

    #[test]
    fn the_collectors_own_ids_are_kept_as_bytes_and_others_as_text() {
        assert!(matches!(
            kept("0123456789abcdef01234567"),
            KeptRecordId::Hex(_)
        ));
        for other in [
            "0123456789ABCDEF01234567",
            "0123456789abcdef0123456",
            "",
            "r-1",
        ] {
            assert_eq!(kept(other), KeptRecordId::Other(other.into()));
        }
    }

    proptest! {
        /// Events of the same millisecond and rank are ordered by record id: keeping
        /// ids as bytes must not change that order.
        #[test]
        fn ids_order_as_their_text(
            a in "[0-9a-f]{24}|[0-9a-fA-F]{0,26}|[a-z-]{0,6}",
            b in "[0-9a-f]{24}|[0-9a-fA-F]{0,26}|[a-z-]{0,6}",
        ) {
            let (ka, kb) = (kept(&a), kept(&b));
            prop_assert_eq!(KeptRecordId::cmp_as_text(Some(&ka), Some(&kb)), a.cmp(&b));
            prop_assert_eq!(KeptRecordId::cmp_as_text(None, Some(&kb)), "".cmp(b.as_str()));
            prop_assert_eq!(KeptRecordId::cmp_as_text(Some(&ka), None), a.as_str().cmp(""));
        }
    }
}
