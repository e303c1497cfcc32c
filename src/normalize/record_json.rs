//! A record as JSON, for its bundle's payload pack: written once, when normalized.
//!
//! Spans and log records are written by hand (see [`crate::json_text`]), with the same
//! bytes `serde_json` gives for an object of their fields: keys in order, attribute
//! lists as objects with sorted keys (the last of equal keys kept), bytes as hex, a
//! non-finite double or a missing value as `null`. The tests compare the two.

use crate::json_text::{
    push_integer, push_integer_string, push_member, push_optional_member, push_string,
};
use crate::receive::otlp::{AnyValue, KeyValue, LogRecord, Span};

/// A record's JSON text. Only this module's writers, `serde_json` and the payload pack
/// (itself JSON) make one, so its text is always valid JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordJson(String);

impl RecordJson {
    /// `null`: a record whose JSON is elsewhere (in the pack, for a waiting record).
    pub fn null() -> Self {
        RecordJson("null".to_string())
    }

    /// A value as `serde_json` writes it.
    pub fn of(value: &impl serde::Serialize) -> serde_json::Result<Self> {
        serde_json::to_string(value).map(RecordJson)
    }

    pub fn get(&self) -> &str {
        &self.0
    }

    /// A span: `{"attributes","end_time_unix_nano","events":[{"attributes","name",
    /// "time_unix_nano"}],"kind","name","scope","start_time_unix_nano"}`, times as strings.
    pub fn span(span: &Span, name: &str, scope: &str) -> Self {
        let mut out = String::with_capacity(room_for(span.wire));
        out.push_str("{\"attributes\":");
        push_attributes(&mut out, &span.attributes);
        out.push_str(",\"end_time_unix_nano\":");
        push_integer_string(&mut out, span.end_time_unix_nano);
        out.push_str(",\"events\":[");
        for (i, event) in span.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"attributes\":");
            push_attributes(&mut out, &event.attributes);
            push_member(&mut out, ",\"name\":", event.name);
            out.push_str(",\"time_unix_nano\":");
            push_integer_string(&mut out, event.time_unix_nano);
            out.push('}');
        }
        out.push_str("],\"kind\":");
        push_integer(&mut out, span.kind);
        push_member(&mut out, ",\"name\":", name);
        push_member(&mut out, ",\"scope\":", scope);
        out.push_str(",\"start_time_unix_nano\":");
        push_integer_string(&mut out, span.start_time_unix_nano);
        out.push('}');
        RecordJson(out)
    }

    /// A log record: `{"attributes","body" (when it has one),"event_name","scope",
    /// "severity_text"}`.
    pub fn log(
        record: &LogRecord,
        body: Option<&str>,
        event_name: Option<&str>,
        scope: &str,
    ) -> Self {
        let mut out = String::with_capacity(room_for(record.wire));
        out.push_str("{\"attributes\":");
        push_attributes(&mut out, &record.attributes);
        if let Some(body) = body {
            push_member(&mut out, ",\"body\":", body);
        }
        push_optional_member(&mut out, ",\"event_name\":", event_name);
        push_member(&mut out, ",\"scope\":", scope);
        push_member(&mut out, ",\"severity_text\":", record.severity_text);
        out.push('}');
        RecordJson(out)
    }
}

impl From<Box<serde_json::value::RawValue>> for RecordJson {
    fn from(raw: Box<serde_json::value::RawValue>) -> Self {
        RecordJson(raw.get().to_string())
    }
}

/// Room for a record's JSON, from its protobuf encoding (`wire`), so that one
/// allocation holds it and it is never grown (a copy). Codex's spans and log records
/// come to 1.0–1.6 times their encoded size as JSON (keys and strings are copied, ids
/// double as hex); the ratio is highest for small records, which the 128 bytes cover.
fn room_for(wire: &[u8]) -> usize {
    wire.len() + wire.len() / 2 + 128
}

/// An attribute list as a JSON object: keys sorted, the last of equal keys kept.
fn push_attributes(out: &mut String, attributes: &[KeyValue]) {
    // Sorted by the keys' first eight bytes as a number, then (rarely: Codex's keys
    // differ early) by the whole key: the order of the keys, with fewer string
    // comparisons. Stable: equal keys stay in the order sent, and the last is written.
    let mut sorted: Vec<(u64, &KeyValue)> = attributes
        .iter()
        .map(|kv| (key_prefix(kv.key), kv))
        .collect();
    sorted.sort_by(|(a_prefix, a), (b_prefix, b)| {
        a_prefix.cmp(b_prefix).then_with(|| a.key.cmp(b.key))
    });
    out.push('{');
    let mut first = true;
    for (i, (_, kv)) in sorted.iter().enumerate() {
        if sorted
            .get(i + 1)
            .is_some_and(|(_, next)| next.key == kv.key)
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_string(out, kv.key);
        out.push(':');
        push_value(out, &kv.value);
    }
    out.push('}');
}

/// The first eight bytes of `key`, padded with zeros, as a big-endian number: ordered as
/// the keys are, except that keys sharing those bytes compare equal.
fn key_prefix(key: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// An attribute value: bytes as hex, a non-finite double or no value as `null`.
fn push_value(out: &mut String, value: &AnyValue) {
    match value {
        AnyValue::Empty | AnyValue::StringIndex(_) => out.push_str("null"),
        AnyValue::String(s) => push_string(out, s),
        AnyValue::Int(i) => push_integer(out, *i),
        AnyValue::Double(d) if d.is_finite() => {
            out.push_str(&serde_json::to_string(d).expect("a finite double writes"))
        }
        AnyValue::Double(_) => out.push_str("null"),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Bytes(b) => push_string(out, &super::hex_string(b)),
        AnyValue::Array(values) => {
            out.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, v);
            }
            out.push(']');
        }
        AnyValue::Kvlist(pairs) => push_attributes(out, pairs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::otlp::SpanEvent;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    /// Every span and log record of the captured Codex sessions is written as JSON in
    /// the room set aside for it: its string is never grown (and copied).
    #[test]
    fn a_codex_record_fits_the_room_set_aside_for_its_json() {
        use crate::receive::otlp::{LogsRequest, TracesRequest};
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex");
        let (mut spans, mut logs) = (0, 0);
        for fixture in std::fs::read_dir(&fixtures).unwrap() {
            let dir = fixture.unwrap().path().join("requests");
            for file in std::fs::read_dir(&dir).into_iter().flatten() {
                let path = file.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let bytes = std::fs::read(&path).unwrap();
                let fits = |json: RecordJson, wire: &[u8]| {
                    assert!(json.get().len() <= room_for(wire), "{name}: {}", json.get());
                };
                if name.ends_with("traces.pb") {
                    let request = TracesRequest::decode(&bytes).unwrap();
                    for span in request.records() {
                        fits(RecordJson::span(span, span.name, "scope"), span.wire);
                        spans += 1;
                    }
                } else if name.ends_with("logs.pb") {
                    let request = LogsRequest::decode(&bytes).unwrap();
                    for log in request.records() {
                        let body = log
                            .body
                            .as_ref()
                            .and_then(crate::normalize::attributes::value_to_string);
                        fits(
                            RecordJson::log(log, body.as_deref(), Some(log.event_name), "scope"),
                            log.wire,
                        );
                        logs += 1;
                    }
                }
            }
        }
        assert!(
            spans > 1000 && logs > 100,
            "{spans} spans, {logs} log records"
        );
    }

    fn kv<'a>(key: &'a str, value: AnyValue<'a>) -> KeyValue<'a> {
        KeyValue { key, value }
    }

    /// What `serde_json` makes of the value: its maps keep sorted keys, and the last
    /// of equal keys inserted.
    fn value_json(value: &AnyValue) -> Value {
        match value {
            AnyValue::Empty | AnyValue::StringIndex(_) => Value::Null,
            AnyValue::String(s) => json!(s),
            AnyValue::Int(i) => json!(i),
            AnyValue::Double(d) => {
                serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
            }
            AnyValue::Bool(b) => json!(b),
            AnyValue::Bytes(b) => json!(hex::encode(b)),
            AnyValue::Array(values) => Value::Array(values.iter().map(value_json).collect()),
            AnyValue::Kvlist(pairs) => attributes_json(pairs),
        }
    }

    fn attributes_json(pairs: &[KeyValue]) -> Value {
        let mut map = Map::new();
        for kv in pairs {
            map.insert(kv.key.to_string(), value_json(&kv.value));
        }
        Value::Object(map)
    }

    fn attributes_written(pairs: &[KeyValue]) -> String {
        let mut out = String::new();
        push_attributes(&mut out, pairs);
        out
    }

    #[test]
    fn attributes_sort_keys_keep_the_last_and_write_each_kind() {
        let attrs = [
            kv("z", AnyValue::String("a \"quoted\"\nline")),
            kv("b", AnyValue::Int(-7)),
            kv("b", AnyValue::Double(1.5)),
            kv("nan", AnyValue::Double(f64::NAN)),
            kv("bytes", AnyValue::Bytes(&[1, 254])),
            kv("t", AnyValue::Bool(true)),
            kv(
                "arr",
                AnyValue::Array(vec![AnyValue::Int(3), AnyValue::Empty]),
            ),
            kv(
                "kv",
                AnyValue::Kvlist(vec![kv("y", AnyValue::Int(1)), kv("x", AnyValue::Int(2))]),
            ),
            kv("none", AnyValue::Empty),
            kv("index", AnyValue::StringIndex(4)),
        ];
        assert_eq!(
            attributes_written(&attrs),
            r#"{"arr":[3,null],"b":1.5,"bytes":"01fe","index":null,"kv":{"x":2,"y":1},"nan":null,"none":null,"t":true,"z":"a \"quoted\"\nline"}"#
        );
    }

    fn any_value() -> impl Strategy<Value = AnyValue<'static>> {
        let leaf = prop_oneof![
            Just(AnyValue::Empty),
            any::<String>().prop_map(|s| AnyValue::String(Box::leak(s.into_boxed_str()))),
            any::<bool>().prop_map(AnyValue::Bool),
            any::<i64>().prop_map(AnyValue::Int),
            any::<f64>().prop_map(AnyValue::Double),
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| AnyValue::Bytes(Box::leak(b.into_boxed_slice()))),
            any::<i32>().prop_map(AnyValue::StringIndex),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AnyValue::Array),
                proptest::collection::vec((key(), inner), 0..4).prop_map(|pairs| AnyValue::Kvlist(
                    pairs.into_iter().map(|(k, v)| kv(k, v)).collect()
                )),
            ]
        })
    }

    /// Keys from a small set, so that equal keys come up, and keys that share their
    /// first eight bytes (which the sort compares as a number first).
    fn key() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("conversation.id"),
            Just("\"q\"\n"),
            Just("é"),
            Just("code.fil"),
            Just("code.file.path"),
            "[a-z\\x00-\\x1f]{0,6}".prop_map(|s| &*Box::leak(s.into_boxed_str())),
            "code\\.fil[a-z\\x00]{0,4}".prop_map(|s| &*Box::leak(s.into_boxed_str())),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue<'static>>> {
        proptest::collection::vec((key(), any_value()), 0..8)
            .prop_map(|pairs| pairs.into_iter().map(|(k, v)| kv(k, v)).collect())
    }

    fn text() -> impl Strategy<Value = &'static str> {
        any::<String>().prop_map(|s| &*Box::leak(s.into_boxed_str()))
    }

    proptest! {
        #[test]
        fn attributes_are_written_as_serde_json_writes_them(attrs in attributes()) {
            prop_assert_eq!(
                attributes_written(&attrs),
                serde_json::to_string(&attributes_json(&attrs)).unwrap()
            );
        }

        #[test]
        fn a_span_is_written_as_serde_json_writes_its_fields(
            attrs in attributes(),
            events in proptest::collection::vec((attributes(), text(), any::<u64>()), 0..3),
            times in any::<(u64, u64)>(),
            kind in any::<i32>(),
            name in text(),
            scope in text(),
        ) {
            let span = Span {
                attributes: attrs.clone(),
                events: events
                    .iter()
                    .map(|(attributes, name, time)| SpanEvent {
                        attributes: attributes.clone(),
                        name,
                        time_unix_nano: *time,
                    })
                    .collect(),
                start_time_unix_nano: times.0,
                end_time_unix_nano: times.1,
                kind,
                ..Default::default()
            };
            let expected = json!({
                "attributes": attributes_json(&attrs),
                "end_time_unix_nano": times.1.to_string(),
                "events": events.iter().map(|(attributes, name, time)| json!({
                    "attributes": attributes_json(attributes),
                    "name": name,
                    "time_unix_nano": time.to_string(),
                })).collect::<Vec<_>>(),
                "kind": kind,
                "name": name,
                "scope": scope,
                "start_time_unix_nano": times.0.to_string(),
            });
            prop_assert_eq!(
                RecordJson::span(&span, name, scope).get().to_string(),
                serde_json::to_string(&expected).unwrap()
            );
        }

        #[test]
        fn a_log_record_is_written_as_serde_json_writes_its_fields(
            attrs in attributes(),
            body in proptest::option::of(text()),
            event_name in proptest::option::of(text()),
            scope in text(),
            severity_text in text(),
        ) {
            let record = LogRecord {
                attributes: attrs.clone(),
                severity_text,
                ..Default::default()
            };
            let mut expected = json!({
                "attributes": attributes_json(&attrs),
                "event_name": event_name,
                "scope": scope,
                "severity_text": severity_text,
            });
            if let Some(body) = body {
                expected["body"] = json!(body);
            }
            prop_assert_eq!(
                RecordJson::log(&record, body, event_name, scope).get().to_string(),
                serde_json::to_string(&expected).unwrap()
            );
        }
    }
}
