//! Record ids: a stable hash of each OTLP record, so that a record sent twice is stored
//! once.
//!
//! The id hashes the signal, the resource (service name and version) and the record's
//! protobuf bytes. When the request came as protobuf, those are the bytes that were
//! sent, found by walking the request's wire format (no re-encoding). Otherwise
//! (OTLP/JSON) the decoded record is encoded again, which gives the same bytes a prost
//! encoder (Codex, the OpenTelemetry Rust SDK) sends: a record has one id whichever
//! way it came.

use super::Signal;
use prost::Message;
use sha2::{Digest, Sha256};

/// Gives each record of one request its id, in the order the request lists them.
pub(crate) struct RecordIds<'a> {
    signal: Signal,
    /// Each record's bytes as sent, in order (absent: re-encode each record).
    sent: Option<std::slice::Iter<'a, &'a [u8]>>,
}

/// The bytes of every record of a protobuf Export request, in order.
pub struct SentRecords<'a>(Vec<&'a [u8]>);

impl<'a> SentRecords<'a> {
    /// Walks `wire`, a protobuf Export request of any signal: its field 1 (the
    /// resource's records), their field 2 (the scope's records), and their field 2
    /// (the log records, spans or metrics). `None` if the walk cannot read the wire
    /// format (it is broken, or uses groups): each record is then encoded again.
    pub fn find(wire: &'a [u8]) -> Option<SentRecords<'a>> {
        let mut records = Vec::new();
        for resource in fields(wire, 1) {
            for scope in fields(resource?, 2) {
                for record in fields(scope?, 2) {
                    records.push(record?);
                }
            }
        }
        Some(SentRecords(records))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> RecordIds<'a> {
    /// Ids for a request of `records` records; `sent` are its records as sent, used
    /// only if the decoded request has as many.
    pub fn new(signal: Signal, sent: Option<&'a SentRecords<'a>>, records: usize) -> Self {
        RecordIds {
            signal,
            sent: sent.filter(|s| s.len() == records).map(|s| s.0.iter()),
        }
    }

    /// The next record's id (`record` is that record, decoded).
    pub fn next<M: Message>(&mut self, resource_key: &str, record: &M) -> String {
        match self.sent.as_mut().and_then(Iterator::next) {
            Some(bytes) => record_id(self.signal, resource_key, bytes),
            None => record_id(self.signal, resource_key, &record.encode_to_vec()),
        }
    }
}

fn record_id(signal: Signal, resource_key: &str, record: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(signal.as_str().as_bytes());
    hasher.update(resource_key.as_bytes());
    hasher.update(record);
    super::hex_string(&hasher.finalize()[..12])
}

/// The values of length-delimited field `number` in the protobuf message `message`,
/// in order; a `None` item (then nothing more) where the wire format is broken.
fn fields(message: &[u8], number: u64) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = message;
    let mut broken = false;
    std::iter::from_fn(move || {
        while !broken && !rest.is_empty() {
            let Some((key, value)) = next_field(&mut rest) else {
                broken = true;
                return Some(None);
            };
            if key == (number << 3 | 2) {
                return Some(Some(value));
            }
        }
        None
    })
}

/// Reads one field off `rest`: its key and, for a length-delimited one, its value.
fn next_field<'a>(rest: &mut &'a [u8]) -> Option<(u64, &'a [u8])> {
    let key = varint(rest)?;
    let skip = match key & 7 {
        0 => {
            varint(rest)?;
            0
        }
        1 => 8,
        2 => usize::try_from(varint(rest)?).ok()?,
        5 => 4,
        // Groups (3, 4) are long deprecated; nothing OTLP sends uses them.
        _ => return None,
    };
    if rest.len() < skip {
        return None;
    }
    let (value, after) = rest.split_at(skip);
    *rest = after;
    Some((key, value))
}

fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in rest.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn span(name: &str) -> Span {
        Span {
            name: name.into(),
            trace_id: vec![7; 16],
            span_id: vec![1; 8],
            start_time_unix_nano: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let scope = |names: &[&str]| ScopeSpans {
            spans: names.iter().map(|n| span(n)).collect(),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(&["a", "b"]), scope(&[]), scope(&["c"])],
                    ..Default::default()
                },
                ResourceSpans::default(),
                ResourceSpans {
                    scope_spans: vec![scope(&["d"])],
                    schema_url: "https://example.com/schema".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn finds_every_record_in_order_as_its_own_encoding() {
        let request = request();
        let wire = request.encode_to_vec();
        let sent = SentRecords::find(&wire).expect("a well-formed request");
        let decoded: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(sent.len(), 4);
        for (bytes, span) in sent.0.iter().zip(decoded) {
            assert_eq!(*bytes, span.encode_to_vec().as_slice());
        }
    }

    #[test]
    fn ids_from_the_bytes_sent_equal_ids_from_re_encoding() {
        let request = request();
        let wire = request.encode_to_vec();
        let sent = SentRecords::find(&wire).unwrap();
        let mut from_wire = RecordIds::new(Signal::Traces, Some(&sent), 4);
        let mut re_encoded = RecordIds::new(Signal::Traces, None, 4);
        let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans);
        let ids: Vec<(String, String)> = spans
            .flat_map(|s| &s.spans)
            .map(|s| (from_wire.next("svc|1", s), re_encoded.next("svc|1", s)))
            .collect();
        for (a, b) in &ids {
            assert_eq!(a, b);
            assert_eq!(a.len(), 24);
        }
        assert_ne!(ids[0].0, ids[1].0, "different spans, different ids");
    }

    #[test]
    fn ids_differ_by_signal_and_resource() {
        let s = span("a");
        let id = |signal, resource| RecordIds::new(signal, None, 1).next(resource, &s);
        assert_ne!(id(Signal::Traces, "svc|1"), id(Signal::Logs, "svc|1"));
        assert_ne!(id(Signal::Traces, "svc|1"), id(Signal::Traces, "svc|2"));
    }

    #[test]
    fn a_count_that_differs_from_the_decoded_one_falls_back_to_re_encoding() {
        let request = request();
        let wire = request.encode_to_vec();
        let sent = SentRecords::find(&wire).unwrap();
        let s = span("z");
        let mut ids = RecordIds::new(Signal::Traces, Some(&sent), 5);
        assert_eq!(
            ids.next("k", &s),
            RecordIds::new(Signal::Traces, None, 1).next("k", &s)
        );
    }

    #[test]
    fn a_broken_wire_format_is_refused_not_misread() {
        let wire = request().encode_to_vec();
        for cut in [1, 5, wire.len() / 2, wire.len() - 1] {
            assert!(SentRecords::find(&wire[..cut]).is_none(), "cut at {cut}");
        }
        // A group (wire type 3) where a field is expected.
        assert!(SentRecords::find(&[0x0b]).is_none());
        // A varint longer than ten bytes.
        assert!(
            SentRecords::find(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])
            .is_none()
        );
        assert_eq!(SentRecords::find(&[]).map(|s| s.len()), Some(0));
    }
}
