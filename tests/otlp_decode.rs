//! The in-place OTLP reader against prost: for any logs or trace request, it reads the
//! same values prost decodes, each record's bytes are that record's own encoding, and
//! for any corruption of a request (cut short, a byte changed) it refuses exactly what
//! prost refuses.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;
use rollout_collector::receive::otlp;

// ---- prost's messages, as the reader should see them ----

fn any_value(value: Option<&AnyValue>) -> otlp::AnyValue<'_> {
    match value.and_then(|v| v.value.as_ref()) {
        None => otlp::AnyValue::Empty,
        Some(Value::StringValue(s)) => otlp::AnyValue::String(s),
        Some(Value::BoolValue(b)) => otlp::AnyValue::Bool(*b),
        Some(Value::IntValue(i)) => otlp::AnyValue::Int(*i),
        Some(Value::DoubleValue(d)) => otlp::AnyValue::Double(*d),
        Some(Value::BytesValue(b)) => otlp::AnyValue::Bytes(b),
        Some(Value::ArrayValue(a)) => {
            otlp::AnyValue::Array(a.values.iter().map(|v| any_value(Some(v))).collect())
        }
        Some(Value::KvlistValue(l)) => otlp::AnyValue::Kvlist(attributes(&l.values)),
        Some(Value::StringValueStrindex(i)) => otlp::AnyValue::StringIndex(*i),
    }
}

fn attributes(attrs: &[KeyValue]) -> Vec<otlp::KeyValue<'_>> {
    attrs
        .iter()
        .map(|kv| otlp::KeyValue {
            key: &kv.key,
            value: any_value(kv.value.as_ref()),
        })
        .collect()
}

fn resource(resource: Option<&Resource>) -> otlp::Resource<'_> {
    otlp::Resource {
        attributes: resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default(),
    }
}

fn scope(scope: Option<&InstrumentationScope>) -> otlp::Scope<'_> {
    otlp::Scope {
        name: scope.map(|s| s.name.as_str()).unwrap_or(""),
    }
}

/// The fields the reader keeps, with `wire` left out (compared separately).
fn span_fields<'a>(span: &'a Span) -> otlp::Span<'a> {
    otlp::Span {
        wire: &[],
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        parent_span_id: &span.parent_span_id,
        name: &span.name,
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| otlp::SpanEvent {
                time_unix_nano: e.time_unix_nano,
                name: &e.name,
                attributes: attributes(&e.attributes),
            })
            .collect(),
    }
}

fn log_fields<'a>(record: &'a LogRecord) -> otlp::LogRecord<'a> {
    otlp::LogRecord {
        wire: &[],
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        severity_text: &record.severity_text,
        body: record.body.as_ref().map(|b| any_value(Some(b))),
        attributes: attributes(&record.attributes),
        trace_id: &record.trace_id,
        span_id: &record.span_id,
        event_name: &record.event_name,
    }
}

/// A request as the reader should see it, from prost's resources (`parts`: each one's
/// resource and scopes), scopes (`scope_parts`: each one's scope and records) and records.
fn expected<'a, Resources, Scopes: 'a, Records: 'a, R>(
    resources: &'a [Resources],
    parts: impl Fn(&'a Resources) -> (Option<&'a Resource>, &'a [Scopes]),
    scope_parts: impl Fn(&'a Scopes) -> (Option<&'a InstrumentationScope>, &'a [Records]),
    record: impl Fn(&'a Records) -> R,
) -> otlp::Request<'a, R> {
    let resources = resources.iter().map(|r| {
        let (r, scopes) = parts(r);
        otlp::request::ResourceRecords {
            resource: resource(r),
            scopes: scopes
                .iter()
                .map(|s| {
                    let (s, records) = scope_parts(s);
                    otlp::request::ScopeRecords {
                        scope: scope(s),
                        records: records.iter().map(&record).collect(),
                    }
                })
                .collect(),
        }
    });
    otlp::Request {
        resources: resources.collect(),
    }
}

fn expected_traces(request: &ExportTraceServiceRequest) -> otlp::TracesRequest<'_> {
    expected(
        &request.resource_spans,
        |r| (r.resource.as_ref(), &r.scope_spans),
        |s| (s.scope.as_ref(), &s.spans),
        span_fields,
    )
}

fn expected_logs(request: &ExportLogsServiceRequest) -> otlp::LogsRequest<'_> {
    expected(
        &request.resource_logs,
        |r| (r.resource.as_ref(), &r.scope_logs),
        |s| (s.scope.as_ref(), &s.log_records),
        log_fields,
    )
}

/// `read` with every record's `wire` cleared, after checking it against `encodings`.
fn without_wire<'a, R>(
    mut read: otlp::Request<'a, R>,
    wire_of: impl Fn(&mut R) -> &mut &'a [u8],
    encodings: Option<Vec<Vec<u8>>>,
) -> otlp::Request<'a, R> {
    let records = read
        .resources
        .iter_mut()
        .flat_map(|r| &mut r.scopes)
        .flat_map(|s| &mut s.records);
    for (n, record) in records.enumerate() {
        let wire = wire_of(record);
        if let Some(encodings) = &encodings {
            assert_eq!(*wire, encodings[n].as_slice(), "record {n} as sent");
        }
        *wire = &[];
    }
    read
}

// ---- random requests ----

fn any_value_strategy() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        Just(None),
        ".{0,12}".prop_map(|s| Some(Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(|d| Some(Value::DoubleValue(d))),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| Some(Value::BytesValue(b))),
        any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
    ]
    .prop_map(|value| AnyValue { value });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values })),
            }),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..3).prop_map(|pairs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: pairs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value: Some(value),
                            key_strindex: 0,
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

fn attributes_strategy() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (
            "[a-z._]{0,8}",
            prop::option::of(any_value_strategy()),
            0..2i32,
        ),
        0..4,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value, key_strindex)| KeyValue {
                key,
                value,
                key_strindex,
            })
            .collect()
    })
}

fn id_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), prop::collection::vec(any::<u8>(), 8..=8)]
}

fn span_strategy() -> impl Strategy<Value = Span> {
    (
        (
            id_strategy(),
            id_strategy(),
            id_strategy(),
            ".{0,6}",
            ".{0,10}",
        ),
        (any::<i32>(), any::<u64>(), any::<u64>(), any::<u32>()),
        attributes_strategy(),
        prop::collection::vec((any::<u64>(), ".{0,6}", attributes_strategy()), 0..3),
        prop::collection::vec((id_strategy(), ".{0,4}", attributes_strategy()), 0..2),
        prop::option::of((".{0,6}", 0..3i32)),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, name),
                (kind, start, end, flags),
                attributes,
                events,
                links,
                status,
            )| Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                dropped_attributes_count: flags % 3,
                events: events
                    .into_iter()
                    .map(|(time_unix_nano, name, attributes)| Event {
                        time_unix_nano,
                        name,
                        attributes,
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                dropped_events_count: 0,
                links: links
                    .into_iter()
                    .map(|(span_id, trace_state, attributes)| Link {
                        trace_id: span_id.clone(),
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count: 1,
                        flags: 256,
                    })
                    .collect(),
                dropped_links_count: 0,
                status: status.map(|(message, code)| Status { message, code }),
            },
        )
}

fn log_strategy() -> impl Strategy<Value = LogRecord> {
    (
        (any::<u64>(), any::<u64>(), 0..25i32, ".{0,6}"),
        prop::option::of(any_value_strategy()),
        attributes_strategy(),
        (
            id_strategy(),
            id_strategy(),
            "(codex\\.)?[a-z_]{0,8}",
            any::<u32>(),
        ),
    )
        .prop_map(
            |((time, observed, severity_number, severity_text), body, attributes, ids)| {
                let (trace_id, span_id, event_name, flags) = ids;
                LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: observed,
                    severity_number,
                    severity_text,
                    body,
                    attributes,
                    dropped_attributes_count: flags % 2,
                    flags,
                    trace_id,
                    span_id,
                    event_name,
                }
            },
        )
}

fn resource_strategy() -> impl Strategy<Value = Option<Resource>> {
    prop::option::of(attributes_strategy().prop_map(|attributes| Resource {
        attributes,
        dropped_attributes_count: 0,
        entity_refs: vec![],
    }))
}

fn scope_strategy() -> impl Strategy<Value = Option<InstrumentationScope>> {
    prop::option::of(("[a-z_:]{0,10}", ".{0,3}", attributes_strategy()).prop_map(
        |(name, version, attributes)| InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count: 0,
        },
    ))
}

fn traces_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (
        scope_strategy(),
        prop::collection::vec(span_strategy(), 0..4),
    )
        .prop_map(|(scope, spans)| ScopeSpans {
            scope,
            spans,
            schema_url: String::new(),
        });
    let resource = (
        resource_strategy(),
        prop::collection::vec(scope, 0..3),
        ".{0,3}",
    )
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        });
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn logs_strategy() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let scope = (
        scope_strategy(),
        prop::collection::vec(log_strategy(), 0..4),
    )
        .prop_map(|(scope, log_records)| ScopeLogs {
            scope,
            log_records,
            schema_url: String::new(),
        });
    let resource = (resource_strategy(), prop::collection::vec(scope, 0..3)).prop_map(
        |(resource, scope_logs)| ResourceLogs {
            resource,
            scope_logs,
            schema_url: String::new(),
        },
    );
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

/// How a request's bytes are corrupted at a position.
#[derive(Clone, Copy, Debug)]
enum Corruption {
    /// Cut there.
    Cut,
    /// That byte replaced.
    Replace(u8),
    /// That byte's low three bits flipped by these (a key's wire type changed).
    WireType(u8),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::Cut),
        any::<u8>().prop_map(Corruption::Replace),
        (1..8u8).prop_map(Corruption::WireType),
    ]
}

fn corrupt(wire: &[u8], how: Corruption, at: usize) -> Vec<u8> {
    if wire.is_empty() {
        return vec![0xff];
    }
    let at = at % wire.len();
    let mut out = wire.to_vec();
    match how {
        Corruption::Cut => out.truncate(at),
        Corruption::Replace(byte) => out[at] = byte,
        Corruption::WireType(bits) => out[at] ^= bits,
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn reads_spans_as_prost_decodes_them(request in traces_strategy()) {
        let wire = request.encode_to_vec();
        let read = otlp::TracesRequest::decode(&wire).expect("prost's encoding reads");
        let encodings = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.encode_to_vec())
            .collect();
        let read = without_wire(read, |s| &mut s.wire, Some(encodings));
        prop_assert_eq!(read, expected_traces(&request));
    }

    #[test]
    fn reads_log_records_as_prost_decodes_them(request in logs_strategy()) {
        let wire = request.encode_to_vec();
        let read = otlp::LogsRequest::decode(&wire).expect("prost's encoding reads");
        let encodings = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|r| r.encode_to_vec())
            .collect();
        let read = without_wire(read, |r| &mut r.wire, Some(encodings));
        prop_assert_eq!(read, expected_logs(&request));
    }

    #[test]
    fn refuses_corrupted_spans_exactly_when_prost_does(
        request in traces_strategy(), how in corruption(), at in any::<usize>()
    ) {
        let wire = corrupt(&request.encode_to_vec(), how, at);
        let prost = ExportTraceServiceRequest::decode(wire.as_slice());
        let read = otlp::TracesRequest::decode(&wire);
        prop_assert_eq!(read.is_ok(), prost.is_ok(), "{:?} / {:?}", read.as_ref().err(), prost.as_ref().err());
        if let (Ok(read), Ok(prost)) = (read, prost) {
            prop_assert_eq!(without_wire(read, |s| &mut s.wire, None), expected_traces(&prost));
        }
    }

    #[test]
    fn refuses_corrupted_log_records_exactly_when_prost_does(
        request in logs_strategy(), how in corruption(), at in any::<usize>()
    ) {
        let wire = corrupt(&request.encode_to_vec(), how, at);
        let prost = ExportLogsServiceRequest::decode(wire.as_slice());
        let read = otlp::LogsRequest::decode(&wire);
        prop_assert_eq!(read.is_ok(), prost.is_ok(), "{:?} / {:?}", read.as_ref().err(), prost.as_ref().err());
        if let (Ok(read), Ok(prost)) = (read, prost) {
            prop_assert_eq!(without_wire(read, |r| &mut r.wire, None), expected_logs(&prost));
        }
    }
}

#[test]
fn values_nested_past_prost_limit_are_refused_like_prost() {
    // An attribute value nested `levels` arrays deep, in a span of a request.
    let request = |levels: usize| {
        let mut value = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        for _ in 0..levels {
            value = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        attributes: vec![KeyValue {
                            key: "deep".into(),
                            value: Some(value),
                            key_strindex: 0,
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let mut saw_both = [false, false];
    for levels in 40..60 {
        let wire = request(levels);
        let prost_ok = ExportTraceServiceRequest::decode(wire.as_slice()).is_ok();
        assert_eq!(
            otlp::TracesRequest::decode(&wire).is_ok(),
            prost_ok,
            "{levels} levels"
        );
        saw_both[usize::from(prost_ok)] = true;
    }
    assert_eq!(
        saw_both,
        [true, true],
        "the limit falls inside the range tried"
    );
}

/// `value` as field `number` of wire type 2.
fn ld(number: u32, value: &[u8]) -> Vec<u8> {
    let mut out = key(number, 2);
    prost::encoding::encode_varint(value.len() as u64, &mut out);
    out.extend_from_slice(value);
    out
}

fn key(number: u32, wire_type: u32) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(number << 3 | wire_type), &mut out);
    out
}

/// Field `number` with a value of every wire type (and a string that is not UTF-8, and
/// an empty group).
fn each_shape(number: u32) -> Vec<Vec<u8>> {
    let with = |wire_type, value: &[u8]| [key(number, wire_type), value.to_vec()].concat();
    vec![
        with(0, &[0x01]),
        with(1, &[0; 8]),
        ld(number, &[]),
        ld(number, &[0xff]),
        ld(number, b"ok"),
        with(5, &[0; 4]),
        [key(number, 3), key(number, 4)].concat(),
    ]
}

/// Puts a message's encoding where that message goes in a request.
type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;

#[test]
fn every_field_of_every_message_takes_the_wire_types_prost_takes() {
    let span = |b: &[u8]| ld(1, &ld(2, &ld(2, b)));
    let span_attribute = move |b: &[u8]| span(&ld(9, b));
    let span_value = move |b: &[u8]| span_attribute(&ld(2, b));
    let log = |b: &[u8]| ld(1, &ld(2, &ld(2, b)));
    let resource = |b: &[u8]| ld(1, &ld(1, b));
    // (message, where it goes, in a logs request rather than a trace one)
    let messages: Vec<(&str, Wrap, bool)> = vec![
        (
            "ExportTraceServiceRequest",
            Box::new(|b: &[u8]| b.to_vec()),
            false,
        ),
        ("ResourceSpans", Box::new(|b: &[u8]| ld(1, b)), false),
        ("Resource", Box::new(resource), false),
        (
            "EntityRef",
            Box::new(move |b: &[u8]| resource(&ld(3, b))),
            false,
        ),
        ("ScopeSpans", Box::new(|b: &[u8]| ld(1, &ld(2, b))), false),
        (
            "InstrumentationScope",
            Box::new(|b: &[u8]| ld(1, &ld(2, &ld(1, b)))),
            false,
        ),
        ("Span", Box::new(span), false),
        (
            "Span.Event",
            Box::new(move |b: &[u8]| span(&ld(11, b))),
            false,
        ),
        (
            "Span.Link",
            Box::new(move |b: &[u8]| span(&ld(13, b))),
            false,
        ),
        ("Status", Box::new(move |b: &[u8]| span(&ld(15, b))), false),
        ("KeyValue", Box::new(span_attribute), false),
        ("AnyValue", Box::new(span_value), false),
        (
            "ArrayValue",
            Box::new(move |b: &[u8]| span_value(&ld(5, b))),
            false,
        ),
        (
            "KeyValueList",
            Box::new(move |b: &[u8]| span_value(&ld(6, b))),
            false,
        ),
        ("LogRecord", Box::new(log), true),
        (
            "LogRecord.body",
            Box::new(move |b: &[u8]| log(&ld(5, b))),
            true,
        ),
    ];
    let mut refused = 0;
    for (message, wrap, is_logs) in &messages {
        for number in 1..=20 {
            for shape in each_shape(number) {
                let wire = wrap(&shape);
                let (prost, read) = if *is_logs {
                    (
                        ExportLogsServiceRequest::decode(wire.as_slice()).is_ok(),
                        otlp::LogsRequest::decode(&wire).is_ok(),
                    )
                } else {
                    (
                        ExportTraceServiceRequest::decode(wire.as_slice()).is_ok(),
                        otlp::TracesRequest::decode(&wire).is_ok(),
                    )
                };
                assert_eq!(read, prost, "{message} field {number}: {shape:?}");
                refused += usize::from(!prost);
            }
        }
    }
    assert!(refused > 100, "{refused} shapes refused");
}
